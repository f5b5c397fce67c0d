//! One keep-alive HTTP/1.1 connection with a whole-request timeout, the way a k6 virtual user
//! holds its connection: reused while it works, replaced after any error or timeout.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request,
    client::conn::http1::{self, SendRequest},
    header::{CONTENT_TYPE, HOST, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request did not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be opened (refused, reset during the handshake).
    Connect,
    /// No complete response within the timeout (connecting included).
    Timeout,
    /// The connection broke while the request was in flight.
    Io,
}

/// A complete response and how long it took.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// From sending the request (on an open connection) to the last byte of the body, in
    /// microseconds: k6's `http_req_duration` (sending + waiting + receiving).
    pub latency_us: u64,
}

impl Reply {
    /// Whether k6 would tag this response `expected_response:true` (200..=399).
    pub fn expected(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// A lazily (re)opened connection to one address.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr`, opened on first use.
    pub fn new(addr: SocketAddr) -> Conn {
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or(HeaderValue::from_static("localhost"));
        Conn { addr, host, sender: None }
    }

    /// Sends one request and reads the whole response within `timeout`.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, &str)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        let result =
            tokio::time::timeout_at(deadline, self.exchange(method, path_and_query, headers, body))
                .await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => {
                self.sender = None;
                Err(failure)
            }
            Err(_) => {
                // The connection may still carry the late response: never reuse it.
                self.sender = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, &str)],
        body: Option<Bytes>,
    ) -> Result<Reply, Failure> {
        let mut sender = match self.sender.take() {
            Some(mut sender) if !sender.is_closed() => match sender.ready().await {
                Ok(()) => sender,
                Err(_) => self.connect().await?,
            },
            _ => self.connect().await?,
        };
        let has_body = body.is_some();
        let mut request = Request::builder().method(method).uri(path_and_query);
        request = request.header(HOST, self.host.clone());
        if has_body {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.unwrap_or_default())).map_err(|_| Failure::Io)?;
        let started = Instant::now();
        let response = sender.send_request(request).await.map_err(|_| Failure::Io)?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let headers = parts.headers;
        let body = body.collect().await.map_err(|_| Failure::Io)?.to_bytes();
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.sender = Some(sender);
        Ok(Reply { status, headers, body, latency_us })
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let stream = TcpStream::connect(self.addr).await.map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|_| Failure::Connect)?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the peer closes; errors are seen by the sender.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Parses `http://127.0.0.1:9999` (path ignored) into a socket address. Only loopback targets
/// are accepted: the lab never sends traffic off the machine.
pub fn loopback_target(url: &str) -> Result<SocketAddr, String> {
    let authority = authority(url).replace("localhost", "127.0.0.1");
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("target {url:?} must look like http://127.0.0.1:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "target {url:?} is not a loopback address; the lab only tests locally"
        ));
    }
    Ok(addr)
}

/// The `host:port` of `http://host:port/...` (the scheme optional, the path ignored).
pub fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: targets resolve to loopback addresses and anything else is refused. Method:
    /// literal URLs.
    #[test]
    fn targets_must_be_loopback() {
        assert_eq!(
            loopback_target("http://localhost:9999"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9999)))
        );
        assert_eq!(loopback_target("127.0.0.1:80/x"), Ok(SocketAddr::from(([127, 0, 0, 1], 80))));
        assert!(loopback_target("http://10.0.0.1:9999").is_err());
        assert!(loopback_target("http://example.com").is_err());
    }
}
