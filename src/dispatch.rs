//! Dispatch: takes accepted payments off the core's queue and forwards each until `settle`
//! says where it is stored, then records it, once, in the core's ledger shard.
//!
//! Up to `DISPATCH_INFLIGHT_MAX` forwarding tasks run per core. A task starts when a payment
//! arrives and a slot is free, and keeps draining the queue until it is empty, so the queue
//! never waits behind a slow processor while a slot is idle, and a quiet core has no task.
//! Where each attempt goes is `route::choose`'s decision; after an unknown outcome the payment
//! stays with that processor (see `settle`).
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
//! `requestedAt = s + d̂`, with d̂ the planned delay (`health::ProcessorHealth::delay_ms`: the
//! larger of the polled `minResponseTime` and the latest observed latency). The insert then
//! happens at `s + d + small ≤ r + (d − d̂) + small`, and the payment can only be in the window
//! of a check at `T ≥ r + 2 s`, by which time both books have had it for about 2 s — as long as
//! `d − d̂ < 2 s`. Overestimating d is always safe; underestimating by 2 s needs the delay to
//! jump by 2 s within the few seconds before a poll or a response reveals it.
//!
//! The cost of d̂ is at the end of the test: the final totals count `requestedAt ≤ now`, so a
//! payment stored just before the end with r in the future would not count. With d̂ ≈ d that
//! payment would not have been stored in time anyway.
//!
//! Retries after an unknown outcome keep r: the processor may already hold the payment with it,
//! and a 422 then means "stored, with the r of the earlier attempt". Timeouts are kept well above
//! the planned delay (`PROCESSOR_TIMEOUT_MARGIN_MS`) because a premature one opens exactly the
//! `[insert, record)` gap above, until a retry learns the answer.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

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

/// Pause before routing again when the chosen processor has no free slot: about the time a
/// slot takes to turn over at a small delay, and short next to a POST's 1500 ms budget.
const SLOT_WAIT: Duration = Duration::from_millis(5);

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

/// Where the core would send a payment at `now` (wall clock `now_ms`); `refused_by` just said
/// "not stored" to it. Asking reserves an open breaker's probe for this payment.
fn route(core: &Core, refused_by: Option<Processor>, now: Instant, now_ms: i64) -> Route {
    decide(core, now_ms, |p| refused_by != Some(p) && core.health(p).usable(now))
}

/// What [`route`] would decide for a new payment now, without reserving a probe: for metrics.
pub fn peek_route(core: &Core, now: Instant, now_ms: i64) -> Route {
    decide(core, now_ms, |p| core.health(p).would_allow(now))
}

fn decide(core: &Core, now_ms: i64, usable: impl Fn(Processor) -> bool) -> Route {
    let fees = [core.config.fee_default_ppm, core.config.fee_fallback_ppm];
    let views = Processor::ALL.map(|p| View {
        usable: usable(p),
        inflight: core.inflight_at(p).get(),
        inflight_max: core.config.processor_inflight_max,
        delay_ms: core.health(p).delay_ms(),
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
        let (processor, requested_at_ms) = match pinned {
            Some(pin) => pin,
            None => match route(core, refused_by, started, now_ms) {
                Route::Send(p) => {
                    // Never planned further ahead than an attempt may last: a restarted
                    // instance relies on that bound (see `peer`'s *Continuity*).
                    let planned_delay_ms =
                        core.health(p).delay_ms().min(core.config.processor_timeout_ms);
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
                    monoio::time::sleep(SLOT_WAIT).await;
                    continue;
                }
            },
        };
        let timeout = core.config.processor_timeout(core.health(processor).delay_ms());
        let inflight = core.inflight_at(processor);
        inflight.set(inflight.get() + 1);
        let attempt =
            core.processor(processor).post_payment(&payment, requested_at_ms, timeout).await;
        inflight.set(inflight.get() - 1);
        let outcome = settle::classify(&attempt, pinned.is_some());
        observe(core, processor, &payment, &attempt, outcome, started.elapsed());
        match outcome {
            Outcome::Stored => {
                let entry = Entry { requested_at_ms, cents: payment.cents, processor };
                core.ledger.borrow_mut().record(entry);
                return;
            }
            Outcome::Duplicate | Outcome::Refused => return,
            Outcome::Unknown => {
                if pinned.is_some() {
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
                pinned = Some((processor, requested_at_ms));
            }
            Outcome::NotStored if pinned.is_some() => {
                // This attempt stored nothing, but an earlier one may have: stay.
                monoio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
            Outcome::NotStored => refused_by = Some(processor),
        }
    }
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
    if matches!(attempt, Ok(status) if *status != 429) {
        health.observe_latency(took);
    }
    let answered_us = attempt.is_ok().then(|| took.as_micros().min(u128::from(u64::MAX)) as u64);
    core.metrics.attempt(processor, outcome, payment.cents, answered_us);
    match outcome {
        Outcome::Stored | Outcome::Duplicate => health.record_success(),
        Outcome::NotStored | Outcome::Unknown => health.record_failure(Instant::now()),
        Outcome::Refused => {}
    }
}
