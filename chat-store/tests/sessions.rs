//! Login sessions in the store, asked through the storage thread: an account is found with its
//! hash, a session is created, found while it lives, and not found once ended, expired, or its
//! user removed; a new account of the same name does not inherit the old sessions; a user keeps
//! at most 32; sessions survive a restart; expired ones are deleted at open.

mod common;

use chat_store::accounts;
use chat_store::sessions::MAX_SESSIONS_PER_USER;
use chat_store::{Account, AccountAnswer, AccountQuery, Completion, SessionUser};
use common::*;
use rusqlite::Connection;

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA";
const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;

impl Running {
    fn ask(&self, ticket: u64, query: AccountQuery) -> AccountAnswer {
        self.store.account(ticket, query);
        match self.rx.recv_timeout(WAIT).expect("a completion") {
            Completion::Account { ticket: t, result } => {
                assert_eq!(t, ticket);
                result.expect("the query succeeds")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn create(&self, id: &str, user: &str, created_ms: i64) {
        let answer = self.ask(
            1,
            AccountQuery::CreateSession {
                id: id.into(),
                user: user.into(),
                created_ms,
                expires_ms: created_ms + DAY,
            },
        );
        assert_eq!(answer, AccountAnswer::SessionCreated);
    }

    fn find(&self, id: &str, now_ms: i64) -> Option<SessionUser> {
        match self.ask(
            2,
            AccountQuery::FindSession {
                id: id.into(),
                now_ms,
            },
        ) {
            AccountAnswer::Session(found) => found,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn alice(expires_ms: i64) -> Option<SessionUser> {
    Some(SessionUser {
        user: "alice".into(),
        admin: false,
        expires_ms,
    })
}

#[test]
fn a_session_lives_until_it_ends_expires_or_its_user_goes() {
    let dir = TempDir::new("sessions");
    accounts::add_user(dir.path(), "alice", PHC, false).expect("add alice");
    accounts::add_user(dir.path(), "root", PHC, true).expect("add root");
    let run = start(open_ok(options(dir.path(), 1)));

    assert_eq!(
        run.ask(
            1,
            AccountQuery::FindUser {
                name: "root".into()
            }
        ),
        AccountAnswer::User(Some(Account {
            phc: PHC.into(),
            admin: true
        }))
    );
    assert_eq!(
        run.ask(
            1,
            AccountQuery::FindUser {
                name: "nobody".into()
            }
        ),
        AccountAnswer::User(None)
    );

    run.create("s1", "alice", NOW);
    run.create("s2", "alice", NOW);
    assert_eq!(run.find("s1", NOW + 1), alice(NOW + DAY));
    assert_eq!(run.find("unknown", NOW + 1), None);
    assert_eq!(run.find("s1", NOW + DAY), None, "expired");

    // Logout ends one session, not the others.
    assert_eq!(
        run.ask(3, AccountQuery::EndSession { id: "s1".into() }),
        AccountAnswer::SessionEnded
    );
    assert_eq!(run.find("s1", NOW + 1), None);
    assert_eq!(run.find("s2", NOW + 1), alice(NOW + DAY));

    // The admin flag is read at each lookup.
    accounts::set_admin(dir.path(), "alice", true).expect("set-admin");
    assert!(run.find("s2", NOW + 1).expect("alive").admin);

    // Removing the account (while the server runs) ends its sessions, and a new account of
    // the same name does not get them back.
    assert!(accounts::remove_user(dir.path(), "alice").expect("remove"));
    assert_eq!(run.find("s2", NOW + 1), None);
    accounts::add_user(dir.path(), "alice", PHC, false).expect("add alice again");
    assert_eq!(run.find("s2", NOW + 1), None);
    run.store.shutdown().expect("clean shutdown");
}

#[test]
fn a_user_keeps_the_newest_sessions_only() {
    let dir = TempDir::new("sessions-cap");
    accounts::add_user(dir.path(), "alice", PHC, false).expect("add alice");
    let run = start(open_ok(options(dir.path(), 1)));
    let n = MAX_SESSIONS_PER_USER as i64 + 3;
    for i in 0..n {
        run.create(&format!("s{i}"), "alice", NOW + i);
    }
    let later = NOW + n;
    for i in 0..3 {
        assert_eq!(
            run.find(&format!("s{i}"), later),
            None,
            "s{i} was the oldest"
        );
    }
    for i in 3..n {
        assert!(run.find(&format!("s{i}"), later).is_some(), "s{i} is kept");
    }
    run.store.shutdown().expect("clean shutdown");
}

#[test]
fn sessions_survive_a_restart_and_expired_ones_are_deleted_at_open() {
    let dir = TempDir::new("sessions-restart");
    accounts::add_user(dir.path(), "alice", PHC, false).expect("add alice");
    let run = start(open_ok(options(dir.path(), 1)));
    // One that expired long ago (the wall clock is past 2020), one that lasts.
    run.create("old", "alice", 1_000);
    let far = i64::MAX / 2;
    run.ask(
        1,
        AccountQuery::CreateSession {
            id: "kept".into(),
            user: "alice".into(),
            created_ms: 2_000,
            expires_ms: far,
        },
    );
    run.store.shutdown().expect("clean shutdown");

    let run = start(open_ok(options(dir.path(), 2)));
    assert_eq!(run.find("kept", NOW), alice(far));
    run.store.shutdown().expect("clean shutdown");
    let ids: Vec<String> = Connection::open(dir.db())
        .and_then(|c| {
            c.prepare("SELECT id FROM sessions ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .expect("read sessions");
    assert_eq!(ids, ["kept"], "the expired session was deleted at open");
}

#[test]
fn a_query_never_shows_a_hash_or_a_session_id_in_debug() {
    let shown = format!(
        "{:?} {:?} {:?}",
        Account {
            phc: PHC.into(),
            admin: false
        },
        AccountQuery::FindSession {
            id: "secret-id".into(),
            now_ms: 0
        },
        AccountQuery::CreateSession {
            id: "secret-id".into(),
            user: "alice".into(),
            created_ms: 0,
            expires_ms: 0
        }
    );
    assert!(
        !shown.contains("argon2") && !shown.contains("secret-id"),
        "{shown}"
    );
}
