//! The peer link's client: one call per fresh connection (calls are rare: nothing to go
//! stale), a second try for idempotent calls, and the three calls an instance makes.

use std::{
    fmt, io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{
    continuity::{Boot, PeerAnswer},
    wire,
};
use crate::{http, ledger::TimeRange, upstream::health::Report};

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

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} {}", self.addr, self.what)?;
        if let Some(kind) = self.kind {
            write!(f, ": {kind}")?;
        }
        Ok(())
    }
}

/// How long a summary or a purge may spend on the peer, retry included. The contest's client
/// gives up on an answer after 1500 ms (and counts a summary it did not get as zeros: an
/// inconsistency); this leaves the rest for our own cores and the answer.
pub const PEER_CALLS_BUDGET: Duration = Duration::from_millis(1_200);

/// Pause before the retry: a peer that refused or reset a connection is restarting, or its
/// kernel is still tearing down a dead socket (a few milliseconds; see the lab's README).
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Least time worth a retry.
const RETRY_MIN: Duration = Duration::from_millis(50);

/// One request to the peer on a fresh connection (calls are rare: nothing to go stale).
async fn call_once(
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), PeerError> {
    http::call_once(addr, request, timeout).await.map_err(|e| PeerError::call(addr, e))
}

/// [`call_once`], and once more if that failed and [`PEER_CALLS_BUDGET`] leaves time: a
/// summary the contest's client does not get costs as much as a wrong one. For idempotent calls
/// only (summary, purge). Each try waits at most `timeout` (`PEER_TIMEOUT_MS`).
async fn call_twice(
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), PeerError> {
    let give_up_at = Instant::now() + PEER_CALLS_BUDGET;
    let first = call_once(addr, request.clone(), timeout.min(PEER_CALLS_BUDGET)).await;
    let Err(first_error) = first else { return first };
    monoio::time::sleep(RETRY_PAUSE).await;
    let left = give_up_at.saturating_duration_since(Instant::now());
    if left < RETRY_MIN {
        return Err(first_error);
    }
    call_once(addr, request, timeout.min(left)).await
}

/// The peer instance's totals over `range`, and its boot. `boot` is ours.
pub async fn fetch_summary(
    addr: SocketAddr,
    range: TimeRange,
    boot: Boot,
    timeout: Duration,
) -> Result<PeerAnswer, PeerError> {
    let request = wire::request(b"GET", wire::SUMMARY_PATH, |q| {
        wire::write_range_query(q, range);
        q.push(b'&');
        wire::write_boot_query(q, boot);
    });
    let (status, body) = call_twice(addr, request, timeout).await?;
    if status != 200 {
        return Err(PeerError { addr, what: "answered an error to the summary", kind: None });
    }
    wire::parse_answer_json(&body).ok_or(PeerError {
        addr,
        what: "sent an unreadable summary",
        kind: None,
    })
}

/// Tells the peer what a health poll saw. `boot` is ours: the peer learns it here too, which is
/// how both agree on who polls what (`health::polled_here`).
pub async fn send_health(
    addr: SocketAddr,
    report: Report,
    boot: Boot,
    timeout: Duration,
) -> Result<(), PeerError> {
    let request = wire::request(b"POST", wire::HEALTH_PATH, |q| {
        wire::write_report_query(q, report);
        q.push(b'&');
        wire::write_boot_query(q, boot);
    });
    match call_once(addr, request, timeout).await? {
        (200, _) => Ok(()),
        _ => Err(PeerError { addr, what: "refused a health report", kind: None }),
    }
}

/// Asks the peer instance to empty its shards; returns its boot. `boot` is ours.
pub async fn purge(addr: SocketAddr, boot: Boot, timeout: Duration) -> Result<Boot, PeerError> {
    let request = wire::request(b"POST", wire::PURGE_PATH, |q| wire::write_boot_query(q, boot));
    match call_twice(addr, request, timeout).await? {
        (200, body) => wire::parse_answer_json(&body).map(|answer| answer.boot).ok_or(PeerError {
            addr,
            what: "sent an unreadable purge answer",
            kind: None,
        }),
        _ => Err(PeerError { addr, what: "answered an error to the purge", kind: None }),
    }
}
