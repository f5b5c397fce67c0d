//! Writer: one core's journal file, appended in batches. Records appended during one turn of
//! the core's event loop go out in one write, issued by the core's flusher task; whoever must
//! not go on before its record is written (a `202`, an attempt) awaits [`Journal::durable`].
//! The flusher runs after the tasks that woke it, so the cost is one write per turn of the loop
//! at most, however many payments the turn carried.
//!
//! # Why a plain `pwrite`, on the core's thread
//!
//! The write is a `pwrite(2)` into the page cache, made by the core's own thread, not an
//! io_uring write. io_uring cannot do a buffered write to a file without blocking on file
//! systems that lack asynchronous buffered writes (ext4 among them, the usual Docker volume),
//! so it hands every such write to an `iou-wrk` kernel thread: a wake-up and two context
//! switches per write, and the completion comes back a loop turn later, after which the `202`
//! or the attempt waiting for it runs. Measured on ext4 (kernel 6.18), one connection posting
//! payments back to back: 67 µs of CPU a payment with the io_uring write (10 of them in the
//! worker), 32 µs with the journal off; the lab's final timeline showed the same, 25% more CPU
//! per instance. A `pwrite` of a few hundred bytes into the page cache takes microseconds and
//! waits for no disk; it can block only on the file system's own locks (a journal commit), or
//! on dirty-page throttling at write rates thousands of times ours (a payment is three records
//! of 64 bytes). The flush that does wait for the disk (`JOURNAL_FSYNC`) stays on io_uring.

use std::{
    cell::{Cell, RefCell},
    fs,
    future::Future,
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use monoio::fs::File;

use super::{
    record::{Kind, RECORD_LEN, Record},
    replay::file_name,
};
use crate::{ledger::Processor, payment::Payment};

/// When the journal asks the disk to make written records durable (`JOURNAL_FSYNC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Never: a record is acknowledged once in the page cache. Survives a crash of the process
    /// (SIGKILL, OOM, panic), not of the machine.
    Never,
    /// `fdatasync` at most this often while records are unsynced: a power loss loses at most
    /// this much of the latest records.
    Every(Duration),
    /// `fdatasync` after every write, before acknowledging: survives a power loss, at the cost
    /// of one disk flush per batch on every `202`.
    Always,
}

/// Why the journal takes no new payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It holds `JOURNAL_BYTES_MAX` bytes.
    Full,
    /// A write failed, or the file could not be opened (out of space, read-only, ...).
    Unwritable(io::ErrorKind),
}

impl Refusal {
    /// The reason a `503` gives.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "payment journal full: payment not accepted; retry later",
            Refusal::Unwritable(_) => "payment journal unwritable: payment not accepted",
        }
    }
}

/// Where this core's file is.
#[derive(Debug)]
struct Place {
    dir: PathBuf,
    core: usize,
    generation: Cell<u64>,
}

impl Place {
    fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.core, self.generation.get()))
    }
}

/// One core's journal. Owned by the core (through `Rc`, shared with its flusher task).
#[derive(Debug)]
pub struct Journal {
    /// `None`: the journal is off (`JOURNAL_DIR` empty): nothing is written or awaited.
    place: Option<Place>,
    /// The open file; `None` when it could not be opened.
    file: RefCell<Option<Rc<Handle>>>,
    /// The life of the instance, stamped on every record.
    epoch: u32,
    /// Encoded records not yet handed to a write.
    pending: RefCell<Vec<u8>>,
    /// Records appended so far; a record's sequence number is this count after it.
    appended: Cell<u64>,
    /// Records written (and synced, as [`Fsync`] says) so far.
    written: Cell<u64>,
    /// Length of the file: where the next write goes.
    offset: Cell<u64>,
    /// Writes issued, for metrics.
    writes: Cell<u64>,
    /// Set when a write or the open failed: no payment is accepted until a purge starts anew.
    failure: Cell<Option<io::ErrorKind>>,
    /// `JOURNAL_BYTES_MAX`.
    bytes_max: u64,
    fsync: Fsync,
    /// The flusher, parked while nothing is pending.
    flusher: RefCell<Option<Waker>>,
    /// Tasks waiting for their records to be written.
    waiters: RefCell<Vec<Waker>>,
}

impl Journal {
    /// A journal that records nothing (`JOURNAL_DIR` empty).
    pub fn off() -> Journal {
        Journal::with(None, None, 0, 0, u64::MAX, Fsync::Never)
    }

    /// Core `core`'s file in `dir` for `generation`, opened to append (created if missing);
    /// `epoch` is this life's. If it cannot be opened, the journal refuses every payment.
    pub fn open(
        dir: &Path,
        core: usize,
        generation: u64,
        epoch: u32,
        bytes_max: u64,
        fsync: Fsync,
    ) -> Journal {
        let place = Place { dir: dir.to_owned(), core, generation: Cell::new(generation) };
        match open_append(&place.path()) {
            Ok((file, len)) => {
                let journal = Journal::with(Some(place), Some(file), epoch, len, bytes_max, fsync);
                journal.appended.set(len / RECORD_LEN as u64);
                journal.written.set(len / RECORD_LEN as u64);
                journal
            }
            Err(e) => {
                eprintln!("payrelay: core-{core}: journal {}: {e}", place.path().display());
                let journal = Journal::with(Some(place), None, epoch, 0, bytes_max, fsync);
                journal.failure.set(Some(e.kind()));
                journal
            }
        }
    }

    fn with(
        place: Option<Place>,
        file: Option<Handle>,
        epoch: u32,
        offset: u64,
        bytes_max: u64,
        fsync: Fsync,
    ) -> Journal {
        Journal {
            place,
            file: RefCell::new(file.map(Rc::new)),
            epoch,
            pending: RefCell::new(Vec::new()),
            appended: Cell::new(0),
            written: Cell::new(0),
            offset: Cell::new(offset),
            writes: Cell::new(0),
            failure: Cell::new(None),
            bytes_max,
            fsync,
            flusher: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Whether records are kept.
    pub fn is_on(&self) -> bool {
        self.place.is_some()
    }

    /// Whether a new payment may be accepted: the journal is off, or writable and not full.
    pub fn admits(&self) -> Result<(), Refusal> {
        if let Some(kind) = self.failure.get() {
            return Err(Refusal::Unwritable(kind));
        }
        if self.bytes() >= self.bytes_max {
            return Err(Refusal::Full);
        }
        Ok(())
    }

    /// Bytes in the file and pending.
    pub fn bytes(&self) -> u64 {
        self.offset.get() + self.pending.borrow().len() as u64
    }

    /// Writes issued since start.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Whether a write failed.
    pub fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Appends a record for `payment`; returns its sequence number, for [`Journal::durable`].
    pub fn append(
        &self,
        kind: Kind,
        payment: &Payment,
        processor: Option<Processor>,
        requested_at_ms: i64,
    ) -> u64 {
        if !self.is_on() {
            return 0;
        }
        let record =
            Record { kind, epoch: self.epoch, payment: *payment, processor, requested_at_ms };
        record.encode(&mut self.pending.borrow_mut());
        self.appended.set(self.appended.get() + 1);
        if let Some(flusher) = self.flusher.borrow_mut().take() {
            flusher.wake();
        }
        self.appended.get()
    }

    /// Resolves once record `seq` is written (and synced, as `JOURNAL_FSYNC` says), or with the
    /// error that stopped the journal.
    pub fn durable(&self, seq: u64) -> Durable<'_> {
        Durable { journal: self, seq }
    }

    /// The flusher: writes what is pending, one write at a time, for as long as the core
    /// lives. Spawned once per core.
    pub async fn run(&self) {
        if !self.is_on() {
            return;
        }
        let mut batch = Vec::new();
        // Swapped with `waiters` like `batch` with `pending`, so that waking allocates nothing.
        let mut woken = Vec::new();
        let mut synced_at = Instant::now();
        let mut unsynced = false;
        loop {
            let idle = unsynced.then(|| synced_at + self.sync_interval());
            if !self.until_pending(idle).await {
                self.sync().await;
                (synced_at, unsynced) = (Instant::now(), false);
                continue;
            }
            // Swapped out, so that records appended while the flush below waits gather apart.
            std::mem::swap(&mut batch, &mut *self.pending.borrow_mut());
            let batch_end = self.appended.get();
            self.write(&batch);
            batch.clear();
            match self.fsync {
                Fsync::Always => self.sync().await,
                Fsync::Every(every) if synced_at.elapsed() >= every => {
                    self.sync().await;
                    (synced_at, unsynced) = (Instant::now(), false);
                }
                Fsync::Every(_) => unsynced = true,
                Fsync::Never => {}
            }
            if self.failure.get().is_none() {
                self.written.set(batch_end);
            }
            std::mem::swap(&mut woken, &mut *self.waiters.borrow_mut());
            for waiter in woken.drain(..) {
                waiter.wake();
            }
        }
    }

    fn sync_interval(&self) -> Duration {
        match self.fsync {
            Fsync::Every(every) => every,
            Fsync::Never | Fsync::Always => Duration::MAX,
        }
    }

    /// Waits until records are pending (`true`) or `idle_until` passes (`false`).
    async fn until_pending(&self, idle_until: Option<Instant>) -> bool {
        let pending = std::future::poll_fn(|cx| {
            if self.pending.borrow().is_empty() {
                *self.flusher.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        match idle_until {
            None => {
                pending.await;
                true
            }
            Some(at) => monoio::select! {
                _ = pending => true,
                _ = monoio::time::sleep_until(at.into()) => false,
            },
        }
    }

    /// One write of `batch` at the end of the file (see the module's doc for why it blocks).
    fn write(&self, batch: &[u8]) {
        // Borrowed, not cloned: nothing here awaits, so no purge can replace the file meanwhile.
        let file = self.file.borrow();
        let Some(handle) = file.as_deref() else { return };
        let offset = self.offset.get();
        self.writes.set(self.writes.get() + 1);
        match handle.writer.write_all_at(batch, offset) {
            Ok(()) => self.offset.set(offset + batch.len() as u64),
            Err(e) => self.fail(e),
        }
    }

    async fn sync(&self) {
        let Some(handle) = self.file.borrow().clone() else { return };
        if let Err(e) = handle.syncer.sync_data().await {
            self.fail(e);
        }
    }

    fn fail(&self, e: io::Error) {
        if self.failure.get().is_none() {
            let path = self.place.as_ref().map(Place::path).unwrap_or_default();
            eprintln!(
                "payrelay: journal {}: {e}; no payment accepted until a purge",
                path.display()
            );
        }
        self.failure.set(Some(e.kind()));
    }

    /// The current generation (0 when off).
    pub fn generation(&self) -> u64 {
        self.place.as_ref().map_or(0, |place| place.generation.get())
    }

    /// A purge at `now_ms`: a new file for `generation`, starting with the purge's time (the
    /// test's clock, for a restart); this core's older one is removed. Records pending now
    /// (payments still in flight) go to the new file. A failed journal is given a fresh start;
    /// one whose new file cannot be opened refuses payments from now on.
    pub fn start_generation(&self, generation: u64, now_ms: i64) -> io::Result<()> {
        let Some(place) = &self.place else { return Ok(()) };
        let old = place.path();
        place.generation.set(generation);
        self.offset.set(0);
        match open_append(&place.path()) {
            Ok((file, _)) => {
                self.file.replace(Some(Rc::new(file)));
                self.failure.set(None);
                self.append(Kind::Purged, &Payment::NONE, None, now_ms);
            }
            Err(e) => {
                self.file.replace(None);
                self.failure.set(Some(e.kind()));
                return Err(e);
            }
        }
        match fs::remove_file(&old) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The open file, twice: written with `pwrite` on the core's thread, flushed through
/// io_uring, since a flush waits for the disk (milliseconds the core must not spend blocked).
#[derive(Debug)]
struct Handle {
    writer: fs::File,
    /// The same open file (a `dup` of `writer`'s descriptor).
    syncer: File,
}

/// Opens `path` to append, creating it; returns the file and its length.
fn open_append(path: &Path) -> io::Result<(Handle, u64)> {
    let writer = fs::OpenOptions::new().create(true).write(true).truncate(false).open(path)?;
    let len = writer.metadata()?.len();
    let syncer = File::from_std(writer.try_clone()?)?;
    Ok((Handle { writer, syncer }, len))
}

/// The future of [`Journal::durable`].
#[derive(Debug)]
pub struct Durable<'a> {
    journal: &'a Journal,
    seq: u64,
}

impl Future for Durable<'_> {
    type Output = Result<(), io::ErrorKind>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let journal = self.journal;
        if !journal.is_on() || journal.written.get() >= self.seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(kind) = journal.failure.get() {
            return Poll::Ready(Err(kind));
        }
        journal.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::replay;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime")
    }

    fn payment(last: u8) -> Payment {
        let mut correlation_id = *b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b0";
        correlation_id[35] = last;
        Payment { correlation_id, cents: 1990 }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("payrelay-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary folder");
        dir
    }

    /// Goal: records appended in one turn go out in one write, and `durable` resolves once
    /// they are written; what is written replays; a purge starts an empty file and removes
    /// the old one. Method: a journal in a temporary folder, its flusher on a test runtime.
    #[test]
    fn batches_durability_and_generations() {
        let dir = temp_dir("journal-writer");
        runtime().block_on(async {
            let journal = Rc::new(Journal::open(&dir, 0, 0, 4, 1 << 20, Fsync::Always));
            let flusher = Rc::clone(&journal);
            monoio::spawn(async move { flusher.run().await });
            let seqs: Vec<u64> = (b'1'..=b'3')
                .map(|i| journal.append(Kind::Accepted, &payment(i), None, 0))
                .collect();
            for seq in seqs {
                assert_eq!(journal.durable(seq).await, Ok(()));
            }
            assert_eq!(journal.writes(), 1, "one turn, one write");
            let seq = journal.append(Kind::Settled, &payment(b'1'), Some(Processor::Default), 7);
            assert_eq!(journal.durable(seq).await, Ok(()));
            assert_eq!(journal.bytes(), 4 * RECORD_LEN as u64);
            let replayed = replay::replay(&dir).expect("replays");
            assert_eq!((replayed.entries.len(), replayed.pending.len(), replayed.epoch), (1, 2, 5));
            journal.start_generation(1, 42).expect("a new generation");
            assert_eq!(journal.bytes(), RECORD_LEN as u64, "the purge's record");
            let seq = journal.append(Kind::Accepted, &payment(b'4'), None, 0);
            assert_eq!(journal.durable(seq).await, Ok(()));
            let replayed = replay::replay(&dir).expect("replays");
            assert_eq!((replayed.test_started_ms, replayed.pending.len()), (Some(42), 1));
            assert!(!dir.join(replay::file_name(0, 0)).exists());
            assert!(dir.join(replay::file_name(0, 1)).exists());
        });
        let _ = fs::remove_dir_all(&dir);
    }

    /// Goal: a journal that cannot open its file refuses payments with a reason, and one at
    /// its size limit refuses them as full; an off journal admits everything and waits for
    /// nothing. Method: a folder that is a file; a limit of one record.
    #[test]
    fn refusals() {
        let dir = temp_dir("journal-refusals");
        let not_a_folder = dir.join("file");
        fs::write(&not_a_folder, b"x").expect("a file");
        let broken = Journal::open(&not_a_folder, 0, 0, 0, 1 << 20, Fsync::Never);
        assert!(matches!(broken.admits(), Err(Refusal::Unwritable(_))));
        runtime().block_on(async {
            let full = Journal::open(&dir, 0, 0, 0, RECORD_LEN as u64, Fsync::Never);
            assert_eq!(full.admits(), Ok(()));
            full.append(Kind::Accepted, &payment(b'1'), None, 0);
            assert_eq!(full.admits(), Err(Refusal::Full));
            let off = Journal::off();
            let seq = off.append(Kind::Accepted, &payment(b'1'), None, 0);
            assert_eq!(off.durable(seq).await, Ok(()));
            assert_eq!(off.admits(), Ok(()));
        });
        let _ = fs::remove_dir_all(&dir);
    }
}
