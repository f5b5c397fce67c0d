//! The test plan: load shape, fees, consistency window and the processors' fault timeline,
//! read from TOML and validated before anything starts.

use std::{cmp::Ordering, fmt, path::Path};

use serde::Deserialize;

use crate::money;

/// Longest test we accept; beyond this the latency vector and the run time stop being sane.
const DURATION_S_MAX: f64 = 3600.0;
/// Most virtual users; each holds a connection and a file descriptor.
const VUS_MAX_MAX: u32 = 5000;
/// Longest processor delay a stage may set; the rules go up to 5000 ms.
const DELAY_MS_MAX: i64 = 60_000;
/// Longest client timeout; the contest uses 1500 ms.
const TIMEOUT_MS_MAX: i64 = 60_000;

/// One processor's state from a stage on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorState {
    /// Delay applied to every payment, in milliseconds.
    pub delay_ms: i64,
    /// Failure switch: payments answer 500 after the delay and are not stored.
    pub failing: bool,
}

/// A point in the timeline where both processors change state.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Seconds after the start of the load.
    pub at_s: f64,
    /// The default processor from then on.
    pub default: ProcessorState,
    /// The fallback processor from then on.
    pub fallback: ProcessorState,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Length of the load, in seconds (the ramp reaches `vus_max` at the end).
    pub duration_s: f64,
    /// Virtual users at the end of the linear ramp (it starts at 1).
    pub vus_max: u32,
    /// Amount of every payment.
    pub amount: f64,
    /// Default processor fee rate.
    pub fee_default: f64,
    /// Fallback processor fee rate.
    pub fee_fallback: f64,
    /// Seconds between consistency checks.
    pub check_every_s: f64,
    /// The check window starts this many seconds before the check.
    pub window_start_s: f64,
    /// The check window ends this many seconds before the check.
    pub window_end_s: f64,
    /// Client timeout per request, in milliseconds.
    pub timeout_ms: i64,
    /// The fault timeline, in time order.
    #[serde(default, rename = "stage")]
    pub stages: Vec<Stage>,
    /// Name for reports; the file stem when loaded from a file.
    #[serde(skip)]
    pub name: String,
}

/// Why a scenario was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Reads and validates a scenario file; its name is the file stem.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
        let mut scenario = Scenario::parse(&text)
            .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
        scenario.name =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(scenario)
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The payment amount in cents.
    pub fn amount_cents(&self) -> i64 {
        money::cents_from_f64(self.amount).unwrap_or(0)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let fail = |message: String| Err(ScenarioError(message));
        if !positive(self.duration_s) || self.duration_s > DURATION_S_MAX {
            return fail(format!(
                "duration_s must be in (0, {DURATION_S_MAX}], got {}",
                self.duration_s
            ));
        }
        if self.vus_max == 0 || self.vus_max > VUS_MAX_MAX {
            return fail(format!("vus_max must be in 1..={VUS_MAX_MAX}, got {}", self.vus_max));
        }
        if money::cents_from_f64(self.amount).is_none_or(|cents| cents <= 0) {
            return fail(format!("amount must be at least 0.01, got {}", self.amount));
        }
        for (key, fee) in [("fee_default", self.fee_default), ("fee_fallback", self.fee_fallback)] {
            if !(0.0..1.0).contains(&fee) {
                return fail(format!("{key} must be in [0, 1), got {fee}"));
            }
        }
        if !positive(self.check_every_s) {
            return fail(format!("check_every_s must be positive, got {}", self.check_every_s));
        }
        if !non_negative(self.window_end_s) {
            return fail(format!("window_end_s must not be negative, got {}", self.window_end_s));
        }
        if self.window_start_s.partial_cmp(&self.window_end_s) != Some(Ordering::Greater) {
            return fail(format!(
                "window_start_s ({}) must be greater than window_end_s ({})",
                self.window_start_s, self.window_end_s
            ));
        }
        if self.timeout_ms <= 0 || self.timeout_ms > TIMEOUT_MS_MAX {
            return fail(format!(
                "timeout_ms must be in 1..={TIMEOUT_MS_MAX}, got {}",
                self.timeout_ms
            ));
        }
        let mut previous_at_s = None;
        for (index, stage) in self.stages.iter().enumerate() {
            let number = index + 1;
            if !non_negative(stage.at_s) || stage.at_s >= self.duration_s {
                return fail(format!(
                    "stage {number}: at_s must be in [0, duration_s = {}), got {}",
                    self.duration_s, stage.at_s
                ));
            }
            if let Some(previous) = previous_at_s
                && stage.at_s <= previous
            {
                return fail(format!(
                    "stage {number}: stages must be in increasing at_s order, but at_s = {} comes \
                     after {previous}",
                    stage.at_s
                ));
            }
            previous_at_s = Some(stage.at_s);
            for (side, state) in [("default", stage.default), ("fallback", stage.fallback)] {
                if !(0..=DELAY_MS_MAX).contains(&state.delay_ms) {
                    return fail(format!(
                        "stage {number}: {side}.delay_ms must be in 0..={DELAY_MS_MAX}, got {}",
                        state.delay_ms
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A finite number above zero (NaN is not).
fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

/// A finite number at or above zero (NaN is not).
fn non_negative(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
duration_s = 60
vus_max = 550
amount = 19.90
fee_default = 0.05
fee_fallback = 0.15
check_every_s = 10
window_start_s = 15
window_end_s = 1.5
timeout_ms = 1500
[[stage]]
at_s = 10
default = { delay_ms = 100, failing = false }
fallback = { delay_ms = 0, failing = false }
[[stage]]
at_s = 20
default = { delay_ms = 100, failing = true }
fallback = { delay_ms = 0, failing = false }
"#;

    /// Goal: the documented example parses into the values it shows. Method: parse the brief's
    /// example (two stages) and read fields back.
    #[test]
    fn parses_example() {
        let scenario = Scenario::parse(VALID).expect("valid scenario");
        assert_eq!(scenario.vus_max, 550);
        assert_eq!(scenario.amount_cents(), 1990);
        assert_eq!(scenario.stages.len(), 2);
        assert!(scenario.stages[1].default.failing);
    }

    /// Goal: mistakes are rejected with a message naming the problem. Method: one edit of the
    /// valid text per mistake (unknown keys at both levels, order, negatives, window).
    #[test]
    fn rejects_mistakes_clearly() {
        let cases = [
            ("timeout_ms = 1500", "timeout_ms = 1500\nvus = 3", "unknown field `vus`"),
            ("failing = true }", "failing = true, slow = 1 }", "unknown field `slow`"),
            ("at_s = 20", "at_s = 5", "increasing at_s order"),
            ("at_s = 20", "at_s = 10", "increasing at_s order"),
            ("delay_ms = 100, failing = true", "delay_ms = -1, failing = true", "delay_ms"),
            ("window_end_s = 1.5", "window_end_s = -1.5", "window_end_s must not be negative"),
            ("window_start_s = 15", "window_start_s = 1", "must be greater than window_end_s"),
            ("amount = 19.90", "amount = -19.90", "amount must be"),
            ("fee_default = 0.05", "fee_default = -0.05", "fee_default"),
            ("at_s = 20", "at_s = 60", "at_s must be in"),
            ("vus_max = 550", "vus_max = -5", "vus_max"),
        ];
        for (from, to, expected) in cases {
            let text = VALID.replacen(from, to, 1);
            assert_ne!(text, VALID, "edit {from:?} did not apply");
            let error = Scenario::parse(&text).expect_err(to).0;
            assert!(error.contains(expected), "{to:?}: {error}");
        }
    }

    /// Goal: every shipped scenario file is valid. Method: load each file in
    /// `benches/scenarios/`.
    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("scenario dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                count += 1;
            }
        }
        assert!(count >= 7, "expected the shipped scenarios, found {count}");
    }
}
