//! Log: one line per event on stderr, `<time> <level> core=<id|main> <message>`, e.g.
//! `2026-12-07T01:43:27.123Z info core=0 holding payments for the cheaper processor`.
//!
//! The time is RFC 3339 in UTC with milliseconds (the crate's own formatter,
//! [`timestamp::format_iso`]); the level is `error`, `warn`, `info` or `debug`, and
//! `LOG_LEVEL` keeps the lines at or above one (default `info`); `core=` names the worker core
//! whose thread wrote the line, or `main` for the process's own thread (start, signals, drain).
//! Nothing is logged per payment: the lines are the start, the journal's recovery, pinning and
//! accept errors, holds, drains.
//!
//! Hand-written rather than the `log` crate (in `Cargo.lock` through mio): the server logs a
//! few dozen kinds of events, and what a line needs is a level check, the core it comes from
//! and a timestamp. Here that is one relaxed atomic load before anything is formatted, a
//! thread-local set once per core, and the formatter the forwarding already uses. With `log`
//! it would be a global logger to install, a `Record` per line and the same formatting still to
//! write, for no filter or sink this server uses.

use std::{
    cell::Cell,
    fmt,
    io::Write,
    sync::atomic::{AtomicU8, Ordering},
};

use crate::timestamp;

/// How severe a line is; a line is written when its level is at or above `LOG_LEVEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed that the server cannot work around (a start that fails, a journal
    /// that cannot be written).
    Error = 0,
    /// Something the operator should know of; the server goes on (a fallback, a retry).
    Warn = 1,
    /// The start-up lines and each event (holds, drains).
    Info = 2,
    /// More detail on events; still nothing per payment.
    Debug = 3,
}

impl Level {
    /// Every level, most severe first.
    pub const ALL: [Level; 4] = [Level::Error, Level::Warn, Level::Info, Level::Debug];

    /// Its name, as `LOG_LEVEL` takes it and a line shows it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level named `text` (any case), if any.
    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.name().eq_ignore_ascii_case(text))
    }
}

/// The least severe level written; `info` until `main` sets `LOG_LEVEL`'s.
static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);

thread_local! {
    /// The worker core this thread runs, if it is one.
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Keeps lines at or above `level` from now on, in every thread.
pub fn set_level(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` is written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= THRESHOLD.load(Ordering::Relaxed)
}

/// Names this thread's lines `core=<id>`: called once by each worker thread as it starts.
pub fn set_core(id: usize) {
    CORE.with(|core| core.set(Some(id)));
}

/// Writes one line at `level`, if enabled. The line is formatted whole, then written with one
/// call, so that lines of different threads never interleave. A failed write is dropped: there
/// is nowhere else to say so.
pub fn write(level: Level, message: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = format_line(timestamp::now_ms(), level, CORE.with(Cell::get), message);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One line: `<time> <level> core=<id|main> <message>\n`, the time `now_ms` in RFC 3339.
fn format_line(
    now_ms: i64,
    level: Level,
    core: Option<usize>,
    message: fmt::Arguments<'_>,
) -> String {
    let time = timestamp::format_iso(now_ms);
    // Every byte of the timestamp is an ASCII digit or separator.
    let time = std::str::from_utf8(&time).unwrap_or("-");
    let mut line = String::with_capacity(128);
    let _ = match core {
        Some(core) => fmt::write(&mut line, format_args!("{time} {} core={core} ", level.name())),
        None => fmt::write(&mut line, format_args!("{time} {} core=main ", level.name())),
    };
    let _ = fmt::write(&mut line, message);
    line.push('\n');
    line
}

/// Logs a line at `error` (see [`crate::log`]).
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}

/// Logs a line at `warn` (see [`crate::log`]).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// Logs a line at `info` (see [`crate::log`]).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs a line at `debug` (see [`crate::log`]).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) };
}

pub use crate::{debug, error, info, warn};

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: levels parse by name in any case, order from most to least severe, and the
    /// threshold keeps exactly the lines at or above it.
    #[test]
    fn levels_and_threshold() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("trace"), None);
        for level in Level::ALL {
            assert_eq!(Level::parse(level.name()), Some(level));
        }
        assert!(Level::Error < Level::Debug);
        set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        set_level(Level::Info);
    }

    /// Goal: a line is the time (RFC 3339, UTC, milliseconds), the level, the core and the
    /// message, separated by single spaces. Method: format one of each kind, read it back.
    #[test]
    fn line_format() {
        let line = format_line(1_765_071_807_123, Level::Warn, Some(3), format_args!("a {}", 1));
        assert_eq!(line, "2025-12-07T01:43:27.123Z warn core=3 a 1\n");
        let line = format_line(0, Level::Info, None, format_args!("ready"));
        assert_eq!(line, "1970-01-01T00:00:00.000Z info core=main ready\n");
    }
}
