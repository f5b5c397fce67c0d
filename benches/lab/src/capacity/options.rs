//! The sweep's knobs. Each shape knob is a flag with an environment variable beside it (handy
//! under `cargo bench`, and for a test that runs it short); a flag wins over its variable.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::canned_process::CannedCommand;

/// The rates stepped through by default, per second: from under the contest's peak (~600/s)
/// up in steps of a third to a half, far past what two 0.74-CPU instances can take, so that the
/// sweep ends on the bar rather than on the list.
pub const RATES_DEFAULT_PER_S: [f64; 12] =
    [500.0, 600.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0];
/// Measured seconds per step and backend: 5,000 samples at 500/s, so the p99 rests on 50.
pub const STEP_S_DEFAULT: f64 = 10.0;
/// Least warm-up per step, seconds (longer when opening the pool needs it): the pair's
/// connections, queues and processor pools reach their steady state.
pub const WARMUP_S_DEFAULT: f64 = 2.0;
/// Keep-alive connections per backend: the contest's peak, one per virtual user (~600).
pub const CONNECTIONS_DEFAULT: usize = 600;
/// At most this many connections: each is a file descriptor in the lab (this sandbox's hard
/// limit is 20,000) and a connection slot in payrelay (`CONNECTIONS_MAX`: 6,485 per instance
/// in the contest's envelope, derived from its memory limit); a schedule that needs more is far
/// past the bar anyway.
pub const CONNECTIONS_MAX: usize = 8192;
/// Each request's timeout: the contest's (`timeout_ms` of the scenarios).
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// Everything a sweep needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityOptions {
    /// The payrelay binary.
    pub payrelay: PathBuf,
    /// How to start `rinha-lab canned` as a process.
    pub canned: CannedCommand,
    /// payrelay's env file (`tuning/contest.env`).
    pub env_file: Option<PathBuf>,
    /// The compose file whose per-instance limits the envelope applies; `None`: no envelope.
    pub compose_file: Option<PathBuf>,
    /// Give each instance a journal folder, as the deployment does.
    pub journal: bool,
    /// The rates to step through, increasing, per second (after the rate and step caps).
    pub rates_per_s: Vec<f64>,
    /// Measured time per step and backend.
    pub step: Duration,
    /// Least warm-up per step and backend.
    pub warmup_min: Duration,
    /// Keep-alive connections per backend.
    pub connections: usize,
    /// Each request's timeout.
    pub request_timeout: Duration,
    /// Stop after the first step where payrelay is over the bar (p99 > 1 ms, a failure, a
    /// miss); otherwise run every rate.
    pub stop_over_bar: bool,
    /// Where to write the JSON; `None`: not written.
    pub json: Option<PathBuf>,
    /// Print progress and the table.
    pub verbose: bool,
}

impl CapacityOptions {
    /// The defaults, with paths under the repository's `root`: `tuning/contest.env`,
    /// `docker-compose.yml`'s envelope, the JSON at `target/capacity.json`.
    pub fn new(payrelay: PathBuf, canned: CannedCommand, root: &Path) -> CapacityOptions {
        CapacityOptions {
            payrelay,
            canned,
            env_file: Some(root.join("tuning/contest.env")),
            compose_file: Some(root.join("docker-compose.yml")),
            journal: true,
            rates_per_s: RATES_DEFAULT_PER_S.to_vec(),
            step: Duration::from_secs_f64(STEP_S_DEFAULT),
            warmup_min: Duration::from_secs_f64(WARMUP_S_DEFAULT),
            connections: CONNECTIONS_DEFAULT,
            request_timeout: REQUEST_TIMEOUT,
            stop_over_bar: true,
            json: Some(root.join("target/capacity.json")),
            verbose: true,
        }
    }

    /// The warm-up of a step at `rate_per_s`: at least [`CapacityOptions::warmup_min`], and
    /// long enough that every pooled connection has carried one request (the pool hands them
    /// out in turn), so that no measured request pays for a connect.
    pub fn warmup_at(&self, rate_per_s: f64) -> Duration {
        let pool_s = self.connections as f64 / rate_per_s;
        self.warmup_min.max(Duration::from_secs_f64(pool_s))
    }
}

/// The knobs a flag or a variable sets: flag, variable, meaning (the usage text).
pub const KNOBS: [(&str, &str, &str); 9] = [
    ("--rates", "CAPACITY_RATES", "rates per second, comma-separated, increasing"),
    ("--rate-max-per-s", "CAPACITY_RATE_MAX_PER_S", "drop the rates above this"),
    ("--steps-max", "CAPACITY_STEPS_MAX", "run at most this many steps"),
    ("--step-s", "CAPACITY_STEP_S", "measured seconds per step and backend (10)"),
    ("--warmup-s", "CAPACITY_WARMUP_S", "least warm-up seconds per step and backend (2)"),
    ("--connections", "CAPACITY_CONNECTIONS", "keep-alive connections per backend (600)"),
    ("--json", "CAPACITY_JSON", "where the JSON goes (target/capacity.json)"),
    ("--no-stop", "CAPACITY_NO_STOP", "1: run every rate, even past payrelay's bar"),
    ("--no-envelope", "CAPACITY_NO_ENVELOPE", "1: payrelay without its cgroups"),
];
/// Flags without a variable.
const FLAGS_ONLY: [&str; 5] =
    ["--payrelay", "--env-file", "--compose-file", "--no-journal", "--quiet"];
/// Flags that take no value (`--bench` is what cargo passes to a bench).
const SWITCHES: [&str; 5] = ["--no-stop", "--no-envelope", "--no-journal", "--quiet", "--bench"];

/// The usage text.
pub fn usage() -> String {
    let mut text = String::from(
        "usage: cargo bench --bench capacity -- [--payrelay PATH] [--env-file FILE] \
         [--compose-file FILE] [--no-journal] [--quiet] [KNOB...]\nknobs (flag, or variable):\n",
    );
    for (flag, variable, meaning) in KNOBS {
        text.push_str(&format!("  {flag:<18} {variable:<24} {meaning}\n"));
    }
    text
}

/// `--key value`, `--key=value` and switches, in order.
fn pairs(args: &[String]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut pairs = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let known = KNOBS.iter().any(|(flag, _, _)| arg.split('=').next() == Some(flag))
            || FLAGS_ONLY.iter().chain(&SWITCHES).any(|flag| arg.split('=').next() == Some(flag));
        if !known {
            return Err(format!("unknown argument {arg:?}\n{}", usage()));
        }
        if let Some((key, value)) = arg.split_once('=') {
            pairs.push((key.to_owned(), Some(value.to_owned())));
        } else if SWITCHES.contains(&arg.as_str()) {
            pairs.push((arg.clone(), Some("1".to_owned())));
        } else {
            let value = iter.next().ok_or(format!("{arg} needs a value"))?;
            pairs.push((arg.clone(), Some(value.clone())));
        }
    }
    Ok(pairs)
}

/// Applies `args` (and, for the knobs without a flag there, `env`) over `defaults`.
pub fn parse(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    defaults: CapacityOptions,
) -> Result<CapacityOptions, String> {
    let pairs = pairs(args)?;
    let flag =
        |name: &str| pairs.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
    let knob = |flag_name: &str| -> Option<(String, String)> {
        let (_, variable, _) = KNOBS.iter().find(|(f, _, _)| *f == flag_name)?;
        flag(flag_name)
            .map(|v| (flag_name.to_owned(), v))
            .or_else(|| env(variable).map(|v| ((*variable).to_owned(), v)))
    };
    let mut options = defaults;
    if let Some(path) = flag("--payrelay") {
        options.payrelay = PathBuf::from(path);
    }
    if let Some(path) = flag("--env-file") {
        options.env_file = Some(PathBuf::from(path));
    }
    if let Some(path) = flag("--compose-file") {
        options.compose_file = Some(PathBuf::from(path));
    }
    options.journal &= flag("--no-journal").is_none();
    options.verbose &= flag("--quiet").is_none();
    if let Some((name, text)) = knob("--no-envelope")
        && switch(&name, &text)?
    {
        options.compose_file = None;
    }
    if let Some((name, text)) = knob("--no-stop") {
        options.stop_over_bar = !switch(&name, &text)?;
    }
    if let Some((_, path)) = knob("--json") {
        options.json = Some(PathBuf::from(path));
    }
    if let Some((name, text)) = knob("--step-s") {
        options.step = seconds(&name, &text, false)?;
    }
    if let Some((name, text)) = knob("--warmup-s") {
        options.warmup_min = seconds(&name, &text, true)?;
    }
    if let Some((name, text)) = knob("--connections") {
        options.connections = number(&name, &text)?;
    }
    if let Some((name, text)) = knob("--rates") {
        options.rates_per_s = rates(&name, &text)?;
    }
    let rate_max = knob("--rate-max-per-s").map(|(n, t)| rate(&n, &t)).transpose()?;
    let steps_max = knob("--steps-max").map(|(n, t)| number(&n, &t)).transpose()?;
    cap_rates(&mut options.rates_per_s, rate_max, steps_max)?;
    check(&options)?;
    Ok(options)
}

/// Drops the rates above `rate_max` and those after the first `steps_max`; an error if none is
/// left.
fn cap_rates(
    rates_per_s: &mut Vec<f64>,
    rate_max: Option<f64>,
    steps_max: Option<usize>,
) -> Result<(), String> {
    if let Some(rate_max) = rate_max {
        rates_per_s.retain(|&r| r <= rate_max);
    }
    if let Some(steps_max) = steps_max {
        rates_per_s.truncate(steps_max);
    }
    if rates_per_s.is_empty() {
        return Err(format!(
            "no step left to run (rate max {rate_max:?}/s, steps max {steps_max:?})"
        ));
    }
    Ok(())
}

/// What no knob may combine into.
fn check(options: &CapacityOptions) -> Result<(), String> {
    if !(1..=CONNECTIONS_MAX).contains(&options.connections) {
        return Err(format!(
            "connections: {} is not between 1 and {CONNECTIONS_MAX}",
            options.connections
        ));
    }
    let rates = &options.rates_per_s;
    if !rates.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("rates {rates:?}: must increase from step to step"));
    }
    Ok(())
}

fn switch(name: &str, text: &str) -> Result<bool, String> {
    match text.trim() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(format!("{name}: {other:?} is not 1 or 0")),
    }
}

fn seconds(name: &str, text: &str, zero_allowed: bool) -> Result<Duration, String> {
    let s: f64 = text.trim().parse().map_err(|_| format!("{name}: cannot read {text:?}"))?;
    if !s.is_finite() || s < 0.0 || (s == 0.0 && !zero_allowed) {
        return Err(format!("{name}: {text} is not a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn number(name: &str, text: &str) -> Result<usize, String> {
    text.trim().parse().map_err(|_| format!("{name}: cannot read {text:?} as a whole number"))
}

fn rate(name: &str, text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| format!("{name}: cannot read {text:?}"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("{name}: {text} is not a positive rate"))
    }
}

fn rates(name: &str, text: &str) -> Result<Vec<f64>, String> {
    text.split(',').map(|part| rate(name, part)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> CapacityOptions {
        let canned = CannedCommand::rinha_lab(PathBuf::from("rinha-lab"));
        CapacityOptions::new(PathBuf::from("payrelay"), canned, Path::new("/repo"))
    }

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Goal: without knobs the sweep is the documented one, rooted at the repository. Method:
    /// parse `--bench`, which cargo passes.
    #[test]
    fn defaults_are_the_documented_sweep() {
        let options = parse(&args("--bench"), &no_env, defaults()).expect("defaults");
        assert_eq!(options.rates_per_s[..7], [500.0, 600.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0]);
        assert_eq!(options.step, Duration::from_secs(10));
        assert_eq!(options.connections, 600);
        assert!(options.stop_over_bar && options.journal && options.verbose);
        assert_eq!(options.compose_file, Some(PathBuf::from("/repo/docker-compose.yml")));
        assert_eq!(options.json, Some(PathBuf::from("/repo/target/capacity.json")));
    }

    /// Goal: each knob is read from its variable, a flag wins over the variable, the rate cap
    /// and the step cap both apply. Method: an environment as a closure.
    #[test]
    fn flags_win_over_variables() {
        let env = |name: &str| match name {
            "CAPACITY_STEP_S" => Some("2".to_owned()),
            "CAPACITY_RATES" => Some("100,200,300,400".to_owned()),
            "CAPACITY_RATE_MAX_PER_S" => Some("300".to_owned()),
            "CAPACITY_NO_ENVELOPE" => Some("1".to_owned()),
            "CAPACITY_JSON" => Some("/tmp/env.json".to_owned()),
            "CAPACITY_CONNECTIONS" => Some("8".to_owned()),
            _ => None,
        };
        let options = parse(
            &args("--step-s=0.5 --steps-max 2 --json /tmp/flag.json --quiet"),
            &env,
            defaults(),
        )
        .expect("knobs");
        assert_eq!(options.step, Duration::from_millis(500));
        assert_eq!(options.rates_per_s, [100.0, 200.0]);
        assert_eq!(options.compose_file, None);
        assert_eq!(options.json, Some(PathBuf::from("/tmp/flag.json")));
        assert_eq!(options.connections, 8);
        assert!(!options.verbose);
        assert_eq!(options.warmup_at(100.0), Duration::from_secs(2), "the minimum");
        let options = parse(&args("--warmup-s 0 --no-stop"), &env, defaults()).expect("knobs");
        assert_eq!(options.rates_per_s, [100.0, 200.0, 300.0]);
        assert!(!options.stop_over_bar);
        assert_eq!(options.warmup_at(100.0), Duration::from_millis(80), "8 connections at 100/s");
    }

    /// Goal: knobs that make no sweep are refused with the knob's name. Method: one bad value
    /// at a time.
    #[test]
    fn bad_knobs_are_named() {
        let refused = |text: &str| parse(&args(text), &no_env, defaults()).expect_err(text);
        assert!(refused("--rates 500,400").contains("increase"));
        assert!(refused("--rates 500,x").contains("--rates"));
        assert!(refused("--rates 0").contains("--rates"));
        assert!(refused("--step-s 0").contains("--step-s"));
        assert!(refused("--warmup-s -1").contains("--warmup-s"));
        assert!(refused("--connections 0").contains("connections"));
        assert!(refused("--connections 9000").contains("connections"));
        assert!(refused("--rate-max-per-s 100").contains("no step left"));
        assert!(refused("--no-stop=maybe").contains("--no-stop"));
        assert!(refused("--step-s").contains("needs a value"));
        assert!(refused("--surprise 1").contains("unknown argument"));
        let env = |name: &str| (name == "CAPACITY_STEPS_MAX").then(|| "two".to_owned());
        let error = parse(&[], &env, defaults()).expect_err("steps max");
        assert!(error.contains("CAPACITY_STEPS_MAX"), "{error}");
    }
}
