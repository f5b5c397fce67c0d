//! The sweep: the processors, the payrelay pair in its envelope and the canned process started
//! once, then every rate measured on both backends in turn, until payrelay goes over the bar.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use hyper::Method;
use tokio::runtime::Runtime;

use super::{
    canned_process::CannedProcess,
    open_load::{self, StepPlan},
    options::CapacityOptions,
    report::{self, BackendStep, CapacityReport, HighestRates, P99_BAR_MS, Step, Subject},
};
use crate::{
    backend::{Backend, BackendSpec},
    client::Conn,
    emulator::{self, EmulatorConfig, RecordedProbe, TOKEN_DEFAULT, Which},
    load, time,
};

/// The processors' fees, the published rules' (both are at 0 ms and healthy throughout, so
/// payrelay sends everything to the cheaper one whatever they are).
const FEE_DEFAULT: f64 = 0.05;
/// See [`FEE_DEFAULT`].
const FEE_FALLBACK: f64 = 0.15;
/// Timeout of the purges between steps.
const PURGE_TIMEOUT: Duration = Duration::from_secs(3);
/// After a payrelay step, its forwarding is over once the processors' books have not changed
/// for this long: then the next step (often canned's) does not share the CPU with it.
const SETTLE_STILL: Duration = Duration::from_millis(300);
/// ... but a pair that keeps forwarding in a trickle does not hold the sweep longer than this.
const SETTLE_MAX: Duration = Duration::from_secs(15);
/// How often the settling wait reads the books.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// What the steps are run against.
struct Targets {
    /// The pair's shared API address.
    payrelay: SocketAddr,
    /// Its instances' processes (`a`, `b`).
    payrelay_pids: Vec<(String, u32)>,
    /// The canned process's address.
    canned: SocketAddr,
    /// Its process.
    canned_pid: u32,
    /// Both processors (default, fallback), for their purge.
    processors: [SocketAddr; 2],
    /// Their books' size, to see the pair's forwarding end.
    recorded: RecordedProbe,
}

/// Runs the sweep: every rate of `options` on both backends, until payrelay is over the bar
/// (unless told to run every rate). Writes the JSON and prints the table as `options` ask.
/// Everything it started is stopped before it returns, error or not.
pub fn run(options: &CapacityOptions) -> Result<CapacityReport, String> {
    // The schedule keeps a thread of its own besides the runtime's.
    let runtime =
        load::runtime("rinha-lab-capacity").map_err(|e| format!("the load's runtime: {e}"))?;
    let processors = emulator::start(EmulatorConfig::new(0, 0, FEE_DEFAULT, FEE_FALLBACK))
        .map_err(|e| format!("starting the processors: {e}"))?;
    let processor_addrs = [processors.addr(Which::Default), processors.addr(Which::Fallback)];
    let mut pair = start_pair(options, &runtime, processor_addrs)?;
    let mut canned = CannedProcess::start(&options.canned)?;
    let targets = Targets {
        payrelay: pair.api_addr(),
        payrelay_pids: pair.pids().into_iter().map(|(name, pid)| (name.to_owned(), pid)).collect(),
        canned: canned.addr(),
        canned_pid: canned.pid(),
        processors: processor_addrs,
        recorded: processors.recorded_probe(),
    };
    if options.verbose {
        eprintln!(
            "capacity: payrelay pair on {} (envelope {}), canned on {} (pid {}); rates {:?}/s",
            targets.payrelay,
            envelope_words(&pair),
            targets.canned,
            targets.canned_pid,
            options.rates_per_s
        );
        eprint!("{}", report::header());
    }
    let mut report = empty_report(options, &pair);
    for (index, &rate_per_s) in options.rates_per_s.iter().enumerate() {
        let step = runtime
            .block_on(load::interruptible(measure_rate(options, &targets, rate_per_s, index)));
        let step = step.map_err(|e| pair.describe_failure(&e))?;
        if let Some(why) = pair.exited().or_else(|| canned.exited()) {
            return Err(pair.describe_failure(&format!("at {rate_per_s}/s: {why}")));
        }
        if options.verbose {
            eprint!(
                "{}",
                step.backends.iter().map(|b| report::row(rate_per_s, b)).collect::<String>()
            );
        }
        let over_bar = step.of(Subject::Payrelay).is_none_or(|b| !b.under_bar);
        report.steps.push(step);
        if options.stop_over_bar && over_bar {
            break;
        }
    }
    report.conclude();
    // A sweep that ran to its end needs no logs; any failure above keeps them (and names them).
    pair.keep_logs(false);
    drop(pair);
    publish(options, &report)?;
    Ok(report)
}

/// The pair as the contest starts it, against the processors at `processor_addrs`, once it
/// answers; if it never does, it is stopped and the error names its logs.
fn start_pair(
    options: &CapacityOptions,
    runtime: &Runtime,
    processor_addrs: [SocketAddr; 2],
) -> Result<Backend, String> {
    let spec = BackendSpec {
        payrelay: options.payrelay.clone(),
        api_port: 0,
        default_addr: processor_addrs[0],
        fallback_addr: processor_addrs[1],
        env_file: options.env_file.clone(),
        env: [("FEE_DEFAULT", FEE_DEFAULT), ("FEE_FALLBACK", FEE_FALLBACK)]
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .to_vec(),
        journal: options.journal,
        envelope: options.compose_file.clone(),
    };
    let mut pair = Backend::start(&spec)?;
    if let Err(e) = runtime.block_on(load::interruptible(pair.wait_ready())) {
        return Err(pair.describe_failure(&e));
    }
    Ok(pair)
}

/// The report before any step: the sweep's settings and where it runs.
fn empty_report(options: &CapacityOptions, pair: &Backend) -> CapacityReport {
    CapacityReport {
        started_at: time::format_iso_ms(time::now_ms()),
        machine: crate::provenance::Machine::read(),
        envelope_applied: pair.envelope_applied(),
        envelope_note: pair.envelope_note().to_owned(),
        step_s: options.step.as_secs_f64(),
        warmup_s: options.warmup_min.as_secs_f64(),
        connections: options.connections,
        request_timeout_ms: u64::try_from(options.request_timeout.as_millis()).unwrap_or(u64::MAX),
        p99_bar_ms: P99_BAR_MS,
        steps: Vec::new(),
        highest_rate_under_bar: HighestRates { payrelay_per_s: None, canned_per_s: None },
        peak: None,
    }
}

/// One rate on both backends, payrelay first at even steps and canned first at odd ones, so
/// that a drift of the machine (another job, the page cache, thermal) weighs on both alike.
async fn measure_rate(
    options: &CapacityOptions,
    targets: &Targets,
    rate_per_s: f64,
    index: usize,
) -> Result<Step, String> {
    let order = if index.is_multiple_of(2) {
        [Subject::Payrelay, Subject::Canned]
    } else {
        [Subject::Canned, Subject::Payrelay]
    };
    let mut backends = Vec::with_capacity(order.len());
    for subject in order {
        let (target, watched) = match subject {
            Subject::Payrelay => {
                purge(targets).await?;
                (targets.payrelay, targets.payrelay_pids.clone())
            }
            Subject::Canned => (targets.canned, vec![("canned".to_owned(), targets.canned_pid)]),
        };
        let plan = StepPlan {
            rate_per_s,
            warmup: options.warmup_at(rate_per_s),
            duration: options.step,
            timeout: options.request_timeout,
            connections: options.connections,
            watched,
        };
        let measured = open_load::run_step(target, &plan)
            .await
            .map_err(|e| format!("{} at {rate_per_s}/s: {e}", subject.name()))?;
        if subject == Subject::Payrelay {
            settle(&targets.recorded).await;
        }
        backends.push(BackendStep::new(subject, &measured));
    }
    backends.sort_by_key(|b| b.backend != Subject::Payrelay);
    Ok(Step { rate_per_s, first: order[0], backends })
}

/// Empties the processors' books and the pair's (which also starts each instance's journal
/// anew: a sweep's payments would otherwise fill `JOURNAL_BYTES_MAX` and be refused), so that
/// each payrelay step starts from the same state.
async fn purge(targets: &Targets) -> Result<(), String> {
    for (name, addr) in [("default", targets.processors[0]), ("fallback", targets.processors[1])] {
        let headers = [("x-rinha-token", TOKEN_DEFAULT)];
        let reply = Conn::new(addr)
            .request(Method::POST, "/admin/purge-payments", &headers, None, PURGE_TIMEOUT)
            .await;
        match reply {
            Ok(reply) if reply.status == 200 => {}
            other => return Err(format!("purging the {name} processor: {other:?}")),
        }
    }
    let reply = Conn::new(targets.payrelay)
        .request(Method::POST, "/purge-payments", &[], None, PURGE_TIMEOUT)
        .await;
    match reply {
        Ok(reply) if reply.status == 200 => Ok(()),
        Ok(reply) => Err(format!(
            "purging the pair: status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )),
        Err(failure) => Err(format!("purging the pair: {failure:?}")),
    }
}

/// Waits until the processors' books have not changed for [`SETTLE_STILL`] (the pair has
/// forwarded what it accepted), at most [`SETTLE_MAX`].
async fn settle(recorded: &RecordedProbe) {
    let began = Instant::now();
    let mut last_count = recorded.recorded();
    let mut still_since = began;
    while still_since.elapsed() < SETTLE_STILL && began.elapsed() < SETTLE_MAX {
        tokio::time::sleep(SETTLE_POLL).await;
        let count = recorded.recorded();
        if count != last_count {
            (last_count, still_since) = (count, Instant::now());
        }
    }
}

/// Writes the JSON and prints the table, as `options` ask.
fn publish(options: &CapacityOptions, report: &CapacityReport) -> Result<(), String> {
    if let Some(path) = &options.json {
        write_json(path, report)?;
    }
    if options.verbose {
        println!("{}", report::table(report));
        if let Some(path) = &options.json {
            println!("results: {}", path.display());
        }
    }
    Ok(())
}

/// The report as pretty JSON at `path` (its folder created).
fn write_json(path: &Path, report: &CapacityReport) -> Result<(), String> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// "applied", or why not.
fn envelope_words(pair: &Backend) -> String {
    if pair.envelope_applied() {
        "applied".to_owned()
    } else {
        format!("not applied: {}", pair.envelope_note())
    }
}
