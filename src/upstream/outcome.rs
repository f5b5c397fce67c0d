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
}
