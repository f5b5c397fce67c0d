//! Outcome: what one forwarding attempt's result means for the payment. Decided here and only
//! here, because every inconsistency the contest can find starts as a wrong answer to "is this
//! payment stored at that processor?".
//!
//! The processor handles a request as: concurrency limit (429), delay, failure switch (500,
//! nothing stored), insert (200, or 422 when the correlationId is already there). So:
//! - 2xx: stored.
//! - 422: stored, *if* an earlier attempt of ours at this processor may have stored it (then
//!   this is our own payment coming back); otherwise another request with the same
//!   correlationId got there first: a client duplicate, which we must not count twice.
//! - 429, 5xx, or a request that never fully left (connect or write failure): not stored;
//!   safe to send anywhere.
//! - Timeout or a broken connection after the whole request was written, or a response we
//!   cannot read: unknown. The processor may have stored it, so the payment may only go back
//!   to the same processor, with the same correlationId and `requestedAt`, until it answers.
//! - Any other 4xx: the processor refuses this request as malformed; sending it again would
//!   get the same answer. Unless an earlier attempt may have stored the payment there: this
//!   answer does not say it did not, so the outcome stays unknown and the payment stays pinned.
//!
//! A payment whose outcome is unknown is also *looked up* (`GET /payments/{id}` at the
//! processor that may hold it; [`classify_lookup`]): the processor answers at once, without its
//! delay or its failure switch, so a payment it stored is known without sending it again and
//! waiting a delay for the `422`. A `404` only says "not stored yet": an attempt may still be in
//! the processor's delay, so it never frees the payment for the other processor.

use super::client::AttemptError;

/// What an attempt tells us about the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored at the processor attempted: record it in the ledger, once.
    Stored,
    /// The processor already held this correlationId from a request that was not ours.
    Duplicate,
    /// Definitely not stored: free to try either processor.
    NotStored,
    /// May be stored: retry the same processor only.
    Unknown,
    /// The processor will never take this request.
    Refused,
}

impl Outcome {
    /// Every outcome, in [`Outcome::index`] order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Stored,
        Outcome::Duplicate,
        Outcome::NotStored,
        Outcome::Unknown,
        Outcome::Refused,
    ];

    /// Its position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::NotStored => "not_stored",
            Outcome::Unknown => "unknown",
            Outcome::Refused => "refused",
        }
    }
}

/// What a lookup (`GET /payments/{id}`) says of a payment an attempt of ours may have stored
/// at that processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Stored there (`200`): with our `requestedAt`, since every attempt of a pinned payment
    /// carries the same one. Record it, once.
    Found,
    /// Not stored there now (`404`). An attempt may still be in the processor's delay, or may
    /// never have reached it: the payment stays pinned.
    Absent,
    /// No answer, or one that says nothing (a `429` from the concurrency limit, a timeout).
    Unknown,
}

impl Lookup {
    /// Every result, in [`Lookup::index`] order.
    pub const ALL: [Lookup; 3] = [Lookup::Found, Lookup::Absent, Lookup::Unknown];

    /// Its position in [`Lookup::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::Found => "found",
            Lookup::Absent => "absent",
            Lookup::Unknown => "unknown",
        }
    }
}

/// Classifies a lookup's result.
pub fn classify_lookup(result: Result<u16, AttemptError>) -> Lookup {
    match result {
        Ok(200..=299) => Lookup::Found,
        Ok(404) => Lookup::Absent,
        Ok(_) | Err(_) => Lookup::Unknown,
    }
}

/// Classifies an attempt's result. `maybe_stored_here` says whether an earlier attempt at the
/// same processor may have stored the payment (it ended [`Outcome::Unknown`], or its pooled
/// connection died after the request was written).
pub fn classify(result: Result<u16, AttemptError>, maybe_stored_here: bool) -> Outcome {
    match result {
        Ok(200..=299) => Outcome::Stored,
        Ok(422) if maybe_stored_here => Outcome::Stored,
        Ok(422) => Outcome::Duplicate,
        Ok(429 | 500..=599) => Outcome::NotStored,
        Ok(_) if maybe_stored_here => Outcome::Unknown,
        Ok(_) => Outcome::Refused,
        Err(AttemptError::Connect(_) | AttemptError::Write(_)) => Outcome::NotStored,
        Err(AttemptError::Timeout { sent: false }) => Outcome::NotStored,
        Err(
            AttemptError::Timeout { sent: true } | AttemptError::Lost(_) | AttemptError::Protocol,
        ) => Outcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    /// Goal: each outcome class, one by one, including 422 and other refusals with and without
    /// a prior unknown.
    #[test]
    fn outcome_table() {
        let table: &[(Result<u16, AttemptError>, bool, Outcome)] = &[
            (Ok(200), false, Outcome::Stored),
            (Ok(201), false, Outcome::Stored),
            (Ok(422), true, Outcome::Stored),
            (Ok(422), false, Outcome::Duplicate),
            (Ok(429), false, Outcome::NotStored),
            (Ok(500), true, Outcome::NotStored),
            (Ok(503), false, Outcome::NotStored),
            (Ok(400), false, Outcome::Refused),
            // A refusal does not undo what an earlier attempt may have stored.
            (Ok(400), true, Outcome::Unknown),
            (Ok(404), true, Outcome::Unknown),
            (Ok(404), false, Outcome::Refused),
            (Ok(302), false, Outcome::Refused),
            (Err(AttemptError::Connect(ErrorKind::ConnectionRefused)), false, Outcome::NotStored),
            (Err(AttemptError::Write(ErrorKind::BrokenPipe)), false, Outcome::NotStored),
            (Err(AttemptError::Timeout { sent: false }), false, Outcome::NotStored),
            (Err(AttemptError::Timeout { sent: true }), false, Outcome::Unknown),
            (Err(AttemptError::Lost(ErrorKind::ConnectionReset)), false, Outcome::Unknown),
            (Err(AttemptError::Lost(ErrorKind::UnexpectedEof)), true, Outcome::Unknown),
            (Err(AttemptError::Protocol), false, Outcome::Unknown),
        ];
        for (attempt, maybe_stored_here, outcome) in table {
            assert_eq!(
                classify(*attempt, *maybe_stored_here),
                *outcome,
                "{attempt:?} {maybe_stored_here}"
            );
        }
    }

    /// Goal: a lookup's answers, one by one: 200 found, 404 absent (not stored yet, never "not
    /// stored"), and anything else, a timeout or a refusal of the concurrency limit, unknown.
    #[test]
    fn lookup_table() {
        let table: &[(Result<u16, AttemptError>, Lookup)] = &[
            (Ok(200), Lookup::Found),
            (Ok(404), Lookup::Absent),
            (Ok(429), Lookup::Unknown),
            (Ok(500), Lookup::Unknown),
            (Ok(400), Lookup::Unknown),
            (Err(AttemptError::Timeout { sent: true }), Lookup::Unknown),
            (Err(AttemptError::Timeout { sent: false }), Lookup::Unknown),
            (Err(AttemptError::Connect(ErrorKind::ConnectionRefused)), Lookup::Unknown),
            (Err(AttemptError::Lost(ErrorKind::ConnectionReset)), Lookup::Unknown),
            (Err(AttemptError::Protocol), Lookup::Unknown),
        ];
        for (result, lookup) in table {
            assert_eq!(classify_lookup(*result), *lookup, "{result:?}");
        }
    }
}
