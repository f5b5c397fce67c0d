//! The picture of a run, or of several overlaid: one self-contained SVG of panels over the test's
//! time, drawn with plotters from the results JSON alone (its `series`).
//!
//! Layout, top to bottom: a header with each run's score line; the timeline (the scenario's
//! stages per processor and every consistency check, red where it found a difference); then
//! one panel per quantity, sharing the time axis (`panels.rs` lists them). A panel no run measured (the
//! instances' panels of a `--target` run) is left out.
//!
//! How the file is put together: every layer (the header, a panel's background bands, its
//! axes, each of its series, the check marks) is a plotters drawing of its own, the size of its
//! panel, and the document stacks them as nested `<svg>` elements, each inside a `<g>` whose
//! `id` and `class` name what it holds (`series-latency-p99_ms-0`, `checks-inconsistent-0`)
//! and whose `data-points` says how many points it draws. So a test, or a reader with a text
//! editor, finds each series by name without decoding plotters' output, and a browser shows
//! the layers on top of one another as one picture.

mod commands;
mod draw;
mod panels;

use std::path::Path;

pub use commands::{compare_command, report_command};

use crate::{contest::Results, series::Series};

/// Largest results file read, bytes. A 3600 s run (the longest scenario allowed) with both
/// instances' series is about 3 MB; anything far beyond that is not a results file, and reading
/// it whole could take the machine's memory.
pub const RESULTS_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most runs in one picture: each needs a colour of its own (`PALETTE` in `draw.rs`) that a
/// reader can tell apart from the others.
pub const RUNS_MAX: usize = 8;
const _: () = assert!(RUNS_MAX <= draw::PALETTE.len(), "a colour per run");

/// One run to draw: its results and the name the picture gives it (its file's name).
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// Shown in the header and legend.
    pub label: &'a str,
    /// The run's results, with its `series`.
    pub results: &'a Results,
}

/// Reads a results JSON written by `rinha-lab contest`, checking what the report relies on: a
/// file too large, malformed JSON, a missing key or a series whose arrays disagree with its
/// length is an error naming the file.
pub fn read_results(path: &Path) -> Result<Results, String> {
    let shown = path.display();
    let size = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?.len();
    if size > RESULTS_BYTES_MAX {
        return Err(format!(
            "{shown}: {size} bytes, more than a results file's {RESULTS_BYTES_MAX}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let results: Results = serde_json::from_str(&text)
        .map_err(|e| format!("{shown}: not a rinha-lab results file: {e}"))?;
    if let Some(series) = &results.series {
        series.validate().map_err(|e| format!("{shown}: series: {e}"))?;
    }
    Ok(results)
}

/// Draws `runs` and writes the picture to `path`.
pub fn write(path: &Path, runs: &[Run<'_>]) -> Result<(), String> {
    let svg = render(runs)?;
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

/// The picture of `runs` (one: its report; several: overlaid, one colour each), as SVG text.
pub fn render(runs: &[Run<'_>]) -> Result<String, String> {
    if runs.is_empty() || runs.len() > RUNS_MAX {
        return Err(format!("a picture draws 1 to {RUNS_MAX} runs, not {}", runs.len()));
    }
    let series: Vec<Option<&Series>> = runs.iter().map(|run| run.results.series.as_ref()).collect();
    let x_max_s =
        series.iter().flatten().map(|s| s.duration_s.max(s.seconds as f64)).fold(1.0, f64::max);
    let mut layers = Vec::new();
    let mut top_px = 0;
    let header = draw::header(runs)?;
    top_px += header.height_px;
    layers.push(header);
    let timeline = draw::timeline(&series, x_max_s, top_px)?;
    top_px += timeline.height_px;
    layers.push(timeline);
    let backdrop = draw::Backdrop::new(&series, x_max_s);
    for panel in panels::panels(&series) {
        let drawn = draw::panel(&panel, runs.len(), &backdrop, x_max_s, top_px)?;
        top_px += drawn.height_px;
        layers.push(drawn);
    }
    draw::document(&layers, top_px)
}
