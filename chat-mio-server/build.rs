//! Embeds every file of the workspace's `static/` directory into the binary, so the server runs
//! from any directory. Generates `$OUT_DIR/embedded_assets.rs`: a slice of (name, bytes).
//! Also sets `CHAT_GIT_COMMIT` for `--version`: the short commit, or `unknown` outside git.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    git_commit();
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("..").join("static");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();

    let mut code = String::from("&[\n");
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("]\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    fs::write(out.join("embedded_assets.rs"), code).expect("write embedded_assets.rs");
}

/// Every regular file below `dir`, named by its `/`-separated path relative to `root`.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).expect("below root");
            let name: Vec<_> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            files.push((name.join("/"), path.canonicalize().expect("canonical path")));
        }
    }
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
