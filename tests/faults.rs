//! Fault tests: two real `payrelay` processes sharing one port, each with two cores, in front of
//! the lab's emulated processors, through the failures a deployment meets: both processors down
//! under load with small queues, the peer instance killed and restarted, SIGTERM under load.
//! Everything listens on loopback on ephemeral ports; readiness is the lab's summary probe, and
//! every wait is a poll on an observable condition with a deadline (the only sleeps pace the
//! load). The tests run one at a time (see [`serial`]): each drives two servers hard on a
//! 2-core machine, and two at once would turn the timings they check into noise.

use std::{
    collections::HashSet,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

mod common;

use common::{
    Client, DEADLINE, POLL, Reply, Rig, emulator_totals, metric_total, parse_summary, uuid,
    wait_until,
};
use rinha_lab::{
    backend,
    emulator::{Emulator, Which},
};

/// The 503 body of a full queue, as payrelay writes it.
const QUEUE_FULL_BODY: &str = r#"{"error":"payment queue is full; retry later"}"#;

/// Runs the tests of this file one at a time; a failed test's poisoned lock is still usable.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The connection could not be opened.
    Connect(io::ErrorKind),
    /// The connection broke (or timed out) with the request sent or being sent.
    Io(String),
}

fn stored_count(emulator: &Emulator) -> u64 {
    emulator_totals(emulator, None, None).iter().map(|(count, _)| count).sum()
}

/// Our summary on a fresh connection: (pid of the instance that answered, status, body).
fn summary_on_fresh_connection(api: SocketAddr, query: &str) -> (u64, Reply) {
    let mut client = Client::connect(api);
    let health = client.get("/health");
    let value: serde_json::Value = serde_json::from_str(&health.body).expect("health JSON");
    let pid = value["pid"].as_u64().expect("health names the instance's pid");
    (pid, client.get(&format!("/payments-summary{query}")))
}

/// Both instances' summaries equal the processors' whole books.
fn both_instances_agree_with_the_books(rig: &Rig) {
    both_instances_agree(rig, "", emulator_totals(&rig.emulator, None, None));
}

/// One POST of the load, as the client saw it.
#[derive(Debug, Clone)]
struct Post {
    id: u32,
    /// When the request was started (before connecting, if it opened a connection).
    sent: Instant,
    /// Whether it opened a new connection.
    fresh: bool,
    result: Result<Reply, Failure>,
}

/// Client threads posting distinct payments at a steady rate until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    /// 202s so far, for the test to watch.
    accepted: Arc<AtomicU32>,
    /// POSTs started so far.
    attempted: Arc<AtomicU32>,
    threads: Vec<thread::JoinHandle<Vec<Post>>>,
}

impl Load {
    /// `threads` clients, each posting `rate_per_thread` payments a second, opening a new
    /// connection every `per_connection` requests (1 = a connection per request) or after a
    /// failure. Ids are `first_id`, `first_id + 1`, ... in the order requests start.
    fn start(
        api: SocketAddr,
        threads: usize,
        rate_per_thread: u32,
        per_connection: usize,
        first_id: u32,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let attempted = Arc::new(AtomicU32::new(0));
        let next_id = Arc::new(AtomicU32::new(first_id));
        let interval = Duration::from_secs(1) / rate_per_thread;
        let threads = (0..threads)
            .map(|_| {
                let (stop, accepted, next_id) = (stop.clone(), accepted.clone(), next_id.clone());
                let attempted = attempted.clone();
                thread::spawn(move || {
                    let mut posts = Vec::new();
                    let mut client: Option<Client> = None;
                    let mut used = 0;
                    let mut next_at = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        // Pacing the load, not waiting for readiness.
                        thread::sleep(next_at.saturating_duration_since(Instant::now()));
                        next_at += interval;
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        attempted.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let fresh = client.is_none() || used >= per_connection;
                        if fresh {
                            used = 0;
                            client = None;
                            match Client::try_connect(api) {
                                Ok(c) => client = Some(c),
                                Err(e) => {
                                    let result = Err(Failure::Connect(e.kind()));
                                    posts.push(Post { id, sent, fresh, result });
                                    continue;
                                }
                            }
                        }
                        let conn = client.as_mut().expect("connected above");
                        used += 1;
                        let result = conn.try_post_payment(&uuid(id)).map_err(Failure::Io);
                        match &result {
                            Ok(reply) if reply.status == 202 => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(_) => client = None,
                        }
                        posts.push(Post { id, sent, fresh, result });
                    }
                    posts
                })
            })
            .collect();
        Load { stop, accepted, attempted, threads }
    }

    fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn attempted(&self) -> u32 {
        self.attempted.load(Ordering::Relaxed)
    }

    /// Stops the clients and returns every POST, in the order requests started.
    fn finish(mut self) -> Vec<Post> {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        let mut posts: Vec<Post> =
            threads.into_iter().flat_map(|t| t.join().expect("client thread")).collect();
        posts.sort_by_key(|p| p.sent);
        posts
    }
}

impl Drop for Load {
    /// A test that fails mid-load stops its clients, so they do not load the next test.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn status_of(post: &Post) -> Option<u16> {
    post.result.as_ref().ok().map(|reply| reply.status)
}

/// Where the processors hold each payment: fails the test unless every id in `accepted` is
/// held by exactly one processor and no id in `refused` by any.
fn check_books_hold_exactly(emulator: &Emulator, accepted: &[u32], refused: &[u32]) {
    let held = |id: u32| {
        [Which::Default, Which::Fallback]
            .into_iter()
            .filter(|which| emulator.holds(*which, &uuid(id)))
            .count()
    };
    let lost: Vec<u32> = accepted.iter().copied().filter(|id| held(*id) != 1).collect();
    assert!(lost.is_empty(), "{} accepted payments not held exactly once: {lost:?}", lost.len());
    let paid: Vec<u32> = refused.iter().copied().filter(|id| held(*id) != 0).collect();
    assert!(paid.is_empty(), "{} refused payments were stored: {paid:?}", paid.len());
    assert_eq!(stored_count(emulator), accepted.len() as u64, "nothing else is stored");
}

/// Goal: with both processors down at the contest's peak arrival rate, payrelay holds what
/// its bounded queues allow and refuses the rest with a JSON 503 (never before some core has
/// really filled, never unbounded memory), then forwards exactly the payments it accepted once
/// the processors recover: every 202 stored once, no 503 stored, our summary equal to the
/// processors' books. Method: 4 cores with `QUEUE_LEN_MAX=300` and `DISPATCH_INFLIGHT_MAX=50`
/// (350 payments each, 1400 in all); both processors failing; 6 client threads at ~600/s,
/// reconnecting every 10 requests so the kernel spreads them over all cores, until 1400 are
/// accepted and 0.5 s more (all 503); both instances' VmRSS sampled throughout; then heal
/// both processors and check the books payment by payment.
#[test]
fn both_processors_down_fills_the_queues_then_everything_accepted_is_forwarded() {
    let _serial = serial();
    const QUEUE: u32 = 300;
    const INFLIGHT: u32 = 50;
    const CORES: u32 = 4;
    const HELD_PER_CORE: u32 = QUEUE + INFLIGHT;
    const CAPACITY: u32 = CORES * HELD_PER_CORE;
    /// Bound on each instance's RSS during the outage: a few MB of runtime, rings and
    /// buffers, and ~100 bytes a held payment (measured: about 4 MB idle, 6 MB at the peak).
    /// Far under the contest's 175 MB per instance, and low enough that a queue or buffers
    /// growing with the refused load would show.
    const RSS_MB_MAX: f64 = 24.0;
    let rig = Rig::start_with(&[
        ("QUEUE_LEN_MAX", &QUEUE.to_string()),
        ("DISPATCH_INFLIGHT_MAX", &INFLIGHT.to_string()),
    ]);
    rig.emulator.set_failing(Which::Default, true);
    rig.emulator.set_failing(Which::Fallback, true);
    let pids = [rig.pid("a"), rig.pid("b")];
    let rss_before = pids.map(|pid| backend::read_rss_mb(pid).expect("instance runs"));

    let started = Instant::now();
    let load = Load::start(rig.api(), 6, 100, 10, 0);
    let mut rss_max = rss_before;
    let mut full_at = None;
    while full_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_millis(500)) {
        for (max, pid) in rss_max.iter_mut().zip(pids) {
            *max = max.max(backend::read_rss_mb(pid).expect("instance runs during the outage"));
        }
        let accepted = load.accepted();
        assert!(accepted <= CAPACITY, "{accepted} accepted: more than the queues hold");
        if full_at.is_none() && accepted == CAPACITY {
            full_at = Some(Instant::now());
        }
        assert!(started.elapsed() < DEADLINE, "only {accepted} of {CAPACITY} accepted");
        thread::sleep(POLL);
    }
    let full_at = full_at.expect("the loop ends once full");
    let posts = load.finish();
    let outage = started.elapsed();

    let accepted: Vec<u32> =
        posts.iter().filter(|p| status_of(p) == Some(202)).map(|p| p.id).collect();
    let refused: Vec<&Post> = posts.iter().filter(|p| status_of(p) == Some(503)).collect();
    let other: Vec<&Post> =
        posts.iter().filter(|p| !matches!(status_of(p), Some(202 | 503))).collect();
    assert!(other.is_empty(), "only 202 and 503 expected: {:?}", &other[..other.len().min(5)]);
    assert_eq!(accepted.len() as u32, CAPACITY, "every core holds exactly its limit");
    for post in &refused {
        assert_eq!(post.result.as_ref().unwrap().body, QUEUE_FULL_BODY);
    }
    // A 503 means some core holds its limit, so at least that many 202s came before.
    let first_refused = refused.first().expect("503s once the queues are full");
    let accepted_before =
        posts.iter().filter(|p| p.sent < first_refused.sent && status_of(p) == Some(202)).count();
    assert!(
        accepted_before >= HELD_PER_CORE as usize,
        "first 503 after only {accepted_before} accepted"
    );
    let after_full: Vec<&Post> = posts.iter().filter(|p| p.sent > full_at).collect();
    assert!(after_full.len() >= 100, "{} posts after the queues filled", after_full.len());
    assert!(after_full.iter().all(|p| status_of(p) == Some(503)), "full queues accept nothing");
    for (name, max) in ["a", "b"].iter().zip(rss_max) {
        assert!(max < RSS_MB_MAX, "instance {name}: RSS {max:.1} MB during the outage");
    }
    assert_eq!(stored_count(&rig.emulator), 0, "both processors were failing");

    rig.emulator.set_failing(Which::Default, false);
    rig.emulator.set_failing(Which::Fallback, false);
    let recovery = wait_until("the processors to store every accepted payment", || {
        stored_count(&rig.emulator) >= u64::from(CAPACITY)
    });
    let refused_ids: Vec<u32> = refused.iter().map(|p| p.id).collect();
    check_books_hold_exactly(&rig.emulator, &accepted, &refused_ids);
    both_instances_agree_with_the_books(&rig);
    eprintln!(
        "both-down: {} posts in {:.1} s, {} accepted, {} refused (503), first 503 after {} \
         accepted; RSS before {:.1}/{:.1} MB, max {:.1}/{:.1} MB (a/b); all forwarded {} ms \
         after the processors recovered",
        posts.len(),
        outage.as_secs_f64(),
        accepted.len(),
        refused.len(),
        accepted_before,
        rss_before[0],
        rss_before[1],
        rss_max[0],
        rss_max[1],
        recovery.as_millis()
    );
}

/// Goal (without a journal): while the peer instance is dead, the summary refuses with a 503
/// naming the missing peer (never a partial total) and payments keep being accepted and forwarded by the survivor;
/// once the peer is started again it has lost what it had recorded, so a summary reaching back
/// before its restart is still refused, on both instances, naming the restart (never a 200
/// that silently leaves its records out), while ranges after it are exact again without any
/// action; a purge clears the restart. Method: `PROCESSOR_TIMEOUT_MS` 1000 (the lookahead of a
/// lost life); post 40 payments on fresh connections (both instances record some); SIGKILL B;
/// ask for the summary (only A listens); post 100 payments; restart B; check the unbounded
/// summary on both instances; post 64 payments after B's start plus the lookahead and compare
/// the summary from then on with the processors' books; purge and compare again.
#[test]
fn peer_killed_summary_refuses_then_recovers_after_restart() {
    let _serial = serial();
    let mut rig = Rig::start_journaled(&[("PROCESSOR_TIMEOUT_MS", "1000")], false, |_| {});
    let (pid_a, peer_b) = (rig.pid("a"), rig.backend.peer_addr("b").expect("b"));
    for i in 0..40 {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    wait_until("the first payments to be stored", || stored_count(&rig.emulator) == 40);
    both_instances_agree_with_the_books(&rig);

    let killed = rig.backend.kill("b").expect("kill b");
    assert!(!killed.success(), "SIGKILL: {killed}");
    let missing_peer = format!("peer {peer_b} ");
    for _ in 0..8 {
        let (pid, reply) = summary_on_fresh_connection(rig.api(), "");
        assert_eq!(pid, u64::from(pid_a), "only A listens on the shared port");
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(reply.body.starts_with("{\"error\":\""), "{}", reply.body);
        assert!(reply.body.contains(&missing_peer), "{} should name {peer_b}", reply.body);
    }
    for i in 1000..1100 {
        let reply = Client::connect(rig.api()).post_payment(&uuid(i));
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    wait_until("the outage's payments to be stored", || stored_count(&rig.emulator) == 140);
    let accepted: Vec<u32> = (0..40).chain(1000..1100).collect();
    check_books_hold_exactly(&rig.emulator, &accepted, &[]);

    rig.backend.restart("b").expect("restart b");
    let restarted = Instant::now();
    let new_pid_b = u64::from(rig.pid("b"));
    // Both instances refuse the whole range, each naming the restart its own way.
    let mut refused_by = HashSet::new();
    wait_until("both instances to refuse the range B forgot", || {
        let (pid, reply) = summary_on_fresh_connection(rig.api(), "");
        assert_ne!(reply.status, 200, "a total without B's lost records: {}", reply.body);
        if reply.body.contains("restarted since the last purge") {
            let who = if pid == new_pid_b { "this instance " } else { missing_peer.as_str() };
            assert!(reply.body.contains(who), "{pid}: {}", reply.body);
            refused_by.insert(pid);
        }
        refused_by.len() == 2
    });
    let refused_after = restarted.elapsed();

    // B's lost life planned `requestedAt` at most 1 s past B's start: later ranges are exact.
    let from_ms = payrelay::timestamp::now_ms() + 1_100;
    wait_until("the lookahead to pass", || payrelay::timestamp::now_ms() > from_ms);
    let mut on_new_b = 0;
    for i in 2000..2064 {
        let mut client = Client::connect(rig.api());
        let health: serde_json::Value = serde_json::from_str(&client.get("/health").body).unwrap();
        on_new_b += usize::from(health["pid"].as_u64() == Some(new_pid_b));
        assert_eq!(client.post_payment(&uuid(i)).status, 202);
    }
    assert!(on_new_b > 0, "no connection reached the restarted B");
    wait_until("the last payments to be stored", || stored_count(&rig.emulator) == 204);
    let since = format!("?from={}", iso(from_ms));
    let expected = emulator_totals(&rig.emulator, Some(from_ms), None);
    assert_eq!(expected[0].0, 64, "{expected:?}");
    both_instances_agree(&rig, &since, expected);

    // A purge starts a new test: the restart no longer matters. The processors are not purged
    // here, so the new test's payments are told from the last ones by `requestedAt`, which may
    // lead the send by up to the lookahead.
    let mut client = Client::connect(rig.api());
    let purge = client.try_request(b"POST /purge-payments HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(purge.expect("purge").status, 200);
    let from_ms = payrelay::timestamp::now_ms() + 1_100;
    wait_until("the lookahead to pass", || payrelay::timestamp::now_ms() > from_ms);
    for i in 3000..3010 {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    wait_until("the payments after the purge to be stored", || stored_count(&rig.emulator) == 214);
    both_instances_agree(&rig, "", emulator_totals(&rig.emulator, Some(from_ms), None));
    eprintln!(
        "peer restart: both instances refused the forgotten range {:.1} ms after B restarted",
        refused_after.as_secs_f64() * 1000.0
    );
}

/// Goal (with the journal): a killed instance loses nothing it accepted and keeps its books.
/// While it is down its peer answers the summary from the dead one's journal, exactly; after
/// its restart both answer every range exactly, with no refusal; and the payments it held when
/// killed (queued, or in flight at a processor answering in 300 ms) are each stored exactly
/// once. Method: 40 payments settled, kill B, summaries on A; 100 payments while B is down;
/// restart B; then the default at 300 ms, 60 payments on fresh connections (both instances
/// take some), kill B at once and restart it; check every id in the books and both summaries.
#[test]
fn a_killed_instance_keeps_its_books_and_what_it_accepted() {
    let _serial = serial();
    let mut rig = Rig::start();
    let pid_a = rig.pid("a");
    for i in 0..40 {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    wait_until("the first payments to be stored", || stored_count(&rig.emulator) == 40);
    both_instances_agree_with_the_books(&rig);

    rig.backend.kill("b").expect("kill b");
    let expected = emulator_totals(&rig.emulator, None, None);
    for _ in 0..4 {
        let (pid, reply) = summary_on_fresh_connection(rig.api(), "");
        assert_eq!(pid, u64::from(pid_a), "only A listens on the shared port");
        assert_eq!(
            reply.status, 200,
            "the dead peer's books come from its journal: {}",
            reply.body
        );
        assert_eq!(parse_summary(&reply.body), expected);
    }
    for i in 1000..1100 {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    rig.backend.restart("b").expect("restart b");
    wait_until("the outage's payments to be stored", || stored_count(&rig.emulator) == 140);
    both_instances_agree_with_the_books(&rig);

    rig.emulator.set_delay(Which::Default, 300);
    let held: Vec<u32> = (2000..2060).collect();
    for &i in &held {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    rig.backend.kill("b").expect("kill b with payments in flight");
    rig.backend.restart("b").expect("restart b");
    wait_until("every accepted payment to be stored", || stored_count(&rig.emulator) == 200);
    let accepted: Vec<u32> = (0..40).chain(1000..1100).chain(held).collect();
    check_books_hold_exactly(&rig.emulator, &accepted, &[]);
    both_instances_agree_with_the_books(&rig);
    let log_b = rig.backend.log_paths().into_iter().find(|p| p.ends_with("payrelay-b.log"));
    let log_b = std::fs::read_to_string(log_b.expect("B's log")).expect("B's log");
    assert!(log_b.contains("records:") && log_b.contains("pending"), "the replay is logged");
}

/// Goal: what a killed instance had sent and a processor stored while it was down is in the
/// books as soon as anyone asks for them, not a processor's delay later: its peer's answer from
/// the dead journal looks those payments up, and so does the restarted instance before it
/// listens (rather than sending them again and waiting out the delay for the 422). Method: the
/// default at 3 s; 60 payments on fresh connections (both instances take some); B killed while
/// they are in the processor's delay; once the processor has stored them all, A's summary (A
/// alone listens) equals the books; B restarted: both instances agree with the books within 2 s
/// of the restart, sooner than the 3 s a resend takes.
#[test]
fn a_restart_finds_what_was_stored_while_it_was_down() {
    let _serial = serial();
    let mut rig = Rig::start_after(&[], |emulator| emulator.set_delay(Which::Default, 3_000));
    let ids: Vec<u32> = (0..60).collect();
    for &i in &ids {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(i)).status, 202);
    }
    let inflight = |name: &str| {
        let peer = rig.backend.peer_addr(name).expect("the instance has a peer link");
        let metrics = Client::connect(peer).get("/metrics").body;
        metric_total(&metrics, "payrelay_inflight_requests{processor=\"default\"}")
    };
    wait_until("every payment in the processor's delay, some sent by B", || {
        let b = inflight("b");
        b > 0.0 && inflight("a") + b == ids.len() as f64
    });
    rig.backend.kill("b").expect("kill b with payments in the processor's delay");
    wait_until("the processor to store them all", || stored_count(&rig.emulator) == 60);
    let (_, reply) = summary_on_fresh_connection(rig.api(), "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        parse_summary(&reply.body),
        emulator_totals(&rig.emulator, None, None),
        "A counts what B had in flight and the processor stored"
    );
    let restarted = Instant::now();
    rig.backend.restart("b").expect("restart b");
    both_instances_agree_with_the_books(&rig);
    let took = restarted.elapsed();
    assert!(took < Duration::from_secs(2), "the books agreed {took:?} after the restart");
    check_books_hold_exactly(&rig.emulator, &ids, &[]);
}

/// Goal: an instance killed with SIGKILL and started again at once by its supervisor (no pause)
/// comes back, though its dead process's listening sockets outlive it for a few milliseconds,
/// and loses nothing: with a backlog held for a failing default, every accepted payment is
/// stored exactly once after the default recovers, and both summaries equal the books. (Before
/// the bind was retried, such a start exited with "Address already in use" about half the
/// time.) Method: a 120 s test, so payments are held for the default while it fails; three
/// rounds of 40 payments on fresh connections (both instances take some), then B killed and
/// started again at once, and waited for on its peer link. In the last round the test itself
/// holds B's peer port while B starts, until B's log says it is retrying, so that the retry is
/// exercised whatever the kernel's timing; then the default recovers.
#[test]
fn an_instance_started_again_at_once_comes_back_and_loses_nothing() {
    let _serial = serial();
    let mut rig = Rig::start_with(&[("TEST_DURATION_MS", "120000")]);
    assert_eq!(Client::connect(rig.api()).post("/purge-payments", "").status, 200);
    rig.emulator.set_failing(Which::Default, true);
    let peer_b = rig.backend.peer_addr("b").expect("B's peer link");
    let log_b = rig.backend.log_paths().into_iter().find(|p| p.ends_with("payrelay-b.log"));
    let log_b = log_b.expect("B's log");
    let mut accepted = Vec::new();
    for round in 0..3 {
        for id in round * 100..round * 100 + 40 {
            // A connection the kernel gave the dead process's listener, in the milliseconds it
            // outlives the process, is reset unread: the client tries again.
            let reply =
                (0..5).find_map(|_| Client::connect(rig.api()).try_post_payment(&uuid(id)).ok());
            assert_eq!(reply.expect("an answer within five connections").status, 202);
            accepted.push(id);
        }
        rig.backend.kill_at_once("b").expect("kill b");
        let mut squatter = None;
        if round == 2 {
            wait_until("B's dead peer socket to go", || {
                squatter = std::net::TcpListener::bind(peer_b).ok();
                squatter.is_some()
            });
        }
        rig.backend.restart("b").expect("start b again at once");
        let alive = |rig: &mut Rig| {
            if let Some(exit) = rig.backend.exited() {
                panic!("{}", rig.backend.describe_failure(&exit));
            }
        };
        if squatter.is_some() {
            wait_until("B to retry its bind", || {
                alive(&mut rig);
                std::fs::read_to_string(&log_b).is_ok_and(|log| log.contains("retrying for up to"))
            });
            drop(squatter);
        }
        wait_until("B to come back", || {
            alive(&mut rig);
            Client::try_connect(peer_b).is_ok()
        });
    }
    rig.emulator.set_failing(Which::Default, false);
    wait_until("every accepted payment to be stored", || {
        stored_count(&rig.emulator) == accepted.len() as u64
    });
    check_books_hold_exactly(&rig.emulator, &accepted, &[]);
    both_instances_agree_with_the_books(&rig);
}

/// Goal: a purge forgets the books, not the work: payments accepted before it and still held
/// (here, for a failing default) are forwarded after the instance is killed and started again
/// past the purge, each exactly once. Method: a 120 s test, the default failing; 40 payments
/// on fresh connections (both instances hold some); a purge; B killed and started again; the
/// default recovers; every accepted payment must be stored once.
#[test]
fn payments_held_across_a_purge_survive_a_kill() {
    let _serial = serial();
    let mut rig = Rig::start_with(&[("TEST_DURATION_MS", "120000")]);
    rig.emulator.set_failing(Which::Default, true);
    let accepted: Vec<u32> = (0..40).collect();
    for &id in &accepted {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(id)).status, 202);
    }
    assert_eq!(Client::connect(rig.api()).post("/purge-payments", "").status, 200);
    rig.backend.kill("b").expect("kill b");
    rig.backend.restart("b").expect("restart b");
    let peer_b = rig.backend.peer_addr("b").expect("B's peer link");
    wait_until("B to come back", || Client::try_connect(peer_b).is_ok());
    rig.emulator.set_failing(Which::Default, false);
    wait_until("every accepted payment to be stored", || {
        stored_count(&rig.emulator) == accepted.len() as u64
    });
    check_books_hold_exactly(&rig.emulator, &accepted, &[]);
}

/// Goal: a restart replays its journal in fixed memory, whatever the file's size: a journal near
/// its limit must not take the instance past its memory limit (replay held about three times
/// the file before). Method: a journal of 250,000 settled payments (three records each, 48 MiB)
/// written in payrelay's own record format; one instance started on it; once it answers, its
/// peak resident memory (VmHWM) must be under the file's size, and its summary must hold every
/// payment.
#[test]
fn a_large_journal_replays_in_fixed_memory() {
    use payrelay::{
        journal::{Kind, record::Record},
        ledger::Processor,
        payment::Payment,
    };
    const PAYMENTS: u32 = 250_000;
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("payrelay-big-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let mut bytes = Vec::with_capacity(PAYMENTS as usize * 3 * 64);
    for i in 0..PAYMENTS {
        let mut correlation_id = [0u8; 36];
        correlation_id.copy_from_slice(uuid(i).as_bytes());
        let payment = Payment { correlation_id, cents: 1990 };
        let record = |kind, processor| Record {
            kind,
            epoch: 0,
            payment,
            processor,
            requested_at_ms: 1_752_582_896_000 + i64::from(i),
        };
        record(Kind::Accepted, None).encode(&mut bytes);
        record(Kind::Attempt, Some(Processor::Default)).encode(&mut bytes);
        record(Kind::Settled, Some(Processor::Default)).encode(&mut bytes);
    }
    let file_mb = bytes.len() as f64 / (1 << 20) as f64;
    std::fs::write(dir.join("core-0.gen-1.journal"), bytes).expect("the journal");
    let emulator =
        rinha_lab::emulator::start(rinha_lab::emulator::EmulatorConfig::new(0, 0, 0.05, 0.15))
            .expect("emulator");
    let journal_dir = dir.to_string_lossy().into_owned();
    let solo = common::Solo::start_with(&emulator, None, &[("JOURNAL_DIR", &journal_dir)]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", solo.pid())).expect("status");
    let peak_kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    let peak_mb = peak_kb / 1024.0;
    let reply = Client::connect(solo.api).get("/payments-summary");
    assert_eq!(parse_summary(&reply.body)[0].0, u64::from(PAYMENTS), "{}", reply.body);
    eprintln!("replay peaked at {peak_mb:.1} MB for a {file_mb:.1} MB journal");
    assert!(peak_mb < file_mb, "replay peaked at {peak_mb:.1} MB for a {file_mb:.1} MB journal");
    drop(solo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Goal: a journal that cannot be read at start refuses payments, as its log says, until a
/// purge starts a generation past it, and what is accepted after that survives a restart.
/// (Before, the instance accepted payments in generation 0, which the next replay deleted as
/// older, with every 202 of that life.) Method: a journal folder whose core 0 file of
/// generation 3 is a directory, which replay cannot read; one instance on it: a payment
/// refused; a purge; a payment accepted while the default fails (it stays queued); the
/// instance killed and started again on the same folder with the default healthy: the
/// payment is stored, and in its books.
#[test]
fn an_unreadable_journal_refuses_payments_until_a_purge() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("payrelay-unreadable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("core-0.gen-3.journal")).expect("a directory as a journal");
    let emulator =
        rinha_lab::emulator::start(rinha_lab::emulator::EmulatorConfig::new(0, 0, 0.05, 0.15))
            .expect("emulator");
    emulator.set_failing(Which::Default, true);
    emulator.set_failing(Which::Fallback, true);
    let journal_dir = dir.to_string_lossy().into_owned();
    let env = [("JOURNAL_DIR", journal_dir.as_str())];
    let solo = common::Solo::start_with(&emulator, None, &env);
    let mut client = Client::connect(solo.api);
    let refused = client.post_payment(&uuid(1));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("journal unwritable"), "{}", refused.body);
    assert_eq!(client.post("/purge-payments", "").status, 200);
    assert_eq!(client.post_payment(&uuid(2)).status, 202);
    drop(solo);
    emulator.set_failing(Which::Default, false);
    emulator.set_failing(Which::Fallback, false);
    let solo = common::Solo::start_with(&emulator, None, &env);
    wait_until("the payment accepted after the purge to be stored", || {
        emulator.holds(Which::Default, &uuid(2)) || emulator.holds(Which::Fallback, &uuid(2))
    });
    wait_until("it to be in the restarted instance's books", || {
        let reply = Client::connect(solo.api).get("/payments-summary");
        parse_summary(&reply.body).iter().map(|(count, _)| count).sum::<u64>() == 1
    });
    drop(solo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Goal: SIGTERM ends holding: payments held for a failing cheaper processor go to the other
/// one at once, and each instance exits 0 well before its drain deadline with everything it
/// accepted stored. (Before, routing never looked at the drain: the held payments waited out
/// `DRAIN_DEADLINE_MS` and the process exited 1 with them unsent.) Method: a 120 s test (the
/// default is waited for while it fails), the default failing, 40 payments on fresh
/// connections, then SIGTERM to both instances with an 8 s deadline; each must exit 0 within
/// 3 s and every payment must be on the fallback.
#[test]
fn sigterm_ends_holding() {
    let _serial = serial();
    let mut rig = Rig::start_with(&[("TEST_DURATION_MS", "120000"), ("DRAIN_DEADLINE_MS", "8000")]);
    assert_eq!(Client::connect(rig.api()).post("/purge-payments", "").status, 200);
    rig.emulator.set_failing(Which::Default, true);
    let accepted: Vec<u32> = (0..40).collect();
    for &id in &accepted {
        assert_eq!(Client::connect(rig.api()).post_payment(&uuid(id)).status, 202);
    }
    assert_eq!(stored_count(&rig.emulator), 0, "held for the default");
    for ending in rig.backend.terminate(Duration::from_secs(10)) {
        let status = ending.status.unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "{} exited with {status}", ending.name);
        assert!(ending.after < Duration::from_secs(3), "{} took {:?}", ending.name, ending.after);
    }
    check_books_hold_exactly(&rig.emulator, &accepted, &[]);
    assert_eq!(emulator_totals(&rig.emulator, None, None)[1].0, 40, "all on the fallback");
}

/// Goal: a journal folder that cannot be written refuses every payment with a clear 503 (it
/// accepts nothing it could lose), says why in the log, and leaves the rest of the API up.
/// Method: `JOURNAL_DIR` under `/proc`, where no folder can be made.
#[test]
fn an_unwritable_journal_refuses_payments_and_says_why() {
    let rig = Rig::start_journaled(&[("JOURNAL_DIR", "/proc/payrelay-journal")], false, |_| {});
    let mut client = Client::connect(rig.api());
    let reply = client.post_payment(&uuid(1));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body, r#"{"error":"payment journal unwritable: payment not accepted"}"#);
    assert_eq!(client.get("/payments-summary").status, 200, "the rest of the API answers");
    let metrics = client.get("/metrics").body;
    assert_eq!(
        metric_total(&metrics, "payrelay_payments_received_total{result=\"unjournaled\"}"),
        1.0
    );
    let logs: String =
        rig.backend.log_paths().iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
    assert!(logs.contains("journal /proc/payrelay-journal"), "the log names the journal: {logs}");
    assert_eq!(stored_count(&rig.emulator), 0);
}

fn iso(ms: i64) -> String {
    String::from_utf8(payrelay::timestamp::format_iso(ms).to_vec()).unwrap()
}

/// Asks for our summary with `query` on fresh connections until both instances answered 200
/// with `expected` (each polled: the ledger is written a moment after the processor stores).
fn both_instances_agree(rig: &Rig, query: &str, expected: [(u64, u64); 2]) {
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        let mut answered_by = 0;
        wait_until("our summary to equal the processors' books", || {
            let (pid, reply) = summary_on_fresh_connection(rig.api(), query);
            answered_by = pid;
            reply.status == 200 && parse_summary(&reply.body) == expected
        });
        seen.insert(answered_by);
    }
}

/// Goal: SIGTERM under load loses nothing and tells no lie: each instance stops taking new
/// connections, forwards everything it accepted, and exits by itself with status 0; every POST
/// answered 202 is in the processors' books (exactly those), and POSTs after the listeners
/// closed fail with a connection error, never a 2xx that is then lost. Method: both processors
/// at 800 ms; 4 keep-alive clients and 2 connection-per-request clients at 50 payments/s each;
/// once 200 payments are in flight, SIGTERM both instances and wait up to 15 s for them to
/// exit (`DRAIN_DEADLINE_MS=8000`) while the clients keep posting, then check every POST.
#[test]
fn sigterm_under_load_drains_every_accepted_payment_and_exits_zero() {
    let _serial = serial();
    /// After SIGTERM the listeners close at once; this much slack covers the signal's
    /// delivery and the cores' reaction on a busy machine.
    const LISTENERS_CLOSE_WITHIN: Duration = Duration::from_millis(300);
    const GRACE: Duration = Duration::from_secs(15);
    let mut rig = Rig::start_with(&[("DRAIN_DEADLINE_MS", "8000")]);
    rig.emulator.set_delay(Which::Default, 800);
    rig.emulator.set_delay(Which::Fallback, 800);
    let keep_alive = Load::start(rig.api(), 4, 50, usize::MAX, 0);
    let per_request = Load::start(rig.api(), 2, 50, 1, 1_000_000);
    let in_flight = || {
        let accepted = keep_alive.accepted() + per_request.accepted();
        u64::from(accepted).saturating_sub(stored_count(&rig.emulator))
    };
    wait_until("200 payments in flight at the processors' 800 ms", || in_flight() >= 200);
    let accepted_at_term = keep_alive.accepted() + per_request.accepted();
    let stored_at_term = stored_count(&rig.emulator);
    let term_at = Instant::now();
    let endings = rig.backend.terminate(GRACE);
    let exited_at = Instant::now();
    // Keep posting after the exit: every client tries a few times, and all must fail to
    // connect.
    let tried = keep_alive.attempted() + per_request.attempted();
    wait_until("a few posts after the exit", || {
        keep_alive.attempted() + per_request.attempted() >= tried + 20
    });
    let mut posts = keep_alive.finish();
    posts.extend(per_request.finish());
    posts.sort_by_key(|p| p.sent);

    let accepted: Vec<u32> =
        posts.iter().filter(|p| status_of(p) == Some(202)).map(|p| p.id).collect();
    let failed: Vec<u32> = posts.iter().filter(|p| p.result.is_err()).map(|p| p.id).collect();
    let lost = accepted
        .iter()
        .filter(|id| {
            ![Which::Default, Which::Fallback].iter().any(|w| rig.emulator.holds(*w, &uuid(**id)))
        })
        .count();
    let late_fresh: Vec<&Post> =
        posts.iter().filter(|p| p.fresh && p.sent > term_at + LISTENERS_CLOSE_WITHIN).collect();
    let late_accepted: Vec<&Post> =
        late_fresh.iter().copied().filter(|p| status_of(p) == Some(202)).collect();
    let accepted_after_term =
        posts.iter().filter(|p| p.sent > term_at && status_of(p) == Some(202)).count();
    let endings_text: Vec<String> = endings
        .iter()
        .map(|t| format!("{} {:?} after {} ms", t.name, t.status, t.after.as_millis()))
        .collect();
    eprintln!(
        "sigterm: {} posts, {} accepted ({} by SIGTERM, {} of them stored then; {} after \
         SIGTERM, {} on new connections), {} failed, {} accepted but not stored; {}",
        posts.len(),
        accepted.len(),
        accepted_at_term,
        stored_at_term,
        accepted_after_term,
        late_accepted.len(),
        failed.len(),
        lost,
        endings_text.join(", ")
    );

    assert!(
        stored_at_term + 50 < u64::from(accepted_at_term),
        "SIGTERM should find payments in flight: {stored_at_term} of {accepted_at_term} stored"
    );
    for ending in &endings {
        match &ending.status {
            Ok(status) => {
                assert!(status.success(), "instance {} exited with {status}", ending.name)
            }
            Err(e) => panic!("{e}"),
        }
    }
    // On a connection already open when the drain began, a POST is refused in words: 503,
    // never a 202 the instance could not forward in time.
    let draining = r#"{"error":"shutting down: payment not accepted; retry on a new connection"}"#;
    let answered_otherwise: Vec<&Post> = posts
        .iter()
        .filter(|p| p.result.is_ok() && status_of(p) != Some(202))
        .filter(|p| {
            let refused_in_words =
                matches!(&p.result, Ok(r) if r.status == 503 && r.body == draining);
            !(refused_in_words && p.sent > term_at)
        })
        .collect();
    assert!(answered_otherwise.is_empty(), "unexpected answers: {answered_otherwise:?}");
    let refused: Vec<u32> = posts
        .iter()
        .filter(|p| p.result.is_err() || status_of(p) == Some(503))
        .map(|p| p.id)
        .collect();
    assert!(!late_fresh.is_empty(), "the clients kept opening connections after SIGTERM");
    assert!(
        late_accepted.is_empty(),
        "{} new connections accepted after the listeners closed, e.g. {:?}",
        late_accepted.len(),
        late_accepted[0]
    );
    let after_exit: Vec<&Post> = posts.iter().filter(|p| p.sent > exited_at).collect();
    assert!(!after_exit.is_empty(), "the clients kept posting after the exit");
    assert!(
        after_exit.iter().all(|p| matches!(p.result, Err(Failure::Connect(_)))),
        "after the exit every POST fails to connect"
    );
    // Nothing more can arrive: the instances are gone. Every 202 is stored, nothing else.
    check_books_hold_exactly(&rig.emulator, &accepted, &refused);
}

/// A fake peer on a loopback port: answers the peer link's calls with fixed totals (2
/// payments, 39.80, at the default), except that it drops the first `/internal/summary` call
/// without a word, as a peer restarting (or its kernel tearing down a dead socket) would.
fn flaky_peer() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        let mut summaries = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let body = if head.starts_with(b"GET /internal/summary") {
                summaries += 1;
                if summaries == 1 {
                    continue;
                }
                r#"{"boot":5,"started_ms":1,"you_forgot_before_ms":-9223372036854775808,"totals":{"default":[2,3980],"fallback":[0,0]}}"#
            } else {
                "{}"
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

/// Goal: a summary whose first call to the peer fails is not a 503: the call is made once
/// more, within the contest client's 1.5 s, and the answer holds the peer's totals. (The
/// official script counts a summary it does not get as zeros, an inconsistency.) Method: one
/// instance whose peer is a fake that drops the first summary call; time the summary.
#[test]
fn a_summary_retries_a_failed_peer_call() {
    let _serial = serial();
    let emulator =
        rinha_lab::emulator::start(rinha_lab::emulator::EmulatorConfig::new(0, 0, 0.05, 0.15))
            .expect("emulator");
    let solo = common::Solo::start(&emulator, Some(flaky_peer()));
    let started = Instant::now();
    let reply = Client::connect(solo.api).get("/payments-summary");
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(parse_summary(&reply.body), [(2, 3980), (0, 0)]);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

/// Goal: when the peer dies, the survivor polls the health of the dead peer's processor every
/// interval from the moment it notices the silence (three intervals), not every three intervals:
/// its own polls must not count as the peer's news. Method: kill B, wait until both processors
/// have been polled since; then each must get two more calls within two intervals and 4 s:
/// a loop of polls is an interval plus its calls, each at most `HEALTH_CALL_TIMEOUT` (1.5 s)
/// when the processor's window queues it, while a poll every three intervals would put 15 s
/// between those two calls. Waited for as they come, never measured over a fixed sleep.
#[test]
fn a_silent_peers_processor_is_polled_every_interval() {
    let _serial = serial();
    let mut rig = Rig::start();
    let calls = |rig: &Rig| [Which::Default, Which::Fallback].map(|w| rig.emulator.health_calls(w));
    rig.backend.kill("b").expect("kill b");
    let at_kill = calls(&rig);
    let interval = Duration::from_millis(5_000);
    let started = Instant::now();
    while calls(&rig).iter().zip(at_kill).any(|(now, then)| *now == then) {
        assert!(started.elapsed() < 3 * interval + DEADLINE, "a processor was never polled again");
        thread::sleep(POLL);
    }
    let before = calls(&rig);
    let polled_again = Instant::now();
    let two_more = 2 * interval + Duration::from_secs(4);
    while calls(&rig).iter().zip(before).any(|(now, then)| *now < then + 2) {
        let now = calls(&rig);
        assert!(
            polled_again.elapsed() < two_more,
            "two more calls each within {two_more:?}: {before:?} -> {now:?}"
        );
        thread::sleep(POLL);
    }
}
