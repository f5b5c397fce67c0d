//! The payment as it enters: `{"correlationId": "<uuid>", "amount": <decimal>}` decoded with
//! serde_json into a fixed-size value (no heap), validated before anything is queued.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::money::{self, AmountError};

/// Length of a hyphenated UUID.
pub const UUID_LEN: usize = 36;

/// One accepted payment, waiting in a core's queue or in flight. 48 bytes, `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The client's correlationId, hyphenated UUID text exactly as sent (validated ASCII).
    pub correlation_id: [u8; UUID_LEN],
    /// Amount in cents.
    pub cents: u64,
}

impl Payment {
    /// No payment: what a record about something else (a purge) carries in its place.
    pub const NONE: Payment =
        Payment { correlation_id: *b"00000000-0000-0000-0000-000000000000", cents: 0 };

    /// The correlationId as text.
    pub fn correlation_id(&self) -> &str {
        // Validated as ASCII hex and hyphens in `decode`, so this cannot fail.
        std::str::from_utf8(&self.correlation_id).expect("correlationId is ASCII")
    }

    /// The correlationId as a 128-bit number: the same UUID in upper or lower case is the same
    /// key, as it is for the processors' UUID column.
    pub fn id_key(&self) -> u128 {
        self.correlation_id.iter().filter(|&&b| b != b'-').fold(0u128, |key, &b| {
            // `decode` admits only hex digits and hyphens, so every byte here is a hex digit.
            let nibble = (b as char).to_digit(16).unwrap_or(0);
            (key << 4) | u128::from(nibble)
        })
    }
}

/// Why a payment body was refused; each maps to a status and a fixed reason text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentError {
    /// Not JSON, or not an object (400).
    MalformedJson,
    /// `correlationId` absent (422).
    MissingCorrelationId,
    /// `correlationId` not a string holding a UUID (422).
    InvalidCorrelationId,
    /// `amount` absent (422).
    MissingAmount,
    /// `amount` not a JSON number (422).
    AmountNotNumber,
    /// `amount` a number we refuse (422).
    Amount(AmountError),
}

impl PaymentError {
    /// Whether the body was not JSON at all (400) rather than JSON with bad content (422).
    pub fn is_syntax(self) -> bool {
        self == PaymentError::MalformedJson
    }

    /// Reason text for the JSON error body.
    pub fn reason(self) -> &'static str {
        match self {
            PaymentError::MalformedJson => "body must be a JSON object",
            PaymentError::MissingCorrelationId => "correlationId is required",
            PaymentError::InvalidCorrelationId => "correlationId must be a UUID string",
            PaymentError::MissingAmount => "amount is required",
            PaymentError::AmountNotNumber => "amount must be a number",
            PaymentError::Amount(e) => e.reason(),
        }
    }
}

/// The wire shape. Unknown fields are ignored, as a JSON API's clients expect. Each field is
/// kept as its raw JSON text, borrowed from the body: the amount's digits go to
/// `money::parse_cents` as sent, never through `f64` (serde_json's `Number` holds a decimal as
/// an `f64` unless `arbitrary_precision` is on, which changes how every number is read).
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
}

/// Decodes and validates a `POST /payments` body.
pub fn decode(body: &[u8]) -> Result<Payment, PaymentError> {
    // serde would also build the struct from a JSON array; only an object is a payment.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(PaymentError::MalformedJson);
    }
    let parsed: Body<'_> = crate::http::json_body(body).ok_or(PaymentError::MalformedJson)?;
    let id = parsed.correlation_id.ok_or(PaymentError::MissingCorrelationId)?;
    let correlation_id = uuid_text(id.get()).ok_or(PaymentError::InvalidCorrelationId)?;
    let amount = parsed.amount.ok_or(PaymentError::MissingAmount)?;
    let raw = amount.get().as_bytes();
    if !matches!(raw.first(), Some(b'-' | b'0'..=b'9')) {
        return Err(PaymentError::AmountNotNumber);
    }
    let cents = money::parse_cents(raw).map_err(PaymentError::Amount)?;
    Ok(Payment { correlation_id, cents })
}

/// The UUID inside a JSON string value (`raw`, quotes included): 8-4-4-4-12 hex digits, any
/// case, any version.
fn uuid_text(raw: &str) -> Option<[u8; UUID_LEN]> {
    let [b'"', text @ .., b'"'] = raw.as_bytes() else {
        return None;
    };
    // As sent: a UUID needs no escapes, and a backslash is none of its characters.
    if let Ok(bytes) = <[u8; UUID_LEN]>::try_from(text)
        && is_uuid(&bytes)
    {
        return Some(bytes);
    }
    if !text.contains(&b'\\') {
        return None;
    }
    // A client may still escape some characters. Rare, so this path may allocate.
    let unescaped: String = serde_json::from_str(raw).ok()?;
    let bytes = unescaped.as_bytes().try_into().ok()?;
    is_uuid(&bytes).then_some(bytes)
}

/// Hyphens where a UUID has them, hex digits (either case) everywhere else.
fn is_uuid(bytes: &[u8; UUID_LEN]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";

    /// Goal: the contest's body decodes to exact cents; extra fields and escapes are fine.
    #[test]
    fn decodes_valid_bodies() {
        let body = format!(r#"{{"correlationId":"{ID}","amount":19.90}}"#);
        let p = decode(body.as_bytes()).unwrap();
        assert_eq!((p.correlation_id(), p.cents), (ID, 1990));
        let body =
            format!(r#" {{ "amount" : 20.05 , "extra": [1,{{}}], "correlationId" : "{ID}" }} "#);
        assert_eq!(decode(body.as_bytes()).unwrap().cents, 2005);
        let escaped = r#"{"correlationId":"\u0034a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":1}"#;
        assert_eq!(decode(escaped.as_bytes()).unwrap().correlation_id(), ID);
        let upper = format!(r#"{{"correlationId":"{}","amount":1}}"#, ID.to_uppercase());
        assert!(decode(upper.as_bytes()).is_ok());
    }

    /// Goal: bytes that are not UTF-8 inside a JSON string are refused, never a panic (found by
    /// the `payment` fuzz target: fuzz/regressions/payment/).
    #[test]
    fn invalid_utf8_is_refused() {
        let got = decode(b"{\"correlationId\":\"\xff\"");
        assert!(got.is_err(), "{got:?}");
        let body = b"{\"correlationId\":\"\xff\",\"amount\":1}";
        assert!(decode(body).is_err());
    }

    /// Goal: a broken `\u` escape makes the body not JSON wherever it is, even in a field
    /// `decode` does not read (sonic-rs, which decoded payments before serde_json, skipped such
    /// fields unchecked); an escape of no character (a lone surrogate) in the correlationId is
    /// a bad id, not bad JSON. Method: the contest's body with each escape put in each place.
    #[test]
    fn escapes_are_checked() {
        let body = |id: &str, extra: &str| {
            decode(format!(r#"{{"correlationId":"{id}","amount":19.9{extra}}}"#).as_bytes())
        };
        assert!(body(ID, "").is_ok());
        assert_eq!(body(ID, r#","note":"\u00zz""#), Err(PaymentError::MalformedJson));
        assert_eq!(body(r"\u00zz", ""), Err(PaymentError::MalformedJson));
        assert!(body(ID, r#","note":"\ud800""#).is_ok(), "well-formed JSON text");
        assert_eq!(body(r"\ud800", ""), Err(PaymentError::InvalidCorrelationId));
        let lone = format!(r"\ud800{}", &ID[6..]);
        assert_eq!(lone.len(), UUID_LEN);
        assert_eq!(body(&lone, ""), Err(PaymentError::InvalidCorrelationId));
    }

    /// Goal: the id key is the UUID's value, case-insensitive, and distinct ids differ.
    #[test]
    fn id_key_is_the_uuid_value() {
        let key = |text: &str| {
            decode(format!(r#"{{"correlationId":"{text}","amount":1}}"#).as_bytes())
                .unwrap()
                .id_key()
        };
        assert_eq!(key(ID), 0x4a7901b8_7d26_4d9d_aa19_4dc1c7cf60b3);
        assert_eq!(key(ID), key(&ID.to_uppercase()));
        assert_ne!(key(ID), key("4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b4"));
    }

    /// Goal: each kind of bad body gets its own error, syntax errors apart from content ones.
    #[test]
    fn refuses_bad_bodies() {
        let id = format!(r#""correlationId":"{ID}""#);
        let cases: Vec<(String, PaymentError)> = vec![
            ("".into(), PaymentError::MalformedJson),
            ("{".into(), PaymentError::MalformedJson),
            ("[1,2]".into(), PaymentError::MalformedJson),
            ("nul".into(), PaymentError::MalformedJson),
            (format!("{{{id},\"amount\":1}} trailing"), PaymentError::MalformedJson),
            (r#"{"amount":1}"#.into(), PaymentError::MissingCorrelationId),
            (r#"{"correlationId":"nope","amount":1}"#.into(), PaymentError::InvalidCorrelationId),
            (r#"{"correlationId":12,"amount":1}"#.into(), PaymentError::InvalidCorrelationId),
            (
                r#"{"correlationId":"4a7901b8x7d26-4d9d-aa19-4dc1c7cf60b3","amount":1}"#.into(),
                PaymentError::InvalidCorrelationId,
            ),
            (
                r#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60bg","amount":1}"#.into(),
                PaymentError::InvalidCorrelationId,
            ),
            (format!("{{{id}}}"), PaymentError::MissingAmount),
            (format!(r#"{{{id},"amount":"19.90"}}"#), PaymentError::AmountNotNumber),
            // null reads as absent, as most JSON APIs treat it.
            (format!(r#"{{{id},"amount":null}}"#), PaymentError::MissingAmount),
            (format!(r#"{{{id},"amount":true}}"#), PaymentError::AmountNotNumber),
            (format!(r#"{{{id},"amount":19.901}}"#), PaymentError::Amount(AmountError::TooPrecise)),
            (format!(r#"{{{id},"amount":0}}"#), PaymentError::Amount(AmountError::NotPositive)),
            (format!(r#"{{{id},"amount":-5}}"#), PaymentError::Amount(AmountError::NotPositive)),
            (format!(r#"{{{id},"amount":1e3}}"#), PaymentError::Amount(AmountError::NotDecimal)),
            (format!(r#"{{{id},"amount":1e400}}"#), PaymentError::Amount(AmountError::NotDecimal)),
            (
                format!(r#"{{{id},"amount":123456789012345678901234567890}}"#),
                PaymentError::Amount(AmountError::TooLarge),
            ),
        ];
        for (body, err) in cases {
            assert_eq!(decode(body.as_bytes()), Err(err), "{body}");
        }
    }
}
