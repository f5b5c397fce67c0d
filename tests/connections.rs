//! Connection-level abuse, end to end, in its own test binary (it needs ten thousand file
//! descriptors of this process): slow clients that hold half-sent requests while others are
//! served, ten thousand concurrent keep-alive connections over both instances, and a flood of
//! stalled clients against instances in a memory limit.

mod common;

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    path::PathBuf,
    time::{Duration, Instant},
};

use common::*;
use payrelay::config::Config;

/// Connections of the concurrency test: the ten thousand.
const CONCURRENT_CONNECTIONS: usize = 10_000;

/// Held by each test that opens thousands of connections: each end this process holds is a
/// descriptor, and two such tests at once (the harness runs tests in parallel) would pass the
/// hard limit of 20,000 here.
static THOUSANDS_OF_DESCRIPTORS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for the other tests that open thousands of connections to finish (one that failed
/// still lets the next run).
fn descriptors_to_myself() -> std::sync::MutexGuard<'static, ()> {
    THOUSANDS_OF_DESCRIPTORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Longest a normal request may take while slow clients hold their connections. A request is
/// served in well under a millisecond here; this bound only catches a core that waits on a
/// slow client (it would then wait forever), with room for a busy 2-core CI machine.
const SERVED_WITHIN: Duration = Duration::from_millis(500);

/// `connections_open` of each instance (by pid), read on fresh connections until both answered.
fn open_connections_by_instance(rig: &Rig) -> BTreeMap<u64, u64> {
    per_instance(rig, "payrelay_connections_open")
}

/// One series of each instance's `/metrics` (by pid), read on fresh connections until both
/// instances answered.
fn per_instance(rig: &Rig, series: &str) -> BTreeMap<u64, u64> {
    let mut seen = BTreeMap::new();
    for _ in 0..200 {
        let mut client = Client::connect(rig.api());
        let pid = instance_of(&mut client);
        let metrics = client.get("/metrics").body;
        seen.insert(pid, metric_total(&metrics, series) as u64);
        if seen.len() == 2 {
            return seen;
        }
    }
    panic!("the kernel never reached the second instance");
}

/// Goal: clients that send part of a request and stall (slowloris) cost only their own
/// connection: everyone else is served at once, and the stalled requests are answered when
/// they finally complete. Method: 200 connections stop mid-head and 100 mid-body (spread over
/// every core of both instances); while they hang, 300 requests on fresh connections and on one
/// keep-alive connection must each be answered within `SERVED_WITHIN`; then every stalled
/// request is finished a byte at a time and must get its 202.
#[test]
fn slow_clients_do_not_delay_others() {
    let rig = Rig::start();
    let mut stalled = Vec::new();
    let mut finish = Vec::new();
    for i in 0..300u32 {
        let body = payment_json(&uuid(i), "19.90");
        let request =
            format!("POST /payments HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        // Mid-head for the first 200, mid-body for the rest.
        let cut = if i < 200 { 20 } else { request.len() - 10 };
        let mut client = Client::connect(rig.api());
        client.send(&request.as_bytes()[..cut]);
        finish.push(request.as_bytes()[cut..].to_vec());
        stalled.push(client);
    }
    let mut keep_alive = Client::connect(rig.api());
    let mut slowest = Duration::ZERO;
    for i in 0..300u32 {
        let started = Instant::now();
        let status = if i % 2 == 0 {
            Client::connect(rig.api())
                .post("/payments", &payment_json(&uuid(1000 + i), "1.00"))
                .status
        } else {
            keep_alive.get("/health").status
        };
        slowest = slowest.max(started.elapsed());
        assert!(status == 202 || status == 200, "{status}");
    }
    assert!(slowest < SERVED_WITHIN, "a request took {slowest:?} while slow clients stalled");
    for (client, rest) in stalled.iter_mut().zip(&finish) {
        for byte in rest {
            client.send(std::slice::from_ref(byte));
        }
    }
    for client in &mut stalled {
        assert_eq!(client.read().expect("the stalled request's answer").status, 202);
    }
    wait_until("all 450 payments to be stored", || {
        let [d, f] = emulator_totals(&rig.emulator, None, None);
        d.0 + f.0 == 450
    });
    eprintln!("slowest request while 300 clients stalled: {slowest:?}");
}

/// Goal: ten thousand concurrent keep-alive connections are all accepted and all served, twice,
/// without refusing anyone, and `payrelay_connections_open` of the two instances adds up to
/// them; memory stays bounded. Method: raise this process's descriptor limit, open 10,000
/// connections to the shared port and keep them all open, send `GET /health` on every one and
/// read every answer, twice; read both instances' `/metrics` while they are open; close them
/// and wait for the gauges to fall back.
#[test]
fn ten_thousand_concurrent_connections() {
    let _descriptors = descriptors_to_myself();
    let limit = payrelay::boot::raise_open_files_limit().expect("open files limit");
    assert!(limit > CONCURRENT_CONNECTIONS as u64 + 1000, "open files limit {limit} is too low");
    let rig = Rig::start();
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..CONCURRENT_CONNECTIONS)
        .map(|i| Client::try_connect(rig.api()).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let connected = started.elapsed();
    for round in 0..2 {
        for client in &mut clients {
            client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let reply = client
                .read()
                .unwrap_or_else(|| panic!("round {round}: connection {i} got no answer"));
            assert_eq!(reply.status, 200, "round {round}: connection {i}");
        }
    }
    let open = open_connections_by_instance(&rig);
    let total: u64 = open.values().sum();
    // Ours, plus the probe's own connection; the probes' earlier connections may still close.
    assert!(total > CONCURRENT_CONNECTIONS as u64, "{open:?}");
    let usage = rig.backend.usage();
    eprintln!("connected in {connected:?}, open per instance {open:?}, usage {usage:?}");
    drop(clients);
    wait_until("the connections to be closed on the server side", || {
        open_connections_by_instance(&rig).values().sum::<u64>() < 100
    });
}

/// Goal: a connection that completes no request within `CONNECTION_IDLE_TIMEOUT_MS` is closed
/// (a partial request answered 408 first), while a keep-alive connection in use is not, under
/// both io drivers. Method: a 500 ms timeout; one connection stops mid-request, one never sends
/// anything, one sends a request every 100 ms for 2 s; the first must read a 408 and then the
/// end, the second the end, the third every answer; both instances' expiry counters add up.
#[test]
fn idle_and_stalled_connections_are_closed() {
    for driver in ["io_uring", "epoll"] {
        let rig = Rig::start_with(&[("CONNECTION_IDLE_TIMEOUT_MS", "500"), ("IO_DRIVER", driver)]);
        let mut stalled = Client::connect(rig.api());
        stalled.send(b"POST /payments HTTP/1.1\r\nContent-Length: 70\r\n\r\n{\"corr");
        let mut silent = Client::connect(rig.api());
        let mut busy = Client::connect(rig.api());
        // The busy connection keeps being used, every 100 ms, until the other two have expired
        // (the sweep counts them), whenever that is.
        wait_until("the idle and the stalled connection to expire", || {
            assert_eq!(busy.get("/health").status, 200, "{driver}: a connection in use stays open");
            let expired: u64 =
                per_instance(&rig, "payrelay_connections_expired_total").values().sum();
            std::thread::sleep(Duration::from_millis(100));
            expired >= 2
        });
        let reply = stalled.read().unwrap_or_else(|| panic!("{driver}: no 408 before closing"));
        assert_eq!(reply.status, 408, "{driver}: {}", reply.body);
        assert!(stalled.closed(), "{driver}: closed after the 408");
        assert!(silent.closed(), "{driver}: an idle connection is closed");
        let expired: u64 = per_instance(&rig, "payrelay_connections_expired_total").values().sum();
        assert!(expired >= 2, "{driver}: expired {expired}");
    }
}

/// Goal: beyond `CONNECTIONS_MAX` per core a new connection is closed at once, the ones open
/// are still served, and a slot freed is reusable. Method: one core per instance with a limit
/// of 16: open 40 connections (the kernel spreads them over the two instances, so at least 8
/// are beyond a limit), count those served and those closed, close the served ones, and check
/// a new connection is served again.
#[test]
fn connections_beyond_the_limit_are_closed() {
    let rig = Rig::start_with(&[("CONNECTIONS_MAX", "16"), ("WORKER_COUNT", "1")]);
    let mut clients: Vec<Client> = (0..40).map(|_| Client::connect(rig.api())).collect();
    let mut served = Vec::new();
    let mut closed = 0;
    for mut client in clients.drain(..) {
        client.send(b"GET /health HTTP/1.1\r\n\r\n");
        match client.read() {
            Some(reply) => {
                assert_eq!(reply.status, 200);
                served.push(client);
            }
            None => closed += 1,
        }
    }
    assert!(served.len() <= 32 && closed >= 8, "served {}, closed {closed}", served.len());
    drop(served);
    wait_until("a new connection to be served", || {
        Client::try_connect(rig.api())
            .map(|mut c| {
                c.send(b"GET /health HTTP/1.1\r\n\r\n");
                c.read().is_some()
            })
            .unwrap_or(false)
    });
    let refused: u64 = per_instance(&rig, "payrelay_connections_refused_total").values().sum();
    assert!(refused >= 8, "refused {refused}");
}

/// Goal: the peer link does not count against `CONNECTIONS_MAX`: with both instances' public
/// port full, a summary (which calls the other instance over the peer link) still answers 200
/// on either instance. (Before, the peer's connection was refused with the public ones, and
/// every summary answered 503 while the port was full.) Method: one core per instance, a limit
/// of 16, 80 connections (both instances fill up), then a summary on a served connection of
/// each instance.
#[test]
fn the_peer_link_is_served_when_the_public_port_is_full() {
    let rig = Rig::start_with(&[("CONNECTIONS_MAX", "16"), ("WORKER_COUNT", "1")]);
    let mut served: Vec<(u64, Client)> = Vec::new();
    for _ in 0..80 {
        let mut client = Client::connect(rig.api());
        client.send(b"GET /health HTTP/1.1\r\n\r\n");
        if let Some(reply) = client.read() {
            let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            served.push((value["pid"].as_u64().expect("pid"), client));
        }
    }
    for name in ["a", "b"] {
        let pid = u64::from(rig.pid(name));
        let (_, client) = served.iter_mut().find(|(p, _)| *p == pid).expect("a served connection");
        let reply = client.get("/payments-summary");
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    // The metrics on each peer address: the public port refuses new connections.
    let refused: f64 = ["a", "b"]
        .map(|name| {
            let addr = rig.backend.peer_addr(name).expect("peer address");
            let text = Client::connect(addr).get("/metrics").body;
            metric_total(&text, "payrelay_connections_refused_total")
        })
        .iter()
        .sum();
    assert!(refused >= 40.0, "both ports full: refused {refused}");
}

/// Memory limit of each instance in the flood test (the contest gives 170 MB): small, so that
/// twice the connections that fit in it stay within this process's descriptors (20,000 here).
const FLOOD_MEMORY_MB: u64 = 64;

/// `REQUEST_HEAD_BYTES_MAX` in the flood test: 8 KiB (the limit before the connection cap was
/// derived from memory), so that each stalled client holds the most and fewer fill the limit.
const FLOOD_HEAD_BYTES_MAX: usize = 8192;

/// What each flooding client sends: a request head just under the limit, never completed.
const FLOOD_PARTIAL_HEAD_BYTES: usize = 8000;

/// The flood test's variables on top of the rig's: one core per instance, as in the contest,
/// and a queue and journal small enough that the reserve leaves room for connections.
fn flood_env() -> Vec<(&'static str, String)> {
    vec![
        ("WORKER_COUNT", "1".to_owned()),
        ("REQUEST_HEAD_BYTES_MAX", FLOOD_HEAD_BYTES_MAX.to_string()),
        ("QUEUE_LEN_MAX", "1024".to_owned()),
        ("JOURNAL_BYTES_MAX", "1048576".to_owned()),
    ]
}

/// A compose file whose two payrelay services have `FLOOD_MEMORY_MB` each, for the lab's
/// envelope.
fn flood_compose_file() -> PathBuf {
    let service = |name: &str| {
        format!(
            "  {name}:\n    network_mode: \"service:net\"\n    deploy:\n      resources:\n        \
             limits:\n          cpus: \"1\"\n          memory: {FLOOD_MEMORY_MB}MB\n"
        )
    };
    let text = format!(
        "services:\n  net:\n    image: \"none\"\n{}{}",
        service("payrelay-a"),
        service("payrelay-b")
    );
    let path = std::env::temp_dir().join(format!(
        "payrelay-flood-{}-{}.yml",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::write(&path, text).expect("compose file");
    path
}

/// The cap an instance of the rig with `extra` derives within `FLOOD_MEMORY_MB`: payrelay's own
/// reading of the fixture, `extra` and the journal the rig gives it.
fn cap_within_the_limit(extra: &[(&str, &str)]) -> usize {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/two-cores.env");
    let mut pairs: Vec<(String, String)> = rinha_lab::backend::read_env_file(fixture.as_ref())
        .expect("fixture")
        .into_iter()
        .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
        .collect();
    pairs.push(("JOURNAL_DIR".to_owned(), "/journal".to_owned()));
    let lookup = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = Config::from_lookup_within(lookup, Some(FLOOD_MEMORY_MB << 20)).expect("config");
    config.connections_max
}

/// One series of each instance's `/metrics`, by name (`a`, `b`), read on its private peer
/// address: the public port is full during the flood. Fails the test, saying so, if an instance
/// has died.
fn per_instance_at_peer(rig: &mut Rig, series: &str) -> BTreeMap<&'static str, u64> {
    if let Some(died) = rig.backend.exited() {
        panic!("{died}");
    }
    ["a", "b"]
        .into_iter()
        .map(|name| {
            let addr = rig.backend.peer_addr(name).expect("peer address");
            (name, metric_total(&Client::connect(addr).get("/metrics").body, series) as u64)
        })
        .collect()
}

/// Current RSS of each instance, MB, by name; fails the test if one has exited.
fn rss_mb(rig: &Rig) -> BTreeMap<&'static str, f64> {
    rig.backend
        .rss_mb()
        .into_iter()
        .map(|(name, rss)| (name, rss.unwrap_or_else(|| panic!("payrelay {name} is gone"))))
        .collect()
}

/// Goal: a flood of stalled clients cannot take an instance past its memory limit, and its
/// memory comes back when the flood ends. Each instance derives its connection cap from the
/// limit (`CONNECTIONS_MAX=0`); connections beyond it are refused at accept; the ones it serves
/// keep being served, and the summary still reaches the peer; memory freed by the closed
/// connections is returned to the system. (Before, 16,384 connections per core were allowed at
/// ~14 KiB each, and the allocator kept what they had held.) Method: both instances, one core
/// each, inside a cgroup of `FLOOD_MEMORY_MB` (when the machine allows: otherwise without one,
/// with `CONNECTIONS_MAX` set to what they would derive in it, and only RSS checked against the
/// limit); one keep-alive client per instance opened first; then twice as many connections as
/// both caps allow, each sending a request head of `FLOOD_PARTIAL_HEAD_BYTES` that never ends.
/// While they are held: `POST /payments` answers 202 and `GET /payments-summary` 200 on the
/// keep-alive clients, both instances are alive, and their peak RSS (VmHWM) and their cgroups'
/// peak usage stay below the limit. Then the flood closes, and each instance's RSS must fall
/// back to within a quarter of what the flood added to it.
#[test]
fn a_flood_of_stalled_clients_stays_within_the_memory_limit() {
    let _descriptors = descriptors_to_myself();
    let files = payrelay::boot::raise_open_files_limit().expect("open files limit");
    let env = flood_env();
    let mut extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let compose = flood_compose_file();
    let mut rig = Rig::start_enveloped(&extra, &compose);
    let _ = std::fs::remove_file(&compose);
    let enveloped = rig.backend.envelope_applied();
    let cap_by_hand;
    if !enveloped {
        eprintln!(
            "no cgroup ({}): the instances run without a memory limit, CONNECTIONS_MAX set to \
             what they derive within {FLOOD_MEMORY_MB} MB, RSS checked against it",
            rig.backend.envelope_note()
        );
        drop(rig);
        cap_by_hand = cap_within_the_limit(&extra).to_string();
        extra.push(("CONNECTIONS_MAX", &cap_by_hand));
        rig = Rig::start_with(&extra);
    }
    let limit_mb = FLOOD_MEMORY_MB as f64;

    // One keep-alive client on each instance, opened before the flood fills the port.
    let mut held: BTreeMap<u64, Client> = BTreeMap::new();
    wait_until("a connection to each instance", || {
        let mut client = Client::connect(rig.api());
        held.insert(instance_of(&mut client), client);
        held.len() == 2
    });
    let caps = per_instance_at_peer(&mut rig, "payrelay_connections_max");
    let flood = 2 * caps.values().sum::<u64>() as usize;
    assert!(flood + 1000 < files as usize, "{flood} connections: open files limit {files}");
    let base_rss = rss_mb(&rig);
    let accepted_before: u64 =
        per_instance_at_peer(&mut rig, "payrelay_connections_accepted_total").values().sum();

    let started = Instant::now();
    let mut partial = b"GET /payments-summary HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    partial.resize(FLOOD_PARTIAL_HEAD_BYTES, b'a');
    let mut flooding = Vec::with_capacity(flood);
    for i in 0..flood {
        let Ok(mut stream) = TcpStream::connect(rig.api()) else {
            panic!("connection {i} of {flood} failed: {:?}", rig.backend.exited());
        };
        // A connection beyond the cap is closed at once: its write may fail, as it should.
        let _ = stream.write_all(&partial);
        flooding.push(stream);
    }
    wait_until("every flooding connection to be accepted or refused", || {
        let accepted: u64 =
            per_instance_at_peer(&mut rig, "payrelay_connections_accepted_total").values().sum();
        accepted >= accepted_before + flood as u64
    });
    let refused = per_instance_at_peer(&mut rig, "payrelay_connections_refused_total");
    assert!(refused.values().all(|&n| n > 0), "both instances full: refused {refused:?}");
    // Half of each cap's heads at least in memory: the flood is loaded.
    wait_until("the stalled heads to be read", || {
        let rss = rss_mb(&rig);
        ["a", "b"].iter().all(|name| {
            let heads_mb = caps[name] as f64 * FLOOD_PARTIAL_HEAD_BYTES as f64 / 2.0 / 1048576.0;
            rss[name] >= base_rss[name] + heads_mb
        })
    });
    for (pid, client) in &mut held {
        let reply = client.post_payment(&uuid(*pid as u32));
        assert_eq!(reply.status, 202, "{pid}: {}", reply.body);
        let reply = client.get("/payments-summary");
        assert_eq!(reply.status, 200, "{pid}: {}", reply.body);
    }
    let flooded_for = started.elapsed();
    assert_eq!(rig.backend.exited(), None, "an instance died in the flood");
    let peak_rss: BTreeMap<&str, f64> =
        rig.backend.usage().into_iter().map(|(name, usage)| (name, usage.rss_mb_max)).collect();
    let flooded_rss = rss_mb(&rig);
    let cgroups = rig.backend.cgroup_memory();
    for (name, peak) in &peak_rss {
        assert!(*peak < limit_mb, "{name}: peak RSS {peak:.1} MB, limit {limit_mb} MB");
    }
    for (name, memory) in &cgroups {
        let Some(memory) = memory else { continue };
        let peak = memory.peak_bytes.unwrap_or(memory.usage_bytes);
        assert!(peak < memory.limit_bytes, "{name}: the cgroup reached its limit: {memory:?}");
    }

    drop(flooding);
    wait_until("the flood's connections to be closed on the server side", || {
        let open = per_instance_at_peer(&mut rig, "payrelay_connections_open");
        open.values().all(|&n| n < 10)
    });
    let mut after_rss = BTreeMap::new();
    wait_until("memory to come back", || {
        after_rss = rss_mb(&rig);
        ["a", "b"].iter().all(|name| {
            let back_to = base_rss[name] + (peak_rss[name] - base_rss[name]) / 4.0;
            after_rss[name] <= back_to
        })
    });
    eprintln!(
        "flood of {flood} connections (caps {caps:?}, refused {refused:?}) for {flooded_for:?}: \
         RSS MB base {base_rss:.1?}, flooded {flooded_rss:.1?}, peak {peak_rss:.1?}, after \
         {after_rss:.1?}; cgroups {cgroups:?}"
    );
}
