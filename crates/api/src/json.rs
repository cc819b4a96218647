//! Request bodies: our own JSON extractor instead of `axum::Json`, so that
//! every way a body can be wrong becomes an [`ApiError`] problem with a
//! stable code, and so that handlers also get the raw bytes the idempotency
//! hash is computed over.
//!
//! Checks, in order: the content type is `application/json` (415), the body
//! fits [`crate::ApiConfig::max_body_bytes`] (413, enforced by the
//! `DefaultBodyLimit` layer the router installs), the bytes are JSON (400
//! `malformed_json`), the JSON fits the model (422 `invalid_body`, naming the
//! field path, e.g. `lines[0].sku: invalid SKU: ...`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body parsed into `T`, with the bytes it was parsed from.
#[derive(Debug)]
pub(crate) struct JsonBody<T> {
    pub(crate) value: T,
    pub(crate) raw: Bytes,
}

/// The body of a command that takes no arguments (`close`, `expire`):
/// nothing at all, or an empty JSON object.
#[derive(Debug)]
pub(crate) struct EmptyBody {
    pub(crate) raw: Bytes,
}

/// Reads the whole body under the configured limit.
pub(crate) async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.config.max_body_bytes,
                }
            } else {
                ApiError::BodyUnreadable(rejection.body_text())
            }
        })
}

pub(crate) fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be sent with `Content-Type: application/json`".to_owned(),
        ));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(mime) if mime.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "expected `Content-Type: application/json`, got {value:?}"
        ))),
    }
}

/// Parses `bytes` as one JSON document of type `T`. Syntax errors are
/// `malformed_json`; a document that does not fit `T` is `invalid_body` with
/// the path of the offending field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    typed(bytes).map_err(|typed_error| {
        // Parsing streams, so a field that does not fit can be met before a
        // syntax error further on (`{"a":}`): a broken document is
        // `malformed_json` whatever was met first. Only failures pay for
        // this second pass.
        match serde_json::from_slice::<IgnoredAny>(bytes) {
            Err(syntax) => ApiError::MalformedJson(syntax.to_string()),
            Ok(_) => typed_error,
        }
    })
}

fn typed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(inner.to_string())
            }
            Category::Data if path == "." => ApiError::InvalidBody(inner.to_string()),
            Category::Data => ApiError::InvalidBody(format!("{path}: {inner}")),
        }
    })?;
    // Trailing bytes after the document (`{}{}`, `{} x`) are malformed too.
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        require_json_content_type(request.headers())?;
        let raw = read_body(request, state).await?;
        let value = parse(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

/// The only JSON an argument-less command accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

impl FromRequest<AppState> for EmptyBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let raw = read_body(request, state).await?;
        if !raw.is_empty() {
            require_json_content_type(&headers)?;
            parse::<NoArguments>(&raw)?;
        }
        Ok(EmptyBody { raw })
    }
}

#[cfg(test)]
mod tests {
    use backhaul_domain::model::ReturnRequest;

    use super::*;

    fn code(error: &ApiError) -> &'static str {
        match error {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            _ => "other",
        }
    }

    #[test]
    fn syntax_errors_are_malformed_and_model_errors_name_the_field() {
        for bad in ["{", "{\"a\":}", "{\"a\": 1, }", "{} {}", "", "nul"] {
            let error = parse::<NoArguments>(bad.as_bytes()).unwrap_err();
            assert_eq!(code(&error), "malformed_json", "{bad}: {error}");
        }
        let error = parse::<NoArguments>(b"{\"x\":1}").unwrap_err();
        assert_eq!(code(&error), "invalid_body");
        let error =
            parse::<ReturnRequest>(br#"{"channel":"portal","customer":" bad"}"#).unwrap_err();
        assert_eq!(code(&error), "invalid_body");
        assert!(
            error
                .to_string()
                .starts_with("customer: invalid customer account"),
            "{error}"
        );
    }

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(require_json_content_type(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(require_json_content_type(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json_content_type(&headers).is_ok());
    }
}
