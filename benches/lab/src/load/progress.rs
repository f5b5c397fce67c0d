//! The progress line every few seconds: time, VUs, POST rate, queue lag, the pair's backlog as
//! its `/metrics` tell it, inconsistencies so far.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::Method;

use super::context::Ctx;
use crate::{client::Conn, emulator::RecordedProbe, sampler};

/// Prints time, VUs, POST rate, queue lag (accepted but not yet at a processor), the
/// backend's backlog as its metrics tell it, and inconsistencies so far.
pub async fn progress(
    ctx: Arc<Ctx>,
    recorded: Option<RecordedProbe>,
    metrics: Vec<SocketAddr>,
    every: Duration,
    started: tokio::time::Instant,
    duration: Duration,
) {
    let counters = &ctx.counters;
    let mut last_done = 0;
    let mut last_at = started;
    let mut scrapers: Vec<Conn> = metrics.into_iter().map(Conn::new).collect();
    loop {
        tokio::time::sleep(every).await;
        let now = tokio::time::Instant::now();
        let ok = counters.ok.load(Ordering::Relaxed);
        let failed = counters.failed_status.load(Ordering::Relaxed)
            + counters.failed_timeout.load(Ordering::Relaxed)
            + counters.failed_connect.load(Ordering::Relaxed)
            + counters.failed_io.load(Ordering::Relaxed);
        let done = ok + failed;
        let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        let lag = recorded.as_ref().map(|probe| ok as i64 - probe.recorded() as i64);
        let backlog = backlog(&mut scrapers).await;
        eprintln!(
            "t={:>6.1}s/{:.0}s vus={:>4} rate={:>6.1}/s ok={} failed={} queue_lag={}{backlog} inconsistencies={}",
            now.duration_since(started).as_secs_f64(),
            duration.as_secs_f64(),
            counters.vus.load(Ordering::Relaxed),
            rate,
            ok,
            failed,
            lag.map_or("?".to_owned(), |l| l.to_string()),
            counters.inconsistencies.load(Ordering::Relaxed),
        );
        last_done = done;
        last_at = now;
    }
}

/// ` queued=N holding=M` summed over the instances' metrics, or nothing without them (a
/// scrape that fails shows `?`).
pub async fn backlog(scrapers: &mut [Conn]) -> String {
    if scrapers.is_empty() {
        return String::new();
    }
    let families = ["payrelay_queue_len", "payrelay_holding"];
    let mut sums = [Some(0.0); 2];
    for scraper in scrapers.iter_mut() {
        let reply =
            scraper.request(Method::GET, "/metrics", &[], None, Duration::from_millis(500)).await;
        let text = reply.ok().map(|r| String::from_utf8_lossy(&r.body).into_owned());
        for (sum, family) in sums.iter_mut().zip(families) {
            let value = text.as_deref().and_then(|text| sampler::metric_summed(text, family));
            *sum = sum.zip(value).map(|(a, b)| a + b);
        }
    }
    let show = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0}"));
    format!(" queued={} holding={}", show(sums[0]), show(sums[1]))
}
