//! What the connectors to vendor ERPs (`sap_s4`, `dynamics_bc`, `netsuite`)
//! share and the simulators' [`JsonHttpSink`](crate::http::JsonHttpSink)
//! does not need: credentials read from the environment and kept out of
//! logs, one HTTP exchange over a [`Transport`] with the whole answer kept
//! (a vendor delivery is several exchanges: a look-up before a create, a
//! token fetch, a read-back of the new record), the classification of a
//! vendor's error once its code and message are read from the vendor's own
//! error shape, and the small encoders the three wire formats need.
//!
//! What does not live here: anything one vendor alone needs (SAP's CSRF
//! token, NetSuite's `Location` header) stays in that vendor's folder.
//!
//! Classification (the same as `http::classify` except for 401):
//! - 2xx: success.
//! - 401: technical, code `unauthorized`. A refused credential is the
//!   connector's problem, not the return's: parking every return in the
//!   exception queue would bury the one fix (the credential) under a pile of
//!   per-return exceptions for finance. As a technical failure it is
//!   retried with backoff, and its run of failures opens the connector's
//!   circuit breaker, which holds every delivery to this ERP until the
//!   credential works again; deliveries that run out of attempts become dead
//!   letters an operator retries once it is fixed.
//! - 408, 425, 429, 5xx, connection errors: technical; `Retry-After` (seconds
//!   or an HTTP date) is honoured.
//! - any other 4xx: business, with the vendor's error code and message.

use std::sync::Arc;

use backhaul_domain::action::ActionKind;
use backhaul_engine::{DeliveryRequest, SinkError};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::http::{Transport, retry_after};

/// A credential. Its `Debug` never shows the value, so a config or sink
/// printed in a log or an error message does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Looks environment variables up. Passed in rather than read from the
/// process, like the clock elsewhere: tests give a map (setting variables
/// of the test process would be `unsafe` and shared by every test thread).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The credential in the environment variable `var`, named by the setting
/// that points at it (`password_env`). The error names the variable, never
/// a value.
pub(crate) fn secret_from_env(env: Env<'_>, setting: &str, var: &str) -> Result<Secret, String> {
    if var.trim().is_empty() {
        return Err(format!(
            "{setting} must name the environment variable that holds the credential"
        ));
    }
    match env(var) {
        Some(value) if !value.is_empty() => Ok(Secret::new(value)),
        Some(_) | None => Err(format!(
            "{setting}: the environment variable `{var}` is not set or empty"
        )),
    }
}

/// One vendor answer, kept whole: status, headers (tokens, `Location`,
/// `Retry-After`) and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// A header as text, if present and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; `Null` when empty. A body that is not JSON is a
    /// business failure (`invalid_response`): the vendor acted, so sending
    /// the same request again cannot fix what it answered.
    pub(crate) fn json(&self) -> Result<Value, SinkError> {
        parse_json(&self.body).map_err(|e| {
            SinkError::business(
                "invalid_response",
                format!("{} with a body that is not JSON: {e}", self.status),
            )
        })
    }
}

fn parse_json(body: &[u8]) -> Result<Value, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(body)
    }
}

/// One request to a vendor.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// Path and query, joined to the transport's base URL.
    pub(crate) path: String,
    pub(crate) headers: Vec<(&'static str, &'a str)>,
    pub(crate) body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: String) -> Call<'a> {
        Call {
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &'a str) -> Call<'a> {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn json(mut self, body: &'a Value) -> Call<'a> {
        self.body = Some(body);
        self
    }
}

/// Sends one call. A transport failure (connection refused, reset, timeout)
/// is technical; any answer, success or not, is returned for the caller to
/// read or classify.
pub(crate) async fn send(
    transport: &Arc<dyn Transport>,
    call: Call<'_>,
) -> Result<Answer, SinkError> {
    let mut builder = http::Request::builder()
        .method(call.method)
        .uri(&call.path)
        .header(http::header::ACCEPT, "application/json");
    for (name, value) in &call.headers {
        builder = builder.header(*name, *value);
    }
    let body = match call.body {
        Some(value) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(
                serde_json::to_vec(value)
                    .map_err(|e| SinkError::business("encode_failed", e.to_string()))?,
            )
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(body)
        .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
    let (status, headers, body) = transport.send(request).await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A vendor's error as read from its error shape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct VendorError {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

/// Sorts an answer into success, technical or business failure (see the
/// module documentation); `read` takes the code and message out of the
/// vendor's error body.
pub(crate) fn classify(answer: &Answer, read: fn(&Value) -> VendorError) -> Result<(), SinkError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(());
    }
    let vendor = parse_json(&answer.body)
        .map(|body| read(&body))
        .unwrap_or_default();
    let fallback = || format!("http_{}", status.as_u16());
    let message = vendor
        .message
        .clone()
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    if status == StatusCode::UNAUTHORIZED {
        return Err(SinkError::Technical {
            code: "unauthorized".to_owned(),
            message: match &vendor.code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            },
            status: Some(status.as_u16()),
            retry_after: retry_after(&answer.headers),
        });
    }
    let code = vendor.code.unwrap_or_else(fallback);
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.as_u16() == 425;
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

/// The business error for an action a vendor connector does not deliver;
/// `why` says what the vendor's API offers instead, so the person who finds
/// it in the exception queue knows whether to skip it.
pub(crate) fn unsupported(kind: ActionKind, vendor: &str, why: &str) -> SinkError {
    SinkError::business(
        "unsupported_action",
        format!(
            "the {vendor} connector does not handle {}: {why}",
            kind.as_str()
        ),
    )
}

/// `value` as a JSON number, for APIs that take numbers (Business Central,
/// NetSuite). JSON numbers travel as binary floating point here, so the
/// conversion is checked to give back exactly the decimal it started from;
/// a value that would change is refused rather than sent changed.
pub(crate) fn number(value: Decimal, what: &str) -> Result<Value, SinkError> {
    let exact = value.normalize();
    let refused = || {
        SinkError::business(
            "amount_not_representable",
            format!("{what} {value} cannot be sent as a JSON number without changing it"),
        )
    };
    // Whole numbers go as JSON integers (`2`, not `2.0`), as the vendors'
    // own examples write them.
    if exact.scale() == 0
        && let Ok(whole) = i64::try_from(exact)
    {
        return Ok(Value::Number(whole.into()));
    }
    let float: f64 = exact.to_string().parse().map_err(|_| refused())?;
    let back: Decimal = float.to_string().parse().map_err(|_| refused())?;
    if back != exact {
        return Err(refused());
    }
    serde_json::Number::from_f64(float)
        .map(Value::Number)
        .ok_or_else(refused)
}

/// A decimal read from a JSON number or decimal string of an answer.
pub(crate) fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// An OData string literal: single quotes, with quotes inside doubled.
pub(crate) fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `value` as one query-string component: every byte outside RFC 3986's
/// unreserved characters percent-encoded (a `$filter` expression has
/// spaces, quotes and slashes).
pub(crate) fn query_component(value: &str) -> String {
    crate::http::wire::path_segment(value)
}

/// The hub's reference for one delivery in a vendor field that holds at
/// most `max_len` characters (SAP's and Business Central's customer
/// reference fields hold 35). The delivery key (`{rma}:{kind}:{version}`,
/// stable across retries) is longer than that with the hub's RMA numbers,
/// so the reference is the RMA number and the version: `{rma}/{version}`.
/// A key of another shape is used whole. Too long for the field is a
/// business error, never a silently cut reference that could match another
/// delivery's document.
pub(crate) fn delivery_reference(
    request: &DeliveryRequest<'_>,
    field: &str,
    max_len: usize,
) -> Result<String, SinkError> {
    let action = request.action;
    let prefix = format!("{}:{}:", action.rma_number, action.kind.as_str());
    let reference = match request.key.strip_prefix(&prefix) {
        Some(version) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}/{version}", action.rma_number)
        }
        Some(_) | None => request.key.to_owned(),
    };
    if reference.chars().count() > max_len {
        return Err(SinkError::business(
            "reference_too_long",
            format!(
                "the delivery's reference `{reference}` does not fit {field} ({max_len} characters)"
            ),
        ));
    }
    Ok(reference)
}

/// The currency of an action's amounts (credit amounts, unit prices).
pub(crate) fn currency(action: &backhaul_domain::action::Action) -> Option<String> {
    action
        .lines
        .iter()
        .find_map(|l| l.amount.or(l.unit_price))
        .map(|m| m.currency().to_string())
}

/// Money from an amount and a currency code read from an answer.
pub(crate) fn money(
    amount: Decimal,
    currency: &str,
) -> Result<backhaul_domain::values::Money, String> {
    let currency = backhaul_domain::values::Currency::parse(currency)
        .map_err(|e| format!("currency `{currency}`: {e}"))?;
    backhaul_domain::values::Money::new(amount, currency)
        .map_err(|e| format!("amount `{amount}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_becomes_the_same_json_number() {
        let cases = [
            ("12.50", "12.5"),
            ("2", "2"),
            ("25.00", "25"),
            ("0.1", "0.1"),
            ("7.25", "7.25"),
        ];
        for (raw, json) in cases {
            let value = number(raw.parse().unwrap(), "amount").unwrap();
            assert_eq!(value.to_string(), json, "{raw}");
        }
    }

    #[test]
    fn a_decimal_a_float_would_change_is_refused() {
        let value: Decimal = "12345678901234567.89".parse().unwrap();
        assert!(matches!(
            number(value, "amount"),
            Err(SinkError::Business { code, .. }) if code == "amount_not_representable"
        ));
    }

    #[test]
    fn odata_strings_double_their_quotes() {
        assert_eq!(odata_string("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn a_secret_does_not_show_in_debug_output() {
        let secret = Secret::new("hunter2".to_owned());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
