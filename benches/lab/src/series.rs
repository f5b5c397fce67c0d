//! The run over time: what a contest records second by second, kept in the results JSON under
//! `series` so that the report ([`crate::report`]) can be drawn again from the JSON alone.
//!
//! Entry `i` of every per-second array covers second `[i, i + 1)` of the load: POST counts and
//! latencies are those of the POSTs that completed in it, settled payments and CPU are what
//! changed over it, and readings (the lag, the instances' queues) are taken at its end. A run
//! writes each array `seconds` long, or empty when that quantity was not measured; a file read
//! back may hold shorter ones ([`Series::validate`]), drawn as far as they go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    scenario::{DURATION_S_MAX, Stage},
    stats,
};

/// One run's per-second record, with what the report draws beside it (stages, checks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    /// Entries in each per-second array: the load's length, rounded up to whole seconds.
    pub seconds: usize,
    /// The load's length, seconds (the report's time axis).
    pub duration_s: f64,
    /// POSTs answered 200/201/202/204, per second.
    pub posts_ok: Vec<u64>,
    /// POSTs that failed (timeout, other status, connect, broken connection), per second.
    pub posts_failed: Vec<u64>,
    /// Median latency of the second's expected-status POSTs, ms (`null`: none completed).
    pub post_p50_ms: Vec<Option<f64>>,
    /// Their p99 (k6's interpolation), ms.
    pub post_p99_ms: Vec<Option<f64>>,
    /// Their maximum, ms.
    pub post_max_ms: Vec<Option<f64>>,
    /// Payments the default processor stored, per second (empty: not the lab's processors).
    pub default_settled: Vec<u64>,
    /// Payments the fallback processor stored, per second.
    pub fallback_settled: Vec<u64>,
    /// At the end of each second: POSTs answered with success so far − payments both
    /// processors hold (accepted, not yet paid).
    pub lag: Vec<i64>,
    /// Per payrelay instance (`a`, `b`); empty with `--target`.
    pub instances: BTreeMap<String, InstanceSeries>,
    /// The scenario's stages: each processor's delay and failure from `at_s` on.
    pub stages: Vec<Stage>,
    /// Every consistency check.
    pub checks: Vec<CheckMark>,
}

/// One payrelay instance, second by second: its own gauges (summed over its cores, read from its
/// `/metrics` at the end of each second; `null` when the scrape failed) and its CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceSeries {
    /// `payrelay_queue_len`: accepted payments waiting for a forwarding task.
    pub queue_len: Vec<Option<u64>>,
    /// `payrelay_forwarding`: forwarding tasks running, each holding one payment.
    pub forwarding: Vec<Option<u64>>,
    /// `payrelay_holding`: of those, the ones holding their payment for the cheaper processor.
    pub holding: Vec<Option<u64>>,
    /// User + system CPU over the second, in cores (1.0 = one CPU busy all second; `null` while
    /// the process could not be read, e.g. just killed).
    pub cpu_cores: Vec<Option<f64>>,
}

/// One consistency check, where the report marks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckMark {
    /// Seconds after the load's start.
    pub at_s: f64,
    /// What it found (0: none).
    pub inconsistencies: u64,
}

/// One virtual user's POSTs by the second of the load they completed in: `[succeeded, failed]`.
/// A VU adds a slot per second it lives, so this is small next to its latencies; it holds at
/// most [`SECONDS_MAX`] + 1 slots, the last one taking anything later (the load folds late POSTs
/// into its last second anyway, [`PostSeconds::new`]).
#[derive(Debug, Clone, Default)]
pub struct SecondTally(Vec<[u32; 2]>);

impl SecondTally {
    /// Counts one POST completed in `second`.
    pub fn count(&mut self, second: usize, ok: bool) {
        let second = second.min(SECONDS_MAX);
        if self.0.len() <= second {
            self.0.resize(second + 1, [0, 0]);
        }
        self.0[second][usize::from(!ok)] += 1;
    }
}

/// The POSTs of every VU gathered by second, once the load is over.
#[derive(Debug, Clone)]
pub struct PostSeconds {
    ok: Vec<u64>,
    failed: Vec<u64>,
    latencies_us: Vec<Vec<u64>>,
}

impl PostSeconds {
    /// Room for `seconds` seconds; anything completed later counts in the last one (a POST sent
    /// before the end may complete up to its timeout after it).
    pub fn new(seconds: usize) -> PostSeconds {
        let seconds = seconds.max(1);
        PostSeconds {
            ok: vec![0; seconds],
            failed: vec![0; seconds],
            latencies_us: vec![Vec::new(); seconds],
        }
    }

    fn slot(&self, second: usize) -> usize {
        // `new` makes at least one slot.
        second.min(self.ok.len() - 1)
    }

    /// Adds one VU's counts.
    pub fn add_tally(&mut self, tally: &SecondTally) {
        for (second, [ok, failed]) in tally.0.iter().enumerate() {
            let slot = self.slot(second);
            self.ok[slot] += u64::from(*ok);
            self.failed[slot] += u64::from(*failed);
        }
    }

    /// Adds one expected-status latency, completed in `second`.
    pub fn add_latency(&mut self, second: usize, latency_us: u64) {
        let slot = self.slot(second);
        self.latencies_us[slot].push(latency_us);
    }

    /// POSTs answered with success in seconds `0..=second`, for the lag.
    fn ok_through(&self) -> Vec<u64> {
        self.ok
            .iter()
            .scan(0, |sum, ok| {
                *sum += ok;
                Some(*sum)
            })
            .collect()
    }
}

/// What the sampler read once a second ([`crate::sampler`]).
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// Payments each processor held (`[default, fallback]`) when the load started and at the end
    /// of each second; `None` when the processors are not the lab's own.
    pub settled: Option<([u64; 2], Vec<[u64; 2]>)>,
    /// Per instance name.
    pub instances: BTreeMap<String, InstanceSeries>,
}

impl Series {
    /// The record of one run: `posts` from the VUs, `sampled` from the sampler, the scenario's
    /// `stages` and the run's `checks`.
    pub fn build(
        duration_s: f64,
        posts: PostSeconds,
        sampled: Sampled,
        stages: Vec<Stage>,
        checks: Vec<CheckMark>,
    ) -> Series {
        let seconds = posts.ok.len();
        let ok_through = posts.ok_through();
        let mut series = Series {
            seconds,
            duration_s,
            stages,
            checks,
            instances: sampled.instances,
            ..Series::default()
        };
        if let Some((start, readings)) = sampled.settled {
            let mut previous = start;
            for (second, reading) in readings.iter().enumerate().take(seconds) {
                series.default_settled.push(reading[0].saturating_sub(previous[0]));
                series.fallback_settled.push(reading[1].saturating_sub(previous[1]));
                let held =
                    reading[0].saturating_sub(start[0]) + reading[1].saturating_sub(start[1]);
                series.lag.push(ok_through[second] as i64 - held as i64);
                previous = *reading;
            }
        }
        for mut latencies in posts.latencies_us {
            let mut at = |fraction| {
                (!latencies.is_empty())
                    .then(|| round3(stats::percentile_ms(&mut latencies, fraction)))
            };
            series.post_p50_ms.push(at(0.50));
            series.post_p99_ms.push(at(0.99));
            series.post_max_ms.push(at(1.0));
        }
        series.posts_ok = posts.ok;
        series.posts_failed = posts.failed;
        series
    }

    /// The fewest whole seconds that cover `duration_s` (at least one).
    pub fn seconds_for(duration_s: f64) -> usize {
        (duration_s.ceil().max(1.0)) as usize
    }

    /// Checks a series read from a file: no longer than a scenario can run, and no array longer
    /// than `seconds` (shorter is allowed: a quantity measured for part of the run). Names the
    /// first array that is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.seconds > SECONDS_MAX || !(0.0..=DURATION_S_MAX).contains(&self.duration_s) {
            return Err(format!(
                "seconds = {}, duration_s = {}: a run lasts at most {DURATION_S_MAX} s",
                self.seconds, self.duration_s
            ));
        }
        let mut lengths = vec![
            ("posts_ok", self.posts_ok.len()),
            ("posts_failed", self.posts_failed.len()),
            ("post_p50_ms", self.post_p50_ms.len()),
            ("post_p99_ms", self.post_p99_ms.len()),
            ("post_max_ms", self.post_max_ms.len()),
            ("default_settled", self.default_settled.len()),
            ("fallback_settled", self.fallback_settled.len()),
            ("lag", self.lag.len()),
        ];
        let named: Vec<(String, usize)> = self
            .instances
            .iter()
            .flat_map(|(name, i)| {
                [
                    (format!("instances.{name}.queue_len"), i.queue_len.len()),
                    (format!("instances.{name}.forwarding"), i.forwarding.len()),
                    (format!("instances.{name}.holding"), i.holding.len()),
                    (format!("instances.{name}.cpu_cores"), i.cpu_cores.len()),
                ]
            })
            .collect();
        lengths.extend(named.iter().map(|(name, len)| (name.as_str(), *len)));
        match lengths.iter().find(|(_, len)| *len > self.seconds) {
            Some((name, len)) => {
                Err(format!("{name} has {len} entries, more than seconds = {}", self.seconds))
            }
            None => Ok(()),
        }
    }
}

/// Most entries in a per-second array: the longest scenario's seconds.
pub const SECONDS_MAX: usize = DURATION_S_MAX as usize;

/// Rounded to 3 decimals, as the results' other figures.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: POSTs land in the second they completed in (late ones in the last), per-second
    /// percentiles use only that second's samples, settled payments are differences between
    /// readings and the lag is successes so far minus payments held. Method: a 3 s run with
    /// hand-made counts and readings.
    #[test]
    fn builds_per_second_figures() {
        let mut posts = PostSeconds::new(Series::seconds_for(2.5));
        let mut tally = SecondTally::default();
        for (second, ok) in [(0, true), (0, true), (1, false), (2, true), (4, true)] {
            tally.count(second, ok);
        }
        posts.add_tally(&tally);
        for (second, latency_us) in [(0, 1000), (0, 3000), (2, 500), (9, 700)] {
            posts.add_latency(second, latency_us);
        }
        let sampled = Sampled {
            settled: Some(([5, 0], vec![[6, 0], [6, 1], [9, 1]])),
            instances: BTreeMap::new(),
        };
        let series = Series::build(2.5, posts, sampled, Vec::new(), Vec::new());
        assert_eq!(series.seconds, 3);
        assert_eq!(series.posts_ok, [2, 0, 2]);
        assert_eq!(series.posts_failed, [0, 1, 0]);
        assert_eq!(series.post_p50_ms, [Some(2.0), None, Some(0.6)]);
        assert_eq!(series.post_max_ms, [Some(3.0), None, Some(0.7)]);
        assert_eq!(series.default_settled, [1, 0, 3]);
        assert_eq!(series.fallback_settled, [0, 1, 0]);
        assert_eq!(series.lag, [2 - 1, 2 - 2, 4 - 5]);
    }
}
