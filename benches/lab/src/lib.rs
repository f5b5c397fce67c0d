//! # rinha-lab: a local replica of the Rinha de Backend 2025 contest
//!
//! ## Layout
//!
//! The modules follow one contest run, in order:
//!
//! - [`scenario`]: the TOML test plan (load shape, fees, fault timeline), validated once.
//! - [`emulator`]: the two payment processors, in process, with their limits and admin API;
//!   [`framing`]: their answers on the wire, as the real ones (Kestrel) frame them.
//! - [`backend`]: starting two payrelay instances on one port, inside a CPU/memory envelope.
//! - [`load`]: the k6-equivalent test: setup, ramping virtual users, consistency checks, fault
//!   stages, teardown.
//!   [`sampler`]: once a second during the load, the processors' books and each payrelay
//!   instance's gauges and CPU, kept with the POSTs by second in a [`series::Series`].
//! - [`score`]: the official scoring formula over what the load measured.
//! - [`crash`]: the crash harness beside the load: one instance killed and restarted at the
//!   scenario's moments, then every accepted payment looked up in the processors' books.
//! - [`contest`]: one call that wires all of the above and writes the results.
//! - [`results`]: the results file's record, shared by the contest that writes it and the
//!   report that reads it (so neither imports the other); [`provenance`]: the commit and the
//!   machine every result carries.
//! - [`report`]: the results drawn as one SVG of panels over the test's time (one run, or
//!   several overlaid); [`report::compare`]: several runs' key figures side by side.
//! - [`capacity`]: beside the contest, an open-model sweep of arrival rates against the pair
//!   and against [`canned`]: the highest rate payrelay keeps under 1 ms p99.
//!
//! - [`cli`]: the `rinha-lab` command line (and the `contest` and `capacity` benches'), on top
//!   of all of the above; nothing imports it.
//!
//! Helpers: [`client`] (a keep-alive HTTP/1 connection with a timeout), [`stats`] (k6's
//! percentile), [`money`] (integer cents), [`time`] (`toISOString()` timestamps) and [`canned`]
//! (a fixed-answer server, the latency floor).

#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod backend;
pub mod canned;
pub mod capacity;
pub mod cli;
pub mod client;
pub mod compose;
pub mod contest;
pub mod crash;
pub mod emulator;
pub mod framing;
pub mod load;
pub mod money;
pub mod provenance;
pub mod report;
pub mod results;
pub mod sampler;
pub mod scenario;
pub mod score;
pub mod series;
pub mod stats;
pub mod time;
