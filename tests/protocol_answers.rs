//! The answers of PROTOCOL.md's "Questions client authors ask" that the driver decides (the
//! upgrade: subprotocol answer, query parameters, Origin), over real sockets. The core's
//! answers are tested in `chat-protocol/tests/answers.rs`.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use common::TestServer;
use serde_json::json;
use v2_client::{expect_message, greeting, handshake, join_v2, send_cmd, V2};

/// `chat.v2` among other offers is answered with `chat.v2` alone; unknown offers only are
/// answered with no subprotocol, and the client speaks v1. Neither is refused.
#[test]
fn the_subprotocol_answer_names_chat_v2_or_nothing() {
    let server = TestServer::start();
    let (reply, client) = handshake(&server, "/ws/alice", Some("foo, chat.v2"));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.all("Sec-WebSocket-Protocol"), [V2], "{reply:?}");
    greeting(&mut client.expect("upgraded"), "alice");

    let (reply, client) = handshake(&server, "/ws/bob", Some("foo"));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert!(reply.all("Sec-WebSocket-Protocol").is_empty(), "{reply:?}");
    v1::expect_join(&mut client.expect("upgraded"), "bob");
}

/// A resume hint that is not a whole number never refuses the upgrade: a bad `since` is no
/// `since` (no gap, the whole history), a bad `epoch` is no epoch (a gap), and an `epoch`
/// alone is ignored whatever it holds.
#[test]
fn bad_resume_hints_are_ignored_not_refused() {
    let server = TestServer::start();
    let (mut alice, _) = join_v2(&server, "alice", "", true);
    send_cmd(&mut alice, &json!({"type": "message", "message": "hi"}));
    // Seen by its sender, so it is in history before any later join.
    expect_message(&mut alice, "alice", "hi", "general");

    for query in [
        "?since=abc",
        "?since=-1",
        "?since=1.5",
        "?epoch=abc",
        "?since=x&epoch=y",
    ] {
        let (_tab, g) = join_v2(&server, "alice", query, false);
        assert!(g.gap.is_none(), "{query}: {g:?}");
        assert!(!g.resumed(), "{query}: {g:?}");
        assert_eq!(g.ids(), [1], "{query}: the whole history");
    }
    let (_tab, g) = join_v2(&server, "alice", "?since=0&epoch=abc", false);
    let gap = g
        .gap
        .as_ref()
        .expect("a since without a usable epoch gets a gap");
    assert_eq!(gap["since"], 0, "{gap}");
    assert!(!g.resumed());
    assert_eq!(g.ids(), [1]);
}

/// An `https://` page is another origin than this plain-http server on the same host.
#[test]
fn an_origin_of_another_scheme_is_refused() {
    let server = TestServer::start();
    let upgrade = |origin: &str| {
        http_client::request(
            server.addr,
            "GET",
            "/ws/mallory",
            &format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n"
            ),
        )
    };
    // The request's Host is `test`.
    let refused = upgrade("https://test");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.body_text(),
        "this Origin may not open a chat connection (see --allowed-origin)\n"
    );
}
