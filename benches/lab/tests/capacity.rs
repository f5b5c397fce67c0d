//! The capacity sweep's parts on real processes: `rinha-lab canned` started as a process of its
//! own (readiness by the address it prints, on an ephemeral port), one open-model step against
//! it with its CPU read from `/proc`, and its cleanup. The whole sweep against payrelay is
//! `tests/capacity.rs` in the payrelay package, which has payrelay's binary.

use std::{path::PathBuf, time::Duration};

use rinha_lab::capacity::{
    CannedCommand, CannedProcess,
    open_load::{StepPlan, run_step},
};

fn rinha_lab() -> CannedCommand {
    CannedCommand::rinha_lab(PathBuf::from(env!("CARGO_BIN_EXE_rinha-lab")))
}

/// Goal: the canned process is reachable as soon as `start` returns, answers an open-model
/// step with nothing failed (every payment sent or counted as a miss, the pool's first 16
/// always sent: a starved test machine may miss some, and that is not a failure of the
/// process), shows CPU time of its own in `/proc`, and is gone once dropped. Method: 200/s
/// for 1 s over 16 connections; the process's `/proc` entry after the drop (it is reaped, so
/// the entry disappears).
#[test]
fn canned_process_takes_a_step_and_stops() {
    let canned = CannedProcess::start(&rinha_lab()).expect("canned starts");
    assert!(canned.addr().ip().is_loopback() && canned.addr().port() != 0, "{:?}", canned.addr());
    let pid = canned.pid();
    let plan = StepPlan {
        rate_per_s: 200.0,
        warmup: Duration::from_millis(100),
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        connections: 16,
        watched: vec![("canned".to_owned(), pid)],
    };
    let runtime = rinha_lab::load::runtime("capacity-test").expect("runtime");
    let report = runtime.block_on(run_step(canned.addr(), &plan)).expect("step");
    assert_eq!(report.scheduled, 200, "{report:?}");
    assert_eq!(report.sent + report.schedule_misses, report.scheduled, "{report:?}");
    assert!(report.sent >= 16, "{report:?}");
    assert_eq!((report.ok, report.failed()), (report.sent, 0), "{report:?}");
    assert!(report.achieved_per_s() > 0.0);
    assert_eq!(report.cpu_s[0].0, "canned");
    assert!(report.cpu_s[0].1.is_some_and(|s| s > 0.0), "{:?}", report.cpu_s);
    drop(canned);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} still there");
}

/// Goal: a command that exits without listening fails `start` with a message naming it,
/// rather than waiting. Method: `true` in place of `rinha-lab`.
#[test]
fn a_command_that_never_listens_is_an_error() {
    let command =
        CannedCommand { program: PathBuf::from("true"), args: Vec::new(), env: Vec::new() };
    let error = CannedProcess::start(&command).expect_err("true never listens");
    assert!(error.contains("true") && error.contains("before listening"), "{error}");
}
