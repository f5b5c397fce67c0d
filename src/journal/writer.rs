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
    replay::{self, file_name},
};
use crate::{ledger::Processor, log, payment::Payment};

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

/// Pause between two tries of a write that failed (out of space, an I/O error): the failed
/// batch is kept and written again at the same place, so that no record is lost and nothing is
/// left half-written before it; a second is soon enough for space an operator frees, and no
/// busy loop against a full disk.
const WRITE_RETRY_PAUSE: Duration = Duration::from_secs(1);

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
    /// Set while the last write (or the open) failed: no payment is accepted until a write
    /// succeeds again (the failed batch is retried) or a purge starts anew.
    failure: Cell<Option<io::ErrorKind>>,
    /// Set when the files of this generation could not be read at start: no payment is
    /// accepted until a purge starts a generation past them.
    unreadable: Cell<Option<io::ErrorKind>>,
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
                log::error!("journal {}: {e}", place.path().display());
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
            unreadable: Cell::new(None),
            bytes_max,
            fsync,
            flusher: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Refuses payments from now on, for `kind`, until a purge starts a new generation: the
    /// files this journal continues could not be read at start.
    pub fn refuse(&self, kind: io::ErrorKind) {
        self.unreadable.set(Some(kind));
    }

    /// Whether records are kept.
    pub fn is_on(&self) -> bool {
        self.place.is_some()
    }

    /// Whether a new payment may be accepted: the journal is off, or writable and not full.
    pub fn admits(&self) -> Result<(), Refusal> {
        if let Some(kind) = self.failure.get().or(self.unreadable.get()) {
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

    /// Whether a write failed (or the files could not be read at start).
    pub fn failed(&self) -> bool {
        self.failure.get().or(self.unreadable.get()).is_some()
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
    /// error that stopped the journal: for a `202`, which cannot wait long.
    pub fn durable(&self, seq: u64) -> Durable<'_> {
        Durable { journal: self, seq }
    }

    /// Resolves once record `seq` is written (and synced, as `JOURNAL_FSYNC` says), however long
    /// a failing journal takes to write it again (or a purge moves it to a new file): for an
    /// attempt, which must not leave unrecorded.
    pub async fn durable_eventually(&self, seq: u64) {
        std::future::poll_fn(|cx| {
            if !self.is_on() || self.written.get() >= seq {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The flusher: writes what is pending, one write at a time, for as long as the core
    /// lives. Spawned once per core. A write that fails keeps its batch, ahead of what is
    /// appended meanwhile, and tries again after `WRITE_RETRY_PAUSE` at the same place.
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
            let generation = self.generation();
            if !self.write(&batch) {
                self.keep_unwritten(&mut batch);
                self.wake_waiters(&mut woken);
                monoio::time::sleep(WRITE_RETRY_PAUSE).await;
                continue;
            }
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
            // A purge during the sync replaced the file: these records are acknowledged by the
            // new file's flush, into which the purge carried what is still open.
            if self.failure.get().is_none() && self.generation() == generation {
                self.written.set(batch_end);
            }
            self.wake_waiters(&mut woken);
        }
    }

    /// Puts a batch that could not be written back ahead of what was appended since, to go
    /// again in the next write at the same offset.
    fn keep_unwritten(&self, batch: &mut Vec<u8>) {
        let mut pending = self.pending.borrow_mut();
        batch.extend_from_slice(&pending);
        std::mem::swap(batch, &mut *pending);
        batch.clear();
    }

    /// Wakes every task waiting for a write, through `woken` (kept between calls).
    fn wake_waiters(&self, woken: &mut Vec<Waker>) {
        std::mem::swap(woken, &mut *self.waiters.borrow_mut());
        for waiter in woken.drain(..) {
            waiter.wake();
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

    /// One write of `batch` at the end of the file (see the module's doc for why it blocks);
    /// whether it was written. A write that succeeds after failures ends them.
    fn write(&self, batch: &[u8]) -> bool {
        // Borrowed, not cloned: nothing here awaits, so no purge can replace the file meanwhile.
        let file = self.file.borrow();
        let Some(handle) = file.as_deref() else { return false };
        let offset = self.offset.get();
        self.writes.set(self.writes.get() + 1);
        match handle.writer.write_all_at(batch, offset) {
            Ok(()) => {
                self.offset.set(offset + batch.len() as u64);
                if self.failure.take().is_some() {
                    log::info!("journal {}: written again", self.path().display());
                }
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
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
            log::error!(
                "journal {}: {e}; no payment accepted until it is written again \
                 (retried every {} ms) or a purge",
                self.path().display(),
                WRITE_RETRY_PAUSE.as_millis()
            );
        }
        self.failure.set(Some(e.kind()));
    }

    /// The current file's path (empty when off).
    fn path(&self) -> PathBuf {
        self.place.as_ref().map(Place::path).unwrap_or_default()
    }

    /// The current generation (0 when off).
    pub fn generation(&self) -> u64 {
        self.place.as_ref().map_or(0, |place| place.generation.get())
    }

    /// A purge at `now_ms`: a new file for `generation`, starting with the newest record of
    /// every payment the old one leaves open (queued or in flight: a purge empties the books,
    /// not the work), then the purge's time (the test's clock, for a restart); the old file is
    /// removed once that is written (and synced, as `JOURNAL_FSYNC` says). Records pending now
    /// go to the new file after them. A failed journal is given a fresh start; one whose new
    /// file cannot be made keeps the old file and refuses payments from now on.
    pub fn start_generation(&self, generation: u64, now_ms: i64) -> io::Result<()> {
        let Some(place) = &self.place else { return Ok(()) };
        let old = place.path();
        let (carried, keep_old) = match replay::open_records(&old) {
            Ok(records) => (records, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => {
                // Nothing of it was replayed either (the start refused payments for it): its
                // open payments are not this life's to carry, and the file stays for an
                // operator.
                log::warn!("journal {}: {e}; left where it is", old.display());
                (Vec::new(), true)
            }
        };
        let mut head = Vec::with_capacity((carried.len() + 1) * RECORD_LEN);
        for record in &carried {
            record.encode(&mut head);
        }
        let purged = Record {
            kind: Kind::Purged,
            epoch: self.epoch,
            payment: Payment::NONE,
            processor: None,
            requested_at_ms: now_ms,
        };
        purged.encode(&mut head);
        place.generation.set(generation);
        self.offset.set(0);
        let started = create_fresh(&place.path()).and_then(|handle| {
            handle.writer.write_all_at(&head, 0)?;
            if self.fsync != Fsync::Never {
                handle.writer.sync_data()?;
            }
            Ok(handle)
        });
        match started {
            Ok(handle) => {
                self.file.replace(Some(Rc::new(handle)));
                self.offset.set(head.len() as u64);
                self.failure.set(None);
                self.unreadable.set(None);
                // Every record handed to the old file is in the new one now, or belongs to a
                // payment done with: a flush of the old file that the purge overtook (its sync
                // awaited) acknowledges nothing (`run`), this does.
                let pending_records = (self.pending.borrow().len() / RECORD_LEN) as u64;
                let handed = self.appended.get() - pending_records;
                self.written.set(self.written.get().max(handed));
            }
            Err(e) => {
                self.file.replace(None);
                self.failure.set(Some(e.kind()));
                return Err(e);
            }
        }
        if keep_old {
            return Ok(());
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

/// Creates `path` empty, for a new generation: a file left there by an earlier life (a
/// generation number used again) must not leave old records behind the new ones.
fn create_fresh(path: &Path) -> io::Result<Handle> {
    let writer = fs::OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let syncer = File::from_std(writer.try_clone()?)?;
    Ok(Handle { writer, syncer })
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
    /// they are written; what is written replays; a purge starts a new file with the payments
    /// the old one leaves open and no settled one, and removes the old one. Method: a journal in
    /// a temporary folder, its flusher on a test runtime.
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
            let carried = 2 * RECORD_LEN as u64;
            assert_eq!(journal.bytes(), carried + RECORD_LEN as u64, "payments 2 and 3, the purge");
            let seq = journal.append(Kind::Accepted, &payment(b'4'), None, 0);
            assert_eq!(journal.durable(seq).await, Ok(()));
            let replayed = replay::replay(&dir).expect("replays");
            assert_eq!((replayed.test_started_ms, replayed.pending.len()), (Some(42), 3));
            assert!(replayed.entries.is_empty(), "a purge empties the books");
            assert!(!dir.join(replay::file_name(0, 0)).exists());
            assert!(dir.join(replay::file_name(0, 1)).exists());
        });
        let _ = fs::remove_dir_all(&dir);
    }

    /// Goal: a write that fails (here: no space left) loses nothing and leaves nothing
    /// half-written before later records: a fail-fast waiter (a `202`) gets the error, a patient
    /// one (an attempt) keeps waiting while the batch is tried again, and once it can be written
    /// (here: a purge's new file) it is, ahead of what came after it, and the patient waiter
    /// resumes. Method: core 0's file of generation 0 a link to `/dev/full`.
    #[test]
    fn a_failed_write_keeps_its_records() {
        let dir = temp_dir("journal-full");
        std::os::unix::fs::symlink("/dev/full", dir.join(replay::file_name(0, 0))).expect("link");
        runtime().block_on(async {
            let journal = Rc::new(Journal::open(&dir, 0, 0, 0, 1 << 20, Fsync::Never));
            let flusher = Rc::clone(&journal);
            monoio::spawn(async move { flusher.run().await });
            let accepted = journal.append(Kind::Accepted, &payment(b'1'), None, 0);
            assert!(journal.durable(accepted).await.is_err(), "no 202 for an unwritten record");
            assert!(journal.failed() && journal.admits().is_err());
            let attempt =
                journal.append(Kind::Attempt, &payment(b'1'), Some(Processor::Default), 5);
            let waiting = Rc::clone(&journal);
            let sent = monoio::spawn(async move { waiting.durable_eventually(attempt).await });
            while journal.writes() < 2 {
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(journal.bytes(), 2 * RECORD_LEN as u64, "both records kept, to go again");
            journal.start_generation(1, 42).expect("a new generation");
            sent.await;
            assert!(!journal.failed(), "written again");
            let replayed = replay::replay(&dir).expect("replays");
            let pin = replayed.pending.iter().map(|p| p.pin).collect::<Vec<_>>();
            assert_eq!(pin, [Some((Processor::Default, 5))], "the attempt, after its acceptance");
        });
        let _ = fs::remove_dir_all(&dir);
    }

    /// Goal: a purge's file starts empty, even where an earlier life left a file of that
    /// generation (a generation number used again): nothing of it may be read back as this
    /// test's. Method: a stale file of generation 1 with three accepted payments; a journal at
    /// generation 0 purged into generation 1; the replay must find none of them.
    #[test]
    fn a_new_generation_starts_empty() {
        let dir = temp_dir("journal-stale");
        let mut stale = Vec::new();
        for i in b'7'..=b'9' {
            let record = Record {
                kind: Kind::Accepted,
                epoch: 0,
                payment: payment(i),
                processor: None,
                requested_at_ms: 0,
            };
            record.encode(&mut stale);
        }
        fs::write(dir.join(replay::file_name(0, 1)), stale).expect("a stale file");
        runtime().block_on(async {
            let journal = Journal::open(&dir, 0, 0, 1, 1 << 20, Fsync::Never);
            journal.start_generation(1, 42).expect("a new generation");
        });
        let replayed = replay::replay(&dir).expect("replays");
        assert!(replayed.pending.is_empty(), "stale records read back: {:?}", replayed.pending);
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
