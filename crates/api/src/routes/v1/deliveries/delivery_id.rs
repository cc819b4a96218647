//! `/v1/deliveries/{id}`: one delivery with its payload and audit trail
//! (`GET`), and what an operator may do to it (`POST .../retry`, `.../skip`,
//! `.../cancel`). The actor in the audit trail is the API key's partner.
//!
//! No `Idempotency-Key` here, unlike the lifecycle commands: their keys are
//! stored by the engine in the append that applies the command, and operator
//! actions do not go through the engine's append. They are safe to repeat
//! all the same, because each one moves the delivery out of the states it
//! applies to: a repeated skip or cancel finds the delivery skipped or
//! cancelled, a repeated retry finds it pending, and each gets 409
//! `delivery_state_conflict` instead of a second effect. (Only a retry
//! repeated after the dispatcher has already tried the delivery again and
//! failed it once more applies a second time, which is then what an operator
//! asking again means.)

use axum::Json;
use axum::extract::State;
use backhaul_domain::action::Action;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::AppState;
use crate::auth::Principal;
use crate::deliveries::{self, DeliveryDetail, DeliveryView, OperatorCommand, Reason};
use crate::error::ApiError;
use crate::extract::DeliveryPath;
use crate::json::JsonBody;

/// Body of `retry`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryDelivery {
    reason: Reason,
    /// A corrected canonical action to deliver instead of the stored one.
    /// It must keep the stored payload's `kind` and `return_id`; refused
    /// with 422 `invalid_correction` otherwise. Kept as the sent text until
    /// it is checked, so that the problem names the field inside it.
    #[serde(default)]
    #[schemars(with = "Option<Action>")]
    payload: Option<Box<RawValue>>,
}

/// Body of `skip` and `cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorReason {
    reason: Reason,
}

/// `GET /v1/deliveries/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    DeliveryPath(id): DeliveryPath,
) -> Result<Json<DeliveryDetail>, ApiError> {
    Ok(Json(deliveries::detail(state.engine.store(), id).await?))
}

/// `POST /v1/deliveries/{id}/retry`. Wakes the dispatcher, so the delivery
/// goes now rather than at its next poll.
pub(crate) async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    DeliveryPath(id): DeliveryPath,
    body: JsonBody<RetryDelivery>,
) -> Result<Json<DeliveryView>, ApiError> {
    let RetryDelivery { reason, payload } = body.value;
    let command = OperatorCommand::Retry {
        correction: payload.map(|p| p.get().to_owned()),
    };
    let view = operate(&state, &principal, id, command, &reason).await?;
    state.engine.outbox_written().notify_one();
    Ok(Json(view))
}

/// `POST /v1/deliveries/{id}/skip`.
pub(crate) async fn skip(
    State(state): State<AppState>,
    principal: Principal,
    DeliveryPath(id): DeliveryPath,
    body: JsonBody<OperatorReason>,
) -> Result<Json<DeliveryView>, ApiError> {
    let view = operate(
        &state,
        &principal,
        id,
        OperatorCommand::Skip,
        &body.value.reason,
    )
    .await?;
    Ok(Json(view))
}

/// `POST /v1/deliveries/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    DeliveryPath(id): DeliveryPath,
    body: JsonBody<OperatorReason>,
) -> Result<Json<DeliveryView>, ApiError> {
    let view = operate(
        &state,
        &principal,
        id,
        OperatorCommand::Cancel,
        &body.value.reason,
    )
    .await?;
    Ok(Json(view))
}

async fn operate(
    state: &AppState,
    principal: &Principal,
    id: i64,
    command: OperatorCommand,
    reason: &Reason,
) -> Result<DeliveryView, ApiError> {
    let action = command.verb();
    let view = deliveries::operate(
        state.engine.store(),
        id,
        command,
        &principal.partner,
        reason,
        state.engine.now(),
    )
    .await?;
    tracing::info!(
        delivery_id = id,
        return_id = %view.return_id,
        action,
        actor = %principal.partner,
        state = %view.state,
        "operator action applied"
    );
    Ok(view)
}
