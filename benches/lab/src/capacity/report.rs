//! What a capacity sweep reports: each step's measurements for both backends, the highest rate
//! each kept under the p99 bar, payrelay's p99 over canned's at the contest's peak rate; the
//! table and the JSON. Everything here is arithmetic on measurements already taken.

use serde::Serialize;

use super::open_load::StepReport;
use crate::{provenance::Machine, stats};

/// The latency bar, ms: a step passes while its p99 stays at or under it (and nothing fails or
/// misses its schedule). 1 ms is where the contest's p99 bonus is within 2% of its maximum
/// (`(11 − p99) × 2%`, capped at 20%), and what canned reaches on this kind of machine.
pub const P99_BAR_MS: f64 = 1.0;
/// The contest's peak arrival rate, per second: the final ramps to ~600 virtual users, each
/// posting about once a second.
pub const PEAK_RATE_PER_S: f64 = 600.0;

/// The two backends a sweep measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// The payrelay pair, in its envelope, forwarding to the emulated processors.
    Payrelay,
    /// `rinha-lab canned`: 202 to anything, the floor of loopback, HTTP/1 and the load itself.
    Canned,
}

impl Subject {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Payrelay => "payrelay",
            Subject::Canned => "canned",
        }
    }
}

/// p50, p99 and max of a step's latencies, ms (k6's percentile; all 0 without samples).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile, the contest's.
    pub p99_ms: f64,
    /// Slowest answer.
    pub max_ms: f64,
}

impl LatencyMs {
    /// The summary of microsecond samples (sorted in place), rounded to the microsecond.
    pub fn of(samples_us: &mut [u64]) -> LatencyMs {
        let ms = |samples: &mut [u64], p: f64| round(stats::percentile_ms(samples, p), 3);
        LatencyMs {
            p50_ms: ms(samples_us, 0.50),
            p99_ms: ms(samples_us, 0.99),
            max_ms: ms(samples_us, 1.0),
        }
    }
}

/// One process's CPU over a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessCpu {
    /// `a`, `b` (payrelay's instances) or `canned`.
    pub process: String,
    /// CPU seconds (user + system) in the measured window; `None`: `/proc` unreadable.
    pub cpu_s: Option<f64>,
    /// Those per 1,000 successful payments of the step; `None` without either.
    pub cpu_s_per_1000_payments: Option<f64>,
}

/// CPU seconds per 1,000 payments; `None` without payments or without a reading.
pub fn cpu_s_per_1000(cpu_s: Option<f64>, payments: u64) -> Option<f64> {
    let cpu_s = cpu_s.filter(|s| s.is_finite())?;
    (payments > 0).then(|| round(cpu_s * 1000.0 / payments as f64, 6))
}

/// One backend at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendStep {
    /// Which backend.
    pub backend: Subject,
    /// The schedule's rate, per second.
    pub offered_per_s: f64,
    /// Successful answers per second of the measured window (first due time to last answer, at
    /// least the schedule's span): at most the offered rate.
    pub achieved_per_s: f64,
    /// Requests due in the measured window.
    pub scheduled: u64,
    /// Answered 200/201/202/204.
    pub ok: u64,
    /// Failed for any reason (the four below).
    pub failures: u64,
    /// ... answered with another status.
    pub failed_status: u64,
    /// ... no complete answer within the timeout.
    pub failed_timeout: u64,
    /// ... connection could not be opened.
    pub failed_connect: u64,
    /// ... connection broke in flight.
    pub failed_io: u64,
    /// Due while every pooled connection was busy: not sent.
    pub schedule_misses: u64,
    /// Latency of the answers with an expected status.
    #[serde(flatten)]
    pub latency: LatencyMs,
    /// p99 of how late requests left against their due time, ms: the load generator's own
    /// lateness; when it nears the p99 the client, not the server, is the limit.
    pub start_lag_p99_ms: f64,
    /// CPU of each of the backend's processes.
    pub cpu: Vec<ProcessCpu>,
    /// p99 ≤ [`P99_BAR_MS`], no failure, no schedule miss, something answered.
    pub under_bar: bool,
}

impl BackendStep {
    /// The record of one measured step.
    pub fn new(backend: Subject, measured: &StepReport) -> BackendStep {
        let mut latencies = measured.latencies_us.clone();
        let latency = LatencyMs::of(&mut latencies);
        let mut lags = measured.start_lags_us.clone();
        let cpu = measured
            .cpu_s
            .iter()
            .map(|(process, cpu_s)| ProcessCpu {
                process: process.clone(),
                cpu_s: cpu_s.map(|s| round(s, 6)),
                cpu_s_per_1000_payments: cpu_s_per_1000(*cpu_s, measured.ok),
            })
            .collect();
        let failures = measured.failed();
        BackendStep {
            backend,
            offered_per_s: measured.rate_per_s,
            achieved_per_s: round(measured.achieved_per_s(), 1),
            scheduled: measured.scheduled,
            ok: measured.ok,
            failures,
            failed_status: measured.failed_status,
            failed_timeout: measured.failed_timeout,
            failed_connect: measured.failed_connect,
            failed_io: measured.failed_io,
            schedule_misses: measured.schedule_misses,
            latency,
            start_lag_p99_ms: round(stats::percentile_ms(&mut lags, 0.99), 3),
            cpu,
            under_bar: measured.ok > 0
                && failures == 0
                && measured.schedule_misses == 0
                && latency.p99_ms <= P99_BAR_MS,
        }
    }
}

/// One rate, both backends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The schedule's rate, per second.
    pub rate_per_s: f64,
    /// Which backend was measured first at this rate (the order alternates).
    pub first: Subject,
    /// Payrelay's measurements, then canned's.
    pub backends: Vec<BackendStep>,
}

impl Step {
    /// This step's record for `subject`.
    pub fn of(&self, subject: Subject) -> Option<&BackendStep> {
        self.backends.iter().find(|b| b.backend == subject)
    }
}

/// The highest rate a backend kept under the bar: the last step of the unbroken run of passing
/// steps from the lowest rate (a pass above a failed step is luck, not capacity). `None` when
/// the first step already failed.
pub fn highest_rate_under_bar(steps: &[Step], subject: Subject) -> Option<f64> {
    steps
        .iter()
        .map_while(|step| step.of(subject).filter(|b| b.under_bar).map(|_| step.rate_per_s))
        .last()
}

/// payrelay against canned at the step nearest the contest's peak rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeakComparison {
    /// The step's rate (the one nearest [`PEAK_RATE_PER_S`] that was run).
    pub rate_per_s: f64,
    /// payrelay's p99 there, ms.
    pub payrelay_p99_ms: f64,
    /// canned's p99 there, ms.
    pub canned_p99_ms: f64,
    /// payrelay's p99 / canned's: how many floors payrelay costs. `None` if canned's p99 is 0
    /// (no answer).
    pub p99_ratio: Option<f64>,
}

/// The comparison at the step nearest `peak_per_s` (the lower on a tie); `None` without a step
/// that measured both.
pub fn peak_comparison(steps: &[Step], peak_per_s: f64) -> Option<PeakComparison> {
    let both = steps.iter().filter_map(|step| {
        Some((step.rate_per_s, step.of(Subject::Payrelay)?, step.of(Subject::Canned)?))
    });
    let distance = |rate: f64| (rate - peak_per_s).abs();
    let (rate_per_s, payrelay, canned) =
        both.reduce(|best, next| if distance(next.0) < distance(best.0) { next } else { best })?;
    let (payrelay_p99_ms, canned_p99_ms) = (payrelay.latency.p99_ms, canned.latency.p99_ms);
    Some(PeakComparison {
        rate_per_s,
        payrelay_p99_ms,
        canned_p99_ms,
        p99_ratio: (canned_p99_ms > 0.0).then(|| round(payrelay_p99_ms / canned_p99_ms, 2)),
    })
}

/// The highest rate under the bar, per backend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HighestRates {
    /// payrelay's, per second.
    pub payrelay_per_s: Option<f64>,
    /// canned's (the steps stop on payrelay's result, so this may be a lower bound), per second.
    pub canned_per_s: Option<f64>,
}

/// Everything a sweep measured, and its conclusions (documented in `benches/lab/README.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    /// When the first step started, ISO UTC.
    pub started_at: String,
    /// Where it ran.
    pub machine: Machine,
    /// Whether each payrelay instance ran in its compose service's cgroup.
    pub envelope_applied: bool,
    /// Why not, when it did not (empty when it did).
    pub envelope_note: String,
    /// Measured seconds per step and backend.
    pub step_s: f64,
    /// Warm-up seconds before each (at least enough to open every connection).
    pub warmup_s: f64,
    /// Keep-alive connections per backend.
    pub connections: usize,
    /// Each request's timeout, ms.
    pub request_timeout_ms: u64,
    /// [`P99_BAR_MS`].
    pub p99_bar_ms: f64,
    /// Every step run, in rate order.
    pub steps: Vec<Step>,
    /// The highest rate under the bar per backend.
    pub highest_rate_under_bar: HighestRates,
    /// payrelay's p99 over canned's at the step nearest [`PEAK_RATE_PER_S`].
    pub peak: Option<PeakComparison>,
}

impl CapacityReport {
    /// Fills in the conclusions from the steps.
    pub fn conclude(&mut self) {
        self.highest_rate_under_bar = HighestRates {
            payrelay_per_s: highest_rate_under_bar(&self.steps, Subject::Payrelay),
            canned_per_s: highest_rate_under_bar(&self.steps, Subject::Canned),
        };
        self.peak = peak_comparison(&self.steps, PEAK_RATE_PER_S);
    }
}

/// The table's header and one row per backend and step.
pub fn table(report: &CapacityReport) -> String {
    let mut out = format!(
        "\n== capacity: open-model POST /payments, {} s per step, {} connections, envelope {} ==\n",
        report.step_s,
        report.connections,
        if report.envelope_applied { "applied" } else { "not applied" }
    );
    out.push_str(&header());
    for step in &report.steps {
        for backend in &step.backends {
            out.push_str(&row(step.rate_per_s, backend));
        }
    }
    out.push_str(&conclusions(report));
    out
}

/// The columns' names.
pub(super) fn header() -> String {
    format!(
        "{:>8} {:<9} {:>10} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7}  {}\n",
        "rate/s",
        "backend",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "failed",
        "missed",
        "lag p99",
        "CPU s per 1,000 payments"
    )
}

/// One backend's row.
pub(super) fn row(rate_per_s: f64, backend: &BackendStep) -> String {
    let cpu: Vec<String> = backend
        .cpu
        .iter()
        .map(|p| {
            let per_1000 = p.cpu_s_per_1000_payments.map_or("-".to_owned(), |s| format!("{s:.4}"));
            format!("{} {per_1000}", p.process)
        })
        .collect();
    format!(
        "{:>8} {:<9} {:>10.1} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>6} {:>7.3}  {}{}\n",
        rate_per_s,
        backend.backend.name(),
        backend.achieved_per_s,
        backend.latency.p50_ms,
        backend.latency.p99_ms,
        backend.latency.max_ms,
        backend.failures,
        backend.schedule_misses,
        backend.start_lag_p99_ms,
        cpu.join("  "),
        if backend.under_bar { "" } else { "  (over the bar)" }
    )
}

/// The two conclusions, in words.
fn conclusions(report: &CapacityReport) -> String {
    let rate =
        |r: Option<f64>| r.map_or("none (the first step failed)".to_owned(), |r| format!("{r}/s"));
    let highest = &report.highest_rate_under_bar;
    let mut out = format!(
        "highest rate with p99 <= {} ms, nothing failed or missed: payrelay {}, canned {}\n",
        report.p99_bar_ms,
        rate(highest.payrelay_per_s),
        rate(highest.canned_per_s)
    );
    match &report.peak {
        Some(peak) => out.push_str(&format!(
            "at {}/s (nearest the contest's peak, {PEAK_RATE_PER_S}/s): payrelay p99 {:.3} ms / \
             canned p99 {:.3} ms = {}\n",
            peak.rate_per_s,
            peak.payrelay_p99_ms,
            peak.canned_p99_ms,
            peak.p99_ratio.map_or("- (canned answered nothing)".to_owned(), |r| format!("{r}x"))
        )),
        None => out.push_str("no step measured both backends\n"),
    }
    out
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend's record at a step with this p99 and these failures.
    fn measured(backend: Subject, rate_per_s: f64, p99_ms: f64, failures: u64) -> BackendStep {
        BackendStep {
            backend,
            offered_per_s: rate_per_s,
            achieved_per_s: rate_per_s,
            scheduled: 100,
            ok: 100 - failures,
            failures,
            failed_status: failures,
            failed_timeout: 0,
            failed_connect: 0,
            failed_io: 0,
            schedule_misses: 0,
            latency: LatencyMs { p50_ms: p99_ms / 2.0, p99_ms, max_ms: p99_ms * 2.0 },
            start_lag_p99_ms: 0.01,
            cpu: Vec::new(),
            under_bar: failures == 0 && p99_ms <= P99_BAR_MS,
        }
    }

    /// A step with payrelay's and canned's p99 (and payrelay's failures).
    fn step(rate_per_s: f64, payrelay_p99_ms: f64, canned_p99_ms: f64, failures: u64) -> Step {
        Step {
            rate_per_s,
            first: Subject::Payrelay,
            backends: vec![
                measured(Subject::Payrelay, rate_per_s, payrelay_p99_ms, failures),
                measured(Subject::Canned, rate_per_s, canned_p99_ms, 0),
            ],
        }
    }

    /// Goal: p50 ≤ p99 ≤ max in ms, k6's interpolation, microsecond rounding, zeros without
    /// samples. Method: 1..=1001 µs, unsorted (p50 at rank 500, p99 at rank 990), then 1..=100
    /// µs (p99 at rank 98.01: 99.01 µs, rounded to 0.099 ms).
    #[test]
    fn latency_percentiles_in_ms() {
        let mut samples: Vec<u64> = (1..=1001).rev().collect();
        let latency = LatencyMs::of(&mut samples);
        assert_eq!(latency, LatencyMs { p50_ms: 0.501, p99_ms: 0.991, max_ms: 1.001 });
        let mut samples: Vec<u64> = (1..=100).collect();
        assert_eq!(LatencyMs::of(&mut samples).p99_ms, 0.099);
        assert!(latency.p50_ms <= latency.p99_ms && latency.p99_ms <= latency.max_ms);
        assert_eq!(LatencyMs::of(&mut []), LatencyMs { p50_ms: 0.0, p99_ms: 0.0, max_ms: 0.0 });
    }

    /// Goal: CPU per 1,000 payments is CPU × 1000 / payments, and absent without payments or
    /// a reading. Method: literal values.
    #[test]
    fn cpu_per_thousand_payments() {
        assert_eq!(cpu_s_per_1000(Some(0.5), 10_000), Some(0.05));
        assert_eq!(cpu_s_per_1000(Some(0.5), 0), None);
        assert_eq!(cpu_s_per_1000(None, 10_000), None);
        assert_eq!(cpu_s_per_1000(Some(f64::NAN), 10), None);
    }

    /// Goal: a step is under the bar only with p99 ≤ 1 ms, no failure, no miss and something
    /// answered. Method: one measured step, then each condition broken in turn.
    #[test]
    fn under_bar_needs_every_condition() {
        let base = StepReport {
            rate_per_s: 500.0,
            window_s: 1.0,
            scheduled: 3,
            sent: 3,
            ok: 3,
            latencies_us: vec![300, 400, 1000],
            start_lags_us: vec![5, 5, 5],
            cpu_s: vec![("a".to_owned(), Some(0.003))],
            ..StepReport::default()
        };
        let record = BackendStep::new(Subject::Payrelay, &base);
        assert!(record.under_bar, "{record:?}");
        assert_eq!(record.cpu[0].cpu_s_per_1000_payments, Some(1.0));
        assert_eq!(record.achieved_per_s, 3.0);
        let slow = StepReport { latencies_us: vec![300, 400, 1100], ..base.clone() };
        let failed = StepReport { ok: 2, failed_timeout: 1, ..base.clone() };
        let missed = StepReport { sent: 2, schedule_misses: 1, ..base.clone() };
        let silent = StepReport { ok: 0, latencies_us: Vec::new(), ..base.clone() };
        for broken in [slow, failed, missed, silent] {
            assert!(!BackendStep::new(Subject::Payrelay, &broken).under_bar, "{broken:?}");
        }
    }

    /// Goal: the highest rate under the bar is the top of the unbroken run of passing steps
    /// from the lowest rate, per backend: a pass above a failure does not count, failed POSTs
    /// fail a step, and a first step that fails gives none. Method: hand-made steps.
    #[test]
    fn highest_rate_is_the_top_of_the_passing_run() {
        let steps = [
            step(500.0, 0.4, 0.3, 0),
            step(600.0, 0.6, 0.3, 0),
            step(750.0, 1.2, 0.4, 0),
            step(1000.0, 0.9, 0.5, 0),
        ];
        assert_eq!(highest_rate_under_bar(&steps, Subject::Payrelay), Some(600.0));
        assert_eq!(highest_rate_under_bar(&steps, Subject::Canned), Some(1000.0));
        let failing = [step(500.0, 0.4, 0.3, 0), step(600.0, 0.5, 0.3, 2)];
        assert_eq!(highest_rate_under_bar(&failing, Subject::Payrelay), Some(500.0));
        let exactly = [step(500.0, P99_BAR_MS, 0.3, 0)];
        assert_eq!(highest_rate_under_bar(&exactly, Subject::Payrelay), Some(500.0));
        assert_eq!(highest_rate_under_bar(&[step(500.0, 1.01, 0.3, 0)], Subject::Payrelay), None);
        assert_eq!(highest_rate_under_bar(&[], Subject::Payrelay), None);
    }

    /// Goal: the ratio is payrelay's p99 over canned's at the step nearest the peak rate (the
    /// lower one on a tie), and absent when canned has no p99 or no step ran. Method:
    /// hand-made steps around 600/s.
    #[test]
    fn peak_ratio_at_the_nearest_step() {
        let steps = [step(500.0, 0.5, 0.25, 0), step(750.0, 0.9, 0.3, 0)];
        let peak = peak_comparison(&steps, PEAK_RATE_PER_S).expect("a step");
        assert_eq!(peak.rate_per_s, 500.0);
        assert_eq!(peak.p99_ratio, Some(2.0));
        let steps = [step(500.0, 0.5, 0.25, 0), step(600.0, 0.9, 0.3, 0), step(750.0, 1.0, 1.0, 0)];
        let peak = peak_comparison(&steps, PEAK_RATE_PER_S).expect("a step");
        assert_eq!((peak.rate_per_s, peak.payrelay_p99_ms, peak.canned_p99_ms), (600.0, 0.9, 0.3));
        assert_eq!(peak.p99_ratio, Some(3.0));
        let tie = [step(550.0, 0.5, 0.25, 0), step(650.0, 0.9, 0.3, 0)];
        assert_eq!(peak_comparison(&tie, PEAK_RATE_PER_S).map(|p| p.rate_per_s), Some(550.0));
        let silent_floor = [step(600.0, 0.5, 0.0, 0)];
        let peak = peak_comparison(&silent_floor, PEAK_RATE_PER_S).expect("a step");
        assert_eq!(peak.p99_ratio, None);
        assert_eq!(peak_comparison(&[], PEAK_RATE_PER_S), None);
    }

    /// Goal: the table has a row per backend and step and states both conclusions; the JSON
    /// carries the documented keys. Method: a two-step report.
    #[test]
    fn table_and_json_show_steps_and_conclusions() {
        let mut report = CapacityReport {
            started_at: "2026-01-01T00:00:00.000Z".to_owned(),
            machine: Machine::read(),
            envelope_applied: false,
            envelope_note: "not requested".to_owned(),
            step_s: 2.0,
            warmup_s: 1.0,
            connections: 8,
            request_timeout_ms: 1500,
            p99_bar_ms: P99_BAR_MS,
            steps: vec![step(500.0, 0.5, 0.25, 0), step(600.0, 1.5, 0.3, 0)],
            highest_rate_under_bar: HighestRates { payrelay_per_s: None, canned_per_s: None },
            peak: None,
        };
        report.conclude();
        assert_eq!(report.highest_rate_under_bar.payrelay_per_s, Some(500.0));
        let text = table(&report);
        let rows = |backend: &str| {
            text.lines().filter(|l| l.split_whitespace().nth(1) == Some(backend)).count()
        };
        assert_eq!((rows("payrelay"), rows("canned")), (2, 2), "{text}");
        assert!(text.contains("(over the bar)"), "600/s is over it: {text}");
        assert!(text.contains("payrelay 500/s, canned 600/s"), "{text}");
        assert!(text.contains("= 5x"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        let first = &json["steps"][0]["backends"][0];
        for key in ["backend", "offered_per_s", "achieved_per_s", "p50_ms", "p99_ms", "max_ms"] {
            assert!(first.get(key).is_some(), "{key} missing in {first}");
        }
        assert_eq!(json["highest_rate_under_bar"]["payrelay_per_s"], 500.0);
        assert_eq!(json["peak"]["p99_ratio"], 5.0);
    }
}
