//! Queue: a core's forwarding work (the bounded FIFO of accepted payments waiting for a
//! forwarding task, the tasks running, those waiting for a processor slot), and the
//! correlation ids the core has accepted, so that a repeat is answered instead of forwarded.

use std::{
    cell::{Cell, RefCell},
    collections::{HashSet, VecDeque},
    time::{Duration, Instant},
};

use super::{
    pace::Pace,
    slots::{SlotWait, SlotWaiters},
};
use crate::{journal::Pending, log, payment::Payment};

/// A core's forwarding work. Owned by the core; the flows in `dispatch` drive it.
#[derive(Debug)]
pub struct Forwarding {
    /// Accepted payments no task has taken yet.
    queue: RefCell<Queue>,
    /// Payments a killed life of the instance had accepted and not settled (replayed from the
    /// journal), some pinned to an attempt: taken before the queue. Not bounded by
    /// `QUEUE_LEN_MAX`: the journal's size bounds them, and refusing them would lose them.
    resumed: RefCell<VecDeque<Pending>>,
    /// Forwarding tasks running; at most `tasks_max`.
    tasks: Cell<usize>,
    /// `DISPATCH_INFLIGHT_MAX`.
    tasks_max: usize,
    /// Tasks waiting for a slot at a processor.
    slot_waiters: SlotWaiters,
    /// How fast this core starts forwards (`FORWARDS_PER_S_MAX`).
    pace: Pace,
    /// Tasks holding their payment for the cheaper processor (`Route::Hold`).
    holding: Cell<usize>,
    /// The current stretch of holding, meaningful while `holding` > 0: logged when it starts
    /// and when it ends.
    hold_episode: Cell<HoldEpisode>,
    /// Payments submitted to this core since it started.
    arrived: Cell<u64>,
    /// The last measure of the arrival rate: when, `arrived` then, and the rate (per second).
    arrivals_sample: Cell<(Instant, u64, u64)>,
}

/// How long one measure of the arrival rate spans: a second smooths the contest's per-second
/// bursts (each virtual user sends once a second) and follows its ramp closely enough.
const ARRIVALS_WINDOW: Duration = Duration::from_secs(1);

impl Forwarding {
    /// No work: `queue_len_max` payments may wait, `tasks_max` tasks may run, `per_s_max`
    /// forwards may start a second. Its log lines are the core's (`log::set_core`).
    pub fn new(queue_len_max: usize, tasks_max: usize, per_s_max: u64) -> Forwarding {
        Forwarding {
            queue: RefCell::new(Queue::new(queue_len_max)),
            resumed: RefCell::new(VecDeque::new()),
            tasks: Cell::new(0),
            tasks_max,
            slot_waiters: SlotWaiters::default(),
            pace: Pace::new(per_s_max),
            holding: Cell::new(0),
            hold_episode: Cell::new(HoldEpisode { since: Instant::now(), backlog_most: 0 }),
            arrived: Cell::new(0),
            arrivals_sample: Cell::new((Instant::now(), 0, 0)),
        }
    }

    /// A payment was submitted (queued or given a task).
    pub fn arrived(&self) {
        self.arrived.set(self.arrived.get() + 1);
    }

    /// Payments submitted a second over the last full `ARRIVALS_WINDOW` before `now`.
    pub fn arrivals_per_s(&self, now: Instant) -> u64 {
        let (at, count, rate) = self.arrivals_sample.get();
        let elapsed = now.saturating_duration_since(at);
        if elapsed < ARRIVALS_WINDOW {
            return rate;
        }
        let arrived = self.arrived.get();
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
        let rate = (arrived - count).saturating_mul(1_000) / ms;
        self.arrivals_sample.set((now, arrived, rate));
        rate
    }

    /// Starts a forwarding task if fewer than the limit run: `true` if the caller may spawn it.
    pub fn try_start_task(&self) -> bool {
        let running = self.tasks.get();
        let free = running < self.tasks_max;
        if free {
            self.tasks.set(running + 1);
        }
        free
    }

    /// A task ends.
    pub fn end_task(&self) {
        debug_assert!(self.tasks.get() > 0, "a task ends that never started");
        self.tasks.set(self.tasks.get() - 1);
    }

    /// Whether a payment submitted now would be refused: no free task, and the queue full.
    pub fn queue_full(&self) -> bool {
        let queue = self.queue.borrow();
        self.tasks.get() >= self.tasks_max && queue.len() >= queue.len_max
    }

    /// Queues `payment` for the next free task, or refuses when the queue is full.
    pub fn enqueue(&self, payment: Payment) -> Result<(), QueueFull> {
        self.queue.borrow_mut().push(payment)
    }

    /// Puts a payment replayed from the journal back, for the next free task.
    pub fn resume(&self, pending: Pending) {
        self.resumed.borrow_mut().push_back(pending);
    }

    /// The next work for a task that is done with its last: a resumed payment first, then the
    /// oldest queued one.
    pub fn next_work(&self) -> Option<Pending> {
        let resumed = self.resumed.borrow_mut().pop_front();
        resumed
            .or_else(|| self.queue.borrow_mut().pop().map(|payment| Pending { payment, pin: None }))
    }

    /// Payments queued (resumed ones included).
    pub fn queue_len(&self) -> usize {
        self.queue.borrow().len() + self.resumed.borrow().len()
    }

    /// Tasks running.
    pub fn tasks(&self) -> usize {
        self.tasks.get()
    }

    /// Payments held: queued, or with a task.
    pub fn held(&self) -> usize {
        self.queue_len() + self.tasks()
    }

    /// Takes a turn of the forward pace at `now` if one is free now (see [`Pace`]).
    pub fn pace_now(&self, now: Instant) -> bool {
        self.pace.try_take(now)
    }

    /// Reserves a forward decided at `now`; returns when it may go (see [`Pace`]).
    pub fn pace_turn(&self, now: Instant) -> Instant {
        self.pace.reserve(now)
    }

    /// Waits until a slot at a processor is freed and this task is the one woken.
    pub fn wait_for_slot(&self) -> SlotWait<'_> {
        self.slot_waiters.wait()
    }

    /// An attempt ended: its slot goes to the task that has waited longest.
    pub fn slot_freed(&self) {
        self.slot_waiters.wake_one();
    }

    /// Tasks waiting for a slot.
    pub fn waiting_for_slot(&self) -> usize {
        self.slot_waiters.len()
    }

    /// A task starts holding its payment for the cheaper processor, until the mark drops. The
    /// first one starts a hold episode, with a log line (the last mark to drop ends it).
    pub fn hold(&self) -> HoldMark<'_> {
        let holding = self.holding.get() + 1;
        self.holding.set(holding);
        if holding == 1 {
            log::info!("holding payments for the cheaper processor while it fails");
            self.hold_episode.set(HoldEpisode { since: Instant::now(), backlog_most: 0 });
        }
        self.note_held();
        HoldMark { forwarding: self }
    }

    /// A hold mark dropped: the last one ends the episode, with a line saying how long it
    /// lasted and how many payments the core held at most meanwhile.
    fn unhold(&self) {
        self.note_held();
        let holding = self.holding.get() - 1;
        self.holding.set(holding);
        if holding == 0 {
            let episode = self.hold_episode.get();
            log::info!(
                "hold over after {} ms; {} payments held at most",
                episode.since.elapsed().as_millis(),
                episode.backlog_most
            );
        }
    }

    /// Counts the payments held now in the episode's most.
    fn note_held(&self) {
        let episode = self.hold_episode.get();
        let backlog_most = episode.backlog_most.max(self.held());
        self.hold_episode.set(HoldEpisode { backlog_most, ..episode });
    }

    /// The hold episode under way, if any.
    #[cfg(test)]
    fn hold_episode(&self) -> Option<HoldEpisode> {
        (self.holding.get() > 0).then(|| self.hold_episode.get())
    }

    /// Tasks holding their payment for the cheaper processor.
    pub fn holding(&self) -> usize {
        self.holding.get()
    }
}

/// A task holding its payment for the cheaper processor; counted in
/// [`Forwarding::holding`] until dropped, whichever way the task goes on.
#[derive(Debug)]
pub struct HoldMark<'a> {
    forwarding: &'a Forwarding,
}

impl Drop for HoldMark<'_> {
    fn drop(&mut self) {
        self.forwarding.unhold();
    }
}

/// One stretch of time during which a core held payments for the cheaper processor.
#[derive(Clone, Copy, Debug)]
struct HoldEpisode {
    since: Instant,
    /// The most payments the core held (queued, or with a task) during it, as seen when a
    /// task started or stopped holding.
    backlog_most: usize,
}

/// The queue is at its limit: the caller answers 503 rather than drop or grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// Payments accepted (answered 202) but not yet being forwarded.
#[derive(Debug)]
struct Queue {
    /// Oldest first. Grows on demand up to `len_max`; memory is 48 bytes a payment.
    items: VecDeque<Payment>,
    /// `QUEUE_LEN_MAX`.
    len_max: usize,
}

impl Queue {
    /// An empty queue holding at most `len_max` payments.
    fn new(len_max: usize) -> Queue {
        assert!(len_max > 0, "a queue must hold at least one payment");
        Queue { items: VecDeque::new(), len_max }
    }

    /// Appends `payment`, or refuses when full.
    fn push(&mut self, payment: Payment) -> Result<(), QueueFull> {
        if self.items.len() >= self.len_max {
            return Err(QueueFull);
        }
        self.items.push_back(payment);
        Ok(())
    }

    /// Takes the oldest payment.
    fn pop(&mut self) -> Option<Payment> {
        self.items.pop_front()
    }

    /// Payments waiting.
    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Correlation ids one generation of [`SeenIds`] holds. A contest's ~90k payments split over
/// two instances fit in one generation; both hash sets are allocated once at this size (~2.2 MB
/// each, touched only as ids arrive) so that neither rehashes on the hot path.
pub const IDS_PER_GENERATION_MAX: usize = 65_536;

/// Correlation ids this core accepted since the last purge. Two generations of at most
/// [`IDS_PER_GENERATION_MAX`]: when the current one is full it becomes the previous one and
/// the older ids are forgotten, so at least the newest `IDS_PER_GENERATION_MAX` are always
/// remembered and memory stays bounded (~4.5 MB). Per core: a repeat that reaches another core
/// or instance is not seen here (the processors' own uniqueness then applies; see the README).
#[derive(Debug)]
pub struct SeenIds {
    /// The newest ids.
    current: HashSet<u128>,
    /// The generation before; empty until `current` first fills.
    previous: HashSet<u128>,
    /// Ids per generation.
    per_generation_max: usize,
}

impl SeenIds {
    /// An empty memory of `per_generation_max` ids per generation.
    pub fn new(per_generation_max: usize) -> SeenIds {
        assert!(per_generation_max > 0, "a generation must hold at least one id");
        SeenIds {
            current: HashSet::with_capacity(per_generation_max),
            previous: HashSet::with_capacity(per_generation_max),
            per_generation_max,
        }
    }

    /// Whether `id` was accepted here and is still remembered.
    pub fn contains(&self, id: u128) -> bool {
        self.current.contains(&id) || self.previous.contains(&id)
    }

    /// Remembers `id`.
    pub fn insert(&mut self, id: u128) {
        if self.current.len() >= self.per_generation_max {
            // Swap rather than reallocate: both sets keep their capacity.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(id);
    }

    /// Forgets `id`: its payment was not accepted after all.
    pub fn remove(&mut self, id: u128) {
        self.current.remove(&id);
        self.previous.remove(&id);
    }

    /// Forgets every id (`POST /purge-payments` starts a new test).
    pub fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an accepted id is remembered, at least the newest generation's worth survive a
    /// rotation, the oldest are forgotten after two, and memory never exceeds two generations.
    #[test]
    fn seen_ids_remember_the_newest() {
        let mut seen = SeenIds::new(3);
        for id in 0..3 {
            assert!(!seen.contains(id));
            seen.insert(id);
        }
        assert!((0..3).all(|id| seen.contains(id)));
        seen.insert(3);
        assert!((0..4).all(|id| seen.contains(id)), "the previous generation still answers");
        for id in 4..7 {
            seen.insert(id);
        }
        assert!(!seen.contains(0) && !seen.contains(2), "two rotations forget the oldest");
        assert!((3..7).all(|id| seen.contains(id)));
        assert!(seen.len() <= 6);
        seen.clear();
        assert!(seen.is_empty() && !seen.contains(5));
    }

    /// Goal: FIFO order, and a full queue refuses instead of growing.
    #[test]
    fn bounded_fifo() {
        let mut q = Queue::new(2);
        let p = |c| Payment { correlation_id: [b'0'; 36], cents: c };
        q.push(p(1)).unwrap();
        q.push(p(2)).unwrap();
        assert_eq!(q.push(p(3)), Err(QueueFull));
        assert_eq!(q.pop().map(|p| p.cents), Some(1));
        q.push(p(3)).unwrap();
        assert_eq!((q.pop().unwrap().cents, q.pop().unwrap().cents, q.pop()), (2, 3, None));
    }

    /// Goal: the arrival rate is measured over whole windows, kept between them, and a hold
    /// counts a task until its mark drops. Method: synthetic instants.
    #[test]
    fn arrival_rate_and_holding() {
        let forwarding = Forwarding::new(8, 4, 4_000);
        let t0 = forwarding.arrivals_sample.get().0;
        for _ in 0..300 {
            forwarding.arrived();
        }
        assert_eq!(forwarding.arrivals_per_s(t0 + Duration::from_millis(500)), 0, "too soon");
        let t1 = t0 + Duration::from_millis(1_500);
        assert_eq!(forwarding.arrivals_per_s(t1), 200);
        assert_eq!(forwarding.arrivals_per_s(t1 + Duration::from_millis(999)), 200, "kept");
        assert_eq!(forwarding.arrivals_per_s(t1 + Duration::from_secs(2)), 0, "quiet since");
        let first = forwarding.hold();
        let second = forwarding.hold();
        assert_eq!(forwarding.holding(), 2);
        assert!(forwarding.hold_episode().is_some(), "an episode runs");
        drop(first);
        assert!(forwarding.hold_episode().is_some(), "still, with one holding");
        drop(second);
        assert_eq!(forwarding.holding(), 0);
        assert!(forwarding.hold_episode().is_none(), "over with the last mark");
    }
}
