//! The one header scan behind both requests and responses: what a message's headers say about
//! its body (`Content-Length`, `Transfer-Encoding`) and its connection (`Connection`).

/// Headers parsed per request. A contest request carries 4 to 8; a browser ~15. Past this a
/// request is refused (431) rather than scanned further.
pub const HEADERS_MAX: usize = 32;

/// What a message's headers say about its body and its connection: the one header scan behind
/// both [`parse_request`] and [`parse_response`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct HeaderFacts {
    /// `Content-Length`, when given (every copy agreeing).
    pub(super) content_len: Option<usize>,
    /// A `Transfer-Encoding` header is present.
    pub(super) encoded: bool,
    /// ... and its last coding is `chunked` (RFC 9112 §6.3: only then is the body chunked).
    pub(super) chunked: bool,
    /// `Connection: close` appears.
    close: bool,
    /// `Connection: keep-alive` appears (HTTP/1.0's opt-in).
    keep_alive_token: bool,
}

/// Headers that make a message's framing unknowable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// A `Content-Length` that is not a decimal number.
    InvalidLength,
    /// `Content-Length`s that disagree (RFC 9112 §6.3: unrecoverable).
    ConflictingLength,
}

impl HeaderFacts {
    pub(super) fn scan(headers: &[httparse::Header<'_>]) -> Result<HeaderFacts, HeaderError> {
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
    pub(super) fn keep_alive(&self, version: u8) -> bool {
        (version == 1 || self.keep_alive_token) && !self.close
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
