//! The one path every creating POST takes, in the order the wire contract
//! promises:
//!
//! 1. latency (real time; the point is to make the hub wait);
//! 2. rate limit: the token bucket, 429 `rate_limited` with `Retry-After`;
//! 3. transient error: 503 `unavailable`, nothing looked at or stored;
//! 4. the `Idempotency-Key` header (400) and the body (400 `invalid_body`);
//! 5. idempotency: a stored posting with the same key and the same request
//!    (method, path, canonical body) is answered again with
//!    `Idempotent-Replayed: true`; another request under the key is 422
//!    `idempotency_key_reused`;
//! 6. business rules: 422 with the rule's code, nothing stored, the key not
//!    consumed;
//! 7. the posting (which is its own idempotency record) in one transaction;
//! 8. lost response: stored, but answered 500 `internal`.
//!
//! Steps 5 to 7 run in one `BEGIN IMMEDIATE` transaction, so two requests
//! with the same key cannot both create.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::body::{BodyError, canonical, parse_json, parse_optional_json};
use crate::command::{Applied, ApplyError, Command, Context};
use crate::db::{self, NewPosting, StoredAnswer};
use crate::error::{Code, Problem, Rejection, SimError};
use crate::faults::Admission;
use crate::sim::Sim;
use crate::stats::Outcome;

const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Set to `true` on an answer that repeats a stored one.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";

const MAX_KEY_LEN: usize = 255;

/// Whether a POST must have a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRule {
    /// A JSON object is required.
    Required,
    /// The body may be empty, which reads as `{}` (cancel, void).
    Optional,
}

/// Handles one creating POST; `parse` turns its JSON body into the command.
pub(crate) async fn post(
    sim: &Sim,
    headers: &HeaderMap,
    uri: &Uri,
    body: Result<Bytes, BytesRejection>,
    rule: BodyRule,
    parse: impl FnOnce(&Value) -> Result<Command, BodyError>,
) -> Response {
    let (outcome, response) = handle(sim, headers, uri, body, rule, parse).await;
    tracing::debug!(
        kind = %sim.kind(),
        path = uri.path(),
        ?outcome,
        status = response.status().as_u16(),
        "simulated request"
    );
    sim.counters().count(outcome);
    response
}

async fn handle(
    sim: &Sim,
    headers: &HeaderMap,
    uri: &Uri,
    body: Result<Bytes, BytesRejection>,
    rule: BodyRule,
    parse: impl FnOnce(&Value) -> Result<Command, BodyError>,
) -> (Outcome, Response) {
    let latency = sim.with_faults(|faults| faults.latency());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let now = sim.now();
    let lose_response = match sim.with_faults(|faults| faults.admit(now)) {
        Admission::RateLimited { retry_after_secs } => {
            let problem = Problem {
                retry_after: Some(retry_after_secs),
                ..Problem::new(
                    Code::RateLimited,
                    format!("rate limit exceeded; retry in {retry_after_secs} s"),
                )
            };
            return (Outcome::RateLimited, problem.into_response());
        }
        Admission::Unavailable => {
            let problem = Problem::new(
                Code::Unavailable,
                "the service is temporarily unavailable (simulated); nothing was stored",
            );
            return (Outcome::Unavailable, problem.into_response());
        }
        Admission::Admitted { lose_response } => lose_response,
    };

    let parsed = idempotency_key(headers).and_then(|key| {
        let value = read_body(body, rule)?;
        let command = parse(&value).map_err(Problem::from)?;
        Ok((key, canonical(&value), command))
    });
    let (key, body, command) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => return (Outcome::Invalid, problem.into_response()),
    };
    let request = format!("POST {}", uri.path());
    let period_closed = sim.period_closed();
    let owned = sim.clone();
    let task_key = key.clone();
    let stored = sim
        .stores()
        .spawn(async move {
            let context = Context {
                now,
                config: owned.config(),
                period_closed,
            };
            store(&owned, &task_key, &request, &body, command, &context).await
        })
        .await
        .unwrap_or_else(|e| Err(SimError::Corrupt(format!("store task failed: {e}"))));

    match stored {
        Ok(Stored::Replayed(answer)) => (Outcome::Replayed, replay(answer)),
        Ok(Stored::KeyReused) => (
            Outcome::Invalid,
            Problem::new(
                Code::IdempotencyKeyReused,
                format!(
                    "the idempotency key {key:?} was already used with a different request; \
                     use a new key for a new request"
                ),
            )
            .into_response(),
        ),
        Ok(Stored::Rejected(rejection)) => {
            (Outcome::Rejected, Problem::from(rejection).into_response())
        }
        Ok(Stored::Created { applied, response }) => {
            if applied.out_of_order {
                sim.counters().count_out_of_order();
            }
            if lose_response {
                let problem = Problem::new(
                    Code::Internal,
                    "internal error (simulated lost response); retry with the same idempotency key",
                );
                (Outcome::LostResponse, problem.into_response())
            } else {
                (Outcome::Created, json_response(applied.status, response))
            }
        }
        Err(error) => {
            tracing::error!(kind = %sim.kind(), %error, "simulator database failed");
            (
                Outcome::Failed,
                Problem::new(Code::Internal, "internal error").into_response(),
            )
        }
    }
}

/// What the transaction did.
enum Stored {
    Replayed(StoredAnswer),
    KeyReused,
    Rejected(Rejection),
    /// `response` is the serialised answer, byte for byte what a replay gets.
    Created {
        applied: Applied,
        response: String,
    },
}

async fn store(
    sim: &Sim,
    key: &str,
    request: &str,
    body: &str,
    command: Command,
    context: &Context<'_>,
) -> Result<Stored, SimError> {
    let mut tx = sim.db().begin().await?;
    if let Some(answer) = db::find_key(&mut tx, key).await? {
        // Nothing was written; dropping `tx` rolls back.
        return Ok(if answer.request == request && answer.body == body {
            Stored::Replayed(answer)
        } else {
            Stored::KeyReused
        });
    }
    let applied = match command.apply(&mut tx, context).await {
        Ok(applied) => applied,
        Err(ApplyError::Rejected(rejection)) => return Ok(Stored::Rejected(rejection)),
        Err(ApplyError::Store(error)) => return Err(error),
    };
    let response = applied.response.to_string();
    db::insert(
        &mut tx,
        NewPosting {
            kind: applied.kind,
            number: applied.number.clone(),
            key,
            request,
            rma: &applied.rma,
            body,
            status: applied.status.as_u16(),
            response: response.clone(),
            created_at: context.now,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Stored::Created { applied, response })
}

/// The `Idempotency-Key` header: present once, 1 to 255 visible ASCII
/// characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(raw) = values.next() else {
        return Err(Problem::new(
            Code::IdempotencyKeyMissing,
            "the Idempotency-Key header is required on every POST",
        ));
    };
    let invalid = |why: &str| {
        Problem::new(
            Code::IdempotencyKeyInvalid,
            format!("Idempotency-Key {why}"),
        )
    };
    if values.next().is_some() {
        return Err(invalid("must be sent once"));
    }
    let bytes = raw.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
        return Err(invalid("must be 1 to 255 characters"));
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(invalid("must be visible ASCII characters (no spaces)"));
    }
    raw.to_str()
        .map(str::to_owned)
        .map_err(|_| invalid("must be visible ASCII characters (no spaces)"))
}

fn read_body(body: Result<Bytes, BytesRejection>, rule: BodyRule) -> Result<Value, Problem> {
    let raw = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(Code::PayloadTooLarge, rejection.body_text())
        } else {
            Problem::new(Code::InvalidBody, rejection.body_text())
        }
    })?;
    let value = match rule {
        BodyRule::Required => parse_json(&raw),
        BodyRule::Optional => parse_optional_json(&raw),
    };
    value.map_err(Problem::from)
}

/// A JSON answer from its serialised text.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, answer.response);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
