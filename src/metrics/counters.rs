//! Counters: what one core counts about itself in `Cell`s it owns, and the plain snapshot of
//! them (with the gauges the core reads from its parts) that a scrape collects.

use std::cell::Cell;

use crate::{
    http::Status,
    ledger::Processor,
    upstream::{
        outcome::{Lookup, Outcome},
        route::Route,
    },
};

/// Upper bounds of the attempt-latency histogram buckets, in microseconds (plus `+Inf`). From a
/// processor at 0 ms on loopback (~0.2 ms) to the longest contest delay (5 s) and the longest
/// attempt deadline (`PROCESSOR_TIMEOUT_MS`, 15 s by default).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_000_000, 5_000_000, 10_000_000, 15_000_000,
];

/// Buckets of the attempt-latency histogram, including `+Inf`.
pub const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Upper bounds of the histogram of our own answers (from a request's head parsed to its
/// response written), in microseconds (plus `+Inf`): from the fastest answer on loopback
/// (~50 µs) past the contest's p99 bonus (1 ms) to a stall of 100 ms (a throttled core, a
/// journal flush).
pub const REQUEST_BOUNDS_US: [u64; 11] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];

/// Buckets of the request-duration histogram, including `+Inf`.
pub const REQUEST_BUCKETS: usize = REQUEST_BOUNDS_US.len() + 1;

/// Which route a request's answer is counted under in the request-duration histogram: the two
/// the contest measures, and the rest together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRoute {
    /// `POST /payments` (and any other method on that path).
    Payments,
    /// `GET /payments-summary`.
    PaymentsSummary,
    /// Everything else: purge, metrics, health, the peer link, unknown paths.
    Other,
}

impl HttpRoute {
    /// Every route, in index order.
    pub const ALL: [HttpRoute; 3] =
        [HttpRoute::Payments, HttpRoute::PaymentsSummary, HttpRoute::Other];

    /// The route of a request for `path` on the public API (`api`) or the peer link.
    pub fn of(api: bool, path: &[u8]) -> HttpRoute {
        match path {
            b"/payments" if api => HttpRoute::Payments,
            b"/payments-summary" if api => HttpRoute::PaymentsSummary,
            _ => HttpRoute::Other,
        }
    }

    /// Its position in [`HttpRoute::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            HttpRoute::Payments => "/payments",
            HttpRoute::PaymentsSummary => "/payments-summary",
            HttpRoute::Other => "other",
        }
    }
}

/// What became of one `POST /payments`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Answered 202 and queued.
    Accepted,
    /// 400: the body is not a JSON object.
    Malformed,
    /// 422: JSON with a missing or invalid field.
    Invalid,
    /// 409: this core already accepted that correlationId.
    Duplicate,
    /// 503: the core's queue is full.
    QueueFull,
    /// 503: the instance is shutting down.
    Draining,
    /// 503: the journal is full or cannot be written.
    Unjournaled,
}

impl Intake {
    /// Every intake result, in index order.
    pub const ALL: [Intake; 7] = [
        Intake::Accepted,
        Intake::Malformed,
        Intake::Invalid,
        Intake::Duplicate,
        Intake::QueueFull,
        Intake::Draining,
        Intake::Unjournaled,
    ];

    /// Its position in [`Intake::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Intake::Accepted => "accepted",
            Intake::Malformed => "malformed",
            Intake::Invalid => "invalid",
            Intake::Duplicate => "duplicate",
            Intake::QueueFull => "queue_full",
            Intake::Draining => "draining",
            Intake::Unjournaled => "unjournaled",
        }
    }
}

/// A latency histogram one core owns, of `B` buckets: one per bound given to
/// [`Histogram::observe`], and `+Inf`.
#[derive(Debug)]
pub struct Histogram<const B: usize> {
    /// Observations per bucket (not cumulative; [`HistogramSnapshot`] accumulates).
    buckets: [Cell<u64>; B],
    /// Sum of observations, µs.
    sum_us: Cell<u64>,
}

impl<const B: usize> Default for Histogram<B> {
    fn default() -> Self {
        Histogram { buckets: std::array::from_fn(|_| Cell::new(0)), sum_us: Cell::new(0) }
    }
}

impl<const B: usize> Histogram<B> {
    /// Counts `n` observations of `us` against `bounds` (its `B - 1` upper bounds, ascending).
    pub fn observe(&self, bounds: &[u64], us: u64, n: u64) {
        debug_assert_eq!(bounds.len() + 1, B, "a histogram's bounds and buckets");
        // At most 16 comparisons, against a line of cache: cheaper than any search.
        let i = bounds.iter().position(|&bound| us <= bound).unwrap_or(B - 1);
        let bucket = &self.buckets[i];
        bucket.set(bucket.get() + n);
        self.sum_us.set(self.sum_us.get().saturating_add(us.saturating_mul(n)));
    }

    fn snapshot(&self) -> HistogramSnapshot<B> {
        HistogramSnapshot {
            buckets: self.buckets.each_ref().map(Cell::get),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's values, copied out of its core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot<const B: usize = BUCKETS> {
    /// Observations per bucket (not cumulative).
    pub buckets: [u64; B],
    /// Sum of observations, µs.
    pub sum_us: u64,
}

impl<const B: usize> Default for HistogramSnapshot<B> {
    fn default() -> Self {
        HistogramSnapshot { buckets: [0; B], sum_us: 0 }
    }
}

impl<const B: usize> HistogramSnapshot<B> {
    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &HistogramSnapshot<B>) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// Counters one core keeps about itself. Owned by the core, written only by its tasks.
#[derive(Debug, Default)]
pub struct CoreMetrics {
    /// Forwarding attempts per processor and outcome (indexed by [`Outcome::index`]).
    attempts: [[Cell<u64>; Outcome::ALL.len()]; 2],
    /// Lookups per processor and result (indexed by [`Lookup::index`]).
    lookups: [[Cell<u64>; Lookup::ALL.len()]; 2],
    /// Payments recorded as stored per processor, by an attempt's answer or a lookup
    /// (monotonic: a purge does not reset).
    settled: [Cell<u64>; 2],
    /// Their amount, cents.
    settled_cents: [Cell<u64>; 2],
    /// Latency of attempts that got an answer, per processor.
    latency: [Histogram<BUCKETS>; 2],
    /// Our own answers' durations, from the head parsed to the response written, per
    /// [`HttpRoute`].
    requests: [Histogram<REQUEST_BUCKETS>; HttpRoute::ALL.len()],
    /// `POST /payments` results, indexed by [`Intake::index`].
    intake: [Cell<u64>; Intake::ALL.len()],
    /// Responses sent, indexed by [`Status::index`].
    responses: [Cell<u64>; Status::ALL.len()],
}

impl CoreMetrics {
    /// Counts one forwarding attempt; `answered_us` is its latency when the processor answered.
    pub fn attempt(&self, processor: Processor, outcome: Outcome, answered_us: Option<u64>) {
        let p = processor.index();
        bump(&self.attempts[p][outcome.index()]);
        if let Some(us) = answered_us {
            self.latency[p].observe(&LATENCY_BOUNDS_US, us, 1);
        }
    }

    /// Counts one lookup of a payment at `processor`.
    pub fn lookup(&self, processor: Processor, lookup: Lookup) {
        bump(&self.lookups[processor.index()][lookup.index()]);
    }

    /// Counts a payment of `cents` recorded as stored at `processor`.
    pub fn settled(&self, processor: Processor, cents: u64) {
        let p = processor.index();
        bump(&self.settled[p]);
        self.settled_cents[p].set(self.settled_cents[p].get().saturating_add(cents));
    }

    /// Counts what became of one `POST /payments`.
    pub fn intake(&self, intake: Intake) {
        bump(&self.intake[intake.index()]);
    }

    /// Counts one response.
    pub fn response(&self, status: Status) {
        bump(&self.responses[status.index()]);
    }

    /// Counts `n` requests on `route` answered in one write, `us` after the first of them was
    /// parsed.
    pub fn served(&self, route: HttpRoute, us: u64, n: u64) {
        self.requests[route.index()].observe(&REQUEST_BOUNDS_US, us, n);
    }
}

/// The state of one core at one instant: plain data, sent across cores by message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Core id within the instance.
    pub core: usize,
    /// Attempts per processor and outcome ([`Outcome::ALL`] order).
    pub attempts: [[u64; Outcome::ALL.len()]; 2],
    /// Lookups per processor and result ([`Lookup::ALL`] order).
    pub lookups: [[u64; Lookup::ALL.len()]; 2],
    /// Payments recorded as stored, per processor.
    pub settled: [u64; 2],
    /// Stored amounts per processor, cents.
    pub settled_cents: [u64; 2],
    /// Attempt latency per processor.
    pub latency: [HistogramSnapshot; 2],
    /// Request durations per [`HttpRoute`].
    pub requests: [HistogramSnapshot<REQUEST_BUCKETS>; HttpRoute::ALL.len()],
    /// `POST /payments` results ([`Intake::ALL`] order).
    pub intake: [u64; Intake::ALL.len()],
    /// Responses per status ([`Status::ALL`] order).
    pub responses: [u64; Status::ALL.len()],
    /// Open connections.
    pub connections_open: u64,
    /// `CONNECTIONS_MAX` in force (derived from the memory limit when set to 0).
    pub connections_max: u64,
    /// Connections accepted since start (those refused at `CONNECTIONS_MAX` included).
    pub connections_accepted: u64,
    /// Connections closed at accept because `CONNECTIONS_MAX` were open.
    pub connections_refused: u64,
    /// Connections closed for idleness (`CONNECTION_IDLE_TIMEOUT_MS`).
    pub connections_expired: u64,
    /// Payments waiting for a forwarding slot.
    pub queue_len: u64,
    /// Forwarding tasks running (each holds one payment).
    pub forwarding: u64,
    /// Of those, the tasks holding their payment for the cheaper processor.
    pub holding: u64,
    /// Requests in flight per processor.
    pub inflight_at: [u64; 2],
    /// Connections opened to each processor since start.
    pub processor_connects: [u64; 2],
    /// Whether this core's breaker is open, per processor.
    pub breaker_open: [bool; 2],
    /// The delay this core plans with, per processor, ms.
    pub delay_ms: [u64; 2],
    /// Times each processor turned overdue (an attempt late past its planned delay).
    pub overdue: [u64; 2],
    /// Where this core would send a payment now.
    pub route: Option<Route>,
    /// Payments in this core's ledger shard (since the last purge).
    pub ledger_entries: u64,
    /// Correlation ids remembered to refuse duplicates.
    pub ids_remembered: u64,
    /// Bytes in this core's journal file (and pending for it).
    pub journal_bytes: u64,
    /// Writes this core's journal issued since start.
    pub journal_writes: u64,
    /// Whether this core's journal failed to write (it refuses payments until a purge).
    pub journal_failed: bool,
}

impl CoreMetrics {
    /// Copies the counters into `snapshot` (the caller fills the gauges it owns).
    pub fn fill(&self, snapshot: &mut CoreSnapshot) {
        snapshot.attempts = self.attempts.each_ref().map(|row| row.each_ref().map(Cell::get));
        snapshot.lookups = self.lookups.each_ref().map(|row| row.each_ref().map(Cell::get));
        snapshot.settled = self.settled.each_ref().map(Cell::get);
        snapshot.settled_cents = self.settled_cents.each_ref().map(Cell::get);
        snapshot.latency = self.latency.each_ref().map(Histogram::snapshot);
        snapshot.requests = self.requests.each_ref().map(Histogram::snapshot);
        snapshot.intake = self.intake.each_ref().map(Cell::get);
        snapshot.responses = self.responses.each_ref().map(Cell::get);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: observations land in the first bucket whose bound is at least the value, and
    /// the snapshot copies every counter.
    #[test]
    fn histogram_buckets() {
        let metrics = CoreMetrics::default();
        for us in [100, 250, 251, 20_000_000] {
            metrics.attempt(Processor::Default, Outcome::Stored, Some(us));
            metrics.settled(Processor::Default, 1990);
        }
        metrics.lookup(Processor::Fallback, Lookup::Absent);
        metrics.served(HttpRoute::Payments, 50, 2);
        metrics.served(HttpRoute::Payments, 51, 1);
        metrics.served(HttpRoute::Other, 100_001, 1);
        let mut snapshot = CoreSnapshot::default();
        metrics.fill(&mut snapshot);
        let h = snapshot.latency[0];
        assert_eq!((h.buckets[0], h.buckets[1], h.buckets[BUCKETS - 1]), (2, 1, 1));
        assert_eq!(h.count(), 4);
        assert_eq!(snapshot.attempts[0][Outcome::Stored.index()], 4);
        assert_eq!(snapshot.settled_cents, [7960, 0]);
        assert_eq!(snapshot.settled, [4, 0]);
        assert_eq!(snapshot.lookups[1][Lookup::Absent.index()], 1);
        let payments = snapshot.requests[HttpRoute::Payments.index()];
        assert_eq!((payments.buckets[0], payments.buckets[1], payments.sum_us), (2, 1, 151));
        assert_eq!(snapshot.requests[HttpRoute::Other.index()].buckets[REQUEST_BUCKETS - 1], 1);
    }
}
