//! Families: every metric `GET /metrics` exposes, one row of [`FAMILIES`] each (name, type,
//! help, and how its series are read from a [`CoreSnapshot`]), and the one renderer that walks
//! the table. Adding a metric is a snapshot field (where it is measured) and a row here;
//! `every_snapshot_field_is_rendered` fails until both exist, and `tests/metrics_doc.rs` until
//! the table in `docs/observability.md` has it.

use std::io::Write;

use super::{
    counters::{
        CoreSnapshot, HistogramSnapshot, HttpRoute, Intake, LATENCY_BOUNDS_US, REQUEST_BOUNDS_US,
        REQUEST_BUCKETS,
    },
    process::ProcessStats,
};
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
    /// the labels' indexes. No sum over the cores is rendered: a scraper sums the per-core
    /// series (`sum without (core)`), and a total beside them would be counted twice.
    Cores {
        /// What the series are split by, outermost first.
        labels: &'static [Label],
        /// The value of one core at the labels' indexes.
        value: fn(&CoreSnapshot, &[usize]) -> u64,
    },
    /// As [`Series::Cores`], for a value a core keeps in milliseconds, rendered in seconds (the
    /// base unit).
    CoresMillis {
        /// What the series are split by, outermost first.
        labels: &'static [Label],
        /// The value of one core at the labels' indexes, ms.
        value_ms: fn(&CoreSnapshot, &[usize]) -> u64,
    },
    /// One histogram of attempts per processor, merged over the cores.
    Latency(fn(&CoreSnapshot) -> &[HistogramSnapshot; 2]),
    /// One histogram of our answers' durations per [`HttpRoute`], merged over the cores.
    Requests(fn(&CoreSnapshot) -> &[HistogramSnapshot<REQUEST_BUCKETS>; HttpRoute::ALL.len()]),
    /// The instance itself: pid, core count and boot, with the value 1.
    Instance,
    /// The build: version and git commit, with the value 1.
    Build,
    /// One value of the process (`/proc`), left out when it cannot be read.
    Process(fn(&ProcessStats) -> Option<f64>),
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

/// A family of one value per core: [`split`] by no label.
const fn per_core(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&CoreSnapshot, &[usize]) -> u64,
) -> Family {
    split(name, kind, help, &[], value)
}

/// A family of one value per core split by `labels`.
const fn split(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [Label],
    value: fn(&CoreSnapshot, &[usize]) -> u64,
) -> Family {
    Family { name, kind, help, series: Series::Cores { labels, value } }
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
    Family {
        name: "payrelay_build_info",
        kind: Gauge,
        help: "This build: its version (Cargo.toml) and git commit (unknown when built without one).",
        series: Series::Build,
    },
    Family {
        name: "process_cpu_seconds_total",
        kind: Counter,
        help: "User and system CPU time spent by this process, in seconds.",
        series: Series::Process(|p| p.cpu_seconds),
    },
    Family {
        name: "process_resident_memory_bytes",
        kind: Gauge,
        help: "Resident memory of this process, in bytes.",
        series: Series::Process(|p| p.resident_bytes.map(|b| b as f64)),
    },
    Family {
        name: "process_start_time_seconds",
        kind: Gauge,
        help: "When this process started, in seconds since the Unix epoch.",
        series: Series::Process(|p| p.start_time_seconds),
    },
    Family {
        name: "payrelay_http_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Our answers, from a request's head parsed to its response written (pipelined requests answered in one write share it), per route, all cores.",
        series: Series::Requests(|c| &c.requests),
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
        name: "payrelay_processor_delay_seconds",
        kind: Gauge,
        help: "The delay each core plans with (newest of polled and observed; OVERDUE_PLAN_DELAY_MS while an attempt is overdue), in seconds.",
        series: Series::CoresMillis { labels: &[P], value_ms: |c, i| c.delay_ms[i[0]] },
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
    /// What `/proc` says of its process at this scrape.
    pub process: ProcessStats,
}

/// Appends the Prometheus text exposition (format 0.0.4) of `cores` (any order) to `out`.
pub fn render(out: &mut Vec<u8>, cores: &mut [CoreSnapshot], instance: Instance) {
    cores.sort_unstable_by_key(|c| c.core);
    for family in FAMILIES {
        let (name, help, kind) = (family.name, family.help, family.kind.name());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match family.series {
            Series::Cores { labels, value } => {
                render_cores(out, name, cores, labels, |c, i| value(c, i).to_string())
            }
            Series::CoresMillis { labels, value_ms } => {
                render_cores(out, name, cores, labels, |c, i| seconds(value_ms(c, i)))
            }
            Series::Latency(histograms) => {
                let merged = Processor::ALL.map(|p| merge(cores, |c| &histograms(c)[p.index()]));
                let labels = Processor::ALL.map(|p| ("processor", p.name()));
                render_histograms(out, name, &LATENCY_BOUNDS_US, &labels, &merged);
            }
            Series::Requests(histograms) => {
                let merged = HttpRoute::ALL.map(|r| merge(cores, |c| &histograms(c)[r.index()]));
                let labels = HttpRoute::ALL.map(|r| ("route", r.name()));
                render_histograms(out, name, &REQUEST_BOUNDS_US, &labels, &merged);
            }
            Series::Instance => {
                let (pid, boot, len) = (instance.pid, instance.boot, cores.len());
                let _ = writeln!(out, "{name}{{pid=\"{pid}\",cores=\"{len}\",boot=\"{boot}\"}} 1");
            }
            Series::Build => {
                let (version, commit) = (crate::VERSION, crate::COMMIT);
                let _ = writeln!(out, "{name}{{version=\"{version}\",commit=\"{commit}\"}} 1");
            }
            Series::Process(value) => {
                if let Some(value) = value(&instance.process) {
                    let _ = writeln!(out, "{name} {value}");
                }
            }
        }
    }
}

/// `ms` in seconds, as the exposition writes a number (`1.5`, `0`).
fn seconds(ms: u64) -> String {
    (ms as f64 / 1000.0).to_string()
}

/// Every combination of `labels`, then per core.
fn render_cores(
    out: &mut Vec<u8>,
    name: &str,
    cores: &[CoreSnapshot],
    labels: &[Label],
    value: impl Fn(&CoreSnapshot, &[usize]) -> String,
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
        for c in cores {
            let _ = writeln!(out, "{name}{{core=\"{}\"{text}}} {}", c.core, value(c, indexes));
        }
    }
}

/// The cores' histograms that `pick` chooses, merged.
fn merge<const B: usize>(
    cores: &[CoreSnapshot],
    pick: impl Fn(&CoreSnapshot) -> &HistogramSnapshot<B>,
) -> HistogramSnapshot<B> {
    let mut merged = HistogramSnapshot::default();
    for c in cores {
        merged.merge(pick(c));
    }
    merged
}

/// One cumulative histogram per label value: `labels[i]` (key, value) names `histograms[i]`,
/// whose buckets end at `bounds_us` and `+Inf`.
fn render_histograms<const B: usize>(
    out: &mut Vec<u8>,
    name: &str,
    bounds_us: &[u64],
    labels: &[(&str, &str)],
    histograms: &[HistogramSnapshot<B>],
) {
    for (&(key, value), histogram) in labels.iter().zip(histograms) {
        let mut cumulative = 0;
        for (i, count) in histogram.buckets.iter().enumerate() {
            cumulative += count;
            let le = match bounds_us.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(out, "{name}_bucket{{{key}=\"{value}\",le=\"{le}\"}} {cumulative}");
        }
        let (sum, count) = (histogram.sum_us as f64 / 1e6, histogram.count());
        let _ = writeln!(out, "{name}_sum{{{key}=\"{value}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{{key}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{BUCKETS, CoreMetrics};

    fn rendered(cores: &mut [CoreSnapshot]) -> String {
        let mut out = Vec::new();
        let process = ProcessStats {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
            start_time_seconds: None,
        };
        render(&mut out, cores, Instance { pid: 42, boot: 7, process });
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
            "payrelay_payments_settled_cents_total{core=\"0\",processor=\"default\"} 7960\n".into(),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    /// Goal: one series per core, in core order whatever order the cores answered in, and no
    /// `core="all"` beside them (a sum over `core` would count it twice); two labels turn in
    /// odometer order; a delay kept in ms is rendered in seconds; the build and process
    /// families are there (a process value that cannot be read is left out); every sample line
    /// belongs to a family declared with `# TYPE`.
    #[test]
    fn per_core_series_only() {
        let core = |id: usize, queue_len: u64| CoreSnapshot {
            core: id,
            queue_len,
            route: Some(Route::Send(Processor::Fallback)),
            delay_ms: [1500, 0],
            ..CoreSnapshot::default()
        };
        let text = rendered(&mut [core(1, 5), core(0, 2)]);
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
        assert!(at("payrelay_queue_len{core=\"0\"} 2") < at("payrelay_queue_len{core=\"1\"} 5"));
        assert!(!text.contains("core=\"all\""), "{text}");
        at("payrelay_route{core=\"1\",decision=\"fallback\"} 1\n");
        at("payrelay_route{core=\"0\",decision=\"default\"} 0\n");
        at("payrelay_instance_info{pid=\"42\",cores=\"2\",boot=\"7\"} 1\n");
        assert!(
            at("{core=\"1\",processor=\"default\",outcome=\"refused\"}")
                < at("{core=\"0\",processor=\"fallback\",outcome=\"stored\"}")
        );
        at("payrelay_processor_delay_seconds{core=\"0\",processor=\"default\"} 1.5\n");
        at("payrelay_processor_delay_seconds{core=\"1\",processor=\"fallback\"} 0\n");
        at(&format!("payrelay_build_info{{version=\"{}\",commit=\"", crate::VERSION));
        at("process_cpu_seconds_total 1.5\n");
        at("process_resident_memory_bytes 4096\n");
        assert!(!text.contains("\nprocess_start_time_seconds "), "unread, left out");
        at("payrelay_http_request_duration_seconds_bucket{route=\"/payments\",le=\"0.00005\"} 0\n");
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
            requests: [HistogramSnapshot { buckets: [1; REQUEST_BUCKETS], sum_us: 5 }; 3],
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
