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
