//! What a load is given ([`LoadPlan`]) and what it brings back ([`LoadReport`], its [`Check`]s
//! and the processors' [`Totals`]): the load's interface, apart from how it runs.

use std::{net::SocketAddr, time::Duration};

use crate::{emulator::RecordedProbe, sampler::InstanceWatch, scenario::Scenario, series::Series};

/// What to run and where.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The validated scenario.
    pub scenario: Scenario,
    /// The backend under test.
    pub target: SocketAddr,
    /// The default processor.
    pub default_addr: SocketAddr,
    /// The fallback processor.
    pub fallback_addr: SocketAddr,
    /// In-process view of the processors' stored counts for the progress line's queue lag.
    pub recorded: Option<RecordedProbe>,
    /// Print a progress line this often (None: silent).
    pub progress_every: Option<Duration>,
    /// The payrelay instances: their `/metrics` (read for the progress line's backlog, payments
    /// queued and held for the cheaper processor) and their process, sampled once a second for
    /// the series. Empty (a `--target` run): neither is shown.
    pub instances: Vec<InstanceWatch>,
    /// Told the instant the load starts (after setup), for a schedule that runs beside it on
    /// another thread (the crash harness's kills); `None`: nobody listens.
    pub load_started: Option<std::sync::mpsc::Sender<std::time::Instant>>,
    /// Account for every accepted payment (`--audit-ids`): keep their correlationIds, wait
    /// for the processors' books to be still before teardown, and look each one up after it.
    pub audit_ids: bool,
}

/// One consistency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Milliseconds since the checker started (with the load, give or take a task start).
    pub at_ms: u64,
    /// The backend's default count in the window (0 if its answer was unusable).
    pub ours_default: u64,
    /// The backend's fallback count.
    pub ours_fallback: u64,
    /// The default processor's count.
    pub theirs_default: u64,
    /// The fallback processor's count.
    pub theirs_fallback: u64,
}

impl Check {
    /// Inconsistencies this check adds.
    pub fn inconsistencies(&self) -> u64 {
        self.ours_default.abs_diff(self.theirs_default)
            + self.ours_fallback.abs_diff(self.theirs_fallback)
    }
}

/// A processor's totals at teardown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payments stored.
    pub count: u64,
    /// Their amount in cents.
    pub cents: i64,
}

/// Everything the load measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Wall clock at the start of the load, epoch ms.
    pub started_at_ms: i64,
    /// POSTs answered 200/201/202/204.
    pub posts_ok: u64,
    /// POSTs answered with another status.
    pub posts_failed_status: u64,
    /// POSTs with no complete answer within the timeout.
    pub posts_failed_timeout: u64,
    /// POSTs whose connection could not be opened.
    pub posts_failed_connect: u64,
    /// POSTs whose connection broke in flight.
    pub posts_failed_io: u64,
    /// Latencies of POSTs with an expected status (200..=399), µs.
    pub post_latencies_us: Vec<u64>,
    /// Latencies of the backend's summary calls with an expected status, µs.
    pub summary_latencies_us: Vec<u64>,
    /// Latencies of the admin calls (setup, stages, checks, teardown) with an expected status.
    pub admin_latencies_us: Vec<u64>,
    /// Backend summary calls that failed or answered unusably (counted as zeros).
    pub summary_failures: u64,
    /// Admin calls (stages, checks) that failed.
    pub admin_failures: u64,
    /// Every consistency check.
    pub checks: Vec<Check>,
    /// Sum of the checks' inconsistencies.
    pub inconsistencies: u64,
    /// Default processor totals at teardown.
    pub default: Totals,
    /// Fallback processor totals at teardown.
    pub fallback: Totals,
    /// The correlationId of every POST answered with a success status, when the scenario has
    /// kills (the crash harness checks each against the books) or the run is audited
    /// (`audit_ids`); empty otherwise, so that a normal run pays nothing for it.
    pub accepted_ids: Vec<uuid::Uuid>,
    /// With `audit_ids`: the accepted correlationIds neither processor had once the books were
    /// still, each with what the lookups answered.
    pub missing_ids: Vec<(uuid::Uuid, String)>,
    /// With kills, once the books are still: Σ |backend − processor| of `totalRequests` over
    /// the whole test, default and fallback (an unusable backend answer counts as zeros, like
    /// the checker's); `None` without kills.
    pub final_summary_mismatch: Option<u64>,
    /// The run second by second, for the report.
    pub series: Series,
}

impl LoadReport {
    /// Every expected-status latency the test saw, for the score's p99.
    pub fn all_latencies_us(&self) -> Vec<u64> {
        let mut all = Vec::with_capacity(
            self.post_latencies_us.len()
                + self.summary_latencies_us.len()
                + self.admin_latencies_us.len(),
        );
        all.extend_from_slice(&self.post_latencies_us);
        all.extend_from_slice(&self.summary_latencies_us);
        all.extend_from_slice(&self.admin_latencies_us);
        all
    }

    /// POSTs that failed for any reason.
    pub fn posts_failed(&self) -> u64 {
        self.posts_failed_status
            + self.posts_failed_timeout
            + self.posts_failed_connect
            + self.posts_failed_io
    }
}
