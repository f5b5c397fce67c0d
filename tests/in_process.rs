//! Goal: the server runs inside a test process, as mini-redis's tests run theirs: started by
//! `boot::start_with` on listeners the test bound (ephemeral ports), it takes payments, answers
//! their summary exactly as the processors' books have them, and drains on request like on
//! SIGTERM. The real-process tests (`tests/server.rs` and the rest) stay the reference; this one
//! shows that the library alone is a server, and costs no process start.

mod common;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use common::{Client, emulator_totals, parse_summary, uuid, wait_until};
use payrelay::{
    boot::{self, DrainReport, Listen},
    config::Config,
};
use rinha_lab::emulator::{self, EmulatorConfig, Which};

#[test]
fn a_server_started_in_process_settles_reports_and_drains() {
    let emulator = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("emulator");
    let urls = [Which::Default, Which::Fallback].map(|w| format!("http://{}", emulator.addr(w)));
    let vars = [
        ("PROCESSOR_DEFAULT_URL", urls[0].as_str()),
        ("PROCESSOR_FALLBACK_URL", urls[1].as_str()),
        ("WORKER_COUNT", "2"),
        ("WORKER_PIN", "0"),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    })
    .expect("the configuration parses");
    // Lives for the test process, as `main`'s does for the server's.
    let config: &'static Config = Box::leak(Box::new(config));
    let api = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    let addr = api.local_addr().expect("its address");
    let running = boot::start_with(config, Listen::Given { api, peer: None }).expect("starts");
    assert_eq!(running.cores(), 2);

    let mut client = Client::connect(addr);
    for i in 0..20 {
        assert_eq!(client.post_payment(&uuid(i)).status, 202);
    }
    wait_until("the processors to hold every payment", || {
        emulator_totals(&emulator, None, None)[0].0 == 20
    });
    // The processor stores a payment a moment before its answer reaches our books.
    wait_until("our summary to equal the processors' books", || {
        let summary = client.get("/payments-summary");
        assert_eq!(summary.status, 200, "{}", summary.body);
        parse_summary(&summary.body) == emulator_totals(&emulator, None, None)
    });

    let report = running.drain(Instant::now() + Duration::from_secs(5));
    assert_eq!(report, DrainReport::default(), "nothing held, every core answered");
    let refused = client.post_payment(&uuid(20));
    assert_eq!(refused.status, 503, "a drained server accepts nothing: {}", refused.body);
}
