//! `POST /v1/webhooks/{source}`: signed webhooks from a configured source
//! (a WMS, a carrier, or any system sending the hub's own commands).
//!
//! In order: the source must be configured (404), the body fit the size
//! limit (413), the Standard Webhooks headers verify against the source's
//! secrets and tolerance (401, before the body is read as JSON), the attempt
//! not be a copy of a refused one (409, see `crate::webhooks`), the body be
//! JSON of the source's kind (400, 415, 422 naming the field) naming one
//! return (422); then the command goes through the engine's inbox under the
//! dedup key `webhook:<webhook-id>`. Nothing is applied unless everything
//! before passed, and the command itself is all or nothing.
//!
//! Answers: the command's result (200), or the first answer again for a
//! webhook-id applied before (200, `Idempotent-Replayed: true`). A fact the
//! return already has under another webhook-id (the same receipt, the same
//! scan sent twice by the carrier) is acknowledged with 200 and
//! `"outcome": "already_recorded"`: senders retry whatever is not 2xx, and
//! no retry can change a fact that is already known.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backhaul_domain::values::ReturnId;
use backhaul_domain::{Command, Rejection};
use backhaul_engine::{Engine, Error as EngineError, Inbox, Received};
use backhaul_store::StreamLookup;
use backhaul_webhooks::Verified;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::json::{read_body, require_json_content_type};
use crate::routes::v1::returns::outcome_response;
use crate::webhooks::InboundSource;
use crate::webhooks::mapping::{self, ReturnRefs};

/// `POST /v1/webhooks/{source}`.
pub(crate) async fn receive(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Path(name) = Path::<String>::from_request_parts(&mut parts, &state)
        .await
        .map_err(|e| ApiError::WebhookSourceUnknown(e.body_text()))?;
    let source = state
        .webhooks
        .source(&name)
        .ok_or(ApiError::WebhookSourceUnknown(name))?;
    tracing::Span::current().record("partner", source.name.as_str());
    let headers = parts.headers.clone();
    let raw = read_body(Request::from_parts(parts, body), &state).await?;
    let now = state.engine.now();
    let verified = source.verify(&headers, &raw, now).inspect_err(|error| {
        // Says which source and why, never what was sent: a misconfigured
        // sender shows up here, and so does anyone probing.
        tracing::info!(source = %source.name, %error, "webhook not verified");
    })?;
    tracing::Span::current().record("webhook_id", verified.id.as_str());
    let attempt = source.begin(&verified, now)?;
    let result = apply(&state, &source, &headers, &raw, &verified).await;
    match &result {
        // Refused for what the sender sent: its exact copies are refused
        // too, while the sender's re-signed retries are processed.
        Err(error) if error.status().is_client_error() => attempt.keep(),
        // Applied (the inbox answers for it from now on), or failed for the
        // hub's own reasons (a copy is as welcome as a retry).
        Ok(_) | Err(_) => drop(attempt),
    }
    if let Err(error) = &result {
        tracing::info!(source = %source.name, webhook_id = %verified.id, %error, "webhook refused");
    }
    result
}

/// Everything after verification: read the body, find the return, apply.
async fn apply(
    state: &AppState,
    source: &InboundSource,
    headers: &HeaderMap,
    raw: &[u8],
    verified: &Verified,
) -> Result<Response, ApiError> {
    require_json_content_type(headers)?;
    let mapped = mapping::map(source, raw)?;
    let (field, return_id) = resolve(&state.engine, &mapped.refs).await?;
    tracing::Span::current().record("return_id", tracing::field::display(return_id));
    let mut command = mapped.command;
    if let Command::CorrectLine { system, .. } = &mut command {
        // As on the HTTP route, the corrector is who sent it; the engine
        // checks that it owns the attributes.
        source.name.clone_into(system);
    }
    // The body as sent: the same webhook-id with another body is refused.
    let fingerprint = hex::encode(Sha256::digest(raw));
    let inbox = Inbox::new(state.engine.clone(), &source.name);
    let key = format!("webhook:{}", verified.id);
    match inbox
        .receive(return_id, command, &key, &fingerprint, None)
        .await
    {
        Ok(Received::Applied(outcome) | Received::Duplicate(outcome)) => {
            Ok(outcome_response(outcome))
        }
        Err(EngineError::Rejected(rejection @ Rejection::Duplicate { .. })) => {
            let body = json!({
                "outcome": "already_recorded",
                "return_id": return_id,
                "detail": rejection.to_string(),
            });
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        Err(EngineError::Rejected(Rejection::NotFound)) => Err(ApiError::WebhookReturnUnknown {
            field,
            value: return_id.to_string(),
        }),
        Err(EngineError::IdempotencyKeyReused { .. }) => {
            Err(ApiError::WebhookIdReused(verified.id.to_string()))
        }
        Err(other) => Err(ApiError::Engine(other)),
    }
}

/// The one return the body's references name, and the field that named it.
/// Every reference given must name the same return.
async fn resolve(engine: &Engine, refs: &ReturnRefs) -> Result<(&'static str, ReturnId), ApiError> {
    let mut found: Vec<(&'static str, String, ReturnId)> = Vec::new();
    if let Some(id) = refs.return_id {
        found.push(("return_id", id.to_string(), id));
    }
    let lookups = [
        (
            "rma_number",
            refs.rma_number
                .as_deref()
                .map(|v| (v, StreamLookup::Reference(v))),
        ),
        (
            "tracking_number",
            refs.tracking_number
                .as_ref()
                .map(|t| (t.as_str(), StreamLookup::TrackingNumber(t.as_str()))),
        ),
    ];
    for (field, lookup) in lookups {
        let Some((value, lookup)) = lookup else {
            continue;
        };
        match engine.find_returns(lookup).await?.as_slice() {
            [] => {
                return Err(ApiError::WebhookReturnUnknown {
                    field,
                    value: value.to_owned(),
                });
            }
            [id] => found.push((field, value.to_owned(), *id)),
            [_, _, ..] => {
                return Err(ApiError::WebhookReturnAmbiguous {
                    field,
                    value: value.to_owned(),
                });
            }
        }
    }
    let Some((field, _, id)) = found.first().cloned() else {
        // `mapping` never lets a body through without a reference.
        return Err(ApiError::InvalidBody(
            "data: name the return with `return_id` or `rma_number`".into(),
        ));
    };
    if let Some((other, value, _)) = found.iter().find(|(_, _, other)| *other != id) {
        return Err(ApiError::WebhookReturnMismatch(format!(
            "{field} and {other} ({value:?}) name different returns"
        )));
    }
    Ok((field, id))
}
