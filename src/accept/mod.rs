//! Accept: each core's listener loop and its connections (keep-alive, pipelining, split
//! reads; the registry that caps and sweeps them is `cores::connections`). Buffer in, buffer out: every complete request in the read buffer is answered into
//! one write buffer, written once.
//!
//! - [`routes`]: the route tables of the public API and the peer link, and their handlers.
//! - [`intake`]: `POST /payments`, from body to queue.

pub mod intake;
pub mod routes;

use std::{os::fd::AsRawFd, rc::Rc, time::Duration};

use monoio::{
    io::AsyncWriteRentExt,
    net::{TcpListener, TcpStream},
};

use crate::{
    cores::{
        Core,
        connections::{Connections, Registration, Surface},
    },
    http::{self, Body, Limits, Parsed, Request, Status},
    log,
    metrics::HttpRoute,
    timestamp,
};

/// A connection's read buffer while it holds no request larger than this: room for a contest
/// request (a ~150–250-byte head and a ~70-byte body), or a few pipelined. With io_uring a
/// pending read owns its buffer, so an idle keep-alive connection holds this much, no more. A
/// larger request grows the buffer by this step at a time (`http::read_more`), so it never
/// holds more than the request plus one step: at most `REQUEST_HEAD_BYTES_MAX +
/// REQUEST_BODY_BYTES_MAX` plus this, the bound the connection cap is derived from
/// (`config::CONNECTION_OVERHEAD_BYTES`). Once the large request is answered, the buffer
/// shrinks back to this size.
const READ_BUF_BYTES: usize = 1024;

/// A connection's write buffer, allocated by its first response (a connection that never
/// completes a request, such as a stalled client, has none) and kept for the next ones: a
/// `202` is ~130 bytes, a summary ~250. A larger response (`/metrics`) grows it for once; it
/// shrinks back to this after the write.
const WRITE_BUF_BYTES: usize = 512;

const _: () = assert!(
    READ_BUF_BYTES + WRITE_BUF_BYTES <= crate::config::CONNECTION_OVERHEAD_BYTES,
    "the overhead a connection is charged for must cover its buffers' own share"
);

/// Pause after a failed `accept` (e.g. out of file descriptors), so a persistent error
/// does not spin the core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Accepts connections forever, one task each.
pub async fn run(core: Rc<Core>, listener: TcpListener, surface: Surface) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // At the limit the stream is dropped here: the client sees the connection close.
                let Some(registration) =
                    Connections::register(core.connections(), stream.as_raw_fd(), surface)
                else {
                    continue;
                };
                // Responses are single writes; Nagle would hold the last segment back.
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(Rc::clone(&core), stream, registration, surface));
            }
            Err(e) => {
                log::warn!("accept: {e}");
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
    let config = core.config();
    let limits = Limits {
        head_bytes_max: config.request_head_bytes_max,
        body_bytes_max: config.request_body_bytes_max,
    };
    let mut rbuf: Vec<u8> = Vec::with_capacity(READ_BUF_BYTES);
    // Both allocated by the first response that needs them, then reused.
    let mut wbuf: Vec<u8> = Vec::new();
    let mut scratch = Body::with_capacity(0);
    let api = surface == Surface::Api;
    loop {
        let mut consumed = 0;
        let mut open = true;
        let mut answers = Answers::default();
        while open {
            match http::parse_request(&rbuf[consumed..], limits) {
                Parsed::Complete(request, len) => {
                    consumed += len;
                    let now_us = answers.add(HttpRoute::of(api, request.path));
                    wbuf.reserve(WRITE_BUF_BYTES);
                    open = respond(&core, surface, &request, &mut scratch, &mut wbuf, now_us).await;
                }
                Parsed::Partial => break,
                Parsed::Invalid(status, reason) => {
                    let now_us = answers.add(HttpRoute::Other);
                    write_closing_error(&core, status, reason, &mut scratch, &mut wbuf, now_us);
                    open = false;
                }
            }
        }
        rbuf.drain(..consumed);
        if consumed > 0 {
            registration.touch();
            // A large request (or burst) is answered: give its room back, keep the usual.
            if rbuf.capacity() > READ_BUF_BYTES && rbuf.len() <= READ_BUF_BYTES / 2 {
                rbuf.shrink_to(READ_BUF_BYTES);
            }
        }
        if !wbuf.is_empty() {
            let (written, buf) = stream.write_all(wbuf).await;
            wbuf = buf;
            wbuf.clear();
            if written.is_err() {
                return;
            }
            answers.written(&core);
            // After a large response (`/metrics`), back to the usual size.
            wbuf.shrink_to(WRITE_BUF_BYTES);
            scratch.bytes.shrink_to(WRITE_BUF_BYTES);
            registration.touch();
        }
        if !open {
            return;
        }
        // parse_request refuses a request beyond the limits and read_more grows by one step at
        // a time, so the buffer stays within the limits plus one step.
        let (read, buf) = http::read_more(&mut stream, rbuf, READ_BUF_BYTES).await;
        rbuf = buf;
        match read {
            Ok(0) | Err(_) if registration.expired() && !rbuf.is_empty() => {
                // The sweep shut the read side on a request that never completed: say so.
                let (status, reason) = (Status::RequestTimeout, "request not completed in time");
                let now_us = timestamp::now_us();
                write_closing_error(&core, status, reason, &mut scratch, &mut wbuf, now_us);
                let _ = stream.write_all(wbuf).await;
                return;
            }
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The answers one write carries: when the first of their requests was parsed (the one read
/// of the clock their `Date` headers use too) and how many there are per route.
#[derive(Default)]
struct Answers {
    parsed_us: Option<i64>,
    per_route: [u64; HttpRoute::ALL.len()],
}

impl Answers {
    /// Counts one answer on `route`; returns when the first was parsed (now, for the first).
    fn add(&mut self, route: HttpRoute) -> i64 {
        self.per_route[route.index()] += 1;
        *self.parsed_us.get_or_insert_with(timestamp::now_us)
    }

    /// The write is done: counts every answer in the request-duration histogram as taking from
    /// the first request parsed to now. One more read of the wall clock per write (the vDSO's,
    /// no system call) and a bucket bump per route; no allocation, no lock. A wall clock stepped
    /// back counts 0 µs; stepped forward, one long answer.
    fn written(&self, core: &Core) {
        let Some(parsed_us) = self.parsed_us else { return };
        let took_us = timestamp::now_us().saturating_sub(parsed_us).max(0) as u64;
        for (route, &n) in HttpRoute::ALL.iter().zip(&self.per_route) {
            if n > 0 {
                core.metrics().served(*route, took_us, n);
            }
        }
    }
}

/// Appends an error response after which the connection closes (its framing is lost, or it
/// took too long); `now_us` dates it.
fn write_closing_error(
    core: &Core,
    status: Status,
    reason: &str,
    scratch: &mut Body,
    out: &mut Vec<u8>,
    now_us: i64,
) {
    core.metrics().response(status);
    scratch.clear();
    http::write_error_json(&mut scratch.bytes, reason);
    http::write_response(out, status, scratch, false, &core.date().at(now_us));
}

/// Routes one request and appends its response, dated `now_us` (when it was parsed), to `out`.
/// Returns whether the connection stays open: as the client asked, except on the API while the
/// core drains (the client then reconnects, to an instance that is not shutting down).
async fn respond(
    core: &Rc<Core>,
    surface: Surface,
    req: &Request<'_>,
    scratch: &mut Body,
    out: &mut Vec<u8>,
    now_us: i64,
) -> bool {
    scratch.clear();
    let status = routes::route(core, surface, req, scratch).await;
    core.metrics().response(status);
    let keep_alive = req.keep_alive && !(surface == Surface::Api && core.is_draining());
    http::write_response(out, status, scratch, keep_alive, &core.date().at(now_us));
    keep_alive
}
