//! The results file of a contest: one flat, stable record (documented in
//! `benches/lab/README.md`), written by [`crate::contest`] and read back by [`crate::report`].
//!
//! Its own module because both sides need it and neither should import the other: the report
//! draws old files without running anything, and a contest writes without drawing.

use serde::{Deserialize, Serialize};

use crate::{provenance::Machine, series::Series};

/// The layout written today. 2: `schema_version`, `commit` and `machine` added; 1: every file
/// written before them (they read as 1, their new keys `None`).
pub const SCHEMA_VERSION: u32 = 2;
/// What a file without `schema_version` is.
pub const SCHEMA_VERSION_UNVERSIONED: u32 = 1;

fn schema_version_unversioned() -> u32 {
    SCHEMA_VERSION_UNVERSIONED
}

/// The flat, stable results record (documented in `benches/lab/README.md`), and the run second
/// by second under `series`. Read back by `rinha-lab report` and `compare`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// The layout of this record: [`SCHEMA_VERSION`] when written; files written before it
    /// existed read as [`SCHEMA_VERSION_UNVERSIONED`].
    #[serde(default = "schema_version_unversioned")]
    pub schema_version: u32,
    /// The lab's commit (`git rev-parse --short HEAD` at build time, `unknown` outside a
    /// clone); `None` in files written before it was recorded.
    #[serde(default)]
    pub commit: Option<String>,
    /// The machine the run was made on; `None` in files written before it was recorded.
    #[serde(default)]
    pub machine: Option<Machine>,
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
    /// Payments stored later than `window_end_s` − `LATE_SLACK_MS` (100 ms) after their
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
