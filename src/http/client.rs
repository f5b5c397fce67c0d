//! Client side: every answer our client gets (processors, peer) read by one reader that frames
//! it (`Content-Length`, chunked, or the connection's end) and decodes its body, and one whole
//! request on a fresh connection for rare calls.

use super::{
    body::{BadFraming, chunked_len, dechunk_in_place},
    buffer::read_more,
    head::{HEADERS_MAX, HeaderFacts},
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
