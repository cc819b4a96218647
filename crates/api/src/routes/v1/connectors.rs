//! `GET /v1/connectors`: every connected system, whether it answers, how its
//! deliveries stand (pending, in the exception queue, dead) and what the
//! dispatcher counted for it since start (attempts, retries, breaker). The
//! operator's first look when returns pile up at one stage.

use axum::Json;
use axum::extract::State;
use backhaul_store::{DeliveryState, DeliveryStore};
use schemars::JsonSchema;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Connectors {
    items: Vec<ConnectorView>,
}

/// One connected system.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ConnectorView {
    /// `erp`, `wms`, `carrier` or `portal`.
    target: String,
    /// The name its documents carry on returns.
    system: String,
    /// `ok`, or why its health check failed.
    health: String,
    /// `closed`, `open` (deliveries paused after repeated failures) or
    /// `half_open` (one trial delivery in flight).
    breaker: String,
    /// Deliveries per state, from the outbox.
    pending: i64,
    done: i64,
    exception: i64,
    dead: i64,
    /// Since this hub started.
    attempts: u64,
    retried: u64,
    max_in_flight: usize,
}

pub(crate) async fn connectors(
    State(state): State<AppState>,
) -> Result<Json<Connectors>, ApiError> {
    let Some(dispatcher) = &state.dispatcher else {
        return Ok(Json(Connectors { items: Vec::new() }));
    };
    let counts = state.engine.store().delivery_counts().await?;
    let health = dispatcher.health().await;
    let stats = dispatcher.stats();
    let systems = dispatcher.systems();
    let items = dispatcher
        .targets()
        .into_iter()
        .map(|target| {
            let name = target.as_str();
            let count = |wanted: DeliveryState| {
                counts
                    .iter()
                    .find(|(t, s, _)| t == name && *s == wanted)
                    .map_or(0, |(_, _, n)| *n)
            };
            let s = stats.get(&target).cloned().unwrap_or_default();
            ConnectorView {
                target: name.to_owned(),
                system: systems.get(&target).cloned().unwrap_or_default(),
                health: match health.get(&target) {
                    Some(Ok(())) => "ok".to_owned(),
                    Some(Err(error)) => error.to_string(),
                    None => "unknown".to_owned(),
                },
                breaker: s.breaker.to_owned(),
                pending: count(DeliveryState::Pending),
                done: count(DeliveryState::Done),
                exception: count(DeliveryState::Exception),
                dead: count(DeliveryState::Dead),
                attempts: s.attempts,
                retried: s.retried,
                max_in_flight: s.max_in_flight,
            }
        })
        .collect();
    Ok(Json(Connectors { items }))
}
