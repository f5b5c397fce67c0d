//! The contest's wiring: the processors (the lab's own, or already running), the payrelay pair
//! with the scenario's environment (or an external target), and the pair's stop. Everything
//! about what to start and where; the run's order is `mod.rs`'s.

use std::net::SocketAddr;

use tokio::runtime::Runtime;

use super::options::ContestOptions;
use crate::{
    backend::{
        self, Backend, BackendSpec, CgroupMemory, READY_INTERVAL_OFFICIAL, READY_TRIES_OFFICIAL,
        Usage,
    },
    client,
    emulator::{self, Emulator, EmulatorConfig},
    load::{self, LoadReport},
    sampler::InstanceWatch,
    scenario::Scenario,
};

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
pub fn instance_watches(backend: &Backend) -> Vec<InstanceWatch> {
    backend
        .pids()
        .into_iter()
        .filter_map(|(name, pid)| Some(InstanceWatch::new(name, backend.peer_addr(name)?, pid)))
        .collect()
}

/// The lab's own processors, with the scenario's fees; `None` when they are already running.
pub fn start_processors(
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
pub fn wait_for_target(runtime: &Runtime, url: &str) -> Result<SocketAddr, String> {
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
pub fn start_pair(
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
    if let Err(e) = runtime.block_on(load::interruptible(started.wait_ready())) {
        return Err(started.describe_failure(&e));
    }
    Ok(started)
}

/// A scenario with `[kills]` needs the pair the lab starts (to kill and restart an instance)
/// and the lab's own processors (to look each accepted payment up in their books).
pub fn check_kills_possible(options: &ContestOptions, scenario: &Scenario) -> Result<(), String> {
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

/// What the results keep of the pair once it is stopped.
pub struct PairRecord {
    /// Resource use per instance (`a`, `b`); empty without a pair.
    pub usage: Vec<(&'static str, Usage)>,
    /// Each instance's memory cgroup (`a`, `b`), read before the cgroups are removed; `None`
    /// without the envelope.
    pub cgroup_memory: Vec<(&'static str, Option<CgroupMemory>)>,
    /// Whether both instances ran inside their envelopes.
    pub envelope_applied: bool,
}

/// Reads the pair's resource use and whether it ran in its envelope (none and `false` without a
/// pair), then stops it, keeping its logs unless the run was clean. The load's error, if any,
/// names the logs.
pub fn stop_pair(
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
