//! `spawn_app()` and request helpers: a fresh SQLite store in a temporary
//! directory, an engine on a manual clock, one API key per partner, and the
//! router driven in process with `oneshot` (no socket).
//! `spawn_app_with_outbound()` also writes the outbox for the given targets,
//! as a hub with those connectors does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use backhaul_api::{ApiConfig, AppState, InboundWebhooks, Scope, WebhooksConfig, generate_key};
use backhaul_domain::action::Target;
use backhaul_engine::{Engine, EngineConfig, ManualClock};
use backhaul_store::{AnyStore, EventStore, SqliteStore, SqliteSync};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use uuid::Uuid;

/// The partners every test app has a key for, with their scopes.
pub(crate) const PARTNERS: &[(&str, &[Scope])] = &[
    (
        "portal",
        &[
            Scope::ReturnsCreate,
            Scope::ReturnsRead,
            Scope::ReturnsCorrect,
            Scope::WarehouseWrite,
        ],
    ),
    ("wms", &[Scope::WarehouseWrite, Scope::ReturnsRead]),
    ("erp", &[Scope::ReturnsCorrect, Scope::ReturnsRead]),
    ("carrier", &[Scope::CarrierWrite]),
    ("finance", &[Scope::FinanceWrite, Scope::ReturnsRead]),
    (
        "support",
        &[
            Scope::ReturnsDecide,
            Scope::ReturnsCancel,
            Scope::ReturnsRead,
        ],
    ),
    ("admin", &[Scope::Admin]),
    ("ops", &[Scope::DeliveriesManage]),
];

pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) engine: Engine,
    pub(crate) clock: ManualClock,
    /// Token per partner.
    pub(crate) tokens: HashMap<&'static str, String>,
    /// Public key id per partner.
    pub(crate) key_ids: HashMap<&'static str, String>,
    shutdown: CancellationToken,
    _tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub(crate) body: Value,
}

impl TestResponse {
    /// Asserts a problem response with `status` and `code`; returns its detail.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: u16, code: &str) -> String {
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_str()),
            (status, Some(code)),
            "unexpected response: {}",
            self.body
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "problems are problem+json"
        );
        assert_eq!(
            self.body["type"],
            format!("https://backhaul.dev/problems/{code}")
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        self.body["detail"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status of a successful response; returns the body.
    #[track_caller]
    pub(crate) fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected response: {}",
            self.body
        );
        &self.body
    }

    /// `(status, stage)` of the return in a command result.
    pub(crate) fn status_stage(&self) -> (&str, &str) {
        (
            self.body["return"]["status"].as_str().unwrap_or("?"),
            self.body["return"]["stage"].as_str().unwrap_or("?"),
        )
    }
}

pub(crate) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(ApiConfig::default()).await
}

pub(crate) async fn spawn_app_with(config: ApiConfig) -> TestApp {
    spawn(config, EngineConfig::default()).await
}

/// An app whose engine writes deliveries for `targets` to the outbox. No
/// dispatcher runs: tests move deliveries on through the store.
pub(crate) async fn spawn_app_with_outbound(targets: &[Target]) -> TestApp {
    let engine = EngineConfig {
        outbound: targets.iter().copied().collect(),
        ..EngineConfig::default()
    };
    spawn(ApiConfig::default(), engine).await
}

/// An app with its own engine settings (ownership, outbound targets).
pub(crate) async fn spawn_app_with_engine(engine: EngineConfig) -> TestApp {
    spawn(ApiConfig::default(), engine).await
}

async fn spawn(config: ApiConfig, engine_config: EngineConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("api.db"), SqliteSync::Normal)
        .await
        .unwrap();
    let store = AnyStore::Sqlite(store);
    let clock = ManualClock::new(start_time());
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let engine = Engine::start(
        store.clone(),
        engine_config,
        Arc::new(clock.clone()),
        &tracker,
        shutdown.clone(),
    );
    let mut tokens = HashMap::new();
    let mut key_ids = HashMap::new();
    for (partner, scopes) in PARTNERS {
        let (token, record) = generate_key(partner, scopes, start_time()).unwrap();
        key_ids.insert(*partner, record.key_id.clone());
        store.insert_api_key(record).await.unwrap();
        tokens.insert(*partner, token);
    }
    let router = backhaul_api::router(AppState {
        engine: engine.clone(),
        config,
        dispatcher: None,
        webhooks: webhook_sources(),
    });
    TestApp {
        router,
        engine,
        clock,
        tokens,
        key_ids,
        shutdown,
        _tracker: tracker,
        _dir: dir,
    }
}

/// The secret of every test webhook source, and one no source has.
pub(crate) const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub(crate) const OTHER_WEBHOOK_SECRET: &str = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// The webhook sources every test app has: `wms`, `carrier` (with the
/// carrier simulator's codes mapped) and `hub` (canonical commands), each
/// with a five-minute tolerance.
fn webhook_sources() -> InboundWebhooks {
    let config: WebhooksConfig = toml::from_str(
        r#"
        [inbound.wms]
        kind = "wms"
        secret_env = "WMS_SECRET"
        [inbound.carrier]
        kind = "carrier"
        secret_env = "CARRIER_SECRET"
        [inbound.carrier.status_map]
        PU = "in_transit"
        IT = "in_transit"
        OD = "out_for_delivery"
        DL = "delivered"
        [inbound.hub]
        kind = "canonical"
        secret_env = "HUB_SECRET"
        "#,
    )
    .unwrap();
    InboundWebhooks::build_with(&config, |_| Some(WEBHOOK_SECRET.to_owned())).unwrap()
}

/// A fresh idempotency key.
pub(crate) fn new_key() -> String {
    Uuid::new_v4().to_string()
}

impl TestApp {
    pub(crate) fn token(&self, partner: &str) -> &str {
        self.tokens
            .get(partner)
            .unwrap_or_else(|| panic!("no key for {partner}"))
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes: Bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {bytes:?}"))
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, partner: &str, path: &str) -> TestResponse {
        let request = Request::get(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(partner)),
            )
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// POSTs `body` as JSON with the given idempotency key.
    pub(crate) async fn post_with_key(
        &self,
        partner: &str,
        path: &str,
        key: &str,
        body: &Value,
    ) -> TestResponse {
        let request = Request::post(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(partner)),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// POSTs `body` as JSON with a fresh idempotency key.
    pub(crate) async fn post(&self, partner: &str, path: &str, body: &Value) -> TestResponse {
        self.post_with_key(partner, path, &new_key(), body).await
    }

    /// POSTs raw bytes with an optional content type and idempotency key.
    pub(crate) async fn post_raw(
        &self,
        partner: &str,
        path: &str,
        content_type: Option<&str>,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut builder = Request::post(path).header(
            header::AUTHORIZATION,
            format!("Bearer {}", self.token(partner)),
        );
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        self.send(builder.body(body.into()).unwrap()).await
    }

    /// Opens a return as the portal; returns its id.
    pub(crate) async fn create_return(&self, body: &Value) -> String {
        let response = self.post("portal", "/v1/returns", body).await;
        response.assert_ok(201);
        response.body["return"]["return_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Opens and approves a return; returns its id.
    pub(crate) async fn approved_return(&self) -> String {
        let id = self.create_return(&return_request()).await;
        self.post("support", &format!("/v1/returns/{id}/approve"), &json!({}))
            .await
            .assert_ok(200);
        id
    }

    /// POSTs `body` to `/v1/webhooks/{source}` signed with the test secret
    /// at the app's current time under `webhook_id`.
    pub(crate) async fn webhook(
        &self,
        source: &str,
        webhook_id: &str,
        body: &Value,
    ) -> TestResponse {
        let bytes = body.to_string().into_bytes();
        let headers = sign(WEBHOOK_SECRET, webhook_id, self.now(), &bytes);
        self.webhook_raw(source, &headers, bytes).await
    }

    /// POSTs `body` to `/v1/webhooks/{source}` with exactly `headers` (and a
    /// JSON content type).
    pub(crate) async fn webhook_raw(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> TestResponse {
        let mut builder = Request::post(format!("/v1/webhooks/{source}"))
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        self.send(builder.body(Body::from(body)).unwrap()).await
    }

    /// The app's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        backhaul_engine::Clock::now(&self.clock)
    }

    /// The return's summary, as the admin sees it.
    pub(crate) async fn summary(&self, id: &str) -> Value {
        let response = self.get("admin", &format!("/v1/returns/{id}")).await;
        response.assert_ok(200);
        response.body
    }

    /// The types of the return's events, oldest first.
    pub(crate) async fn event_types(&self, id: &str) -> Vec<String> {
        let response = self.get("admin", &format!("/v1/returns/{id}/events")).await;
        response.assert_ok(200);
        response.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Number of returns stored (as the admin sees them).
    pub(crate) async fn return_count(&self) -> usize {
        let response = self.get("admin", "/v1/returns?limit=500").await;
        response.assert_ok(200);
        response.body["items"].as_array().unwrap().len()
    }

    /// The return's version (number of events).
    pub(crate) async fn version(&self, id: &str) -> usize {
        let response = self.get("admin", &format!("/v1/returns/{id}/events")).await;
        response.assert_ok(200);
        response.body["events"].as_array().unwrap().len()
    }
}

/// Money in USD.
pub(crate) fn usd(amount: &str) -> Value {
    json!({ "amount": amount, "currency": "USD" })
}

/// A valid request: line 1 is 3 × SKU-RED at 20 + 2 tax, line 2 is
/// 1 × SKU-BLUE at 10 + 1 tax.
pub(crate) fn return_request() -> Value {
    json!({
        "channel": "portal",
        "customer": "CUST-001",
        "order_ref": "SO-1001",
        "currency": "USD",
        "site": "DC1",
        "lines": [
            {
                "line_no": 1,
                "sku": "SKU-RED",
                "quantity": "3",
                "uom": "EA",
                "reason_code": "DAMAGED",
                "requested_outcome": "refund",
                "unit_price": usd("20.00"),
                "unit_tax": usd("2.00")
            },
            {
                "line_no": 2,
                "sku": "SKU-BLUE",
                "quantity": 1,
                "uom": "EA",
                "reason_code": "SIZE_FIT",
                "requested_outcome": "refund",
                "unit_price": usd("10.00"),
                "unit_tax": usd("1.00")
            }
        ]
    })
}

/// The three Standard Webhooks headers for `body`, signed with `secret`.
pub(crate) fn sign(
    secret: &str,
    webhook_id: &str,
    at: DateTime<Utc>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let secret = backhaul_webhooks::Secret::parse(secret).unwrap();
    let id = backhaul_webhooks::MessageId::parse(webhook_id).unwrap();
    backhaul_webhooks::headers(&secret, &[], &id, at, body).to_vec()
}
