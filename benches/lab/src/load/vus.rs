//! The k6-like load generator: virtual users started on a linear ramp, each looping one
//! `POST /payments` and a 1 s sleep on its own keep-alive connection.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use hyper::Method;

use super::context::{Ctx, VuRecord};
use crate::client::{Conn, Failure};

/// Pause between VU iterations, as the official script's `sleep(1)`.
const VU_SLEEP: Duration = Duration::from_secs(1);
/// Samples reserved per VU up front: one per second of a long test, so pushes rarely
/// reallocate while measuring.
const SAMPLES_PER_VU_HINT: usize = 300;
/// Success statuses for a payment, exactly the official list.
pub const POST_OK_STATUSES: [u16; 4] = [200, 201, 202, 204];

/// Starts the virtual users on the ramp and returns their tasks. VU k (0-based) starts at
/// k/(vus_max-1) of the test, so the count climbs linearly from 1 to vus_max like k6's
/// ramping-vus executor.
pub async fn ramp(
    ctx: &Arc<Ctx>,
    vus_max: u32,
    started: tokio::time::Instant,
    duration: Duration,
) -> Vec<tokio::task::JoinHandle<VuRecord>> {
    let vus_count = vus_max as usize;
    let vus_max = u64::from(vus_max);
    let mut vus = Vec::with_capacity(vus_count);
    for k in 0..vus_max {
        let offset = if vus_max > 1 {
            duration.mul_f64(k as f64 / (vus_max - 1) as f64)
        } else {
            Duration::ZERO
        };
        let start_at = started + offset;
        if start_at >= ctx.end {
            break;
        }
        tokio::time::sleep_until(start_at).await;
        ctx.counters.vus.fetch_add(1, Ordering::Relaxed);
        vus.push(tokio::spawn(virtual_user(ctx.clone())));
    }
    vus
}

/// One virtual user: POST, sleep 1 s, until the test ends. Returns its expected-status
/// latencies, and the correlationIds it had accepted when the run records them.
pub async fn virtual_user(ctx: Arc<Ctx>) -> VuRecord {
    let mut conn = Conn::new(ctx.target);
    let mut record = VuRecord {
        latencies_us: Vec::with_capacity(SAMPLES_PER_VU_HINT),
        latency_seconds: Vec::with_capacity(SAMPLES_PER_VU_HINT),
        ..VuRecord::default()
    };
    let counters = &ctx.counters;
    while tokio::time::Instant::now() < ctx.end {
        let correlation_id = uuid::Uuid::new_v4();
        let body =
            format!(r#"{{"correlationId":"{correlation_id}","amount":{}}}"#, ctx.amount_json);
        let reply = conn
            .request(Method::POST, "/payments", &[], Some(Bytes::from(body)), ctx.timeout)
            .await;
        let second = ctx.second_now();
        let ok = reply.as_ref().is_ok_and(|reply| POST_OK_STATUSES.contains(&reply.status));
        record.post_seconds.count(second as usize, ok);
        match reply {
            Ok(reply) => {
                if ok {
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                    if ctx.record_accepted {
                        record.accepted_ids.push(correlation_id);
                    }
                } else {
                    counters.failed_status.fetch_add(1, Ordering::Relaxed);
                }
                if reply.expected() {
                    record.latencies_us.push(reply.latency_us);
                    record.latency_seconds.push(second);
                }
            }
            Err(Failure::Timeout) => {
                counters.failed_timeout.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Connect) => {
                counters.failed_connect.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Io) => {
                counters.failed_io.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wake = tokio::time::Instant::now() + VU_SLEEP;
        if wake >= ctx.end {
            break;
        }
        tokio::time::sleep_until(wake).await;
    }
    record
}
