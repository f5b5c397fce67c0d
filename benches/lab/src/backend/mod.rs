//! Two payrelay instances sharing one API port, started the way the contest deploys them, kept
//! inside a 1.5 CPU / 350 MB cgroup when the machine allows, and always stopped at the end.
//!
//! ## Layout
//!
//! [`Backend`], the running pair, is in `pair.rs`: how it starts, is watched, loses an instance,
//! restarts it and stops. The parts it is made of, none of which imports another but
//! `shared.rs`:
//!
//! - `launch.rs`: what to start ([`BackendSpec`], the env file, a free port) and how one
//!   instance's process is spawned.
//! - `envelope.rs`: one instance's cgroup ([`Envelope`]).
//! - `procfs.rs`: what `/proc` tells about a process: its [`Usage`], its CPU time (in ticks, or
//!   to the nanosecond) and RSS, its sockets.
//! - `ready.rs`: waiting for a backend to answer ([`wait_ready`]), the official way or faster.
//! - `shared.rs`: the polling step and the run-unique names both `pair.rs` and `envelope.rs`
//!   use.

mod envelope;
mod launch;
mod pair;
mod procfs;
mod ready;
mod shared;

pub use envelope::{CgroupMemory, Envelope};
pub use launch::{BackendSpec, free_port, read_env_file};
pub use pair::{Backend, Termination};
pub use procfs::{
    Usage, listening_inodes, read_cpu_s, read_cpu_time, read_rss_mb, read_usage, socket_inodes,
};
pub use ready::{
    READY_INTERVAL_LOCAL, READY_INTERVAL_OFFICIAL, READY_PROBE_TIMEOUT, READY_TRIES_LOCAL,
    READY_TRIES_OFFICIAL, wait_ready,
};
pub use shared::{Ending, sigterm, wait_or_kill};
