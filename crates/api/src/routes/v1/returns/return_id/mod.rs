//! `/v1/returns/{id}`: one return's summary (`GET`), its timeline
//! ([`events`]) and the commands that move it through its lifecycle
//! ([`commands`]).

pub(crate) mod commands;
pub(crate) mod events;

use axum::Json;
use axum::extract::State;
use backhaul_store::JsonText;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ReturnPath;

/// `GET /v1/returns/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    ReturnPath(return_id): ReturnPath,
) -> Result<Json<JsonText>, ApiError> {
    state
        .engine
        .get(return_id)
        .await?
        .map(Json)
        .ok_or(ApiError::ReturnNotFound(return_id))
}
