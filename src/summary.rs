//! Summary: `GET /payments-summary` as a map-reduce over shards (Seastar's `map_reduce0`).
//! Map: every core of this instance sums its own shard (this core directly, the others on a
//! [`CoreMsg`]), and the peer instance answers for all of its cores as one more shard. Reduce:
//! [`ShardSummary::merge`]. Purge follows the same path.

use std::{fmt, rc::Rc};

use crate::{
    cores::{Core, CoreGone, CoreMsg},
    forward::lookup,
    http, journal,
    ledger::{ShardSummary, TimeRange},
    log, money, peer,
    timestamp::{self, Round},
};

/// Why the deployment's totals cannot be given. Never answered with partial totals.
#[derive(Debug)]
pub enum SummaryError {
    /// A core of this instance cannot be reached or did not answer (its thread is gone).
    CoreGone,
    /// The peer instance did not answer.
    Peer(peer::PeerError),
    /// An instance restarted since the last purge and may have lost records in the range.
    Forgotten(peer::Forgotten),
}

impl From<CoreGone> for SummaryError {
    fn from(_: CoreGone) -> SummaryError {
        SummaryError::CoreGone
    }
}

impl fmt::Display for SummaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SummaryError::CoreGone => write!(f, "a core of this instance did not answer"),
            SummaryError::Peer(e) => write!(f, "{e}"),
            SummaryError::Forgotten(e) => write!(f, "{e}"),
        }
    }
}

/// Totals of every core of this instance over `range`.
pub async fn instance_summary(core: &Core, range: TimeRange) -> Result<ShardSummary, SummaryError> {
    let mut total = ShardSummary::default();
    let mut mine = ShardSummary::default();
    let ask = |reply| CoreMsg::Summary { range, reply };
    core.fan_out(ask, || mine = core.shard_summary(range), |shard| total.merge(&shard)).await?;
    total.merge(&mine);
    Ok(total)
}

/// Totals of the whole deployment: this instance plus its peer, if it has one. Refused when
/// an instance restarted since the last purge and the range reaches back before it (see
/// `peer`'s *Continuity*).
pub async fn deployment_summary(
    core: &Rc<Core>,
    range: TimeRange,
) -> Result<ShardSummary, SummaryError> {
    let mut total = instance_summary(core, range).await?;
    if let Some(peer_addr) = core.config().peer_addr {
        let continuity = core.continuity();
        let theirs = match peer::fetch_summary(
            peer_addr,
            range,
            continuity.boot,
            core.config().peer_timeout(),
        )
        .await
        {
            Ok(theirs) => {
                continuity.saw_peer(theirs.boot);
                continuity.told_we_forgot(theirs.you_forgot_before_ms);
                theirs.totals
            }
            Err(e) => peer_books(core, range).await.ok_or(SummaryError::Peer(e))?,
        };
        continuity.check(range.from_ms, peer_addr).map_err(SummaryError::Forgotten)?;
        total.merge(&theirs);
    }
    Ok(total)
}

/// The peer's totals read from its journal (`PEER_JOURNAL_DIR`, a shared volume), when the
/// peer itself does not answer: killed, or restarting. Its file holds what it settled, and the
/// attempts it had sent and not heard back from: each of those whose `requestedAt` the range
/// counts is looked up at its processor (`forward::lookup`), and counted if stored there. `None` when
/// the journal cannot be read or a lookup gets no answer: no total rather than a partial one.
/// A blocking read of a few megabytes, on a path taken only while the peer is down.
async fn peer_books(core: &Rc<Core>, range: TimeRange) -> Option<ShardSummary> {
    let dir = core.config().peer_journal_dir.as_ref()?;
    let books = match journal::replay::peer_books(dir, range) {
        Ok(books) => books,
        Err(e) => {
            log::warn!("the peer's journal {}: {e}", dir.display());
            return None;
        }
    };
    let mut total = books.settled;
    for entry in lookup::settled_elsewhere(core, books.in_flight).await? {
        total.count(entry);
    }
    Some(total)
}

/// Empties every shard of this instance.
pub async fn purge_instance(core: &Core) -> Result<(), SummaryError> {
    Ok(core.fan_out(|reply| CoreMsg::Purge { reply }, || core.purge(), |()| {}).await?)
}

/// Empties every shard of the deployment, and with them any record of restarts.
pub async fn purge_deployment(core: &Core) -> Result<(), SummaryError> {
    purge_instance(core).await?;
    let peer_boot = match core.config().peer_addr {
        Some(peer_addr) => Some(
            peer::purge(peer_addr, core.continuity().boot, core.config().peer_timeout())
                .await
                .map_err(SummaryError::Peer)?,
        ),
        None => None,
    };
    core.continuity().purged(peer_boot);
    Ok(())
}

/// Parses `from` and `to` (ISO-8601 UTC, both optional, both inclusive) from a raw query.
pub fn parse_range(query: &[u8]) -> Result<TimeRange, &'static str> {
    let mut scratch = [0u8; 64];
    let from_ms = match http::query_param(query, b"from", &mut scratch) {
        Ok(None) => i64::MIN,
        Ok(Some(text)) => {
            timestamp::parse_iso(text, Round::Up).ok_or("from must be an ISO-8601 UTC timestamp")?
        }
        Err(_) => return Err("from is not a valid query value"),
    };
    let to_ms = match http::query_param(query, b"to", &mut scratch) {
        Ok(None) => i64::MAX,
        Ok(Some(text)) => {
            timestamp::parse_iso(text, Round::Down).ok_or("to must be an ISO-8601 UTC timestamp")?
        }
        Err(_) => return Err("to is not a valid query value"),
    };
    Ok(TimeRange { from_ms, to_ms })
}

/// Appends the contest's JSON: counts, and amounts from cents with exactly two decimals.
pub fn write_json(out: &mut Vec<u8>, summary: &ShardSummary) {
    summary.write_by_processor(out, |out, totals| {
        out.extend_from_slice(b"{\"totalRequests\":");
        money::write_u64(out, totals.count);
        out.extend_from_slice(b",\"totalAmount\":");
        money::write_cents(out, totals.cents);
        out.push(b'}');
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Totals;

    /// Goal: bounds are optional and inclusive; malformed ones are errors, not "unbounded".
    #[test]
    fn parses_ranges() {
        assert_eq!(parse_range(b""), Ok(TimeRange::ALL));
        let r = parse_range(b"from=2025-07-15T12:00:00.000Z&to=2025-07-15T12:00:01.500Z").unwrap();
        assert_eq!(r.to_ms - r.from_ms, 1500);
        let only_to = parse_range(b"to=2025-07-15T12:00:00.000Z").unwrap();
        assert_eq!(only_to.from_ms, i64::MIN);
        let encoded = parse_range(b"from=2025-07-15T12%3A00%3A00.000Z").unwrap();
        assert_eq!(encoded.from_ms, r.from_ms);
        for bad in [&b"from=yesterday"[..], b"to=2025-07-15", b"from=%", b"from="] {
            assert!(parse_range(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Goal: the JSON has the contest's shape and exact two-decimal amounts.
    #[test]
    fn writes_contest_json() {
        let summary = ShardSummary {
            by_processor: [Totals { count: 123, cents: 246_615 }, Totals { count: 4, cents: 8020 }],
        };
        let mut out = Vec::new();
        write_json(&mut out, &summary);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"default":{"totalRequests":123,"totalAmount":2466.15},"fallback":{"totalRequests":4,"totalAmount":80.20}}"#
        );
    }
}
