//! Dispatch: takes accepted payments off the core's queue and forwards each until `settle`
//! says where it is stored, then records it in the core's ledger shard.
//!
//! Up to `DISPATCH_INFLIGHT_MAX` forwarding tasks run per core. A task starts when a payment
//! arrives and a slot is free, and keeps draining the queue until it is empty, so the queue
//! never waits behind a slow processor while a slot is idle, and a quiet core has no task.
//!
//! Routing (first version): the default processor first; when it says "not stored", the
//! fallback; when both refuse, back off and go round again. After an unknown outcome the
//! payment stays with that processor (see `settle`).

use std::{rc::Rc, time::Duration};

use crate::{
    ledger::{Entry, Processor},
    payment::Payment,
    queue::QueueFull,
    settle::{self, Outcome},
    timestamp,
    worker::Core,
};

/// Longest pause between two rounds of retries of one payment. Backoff doubles from
/// `RETRY_BACKOFF_MS` up to this, so a payment notices a recovered processor within ~1 s.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1000);

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

/// Forwards one payment until it is stored (or refused for good), and records it once.
async fn forward(core: &Core, payment: Payment) {
    // Set after an unknown outcome: the processor that may hold the payment, and the
    // `requestedAt` it may hold it with. Every later attempt repeats exactly that.
    let mut pinned: Option<(Processor, i64)> = None;
    let mut target = Processor::Default;
    let mut backoff = core.config.retry_backoff();
    let mut refusals_in_round = 0;
    loop {
        let (processor, requested_at_ms) = pinned.unwrap_or_else(|| (target, timestamp::now_ms()));
        let attempt = core
            .processor(processor)
            .post_payment(&payment, requested_at_ms)
            .await;
        match settle::classify(&attempt, pinned.is_some()) {
            Outcome::Stored => {
                let entry = Entry {
                    requested_at_ms,
                    cents: payment.cents,
                    processor,
                };
                core.ledger.borrow_mut().record(entry);
                return;
            }
            Outcome::Duplicate => {
                core.stats.duplicates.set(core.stats.duplicates.get() + 1);
                return;
            }
            Outcome::Refused => {
                core.stats.refused.set(core.stats.refused.get() + 1);
                return;
            }
            Outcome::Unknown => {
                core.stats.unknown.set(core.stats.unknown.get() + 1);
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
            Outcome::NotStored => {
                refusals_in_round += 1;
                target = processor.other();
                if refusals_in_round == 2 {
                    refusals_in_round = 0;
                    target = Processor::Default;
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }
}
