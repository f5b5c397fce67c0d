//! The official score: `(gross − fees) × (1 + bonus − fine)`, computed on integer cents.

use crate::money;

/// p99 at or above which the bonus is zero: `max((11 − p99) × 0.02, 0)`.
const BONUS_P99_ZERO_MS: f64 = 11.0;
/// Bonus fraction per millisecond under [`BONUS_P99_ZERO_MS`].
const BONUS_PER_MS: f64 = 0.02;
/// The fine, in percent, when even one inconsistency was counted.
const FINE_PERCENT: i64 = 35;

/// What the processors recorded over the whole test, and what the test measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreInput {
    /// Payments the default processor holds.
    pub default_count: u64,
    /// Their total amount, in cents.
    pub default_cents: i64,
    /// Payments the fallback processor holds.
    pub fallback_count: u64,
    /// Their total amount, in cents.
    pub fallback_cents: i64,
    /// Default processor fee rate (0.05 = 5%).
    pub fee_default: f64,
    /// Fallback processor fee rate.
    pub fee_fallback: f64,
    /// p99 over every expected-status request of the test, in milliseconds.
    pub p99_ms: f64,
    /// Inconsistencies summed over every consistency check.
    pub inconsistencies: u64,
    /// POSTs the backend answered with a success status.
    pub posts_ok: u64,
}

/// The score and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Gross: both processors' amounts, in cents.
    pub gross_cents: i64,
    /// Fees, in cents (rounded half up from the exact value).
    pub fees_cents: i64,
    /// Bonus in percent (0..=20 in practice).
    pub bonus_percent: i64,
    /// Fine in percent (0 or 35).
    pub fine_percent: i64,
    /// The score, in cents.
    pub score_cents: i64,
    /// Successful POSTs minus payments recorded; positive is lost money.
    pub lag: i64,
    /// Payments recorded beyond the successful POSTs (negative lag), 0 otherwise.
    pub caixa_dois: u64,
}

/// Bonus percent, computed step by step as the final's script does with big.js: p99 rounded half
/// up to 2 decimals, then `(11 − p99) × 0.02` in binary floating point, then that number's
/// shortest decimal form rounded half up to 2 decimals, floored at 0. Emulating the float step
/// matters at the published steps: `(11 − 2.25) × 0.02` is `0.17500000000000002` (18%), not 0.175.
pub fn bonus_percent(p99_ms: f64) -> i64 {
    let Some(p99_hundredths) = money::cents_from_f64(p99_ms) else {
        return 0;
    };
    let p99_rounded = p99_hundredths as f64 / 100.0;
    let bonus = (BONUS_P99_ZERO_MS - p99_rounded) * BONUS_PER_MS;
    money::cents_from_f64(bonus).unwrap_or(0).max(0)
}

/// p99 as the final's script scores it: rounded half up to 2 decimals.
pub fn p99_scored_ms(p99_ms: f64) -> f64 {
    money::cents_from_f64(p99_ms).map_or(p99_ms, |hundredths| hundredths as f64 / 100.0)
}

/// Applies the official formula. Exact arithmetic: amounts in cents times fee rates in parts
/// per million, rounded once, at the end.
pub fn score(input: &ScoreInput) -> Score {
    let ppm = 1_000_000_i128;
    let default_fee =
        i128::from(input.default_cents) * i128::from(money::rate_ppm(input.fee_default));
    let fallback_fee =
        i128::from(input.fallback_cents) * i128::from(money::rate_ppm(input.fee_fallback));
    let gross_cents = input.default_cents + input.fallback_cents;
    let fees_micro = default_fee + fallback_fee;
    let net_micro = i128::from(gross_cents) * ppm - fees_micro;
    let bonus = bonus_percent(input.p99_ms);
    let fine = if input.inconsistencies > 0 { FINE_PERCENT } else { 0 };
    let score_scaled = net_micro * i128::from(100 + bonus - fine);
    let recorded = input.default_count + input.fallback_count;
    let lag = input.posts_ok as i64 - recorded as i64;
    Score {
        gross_cents,
        fees_cents: round_div(fees_micro, ppm),
        bonus_percent: bonus,
        fine_percent: fine,
        score_cents: round_div(score_scaled, ppm * 100),
        lag,
        caixa_dois: if lag < 0 { lag.unsigned_abs() } else { 0 },
    }
}

/// The best score the successful POSTs allow: all through the default processor, 20% bonus.
pub fn upper_bound_cents(posts_ok: u64, amount_cents: i64, fee_default: f64) -> i64 {
    let gross = i128::from(posts_ok) * i128::from(amount_cents);
    let net_micro = gross * (1_000_000 - i128::from(money::rate_ppm(fee_default)));
    round_div(net_micro * 120, 1_000_000 * 100)
}

/// Division rounding half away from zero.
fn round_div(numerator: i128, denominator: i128) -> i64 {
    let half = denominator / 2;
    let rounded = if numerator >= 0 {
        (numerator + half) / denominator
    } else {
        (numerator - half) / denominator
    };
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the scorer reproduces the published final result of the winner to the cent.
    /// Method: 52,945 default and 37,646 fallback payments of 20.05 at 7% and 10%, p99 2.55 ms and
    /// no inconsistency were published as fees 149,788.54 and score 1,949,876.38.
    #[test]
    fn score_matches_published_winner() {
        let input = ScoreInput {
            default_count: 52_945,
            default_cents: 52_945 * 2005,
            fallback_count: 37_646,
            fallback_cents: 37_646 * 2005,
            fee_default: 0.07,
            fee_fallback: 0.10,
            p99_ms: 2.55,
            inconsistencies: 0,
            posts_ok: 52_945 + 37_646,
        };
        let result = score(&input);
        assert_eq!(result.fees_cents, 14_978_854);
        assert_eq!(result.bonus_percent, 17);
        assert_eq!(result.score_cents, 194_987_638);
        assert_eq!(result.lag, 0);
        assert_eq!(result.caixa_dois, 0);

        let fined = score(&ScoreInput { inconsistencies: 1, ..input });
        assert_eq!(fined.fine_percent, 35);
        assert!(fined.score_cents < result.score_cents);
    }

    /// Goal: the bonus rounds half up at its published steps (1.25 ms -> 20%, 2.25 ms -> 18%),
    /// after rounding p99 to 2 decimals as the final's script does, and never goes negative.
    /// Method: the step points, their neighbours, a p99 that rounds onto a step, and a slow p99.
    #[test]
    fn bonus_rounds_at_its_steps() {
        assert_eq!(bonus_percent(1.25), 20);
        assert_eq!(bonus_percent(1.26), 19);
        assert_eq!(bonus_percent(2.25), 18);
        assert_eq!(bonus_percent(2.26), 17);
        assert_eq!(bonus_percent(0.3), 21);
        // p99 is rounded to 2 decimals first: 1.254 scores as 1.25.
        assert_eq!(bonus_percent(1.254), 20);
        assert_eq!(bonus_percent(1.255), 19);
        assert_eq!(bonus_percent(2.55), 17);
        assert_eq!(bonus_percent(10.75), 1);
        assert_eq!(bonus_percent(10.76), 0);
        assert_eq!(bonus_percent(250.0), 0);
    }

    /// Goal: lag and caixa dois read the right sign. Method: more recorded than accepted is
    /// caixa dois; fewer is positive lag.
    #[test]
    fn lag_and_caixa_dois() {
        let base = ScoreInput {
            default_count: 10,
            default_cents: 19_900,
            fallback_count: 0,
            fallback_cents: 0,
            fee_default: 0.05,
            fee_fallback: 0.15,
            p99_ms: 5.0,
            inconsistencies: 0,
            posts_ok: 12,
        };
        assert_eq!(score(&base).lag, 2);
        let over = score(&ScoreInput { posts_ok: 7, ..base });
        assert_eq!((over.lag, over.caixa_dois), (-3, 3));
        // 10 x 19.90 x 0.95 x 1.20
        assert_eq!(upper_bound_cents(10, 1990, 0.05), 22_686);
    }
}
