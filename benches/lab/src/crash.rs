//! The crash harness: one payrelay instance SIGKILLed at the scenario's moments (`[kills]`) and
//! restarted at once while the load runs, then every accepted payment looked up in the
//! processors' books.
//!
//! A kill is what a crash, an OOM kill or a container's hard stop does: no drain, whatever the
//! instance held in memory is gone unless it was made durable. The other instance keeps
//! serving the shared port meanwhile, so the load goes on; the restarted one is not waited for
//! (it joins the shared port when it is up). What the harness checks afterwards is the promise
//! a `202` makes: a payment accepted is paid exactly once.

use std::{
    os::unix::process::ExitStatusExt,
    sync::mpsc::{Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use crate::{
    backend::Backend,
    emulator::{Emulator, Which},
};

/// How often the schedule looks whether the load has ended while it waits for a moment: the load
/// can end early (an error, Ctrl-C), and then no kill is due any more.
const SCHEDULE_POLL: Duration = Duration::from_millis(50);

/// Kills `instance` (`a` or `b`) of `backend` at each of `moments_s` (seconds after the load's
/// start, which `load_started` tells, in increasing order), restarting it at once each time
/// without waiting for it to answer. Stops early, without an error, once `load_finished` says
/// the load is over. Tells `restarted` each instance name and new process id. Returns how many
/// kills it made; a kill or restart that fails ends it with the error.
///
/// Call it from the thread that started `backend`: a restarted child gets SIGTERM when the
/// thread that spawned it exits (see [`Backend::restart`]).
pub fn run_schedule(
    backend: &mut Backend,
    instance: &str,
    moments_s: &[f64],
    load_started: &Receiver<Instant>,
    load_finished: &dyn Fn() -> bool,
    restarted: &dyn Fn(&str, u32),
    verbose: bool,
) -> Result<u64, String> {
    let Some(started) = wait_load_start(load_started, load_finished) else {
        return Ok(0);
    };
    let mut kills_made = 0;
    for &moment_s in moments_s {
        if !sleep_until(started + Duration::from_secs_f64(moment_s), load_finished) {
            break;
        }
        let old_pid = backend
            .pids()
            .into_iter()
            .find_map(|(name, pid)| (name == instance).then_some(pid))
            .ok_or_else(|| format!("no payrelay instance named {instance:?}"))?;
        let killed_at_s = started.elapsed().as_secs_f64();
        let status = backend.kill(instance)?;
        let new_pid = backend.restart(instance)?;
        restarted(instance, new_pid);
        kills_made += 1;
        if verbose {
            // An instance that had died by itself before the kill is a finding of its own.
            let how = match status.signal() {
                Some(libc::SIGKILL) => String::new(),
                _ => format!(", had already exited: {status}"),
            };
            eprintln!(
                "  t={killed_at_s:.1}s kill {instance} (pid {old_pid}{how}), restarted as pid \
                 {new_pid}"
            );
        }
    }
    Ok(kills_made)
}

/// The load's start as the load reports it, or `None` if the load ended (or dropped its side)
/// before starting.
fn wait_load_start(
    load_started: &Receiver<Instant>,
    load_finished: &dyn Fn() -> bool,
) -> Option<Instant> {
    loop {
        match load_started.recv_timeout(SCHEDULE_POLL) {
            Ok(started) => return Some(started),
            Err(RecvTimeoutError::Timeout) if !load_finished() => {}
            Err(_) => return None,
        }
    }
}

/// Sleeps until `at`; `false` if the load ended first.
fn sleep_until(at: Instant, load_finished: &dyn Fn() -> bool) -> bool {
    loop {
        if load_finished() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        thread::sleep((at - now).min(SCHEDULE_POLL));
    }
}

/// Accepted payments against the processors' books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookCheck {
    /// Accepted, and in neither processor's book: lost.
    pub lost: u64,
    /// Accepted, and in both books: paid twice.
    pub twice: u64,
}

/// Looks every accepted correlationId up in both of `emulator`'s books.
pub fn check_books(emulator: &Emulator, accepted_ids: &[uuid::Uuid]) -> BookCheck {
    let mut check = BookCheck::default();
    let mut text = uuid::Uuid::encode_buffer();
    for id in accepted_ids {
        let id = id.hyphenated().encode_lower(&mut text);
        match (emulator.holds(Which::Default, id), emulator.holds(Which::Fallback, id)) {
            (false, false) => check.lost += 1,
            (true, true) => check.twice += 1,
            _ => {}
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use bytes::Bytes;
    use hyper::Method;

    use super::*;
    use crate::{client::Conn, emulator::EmulatorConfig};

    /// Goal: the schedule kills nothing once the load is over, whether the load ended before
    /// starting or while a moment was still ahead, and does not sit out that moment. Method: a
    /// load that drops its side unstarted, one that is over before starting, and a moment 30 s
    /// ahead of a load that is over: each returns at once with nothing due.
    #[test]
    fn schedule_stops_when_the_load_is_over() {
        let (tx, rx) = mpsc::channel();
        drop(tx);
        assert_eq!(wait_load_start(&rx, &|| false), None, "the load dropped its side");
        let (tx, rx) = mpsc::channel::<Instant>();
        assert_eq!(wait_load_start(&rx, &|| true), None, "the load ended before starting");
        drop(tx);

        let began = Instant::now();
        assert!(!sleep_until(began + Duration::from_secs(30), &|| true));
        assert!(began.elapsed() < Duration::from_secs(1));
        assert!(sleep_until(began, &|| false), "a moment already past is due at once");
    }

    /// Goal: an accepted payment in neither book counts as lost, in both as paid twice, in one
    /// as neither. Method: real emulated processors; one payment posted to the default, one to
    /// both, one nowhere, then the three ids checked.
    #[test]
    fn books_tell_lost_and_twice() {
        let emulator =
            crate::emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("processors");
        let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let post = |which: Which, id: uuid::Uuid| {
            let body = format!(
                r#"{{"correlationId":"{id}","amount":19.9,"requestedAt":"2025-07-15T12:00:00.000Z"}}"#
            );
            let mut conn = Conn::new(emulator.addr(which));
            let reply = runtime.block_on(conn.request(
                Method::POST,
                "/payments",
                &[],
                Some(Bytes::from(body)),
                Duration::from_secs(2),
            ));
            assert_eq!(reply.map(|r| r.status).ok(), Some(200));
        };
        post(Which::Default, ids[0]);
        post(Which::Default, ids[1]);
        post(Which::Fallback, ids[1]);
        assert_eq!(check_books(&emulator, &ids), BookCheck { lost: 1, twice: 1 });
    }
}
