//! Command line: `processors`, `canned`, `contest`, `pair`, `report` and `compare`, shared by the
//! `rinha-lab` binary and the `contest` bench.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use crate::{
    backend::{Backend, BackendSpec},
    canned,
    contest::{self, ContestOptions},
    emulator::{self, EmulatorConfig, Which},
    report,
};

const USAGE: &str = "\
usage:
  rinha-lab processors [--default-port 8001] [--fallback-port 8002] [--fee-default 0.05]
                       [--fee-fallback 0.15] [--health-window-ms 5000]
                       [--framing kestrel|content-length] [--bind 127.0.0.1]
  rinha-lab processor --name default|fallback [--port 8080] [--fee 0.05] [--bind 0.0.0.0]
                      [--health-window-ms 5000] [--framing kestrel|content-length]
  rinha-lab canned [--port 9999] [--bind 127.0.0.1]
  rinha-lab contest --scenario FILE (--payrelay PATH | --target URL) [--json FILE]
                    [--default-port 8001] [--fallback-port 8002] [--api-port 9999]
                    [--env-file tuning/contest.env] [--no-envelope] [--no-journal] [--quiet]
                    [--framing kestrel|content-length] [--processors-running]
                    [--compose-file docker-compose.yml]
  rinha-lab pair --payrelay PATH [--api-port 9999] [--default-port 8001]
                 [--fallback-port 8002] [--env-file tuning/contest.env] [--no-envelope]
                 [--no-journal] [--compose-file docker-compose.yml]
  rinha-lab report RESULTS.json [--out RESULTS.svg]
  rinha-lab compare A.json B.json [...] [--out compare.svg]";

/// Parsed `--key value` pairs and `--flag`s.
struct Args {
    pairs: Vec<(String, Option<String>)>,
}

/// Flags that take no value.
const FLAGS: &[&str] =
    &["--no-envelope", "--no-journal", "--quiet", "--bench", "--processors-running"];

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument {arg:?}"));
            }
            if let Some((key, value)) = arg.split_once('=') {
                pairs.push((key.to_owned(), Some(value.to_owned())));
            } else if FLAGS.contains(&arg.as_str()) {
                pairs.push((arg.clone(), None));
            } else {
                let value = iter.next().ok_or(format!("{arg} needs a value"))?;
                pairs.push((arg.clone(), Some(value.clone())));
            }
        }
        Ok(Args { pairs })
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for (key, _) in &self.pairs {
            if key != "--bench" && !known.contains(&key.as_str()) {
                return Err(format!("unknown option {key}"));
            }
        }
        Ok(())
    }

    fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            Some(text) => text.parse().map_err(|_| format!("{name}: cannot read {text:?}")),
            None => Ok(default),
        }
    }
}

/// Runs the `rinha-lab` command line (`args` without the program name).
pub fn main(args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "processors" => processors(rest),
        "processor" => processor(rest),
        "canned" => serve_canned(rest),
        "contest" => contest_command(rest, None),
        "pair" => pair(rest),
        "report" => report::report_command(rest),
        "compare" => report::compare_command(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    finish(result)
}

/// Runs `contest` with `payrelay` as the default binary (the bench passes cargo's build of it).
pub fn contest_main(args: &[String], payrelay: Option<PathBuf>) -> ExitCode {
    finish(contest_command(args, payrelay))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rinha-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn processors(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&[
        "--default-port",
        "--fallback-port",
        "--fee-default",
        "--fee-fallback",
        "--health-window-ms",
        "--framing",
        "--bind",
    ])?;
    let mut config = EmulatorConfig::new(
        args.parsed("--default-port", contest::DEFAULT_PORT)?,
        args.parsed("--fallback-port", contest::FALLBACK_PORT)?,
        args.parsed("--fee-default", 0.05)?,
        args.parsed("--fee-fallback", 0.15)?,
    );
    config.health_window_ms = args.parsed("--health-window-ms", config.health_window_ms)?;
    config.framing = args.parsed("--framing", config.framing)?;
    config.bind = args.parsed("--bind", config.bind)?;
    let emulator = emulator::start(config).map_err(|e| format!("starting the processors: {e}"))?;
    println!(
        "processors listening: default http://{} fallback http://{}, {} framing (Ctrl-C to stop)",
        emulator.addr(Which::Default),
        emulator.addr(Which::Fallback),
        config.framing.name()
    );
    loop {
        std::thread::park();
    }
}

/// One processor alone, as the contest runs each in a container of its own
/// (`payment-processor-default` and `-fallback`, port 8080 inside).
fn processor(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&["--name", "--port", "--fee", "--bind", "--health-window-ms", "--framing"])?;
    let which: Which = args.get("--name").ok_or(format!("--name is required\n{USAGE}"))?.parse()?;
    let port = args.parsed("--port", 8080)?;
    let fee = args.parsed("--fee", if which == Which::Default { 0.05 } else { 0.15 })?;
    let mut config = EmulatorConfig::new(port, port, fee, fee);
    config.only = Some(which);
    config.bind = args.parsed("--bind", std::net::Ipv4Addr::UNSPECIFIED)?;
    config.health_window_ms = args.parsed("--health-window-ms", config.health_window_ms)?;
    config.framing = args.parsed("--framing", config.framing)?;
    let emulator = emulator::start(config).map_err(|e| format!("starting the processor: {e}"))?;
    println!(
        "processor {which:?} listening on http://{} (fee {fee}, {} framing; Ctrl-C to stop)",
        emulator.addr(which),
        config.framing.name()
    );
    wait_for_termination();
    Ok(())
}

/// Blocks until SIGTERM or SIGINT: a container's processor stops on `docker stop`.
fn wait_for_termination() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let Ok(runtime) = runtime else {
        loop {
            std::thread::park();
        }
    };
    runtime.block_on(async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}

fn serve_canned(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&["--port", "--bind"])?;
    let ip = args.parsed("--bind", std::net::Ipv4Addr::LOCALHOST)?;
    let server =
        canned::start(ip, args.parsed("--port", contest::API_PORT)?).map_err(|e| e.to_string())?;
    println!("canned 202 server listening on http://{} (Ctrl-C to stop)", server.addr());
    loop {
        std::thread::park();
    }
}

fn contest_command(args: &[String], payrelay: Option<PathBuf>) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check_known(&[
        "--scenario",
        "--payrelay",
        "--target",
        "--json",
        "--default-port",
        "--fallback-port",
        "--api-port",
        "--env-file",
        "--no-envelope",
        "--no-journal",
        "--quiet",
        "--framing",
        "--processors-running",
        "--compose-file",
    ])?;
    let scenario = args.get("--scenario").ok_or(format!("--scenario is required\n{USAGE}"))?;
    let mut options = ContestOptions::new(scenario);
    options.payrelay = args.get("--payrelay").map(PathBuf::from).or(payrelay);
    options.target = args.get("--target").map(str::to_owned);
    options.json = args.get("--json").map(PathBuf::from);
    options.default_port = args.parsed("--default-port", options.default_port)?;
    options.fallback_port = args.parsed("--fallback-port", options.fallback_port)?;
    options.api_port = args.parsed("--api-port", options.api_port)?;
    if let Some(path) = args.get("--env-file") {
        options.env_file = Some(PathBuf::from(path));
    }
    options.envelope = !args.flag("--no-envelope");
    options.journal = !args.flag("--no-journal");
    options.verbose = !args.flag("--quiet");
    options.framing = args.parsed("--framing", options.framing)?;
    options.processors_running = args.flag("--processors-running");
    if let Some(path) = args.get("--compose-file") {
        options.compose_file = PathBuf::from(path);
    }
    contest::run(&options).map(|_| ())
}

/// The deployment without Docker: the two payrelay instances exactly as `contest` starts them
/// (the same [`Backend`]: env file, shared API port, crosswise peer link, `WORKER_CPU_FIRST`
/// 0/1, the 1.5 CPU / 350 MB cgroup when the machine allows), pointed at processors that are
/// already listening on loopback, until Ctrl-C or SIGTERM.
fn pair(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    let spec = pair_spec(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut backend = Backend::start(&spec)?;
    let envelope = if backend.envelope_applied() {
        "applied".to_owned()
    } else {
        format!("not applied: {}", backend.envelope_note())
    };
    let logs: Vec<String> = backend.log_paths().iter().map(|p| p.display().to_string()).collect();
    eprintln!("payrelay pair starting (envelope {envelope}), logs: {}", logs.join(", "));
    runtime.block_on(run_pair(&mut backend, &spec))?;
    // Dropping the pair stops both instances (SIGTERM, then SIGKILL) and removes the cgroup;
    // the logs stay for reading.
    eprintln!("stopping the pair; logs kept in {}", backend.log_dir().display());
    Ok(())
}

/// The pair `pair`'s options describe, once they are all known and the env file exists.
fn pair_spec(args: &Args) -> Result<BackendSpec, String> {
    args.check_known(&[
        "--payrelay",
        "--api-port",
        "--default-port",
        "--fallback-port",
        "--env-file",
        "--no-envelope",
        "--no-journal",
        "--compose-file",
    ])?;
    let payrelay = args.get("--payrelay").ok_or(format!("--payrelay is required\n{USAGE}"))?;
    // The backend skips a missing env file; a deployment must not start without its profile.
    let env_file = PathBuf::from(args.get("--env-file").unwrap_or("tuning/contest.env"));
    if !env_file.is_file() {
        return Err(format!(
            "{}: no such env file (run from the repository root?)",
            env_file.display()
        ));
    }
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Ok(BackendSpec {
        payrelay: PathBuf::from(payrelay),
        api_port: args.parsed("--api-port", contest::API_PORT)?,
        default_addr: loopback(args.parsed("--default-port", contest::DEFAULT_PORT)?),
        fallback_addr: loopback(args.parsed("--fallback-port", contest::FALLBACK_PORT)?),
        env_file: Some(env_file.clone()),
        env: Vec::new(),
        journal: !args.flag("--no-journal"),
        envelope: (!args.flag("--no-envelope"))
            .then(|| PathBuf::from(args.get("--compose-file").unwrap_or("docker-compose.yml"))),
    })
}

/// Waits for the pair to answer, then watches it until Ctrl-C or SIGTERM. Fails if it never
/// answers or an instance dies.
async fn run_pair(backend: &mut Backend, spec: &BackendSpec) -> Result<(), String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let ready = tokio::select! {
        ready = backend.wait_ready() => Some(ready),
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
    };
    match ready {
        None => return Ok(()),
        Some(Err(e)) => return Err(backend.describe_failure(&e)),
        Some(Ok(())) => {}
    }
    println!(
        "payrelay pair ready on http://{} (default http://{}, fallback http://{}); \
         Ctrl-C stops both",
        backend.api_addr(),
        spec.default_addr,
        spec.fallback_addr
    );
    // Watch for an instance dying while we wait for the signal.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tick.tick() => {
                if let Some(reason) = backend.exited() {
                    return Err(backend.describe_failure(&reason));
                }
            }
        }
    }
}
