//! Replay: what an instance's journal holds, read back at start (and, read-only, the peer's
//! settled payments when the peer does not answer a summary).
//!
//! Files are `core-<core>.gen-<generation>.journal` in one folder. Only the newest generation
//! counts: a purge starts a new one, and a crash during a purge leaves some cores on the old
//! one, whose records the purge wiped anyway. A payment's records are ordered by the life of
//! the instance that wrote them (the epoch) and their place in their file: within one life,
//! one core handles a payment, so its records sit in one file in the order they happened.
//!
//! Files are read a fixed buffer at a time (`READ_RECORDS_MAX` records), never whole: what a
//! replay holds grows with the payments (a map of the newest record of each, 40 bytes for one
//! done with), not with the file.
//!
//! Damage is told from a crash: a crash tears at most the tail of a file (a short record, or
//! records whose checksum fails with nothing valid after them), which replay cuts off. A record
//! that fails its checksum with valid records after it is damage: it is skipped and counted,
//! and the instance then treats its books as incomplete (summaries reaching back before its
//! start are refused, as without a journal) rather than sum them silently wrong.

use std::{
    collections::HashMap,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use super::record::{BadRecord, Kind, RECORD_LEN, Record};
use crate::{
    ledger::{Entry, Processor, ShardSummary, TimeRange},
    payment::Payment,
};

/// The name of core `core`'s file in `generation`.
pub fn file_name(core: usize, generation: u64) -> String {
    format!("core-{core}.gen-{generation}.journal")
}

/// `(core, generation)` of a journal file's name.
fn parse_name(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix("core-")?.strip_suffix(".journal")?;
    let (core, generation) = rest.split_once(".gen-")?;
    Some((core.parse().ok()?, generation.parse().ok()?))
}

/// A payment accepted and not settled: it goes back on a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The payment.
    pub payment: Payment,
    /// The processor and `requestedAt` of an attempt that may have stored it: every retry
    /// repeats exactly that, so a 422 there means stored.
    pub pin: Option<(Processor, i64)>,
}

/// What a replay found, for the start-up log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Files replayed.
    pub files: usize,
    /// Bytes in them.
    pub bytes: u64,
    /// Records read.
    pub records: u64,
    /// Bytes cut off torn tails.
    pub torn_bytes: u64,
    /// Records skipped as damaged (a failing checksum followed by valid records).
    pub damaged: u64,
    /// Files of another format, renamed aside and not read.
    pub set_aside: Vec<PathBuf>,
    /// Files of older generations, removed.
    pub removed: usize,
    /// Files of older generations that could not be removed (left there: nothing reads them).
    pub not_removed: Vec<PathBuf>,
}

/// An instance's journal, replayed.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// The current generation (0 when the folder was empty).
    pub generation: u64,
    /// The epoch of the life about to start: one more than any record's.
    pub epoch: u32,
    /// Every settled payment: the ledger.
    pub entries: Vec<Entry>,
    /// Every payment accepted and not settled.
    pub pending: Vec<Pending>,
    /// When the purge that started this generation happened: the test's start.
    pub test_started_ms: Option<i64>,
    /// What was found on the way.
    pub findings: Findings,
}

impl Replayed {
    /// Whether the books are whole: no record was skipped as damaged and no file set aside.
    pub fn whole(&self) -> bool {
        self.findings.damaged == 0 && self.findings.set_aside.is_empty()
    }
}

/// The newest generation in `dir` by the files' names alone, 0 when there is none: where a
/// purge must start past when the files could not be read.
pub fn newest_generation(dir: &Path) -> io::Result<u64> {
    let (current, _) = scan(dir)?;
    Ok(current.first().map_or(0, |(_, generation, _)| *generation))
}

/// A journal file: its core, its generation, its path.
type JournalFile = (usize, u64, PathBuf);

/// The files of `dir`'s newest generation, and the paths of older ones.
fn scan(dir: &Path) -> io::Result<(Vec<JournalFile>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((core, generation)) = parse_name(name) {
            files.push((core, generation, path));
        }
    }
    let newest = files.iter().map(|(_, g, _)| *g).max().unwrap_or(0);
    let (current, older): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.1 == newest);
    Ok((current, older.into_iter().map(|(_, _, path)| path).collect()))
}

/// Records read from a file at a time: 64 KiB, so that a replay holds a fixed buffer however
/// large the file (`JOURNAL_BYTES_MAX` is 64 MiB a core), not the file.
const READ_RECORDS_MAX: usize = 1024;

/// Hands each valid record of one file, in order, to `visit` with its place among them; cuts
/// the torn tail (when `repair`), counts damage. Reads [`READ_RECORDS_MAX`] records at a time.
///
/// A crash tears at most the tail: the records after the last valid one (and a short last
/// piece). Invalid records with valid ones after them are damage. A file whose first record is
/// of another format is set aside (renamed, when `repair`) and not read.
fn read_records(
    path: &Path,
    repair: bool,
    findings: &mut Findings,
    mut visit: impl FnMut(usize, Record),
) -> io::Result<()> {
    // Read up to the length it has now: a live peer may append meanwhile, and what it appends
    // is not this reading's business.
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut file = file.take(len);
    let mut buf = vec![0u8; READ_RECORDS_MAX * RECORD_LEN];
    let (mut bytes, mut valid_bytes, mut invalid_run, mut place) = (0u64, 0u64, 0u64, 0usize);
    let mut filled = 0;
    loop {
        let n = file.read(&mut buf[filled..])?;
        filled += n;
        let whole = filled - filled % RECORD_LEN;
        for chunk in buf[..whole].chunks_exact(RECORD_LEN) {
            let at = bytes;
            bytes += RECORD_LEN as u64;
            let chunk: &[u8; RECORD_LEN] = chunk.try_into().expect("chunks_exact gives 64 bytes");
            match Record::decode(chunk) {
                Err(BadRecord::Format(version)) if at == 0 => {
                    let aside = path.with_extension(format!("format-{version}.old"));
                    if repair {
                        fs::rename(path, &aside)?;
                    }
                    findings.files += 1;
                    findings.set_aside.push(aside);
                    return Ok(());
                }
                Err(_) => invalid_run += 1,
                Ok(record) => {
                    findings.damaged += invalid_run;
                    invalid_run = 0;
                    valid_bytes = bytes;
                    visit(place, record);
                    place += 1;
                }
            }
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
        if n == 0 {
            break;
        }
    }
    let total = bytes + filled as u64;
    if total > valid_bytes && repair {
        fs::OpenOptions::new().write(true).open(path)?.set_len(valid_bytes)?;
    }
    findings.files += 1;
    findings.bytes += total;
    findings.torn_bytes += total - valid_bytes;
    findings.records += place as u64;
    Ok(())
}

/// Replays the instance's journal in `dir`: cuts torn tails, sets aside other formats,
/// removes older generations, and rebuilds the ledger and the pending payments.
pub fn replay(dir: &Path) -> io::Result<Replayed> {
    fs::create_dir_all(dir)?;
    let (current, older) = scan(dir)?;
    let mut replayed = Replayed::default();
    for path in &older {
        // An older generation is done with: one that cannot be removed stays, and is named.
        match fs::remove_file(path) {
            Ok(()) => replayed.findings.removed += 1,
            Err(_) => replayed.findings.not_removed.push(path.clone()),
        }
    }
    replayed.generation = current.first().map_or(0, |f| f.1);
    let mut last = Newest::default();
    let mut epoch_max = None;
    for (_, _, path) in &current {
        read_records(path, true, &mut replayed.findings, |place, record| {
            epoch_max = epoch_max.max(Some(record.epoch));
            if record.kind == Kind::Purged {
                replayed.test_started_ms =
                    replayed.test_started_ms.max(Some(record.requested_at_ms));
                return;
            }
            if let Some(entry) = record.settled_entry() {
                replayed.entries.push(entry);
            }
            last.see(place, record);
        })?;
    }
    replayed.epoch = epoch_max.map_or(0, |e: u32| e.saturating_add(1));
    replayed.pending = last.open().filter_map(|(_, record)| pending(record)).collect();
    Ok(replayed)
}

/// Where a record sits in the journal's order: the life that wrote it, then its place in its
/// file. Within one life one core handles a payment, so its records sit in one file in order.
type At = (u32, usize);

/// The newest record of each payment so far, by [`At`]: the whole record while the payment is
/// open (it says what is left to do), only where it sat once it is settled or closed. A replay
/// holds this for every payment of the generation, so a done one costs 40 bytes, not 100.
#[derive(Debug, Default)]
struct Newest {
    open: HashMap<u128, (At, Record)>,
    done: HashMap<u128, At>,
}

impl Newest {
    /// Takes `record`, read at `place` in its file, if it is its payment's newest so far.
    fn see(&mut self, place: usize, record: Record) {
        let key = record.payment.id_key();
        let at = (record.epoch, place);
        let seen = self.open.get(&key).map(|(at, _)| *at).or_else(|| self.done.get(&key).copied());
        if seen.is_some_and(|seen| seen >= at) {
            return;
        }
        if matches!(record.kind, Kind::Settled | Kind::Closed) {
            self.open.remove(&key);
            self.done.insert(key, at);
        } else {
            self.done.remove(&key);
            self.open.insert(key, (at, record));
        }
    }

    /// The open payments' newest records, with where each sat.
    fn open(self) -> impl Iterator<Item = (At, Record)> {
        self.open.into_values()
    }
}

/// The work left for a payment whose last record is `record`.
fn pending(record: Record) -> Option<Pending> {
    let pin = match record.kind {
        Kind::Settled | Kind::Closed | Kind::Purged => return None,
        Kind::Accepted | Kind::NotStored => None,
        Kind::Attempt => record.processor.map(|p| (p, record.requested_at_ms)),
    };
    Some(Pending { payment: record.payment, pin })
}

/// The peer's books, read from its journal while the peer does not answer a summary.
#[derive(Clone, Debug, Default)]
pub struct PeerBooks {
    /// Its settled payments over the range.
    pub settled: ShardSummary,
    /// The payments whose last record is an attempt with a `requestedAt` in the range: sent
    /// when the peer died, their outcome is the processor's to tell (a lookup).
    pub in_flight: Vec<Pending>,
}

/// The books of the journal in `dir` over `range`, read without changing anything (the peer's,
/// while the peer does not answer): what its ledger holds, but for the settlements of its last
/// instants that never reached its file; those are among `in_flight`, with every attempt the
/// peer had sent and not heard back from.
pub fn peer_books(dir: &Path, range: TimeRange) -> io::Result<PeerBooks> {
    let (current, _) = scan(dir)?;
    let mut findings = Findings::default();
    let mut books = PeerBooks::default();
    // Read twice, in fixed memory: first the settled payments and the payments with an attempt
    // in the range, then the last record of each of those: only they can be in flight with a
    // `requestedAt` a summary over the range counts.
    let mut last: HashMap<u128, (u32, usize, Record)> = HashMap::new();
    for (_, _, path) in &current {
        read_records(path, false, &mut findings, |_, record| {
            if let Some(entry) = record.settled_entry()
                && range.contains(entry.requested_at_ms)
            {
                books.settled.count(entry);
            }
            if record.kind == Kind::Attempt && range.contains(record.requested_at_ms) {
                last.insert(record.payment.id_key(), (0, 0, record));
            }
        })?;
    }
    if findings.damaged > 0 || !findings.set_aside.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the peer's journal is damaged"));
    }
    for (_, _, path) in &current {
        read_records(path, false, &mut Findings::default(), |place, record| {
            if let Some(newest) = last.get_mut(&record.payment.id_key())
                && (record.epoch, place) >= (newest.0, newest.1)
            {
                *newest = (record.epoch, place, record);
            }
        })?;
    }
    books.in_flight = last
        .into_values()
        .filter(|(_, _, record)| range.contains(record.requested_at_ms))
        .filter_map(|(_, _, record)| pending(record).filter(|work| work.pin.is_some()))
        .collect();
    Ok(books)
}

/// The last record of each payment one file leaves open (neither settled nor closed), in the
/// order of the file: what a new generation must start with, so that a purge forgets no
/// payment still queued or in flight (`writer::Journal::start_generation`). Read without
/// changing the file.
pub fn open_records(path: &Path) -> io::Result<Vec<Record>> {
    let mut last = Newest::default();
    read_records(path, false, &mut Findings::default(), |place, record| {
        if record.kind != Kind::Purged {
            last.see(place, record);
        }
    })?;
    let mut open: Vec<(At, Record)> =
        last.open().filter(|(_, record)| pending(*record).is_some()).collect();
    open.sort_unstable_by_key(|(at, _)| *at);
    Ok(open.into_iter().map(|(_, record)| record).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Totals;
    use crate::payment::UUID_LEN;

    /// A fresh folder under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("payrelay-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("a temporary folder");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn payment(i: u8) -> Payment {
        let mut correlation_id = *b"00000000-7d26-4d9d-aa19-4dc1c7cf60b3";
        correlation_id[UUID_LEN - 1] = b"0123456789"[usize::from(i % 10)];
        correlation_id[0] = b"0123456789"[usize::from(i / 10)];
        Payment { correlation_id, cents: 100 + u64::from(i) }
    }

    fn record(kind: Kind, epoch: u32, i: u8, processor: Option<Processor>, at_ms: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let record = Record { kind, epoch, payment: payment(i), processor, requested_at_ms: at_ms };
        record.encode(&mut out);
        out
    }

    fn write(dir: &Path, core: usize, generation: u64, records: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(file_name(core, generation));
        fs::write(&path, records.concat()).expect("a journal file");
        path
    }

    const D: Option<Processor> = Some(Processor::Default);
    const F: Option<Processor> = Some(Processor::Fallback);

    /// Goal: the books come back as the records say: settled payments are ledger entries,
    /// accepted ones pending, pinned to their last attempt when it may have stored them, free
    /// again after a "not stored"; a payment's later life (a new epoch, on another core's file)
    /// wins over its earlier one. Method: files written by hand.
    #[test]
    fn replay_rebuilds_the_books() {
        let dir = TempDir::new("replay-books");
        write(
            &dir.0,
            0,
            3,
            &[
                record(Kind::Accepted, 0, 1, None, 0),
                record(Kind::Attempt, 0, 1, D, 1_000),
                record(Kind::Settled, 0, 1, D, 1_000),
                record(Kind::Accepted, 0, 2, None, 0),
                record(Kind::Attempt, 0, 2, F, 2_000),
                record(Kind::Accepted, 0, 3, None, 0),
                record(Kind::Attempt, 0, 3, D, 3_000),
                record(Kind::NotStored, 0, 3, D, 3_000),
                record(Kind::Accepted, 0, 4, None, 0),
                record(Kind::Accepted, 0, 5, None, 0),
                record(Kind::Attempt, 0, 5, D, 5_000),
            ],
        );
        // The next life took payment 5 over on core 1 and settled it there.
        write(
            &dir.0,
            1,
            3,
            &[
                record(Kind::Attempt, 1, 5, D, 5_000),
                record(Kind::Settled, 1, 5, D, 5_000),
                record(Kind::Accepted, 1, 6, None, 0),
                record(Kind::Closed, 1, 6, D, 6_000),
            ],
        );
        let replayed = replay(&dir.0).expect("replays");
        assert_eq!((replayed.generation, replayed.epoch), (3, 2));
        assert!(replayed.whole());
        let mut entries = replayed.entries.clone();
        entries.sort_by_key(|e| e.requested_at_ms);
        let entry = |ms, cents, p: Option<Processor>| Entry {
            requested_at_ms: ms,
            cents,
            processor: p.expect("a processor"),
        };
        assert_eq!(entries, [entry(1_000, 101, D), entry(5_000, 105, D)]);
        let mut pending = replayed.pending.clone();
        pending.sort_by_key(|p| p.payment.cents);
        let pin = |p: Option<Processor>, ms| p.map(|p| (p, ms));
        assert_eq!(
            pending,
            [
                Pending { payment: payment(2), pin: pin(F, 2_000) },
                Pending { payment: payment(3), pin: None },
                Pending { payment: payment(4), pin: None },
            ]
        );
    }

    /// Goal: the peer's books read while it is down: its settled payments over the range, and
    /// the payments whose last record is an attempt with a `requestedAt` in the range (in
    /// flight when it died: a lookup's business), not those an attempt left and a later record
    /// settled, closed or freed, nor attempts outside the range; the files are left as they are.
    /// Method: files written by hand, two lives of the instance.
    #[test]
    fn peer_books_tell_settled_and_in_flight() {
        let dir = TempDir::new("replay-peer-books");
        write(
            &dir.0,
            0,
            1,
            &[
                record(Kind::Accepted, 0, 1, None, 0),
                record(Kind::Attempt, 0, 1, D, 1_000),
                record(Kind::Settled, 0, 1, D, 1_000),
                record(Kind::Accepted, 0, 2, None, 0),
                record(Kind::Attempt, 0, 2, F, 2_000),
                record(Kind::Accepted, 0, 3, None, 0),
                record(Kind::Attempt, 0, 3, D, 3_000),
                record(Kind::NotStored, 0, 3, D, 3_000),
                record(Kind::Accepted, 0, 4, None, 0),
                record(Kind::Attempt, 0, 4, D, 4_000),
                record(Kind::Accepted, 0, 5, None, 0),
                record(Kind::Attempt, 0, 5, D, 50_000),
                record(Kind::Accepted, 0, 6, None, 0),
                record(Kind::Attempt, 0, 6, D, 6_000),
            ],
        );
        // The next life settled payment 4 on another core, and sent 6 elsewhere.
        write(
            &dir.0,
            1,
            1,
            &[
                record(Kind::Attempt, 1, 4, D, 4_000),
                record(Kind::Settled, 1, 4, D, 4_000),
                record(Kind::NotStored, 1, 6, D, 6_000),
                record(Kind::Attempt, 1, 6, F, 7_000),
            ],
        );
        let before = fs::read_dir(&dir.0).expect("the folder").count();
        let books = peer_books(&dir.0, TimeRange { from_ms: 0, to_ms: 10_000 }).expect("reads");
        assert_eq!(books.settled.get(Processor::Default), Totals { count: 2, cents: 101 + 104 });
        let mut in_flight: Vec<(u64, Option<(Processor, i64)>)> =
            books.in_flight.iter().map(|p| (p.payment.cents, p.pin)).collect();
        in_flight.sort_unstable_by_key(|(cents, _)| *cents);
        let pin = |p: Option<Processor>, ms| p.map(|p| (p, ms));
        assert_eq!(in_flight, [(102, pin(F, 2_000)), (106, pin(F, 7_000))]);
        assert_eq!(fs::read_dir(&dir.0).expect("the folder").count(), before, "nothing changed");
    }

    /// Goal: a crash's torn tail (a short record, a last record failing its checksum) is cut
    /// off the file and the rest read; damage before valid records is skipped and counted, and
    /// the books are then not whole. Method: files cut and damaged by hand.
    #[test]
    fn torn_tails_are_cut_and_damage_is_told() {
        let dir = TempDir::new("replay-torn");
        let mut torn = record(Kind::Settled, 0, 2, D, 2_000);
        torn[20] ^= 1;
        let short = record(Kind::Accepted, 0, 3, None, 0)[..30].to_vec();
        let path = write(
            &dir.0,
            0,
            0,
            &[
                record(Kind::Accepted, 0, 1, None, 0),
                record(Kind::Settled, 0, 1, D, 1_000),
                torn,
                short,
            ],
        );
        let replayed = replay(&dir.0).expect("replays");
        assert_eq!(replayed.findings.torn_bytes, 64 + 30);
        assert_eq!(fs::metadata(&path).expect("the file").len(), 128, "cut to its valid records");
        assert!(replayed.whole(), "a torn tail is a crash, not damage");
        assert_eq!(replayed.entries.len(), 1);

        let mut damaged = record(Kind::Attempt, 0, 4, D, 4_000);
        damaged[50] ^= 0x10;
        write(
            &dir.0,
            1,
            0,
            &[
                record(Kind::Accepted, 0, 4, None, 0),
                damaged,
                record(Kind::Accepted, 0, 5, None, 0),
            ],
        );
        let replayed = replay(&dir.0).expect("replays");
        assert_eq!(replayed.findings.damaged, 1);
        assert!(!replayed.whole());
        assert_eq!(replayed.pending.len(), 2, "payments 4 and 5, still to forward");
    }

    /// Goal: a file of another format is set aside, never read as this one; older generations
    /// are removed; the peer's settled totals are read without changing anything; a folder
    /// that cannot be made is an error, not a panic. Method: files written by hand.
    #[test]
    fn formats_generations_and_unwritable_folders() {
        let dir = TempDir::new("replay-formats");
        let mut old_format = record(Kind::Accepted, 0, 1, None, 0);
        old_format[4] = 0;
        let crc = crc32fast::hash(&old_format[4..]);
        old_format[..4].copy_from_slice(&crc.to_le_bytes());
        write(&dir.0, 0, 2, &[old_format]);
        let older = write(&dir.0, 0, 1, &[record(Kind::Settled, 0, 9, D, 9_000)]);
        write(&dir.0, 1, 2, &[record(Kind::Settled, 0, 2, F, 2_000)]);
        let range = TimeRange { from_ms: 0, to_ms: 10_000 };
        let peer = peer_books(&dir.0, range);
        assert!(peer.is_err(), "another format in the peer's journal is no total");
        let replayed = replay(&dir.0).expect("replays");
        assert_eq!(replayed.findings.set_aside.len(), 1);
        assert!(replayed.findings.set_aside[0].exists(), "renamed, not deleted");
        assert!(!older.exists(), "an older generation is removed");
        assert!(!replayed.whole());
        assert_eq!(replayed.entries.len(), 1);
        let peer = peer_books(&dir.0, range).expect("the format file is gone now");
        assert_eq!(peer.settled.get(Processor::Fallback), Totals { count: 1, cents: 102 });

        let not_a_folder = dir.0.join("file");
        fs::write(&not_a_folder, b"x").expect("a file");
        assert!(replay(&not_a_folder.join("journal")).is_err());
    }
}
