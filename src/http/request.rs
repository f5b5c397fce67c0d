//! Server side, in: one request parsed from a connection's read buffer, within its limits.

use super::{
    head::{HEADERS_MAX, HeaderError, HeaderFacts},
    response::Status,
};

/// Request methods this server routes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET (and HEAD is not served).
    Get,
    /// POST.
    Post,
    /// Anything else: routed to 405 on known paths.
    Other,
}

/// One complete request, borrowing the connection's read buffer.
#[derive(Debug)]
pub struct Request<'b> {
    /// Method.
    pub method: Method,
    /// Path without the query.
    pub path: &'b [u8],
    /// Raw query string after `?` (empty if none), not yet decoded.
    pub query: &'b [u8],
    /// Body, exactly `Content-Length` bytes.
    pub body: &'b [u8],
    /// Whether the client wants the connection kept open after this response.
    pub keep_alive: bool,
}

/// Size limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line plus headers.
    pub head_bytes_max: usize,
    /// Body.
    pub body_bytes_max: usize,
}

/// What the buffer holds.
#[derive(Debug)]
pub enum Parsed<'b> {
    /// A whole request, and how many bytes of the buffer it took.
    Complete(Request<'b>, usize),
    /// Not yet a whole request: read more (the buffer is within the limits).
    Partial,
    /// Unusable: answer `status` with `reason` and close, since framing is lost.
    Invalid(Status, &'static str),
}

/// Parses the first request in `buf`.
pub fn parse_request<'b>(buf: &'b [u8], limits: Limits) -> Parsed<'b> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.head_bytes_max => {
            return Parsed::Invalid(Status::HeaderFieldsTooLarge, "request head too large");
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.head_bytes_max => {
            return Parsed::Invalid(Status::HeaderFieldsTooLarge, "request head too large");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(Status::HeaderFieldsTooLarge, "too many headers");
        }
        Err(_) => return Parsed::Invalid(Status::BadRequest, "malformed request"),
    };
    // httparse fills these on Complete.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(Status::BadRequest, "malformed request");
    };
    let facts = match HeaderFacts::scan(req.headers) {
        Ok(facts) => facts,
        Err(HeaderError::InvalidLength) => {
            return Parsed::Invalid(Status::BadRequest, "invalid content-length");
        }
        Err(HeaderError::ConflictingLength) => {
            return Parsed::Invalid(Status::BadRequest, "conflicting content-length");
        }
    };
    if facts.encoded {
        return Parsed::Invalid(Status::NotImplemented, "transfer-encoding is not supported");
    }
    let keep_alive = facts.keep_alive(version);
    let body_len = facts.content_len.unwrap_or(0);
    if body_len > limits.body_bytes_max {
        return Parsed::Invalid(Status::PayloadTooLarge, "request body too large");
    }
    let Some(end) = head_len.checked_add(body_len).filter(|&end| end <= buf.len()) else {
        return Parsed::Partial;
    };
    let target = target.as_bytes();
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let request = Request { method, path, query, body: &buf[head_len..end], keep_alive };
    Parsed::Complete(request, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { head_bytes_max: 512, body_bytes_max: 64 };

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf, LIMITS) {
            Parsed::Complete(req, n) => (req, n),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// Goal: a payment request parses into method, path, body, keep-alive; the query splits.
    #[test]
    fn parses_post_and_get() {
        let raw = b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let (req, n) = complete(raw);
        assert_eq!(
            (req.method, req.path, req.body, req.keep_alive),
            (Method::Post, &b"/payments"[..], &b"hello"[..], true)
        );
        assert_eq!(n, raw.len());
        let (req, _) = complete(b"GET /payments-summary?from=a&to=b HTTP/1.0\r\n\r\n");
        assert_eq!(
            (req.path, req.query, req.keep_alive),
            (&b"/payments-summary"[..], &b"from=a&to=b"[..], false)
        );
        let (req, _) = complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(!req.keep_alive);
        let (req, _) =
            complete(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n");
        assert!(!req.keep_alive, "close wins, whatever follows (found by fuzzing)");
        let (req, _) = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(req.keep_alive);
    }

    /// Goal: every prefix of a request is Partial, never an error, so split reads work.
    #[test]
    fn every_prefix_is_partial() {
        let raw = b"POST /payments HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..raw.len() {
            assert!(matches!(parse_request(&raw[..cut], LIMITS), Parsed::Partial), "cut at {cut}");
        }
    }

    /// Goal: pipelined requests come out one at a time with exact lengths.
    #[test]
    fn pipelined() {
        let raw = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n\r\n";
        let mut at = 0;
        let mut paths = Vec::new();
        while at < raw.len() {
            let (req, n) = complete(&raw[at..]);
            paths.push(req.path.to_vec());
            at += n;
        }
        assert_eq!(paths, [b"/a".to_vec(), b"/b".to_vec(), b"/c".to_vec()]);
    }

    /// Goal: each framing problem maps to its status.
    #[test]
    fn invalid_requests() {
        let cases: &[(&[u8], u16)] = &[
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        ];
        for (raw, code) in cases {
            match parse_request(raw, LIMITS) {
                Parsed::Invalid(status, _) => {
                    assert_eq!(status.code(), *code, "{}", String::from_utf8_lossy(raw))
                }
                other => panic!("{other:?}"),
            }
        }
        let long = [b'a'; 600];
        assert!(matches!(
            parse_request(&long, LIMITS),
            Parsed::Invalid(Status::BadRequest | Status::HeaderFieldsTooLarge, _)
        ));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let limits = Limits { head_bytes_max: 4096, body_bytes_max: 64 };
        assert!(matches!(
            parse_request(&many, limits),
            Parsed::Invalid(Status::HeaderFieldsTooLarge, _)
        ));
    }
}
