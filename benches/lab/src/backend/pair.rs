//! The running pair: both instances started on one API port with a crosswise peer link, then
//! watched, killed, restarted and stopped, one at a time or together.

use std::{
    collections::HashSet,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use super::{
    envelope::{CgroupMemory, Envelope},
    launch::{BackendSpec, Launch, free_port, read_env_file},
    procfs::{Usage, listening_inodes, read_rss_mb, read_usage, socket_inodes},
    ready::{READY_INTERVAL_LOCAL, READY_TRIES_LOCAL, wait_ready},
    shared::{EXIT_POLL, Ending, sigterm, unique, wait_or_kill},
};

/// Where the journals live, as compose keeps them: on a tmpfs (its `journal` volume is one,
/// kept mounted by the network's holder), in a folder of this run's under `/dev/shm`; in the
/// run's own folder where `/dev/shm` is not a tmpfs. An ext4 file's `pwrite` stalls the core
/// now and then on the file system's journal (measured: a preview's p99 1.42 ms on ext4 here,
/// 0.75 ms on tmpfs), so a lab on disk would measure a deployment that does not exist.
fn journal_root(log_dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    match (is_tmpfs(shm), log_dir.file_name()) {
        (true, Some(run)) => shm.join(run),
        _ => log_dir.to_owned(),
    }
}

/// Whether `path` is on a tmpfs.
fn is_tmpfs(path: &Path) -> bool {
    /// `TMPFS_MAGIC` from `linux/magic.h`.
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(text) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed `statfs` is a valid value for the kernel to fill in.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `text` is a NUL-terminated path and `stat` a valid `statfs` to write into.
    let found = unsafe { libc::statfs(text.as_ptr(), &mut stat) } == 0;
    found && stat.f_type as i64 == TMPFS_MAGIC
}

/// Instance `name`'s journal folder under `root` (created), and its peer's, as compose gives
/// each service its own path on a shared volume.
fn journal_env(root: &Path, name: &str) -> Result<Vec<(String, String)>, String> {
    let folder = |name: &str| root.join(format!("journal-{name}"));
    let (own, peer) = (folder(name), folder(if name == "a" { "b" } else { "a" }));
    fs::create_dir_all(&own).map_err(|e| format!("{}: {e}", own.display()))?;
    Ok(vec![
        ("JOURNAL_DIR".to_owned(), own.display().to_string()),
        ("PEER_JOURNAL_DIR".to_owned(), peer.display().to_string()),
    ])
}

/// How long a child gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// How long the kernel may take to release a dead instance's listening sockets. With io_uring
/// the ring is torn down by a kernel worker after the process is reaped, and until then the
/// sockets it references keep listening (measured: 5-15 ms after `wait` returns): the kernel
/// completes handshakes into them and resets those connections when they finally close.
const SOCKETS_RELEASE_MAX: Duration = Duration::from_secs(5);

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
    /// Where the journals are ([`journal_root`]): removed at drop when it is not `log_dir`.
    journal_root: PathBuf,
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
        let (envelopes, envelope_note) = envelopes_for(spec);
        let journal_root = journal_root(&log_dir);
        let mut backend = Backend {
            instances: Vec::new(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], api_port)),
            log_dir,
            envelope_note,
            keep_logs: true,
            journal_root,
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
            env.extend(spec.env.iter().cloned());
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
            if spec.journal {
                env.extend(journal_env(&backend.journal_root, name)?);
            }
            let launch = Launch { program: spec.payrelay.clone(), env };
            // Started inside its envelope, as compose starts a container: payrelay reads its
            // memory limit at start.
            let (child, envelope) = match envelope {
                Some(envelope) => match launch.spawn(&log, &envelope.procs_files()) {
                    Ok(child) => (child, Some(envelope)),
                    Err(e) => {
                        backend.envelope_note = format!("joining the cgroup: {e}");
                        (launch.spawn(&log, &[])?, None)
                    }
                },
                None => (launch.spawn(&log, &[])?, None),
            };
            let peer_bind_addr = SocketAddr::from(([127, 0, 0, 1], own));
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

    /// What each instance's memory cgroup counts (`a`, `b`); `None` without the envelope, or
    /// when its files cannot be read.
    pub fn cgroup_memory(&self) -> Vec<(&'static str, Option<CgroupMemory>)> {
        let read = |i: &Instance| i.envelope.as_ref().and_then(|e| e.memory().ok());
        self.instances.iter().map(|i| (i.name, read(i))).collect()
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
        let status = self.kill_at_once(name)?;
        self.wait_sockets_released()?;
        Ok(status)
    }

    /// Kills instance `name` with SIGKILL and reaps it, and returns at once: its listening
    /// sockets may outlive it for a few milliseconds, as a supervisor that restarts it at once
    /// finds them ([`Backend::restart`] right after this is that supervisor).
    pub fn kill_at_once(&mut self, name: &str) -> Result<ExitStatus, String> {
        let instance = self.instance_mut(name)?;
        // An instance that already exited is simply reaped.
        let _ = instance.child.kill();
        instance.child.wait().map_err(|e| format!("payrelay {name}: wait: {e}"))
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
        let join = instance.envelope.as_ref().map(Envelope::procs_files).unwrap_or_default();
        // Outside the envelope it would not be the deployment we claim to run: no start then.
        let child = instance.launch.spawn(&instance.log, &join).map_err(|e| {
            format!("payrelay {name} not restarted: {e} (inside its envelope, if any)")
        })?;
        let pid = child.id();
        instance.child = child;
        Ok(pid)
    }

    /// Sends SIGTERM to every running instance at once, then waits up to `grace` for each to
    /// exit by itself, and reports how each ended. One still running after `grace` is
    /// SIGKILLed and reported as an `Err`. Unlike [`Backend::stop`] (3 s, then SIGKILL, nothing
    /// reported), this is for checking the shutdown itself; the instances stay known, so their
    /// logs are still named and [`Backend::restart`] works.
    pub fn terminate(&mut self, grace: Duration) -> Vec<Termination> {
        let signalled = Instant::now();
        let running: Vec<bool> =
            self.instances.iter_mut().map(|instance| sigterm(&mut instance.child)).collect();
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
            let status = match wait_or_kill(&mut instance.child, deadline) {
                Ending::Exited(status) => Ok(status),
                Ending::WaitFailed(e) => Err(format!("payrelay {name}: wait: {e}")),
                Ending::Killed => Err(format!(
                    "payrelay {name} still running {} ms after SIGTERM; killed",
                    grace.as_millis()
                )),
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
            sigterm(&mut instance.child);
        }
        let deadline = Instant::now() + TERM_GRACE;
        for instance in &mut self.instances {
            wait_or_kill(&mut instance.child, deadline);
        }
        for instance in self.instances.drain(..) {
            // One that cannot be removed yet is removed by its drop, at worst left empty.
            let _ = instance.envelope.map(Envelope::remove);
        }
    }
}

/// One envelope per instance (`None` where there is none), and why they are not applied (empty
/// when they are).
fn envelopes_for(spec: &BackendSpec) -> (Vec<Option<Envelope>>, String) {
    let (mut envelopes, envelope_note) = match &spec.envelope {
        Some(compose_file) => match Envelope::per_instance(compose_file) {
            Ok(envelopes) => (envelopes.into_iter().map(Some).collect(), String::new()),
            Err(e) => (Vec::new(), e),
        },
        None => (Vec::new(), "not requested".to_owned()),
    };
    envelopes.resize_with(2, || None);
    (envelopes, envelope_note)
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_logs {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
        // A tmpfs holds its files in memory: they go with the run.
        if self.journal_root != self.log_dir {
            let _ = fs::remove_dir_all(&self.journal_root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            env: Vec::new(),
            journal: false,
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
            // The compose file's 170MB, and what the stand-ins held.
            for (name, memory) in backend.cgroup_memory() {
                let memory = memory.unwrap_or_else(|| panic!("{name}: its memory cgroup"));
                assert_eq!(memory.limit_bytes, 170 << 20, "{name}");
                assert!(memory.usage_bytes > 0 && memory.usage_bytes < 170 << 20, "{name}");
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
