//! Token authentication in the core: a connection whose token expires is closed with 4001
//! "token expired" at that instant (in virtual time); a `refresh` is handed to the driver to
//! check (`VerifyToken`) and, answered valid for the same user, moves the expiry; a token of
//! another user, an invalid one, or one answered after the client left changes nothing.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Input, Output, StoreTicket, VerifiedToken};
use harness::{send, v2, Harness};

/// No heartbeat, no idle timeout: only the token's expiry can close anyone here.
fn config() -> Config {
    Config::default()
        .with_heartbeat_interval(None)
        .with_idle_timeout(None)
        .with_token_auth(true)
}

fn stamp(secs: u64) -> String {
    (harness::start_wall() + Duration::from_secs(secs))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn expired(id: u64) -> Output {
    Output::Close {
        client: ClientId(id),
        reason: CloseReason::TokenExpired,
    }
}

/// alice (v2, client 1) joined with a token valid for `secs` more seconds.
fn alice_with_token(secs: u64) -> Harness {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "alice", "general");
    let at = h.now.instant + Duration::from_secs(secs);
    h.input(Input::Expires {
        client: ClientId(1),
        at,
    });
    h.drain();
    h
}

fn refresh(h: &mut Harness, token: &str) -> Vec<Output> {
    h.text(1, &format!(r#"{{"type":"refresh","token":"{token}"}}"#));
    h.drain()
}

#[test]
fn an_expired_token_closes_the_connection_at_its_expiry_with_4001() {
    let mut h = alice_with_token(60);
    assert_eq!(CloseReason::TokenExpired.code(), 4001);
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now.instant + Duration::from_secs(60))
    );
    h.advance(Duration::from_secs(59));
    h.timeout();
    assert_eq!(h.drain(), [], "closed before its time");
    h.advance(Duration::from_secs(1));
    h.timeout();
    assert_eq!(h.drain(), [expired(1)]);
    // Closed once: later timeouts and messages do nothing.
    h.advance(Duration::from_secs(60));
    h.timeout();
    h.text(1, r#"{"type":"message","message":"too late"}"#);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_refresh_checked_valid_moves_the_expiry() {
    let mut h = alice_with_token(60);
    let out = refresh(&mut h, "fresh.jwt.token");
    assert_eq!(
        out,
        [Output::VerifyToken {
            client: ClientId(1),
            ticket: StoreTicket(0),
            token: "fresh.jwt.token".to_owned(),
        }]
    );
    // The check may take a while; the answer moves the expiry an hour on.
    h.advance(Duration::from_secs(30));
    let expires = h.now.instant + Duration::from_secs(3600);
    h.input(Input::TokenVerified {
        ticket: StoreTicket(0),
        result: Ok(VerifiedToken {
            user: "alice".to_owned(),
            expires,
        }),
    });
    assert_eq!(
        h.drain(),
        [send(
            1,
            &format!(
                r#"{{"type":"token_refreshed","timestamp":"{}"}}"#,
                stamp(30)
            )
        )]
    );
    // The old expiry passes harmlessly; the new one closes.
    h.advance(Duration::from_secs(31));
    h.timeout();
    assert_eq!(h.drain(), []);
    h.advance(Duration::from_secs(3600 - 31));
    h.timeout();
    assert_eq!(h.drain(), [expired(1)]);
}

#[test]
fn a_token_for_another_user_or_an_invalid_one_is_refused_and_changes_nothing() {
    let mut h = alice_with_token(60);
    refresh(&mut h, "bobs.token");
    h.input(Input::TokenVerified {
        ticket: StoreTicket(0),
        result: Ok(VerifiedToken {
            user: "bob".to_owned(),
            expires: h.now.instant + Duration::from_secs(3600),
        }),
    });
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "the token is for another user",
                "bad_token",
                &stamp(0)
            )
        )]
    );
    refresh(&mut h, "forged.token");
    h.input(Input::TokenVerified {
        ticket: StoreTicket(1),
        result: Err("the token's signature does not match".to_owned()),
    });
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "the token's signature does not match",
                "bad_token",
                &stamp(0)
            )
        )]
    );
    h.advance(Duration::from_secs(60));
    h.timeout();
    assert_eq!(h.drain(), [expired(1)], "the old expiry still holds");
}

#[test]
fn one_refresh_at_a_time_late_and_unknown_answers_are_ignored() {
    let mut h = alice_with_token(60);
    refresh(&mut h, "first");
    assert_eq!(
        refresh(&mut h, "second"),
        [send(
            1,
            &v2::error(
                "alice",
                "a refresh is already being checked",
                "bad_token",
                &stamp(0)
            )
        )]
    );
    // An answer nobody asked for, and one for a client that has left.
    h.input(Input::TokenVerified {
        ticket: StoreTicket(99),
        result: Err("whatever".to_owned()),
    });
    h.disconnect(1);
    h.drain();
    h.input(Input::TokenVerified {
        ticket: StoreTicket(0),
        result: Ok(VerifiedToken {
            user: "alice".to_owned(),
            expires: h.now.instant + Duration::from_secs(3600),
        }),
    });
    assert_eq!(h.drain(), []);
}

#[test]
fn without_token_auth_refresh_is_a_bad_command_and_no_one_expires() {
    let mut h = Harness::with_config(
        Config::default()
            .with_heartbeat_interval(None)
            .with_idle_timeout(None),
    );
    h.connect_v2(1, "alice", "general");
    h.drain();
    assert_eq!(
        refresh(&mut h, "a.b.c"),
        [send(
            1,
            &v2::error(
                "alice",
                "this server does not use tokens: there is nothing to refresh",
                "bad_command",
                &stamp(0)
            )
        )]
    );
    for (token, why) in [
        (r#"{"type":"refresh"}"#, "missing token"),
        (r#"{"type":"refresh","token":""}"#, "empty token"),
        (r#"{"type":"refresh","token":5}"#, "a number"),
    ] {
        h.text(1, token);
        let out = h.drain();
        assert!(
            matches!(&out[..], [Output::Send { payload, .. }] if payload.as_str().contains("bad_command")),
            "{why}: {out:?}"
        );
    }
    assert_eq!(h.server.poll_timeout(), None);
}
