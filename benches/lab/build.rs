//! Puts the commit the lab is built from into `RINHA_LAB_COMMIT`, for `rinha-lab --version` and
//! the results files: `RINHA_LAB_COMMIT` from the environment when set, else
//! `git rev-parse --short HEAD`, else `unknown` (a Docker build copies no `.git`, and its image
//! may have no git).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RINHA_LAB_COMMIT");
    let commit = std::env::var("RINHA_LAB_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(git_head)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RINHA_LAB_COMMIT={}", commit.trim());
}

/// The short hash of HEAD, and a rebuild whenever HEAD moves (a commit, a checkout).
fn git_head() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git").args(args).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    // HEAD names the branch; the branch's reflog changes at every commit on it. Both paths
    // resolve inside a linked worktree too, where `.git` is a file.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    git(&["rev-parse", "--short", "HEAD"]).filter(|hash| !hash.is_empty())
}
