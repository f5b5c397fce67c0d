//! payrelay against processors that answer as the real ones do (Kestrel: chunked bodies), and
//! their faults: what the health polls learn and share, who polls what, dead pooled
//! connections, and payments waiting for a slot.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Rig, emulator_totals, metric, metric_total, payment_json, uuid, wait_until};
use rinha_lab::{backend::read_usage, emulator::Which};

/// One instance's `/metrics`, read on its private peer address (the shared port would let the
/// kernel pick the instance).
fn metrics_of(rig: &Rig, name: &str) -> String {
    let addr = rig.backend.peer_addr(name).expect("peer address");
    let reply = Client::connect(addr).get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// Goal: the health polls read the processors' chunked `service-health` answers, and what they
/// learn reaches every core of both instances: the default's delay (1234 ms) becomes the delay
/// each core plans with, and the fallback's `failing` opens each core's breaker, with no
/// payment sent to learn it. (Before the one response reader, a chunked answer was handed to
/// the JSON parser with its chunk framing, no poll ever succeeded, and both stayed unknown.)
/// Method: set both processors before the instances start, then read each instance's metrics
/// until every core shows both facts.
#[test]
fn health_polls_read_chunked_answers_and_reach_every_core() {
    let rig = Rig::start_after(&[], |emulator| {
        emulator.set_delay(Which::Default, 1234);
        emulator.set_failing(Which::Fallback, true);
    });
    for name in ["a", "b"] {
        wait_until("every core to know both processors' health", || {
            let text = metrics_of(&rig, name);
            (0..2).all(|core| {
                let delay = format!(
                    "payrelay_processor_delay_seconds{{core=\"{core}\",processor=\"default\"}}"
                );
                let open =
                    format!("payrelay_breaker_open{{core=\"{core}\",processor=\"fallback\"}}");
                metric(&text, &delay) == 1.234 && metric(&text, &open) == 1.0
            })
        });
    }
    assert_eq!(emulator_totals(&rig.emulator, None, None), [(0, 0), (0, 0)], "nothing was sent");
}

/// Goal: the two instances split the health polling, one processor each, and stay within the
/// endpoint's shared limit of one call per 5 s: neither processor is polled by both (which
/// queues and then refuses calls), and neither is left unpolled. The split is decided by the
/// instances' boot ids, which they exchange on the peer link, not by comparing addresses.
/// Method: after readiness (the boots have been exchanged) and one settling interval, count the
/// calls each processor's health endpoint gets over two intervals.
#[test]
fn the_instances_split_the_health_polling() {
    let rig = Rig::start();
    let interval = Duration::from_millis(5_000);
    std::thread::sleep(interval + Duration::from_millis(500));
    let before = [Which::Default, Which::Fallback].map(|w| rig.emulator.health_calls(w));
    std::thread::sleep(2 * interval);
    let after = [Which::Default, Which::Fallback].map(|w| rig.emulator.health_calls(w));
    let calls = [after[0] - before[0], after[1] - before[1]];
    assert!(calls.iter().all(|&n| (1..=3).contains(&n)), "calls per processor in 10 s: {calls:?}");
}

/// Goal: a pooled keep-alive connection that the processor closed while it sat idle is retried
/// once on a fresh connection, and counts as nothing: every payment is stored at the default,
/// no attempt is reported unknown or refused, and the default's breaker stays closed. (Before,
/// the end-of-file on a reused connection was an unknown outcome and a breaker failure; three
/// in a row opened the breaker and sent payments to the dearer fallback.) Method: post payments
/// on one core until its pool holds several connections, let the processor close every
/// connection, post more, and read the books and the metrics.
#[test]
fn a_dead_pooled_connection_is_retried_on_a_fresh_one() {
    let rig = Rig::start();
    let mut client = Client::connect(rig.api());
    let post = |client: &mut Client, from: u32, to: u32| {
        for i in from..to {
            assert_eq!(client.post("/payments", &payment_json(&uuid(i), "19.90")).status, 202);
        }
    };
    // A burst, so that the core opens (and then pools) several connections.
    post(&mut client, 0, 40);
    wait_until("the first payments to be stored", || {
        emulator_totals(&rig.emulator, None, None)[0].0 == 40
    });
    rig.emulator.close_connections(Which::Default);
    wait_until("the processor to close every connection", || {
        rig.emulator.open_connections(Which::Default) == 0
    });
    post(&mut client, 40, 80);
    wait_until("the next payments to be stored", || {
        let [default, fallback] = emulator_totals(&rig.emulator, None, None);
        default.0 + fallback.0 == 80
    });
    assert_eq!(emulator_totals(&rig.emulator, None, None)[1], (0, 0), "none went to the fallback");
    let text = client.get("/metrics").body;
    for outcome in ["unknown", "not_stored"] {
        let series =
            format!("payrelay_attempts_total{{processor=\"default\",outcome=\"{outcome}\"}}");
        assert_eq!(metric_total(&text, &series), 0.0, "{series}");
    }
    let open = metric_total(&text, "payrelay_breaker_open{processor=\"default\"}");
    assert_eq!(open, 0.0);
}

/// Goal: payments waiting for a slot at the only usable processor wait for a slot to be freed,
/// not on a timer: hundreds of waiting forwarding tasks cost almost no CPU. (Before, each woke
/// every 5 ms to look again: 160,000 wake-ups a second for 800 tasks.) Method: one core per
/// instance, a failing fallback (its breaker opens on the first refusals), a default at 1 s
/// with room for 8 requests per core, and 1,600 payments; then the instances' CPU time over two
/// seconds of waiting.
#[test]
fn payments_waiting_for_a_slot_cost_no_cpu() {
    let extra =
        [("WORKER_COUNT", "1"), ("PROCESSOR_INFLIGHT_MAX", "8"), ("DISPATCH_INFLIGHT_MAX", "1000")];
    let rig = Rig::start_after(&extra, |emulator| {
        emulator.set_delay(Which::Default, 1000);
        emulator.set_failing(Which::Fallback, true);
    });
    let mut clients: Vec<Client> = (0..2).map(|_| Client::connect(rig.api())).collect();
    for i in 0..1600 {
        let client = &mut clients[i as usize % 2];
        assert_eq!(client.post("/payments", &payment_json(&uuid(i), "19.90")).status, 202);
    }
    // The backlog settles into waiting once, on each instance that took payments, the fallback's
    // breaker is open and the default's slots are full: measured from then on, never after a
    // guessed pause.
    let settled = |name: &str| {
        let text = metrics_of(&rig, name);
        let series = |s: &str| metric_total(&text, s);
        let open = series("payrelay_breaker_open{processor=\"fallback\"}") == 1.0;
        let full = series("payrelay_inflight_requests{processor=\"default\"}") == 8.0;
        series("payrelay_forwarding") == 0.0 || (open && full)
    };
    wait_until("the backlog to settle into waiting", || settled("a") && settled("b"));
    let cpu = |name| read_usage(rig.pid(name)).expect("the instance runs").cpu_s;
    let (a0, b0, started) = (cpu("a"), cpu("b"), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu("a") - a0) + (cpu("b") - b0);
    let share = used / started.elapsed().as_secs_f64();
    assert!(share < 0.02, "the waiting instances used {:.1}% of a CPU", share * 100.0);
    let stored = emulator_totals(&rig.emulator, None, None)[0].0;
    assert!(stored < 1500, "still waiting when measured: {stored} stored");
}

/// Goal: an attempt that outlives its deadline gives up (the core's deadline sweep, no timer per
/// attempt), its payment stays with that processor, is looked up there, and is recorded once,
/// as the processor has it. Method: the default answering in 3 s, `PROCESSOR_TIMEOUT_MS` 1000,
/// the fallback failing; ten payments; then the books, and the metrics of timed-out attempts
/// and lookups.
#[test]
fn an_attempt_past_its_deadline_gives_up_and_is_looked_up() {
    let rig = Rig::start_after(&[("PROCESSOR_TIMEOUT_MS", "1000")], |emulator| {
        emulator.set_delay(Which::Default, 3000);
        emulator.set_failing(Which::Fallback, true);
    });
    let mut client = Client::connect(rig.api());
    for i in 0..10 {
        assert_eq!(client.post("/payments", &payment_json(&uuid(i), "19.90")).status, 202);
    }
    wait_until("every payment to be stored and in our books", || {
        let books = emulator_totals(&rig.emulator, None, None);
        let ours = client.get("/payments-summary").body;
        books[0].0 == 10 && common::parse_summary(&ours) == books
    });
    let sum = |series: &str| -> f64 {
        ["a", "b"].iter().map(|name| metric_total(&metrics_of(&rig, name), series)).sum()
    };
    let unknown = "payrelay_attempts_total{processor=\"default\",outcome=\"unknown\"}";
    assert!(sum(unknown) >= 10.0, "every first attempt timed out: {}", sum(unknown));
    let lookups: f64 = ["found", "absent"]
        .iter()
        .map(|result| {
            sum(&format!("payrelay_lookups_total{{processor=\"default\",result=\"{result}\"}}"))
        })
        .sum();
    assert!(lookups >= 10.0, "each was looked up: {lookups}");
}
