//! The capacity sweep in one command: `cargo bench --bench capacity` (knobs: `-- --help`), the
//! same as `rinha-lab capacity`.
//!
//! Thin on purpose: the lab library does the work; this only hands it cargo's build of payrelay
//! and the repository's root. The same executable, started again by the sweep, serves as its
//! canned process (`rinha_lab::capacity::serve_if_child`), since the payrelay package builds no
//! `rinha-lab` binary for a bench to start.

use std::{path::Path, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    rinha_lab::cli::capacity_bench_main(
        &args,
        PathBuf::from(env!("CARGO_BIN_EXE_payrelay")),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}
