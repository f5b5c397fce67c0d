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
//!
//! Files: `run.rs` (a run and reading its file), `panels.rs` (which panels, from the series),
//! `draw.rs` (each layer), `compare.rs` (the key figures side by side, as text); `mod.rs` puts
//! the picture together.

pub mod compare;
mod draw;
mod panels;
mod run;

use std::path::Path;

pub use run::{RESULTS_BYTES_MAX, RUNS_MAX, Run, read_results};

use crate::series::Series;

const _: () = assert!(RUNS_MAX <= draw::PALETTE.len(), "a colour per run");

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
