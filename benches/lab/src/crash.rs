//! The crash harness: one payrelay instance SIGKILLed at the scenario's moments (`[kills]`) and
//! restarted after the scenario's restart delay (at once by default) while the load runs, then
//! every accepted payment looked up in the processors' books.
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

/// What the harness does to the pair: which instance it kills, when, and how long each time
/// the instance stays down.
#[derive(Debug, Clone, Copy)]
pub struct Schedule<'a> {
    /// The instance killed: `a` or `b`.
    pub instance: &'a str,
    /// The kill moments, seconds after the load's start, in increasing order.
    pub moments_s: &'a [f64],
    /// From a kill's end (the process reaped, its sockets released) to the restart.
    pub restart_delay: Duration,
}

/// Kills `schedule.instance` of `backend` at each of `schedule.moments_s` (the load's start is
/// what `load_started` tells), restarting it `schedule.restart_delay` later each time, without
/// waiting for it to answer. Stops early, without an error, once `load_finished` says the load
/// is over. Tells `restarted` each instance name and new process id. Returns how many kills it
/// made; a kill or restart that fails ends it with the error.
///
/// A load that ends while a killed instance waits for its restart cuts the wait short: the
/// instance is restarted at once, and then the schedule stops. The pair must be whole for
/// teardown: the restarted instance recovers from its journal what it had accepted before the
/// kill and forwards it while teardown waits for the books to settle, so leaving it down would
/// count those payments as lost (the harness's doing, not the backend's), and a dead instance
/// at teardown is reported as one that died. An orchestrator would restart it whatever the
/// test was doing, too.
///
/// Call it from the thread that started `backend`: a restarted child gets SIGTERM when the
/// thread that spawned it exits (see [`Backend::restart`]).
pub fn run_schedule(
    backend: &mut Backend,
    schedule: Schedule<'_>,
    load_started: &Receiver<Instant>,
    load_finished: &dyn Fn() -> bool,
    restarted: &dyn Fn(&str, u32),
    verbose: bool,
) -> Result<u64, String> {
    let Some(started) = wait_load_start(load_started, load_finished) else {
        return Ok(0);
    };
    let instance = schedule.instance;
    let mut kills_made = 0;
    for &moment_s in schedule.moments_s {
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
        let down_since = Instant::now();
        let waited_out = sleep_until(down_since + schedule.restart_delay, load_finished);
        let new_pid = backend.restart(instance)?;
        let down = down_since.elapsed();
        restarted(instance, new_pid);
        kills_made += 1;
        if verbose {
            // An instance that had died by itself before the kill is a finding of its own.
            let how = match status.signal() {
                Some(libc::SIGKILL) => String::new(),
                _ => format!(", had already exited: {status}"),
            };
            eprintln!(
                "  t={killed_at_s:.1}s kill {instance} (pid {old_pid}{how}), restarted {} ms \
                 later as pid {new_pid}",
                down.as_millis()
            );
        }
        if !waited_out {
            break;
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
    use std::{cell::RefCell, net::SocketAddr, path::PathBuf, sync::mpsc};

    use bytes::Bytes;
    use hyper::Method;

    use super::*;
    use crate::{backend::BackendSpec, client::Conn, emulator::EmulatorConfig};

    /// A pair of `tests/fixtures/fake-payrelay` stand-ins: they run until killed and call no
    /// processor, so the schedule can kill and restart them for real.
    fn fake_pair() -> Backend {
        let spec = BackendSpec {
            payrelay: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fake-payrelay"
            )),
            api_port: 0,
            default_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            fallback_addr: SocketAddr::from(([127, 0, 0, 1], 2)),
            env_file: None,
            env: Vec::new(),
            journal: false,
            envelope: None,
        };
        Backend::start(&spec).expect("fake pair")
    }

    /// Runs `schedule` on `backend` for a load that started now and is over once
    /// `load_over_after` has passed; returns the kills made and when each restart was told.
    fn run(
        backend: &mut Backend,
        schedule: Schedule<'_>,
        load_over_after: Duration,
    ) -> (Result<u64, String>, Instant, Vec<Instant>) {
        let (started, load_started) = mpsc::channel();
        let began = Instant::now();
        started.send(began).expect("the schedule listens");
        let restarts = RefCell::new(Vec::new());
        let made = run_schedule(
            backend,
            schedule,
            &load_started,
            &|| began.elapsed() >= load_over_after,
            &|name, _pid| {
                assert_eq!(name, schedule.instance);
                restarts.borrow_mut().push(Instant::now());
            },
            false,
        );
        (made, began, restarts.into_inner())
    }

    /// Goal: a killed instance stays down for the restart delay, then is started again, as an
    /// orchestrator waits before starting a container again. Method: a pair of stand-ins, one
    /// kill at once with a 300 ms restart delay: the restart comes no sooner, and B runs
    /// afterwards.
    #[test]
    fn a_killed_instance_stays_down_for_the_restart_delay() {
        let mut backend = fake_pair();
        let delay = Duration::from_millis(300);
        let schedule = Schedule { instance: "b", moments_s: &[0.0], restart_delay: delay };
        let (made, began, restarts) = run(&mut backend, schedule, Duration::from_secs(60));
        assert_eq!(made, Ok(1));
        assert_eq!(restarts.len(), 1);
        assert!(restarts[0] - began >= delay, "restarted after {:?}", restarts[0] - began);
        assert_eq!(backend.exited(), None, "b runs again");
        backend.keep_logs(false);
    }

    /// Goal: a load that ends while the killed instance waits for its restart cuts the wait
    /// short: the instance is restarted at once, so the pair is whole for teardown, and no
    /// kill follows. Method: a pair of stand-ins, kills at 0 s and 1 s with a 30 s restart
    /// delay, and a load over after 200 ms: one kill, one restart well before 30 s, both
    /// instances running.
    #[test]
    fn a_load_that_ends_during_the_restart_delay_restarts_at_once() {
        let mut backend = fake_pair();
        let delay = Duration::from_secs(30);
        let schedule = Schedule { instance: "b", moments_s: &[0.0, 1.0], restart_delay: delay };
        let (made, began, restarts) = run(&mut backend, schedule, Duration::from_millis(200));
        assert_eq!(made, Ok(1));
        assert_eq!(restarts.len(), 1);
        assert!(restarts[0] - began < Duration::from_secs(5), "{:?}", restarts[0] - began);
        assert!(began.elapsed() < Duration::from_secs(5), "the schedule stopped");
        assert_eq!(backend.exited(), None, "both instances run at teardown");
        backend.keep_logs(false);
    }

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
