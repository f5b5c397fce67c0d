//! Fuzz target: the `GET /payments-summary` query (`summary::parse_range`), the peer link's
//! queries (`peer::wire::parse_range_query`, `peer::wire::parse_report_query`), `http::query_param`
//! and `http::query_number`, and the ISO-8601 codec (`timestamp::parse_iso`, `format_iso`,
//! `format_http_date`).
//!
//! Goal: a summary range holds exactly the instants the client named: each bound is the
//! timestamp given (absent means unbounded, malformed is an error, never "unbounded"), a
//! `from` finer than a millisecond rounds up and a `to` rounds down; every accepted timestamp
//! formats back to the same text; the peer link's range survives its own encoding; and no
//! input panics. Method: run `parse_range` against an oracle written here (its own query
//! splitting and percent-decoding into a Vec, then `parse_iso`), check `parse_iso` on the
//! input and on each bound by formatting the result and comparing it field by field with the
//! text, check the peer link's numbers against the same oracle, and round-trip `format_iso`,
//! `format_http_date` and the peer queries, also from integers taken from the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use payrelay::{
    http::{self, BadEncoding},
    ledger::TimeRange,
    peer::wire,
    summary,
    timestamp::{self, ISO_LEN, Round},
};

/// Earliest instant `format_iso` and `parse_iso` handle: 0000-01-01T00:00:00.000Z.
const MS_MIN: i64 = -62_167_219_200_000;
/// Latest: 9999-12-31T23:59:59.999Z.
const MS_MAX: i64 = 253_402_300_799_999;

/// `query_number`'s percent-decoding room (a peer-link number is at most 20 digits and a sign).
const NUMBER_SCRATCH_BYTES: usize = 32;

/// `parse_range`'s percent-decoding room: a decoded value longer than this is refused (a
/// timestamp has at most 30 bytes).
const RANGE_SCRATCH_BYTES: usize = 64;

/// The raw value of the first `name=value` pair of `query` whose key is `name` (keys are
/// compared undecoded, as `query_param` documents; a pair without `=` has an empty value).
fn oracle_raw<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| match pair.iter().position(|&b| b == b'=') {
        Some(eq) => (&pair[..eq] == name).then(|| &pair[eq + 1..]),
        None => (pair == name).then_some(&b""[..]),
    })
}

/// Percent-decoding (`+` is a space) into a Vec, with no length limit.
fn oracle_decode(raw: &[u8]) -> Result<Vec<u8>, BadEncoding> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = rest.get(..2).ok_or(BadEncoding)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(BadEncoding);
                }
                let hex = std::str::from_utf8(hex).map_err(|_| BadEncoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| BadEncoding)?);
                rest = &rest[2..];
            }
            b => out.push(b),
        }
    }
    Ok(out)
}

/// What `query_param` with a `scratch_len`-byte scratch should return: an undecoded value as
/// it is (any length), a decoded one only if it fits the scratch.
fn oracle_param(
    query: &[u8],
    name: &[u8],
    scratch_len: usize,
) -> Result<Option<Vec<u8>>, BadEncoding> {
    let Some(raw) = oracle_raw(query, name) else {
        return Ok(None);
    };
    if !raw.contains(&b'%') && !raw.contains(&b'+') {
        return Ok(Some(raw.to_vec()));
    }
    match oracle_decode(raw)? {
        value if value.len() <= scratch_len => Ok(Some(value)),
        _ => Err(BadEncoding),
    }
}

/// `query_param` with a `scratch_len`-byte scratch against the oracle.
fn check_param(query: &[u8], name: &[u8], scratch_len: usize) {
    let mut scratch = vec![0u8; scratch_len];
    let got = http::query_param(query, name, &mut scratch).map(|v| v.map(<[u8]>::to_vec));
    let expected = oracle_param(query, name, scratch_len);
    assert_eq!(got, expected, "query_param({:?}, {:?})", lossy(query), lossy(name));
}

/// What `query_number` should return: the oracle's value, if any, parsed by `FromStr`.
fn oracle_number<T: std::str::FromStr>(query: &[u8], name: &[u8]) -> Option<T> {
    let value = oracle_param(query, name, NUMBER_SCRATCH_BYTES).ok()??;
    std::str::from_utf8(&value).ok()?.parse().ok()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One bound as `parse_range` should read it: absent is `unbounded`, else the decoded value's
/// timestamp rounded `round`; `None` when that is an error.
fn oracle_bound(query: &[u8], name: &[u8], round: Round, unbounded: i64) -> Option<i64> {
    match oracle_param(query, name, RANGE_SCRATCH_BYTES) {
        Ok(None) => Some(unbounded),
        Ok(Some(value)) => timestamp::parse_iso(&value, round),
        Err(BadEncoding) => None,
    }
}

/// Everything `parse_iso` promises about `text`, checked by formatting its result back.
fn check_iso(text: &[u8]) {
    let down = timestamp::parse_iso(text, Round::Down);
    let up = timestamp::parse_iso(text, Round::Up);
    let (Some(down), Some(up)) = (down, up) else {
        assert_eq!((down, up), (None, None), "{:?}: rounding changed validity", lossy(text));
        return;
    };
    assert!((MS_MIN..=MS_MAX).contains(&down), "{down} out of the 4-digit-year range");
    // Fraction digits past the millisecond: the only thing rounding may act on.
    let frac = text.get(20..text.len() - 1).unwrap_or_default();
    let finer = frac.get(3..).unwrap_or_default();
    let expected_up = down + i64::from(finer.iter().any(|&d| d != b'0'));
    assert_eq!(up, expected_up, "{:?}: from rounds up, to rounds down", lossy(text));

    let formatted = timestamp::format_iso(down);
    assert_eq!(timestamp::parse_iso(&formatted, Round::Down), Some(down), "format/parse");
    let mut canonical = text[..19].to_vec();
    canonical[10] = b'T';
    canonical.push(b'.');
    canonical.extend((0..3).map(|i| frac.get(i).copied().unwrap_or(b'0')));
    canonical.push(b'Z');
    assert_eq!(
        lossy(&formatted),
        lossy(&canonical),
        "{:?} parsed to {down}, which formats differently",
        lossy(text)
    );
}

/// `format_iso` of any integer is a valid timestamp of the clamped instant, and the HTTP date
/// of any second agrees with it.
fn check_format(ms: i64) {
    let formatted = timestamp::format_iso(ms);
    assert_eq!(formatted.len(), ISO_LEN);
    let clamped = ms.clamp(MS_MIN, MS_MAX);
    assert_eq!(timestamp::parse_iso(&formatted, Round::Down), Some(clamped), "format_iso({ms})");

    let secs = ms;
    let date = timestamp::format_http_date(secs);
    let iso = timestamp::format_iso(secs.saturating_mul(1000).clamp(0, MS_MAX));
    assert_eq!(&date[5..7], &iso[8..10], "day of month");
    assert_eq!(&date[12..16], &iso[0..4], "year");
    assert_eq!(&date[17..25], &iso[11..19], "time of day");
    assert_eq!(&date[25..], b" GMT");
    assert_eq!(&date[0..3], weekday(&iso), "weekday of {}", lossy(&iso));
}

/// The weekday of an ISO date by Zeller's congruence: apart from the day count that
/// `format_http_date` uses.
fn weekday(iso: &[u8]) -> &'static [u8] {
    let field = |range: std::ops::Range<usize>| -> i64 {
        std::str::from_utf8(&iso[range]).unwrap().parse().unwrap()
    };
    let (mut year, mut month, day) = (field(0..4), field(5..7), field(8..10));
    if month < 3 {
        month += 12;
        year -= 1;
    }
    let (century, year_of_century) = (year / 100, year % 100);
    let h = (day
        + 13 * (month + 1) / 5
        + year_of_century
        + year_of_century / 4
        + century / 4
        + 5 * century)
        % 7;
    [b"Sat", b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri"][h as usize]
}

fuzz_target!(|data: &[u8]| {
    // The summary query.
    let range = summary::parse_range(data);
    let from = oracle_bound(data, b"from", Round::Up, i64::MIN);
    let to = oracle_bound(data, b"to", Round::Down, i64::MAX);
    match (range, from, to) {
        (Ok(range), Some(from_ms), Some(to_ms)) => {
            assert_eq!(range, TimeRange { from_ms, to_ms }, "parse_range({:?})", lossy(data));
        }
        (Err(reason), None, _) | (Err(reason), _, None) => {
            // Sent back as a JSON error body: must need no escaping.
            http::write_error_json(&mut Vec::new(), reason);
        }
        (range, from, to) => {
            panic!("parse_range({:?}) = {range:?}, oracle {from:?}..{to:?}", lossy(data))
        }
    }
    for name in [&b"from"[..], b"to"] {
        check_param(data, name, RANGE_SCRATCH_BYTES);
        check_param(data, name, 8);
        if let Some(Ok(value)) = oracle_raw(data, name).map(oracle_decode) {
            check_iso(&value);
        }
    }

    // The input as one timestamp.
    check_iso(data);

    // The peer link: its numbers, and whatever it accepts it writes back the same way.
    let from_ms = oracle_number::<i64>(data, b"from_ms");
    let to_ms = oracle_number::<i64>(data, b"to_ms");
    assert_eq!(http::query_number::<i64>(data, b"from_ms"), from_ms, "query_number");
    assert_eq!(http::query_number::<u64>(data, b"delay_ms"), oracle_number(data, b"delay_ms"));
    let range = wire::parse_range_query(data);
    let expected = from_ms.zip(to_ms).map(|(from_ms, to_ms)| TimeRange { from_ms, to_ms });
    assert_eq!(range, expected, "parse_range_query({:?})", lossy(data));
    if let Some(range) = range {
        let mut query = Vec::new();
        wire::write_range_query(&mut query, range);
        assert_eq!(wire::parse_range_query(&query), Some(range), "{:?}", lossy(&query));
    }
    if let Some(report) = wire::parse_report_query(data) {
        let mut query = Vec::new();
        wire::write_report_query(&mut query, report);
        assert_eq!(wire::parse_report_query(&query), Some(report), "{:?}", lossy(&query));
    }

    // Integers from the input: formatting round trips and the peer encoding of any range.
    let mut words = data.chunks_exact(8).map(|w| i64::from_le_bytes(w.try_into().unwrap()));
    if let (Some(a), b) = (words.next(), words.next()) {
        check_format(a);
        let range = TimeRange { from_ms: a, to_ms: b.unwrap_or(a) };
        let mut query = Vec::new();
        wire::write_range_query(&mut query, range);
        assert_eq!(wire::parse_range_query(&query), Some(range));
    }
});
