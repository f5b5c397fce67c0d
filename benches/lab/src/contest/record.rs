//! From what the load measured to the results record: the score, then what the pair, the crash
//! harness and the processors add to it. Only fills [`Results`]; writing it is `output.rs`'s.

use std::net::SocketAddr;

use crate::{
    backend::{CgroupMemory, Usage},
    crash,
    emulator::Emulator,
    load::LoadReport,
    money,
    provenance::{self, Machine},
    results::{Results, SCHEMA_VERSION},
    scenario::Scenario,
    score::{self, ScoreInput},
    series::round3,
    stats, time,
};

/// How much sooner than the checker's window end a landing counts as late: the checker's three
/// queries are not evaluated at one instant, so a payment stored just under `window_end_s`
/// after its `requestedAt` can already be caught between them.
pub const LATE_SLACK_MS: i64 = 100;

/// Scores a load report.
pub fn results(
    scenario: &Scenario,
    report: &LoadReport,
    target: SocketAddr,
    envelope_applied: bool,
) -> Results {
    let mut all = report.all_latencies_us();
    let p99_ms = stats::percentile_ms(&mut all, 0.99);
    let scored = score::score(&ScoreInput {
        default_count: report.default.count,
        default_cents: report.default.cents,
        fallback_count: report.fallback.count,
        fallback_cents: report.fallback.cents,
        fee_default: scenario.fee_default,
        fee_fallback: scenario.fee_fallback,
        p99_ms,
        inconsistencies: report.inconsistencies,
        posts_ok: report.posts_ok,
    });
    let upper_bound_cents =
        score::upper_bound_cents(report.posts_ok, scenario.amount_cents(), scenario.fee_default);
    let mut posts = report.post_latencies_us.clone();
    let mut summaries = report.summary_latencies_us.clone();
    let ms = |samples: &mut Vec<u64>, p: f64| round3(stats::percentile_ms(samples, p));
    Results {
        schema_version: SCHEMA_VERSION,
        commit: Some(provenance::COMMIT.to_owned()),
        machine: Some(Machine::read()),
        score: money::cents_to_f64(scored.score_cents),
        upper_bound: money::cents_to_f64(upper_bound_cents),
        score_ratio: if upper_bound_cents > 0 {
            (scored.score_cents as f64 / upper_bound_cents as f64 * 10_000.0).round() / 10_000.0
        } else {
            0.0
        },
        gross: money::cents_to_f64(scored.gross_cents),
        fees: money::cents_to_f64(scored.fees_cents),
        p99_ms: score::p99_scored_ms(p99_ms),
        p99_bonus: scored.bonus_percent as f64 / 100.0,
        fine: scored.fine_percent as f64 / 100.0,
        inconsistencies: report.inconsistencies,
        checks: report.checks.len() as u64,
        lag: scored.lag,
        caixa_dois: scored.caixa_dois,
        posts_ok: report.posts_ok,
        posts_failed: report.posts_failed(),
        posts_failed_timeout: report.posts_failed_timeout,
        posts_failed_status: report.posts_failed_status,
        posts_failed_connect: report.posts_failed_connect,
        posts_failed_io: report.posts_failed_io,
        default_count: report.default.count,
        fallback_count: report.fallback.count,
        default_amount: money::cents_to_f64(report.default.cents),
        fallback_amount: money::cents_to_f64(report.fallback.cents),
        post_p50_ms: ms(&mut posts, 0.50),
        post_p90_ms: ms(&mut posts, 0.90),
        post_p99_ms: ms(&mut posts, 0.99),
        post_max_ms: ms(&mut posts, 1.0),
        summary_p99_ms: ms(&mut summaries, 0.99),
        summary_failures: report.summary_failures,
        admin_failures: report.admin_failures,
        late_landings: None,
        late_landing_max_ms: None,
        default_admitted_max: None,
        fallback_admitted_max: None,
        kills: None,
        ids_lost: None,
        ids_twice: None,
        final_summary_mismatch: None,
        backend_a_rss_mb_max: None,
        backend_a_cpu_s: None,
        backend_b_rss_mb_max: None,
        backend_b_cpu_s: None,
        backend_a_cgroup_memory_peak_mb: None,
        backend_b_cgroup_memory_peak_mb: None,
        envelope_applied,
        scenario: scenario.name.clone(),
        started_at: time::format_iso_ms(report.started_at_ms),
        target: format!("http://{target}"),
        series: Some(report.series.clone()),
    }
}

/// Files what the lab's own processors saw: payments landing late (later than the checker's
/// window end less [`LATE_SLACK_MS`]) and the most requests each held at once.
pub fn record_processors(results: &mut Results, emulator: &Emulator, window_end_s: f64) {
    let late_ms = (window_end_s * 1000.0) as i64 - LATE_SLACK_MS;
    let (count, max_ms) = emulator.late_landings(late_ms);
    results.late_landings = Some(count);
    results.late_landing_max_ms = Some(max_ms);
    let admitted_max = |which| Some(emulator.admitted_max(which) as u64);
    results.default_admitted_max = admitted_max(crate::emulator::Which::Default);
    results.fallback_admitted_max = admitted_max(crate::emulator::Which::Fallback);
}

/// Files the crash harness's findings: kills made, accepted payments lost or paid twice in
/// `emulator`'s books, and the final summary's mismatch.
pub fn record_crash_checks(
    results: &mut Results,
    report: &LoadReport,
    kills_made: u64,
    emulator: &Emulator,
) {
    let books = crash::check_books(emulator, &report.accepted_ids);
    results.kills = Some(kills_made);
    results.ids_lost = Some(books.lost);
    results.ids_twice = Some(books.twice);
    results.final_summary_mismatch = report.final_summary_mismatch;
}

/// Files each instance's resource use (`a`, `b`) under its own columns.
pub fn record_usage(results: &mut Results, usage: Vec<(&'static str, Usage)>) {
    for (name, usage) in usage {
        let (rss, cpu) = match name {
            "a" => (&mut results.backend_a_rss_mb_max, &mut results.backend_a_cpu_s),
            _ => (&mut results.backend_b_rss_mb_max, &mut results.backend_b_cpu_s),
        };
        *rss = Some(round3(usage.rss_mb_max));
        *cpu = Some(round3(usage.cpu_s));
    }
}

/// Bytes in the results' MB: 2^20, as the RSS columns (kB of `/proc` over 1024).
const MIB: f64 = 1_048_576.0;

/// Files each instance's memory cgroup peak (`a`, `b`) under its own column.
pub fn record_cgroup_peaks(
    results: &mut Results,
    memory: Vec<(&'static str, Option<CgroupMemory>)>,
) {
    for (name, memory) in memory {
        let peak = match name {
            "a" => &mut results.backend_a_cgroup_memory_peak_mb,
            _ => &mut results.backend_b_cgroup_memory_peak_mb,
        };
        *peak = memory.and_then(|m| m.peak_bytes).map(|bytes| round3(bytes as f64 / MIB));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{super::output::table, *};

    /// Goal: results files written before the cgroup peaks existed still read, the peaks null,
    /// and the peaks are filed under each instance's key and read back. Method: the checked-in
    /// `ci-short-payrelay.json`, which has none; then peaks recorded into it, written and read.
    #[test]
    fn cgroup_peaks_are_optional_in_results_files() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-short-payrelay.json");
        let text = std::fs::read_to_string(&path).expect("the fixture");
        assert!(!text.contains("cgroup_memory_peak"), "the fixture predates the peaks");
        let mut results: Results = serde_json::from_str(&text).expect("an older file reads");
        assert_eq!(results.backend_a_cgroup_memory_peak_mb, None);
        let peak_bytes = Some(30 << 20);
        let a = CgroupMemory { limit_bytes: 170 << 20, usage_bytes: 20 << 20, peak_bytes };
        record_cgroup_peaks(&mut results, vec![("a", Some(a)), ("b", None)]);
        assert_eq!(results.backend_a_cgroup_memory_peak_mb, Some(30.0));
        assert_eq!(results.backend_b_cgroup_memory_peak_mb, None);
        let written = serde_json::to_string(&results).expect("written");
        assert_eq!(serde_json::from_str::<Results>(&written).expect("read back"), results);
        assert!(table(&results).contains("backend_a_cgroup_memory_peak_mb 30"));
    }
}
