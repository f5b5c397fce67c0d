//! `rinha-lab capacity` (and `cargo bench --bench capacity`): the knobs into a
//! [`CapacityOptions`], then the sweep.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::Parser;

use super::{
    args::{CapacityArgs, VERSION},
    exit::{self, Failure},
};
use crate::capacity::{self, CannedCommand, CapacityOptions};

/// `cargo bench --bench capacity -- [OPTIONS]`: `rinha-lab capacity`'s options, with cargo's
/// build of payrelay and the repository's files.
#[derive(Debug, Parser)]
#[command(
    name = "cargo bench --bench capacity --",
    version = VERSION,
    about = "The capacity sweep against cargo's build of payrelay (rinha-lab capacity's options)"
)]
struct CapacityBench {
    #[command(flatten)]
    capacity: CapacityArgs,
    /// What cargo passes to a `harness = false` bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The capacity bench's `main`: serves canned when started as the sweep's canned process,
/// otherwise reads the knobs (`args` after the program name, then the environment) and runs the
/// sweep against `payrelay`, with the env file, compose file and JSON under `root`.
pub fn bench_main(args: &[String], payrelay: PathBuf, root: &Path) -> ExitCode {
    if let Some(code) = capacity::serve_if_child() {
        return code;
    }
    let program = std::iter::once("capacity".to_owned());
    let bench = match CapacityBench::try_parse_from(program.chain(args.iter().cloned())) {
        Ok(bench) => bench,
        Err(error) => return exit::parse_error(&error),
    };
    let result = CannedCommand::this_executable()
        .map_err(Failure::Run)
        .and_then(|canned| sweep(&bench.capacity, CapacityOptions::new(payrelay, canned, root)));
    exit::finish(result)
}

/// `rinha-lab capacity`: the canned process is this binary's `canned`, the files are found
/// from the current folder (the repository's root).
pub fn capacity(args: &CapacityArgs) -> Result<(), Failure> {
    let Some(payrelay) = args.payrelay.clone() else {
        return Err(Failure::Usage("--payrelay PATH is required".to_owned()));
    };
    let program = std::env::current_exe().map_err(|e| format!("the running executable: {e}"))?;
    let canned = CannedCommand::rinha_lab(program);
    sweep(args, CapacityOptions::new(payrelay, canned, Path::new(".")))
}

/// Runs the sweep `args` set over `defaults`.
fn sweep(args: &CapacityArgs, defaults: CapacityOptions) -> Result<(), Failure> {
    let options = apply(args, defaults).map_err(Failure::Usage)?;
    capacity::run(&options)?;
    Ok(())
}

/// `args` over `defaults`; an error naming the knob when they make no sweep.
pub fn apply(args: &CapacityArgs, defaults: CapacityOptions) -> Result<CapacityOptions, String> {
    let mut options = defaults;
    if let Some(path) = &args.payrelay {
        options.payrelay = path.clone();
    }
    if let Some(path) = &args.env_file {
        options.env_file = Some(path.clone());
    }
    if let Some(path) = &args.compose_file {
        options.compose_file = Some(path.clone());
    }
    if args.no_envelope {
        options.compose_file = None;
    }
    options.journal &= !args.no_journal;
    options.verbose &= !args.quiet;
    options.stop_over_bar = !args.no_stop;
    if let Some(path) = &args.json {
        options.json = Some(path.clone());
    }
    if let Some(step_s) = args.step_s {
        options.step = Duration::from_secs_f64(step_s);
    }
    if let Some(warmup_s) = args.warmup_s {
        options.warmup_min = Duration::from_secs_f64(warmup_s);
    }
    if let Some(connections) = args.connections {
        options.connections = connections;
    }
    if let Some(rates) = &args.rates {
        options.rates_per_s = rates.clone();
    }
    capacity::cap_rates(&mut options.rates_per_s, args.rate_max_per_s, args.steps_max)?;
    capacity::check(&options)?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> CapacityOptions {
        let canned = CannedCommand::rinha_lab(PathBuf::from("rinha-lab"));
        CapacityOptions::new(PathBuf::from("payrelay"), canned, Path::new("/repo"))
    }

    /// The bench's parser over `text` (no `CAPACITY_*` variable is set where tests run).
    fn parse(text: &str) -> Result<CapacityOptions, String> {
        let args = std::iter::once("capacity").chain(text.split_whitespace());
        let bench = CapacityBench::try_parse_from(args).map_err(|e| e.to_string())?;
        apply(&bench.capacity, defaults())
    }

    /// Goal: without knobs the sweep is the documented one, rooted at the repository. Method:
    /// parse `--bench`, which cargo passes.
    #[test]
    fn defaults_are_the_documented_sweep() {
        let options = parse("--bench").expect("defaults");
        assert_eq!(options.rates_per_s[..7], [500.0, 600.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0]);
        assert_eq!(options.step, Duration::from_secs(10));
        assert_eq!(options.connections, 600);
        assert!(options.stop_over_bar && options.journal && options.verbose);
        assert_eq!(options.compose_file, Some(PathBuf::from("/repo/docker-compose.yml")));
        assert_eq!(options.json, Some(PathBuf::from("/repo/target/capacity.json")));
    }

    /// Goal: each knob lands where it should, the rate cap and the step cap both apply.
    /// Method: two command lines.
    #[test]
    fn knobs_set_the_sweep() {
        let options = parse(
            "--step-s=0.5 --rates 100,200,300,400 --rate-max-per-s 300 --steps-max 2 \
             --json /tmp/flag.json --quiet --no-envelope --connections 8",
        )
        .expect("knobs");
        assert_eq!(options.step, Duration::from_millis(500));
        assert_eq!(options.rates_per_s, [100.0, 200.0]);
        assert_eq!(options.compose_file, None);
        assert_eq!(options.json, Some(PathBuf::from("/tmp/flag.json")));
        assert_eq!(options.connections, 8);
        assert!(!options.verbose);
        assert_eq!(options.warmup_at(100.0), Duration::from_secs(2), "the minimum");
        let options =
            parse("--rates 100,200,300 --warmup-s 0 --no-stop --connections 8").expect("knobs");
        assert_eq!(options.rates_per_s, [100.0, 200.0, 300.0]);
        assert!(!options.stop_over_bar);
        assert_eq!(options.warmup_at(100.0), Duration::from_millis(80), "8 connections at 100/s");
    }

    /// Goal: knobs that make no sweep are refused with the knob's name. Method: one bad value
    /// at a time.
    #[test]
    fn bad_knobs_are_named() {
        let refused = |text: &str| parse(text).expect_err(text);
        assert!(refused("--rates 500,400").contains("increase"));
        assert!(refused("--rates 500,x").contains("--rates"));
        assert!(refused("--rates 0").contains("--rates"));
        assert!(refused("--step-s 0").contains("--step-s"));
        assert!(refused("--warmup-s -1").contains("--warmup-s"));
        assert!(refused("--connections 0").contains("connections"));
        assert!(refused("--connections 9000").contains("connections"));
        assert!(refused("--rate-max-per-s 100").contains("no step left"));
        assert!(refused("--no-stop=maybe").contains("--no-stop"));
        assert!(refused("--step-s").contains("--step-s"));
        assert!(refused("--surprise 1").contains("--surprise"));
    }
}
