//! `/v1/deliveries`: the exception queue over HTTP. Lists the outbox's
//! deliveries (`GET`); one delivery's routes live under [`delivery_id`].
//! What a view holds and which actions apply are decided in
//! [`crate::deliveries`], shared with the `backhaul deliveries` command.

pub(crate) mod delivery_id;

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::deliveries::{self, DeliveryList, DeliveryQuery};
use crate::error::ApiError;
use crate::extract::QueryParams;

/// `GET /v1/deliveries`.
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    Ok(Json(deliveries::list(state.engine.store(), &query).await?))
}
