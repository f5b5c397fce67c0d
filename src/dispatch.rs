//! Dispatch: takes accepted payments off the core's queue and forwards each until `settle`
//! says where it is stored, then records it, once, in the core's ledger shard.
//!
//! Up to `DISPATCH_INFLIGHT_MAX` forwarding tasks run per core. A task starts when a payment
//! arrives and a slot is free, and keeps draining the queue until it is empty, so the queue
//! never waits behind a slow processor while a slot is idle, and a quiet core has no task.
//! Where each attempt goes is `route::choose`'s decision; after an unknown outcome the payment
//! stays with that processor (see `settle`). A task whose processor has no free slot waits
//! for one to be freed ([`SlotWaiters`]), not on a timer.
//!
//! # Consistency: when a payment becomes visible, and where
//!
//! The checker asks, at an instant T, both processors and us for the payments whose
//! `requestedAt` lies in `[T − 15 s, T − 2 s]` (1.5 s in the preview), in parallel. A processor
//! holds a request for its delay d, then inserts it and answers; we record it when the answer
//! arrives, ε later (a fraction of a millisecond, more if the core is busy). A payment is in
//! one book and not the other only during `[insert, record)`, and the checker sees that only
//! if its `requestedAt` r is already inside the window then: `r ≤ insert − 2 s`.
//!
//! With `requestedAt` = the instant we send, s, that is `s ≤ s + d − 2 s`: any delay of 2 s or
//! more exposes every check to every payment in `[insert, record)`, and the three parallel
//! queries are not evaluated at one instant either, which widens the window. So we set
//! `requestedAt = s + d̂`, with d̂ the planned delay ([`planned_delay_ms`]: the newest news of
//! the delay, `health::ProcessorHealth::delay_ms`, unless the processor is overdue, below). The
//! insert then happens at `s + d + small ≤ r + (d − d̂) + small`, and the payment can only be in
//! the window of a check at `T ≥ r + 2 s`, by which time both books have had it for about 2 s —
//! as long as `d − d̂ < 2 s`. Overestimating d is always safe.
//!
//! The cost of d̂ is at the end of the test: the final totals count `requestedAt ≤ now`, so a
//! payment stored just before the end with r in the future would not count. With d̂ ≈ d that
//! payment would not have been stored in time anyway.
//!
//! Retries after an unknown outcome keep r: the processor may already hold the payment with it,
//! and a 422 then means "stored, with the r of the earlier attempt". Timeouts are kept well above
//! the planned delay (`PROCESSOR_TIMEOUT_MARGIN_MS`) because a premature one opens exactly the
//! `[insert, record)` gap above, until a retry learns the answer.
//!
//! # Delay jumps
//!
//! `d − d̂ < 2 s` fails when the delay jumps by 2 s or more before news of it arrives: a poll
//! (every 5 s) or an answer (only after the new delay). Every payment sent in between lands
//! late, inside the checker's window. So each attempt in flight is registered with the instant
//! its answer is expected (`s + d̂`, [`InFlight`]); once one is `OVERDUE_MARGIN_MS` past it, the
//! processor is slower than planned by an unknown amount, and until no attempt is overdue any
//! more, every payment sent there is planned with `OVERDUE_PLAN_DELAY_MS` (5 s, the largest
//! delay the contest sets) instead. Routing sees the same pessimistic delay, so traffic moves to
//! the other processor when that is cheaper. What is left exposed is what was sent between the
//! jump and its detection, `d̂ + OVERDUE_MARGIN_MS` of traffic, instead of everything until the
//! next poll; and a false alarm (a core stalled by its CPU quota) costs only a few payments
//! planned late. The check is made when a payment is routed, at most every
//! [`OVERDUE_RECHECK`], so it costs no timer; a processor nobody routes to needs none.

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

use crate::{
    ledger::{Entry, Processor},
    payment::Payment,
    processor::Attempt,
    queue::QueueFull,
    route::{self, Load, Route, View},
    settle::{self, Outcome},
    timestamp,
    worker::Core,
};

/// Longest pause between two retries of a payment whose outcome is unknown. Backoff doubles
/// from `RETRY_BACKOFF_MS` up to this, so a recovered processor is noticed within ~1 s.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// How often [`InFlight::overdue`] scans the attempts in flight at most: a payment arrives
/// every couple of milliseconds at the contest's peak, and a scan of up to
/// `PROCESSOR_INFLIGHT_MAX` entries per payment would be waste; this adds at most 10 ms to the
/// detection of a delay jump.
pub const OVERDUE_RECHECK: Duration = Duration::from_millis(10);

/// Accepts `payment` onto the core: straight into a free forwarding slot, or into the queue.
pub fn submit(core: &Rc<Core>, payment: Payment) -> Result<(), QueueFull> {
    if core.inflight.get() < core.config.dispatch_inflight_max {
        core.inflight.set(core.inflight.get() + 1);
        monoio::spawn(drain(Rc::clone(core), payment));
        Ok(())
    } else {
        core.queue.borrow_mut().push(payment)
    }
}

/// One forwarding slot: settles `first`, then whatever is queued, then frees the slot.
async fn drain(core: Rc<Core>, first: Payment) {
    let mut next = Some(first);
    while let Some(payment) = next {
        forward(&core, payment).await;
        next = core.queue.borrow_mut().pop();
    }
    core.inflight.set(core.inflight.get() - 1);
}

/// The delay to plan a payment to `processor` with at `now` (see *Delay jumps*).
pub fn planned_delay_ms(core: &Core, processor: Processor, now: Instant) -> u64 {
    let news = core.health(processor).delay_ms();
    if core.inflight_at(processor).overdue(now, core.config.overdue_margin()) {
        news.max(core.config.overdue_plan_delay_ms)
    } else {
        news
    }
}

/// Where the core would send a payment at `now` (wall clock `now_ms`); `refused_by` just said
/// "not stored" to it. Sending to a processor whose breaker is open takes its probe; asking
/// about one that is not chosen does not.
fn route(core: &Core, refused_by: Option<Processor>, now: Instant, now_ms: i64) -> Route {
    let route =
        decide(core, now, now_ms, |p| refused_by != Some(p) && core.health(p).would_allow(now));
    if let Route::Send(processor) = route {
        let probe_taken = core.health(processor).usable(now);
        debug_assert!(probe_taken, "would_allow said yes at the same instant");
    }
    route
}

/// What [`route`] would decide for a new payment now, without taking a probe: for metrics.
pub fn peek_route(core: &Core, now: Instant, now_ms: i64) -> Route {
    decide(core, now, now_ms, |p| core.health(p).would_allow(now))
}

fn decide(core: &Core, now: Instant, now_ms: i64, usable: impl Fn(Processor) -> bool) -> Route {
    let fees = [core.config.fee_default_ppm, core.config.fee_fallback_ppm];
    let views = Processor::ALL.map(|p| View {
        usable: usable(p),
        inflight: core.inflight_at(p).len(),
        inflight_max: core.config.processor_inflight_max,
        delay_ms: planned_delay_ms(core, p, now),
        fee_ppm: fees[p.index()],
    });
    let load = Load { queue_len: core.queue.borrow().len(), horizon_ms: core.horizon_ms(now_ms) };
    route::choose(views, load)
}

/// Forwards one payment until it is stored (or refused for good), and records it once.
async fn forward(core: &Core, payment: Payment) {
    // Set after an unknown outcome: the processor that may hold the payment, and the
    // `requestedAt` it may hold it with. Every later attempt repeats exactly that.
    let mut pinned: Option<(Processor, i64)> = None;
    let mut refused_by: Option<Processor> = None;
    let mut backoff = core.config.retry_backoff();
    loop {
        // One reading of each clock per attempt serves routing, `requestedAt` and the
        // latency measurement (clock reads showed in the profile).
        let started = Instant::now();
        let now_ms = timestamp::now_ms();
        let planned_delay_ms;
        let (processor, requested_at_ms) = match pinned {
            Some((processor, requested_at_ms)) => {
                planned_delay_ms = planned_delay_ms_capped(core, processor, started);
                (processor, requested_at_ms)
            }
            None => match route(core, refused_by, started, now_ms) {
                Route::Send(p) => {
                    planned_delay_ms = planned_delay_ms_capped(core, p, started);
                    (p, now_ms.saturating_add(planned_delay_ms as i64))
                }
                Route::Wait => {
                    // Nothing usable: look again when the next probe is due.
                    refused_by = None;
                    let probe_interval = core.config.breaker_probe_interval_ms;
                    monoio::time::sleep(Duration::from_millis(probe_interval)).await;
                    continue;
                }
                Route::Full => {
                    core.slot_waiters.wait().await;
                    continue;
                }
            },
        };
        let attempt =
            send(core, processor, &payment, requested_at_ms, started, planned_delay_ms).await;
        if attempt.maybe_stored_before && pinned.is_none() {
            // A dead pooled connection took the request first: it may be stored here.
            pinned = Some((processor, requested_at_ms));
        }
        let outcome = settle::classify(attempt.result, pinned.is_some());
        observe(core, processor, &payment, &attempt, outcome, started.elapsed());
        match outcome {
            Outcome::Stored => {
                let entry = Entry { requested_at_ms, cents: payment.cents, processor };
                core.ledger.borrow_mut().record(entry);
                return;
            }
            Outcome::Duplicate | Outcome::Refused => return,
            Outcome::Unknown | Outcome::NotStored => match pinned {
                None if outcome == Outcome::Unknown => {
                    pinned = Some((processor, requested_at_ms));
                }
                None => refused_by = Some(processor),
                Some(_) => {
                    // This attempt settled nothing, and an earlier one may have stored it: stay.
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            },
        }
    }
}

/// One attempt at `processor`, started at `started` and planned to be answered
/// `planned_delay_ms` later: registered in flight for its duration, and a waiting task woken
/// when it ends.
async fn send(
    core: &Core,
    processor: Processor,
    payment: &Payment,
    requested_at_ms: i64,
    started: Instant,
    planned_delay_ms: u64,
) -> Attempt {
    let timeout = core.config.processor_timeout(planned_delay_ms);
    let inflight = core.inflight_at(processor);
    let ticket = inflight.begin(started + Duration::from_millis(planned_delay_ms));
    let attempt = core.processor(processor).post_payment(payment, requested_at_ms, timeout).await;
    inflight.end(ticket);
    core.slot_waiters.wake_one();
    attempt
}

/// [`planned_delay_ms`], never further ahead than an attempt may last: a restarted instance
/// relies on that bound (see `peer`'s *Continuity*).
fn planned_delay_ms_capped(core: &Core, processor: Processor, now: Instant) -> u64 {
    planned_delay_ms(core, processor, now).min(core.config.processor_timeout_ms)
}

/// Feeds an attempt's result to the core's health view of that processor and its metrics.
fn observe(
    core: &Core,
    processor: Processor,
    payment: &Payment,
    attempt: &Attempt,
    outcome: Outcome,
    took: Duration,
) {
    let health = core.health(processor);
    // Every answer but 429 (refused before the delay) comes after the processor's delay.
    if matches!(attempt.result, Ok(status) if status != 429) {
        health.observe_latency(took);
    }
    let answered_us =
        attempt.result.is_ok().then(|| took.as_micros().min(u128::from(u64::MAX)) as u64);
    core.metrics.attempt(processor, outcome, payment.cents, answered_us);
    match outcome {
        Outcome::Stored | Outcome::Duplicate => health.record_success(),
        Outcome::NotStored | Outcome::Unknown => health.record_failure(Instant::now()),
        Outcome::Refused => {}
    }
}

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
    use std::sync::Arc;

    use super::*;
    use crate::{
        config::Config,
        peer::{Boot, Continuity},
        processor::Endpoint,
    };

    /// A core with the default configuration and processors that are never called.
    fn test_core() -> Core {
        // Lives for the test process, as `main`'s does for the server's.
        let config: &'static Config =
            Box::leak(Box::new(Config::from_lookup(|_| None).expect("the defaults are valid")));
        let (mailbox, _) = flume::unbounded();
        let continuity = Arc::new(Continuity::new(Boot::new(), config.processor_timeout_ms));
        let endpoint = |port: u16| Endpoint {
            authority: format!("127.0.0.1:{port}"),
            addr: ([127, 0, 0, 1], port).into(),
        };
        Core::new(0, config, vec![mailbox].into(), continuity, [endpoint(1), endpoint(2)])
    }

    /// Goal: routing to one processor never spends the other's probe: with the fallback's
    /// breaker open and its probe due, a payment routed to the default leaves the probe for
    /// when the fallback is needed; once the default is unusable, the next payment takes it.
    /// Method: a core built in the test, its breakers driven by hand.
    #[test]
    fn routing_takes_only_the_chosen_processors_probe() {
        let core = test_core();
        let t0 = Instant::now();
        let (default, fallback) =
            (core.health(Processor::Default), core.health(Processor::Fallback));
        for _ in 0..core.config.breaker_failures_to_open {
            fallback.record_failure(t0);
        }
        assert!(fallback.is_open());
        let probe_due = t0 + Duration::from_millis(core.config.breaker_probe_interval_ms);
        let now_ms = timestamp::now_ms();
        assert_eq!(route(&core, None, probe_due, now_ms), Route::Send(Processor::Default));
        assert!(fallback.would_allow(probe_due), "the fallback's probe is still there");
        for _ in 0..core.config.breaker_failures_to_open {
            default.record_failure(probe_due);
        }
        assert_eq!(route(&core, None, probe_due, now_ms), Route::Send(Processor::Fallback));
        assert!(!fallback.would_allow(probe_due), "now it is taken");
    }

    /// Goal: the planned delay is the news of the delay, and `OVERDUE_PLAN_DELAY_MS` (never
    /// less than the news) while an attempt there is overdue. Method: a test core, an attempt
    /// registered by hand.
    #[test]
    fn an_overdue_attempt_raises_the_planned_delay() {
        let core = test_core();
        let t0 = Instant::now();
        let health = core.health(Processor::Default);
        health.observe_latency(Duration::from_millis(40));
        assert_eq!(planned_delay_ms(&core, Processor::Default, t0), 40);
        let ticket = core.inflight_at(Processor::Default).begin(t0 + Duration::from_millis(40));
        let late = t0 + Duration::from_millis(40) + core.config.overdue_margin() * 2;
        let plan = core.config.overdue_plan_delay_ms;
        assert_eq!(planned_delay_ms(&core, Processor::Default, late), plan);
        assert_eq!(planned_delay_ms(&core, Processor::Fallback, late), 0, "only that processor");
        core.inflight_at(Processor::Default).end(ticket);
        let after = late + OVERDUE_RECHECK;
        assert_eq!(planned_delay_ms(&core, Processor::Default, after), 40);
        health.observe_latency(Duration::from_millis(9000));
        assert_eq!(planned_delay_ms(&core, Processor::Default, after), 9000);
    }

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
