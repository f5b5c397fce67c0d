//! The whole contest in one command:
//! `cargo bench --bench contest -- --scenario benches/scenarios/preview.toml --json results.json`
//! (`rinha-lab contest`'s options; `-- --help` lists them).
//!
//! Thin on purpose: the lab library does the work; this only hands it cargo's build of payrelay.
//! cargo adds `--bench` to a `harness = false` bench's arguments; the parser ignores it.

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    rinha_lab::cli::contest_bench_main(&args, PathBuf::from(env!("CARGO_BIN_EXE_payrelay")))
}
