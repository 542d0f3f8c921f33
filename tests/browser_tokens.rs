//! The browser client with `--auth token` in headless Chromium: the page takes the signed token
//! its app gives it in the address (`#token=`), uses it on the WebSocket, and takes it out of
//! the address bar; when the token expires on a live connection (close 4001) the page says the
//! session expired and stops reconnecting with a token that can only be refused. An admin's
//! page deletes a message (gone from everyone's page) and kicks a user (whose page says why).
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
    signed(json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + exp_in}))
}

fn admin_token(sub: &str) -> String {
    signed(json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 3600, "role": "admin"}))
}

fn signed(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
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
    // Past its exp, inside the server's 30 s leeway: about five seconds of chat left. (Not
    // `join`, which waits to see "Connected": on a slow machine the session may end first.)
    let page = test.open("alice's page", &format!("/#token={}", token("alice", -25)));
    page.type_into("#username", "alice");
    page.click("#connect-btn");
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

#[test]
fn an_admin_deletes_a_message_and_kicks_its_author_from_the_page() {
    let Some((test, secret)) = token_test("moderation") else {
        return;
    };
    let admin = test.open(
        "the admin's page",
        &format!("/#token={}", admin_token("ada")),
    );
    let bob = test.open("bob's page", &format!("/#token={}", token("bob", 3600)));
    join(&admin, "ada");
    join(&bob, "bob");
    bob.type_into("#messageInput", "buy cheap pills");
    bob.press_enter();
    admin.wait_until(
        "bob's message is shown",
        &message_shown("bob", "buy cheap pills"),
    );
    assert_eq!(
        bob.eval("document.querySelectorAll('[data-action=delete], [data-mod]').length"),
        json!(0),
        "a page without an admin token offers no moderation"
    );

    // The admin's page answers its confirm and prompt dialogs by itself.
    admin.eval("window.confirm = () => true; window.prompt = () => 'spam'; true");
    admin.eval(
        "Array.from(document.querySelectorAll('#messages .message'))
            .find(m => m.querySelector('.text')?.textContent === 'buy cheap pills')
            .querySelector('[data-action=delete]').click(); true",
    );
    let deleted = "Array.from(document.querySelectorAll('#messages .message.deleted'))
        .some(m => m.querySelector('.sender')?.textContent === 'bob'
            && m.querySelector('.text')?.textContent === 'This message was deleted.')";
    bob.wait_until("bob's page shows the message deleted", deleted);
    admin.wait_until("the admin's page shows it deleted", deleted);
    assert_eq!(
        bob.eval("document.getElementById('messages').textContent.includes('buy cheap pills')"),
        json!(false),
        "the text is still on bob's page"
    );

    admin.wait_until(
        "bob is in the admin's user list with a Kick button",
        "document.querySelector('#users li[data-user=\"bob\"] [data-mod=kick]') !== null",
    );
    admin.eval(
        "document.querySelector('#users li[data-user=\"bob\"] [data-mod=kick]').click(); true",
    );
    bob.wait_until(
        "bob's page says why he was removed",
        &notice_shown("error", "Kicked by an admin: spam"),
    );
    assert_eq!(
        bob.eval("document.getElementById('status')?.dataset.state"),
        json!("disconnected"),
        "a kicked page reconnects by itself"
    );
    drop((admin, bob));
    drop(test);
    let _ = std::fs::remove_file(secret);
}
