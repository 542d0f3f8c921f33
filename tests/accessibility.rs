//! An accessibility audit of the chat page in headless Chromium with axe-core (the WCAG 2.1
//! A and AA rules), before and after connecting, in the light and the dark colour scheme.
//! After connecting the page shows what a conversation shows: join notices, someone else's
//! message, one's own, the typing line and the user list. A second test audits scroll-back
//! (a server that keeps messages in SQLite): the "Load older messages" row with its failure
//! note, then older messages loaded up to "Beginning of the conversation", with an own
//! message marked "Not saved".
//!
//! Any violation fails the test, listed with its impact, the elements and, for contrast,
//! the colours and the ratio.
//!
//! axe-core comes from npm (`npm ci` at the repository root installs the pinned version
//! into `node_modules/`). Without it, or without Chromium, the test is skipped loudly, or
//! fails when `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

use std::time::{Duration, Instant};

use browser_support::axe::{audit, axe_source};
use browser_support::{
    join, js_string, message_shown, notice_shown, BrowserTest, ColorScheme, Page,
};
use chat_mio_server::Config;
use serde_json::{json, Value};

#[test]
fn chat_page_has_no_accessibility_violations() {
    let Some(axe) = axe_source() else {
        return;
    };
    let Some(test) = BrowserTest::start() else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");

    let mut report = Vec::new();
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(&alice, &axe, scheme, "before connecting"));
    }

    join(&alice, "alice");
    join(&bob, "bob");
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    bob.type_into("#messageInput", "hello alice");
    bob.press_enter();
    alice.wait_until(
        "bob's message is shown",
        &message_shown("bob", "hello alice"),
    );
    alice.type_into("#messageInput", "hi bob");
    alice.press_enter();
    alice.wait_until(
        "alice's own message is confirmed",
        "document.querySelector('#messages .message.own[data-id]') !== null",
    );
    alice.wait_until(
        "bob is in alice's user list",
        "document.querySelectorAll('#users > li').length === 2",
    );

    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        show_typing(&bob, &alice);
        report.extend(audit(&alice, &axe, scheme, "connected"));
    }

    assert!(
        report.is_empty(),
        "accessibility violations (axe-core, WCAG 2.1 A/AA):\n\n{}",
        report.join("\n")
    );
    for page in [&alice, &bob] {
        assert_eq!(
            page.errors(),
            Vec::<String>::new(),
            "{} errors",
            page.name()
        );
    }
}

#[test]
fn scrolled_back_page_has_no_accessibility_violations() {
    let Some(axe) = axe_source() else {
        return;
    };
    let config = Config {
        history: 12,
        ..Config::default()
    };
    let Some(test) = BrowserTest::durable("a11y-scrollback", config) else {
        return;
    };
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");
    join(&alice, "alice");
    for i in 1..=16 {
        alice.type_into("#messageInput", &format!("earlier {i}"));
        alice.press_enter();
        alice.wait_until(
            "alice's message is confirmed",
            &format!(
                "document.querySelectorAll('#messages .message.own[data-id]:not(.pending)').length === {i}"
            ),
        );
    }
    // More than fit on bob's screen: a history that fits would fetch older ones by itself.
    join(&bob, "bob");
    bob.wait_until(
        "bob's page shows the history and the way to older messages",
        "document.querySelectorAll('#messages .message[data-id]').length === 12
         && !document.getElementById('load-older').hidden
         && !document.getElementById('load-older').hasAttribute('aria-disabled')",
    );

    // A refused request (as a server whose disk cannot be read answers): the row says so.
    // The error frame is handed to the page right after the click, before any answer.
    let error = json!({ "type": "error", "client_id": "bob", "code": "store_unavailable",
                        "message": "history is unavailable", "timestamp": "2026-11-21T20:53:01.012Z" });
    bob.eval(&format!(
        "document.getElementById('load-older').click();
         window.Chat.handleFrame({})",
        js_string(&error.to_string())
    ));
    assert_eq!(
        bob.eval("!document.getElementById('history-note').hidden"),
        Value::Bool(true),
        "the failure note is shown"
    );
    let mut report = Vec::new();
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(
            &bob,
            &axe,
            scheme,
            "older messages could not be loaded",
        ));
    }

    bob.type_into("#messageInput", "mine");
    bob.press_enter();
    let own = "document.querySelector('#messages .message.own[data-id]:not(.pending)')";
    bob.wait_until("bob's message is confirmed", &format!("{own} !== null"));
    let ack = json!({ "type": "ack", "client_msg_id": "c-1", "stored": false,
                      "id": bob.eval(&format!("Number({own}.dataset.id)")),
                      "timestamp": "2026-11-21T20:53:01.012Z" });
    bob.eval(&format!(
        "window.Chat.handleFrame({})",
        js_string(&ack.to_string())
    ));
    bob.wait_until(
        "bob's message is marked not saved",
        "document.querySelectorAll('#messages .save-note').length === 1",
    );
    bob.click("#load-older");
    bob.wait_until(
        "every older message is loaded, up to the beginning",
        "document.querySelectorAll('#messages .message[data-id]').length === 17
         && !document.getElementById('history-begin').hidden",
    );
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(&bob, &axe, scheme, "scrolled back to the beginning"));
    }

    assert!(
        report.is_empty(),
        "accessibility violations (axe-core, WCAG 2.1 A/AA):\n\n{}",
        report.join("\n")
    );
    for page in [&alice, &bob] {
        assert_eq!(
            page.errors(),
            Vec::<String>::new(),
            "{} errors",
            page.name()
        );
    }
}

/// Makes `typist` type until `reader` shows it typing. A typist is shown for a few seconds
/// only, and a page sends at most one typing notice every two seconds, so one keystroke
/// right after the last notice would not be enough.
fn show_typing(typist: &Page<'_>, reader: &Page<'_>) {
    let shown = "document.getElementById('typing').textContent.endsWith('is typing\u{2026}')";
    let deadline = Instant::now() + Duration::from_secs(10);
    for round in 0.. {
        typist.type_into("#messageInput", &format!("still typing {round}"));
        if reader.eval(shown) == Value::Bool(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never showed {} typing",
            reader.name(),
            typist.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
