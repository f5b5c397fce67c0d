//! The consistency checker (the backend's summary against the processors' every
//! `check_every_s`) and, with kills, the drain wait and the final summary's comparison.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::Method;
use serde_json::Value;

use super::{
    admin::{self, AdminConns, processor_totals},
    context::{ADMIN_TIMEOUT, Ctx},
    plan::{Check, LoadPlan, LoadReport},
};
use crate::{
    client::{Conn, Failure, Reply},
    emulator::RecordedProbe,
    time,
};

/// With kills, teardown waits until the processors' books have not changed for this long: the
/// backlog a restart leaves (retries, payments taken over by the survivor) has landed by then,
/// so what is missing afterwards is lost, not late.
const DRAIN_STILL: Duration = Duration::from_secs(2);
/// ... but no longer than this after the load: a backend that keeps paying in a trickle must
/// not hold the run forever (payrelay's processor timeout is 15 s, twice that is ample).
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// How often the drain wait reads the books.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// The checker VU: every `check_every_s`, the two processors' summaries and ours, in parallel,
/// over `[now − window_start_s, now − window_end_s]`. Returns the checks, the latencies of our
/// summary calls and how many of them failed.
pub async fn checker(ctx: Arc<Ctx>, plan: LoadPlan, token: String) -> (Vec<Check>, Vec<u64>, u64) {
    let scenario = &plan.scenario;
    let started = tokio::time::Instant::now();
    let mut default_conn = Conn::new(plan.default_addr);
    let mut fallback_conn = Conn::new(plan.fallback_addr);
    let mut target_conn = Conn::new(plan.target);
    let mut checks = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let every = Duration::from_secs_f64(scenario.check_every_s);
    let headers = [("x-rinha-token", token.as_str())];
    while tokio::time::Instant::now() < ctx.end {
        let now_ms = time::now_ms();
        let from = time::format_iso_ms(now_ms - (scenario.window_start_s * 1000.0).round() as i64);
        let to = time::format_iso_ms(now_ms - (scenario.window_end_s * 1000.0).round() as i64);
        let admin_path = format!("/admin/payments-summary?from={from}&to={to}");
        let ours_path = format!("/payments-summary?from={from}&to={to}");
        let (default_reply, fallback_reply, ours_reply) = tokio::join!(
            default_conn.request(Method::GET, &admin_path, &headers, None, ADMIN_TIMEOUT),
            fallback_conn.request(Method::GET, &admin_path, &headers, None, ADMIN_TIMEOUT),
            target_conn.request(Method::GET, &ours_path, &[], None, ctx.timeout),
        );
        ctx.record_admin(&default_reply);
        ctx.record_admin(&fallback_reply);
        // Unusable answers count as zeros, as in the official script.
        let theirs = |reply: &Result<Reply, Failure>| match reply {
            Ok(reply) if reply.status == 200 => {
                processor_totals(&reply.body).map_or(0, |t| t.count)
            }
            _ => 0,
        };
        let ours = backend_counts(&ours_reply);
        if let Ok(reply) = &ours_reply
            && reply.expected()
        {
            latencies.push(reply.latency_us);
        }
        if ours.is_none() {
            failures += 1;
        }
        let (ours_default, ours_fallback) = ours.unwrap_or((0, 0));
        let check = Check {
            at_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ours_default,
            ours_fallback,
            theirs_default: theirs(&default_reply),
            theirs_fallback: theirs(&fallback_reply),
        };
        if check.inconsistencies() > 0 && plan.progress_every.is_some() {
            eprintln!(
                "  check at {:.1}s: backend default/fallback {}/{} vs processors {}/{} (window {from} .. {to})",
                check.at_ms as f64 / 1000.0,
                check.ours_default,
                check.ours_fallback,
                check.theirs_default,
                check.theirs_fallback
            );
        }
        ctx.counters.inconsistencies.fetch_add(check.inconsistencies(), Ordering::Relaxed);
        checks.push(check);
        let next = tokio::time::Instant::now() + every;
        if next >= ctx.end {
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    (checks, latencies, failures)
}

/// Where the drain wait reads the processors' books.
pub enum Books<'a> {
    /// The lab's own emulator, in process.
    Recorded(&'a RecordedProbe),
    /// Processors the lab does not run, over their admin API (teardown's window for a test of
    /// this many seconds).
    Admin(&'a mut AdminConns, f64),
}

impl Books<'_> {
    /// Payments in both books; `None` when they cannot be read.
    async fn count(&mut self) -> Option<u64> {
        match self {
            Books::Recorded(recorded) => Some(recorded.recorded()),
            Books::Admin(admin, duration_s) => admin::books_count(admin, *duration_s).await,
        }
    }
}

/// Before teardown with kills or `--audit-ids`: waits until the processors' books have not
/// changed for [`DRAIN_STILL`], at most [`DRAIN_MAX`], so that teardown counts what was lost
/// rather than what was still on its way. A reading that fails counts as one value like any
/// other.
pub async fn wait_books_still(mut books: Books<'_>, verbose: bool) {
    let began = tokio::time::Instant::now();
    let mut last_count = books.count().await;
    let mut still_since = began;
    while still_since.elapsed() < DRAIN_STILL && began.elapsed() < DRAIN_MAX {
        tokio::time::sleep(DRAIN_POLL).await;
        let count = books.count().await;
        if count != last_count {
            (last_count, still_since) = (count, tokio::time::Instant::now());
        }
    }
    if verbose {
        let how = if still_since.elapsed() >= DRAIN_STILL {
            format!("unchanged for {} s", DRAIN_STILL.as_secs())
        } else {
            "still changing, not waited for any longer".to_owned()
        };
        let at = last_count.map_or("?".to_owned(), |n| n.to_string());
        eprintln!(
            "  drain: {at} payments at the processors after {:.1}s, {how}",
            began.elapsed().as_secs_f64()
        );
    }
}

/// The backend's `GET /payments-summary` over the whole test (no `from`/`to`) against the
/// processors' teardown totals: Σ |ours − theirs| of `totalRequests`, default and fallback. An
/// unusable answer counts as zeros, as the checker counts it.
pub async fn final_summary_mismatch(ctx: &Ctx, report: &LoadReport, verbose: bool) -> u64 {
    let mut conn = Conn::new(ctx.target);
    let reply = conn.request(Method::GET, "/payments-summary", &[], None, ctx.timeout).await;
    let ours = backend_counts(&reply);
    let (ours_default, ours_fallback) = ours.unwrap_or((0, 0));
    let mismatch =
        ours_default.abs_diff(report.default.count) + ours_fallback.abs_diff(report.fallback.count);
    if verbose {
        eprintln!(
            "  final summary: backend default/fallback {ours_default}/{ours_fallback}{} vs \
             processors {}/{}",
            match (&ours, &reply) {
                (Some(_), _) => String::new(),
                (None, Ok(reply)) => format!(" (unusable answer: status {})", reply.status),
                (None, Err(failure)) => format!(" (no answer: {failure:?})"),
            },
            report.default.count,
            report.fallback.count
        );
    }
    mismatch
}

fn count_of(value: &Value, pointer: &str) -> Option<u64> {
    value.pointer(pointer)?.as_u64()
}

/// The backend's summary counts (default, fallback), or `None` for an unusable answer.
fn backend_counts(reply: &Result<Reply, Failure>) -> Option<(u64, u64)> {
    match reply {
        Ok(reply) if reply.status == 200 => {
            let value = serde_json::from_slice::<Value>(&reply.body).ok()?;
            Some((
                count_of(&value, "/default/totalRequests")?,
                count_of(&value, "/fallback/totalRequests")?,
            ))
        }
        _ => None,
    }
}
