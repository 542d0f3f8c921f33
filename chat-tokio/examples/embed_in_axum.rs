//! An existing axum app that mounts the chat under `/chat`.
//!
//! ```text
//! cargo run -p chat-tokio --example embed_in_axum -- --bind 127.0.0.1:3000
//! ```
//!
//! `GET /` is the app's own home page, `GET /api/hello` its JSON, and the chat lives at
//! `/chat/` (its WebSocket at `/chat/ws/NAME`). The chat's options come from the same `CHAT_*`
//! environment variables as the servers' (`CHAT_STORE=sqlite`, `CHAT_AUTH=token`, ...).

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

/// The app: its own routes, and the chat nested under `/chat` (`nest_service`, so that
/// `/chat/` reaches the chat's page: axum 0.8's `nest` maps a nested `/` to `/chat` only).
pub fn app(chat: &chat_tokio::Chat) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/api/hello", get(hello))
        .nest_service("/chat", chat.router())
}

async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>My app</title><h1>My app</h1>\
         <p><a href=\"/chat/\">Open the chat</a></p>",
    )
}

async fn hello() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], r#"{"hello":"world"}"#)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `--bind ADDR` or `BIND=ADDR`; the chat's own options come from `CHAT_*`.
    let args: Vec<String> = std::env::args().collect();
    let bind = args
        .iter()
        .position(|a| a == "--bind")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("BIND").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let chat = chat_tokio::Chat::start(chat_tokio::Config::default()).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("http://{}/ (the chat is at /chat/)", listener.local_addr()?);
    let stop = chat.clone();
    axum::serve(
        listener,
        app(&chat).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.shutdown().await;
    })
    .await?;
    chat.shutdown().await;
    Ok(())
}
