//! payrelay: a thread-per-core io_uring payment intermediary for Rinha de Backend 2025.
//!
//! # Layout
//!
//! The modules in the order a payment flows through them, accept → queue → forward → outcome
//! → ledger → summary, then the core that holds their state and what everything stands on:
//!
//! - [`boot`]: threads, runtimes, listeners, the mailbox loop, drain; the single top.
//! - [`accept`] (flow): each core's listener loop and connections, the route tables, intake
//!   of `POST /payments`.
//! - [`forward`] (flow): the forwarding tasks, from the queue through routing and attempts to
//!   the ledger; core 0's health poller.
//! - [`summary`] (flow): the map-reduce over shards behind `GET /payments-summary`, and the
//!   purge.
//! - [`cores`]: the state one core owns ([`cores::Core`]), the mesh of mailboxes between
//!   cores, and the parts that exist per core: the connection registry, the queue, the slot
//!   waiters.
//! - [`upstream`]: the processors as a core sees them (client, breaker and delay news,
//!   attempts in flight), what an answer means, and where a payment goes.
//! - [`ledger`]: each core's append-only shard of settled payments.
//! - [`journal`]: each core's file of what happened to its payments, replayed at start.
//! - [`peer`]: the private link that makes the other instance one more shard.
//! - [`metrics`]: per-core counters, and one table of the families `GET /metrics` renders.
//! - [`payment`]: the incoming JSON body, decoded and validated.
//!
//! Support: [`http`] (the codec), [`config`] (one table of knobs), [`log`] (a line per event,
//! with its time, level and core), [`money`] (integer cents), [`timestamp`] (ISO-8601).
//!
//! State and flow are apart: imports run down from `boot` to the flows, to `cores`, to the
//! state and support modules; the types a core holds never import [`cores`], and the flows
//! take a `&Core`. `tests/layout.rs` keeps the rule.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod accept;
pub mod boot;
pub mod config;
pub mod cores;
pub mod forward;
pub mod http;
pub mod journal;
pub mod ledger;
pub mod log;
pub mod metrics;
pub mod money;
pub mod payment;
pub mod peer;
pub mod summary;
pub mod timestamp;
pub mod upstream;

/// This build's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this build was made from, or "unknown" (a build without `.git` and without
/// `PAYRELAY_GIT_COMMIT`; see `build.rs`).
pub const COMMIT: &str = match option_env!("PAYRELAY_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};
