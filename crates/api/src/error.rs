//! [`ApiError`], the one error type of the HTTP boundary, and the one place
//! where errors become HTTP responses: RFC 9457 problem documents
//! (`application/problem+json`) with a stable snake_case `code` that clients
//! branch on.
//!
//! Every failure of every route goes through [`ApiError`]'s `IntoResponse`,
//! including the ones axum would otherwise answer in plain text (unknown
//! route, wrong method, body errors), so a client only ever has to parse one
//! error shape. Internal failures are logged here with their detail and
//! answered without it.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backhaul_domain::Rejection;
use backhaul_domain::model::CarrierMilestone;
use backhaul_domain::values::ReturnId;
use backhaul_engine::Error as EngineError;
use backhaul_webhooks::VerifyError;
use schemars::JsonSchema;
use serde::Serialize;

use crate::auth::Scope;
use crate::deliveries::Error as DeliveriesError;

/// Prefix of every problem `type` URI; the code is appended.
const PROBLEM_TYPE_BASE: &str = "https://backhaul.dev/problems/";

/// Why a request failed. Each variant maps to exactly one `code` (except
/// [`ApiError::Engine`], whose rejections carry their own codes).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or failed the command.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The body is not syntactically valid JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but does not fit the model; the message names the
    /// field path.
    #[error("{0}")]
    InvalidBody(String),
    /// The body was not declared as `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than [`crate::ApiConfig::max_body_bytes`].
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body could not be read (the client went away mid-request).
    #[error("the body could not be read: {0}")]
    BodyUnreadable(String),
    #[error("the Idempotency-Key header is required on every command")]
    IdempotencyKeyMissing,
    #[error("invalid Idempotency-Key header: {0}")]
    IdempotencyKeyInvalid(&'static str),
    #[error("invalid X-Correlation-Id header: {0}")]
    CorrelationIdInvalid(String),
    /// No key, an unknown or revoked key, or a wrong secret. The message
    /// deliberately does not say which of these it was.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The key is valid but lacks the scope the route needs.
    #[error("this API key lacks the `{0}` scope")]
    Forbidden(Scope),
    #[error("return {0} does not exist")]
    ReturnNotFound(ReturnId),
    #[error("invalid return id {0:?}: expected a UUID")]
    InvalidReturnId(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("invalid delivery id {0:?}: expected a positive integer")]
    InvalidDeliveryId(String),
    /// An operator's request about a delivery was refused or failed.
    #[error(transparent)]
    Deliveries(#[from] DeliveriesError),
    /// No route matches the path.
    #[error("no route matches {0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A store failure outside the engine (looking up an API key).
    #[error(transparent)]
    Store(#[from] backhaul_store::Error),
    /// No inbound webhook source of this name is configured.
    #[error("no webhook source `{0}` is configured")]
    WebhookSourceUnknown(String),
    /// The Standard Webhooks headers are missing or do not verify.
    #[error("the webhook was not verified: {0}")]
    WebhookVerification(VerifyError),
    /// A byte-for-byte copy of an attempt that was refused, or is still
    /// being processed (see `webhooks` for why copies of refused attempts
    /// are refused).
    #[error(
        "this exact attempt (webhook-id and webhook-timestamp) was refused before or is being processed; a retry is signed with the time of its own attempt"
    )]
    WebhookReplayed,
    /// The source remembers as many refused attempts as it may.
    #[error("too many refused deliveries to remember; retry later")]
    WebhookReplayWindowFull,
    /// The webhook-id was applied before with another body.
    #[error("webhook-id {0:?} was already used with a different body")]
    WebhookIdReused(String),
    /// The body's reference names no return.
    #[error("data.{field}: no return has {field} {value:?}")]
    WebhookReturnUnknown { field: &'static str, value: String },
    /// The body's reference names more than one return.
    #[error("data.{field}: {value:?} names more than one return; name it by return_id")]
    WebhookReturnAmbiguous { field: &'static str, value: String },
    /// The body's references name different returns.
    #[error("data: {0}")]
    WebhookReturnMismatch(String),
    /// A carrier status the source neither maps nor is a canonical milestone.
    #[error(
        "data.status: carrier status {status:?} is not mapped; send a canonical milestone ({milestones}) or add it to webhooks.inbound.{source_name}.status_map",
        milestones = CarrierMilestone::ALL.map(CarrierMilestone::as_str).join(", ")
    )]
    WebhookUnmappedStatus { source_name: String, status: String },
}

/// The body of every error response (RFC 9457).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Problem {
    /// `https://backhaul.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub(crate) type_uri: String,
    /// Short summary of the kind of problem; the same for every occurrence of
    /// a code.
    pub(crate) title: &'static str,
    /// The HTTP status, repeated for clients that lose the status line.
    pub(crate) status: u16,
    /// What went wrong with this request, in words a person can act on.
    pub(crate) detail: String,
    /// Stable machine-readable code; never changes meaning.
    pub(crate) code: &'static str,
    /// Every problem of a batch (master data), each with the file, line,
    /// record and column it is about; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub(crate) problems: Vec<serde_json::Value>,
}

/// Status, code and title of one kind of problem.
struct Kind {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    /// A header the client needs to act on this problem.
    header: Option<(HeaderName, &'static str)>,
    /// Whether the detail may hold internals (paths, SQL, stored data) and
    /// so goes to the log instead of the client.
    internal: bool,
}

const fn kind(status: StatusCode, code: &'static str, title: &'static str) -> Kind {
    Kind {
        status,
        code,
        title,
        header: None,
        internal: false,
    }
}

impl Kind {
    fn with_header(mut self, name: HeaderName, value: &'static str) -> Kind {
        self.header = Some((name, value));
        self
    }
}

fn internal() -> Kind {
    Kind {
        internal: true,
        ..kind(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
    }
}

/// Status of a domain rejection: 404 when the return is missing, 409 when the
/// command conflicts with the return's state (retrying later may succeed),
/// 422 when the command itself is wrong (retrying as is never will).
fn rejection_kind(rejection: &Rejection) -> Kind {
    let code = rejection.code();
    match rejection {
        Rejection::NotFound => kind(StatusCode::NOT_FOUND, code, "Return not found"),
        Rejection::AlreadyExists
        | Rejection::InvalidTransition { .. }
        | Rejection::Duplicate { .. }
        | Rejection::NotReadyToClose(_)
        | Rejection::UnitsAlreadyReceived
        | Rejection::NotExpired { .. }
        | Rejection::NoExpiry => kind(
            StatusCode::CONFLICT,
            code,
            "The command conflicts with the return's state",
        ),
        Rejection::NoLines
        | Rejection::DuplicateLine(_)
        | Rejection::UnknownLine(_)
        | Rejection::SkuMismatch { .. }
        | Rejection::CurrencyMismatch { .. }
        | Rejection::QuantityNotPositive { .. }
        | Rejection::QuantityExceeds { .. }
        | Rejection::SerialCountMismatch { .. }
        | Rejection::CreditExceedsPaid { .. }
        | Rejection::Invalid { .. } => kind(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "The command was rejected",
        ),
    }
}

impl ApiError {
    /// The problems of a refused batch, for the `problems` member.
    fn problems(&self) -> Vec<serde_json::Value> {
        match self {
            ApiError::Engine(EngineError::MasterData(errors)) => errors
                .problems()
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            ApiError::Engine(e) => match e {
                EngineError::Rejected(r) => rejection_kind(r),
                EngineError::IdempotencyKeyReused { .. } => kind(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "Idempotency key reused with a different request",
                ),
                EngineError::Contention(_) => kind(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "contention",
                    "The return is busy",
                )
                .with_header(header::RETRY_AFTER, "1"),
                EngineError::NotOwner(_) => kind(
                    StatusCode::FORBIDDEN,
                    "not_attribute_owner",
                    "Your system does not own this attribute",
                ),
                EngineError::Rules(e) => kind(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.code(),
                    "The request cannot be read in the hub's terms",
                ),
                EngineError::NoPolicy => kind(
                    StatusCode::CONFLICT,
                    "no_policy",
                    "No eligibility policy is in force",
                ),
                EngineError::MasterData(_) => kind(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_master_data",
                    "The master data has problems; nothing was stored",
                ),
                EngineError::Master(_) => internal(),
                EngineError::Store(backhaul_store::Error::ShuttingDown) => shutting_down(),
                EngineError::Invariant(_) | EngineError::Corrupt(_) | EngineError::Store(_) => {
                    internal()
                }
            },
            ApiError::MalformedJson(_) => {
                kind(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
            }
            ApiError::InvalidBody(_) => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "The body does not fit the model",
            ),
            ApiError::UnsupportedMediaType(_) => kind(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge { .. } => kind(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            ApiError::BodyUnreadable(_) => kind(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                "The body could not be read",
            ),
            ApiError::IdempotencyKeyMissing => kind(
                StatusCode::BAD_REQUEST,
                "idempotency_key_missing",
                "Idempotency key missing",
            ),
            ApiError::IdempotencyKeyInvalid(_) => kind(
                StatusCode::BAD_REQUEST,
                "idempotency_key_invalid",
                "Invalid idempotency key",
            ),
            ApiError::CorrelationIdInvalid(_) => kind(
                StatusCode::BAD_REQUEST,
                "correlation_id_invalid",
                "Invalid correlation id",
            ),
            ApiError::Unauthenticated(_) => kind(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer"),
            ApiError::Forbidden(_) => kind(StatusCode::FORBIDDEN, "forbidden", "Missing scope"),
            ApiError::ReturnNotFound(_) => kind(
                StatusCode::NOT_FOUND,
                "return_not_found",
                "Return not found",
            ),
            ApiError::InvalidReturnId(_) => kind(
                StatusCode::BAD_REQUEST,
                "invalid_return_id",
                "Invalid return id",
            ),
            ApiError::InvalidQuery(_) => kind(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "Invalid query parameters",
            ),
            ApiError::InvalidDeliveryId(_) => kind(
                StatusCode::BAD_REQUEST,
                "invalid_delivery_id",
                "Invalid delivery id",
            ),
            ApiError::Deliveries(e) => match e {
                DeliveriesError::InvalidQuery(_) => kind(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "Invalid query parameters",
                ),
                DeliveriesError::NotFound(_) => kind(
                    StatusCode::NOT_FOUND,
                    "delivery_not_found",
                    "Delivery not found",
                ),
                DeliveriesError::WrongState { .. } => kind(
                    StatusCode::CONFLICT,
                    "delivery_state_conflict",
                    "The action does not apply to the delivery's state",
                ),
                DeliveriesError::InvalidCorrection(_) => kind(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_correction",
                    "The corrected payload was refused",
                ),
                DeliveriesError::Store(backhaul_store::Error::ShuttingDown) => shutting_down(),
                DeliveriesError::Store(_) => internal(),
            },
            ApiError::NotFound(_) => kind(StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::MethodNotAllowed { .. } => kind(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::Store(backhaul_store::Error::ShuttingDown) => shutting_down(),
            ApiError::Store(_) => internal(),
            ApiError::WebhookSourceUnknown(_) => kind(
                StatusCode::NOT_FOUND,
                "webhook_source_unknown",
                "Unknown webhook source",
            ),
            ApiError::WebhookVerification(e) => match e {
                VerifyError::TooOld { .. } | VerifyError::TooNew { .. } => kind(
                    StatusCode::UNAUTHORIZED,
                    "webhook_timestamp_out_of_tolerance",
                    "The webhook's timestamp is outside the tolerance",
                ),
                VerifyError::MissingHeader(_)
                | VerifyError::MalformedId(_)
                | VerifyError::MalformedTimestamp
                | VerifyError::NoMatchingSignature
                | VerifyError::MalformedSignature { .. } => kind(
                    StatusCode::UNAUTHORIZED,
                    "webhook_signature_invalid",
                    "The webhook's signature does not verify",
                ),
                // A source is never built without a secret.
                VerifyError::NoSecrets => internal(),
            },
            ApiError::WebhookReplayed => kind(
                StatusCode::CONFLICT,
                "webhook_replayed",
                "This webhook attempt was replayed",
            ),
            ApiError::WebhookReplayWindowFull => kind(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_replay_window_full",
                "Too many refused webhooks to remember; retry",
            )
            .with_header(header::RETRY_AFTER, "60"),
            ApiError::WebhookIdReused(_) => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webhook_id_reused",
                "Webhook id reused with a different body",
            ),
            ApiError::WebhookReturnUnknown { .. } => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webhook_return_unknown",
                "The webhook names no return",
            ),
            ApiError::WebhookReturnAmbiguous { .. } => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webhook_return_ambiguous",
                "The webhook's reference names more than one return",
            ),
            ApiError::WebhookReturnMismatch(_) => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webhook_return_mismatch",
                "The webhook's references name different returns",
            ),
            ApiError::WebhookUnmappedStatus { .. } => kind(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unmapped_code",
                "The carrier status is not mapped",
            ),
        }
    }

    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.kind().status
    }
}

/// The hub is stopping: nothing was applied, and another hub (or this one
/// after its restart) will take the retry.
fn shutting_down() -> Kind {
    kind(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "The hub is shutting down; retry",
    )
    .with_header(header::RETRY_AFTER, "1")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let detail = if kind.internal {
            // The detail may name tables, files or stored data: it goes to
            // the log, and the client gets a pointer to it instead.
            tracing::error!(error = %self, "request failed");
            "an internal error occurred; it has been logged".to_owned()
        } else {
            self.to_string()
        };
        let problem = Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", kind.code),
            title: kind.title,
            status: kind.status.as_u16(),
            detail,
            code: kind.code,
            problems: self.problems(),
        };
        let mut response = (kind.status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some((name, value)) = kind.header {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_code_is_snake_case_and_4xx() {
        let line = backhaul_domain::values::LineNo::parse(1).unwrap();
        let rejections = [
            Rejection::NotFound,
            Rejection::AlreadyExists,
            Rejection::NoLines,
            Rejection::DuplicateLine(line),
            Rejection::UnknownLine(line),
            Rejection::NoExpiry,
            Rejection::UnitsAlreadyReceived,
        ];
        for r in rejections {
            let k = rejection_kind(&r);
            assert!(k.status.is_client_error(), "{}", k.code);
            assert!(
                k.code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                k.code
            );
        }
    }

    #[test]
    fn contention_says_when_to_retry() {
        let id = ReturnId::parse("0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        let response = ApiError::Engine(EngineError::Contention(id)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_their_detail() {
        let error = ApiError::Engine(EngineError::Corrupt("table events row 7".into()));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal");
        assert!(!problem["detail"].as_str().unwrap().contains("row 7"));
    }
}
