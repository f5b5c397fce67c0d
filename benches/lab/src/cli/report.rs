//! `rinha-lab report` and `compare`: read results files, print, draw.

use std::path::{Path, PathBuf};

use super::{
    args::{CompareArgs, ReportArgs},
    exit::Failure,
};
use crate::{
    report::{Run, compare, read_results, write},
    results::Results,
};

/// `rinha-lab report X.json [--out X.svg]`: draws the report of one results file (by default
/// beside it, `X.svg`).
pub fn report(args: &ReportArgs) -> Result<(), Failure> {
    let file = &args.file;
    let results = read_results(file)?;
    if results.series.is_none() {
        return Err(Failure::Run(format!(
            "{}: no per-second series (written before the lab recorded them): nothing to draw; \
             `rinha-lab compare` still compares its figures",
            file.display()
        )));
    }
    let out = args.out.clone().unwrap_or_else(|| file.with_extension("svg"));
    let files = [file.clone()];
    refuse_overwriting_input(&out, &files)?;
    let label = labels(&files).remove(0);
    write(&out, &[Run { label: &label, results: &results }])?;
    println!("report: {}", out.display());
    Ok(())
}

/// `rinha-lab compare A.json B.json [...] [--out compare.svg]`: prints the key figures side by
/// side with their ratio to the first file's, and draws the runs' series overlaid.
pub fn compare(args: &CompareArgs) -> Result<(), Failure> {
    let files = &args.files;
    let results: Vec<Results> = files.iter().map(|f| read_results(f)).collect::<Result<_, _>>()?;
    let labels = labels(files);
    let runs: Vec<Run<'_>> =
        labels.iter().zip(&results).map(|(label, results)| Run { label, results }).collect();
    print!("{}", compare::table(&runs));
    refuse_overwriting_input(&args.out, files)?;
    write(&args.out, &runs)?;
    println!("report: {}", args.out.display());
    Ok(())
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

/// A picture drawn over one of its own inputs would lose that run's results: a usage error.
fn refuse_overwriting_input(out: &Path, files: &[PathBuf]) -> Result<(), Failure> {
    if files.iter().any(|file| file == out) {
        return Err(Failure::Usage(format!(
            "--out {} is one of the results files read",
            out.display()
        )));
    }
    Ok(())
}
