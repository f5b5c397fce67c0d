//! Serving the processors: one accept loop per listener, one hyper connection per socket, and
//! the route from a request to its endpoint.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::{
    Method, Request, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::watch,
};

use super::{
    admin::admin,
    payments::{get_payment, health, post_payment},
    processor::Processor,
};
use crate::framing::Answer;

/// Listen backlog: the backend may open hundreds of connections at once; the default 128 would
/// make some of them wait a SYN retransmit (1 s), which the real processor would not cause.
const LISTEN_BACKLOG: u32 = 4096;

/// Pause after a failed accept (typically out of descriptors) so the loop does not spin while
/// connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(5);

pub(super) fn listen(ip: std::net::Ipv4Addr, port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, port)))?;
    socket.listen(LISTEN_BACKLOG)
}

pub(super) async fn serve(
    listener: TcpListener,
    processor: Arc<Processor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or a reset before accept: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let processor = processor.clone();
        let mut connection_shutdown = shutdown.clone();
        let mut kicked = processor.kick.subscribe();
        let open = OpenConnection::new(&processor);
        tokio::spawn(async move {
            let _open = open;
            let title_case = processor.framing.title_case_headers();
            let service = service_fn(move |request| handle(processor.clone(), request));
            let connection = http1::Builder::new()
                .title_case_headers(title_case)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = connection_shutdown.changed() => {}
                _ = kicked.changed() => {}
            }
        });
    }
}

/// A connection being served, counted in its processor's `open_connections` until dropped.
struct OpenConnection(Arc<Processor>);

impl OpenConnection {
    fn new(processor: &Arc<Processor>) -> OpenConnection {
        processor.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(processor))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    processor: Arc<Processor>,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (&Method::POST, "/payments") => post_payment(&processor, request).await,
        (&Method::GET, "/payments/service-health") => health(&processor).await,
        (&Method::GET, p) if p.starts_with("/payments/") => {
            get_payment(&processor, &p["/payments/".len()..]).await
        }
        (_, p) if p.starts_with("/admin/") => admin(&processor, request).await,
        _ => processor.framing.empty(StatusCode::NOT_FOUND),
    };
    Ok(response)
}
