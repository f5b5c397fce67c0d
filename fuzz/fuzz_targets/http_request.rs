//! Fuzz target: `http::parse_request`, the server's request framing.
//!
//! Goal: whatever bytes a client sends, the parser frames them the way the connection loop in
//! `accept::serve` relies on: a Complete request lies inside the buffer and within the limits,
//! is self-delimiting (bytes after it change nothing), and is never preceded by an Invalid or
//! a Complete when the same bytes arrive in smaller reads; a Partial buffer stays within the
//! limits (the read buffer is bounded); an Invalid buffer stays Invalid however many bytes
//! follow (the connection is closed, so nothing may later "become" valid). Method: parse the
//! input under the production limits and under tight ones, check each outcome against
//! httparse as an oracle for the head, re-parse every prefix of the first request, exact
//! limits and limits one byte short, and replay the whole input as pipelined requests both in
//! one read and drip-fed in pseudo-random read sizes.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use payrelay::{
    config,
    http::{self, Limits, Method, Parsed, ParsedResponse, Status},
};

/// What production parses with: the `REQUEST_*_BYTES_MAX` defaults, read from the knobs'
/// table itself (an empty environment) so a changed default is fuzzed as it ships.
static PRODUCTION: LazyLock<Limits> = LazyLock::new(|| {
    // The empty environment is valid: every knob has a default (`config`'s `defaults` test).
    let config = config::Config::from_lookup(|_| None).expect("defaults are a valid config");
    Limits {
        head_bytes_max: config.request_head_bytes_max,
        body_bytes_max: config.request_body_bytes_max,
    }
});

/// Small enough that short inputs reach the 431 and 413 paths, large enough for the contest's
/// POST (its head is ~150 bytes, its body 70).
const TIGHT: Limits = Limits { head_bytes_max: 192, body_bytes_max: 80 };

/// More header slots than `http::HEADERS_MAX`, so the oracle sees every header of a request
/// the parser accepted.
const ORACLE_HEADERS_MAX: usize = 2 * http::HEADERS_MAX;

/// Prefixes re-parsed per request: every one up to this length, an even spread beyond it.
/// Each re-parse scans the prefix, so "every prefix" of a 4 KiB input would be quadratic.
const PREFIX_CUTS_MAX: usize = 256;

/// Largest single read in the drip-feed replay. The kernel hands the server reads of any size;
/// small ones are the interesting case.
const DRIP_READ_BYTES_MAX: usize = 64;

/// A Complete request, copied out of the buffer so two parses can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Framed {
    len: usize,
    method: Method,
    path: Vec<u8>,
    query: Vec<u8>,
    body: Vec<u8>,
    keep_alive: bool,
}

/// The outcome of one parse with borrowed parts copied out.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete(Framed),
    Partial,
    Invalid(Status),
}

fn outcome(parsed: &Parsed<'_>) -> Outcome {
    match parsed {
        Parsed::Complete(req, len) => Outcome::Complete(Framed {
            len: *len,
            method: req.method,
            path: req.path.to_vec(),
            query: req.query.to_vec(),
            body: req.body.to_vec(),
            keep_alive: req.keep_alive,
        }),
        Parsed::Partial => Outcome::Partial,
        Parsed::Invalid(status, _) => Outcome::Invalid(*status),
    }
}

/// Byte offset of `part` inside `buf`; panics if `part` does not borrow from `buf`.
fn offset_in(buf: &[u8], part: &[u8]) -> usize {
    let start = part.as_ptr() as usize;
    let base = buf.as_ptr() as usize;
    assert!(
        start >= base && start + part.len() <= base + buf.len(),
        "a request part does not lie inside the read buffer"
    );
    start - base
}

/// Checks one parse of `buf` under `limits` and returns its outcome.
fn check(buf: &[u8], limits: Limits) -> Outcome {
    let parsed = http::parse_request(buf, limits);
    match &parsed {
        Parsed::Complete(req, len) => check_complete(buf, limits, req, *len),
        Parsed::Partial => {
            // The connection loop reads more into an unbounded Vec on Partial: only this
            // bound keeps a slow or hostile client from growing it.
            assert!(
                buf.len() <= limits.head_bytes_max + limits.body_bytes_max,
                "Partial for {} bytes, beyond the limits {limits:?}",
                buf.len()
            );
        }
        Parsed::Invalid(status, reason) => check_invalid(buf, limits, *status, reason),
    }
    outcome(&parsed)
}

fn check_complete(buf: &[u8], limits: Limits, req: &http::Request<'_>, len: usize) {
    assert!(len > 0 && len <= buf.len(), "Complete length {len} of a {}-byte buffer", buf.len());
    let body_len = req.body.len();
    let head_len = len - body_len;
    assert_eq!(offset_in(buf, req.body), head_len, "the body ends where the request ends");
    assert!(body_len <= limits.body_bytes_max, "body of {body_len} bytes under {limits:?}");
    assert!(head_len <= limits.head_bytes_max, "head of {head_len} bytes under {limits:?}");
    assert!(offset_in(buf, req.path) + req.path.len() <= head_len, "path outside the head");
    // An absent query is a static empty slice, not part of the buffer.
    if !req.query.is_empty() {
        assert!(offset_in(buf, req.query) + req.query.len() <= head_len, "query outside the head");
    }
    assert!(!req.path.contains(&b'?'), "the query split left a '?' in the path");

    // Oracle for the head: httparse itself, with room for more headers than the parser takes.
    let mut headers = [httparse::EMPTY_HEADER; ORACLE_HEADERS_MAX];
    let mut oracle = httparse::Request::new(&mut headers);
    let status = oracle.parse(&buf[..head_len]).expect("a head the parser accepted");
    assert_eq!(status, httparse::Status::Complete(head_len), "head length");
    assert!(oracle.headers.len() <= http::HEADERS_MAX, "more headers than HEADERS_MAX");
    let expected_method = match oracle.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    assert_eq!(req.method, expected_method);
    let target = oracle.path.expect("a complete head has a target").as_bytes();
    let mut rebuilt = req.path.to_vec();
    if target.contains(&b'?') {
        rebuilt.push(b'?');
        rebuilt.extend_from_slice(req.query);
    } else {
        assert!(req.query.is_empty());
    }
    assert_eq!(rebuilt, target, "path + '?' + query is the request target");

    let mut content_lengths = Vec::new();
    let mut connection_tokens: Vec<Vec<u8>> = Vec::new();
    for header in oracle.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        assert_ne!(name, "transfer-encoding", "a body framed by Transfer-Encoding was accepted");
        if name == "content-length" {
            let text = std::str::from_utf8(header.value).expect("an accepted length is ASCII");
            content_lengths.push(text.trim().parse::<usize>().expect("an accepted length"));
        } else if name == "connection" {
            connection_tokens.extend(
                header.value.split(|&b| b == b',').map(|t| t.trim_ascii().to_ascii_lowercase()),
            );
        }
    }
    assert!(content_lengths.windows(2).all(|w| w[0] == w[1]), "conflicting lengths accepted");
    assert_eq!(body_len, content_lengths.first().copied().unwrap_or(0), "body length");
    // Persistence (RFC 9112 §9.3): 1.1 defaults to keep-alive, 1.0 to close; `close` must
    // close. The parser lets the last of `close`/`keep-alive` win when a client sends both,
    // which this leaves unchecked.
    let says = |token: &[u8]| connection_tokens.iter().any(|t| t == token);
    match (says(b"close"), says(b"keep-alive")) {
        (false, false) => assert_eq!(req.keep_alive, oracle.version == Some(1), "default"),
        (true, false) => assert!(!req.keep_alive, "Connection: close kept the connection"),
        (false, true) => assert!(req.keep_alive, "Connection: keep-alive closed it"),
        (true, true) => {}
    }
}

fn check_invalid(buf: &[u8], limits: Limits, status: Status, reason: &str) {
    assert!(
        matches!(
            status,
            Status::BadRequest
                | Status::PayloadTooLarge
                | Status::HeaderFieldsTooLarge
                | Status::NotImplemented
        ),
        "framing error answered {status:?}"
    );
    assert!(!reason.is_empty() && reason.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    // The server answers this with an error body and closes; our own client must read it back.
    let mut body = http::Body::with_capacity(64);
    http::write_error_json(&mut body.bytes, reason);
    let mut out = Vec::new();
    http::write_response(&mut out, status, &body, false, b"Thu, 01 Jan 1970 00:00:00 GMT");
    let head_len = out.len() - body.bytes.len();
    assert_eq!(
        http::parse_response(&out, false),
        ParsedResponse::Complete {
            status: status.code(),
            body: (head_len, out.len()),
            framing: http::BodyFraming::Plain,
            len: out.len(),
            keep_alive: false
        }
    );
    // Framing is lost for good: the bytes that follow cannot make it valid.
    for tail in [&b"\r\n\r\n"[..], b"GET / HTTP/1.1\r\n\r\n"] {
        let longer = [buf, tail].concat();
        assert!(
            matches!(http::parse_request(&longer, limits), Parsed::Invalid(..)),
            "Invalid became valid after {:?} more bytes",
            String::from_utf8_lossy(tail)
        );
    }
}

/// Cut points for the prefixes of an `len`-byte request: all of them when few, else a spread.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(PREFIX_CUTS_MAX).max(1);
    (0..len).step_by(step).chain(len.saturating_sub(16)..len)
}

/// Checks what holds between a Complete request and other views of the same bytes.
fn check_framing(buf: &[u8], limits: Limits, framed: &Framed) {
    let len = framed.len;
    // Self-delimiting: the request alone parses the same as with what followed it.
    assert_eq!(check(&buf[..len], limits), Outcome::Complete(framed.clone()), "alone");
    // A client's request split across reads: every prefix asks for more, never fails.
    for cut in cuts(len) {
        let prefix = http::parse_request(&buf[..cut], limits);
        assert!(matches!(prefix, Parsed::Partial), "prefix of {cut} bytes: {prefix:?}");
    }
    // The limits are exact: this request fits limits of its own size and no smaller.
    let body_len = framed.body.len();
    let head_len = len - body_len;
    let exact = Limits { head_bytes_max: head_len, body_bytes_max: body_len };
    assert_eq!(outcome(&http::parse_request(buf, exact)), Outcome::Complete(framed.clone()));
    if let Some(head_bytes_max) = head_len.checked_sub(1) {
        let short = Limits { head_bytes_max, ..exact };
        assert_eq!(check(buf, short), Outcome::Invalid(Status::HeaderFieldsTooLarge));
    }
    if let Some(body_bytes_max) = body_len.checked_sub(1) {
        let short = Limits { body_bytes_max, ..exact };
        assert_eq!(check(buf, short), Outcome::Invalid(Status::PayloadTooLarge));
    }
}

/// All requests in `buf` read at once, as the connection loop does with a full read buffer,
/// and the outcome that stopped it (Partial or Invalid) with the offset where it stopped.
fn pipelined(buf: &[u8], limits: Limits) -> (Vec<Framed>, Outcome, usize) {
    let mut at = 0;
    let mut requests = Vec::new();
    loop {
        match check(&buf[at..], limits) {
            Outcome::Complete(framed) => {
                if requests.is_empty() {
                    check_framing(&buf[at..], limits, &framed);
                }
                at += framed.len;
                requests.push(framed);
            }
            last => return (requests, last, at),
        }
    }
}

/// The same bytes delivered in small reads (sizes from a fixed xorshift sequence), parsed
/// after each read the way `accept::serve` does: the same requests must come out, and an
/// Invalid may only appear where the one-read parse is Invalid too.
fn drip_fed(buf: &[u8], limits: Limits, expected: &[Framed], last: &Outcome, last_at: usize) {
    let mut rng: u32 = 0x9E37_79B9 ^ buf.len() as u32;
    let mut fed = 0;
    let mut at = 0;
    let mut got = 0;
    while fed < buf.len() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        fed = (fed + 1 + rng as usize % DRIP_READ_BYTES_MAX).min(buf.len());
        loop {
            match outcome(&http::parse_request(&buf[at..fed], limits)) {
                Outcome::Complete(framed) => {
                    assert_eq!(Some(&framed), expected.get(got), "request {got} in small reads");
                    at += framed.len;
                    got += 1;
                }
                Outcome::Partial => break,
                Outcome::Invalid(_) => {
                    assert!(
                        matches!(last, Outcome::Invalid(_))
                            && at == last_at
                            && got == expected.len(),
                        "small reads failed at byte {at} where one read gives {last:?} at {last_at}"
                    );
                    return;
                }
            }
        }
    }
    assert_eq!(got, expected.len(), "requests found in small reads");
    assert_eq!(at, last_at);
}

fuzz_target!(|data: &[u8]| {
    let (tight_requests, tight_last, tight_at) = pipelined(data, TIGHT);
    drip_fed(data, TIGHT, &tight_requests, &tight_last, tight_at);
    let (requests, last, at) = pipelined(data, *PRODUCTION);
    drip_fed(data, *PRODUCTION, &requests, &last, at);
    // Looser limits accept everything tighter ones accept, framed the same way.
    assert!(tight_requests.len() <= requests.len());
    assert_eq!(tight_requests[..], requests[..tight_requests.len()], "tight vs production");
});
