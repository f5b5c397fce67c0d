//! The hold policy end to end: with the test's end known, payments wait for the cheaper
//! processor while it fails, as long as the dearer one could still take them in time, and go
//! to the dearer one when that time runs out. (`src/upstream/route.rs` has the argument; its
//! unit tests have the decision table.)

mod common;

use std::time::{Duration, Instant};

use common::{Client, Rig, emulator_totals, parse_summary, uuid, wait_until};
use rinha_lab::emulator::Which;

/// Starts the test's clock, as the contest's setup does.
fn purge(client: &mut Client) -> Instant {
    let reply = client.post("/purge-payments", "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    Instant::now()
}

/// Goal: a default failing for 10 s in the middle of a long test is waited for. Every payment
/// accepted meanwhile ends on the default once it recovers; the fallback gets none (the
/// default gets its breaker's probes). Method: a 120 s test, the default failing for 10 s
/// while payments arrive every 100 ms; then the books of both processors and ours.
#[test]
fn a_failing_default_is_waited_for_far_from_the_end() {
    let rig = Rig::start_with(&[("TEST_DURATION_MS", "120000")]);
    let mut client = Client::connect(rig.api());
    purge(&mut client);
    rig.emulator.set_failing(Which::Default, true);
    let failing_since = Instant::now();
    let mut accepted = 0;
    while failing_since.elapsed() < Duration::from_secs(10) {
        assert_eq!(client.post_payment(&uuid(accepted)).status, 202);
        accepted += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = emulator_totals(&rig.emulator, None, None);
    assert_eq!(during, [(0, 0), (0, 0)], "nothing stored while the default failed");
    rig.emulator.set_failing(Which::Default, false);
    wait_until("every payment on the default", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == u64::from(accepted)
    });
    let books = emulator_totals(&rig.emulator, None, None);
    assert_eq!(books[1], (0, 0), "the fallback got nothing");
    let summary = client.get("/payments-summary");
    assert_eq!(parse_summary(&summary.body), books, "our books are theirs");
}

/// Goal: the same failure in the last seconds of a known-length test goes to the fallback, in
/// time for the final count. Method: an 8 s test; at 5 s the default fails and ten payments
/// arrive; every one must be stored by the fallback before the test's end.
#[test]
fn a_failing_default_near_the_end_is_not_waited_for() {
    let rig = Rig::start_with(&[("TEST_DURATION_MS", "8000")]);
    let mut client = Client::connect(rig.api());
    let started = purge(&mut client);
    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    rig.emulator.set_failing(Which::Default, true);
    for i in 0..10 {
        assert_eq!(client.post_payment(&uuid(i)).status, 202);
    }
    wait_until("every payment on the fallback", || {
        emulator_totals(&rig.emulator, None, None)[1].0 == 10
    });
    let landed_at = started.elapsed();
    assert!(landed_at < Duration::from_secs(8), "landed {landed_at:?} into an 8 s test");
    assert_eq!(emulator_totals(&rig.emulator, None, None)[0], (0, 0));
}

/// Goal: a held backlog, released when the cheaper processor recovers, reaches it no faster
/// than the per-core slot limit allows: never more than `PROCESSOR_INFLIGHT_MAX` per core in
/// flight there, however many tasks wake at once. Past that limit the real processor queues
/// requests (their delay starts later, so they land after their planned `requestedAt`) and
/// then answers 429. Method: 4 slots per core (2 instances × 2 cores: 16 in all), journals on
/// (each attempt waits for its record to be durable before it leaves), the default failing
/// while 120 payments are held for it; it recovers with a 300 ms delay; the emulator's
/// high-water mark of requests held at once must not pass 16.
#[test]
fn a_released_backlog_stays_within_the_slot_limit() {
    const SLOTS_PER_CORE: usize = 4;
    let slots = SLOTS_PER_CORE.to_string();
    let rig = Rig::start_with(&[
        ("TEST_DURATION_MS", "120000"),
        ("PROCESSOR_INFLIGHT_MAX", slots.as_str()),
    ]);
    let mut client = Client::connect(rig.api());
    purge(&mut client);
    rig.emulator.set_failing(Which::Default, true);
    let accepted = 120;
    for i in 0..accepted {
        assert_eq!(client.post_payment(&uuid(i)).status, 202);
    }
    rig.emulator.set_delay(Which::Default, 300);
    rig.emulator.set_failing(Which::Default, false);
    wait_until("every payment on the default", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == u64::from(accepted)
    });
    let cores = 2 * 2;
    let most = rig.emulator.admitted_max(Which::Default);
    assert!(most <= cores * SLOTS_PER_CORE, "{most} requests at once, above {cores} × {slots}");
    assert_eq!(emulator_totals(&rig.emulator, None, None)[1], (0, 0), "held for the default");
}

/// Goal: a released backlog goes out at the cores' forward pace (`FORWARDS_PER_S_MAX`), over
/// seconds, not in one burst that takes a core's whole CPU quota. Method: one core per
/// instance paced at 200 forwards a second, the default failing while 600 payments are held
/// for it; once it recovers, storing them all must take at least what the pace allows: 600
/// less a burst of 64 per core, at 2 × 200 a second, 1.18 s.
#[test]
fn a_released_backlog_goes_out_at_the_pace() {
    let rig = Rig::start_with(&[
        ("TEST_DURATION_MS", "120000"),
        ("WORKER_COUNT", "1"),
        ("FORWARDS_PER_S_MAX", "200"),
    ]);
    let mut client = Client::connect(rig.api());
    purge(&mut client);
    rig.emulator.set_failing(Which::Default, true);
    let accepted = 600;
    let mut clients: Vec<Client> = (0..8).map(|_| Client::connect(rig.api())).collect();
    for i in 0..accepted {
        assert_eq!(clients[i as usize % 8].post_payment(&uuid(i)).status, 202);
    }
    let released = Instant::now();
    rig.emulator.set_failing(Which::Default, false);
    wait_until("every payment on the default", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == u64::from(accepted)
    });
    let took = released.elapsed();
    assert!(took >= Duration::from_millis(1_100), "600 payments released in {took:?}");
}
