//! The `rinha-lab` command line as scripts meet it, through the built binary: help and version,
//! and the exit-code contract (0 success, 1 a failed run, 2 a usage error, 3 a contest that
//! found what `--fail-on` lists).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
};

const SUBCOMMANDS: [&str; 8] =
    ["processors", "processor", "canned", "contest", "pair", "capacity", "report", "compare"];

fn rinha_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rinha-lab")).args(args).output().expect("rinha-lab runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Goal: every subcommand answers `--help` and `-h` with its usage and a line on what it is
/// for, exit 0; so does the top, which lists them all. Method: each through the binary.
#[test]
fn help_on_every_subcommand() {
    let top = rinha_lab(&["--help"]);
    assert_eq!(top.status.code(), Some(0), "{}", stderr(&top));
    for subcommand in SUBCOMMANDS {
        assert!(stdout(&top).contains(subcommand), "{subcommand} listed: {}", stdout(&top));
        for flag in ["--help", "-h"] {
            let ran = rinha_lab(&[subcommand, flag]);
            let text = stdout(&ran);
            assert_eq!(ran.status.code(), Some(0), "{subcommand} {flag}: {}", stderr(&ran));
            assert!(text.contains(&format!("Usage: rinha-lab {subcommand}")), "{text}");
            assert!(text.lines().next().is_some_and(|line| line.len() > 20), "{text}");
        }
    }
    let contest = stdout(&rinha_lab(&["contest", "--help"]));
    assert!(contest.contains("--fail-on") && contest.contains("Exit codes"), "{contest}");
    let capacity = stdout(&rinha_lab(&["capacity", "--help"]));
    assert!(capacity.contains("env: CAPACITY_STEP_S"), "{capacity}");
}

/// Goal: `--version` names the crate's version and the commit, on the top and on a subcommand.
#[test]
fn version_names_the_commit() {
    for args in [&["--version"][..], &["-V"], &["contest", "--version"]] {
        let ran = rinha_lab(args);
        let text = stdout(&ran);
        assert_eq!(ran.status.code(), Some(0), "{args:?}: {}", stderr(&ran));
        let expected = format!("{} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(text.contains(&expected), "{args:?}: {text}");
    }
}

/// Goal: a command line that makes no run exits 2 with clap's message, before anything starts:
/// no subcommand, an unknown one, an unknown option, a bad value, a missing option, a bad
/// variable, a contest without a backend, knobs that only fail together.
#[test]
fn usage_errors_exit_2() {
    let cases: [(&[&str], &str); 9] = [
        (&[], "Usage: rinha-lab"),
        (&["bench"], "unrecognized subcommand"),
        (&["contest", "--scenario", "x.toml", "--verbose"], "unexpected argument '--verbose'"),
        (&["processors", "--default-port", "eighty"], "invalid value 'eighty'"),
        (&["processor", "--name", "middle"], "invalid value 'middle'"),
        (&["canned", "--port"], "a value is required"),
        (&["contest", "--payrelay", "x"], "--scenario <FILE>"),
        (&["contest", "--scenario", "x.toml"], "no backend"),
        (&["capacity", "--payrelay", "x", "--rates", "600,500"], "must increase"),
    ];
    for (args, message) in cases {
        let ran = rinha_lab(args);
        assert_eq!(ran.status.code(), Some(2), "{args:?}: {}", stderr(&ran));
        assert!(stderr(&ran).contains(message), "{args:?}: {}", stderr(&ran));
    }
    let ran = Command::new(env!("CARGO_BIN_EXE_rinha-lab"))
        .args(["capacity", "--payrelay", "x"])
        .env("CAPACITY_STEP_S", "0")
        .output()
        .expect("rinha-lab runs");
    assert_eq!(ran.status.code(), Some(2), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("--step-s"), "{}", stderr(&ran));
}

/// Goal: a run that fails exits 1 and says why: a missing scenario, a missing results file.
#[test]
fn failed_runs_exit_1() {
    let missing = std::env::temp_dir().join("rinha-lab-cli-no-such-scenario.toml");
    let missing = missing.to_str().expect("utf-8");
    let ran = rinha_lab(&["contest", "--scenario", missing, "--target", "http://127.0.0.1:1"]);
    assert_eq!(ran.status.code(), Some(1), "{}", stderr(&ran));
    assert!(stderr(&ran).contains(missing), "{}", stderr(&ran));
    let ran = rinha_lab(&["report", "/nonexistent/results.json"]);
    assert_eq!(ran.status.code(), Some(1), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("/nonexistent/results.json"), "{}", stderr(&ran));
}

/// `rinha-lab canned` on a free port, stopped on drop.
struct Canned {
    child: Child,
    url: String,
}

impl Canned {
    fn start() -> Canned {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rinha-lab"))
            .args(["canned", "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("canned starts");
        let out = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("canned's first line");
        let at = line.find("http://").expect("canned prints its address");
        let url = line[at..].split_whitespace().next().expect("an address").to_owned();
        Canned { child, url }
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        // A child already gone is fine; the test's outcome is decided elsewhere.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Goal: a contest that ran to its end exits 3 when it found what `--fail-on` lists, and 0
/// when told to fail on nothing. Method: a 2 s contest against `canned` (`--target`), which
/// answers 202 and forwards nothing, so every accepted payment is lag; the lab's processors on
/// free ports.
#[test]
fn findings_exit_3() {
    let canned = Canned::start();
    let dir = std::env::temp_dir().join(format!("rinha-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let scenario = dir.join("short.toml");
    std::fs::write(
        &scenario,
        "duration_s = 2\nvus_max = 4\namount = 19.90\nfee_default = 0.05\nfee_fallback = 0.15\n\
         check_every_s = 1\nwindow_start_s = 15\nwindow_end_s = 1.5\ntimeout_ms = 1500\n",
    )
    .expect("the scenario");
    let json: PathBuf = dir.join("results.json");
    let contest = |fail_on: &str| {
        rinha_lab(&[
            "contest",
            "--scenario",
            scenario.to_str().expect("utf-8"),
            "--target",
            &canned.url,
            "--default-port",
            "0",
            "--fallback-port",
            "0",
            "--json",
            json.to_str().expect("utf-8"),
            "--quiet",
            "--fail-on",
            fail_on,
        ])
    };
    let ran = contest("lag,inconsistencies");
    assert_eq!(ran.status.code(), Some(3), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("lag "), "{}", stderr(&ran));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON")).expect("JSON");
    assert!(results["lag"].as_i64().is_some_and(|lag| lag > 0), "{results}");
    assert_eq!(results["schema_version"], 2, "{results}");
    assert!(results["commit"].is_string() && results["machine"]["cpus"].as_u64() > Some(0));
    let ran = contest("none");
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    std::fs::remove_dir_all(&dir).expect("the scratch folder is removed");
}
