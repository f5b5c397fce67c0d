//! `payrelay`: read the configuration, start the cores, serve until SIGTERM, drain, exit.
//!
//! `payrelay hold` does nothing until SIGTERM: in compose, the container that holds the network
//! namespace both instances join (a pod's pause container), so that either instance can die and
//! come back while the other keeps port 9999.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use payrelay::{boot, config::Config};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("hold") => {
            let signal = wait_for(&block_termination_signals());
            eprintln!("payrelay hold: signal {signal}; exiting");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("payrelay: unknown argument {other:?} (no argument: serve; `hold`: hold)");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("payrelay: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Lives for the whole process; every core reads it.
    let config: &'static Config = Box::leak(Box::new(config));
    // Blocked before the workers exist, so they inherit the mask and only this thread
    // ever takes SIGTERM/SIGINT, synchronously, below.
    let signals = block_termination_signals();
    if !boot::free_small_blocks_at_once() {
        eprintln!("payrelay: the allocator keeps its fast bins: a flood's memory may stay held");
    }
    match boot::raise_open_files_limit() {
        Ok(limit) => eprintln!("payrelay: open files limit {limit}"),
        Err(e) => eprintln!("payrelay: open files limit unchanged: {e}"),
    }
    let running = match boot::start(config) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("payrelay: start: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("payrelay: ready, {} cores", running.cores());
    let signal = wait_for(&signals);
    let deadline = Instant::now() + Duration::from_millis(config.drain_deadline_ms);
    eprintln!("payrelay: signal {signal}: draining (deadline {} ms)", config.drain_deadline_ms);
    let report = running.drain(deadline);
    if report == boot::DrainReport::default() {
        eprintln!("payrelay: drained; exiting");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "payrelay: drain incomplete: {} payments not forwarded, {} cores silent",
            report.held, report.silent_cores
        );
        ExitCode::FAILURE
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts).
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before use, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals and returns its number.
fn wait_for(set: &libc::sigset_t) -> i32 {
    loop {
        let mut signal = 0;
        // SAFETY: `set` was initialised by block_termination_signals; `signal` is a valid
        // out-pointer for the duration of the call.
        if unsafe { libc::sigwait(set, &mut signal) } == 0 {
            return signal;
        }
    }
}
