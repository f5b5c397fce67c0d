//! Record: one event of one payment, 64 bytes with a checksum, so that a file is a plain array
//! of records, a torn tail is a short or failing last record, and nothing is ever misread.
//!
//! ```text
//! 0..4    CRC-32 (IEEE) of bytes 4..64
//! 4       format version (FORMAT_VERSION)
//! 5       kind
//! 6       processor: 0 default, 1 fallback, 255 none
//! 7       0
//! 8..12   epoch: which life of the instance wrote it (u32, little-endian)
//! 12..48  correlationId, the 36 bytes of text the client sent
//! 48..56  cents (u64, little-endian)
//! 56..64  requestedAt, ms since the epoch (i64, little-endian; 0 when none)
//! ```

use crate::{
    ledger::{Entry, Processor},
    payment::{Payment, UUID_LEN},
};

/// Bytes per record.
pub const RECORD_LEN: usize = 64;

/// The format this build writes and reads. A journal of another format is set aside, never
/// read as this one.
pub const FORMAT_VERSION: u8 = 1;

/// What happened to the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Answered 202: it must reach a processor.
    Accepted,
    /// An attempt is about to go to `processor` with `requested_at_ms`: from here on the
    /// payment may be stored there, and only there, with that `requestedAt`.
    Attempt,
    /// The attempt said "not stored": any processor may take it again.
    NotStored,
    /// Stored at `processor` with `requested_at_ms`: a ledger entry.
    Settled,
    /// Ended without a ledger entry (a client's duplicate, or refused for good).
    Closed,
    /// A purge started this generation at `requested_at_ms`: the test's clock, which a
    /// restarted instance needs to know the time left. Its payment is [`Payment::NONE`].
    Purged,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Accepted => 1,
            Kind::Attempt => 2,
            Kind::NotStored => 3,
            Kind::Settled => 4,
            Kind::Closed => 5,
            Kind::Purged => 6,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::Accepted,
            2 => Kind::Attempt,
            3 => Kind::NotStored,
            4 => Kind::Settled,
            5 => Kind::Closed,
            6 => Kind::Purged,
            _ => return None,
        })
    }
}

/// One record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// What happened.
    pub kind: Kind,
    /// The life of the instance that wrote it.
    pub epoch: u32,
    /// The payment (its correlationId text and amount).
    pub payment: Payment,
    /// The processor of an attempt or a settlement.
    pub processor: Option<Processor>,
    /// The `requestedAt` of an attempt or a settlement, ms.
    pub requested_at_ms: i64,
}

/// Why 64 bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// The checksum does not match: torn by a crash, or damaged.
    Checksum,
    /// Another format's record (its version byte).
    Format(u8),
    /// The checksum matches but a field is impossible: a writer's bug.
    Field,
}

impl Record {
    /// The ledger entry a *settled* record stands for; `None` for any other record.
    pub fn settled_entry(&self) -> Option<Entry> {
        match (self.kind, self.processor) {
            (Kind::Settled, Some(processor)) => Some(Entry {
                requested_at_ms: self.requested_at_ms,
                cents: self.payment.cents,
                processor,
            }),
            _ => None,
        }
    }

    /// Appends the record's 64 bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(FORMAT_VERSION);
        out.push(self.kind.code());
        out.push(self.processor.map_or(255, |p| p.index() as u8));
        out.push(0);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.payment.correlation_id);
        out.extend_from_slice(&self.payment.cents.to_le_bytes());
        out.extend_from_slice(&self.requested_at_ms.to_le_bytes());
        let crc = crc32fast::hash(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len() - start, RECORD_LEN);
    }

    /// Reads one record.
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Result<Record, BadRecord> {
        let crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if crc32fast::hash(&bytes[4..]) != crc {
            return Err(BadRecord::Checksum);
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(BadRecord::Format(bytes[4]));
        }
        let kind = Kind::from_code(bytes[5]).ok_or(BadRecord::Field)?;
        let processor = match bytes[6] {
            0 => Some(Processor::Default),
            1 => Some(Processor::Fallback),
            255 => None,
            _ => return Err(BadRecord::Field),
        };
        let field = |range: std::ops::Range<usize>| &bytes[range];
        let mut correlation_id = [0u8; UUID_LEN];
        correlation_id.copy_from_slice(field(12..48));
        if !correlation_id.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-') {
            return Err(BadRecord::Field);
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let epoch = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(Record {
            kind,
            epoch,
            payment: Payment { correlation_id, cents: u64_at(48) },
            processor,
            requested_at_ms: u64_at(56) as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind) -> Record {
        Record {
            kind,
            epoch: 7,
            payment: Payment {
                correlation_id: *b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3",
                cents: 1990,
            },
            processor: Some(Processor::Fallback),
            requested_at_ms: 1_752_582_896_789,
        }
    }

    /// Goal: every kind round-trips through its 64 bytes; one flipped bit anywhere is a
    /// checksum error, another version a format error, never a record read wrong.
    #[test]
    fn round_trip_and_damage() {
        let kinds = [Kind::Accepted, Kind::Attempt, Kind::NotStored, Kind::Settled, Kind::Closed];
        for kind in kinds.into_iter().chain([Kind::Purged]) {
            let mut out = Vec::new();
            record(kind).encode(&mut out);
            let bytes: [u8; RECORD_LEN] = out.as_slice().try_into().expect("64 bytes");
            assert_eq!(Record::decode(&bytes), Ok(record(kind)));
        }
        let mut out = Vec::new();
        record(Kind::Settled).encode(&mut out);
        for bit in 0..RECORD_LEN * 8 {
            let mut damaged: [u8; RECORD_LEN] = out.as_slice().try_into().expect("64 bytes");
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Record::decode(&damaged), Err(BadRecord::Checksum), "bit {bit}");
        }
        let mut other: [u8; RECORD_LEN] = out.as_slice().try_into().expect("64 bytes");
        other[4] = 0;
        let crc = crc32fast::hash(&other[4..]);
        other[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Record::decode(&other), Err(BadRecord::Format(0)));
    }
}
