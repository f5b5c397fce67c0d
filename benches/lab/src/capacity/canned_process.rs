//! `rinha-lab canned` as a process of its own, so that `/proc` can tell its CPU time apart from
//! the load generator's, as it tells each payrelay instance's.
//!
//! Who starts it: the `rinha-lab` binary when there is one (the lab's own tests have it), or the
//! running executable again ([`CannedCommand::this_executable`]) for the capacity bench, which
//! is built in the payrelay package and so has no `rinha-lab` binary beside it; such an
//! executable calls [`serve_if_child`] first thing in `main`. Readiness is the line the canned
//! command prints once it listens, with its address: no sleep, no fixed port.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::backend::{sigterm, wait_or_kill};

/// Set in the environment of an executable started by [`CannedCommand::this_executable`]: it
/// serves `canned` instead of doing its own work ([`serve_if_child`]).
pub const CANNED_CHILD_ENV: &str = "RINHA_LAB_CANNED_CHILD";
/// How long the canned process may take to print its address: it binds at once, so only a
/// machine stalled for seconds takes longer.
const READY_MAX: Duration = Duration::from_secs(10);
/// How long it gets to exit after SIGTERM (it has no handler: it dies at once) before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How often the wait for its address also checks that it has not exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// How to start `rinha-lab canned` on an ephemeral loopback port.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments: `canned --port 0 --bind 127.0.0.1`.
    pub args: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
}

impl CannedCommand {
    /// The `rinha-lab` binary at `program`.
    pub fn rinha_lab(program: PathBuf) -> CannedCommand {
        CannedCommand { program, args: canned_args(), env: Vec::new() }
    }

    /// The running executable again, told by [`CANNED_CHILD_ENV`] to serve `canned`: for a
    /// binary whose `main` calls [`serve_if_child`] before anything else.
    pub fn this_executable() -> Result<CannedCommand, String> {
        let program =
            std::env::current_exe().map_err(|e| format!("the running executable: {e}"))?;
        Ok(CannedCommand {
            program,
            args: canned_args(),
            env: vec![(CANNED_CHILD_ENV.to_owned(), "1".to_owned())],
        })
    }
}

/// `rinha-lab canned` on a free loopback port.
fn canned_args() -> Vec<String> {
    ["canned", "--port", "0", "--bind", "127.0.0.1"].map(str::to_owned).to_vec()
}

/// In an executable started by [`CannedCommand::this_executable`], serves `canned` with the
/// arguments it was given (until it is signalled) and returns its exit code; elsewhere `None`,
/// at once.
pub fn serve_if_child() -> Option<ExitCode> {
    std::env::var_os(CANNED_CHILD_ENV)?;
    // The arguments are always `canned_args()`: an ephemeral loopback port.
    match crate::canned::serve(std::net::Ipv4Addr::LOCALHOST, 0, None) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("canned: {e}");
            Some(ExitCode::FAILURE)
        }
    }
}

/// The address in the line `rinha-lab canned` prints once it listens
/// (`canned 202 server listening on http://127.0.0.1:PORT (Ctrl-C to stop)`).
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let after = &line[line.find("http://")? + "http://".len()..];
    after.split_whitespace().next()?.trim_end_matches('/').parse().ok()
}

/// The running canned process. Dropping it stops it (SIGTERM, then SIGKILL) and reaps it.
#[derive(Debug)]
pub struct CannedProcess {
    child: Child,
    addr: SocketAddr,
}

impl CannedProcess {
    /// Starts the command and returns once it listens (it has printed its address), or an
    /// error naming the command if it exits or stays silent for 10 s.
    ///
    /// Like the payrelay pair, the child gets SIGTERM if the calling thread exits
    /// (`PR_SET_PDEATHSIG`): keep the handle on the thread that started it.
    pub fn start(command: &CannedCommand) -> Result<CannedProcess, String> {
        let name = format!("{} {}", command.program.display(), command.args.join(" "));
        let mut spawn = Command::new(&command.program);
        spawn
            .args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            spawn.pre_exec(|| {
                // Die with the thread that started us, even if the lab is SIGKILLed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = spawn.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or_else(|| format!("{name}: no stdout pipe"))?;
        let (heard, addr_heard) = mpsc::channel();
        // Reads every line until the child exits, so that it never blocks on a full pipe; only
        // the first address is passed on.
        thread::Builder::new()
            .name("canned-stdout".into())
            .spawn(move || {
                let mut addr_sent = false;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if !addr_sent && let Some(addr) = listening_addr(&line) {
                        addr_sent = heard.send(addr).is_ok();
                    }
                }
            })
            .map_err(|e| format!("{name}: reading its output: {e}"))?;
        let mut process = CannedProcess { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
        process.addr = process.wait_listening(&addr_heard, &name)?;
        Ok(process)
    }

    /// Waits for the address line, failing early if the child exits.
    fn wait_listening(
        &mut self,
        addr_heard: &mpsc::Receiver<SocketAddr>,
        name: &str,
    ) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + READY_MAX;
        loop {
            match addr_heard.recv_timeout(EXIT_POLL) {
                Ok(addr) => return Ok(addr),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Its output ended without an address: it exited, or is about to.
                    let how = self.exited().unwrap_or_else(|| "still running".to_owned());
                    return Err(format!("{name} closed its output before listening ({how})"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(how) = self.exited() {
                return Err(format!("{name} stopped before listening: {how}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("{name} printed no address in {READY_MAX:?}"));
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Why it is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("the canned server exited with {status}")),
            Ok(None) => None,
            Err(e) => Some(format!("the canned server: wait: {e}")),
        }
    }
}

impl Drop for CannedProcess {
    fn drop(&mut self) {
        sigterm(&mut self.child);
        wait_or_kill(&mut self.child, Instant::now() + TERM_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the readiness line yields the address, and nothing else does. Method: the line
    /// `rinha-lab canned` prints, and lines that are not it.
    #[test]
    fn reads_the_address_from_the_ready_line() {
        let line = "canned 202 server listening on http://127.0.0.1:40123 (Ctrl-C to stop)";
        assert_eq!(listening_addr(line), Some(SocketAddr::from(([127, 0, 0, 1], 40123))));
        assert_eq!(
            listening_addr("on http://127.0.0.1:9/"),
            Some(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        assert_eq!(listening_addr("starting"), None);
        assert_eq!(listening_addr("http://localhost:80"), None);
    }

    /// Goal: the command for the running executable marks the child, and the one for the
    /// `rinha-lab` binary does not; outside a marked child, `serve_if_child` returns at once.
    /// Method: build both; call it in the test process, which is not marked.
    #[test]
    fn child_commands_ask_for_canned_on_an_ephemeral_port() {
        let own = CannedCommand::this_executable().expect("current exe");
        assert_eq!(own.env, [(CANNED_CHILD_ENV.to_owned(), "1".to_owned())]);
        assert_eq!(own.args, ["canned", "--port", "0", "--bind", "127.0.0.1"]);
        let lab = CannedCommand::rinha_lab(PathBuf::from("rinha-lab"));
        assert!(lab.env.is_empty());
        assert_eq!(lab.args, own.args);
        assert!(std::env::var_os(CANNED_CHILD_ENV).is_none(), "the test process is not a child");
        assert_eq!(serve_if_child(), None);
    }
}
