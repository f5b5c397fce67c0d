//! HTTP/1.1 codec on `httparse`: server requests in, responses out, and the client side's
//! response framing. Buffers belong to the caller; nothing here allocates, and the one I/O
//! helper, [`read_more`], appends a read to a caller's buffer.
//!
//! Why our own codec and not `monoio-http`: see the README's "HTTP codec" section (CPU per
//! request, and that crate's client keeping dead connections in its pool).

/// Reads once from `stream`, appending to `buf` after its current contents (monoio's
/// `read(Vec)` would overwrite from index 0). Ensures some spare capacity first.
pub async fn read_more(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    grow_bytes: usize,
) -> (std::io::Result<usize>, Vec<u8>) {
    use monoio::{buf::IoBufMut, io::AsyncReadRent};
    if buf.capacity() - buf.len() < grow_bytes / 2 {
        buf.reserve(grow_bytes);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (read, slice) = stream.read(buf.slice_mut(len..cap)).await;
    (read, slice.into_inner())
}

/// Largest response [`call_once`] reads: its callers' answers are under 1 KiB.
const CALL_RESPONSE_BYTES_MAX: usize = 16 * 1024;

/// Why a [`call_once`] failed: a fixed description and the I/O error kind, if any.
#[derive(Clone, Copy, Debug)]
pub struct CallError {
    /// What went wrong, for messages ("unreachable", "timed out", ...).
    pub what: &'static str,
    /// The underlying I/O error.
    pub kind: Option<std::io::ErrorKind>,
}

/// One request on a fresh connection, for rare calls (peer link, health polls): the status
/// and body of the answer, within `timeout`.
pub async fn call_once(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<(u16, Vec<u8>), CallError> {
    use monoio::io::AsyncWriteRentExt;
    let err = |what, kind| CallError { what, kind };
    let exchange = async {
        let mut conn = monoio::net::TcpStream::connect_addr(addr)
            .await
            .map_err(|e| err("unreachable", Some(e.kind())))?;
        let (written, mut buf) = conn.write_all(request).await;
        written.map_err(|e| err("dropped the request", Some(e.kind())))?;
        buf.clear();
        let mut eof = false;
        loop {
            match parse_response(&buf, eof) {
                ParsedResponse::Complete { status, body: (start, end), .. } => {
                    return Ok((status, buf[start..end].to_vec()));
                }
                ParsedResponse::Partial if !eof && buf.len() < CALL_RESPONSE_BYTES_MAX => {}
                _ => return Err(err("sent an unreadable response", None)),
            }
            let (read, next) = read_more(&mut conn, buf, 1024).await;
            buf = next;
            match read {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) => return Err(err("dropped the connection", Some(e.kind()))),
            }
        }
    };
    match monoio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(err("timed out", None)),
    }
}

/// Headers parsed per request. A contest request carries 4 to 8; a browser ~15. Past this a
/// request is refused (431) rather than scanned further.
pub const HEADERS_MAX: usize = 32;

/// A response status this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 202.
    Accepted,
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408.
    RequestTimeout,
    /// 409.
    Conflict,
    /// 413.
    PayloadTooLarge,
    /// 422.
    UnprocessableEntity,
    /// 431.
    HeaderFieldsTooLarge,
    /// 500.
    InternalServerError,
    /// 501.
    NotImplemented,
    /// 503.
    ServiceUnavailable,
}

impl Status {
    /// Every status, in [`Status::index`] order (for per-status counters).
    pub const ALL: [Status; 13] = [
        Status::Ok,
        Status::Accepted,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::Conflict,
        Status::PayloadTooLarge,
        Status::UnprocessableEntity,
        Status::HeaderFieldsTooLarge,
        Status::InternalServerError,
        Status::NotImplemented,
        Status::ServiceUnavailable,
    ];

    /// Position in [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The status line's code and reason.
    pub fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"200 OK",
            Status::Accepted => b"202 Accepted",
            Status::BadRequest => b"400 Bad Request",
            Status::NotFound => b"404 Not Found",
            Status::MethodNotAllowed => b"405 Method Not Allowed",
            Status::RequestTimeout => b"408 Request Timeout",
            Status::Conflict => b"409 Conflict",
            Status::PayloadTooLarge => b"413 Payload Too Large",
            Status::UnprocessableEntity => b"422 Unprocessable Entity",
            Status::HeaderFieldsTooLarge => b"431 Request Header Fields Too Large",
            Status::InternalServerError => b"500 Internal Server Error",
            Status::NotImplemented => b"501 Not Implemented",
            Status::ServiceUnavailable => b"503 Service Unavailable",
        }
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        let line = self.line();
        line[..3].iter().fold(0, |acc, d| acc * 10 + u16::from(d - b'0'))
    }
}

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
    let mut content_len: Option<usize> = None;
    let mut keep_alive = version == 1;
    let mut close = false;
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(len) = parse_usize(header.value) else {
                return Parsed::Invalid(Status::BadRequest, "invalid content-length");
            };
            if content_len.is_some_and(|prev| prev != len) {
                return Parsed::Invalid(Status::BadRequest, "conflicting content-length");
            }
            content_len = Some(len);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Invalid(Status::NotImplemented, "transfer-encoding is not supported");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(header.value, b"close") {
                close = true;
            } else if has_token(header.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    // `close` wins over `keep-alive` wherever it appears (RFC 9112 §9.6).
    let keep_alive = keep_alive && !close;
    let body_len = content_len.unwrap_or(0);
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

/// Media type of the JSON bodies every route but `/metrics` answers with.
pub const JSON: &[u8] = b"application/json";
/// Media type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";

/// A response body and its media type, built by a route.
#[derive(Debug)]
pub struct Body {
    /// The bytes (empty: no body, no `Content-Type`).
    pub bytes: Vec<u8>,
    /// `Content-Type` when `bytes` is not empty: [`JSON`] unless the route says otherwise.
    pub content_type: &'static [u8],
}

impl Body {
    /// An empty JSON body with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Body {
        Body { bytes: Vec::with_capacity(capacity), content_type: JSON }
    }

    /// Empties it for the next response (JSON again).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.content_type = JSON;
    }
}

/// Appends a whole response. `date` is the cached `Date` value (see `server::DateCache`).
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    body: &Body,
    keep_alive: bool,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.line());
    out.extend_from_slice(b"\r\nServer: payrelay\r\nDate: ");
    out.extend_from_slice(date);
    if !body.bytes.is_empty() {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(body.content_type);
    }
    out.extend_from_slice(b"\r\nContent-Length: ");
    crate::money::write_u64(out, body.bytes.len() as u64);
    if !keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body.bytes);
}

/// Appends `{"error":"<reason>"}`. Reasons are our own static texts: no escaping needed.
pub fn write_error_json(out: &mut Vec<u8>, reason: &str) {
    debug_assert!(!reason.contains(['"', '\\']), "error reasons are plain text");
    out.extend_from_slice(b"{\"error\":\"");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// A response read by our client (processor or peer calls).
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedResponse {
    /// A whole response: its status, where its body lies in the buffer, total bytes taken,
    /// and whether the server keeps the connection open.
    Complete {
        /// Status code.
        status: u16,
        /// Body start..end in the buffer (for chunked bodies, the raw chunked bytes).
        body: (usize, usize),
        /// Bytes of the buffer this response took.
        len: usize,
        /// Whether the connection may be reused.
        keep_alive: bool,
    },
    /// Read more.
    Partial,
    /// Not HTTP, or framing we cannot follow.
    Invalid,
}

/// Parses the first response in `buf`. Bodies are framed by `Content-Length`, by chunked
/// encoding (ASP.NET, which the real processors run on, streams JSON chunked), or by the
/// connection's end (`eof`) when neither is given.
pub fn parse_response(buf: &[u8], eof: bool) -> ParsedResponse {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => return ParsedResponse::Invalid,
        Ok(httparse::Status::Partial) => return ParsedResponse::Partial,
        Err(_) => return ParsedResponse::Invalid,
    };
    let (Some(status), Some(version)) = (res.code, res.version) else {
        return ParsedResponse::Invalid;
    };
    let mut keep_alive = version == 1;
    let mut close = false;
    let mut content_len = None;
    let mut chunked = false;
    for header in res.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match parse_usize(header.value) {
                Some(len) => content_len = Some(len),
                None => return ParsedResponse::Invalid,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = has_token(header.value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(header.value, b"close") {
                close = true;
            } else if has_token(header.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    // As for requests: `close` wins.
    let mut keep_alive = keep_alive && !close;
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let end = if no_body {
        head_len
    } else if chunked {
        match chunked_end(&buf[head_len..]) {
            Ok(Some(n)) => head_len + n,
            Ok(None) if eof => return ParsedResponse::Invalid,
            Ok(None) => return ParsedResponse::Partial,
            Err(()) => return ParsedResponse::Invalid,
        }
    } else if let Some(len) = content_len {
        match head_len.checked_add(len) {
            Some(end) if end <= buf.len() => end,
            Some(_) if !eof => return ParsedResponse::Partial,
            _ => return ParsedResponse::Invalid,
        }
    } else if eof {
        keep_alive = false;
        buf.len()
    } else {
        return ParsedResponse::Partial;
    };
    ParsedResponse::Complete { status, body: (head_len, end), len: end, keep_alive }
}

/// Length of a complete chunked body at the start of `buf`, `None` if incomplete.
fn chunked_end(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut pos = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(()),
        };
        pos += size_len;
        if size == 0 {
            // Trailers, if any, end with an empty line; usually it is just "\r\n".
            loop {
                let rest = &buf[pos..];
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                pos += nl + 1;
                if nl == 0 || (nl == 1 && rest[0] == b'\r') {
                    return Ok(Some(pos));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| ())?;
        let next = pos.checked_add(size).and_then(|p| p.checked_add(2)).ok_or(())?;
        if next > buf.len() {
            return Ok(None);
        }
        if &buf[next - 2..next] != b"\r\n" {
            return Err(());
        }
        pos = next;
    }
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A decimal `usize` with optional surrounding whitespace; `None` on anything else.
fn parse_usize(value: &[u8]) -> Option<usize> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits
        .iter()
        .try_fold(0usize, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0')))
}

/// A JSON body deserialized, `None` if it is not valid UTF-8 and JSON of that shape. Every body
/// we parse (payments, processors' health, the peer's answers) comes through here: sonic-rs
/// builds `&str`s over the bytes before it checks their encoding (its `as_str` panicked on a
/// body that was not UTF-8 under fuzzing), so the check comes first, one pass over the bytes.
pub fn json_body<'b, T: serde::Deserialize<'b>>(body: &'b [u8]) -> Option<T> {
    sonic_rs::from_str(std::str::from_utf8(body).ok()?).ok()
}

/// A query value whose percent-encoding is broken (or too long to decode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEncoding;

/// The value of query parameter `name` (percent-decoded into `scratch`), if present.
pub fn query_param<'a>(
    query: &'a [u8],
    name: &[u8],
    scratch: &'a mut [u8],
) -> Result<Option<&'a [u8]>, BadEncoding> {
    for pair in query.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        if key != name {
            continue;
        }
        if !value.contains(&b'%') && !value.contains(&b'+') {
            return Ok(Some(value));
        }
        return percent_decode(value, scratch).map(Some);
    }
    Ok(None)
}

/// The value of query parameter `name` parsed as a number (`None` if absent or not one).
pub fn query_number<T: std::str::FromStr>(query: &[u8], name: &[u8]) -> Option<T> {
    // Peer-link numbers are at most 20 digits and a sign.
    let mut scratch = [0u8; 32];
    let text = query_param(query, name, &mut scratch).ok()??;
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn percent_decode<'a>(value: &[u8], scratch: &'a mut [u8]) -> Result<&'a [u8], BadEncoding> {
    let mut out = 0;
    let mut i = 0;
    while i < value.len() {
        let byte = match value[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3).ok_or(BadEncoding)?;
                let hi = (hex[0] as char).to_digit(16).ok_or(BadEncoding)?;
                let lo = (hex[1] as char).to_digit(16).ok_or(BadEncoding)?;
                i += 3;
                (hi * 16 + lo) as u8
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        *scratch.get_mut(out).ok_or(BadEncoding)? = byte;
        out += 1;
    }
    Ok(&scratch[..out])
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

    /// Goal: responses carry a correct Content-Length and close only when asked.
    #[test]
    fn writes_responses() {
        let mut out = Vec::new();
        let mut body = Body::with_capacity(16);
        body.bytes.extend_from_slice(b"{\"error\":\"x\"}");
        write_response(&mut out, Status::NotFound, &body, false, b"D");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Type: application/json\r\n"));
        assert!(text.contains("Content-Length: 13\r\n") && text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"x\"}"));
        assert_eq!(Status::HeaderFieldsTooLarge.code(), 431);
        for (i, status) in Status::ALL.into_iter().enumerate() {
            assert_eq!(status.index(), i, "{status:?}");
        }
    }

    /// Goal: the client side frames content-length, chunked, no-body and close-delimited
    /// responses, and reports partial ones as Partial at every cut.
    #[test]
    fn parses_responses() {
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 x\r\n\r\n";
        let first = parse_response(cl, false);
        assert_eq!(
            first,
            ParsedResponse::Complete { status: 200, body: (38, 40), len: 40, keep_alive: true }
        );
        for cut in 0..40 {
            assert_eq!(parse_response(&cl[..cut], false), ParsedResponse::Partial, "cut {cut}");
        }
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        assert!(
            matches!(parse_response(chunked, false), ParsedResponse::Complete { status: 200, len, .. } if len == chunked.len())
        );
        for cut in 0..chunked.len() {
            assert_eq!(
                parse_response(&chunked[..cut], false),
                ParsedResponse::Partial,
                "cut {cut}"
            );
        }
        let no_len = b"HTTP/1.1 200 OK\r\n\r\nabc";
        assert_eq!(parse_response(no_len, false), ParsedResponse::Partial);
        assert!(matches!(
            parse_response(no_len, true),
            ParsedResponse::Complete { keep_alive: false, len: 22, .. }
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            ParsedResponse::Complete { status: 204, .. }
        ));
        assert_eq!(parse_response(b"nonsense\r\n\r\n", false), ParsedResponse::Invalid);
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            ParsedResponse::Complete { keep_alive: false, .. }
        ));
    }

    /// Goal: query parameters are found by exact name and percent-decoded when needed.
    #[test]
    fn query_params() {
        let mut scratch = [0u8; 64];
        let q = b"from=2025-07-15T12%3A00%3A00.000Z&to=x&fromage=1";
        assert_eq!(
            query_param(q, b"from", &mut scratch),
            Ok(Some(&b"2025-07-15T12:00:00.000Z"[..]))
        );
        assert_eq!(query_param(q, b"to", &mut scratch), Ok(Some(&b"x"[..])));
        assert_eq!(query_param(q, b"at", &mut scratch), Ok(None));
        assert_eq!(query_param(b"from=%zz", b"from", &mut scratch), Err(BadEncoding));
        assert_eq!(query_param(b"from=%4", b"from", &mut scratch), Err(BadEncoding));
    }
}
