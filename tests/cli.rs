//! Goal: `payrelay`'s command line does what `--help` says. `--help` lists every variable of
//! the knobs table, `--version` names the crate's version and a commit, `--check` passes a good
//! environment and fails a bad one naming the variable, the value and the range, without
//! binding anything, an unknown argument is a usage error (exit 2), and a refused start logs
//! lines of `<RFC 3339 time> <level> core=<core> <message>`. Method: run the binary with a
//! clean environment and read its output.

use std::process::{Command, Output};

use payrelay::config::ENV_VARS;

/// Runs `payrelay args` with only `vars` in its environment (and `PATH`).
fn payrelay(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrelay"));
    command.args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(vars.iter().copied()).output().expect("payrelay runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_variable() {
    let out = payrelay(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for name in ENV_VARS {
        let line = help.lines().find(|line| line.trim_start().starts_with(&format!("{name} ")));
        assert!(line.is_some(), "--help has no line for {name}:\n{help}");
    }
    assert!(help.contains("PROCESSOR_TIMEOUT_MS") && help.contains("1 to 600000"), "{help}");
    assert!(help.contains("--check"), "{help}");
}

#[test]
fn version_names_the_crate_version_and_a_commit() {
    let out = payrelay(&["--version"], &[]);
    assert!(out.status.success());
    let version = text(&out.stdout);
    let expected = format!("payrelay {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    assert!(version.trim_end().ends_with(')'), "{version}");
}

#[test]
fn check_passes_a_good_environment_in_one_line() {
    // Port 1 on loopback: a start would fail to bind it unprivileged; --check binds nothing.
    let out = payrelay(&["--check"], &[("API_BIND_ADDR", "127.0.0.1:1"), ("IO_DRIVER", "epoll")]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("payrelay: configuration ok: "), "{stdout}");
    assert!(stdout.contains("API 127.0.0.1:1"), "{stdout}");
}

#[test]
fn check_fails_naming_the_variable_value_and_range() {
    let out = payrelay(&["--check"], &[("PEER_TIMEOUT_MS", "0"), ("QUEUE_LEN_MAX", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("PEER_TIMEOUT_MS=\"0\": expected an integer from 1 to 60000 ms"),
        "{stderr}"
    );
    assert!(stderr.contains("QUEUE_LEN_MAX=\"lots\": expected an integer from 1 to"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn check_fails_on_a_broken_rule_and_prints_warnings() {
    let out = payrelay(&["--check"], &[("PEER_TIMEOUT_MS", "900")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("PEER_TIMEOUT_MS=\"900\": expected at most 600 ms"));

    let warned = [("IO_DRIVER", "epoll"), ("PROCESSOR_TIMEOUT_MS", "1000")];
    let out = payrelay(&["--check"], &warned);
    assert!(out.status.success(), "a warning is no failure");
    assert!(text(&out.stderr).contains("warning: OVERDUE_PLAN_DELAY_MS=\"5000\""));
    assert!(text(&out.stdout).contains("1 warning(s)"));
}

#[test]
fn unknown_argument_is_a_usage_error() {
    let out = payrelay(&["--frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--frobnicate") && stderr.contains("usage:"), "{stderr}");
}

/// A start refused for its configuration logs one line per error, each parsing as an RFC 3339
/// UTC time with milliseconds, a level, the core, and the message.
#[test]
fn start_logs_lines_with_time_level_and_core() {
    let out = payrelay(&[], &[("REQUEST_BODY_BYTES_MAX", "1"), ("LOG_LEVEL", "debug")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let line = stderr.lines().next().expect("a log line");
    let mut fields = line.splitn(4, ' ');
    let (time, level, core, message) =
        (fields.next(), fields.next(), fields.next(), fields.next().unwrap_or(""));
    let time = time.expect("a time");
    let parsed = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339);
    assert!(parsed.is_ok_and(|t| t.offset().is_utc()), "{line}");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "{line}");
    assert_eq!(level, Some("error"), "{line}");
    assert_eq!(core, Some("core=main"), "{line}");
    assert!(
        message.contains("REQUEST_BODY_BYTES_MAX=\"1\": expected an integer from 128"),
        "{line}"
    );
}
