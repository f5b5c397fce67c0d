//! What a finished contest leaves: the results JSON, its report beside it and the table on
//! stdout. Apart from the run so that writing never reaches back into running.

use std::path::Path;

use crate::{report, results::Results};

/// Writes `results` as pretty JSON, newline-terminated.
pub fn write_json(path: &Path, results: &Results) -> Result<(), String> {
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// The report beside the results JSON (`X.json` gives `X.svg`). A report that cannot be written
/// is a warning, not a failed run: the results are safe in the JSON, and `rinha-lab report`
/// draws them again.
pub fn write_report(json: &Path, results: &Results, verbose: bool) {
    let svg = json.with_extension("svg");
    if svg == json {
        eprintln!("warning: no report drawn: it would overwrite the results, {}", json.display());
        return;
    }
    let label = json.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match report::write(&svg, &[report::Run { label: &label, results }]) {
        Ok(()) if verbose => eprintln!("report: {}", svg.display()),
        Ok(()) => {}
        Err(e) => eprintln!("warning: no report drawn: {e}"),
    }
}

/// The results as an aligned two-column table.
pub fn table(results: &Results) -> String {
    let value = serde_json::to_value(results).unwrap_or_default();
    let mut out = String::from("\n== rinha-lab results ==\n");
    if let Some(map) = value.as_object() {
        // Keep the declaration order of the struct rather than the map's sorted order.
        for key in FIELD_ORDER {
            if let Some(v) = map.get(*key) {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".to_owned(),
                    other => other.to_string(),
                };
                out.push_str(&format!("{key:<22} {shown}\n"));
            }
        }
    }
    out
}

const FIELD_ORDER: &[&str] = &[
    "scenario",
    "started_at",
    "target",
    "score",
    "upper_bound",
    "score_ratio",
    "gross",
    "fees",
    "p99_ms",
    "p99_bonus",
    "fine",
    "inconsistencies",
    "checks",
    "lag",
    "caixa_dois",
    "posts_ok",
    "posts_failed",
    "posts_failed_timeout",
    "posts_failed_status",
    "posts_failed_connect",
    "posts_failed_io",
    "default_count",
    "fallback_count",
    "default_amount",
    "fallback_amount",
    "post_p50_ms",
    "post_p90_ms",
    "post_p99_ms",
    "post_max_ms",
    "summary_p99_ms",
    "summary_failures",
    "admin_failures",
    "late_landings",
    "late_landing_max_ms",
    "default_admitted_max",
    "fallback_admitted_max",
    "kills",
    "ids_lost",
    "ids_twice",
    "final_summary_mismatch",
    "backend_a_rss_mb_max",
    "backend_a_cpu_s",
    "backend_b_rss_mb_max",
    "backend_b_cpu_s",
    "backend_a_cgroup_memory_peak_mb",
    "backend_b_cgroup_memory_peak_mb",
    "envelope_applied",
];
