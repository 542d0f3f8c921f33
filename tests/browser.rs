//! End-to-end test through a real browser: two people chat using the served page in
//! headless Chromium, driven over the Chrome DevTools Protocol.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

use browser_support::{join, message_shown, notice_shown, BrowserTest, Page};
use serde_json::json;

/// A classic injection probe: it must arrive as text, never as an element.
const XSS_PROBE: &str = "<img src=x onerror=alert(1)>";

#[test]
fn two_people_chat_in_the_browser() {
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");

    join(&alice, "alice");
    join(&bob, "bob");
    // The server announces a join to everyone once the joiner is registered; waiting for
    // it means bob is certain to receive what alice sends next.
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );

    // alice sends with Enter; bob sees it with her name and a time.
    alice.type_into("#messageInput", "hello bob");
    alice.press_enter();
    bob.wait_until(
        "alice's message is shown",
        &message_shown("alice", "hello bob"),
    );

    // bob sends markup with the send button; alice must see it as literal text.
    trap_alerts(&alice);
    bob.type_into("#messageInput", XSS_PROBE);
    bob.click("#send-btn");
    alice.wait_until(
        "bob's markup message is shown as text",
        &message_shown("bob", XSS_PROBE),
    );
    assert_eq!(
        alice.eval("document.querySelector('#messages img') === null"),
        json!(true),
        "bob's message was rendered as markup on alice's page"
    );

    // bob closes his tab; alice is told he left.
    bob.close();
    alice.wait_until(
        "bob's leaving is shown",
        &notice_shown("leave", "bob left the chat"),
    );

    assert_eq!(
        alice.eval("window.alertCalls"),
        json!(0),
        "alert() ran on alice's page"
    );
    assert_eq!(
        alice.errors(),
        Vec::<String>::new(),
        "errors on alice's page"
    );
}

/// Replaces `alert` with a counter, so a successful injection is detected without a modal
/// dialog blocking the page (and with it every later evaluation).
fn trap_alerts(page: &Page<'_>) {
    page.eval("window.alertCalls = 0; window.alert = () => { window.alertCalls += 1; }; true");
}
