//! HTTP/1.1 codec on `httparse`: server requests in, responses out, and the client side's
//! responses read and decoded (`Content-Length` or chunked). Buffers belong to the caller, and
//! nothing here allocates but [`read_more`], which grows a caller's buffer for a read;
//! [`read_response`] is the one reader of every answer our client gets, and [`call_once`] a
//! whole request on a fresh connection, for rare calls.
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
/// and the decoded body of the answer, within `timeout`.
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
        let (written, buf) = conn.write_all(request).await;
        written.map_err(|e| err("dropped the request", Some(e.kind())))?;
        let (read, mut buf) = read_response(&mut conn, buf, CALL_RESPONSE_BYTES_MAX).await;
        match read {
            Ok(response) => {
                buf.truncate(response.body.end);
                buf.drain(..response.body.start);
                Ok((response.status, buf))
            }
            Err(ReadError::ClosedBeforeAnswer(kind) | ReadError::Lost(kind)) => {
                Err(err("dropped the connection", Some(kind)))
            }
            Err(ReadError::Unreadable) => Err(err("sent an unreadable response", None)),
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

/// What a message's headers say about its body and its connection: the one header scan behind
/// both [`parse_request`] and [`parse_response`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HeaderFacts {
    /// `Content-Length`, when given (every copy agreeing).
    content_len: Option<usize>,
    /// A `Transfer-Encoding` header is present.
    encoded: bool,
    /// ... and its last coding is `chunked` (RFC 9112 §6.3: only then is the body chunked).
    chunked: bool,
    /// `Connection: close` appears.
    close: bool,
    /// `Connection: keep-alive` appears (HTTP/1.0's opt-in).
    keep_alive_token: bool,
}

/// Headers that make a message's framing unknowable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderError {
    /// A `Content-Length` that is not a decimal number.
    InvalidLength,
    /// `Content-Length`s that disagree (RFC 9112 §6.3: unrecoverable).
    ConflictingLength,
}

impl HeaderFacts {
    fn scan(headers: &[httparse::Header<'_>]) -> Result<HeaderFacts, HeaderError> {
        let mut facts = HeaderFacts::default();
        for header in headers {
            let name = header.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let len = parse_usize(header.value).ok_or(HeaderError::InvalidLength)?;
                if facts.content_len.is_some_and(|prev| prev != len) {
                    return Err(HeaderError::ConflictingLength);
                }
                facts.content_len = Some(len);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                facts.encoded = true;
                // Codings accumulate across headers; the last one decides.
                let last = header.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                facts.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                facts.close |= has_token(header.value, b"close");
                facts.keep_alive_token |= has_token(header.value, b"keep-alive");
            }
        }
        Ok(facts)
    }

    /// Whether the connection persists after this message: HTTP/1.1 by default, HTTP/1.0 when
    /// asked, and never with `close`, which wins wherever it appears (RFC 9112 §9.6).
    fn keep_alive(&self, version: u8) -> bool {
        (version == 1 || self.keep_alive_token) && !self.close
    }
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

/// How a response read by our client frames its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// The bytes as they are (`Content-Length`, the connection's end, or no body).
    Plain,
    /// Chunked: the span holds the chunks with their framing, to be decoded.
    Chunked,
}

/// What the buffer holds of a response read by our client (processor or peer calls).
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedResponse {
    /// A whole response: its status, where its body lies in the buffer, total bytes taken,
    /// and whether the server keeps the connection open.
    Complete {
        /// Status code.
        status: u16,
        /// Body start..end in the buffer, framing included when chunked.
        body: (usize, usize),
        /// How to read the body's span.
        framing: BodyFraming,
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

/// Frames the first response in `buf`. Bodies are framed by `Content-Length`, by chunked
/// encoding (the real processors run on Kestrel, which sends every JSON body chunked), or by
/// the connection's end (`eof`) when neither is given. [`take_response`] also decodes.
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
    let Ok(facts) = HeaderFacts::scan(res.headers) else {
        return ParsedResponse::Invalid;
    };
    let mut keep_alive = facts.keep_alive(version);
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let mut framing = BodyFraming::Plain;
    let end = if no_body {
        head_len
    } else if facts.encoded {
        // Only a chunked body can be framed; another final coding would be read to the end,
        // and no peer of ours sends one.
        if !facts.chunked {
            return ParsedResponse::Invalid;
        }
        // With a Content-Length beside it the message is suspect (RFC 9112 §6.3): read the
        // chunks, then do not reuse the connection.
        keep_alive &= facts.content_len.is_none();
        framing = BodyFraming::Chunked;
        match chunked_len(&buf[head_len..]) {
            Ok(Some(n)) => head_len + n,
            Ok(None) if eof => return ParsedResponse::Invalid,
            Ok(None) => return ParsedResponse::Partial,
            Err(BadFraming) => return ParsedResponse::Invalid,
        }
    } else if let Some(len) = facts.content_len {
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
    ParsedResponse::Complete { status, body: (head_len, end), framing, len: end, keep_alive }
}

/// A response (or a chunked body) whose framing we cannot follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFraming;

/// One chunk-size line at the start of `buf`: `Some((line length, chunk size))`, or `None` if
/// the line is not all there yet. The size must start with a hex digit (httparse alone reads
/// an empty size as 0, the last chunk); extensions (`;name=value`) are skipped.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, usize)>, BadFraming> {
    match buf.first() {
        None => return Ok(None),
        Some(b) if !b.is_ascii_hexdigit() => return Err(BadFraming),
        Some(_) => {}
    }
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((line, size))) => {
            Ok(Some((line, usize::try_from(size).map_err(|_| BadFraming)?)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(BadFraming),
    }
}

/// Length of a complete chunked body (chunks, last chunk, trailers, final empty line) at the
/// start of `buf`, `None` if incomplete.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, BadFraming> {
    let mut pos = 0;
    loop {
        let Some((line, size)) = chunk_size_line(&buf[pos..])? else {
            return Ok(None);
        };
        pos += line;
        if size == 0 {
            // Trailer lines, if any, then an empty line; usually just "\r\n".
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
        let next = pos.checked_add(size).and_then(|p| p.checked_add(2)).ok_or(BadFraming)?;
        if next > buf.len() {
            return Ok(None);
        }
        if &buf[next - 2..next] != b"\r\n" {
            return Err(BadFraming);
        }
        pos = next;
    }
}

/// Decodes, in place, a chunked body that [`parse_response`] framed: the data of every chunk
/// moves to the start of `span`, in order, and its length is returned. The data only ever moves
/// towards the start, so one pass suffices and nothing is allocated.
fn dechunk_in_place(span: &mut [u8]) -> usize {
    let (mut read, mut written) = (0, 0);
    // `parse_response` checked every line of this span: the sizes below cannot fail.
    while let Ok(Some((line, size))) = chunk_size_line(&span[read..]) {
        read += line;
        if size == 0 {
            break;
        }
        span.copy_within(read..read + size, written);
        written += size;
        read += size + 2;
    }
    written
}

/// A whole response at the start of a buffer, its body decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Where the decoded body lies in the buffer.
    pub body: std::ops::Range<usize>,
    /// Bytes of the buffer the response took (what follows belongs to the next one).
    pub len: usize,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// Frames the first response in `buf` ([`parse_response`]) and, once it is whole, decodes a
/// chunked body in place. `Ok(None)`: read more.
pub fn take_response(buf: &mut [u8], eof: bool) -> Result<Option<Response>, BadFraming> {
    match parse_response(buf, eof) {
        ParsedResponse::Complete { status, body: (start, end), framing, len, keep_alive } => {
            let body_len = match framing {
                BodyFraming::Plain => end - start,
                BodyFraming::Chunked => dechunk_in_place(&mut buf[start..end]),
            };
            Ok(Some(Response { status, body: start..start + body_len, len, keep_alive }))
        }
        ParsedResponse::Partial => Ok(None),
        ParsedResponse::Invalid => Err(BadFraming),
    }
}

/// Why no response could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The connection ended or broke before the first byte of an answer: on a reused
    /// keep-alive connection, the server had closed it while it sat idle.
    ClosedBeforeAnswer(std::io::ErrorKind),
    /// The connection ended or broke partway through the answer.
    Lost(std::io::ErrorKind),
    /// Not an HTTP response we can frame, or longer than the caller's limit.
    Unreadable,
}

/// The one reader of every answer our client gets (processors and peer): reads from `stream`
/// into `buf` (emptied first) until a whole response is there, at most `bytes_max` bytes, and
/// decodes its body. Hands `buf` back either way, for reuse.
pub async fn read_response(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    bytes_max: usize,
) -> (Result<Response, ReadError>, Vec<u8>) {
    /// Room made before each read: a processor's answer is ~200 bytes, its 422 ~2 KB.
    const GROW_BYTES: usize = 1024;
    buf.clear();
    let mut eof = false;
    loop {
        let error = match take_response(&mut buf, eof) {
            Ok(Some(response)) => return (Ok(response), buf),
            Ok(None) if !eof && buf.len() < bytes_max => None,
            Ok(None) | Err(BadFraming) if !eof => Some(ReadError::Unreadable),
            // The connection ended without a whole response: before it, partway through it,
            // or after bytes that were never a response.
            _ if buf.is_empty() => {
                Some(ReadError::ClosedBeforeAnswer(std::io::ErrorKind::UnexpectedEof))
            }
            _ if parse_response(&buf, false) == ParsedResponse::Partial => {
                Some(ReadError::Lost(std::io::ErrorKind::UnexpectedEof))
            }
            _ => Some(ReadError::Unreadable),
        };
        if let Some(error) = error {
            return (Err(error), buf);
        }
        let (read, more) = read_more(stream, buf, GROW_BYTES).await;
        buf = more;
        match read {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if buf.is_empty() => return (Err(ReadError::ClosedBeforeAnswer(e.kind())), buf),
            Err(e) => return (Err(ReadError::Lost(e.kind())), buf),
        }
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
            ParsedResponse::Complete {
                status: 200,
                body: (38, 40),
                framing: BodyFraming::Plain,
                len: 40,
                keep_alive: true
            }
        );
        for cut in 0..40 {
            assert_eq!(parse_response(&cl[..cut], false), ParsedResponse::Partial, "cut {cut}");
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

    /// The real processor's answers, byte for byte as Kestrel frames them (the lab's
    /// `framing` module says where each detail comes from).
    const KESTREL_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: Tue, 15 Jul 2025 12:34:56 GMT\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\n2c\r\n{\"message\":\"payment processed successfully\"}\r\n0\r\n\r\n";
    const KESTREL_HEALTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: Tue, 15 Jul 2025 12:34:56 GMT\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\n25\r\n{\"failing\":false,\"minResponseTime\":0}\r\n0\r\n\r\n";
    const KESTREL_422: &[u8] = b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json; charset=utf-8\r\nDate: Tue, 15 Jul 2025 12:34:56 GMT\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"message\":\r\n6\r\n\"dup\"}\r\n0\r\n\r\n";
    const KESTREL_429: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nDate: Tue, 15 Jul 2025 12:34:56 GMT\r\nServer: Kestrel\r\nRetry-After: 5\r\nTransfer-Encoding: chunked\r\n\r\n22\r\nCalm down, bitch. Try again later.\r\n0\r\n\r\n";

    /// A response read back: status, decoded body, bytes taken, keep-alive.
    type Taken = (u16, Vec<u8>, usize, bool);

    fn take(raw: &[u8], eof: bool) -> Result<Option<Taken>, BadFraming> {
        let mut buf = raw.to_vec();
        let taken = take_response(&mut buf, eof)?;
        Ok(taken.map(|r| (r.status, buf[r.body].to_vec(), r.len, r.keep_alive)))
    }

    /// Goal: Kestrel's chunked answers decode to their JSON (one chunk, two chunks), the 429's
    /// text too, and every prefix of each is Partial: an answer split across reads at any byte
    /// is never misread. What follows a response is left alone. Method: the literal answers,
    /// cut at every byte.
    #[test]
    fn decodes_kestrel_chunked_answers() {
        let cases: [(&[u8], u16, &[u8]); 4] = [
            (KESTREL_OK, 200, b"{\"message\":\"payment processed successfully\"}"),
            (KESTREL_HEALTH, 200, b"{\"failing\":false,\"minResponseTime\":0}"),
            (KESTREL_422, 422, b"{\"message\":\"dup\"}"),
            (KESTREL_429, 429, b"Calm down, bitch. Try again later."),
        ];
        for (raw, status, body) in cases {
            let (got_status, got_body, len, keep_alive) = take(raw, false).unwrap().unwrap();
            assert_eq!(
                (got_status, &got_body[..], len, keep_alive),
                (status, body, raw.len(), true)
            );
            for cut in 0..raw.len() {
                assert_eq!(take(&raw[..cut], false), Ok(None), "cut at {cut}");
            }
            let pipelined = [raw, KESTREL_OK].concat();
            let mut buf = pipelined.clone();
            let first = take_response(&mut buf, false).unwrap().unwrap();
            assert_eq!(&buf[first.len..], KESTREL_OK, "the next response is untouched");
        }
    }

    /// Goal: chunk extensions and trailers are skipped, upper- and lower-case sizes read, an
    /// empty or non-hex size and a chunk without its CRLF refused, a chunked body with a
    /// Content-Length beside it read but its connection not reused, conflicting lengths and
    /// codings other than chunked refused. Method: literal responses.
    #[test]
    fn chunked_edge_cases() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let with = |chunks: &str| format!("{head}{chunks}").into_bytes();
        let body = |chunks: &str| take(&with(chunks), false).map(|r| r.map(|r| r.1));
        assert_eq!(body("3;a=b\r\nabc\r\n0\r\n\r\n"), Ok(Some(b"abc".to_vec())));
        assert_eq!(
            body("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n").unwrap().unwrap().len(),
            20
        );
        assert_eq!(
            body("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"),
            Ok(Some(b"abc".to_vec()))
        );
        assert_eq!(body("3\r\nabc\r\n0\r\nX-Trailer: 1\r\n"), Ok(None), "trailers not ended");
        assert_eq!(body("\r\n\r\n"), Err(BadFraming), "an empty size is not the last chunk");
        assert_eq!(body("zz\r\nabc\r\n0\r\n\r\n"), Err(BadFraming));
        assert_eq!(body("3\r\nabcd\r\n0\r\n\r\n"), Err(BadFraming));
        assert_eq!(body("ffffffffffffffffff\r\n"), Err(BadFraming));
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(take(both, false), Ok(Some((200, b"abc".to_vec(), both.len(), false))));
        let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
        assert_eq!(take(conflicting, false), Err(BadFraming));
        let agreeing = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(take(agreeing, false), Ok(Some((200, b"abc".to_vec(), agreeing.len(), true))));
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(take(gzip, false), Err(BadFraming));
        let chunked_last = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(matches!(take(chunked_last, false), Ok(Some((200, _, _, true)))));
    }

    /// Goal: the one reader gets a chunked answer written one byte at a time (every byte its
    /// own read), keeps a pipelined remainder in the buffer, tells a connection closed before
    /// any answer from one lost partway, and stops at its size limit. Method: a loopback
    /// listener writing the answers with a flush per byte, under both drivers.
    #[monoio::test_all(timer_enabled = true)]
    async fn reads_answers_split_at_every_byte() {
        use monoio::io::AsyncWriteRentExt;
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = monoio::spawn(async move {
            for script in [
                &[KESTREL_422, KESTREL_OK][..],
                &[],
                &KESTREL_OK[..40].chunks(40).collect::<Vec<_>>(),
                &[KESTREL_OK],
            ] {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.set_nodelay(true).unwrap();
                for answer in script {
                    for byte in answer.iter() {
                        let (written, _) = conn.write_all(vec![*byte]).await;
                        written.unwrap();
                        monoio::time::sleep(std::time::Duration::from_micros(50)).await;
                    }
                }
            }
        });
        let connect = || monoio::net::TcpStream::connect_addr(addr);
        let mut conn = connect().await.unwrap();
        let (first, buf) = read_response(&mut conn, Vec::new(), 64 * 1024).await;
        let first = first.unwrap();
        assert_eq!((first.status, &buf[first.body.clone()]), (422, &b"{\"message\":\"dup\"}"[..]));
        let (second, buf) = read_response(&mut conn, buf, 64 * 1024).await;
        let second = second.unwrap();
        assert_eq!(&buf[second.body], b"{\"message\":\"payment processed successfully\"}");
        drop(conn);
        let mut conn = connect().await.unwrap();
        let (closed, buf) = read_response(&mut conn, buf, 64 * 1024).await;
        assert!(matches!(closed, Err(ReadError::ClosedBeforeAnswer(_))), "{closed:?}");
        let mut conn = connect().await.unwrap();
        let (lost, buf) = read_response(&mut conn, buf, 64 * 1024).await;
        assert!(matches!(lost, Err(ReadError::Lost(_))), "{lost:?}");
        let mut conn = connect().await.unwrap();
        let (too_big, _) = read_response(&mut conn, buf, 64).await;
        assert_eq!(too_big, Err(ReadError::Unreadable));
        server.await;
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
