//! Configuration: every knob is one environment variable, parsed once at start, logged once.
//!
//! Names carry their unit last (`PROCESSOR_TIMEOUT_MS`). Defaults are the named consts below;
//! `tuning/README.md` documents each one, and a test keeps that document and this file in step.

use std::{
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
/// Forwards in flight per core. A processor takes 800 in progress (plus 500 queued) for
/// everyone; two instances of one core each stay under that with room for retries.
pub const DISPATCH_INFLIGHT_MAX_DEFAULT: usize = 384;
/// Per-attempt deadline to a processor. Above the largest delay the contest sets (5000 ms):
/// a first-version forwarder waits for the answer rather than guessing.
pub const PROCESSOR_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Pause after both processors refused a payment, before trying again.
pub const RETRY_BACKOFF_MS_DEFAULT: u64 = 100;
/// Deadline for one call to the peer instance over the private link (loopback).
pub const PEER_TIMEOUT_MS_DEFAULT: u64 = 1_000;
/// Largest request head (request line plus headers). The contest's are ~150 bytes.
pub const REQUEST_HEAD_BYTES_MAX_DEFAULT: usize = 8 * 1024;
/// Largest request body. A payment is ~70 bytes.
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: usize = 4 * 1024;

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
    /// Forwards in flight per core.
    pub dispatch_inflight_max: usize,
    /// Per-attempt deadline to a processor.
    pub processor_timeout_ms: u64,
    /// Pause after both processors refused.
    pub retry_backoff_ms: u64,
    /// Deadline of one peer call.
    pub peer_timeout_ms: u64,
    /// Largest request head accepted.
    pub request_head_bytes_max: usize,
    /// Largest request body accepted.
    pub request_body_bytes_max: usize,
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
    "PROCESSOR_TIMEOUT_MS",
    "RETRY_BACKOFF_MS",
    "PEER_TIMEOUT_MS",
    "REQUEST_HEAD_BYTES_MAX",
    "REQUEST_BODY_BYTES_MAX",
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
        write!(
            f,
            "{}={:?}: expected {}",
            self.name, self.value, self.expected
        )
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
        let env = Env { lookup: &lookup };
        let config = Config {
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
            processor_timeout_ms: env.number(
                "PROCESSOR_TIMEOUT_MS",
                PROCESSOR_TIMEOUT_MS_DEFAULT,
                1,
                600_000,
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
        };
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

    /// Per-attempt processor deadline.
    pub fn processor_timeout(&self) -> Duration {
        Duration::from_millis(self.processor_timeout_ms)
    }

    /// Backoff after both processors refused.
    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }

    /// Deadline of one peer call.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }
}

impl fmt::Display for Config {
    /// The single start-up log line: every effective value, `KEY=value` separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
        write!(
            f,
            "API_BIND_ADDR={} PEER_BIND_ADDR={} PEER_ADDR={} PROCESSOR_DEFAULT_URL={} \
             PROCESSOR_FALLBACK_URL={} WORKER_COUNT={} WORKER_PIN={} WORKER_CPU_FIRST={} \
             IO_DRIVER={} IO_URING_ENTRIES={} LISTEN_BACKLOG={} QUEUE_LEN_MAX={} \
             DISPATCH_INFLIGHT_MAX={} PROCESSOR_TIMEOUT_MS={} RETRY_BACKOFF_MS={} \
             PEER_TIMEOUT_MS={} REQUEST_HEAD_BYTES_MAX={} REQUEST_BODY_BYTES_MAX={}",
            self.api_bind_addr,
            opt(self.peer_bind_addr),
            opt(self.peer_addr),
            self.processor_default_url,
            self.processor_fallback_url,
            self.workers(),
            u8::from(self.worker_pin),
            self.worker_cpu_first,
            self.io_driver.name(),
            self.io_uring_entries,
            self.listen_backlog,
            self.queue_len_max,
            self.dispatch_inflight_max,
            self.processor_timeout_ms,
            self.retry_backoff_ms,
            self.peer_timeout_ms,
            self.request_head_bytes_max,
            self.request_body_bytes_max,
        )
    }
}

/// Typed access to one lookup function; empty values count as unset.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn number<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(v),
            _ => Err(ConfigError {
                name,
                value: raw,
                expected: "an integer within its range",
            }),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(raw) => Err(ConfigError {
                name,
                value: raw.into(),
                expected: "1 or 0",
            }),
        }
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        parse_addr(name, &raw)
    }

    fn addr_opt(&self, name: &'static str) -> Result<Option<SocketAddr>, ConfigError> {
        self.get(name).map(|raw| parse_addr(name, &raw)).transpose()
    }

    fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        match crate::processor::Endpoint::parse_url(&raw) {
            Some(_) => Ok(raw),
            None => Err(ConfigError {
                name,
                value: raw,
                expected: "http://host:port",
            }),
        }
    }

    fn driver(&self, name: &'static str) -> Result<IoDriver, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("auto") => Ok(IoDriver::Auto),
            Some("io_uring" | "iouring" | "uring") => Ok(IoDriver::IoUring),
            Some("epoll" | "legacy") => Ok(IoDriver::Epoll),
            Some(raw) => Err(ConfigError {
                name,
                value: raw.into(),
                expected: "auto, io_uring or epoll",
            }),
        }
    }
}

/// A socket address, resolving a host name once at start (never on the hot path).
fn parse_addr(name: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError {
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
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
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
        assert_eq!(
            config(&[("IO_DRIVER", "epoll")]).unwrap().io_driver,
            IoDriver::Epoll
        );
    }

    /// Goal: the log line names every variable, so nothing configured is invisible.
    #[test]
    fn log_line_names_every_variable() {
        let line = config(&[]).unwrap().to_string();
        for name in ENV_VARS {
            assert!(
                line.contains(&format!("{name}=")),
                "{name} missing from {line}"
            );
        }
    }
}
