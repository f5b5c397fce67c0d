//! The mesh: every core's mailbox, and the messages the cores of one instance send each other.
//! It is all the cores share; what crosses cores is one of these messages, never a borrow.

use std::{sync::Arc, time::Instant};

use crate::{
    ledger::{ShardSummary, TimeRange},
    metrics::CoreSnapshot,
    upstream::health::Report,
};

/// A message from one core to another. Replies travel on the channel the message carries.
pub enum CoreMsg {
    /// "Send me your shard's totals over this range."
    Summary {
        /// Range of `requestedAt`.
        range: TimeRange,
        /// Where to answer.
        reply: flume::Sender<ShardSummary>,
    },
    /// "Empty your shard."
    Purge {
        /// Answered once done.
        reply: flume::Sender<()>,
    },
    /// "Here is what the health poll saw."
    Health(Report),
    /// "Send me a snapshot of your metrics."
    Metrics {
        /// Where to answer.
        reply: flume::Sender<CoreSnapshot>,
    },
    /// "Stop accepting, forward what you hold, answer when done or at `deadline`."
    Drain {
        /// When to give up on what is left.
        deadline: Instant,
        /// Payments still held (queued or in flight) when the core answered.
        reply: flume::Sender<usize>,
    },
}

/// Every core's mailbox, indexed by core id. The only thing the cores share. Unbounded on
/// purpose: a core never waits to send (a summary, a report), and what is sent is bounded by
/// its senders (one request each, answered before the next).
pub type Mesh = Arc<[flume::Sender<CoreMsg>]>;

/// A core of this instance that cannot be reached or did not answer (its thread is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreGone;
