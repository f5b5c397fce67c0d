//! Peer: the private link between the two instances (a loopback port, never 9999). Each
//! instance answers for its own cores there; the public summary adds the peer as one shard.
//!
//! Calls are rare (a summary every few seconds, one purge per test), so each opens a fresh
//! connection: nothing to go stale when the peer restarts.

use std::{fmt, io, net::SocketAddr, time::Duration};

use serde::Deserialize;

use crate::{
    health::{self, Report},
    http,
    ledger::{ShardSummary, TimeRange, Totals},
    money, summary,
};

/// Path of the instance-local summary on the peer link.
pub const SUMMARY_PATH: &[u8] = b"/internal/summary";
/// Path of the instance-local purge on the peer link.
pub const PURGE_PATH: &[u8] = b"/internal/purge";
/// Path where the peer's health poller reports.
pub const HEALTH_PATH: &[u8] = b"/internal/health";

/// A failed peer call, with the peer's address for the error message.
#[derive(Debug)]
pub struct PeerError {
    addr: SocketAddr,
    what: &'static str,
    kind: Option<io::ErrorKind>,
}

impl PeerError {
    fn call(addr: SocketAddr, e: http::CallError) -> PeerError {
        PeerError { addr, what: e.what, kind: e.kind }
    }
}

/// One request to the peer on a fresh connection (calls are rare: nothing to go stale).
async fn call(
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), PeerError> {
    http::call_once(addr, request, timeout).await.map_err(|e| PeerError::call(addr, e))
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} {}", self.addr, self.what)?;
        if let Some(kind) = self.kind {
            write!(f, ": {kind}")?;
        }
        Ok(())
    }
}

/// Appends this instance's totals in the peer link's format: `[count, cents]` per processor.
pub fn write_instance_json(out: &mut Vec<u8>, summary: &ShardSummary) {
    summary::write_by_processor(out, summary, |out, totals| {
        out.push(b'[');
        money::write_u64(out, totals.count);
        out.push(b',');
        money::write_u64(out, totals.cents);
        out.push(b']');
    });
}

#[derive(Deserialize)]
struct InstanceJson {
    default: [u64; 2],
    fallback: [u64; 2],
}

fn parse_instance_json(body: &[u8]) -> Option<ShardSummary> {
    let json: InstanceJson = sonic_rs::from_slice(body).ok()?;
    let totals = |[count, cents]: [u64; 2]| Totals { count, cents };
    Some(ShardSummary { by_processor: [totals(json.default), totals(json.fallback)] })
}

/// The peer instance's totals over `range`.
pub async fn fetch_summary(
    addr: SocketAddr,
    range: TimeRange,
    timeout: Duration,
) -> Result<ShardSummary, PeerError> {
    let mut request = Vec::with_capacity(160);
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(SUMMARY_PATH);
    request.push(b'?');
    summary::write_range_query(&mut request, range);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n");
    let (status, body) = call(addr, request, timeout).await?;
    if status != 200 {
        return Err(PeerError { addr, what: "answered an error to the summary", kind: None });
    }
    parse_instance_json(&body).ok_or(PeerError {
        addr,
        what: "sent an unreadable summary",
        kind: None,
    })
}

/// Tells the peer what a health poll saw.
pub async fn send_health(
    addr: SocketAddr,
    report: Report,
    timeout: Duration,
) -> Result<(), PeerError> {
    let mut request = Vec::with_capacity(128);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(HEALTH_PATH);
    request.push(b'?');
    health::write_report_query(&mut request, report);
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    match call(addr, request, timeout).await? {
        (200, _) => Ok(()),
        _ => Err(PeerError { addr, what: "refused a health report", kind: None }),
    }
}

/// Asks the peer instance to empty its shards.
pub async fn purge(addr: SocketAddr, timeout: Duration) -> Result<(), PeerError> {
    let mut request = Vec::with_capacity(96);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(PURGE_PATH);
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    match call(addr, request, timeout).await? {
        (200, _) => Ok(()),
        _ => Err(PeerError { addr, what: "answered an error to the purge", kind: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the peer link's totals survive the round trip exactly, large values included.
    #[test]
    fn instance_json_round_trip() {
        let summary = ShardSummary {
            by_processor: [Totals { count: 3, cents: u64::MAX / 2 }, Totals { count: 0, cents: 0 }],
        };
        let mut out = Vec::new();
        write_instance_json(&mut out, &summary);
        assert_eq!(parse_instance_json(&out), Some(summary));
        assert_eq!(parse_instance_json(b"{\"default\":[1]}"), None);
    }
}
