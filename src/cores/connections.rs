//! Connections: the registry of one core's open client connections, for its two limits: at
//! most `CONNECTIONS_MAX` open on the public port (and `PEER_CONNECTIONS_MAX` on the peer
//! link, counted apart, so that a flood of public connections never refuses the peer's calls
//! and with them every summary), and none idle or stalled longer than
//! `CONNECTION_IDLE_TIMEOUT_MS`.
//!
//! The idle limit costs the hot path no timer and no clock read. Each connection stamps its
//! slot with the core's coarse clock (`Connections::now_ms`, advanced by the sweep) when it
//! completes a request or a response; a partial request or a dribbling client does not count.
//! The sweep (one task per core, every quarter of the timeout, at most every second) shuts the
//! read side of each expired connection: its pending read returns end-of-file, and the
//! connection answers a partial request 408 before it closes. A connection still there at the
//! next sweep (blocked writing to a client that does not read) has both sides shut.
//!
//! The sweep also gives memory back after a flood. The allocator (glibc) keeps what freed
//! connections held for later allocations, so an instance that served thousands of stalled
//! clients would keep their memory for its whole life (measured: 9,000 connections holding a
//! 6 KB head each left 125 MB of RSS after they closed). When the connections open have fallen
//! `TRIM_AFTER_CLOSED` below their most since the last time, the sweep asks the allocator to
//! return its free pages (`malloc_trim`).

use std::{
    cell::{Cell, RefCell},
    os::fd::RawFd,
    rc::Rc,
    time::{Duration, Instant},
};

use slab::Slab;

/// Open connections on the peer link. The peer opens one connection per call, and its calls
/// are a few a second (a summary per check, health reports, metrics scrapes, a purge per test):
/// 64 leaves room for a burst of parallel summaries and no more.
const PEER_CONNECTIONS_MAX: usize = 64;

/// How far the open connections must fall below their most since the last trim before the
/// sweep returns free memory to the system. A flood's end closes thousands; the contest's ~300
/// connections per instance close once, at its end, and clients that reconnect at a steady
/// count never fall this far. 1,024 connections held 2–12 MB, worth a trim, which stalls the
/// core in proportion to what it returns: 0.2–3.5 ms after 9,000 idle connections (17 MB),
/// 12–25 ms after 9,000 that held 6–8 KB heads (70–90 MB), once per flood.
const TRIM_AFTER_CLOSED: usize = 1024;

/// Which listener a connection came from: which routes it is served, and which cap it counts
/// against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The public API on port 9999.
    Api,
    /// The private link to the peer instance.
    Peer,
}

/// Longest pause between two sweeps: the idle timeout's resolution.
const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(1);

/// Shortest pause between two sweeps, so a tiny timeout (tests) cannot spin the core.
const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Where an open connection stands with the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// In use.
    Live,
    /// Idle too long: its read side is shut.
    ReadShut,
    /// Still open a sweep later: both sides are shut.
    Shut,
}

/// One open connection.
#[derive(Debug)]
struct Slot {
    /// Its listener.
    surface: Surface,
    /// Its socket. Valid while the slot exists: the slot and the stream are dropped in the same
    /// synchronous step (the connection's task returning), and the sweep runs on the same
    /// thread, so it never sees a closed or reused descriptor.
    fd: RawFd,
    /// When it last completed a request or a response, in [`Connections::now_ms`] time.
    active_ms: Cell<u64>,
    /// What the sweep did to it.
    expiry: Cell<Expiry>,
}

/// A core's open connections. Owned by the core; touched only by its tasks.
#[derive(Debug)]
pub struct Connections {
    /// Open connections (API and peer link), keyed by slab index.
    slots: RefCell<Slab<Slot>>,
    /// Milliseconds since `started`, as of the last sweep.
    now_ms: Cell<u64>,
    /// The core's start, the zero of `now_ms`.
    started: Instant,
    /// Connections open per surface ([`Surface::Api`], [`Surface::Peer`]).
    open: [Cell<usize>; 2],
    /// `CONNECTIONS_MAX`.
    len_max: usize,
    /// `CONNECTION_IDLE_TIMEOUT_MS`.
    idle_timeout_ms: u64,
    /// Connections accepted since start, refused ones included.
    accepted: Cell<u64>,
    /// Connections closed by the sweep, since start.
    expired: Cell<u64>,
    /// Connections closed at accept because `len_max` were open, since start.
    refused: Cell<u64>,
    /// The most connections open at once since the last trim (or start).
    open_most: Cell<usize>,
}

/// A registered connection; dropping it unregisters it. Held by the connection's task beside
/// its stream, so both go together.
pub struct Registration {
    registry: Rc<Connections>,
    key: usize,
}

impl Connections {
    /// An empty registry.
    pub fn new(len_max: usize, idle_timeout_ms: u64) -> Connections {
        assert!(len_max > 0 && idle_timeout_ms > 0);
        Connections {
            slots: RefCell::new(Slab::new()),
            open: [Cell::new(0), Cell::new(0)],
            now_ms: Cell::new(0),
            started: Instant::now(),
            len_max,
            idle_timeout_ms,
            accepted: Cell::new(0),
            expired: Cell::new(0),
            refused: Cell::new(0),
            open_most: Cell::new(0),
        }
    }

    /// Registers a connection just accepted on `core`'s `surface`, or refuses it (`None`) when
    /// that surface's cap is reached (`CONNECTIONS_MAX`, `PEER_CONNECTIONS_MAX`).
    pub fn register(this: &Rc<Connections>, fd: RawFd, surface: Surface) -> Option<Registration> {
        this.accepted.set(this.accepted.get() + 1);
        let open = &this.open[surface as usize];
        let cap = match surface {
            Surface::Api => this.len_max,
            Surface::Peer => PEER_CONNECTIONS_MAX,
        };
        if open.get() >= cap {
            this.refused.set(this.refused.get() + 1);
            return None;
        }
        open.set(open.get() + 1);
        let active_ms = Cell::new(this.now_ms.get());
        let slot = Slot { surface, fd, active_ms, expiry: Cell::new(Expiry::Live) };
        let mut slots = this.slots.borrow_mut();
        let key = slots.insert(slot);
        this.open_most.set(this.open_most.get().max(slots.len()));
        Some(Registration { registry: Rc::clone(this), key })
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// `CONNECTIONS_MAX`: the public connections served at once.
    pub fn len_max(&self) -> usize {
        self.len_max
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections accepted since start, refused ones included.
    pub fn accepted(&self) -> u64 {
        self.accepted.get()
    }

    /// Connections closed for idleness since start.
    pub fn expired(&self) -> u64 {
        self.expired.get()
    }

    /// Connections refused at the limit since start.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// The pause between two sweeps.
    fn sweep_interval(&self) -> Duration {
        (Duration::from_millis(self.idle_timeout_ms) / 4)
            .clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL_MAX)
    }

    /// Whether enough connections closed since the last trim to return memory, counted from
    /// now on if so.
    fn due_for_trim(&self) -> bool {
        let open = self.len();
        let due = self.open_most.get().saturating_sub(open) >= TRIM_AFTER_CLOSED;
        if due {
            self.open_most.set(open);
        }
        due
    }

    /// Advances the coarse clock, shuts what has been idle too long, and returns free memory
    /// after many connections closed.
    pub fn sweep(&self) {
        if self.due_for_trim() {
            self.slots.borrow_mut().shrink_to_fit();
            trim_allocator();
        }
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.now_ms.set(now_ms);
        for (_, slot) in self.slots.borrow().iter() {
            let how = match slot.expiry.get() {
                Expiry::Live
                    if now_ms.saturating_sub(slot.active_ms.get()) >= self.idle_timeout_ms =>
                {
                    self.expired.set(self.expired.get() + 1);
                    slot.expiry.set(Expiry::ReadShut);
                    libc::SHUT_RD
                }
                Expiry::ReadShut => {
                    slot.expiry.set(Expiry::Shut);
                    libc::SHUT_RDWR
                }
                Expiry::Live | Expiry::Shut => continue,
            };
            // SAFETY: `fd` is the socket of a connection that is still open (see `Slot::fd`);
            // shutdown(2) only changes that socket's state. An error (the client already
            // closed it) leaves nothing to do.
            unsafe {
                libc::shutdown(slot.fd, how);
            }
        }
    }
}

impl Registration {
    /// The connection completed a request or a response: it is not idle.
    pub fn touch(&self) {
        let connections = &self.registry;
        if let Some(slot) = connections.slots.borrow().get(self.key) {
            slot.active_ms.set(connections.now_ms.get());
        }
    }

    /// Whether the sweep has shut this connection for idleness.
    pub fn expired(&self) -> bool {
        let slots = self.registry.slots.borrow();
        slots.get(self.key).is_some_and(|slot| slot.expiry.get() != Expiry::Live)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let connections = &self.registry;
        let slot = connections.slots.borrow_mut().remove(self.key);
        let open = &connections.open[slot.surface as usize];
        open.set(open.get() - 1);
    }
}

/// Returns the allocator's free memory to the system: glibc's `malloc_trim` releases the free
/// pages inside every arena, the core threads' included (freeing returns only the top of a
/// heap, and only what `boot::free_small_blocks_at_once` lets coalesce there). It walks the
/// free lists under each arena's lock and stalls the core for what it returns (see
/// [`TRIM_AFTER_CLOSED`]), so it runs after a flood, never per connection.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_allocator() {
    // SAFETY: malloc_trim only reorganises the allocator's own free memory, under its locks;
    // it touches no memory a caller holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by themselves, or offer no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

/// Each core's sweep task: runs for as long as the core.
pub async fn sweep_idle(connections: Rc<Connections>) {
    let interval = connections.sweep_interval();
    loop {
        monoio::time::sleep(interval).await;
        connections.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a trim is due once the open connections fall `TRIM_AFTER_CLOSED` below their most
    /// since the last trim, and then not again until they rise and fall that far once more.
    /// Method: register and drop connections on a registry with a large cap.
    #[test]
    fn trim_is_due_after_many_closed() {
        let connections = Rc::new(Connections::new(4 * TRIM_AFTER_CLOSED, 60_000));
        let register = |n| -> Vec<Registration> {
            (0..n).map(|_| Connections::register(&connections, -1, Surface::Api).unwrap()).collect()
        };
        let mut open = register(2 * TRIM_AFTER_CLOSED);
        assert!(!connections.due_for_trim());
        open.truncate(TRIM_AFTER_CLOSED + 1);
        assert!(!connections.due_for_trim(), "one short");
        open.truncate(TRIM_AFTER_CLOSED);
        assert!(connections.due_for_trim());
        assert!(!connections.due_for_trim(), "counted from the trim on");
        open.clear();
        assert!(connections.due_for_trim(), "the rest closed");
        let again = register(TRIM_AFTER_CLOSED - 1);
        drop(again);
        assert!(!connections.due_for_trim(), "fewer than the threshold opened and closed");
    }

    /// Goal: the sweep interval is a quarter of the timeout, within its bounds.
    #[test]
    fn sweep_interval_bounds() {
        assert_eq!(Connections::new(1, 60_000).sweep_interval(), SWEEP_INTERVAL_MAX);
        assert_eq!(Connections::new(1, 1_000).sweep_interval(), Duration::from_millis(250));
        assert_eq!(Connections::new(1, 20).sweep_interval(), SWEEP_INTERVAL_MIN);
    }
}
