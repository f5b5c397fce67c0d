//! One call for a whole contest run: processors, backend pair (or an external target), readiness,
//! load, teardown, score, results JSON and table.
//!
//! ## Layout
//!
//! `mod.rs` keeps the run's order ([`run`]); each step is a file of its own, and none imports
//! this one, so the order can be read here without the details and the details changed without
//! the order:
//!
//! - `options.rs`: what to run ([`ContestOptions`]) and the contest's ports.
//! - `pair.rs`: the wiring: the processors, the payrelay pair with the scenario's environment
//!   ([`scenario_env`]) or an external target, and the pair's stop.
//! - `kills.rs`: the crash harness beside the load.
//! - `record.rs`: from the load's measures to the [`Results`] record ([`results`]).
//! - `output.rs`: the results JSON, the report beside it and the table ([`table`]).

mod kills;
mod options;
mod output;
mod pair;
mod record;

use std::{net::SocketAddr, time::Duration};

pub use options::{API_PORT, ContestOptions, DEFAULT_PORT, FALLBACK_PORT};
pub use output::table;
pub use pair::scenario_env;
pub use record::{LATE_SLACK_MS, results};

use crate::{
    emulator::{Emulator, Which},
    load::{self, LoadPlan},
    results::Results,
    scenario::Scenario,
};

/// Seconds between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs one contest. Everything it started is stopped before it returns, error or not.
pub fn run(options: &ContestOptions) -> Result<Results, String> {
    let scenario = Scenario::load(&options.scenario).map_err(|e| e.to_string())?;
    pair::check_kills_possible(options, &scenario)?;
    let processors = pair::start_processors(options, &scenario)?;
    let processor_addrs = processor_addrs(options, processors.as_ref());
    let runtime = load::runtime("rinha-lab-load").map_err(|e| e.to_string())?;
    let verbose = options.verbose;
    if verbose {
        print_processors(options, &scenario, processor_addrs, processors.is_some());
    }
    let (target, mut backend) = match &options.target {
        Some(url) => (pair::wait_for_target(&runtime, url)?, None),
        None => {
            let started = pair::start_pair(options, &scenario, &runtime, processor_addrs)?;
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
        instances: backend.as_ref().map(pair::instance_watches).unwrap_or_default(),
        load_started: None,
        audit_ids: options.audit_ids,
    };
    let (report, kills_made) = match (&scenario.kills, backend.as_mut()) {
        (Some(kills), Some(pair)) => kills::load_with_kills(&runtime, plan, pair, kills, verbose),
        _ => (runtime.block_on(load::interruptible(load::run(plan))), None),
    };
    let (report, pair) = pair::stop_pair(backend, report, verbose)?;
    let mut results = results(&scenario, &report, target, pair.envelope_applied);
    if let Some(emulator) = &processors {
        record::record_processors(&mut results, emulator, scenario.window_end_s);
    }
    if let (Some(kills_made), Some(emulator)) = (kills_made, &processors) {
        record::record_crash_checks(&mut results, &report, kills_made, emulator);
    }
    drop(processors);
    record::record_usage(&mut results, pair.usage);
    record::record_cgroup_peaks(&mut results, pair.cgroup_memory);
    finish(options, &results)?;
    Ok(results)
}

/// Where the processors listen: the lab's own, or those already running on loopback.
fn processor_addrs(options: &ContestOptions, processors: Option<&Emulator>) -> [SocketAddr; 2] {
    let loopback = |port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    match processors {
        Some(emulator) => [emulator.addr(Which::Default), emulator.addr(Which::Fallback)],
        None => [loopback(options.default_port), loopback(options.fallback_port)],
    }
}

/// The line that says which processors the run uses.
fn print_processors(
    options: &ContestOptions,
    scenario: &Scenario,
    addrs: [SocketAddr; 2],
    own: bool,
) {
    eprintln!(
        "processors: default {} fallback {} (fees {} / {}, {})",
        addrs[0],
        addrs[1],
        scenario.fee_default,
        scenario.fee_fallback,
        if own {
            format!("{} framing", options.framing.name())
        } else {
            "already running".to_owned()
        }
    );
}

/// Writes the results JSON and its report (with `--json`) and prints the table (unless quiet).
fn finish(options: &ContestOptions, results: &Results) -> Result<(), String> {
    if let Some(path) = &options.json {
        output::write_json(path, results)?;
        output::write_report(path, results, options.verbose);
    }
    if options.verbose {
        println!("{}", table(results));
    }
    Ok(())
}
