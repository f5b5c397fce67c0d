//! Metrics: what each core counts about itself, and `GET /metrics` in Prometheus text format.
//!
//! The hot path only bumps `Cell`s its own core owns ([`CoreMetrics`]): no atomics, no locks,
//! no allocation. A scrape is a map-reduce like the summary: every core copies its counters
//! and gauges into a plain [`CoreSnapshot`] on a `cores::CoreMsg::Metrics` message,
//! and the core serving the scrape renders them, per core (`core="0"`, ...) and summed
//! (`core="all"`). Sum over `core!="all"`, or read the `all` series, never both.
//!
//! The scrape describes one instance. On the shared port 9999 the kernel picks the instance;
//! the same endpoint on each instance's private `PEER_BIND_ADDR` addresses one on purpose,
//! which is what a Prometheus job should scrape.

use std::{cell::Cell, io::Write};

use crate::{
    http::Status,
    ledger::Processor,
    upstream::{outcome::Outcome, route::Route},
};

/// Upper bounds of the attempt-latency histogram buckets, in microseconds (plus `+Inf`). From a
/// processor at 0 ms on loopback (~0.2 ms) to the longest contest delay (5 s) and the longest
/// attempt deadline (`PROCESSOR_TIMEOUT_MS`, 15 s by default).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_000_000, 5_000_000, 10_000_000, 15_000_000,
];

/// Buckets including `+Inf`.
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Every attempt outcome, in the order of `outcome_index`.
pub const OUTCOMES: [Outcome; 5] =
    [Outcome::Stored, Outcome::Duplicate, Outcome::NotStored, Outcome::Unknown, Outcome::Refused];

/// Position of an outcome in [`OUTCOMES`].
fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Stored => 0,
        Outcome::Duplicate => 1,
        Outcome::NotStored => 2,
        Outcome::Unknown => 3,
        Outcome::Refused => 4,
    }
}

/// The label value of an outcome.
fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Stored => "stored",
        Outcome::Duplicate => "duplicate",
        Outcome::NotStored => "not_stored",
        Outcome::Unknown => "unknown",
        Outcome::Refused => "refused",
    }
}

/// What became of one `POST /payments`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Answered 202 and queued.
    Accepted,
    /// 400: the body is not a JSON object.
    Malformed,
    /// 422: JSON with a missing or invalid field.
    Invalid,
    /// 409: this core already accepted that correlationId.
    Duplicate,
    /// 503: the core's queue is full.
    QueueFull,
    /// 503: the instance is shutting down.
    Draining,
}

impl Intake {
    /// Every intake result, in index order.
    pub const ALL: [Intake; 6] = [
        Intake::Accepted,
        Intake::Malformed,
        Intake::Invalid,
        Intake::Duplicate,
        Intake::QueueFull,
        Intake::Draining,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Intake::Accepted => "accepted",
            Intake::Malformed => "malformed",
            Intake::Invalid => "invalid",
            Intake::Duplicate => "duplicate",
            Intake::QueueFull => "queue_full",
            Intake::Draining => "draining",
        }
    }
}

/// A latency histogram one core owns.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; [`HistogramSnapshot`] accumulates).
    buckets: [Cell<u64>; BUCKETS],
    /// Sum of observations, µs.
    sum_us: Cell<u64>,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, us: u64) {
        // 16 comparisons at most, against a line of cache: cheaper than any search.
        let i = LATENCY_BOUNDS_US.iter().position(|&bound| us <= bound).unwrap_or(BUCKETS - 1);
        bump(&self.buckets[i]);
        self.sum_us.set(self.sum_us.get().saturating_add(us));
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.each_ref().map(Cell::get),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's values, copied out of its core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative).
    pub buckets: [u64; BUCKETS],
    /// Sum of observations, µs.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// Counters one core keeps about itself. Owned by the core, written only by its tasks.
#[derive(Debug, Default)]
pub struct CoreMetrics {
    /// Forwarding attempts per processor and outcome (indexed by `outcome_index`).
    attempts: [[Cell<u64>; OUTCOMES.len()]; 2],
    /// Amount of the payments stored per processor, cents (monotonic: a purge does not reset).
    settled_cents: [Cell<u64>; 2],
    /// Latency of attempts that got an answer, per processor.
    latency: [Histogram; 2],
    /// `POST /payments` results, indexed by [`Intake::index`].
    intake: [Cell<u64>; Intake::ALL.len()],
    /// Responses sent, indexed by [`Status::index`].
    responses: [Cell<u64>; Status::ALL.len()],
}

impl CoreMetrics {
    /// Counts one forwarding attempt; `answered_us` is its latency when the processor answered.
    pub fn attempt(
        &self,
        processor: Processor,
        outcome: Outcome,
        cents: u64,
        answered_us: Option<u64>,
    ) {
        let p = processor.index();
        bump(&self.attempts[p][outcome_index(outcome)]);
        if outcome == Outcome::Stored {
            let settled = &self.settled_cents[p];
            settled.set(settled.get().saturating_add(cents));
        }
        if let Some(us) = answered_us {
            self.latency[p].observe(us);
        }
    }

    /// Counts what became of one `POST /payments`.
    pub fn intake(&self, intake: Intake) {
        bump(&self.intake[intake.index()]);
    }

    /// Counts one response.
    pub fn response(&self, status: Status) {
        bump(&self.responses[status.index()]);
    }
}

/// The state of one core at one instant: plain data, sent across cores by message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Core id within the instance.
    pub core: usize,
    /// Attempts per processor and outcome ([`OUTCOMES`] order).
    pub attempts: [[u64; OUTCOMES.len()]; 2],
    /// Stored amounts per processor, cents.
    pub settled_cents: [u64; 2],
    /// Attempt latency per processor.
    pub latency: [HistogramSnapshot; 2],
    /// `POST /payments` results ([`Intake::ALL`] order).
    pub intake: [u64; Intake::ALL.len()],
    /// Responses per status ([`Status::ALL`] order).
    pub responses: [u64; Status::ALL.len()],
    /// Open connections.
    pub connections_open: u64,
    /// Connections accepted since start (those refused at `CONNECTIONS_MAX` included).
    pub connections_accepted: u64,
    /// Connections closed at accept because `CONNECTIONS_MAX` were open.
    pub connections_refused: u64,
    /// Connections closed for idleness (`CONNECTION_IDLE_TIMEOUT_MS`).
    pub connections_expired: u64,
    /// Payments waiting for a forwarding slot.
    pub queue_len: u64,
    /// Forwarding tasks running (each holds one payment).
    pub forwarding: u64,
    /// Requests in flight per processor.
    pub inflight_at: [u64; 2],
    /// Connections opened to each processor since start.
    pub processor_connects: [u64; 2],
    /// Whether this core's breaker is open, per processor.
    pub breaker_open: [bool; 2],
    /// The delay this core plans with, per processor, ms.
    pub delay_ms: [u64; 2],
    /// Times each processor turned overdue (an attempt late past its planned delay).
    pub overdue: [u64; 2],
    /// Where this core would send a payment now.
    pub route: Option<Route>,
    /// Payments in this core's ledger shard (since the last purge).
    pub ledger_entries: u64,
    /// Correlation ids remembered to refuse duplicates.
    pub ids_remembered: u64,
}

impl CoreMetrics {
    /// Copies the counters into `snapshot` (the caller fills the gauges it owns).
    pub fn fill(&self, snapshot: &mut CoreSnapshot) {
        snapshot.attempts = self.attempts.each_ref().map(|row| row.each_ref().map(Cell::get));
        snapshot.settled_cents = self.settled_cents.each_ref().map(Cell::get);
        snapshot.latency = self.latency.each_ref().map(Histogram::snapshot);
        snapshot.intake = self.intake.each_ref().map(Cell::get);
        snapshot.responses = self.responses.each_ref().map(Cell::get);
    }
}

/// The label value of a routing decision.
fn route_name(route: Route) -> &'static str {
    match route {
        Route::Send(Processor::Default) => "default",
        Route::Send(Processor::Fallback) => "fallback",
        Route::Wait => "wait",
        Route::Full => "full",
    }
}

/// Every routing decision, for one-hot gauges.
const ROUTES: [Route; 4] =
    [Route::Send(Processor::Default), Route::Send(Processor::Fallback), Route::Wait, Route::Full];

/// One metric family being written: its `# HELP`/`# TYPE` header once, then its series. The
/// name is given once, so a series can never stray into another family.
struct Family<'a> {
    out: &'a mut Vec<u8>,
    cores: &'a [CoreSnapshot],
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(
        out: &'a mut Vec<u8>,
        cores: &'a [CoreSnapshot],
        name: &'static str,
        kind: &str,
        help: &str,
    ) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out, cores, name }
    }

    /// A per-core value with `labels` (may be empty), and the instance's total (`core="all"`).
    fn per_core(&mut self, labels: &str, value: impl Fn(&CoreSnapshot) -> u64) -> &mut Self {
        let (name, sep) = (self.name, if labels.is_empty() { "" } else { "," });
        let mut total = 0u64;
        for c in self.cores {
            let v = value(c);
            total = total.saturating_add(v);
            let _ = writeln!(self.out, "{name}{{core=\"{}\"{sep}{labels}}} {v}", c.core);
        }
        let _ = writeln!(self.out, "{name}{{core=\"all\"{sep}{labels}}} {total}");
        self
    }

    /// [`Family::per_core`] once per processor, labelled `processor="..."`; `value` gets the
    /// processor's index.
    fn per_processor(&mut self, value: impl Fn(&CoreSnapshot, usize) -> u64) -> &mut Self {
        for processor in Processor::ALL {
            let labels = format!("processor=\"{}\"", processor.name());
            self.per_core(&labels, |c| value(c, processor.index()));
        }
        self
    }
}

/// Appends the Prometheus text exposition (format 0.0.4) of `cores` (any order) to `out`.
/// `pid` and `boot` (`peer::Boot::id`) name the instance: in a container every instance is pid 1.
pub fn render(out: &mut Vec<u8>, cores: &mut [CoreSnapshot], pid: u32, boot: u64) {
    cores.sort_unstable_by_key(|c| c.core);
    let cores = &*cores;

    let info = Family::new(
        out,
        cores,
        "payrelay_instance_info",
        "gauge",
        "This instance: its pid, core count and boot id (unique per process, even where every pid is 1).",
    );
    let cores_len = cores.len();
    let line =
        format!("payrelay_instance_info{{pid=\"{pid}\",cores=\"{cores_len}\",boot=\"{boot}\"}} 1");
    let _ = writeln!(info.out, "{line}");

    let mut received = Family::new(
        out,
        cores,
        "payrelay_payments_received_total",
        "counter",
        "POST /payments by result: accepted (202), malformed (400), invalid (422), duplicate (409), queue_full (503), draining (503).",
    );
    for intake in Intake::ALL {
        received.per_core(&format!("result=\"{}\"", intake.name()), |c| c.intake[intake.index()]);
    }

    Family::new(
        out,
        cores,
        "payrelay_payments_settled_total",
        "counter",
        "Payments a processor stored and this instance recorded (monotonic; a purge does not reset it).",
    )
    .per_processor(|c, p| c.attempts[p][outcome_index(Outcome::Stored)]);
    Family::new(
        out,
        cores,
        "payrelay_payments_settled_cents_total",
        "counter",
        "Amount of the settled payments, in cents.",
    )
    .per_processor(|c, p| c.settled_cents[p]);

    let mut attempts = Family::new(
        out,
        cores,
        "payrelay_attempts_total",
        "counter",
        "Forwarding attempts by processor and outcome class (see src/upstream/outcome.rs).",
    );
    for p in Processor::ALL {
        for outcome in OUTCOMES {
            let labels =
                format!("processor=\"{}\",outcome=\"{}\"", p.name(), outcome_name(outcome));
            attempts.per_core(&labels, |c| c.attempts[p.index()][outcome_index(outcome)]);
        }
    }

    let latency = Family::new(
        out,
        cores,
        "payrelay_attempt_duration_seconds",
        "histogram",
        "Latency of forwarding attempts that got an answer, per processor, all cores.",
    );
    for p in Processor::ALL {
        let mut merged = HistogramSnapshot::default();
        for c in cores {
            merged.merge(&c.latency[p.index()]);
        }
        let mut cumulative = 0;
        for (i, count) in merged.buckets.iter().enumerate() {
            cumulative += count;
            let le = match LATENCY_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                latency.out,
                "{}_bucket{{processor=\"{}\",le=\"{le}\"}} {cumulative}",
                latency.name,
                p.name()
            );
        }
        let _ = writeln!(
            latency.out,
            "{name}_sum{{processor=\"{p}\"}} {}\n{name}_count{{processor=\"{p}\"}} {}",
            merged.sum_us as f64 / 1e6,
            merged.count(),
            name = latency.name,
            p = p.name(),
        );
    }

    Family::new(
        out,
        cores,
        "payrelay_breaker_open",
        "gauge",
        "1 while the core's breaker for the processor is open.",
    )
    .per_processor(|c, p| u64::from(c.breaker_open[p]));
    // No `all` series: a sum of delays means nothing.
    let delay = Family::new(
        out,
        cores,
        "payrelay_processor_delay_ms",
        "gauge",
        "The delay each core plans with (newest of polled and observed; OVERDUE_PLAN_DELAY_MS while an attempt is overdue), ms.",
    );
    for p in Processor::ALL {
        for c in cores {
            let _ = writeln!(
                delay.out,
                "{}{{core=\"{}\",processor=\"{}\"}} {}",
                delay.name,
                c.core,
                p.name(),
                c.delay_ms[p.index()]
            );
        }
    }
    Family::new(
        out,
        cores,
        "payrelay_overdue_total",
        "counter",
        "Times an attempt was OVERDUE_MARGIN_MS past its planned delay: a delay jump, or a stalled core.",
    )
    .per_processor(|c, p| c.overdue[p]);
    let mut route = Family::new(
        out,
        cores,
        "payrelay_route",
        "gauge",
        "Where the core would send a payment now (one-hot): default, fallback, wait (none usable), full (no free slot).",
    );
    for decision in ROUTES {
        let labels = format!("decision=\"{}\"", route_name(decision));
        route.per_core(&labels, |c| u64::from(c.route == Some(decision)));
    }

    Family::new(
        out,
        cores,
        "payrelay_queue_len",
        "gauge",
        "Accepted payments waiting for a forwarding slot.",
    )
    .per_core("", |c| c.queue_len);
    Family::new(
        out,
        cores,
        "payrelay_forwarding",
        "gauge",
        "Forwarding tasks running, each holding one payment.",
    )
    .per_core("", |c| c.forwarding);
    Family::new(
        out,
        cores,
        "payrelay_inflight_requests",
        "gauge",
        "Requests in flight at each processor.",
    )
    .per_processor(|c, p| c.inflight_at[p]);
    Family::new(
        out,
        cores,
        "payrelay_processor_connects_total",
        "counter",
        "Connections opened to each processor (keep-alive reuse keeps this near the in-flight peak).",
    )
    .per_processor(|c, p| c.processor_connects[p]);
    Family::new(
        out,
        cores,
        "payrelay_connections_open",
        "gauge",
        "Client connections being served (API and peer link).",
    )
    .per_core("", |c| c.connections_open);
    Family::new(
        out,
        cores,
        "payrelay_connections_accepted_total",
        "counter",
        "Client connections accepted since start.",
    )
    .per_core("", |c| c.connections_accepted);
    Family::new(
        out,
        cores,
        "payrelay_connections_refused_total",
        "counter",
        "Connections closed at accept because CONNECTIONS_MAX were open.",
    )
    .per_core("", |c| c.connections_refused);
    Family::new(
        out,
        cores,
        "payrelay_connections_expired_total",
        "counter",
        "Connections closed after CONNECTION_IDLE_TIMEOUT_MS without a request or response.",
    )
    .per_core("", |c| c.connections_expired);
    Family::new(
        out,
        cores,
        "payrelay_ledger_entries",
        "gauge",
        "Payments in the ledger shards since the last purge.",
    )
    .per_core("", |c| c.ledger_entries);
    Family::new(
        out,
        cores,
        "payrelay_ids_remembered",
        "gauge",
        "Correlation ids remembered to answer duplicates 409.",
    )
    .per_core("", |c| c.ids_remembered);

    let mut responses = Family::new(
        out,
        cores,
        "payrelay_http_responses_total",
        "counter",
        "Responses sent, by status code.",
    );
    for (i, status) in Status::ALL.into_iter().enumerate() {
        responses.per_core(&format!("code=\"{}\"", status.code()), |c| c.responses[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: observations land in the first bucket whose bound is at least the value, the
    /// rendering is cumulative and ends with `+Inf` equal to the count.
    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = CoreMetrics::default();
        for us in [100, 250, 251, 20_000_000] {
            metrics.attempt(Processor::Default, Outcome::Stored, 1990, Some(us));
        }
        let mut snapshot = CoreSnapshot::default();
        metrics.fill(&mut snapshot);
        let h = snapshot.latency[0];
        assert_eq!((h.buckets[0], h.buckets[1], h.buckets[BUCKETS - 1]), (2, 1, 1));
        assert_eq!(h.count(), 4);
        let mut out = Vec::new();
        render(&mut out, &mut [snapshot], 1, 7);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "payrelay_attempt_duration_seconds_bucket{processor=\"default\",le=\"0.00025\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "payrelay_attempt_duration_seconds_bucket{processor=\"default\",le=\"0.0005\"} 3\n"
        ));
        assert!(text.contains(
            "payrelay_attempt_duration_seconds_bucket{processor=\"default\",le=\"+Inf\"} 4\n"
        ));
        assert!(
            text.contains("payrelay_attempt_duration_seconds_count{processor=\"default\"} 4\n")
        );
        assert!(text.contains(
            "payrelay_payments_settled_cents_total{core=\"all\",processor=\"default\"} 7960\n"
        ));
    }

    /// Goal: per-core series and the `all` series agree, whatever order the cores answered in,
    /// and every sample line belongs to a family declared with `# TYPE`.
    #[test]
    fn cores_and_total() {
        let core = |id: usize, queue_len: u64| CoreSnapshot {
            core: id,
            queue_len,
            route: Some(Route::Send(Processor::Fallback)),
            ..CoreSnapshot::default()
        };
        let mut out = Vec::new();
        render(&mut out, &mut [core(1, 5), core(0, 2)], 42, 7);
        let text = String::from_utf8(out).unwrap();
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
        assert!(at("payrelay_queue_len{core=\"0\"} 2") < at("payrelay_queue_len{core=\"1\"} 5"));
        at("payrelay_queue_len{core=\"all\"} 7\n");
        at("payrelay_route{core=\"all\",decision=\"fallback\"} 2\n");
        at("payrelay_route{core=\"0\",decision=\"default\"} 0\n");
        at("payrelay_instance_info{pid=\"42\",cores=\"2\",boot=\"7\"} 1\n");
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = &line[..line.find(['{', ' ']).unwrap()];
            let family = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .filter(|f| declared.contains(f))
                .unwrap_or(name);
            assert!(declared.contains(&family), "{line} has no # TYPE");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
