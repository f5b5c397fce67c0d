//! Families: every metric `GET /metrics` exposes, one row of [`FAMILIES`] each (name, type,
//! help, and how its series are read from a [`CoreSnapshot`]), and the one renderer that walks
//! the table. Adding a metric is a snapshot field (where it is measured) and a row here;
//! `every_snapshot_field_is_rendered` fails until both exist, and `tests/metrics_doc.rs` until
//! the README's table has it.

use std::io::Write;

use super::counters::{CoreSnapshot, HistogramSnapshot, Intake, LATENCY_BOUNDS_US};
use crate::{
    http::Status,
    ledger::Processor,
    upstream::{
        outcome::{Lookup, Outcome},
        route::Route,
    },
};

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Any value now.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label a family's series are split by, and the values it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// `processor`: [`Processor::ALL`].
    Processor,
    /// `outcome`: [`Outcome::ALL`].
    Outcome,
    /// `result`: [`Intake::ALL`].
    Intake,
    /// `decision`: [`Route::ALL`].
    Route,
    /// `code`: [`Status::ALL`].
    Status,
    /// `result`: [`Lookup::ALL`].
    Lookup,
}

impl Label {
    fn key(self) -> &'static str {
        match self {
            Label::Processor => "processor",
            Label::Outcome => "outcome",
            Label::Intake => "result",
            Label::Route => "decision",
            Label::Status => "code",
            Label::Lookup => "result",
        }
    }

    fn len(self) -> usize {
        match self {
            Label::Processor => Processor::ALL.len(),
            Label::Outcome => Outcome::ALL.len(),
            Label::Intake => Intake::ALL.len(),
            Label::Route => Route::ALL.len(),
            Label::Status => Status::ALL.len(),
            Label::Lookup => Lookup::ALL.len(),
        }
    }

    fn value(self, i: usize) -> &'static str {
        match self {
            Label::Processor => Processor::ALL[i].name(),
            Label::Outcome => Outcome::ALL[i].name(),
            Label::Intake => Intake::ALL[i].name(),
            Label::Route => Route::ALL[i].name(),
            Label::Status => Status::ALL[i].code_text(),
            Label::Lookup => Lookup::ALL[i].name(),
        }
    }
}

/// Where a family's series come from.
#[derive(Clone, Copy)]
pub enum Series {
    /// One series per core and per combination of `labels` (at most two), read by `value` with
    /// the labels' indexes; and, when `total`, the instance's sum of each as `core="all"`.
    Cores {
        /// What the series are split by, outermost first.
        labels: &'static [Label],
        /// Whether the sum over cores means something (not for a delay).
        total: bool,
        /// The value of one core at the labels' indexes.
        value: fn(&CoreSnapshot, &[usize]) -> u64,
    },
    /// One histogram per processor, merged over the cores.
    Latency(fn(&CoreSnapshot) -> &[HistogramSnapshot; 2]),
    /// The instance itself: pid, core count and boot, with the value 1.
    Instance,
}

/// One metric family.
#[derive(Clone, Copy)]
pub struct Family {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its `# HELP` line.
    pub help: &'static str,
    /// How its series are read.
    pub series: Series,
}

/// A family of one value per core, summed over the cores: [`split`] by no label.
const fn per_core(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&CoreSnapshot, &[usize]) -> u64,
) -> Family {
    split(name, kind, help, &[], value)
}

/// A family split by `labels`, summed over the cores.
const fn split(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [Label],
    value: fn(&CoreSnapshot, &[usize]) -> u64,
) -> Family {
    Family { name, kind, help, series: Series::Cores { labels, total: true, value } }
}

use Kind::{Counter, Gauge};
use Label::Processor as P;

/// Every family, in the order a scrape lists them.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "payrelay_instance_info",
        kind: Gauge,
        help: "This instance: its pid, core count and boot id (unique per process, even where every pid is 1).",
        series: Series::Instance,
    },
    split(
        "payrelay_payments_received_total",
        Counter,
        "POST /payments by result: accepted (202), malformed (400), invalid (422), duplicate (409), queue_full (503), draining (503), unjournaled (503: the journal is full or unwritable).",
        &[Label::Intake],
        |c, i| c.intake[i[0]],
    ),
    split(
        "payrelay_payments_settled_total",
        Counter,
        "Payments a processor stored and this instance recorded, by an attempt's answer or a lookup (monotonic; a purge does not reset it).",
        &[P],
        |c, i| c.settled[i[0]],
    ),
    split(
        "payrelay_payments_settled_cents_total",
        Counter,
        "Amount of the settled payments, in cents.",
        &[P],
        |c, i| c.settled_cents[i[0]],
    ),
    split(
        "payrelay_attempts_total",
        Counter,
        "Forwarding attempts by processor and outcome class (see src/upstream/outcome.rs).",
        &[P, Label::Outcome],
        |c, i| c.attempts[i[0]][i[1]],
    ),
    split(
        "payrelay_lookups_total",
        Counter,
        "Lookups (GET /payments/{id}) of payments whose outcome was unknown, by processor and result: found (stored there), absent (not stored yet), unknown (no useful answer).",
        &[P, Label::Lookup],
        |c, i| c.lookups[i[0]][i[1]],
    ),
    Family {
        name: "payrelay_attempt_duration_seconds",
        kind: Kind::Histogram,
        help: "Latency of forwarding attempts that got an answer, per processor, all cores.",
        series: Series::Latency(|c| &c.latency),
    },
    split(
        "payrelay_breaker_open",
        Gauge,
        "1 while the core's breaker for the processor is open.",
        &[P],
        |c, i| u64::from(c.breaker_open[i[0]]),
    ),
    Family {
        name: "payrelay_processor_delay_ms",
        kind: Gauge,
        help: "The delay each core plans with (newest of polled and observed; OVERDUE_PLAN_DELAY_MS while an attempt is overdue), ms.",
        series: Series::Cores { labels: &[P], total: false, value: |c, i| c.delay_ms[i[0]] },
    },
    split(
        "payrelay_overdue_total",
        Counter,
        "Times an attempt was OVERDUE_MARGIN_MS past its planned delay: a delay jump, or a stalled core.",
        &[P],
        |c, i| c.overdue[i[0]],
    ),
    split(
        "payrelay_route",
        Gauge,
        "Where the core would send a payment now (one-hot): default, fallback, hold (for the cheaper one), wait (none usable), full (no free slot).",
        &[Label::Route],
        |c, i| u64::from(c.route.is_some_and(|route| route.index() == i[0])),
    ),
    per_core(
        "payrelay_queue_len",
        Gauge,
        "Accepted payments waiting for a forwarding slot.",
        |c, _| c.queue_len,
    ),
    per_core(
        "payrelay_forwarding",
        Gauge,
        "Forwarding tasks running, each holding one payment.",
        |c, _| c.forwarding,
    ),
    per_core(
        "payrelay_holding",
        Gauge,
        "Forwarding tasks holding their payment for the cheaper processor while it is unusable (route decision hold); the queue waits behind them.",
        |c, _| c.holding,
    ),
    split(
        "payrelay_inflight_requests",
        Gauge,
        "Requests in flight at each processor.",
        &[P],
        |c, i| c.inflight_at[i[0]],
    ),
    split(
        "payrelay_processor_connects_total",
        Counter,
        "Connections opened to each processor (keep-alive reuse keeps this near the in-flight peak).",
        &[P],
        |c, i| c.processor_connects[i[0]],
    ),
    per_core(
        "payrelay_connections_open",
        Gauge,
        "Client connections being served (API and peer link).",
        |c, _| c.connections_open,
    ),
    per_core(
        "payrelay_connections_max",
        Gauge,
        "CONNECTIONS_MAX in force: public connections a core serves at once (derived from the memory limit when set to 0).",
        |c, _| c.connections_max,
    ),
    per_core(
        "payrelay_connections_accepted_total",
        Counter,
        "Client connections accepted since start.",
        |c, _| c.connections_accepted,
    ),
    per_core(
        "payrelay_connections_refused_total",
        Counter,
        "Connections closed at accept because CONNECTIONS_MAX were open.",
        |c, _| c.connections_refused,
    ),
    per_core(
        "payrelay_connections_expired_total",
        Counter,
        "Connections closed after CONNECTION_IDLE_TIMEOUT_MS without a request or response.",
        |c, _| c.connections_expired,
    ),
    per_core(
        "payrelay_ledger_entries",
        Gauge,
        "Payments in the ledger shards since the last purge.",
        |c, _| c.ledger_entries,
    ),
    per_core(
        "payrelay_ids_remembered",
        Gauge,
        "Correlation ids remembered to answer duplicates 409.",
        |c, _| c.ids_remembered,
    ),
    per_core(
        "payrelay_journal_bytes",
        Gauge,
        "Bytes in the core's journal file since the last purge (JOURNAL_BYTES_MAX refuses payments).",
        |c, _| c.journal_bytes,
    ),
    per_core(
        "payrelay_journal_writes_total",
        Counter,
        "Writes of the core's journal: one per turn of its event loop that had records, at most.",
        |c, _| c.journal_writes,
    ),
    per_core(
        "payrelay_journal_failed",
        Gauge,
        "1 while the core's journal cannot be written: it refuses payments (503) until a write succeeds again (retried every second) or a purge.",
        |c, _| u64::from(c.journal_failed),
    ),
    split(
        "payrelay_http_responses_total",
        Counter,
        "Responses sent, by status code.",
        &[Label::Status],
        |c, i| c.responses[i[0]],
    ),
];

/// Who is being scraped: what names the instance beside its cores' snapshots.
#[derive(Clone, Copy, Debug)]
pub struct Instance {
    /// Its process id (1 in every container).
    pub pid: u32,
    /// Its boot id (`peer::Boot::id`), unique per process.
    pub boot: u64,
}

/// Appends the Prometheus text exposition (format 0.0.4) of `cores` (any order) to `out`.
pub fn render(out: &mut Vec<u8>, cores: &mut [CoreSnapshot], instance: Instance) {
    cores.sort_unstable_by_key(|c| c.core);
    for family in FAMILIES {
        let (name, help, kind) = (family.name, family.help, family.kind.name());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match family.series {
            Series::Cores { labels, total, value } => {
                render_cores(out, name, cores, labels, total, value)
            }
            Series::Latency(histograms) => render_latency(out, name, cores, histograms),
            Series::Instance => {
                let (pid, boot, len) = (instance.pid, instance.boot, cores.len());
                let _ = writeln!(out, "{name}{{pid=\"{pid}\",cores=\"{len}\",boot=\"{boot}\"}} 1");
            }
        }
    }
}

/// Every combination of `labels`, then per core and (when `total`) `core="all"`.
fn render_cores(
    out: &mut Vec<u8>,
    name: &str,
    cores: &[CoreSnapshot],
    labels: &[Label],
    total: bool,
    value: fn(&CoreSnapshot, &[usize]) -> u64,
) {
    assert!(labels.len() <= 2, "{name}: a series has at most two labels");
    let combinations: usize = labels.iter().map(|l| l.len()).product();
    for combination in 0..combinations {
        // Odometer order: the last label turns fastest.
        let mut indexes = [0usize; 2];
        let mut rest = combination;
        for (slot, label) in indexes[..labels.len()].iter_mut().zip(labels).rev() {
            *slot = rest % label.len();
            rest /= label.len();
        }
        let indexes = &indexes[..labels.len()];
        let mut text = String::new();
        for (label, &i) in labels.iter().zip(indexes) {
            text.push_str(&format!(",{}=\"{}\"", label.key(), label.value(i)));
        }
        let mut sum = 0u64;
        for c in cores {
            let v = value(c, indexes);
            sum = sum.saturating_add(v);
            let _ = writeln!(out, "{name}{{core=\"{}\"{text}}} {v}", c.core);
        }
        if total {
            let _ = writeln!(out, "{name}{{core=\"all\"{text}}} {sum}");
        }
    }
}

/// One cumulative histogram per processor, merged over the cores.
fn render_latency(
    out: &mut Vec<u8>,
    name: &str,
    cores: &[CoreSnapshot],
    histograms: fn(&CoreSnapshot) -> &[HistogramSnapshot; 2],
) {
    for p in Processor::ALL {
        let mut merged = HistogramSnapshot::default();
        for c in cores {
            merged.merge(&histograms(c)[p.index()]);
        }
        let p = p.name();
        let mut cumulative = 0;
        for (i, count) in merged.buckets.iter().enumerate() {
            cumulative += count;
            let le = match LATENCY_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(out, "{name}_bucket{{processor=\"{p}\",le=\"{le}\"}} {cumulative}");
        }
        let (sum, count) = (merged.sum_us as f64 / 1e6, merged.count());
        let _ = writeln!(out, "{name}_sum{{processor=\"{p}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{processor=\"{p}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{BUCKETS, CoreMetrics};

    fn rendered(cores: &mut [CoreSnapshot]) -> String {
        let mut out = Vec::new();
        render(&mut out, cores, Instance { pid: 42, boot: 7 });
        String::from_utf8(out).expect("the exposition is ASCII")
    }

    /// Goal: the rendering is cumulative and ends with `+Inf` equal to the count.
    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = CoreMetrics::default();
        for us in [100, 250, 251, 20_000_000] {
            metrics.attempt(Processor::Default, Outcome::Stored, Some(us));
            metrics.settled(Processor::Default, 1990);
        }
        let mut snapshot = CoreSnapshot::default();
        metrics.fill(&mut snapshot);
        let text = rendered(&mut [snapshot]);
        let name = "payrelay_attempt_duration_seconds";
        for line in [
            format!("{name}_bucket{{processor=\"default\",le=\"0.00025\"}} 2\n"),
            format!("{name}_bucket{{processor=\"default\",le=\"0.0005\"}} 3\n"),
            format!("{name}_bucket{{processor=\"default\",le=\"+Inf\"}} 4\n"),
            format!("{name}_count{{processor=\"default\"}} 4\n"),
            "payrelay_payments_settled_cents_total{core=\"all\",processor=\"default\"} 7960\n"
                .into(),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    /// Goal: per-core series and the `all` series agree, whatever order the cores answered in,
    /// two labels turn in odometer order, and every sample line belongs to a family declared
    /// with `# TYPE`.
    #[test]
    fn cores_and_total() {
        let core = |id: usize, queue_len: u64| CoreSnapshot {
            core: id,
            queue_len,
            route: Some(Route::Send(Processor::Fallback)),
            ..CoreSnapshot::default()
        };
        let text = rendered(&mut [core(1, 5), core(0, 2)]);
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
        assert!(at("payrelay_queue_len{core=\"0\"} 2") < at("payrelay_queue_len{core=\"1\"} 5"));
        at("payrelay_queue_len{core=\"all\"} 7\n");
        at("payrelay_route{core=\"all\",decision=\"fallback\"} 2\n");
        at("payrelay_route{core=\"0\",decision=\"default\"} 0\n");
        at("payrelay_instance_info{pid=\"42\",cores=\"2\",boot=\"7\"} 1\n");
        assert!(
            at("{core=\"all\",processor=\"default\",outcome=\"refused\"}")
                < at("{core=\"0\",processor=\"fallback\",outcome=\"stored\"}")
        );
        assert!(!text.contains("payrelay_processor_delay_ms{core=\"all\""), "a delay has no sum");
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = &line[..line.find(['{', ' ']).expect("a sample has a name")];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| declared.contains(f)))
                .unwrap_or(name);
            assert!(declared.contains(&family), "{line} has no # TYPE");
            let value = line.rsplit(' ').next().expect("a sample has a value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// Builds a snapshot with every field set (no `..`: a field added to [`CoreSnapshot`] does
    /// not compile here until it is given a value) and, for each field, the same snapshot with
    /// that field back at its default.
    macro_rules! each_field {
        ($($field:ident: $value:expr),* $(,)?) => {{
            let all = CoreSnapshot { $($field: $value),* };
            let reverted = vec![$(
                (stringify!($field), CoreSnapshot { $field: CoreSnapshot::default().$field, ..all })
            ),*];
            (all, reverted)
        }};
    }

    /// Goal: every field of a snapshot reaches the exposition: a field measured but rendered by
    /// no family fails here. Method: each field in turn back at its default changes the text.
    #[test]
    fn every_snapshot_field_is_rendered() {
        let latency = HistogramSnapshot { buckets: [1; BUCKETS], sum_us: 5 };
        let (all, reverted) = each_field! {
            core: 3,
            attempts: [[1; Outcome::ALL.len()]; 2],
            lookups: [[1; Lookup::ALL.len()]; 2],
            settled: [1, 2],
            settled_cents: [1, 2],
            latency: [latency; 2],
            intake: [1; Intake::ALL.len()],
            responses: [1; Status::ALL.len()],
            connections_open: 1,
            connections_max: 1,
            connections_accepted: 1,
            connections_refused: 1,
            connections_expired: 1,
            queue_len: 1,
            forwarding: 1,
            holding: 1,
            inflight_at: [1, 1],
            processor_connects: [1, 1],
            breaker_open: [true, true],
            delay_ms: [1, 1],
            overdue: [1, 1],
            route: Some(Route::Wait),
            ledger_entries: 1,
            ids_remembered: 1,
            journal_bytes: 1,
            journal_writes: 1,
            journal_failed: true,
        };
        let full = rendered(&mut [all]);
        for (field, snapshot) in reverted {
            assert_ne!(rendered(&mut [snapshot]), full, "no family renders {field}");
        }
    }
}
