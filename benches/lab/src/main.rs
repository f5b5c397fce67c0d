//! `rinha-lab`: processors emulator, canned baseline server and the whole contest in one
//! command. See `benches/lab/README.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    rinha_lab::cli::main(&args)
}
