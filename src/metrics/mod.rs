//! Metrics: what each core counts about itself, and `GET /metrics` in Prometheus text format.
//!
//! The hot path only bumps `Cell`s its own core owns ([`CoreMetrics`]): no atomics, no locks,
//! no allocation. A scrape is a map-reduce like the summary: every core copies its counters
//! and gauges into a plain [`CoreSnapshot`] on a `cores::CoreMsg::Metrics` message, and the
//! core serving the scrape renders them per core (`core="0"`, ...) and nothing more: the
//! scraper sums over `core` (a total beside the per-core series would make every `sum()` count
//! twice). Histograms are merged over the cores. Names follow Prometheus's rules: base units
//! (seconds, bytes), counters end in `_total`; `tests/metrics_doc.rs` checks them. A scrape also
//! reads the process's `/proc` ([`process`]); the hot path's only addition is the request
//! histogram, a bucket bump per write.
//!
//! The scrape describes one instance. On the shared port 9999 the kernel picks the instance;
//! the same endpoint on each instance's private `PEER_BIND_ADDR` addresses one on purpose,
//! which is what a Prometheus job should scrape.
//!
//! - [`counters`]: the cells a core bumps, and the snapshot of them.
//! - [`families`]: one table row per metric family, and the renderer that walks it.
//! - [`process`]: the standard `process_*` values, read from `/proc` at scrape time.

pub mod counters;
pub mod families;
pub mod process;

pub use counters::{CoreMetrics, CoreSnapshot, HttpRoute, Intake};
pub use families::{FAMILIES, Family, Instance, Kind, render};
pub use process::ProcessStats;
