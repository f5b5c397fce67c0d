//! Intake: `POST /payments`, from the body to the core's forwarding work. Decoded, refused
//! while draining or when this core accepted the same correlationId before, then queued.

use std::rc::Rc;

use crate::{
    cores::Core,
    forward::dispatch,
    http::{Body, Status},
    metrics::Intake,
    payment,
};

/// `POST /payments`: decode, refuse a correlationId this core already accepted, queue.
pub fn accept_payment(core: &Rc<Core>, json: &[u8], body: &mut Body) -> (Intake, Status) {
    let payment = match payment::decode(json) {
        Ok(payment) => payment,
        Err(e) if e.is_syntax() => {
            return (Intake::Malformed, body.error(Status::BadRequest, e.reason()));
        }
        Err(e) => return (Intake::Invalid, body.error(Status::UnprocessableEntity, e.reason())),
    };
    if core.is_draining() {
        let reason = "shutting down: payment not accepted; retry on a new connection";
        return (Intake::Draining, body.error(Status::ServiceUnavailable, reason));
    }
    let id = payment.id_key();
    if core.accepted_before(id) {
        let status = body.error(Status::Conflict, "correlationId already accepted");
        return (Intake::Duplicate, status);
    }
    match dispatch::submit(core, payment) {
        Ok(()) => {
            // Remembered only once queued: a payment refused with 503 may be sent again.
            core.remember_accepted(id);
            (Intake::Accepted, Status::Accepted)
        }
        Err(_) => {
            let status =
                body.error(Status::ServiceUnavailable, "payment queue is full; retry later");
            (Intake::QueueFull, status)
        }
    }
}
