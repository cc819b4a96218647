//! The expiry scheduler: approved returns whose authorisation or label ran
//! out before the carrier got the parcel are expired, so they stop waiting
//! for a customer who will not ship (and their ERP return order and
//! expected receipt are cancelled through the outbox).
//!
//! It only proposes `expire`; the domain decides, with the engine's clock,
//! whether the deadline has passed. Each expiry carries the idempotency key
//! `expire:{return_id}`, so two hubs expiring the same return apply it once.
//! Cost: one decision per waiting return per pass, on cached state; fine for
//! tens of thousands of open returns at the default interval. Indexing
//! deadlines in the read model is the next step beyond that.

use std::time::Duration;

use backhaul_domain::Command;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::{CommandMeta, Engine, Error, Idempotency};

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiryConfig {
    /// Seconds between two passes; 0 turns the scheduler off.
    pub interval_secs: u64,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig { interval_secs: 60 }
    }
}

/// The stages in which a return can expire: approved, not yet with the
/// carrier.
const WAITING: [&str; 2] = ["awaiting_label", "awaiting_shipment"];

/// Expires returns whose deadline passed.
#[derive(Clone)]
pub struct Expirer {
    engine: Engine,
}

impl Expirer {
    pub fn new(engine: Engine) -> Expirer {
        Expirer { engine }
    }

    /// One pass over every waiting return; returns how many it expired.
    pub async fn run_once(&self) -> Result<usize, Error> {
        let candidates = self.engine.open_returns_in(&WAITING).await?;
        let mut expired = 0;
        for id in candidates {
            let meta = CommandMeta {
                partner: "scheduler".to_owned(),
                idempotency: Some(Idempotency {
                    key: format!("expire:{id}"),
                    request_hash: "expire".to_owned(),
                }),
                correlation_id: None,
                causation_id: None,
            };
            match self.engine.execute(id, Command::Expire, meta).await {
                Ok(outcome) if !outcome.replayed => {
                    tracing::info!(return_id = %id, "expired");
                    expired += 1;
                }
                // Not due yet, no deadline, moved on meanwhile, or expired
                // by another hub: nothing to do.
                Ok(_) | Err(Error::Rejected(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(expired)
    }

    /// Passes every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.run_once().await {
                tracing::warn!(%error, "expiry pass failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
