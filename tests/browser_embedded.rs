//! The chat mounted in an app of its own: chat-tokio's example app
//! (`chat-tokio/examples/embed_in_axum.rs`, included here as it is) serves its own home page
//! and JSON route, with the chat nested under `/chat`, and two people chat through it in
//! headless Chromium. The page finds its WebSocket (`/chat/ws/NAME`) and its static files
//! (`/chat/static/...`) relative to where it was loaded.
//!
//! Skipped (loudly) when Chromium is not installed, unless `CHAT_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

#[allow(dead_code)] // its `main` is the example's command line, not used here
#[path = "../chat-tokio/examples/embed_in_axum.rs"]
mod example;

use std::net::SocketAddr;

use browser_support::{join, message_shown, notice_shown};
use chat_adapter::{Config, StoreKind};
use serde_json::json;

/// The example app on a runtime of its own, on a free loopback port; dropping it stops the
/// app and the chat.
struct App {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    fn start() -> App {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let config = Config {
                    store: StoreKind::Memory,
                    ..Config::default()
                };
                let chat = chat_tokio::Chat::start(config)
                    .await
                    .expect("start the chat");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind a free port");
                let addr = listener.local_addr().expect("local address");
                ready_tx.send(addr).expect("the test waits for the address");
                let app = example::app(&chat);
                let shutdown_chat = chat.clone();
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    shutdown_chat.shutdown().await;
                })
                .await
                .expect("serve the app");
            });
        });
        let addr = ready_rx
            .recv_timeout(common::TIMEOUT)
            .expect("the app started");
        App {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the app's thread panicked");
            }
        }
    }
}

#[test]
fn two_people_chat_through_the_chat_mounted_in_an_axum_app() {
    // The app is declared before the browser, so it is dropped after it.
    let app = App::start();
    let Some(browser) = browser_support::browser_or_skip() else {
        return;
    };

    // The app's own pages are the app's.
    let home = browser.open("the app's home page", &app.url("/"));
    assert_eq!(
        home.eval("document.querySelector('h1').textContent"),
        json!("My app")
    );
    let hello = browser.open("the app's JSON", &app.url("/api/hello"));
    assert_eq!(
        hello.eval("JSON.parse(document.body.innerText).hello"),
        json!("world")
    );

    // The chat, from the app's link (`/chat/`) and from `/chat` (redirected to `/chat/`).
    let alice = browser.open("alice's page", &app.url("/chat/"));
    let bob = browser.open("bob's page", &app.url("/chat"));
    assert_eq!(
        bob.eval("window.location.pathname"),
        json!("/chat/"),
        "/chat leads to the chat's page at /chat/"
    );
    // Every file the page needs came from under the prefix, and was found there.
    let loaded_under_chat = |file: &str| {
        format!(
            "performance.getEntriesByType('resource').some(e => \
             new URL(e.name).pathname === '/chat/static/{file}' && e.responseStatus === 200)"
        )
    };
    for page in [&alice, &bob] {
        for file in ["style.css", "chat.js", "js/socket.js"] {
            assert_eq!(
                page.eval(&loaded_under_chat(file)),
                json!(true),
                "{}: /chat/static/{file} was not loaded",
                page.name()
            );
        }
    }

    // The app has no `/ws/` of its own: the pages can only chat through `/chat/ws/NAME`.
    join(&alice, "alice");
    join(&bob, "bob");
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    alice.type_into("#messageInput", "hello from inside the app");
    alice.press_enter();
    bob.wait_until(
        "alice's message is shown",
        &message_shown("alice", "hello from inside the app"),
    );
    bob.type_into("#messageInput", "and back");
    bob.click("#send-btn");
    alice.wait_until("bob's message is shown", &message_shown("bob", "and back"));
    for page in [&alice, &bob] {
        assert_eq!(page.errors(), Vec::<String>::new(), "{}", page.name());
    }
    bob.close();
    alice.wait_until(
        "bob's leaving is shown",
        &notice_shown("leave", "bob left the chat"),
    );
}
