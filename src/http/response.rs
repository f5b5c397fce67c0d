//! Server side, out: statuses, bodies and whole responses written into a connection's buffer.

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

    /// The code as text (`"404"`), for metrics' labels.
    pub fn code_text(self) -> &'static str {
        // The status line starts with the code's three ASCII digits, so this never fails.
        std::str::from_utf8(&self.line()[..3]).unwrap_or("000")
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        let line = self.line();
        line[..3].iter().fold(0, |acc, d| acc * 10 + u16::from(d - b'0'))
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

    /// Writes `{"error":"<reason>"}` and hands `status` back, for a route's `return`.
    pub fn error(&mut self, status: Status, reason: &str) -> Status {
        write_error_json(&mut self.bytes, reason);
        status
    }

    /// Empties it for the next response (JSON again).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.content_type = JSON;
    }
}

/// Appends a whole response. `date` is the cached `Date` value (see [`super::date::DateCache`]).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
