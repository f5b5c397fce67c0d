//! Metrics: what each core counts about itself, and `GET /metrics` in Prometheus text format.
//!
//! The hot path only bumps `Cell`s its own core owns ([`CoreMetrics`]): no atomics, no locks,
//! no allocation. A scrape is a map-reduce like the summary: every core copies its counters
//! and gauges into a plain [`CoreSnapshot`] on a `cores::CoreMsg::Metrics` message, and the
//! core serving the scrape renders them, per core (`core="0"`, ...) and summed (`core="all"`).
//! Sum over `core!="all"`, or read the `all` series, never both.
//!
//! The scrape describes one instance. On the shared port 9999 the kernel picks the instance;
//! the same endpoint on each instance's private `PEER_BIND_ADDR` addresses one on purpose,
//! which is what a Prometheus job should scrape.
//!
//! - [`counters`]: the cells a core bumps, and the snapshot of them.
//! - [`families`]: one table row per metric family, and the renderer that walks it.

pub mod counters;
pub mod families;

pub use counters::{CoreMetrics, CoreSnapshot, Intake};
pub use families::{FAMILIES, Instance, render};
