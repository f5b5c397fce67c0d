//! The load's side of the processors' admin API, as the official script uses it: setup (a new
//! token, both books purged, the backend purged), the scenario's fault stages, teardown's
//! totals.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::{
    context::{ADMIN_TIMEOUT, Ctx},
    plan::{LoadPlan, Totals},
};
use crate::{client::Conn, emulator::TOKEN_DEFAULT, scenario::ProcessorState, time};

/// The teardown summary starts this long before the test did (the final: 360 s for 300 s).
const TEARDOWN_MARGIN_MS: i64 = 60_000;

/// The admin side of one run: a keep-alive connection to each processor and the token that
/// setup sets on both.
pub struct AdminConns {
    /// The default processor's connection.
    pub default: Conn,
    /// The fallback processor's.
    pub fallback: Conn,
    /// The token setup sets on both.
    pub token: String,
}

/// Setup, in the final's order: change the admin token (so the backend cannot use it), purge
/// both processors with it, then purge the backend (errors ignored). Returns the latencies of
/// the calls that succeeded.
pub async fn setup(
    plan: &LoadPlan,
    admin: &mut AdminConns,
    timeout: Duration,
) -> Result<Vec<u64>, String> {
    let mut setup_latencies = Vec::new();
    let token_body = Bytes::from(serde_json::json!({ "token": admin.token }).to_string());
    for (name, conn) in [("default", &mut admin.default), ("fallback", &mut admin.fallback)] {
        let reply = conn
            .request(
                Method::PUT,
                "/admin/configurations/token",
                &[("x-rinha-token", TOKEN_DEFAULT)],
                Some(token_body.clone()),
                ADMIN_TIMEOUT,
            )
            .await;
        match reply {
            Ok(reply) if reply.status == 204 => setup_latencies.push(reply.latency_us),
            other => {
                return Err(format!(
                    "setup: changing the {name} processor's token failed: {other:?}"
                ));
            }
        }
    }
    for (name, conn) in [("default", &mut admin.default), ("fallback", &mut admin.fallback)] {
        let reply = conn
            .request(
                Method::POST,
                "/admin/purge-payments",
                &[("x-rinha-token", admin.token.as_str())],
                None,
                ADMIN_TIMEOUT,
            )
            .await;
        match reply {
            Ok(reply) if reply.status == 200 => setup_latencies.push(reply.latency_us),
            other => {
                return Err(format!("setup: purging the {name} processor failed: {other:?}"));
            }
        }
    }
    let mut target_conn = Conn::new(plan.target);
    if let Ok(reply) =
        target_conn.request(Method::POST, "/purge-payments", &[], None, timeout).await
        && reply.expected()
    {
        setup_latencies.push(reply.latency_us);
    }
    Ok(setup_latencies)
}

/// Teardown: the processors' own totals (default, fallback), over the final's window: from the
/// test's length plus a minute ago (360 s for its 300 s) until now.
pub async fn teardown(
    ctx: &Ctx,
    admin: &mut AdminConns,
    duration_s: f64,
) -> Result<(Totals, Totals), String> {
    books(Some(ctx), admin, duration_s).await
}

/// Both processors' payments over teardown's window, for the wait for still books before an
/// audited teardown (`checks::wait_books_still`); `None` when either cannot be read. Not
/// counted as admin calls.
pub async fn books_count(admin: &mut AdminConns, duration_s: f64) -> Option<u64> {
    let (default, fallback) = books(None, admin, duration_s).await.ok()?;
    Some(default.count + fallback.count)
}

/// After an audited teardown (`--audit-ids`): the accepted correlationIds that neither
/// processor has, asked one by one (`GET /payments/{id}`, as payrelay's lookups do); an id
/// whose lookup fails at either processor counts as missing, and the error is kept with it.
pub async fn missing_at_both(
    admin: &mut AdminConns,
    ids: &[uuid::Uuid],
) -> Vec<(uuid::Uuid, String)> {
    let mut missing = Vec::new();
    'ids: for id in ids {
        let path = format!("/payments/{id}");
        let mut why = Vec::new();
        for (name, conn) in [("default", &mut admin.default), ("fallback", &mut admin.fallback)] {
            match conn.request(Method::GET, &path, &[], None, ADMIN_TIMEOUT).await {
                Ok(reply) if reply.status == 200 => continue 'ids,
                Ok(reply) => why.push(format!("{name} {}", reply.status)),
                Err(e) => why.push(format!("{name} {e:?}")),
            }
        }
        missing.push((*id, why.join(", ")));
    }
    missing
}

/// Both processors' totals over teardown's window, each reply counted as an admin call when
/// `ctx` is given.
async fn books(
    ctx: Option<&Ctx>,
    admin: &mut AdminConns,
    duration_s: f64,
) -> Result<(Totals, Totals), String> {
    let to_ms = time::now_ms();
    let from_ms = to_ms - (duration_s * 1000.0).round() as i64 - TEARDOWN_MARGIN_MS;
    let teardown_path = format!(
        "/admin/payments-summary?from={}&to={}",
        time::format_iso_ms(from_ms),
        time::format_iso_ms(to_ms)
    );
    let mut totals = [Totals::default(); 2];
    let token = admin.token.as_str();
    for (which, conn) in [(0, &mut admin.default), (1, &mut admin.fallback)] {
        let reply = conn
            .request(Method::GET, &teardown_path, &[("x-rinha-token", token)], None, ADMIN_TIMEOUT)
            .await;
        if let Some(ctx) = ctx {
            ctx.record_admin(&reply);
        }
        totals[which] = match reply {
            Ok(reply) if reply.status == 200 => processor_totals(&reply.body).ok_or_else(|| {
                format!("teardown: unreadable processor summary {:?}", reply.body)
            })?,
            other => return Err(format!("teardown: processor summary failed: {other:?}")),
        };
    }
    Ok((totals[0], totals[1]))
}

/// Applies each stage at its time: delay then failure, default then fallback, like the
/// official `define_stage`.
pub async fn stages(ctx: Arc<Ctx>, plan: LoadPlan, token: String, started: tokio::time::Instant) {
    let mut default_conn = Conn::new(plan.default_addr);
    let mut fallback_conn = Conn::new(plan.fallback_addr);
    let headers = [("x-rinha-token", token.as_str())];
    for stage in &plan.scenario.stages {
        tokio::time::sleep_until(started + Duration::from_secs_f64(stage.at_s)).await;
        let delay_body =
            |state: ProcessorState| Bytes::from(format!(r#"{{"delay":{}}}"#, state.delay_ms));
        let failure_body =
            |state: ProcessorState| Bytes::from(format!(r#"{{"failure":{}}}"#, state.failing));
        let calls = [
            (&mut default_conn, "/admin/configurations/delay", delay_body(stage.default)),
            (&mut fallback_conn, "/admin/configurations/delay", delay_body(stage.fallback)),
        ];
        for (conn, path, body) in calls {
            let reply = conn.request(Method::PUT, path, &headers, Some(body), ADMIN_TIMEOUT).await;
            ctx.record_admin(&reply);
        }
        let calls = [
            (&mut default_conn, "/admin/configurations/failure", failure_body(stage.default)),
            (&mut fallback_conn, "/admin/configurations/failure", failure_body(stage.fallback)),
        ];
        for (conn, path, body) in calls {
            let reply = conn.request(Method::PUT, path, &headers, Some(body), ADMIN_TIMEOUT).await;
            ctx.record_admin(&reply);
        }
        if plan.progress_every.is_some() {
            eprintln!(
                "  stage at {}s: default {}ms{}, fallback {}ms{}",
                stage.at_s,
                stage.default.delay_ms,
                if stage.default.failing { " failing" } else { "" },
                stage.fallback.delay_ms,
                if stage.fallback.failing { " failing" } else { "" },
            );
        }
    }
}

/// A processor's admin summary: its count and amount, or `None` if unreadable.
pub fn processor_totals(body: &[u8]) -> Option<Totals> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let count = value.get("totalRequests")?.as_u64()?;
    let cents = crate::money::cents_from_f64(value.get("totalAmount")?.as_f64()?)?;
    Some(Totals { count, cents })
}
