//! What the generic REST connectors (`rest_wms`, `rest_carrier`) share: an
//! operation's settings (method, path template, field mapping, constants,
//! answer fields, an optional look-up before the create), the connection
//! settings (bearer token from an environment variable, static headers, how
//! errors are read), and the sink that runs an operation over a
//! [`Transport`]. The field mapping itself is pure and lives in `fields`.
//!
//! What does not live here: which canonical fields and answer fields each
//! action offers (the connector's own folder says that).
//!
//! Idempotency. Every request carries the delivery key as `Idempotency-Key`;
//! a target that deduplicates on it never creates twice. A target that does
//! not can be given a `lookup`: a `GET` before the create that finds the
//! document an earlier attempt made (by the RMA number or the delivery key
//! in the path or query), whose answer is read like the create's.
//!
//! Classification: the shared rules of [`crate::http::classify`] (2xx
//! success; 408, 425, 429, 5xx and connection errors technical; other 4xx
//! business), with the error's code and message read from the paths
//! configured in `errors` (default: the problem document's `code` and
//! `detail`), and the statuses in `errors.technical_statuses` technical as
//! well (a WMS that answers 409 while a record is locked).

pub(crate) mod fields;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::model::Label;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Transport, retry_after};
use crate::vendor::{self, Answer, Env, Secret};
use fields::{AnswerPath, BodyMapping, Field, PathTemplate};

/// One operation of a REST connector (`[connectors.wms.rest_wms.receipt]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    /// HTTP method: `POST` (default), `PUT`, `PATCH` or `DELETE`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query after the base URL, with canonical fields in braces,
    /// each percent-encoded: `/asn/{rma}`, `/labels/{tracking_number}`.
    pub path: String,
    /// Canonical field → the target's field: `"lines[].sku" =
    /// "items[].itemCode"`. Line fields go one element per action line.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The target's field → a constant sent with every request
    /// (`"type" = "RETURN"`); any TOML value.
    #[serde(default, rename = "static")]
    pub constants: BTreeMap<String, Value>,
    /// Result field → where the success answer holds it (`number =
    /// "data.asnNumber"`). Which result fields exist depends on the action.
    #[serde(default)]
    pub answer: BTreeMap<String, String>,
    /// A `GET` before the create, for targets that do not deduplicate on
    /// the `Idempotency-Key` header.
    #[serde(default)]
    pub lookup: Option<LookupConfig>,
}

fn default_method() -> String {
    "POST".to_owned()
}

/// A look-up before the create (`[….receipt.lookup]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// Path and query of the `GET`, with placeholders as in `path`
    /// (`/asn?reference={rma}`).
    pub path: String,
    /// Where the found record is in the look-up's answer (`items.0`); empty
    /// for the whole answer. A 404, or nothing at this path, means not
    /// found; the record's fields are read with the operation's `answer`
    /// paths.
    #[serde(default)]
    pub found: String,
}

/// How a REST target's errors are read (`[….errors]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsConfig {
    /// Where an error answer holds its code (default `code`, as in RFC 9457
    /// problem documents).
    #[serde(default = "default_error_code")]
    pub code: String,
    /// Where an error answer holds its message (default `detail`).
    #[serde(default = "default_error_message")]
    pub message: String,
    /// 4xx statuses this target uses for passing conditions (409 while a
    /// record is locked): technical, so retried, instead of business.
    #[serde(default)]
    pub technical_statuses: Vec<u16>,
}

impl Default for ErrorsConfig {
    fn default() -> ErrorsConfig {
        ErrorsConfig {
            code: default_error_code(),
            message: default_error_message(),
            technical_statuses: Vec::new(),
        }
    }
}

fn default_error_code() -> String {
    "code".to_owned()
}

fn default_error_message() -> String {
    "detail".to_owned()
}

/// The connection settings both REST kinds have, borrowed from their tables.
pub(crate) struct Connection<'a> {
    /// The settings table, for error messages (`rest_wms`).
    pub(crate) table: &'a str,
    pub(crate) token_env: Option<&'a str>,
    pub(crate) auth_header: &'a str,
    pub(crate) auth_scheme: &'a str,
    pub(crate) headers: &'a BTreeMap<String, String>,
    pub(crate) errors: &'a ErrorsConfig,
    pub(crate) health_path: &'a str,
}

pub(crate) fn default_auth_header() -> String {
    "authorization".to_owned()
}

pub(crate) fn default_auth_scheme() -> String {
    "Bearer".to_owned()
}

pub(crate) fn default_health_path() -> String {
    "/health".to_owned()
}

/// What an operation's success answer becomes.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A document; its number at the path.
    Document(AnswerPath),
    /// A label: tracking number, label reference, optional expiry (RFC
    /// 3339) and optional carrier at their paths; `carrier` names the
    /// carrier when the answer does not.
    Label {
        tracking_number: AnswerPath,
        label_ref: AnswerPath,
        expires_at: Option<AnswerPath>,
        carrier_at: Option<AnswerPath>,
        carrier: ExternalRef,
    },
    /// Nothing to remember (a cancellation, a void).
    Accepted,
}

/// The answer fields an action's result has: the required ones and the
/// optional ones.
pub(crate) struct AnswerFields {
    pub(crate) required: &'static [&'static str],
    pub(crate) optional: &'static [&'static str],
}

/// Checks an operation's `answer` table against the result fields its
/// action has; the paths by name.
pub(crate) fn answer_paths(
    key: &str,
    answer: &BTreeMap<String, String>,
    fields: &AnswerFields,
) -> Result<BTreeMap<&'static str, AnswerPath>, String> {
    let mut out = BTreeMap::new();
    for (name, path) in answer {
        let known = fields
            .required
            .iter()
            .chain(fields.optional)
            .find(|f| **f == name.as_str())
            .ok_or_else(|| {
                let all: Vec<&str> = fields
                    .required
                    .iter()
                    .chain(fields.optional)
                    .copied()
                    .collect();
                if all.is_empty() {
                    format!("{key}.answer: this operation reads no answer fields, not `{name}`")
                } else {
                    format!(
                        "{key}.answer: unknown result field `{name}` (this operation has: {})",
                        all.join(", ")
                    )
                }
            })?;
        let parsed = AnswerPath::parse(path).map_err(|e| format!("{key}.answer.{name}: {e}"))?;
        if parsed.display().is_empty() {
            return Err(format!("{key}.answer.{name}: the path must not be empty"));
        }
        out.insert(*known, parsed);
    }
    for required in fields.required {
        if !out.contains_key(required) {
            return Err(format!(
                "{key}.answer.{required} must say where the answer holds it"
            ));
        }
    }
    Ok(out)
}

/// One operation, checked and ready to run.
pub(crate) struct Operation {
    method: Method,
    path: PathTemplate,
    body: BodyMapping,
    lookup: Option<(PathTemplate, AnswerPath)>,
    outcome: Outcome,
    /// The prerequisite whose document number the operation refers to
    /// (`{number}`).
    refers_to: Option<ActionKind>,
}

impl Operation {
    /// Checks `config` (at config key `key`) for an operation that may use
    /// the canonical fields `allowed` and whose result is `outcome`.
    pub(crate) fn compile(
        key: &str,
        config: &OperationConfig,
        allowed: &[Field],
        outcome: Outcome,
        refers_to: Option<ActionKind>,
    ) -> Result<Operation, String> {
        let method = match config.method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            other => {
                return Err(format!(
                    "{key}.method: `{other}` is not one of POST, PUT, PATCH, DELETE"
                ));
            }
        };
        let path = PathTemplate::compile(&format!("{key}.path"), &config.path, allowed)?;
        let body = BodyMapping::compile(key, &config.fields, &config.constants, allowed)?;
        let lookup = match &config.lookup {
            Some(lookup) => {
                let path =
                    PathTemplate::compile(&format!("{key}.lookup.path"), &lookup.path, allowed)?;
                let found = AnswerPath::parse(&lookup.found)
                    .map_err(|e| format!("{key}.lookup.found: {e}"))?;
                if matches!(outcome, Outcome::Accepted) {
                    return Err(format!(
                        "{key}.lookup: this operation has no result to look up"
                    ));
                }
                Some((path, found))
            }
            None => None,
        };
        Ok(Operation {
            method,
            path,
            body,
            lookup,
            outcome,
            refers_to,
        })
    }
}

/// The sink of a generic REST connector: one [`Operation`] per action kind
/// it delivers.
pub(crate) struct RestSink {
    target: Target,
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    /// The connector's name in error messages (`REST WMS`).
    name: &'static str,
    operations: BTreeMap<ActionKind, Operation>,
    /// `authorization: Bearer …`, when a token is configured.
    auth: Option<(HeaderName, Secret)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    errors: (AnswerPath, AnswerPath, Vec<u16>),
    health_path: String,
}

impl RestSink {
    pub(crate) fn new(
        target: Target,
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        name: &'static str,
        operations: BTreeMap<ActionKind, Operation>,
        connection: &Connection<'_>,
        env: Env<'_>,
    ) -> Result<RestSink, String> {
        let table = connection.table;
        let auth = match connection.token_env {
            Some(var) => {
                let token = vendor::secret_from_env(env, &format!("{table}.token_env"), var)?;
                let name = HeaderName::try_from(connection.auth_header).map_err(|_| {
                    format!(
                        "{table}.auth_header: `{}` is not a header name",
                        connection.auth_header
                    )
                })?;
                let value = if connection.auth_scheme.is_empty() {
                    token.expose().to_owned()
                } else {
                    format!("{} {}", connection.auth_scheme, token.expose())
                };
                if HeaderValue::try_from(value.as_str()).is_err() {
                    return Err(format!(
                        "{table}.token_env: the token cannot be sent in a header"
                    ));
                }
                Some((name, Secret::new(value)))
            }
            None => None,
        };
        let mut headers = Vec::new();
        for (name, value) in connection.headers {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("{table}.headers: `{name}` is not a header name"))?;
            // The hub sets these itself; a static one would contradict it.
            if header == "idempotency-key"
                || header == http::header::CONTENT_TYPE
                || auth.as_ref().is_some_and(|(a, _)| *a == header)
            {
                return Err(format!(
                    "{table}.headers: `{name}` is set by the connector and cannot be configured"
                ));
            }
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("{table}.headers.{name}: not a header value"))?;
            headers.push((header, value));
        }
        let errors = connection.errors;
        let code =
            AnswerPath::parse(&errors.code).map_err(|e| format!("{table}.errors.code: {e}"))?;
        let message = AnswerPath::parse(&errors.message)
            .map_err(|e| format!("{table}.errors.message: {e}"))?;
        if let Some(status) = errors
            .technical_statuses
            .iter()
            .find(|s| !(400..500).contains(*s))
        {
            return Err(format!(
                "{table}.errors.technical_statuses: {status} is not a 4xx status (5xx are technical already)"
            ));
        }
        if !connection.health_path.starts_with('/') {
            return Err(format!("{table}.health_path must start with `/`"));
        }
        Ok(RestSink {
            target,
            system,
            transport,
            name,
            operations,
            auth,
            headers,
            errors: (code, message, errors.technical_statuses.clone()),
            health_path: connection.health_path.to_owned(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, SinkError> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, "application/json");
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name, value.expose());
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(
                    serde_json::to_vec(body)
                        .map_err(|e| SinkError::business("encode_failed", e.to_string()))?,
                )
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(bytes)
            .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
        let (status, headers, body) = self.transport.send(request).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The shared classification with this target's error paths and extra
    /// technical statuses (see the module documentation).
    fn classify(&self, answer: &Answer) -> Result<(), SinkError> {
        let status = answer.status;
        if status.is_success() {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let (code_at, message_at, technical) = &self.errors;
        let code = code_at
            .text(&body)
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        let message = message_at
            .text(&body)
            .or_else(|| body.get("title").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.as_u16() == 425
            || technical.contains(&status.as_u16());
        if retryable {
            Err(SinkError::Technical {
                code,
                message,
                status: Some(status.as_u16()),
                retry_after: retry_after(&answer.headers),
            })
        } else {
            Err(SinkError::Business {
                code,
                message,
                status: Some(status.as_u16()),
            })
        }
    }

    async fn run(
        &self,
        request: &DeliveryRequest<'_>,
        op: &Operation,
    ) -> Result<ActionResult, SinkError> {
        let number = match op.refers_to {
            Some(kind) => Some(crate::http::wire::prerequisite(request, kind)?.as_str()),
            None => None,
        };
        if let Some((path, found)) = &op.lookup {
            let path = path.render(request, number)?;
            let answer = self.send(Method::GET, &path, None, None).await?;
            if answer.status != StatusCode::NOT_FOUND {
                self.classify(&answer)?;
                let body = answer.json()?;
                if let Some(record) = found.read(&body) {
                    return decode(&op.outcome, record).map_err(invalid);
                }
            }
        }
        let path = op.path.render(request, number)?;
        let body = if op.body.is_empty() {
            None
        } else {
            Some(op.body.body(request, number)?)
        };
        let answer = self
            .send(op.method.clone(), &path, Some(request.key), body.as_ref())
            .await?;
        self.classify(&answer)?;
        let body = answer.json()?;
        decode(&op.outcome, &body).map_err(invalid)
    }
}

fn invalid(message: String) -> SinkError {
    SinkError::business("invalid_response", message)
}

/// The result in a success answer (or a found record).
fn decode(outcome: &Outcome, body: &Value) -> Result<ActionResult, String> {
    let text = |path: &AnswerPath| {
        path.text(body)
            .ok_or_else(|| format!("the answer has no `{}`: {body}", path.display()))
    };
    let reference = |path: &AnswerPath| -> Result<ExternalRef, String> {
        let raw = text(path)?;
        ExternalRef::parse(&raw).map_err(|e| format!("`{}`: {e}", path.display()))
    };
    match outcome {
        Outcome::Document(path) => Ok(ActionResult::Document {
            number: reference(path)?,
            amount: None,
        }),
        Outcome::Label {
            tracking_number,
            label_ref,
            expires_at,
            carrier_at,
            carrier,
        } => {
            // A label without an expiry in the answer (a service whose
            // labels do not run out) has none; one that is there must parse.
            let expires_at = match expires_at.as_ref().and_then(|p| Some((p, p.text(body)?))) {
                Some((path, raw)) => Some(
                    chrono::DateTime::parse_from_rfc3339(&raw)
                        .map_err(|e| {
                            format!("`{}`: `{raw}` is not an RFC 3339 time: {e}", path.display())
                        })?
                        .with_timezone(&chrono::Utc),
                ),
                None => None,
            };
            let carrier = match carrier_at {
                Some(path) => reference(path)?,
                None => carrier.clone(),
            };
            Ok(ActionResult::Label(Label {
                carrier,
                tracking_number: reference(tracking_number)?,
                label_ref: reference(label_ref)?,
                expires_at,
            }))
        }
        Outcome::Accepted => Ok(ActionResult::Accepted),
    }
}

impl Sink for RestSink {
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
            let kind = request.action.kind;
            let op = self.operations.get(&kind).ok_or_else(|| {
                vendor::unsupported(kind, self.name, "no operation is configured for it")
            })?;
            self.run(&request, op).await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let answer = self
                .send(Method::GET, &self.health_path, None, None)
                .await?;
            self.classify(&answer)
        })
    }
}
