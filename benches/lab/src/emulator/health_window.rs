//! The health endpoint's rate limiter, apart from the processor that owns one: pure bookkeeping
//! over the instants it is given, so its rules are tested without a clock or a socket.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Health calls that may wait for later windows; beyond this, 429.
const HEALTH_QUEUED_MAX: u64 = 2;

/// The health endpoint's rate limiter, as ASP.NET Core's `FixedWindowRateLimiter` with
/// `PermitLimit = 1`, `QueueLimit = 2`, `OldestFirst`: one call per window for every caller
/// together; up to [`HEALTH_QUEUED_MAX`] calls wait, in order, for the permits of the next
/// windows; beyond that, `429`. A waiting call whose client gives up leaves the queue (the
/// middleware waits with the request's abort token), so it holds no later window.
#[derive(Debug)]
pub(super) struct HealthWindow {
    origin: Instant,
    window: Duration,
    /// The window whose permit was last taken.
    taken: Option<u64>,
    /// Waiting calls, oldest first.
    queue: VecDeque<u64>,
    next_id: u64,
}

/// What a call to the health endpoint gets from [`HealthWindow::arrive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HealthTurn {
    /// This window's permit.
    Now,
    /// A place in the queue.
    Queued(u64),
    /// `429`.
    Refused,
}

impl HealthWindow {
    pub(super) fn new(window: Duration) -> HealthWindow {
        HealthWindow {
            origin: Instant::now(),
            window,
            taken: None,
            queue: VecDeque::new(),
            next_id: 0,
        }
    }

    fn index(&self, at: Instant) -> u64 {
        let window_ns = self.window.as_nanos().max(1);
        (at.saturating_duration_since(self.origin).as_nanos() / window_ns) as u64
    }

    /// The start of the window after the one `at` is in.
    pub(super) fn next_window(&self, at: Instant) -> Instant {
        let next = u128::from(self.index(at) + 1) * self.window.as_nanos();
        self.origin + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
    }

    /// A call arrives.
    pub(super) fn arrive(&mut self, now: Instant) -> HealthTurn {
        let current = self.index(now);
        if self.queue.is_empty() && self.taken != Some(current) {
            self.taken = Some(current);
            return HealthTurn::Now;
        }
        if self.queue.len() as u64 >= HEALTH_QUEUED_MAX {
            return HealthTurn::Refused;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(id);
        HealthTurn::Queued(id)
    }

    /// Whether waiting call `id` gets a permit now: it is the oldest, and this window's permit
    /// is free.
    pub(super) fn take_turn(&mut self, id: u64, now: Instant) -> bool {
        let current = self.index(now);
        if self.queue.front() == Some(&id) && self.taken != Some(current) {
            self.queue.pop_front();
            self.taken = Some(current);
            return true;
        }
        false
    }

    /// Waiting call `id` gave up.
    /// Calls waiting in the queue.
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn leave(&mut self, id: u64) {
        self.queue.retain(|&waiting| waiting != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the health limiter lets one call through per window, queues two for the next
    /// windows in order, refuses the rest, and a queued call that leaves frees its place and its
    /// window for the one behind it. Method: drive the limiter with synthetic instants.
    #[test]
    fn health_window_queues_two_and_forgets_who_leaves() {
        let window = Duration::from_secs(5);
        let mut health = HealthWindow::new(window);
        let origin = health.origin;
        assert_eq!(health.arrive(origin), HealthTurn::Now);
        assert_eq!(health.arrive(origin), HealthTurn::Queued(0));
        assert_eq!(health.arrive(origin), HealthTurn::Queued(1));
        assert_eq!(health.arrive(origin), HealthTurn::Refused);
        assert!(!health.take_turn(0, origin), "this window's permit is gone");
        let second = origin + window;
        assert!(!health.take_turn(1, second), "not the oldest");
        assert!(health.take_turn(0, second));
        assert!(!health.take_turn(1, second), "one permit per window");
        health.leave(1);
        assert_eq!(health.arrive(second), HealthTurn::Queued(2), "the leaver's place is free");
        assert!(health.take_turn(2, origin + 2 * window), "and its window");
        let idle = origin + 10 * window;
        assert_eq!(health.arrive(idle), HealthTurn::Now);
        assert_eq!(health.next_window(idle), origin + 11 * window);
    }
}
