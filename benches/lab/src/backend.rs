//! Two payrelay instances sharing one API port, started the way the contest deploys them, kept
//! inside a 1.5 CPU / 350 MB cgroup when the machine allows, and always stopped at the end.

use std::{
    collections::HashSet,
    fs,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use hyper::Method;

use crate::{
    client::Conn,
    compose::{self, InstanceLimits},
};

/// CFS period for the quota; the kernel default.
const CFS_PERIOD_US: u64 = 100_000;
/// How long a child gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Polling step while waiting for a child to exit.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// How long the kernel may take to release a dead instance's listening sockets. With io_uring
/// the ring is torn down by a kernel worker after the process is reaped, and until then the
/// sockets it references keep listening (measured: 5-15 ms after `wait` returns): the kernel
/// completes handshakes into them and resets those connections when they finally close.
const SOCKETS_RELEASE_MAX: Duration = Duration::from_secs(5);
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
    /// Apply the CPU and memory limits of this compose file's payrelay services, one cgroup
    /// per instance (A gets the first service's, B the second's), as compose applies them.
    pub envelope: Option<PathBuf>,
}

/// One instance: its current process and what it takes to start it again identically.
#[derive(Debug)]
struct Instance {
    name: &'static str,
    /// The latest process started for this instance (it may have exited).
    child: Child,
    log: PathBuf,
    /// The private address it serves its peer link on (`PEER_BIND_ADDR`).
    peer_bind_addr: SocketAddr,
    /// Program and environment it was started with, for [`Backend::restart`].
    launch: Launch,
    /// Its cgroup, when the envelope is applied.
    envelope: Option<Envelope>,
}

/// How an instance is started: the program and the variables added to the parent's
/// environment (the env file's, then the per-instance ones, which win).
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    env: Vec<(String, String)>,
}

impl Launch {
    /// Starts the process, its stdout and stderr appended to `log`.
    fn spawn(&self, log: &Path) -> Result<Child, String> {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.program);
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        command.spawn().map_err(|e| format!("starting {}: {e}", self.program.display()))
    }
}

/// How one instance ended after [`Backend::terminate`].
#[derive(Debug)]
pub struct Termination {
    /// `a` or `b`.
    pub name: &'static str,
    /// Its exit status, or why there is none (it outlived the grace and was SIGKILLed).
    pub status: Result<ExitStatus, String>,
    /// From the SIGTERM to its exit (or to the SIGKILL).
    pub after: Duration,
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
    /// Why the envelope is not applied (empty when it is).
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
        let (mut envelopes, envelope_note) = match &spec.envelope {
            Some(compose_file) => match Envelope::per_instance(compose_file) {
                Ok(envelopes) => (envelopes.into_iter().map(Some).collect(), String::new()),
                Err(e) => (Vec::new(), e),
            },
            None => (Vec::new(), "not requested".to_owned()),
        };
        envelopes.resize_with(2, || None);
        let mut backend = Backend {
            instances: Vec::new(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], api_port)),
            log_dir,
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
        for ((name, own, peer, cpu), envelope) in
            [("a", peer_a, peer_b, "0"), ("b", peer_b, peer_a, workers_a.as_str())]
                .into_iter()
                .zip(envelopes)
        {
            let log = backend.log_dir.join(format!("payrelay-{name}.log"));
            let mut env = file_env.clone();
            env.extend(
                [
                    ("API_BIND_ADDR", format!("0.0.0.0:{api_port}")),
                    ("PEER_BIND_ADDR", format!("127.0.0.1:{own}")),
                    ("PEER_ADDR", format!("127.0.0.1:{peer}")),
                    ("PROCESSOR_DEFAULT_URL", format!("http://{}", spec.default_addr)),
                    ("PROCESSOR_FALLBACK_URL", format!("http://{}", spec.fallback_addr)),
                    ("WORKER_CPU_FIRST", cpu.to_owned()),
                ]
                .map(|(k, v)| (k.to_owned(), v)),
            );
            let launch = Launch { program: spec.payrelay.clone(), env };
            let child = launch.spawn(&log)?;
            let pid = child.id();
            let peer_bind_addr = SocketAddr::from(([127, 0, 0, 1], own));
            let envelope = match envelope.map(|e| e.add(pid).map(|()| e)) {
                Some(Ok(envelope)) => Some(envelope),
                Some(Err(e)) => {
                    backend.envelope_note = e;
                    None
                }
                None => None,
            };
            backend.instances.push(Instance { name, child, log, peer_bind_addr, launch, envelope });
        }
        if !backend.envelope_applied() {
            // Half an envelope would describe no deployment: none, and say why.
            backend.instances.iter_mut().for_each(|i| i.envelope = None);
            if backend.envelope_note.is_empty() {
                backend.envelope_note = "not every instance is in its cgroup".to_owned();
            }
        }
        Ok(backend)
    }

    /// The shared API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Whether both instances run inside their CPU/memory envelopes.
    pub fn envelope_applied(&self) -> bool {
        !self.instances.is_empty() && self.instances.iter().all(|i| i.envelope.is_some())
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

    /// Process id of each instance's latest process (`a`, `b`), whether or not it still runs.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.instances.iter().map(|i| (i.name, i.child.id())).collect()
    }

    /// The private address instance `name` (`a` or `b`) serves its peer link on: what the
    /// other instance has as `PEER_ADDR`, and what its errors name when this one is gone.
    pub fn peer_addr(&self, name: &str) -> Option<SocketAddr> {
        self.instances.iter().find(|i| i.name == name).map(|i| i.peer_bind_addr)
    }

    /// Current resident memory (VmRSS) of each instance, MB; `None` for one that has exited.
    pub fn rss_mb(&self) -> Vec<(&'static str, Option<f64>)> {
        self.instances.iter().map(|i| (i.name, read_rss_mb(i.child.id()))).collect()
    }

    /// Kills instance `name` with SIGKILL (no drain: what it held is lost), reaps it, and
    /// waits until the kernel has released its listening sockets (see
    /// [`Backend::wait_sockets_released`]), so that from then on only the other instance
    /// listens on the shared port and this one's peer port refuses connections. The other
    /// instance keeps running; [`Backend::restart`] starts this one again.
    pub fn kill(&mut self, name: &str) -> Result<ExitStatus, String> {
        let instance = self.instance_mut(name)?;
        // An instance that already exited is simply reaped.
        let _ = instance.child.kill();
        let status = instance.child.wait().map_err(|e| format!("payrelay {name}: wait: {e}"))?;
        self.wait_sockets_released()?;
        Ok(status)
    }

    /// Waits until no socket listens on the shared API port or on an exited instance's peer
    /// port unless a running instance holds it. A process that used io_uring leaves its
    /// listening sockets open for a few milliseconds after it is reaped (the kernel tears its
    /// rings down asynchronously), and connections landing there are reset; [`Backend::kill`]
    /// and [`Backend::terminate`] call this so that a test sees a dead instance as gone.
    pub fn wait_sockets_released(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + SOCKETS_RELEASE_MAX;
        loop {
            let mut ports = vec![self.api_addr.port()];
            let mut owned = HashSet::new();
            for instance in &mut self.instances {
                if let Ok(None) = instance.child.try_wait() {
                    owned.extend(socket_inodes(instance.child.id()));
                } else {
                    ports.push(instance.peer_bind_addr.port());
                }
            }
            let lingering = listening_inodes(&ports).difference(&owned).count();
            if lingering == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{lingering} listening sockets on ports {ports:?} outlived their process by \
                     more than {} ms",
                    SOCKETS_RELEASE_MAX.as_millis()
                ));
            }
            thread::sleep(EXIT_POLL);
        }
    }

    /// Starts instance `name` again, after it exited or was killed, with exactly the command
    /// and environment of its first start (same shared API port and private peer port), its
    /// output appended to the same log, inside the envelope when one is applied. Returns the
    /// new process id. Like [`Backend::start`], call it from the thread that holds the pair:
    /// the child dies with that thread. Fails if the instance still runs.
    pub fn restart(&mut self, name: &str) -> Result<u32, String> {
        let instance = self.instance_mut(name)?;
        match instance.child.try_wait() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("payrelay {name} is still running")),
            Err(e) => return Err(format!("payrelay {name}: wait: {e}")),
        }
        let child = instance.launch.spawn(&instance.log)?;
        let pid = child.id();
        instance.child = child;
        if let Some(envelope) = &instance.envelope
            && let Err(e) = envelope.add(pid)
        {
            // Outside the envelope it would not be the deployment we claim to run.
            let _ = self.kill(name);
            return Err(format!("payrelay {name} restarted outside the envelope: {e}"));
        }
        Ok(pid)
    }

    /// Sends SIGTERM to every running instance at once, then waits up to `grace` for each to
    /// exit by itself, and reports how each ended. One still running after `grace` is
    /// SIGKILLed and reported as an `Err`. Unlike [`Backend::stop`] (3 s, then SIGKILL, nothing
    /// reported), this is for checking the shutdown itself; the instances stay known, so their
    /// logs are still named and [`Backend::restart`] works.
    pub fn terminate(&mut self, grace: Duration) -> Vec<Termination> {
        let signalled = Instant::now();
        let mut running = Vec::new();
        for instance in &mut self.instances {
            if let Ok(None) = instance.child.try_wait() {
                // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
                unsafe {
                    libc::kill(instance.child.id() as libc::pid_t, libc::SIGTERM);
                }
                running.push(true);
            } else {
                running.push(false);
            }
        }
        let deadline = signalled + grace;
        let mut endings = Vec::new();
        for (instance, was_running) in self.instances.iter_mut().zip(running) {
            let name = instance.name;
            if !was_running {
                let how = match instance.child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "unknown status".to_owned(),
                };
                let status = Err(format!("payrelay {name} had exited before SIGTERM ({how})"));
                endings.push(Termination { name, status, after: Duration::ZERO });
                continue;
            }
            let status = loop {
                match instance.child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Err(e) => break Err(format!("payrelay {name}: wait: {e}")),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = instance.child.kill();
                        let _ = instance.child.wait();
                        break Err(format!(
                            "payrelay {name} still running {} ms after SIGTERM; killed",
                            grace.as_millis()
                        ));
                    }
                    Ok(None) => thread::sleep(EXIT_POLL),
                }
            };
            endings.push(Termination { name, status, after: signalled.elapsed() });
        }
        if let Err(e) = self.wait_sockets_released() {
            for ending in &mut endings {
                if let Ok(status) = ending.status {
                    ending.status =
                        Err(format!("payrelay {} exited ({status}), but {e}", ending.name));
                }
            }
        }
        endings
    }

    fn instance_mut(&mut self, name: &str) -> Result<&mut Instance, String> {
        self.instances
            .iter_mut()
            .find(|i| i.name == name)
            .ok_or_else(|| format!("no payrelay instance named {name:?}"))
    }

    /// Stops both instances now (also done on drop).
    pub fn stop(&mut self) {
        for instance in &mut self.instances {
            // A reaped child's pid may already belong to another process: signal only ours.
            if let Ok(None) = instance.child.try_wait() {
                // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
                unsafe {
                    libc::kill(instance.child.id() as libc::pid_t, libc::SIGTERM);
                }
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
        for instance in self.instances.drain(..) {
            // One that cannot be removed yet is removed by its drop, at worst left empty.
            let _ = instance.envelope.map(Envelope::remove);
        }
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

/// A memory field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, ...), MB; `None` once the
/// process has exited.
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Peak RSS and CPU time of a process.
pub fn read_usage(pid: u32) -> Option<Usage> {
    let rss_mb_max = status_mb(pid, "VmHWM")?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_s = if ticks_per_s > 0 { ticks_per_s as f64 } else { 100.0 };
    Some(Usage { rss_mb_max, cpu_s: ticks / ticks_per_s })
}

/// Inodes of the TCP sockets (IPv4 and IPv6) listening on any of `ports`, from `/proc/net`.
pub fn listening_inodes(ports: &[u16]) -> HashSet<u64> {
    /// `st` of a listening socket in `/proc/net/tcp`.
    const TCP_LISTEN: &str = "0A";
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode.
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != TCP_LISTEN {
                continue;
            }
            let port = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if port.is_some_and(|p| ports.contains(&p))
                && let Ok(inode) = fields[9].parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// Inodes of the sockets a process holds open (its `/proc/<pid>/fd` links `socket:[inode]`);
/// empty once it has exited.
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Current resident memory (VmRSS) of a process, MB; `None` once it has exited.
pub fn read_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmRSS")
}

/// A uniquely named cgroup (v1: one per controller; v2: one directory) with one instance's CPU
/// quota and memory limit.
#[derive(Debug)]
pub struct Envelope {
    dirs: Vec<PathBuf>,
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

    /// Goal: usage and current RSS are readable for a live process and absent for a gone one.
    /// Method: read our own, then a pid past the kernel's maximum.
    #[test]
    fn reads_own_usage() {
        let usage = read_usage(std::process::id()).expect("usage");
        assert!(usage.rss_mb_max > 0.0);
        let rss = read_rss_mb(std::process::id()).expect("rss");
        assert!(rss > 0.0 && rss <= usage.rss_mb_max + 1.0, "rss {rss} hwm {}", usage.rss_mb_max);
        assert_eq!(read_rss_mb(u32::MAX), None);
    }

    /// Goal: a listening socket is found by port in `/proc/net` under the inode its process
    /// holds, and is gone once closed. Method: a listener of our own on an ephemeral port.
    #[test]
    fn finds_listening_sockets_and_their_owner() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let listening = listening_inodes(&[port]);
        assert_eq!(listening.len(), 1, "{listening:?}");
        let ours = socket_inodes(std::process::id());
        assert!(listening.is_subset(&ours), "{listening:?} not in {ours:?}");
        drop(listener);
        // A test running in parallel may fork a child between our bind and its exec: the child
        // holds a copy of the socket (close-on-exec) for a moment, so poll rather than assert.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !listening_inodes(&[port]).is_empty() {
            assert!(std::time::Instant::now() < deadline, "port {port} still listening");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(socket_inodes(u32::MAX).is_empty());
    }

    /// The stand-in for payrelay (`tests/fixtures/fake-payrelay`), started as a pair with
    /// `extra` in its env file.
    fn fake_pair(extra: &str, envelope: bool) -> Backend {
        let compose_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
        let env_file = std::env::temp_dir().join(format!("rinha-lab-fake-{}.env", unique()));
        fs::write(&env_file, format!("FAKE_MARK=m{}\n{extra}\n", unique())).expect("env file");
        let spec = BackendSpec {
            payrelay: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fake-payrelay"
            )),
            api_port: 0,
            default_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            fallback_addr: SocketAddr::from(([127, 0, 0, 1], 2)),
            env_file: Some(env_file.clone()),
            envelope: envelope.then(|| PathBuf::from(compose_file)),
        };
        let backend = Backend::start(&spec).expect("fake pair");
        let _ = fs::remove_file(&env_file);
        backend
    }

    /// The `started` lines an instance's log holds once it has `count` of them (polled with a
    /// deadline; the stand-in writes its line as it starts).
    fn started_lines(backend: &Backend, name: &str, count: usize) -> Vec<String> {
        let log = backend.log_dir().join(format!("payrelay-{name}.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<String> =
                text.lines().filter(|l| l.starts_with("started ")).map(str::to_owned).collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(Instant::now() < deadline, "{name}: {count} starts expected in {text:?}");
            thread::sleep(EXIT_POLL);
        }
    }

    /// A `started` line without its pid: what must be identical across a restart.
    fn without_pid(line: &str) -> String {
        line.split(' ').filter(|word| !word.starts_with("pid=")).collect::<Vec<_>>().join(" ")
    }

    /// Goal: one instance can be SIGKILLed and started again with exactly its first command and
    /// environment (same shared port, same private peer port, same env-file values), inside the
    /// envelope when one is applied, while the other runs on; a running instance is not started
    /// twice; `terminate` then reports each clean exit. Method: a pair of `fake-payrelay`
    /// scripts that log their environment; compare the log lines of both starts of B, and read
    /// the new process's cgroup membership from `/proc`.
    #[test]
    fn kill_and_restart_one_instance_then_terminate() {
        let mut backend = fake_pair("", true);
        let first_a = started_lines(&backend, "a", 1);
        let first_b = started_lines(&backend, "b", 1);
        let (peer_a, peer_b) = (backend.peer_addr("a").unwrap(), backend.peer_addr("b").unwrap());
        assert_ne!(peer_a, peer_b);
        assert!(first_a[0].contains(&format!("PEER_BIND_ADDR={peer_a} PEER_ADDR={peer_b}")));
        assert!(first_b[0].contains(&format!("PEER_BIND_ADDR={peer_b} PEER_ADDR={peer_a}")));
        assert_eq!(backend.peer_addr("c"), None);
        let pids = backend.pids();
        assert_eq!(pids.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["a", "b"]);
        assert!(backend.rss_mb().iter().all(|(_, rss)| rss.is_some_and(|mb| mb > 0.0)));

        assert!(backend.restart("a").unwrap_err().contains("still running"));
        let killed = backend.kill("b").expect("kill b");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed), Some(libc::SIGKILL));
        assert!(backend.exited().is_some_and(|why| why.contains("payrelay b")));
        assert_eq!(backend.rss_mb()[1], ("b", None));
        assert!(backend.rss_mb()[0].1.is_some(), "a runs on");

        let new_pid = backend.restart("b").expect("restart b");
        assert_ne!(new_pid, pids[1].1);
        assert_eq!(backend.pids()[1], ("b", new_pid));
        let both_b = started_lines(&backend, "b", 2);
        assert_eq!(without_pid(&both_b[1]), without_pid(&both_b[0]), "same command and env");
        assert!(both_b[1].contains(&format!("pid={new_pid}")));
        if let Some(envelope) = &backend.instances[1].envelope {
            let cgroups = fs::read_to_string(format!("/proc/{new_pid}/cgroup")).unwrap();
            for dir in &envelope.dirs {
                let name = dir.file_name().unwrap().to_str().unwrap();
                assert!(cgroups.contains(name), "{name} not in {cgroups}");
            }
        } else {
            eprintln!("envelope not applied ({}): membership not checked", backend.envelope_note());
        }
        assert_eq!(backend.exited(), None);

        let endings = backend.terminate(Duration::from_secs(5));
        assert_eq!(endings.iter().map(|t| t.name).collect::<Vec<_>>(), ["a", "b"]);
        for ending in &endings {
            let status = ending.status.as_ref().expect("exits by itself");
            assert!(status.success(), "{}: {status}", ending.name);
            assert!(ending.after < Duration::from_secs(5));
        }
        backend.keep_logs(false);
    }

    /// Goal: `terminate` does not wait forever for an instance that ignores SIGTERM: after the
    /// grace it is SIGKILLed and reported as an error; an instance that had already exited is
    /// reported as such, not as a clean exit. Method: the stand-in with SIGTERM ignored.
    #[test]
    fn terminate_kills_after_the_grace() {
        let mut backend = fake_pair("FAKE_IGNORE_TERM=1", false);
        started_lines(&backend, "a", 1);
        started_lines(&backend, "b", 1);
        backend.kill("a").expect("kill a");
        let grace = Duration::from_millis(300);
        let endings = backend.terminate(grace);
        let a = endings[0].status.as_ref().unwrap_err();
        assert!(a.contains("had exited before SIGTERM"), "{a}");
        let b = endings[1].status.as_ref().unwrap_err();
        assert!(b.contains("killed"), "{b}");
        assert!(endings[1].after >= grace, "{:?}", endings[1].after);
        assert!(backend.exited().is_some());
        backend.keep_logs(false);
    }
}
