//! The browser client with built-in accounts (`--auth accounts`) in headless Chromium. The
//! accounts are added to a fresh data directory as `chat-mio-server user add` adds them
//! (`browser_support::add_user`), and the server runs on it in accounts mode. The page asks
//! `GET /session`, shows the login form, says so inline when the password is wrong (and
//! opens no connection), logs in and chats as the session's user, keeps the session over a
//! reload (the cookie), and after Log out shows the form again; the old session's cookie is
//! then worth nothing, in this tab or another one. A page whose session was logged out in
//! another tab is closed by the server and shows the form instead of retrying. Guessing
//! passwords ends in the throttle's refusal, with the wait. An admin account moderates from
//! the page as an admin token does. The login form passes the axe-core audit.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

use std::time::Duration;

use browser_support::axe::{audit, axe_source};
use browser_support::{
    add_user, js_string, message_shown, notice_shown, BrowserTest, ColorScheme, Page,
};
use chat_mio_server::{AuthMode, Config};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// The name of the session cookie (the server's contract).
const COOKIE: &str = "chat_session";

/// A server in accounts mode on a fresh database holding `alice` and the admin `ada`.
fn accounts_test(name: &str) -> Option<BrowserTest> {
    let config = Config {
        auth: AuthMode::Accounts,
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..Config::default()
    };
    BrowserTest::durable_with(name, config, |dir| {
        add_user(dir, "alice", PASSWORD, false);
        add_user(dir, "ada", PASSWORD, true);
    })
}

/// JS: the login form is what the page shows (no name form, no conversation).
const LOGIN_FORM_SHOWN: &str = "!document.getElementById('login-section').hidden
    && document.getElementById('username-section').hidden
    && document.getElementById('chat-section').hidden
    && document.getElementById('account').hidden";

/// JS: the page is connected as `name`, and says who is logged in.
fn connected_as(name: &str) -> String {
    format!(
        "document.getElementById('status')?.dataset.state === 'connected'
         && document.getElementById('login-section').hidden
         && !document.getElementById('account').hidden
         && document.getElementById('account-name').textContent === {name}
         && window.Chat.state.username === {name}",
        name = js_string(name)
    )
}

/// Fills in the login form and submits it with the button.
fn log_in(page: &Page<'_>, name: &str, password: &str) {
    page.type_into("#login-name", name);
    page.type_into("#login-password", password);
    page.click("#login-btn");
}

/// Waits for the login form, logs in as `name` and waits until the page is connected.
fn log_in_and_join(page: &Page<'_>, name: &str) {
    page.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    log_in(page, name, PASSWORD);
    page.wait_until(
        &format!("{name} is logged in and connected"),
        &connected_as(name),
    );
}

/// A counter of the server's `/metrics`, read through `page` (same origin).
fn metric(page: &Page<'_>, name: &str) -> u64 {
    let text = page.eval("fetch('/metrics', { cache: 'no-store' }).then(r => r.text())");
    let text = text.as_str().expect("/metrics is text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The status of `GET /session` from `page`, with whatever cookie its browser context has.
fn session_status(page: &Page<'_>) -> Value {
    page.eval("fetch('/session', { cache: 'no-store' }).then(r => r.status)")
}

/// JS: whether a WebSocket to `/ws/{name}` from this page opens (`"open"`) or is refused
/// (`"closed"`), with the cookie the browser sends by itself.
fn websocket_outcome(name: &str) -> String {
    format!(
        "new Promise(resolve => {{
            const ws = new WebSocket(`ws://${{location.host}}/ws/${{encodeURIComponent({name})}}`, ['chat.v2']);
            ws.onopen = () => {{ ws.close(); resolve('open'); }};
            ws.onclose = () => resolve('closed');
        }})",
        name = js_string(name)
    )
}

#[test]
fn a_person_logs_in_chats_reloads_and_logs_out() {
    let Some(test) = accounts_test("login") else {
        return;
    };
    let page = test.open("alice's page", "/");
    page.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    page.wait_until(
        "the name field has the focus",
        "document.activeElement?.id === 'login-name'",
    );

    // A wrong password: said inline, and no connection is even tried.
    log_in(&page, "alice", "not the password");
    page.wait_until(
        "the page says the password is wrong",
        "!document.getElementById('login-error').hidden
         && document.getElementById('login-error').textContent === 'Wrong name or password'",
    );
    assert_eq!(
        page.eval("document.activeElement?.id"),
        json!("login-password"),
        "after a wrong password the focus is on the password"
    );
    assert_eq!(
        page.eval(LOGIN_FORM_SHOWN),
        json!(true),
        "the login form is gone"
    );
    assert_eq!(
        page.eval("window.Chat.state.ws === null && window.Chat.state.account === null"),
        json!(true),
        "the page opened a socket without a session"
    );
    assert_eq!(
        metric(&page, "chat_websockets_total"),
        0,
        "a WebSocket was opened"
    );

    // The right password, submitted with Enter: logged in and connected as alice.
    page.type_into("#login-password", PASSWORD);
    page.press_enter();
    page.wait_until("alice is logged in and connected", &connected_as("alice"));
    assert_eq!(
        page.eval("document.getElementById('login-password').value"),
        json!(""),
        "the password stays in the form"
    );
    assert_eq!(
        page.eval("document.getElementById('username').readOnly"),
        json!(true),
        "the name can be edited in accounts mode"
    );
    page.type_into("#messageInput", "hello from an account");
    page.press_enter();
    page.wait_until(
        "alice's message is shown",
        &message_shown("alice", "hello from an account"),
    );

    // The session is an HttpOnly, SameSite=Strict cookie the page's script cannot read.
    let url = test.server.http_url("/");
    let cookie = page
        .cookies(&url)
        .into_iter()
        .find(|c| c["name"] == COOKIE)
        .unwrap_or_else(|| panic!("no {COOKIE} cookie after logging in"));
    assert_eq!(cookie["httpOnly"], json!(true), "{cookie}");
    assert_eq!(cookie["sameSite"], json!("Strict"), "{cookie}");
    assert_eq!(
        page.eval(&format!("document.cookie.includes({})", js_string(COOKIE))),
        json!(false),
        "the page's script can read the session cookie"
    );

    // A reload keeps the session: straight back into the room, with its history.
    page.reload();
    page.wait_until(
        "alice is connected again after the reload",
        &connected_as("alice"),
    );
    page.wait_until(
        "the room's history is shown after the reload",
        &message_shown("alice", "hello from an account"),
    );

    // A second tab (another browser context given the same cookie) is logged in too.
    let other_tab = test.open("alice's second tab", "/");
    other_tab.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    other_tab.set_cookie(&url, &cookie);
    other_tab.reload();
    other_tab.wait_until(
        "the second tab is connected with the same session",
        &connected_as("alice"),
    );

    // Log out: the form again, no socket, no reconnecting, the session gone on the server.
    page.click("#logout-btn");
    page.wait_until(
        "the login form is shown after logging out",
        LOGIN_FORM_SHOWN,
    );
    page.wait_until(
        "the name field has the focus after logging out",
        "document.activeElement?.id === 'login-name'",
    );
    assert_eq!(
        page.eval(
            "window.Chat.state.ws === null && window.Chat.state.reconnect.timer === null
             && document.getElementById('status').dataset.state === 'disconnected'
             && document.getElementById('messages').querySelectorAll('.message').length === 0"
        ),
        json!(true),
        "the page still has (or is getting back) a connection or the conversation"
    );
    assert_eq!(session_status(&page), json!(401), "still logged in");
    assert!(
        page.cookies(&url).iter().all(|c| c["name"] != COOKIE),
        "the session cookie is still in the browser"
    );

    // The other tab's session was the same one. The server leaves its live socket open
    // (it checks the session at the upgrade); once the socket closes (dropped here, as a
    // network hiccup would) the tab finds the session gone and shows the login form
    // rather than reconnecting.
    other_tab.eval("window.Chat.state.ws?.close(); true");
    other_tab.wait_until("the second tab shows the login form", LOGIN_FORM_SHOWN);
    other_tab.wait_until(
        "the second tab says why",
        "document.getElementById('login-error').textContent.includes('session has ended')",
    );
    assert_eq!(
        other_tab
            .eval("window.Chat.state.ws === null && window.Chat.state.reconnect.timer === null"),
        json!(true),
        "the second tab keeps reconnecting with an ended session"
    );
    // Its cookie, the old session's, opens nothing any more.
    assert!(
        other_tab.cookies(&url).iter().any(|c| c["name"] == COOKIE),
        "the second tab lost the old cookie; the replay below would prove nothing"
    );
    assert_eq!(
        session_status(&other_tab),
        json!(401),
        "the old session's cookie still counts as logged in"
    );
    assert_eq!(
        other_tab.eval(&websocket_outcome("alice")),
        json!("closed"),
        "the old session's cookie still opens a WebSocket"
    );
    page.wait_until(
        "the server has no WebSocket left",
        "fetch('/metrics', { cache: 'no-store' }).then(r => r.text())
            .then(t => /^chat_websockets_open 0$/m.test(t))",
    );

    for p in [&page, &other_tab] {
        assert_eq!(p.errors(), Vec::<String>::new(), "errors on {}", p.name());
    }
}

#[test]
fn a_logout_in_another_tab_closes_this_one_and_brings_the_form_back() {
    let Some(test) = accounts_test("login-refused") else {
        return;
    };
    let url = test.server.http_url("/");
    let page = test.open("alice's page", "/");
    log_in_and_join(&page, "alice");
    let cookie = page
        .cookies(&url)
        .into_iter()
        .find(|c| c["name"] == COOKIE)
        .unwrap_or_else(|| panic!("no {COOKIE} cookie after logging in"));
    let other_tab = test.open("alice's other tab", "/");
    other_tab.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    other_tab.set_cookie(&url, &cookie);
    other_tab.reload();
    other_tab.wait_until("the other tab is connected", &connected_as("alice"));
    other_tab.click("#logout-btn");
    other_tab.wait_until("the other tab shows the login form", LOGIN_FORM_SHOWN);

    // The server closes every socket of the logged-out session (4001): the first page finds
    // the session ended and shows the form instead of retrying.
    page.wait_until("the login form is back", LOGIN_FORM_SHOWN);
    assert_eq!(
        page.eval("document.getElementById('login-error').textContent"),
        json!("Your session has ended. Please log in again."),
    );
    assert_eq!(
        page.eval(
            "[document.getElementById('login-name').value, document.activeElement?.id,
              window.Chat.state.ws === null, window.Chat.state.reconnect.timer === null]"
        ),
        json!(["alice", "login-password", true, true]),
        "the name kept, the password asked, no socket and no reconnecting"
    );

    // Logging in again brings the page back, into its room.
    page.type_into("#login-password", PASSWORD);
    page.press_enter();
    page.wait_until("alice is back", &connected_as("alice"));
    assert_eq!(
        page.eval("document.getElementById('room-name').textContent"),
        json!("general"),
    );
    for p in [&page, &other_tab] {
        assert_eq!(p.errors(), Vec::<String>::new(), "errors on {}", p.name());
    }
}

#[test]
fn too_many_wrong_passwords_are_refused_with_the_wait() {
    let Some(test) = accounts_test("login-throttle") else {
        return;
    };
    let page = test.open("a guesser's page", "/");
    page.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    page.type_into("#login-name", "alice");
    // How many failures the server allows before 429 is its business; a bounded loop
    // finds out.
    let mut refusal = None;
    for attempt in 1..=30 {
        page.type_into("#login-password", &format!("guess number {attempt}"));
        page.click("#login-btn");
        page.wait_until(
            "the server's answer is shown",
            "!document.getElementById('login-error').hidden
             && !document.getElementById('login-btn').disabled",
        );
        let text = page.eval("document.getElementById('login-error').textContent");
        if text != json!("Wrong name or password") {
            refusal = Some(text);
            break;
        }
    }
    let text = refusal.expect("30 wrong passwords in a row were never throttled");
    let seconds = text
        .as_str()
        .and_then(|t| t.strip_prefix("Too many attempts, try again in "))
        .and_then(|t| t.strip_suffix(" s"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        seconds.is_some_and(|s| s >= 1),
        "not the throttle's message with its wait: {text}"
    );
    assert_eq!(
        page.eval(LOGIN_FORM_SHOWN),
        json!(true),
        "the login form is gone"
    );
    assert_eq!(
        metric(&page, "chat_websockets_total"),
        0,
        "a WebSocket was opened"
    );
    assert_eq!(page.errors(), Vec::<String>::new(), "errors on the page");
}

#[test]
fn an_admin_account_moderates_from_the_page() {
    let Some(test) = accounts_test("login-admin") else {
        return;
    };
    let admin = test.open("ada's page", "/");
    let alice = test.open("alice's page", "/");
    log_in_and_join(&admin, "ada");
    log_in_and_join(&alice, "alice");

    alice.type_into("#messageInput", "buy cheap pills");
    alice.press_enter();
    admin.wait_until(
        "alice's message is shown with a Delete button",
        "Array.from(document.querySelectorAll('#messages .message'))
            .some(m => m.querySelector('.text')?.textContent === 'buy cheap pills'
                && m.querySelector('[data-action=delete]') !== null)",
    );
    assert_eq!(
        alice.eval("document.querySelectorAll('[data-action=delete], [data-mod]').length"),
        json!(0),
        "an account without the admin flag is offered moderation"
    );

    admin.eval("window.prompt = () => 'spam'; true");
    admin.wait_until(
        "alice is in ada's user list with a Kick button",
        "document.querySelector('#users li[data-user=\"alice\"] [data-mod=kick]') !== null",
    );
    admin.eval(
        "document.querySelector('#users li[data-user=\"alice\"] [data-mod=kick]').click(); true",
    );
    alice.wait_until(
        "alice's page says why she was removed",
        &notice_shown("error", "Kicked by an admin: spam"),
    );
    assert_eq!(
        alice.eval(
            "document.getElementById('status')?.dataset.state === 'disconnected'
             && window.Chat.state.reconnect.timer === null"
        ),
        json!(true),
        "a kicked page reconnects by itself"
    );
    for p in [&admin, &alice] {
        assert_eq!(p.errors(), Vec::<String>::new(), "errors on {}", p.name());
    }
}

#[test]
fn an_admin_kicks_only_the_tab_that_sent_a_message() {
    let Some(test) = accounts_test("login-kick-sender") else {
        return;
    };
    let admin = test.open("ada's page", "/");
    log_in_and_join(&admin, "ada");
    let loud = test.open("alice's loud tab", "/");
    log_in_and_join(&loud, "alice");
    // Another tab of alice (each page here has its own cookie jar: it logs in too).
    let quiet = test.open("alice's quiet tab", "/");
    log_in_and_join(&quiet, "alice");

    loud.type_into("#messageInput", "buy cheap pills");
    loud.press_enter();
    admin.wait_until(
        "the message is shown with a Kick sender button",
        "Array.from(document.querySelectorAll('#messages .message'))
            .some(m => m.querySelector('.text')?.textContent === 'buy cheap pills'
                && m.querySelector('[data-action=kick-sender]') !== null)",
    );
    admin.eval(
        "window.confirm = () => true;
         Array.from(document.querySelectorAll('#messages .message'))
            .find(m => m.querySelector('.text')?.textContent === 'buy cheap pills')
            .querySelector('[data-action=kick-sender]').click(); true",
    );
    loud.wait_until(
        "the loud tab says why it was removed",
        &notice_shown("error", "Kicked by an admin: by an admin, for a message"),
    );
    // The quiet tab is still in and can speak.
    quiet.type_into("#messageInput", "sorry about that");
    quiet.press_enter();
    admin.wait_until(
        "the quiet tab's message arrives",
        &message_shown("alice", "sorry about that"),
    );
    for p in [&admin, &loud, &quiet] {
        assert_eq!(p.errors(), Vec::<String>::new(), "errors on {}", p.name());
    }
}

#[test]
fn the_login_form_has_no_accessibility_violations() {
    let Some(axe) = axe_source() else {
        return;
    };
    let Some(test) = accounts_test("login-a11y") else {
        return;
    };
    let page = test.open("alice's page", "/");
    page.wait_until("the login form is shown", LOGIN_FORM_SHOWN);
    assert_eq!(
        page.eval(
            "['login-name', 'login-password'].map(id =>
                Array.from(document.getElementById(id).labels).map(l => l.textContent))"
        ),
        json!([["Name"], ["Password"]]),
        "the login fields are labelled"
    );

    let mut report = Vec::new();
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(&page, &axe, scheme, "login form"));
    }
    log_in(&page, "alice", "not the password");
    page.wait_until(
        "the page says the password is wrong",
        "!document.getElementById('login-error').hidden",
    );
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(&page, &axe, scheme, "login form with an error"));
    }
    page.type_into("#login-password", PASSWORD);
    page.click("#login-btn");
    page.wait_until("alice is logged in and connected", &connected_as("alice"));
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        report.extend(audit(&page, &axe, scheme, "logged in"));
    }
    assert!(
        report.is_empty(),
        "accessibility violations (axe-core, WCAG 2.1 A/AA):\n\n{}",
        report.join("\n")
    );
    assert_eq!(page.errors(), Vec::<String>::new(), "errors on the page");
}
