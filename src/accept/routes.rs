//! Routes: one table per surface (the public API on port 9999, the private peer link) maps a
//! path and a method to an endpoint; a known path with another method is a 405, an unknown
//! path a 404, both derived from the table. Adding a route is one row and its handler.

use std::rc::Rc;

use super::intake;
use crate::{
    cores::{Core, CoreMsg, connections::Surface},
    http::{self, Body, Method, Request, Status},
    ledger::ShardSummary,
    metrics, money,
    peer::wire,
    summary::{self, SummaryError},
};

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `POST /payments`.
    Pay,
    /// `GET /payments-summary`: the deployment's totals.
    Summary,
    /// `POST /purge-payments`: the deployment's shards emptied.
    Purge,
    /// `GET /metrics`: this instance's counters.
    Metrics,
    /// `GET /health`: which instance answers.
    Health,
    /// Peer link: this instance's totals.
    PeerSummary,
    /// Peer link: what the peer's health poll saw.
    PeerHealth,
    /// Peer link: this instance's shards emptied.
    PeerPurge,
}

/// One row of a route table.
struct Route {
    path: &'static [u8],
    method: Method,
    endpoint: Endpoint,
}

const fn row(path: &'static [u8], method: Method, endpoint: Endpoint) -> Route {
    Route { path, method, endpoint }
}

/// The public API.
const API: &[Route] = &[
    row(b"/payments", Method::Post, Endpoint::Pay),
    row(b"/payments-summary", Method::Get, Endpoint::Summary),
    row(b"/purge-payments", Method::Post, Endpoint::Purge),
    row(b"/metrics", Method::Get, Endpoint::Metrics),
    row(b"/health", Method::Get, Endpoint::Health),
];

/// The private link: this instance's own totals, purge and health news for the peer, and its
/// metrics for a scraper that wants this instance and no other.
const PEER: &[Route] = &[
    row(wire::SUMMARY_PATH, Method::Get, Endpoint::PeerSummary),
    row(wire::HEALTH_PATH, Method::Post, Endpoint::PeerHealth),
    row(wire::PURGE_PATH, Method::Post, Endpoint::PeerPurge),
    row(b"/metrics", Method::Get, Endpoint::Metrics),
];

/// Routes one request on `surface`: writes the JSON body (if any) into `body` and returns the
/// status.
pub async fn route(
    core: &Rc<Core>,
    surface: Surface,
    req: &Request<'_>,
    body: &mut Body,
) -> Status {
    let table = match surface {
        Surface::Api => API,
        Surface::Peer => PEER,
    };
    let mut path_known = false;
    for route in table.iter().filter(|r| r.path == req.path) {
        path_known = true;
        if route.method == req.method {
            return handle(route.endpoint, core, req, body).await;
        }
    }
    if path_known {
        body.error(Status::MethodNotAllowed, "method not allowed")
    } else {
        body.error(Status::NotFound, "not found")
    }
}

/// Serves one endpoint. The rare endpoints (summary, purge, metrics, the peer link's calls) are
/// boxed: their futures (a fan-out over the cores and a call to the peer) are the largest of
/// all, and unboxed they would size every connection's task, idle ones included, at their
/// worst (3 KB a connection before; see `accept::serve`). One allocation per summary or scrape
/// costs nothing beside the calls it makes; `POST /payments` and `/health` stay unboxed.
async fn handle(endpoint: Endpoint, core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    match endpoint {
        Endpoint::Pay => {
            let (intake, status) = intake::accept_payment(core, req.body, body).await;
            core.metrics().intake(intake);
            status
        }
        Endpoint::Summary => Box::pin(deployment_summary(core, req, body)).await,
        Endpoint::Purge => match Box::pin(summary::purge_deployment(core)).await {
            Ok(()) => {
                body.bytes.extend_from_slice(b"{\"message\":\"payments purged\"}");
                Status::Ok
            }
            Err(e) => unavailable(body, &e),
        },
        Endpoint::Metrics => Box::pin(metrics(core, body)).await,
        Endpoint::Health => {
            // The pid tells the two instances behind the shared port apart on one host; in
            // containers both are pid 1, and the boot id does.
            body.bytes.extend_from_slice(b"{\"status\":\"ok\",\"pid\":");
            money::write_u64(&mut body.bytes, u64::from(std::process::id()));
            body.bytes.extend_from_slice(b",\"boot\":");
            money::write_u64(&mut body.bytes, core.continuity().boot.id);
            body.bytes.push(b'}');
            Status::Ok
        }
        Endpoint::PeerSummary => Box::pin(peer_summary(core, req, body)).await,
        Endpoint::PeerHealth => peer_health(core, req, body),
        Endpoint::PeerPurge => Box::pin(peer_purge(core, req, body)).await,
    }
}

async fn deployment_summary(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    let range = match summary::parse_range(req.query) {
        Ok(range) => range,
        Err(reason) => return body.error(Status::BadRequest, reason),
    };
    match summary::deployment_summary(core, range).await {
        Ok(totals) => {
            summary::write_json(&mut body.bytes, &totals);
            Status::Ok
        }
        Err(e) => unavailable(body, &e),
    }
}

async fn peer_summary(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    let (Some(range), Some(caller)) =
        (wire::parse_range_query(req.query), wire::parse_boot_query(req.query))
    else {
        return body.error(Status::BadRequest, "from_ms, to_ms, boot, started_ms required");
    };
    match summary::instance_summary(core, range).await {
        Ok(totals) => {
            let continuity = core.continuity();
            continuity.saw_peer(caller);
            wire::write_answer_json(&mut body.bytes, &continuity.answer(totals));
            Status::Ok
        }
        Err(e) => unavailable(body, &e),
    }
}

fn peer_health(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    let (Some(report), Some(caller)) =
        (wire::parse_report_query(req.query), wire::parse_boot_query(req.query))
    else {
        let reason = "processor, failing, delay_ms, boot and started_ms are required";
        return body.error(Status::BadRequest, reason);
    };
    core.continuity().saw_peer(caller);
    if let Some(news) = core.peer_news() {
        news.heard(report.processor, std::time::Instant::now());
    }
    core.broadcast_health(report);
    body.bytes.extend_from_slice(b"{}");
    Status::Ok
}

async fn peer_purge(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    let Some(caller) = wire::parse_boot_query(req.query) else {
        return body.error(Status::BadRequest, "boot and started_ms are required");
    };
    match summary::purge_instance(core).await {
        Ok(()) => {
            let continuity = core.continuity();
            continuity.purged(Some(caller));
            wire::write_answer_json(&mut body.bytes, &continuity.answer(ShardSummary::default()));
            Status::Ok
        }
        Err(e) => unavailable(body, &e),
    }
}

/// `GET /metrics`: this instance's cores, merged at scrape time (Prometheus text format).
async fn metrics(core: &Rc<Core>, body: &mut Body) -> Status {
    let mut snapshots = Vec::with_capacity(core.cores());
    let mut mine = None;
    let ask = |reply| CoreMsg::Metrics { reply };
    let fanned =
        core.fan_out(ask, || mine = Some(core.snapshot()), |theirs| snapshots.push(theirs)).await;
    if let Err(gone) = fanned {
        return unavailable(body, &SummaryError::from(gone));
    }
    snapshots.extend(mine);
    let (pid, boot) = (std::process::id(), core.continuity().boot.id);
    // A few small reads of /proc, on the core that serves the scrape, once per scrape.
    let process = metrics::ProcessStats::read();
    metrics::render(&mut body.bytes, &mut snapshots, metrics::Instance { pid, boot, process });
    body.content_type = http::PROMETHEUS_TEXT;
    Status::Ok
}

/// 503 naming what is missing. The message is built from our own values (addresses, error
/// kinds); quotes and backslashes, which none should hold, are replaced so it stays JSON.
fn unavailable(body: &mut Body, e: &SummaryError) -> Status {
    let reason = e.to_string().replace(['"', '\\'], "'");
    body.error(Status::ServiceUnavailable, &reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every path appears in one table at most once per method, so the first match is the
    /// only one. Method: compare each row with the others.
    #[test]
    fn tables_have_no_duplicate_routes() {
        for table in [API, PEER] {
            for (i, a) in table.iter().enumerate() {
                for b in &table[i + 1..] {
                    assert!(a.path != b.path || a.method != b.method, "{:?}", a.endpoint);
                }
            }
        }
    }
}
