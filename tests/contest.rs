//! The whole contest, end to end: the lab's processors, two payrelay instances sharing one port,
//! the k6-equivalent load on `benches/scenarios/ci-short.toml`, and the score.

use std::path::{Path, PathBuf};

use rinha_lab::{
    contest::{self, ContestOptions},
    results::Results,
};

/// Runs a scenario of `benches/scenarios` against cargo's payrelay binary on ephemeral ports,
/// with the processors framing as Kestrel does, without the CPU envelope so that a busy test
/// machine cannot turn a correctness test into a timing one.
fn run(scenario: &str) -> Results {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options = ContestOptions::new(root.join("benches/scenarios").join(scenario));
    options.payrelay = Some(PathBuf::from(env!("CARGO_BIN_EXE_payrelay")));
    options.default_port = 0;
    options.fallback_port = 0;
    options.api_port = 0;
    options.env_file = Some(root.join("tuning/contest.env"));
    options.envelope = false;
    contest::run(&options).unwrap_or_else(|e| panic!("contest run failed: {e}"))
}

/// Goal: under a short ramp with small delays and one default failure period, payrelay keeps its
/// books exactly like the processors': no inconsistency at any check, no failed POST, and every
/// accepted payment reaches a processor by teardown (lag 0, no caixa dois). Method: run
/// `ci-short.toml` (20 s, 150 VUs).
#[test]
fn ci_short_contest_is_consistent() {
    let results = run("ci-short.toml");
    assert!(results.posts_ok > 0, "{results:#?}");
    assert_books_kept(&results);
}

/// No inconsistency, no failed POST, every accepted payment at a processor by teardown.
fn assert_books_kept(results: &Results) {
    assert_eq!(results.inconsistencies, 0, "{results:#?}");
    assert_eq!(results.posts_failed, 0, "{results:#?}");
    assert_eq!(results.lag, 0, "{results:#?}");
    assert_eq!(results.caixa_dois, 0, "{results:#?}");
}

/// Goal: with processors that frame their answers as the real ones do (chunked), payrelay
/// learns an idle processor's new delay from the health poll and plans with it when that
/// processor becomes the only one: no payment lands later than the checker's window end after
/// its `requestedAt` (none is in one book and not the other at any instant a check could
/// catch), no inconsistency, no failed POST, lag 0. (Before the one response reader, no poll
/// could be read: every payment sent to the slowed fallback landed 4 s late.) Method: run
/// `ci-idle-slow.toml` (20 s, 150 VUs, checks every 2 s).
#[test]
fn ci_idle_slow_contest_plans_with_the_polled_delay() {
    let results = run("ci-idle-slow.toml");
    assert!(results.fallback_count > 0, "the fallback was used: {results:#?}");
    assert_eq!(results.late_landings, Some(0), "{results:#?}");
    assert_books_kept(&results);
}
