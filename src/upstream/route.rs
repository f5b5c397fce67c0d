//! Route: per payment, default, fallback, hold or wait — one pure function ([`choose`]) over
//! what the core knows, and the one place that gathers it ([`decide`]: each upstream's planned
//! delay, breaker and slots; the core's backlog; the test's end, [`TestClock`]).
//!
//! # What a payment is worth where
//!
//! A payment stored at processor P before the test's final count earns its amount less P's
//! fee; one still with us, or still in flight, at the count earns nothing ("lag"). When it is
//! sent does not matter otherwise: the checker compares books, and a payment in our queue is in
//! nobody's. So the question per payment is where it lands *in time* for least fee, and a
//! payment may wait for the cheaper processor as long as waiting does not risk the count.
//!
//! **The end is known** (`TEST_DURATION_MS` after the last purge; the contest's script fixes
//! it). A processor lands a payment in time when it is usable and its landing time (its
//! planned delay, plus the turns of its slots that the tasks waiting for one take first) ends
//! [`END_MARGIN_MS`] before the end. Then:
//! 1. The cheaper processor with a free slot, when it lands in time.
//! 2. Else, while the dearer one works (its breaker closed) and could still take this core's
//!    whole backlog and land it in time ([`release_ms`] plus [`RELEASE_MARGIN_MS`] before the
//!    end), the payment is held for
//!    the cheaper one: [`Route::Hold`] while it is unusable (failing: its breaker's probes find
//!    when it recovers), [`Route::Full`] while its slots are busy. Holding costs no profit,
//!    because the dearer processor stays a way out until the release deadline, and no
//!    consistency. It does cost memory, so it stops at half of `QUEUE_LEN_MAX`, before the
//!    queue would refuse payments. And it costs the dearer processor's capacity meanwhile:
//!    when that one could not keep up with the payments still arriving (its slots turn over
//!    slower than they come), what it did not take during the hold is lag at the end, so the
//!    release deadline counts the arrivals too, and there is no hold when it cannot keep up.
//! 3. Else the dearer one, when it lands in time.
//! 4. Else nothing lands in time: the usable processor that lands sooner (the end may come
//!    later than planned; a full one lands only after its slots' turns, so the other may be
//!    sooner), or wait when neither is usable.
//!
//! A failing processor's recovery time is unknown, and the model assumes nothing about it:
//! holding pays off if the cheaper processor recovers before the release deadline, and costs
//! nothing if it does not, since the backlog then goes to the dearer one in time. What the model
//! does assume is that the dearer processor is still usable at the deadline; if it fails in
//! the last seconds while the backlog is held, what it cannot take lags. A slow cheaper
//! processor (1-5 s, with fees 5% and 15%) is waited for the same way while it lands in time:
//! its slots turn over slowly, so its waiting tasks count in its landing time, and the backlog
//! behind them in the release deadline. Near the end, the other way round: what the cheaper
//! one cannot land in time goes to the one that can.
//!
//! **The end is unknown** (`TEST_DURATION_MS` 0). Then `H = LAG_HORIZON_MS` is the expected time
//! left for a payment arriving now, and the chance that a payment taking `t` to land misses
//! the end is about `t / H`. The cost of sending to P, in parts of the amount:
//!
//! ```text
//! cost(P) = fee(P) + (delay(P) + waiting × delay(P) / slots(P)) / H
//! ```
//!
//! where `slots(P)` is how many requests this core may keep in flight at P
//! (`PROCESSOR_INFLIGHT_MAX`: a processor serves 800 at once for everyone). The cheaper usable
//! one wins; ties go to the default. If the winner has no free slot, the other takes the payment
//! when it is usable and has one; otherwise the payment waits for a slot ([`Route::Full`]).
//! While the cheaper processor is unusable, a payment is held for it as long as holding is
//! cheaper than the risk it runs: held for `t`, it misses the end with chance `t / H` and then
//! loses `1 − fee(dearer)`, against a saving of the fee difference. So it is held at most
//! `H × (fee(dearer) − fee(cheaper)) / (1 − fee(dearer))` (12 s with fees 5% and 15% and
//! `H` = 100 s; 3.3 s with 7% and 10%), then sent to the dearer one.
//!
//! When neither processor is usable the payment waits in the queue: nothing is lost while a
//! processor may recover, and sending to a failing processor only costs its delay and a 500.

use std::{cell::Cell, time::Instant};

use super::Upstream;
use crate::{config::Config, ledger::Processor};

/// How long before the test's known end a payment must land: the end is known to within a
/// second or so (the harness's teardown lags its last request), and a payment that lands
/// after the final count earns nothing.
pub const END_MARGIN_MS: u64 = 1_000;

/// Slack of the release deadline: a held payment is looked at again every
/// `BREAKER_PROBE_INTERVAL_MS`, the queue behind the tasks reaches the dearer processor only
/// as tasks free up, and the estimate of how fast it drains ([`release_ms`]) is rough. Two
/// seconds covers all three at the contest's rates.
pub const RELEASE_MARGIN_MS: u64 = 2_000;

/// The share of `QUEUE_LEN_MAX` up to which payments are held for the cheaper processor (1 in
/// this many): beyond it the dearer one takes them, so that the queue keeps room and never
/// answers 503 because of holding.
pub const HOLD_QUEUE_SHARE: usize = 2;

/// When the current test began (the last purge: a contest run purges right before its load),
/// for the time left in it.
#[derive(Debug, Default)]
pub struct TestClock {
    /// ms since the epoch; `None` before the first purge.
    started_ms: Cell<Option<i64>>,
}

impl TestClock {
    /// A test begins at `now_ms`.
    pub fn start(&self, now_ms: i64) {
        self.started_ms.set(Some(now_ms));
    }

    /// What routing knows of the end: `TEST_DURATION_MS` after the start when both are known
    /// and that is still ahead, else `LAG_HORIZON_MS` as the expected time left: a test still
    /// going past its configured end has an end nobody knows, and routing that expects it any
    /// moment would send everything to the faster processor whatever its fee, until the next
    /// purge. `now_ms` is the caller's wall-clock reading (the hot path reads the clock once).
    pub fn end(&self, now_ms: i64, config: &Config) -> End {
        match self.started_ms.get() {
            Some(started_ms) if config.test_duration_ms > 0 => {
                let end_ms = started_ms.saturating_add(config.test_duration_ms as i64);
                match end_ms.saturating_sub(now_ms) {
                    left_ms if left_ms > 0 => End::Known { left_ms: left_ms as u64 },
                    _ => End::Unknown { horizon_ms: config.lag_horizon_ms },
                }
            }
            _ => End::Unknown { horizon_ms: config.lag_horizon_ms },
        }
    }
}

/// How long after its send a payment's `requestedAt` is planned, ms: its processor's planned
/// `delay_ms`, and no less than `floor_ms`, both as far as a known end allows: the payment's
/// `requestedAt` stays [`END_MARGIN_MS`] before it, where the final count takes it and no
/// check looks (the last check's window ends 1.5 s before the end, at the latest). A planned
/// delay is capped too: it may be a guess (an overdue processor's `OVERDUE_PLAN_DELAY_MS`, a
/// fresh life's), and a payment that lands before the count with `requestedAt` past it is
/// lag. Why a lead at all, and which floor: `dispatch`'s *Delay jumps*.
pub fn lead_ms(delay_ms: u64, end: End, floor_ms: u64) -> u64 {
    let lead_ms = delay_ms.max(floor_ms);
    match end {
        End::Known { left_ms } => lead_ms.min(left_ms.saturating_sub(END_MARGIN_MS)),
        End::Unknown { .. } => lead_ms,
    }
}

/// Where a payment would go now: each upstream as a [`View`] (its planned delay, its slots,
/// `usable` for its breaker, the most this core sends there a second, `per_s_max`), and the
/// core's load. Takes no probe (see `dispatch`).
pub fn decide(
    upstreams: &[Upstream; 2],
    config: &Config,
    load: Load,
    per_s_max: u64,
    now: Instant,
    usable: impl Fn(&Upstream) -> bool,
) -> Route {
    let fees = [config.fee_default_ppm, config.fee_fallback_ppm];
    let views = upstreams.each_ref().map(|upstream| View {
        usable: usable(upstream),
        failing: upstream.health().is_open(),
        inflight: upstream.inflight().len(),
        inflight_max: config.processor_inflight_max,
        delay_ms: upstream.planned_delay_ms(now, config),
        fee_ppm: fees[upstream.processor().index()],
        per_s_max,
    });
    choose(views, load)
}

/// What the router knows about one processor, as seen from one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// A payment may be sent there now: its breaker is closed, or its probe is due.
    pub usable: bool,
    /// Its breaker is open: it refused the last attempts, or the health poll says it fails.
    /// A processor whose probe is due is usable for that probe, but no way out for a backlog.
    pub failing: bool,
    /// Requests this core has in flight there.
    pub inflight: usize,
    /// Requests this core may have in flight there (`PROCESSOR_INFLIGHT_MAX`).
    pub inflight_max: usize,
    /// Current delay estimate (health's `minResponseTime`, or observed), ms.
    pub delay_ms: u64,
    /// Fee in parts per million of the amount (5% = 50_000).
    pub fee_ppm: u64,
    /// The most payments a second this core can land there whatever the delay: its forward
    /// pace (`FORWARDS_PER_S_MAX`), and its share of what the processor stores a second
    /// (`PROCESSOR_ABSORB_PER_S` over every core of the deployment).
    pub per_s_max: u64,
}

impl View {
    /// When a payment sent now lands, ms: the delay, after the turns of the slots that
    /// `waiting` tasks ahead of it take.
    fn landing_ms(self, waiting: usize) -> u64 {
        let slots = self.inflight_max.max(1) as u64;
        let turns = self.delay_ms.saturating_mul(waiting as u64) / slots;
        self.delay_ms.saturating_add(turns)
    }

    /// Payments a second this core can land there: its slots' turns at the delay, at most
    /// `per_s_max`.
    fn per_s(self) -> u64 {
        let turns = (self.inflight_max as u64).saturating_mul(1_000) / self.delay_ms.max(1);
        turns.min(self.per_s_max)
    }

    fn free(self) -> bool {
        self.usable && self.inflight < self.inflight_max
    }
}

/// How long `view`'s processor takes to land this core's `backlog` while payments keep
/// arriving at `arrivals_per_s`, ms: the backlog over what it takes beyond the arrivals, then
/// one delay. `u64::MAX` when it cannot keep up with the arrivals alone.
pub fn release_ms(view: View, backlog: usize, arrivals_per_s: u64) -> u64 {
    match view.per_s().checked_sub(arrivals_per_s) {
        Some(spare_per_s) if spare_per_s > 0 => {
            let drain_ms = (backlog as u64).saturating_mul(1_000) / spare_per_s;
            drain_ms.saturating_add(view.delay_ms)
        }
        _ => u64::MAX,
    }
}

/// What routing knows of the test's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `TEST_DURATION_MS` after the last purge: this much is left (0 once past).
    Known {
        /// Time left, ms.
        left_ms: u64,
    },
    /// No known end: the expected time left for a payment arriving now (`LAG_HORIZON_MS`).
    Unknown {
        /// `H`, ms.
        horizon_ms: u64,
    },
}

/// The core's side of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Forwarding tasks of this core waiting for a slot: they go before this payment.
    pub waiting: usize,
    /// Payments this core holds (queued, or with a task): what a release must move.
    pub backlog: usize,
    /// Payments arriving at this core a second, lately.
    pub arrivals_per_s: u64,
    /// How long this payment has been held for the cheaper processor already, ms.
    pub held_ms: u64,
    /// The queue is below its holding share ([`HOLD_QUEUE_SHARE`]), and the core is not
    /// draining (SIGTERM: what it holds must go before the deadline).
    pub room_to_hold: bool,
    /// The test's end.
    pub end: End,
}

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Send to this processor now.
    Send(Processor),
    /// Keep the payment for the cheaper processor, unusable for now, although the other is
    /// usable: it is worth waiting for.
    Hold,
    /// Keep the payment until a processor is usable.
    Wait,
    /// The processor to use has no free slot: wait for one to be freed.
    Full,
}

impl Route {
    /// Every decision, in [`Route::index`] order.
    pub const ALL: [Route; 5] = [
        Route::Send(Processor::Default),
        Route::Send(Processor::Fallback),
        Route::Hold,
        Route::Wait,
        Route::Full,
    ];

    /// Its position in [`Route::ALL`].
    pub fn index(self) -> usize {
        match self {
            Route::Send(processor) => processor.index(),
            Route::Hold => 2,
            Route::Wait => 3,
            Route::Full => 4,
        }
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Route::Send(processor) => processor.name(),
            Route::Hold => "hold",
            Route::Wait => "wait",
            Route::Full => "full",
        }
    }
}

/// Chooses where the next payment goes (the module's argument, case by case).
pub fn choose(views: [View; 2], load: Load) -> Route {
    // The cheaper by fee; ties go to the default.
    let cheap =
        if views[1].fee_ppm < views[0].fee_ppm { Processor::Fallback } else { Processor::Default };
    match load.end {
        End::Known { left_ms } => choose_by_end(views, cheap, load, left_ms),
        End::Unknown { horizon_ms } => choose_by_cost(views, cheap, load, horizon_ms),
    }
}

/// The end is known: the cheapest processor that lands in time, holding for the cheaper one
/// while the dearer one can still take the backlog in time.
fn choose_by_end(views: [View; 2], cheap: Processor, load: Load, left_ms: u64) -> Route {
    let dear = cheap.other();
    let (c, d) = (views[cheap.index()], views[dear.index()]);
    let lands =
        |v: View| v.usable && v.landing_ms(load.waiting).saturating_add(END_MARGIN_MS) <= left_ms;
    if lands(c) && c.free() {
        return Route::Send(cheap);
    }
    let worth_holding = c.fee_ppm < d.fee_ppm && (lands(c) || !c.usable);
    let release_in_time = d.usable
        && !d.failing
        && load.room_to_hold
        && release_ms(d, load.backlog, load.arrivals_per_s).saturating_add(RELEASE_MARGIN_MS)
            < left_ms;
    if worth_holding && release_in_time {
        return if c.usable { Route::Full } else { Route::Hold };
    }
    if lands(d) {
        return if d.free() { Route::Send(dear) } else { Route::Full };
    }
    // Nothing lands in time: the sooner, in case the end comes later than planned. One with a
    // free slot lands after its delay; one without, after the turns of the tasks waiting and
    // this one's, so the other, free, may be sooner even if it is slower.
    let landing = |v: View| {
        v.usable.then(|| {
            if v.free() { v.delay_ms } else { v.landing_ms(load.waiting.saturating_add(1)) }
        })
    };
    let sooner = match (landing(c), landing(d)) {
        (None, None) => return Route::Wait,
        (Some(_), None) => cheap,
        (None, Some(_)) => dear,
        (Some(c_ms), Some(d_ms)) if d_ms < c_ms => dear,
        (Some(_), Some(_)) => cheap,
    };
    if views[sooner.index()].free() { Route::Send(sooner) } else { Route::Full }
}

/// The end is unknown: the least expected cost, holding for the cheaper processor while it is
/// unusable for at most the time the fee difference pays for.
fn choose_by_cost(views: [View; 2], cheap: Processor, load: Load, horizon_ms: u64) -> Route {
    let dear = cheap.other();
    let (c, d) = (views[cheap.index()], views[dear.index()]);
    let dear_works = d.usable && !d.failing;
    if !c.usable && dear_works && load.room_to_hold && load.held_ms < hold_max_ms(c, d, horizon_ms)
    {
        return Route::Hold;
    }
    let cost = |view: View| -> Option<u128> {
        view.usable.then(|| {
            // Everything in parts per million of the amount, scaled by the horizon so that
            // the arithmetic stays in integers: cost × H = fee × H + landing time (× 10^6).
            let fee = u128::from(view.fee_ppm).saturating_mul(u128::from(horizon_ms.max(1)));
            fee.saturating_add(u128::from(view.landing_ms(load.waiting)) * 1_000_000)
        })
    };
    let best = match (cost(views[0]), cost(views[1])) {
        (Some(default), Some(fallback)) if fallback < default => Processor::Fallback,
        (Some(_), _) => Processor::Default,
        (None, Some(_)) => Processor::Fallback,
        (None, None) => return Route::Wait,
    };
    if views[best.index()].free() {
        Route::Send(best)
    } else if views[best.other().index()].free() {
        Route::Send(best.other())
    } else {
        Route::Full
    }
}

/// The longest a payment is held for `cheap` with the end unknown: `H × Δfee / (1 − fee(dear))`.
fn hold_max_ms(cheap: View, dear: View, horizon_ms: u64) -> u64 {
    let saving_ppm = u128::from(dear.fee_ppm.saturating_sub(cheap.fee_ppm));
    let left_ppm = 1_000_000u128.saturating_sub(u128::from(dear.fee_ppm)).max(1);
    let ms = u128::from(horizon_ms).saturating_mul(saving_ppm) / left_ppm;
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINAL_FEES: (u64, u64) = (70_000, 100_000);
    const DOC_FEES: (u64, u64) = (50_000, 150_000);
    /// An unknown end, nothing held, nothing waiting.
    const LOAD: Load = Load {
        waiting: 0,
        backlog: 0,
        arrivals_per_s: 0,
        held_ms: 0,
        room_to_hold: true,
        end: End::Unknown { horizon_ms: 100_000 },
    };

    fn views(fees: (u64, u64), default: Option<u64>, fallback: Option<u64>) -> [View; 2] {
        let view = |fee_ppm, delay: Option<u64>| View {
            usable: delay.is_some(),
            failing: delay.is_none(),
            inflight: 0,
            inflight_max: 384,
            delay_ms: delay.unwrap_or(0),
            fee_ppm,
            per_s_max: 10_000,
        };
        [view(fees.0, default), view(fees.1, fallback)]
    }

    fn known(left_ms: u64, backlog: usize) -> Load {
        Load { backlog, end: End::Known { left_ms }, ..LOAD }
    }

    /// `p`'s breaker is open and its probe due.
    fn probe_due(mut v: [View; 2], p: Processor) -> [View; 2] {
        v[p.index()].usable = true;
        v[p.index()].failing = true;
        v
    }

    fn full(mut v: [View; 2], p: Processor) -> [View; 2] {
        v[p.index()].inflight = v[p.index()].inflight_max;
        v
    }

    /// Goal: with the end unknown, the decision table over fees, delays, failures, waiting
    /// tasks and time held, row by row.
    #[test]
    fn decision_table_end_unknown() {
        use Processor::{Default as D, Fallback as F};
        let send = Route::Send;
        let deep = Load { waiting: 384, ..LOAD };
        let held = |held_ms| Load { held_ms, ..LOAD };
        #[rustfmt::skip]
        let table: &[([View; 2], Load, Route)] = &[
            // Both healthy and fast: the cheaper one.
            (views(FINAL_FEES, Some(0), Some(0)), LOAD, send(D)),
            (views(DOC_FEES, Some(100), Some(0)), LOAD, send(D)),
            // The default slower than the fee difference is worth: 3% of H = 3 s.
            (views(FINAL_FEES, Some(2000), Some(0)), LOAD, send(D)),
            (views(FINAL_FEES, Some(5000), Some(0)), LOAD, send(F)),
            (views(DOC_FEES, Some(5000), Some(0)), LOAD, send(D)),
            // A full turn of slots waiting ahead doubles the default's landing time.
            (views(FINAL_FEES, Some(2000), Some(0)), deep, send(F)),
            (views(FINAL_FEES, Some(1000), Some(1000)), deep, send(D)),
            // A failing default is held for: 100 s × 3% / 90% = 3.3 s with the final's fees,
            // 100 s × 10% / 85% = 11.8 s with the rules' fees; then the fallback.
            (views(FINAL_FEES, None, Some(0)), LOAD, Route::Hold),
            (views(FINAL_FEES, None, Some(0)), held(3_332), Route::Hold),
            (views(FINAL_FEES, None, Some(0)), held(3_334), send(F)),
            (views(DOC_FEES, None, Some(0)), held(11_000), Route::Hold),
            (views(DOC_FEES, None, Some(0)), held(11_800), send(F)),
            // Not with the queue past its holding share, and never for the dearer one.
            (views(FINAL_FEES, None, Some(0)), Load { room_to_hold: false, ..LOAD }, send(F)),
            (views(FINAL_FEES, Some(5000), None), LOAD, send(D)),
            (views(FINAL_FEES, None, None), LOAD, Route::Wait),
            // Equal costs: the default; equal fees: nothing to hold for.
            (views((100_000, 100_000), Some(10), Some(10)), LOAD, send(D)),
            (views((100_000, 100_000), None, Some(10)), LOAD, send(F)),
        ];
        for (i, (views, load, route)) in table.iter().enumerate() {
            assert_eq!(choose(*views, *load), *route, "row {i}: {views:?} {load:?}");
        }
    }

    /// Goal: with the end known, the cheapest processor that lands in time, holding for the
    /// cheaper one while the dearer could still take the backlog in time, row by row.
    #[test]
    fn decision_table_end_known() {
        use Processor::{Default as D, Fallback as F};
        let send = Route::Send;
        #[rustfmt::skip]
        let table: &[([View; 2], Load, Route)] = &[
            // Far from the end any delay lands in time: the cheaper one, however slow.
            (views(FINAL_FEES, Some(5000), Some(0)), known(200_000, 0), send(D)),
            (views(DOC_FEES, Some(5000), Some(0)), known(200_000, 0), send(D)),
            // A failing default is held for while the fallback could take the backlog in time:
            // 10,000 payments at 10,000 a second (the most this core sends), one delay, 2 s of
            // margin.
            (views(FINAL_FEES, None, Some(20)), known(60_000, 10_000), Route::Hold),
            (views(FINAL_FEES, None, Some(20)), known(3_000, 10_000), send(F)),
            // Not when the fallback could not keep up with the arrivals: 384 slots at 2 s take
            // 192 a second.
            (views(FINAL_FEES, None, Some(2000)), known(60_000, 0), Route::Hold),
            (views(FINAL_FEES, None, Some(2000)), Load { arrivals_per_s: 192, ..known(60_000, 0) }, send(F)),
            (views(FINAL_FEES, None, Some(0)), known(2_500, 1), Route::Hold),
            (views(FINAL_FEES, None, Some(0)), known(2_000, 1), send(F)),
            // Not with the queue past its holding share.
            (views(FINAL_FEES, None, Some(0)), Load { room_to_hold: false, ..known(60_000, 1) }, send(F)),
            // Near the end, a slow default is not waited for.
            (views(FINAL_FEES, Some(2500), Some(0)), known(3_600, 0), send(D)),
            (views(FINAL_FEES, Some(2500), Some(0)), known(3_400, 0), send(F)),
            // Nothing lands in time: the sooner one; nothing usable: wait.
            (views(FINAL_FEES, Some(2500), None), known(2_000, 0), send(D)),
            (views(FINAL_FEES, Some(2500), Some(1000)), known(1_500, 0), send(F)),
            // The sooner one full: a free slot frees within a turn (1,950 ms / 384), so it is
            // waited for; with 200 tasks waiting ahead, the other, free, lands sooner.
            (full(views(DOC_FEES, Some(2050), Some(1950)), F), known(1_500, 0), Route::Full),
            (full(views(DOC_FEES, Some(2050), Some(1950)), F), Load { waiting: 200, ..known(1_500, 0) }, send(D)),
            (views(FINAL_FEES, None, None), known(60_000, 0), Route::Wait),
            // The dearer one failing too: nobody to release to, so nothing is held either; its
            // probe, when due, is sent (and the cheaper one's, when due, before it).
            (views(DOC_FEES, None, None), known(60_000, 0), Route::Wait),
            (probe_due(views(DOC_FEES, None, None), F), known(60_000, 0), send(F)),
            (probe_due(probe_due(views(DOC_FEES, None, None), F), D), known(60_000, 0), send(D)),
        ];
        for (i, (views, load, route)) in table.iter().enumerate() {
            assert_eq!(choose(*views, *load), *route, "row {i}: {views:?} {load:?}");
        }
    }

    /// Goal: a full processor overflows to the other when that one is usable and has room,
    /// and the payment waits for a slot otherwise; with the end known, a full cheaper one is
    /// waited for while the dearer could still take the backlog in time.
    #[test]
    fn capacity_overflow() {
        use Processor::{Default as D, Fallback as F};
        let healthy = views(FINAL_FEES, Some(1000), Some(1000));
        assert_eq!(choose(full(healthy, D), LOAD), Route::Send(F));
        assert_eq!(choose(full(full(healthy, D), F), LOAD), Route::Full);
        let fallback_down = views(FINAL_FEES, Some(1000), None);
        assert_eq!(choose(full(fallback_down, D), LOAD), Route::Full);
        let slow_default = views(FINAL_FEES, Some(5000), Some(0));
        assert_eq!(choose(full(slow_default, F), LOAD), Route::Send(D));
        assert_eq!(choose(full(healthy, D), known(60_000, 1_000)), Route::Full);
        assert_eq!(choose(full(healthy, D), known(5_000, 1_000)), Route::Send(F));
    }

    /// Goal: the release estimate drains the backlog at what the processor takes beyond the
    /// arrivals (its slots' turns, at most the most this core sends there a second), then waits
    /// one delay; never when the arrivals alone fill it.
    #[test]
    fn release_estimate() {
        let fast = views(FINAL_FEES, Some(0), Some(20))[1];
        assert_eq!(release_ms(fast, 0, 0), 20);
        assert_eq!(release_ms(fast, 10_000, 0), 1_000 + 20, "10,000 a second: its most");
        let slow = views(FINAL_FEES, Some(0), Some(2_000))[1];
        assert_eq!(release_ms(slow, 1_920, 0), 10_000 + 2_000, "384 slots every 2 s");
        assert_eq!(release_ms(slow, 1_920, 96), 20_000 + 2_000, "half of it for arrivals");
        assert_eq!(release_ms(slow, 0, 192), u64::MAX, "all of it for arrivals");
        // Two instances of one core each share a processor that stores 2,000 a second.
        let shared = View { per_s_max: 1_000, ..fast };
        assert_eq!(release_ms(shared, 10_000, 0), 10_000 + 20, "its share, not the CPU's pace");
        assert_eq!(release_ms(shared, 10_000, 500), 20_000 + 20);
    }

    /// Goal: the lead of `requestedAt` is the planned delay, raised to the floor far from a
    /// known end, shrinking to what keeps `requestedAt` a margin before the end as it nears,
    /// the delay's part too; with the end unknown, the delay or the floor as given. Method: the
    /// function at chosen instants of a 4 s floor (and of none, with the end unknown).
    #[test]
    fn lead_floor_near_the_end() {
        let floor = 4_000;
        let known = |left_ms| End::Known { left_ms };
        let table: &[(u64, End, u64)] = &[
            // Far from the end: the floor, or the delay when it is longer.
            (0, known(200_000), 4_000),
            (2_500, known(200_000), 4_000),
            (4_500, known(200_000), 4_500),
            // Near it, no further than a margin before it.
            (0, known(5_000), 4_000),
            (0, known(3_500), 2_500),
            (0, known(1_000), 0),
            (0, known(0), 0),
            // A delay longer than what is left is capped as well: were it a guess (an overdue
            // processor's 5 s) and the payment landed at once, a `requestedAt` past the end
            // would keep it out of the final count.
            (2_000, known(2_500), 1_500),
            (5_000, known(3_000), 2_000),
            (5_000, known(200_000), 5_000),
            // The end unknown: the floor as given.
            (0, End::Unknown { horizon_ms: 100_000 }, 4_000),
            (4_500, End::Unknown { horizon_ms: 100_000 }, 4_500),
        ];
        for (delay_ms, end, lead) in table {
            assert_eq!(lead_ms(*delay_ms, *end, floor), *lead, "{delay_ms} {end:?}");
        }
        assert_eq!(lead_ms(2_500, End::Unknown { horizon_ms: 100_000 }, 0), 2_500);
        for left_ms in (0..10_000).step_by(250) {
            for delay_ms in [0, 2_500, 5_000] {
                let lead = lead_ms(delay_ms, known(left_ms), floor);
                assert!(lead <= floor.max(delay_ms));
                assert!(lead + END_MARGIN_MS <= left_ms.max(END_MARGIN_MS));
            }
        }
    }

    /// Goal: past the configured end the end is unknown again: routing weighs fees against the
    /// lag risk (the cheaper processor while it is fast), where with the end "known" and passed
    /// it sent everything to the faster one whatever its fee, until the next purge. Method: a
    /// test clock of a 5 s test, read 4 s and 10 s after its start; the decision for a default
    /// at 100 ms and a fallback at 0 ms past the end, and with the end taken as just passed.
    #[test]
    fn past_the_configured_end_the_end_is_unknown() {
        let config =
            Config::from_lookup(|name| (name == "TEST_DURATION_MS").then(|| "5000".into()))
                .expect("a valid configuration");
        let clock = TestClock::default();
        let started_ms = 1_752_582_896_000;
        clock.start(started_ms);
        assert_eq!(clock.end(started_ms + 4_000, &config), End::Known { left_ms: 1_000 });
        let past = clock.end(started_ms + 10_000, &config);
        assert_eq!(past, End::Unknown { horizon_ms: config.lag_horizon_ms });
        let views = views(FINAL_FEES, Some(100), Some(0));
        assert_eq!(choose(views, Load { end: past, ..LOAD }), Route::Send(Processor::Default));
        let as_if_known = Load { end: End::Known { left_ms: 0 }, ..LOAD };
        assert_eq!(choose(views, as_if_known), Route::Send(Processor::Fallback), "the old way");
    }

    /// Goal: a held backlog is released when the dearer processor could not store it in time at
    /// the most this core sends there a second (its share of what the processor stores, its
    /// pace), not at a fixed 10,000 a second, which counted neither the processor's limit nor
    /// the other cores sending to it. Method: a failing default, 60,000 payments held with 60 s
    /// left: at 10,000 a second (6 s) it would still be held; at 1,000 a second (60 s) it goes to
    /// the fallback.
    #[test]
    fn a_shared_processor_is_released_to_sooner() {
        let cpu_paced = views(FINAL_FEES, None, Some(20));
        let load = known(60_000, 60_000);
        assert_eq!(choose(cpu_paced, load), Route::Hold);
        let mut shared = cpu_paced;
        shared[1].per_s_max = 1_000;
        assert_eq!(choose(shared, load), Route::Send(Processor::Fallback));
    }

    /// Goal: no input overflows or divides by zero (the values come from config and peers).
    #[test]
    fn extremes_do_not_overflow() {
        let extreme = View {
            usable: true,
            failing: false,
            inflight: 0,
            inflight_max: 0,
            delay_ms: u64::MAX,
            fee_ppm: u64::MAX,
            per_s_max: 10_000,
        };
        let load = Load { waiting: usize::MAX, backlog: usize::MAX, held_ms: u64::MAX, ..LOAD };
        assert_eq!(choose([extreme, extreme], load), Route::Full);
        let load = Load { end: End::Known { left_ms: u64::MAX }, ..load };
        assert_eq!(choose([extreme, extreme], load), Route::Full);
        let broke = View { usable: false, failing: true, ..extreme };
        assert_eq!(hold_max_ms(broke, extreme, u64::MAX), 0);
        assert_eq!(choose([broke, extreme], Load { held_ms: 0, ..load }), Route::Full);
    }
}
