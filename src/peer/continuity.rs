//! Continuity: who the peer is (its boot) and what a restart made either instance forget.
//! Why it exists is in the module above's *Continuity*.

use std::{
    fmt,
    net::SocketAddr,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
};

use crate::ledger::ShardSummary;

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

/// One life of an instance: a random id, when it started, and whether it came back with its
/// books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Never 0 (0 means "no boot seen").
    pub id: u64,
    /// Start, ms since the epoch.
    pub started_ms: i64,
    /// It replayed a whole journal: nothing recorded before its start is missing, so a restart
    /// of it costs no summary.
    pub kept_books: bool,
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
        Boot { id: id.max(1), started_ms, kept_books: false }
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

    /// The peer showed `boot` (on a call it made, or in an answer to ours). If it restarted
    /// since we last saw it without its books, remembers what it forgot.
    pub fn saw_peer(&self, boot: Boot) {
        let before = self.peer_boot_id.swap(boot.id, Ordering::Relaxed);
        if before != 0 && before != boot.id && !boot.kept_books {
            let forgot = boot.started_ms.saturating_add(self.ahead_ms);
            self.peer_forgot_before_ms.fetch_max(forgot, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a peer whose boot changes is known to have forgotten what it recorded before its
    /// start plus the lookahead, and only that; our own restart, once told, likewise; a purge
    /// forgets both; the first boot seen after a start or a purge is no restart.
    #[test]
    fn continuity_detects_restarts() {
        let peer_addr: SocketAddr = "127.0.0.1:9102".parse().unwrap();
        let us = Boot { id: 1, started_ms: 0, kept_books: false };
        let c = Continuity::new(us, 15_000);
        let check = |from_ms| c.check(from_ms, peer_addr);
        let old = Boot { id: 7, started_ms: 1_000, kept_books: false };
        let new = Boot { id: 8, started_ms: 100_000, kept_books: false };
        c.saw_peer(old);
        c.saw_peer(old);
        assert_eq!(check(i64::MIN), Ok(()), "first sight, twice: no restart");
        c.saw_peer(new);
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
        c.saw_peer(new);
        assert_eq!(check(i64::MIN), Ok(()), "the purge saw this boot: no restart");
        assert_eq!(c.answer(ShardSummary::default()).you_forgot_before_ms, i64::MIN);
        c.told_we_forgot(15_000);
        assert_eq!(check(0), Err(Forgotten { who: None, before_ms: 15_000 }));
    }

    /// Goal: a peer that restarted with its books (a whole journal replayed) forgot nothing:
    /// no summary is refused for it. Method: a new boot that says so.
    #[test]
    fn a_restart_that_kept_its_books_forgets_nothing() {
        let peer_addr: SocketAddr = "127.0.0.1:9102".parse().unwrap();
        let c = Continuity::new(Boot { id: 1, started_ms: 0, kept_books: true }, 15_000);
        c.saw_peer(Boot { id: 7, started_ms: 1_000, kept_books: true });
        c.saw_peer(Boot { id: 8, started_ms: 100_000, kept_books: true });
        assert_eq!(c.check(i64::MIN, peer_addr), Ok(()));
        assert_eq!(c.answer(ShardSummary::default()).you_forgot_before_ms, i64::MIN);
    }
}
