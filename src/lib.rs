//! payrelay: a thread-per-core io_uring payment intermediary for Rinha de Backend 2025.
//!
//! # Layout
//!
//! Modules in the order a payment flows through them:
//! accept → queue → dispatch → settle → ledger → summary.
//!
//! - [`worker`]: one pinned thread per core, its monoio runtime and everything it owns.
//! - [`server`] (accept): each core's `SO_REUSEPORT` listener, connections and routes.
//! - [`connections`]: a core's open connections, their cap and the idle sweep.
//! - [`http`]: the HTTP/1.1 codec on `httparse`, server and client side.
//! - [`payment`]: the incoming JSON body, decoded and validated.
//! - [`queue`]: a core's bounded FIFO of accepted payments.
//! - [`dispatch`]: forwarding slots that drain the queue to the processors.
//! - [`processor`]: keep-alive client connections to one processor; one attempt.
//! - [`settle`]: what an attempt's result means (stored, not stored, unknown).
//! - [`ledger`]: each core's append-only shard of settled payments.
//! - [`summary`]: the map-reduce over shards behind `GET /payments-summary`.
//! - [`peer`]: the private link that makes the other instance one more shard.
//! - [`metrics`]: per-core counters, merged at scrape time behind `GET /metrics`.
//!
//! Support: [`config`] (environment), [`money`] (integer cents), [`timestamp`] (ISO-8601).

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod connections;
pub mod dispatch;
pub mod health;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod payment;
pub mod peer;
pub mod processor;
pub mod queue;
pub mod route;
pub mod server;
pub mod settle;
pub mod summary;
pub mod timestamp;
pub mod worker;
