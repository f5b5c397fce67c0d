//! Command line: `processors`, `canned` and `contest`, shared by the `rinha-lab` binary and the
//! `contest` bench.

use std::{path::PathBuf, process::ExitCode};

use crate::{
    canned,
    contest::{self, ContestOptions},
    emulator::{self, EmulatorConfig, Which},
};

const USAGE: &str = "\
usage:
  rinha-lab processors [--default-port 8001] [--fallback-port 8002] [--fee-default 0.05]
                       [--fee-fallback 0.15] [--health-window-ms 5000]
  rinha-lab canned [--port 9999]
  rinha-lab contest --scenario FILE (--payrelay PATH | --target URL) [--json FILE]
                    [--default-port 8001] [--fallback-port 8002] [--api-port 9999]
                    [--env-file tuning/contest.env] [--no-envelope] [--quiet]";

/// Parsed `--key value` pairs and `--flag`s.
struct Args {
    pairs: Vec<(String, Option<String>)>,
}

/// Flags that take no value.
const FLAGS: &[&str] = &["--no-envelope", "--quiet", "--bench"];

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument {arg:?}"));
            }
            if let Some((key, value)) = arg.split_once('=') {
                pairs.push((key.to_owned(), Some(value.to_owned())));
            } else if FLAGS.contains(&arg.as_str()) {
                pairs.push((arg.clone(), None));
            } else {
                let value = iter.next().ok_or(format!("{arg} needs a value"))?;
                pairs.push((arg.clone(), Some(value.clone())));
            }
        }
        Ok(Args { pairs })
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for (key, _) in &self.pairs {
            if key != "--bench" && !known.contains(&key.as_str()) {
                return Err(format!("unknown option {key}"));
            }
        }
        Ok(())
    }

    fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            Some(text) => text.parse().map_err(|_| format!("{name}: cannot read {text:?}")),
            None => Ok(default),
        }
    }
}

/// Runs the `rinha-lab` command line (`args` without the program name).
pub fn main(args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "processors" => processors(rest),
        "canned" => serve_canned(rest),
        "contest" => contest_command(rest, None),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    finish(result)
}

/// Runs `contest` with `payrelay` as the default binary (the bench passes cargo's build of it).
pub fn contest_main(args: &[String], payrelay: Option<PathBuf>) -> ExitCode {
    finish(contest_command(args, payrelay))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rinha-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn processors(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&[
        "--default-port",
        "--fallback-port",
        "--fee-default",
        "--fee-fallback",
        "--health-window-ms",
    ])?;
    let mut config = EmulatorConfig::new(
        args.parsed("--default-port", contest::DEFAULT_PORT)?,
        args.parsed("--fallback-port", contest::FALLBACK_PORT)?,
        args.parsed("--fee-default", 0.05)?,
        args.parsed("--fee-fallback", 0.15)?,
    );
    config.health_window_ms = args.parsed("--health-window-ms", config.health_window_ms)?;
    let emulator = emulator::start(config).map_err(|e| format!("starting the processors: {e}"))?;
    println!(
        "processors listening: default http://{} fallback http://{} (Ctrl-C to stop)",
        emulator.addr(Which::Default),
        emulator.addr(Which::Fallback)
    );
    loop {
        std::thread::park();
    }
}

fn serve_canned(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&["--port"])?;
    let server =
        canned::start(args.parsed("--port", contest::API_PORT)?).map_err(|e| e.to_string())?;
    println!("canned 202 server listening on http://{} (Ctrl-C to stop)", server.addr());
    loop {
        std::thread::park();
    }
}

fn contest_command(args: &[String], payrelay: Option<PathBuf>) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&[
        "--scenario",
        "--payrelay",
        "--target",
        "--json",
        "--default-port",
        "--fallback-port",
        "--api-port",
        "--env-file",
        "--no-envelope",
        "--quiet",
    ])?;
    let scenario = args.get("--scenario").ok_or(format!("--scenario is required\n{USAGE}"))?;
    let mut options = ContestOptions::new(scenario);
    options.payrelay = args.get("--payrelay").map(PathBuf::from).or(payrelay);
    options.target = args.get("--target").map(str::to_owned);
    options.json = args.get("--json").map(PathBuf::from);
    options.default_port = args.parsed("--default-port", options.default_port)?;
    options.fallback_port = args.parsed("--fallback-port", options.fallback_port)?;
    options.api_port = args.parsed("--api-port", options.api_port)?;
    if let Some(path) = args.get("--env-file") {
        options.env_file = Some(PathBuf::from(path));
    }
    options.envelope = !args.flag("--no-envelope");
    options.verbose = !args.flag("--quiet");
    contest::run(&options).map(|_| ())
}
