//! Configuration: every knob is one environment variable, parsed once at start, logged once.
//!
//! Names carry their unit last (`PROCESSOR_TIMEOUT_MS`). One table (`knobs!`) gives each
//! variable its field, getter, default and the reason for it; `tuning/README.md` documents
//! each one, and a test keeps that document and this table in step.

use std::{
    cell::RefCell,
    fmt,
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{journal::Fsync, log::Level, peer::client::PEER_CALLS_BUDGET};

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
/// defaults included). The same row gives `payrelay --help` its line ([`knobs_help`]): each
/// getter has a namesake in `help` that describes instead of reading.
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
            /// Every knob through `env`, in table order; every variable that does not parse is
            /// in the error, not only the first.
            fn read(env: &Env<'_>) -> Result<Config, Vec<ConfigError>> {
                let mut errors = Vec::new();
                $(let $field = env.$getter($name $(, $arg)*).map_err(|e| errors.push(e)).ok();)*
                match ($($field,)*) {
                    ($(Some($field),)*) => Ok(Config { $($field,)* effective: Vec::new() }),
                    _ => Err(errors),
                }
            }
        }

        /// Every variable as `payrelay --help` lists it: unit, default and allowed values, in
        /// table order.
        pub fn knobs_help() -> Vec<KnobHelp> {
            vec![$(help::$getter::<$ty>($name $(, $arg)*),)*]
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
    /// Largest request head (request line plus headers). The contest's are ~150–250 bytes, and
    /// 2 KiB is eight times that. It also bounds what a stalled client's partial head holds in
    /// memory, which with the body's limit sizes the connection cap
    /// ([`Config::connection_bytes_max`]): 8 KiB, the limit before, cost ~14 KiB a stalled
    /// connection.
    request_head_bytes_max: usize = number("REQUEST_HEAD_BYTES_MAX", 2 * 1024, 256, 1 << 20),
    /// Largest request body. A payment is ~70 bytes.
    request_body_bytes_max: usize = number("REQUEST_BODY_BYTES_MAX", 4 * 1024, 128, 1 << 20),
    /// Open client connections per core; beyond it a new connection is closed at once. 0 (the
    /// default) = as many as fit the memory limit, at most [`CONNECTIONS_AUTO_MAX`]; a value set
    /// by hand must fit it too, or the instance does not start (`Config::fit_connections`).
    /// A fixed default cannot be right: 16,384, the one before, let a flood of stalled clients
    /// take ~230 MB of a 170 MB instance, and the OOM killer then took everything it held.
    connections_max: usize = number("CONNECTIONS_MAX", 0, 0, 1 << 20),
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
    /// The least severe log line written (`error`, `warn`, `info`, `debug`). `info` gives the
    /// start-up lines and each event (a hold, a journal failure), never a line per payment.
    log_level: Level = level("LOG_LEVEL"),
}

/// What one client connection costs beside the request bytes it holds: its task (the
/// `accept::serve` future, 720 bytes, and monoio's task header), its read buffer's first 1 KiB
/// and its growth step, its write buffer and response scratch once it has answered, its
/// registry slot, and what the kernel charges to the memory cgroup for its socket and file.
/// Measured (2026-12, io_uring, 1 core, 9,000 connections holding nothing): 1.9 KiB of RSS and
/// 3.4 KiB of the cgroup's usage each; holding a 6,000-byte partial head, 9.3 KiB of the
/// cgroup's usage, 3.4 KiB beyond the head. The margin above that covers the write buffer and
/// scratch, allocator slack and the epoll driver.
pub const CONNECTION_OVERHEAD_BYTES: usize = 6 * 1024;

/// What an instance needs whatever its connections and its cores' queues and journals: the
/// binary, the allocator's arenas, the peer link. With [`CORE_RESERVE_BYTES`], 24 MiB for a
/// one-core instance: twice the 12 MB of RSS the lab's 300 s contests peaked at, connections
/// included, for longer runs' ledgers.
pub const MEMORY_RESERVE_BYTES: u64 = 16 << 20;

/// What each core needs whatever its connections, beside its queue and journal: the ids it
/// remembers for 409 (~2 MB at 65,536), its forwarding tasks and processor connections (up to
/// `DISPATCH_INFLIGHT_MAX`), its io_uring rings, its ledger shard.
pub const CORE_RESERVE_BYTES: u64 = 8 << 20;

/// Memory of one payment in a core's queue, counted against the memory limit for each of
/// `QUEUE_LEN_MAX`: 48 bytes, doubled, as the queue's deque grows by doubling.
pub const QUEUED_PAYMENT_BYTES: u64 = 96;

/// The most connections per core `CONNECTIONS_MAX=0` derives, however much memory there is:
/// each is a descriptor, and cores × this stays under compose's `nofile` 65536 with room for
/// the processor connections.
pub const CONNECTIONS_AUTO_MAX: usize = 16_384;

/// The fewest connections per core `CONNECTIONS_MAX` may be set to.
pub const CONNECTIONS_MIN: usize = 16;

/// The fewest connections per core `CONNECTIONS_MAX=0` must find room for in the memory limit,
/// or the instance does not start: a journal or a queue too large for the container, or a
/// container too small, is reported at start rather than found as refused clients. The contest
/// holds ~300 connections per instance.
pub const CONNECTIONS_AUTO_MIN: usize = 1024;

/// A configuration error: which variable, what it held, what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    name: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
    fn new(name: &'static str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        ConfigError { name, value: value.to_string(), expected: expected.into() }
    }

    /// The variable it is about.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: expected {}", self.name, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}

/// The unit of a variable by the last part of its name (units come last in every name), for
/// `--help` and for range errors. One table, so a new knob named by the rule needs no entry.
const UNIT_SUFFIXES: &[(&str, &str)] = &[
    ("_MS", "ms"),
    ("_BYTES_MAX", "bytes"),
    ("_BYTES", "bytes"),
    ("_PER_S_MAX", "per second"),
    ("_PER_S", "per second"),
    ("_ENTRIES", "entries"),
];

/// The unit of variable `name` by its suffix (`UNIT_SUFFIXES`), else a plain count.
pub fn unit_of(name: &str) -> &'static str {
    UNIT_SUFFIXES.iter().find(|(suffix, _)| name.ends_with(suffix)).map_or("count", |(_, u)| u)
}

/// One variable as `payrelay --help` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnobHelp {
    /// The variable.
    pub name: &'static str,
    /// Its unit ([`unit_of`]), or what kind of value it is.
    pub unit: &'static str,
    /// Its default, as it would be written.
    pub default: String,
    /// The values it accepts.
    pub allowed: String,
}

/// The `--help` namesakes of [`Env`]'s getters: the same arguments (the row of `knobs!`),
/// described instead of read. `T` is the field's type, so that a row's numbers have the type
/// they have when read.
mod help {
    // `T` is the row's field type: `number` needs it, the others take it so that the macro
    // calls every getter the same way.
    #![allow(clippy::extra_unused_type_parameters)]

    use std::fmt::Display;

    use super::{KnobHelp, unit_of};

    fn knob(name: &'static str, unit: &'static str, default: &str, allowed: &str) -> KnobHelp {
        KnobHelp { name, unit, default: default.to_owned(), allowed: allowed.to_owned() }
    }

    pub(super) fn number<T: Display>(name: &'static str, default: T, min: T, max: T) -> KnobHelp {
        knob(name, unit_of(name), &default.to_string(), &format!("{min} to {max}"))
    }

    pub(super) fn fraction_ppm<T>(name: &'static str, default: u64) -> KnobHelp {
        let six = format!("{}.{:06}", default / 1_000_000, default % 1_000_000);
        let default = six.trim_end_matches('0').trim_end_matches('.');
        knob(name, "fraction", default, "0 to 1, at most 6 decimals")
    }

    pub(super) fn flag<T>(name: &'static str, default: bool) -> KnobHelp {
        knob(name, "flag", if default { "1" } else { "0" }, "1/0, true/false, yes/no, on/off")
    }

    pub(super) fn addr<T>(name: &'static str, default: &str) -> KnobHelp {
        knob(name, "address", default, "host:port")
    }

    pub(super) fn addr_opt<T>(name: &'static str) -> KnobHelp {
        knob(name, "address", "empty", "host:port, or empty for none")
    }

    pub(super) fn url<T>(name: &'static str, default: &str) -> KnobHelp {
        knob(name, "URL", default, "http://host:port")
    }

    pub(super) fn path_opt<T>(name: &'static str) -> KnobHelp {
        knob(name, "path", "empty", "a folder, or empty for none")
    }

    pub(super) fn fsync<T>(name: &'static str) -> KnobHelp {
        knob(name, "policy", "never", "never, always, or a period in ms")
    }

    pub(super) fn driver<T>(name: &'static str) -> KnobHelp {
        knob(name, "driver", "auto", "auto, io_uring or epoll")
    }

    pub(super) fn level<T>(name: &'static str) -> KnobHelp {
        knob(name, "level", "info", "error, warn, info or debug")
    }
}

impl Config {
    /// Reads the process environment, and fits the connection cap to the memory this process
    /// may use ([`memory_limit_bytes`]).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup_within(|name| std::env::var(name).ok(), memory_limit_bytes())
    }

    /// [`Config::from_env`] with every error: what a start and `payrelay --check` run.
    pub fn check_env() -> Result<Config, Vec<ConfigError>> {
        Config::check(|name| std::env::var(name).ok(), memory_limit_bytes())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests), with no
    /// memory limit known: `CONNECTIONS_MAX=0` is then [`CONNECTIONS_AUTO_MAX`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_lookup_within(lookup, None)
    }

    /// Reads the configuration through `lookup` for a process that may use `memory_bytes`
    /// (`None`: unknown), which bounds the connection cap (`Config::fit_connections`). The
    /// first error of [`Config::check`].
    pub fn from_lookup_within(
        lookup: impl Fn(&str) -> Option<String>,
        memory_bytes: Option<u64>,
    ) -> Result<Config, ConfigError> {
        // `check` never returns an empty list of errors.
        Config::check(lookup, memory_bytes).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Reads the configuration through `lookup` for a process that may use `memory_bytes`, and
    /// checks it as a start does: every variable that does not parse; if they all do, every
    /// [`RULES`] row of [`Severity::Refuse`] that fails, and the connection cap's fit. The
    /// warnings are left to [`Config::warnings`].
    pub fn check(
        lookup: impl Fn(&str) -> Option<String>,
        memory_bytes: Option<u64>,
    ) -> Result<Config, Vec<ConfigError>> {
        let env = Env { lookup: &lookup, effective: RefCell::new(Vec::new()) };
        let mut config = Config::read(&env)?;
        let mut errors: Vec<ConfigError> = RULES
            .iter()
            .filter(|rule| rule.severity == Severity::Refuse)
            .filter_map(|rule| (rule.check)(&config).err())
            .collect();
        // In table order already: `read` fills the struct literal row by row.
        let mut effective = env.effective.into_inner();
        debug_assert!(effective.iter().map(|(name, _)| *name).eq(ENV_VARS.iter().copied()));
        if config.worker_count == 0 {
            effective.push(("WORKER_COUNT(auto)", config.workers().to_string()));
        }
        let derived = config.connections_max == 0;
        match config.fit_connections(memory_bytes) {
            Ok(fit) => config.connections_max = fit,
            Err(e) => errors.push(e),
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if derived {
            effective.push(("CONNECTIONS_MAX(auto)", config.connections_max.to_string()));
        }
        let memory = memory_bytes.map_or_else(|| "unknown".to_owned(), |bytes| bytes.to_string());
        effective.push(("memory_limit_bytes", memory));
        config.effective = effective;
        Ok(config)
    }

    /// Every [`RULES`] row of [`Severity::Warn`] this configuration breaks: the instance runs,
    /// and says so at start.
    pub fn warnings(&self) -> Vec<ConfigError> {
        RULES
            .iter()
            .filter(|rule| rule.severity == Severity::Warn)
            .filter_map(|rule| (rule.check)(self).err())
            .collect()
    }

    /// The most memory one client connection may take: a request of the largest head and body
    /// allowed, held whole while it is read, and the [`CONNECTION_OVERHEAD_BYTES`] of every
    /// connection. A stalled client can hold no more: `accept::serve` grows its read buffer one
    /// step at a time and the parser refuses a request beyond the limits.
    pub fn connection_bytes_max(&self) -> u64 {
        let request = self.request_head_bytes_max + self.request_body_bytes_max;
        (request + CONNECTION_OVERHEAD_BYTES) as u64
    }

    /// The memory the instance needs whatever its connections: [`MEMORY_RESERVE_BYTES`], and for
    /// each core [`CORE_RESERVE_BYTES`], a full queue and, with the journal on, a full journal,
    /// which the page cache holds and the memory cgroup counts until it is written back.
    pub fn memory_reserve_bytes(&self) -> u64 {
        let queue = self.queue_len_max as u64 * QUEUED_PAYMENT_BYTES;
        let journal = if self.journal_dir.is_some() { self.journal_bytes_max } else { 0 };
        let per_core = CORE_RESERVE_BYTES.saturating_add(queue).saturating_add(journal);
        MEMORY_RESERVE_BYTES.saturating_add(per_core.saturating_mul(self.workers() as u64))
    }

    /// The connection cap per core for a process that may use `memory_bytes` (`None`:
    /// unknown): with `CONNECTIONS_MAX=0`, as many as fit what the reserve leaves, at most
    /// [`CONNECTIONS_AUTO_MAX`], and an error below [`CONNECTIONS_AUTO_MIN`]; a value set by
    /// hand is kept if it fits, an error otherwise. Every core filling its cap with clients
    /// that each hold the largest request allowed then stays within the limit.
    fn fit_connections(&self, memory_bytes: Option<u64>) -> Result<usize, ConfigError> {
        let name = "CONNECTIONS_MAX";
        let set = self.connections_max;
        if set != 0 && set < CONNECTIONS_MIN {
            let expected = format!("0 (from the memory limit) or at least {CONNECTIONS_MIN}");
            return Err(ConfigError { name, value: set.to_string(), expected });
        }
        let Some(memory_bytes) = memory_bytes else {
            return Ok(if set == 0 { CONNECTIONS_AUTO_MAX } else { set });
        };
        let (cores, reserve) = (self.workers() as u64, self.memory_reserve_bytes());
        let per_core = memory_bytes.saturating_sub(reserve) / cores / self.connection_bytes_max();
        let fits = usize::try_from(per_core).unwrap_or(usize::MAX);
        let mib = |bytes: u64| bytes >> 20;
        let room = format!(
            "the memory limit ({} MiB) less the reserve ({} MiB: {cores} cores' queues{}) fits \
             {fits} connections per core of {} KiB (the request limits and {} KiB)",
            mib(memory_bytes),
            mib(reserve),
            if self.journal_dir.is_some() { " and journals" } else { "" },
            self.connection_bytes_max() >> 10,
            CONNECTION_OVERHEAD_BYTES >> 10,
        );
        match set {
            0 if fits >= CONNECTIONS_AUTO_MIN => Ok(fits.min(CONNECTIONS_AUTO_MAX)),
            0 => {
                let expected = format!(
                    "room for {CONNECTIONS_AUTO_MIN} connections per core: {room}; raise the \
                     memory limit, or lower QUEUE_LEN_MAX, JOURNAL_BYTES_MAX or the request limits"
                );
                Err(ConfigError { name, value: "0".to_owned(), expected })
            }
            set if set <= fits => Ok(set),
            set => {
                let expected = format!("at most {fits}, or 0 to derive it: {room}");
                Err(ConfigError { name, value: set.to_string(), expected })
            }
        }
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

/// How a start takes a broken [`Rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The instance does not start, and `--check` fails: the server would not work as
    /// documented.
    Refuse,
    /// The instance starts with a warning in its log, and `--check` passes printing it: a
    /// setting that costs latency or money, or one that tests make on purpose.
    Warn,
}

/// A rule between knobs: what their values must keep to together.
pub struct Rule {
    /// What it keeps, in a few words.
    pub name: &'static str,
    /// How a start takes it broken.
    pub severity: Severity,
    /// `Err` naming the variable, its value and what it should be, when broken.
    pub check: fn(&Config) -> Result<(), ConfigError>,
}

/// Requests one processor serves at once, for everyone: beyond them it queues a request (500
/// more, then 429), and a queued request's delay starts late, so it lands after the
/// `requestedAt` we planned for it.
pub const PROCESSOR_CONCURRENT_MAX: usize = 800;

/// Every rule between knobs, checked at start (`Config::check`, [`Config::warnings`]) and by
/// `payrelay --check`; each has a test.
pub const RULES: &[Rule] = &[
    Rule { name: "the peer call's retry fits", severity: Severity::Refuse, check: peer_retry_fits },
    Rule {
        name: "an attempt can be overdue before it times out",
        severity: Severity::Refuse,
        check: overdue_before_timeout,
    },
    Rule { name: "the peer link is not the API", severity: Severity::Refuse, check: peer_apart },
    Rule {
        name: "each instance has its own journal",
        severity: Severity::Refuse,
        check: journals_apart,
    },
    Rule {
        name: "the processors' concurrency is kept",
        severity: Severity::Warn,
        check: processor_concurrency_kept,
    },
    Rule {
        name: "the forwarding tasks can fill a processor's slots",
        severity: Severity::Warn,
        check: slots_fillable,
    },
    Rule {
        name: "an overdue processor's plan fits the attempt's deadline",
        severity: Severity::Warn,
        check: overdue_plan_fits,
    },
];

/// A summary's or purge's call to the peer is made once more if it fails, and both share
/// [`PEER_CALLS_BUDGET`] (1.2 s, inside the contest client's 1.5 s): one call may take at most
/// half of it, or the retry has no time left.
fn peer_retry_fits(c: &Config) -> Result<(), ConfigError> {
    let half_ms = PEER_CALLS_BUDGET.as_millis() as u64 / 2;
    if c.peer_timeout_ms <= half_ms {
        return Ok(());
    }
    let expected = format!(
        "at most {half_ms} ms: a failed peer call is made once more, and both share {} ms \
         (the contest's client waits 1500 ms for a summary)",
        PEER_CALLS_BUDGET.as_millis()
    );
    Err(ConfigError::new("PEER_TIMEOUT_MS", c.peer_timeout_ms, expected))
}

/// An attempt is overdue (its processor's delay jumped) `OVERDUE_MARGIN_MS` past its planned
/// delay, and times out `PROCESSOR_TIMEOUT_MARGIN_MS` past it: with the first not below the
/// second, every attempt times out before it can be found overdue, and a delay jump is never
/// found.
fn overdue_before_timeout(c: &Config) -> Result<(), ConfigError> {
    if c.overdue_margin_ms < c.processor_timeout_margin_ms {
        return Ok(());
    }
    let expected = format!(
        "less than PROCESSOR_TIMEOUT_MARGIN_MS ({} ms): an attempt times out that far past its \
         planned delay, before it could be found overdue",
        c.processor_timeout_margin_ms
    );
    Err(ConfigError::new("OVERDUE_MARGIN_MS", c.overdue_margin_ms, expected))
}

/// The peer link must not share the public port (the kernel would spread the peer's calls
/// over every core of both instances, and clients' requests onto the link), nor call this
/// instance itself.
fn peer_apart(c: &Config) -> Result<(), ConfigError> {
    let Some(bind) = c.peer_bind_addr else { return Ok(()) };
    if bind.port() == c.api_bind_addr.port() {
        let expected = format!("a port other than API_BIND_ADDR's ({})", c.api_bind_addr.port());
        return Err(ConfigError::new("PEER_BIND_ADDR", bind, expected));
    }
    match c.peer_addr {
        Some(peer) if peer == bind => {
            let expected = "the other instance's PEER_BIND_ADDR, not this one's";
            Err(ConfigError::new("PEER_ADDR", peer, expected))
        }
        _ => Ok(()),
    }
}

/// Two instances writing one journal folder would replay each other's payments.
fn journals_apart(c: &Config) -> Result<(), ConfigError> {
    match (&c.journal_dir, &c.peer_journal_dir) {
        (Some(own), Some(peer)) if own == peer => {
            let expected = "the other instance's JOURNAL_DIR, not this one's";
            Err(ConfigError::new("PEER_JOURNAL_DIR", peer.display(), expected))
        }
        _ => Ok(()),
    }
}

/// Every core of both instances may keep `PROCESSOR_INFLIGHT_MAX` requests at one processor,
/// which serves [`PROCESSOR_CONCURRENT_MAX`] at once. The instances are two when `PEER_ADDR` is
/// set (the contest's pair), one otherwise; the peer is taken to run as many cores as this one
/// (the profiles give both the same `WORKER_COUNT`).
fn processor_concurrency_kept(c: &Config) -> Result<(), ConfigError> {
    let instances = if c.peer_addr.is_some() { 2 } else { 1 };
    let cores = instances * c.workers();
    let total = c.processor_inflight_max.saturating_mul(cores);
    if total <= PROCESSOR_CONCURRENT_MAX {
        return Ok(());
    }
    let expected = format!(
        "at most {} per core: {instances} instance(s) × {} core(s) × this = {total} requests at \
         a processor, which serves {PROCESSOR_CONCURRENT_MAX} at once and queues the rest, whose \
         delay then starts late (they land after their requestedAt)",
        PROCESSOR_CONCURRENT_MAX / cores,
        c.workers()
    );
    Err(ConfigError::new("PROCESSOR_INFLIGHT_MAX", c.processor_inflight_max, expected))
}

/// A forwarding task holds one payment: fewer tasks than one processor's slots leave those
/// slots unfilled while the other processor fails.
fn slots_fillable(c: &Config) -> Result<(), ConfigError> {
    if c.dispatch_inflight_max >= c.processor_inflight_max {
        return Ok(());
    }
    let expected = format!(
        "at least PROCESSOR_INFLIGHT_MAX ({}), about twice it: a forwarding task holds one \
         payment, and fewer tasks than a processor's slots never fill them",
        c.processor_inflight_max
    );
    Err(ConfigError::new("DISPATCH_INFLIGHT_MAX", c.dispatch_inflight_max, expected))
}

/// While a processor is overdue its payments are planned `OVERDUE_PLAN_DELAY_MS` ahead, but
/// never more than `PROCESSOR_TIMEOUT_MS`, which also caps an attempt's deadline: beyond it an
/// overdue processor's attempts time out before their planned delay, and their outcome is
/// unknown.
fn overdue_plan_fits(c: &Config) -> Result<(), ConfigError> {
    if c.overdue_plan_delay_ms < c.processor_timeout_ms {
        return Ok(());
    }
    let expected = format!(
        "less than PROCESSOR_TIMEOUT_MS ({} ms), which caps every plan and deadline",
        c.processor_timeout_ms
    );
    Err(ConfigError::new("OVERDUE_PLAN_DELAY_MS", c.overdue_plan_delay_ms, expected))
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
        let bad = || ConfigError {
            name,
            value: raw.clone(),
            expected: "a fraction from 0 to 1, at most 6 decimals (0.05)".into(),
        };
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
            _ => {
                let unit = match unit_of(name) {
                    "count" => String::new(),
                    unit => format!(" {unit}"),
                };
                Err(ConfigError::new(name, raw, format!("an integer from {min} to {max}{unit}")))
            }
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let value = match self.get(name).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(raw) => {
                return Err(ConfigError { name, value: raw.into(), expected: "1 or 0".into() });
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
            None => Err(ConfigError { name, value: raw, expected: "http://host:port".into() }),
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
                    let expected = "never, always, or a period in ms".into();
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
                let expected = "auto, io_uring or epoll".into();
                return Err(ConfigError { name, value: raw.into(), expected });
            }
        };
        self.note(name, driver.name());
        Ok(driver)
    }

    fn level(&self, name: &'static str) -> Result<Level, ConfigError> {
        let level = match self.get(name) {
            None => Level::Info,
            Some(raw) => Level::parse(&raw)
                .ok_or_else(|| ConfigError::new(name, raw, "error, warn, info or debug"))?,
        };
        self.note(name, level.name());
        Ok(level)
    }
}

/// Where cgroup file systems are mounted: the v2 hierarchy itself, or one directory per v1
/// controller (`memory/`). Containers mount their own cgroup there.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A limit at or above this is no limit: cgroup v1 writes "unlimited" as the largest page
/// count in bytes (~2^63).
const MEMORY_UNLIMITED_BYTES: u64 = 1 << 60;

/// The memory this process may use: the smallest limit of its memory cgroup and the cgroups
/// above it (v2 `memory.max`, v1 `memory.limit_in_bytes`), and the machine's memory
/// (`MemTotal`); `None` if none can be read. Read once, at start.
pub fn memory_limit_bytes() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cgroup = cgroup_memory_limit(&membership, Path::new(CGROUP_ROOT));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    [cgroup, mem_total_bytes(&meminfo)].into_iter().flatten().min()
}

/// The memory limit of the cgroup `membership` (the text of `/proc/self/cgroup`) places this
/// process in, under the cgroup mount `root`.
fn cgroup_memory_limit(membership: &str, root: &Path) -> Option<u64> {
    if root.join("cgroup.controllers").exists() {
        // v2: one hierarchy, the line `0::/path`.
        let path = membership.lines().find_map(|line| line.strip_prefix("0::"))?;
        return limit_up_from(root, path, "memory.max");
    }
    // v1: the line `id:controllers:/path` whose controllers include memory.
    let path = membership.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|c| c == "memory").then_some(path)
    })?;
    limit_up_from(&root.join("memory"), path, "memory.limit_in_bytes")
}

/// The smallest limit in `file` from the cgroup `path` up to `mount`, its hierarchy's root:
/// every ancestor's limit applies too. In a container the mount's root is the container's own
/// cgroup while `path` may name it as the host sees it (v1 without a cgroup namespace), a
/// folder that does not exist there: climbing up reaches the root, and its limit counts.
fn limit_up_from(mount: &Path, path: &str, file: &str) -> Option<u64> {
    let mut dir = mount.join(path.trim_start_matches('/'));
    let mut limit: Option<u64> = None;
    while dir.starts_with(mount) {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if let Ok(bytes) = text.trim().parse::<u64>()
            && bytes < MEMORY_UNLIMITED_BYTES
        {
            limit = Some(limit.map_or(bytes, |limit| limit.min(bytes)));
        }
        if !dir.pop() {
            break;
        }
    }
    limit
}

/// `MemTotal` of `/proc/meminfo`'s text, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// A socket address, resolving a host name once at start (never on the hot path).
fn parse_addr(name: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).ok_or_else(|| ConfigError {
        name,
        value: raw.into(),
        expected: "host:port".into(),
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

    /// Goal: the connection cap fits the memory limit. With `CONNECTIONS_MAX=0`, every core
    /// full of clients holding the largest request allowed stays within the limit beside the
    /// reserve, in the contest's envelope and beyond; a limit too small for the reserve, or a
    /// cap set by hand beyond what fits, stops the start with the variable's name. Method: the
    /// contest's settings (one core, the journal on) within 170 MiB, then other limits.
    #[test]
    fn connection_cap_fits_the_memory_limit() {
        let contest = [
            ("WORKER_COUNT", "1"),
            ("JOURNAL_DIR", "/journal/a"),
            ("JOURNAL_BYTES_MAX", "67108864"),
            ("QUEUE_LEN_MAX", "65536"),
        ];
        let within = |pairs: &[(&str, &str)], memory_bytes: u64| {
            let map: HashMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            Config::from_lookup_within(|name| map.get(name).cloned(), Some(memory_bytes))
        };
        let limit_bytes = 170 << 20;
        let c = within(&contest, limit_bytes).unwrap();
        assert!((4096..CONNECTIONS_AUTO_MAX).contains(&c.connections_max), "{}", c.connections_max);
        let worst = c.memory_reserve_bytes() + c.connections_max as u64 * c.connection_bytes_max();
        assert!(worst <= limit_bytes, "{worst} > {limit_bytes}");
        assert!(c.to_string().contains(&format!("CONNECTIONS_MAX(auto)={}", c.connections_max)));
        // Plenty of memory: the descriptors' ceiling.
        assert_eq!(within(&contest, 64 << 30).unwrap().connections_max, CONNECTIONS_AUTO_MAX);
        // Less room than the journal alone needs.
        let err = within(&contest, 64 << 20).unwrap_err();
        assert!(err.to_string().starts_with("CONNECTIONS_MAX=\"0\""), "{err}");
        // Set by hand: kept if it fits, refused if not.
        let by_hand = [contest.as_slice(), &[("CONNECTIONS_MAX", "2000")]].concat();
        assert_eq!(within(&by_hand, limit_bytes).unwrap().connections_max, 2000);
        let too_many = [contest.as_slice(), &[("CONNECTIONS_MAX", "16384")]].concat();
        let err = within(&too_many, limit_bytes).unwrap_err();
        assert!(
            err.to_string().starts_with("CONNECTIONS_MAX=\"16384\": expected at most"),
            "{err}"
        );
        assert!(config(&[("CONNECTIONS_MAX", "15")]).is_err());
        // No limit known: the ceiling, or what was set.
        assert_eq!(config(&[]).unwrap().connections_max, CONNECTIONS_AUTO_MAX);
        assert_eq!(config(&[("CONNECTIONS_MAX", "16")]).unwrap().connections_max, 16);
    }

    /// Goal: the memory limit is the smallest along the process's cgroup and its ancestors,
    /// under cgroup v1 and v2; "max" and v1's "unlimited" are no limit; a path that does not
    /// exist in a container's own mount climbs to the mount's root. Method: cgroup trees made of
    /// plain folders and files in a temporary folder, and `/proc` texts.
    #[test]
    fn memory_limit_from_cgroups() {
        let root = std::env::temp_dir().join(format!("payrelay-cgroup-{}", std::process::id()));
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let v1 = "12:pids:/x\n4:memory:/outer/inner\n1:name=systemd:/x\n";
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        write("memory/outer/memory.limit_in_bytes", "300000000\n");
        write("memory/outer/inner/memory.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(cgroup_memory_limit(v1, &root), Some(300_000_000));
        write("memory/outer/inner/memory.limit_in_bytes", "178257920\n");
        assert_eq!(cgroup_memory_limit(v1, &root), Some(178_257_920));
        // A container's own mount, which names its cgroup as the host does.
        write("memory/memory.limit_in_bytes", "100000000\n");
        assert_eq!(cgroup_memory_limit("4:memory:/docker/abc\n", &root), Some(100_000_000));
        assert_eq!(cgroup_memory_limit("1:cpu:/x\n", &root), None);

        write("cgroup.controllers", "cpu memory\n");
        write("a/memory.max", "max\n");
        write("a/b/memory.max", "max\n");
        assert_eq!(cgroup_memory_limit("0::/a/b\n", &root), None);
        write("a/memory.max", "178257920\n");
        assert_eq!(cgroup_memory_limit("0::/a/b\n", &root), Some(178_257_920));
        let _ = std::fs::remove_dir_all(&root);

        let meminfo = "MemTotal:       24683264 kB\nMemFree:        22000000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24_683_264 * 1024));
        assert_eq!(mem_total_bytes(""), None);
        assert!(memory_limit_bytes().is_some_and(|bytes| bytes > 0), "this machine's memory");
    }

    /// Goal: a number out of its range is refused with the variable, the value given, the
    /// range and the unit; every variable that does not parse is reported, not only the first.
    #[test]
    fn range_errors_name_the_range() {
        let err = config(&[("PEER_TIMEOUT_MS", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PEER_TIMEOUT_MS=\"0\": expected an integer from 1 to 60000 ms"
        );
        let err = config(&[("QUEUE_LEN_MAX", "x")]).unwrap_err();
        assert_eq!(err.to_string(), "QUEUE_LEN_MAX=\"x\": expected an integer from 1 to 10000000");
        let err = config(&[("JOURNAL_BYTES_MAX", "1")]).unwrap_err();
        assert!(err.to_string().ends_with("from 65536 to 1099511627776 bytes"), "{err}");
        let lookup = |name: &str| (name != "API_BIND_ADDR").then(|| "nonsense".to_owned());
        let errors = Config::check(lookup, None).unwrap_err();
        // Every variable but the address given and the two folders, which take any path.
        assert_eq!(errors.len(), ENV_VARS.len() - 3, "{errors:?}");
    }

    /// Goal: `--help` has a line for every variable, in table order, with a unit, a default
    /// that parses back to the default and the range of a number.
    #[test]
    fn help_lists_every_knob() {
        let help = knobs_help();
        assert!(help.iter().map(|k| k.name).eq(ENV_VARS.iter().copied()));
        let line = config(&[]).unwrap().to_string();
        let logged: HashMap<&str, &str> =
            line.split(' ').filter_map(|pair| pair.split_once('=')).collect();
        for knob in &help {
            let (default, allowed) = (knob.default.as_str(), knob.allowed.as_str());
            assert!(!knob.unit.is_empty() && !allowed.is_empty(), "{knob:?}");
            // The log line writes an unset value as `-` and a fraction with six decimals.
            let same = match (default, logged[knob.name]) {
                ("empty", "-") => true,
                (help, log) => {
                    let number = |text: &str| text.parse::<f64>().ok();
                    help == log || (number(help).is_some() && number(help) == number(log))
                }
            };
            assert!(same, "{}: help says {default}, the log line {line}", knob.name);
        }
        let timeout = help.iter().find(|k| k.name == "PROCESSOR_TIMEOUT_MS").unwrap();
        assert_eq!((timeout.unit, timeout.allowed.as_str()), ("ms", "1 to 600000"));
    }

    /// The errors of `pairs` from every rule of `severity`.
    fn broken(pairs: &[(&str, &str)], severity: Severity) -> Vec<String> {
        let c = Config::read(&Env {
            lookup: &|name: &str| {
                pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
            },
            effective: RefCell::new(Vec::new()),
        })
        .unwrap();
        RULES
            .iter()
            .filter(|rule| rule.severity == severity)
            .filter_map(|rule| (rule.check)(&c).err())
            .map(|e| e.to_string())
            .collect()
    }

    /// Goal: the defaults and the contest's pair break no rule.
    #[test]
    fn defaults_keep_every_rule() {
        let pair = [("PEER_ADDR", "127.0.0.1:9102"), ("PEER_BIND_ADDR", "127.0.0.1:9101")];
        let contest = [pair.as_slice(), &[("WORKER_COUNT", "1")]].concat();
        for pairs in [&[][..], &contest] {
            assert_eq!(broken(pairs, Severity::Refuse), Vec::<String>::new());
            assert_eq!(broken(pairs, Severity::Warn), Vec::<String>::new());
        }
    }

    /// Goal: a peer timeout over half the peer calls' budget (1.2 s) refuses the start, at 601
    /// ms and not at 600.
    #[test]
    fn rule_peer_retry_fits() {
        assert!(config(&[("PEER_TIMEOUT_MS", "600")]).is_ok());
        let err = config(&[("PEER_TIMEOUT_MS", "601")]).unwrap_err().to_string();
        assert!(err.starts_with("PEER_TIMEOUT_MS=\"601\": expected at most 600 ms"), "{err}");
    }

    /// Goal: an overdue margin not below the timeout margin refuses the start.
    #[test]
    fn rule_overdue_before_timeout() {
        let at = |overdue: &str| {
            config(&[("OVERDUE_MARGIN_MS", overdue), ("PROCESSOR_TIMEOUT_MARGIN_MS", "1000")])
        };
        assert!(at("999").is_ok());
        let err = at("1000").unwrap_err().to_string();
        assert!(err.contains("less than PROCESSOR_TIMEOUT_MARGIN_MS (1000 ms)"), "{err}");
    }

    /// Goal: the peer link on the API's port, or pointed at itself, refuses the start.
    #[test]
    fn rule_peer_apart() {
        let err = config(&[("PEER_BIND_ADDR", "127.0.0.1:9999")]).unwrap_err().to_string();
        assert!(err.starts_with("PEER_BIND_ADDR="), "{err}");
        let itself = [("PEER_BIND_ADDR", "127.0.0.1:9101"), ("PEER_ADDR", "127.0.0.1:9101")];
        assert!(config(&itself).unwrap_err().to_string().starts_with("PEER_ADDR="));
        assert!(config(&[("PEER_BIND_ADDR", "127.0.0.1:9101")]).is_ok());
    }

    /// Goal: the peer's journal folder being this instance's own refuses the start.
    #[test]
    fn rule_journals_apart() {
        let same = [("JOURNAL_DIR", "/journal/a"), ("PEER_JOURNAL_DIR", "/journal/a")];
        assert!(config(&same).unwrap_err().to_string().starts_with("PEER_JOURNAL_DIR="));
        let apart = [("JOURNAL_DIR", "/journal/a"), ("PEER_JOURNAL_DIR", "/journal/b")];
        assert!(config(&apart).is_ok());
    }

    /// Goal: slots × cores × instances over a processor's 800 concurrent requests warns,
    /// counting two instances when a peer is set, and starts anyway.
    #[test]
    fn rule_processor_concurrency_kept() {
        let alone = [("WORKER_COUNT", "2"), ("PROCESSOR_INFLIGHT_MAX", "400")];
        assert_eq!(broken(&alone, Severity::Warn), Vec::<String>::new());
        let pair = [alone.as_slice(), &[("PEER_ADDR", "127.0.0.1:9102")]].concat();
        let warnings = broken(&pair, Severity::Warn);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("PROCESSOR_INFLIGHT_MAX=\"400\": expected at most 200"));
        assert_eq!(config(&pair).unwrap().warnings().len(), 1, "a warning, not a refusal");
    }

    /// Goal: fewer forwarding tasks than a processor's slots warns.
    #[test]
    fn rule_slots_fillable() {
        let few = [("DISPATCH_INFLIGHT_MAX", "10"), ("PROCESSOR_INFLIGHT_MAX", "11")];
        let warnings = broken(&few, Severity::Warn);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("DISPATCH_INFLIGHT_MAX="), "{warnings:?}");
        let enough = [("DISPATCH_INFLIGHT_MAX", "11"), ("PROCESSOR_INFLIGHT_MAX", "11")];
        assert_eq!(broken(&enough, Severity::Warn), Vec::<String>::new());
    }

    /// Goal: an overdue plan not below the attempt's cap warns (tests shorten the cap on
    /// purpose, so it is no refusal).
    #[test]
    fn rule_overdue_plan_fits() {
        let warnings = broken(&[("PROCESSOR_TIMEOUT_MS", "5000")], Severity::Warn);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("OVERDUE_PLAN_DELAY_MS=\"5000\""), "{warnings:?}");
        assert_eq!(
            broken(&[("PROCESSOR_TIMEOUT_MS", "5001")], Severity::Warn),
            Vec::<String>::new()
        );
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
