//! Starting and stopping a private headless Chromium process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a cold Chromium start may take on a loaded two-core CI machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Chromium may take to exit on its own after `Browser.close`, and how long its
/// helpers may keep writing to the profile after that.
const EXIT_GRACE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Chromium's flags for an isolated, quiet, loopback-only headless run.
const FLAGS: &[&str] = &[
    "--headless",
    // Tests run as root in containers, where the sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    // No traffic beyond 127.0.0.1: no updates, sync, safe-browsing or QUIC probes.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-breakpad",
    // Background tabs must keep running their timers and sockets at full speed: the test
    // drives two tabs and only one of them can be in front.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--remote-debugging-port=0",
];

/// A running Chromium with its own throw-away profile. Dropping it stops the process (by its
/// own handle, never by name) and deletes the profile, also while a test is panicking.
pub struct Chromium {
    child: Child,
    profile: PathBuf,
    devtools_url: String,
}

impl Chromium {
    /// Starts `executable` and waits for its DevTools endpoint. Panics with Chromium's own
    /// output when it does not come up.
    pub fn launch(executable: &Path) -> Chromium {
        Self::launch_with(executable, &[])
    }

    /// Like [`Chromium::launch`], with `extra` flags after the usual ones (for one test's
    /// needs, such as `--ignore-certificate-errors` for a throwaway certificate).
    pub fn launch_with(executable: &Path, extra: &[&str]) -> Chromium {
        let profile = fresh_profile_dir();
        let mut child = Command::new(executable)
            .args(FLAGS)
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.display()))
            // Crashpad and caches write under $XDG_CONFIG_HOME / $XDG_CACHE_HOME, not the
            // profile; point them into it so nothing outlives the test.
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                remove_profile(&profile);
                panic!("cannot start {}: {e}", executable.display())
            });
        let stderr = child.stderr.take().expect("stderr was piped");
        // Own the process before anything can panic, so Drop cleans up after a failed start.
        let mut chromium = Chromium {
            child,
            profile,
            devtools_url: String::new(),
        };
        chromium.devtools_url = chromium.await_devtools_url(stderr_lines(stderr));
        chromium
    }

    /// The browser-level `ws://127.0.0.1:PORT/devtools/browser/ID` endpoint.
    pub fn devtools_url(&self) -> &str {
        &self.devtools_url
    }

    /// Waits for the `DevTools listening on ws://...` line Chromium prints once its
    /// debugging port (chosen by the OS, hence race-free) is open.
    fn await_devtools_url(&mut self, lines: Receiver<String>) -> String {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("DevTools listening on ") {
                    Some(url) => return url.trim().to_owned(),
                    None => seen.push(line),
                },
                Err(RecvTimeoutError::Timeout) => panic!(
                    "Chromium printed no DevTools URL within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                    seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "Chromium exited during startup ({:?}); stderr:\n{}",
                    self.child.try_wait(),
                    seen.join("\n")
                ),
            }
        }
    }

    /// Waits up to `EXIT_GRACE` for the process to exit by itself, after the owner asked
    /// it to (CDP `Browser.close`). A clean exit lets Chromium stop its helpers itself.
    pub fn await_exit(&mut self) {
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
                Ok(Some(_)) | Err(_) => return,
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Still running after a failed start, a panic, or a close that did not work: kill
        // it. Its zygote, renderer and GPU helpers notice their parent's death and exit.
        if let Ok(None) = self.child.try_wait() {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill Chromium (pid {}): {e}", self.child.id());
            }
        }
        if let Err(e) = self.child.wait() {
            eprintln!("could not reap Chromium (pid {}): {e}", self.child.id());
        }
        remove_profile(&self.profile);
    }
}

/// Forwards Chromium's stderr line by line. The thread keeps draining after the receiver is
/// gone, so Chromium never blocks on a full pipe; it ends when Chromium closes stderr.
fn stderr_lines(stderr: ChildStderr) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("chromium-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // A send error only means nobody listens any more; keep draining.
                let _ = sender.send(line);
            }
        })
        .expect("spawn the Chromium stderr reader");
    receiver
}

/// A new, empty directory for one Chromium profile.
fn fresh_profile_dir() -> PathBuf {
    // Unique per process (pid), per launch in it (counter), and across a reused pid
    // (clock), without pulling in a temp-dir crate.
    static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
    let launch = LAUNCHES.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "chat-browser-test-{}-{launch}-{nanos:09}",
        std::process::id()
    ));
    // `create_dir`, not `create_dir_all`: an existing directory would not be fresh.
    std::fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("create Chromium profile dir {}: {e}", dir.display()));
    dir
}

/// Deletes the profile. Chromium's helpers may still be flushing files for a moment after
/// the main process died, so a "directory not empty" failure is retried briefly.
fn remove_profile(dir: &Path) {
    let deadline = Instant::now() + EXIT_GRACE;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() >= deadline => {
                eprintln!("could not delete Chromium profile {}: {e}", dir.display());
                return;
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}
