//! The browser over native TLS: two people chat in headless Chromium on a page loaded from
//! `https://`, so the page opens `wss://` (a browser refuses `ws://` from an https page) and
//! its `Origin` is `https://127.0.0.1:PORT`, which the server's Origin check must take as its
//! own. The certificate is a throwaway one; Chromium is told to ignore certificate errors,
//! for this test only.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;
#[path = "common/tls.rs"]
mod tls;

use browser_support::{join, message_shown, notice_shown, BrowserTest};
use chat_mio_server::Config;
use serde_json::json;
use tls::TestCert;

#[test]
fn two_people_chat_over_https_and_wss() {
    let cert = TestCert::new("browser");
    let Some(test) = BrowserTest::with_config_and_flags(
        Config {
            tls_cert: Some(cert.cert.clone()),
            tls_key: Some(cert.key.clone()),
            ..Config::default()
        },
        &["--ignore-certificate-errors"],
    ) else {
        return;
    };
    assert!(test.server.http_url("/").starts_with("https://"));
    let alice = test.open("alice's page", "/");
    let bob = test.open("bob's page", "/");
    assert_eq!(alice.eval("location.protocol"), json!("https:"));

    join(&alice, "alice");
    join(&bob, "bob");
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    alice.type_into("#messageInput", "hello over wss");
    alice.press_enter();
    bob.wait_until(
        "alice's message is shown",
        &message_shown("alice", "hello over wss"),
    );
    bob.type_into("#messageInput", "and back");
    bob.click("#send-btn");
    alice.wait_until("bob's answer is shown", &message_shown("bob", "and back"));
    bob.close();
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
