//! Capacity: how many payments a second the payrelay pair takes, inside its envelope, with its
//! p99 under 1 ms, next to the floor of the machine (`rinha-lab canned`) measured the same way
//! in the same run: `cargo bench --bench capacity`.
//!
//! The contest's load is closed (a virtual user waits for its answer, then sleeps 1 s), so a
//! slow server is sent less and partly hides its slowness. The sweep uses an open model
//! instead: at each rate the i-th payment is due at `start + i / rate` whatever the server does,
//! and one that finds every pooled connection busy is a schedule miss, never a wait. Both
//! processors answer at once (0 ms), so what is measured is payrelay's own cost: accept, parse,
//! journal, answer, forward, settle. Each rate runs on payrelay and on canned in alternating
//! order, so that the machine's noise weighs on both, until payrelay's p99 passes 1 ms or a
//! payment fails. The report gives each step's offered and achieved rate, p50/p99/max, failures
//! and misses, CPU seconds per 1,000 payments of each process (from `/proc`), then the highest
//! rate under the bar and payrelay's p99 over canned's at the contest's peak (~600/s).
//!
//! ## Layout
//!
//! - `options.rs`: the knobs ([`CapacityOptions`]), as flags and environment variables.
//! - `canned_process.rs`: `rinha-lab canned` as a process of its own ([`CannedProcess`]).
//! - `open_load.rs`: one step of open-model load against one backend ([`open_load::run_step`]).
//! - `sweep.rs`: the backends started once, every rate on both ([`run`]).
//! - `report.rs`: the steps' records, the conclusions, the table and the JSON
//!   ([`CapacityReport`]).

mod canned_process;
pub mod open_load;
mod options;
mod report;
mod sweep;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

pub use canned_process::{
    CANNED_CHILD_ENV, CannedCommand, CannedProcess, listening_addr, serve_if_child,
};
pub use options::{
    CONNECTIONS_DEFAULT, CONNECTIONS_MAX, CapacityOptions, KNOBS, RATES_DEFAULT_PER_S,
    REQUEST_TIMEOUT, STEP_S_DEFAULT, WARMUP_S_DEFAULT, parse, usage,
};
pub use report::{
    BackendStep, CapacityReport, HighestRates, LatencyMs, Machine, P99_BAR_MS, PEAK_RATE_PER_S,
    PeakComparison, ProcessCpu, Step, Subject, cpu_s_per_1000, highest_rate_under_bar,
    peak_comparison, table,
};
pub use sweep::run;

/// The capacity bench's `main`: serves canned when started as the sweep's canned process,
/// otherwise reads the knobs (`args` after the program name, then the environment) and runs the
/// sweep against `payrelay`, with the env file, compose file and JSON under `root`.
pub fn bench_main(args: &[String], payrelay: PathBuf, root: &Path) -> ExitCode {
    if let Some(code) = serve_if_child() {
        return code;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let env = |name: &str| std::env::var(name).ok();
    let result = CannedCommand::this_executable()
        .and_then(|canned| parse(args, &env, CapacityOptions::new(payrelay, canned, root)))
        .and_then(|options| run(&options));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capacity: {e}");
            ExitCode::FAILURE
        }
    }
}
