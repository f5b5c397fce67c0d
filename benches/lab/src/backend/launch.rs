//! What it takes to start an instance: the pair's spec, the env file, a free port, and the
//! spawn of one process that dies with the thread that started it.

use std::{
    ffi::CString,
    fs,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// How to start the pair.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The payrelay binary.
    pub payrelay: PathBuf,
    /// Shared API port; 0 picks a free one.
    pub api_port: u16,
    /// Where the default processor listens.
    pub default_addr: SocketAddr,
    /// Where the fallback processor listens.
    pub fallback_addr: SocketAddr,
    /// `KEY=VALUE` lines added to both instances' environment (skipped if missing).
    pub env_file: Option<PathBuf>,
    /// Variables for both instances after the env file's (these win): what the contest
    /// configures for the scenario it runs.
    pub env: Vec<(String, String)>,
    /// Give each instance a journal folder of its own under the run's folder
    /// (`JOURNAL_DIR`), and the other's as `PEER_JOURNAL_DIR`, as compose does on a volume.
    pub journal: bool,
    /// Apply the CPU and memory limits of this compose file's payrelay services, one cgroup
    /// per instance (A gets the first service's, B the second's), as compose applies them.
    pub envelope: Option<PathBuf>,
}

/// A free loopback port: bind :0, read it, release it. The port could in principle be taken
/// again before the child binds it; on loopback in a test run that is vanishingly rare.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped. A missing file is empty.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}:{}: expected KEY=VALUE", path.display(), number + 1));
        };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        pairs.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// How an instance is started: the program and the variables added to the parent's
/// environment (the env file's, then the per-instance ones, which win).
#[derive(Debug, Clone)]
pub(super) struct Launch {
    pub(super) program: PathBuf,
    pub(super) env: Vec<(String, String)>,
}

impl Launch {
    /// Starts the process, its stdout and stderr appended to `log`, inside the cgroups whose
    /// `cgroup.procs` files `join` names (none: where the lab runs): the child joins them before
    /// it runs the program, so the program never sees itself outside.
    pub(super) fn spawn(&self, log: &Path, join: &[CString]) -> Result<Child, String> {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.program);
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let join = join.to_vec();
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // open(2), write(2) and close(2), which are async-signal-safe, on paths made before the
        // fork; it allocates nothing and touches no memory of the parent.
        unsafe {
            command.pre_exec(move || {
                // Die with the thread that started us, even if the lab is SIGKILLed and its
                // drops never run.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Writing 0 to a cgroup's `cgroup.procs` moves the writer into it.
                for procs in &join {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let error = std::io::Error::last_os_error();
                    libc::close(fd);
                    if written != 1 {
                        return Err(error);
                    }
                }
                Ok(())
            });
        }
        command.spawn().map_err(|e| format!("starting {}: {e}", self.program.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::shared::unique;

    /// Goal: the tuning file format (comments, blanks, quotes, `export`) reads as intended and a
    /// missing file is simply empty. Method: a temporary file.
    #[test]
    fn env_file_format() {
        let path = std::env::temp_dir().join(format!("rinha-lab-env-{}", unique()));
        fs::write(&path, "# comment\n\nA=1\nexport B = \"two words\"\nC=x=y\n").expect("write");
        let pairs = read_env_file(&path).expect("parse");
        let _ = fs::remove_file(&path);
        let expected = [("A", "1"), ("B", "two words"), ("C", "x=y")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(pairs, expected);
        assert_eq!(read_env_file(Path::new("/nonexistent/contest.env")), Ok(Vec::new()));
    }
}
