//! Lookup: what the processors say of payments whose outcome is unknown, asked with
//! `GET /payments/{id}`, which a processor answers at once, without its delay or its failure
//! switch. A forwarding task asks once its pinned attempt is due (`look_up_when_due`); a core
//! starting again asks about every payment its killed life left pinned, before it listens
//! ([`settle_stored`]); and a summary asks about the dead peer's attempts in flight
//! ([`settled_elsewhere`]). Why: `dispatch`'s *Unknown outcomes*.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use crate::{
    cores::Core,
    journal::{Kind, Pending},
    ledger::{Entry, Processor},
    payment::Payment,
    timestamp,
    upstream::outcome::{self, Lookup},
};

/// How long after its `requestedAt` a pinned payment is looked up, when that is still ahead:
/// an attempt planned with the right delay is stored by then but for the journal's flush
/// before it left and the processor's insert, a few milliseconds each. Far under the 1.5 s
/// before a check can see that `requestedAt`.
const LOOKUP_GRACE_MS: i64 = 100;

/// Deadline of one lookup. The processor answers it at once (no delay, no failure switch);
/// only its concurrency limit can hold it, behind payments in their delay, and then the
/// payment is simply sent again.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Lookups a core makes at once when it asks about many payments (its killed life's at start,
/// or its dead peer's for a summary): a processor takes 800 requests at once, and two
/// instances' slots (2 × 384) leave it 32.
const LOOKUPS_AT_ONCE_MAX: usize = 32;

/// How long a core spends looking up its pinned payments before it listens: what the
/// processors answer comes back in milliseconds; a processor that does not answer is asked
/// again by each payment's forwarding task, and the instance should be serving within a second.
const BOOT_LOOKUPS_BUDGET: Duration = Duration::from_millis(1_000);

/// How long a summary may spend looking up its dead peer's payments in flight: the contest's
/// client waits 1.5 s for a summary, and the peer call that failed first may have taken most of
/// it (`peer::PEER_CALLS_BUDGET`).
const PEER_LOOKUPS_BUDGET: Duration = Duration::from_millis(250);

/// Before the core serves anything: looks up, at the processor it may be stored at, each
/// payment a killed life of the instance left pinned to an attempt (replayed from the journal),
/// and settles those stored there. Returns the payments left to forward, the pinned ones first,
/// for `dispatch::resume`. Within `BOOT_LOOKUPS_BUDGET`: the rest are looked up by their forwarding
/// tasks.
///
/// Before, because from the moment the core answers its peer, its books must hold every
/// payment a processor stored and a check could see: those the killed life had sent and whose
/// answer died with it.
pub async fn settle_stored(core: &Rc<Core>, pending: Vec<Pending>) -> Vec<Pending> {
    let (pinned, unpinned): (Vec<Pending>, Vec<Pending>) =
        pending.into_iter().partition(|work| work.pin.is_some());
    let mut left = Vec::with_capacity(pinned.len() + unpinned.len());
    let give_up_at = Instant::now() + BOOT_LOOKUPS_BUDGET;
    look_up_each(core, &pinned, give_up_at, |work, pin, lookup| match lookup {
        Lookup::Found => settle(core, &work.payment, pin),
        Lookup::Absent | Lookup::Unknown => left.push(*work),
    })
    .await;
    left.extend(unpinned);
    left
}

/// What the processors stored of a dead peer's payments in flight (`in_flight`, from its
/// journal: each pinned to the attempt it had sent): the ledger entries of those found. `None`
/// when a lookup got no answer within `PEER_LOOKUPS_BUDGET`: the peer's books are then not
/// known.
pub async fn settled_elsewhere(core: &Rc<Core>, in_flight: Vec<Pending>) -> Option<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut known = true;
    let give_up_at = Instant::now() + PEER_LOOKUPS_BUDGET;
    look_up_each(core, &in_flight, give_up_at, |work, (processor, requested_at_ms), lookup| {
        match lookup {
            Lookup::Found => {
                entries.push(Entry { requested_at_ms, cents: work.payment.cents, processor })
            }
            Lookup::Absent => {}
            Lookup::Unknown => known = false,
        }
    })
    .await;
    known.then_some(entries)
}

/// Looks each pinned payment of `work` up at its processor, `LOOKUPS_AT_ONCE_MAX` at a time,
/// and hands it to `each` with its pin and the answer; those left when `give_up_at` passes are
/// not asked (`Unknown`).
async fn look_up_each(
    core: &Rc<Core>,
    work: &[Pending],
    give_up_at: Instant,
    mut each: impl FnMut(&Pending, (Processor, i64), Lookup),
) {
    let pinned = work.iter().filter_map(|w| w.pin.map(|pin| (w, pin))).collect::<Vec<_>>();
    for batch in pinned.chunks(LOOKUPS_AT_ONCE_MAX) {
        if Instant::now() >= give_up_at {
            batch.iter().for_each(|(work, pin)| each(work, *pin, Lookup::Unknown));
            continue;
        }
        let timeout = give_up_at.saturating_duration_since(Instant::now()).min(LOOKUP_TIMEOUT);
        let asks: Vec<_> = batch
            .iter()
            .map(|(work, (processor, _))| {
                let (core, payment, processor) = (Rc::clone(core), work.payment, *processor);
                monoio::spawn(async move { look_up(&core, &payment, processor, timeout).await })
            })
            .collect();
        for ((work, pin), ask) in batch.iter().zip(asks) {
            each(work, *pin, ask.await);
        }
    }
}

/// Records `payment` as stored where `pin` says, once: in the ledger, the journal and the
/// metrics.
pub(super) fn settle(
    core: &Core,
    payment: &Payment,
    (processor, requested_at_ms): (Processor, i64),
) {
    core.record(Entry { requested_at_ms, cents: payment.cents, processor });
    core.metrics().settled(processor, payment.cents);
    core.journal().append(Kind::Settled, payment, Some(processor), requested_at_ms);
}

/// Looks `payment` up at the processor `pin` names, no sooner than [`LOOKUP_GRACE_MS`] after
/// the pinned `requestedAt`, by which an attempt planned with the right delay has landed: a
/// lookup before it would find nothing that a check could yet see, and be one more call.
pub(super) async fn look_up_when_due(
    core: &Core,
    payment: &Payment,
    (processor, requested_at_ms): (Processor, i64),
) -> Lookup {
    let due_in_ms = requested_at_ms.saturating_add(LOOKUP_GRACE_MS) - timestamp::now_ms();
    if due_in_ms > 0 {
        // `requestedAt` is planned at most PROCESSOR_TIMEOUT_MS ahead; the cap only guards a
        // journal from a machine whose clock ran ahead.
        let wait_ms = (due_in_ms as u64).min(core.config().processor_timeout_ms);
        monoio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
    look_up(core, payment, processor, LOOKUP_TIMEOUT).await
}

/// One lookup of `payment` at `processor` within `timeout`, counted in its slots while it
/// lasts (the processor's concurrency limit counts it with the payments), and never taken for a
/// late answer: it has no delay to be late against.
async fn look_up(
    core: &Core,
    payment: &Payment,
    processor: Processor,
    timeout: Duration,
) -> Lookup {
    let upstream = core.upstream(processor);
    let now = Instant::now();
    let ticket = upstream.inflight().begin(now + timeout);
    upstream.inflight().arm(&ticket, now + timeout);
    let result = upstream.client().look_up(payment, upstream.inflight().expiry(&ticket)).await;
    upstream.inflight().end(ticket);
    core.forwarding().slot_freed();
    let lookup = outcome::classify_lookup(result);
    core.metrics().lookup(processor, lookup);
    lookup
}
