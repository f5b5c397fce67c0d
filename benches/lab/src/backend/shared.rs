//! What more than one part of the pair needs, kept here so that they need not import each
//! other.

use std::time::Duration;

/// Polling step while waiting for a child to exit.
pub(super) const EXIT_POLL: Duration = Duration::from_millis(10);

/// Nanoseconds since the epoch: a suffix that keeps this run's names (log directory, cgroups,
/// temporary files) apart from another run's.
pub(super) fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
