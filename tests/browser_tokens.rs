//! The browser client with `--auth token` in headless Chromium: the page takes the signed token
//! its app gives it in the address (`#token=`), uses it on the WebSocket, and takes it out of
//! the address bar; when the token expires on a live connection (close 4001) the page says the
//! session expired and stops reconnecting with a token that can only be refused.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

use std::io::Write as _;
use std::time::Duration;

use browser_support::{join, message_shown, notice_shown, BrowserTest};
use chat_mio_server::{AuthMode, Config};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes, for the browser";

fn token(sub: &str, exp_in: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_in;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign a test token")
}

fn token_test(name: &str) -> Option<(BrowserTest, std::path::PathBuf)> {
    let secret =
        std::env::temp_dir().join(format!("chat-browser-token-{name}-{}", std::process::id()));
    std::fs::File::create(&secret)
        .and_then(|mut f| f.write_all(SECRET))
        .expect("write the secret");
    let test = BrowserTest::with_config(Config {
        auth: AuthMode::Token,
        jwt_secret_file: Some(secret.clone()),
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..Config::default()
    });
    if test.is_none() {
        let _ = std::fs::remove_file(&secret);
    }
    test.map(|t| (t, secret))
}

#[test]
fn the_page_chats_with_the_token_its_app_gave_it_and_hides_it() {
    let Some((test, secret)) = token_test("chat") else {
        return;
    };
    let page = test.open("alice's page", &format!("/#token={}", token("alice", 3600)));
    assert_eq!(
        page.eval("window.location.href.includes('token')"),
        json!(false),
        "the token stayed in the address bar"
    );
    join(&page, "alice");
    page.type_into("#messageInput", "signed in");
    page.press_enter();
    page.wait_until(
        "alice's message is shown",
        &message_shown("alice", "signed in"),
    );
    drop(page);
    drop(test);
    let _ = std::fs::remove_file(secret);
}

#[test]
fn an_expired_token_ends_the_session_with_a_clear_notice() {
    let Some((test, secret)) = token_test("expiry") else {
        return;
    };
    // Past its exp, inside the server's 30 s leeway: about two seconds of chat left.
    let page = test.open("alice's page", &format!("/#token={}", token("alice", -28)));
    join(&page, "alice");
    page.wait_until(
        "the page says the session expired",
        &notice_shown("error", "Your session expired"),
    );
    assert_eq!(
        page.eval("document.getElementById('status')?.dataset.state"),
        json!("disconnected"),
        "the page keeps reconnecting with a token that can only be refused"
    );
    drop(page);
    drop(test);
    let _ = std::fs::remove_file(secret);
}
