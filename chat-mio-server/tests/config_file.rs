//! Configuration from the outside: a flag beats its environment variable, which beats the
//! `--config` file, which beats the default; a file's unknown key stops the start naming the
//! key and its line; `config check` prints the effective configuration without the secrets;
//! and `deploy/chat.toml.example` is a valid file.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{TempDir, BINARY};

const SECRET: &str = "a-config-check-secret-of-32-bytes-or-more-QQQ";
const API_KEY: &str = "config-check-api-key-never-shown";

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).stdin(Stdio::null());
    // The test's own environment must not leak into the precedence being tested.
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAT_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run the binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The line of `config check`'s output for `key` (`key = value   # source`).
fn entry<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{output}"))
}

fn write(dir: &TempDir, name: &str, contents: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write the file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = TempDir::new("config-precedence");
    let file = write(
        &dir,
        "chat.toml",
        "max-connections = 11\nhistory = 12\nrate-burst = 13\nmax-rooms = 14\n",
    );
    let env = [("CHAT_HISTORY", "22"), ("CHAT_RATE_BURST", "23")];
    let out = run(&["--rate-burst", "33", "config", "check", &file], &env);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    for (key, want) in [
        ("max-connections", "max-connections = 11"),
        ("history", "history = 22"),
        ("rate-burst", "rate-burst = 33"),
        ("max-rooms", "max-rooms = 14"),
        ("max-outbound", "max-outbound = 1048576"),
    ] {
        assert!(entry(&stdout, key).starts_with(want), "{want}:\n{stdout}");
    }
    assert!(entry(&stdout, "max-connections").ends_with("# file, line 1"));
    assert!(entry(&stdout, "history").ends_with("# environment"));
    assert!(entry(&stdout, "rate-burst").ends_with("# command line"));
    assert!(entry(&stdout, "max-outbound").ends_with("# default"));

    // The same file given to a server (through CHAT_CONFIG) is what it runs with: its bind
    // and store are taken, and a flag still wins over it.
    let file = write(
        &dir,
        "serve.toml",
        "bind = \"127.0.0.1:0\"\nstore = \"memory\"\nlog-format = \"json\"\n",
    );
    let mut server = Command::new(BINARY)
        .args(["--log-format", "text"])
        .env("CHAT_CONFIG", &file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut stdout = server.stdout.take().expect("stdout");
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(&mut stdout, &mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let _ = server.kill();
    let _ = server.wait();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut server.stderr.take().expect("stderr"), &mut stderr);
    let first = text(&first);
    assert!(
        first.starts_with("Open http://127.0.0.1:"),
        "{first}\n{stderr}"
    );
    assert!(
        !first.ends_with(":8000 in your browser to chat."),
        "the file's port 0 was not used: {first}"
    );
    assert!(
        stderr.lines().next().is_some_and(|l| !l.starts_with('{')),
        "--log-format text (flag) lost to the file's json:\n{stderr}"
    );
}

#[test]
fn an_unknown_key_is_an_error_naming_the_key_and_its_line() {
    let dir = TempDir::new("config-unknown");
    let file = write(
        &dir,
        "chat.toml",
        "# a comment\nbind = \"127.0.0.1:0\"\nmax-conections = 5\n",
    );
    for args in [
        vec!["config", "check", file.as_str()],
        vec!["--config", file.as_str(), "--store", "memory"],
    ] {
        let out = run(&args, &[]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("line 3") && stderr.contains("unknown key `max-conections`"),
            "{args:?}:\n{stderr}"
        );
        assert!(
            !text(&out.stdout).contains("Open http://"),
            "{args:?} started a server"
        );
    }
    // A value its option refuses names the line too.
    let file = write(&dir, "bad.toml", "\nsync = \"sometimes\"\n");
    let out = run(&["config", "check", &file], &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 2") && stderr.contains("`sync`"),
        "{stderr}"
    );
}

#[test]
fn config_check_masks_the_secrets() {
    let dir = TempDir::new("config-secrets");
    let file = write(&dir, "chat.toml", "auth = \"token\"\n");
    let out = run(
        &["config", "check", &file],
        &[("CHAT_JWT_SECRET", SECRET), ("CHAT_API_KEY", API_KEY)],
    );
    let stdout = text(&out.stdout);
    let all = format!("{stdout}{}", text(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(entry(&stdout, "auth").starts_with("auth = \"token\""));
    assert!(
        stdout.contains("JWT secret: *** (from the environment variable CHAT_JWT_SECRET)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("API key: *** (from the environment variable CHAT_API_KEY)"),
        "{stdout}"
    );
    for secret in [SECRET, API_KEY] {
        assert!(!all.contains(secret), "a secret is printed:\n{all}");
    }
    // A secret in a file: the file is named, its contents never printed.
    let key_file = write(&dir, "api-key", API_KEY);
    let out = run(
        &["--api-key-file", &key_file, "config", "check", &file],
        &[("CHAT_JWT_SECRET", SECRET)],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains(&format!("read from --api-key-file {key_file}")));
    assert!(!stdout.contains(API_KEY), "{stdout}");
    // Token mode without any key cannot start: config check says so.
    let out = run(&["config", "check", &file], &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--auth token needs"), "{stderr}");
}

#[test]
fn the_example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/chat.toml.example");
    assert!(Path::new(example).exists());
    let out = run(&["config", "check", example], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    // Every key set in the example shows as coming from the file.
    let contents = std::fs::read_to_string(example).expect("read the example");
    for line in contents
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
    {
        let key = line.split(" = ").next().unwrap_or_default();
        assert!(
            entry(&stdout, key).contains("# file, line"),
            "{key}:\n{stdout}"
        );
    }
}
