//! Ledger: each core's append-only shard of settled payments, and the summary they reduce to.
//!
//! A shard is owned by its core and touched by nothing else; the summary of the deployment is
//! the merge of every shard's [`ShardSummary`] (see `summary`). The shard keeps running totals
//! beside the log and checks them against a full scan, so a bookkeeping bug shows up as an
//! assertion rather than as an inconsistency the contest finds for us.

/// Which processor stored a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Processor {
    /// The cheaper one.
    Default = 0,
    /// The dearer one.
    Fallback = 1,
}

impl Processor {
    /// Both, in index order.
    pub const ALL: [Processor; 2] = [Processor::Default, Processor::Fallback];

    /// Index into per-processor arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The other processor.
    pub fn other(self) -> Processor {
        match self {
            Processor::Default => Processor::Fallback,
            Processor::Fallback => Processor::Default,
        }
    }

    /// The name the contest's JSON uses.
    pub fn name(self) -> &'static str {
        match self {
            Processor::Default => "default",
            Processor::Fallback => "fallback",
        }
    }
}

/// Closed interval of `requestedAt` instants, in ms since the epoch; the contest's bounds are
/// both inclusive (SQL `BETWEEN`). A missing bound is the far end of `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant included.
    pub from_ms: i64,
    /// Last instant included.
    pub to_ms: i64,
}

impl TimeRange {
    /// Every instant.
    pub const ALL: TimeRange = TimeRange { from_ms: i64::MIN, to_ms: i64::MAX };

    /// Whether `ms` lies in the range, bounds included.
    pub fn contains(self, ms: i64) -> bool {
        self.from_ms <= ms && ms <= self.to_ms
    }
}

/// Count and amount of payments stored at one processor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payments.
    pub count: u64,
    /// Their amounts, in cents.
    pub cents: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.count += other.count;
        self.cents += other.cents;
    }
}

/// Per-processor totals over one time range, for one shard or any merge of shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardSummary {
    /// Indexed by [`Processor::index`].
    pub by_processor: [Totals; 2],
}

impl ShardSummary {
    /// Counts one settlement in its processor's totals.
    pub fn count(&mut self, entry: Entry) {
        self.by_processor[entry.processor.index()].add(Totals { count: 1, cents: entry.cents });
    }

    /// Appends `{"default":<v>,"fallback":<v>}`, each value written by `write_totals`: the
    /// shape of the contest's summary and of the peer link's answer.
    pub fn write_by_processor(
        &self,
        out: &mut Vec<u8>,
        write_totals: impl Fn(&mut Vec<u8>, Totals),
    ) {
        out.push(b'{');
        for (i, processor) in Processor::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(processor.name().as_bytes());
            out.extend_from_slice(b"\":");
            write_totals(out, self.get(processor));
        }
        out.push(b'}');
    }

    /// The reduction step: associative and commutative, with `default()` as identity.
    pub fn merge(&mut self, other: &ShardSummary) {
        for (mine, theirs) in self.by_processor.iter_mut().zip(&other.by_processor) {
            mine.add(*theirs);
        }
    }

    /// Totals of one processor.
    pub fn get(&self, processor: Processor) -> Totals {
        self.by_processor[processor.index()]
    }
}

/// One settled payment, as the processor stored it. 24 bytes: a contest's ~90k payments fill
/// about 2 MB across all shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The `requestedAt` we sent (and the processor stored), ms since the epoch.
    pub requested_at_ms: i64,
    /// Amount in cents.
    pub cents: u64,
    /// Where it is stored.
    pub processor: Processor,
}

/// A core's shard: the log of what it settled, append-only until a purge.
#[derive(Debug, Default)]
pub struct Shard {
    /// Every settlement, in the order this core learned of it (not sorted by time).
    entries: Vec<Entry>,
    /// Running totals over `entries`, checked against a scan on every unbounded summary.
    totals: ShardSummary,
}

impl Shard {
    /// Records one settlement. Each payment must be recorded exactly once (see `dispatch`).
    pub fn record(&mut self, entry: Entry) {
        self.entries.push(entry);
        let totals = &mut self.totals.by_processor[entry.processor.index()];
        totals.count += 1;
        totals.cents += entry.cents;
    }

    /// Totals of the payments whose `requestedAt` lies in `range`. A scan: summaries are rare
    /// (one every few seconds) while records are hot, so the log stays unsorted and cheap.
    pub fn summary(&self, range: TimeRange) -> ShardSummary {
        let mut summary = ShardSummary::default();
        for entry in self.entries.iter().filter(|e| range.contains(e.requested_at_ms)) {
            summary.count(*entry);
        }
        if range == TimeRange::ALL {
            assert_eq!(summary, self.totals, "ledger running totals disagree with the log");
        }
        summary
    }

    /// Forgets everything (`POST /purge-payments`).
    pub fn purge(&mut self) {
        self.entries.clear();
        self.totals = ShardSummary::default();
    }

    /// Payments recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: i64, cents: u64, processor: Processor) -> Entry {
        Entry { requested_at_ms: ms, cents, processor }
    }

    /// Goal: range bounds are inclusive at both ends, to the millisecond.
    #[test]
    fn bounds_are_inclusive() {
        let mut shard = Shard::default();
        for ms in [999, 1000, 1500, 2000, 2001] {
            shard.record(entry(ms, 1990, Processor::Default));
        }
        shard.record(entry(1000, 2005, Processor::Fallback));
        let s = shard.summary(TimeRange { from_ms: 1000, to_ms: 2000 });
        assert_eq!(s.get(Processor::Default), Totals { count: 3, cents: 3 * 1990 });
        assert_eq!(s.get(Processor::Fallback), Totals { count: 1, cents: 2005 });
        assert_eq!(shard.summary(TimeRange::ALL).get(Processor::Default).count, 5);
        shard.purge();
        assert!(shard.is_empty());
        assert_eq!(shard.summary(TimeRange::ALL), ShardSummary::default());
    }

    /// Goal: merge is associative and commutative with the empty summary as identity, so
    /// the order in which cores and the peer answer cannot change a total.
    #[test]
    fn merge_laws() {
        let shards: Vec<ShardSummary> = (0..5u64)
            .map(|i| ShardSummary {
                by_processor: [
                    Totals { count: i, cents: i * 1990 },
                    Totals { count: 2 * i + 1, cents: 7 + i },
                ],
            })
            .collect();
        let fold = |order: &[usize]| {
            let mut acc = ShardSummary::default();
            for &i in order {
                acc.merge(&shards[i]);
            }
            acc
        };
        let forward = fold(&[0, 1, 2, 3, 4]);
        assert_eq!(forward, fold(&[4, 2, 0, 3, 1]));
        let (mut left, mut right) = (fold(&[0, 1]), fold(&[2, 3, 4]));
        left.merge(&right);
        assert_eq!(left, forward);
        right.merge(&ShardSummary::default());
        assert_eq!(right, fold(&[2, 3, 4]));
    }
}
