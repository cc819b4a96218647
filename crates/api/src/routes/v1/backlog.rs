//! `GET /v1/backlog`: how many open returns wait where, and since when.
//! The API's own response shape, converted from the store's rows so that the
//! storage schema can change without changing the API.

use axum::Json;
use axum::extract::State;
use backhaul_domain::{Stage, Status};
use backhaul_store::BacklogRow;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Backlog {
    items: Vec<BacklogItem>,
}

/// Open returns sharing one status, stage and owner.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BacklogItem {
    #[schemars(with = "Status")]
    status: String,
    #[schemars(with = "Stage")]
    stage: String,
    /// Whose move it is.
    owner: String,
    count: i64,
    /// When the oldest of these returns was requested.
    oldest_created_at: DateTime<Utc>,
}

impl From<BacklogRow> for BacklogItem {
    fn from(row: BacklogRow) -> Self {
        BacklogItem {
            status: row.status,
            stage: row.stage,
            owner: row.owner,
            count: row.count,
            oldest_created_at: row.oldest_created_at,
        }
    }
}

pub(crate) async fn backlog(State(state): State<AppState>) -> Result<Json<Backlog>, ApiError> {
    let rows = state.engine.backlog().await?;
    Ok(Json(Backlog {
        items: rows.into_iter().map(BacklogItem::from).collect(),
    }))
}
