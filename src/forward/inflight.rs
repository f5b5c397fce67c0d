//! What a core has in flight at the processors: each attempt's expected answer (to tell when a
//! processor has become slower than planned: `dispatch`'s *Delay jumps*), and the forwarding
//! tasks waiting for a slot to be freed.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
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

    /// An attempt starts; its answer is expected at `expected`.
    pub fn begin(&self, expected: Instant) -> Ticket {
        Ticket(self.expected.borrow_mut().insert(expected))
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

/// Forwarding tasks waiting for a slot at a processor ([`Route::Full`]), woken one per freed
/// slot, oldest first: no timer, and no herd of tasks woken for one slot.
#[derive(Debug, Default)]
pub struct SlotWaiters {
    /// Waiting tasks in arrival order. Bounded by `DISPATCH_INFLIGHT_MAX`: each is a task.
    queue: RefCell<VecDeque<Rc<Waiter>>>,
}

#[derive(Debug, Default)]
struct Waiter {
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl SlotWaiters {
    /// Waits until [`SlotWaiters::wake_one`] picks this task.
    pub fn wait(&self) -> SlotWait<'_> {
        SlotWait { waiters: self, waiter: None }
    }

    /// A slot was freed: wakes the task that has waited longest, if any.
    pub fn wake_one(&self) {
        // A waiter whose future is gone (dropped) holds the only other reference no more.
        while let Some(waiter) = self.queue.borrow_mut().pop_front() {
            if Rc::strong_count(&waiter) > 1 {
                waiter.woken.set(true);
                if let Some(waker) = waiter.waker.take() {
                    waker.wake();
                }
                return;
            }
        }
    }

    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The future of [`SlotWaiters::wait`].
#[derive(Debug)]
pub struct SlotWait<'a> {
    waiters: &'a SlotWaiters,
    waiter: Option<Rc<Waiter>>,
}

impl Future for SlotWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.waiter {
            Some(waiter) if waiter.woken.get() => {
                self.waiter = None;
                Poll::Ready(())
            }
            Some(waiter) => {
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
            None => {
                let waiter = Rc::new(Waiter::default());
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                self.waiters.queue.borrow_mut().push_back(Rc::clone(&waiter));
                self.waiter = Some(waiter);
                Poll::Pending
            }
        }
    }
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        // Woken but never run: the slot it was given goes to the next in line.
        if self.waiter.as_ref().is_some_and(|w| w.woken.get()) {
            self.waiters.wake_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: waiters are woken one per freed slot, oldest first; a dropped waiter is skipped,
    /// and one dropped after being woken passes its slot on. Method: poll the futures by hand
    /// with a no-op waker.
    #[test]
    fn slot_waiters_wake_one_in_order() {
        let waiters = SlotWaiters::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut a = Box::pin(waiters.wait());
        let mut b = Box::pin(waiters.wait());
        let mut c = Box::pin(waiters.wait());
        for w in [&mut a, &mut b, &mut c] {
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(waiters.len(), 3);
        waiters.wake_one();
        assert!(a.as_mut().poll(&mut cx).is_ready(), "the oldest first");
        assert!(b.as_mut().poll(&mut cx).is_pending() && c.as_mut().poll(&mut cx).is_pending());
        drop(b);
        waiters.wake_one();
        assert!(c.as_mut().poll(&mut cx).is_ready(), "a dropped waiter is skipped");
        let mut d = Box::pin(waiters.wait());
        let mut e = Box::pin(waiters.wait());
        assert!(d.as_mut().poll(&mut cx).is_pending() && e.as_mut().poll(&mut cx).is_pending());
        waiters.wake_one();
        drop(d);
        assert!(e.as_mut().poll(&mut cx).is_ready(), "woken then dropped: the slot moves on");
        assert!(waiters.is_empty());
    }

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
    }
}
