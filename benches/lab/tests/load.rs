//! The load generator end to end against the canned server: ramp, stages, checker, setup and
//! teardown, on ephemeral ports.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use rinha_lab::{
    canned,
    client::Conn,
    emulator::{self, EmulatorConfig, Which},
    load::{self, LoadPlan},
    scenario::Scenario,
};

const SCENARIO: &str = r#"
duration_s = 3
vus_max = 20
amount = 19.90
fee_default = 0.05
fee_fallback = 0.15
check_every_s = 1
window_start_s = 15
window_end_s = 1.5
timeout_ms = 1500
[[stage]]
at_s = 0.5
default = { delay_ms = 7, failing = true }
fallback = { delay_ms = 3, failing = false }
"#;

/// A silent load of `scenario` on `backend`, with `processors`' addresses, the books read in
/// process through `recorded` if given, audited if `audit_ids`.
fn plan(
    scenario: Scenario,
    backend: &canned::Canned,
    processors: &emulator::Emulator,
    recorded: Option<emulator::RecordedProbe>,
    audit_ids: bool,
) -> LoadPlan {
    LoadPlan {
        scenario,
        target: backend.addr(),
        default_addr: processors.addr(Which::Default),
        fallback_addr: processors.addr(Which::Fallback),
        recorded,
        progress_every: None,
        instances: Vec::new(),
        load_started: None,
        audit_ids,
    }
}

/// Goal: one short run does everything the official script does: changes the processors' token
/// (the old one is refused afterwards), applies the stage, ramps VUs linearly (VU k starts at
/// k/19 of 3 s and posts once a second), checks every second, and reads the processors at
/// teardown. Method: a canned 202 server as the backend, so every POST succeeds, nothing reaches
/// the processors, and our (unreadable) summaries count as zeros: no inconsistency, lag = POSTs.
#[test]
fn short_run_against_canned_backend() {
    let backend = canned::start(std::net::Ipv4Addr::LOCALHOST, 0).expect("canned server");
    let processors = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("processors");
    let mut scenario = Scenario::parse(SCENARIO).expect("scenario");
    scenario.name = "test".into();
    let plan = plan(scenario.clone(), &backend, &processors, None, false);
    let runtime = load::runtime("load-test").expect("runtime");
    let report = runtime.block_on(load::run(plan)).expect("load run");

    // VU k starts at 3k/19 s and iterates every ~1 s while before 3 s.
    let expected: u64 = (0..20u64)
        .map(|k| {
            let start_s = 3.0 * k as f64 / 19.0;
            if start_s >= 3.0 { 0 } else { (3.0 - start_s).ceil() as u64 }
        })
        .sum();
    assert!(
        report.posts_ok.abs_diff(expected) <= 3,
        "posts_ok {} vs expected {expected}",
        report.posts_ok
    );
    assert_eq!(report.posts_failed(), 0);
    assert_eq!(report.post_latencies_us.len() as u64, report.posts_ok);
    assert_eq!(report.checks.len(), 3);
    assert_eq!(report.summary_failures, 3);
    assert_eq!(report.inconsistencies, 0);
    assert_eq!((report.default.count, report.fallback.count), (0, 0));
    assert_eq!(report.admin_failures, 0);
    // Setup (2 tokens, 2 purges, the backend's purge), 3 checks x 2, 4 stage calls, 2 teardown
    // summaries.
    assert_eq!(report.admin_latencies_us.len(), 2 + 2 + 1 + 6 + 4 + 2);
    assert!(report.accepted_ids.is_empty(), "no kills: no ids kept");
    assert_eq!(report.final_summary_mismatch, None);
    assert_eq!(processors.knobs(Which::Default), (7, true));
    assert_eq!(processors.knobs(Which::Fallback), (3, false));
    // Second by second: 3 entries, every POST in one of them, each second's latency figures
    // present exactly when POSTs completed in it, and nothing the run could not see (the
    // processors' books, payrelay's instances).
    let series = &report.series;
    assert_eq!(series.seconds, 3);
    assert_eq!(series.posts_ok.iter().sum::<u64>(), report.posts_ok);
    assert_eq!(series.posts_failed, [0, 0, 0]);
    for (second, ok) in series.posts_ok.iter().enumerate() {
        assert_eq!(series.post_p50_ms[second].is_some(), *ok > 0, "{series:?}");
    }
    assert!(series.default_settled.is_empty() && series.lag.is_empty(), "{series:?}");
    assert!(series.instances.is_empty());
    assert_eq!(series.stages, Scenario::parse(SCENARIO).expect("scenario").stages);
    assert_eq!(series.checks.len(), 3);

    let old_token = runtime.block_on(async {
        let mut conn = Conn::new(processors.addr(Which::Default));
        let headers = [("x-rinha-token", "123")];
        let body = Some(Bytes::from_static(b"{}"));
        conn.request(Method::POST, "/admin/purge-payments", &headers, body, Duration::from_secs(2))
            .await
            .map(|reply| reply.status)
    });
    assert_eq!(old_token, Ok(401));
}

/// Goal: with `[kills]`, the load keeps the correlationId of every accepted POST (what the crash
/// harness looks up in the books), each once, and compares the backend's final summary with the
/// processors' totals. Method: a 2 s run with a `[kills]` table against the canned 202 server
/// (the load alone kills nothing: the contest does): as many distinct ids as `posts_ok`; the
/// canned summary is unusable and counts as zeros, as do the processors (nothing reached them),
/// so the mismatch is 0.
#[test]
fn kills_scenario_records_every_accepted_id() {
    let backend = canned::start(std::net::Ipv4Addr::LOCALHOST, 0).expect("canned server");
    let processors = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("processors");
    let text =
        SCENARIO.replace("duration_s = 3", "duration_s = 2").replace("vus_max = 20", "vus_max = 5")
            + "[kills]\ninstance = \"b\"\ncount = 1\nseed = 7\n";
    let recorded = Some(processors.recorded_probe());
    let plan =
        plan(Scenario::parse(&text).expect("scenario"), &backend, &processors, recorded, false);
    let runtime = load::runtime("load-test").expect("runtime");
    let report = runtime.block_on(load::run(plan)).expect("load run");
    assert!(report.posts_ok > 0);
    assert_eq!(report.accepted_ids.len() as u64, report.posts_ok);
    let distinct: std::collections::HashSet<_> = report.accepted_ids.iter().collect();
    assert_eq!(distinct.len(), report.accepted_ids.len());
    assert_eq!(report.final_summary_mismatch, Some(0));
    // The books are watched each second: nothing ever reached them, so the running lag ends at
    // every accepted POST.
    assert_eq!(report.series.default_settled, [0, 0]);
    assert_eq!(report.series.lag.last(), Some(&(report.posts_ok as i64)));
}

/// Goal: `--audit-ids` on processors the lab does not watch keeps every accepted correlationId,
/// waits for still books without counting its reads as admin calls, and finds each id that
/// reached neither processor. Method: the canned 202 server as the backend, which forwards
/// nothing: every accepted id is missing at both, by a 404 from each.
#[test]
fn audit_finds_every_payment_that_reached_no_processor() {
    let backend = canned::start(std::net::Ipv4Addr::LOCALHOST, 0).expect("canned server");
    let processors = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("processors");
    let text =
        SCENARIO.replace("duration_s = 3", "duration_s = 2").replace("vus_max = 20", "vus_max = 5");
    let plan = plan(Scenario::parse(&text).expect("scenario"), &backend, &processors, None, true);
    let runtime = load::runtime("load-test").expect("runtime");
    let report = runtime.block_on(load::run(plan)).expect("load run");
    assert!(report.posts_ok > 0);
    assert_eq!(report.accepted_ids.len() as u64, report.posts_ok);
    let missing: Vec<_> = report.missing_ids.iter().map(|(id, _)| *id).collect();
    assert_eq!(missing, report.accepted_ids, "each accepted id, none at a processor");
    assert!(report.missing_ids.iter().all(|(_, why)| why == "default 404, fallback 404"));
    // Setup (2 tokens, 2 purges, the backend's purge), 2 checks x 2, 4 stage calls, 2 teardown
    // summaries: the wait's reads of the books are not among them.
    assert_eq!(report.admin_latencies_us.len(), 2 + 2 + 1 + 4 + 4 + 2);
}
