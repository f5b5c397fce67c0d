//! What every task of one load shares ([`Ctx`]: the target, the clock, the counters, the admin
//! calls' record) and what a virtual user brings back ([`VuRecord`]). A leaf, so that the VUs,
//! the checker, the stages and the progress line share it without importing one another.

use std::{
    net::SocketAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::plan::LoadReport;
use crate::{
    client::{Failure, Reply},
    series::SecondTally,
};

/// Timeout for setup, stage and teardown calls to the processors (the official client's).
pub const ADMIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Counters shared by the VUs, read by the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub failed_status: AtomicU64,
    pub failed_timeout: AtomicU64,
    pub failed_connect: AtomicU64,
    pub failed_io: AtomicU64,
    pub vus: AtomicU64,
    pub inconsistencies: AtomicU64,
}

/// State shared by every task of one run.
#[derive(Debug)]
pub struct Ctx {
    pub target: SocketAddr,
    /// When the load started: second 0 of the series.
    pub started: tokio::time::Instant,
    pub amount_json: String,
    pub timeout: Duration,
    pub end: tokio::time::Instant,
    pub counters: Counters,
    pub admin_latencies_us: Mutex<Vec<u64>>,
    pub admin_failures: AtomicU64,
    /// Keep the correlationIds of accepted POSTs (only with kills: it costs memory per POST).
    pub record_accepted: bool,
}

/// What one virtual user brings back.
#[derive(Debug, Default)]
pub struct VuRecord {
    /// Its expected-status POST latencies, µs.
    pub latencies_us: Vec<u64>,
    /// For each of `latencies_us`, the second of the load it completed in.
    pub latency_seconds: Vec<u32>,
    /// Its POSTs, succeeded and failed, by the second they completed in.
    pub post_seconds: SecondTally,
    /// The correlationIds it had accepted (only when [`Ctx::record_accepted`]).
    pub accepted_ids: Vec<uuid::Uuid>,
}

impl Ctx {
    /// The second of the load that is running now (0 from the start).
    pub fn second_now(&self) -> u32 {
        let elapsed_s = tokio::time::Instant::now().duration_since(self.started).as_secs();
        u32::try_from(elapsed_s).unwrap_or(u32::MAX)
    }

    /// Copies what the VUs counted and the admin calls' record into the report, once every
    /// task that writes them is done.
    pub fn fill_report(&self, report: &mut LoadReport) {
        let counters = &self.counters;
        report.posts_ok = counters.ok.load(Ordering::Relaxed);
        report.posts_failed_status = counters.failed_status.load(Ordering::Relaxed);
        report.posts_failed_timeout = counters.failed_timeout.load(Ordering::Relaxed);
        report.posts_failed_connect = counters.failed_connect.load(Ordering::Relaxed);
        report.posts_failed_io = counters.failed_io.load(Ordering::Relaxed);
        report.admin_latencies_us =
            std::mem::take(&mut *self.admin_latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
        report.admin_failures = self.admin_failures.load(Ordering::Relaxed);
    }

    pub fn record_admin(&self, result: &Result<Reply, Failure>) {
        match result {
            Ok(reply) if reply.expected() => {
                self.admin_latencies_us
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(reply.latency_us);
            }
            _ => {
                self.admin_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
