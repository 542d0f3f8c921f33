//! The example app (`examples/embed_in_axum.rs`): its own routes, and the chat under `/chat`.

mod common;
#[allow(dead_code)] // its `main` is the example's
#[path = "../examples/embed_in_axum.rs"]
mod embed_in_axum;

use std::net::SocketAddr;

use chat_tokio::Chat;
use common::{connect_at, expect_join, http_get, memory, recv_json, send};

#[test]
fn the_app_serves_its_routes_and_the_chat_under_chat() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (chat, addr) = runtime.block_on(async {
        let chat = Chat::start(memory()).await.expect("chat starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = embed_in_axum::app(&chat);
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (chat, addr)
    });

    let (status, _, body) = http_get(addr, "/api/hello");
    assert_eq!((status, &body[..]), (200, &br#"{"hello":"world"}"#[..]));
    let (status, _, body) = http_get(addr, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("/chat/"));

    let (status, head, _) = http_get(addr, "/chat");
    assert_eq!(status, 308, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("location: /chat/"),
        "{head}"
    );
    let index = chat_adapter::Assets::embedded();
    let (status, _, body) = http_get(addr, "/chat/");
    assert_eq!(status, 200);
    assert_eq!(body, index.get("index.html").expect("index").body.as_ref());
    let (status, _, body) = http_get(addr, "/chat/static/style.css");
    assert_eq!(status, 200);
    assert_eq!(body, index.get("style.css").expect("css").body.as_ref());
    let (status, _, _) = http_get(addr, "/chat/healthz");
    assert_eq!(status, 200);

    let (mut zoe, _) = connect_at(addr, "/chat/ws/zoe", None);
    expect_join(&mut zoe, "zoe");
    send(&mut zoe, "hi");
    assert_eq!(recv_json(&mut zoe)["message"], "hi");

    runtime.block_on(chat.shutdown());
}
