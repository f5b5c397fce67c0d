//! Pace: how fast one core starts forwards, so that a released backlog (thousands of payments
//! held for a processor that has just come back) goes out over seconds rather than in one burst
//! that takes the core's whole CPU quota and stalls its answers to `POST /payments`. A generic
//! cell rate algorithm (GCRA): each send reserves the next turn, spaced by the interval once a
//! burst is used, and a task whose turn is ahead sleeps until then, on a timer of its own; in
//! steady state at the contest's rates no turn is ever ahead.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

/// Sends that may start at once before the pace spaces them: a burst of arrivals at a quiet
/// core goes out unspaced.
pub const PACE_BURST: u32 = 64;

/// One core's pace.
#[derive(Debug)]
pub struct Pace {
    /// Time between two sends once the burst is used: one second over `FORWARDS_PER_S_MAX`.
    interval: Duration,
    /// The theoretical arrival time of the next send: sends are on pace while they come no
    /// sooner than this less the burst.
    next: Cell<Instant>,
}

impl Pace {
    /// A pace of `per_s` sends a second (at least one).
    pub fn new(per_s: u64) -> Pace {
        let interval = Duration::from_nanos(1_000_000_000 / per_s.max(1));
        Pace { interval, next: Cell::new(Instant::now()) }
    }

    /// Takes a turn at `now` if one is free now; reserves nothing otherwise.
    pub fn try_take(&self, now: Instant) -> bool {
        let burst = self.interval * (PACE_BURST - 1);
        let next = self.next.get();
        let free = next.checked_sub(burst).is_none_or(|earliest| now >= earliest);
        if free {
            self.next.set(next.max(now) + self.interval);
        }
        free
    }

    /// Reserves a send decided at `now`, and returns when it may go: `now`, or a later turn.
    pub fn reserve(&self, now: Instant) -> Instant {
        let burst = self.interval * (PACE_BURST - 1);
        let next = self.next.get();
        let turn = now.max(next.checked_sub(burst).unwrap_or(now));
        self.next.set(next.max(now) + self.interval);
        turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: sends go at once up to the burst, then one per interval; a pause earns the burst
    /// back; turns are handed out in order, never two at one instant past the burst. Method:
    /// reservations at synthetic instants, 1,000 sends a second.
    #[test]
    fn a_burst_then_one_per_interval() {
        let t0 = Instant::now();
        let pace = Pace { interval: Duration::from_millis(1), next: Cell::new(t0) };
        for _ in 0..PACE_BURST {
            assert_eq!(pace.reserve(t0), t0, "the burst goes at once");
        }
        let turns: Vec<Instant> = (0..3).map(|_| pace.reserve(t0)).collect();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(turns, [ms(1), ms(2), ms(3)], "then one a millisecond, in order");
        let later = ms(1_000);
        assert_eq!(pace.reserve(later), later, "after a pause, at once again");
        let pace = Pace { interval: Duration::from_millis(1), next: Cell::new(t0) };
        assert_eq!((0..PACE_BURST).filter(|_| pace.try_take(t0)).count(), PACE_BURST as usize);
        assert!(!pace.try_take(t0), "past the burst, no turn now");
        assert!(pace.try_take(ms(1)), "and one a millisecond later");
    }
}
