//! What more than one part of the pair needs, kept here so that they need not import each
//! other.

use std::{
    io,
    process::{Child, ExitStatus},
    thread,
    time::{Duration, Instant},
};

/// Polling step while waiting for a child to exit.
pub(super) const EXIT_POLL: Duration = Duration::from_millis(10);

/// Sends SIGTERM to `child` unless it has already exited; whether it was still running. An
/// exited child is not signalled: once reaped, its pid may belong to another process.
pub fn sigterm(child: &mut Child) -> bool {
    if !matches!(child.try_wait(), Ok(None)) {
        return false;
    }
    // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    true
}

/// How a child ended in [`wait_or_kill`].
#[derive(Debug)]
pub enum Ending {
    /// It exited by itself.
    Exited(ExitStatus),
    /// Waiting for it failed.
    WaitFailed(io::Error),
    /// It was still running at the deadline, and was SIGKILLed and reaped.
    Killed,
}

/// Waits for `child` to exit until `deadline`, then SIGKILLs and reaps it.
pub fn wait_or_kill(child: &mut Child, deadline: Instant) -> Ending {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ending::Exited(status),
            Err(e) => return Ending::WaitFailed(e),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Ending::Killed;
            }
            Ok(None) => thread::sleep(EXIT_POLL),
        }
    }
}

/// Nanoseconds since the epoch: a suffix that keeps this run's names (log directory, cgroups,
/// temporary files) apart from another run's.
pub(super) fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
