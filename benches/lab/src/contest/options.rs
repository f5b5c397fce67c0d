//! What a contest run is asked to do: [`ContestOptions`] and the contest's ports. A leaf of
//! its own so that every part of `contest/` reads the options without importing the part that
//! runs them.

use std::path::PathBuf;

use crate::framing::Framing;

/// The contest's processor ports.
pub const DEFAULT_PORT: u16 = 8001;
/// See [`DEFAULT_PORT`].
pub const FALLBACK_PORT: u16 = 8002;
/// The contest's API port.
pub const API_PORT: u16 = 9999;

/// What to run.
#[derive(Debug, Clone)]
pub struct ContestOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// payrelay binary (ignored with `target`).
    pub payrelay: Option<PathBuf>,
    /// An already running backend (`http://127.0.0.1:9999`): only the processors are started.
    pub target: Option<String>,
    /// Where to write the results JSON.
    pub json: Option<PathBuf>,
    /// Default processor port (0: any free port).
    pub default_port: u16,
    /// Fallback processor port (0: any free port).
    pub fallback_port: u16,
    /// Shared API port for the started pair (0: any free port).
    pub api_port: u16,
    /// Extra environment for payrelay (`tuning/contest.env`).
    pub env_file: Option<PathBuf>,
    /// Run each instance in a cgroup with its service's limits from `compose_file`.
    pub envelope: bool,
    /// Give each instance a journal folder (`JOURNAL_DIR`, and the other's as
    /// `PEER_JOURNAL_DIR`), as the compose deployment does.
    pub journal: bool,
    /// The compose file whose limits the envelope applies.
    pub compose_file: PathBuf,
    /// Print progress lines and the results table.
    pub verbose: bool,
    /// How the emulated processors frame their answers (Kestrel's way unless comparing).
    pub framing: Framing,
    /// The processors are already running on 127.0.0.1 at `default_port` and `fallback_port`
    /// (containers, as the contest runs them): none is started, and what only the lab's own
    /// emulator can tell (`late_landings`, the progress line's queue lag) is left out.
    pub processors_running: bool,
    /// Account for every accepted payment (`--audit-ids`): the drain wait before teardown and
    /// a lookup of each accepted correlationId after it.
    pub audit_ids: bool,
}

impl ContestOptions {
    /// The contest's ports, the envelope on, verbose.
    pub fn new(scenario: impl Into<PathBuf>) -> ContestOptions {
        ContestOptions {
            scenario: scenario.into(),
            payrelay: None,
            target: None,
            json: None,
            default_port: DEFAULT_PORT,
            fallback_port: FALLBACK_PORT,
            api_port: API_PORT,
            env_file: Some(PathBuf::from("tuning/contest.env")),
            envelope: true,
            journal: true,
            compose_file: PathBuf::from("docker-compose.yml"),
            verbose: true,
            framing: Framing::Kestrel,
            processors_running: false,
            audit_ids: false,
        }
    }
}
