//! `POST /v1/returns/{id}/<command>`: one handler per lifecycle command.
//! Each parses its body, builds the matching [`Command`] and hands it to
//! the engine; the response is the engine's outcome. The lifecycle rules
//! live in the domain's `decide`, not here.
//!
//! The bodies that are not domain types on their own (`{"reason"}`,
//! `{"inspections": [...]}`, `{"dispositions": [...]}`) are defined here, and
//! their JSON Schemas come from these definitions.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use backhaul_domain::Command;
use backhaul_domain::command::{Approve, CarrierEvent, Receipt, Settlement};
use backhaul_domain::model::{DispositionLine, FinancialDocument, Inspection, Label};
use backhaul_domain::ownership::LineCorrection;
use backhaul_domain::values::ReturnId;
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{CorrelationId, ReturnPath};
use crate::idempotency::IdempotencyKey;
use crate::json::{EmptyBody, JsonBody};
use crate::routes::v1::returns::{command_meta, outcome_response};

/// Body of `hold`, `reject` and `cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    /// Why, in words for the people who will read the timeline (1 to 500
    /// characters).
    reason: String,
}

/// Body of `inspections`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inspections {
    inspections: Vec<Inspection>,
}

/// Body of `dispositions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dispositions {
    dispositions: Vec<DispositionLine>,
}

/// Everything a command needs besides its body: who sends it, to which
/// return, under which idempotency key and correlation id.
pub(crate) struct CommandContext {
    principal: Principal,
    return_id: ReturnId,
    key: IdempotencyKey,
    correlation_id: Option<Uuid>,
}

impl FromRequestParts<AppState> for CommandContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let ReturnPath(return_id) = ReturnPath::from_request_parts(parts, state).await?;
        let key = IdempotencyKey::from_request_parts(parts, state).await?;
        let CorrelationId(correlation_id) = CorrelationId::from_request_parts(parts, state).await?;
        Ok(CommandContext {
            principal,
            return_id,
            key,
            correlation_id,
        })
    }
}

impl CommandContext {
    async fn run(
        self,
        state: &AppState,
        raw: &Bytes,
        command: Command,
    ) -> Result<Response, ApiError> {
        let meta = command_meta(&self.principal, self.key, self.correlation_id, raw);
        let outcome = state.engine.execute(self.return_id, command, meta).await?;
        Ok(outcome_response(outcome))
    }
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Approve>,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::Approve(body.value))
        .await
}

/// The sender's system is recorded as the corrector; the engine refuses
/// (and records) a correction of an attribute that system does not own.
pub(crate) async fn correction(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<LineCorrection>,
) -> Result<Response, ApiError> {
    let command = Command::CorrectLine {
        system: ctx.principal.partner.clone(),
        correction: body.value,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn hold(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Reason>,
) -> Result<Response, ApiError> {
    let command = Command::HoldForReview {
        reason: body.value.reason,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Reason>,
) -> Result<Response, ApiError> {
    let command = Command::Reject {
        reason: body.value.reason,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn label(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Label>,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::IssueLabel(body.value))
        .await
}

pub(crate) async fn milestone(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<CarrierEvent>,
) -> Result<Response, ApiError> {
    let command = Command::RecordCarrierMilestone(body.value);
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn receipt(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Receipt>,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::RecordReceipt(body.value))
        .await
}

pub(crate) async fn inspections(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Inspections>,
) -> Result<Response, ApiError> {
    let command = Command::RecordInspection {
        inspections: body.value.inspections,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn dispositions(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Dispositions>,
) -> Result<Response, ApiError> {
    let command = Command::RecordDisposition {
        dispositions: body.value.dispositions,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn document(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<FinancialDocument>,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::LinkDocument(body.value))
        .await
}

pub(crate) async fn settlement(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Settlement>,
) -> Result<Response, ApiError> {
    let command = Command::RecordSettlement(body.value);
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn close(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: EmptyBody,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::Close).await
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: JsonBody<Reason>,
) -> Result<Response, ApiError> {
    let command = Command::Cancel {
        reason: body.value.reason,
    };
    ctx.run(&state, &body.raw, command).await
}

pub(crate) async fn expire(
    State(state): State<AppState>,
    ctx: CommandContext,
    body: EmptyBody,
) -> Result<Response, ApiError> {
    ctx.run(&state, &body.raw, Command::Expire).await
}
