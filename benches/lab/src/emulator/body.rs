//! A request's JSON body, read the same way by the payment and the admin endpoints.

use http_body_util::{BodyExt, Limited};
use hyper::{Request, body::Incoming};
use serde_json::Value;

/// Largest request body we read; a payment is ~120 bytes, so this only stops abuse.
const BODY_BYTES_MAX: usize = 64 * 1024;

pub(super) async fn read_json(request: Request<Incoming>) -> Option<Value> {
    let body = Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}
