//! Workers: one pinned thread per core, each with its own monoio runtime, listener, queue,
//! processor connections and ledger shard. Cores share nothing but typed messages ([`CoreMsg`]
//! over the [`Mesh`]).

use std::{
    cell::{Cell, RefCell},
    io,
    rc::Rc,
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use monoio::{
    IoUringDriver, LegacyDriver, RuntimeBuilder,
    net::{ListenerOpts, TcpListener},
};

use crate::{
    config::{Config, IoDriver},
    connections::{self, Connections, Surface},
    dispatch::{self, InFlight, SlotWaiters},
    health::{self, PeerNews, ProcessorHealth, Report},
    ledger::{Processor, Shard, ShardSummary, TimeRange},
    metrics::{CoreMetrics, CoreSnapshot},
    peer::{self, Boot, Continuity},
    processor::{Endpoint, ProcessorClient},
    queue::{IDS_PER_GENERATION_MAX, Queue, SeenIds},
    server::{self, DateCache},
    timestamp,
};

/// Smallest horizon routing uses near the end of a test: the test's own end is only known to
/// within a second or so (the harness's teardown lags its last request).
pub const HORIZON_FLOOR_MS: u64 = 1_000;

/// A message from one core to another. Replies travel on the channel the message carries.
pub enum CoreMsg {
    /// "Send me your shard's totals over this range."
    Summary {
        /// Range of `requestedAt`.
        range: TimeRange,
        /// Where to answer.
        reply: flume::Sender<ShardSummary>,
    },
    /// "Empty your shard."
    Purge {
        /// Answered once done.
        reply: flume::Sender<()>,
    },
    /// "Here is what the health poll saw."
    Health(Report),
    /// "Send me a snapshot of your metrics."
    Metrics {
        /// Where to answer.
        reply: flume::Sender<CoreSnapshot>,
    },
    /// "Stop accepting, forward what you hold, answer when done or at `deadline`."
    Drain {
        /// When to give up on what is left.
        deadline: Instant,
        /// Payments still held (queued or in flight) when the core answered.
        reply: flume::Sender<usize>,
    },
}

/// Every core's mailbox, indexed by core id. The only thing the cores share.
pub type Mesh = Arc<[flume::Sender<CoreMsg>]>;

/// Everything one core owns. Built on its own thread and never sent anywhere: tasks of this
/// core hold it through `Rc`.
pub struct Core {
    /// Index of this core within the instance, 0-based.
    pub id: usize,
    /// The instance's configuration (lives as long as the process).
    pub config: &'static Config,
    /// Mailboxes of every core of this instance, this one included.
    pub mesh: Mesh,
    /// This instance's boot and what it knows of restarts since the last purge (shared by the
    /// instance's cores; only peer calls and purges touch it).
    pub continuity: Arc<Continuity>,
    /// This core's shard of settled payments.
    pub ledger: RefCell<Shard>,
    /// Accepted payments waiting for a forwarding slot.
    pub queue: RefCell<Queue>,
    /// Correlation ids accepted here since the last purge (a repeat is answered 409).
    pub seen: RefCell<SeenIds>,
    /// Forwarding tasks running (see `dispatch`); at most `DISPATCH_INFLIGHT_MAX`.
    pub inflight: Cell<usize>,
    /// Clients for the two processors, indexed by [`Processor::index`].
    processors: [ProcessorClient; 2],
    /// Attempts in flight at each processor; at most `PROCESSOR_INFLIGHT_MAX` each.
    inflight_at: [InFlight; 2],
    /// Forwarding tasks waiting for a free slot at a processor.
    pub slot_waiters: SlotWaiters,
    /// What this core believes about each processor, indexed by [`Processor::index`].
    health: [ProcessorHealth; 2],
    /// Core 0 only (where the peer link and the health poller live): when the peer last
    /// reported on each processor, to know when to take over a silent peer's polling.
    pub peer_news: Option<PeerNews>,
    /// When the current test began (the last purge), ms since the epoch.
    test_started_ms: Cell<Option<i64>>,
    /// Set when the core starts draining: `POST /payments` is refused (503) and every API
    /// connection closes after its next response, so what the core holds only shrinks.
    pub draining: Cell<bool>,
    /// Wakes the accept loop on drain.
    stop_accepting: (flume::Sender<()>, flume::Receiver<()>),
    /// Open client connections, for `CONNECTIONS_MAX` and the idle sweep.
    pub connections: Connections,
    /// Cached `Date` header value.
    pub date: DateCache,
    /// Counters and histograms, read by `GET /metrics`.
    pub metrics: CoreMetrics,
}

impl Core {
    /// Core `id`'s state, empty: no connection, no payment, nothing learned of the processors.
    /// Built on the core's own thread (`core_main`), or in a test.
    pub fn new(
        id: usize,
        config: &'static Config,
        mesh: Mesh,
        continuity: Arc<Continuity>,
        endpoints: [Endpoint; 2],
    ) -> Core {
        let [default, fallback] = endpoints;
        let client = |p, endpoint| ProcessorClient::new(p, endpoint, config.processor_inflight_max);
        Core {
            id,
            config,
            mesh,
            continuity,
            ledger: RefCell::new(Shard::default()),
            queue: RefCell::new(Queue::new(config.queue_len_max)),
            seen: RefCell::new(SeenIds::new(IDS_PER_GENERATION_MAX)),
            inflight: Cell::new(0),
            processors: [
                client(Processor::Default, default),
                client(Processor::Fallback, fallback),
            ],
            inflight_at: Processor::ALL.map(|_| InFlight::default()),
            slot_waiters: SlotWaiters::default(),
            health: Processor::ALL.map(|_| {
                ProcessorHealth::new(
                    config.breaker_failures_to_open,
                    Duration::from_millis(config.breaker_probe_interval_ms),
                )
            }),
            peer_news: (id == 0).then(|| PeerNews::new(Instant::now())),
            test_started_ms: Cell::new(None),
            draining: Cell::new(false),
            stop_accepting: flume::bounded(1),
            connections: Connections::new(
                config.connections_max,
                config.connection_idle_timeout_ms,
            ),
            date: DateCache::default(),
            metrics: CoreMetrics::default(),
        }
    }

    /// The client of one processor.
    pub fn processor(&self, processor: Processor) -> &ProcessorClient {
        &self.processors[processor.index()]
    }

    /// Attempts this core has in flight at one processor.
    pub fn inflight_at(&self, processor: Processor) -> &InFlight {
        &self.inflight_at[processor.index()]
    }

    /// This core's view of one processor's health.
    pub fn health(&self, processor: Processor) -> &ProcessorHealth {
        &self.health[processor.index()]
    }

    /// Applies a health report here and sends it to every other core of this instance.
    pub fn broadcast_health(&self, report: Report) {
        self.health(report.processor).apply(report, Instant::now());
        for (id, mailbox) in self.mesh.iter().enumerate() {
            if id != self.id {
                // A core that is gone has nobody to inform.
                let _ = mailbox.send(CoreMsg::Health(report));
            }
        }
    }

    /// Empties this core's shard. A purge is how a contest run begins (its setup purges
    /// before the load starts), so it also starts the clock of `TEST_DURATION_MS`.
    pub fn purge(&self) {
        self.ledger.borrow_mut().purge();
        self.seen.borrow_mut().clear();
        self.test_started_ms.set(Some(timestamp::now_ms()));
    }

    /// This core's counters and gauges, now.
    pub fn snapshot(&self) -> CoreSnapshot {
        let now = Instant::now();
        let mut snapshot = CoreSnapshot {
            core: self.id,
            queue_len: self.queue.borrow().len() as u64,
            forwarding: self.inflight.get() as u64,
            inflight_at: Processor::ALL.map(|p| self.inflight_at(p).len() as u64),
            overdue: Processor::ALL.map(|p| self.inflight_at(p).overdue_count()),
            processor_connects: Processor::ALL.map(|p| self.processor(p).connects.get()),
            breaker_open: Processor::ALL.map(|p| self.health(p).is_open()),
            delay_ms: Processor::ALL.map(|p| dispatch::planned_delay_ms(self, p, now)),
            route: Some(dispatch::peek_route(self, now, timestamp::now_ms())),
            ledger_entries: self.ledger.borrow().len() as u64,
            ids_remembered: self.seen.borrow().len() as u64,
            connections_open: self.connections.len() as u64,
            connections_accepted: self.connections.accepted(),
            connections_refused: self.connections.refused(),
            connections_expired: self.connections.expired(),
            ..CoreSnapshot::default()
        };
        self.metrics.fill(&mut snapshot);
        snapshot
    }

    /// Time left in the test for routing's lag risk: `TEST_DURATION_MS` after the last purge,
    /// within [`HORIZON_FLOOR_MS`, `LAG_HORIZON_MS`]; just `LAG_HORIZON_MS` when unknown.
    /// `now_ms` is the caller's wall-clock reading (the hot path reads the clock once).
    pub fn horizon_ms(&self, now_ms: i64) -> u64 {
        let config = self.config;
        match self.test_started_ms.get() {
            Some(started_ms) if config.test_duration_ms > 0 => {
                let end_ms = started_ms.saturating_add(config.test_duration_ms as i64);
                let left_ms = end_ms.saturating_sub(now_ms).max(0) as u64;
                left_ms.clamp(HORIZON_FLOOR_MS, config.lag_horizon_ms.max(HORIZON_FLOOR_MS))
            }
            _ => config.lag_horizon_ms,
        }
    }

    /// Payments this core holds: queued plus in flight.
    pub fn held(&self) -> usize {
        self.queue.borrow().len() + self.inflight.get()
    }
}

/// What every worker needs to build its core, prepared once on the main thread.
struct Plan {
    config: &'static Config,
    driver: IoDriver,
    endpoints: [Endpoint; 2],
    mesh: Mesh,
    continuity: Arc<Continuity>,
    cpus: Vec<core_affinity::CoreId>,
}

/// Starts one worker per core and returns once every one is listening (or the first error).
/// The returned handles run until the process exits.
pub fn start(config: &'static Config) -> io::Result<(Vec<thread::JoinHandle<()>>, Mesh)> {
    let driver = choose_driver(config)?;
    let endpoints = [
        resolve_patiently(&config.processor_default_url)?,
        resolve_patiently(&config.processor_fallback_url)?,
    ];
    let workers = config.workers();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| flume::unbounded()).unzip();
    let cpus = if config.worker_pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mesh: Mesh = senders.into();
    let continuity = Arc::new(Continuity::new(Boot::new(), config.processor_timeout_ms));
    let plan =
        Arc::new(Plan { config, driver, endpoints, mesh: Arc::clone(&mesh), continuity, cpus });
    eprintln!("payrelay: {config} io_driver_used={}", driver.name());

    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let mut handles = Vec::with_capacity(workers);
    for (id, mailbox) in receivers.into_iter().enumerate() {
        let plan = Arc::clone(&plan);
        let ready = ready_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("core-{id}"))
            .spawn(move || run_worker(id, &plan, mailbox, ready))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a worker exited before it was ready")),
        }
    }
    Ok((handles, mesh))
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Payments still queued or in flight at the deadline.
    pub held: usize,
    /// Cores that never answered (their payments are unaccounted for).
    pub silent_cores: usize,
}

/// Asks every core to stop accepting and forward what it holds (SIGTERM), and waits for
/// their answers.
pub fn drain_all(mesh: &Mesh, deadline: Instant) -> DrainReport {
    let (reply, replies) = flume::unbounded();
    for mailbox in mesh.iter() {
        // A core whose mailbox is closed is gone; it is counted as silent below.
        let _ = mailbox.send(CoreMsg::Drain { deadline, reply: reply.clone() });
    }
    drop(reply);
    // Each core answers by the deadline; one that is gone never does, hence the limit.
    let limit = deadline + Duration::from_secs(1);
    let mut report = DrainReport::default();
    for _ in 0..mesh.len() {
        match replies.recv_timeout(limit.saturating_duration_since(Instant::now())) {
            Ok(held) => report.held += held,
            Err(_) => report.silent_cores += 1,
        }
    }
    report
}

/// Raises the soft limit on open files to the hard one: every connection is a descriptor, and
/// a soft limit of 1024 (a common default outside compose's `ulimits`) would refuse clients
/// long before memory or CPU run out. Returns the limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads one rlimit struct through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// How long start-up waits for a processor's name to resolve. Under compose the processors'
/// containers may still be starting; a backend that exits instead would stay down.
const RESOLVE_WAIT_MAX: Duration = Duration::from_secs(120);

/// Resolves a processor URL, retrying once a second up to [`RESOLVE_WAIT_MAX`].
fn resolve_patiently(url: &str) -> io::Result<Endpoint> {
    let give_up_at = Instant::now() + RESOLVE_WAIT_MAX;
    loop {
        match Endpoint::resolve(url) {
            Ok(endpoint) => return Ok(endpoint),
            Err(e) if e.kind() != io::ErrorKind::InvalidInput && Instant::now() < give_up_at => {
                eprintln!("payrelay: resolving {url}: {e}; retrying");
                thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("resolving {url}: {e}"))),
        }
    }
}

/// Resolves `Auto` by building (and dropping) one io_uring ring: Docker's default seccomp
/// profile refuses `io_uring_setup`, and we would rather know at start than per core.
fn choose_driver(config: &Config) -> io::Result<IoDriver> {
    match config.io_driver {
        IoDriver::Epoll => Ok(IoDriver::Epoll),
        IoDriver::IoUring => {
            RuntimeBuilder::<IoUringDriver>::new().build()?;
            Ok(IoDriver::IoUring)
        }
        IoDriver::Auto => match RuntimeBuilder::<IoUringDriver>::new().build() {
            Ok(_) => Ok(IoDriver::IoUring),
            Err(e) => {
                eprintln!("payrelay: io_uring unavailable ({e}); falling back to epoll");
                Ok(IoDriver::Epoll)
            }
        },
    }
}

fn run_worker(
    id: usize,
    plan: &Plan,
    mailbox: flume::Receiver<CoreMsg>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let config = plan.config;
    if config.worker_pin {
        pin(id, plan);
    }
    let core_main = core_main(id, plan, mailbox, ready.clone());
    let built = match plan.driver {
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(core_main)),
        _ => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(config.io_uring_entries)
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(core_main)),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(io::Error::new(e.kind(), format!("core-{id}: runtime: {e}"))));
    }
}

fn pin(id: usize, plan: &Plan) {
    if plan.cpus.is_empty() {
        eprintln!("payrelay: core-{id}: CPU list unavailable; not pinned");
        return;
    }
    let cpu = plan.cpus[(plan.config.worker_cpu_first + id) % plan.cpus.len()];
    if !core_affinity::set_for_current(cpu) {
        eprintln!("payrelay: core-{id}: could not pin to CPU {}; not pinned", cpu.id);
    }
}

/// The body of one core: bind, say ready, then serve until the process ends.
async fn core_main(
    id: usize,
    plan: &Plan,
    mailbox: flume::Receiver<CoreMsg>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let config = plan.config;
    let mesh = Arc::clone(&plan.mesh);
    let continuity = Arc::clone(&plan.continuity);
    let core = Rc::new(Core::new(id, config, mesh, continuity, plan.endpoints.clone()));
    let bound = bind(id, config);
    let (api, peer) = match bound {
        Ok(listeners) => listeners,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    monoio::spawn(serve_mailbox(Rc::clone(&core), mailbox));
    monoio::spawn(connections::sweep_idle(Rc::clone(&core)));
    if let Some(peer) = peer {
        monoio::spawn(server::run(Rc::clone(&core), peer, Surface::Peer));
    }
    if id == 0 {
        monoio::spawn(poll_health(Rc::clone(&core), plan.endpoints.clone()));
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    let stop = core.stop_accepting.1.clone();
    monoio::select! {
        _ = server::run(Rc::clone(&core), api, Surface::Api) => {}
        _ = stop.recv_async() => {}
    }
    // The listener is closed: new connections go to the other cores of the SO_REUSEPORT
    // group. Connections already open keep being served until the process exits.
    std::future::pending::<()>().await;
}

/// Core 0's health poller: polls the processors this instance is responsible for (or whose
/// news stopped arriving from the peer) once per interval, and shares each report.
async fn poll_health(core: Rc<Core>, endpoints: [Endpoint; 2]) {
    let config = core.config;
    let continuity = &core.continuity;
    let interval = Duration::from_millis(config.health_poll_interval_ms);
    let takeover_after = interval * health::TAKEOVER_AFTER_POLLS;
    // `Core::new` gives core 0 its peer news, and only core 0 runs this task.
    let peer_news = core.peer_news.as_ref().expect("core 0 holds the peer's health news");
    loop {
        let has_peer = config.peer_addr.is_some();
        let ours = health::polled_here(has_peer, continuity.boot.id, continuity.peer_boot_id());
        for processor in Processor::ALL {
            let silent = peer_news.silent_for(processor, Instant::now()) >= takeover_after;
            if !ours[processor.index()] && !silent {
                continue;
            }
            let endpoint = &endpoints[processor.index()];
            let Some(report) = health::poll(processor, endpoint.addr, &endpoint.authority).await
            else {
                continue;
            };
            core.broadcast_health(report);
            if let Some(peer) = config.peer_addr {
                // A peer that is down learns nothing; it polls for itself once it is back.
                let sent = peer::send_health(peer, report, continuity.boot, config.peer_timeout());
                let _ = sent.await;
            }
        }
        monoio::time::sleep(interval).await;
    }
}

/// Binds the API listener (every core, `SO_REUSEPORT` so the kernel spreads connections over
/// all cores of both instances) and, on core 0 only, the private peer listener.
fn bind(id: usize, config: &Config) -> io::Result<(TcpListener, Option<TcpListener>)> {
    let api_opts =
        ListenerOpts::new().reuse_port(true).reuse_addr(true).backlog(config.listen_backlog);
    let api = TcpListener::bind_with_config(config.api_bind_addr, &api_opts).map_err(|e| {
        io::Error::new(e.kind(), format!("core-{id}: bind {}: {e}", config.api_bind_addr))
    })?;
    let peer = match config.peer_bind_addr {
        Some(addr) if id == 0 => {
            // Not shared: each instance owns its private port, and a stale process holding it
            // must make this one fail loudly rather than split the peer's calls.
            let opts = ListenerOpts::new().reuse_port(false).reuse_addr(true).backlog(64);
            let listener = TcpListener::bind_with_config(addr, &opts).map_err(|e| {
                io::Error::new(e.kind(), format!("core-{id}: bind peer {addr}: {e}"))
            })?;
            Some(listener)
        }
        _ => None,
    };
    Ok((api, peer))
}

/// Stops accepting and waits until the core holds no payment, or the deadline.
async fn drain(core: Rc<Core>, deadline: Instant, reply: flume::Sender<usize>) {
    /// How often a draining core looks at what it still holds.
    const DRAIN_POLL: Duration = Duration::from_millis(10);
    // Before anything else, so that no payment is accepted on this core from here on (open
    // keep-alive connections would otherwise keep feeding the queue past the deadline).
    core.draining.set(true);
    let _ = core.stop_accepting.0.try_send(());
    while core.held() > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    let _ = reply.send(core.held());
}

/// Answers other cores' messages for as long as the process lives.
async fn serve_mailbox(core: Rc<Core>, mailbox: flume::Receiver<CoreMsg>) {
    while let Ok(msg) = mailbox.recv_async().await {
        match msg {
            CoreMsg::Summary { range, reply } => {
                let _ = reply.send(core.ledger.borrow().summary(range));
            }
            CoreMsg::Purge { reply } => {
                core.purge();
                let _ = reply.send(());
            }
            CoreMsg::Health(report) => core.health(report.processor).apply(report, Instant::now()),
            CoreMsg::Metrics { reply } => {
                let _ = reply.send(core.snapshot());
            }
            CoreMsg::Drain { deadline, reply } => {
                monoio::spawn(drain(Rc::clone(&core), deadline, reply));
            }
        }
    }
}
