//! Build script: the git commit `payrelay --version` and `payrelay_build_info` name, as
//! `PAYRELAY_GIT_COMMIT`. Taken from that variable when the build sets it (the Docker build
//! has no `.git`: `--build-arg PAYRELAY_GIT_COMMIT=...`), else from `git rev-parse`, else
//! "unknown": a build never fails for want of git.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PAYRELAY_GIT_COMMIT");
    let commit = std::env::var("PAYRELAY_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PAYRELAY_GIT_COMMIT={}", commit.trim());
    // Run again when HEAD moves: a commit, a checkout. In a worktree HEAD lives in the
    // worktree's git folder and the branch in the common one; `--git-path` finds both.
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={file}");
    }
}

/// What `git args` prints, trimmed, if it ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
