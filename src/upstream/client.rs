//! Processor client: one core's keep-alive connections to one payment processor, and one
//! forwarding attempt over them. What an attempt's result *means* is decided in
//! [`super::outcome`].

use std::{
    cell::{Cell, RefCell},
    future::Future,
    io,
};

use monoio::{io::AsyncWriteRentExt, net::TcpStream};

use crate::{
    http::{self, Endpoint, ReadError},
    money,
    payment::Payment,
    timestamp,
};

/// Capacity of a fresh request/response buffer: a forward is ~160 bytes out and a
/// processor's answer ~200 bytes back, so one read almost always takes the whole response.
const IO_BUF_BYTES: usize = 1024;

/// Largest response we read from a processor before calling it a protocol error. Its real
/// answers are under 300 bytes; anything near this is not the service we expect.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// How one attempt failed before a status was read. `Copy` and allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptError {
    /// No connection: the request never left.
    Connect(io::ErrorKind),
    /// Writing failed: the processor never received a whole request.
    Write(io::ErrorKind),
    /// The deadline passed; `sent` says whether the whole request had been written.
    Timeout {
        /// Whether the request was fully written before the deadline.
        sent: bool,
    },
    /// The connection broke after the request was written, before a whole response.
    Lost(io::ErrorKind),
    /// The bytes that came back are not an HTTP response we can frame.
    Protocol,
}

/// The result of one attempt: a status code, or how it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The processor's status, or how the attempt failed.
    pub result: Result<u16, AttemptError>,
    /// A pooled connection died under this attempt after the whole request was written, and
    /// the request went again on a fresh one. The processor almost surely never read it (it had
    /// closed the idle connection), but it cannot be proven: the payment may be stored there.
    pub maybe_stored_before: bool,
}

/// What one call asks of the processor.
#[derive(Clone, Copy)]
enum Call<'a> {
    /// `POST /payments`: store `payment` with this `requestedAt`.
    Pay { payment: &'a Payment, requested_at_ms: i64 },
    /// `GET /payments/{id}`: is `payment` stored?
    LookUp { payment: &'a Payment },
}

/// Where a connection came from: a stale pooled one is retried once on a fresh one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Pooled,
    Fresh,
}

/// How one try on one connection ended, before the retry rule applies.
enum Try {
    Answered(u16),
    /// The pooled connection was dead: nothing came back. `sent`: the whole request was
    /// written before that showed.
    Stale {
        sent: bool,
    },
    Failed(AttemptError),
}

/// One core's client for one processor. Owned by its core; connections never cross cores.
#[derive(Debug)]
pub struct ProcessorClient {
    /// Where it listens.
    endpoint: Endpoint,
    /// Idle keep-alive connections, most recently used last. A connection is here only while
    /// no request is on it; in-flight ones are owned by their attempt.
    idle: RefCell<Vec<TcpStream>>,
    /// Bound on `idle`: the core never has more connections than forwards in flight.
    idle_max: usize,
    /// Spare I/O buffers, so steady-state forwarding allocates nothing.
    spare_bufs: RefCell<Vec<Vec<u8>>>,
    /// Connections opened to the processor since start (`payrelay_processor_connects_total`).
    connects: Cell<u64>,
}

impl ProcessorClient {
    /// A client with no connection yet; they open on demand.
    pub fn new(endpoint: Endpoint, idle_max: usize) -> Self {
        ProcessorClient {
            endpoint,
            idle: RefCell::new(Vec::new()),
            idle_max,
            spare_bufs: RefCell::new(Vec::new()),
            connects: Cell::new(0),
        }
    }

    /// Sends `payment` with `requestedAt = requested_at_ms` and reads the status, until
    /// `deadline` resolves (the attempt's expiry in `InFlight`, which one sweep per core drives
    /// instead of a timer per attempt). A pooled connection found dead (the processor closed it
    /// while idle: `EPIPE` on write, or end-of-file or reset before any answer) costs one more
    /// try on a fresh connection, inside the same deadline, and is not reported as a failure.
    pub async fn post_payment(
        &self,
        payment: &Payment,
        requested_at_ms: i64,
        deadline: impl Future<Output = ()>,
    ) -> Attempt {
        self.call(Call::Pay { payment, requested_at_ms }, deadline).await
    }

    /// Asks whether the processor stores `payment` (`GET /payments/{id}`), until `deadline`
    /// resolves: the status, read as [`super::outcome::classify_lookup`] says. The processor
    /// answers it without its delay or its failure switch, behind the same concurrency limit as
    /// the payments. A dead pooled connection is retried on a fresh one, as for a payment.
    pub async fn look_up(
        &self,
        payment: &Payment,
        deadline: impl Future<Output = ()>,
    ) -> Result<u16, AttemptError> {
        self.call(Call::LookUp { payment }, deadline).await.result
    }

    /// One call on a pooled connection, or a fresh one (see [`Self::post_payment`]).
    async fn call(&self, call: Call<'_>, deadline: impl Future<Output = ()>) -> Attempt {
        let sent = Cell::new(false);
        let maybe_stored_before = Cell::new(false);
        let tries = async {
            // The most recently used connection is the least likely to have been closed by
            // the server's idle timer.
            let pooled = self.idle.borrow_mut().pop();
            if let Some(conn) = pooled {
                match self.try_once(conn, Origin::Pooled, call, &sent).await {
                    Try::Answered(status) => return Ok(status),
                    Try::Failed(e) => return Err(e),
                    Try::Stale { sent: was_sent } => {
                        maybe_stored_before.set(was_sent && matches!(call, Call::Pay { .. }));
                        sent.set(false);
                    }
                }
            }
            let conn = self.connect().await?;
            match self.try_once(conn, Origin::Fresh, call, &sent).await {
                Try::Answered(status) => Ok(status),
                Try::Failed(e) => Err(e),
                Try::Stale { .. } => unreachable!("try_once finds only a pooled connection stale"),
            }
        };
        let result = monoio::select! {
            result = tries => result,
            () = deadline => Err(AttemptError::Timeout { sent: sent.get() }),
        };
        Attempt { result, maybe_stored_before: maybe_stored_before.get() }
    }

    async fn connect(&self) -> Result<TcpStream, AttemptError> {
        let conn = TcpStream::connect_addr(self.endpoint.addr)
            .await
            .map_err(|e| AttemptError::Connect(e.kind()))?;
        // On loopback, a connect to a port nobody listens on can pick that same port as its
        // source and connect to itself (TCP simultaneous open): we would then read our own
        // request back as the "answer". Nothing was sent to a processor.
        if conn.local_addr().ok() == Some(self.endpoint.addr) {
            return Err(AttemptError::Connect(io::ErrorKind::AddrInUse));
        }
        // Requests are single small writes; Nagle would only add delay.
        let _ = conn.set_nodelay(true);
        self.connects.set(self.connects.get() + 1);
        Ok(conn)
    }

    /// One request on `conn`, and its answer's status. `sent` is set once the whole request
    /// is written (a timeout then leaves the outcome unknown).
    async fn try_once(
        &self,
        mut conn: TcpStream,
        origin: Origin,
        call: Call<'_>,
        sent: &Cell<bool>,
    ) -> Try {
        let mut buf =
            self.spare_bufs.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(IO_BUF_BYTES));
        buf.clear();
        match call {
            Call::Pay { payment, requested_at_ms } => {
                self.write_request(&mut buf, payment, requested_at_ms)
            }
            Call::LookUp { payment } => self.write_lookup(&mut buf, payment),
        }
        let (written, buf) = conn.write_all(buf).await;
        if let Err(e) = written {
            return match origin {
                Origin::Pooled => Try::Stale { sent: false },
                Origin::Fresh => Try::Failed(AttemptError::Write(e.kind())),
            };
        }
        sent.set(true);
        let (read, buf) = http::read_response(&mut conn, buf, RESPONSE_BYTES_MAX).await;
        let outcome = match read {
            Ok(response) => {
                // A response followed by more bytes is a server out of step with us.
                if response.keep_alive && response.len == buf.len() {
                    self.keep(conn);
                }
                Try::Answered(response.status)
            }
            Err(ReadError::ClosedBeforeAnswer(_)) if origin == Origin::Pooled => {
                Try::Stale { sent: true }
            }
            Err(ReadError::ClosedBeforeAnswer(kind) | ReadError::Lost(kind)) => {
                Try::Failed(AttemptError::Lost(kind))
            }
            Err(ReadError::Unreadable) => Try::Failed(AttemptError::Protocol),
        };
        self.recycle(buf);
        outcome
    }

    fn write_request(&self, buf: &mut Vec<u8>, payment: &Payment, requested_at_ms: i64) {
        const BODY_BYTES: usize = r#"{"correlationId":"","amount":,"requestedAt":""}"#.len();
        let content_len = BODY_BYTES
            + payment.correlation_id.len()
            + money::cents_text_len(payment.cents)
            + timestamp::ISO_LEN;
        buf.extend_from_slice(b"POST /payments HTTP/1.1\r\nHost: ");
        buf.extend_from_slice(self.endpoint.authority.as_bytes());
        buf.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        money::write_u64(buf, content_len as u64);
        buf.extend_from_slice(b"\r\n\r\n{\"correlationId\":\"");
        buf.extend_from_slice(&payment.correlation_id);
        buf.extend_from_slice(b"\",\"amount\":");
        money::write_cents(buf, payment.cents);
        buf.extend_from_slice(b",\"requestedAt\":\"");
        buf.extend_from_slice(&timestamp::format_iso(requested_at_ms));
        buf.extend_from_slice(b"\"}");
    }

    fn write_lookup(&self, buf: &mut Vec<u8>, payment: &Payment) {
        buf.extend_from_slice(b"GET /payments/");
        buf.extend_from_slice(&payment.correlation_id);
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        buf.extend_from_slice(self.endpoint.authority.as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
    }

    /// Connections opened to the processor since start.
    pub fn connects(&self) -> u64 {
        self.connects.get()
    }

    fn keep(&self, conn: TcpStream) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.idle_max {
            idle.push(conn);
        }
    }

    fn recycle(&self, buf: Vec<u8>) {
        let mut spare = self.spare_bufs.borrow_mut();
        if spare.len() < self.idle_max && buf.capacity() <= 4 * IO_BUF_BYTES {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the forwarded request is valid HTTP with a Content-Length that matches its JSON
    /// body, and the body carries exact cents and the ISO `requestedAt`.
    #[test]
    fn request_is_well_formed() {
        let endpoint = Endpoint { authority: "h:1".into(), addr: "127.0.0.1:1".parse().unwrap() };
        let client = ProcessorClient::new(endpoint, 4);
        let payment =
            Payment { correlation_id: *b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", cents: 1990 };
        let mut buf = Vec::new();
        client.write_request(&mut buf, &payment, 1_752_582_896_789);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&buf).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        let declared: usize = req
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        let body = &buf[head_len..];
        assert_eq!(declared, body.len());
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            r#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.90,"requestedAt":"2025-07-15T12:34:56.789Z"}"#
        );
    }

    /// Goal: a lookup is a bodiless `GET /payments/{id}` with the payment's id as the client
    /// sent it, and the processor's `Host`. Method: the bytes written, parsed back.
    #[test]
    fn lookup_is_well_formed() {
        let endpoint = Endpoint { authority: "h:1".into(), addr: "127.0.0.1:1".parse().unwrap() };
        let client = ProcessorClient::new(endpoint, 4);
        let payment =
            Payment { correlation_id: *b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", cents: 1990 };
        let mut buf = Vec::new();
        client.write_lookup(&mut buf, &payment);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert_eq!(req.parse(&buf).unwrap(), httparse::Status::Complete(buf.len()));
        assert_eq!(req.method, Some("GET"));
        assert_eq!(req.path, Some("/payments/4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"));
        assert_eq!(
            req.headers.iter().map(|h| (h.name, h.value)).collect::<Vec<_>>(),
            [("Host", &b"h:1"[..])]
        );
    }
}
