//! The two payment processors, in one process: the contest's limits, delay and failure knobs,
//! storage, health window and admin API, on real loopback sockets.
//!
//! Each processor handles `POST /payments` in the order the real one does: concurrency limit
//! (800 in progress, 500 queued, then 429), the configured delay, the failure switch (500 after
//! the delay, nothing stored), then the insert (200, or 422 for a known correlationId).
//! `GET /payments/{id}` goes through the same concurrency limit, sharing its slots and queue
//! with the payments, and then answers at once: neither the delay nor the failure switch.
//!
//! How the answers are framed on the wire (as Kestrel frames them, by default): [`crate::framing`].
//!
//! ## Layout
//!
//! This file holds the handle, [`Emulator`], and [`start`]; the parts below it, each importing
//! only the ones listed before it:
//!
//! - `config.rs`: [`Which`] processor, and how to start the emulator ([`EmulatorConfig`]).
//! - `health_window.rs`: the health endpoint's rate limiter, over synthetic instants.
//! - `processor.rs`: one processor's state: its admin knobs, its book of payments, its limits.
//! - `body.rs`: a request's JSON body, read with a size cap.
//! - `payments.rs`: the endpoints the backend calls, with the answers the real processor gives.
//! - `admin.rs`: the token-guarded `/admin/` endpoints.
//! - `server.rs`: the listeners, their connections, and the route from a request to its endpoint.

mod admin;
mod body;
mod config;
mod health_window;
mod payments;
mod processor;
mod server;

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    thread,
    time::Duration,
};

use tokio::sync::watch;

pub use config::{EmulatorConfig, HEALTH_WINDOW_MS_DEFAULT, Which};
use processor::Processor;
pub use processor::{IN_PROGRESS_MAX, ProcessorSummary, QUEUED_MAX, TOKEN_DEFAULT};
use server::{listen, serve};

/// How long dropping the emulator waits for its tasks to wind down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

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
        self.recorded_each().iter().sum()
    }

    /// Payments stored by each processor: `[default, fallback]`.
    pub fn recorded_each(&self) -> [u64; 2] {
        self.processors.each_ref().map(|p| p.state().payments.len() as u64)
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

    /// The most requests a processor's concurrency limiter has held at once (in progress or
    /// queued) since start: payments, and lookups by id, which share it. Above
    /// [`IN_PROGRESS_MAX`], some waited in its queue (a payment, before its delay began).
    pub fn admitted_max(&self, which: Which) -> usize {
        self.processors[which.index()].admitted_max.load(Ordering::Relaxed)
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

    /// Health calls waiting in a processor's limiter queue now.
    pub fn health_queued(&self, which: Which) -> usize {
        processor::processor_health(&self.processors[which.index()]).queued()
    }

    /// Calls its health endpoint has had since start, answered or refused.
    pub fn health_calls(&self, which: Which) -> usize {
        self.processors[which.index()].health_calls.load(Ordering::Relaxed)
    }

    /// Connections a processor is serving now: after [`Emulator::close_connections`], 0 once
    /// every one is closed on its side.
    pub fn open_connections(&self, which: Which) -> usize {
        self.processors[which.index()].open_connections.load(Ordering::Relaxed)
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
