//! The processor emulator, rule by rule, over real loopback sockets on ephemeral ports.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use rinha_lab::{
    client::{Conn, Reply},
    emulator::{self, Emulator, EmulatorConfig, IN_PROGRESS_MAX, QUEUED_MAX, Which},
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
/// get 429 at once with `Retry-After: 5` and a text body; the admitted ones all complete.
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
                let content_type = reply.headers.get("content-type").map(|v| v.as_bytes());
                assert!(content_type.is_some_and(|t| t.starts_with(b"text/plain")));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (IN_PROGRESS_MAX + QUEUED_MAX, 100));
    // The queued 500 waited for a slot: the whole batch took two delays.
    assert!(started.elapsed() >= Duration::from_millis(3000), "{:?}", started.elapsed());
    assert_eq!(emulator.summary(Which::Default, None, None).total_requests, ok as u64);
}

/// Goal: dropping the emulator closes its sockets. Method: connect after drop must fail.
#[tokio::test]
async fn drop_stops_the_processors() {
    let emulator = start();
    let addr = emulator.addr(Which::Default);
    drop(emulator);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
