//! Peer: the private link between the two instances (a loopback port, never 9999). Each
//! instance answers for its own cores there; the public summary adds the peer as one shard.
//!
//! Calls are rare (a summary every few seconds, one purge per test), so each opens a fresh
//! connection: nothing to go stale when the peer restarts. A summary or purge call that fails
//! is made once more within [`PEER_CALLS_BUDGET`]: the contest's client reads a summary that
//! does not come as zeros, an inconsistency.
//!
//! # Continuity: a restarted instance has forgotten its records
//!
//! The ledger lives in memory, so an instance that restarts comes back empty, while the
//! processors still hold what it had recorded. Summing it as if nothing happened would be a
//! silently partial total. So every peer call carries the caller's boot (a random id and its
//! start time) and every answer the responder's, and each instance remembers the peer's boot
//! since the last purge ([`Continuity`]). A boot that changed means a restart: the records of
//! that instance with a `requestedAt` before its start plus `PROCESSOR_TIMEOUT_MS` (the
//! furthest ahead a `requestedAt` is ever planned) may be gone, and a summary whose range
//! reaches back there answers 503 naming the instance. Ranges that start later (the contest's
//! sliding check window, 30 s or so after the restart) are exact again, and the next purge
//! clears the record. Both instances restarting together cannot be told from a new deployment.

use std::{
    fmt, io,
    net::SocketAddr,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::{Duration, Instant},
};

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

/// One life of an instance: a random id and when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Never 0 (0 means "no boot seen").
    pub id: u64,
    /// Start, ms since the epoch.
    pub started_ms: i64,
}

impl Boot {
    /// This process's boot.
    pub fn new() -> Boot {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let started_ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
        // Distinct across restarts: the clock's nanoseconds and the pid, mixed.
        let nanos = since_epoch.as_nanos() as u64;
        let id =
            (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Boot { id: id.max(1), started_ms }
    }

    /// Query parameters naming this boot on a peer call.
    fn write_query(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"boot=");
        money::write_u64(out, self.id);
        out.extend_from_slice(b"&started_ms=");
        out.extend_from_slice(self.started_ms.to_string().as_bytes());
    }

    /// Inverse of [`Boot::write_query`].
    pub fn parse_query(query: &[u8]) -> Option<Boot> {
        let id = http::query_number(query, b"boot").filter(|&id| id != 0)?;
        let started_ms = http::query_number(query, b"started_ms")?;
        Some(Boot { id, started_ms })
    }
}

impl Default for Boot {
    fn default() -> Boot {
        Boot::new()
    }
}

/// Whose records may be missing, and before when: why a summary cannot be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forgotten {
    /// This instance (`None`) or the peer at this address.
    pub who: Option<SocketAddr>,
    /// Records with a `requestedAt` before this may be missing, ms since the epoch.
    pub before_ms: i64,
}

impl fmt::Display for Forgotten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.who {
            Some(addr) => write!(f, "peer {addr}")?,
            None => write!(f, "this instance")?,
        }
        let before = crate::timestamp::format_iso(self.before_ms);
        write!(
            f,
            " restarted since the last purge and lost its records before {}; ask for a later \
             range or purge",
            String::from_utf8_lossy(&before)
        )
    }
}

/// What an instance knows of the deployment's restarts since the last purge. Shared by the
/// instance's cores (any of them may serve a summary); touched only by peer calls and purges,
/// never by the payment path, so plain atomics suffice.
#[derive(Debug)]
pub struct Continuity {
    /// This process.
    pub boot: Boot,
    /// The peer's boot id as last seen since this process started or the last purge; 0: none.
    peer_boot_id: AtomicU64,
    /// The peer's records before this may be missing (`i64::MIN`: none).
    peer_forgot_before_ms: AtomicI64,
    /// This instance's records before this may be missing (`i64::MIN`: none).
    own_forgot_before_ms: AtomicI64,
    /// How far ahead of its start a dead life may have planned a `requestedAt`.
    ahead_ms: i64,
}

impl Continuity {
    /// Nothing seen yet. `ahead_ms` is `PROCESSOR_TIMEOUT_MS`.
    pub fn new(boot: Boot, ahead_ms: u64) -> Continuity {
        Continuity {
            boot,
            peer_boot_id: AtomicU64::new(0),
            peer_forgot_before_ms: AtomicI64::new(i64::MIN),
            own_forgot_before_ms: AtomicI64::new(i64::MIN),
            ahead_ms: i64::try_from(ahead_ms).unwrap_or(i64::MAX),
        }
    }

    /// The peer showed `boot` (on a call it made, or in an answer to ours). Returns whether it
    /// restarted since we last saw it, and if so, remembers what it forgot.
    pub fn saw_peer(&self, boot: Boot) -> bool {
        let before = self.peer_boot_id.swap(boot.id, Ordering::Relaxed);
        let restarted = before != 0 && before != boot.id;
        if restarted {
            let forgot = boot.started_ms.saturating_add(self.ahead_ms);
            self.peer_forgot_before_ms.fetch_max(forgot, Ordering::Relaxed);
        }
        restarted
    }

    /// The peer's boot id, once it has been seen (since this process started or the last
    /// purge).
    pub fn peer_boot_id(&self) -> Option<u64> {
        Some(self.peer_boot_id.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// Our answer to a peer call, with `totals`. It tells the peer what it may have forgotten
    /// every time: an answer can be lost, so it is said again rather than once.
    pub fn answer(&self, totals: ShardSummary) -> PeerAnswer {
        PeerAnswer {
            boot: self.boot,
            you_forgot_before_ms: self.peer_forgot_before_ms.load(Ordering::Relaxed),
            totals,
        }
    }

    /// The peer told us that our records before `before_ms` may be gone (we restarted since
    /// it last saw us).
    pub fn told_we_forgot(&self, before_ms: i64) {
        self.own_forgot_before_ms.fetch_max(before_ms, Ordering::Relaxed);
    }

    /// The deployment was purged; `peer` is the peer's boot if it took part.
    pub fn purged(&self, peer: Option<Boot>) {
        self.peer_boot_id.store(peer.map_or(0, |b| b.id), Ordering::Relaxed);
        self.peer_forgot_before_ms.store(i64::MIN, Ordering::Relaxed);
        self.own_forgot_before_ms.store(i64::MIN, Ordering::Relaxed);
    }

    /// Whether a summary from `from_ms` on, with the peer at `peer_addr`, can be complete.
    pub fn check(&self, from_ms: i64, peer_addr: SocketAddr) -> Result<(), Forgotten> {
        let own = self.own_forgot_before_ms.load(Ordering::Relaxed);
        if from_ms < own {
            return Err(Forgotten { who: None, before_ms: own });
        }
        let peer = self.peer_forgot_before_ms.load(Ordering::Relaxed);
        if from_ms < peer {
            return Err(Forgotten { who: Some(peer_addr), before_ms: peer });
        }
        Ok(())
    }
}

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

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} {}", self.addr, self.what)?;
        if let Some(kind) = self.kind {
            write!(f, ": {kind}")?;
        }
        Ok(())
    }
}

/// What an instance answers on the peer link: its boot, what it believes the caller forgot in
/// a restart, and (for a summary) its totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The responder's boot.
    pub boot: Boot,
    /// The caller's records before this may be gone (`i64::MIN`: none).
    pub you_forgot_before_ms: i64,
    /// The responder's totals (zero for a purge).
    pub totals: ShardSummary,
}

/// Appends a peer answer: `{"boot":N,"started_ms":N,"you_forgot_before_ms":N,"totals":
/// {"default":[count,cents],"fallback":[count,cents]}}`.
pub fn write_answer_json(out: &mut Vec<u8>, answer: &PeerAnswer) {
    out.extend_from_slice(b"{\"boot\":");
    money::write_u64(out, answer.boot.id);
    out.extend_from_slice(b",\"started_ms\":");
    out.extend_from_slice(answer.boot.started_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"you_forgot_before_ms\":");
    out.extend_from_slice(answer.you_forgot_before_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"totals\":");
    summary::write_by_processor(out, &answer.totals, |out, totals| {
        out.push(b'[');
        money::write_u64(out, totals.count);
        out.push(b',');
        money::write_u64(out, totals.cents);
        out.push(b']');
    });
    out.push(b'}');
}

#[derive(Deserialize)]
struct TotalsJson {
    default: [u64; 2],
    fallback: [u64; 2],
}

#[derive(Deserialize)]
struct AnswerJson {
    boot: u64,
    started_ms: i64,
    you_forgot_before_ms: i64,
    totals: TotalsJson,
}

fn parse_answer_json(body: &[u8]) -> Option<PeerAnswer> {
    let json: AnswerJson = http::json_body(body)?;
    let totals = |[count, cents]: [u64; 2]| Totals { count, cents };
    Some(PeerAnswer {
        boot: Boot { id: json.boot, started_ms: json.started_ms },
        you_forgot_before_ms: json.you_forgot_before_ms,
        totals: ShardSummary {
            by_processor: [totals(json.totals.default), totals(json.totals.fallback)],
        },
    })
}

/// The peer instance's totals over `range`, and its boot. `boot` is ours.
pub async fn fetch_summary(
    addr: SocketAddr,
    range: TimeRange,
    boot: Boot,
    timeout: Duration,
) -> Result<PeerAnswer, PeerError> {
    let mut request = Vec::with_capacity(200);
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(SUMMARY_PATH);
    request.push(b'?');
    summary::write_range_query(&mut request, range);
    request.push(b'&');
    boot.write_query(&mut request);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n");
    let (status, body) = call_twice(addr, request, timeout).await?;
    if status != 200 {
        return Err(PeerError { addr, what: "answered an error to the summary", kind: None });
    }
    parse_answer_json(&body).ok_or(PeerError {
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
    let mut request = Vec::with_capacity(160);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(HEALTH_PATH);
    request.push(b'?');
    health::write_report_query(&mut request, report);
    request.push(b'&');
    boot.write_query(&mut request);
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    match call_once(addr, request, timeout).await? {
        (200, _) => Ok(()),
        _ => Err(PeerError { addr, what: "refused a health report", kind: None }),
    }
}

/// Asks the peer instance to empty its shards; returns its boot. `boot` is ours.
pub async fn purge(addr: SocketAddr, boot: Boot, timeout: Duration) -> Result<Boot, PeerError> {
    let mut request = Vec::with_capacity(128);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(PURGE_PATH);
    request.push(b'?');
    boot.write_query(&mut request);
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: peer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    match call_twice(addr, request, timeout).await? {
        (200, body) => parse_answer_json(&body).map(|answer| answer.boot).ok_or(PeerError {
            addr,
            what: "sent an unreadable purge answer",
            kind: None,
        }),
        _ => Err(PeerError { addr, what: "answered an error to the purge", kind: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the peer link's answers survive the round trip exactly, large values included,
    /// and so does a boot in a query.
    #[test]
    fn answer_json_round_trip() {
        let totals = ShardSummary {
            by_processor: [Totals { count: 3, cents: u64::MAX / 2 }, Totals { count: 0, cents: 0 }],
        };
        for you_forgot_before_ms in [i64::MIN, 1_752_582_896_789] {
            let boot = Boot { id: u64::MAX, started_ms: 1_752_582_896_789 };
            let answer = PeerAnswer { boot, you_forgot_before_ms, totals };
            let mut out = Vec::new();
            write_answer_json(&mut out, &answer);
            assert_eq!(parse_answer_json(&out), Some(answer));
            let mut query = Vec::new();
            boot.write_query(&mut query);
            assert_eq!(Boot::parse_query(&query), Some(boot));
        }
        assert_eq!(parse_answer_json(b"{\"default\":[1]}"), None);
        assert_eq!(Boot::parse_query(b"boot=0&started_ms=1"), None);
    }

    /// Goal: a peer whose boot changes is known to have forgotten what it recorded before its
    /// start plus the lookahead, and only that; our own restart, once told, likewise; a purge
    /// forgets both; the first boot seen after a start or a purge is no restart.
    #[test]
    fn continuity_detects_restarts() {
        let peer_addr: SocketAddr = "127.0.0.1:9102".parse().unwrap();
        let us = Boot { id: 1, started_ms: 0 };
        let c = Continuity::new(us, 15_000);
        let check = |from_ms| c.check(from_ms, peer_addr);
        let old = Boot { id: 7, started_ms: 1_000 };
        let new = Boot { id: 8, started_ms: 100_000 };
        assert!(!c.saw_peer(old), "first sight");
        assert!(!c.saw_peer(old));
        assert_eq!(check(i64::MIN), Ok(()));
        assert!(c.saw_peer(new), "the boot changed");
        let forgotten = Forgotten { who: Some(peer_addr), before_ms: 115_000 };
        assert_eq!(check(i64::MIN), Err(forgotten));
        assert_eq!(check(114_999), Err(forgotten));
        assert_eq!(check(115_000), Ok(()));
        assert!(forgotten.to_string().starts_with("peer 127.0.0.1:9102 restarted"), "{forgotten}");
        assert_eq!(c.answer(ShardSummary::default()).you_forgot_before_ms, 115_000, "said again");
        c.told_we_forgot(15_000);
        assert_eq!(check(15_000), Err(forgotten), "the peer's loss still applies");
        c.purged(Some(new));
        assert_eq!(check(i64::MIN), Ok(()));
        assert!(!c.saw_peer(new), "the purge saw this boot");
        assert_eq!(c.answer(ShardSummary::default()).you_forgot_before_ms, i64::MIN);
        c.told_we_forgot(15_000);
        assert_eq!(check(0), Err(Forgotten { who: None, before_ms: 15_000 }));
    }
}
