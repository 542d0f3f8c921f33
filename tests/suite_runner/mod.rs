//! Runs another end-to-end test binary of this package again, with the environment that
//! points its servers elsewhere: `CHAT_TEST_ADAPTER=tokio` (`tests/on_tokio.rs`) or
//! `CHAT_TEST_REDIS=...` (`tests/tutorial_on_a_cluster.rs`). `tests/common::TestServer` reads
//! that environment, so the suite's tests run unchanged against the other server.
//!
//! The binaries are the ones `cargo test` built next to the running one. Run alone before the
//! suite was ever built, the runner says so and the caller skips.

use std::path::PathBuf;
use std::process::Command;

/// One suite to run again: the test binary's name (`websocket` for `tests/websocket.rs`), and
/// the tests to leave out, each with the reason (the README names them).
pub struct Suite {
    pub binary: &'static str,
    pub skip: &'static [(&'static str, &'static str)],
}

/// The newest `{name}-*` test executable beside this test's own that is one of this
/// package's suites. Other crates of the workspace have test binaries of the same names
/// (`chat-tokio`'s `websocket`, `chat-protocol`'s `tokens`) in the same directory; only this
/// package's read `CHAT_TEST_ADAPTER` (in `tests/common::TestServer`), so its name in the
/// binary tells them apart.
pub fn test_binary(name: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let deps = me.parent()?;
    let prefix = format!("{name}-");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
                && path.extension().is_none()
        })
        .collect();
    candidates
        .sort_by_key(|path| std::cmp::Reverse(path.metadata().and_then(|m| m.modified()).ok()));
    candidates.into_iter().find(|path| {
        Command::new("grep")
            .args(["-q", "-a", "-F", "CHAT_TEST_ADAPTER"])
            .arg(path)
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// What one run of a suite gave.
pub struct Outcome {
    pub passed: usize,
}

/// Runs `suite` with `env` set, two tests at a time. `Err` names what failed, with the
/// suite's output; `Ok(None)` when its binary is not built (an `Err` instead with
/// `CHAT_REQUIRE_SUITES=1`, as CI sets: there every suite must run).
pub fn run(suite: &Suite, env: &[(&str, &str)]) -> Result<Option<Outcome>, String> {
    let Some(binary) = test_binary(suite.binary) else {
        if std::env::var("CHAT_REQUIRE_SUITES").is_ok_and(|v| v == "1") {
            return Err(format!(
                "suite `{}` is not built, and CHAT_REQUIRE_SUITES=1",
                suite.binary
            ));
        }
        return Ok(None);
    };
    let mut command = Command::new(&binary);
    command
        .envs(env.iter().copied())
        .args(["--test-threads", "2"]);
    for (name, _why) in suite.skip {
        command.args(["--skip", name, "--exact"]);
    }
    let output = command
        .output()
        .map_err(|e| format!("run {}: {e}", binary.display()))?;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(format!("suite `{}` failed:\n{report}", suite.binary));
    }
    // "test result: ok. N passed; 0 failed; 0 ignored; 0 measured; M filtered out"
    let summary = report
        .lines()
        .find(|line| line.starts_with("test result: ok."))
        .ok_or_else(|| format!("suite `{}` gave no result line:\n{report}", suite.binary))?;
    let count = |label: &str| -> Option<usize> {
        summary
            .split(';')
            .find(|part| part.trim_end().ends_with(label))
            .and_then(|part| part.split_whitespace().rev().nth(label.split(' ').count()))
            .and_then(|n| n.parse().ok())
    };
    let passed = count("passed").unwrap_or(0);
    let filtered = count("filtered out").unwrap_or(0);
    if filtered != suite.skip.len() {
        return Err(format!(
            "suite `{}`: {} tests are to be skipped but {filtered} were (a renamed test?):\n{report}",
            suite.binary,
            suite.skip.len()
        ));
    }
    if passed == 0 {
        return Err(format!("suite `{}` ran no test:\n{report}", suite.binary));
    }
    Ok(Some(Outcome { passed }))
}
