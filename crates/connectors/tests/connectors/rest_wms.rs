//! The generic REST WMS connector (`rest-wms`) against an in-process fake
//! of a JSON ASN API: the mapped body is the fixture in
//! `src/rest_wms/fixtures`, the token, static headers and idempotency key
//! travel, the look-up finds a receipt an earlier attempt created, the
//! cancellation refers to the receipt's number, answers are classified
//! (429/5xx and configured 4xx technical, other 4xx business with the
//! WMS's own code), and a bad mapping is refused naming its config key.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{ActionKind, Target};
use backhaul_engine::Sink;
use serde_json::json;

use crate::erp_fake::{
    Fault, Faults, Log, fault_response, fixture, fixture_text, json_response, receive, sink_for,
};
use crate::helpers::{
    RMA, action, assert_business, assert_technical, deliver, delivered, document, no_prerequisites,
};

const FOLDER: &str = "rest_wms";
const ENV: &[(&str, &str)] = &[("WMS_TOKEN", "tok-123")];
const KEY: &str = "RMA-000042:wms_expected_receipt:3";
const ASN: &str = "ASN/2025/77";

const CONFIG: &str = r#"
    kind = "rest-wms"

    [rest_wms]
    token_env = "WMS_TOKEN"
    headers = { "x-tenant" = "acme" }

    [rest_wms.errors]
    code = "error.code"
    message = "error.message"
    technical_statuses = [409]

    [rest_wms.receipt]
    method = "PUT"
    path = "/api/v2/asn/{rma}"
    answer = { number = "asnNumber" }

    [rest_wms.receipt.fields]
    rma = "reference"
    customer = "shipper.account"
    site = "warehouse.code"
    "lines[].line_no" = "items[].lineNumber"
    "lines[].sku" = "items[].itemCode"
    "lines[].quantity" = "items[].expectedQty"

    [rest_wms.receipt.static]
    type = "RETURN"
    "warehouse.zone" = "RETURNS"

    [rest_wms.receipt.lookup]
    path = "/api/v2/asn?reference={rma}"
    found = "items.0"

    [rest_wms.cancel]
    method = "DELETE"
    path = "/api/v2/asn/{number}"
"#;

fn config(text: &str) -> ConnectorConfig {
    toml::from_str(text).unwrap()
}

/// The WMS: receipts by reference, checking the bearer token.
#[derive(Clone, Default)]
struct WmsFake {
    log: Log,
    faults: Faults,
    receipts: Arc<Mutex<Vec<String>>>,
}

impl WmsFake {
    fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        })
    }

    fn sink(&self) -> Arc<dyn Sink> {
        sink_for(Target::Wms, config(CONFIG), self.router(), ENV).unwrap()
    }

    async fn handle(&self, request: Request) -> Response {
        let received = receive(request).await;
        self.log.push(received.clone());
        if received.header("authorization") != Some("Bearer tok-123") {
            return json_response(StatusCode::UNAUTHORIZED, &json!({}));
        }
        let exists = self.receipts.lock().unwrap().contains(&RMA.to_owned());
        match (received.method.as_str(), received.path.as_str()) {
            ("GET", "/api/v2/asn") => json_response(
                StatusCode::OK,
                &if exists && received.query == format!("reference={RMA}") {
                    fixture(FOLDER, "expected_receipt.lookup.json")
                } else {
                    json!({ "items": [], "total": 0 })
                },
            ),
            ("PUT", path) if path == format!("/api/v2/asn/{RMA}") => match self.faults.next() {
                Some(Fault::Answer {
                    status,
                    body,
                    retry_after,
                }) => fault_response(status, &body, retry_after),
                Some(Fault::LoseAnswer) => {
                    self.receipts.lock().unwrap().push(RMA.to_owned());
                    fault_response(StatusCode::GATEWAY_TIMEOUT, "upstream timed out", None)
                }
                None => {
                    self.receipts.lock().unwrap().push(RMA.to_owned());
                    json_response(
                        StatusCode::CREATED,
                        &fixture(FOLDER, "expected_receipt.answer.json"),
                    )
                }
            },
            ("DELETE", path) if path == format!("/api/v2/asn/{ASN}") => {
                self.receipts.lock().unwrap().clear();
                json_response(StatusCode::OK, &json!(null))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({ "error": { "code": "NO_ROUTE" } }),
            ),
        }
    }
}

#[tokio::test]
async fn the_receipt_is_mapped_as_configured_and_its_number_read() {
    let fake = WmsFake::default();
    let sink = fake.sink();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::WmsExpectedReceipt),
        KEY,
        &no_prerequisites(),
    )
    .await;

    assert_eq!(result, Ok(document(ASN)));
    assert_eq!(
        fake.log.lines(),
        [
            format!("GET /api/v2/asn?reference={RMA}"),
            format!("PUT /api/v2/asn/{RMA}")
        ]
    );
    let put = &fake.log.all()[1];
    assert_eq!(put.body, fixture(FOLDER, "expected_receipt.request.json"));
    assert_eq!(put.header("idempotency-key"), Some(KEY));
    assert_eq!(put.header("x-tenant"), Some("acme"));
    assert_eq!(put.header("content-type"), Some("application/json"));
    // The look-up is a read: it carries no idempotency key.
    assert_eq!(fake.log.all()[0].header("idempotency-key"), None);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_receipt_instead_of_sending_it_again() {
    let fake = WmsFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::LoseAnswer);
    let receipt = action(ActionKind::WmsExpectedReceipt);

    let first = deliver(sink.as_ref(), &receipt, KEY, &no_prerequisites()).await;
    assert_technical(first, "http_504", Some(504));
    let second = deliver(sink.as_ref(), &receipt, KEY, &no_prerequisites()).await;

    assert_eq!(second, Ok(document(ASN)));
    assert_eq!(fake.log.count("PUT"), 1, "{:?}", fake.log.lines());
}

#[tokio::test]
async fn the_cancellation_deletes_the_receipt_by_its_number() {
    let fake = WmsFake::default();
    let sink = fake.sink();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::WmsCancelExpectedReceipt),
        "RMA-000042:wms_cancel_expected_receipt:5",
        &delivered(ActionKind::WmsExpectedReceipt, ASN),
    )
    .await;

    assert_eq!(result, Ok(backhaul_domain::action::ActionResult::Accepted));
    let all = fake.log.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].line(), format!("DELETE /api/v2/asn/{ASN}"));
    assert_eq!(all[0].body, serde_json::Value::Null, "no fields, no body");
}

#[tokio::test]
async fn failures_are_classified_with_the_wms_error_shape() {
    let cases: [(StatusCode, &str, Option<u64>, bool, &str); 4] = [
        (
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            Some(7),
            true,
            "http_429",
        ),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "down",
            None,
            true,
            "http_503",
        ),
        // Configured in `errors.technical_statuses`: the record is locked.
        (
            StatusCode::CONFLICT,
            r#"{"error":{"code":"LOCKED","message":"ASN in use"}}"#,
            None,
            true,
            "LOCKED",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &fixture_text(FOLDER, "error.validation.json"),
            None,
            false,
            "UNKNOWN_ITEM",
        ),
    ];
    for (status, body, retry_after, technical, code) in cases {
        let fake = WmsFake::default();
        let sink = fake.sink();
        fake.faults.push(Fault::Answer {
            status,
            body: body.to_owned(),
            retry_after,
        });
        let result = deliver(
            sink.as_ref(),
            &action(ActionKind::WmsExpectedReceipt),
            KEY,
            &no_prerequisites(),
        )
        .await;
        if technical {
            let wait = assert_technical(result, code, Some(status.as_u16()));
            assert_eq!(wait, retry_after.map(std::time::Duration::from_secs));
        } else {
            let message = assert_business(result, code, Some(status.as_u16()));
            assert!(message.contains("SKU-B"), "{message}");
        }
    }
}

#[tokio::test]
async fn a_label_is_not_a_wms_action() {
    let fake = WmsFake::default();
    let sink = fake.sink();
    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::CarrierLabel),
        "k",
        &no_prerequisites(),
    )
    .await;
    assert_business(result, "unsupported_action", None);
}

/// Why `build` refused `CONFIG` with `from` replaced by `to`.
fn refusal(from: &str, to: &str, env: &[(&str, &str)]) -> String {
    assert!(CONFIG.contains(from), "{from}");
    let text = CONFIG.replace(from, to);
    sink_for(Target::Wms, config(&text), Router::new(), env)
        .err()
        .expect("the configuration should be refused")
        .to_string()
}

#[test]
fn bad_mappings_are_refused_naming_the_key() {
    let cases = [
        (
            r#""lines[].sku" = "items[].itemCode""#,
            r#""lines[].serial" = "items[].serial""#,
            "rest_wms.receipt.fields: unknown canonical field `lines[].serial`",
        ),
        (
            r#""lines[].sku" = "items[].itemCode""#,
            r#""lines[].sku" = "items[]""#,
            r#"rest_wms.receipt.fields."lines[].sku": `items[]`"#,
        ),
        (
            r#""lines[].sku" = "items[].itemCode""#,
            r#""lines[].sku" = "itemCode""#,
            r#"rest_wms.receipt.fields."lines[].sku": `itemCode` must have a `[]` segment"#,
        ),
        (
            r#""lines[].sku" = "items[].itemCode""#,
            r#""lines[].sku" = "products[].itemCode""#,
            "rest_wms.receipt.fields: line fields go into one array",
        ),
        (
            r#"rma = "reference""#,
            r#"rma = "warehouse""#,
            "write to the same place in the body",
        ),
        (
            r#"path = "/api/v2/asn/{rma}""#,
            r#"path = "/api/v2/asn/{rma_no}""#,
            "rest_wms.receipt.path: unknown placeholder `{rma_no}`",
        ),
        (
            r#"answer = { number = "asnNumber" }"#,
            "answer = {}",
            "rest_wms.receipt.answer.number must say where the answer holds it",
        ),
        (
            r#"method = "PUT""#,
            r#"method = "FETCH""#,
            "rest_wms.receipt.method: `FETCH`",
        ),
        (
            "technical_statuses = [409]",
            "technical_statuses = [503]",
            "rest_wms.errors.technical_statuses: 503",
        ),
        (
            r#"headers = { "x-tenant" = "acme" }"#,
            r#"headers = { "idempotency-key" = "x" }"#,
            "rest_wms.headers: `idempotency-key` is set by the connector",
        ),
    ];
    for (from, to, expected) in cases {
        let message = refusal(from, to, ENV);
        assert!(message.starts_with("connectors.wms: "), "{message}");
        assert!(message.contains(expected), "{to}: {message}");
    }
}

#[test]
fn a_missing_token_is_refused_naming_the_variable_not_a_value() {
    let message = refusal("x-tenant", "x-tenant", &[]);
    assert!(
        message.contains("rest_wms.token_env: the environment variable `WMS_TOKEN`"),
        "{message}"
    );
}

#[test]
fn unknown_settings_are_refused_by_name() {
    let text = CONFIG.replace("[rest_wms.cancel]", "[rest_wms.cancel]\nverb = \"DELETE\"");
    let error = toml::from_str::<ConnectorConfig>(&text)
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field `verb`"), "{error}");
}
