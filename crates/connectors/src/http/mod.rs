//! JSON over HTTP: the transports, the shared sink, and how HTTP answers map
//! to the hub's failure classes. Every connector built on this sends the
//! delivery key as `Idempotency-Key` and reads RFC 9457 problem documents.
//!
//! Classification (the part integration engineers ask about):
//! - 2xx: success; the body is decoded by the connector's mapping. A body
//!   that does not decode is a business failure (`invalid_response`): the
//!   target acted, so repeating the call cannot fix what it answered.
//! - 408, 425, 429, 5xx, connection errors, timeouts: technical, retried;
//!   `Retry-After` (seconds or an HTTP date) is honoured.
//! - a failed TLS handshake (a certificate not trusted, not for the host,
//!   expired; a client certificate refused): technical, code `tls`, with a
//!   message saying which. It is a fault of the connection's configuration
//!   (or of the server's certificate), not of the return: as with a refused
//!   credential (`vendor`'s 401), parking every return in the exception
//!   queue would bury the one fix under per-return exceptions, so it is
//!   retried, its run of failures opens the connector's circuit breaker,
//!   and deliveries that run out of attempts are dead letters to retry once
//!   the certificate or `tls` settings are fixed. `backhaul connectors`
//!   shows the same message as the target's health.
//! - any other 4xx: business; the problem document's `code` and `detail`
//!   become the exception's code and message.

use std::sync::Arc;
use std::time::Duration;

use backhaul_domain::action::{ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub mod tls;

pub use tls::{ClientTls, TlsConfig, TlsError};

/// What a mapping asks to send.
#[derive(Debug, Clone, PartialEq)]
pub struct WireRequest {
    pub method: Method,
    /// Path and query, joined to the transport's base URL.
    pub path: String,
    pub body: serde_json::Value,
}

/// A connector's wire format: pure, no I/O.
pub trait Mapping: Send + Sync + 'static {
    /// The request for one action. A business error when the action cannot
    /// be expressed (a prerequisite's number is missing).
    fn encode(&self, request: &DeliveryRequest<'_>) -> Result<WireRequest, SinkError>;

    /// The result in a success answer to `request`.
    fn decode(
        &self,
        request: &DeliveryRequest<'_>,
        body: &serde_json::Value,
    ) -> Result<ActionResult, String>;

    /// Where the target answers health checks.
    fn health_path(&self) -> &'static str {
        "/health"
    }
}

/// Why a request got no answer. Both are technical failures; the variant
/// is the failure's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Connection refused or reset, a timeout, a name that does not
    /// resolve: code `connection`.
    #[error("{0}")]
    Connection(String),
    /// The TLS handshake failed: code `tls` (see the module documentation).
    #[error("{0}")]
    Tls(String),
}

impl TransportError {
    /// The code of the technical failure.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Connection(_) => "connection",
            TransportError::Tls(_) => "tls",
        }
    }

    /// A failure of the HTTP client: `tls` if a handshake failed anywhere
    /// in its causes, else `connection`, with the causes in the message
    /// (reqwest's own message stops at "error sending request").
    fn of_client(error: &reqwest::Error) -> TransportError {
        if let Some(message) = tls::handshake_failure(error) {
            return TransportError::Tls(message);
        }
        let mut message = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(error) = cause {
            let text = error.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = error.source();
        }
        TransportError::Connection(message)
    }
}

impl From<TransportError> for SinkError {
    fn from(error: TransportError) -> SinkError {
        SinkError::technical(error.code(), error.to_string())
    }
}

/// Moves bytes to a target and back.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'_, Result<(StatusCode, HeaderMap, Bytes), TransportError>>;
}

/// An axum router in this process (the embedded simulators).
pub struct InProcess {
    router: axum::Router,
}

impl InProcess {
    pub fn new(router: axum::Router) -> InProcess {
        InProcess { router }
    }
}

impl Transport for InProcess {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'_, Result<(StatusCode, HeaderMap, Bytes), TransportError>> {
        let router = self.router.clone();
        Box::pin(async move {
            let response = router
                .oneshot(request.map(axum::body::Body::from))
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?
                .to_bytes();
            Ok((parts.status, parts.headers, bytes))
        })
    }
}

/// A real HTTP client to a base URL, `http://` or `https://`. This is the
/// one place the hub builds an outbound HTTP client (connectors, sources,
/// webhook subscribers), always with its TLS from [`tls`].
pub struct Remote {
    client: reqwest::Client,
    base: url::Url,
}

impl Remote {
    /// A client to `base` trusting the Mozilla roots.
    pub fn new(base: &str) -> Result<Remote, String> {
        let tls = ClientTls::build(&TlsConfig::default()).map_err(|e| e.to_string())?;
        Remote::with_tls(base, &tls)
    }

    /// A client to `base` with `tls`'s trust and client certificate (used
    /// for an `https://` base; a plain `http://` one has no handshake).
    pub fn with_tls(base: &str, tls: &ClientTls) -> Result<Remote, String> {
        let mut base = url::Url::parse(base).map_err(|e| format!("`{base}`: {e}"))?;
        // Paths are joined relative to the base, so a base with a path
        // prefix (a gateway's `/erp-sim/`) keeps it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "`{base}`: the url must start with https:// or http://"
            ));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{base}`: the url has no host"));
        }
        let client = tls
            .http_client()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Remote { client, base })
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.base.scheme() == "https"
    }
}

impl Transport for Remote {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'_, Result<(StatusCode, HeaderMap, Bytes), TransportError>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let url = self
                .base
                .join(path.trim_start_matches('/'))
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            let response = self
                .client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| TransportError::of_client(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| TransportError::of_client(&e))?;
            Ok((status, headers, bytes))
        })
    }
}

/// The sink of every JSON-over-HTTP connector.
pub struct JsonHttpSink {
    target: Target,
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    mapping: Arc<dyn Mapping>,
}

impl JsonHttpSink {
    pub fn new(
        target: Target,
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        mapping: Arc<dyn Mapping>,
    ) -> JsonHttpSink {
        JsonHttpSink {
            target,
            system,
            transport,
            mapping,
        }
    }
}

impl Sink for JsonHttpSink {
    fn target(&self) -> Target {
        self.target
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            let wire = self.mapping.encode(&request)?;
            let body = serde_json::to_vec(&wire.body)
                .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
            let http_request = http::Request::builder()
                .method(wire.method)
                .uri(&wire.path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("idempotency-key", request.key)
                .header("x-correlation-id", request.correlation_id.to_string())
                .body(Bytes::from(body))
                .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
            let (status, headers, bytes) = self.transport.send(http_request).await?;
            classify(status, &headers, &bytes)?;
            let value: serde_json::Value = if bytes.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    SinkError::business(
                        "invalid_response",
                        format!("{status} with a body that is not JSON: {e}"),
                    )
                })?
            };
            self.mapping
                .decode(&request, &value)
                .map_err(|e| SinkError::business("invalid_response", e))
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let request = http::Request::builder()
                .method(Method::GET)
                .uri(self.mapping.health_path())
                .body(Bytes::new())
                .map_err(|e| SinkError::technical("health", e.to_string()))?;
            let (status, headers, bytes) = self.transport.send(request).await?;
            classify(status, &headers, &bytes)
        })
    }
}

/// Sorts an HTTP answer into success, technical or business failure.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let problem: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |field: &str| {
        problem
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let code = text("code").unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = text("detail")
        .or_else(|| text("title"))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.as_u16() == 425;
    if retryable {
        Err(SinkError::Technical {
            code,
            message,
            status: Some(status.as_u16()),
            retry_after: retry_after(headers),
        })
    } else {
        Err(SinkError::Business {
            code,
            message,
            status: Some(status.as_u16()),
        })
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    delta.to_std().ok()
}

/// Helpers the mappings share.
pub(crate) mod wire {
    use backhaul_domain::action::{ActionKind, ActionResult};
    use backhaul_domain::values::ExternalRef;
    use backhaul_engine::{DeliveryRequest, SinkError};

    /// The number a prerequisite produced, or the business error saying
    /// which is missing (an operator skipped it without a number).
    pub(crate) fn prerequisite<'a>(
        request: &'a DeliveryRequest<'_>,
        kind: ActionKind,
    ) -> Result<&'a ExternalRef, SinkError> {
        request.prerequisite_number(kind).ok_or_else(|| {
            SinkError::business(
                "prerequisite_missing",
                format!(
                    "no {} number to refer to (skipped by an operator?)",
                    kind.as_str()
                ),
            )
        })
    }

    /// `value` as one URL path segment: every byte outside RFC 3986's
    /// unreserved characters percent-encoded. Document numbers may contain
    /// `/` (`ASN/2025/17`) or `#`, which would otherwise add path segments
    /// or start a fragment and send the request to another resource.
    pub(crate) fn path_segment(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    /// A document number from a string field of the answer.
    pub(crate) fn document(body: &serde_json::Value, field: &str) -> Result<ActionResult, String> {
        let number = body
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the answer has no `{field}`: {body}"))?;
        Ok(ActionResult::Document {
            number: ExternalRef::parse(number).map_err(|e| format!("`{field}`: {e}"))?,
            amount: None,
        })
    }
}
