//! The admin endpoints under `/admin/`, behind the `X-Rinha-Token` header: the payments
//! summary, the token, delay and failure settings, and the purge.

use hyper::{Method, Request, StatusCode, body::Incoming};
use serde_json::json;

use super::{body::read_json, processor::Processor};
use crate::{framing::Answer, money, time};

/// Largest delay the admin API accepts (the rules use up to 5000 ms).
const DELAY_MS_MAX: u64 = 600_000;

pub(super) async fn admin(processor: &Processor, request: Request<Incoming>) -> Answer {
    let authorised = {
        let state = processor.state();
        request.headers().get("x-rinha-token").and_then(|v| v.to_str().ok())
            == Some(state.token.as_str())
    };
    if !authorised {
        return processor.framing.empty(StatusCode::UNAUTHORIZED);
    }
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/admin/payments-summary") => {
            let Ok((from, to)) = window_bounds(request.uri().query()) else {
                return processor.framing.bad_request("from/to must be ISO timestamps");
            };
            let summary = processor.summary(from, to);
            let total_amount = money::cents_to_f64(summary.total_cents);
            processor.framing.json(
                StatusCode::OK,
                &json!({
                    "totalRequests": summary.total_requests,
                    "totalAmount": total_amount,
                    "totalFee": total_amount * summary.fee,
                    "feePerTransaction": summary.fee,
                }),
            )
        }
        (Method::PUT, "/admin/configurations/token") => {
            let token =
                read_json(request).await.and_then(|b| b.get("token")?.as_str().map(str::to_owned));
            match token {
                Some(token) if !token.is_empty() => {
                    processor.state().token = token;
                    processor.framing.empty(StatusCode::NO_CONTENT)
                }
                _ => processor.framing.bad_request("body must be {\"token\": \"...\"}"),
            }
        }
        (Method::PUT, "/admin/configurations/delay") => {
            let delay = read_json(request).await.and_then(|b| b.get("delay")?.as_u64());
            match delay {
                Some(delay) if delay <= DELAY_MS_MAX => {
                    let was = std::mem::replace(&mut processor.state().delay_ms, delay);
                    processor
                        .framing
                        .json(StatusCode::OK, &json!({"config": "delay", "was": was, "is": delay}))
                }
                _ => processor.framing.bad_request("body must be {\"delay\": <ms>}"),
            }
        }
        (Method::PUT, "/admin/configurations/failure") => {
            let failure = read_json(request).await.and_then(|b| b.get("failure")?.as_bool());
            match failure {
                Some(failure) => {
                    let was = std::mem::replace(&mut processor.state().failing, failure);
                    processor.framing.json(
                        StatusCode::OK,
                        &json!({"config": "failure", "was": was, "is": failure}),
                    )
                }
                None => processor.framing.bad_request("body must be {\"failure\": <bool>}"),
            }
        }
        (Method::POST, "/admin/purge-payments") => {
            processor.state().payments.clear();
            processor.framing.json(StatusCode::OK, &json!({"message": "All payments purged."}))
        }
        _ => processor.framing.empty(StatusCode::NOT_FOUND),
    }
}

/// Reads `from` and `to` from a query string: absent means unbounded; present but unreadable
/// is `Err`.
fn window_bounds(query: Option<&str>) -> Result<(Option<i64>, Option<i64>), ()> {
    let (mut from, mut to) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        if value.is_empty() {
            continue;
        }
        *slot = Some(time::parse_iso_ms(&percent_decode(value)).ok_or(())?);
    }
    Ok((from, to))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `from`/`to` parse as the contest sends them, URL-encoded or not, and garbage is
    /// rejected. Method: literal query strings.
    #[test]
    fn window_bounds_parse() {
        let ms = time::parse_iso_ms("2025-07-15T12:34:56.000Z");
        assert_eq!(window_bounds(Some("from=2025-07-15T12:34:56.000Z")), Ok((ms, None)));
        assert_eq!(window_bounds(Some("to=2025-07-15T12%3A34%3A56.000Z&x=1")), Ok((None, ms)));
        assert_eq!(window_bounds(None), Ok((None, None)));
        assert_eq!(window_bounds(Some("from=yesterday")), Err(()));
    }
}
