//! Boot: the single top of the graph. Replays the journal, then starts one pinned thread per
//! core, each with its own monoio runtime (io_uring, or epoll where that is blocked), builds the
//! core's state on it (with its share of the replayed books), looks up the payments the killed
//! life left in flight, binds its listeners and spawns its flows: the accept loops, the idle sweep, the mailbox, the journal's flusher, on core 0
//! the health poller, and the payments the journal gave back. Also the process-wide steps: the
//! open-files limit and SIGTERM's drain.

use std::{
    io,
    rc::Rc,
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use monoio::{
    IoUringDriver, LegacyDriver, RuntimeBuilder,
    net::{ListenerOpts, TcpListener},
};

use crate::{
    accept,
    config::{Config, IoDriver},
    cores::{
        Core, CoreMsg, Mesh, Start,
        connections::{self, Surface},
    },
    forward::{dispatch, lookup, poller},
    http::Endpoint,
    journal::{self, Journal, Pending, Replayed},
    ledger::Entry,
    log,
    peer::{Boot, Continuity},
};

/// Where the cores listen.
#[derive(Debug)]
pub enum Listen {
    /// Each core binds `API_BIND_ADDR` with `SO_REUSEPORT`, and core 0 `PEER_BIND_ADDR`: the
    /// server's own way.
    Configured,
    /// Listeners the caller bound (an in-process test on ephemeral ports): every core accepts
    /// on a duplicate of `api`, core 0 on `peer`. The configured addresses are not bound.
    Given {
        /// The public API.
        api: std::net::TcpListener,
        /// The private peer link, if any.
        peer: Option<std::net::TcpListener>,
    },
}

/// What every worker needs to build its core, prepared once on the main thread.
struct Plan {
    config: &'static Config,
    driver: IoDriver,
    endpoints: [Endpoint; 2],
    mesh: Mesh,
    continuity: Arc<Continuity>,
    cpus: Vec<core_affinity::CoreId>,
    listen: Listen,
    recovery: Recovery,
}

/// What the journal's replay hands each core, and what every core's journal continues.
struct Recovery {
    generation: u64,
    epoch: u32,
    test_started_ms: Option<i64>,
    /// The replay found whole books (or there was no journal to replay from).
    kept_books: bool,
    /// The replay failed: every core's journal refuses payments until a purge starts a
    /// generation past the files it could not read.
    unreadable: Option<io::ErrorKind>,
    /// Per core: ledger entries and pending payments, taken once by that core.
    shares: Mutex<Vec<Share>>,
}

impl Recovery {
    /// No books to take over: no journal.
    fn nothing(shares: Vec<Share>) -> Recovery {
        Recovery {
            generation: 0,
            epoch: 0,
            test_started_ms: None,
            kept_books: false,
            unreadable: None,
            shares: Mutex::new(shares),
        }
    }
}

/// One core's part of the replayed journal.
#[derive(Default)]
struct Share {
    entries: Vec<Entry>,
    pending: Vec<Pending>,
}

/// Replays `JOURNAL_DIR` (when set) and deals its books out to `workers` cores. A folder that
/// cannot be read leaves the journal to refuse payments (each core's file will not open), and
/// the books are then not whole.
fn recover(config: &Config, workers: usize) -> Recovery {
    let mut shares: Vec<Share> = (0..workers).map(|_| Share::default()).collect();
    let Some(dir) = &config.journal_dir else {
        return Recovery::nothing(shares);
    };
    let replayed = match journal::replay::replay(dir) {
        Ok(replayed) => replayed,
        Err(e) => {
            // Whatever the files hold is not in these books: no payment is accepted until a
            // purge starts a generation past them (a purge at generation 1 would be older than
            // what is there, and the next replay would delete it with every 202 it holds).
            let generation = journal::replay::newest_generation(dir).unwrap_or(0);
            log::error!(
                "journal {}: {e}; payments will be refused until a purge starts \
                 generation {}",
                dir.display(),
                generation + 1
            );
            return Recovery {
                generation,
                unreadable: Some(e.kind()),
                ..Recovery::nothing(shares)
            };
        }
    };
    log_replay(dir, &replayed);
    let kept_books = replayed.whole();
    let Replayed { generation, epoch, entries, pending, test_started_ms, .. } = replayed;
    for (i, entry) in entries.into_iter().enumerate() {
        shares[i % workers].entries.push(entry);
    }
    for (i, work) in pending.into_iter().enumerate() {
        shares[i % workers].pending.push(work);
    }
    Recovery {
        generation,
        epoch,
        test_started_ms,
        kept_books,
        unreadable: None,
        shares: Mutex::new(shares),
    }
}

/// The start-up line of what the replay found.
fn log_replay(dir: &std::path::Path, replayed: &Replayed) {
    let found = &replayed.findings;
    let pinned = replayed.pending.iter().filter(|p| p.pin.is_some()).count();
    log::info!(
        "journal {}: generation {}, epoch {}: {} files, {} bytes, {} records: {} \
         settled, {} pending ({pinned} pinned to an attempt); {} torn bytes cut, {} damaged \
         records skipped, {} files of another format set aside, {} older files removed",
        dir.display(),
        replayed.generation,
        replayed.epoch,
        found.files,
        found.bytes,
        found.records,
        replayed.entries.len(),
        replayed.pending.len(),
        found.torn_bytes,
        found.damaged,
        found.set_aside.len(),
        found.removed,
    );
    for path in &found.not_removed {
        log::warn!("journal {}: an older generation that could not be removed", path.display());
    }
    if !replayed.whole() {
        log::warn!(
            "journal {}: the books are not whole; summaries over the time before \
             this start are refused, as after a restart without a journal",
            dir.display()
        );
    }
}

/// A started server: its cores' threads (they run until the process exits) and their mailboxes.
#[derive(Debug)]
pub struct Running {
    threads: Vec<thread::JoinHandle<()>>,
    mesh: Mesh,
}

impl Running {
    /// The number of cores serving.
    pub fn cores(&self) -> usize {
        self.threads.len()
    }

    /// SIGTERM's work: every core stops accepting and forwards what it holds, until `deadline`.
    pub fn drain(&self, deadline: Instant) -> DrainReport {
        drain_all(&self.mesh, deadline)
    }
}

/// Starts one worker per core on the configured addresses and returns once every one is
/// listening (or the first error).
pub fn start(config: &'static Config) -> io::Result<Running> {
    start_with(config, Listen::Configured)
}

/// [`start`], listening where `listen` says.
pub fn start_with(config: &'static Config, listen: Listen) -> io::Result<Running> {
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
    let recovery = recover(config, workers);
    let boot = Boot { kept_books: recovery.kept_books, ..Boot::new() };
    let continuity = Arc::new(Continuity::new(boot, config.processor_timeout_ms));
    let plan = Arc::new(Plan {
        config,
        driver,
        endpoints,
        mesh: Arc::clone(&mesh),
        continuity,
        cpus,
        listen,
        recovery,
    });
    log::info!("{config} io_driver_used={}", driver.name());

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
    Ok(Running { threads: handles, mesh })
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
fn drain_all(mesh: &Mesh, deadline: Instant) -> DrainReport {
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

/// Has glibc's allocator free small blocks at once (coalesced with their neighbours) instead
/// of keeping them in its fast bins. A block kept there beside the top of a core's heap stops
/// the heap from shrinking as a flood's connections close, and `malloc_trim` (the sweep's,
/// `cores::connections`) returns free pages inside a thread's heap but never shrinks it from
/// the top. Measured (1 core, 9,000 idle connections opened, then closed): RSS back to 3.9 MB
/// of a 3.5 MB base with it, 9.6–16.8 MB without. The small blocks of the hot path are served
/// by the per-thread cache, which this leaves alone: CPU per payment at 600/s unchanged
/// (123.4 against 124.7 µs, three alternated runs of 20 s each). Returns whether glibc took it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn free_small_blocks_at_once() -> bool {
    // SAFETY: mallopt only sets one of the allocator's parameters, under its lock; it is called
    // at start, before the worker threads exist.
    unsafe { libc::mallopt(libc::M_MXFAST, 0) == 1 }
}

/// Other allocators have no fast bins to turn off.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn free_small_blocks_at_once() -> bool {
    true
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
                log::warn!("resolving {url}: {e}; retrying");
                thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("resolving {url}: {e}"))),
        }
    }
}

/// Resolves `Auto` by building (and dropping) one io_uring ring: Docker's default seccomp
/// profile refuses `io_uring_setup`, and we would rather know at start than per core.
pub fn choose_driver(config: &Config) -> io::Result<IoDriver> {
    match config.io_driver {
        IoDriver::Epoll => Ok(IoDriver::Epoll),
        IoDriver::IoUring => {
            RuntimeBuilder::<IoUringDriver>::new().build()?;
            Ok(IoDriver::IoUring)
        }
        IoDriver::Auto => match RuntimeBuilder::<IoUringDriver>::new().build() {
            Ok(_) => Ok(IoDriver::IoUring),
            Err(e) => {
                log::warn!("io_uring unavailable ({e}); falling back to epoll");
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
    log::set_core(id);
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
        log::warn!("CPU list unavailable; not pinned");
        return;
    }
    let cpu = plan.cpus[(plan.config.worker_cpu_first + id) % plan.cpus.len()];
    if !core_affinity::set_for_current(cpu) {
        log::warn!("could not pin to CPU {}; not pinned", cpu.id);
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
    let share =
        plan.recovery.shares.lock().map(|mut s| std::mem::take(&mut s[id])).unwrap_or_default();
    let journal = match &config.journal_dir {
        Some(dir) => {
            let (generation, epoch) = (plan.recovery.generation, plan.recovery.epoch);
            let (bytes_max, fsync) = (config.journal_bytes_max, config.journal_fsync);
            let journal = Journal::open(dir, id, generation, epoch, bytes_max, fsync);
            if let Some(kind) = plan.recovery.unreadable {
                journal.refuse(kind);
            }
            journal
        }
        None => Journal::off(),
    };
    let test_started_ms = plan.recovery.test_started_ms;
    let start = Start { journal, entries: share.entries, test_started_ms };
    let endpoints = plan.endpoints.clone();
    let core = Rc::new(Core::new(id, config, mesh, continuity, endpoints, start));
    let flusher = Rc::clone(core.journal());
    monoio::spawn(async move { flusher.run().await });
    monoio::spawn(dispatch::sweep_deadlines(Rc::clone(&core)));
    // Before listening: the peer may ask for this core's books as soon as it listens.
    let pending = lookup::settle_stored(&core, share.pending).await;
    let bound = match &plan.listen {
        Listen::Configured => bind_patiently(id, config).await,
        Listen::Given { api, peer } => adopt(id, api, peer.as_ref()),
    };
    let (api, peer) = match bound {
        Ok(listeners) => listeners,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    monoio::spawn(serve_mailbox(Rc::clone(&core), mailbox));
    monoio::spawn(connections::sweep_idle(Rc::clone(core.connections())));
    if let Some(peer) = peer {
        monoio::spawn(accept::run(Rc::clone(&core), peer, Surface::Peer));
    }
    if id == 0 {
        monoio::spawn(poller::poll_health(Rc::clone(&core), plan.endpoints.clone()));
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    dispatch::resume(&core, pending);
    monoio::select! {
        _ = accept::run(Rc::clone(&core), api, Surface::Api) => {}
        _ = core.until_draining() => {}
    }
    // The listener is closed: new connections go to the other cores of the SO_REUSEPORT
    // group. Connections already open keep being served until the process exits.
    std::future::pending::<()>().await;
}

/// How long a core retries a bind that finds its address in use. A process killed with SIGKILL
/// keeps the sockets its io_uring instance holds until the kernel tears the ring down, after
/// the process is gone (milliseconds; 300 ms seen): a supervisor that starts the instance
/// again at once would otherwise see it exit. Far longer than that, and short enough that an
/// address really taken by another process is reported while someone is still looking.
const BIND_PATIENCE: Duration = Duration::from_secs(5);

/// Pause between two tries of a bind.
const BIND_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// [`bind`], tried again while its address is in use, for up to [`BIND_PATIENCE`], with a log
/// line when it first fails and one when it succeeds after that; any other error, or an
/// address still in use after that time, ends the start.
async fn bind_patiently(
    id: usize,
    config: &Config,
) -> io::Result<(TcpListener, Option<TcpListener>)> {
    let give_up_at = Instant::now() + BIND_PATIENCE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match bind(id, config) {
            Ok(listeners) => {
                if tries > 1 {
                    log::info!("bound after {tries} tries");
                }
                return Ok(listeners);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < give_up_at => {
                if tries == 1 {
                    log::warn!(
                        "{e}; retrying for up to {} ms (a killed process's sockets \
                         outlive it a little)",
                        BIND_PATIENCE.as_millis()
                    );
                }
                monoio::time::sleep(BIND_RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
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

/// Core `id`'s duplicates of listeners the caller bound (the peer's on core 0 only).
fn adopt(
    id: usize,
    api: &std::net::TcpListener,
    peer: Option<&std::net::TcpListener>,
) -> io::Result<(TcpListener, Option<TcpListener>)> {
    let own = |listener: &std::net::TcpListener| {
        let listener = listener.try_clone()?;
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener)
    };
    let api = own(api)?;
    let peer = match peer {
        Some(peer) if id == 0 => Some(own(peer)?),
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
    core.start_draining();
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
                let _ = reply.send(core.shard_summary(range));
            }
            CoreMsg::Purge { reply } => {
                core.purge();
                let _ = reply.send(());
            }
            CoreMsg::Health(report) => core.apply_health(report),
            CoreMsg::Metrics { reply } => {
                let _ = reply.send(core.snapshot());
            }
            CoreMsg::Drain { deadline, reply } => {
                monoio::spawn(drain(Rc::clone(&core), deadline, reply));
            }
        }
    }
}
