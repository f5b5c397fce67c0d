//! ISO-8601 UTC timestamps with milliseconds (`2025-07-15T12:34:56.789Z`), by hand.
//!
//! Every forward writes one `requestedAt` and every summary parses two bounds, so these run on
//! the hot path: a fixed 24-byte layout and Howard Hinnant's days-from-civil arithmetic, with
//! no allocation and no locale or time-zone machinery. The tests compare both directions with
//! the `time` crate over many values.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of the formatted form: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub const ISO_LEN: usize = 24;

/// Earliest instant we format or accept: 0000-01-01 (4-digit years only).
const MS_MIN: i64 = -62_167_219_200_000;
/// Latest instant we format or accept: 9999-12-31T23:59:59.999Z.
const MS_MAX: i64 = 253_402_300_799_999;

/// Milliseconds since the Unix epoch, now (wall clock: the processors compare our
/// `requestedAt` with the checker's wall clock).
pub fn now_ms() -> i64 {
    // Truncated toward zero, as a clock before 1970 read in whole milliseconds.
    now_us() / 1000
}

/// Microseconds since the Unix epoch, now: one read of the wall clock (the vDSO's
/// `clock_gettime`, no system call) that a connection shares between its `Date` header and the
/// duration of its answers (`accept::serve`).
pub fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Formats `ms` (clamped to years 0000..=9999) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_iso(ms: i64) -> [u8; ISO_LEN] {
    let ms = ms.clamp(MS_MIN, MS_MAX);
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000) as u32;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut out[0..4], year as u32);
    put_digits(&mut out[5..7], month);
    put_digits(&mut out[8..10], day);
    put_digits(&mut out[11..13], ms_of_day / 3_600_000);
    put_digits(&mut out[14..16], ms_of_day / 60_000 % 60);
    put_digits(&mut out[17..19], ms_of_day / 1000 % 60);
    put_digits(&mut out[20..23], ms_of_day % 1000);
    out
}

/// Length of an HTTP `Date` value: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Formats Unix second `secs` as an HTTP IMF-fixdate (RFC 9110 §5.6.7).
pub fn format_http_date(secs: i64) -> [u8; HTTP_DATE_LEN] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let ms = (secs.saturating_mul(1000)).clamp(0, MS_MAX);
    let days = ms / 86_400_000;
    let iso = format_iso(ms);
    let (_, month, _) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday.
    out[0..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    out[5..7].copy_from_slice(&iso[8..10]);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    out[12..16].copy_from_slice(&iso[0..4]);
    out[17..25].copy_from_slice(&iso[11..19]);
    out
}

/// Which way to round a bound given finer than a millisecond: a `from` rounds up and a `to`
/// rounds down, so an inclusive range never takes in an instant outside the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// Towards the past.
    Down,
    /// Towards the future.
    Up,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only, 1 to 9 fraction digits; `T` and `Z`
/// in either case, as RFC 3339 allows) into milliseconds since the epoch. `None` for anything
/// else, including impossible dates.
pub fn parse_iso(text: &[u8], round: Round) -> Option<i64> {
    if text.len() < 20 || !matches!(text[text.len() - 1], b'Z' | b'z') {
        return None;
    }
    let fixed = &text[..19];
    let punct_ok = fixed[4] == b'-'
        && fixed[7] == b'-'
        && (fixed[10] == b'T' || fixed[10] == b't')
        && fixed[13] == b':'
        && fixed[16] == b':';
    if !punct_ok {
        return None;
    }
    // Every other byte of the fixed part must be a digit: check them in one pass, then
    // assemble the fields without further checks.
    let mut d = [0u32; 19];
    for (i, &b) in fixed.iter().enumerate() {
        if !matches!(i, 4 | 7 | 10 | 13 | 16) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            d[i] = u32::from(digit);
        }
    }
    let year = i64::from(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]);
    let month = d[5] * 10 + d[6];
    let day = d[8] * 10 + d[9];
    let hour = d[11] * 10 + d[12];
    let minute = d[14] * 10 + d[15];
    let second = d[17] * 10 + d[18];
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let rest = &text[19..text.len() - 1];
    let (ms, finer) = match rest {
        [] => (0, false),
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let (ms_digits, finer_digits) = frac.split_at(frac.len().min(3));
            let mut ms = digits(ms_digits)?;
            for _ in ms_digits.len()..3 {
                ms *= 10;
            }
            let finer = digits(finer_digits).filter(|_| !finer_digits.is_empty());
            match (finer_digits.is_empty(), finer) {
                (true, _) => (ms, false),
                (false, Some(f)) => (ms, f > 0),
                (false, None) => return None,
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let ms = days * 86_400_000
        + i64::from(hour) * 3_600_000
        + i64::from(minute) * 60_000
        + i64::from(second) * 1000
        + i64::from(ms);
    Some(if finer && round == Round::Up { ms + 1 } else { ms })
}

/// ASCII digits to a number; `None` on anything else (including an empty slice).
fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut value = 0u32;
    for &b in text {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u32::from(digit);
    }
    Some(value)
}

/// Writes `value` as exactly `out.len()` digits, zero-padded.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};

    use super::*;

    /// A deterministic spread of instants: small steps near the epoch and leap days, big
    /// pseudo-random jumps across the whole 4-digit-year range.
    fn sample_instants() -> impl Iterator<Item = i64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let random = (0..200_000).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            MS_MIN + (x % (MS_MAX - MS_MIN) as u64) as i64
        });
        let leap_2024 = 1_709_164_800_000; // 2024-02-29T00:00:00Z
        let edges = [0, -1, 1, MS_MIN, MS_MAX, leap_2024 - 1, leap_2024, 951_782_400_000];
        random.chain(edges).chain((-5_000..5_000).map(|i| i * 86_399_999))
    }

    /// Goal: our formatter writes what `time` writes, for ~210k instants over all years.
    #[test]
    fn format_matches_time_crate() {
        for ms in sample_instants() {
            let ours = format_iso(ms);
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let theirs = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            );
            assert_eq!(std::str::from_utf8(&ours).unwrap(), theirs, "ms={ms}");
        }
    }

    /// Goal: parsing inverts formatting, and agrees with `time`'s RFC 3339 parser.
    #[test]
    fn parse_matches_time_crate() {
        for ms in sample_instants() {
            let text = format_iso(ms);
            assert_eq!(parse_iso(&text, Round::Down), Some(ms));
            let theirs = OffsetDateTime::parse(std::str::from_utf8(&text).unwrap(), &Rfc3339)
                .unwrap()
                .unix_timestamp_nanos()
                / 1_000_000;
            assert_eq!(i128::from(ms), theirs);
        }
    }

    /// Goal: the HTTP date matches RFC 9110's example and `time`'s weekday over many days.
    #[test]
    fn http_date() {
        assert_eq!(&format_http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        for secs in (0..4_000_000_000i64).step_by(86_399 * 7) {
            let ours = format_http_date(secs);
            let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            assert_eq!(&ours[0..2], &dt.weekday().to_string().as_bytes()[0..2], "{secs}");
            assert_eq!(std::str::from_utf8(&ours[12..16]).unwrap(), dt.year().to_string());
        }
    }

    /// Goal: shorter and finer fractions are accepted and rounded the safe way for a range.
    #[test]
    fn fractions_and_rounding() {
        let base = parse_iso(b"2025-07-15T12:34:56Z", Round::Down).unwrap();
        assert_eq!(parse_iso(b"2025-07-15T12:34:56.5Z", Round::Down), Some(base + 500));
        assert_eq!(parse_iso(b"2025-07-15T12:34:56.05Z", Round::Down), Some(base + 50));
        assert_eq!(parse_iso(b"2025-07-15T12:34:56.0001Z", Round::Down), Some(base));
        assert_eq!(parse_iso(b"2025-07-15T12:34:56.0001Z", Round::Up), Some(base + 1));
        assert_eq!(parse_iso(b"2025-07-15T12:34:56.000000Z", Round::Up), Some(base));
        assert_eq!(parse_iso(b"2025-07-15t12:34:56z", Round::Down), Some(base), "RFC 3339 case");
    }

    /// Goal: malformed and impossible timestamps are refused, never guessed.
    #[test]
    fn rejects_malformed() {
        let bad: &[&[u8]] = &[
            b"",
            b"2025-07-15",
            b"2025-07-15T12:34:56",
            b"2025-07-15T12:34:56.000+00:00",
            b"2025-13-01T00:00:00.000Z",
            b"2025-02-29T00:00:00.000Z",
            b"2025-04-31T00:00:00.000Z",
            b"2025-07-15T24:00:00.000Z",
            b"2025-07-15T12:60:00.000Z",
            b"2025-07-15 12:34:56.000Z",
            b"2025-07-15T12:34:56.Z",
            b"2025-07-15T12:34:56.0000000000Z",
            b"2025-07-15T12:34:56.00aZ",
            b"+025-07-15T12:34:56.000Z",
            b"2025-7-15T12:34:56.000Z",
        ];
        for text in bad {
            assert_eq!(parse_iso(text, Round::Down), None, "{}", String::from_utf8_lossy(text));
        }
        assert!(parse_iso(b"2024-02-29T23:59:59.999Z", Round::Down).is_some());
    }
}
