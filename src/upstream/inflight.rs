//! What a core has in flight at one processor: each attempt's expected answer, to tell when
//! the processor has become slower than planned (`forward::dispatch`'s *Delay jumps*), and its
//! deadline, which one sweep per core enforces for every attempt (`forward::dispatch::
//! sweep_deadlines`) rather than a timer each. The sweep sleeps until the earliest deadline
//! it knows of ([`InFlight::sweep`]'s answer), and an attempt armed with an earlier one wakes it
//! ([`InFlight::until_armed_sooner`]): deadlines are seconds away (the planned delay plus
//! `PROCESSOR_TIMEOUT_MARGIN_MS`) and most attempts end long before theirs, so at a steady load
//! a core sweeps about once a deadline's length and never while idle, where a fixed 20 ms tick
//! woke an idle core 50 times a second.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use slab::Slab;

/// How often [`InFlight::overdue`] scans the attempts in flight at most: a payment arrives
/// every couple of milliseconds at the contest's peak, and a scan of up to
/// `PROCESSOR_INFLIGHT_MAX` entries per payment would be waste; this adds at most 10 ms to the
/// detection of a delay jump.
pub const OVERDUE_RECHECK: Duration = Duration::from_millis(10);

/// One attempt in flight.
#[derive(Debug)]
struct Entry {
    /// When its answer is expected: its start plus the delay it was planned with.
    expected: Instant,
    /// When it gives up, once it has left (`None` before: its deadline counts from its start).
    deadline: Option<Instant>,
    /// Its deadline passed: the attempt stops waiting.
    expired: bool,
    /// The attempt waiting for its answer, woken when its deadline passes.
    waker: Option<Waker>,
}

/// One core's attempts in flight at one processor: how many (against `PROCESSOR_INFLIGHT_MAX`),
/// when each one's answer is expected, to tell when the processor has become slower than
/// planned (see *Delay jumps*), and when each gives up.
#[derive(Debug, Default)]
pub struct InFlight {
    /// The attempts. Bounded by `PROCESSOR_INFLIGHT_MAX`, except for pinned retries and
    /// lookups, which are few.
    entries: RefCell<Slab<Entry>>,
    /// Whether an attempt was overdue at the last scan.
    overdue: Cell<bool>,
    /// When the last scan was made.
    scanned_at: Cell<Option<Instant>>,
    /// Times the processor turned overdue (`payrelay_overdue_total`).
    overdue_count: Cell<u64>,
    /// The earliest deadline the sweep will wake for (at the last sweep, or armed since), if
    /// any: an attempt that ends meanwhile leaves it early, never late.
    sweep_due: Cell<Option<Instant>>,
    /// Set when an attempt was armed with a deadline before `sweep_due`: the sweep must look
    /// again at when to wake.
    armed_sooner: Cell<bool>,
    /// The sweep, while it sleeps.
    sweeper: RefCell<Option<Waker>>,
}

/// An attempt's registration in [`InFlight`]; handed back when it ends.
#[derive(Debug)]
#[must_use = "an attempt that is never ended stays in flight forever"]
pub struct Ticket(usize);

impl InFlight {
    /// Attempts in flight.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An attempt is decided on: its slot is taken from here (before anything it awaits on its
    /// way out), and its answer is expected at `expected`.
    pub fn begin(&self, expected: Instant) -> Ticket {
        let entry = Entry { expected, deadline: None, expired: false, waker: None };
        Ticket(self.entries.borrow_mut().insert(entry))
    }

    /// The attempt's answer is now expected at `expected` (it left later than planned).
    pub fn expect(&self, ticket: &Ticket, expected: Instant) {
        self.entries.borrow_mut()[ticket.0].expected = expected;
    }

    /// The attempt leaves now, and gives up at `deadline`: [`InFlight::expiry`] resolves then
    /// (at the first sweep from then on). Wakes the sweep if it sleeps until later.
    pub fn arm(&self, ticket: &Ticket, deadline: Instant) {
        self.entries.borrow_mut()[ticket.0].deadline = Some(deadline);
        if self.sweep_due.get().is_none_or(|due| deadline < due) {
            self.sweep_due.set(Some(deadline));
            self.armed_sooner.set(true);
            if let Some(sweeper) = self.sweeper.borrow_mut().take() {
                sweeper.wake();
            }
        }
    }

    /// Resolves once an attempt is armed with a deadline before the one the last sweep
    /// returned (at once if one was since): the sweep then sleeps until that one instead.
    pub fn until_armed_sooner(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.armed_sooner.take() {
                return Poll::Ready(());
            }
            *self.sweeper.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Resolves once the attempt's deadline has passed (found by [`InFlight::sweep`]).
    pub fn expiry<'a>(&'a self, ticket: &Ticket) -> Expiry<'a> {
        Expiry { inflight: self, key: ticket.0 }
    }

    /// The attempt is over.
    pub fn end(&self, ticket: Ticket) {
        self.entries.borrow_mut().remove(ticket.0);
    }

    /// Expires every attempt whose deadline is past at `now`, waking it; returns how many, and
    /// the earliest deadline still ahead, for the next sweep.
    pub fn sweep(&self, now: Instant) -> (usize, Option<Instant>) {
        let mut expired = 0;
        let mut due: Option<Instant> = None;
        for (_, entry) in self.entries.borrow_mut().iter_mut() {
            let Some(deadline) = entry.deadline.filter(|_| !entry.expired) else { continue };
            if now >= deadline {
                entry.expired = true;
                expired += 1;
                if let Some(waker) = entry.waker.take() {
                    waker.wake();
                }
            } else {
                due = Some(due.map_or(deadline, |due| due.min(deadline)));
            }
        }
        self.sweep_due.set(due);
        self.armed_sooner.set(false);
        (expired, due)
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
            let overdue =
                self.entries.borrow().iter().any(|(_, entry)| now > entry.expected + margin);
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

/// The future of [`InFlight::expiry`].
#[derive(Debug)]
pub struct Expiry<'a> {
    inflight: &'a InFlight,
    key: usize,
}

impl Future for Expiry<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut entries = self.inflight.entries.borrow_mut();
        // Its ticket is held by the attempt awaiting this, which ends it only afterwards.
        let entry = &mut entries[self.key];
        if entry.expired {
            return Poll::Ready(());
        }
        if !entry.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            entry.waker = Some(cx.waker().clone());
        }
        Poll::Pending
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

    /// Goal: an attempt gives up once a sweep finds its deadline past, and not before; one
    /// that has not left (no deadline yet) never does; a sweep wakes the attempt waiting.
    /// Method: two attempts, one armed; expiry futures polled by hand around sweeps.
    #[test]
    fn deadlines_expire_at_a_sweep() {
        let inflight = InFlight::default();
        let t0 = Instant::now();
        let (armed, unarmed) = (inflight.begin(t0), inflight.begin(t0));
        inflight.arm(&armed, t0 + Duration::from_millis(100));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut expiry = std::pin::pin!(inflight.expiry(&armed));
        assert!(expiry.as_mut().poll(&mut cx).is_pending());
        let due = t0 + Duration::from_millis(100);
        assert_eq!(inflight.sweep(t0 + Duration::from_millis(99)), (0, Some(due)), "not yet");
        assert!(expiry.as_mut().poll(&mut cx).is_pending());
        let (expired, next) = inflight.sweep(t0 + Duration::from_secs(3600));
        assert_eq!((expired, next), (1, None), "only the armed one, and nothing left to wait for");
        assert!(expiry.as_mut().poll(&mut cx).is_ready());
        assert_eq!(inflight.sweep(t0 + Duration::from_secs(3600)), (0, None), "expired once");
        let mut never = std::pin::pin!(inflight.expiry(&unarmed));
        assert!(never.as_mut().poll(&mut cx).is_pending());
        inflight.end(armed);
        inflight.end(unarmed);
        assert!(inflight.is_empty());
    }

    /// Goal: the sweep asleep until the earliest deadline it knows of is woken by an attempt
    /// armed with an earlier one, and only by such; an empty registry has nothing to wake for
    /// until one is armed. Method: a waker that counts its wakes, deadlines armed around the one
    /// a sweep returned.
    #[test]
    fn an_earlier_deadline_wakes_the_sweep() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let count = std::sync::Arc::new(Count(0.into()));
        let waker = Waker::from(std::sync::Arc::clone(&count));
        let wakes = || count.0.load(std::sync::atomic::Ordering::Relaxed);
        let mut cx = Context::from_waker(&waker);
        let inflight = InFlight::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(inflight.sweep(t0), (0, None));
        let mut armed = std::pin::pin!(inflight.until_armed_sooner());
        assert!(armed.as_mut().poll(&mut cx).is_pending(), "nothing armed yet");
        let first = inflight.begin(t0);
        inflight.arm(&first, ms(5_000));
        assert_eq!(wakes(), 1, "a first deadline wakes a sweep that had none");
        assert!(armed.as_mut().poll(&mut cx).is_ready());
        assert_eq!(inflight.sweep(ms(1)), (0, Some(ms(5_000))));
        let mut armed = std::pin::pin!(inflight.until_armed_sooner());
        assert!(armed.as_mut().poll(&mut cx).is_pending());
        let later = inflight.begin(t0);
        inflight.arm(&later, ms(6_000));
        assert_eq!(wakes(), 1, "a later deadline leaves it asleep");
        assert!(armed.as_mut().poll(&mut cx).is_pending());
        let sooner = inflight.begin(t0);
        inflight.arm(&sooner, ms(1_000));
        assert_eq!(wakes(), 2, "an earlier one wakes it");
        assert!(armed.as_mut().poll(&mut cx).is_ready());
        inflight.end(first);
        assert_eq!(inflight.sweep(ms(2)), (0, Some(ms(1_000))), "the earliest of those left");
        for ticket in [later, sooner] {
            inflight.end(ticket);
        }
    }
}
