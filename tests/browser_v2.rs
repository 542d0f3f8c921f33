//! End-to-end tests of the browser client's v2 features in headless Chromium: presence,
//! typing, direct messages, loss-free reconnects after a cut connection, a server restart,
//! and rooms in the URL.
//!
//! Pages whose connection a test breaks are loaded through a TCP proxy (`common/proxy.rs`):
//! the page's WebSocket goes to `location.host`, so it passes through the proxy too, which
//! can cut it, hold the reconnect back, or send it to another server.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/proxy.rs"]
mod proxy;

use browser_support::{
    browser_or_skip, join, js_string, message_shown, notice_shown, BrowserTest, Page,
};
use common::TestServer;
use proxy::Proxy;
use serde_json::{json, Value};

/// The page's notice after reconnecting to a server with another epoch.
const RESTART_NOTICE: &str = "Reconnected to a restarted server: earlier history may be missing.";

#[test]
fn presence_list_follows_joins_and_leaves() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");

    join(&alice, "alice");
    alice.wait_until(
        "alice's list shows only herself, marked as self",
        &users_are(&["alice"], Some("alice")),
    );

    join(&bob, "bob");
    alice.wait_until(
        "bob appears in alice's list",
        &users_are(&["alice", "bob"], None),
    );
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    // Others are buttons (to send them a direct message); oneself is not.
    assert_eq!(
        alice.eval(
            "[document.querySelector('#users li[data-user=\"bob\"] button.user-btn') !== null,
              document.querySelector('#users li[data-user=\"alice\"]').classList.contains('self'),
              document.querySelector('#users li[data-user=\"alice\"] button') === null]"
        ),
        json!([true, true, true]),
        "alice's list: bob as a button, alice as self"
    );
    // bob learnt who was there from his welcome.
    bob.wait_until(
        "bob's list shows alice and himself",
        &users_are(&["alice", "bob"], Some("bob")),
    );

    bob.close();
    alice.wait_until(
        "bob is gone from alice's list",
        &users_are(&["alice"], Some("alice")),
    );
    alice.wait_until(
        "bob's leaving is shown",
        &notice_shown("leave", "bob left the chat"),
    );
    assert_eq!(
        alice.errors(),
        Vec::<String>::new(),
        "errors on alice's page"
    );
}

#[test]
fn typing_indicator_shows_and_clears() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");
    join(&alice, "alice");
    join(&bob, "bob");
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    assert_eq!(typing_of(&alice), json!(["", ""]), "nobody types yet");

    // Typing without sending announces it.
    bob.type_into("#messageInput", "hello ali");
    alice.wait_until(
        "alice sees that bob is typing",
        "document.getElementById('typing').textContent === 'bob is typing\u{2026}'
         && document.getElementById('typing').dataset.typists === 'bob'",
    );

    // Sending clears it: by the time bob's message is shown, the indicator is gone.
    bob.type_into("#messageInput", "hello alice");
    bob.press_enter();
    alice.wait_until(
        "bob's message is shown and the typing indicator is cleared",
        &format!(
            "({shown}) && document.getElementById('typing').textContent === ''",
            shown = message_shown("bob", "hello alice"),
        ),
    );
    assert_eq!(typing_of(&alice), json!(["", ""]), "alice's indicator");
    // A typist is never shown to himself.
    assert_eq!(typing_of(&bob), json!(["", ""]), "bob's own indicator");
    for page in [&alice, &bob] {
        assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
    }
}

#[test]
fn direct_message_reaches_only_its_recipient() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");
    let carol = test.open("carol's page", "/");
    join(&alice, "alice");
    join(&bob, "bob");
    join(&carol, "carol");
    alice.wait_until(
        "alice's list shows bob and carol",
        &users_are(&["alice", "bob", "carol"], Some("alice")),
    );

    // alice picks bob in her list: the composer switches to a direct message to him.
    let bob_button = "#users li[data-user=\"bob\"] button.user-btn";
    show_user_list(&alice, bob_button);
    alice.click(bob_button);
    alice.wait_until(
        "alice's composer is in direct-message mode for bob",
        "!document.getElementById('dm-bar').hidden
         && document.getElementById('dm-target').textContent === 'bob'",
    );
    alice.type_into("#messageInput", "secret");
    alice.press_enter();

    bob.wait_until(
        "bob sees alice's direct message",
        &direct_shown("alice", "bob", "secret", false),
    );
    alice.wait_until(
        "alice sees her own direct message (the echo)",
        &direct_shown("alice", "bob", "secret", true),
    );

    // Back to the room: a marker alice sends after the DM reaches carol after anything
    // the DM could have produced for her (the server handles commands in order).
    alice.click("#dm-cancel");
    alice.wait_until(
        "alice's composer is back to the room",
        "document.getElementById('dm-bar').hidden",
    );
    alice.type_into("#messageInput", "marker after the DM");
    alice.press_enter();
    carol.wait_until(
        "carol sees alice's marker",
        &message_shown("alice", "marker after the DM"),
    );
    bob.wait_until(
        "bob sees alice's marker as a room message",
        &message_shown("alice", "marker after the DM"),
    );
    assert_eq!(
        carol.eval(
            "[document.querySelectorAll('#messages .message.direct').length,
              document.body.textContent.includes('secret'),
              document.title.includes('secret')]"
        ),
        json!([0, false, false]),
        "carol must not see alice's direct message to bob"
    );
    // The DM is one item on each side, not also a room message.
    for (page, own) in [(&alice, true), (&bob, false)] {
        assert_eq!(
            page.eval(
                "Array.from(document.querySelectorAll('#messages .message'))
                    .filter(m => m.querySelector('.text')?.textContent === 'secret')
                    .map(m => m.classList.contains('direct'))"
            ),
            json!([true]),
            "the DM on {} page (own: {own})",
            if own { "alice's" } else { "bob's" }
        );
    }
    for page in [&alice, &bob, &carol] {
        assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
    }
}

#[test]
fn cut_connection_resumes_without_loss_or_duplicates() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let proxy = Proxy::start(test.server.addr);
    let alice = test.open_url("alice's page (through the proxy)", &proxy.http_url("/"));
    let carol = test.open("carol's page", "/");
    join(&alice, "alice");
    join(&carol, "carol");
    alice.wait_until(
        "carol's join is shown",
        &notice_shown("join", "carol joined the chat"),
    );
    assert_eq!(
        alice.eval("location.host"),
        json!(proxy.addr().to_string()),
        "alice's page must come through the proxy"
    );

    send(&alice, "hi carol");
    carol.wait_until(
        "alice's message reaches carol",
        &message_shown("alice", "hi carol"),
    );
    send(&carol, "hi alice");
    alice.wait_until(
        "carol's message reaches alice",
        &message_shown("carol", "hi alice"),
    );

    // alice's next message reaches the server (and carol), but the line goes dead before
    // anything comes back: her page never sees its acknowledgement.
    proxy.stall_downstream();
    send(&alice, "sent as the line dropped");
    carol.wait_until(
        "alice's last message before the cut reaches carol",
        &message_shown("alice", "sent as the line dropped"),
    );
    assert_eq!(
        alice.eval(&pending_texts()),
        json!(["sent as the line dropped"]),
        "alice's page cannot have had the acknowledgement"
    );

    // Cut alice's connection, and hold her reconnect back until carol has talked.
    proxy.pause();
    assert!(proxy.cut() >= 1, "alice's WebSocket went through the proxy");
    alice.wait_until(
        "alice's page noticed the cut by itself and is reconnecting",
        "document.getElementById('status').dataset.state === 'reconnecting'
         && document.getElementById('status').dataset.reconnects === '0'",
    );
    carol.wait_until(
        "the server noticed alice's connection ending",
        &notice_shown("leave", "alice left the chat"),
    );

    // alice writes while offline: the message waits, marked pending.
    send(&alice, "written while offline");
    alice.wait_until(
        "alice's offline message is pending too",
        &format!(
            "JSON.stringify({}) === {}",
            pending_texts(),
            js_string(r#"["sent as the line dropped","written while offline"]"#)
        ),
    );

    let missed: Vec<String> = (1..=5).map(|i| format!("missed {i}")).collect();
    for text in &missed {
        send(&carol, text);
    }
    let missed_ids: Vec<u64> = missed
        .iter()
        .map(|text| confirmed_id(&carol, "carol", text))
        .collect();
    assert!(
        missed_ids.windows(2).all(|w| w[0] < w[1]),
        "carol's ids must increase: {missed_ids:?}"
    );
    // Still held back: everything carol said happened while alice was away.
    assert_eq!(
        alice.eval(
            "[document.getElementById('status').dataset.state,
              document.getElementById('status').dataset.reconnects,
              document.body.textContent.includes('missed')]"
        ),
        json!(["reconnecting", "0", false]),
        "alice must still be disconnected"
    );

    proxy.resume();
    alice.wait_until(
        "alice's page reconnected by itself",
        "document.getElementById('status').dataset.state === 'connected'
         && document.getElementById('status').dataset.reconnects === '1'",
    );
    alice.wait_until(
        "everything is shown on alice's page and her offline message is confirmed",
        &format!(
            "{} && document.querySelector('#messages .message.pending') === null",
            all_shown(&[("carol", "missed 5"), ("alice", "written while offline")])
        ),
    );
    carol.wait_until(
        "alice's offline message reaches carol",
        &message_shown("alice", "written while offline"),
    );

    let expected: Vec<(&str, &str)> = [
        ("alice", "hi carol"),
        ("carol", "hi alice"),
        ("alice", "sent as the line dropped"),
    ]
    .into_iter()
    .chain(missed.iter().map(|text| ("carol", text.as_str())))
    .chain([("alice", "written while offline")])
    .collect();
    let on_alice = shown_messages(&alice);
    let on_carol = shown_messages(&carol);
    for (name, shown) in [("alice", &on_alice), ("carol", &on_carol)] {
        let texts: Vec<(&str, &str)> = shown
            .iter()
            .map(|m| (m.sender.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(
            texts, expected,
            "{name}'s page: every message exactly once, in order: {shown:#?}"
        );
        let ids: Vec<u64> = shown
            .iter()
            .map(|m| {
                m.id.unwrap_or_else(|| panic!("{name}'s page: a message without an id: {m:?}"))
            })
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{name}'s page: ids must be unique and in server order: {ids:?}"
        );
        assert!(
            shown.iter().all(|m| !m.pending),
            "{name}'s page: nothing left pending: {shown:#?}"
        );
        assert!(
            shown.iter().all(|m| m.epoch == shown[0].epoch),
            "{name}'s page: one server, one epoch: {shown:#?}"
        );
    }
    let carol_ids_on_alice: Vec<u64> = on_alice
        .iter()
        .filter(|m| m.text.starts_with("missed "))
        .filter_map(|m| m.id)
        .collect();
    assert_eq!(
        carol_ids_on_alice, missed_ids,
        "carol's messages on alice's page"
    );
    assert_eq!(
        on_alice.iter().map(|m| m.id).collect::<Vec<_>>(),
        on_carol.iter().map(|m| m.id).collect::<Vec<_>>(),
        "both pages agree on the ids"
    );
    for page in [&alice, &carol] {
        assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
    }
}

#[test]
fn server_restart_is_announced_and_new_messages_arrive() {
    // The one test that brings its own servers (it stops one and starts another), so it
    // does not use `BrowserTest`; they are declared before the browser to outlive it.
    let server_a = TestServer::start();
    // Started later; declared here so it outlives the proxy and the browser.
    let server_b: TestServer;
    let proxy = Proxy::start(server_a.addr);
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let page = browser.open("alice's page (through the proxy)", &proxy.http_url("/"));
    join(&page, "alice");

    // A message from server A, sent by a tutorial (v1) client.
    let mut zoe = client::connect(&server_a, "zoe");
    client::send(&mut zoe, "before the restart");
    page.wait_until(
        "the message from server A is shown",
        &message_shown("zoe", "before the restart"),
    );
    let before = shown_messages(&page);
    assert_eq!(before.len(), 1, "{before:#?}");
    let epoch_a = before[0].epoch.clone();

    // Stop server A. Its graceful shutdown closes the page's WebSocket (1001); zoe goes
    // first so the shutdown does not wait for a client that does not read.
    drop(zoe);
    drop(server_a);
    page.wait_until(
        "alice's page noticed the server going away by itself and is reconnecting",
        "document.getElementById('status').dataset.state === 'reconnecting'
         && document.getElementById('status').dataset.reconnects === '0'",
    );

    server_b = TestServer::start();
    proxy.set_target(server_b.addr);
    proxy.cut();
    // The page's backoff has grown with every failed attempt meanwhile; skip the wait with
    // Retry whenever it is counting down, so the 10 s budget is not spent waiting.
    page.wait_until(
        "alice's page reconnected to server B",
        "(() => {
            const status = document.getElementById('status');
            if (status.dataset.state === 'connected') return status.dataset.reconnects === '1';
            const retry = document.getElementById('retry-btn');
            if (!retry.hidden) retry.click();
            return false;
        })()",
    );
    page.wait_until(
        "the restart notice is shown",
        &notice_shown("gap", RESTART_NOTICE),
    );

    let mut zoe = client::connect(&server_b, "zoe");
    client::send(&mut zoe, "after the restart");
    page.wait_until(
        "the message from server B is shown",
        &message_shown("zoe", "after the restart"),
    );
    let after = shown_messages(&page);
    let texts: Vec<&str> = after.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["before the restart", "after the restart"],
        "{after:#?}"
    );
    // Ids start again at 1 after a restart: the page tells the two apart by the epoch.
    assert_eq!(
        after.iter().map(|m| m.id).collect::<Vec<_>>(),
        [Some(1), Some(1)],
        "{after:#?}"
    );
    assert_eq!(after[0].epoch, epoch_a, "{after:#?}");
    assert_ne!(after[1].epoch, epoch_a, "server B's epoch: {after:#?}");
    assert_eq!(
        page.eval("document.querySelectorAll('#messages .notice.gap').length"),
        json!(1),
        "the restart is announced once"
    );
    assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
}

#[test]
fn room_from_the_url_keeps_rooms_apart() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page (general)", "/");
    let dave = test.open("dave's page (lobby)", "/?room=lobby");
    dave.wait_until(
        "dave's page names the room from its URL",
        "document.getElementById('room-name').textContent === 'lobby'
         && document.getElementById('join-room').textContent === 'lobby'",
    );
    join(&alice, "alice");
    join(&dave, "dave");
    dave.wait_until(
        "dave is alone in the lobby",
        &users_are(&["dave"], Some("dave")),
    );
    assert_eq!(
        dave.eval("[document.getElementById('room-name').textContent, location.search]"),
        json!(["lobby", "?room=lobby"]),
        "dave's room after joining"
    );

    // alice's message is handled before dave sends; had it been sent to dave, it would
    // reach him before his own message comes back.
    send(&alice, "for general only");
    confirmed_id(&alice, "alice", "for general only");
    send(&dave, "for the lobby only");
    confirmed_id(&dave, "dave", "for the lobby only");
    send(&alice, "general marker");
    confirmed_id(&alice, "alice", "general marker");

    let texts = |page: &Page<'_>| -> Vec<String> {
        shown_messages(page).into_iter().map(|m| m.text).collect()
    };
    assert_eq!(texts(&dave), ["for the lobby only"], "dave's page (lobby)");
    assert_eq!(
        texts(&alice),
        ["for general only", "general marker"],
        "alice's page (general)"
    );
    assert_eq!(
        alice.eval(
            "[document.getElementById('room-name').textContent,
              document.getElementById('user-count').textContent,
              document.body.textContent.includes('dave')]"
        ),
        json!(["general", "1", false]),
        "alice's page must not know about the lobby"
    );
    for page in [&alice, &dave] {
        assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
    }
}

// ------------------------------------------------------------------------- helpers

/// One chat message (not a DM) as shown on a page, in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    id: Option<u64>,
    epoch: Option<String>,
    sender: String,
    text: String,
    pending: bool,
}

/// Sends `text` as a room message with Enter.
fn send(page: &Page<'_>, text: &str) {
    page.type_into("#messageInput", text);
    page.press_enter();
}

/// Waits until `sender`'s message `text` is shown with a server id (acknowledged, not
/// pending) and returns that id.
fn confirmed_id(page: &Page<'_>, sender: &str, text: &str) -> u64 {
    let find = format!(
        "Array.from(document.querySelectorAll('#messages .message[data-id]:not(.direct)'))
            .find(m => m.dataset.sender === {sender} && !m.classList.contains('pending')
                       && m.querySelector('.text')?.textContent === {text})",
        sender = js_string(sender),
        text = js_string(text),
    );
    page.wait_until(
        &format!("{sender}'s message {text:?} has its id"),
        &format!("{find} !== undefined"),
    );
    let id = page.eval(&format!("Number({find}.dataset.id)"));
    id.as_u64()
        .unwrap_or_else(|| panic!("data-id of {text:?} is not a whole number: {id}"))
}

/// Every chat message on the page (DMs excluded), in page order.
fn shown_messages(page: &Page<'_>) -> Vec<Shown> {
    let list = page.eval(
        "Array.from(document.querySelectorAll('#messages .message:not(.direct)')).map(m => ({
            id: m.dataset.id ?? null,
            epoch: m.dataset.epoch ?? null,
            sender: m.dataset.sender ?? '',
            text: m.querySelector('.text')?.textContent ?? '',
            pending: m.classList.contains('pending'),
        }))",
    );
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("message list is not an array: {list}"));
    items
        .iter()
        .map(|m| Shown {
            id: m["id"].as_str().map(|id| {
                id.parse()
                    .unwrap_or_else(|_| panic!("data-id is not a whole number: {m}"))
            }),
            epoch: m["epoch"].as_str().map(str::to_owned),
            sender: m["sender"].as_str().unwrap_or_default().to_owned(),
            text: m["text"].as_str().unwrap_or_default().to_owned(),
            pending: m["pending"] == Value::Bool(true),
        })
        .collect()
}

/// JS: the texts of one's own messages still waiting for their acknowledgement, in order.
fn pending_texts() -> String {
    "Array.from(document.querySelectorAll('#messages .message.own.pending[data-client-msg-id]'))
        .map(m => m.querySelector('.text')?.textContent)"
        .to_owned()
}

/// `[#typing text, data-typists]` (the attribute read as "" when absent).
fn typing_of(page: &Page<'_>) -> Value {
    page.eval(
        "[document.getElementById('typing').textContent,
          document.getElementById('typing').dataset.typists ?? '']",
    )
}

/// On a narrow screen the user list is a panel behind #users-toggle: opens it when
/// `selector` is not visible.
fn show_user_list(page: &Page<'_>, selector: &str) {
    let visible = format!(
        "(document.querySelector({})?.getClientRects().length ?? 0) > 0",
        js_string(selector)
    );
    if page.eval(&visible) != json!(true) {
        page.click("#users-toggle");
        page.wait_until("the user list panel is open", &visible);
    }
}

/// JS: the user list holds exactly `names` (in this order) and the count agrees;
/// `self_name`, when given, is the entry marked as oneself.
fn users_are(names: &[&str], self_name: Option<&str>) -> String {
    let names_json = Value::from(names.to_vec()).to_string();
    let self_check = self_name.map_or_else(
        || "true".to_owned(),
        |name| {
            format!(
                "Array.from(document.querySelectorAll('#users > li.self'))
                    .map(li => li.dataset.user).join('\\n') === {}",
                js_string(name)
            )
        },
    );
    format!(
        "JSON.stringify(Array.from(document.querySelectorAll('#users > li'))
            .map(li => li.dataset.user)) === {names}
         && document.getElementById('user-count').textContent.trim() === {count}
         && {self_check}",
        names = js_string(&names_json),
        count = js_string(&names.len().to_string()),
    )
}

/// JS: every `(sender, text)` of `messages` is shown.
fn all_shown(messages: &[(&str, &str)]) -> String {
    let parts: Vec<String> = messages
        .iter()
        .map(|(sender, text)| format!("({})", message_shown(sender, text)))
        .collect();
    parts.join(" && ")
}

/// JS: a direct message `from` → `to` with exactly `text`, labelled as direct, shown as
/// one's own (`own`) or as received.
fn direct_shown(from: &str, to: &str, text: &str, own: bool) -> String {
    format!(
        "Array.from(document.querySelectorAll('#messages .message.direct')).some(m =>
            m.dataset.from === {from} && m.dataset.to === {to}
            && m.classList.contains('own') === {own}
            && m.querySelector('.direct-label') !== null
            && m.querySelector('.text')?.textContent === {text})",
        from = js_string(from),
        to = js_string(to),
        text = js_string(text),
    )
}
