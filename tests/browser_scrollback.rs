//! The browser client's scroll-back in headless Chromium: a server that keeps messages in
//! SQLite holds more than its in-memory history, and the page fetches the older ones
//! (`history_before`, PROTOCOL.md) when the reader reaches the top of the list or presses
//! "Load older messages", until the beginning of the conversation. Also how the page shows
//! an own message the server delivered but could not store (`ack` with `"stored": false`).
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use browser_support::{join, js_string, BrowserTest, Page};
use chat_mio_server::Config;
use common::TestServer;
use serde_json::{json, Value};
use v2_client::{close, connect_v2, greeting, message_with_id, recv, send_all};

/// Messages in the room before the page joins.
const POSTED: u64 = 130;
/// Messages the server keeps in memory per room (the `history` frame's size).
const HISTORY: usize = 20;
/// What the reader's view may move by when older messages are put above it (rounding).
const JUMP_PX: f64 = 2.0;

#[test]
fn scrolling_up_loads_every_older_message_once_and_keeps_the_view() {
    let config = Config {
        history: HISTORY,
        rate_limit: 0.0,
        ..Config::default()
    };
    let Some(test) = BrowserTest::durable("scrollback", config) else {
        return;
    };
    let posted = post_stored(&test.server, "zoe", POSTED);
    let page = test.open("alice's page", "/");
    join(&page, "alice");

    // The history frame: the newest 20, and the way to older ones.
    page.wait_until(
        "the history's messages are shown",
        &format!("{SHOWN_IDS}.length === {HISTORY}"),
    );
    assert_eq!(
        shown(&page),
        posted[posted.len() - HISTORY..],
        "the history frame's messages"
    );
    assert_eq!(top_row(&page), json!([true, "Load older messages", false]));

    // Keyboard, no wheel: Enter on the button loads one page above, the view stays put.
    // (Focused without scrolling, so reaching the top cannot load a page by itself.)
    let anchor = anchor_of(
        &page,
        "document.getElementById('load-older').focus({ preventScroll: true })",
    );
    assert_eq!(page.eval("document.activeElement?.id"), json!("load-older"));
    page.press_enter();
    wait_loaded(&page, HISTORY + 50);
    assert_view_kept(&page, &anchor, "after Enter on Load older messages");

    // Scrolling to the top loads the next page, and the next, until the beginning.
    for round in 1.. {
        assert!(
            round <= 5,
            "still not at the beginning after {round} scrolls"
        );
        let count = shown(&page).len();
        let anchor = anchor_of(&page, SCROLL_TO_TOP);
        // The scroll handler has run (it was registered first): the request is out and
        // the row says so until the page arrives (a later task).
        assert_eq!(
            anchor["row"],
            json!(["Loading older messages\u{2026}", "true"]),
            "round {round}: the row while loading"
        );
        wait_loaded(&page, count + 1);
        assert_view_kept(&page, &anchor, &format!("after scroll {round}"));
        if top_row(&page)[2] == json!(true) {
            break;
        }
    }

    assert_eq!(
        shown(&page),
        posted,
        "every message exactly once, in id order"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#messages .message').length"),
        json!(POSTED),
        "no message without an id, none twice"
    );
    assert_eq!(
        top_row(&page),
        json!([false, "Load older messages", true]),
        "the beginning is shown instead of the button"
    );
    assert_eq!(
        page.eval(
            "document.getElementById('history-top') === document.getElementById('messages').firstElementChild
             && document.getElementById('history-begin').textContent"
        ),
        json!("Beginning of the conversation"),
        "the beginning marker heads the list"
    );
    assert_eq!(
        page.eval(SEPARATORS_CONSISTENT),
        json!(true),
        "day separators"
    );
    // The button had focus when it went away: focus stays in the list, not lost to <body>.
    assert_eq!(page.eval("document.activeElement?.id"), json!("messages"));

    // Nothing more is asked once at the beginning: scrolling to the top again changes nothing.
    page.eval(SCROLL_TO_TOP);
    assert_eq!(
        top_row(&page),
        json!([false, "Load older messages", true]),
        "no request after the beginning"
    );
    assert_eq!(shown(&page).len() as u64, POSTED);
    assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
}

#[test]
fn an_own_message_the_server_could_not_store_is_marked_not_saved() {
    let config = Config {
        rate_limit: 0.0,
        ..Config::default()
    };
    let Some(test) = BrowserTest::durable("not-saved", config) else {
        return;
    };
    let page = test.open("alice's page", "/");
    join(&page, "alice");
    page.type_into("#messageInput", "kept on disk");
    page.press_enter();
    let confirmed = "document.querySelector('#messages .message.own[data-id]:not(.pending)')";
    page.wait_until(
        "alice's message is confirmed",
        &format!("{confirmed} !== null"),
    );
    let id = page.eval(&format!("Number({confirmed}.dataset.id)"));

    // The real ack said `"stored": true` (a working disk): no note.
    assert_eq!(
        page.eval("document.querySelectorAll('#messages .save-note, #messages .not-saved').length"),
        json!(0),
        "a stored message carries no note"
    );

    // A failing disk cannot be had in this process (the server is a thread of the test),
    // so the page gets the ack such a server sends: the same message, `"stored": false`.
    let ack = json!({ "type": "ack", "client_msg_id": "c-not-on-disk", "id": id,
                      "stored": false, "timestamp": "2026-11-21T20:53:01.012Z" });
    page.eval(&format!(
        "window.Chat.handleFrame({})",
        js_string(&ack.to_string())
    ));
    assert_eq!(
        page.eval(&format!(
            "(() => {{ const m = {confirmed}; const note = m.querySelector('.save-note');
                return [m.classList.contains('not-saved'), m.classList.contains('failed'),
                        m.classList.contains('pending'),
                        note?.querySelector('.save-note-text')?.textContent,
                        (note?.title ?? '').includes('could not save'),
                        m.querySelectorAll('button').length,
                        document.querySelectorAll('#messages .message').length]; }})()"
        )),
        json!([true, false, false, "Not saved", true, 0, 1]),
        "not saved: marked, with an explanation, not failed, no Retry, not sent again"
    );
    assert_eq!(page.errors(), Vec::<String>::new(), "page errors");
}

// ------------------------------------------------------------------------- helpers

/// JS: the ids of the shown chat messages, in page order.
const SHOWN_IDS: &str = "Array.from(document.querySelectorAll('#messages .message[data-id]'))
    .map(m => Number(m.dataset.id))";

/// JS: scrolls the list to its top and resolves once its scroll handlers have run.
const SCROLL_TO_TOP: &str = "new Promise(resolve => {
    const list = document.getElementById('messages');
    if (list.scrollTop === 0) { resolve(false); return; }
    list.addEventListener('scroll', () => resolve(true), { once: true });
    list.scrollTop = 0;
})";

/// JS: every day separator sits between two dated items of different days, and every two
/// neighbouring dated items of different days have exactly one between them.
const SEPARATORS_CONSISTENT: &str = "(() => {
    const items = Array.from(document.getElementById('messages').children)
        .filter(el => el.hasAttribute('data-day'));
    let seps = 0, prev = null;
    for (const el of items) {
        if (el.classList.contains('day-separator')) { seps += 1; continue; }
        if (prev) {
            const differ = prev.dataset.day !== el.dataset.day;
            if (differ !== (seps === 1) || seps > 1) return false;
        } else if (seps > 0) return false;
        seps = 0; prev = el;
    }
    return seps === 0;
})()";

/// `(id, text)` of every chat message shown, in page order.
fn shown(page: &Page<'_>) -> Vec<(u64, String)> {
    let list = page.eval(
        "Array.from(document.querySelectorAll('#messages .message[data-id]'))
            .map(m => [Number(m.dataset.id), m.querySelector('.text')?.textContent ?? ''])",
    );
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| {
            let id = m[0].as_u64().unwrap_or_else(|| panic!("bad id: {m}"));
            (id, m[1].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// `[button shown, button text, beginning shown]` of the list's top row.
fn top_row(page: &Page<'_>) -> Value {
    page.eval(
        "[!document.getElementById('load-older').hidden,
          document.getElementById('load-older').textContent,
          !document.getElementById('history-begin').hidden]",
    )
}

/// Runs `action` (JS, awaited), then returns the first shown message's id and its distance
/// from the top of the viewport, and the top row's `[text, aria-disabled]`.
fn anchor_of(page: &Page<'_>, action: &str) -> Value {
    page.eval(&format!(
        "(async () => {{
            await ({action});
            const m = document.querySelector('#messages .message[data-id]');
            const button = document.getElementById('load-older');
            return {{ id: m.dataset.id, top: m.getBoundingClientRect().top,
                      row: [button.textContent, button.getAttribute('aria-disabled')] }};
        }})()"
    ))
}

/// Waits until no request is in flight and at least `count` messages are shown.
fn wait_loaded(page: &Page<'_>, count: usize) {
    page.wait_until(
        &format!("at least {count} messages are shown and nothing is loading"),
        &format!(
            "{SHOWN_IDS}.length >= {count}
             && !document.getElementById('load-older').hasAttribute('aria-disabled')"
        ),
    );
}

/// The message that was first before a page was put above it has not moved on screen.
fn assert_view_kept(page: &Page<'_>, anchor: &Value, when: &str) {
    let id = anchor["id"].as_str().expect("the anchor's id");
    let top = page.eval(&format!(
        "document.querySelector('#messages .message[data-id=\"{id}\"]').getBoundingClientRect().top"
    ));
    let (before, after) = (
        anchor["top"].as_f64().expect("a number"),
        top.as_f64().expect("a number"),
    );
    assert!(
        (after - before).abs() <= JUMP_PX,
        "{when}: message {id} moved from {before} to {after} px"
    );
    assert_ne!(
        page.eval("document.querySelector('#messages .message[data-id]').dataset.id"),
        json!(id),
        "{when}: older messages were put above message {id}"
    );
}

/// Posts `count` messages as `name` through a v2 connection and waits until the server has
/// stored every one (`ack` with `"stored": true`). Returns `(id, text)` of each, in order.
fn post_stored(server: &TestServer, name: &str, count: u64) -> Vec<(u64, String)> {
    let mut client = connect_v2(server, name, "");
    greeting(&mut client, name);
    let texts: Vec<String> = (1..=count).map(|i| format!("message {i:03}")).collect();
    send_all(
        &mut client,
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| message_with_id(text, &format!("k{i}")).to_string()),
    );
    let mut ids = vec![None; texts.len()];
    while ids.iter().any(Option::is_none) {
        let frame = recv(&mut client);
        if frame["type"] != "ack" {
            continue;
        }
        assert_eq!(frame["stored"], true, "not stored: {frame}");
        let key = frame["client_msg_id"].as_str().expect("an acked key");
        let i: usize = key[1..].parse().expect("one of the keys sent");
        ids[i] = Some(frame["id"].as_u64().expect("an id"));
    }
    close(client);
    ids.into_iter()
        .map(|id| id.expect("every message acked"))
        .zip(texts)
        .collect()
}
