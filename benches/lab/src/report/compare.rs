//! Side by side: the key figures of several runs in one table, each with its ratio to the first
//! run's (the picture that overlays their series is [`crate::report`]'s). Text only: it reads the
//! runs and draws nothing.

use super::run::Run;
use crate::results::Results;

/// One row of the table: a figure of the results and how many decimals it is shown with.
struct Figure {
    name: &'static str,
    decimals: usize,
    value: fn(&Results) -> Option<f64>,
}

/// The rows, in order: the score and what makes it, then the load and the cost.
const FIGURES: [Figure; 13] = [
    Figure { name: "score", decimals: 2, value: |r| Some(r.score) },
    Figure { name: "score_ratio", decimals: 4, value: |r| Some(r.score_ratio) },
    Figure { name: "p99_ms", decimals: 2, value: |r| Some(r.p99_ms) },
    Figure { name: "post_p50_ms", decimals: 3, value: |r| Some(r.post_p50_ms) },
    Figure { name: "inconsistencies", decimals: 0, value: |r| Some(r.inconsistencies as f64) },
    Figure { name: "lag", decimals: 0, value: |r| Some(r.lag as f64) },
    Figure { name: "default_count", decimals: 0, value: |r| Some(r.default_count as f64) },
    Figure { name: "fallback_count", decimals: 0, value: |r| Some(r.fallback_count as f64) },
    Figure { name: "posts_ok", decimals: 0, value: |r| Some(r.posts_ok as f64) },
    Figure { name: "posts_failed", decimals: 0, value: |r| Some(r.posts_failed as f64) },
    Figure { name: "cpu_s", decimals: 2, value: cpu_s },
    Figure { name: "late_landings", decimals: 0, value: |r| r.late_landings.map(|n| n as f64) },
    Figure {
        name: "late_landing_max_ms",
        decimals: 0,
        value: |r| r.late_landing_max_ms.map(|ms| ms as f64),
    },
];

/// CPU seconds of both payrelay instances together; `None` when neither was measured (a run
/// against `--target`).
fn cpu_s(results: &Results) -> Option<f64> {
    match (results.backend_a_cpu_s, results.backend_b_cpu_s) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

/// Width of the figure names' column: the longest name (`late_landing_max_ms`) and a space.
const NAME_WIDTH: usize = 20;
const _: () = assert!(names_fit(), "a figure's name is as wide as its column or wider");

/// Whether every figure's name leaves at least a space in its column.
const fn names_fit() -> bool {
    let mut index = 0;
    while index < FIGURES.len() {
        if FIGURES[index].name.len() >= NAME_WIDTH {
            return false;
        }
        index += 1;
    }
    true
}
/// Width of a value.
const VALUE_WIDTH: usize = 11;
/// Width of a ratio (`x1.053`).
const RATIO_WIDTH: usize = 8;

/// The table: a row per figure, a column per run headed by its label; every run after the first
/// shows each figure's ratio to the first run's (`x1.053`), or `-` where there is none (a figure
/// missing from either run, or a first run's 0 against another value; 0 against 0 is `x1.000`).
pub fn table(runs: &[Run<'_>]) -> String {
    let widths: Vec<usize> = runs
        .iter()
        .enumerate()
        .map(|(index, run)| {
            let cell = if index == 0 { VALUE_WIDTH } else { VALUE_WIDTH + 1 + RATIO_WIDTH };
            run.label.chars().count().max(cell)
        })
        .collect();
    let mut out = format!("{:<NAME_WIDTH$}", "figure");
    for (run, width) in runs.iter().zip(&widths) {
        out.push_str(&format!("  {:>width$}", run.label));
    }
    out.push('\n');
    for figure in &FIGURES {
        out.push_str(&format!("{:<NAME_WIDTH$}", figure.name));
        let first = runs.first().and_then(|run| (figure.value)(run.results));
        for (index, (run, width)) in runs.iter().zip(&widths).enumerate() {
            let value = (figure.value)(run.results);
            let shown = value.map_or("-".to_owned(), |v| format!("{v:.*}", figure.decimals));
            let cell = if index == 0 {
                shown
            } else {
                format!("{shown:>VALUE_WIDTH$} {:>RATIO_WIDTH$}", ratio(first, value))
            };
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    out
}

/// `value / first` as `x1.053`, or `-` where it means nothing.
fn ratio(first: Option<f64>, value: Option<f64>) -> String {
    match (first, value) {
        (Some(first), Some(value)) if first != 0.0 => format!("x{:.3}", value / first),
        (Some(_), Some(0.0)) => "x1.000".to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the ratio reads as documented at its edges. Method: a plain ratio, 0 against 0, 0
    /// against a value, a missing figure.
    #[test]
    fn ratio_edges() {
        assert_eq!(ratio(Some(2.0), Some(3.0)), "x1.500");
        assert_eq!(ratio(Some(0.0), Some(0.0)), "x1.000");
        assert_eq!(ratio(Some(0.0), Some(4.0)), "-");
        assert_eq!(ratio(None, Some(4.0)), "-");
        assert_eq!(ratio(Some(4.0), None), "-");
    }
}
