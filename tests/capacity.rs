//! The capacity sweep end to end, short: two real payrelay instances sharing one port (in their
//! cgroups when the machine allows, as the bench runs them), the lab's processors at 0 ms, a
//! real `canned` process, two low rates of open-model load on each, and the report's shape.
//!
//! `harness = false` (see `Cargo.toml`): the sweep starts this same executable again as its
//! canned process (`rinha_lab::capacity::serve_if_child`), which needs a `main` of our own; the
//! payrelay package builds no `rinha-lab` binary to start instead. It answers `--list` and name
//! filters the way libtest does, so `cargo test NAME` skips it quickly.

use std::{
    env,
    path::{Path, PathBuf},
    process::ExitCode,
};

use rinha_lab::capacity::{self, CannedCommand, CapacityOptions, CapacityReport, Subject};
use serde_json::Value;

/// The one test here.
const TEST_NAME: &str = "short_sweep_reports_both_backends_at_every_step";
/// libtest options that take a value: their value is not a name filter.
const VALUE_OPTIONS: [&str; 6] =
    ["--test-threads", "--skip", "--format", "--color", "--logfile", "-Z"];

fn main() -> ExitCode {
    if let Some(code) = capacity::serve_if_child() {
        return code;
    }
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return ExitCode::SUCCESS;
    }
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if VALUE_OPTIONS.contains(&arg.as_str()) {
            iter.next();
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    let exact = args.iter().any(|a| a == "--exact");
    let selected = filters.is_empty()
        || filters.iter().any(|f| if exact { *f == TEST_NAME } else { TEST_NAME.contains(f) });
    // Not ignored: `--ignored` alone selects nothing here.
    if !selected
        || (args.iter().any(|a| a == "--ignored") && !args.iter().any(|a| a == "--include-ignored"))
    {
        println!("running 0 tests ({TEST_NAME} filtered out)");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    short_sweep_reports_both_backends_at_every_step();
    println!("test {TEST_NAME} ... ok");
    ExitCode::SUCCESS
}

/// Goal: a sweep measures every step on both backends and reports what the README promises,
/// with sane values (something answered, p50 ≤ p99 ≤ max, CPU per 1,000 payments > 0 for each
/// of payrelay's instances and for canned), the conclusions and the JSON file; and it leaves no
/// process behind. Not a speed: it runs every step (`stop_over_bar` off) whatever the p99 on a
/// busy machine. Method: 100/s and 200/s, 2 s each after a 0.5 s warm-up, 16 connections (so
/// the kernel's SO_REUSEPORT hashing gives both instances some), ephemeral ports throughout.
fn short_sweep_reports_both_backends_at_every_step() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json = env::temp_dir().join(format!("payrelay-capacity-test-{}.json", std::process::id()));
    let canned = CannedCommand::this_executable().expect("this executable");
    let mut options =
        CapacityOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_payrelay")), canned, root);
    options.rates_per_s = vec![100.0, 200.0];
    options.step = std::time::Duration::from_secs(2);
    options.warmup_min = std::time::Duration::from_millis(500);
    options.connections = 16;
    options.stop_over_bar = false;
    options.json = Some(json.clone());
    options.verbose = false;
    let report = capacity::run(&options).unwrap_or_else(|e| panic!("capacity sweep failed: {e}"));
    assert_report_shape(&report);
    assert_json_shape(&json, &report);
    let _ = std::fs::remove_file(&json);
    assert_eq!(children(), Vec::<String>::new(), "no child process outlives the sweep");
}

/// Every step has both backends, payrelay first, with sane values.
fn assert_report_shape(report: &CapacityReport) {
    let rates: Vec<f64> = report.steps.iter().map(|s| s.rate_per_s).collect();
    assert_eq!(rates, [100.0, 200.0], "{report:#?}");
    for step in &report.steps {
        let backends: Vec<Subject> = step.backends.iter().map(|b| b.backend).collect();
        assert_eq!(backends, [Subject::Payrelay, Subject::Canned], "{step:#?}");
        for backend in &step.backends {
            let context =
                format!("{} at {}/s: {backend:#?}", backend.backend.name(), step.rate_per_s);
            assert_eq!(backend.offered_per_s, step.rate_per_s, "{context}");
            assert_eq!(backend.scheduled, (step.rate_per_s * 2.0) as u64, "{context}");
            assert!(backend.ok > 0 && backend.achieved_per_s > 0.0, "{context}");
            assert_eq!(backend.ok + backend.failures + backend.schedule_misses, backend.scheduled);
            let latency = backend.latency;
            assert!(latency.p50_ms > 0.0, "{context}");
            assert!(
                latency.p50_ms <= latency.p99_ms && latency.p99_ms <= latency.max_ms,
                "{context}"
            );
            let processes: Vec<&str> = backend.cpu.iter().map(|p| p.process.as_str()).collect();
            let expected: &[&str] =
                if backend.backend == Subject::Payrelay { &["a", "b"] } else { &["canned"] };
            assert_eq!(processes, expected, "{context}");
            for process in &backend.cpu {
                assert!(process.cpu_s_per_1000_payments.is_some_and(|s| s > 0.0), "{context}");
            }
        }
        let first = step.first;
        let expected_first =
            if step.rate_per_s == 100.0 { Subject::Payrelay } else { Subject::Canned };
        assert_eq!(first, expected_first, "the order alternates");
    }
    let peak = report.peak.as_ref().expect("a peak comparison");
    assert_eq!(peak.rate_per_s, 200.0, "the step nearest 600/s");
    assert!(peak.p99_ratio.is_some_and(|r| r > 0.0), "{peak:?}");
    assert_eq!(report.connections, 16);
}

/// The JSON file holds the same report, with the keys the README documents.
fn assert_json_shape(path: &Path, report: &CapacityReport) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(json, serde_json::to_value(report).expect("the report as JSON"));
    for key in
        ["started_at", "machine", "envelope_applied", "steps", "highest_rate_under_bar", "peak"]
    {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let backend = &json["steps"][0]["backends"][0];
    for key in [
        "backend",
        "offered_per_s",
        "achieved_per_s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "failures",
        "schedule_misses",
        "start_lag_p99_ms",
        "cpu",
        "under_bar",
    ] {
        assert!(backend.get(key).is_some(), "{key} missing in {backend}");
    }
    assert!(backend["cpu"][0].get("cpu_s_per_1000_payments").is_some(), "{backend}");
    assert!(json["peak"].get("p99_ratio").is_some());
}

/// This process's children still known to the kernel (running or unreaped), from `/proc`.
fn children() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|pids| pids.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}
