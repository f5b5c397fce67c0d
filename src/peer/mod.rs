//! Peer: the private link between the two instances (a loopback port, never 9999). Each
//! instance answers for its own cores there; the public summary adds the peer as one shard.
//!
//! - [`continuity`]: who the peer is (its boot) and what a restart made either forget.
//! - [`wire`]: every request and answer of the link, encoded and decoded in one place.
//! - [`client`]: the calls an instance makes (summary, purge, health report).
//!
//! Calls are rare (a summary every few seconds, one purge per test), so each opens a fresh
//! connection: nothing to go stale when the peer restarts. A summary or purge call that fails
//! is made once more within [`PEER_CALLS_BUDGET`]: the contest's client reads a summary that
//! does not come as zeros, an inconsistency.
//!
//! # Continuity: what a restarted instance may have forgotten
//!
//! The ledger lives in memory. With the journal on (`JOURNAL_DIR`), a restarted instance comes
//! back with its books: it replays its journal before it listens, and its boot says whether the
//! replay found them whole (`Boot::kept_books`). Without the journal, or when the replay found
//! them damaged, it comes back without the records of its earlier life, while the processors
//! still hold them; summing it as if nothing happened would be a silently partial total. So
//! every peer call carries the caller's boot (a random id, its start time and whether it kept
//! its books) and every answer the responder's, and each instance remembers the peer's boot
//! since the last purge ([`Continuity`]). A boot that changed and did not keep its books means
//! a restart that forgot: the records of that instance with a `requestedAt` before its start
//! plus `PROCESSOR_TIMEOUT_MS` (the furthest ahead a `requestedAt` is ever planned) may be
//! gone, and a summary whose range reaches back there answers 503 naming the instance. Ranges
//! that start later (the contest's sliding check window, 30 s or so after the restart) are
//! exact again, and the next purge clears the record. Both instances restarting together
//! without a journal cannot be told from a new deployment.

pub mod client;
pub mod continuity;
pub mod wire;

pub use client::{PEER_CALLS_BUDGET, PeerError, fetch_summary, purge, send_health};
pub use continuity::{Boot, Continuity, Forgotten, PeerAnswer};
pub use wire::{HEALTH_PATH, PURGE_PATH, SUMMARY_PATH};
