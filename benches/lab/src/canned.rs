//! A server that answers `202 Accepted` with an empty body to anything, as fast as it can: the
//! physical floor (loopback, HTTP/1 parsing, the load generator itself) for latency comparisons.
//!
//! Forwarding ([`start_forwarding`]), it also sends each `POST /payments` body, with a
//! `requestedAt`, to a processor after answering, and forgets the outcome: the floor of an
//! intermediary that does the least a correct one must, so that a comparison with payrelay puts
//! the same load on the processors (and on the machine they share) and the difference is
//! payrelay's own.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpSocket, sync::watch};

use crate::{client::Conn, time};

/// Listen backlog: a ramp opens hundreds of connections at once.
const LISTEN_BACKLOG: u32 = 4096;
/// Worker threads: enough to never be the slow side on a 2-CPU machine.
const WORKER_THREADS: usize = 2;
/// Idle keep-alive connections kept to the processor: more than the contest's payments in
/// flight at a processor answering at once (a few per millisecond); more are closed after use.
const FORWARD_IDLE_CONNECTIONS_MAX: usize = 256;
/// A forward that gets no answer within this is dropped (its connection with it): the
/// processors' longest delay, 5 s, and a margin.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);

/// The running server; dropping it stops it.
#[derive(Debug)]
pub struct Canned {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Canned {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the canned server on `ip`:`port` (0 picks one); returns once it listens.
pub fn start(ip: std::net::Ipv4Addr, port: u16) -> io::Result<Canned> {
    start_forwarding(ip, port, None)
}

/// Starts the canned server, sending each payment on to `forward_to` when given (see the module
/// docs); returns once it listens.
pub fn start_forwarding(
    ip: std::net::Ipv4Addr,
    port: u16,
    forward_to: Option<SocketAddr>,
) -> io::Result<Canned> {
    let forwarder = forward_to.map(|addr| Arc::new(Forwarder::new(addr)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("rinha-lab-canned")
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((ip, port)))?;
        socket.listen(LISTEN_BACKLOG)?
    };
    let addr = listener.local_addr()?;
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let thread = thread::Builder::new().name("rinha-lab-canned".into()).spawn(move || {
        runtime.block_on(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = shutdown_rx.changed() => return,
                };
                let _ = stream.set_nodelay(true);
                let forwarder = forwarder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let forwarder = forwarder.clone();
                        async move {
                            if let Some(forwarder) = forwarder {
                                forwarder.take(request).await;
                            }
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = StatusCode::ACCEPTED;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        runtime.shutdown_timeout(Duration::from_millis(200));
    })?;
    Ok(Canned { addr, shutdown, thread: Some(thread) })
}

/// Serves canned on `ip`:`port` (forwarding to `forward_to` when given) until the process is
/// signalled, after printing the line the capacity sweep reads its address from (`canned 202
/// server listening on http://ADDR ...`): `rinha-lab canned`, and the sweep's canned process.
pub fn serve(
    ip: std::net::Ipv4Addr,
    port: u16,
    forward_to: Option<SocketAddr>,
) -> Result<(), String> {
    let server = start_forwarding(ip, port, forward_to)
        .map_err(|e| format!("starting canned on {ip}:{port}: {e}"))?;
    let forwarding = forward_to.map(|addr| format!(", forwarding payments to {addr}"));
    println!(
        "canned 202 server listening on http://{}{} (Ctrl-C to stop)",
        server.addr(),
        forwarding.unwrap_or_default()
    );
    loop {
        // Nothing to do here: the server's own threads answer; a signal ends the process.
        std::thread::park();
    }
}

/// Resolves a forward target, `http://HOST:PORT`: a loopback address, or a private one (a
/// container on a Docker network, such as `payment-processor-default:8080`). The lab sends no
/// traffic beyond the machine and the containers it runs.
pub fn forward_target(url: &str) -> Result<SocketAddr, String> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(crate::client::authority(url))
        .map_err(|e| format!("forward target {url:?}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("forward target {url:?} has no IPv4 address"))?;
    let local = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
        std::net::IpAddr::V6(_) => false,
    };
    if !local {
        return Err(format!("forward target {url:?} ({addr}) is neither loopback nor private"));
    }
    Ok(addr)
}

/// Sends payments on to one processor over a pool of keep-alive connections.
#[derive(Debug)]
struct Forwarder {
    addr: SocketAddr,
    idle: Mutex<Vec<Conn>>,
}

impl Forwarder {
    fn new(addr: SocketAddr) -> Forwarder {
        Forwarder { addr, idle: Mutex::new(Vec::new()) }
    }

    /// Reads a `POST /payments` body and sends it on in a task of its own; anything else is
    /// left alone.
    async fn take(self: Arc<Self>, request: Request<Incoming>) {
        if request.method() != Method::POST || request.uri().path() != "/payments" {
            return;
        }
        let Ok(body) = request.into_body().collect().await else { return };
        let Some(payment) = with_requested_at(&body.to_bytes(), time::now_ms()) else { return };
        tokio::spawn(async move {
            let mut conn = self.idle_conn();
            let sent =
                conn.request(Method::POST, "/payments", &[], Some(payment), FORWARD_TIMEOUT).await;
            if sent.is_ok() {
                self.give_back(conn);
            }
        });
    }

    fn idle_conn(&self) -> Conn {
        // A poisoned pool only means another forward panicked: its connections are still fine.
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.pop().unwrap_or_else(|| Conn::new(self.addr))
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < FORWARD_IDLE_CONNECTIONS_MAX {
            idle.push(conn);
        }
    }
}

/// The payment `{...}` with `"requestedAt"` added as its last member, or `None` when the body
/// is not a JSON object.
fn with_requested_at(body: &[u8], now_ms: i64) -> Option<Bytes> {
    let close = body.iter().rposition(|&b| b == b'}')?;
    let mut payment = Vec::with_capacity(body.len() + 40);
    payment.extend_from_slice(&body[..close]);
    payment.extend_from_slice(b",\"requestedAt\":\"");
    payment.extend_from_slice(time::format_iso_ms(now_ms).as_bytes());
    payment.extend_from_slice(b"\"}");
    Some(Bytes::from(payment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_gets_its_requested_at_as_the_last_member() {
        let body = br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9}"#;
        let payment = with_requested_at(body, 0).expect("an object");
        assert_eq!(
            &payment[..],
            &br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9,"requestedAt":"1970-01-01T00:00:00.000Z"}"#[..]
        );
        assert_eq!(with_requested_at(b"not json", 0), None);
    }

    #[test]
    fn a_forward_target_is_loopback_or_private() {
        let loopback = forward_target("http://127.0.0.1:8001").expect("loopback");
        assert_eq!(loopback, SocketAddr::from(([127, 0, 0, 1], 8001)));
        assert!(forward_target("http://172.18.0.2:8080").is_ok());
        assert!(forward_target("http://8.8.8.8:80").is_err());
        assert!(forward_target("http://127.0.0.1").is_err(), "a port is needed");
    }
}
