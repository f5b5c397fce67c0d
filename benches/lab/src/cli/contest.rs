//! `rinha-lab contest` (and `cargo bench --bench contest`): the options into a
//! [`ContestOptions`], the run, and whether its findings fail it (`--fail-on`).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

use super::{
    args::{ContestArgs, Finding, VERSION},
    exit::{self, Failure},
};
use crate::{
    contest::{self, ContestOptions},
    results::Results,
};

/// `cargo bench --bench contest -- [OPTIONS]`: `rinha-lab contest`'s options, with cargo's
/// build of payrelay when neither `--payrelay` nor `--target` is given.
#[derive(Debug, Parser)]
#[command(
    name = "cargo bench --bench contest --",
    version = VERSION,
    about = "The whole contest against cargo's build of payrelay (rinha-lab contest's options)"
)]
struct ContestBench {
    #[command(flatten)]
    contest: ContestArgs,
    /// What cargo passes to a `harness = false` bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The `contest` bench's `main`: `args` after the program name, `payrelay` the default binary.
pub fn bench_main(args: &[String], payrelay: PathBuf) -> ExitCode {
    let program = std::iter::once("contest".to_owned());
    match ContestBench::try_parse_from(program.chain(args.iter().cloned())) {
        Ok(bench) => exit::finish(contest_with(&bench.contest, Some(payrelay))),
        Err(error) => exit::parse_error(&error),
    }
}

/// `rinha-lab contest`.
pub fn contest(args: &ContestArgs) -> Result<(), Failure> {
    contest_with(args, None)
}

/// Runs the contest `args` describe, with `payrelay` as the binary when `--payrelay` is not
/// given.
fn contest_with(args: &ContestArgs, payrelay: Option<PathBuf>) -> Result<(), Failure> {
    let options = options(args, payrelay)?;
    let results = contest::run(&options)?;
    let found = findings(&results, &args.fail_on);
    if found.is_empty() { Ok(()) } else { Err(Failure::Findings(found)) }
}

/// The run `args` describe; a usage error when it names no backend.
fn options(args: &ContestArgs, payrelay: Option<PathBuf>) -> Result<ContestOptions, Failure> {
    let mut options = ContestOptions::new(&args.scenario);
    options.payrelay = args.payrelay.clone().or(payrelay);
    options.target = args.target.clone();
    if options.payrelay.is_none() && options.target.is_none() {
        return Err(Failure::Usage(
            "no backend: give --payrelay PATH (the lab starts the pair) or --target URL".to_owned(),
        ));
    }
    options.json = args.json.clone();
    options.default_port = args.default_port;
    options.fallback_port = args.fallback_port;
    options.api_port = args.api_port;
    options.env_file = Some(args.pair.env_file.clone());
    options.envelope = !args.pair.no_envelope;
    options.journal = !args.pair.no_journal;
    options.compose_file = args.pair.compose_file.clone();
    options.verbose = !args.quiet;
    options.framing = args.framing.framing;
    options.processors_running = args.processors_running;
    options.audit_ids = args.audit_ids;
    Ok(options)
}

/// What a finished contest found among what `fail_on` lists, each as a few words; empty when it
/// passes. `none` in the list, or an empty list, fails on nothing.
pub fn findings(results: &Results, fail_on: &[Finding]) -> Vec<String> {
    if fail_on.contains(&Finding::None) {
        return Vec::new();
    }
    let mut found = Vec::new();
    for finding in fail_on {
        let what = match finding {
            Finding::Inconsistencies if results.inconsistencies > 0 => {
                format!("{} inconsistencies", results.inconsistencies)
            }
            Finding::Lag if results.lag != 0 => format!("lag {}", results.lag),
            Finding::Failed if results.posts_failed > 0 => {
                format!("{} failed POSTs", results.posts_failed)
            }
            _ => continue,
        };
        if !found.contains(&what) {
            found.push(what);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::report::read_results;

    /// The checked-in `ci-short` run (clean: no inconsistency, no failure, lag 0).
    fn clean() -> Results {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        read_results(&root.join("tests/fixtures/ci-short-payrelay.json")).expect("the fixture")
    }

    /// Goal: `--fail-on` fails a finished contest on what it lists and on nothing else; `none`
    /// fails on nothing. Method: the clean fixture, then each finding added.
    #[test]
    fn fail_on_lists_what_fails_a_contest() {
        use Finding::{Failed, Inconsistencies, Lag, None};
        let results = clean();
        assert!(findings(&results, &[Inconsistencies, Lag, Failed]).is_empty(), "clean");
        let mut results = clean();
        results.inconsistencies = 4;
        assert_eq!(findings(&results, &[Inconsistencies]), ["4 inconsistencies"]);
        assert!(findings(&results, &[Lag, Failed]).is_empty(), "not listed");
        assert!(findings(&results, &[Inconsistencies, None]).is_empty(), "none wins");
        results.lag = -2;
        results.posts_failed = 1;
        assert_eq!(
            findings(&results, &[Failed, Lag, Inconsistencies, Lag]),
            ["1 failed POSTs", "lag -2", "4 inconsistencies"]
        );
    }

    /// Goal: the default is `inconsistencies`, a list is comma-separated, an unknown finding is
    /// a usage error. Method: the bench's parser.
    #[test]
    fn fail_on_parses() {
        let parse = |extra: &[&str]| {
            let args = ["contest", "--scenario", "x.toml"].iter().chain(extra);
            ContestBench::try_parse_from(args).map(|bench| bench.contest.fail_on)
        };
        assert_eq!(parse(&[]).expect("default"), [Finding::Inconsistencies]);
        assert_eq!(
            parse(&["--fail-on", "lag,failed"]).expect("a list"),
            [Finding::Lag, Finding::Failed]
        );
        let error = parse(&["--fail-on", "latency"]).expect_err("unknown");
        assert_eq!(error.exit_code(), 2);
    }
}
