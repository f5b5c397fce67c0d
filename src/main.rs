//! `payrelay`: read the configuration, start the cores, serve until SIGTERM, drain, exit.
//!
//! `payrelay hold` does nothing until SIGTERM: in compose, the container that holds the network
//! namespace both instances join (a pod's pause container), so that either instance can die and
//! come back while the other keeps port 9999. `--help`, `--version` and `--check` print and
//! exit; anything else is a usage error (exit 2). Hand-written: five forms, no options to
//! combine, not worth a parser crate.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use payrelay::{
    COMMIT, VERSION, boot,
    config::{self, Config, ConfigError, Severity},
    log,
};

/// The forms the command takes, for `--help` and a usage error.
const USAGE: &str = "\
usage:
  payrelay            serve, configured by the environment (below), until SIGTERM
  payrelay --check    check the environment as a start would, bind nothing, and exit
  payrelay hold       hold a network namespace (compose's pause container) until SIGTERM
  payrelay --version  print the version and git commit
  payrelay --help     print this";

/// A configuration that does not parse or breaks a rule (also a usage error's status).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => serve(),
        ["hold"] => {
            let signal = wait_for(&block_termination_signals());
            log::info!("hold: signal {signal}; exiting");
            ExitCode::SUCCESS
        }
        ["--help" | "-h"] => {
            say(&help());
            ExitCode::SUCCESS
        }
        ["--version" | "-V"] => {
            say(&format!("payrelay {VERSION} (commit {COMMIT})\n"));
            ExitCode::SUCCESS
        }
        ["--check"] => check(),
        _ => {
            eprintln!("payrelay: unknown arguments {args:?}\n{USAGE}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints `text` on stdout; a closed pipe (`payrelay --help | head`) is no error of ours.
fn say(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `--help`: the forms, then every variable from the knobs table, then the rules between them.
fn help() -> String {
    let knobs = config::knobs_help();
    let width = |column: fn(&config::KnobHelp) -> usize| knobs.iter().map(column).max();
    let name_w = width(|k| k.name.len()).unwrap_or(0);
    let unit_w = width(|k| k.unit.len()).unwrap_or(0).max("UNIT".len());
    let default_w = width(|k| k.default.len()).unwrap_or(0).max("DEFAULT".len());
    let mut text = format!(
        "payrelay {VERSION} (commit {COMMIT}): a payment intermediary for Rinha de Backend \
         2025.\n\n{USAGE}\n\nEnvironment (tuning/README.md says what each does and when to \
         change it; empty counts as unset):\n"
    );
    let mut row = |name: &str, unit: &str, default: &str, allowed: &str| {
        text.push_str(&format!(
            "  {name:name_w$}  {unit:unit_w$}  {default:default_w$}  {allowed}\n"
        ));
    };
    row("VARIABLE", "UNIT", "DEFAULT", "ALLOWED");
    for knob in &knobs {
        row(knob.name, knob.unit, &knob.default, &knob.allowed);
    }
    text.push_str("\nRules between variables (checked at start and by --check):\n");
    for rule in config::RULES {
        let taken = match rule.severity {
            Severity::Refuse => "refuses to start",
            Severity::Warn => "warns",
        };
        text.push_str(&format!("  {}: {taken} when broken\n", rule.name));
    }
    text
}

/// `--check`: the configuration as a start reads it (every variable, the rules between them,
/// the connection cap against the memory limit) and the io driver as a start chooses it;
/// nothing is bound, and the processors' names are not resolved (a start waits for them).
fn check() -> ExitCode {
    let config = match Config::check_env() {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("payrelay: configuration: {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let warnings = config.warnings();
    for w in &warnings {
        eprintln!("payrelay: warning: {w}");
    }
    let driver = match boot::choose_driver(&config) {
        Ok(driver) => driver,
        Err(e) => {
            eprintln!("payrelay: IO_DRIVER={}: {e}", config.io_driver.name());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    say(&format!(
        "payrelay: configuration ok: {} cores, io driver {}, API {}, peer link {}, journal {}, \
         {} connections per core, {} warning(s)\n",
        config.workers(),
        driver.name(),
        config.api_bind_addr,
        config.peer_bind_addr.map_or_else(|| "none".to_owned(), |addr| addr.to_string()),
        config.journal_dir.as_ref().map_or_else(|| "off".to_owned(), |d| d.display().to_string()),
        config.connections_max,
        warnings.len(),
    ));
    ExitCode::SUCCESS
}

/// Logs each configuration error; the start's status for them.
fn refuse(errors: &[ConfigError]) -> ExitCode {
    for e in errors {
        log::error!("configuration: {e}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn serve() -> ExitCode {
    let config = match Config::check_env() {
        Ok(config) => config,
        Err(errors) => return refuse(&errors),
    };
    log::set_level(config.log_level);
    for w in config.warnings() {
        log::warn!("configuration: {w}");
    }
    // Lives for the whole process; every core reads it.
    let config: &'static Config = Box::leak(Box::new(config));
    // Blocked before the workers exist, so they inherit the mask and only this thread
    // ever takes SIGTERM/SIGINT, synchronously, below.
    let signals = block_termination_signals();
    if !boot::free_small_blocks_at_once() {
        log::warn!("the allocator keeps its fast bins: a flood's memory may stay held");
    }
    match boot::raise_open_files_limit() {
        Ok(limit) => log::info!("open files limit {limit}"),
        Err(e) => log::warn!("open files limit unchanged: {e}"),
    }
    let running = match boot::start(config) {
        Ok(running) => running,
        Err(e) => {
            log::error!("start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!("ready, {} cores", running.cores());
    let signal = wait_for(&signals);
    let deadline = Instant::now() + Duration::from_millis(config.drain_deadline_ms);
    log::info!("signal {signal}: draining (deadline {} ms)", config.drain_deadline_ms);
    let report = running.drain(deadline);
    if report == boot::DrainReport::default() {
        log::info!("drained; exiting");
        ExitCode::SUCCESS
    } else {
        log::error!(
            "drain incomplete: {} payments not forwarded, {} cores silent",
            report.held,
            report.silent_cores
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
