//! The command line's shape, as clap types: every subcommand, its options, their defaults and
//! their help. Only the shape: what each subcommand does is in the files beside this one, so
//! that the help text can be read in one place.

use std::{net::Ipv4Addr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::BoolishValueParser};

use crate::{
    contest::{API_PORT, DEFAULT_PORT, FALLBACK_PORT},
    emulator::{HEALTH_WINDOW_MS_DEFAULT, Which},
    framing::Framing,
    provenance::COMMIT,
};

/// `--version`: the crate's version and the commit it was built from.
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RINHA_LAB_COMMIT"), ")");
const _: () = assert!(!COMMIT.is_empty(), "build.rs always sets a commit, `unknown` at worst");

/// What `--help` says after the subcommands: the exit codes scripts rely on.
const EXIT_CODES_HELP: &str = "\
Exit codes: 0 success; 1 a run that failed (an error: a missing file, a backend that never
answered); 2 a usage error (an unknown option, a bad value); 3 a contest that ran to its end
but found what --fail-on lists (inconsistencies by default).";

/// `rinha-lab`: a local replica of the Rinha de Backend 2025 contest.
#[derive(Debug, Parser)]
#[command(
    name = "rinha-lab",
    version = VERSION,
    about = "A local replica of the Rinha de Backend 2025 contest: processors, load, checks, score",
    after_help = EXIT_CODES_HELP,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each line is what `rinha-lab --help` lists.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The two payment processors in one process, as the contest's rules describe them.
    Processors(ProcessorsArgs),
    /// One processor alone, as the contest runs each in a container of its own.
    Processor(ProcessorArgs),
    /// A server answering 202 with an empty body to anything: the latency floor.
    Canned(CannedArgs),
    /// The whole contest: processors, the payrelay pair (or --target), load, checks, score.
    #[command(after_help = EXIT_CODES_HELP)]
    Contest(ContestArgs),
    /// The payrelay pair exactly as the contest starts it, until Ctrl-C: the deployment
    /// without Docker (start the processors first).
    Pair(PairArgs),
    /// Open-model load stepped up on the pair and on canned until the pair's p99 passes 1 ms.
    Capacity(CapacityArgs),
    /// Draws the report (one SVG) of a results JSON, from the file alone.
    Report(ReportArgs),
    /// Key figures of 2 to 8 results files side by side, and one picture of their series.
    Compare(CompareArgs),
}

/// How the emulated processors frame their answers.
#[derive(Debug, Clone, Args)]
pub struct FramingArg {
    /// How the processors frame their answers on the wire: kestrel (as the real ones) or
    /// content-length (the lab's earlier framing).
    #[arg(long, value_name = "kestrel|content-length", default_value = "kestrel")]
    pub framing: Framing,
}

/// `rinha-lab processors`.
#[derive(Debug, Clone, Args)]
pub struct ProcessorsArgs {
    /// The default processor's port (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub default_port: u16,
    /// The fallback processor's port (0: any free port).
    #[arg(long, default_value_t = FALLBACK_PORT)]
    pub fallback_port: u16,
    /// The default processor's fee, as a fraction.
    #[arg(long, default_value_t = 0.05)]
    pub fee_default: f64,
    /// The fallback processor's fee, as a fraction.
    #[arg(long, default_value_t = 0.15)]
    pub fee_fallback: f64,
    /// The health endpoint's rate-limit window, ms (one call per window).
    #[arg(long, default_value_t = HEALTH_WINDOW_MS_DEFAULT)]
    pub health_window_ms: u64,
    /// The address both listen on (0.0.0.0 to serve other hosts).
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    pub bind: Ipv4Addr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub framing: FramingArg,
}

/// `rinha-lab processor`.
#[derive(Debug, Clone, Args)]
pub struct ProcessorArgs {
    /// Which processor: default or fallback.
    #[arg(long, value_name = "default|fallback")]
    pub name: Which,
    /// The port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Its fee, as a fraction [default: 0.05 for default, 0.15 for fallback].
    #[arg(long)]
    pub fee: Option<f64>,
    /// The address it listens on.
    #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED)]
    pub bind: Ipv4Addr,
    /// The health endpoint's rate-limit window, ms (one call per window).
    #[arg(long, default_value_t = HEALTH_WINDOW_MS_DEFAULT)]
    pub health_window_ms: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub framing: FramingArg,
}

/// `rinha-lab canned`.
#[derive(Debug, Clone, Args)]
pub struct CannedArgs {
    /// The port (0: any free port).
    #[arg(long, default_value_t = API_PORT)]
    pub port: u16,
    /// The address it listens on.
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    pub bind: Ipv4Addr,
    /// Also send each POST /payments on to this processor (http://HOST:PORT, loopback or a
    /// container's private address) after its 202: the floor of an intermediary that loads
    /// the processors as payrelay does.
    #[arg(long, value_name = "URL", value_parser = crate::canned::forward_target)]
    pub forward: Option<std::net::SocketAddr>,
}

/// What a contest's end can be failed on (`--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Finding {
    /// Any consistency check found the backend's summary apart from the processors'.
    Inconsistencies,
    /// Accepted payments the processors do not hold at teardown, or the reverse (`lag` ≠ 0).
    Lag,
    /// Any POST failed (timeout, status, connection).
    Failed,
    /// Nothing: the exit code says only whether the run completed.
    None,
}

/// The payrelay pair's settings, shared by `contest`, `pair` and `capacity`.
#[derive(Debug, Clone, Args)]
pub struct PairOptions {
    /// payrelay's env file, read before the lab's own settings (skipped if missing, except by
    /// `pair`).
    #[arg(long, value_name = "FILE", default_value = "tuning/contest.env")]
    pub env_file: PathBuf,
    /// Run the pair without the cgroups that give each instance its compose service's limits.
    #[arg(long)]
    pub no_envelope: bool,
    /// Give the instances no journal folders.
    #[arg(long)]
    pub no_journal: bool,
    /// The compose file whose per-instance limits the envelope applies.
    #[arg(long, value_name = "FILE", default_value = "docker-compose.yml")]
    pub compose_file: PathBuf,
}

/// `rinha-lab contest` (and `cargo bench --bench contest --`).
#[derive(Debug, Clone, Args)]
pub struct ContestArgs {
    /// The scenario: a TOML file of benches/scenarios/.
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// The payrelay binary: the lab starts the pair itself.
    #[arg(long, value_name = "PATH")]
    pub payrelay: Option<PathBuf>,
    /// A backend already running (http://127.0.0.1:9999): only the processors are started,
    /// and it must point at them. Wins over --payrelay.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Where to write the results JSON (and its report, the same path with .svg).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The default processor's port (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub default_port: u16,
    /// The fallback processor's port (0: any free port).
    #[arg(long, default_value_t = FALLBACK_PORT)]
    pub fallback_port: u16,
    /// The pair's shared API port (0: any free port).
    #[arg(long, default_value_t = API_PORT)]
    pub api_port: u16,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub pair: PairOptions,
    /// No progress lines, no table (errors and warnings still go to stderr).
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub framing: FramingArg,
    /// The processors are already running on 127.0.0.1 at --default-port and
    /// --fallback-port (containers): none is started.
    #[arg(long)]
    pub processors_running: bool,
    /// Account for every accepted payment, for a run whose backend may lose some (a kill made
    /// from outside the lab): keep each accepted correlationId, wait before teardown until the
    /// processors' books are still (2 s unchanged, 30 s at most), then look each one up at both
    /// processors (`GET /payments/{id}`) and print those neither has.
    #[arg(long)]
    pub audit_ids: bool,
    /// What makes a finished contest exit with 3 (comma-separated; none: never).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "inconsistencies")]
    pub fail_on: Vec<Finding>,
}

/// `rinha-lab pair`.
#[derive(Debug, Clone, Args)]
pub struct PairArgs {
    /// The payrelay binary.
    #[arg(long, value_name = "PATH")]
    pub payrelay: PathBuf,
    /// The pair's shared API port (0: any free port).
    #[arg(long, default_value_t = API_PORT)]
    pub api_port: u16,
    /// Where the default processor listens on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub default_port: u16,
    /// Where the fallback processor listens on 127.0.0.1.
    #[arg(long, default_value_t = FALLBACK_PORT)]
    pub fallback_port: u16,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub pair: PairOptions,
}

/// `rinha-lab capacity` (and `cargo bench --bench capacity --`). Each knob of the sweep's
/// shape also reads an environment variable (handy under `cargo bench`); a flag wins over it.
#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// The payrelay binary (the bench passes cargo's build).
    #[arg(long, value_name = "PATH")]
    pub payrelay: Option<PathBuf>,
    /// payrelay's env file [default: tuning/contest.env].
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The compose file whose per-instance limits the envelope applies
    /// [default: docker-compose.yml].
    #[arg(long, value_name = "FILE")]
    pub compose_file: Option<PathBuf>,
    /// Give the instances no journal folders.
    #[arg(long)]
    pub no_journal: bool,
    /// No progress lines, no table.
    #[arg(long)]
    pub quiet: bool,
    /// The rates per second, comma-separated, increasing
    /// [default: 500,600,750,1000,1500,2000,3000,4000,6000,8000,12000,16000].
    #[arg(long, env = "CAPACITY_RATES", allow_negative_numbers = true, value_delimiter = ',', value_parser = rate_per_s)]
    pub rates: Option<Vec<f64>>,
    /// Drop the rates above this one.
    #[arg(long, env = "CAPACITY_RATE_MAX_PER_S", allow_negative_numbers = true, value_parser = rate_per_s)]
    pub rate_max_per_s: Option<f64>,
    /// Run at most this many rates.
    #[arg(long, env = "CAPACITY_STEPS_MAX")]
    pub steps_max: Option<usize>,
    /// Measured seconds per rate and backend [default: 10].
    #[arg(long, env = "CAPACITY_STEP_S", allow_negative_numbers = true, value_parser = seconds_positive)]
    pub step_s: Option<f64>,
    /// Least warm-up seconds per rate and backend [default: 2].
    #[arg(long, env = "CAPACITY_WARMUP_S", allow_negative_numbers = true, value_parser = seconds_or_zero)]
    pub warmup_s: Option<f64>,
    /// Keep-alive connections per backend [default: 600].
    #[arg(long, env = "CAPACITY_CONNECTIONS")]
    pub connections: Option<usize>,
    /// Where the JSON goes [default: target/capacity.json].
    #[arg(long, value_name = "FILE", env = "CAPACITY_JSON")]
    pub json: Option<PathBuf>,
    /// Run every rate, even past the pair's bar.
    #[arg(long, env = "CAPACITY_NO_STOP", value_parser = BoolishValueParser::new())]
    pub no_stop: bool,
    /// Run the pair without its cgroups.
    #[arg(long, env = "CAPACITY_NO_ENVELOPE", value_parser = BoolishValueParser::new())]
    pub no_envelope: bool,
}

/// `rinha-lab report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The results JSON to draw.
    #[arg(value_name = "RESULTS.json")]
    pub file: PathBuf,
    /// Where the SVG goes [default: the JSON's path with .svg].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `rinha-lab compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The results files, the first one the reference of the ratios (2 to 8).
    #[arg(value_name = "RESULTS.json", num_args = 2..=crate::report::RUNS_MAX, required = true)]
    pub files: Vec<PathBuf>,
    /// Where the picture goes.
    #[arg(long, value_name = "FILE", default_value = "compare.svg")]
    pub out: PathBuf,
}

/// A rate per second: finite and above 0.
fn rate_per_s(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| format!("cannot read {text:?} as a rate"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("{text} is not a positive rate"))
    }
}

/// Seconds above 0.
fn seconds_positive(text: &str) -> Result<f64, String> {
    let s = seconds_or_zero(text)?;
    if s > 0.0 { Ok(s) } else { Err(format!("{text} is not a positive number of seconds")) }
}

/// Seconds, 0 allowed.
fn seconds_or_zero(text: &str) -> Result<f64, String> {
    let s: f64 = text.trim().parse().map_err(|_| format!("cannot read {text:?} as seconds"))?;
    if s.is_finite() && s >= 0.0 {
        Ok(s)
    } else {
        Err(format!("{text} is not a number of seconds"))
    }
}
