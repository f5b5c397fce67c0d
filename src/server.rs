//! Accept: each core's listener loop, its connections (keep-alive, pipelining, split reads)
//! and the routes. Buffer in, buffer out: every complete request in the read buffer is
//! answered into one write buffer, written once.

use std::{cell::RefCell, os::fd::AsRawFd, rc::Rc, time::Duration};

use monoio::{
    io::AsyncWriteRentExt,
    net::{TcpListener, TcpStream},
};

use crate::{
    connections::{Connections, Registration, Surface},
    dispatch,
    http::{self, Body, Limits, Method, Parsed, Request, Status},
    ledger::ShardSummary,
    metrics::{self, Intake},
    money, payment, peer,
    summary::{self, SummaryError},
    timestamp,
    worker::Core,
};

/// Initial capacity of a connection's read and write buffers: a contest request is ~250
/// bytes and a pipelined burst rarely exceeds a few; they grow to the request limits.
const CONN_BUF_BYTES: usize = 2048;

/// Pause after a failed `accept` (e.g. out of file descriptors), so a persistent error
/// does not spin the core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Accepts connections forever, one task each.
pub async fn run(core: Rc<Core>, listener: TcpListener, surface: Surface) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // At the limit the stream is dropped here: the client sees the connection close.
                let Some(registration) = Connections::register(&core, stream.as_raw_fd(), surface)
                else {
                    continue;
                };
                // Responses are single writes; Nagle would hold the last segment back.
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(Rc::clone(&core), stream, registration, surface));
            }
            Err(e) => {
                eprintln!("payrelay: core-{}: accept: {e}", core.id);
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Serves one connection until the client closes it, asks to, or breaks HTTP framing.
async fn serve(
    core: Rc<Core>,
    mut stream: TcpStream,
    registration: Registration,
    surface: Surface,
) {
    let config = core.config;
    let limits = Limits {
        head_bytes_max: config.request_head_bytes_max,
        body_bytes_max: config.request_body_bytes_max,
    };
    let mut rbuf: Vec<u8> = Vec::with_capacity(CONN_BUF_BYTES);
    let mut wbuf: Vec<u8> = Vec::with_capacity(CONN_BUF_BYTES);
    let mut scratch = Body::with_capacity(256);
    loop {
        let mut consumed = 0;
        let mut open = true;
        while open {
            match http::parse_request(&rbuf[consumed..], limits) {
                Parsed::Complete(request, len) => {
                    consumed += len;
                    open = respond(&core, surface, &request, &mut scratch, &mut wbuf).await;
                }
                Parsed::Partial => break,
                Parsed::Invalid(status, reason) => {
                    write_closing_error(&core, status, reason, &mut scratch, &mut wbuf);
                    open = false;
                }
            }
        }
        rbuf.drain(..consumed);
        if consumed > 0 {
            registration.touch();
        }
        if !wbuf.is_empty() {
            let (written, buf) = stream.write_all(wbuf).await;
            wbuf = buf;
            wbuf.clear();
            if written.is_err() {
                return;
            }
            registration.touch();
        }
        if !open {
            return;
        }
        // parse_request refuses a request beyond the limits, so the buffer stays bounded.
        let (read, buf) = http::read_more(&mut stream, rbuf, CONN_BUF_BYTES).await;
        rbuf = buf;
        match read {
            Ok(0) | Err(_) if registration.expired() && !rbuf.is_empty() => {
                // The sweep shut the read side on a request that never completed: say so.
                let (status, reason) = (Status::RequestTimeout, "request not completed in time");
                write_closing_error(&core, status, reason, &mut scratch, &mut wbuf);
                let _ = stream.write_all(wbuf).await;
                return;
            }
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Appends an error response after which the connection closes (its framing is lost, or it
/// took too long).
fn write_closing_error(
    core: &Core,
    status: Status,
    reason: &str,
    scratch: &mut Body,
    out: &mut Vec<u8>,
) {
    core.metrics.response(status);
    scratch.clear();
    http::write_error_json(&mut scratch.bytes, reason);
    http::write_response(out, status, scratch, false, &core.date.get());
}

/// Routes one request and appends its response to `out`. Returns whether the connection stays
/// open: as the client asked, except on the API while the core drains (the client then
/// reconnects, to an instance that is not shutting down).
async fn respond(
    core: &Rc<Core>,
    surface: Surface,
    req: &Request<'_>,
    scratch: &mut Body,
    out: &mut Vec<u8>,
) -> bool {
    scratch.clear();
    let status = match surface {
        Surface::Api => route_api(core, req, scratch).await,
        Surface::Peer => route_peer(core, req, scratch).await,
    };
    core.metrics.response(status);
    let keep_alive = req.keep_alive && !(surface == Surface::Api && core.draining.get());
    http::write_response(out, status, scratch, keep_alive, &core.date.get());
    keep_alive
}

/// The public API. Writes the JSON body (if any) into `body` and returns the status.
async fn route_api(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    match (req.path, req.method) {
        (b"/payments", Method::Post) => {
            let (intake, status) = accept_payment(core, req.body, body);
            core.metrics.intake(intake);
            status
        }
        (b"/payments-summary", Method::Get) => match summary::parse_range(req.query) {
            Ok(range) => match summary::deployment_summary(core, range).await {
                Ok(totals) => {
                    summary::write_json(&mut body.bytes, &totals);
                    Status::Ok
                }
                Err(e) => unavailable(body, &e),
            },
            Err(reason) => error(body, Status::BadRequest, reason),
        },
        (b"/purge-payments", Method::Post) => match summary::purge_deployment(core).await {
            Ok(()) => {
                body.bytes.extend_from_slice(b"{\"message\":\"payments purged\"}");
                Status::Ok
            }
            Err(e) => unavailable(body, &e),
        },
        (b"/metrics", Method::Get) => metrics(core, body).await,
        (b"/health", Method::Get) => {
            // The pid tells the two instances behind the shared port apart on one host; in
            // containers both are pid 1, and the boot id does.
            body.bytes.extend_from_slice(b"{\"status\":\"ok\",\"pid\":");
            money::write_u64(&mut body.bytes, u64::from(std::process::id()));
            body.bytes.extend_from_slice(b",\"boot\":");
            money::write_u64(&mut body.bytes, core.continuity.boot.id);
            body.bytes.push(b'}');
            Status::Ok
        }
        (
            b"/payments" | b"/payments-summary" | b"/purge-payments" | b"/metrics" | b"/health",
            _,
        ) => error(body, Status::MethodNotAllowed, "method not allowed"),
        _ => error(body, Status::NotFound, "not found"),
    }
}

/// The private link: this instance's own totals and purge, for the peer.
async fn route_peer(core: &Rc<Core>, req: &Request<'_>, body: &mut Body) -> Status {
    match (req.path, req.method) {
        (peer::SUMMARY_PATH, Method::Get) => {
            let (Some(range), Some(caller)) =
                (peer::wire::parse_range_query(req.query), peer::wire::parse_boot_query(req.query))
            else {
                return error(
                    body,
                    Status::BadRequest,
                    "from_ms, to_ms, boot, started_ms required",
                );
            };
            match summary::instance_summary(core, range).await {
                Ok(totals) => {
                    core.continuity.saw_peer(caller);
                    peer::wire::write_answer_json(&mut body.bytes, &core.continuity.answer(totals));
                    Status::Ok
                }
                Err(e) => unavailable(body, &e),
            }
        }
        (peer::HEALTH_PATH, Method::Post) => {
            let (Some(report), Some(caller)) = (
                peer::wire::parse_report_query(req.query),
                peer::wire::parse_boot_query(req.query),
            ) else {
                let reason = "processor, failing, delay_ms, boot and started_ms are required";
                return error(body, Status::BadRequest, reason);
            };
            core.continuity.saw_peer(caller);
            if let Some(news) = &core.peer_news {
                news.heard(report.processor, std::time::Instant::now());
            }
            core.broadcast_health(report);
            body.bytes.extend_from_slice(b"{}");
            Status::Ok
        }
        (peer::PURGE_PATH, Method::Post) => {
            let Some(caller) = peer::wire::parse_boot_query(req.query) else {
                return error(body, Status::BadRequest, "boot and started_ms are required");
            };
            match summary::purge_instance(core).await {
                Ok(()) => {
                    core.continuity.purged(Some(caller));
                    let answer = core.continuity.answer(ShardSummary::default());
                    peer::wire::write_answer_json(&mut body.bytes, &answer);
                    Status::Ok
                }
                Err(e) => unavailable(body, &e),
            }
        }
        (b"/metrics", Method::Get) => metrics(core, body).await,
        (peer::SUMMARY_PATH | peer::PURGE_PATH | peer::HEALTH_PATH | b"/metrics", _) => {
            error(body, Status::MethodNotAllowed, "method not allowed")
        }
        _ => error(body, Status::NotFound, "not found"),
    }
}

/// `POST /payments`: decode, refuse a correlationId this core already accepted, queue.
fn accept_payment(core: &Rc<Core>, json: &[u8], body: &mut Body) -> (Intake, Status) {
    let payment = match payment::decode(json) {
        Ok(payment) => payment,
        Err(e) if e.is_syntax() => {
            return (Intake::Malformed, error(body, Status::BadRequest, e.reason()));
        }
        Err(e) => return (Intake::Invalid, error(body, Status::UnprocessableEntity, e.reason())),
    };
    if core.draining.get() {
        let reason = "shutting down: payment not accepted; retry on a new connection";
        return (Intake::Draining, error(body, Status::ServiceUnavailable, reason));
    }
    let id = payment.id_key();
    if core.seen.borrow().contains(id) {
        let status = error(body, Status::Conflict, "correlationId already accepted");
        return (Intake::Duplicate, status);
    }
    match dispatch::submit(core, payment) {
        Ok(()) => {
            // Remembered only once queued: a payment refused with 503 may be sent again.
            core.seen.borrow_mut().insert(id);
            (Intake::Accepted, Status::Accepted)
        }
        Err(_) => {
            let status =
                error(body, Status::ServiceUnavailable, "payment queue is full; retry later");
            (Intake::QueueFull, status)
        }
    }
}

/// `GET /metrics`: this instance's cores, merged at scrape time (Prometheus text format).
async fn metrics(core: &Rc<Core>, body: &mut Body) -> Status {
    match metrics::instance_snapshots(core).await {
        Ok(mut snapshots) => {
            let (pid, boot) = (std::process::id(), core.continuity.boot.id);
            metrics::render(&mut body.bytes, &mut snapshots, pid, boot);
            body.content_type = http::PROMETHEUS_TEXT;
            Status::Ok
        }
        Err(e) => unavailable(body, &e),
    }
}

fn error(body: &mut Body, status: Status, reason: &str) -> Status {
    http::write_error_json(&mut body.bytes, reason);
    status
}

/// 503 naming what is missing. The message is built from our own values (addresses,
/// error kinds), so it holds nothing that needs JSON escaping.
fn unavailable(body: &mut Body, e: &SummaryError) -> Status {
    let reason = e.to_string().replace(['"', '\\'], "'");
    http::write_error_json(&mut body.bytes, &reason);
    Status::ServiceUnavailable
}

/// Per-core cache of the `Date` header value, reformatted at most once a second.
#[derive(Default)]
pub struct DateCache {
    /// (Unix second it was formatted for, IMF-fixdate text).
    cached: RefCell<(i64, [u8; timestamp::HTTP_DATE_LEN])>,
}

impl DateCache {
    /// The current `Date` value.
    pub fn get(&self) -> [u8; timestamp::HTTP_DATE_LEN] {
        let now_s = timestamp::now_ms().div_euclid(1000);
        let mut cached = self.cached.borrow_mut();
        if cached.0 != now_s || cached.1[0] == 0 {
            *cached = (now_s, timestamp::format_http_date(now_s));
        }
        cached.1
    }
}
