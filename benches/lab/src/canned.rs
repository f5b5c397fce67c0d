//! A server that answers `202 Accepted` with an empty body to anything, as fast as it can: the
//! physical floor (loopback, HTTP/1 parsing, the load generator itself) for latency comparisons.

use std::{convert::Infallible, io, net::SocketAddr, thread, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpSocket, sync::watch};

/// Listen backlog: a ramp opens hundreds of connections at once.
const LISTEN_BACKLOG: u32 = 4096;
/// Worker threads: enough to never be the slow side on a 2-CPU machine.
const WORKER_THREADS: usize = 2;

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
                tokio::spawn(async move {
                    let service = service_fn(|_request| async {
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::ACCEPTED;
                        Ok::<_, Infallible>(response)
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

/// Serves canned on `ip`:`port` until the process is signalled, after printing the line the
/// capacity sweep reads its address from (`canned 202 server listening on http://ADDR ...`):
/// `rinha-lab canned`, and the sweep's canned process.
pub fn serve(ip: std::net::Ipv4Addr, port: u16) -> Result<(), String> {
    let server = start(ip, port).map_err(|e| format!("starting canned on {ip}:{port}: {e}"))?;
    println!("canned 202 server listening on http://{} (Ctrl-C to stop)", server.addr());
    loop {
        // Nothing to do here: the server's own threads answer; a signal ends the process.
        std::thread::park();
    }
}
