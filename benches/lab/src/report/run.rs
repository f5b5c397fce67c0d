//! One run as the report sees it ([`Run`]: a label and its results) and reading a results file
//! back, checked ([`read_results`]). A leaf, so that the drawing, the comparison and the
//! commands share it without importing the module that puts them together.

use std::path::Path;

use crate::results::Results;

/// Largest results file read, bytes. A 3600 s run (the longest scenario allowed) with both
/// instances' series is about 3 MB; anything far beyond that is not a results file, and reading
/// it whole could take the machine's memory.
pub const RESULTS_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most runs in one picture: each needs a colour of its own (`PALETTE` in `draw.rs`) that a
/// reader can tell apart from the others.
pub const RUNS_MAX: usize = 8;

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
