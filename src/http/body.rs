//! Chunked bodies (RFC 9112 §7.1), as the real processors' Kestrel sends every JSON answer:
//! framed while the bytes arrive, then decoded in place once whole.

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
pub(super) fn chunked_len(buf: &[u8]) -> Result<Option<usize>, BadFraming> {
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
pub(super) fn dechunk_in_place(span: &mut [u8]) -> usize {
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
