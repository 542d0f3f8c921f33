//! The end-to-end suites, unchanged, against the second adapter: every test binary below runs
//! again with `CHAT_TEST_ADAPTER=tokio`, so every server its tests start through
//! `tests/common::TestServer` is `chat-tokio`'s (`RunningServer`, the same `Config`) instead of
//! the mio event loop. Same frames, same order, same close codes, same HTTP answers.
//!
//! A test that cannot hold for the tokio adapter is skipped by name with its reason; the README
//! ("On tokio, and inside an axum app") lists them. Suites about features the tokio adapter refuses at start
//! (native TLS, built-in accounts, several nodes, the server API, the memory budget) are not
//! run here at all; the README names those too.
//!
//! The binaries are the ones `cargo test` built next to this one; run alone before they were
//! ever built, this test says so and skips.

mod suite_runner;

use suite_runner::Suite;

const SUITES: &[Suite] = &[
    Suite {
        binary: "websocket",
        skip: &[(
            "a_big_room_gets_every_message_in_order_after_quiet_spells",
            "reads `chat_split_flushes_total`, the mio loop's second writer thread; chat-tokio \
             writes from one task per connection and never splits a flush (the family stays 0)",
        )],
    },
    Suite {
        binary: "protocol_v2",
        skip: &[],
    },
    Suite {
        binary: "protocol_answers",
        skip: &[],
    },
    Suite {
        binary: "hostile_ws",
        skip: &[],
    },
    Suite {
        binary: "hostile_http",
        skip: &[],
    },
    Suite {
        binary: "http",
        skip: &[],
    },
    Suite {
        binary: "client_addresses",
        skip: &[],
    },
    Suite {
        binary: "tokens",
        skip: &[],
    },
    Suite {
        binary: "moderation",
        skip: &[],
    },
    // `large_messages_packed_with_others_all_arrive_whole_and_in_order` runs: its messages are
    // checked whole and in order; its last check (the partial gauge back at 0) holds trivially,
    // the gauge being always 0 here.
    Suite {
        binary: "read_buffers",
        skip: &[(
            "a_fragmented_large_message_arrives_and_its_kept_buffer_is_counted",
            "reads `chat_memory_bytes{kind=\"partial\"}`, the mio server's memory budget; \
             chat-tokio does not enforce `--memory-budget` and does not count tungstenite's read \
             buffers (the gauge stays 0)",
        )],
    },
    Suite {
        binary: "reverse_proxy",
        skip: &[],
    },
    Suite {
        binary: "browser",
        skip: &[],
    },
    Suite {
        binary: "browser_v2",
        skip: &[],
    },
    Suite {
        binary: "browser_scrollback",
        skip: &[],
    },
    Suite {
        binary: "browser_tokens",
        skip: &[],
    },
    Suite {
        binary: "accessibility",
        skip: &[],
    },
];

/// One test per suite would run them in parallel with each other and with the rest of
/// `cargo test`; one test running them in turn keeps the machine's load what it was.
#[test]
fn the_end_to_end_suites_pass_against_the_tokio_adapter() {
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    for suite in SUITES {
        match suite_runner::run(suite, &[("CHAT_TEST_ADAPTER", "tokio")]) {
            Ok(Some(outcome)) => eprintln!(
                "{}: {} tests passed on chat-tokio ({} skipped)",
                suite.binary,
                outcome.passed,
                suite.skip.len()
            ),
            Ok(None) => missing.push(suite.binary),
            Err(failure) => failures.push(failure),
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED on chat-tokio, not built (run the whole `cargo test`): {}",
            missing.join(", ")
        );
    }
    assert!(
        failures.is_empty(),
        "{} suites failed against chat-tokio:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
