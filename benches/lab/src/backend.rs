//! Two payrelay instances sharing one API port, started the way the contest deploys them, kept
//! inside a 1.5 CPU / 350 MB cgroup when the machine allows, and always stopped at the end.

use std::{
    fs,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use hyper::Method;

use crate::client::Conn;

/// CPU the contest allows for the whole deployment, in thousandths of a CPU.
pub const ENVELOPE_CPU_MILLIS: u64 = 1500;
/// Memory the contest allows for the whole deployment (compose's `350MB` is 350 MiB).
pub const ENVELOPE_MEMORY_BYTES: u64 = 350 * 1024 * 1024;
/// CFS period for the quota; the kernel default.
const CFS_PERIOD_US: u64 = 100_000;
/// How long a child gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Polling step while waiting for a child to exit.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// Readiness: each probe's timeout, as the official harness.
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Readiness: the official harness's interval between probes.
pub const READY_INTERVAL_OFFICIAL: Duration = Duration::from_secs(5);
/// Readiness: the official harness's number of probes.
pub const READY_TRIES_OFFICIAL: u32 = 15;
/// Readiness when the lab started the backend itself: same total budget, finer steps, so a
/// run does not wait 5 s for a server that was up after 20 ms.
pub const READY_INTERVAL_LOCAL: Duration = Duration::from_millis(50);
/// See [`READY_INTERVAL_LOCAL`]: 15 × 5 s / 50 ms.
pub const READY_TRIES_LOCAL: u32 = 1500;

/// How to start the pair.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The payrelay binary.
    pub payrelay: PathBuf,
    /// Shared API port; 0 picks a free one.
    pub api_port: u16,
    /// Where the default processor listens.
    pub default_addr: SocketAddr,
    /// Where the fallback processor listens.
    pub fallback_addr: SocketAddr,
    /// `KEY=VALUE` lines added to both instances' environment (skipped if missing).
    pub env_file: Option<PathBuf>,
    /// Try to apply the cgroup envelope.
    pub envelope: bool,
}

/// One running instance.
#[derive(Debug)]
struct Instance {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Resource use of one instance, read from `/proc` before it is stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Peak resident memory (VmHWM), MB.
    pub rss_mb_max: f64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
}

/// The running pair. Dropping it stops both (SIGTERM, then SIGKILL) and removes the cgroup.
#[derive(Debug)]
pub struct Backend {
    instances: Vec<Instance>,
    api_addr: SocketAddr,
    log_dir: PathBuf,
    envelope: Option<Envelope>,
    envelope_note: String,
    /// Keep the log directory at drop (set on any failure; cleared after a clean run).
    keep_logs: bool,
}

/// A free loopback port: bind :0, read it, release it. The port could in principle be taken
/// again before the child binds it; on loopback in a test run that is vanishingly rare.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped. A missing file is empty.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}:{}: expected KEY=VALUE", path.display(), number + 1));
        };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        pairs.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

impl Backend {
    /// Starts instances A and B. Returns once both processes exist; see [`Backend::wait_ready`].
    ///
    /// The children get SIGTERM if the calling thread exits (`PR_SET_PDEATHSIG`), so keep the
    /// `Backend` on the thread that started it.
    pub fn start(spec: &BackendSpec) -> Result<Backend, String> {
        let api_port = if spec.api_port == 0 {
            free_port().map_err(|e| e.to_string())?
        } else {
            spec.api_port
        };
        let peer_a = free_port().map_err(|e| e.to_string())?;
        let peer_b = free_port().map_err(|e| e.to_string())?;
        let log_dir =
            std::env::temp_dir().join(format!("rinha-lab-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let file_env = match &spec.env_file {
            Some(path) => read_env_file(path)?,
            None => Vec::new(),
        };
        let (envelope, envelope_note) = if spec.envelope {
            match Envelope::create(&format!("rinha-lab-{}-{}", std::process::id(), unique())) {
                Ok(envelope) => (Some(envelope), String::new()),
                Err(e) => (None, e),
            }
        } else {
            (None, "not requested".to_owned())
        };
        let mut backend = Backend {
            instances: Vec::new(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], api_port)),
            log_dir,
            envelope,
            envelope_note,
            keep_logs: true,
        };
        // B's workers are pinned after A's, so the two never share a CPU (as compose sets it).
        let workers_a = file_env
            .iter()
            .find(|(k, _)| k == "WORKER_COUNT")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(1)
            .to_string();
        for (name, own, peer, cpu) in
            [("a", peer_a, peer_b, "0"), ("b", peer_b, peer_a, workers_a.as_str())]
        {
            let log = backend.log_dir.join(format!("payrelay-{name}.log"));
            let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
            let mut command = Command::new(&spec.payrelay);
            command.envs(file_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            command
                .env("API_BIND_ADDR", format!("0.0.0.0:{api_port}"))
                .env("PEER_BIND_ADDR", format!("127.0.0.1:{own}"))
                .env("PEER_ADDR", format!("127.0.0.1:{peer}"))
                .env("PROCESSOR_DEFAULT_URL", format!("http://{}", spec.default_addr))
                .env("PROCESSOR_FALLBACK_URL", format!("http://{}", spec.fallback_addr))
                .env("WORKER_CPU_FIRST", cpu)
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err);
            // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
            // which is async-signal-safe; it touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    // Die with the thread that started us, even if the lab is SIGKILLed and its
                    // drops never run.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .map_err(|e| format!("starting {}: {e}", spec.payrelay.display()))?;
            let pid = child.id();
            backend.instances.push(Instance { name, child, log });
            if let Some(envelope) = &backend.envelope
                && let Err(e) = envelope.add(pid)
            {
                backend.envelope_note = e;
                backend.envelope = None;
            }
        }
        Ok(backend)
    }

    /// The shared API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Whether both instances run inside the CPU/memory envelope.
    pub fn envelope_applied(&self) -> bool {
        self.envelope.is_some()
    }

    /// Why the envelope is not applied (empty when it is).
    pub fn envelope_note(&self) -> &str {
        &self.envelope_note
    }

    /// Where the instances' logs are.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.instances.iter().map(|i| i.log.clone()).collect()
    }

    /// The directory holding both logs.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Whether to keep the logs when the pair is dropped (they are kept unless told otherwise).
    pub fn keep_logs(&mut self, keep: bool) {
        self.keep_logs = keep;
    }

    /// An error message naming the logs.
    pub fn describe_failure(&self, what: &str) -> String {
        let logs: Vec<String> = self.log_paths().iter().map(|p| p.display().to_string()).collect();
        format!("{what}; payrelay logs: {}", logs.join(", "))
    }

    /// The first instance that has exited, if any.
    pub fn exited(&mut self) -> Option<String> {
        for instance in &mut self.instances {
            if let Ok(Some(status)) = instance.child.try_wait() {
                return Some(format!("payrelay {} exited with {status}", instance.name));
            }
        }
        None
    }

    /// Waits until `GET /payments-summary` answers 2xx on the shared port (payrelay answers 503
    /// until its peer answers, so one 2xx means both are up). Fails early if a child exits.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.api_addr;
        let mut alive = || self.exited();
        wait_ready(addr, READY_INTERVAL_LOCAL, READY_TRIES_LOCAL, &mut alive).await
    }

    /// Resource use per instance (`a`, `b`), read from `/proc`.
    pub fn usage(&self) -> Vec<(&'static str, Usage)> {
        self.instances
            .iter()
            .map(|i| (i.name, read_usage(i.child.id()).unwrap_or_default()))
            .collect()
    }

    /// Stops both instances now (also done on drop).
    pub fn stop(&mut self) {
        for instance in &self.instances {
            // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
            unsafe {
                libc::kill(instance.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        for instance in &mut self.instances {
            loop {
                match instance.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = instance.child.kill();
                        let _ = instance.child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(EXIT_POLL),
                }
            }
        }
        self.instances.clear();
        self.envelope = self.envelope.take().and_then(|e| e.remove().err());
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_logs {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// Polls `GET /payments-summary` until 2xx: each probe times out after 3 s, `tries` probes
/// `interval` apart. `exited` reports a dead backend so we stop waiting for it.
pub async fn wait_ready(
    addr: SocketAddr,
    interval: Duration,
    tries: u32,
    exited: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let mut last = String::from("no probe made");
    for _ in 0..tries {
        if let Some(reason) = exited() {
            return Err(reason);
        }
        let mut conn = Conn::new(addr);
        match conn.request(Method::GET, "/payments-summary", &[], None, READY_PROBE_TIMEOUT).await {
            Ok(reply) if (200..300).contains(&reply.status) => return Ok(()),
            Ok(reply) => last = format!("status {}", reply.status),
            Err(e) => last = format!("{e:?}"),
        }
        tokio::time::sleep(interval).await;
    }
    Err(format!("backend at {addr} never answered 2xx to GET /payments-summary (last: {last})"))
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Peak RSS and CPU time of a process.
pub fn read_usage(pid: u32) -> Option<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_s = if ticks_per_s > 0 { ticks_per_s as f64 } else { 100.0 };
    Some(Usage { rss_mb_max: hwm_kb / 1024.0, cpu_s: ticks / ticks_per_s })
}

/// A uniquely named cgroup (v1: one per controller; v2: one directory) with the contest's CPU
/// quota and memory limit.
#[derive(Debug)]
pub struct Envelope {
    dirs: Vec<PathBuf>,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl Envelope {
    /// Creates the cgroup, or explains why it cannot.
    pub fn create(name: &str) -> Result<Envelope, String> {
        let root = Path::new(CGROUP_ROOT);
        let quota_us = CFS_PERIOD_US * ENVELOPE_CPU_MILLIS / 1000;
        if root.join("cgroup.controllers").exists() {
            // cgroup v2: enable the controllers for children, then one directory with both.
            let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu +memory");
            let dir = root.join(name);
            fs::create_dir(&dir).map_err(|e| format!("cgroup v2 {}: {e}", dir.display()))?;
            let envelope = Envelope { dirs: vec![dir.clone()] };
            write(&dir.join("cpu.max"), &format!("{quota_us} {CFS_PERIOD_US}"))?;
            write(&dir.join("memory.max"), &ENVELOPE_MEMORY_BYTES.to_string())?;
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
        write(&memory.join("memory.limit_in_bytes"), &ENVELOPE_MEMORY_BYTES.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the tuning file format (comments, blanks, quotes, `export`) reads as intended and a
    /// missing file is simply empty. Method: a temporary file.
    #[test]
    fn env_file_format() {
        let path = std::env::temp_dir().join(format!("rinha-lab-env-{}", unique()));
        fs::write(&path, "# comment\n\nA=1\nexport B = \"two words\"\nC=x=y\n").expect("write");
        let pairs = read_env_file(&path).expect("parse");
        let _ = fs::remove_file(&path);
        let expected = [("A", "1"), ("B", "two words"), ("C", "x=y")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(pairs, expected);
        assert_eq!(read_env_file(Path::new("/nonexistent/contest.env")), Ok(Vec::new()));
    }

    /// Goal: usage is readable for a live process. Method: read our own.
    #[test]
    fn reads_own_usage() {
        let usage = read_usage(std::process::id()).expect("usage");
        assert!(usage.rss_mb_max > 0.0);
    }
}
