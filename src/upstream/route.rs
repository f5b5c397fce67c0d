//! Route: per payment, default, fallback or wait — one pure function ([`choose`]) over what the
//! core knows, and the one place that gathers it ([`decide`]: each upstream's planned delay,
//! breaker and slots; the queue; the time left in the test, [`TestClock`]).
//!
//! The cost of sending a payment to processor P is its fee plus the chance that the payment
//! is not yet stored when the test ends (then it earns nothing: "lag"). That chance grows with
//! how long the payment takes to land: the processor's delay, plus the wait for a forwarding
//! slot when the queue is longer than the slots can turn over. With `H` the expected time left
//! in the test for a payment arriving now (`LAG_HORIZON_MS`, or the time really left when
//! `TEST_DURATION_MS` is known), for a usable processor:
//!
//! ```text
//! cost(P) = fee(P) + (delay(P) + queue_len × delay(P) / slots(P)) / H
//! ```
//!
//! where `slots(P)` is how many requests this core may keep in flight at P
//! (`PROCESSOR_INFLIGHT_MAX`: a processor serves 800 at once for everyone). A processor whose
//! breaker is open (failing, or refusing) is not usable. The cheaper usable one wins; ties go
//! to the default. If the winner has no free slot, the other takes the payment when it is usable
//! and has one; otherwise the payment waits for a slot to be freed ([`Route::Full`]). When
//! neither is usable the payment waits in the queue:
//! nothing is lost while a processor may recover, and sending to a failing processor only
//! costs its delay and a 500. Waiting for a failing default while the fallback works is not
//! done: an outage's end is unknowable, and a payment still queued when the test ends loses
//! its whole amount, against a fee difference of a few percent.

use std::{cell::Cell, time::Instant};

use super::Upstream;
use crate::{config::Config, ledger::Processor};

/// Smallest horizon routing uses near the end of a test: the test's own end is only known to
/// within a second or so (the harness's teardown lags its last request).
const HORIZON_FLOOR_MS: u64 = 1_000;

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

    /// Time left in the test for routing's lag risk: `TEST_DURATION_MS` after the start,
    /// within [`HORIZON_FLOOR_MS`, `LAG_HORIZON_MS`]; just `LAG_HORIZON_MS` when unknown.
    /// `now_ms` is the caller's wall-clock reading (the hot path reads the clock once).
    pub fn horizon_ms(&self, now_ms: i64, config: &Config) -> u64 {
        match self.started_ms.get() {
            Some(started_ms) if config.test_duration_ms > 0 => {
                let end_ms = started_ms.saturating_add(config.test_duration_ms as i64);
                let left_ms = end_ms.saturating_sub(now_ms).max(0) as u64;
                left_ms.clamp(HORIZON_FLOOR_MS, config.lag_horizon_ms.max(HORIZON_FLOOR_MS))
            }
            _ => config.lag_horizon_ms,
        }
    }
}

/// Where a payment would go now: each upstream as a [`View`] (its planned delay, its slots,
/// `usable` for its breaker), and the core's load. Takes no probe (see `dispatch`).
pub fn decide(
    upstreams: &[Upstream; 2],
    config: &Config,
    load: Load,
    now: Instant,
    usable: impl Fn(&Upstream) -> bool,
) -> Route {
    let fees = [config.fee_default_ppm, config.fee_fallback_ppm];
    let views = upstreams.each_ref().map(|upstream| View {
        usable: usable(upstream),
        inflight: upstream.inflight().len(),
        inflight_max: config.processor_inflight_max,
        delay_ms: upstream.planned_delay_ms(now, config),
        fee_ppm: fees[upstream.processor().index()],
    });
    choose(views, load)
}

/// What the router knows about one processor, as seen from one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// The breaker lets requests through.
    pub usable: bool,
    /// Requests this core has in flight there.
    pub inflight: usize,
    /// Requests this core may have in flight there (`PROCESSOR_INFLIGHT_MAX`).
    pub inflight_max: usize,
    /// Current delay estimate (health's `minResponseTime`, or observed), ms.
    pub delay_ms: u64,
    /// Fee in parts per million of the amount (5% = 50_000).
    pub fee_ppm: u64,
}

/// The core's dispatch state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Payments waiting for a slot on this core.
    pub queue_len: usize,
    /// Time left in the test ([`TestClock::horizon_ms`]).
    pub horizon_ms: u64,
}

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Send to this processor now.
    Send(Processor),
    /// Keep the payment until a processor is usable.
    Wait,
    /// The processor to use has no free slot, and the other cannot take it: retry shortly.
    Full,
}

impl Route {
    /// Every decision, in [`Route::index`] order.
    pub const ALL: [Route; 4] = [
        Route::Send(Processor::Default),
        Route::Send(Processor::Fallback),
        Route::Wait,
        Route::Full,
    ];

    /// Its position in [`Route::ALL`].
    pub fn index(self) -> usize {
        match self {
            Route::Send(processor) => processor.index(),
            Route::Wait => 2,
            Route::Full => 3,
        }
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Route::Send(processor) => processor.name(),
            Route::Wait => "wait",
            Route::Full => "full",
        }
    }
}

/// Chooses where the next payment goes.
pub fn choose(views: [View; 2], load: Load) -> Route {
    let cost = |view: View| -> Option<u128> {
        view.usable.then(|| {
            // Everything in parts per million of the amount, scaled by the horizon so that
            // the arithmetic stays in integers: cost × H = fee × H + landing time (× 10^6).
            let slots = view.inflight_max.max(1) as u128;
            let delay = u128::from(view.delay_ms);
            let landing_ms =
                delay.saturating_add((load.queue_len as u128).saturating_mul(delay) / slots);
            let fee = u128::from(view.fee_ppm).saturating_mul(u128::from(load.horizon_ms.max(1)));
            fee.saturating_add(landing_ms.saturating_mul(1_000_000))
        })
    };
    let best = match (cost(views[0]), cost(views[1])) {
        (Some(default), Some(fallback)) if fallback < default => Processor::Fallback,
        (Some(_), _) => Processor::Default,
        (None, Some(_)) => Processor::Fallback,
        (None, None) => return Route::Wait,
    };
    let free = |p: Processor| {
        let view = views[p.index()];
        view.usable && view.inflight < view.inflight_max
    };
    if free(best) {
        Route::Send(best)
    } else if free(best.other()) {
        Route::Send(best.other())
    } else {
        Route::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINAL_FEES: (u64, u64) = (70_000, 100_000);
    const DOC_FEES: (u64, u64) = (50_000, 150_000);
    const LOAD: Load = Load { queue_len: 0, horizon_ms: 100_000 };

    fn views(fees: (u64, u64), default: Option<u64>, fallback: Option<u64>) -> [View; 2] {
        let view = |fee_ppm, delay: Option<u64>| View {
            usable: delay.is_some(),
            inflight: 0,
            inflight_max: 384,
            delay_ms: delay.unwrap_or(0),
            fee_ppm,
        };
        [view(fees.0, default), view(fees.1, fallback)]
    }

    /// Goal: the decision table over fees, delays, failures and queue length, row by row.
    #[test]
    fn decision_table() {
        use Processor::{Default as D, Fallback as F};
        let send = Route::Send;
        let deep = Load { queue_len: 384, ..LOAD };
        #[rustfmt::skip]
        let table: &[([View; 2], Load, Route)] = &[
            // Both healthy and fast: the cheaper one.
            (views(FINAL_FEES, Some(0), Some(0)), LOAD, send(D)),
            (views(DOC_FEES, Some(100), Some(0)), LOAD, send(D)),
            // The default slower than the fee difference is worth: 3% of H = 3 s.
            (views(FINAL_FEES, Some(2000), Some(0)), LOAD, send(D)),
            (views(FINAL_FEES, Some(5000), Some(0)), LOAD, send(F)),
            (views(DOC_FEES, Some(5000), Some(0)), LOAD, send(D)),
            // A queue longer than the slots doubles the default's landing time.
            (views(FINAL_FEES, Some(2000), Some(0)), deep, send(F)),
            (views(FINAL_FEES, Some(1000), Some(1000)), deep, send(D)),
            // Failures.
            (views(FINAL_FEES, None, Some(5000)), LOAD, send(F)),
            (views(FINAL_FEES, Some(5000), None), LOAD, send(D)),
            (views(FINAL_FEES, None, None), LOAD, Route::Wait),
            // Near the end of a known test (30 s left) a 2 s delay is worth more than 3%.
            (views(FINAL_FEES, Some(2000), Some(0)), Load { horizon_ms: 30_000, ..LOAD }, send(F)),
            (views(FINAL_FEES, Some(100), Some(0)), Load { horizon_ms: 30_000, ..LOAD }, send(D)),
            // Equal costs: the default.
            (views((100_000, 100_000), Some(10), Some(10)), LOAD, send(D)),
        ];
        for (i, (views, load, route)) in table.iter().enumerate() {
            assert_eq!(choose(*views, *load), *route, "row {i}: {views:?} {load:?}");
        }
    }

    /// Goal: a full processor overflows to the other when that one is usable and has room,
    /// and the payment waits for a slot otherwise.
    #[test]
    fn capacity_overflow() {
        let full = |mut v: [View; 2], i: usize| {
            v[i].inflight = v[i].inflight_max;
            v
        };
        let healthy = views(FINAL_FEES, Some(1000), Some(1000));
        assert_eq!(choose(full(healthy, 0), LOAD), Route::Send(Processor::Fallback));
        assert_eq!(choose(full(full(healthy, 0), 1), LOAD), Route::Full);
        let fallback_down = views(FINAL_FEES, Some(1000), None);
        assert_eq!(choose(full(fallback_down, 0), LOAD), Route::Full);
        let slow_default = views(FINAL_FEES, Some(5000), Some(0));
        assert_eq!(choose(full(slow_default, 1), LOAD), Route::Send(Processor::Default));
    }

    /// Goal: no input overflows or divides by zero (the values come from config and peers).
    #[test]
    fn extremes_do_not_overflow() {
        let extreme = View {
            usable: true,
            inflight: 0,
            inflight_max: 0,
            delay_ms: u64::MAX,
            fee_ppm: u64::MAX,
        };
        let load = Load { queue_len: usize::MAX, horizon_ms: 0 };
        assert_eq!(choose([extreme, extreme], load), Route::Full);
    }
}
