//! Errors, on both sides of the simulator: [`SimError`] is what the library
//! API ([`crate::Sim::open`], [`crate::Sim::postings`]…) returns, and
//! [`Problem`] is the one shape every failed HTTP request is answered with:
//! an RFC 9457 `application/problem+json` document with a stable snake_case
//! `code` the hub branches on.
//!
//! Business rejections ([`Rejection`]) are 422 with their own codes; they
//! are deterministic (the same request on the same state is rejected again),
//! which is what lets the hub tell them from technical failures.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Prefix of every problem `type` URI; the code is appended.
const PROBLEM_TYPE_BASE: &str = "https://backhaul.dev/sim/problems/";

/// What can go wrong opening or reading a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is out of range; the message names the field.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// `"erp"`, `"wms"`, `"carrier"` or `"portal"` was expected.
    #[error("unknown simulator kind {0:?}: expected erp, wms, carrier or portal")]
    UnknownKind(String),
    /// The database file was created by a simulator of another kind; opening
    /// it would mix two systems' documents.
    #[error("the database belongs to a {found} simulator, not {expected}")]
    WrongKind { expected: String, found: String },
    #[error("simulator database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not read back as it was written.
    #[error("simulator database is corrupt: {0}")]
    Corrupt(String),
}

/// The business rules a simulator enforces, each with its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectionCode {
    UnknownSku,
    PeriodClosed,
    UnknownReturnOrder,
    CreditLimitExceeded,
    CurrencyMismatch,
    UnknownSite,
    UnknownAsn,
    UnknownTrackingNumber,
}

impl RejectionCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RejectionCode::UnknownSku => "unknown_sku",
            RejectionCode::PeriodClosed => "period_closed",
            RejectionCode::UnknownReturnOrder => "unknown_return_order",
            RejectionCode::CreditLimitExceeded => "credit_limit_exceeded",
            RejectionCode::CurrencyMismatch => "currency_mismatch",
            RejectionCode::UnknownSite => "unknown_site",
            RejectionCode::UnknownAsn => "unknown_asn",
            RejectionCode::UnknownTrackingNumber => "unknown_tracking_number",
        }
    }
}

/// A business rejection: 422, nothing stored, the idempotency key not
/// consumed (a corrected retry may reuse it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: RejectionCode,
    pub(crate) detail: String,
}

impl Rejection {
    pub(crate) fn new(code: RejectionCode, detail: impl Into<String>) -> Self {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

/// Every kind of failed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Code {
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    /// Not JSON, or JSON of the wrong shape; `field` says where.
    InvalidBody,
    InvalidQuery,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    /// A lost response, or a real failure of the simulator's database.
    Internal,
    NotFound,
    MethodNotAllowed,
    Rejected(RejectionCode),
}

impl Code {
    fn status(&self) -> StatusCode {
        match self {
            Code::IdempotencyKeyMissing
            | Code::IdempotencyKeyInvalid
            | Code::InvalidBody
            | Code::InvalidQuery => StatusCode::BAD_REQUEST,
            Code::IdempotencyKeyReused | Code::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Code::IdempotencyKeyMissing => "idempotency_key_missing",
            Code::IdempotencyKeyInvalid => "idempotency_key_invalid",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::InvalidBody => "invalid_body",
            Code::InvalidQuery => "invalid_query",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RateLimited => "rate_limited",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Rejected(code) => code.as_str(),
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Code::IdempotencyKeyMissing => "Idempotency key missing",
            Code::IdempotencyKeyInvalid => "Invalid idempotency key",
            Code::IdempotencyKeyReused => "Idempotency key reused with a different request",
            Code::InvalidBody => "The body does not fit the request's shape",
            Code::InvalidQuery => "Invalid query parameters",
            Code::PayloadTooLarge => "Payload too large",
            Code::RateLimited => "Too many requests",
            Code::Unavailable => "Service temporarily unavailable",
            Code::Internal => "Internal error",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::Rejected(_) => "The request was rejected",
        }
    }
}

/// One failed HTTP request, ready to become a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) code: Code,
    pub(crate) detail: String,
    /// The body field at fault (`lines[0].quantity`), for `invalid_body`.
    pub(crate) field: Option<String>,
    /// Whole seconds to wait, sent as `Retry-After`.
    pub(crate) retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Self {
        Problem::new(Code::Rejected(rejection.code), rejection.detail)
    }
}

/// A failure of the simulator itself: logged with its detail, answered
/// without it.
impl From<SimError> for Problem {
    fn from(error: SimError) -> Self {
        tracing::error!(%error, "simulator failed");
        Problem::new(Code::Internal, "internal error")
    }
}

/// The body of every error response (RFC 9457).
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'a str,
    /// Extension member: the body field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let code = self.code.as_str();
        let body = ProblemBody {
            type_uri: format!("{PROBLEM_TYPE_BASE}{code}"),
            title: self.code.title(),
            status: status.as_u16(),
            code,
            detail: &self.detail,
            field: self.field.as_deref(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problems_are_rfc9457_with_retry_after_when_given() {
        let mut problem = Problem::new(Code::RateLimited, "slow down");
        problem.retry_after = Some(2);
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "rate_limited");
        assert_eq!(body["status"], 429);
        assert_eq!(
            body["type"],
            "https://backhaul.dev/sim/problems/rate_limited"
        );
        assert!(body.get("field").is_none());
    }

    #[test]
    fn every_code_is_snake_case() {
        let codes = [
            RejectionCode::UnknownSku,
            RejectionCode::PeriodClosed,
            RejectionCode::UnknownReturnOrder,
            RejectionCode::CreditLimitExceeded,
            RejectionCode::CurrencyMismatch,
            RejectionCode::UnknownSite,
            RejectionCode::UnknownAsn,
            RejectionCode::UnknownTrackingNumber,
        ];
        for code in codes {
            let code = Code::Rejected(code);
            assert_eq!(code.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }
}
