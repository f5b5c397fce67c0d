//! The crash harness beside the load: the load on the runtime's workers, the kill schedule on
//! the thread that holds the pair (why, below).

use std::time::Duration;

use tokio::runtime::Runtime;

use crate::{
    backend::Backend,
    crash,
    load::{self, LoadPlan, LoadReport},
    scenario::Kills,
};

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
pub fn load_with_kills(
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
    let load = runtime.spawn(load::interruptible(load::run(plan)));
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
