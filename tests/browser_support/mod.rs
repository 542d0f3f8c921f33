//! Drives a real headless Chromium for the browser end-to-end tests.
//!
//! This module is the thin layer the tests read like scenarios with:
//!
//! - [`BrowserTest`]: the one fixture, a chat server plus a browser whose pages load from
//!   it, dropped in the right order (browser first, then server);
//! - [`Page`]: one tab as a person uses it (`type_into`, `click`, `press_enter`), with
//!   `eval` and `wait_until` for what the page shows, and `set_color_scheme`;
//! - [`join`], [`message_shown`], [`notice_shown`]: what a person does and sees on the
//!   chat page;
//! - [`add_user`]: an account for `--auth accounts`, added with the real binary;
//!   [`axe`]: accessibility audits.
//!
//! Missing Chromium: the test is skipped loudly, or fails with `CHAT_REQUIRE_BROWSER=1`.
//!
//! # Why a hand-written DevTools client (`cdp.rs`, `chromium.rs`)
//!
//! `headless_chrome` 1.0.22 was tried (2026-11-30, Chromium 156) and works here, but every
//! DevTools call takes about 100 ms: its reader thread holds the socket's mutex during a
//! blocking read with a 100 ms timeout, and a command waits for that lock (upstream issue
//! rust-headless-chrome#446, open since 2024). Measured on the 2-core VM, same tests, same
//! machine: 20 `Runtime.evaluate` calls 2.1 s (105 ms each) against a few ms here;
//! `tests/browser.rs` 7.7 s instead of 2.2 s, `tests/browser_v2.rs` 29.7 s instead of
//! 11.5 s (2.6x), and `wait_until` could poll only every 150 ms. It would also add 80
//! crates to the test build (ring, rustls, ureq pulled in by its protocol generator, a
//! second tungstenite). `fantoccini` needs `chromedriver`, tokio, one WebDriver session
//! (one Chromium) per person, and has no typed access to the DevTools commands the tests
//! use (`Emulation.setEmulatedMedia`, `Emulation.setFocusEmulationEnabled`,
//! `Input.insertText`). The client here is one socket with flattened sessions, no
//! background thread, and reuses the tungstenite and serde_json the tests already build.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

mod accounts;
pub mod axe;
mod browser;
mod cdp;
mod chromium;
mod fixture;

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

pub use accounts::add_user;
pub use browser::{Browser, ColorScheme, Page};
pub use fixture::{browser_or_skip, browser_with_flags_or_skip, BrowserTest};

/// Where Debian's `chromium` package puts the browser.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Whether a missing browser (or other browser-test prerequisite) fails the run.
pub fn browser_required() -> bool {
    std::env::var("CHAT_REQUIRE_BROWSER").as_deref() == Ok("1")
}

/// Skips the test with a banner nobody can miss, or panics when `CHAT_REQUIRE_BROWSER=1`
/// (for CI, so a missing install cannot pass silently).
pub fn skip_or_fail(message: &str) {
    if browser_required() {
        panic!("{message} (CHAT_REQUIRE_BROWSER=1 is set)");
    }
    // Written to the process's stderr directly: `eprintln!` output of a passing test is
    // captured by the test harness, and this must be seen.
    let rule = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED: {message}; set CHAT_REQUIRE_BROWSER=1 to make this fatal\n{rule}\n"
    );
}

/// The Chromium to test with: `$CHROMIUM_PATH`, else `/usr/bin/chromium`. When the default
/// is missing the test is skipped (see [`skip_or_fail`]). An explicit `CHROMIUM_PATH` that
/// does not exist is a configuration mistake and always fails.
pub fn chromium_or_skip() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM_PATH") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHROMIUM_PATH={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let path = PathBuf::from(DEFAULT_CHROMIUM);
    if path.is_file() {
        return Some(path);
    }
    skip_or_fail(&format!("chromium not found at {DEFAULT_CHROMIUM}"));
    None
}

/// `s` as a JavaScript string literal (JSON strings are valid JS).
pub fn js_string(s: &str) -> String {
    Value::from(s).to_string()
}

// Scenario helpers shared by the browser tests: what a person does and sees on the chat page.

/// Types `name` into the username field, clicks Connect and waits for "Connected".
pub fn join(page: &Page<'_>, name: &str) {
    page.type_into("#username", name);
    page.click("#connect-btn");
    page.wait_until(
        &format!("{name} is connected"),
        "document.getElementById('status')?.dataset.state === 'connected'
         && document.getElementById('status-text')?.textContent.trim() === 'Connected'",
    );
}

/// JS: a chat message from `sender` whose text is exactly `text`, with a visible time
/// whose `datetime` attribute is a parseable date.
pub fn message_shown(sender: &str, text: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('#messages .message:not(.direct)')).some(m => {{
            const time = m.querySelector('time.time');
            return m.querySelector('.sender')?.textContent === {sender}
                && m.querySelector('.text')?.textContent === {text}
                && time !== null && time.textContent.trim() !== ''
                && !Number.isNaN(Date.parse(time.getAttribute('datetime') ?? ''));
        }})",
        sender = js_string(sender),
        text = js_string(text),
    )
}

/// JS: a `.notice.{kind}` whose text contains `text`.
pub fn notice_shown(kind: &str, text: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll({selector}))
            .some(n => n.textContent.includes({text}))",
        selector = js_string(&format!("#messages .notice.{kind}")),
        text = js_string(text),
    )
}
