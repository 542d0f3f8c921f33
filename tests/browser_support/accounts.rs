//! Accounts for the `--auth accounts` browser tests, added the way an operator adds them:
//! `chat-mio-server user add NAME [--admin] --data-dir DIR` with the password on stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Adds the account `name` with `password` to the database in `data_dir`, with the real
/// binary; panics with its output if it fails.
pub fn add_user(data_dir: &Path, name: &str, password: &str, admin: bool) {
    let mut command = Command::new(server_binary());
    command.args(["user", "add", name]);
    if admin {
        command.arg("--admin");
    }
    let mut child = command
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", server_binary().display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for `user add`");
    assert!(
        output.status.success(),
        "`chat-mio-server user add {name}` failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `chat-mio-server` binary of this build.
///
/// Cargo hands `CARGO_BIN_EXE_<name>` only to the tests of the package that owns the
/// binary, and these tests belong to the root package. So the binary is built here with the
/// cargo and the profile that built this test (`target/<profile>/deps/<test>`): a no-op
/// after a plain `cargo test`, which builds it for chat-mio-server's own tests, and a short
/// link after `cargo test --test browser_login`. Cargo no longer holds its build lock while
/// tests run, so this does not wait on the outer `cargo test`.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test = std::env::current_exe().expect("the test's own path");
        let profile_dir = test
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", test.display()));
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("no profile directory above {}", test.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--offline", "--profile", profile])
            .args(["--package", "chat-mio-server", "--bin", "chat-mio-server"])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}", cargo.to_string_lossy()));
        assert!(status.success(), "building chat-mio-server failed");
        let binary = profile_dir.join(format!("chat-mio-server{}", std::env::consts::EXE_SUFFIX));
        assert!(
            binary.is_file(),
            "cargo built chat-mio-server, but not at {}",
            binary.display()
        );
        binary
    })
}
