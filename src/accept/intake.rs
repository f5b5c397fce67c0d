//! Intake: `POST /payments`, from the body to the core's forwarding work. Decoded, refused
//! while draining, when this core accepted the same correlationId before, or when the queue or
//! the journal cannot take it; then written to the journal and queued, and only then `202`.

use std::rc::Rc;

use crate::{
    cores::Core,
    forward::dispatch,
    http::{Body, Status},
    journal::{Kind, Refusal},
    metrics::Intake,
    payment,
};

/// `POST /payments`: decode, refuse what cannot be kept, journal, queue.
pub async fn accept_payment(core: &Rc<Core>, json: &[u8], body: &mut Body) -> (Intake, Status) {
    let payment = match payment::decode(json) {
        Ok(payment) => payment,
        Err(e) if e.is_syntax() => {
            return (Intake::Malformed, body.error(Status::BadRequest, e.reason()));
        }
        Err(e) => return (Intake::Invalid, body.error(Status::UnprocessableEntity, e.reason())),
    };
    let unavailable = |body: &mut Body, reason| body.error(Status::ServiceUnavailable, reason);
    if core.is_draining() {
        let reason = "shutting down: payment not accepted; retry on a new connection";
        return (Intake::Draining, unavailable(body, reason));
    }
    let id = payment.id_key();
    if core.accepted_before(id) {
        let status = body.error(Status::Conflict, "correlationId already accepted");
        return (Intake::Duplicate, status);
    }
    // Checked before the journal, which must hold only payments that are forwarded.
    if core.forwarding().queue_full() {
        return (Intake::QueueFull, unavailable(body, "payment queue is full; retry later"));
    }
    let journal = core.journal();
    if let Err(refusal) = journal.admits() {
        return (Intake::Unjournaled, unavailable(body, refusal.reason()));
    }
    // Remembered before the wait, so that a repeat on this core meanwhile is answered 409.
    core.remember_accepted(id);
    let seq = journal.append(Kind::Accepted, &payment, None, 0);
    // When it can go at once, its first attempt is decided now, and its record rides in the
    // same write as the acceptance's.
    let decided = dispatch::decide_at_intake(core, &payment);
    if let Err(kind) = journal.durable(seq).await {
        if let Some(decided) = decided {
            dispatch::abandon_decided(core, decided);
        }
        // Should the record reach the disk after all, this one says it was not accepted.
        journal.append(Kind::Closed, &payment, None, 0);
        core.forget_accepted(id);
        let reason = Refusal::Unwritable(kind).reason();
        return (Intake::Unjournaled, unavailable(body, reason));
    }
    if let Some(decided) = decided {
        dispatch::start_decided(core, payment, decided);
        return (Intake::Accepted, Status::Accepted);
    }
    match dispatch::submit(core, payment) {
        Ok(()) => (Intake::Accepted, Status::Accepted),
        Err(_) => {
            // The queue filled during the wait: the journal must not keep it as accepted.
            journal.append(Kind::Closed, &payment, None, 0);
            core.forget_accepted(id);
            (Intake::QueueFull, unavailable(body, "payment queue is full; retry later"))
        }
    }
}
