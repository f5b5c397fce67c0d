//! Fuzz target: `http::parse_response`, the client side's framing (processor and peer calls),
//! and `http::write_response` read back by it.
//!
//! Goal: whatever a processor or the peer answers, the client frames it the way its callers
//! rely on: a Complete response lies inside the buffer with its body at the end, is the same
//! whether or not the connection has ended and whatever follows it, and every prefix of it is
//! Partial (a response split across reads is never misread); at the connection's end nothing
//! is Partial any more; an Invalid response stays Invalid; and every response this server
//! writes is read back exactly. Method: parse the input with `eof` false and true, compare the
//! head with httparse as an oracle, re-parse prefixes and the response alone, walk the input as
//! pipelined responses, and write a response whose body is the input, then parse it back with
//! the input appended.

#![no_main]

use libfuzzer_sys::fuzz_target;
use payrelay::http::{self, ParsedResponse, Status};

/// More header slots than `http::HEADERS_MAX`, so the oracle sees every header.
const ORACLE_HEADERS_MAX: usize = 2 * http::HEADERS_MAX;

/// Prefixes re-parsed per response: every one up to this length, an even spread beyond it
/// (each re-parse scans the prefix, so all of them would be quadratic).
const PREFIX_CUTS_MAX: usize = 256;

/// A fixed IMF-fixdate, the shape `server::DateCache` hands `write_response`.
const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

fn cuts(len: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(PREFIX_CUTS_MAX).max(1);
    (0..len).step_by(step).chain(len.saturating_sub(16)..len)
}

/// Checks one response at the start of `buf` and returns the outcome with `eof` false.
fn check(buf: &[u8]) -> ParsedResponse {
    let open = http::parse_response(buf, false);
    let ended = http::parse_response(buf, true);
    assert_ne!(ended, ParsedResponse::Partial, "Partial after the connection ended");
    match open {
        ParsedResponse::Complete { status, body: (start, end), len, keep_alive: _ } => {
            assert!(start <= end && end == len && len <= buf.len(), "{open:?} of {}", buf.len());
            // httparse takes any three digits (`020` is 20); the callers only compare codes.
            assert!(status <= 999, "status {status}");
            let mut headers = [httparse::EMPTY_HEADER; ORACLE_HEADERS_MAX];
            let mut oracle = httparse::Response::new(&mut headers);
            assert_eq!(oracle.parse(buf), Ok(httparse::Status::Complete(start)), "head length");
            assert_eq!(oracle.code, Some(status));
            if (100..200).contains(&status) || status == 204 || status == 304 {
                assert_eq!(start, end, "a {status} response has no body");
            }
            // Content-Length frames the body when no Transfer-Encoding is given (the last one
            // counts; the processors are trusted not to send conflicting lengths).
            let encoded =
                oracle.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            let length = oracle.headers.iter().rev().find_map(|h| {
                h.name.eq_ignore_ascii_case("content-length").then(|| {
                    let text = std::str::from_utf8(h.value).expect("an accepted length is ASCII");
                    text.trim().parse::<usize>().expect("an accepted length")
                })
            });
            if let (false, Some(length)) = (encoded || start == end, length) {
                assert_eq!(end - start, length, "body length against Content-Length");
            }
            // A framed response does not depend on the connection's end or on what follows.
            assert_eq!(ended, open, "the same response once the connection has ended");
            assert_eq!(http::parse_response(&buf[..len], false), open, "the response alone");
            for cut in cuts(len) {
                let prefix = http::parse_response(&buf[..cut], false);
                assert_eq!(prefix, ParsedResponse::Partial, "prefix of {cut} bytes");
            }
        }
        ParsedResponse::Partial => {
            // Only a body delimited by the connection's end completes at eof, and it takes
            // everything.
            if let ParsedResponse::Complete { body: (_, end), len, keep_alive, .. } = ended {
                assert!(end == buf.len() && len == buf.len() && !keep_alive, "{ended:?}");
            }
        }
        ParsedResponse::Invalid => {
            assert_eq!(ended, ParsedResponse::Invalid, "Invalid until the connection ended");
            for tail in [&b"\r\n\r\n"[..], b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"] {
                let longer = [buf, tail].concat();
                assert_eq!(http::parse_response(&longer, false), ParsedResponse::Invalid);
            }
        }
    }
    open
}

/// What our server writes, our client reads: status, body and persistence, exactly.
fn round_trip(data: &[u8]) {
    let status = Status::ALL[data.len() % Status::ALL.len()];
    let keep_alive = data.first().is_some_and(|b| b & 1 == 0);
    let mut body = http::Body::with_capacity(data.len());
    body.bytes.extend_from_slice(data);
    if data.len().is_multiple_of(3) {
        body.content_type = http::PROMETHEUS_TEXT;
    }
    let mut out = Vec::new();
    http::write_response(&mut out, status, &body, keep_alive, DATE);
    let head_len = out.len() - data.len();
    let expected = ParsedResponse::Complete {
        status: status.code(),
        body: (head_len, out.len()),
        len: out.len(),
        keep_alive,
    };
    assert!((200..=599).contains(&status.code()));
    assert!(status.line().starts_with(status.code().to_string().as_bytes()));
    // Followed by whatever the next response holds (pipelining).
    out.extend_from_slice(data);
    assert_eq!(http::parse_response(&out, false), expected, "write_response read back");
}

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let ParsedResponse::Complete { len, .. } = check(&data[at..]) {
        assert!(len > 0, "an empty response would loop forever");
        at += len;
    }
    round_trip(data);
});
