//! How the emulated processors put their answers on the wire: as the real ones (Kestrel) do, by
//! default, or with `Content-Length` on every body, the lab's earlier framing.
//!
//! # What the real processor sends, and why
//!
//! The real processor is an ASP.NET Core 9 minimal API on Kestrel, built with NativeAOT
//! (`zanfranceschi/rinha-de-backend-2025-payment-processor`, `src/payment-processor/`). Its
//! handlers return objects or `Results.Ok(..)` / `Results.UnprocessableEntity(..)`, which set no
//! `Content-Length`, and Kestrel never buffers a response to measure it (aspnet/KestrelHttpServer
//! issue 2417): `HttpProtocol.CreateResponseHeaders` picks `Transfer-Encoding: chunked` for any
//! HTTP/1.1 response whose application starts writing a body without a length. From ASP.NET
//! Core's source (`Http1OutputProducer`, `ChunkWriter`, the generated `HttpResponseHeaders`,
//! `HttpResultsHelper`, `HttpResponseJsonExtensions`, `RateLimitingMiddleware`):
//!
//! - **JSON answers** (`200`/`422` payments, `service-health`, `GET /payments/{id}`, the admin
//!   API): headers `Content-Type: application/json; charset=utf-8`, `Date`, `Server: Kestrel`,
//!   `Transfer-Encoding: chunked`, in that order (Kestrel writes known headers in a fixed order:
//!   `Content-Length`, `Connection`, `Content-Type`, `Date`, `Server`, then the rest by name),
//!   and no `Connection` header on a keep-alive HTTP/1.1 answer. `WriteAsJsonAsync` serializes
//!   into the body pipe and flushes once: the headers and the body's chunk(s) go out together;
//!   then `ProduceEnd` writes the terminating `0\r\n\r\n` with a flush of its own, so a client
//!   often reads it apart.
//! - **The `422`'s body** is `{"message": "... Error details: {ex}"}`, the whole Npgsql
//!   exception with its stack trace: over a kilobyte, more than `System.Text.Json` writes into
//!   the first buffer, so it arrives as two chunks (`{"message":`, then the rest).
//! - **The rate limiter's `429`** (`OnRejected` sets the status and `Retry-After`, then
//!   `Response.WriteAsync(text)`): chunked text, and no `Content-Type` at all.
//! - **Status-only answers** (the failure switch's `Results.StatusCode(500)`, `NotFound()`,
//!   `Unauthorized()`): Kestrel sees the application complete without writing and sends
//!   `Content-Length: 0`. `NoContent()` (`204`) gets neither length nor encoding.
//!
//! Not reproduced, because no client of ours depends on them: hyper writes chunk sizes in upper
//! case hex where Kestrel writes lower case (both valid: RFC 9112 §7.1), `System.Text.Json`
//! escapes more characters than `serde_json` (quotes as `\u0022`), and the exception text
//! differs in its details. The lab's bad-request answers are status-only, as Kestrel's are for a
//! body that does not bind.

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    str::FromStr,
    task::{Context, Poll},
    time::SystemTime,
};

use bytes::Bytes;
use hyper::{
    Response, StatusCode,
    body::{Body, Frame, SizeHint},
    header::{
        CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderName, HeaderValue, SERVER, TRANSFER_ENCODING,
    },
};
use serde_json::Value;

/// The `Content-Type` Kestrel's JSON writer sets.
const KESTREL_JSON: &str = "application/json; charset=utf-8";

/// How the processors frame their answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As the real processors (Kestrel) do: bodies chunked, `Server: Kestrel`.
    Kestrel,
    /// Every body with `Content-Length`: the lab's framing before it was checked against the
    /// real processors, kept for comparisons.
    ContentLength,
}

/// An answer of the emulator.
pub type Answer = Response<WireBody>;

impl Framing {
    /// The name `--framing` takes.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Kestrel => "kestrel",
            Framing::ContentLength => "content-length",
        }
    }

    /// A JSON answer written in one piece.
    pub fn json(self, status: StatusCode, value: &Value) -> Answer {
        self.json_chunks(status, vec![Bytes::from(value.to_string())])
    }

    /// A JSON answer written as these chunks (one flush for all of them, as `System.Text.Json`
    /// does when the first buffer is too small for the whole body).
    pub fn json_chunks(self, status: StatusCode, chunks: Vec<Bytes>) -> Answer {
        match self {
            Framing::Kestrel => {
                answer(status, WireBody::chunked(chunks), Some(KESTREL_JSON), &[], true)
            }
            Framing::ContentLength => {
                answer(status, WireBody::sized(chunks), Some("application/json"), &[], false)
            }
        }
    }

    /// A text answer with extra headers, as the rate limiter's `OnRejected` writes it.
    pub fn text(
        self,
        status: StatusCode,
        text: &'static str,
        headers: &[(HeaderName, &'static str)],
    ) -> Answer {
        let body = vec![Bytes::from_static(text.as_bytes())];
        match self {
            // `Response.WriteAsync` sets no Content-Type.
            Framing::Kestrel => answer(status, WireBody::chunked(body), None, headers, true),
            Framing::ContentLength => {
                let text = Some("text/plain; charset=utf-8");
                answer(status, WireBody::sized(body), text, headers, false)
            }
        }
    }

    /// A status-only answer (no body).
    pub fn empty(self, status: StatusCode) -> Answer {
        // Kestrel's own, first: the application completed without writing.
        let length = [(CONTENT_LENGTH, "0")];
        let kestrel = self == Framing::Kestrel;
        let headers: &[_] = if kestrel && status != StatusCode::NO_CONTENT { &length } else { &[] };
        answer(status, WireBody::sized(Vec::new()), None, headers, kestrel)
    }

    /// A bad request: status-only under Kestrel (a body that does not bind), a text otherwise.
    pub fn bad_request(self, text: &'static str) -> Answer {
        match self {
            Framing::Kestrel => self.empty(StatusCode::BAD_REQUEST),
            Framing::ContentLength => self.text(StatusCode::BAD_REQUEST, text, &[]),
        }
    }

    /// Whether header names go out title-cased (`Content-Type`), as Kestrel writes them.
    pub fn title_case_headers(self) -> bool {
        self == Framing::Kestrel
    }
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(text: &str) -> Result<Framing, String> {
        match text {
            "kestrel" => Ok(Framing::Kestrel),
            "content-length" => Ok(Framing::ContentLength),
            other => Err(format!("framing {other:?}: expected kestrel or content-length")),
        }
    }
}

/// An answer: `Content-Type` (if any), Kestrel's `Date` and `Server` when `kestrel`, then
/// `headers`, then `Transfer-Encoding: chunked` when the body is chunked: Kestrel's order.
fn answer(
    status: StatusCode,
    body: WireBody,
    content_type: Option<&'static str>,
    headers: &[(HeaderName, &'static str)],
    kestrel: bool,
) -> Answer {
    let chunked = body.len.is_none();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    if let Some(content_type) = content_type {
        map.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if kestrel {
        add_date_and_server(map);
    }
    for (name, value) in headers {
        map.insert(name.clone(), HeaderValue::from_static(value));
    }
    if chunked {
        map.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    response
}

fn add_date_and_server(map: &mut hyper::HeaderMap) {
    let date = httpdate::fmt_http_date(SystemTime::now());
    // An IMF-fixdate is ASCII; the fallback is unreachable.
    let date = HeaderValue::from_str(&date).unwrap_or(HeaderValue::from_static(""));
    map.insert(DATE, date);
    map.insert(SERVER, HeaderValue::from_static("Kestrel"));
}

/// A response body: sized (`Content-Length`), or chunked with the terminating chunk written in a
/// flush of its own, as Kestrel writes it.
#[derive(Debug)]
pub struct WireBody {
    /// What is left to send, one chunk each.
    chunks: VecDeque<Bytes>,
    /// `Some(total)` when sized; `None` when chunked.
    len: Option<u64>,
    /// Chunked only: whether the body has yielded once after its last chunk, so that hyper
    /// flushed the chunks before the end.
    flushed: bool,
}

impl WireBody {
    fn sized(chunks: Vec<Bytes>) -> WireBody {
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        WireBody { chunks: chunks.into(), len: Some(len), flushed: true }
    }

    fn chunked(chunks: Vec<Bytes>) -> WireBody {
        WireBody { chunks: chunks.into(), len: None, flushed: false }
    }
}

impl Body for WireBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if !self.flushed {
            // hyper flushes what it has written whenever the body is not ready; waking at once
            // makes the next poll end the body, so `0\r\n\r\n` follows in a second write.
            self.flushed = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.flushed
    }

    fn size_hint(&self) -> SizeHint {
        match self.len {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the framing names round-trip and anything else is refused. Method: literals.
    #[test]
    fn names_round_trip() {
        for framing in [Framing::Kestrel, Framing::ContentLength] {
            assert_eq!(framing.name().parse(), Ok(framing));
        }
        assert!("chunked".parse::<Framing>().is_err());
    }
}
