//! How a command ends, and the exit code each ending gives: the contract scripts rely on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a run that failed: an error (a missing file, a backend that never answered) |
//! | 2 | a usage error: an unknown option, a bad value, a missing argument (clap's own code) |
//! | 3 | a contest that ran to its end but found what `--fail-on` lists |
//!
//! A leaf, so that every subcommand's file names its endings without importing the others.

use std::process::ExitCode;

/// A run that failed.
pub const EXIT_RUN_FAILED: u8 = 1;
/// A usage error, as clap exits on its own.
pub const EXIT_USAGE: u8 = 2;
/// A contest that finished and found what `--fail-on` lists.
pub const EXIT_FINDINGS: u8 = 3;

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The options make no run (found after clap's own checks: values that only fail together).
    Usage(String),
    /// The run failed.
    Run(String),
    /// The contest ran; these findings are what `--fail-on` lists.
    Findings(Vec<String>),
}

impl From<String> for Failure {
    /// A plain error is a failed run.
    fn from(error: String) -> Failure {
        Failure::Run(error)
    }
}

/// Says why on stderr and gives the exit code of `result`.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}\n\nFor more information, try '--help'.");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Run(message)) => {
            eprintln!("rinha-lab: {message}");
            ExitCode::from(EXIT_RUN_FAILED)
        }
        Err(Failure::Findings(findings)) => {
            eprintln!("rinha-lab: the contest found {} (--fail-on)", findings.join(", "));
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}

/// The exit code of a clap error: 0 for `--help` and `--version`, 2 otherwise, after printing
/// it.
pub fn parse_error(error: &clap::Error) -> ExitCode {
    // Printing to a closed stdout or stderr is nothing a caller can act on.
    let _ = error.print();
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_USAGE))
}
