//! One call for a whole contest run: processors, backend pair (or an external target), readiness,
//! load, teardown, score, results JSON and table.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use crate::{
    backend::{
        self, Backend, BackendSpec, CgroupMemory, READY_INTERVAL_OFFICIAL, READY_TRIES_OFFICIAL,
        Usage,
    },
    client, crash,
    emulator::{self, Emulator, EmulatorConfig, Which},
    framing::Framing,
    load::{self, LoadPlan, LoadReport},
    money, report,
    sampler::InstanceWatch,
    scenario::{Kills, Scenario},
    score::{self, ScoreInput},
    series::{Series, round3},
    stats, time,
};

/// How much sooner than the checker's window end a landing counts as late: the checker's three
/// queries are not evaluated at one instant, so a payment stored just under `window_end_s`
/// after its `requestedAt` can already be caught between them.
pub const LATE_SLACK_MS: i64 = 100;
/// Seconds between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The contest's processor ports.
pub const DEFAULT_PORT: u16 = 8001;
/// See [`DEFAULT_PORT`].
pub const FALLBACK_PORT: u16 = 8002;
/// The contest's API port.
pub const API_PORT: u16 = 9999;

/// What to run.
#[derive(Debug, Clone)]
pub struct ContestOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// payrelay binary (ignored with `target`).
    pub payrelay: Option<PathBuf>,
    /// An already running backend (`http://127.0.0.1:9999`): only the processors are started.
    pub target: Option<String>,
    /// Where to write the results JSON.
    pub json: Option<PathBuf>,
    /// Default processor port (0: any free port).
    pub default_port: u16,
    /// Fallback processor port (0: any free port).
    pub fallback_port: u16,
    /// Shared API port for the started pair (0: any free port).
    pub api_port: u16,
    /// Extra environment for payrelay (`tuning/contest.env`).
    pub env_file: Option<PathBuf>,
    /// Run each instance in a cgroup with its service's limits from `compose_file`.
    pub envelope: bool,
    /// Give each instance a journal folder (`JOURNAL_DIR`, and the other's as
    /// `PEER_JOURNAL_DIR`), as the compose deployment does.
    pub journal: bool,
    /// The compose file whose limits the envelope applies.
    pub compose_file: PathBuf,
    /// Print progress lines and the results table.
    pub verbose: bool,
    /// How the emulated processors frame their answers (Kestrel's way unless comparing).
    pub framing: Framing,
    /// The processors are already running on 127.0.0.1 at `default_port` and `fallback_port`
    /// (containers, as the contest runs them): none is started, and what only the lab's own
    /// emulator can tell (`late_landings`, the progress line's queue lag) is left out.
    pub processors_running: bool,
}

impl ContestOptions {
    /// The contest's ports, the envelope on, verbose.
    pub fn new(scenario: impl Into<PathBuf>) -> ContestOptions {
        ContestOptions {
            scenario: scenario.into(),
            payrelay: None,
            target: None,
            json: None,
            default_port: DEFAULT_PORT,
            fallback_port: FALLBACK_PORT,
            api_port: API_PORT,
            env_file: Some(PathBuf::from("tuning/contest.env")),
            envelope: true,
            journal: true,
            compose_file: PathBuf::from("docker-compose.yml"),
            verbose: true,
            framing: Framing::Kestrel,
            processors_running: false,
        }
    }
}

/// The flat, stable results record (documented in `benches/lab/README.md`), and the run second
/// by second under `series`. Read back by `rinha-lab report` and `compare`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// Final score (money).
    pub score: f64,
    /// Successful POSTs × amount × (1 − fee_default) × 1.20.
    pub upper_bound: f64,
    /// score / upper_bound.
    pub score_ratio: f64,
    /// Both processors' amounts.
    pub gross: f64,
    /// Both processors' fees.
    pub fees: f64,
    /// p99 of every expected-status request, ms, rounded to 2 decimals as the final scores it.
    pub p99_ms: f64,
    /// The bonus as a fraction (0.17 = 17%).
    pub p99_bonus: f64,
    /// The fine as a fraction (0 or 0.35).
    pub fine: f64,
    /// Inconsistencies summed over the checks.
    pub inconsistencies: u64,
    /// Number of consistency checks made.
    pub checks: u64,
    /// Successful POSTs − payments recorded by the processors.
    pub lag: i64,
    /// Payments recorded beyond the successful POSTs.
    pub caixa_dois: u64,
    /// POSTs answered 200/201/202/204.
    pub posts_ok: u64,
    /// POSTs that failed, all reasons.
    pub posts_failed: u64,
    /// ... with no answer within the timeout.
    pub posts_failed_timeout: u64,
    /// ... with another status.
    pub posts_failed_status: u64,
    /// ... whose connection could not be opened.
    pub posts_failed_connect: u64,
    /// ... whose connection broke in flight.
    pub posts_failed_io: u64,
    /// Payments at the default processor.
    pub default_count: u64,
    /// Payments at the fallback processor.
    pub fallback_count: u64,
    /// Their amount.
    pub default_amount: f64,
    /// Their amount.
    pub fallback_amount: f64,
    /// POST latency percentiles (expected statuses), ms.
    pub post_p50_ms: f64,
    /// See `post_p50_ms`.
    pub post_p90_ms: f64,
    /// See `post_p50_ms`.
    pub post_p99_ms: f64,
    /// See `post_p50_ms`.
    pub post_max_ms: f64,
    /// p99 of our `GET /payments-summary` calls, ms.
    pub summary_p99_ms: f64,
    /// Summary calls that failed or were unreadable (counted as zeros).
    pub summary_failures: u64,
    /// Admin calls that failed.
    pub admin_failures: u64,
    /// Payments stored later than `window_end_s` − [`LATE_SLACK_MS`] after their
    /// `requestedAt`: those a check could find in a processor's book and not in ours. Chance
    /// decides whether a check meets one; this counts them all. `None` when the processors
    /// were not the lab's own (`processors_running`).
    pub late_landings: Option<u64>,
    /// The largest lateness among them, ms (0 when none).
    pub late_landing_max_ms: Option<i64>,
    /// The most payment requests the default processor held at once (in progress or queued;
    /// lookups by id included, which share its concurrency limiter). Above its 800 in
    /// progress, the rest waited in its queue before their delay began, so they landed that
    /// much after their planned `requestedAt`. `None` as `late_landings`.
    pub default_admitted_max: Option<u64>,
    /// The same for the fallback processor.
    pub fallback_admitted_max: Option<u64>,
    /// Crash harness (only with the scenario's `[kills]`; the key is absent otherwise): kills
    /// made, each followed by a restart (after the scenario's `restart_delay_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kills: Option<u64>,
    /// Accepted payments (200/201/202/204) in neither processor's book once the backlog has
    /// drained: lost. Only with kills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids_lost: Option<u64>,
    /// Accepted payments in both processors' books: paid twice. Only with kills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids_twice: Option<u64>,
    /// Σ |backend − processor| of `totalRequests` (default and fallback) between the backend's
    /// `GET /payments-summary` over the whole test and the processors' totals, once the backlog
    /// has drained. Only with kills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_summary_mismatch: Option<u64>,
    /// Instance A peak RSS, MB (null with `--target`).
    pub backend_a_rss_mb_max: Option<f64>,
    /// Instance A CPU seconds.
    pub backend_a_cpu_s: Option<f64>,
    /// Instance B peak RSS, MB.
    pub backend_b_rss_mb_max: Option<f64>,
    /// Instance B CPU seconds.
    pub backend_b_cpu_s: Option<f64>,
    /// Instance A's memory cgroup at its peak, MB: besides its RSS, the page cache it brought
    /// in (the journal) and what the kernel charges for its sockets, all of which count against
    /// its limit. Null without the envelope, or where the kernel keeps no peak (cgroup v2 before
    /// Linux 5.19); absent in files written before it existed.
    #[serde(default)]
    pub backend_a_cgroup_memory_peak_mb: Option<f64>,
    /// Instance B's, as A's.
    #[serde(default)]
    pub backend_b_cgroup_memory_peak_mb: Option<f64>,
    /// Whether the pair ran inside the 1.5 CPU / 350 MB cgroup.
    pub envelope_applied: bool,
    /// Scenario name (file stem).
    pub scenario: String,
    /// Load start, ISO UTC.
    pub started_at: String,
    /// Address of the backend under test.
    pub target: String,
    /// The run second by second, for the report (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
}

/// Runs one contest. Everything it started is stopped before it returns, error or not.
pub fn run(options: &ContestOptions) -> Result<Results, String> {
    let scenario = Scenario::load(&options.scenario).map_err(|e| e.to_string())?;
    check_kills_possible(options, &scenario)?;
    let processors = start_processors(options, &scenario)?;
    let loopback = |port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let processor_addrs = match &processors {
        Some(emulator) => [emulator.addr(Which::Default), emulator.addr(Which::Fallback)],
        None => [loopback(options.default_port), loopback(options.fallback_port)],
    };
    let runtime = load::runtime("rinha-lab-load").map_err(|e| e.to_string())?;
    let verbose = options.verbose;
    if verbose {
        eprintln!(
            "processors: default {} fallback {} (fees {} / {}, {})",
            processor_addrs[0],
            processor_addrs[1],
            scenario.fee_default,
            scenario.fee_fallback,
            match processors {
                Some(_) => format!("{} framing", options.framing.name()),
                None => "already running".to_owned(),
            }
        );
    }

    let (target, mut backend) = match &options.target {
        Some(url) => (wait_for_target(&runtime, url)?, None),
        None => {
            let started = start_pair(options, &scenario, &runtime, processor_addrs)?;
            (started.api_addr(), Some(started))
        }
    };
    let plan = LoadPlan {
        scenario: scenario.clone(),
        target,
        default_addr: processor_addrs[0],
        fallback_addr: processor_addrs[1],
        recorded: processors.as_ref().map(Emulator::recorded_probe),
        progress_every: verbose.then_some(PROGRESS_EVERY),
        instances: backend.as_ref().map(instance_watches).unwrap_or_default(),
        load_started: None,
    };
    let (report, kills_made) = match (&scenario.kills, backend.as_mut()) {
        (Some(kills), Some(pair)) => load_with_kills(&runtime, plan, pair, kills, verbose),
        _ => (runtime.block_on(interruptible(load::run(plan))), None),
    };
    let (report, pair) = stop_pair(backend, report, verbose)?;

    let late_ms = (scenario.window_end_s * 1000.0) as i64 - LATE_SLACK_MS;
    let late = processors.as_ref().map(|emulator| emulator.late_landings(late_ms));
    let mut results = results(&scenario, &report, target, pair.envelope_applied);
    results.late_landings = late.map(|(count, _)| count);
    results.late_landing_max_ms = late.map(|(_, max_ms)| max_ms);
    let admitted_max = |which| processors.as_ref().map(|e| e.admitted_max(which) as u64);
    results.default_admitted_max = admitted_max(Which::Default);
    results.fallback_admitted_max = admitted_max(Which::Fallback);
    if let (Some(kills_made), Some(emulator)) = (kills_made, &processors) {
        record_crash_checks(&mut results, &report, kills_made, emulator);
    }
    drop(processors);
    record_usage(&mut results, pair.usage);
    record_cgroup_peaks(&mut results, pair.cgroup_memory);
    if let Some(path) = &options.json {
        write_json(path, &results)?;
        write_report(path, &results, verbose);
    }
    if verbose {
        println!("{}", table(&results));
    }
    Ok(results)
}

/// What an operator sets for the test it enters, and the lab sets for each scenario, over the
/// env file: the test's length from the purge that starts it (`TEST_DURATION_MS`: the contest's
/// script fixes it) and the processors' fees (published with them).
pub fn scenario_env(scenario: &Scenario) -> Vec<(String, String)> {
    [
        ("TEST_DURATION_MS", format!("{:.0}", scenario.duration_s * 1000.0)),
        ("FEE_DEFAULT", scenario.fee_default.to_string()),
        ("FEE_FALLBACK", scenario.fee_fallback.to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

/// What the load watches of each instance of `backend`: its `/metrics` (served on its peer link)
/// and its process.
fn instance_watches(backend: &Backend) -> Vec<InstanceWatch> {
    backend
        .pids()
        .into_iter()
        .filter_map(|(name, pid)| Some(InstanceWatch::new(name, backend.peer_addr(name)?, pid)))
        .collect()
}

/// The report beside the results JSON (`X.json` gives `X.svg`). A report that cannot be written
/// is a warning, not a failed run: the results are safe in the JSON, and `rinha-lab report`
/// draws them again.
fn write_report(json: &Path, results: &Results, verbose: bool) {
    let svg = json.with_extension("svg");
    if svg == json {
        eprintln!("warning: no report drawn: it would overwrite the results, {}", json.display());
        return;
    }
    let label = json.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match report::write(&svg, &[report::Run { label: &label, results }]) {
        Ok(()) if verbose => eprintln!("report: {}", svg.display()),
        Ok(()) => {}
        Err(e) => eprintln!("warning: no report drawn: {e}"),
    }
}

/// The lab's own processors, with the scenario's fees; `None` when they are already running.
fn start_processors(
    options: &ContestOptions,
    scenario: &Scenario,
) -> Result<Option<Emulator>, String> {
    let mut config = EmulatorConfig::new(
        options.default_port,
        options.fallback_port,
        scenario.fee_default,
        scenario.fee_fallback,
    );
    config.framing = options.framing;
    if options.processors_running {
        return Ok(None);
    }
    emulator::start(config).map(Some).map_err(|e| format!("starting the processors: {e}"))
}

/// An already running backend at `url`, once it answers, probed as the official harness does.
fn wait_for_target(runtime: &Runtime, url: &str) -> Result<SocketAddr, String> {
    let addr = client::loopback_target(url)?;
    runtime.block_on(backend::wait_ready(
        addr,
        READY_INTERVAL_OFFICIAL,
        READY_TRIES_OFFICIAL,
        &mut || None,
    ))?;
    Ok(addr)
}

/// The payrelay pair, started against the processors at `processor_addrs`, once it answers. If
/// it never does, the pair is stopped and the error names its logs.
fn start_pair(
    options: &ContestOptions,
    scenario: &Scenario,
    runtime: &Runtime,
    processor_addrs: [SocketAddr; 2],
) -> Result<Backend, String> {
    let payrelay =
        options.payrelay.clone().ok_or("no payrelay binary given (use --payrelay or --target)")?;
    let spec = BackendSpec {
        payrelay,
        api_port: options.api_port,
        default_addr: processor_addrs[0],
        fallback_addr: processor_addrs[1],
        env_file: options.env_file.clone(),
        env: scenario_env(scenario),
        journal: options.journal,
        envelope: options.envelope.then(|| options.compose_file.clone()),
    };
    let mut started = Backend::start(&spec)?;
    if options.verbose {
        eprintln!(
            "payrelay pair on {} (envelope {}), logs: {}",
            started.api_addr(),
            if started.envelope_applied() {
                "applied".to_owned()
            } else {
                format!("not applied: {}", started.envelope_note())
            },
            started
                .log_paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let set: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("payrelay configured for the scenario: {}", set.join(" "));
    }
    if let Err(e) = runtime.block_on(interruptible(started.wait_ready())) {
        return Err(started.describe_failure(&e));
    }
    Ok(started)
}

/// A scenario with `[kills]` needs the pair the lab starts (to kill and restart an instance)
/// and the lab's own processors (to look each accepted payment up in their books).
fn check_kills_possible(options: &ContestOptions, scenario: &Scenario) -> Result<(), String> {
    if scenario.kills.is_some() && (options.target.is_some() || options.processors_running) {
        return Err(format!(
            "{}: [kills] needs the payrelay pair the lab starts itself (--payrelay), to kill and \
             restart an instance, and the lab's own processors, to check each accepted payment \
             in their books: it cannot run with --target or --processors-running",
            options.scenario.display()
        ));
    }
    Ok(())
}

/// Files the crash harness's findings: kills made, accepted payments lost or paid twice in
/// `emulator`'s books, and the final summary's mismatch.
fn record_crash_checks(
    results: &mut Results,
    report: &LoadReport,
    kills_made: u64,
    emulator: &Emulator,
) {
    let books = crash::check_books(emulator, &report.accepted_ids);
    results.kills = Some(kills_made);
    results.ids_lost = Some(books.lost);
    results.ids_twice = Some(books.twice);
    results.final_summary_mismatch = report.final_summary_mismatch;
}

/// The load with the scenario's kills beside it: the load runs on the runtime's workers while
/// this thread kills and restarts the instance at each moment. Returns the load's report (or
/// the first error, the harness's included) and how many kills were made.
///
/// Ownership: the `Backend` never leaves the thread that started it. That is not a matter of
/// taste: each payrelay child gets SIGTERM when the thread that spawned it exits
/// (`PR_SET_PDEATHSIG`), so a restart made from a kill thread of its own would die with that
/// thread, and sharing the pair behind a mutex would put every other use of it (usage, stop,
/// drop) one lock away from a kill in progress. So the load goes to the runtime with
/// `spawn`, the kill schedule runs here with `&mut Backend`, and the two meet only through a
/// channel (the load's start instant) and the load's `is_finished` (a load that ends early,
/// by error or Ctrl-C, stops the schedule).
fn load_with_kills(
    runtime: &Runtime,
    mut plan: LoadPlan,
    backend: &mut Backend,
    kills: &Kills,
    verbose: bool,
) -> (Result<LoadReport, String>, Option<u64>) {
    let moments_s = kills.moments_s(plan.scenario.duration_s);
    if verbose {
        let at: Vec<String> = moments_s.iter().map(|m| format!("{m:.1}")).collect();
        let restart = match kills.restart_delay_ms {
            0 => "at once".to_owned(),
            delay_ms => format!("{delay_ms} ms later"),
        };
        eprintln!(
            "kills: payrelay {} at t = {} s (seed {}), each restarted {restart}",
            kills.instance,
            at.join(", "),
            kills.seed
        );
    }
    let (load_started, started_heard) = std::sync::mpsc::channel();
    plan.load_started = Some(load_started);
    // The sampler reads each instance's CPU by pid: tell it the restarted process's.
    let watches = plan.instances.clone();
    let restarted = |name: &str, pid: u32| {
        watches.iter().filter(|watch| watch.name == name).for_each(|watch| watch.set_pid(pid));
    };
    let load = runtime.spawn(interruptible(load::run(plan)));
    let schedule = crash::Schedule {
        instance: &kills.instance,
        moments_s: &moments_s,
        restart_delay: Duration::from_millis(kills.restart_delay_ms),
    };
    let schedule = crash::run_schedule(
        backend,
        schedule,
        &started_heard,
        &|| load.is_finished(),
        &restarted,
        verbose,
    );
    if schedule.is_err() {
        load.abort();
    }
    let report = runtime.block_on(load).map_err(|e| format!("load: {e}")).and_then(|r| r);
    match schedule {
        Ok(kills_made) => (report, Some(kills_made)),
        Err(e) => (Err(format!("crash harness: {e}")), None),
    }
}

/// What the results keep of the pair once it is stopped.
struct PairRecord {
    /// Resource use per instance (`a`, `b`); empty without a pair.
    usage: Vec<(&'static str, Usage)>,
    /// Each instance's memory cgroup (`a`, `b`), read before the cgroups are removed; `None`
    /// without the envelope.
    cgroup_memory: Vec<(&'static str, Option<CgroupMemory>)>,
    /// Whether both instances ran inside their envelopes.
    envelope_applied: bool,
}

/// Reads the pair's resource use and whether it ran in its envelope (none and `false` without a
/// pair), then stops it, keeping its logs unless the run was clean. The load's error, if any,
/// names the logs.
fn stop_pair(
    mut backend: Option<Backend>,
    report: Result<LoadReport, String>,
    verbose: bool,
) -> Result<(LoadReport, PairRecord), String> {
    let (usage, cgroup_memory, envelope_applied, died) = match backend.as_mut() {
        Some(backend) => {
            let usage = backend.usage();
            (usage, backend.cgroup_memory(), backend.envelope_applied(), backend.exited())
        }
        None => (Vec::new(), Vec::new(), false, None),
    };
    let report = match (report, &backend) {
        (Ok(report), _) => report,
        (Err(e), Some(backend)) => return Err(backend.describe_failure(&e)),
        (Err(e), None) => return Err(e),
    };
    if let (Some(reason), Some(backend)) = (died, &backend) {
        eprintln!("warning: {}", backend.describe_failure(&reason));
    }
    let clean = report.inconsistencies == 0
        && report.posts_failed() == 0
        && report.posts_ok == report.default.count + report.fallback.count;
    if let Some(backend) = backend.as_mut() {
        // Logs of a clean run are noise; anything else is kept for a look.
        backend.keep_logs(!clean);
        if !clean && verbose {
            eprintln!("payrelay logs kept in {}", backend.log_dir().display());
        }
    }
    drop(backend);
    Ok((report, PairRecord { usage, cgroup_memory, envelope_applied }))
}

/// Files each instance's resource use (`a`, `b`) under its own columns.
fn record_usage(results: &mut Results, usage: Vec<(&'static str, Usage)>) {
    for (name, usage) in usage {
        let (rss, cpu) = match name {
            "a" => (&mut results.backend_a_rss_mb_max, &mut results.backend_a_cpu_s),
            _ => (&mut results.backend_b_rss_mb_max, &mut results.backend_b_cpu_s),
        };
        *rss = Some(round3(usage.rss_mb_max));
        *cpu = Some(round3(usage.cpu_s));
    }
}

/// Bytes in the results' MB: 2^20, as the RSS columns (kB of `/proc` over 1024).
const MIB: f64 = 1_048_576.0;

/// Files each instance's memory cgroup peak (`a`, `b`) under its own column.
fn record_cgroup_peaks(results: &mut Results, memory: Vec<(&'static str, Option<CgroupMemory>)>) {
    for (name, memory) in memory {
        let peak = match name {
            "a" => &mut results.backend_a_cgroup_memory_peak_mb,
            _ => &mut results.backend_b_cgroup_memory_peak_mb,
        };
        *peak = memory.and_then(|m| m.peak_bytes).map(|bytes| round3(bytes as f64 / MIB));
    }
}

/// Runs `work` unless Ctrl-C comes first: then the run fails normally, so everything it started
/// (payrelay children, the cgroup, the processors) is torn down by the usual drops.
pub(crate) async fn interruptible<T>(
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C)".to_owned()),
    }
}

/// Scores a load report.
pub fn results(
    scenario: &Scenario,
    report: &LoadReport,
    target: SocketAddr,
    envelope_applied: bool,
) -> Results {
    let mut all = report.all_latencies_us();
    let p99_ms = stats::percentile_ms(&mut all, 0.99);
    let scored = score::score(&ScoreInput {
        default_count: report.default.count,
        default_cents: report.default.cents,
        fallback_count: report.fallback.count,
        fallback_cents: report.fallback.cents,
        fee_default: scenario.fee_default,
        fee_fallback: scenario.fee_fallback,
        p99_ms,
        inconsistencies: report.inconsistencies,
        posts_ok: report.posts_ok,
    });
    let upper_bound_cents =
        score::upper_bound_cents(report.posts_ok, scenario.amount_cents(), scenario.fee_default);
    let mut posts = report.post_latencies_us.clone();
    let mut summaries = report.summary_latencies_us.clone();
    let ms = |samples: &mut Vec<u64>, p: f64| round3(stats::percentile_ms(samples, p));
    Results {
        score: money::cents_to_f64(scored.score_cents),
        upper_bound: money::cents_to_f64(upper_bound_cents),
        score_ratio: if upper_bound_cents > 0 {
            (scored.score_cents as f64 / upper_bound_cents as f64 * 10_000.0).round() / 10_000.0
        } else {
            0.0
        },
        gross: money::cents_to_f64(scored.gross_cents),
        fees: money::cents_to_f64(scored.fees_cents),
        p99_ms: score::p99_scored_ms(p99_ms),
        p99_bonus: scored.bonus_percent as f64 / 100.0,
        fine: scored.fine_percent as f64 / 100.0,
        inconsistencies: report.inconsistencies,
        checks: report.checks.len() as u64,
        lag: scored.lag,
        caixa_dois: scored.caixa_dois,
        posts_ok: report.posts_ok,
        posts_failed: report.posts_failed(),
        posts_failed_timeout: report.posts_failed_timeout,
        posts_failed_status: report.posts_failed_status,
        posts_failed_connect: report.posts_failed_connect,
        posts_failed_io: report.posts_failed_io,
        default_count: report.default.count,
        fallback_count: report.fallback.count,
        default_amount: money::cents_to_f64(report.default.cents),
        fallback_amount: money::cents_to_f64(report.fallback.cents),
        post_p50_ms: ms(&mut posts, 0.50),
        post_p90_ms: ms(&mut posts, 0.90),
        post_p99_ms: ms(&mut posts, 0.99),
        post_max_ms: ms(&mut posts, 1.0),
        summary_p99_ms: ms(&mut summaries, 0.99),
        summary_failures: report.summary_failures,
        admin_failures: report.admin_failures,
        late_landings: None,
        late_landing_max_ms: None,
        default_admitted_max: None,
        fallback_admitted_max: None,
        kills: None,
        ids_lost: None,
        ids_twice: None,
        final_summary_mismatch: None,
        backend_a_rss_mb_max: None,
        backend_a_cpu_s: None,
        backend_b_rss_mb_max: None,
        backend_b_cpu_s: None,
        backend_a_cgroup_memory_peak_mb: None,
        backend_b_cgroup_memory_peak_mb: None,
        envelope_applied,
        scenario: scenario.name.clone(),
        started_at: time::format_iso_ms(report.started_at_ms),
        target: format!("http://{target}"),
        series: Some(report.series.clone()),
    }
}

fn write_json(path: &Path, results: &Results) -> Result<(), String> {
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// The results as an aligned two-column table.
pub fn table(results: &Results) -> String {
    let value = serde_json::to_value(results).unwrap_or_default();
    let mut out = String::from("\n== rinha-lab results ==\n");
    if let Some(map) = value.as_object() {
        // Keep the declaration order of the struct rather than the map's sorted order.
        for key in FIELD_ORDER {
            if let Some(v) = map.get(*key) {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".to_owned(),
                    other => other.to_string(),
                };
                out.push_str(&format!("{key:<22} {shown}\n"));
            }
        }
    }
    out
}

const FIELD_ORDER: &[&str] = &[
    "scenario",
    "started_at",
    "target",
    "score",
    "upper_bound",
    "score_ratio",
    "gross",
    "fees",
    "p99_ms",
    "p99_bonus",
    "fine",
    "inconsistencies",
    "checks",
    "lag",
    "caixa_dois",
    "posts_ok",
    "posts_failed",
    "posts_failed_timeout",
    "posts_failed_status",
    "posts_failed_connect",
    "posts_failed_io",
    "default_count",
    "fallback_count",
    "default_amount",
    "fallback_amount",
    "post_p50_ms",
    "post_p90_ms",
    "post_p99_ms",
    "post_max_ms",
    "summary_p99_ms",
    "summary_failures",
    "admin_failures",
    "late_landings",
    "late_landing_max_ms",
    "default_admitted_max",
    "fallback_admitted_max",
    "kills",
    "ids_lost",
    "ids_twice",
    "final_summary_mismatch",
    "backend_a_rss_mb_max",
    "backend_a_cpu_s",
    "backend_b_rss_mb_max",
    "backend_b_cpu_s",
    "backend_a_cgroup_memory_peak_mb",
    "backend_b_cgroup_memory_peak_mb",
    "envelope_applied",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: results files written before the cgroup peaks existed still read, the peaks null,
    /// and the peaks are filed under each instance's key and read back. Method: the checked-in
    /// `ci-short-payrelay.json`, which has none; then peaks recorded into it, written and read.
    #[test]
    fn cgroup_peaks_are_optional_in_results_files() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-short-payrelay.json");
        let text = std::fs::read_to_string(&path).expect("the fixture");
        assert!(!text.contains("cgroup_memory_peak"), "the fixture predates the peaks");
        let mut results: Results = serde_json::from_str(&text).expect("an older file reads");
        assert_eq!(results.backend_a_cgroup_memory_peak_mb, None);
        let peak_bytes = Some(30 << 20);
        let a = CgroupMemory { limit_bytes: 170 << 20, usage_bytes: 20 << 20, peak_bytes };
        record_cgroup_peaks(&mut results, vec![("a", Some(a)), ("b", None)]);
        assert_eq!(results.backend_a_cgroup_memory_peak_mb, Some(30.0));
        assert_eq!(results.backend_b_cgroup_memory_peak_mb, None);
        let written = serde_json::to_string(&results).expect("written");
        assert_eq!(serde_json::from_str::<Results>(&written).expect("read back"), results);
        assert!(table(&results).contains("backend_a_cgroup_memory_peak_mb 30"));
    }
}
