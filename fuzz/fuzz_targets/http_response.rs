//! Fuzz target: `http::parse_response` and `http::take_response`, the client side's framing and
//! body decoding (processor and peer calls), and `http::write_response` read back by them.
//!
//! Goal: whatever a processor or the peer answers, the client frames it the way its callers
//! rely on: a Complete response lies inside the buffer with its body at the end, is the same
//! whether or not the connection has ended and whatever follows it, and every prefix of it is
//! Partial (a response split across reads is never misread); a chunked body decodes to what an
//! independent decoder reads, and the same bytes fed in small reads give the same response; at
//! the connection's end nothing is Partial any more; an Invalid response stays Invalid; and
//! every response this server writes is read back exactly. Method: parse the input with `eof`
//! false and true, compare the head with httparse as an oracle, re-parse prefixes and the
//! response alone, decode the body in place and with the oracle decoder, feed the response in
//! reads of 1 to 64 bytes, walk the input as pipelined responses, and write a response whose
//! body is the input, then parse it back with the input appended.

#![no_main]

use libfuzzer_sys::fuzz_target;
use payrelay::http::{self, BodyFraming, ParsedResponse, Status};

/// More header slots than `http::HEADERS_MAX`, so the oracle sees every header.
const ORACLE_HEADERS_MAX: usize = 2 * http::HEADERS_MAX;

/// Prefixes re-parsed per response: every one up to this length, an even spread beyond it
/// (each re-parse scans the prefix, so all of them would be quadratic).
const PREFIX_CUTS_MAX: usize = 256;

/// A fixed IMF-fixdate, the shape `http::date::DateCache` hands `write_response`.
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
        ParsedResponse::Complete { status, body: (start, end), framing, len, keep_alive: _ } => {
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
            // Content-Length frames the body when no Transfer-Encoding is given, and every
            // copy of it agrees (conflicting lengths are Invalid).
            let encoded =
                oracle.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            let lengths: Vec<usize> = oracle
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    let text = std::str::from_utf8(h.value).expect("an accepted length is ASCII");
                    text.trim().parse::<usize>().expect("an accepted length")
                })
                .collect();
            assert!(lengths.windows(2).all(|w| w[0] == w[1]), "conflicting lengths accepted");
            if let (false, Some(&length)) = (encoded || start == end, lengths.first()) {
                assert_eq!(end - start, length, "body length against Content-Length");
            }
            let no_body = (100..200).contains(&status) || status == 204 || status == 304;
            assert_eq!(framing == BodyFraming::Chunked, encoded && !no_body, "{framing:?}");
            check_decoded(buf, len, (start, end), framing);
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

/// An independent chunked decoder (RFC 9112 §7.1: extensions dropped, trailers not read), for
/// bodies `parse_response` framed: `None` where it reads a size line differently.
fn oracle_dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let digits = raw[..line_end].split(|&b| b == b';').next()?;
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let size = usize::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        if raw.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        raw = &raw[size + 2..];
    }
}

/// A framed response decodes to what the oracle reads, in place, leaving the bytes after it
/// alone; and fed in small reads, it is Partial until its last byte, then the same.
fn check_decoded(buf: &[u8], len: usize, (start, end): (usize, usize), framing: BodyFraming) {
    let mut decoded = buf.to_vec();
    let taken = http::take_response(&mut decoded, false).expect("framed").expect("complete");
    assert_eq!(taken.len, len);
    assert_eq!(&decoded[len..], &buf[len..], "what follows is untouched");
    let body = decoded[taken.body.clone()].to_vec();
    match framing {
        BodyFraming::Plain => assert_eq!(body, &buf[start..end]),
        BodyFraming::Chunked => {
            assert!(body.len() <= end - start);
            // Where the oracle reads the size lines (it knows no whitespace before `;`, which
            // httparse allows), it must read the same body.
            if let Some(oracle) = oracle_dechunk(&buf[start..end]) {
                assert_eq!(body, oracle, "decoded body against the oracle");
            }
        }
    }
    // Split reads, as `read_response` sees them: sizes 1 to 64, from the input's first byte.
    let step = usize::from(buf.first().copied().unwrap_or(0) % 64) + 1;
    let mut fed = Vec::new();
    for piece in buf[..len].chunks(step) {
        fed.extend_from_slice(piece);
        let mut copy = fed.clone();
        match http::take_response(&mut copy, false) {
            Ok(None) => assert!(fed.len() < len, "Partial with the whole response read"),
            Ok(Some(response)) => {
                assert_eq!(fed.len(), len, "complete before its last byte");
                assert_eq!((response.status, response.len), (taken.status, taken.len));
                assert_eq!(copy[response.body], body[..]);
            }
            Err(e) => panic!("{e:?} after {} of {len} bytes", fed.len()),
        }
    }
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
        framing: BodyFraming::Plain,
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
