//! The health poller: core 0 of each instance polls the processors it is responsible for (or
//! whose news stopped arriving from the peer) once per interval, and shares each report with
//! its own cores and the peer. Who polls what, and why: `health`.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use crate::{cores::Core, http::Endpoint, ledger::Processor, peer, upstream::health};

/// Core 0's health poller: polls the processors this instance is responsible for (or whose
/// news stopped arriving from the peer) once per interval, and shares each report.
pub async fn poll_health(core: Rc<Core>, endpoints: [Endpoint; 2]) {
    let config = core.config();
    let continuity = core.continuity();
    let interval = Duration::from_millis(config.health_poll_interval_ms);
    let takeover_after = interval * health::TAKEOVER_AFTER_POLLS;
    // `Core::new` gives core 0 its peer news, and only core 0 runs this task.
    let peer_news = core.peer_news().expect("core 0 holds the peer's health news");
    loop {
        let has_peer = config.peer_addr.is_some();
        let ours = health::polled_here(has_peer, continuity.boot.id, continuity.peer_boot_id());
        for processor in Processor::ALL {
            let silent = peer_news.silent_for(processor, Instant::now()) >= takeover_after;
            if !ours[processor.index()] && !silent {
                continue;
            }
            let endpoint = &endpoints[processor.index()];
            let Some(report) = health::poll(processor, endpoint.addr, &endpoint.authority).await
            else {
                continue;
            };
            core.broadcast_health(report);
            if let Some(peer) = config.peer_addr {
                // A peer that is down learns nothing; it polls for itself once it is back.
                let sent = peer::send_health(peer, report, continuity.boot, config.peer_timeout());
                let _ = sent.await;
            }
        }
        monoio::time::sleep(interval).await;
    }
}
