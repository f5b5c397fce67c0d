//! The `rinha-lab` command line, on clap: `processors`, `processor`, `canned`, `contest`,
//! `pair`, `capacity`, `report` and `compare`, and the `contest` and `capacity` benches' own
//! parsers (the same options). The top of the crate: nothing imports it.
//!
//! - `args.rs`: every option, its default and its help.
//! - `exit.rs`: how a command ends and its exit code (0 success, 1 failed run, 2 usage error,
//!   3 a contest that found what `--fail-on` lists).
//! - `serve.rs`, `contest.rs`, `capacity.rs`, `report.rs`: what each subcommand does.

mod args;
mod capacity;
mod contest;
mod exit;
mod report;
mod serve;

use std::process::ExitCode;

use args::{Cli, Command};
use clap::Parser;

pub use args::{Finding, VERSION};
pub use capacity::bench_main as capacity_bench_main;
pub use contest::{bench_main as contest_bench_main, findings};
pub use exit::{EXIT_FINDINGS, EXIT_RUN_FAILED, EXIT_USAGE};

/// Runs the `rinha-lab` command line (`args` without the program name) and gives its exit
/// code.
pub fn main(args: &[String]) -> ExitCode {
    let program = std::iter::once("rinha-lab".to_owned());
    let cli = match Cli::try_parse_from(program.chain(args.iter().cloned())) {
        Ok(cli) => cli,
        Err(error) => return exit::parse_error(&error),
    };
    exit::finish(match &cli.command {
        Command::Processors(args) => serve::processors(args),
        Command::Processor(args) => serve::processor(args),
        Command::Canned(args) => serve::canned(args),
        Command::Contest(args) => contest::contest(args),
        Command::Pair(args) => serve::pair(args),
        Command::Capacity(args) => capacity::capacity(args),
        Command::Report(args) => report::report(args),
        Command::Compare(args) => report::compare(args),
    })
}
