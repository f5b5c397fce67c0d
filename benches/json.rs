//! Instructions per JSON decode, counted by callgrind: every JSON parse the server does (the
//! `POST /payments` body, a processor's health answer, the peer's answer), each run a fixed
//! number of times inside one function, so that callgrind's count for that function over the
//! number of runs is the cost of one. Instruction counts repeat from run to run on a shared
//! machine where the clock does not. Each parse runs with sonic-rs (what the server uses) and
//! with serde_json (the candidate: borrowed, the amount's raw text through `&RawValue`).
//!
//! One count (`tuning/json-callgrind.sh` runs them all and prints the table):
//!
//! ```sh
//! CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind \
//!     --toggle-collect=*json::repeat* --callgrind-out-file=/dev/null" \
//!     cargo bench --bench json -- serde_json contest 100000
//! ```
//!
//! Without arguments each parse is timed with the clock instead, a rough check only.

use std::{hint::black_box, time::Instant};

use payrelay::{
    ledger::{ShardSummary, Totals},
    payment::{self, Payment, PaymentError, UUID_LEN},
    peer::{
        Boot, PeerAnswer,
        wire::{parse_answer_json, write_answer_json},
    },
};
use serde::Deserialize;
use serde_json::value::RawValue;

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

/// A parse, by crate and input: whether it succeeded, so that nothing is optimised away.
fn parser(krate: &str, input: &str) -> Option<fn(&[u8]) -> bool> {
    let payment_input = !matches!(input, "health" | "peer");
    Some(match (krate, input) {
        ("sonic-rs", "health") => {
            |b| with_sonic_rs::<HealthJson>(b).map(HealthJson::read).is_some()
        }
        ("sonic-rs", "peer") => |b| parse_answer_json(b).is_some(),
        ("sonic-rs", _) if payment_input => |b| payment::decode(b).is_ok(),
        ("serde_json", "health") => {
            |b| with_serde_json::<HealthJson>(b).map(HealthJson::read).is_some()
        }
        ("serde_json", "peer") => {
            |b| with_serde_json::<AnswerJson>(b).map(AnswerJson::read).is_some()
        }
        ("serde_json", _) if payment_input => |b| serde_decode(b).is_ok(),
        _ => return None,
    })
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
    if let [krate, name, runs] = args.as_slice() {
        let parse = parser(krate, name).expect("crate: sonic-rs or serde_json; input: a name");
        let (_, input) = inputs.iter().find(|(n, _)| n == name).expect("a known input");
        let runs: u64 = runs.parse().expect("runs: a number");
        black_box(repeat(parse, input, runs));
        return;
    }
    assert!(args.is_empty(), "arguments: [sonic-rs|serde_json] <input> <runs>");
    for (name, input) in &inputs {
        for krate in ["sonic-rs", "serde_json"] {
            let parse = parser(krate, name).expect("every input has both");
            let runs = 1_000_000;
            let start = Instant::now();
            let ok = repeat(parse, input, runs);
            let ns = start.elapsed().as_nanos() as f64 / runs as f64;
            println!("{name:<14} {krate:<10} {ns:>7.1} ns  (accepted: {})", ok == runs);
        }
    }
}

fn with_sonic_rs<'b, T: Deserialize<'b>>(body: &'b [u8]) -> Option<T> {
    sonic_rs::from_str(std::str::from_utf8(body).ok()?).ok()
}

fn with_serde_json<'b, T: Deserialize<'b>>(body: &'b [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

/// `src/upstream/health.rs`'s shape.
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

/// `src/peer/wire.rs`'s shape.
#[derive(Deserialize)]
struct AnswerJson {
    boot: u64,
    started_ms: i64,
    #[serde(default)]
    kept: u8,
    you_forgot_before_ms: i64,
    totals: TotalsJson,
}

impl AnswerJson {
    /// Every field, as `parse_answer_json` reads them.
    fn read(self) {
        let t = self.totals;
        black_box((self.boot, self.started_ms, self.kept, self.you_forgot_before_ms));
        black_box((t.default, t.fallback));
    }
}

#[derive(Deserialize)]
struct TotalsJson {
    default: [u64; 2],
    fallback: [u64; 2],
}

/// `payment::decode` with serde_json: the same checks in the same order.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
}

fn serde_decode(body: &[u8]) -> Result<Payment, PaymentError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(PaymentError::MalformedJson);
    }
    let parsed: Body<'_> = with_serde_json(body).ok_or(PaymentError::MalformedJson)?;
    let id = parsed.correlation_id.ok_or(PaymentError::MissingCorrelationId)?;
    let correlation_id = uuid_text(id.get()).ok_or(PaymentError::InvalidCorrelationId)?;
    let amount = parsed.amount.ok_or(PaymentError::MissingAmount)?;
    let raw = amount.get().as_bytes();
    if !matches!(raw.first(), Some(b'-' | b'0'..=b'9')) {
        return Err(PaymentError::AmountNotNumber);
    }
    let cents = payrelay::money::parse_cents(raw).map_err(PaymentError::Amount)?;
    Ok(Payment { correlation_id, cents })
}

fn uuid_text(raw: &str) -> Option<[u8; UUID_LEN]> {
    let [b'"', text @ .., b'"'] = raw.as_bytes() else {
        return None;
    };
    if let Ok(bytes) = <[u8; UUID_LEN]>::try_from(text)
        && is_uuid(&bytes)
    {
        return Some(bytes);
    }
    if !text.contains(&b'\\') {
        return None;
    }
    let unescaped: String = serde_json::from_str(raw).ok()?;
    let bytes = unescaped.as_bytes().try_into().ok()?;
    is_uuid(&bytes).then_some(bytes)
}

fn is_uuid(bytes: &[u8; UUID_LEN]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}
