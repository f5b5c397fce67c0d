//! The sweep's knobs ([`CapacityOptions`]), their defaults and what no combination of them may
//! be. The command line that sets them (a flag, or its environment variable) is `cli/`'s.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::canned_process::CannedCommand;

/// The rates stepped through by default, per second: from under the contest's peak (~600/s)
/// up in steps of a third to a half, far past what two 0.74-CPU instances can take, so that the
/// sweep ends on the bar rather than on the list.
pub const RATES_DEFAULT_PER_S: [f64; 12] =
    [500.0, 600.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0];
/// Measured seconds per step and backend: 5,000 samples at 500/s, so the p99 rests on 50.
pub const STEP_S_DEFAULT: f64 = 10.0;
/// Least warm-up per step, seconds (longer when opening the pool needs it): the pair's
/// connections, queues and processor pools reach their steady state.
pub const WARMUP_S_DEFAULT: f64 = 2.0;
/// Keep-alive connections per backend: the contest's peak, one per virtual user (~600).
pub const CONNECTIONS_DEFAULT: usize = 600;
/// At most this many connections: each is a file descriptor in the lab (this sandbox's hard
/// limit is 20,000) and a connection slot in payrelay (`CONNECTIONS_MAX`: 6,485 per instance
/// in the contest's envelope, derived from its memory limit); a schedule that needs more is far
/// past the bar anyway.
pub const CONNECTIONS_MAX: usize = 8192;
/// Each request's timeout: the contest's (`timeout_ms` of the scenarios).
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// Everything a sweep needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityOptions {
    /// The payrelay binary.
    pub payrelay: PathBuf,
    /// How to start `rinha-lab canned` as a process.
    pub canned: CannedCommand,
    /// payrelay's env file (`tuning/contest.env`).
    pub env_file: Option<PathBuf>,
    /// The compose file whose per-instance limits the envelope applies; `None`: no envelope.
    pub compose_file: Option<PathBuf>,
    /// Give each instance a journal folder, as the deployment does.
    pub journal: bool,
    /// The rates to step through, increasing, per second (after the rate and step caps).
    pub rates_per_s: Vec<f64>,
    /// Measured time per step and backend.
    pub step: Duration,
    /// Least warm-up per step and backend.
    pub warmup_min: Duration,
    /// Keep-alive connections per backend.
    pub connections: usize,
    /// Each request's timeout.
    pub request_timeout: Duration,
    /// Stop after the first step where payrelay is over the bar (p99 > 1 ms, a failure, a
    /// miss); otherwise run every rate.
    pub stop_over_bar: bool,
    /// Where to write the JSON; `None`: not written.
    pub json: Option<PathBuf>,
    /// Print progress and the table.
    pub verbose: bool,
}

impl CapacityOptions {
    /// The defaults, with paths under the repository's `root`: `tuning/contest.env`,
    /// `docker-compose.yml`'s envelope, the JSON at `target/capacity.json`.
    pub fn new(payrelay: PathBuf, canned: CannedCommand, root: &Path) -> CapacityOptions {
        CapacityOptions {
            payrelay,
            canned,
            env_file: Some(root.join("tuning/contest.env")),
            compose_file: Some(root.join("docker-compose.yml")),
            journal: true,
            rates_per_s: RATES_DEFAULT_PER_S.to_vec(),
            step: Duration::from_secs_f64(STEP_S_DEFAULT),
            warmup_min: Duration::from_secs_f64(WARMUP_S_DEFAULT),
            connections: CONNECTIONS_DEFAULT,
            request_timeout: REQUEST_TIMEOUT,
            stop_over_bar: true,
            json: Some(root.join("target/capacity.json")),
            verbose: true,
        }
    }

    /// The warm-up of a step at `rate_per_s`: at least [`CapacityOptions::warmup_min`], and
    /// long enough that every pooled connection has carried one request (the pool hands them
    /// out in turn), so that no measured request pays for a connect.
    pub fn warmup_at(&self, rate_per_s: f64) -> Duration {
        let pool_s = self.connections as f64 / rate_per_s;
        self.warmup_min.max(Duration::from_secs_f64(pool_s))
    }
}

/// Drops the rates above `rate_max` and those after the first `steps_max`; an error if none is
/// left.
pub fn cap_rates(
    rates_per_s: &mut Vec<f64>,
    rate_max: Option<f64>,
    steps_max: Option<usize>,
) -> Result<(), String> {
    if let Some(rate_max) = rate_max {
        rates_per_s.retain(|&r| r <= rate_max);
    }
    if let Some(steps_max) = steps_max {
        rates_per_s.truncate(steps_max);
    }
    if rates_per_s.is_empty() {
        return Err(format!(
            "no step left to run (rate max {rate_max:?}/s, steps max {steps_max:?})"
        ));
    }
    Ok(())
}

/// What no knob may combine into.
pub fn check(options: &CapacityOptions) -> Result<(), String> {
    if !(1..=CONNECTIONS_MAX).contains(&options.connections) {
        return Err(format!(
            "connections: {} is not between 1 and {CONNECTIONS_MAX}",
            options.connections
        ));
    }
    let rates = &options.rates_per_s;
    if !rates.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("rates {rates:?}: must increase from step to step"));
    }
    Ok(())
}
