//! Shared rig for the end-to-end tests: the lab's emulated processors and two real payrelay
//! instances sharing one port (as the compose file runs them), a raw-bytes HTTP client, and
//! polling helpers with deadlines (never fixed sleeps). Each test binary uses what it needs.

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use payrelay::http::take_response;
use rinha_lab::{
    backend::{Backend, BackendSpec},
    emulator::{self, Emulator, EmulatorConfig, Which},
};

/// Longest any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(20);

/// The emulator and two instances, torn down on drop (the lab's types do the cleanup).
pub struct Rig {
    pub emulator: Emulator,
    pub backend: Backend,
}

impl Rig {
    pub fn start() -> Rig {
        Rig::start_with(&[])
    }

    /// Starts the rig with `extra` variables on top of the two-cores fixture.
    pub fn start_with(extra: &[(&str, &str)]) -> Rig {
        Rig::start_after(extra, |_| {})
    }

    /// Starts the emulator, hands it to `prepare` (to set delays or failures the instances
    /// must find when they start), then the instances with `extra` on top of the fixture, each
    /// with a journal of its own (as the deployment runs them).
    pub fn start_after(extra: &[(&str, &str)], prepare: impl FnOnce(&Emulator)) -> Rig {
        Rig::start_journaled(extra, true, prepare)
    }

    /// [`Rig::start_after`], with or without the instances' journals.
    pub fn start_journaled(
        extra: &[(&str, &str)],
        journal: bool,
        prepare: impl FnOnce(&Emulator),
    ) -> Rig {
        Rig::start_spec(extra, journal, None, prepare)
    }

    /// [`Rig::start_with`], each instance started inside a cgroup with the CPU and memory
    /// limits of `compose_file`'s payrelay services, as compose runs them, when the machine
    /// allows it (root, cgroups writable): `backend.envelope_applied()` says whether it did.
    pub fn start_enveloped(extra: &[(&str, &str)], compose_file: &Path) -> Rig {
        Rig::start_spec(extra, true, Some(compose_file.to_owned()), |_| {})
    }

    fn start_spec(
        extra: &[(&str, &str)],
        journal: bool,
        envelope: Option<PathBuf>,
        prepare: impl FnOnce(&Emulator),
    ) -> Rig {
        let emulator = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("emulator");
        prepare(&emulator);
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/two-cores.env");
        let mut env = std::fs::read_to_string(fixture).expect("fixture");
        for (key, value) in extra {
            env.push_str(&format!("\n{key}={value}\n"));
        }
        let env_file = std::env::temp_dir().join(format!(
            "payrelay-test-{}-{}.env",
            std::process::id(),
            unique_suffix()
        ));
        std::fs::write(&env_file, env).expect("env file");
        let spec = BackendSpec {
            payrelay: PathBuf::from(env!("CARGO_BIN_EXE_payrelay")),
            api_port: 0,
            default_addr: emulator.addr(Which::Default),
            fallback_addr: emulator.addr(Which::Fallback),
            env_file: Some(env_file.clone()),
            env: Vec::new(),
            journal,
            envelope,
        };
        let mut backend = Backend::start(&spec).expect("payrelay instances");
        let _ = std::fs::remove_file(&env_file);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if let Err(e) = runtime.block_on(backend.wait_ready()) {
            panic!("{}", backend.describe_failure(&e));
        }
        Rig { emulator, backend }
    }

    pub fn api(&self) -> SocketAddr {
        self.backend.api_addr()
    }

    /// The process id of instance `name` (`a` or `b`).
    pub fn pid(&self, name: &str) -> u32 {
        self.backend.pids().into_iter().find(|(n, _)| *n == name).expect("instance").1
    }
}

impl Drop for Rig {
    /// Keeps the instances' logs only when the test failed, and names them.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.backend.describe_failure("test failed"));
        } else {
            self.backend.keep_logs(false);
        }
    }
}

/// A blocking keep-alive client speaking raw bytes, so tests control framing exactly.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).expect("connect")
    }

    /// Connects, or says why not.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, buf: Vec::new() })
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write");
    }

    /// Reads one response; `None` if the server closed the connection first.
    pub fn read(&mut self) -> Option<Reply> {
        self.try_read().ok()
    }

    /// Reads one response, or says why there is none.
    pub fn try_read(&mut self) -> Result<Reply, String> {
        loop {
            // payrelay's own reader: Content-Length and chunked (the processors') bodies.
            match take_response(&mut self.buf, false) {
                Ok(Some(response)) => {
                    let body = String::from_utf8_lossy(&self.buf[response.body]).into_owned();
                    self.buf.drain(..response.len);
                    return Ok(Reply { status: response.status, body });
                }
                Ok(None) => {}
                Err(_) => return Err(format!("unreadable response {:?}", self.buf)),
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed before a complete response".into()),
                Err(e) => return Err(format!("read: {e}")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends one request and reads its response, or says why there is none.
    pub fn try_request(&mut self, raw: &[u8]) -> Result<Reply, String> {
        self.stream.write_all(raw).map_err(|e| format!("write: {e}"))?;
        self.try_read()
    }

    pub fn request(&mut self, raw: &[u8]) -> Reply {
        self.try_request(raw).expect("a response")
    }

    pub fn get(&mut self, path: &str) -> Reply {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
    }

    pub fn post(&mut self, path: &str, body: &str) -> Reply {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.request(raw.as_bytes())
    }

    /// `POST /payments` of a 19.90 payment with correlationId `id`.
    pub fn try_post_payment(&mut self, id: &str) -> Result<Reply, String> {
        let body = payment_json(id, "19.90");
        let raw = format!(
            "POST /payments HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.try_request(raw.as_bytes())
    }

    pub fn post_payment(&mut self, id: &str) -> Reply {
        self.try_post_payment(id).expect("a response")
    }

    /// Whether the server has closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

pub fn payment_json(id: &str, amount: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount}}}"#)
}

pub fn uuid(i: u32) -> String {
    format!("{i:08x}-7d26-4d9d-aa19-4dc1c7cf60b3")
}

/// Counts and cents per processor parsed from our summary JSON.
pub fn parse_summary(body: &str) -> [(u64, u64); 2] {
    let value: serde_json::Value = serde_json::from_str(body).expect("summary JSON");
    ["default", "fallback"].map(|name| {
        let count = value[name]["totalRequests"].as_u64().expect("totalRequests");
        // Amounts must have exactly two decimals: read the text, not a float.
        let side = &body[body.find(&format!("\"{name}\"")).expect(name)..];
        let amount = side.split("\"totalAmount\":").nth(1).expect("totalAmount");
        let amount = &amount[..amount.find(['}', ',']).expect("end of amount")];
        let (units, cents) = amount.split_once('.').expect("two decimals");
        assert_eq!(cents.len(), 2, "amount {amount} must have two decimals");
        (count, units.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap())
    })
}

pub fn emulator_totals(emulator: &Emulator, from: Option<i64>, to: Option<i64>) -> [(u64, u64); 2] {
    [Which::Default, Which::Fallback].map(|which| {
        let s = emulator.summary(which, from, to);
        (s.total_requests, s.total_cents as u64)
    })
}

/// Polls until `done`, failing the test after [`DEADLINE`]; returns how long it took.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
    start.elapsed()
}

/// The value of the sample line starting with `series` (name and labels, exactly as rendered).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// An instance's total of a series over its cores: the sum of every sample line of `series`'s
/// family whose labels, less `core`, are `series`'s (e.g. `payrelay_attempts_total{processor=
/// "default",outcome="stored"}`, or a bare name). Fails if no core has it. The exposition has no
/// `core="all"` series: a scraper sums the per-core ones, as here.
pub fn metric_total(text: &str, series: &str) -> f64 {
    let (family, labels) = match series.split_once('{') {
        Some((family, rest)) => (family, rest.strip_suffix('}').expect("labels close")),
        None => (series, ""),
    };
    let samples: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?.strip_prefix("{core=\"")?;
            let (core, rest) = rest.split_once('"')?;
            core.parse::<usize>().ok()?;
            let rest = match labels {
                "" => rest.strip_prefix("} ")?,
                labels => rest.strip_prefix(',')?.strip_prefix(labels)?.strip_prefix("} ")?,
            };
            Some(rest.parse().unwrap_or_else(|e| panic!("{line}: {e}")))
        })
        .collect();
    assert!(!samples.is_empty(), "no {series} on any core in:\n{text}");
    samples.iter().sum()
}

/// The instance behind a connection: `/health` names its process id.
pub fn instance_of(client: &mut Client) -> u64 {
    let reply = client.get("/health");
    assert_eq!(reply.status, 200);
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    value["pid"].as_u64().expect("health names the instance's pid")
}

/// A per-process counter, so tests running in parallel never share a temp file.
pub fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One payrelay instance started by hand, with a peer address of the test's choosing (a fake
/// peer, or none), one unpinned core, and the emulator as its processors. Killed on drop.
pub struct Solo {
    child: std::process::Child,
    /// Its API address.
    pub api: SocketAddr,
}

impl Solo {
    /// Starts it and waits until `/health` answers.
    pub fn start(emulator: &Emulator, peer: Option<SocketAddr>) -> Solo {
        Solo::start_with(emulator, peer, &[])
    }

    /// [`Solo::start`], with `env` on top.
    pub fn start_with(emulator: &Emulator, peer: Option<SocketAddr>, env: &[(&str, &str)]) -> Solo {
        let port = || rinha_lab::backend::free_port().expect("a free port");
        let api = SocketAddr::from(([127, 0, 0, 1], port()));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payrelay"));
        command
            .env("API_BIND_ADDR", api.to_string())
            .env("PEER_BIND_ADDR", format!("127.0.0.1:{}", port()))
            .env("PROCESSOR_DEFAULT_URL", format!("http://{}", emulator.addr(Which::Default)))
            .env("PROCESSOR_FALLBACK_URL", format!("http://{}", emulator.addr(Which::Fallback)))
            .env("WORKER_COUNT", "1")
            .env("WORKER_PIN", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(peer) = peer {
            command.env("PEER_ADDR", peer.to_string());
        }
        command.envs(env.iter().copied());
        let child = command.spawn().expect("payrelay starts");
        let solo = Solo { child, api };
        wait_until("the instance to answer", || {
            Client::try_connect(api)
                .is_ok_and(|mut c| c.try_request(b"GET /health HTTP/1.1\r\n\r\n").is_ok())
        });
        solo
    }
}

impl Solo {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
