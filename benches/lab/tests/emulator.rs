//! The processor emulator, rule by rule, over real loopback sockets on ephemeral ports.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use rinha_lab::{
    client::{Conn, Reply},
    emulator::{self, Emulator, EmulatorConfig, IN_PROGRESS_MAX, QUEUED_MAX, Which},
    framing::Framing,
    time,
};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

fn start() -> Emulator {
    emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("emulator starts")
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut conn = Conn::new(addr);
    let headers: Vec<(&'static str, &str)> =
        token.map(|t| ("x-rinha-token", t)).into_iter().collect();
    conn.request(method, path, &headers, body.map(|b| Bytes::from(b.to_string())), TIMEOUT)
        .await
        .expect("a response")
}

fn payment(id: &str, amount: f64, requested_at: &str) -> Value {
    json!({"correlationId": id, "amount": amount, "requestedAt": requested_at})
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).expect("json body")
}

const ID: &str = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";
const AT: &str = "2025-07-15T12:34:56.000Z";

/// Goal: a payment is stored with 2-decimal rounding, answered 200 with the official message,
/// refused with 422 when its correlationId comes again (keeping the first), and readable by id,
/// over HTTP and through `Emulator::holds`. Method: POST, POST again, GET by id, `holds` on both
/// processors, and the admin summary.
#[tokio::test]
async fn payment_insert_duplicate_and_lookup() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    let first = call(addr, Method::POST, "/payments", None, Some(payment(ID, 20.055, AT))).await;
    assert_eq!(first.status, 200);
    assert_eq!(json_of(&first), json!({"message": "payment processed successfully"}));
    let again = call(addr, Method::POST, "/payments", None, Some(payment(ID, 99.0, AT))).await;
    assert_eq!(again.status, 422);
    let stored = call(addr, Method::GET, &format!("/payments/{ID}"), None, None).await;
    assert_eq!(stored.status, 200);
    assert_eq!(json_of(&stored), json!({"correlationId": ID, "amount": 20.06, "requestedAt": AT}));
    let missing =
        call(addr, Method::GET, "/payments/5a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", None, None).await;
    assert_eq!(missing.status, 404);
    assert!(emulator.holds(Which::Default, ID));
    assert!(!emulator.holds(Which::Fallback, ID), "the processors do not share storage");
    assert!(!emulator.holds(Which::Default, "5a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"));
    assert!(!emulator.holds(Which::Default, "not-a-uuid"));
    let summary = emulator.summary(Which::Default, None, None);
    assert_eq!((summary.total_requests, summary.total_cents), (1, 2006));
    // The processors do not share storage.
    assert_eq!(emulator.summary(Which::Fallback, None, None).total_requests, 0);
    let bad = call(addr, Method::POST, "/payments", None, Some(json!({"amount": 1.0}))).await;
    assert_eq!(bad.status, 400);
}

/// Goal: in failure mode a payment waits the configured delay, then answers 500 with an empty
/// body, and nothing is stored. Method: 200 ms delay + failing, time the answer, then turn the
/// failure off and send the same correlationId, which must now be a fresh insert (200, not 422).
#[tokio::test]
async fn failure_answers_500_after_the_delay_and_stores_nothing() {
    let emulator = start();
    let addr = emulator.addr(Which::Fallback);
    emulator.set_delay(Which::Fallback, 200);
    emulator.set_failing(Which::Fallback, true);
    let started = Instant::now();
    let failed = call(addr, Method::POST, "/payments", None, Some(payment(ID, 19.9, AT))).await;
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    assert_eq!(failed.status, 500);
    assert!(failed.body.is_empty());
    assert_eq!(emulator.summary(Which::Fallback, None, None).total_requests, 0);
    emulator.set_failing(Which::Fallback, false);
    emulator.set_delay(Which::Fallback, 0);
    let stored = call(addr, Method::POST, "/payments", None, Some(payment(ID, 19.9, AT))).await;
    assert_eq!(stored.status, 200);
}

/// Goal: the admin API needs the token (401 without or with a wrong one), the token can be
/// changed (204) after which the old one is refused, delay and failure answer
/// `{"config","was","is"}`, the summary reports totals and fees, and purge empties the table.
/// Method: every admin endpoint in turn on the default processor.
#[tokio::test]
async fn admin_api_token_config_summary_purge() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    let summary_path = "/admin/payments-summary";
    assert_eq!(call(addr, Method::GET, summary_path, None, None).await.status, 401);
    assert_eq!(call(addr, Method::GET, summary_path, Some("nope"), None).await.status, 401);
    let token = call(
        addr,
        Method::PUT,
        "/admin/configurations/token",
        Some("123"),
        Some(json!({"token": "s3cr3t"})),
    );
    assert_eq!(token.await.status, 204);
    assert_eq!(call(addr, Method::GET, summary_path, Some("123"), None).await.status, 401);

    let delay = call(
        addr,
        Method::PUT,
        "/admin/configurations/delay",
        Some("s3cr3t"),
        Some(json!({"delay": 7})),
    )
    .await;
    assert_eq!(delay.status, 200);
    assert_eq!(json_of(&delay), json!({"config": "delay", "was": 0, "is": 7}));
    let failure = call(
        addr,
        Method::PUT,
        "/admin/configurations/failure",
        Some("s3cr3t"),
        Some(json!({"failure": true})),
    )
    .await;
    assert_eq!(failure.status, 200);
    assert_eq!(json_of(&failure), json!({"config": "failure", "was": false, "is": true}));
    emulator.set_failing(Which::Default, false);

    for (i, id) in ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]
        .iter()
        .enumerate()
    {
        let reply =
            call(addr, Method::POST, "/payments", None, Some(payment(id, 10.0 + i as f64, AT)))
                .await;
        assert_eq!(reply.status, 200);
    }
    let summary = call(addr, Method::GET, summary_path, Some("s3cr3t"), None).await;
    assert_eq!(summary.status, 200);
    assert_eq!(
        json_of(&summary),
        json!({"totalRequests": 2, "totalAmount": 21.0, "totalFee": 21.0 * 0.05, "feePerTransaction": 0.05})
    );
    let purge = call(addr, Method::POST, "/admin/purge-payments", Some("s3cr3t"), None).await;
    assert_eq!(purge.status, 200);
    assert_eq!(emulator.summary(Which::Default, None, None).total_requests, 0);
}

/// Goal: summaries filter `requested_at` with inclusive bounds at millisecond precision, and a
/// missing bound is unbounded. Method: payments 1 ms apart, windows that touch them exactly.
#[tokio::test]
async fn summary_bounds_are_inclusive() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    let base = time::parse_iso_ms(AT).expect("timestamp");
    for offset in 0..3 {
        let id = uuid::Uuid::new_v4().to_string();
        let at = time::format_iso_ms(base + offset);
        assert_eq!(
            call(addr, Method::POST, "/payments", None, Some(payment(&id, 1.0, &at))).await.status,
            200
        );
    }
    let count = |from: Option<i64>, to: Option<i64>| {
        let mut query = Vec::new();
        if let Some(from) = from {
            query.push(format!("from={}", time::format_iso_ms(base + from)));
        }
        if let Some(to) = to {
            query.push(format!("to={}", time::format_iso_ms(base + to)));
        }
        let path = format!("/admin/payments-summary?{}", query.join("&"));
        async move {
            json_of(&call(addr, Method::GET, &path, Some("123"), None).await)["totalRequests"]
                .clone()
        }
    };
    assert_eq!(count(Some(1), Some(1)).await, 1);
    assert_eq!(count(Some(0), Some(2)).await, 3);
    assert_eq!(count(Some(1), None).await, 2);
    assert_eq!(count(None, Some(0)).await, 1);
    assert_eq!(count(None, None).await, 3);
    assert_eq!(count(Some(3), Some(9)).await, 0);
}

/// Goal: the health endpoint answers `{"failing","minResponseTime"}` from the current knobs,
/// lets one call per window through, queues two into the next windows and answers 429 beyond.
/// Method: a 300 ms window (the contest's is 5 s) and four simultaneous calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_window_one_per_window_two_queued() {
    let mut config = EmulatorConfig::new(0, 0, 0.05, 0.15);
    config.health_window_ms = 300;
    let emulator = emulator::start(config).expect("emulator starts");
    emulator.set_delay(Which::Default, 123);
    let addr = emulator.addr(Which::Default);
    let started = Instant::now();
    let calls = (0..4).map(|_| {
        tokio::spawn(async move {
            let reply = call(addr, Method::GET, "/payments/service-health", None, None).await;
            (reply, started.elapsed())
        })
    });
    let mut replies = Vec::new();
    for handle in calls.collect::<Vec<_>>() {
        replies.push(handle.await.expect("task"));
    }
    replies.sort_by_key(|(_, elapsed)| *elapsed);
    let statuses: Vec<u16> = replies.iter().map(|(r, _)| r.status).collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 200, 200, 429], "{statuses:?}");
    let ok: Vec<&(Reply, Duration)> = replies.iter().filter(|(r, _)| r.status == 200).collect();
    assert_eq!(json_of(&ok[0].0), json!({"failing": false, "minResponseTime": 123}));
    // The queued two are answered in later windows: the last at least one window after the first.
    assert!(
        ok[2].1 - ok[0].1 >= Duration::from_millis(250),
        "{:?}",
        replies.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    let limited = replies.iter().find(|(r, _)| r.status == 429).expect("a 429");
    assert!(limited.1 < Duration::from_millis(250), "429 must be immediate");
}

/// Goal: the concurrency limit: 800 payments in progress plus 500 queued are accepted, the rest
/// get 429 at once with `Retry-After: 5` and a chunked text body without a type, as Kestrel
/// writes it; the admitted ones all complete.
/// Method: a 1.5 s delay and 1,400 simultaneous POSTs, each on its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_800_plus_500_then_429() {
    let emulator = start();
    emulator.set_delay(Which::Default, 1500);
    let addr = emulator.addr(Which::Default);
    let total = IN_PROGRESS_MAX + QUEUED_MAX + 100;
    let started = Instant::now();
    let mut handles = Vec::with_capacity(total);
    for _ in 0..total {
        handles.push(tokio::spawn(async move {
            let id = uuid::Uuid::new_v4().to_string();
            let reply =
                call(addr, Method::POST, "/payments", None, Some(payment(&id, 1.0, AT))).await;
            (reply, started.elapsed())
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for handle in handles {
        let (reply, elapsed) = handle.await.expect("task");
        match reply.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(elapsed < Duration::from_millis(1500), "429 after {elapsed:?}");
                assert!(!reply.body.is_empty());
                assert_eq!(reply.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"5"[..]));
                // `Response.WriteAsync` in the processor's `OnRejected` sets no Content-Type.
                assert!(reply.headers.get("content-type").is_none());
                let encoding = reply.headers.get("transfer-encoding").map(|v| v.as_bytes());
                assert_eq!(encoding, Some(&b"chunked"[..]));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (IN_PROGRESS_MAX + QUEUED_MAX, 100));
    // The queued 500 waited for a slot: the whole batch took two delays.
    assert!(started.elapsed() >= Duration::from_millis(3000), "{:?}", started.elapsed());
    assert_eq!(emulator.summary(Which::Default, None, None).total_requests, ok as u64);
}

/// How long a test waits for a processor to have admitted what it was sent.
const ADMITTED_WAIT: Duration = Duration::from_secs(10);
/// Step of that wait: short beside the delays the tests hold slots with (seconds).
const ADMITTED_STEP: Duration = Duration::from_millis(5);

/// Waits until `which` has held `count` requests at once in its concurrency limiter. The
/// emulator raises no event when it admits a request, so this reads its high-water mark
/// (`admitted_max`, which only grows) in short steps; the requests waited for hold their slots
/// for seconds, far longer than a step. Panics after `ADMITTED_WAIT`.
async fn admitted(emulator: &Emulator, which: Which, count: usize) {
    let deadline = Instant::now() + ADMITTED_WAIT;
    while emulator.admitted_max(which) < count {
        assert!(
            Instant::now() < deadline,
            "{count} requests admitted at once: {} after {ADMITTED_WAIT:?}",
            emulator.admitted_max(which)
        );
        tokio::time::sleep(ADMITTED_STEP).await;
    }
}

/// Goal: `GET /payments/{id}` is behind the payments' concurrency limiter, as the real
/// processor requires its one `"concurrency"` limiter on both endpoints: while 800 slow
/// payments hold every slot, a lookup waits in the queue (taking one of its places) and
/// answers as soon as the first slot frees, ahead of the payments queued after it and without
/// a delay of its own; once 800 + 500 places are taken, a lookup gets the limiter's `429` at
/// once. Method: a stored payment; then a 2 s delay and 800 simultaneous POSTs; once all are
/// admitted, a lookup of the stored payment; once it is admitted too, 499 POSTs more; once
/// those are admitted, a second lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_share_the_payments_concurrency_limit() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    let stored = call(addr, Method::POST, "/payments", None, Some(payment(ID, 19.9, AT))).await;
    assert_eq!(stored.status, 200);
    let delay = Duration::from_millis(2000);
    emulator.set_delay(Which::Default, 2000);
    let started = Instant::now();
    let post_slow = |count: usize| {
        (0..count)
            .map(|_| {
                tokio::spawn(async move {
                    let id = uuid::Uuid::new_v4().to_string();
                    let body = Some(payment(&id, 1.0, AT));
                    let reply = call(addr, Method::POST, "/payments", None, body).await;
                    (reply.status, started.elapsed())
                })
            })
            .collect::<Vec<_>>()
    };
    let lookup_path = format!("/payments/{ID}");
    let lookup = |path: String| async move {
        let reply = call(addr, Method::GET, &path, None, None).await;
        (reply, started.elapsed())
    };

    let in_progress = post_slow(IN_PROGRESS_MAX);
    admitted(&emulator, Which::Default, IN_PROGRESS_MAX).await;
    let waiting = tokio::spawn(lookup(lookup_path.clone()));
    admitted(&emulator, Which::Default, IN_PROGRESS_MAX + 1).await;
    let queued = post_slow(QUEUED_MAX - 1);
    admitted(&emulator, Which::Default, IN_PROGRESS_MAX + QUEUED_MAX).await;
    let (refused, refused_at) = lookup(lookup_path).await;

    let (found, found_at) = waiting.await.expect("task");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"5"[..]));
    assert!(refused_at < found_at, "the 429 waited: {refused_at:?} vs {found_at:?}");
    assert_eq!(found.status, 200);
    assert_eq!(json_of(&found), json!({"correlationId": ID, "amount": 19.9, "requestedAt": AT}));
    // No slot frees before the first payments' delay has passed.
    assert!(found_at >= delay, "the lookup did not wait for a slot: {found_at:?}");
    for handle in in_progress {
        assert_eq!(handle.await.expect("task").0, 200);
    }
    for handle in queued {
        let (status, done_at) = handle.await.expect("task");
        assert_eq!(status, 200);
        // Oldest first: the lookup had the first slot that freed, and answered in it at once.
        assert!(done_at > found_at, "a payment queued after the lookup: {done_at:?}");
    }
    assert_eq!(emulator.admitted_max(Which::Default), IN_PROGRESS_MAX + QUEUED_MAX);
}

/// Goal: a lookup by id has neither the delay nor the failure switch of `POST /payments`:
/// while the processor fails and answers payments only after 5 s, a lookup with slots free
/// answers at once, 200 with the stored payment, or 404. Method: a stored payment; then
/// failing with a 5 s delay and ten payments waiting in it; a lookup of the stored id and one
/// of an unknown id, each timed; the ten are then abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_answer_at_once_while_the_processor_is_slow_and_failing() {
    let emulator = start();
    let addr = emulator.addr(Which::Fallback);
    let stored = call(addr, Method::POST, "/payments", None, Some(payment(ID, 19.9, AT))).await;
    assert_eq!(stored.status, 200);
    emulator.set_delay(Which::Fallback, 5000);
    emulator.set_failing(Which::Fallback, true);
    let slow: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(async move {
                let id = uuid::Uuid::new_v4().to_string();
                call(addr, Method::POST, "/payments", None, Some(payment(&id, 1.0, AT))).await
            })
        })
        .collect();
    admitted(&emulator, Which::Fallback, 10).await;
    // Far under the 5 s delay, and over what a loaded machine takes to answer from memory.
    let at_once = Duration::from_millis(1000);

    let asked = Instant::now();
    let found = call(addr, Method::GET, &format!("/payments/{ID}"), None, None).await;
    assert!(asked.elapsed() < at_once, "{:?}", asked.elapsed());
    assert_eq!(found.status, 200);
    assert_eq!(json_of(&found), json!({"correlationId": ID, "amount": 19.9, "requestedAt": AT}));
    let asked = Instant::now();
    let missing =
        call(addr, Method::GET, "/payments/5a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", None, None).await;
    assert!(asked.elapsed() < at_once, "{:?}", asked.elapsed());
    assert_eq!(missing.status, 404);
    for handle in slow {
        handle.abort();
    }
}

/// Goal: dropping the emulator closes its sockets. Method: connect after drop must fail.
#[tokio::test]
async fn drop_stops_the_processors() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    drop(emulator);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// One request on a fresh connection, and the raw bytes of its answer, read until the body's
/// framing says it ended (the terminating chunk, or `Content-Length` bytes).
fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let Some(head_end) = text.find("\r\n\r\n") else { continue };
        let head = text[..head_end].to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            if text.ends_with("\r\n0\r\n\r\n") {
                return text;
            }
        } else {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse::<usize>().expect("length"));
            if text.len() >= head_end + 4 + len {
                return text;
            }
        }
    }
}

fn post_request(id: &str) -> String {
    let body = payment(id, 19.9, AT).to_string();
    format!(
        "POST /payments HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Goal: by default the processors frame every answer as the real ones (Kestrel) do: JSON
/// bodies chunked with Kestrel's headers in its order, the 422 in two chunks (`{"message":`
/// then the long rest), status-only answers (500, 401, 404) with `Content-Length: 0`; and
/// `Framing::ContentLength` brings back sized bodies. Method: raw requests, raw answers.
#[test]
fn kestrel_framing_on_the_wire() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    let ok = raw_exchange(addr, &post_request(ID));
    let kestrel_json = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: ";
    assert!(ok.starts_with(kestrel_json), "{ok}");
    assert!(ok.contains("\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\n"), "{ok}");
    assert!(!ok.to_ascii_lowercase().contains("content-length"), "{ok}");
    assert!(
        ok.contains("\r\n{\"message\":\"payment processed successfully\"}\r\n0\r\n\r\n"),
        "{ok}"
    );

    let duplicate = raw_exchange(addr, &post_request(ID));
    assert!(duplicate.starts_with("HTTP/1.1 422 Unprocessable Entity\r\n"), "{duplicate}");
    assert!(duplicate.contains("\r\n\r\nB\r\n{\"message\":\r\n"), "first chunk: {duplicate}");
    assert!(duplicate.len() > 1500, "the database error's text: {} bytes", duplicate.len());

    let health = raw_exchange(addr, "GET /payments/service-health HTTP/1.1\r\nHost: p\r\n\r\n");
    assert!(health.starts_with(kestrel_json), "{health}");
    assert!(health.contains("{\"failing\":false,\"minResponseTime\":0}"), "{health}");

    emulator.set_failing(Which::Default, true);
    let failed = raw_exchange(addr, &post_request("5a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"));
    assert!(failed.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{failed}");
    assert!(failed.contains("Content-Length: 0\r\n") && failed.ends_with("\r\n\r\n"), "{failed}");
    assert!(
        !failed.contains("Transfer-Encoding") && failed.contains("Server: Kestrel"),
        "{failed}"
    );
    let unauthorised =
        raw_exchange(addr, "GET /admin/payments-summary HTTP/1.1\r\nHost: p\r\n\r\n");
    assert!(unauthorised.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{unauthorised}");
    assert!(unauthorised.contains("Content-Length: 0\r\n"), "{unauthorised}");

    let mut config = EmulatorConfig::new(0, 0, 0.05, 0.15);
    config.framing = Framing::ContentLength;
    let sized = emulator::start(config).expect("emulator starts");
    let ok = raw_exchange(sized.addr(Which::Default), &post_request(ID));
    assert!(ok.to_ascii_lowercase().contains("content-length: 44\r\n"), "{ok}");
    assert!(!ok.to_ascii_lowercase().contains("transfer-encoding"), "{ok}");
}

/// Waits until `count` health calls wait in the default's limiter queue (the emulator raises no
/// event for it: its queue is read in short steps), or panics after `TIMEOUT`.
fn queued(emulator: &Emulator, count: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while emulator.health_queued(Which::Default) != count {
        assert!(Instant::now() < deadline, "{count} health calls never queued");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Goal: a health call waiting in the limiter's queue whose client gives up leaves the queue,
/// as ASP.NET Core's limiter drops a waiter whose request is aborted: the call after it takes
/// its place instead of a 429. Method: a 10 s window; one call takes the permit, a second
/// waits and is abandoned (its connection closed), then two more arrive: both must wait, not
/// be refused.
#[test]
fn an_abandoned_health_call_leaves_the_queue() {
    let mut config = EmulatorConfig::new(0, 0, 0.05, 0.15);
    config.health_window_ms = 10_000;
    let emulator = emulator::start(config).expect("emulator starts");
    let addr = emulator.addr(Which::Default);
    let health = "GET /payments/service-health HTTP/1.1\r\nHost: p\r\n\r\n";
    assert!(raw_exchange(addr, health).starts_with("HTTP/1.1 200 OK"));
    let mut abandoned = TcpStream::connect(addr).expect("connect");
    abandoned.write_all(health.as_bytes()).expect("write");
    queued(&emulator, 1);
    drop(abandoned);
    queued(&emulator, 0);
    let waiting: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(health.as_bytes()).expect("write");
            stream
        })
        .collect();
    for mut stream in waiting {
        stream.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut buf = [0u8; 64];
        let read = stream.read(&mut buf);
        assert!(read.is_err(), "a waiting call answers only in a later window: {read:?}");
    }
}

/// Goal: a payment whose client goes away during the processor's delay is stored all the same,
/// as on Kestrel, where the delay filter and the insert run to their end without a cancellation
/// token: a backend killed with payments in flight leaves them in the processor's book. Method:
/// a 300 ms delay; a raw POST whose connection is closed once the processor has admitted it;
/// the book polled until it holds the payment, which must not happen before the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_client_left_is_stored_after_the_delay() {
    let emulator = start();
    emulator.set_delay(Which::Default, 300);
    let addr = emulator.addr(Which::Default);
    let sent = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(post_request(ID).as_bytes()).expect("write");
    admitted(&emulator, Which::Default, 1).await;
    drop(stream);
    let deadline = Instant::now() + TIMEOUT;
    while !emulator.holds(Which::Default, ID) {
        assert!(Instant::now() < deadline, "the payment was never stored");
        tokio::time::sleep(ADMITTED_STEP).await;
    }
    assert!(sent.elapsed() >= Duration::from_millis(300), "stored only after the delay");
}
