//! The generic REST carrier connector (`rest-carrier`) against an
//! in-process fake of a JSON return-shipment API: the mapped label request
//! is the fixture in `src/rest_carrier/fixtures`, the answer becomes a
//! label with its tracking number, reference and expiry, the void names the
//! label, answers are classified, and bad settings are refused naming the
//! key.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::model::Label;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::Sink;
use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::erp_fake::{
    Fault, Faults, Log, fault_response, fixture, fixture_text, json_response, receive, sink_for,
};
use crate::helpers::{RMA, action, assert_business, assert_technical, deliver, no_prerequisites};

const FOLDER: &str = "rest_carrier";
const ENV: &[(&str, &str)] = &[("CARRIER_KEY", "k-9")];
const KEY: &str = "RMA-000042:carrier_label:3";

const CONFIG: &str = r#"
    kind = "rest-carrier"

    [rest_carrier]
    carrier = "ACMEX"
    token_env = "CARRIER_KEY"
    auth_header = "x-api-key"
    auth_scheme = ""

    [rest_carrier.label]
    path = "/v1/shipments/returns"

    [rest_carrier.label.fields]
    delivery_key = "clientRequestId"
    rma = "reference"
    customer = "shipFrom.accountNumber"
    site = "shipTo.locationId"

    [rest_carrier.label.static]
    service = "RETURN_GROUND"
    parcels = 1

    [rest_carrier.label.answer]
    tracking_number = "shipment.trackingNumber"
    label_ref = "shipment.label.id"
    expires_at = "shipment.label.expiresAt"

    [rest_carrier.void]
    path = "/v1/shipments/{tracking_number}/void"
    fields = { rma = "reference" }
    static = { reason = "RETURN_CANCELLED" }
"#;

fn config(text: &str) -> ConnectorConfig {
    toml::from_str(text).unwrap()
}

/// The carrier: answers every label request with the fixture, checking
/// the API key.
#[derive(Clone, Default)]
struct CarrierFake {
    log: Log,
    faults: Faults,
    /// The label answer, when a test replaces the fixture.
    answer: Arc<std::sync::Mutex<Option<serde_json::Value>>>,
}

impl CarrierFake {
    fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        })
    }

    fn sink(&self) -> Arc<dyn Sink> {
        sink_for(Target::Carrier, config(CONFIG), self.router(), ENV).unwrap()
    }

    async fn handle(&self, request: Request) -> Response {
        let received = receive(request).await;
        self.log.push(received.clone());
        if received.header("x-api-key") != Some("k-9") {
            return json_response(StatusCode::UNAUTHORIZED, &json!({}));
        }
        if let Some(Fault::Answer {
            status,
            body,
            retry_after,
        }) = self.faults.next()
        {
            return fault_response(status, &body, retry_after);
        }
        match (received.method.as_str(), received.path.as_str()) {
            ("POST", "/v1/shipments/returns") => {
                let answer = self.answer.lock().unwrap().clone();
                json_response(
                    StatusCode::CREATED,
                    &answer.unwrap_or_else(|| fixture(FOLDER, "label.answer.json")),
                )
            }
            ("POST", "/v1/shipments/SIMX0000000001/void") => {
                json_response(StatusCode::OK, &json!({ "voided": true }))
            }
            _ => json_response(StatusCode::NOT_FOUND, &json!({ "code": "NO_ROUTE" })),
        }
    }
}

async fn label(sink: &dyn Sink) -> Result<ActionResult, backhaul_engine::SinkError> {
    deliver(
        sink,
        &action(ActionKind::CarrierLabel),
        KEY,
        &no_prerequisites(),
    )
    .await
}

#[tokio::test]
async fn the_label_request_is_mapped_and_the_answer_becomes_a_label_with_its_expiry() {
    let fake = CarrierFake::default();
    let sink = fake.sink();

    let result = label(sink.as_ref()).await;

    assert_eq!(
        result,
        Ok(ActionResult::Label(Label {
            carrier: ExternalRef::parse("ACMEX").unwrap(),
            tracking_number: ExternalRef::parse("1Z999AA10123456784").unwrap(),
            label_ref: ExternalRef::parse("LBL-88213").unwrap(),
            expires_at: Some(Utc.with_ymd_and_hms(2025, 3, 17, 9, 0, 0).unwrap()),
        }))
    );
    let all = fake.log.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].body, fixture(FOLDER, "label.request.json"));
    assert_eq!(all[0].header("idempotency-key"), Some(KEY));
    // An empty scheme sends the key alone, in the configured header.
    assert_eq!(all[0].header("authorization"), None);
}

#[tokio::test]
async fn the_void_names_the_label_by_its_tracking_number() {
    let fake = CarrierFake::default();
    let sink = fake.sink();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::CarrierVoidLabel),
        "RMA-000042:carrier_void_label:6",
        &no_prerequisites(),
    )
    .await;

    assert_eq!(result, Ok(ActionResult::Accepted));
    let all = fake.log.all();
    assert_eq!(all[0].line(), "POST /v1/shipments/SIMX0000000001/void");
    assert_eq!(all[0].body, fixture(FOLDER, "void.request.json"));
    assert_eq!(all[0].body["reference"], RMA);
}

#[tokio::test]
async fn an_answer_without_a_usable_label_is_a_business_failure() {
    let cases = [
        json!({ "shipment": { "label": { "id": "LBL-1" } } }),
        json!({ "shipment": { "trackingNumber": "1Z", "label": { "id": "LBL-1", "expiresAt": "in two weeks" } } }),
    ];
    for answer in cases {
        let fake = CarrierFake::default();
        let sink = fake.sink();
        *fake.answer.lock().unwrap() = Some(answer);
        assert_business(label(sink.as_ref()).await, "invalid_response", None);
    }
}

#[tokio::test]
async fn server_errors_and_throttling_are_technical_and_refusals_business() {
    let fake = CarrierFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: "boom".to_owned(),
        retry_after: None,
    });
    fake.faults.push(Fault::Answer {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: "{}".to_owned(),
        retry_after: Some(3),
    });
    fake.faults.push(Fault::Answer {
        status: StatusCode::BAD_REQUEST,
        body: fixture_text(FOLDER, "error.bad_request.json"),
        retry_after: None,
    });

    assert_technical(label(sink.as_ref()).await, "http_500", Some(500));
    let wait = assert_technical(label(sink.as_ref()).await, "http_429", Some(429));
    assert_eq!(wait, Some(std::time::Duration::from_secs(3)));
    // The default error paths read an RFC 9457 problem document.
    let message = assert_business(label(sink.as_ref()).await, "ADDRESS_UNKNOWN", Some(400));
    assert!(message.contains("CUST-001"), "{message}");
}

#[test]
fn bad_settings_are_refused_naming_the_key() {
    let cases = [
        (
            r#"label_ref = "shipment.label.id""#,
            "",
            "rest_carrier.label.answer.label_ref must say where the answer holds it",
        ),
        (
            r#"label_ref = "shipment.label.id""#,
            "label_ref = \"shipment.label.id\"\nlabel_url = \"x\"",
            "rest_carrier.label.answer: unknown result field `label_url`",
        ),
        (
            r#"customer = "shipFrom.accountNumber""#,
            r#"customer_address = "shipFrom.address""#,
            "rest_carrier.label.fields: unknown canonical field `customer_address`",
        ),
        (
            r#"path = "/v1/shipments/{tracking_number}/void""#,
            r#"path = "/v1/shipments/{number}/void""#,
            "rest_carrier.void.path: unknown placeholder `{number}`",
        ),
        (
            r#"carrier = "ACMEX""#,
            r#"carrier = "ACME X""#,
            "rest_carrier.carrier: ",
        ),
        (
            r#"fields = { rma = "reference" }"#,
            r#"fields = { "lines[].sku" = "items[].sku" }"#,
            "rest_carrier.void.fields: unknown canonical field `lines[].sku`",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(CONFIG.contains(from), "{from}");
        let text = CONFIG.replace(from, to);
        let message = sink_for(Target::Carrier, config(&text), Router::new(), ENV)
            .err()
            .expect("the configuration should be refused")
            .to_string();
        assert!(message.starts_with("connectors.carrier: "), "{message}");
        assert!(message.contains(expected), "{to}: {message}");
    }
}

#[test]
fn a_rest_carrier_section_needs_its_settings_table() {
    let message = sink_for(
        Target::Carrier,
        config("kind = \"rest-carrier\""),
        Router::new(),
        ENV,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        message.contains("needs its settings in [connectors.carrier.rest_carrier]"),
        "{message}"
    );
}

/// The hub with the `rest-carrier` connector on `fake`, a manual clock at
/// `start`, and one portal return approved with `approve`, its label
/// delivered. Returns what a test drives; drop the guard to stop the hub.
struct Hub {
    engine: backhaul_engine::Engine,
    dispatcher: backhaul_engine::Dispatcher,
    clock: backhaul_engine::ManualClock,
    id: backhaul_domain::values::ReturnId,
    shutdown: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn approved(
        fake: &CarrierFake,
        start: chrono::DateTime<Utc>,
        approve: serde_json::Value,
    ) -> Hub {
        use backhaul_engine::{
            CommandMeta, Dispatcher, DispatcherConfig, Engine, EngineConfig, Idempotency,
            ManualClock,
        };
        use backhaul_store::{AnyStore, SqliteStore, SqliteSync};

        let meta = |key: &str| CommandMeta {
            partner: "test".into(),
            idempotency: Some(Idempotency {
                key: key.into(),
                request_hash: key.into(),
            }),
            correlation_id: None,
            causation_id: None,
        };
        let clock = ManualClock::new(start);
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("hub.db"), SqliteSync::Normal)
                .await
                .unwrap(),
        );
        let tracker = tokio_util::task::TaskTracker::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let engine = Engine::start(
            store,
            EngineConfig {
                outbound: [Target::Carrier].into(),
                ..EngineConfig::default()
            },
            Arc::new(clock.clone()),
            &tracker,
            shutdown.child_token(),
        );
        let env: std::collections::BTreeMap<String, String> =
            [("CARRIER_KEY".to_owned(), "k-9".to_owned())].into();
        let lookup = move |name: &str| env.get(name).cloned();
        let sinks = backhaul_connectors::build_with_env(
            &[("carrier".to_owned(), config(CONFIG))].into(),
            &[(Target::Carrier, fake.router())].into(),
            &lookup,
        )
        .unwrap();
        let dispatcher =
            Dispatcher::new(engine.clone(), DispatcherConfig::default(), sinks).unwrap();
        let request = serde_json::from_value(json!({
            "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
            "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "uom": "EA", "reason_code": "DAMAGED",
                       "requested_outcome": "refund", "unit_price": {"amount": "10.00", "currency": "USD"},
                       "unit_tax": {"amount": "0.00", "currency": "USD"}}]
        }))
        .unwrap();
        let id = engine
            .create(request, meta("create"))
            .await
            .unwrap()
            .return_id;
        engine
            .execute(
                id,
                serde_json::from_value(approve).unwrap(),
                meta("approve"),
            )
            .await
            .unwrap();
        let hub = Hub {
            engine,
            dispatcher,
            clock,
            id,
            shutdown,
            tracker,
            _dir: dir,
        };
        hub.drain().await;
        assert_eq!(hub.status().await, "label_issued");
        hub
    }

    async fn drain(&self) {
        while self.dispatcher.run_once().await.unwrap().claimed > 0 {}
    }

    async fn summary(&self) -> serde_json::Value {
        self.engine.get(self.id).await.unwrap().unwrap().to_value()
    }

    async fn status(&self) -> String {
        self.summary().await["status"].as_str().unwrap().to_owned()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn voids(fake: &CarrierFake) -> usize {
    fake.log
        .all()
        .iter()
        .filter(|r| r.path == "/v1/shipments/SIMX0000000001/void")
        .count()
}

/// End to end through the hub: the label the carrier answers carries an
/// expiry; the hub records it, the expiry scheduler leaves the return alone
/// until that moment and expires it after. The authorisation itself has no
/// deadline, so only the carrier's expiry moves the return to `expired`; a
/// label that ran out by itself is not voided.
#[tokio::test]
async fn the_carriers_label_expiry_moves_an_unshipped_return_to_expired() {
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    let expires = start + chrono::Duration::days(10);
    let fake = CarrierFake::default();
    *fake.answer.lock().unwrap() = Some(json!({
        "shipment": {
            "trackingNumber": "SIMX0000000001",
            "label": { "id": "LBL-7", "expiresAt": expires.to_rfc3339() }
        }
    }));
    let hub = Hub::approved(&fake, start, json!({"command": "approve"})).await;
    let summary = hub.summary().await;
    let recorded = summary["label"]["expires_at"]
        .as_str()
        .map(|s| s.parse::<chrono::DateTime<Utc>>().unwrap());
    assert_eq!(
        recorded,
        Some(expires),
        "the carrier's expiry is on the return: {summary}"
    );

    let expirer = backhaul_engine::Expirer::new(hub.engine.clone());
    hub.clock.set(expires - chrono::Duration::minutes(1));
    assert_eq!(
        expirer.run_once().await.unwrap(),
        0,
        "the label is still good"
    );
    assert_eq!(hub.status().await, "label_issued");
    hub.clock.set(expires + chrono::Duration::minutes(1));
    assert_eq!(expirer.run_once().await.unwrap(), 1);
    assert_eq!(hub.status().await, "expired");
    hub.drain().await;
    assert_eq!(voids(&fake), 0, "a label that ran out needs no void");
    hub.stop().await;
}

/// A label without an expiry of its own: the authorisation's deadline
/// expires the return, and the still usable label is voided at the carrier,
/// once.
#[tokio::test]
async fn a_usable_label_of_a_return_whose_authorisation_ran_out_is_voided_once() {
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    let deadline = start + chrono::Duration::days(14);
    let fake = CarrierFake::default();
    *fake.answer.lock().unwrap() = Some(json!({
        "shipment": { "trackingNumber": "SIMX0000000001", "label": { "id": "LBL-8" } }
    }));
    let approve = json!({"command": "approve", "expires_at": deadline.to_rfc3339()});
    let hub = Hub::approved(&fake, start, approve).await;
    let expirer = backhaul_engine::Expirer::new(hub.engine.clone());
    assert_eq!(expirer.run_once().await.unwrap(), 0, "not due yet");
    hub.clock.set(deadline + chrono::Duration::hours(1));
    assert_eq!(expirer.run_once().await.unwrap(), 1);
    assert_eq!(hub.status().await, "expired");
    hub.drain().await;
    assert_eq!(voids(&fake), 1, "the usable label is voided");
    hub.drain().await;
    assert_eq!(expirer.run_once().await.unwrap(), 0);
    assert_eq!(voids(&fake), 1, "and only once");
    hub.stop().await;
}
