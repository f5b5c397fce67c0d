//! Dispatch: takes accepted payments off the core's queue and forwards each until
//! [`outcome`] says where it is stored, then records it, once, in the core's ledger shard.
//!
//! Up to `DISPATCH_INFLIGHT_MAX` forwarding tasks run per core. A task starts when a payment
//! arrives and a slot is free, and keeps draining the queue until it is empty, so the queue
//! never waits behind a slow processor while a slot is idle, and a quiet core has no task.
//! Where each attempt goes is `route::choose`'s decision; after an unknown outcome the payment
//! stays with that processor (see [`outcome`]). A task whose processor has no free slot waits
//! for one to be freed ([`SlotWaiters`](crate::cores::slots::SlotWaiters)), not on a timer.
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
//! `requestedAt = s + lead`, the lead being at least d̂, the planned delay
//! ([`planned_delay_ms`](crate::upstream::Upstream::planned_delay_ms): the newest news of the
//! delay, `health::ProcessorHealth::delay_ms`, unless there is none or the processor is overdue,
//! below). The insert then happens at `s + d + small ≤ r + (d − lead) + small`, and the payment
//! can only be in the window of a check at `T ≥ r + 2 s`, by which time both books have had it
//! for about 2 s — as long as `d − lead < 2 s`. Overestimating d is always safe.
//!
//! The cost of a lead is at the end of the test: the final totals count `requestedAt ≤ now`, so
//! a payment stored just before the end with r in the future would not count. With the lead
//! d̂ ≈ d that payment would not have been stored in time anyway, but d̂ may be a guess (an
//! overdue processor's, a fresh life's) and the payment may land at once; so every lead is
//! kept `END_MARGIN_MS` before a known end (`route::lead_ms`), where no check looks any more
//! (the last one's window ends 1.5 s before the end) and the final count still does.
//!
//! Retries after an unknown outcome keep r: the processor may already hold the payment with it,
//! and a 422 then means "stored, with the r of the earlier attempt". Timeouts are kept well above
//! the planned delay (`PROCESSOR_TIMEOUT_MARGIN_MS`) because a premature one opens exactly the
//! `[insert, record)` gap above, until a lookup or a retry learns the answer (below).
//!
//! # Delay jumps
//!
//! `d − lead < 2 s` fails when the delay jumps by 2 s or more before news of it arrives: a poll
//! (every 5 s) or an answer (only after the new delay). Every payment sent in between lands
//! late, inside the checker's window. Three things bound that.
//!
//! **A lead far from a known end.** While the test's end is known and further off than
//! `REQUESTED_AT_LEAD_MIN_MS` (4 s) and `END_MARGIN_MS`, the lead is at least
//! `REQUESTED_AT_LEAD_MIN_MS`, whatever d̂ says. The contest sets no delay above 5 s, so a
//! payment sent just before any jump lands at most 1 s after its r, inside the earliest window
//! end there is (1.5 s): the books cannot differ in any check, by construction, and no detector
//! could do as well, since a jump from 2.5 s to 5 s shows no sooner than 2.5 s after it, by
//! which time everything sent meanwhile is planned. It costs nothing: the final count takes
//! every r up to the end, and the lead keeps r `END_MARGIN_MS` before it. Near the end the lead
//! shrinks to what is left, and what it no longer covers lands after the end, after the last
//! check: a payment sent with x s left is late only if its lead is under `5 − 2 = 3` s, so x
//! is under 4 s, and then it lands at least 1 s after the end. With the end unknown there is no
//! floor (any lead risks the count), and the two below carry the argument alone.
//!
//! **A watchdog.** Each attempt in flight is registered with the instant its answer is expected
//! (`s + d̂`, [`InFlight`](crate::upstream::inflight::InFlight)); once one is
//! `OVERDUE_MARGIN_MS` past it, the processor is slower than planned by an unknown amount, and
//! until no attempt is overdue any more, every payment sent there is planned with
//! `OVERDUE_PLAN_DELAY_MS` (5 s, the largest delay the contest sets) instead. Routing sees the
//! same pessimistic delay, so traffic moves to the other processor when that is cheaper. What a
//! jump exposes without a lead is what was sent between the jump and its detection, `d̂ +
//! OVERDUE_MARGIN_MS` of traffic, instead of everything until the next poll; and a false alarm
//! (a core stalled by its CPU quota) costs only a few payments planned late. The check is made
//! when a payment is routed, at most every
//! [`OVERDUE_RECHECK`](crate::upstream::inflight::OVERDUE_RECHECK), so it costs no timer; a
//! processor nobody routes to needs none. Stopping all traffic to a silent processor but for a
//! few scouts would bound the exposure the same way, by the same detection time; planning
//! pessimistically keeps the processor usable where routing still finds it the cheaper.
//!
//! **No news is no lead of 0.** A core that has heard nothing of a processor's delay (a fresh
//! life: a restart, a new instance) gives its payments a lead of at least
//! `OVERDUE_PLAN_DELAY_MS` until a poll or an answer tells it: its first burst cannot land late
//! for want of news. Routing meanwhile plans with 0 (a guess of 5 s would send a held backlog to
//! the dearer processor for nothing), and the watchdog corrects it within a margin if it is
//! wrong.
//!
//! # Unknown outcomes, and lives that die with attempts in flight
//!
//! A payment whose attempt timed out, lost its connection, or was in flight when the instance
//! was killed may be stored at that processor, and from `r + 2 s` on a check can find it there
//! while our books do not have it. Sending it again learns the outcome only a whole delay later
//! (the 422). So it is looked up first (`GET /payments/{id}`, which the processor answers at
//! once, without its delay or its failure switch): `LOOKUP_GRACE_MS` after r, when an attempt
//! planned with the right delay has landed, or at once if that is past; it is settled if
//! found, and sent again (same processor, same r) only if not. A restarted instance looks up
//! every payment its killed life left pinned before it listens ([`lookup::settle_stored`](super::lookup::settle_stored)), and
//! while an instance is down, its peer's answer from the dead journal looks up the attempts
//! whose r the summary counts (`summary`, [`lookup::settled_elsewhere`](super::lookup::settled_elsewhere)). Why that is enough: an attempt in flight
//! at a kill at t was planned with a lead covering its delay, so r ≥ t, and a check sees it
//! only from `r + 2 s`; the restarted life finds it at start if it has landed, and at
//! `r + LOOKUP_GRACE_MS` otherwise, both sooner; a peer asked meanwhile finds it too.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use super::lookup::{look_up_when_due, settle};
use crate::{
    cores::{
        Core,
        queue::{HoldMark, QueueFull},
    },
    journal::{Kind, Pending},
    ledger::Processor,
    payment::Payment,
    timestamp,
    upstream::{
        client::Attempt,
        inflight::Ticket,
        outcome::{self, Lookup, Outcome},
        route::Route,
    },
};

/// Longest pause between two retries of a payment whose outcome is unknown. Backoff doubles
/// from `RETRY_BACKOFF_MS` up to this, so a recovered processor is noticed within ~1 s.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1000);

/// Accepts `payment` onto the core: straight into a free forwarding slot, or into the queue.
pub fn submit(core: &Rc<Core>, payment: Payment) -> Result<(), QueueFull> {
    core.forwarding().arrived();
    if core.forwarding().try_start_task() {
        monoio::spawn(drain(Rc::clone(core), Pending { payment, pin: None }, None));
        Ok(())
    } else {
        core.forwarding().enqueue(payment)
    }
}

/// Takes back payments a killed life of the instance accepted and did not settle (replayed
/// from the journal, after [`lookup::settle_stored`](super::lookup::settle_stored)): each goes on as it was left, pinned to its last
/// attempt if it had one, and a pinned one is looked up again once that attempt is due.
pub fn resume(core: &Rc<Core>, pending: Vec<Pending>) {
    for work in pending {
        if core.forwarding().try_start_task() {
            monoio::spawn(drain(Rc::clone(core), work, None));
        } else {
            core.forwarding().resume(work);
        }
    }
}

/// One forwarding slot: settles `first` (its first attempt `decided` already, if so), then
/// whatever is waiting, then frees the slot.
async fn drain(core: Rc<Core>, first: Pending, decided: Option<Decided>) {
    forward(&core, first, decided).await;
    while let Some(work) = core.forwarding().next_work() {
        forward(&core, work, None).await;
    }
    core.forwarding().end_task();
}

/// Where the core would send a payment at `now` (wall clock `now_ms`), held for the cheaper
/// processor for `held_ms` so far; `refused_by` just said "not stored" to it. Sending to a
/// processor whose breaker is open takes its probe; asking about one that is not chosen does
/// not.
fn route(
    core: &Core,
    refused_by: Option<Processor>,
    now: Instant,
    now_ms: i64,
    held_ms: u64,
) -> Route {
    let route = core.decide(now, now_ms, held_ms, |upstream| {
        refused_by != Some(upstream.processor()) && upstream.health().would_allow(now)
    });
    if let Route::Send(processor) = route {
        let probe_taken = core.upstream(processor).health().usable(now);
        debug_assert!(probe_taken, "would_allow said yes at the same instant");
    }
    route
}

/// One payment's way through its attempts: what earlier ones settled about where it may go.
struct Course<'a> {
    /// Set after an unknown outcome: the processor that may hold the payment, and the
    /// `requestedAt` it may hold it with. Every later attempt repeats exactly that.
    pinned: Option<(Processor, i64)>,
    /// The processor that just answered "not stored".
    refused_by: Option<Processor>,
    /// Since when the payment has been held for the cheaper processor, if ever.
    held_since: Option<Instant>,
    /// Present while it is held (`Route::Hold`): counted in the core's holding gauge.
    holding: Option<HoldMark<'a>>,
    /// A turn of the core's forward pace waited for and not yet used: the next send takes it.
    paced: bool,
}

impl<'a> Course<'a> {
    /// A payment's course from where it stands: `pin` is an attempt that may have stored it.
    fn new(pin: Option<(Processor, i64)>) -> Course<'a> {
        Course { pinned: pin, refused_by: None, held_since: None, holding: None, paced: false }
    }

    /// Where the next attempt goes and its `requestedAt`, or `None` after waiting (for a
    /// probe, a slot, the core's pace, or the cheaper processor): then the caller looks again.
    async fn next(
        &mut self,
        core: &'a Core,
        payment: &Payment,
        started: Instant,
        now_ms: i64,
    ) -> Option<Target> {
        if let Some((processor, requested_at_ms)) = self.pinned {
            let planned_delay_ms = planned_delay_ms_capped(core, processor, started);
            let ticket = take_slot(core, processor, started, planned_delay_ms);
            return Some(Target { processor, requested_at_ms, planned_delay_ms, ticket });
        }
        let held_ms = self.held_since.map_or(0, |since| {
            u64::try_from(started.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
        });
        let route = route(core, self.refused_by, started, now_ms, held_ms);
        if route != Route::Hold {
            self.holding = None;
        }
        match route {
            Route::Send(processor) => {
                if !std::mem::take(&mut self.paced) {
                    // A send goes at the core's pace: a released backlog waits for its turn
                    // here, then looks again with the turn in hand.
                    let turn = core.forwarding().pace_turn(started);
                    if turn > started {
                        self.paced = true;
                        monoio::time::sleep_until(turn.into()).await;
                        return None;
                    }
                }
                Some(attempt_at(core, payment, processor, started, now_ms).await)
            }
            Route::Hold | Route::Wait => {
                if route == Route::Hold && self.holding.is_none() {
                    self.held_since.get_or_insert(started);
                    self.holding = Some(core.forwarding().hold());
                }
                // Look again when the next probe is due: it finds a recovered processor.
                self.refused_by = None;
                let probe_interval = core.config().breaker_probe_interval_ms;
                monoio::time::sleep(Duration::from_millis(probe_interval)).await;
                None
            }
            Route::Full => {
                core.forwarding().wait_for_slot().await;
                None
            }
        }
    }
}

/// Where one attempt goes, with its slot there already taken.
struct Target {
    processor: Processor,
    requested_at_ms: i64,
    planned_delay_ms: u64,
    ticket: Ticket,
}

/// An attempt at `processor`, decided at `started` (`now_ms` on the wall clock): its
/// `requestedAt`, its slot, and its record, on disk before the request leaves.
async fn attempt_at(
    core: &Core,
    payment: &Payment,
    processor: Processor,
    started: Instant,
    now_ms: i64,
) -> Target {
    let (target, seq) = plan_attempt(core, payment, processor, started, now_ms);
    // On disk before the request leaves: from then on the payment may be stored there, and a
    // restart must retry exactly this. A journal that cannot write holds the attempt back until
    // it can (or a purge moves its records to a new file): sent unrecorded, a crash would
    // replay the payment free to go to the other processor as well.
    core.journal().durable_eventually(seq).await;
    leaves_now(core, &target);
    target
}

/// An attempt's `requestedAt` and slot, and its record appended (its sequence number returned,
/// to wait for): everything but the wait.
fn plan_attempt(
    core: &Core,
    payment: &Payment,
    processor: Processor,
    started: Instant,
    now_ms: i64,
) -> (Target, u64) {
    let planned_delay_ms = planned_delay_ms_capped(core, processor, started);
    let lead_ms = core.requested_at_lead_ms(processor, planned_delay_ms, now_ms);
    let requested_at_ms = now_ms.saturating_add(lead_ms as i64);
    let ticket = take_slot(core, processor, started, planned_delay_ms);
    let seq = core.journal().append(Kind::Attempt, payment, Some(processor), requested_at_ms);
    (Target { processor, requested_at_ms, planned_delay_ms, ticket }, seq)
}

/// The attempt leaves now, its record written: its answer is expected a delay from now, not
/// from the decision, so that a slow flush does not look like a slow processor.
fn leaves_now(core: &Core, target: &Target) {
    if core.journal().is_on() {
        let expected = Instant::now() + Duration::from_millis(target.planned_delay_ms);
        core.upstream(target.processor).inflight().expect(&target.ticket, expected);
    }
}

/// A payment whose first attempt was decided at intake: its forwarding task's place and its
/// slot taken, its attempt's record appended to ride in the write of its acceptance.
pub struct Decided {
    target: Target,
    started: Instant,
}

/// At intake, when a forwarding task is free and the payment can go now, on pace, where routing
/// sends it: takes the task's place and the slot and appends the attempt's record, so that the
/// acceptance's write the intake is about to wait for carries both (one write a payment, not
/// two, and the request leaves right after the `202`). `None`: the usual way ([`submit`]).
pub fn decide_at_intake(core: &Rc<Core>, payment: &Payment) -> Option<Decided> {
    let forwarding = core.forwarding();
    if !forwarding.try_start_task() {
        return None;
    }
    let started = Instant::now();
    let now_ms = timestamp::now_ms();
    let decided = match route(core, None, started, now_ms, 0) {
        Route::Send(processor) if forwarding.pace_now(started) => {
            let (target, _) = plan_attempt(core, payment, processor, started, now_ms);
            Some(Decided { target, started })
        }
        _ => None,
    };
    if decided.is_none() {
        forwarding.end_task();
    }
    decided
}

/// Starts forwarding a payment decided at intake, its records written (the `202` is given).
pub fn start_decided(core: &Rc<Core>, payment: Payment, decided: Decided) {
    core.forwarding().arrived();
    leaves_now(core, &decided.target);
    let work = Pending { payment, pin: None };
    monoio::spawn(drain(Rc::clone(core), work, Some(decided)));
}

/// Gives back what a decision at intake took: the acceptance could not be written, so the
/// payment is refused and its attempt never leaves (the intake records it closed).
pub fn abandon_decided(core: &Core, decided: Decided) {
    let Decided { target, .. } = decided;
    core.upstream(target.processor).inflight().end(target.ticket);
    core.forwarding().slot_freed();
    core.forwarding().end_task();
}

/// Forwards one payment until it is stored (or refused for good), and records it once, in
/// the ledger and the journal. A payment pinned to an attempt whose outcome is unknown (by a
/// timeout, a broken connection, or a killed life) is looked up at that processor once the
/// attempt is due, before it is sent there again.
async fn forward(core: &Core, work: Pending, mut decided: Option<Decided>) {
    let Pending { payment, pin } = work;
    if let Some(pin) = pin
        && look_up_when_due(core, &payment, pin).await == Lookup::Found
    {
        return settle(core, &payment, pin);
    }
    let mut course = Course::new(pin);
    let mut backoff = core.config().retry_backoff();
    loop {
        let (target, started) = match decided.take() {
            Some(Decided { target, started }) => (target, started),
            None => {
                // One reading of each clock per attempt serves routing, `requestedAt` and the
                // latency measurement (clock reads showed in the profile).
                let started = Instant::now();
                let now_ms = timestamp::now_ms();
                let Some(target) = course.next(core, &payment, started, now_ms).await else {
                    continue;
                };
                (target, started)
            }
        };
        let (processor, requested_at_ms) = (target.processor, target.requested_at_ms);
        let attempt = send(core, &payment, target).await;
        if attempt.maybe_stored_before && course.pinned.is_none() {
            // A dead pooled connection took the request first: it may be stored here.
            course.pinned = Some((processor, requested_at_ms));
        }
        let outcome = outcome::classify(attempt.result, course.pinned.is_some());
        observe(core, processor, &attempt, outcome, started.elapsed());
        let journal = core.journal();
        match outcome {
            Outcome::Stored => return settle(core, &payment, (processor, requested_at_ms)),
            Outcome::Duplicate | Outcome::Refused => {
                journal.append(Kind::Closed, &payment, Some(processor), requested_at_ms);
                return;
            }
            Outcome::NotStored if course.pinned.is_none() => {
                journal.append(Kind::NotStored, &payment, Some(processor), requested_at_ms);
                course.refused_by = Some(processor);
            }
            Outcome::Unknown | Outcome::NotStored => {
                // This attempt settled nothing, and it (or an earlier one) may have stored the
                // payment: ask that processor before sending it there again.
                let first_unknown = course.pinned.is_none();
                let pin = *course.pinned.get_or_insert((processor, requested_at_ms));
                if look_up_when_due(core, &payment, pin).await == Lookup::Found {
                    return settle(core, &payment, pin);
                }
                if !first_unknown {
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }
}

/// One attempt at `target`: its slot, taken when it was chosen, is given back when the
/// attempt ends, and a task waiting for one woken.
async fn send(core: &Core, payment: &Payment, target: Target) -> Attempt {
    let Target { processor, requested_at_ms, planned_delay_ms, ticket } = target;
    let timeout = core.config().processor_timeout(planned_delay_ms);
    let upstream = core.upstream(processor);
    upstream.inflight().arm(&ticket, Instant::now() + timeout);
    let deadline = upstream.inflight().expiry(&ticket);
    let attempt = upstream.client().post_payment(payment, requested_at_ms, deadline).await;
    upstream.inflight().end(ticket);
    core.forwarding().slot_freed();
    attempt
}

/// The least time between two sweeps of a core's deadlines: attempts whose deadlines fall close
/// together (a processor gone silent with hundreds in flight) give up together rather than
/// wake the core once each. Deadlines are seconds long (a processor's delay plus
/// `PROCESSOR_TIMEOUT_MARGIN_MS`, a lookup's second, a dead peer's summary's half second), so
/// 20 ms late is nothing.
const DEADLINE_SWEEP_GAP_MIN: Duration = Duration::from_millis(20);

/// The core's deadline sweep: one timer per core, where a timer per attempt cost a tenth of the
/// forwarding CPU. Each attempt in flight past its deadline is woken to give up
/// (`InFlight::sweep`); then the sweep sleeps until the earliest deadline left, at least
/// `DEADLINE_SWEEP_GAP_MIN`, or until an attempt is armed with an earlier one. Spawned once per
/// core.
pub async fn sweep_deadlines(core: Rc<Core>) {
    loop {
        let now = Instant::now();
        let due = Processor::ALL
            .iter()
            .filter_map(|&processor| core.upstream(processor).inflight().sweep(now).1)
            .min();
        let armed_sooner = async {
            monoio::select! {
                _ = core.upstream(Processor::Default).inflight().until_armed_sooner() => {},
                _ = core.upstream(Processor::Fallback).inflight().until_armed_sooner() => {},
            }
        };
        match due {
            Some(due) => monoio::select! {
                _ = monoio::time::sleep_until(due.max(now + DEADLINE_SWEEP_GAP_MIN).into()) => {},
                _ = armed_sooner => {},
            },
            None => armed_sooner.await,
        }
        // An earlier deadline armed right after a sweep still waits out the gap.
        let gap_end = now + DEADLINE_SWEEP_GAP_MIN;
        if Instant::now() < gap_end {
            monoio::time::sleep_until(gap_end.into()).await;
        }
    }
}

/// Takes a slot at `processor` for an attempt decided at `now`, its answer expected
/// `planned_delay_ms` later. Taken where the route is chosen, before anything the attempt
/// awaits on its way out: every task woken with this one (a released backlog) routes before
/// any of them has sent, and would otherwise see the same slots free.
fn take_slot(core: &Core, processor: Processor, now: Instant, planned_delay_ms: u64) -> Ticket {
    let expected = now + Duration::from_millis(planned_delay_ms);
    core.upstream(processor).inflight().begin(expected)
}

/// [`Upstream::planned_delay_ms`](crate::upstream::Upstream::planned_delay_ms), never further ahead than an attempt may last: a restarted instance
/// relies on that bound (see `peer`'s *Continuity*).
fn planned_delay_ms_capped(core: &Core, processor: Processor, now: Instant) -> u64 {
    let config = core.config();
    core.upstream(processor).planned_delay_ms(now, config).min(config.processor_timeout_ms)
}

/// Feeds an attempt's result to the core's health view of that processor and its metrics.
fn observe(core: &Core, processor: Processor, attempt: &Attempt, outcome: Outcome, took: Duration) {
    let health = core.upstream(processor).health();
    // Every answer but 429 (refused before the delay) comes after the processor's delay.
    if matches!(attempt.result, Ok(status) if status != 429) {
        health.observe_latency(took);
    }
    let answered_us =
        attempt.result.is_ok().then(|| took.as_micros().min(u128::from(u64::MAX)) as u64);
    core.metrics().attempt(processor, outcome, answered_us);
    match outcome {
        Outcome::Stored | Outcome::Duplicate => health.record_success(),
        Outcome::NotStored | Outcome::Unknown => health.record_failure(Instant::now()),
        Outcome::Refused => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        config::Config,
        cores::Start,
        http::Endpoint,
        journal::Journal,
        peer::{Boot, Continuity},
    };

    /// A core with the default configuration and processors that are never called.
    fn test_core() -> Core {
        test_core_with(&[])
    }

    /// A core with the default configuration but for `env`, and processors never called.
    fn test_core_with(env: &[(&str, &str)]) -> Core {
        test_core_at(env, [1, 2], Start::fresh())
    }

    /// A core with the default configuration but for `env`, its processors on these loopback
    /// ports, starting from `start`.
    fn test_core_at(env: &[(&str, &str)], ports: [u16; 2], start: Start) -> Core {
        let lookup = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        // Lives for the test process, as `main`'s does for the server's.
        let config: &'static Config =
            Box::leak(Box::new(Config::from_lookup(lookup).expect("a valid configuration")));
        let (mailbox, _) = flume::unbounded();
        let continuity = Arc::new(Continuity::new(Boot::new(), config.processor_timeout_ms));
        let endpoints = ports.map(|port| Endpoint {
            authority: format!("127.0.0.1:{port}"),
            addr: ([127, 0, 0, 1], port).into(),
        });
        Core::new(0, config, vec![mailbox].into(), continuity, endpoints, start)
    }

    /// Goal: an attempt whose record the journal cannot write is not sent: sent unrecorded, a
    /// crash would replay the payment unpinned, free to go to the other processor as well. It
    /// goes once the record is written (here: a purge moves it to a new file). Method: a test
    /// core whose journal file is a link to `/dev/full`, a listener standing for the default;
    /// one payment forwarded; nothing may connect while the journal tries its write twice; after
    /// a purge the listener gets the request.
    #[test]
    fn an_attempt_the_journal_cannot_record_is_not_sent() {
        let dir = std::env::temp_dir().join(format!("payrelay-unrecorded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let file = dir.join(crate::journal::replay::file_name(0, 0));
        std::os::unix::fs::symlink("/dev/full", file).expect("a link to /dev/full");
        let processor = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        processor.set_nonblocking(true).expect("non-blocking");
        let port = processor.local_addr().expect("its address").port();
        let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build();
        runtime.expect("a runtime").block_on(async {
            let journal = Journal::open(&dir, 0, 0, 0, 1 << 20, crate::journal::Fsync::Never);
            let start = Start { journal, ..Start::fresh() };
            let core = Rc::new(test_core_at(&[], [port, port], start));
            let flusher = Rc::clone(core.journal());
            monoio::spawn(async move { flusher.run().await });
            let payment =
                Payment { correlation_id: *b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", cents: 1990 };
            let forwarding = Rc::clone(&core);
            monoio::spawn(async move {
                forward(&forwarding, Pending { payment, pin: None }, None).await
            });
            while core.journal().writes() < 2 {
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(processor.accept().is_err(), "the attempt left unrecorded");
            core.purge();
            let give_up_at = Instant::now() + Duration::from_secs(5);
            while processor.accept().is_err() {
                assert!(Instant::now() < give_up_at, "the attempt never left after the purge");
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Goal: routing to one processor never spends the other's probe: with the fallback's
    /// breaker open and its probe due, a payment routed to the default leaves the probe for
    /// when the fallback is needed; once the default is unusable, the next payment takes it.
    /// Method: a core built in the test, its breakers driven by hand.
    #[test]
    fn routing_takes_only_the_chosen_processors_probe() {
        let core = test_core();
        let t0 = Instant::now();
        let default = core.upstream(Processor::Default).health();
        let fallback = core.upstream(Processor::Fallback).health();
        for _ in 0..core.config().breaker_failures_to_open {
            fallback.record_failure(t0);
        }
        assert!(fallback.is_open());
        let probe_due = t0 + Duration::from_millis(core.config().breaker_probe_interval_ms);
        let now_ms = timestamp::now_ms();
        assert_eq!(route(&core, None, probe_due, now_ms, 0), Route::Send(Processor::Default));
        assert!(fallback.would_allow(probe_due), "the fallback's probe is still there");
        for _ in 0..core.config().breaker_failures_to_open {
            default.record_failure(probe_due);
        }
        // Nothing to hold for the default with the fallback failing too: its probe goes.
        assert_eq!(route(&core, None, probe_due, now_ms, 0), Route::Send(Processor::Fallback));
        assert!(!fallback.would_allow(probe_due), "now it is taken");
    }

    use crate::upstream::inflight::OVERDUE_RECHECK;

    /// Goal: the planned delay is the news of the delay, and `OVERDUE_PLAN_DELAY_MS` (never
    /// less than the news) while an attempt there is overdue. Method: a test core, an attempt
    /// registered by hand.
    #[test]
    fn an_overdue_attempt_raises_the_planned_delay() {
        let core = test_core();
        let t0 = Instant::now();
        let config = core.config();
        let [default, fallback] =
            [Processor::Default, Processor::Fallback].map(|p| core.upstream(p));
        default.health().observe_latency(Duration::from_millis(40));
        assert_eq!(default.planned_delay_ms(t0, config), 40);
        let ticket = default.inflight().begin(t0 + Duration::from_millis(40));
        let late = t0 + Duration::from_millis(40) + config.overdue_margin() * 2;
        assert_eq!(default.planned_delay_ms(late, config), config.overdue_plan_delay_ms);
        assert_eq!(fallback.planned_delay_ms(late, config), 0, "only that processor");
        default.inflight().end(ticket);
        let after = late + OVERDUE_RECHECK;
        assert_eq!(default.planned_delay_ms(after, config), 40);
        default.health().observe_latency(Duration::from_millis(9000));
        assert_eq!(default.planned_delay_ms(after, config), 9000);
    }

    /// Goal: `requestedAt` leads the send by the planned delay, by no less than
    /// `REQUESTED_AT_LEAD_MIN_MS` while the end is known, and by no less than
    /// `OVERDUE_PLAN_DELAY_MS` before any news of the processor's delay (while routing plans
    /// with 0), all of it shrinking near the end to keep `requestedAt` a second before it; never
    /// more than `PROCESSOR_TIMEOUT_MS`. Method: test cores with and without a known end (a
    /// 10 s test started by hand), news given by hand.
    #[test]
    fn requested_at_leads_by_the_floor_and_covers_no_news() {
        let default = Processor::Default;
        let unknown_end = test_core();
        let config = unknown_end.config();
        let (t0, now_ms) = (Instant::now(), timestamp::now_ms());
        let no_news = unknown_end.upstream(default);
        assert_eq!(no_news.planned_delay_ms(t0, config), 0, "routing: no news, no delay");
        let lead =
            |core: &Core, delay_ms, at_ms| core.requested_at_lead_ms(default, delay_ms, at_ms);
        assert_eq!(lead(&unknown_end, 0, now_ms), 5_000, "no news: the largest delay");
        no_news.health().observe_latency(Duration::from_millis(3));
        assert_eq!(lead(&unknown_end, 3, now_ms), 3, "news, no end known: the delay");

        let known_end = test_core_with(&[("TEST_DURATION_MS", "10000")]);
        known_end.purge();
        let started_ms = timestamp::now_ms();
        assert_eq!(lead(&known_end, 0, started_ms), 5_000, "no news");
        known_end.upstream(default).health().observe_latency(Duration::from_millis(3));
        assert_eq!(lead(&known_end, 3, started_ms), 4_000, "the floor");
        assert_eq!(lead(&known_end, 4_500, started_ms), 4_500, "a longer delay");
        assert_eq!(lead(&known_end, 3, started_ms + 7_000), 2_000, "a second before the end");
        assert_eq!(lead(&known_end, 3, started_ms + 9_500), 0, "none in the last second");
        let timeout =
            test_core_with(&[("TEST_DURATION_MS", "10000"), ("PROCESSOR_TIMEOUT_MS", "1000")]);
        timeout.purge();
        assert_eq!(lead(&timeout, 0, timestamp::now_ms()), 1_000, "never past the timeout");
    }
}
