//! Fuzz target: `payment::decode`, the `POST /payments` body, and `money::parse_cents`.
//!
//! Goal: a body is accepted only if it is a JSON object whose `correlationId` is a UUID string
//! and whose `amount` is a positive decimal with at most two significant places, and then
//! decodes to exactly those values; every refusal names the right reason; and an accepted
//! payment written back out (as the processor request does) decodes to the same payment.
//! Method: decode the input, compare with a serde_json oracle (syntax, then the two fields' raw
//! text) and with an integer-only cents oracle written here, then re-encode the payment with
//! `money::write_cents` and decode again. The input is also fed to `parse_cents` directly,
//! against the same cents oracle. `decode` parses with serde_json too, so the syntax check
//! holds its use of the parser (UTF-8 first, objects only, fields by raw text, the UUID
//! unescaped), not the parser itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use payrelay::{
    http,
    money::{self, AMOUNT_CENTS_MAX, AmountError},
    payment::{self, PaymentError, UUID_LEN},
};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::value::RawValue;

/// The two fields `decode` reads, as serde's derive sees them (a duplicate field fails, as in
/// `decode`'s own derived struct; `null` is absent), each kept as its raw JSON text. Raw text
/// rather than `serde_json::Value`: `Value` cannot hold an integer beyond 64 bits or a float
/// beyond f64, and with `arbitrary_precision` it mistakes the object
/// `{"$serde_json::private::Number":…}` for a number.
#[derive(Deserialize)]
struct Fields {
    #[serde(rename = "correlationId")]
    correlation_id: Option<Box<RawValue>>,
    amount: Option<Box<RawValue>>,
}

/// Cents for a JSON number's text, computed apart from `money::parse_cents`: split on the
/// point, strip zeros, then u128 arithmetic. Same refusal order: syntax, precision, size, sign.
fn oracle_cents(text: &[u8]) -> Result<u64, AmountError> {
    let (negative, unsigned) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let mut parts = unsigned.splitn(2, |&b| b == b'.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(AmountError::NotDecimal);
    }
    let frac = frac.unwrap_or_default();
    let frac = &frac[..frac.len() - frac.iter().rev().take_while(|&&b| b == b'0').count()];
    if frac.len() > 2 {
        return Err(AmountError::TooPrecise);
    }
    let int = &int[int.iter().take_while(|&&b| b == b'0').count()..];
    // 10^12 cents is 10^10 units: eleven digits. Anything longer is too large already.
    if int.len() > 11 {
        return Err(AmountError::TooLarge);
    }
    let number = |digits: &[u8]| digits.iter().fold(0u128, |n, &d| n * 10 + u128::from(d - b'0'));
    let cents = number(int) * 100 + number(frac) * if frac.len() == 1 { 10 } else { 1 };
    if cents > u128::from(AMOUNT_CENTS_MAX) {
        return Err(AmountError::TooLarge);
    }
    if cents == 0 || negative {
        return Err(AmountError::NotPositive);
    }
    Ok(cents as u64)
}

/// What serde_json makes of a body.
enum Oracle {
    /// A JSON object with at most one of each field `decode` reads.
    Object(Fields),
    /// Not JSON, not an object, or a field given twice.
    Refused(String),
}

fn oracle_json(data: &[u8]) -> Oracle {
    // JSON text is UTF-8 (RFC 8259 §8.1); serde_json checks that only in strings it keeps.
    if std::str::from_utf8(data).is_err() {
        return Oracle::Refused("not UTF-8".into());
    }
    // `IgnoredAny` checks the syntax only: no number conversion, no special keys.
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(data) {
        return Oracle::Refused(e.to_string());
    }
    if data.trim_ascii_start().first() != Some(&b'{') {
        return Oracle::Refused("not an object".into());
    }
    match serde_json::from_slice::<Fields>(data) {
        Ok(fields) => Oracle::Object(fields),
        Err(e) => Oracle::Refused(e.to_string()),
    }
}

/// A field's raw JSON as a string's contents, if it is a valid string.
fn string_of(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// Whether a field's raw JSON is a number (JSON numbers start with `-` or a digit).
fn is_number(raw: &RawValue) -> bool {
    matches!(raw.get().as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

fn is_uuid(text: &str) -> bool {
    text.len() == UUID_LEN
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Every refusal's reason goes out through `write_error_json`, which asserts it needs no
/// escaping.
fn check_reason(err: PaymentError) {
    let reason = err.reason();
    assert!(!reason.is_empty());
    http::write_error_json(&mut Vec::new(), reason);
}

fn check_payment(data: &[u8], payment: payment::Payment) {
    assert!((1..=AMOUNT_CENTS_MAX).contains(&payment.cents), "cents {}", payment.cents);
    let id = payment.correlation_id();
    assert!(is_uuid(id), "correlationId {id:?}");
    let hex: String = id.chars().filter(|&c| c != '-').collect();
    assert_eq!(payment.id_key(), u128::from_str_radix(&hex, 16).expect("hex"), "id_key");

    // The processor request carries the same two values, written by us: they must read back.
    let mut body = br#"{"correlationId":""#.to_vec();
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(br#"","amount":"#);
    let amount_at = body.len();
    money::write_cents(&mut body, payment.cents);
    assert_eq!(body.len() - amount_at, money::cents_text_len(payment.cents), "cents_text_len");
    body.push(b'}');
    assert_eq!(payment::decode(&body), Ok(payment), "{}", String::from_utf8_lossy(&body));

    // Oracle: serde_json reads the same id and the same amount text.
    let fields = match oracle_json(data) {
        Oracle::Object(fields) => fields,
        Oracle::Refused(e) => panic!("accepted a body serde_json refuses: {e}"),
    };
    let raw_id = fields.correlation_id.expect("correlationId was there");
    assert_eq!(string_of(&raw_id).as_deref(), Some(id), "correlationId {}", raw_id.get());
    let amount = fields.amount.expect("amount was there");
    assert!(is_number(&amount), "amount {}", amount.get());
    assert_eq!(oracle_cents(amount.get().as_bytes()), Ok(payment.cents), "amount {}", amount);
}

/// A refusal other than "not JSON": serde_json must agree that the body is a JSON object, and
/// the field values must explain the reason given.
fn check_content_error(data: &[u8], err: PaymentError) {
    let fields = match oracle_json(data) {
        Oracle::Object(fields) => fields,
        Oracle::Refused(e) => panic!("{err:?} for a body serde_json refuses: {e}"),
    };
    let id = fields.correlation_id.as_deref();
    let id_ok = id.and_then(string_of).is_some_and(|text| is_uuid(&text));
    let amount = fields.amount.as_deref();
    match err {
        PaymentError::MalformedJson => unreachable!(),
        PaymentError::MissingCorrelationId => assert!(id.is_none()),
        PaymentError::InvalidCorrelationId => {
            let raw = id.expect("correlationId was there").get();
            assert!(!id_ok, "a valid UUID refused: {raw}");
        }
        PaymentError::MissingAmount => assert!(amount.is_none()),
        PaymentError::AmountNotNumber => assert!(!is_number(amount.expect("amount was there"))),
        PaymentError::Amount(e) => {
            let raw = amount.filter(|a| is_number(a)).expect("amount was a number").get();
            assert_eq!(oracle_cents(raw.as_bytes()), Err(e), "amount {raw}");
        }
    }
    if !matches!(err, PaymentError::MissingCorrelationId | PaymentError::InvalidCorrelationId) {
        assert!(id_ok, "{err:?} reported before correlationId {id:?}");
    }
}

/// "Not JSON" (400) only for bodies that are not a JSON object with distinct field names.
fn check_malformed(data: &[u8]) {
    if let Oracle::Object(_) = oracle_json(data) {
        panic!("a JSON object was refused as malformed");
    }
}

fuzz_target!(|data: &[u8]| {
    let decoded = payment::decode(data);
    assert_eq!(payment::decode(data), decoded, "decode is deterministic");
    match decoded {
        Ok(payment) => check_payment(data, payment),
        Err(PaymentError::MalformedJson) => {
            assert!(PaymentError::MalformedJson.is_syntax());
            check_reason(PaymentError::MalformedJson);
            check_malformed(data);
        }
        Err(err) => {
            assert!(!err.is_syntax());
            check_reason(err);
            check_content_error(data, err);
        }
    }

    // The amount parser alone, on any text.
    let cents = money::parse_cents(data);
    assert_eq!(cents, oracle_cents(data), "parse_cents({:?})", String::from_utf8_lossy(data));
    if let Ok(cents) = cents {
        let mut text = Vec::new();
        money::write_cents(&mut text, cents);
        assert_eq!(money::parse_cents(&text), Ok(cents), "write_cents read back");
    }
});
