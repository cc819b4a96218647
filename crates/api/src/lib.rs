//! Backhaul's HTTP API: partners (portal, WMS, carrier, finance, support)
//! send commands and read returns over JSON, authenticated by API keys with
//! scopes. The crate translates HTTP to [`backhaul_engine::Engine`] calls
//! and engine answers back to HTTP; it holds no lifecycle rules of its own.
//!
//! Layout:
//! - `error`: [`ApiError`], the one error type, and its single mapping to
//!   RFC 9457 problem responses.
//! - `auth`: [`Scope`], [`generate_key`] (shared with the CLI), the
//!   [`Principal`] extractor and the per-route guard.
//! - `idempotency`: the `Idempotency-Key` header and the request hash.
//! - `json`: the body extractor (content type, size limit, JSON, model).
//! - `extract`: path ids, correlation id and query extractors.
//! - [`deliveries`]: the exception queue (the operator's view of a delivery,
//!   its suggested owner, corrections, retry/skip/cancel), shared by the
//!   HTTP routes and the `backhaul deliveries` command.
//! - `routes`: the route table [`ROUTES`] and the router built from it;
//!   submodules mirror the URL tree.
//! - `openapi`: the OpenAPI 3.1 document generated from the route table.
//! - [`webhooks`]: inbound Standard Webhooks sources (`[webhooks]`), their
//!   verification and replay rule, and what each kind of body means.
//! - `tls`: [`ServerTls`] (the listener's certificate and key) and
//!   [`serve_tls`].
//!
//! Not here: lifecycle rules (domain), persistence (store, engine), the
//! listener's address and where its TLS files are (the binary's
//! configuration).
//!
//! Entry points: [`router`] builds the service (tests drive it with
//! `tower::ServiceExt::oneshot`, no socket); [`serve`] runs it on a listener
//! until the shutdown token is cancelled, [`serve_tls`] the same over TLS.

mod auth;
pub mod deliveries;
mod error;
mod extract;
mod idempotency;
mod json;
mod openapi;
mod routes;
mod tls;
pub mod webhooks;

use axum::Router;
use backhaul_engine::Engine;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{KeyError, Principal, Scope, generate_key};
pub use error::ApiError;
pub use openapi::document as openapi_document;
pub use routes::{Access, ROUTES, Route, Verb};
pub use tls::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES, ServerTls, ServerTlsError, serve_tls};
pub use webhooks::{InboundWebhooks, WebhookConfigError, WebhooksConfig};

/// HTTP API settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (default 1 MiB). A larger
    /// body is refused with 413 `payload_too_large` before it is parsed. A
    /// return with a few hundred lines is well under 1 MiB; the limit bounds
    /// the memory one request can take.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Applies commands and answers queries; also gives access to the store
    /// for API key lookups.
    pub engine: Engine,
    pub config: ApiConfig,
    /// The outbox's dispatcher, for `/v1/connectors`; `None` when no system
    /// is connected.
    pub dispatcher: Option<backhaul_engine::Dispatcher>,
    /// The inbound webhook sources (`[webhooks.inbound.*]`), secrets
    /// resolved; empty when none is configured.
    pub webhooks: InboundWebhooks,
}

/// The API as an axum router, state applied.
pub fn router(state: AppState) -> Router {
    routes::build(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting connections and waits for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "HTTP API listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("HTTP API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_defaults_and_denies_unknown_fields() {
        let config: ApiConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.max_body_bytes, 1_048_576);
        let config: ApiConfig = serde_json::from_str(r#"{"max_body_bytes": 10}"#).unwrap();
        assert_eq!(config.max_body_bytes, 10);
        assert!(serde_json::from_str::<ApiConfig>(r#"{"max_body": 10}"#).is_err());
    }
}
