//! Forward: from an accepted payment to its record in the ledger. The flows of the stage, each
//! taking the core; the state they work on (the queue in `cores::queue`, the processors in
//! `upstream`) knows nothing of them.
//!
//! - [`dispatch`]: the forwarding tasks, from the queue through routing and one attempt to the
//!   ledger.
//! - [`lookup`]: what the processors say of payments whose outcome is unknown.
//! - [`poller`]: core 0's health poll, shared with every core and the peer.

pub mod dispatch;
pub mod lookup;
pub mod poller;
