//! Forward: from an accepted payment to its record in the ledger. The queue and the forwarding
//! tasks, where each payment goes, the processors as each core sees them, and what each answer
//! means.
//!
//! State, owned by the core and knowing nothing of it:
//! - [`queue`]: the bounded FIFO of accepted payments, the forwarding tasks' count, the ids seen.
//! - [`upstream`]: one processor as one core sees it: [`client`] (its keep-alive connections and
//!   one attempt), [`health`] (breaker and delay news), [`inflight`] (attempts in flight, tasks
//!   waiting for a slot).
//! - [`route`]: where a payment goes, one pure function over what the core knows.
//! - [`outcome`]: what an attempt's answer means for the payment (stored, not, unknown).
//!
//! Flows, taking the core:
//! - [`dispatch`]: the forwarding tasks, from the queue to the ledger.
//! - [`poller`]: core 0's health poll, shared with every core and the peer.

pub mod client;
pub mod dispatch;
pub mod health;
pub mod inflight;
pub mod outcome;
pub mod poller;
pub mod queue;
pub mod route;
pub mod upstream;
