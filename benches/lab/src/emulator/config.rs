//! Which processor is which, and how to start the emulator.

use crate::framing::Framing;

/// The contest's health window.
pub const HEALTH_WINDOW_MS_DEFAULT: u64 = 5000;

/// Worker threads for the emulator's runtime: the work is timers and tiny JSON bodies.
const WORKER_THREADS_DEFAULT: usize = 2;

/// Which of the two processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The cheap one.
    Default,
    /// The expensive one.
    Fallback,
}

impl Which {
    pub(super) fn index(self) -> usize {
        match self {
            Which::Default => 0,
            Which::Fallback => 1,
        }
    }
}

impl std::str::FromStr for Which {
    type Err = String;

    fn from_str(text: &str) -> Result<Which, String> {
        match text {
            "default" => Ok(Which::Default),
            "fallback" => Ok(Which::Fallback),
            other => Err(format!("processor {other:?}: expected default or fallback")),
        }
    }
}

/// How to start the emulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmulatorConfig {
    /// Port for the default processor on 127.0.0.1; 0 picks a free one.
    pub default_port: u16,
    /// Port for the fallback processor on 127.0.0.1; 0 picks a free one.
    pub fallback_port: u16,
    /// Default processor fee rate (reported as `feePerTransaction`).
    pub fee_default: f64,
    /// Fallback processor fee rate.
    pub fee_fallback: f64,
    /// Length of the health endpoint's fixed window (5000 ms in the contest; tests shorten it).
    pub health_window_ms: u64,
    /// Threads of the emulator's own runtime.
    pub worker_threads: usize,
    /// How answers are framed on the wire (Kestrel's way by default).
    pub framing: Framing,
    /// The address both listen on: loopback, or every interface inside a container.
    pub bind: std::net::Ipv4Addr,
    /// Serve only this one (a container per processor, as the contest runs them).
    pub only: Option<Which>,
}

impl EmulatorConfig {
    /// The contest's processors on the given ports with the given fees.
    pub fn new(default_port: u16, fallback_port: u16, fee_default: f64, fee_fallback: f64) -> Self {
        EmulatorConfig {
            default_port,
            fallback_port,
            fee_default,
            fee_fallback,
            health_window_ms: HEALTH_WINDOW_MS_DEFAULT,
            worker_threads: WORKER_THREADS_DEFAULT,
            framing: Framing::Kestrel,
            bind: std::net::Ipv4Addr::LOCALHOST,
            only: None,
        }
    }
}
