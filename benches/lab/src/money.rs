//! Money as integer cents: parsed from decimal text, never summed as floating point.

/// Converts decimal text (`"19.9"`, `"-3"`, `"20.055"`) to cents, rounding the third decimal
/// half away from zero like PostgreSQL's `round(numeric, 2)`. `None` if it is not a plain
/// decimal or does not fit.
pub fn cents_from_decimal_text(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut cents: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    cents = cents.checked_mul(100)?;
    let mut digits = fraction.bytes().map(|b| i64::from(b - b'0'));
    cents += digits.next().unwrap_or(0) * 10 + digits.next().unwrap_or(0);
    if digits.next().unwrap_or(0) >= 5 {
        cents += 1;
    }
    Some(if negative { -cents } else { cents })
}

/// Converts a JSON/TOML float to cents through its shortest decimal form, so `19.9` is exactly
/// 1990 cents (the binary value 19.899999… never leaks into the sum).
pub fn cents_from_f64(value: f64) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    cents_from_decimal_text(&format!("{value}"))
}

/// Cents as a JSON number: the nearest double to the exact decimal, which prints as that
/// decimal (exact for any sum below 2^53 cents).
pub fn cents_to_f64(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// Fee rates as integer parts per million, so fees on cents stay exact (`0.07` -> 70 000).
pub fn rate_ppm(rate: f64) -> i64 {
    (rate * 1_000_000.0).round() as i64
}

/// Formats cents as `1234.56` (for tables).
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: amounts become the cents the processor's `numeric(…, 2)` column would hold.
    /// Method: plain, short, long and negative decimals, and the float path for 19.90 and 20.05.
    #[test]
    fn decimal_text_rounds_half_away_from_zero() {
        assert_eq!(cents_from_decimal_text("19.9"), Some(1990));
        assert_eq!(cents_from_decimal_text("20.05"), Some(2005));
        assert_eq!(cents_from_decimal_text("20.055"), Some(2006));
        assert_eq!(cents_from_decimal_text("20.0549"), Some(2005));
        assert_eq!(cents_from_decimal_text("-1.005"), Some(-101));
        assert_eq!(cents_from_decimal_text("7"), Some(700));
        assert_eq!(cents_from_decimal_text(".5"), Some(50));
        assert_eq!(cents_from_decimal_text("1e3"), None);
        assert_eq!(cents_from_decimal_text(""), None);
        assert_eq!(cents_from_f64(19.90), Some(1990));
        assert_eq!(cents_from_f64(20.05), Some(2005));
        assert_eq!(cents_to_f64(246_615), 2466.15);
        assert_eq!(format_cents(-5), "-0.05");
        assert_eq!(rate_ppm(0.07), 70_000);
    }
}
