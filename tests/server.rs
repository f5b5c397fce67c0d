//! End-to-end tests of the server core: two real `payrelay` processes sharing one port (as the
//! compose file runs them), each with two cores, in front of the lab's emulated processors.
//! Everything listens on loopback on ephemeral ports; readiness is the lab's summary probe,
//! and every wait is a poll on an observable condition with a deadline, never a fixed sleep.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    time::{Duration, Instant},
};

use payrelay::http::{ParsedResponse, parse_response};
use rinha_lab::{
    backend::{Backend, BackendSpec},
    emulator::{self, Emulator, EmulatorConfig, Which},
};

/// Longest any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
const POLL: Duration = Duration::from_millis(20);

/// The emulator and two instances, torn down on drop (the lab's types do the cleanup).
struct Rig {
    emulator: Emulator,
    backend: Backend,
}

impl Rig {
    fn start() -> Rig {
        Rig::start_with(&[])
    }

    /// Starts the rig with `extra` variables on top of the two-cores fixture.
    fn start_with(extra: &[(&str, &str)]) -> Rig {
        let emulator = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("emulator");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/two-cores.env");
        let mut env = std::fs::read_to_string(fixture).expect("fixture");
        for (key, value) in extra {
            env.push_str(&format!("\n{key}={value}\n"));
        }
        let env_file = std::env::temp_dir().join(format!(
            "payrelay-test-{}-{}.env",
            std::process::id(),
            unique_suffix()
        ));
        std::fs::write(&env_file, env).expect("env file");
        let spec = BackendSpec {
            payrelay: PathBuf::from(env!("CARGO_BIN_EXE_payrelay")),
            api_port: 0,
            default_addr: emulator.addr(Which::Default),
            fallback_addr: emulator.addr(Which::Fallback),
            env_file: Some(env_file.clone()),
            envelope: false,
        };
        let mut backend = Backend::start(&spec).expect("payrelay instances");
        let _ = std::fs::remove_file(&env_file);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if let Err(e) = runtime.block_on(backend.wait_ready()) {
            panic!("{}", backend.describe_failure(&e));
        }
        Rig { emulator, backend }
    }

    fn api(&self) -> SocketAddr {
        self.backend.api_addr()
    }
}

impl Drop for Rig {
    /// Keeps the instances' logs only when the test failed, for the message naming them.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.backend.keep_logs(false);
        }
    }
}

/// A blocking keep-alive client speaking raw bytes, so tests control framing exactly.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Reply {
    status: u16,
    body: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write");
    }

    /// Reads one response; `None` if the server closed the connection first.
    fn read(&mut self) -> Option<Reply> {
        loop {
            if let ParsedResponse::Complete { status, body: (start, end), len, .. } =
                parse_response(&self.buf, false)
            {
                let body = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
                self.buf.drain(..len);
                return Some(Reply { status, body });
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn request(&mut self, raw: &[u8]) -> Reply {
        self.send(raw);
        self.read().expect("a response")
    }

    fn get(&mut self, path: &str) -> Reply {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
    }

    fn post(&mut self, path: &str, body: &str) -> Reply {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.request(raw.as_bytes())
    }

    /// Whether the server has closed the connection (reads EOF).
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

fn payment_json(id: &str, amount: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount}}}"#)
}

fn uuid(i: u32) -> String {
    format!("{i:08x}-7d26-4d9d-aa19-4dc1c7cf60b3")
}

/// Counts and cents per processor parsed from our summary JSON.
fn parse_summary(body: &str) -> [(u64, u64); 2] {
    let value: serde_json::Value = serde_json::from_str(body).expect("summary JSON");
    ["default", "fallback"].map(|name| {
        let count = value[name]["totalRequests"].as_u64().expect("totalRequests");
        // Amounts must have exactly two decimals: read the text, not a float.
        let side = &body[body.find(&format!("\"{name}\"")).expect(name)..];
        let amount = side.split("\"totalAmount\":").nth(1).expect("totalAmount");
        let amount = &amount[..amount.find(['}', ',']).expect("end of amount")];
        let (units, cents) = amount.split_once('.').expect("two decimals");
        assert_eq!(cents.len(), 2, "amount {amount} must have two decimals");
        (count, units.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap())
    })
}

fn emulator_totals(emulator: &Emulator, from: Option<i64>, to: Option<i64>) -> [(u64, u64); 2] {
    [Which::Default, Which::Fallback].map(|which| {
        let s = emulator.summary(which, from, to);
        (s.total_requests, s.total_cents as u64)
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// The instance behind a connection: `/health` names its process id.
fn instance_of(client: &mut Client) -> u64 {
    let reply = client.get("/health");
    assert_eq!(reply.status, 200);
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    value["pid"].as_u64().expect("health names the instance's pid")
}

/// Goal: payments posted through the shared port are forwarded, and *each* instance's
/// summary gives the deployment's totals, equal to the processors' books; purge clears both.
/// Method: post over many connections (the kernel spreads them over both instances' cores),
/// wait until the emulator stored them all, then open connections until both instances have
/// answered (told apart by `/health`'s pid) and compare every answer with the emulator.
#[test]
fn both_instances_answer_global_totals_and_purge_clears_both() {
    let rig = Rig::start();
    let payments = 120;
    let mut clients: Vec<Client> = (0..12).map(|_| Client::connect(rig.api())).collect();
    for i in 0..payments {
        let client = &mut clients[i as usize % 12];
        let reply = client.post("/payments", &payment_json(&uuid(i), "19.90"));
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    wait_until("the processors to store every payment", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == u64::from(payments)
    });
    let expected = emulator_totals(&rig.emulator, None, None);
    assert_eq!(expected, [(u64::from(payments), u64::from(payments) * 1990), (0, 0)]);

    let mut seen = BTreeSet::new();
    let mut attempts = 0;
    while seen.len() < 2 {
        attempts += 1;
        assert!(attempts < 200, "the kernel never reached the second instance");
        let mut client = Client::connect(rig.api());
        let pid = instance_of(&mut client);
        // The ledger is written when the processor's 200 arrives, a moment after it stored.
        wait_until("our summary to catch up", || {
            parse_summary(&client.get("/payments-summary").body) == expected
        });
        seen.insert(pid);
    }

    let mut client = Client::connect(rig.api());
    let reply = client.post("/purge-payments", "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for _ in 0..16 {
        let mut client = Client::connect(rig.api());
        let summary = parse_summary(&client.get("/payments-summary").body);
        assert_eq!(summary, [(0, 0), (0, 0)]);
    }
}

/// Goal: `from`/`to` are inclusive to the millisecond and filter on the `requestedAt` the
/// processor stored. Method: read one stored payment's `requestedAt` T from the emulator,
/// then compare our summary with the emulator's over ranges that start or end at T, T±1 ms.
#[test]
fn summary_bounds_are_inclusive_to_the_millisecond() {
    let rig = Rig::start();
    let mut client = Client::connect(rig.api());
    for i in 0..40 {
        assert_eq!(client.post("/payments", &payment_json(&uuid(i), "20.05")).status, 202);
    }
    wait_until("the processors to store every payment", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == 40
    });
    let mut processor = Client::connect(rig.emulator.addr(Which::Default));
    let stored = processor.get(&format!("/payments/{}", uuid(17)));
    assert_eq!(stored.status, 200, "{}", stored.body);
    let value: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
    let t_text = value["requestedAt"].as_str().unwrap().to_owned();
    let t = payrelay::timestamp::parse_iso(t_text.as_bytes(), payrelay::timestamp::Round::Down)
        .expect("the processor stores our ISO timestamp");
    let iso = |ms: i64| String::from_utf8(payrelay::timestamp::format_iso(ms).to_vec()).unwrap();
    let ranges = [
        (Some(t), Some(t)),
        (Some(t + 1), None),
        (None, Some(t - 1)),
        (Some(t), None),
        (None, Some(t)),
        (Some(t - 1), Some(t + 1)),
        (Some(t + 1), Some(t - 1)),
    ];
    wait_until("our ledger to hold all 40", || {
        parse_summary(&client.get("/payments-summary").body)[0].0 == 40
    });
    for (from, to) in ranges {
        let mut query = Vec::new();
        if let Some(from) = from {
            query.push(format!("from={}", iso(from)));
        }
        if let Some(to) = to {
            query.push(format!("to={}", iso(to)));
        }
        let reply = client.get(&format!("/payments-summary?{}", query.join("&")));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let theirs = emulator_totals(&rig.emulator, from, to);
        assert_eq!(parse_summary(&reply.body), theirs, "range {from:?}..={to:?}");
    }
    let at_t = emulator_totals(&rig.emulator, Some(t), Some(t));
    assert!(at_t[0].0 >= 1, "the payment at T is inside [T, T]");
}

/// Goal: each kind of bad request gets its status and a JSON error, the connection survives
/// where HTTP framing allows, and the server keeps serving everyone afterwards.
#[test]
fn bad_requests_get_their_status_and_the_server_keeps_serving() {
    let rig = Rig::start();
    let mut client = Client::connect(rig.api());
    let id = uuid(1);
    let cases: Vec<(String, u16)> = vec![
        ("{not json".into(), 400),
        ("[1,2]".into(), 400),
        (format!(r#"{{"correlationId":"{id}"}}"#), 422),
        (r#"{"amount":19.90}"#.into(), 422),
        (payment_json("not-a-uuid", "19.90"), 422),
        (payment_json(&id, "19.901"), 422),
        (payment_json(&id, "0"), 422),
        (payment_json(&id, "-19.90"), 422),
        (payment_json(&id, "\"19.90\""), 422),
    ];
    for (body, status) in &cases {
        let reply = client.post("/payments", body);
        assert_eq!(reply.status, *status, "{body}: {}", reply.body);
        assert!(reply.body.starts_with("{\"error\":"), "{}", reply.body);
    }
    assert_eq!(client.get("/nowhere").status, 404);
    assert_eq!(client.get("/payments").status, 405);
    assert_eq!(client.post("/payments-summary", "").status, 405);
    assert_eq!(client.get("/payments-summary?from=yesterday").status, 400);
    assert_eq!(client.get("/payments-summary?to=2025-02-30T00:00:00.000Z").status, 400);
    // Same connection, still served after every error above.
    assert_eq!(client.get("/health").status, 200);

    // Pipelined: three requests in one write, three answers in order.
    let pipelined = format!(
        "GET /health HTTP/1.1\r\n\r\nPOST /payments HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}GET /nowhere HTTP/1.1\r\n\r\n",
        payment_json(&uuid(2), "1.00").len(),
        payment_json(&uuid(2), "1.00")
    );
    client.send(pipelined.as_bytes());
    let statuses: Vec<u16> = (0..3).map(|_| client.read().unwrap().status).collect();
    assert_eq!(statuses, [200, 202, 404]);

    // Split: one request written a byte at a time.
    let raw = format!(
        "POST /payments HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}",
        payment_json(&uuid(3), "2.50").len(),
        payment_json(&uuid(3), "2.50")
    );
    for byte in raw.as_bytes() {
        client.send(std::slice::from_ref(byte));
    }
    assert_eq!(client.read().unwrap().status, 202);

    // Oversize body: 413, then the server closes (the body was never read).
    let mut big = Client::connect(rig.api());
    big.send(b"POST /payments HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    assert_eq!(big.read().unwrap().status, 413);
    assert!(big.closed());
    // Garbage: 400 and close.
    let mut garbage = Client::connect(rig.api());
    let reply = garbage.request(b"\x00\x01\x02 nonsense\r\n\r\n");
    assert_eq!(reply.status, 400);
    assert!(garbage.closed());
    // Oversize head: 431 and close.
    let mut head = Client::connect(rig.api());
    let long = format!("GET /health HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(20_000));
    head.send(long.as_bytes());
    assert_eq!(head.read().unwrap().status, 431);
    // A client that vanishes mid-request costs nothing.
    let mut gone = Client::connect(rig.api());
    gone.send(b"POST /payments HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"corr");
    drop(gone);

    // Everyone is still served, and the valid payments above were all forwarded.
    let mut fresh = Client::connect(rig.api());
    assert_eq!(fresh.get("/health").status, 200);
    wait_until("the two valid payments to be stored", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == 2
    });
}

/// Goal: SIGTERM loses nothing: each instance stops accepting, forwards what it has queued
/// and in flight, and only then exits. Method: make the default processor slow (1 s), post
/// payments so that all are still in flight, stop both instances (SIGTERM; the lab escalates
/// to SIGKILL after 3 s, which would lose them), then count what the processors stored.
#[test]
fn sigterm_drains_every_accepted_payment() {
    let mut rig = Rig::start();
    rig.emulator.set_delay(Which::Default, 1000);
    rig.emulator.set_delay(Which::Fallback, 1000);
    let payments = 300;
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(rig.api())).collect();
    for i in 0..payments {
        let reply = clients[i as usize % 6].post("/payments", &payment_json(&uuid(i), "19.90"));
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    let stored_before = emulator_totals(&rig.emulator, None, None);
    assert!(stored_before[0].0 + stored_before[1].0 < u64::from(payments), "all still in flight");
    rig.backend.stop();
    let stored = emulator_totals(&rig.emulator, None, None);
    assert_eq!(stored[0].0 + stored[1].0, u64::from(payments), "{stored:?}");
}

/// A per-process counter, so tests running in parallel never share a temp file.
fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Posts `count` payments from `first`, each on a new connection, so that the kernel spreads
/// them over every core of both instances (64 connections miss one of 4 cores with
/// probability 4 x (3/4)^64, about 10^-8). All expected 202.
fn post_payments(rig: &Rig, first: u32, count: u32) {
    for i in first..first + count {
        let mut client = Client::connect(rig.api());
        let reply = client.post("/payments", &payment_json(&uuid(i), "20.05"));
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
}

/// Runs the slow-default routing case: fees 7%/10%, default 1500 ms, fallback 0 ms, with
/// `TEST_DURATION_MS = test_duration_ms`. Returns (default, fallback) counts of the payments
/// posted once payrelay has seen the default's delay.
fn slow_default_split(test_duration_ms: &str) -> (u64, u64) {
    let extra =
        [("FEE_DEFAULT", "0.07"), ("FEE_FALLBACK", "0.10"), ("TEST_DURATION_MS", test_duration_ms)];
    let rig = Rig::start_with(&extra);
    rig.emulator.set_delay(Which::Default, 1500);
    let mut client = Client::connect(rig.api());
    assert_eq!(client.post("/purge-payments", "").status, 200);
    // Teach every core the delay (each learns it from its own answers, or from the next
    // health poll): their first payments go to the default and come back slow.
    post_payments(&rig, 0, 64);
    wait_until("the first payments to settle", || {
        let [d, f] = emulator_totals(&rig.emulator, None, None);
        d.0 + f.0 == 64
    });
    let before = emulator_totals(&rig.emulator, None, None);
    post_payments(&rig, 64, 60);
    wait_until("the next payments to settle", || {
        let [d, f] = emulator_totals(&rig.emulator, None, None);
        d.0 + f.0 == 124
    });
    let after = emulator_totals(&rig.emulator, None, None);
    (after[0].0 - before[0].0, after[1].0 - before[1].0)
}

/// Goal: routing weighs a slow default's delay against the fee difference over the time
/// left in the test. With 7%/10% fees a 1.5 s delay is worth paying the fallback only when
/// little time is left: with a 20 s test (known from `TEST_DURATION_MS`, counted from the
/// purge) the fallback takes the payments; with the end unknown (100 s horizon) the default
/// keeps them. Method: the same load twice, comparing where the processors stored it.
#[test]
fn a_slow_default_loses_to_the_fallback_only_near_the_end() {
    let (default, fallback) = slow_default_split("20000");
    assert!(fallback >= 55 && default <= 5, "known end: default {default}, fallback {fallback}");
    let (default, fallback) = slow_default_split("0");
    assert!(default >= 55 && fallback <= 5, "unknown end: default {default}, fallback {fallback}");
}
