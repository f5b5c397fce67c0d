//! Where a number came from: the lab's commit and the machine it ran on. Every published result
//! carries both (the contest's results file, the capacity sweep's JSON, `rinha-lab --version`),
//! since a figure means nothing without the code and the box that made it.

use serde::{Deserialize, Serialize};

/// The commit the lab was built from: `git rev-parse --short HEAD` at build time (`build.rs`),
/// or `RINHA_LAB_COMMIT` when the build sets it; `unknown` outside a clone (a Docker build
/// copies no `.git`).
pub const COMMIT: &str = env!("RINHA_LAB_COMMIT");

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs the kernel shows this process.
    pub cpus: usize,
    /// `/proc/cpuinfo`'s first model name.
    pub cpu_model: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
}

impl Machine {
    /// Reads it from `/proc`; unknown fields are empty.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim()))
            .unwrap_or_default()
            .to_owned();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}
