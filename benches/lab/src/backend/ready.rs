//! Waiting for a backend to answer, as the official harness does or, for a pair the lab
//! started itself, in finer steps.

use std::{net::SocketAddr, time::Duration};

use hyper::Method;

use crate::client::Conn;

/// Readiness: each probe's timeout, as the official harness.
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Readiness: the official harness's interval between probes.
pub const READY_INTERVAL_OFFICIAL: Duration = Duration::from_secs(5);
/// Readiness: the official harness's number of probes.
pub const READY_TRIES_OFFICIAL: u32 = 15;
/// Readiness when the lab started the backend itself: same total budget, finer steps, so a
/// run does not wait 5 s for a server that was up after 20 ms.
pub const READY_INTERVAL_LOCAL: Duration = Duration::from_millis(50);
/// See [`READY_INTERVAL_LOCAL`]: 15 × 5 s / 50 ms.
pub const READY_TRIES_LOCAL: u32 = 1500;

/// Polls `GET /payments-summary` until 2xx: each probe times out after 3 s, `tries` probes
/// `interval` apart. `exited` reports a dead backend so we stop waiting for it.
pub async fn wait_ready(
    addr: SocketAddr,
    interval: Duration,
    tries: u32,
    exited: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let mut last = String::from("no probe made");
    for _ in 0..tries {
        if let Some(reason) = exited() {
            return Err(reason);
        }
        let mut conn = Conn::new(addr);
        match conn.request(Method::GET, "/payments-summary", &[], None, READY_PROBE_TIMEOUT).await {
            Ok(reply) if (200..300).contains(&reply.status) => return Ok(()),
            Ok(reply) => last = format!("status {}", reply.status),
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(interval).await;
    }
    Err(format!("backend at {addr} never answered 2xx to GET /payments-summary (last: {last})"))
}
