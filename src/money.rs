//! Money is integer cents: parsed from the JSON number's text, never through `f64`.

/// Largest amount one payment may carry: 10^12 cents. A whole contest (~10^5 payments) at
/// this size still sums far below `u64::MAX` (1.8 × 10^19), so totals never overflow.
pub const AMOUNT_CENTS_MAX: u64 = 1_000_000_000_000;

/// Why an amount was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Not a plain decimal number (sign, exponent, stray characters, empty).
    NotDecimal,
    /// More than two digits after the point: cents cannot hold it without rounding.
    TooPrecise,
    /// Zero or negative.
    NotPositive,
    /// Above [`AMOUNT_CENTS_MAX`].
    TooLarge,
}

impl AmountError {
    /// Human-readable reason, for the JSON error body.
    pub fn reason(self) -> &'static str {
        match self {
            AmountError::NotDecimal => "amount must be a plain decimal number",
            AmountError::TooPrecise => "amount must have at most 2 decimal places",
            AmountError::NotPositive => "amount must be greater than zero",
            AmountError::TooLarge => "amount is too large",
        }
    }
}

/// Parses a JSON number's text (`19.9`, `20.05`, `100`) into cents.
pub fn parse_cents(text: &[u8]) -> Result<u64, AmountError> {
    if let [b'-', rest @ ..] = text {
        if rest.first() == Some(&b'-') {
            return Err(AmountError::NotDecimal);
        }
        // A well-formed negative number is a sign problem, not a syntax problem.
        return match parse_cents(rest) {
            Ok(_) | Err(AmountError::NotPositive) => Err(AmountError::NotPositive),
            Err(e) => Err(e),
        };
    }
    let (int_part, frac_part) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return Err(AmountError::NotDecimal);
    }
    let frac = frac_part.unwrap_or(b"");
    if frac_part.is_some() && frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return Err(AmountError::NotDecimal);
    }
    // Trailing zeros carry no value: 19.900 is 19.90.
    let significant = frac.len() - frac.iter().rev().take_while(|&&b| b == b'0').count();
    if significant > 2 {
        return Err(AmountError::TooPrecise);
    }
    let mut cents: u64 = 0;
    for &digit in int_part {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(u64::from(digit - b'0')))
            .filter(|&c| c <= AMOUNT_CENTS_MAX)
            .ok_or(AmountError::TooLarge)?;
    }
    let mut frac_cents = 0;
    for i in 0..2 {
        let digit = frac.get(i).map_or(0, |d| u64::from(d - b'0'));
        frac_cents = frac_cents * 10 + digit;
    }
    let cents = cents
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac_cents))
        .filter(|&c| c <= AMOUNT_CENTS_MAX)
        .ok_or(AmountError::TooLarge)?;
    if cents == 0 {
        return Err(AmountError::NotPositive);
    }
    Ok(cents)
}

/// Appends `cents` as a decimal with exactly two places (`1990` → `19.90`).
pub fn write_cents(out: &mut Vec<u8>, cents: u64) {
    out.extend_from_slice(itoa_buf(cents / 100).as_bytes());
    let frac = (cents % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + frac / 10, b'0' + frac % 10]);
}

/// Length of what [`write_cents`] writes for `cents`, to size a `Content-Length` up front.
pub fn cents_text_len(cents: u64) -> usize {
    itoa_buf(cents / 100).as_bytes().len() + 3
}

/// Appends an unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa_buf(value).as_bytes());
}

/// Appends a signed integer in decimal (`i64::MIN` included).
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    write_u64(out, value.unsigned_abs());
}

/// Small stack formatter for integers, so the hot path never goes through `fmt`.
fn itoa_buf(mut value: u64) -> DigitBuf {
    let mut buf = DigitBuf { digits: [0; 20], start: 20 };
    loop {
        buf.start -= 1;
        buf.digits[buf.start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return buf;
        }
    }
}

/// Up to 20 decimal digits (`u64::MAX` has 20), right-aligned.
struct DigitBuf {
    digits: [u8; 20],
    start: usize,
}

impl DigitBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every accepted spelling gives exact cents; every refused one the right reason.
    #[test]
    fn parse_table() {
        let ok: &[(&str, u64)] = &[
            ("19.90", 1990),
            ("19.9", 1990),
            ("20.05", 2005),
            ("100", 10000),
            ("0.01", 1),
            ("19.900", 1990),
            ("007.10", 710),
            ("10000000000", AMOUNT_CENTS_MAX),
        ];
        for (text, cents) in ok {
            assert_eq!(parse_cents(text.as_bytes()), Ok(*cents), "{text}");
        }
        let bad: &[(&str, AmountError)] = &[
            ("19.901", AmountError::TooPrecise),
            ("0.001", AmountError::TooPrecise),
            ("0", AmountError::NotPositive),
            ("0.00", AmountError::NotPositive),
            ("-1", AmountError::NotPositive),
            ("-0", AmountError::NotPositive),
            ("1e2", AmountError::NotDecimal),
            ("", AmountError::NotDecimal),
            (".5", AmountError::NotDecimal),
            ("5.", AmountError::NotDecimal),
            ("1.2.3", AmountError::NotDecimal),
            ("--1", AmountError::NotDecimal),
            ("10000000000.01", AmountError::TooLarge),
            ("99999999999999999999999", AmountError::TooLarge),
        ];
        for (text, err) in bad {
            assert_eq!(parse_cents(text.as_bytes()), Err(*err), "{text}");
        }
    }

    /// Goal: formatting is exact and round-trips through the parser for many values.
    #[test]
    fn format_round_trip() {
        let mut out = Vec::new();
        for cents in (1..100_000).step_by(7).chain([1, 10, 100, 1990, AMOUNT_CENTS_MAX]) {
            out.clear();
            write_cents(&mut out, cents);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                format!("{}.{:02}", cents / 100, cents % 100)
            );
            assert_eq!(parse_cents(&out), Ok(cents));
            assert_eq!(cents_text_len(cents), out.len());
        }
        out.clear();
        write_cents(&mut out, 0);
        assert_eq!(out, b"0.00");
        out.clear();
        write_u64(&mut out, u64::MAX);
        for value in [i64::MIN, -1, 0, 42, i64::MAX] {
            let mut signed = Vec::new();
            write_i64(&mut signed, value);
            assert_eq!(signed, value.to_string().as_bytes());
        }
        assert_eq!(out, u64::MAX.to_string().as_bytes());
    }
}
