//! The k6-equivalent contest test: setup, ramping virtual users posting payments, the
//! consistency checker, the processors' fault stages, and teardown.
//!
//! Mirrors the official script: setup purges both processors and the backend and changes the
//! admin token; VUs ramp linearly from 1 to `vus_max` over the test, each looping one
//! `POST /payments` then a 1 s sleep on its own keep-alive connection; one checker compares the
//! backend's summary with the processors' every `check_every_s`; stages set delay and failure at
//! their times; teardown reads the processors' totals.
//!
//! With the scenario's `[kills]` (the crash harness, [`crate::crash`]), the load also keeps the
//! correlationId of every accepted POST, waits before teardown until the processors' books are
//! still (the official script does not wait), and afterwards compares the backend's summary
//! over the whole test with the processors' totals. `--audit-ids` keeps the ids and waits the
//! same way on processors the lab does not run (read over their admin API), then looks each id
//! up at both.
//!
//! Beside all of this it keeps the run second by second ([`crate::series`]): each VU files its
//! POSTs under the second they completed in, and [`crate::sampler`] reads the processors' books
//! and the payrelay instances once a second.
//!
//! ## Layout
//!
//! `mod.rs` runs the parts in the script's order ([`run`]); none of them imports it:
//!
//! - `plan.rs`: what a load is given and brings back ([`LoadPlan`], [`LoadReport`]).
//! - `context.rs`: what the tasks of one load share.
//! - `vus.rs`: the load generator, virtual users on a ramp.
//! - `admin.rs`: setup, the fault stages and teardown on the processors' admin API.
//! - `checks.rs`: the consistency checker; with kills, the drain and the final comparison.
//! - `progress.rs`: the progress line.

mod admin;
mod checks;
mod context;
mod plan;
mod progress;
mod vus;

use std::{
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use admin::AdminConns;
use checks::Books;
use context::{Counters, Ctx, VuRecord};
pub use plan::{Check, LoadPlan, LoadReport, Totals};
pub use vus::POST_OK_STATUSES;

use crate::{
    client::Conn,
    sampler,
    scenario::Scenario,
    series::{CheckMark, PostSeconds, Sampled, Series},
    time,
};

/// Threads of the load generator's runtime. Two keep one slow task from delaying the timing
/// of the others on a 2-CPU machine.
const WORKER_THREADS: usize = 2;

/// The runtime a load runs on (the contest's, the capacity sweep's, the tests'), its threads
/// named `name`.
pub fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Runs `work` unless Ctrl-C comes first: then the run fails normally, so everything it started
/// (payrelay children, the cgroup, the processors) is torn down by the usual drops.
pub(crate) async fn interruptible<T>(
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C)".to_owned()),
    }
}

/// Runs setup, the load with its checker and stages, and teardown.
pub async fn run(plan: LoadPlan) -> Result<LoadReport, String> {
    let scenario = &plan.scenario;
    let amount_json = serde_json::to_string(&scenario.amount).map_err(|e| e.to_string())?;
    // Validated positive when the scenario was loaded.
    let timeout = Duration::from_millis(scenario.timeout_ms.unsigned_abs());
    let token = uuid::Uuid::new_v4().simple().to_string();
    // One connection per processor for setup and teardown, kept alive in between.
    let mut admin = AdminConns {
        default: Conn::new(plan.default_addr),
        fallback: Conn::new(plan.fallback_addr),
        token,
    };
    let setup_latencies = admin::setup(&plan, &mut admin, timeout).await?;

    let started = tokio::time::Instant::now();
    let started_at_ms = time::now_ms();
    if let Some(listener) = &plan.load_started {
        // A listener that has gone away has nothing left to schedule.
        let _ = listener.send(started.into_std());
    }
    let duration = Duration::from_secs_f64(scenario.duration_s);
    let ctx = Arc::new(Ctx {
        target: plan.target,
        started,
        amount_json,
        timeout,
        end: started + duration,
        counters: Counters::default(),
        admin_latencies_us: Mutex::new(setup_latencies),
        admin_failures: AtomicU64::new(0),
        record_accepted: scenario.kills.is_some() || plan.audit_ids,
    });

    let checker = tokio::spawn(checks::checker(ctx.clone(), plan.clone(), admin.token.clone()));
    let stages =
        tokio::spawn(admin::stages(ctx.clone(), plan.clone(), admin.token.clone(), started));
    let seconds = Series::seconds_for(scenario.duration_s);
    let sampler = tokio::spawn(sampler::record(
        plan.recorded.clone(),
        plan.instances.clone(),
        started,
        seconds,
    ));
    let progress = plan.progress_every.map(|every| {
        let metrics = plan.instances.iter().map(|instance| instance.metrics_addr).collect();
        tokio::spawn(progress::progress(
            ctx.clone(),
            plan.recorded.clone(),
            metrics,
            every,
            started,
            duration,
        ))
    });
    let vus = vus::ramp(&ctx, scenario.vus_max, started, duration).await;
    let mut report = LoadReport { started_at_ms, ..LoadReport::default() };
    let post_seconds = gather_vus(vus, &mut report, seconds).await;
    let (checks, summary_latencies, summary_failures) =
        checker.await.map_err(|e| format!("checker: {e}"))?;
    stages.await.map_err(|e| format!("stages: {e}"))?;
    let sampled = sampler.await.map_err(|e| format!("sampler: {e}"))?;
    if let Some(progress) = progress {
        progress.abort();
    }

    let verbose = plan.progress_every.is_some();
    if scenario.kills.is_some() || plan.audit_ids {
        let books = match &plan.recorded {
            Some(recorded) => Books::Recorded(recorded),
            None => Books::Admin(&mut admin, scenario.duration_s),
        };
        checks::wait_books_still(books, verbose).await;
    }
    (report.default, report.fallback) =
        admin::teardown(&ctx, &mut admin, scenario.duration_s).await?;
    if plan.audit_ids {
        report.missing_ids = admin::missing_at_both(&mut admin, &report.accepted_ids).await;
        // A finding, printed even when quiet: which payments were lost, for the logs to be read.
        eprintln!(
            "audit: {} of {} accepted payments at neither processor",
            report.missing_ids.len(),
            report.accepted_ids.len()
        );
        for (id, why) in &report.missing_ids {
            eprintln!("audit: missing {id} ({why})");
        }
    }
    if scenario.kills.is_some() {
        report.final_summary_mismatch = Some(
            checks::final_summary_mismatch(&ctx, &report, plan.progress_every.is_some()).await,
        );
    }
    report.inconsistencies = checks.iter().map(Check::inconsistencies).sum();
    report.series = series(scenario, post_seconds, sampled, &checks);
    report.checks = checks;
    report.summary_latencies_us = summary_latencies;
    report.summary_failures = summary_failures;
    ctx.fill_report(&mut report);
    Ok(report)
}

/// Waits for every VU and files what each brings back: its latencies and accepted ids in
/// `report`, its POSTs by second in what it returns (`seconds` long).
async fn gather_vus(
    vus: Vec<tokio::task::JoinHandle<VuRecord>>,
    report: &mut LoadReport,
    seconds: usize,
) -> PostSeconds {
    let mut post_seconds = PostSeconds::new(seconds);
    for vu in vus {
        if let Ok(record) = vu.await {
            report.post_latencies_us.extend_from_slice(&record.latencies_us);
            report.accepted_ids.extend_from_slice(&record.accepted_ids);
            post_seconds.add_tally(&record.post_seconds);
            for (second, latency_us) in record.latency_seconds.iter().zip(&record.latencies_us) {
                post_seconds.add_latency(*second as usize, *latency_us);
            }
        }
    }
    post_seconds
}

/// The run second by second: the VUs' POSTs, what the sampler read, the scenario's stages and
/// each check at its time.
fn series(scenario: &Scenario, posts: PostSeconds, sampled: Sampled, checks: &[Check]) -> Series {
    let marks = checks
        .iter()
        .map(|check| CheckMark {
            at_s: check.at_ms as f64 / 1000.0,
            inconsistencies: check.inconsistencies(),
        })
        .collect();
    Series::build(scenario.duration_s, posts, sampled, scenario.stages.clone(), marks)
}
