//! Upstream: the payment processors as one core sees them, one [`Upstream`] per processor,
//! and what is decided from that view. State and pure decisions; nothing here knows the core.
//!
//! - [`client`]: the processor's keep-alive connections and one attempt over them.
//! - [`health`]: its breaker and delay news (attempts and health reports feed it).
//! - [`inflight`]: the attempts in flight there, and whether one is overdue.
//! - [`outcome`]: what an attempt's answer means for the payment (stored, not, unknown).
//! - [`route`]: where a payment goes, one pure function over the two upstreams.

pub mod client;
pub mod health;
pub mod inflight;
pub mod outcome;
pub mod route;

use std::time::{Duration, Instant};

use self::{client::ProcessorClient, health::ProcessorHealth, inflight::InFlight};
use crate::{config::Config, http::Endpoint, ledger::Processor};

/// One core's part of one processor.
#[derive(Debug)]
pub struct Upstream {
    /// Which processor.
    processor: Processor,
    /// Keep-alive connections and one attempt over them.
    client: ProcessorClient,
    /// Breaker and delay news, fed by attempts and health reports.
    health: ProcessorHealth,
    /// Attempts in flight and when each is expected back.
    inflight: InFlight,
}

impl Upstream {
    /// Nothing known yet, no connection open.
    pub fn new(processor: Processor, endpoint: Endpoint, config: &Config) -> Upstream {
        Upstream {
            processor,
            client: ProcessorClient::new(endpoint, config.processor_inflight_max),
            health: ProcessorHealth::new(
                config.breaker_failures_to_open,
                Duration::from_millis(config.breaker_probe_interval_ms),
            ),
            inflight: InFlight::default(),
        }
    }

    /// Which processor this is.
    pub fn processor(&self) -> Processor {
        self.processor
    }

    /// Its client.
    pub fn client(&self) -> &ProcessorClient {
        &self.client
    }

    /// What this core believes about its health.
    pub fn health(&self) -> &ProcessorHealth {
        &self.health
    }

    /// What this core has in flight there.
    pub fn inflight(&self) -> &InFlight {
        &self.inflight
    }

    /// The delay to plan a payment here with at `now`: the newest news of it (0 before any),
    /// and `OVERDUE_PLAN_DELAY_MS` (never less than the news) while an attempt is overdue (see
    /// `dispatch`, *Delay jumps*).
    pub fn planned_delay_ms(&self, now: Instant, config: &Config) -> u64 {
        let news = self.health.delay_ms().unwrap_or(0);
        if self.inflight.overdue(now, config.overdue_margin()) {
            news.max(config.overdue_plan_delay_ms)
        } else {
            news
        }
    }
}
