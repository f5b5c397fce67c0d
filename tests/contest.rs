//! The whole contest, end to end: the lab's processors, two payrelay instances sharing one port,
//! the k6-equivalent load on `benches/scenarios/ci-short.toml`, and the score.

use std::path::{Path, PathBuf};

use rinha_lab::contest::{self, ContestOptions};

/// Goal: under a short ramp with small delays and one default failure period, payrelay keeps its
/// books exactly like the processors': no inconsistency at any check, no failed POST, and every
/// accepted payment reaches a processor by teardown (lag 0, no caixa dois). Method: run
/// `ci-short.toml` (20 s, 150 VUs) against cargo's payrelay binary on ephemeral ports, without
/// the CPU envelope so that a busy test machine cannot turn a correctness test into a timing one.
#[test]
fn ci_short_contest_is_consistent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options = ContestOptions::new(root.join("benches/scenarios/ci-short.toml"));
    options.payrelay = Some(PathBuf::from(env!("CARGO_BIN_EXE_payrelay")));
    options.default_port = 0;
    options.fallback_port = 0;
    options.api_port = 0;
    options.env_file = Some(root.join("tuning/contest.env"));
    options.envelope = false;
    let results = contest::run(&options).unwrap_or_else(|e| panic!("contest run failed: {e}"));
    assert!(results.posts_ok > 0, "{results:#?}");
    assert_eq!(results.inconsistencies, 0, "{results:#?}");
    assert_eq!(results.posts_failed, 0, "{results:#?}");
    assert_eq!(results.lag, 0, "{results:#?}");
    assert_eq!(results.caixa_dois, 0, "{results:#?}");
}
