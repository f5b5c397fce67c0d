//! What a core has in flight at one processor: each attempt's expected answer, to tell when
//! the processor has become slower than planned (`forward::dispatch`'s *Delay jumps*).

use std::{
    cell::{Cell, RefCell},
    time::{Duration, Instant},
};

use slab::Slab;

/// How often [`InFlight::overdue`] scans the attempts in flight at most: a payment arrives
/// every couple of milliseconds at the contest's peak, and a scan of up to
/// `PROCESSOR_INFLIGHT_MAX` entries per payment would be waste; this adds at most 10 ms to the
/// detection of a delay jump.
pub const OVERDUE_RECHECK: Duration = Duration::from_millis(10);

/// One core's attempts in flight at one processor: how many (against `PROCESSOR_INFLIGHT_MAX`),
/// and when each one's answer is expected, to tell when the processor has become slower than
/// planned (see *Delay jumps*).
#[derive(Debug, Default)]
pub struct InFlight {
    /// The instant each attempt's answer is expected: its start plus the delay it was planned
    /// with. Bounded by `PROCESSOR_INFLIGHT_MAX`, except for pinned retries, which are few.
    expected: RefCell<Slab<Instant>>,
    /// Whether an attempt was overdue at the last scan.
    overdue: Cell<bool>,
    /// When the last scan was made.
    scanned_at: Cell<Option<Instant>>,
    /// Times the processor turned overdue (`payrelay_overdue_total`).
    overdue_count: Cell<u64>,
}

/// An attempt's registration in [`InFlight`]; handed back when it ends.
#[derive(Debug)]
#[must_use = "an attempt that is never ended stays in flight forever"]
pub struct Ticket(usize);

impl InFlight {
    /// Attempts in flight.
    pub fn len(&self) -> usize {
        self.expected.borrow().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An attempt is decided on: its slot is taken from here (before anything it awaits on its
    /// way out), and its answer is expected at `expected`.
    pub fn begin(&self, expected: Instant) -> Ticket {
        Ticket(self.expected.borrow_mut().insert(expected))
    }

    /// The attempt's answer is now expected at `expected` (it left later than planned).
    pub fn expect(&self, ticket: &Ticket, expected: Instant) {
        self.expected.borrow_mut()[ticket.0] = expected;
    }

    /// The attempt is over.
    pub fn end(&self, ticket: Ticket) {
        self.expected.borrow_mut().remove(ticket.0);
    }

    /// Whether an attempt in flight is more than `margin` past its expected answer, as of a
    /// scan at most [`OVERDUE_RECHECK`] old.
    pub fn overdue(&self, now: Instant, margin: Duration) -> bool {
        let fresh = self
            .scanned_at
            .get()
            .is_some_and(|at| now.saturating_duration_since(at) < OVERDUE_RECHECK);
        if !fresh {
            let was = self.overdue.get();
            let overdue = self.expected.borrow().iter().any(|(_, &at)| now > at + margin);
            if overdue && !was {
                self.overdue_count.set(self.overdue_count.get() + 1);
            }
            self.overdue.set(overdue);
            self.scanned_at.set(Some(now));
        }
        self.overdue.get()
    }

    /// Times the processor turned overdue since start.
    pub fn overdue_count(&self) -> u64 {
        self.overdue_count.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a processor is overdue exactly while an attempt is more than the margin past its
    /// expected answer, a scan is reused for `OVERDUE_RECHECK`, and turning overdue is counted
    /// once. Method: synthetic instants.
    #[test]
    fn in_flight_overdue() {
        let inflight = InFlight::default();
        let margin = Duration::from_millis(150);
        let t0 = Instant::now();
        let slow = inflight.begin(t0 + Duration::from_millis(5000));
        let fast = inflight.begin(t0);
        assert_eq!(inflight.len(), 2);
        assert!(!inflight.overdue(t0 + margin, margin));
        let late = t0 + margin + OVERDUE_RECHECK + Duration::from_millis(1);
        assert!(inflight.overdue(late, margin), "the fast one is overdue");
        assert!(inflight.overdue(late + Duration::from_millis(1), margin));
        assert_eq!(inflight.overdue_count(), 1);
        inflight.end(fast);
        assert!(inflight.overdue(late + Duration::from_millis(2), margin), "a scan is reused");
        let next = late + OVERDUE_RECHECK;
        assert!(!inflight.overdue(next, margin), "the slow one is not overdue yet");
        inflight.end(slow);
        assert!(inflight.is_empty());
        let held_up = inflight.begin(next);
        let much_later = next + margin * 4;
        inflight.expect(&held_up, much_later);
        assert!(!inflight.overdue(much_later + margin, margin), "expected again when it left");
        inflight.end(held_up);
    }
}
