//! The two payment processors, in one process: the contest's limits, delay and failure knobs,
//! storage, health window and admin API, on real loopback sockets.
//!
//! Each processor handles `POST /payments` in the order the real one does: concurrency limit
//! (800 in progress, 500 queued, then 429), the configured delay, the failure switch (500 after
//! the delay, nothing stored), then the insert (200, or 422 for a known correlationId).

//!
//! How the answers are framed on the wire (as Kestrel frames them, by default): [`crate::framing`].

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{
    Method, Request, StatusCode, body::Incoming, header::RETRY_AFTER, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Semaphore, watch},
};

use crate::{
    framing::{Answer, Framing},
    money, time,
};

/// Payments processed at once per processor, as the contest's concurrency limiter allows.
pub const IN_PROGRESS_MAX: usize = 800;
/// Payments waiting for a slot per processor; beyond this the processor answers 429.
pub const QUEUED_MAX: usize = 500;
/// Health calls that may wait for later windows; beyond this, 429.
const HEALTH_QUEUED_MAX: u64 = 2;
/// The contest's health window.
pub const HEALTH_WINDOW_MS_DEFAULT: u64 = 5000;
/// The admin token a processor starts with.
pub const TOKEN_DEFAULT: &str = "123";
/// Largest request body we read; a payment is ~120 bytes, so this only stops abuse.
const BODY_BYTES_MAX: usize = 64 * 1024;
/// Listen backlog: the backend may open hundreds of connections at once; the default 128 would
/// make some of them wait a SYN retransmit (1 s), which the real processor would not cause.
const LISTEN_BACKLOG: u32 = 4096;
/// Largest delay the admin API accepts (the rules use up to 5000 ms).
const DELAY_MS_MAX: u64 = 600_000;
/// Worker threads for the emulator's runtime: the work is timers and tiny JSON bodies.
const WORKER_THREADS_DEFAULT: usize = 2;
/// Pause after a failed accept (typically out of descriptors) so the loop does not spin while
/// connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(5);
/// How long dropping the emulator waits for its tasks to wind down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// Which of the two processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The cheap one.
    Default,
    /// The expensive one.
    Fallback,
}

impl Which {
    fn index(self) -> usize {
        match self {
            Which::Default => 0,
            Which::Fallback => 1,
        }
    }
}

impl std::str::FromStr for Which {
    type Err = String;

    fn from_str(text: &str) -> Result<Which, String> {
        match text {
            "default" => Ok(Which::Default),
            "fallback" => Ok(Which::Fallback),
            other => Err(format!("processor {other:?}: expected default or fallback")),
        }
    }
}

/// How to start the emulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmulatorConfig {
    /// Port for the default processor on 127.0.0.1; 0 picks a free one.
    pub default_port: u16,
    /// Port for the fallback processor on 127.0.0.1; 0 picks a free one.
    pub fallback_port: u16,
    /// Default processor fee rate (reported as `feePerTransaction`).
    pub fee_default: f64,
    /// Fallback processor fee rate.
    pub fee_fallback: f64,
    /// Length of the health endpoint's fixed window (5000 ms in the contest; tests shorten it).
    pub health_window_ms: u64,
    /// Threads of the emulator's own runtime.
    pub worker_threads: usize,
    /// How answers are framed on the wire (Kestrel's way by default).
    pub framing: Framing,
    /// The address both listen on: loopback, or every interface inside a container.
    pub bind: std::net::Ipv4Addr,
    /// Serve only this one (a container per processor, as the contest runs them).
    pub only: Option<Which>,
}

impl EmulatorConfig {
    /// The contest's processors on the given ports with the given fees.
    pub fn new(default_port: u16, fallback_port: u16, fee_default: f64, fee_fallback: f64) -> Self {
        EmulatorConfig {
            default_port,
            fallback_port,
            fee_default,
            fee_fallback,
            health_window_ms: HEALTH_WINDOW_MS_DEFAULT,
            worker_threads: WORKER_THREADS_DEFAULT,
            framing: Framing::Kestrel,
            bind: std::net::Ipv4Addr::LOCALHOST,
            only: None,
        }
    }
}

/// A payment as a processor stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Payment {
    amount_cents: i64,
    requested_at_ms: i64,
    /// When it was inserted, ms since the epoch (for [`Emulator::late_landings`]).
    stored_at_ms: i64,
}

/// A processor's admin summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessorSummary {
    /// Payments in the window.
    pub total_requests: u64,
    /// Their amount, in cents.
    pub total_cents: i64,
    /// The processor's fee rate.
    pub fee: f64,
}

/// Mutable state of one processor, behind one lock: the admin knobs and the payment table.
#[derive(Debug)]
struct State {
    delay_ms: u64,
    failing: bool,
    token: String,
    payments: HashMap<u128, Payment>,
}

/// The health endpoint's rate limiter, as ASP.NET Core's `FixedWindowRateLimiter` with
/// `PermitLimit = 1`, `QueueLimit = 2`, `OldestFirst`: one call per window for every caller
/// together; up to [`HEALTH_QUEUED_MAX`] calls wait, in order, for the permits of the next
/// windows; beyond that, `429`. A waiting call whose client gives up leaves the queue (the
/// middleware waits with the request's abort token), so it holds no later window.
#[derive(Debug)]
struct HealthWindow {
    origin: Instant,
    window: Duration,
    /// The window whose permit was last taken.
    taken: Option<u64>,
    /// Waiting calls, oldest first.
    queue: VecDeque<u64>,
    next_id: u64,
}

/// What a call to the health endpoint gets from [`HealthWindow::arrive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HealthTurn {
    /// This window's permit.
    Now,
    /// A place in the queue.
    Queued(u64),
    /// `429`.
    Refused,
}

impl HealthWindow {
    fn new(window: Duration) -> HealthWindow {
        HealthWindow {
            origin: Instant::now(),
            window,
            taken: None,
            queue: VecDeque::new(),
            next_id: 0,
        }
    }

    fn index(&self, at: Instant) -> u64 {
        let window_ns = self.window.as_nanos().max(1);
        (at.saturating_duration_since(self.origin).as_nanos() / window_ns) as u64
    }

    /// The start of the window after the one `at` is in.
    fn next_window(&self, at: Instant) -> Instant {
        let next = u128::from(self.index(at) + 1) * self.window.as_nanos();
        self.origin + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
    }

    /// A call arrives.
    fn arrive(&mut self, now: Instant) -> HealthTurn {
        let current = self.index(now);
        if self.queue.is_empty() && self.taken != Some(current) {
            self.taken = Some(current);
            return HealthTurn::Now;
        }
        if self.queue.len() as u64 >= HEALTH_QUEUED_MAX {
            return HealthTurn::Refused;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(id);
        HealthTurn::Queued(id)
    }

    /// Whether waiting call `id` gets a permit now: it is the oldest, and this window's permit
    /// is free.
    fn take_turn(&mut self, id: u64, now: Instant) -> bool {
        let current = self.index(now);
        if self.queue.front() == Some(&id) && self.taken != Some(current) {
            self.queue.pop_front();
            self.taken = Some(current);
            return true;
        }
        false
    }

    /// Waiting call `id` gave up.
    fn leave(&mut self, id: u64) {
        self.queue.retain(|&waiting| waiting != id);
    }
}

/// A queued health call; leaves the queue if dropped (the client went away) before its turn.
struct HealthWaiter<'a> {
    processor: &'a Processor,
    id: Option<u64>,
}

impl Drop for HealthWaiter<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            processor_health(self.processor).leave(id);
        }
    }
}

fn processor_health(processor: &Processor) -> MutexGuard<'_, HealthWindow> {
    // As for `state`: every update is one assignment or one queue operation.
    processor.health.lock().unwrap_or_else(|p| p.into_inner())
}

/// One emulated processor, shared by its connection tasks and the [`Emulator`] handle.
#[derive(Debug)]
struct Processor {
    fee: f64,
    framing: Framing,
    state: Mutex<State>,
    health: Mutex<HealthWindow>,
    /// Payments admitted (in progress or queued); the 429 gate.
    admitted: AtomicUsize,
    /// Slots for payments in progress.
    in_progress: Semaphore,
    /// Calls to the health endpoint, answered or refused.
    health_calls: AtomicUsize,
    /// Bumped to make every open connection close (see [`Emulator::close_connections`]).
    kick: watch::Sender<u64>,
}

impl Processor {
    fn new(fee: f64, framing: Framing, health_window: Duration) -> Processor {
        Processor {
            fee,
            framing,
            state: Mutex::new(State {
                delay_ms: 0,
                failing: false,
                token: TOKEN_DEFAULT.to_owned(),
                payments: HashMap::new(),
            }),
            health: Mutex::new(HealthWindow::new(health_window)),
            admitted: AtomicUsize::new(0),
            in_progress: Semaphore::new(IN_PROGRESS_MAX),
            health_calls: AtomicUsize::new(0),
            kick: watch::channel(0).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the table half-written (every update is
        // one insert or one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn summary(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> ProcessorSummary {
        let state = self.state();
        let from = from_ms.unwrap_or(i64::MIN);
        let to = to_ms.unwrap_or(i64::MAX);
        let mut summary = ProcessorSummary { total_requests: 0, total_cents: 0, fee: self.fee };
        for payment in state.payments.values() {
            // Inclusive on both ends, like SQL BETWEEN.
            if (from..=to).contains(&payment.requested_at_ms) {
                summary.total_requests += 1;
                summary.total_cents += payment.amount_cents;
            }
        }
        summary
    }
}

/// Releases an admission when the request finishes or its connection goes away.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running emulator. Dropping it stops both processors and closes their sockets.
#[derive(Debug)]
pub struct Emulator {
    addrs: [SocketAddr; 2],
    processors: [Arc<Processor>; 2],
    shutdown: watch::Sender<bool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Cheap cloneable view of both processors' stored counts, for progress lines.
#[derive(Debug, Clone)]
pub struct RecordedProbe {
    processors: [Arc<Processor>; 2],
}

impl RecordedProbe {
    /// Payments stored by both processors together.
    pub fn recorded(&self) -> u64 {
        self.processors.iter().map(|p| p.state().payments.len() as u64).sum()
    }
}

/// Starts both processors (or the one of `config.only`) on `config.bind`. Returns once they
/// listen: the addresses are the readiness signal.
pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .thread_name("rinha-lab-processors")
        .enable_io()
        .enable_time()
        .build()?;
    let window = Duration::from_millis(config.health_window_ms.max(1));
    let processors = [
        Arc::new(Processor::new(config.fee_default, config.framing, window)),
        Arc::new(Processor::new(config.fee_fallback, config.framing, window)),
    ];
    let ports = [config.default_port, config.fallback_port];
    let mut listeners = Vec::new();
    let mut addrs = [SocketAddr::from((config.bind, 0)); 2];
    for which in [Which::Default, Which::Fallback] {
        if config.only.is_some_and(|only| only != which) {
            continue;
        }
        let _entered = runtime.enter();
        let listener = listen(config.bind, ports[which.index()])?;
        addrs[which.index()] = listener.local_addr()?;
        listeners.push((listener, processors[which.index()].clone()));
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let thread = thread::Builder::new().name("rinha-lab-processors".into()).spawn(move || {
        runtime.block_on(async move {
            let served: Vec<_> = listeners
                .into_iter()
                .map(|(listener, processor)| {
                    tokio::spawn(serve(listener, processor, shutdown_rx.clone()))
                })
                .collect();
            for task in served {
                let _ = task.await;
            }
        });
        runtime.shutdown_timeout(SHUTDOWN_WAIT);
    })?;
    Ok(Emulator { addrs, processors, shutdown, thread: Some(thread) })
}

fn listen(ip: std::net::Ipv4Addr, port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, port)))?;
    socket.listen(LISTEN_BACKLOG)
}

impl Emulator {
    /// Where a processor listens (port 0 for one that `only` left out).
    pub fn addr(&self, which: Which) -> SocketAddr {
        self.addrs[which.index()]
    }

    /// Sets a processor's delay directly (the admin API does the same over HTTP).
    pub fn set_delay(&self, which: Which, delay_ms: u64) {
        self.processors[which.index()].state().delay_ms = delay_ms;
    }

    /// Sets a processor's failure switch directly.
    pub fn set_failing(&self, which: Which, failing: bool) {
        self.processors[which.index()].state().failing = failing;
    }

    /// A processor's current delay (ms) and failure switch.
    pub fn knobs(&self, which: Which) -> (u64, bool) {
        let state = self.processors[which.index()].state();
        (state.delay_ms, state.failing)
    }

    /// A processor's summary over `requested_at` in `[from_ms, to_ms]` (inclusive; `None` is
    /// unbounded), as its admin endpoint would answer.
    pub fn summary(
        &self,
        which: Which,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> ProcessorSummary {
        self.processors[which.index()].summary(from_ms, to_ms)
    }

    /// Whether a processor stores a payment with this correlationId (what its
    /// `GET /payments/{id}` answers with 200); `false` for one that is not a uuid.
    pub fn holds(&self, which: Which, correlation_id: &str) -> bool {
        let Ok(id) = uuid::Uuid::parse_str(correlation_id) else {
            return false;
        };
        self.processors[which.index()].state().payments.contains_key(&id.as_u128())
    }

    /// Payments stored at least `lateness_ms` after their `requestedAt`, and the largest such
    /// lateness (ms; 0 when none): each of them was in this processor's book, with a
    /// `requestedAt` already inside the consistency checker's window, the moment it was stored,
    /// so a check evaluated then could see it here and not yet in the backend's book.
    pub fn late_landings(&self, lateness_ms: i64) -> (u64, i64) {
        let mut late = (0, 0);
        for processor in &self.processors {
            for payment in processor.state().payments.values() {
                let lateness = payment.stored_at_ms - payment.requested_at_ms;
                if lateness >= lateness_ms {
                    late = (late.0 + 1, late.1.max(lateness));
                }
            }
        }
        late
    }

    /// Calls its health endpoint has had since start, answered or refused.
    pub fn health_calls(&self, which: Which) -> usize {
        self.processors[which.index()].health_calls.load(Ordering::Relaxed)
    }

    /// Closes every connection open to a processor now, as a restart or an idle timeout on the
    /// processor's side would: a client's pooled keep-alive connections are dead from here on
    /// (the next write or read on them finds it). New connections are served as usual.
    pub fn close_connections(&self, which: Which) {
        self.processors[which.index()].kick.send_modify(|n| *n += 1);
    }

    /// A probe of the stored counts that outlives borrows of the emulator.
    pub fn recorded_probe(&self) -> RecordedProbe {
        RecordedProbe { processors: self.processors.clone() }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    processor: Arc<Processor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or a reset before accept: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let processor = processor.clone();
        let mut connection_shutdown = shutdown.clone();
        let mut kicked = processor.kick.subscribe();
        tokio::spawn(async move {
            let title_case = processor.framing.title_case_headers();
            let service = service_fn(move |request| handle(processor.clone(), request));
            let connection = http1::Builder::new()
                .title_case_headers(title_case)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = connection_shutdown.changed() => {}
                _ = kicked.changed() => {}
            }
        });
    }
}

/// The rate limiter's rejection text (`OnRejected` in the processor's source writes another,
/// ruder one of the same length class).
const TOO_MANY_REQUESTS_TEXT: &str = "Too many requests. Please try again later.";

/// The `429` of either rate limiter, with `Retry-After` as the processor sets it.
fn too_many_requests(framing: Framing) -> Answer {
    framing.text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_TEXT, &[(RETRY_AFTER, "5")])
}

/// What the real processor writes after the database refused a known correlationId: its
/// `warning`, the exception's whole text, over a kilobyte, so `System.Text.Json` writes it in
/// two chunks (see `framing`).
fn duplicate(framing: Framing, correlation_id: uuid::Uuid) -> Answer {
    let warning = format!(
        "Payment could not be processed. CorrelationId already exists: {correlation_id}. Error \
         details: {POSTGRES_DUPLICATE_KEY}"
    );
    let rest = format!("{}}}", Value::String(warning));
    framing.json_chunks(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec![Bytes::from_static(b"{\"message\":"), Bytes::from(rest)],
    )
}

/// The shape of Npgsql's `PostgresException.ToString()` for a unique violation, as the real
/// processor embeds it in its 422 (abridged stack: the length is what matters here).
const POSTGRES_DUPLICATE_KEY: &str = "Npgsql.PostgresException (0x80004005): 23505: duplicate \
key value violates unique constraint \"payments_pkey\"\n\nDETAIL: Detail redacted as it may \
contain sensitive data. Specify 'Include Error Detail' in the connection string to include \
this information.\n   at Npgsql.Internal.NpgsqlConnector.ReadMessageLong(Boolean async, \
DataRowLoadingMode dataRowLoadingMode, Boolean readingNotifications, Boolean isReadingPrependedMessage)\n   \
at System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder`1.StateMachineBox`1.\
System.Threading.Tasks.Sources.IValueTaskSource<TResult>.GetResult(Int16 token)\n   at \
Npgsql.NpgsqlDataReader.NextResult(Boolean async, Boolean isConsuming, CancellationToken \
cancellationToken)\n   at Npgsql.NpgsqlDataReader.NextResult(Boolean async, Boolean \
isConsuming, CancellationToken cancellationToken)\n   at \
Npgsql.NpgsqlCommand.ExecuteReader(Boolean async, CommandBehavior behavior, CancellationToken \
cancellationToken)\n   at Npgsql.NpgsqlCommand.ExecuteReader(Boolean async, CommandBehavior \
behavior, CancellationToken cancellationToken)\n   at \
Npgsql.NpgsqlCommand.ExecuteNonQuery(Boolean async, CancellationToken cancellationToken)\n   \
at Program.<>c.<<<Main>$>b__0_3>d.MoveNext() in /app/Endpoints.cs:line 74\n  Exception data:\n    \
Severity: ERROR\n    SqlState: 23505\n    MessageText: duplicate key value violates unique \
constraint \"payments_pkey\"\n    Detail: Detail redacted as it may contain sensitive data. \
Specify 'Include Error Detail' in the connection string to include this information.\n    \
SchemaName: public\n    TableName: payments\n    ConstraintName: payments_pkey\n    File: \
nbtinsert.c\n    Line: 666\n    Routine: _bt_check_unique";

async fn handle(
    processor: Arc<Processor>,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (&Method::POST, "/payments") => post_payment(&processor, request).await,
        (&Method::GET, "/payments/service-health") => health(&processor).await,
        (&Method::GET, p) if p.starts_with("/payments/") => {
            get_payment(&processor, &p["/payments/".len()..])
        }
        (_, p) if p.starts_with("/admin/") => admin(&processor, request).await,
        _ => processor.framing.empty(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

async fn read_json(request: Request<Incoming>) -> Option<Value> {
    let body = Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

fn amount_cents(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    match number.as_i64() {
        Some(whole) => whole.checked_mul(100),
        None => money::cents_from_f64(number.as_f64()?),
    }
}

async fn post_payment(processor: &Processor, request: Request<Incoming>) -> Answer {
    // 1. Concurrency limit: in progress plus queued, then 429.
    if processor.admitted.fetch_add(1, Ordering::AcqRel) >= IN_PROGRESS_MAX + QUEUED_MAX {
        processor.admitted.fetch_sub(1, Ordering::AcqRel);
        return too_many_requests(processor.framing);
    }
    let _admission = Admission(&processor.admitted);
    let Ok(_slot) = processor.in_progress.acquire().await else {
        return processor.framing.empty(StatusCode::SERVICE_UNAVAILABLE);
    };
    let Some(body) = read_json(request).await else {
        return processor.framing.bad_request("invalid JSON body");
    };
    let correlation_id = body
        .get("correlationId")
        .and_then(Value::as_str)
        .and_then(|text| uuid::Uuid::parse_str(text).ok());
    let amount = body.get("amount").and_then(amount_cents);
    let requested_at = body.get("requestedAt").and_then(Value::as_str).and_then(time::parse_iso_ms);
    let (Some(correlation_id), Some(amount_cents), Some(requested_at_ms)) =
        (correlation_id, amount, requested_at)
    else {
        return processor.framing.bad_request(
            "correlationId (uuid), amount (number) and requestedAt (ISO timestamp) are required",
        );
    };
    // 2. The delay, read when the payment starts being processed.
    let delay_ms = processor.state().delay_ms;
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    // 3-4. The failure switch as it is after the delay, then the insert, under one lock.
    let mut state = processor.state();
    if state.failing {
        return processor.framing.empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if state.payments.contains_key(&correlation_id.as_u128()) {
        return duplicate(processor.framing, correlation_id);
    }
    let stored_at_ms = time::now_ms();
    let payment = Payment { amount_cents, requested_at_ms, stored_at_ms };
    state.payments.insert(correlation_id.as_u128(), payment);
    processor.framing.json(StatusCode::OK, &json!({"message": "payment processed successfully"}))
}

async fn health(processor: &Processor) -> Answer {
    processor.health_calls.fetch_add(1, Ordering::Relaxed);
    let turn = processor_health(processor).arrive(Instant::now());
    match turn {
        HealthTurn::Now => {}
        HealthTurn::Refused => return too_many_requests(processor.framing),
        HealthTurn::Queued(id) => {
            let mut waiter = HealthWaiter { processor, id: Some(id) };
            loop {
                let next = processor_health(processor).next_window(Instant::now());
                tokio::time::sleep_until(next.into()).await;
                if processor_health(processor).take_turn(id, Instant::now()) {
                    waiter.id = None;
                    break;
                }
            }
        }
    }
    let state = processor.state();
    processor
        .framing
        .json(StatusCode::OK, &json!({"failing": state.failing, "minResponseTime": state.delay_ms}))
}

fn get_payment(processor: &Processor, id: &str) -> Answer {
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return processor.framing.empty(StatusCode::NOT_FOUND);
    };
    let state = processor.state();
    match state.payments.get(&id.as_u128()) {
        Some(payment) => processor.framing.json(
            StatusCode::OK,
            &json!({
                "correlationId": id.to_string(),
                "amount": money::cents_to_f64(payment.amount_cents),
                "requestedAt": time::format_iso_ms(payment.requested_at_ms),
            }),
        ),
        None => processor.framing.empty(StatusCode::NOT_FOUND),
    }
}

/// Reads `from` and `to` from a query string: absent means unbounded; present but unreadable
/// is `Err`.
fn window_bounds(query: Option<&str>) -> Result<(Option<i64>, Option<i64>), ()> {
    let (mut from, mut to) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        if value.is_empty() {
            continue;
        }
        *slot = Some(time::parse_iso_ms(&percent_decode(value)).ok_or(())?);
    }
    Ok((from, to))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn admin(processor: &Processor, request: Request<Incoming>) -> Answer {
    let authorised = {
        let state = processor.state();
        request.headers().get("x-rinha-token").and_then(|v| v.to_str().ok())
            == Some(state.token.as_str())
    };
    if !authorised {
        return processor.framing.empty(StatusCode::UNAUTHORIZED);
    }
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/admin/payments-summary") => {
            let Ok((from, to)) = window_bounds(request.uri().query()) else {
                return processor.framing.bad_request("from/to must be ISO timestamps");
            };
            let summary = processor.summary(from, to);
            let total_amount = money::cents_to_f64(summary.total_cents);
            processor.framing.json(
                StatusCode::OK,
                &json!({
                    "totalRequests": summary.total_requests,
                    "totalAmount": total_amount,
                    "totalFee": total_amount * summary.fee,
                    "feePerTransaction": summary.fee,
                }),
            )
        }
        (Method::PUT, "/admin/configurations/token") => {
            let token =
                read_json(request).await.and_then(|b| b.get("token")?.as_str().map(str::to_owned));
            match token {
                Some(token) if !token.is_empty() => {
                    processor.state().token = token;
                    processor.framing.empty(StatusCode::NO_CONTENT)
                }
                _ => processor.framing.bad_request("body must be {\"token\": \"...\"}"),
            }
        }
        (Method::PUT, "/admin/configurations/delay") => {
            let delay = read_json(request).await.and_then(|b| b.get("delay")?.as_u64());
            match delay {
                Some(delay) if delay <= DELAY_MS_MAX => {
                    let was = std::mem::replace(&mut processor.state().delay_ms, delay);
                    processor
                        .framing
                        .json(StatusCode::OK, &json!({"config": "delay", "was": was, "is": delay}))
                }
                _ => processor.framing.bad_request("body must be {\"delay\": <ms>}"),
            }
        }
        (Method::PUT, "/admin/configurations/failure") => {
            let failure = read_json(request).await.and_then(|b| b.get("failure")?.as_bool());
            match failure {
                Some(failure) => {
                    let was = std::mem::replace(&mut processor.state().failing, failure);
                    processor.framing.json(
                        StatusCode::OK,
                        &json!({"config": "failure", "was": was, "is": failure}),
                    )
                }
                None => processor.framing.bad_request("body must be {\"failure\": <bool>}"),
            }
        }
        (Method::POST, "/admin/purge-payments") => {
            processor.state().payments.clear();
            processor.framing.json(StatusCode::OK, &json!({"message": "All payments purged."}))
        }
        _ => processor.framing.empty(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the health limiter lets one call through per window, queues two for the next
    /// windows in order, refuses the rest, and a queued call that leaves frees its place and its
    /// window for the one behind it. Method: drive the limiter with synthetic instants.
    #[test]
    fn health_window_queues_two_and_forgets_who_leaves() {
        let window = Duration::from_secs(5);
        let mut health = HealthWindow::new(window);
        let origin = health.origin;
        assert_eq!(health.arrive(origin), HealthTurn::Now);
        assert_eq!(health.arrive(origin), HealthTurn::Queued(0));
        assert_eq!(health.arrive(origin), HealthTurn::Queued(1));
        assert_eq!(health.arrive(origin), HealthTurn::Refused);
        assert!(!health.take_turn(0, origin), "this window's permit is gone");
        let second = origin + window;
        assert!(!health.take_turn(1, second), "not the oldest");
        assert!(health.take_turn(0, second));
        assert!(!health.take_turn(1, second), "one permit per window");
        health.leave(1);
        assert_eq!(health.arrive(second), HealthTurn::Queued(2), "the leaver's place is free");
        assert!(health.take_turn(2, origin + 2 * window), "and its window");
        let idle = origin + 10 * window;
        assert_eq!(health.arrive(idle), HealthTurn::Now);
        assert_eq!(health.next_window(idle), origin + 11 * window);
    }

    /// Goal: `from`/`to` parse as the contest sends them, URL-encoded or not, and garbage is
    /// rejected. Method: literal query strings.
    #[test]
    fn window_bounds_parse() {
        let ms = time::parse_iso_ms("2025-07-15T12:34:56.000Z");
        assert_eq!(window_bounds(Some("from=2025-07-15T12:34:56.000Z")), Ok((ms, None)));
        assert_eq!(window_bounds(Some("to=2025-07-15T12%3A34%3A56.000Z&x=1")), Ok((None, ms)));
        assert_eq!(window_bounds(None), Ok((None, None)));
        assert_eq!(window_bounds(Some("from=yesterday")), Err(()));
    }
}
