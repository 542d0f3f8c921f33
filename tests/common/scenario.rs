//! The before and after of a hostile scenario: an offender joins in front of witnesses, and
//! afterwards the server still serves everyone else (the page loads, the chat goes on).
//!
//! Include it next to `mod common;`, `client`, `http_client` and `raw_ws` with
//! `#[path = "common/scenario.rs"] mod scenario;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use serde_json::{json, Value};

use crate::client::{
    close, connect, expect_join, expect_leave, expect_message, expect_only_marker, join_all,
    parse_timestamp, send, Client,
};
use crate::common::TestServer;
use crate::http_client::assert_page_served;
use crate::raw_ws::RawWs;

/// Connects a hand-driven client as `id`; it and every one of `members` must be told it
/// joined.
pub fn raw_join(server: &TestServer, id: &str, members: &mut [&mut Client]) -> RawWs {
    let mut raw = RawWs::connect(server.addr, id);
    check_event(
        &raw.expect_json(),
        "connection",
        id,
        &format!("{id} joined the chat"),
    );
    for member in members {
        expect_join(member, id);
    }
    raw
}

/// `value` is exactly the tutorial's frame for this event, with a well-formed timestamp.
pub fn check_event(value: &Value, kind: &str, id: &str, message: &str) {
    let timestamp = value["timestamp"].as_str().unwrap_or_default();
    assert!(
        parse_timestamp(timestamp).is_some(),
        "bad timestamp in {value:.200}"
    );
    assert!(
        *value
            == json!({
                "type": kind,
                "client_id": id,
                "message": message,
                "timestamp": timestamp,
            }),
        "expected {kind} of {id}, got {:.300}",
        value.to_string()
    );
}

/// The chat still works for everyone: a newcomer is announced to all `members`, and each of
/// them (and the newcomer) can say something that reaches everyone. Nothing else may be
/// queued for any of them.
pub fn chat_goes_on(server: &TestServer, members: &mut [(&str, &mut Client)]) {
    let mut newcomer = connect(server, "newcomer");
    expect_join(&mut newcomer, "newcomer");
    for (_, member) in members.iter_mut() {
        expect_join(member, "newcomer");
    }
    let speakers: Vec<String> = members.iter().map(|(name, _)| name.to_string()).collect();
    for speaker in std::iter::once("newcomer".to_owned()).chain(speakers) {
        let text = format!("{speaker} is still here");
        if speaker == "newcomer" {
            send(&mut newcomer, &text);
        } else {
            let (_, client) = members
                .iter_mut()
                .find(|(name, _)| *name == speaker)
                .expect("a member");
            send(client, &text);
        }
        expect_message(&mut newcomer, &speaker, &text);
        for (_, member) in members.iter_mut() {
            expect_message(member, &speaker, &text);
        }
    }
    let mut others: Vec<&mut Client> = members.iter_mut().map(|(_, c)| &mut **c).collect();
    expect_only_marker(&mut newcomer, "newcomer", &mut others);
}

/// The page is still served and two new chat clients can still talk: whatever happened before
/// hurt no one else.
pub fn assert_still_serving(server: &TestServer) {
    assert_page_served(server.addr);
    let [mut alice, mut bob] = join_all(server, ["alice", "bob"]);
    send(&mut alice, "still there?");
    expect_message(&mut alice, "alice", "still there?");
    expect_message(&mut bob, "alice", "still there?");
    // Clean goodbyes, so the next check on this server starts from an empty room.
    close(alice);
    expect_leave(&mut bob, "alice");
    close(bob);
}
