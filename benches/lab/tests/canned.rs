//! The canned server's forwarding mode: it answers at once and the processor stores the payment.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use rinha_lab::{
    canned,
    client::Conn,
    emulator::{self, EmulatorConfig, Which},
};

/// How long the processor may take to store a forwarded payment (it has no delay here).
const STORED_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn a_forwarding_canned_server_answers_202_and_the_processor_stores_the_payment() {
    let processors = emulator::start(EmulatorConfig::new(0, 0, 0.05, 0.15)).expect("processors");
    let server =
        canned::start_forwarding(Ipv4Addr::LOCALHOST, 0, Some(processors.addr(Which::Default)))
            .expect("canned server listens");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let body = r#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9}"#;
    let reply = runtime
        .block_on(Conn::new(server.addr()).request(
            Method::POST,
            "/payments",
            &[],
            Some(Bytes::from_static(body.as_bytes())),
            Duration::from_secs(3),
        ))
        .expect("an answer");
    assert_eq!(reply.status, 202);
    let probe = processors.recorded_probe();
    let deadline = Instant::now() + STORED_WITHIN;
    while probe.recorded_each() != [1, 0] {
        assert!(Instant::now() < deadline, "stored: {:?}", probe.recorded_each());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(processors.holds(Which::Default, "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"));
}
