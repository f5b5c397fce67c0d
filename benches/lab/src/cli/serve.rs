//! The subcommands that serve until stopped: `processors`, `processor`, `canned` and `pair`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use super::{
    args::{CannedArgs, PairArgs, ProcessorArgs, ProcessorsArgs},
    exit::Failure,
};
use crate::{
    backend::{Backend, BackendSpec},
    canned,
    emulator::{self, EmulatorConfig, Which},
};

/// `rinha-lab processors`: both processors in one process, until the process is stopped.
pub fn processors(args: &ProcessorsArgs) -> Result<(), Failure> {
    let mut config = EmulatorConfig::new(
        args.default_port,
        args.fallback_port,
        args.fee_default,
        args.fee_fallback,
    );
    config.health_window_ms = args.health_window_ms;
    config.framing = args.framing.framing;
    config.bind = args.bind;
    let emulator = emulator::start(config).map_err(|e| format!("starting the processors: {e}"))?;
    println!(
        "processors listening: default http://{} fallback http://{}, {} framing (Ctrl-C to stop)",
        emulator.addr(Which::Default),
        emulator.addr(Which::Fallback),
        config.framing.name()
    );
    loop {
        // The emulator's own threads serve; a signal ends the process.
        std::thread::park();
    }
}

/// `rinha-lab processor`: one processor alone, as the contest runs each in a container of its
/// own (`payment-processor-default` and `-fallback`, port 8080 inside), until SIGTERM or
/// SIGINT.
pub fn processor(args: &ProcessorArgs) -> Result<(), Failure> {
    let which = args.name;
    let fee = args.fee.unwrap_or(if which == Which::Default { 0.05 } else { 0.15 });
    let mut config = EmulatorConfig::new(args.port, args.port, fee, fee);
    config.only = Some(which);
    config.bind = args.bind;
    config.health_window_ms = args.health_window_ms;
    config.framing = args.framing.framing;
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

/// `rinha-lab canned`.
pub fn canned(args: &CannedArgs) -> Result<(), Failure> {
    Ok(canned::serve(args.bind, args.port, args.forward)?)
}

/// `rinha-lab pair`: the deployment without Docker: the two payrelay instances exactly as
/// `contest` starts them (the same [`Backend`]: env file, shared API port, crosswise peer link,
/// `WORKER_CPU_FIRST` 0/1, each instance's cgroup when the machine allows), pointed at
/// processors that are already listening on loopback, until Ctrl-C or SIGTERM.
pub fn pair(args: &PairArgs) -> Result<(), Failure> {
    let spec = pair_spec(args)?;
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

/// The pair `pair`'s options describe, once the env file is known to exist.
fn pair_spec(args: &PairArgs) -> Result<BackendSpec, Failure> {
    // The backend skips a missing env file; a deployment must not start without its profile.
    let env_file = &args.pair.env_file;
    if !env_file.is_file() {
        return Err(Failure::Run(format!(
            "{}: no such env file (run from the repository root?)",
            env_file.display()
        )));
    }
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Ok(BackendSpec {
        payrelay: args.payrelay.clone(),
        api_port: args.api_port,
        default_addr: loopback(args.default_port),
        fallback_addr: loopback(args.fallback_port),
        env_file: Some(env_file.clone()),
        env: Vec::new(),
        journal: !args.pair.no_journal,
        envelope: (!args.pair.no_envelope).then(|| PathBuf::from(&args.pair.compose_file)),
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
