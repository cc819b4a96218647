//! Extractors for the parts of a request other than the body and the keys:
//! the return or delivery id in the path, the optional `X-Correlation-Id`
//! header and the query string. Each parses into a domain value or fails with the
//! [`ApiError`] its problem code names, never with axum's plain-text
//! rejections.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use backhaul_domain::values::ReturnId;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

pub(crate) const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// The `{id}` of `/v1/returns/{id}/...`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReturnPath(pub(crate) ReturnId);

impl<S: Send + Sync> FromRequestParts<S> for ReturnPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::InvalidReturnId(e.body_text()))?;
        let id = ReturnId::parse(&raw).map_err(|_| ApiError::InvalidReturnId(raw))?;
        tracing::Span::current().record("return_id", tracing::field::display(id));
        Ok(ReturnPath(id))
    }
}

/// The `{id}` of `/v1/deliveries/{id}/...`: a positive integer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliveryPath(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for DeliveryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::InvalidDeliveryId(e.body_text()))?;
        let id = raw
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(ApiError::InvalidDeliveryId(raw))?;
        tracing::Span::current().record("delivery_id", id);
        Ok(DeliveryPath(id))
    }
}

/// The caller's correlation id, if it sent one. It ties the events of a new
/// return to the partner's own business transaction; for an existing return
/// the engine keeps the return's correlation id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CorrelationId(pub(crate) Option<Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(CORRELATION_ID_HEADER) else {
            return Ok(CorrelationId(None));
        };
        let parsed = value
            .to_str()
            .ok()
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .ok_or_else(|| ApiError::CorrelationIdInvalid(format!("{value:?} is not a UUID")))?;
        Ok(CorrelationId(Some(parsed)))
    }
}

/// The query string parsed into `T` (which denies unknown parameters).
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::InvalidQuery(e.body_text()))
    }
}
