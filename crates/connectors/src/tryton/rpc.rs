//! Tryton's JSON-RPC protocol (trytond 8): login into a session, the
//! client-side context sent with every model call, Tryton's typed values
//! (`Decimal`, `date`) and its error shapes. Nothing here knows about
//! returns; `flows` drives the ERP's documents with it.
//!
//! Facts this follows (checked against a running trytond 8.0):
//! - `POST /<db>/rpc/` with `{"id", "method", "params"}`; a failure is an
//!   `error` member in a 200 answer.
//! - `common.db.login` answers `[user_id, session_key, bus]`; later calls
//!   carry `Authorization: Session base64(user:user_id:session_key)`. A bad
//!   or expired session is a 401 (`post` wants a fresh one), so the client
//!   logs in again once and repeats the call.
//! - The context is the last positional parameter of every model call and
//!   the server adds nothing to it: it is fetched once per session from
//!   `res.user.get_preferences`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::http::{Transport, TransportError};

/// Why a call failed, as Tryton or the wire told it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RpcError {
    /// No answer: connection refused, reset, timed out, a failed TLS
    /// handshake.
    #[error("no answer from Tryton: {0}")]
    Unreachable(TransportError),
    /// An HTTP status other than 200 (after a new login for a 401).
    #[error("HTTP {status}: {body}")]
    Http {
        status: u16,
        body: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The login was refused: the configured user or password is wrong.
    #[error("login refused for user `{0}`")]
    LoginRefused(String),
    /// `UserError`: Tryton refused the operation for a business reason.
    #[error("{message}{}", if description.is_empty() { String::new() } else { format!(" ({description})") })]
    User {
        message: String,
        description: String,
    },
    /// `UserWarning`: Tryton asks a person to confirm. The hub does not
    /// confirm on anyone's behalf.
    #[error("warning `{name}`: {message}")]
    Warning { name: String, message: String },
    /// Any other server exception (a lock timeout, a concurrency error, a
    /// bug): the server log has the traceback.
    #[error("server error: {0}")]
    Server(String),
    /// An answer that does not follow the protocol.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A logged-in session.
struct Session {
    authorization: String,
    context: Value,
}

/// A JSON-RPC client of one Tryton database. Cheap to share.
pub struct Client {
    transport: Arc<dyn Transport>,
    path: String,
    user: String,
    password: String,
    session: Mutex<Option<Arc<Session>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("Client")
            .field("path", &self.path)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `database` over `transport` (whose base is the server's
    /// root URL).
    pub fn new(
        transport: Arc<dyn Transport>,
        database: &str,
        user: &str,
        password: &str,
    ) -> Client {
        Client {
            transport,
            path: format!("/{database}/rpc/"),
            user: user.to_owned(),
            password: password.to_owned(),
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    /// The server's version (no login needed): the health check.
    pub async fn version(&self) -> Result<String, RpcError> {
        let result = self
            .post("/rpc/", "common.server.version", json!([]), None)
            .await?;
        result
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RpcError::Protocol(format!("version is not a string: {result}")))
    }

    /// Calls `model.<model>.<method>` with `args` and the session's context
    /// (merged with `extra_context`), logging in first when needed and once
    /// more when the session has expired.
    pub async fn call(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        extra_context: Option<&Value>,
    ) -> Result<Value, RpcError> {
        let name = format!("model.{model}.{method}");
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let mut context = session.context.clone();
            if let (Some(Value::Object(extra)), Value::Object(ctx)) = (extra_context, &mut context)
            {
                for (k, v) in extra {
                    ctx.insert(k.clone(), v.clone());
                }
            }
            let mut params = args.clone();
            params.push(context);
            match self
                .post(
                    &self.path,
                    &name,
                    Value::Array(params),
                    Some(&session.authorization),
                )
                .await
            {
                Err(RpcError::Http { status: 401, .. }) if !retried => {
                    retried = true;
                    self.forget(&session).await;
                }
                other => return other,
            }
        }
    }

    /// The current session, after a login if there is none.
    async fn session(&self) -> Result<Arc<Session>, RpcError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let answer = self
            .post(
                &self.path,
                "common.db.login",
                json!([self.user, {"password": self.password}, "en"]),
                None,
            )
            .await
            .map_err(|e| match e {
                RpcError::Http {
                    status: 401 | 403, ..
                } => RpcError::LoginRefused(self.user.clone()),
                other => other,
            })?;
        let (uid, key) = match answer.as_array().map(Vec::as_slice) {
            Some([uid, key, ..]) => (
                uid.as_i64()
                    .ok_or_else(|| RpcError::Protocol(format!("login answered {answer}")))?,
                key.as_str()
                    .ok_or_else(|| RpcError::Protocol(format!("login answered {answer}")))?,
            ),
            // Older servers answer `false` for a bad password.
            _ => return Err(RpcError::LoginRefused(self.user.clone())),
        };
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{uid}:{key}", self.user));
        let authorization = format!("Session {token}");
        let preferences = self
            .post(
                &self.path,
                "model.res.user.get_preferences",
                json!([true, {}]),
                Some(&authorization),
            )
            .await?;
        // Only the keys the server uses as context; the rest of the
        // preferences (names, icons) would only travel along.
        let mut context = serde_json::Map::new();
        for key in ["company", "employee", "language", "company_work_time"] {
            if let Some(v) = preferences.get(key).filter(|v| !v.is_null()) {
                context.insert(key.to_owned(), v.clone());
            }
        }
        let session = Arc::new(Session {
            authorization,
            context: Value::Object(context),
        });
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `stale` unless another call has already replaced it.
    async fn forget(&self, stale: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            *slot = None;
        }
    }

    async fn post(
        &self,
        path: &str,
        method: &str,
        params: Value,
        authorization: Option<&str>,
    ) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"id": id, "method": method, "params": params});
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(auth) = authorization {
            request = request.header(http::header::AUTHORIZATION, auth);
        }
        let request = request
            .body(Bytes::from(body.to_string()))
            .map_err(|e| RpcError::Protocol(e.to_string()))?;
        let (status, headers, bytes) = self
            .transport
            .send(request)
            .await
            .map_err(RpcError::Unreachable)?;
        if status != StatusCode::OK {
            let retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs);
            return Err(RpcError::Http {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                retry_after,
            });
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| RpcError::Protocol(format!("{method}: not JSON: {e}")))?;
        if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
            return Err(error_of(error));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| RpcError::Protocol(format!("{method}: no `result` in {answer}")))
    }
}

/// Sorts Tryton's `error` member: `["UserError", [message, description,
/// domain]]`, `["UserWarning", [name, message, description]]`, or
/// `[str(exception), ""]` for anything else.
fn error_of(error: &Value) -> RpcError {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(parts) = error.as_array() else {
        return RpcError::Server(error.to_string());
    };
    let args = parts.get(1).and_then(Value::as_array);
    match parts.first().and_then(Value::as_str) {
        Some("UserError") => RpcError::User {
            message: text(args.and_then(|a| a.first())),
            description: text(args.and_then(|a| a.get(1))),
        },
        Some("UserWarning") => RpcError::Warning {
            name: text(args.and_then(|a| a.first())),
            message: text(args.and_then(|a| a.get(1))),
        },
        Some(other) => {
            RpcError::Server(format!("{other} {}", text(parts.get(1))).trim().to_owned())
        }
        None => RpcError::Server(error.to_string()),
    }
}

/// A decimal as Tryton's JSON encoding wants it.
pub fn decimal(value: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": value.to_string()})
}

/// A decimal from an answer: Tryton's encoding, or a plain number.
pub fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Object(map) if map.get("__class__").and_then(Value::as_str) == Some("Decimal") => {
            map.get("decimal")?.as_str()?.parse().ok()
        }
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_their_tryton_class() {
        let user = error_of(&json!([
            "UserError",
            ["You cannot post.", "Closed period.", ""]
        ]));
        assert_eq!(
            user,
            RpcError::User {
                message: "You cannot post.".into(),
                description: "Closed period.".into()
            }
        );
        let warning = error_of(&json!([
            "UserWarning",
            ["complaint_similar", "Similar.", ""]
        ]));
        assert!(
            matches!(warning, RpcError::Warning { ref name, .. } if name == "complaint_similar")
        );
        assert_eq!(
            error_of(&json!(["'res.user'", ""])),
            RpcError::Server("'res.user'".into())
        );
    }

    #[test]
    fn decimals_round_trip_through_tryton_encoding() {
        let d: Decimal = "27.50".parse().unwrap_or_default();
        assert_eq!(decimal_of(&decimal(d)), Some(d));
        assert_eq!(decimal_of(&json!(3.0)), Some(Decimal::from(3)));
        assert_eq!(decimal_of(&json!(null)), None);
    }
}
