//! One instance's CPU/memory envelope: a cgroup (v1 or v2) with the limits compose gives its
//! service.

use std::{
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt,
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
    /// The directory of its memory controller (one of `dirs`).
    memory: PathBuf,
    /// Whether it is a cgroup v2 one (the memory files are named differently).
    v2: bool,
}

/// What the memory cgroup of an instance has counted: its process's memory, the page cache
/// it brought in (the journal) and, as the kernel charges them, its sockets and kernel objects,
/// none of which RSS counts but all of which the limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    /// The limit, bytes.
    pub limit_bytes: u64,
    /// In use now, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage_bytes: u64,
    /// The most in use since the cgroup was made (v1 `memory.max_usage_in_bytes`, v2
    /// `memory.peak`); `None` on a v2 kernel older than 5.19, which has no `memory.peak`.
    pub peak_bytes: Option<u64>,
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
            let envelope = Envelope { dirs: vec![dir.clone()], memory: dir.clone(), v2: true };
            write(&dir.join("cpu.max"), &format!("{quota_us} {CFS_PERIOD_US}"))?;
            write(&dir.join("memory.max"), &memory_bytes)?;
            return Ok(envelope);
        }
        let cpu = root.join("cpu").join(name);
        let memory = root.join("memory").join(name);
        fs::create_dir(&cpu).map_err(|e| format!("cgroup v1 {}: {e}", cpu.display()))?;
        let mut envelope = Envelope { dirs: vec![cpu.clone()], memory: memory.clone(), v2: false };
        fs::create_dir(&memory).map_err(|e| format!("cgroup v1 {}: {e}", memory.display()))?;
        envelope.dirs.push(memory.clone());
        write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
        write(&cpu.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
        write(&memory.join("memory.limit_in_bytes"), &memory_bytes)?;
        Ok(envelope)
    }

    /// The `cgroup.procs` files a process writes `0` into to join the cgroup itself: what a
    /// child does between fork and exec, so that it starts inside, as a container's process
    /// does (payrelay reads its memory limit at start).
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|dir| CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// What its memory controller counts now; or why it cannot be read.
    pub fn memory(&self) -> Result<CgroupMemory, String> {
        let read = |file: &str| -> Result<Option<u64>, String> {
            let path = self.memory.join(file);
            match fs::read_to_string(&path) {
                Ok(text) => text
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|e| format!("{}: {e}: {text:?}", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        };
        let (limit, usage, peak) = if self.v2 {
            ("memory.max", "memory.current", "memory.peak")
        } else {
            ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.max_usage_in_bytes")
        };
        let missing = |file: &str| format!("{}: missing", self.memory.join(file).display());
        Ok(CgroupMemory {
            limit_bytes: read(limit)?.ok_or_else(|| missing(limit))?,
            usage_bytes: read(usage)?.ok_or_else(|| missing(usage))?,
            peak_bytes: read(peak)?,
        })
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
