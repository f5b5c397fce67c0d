//! Journal: each core's append-only record of what happened to the payments it handles, so
//! that a killed instance comes back with exact books and forwards everything it accepted.
//!
//! # What is recorded, and when it must be on disk
//!
//! Per payment ([`record::Kind`]): *accepted*, written before the `202` leaves, so nothing a
//! client was told is accepted can be forgotten; *attempt* (processor, `requestedAt`), written
//! before the request leaves, because from then on the payment may be stored there and only
//! there; *not stored*, *settled* (a ledger entry) and *closed* (ended with no entry), written
//! as they happen without waiting, because a crash that loses them only repeats work that is
//! safe to repeat: the last attempt is retried at the same processor with the same
//! `requestedAt`, and a `422` there then means stored. A purge starts a new generation of files,
//! each beginning with the newest record of every payment its core still holds: a purge empties
//! the books, not the work.
//!
//! "Written" means handed to the kernel (the page cache): it survives the process being
//! killed, which is what the contest and an OOM do. `JOURNAL_FSYNC` buys survival of the
//! machine's crash too, at the cost of disk flushes ([`writer::Fsync`]).
//!
//! # Recovery
//!
//! At start, before any core listens, [`replay::replay`] reads every file of the newest
//! generation, whatever core wrote it: every *settled* record is a ledger entry, and every
//! payment whose last record is not *settled* or *closed* goes back on a queue, pinned to its
//! last attempt's processor and `requestedAt` if it has one; each pinned one is looked up at
//! that processor before the core listens (`forward::dispatch`), since the killed life may have
//! sent it and the processor stored it. The books are then what they were; the peer is told so
//! (`peer::Boot::kept_books`) and does not refuse summaries over the time before the restart.
//! While an instance is down, its peer answers summaries from this instance's files
//! ([`replay::peer_books`]: its settled payments, and a lookup of each attempt it had in flight;
//! `PEER_JOURNAL_DIR` on a shared volume).
//!
//! - [`record`]: the 64-byte record and its checksum.
//! - [`writer`]: one core's file, written in one batch per turn of its event loop.
//! - [`replay`]: the files read back: torn tails cut, damage counted, the books rebuilt.

pub mod record;
pub mod replay;
pub mod writer;

pub use record::Kind;
pub use replay::{Pending, Replayed};
pub use writer::{Fsync, Journal, Refusal};
