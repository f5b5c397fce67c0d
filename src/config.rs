//! Configuration: every knob is one environment variable, parsed once at start, logged once.
//!
//! Names carry their unit last (`PROCESSOR_TIMEOUT_MS`). One table (`knobs!`) gives each
//! variable its field, getter, default and the reason for it; `tuning/README.md` documents
//! each one, and a test keeps that document and this table in step.

use std::{
    cell::RefCell,
    fmt,
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    time::Duration,
};

use crate::journal::Fsync;

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

/// Declares the configuration from one table: each row is a field of [`Config`], its variable
/// (in [`ENV_VARS`], in row order), how it is read (an [`Env`] getter) and its default, so a
/// knob is one row here and one in `tuning/README.md` (`tests/tuning_doc.rs` compares the two,
/// defaults included).
macro_rules! knobs {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $getter:ident($name:literal $(, $arg:expr)*),)*) => {
        /// The whole configuration of one instance. Built once in `main`, then shared
        /// read-only. Each field's doc says what it is and why its default is what it is.
        #[derive(Clone, Debug)]
        pub struct Config {
            $($(#[$doc])* pub $field: $ty,)*
            /// Every variable as read (or defaulted), for the start-up log line.
            effective: Vec<(&'static str, String)>,
        }

        /// Every environment variable the server reads, in the order of `Config`'s fields.
        pub const ENV_VARS: &[&str] = &[$($name),*];

        impl Config {
            /// Every knob through `env`, in table order.
            fn read(env: &Env<'_>) -> Result<Config, ConfigError> {
                Ok(Config { $($field: env.$getter($name $(, $arg)*)?,)* effective: Vec::new() })
            }
        }
    };
}

knobs! {
    /// Address every core binds with `SO_REUSEPORT` for the public API: the contest calls
    /// port 9999.
    api_bind_addr: SocketAddr = addr("API_BIND_ADDR", "0.0.0.0:9999"),
    /// Where this instance serves the private peer link; `None` = no peer link served.
    peer_bind_addr: Option<SocketAddr> = addr_opt("PEER_BIND_ADDR"),
    /// The peer instance's private link; `None` = this instance is alone.
    peer_addr: Option<SocketAddr> = addr_opt("PEER_ADDR"),
    /// Base URL of the cheaper processor (`http://host:port`; by default the lab's emulator).
    processor_default_url: String = url("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001"),
    /// Base URL of the dearer processor.
    processor_fallback_url: String = url("PROCESSOR_FALLBACK_URL", "http://127.0.0.1:8002"),
    /// Worker cores; 0 = the CPUs this process may really use (cpuset and CFS quota).
    worker_count: usize = number("WORKER_COUNT", 0, 0, 256),
    /// Pin each worker to one CPU.
    worker_pin: bool = flag("WORKER_PIN", true),
    /// Index of the first CPU to pin to; a second instance on the same box starts after the
    /// first one's workers so that the two never share a CPU.
    worker_cpu_first: usize = number("WORKER_CPU_FIRST", 0, 0, 4096),
    /// io driver choice.
    io_driver: IoDriver = driver("IO_DRIVER"),
    /// io_uring submission queue entries per core: 1024 covers a core's in-flight forwards plus
    /// its client connections' reads and writes without the queue filling between two enters.
    io_uring_entries: u32 = number("IO_URING_ENTRIES", 1024, 256, 32_768),
    /// Accept backlog of each listener: the load ramps to ~600 new connections in a burst at
    /// start.
    listen_backlog: i32 = number("LISTEN_BACKLOG", 4096, 1, 65_535),
    /// Queued payments per core before `POST /payments` answers 503. At the contest's peak
    /// (~600 payments/s for the whole deployment) this is over a minute of arrivals for one
    /// core: enough to ride out both processors failing for the longest outage seen, while a
    /// bounded queue (48 bytes a payment, `cores::queue`: 3 MB at most) keeps memory far under
    /// the envelope.
    queue_len_max: usize = number("QUEUE_LEN_MAX", 65_536, 1, 10_000_000),
    /// Forwarding tasks per core: enough to keep both processors at their in-flight limit.
    dispatch_inflight_max: usize = number("DISPATCH_INFLIGHT_MAX", 768, 1, 100_000),
    /// Requests in flight per core at one processor. A processor takes 800 in progress (plus
    /// 500 queued, then 429) for everyone: two instances of one core each stay under it.
    processor_inflight_max: usize = number("PROCESSOR_INFLIGHT_MAX", 384, 1, 100_000),
    /// Forwards one core starts a second at most. In steady state the contest's arrivals (~300
    /// a second per instance at the peak) never meet it; a released backlog (thousands held for
    /// a processor that has just come back) does, and goes out over seconds at ~40 µs of CPU a
    /// forward (0.16 CPU at 4,000) instead of taking the instance's whole 0.74-CPU quota in one
    /// burst, which the kernel answers by throttling the core, POST answers included, for the
    /// rest of each 100 ms period.
    forwards_per_s_max: u64 = number("FORWARDS_PER_S_MAX", 4_000, 1, 1_000_000),
    /// Payments a processor stores a second, for everyone, when it has no delay: how fast a
    /// held backlog can be released into it, so how long before the end the release must start
    /// (`upstream::route`). Its source does not say; an ASP.NET endpoint inserting into
    /// PostgreSQL through a 20-connection pool, on the contest's 4 vCPUs shared with the load
    /// and the backends, is taken at 2,000: over three times the contest's peak arrivals. Lower
    /// releases held payments sooner (they cost the dearer fee); higher risks their lag.
    processor_absorb_per_s: u64 = number("PROCESSOR_ABSORB_PER_S", 2_000, 1, 1_000_000),
    /// Cap on the per-attempt deadline to a processor (see `processor_timeout_margin_ms`).
    processor_timeout_ms: u64 = number("PROCESSOR_TIMEOUT_MS", 15_000, 1, 600_000),
    /// Per-attempt deadline = planned delay + this margin (capped by `processor_timeout_ms`).
    /// A premature timeout turns a payment the processor will store into an unknown one, which
    /// our ledger learns of only on a later retry: a window in which the books disagree. So the
    /// margin covers the largest jump in delay the contest makes (0 → 5000 ms) with room to
    /// spare.
    processor_timeout_margin_ms: u64 = number("PROCESSOR_TIMEOUT_MARGIN_MS", 6_000, 0, 600_000),
    /// How far past its expected answer an attempt must be before its processor is presumed
    /// slower than planned (see `forward::dispatch`, *Delay jumps*). Above the jitter of a
    /// healthy answer (a CFS-throttled core stalls ~25 ms per 100 ms period), and small,
    /// because the payments sent before the jump shows are the ones whose books can differ.
    overdue_margin_ms: u64 = number("OVERDUE_MARGIN_MS", 150, 1, 600_000),
    /// The delay planned for a processor while one of its attempts is overdue, until news of
    /// its real delay: the largest the contest sets, so no payment sent meanwhile lands late.
    overdue_plan_delay_ms: u64 = number("OVERDUE_PLAN_DELAY_MS", 5_000, 0, 600_000),
    /// The least time from a payment's send to its `requestedAt` while the test's end is known
    /// and at least this far (see `forward::dispatch`, *Delay jumps*): the largest delay the
    /// contest sets (5 s), less the earliest end of a check's window (1.5 s before the check,
    /// in the preview), plus 0.5 s for the answer's way back to our books and for the checker's
    /// three queries not meeting at one instant. A delay that jumps anywhere up to 5 s before
    /// we can know it then lands before any check can see the payment, and the lead costs
    /// nothing: the final count takes every `requestedAt` up to the end.
    requested_at_lead_min_ms: u64 = number("REQUESTED_AT_LEAD_MIN_MS", 4_000, 0, 600_000),
    /// Fee of the default processor, in parts per million (the published rules: 5%).
    fee_default_ppm: u64 = fraction_ppm("FEE_DEFAULT", 50_000),
    /// Fee of the fallback processor, in parts per million (the published rules: 15%).
    fee_fallback_ppm: u64 = fraction_ppm("FEE_FALLBACK", 150_000),
    /// Expected test time left for a payment arriving now (routing's lag risk). Under the
    /// contest's linear ramp a payment arrives on average at 2/3 of the test, so a third of a
    /// 300 s run remains.
    lag_horizon_ms: u64 = number("LAG_HORIZON_MS", 100_000, 1, 86_400_000),
    /// Length of a test run, counted from `POST /purge-payments` (0 = unknown). The contest's
    /// final ran 300 s; near the end, a slow processor's delay becomes a certain loss.
    test_duration_ms: u64 = number("TEST_DURATION_MS", 0, 0, 86_400_000),
    /// Health poll interval per processor. The endpoint allows one call per 5 s for everyone.
    health_poll_interval_ms: u64 = number("HEALTH_POLL_INTERVAL_MS", 5_000, 5_000, 3_600_000),
    /// Refusals in a row that open a core's breaker: fewer reacts to noise, more wastes a
    /// processor's delay on payments that will be refused.
    breaker_failures_to_open: u32 = number("BREAKER_FAILURES_TO_OPEN", 3, 1, 1_000),
    /// While a breaker is open, one payment probes the processor this often.
    breaker_probe_interval_ms: u64 = number("BREAKER_PROBE_INTERVAL_MS", 200, 1, 60_000),
    /// On SIGTERM, how long the instance may take to forward what it holds before it exits.
    drain_deadline_ms: u64 = number("DRAIN_DEADLINE_MS", 10_000, 0, 3_600_000),
    /// Pause after both processors refused a payment, before trying again.
    retry_backoff_ms: u64 = number("RETRY_BACKOFF_MS", 100, 1, 60_000),
    /// Deadline for one call to the peer instance over the private link (loopback, answered in
    /// well under a millisecond). Under half of `peer::PEER_CALLS_BUDGET`, so that a summary
    /// whose first call fails still has time for its retry within the contest client's 1.5 s.
    peer_timeout_ms: u64 = number("PEER_TIMEOUT_MS", 500, 1, 60_000),
    /// Largest request head (request line plus headers). The contest's are ~150 bytes.
    request_head_bytes_max: usize = number("REQUEST_HEAD_BYTES_MAX", 8 * 1024, 256, 1 << 20),
    /// Largest request body. A payment is ~70 bytes.
    request_body_bytes_max: usize = number("REQUEST_BODY_BYTES_MAX", 4 * 1024, 128, 1 << 20),
    /// Open client connections per core; beyond it a new connection is closed at once. Each
    /// costs a descriptor and ~6 KB (buffers and task): 16384 is ~100 MB at worst, and leaves
    /// room under compose's `nofile` 65536 for the processor connections.
    connections_max: usize = number("CONNECTIONS_MAX", 16_384, 16, 1 << 20),
    /// A connection that completes no request and receives no response for this long is closed
    /// (a partial request gets 408 first). The contest's clients send a request every ~1 s on
    /// each connection; a stalled or dribbling client (slowloris) holds its descriptor no
    /// longer.
    connection_idle_timeout_ms: u64 = number("CONNECTION_IDLE_TIMEOUT_MS", 60_000, 100, 86_400_000),
    /// Folder of this instance's payment journal (one file per core); `None` = no journal: a
    /// killed instance forgets what it held and its books (see `journal`).
    journal_dir: Option<PathBuf> = path_opt("JOURNAL_DIR"),
    /// The peer's `JOURNAL_DIR` as this instance sees it (a shared volume), read while the
    /// peer does not answer a summary; `None` = such a summary is a 503.
    peer_journal_dir: Option<PathBuf> = path_opt("PEER_JOURNAL_DIR"),
    /// When the journal syncs to disk: `never` (survives the process's crash), a period in ms
    /// (a machine's crash loses at most that much), or `always` (a disk flush per batch).
    journal_fsync: Fsync = fsync("JOURNAL_FSYNC"),
    /// Journal bytes per core before `POST /payments` answers 503: 64 MiB is ~330,000 payments
    /// of three 64-byte records, three contests' worth for one core, and stays well inside an
    /// instance's memory limit while the page cache holds it.
    journal_bytes_max: u64 = number("JOURNAL_BYTES_MAX", 64 << 20, 64 * 1024, 1 << 40),
}

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
        let mut config = Config::read(&env)?;
        // In table order already: `read` fills the struct literal row by row.
        let mut effective = env.effective.into_inner();
        debug_assert!(effective.iter().map(|(name, _)| *name).eq(ENV_VARS.iter().copied()));
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

    fn path_opt(&self, name: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        let path = self.get(name).map(PathBuf::from);
        self.note(name, path.as_ref().map_or_else(|| "-".to_owned(), |p| p.display().to_string()));
        Ok(path)
    }

    fn fsync(&self, name: &'static str) -> Result<Fsync, ConfigError> {
        let fsync = match self.get(name).as_deref() {
            None | Some("never") => Fsync::Never,
            Some("always") => Fsync::Always,
            Some(raw) => match raw.parse::<u64>() {
                Ok(ms) if ms > 0 => Fsync::Every(Duration::from_millis(ms)),
                _ => {
                    let expected = "never, always, or a period in ms";
                    return Err(ConfigError { name, value: raw.into(), expected });
                }
            },
        };
        self.note(
            name,
            match fsync {
                Fsync::Never => "never".to_owned(),
                Fsync::Always => "always".to_owned(),
                Fsync::Every(every) => every.as_millis().to_string(),
            },
        );
        Ok(fsync)
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
        assert_eq!(c.queue_len_max, 65_536);
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
