//! Wall-clock timestamps written and read the way the contest does: JavaScript's
//! `toISOString()` (`2025-07-15T12:34:56.000Z`, UTC, millisecond precision).

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now. A clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats epoch milliseconds exactly like JavaScript's `Date.prototype.toISOString()`.
pub fn format_iso_ms(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = epoch_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1000 % 60;
    let milli = ms_of_day % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Parses an ISO-8601 timestamp into epoch milliseconds: `YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction (digits beyond milliseconds are truncated, as a millisecond clock would), and `Z`, a
/// `±HH:MM` offset, or nothing (read as UTC). Returns `None` for anything else.
pub fn parse_iso_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    let hour = digits(&text[11..13])?;
    let minute = digits(&text[14..16])?;
    let second = digits(&text[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut milli = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let mut scaled = 0;
        for (i, b) in fraction.bytes().take(3).enumerate() {
            scaled += i64::from(b - b'0') * [100, 10, 1][i];
        }
        milli = scaled;
        rest = &fraction[len..];
    }
    let offset_ms = match rest {
        "" | "Z" | "z" => 0,
        zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (digits(&zone[1..3])? * 3_600_000 + digits(&zone[4..6])? * 60_000)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let ms_of_day = hour * 3_600_000 + minute * 60_000 + second * 1000 + milli;
    Some(days * MS_PER_DAY + ms_of_day - offset_ms)
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01; the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: our timestamps are byte-for-byte what `new Date(ms).toISOString()` prints, and
    /// parsing them gives the same milliseconds back. Method: known pairs computed with
    /// JavaScript, then a round trip across leap years and a century boundary.
    #[test]
    fn iso_round_trip_matches_javascript() {
        assert_eq!(format_iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso_ms(1_752_582_896_123), "2025-07-15T12:34:56.123Z");
        assert_eq!(format_iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [0, 1, 951_782_399_999, 1_752_582_896_123, 4_107_542_400_001] {
            assert_eq!(parse_iso_ms(&format_iso_ms(ms)), Some(ms));
        }
    }

    /// Goal: the forms a backend might send as `requestedAt` parse, and garbage does not.
    /// Method: microsecond fractions truncate, offsets shift, a missing zone reads as UTC.
    #[test]
    fn iso_parse_accepts_variants_and_rejects_garbage() {
        let base = parse_iso_ms("2025-07-15T12:34:56.123Z");
        assert_eq!(parse_iso_ms("2025-07-15T12:34:56.123456Z"), base);
        assert_eq!(parse_iso_ms("2025-07-15T14:34:56.123+02:00"), base);
        assert_eq!(parse_iso_ms("2025-07-15T12:34:56.123"), base);
        assert_eq!(parse_iso_ms("2025-07-15T12:34:56Z"), base.map(|ms| ms - 123));
        for bad in ["", "2025-07-15", "2025-13-15T12:34:56Z", "2025-07-15T12:34:56.Z", "x"] {
            assert_eq!(parse_iso_ms(bad), None, "{bad}");
        }
    }
}
