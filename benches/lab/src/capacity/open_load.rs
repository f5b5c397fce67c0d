//! An open-model load: requests start on a fixed schedule, `rate_per_s` a second, whatever the
//! server does with the earlier ones.
//!
//! The contest's load ([`crate::load`]) is closed: each virtual user waits for its answer (and
//! then sleeps 1 s) before it sends again, so a server that slows down is sent less, and its
//! slowness hides part of itself. Here the i-th request is due at `start + i / rate_per_s` and
//! goes out then on an idle connection of a fixed pool; a request that finds none is not sent
//! and counts as a *schedule miss*, so the schedule never waits for the server.
//!
//! A thread of its own keeps the schedule with `nanosleep` (tokio's timer works in whole
//! milliseconds, which at 4,000/s would release requests in bursts of four) and hands each
//! request to the connection that has been idle longest: every pooled connection is used in
//! turn, so a pair sharing a port with `SO_REUSEPORT` gets both its halves' shares, as the
//! contest's hundreds of connections (one per virtual user) give it.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use tokio::sync::mpsc;

use crate::{
    backend::read_cpu_time,
    client::{Conn, Failure},
    load::POST_OK_STATUSES,
};

/// Where every request goes (always a `POST`).
const PAYMENTS_PATH: &str = "/payments";
/// The schedule thread's timer slack, ns. Linux lets a normal thread's sleep end up to 50 µs
/// late so that wake-ups can be merged; at 10,000/s requests are 100 µs apart, so that slack
/// would bunch them. 1 ns asks for the wake-up on time (the kernel's minimum).
const SCHEDULE_TIMER_SLACK_NS: libc::c_ulong = 1;

/// One step of the load: a rate held for a duration after a warm-up.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// Requests started per second.
    pub rate_per_s: f64,
    /// Requests at the same rate before the measured ones, not counted: they open the pool's
    /// connections and bring the server to its steady state.
    pub warmup: Duration,
    /// How long the measured requests are scheduled over.
    pub duration: Duration,
    /// Each request's whole-exchange timeout (connecting included), which also bounds how
    /// long a request holds its connection.
    pub timeout: Duration,
    /// Pooled keep-alive connections, opened on first use and used in turn.
    pub connections: usize,
    /// Processes whose CPU time the step accounts (name, pid): the server's.
    pub watched: Vec<(String, u32)>,
}

/// What one step measured, over its measured requests only (those due after the warm-up).
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// The rate asked for, per second.
    pub rate_per_s: f64,
    /// From the first measured request's due time to the end of the last measured exchange,
    /// and never shorter than the schedule's own span (n requests at rate r fill n / r
    /// seconds, though the last is due (n − 1) / r after the first), seconds: the window the
    /// achieved rate is counted over, so that it is at most the offered rate.
    pub window_s: f64,
    /// Requests due in the measured window.
    pub scheduled: u64,
    /// Of those, the ones sent (the rest are schedule misses).
    pub sent: u64,
    /// Requests due while no pooled connection was idle: not sent.
    pub schedule_misses: u64,
    /// Answered with a success status ([`POST_OK_STATUSES`]).
    pub ok: u64,
    /// Answered with another status.
    pub failed_status: u64,
    /// No complete answer within the timeout.
    pub failed_timeout: u64,
    /// The connection could not be opened.
    pub failed_connect: u64,
    /// The connection broke with the request in flight.
    pub failed_io: u64,
    /// Latencies of answers with an expected status (200..=399), µs: from sending on an open
    /// connection to the last body byte, as k6's `http_req_duration`.
    pub latencies_us: Vec<u64>,
    /// For every sent request, how late it started against its due time, µs: the client's own
    /// lateness (schedule thread and runtime wake-ups), not the server's.
    pub start_lags_us: Vec<u64>,
    /// CPU seconds each watched process (name) spent from the first measured request's due
    /// time until the last measured exchange ended; `None` if `/proc` could not be read.
    pub cpu_s: Vec<(String, Option<f64>)>,
}

impl StepReport {
    /// Requests that failed for any reason.
    pub fn failed(&self) -> u64 {
        self.failed_status + self.failed_timeout + self.failed_connect + self.failed_io
    }

    /// Successful requests per second of the measured window.
    pub fn achieved_per_s(&self) -> f64 {
        if self.window_s > 0.0 { self.ok as f64 / self.window_s } else { 0.0 }
    }
}

/// When each request is due: `start + i / rate_per_s`, computed from `i` rather than summed,
/// so no rounding accumulates over a long step.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The first request's due time.
    pub start: Instant,
    /// Requests per second.
    pub rate_per_s: f64,
    /// Requests due during the warm-up (the first ones, not measured).
    pub warmup_count: u64,
    /// Measured requests, due after the warm-up's.
    pub measured_count: u64,
}

impl Schedule {
    /// The schedule of `plan` starting at `start`; an error for a rate or duration that makes
    /// no step.
    pub fn new(start: Instant, plan: &StepPlan) -> Result<Schedule, String> {
        let rate_per_s = plan.rate_per_s;
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(format!("rate {rate_per_s}/s: must be a positive number"));
        }
        let count = |span: Duration| (span.as_secs_f64() * rate_per_s).round() as u64;
        let measured_count = count(plan.duration);
        if measured_count == 0 {
            return Err(format!(
                "a {:.3} s step at {rate_per_s}/s schedules no request",
                plan.duration.as_secs_f64()
            ));
        }
        Ok(Schedule { start, rate_per_s, warmup_count: count(plan.warmup), measured_count })
    }

    /// Every request, warm-up and measured.
    pub fn total(&self) -> u64 {
        self.warmup_count + self.measured_count
    }

    /// When request `index` (0-based, warm-up first) is due.
    pub fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate_per_s)
    }

    /// Whether request `index` is measured (due after the warm-up).
    pub fn measured(&self, index: u64) -> bool {
        index >= self.warmup_count
    }

    /// When the first measured request is due.
    pub fn measured_start(&self) -> Instant {
        self.due(self.warmup_count)
    }
}

/// One request handed to a pooled connection.
#[derive(Debug, Clone, Copy)]
struct Job {
    due: Instant,
    measured: bool,
}

/// The idle connections, longest idle first (so every one is used in turn).
#[derive(Debug)]
struct IdlePool {
    idle: Mutex<VecDeque<usize>>,
}

impl IdlePool {
    fn new(connections: usize) -> IdlePool {
        IdlePool { idle: Mutex::new((0..connections).collect()) }
    }

    fn take(&self) -> Option<usize> {
        // A poisoned lock only means a task panicked mid-push; the queue itself is intact.
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    fn give_back(&self, connection: usize) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push_back(connection);
    }
}

/// Outcome counters of the measured requests, shared by the connections' tasks.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    failed_status: AtomicU64,
    failed_timeout: AtomicU64,
    failed_connect: AtomicU64,
    failed_io: AtomicU64,
}

impl Counters {
    fn fill(&self, report: &mut StepReport) {
        report.sent = self.sent.load(Ordering::Relaxed);
        report.ok = self.ok.load(Ordering::Relaxed);
        report.failed_status = self.failed_status.load(Ordering::Relaxed);
        report.failed_timeout = self.failed_timeout.load(Ordering::Relaxed);
        report.failed_connect = self.failed_connect.load(Ordering::Relaxed);
        report.failed_io = self.failed_io.load(Ordering::Relaxed);
    }
}

/// What one pooled connection's task brings back from the measured requests it sent.
#[derive(Debug, Default)]
struct ConnRecord {
    latencies_us: Vec<u64>,
    start_lags_us: Vec<u64>,
    /// When its last measured exchange ended.
    last_end: Option<Instant>,
}

/// What the schedule's thread brings back.
#[derive(Debug)]
struct Kept {
    schedule_misses: u64,
    /// Each watched process's CPU time when the first measured request was due.
    cpu_before: Vec<Option<Duration>>,
}

/// A payment body with a fresh correlationId, as the contest's script sends it.
fn payment_body() -> Bytes {
    let correlation_id = uuid::Uuid::new_v4();
    Bytes::from(format!(r#"{{"correlationId":"{correlation_id}","amount":19.90}}"#))
}

/// Runs one step against `target`: `plan.rate_per_s` payments a second, a warm-up then the
/// measured window, and waits for the last answer (at most the timeout). Call it inside a tokio
/// runtime with I/O and time enabled.
pub async fn run_step(target: SocketAddr, plan: &StepPlan) -> Result<StepReport, String> {
    if plan.connections == 0 {
        return Err("a step needs at least one connection".to_owned());
    }
    let idle = Arc::new(IdlePool::new(plan.connections));
    let counters = Arc::new(Counters::default());
    let mut senders = Vec::with_capacity(plan.connections);
    let mut tasks = Vec::with_capacity(plan.connections);
    for connection in 0..plan.connections {
        // One slot: a connection is handed a request only while idle, so never a second one.
        let (sender, jobs) = mpsc::channel(1);
        senders.push(sender);
        let pooled = Pooled {
            connection,
            conn: Conn::new(target),
            timeout: plan.timeout,
            idle: idle.clone(),
            counters: counters.clone(),
        };
        tasks.push(tokio::spawn(pooled.serve(jobs)));
    }
    let schedule = Schedule::new(Instant::now(), plan)?;
    let watched = plan.watched.clone();
    let kept =
        tokio::task::spawn_blocking(move || keep_schedule(schedule, senders, &idle, &watched))
            .await
            .map_err(|e| format!("schedule thread: {e}"))?;
    let mut report = StepReport {
        rate_per_s: plan.rate_per_s,
        scheduled: schedule.measured_count,
        schedule_misses: kept.schedule_misses,
        ..StepReport::default()
    };
    let mut last_end = schedule.measured_start();
    for task in tasks {
        let record = task.await.map_err(|e| format!("connection task: {e}"))?;
        report.latencies_us.extend_from_slice(&record.latencies_us);
        report.start_lags_us.extend_from_slice(&record.start_lags_us);
        last_end = last_end.max(record.last_end.unwrap_or(last_end));
    }
    report.cpu_s = cpu_deltas(&plan.watched, &kept.cpu_before);
    let answered_s = last_end.saturating_duration_since(schedule.measured_start()).as_secs_f64();
    report.window_s = answered_s.max(schedule.measured_count as f64 / schedule.rate_per_s);
    counters.fill(&mut report);
    Ok(report)
}

/// Each watched process's CPU seconds since `before` (read when the measured window began).
fn cpu_deltas(
    watched: &[(String, u32)],
    before: &[Option<Duration>],
) -> Vec<(String, Option<f64>)> {
    watched
        .iter()
        .zip(before)
        .map(|((name, pid), before)| {
            let delta = read_cpu_time(*pid)
                .zip(*before)
                .map(|(after, before)| after.saturating_sub(before).as_secs_f64());
            (name.clone(), delta)
        })
        .collect()
}

/// The schedule's thread: sleeps until each request is due and hands it to the longest-idle
/// connection, or counts a miss when none is idle. Reads the watched processes' CPU time when
/// the first measured request is due. Returns once every request is handed out; dropping the
/// senders then lets each connection's task end after its last answer.
fn keep_schedule(
    schedule: Schedule,
    senders: Vec<mpsc::Sender<Job>>,
    idle: &IdlePool,
    watched: &[(String, u32)],
) -> Kept {
    // SAFETY: prctl(PR_SET_TIMERSLACK) changes only this thread's timer slack; no memory is
    // passed. A failure leaves the default slack, which only makes the spacing coarser.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, SCHEDULE_TIMER_SLACK_NS);
    }
    let mut kept = Kept { schedule_misses: 0, cpu_before: vec![None; watched.len()] };
    for index in 0..schedule.total() {
        let due = schedule.due(index);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let measured = schedule.measured(index);
        if index == schedule.warmup_count {
            kept.cpu_before = watched.iter().map(|(_, pid)| read_cpu_time(*pid)).collect();
        }
        // An idle connection's slot is empty (it took its last request before going idle), so
        // `try_send` fails only if its task has ended: that request is not sent either.
        let handed = idle
            .take()
            .is_some_and(|connection| senders[connection].try_send(Job { due, measured }).is_ok());
        if !handed && measured {
            kept.schedule_misses += 1;
        }
    }
    kept
}

/// One pooled connection and what its task needs to send requests and count them.
struct Pooled {
    connection: usize,
    conn: Conn,
    timeout: Duration,
    idle: Arc<IdlePool>,
    counters: Arc<Counters>,
}

impl Pooled {
    /// Sends each request handed to this connection, goes back to the pool as soon as the
    /// exchange ends, and counts the measured ones.
    async fn serve(mut self, mut jobs: mpsc::Receiver<Job>) -> ConnRecord {
        let mut record = ConnRecord::default();
        while let Some(job) = jobs.recv().await {
            let lag = Instant::now().saturating_duration_since(job.due);
            let result = self
                .conn
                .request(Method::POST, PAYMENTS_PATH, &[], Some(payment_body()), self.timeout)
                .await;
            self.idle.give_back(self.connection);
            if !job.measured {
                continue;
            }
            record.last_end = Some(Instant::now());
            let counters = &self.counters;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            record.start_lags_us.push(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX));
            let counter = match result {
                Ok(reply) => {
                    if reply.expected() {
                        record.latencies_us.push(reply.latency_us);
                    }
                    if POST_OK_STATUSES.contains(&reply.status) {
                        &counters.ok
                    } else {
                        &counters.failed_status
                    }
                }
                Err(Failure::Timeout) => &counters.failed_timeout,
                Err(Failure::Connect) => &counters.failed_connect,
                Err(Failure::Io) => &counters.failed_io,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Mutex as StdMutex};

    use http_body_util::Full;
    use hyper::{Response, StatusCode, server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    fn plan(rate_per_s: f64, duration: Duration, connections: usize) -> StepPlan {
        StepPlan {
            rate_per_s,
            warmup: Duration::ZERO,
            duration,
            timeout: Duration::from_secs(2),
            connections,
            watched: vec![("self".to_owned(), std::process::id())],
        }
    }

    /// A fake target: answers `202` after `delay` and records when each request arrived.
    async fn fake_target(delay: Duration) -> (SocketAddr, Arc<StdMutex<Vec<Instant>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let arrivals = Arc::new(StdMutex::new(Vec::new()));
        let seen = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let service = service_fn(move |_request| {
                    seen.lock().expect("arrivals").push(Instant::now());
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::ACCEPTED;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (addr, arrivals)
    }

    fn runtime() -> tokio::runtime::Runtime {
        crate::load::runtime("open-load-test").expect("runtime")
    }

    /// Goal: request i is due exactly i / rate after the start, whatever came before; the
    /// warm-up's requests come first; a step too short for its rate, or a rate that is not a
    /// positive number, is refused. Method: pure arithmetic on a schedule of 400/s.
    #[test]
    fn schedule_due_times_and_warmup() {
        let start = Instant::now();
        let mut step = plan(400.0, Duration::from_secs(2), 1);
        step.warmup = Duration::from_millis(500);
        let schedule = Schedule::new(start, &step).expect("schedule");
        assert_eq!((schedule.warmup_count, schedule.measured_count), (200, 800));
        assert_eq!(schedule.total(), 1000);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(1) - schedule.due(0), Duration::from_micros(2500));
        assert_eq!(schedule.due(1000) - start, Duration::from_millis(2500));
        // Computed from the index, not summed: no drift after many requests.
        assert_eq!(schedule.due(400_000) - start, Duration::from_secs(1000));
        assert_eq!(schedule.measured_start() - start, Duration::from_millis(500));
        assert!(!schedule.measured(199) && schedule.measured(200));
        assert!(Schedule::new(start, &plan(0.0, Duration::from_secs(1), 1)).is_err());
        assert!(Schedule::new(start, &plan(-5.0, Duration::from_secs(1), 1)).is_err());
        assert!(Schedule::new(start, &plan(f64::NAN, Duration::from_secs(1), 1)).is_err());
        assert!(Schedule::new(start, &plan(10.0, Duration::from_millis(10), 1)).is_err());
    }

    /// Goal: on a server that answers at once, requests go out on the schedule and never
    /// before it: the i-th to arrive arrives at least i / rate after the step began (the open
    /// model's contract; lateness is the client's, and is recorded, not hidden), every request
    /// is sent or counted as a miss, the first pool's worth always goes out, and the watched
    /// process's CPU is accounted. Method: a fake target recording arrival times; 1,000/s for
    /// 0.5 s over 256 connections. Nothing here depends on the machine being idle.
    #[test]
    fn requests_never_leave_early_and_are_all_accounted() {
        let runtime = runtime();
        let (addr, arrivals) = runtime.block_on(fake_target(Duration::ZERO));
        let step = plan(1000.0, Duration::from_millis(500), 256);
        let began = Instant::now();
        let report = runtime.block_on(run_step(addr, &step)).expect("step");
        assert_eq!(report.scheduled, 500, "{report:?}");
        assert_eq!(report.sent + report.schedule_misses, report.scheduled, "{report:?}");
        assert!(report.sent >= 256, "a full pool takes its first 256: {report:?}");
        assert_eq!((report.ok, report.failed()), (report.sent, 0), "{report:?}");
        assert_eq!(report.latencies_us.len() as u64, report.sent);
        assert_eq!(report.start_lags_us.len() as u64, report.sent);
        let mut arrivals = arrivals.lock().expect("arrivals").clone();
        arrivals.sort();
        assert_eq!(arrivals.len() as u64, report.sent);
        for (i, arrival) in arrivals.iter().enumerate() {
            let earliest = began + Duration::from_secs_f64(i as f64 / 1000.0);
            assert!(*arrival >= earliest, "arrival {i} came {:?} early", earliest - *arrival);
        }
        assert!(report.window_s >= 0.5, "window {} s", report.window_s);
        let achieved_per_s = report.achieved_per_s();
        assert!(achieved_per_s > 0.0 && achieved_per_s <= 1000.0, "{achieved_per_s}/s");
        let (name, cpu_s) = &report.cpu_s[0];
        assert_eq!(name, "self");
        assert!(cpu_s.is_some_and(|s| s.is_finite() && s > 0.0), "{cpu_s:?}");
    }

    /// Goal: a request due while every connection is busy is not sent but counted as a
    /// schedule miss; the schedule does not wait for the server. Method: 100/s for 1 s over 4
    /// connections to a target that answers after 200 ms: each connection carries at most one
    /// request per 200 ms, so at most about 24 of the 100 go out (4 at once, every 200 ms; a
    /// starved test process sends fewer, never more) and at least the first 4.
    #[test]
    fn busy_pool_counts_misses_without_waiting() {
        let runtime = runtime();
        let (addr, arrivals) = runtime.block_on(fake_target(Duration::from_millis(200)));
        let step = plan(100.0, Duration::from_secs(1), 4);
        let began = Instant::now();
        let report = runtime.block_on(run_step(addr, &step)).expect("step");
        assert_eq!(report.scheduled, 100);
        assert_eq!(report.sent + report.schedule_misses, report.scheduled);
        assert!((4..=32).contains(&report.sent), "sent {}", report.sent);
        assert_eq!(report.sent, arrivals.lock().expect("arrivals").len() as u64);
        assert_eq!((report.ok, report.failed()), (report.sent, 0));
        // The schedule ended on time (1 s) and the last answers came 200 ms later; had it
        // waited for free connections, 100 requests at 4 per 200 ms would take 5 s.
        assert!(began.elapsed() < Duration::from_millis(3000), "{:?}", began.elapsed());
    }

    /// Goal: the body is a payment the backend accepts: a fresh correlationId each time and
    /// the contest's amount. Method: parse two bodies.
    #[test]
    fn bodies_are_fresh_payments() {
        let parse = |b: Bytes| serde_json::from_slice::<serde_json::Value>(&b).expect("json");
        let (first, second) = (parse(payment_body()), parse(payment_body()));
        assert_ne!(first["correlationId"], second["correlationId"]);
        assert_eq!(first["amount"].as_f64(), Some(19.90));
        let id = first["correlationId"].as_str().expect("a string");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}
