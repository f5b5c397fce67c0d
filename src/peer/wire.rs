//! The peer link's wire: every request and answer the two instances exchange, encoded and
//! decoded in one place (paths, queries, the answer JSON), and one request builder.

use serde::Deserialize;

use super::continuity::{Boot, PeerAnswer};
use crate::{
    http,
    ledger::{Processor, ShardSummary, TimeRange, Totals},
    money,
    upstream::health::Report,
};

/// Path of the instance-local summary on the peer link.
pub const SUMMARY_PATH: &[u8] = b"/internal/summary";
/// Path of the instance-local purge on the peer link.
pub const PURGE_PATH: &[u8] = b"/internal/purge";
/// Path where the peer's health poller reports.
pub const HEALTH_PATH: &[u8] = b"/internal/health";

/// A whole request to the peer: `METHOD path?query` with `Connection: close` (each call is a
/// fresh connection) and no body; `write_query` appends the query.
pub fn request(method: &[u8], path: &[u8], write_query: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut request = Vec::with_capacity(192);
    request.extend_from_slice(method);
    request.push(b' ');
    request.extend_from_slice(path);
    request.push(b'?');
    write_query(&mut request);
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    request
}

/// Query parameters naming a boot on a peer call: `boot=N&started_ms=N&kept=0|1`.
pub fn write_boot_query(out: &mut Vec<u8>, boot: Boot) {
    out.extend_from_slice(b"boot=");
    money::write_u64(out, boot.id);
    out.extend_from_slice(b"&started_ms=");
    money::write_i64(out, boot.started_ms);
    out.extend_from_slice(if boot.kept_books { b"&kept=1" } else { b"&kept=0" });
}

/// Inverse of [`write_boot_query`] (other parameters are ignored; no `kept`: 0).
pub fn parse_boot_query(query: &[u8]) -> Option<Boot> {
    let id = http::query_number(query, b"boot").filter(|&id| id != 0)?;
    let started_ms = http::query_number(query, b"started_ms")?;
    let kept_books = http::query_number::<u8>(query, b"kept") == Some(1);
    Some(Boot { id, started_ms, kept_books })
}

/// A summary's range as integer milliseconds: `from_ms=N&to_ms=N`.
pub fn write_range_query(out: &mut Vec<u8>, range: TimeRange) {
    out.extend_from_slice(b"from_ms=");
    money::write_i64(out, range.from_ms);
    out.extend_from_slice(b"&to_ms=");
    money::write_i64(out, range.to_ms);
}

/// Inverse of [`write_range_query`] (other parameters are ignored).
pub fn parse_range_query(query: &[u8]) -> Option<TimeRange> {
    let from_ms = http::query_number(query, b"from_ms")?;
    let to_ms = http::query_number(query, b"to_ms")?;
    Some(TimeRange { from_ms, to_ms })
}

/// A health report: `processor=default&failing=1&delay_ms=100`.
pub fn write_report_query(out: &mut Vec<u8>, report: Report) {
    out.extend_from_slice(b"processor=");
    out.extend_from_slice(report.processor.name().as_bytes());
    out.extend_from_slice(if report.failing { b"&failing=1" } else { b"&failing=0" });
    out.extend_from_slice(b"&delay_ms=");
    money::write_u64(out, report.delay_ms);
}

/// Inverse of [`write_report_query`] (other parameters are ignored).
pub fn parse_report_query(query: &[u8]) -> Option<Report> {
    let mut scratch = [0u8; 32];
    let processor = match http::query_param(query, b"processor", &mut scratch).ok()?? {
        b"default" => Processor::Default,
        b"fallback" => Processor::Fallback,
        _ => return None,
    };
    let failing = match http::query_param(query, b"failing", &mut scratch).ok()?? {
        b"1" => true,
        b"0" => false,
        _ => return None,
    };
    let delay_ms = http::query_number(query, b"delay_ms")?;
    Some(Report { processor, failing, delay_ms })
}

/// Appends a peer answer: `{"boot":N,"started_ms":N,"kept":0|1,"you_forgot_before_ms":N,"totals":
/// {"default":[count,cents],"fallback":[count,cents]}}`.
pub fn write_answer_json(out: &mut Vec<u8>, answer: &PeerAnswer) {
    out.extend_from_slice(b"{\"boot\":");
    money::write_u64(out, answer.boot.id);
    out.extend_from_slice(b",\"started_ms\":");
    money::write_i64(out, answer.boot.started_ms);
    out.extend_from_slice(if answer.boot.kept_books { b",\"kept\":1" } else { b",\"kept\":0" });
    out.extend_from_slice(b",\"you_forgot_before_ms\":");
    money::write_i64(out, answer.you_forgot_before_ms);
    out.extend_from_slice(b",\"totals\":");
    answer.totals.write_by_processor(out, |out, totals| {
        out.push(b'[');
        money::write_u64(out, totals.count);
        out.push(b',');
        money::write_u64(out, totals.cents);
        out.push(b']');
    });
    out.push(b'}');
}

#[derive(Deserialize)]
struct TotalsJson {
    default: [u64; 2],
    fallback: [u64; 2],
}

#[derive(Deserialize)]
struct AnswerJson {
    boot: u64,
    started_ms: i64,
    #[serde(default)]
    kept: u8,
    you_forgot_before_ms: i64,
    totals: TotalsJson,
}

/// Inverse of [`write_answer_json`].
pub fn parse_answer_json(body: &[u8]) -> Option<PeerAnswer> {
    let json: AnswerJson = http::json_body(body)?;
    let totals = |[count, cents]: [u64; 2]| Totals { count, cents };
    Some(PeerAnswer {
        boot: Boot { id: json.boot, started_ms: json.started_ms, kept_books: json.kept == 1 },
        you_forgot_before_ms: json.you_forgot_before_ms,
        totals: ShardSummary {
            by_processor: [totals(json.totals.default), totals(json.totals.fallback)],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the peer link's answers survive the round trip exactly, large values included,
    /// and so does a boot in a query.
    #[test]
    fn answer_json_round_trip() {
        let totals = ShardSummary {
            by_processor: [Totals { count: 3, cents: u64::MAX / 2 }, Totals { count: 0, cents: 0 }],
        };
        for you_forgot_before_ms in [i64::MIN, 1_752_582_896_789] {
            let boot = Boot { id: u64::MAX, started_ms: 1_752_582_896_789, kept_books: true };
            let answer = PeerAnswer { boot, you_forgot_before_ms, totals };
            let mut out = Vec::new();
            write_answer_json(&mut out, &answer);
            assert_eq!(parse_answer_json(&out), Some(answer));
            let mut query = Vec::new();
            write_boot_query(&mut query, boot);
            assert_eq!(parse_boot_query(&query), Some(boot));
        }
        assert_eq!(parse_answer_json(b"{\"default\":[1]}"), None);
        assert_eq!(parse_boot_query(b"boot=0&started_ms=1"), None);
    }

    /// Goal: reports cross the peer link unchanged.
    #[test]
    fn report_query_round_trip() {
        for report in [
            Report { processor: Processor::Default, failing: true, delay_ms: 0 },
            Report { processor: Processor::Fallback, failing: false, delay_ms: 5000 },
        ] {
            let mut q = Vec::new();
            write_report_query(&mut q, report);
            assert_eq!(parse_report_query(&q), Some(report));
        }
        assert_eq!(parse_report_query(b"processor=x&failing=1&delay_ms=1"), None);
    }

    /// Goal: the range encoding round-trips, extremes included.
    #[test]
    fn range_query_round_trip() {
        for range in [TimeRange::ALL, TimeRange { from_ms: -5, to_ms: 1_752_582_896_789 }] {
            let mut q = Vec::new();
            write_range_query(&mut q, range);
            assert_eq!(parse_range_query(&q), Some(range));
        }
        assert_eq!(parse_range_query(b"from_ms=1"), None);
    }

    /// Goal: a peer request is one well-formed HTTP request with its query.
    #[test]
    fn builds_requests() {
        let raw = request(b"GET", SUMMARY_PATH, |q| write_range_query(q, TimeRange::ALL));
        let limits = http::Limits { head_bytes_max: 512, body_bytes_max: 0 };
        let http::Parsed::Complete(req, len) = http::parse_request(&raw, limits) else {
            panic!("{}", String::from_utf8_lossy(&raw));
        };
        assert_eq!((req.path, len, req.keep_alive), (SUMMARY_PATH, raw.len(), false));
        assert_eq!(parse_range_query(req.query), Some(TimeRange::ALL));
    }
}
