//! Sets `CHAT_GIT_COMMIT` for `--version`: the short commit, or `unknown` outside git. (The
//! static files are embedded by `chat-adapter`'s build script.)

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    git_commit();
}

/// `cargo:rustc-env=CHAT_GIT_COMMIT=<short hash>` (`unknown` without git or a repository, as in
/// a source tarball or a container build without `.git`), rebuilt when HEAD moves.
fn git_commit() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    // A build without the repository (a container build) may name the commit itself.
    println!("cargo:rerun-if-env-changed=CHAT_GIT_COMMIT");
    let commit = env::var("CHAT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CHAT_GIT_COMMIT={commit}");
    // HEAD itself (in a worktree `.git` is a file naming the real directory), and the branch
    // file it points to: a commit changes that one, not HEAD. Only existing paths, since cargo
    // reruns every time for a missing one.
    let mut watched = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watched.push(PathBuf::from(head));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = git(&["rev-parse", "--git-path", &branch]) {
            watched.push(PathBuf::from(file));
        }
    }
    for path in watched {
        // `--git-path` answers relative to the directory git ran in: the package's.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
