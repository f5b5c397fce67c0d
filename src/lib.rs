//! payrelay: a thread-per-core io_uring payment intermediary for Rinha de Backend 2025.
//!
//! # Layout
//!
//! The modules in the order a payment flows through them, accept → forward → ledger →
//! summary, with the core that holds their state and the boot that starts it all:
//!
//! - [`accept`]: each core's listeners and connections, the route tables, intake of
//!   `POST /payments`.
//! - [`payment`]: the incoming JSON body, decoded and validated.
//! - [`forward`]: the queue and the forwarding tasks, routing, the processors as a core sees
//!   them (client, breaker, in-flight), what an answer means, and the health poller.
//! - [`ledger`]: each core's append-only shard of settled payments.
//! - [`summary`]: the map-reduce over shards behind `GET /payments-summary` and the purge.
//! - [`peer`]: the private link that makes the other instance one more shard.
//! - [`metrics`]: per-core counters, merged at scrape time behind `GET /metrics`.
//! - [`cores`]: the state one core owns, and the mesh of mailboxes between cores.
//! - [`boot`]: threads, runtimes, listeners; the single top of the import graph.
//!
//! Support: [`http`] (the codec), [`config`] (environment), [`money`] (integer cents),
//! [`timestamp`] (ISO-8601).
//!
//! State and flow are apart: the types a core holds (queue, ledger, upstreams, connections,
//! metrics) never import [`cores`]; only the flows (`accept`, `forward::dispatch`,
//! `forward::poller`, `summary`) and `boot` take a `&Core`. `tests/layout.rs` keeps the rule.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod accept;
pub mod boot;
pub mod config;
pub mod cores;
pub mod forward;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod payment;
pub mod peer;
pub mod summary;
pub mod timestamp;
pub mod upstream;
