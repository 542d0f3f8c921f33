//! `--store sqlite`: the history survives a restart of the server.

mod common;

use chat_adapter::StoreKind;
use chat_tokio::Config;
use common::{connect_at, expect_join, recv_json, send, start};

#[test]
fn history_comes_back_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("chat-tokio-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || Config {
        store: StoreKind::Sqlite,
        data_dir: dir.clone(),
        ..Config::default()
    };

    let server = start(config());
    let (mut amy, _) = connect_at(server.local_addr(), "/ws/amy", None);
    expect_join(&mut amy, "amy");
    for text in ["first", "second"] {
        send(&mut amy, text);
        assert_eq!(recv_json(&mut amy)["message"], text);
    }
    drop(amy);
    server.shutdown().expect("a clean stop closes the store");

    let server = start(config());
    let (mut amy, _) = connect_at(server.local_addr(), "/ws/amy", Some("chat.v2"));
    assert_eq!(recv_json(&mut amy)["type"], "welcome");
    let history = recv_json(&mut amy);
    assert_eq!(history["type"], "history", "{history}");
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(messages[0]["message"], "first");
    assert_eq!(messages[1]["message"], "second");
    server.shutdown().expect("a clean stop");
    let _ = std::fs::remove_dir_all(&dir);
}
