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

mod suite_runner;

use redis_fixture::Redis;
use suite_runner::Suite;

const TUTORIAL: Suite = Suite {
    binary: "websocket",
    skip: &[(
        "a_big_room_gets_every_message_in_order_after_quiet_spells",
        // It checks a timing property of one loop, not of the protocol: that after a quiet
        // spell the second writer thread shares a big room's flush. On a cluster node the
        // messages arrive through the handoff inbox, so whether that turn counts as after a
        // quiet spell depends on timing; its order check is what the other tests cover.
        "a timing property of one loop's second writer, not of the protocol",
    )],
};

#[test]
fn the_tutorial_tests_pass_against_a_node_of_a_cluster() {
    let Some(redis) = Redis::start("tutorial") else {
        return;
    };
    let url = redis.url();
    match suite_runner::run(&TUTORIAL, &[("CHAT_TEST_REDIS", url.as_str())]) {
        Ok(Some(outcome)) => {
            eprintln!("{} tutorial tests passed on a cluster node", outcome.passed)
        }
        Ok(None) => {
            eprintln!(
                "SKIPPED: the websocket test binary is not built (run the whole `cargo test`)"
            );
            return;
        }
        Err(failure) => panic!("the tutorial tests failed against a cluster node: {failure}"),
    }
    // They really ran through Redis: keys under the test prefixes exist.
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test*:seq:*")
        .query(&mut conn)
        .expect("keys");
    assert!(!keys.is_empty(), "no room ever got an id from Redis");
}
