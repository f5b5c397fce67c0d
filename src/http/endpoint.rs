//! Endpoint: an `http://host:port` URL, parsed and resolved once.

use std::{
    io,
    net::{SocketAddr, ToSocketAddrs},
};

/// Where an upstream listens (a processor, the peer), resolved once at start: never a DNS
/// lookup on the hot path.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `Host` header value (`host:port` as configured).
    pub authority: String,
    /// Resolved socket address.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Splits `http://host:port[/]` into `(host, port)`; `None` for any other form.
    pub fn parse_url(url: &str) -> Option<(&str, u16)> {
        let rest = url.strip_prefix("http://")?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority.rsplit_once(':')?;
        if host.is_empty() || authority.contains('/') {
            return None;
        }
        Some((host, port.parse().ok()?))
    }

    /// Parses and resolves `url`. Blocking (DNS): call at start only.
    pub fn resolve(url: &str) -> io::Result<Endpoint> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad URL {url:?}"));
        let (host, port) = Endpoint::parse_url(url).ok_or_else(invalid)?;
        let addr = (host, port).to_socket_addrs()?.next().ok_or_else(invalid)?;
        Ok(Endpoint { authority: format!("{host}:{port}"), addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: only `http://host:port` forms are accepted.
    #[test]
    fn parses_urls() {
        assert_eq!(
            Endpoint::parse_url("http://payment-processor-default:8080"),
            Some(("payment-processor-default", 8080))
        );
        assert_eq!(Endpoint::parse_url("http://127.0.0.1:8001/"), Some(("127.0.0.1", 8001)));
        for bad in ["https://a:1", "http://a", "http://:1", "http://a:1/x", "http://a:99999", "a:1"]
        {
            assert_eq!(Endpoint::parse_url(bad), None, "{bad}");
        }
    }
}
