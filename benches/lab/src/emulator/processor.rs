//! One processor's state, shared by its connection tasks and the emulator's handle: the admin
//! knobs and the book of payments behind one lock, the health window behind another, and the
//! counters of the concurrency limit.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, atomic::AtomicUsize},
    time::Duration,
};

use tokio::sync::{Semaphore, watch};

use super::health_window::HealthWindow;
use crate::framing::Framing;

/// Requests (payments and lookups by id) handled at once per processor, as the contest's
/// concurrency limiter allows (`PermitLimit = 800`).
pub const IN_PROGRESS_MAX: usize = 800;
/// Requests waiting for a slot per processor (`QueueLimit = 500`); beyond this the processor
/// answers 429.
pub const QUEUED_MAX: usize = 500;

/// The admin token a processor starts with.
pub const TOKEN_DEFAULT: &str = "123";

/// A payment as a processor stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Payment {
    pub(super) amount_cents: i64,
    pub(super) requested_at_ms: i64,
    /// When it was inserted, ms since the epoch (for [`Emulator::late_landings`]).
    ///
    /// [`Emulator::late_landings`]: super::Emulator::late_landings
    pub(super) stored_at_ms: i64,
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
pub(super) struct State {
    pub(super) delay_ms: u64,
    pub(super) failing: bool,
    pub(super) token: String,
    pub(super) payments: HashMap<u128, Payment>,
}

/// One emulated processor, shared by its connection tasks and the [`Emulator`] handle.
///
/// [`Emulator`]: super::Emulator
#[derive(Debug)]
pub(super) struct Processor {
    fee: f64,
    pub(super) framing: Framing,
    state: Mutex<State>,
    health: Mutex<HealthWindow>,
    /// Payments and lookups by id admitted (in progress or queued); the 429 gate. The two
    /// share it as they share the real processor's one concurrency limiter.
    pub(super) admitted: AtomicUsize,
    /// The most requests admitted at once since start, lookups included (the limiter counts
    /// them, and a lookup holding a slot is one a payment waits for): more than
    /// `IN_PROGRESS_MAX` means some waited in the queue, and a payment among them began its
    /// delay, and landed, that much later.
    pub(super) admitted_max: AtomicUsize,
    /// Slots for requests in progress: a payment holds one through its delay, a lookup for
    /// the moment it reads the book.
    pub(super) in_progress: Semaphore,
    /// Calls to the health endpoint, answered or refused.
    pub(super) health_calls: AtomicUsize,
    /// Connections being served now.
    pub(super) open_connections: AtomicUsize,
    /// Bumped to make every open connection close (see [`Emulator::close_connections`]).
    ///
    /// [`Emulator::close_connections`]: super::Emulator::close_connections
    pub(super) kick: watch::Sender<u64>,
}

impl Processor {
    pub(super) fn new(fee: f64, framing: Framing, health_window: Duration) -> Processor {
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
            admitted_max: AtomicUsize::new(0),
            in_progress: Semaphore::new(IN_PROGRESS_MAX),
            health_calls: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            kick: watch::channel(0).0,
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the table half-written (every update is
        // one insert or one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn summary(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> ProcessorSummary {
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

pub(super) fn processor_health(processor: &Processor) -> MutexGuard<'_, HealthWindow> {
    // As for `state`: every update is one assignment or one queue operation.
    processor.health.lock().unwrap_or_else(|p| p.into_inner())
}
