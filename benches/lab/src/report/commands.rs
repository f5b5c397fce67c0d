//! The `report` and `compare` subcommands: read results files, print, draw.

use std::path::{Path, PathBuf};

use super::{RUNS_MAX, Run, read_results, write};
use crate::{compare, contest::Results};

const REPORT_USAGE: &str = "usage: rinha-lab report RESULTS.json [--out RESULTS.svg]";
const COMPARE_USAGE: &str = "usage: rinha-lab compare A.json B.json [...] [--out compare.svg]";
/// Where `compare` draws when `--out` is not given.
const COMPARE_OUT_DEFAULT: &str = "compare.svg";

/// `rinha-lab report X.json [--out X.svg]`: draws the report of one results file (by default
/// beside it, `X.svg`).
pub fn report_command(args: &[String]) -> Result<(), String> {
    let (files, out) = files_and_out(args, REPORT_USAGE)?;
    let [file] = files.as_slice() else {
        return Err(format!("one results file to draw, {} given\n{REPORT_USAGE}", files.len()));
    };
    let results = read_results(file)?;
    if results.series.is_none() {
        return Err(format!(
            "{}: no per-second series (written before the lab recorded them): nothing to draw; \
             `rinha-lab compare` still compares its figures",
            file.display()
        ));
    }
    let out = out.unwrap_or_else(|| file.with_extension("svg"));
    refuse_overwriting_input(&out, &files)?;
    let label = labels(&files).remove(0);
    write(&out, &[Run { label: &label, results: &results }])?;
    println!("report: {}", out.display());
    Ok(())
}

/// `rinha-lab compare A.json B.json [...] [--out compare.svg]`: prints the key figures side by
/// side with their ratio to the first file's, and draws the runs' series overlaid.
pub fn compare_command(args: &[String]) -> Result<(), String> {
    let (files, out) = files_and_out(args, COMPARE_USAGE)?;
    if !(2..=RUNS_MAX).contains(&files.len()) {
        return Err(format!(
            "compare takes 2 to {RUNS_MAX} results files, {} given\n{COMPARE_USAGE}",
            files.len()
        ));
    }
    let results: Vec<Results> = files.iter().map(|f| read_results(f)).collect::<Result<_, _>>()?;
    let labels = labels(&files);
    let runs: Vec<Run<'_>> =
        labels.iter().zip(&results).map(|(label, results)| Run { label, results }).collect();
    print!("{}", compare::table(&runs));
    let out = out.unwrap_or_else(|| PathBuf::from(COMPARE_OUT_DEFAULT));
    refuse_overwriting_input(&out, &files)?;
    write(&out, &runs)?;
    println!("report: {}", out.display());
    Ok(())
}

/// The positional file names and `--out`, the only option.
fn files_and_out(args: &[String], usage: &str) -> Result<(Vec<PathBuf>, Option<PathBuf>), String> {
    let mut files = Vec::new();
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if let Some(path) = arg.strip_prefix("--out=") {
            out = Some(PathBuf::from(path));
        } else if arg == "--out" {
            let path = args.next().ok_or(format!("--out needs a value\n{usage}"))?;
            out = Some(PathBuf::from(path));
        } else if arg.starts_with("--") {
            return Err(format!("unknown option {arg}\n{usage}"));
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    Ok((files, out))
}

/// Each file's name, or its whole path where two files share a name.
fn labels(files: &[PathBuf]) -> Vec<String> {
    let name = |file: &PathBuf| {
        file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into())
    };
    let names: Vec<String> = files.iter().map(name).collect();
    let shared = names.iter().enumerate().any(|(i, n)| names[..i].contains(n));
    if shared { files.iter().map(|f| f.display().to_string()).collect() } else { names }
}

/// A picture drawn over one of its own inputs would lose that run's results.
fn refuse_overwriting_input(out: &Path, files: &[PathBuf]) -> Result<(), String> {
    if files.iter().any(|file| file == out) {
        return Err(format!("--out {} is one of the results files read", out.display()));
    }
    Ok(())
}
