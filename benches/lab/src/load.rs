//! The k6-equivalent contest test: setup, ramping virtual users posting payments, the
//! consistency checker, the processors' fault stages, and teardown.
//!
//! Mirrors the official script: setup purges both processors and the backend and changes the
//! admin token; VUs ramp linearly from 1 to `vus_max` over the test, each looping one
//! `POST /payments` then a 1 s sleep on its own keep-alive connection; one checker compares the
//! backend's summary with the processors' every `check_every_s`; stages set delay and failure at
//! their times; teardown reads the processors' totals.
//!
//! With the scenario's `[kills]` (the crash harness, [`crate::crash`]), the load also keeps the
//! correlationId of every accepted POST, waits before teardown until the processors' books are
//! still (the official script does not wait), and afterwards compares the backend's summary
//! over the whole test with the processors' totals.
//!
//! Beside all of this it keeps the run second by second ([`crate::series`]): each VU files its
//! POSTs under the second they completed in, and [`crate::sampler`] reads the processors' books
//! and the payrelay instances once a second.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::{
    client::{Conn, Failure, Reply},
    emulator::{RecordedProbe, TOKEN_DEFAULT},
    sampler::{self, InstanceWatch},
    scenario::{ProcessorState, Scenario},
    series::{CheckMark, PostSeconds, Sampled, SecondTally, Series},
    time,
};

/// Pause between VU iterations, as the official script's `sleep(1)`.
const VU_SLEEP: Duration = Duration::from_secs(1);
/// Timeout for setup, stage and teardown calls to the processors (the official client's).
const ADMIN_TIMEOUT: Duration = Duration::from_millis(1500);
/// Samples reserved per VU up front: one per second of a long test, so pushes rarely
/// reallocate while measuring.
const SAMPLES_PER_VU_HINT: usize = 300;
/// The teardown summary starts this long before the test did (the final: 360 s for 300 s).
const TEARDOWN_MARGIN_MS: i64 = 60_000;
/// Success statuses for a payment, exactly the official list.
pub const POST_OK_STATUSES: [u16; 4] = [200, 201, 202, 204];
/// Threads of the load generator's runtime. Two keep one slow task from delaying the timing
/// of the others on a 2-CPU machine.
const WORKER_THREADS: usize = 2;
/// With kills, teardown waits until the processors' books have not changed for this long: the
/// backlog a restart leaves (retries, payments taken over by the survivor) has landed by then,
/// so what is missing afterwards is lost, not late.
const DRAIN_STILL: Duration = Duration::from_secs(2);
/// ... but no longer than this after the load: a backend that keeps paying in a trickle must
/// not hold the run forever (payrelay's processor timeout is 15 s, twice that is ample).
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// How often the drain wait reads the books.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// The runtime a load runs on (the contest's, the capacity sweep's, the tests'), its threads
/// named `name`.
pub fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name(name)
        .enable_all()
        .build()
}

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
    /// kills (the crash harness checks each against the books); empty otherwise, so that a
    /// normal run pays nothing for it.
    pub accepted_ids: Vec<uuid::Uuid>,
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

/// Counters shared by the VUs, read by the progress line.
#[derive(Debug, Default)]
struct Counters {
    ok: AtomicU64,
    failed_status: AtomicU64,
    failed_timeout: AtomicU64,
    failed_connect: AtomicU64,
    failed_io: AtomicU64,
    vus: AtomicU64,
    inconsistencies: AtomicU64,
}

/// State shared by every task of one run.
#[derive(Debug)]
struct Ctx {
    target: SocketAddr,
    /// When the load started: second 0 of the series.
    started: tokio::time::Instant,
    amount_json: String,
    timeout: Duration,
    end: tokio::time::Instant,
    counters: Counters,
    admin_latencies_us: Mutex<Vec<u64>>,
    admin_failures: AtomicU64,
    /// Keep the correlationIds of accepted POSTs (only with kills: it costs memory per POST).
    record_accepted: bool,
}

/// What one virtual user brings back.
#[derive(Debug, Default)]
struct VuRecord {
    /// Its expected-status POST latencies, µs.
    latencies_us: Vec<u64>,
    /// For each of `latencies_us`, the second of the load it completed in.
    latency_seconds: Vec<u32>,
    /// Its POSTs, succeeded and failed, by the second they completed in.
    post_seconds: SecondTally,
    /// The correlationIds it had accepted (only when [`Ctx::record_accepted`]).
    accepted_ids: Vec<uuid::Uuid>,
}

impl Ctx {
    /// The second of the load that is running now (0 from the start).
    fn second_now(&self) -> u32 {
        let elapsed_s = tokio::time::Instant::now().duration_since(self.started).as_secs();
        u32::try_from(elapsed_s).unwrap_or(u32::MAX)
    }

    /// Copies what the VUs counted and the admin calls' record into the report, once every
    /// task that writes them is done.
    fn fill_report(&self, report: &mut LoadReport) {
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

    fn record_admin(&self, result: &Result<Reply, Failure>) {
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

/// Runs setup, the load with its checker and stages, and teardown.
pub async fn run(plan: LoadPlan) -> Result<LoadReport, String> {
    let scenario = &plan.scenario;
    let amount_json = serde_json::to_string(&scenario.amount).map_err(|e| e.to_string())?;
    // Validated positive when the scenario was loaded.
    let timeout = Duration::from_millis(scenario.timeout_ms.unsigned_abs());
    let token = uuid::Uuid::new_v4().simple().to_string();
    // One connection per processor for setup and teardown, kept alive in between.
    let mut admin = AdminConns {
        default: Conn::new(plan.default_addr),
        fallback: Conn::new(plan.fallback_addr),
        token,
    };
    let setup_latencies = setup(&plan, &mut admin, timeout).await?;

    let started = tokio::time::Instant::now();
    let started_at_ms = time::now_ms();
    if let Some(listener) = &plan.load_started {
        // A listener that has gone away has nothing left to schedule.
        let _ = listener.send(started.into_std());
    }
    let duration = Duration::from_secs_f64(scenario.duration_s);
    let ctx = Arc::new(Ctx {
        target: plan.target,
        started,
        amount_json,
        timeout,
        end: started + duration,
        counters: Counters::default(),
        admin_latencies_us: Mutex::new(setup_latencies),
        admin_failures: AtomicU64::new(0),
        record_accepted: scenario.kills.is_some(),
    });

    let checker = tokio::spawn(checker(ctx.clone(), plan.clone(), admin.token.clone()));
    let stages = tokio::spawn(stages(ctx.clone(), plan.clone(), admin.token.clone(), started));
    let seconds = Series::seconds_for(scenario.duration_s);
    let sampler = tokio::spawn(sampler::record(
        plan.recorded.clone(),
        plan.instances.clone(),
        started,
        seconds,
    ));
    let progress = plan.progress_every.map(|every| {
        let metrics = plan.instances.iter().map(|instance| instance.metrics_addr).collect();
        tokio::spawn(progress(
            ctx.clone(),
            plan.recorded.clone(),
            metrics,
            every,
            started,
            duration,
        ))
    });
    let vus = ramp(&ctx, scenario.vus_max, started, duration).await;
    let mut report = LoadReport { started_at_ms, ..LoadReport::default() };
    let post_seconds = gather_vus(vus, &mut report, seconds).await;
    let (checks, summary_latencies, summary_failures) =
        checker.await.map_err(|e| format!("checker: {e}"))?;
    stages.await.map_err(|e| format!("stages: {e}"))?;
    let sampled = sampler.await.map_err(|e| format!("sampler: {e}"))?;
    if let Some(progress) = progress {
        progress.abort();
    }

    if scenario.kills.is_some() {
        wait_books_still(plan.recorded.as_ref(), plan.progress_every.is_some()).await;
    }
    (report.default, report.fallback) = teardown(&ctx, &mut admin, scenario.duration_s).await?;
    if scenario.kills.is_some() {
        report.final_summary_mismatch =
            Some(final_summary_mismatch(&ctx, &report, plan.progress_every.is_some()).await);
    }
    report.inconsistencies = checks.iter().map(Check::inconsistencies).sum();
    report.series = series(scenario, post_seconds, sampled, &checks);
    report.checks = checks;
    report.summary_latencies_us = summary_latencies;
    report.summary_failures = summary_failures;
    ctx.fill_report(&mut report);
    Ok(report)
}

/// Waits for every VU and files what each brings back: its latencies and accepted ids in
/// `report`, its POSTs by second in what it returns (`seconds` long).
async fn gather_vus(
    vus: Vec<tokio::task::JoinHandle<VuRecord>>,
    report: &mut LoadReport,
    seconds: usize,
) -> PostSeconds {
    let mut post_seconds = PostSeconds::new(seconds);
    for vu in vus {
        if let Ok(record) = vu.await {
            report.post_latencies_us.extend_from_slice(&record.latencies_us);
            report.accepted_ids.extend_from_slice(&record.accepted_ids);
            post_seconds.add_tally(&record.post_seconds);
            for (second, latency_us) in record.latency_seconds.iter().zip(&record.latencies_us) {
                post_seconds.add_latency(*second as usize, *latency_us);
            }
        }
    }
    post_seconds
}

/// The run second by second: the VUs' POSTs, what the sampler read, the scenario's stages and
/// each check at its time.
fn series(scenario: &Scenario, posts: PostSeconds, sampled: Sampled, checks: &[Check]) -> Series {
    let marks = checks
        .iter()
        .map(|check| CheckMark {
            at_s: check.at_ms as f64 / 1000.0,
            inconsistencies: check.inconsistencies(),
        })
        .collect();
    Series::build(scenario.duration_s, posts, sampled, scenario.stages.clone(), marks)
}

/// The admin side of one run: a keep-alive connection to each processor and the token that
/// setup sets on both.
struct AdminConns {
    default: Conn,
    fallback: Conn,
    token: String,
}

/// Setup, in the final's order: change the admin token (so the backend cannot use it), purge
/// both processors with it, then purge the backend (errors ignored). Returns the latencies of
/// the calls that succeeded.
async fn setup(
    plan: &LoadPlan,
    admin: &mut AdminConns,
    timeout: Duration,
) -> Result<Vec<u64>, String> {
    let mut setup_latencies = Vec::new();
    let token_body = Bytes::from(serde_json::json!({ "token": admin.token }).to_string());
    for (name, conn) in [("default", &mut admin.default), ("fallback", &mut admin.fallback)] {
        let reply = conn
            .request(
                Method::PUT,
                "/admin/configurations/token",
                &[("x-rinha-token", TOKEN_DEFAULT)],
                Some(token_body.clone()),
                ADMIN_TIMEOUT,
            )
            .await;
        match reply {
            Ok(reply) if reply.status == 204 => setup_latencies.push(reply.latency_us),
            other => {
                return Err(format!(
                    "setup: changing the {name} processor's token failed: {other:?}"
                ));
            }
        }
    }
    for (name, conn) in [("default", &mut admin.default), ("fallback", &mut admin.fallback)] {
        let reply = conn
            .request(
                Method::POST,
                "/admin/purge-payments",
                &[("x-rinha-token", admin.token.as_str())],
                None,
                ADMIN_TIMEOUT,
            )
            .await;
        match reply {
            Ok(reply) if reply.status == 200 => setup_latencies.push(reply.latency_us),
            other => {
                return Err(format!("setup: purging the {name} processor failed: {other:?}"));
            }
        }
    }
    let mut target_conn = Conn::new(plan.target);
    if let Ok(reply) =
        target_conn.request(Method::POST, "/purge-payments", &[], None, timeout).await
        && reply.expected()
    {
        setup_latencies.push(reply.latency_us);
    }
    Ok(setup_latencies)
}

/// Starts the virtual users on the ramp and returns their tasks. VU k (0-based) starts at
/// k/(vus_max-1) of the test, so the count climbs linearly from 1 to vus_max like k6's
/// ramping-vus executor.
async fn ramp(
    ctx: &Arc<Ctx>,
    vus_max: u32,
    started: tokio::time::Instant,
    duration: Duration,
) -> Vec<tokio::task::JoinHandle<VuRecord>> {
    let vus_count = vus_max as usize;
    let vus_max = u64::from(vus_max);
    let mut vus = Vec::with_capacity(vus_count);
    for k in 0..vus_max {
        let offset = if vus_max > 1 {
            duration.mul_f64(k as f64 / (vus_max - 1) as f64)
        } else {
            Duration::ZERO
        };
        let start_at = started + offset;
        if start_at >= ctx.end {
            break;
        }
        tokio::time::sleep_until(start_at).await;
        ctx.counters.vus.fetch_add(1, Ordering::Relaxed);
        vus.push(tokio::spawn(virtual_user(ctx.clone())));
    }
    vus
}

/// Teardown: the processors' own totals (default, fallback), over the final's window: from the
/// test's length plus a minute ago (360 s for its 300 s) until now.
async fn teardown(
    ctx: &Ctx,
    admin: &mut AdminConns,
    duration_s: f64,
) -> Result<(Totals, Totals), String> {
    let to_ms = time::now_ms();
    let from_ms = to_ms - (duration_s * 1000.0).round() as i64 - TEARDOWN_MARGIN_MS;
    let teardown_path = format!(
        "/admin/payments-summary?from={}&to={}",
        time::format_iso_ms(from_ms),
        time::format_iso_ms(to_ms)
    );
    let mut totals = [Totals::default(); 2];
    let token = admin.token.as_str();
    for (which, conn) in [(0, &mut admin.default), (1, &mut admin.fallback)] {
        let reply = conn
            .request(Method::GET, &teardown_path, &[("x-rinha-token", token)], None, ADMIN_TIMEOUT)
            .await;
        ctx.record_admin(&reply);
        totals[which] = match reply {
            Ok(reply) if reply.status == 200 => processor_totals(&reply.body).ok_or_else(|| {
                format!("teardown: unreadable processor summary {:?}", reply.body)
            })?,
            other => return Err(format!("teardown: processor summary failed: {other:?}")),
        };
    }
    Ok((totals[0], totals[1]))
}

/// With kills, waits until the processors' books have not changed for [`DRAIN_STILL`], at most
/// [`DRAIN_MAX`], so that teardown counts what was lost rather than what was still on its way.
/// Without the lab's own processors (`recorded` is `None`) there is nothing to watch: it returns
/// at once.
async fn wait_books_still(recorded: Option<&RecordedProbe>, verbose: bool) {
    let Some(recorded) = recorded else {
        if verbose {
            eprintln!("  drain: the processors are not the lab's own, not waited for");
        }
        return;
    };
    let began = tokio::time::Instant::now();
    let mut last_count = recorded.recorded();
    let mut still_since = began;
    while still_since.elapsed() < DRAIN_STILL && began.elapsed() < DRAIN_MAX {
        tokio::time::sleep(DRAIN_POLL).await;
        let count = recorded.recorded();
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
        eprintln!(
            "  drain: {last_count} payments at the processors after {:.1}s, {how}",
            began.elapsed().as_secs_f64()
        );
    }
}

/// The backend's `GET /payments-summary` over the whole test (no `from`/`to`) against the
/// processors' teardown totals: Σ |ours − theirs| of `totalRequests`, default and fallback. An
/// unusable answer counts as zeros, as the checker counts it.
async fn final_summary_mismatch(ctx: &Ctx, report: &LoadReport, verbose: bool) -> u64 {
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

/// One virtual user: POST, sleep 1 s, until the test ends. Returns its expected-status
/// latencies, and the correlationIds it had accepted when the run records them.
async fn virtual_user(ctx: Arc<Ctx>) -> VuRecord {
    let mut conn = Conn::new(ctx.target);
    let mut record = VuRecord {
        latencies_us: Vec::with_capacity(SAMPLES_PER_VU_HINT),
        latency_seconds: Vec::with_capacity(SAMPLES_PER_VU_HINT),
        ..VuRecord::default()
    };
    let counters = &ctx.counters;
    while tokio::time::Instant::now() < ctx.end {
        let correlation_id = uuid::Uuid::new_v4();
        let body =
            format!(r#"{{"correlationId":"{correlation_id}","amount":{}}}"#, ctx.amount_json);
        let reply = conn
            .request(Method::POST, "/payments", &[], Some(Bytes::from(body)), ctx.timeout)
            .await;
        let second = ctx.second_now();
        let ok = reply.as_ref().is_ok_and(|reply| POST_OK_STATUSES.contains(&reply.status));
        record.post_seconds.count(second as usize, ok);
        match reply {
            Ok(reply) => {
                if ok {
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                    if ctx.record_accepted {
                        record.accepted_ids.push(correlation_id);
                    }
                } else {
                    counters.failed_status.fetch_add(1, Ordering::Relaxed);
                }
                if reply.expected() {
                    record.latencies_us.push(reply.latency_us);
                    record.latency_seconds.push(second);
                }
            }
            Err(Failure::Timeout) => {
                counters.failed_timeout.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Connect) => {
                counters.failed_connect.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Io) => {
                counters.failed_io.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wake = tokio::time::Instant::now() + VU_SLEEP;
        if wake >= ctx.end {
            break;
        }
        tokio::time::sleep_until(wake).await;
    }
    record
}

fn processor_totals(body: &[u8]) -> Option<Totals> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let count = value.get("totalRequests")?.as_u64()?;
    let cents = crate::money::cents_from_f64(value.get("totalAmount")?.as_f64()?)?;
    Some(Totals { count, cents })
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

/// The checker VU: every `check_every_s`, the two processors' summaries and ours, in parallel,
/// over `[now − window_start_s, now − window_end_s]`. Returns the checks, the latencies of our
/// summary calls and how many of them failed.
async fn checker(ctx: Arc<Ctx>, plan: LoadPlan, token: String) -> (Vec<Check>, Vec<u64>, u64) {
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

/// Applies each stage at its time: delay then failure, default then fallback, like the
/// official `define_stage`.
async fn stages(ctx: Arc<Ctx>, plan: LoadPlan, token: String, started: tokio::time::Instant) {
    let mut default_conn = Conn::new(plan.default_addr);
    let mut fallback_conn = Conn::new(plan.fallback_addr);
    let headers = [("x-rinha-token", token.as_str())];
    for stage in &plan.scenario.stages {
        tokio::time::sleep_until(started + Duration::from_secs_f64(stage.at_s)).await;
        let delay_body =
            |state: ProcessorState| Bytes::from(format!(r#"{{"delay":{}}}"#, state.delay_ms));
        let failure_body =
            |state: ProcessorState| Bytes::from(format!(r#"{{"failure":{}}}"#, state.failing));
        let calls = [
            (&mut default_conn, "/admin/configurations/delay", delay_body(stage.default)),
            (&mut fallback_conn, "/admin/configurations/delay", delay_body(stage.fallback)),
        ];
        for (conn, path, body) in calls {
            let reply = conn.request(Method::PUT, path, &headers, Some(body), ADMIN_TIMEOUT).await;
            ctx.record_admin(&reply);
        }
        let calls = [
            (&mut default_conn, "/admin/configurations/failure", failure_body(stage.default)),
            (&mut fallback_conn, "/admin/configurations/failure", failure_body(stage.fallback)),
        ];
        for (conn, path, body) in calls {
            let reply = conn.request(Method::PUT, path, &headers, Some(body), ADMIN_TIMEOUT).await;
            ctx.record_admin(&reply);
        }
        if plan.progress_every.is_some() {
            eprintln!(
                "  stage at {}s: default {}ms{}, fallback {}ms{}",
                stage.at_s,
                stage.default.delay_ms,
                if stage.default.failing { " failing" } else { "" },
                stage.fallback.delay_ms,
                if stage.fallback.failing { " failing" } else { "" },
            );
        }
    }
}

/// Prints time, VUs, POST rate, queue lag (accepted but not yet at a processor), the
/// backend's backlog as its metrics tell it, and inconsistencies so far.
async fn progress(
    ctx: Arc<Ctx>,
    recorded: Option<RecordedProbe>,
    metrics: Vec<SocketAddr>,
    every: Duration,
    started: tokio::time::Instant,
    duration: Duration,
) {
    let counters = &ctx.counters;
    let mut last_done = 0;
    let mut last_at = started;
    let mut scrapers: Vec<Conn> = metrics.into_iter().map(Conn::new).collect();
    loop {
        tokio::time::sleep(every).await;
        let now = tokio::time::Instant::now();
        let ok = counters.ok.load(Ordering::Relaxed);
        let failed = counters.failed_status.load(Ordering::Relaxed)
            + counters.failed_timeout.load(Ordering::Relaxed)
            + counters.failed_connect.load(Ordering::Relaxed)
            + counters.failed_io.load(Ordering::Relaxed);
        let done = ok + failed;
        let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        let lag = recorded.as_ref().map(|probe| ok as i64 - probe.recorded() as i64);
        let backlog = backlog(&mut scrapers).await;
        eprintln!(
            "t={:>6.1}s/{:.0}s vus={:>4} rate={:>6.1}/s ok={} failed={} queue_lag={}{backlog} inconsistencies={}",
            now.duration_since(started).as_secs_f64(),
            duration.as_secs_f64(),
            counters.vus.load(Ordering::Relaxed),
            rate,
            ok,
            failed,
            lag.map_or("?".to_owned(), |l| l.to_string()),
            counters.inconsistencies.load(Ordering::Relaxed),
        );
        last_done = done;
        last_at = now;
    }
}

/// ` queued=N holding=M` summed over the instances' metrics, or nothing without them (a
/// scrape that fails shows `?`).
async fn backlog(scrapers: &mut [Conn]) -> String {
    if scrapers.is_empty() {
        return String::new();
    }
    let families = ["payrelay_queue_len", "payrelay_holding"];
    let mut sums = [Some(0.0); 2];
    for scraper in scrapers.iter_mut() {
        let reply =
            scraper.request(Method::GET, "/metrics", &[], None, Duration::from_millis(500)).await;
        let text = reply.ok().map(|r| String::from_utf8_lossy(&r.body).into_owned());
        for (sum, family) in sums.iter_mut().zip(families) {
            let value = text.as_deref().and_then(|text| sampler::metric_all(text, family));
            *sum = sum.zip(value).map(|(a, b)| a + b);
        }
    }
    let show = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0}"));
    format!(" queued={} holding={}", show(sums[0]), show(sums[1]))
}
