//! Configuration: every knob is one environment variable, parsed once at start, logged once.
//!
//! Names carry their unit last (`PROCESSOR_TIMEOUT_MS`). Defaults are the named consts below;
//! `tuning/README.md` documents each one, and a test keeps that document and this file in step.

use std::{
    cell::RefCell,
    fmt,
    net::{SocketAddr, ToSocketAddrs},
    time::Duration,
};

/// Default API address: the contest calls port 9999.
pub const API_BIND_ADDR_DEFAULT: &str = "0.0.0.0:9999";
/// Default URL of the cheaper processor (the lab's emulator port).
pub const PROCESSOR_DEFAULT_URL_DEFAULT: &str = "http://127.0.0.1:8001";
/// Default URL of the dearer processor.
pub const PROCESSOR_FALLBACK_URL_DEFAULT: &str = "http://127.0.0.1:8002";
/// io_uring submission queue entries per core: 1024 covers a core's in-flight forwards plus
/// its client connections' reads and writes without the queue filling between two enters.
pub const IO_URING_ENTRIES_DEFAULT: u32 = 1024;
/// Accept backlog per listener: the load ramps to ~600 new connections in a burst at start.
pub const LISTEN_BACKLOG_DEFAULT: i32 = 4096;
/// Queued payments per core before `POST /payments` answers 503. At the contest's peak
/// (~600 payments/s for the whole deployment) this is over a minute of arrivals for one core:
/// enough to ride out both processors failing for the longest outage seen, while a bounded
/// queue (≈100 bytes a payment, 6 MB at most) keeps memory far under the envelope.
pub const QUEUE_LEN_MAX_DEFAULT: usize = 65_536;
/// Forwarding tasks per core: enough to keep both processors at their in-flight limit.
pub const DISPATCH_INFLIGHT_MAX_DEFAULT: usize = 768;
/// Requests in flight per core at one processor. A processor takes 800 in progress (plus 500
/// queued, then 429) for everyone: two instances of one core each stay under it.
pub const PROCESSOR_INFLIGHT_MAX_DEFAULT: usize = 384;
/// Cap on the per-attempt deadline to a processor (see `PROCESSOR_TIMEOUT_MARGIN_MS`).
pub const PROCESSOR_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// Per-attempt deadline = planned delay + this margin (capped by `PROCESSOR_TIMEOUT_MS`). A
/// premature timeout turns a payment the processor will store into an unknown one, which our
/// ledger learns of only on a later retry: a window in which the books disagree. So the
/// margin covers the largest jump in delay the contest makes (0 → 5000 ms) with room to spare.
pub const PROCESSOR_TIMEOUT_MARGIN_MS_DEFAULT: u64 = 6_000;
/// How far past its expected answer an attempt must be before its processor is presumed
/// slower than planned (see `dispatch`, *Delay jumps*). Above the jitter of a healthy answer
/// (a CFS-throttled core stalls ~25 ms per 100 ms period), and small, because the payments sent
/// before the jump shows are the ones whose books can differ.
pub const OVERDUE_MARGIN_MS_DEFAULT: u64 = 150;
/// The delay planned for a processor while one of its attempts is overdue, until news of its
/// real delay: the largest the contest sets, so no payment sent meanwhile lands late.
pub const OVERDUE_PLAN_DELAY_MS_DEFAULT: u64 = 5_000;
/// Fee of the default processor, in parts per million (the published rules: 5%).
pub const FEE_DEFAULT_PPM_DEFAULT: u64 = 50_000;
/// Fee of the fallback processor, in parts per million (the published rules: 15%).
pub const FEE_FALLBACK_PPM_DEFAULT: u64 = 150_000;
/// Expected test time left for a payment arriving now. Under the contest's linear ramp a
/// payment arrives on average at 2/3 of the test, so a third of a 300 s run remains.
pub const LAG_HORIZON_MS_DEFAULT: u64 = 100_000;
/// Length of a test run, counted from `POST /purge-payments` (0 = unknown). The contest's
/// final ran 300 s; near the end, a slow processor's delay becomes a certain loss.
pub const TEST_DURATION_MS_DEFAULT: u64 = 0;
/// Health poll interval per processor. The endpoint allows one call per 5 s for everyone.
pub const HEALTH_POLL_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Refusals in a row that open a core's breaker: fewer reacts to noise, more wastes a
/// processor's delay on payments that will be refused.
pub const BREAKER_FAILURES_TO_OPEN_DEFAULT: u32 = 3;
/// While a breaker is open, one payment probes the processor this often.
pub const BREAKER_PROBE_INTERVAL_MS_DEFAULT: u64 = 200;
/// On SIGTERM, how long the instance may take to forward what it holds before it exits.
pub const DRAIN_DEADLINE_MS_DEFAULT: u64 = 10_000;
/// Pause after both processors refused a payment, before trying again.
pub const RETRY_BACKOFF_MS_DEFAULT: u64 = 100;
/// Deadline for one call to the peer instance over the private link (loopback, answered in
/// well under a millisecond). Half of `peer::PEER_CALLS_BUDGET`, so that a summary whose first
/// call fails still has time for its retry within the contest client's 1.5 s.
pub const PEER_TIMEOUT_MS_DEFAULT: u64 = 500;
/// Largest request head (request line plus headers). The contest's are ~150 bytes.
pub const REQUEST_HEAD_BYTES_MAX_DEFAULT: usize = 8 * 1024;
/// Largest request body. A payment is ~70 bytes.
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: usize = 4 * 1024;
/// Open client connections per core; beyond it a new connection is closed at once. Each costs
/// a descriptor and ~6 KB (buffers and task): 16384 is ~100 MB at worst, and leaves room
/// under compose's `nofile` 65536 for the processor connections.
pub const CONNECTIONS_MAX_DEFAULT: usize = 16_384;
/// A connection that completes no request and receives no response for this long is closed
/// (a partial request gets 408 first). The contest's clients send a request every ~1 s on
/// each connection; a stalled or dribbling client (slowloris) holds its descriptor no longer.
pub const CONNECTION_IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// Which io driver each core runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring when the kernel and seccomp allow it, else epoll.
    Auto,
    /// io_uring or fail at start.
    IoUring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

impl IoDriver {
    /// The value as written in `IO_DRIVER`.
    pub fn name(self) -> &'static str {
        match self {
            IoDriver::Auto => "auto",
            IoDriver::IoUring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

/// The whole configuration of one instance. Built once in `main`, then shared read-only.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address every core binds with `SO_REUSEPORT` for the public API.
    pub api_bind_addr: SocketAddr,
    /// Where this instance serves the private peer link; `None` = no peer link served.
    pub peer_bind_addr: Option<SocketAddr>,
    /// The peer instance's private link; `None` = this instance is alone.
    pub peer_addr: Option<SocketAddr>,
    /// Base URL of the default processor (`http://host:port`).
    pub processor_default_url: String,
    /// Base URL of the fallback processor.
    pub processor_fallback_url: String,
    /// Worker cores; 0 = the CPUs this process may really use (cpuset and CFS quota).
    pub worker_count: usize,
    /// Pin each worker to one CPU.
    pub worker_pin: bool,
    /// Index of the first CPU to pin to; a second instance on the same box starts after the
    /// first one's workers so that the two never share a CPU.
    pub worker_cpu_first: usize,
    /// io driver choice.
    pub io_driver: IoDriver,
    /// io_uring submission queue entries per core.
    pub io_uring_entries: u32,
    /// Accept backlog of each listener.
    pub listen_backlog: i32,
    /// Queued payments per core before 503.
    pub queue_len_max: usize,
    /// Forwarding tasks per core.
    pub dispatch_inflight_max: usize,
    /// Requests in flight per core at one processor.
    pub processor_inflight_max: usize,
    /// Cap on the per-attempt deadline to a processor.
    pub processor_timeout_ms: u64,
    /// Per-attempt deadline above the planned delay.
    pub processor_timeout_margin_ms: u64,
    /// How late past its expected answer an attempt makes its processor overdue.
    pub overdue_margin_ms: u64,
    /// Delay planned for an overdue processor until its real delay is known.
    pub overdue_plan_delay_ms: u64,
    /// Default processor's fee, parts per million.
    pub fee_default_ppm: u64,
    /// Fallback processor's fee, parts per million.
    pub fee_fallback_ppm: u64,
    /// Expected test time left for a payment arriving now (routing's lag risk).
    pub lag_horizon_ms: u64,
    /// Test length after a purge (0 = unknown).
    pub test_duration_ms: u64,
    /// Health poll interval per processor (at least 5000: the endpoint's limit).
    pub health_poll_interval_ms: u64,
    /// Refusals in a row that open a breaker.
    pub breaker_failures_to_open: u32,
    /// Probe interval of an open breaker.
    pub breaker_probe_interval_ms: u64,
    /// Drain deadline on SIGTERM.
    pub drain_deadline_ms: u64,
    /// Pause after both processors refused.
    pub retry_backoff_ms: u64,
    /// Deadline of one peer call.
    pub peer_timeout_ms: u64,
    /// Largest request head accepted.
    pub request_head_bytes_max: usize,
    /// Largest request body accepted.
    pub request_body_bytes_max: usize,
    /// Open client connections per core.
    pub connections_max: usize,
    /// Idle (or stalled) connections are closed after this long.
    pub connection_idle_timeout_ms: u64,
    /// Every variable as read (or defaulted), for the start-up log line.
    effective: Vec<(&'static str, String)>,
}

/// Every environment variable the server reads, in the order of `Config`'s fields.
pub const ENV_VARS: &[&str] = &[
    "API_BIND_ADDR",
    "PEER_BIND_ADDR",
    "PEER_ADDR",
    "PROCESSOR_DEFAULT_URL",
    "PROCESSOR_FALLBACK_URL",
    "WORKER_COUNT",
    "WORKER_PIN",
    "WORKER_CPU_FIRST",
    "IO_DRIVER",
    "IO_URING_ENTRIES",
    "LISTEN_BACKLOG",
    "QUEUE_LEN_MAX",
    "DISPATCH_INFLIGHT_MAX",
    "PROCESSOR_INFLIGHT_MAX",
    "PROCESSOR_TIMEOUT_MS",
    "PROCESSOR_TIMEOUT_MARGIN_MS",
    "OVERDUE_MARGIN_MS",
    "OVERDUE_PLAN_DELAY_MS",
    "FEE_DEFAULT",
    "FEE_FALLBACK",
    "LAG_HORIZON_MS",
    "TEST_DURATION_MS",
    "HEALTH_POLL_INTERVAL_MS",
    "BREAKER_FAILURES_TO_OPEN",
    "BREAKER_PROBE_INTERVAL_MS",
    "DRAIN_DEADLINE_MS",
    "RETRY_BACKOFF_MS",
    "PEER_TIMEOUT_MS",
    "REQUEST_HEAD_BYTES_MAX",
    "REQUEST_BODY_BYTES_MAX",
    "CONNECTIONS_MAX",
    "CONNECTION_IDLE_TIMEOUT_MS",
];

/// A configuration error: which variable, what it held, what was expected.
#[derive(Debug)]
pub struct ConfigError {
    name: &'static str,
    value: String,
    expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: expected {}", self.name, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env { lookup: &lookup, effective: RefCell::new(Vec::new()) };
        let mut config = Config {
            api_bind_addr: env.addr("API_BIND_ADDR", API_BIND_ADDR_DEFAULT)?,
            peer_bind_addr: env.addr_opt("PEER_BIND_ADDR")?,
            peer_addr: env.addr_opt("PEER_ADDR")?,
            processor_default_url: env
                .url("PROCESSOR_DEFAULT_URL", PROCESSOR_DEFAULT_URL_DEFAULT)?,
            processor_fallback_url: env
                .url("PROCESSOR_FALLBACK_URL", PROCESSOR_FALLBACK_URL_DEFAULT)?,
            worker_count: env.number("WORKER_COUNT", 0, 0, 256)?,
            worker_pin: env.flag("WORKER_PIN", true)?,
            worker_cpu_first: env.number("WORKER_CPU_FIRST", 0, 0, 4096)?,
            io_driver: env.driver("IO_DRIVER")?,
            io_uring_entries: env.number(
                "IO_URING_ENTRIES",
                IO_URING_ENTRIES_DEFAULT,
                256,
                32_768,
            )?,
            listen_backlog: env.number("LISTEN_BACKLOG", LISTEN_BACKLOG_DEFAULT, 1, 65_535)?,
            queue_len_max: env.number("QUEUE_LEN_MAX", QUEUE_LEN_MAX_DEFAULT, 1, 10_000_000)?,
            dispatch_inflight_max: env.number(
                "DISPATCH_INFLIGHT_MAX",
                DISPATCH_INFLIGHT_MAX_DEFAULT,
                1,
                100_000,
            )?,
            processor_inflight_max: env.number(
                "PROCESSOR_INFLIGHT_MAX",
                PROCESSOR_INFLIGHT_MAX_DEFAULT,
                1,
                100_000,
            )?,
            processor_timeout_ms: env.number(
                "PROCESSOR_TIMEOUT_MS",
                PROCESSOR_TIMEOUT_MS_DEFAULT,
                1,
                600_000,
            )?,
            processor_timeout_margin_ms: env.number(
                "PROCESSOR_TIMEOUT_MARGIN_MS",
                PROCESSOR_TIMEOUT_MARGIN_MS_DEFAULT,
                0,
                600_000,
            )?,
            overdue_margin_ms: env.number(
                "OVERDUE_MARGIN_MS",
                OVERDUE_MARGIN_MS_DEFAULT,
                1,
                600_000,
            )?,
            overdue_plan_delay_ms: env.number(
                "OVERDUE_PLAN_DELAY_MS",
                OVERDUE_PLAN_DELAY_MS_DEFAULT,
                0,
                600_000,
            )?,
            fee_default_ppm: env.fraction_ppm("FEE_DEFAULT", FEE_DEFAULT_PPM_DEFAULT)?,
            fee_fallback_ppm: env.fraction_ppm("FEE_FALLBACK", FEE_FALLBACK_PPM_DEFAULT)?,
            lag_horizon_ms: env.number("LAG_HORIZON_MS", LAG_HORIZON_MS_DEFAULT, 1, 86_400_000)?,
            test_duration_ms: env.number(
                "TEST_DURATION_MS",
                TEST_DURATION_MS_DEFAULT,
                0,
                86_400_000,
            )?,
            health_poll_interval_ms: env.number(
                "HEALTH_POLL_INTERVAL_MS",
                HEALTH_POLL_INTERVAL_MS_DEFAULT,
                5_000,
                3_600_000,
            )?,
            breaker_failures_to_open: env.number(
                "BREAKER_FAILURES_TO_OPEN",
                BREAKER_FAILURES_TO_OPEN_DEFAULT,
                1,
                1_000,
            )?,
            breaker_probe_interval_ms: env.number(
                "BREAKER_PROBE_INTERVAL_MS",
                BREAKER_PROBE_INTERVAL_MS_DEFAULT,
                1,
                60_000,
            )?,
            drain_deadline_ms: env.number(
                "DRAIN_DEADLINE_MS",
                DRAIN_DEADLINE_MS_DEFAULT,
                0,
                3_600_000,
            )?,
            retry_backoff_ms: env.number(
                "RETRY_BACKOFF_MS",
                RETRY_BACKOFF_MS_DEFAULT,
                1,
                60_000,
            )?,
            peer_timeout_ms: env.number("PEER_TIMEOUT_MS", PEER_TIMEOUT_MS_DEFAULT, 1, 60_000)?,
            request_head_bytes_max: env.number(
                "REQUEST_HEAD_BYTES_MAX",
                REQUEST_HEAD_BYTES_MAX_DEFAULT,
                256,
                1 << 20,
            )?,
            request_body_bytes_max: env.number(
                "REQUEST_BODY_BYTES_MAX",
                REQUEST_BODY_BYTES_MAX_DEFAULT,
                128,
                1 << 20,
            )?,
            connections_max: env.number("CONNECTIONS_MAX", CONNECTIONS_MAX_DEFAULT, 16, 1 << 20)?,
            connection_idle_timeout_ms: env.number(
                "CONNECTION_IDLE_TIMEOUT_MS",
                CONNECTION_IDLE_TIMEOUT_MS_DEFAULT,
                100,
                86_400_000,
            )?,
            effective: Vec::new(),
        };
        let mut effective = env.effective.into_inner();
        let position = |name: &str| ENV_VARS.iter().position(|v| *v == name).unwrap_or(usize::MAX);
        effective.sort_by_key(|(name, _)| position(name));
        if config.worker_count == 0 {
            effective.push(("WORKER_COUNT(auto)", config.workers().to_string()));
        }
        config.effective = effective;
        Ok(config)
    }

    /// The worker count this process runs: the configured one, or every CPU it may use.
    /// `available_parallelism` reads the affinity mask and the cgroup CPU quota (v1 and v2),
    /// which `nproc` and `core_affinity` do not.
    pub fn workers(&self) -> usize {
        if self.worker_count > 0 {
            return self.worker_count;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Per-attempt deadline for a processor whose planned delay is `delay_ms`.
    pub fn processor_timeout(&self, delay_ms: u64) -> Duration {
        let ms = delay_ms.saturating_add(self.processor_timeout_margin_ms);
        Duration::from_millis(ms.min(self.processor_timeout_ms))
    }

    /// Backoff after both processors refused.
    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }

    /// Deadline of one peer call.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }

    /// See `OVERDUE_MARGIN_MS`.
    pub fn overdue_margin(&self) -> Duration {
        Duration::from_millis(self.overdue_margin_ms)
    }
}

impl fmt::Display for Config {
    /// The single start-up log line: every variable's effective value, in `ENV_VARS` order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.effective.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={value}")?;
        }
        Ok(())
    }
}

/// Typed access to one lookup function; empty values count as unset.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// What each getter settled on, for the log line.
    effective: RefCell<Vec<(&'static str, String)>>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn note<T: fmt::Display>(&self, name: &'static str, value: T) -> T {
        self.effective.borrow_mut().push((name, value.to_string()));
        value
    }

    /// A fraction such as `0.05`, as parts per million, up to 6 decimals, in [0, 1].
    fn fraction_ppm(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(name) else {
            self.note(name, format!("{}.{:06}", default / 1_000_000, default % 1_000_000));
            return Ok(default);
        };
        let bad = || ConfigError { name, value: raw.clone(), expected: "a fraction such as 0.05" };
        let (units, frac) = raw.split_once('.').unwrap_or((&raw, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if units.is_empty() || !digits_ok(units) || !digits_ok(frac) || frac.len() > 6 {
            return Err(bad());
        }
        let units: u64 = units.parse().map_err(|_| bad())?;
        let frac_ppm: u64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
        let ppm =
            units.checked_mul(1_000_000).and_then(|u| u.checked_add(frac_ppm)).ok_or_else(bad)?;
        if ppm > 1_000_000 {
            return Err(bad());
        }
        self.note(name, &raw);
        Ok(ppm)
    }

    fn number<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(raw) = self.get(name) else {
            return Ok(self.note(name, default));
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(self.note(name, v)),
            _ => Err(ConfigError { name, value: raw, expected: "an integer within its range" }),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let value = match self.get(name).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(raw) => {
                return Err(ConfigError { name, value: raw.into(), expected: "1 or 0" });
            }
        };
        self.note(name, u8::from(value));
        Ok(value)
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        parse_addr(name, &raw).map(|addr| self.note(name, addr))
    }

    fn addr_opt(&self, name: &'static str) -> Result<Option<SocketAddr>, ConfigError> {
        let addr = self.get(name).map(|raw| parse_addr(name, &raw)).transpose()?;
        self.note(name, addr.map_or_else(|| "-".to_owned(), |a| a.to_string()));
        Ok(addr)
    }

    fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        match crate::http::Endpoint::parse_url(&raw) {
            Some(_) => Ok(self.note(name, raw)),
            None => Err(ConfigError { name, value: raw, expected: "http://host:port" }),
        }
    }

    fn driver(&self, name: &'static str) -> Result<IoDriver, ConfigError> {
        let driver = match self.get(name).as_deref() {
            None | Some("auto") => IoDriver::Auto,
            Some("io_uring" | "iouring" | "uring") => IoDriver::IoUring,
            Some("epoll" | "legacy") => IoDriver::Epoll,
            Some(raw) => {
                let expected = "auto, io_uring or epoll";
                return Err(ConfigError { name, value: raw.into(), expected });
            }
        };
        self.note(name, driver.name());
        Ok(driver)
    }
}

/// A socket address, resolving a host name once at start (never on the hot path).
fn parse_addr(name: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).ok_or_else(|| ConfigError {
        name,
        value: raw.into(),
        expected: "host:port",
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    /// Goal: an empty environment gives the documented defaults; a standalone instance.
    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api_bind_addr.port(), 9999);
        assert_eq!(c.peer_addr, None);
        assert_eq!(c.queue_len_max, QUEUE_LEN_MAX_DEFAULT);
        assert_eq!(c.io_driver, IoDriver::Auto);
        assert!(c.workers() >= 1);
    }

    /// Goal: bad values are rejected with the variable's name, never silently defaulted.
    #[test]
    fn rejects_bad_values() {
        let err = config(&[("QUEUE_LEN_MAX", "0")]).unwrap_err();
        assert!(err.to_string().starts_with("QUEUE_LEN_MAX="), "{err}");
        assert!(config(&[("WORKER_PIN", "maybe")]).is_err());
        assert!(config(&[("IO_DRIVER", "kqueue")]).is_err());
        assert!(config(&[("PEER_ADDR", "nowhere")]).is_err());
        assert!(config(&[("PROCESSOR_DEFAULT_URL", "https://x:1")]).is_err());
        assert_eq!(config(&[("IO_DRIVER", "epoll")]).unwrap().io_driver, IoDriver::Epoll);
    }

    /// Goal: the log line names every variable, so nothing configured is invisible.
    #[test]
    fn log_line_names_every_variable() {
        let line = config(&[]).unwrap().to_string();
        for name in ENV_VARS {
            assert!(line.contains(&format!("{name}=")), "{name} missing from {line}");
        }
    }
}
