//! Health: what a core believes about each processor — a breaker fed by its own attempts, and
//! the deployment's single health poll, shared by message.
//!
//! `GET /payments/service-health` allows one call per 5 s per processor for everyone, so the
//! deployment polls each processor from exactly one place: core 0 of one instance. With a peer,
//! the instance whose boot id (`peer::Boot`, exchanged on every peer call) is lower polls the
//! default and the other polls the fallback: both compare the same two numbers, whatever
//! addresses they bind or dial. Each sends what it saw to every local core
//! (`cores::CoreMsg::Health`) and to the peer (`POST /internal/health`, carrying its
//! boot), which does the same for its cores. Until the peer's boot is known (at start, before
//! the first exchange) an instance polls both. An instance that hears nothing from the peer
//! about a processor for [`TAKEOVER_AFTER_POLLS`] intervals ([`PeerNews`]; its own polls do not
//! count) polls it itself, every interval, until the peer's reports resume: a dead or
//! restarting peer costs at most a few seconds of stale health, and an overlap costs one `429`.
//!
//! Between polls each core's breaker reacts to what its own attempts see, with hysteresis:
//! it opens after `BREAKER_FAILURES_TO_OPEN` refusals in a row (or when the poll says
//! `failing`), lets one probe through every `BREAKER_PROBE_INTERVAL_MS` while open, and closes
//! after `CLOSE_AFTER_SUCCESSES` stored payments in a row.

use std::{
    cell::Cell,
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::{http, ledger::Processor};

/// Stored payments in a row that close an open breaker. Two, so one lucky probe during
/// flapping does not send the whole queue into a processor that fails again at once.
const CLOSE_AFTER_SUCCESSES: u32 = 2;

/// Polling intervals without news from the peer after which an instance polls a processor
/// itself. Three: one lost report is noise, three is a peer that is gone.
pub const TAKEOVER_AFTER_POLLS: u32 = 3;

/// Deadline of one health call. The endpoint answers at once unless our call was queued
/// behind another caller's, which only happens during a takeover overlap.
const HEALTH_CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// A health report: the processor's own view, from its `service-health` endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Which processor.
    pub processor: Processor,
    /// Its failure switch.
    pub failing: bool,
    /// Its configured delay (`minResponseTime`), ms.
    pub delay_ms: u64,
}

/// One core's knowledge of one processor. Owned by the core; updated by its own attempts and
/// by health reports.
#[derive(Debug)]
pub struct ProcessorHealth {
    /// Breaker open: the processor is presumed to refuse.
    open: Cell<bool>,
    /// Refusals in a row while closed.
    failures_in_row: Cell<u32>,
    /// Stored payments in a row while open.
    successes_in_row: Cell<u32>,
    /// While open: when the next probe may go.
    next_probe_at: Cell<Instant>,
    /// The newest delay news, ms: a health report's `minResponseTime`, or the latency of an
    /// answered attempt (the delay plus a little), whichever came last; `None` until the first
    /// (a fresh life knows nothing of the delay, and plans pessimistically until it does).
    delay_ms: Cell<Option<u64>>,
    /// Failures in a row that open the breaker.
    open_after_failures: u32,
    /// Pause between probes while open.
    probe_interval: Duration,
}

impl ProcessorHealth {
    /// A closed breaker with no delay known.
    pub fn new(open_after_failures: u32, probe_interval: Duration) -> ProcessorHealth {
        ProcessorHealth {
            open: Cell::new(false),
            failures_in_row: Cell::new(0),
            successes_in_row: Cell::new(0),
            next_probe_at: Cell::new(Instant::now()),
            delay_ms: Cell::new(None),
            open_after_failures: open_after_failures.max(1),
            probe_interval,
        }
    }

    /// Whether a payment may be sent now. While open, one probe per interval: asking
    /// reserves the probe, so only one payment is routed as a probe.
    pub fn usable(&self, now: Instant) -> bool {
        if !self.open.get() {
            return true;
        }
        if now >= self.next_probe_at.get() {
            self.next_probe_at.set(now + self.probe_interval);
            return true;
        }
        false
    }

    /// Whether [`Self::usable`] would say yes at `now`, without reserving the probe (metrics).
    pub fn would_allow(&self, now: Instant) -> bool {
        !self.open.get() || now >= self.next_probe_at.get()
    }

    /// Whether the breaker is open (for metrics and tests; routing uses [`Self::usable`]).
    pub fn is_open(&self) -> bool {
        self.open.get()
    }

    /// The newest news of the delay, `None` before any. After a rise, the poll is the first to
    /// tell (answers at the new delay come back only after it); after a fall, answers come
    /// back at once. Erring high is safe for consistency (see `dispatch`) but a stale high
    /// value would push `requestedAt` past the end of the test, so the newest wins.
    pub fn delay_ms(&self) -> Option<u64> {
        self.delay_ms.get()
    }

    /// An attempt got an answer after `latency`, which tracks the processor's delay.
    pub fn observe_latency(&self, latency: Duration) {
        self.delay_ms.set(Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)));
    }

    /// A payment was stored there.
    pub fn record_success(&self) {
        self.failures_in_row.set(0);
        if self.open.get() {
            let successes = self.successes_in_row.get() + 1;
            self.successes_in_row.set(successes);
            if successes >= CLOSE_AFTER_SUCCESSES {
                self.open.set(false);
                self.successes_in_row.set(0);
            } else {
                // Confirm at once rather than after a full probe interval.
                self.next_probe_at.set(Instant::now());
            }
        }
    }

    /// An attempt was refused (429, 5xx, no connection) or timed out.
    pub fn record_failure(&self, now: Instant) {
        self.successes_in_row.set(0);
        if self.open.get() {
            self.next_probe_at.set(now + self.probe_interval);
            return;
        }
        let failures = self.failures_in_row.get() + 1;
        self.failures_in_row.set(failures);
        if failures >= self.open_after_failures {
            self.trip(now);
        }
    }

    /// A health report arrived.
    pub fn apply(&self, report: Report, now: Instant) {
        self.delay_ms.set(Some(report.delay_ms));
        if report.failing {
            if !self.open.get() {
                self.trip(now);
            }
        } else if self.open.get() {
            // The processor says it works again: probe now instead of at the next tick.
            self.next_probe_at.set(now);
        }
    }

    fn trip(&self, now: Instant) {
        self.open.set(true);
        self.failures_in_row.set(0);
        self.successes_in_row.set(0);
        self.next_probe_at.set(now + self.probe_interval);
    }
}

/// Which processors this instance polls: `peer_boot` is the peer's boot id once known, `None`
/// before (or without a peer, `has_peer` false).
pub fn polled_here(has_peer: bool, own_boot: u64, peer_boot: Option<u64>) -> [bool; 2] {
    match peer_boot {
        Some(peer_boot) if has_peer && own_boot < peer_boot => [true, false],
        Some(peer_boot) if has_peer && own_boot > peer_boot => [false, true],
        // Alone, or no boot to compare yet (or, impossibly, the same one): poll both.
        _ => [true, true],
    }
}

/// When the peer last reported on each processor. Kept apart from this instance's own polls,
/// which must not hide the peer's silence. Lives on core 0, with the peer link and the poller.
#[derive(Debug)]
pub struct PeerNews {
    heard_at: [Cell<Instant>; 2],
}

impl PeerNews {
    /// As if both had just been heard of: an instance does not take over at start.
    pub fn new(now: Instant) -> PeerNews {
        PeerNews { heard_at: [Cell::new(now), Cell::new(now)] }
    }

    /// The peer reported on `processor`.
    pub fn heard(&self, processor: Processor, now: Instant) {
        self.heard_at[processor.index()].set(now);
    }

    /// How long the peer has said nothing about `processor`.
    pub fn silent_for(&self, processor: Processor, now: Instant) -> Duration {
        now.saturating_duration_since(self.heard_at[processor.index()].get())
    }
}

#[derive(Deserialize)]
struct HealthJson {
    failing: bool,
    #[serde(rename = "minResponseTime")]
    min_response_time: u64,
}

/// Calls the health endpoint once. `None` when it did not answer usefully (including the
/// `429` of an overlap): no news, not bad news.
pub async fn poll(processor: Processor, addr: SocketAddr, authority: &str) -> Option<Report> {
    let request = format!(
        "GET /payments/service-health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) =
        http::call_once(addr, request.into_bytes(), HEALTH_CALL_TIMEOUT).await.ok()?;
    if status != 200 {
        return None;
    }
    let json: HealthJson = http::json_body(&body)?;
    Some(Report { processor, failing: json.failing, delay_ms: json.min_response_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: Duration = Duration::from_millis(100);

    /// Goal: the breaker opens only after N failures in a row, probes once per interval
    /// while open, and closes only after two stored payments in a row (hysteresis).
    #[test]
    fn breaker_hysteresis() {
        let h = ProcessorHealth::new(3, PROBE);
        let t0 = Instant::now();
        h.record_failure(t0);
        h.record_failure(t0);
        h.record_success();
        h.record_failure(t0);
        h.record_failure(t0);
        assert!(!h.is_open(), "a success in between resets the count");
        h.record_failure(t0);
        assert!(h.is_open());
        assert!(!h.usable(t0), "no probe before the interval");
        assert!(h.usable(t0 + PROBE), "one probe after it");
        assert!(!h.usable(t0 + PROBE), "and only one");
        h.record_success();
        assert!(h.is_open(), "one success is not enough");
        assert!(h.usable(Instant::now()), "the confirming probe may go at once");
        h.record_failure(Instant::now());
        assert!(h.is_open());
        let later = Instant::now() + PROBE;
        assert!(h.usable(later));
        h.record_success();
        h.record_success();
        assert!(!h.is_open() && h.usable(later));
    }

    /// Goal: health reports trip the breaker, schedule an early probe, and set the delay;
    /// the planning delay is the newest of polled and observed.
    #[test]
    fn reports_and_delay() {
        let h = ProcessorHealth::new(3, PROBE);
        let t0 = Instant::now();
        let report =
            |failing, delay_ms| Report { processor: Processor::Default, failing, delay_ms };
        assert_eq!(h.delay_ms(), None, "no news before the first");
        h.apply(report(true, 2000), t0);
        assert!(h.is_open() && !h.usable(t0));
        assert_eq!(h.delay_ms(), Some(2000));
        h.apply(report(false, 100), t0);
        assert!(h.usable(t0), "a healthy report lets a probe go at once");
        h.observe_latency(Duration::from_millis(350));
        assert_eq!(h.delay_ms(), Some(350));
        h.observe_latency(Duration::from_millis(5));
        assert_eq!(h.delay_ms(), Some(5));
        h.apply(report(false, 2000), t0);
        assert_eq!(h.delay_ms(), Some(2000), "a rise is known from the poll first");
    }

    /// Goal: with a peer whose boot is known, each instance polls exactly one processor, and
    /// the two agree whatever their addresses (the old rule compared a bind address with a
    /// dial address: 0.0.0.0 against 127.0.0.1 made both poll the default); before the peer's
    /// boot is known, and alone, both are polled.
    #[test]
    fn polling_is_split() {
        let (a, b) = (7, 9);
        assert_eq!(polled_here(true, a, Some(b)), [true, false]);
        assert_eq!(polled_here(true, b, Some(a)), [false, true]);
        assert_eq!(polled_here(true, a, None), [true, true]);
        assert_eq!(polled_here(false, a, Some(b)), [true, true]);
    }

    /// Goal: the peer's silence is measured from its last report only.
    #[test]
    fn peer_news() {
        let t0 = Instant::now();
        let news = PeerNews::new(t0);
        let later = t0 + Duration::from_secs(15);
        assert_eq!(news.silent_for(Processor::Default, later), Duration::from_secs(15));
        news.heard(Processor::Default, later);
        assert_eq!(news.silent_for(Processor::Default, later), Duration::ZERO);
        assert_eq!(news.silent_for(Processor::Fallback, later), Duration::from_secs(15));
    }
}
