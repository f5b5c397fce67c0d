//! Instructions per JSON decode, counted by callgrind: every JSON parse the server does (the
//! `POST /payments` body, a processor's health answer, the peer's answer), each run a fixed
//! number of times inside one function, so that callgrind's count for that function over the
//! number of runs is the cost of one. Instruction counts repeat from run to run on a shared
//! machine where the clock does not. The same bench at f9e3820 runs each parse with sonic-rs,
//! the server's JSON crate until then, beside serde_json (`docs/http-codec.md`).
//!
//! One count (`tuning/json-callgrind.sh` runs them all and prints the table):
//!
//! ```sh
//! CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind \
//!     --toggle-collect=*json::repeat* --callgrind-out-file=/dev/null" \
//!     cargo bench --bench json -- contest 100000
//! ```
//!
//! Without arguments each parse is timed with the clock instead, a rough check only.

use std::{hint::black_box, time::Instant};

use payrelay::{
    http,
    ledger::{ShardSummary, Totals},
    payment,
    peer::{
        Boot, PeerAnswer,
        wire::{parse_answer_json, write_answer_json},
    },
};
use serde::Deserialize;

const ID: &str = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";

/// The inputs by name: the contest's payment body (70 bytes, as k6 sends it), three variants,
/// and the two answers the server reads from other processes.
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let payment = |rest: String| format!(r#"{{"correlationId":"{rest}}}"#).into_bytes();
    let peer = PeerAnswer {
        boot: Boot { id: 0x1f2e_3d4c_5b6a_7988, started_ms: 1_752_582_896_789, kept_books: true },
        you_forgot_before_ms: i64::MIN,
        totals: ShardSummary {
            by_processor: [
                Totals { count: 52_945, cents: 106_154_725 },
                Totals { count: 37_646, cents: 75_480_230 },
            ],
        },
    };
    let mut peer_json = Vec::new();
    write_answer_json(&mut peer_json, &peer);
    vec![
        ("contest", payment(format!(r#"{ID}","amount":19.9"#))),
        (
            "extra-fields",
            payment(format!(
                r#"{ID}","amount":19.9,"requestedAt":"2025-07-15T12:34:56.789Z","tags":["k6",1]"#
            )),
        ),
        ("uppercase-id", payment(format!(r#"{}","amount":19.9"#, ID.to_uppercase()))),
        ("string-amount", payment(format!(r#"{ID}","amount":"19.90""#))),
        ("health", br#"{"failing":false,"minResponseTime":0}"#.to_vec()),
        ("peer", peer_json),
    ]
}

/// The server's parse of an input, by the input's name: whether it succeeded, so that nothing
/// is optimised away.
fn parser(input: &str) -> fn(&[u8]) -> bool {
    match input {
        "health" => |b| http::json_body::<HealthJson>(b).map(HealthJson::read).is_some(),
        "peer" => |b| parse_answer_json(b).is_some(),
        _ => |b| payment::decode(b).is_ok(),
    }
}

/// The runs callgrind counts (`--toggle-collect`): only what happens inside this call.
#[inline(never)]
fn repeat(parse: fn(&[u8]) -> bool, input: &[u8], runs: u64) -> u64 {
    let mut ok = 0;
    for _ in 0..runs {
        ok += u64::from(parse(black_box(input)));
    }
    ok
}

fn main() {
    // `cargo bench` passes `--bench` first; the rest is ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let inputs = inputs();
    if let [name, runs] = args.as_slice() {
        let (_, input) = inputs.iter().find(|(n, _)| n == name).expect("a known input");
        let runs: u64 = runs.parse().expect("runs: a number");
        black_box(repeat(parser(name), input, runs));
        return;
    }
    assert!(args.is_empty(), "arguments: <input> <runs>");
    for (name, input) in &inputs {
        let runs = 1_000_000;
        let start = Instant::now();
        let ok = repeat(parser(name), input, runs);
        let ns = start.elapsed().as_nanos() as f64 / runs as f64;
        println!("{name:<14} {ns:>7.1} ns  (accepted: {})", ok == runs);
    }
}

/// `src/upstream/health.rs`'s shape (private there: `poll` parses it inline).
#[derive(Deserialize)]
struct HealthJson {
    failing: bool,
    #[serde(rename = "minResponseTime")]
    min_response_time: u64,
}

impl HealthJson {
    /// Every field, as the server reads them.
    fn read(self) {
        black_box((self.failing, self.min_response_time));
    }
}
