//! `GET /v1/returns/{id}/events`: the return's event log, oldest first,
//! each event in its envelope (position, version, ids, time, payload).

use axum::Json;
use axum::extract::State;
use backhaul_domain::Event;
use backhaul_domain::values::ReturnId;
use backhaul_engine::TimelineEntry;
use backhaul_store::JsonText;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ReturnPath;

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Timeline {
    return_id: ReturnId,
    /// Oldest first.
    events: Vec<TimelineEvent>,
}

/// One event with its envelope. The API's own shape, converted from the
/// engine's, so that the wire format is a promise this crate keeps.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TimelineEvent {
    /// Global position in the hub's log; increases in commit order.
    position: i64,
    /// 1-based version of the event within the return.
    version: i64,
    event_id: Uuid,
    /// The payload's `type`, e.g. `ReturnApproved`.
    event_type: String,
    /// Version of the payload schema.
    schema_version: i32,
    /// Shared by every event of the return (and of the partner's business
    /// transaction, when it sent `X-Correlation-Id`).
    correlation_id: Uuid,
    /// The command that caused the event.
    causation_id: Uuid,
    recorded_at: DateTime<Utc>,
    #[schemars(with = "Event")]
    payload: JsonText,
}

impl From<TimelineEntry> for TimelineEvent {
    fn from(e: TimelineEntry) -> Self {
        TimelineEvent {
            position: e.position,
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            recorded_at: e.recorded_at,
            payload: e.payload,
        }
    }
}

/// `GET /v1/returns/{id}/events`.
pub(crate) async fn timeline(
    State(state): State<AppState>,
    ReturnPath(return_id): ReturnPath,
) -> Result<Json<Timeline>, ApiError> {
    let entries = state
        .engine
        .timeline(return_id)
        .await?
        .ok_or(ApiError::ReturnNotFound(return_id))?;
    Ok(Json(Timeline {
        return_id,
        events: entries.into_iter().map(TimelineEvent::from).collect(),
    }))
}
