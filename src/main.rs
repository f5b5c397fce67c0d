//! `payrelay`: read the configuration, start the cores, serve until killed.

use std::process::ExitCode;

use payrelay::{config::Config, worker};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("payrelay: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Lives for the whole process; every core reads it.
    let config: &'static Config = Box::leak(Box::new(config));
    let workers = match worker::start(config) {
        Ok(workers) => workers,
        Err(e) => {
            eprintln!("payrelay: start: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("payrelay: ready, {} cores", workers.len());
    for worker in workers {
        // A worker only returns if its core failed; with panic=abort it never unwinds here.
        if worker.join().is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
