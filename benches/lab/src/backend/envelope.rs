//! One instance's CPU/memory envelope: a cgroup (v1 or v2) with the limits compose gives its
//! service.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
};

use super::shared::{EXIT_POLL, unique};
use crate::compose::{self, InstanceLimits};

/// CFS period for the quota; the kernel default.
const CFS_PERIOD_US: u64 = 100_000;

/// A uniquely named cgroup (v1: one per controller; v2: one directory) with one instance's CPU
/// quota and memory limit.
#[derive(Debug)]
pub struct Envelope {
    pub(super) dirs: Vec<PathBuf>,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl Envelope {
    /// One cgroup for each payrelay service of `compose_file`, with its limits, in the
    /// services' order; or why not.
    pub fn per_instance(compose_file: &Path) -> Result<Vec<Envelope>, String> {
        let limits = compose::instance_limits(compose_file)?;
        if limits.len() != 2 {
            let found = limits.len();
            return Err(format!("{}: {found} payrelay services, not 2", compose_file.display()));
        }
        let run = format!("rinha-lab-{}-{}", std::process::id(), unique());
        limits.iter().map(|l| Envelope::create(&format!("{run}-{}", l.service), l)).collect()
    }

    /// Creates the cgroup, or explains why it cannot.
    pub fn create(name: &str, limits: &InstanceLimits) -> Result<Envelope, String> {
        let root = Path::new(CGROUP_ROOT);
        let quota_us = CFS_PERIOD_US * limits.cpu_millis / 1000;
        let memory_bytes = limits.memory_bytes.to_string();
        if root.join("cgroup.controllers").exists() {
            // cgroup v2: enable the controllers for children, then one directory with both.
            let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu +memory");
            let dir = root.join(name);
            fs::create_dir(&dir).map_err(|e| format!("cgroup v2 {}: {e}", dir.display()))?;
            let envelope = Envelope { dirs: vec![dir.clone()] };
            write(&dir.join("cpu.max"), &format!("{quota_us} {CFS_PERIOD_US}"))?;
            write(&dir.join("memory.max"), &memory_bytes)?;
            return Ok(envelope);
        }
        let cpu = root.join("cpu").join(name);
        let memory = root.join("memory").join(name);
        fs::create_dir(&cpu).map_err(|e| format!("cgroup v1 {}: {e}", cpu.display()))?;
        let mut envelope = Envelope { dirs: vec![cpu.clone()] };
        fs::create_dir(&memory).map_err(|e| format!("cgroup v1 {}: {e}", memory.display()))?;
        envelope.dirs.push(memory.clone());
        write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
        write(&cpu.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
        write(&memory.join("memory.limit_in_bytes"), &memory_bytes)?;
        Ok(envelope)
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Removes the cgroup once its processes have exited; returns itself if that failed.
    pub fn remove(mut self) -> Result<(), Envelope> {
        // An exited process leaves its cgroup asynchronously; give it a moment.
        for _ in 0..100 {
            self.dirs.retain(|dir| fs::remove_dir(dir).is_err() && dir.exists());
            if self.dirs.is_empty() {
                return Ok(());
            }
            thread::sleep(EXIT_POLL);
        }
        Err(self)
    }
}

impl Drop for Envelope {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}
