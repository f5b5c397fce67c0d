//! Cores: the state one core owns ([`Core`]: its parts, each behind methods that say what they
//! do) and the mesh of mailboxes that is all the cores share ([`mesh`]).
//!
//! A core is built on its own thread and never sent anywhere: its tasks hold it through `Rc`.
//! The parts it holds know nothing of it: those that exist only because a core does are here
//! ([`connections`], [`queue`], [`slots`]); the rest are the stages' own state (`upstream`,
//! `ledger`, `metrics`, `peer::Continuity`). The flows (`accept`, `forward`, `summary`) and
//! `boot` take `&Core`.

pub mod connections;
pub mod mesh;
pub mod pace;
pub mod queue;
pub mod slots;

use std::{cell::RefCell, rc::Rc, sync::Arc, time::Instant};

pub use self::mesh::{CoreGone, CoreMsg, Mesh};
use self::{
    connections::Connections,
    queue::{Forwarding, IDS_PER_GENERATION_MAX, SeenIds},
};
use crate::{
    config::Config,
    http::{Endpoint, date::DateCache},
    journal::Journal,
    ledger::{Entry, Processor, Shard, ShardSummary, TimeRange},
    log,
    metrics::{CoreMetrics, CoreSnapshot},
    peer::Continuity,
    timestamp,
    upstream::{
        Upstream,
        health::{PeerNews, Report},
        route::{self, HOLD_QUEUE_SHARE, Load, Route, TestClock},
    },
};

/// What a core starts from: its journal, and what it takes over from the journal's replay.
#[derive(Debug)]
pub struct Start {
    /// Its journal (off, or its file opened to append).
    pub journal: Journal,
    /// Its share of the replayed ledger.
    pub entries: Vec<Entry>,
    /// When the test began (the last purge), if the journal knows.
    pub test_started_ms: Option<i64>,
}

impl Start {
    /// Nothing to take over, no journal.
    pub fn fresh() -> Start {
        Start { journal: Journal::off(), entries: Vec::new(), test_started_ms: None }
    }
}

/// Everything one core owns.
pub struct Core {
    /// Index of this core within the instance, 0-based.
    id: usize,
    /// The instance's configuration (lives as long as the process).
    config: &'static Config,
    /// Mailboxes of every core of this instance, this one included.
    mesh: Mesh,
    /// This instance's boot and what it knows of restarts since the last purge (shared by the
    /// instance's cores; only peer calls and purges touch it).
    continuity: Arc<Continuity>,
    /// This core's shard of settled payments.
    ledger: RefCell<Shard>,
    /// Correlation ids accepted here since the last purge (a repeat is answered 409).
    seen: RefCell<SeenIds>,
    /// Payments queued, forwarding tasks, tasks waiting for a slot.
    forwarding: Forwarding,
    /// The two processors, by [`Processor::index`].
    upstreams: [Upstream; 2],
    /// Core 0 only (where the peer link and the health poller live): when the peer last
    /// reported on each processor, to know when to take over a silent peer's polling.
    peer_news: Option<PeerNews>,
    /// When the current test began, for routing's horizon.
    test_clock: TestClock,
    /// Set when the core starts draining: `POST /payments` is refused (503) and every API
    /// connection closes after its next response, so what the core holds only shrinks.
    draining: std::cell::Cell<bool>,
    /// Wakes the accept loop on drain.
    stop_accepting: (flume::Sender<()>, flume::Receiver<()>),
    /// Open client connections, for `CONNECTIONS_MAX` and the idle sweep (shared with each
    /// connection's registration).
    connections: Rc<Connections>,
    /// Cached `Date` header value.
    date: DateCache,
    /// Counters and histograms, read by `GET /metrics`.
    metrics: CoreMetrics,
    /// What happened to this core's payments, on disk (shared with the core's flusher task).
    journal: Rc<Journal>,
    /// The most payments a second this core can land at a processor: its forward pace
    /// (`FORWARDS_PER_S_MAX`), and its share of what a processor stores a second
    /// (`PROCESSOR_ABSORB_PER_S` over every core of the deployment), for routing's release
    /// deadline.
    sends_per_s_max: u64,
}

impl Core {
    /// Core `id`'s state: no connection, no payment in flight, nothing learned of the
    /// processors; its journal, ledger and test clock as `start` has them. Built on the core's
    /// own thread (`boot`), or in a test.
    pub fn new(
        id: usize,
        config: &'static Config,
        mesh: Mesh,
        continuity: Arc<Continuity>,
        endpoints: [Endpoint; 2],
        start: Start,
    ) -> Core {
        let [default, fallback] = endpoints;
        let mut ledger = Shard::default();
        for entry in start.entries {
            ledger.record(entry);
        }
        let test_clock = TestClock::default();
        if let Some(started_ms) = start.test_started_ms {
            test_clock.start(started_ms);
        }
        let instances = if config.peer_addr.is_some() { 2 } else { 1 };
        let deployment_cores = (mesh.len() * instances).max(1) as u64;
        Core {
            id,
            config,
            mesh,
            continuity,
            ledger: RefCell::new(ledger),
            seen: RefCell::new(SeenIds::new(IDS_PER_GENERATION_MAX)),
            forwarding: Forwarding::new(
                config.queue_len_max,
                config.dispatch_inflight_max,
                config.forwards_per_s_max,
            ),
            upstreams: [
                Upstream::new(Processor::Default, default, config),
                Upstream::new(Processor::Fallback, fallback, config),
            ],
            peer_news: (id == 0).then(|| PeerNews::new(Instant::now())),
            test_clock,
            draining: std::cell::Cell::new(false),
            stop_accepting: flume::bounded(1),
            connections: Rc::new(Connections::new(
                config.connections_max,
                config.connection_idle_timeout_ms,
            )),
            date: DateCache::default(),
            metrics: CoreMetrics::default(),
            journal: Rc::new(start.journal),
            sends_per_s_max: (config.processor_absorb_per_s / deployment_cores)
                .clamp(1, config.forwards_per_s_max),
        }
    }

    /// This core's journal.
    pub fn journal(&self) -> &Rc<Journal> {
        &self.journal
    }

    /// This core's index within the instance.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The instance's configuration.
    pub fn config(&self) -> &'static Config {
        self.config
    }

    /// The instance's boot and what it knows of restarts.
    pub fn continuity(&self) -> &Continuity {
        &self.continuity
    }

    /// This core's part of one processor.
    pub fn upstream(&self, processor: Processor) -> &Upstream {
        &self.upstreams[processor.index()]
    }

    /// This core's forwarding work.
    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// This core's open connections.
    pub fn connections(&self) -> &Rc<Connections> {
        &self.connections
    }

    /// The cached `Date` header value.
    pub fn date(&self) -> &DateCache {
        &self.date
    }

    /// This core's counters.
    pub fn metrics(&self) -> &CoreMetrics {
        &self.metrics
    }

    /// When the peer last reported on each processor (core 0 only).
    pub fn peer_news(&self) -> Option<&PeerNews> {
        self.peer_news.as_ref()
    }

    /// Whether `id` was accepted on this core since the last purge (a repeat is refused).
    pub fn accepted_before(&self, id: u128) -> bool {
        self.seen.borrow().contains(id)
    }

    /// Remembers that `id` was accepted here.
    pub fn remember_accepted(&self, id: u128) {
        self.seen.borrow_mut().insert(id);
    }

    /// Forgets `id`: its payment was refused after all, and may be sent again.
    pub fn forget_accepted(&self, id: u128) {
        self.seen.borrow_mut().remove(id);
    }

    /// Records a settled payment in this core's shard, once.
    pub fn record(&self, entry: Entry) {
        self.ledger.borrow_mut().record(entry);
    }

    /// This core's shard's totals over `range`.
    pub fn shard_summary(&self, range: TimeRange) -> ShardSummary {
        self.ledger.borrow().summary(range)
    }

    /// Where a payment held for the cheaper processor for `held_ms` so far would go now, each
    /// upstream judged usable by `usable` (see `route::decide`). `now_ms` is the caller's
    /// wall-clock reading.
    pub fn decide(
        &self,
        now: Instant,
        now_ms: i64,
        held_ms: u64,
        usable: impl Fn(&Upstream) -> bool,
    ) -> Route {
        let forwarding = &self.forwarding;
        let load = Load {
            waiting: forwarding.waiting_for_slot(),
            backlog: forwarding.held(),
            arrivals_per_s: forwarding.arrivals_per_s(now),
            held_ms,
            // A draining core holds nothing back: it has until `DRAIN_DEADLINE_MS` to forward
            // what it holds, and whatever is left then is lost.
            room_to_hold: !self.is_draining()
                && forwarding.queue_len() < self.config.queue_len_max / HOLD_QUEUE_SHARE,
            end: self.test_clock.end(now_ms, self.config),
        };
        route::decide(&self.upstreams, self.config, load, self.sends_per_s_max, now, usable)
    }

    /// How long after `now_ms` a payment sent now to `processor`, with `delay_ms` of planned
    /// delay, gets its `requestedAt` (`route::lead_ms`; `forward::dispatch`, *Delay jumps*): no
    /// less than `REQUESTED_AT_LEAD_MIN_MS` while the end is known, nor than
    /// `OVERDUE_PLAN_DELAY_MS` while this core has no news of the processor's delay (routing
    /// plans with 0 then: news comes with the first answer, and a guess that high would send
    /// the backlog elsewhere for nothing), all of it as far as the end allows; and never further
    /// ahead than an attempt may last, a bound a restarted instance relies on (`peer`'s
    /// *Continuity*).
    pub fn requested_at_lead_ms(&self, processor: Processor, delay_ms: u64, now_ms: i64) -> u64 {
        let config = self.config;
        let end = self.test_clock.end(now_ms, config);
        let mut floor_ms = match end {
            route::End::Known { .. } => config.requested_at_lead_min_ms,
            route::End::Unknown { .. } => 0,
        };
        if self.upstream(processor).health().delay_ms().is_none() {
            floor_ms = floor_ms.max(config.overdue_plan_delay_ms);
        }
        route::lead_ms(delay_ms, end, floor_ms).min(config.processor_timeout_ms)
    }

    /// What [`Core::decide`] would say for a new payment now, without taking a probe.
    fn peek_route(&self, now: Instant, now_ms: i64) -> Route {
        self.decide(now, now_ms, 0, |upstream| upstream.health().would_allow(now))
    }

    /// Applies a health report here.
    pub fn apply_health(&self, report: Report) {
        self.upstream(report.processor).health().apply(report, Instant::now());
    }

    /// Applies a health report here and sends it to every other core of this instance.
    pub fn broadcast_health(&self, report: Report) {
        self.apply_health(report);
        for (id, mailbox) in self.mesh.iter().enumerate() {
            if id != self.id {
                // A core that is gone has nobody to inform.
                let _ = mailbox.send(CoreMsg::Health(report));
            }
        }
    }

    /// Empties this core's shard. A purge is how a contest run begins (its setup purges
    /// before the load starts), so it also starts the test's clock.
    pub fn purge(&self) {
        self.ledger.borrow_mut().purge();
        self.seen.borrow_mut().clear();
        let now_ms = timestamp::now_ms();
        self.test_clock.start(now_ms);
        let generation = self.journal.generation() + 1;
        if let Err(e) = self.journal.start_generation(generation, now_ms) {
            log::error!("journal generation {generation}: {e}");
        }
    }

    /// Payments this core holds: queued plus being forwarded.
    pub fn held(&self) -> usize {
        self.forwarding.held()
    }

    /// Whether the core is draining (no payment accepted, connections closed after a response).
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts draining: from now on no payment is accepted here, and the accept loop stops.
    pub fn start_draining(&self) {
        self.draining.set(true);
        let _ = self.stop_accepting.0.try_send(());
    }

    /// Resolves once the core starts draining.
    pub async fn until_draining(&self) {
        let _ = self.stop_accepting.1.recv_async().await;
    }

    /// The map step of a map-reduce over this instance's cores (summary, purge, metrics): sends
    /// `ask(reply)` to every other core and hands each answer to `each` as it arrives. `local`
    /// runs in between, so this core does its own share while the others work on theirs.
    pub async fn fan_out<T>(
        &self,
        ask: impl Fn(flume::Sender<T>) -> CoreMsg,
        local: impl FnOnce(),
        mut each: impl FnMut(T),
    ) -> Result<(), CoreGone> {
        let others = self.mesh.len() - 1;
        let (reply, replies) = flume::bounded(others.max(1));
        for (_, mailbox) in self.mesh.iter().enumerate().filter(|(id, _)| *id != self.id) {
            mailbox.send(ask(reply.clone())).map_err(|_| CoreGone)?;
        }
        drop(reply);
        local();
        for _ in 0..others {
            each(replies.recv_async().await.map_err(|_| CoreGone)?);
        }
        Ok(())
    }

    /// The number of cores of this instance.
    pub fn cores(&self) -> usize {
        self.mesh.len()
    }

    /// This core's counters and gauges, now.
    pub fn snapshot(&self) -> CoreSnapshot {
        let now = Instant::now();
        let upstream = |p: Processor| self.upstream(p);
        let mut snapshot = CoreSnapshot {
            core: self.id,
            queue_len: self.forwarding.queue_len() as u64,
            forwarding: self.forwarding.tasks() as u64,
            holding: self.forwarding.holding() as u64,
            inflight_at: Processor::ALL.map(|p| upstream(p).inflight().len() as u64),
            overdue: Processor::ALL.map(|p| upstream(p).inflight().overdue_count()),
            processor_connects: Processor::ALL.map(|p| upstream(p).client().connects()),
            breaker_open: Processor::ALL.map(|p| upstream(p).health().is_open()),
            delay_ms: Processor::ALL.map(|p| upstream(p).planned_delay_ms(now, self.config)),
            route: Some(self.peek_route(now, timestamp::now_ms())),
            ledger_entries: self.ledger.borrow().len() as u64,
            ids_remembered: self.seen.borrow().len() as u64,
            journal_bytes: self.journal.bytes(),
            journal_writes: self.journal.writes(),
            journal_failed: self.journal.failed(),
            connections_open: self.connections.len() as u64,
            connections_max: self.connections.len_max() as u64,
            connections_accepted: self.connections.accepted(),
            connections_refused: self.connections.refused(),
            connections_expired: self.connections.expired(),
            ..CoreSnapshot::default()
        };
        self.metrics.fill(&mut snapshot);
        snapshot
    }
}
