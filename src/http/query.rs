//! Query strings and JSON bodies, read safely: percent-decoding into a caller's scratch, numbers,
//! and JSON only after a UTF-8 check.

/// A JSON body deserialized, `None` if it is not valid UTF-8 and JSON of that shape. Every body
/// we parse (payments, processors' health, the peer's answers) comes through here. JSON text is
/// UTF-8 (RFC 8259 §8.1), and serde_json's `from_slice` checks that only in the strings it
/// keeps, not in those it skips, so the check comes first, one pass over the bytes, and the
/// parse borrows from the checked `&str`.
pub fn json_body<'b, T: serde::Deserialize<'b>>(body: &'b [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
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
