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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use browser_support::{
    join, js_string, message_shown, notice_shown, skip_or_fail, BrowserTest, ColorScheme, Page,
};
use chat_mio_server::Config;
use serde_json::{json, Value};

/// The rule sets of WCAG 2.0 and 2.1, levels A and AA.
const WCAG_TAGS: &str = "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']";

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

/// axe-core's browser build, or `None` (after the skip banner) when it is not installed.
fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            skip_or_fail(&format!(
                "axe-core not found at {} ({e}); run `npm ci` at the repository root",
                path.display()
            ));
            None
        }
    }
}

/// Runs axe on `page` rendered in `scheme` and returns one readable paragraph per violation.
fn audit(page: &Page<'_>, axe: &str, scheme: ColorScheme, when: &str) -> Vec<String> {
    page.set_color_scheme(scheme);
    page.wait_until(
        &format!("the page is in the {} scheme", scheme.name()),
        &format!(
            "matchMedia('(prefers-color-scheme: {})').matches",
            scheme.name()
        ),
    );
    // Colours fade between schemes; axe must see the final ones.
    page.wait_until(
        "no transition is running",
        "document.getAnimations().length === 0",
    );
    if page.eval("typeof window.axe === 'object'") != Value::Bool(true) {
        page.eval(&format!("{axe};\ntrue"));
    }
    let result = page.eval(&format!(
        "axe.run(document, {{
            runOnly: {{ type: 'tag', values: {WCAG_TAGS} }},
            resultTypes: ['violations'],
        }}).then(r => r.violations.map(v => ({{
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({{
                target: n.target.join(' '),
                summary: n.failureSummary,
                contrast: n.any.concat(n.all, n.none)
                    .map(c => c.data).filter(d => d && d.contrastRatio !== undefined)
                    .map(d => `${{d.fgColor}} on ${{d.bgColor}}: ${{d.contrastRatio}}:1 (needs ${{d.expectedContrastRatio}})`),
            }})),
        }})))"
    ));
    let violations = result
        .as_array()
        .unwrap_or_else(|| panic!("axe returned no list: {result}"));
    violations
        .iter()
        .map(|v| {
            describe(
                v,
                &format!("{}, {} scheme, {when}", page.name(), scheme.name()),
            )
        })
        .collect()
}

/// One violation as text: rule, impact, where, and each element with its contrast figures.
fn describe(violation: &Value, context: &str) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "[{impact}] {id}: {help} ({context})\n",
        impact = text(&violation["impact"]),
        id = text(&violation["id"]),
        help = text(&violation["help"]),
    );
    for node in violation["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", text(&node["target"])));
        for figure in node["contrast"].as_array().into_iter().flatten() {
            out.push_str(&format!("      {}\n", text(figure)));
        }
        if node["contrast"].as_array().is_none_or(Vec::is_empty) {
            for line in text(&node["summary"]).lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    out
}
