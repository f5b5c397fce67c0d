//! Capacity: how many payments a second the payrelay pair takes, inside its envelope, with its
//! p99 under 1 ms, next to the floor of the machine (`rinha-lab canned`) measured the same way
//! in the same run: `rinha-lab capacity`, or `cargo bench --bench capacity`.
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
//! - `options.rs`: the knobs ([`CapacityOptions`]) and their checks (the flags and variables
//!   that set them: `rinha-lab capacity`, in `cli/`).
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

pub use canned_process::{
    CANNED_CHILD_ENV, CannedCommand, CannedProcess, listening_addr, serve_if_child,
};
pub use options::{
    CONNECTIONS_DEFAULT, CONNECTIONS_MAX, CapacityOptions, RATES_DEFAULT_PER_S, REQUEST_TIMEOUT,
    STEP_S_DEFAULT, WARMUP_S_DEFAULT, cap_rates, check,
};
pub use report::{
    BackendStep, CapacityReport, HighestRates, LatencyMs, P99_BAR_MS, PEAK_RATE_PER_S,
    PeakComparison, ProcessCpu, Step, Subject, cpu_s_per_1000, highest_rate_under_bar,
    peak_comparison, table,
};
pub use sweep::run;

pub use crate::provenance::Machine;
