//! The endpoints the backend calls, `POST /payments`, `GET /payments/{id}` and
//! `GET /payments/service-health`, with the answers the real processor gives: its `429` and its
//! over-long `422`.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::{Request, StatusCode, body::Incoming, header::RETRY_AFTER};
use serde_json::{Value, json};

use super::{
    body::read_json,
    health_window::HealthTurn,
    processor::{IN_PROGRESS_MAX, Payment, Processor, QUEUED_MAX, processor_health},
};
use crate::{
    framing::{Answer, Framing},
    money, time,
};

pub(super) async fn post_payment(processor: &Arc<Processor>, request: Request<Incoming>) -> Answer {
    // 1. Concurrency limit: in progress plus queued, then 429.
    let Some(admission) = admit(processor) else {
        return too_many_requests(processor.framing);
    };
    let Some(in_progress) = InProgress::acquire(processor).await else {
        return processor.framing.empty(StatusCode::SERVICE_UNAVAILABLE);
    };
    let Some(body) = read_json(request).await else {
        return processor.framing.bad_request("invalid JSON body");
    };
    let correlation_id = body
        .get("correlationId")
        .and_then(Value::as_str)
        .and_then(|text| uuid::Uuid::parse_str(text).ok());
    let amount = body.get("amount").and_then(amount_cents);
    let requested_at = body.get("requestedAt").and_then(Value::as_str).and_then(time::parse_iso_ms);
    let (Some(correlation_id), Some(amount_cents), Some(requested_at_ms)) =
        (correlation_id, amount, requested_at)
    else {
        return processor.framing.bad_request(
            "correlationId (uuid), amount (number) and requestedAt (ISO timestamp) are required",
        );
    };
    let payment = Payment { amount_cents, requested_at_ms, stored_at_ms: 0 };
    // 2-4 in a task of their own. Kestrel runs a request's endpoint to its end even after the
    // client has gone: the processor's delay filter (`Task.Delay`) and its insert take no
    // cancellation token (`Filters.cs`, `Endpoints.cs`), so a payment whose client disconnects
    // during the delay (a backend killed with requests in flight) is stored all the same, and
    // holds its permit until then. A hyper service future is dropped with its connection.
    let framing = processor.framing;
    let processor = Arc::clone(processor);
    let handled = tokio::spawn(async move {
        let _limits = (admission, in_progress);
        delay_then_store(&processor, correlation_id, payment).await
    });
    // The task panicked: the processor's handler would have answered 500.
    handled.await.unwrap_or_else(|_| framing.empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A payment's steps after the limit: the delay, read when the payment starts being processed;
/// then the failure switch as it is after the delay, and the insert, under one lock.
async fn delay_then_store(
    processor: &Processor,
    correlation_id: uuid::Uuid,
    payment: Payment,
) -> Answer {
    let delay_ms = processor.state().delay_ms;
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let mut state = processor.state();
    if state.failing {
        return processor.framing.empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if state.payments.contains_key(&correlation_id.as_u128()) {
        return duplicate(processor.framing, correlation_id);
    }
    let payment = Payment { stored_at_ms: time::now_ms(), ..payment };
    state.payments.insert(correlation_id.as_u128(), payment);
    processor.framing.json(StatusCode::OK, &json!({"message": "payment processed successfully"}))
}

/// A place in the concurrency limiter that `POST /payments` and `GET /payments/{id}` share
/// (the processor's one `AddConcurrencyLimiter("concurrency")`, required by both endpoints):
/// `None` when its 800 permits and 500 queued places are all taken, for a `429`. The caller
/// then waits for an `in_progress` permit.
///
/// Both kinds count toward `admitted_max`, as the limiter counts both: a lookup holding a
/// permit is one a payment waits for.
fn admit(processor: &Arc<Processor>) -> Option<Admission> {
    let before = processor.admitted.fetch_add(1, Ordering::AcqRel);
    if before >= IN_PROGRESS_MAX + QUEUED_MAX {
        processor.admitted.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    processor.admitted_max.fetch_max(before + 1, Ordering::Relaxed);
    Some(Admission(Arc::clone(processor)))
}

/// Releases an admission when the request is done, which for a payment past the limit may be
/// after its connection went away.
struct Admission(Arc<Processor>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One of the processor's 800 permits in progress, owned so that it can outlive the request's
/// connection (see `post_payment`); given back when dropped.
struct InProgress(Arc<Processor>);

impl InProgress {
    /// Waits for a permit (queued, oldest first, as the limiter queues); `None` if the
    /// semaphore was closed, which the emulator never does.
    async fn acquire(processor: &Arc<Processor>) -> Option<InProgress> {
        processor.in_progress.acquire().await.ok()?.forget();
        Some(InProgress(Arc::clone(processor)))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.add_permits(1);
    }
}

fn amount_cents(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    match number.as_i64() {
        Some(whole) => whole.checked_mul(100),
        None => money::cents_from_f64(number.as_f64()?),
    }
}

pub(super) async fn health(processor: &Processor) -> Answer {
    processor.health_calls.fetch_add(1, Ordering::Relaxed);
    let turn = processor_health(processor).arrive(Instant::now());
    match turn {
        HealthTurn::Now => {}
        HealthTurn::Refused => return too_many_requests(processor.framing),
        HealthTurn::Queued(id) => {
            let mut waiter = HealthWaiter { processor, id: Some(id) };
            loop {
                let next = processor_health(processor).next_window(Instant::now());
                tokio::time::sleep_until(next.into()).await;
                if processor_health(processor).take_turn(id, Instant::now()) {
                    waiter.id = None;
                    break;
                }
            }
        }
    }
    let state = processor.state();
    processor
        .framing
        .json(StatusCode::OK, &json!({"failing": state.failing, "minResponseTime": state.delay_ms}))
}

/// A queued health call; leaves the queue if dropped (the client went away) before its turn.
struct HealthWaiter<'a> {
    processor: &'a Processor,
    id: Option<u64>,
}

impl Drop for HealthWaiter<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            processor_health(self.processor).leave(id);
        }
    }
}

/// `GET /payments/{id}`: behind the same concurrency limiter as the payments (a permit, or a
/// place in the queue until one frees, or `429`), then the book at once: no delay and no
/// failure switch, which the real processor applies to `POST /payments` only.
pub(super) async fn get_payment(processor: &Arc<Processor>, id: &str) -> Answer {
    let Some(_admission) = admit(processor) else {
        return too_many_requests(processor.framing);
    };
    let Some(_in_progress) = InProgress::acquire(processor).await else {
        return processor.framing.empty(StatusCode::SERVICE_UNAVAILABLE);
    };
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return processor.framing.empty(StatusCode::NOT_FOUND);
    };
    let state = processor.state();
    match state.payments.get(&id.as_u128()) {
        Some(payment) => processor.framing.json(
            StatusCode::OK,
            &json!({
                "correlationId": id.to_string(),
                "amount": money::cents_to_f64(payment.amount_cents),
                "requestedAt": time::format_iso_ms(payment.requested_at_ms),
            }),
        ),
        None => processor.framing.empty(StatusCode::NOT_FOUND),
    }
}

/// The rate limiter's rejection text (`OnRejected` in the processor's source writes another,
/// ruder one of the same length class).
const TOO_MANY_REQUESTS_TEXT: &str = "Too many requests. Please try again later.";

/// The `429` of either rate limiter, with `Retry-After` as the processor sets it.
fn too_many_requests(framing: Framing) -> Answer {
    framing.text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_TEXT, &[(RETRY_AFTER, "5")])
}

/// What the real processor writes after the database refused a known correlationId: its
/// `warning`, the exception's whole text, over a kilobyte, so `System.Text.Json` writes it in
/// two chunks (see `framing`).
fn duplicate(framing: Framing, correlation_id: uuid::Uuid) -> Answer {
    let warning = format!(
        "Payment could not be processed. CorrelationId already exists: {correlation_id}. Error \
         details: {POSTGRES_DUPLICATE_KEY}"
    );
    let rest = format!("{}}}", Value::String(warning));
    framing.json_chunks(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec![Bytes::from_static(b"{\"message\":"), Bytes::from(rest)],
    )
}

/// The shape of Npgsql's `PostgresException.ToString()` for a unique violation, as the real
/// processor embeds it in its 422 (abridged stack: the length is what matters here).
const POSTGRES_DUPLICATE_KEY: &str = "Npgsql.PostgresException (0x80004005): 23505: duplicate \
key value violates unique constraint \"payments_pkey\"\n\nDETAIL: Detail redacted as it may \
contain sensitive data. Specify 'Include Error Detail' in the connection string to include \
this information.\n   at Npgsql.Internal.NpgsqlConnector.ReadMessageLong(Boolean async, \
DataRowLoadingMode dataRowLoadingMode, Boolean readingNotifications, Boolean isReadingPrependedMessage)\n   \
at System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder`1.StateMachineBox`1.\
System.Threading.Tasks.Sources.IValueTaskSource<TResult>.GetResult(Int16 token)\n   at \
Npgsql.NpgsqlDataReader.NextResult(Boolean async, Boolean isConsuming, CancellationToken \
cancellationToken)\n   at Npgsql.NpgsqlDataReader.NextResult(Boolean async, Boolean \
isConsuming, CancellationToken cancellationToken)\n   at \
Npgsql.NpgsqlCommand.ExecuteReader(Boolean async, CommandBehavior behavior, CancellationToken \
cancellationToken)\n   at Npgsql.NpgsqlCommand.ExecuteReader(Boolean async, CommandBehavior \
behavior, CancellationToken cancellationToken)\n   at \
Npgsql.NpgsqlCommand.ExecuteNonQuery(Boolean async, CancellationToken cancellationToken)\n   \
at Program.<>c.<<<Main>$>b__0_3>d.MoveNext() in /app/Endpoints.cs:line 74\n  Exception data:\n    \
Severity: ERROR\n    SqlState: 23505\n    MessageText: duplicate key value violates unique \
constraint \"payments_pkey\"\n    Detail: Detail redacted as it may contain sensitive data. \
Specify 'Include Error Detail' in the connection string to include this information.\n    \
SchemaName: public\n    TableName: payments\n    ConstraintName: payments_pkey\n    File: \
nbtinsert.c\n    Line: 666\n    Routine: _bt_check_unique";
