//! The NetSuite connector against a fake of the REST record service: the
//! records it sends are the fixtures in `src/netsuite/fixtures`, a create
//! is answered 204 with `Location` and read back for its `tranId`, the
//! item receipt and credit memo are transformed from the return
//! authorization reached by its external ID, a retry after a lost answer
//! finds the record by external ID instead of creating a second one, and
//! NetSuite's error answers are classified.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{ActionKind, ActionResult};
use backhaul_domain::values::{Currency, ExternalRef, Money, Sku};
use backhaul_engine::{Sink, SinkError};
use rust_decimal::Decimal;

use crate::erp_fake::{
    Fault, Faults, Log, Received, erp_reasons, erp_sink, fault_response, fixture, fixture_text,
    json_response, receive,
};
use crate::helpers::{
    action, assert_business, assert_technical, deliver, deliver_with_master, delivered, document,
    no_prerequisites, number_of,
};

const VENDOR: &str = "netsuite";
const RECORDS: &str = "/services/rest/record/v1";
const ENV: &[(&str, &str)] = &[("NETSUITE_TOKEN", "ns-oauth2-access-token")];
const BEARER: &str = "Bearer ns-oauth2-access-token";
const ORIGIN: &str = "https://1234567.suitetalk.api.netsuite.com";
const RETURN_KEY: &str = "RMA-000042:erp_return_order:3";
const RECEIPT_KEY: &str = "RMA-000042:erp_inventory_adjustment:8";
const CREDIT_KEY: &str = "RMA-000042:erp_credit_memo:9";
const RECEIPT_EID: &str = "RMA-000042_3Aerp_5Finventory_5Fadjustment_3A8";
const CREDIT_EID: &str = "RMA-000042_3Aerp_5Fcredit_5Fmemo_3A9";

fn config() -> ConnectorConfig {
    toml::from_str(
        r#"
        kind = "netsuite"

        [netsuite]
        token_env = "NETSUITE_TOKEN"
        subsidiary_id = "1"
        location_id = "3"
        reason_field = "custcol_return_reason"
        "#,
    )
    .unwrap()
}

/// The records a NetSuite account holds, by type, as external ID →
/// internal id.
#[derive(Default)]
struct Records(BTreeMap<&'static str, BTreeMap<String, &'static str>>);

/// The record types the fake knows: REST name, internal id of the one
/// record of that type the fake makes, and its read-back fixture.
const TYPES: [(&str, &str, &str); 3] = [
    (
        "returnAuthorization",
        "647",
        "return_authorization.read.json",
    ),
    ("itemReceipt", "648", "item_receipt.read.json"),
    ("creditMemo", "649", "credit_memo.read.json"),
];

fn type_of(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    TYPES.into_iter().find(|(t, _, _)| *t == name)
}

/// NetSuite's REST record service, checking the bearer token.
#[derive(Clone, Default)]
struct NetSuiteFake {
    log: Log,
    faults: Faults,
    records: Arc<Mutex<Records>>,
}

impl NetSuiteFake {
    fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        })
    }

    fn sink(&self) -> Arc<dyn Sink> {
        erp_sink(config(), self.router(), ENV).unwrap()
    }

    fn has(&self, record: &str, eid: &str) -> bool {
        self.records
            .lock()
            .unwrap()
            .0
            .get(record)
            .is_some_and(|r| r.contains_key(eid))
    }

    fn count(&self, record: &str) -> usize {
        self.records
            .lock()
            .unwrap()
            .0
            .get(record)
            .map_or(0, BTreeMap::len)
    }

    async fn handle(&self, request: Request) -> Response {
        let received = receive(request).await;
        self.log.push(received.clone());
        if received.header("authorization") != Some(BEARER) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &fixture(VENDOR, "error.unauthorized.json"),
            );
        }
        let Some(path) = received.path.strip_prefix(RECORDS) else {
            return not_found();
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (received.method.as_str(), segments.as_slice()) {
            ("GET", ["returnAuthorization"]) => {
                json_response(StatusCode::OK, &serde_json::json!({ "items": [] }))
            }
            ("POST", ["returnAuthorization"]) => self.create(&received, "returnAuthorization"),
            ("POST", ["returnAuthorization", ra, "!transform", target]) => {
                let eid = ra.strip_prefix("eid:").unwrap_or(ra);
                if !self.has("returnAuthorization", eid) {
                    return not_found();
                }
                assert_eq!(received.query, "replace=item");
                self.create(&received, target)
            }
            ("GET", ["returnAuthorization", ra, "item"]) => {
                let eid = ra.strip_prefix("eid:").unwrap_or(ra);
                assert_eq!(received.query, "expandSubResources=true");
                if self.has("returnAuthorization", eid) {
                    json_response(
                        StatusCode::OK,
                        &fixture(VENDOR, "return_authorization.lines.json"),
                    )
                } else {
                    not_found()
                }
            }
            ("DELETE", ["returnAuthorization", ra]) => {
                let eid = ra.strip_prefix("eid:").unwrap_or(ra);
                let removed = self
                    .records
                    .lock()
                    .unwrap()
                    .0
                    .get_mut("returnAuthorization")
                    .and_then(|r| r.remove(eid));
                match removed {
                    Some(_) => fault_response(StatusCode::NO_CONTENT, "", None),
                    None => not_found(),
                }
            }
            ("GET", [record, key]) => {
                let Some((_, id, read)) = type_of(record) else {
                    return not_found();
                };
                let exists = match key.strip_prefix("eid:") {
                    Some(eid) => self.has(record, eid),
                    None => *key == id && self.count(record) > 0,
                };
                if exists {
                    json_response(StatusCode::OK, &fixture(VENDOR, read))
                } else {
                    not_found()
                }
            }
            _ => not_found(),
        }
    }

    /// A create or transform: the queued fault, if any, else the record
    /// stored under its external ID and 204 with its `Location`.
    fn create(&self, received: &Received, record: &str) -> Response {
        let (record, id, _) = type_of(record).unwrap();
        let eid = received.body["externalId"].as_str().unwrap().to_owned();
        if self.has(record, &eid) {
            // NetSuite keeps external IDs unique per record type.
            return fault_response(
                StatusCode::BAD_REQUEST,
                r#"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1","title":"Bad Request","status":400,"o:errorDetails":[{"detail":"A record with this external ID already exists.","o:errorCode":"USER_ERROR"}]}"#,
                None,
            );
        }
        let store = || {
            self.records
                .lock()
                .unwrap()
                .0
                .entry(record)
                .or_default()
                .insert(eid.clone(), id);
        };
        match self.faults.next() {
            Some(Fault::Answer {
                status,
                body,
                retry_after,
            }) => fault_response(status, &body, retry_after),
            Some(Fault::LoseAnswer) => {
                store();
                fault_response(StatusCode::BAD_GATEWAY, "", None)
            }
            None => {
                store();
                let mut response = fault_response(StatusCode::NO_CONTENT, "", None);
                response.headers_mut().insert(
                    "location",
                    format!("{ORIGIN}{RECORDS}/{record}/{id}").parse().unwrap(),
                );
                response
            }
        }
    }
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &fixture(VENDOR, "error.not_found.json"),
    )
}

async fn return_authorization(sink: &dyn Sink) -> Result<ActionResult, SinkError> {
    deliver_with_master(
        sink,
        &action(ActionKind::ErpReturnOrder),
        RETURN_KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await
}

fn after_return() -> BTreeMap<ActionKind, Option<ActionResult>> {
    delivered(ActionKind::ErpReturnOrder, "RA1042")
}

#[tokio::test]
async fn a_return_authorization_is_the_fixtures_record_read_back_for_its_tran_id() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();

    let result = return_authorization(sink.as_ref()).await.unwrap();

    assert_eq!(result, document("RA1042"));
    assert_eq!(
        fake.log.lines(),
        [
            format!("GET {RECORDS}/returnAuthorization/eid:RMA-000042?fields=tranId"),
            format!("POST {RECORDS}/returnAuthorization"),
            format!("GET {RECORDS}/returnAuthorization/647?fields=tranId"),
        ]
    );
    let received = fake.log.all();
    for request in &received {
        assert_eq!(request.header("authorization"), Some(BEARER));
        // Synchronous requests: NetSuite's idempotency key is for
        // asynchronous ones, the external ID does the work here.
        assert_eq!(request.header("x-netsuite-idempotency-key"), None);
        assert_eq!(request.header("prefer"), None);
    }
    assert_eq!(
        received[1].body,
        fixture(VENDOR, "return_authorization.request.json")
    );
}

#[tokio::test]
async fn an_item_receipt_is_transformed_from_the_return_authorization() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    return_authorization(sink.as_ref()).await.unwrap();
    fake.log.clear();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpInventoryAdjustment),
        RECEIPT_KEY,
        &after_return(),
    )
    .await
    .unwrap();

    assert_eq!(result, document("IR1043"));
    assert_eq!(
        fake.log.lines(),
        [
            format!("GET {RECORDS}/itemReceipt/eid:{RECEIPT_EID}?fields=tranId"),
            format!(
                "GET {RECORDS}/returnAuthorization/eid:RMA-000042/item?expandSubResources=true"
            ),
            format!(
                "POST {RECORDS}/returnAuthorization/eid:RMA-000042/!transform/itemReceipt?replace=item"
            ),
            format!("GET {RECORDS}/itemReceipt/648?fields=tranId"),
        ]
    );
    assert_eq!(
        fake.log.all()[2].body,
        fixture(VENDOR, "item_receipt.request.json")
    );
}

#[tokio::test]
async fn a_credit_memo_is_transformed_from_the_return_authorization_at_the_hubs_amounts() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    return_authorization(sink.as_ref()).await.unwrap();
    fake.log.clear();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCreditMemo),
        CREDIT_KEY,
        &after_return(),
    )
    .await
    .unwrap();

    assert_eq!(
        result,
        ActionResult::Document {
            number: ExternalRef::parse("CM1044").unwrap(),
            amount: Some(
                Money::new(Decimal::new(3225, 2), Currency::parse("EUR").unwrap()).unwrap()
            ),
        }
    );
    let received = fake.log.all();
    assert_eq!(
        received[2].line(),
        format!(
            "POST {RECORDS}/returnAuthorization/eid:RMA-000042/!transform/creditMemo?replace=item"
        )
    );
    assert_eq!(
        received[2].body,
        fixture(VENDOR, "credit_memo.request.json")
    );
    assert_eq!(
        received[3].line(),
        format!("GET {RECORDS}/creditMemo/649?fields=tranId,total")
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_return_authorization_by_external_id() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::LoseAnswer);

    let first = return_authorization(sink.as_ref()).await;
    let second = return_authorization(sink.as_ref()).await;

    assert_technical(first, "http_502", Some(502));
    assert_eq!(second, Ok(document("RA1042")));
    assert_eq!(fake.log.count("POST"), 1, "{:?}", fake.log.lines());
    assert_eq!(fake.count("returnAuthorization"), 1);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_credit_memo_by_external_id() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    return_authorization(sink.as_ref()).await.unwrap();
    fake.faults.push(Fault::LoseAnswer);
    let memo = action(ActionKind::ErpCreditMemo);

    let first = deliver(sink.as_ref(), &memo, CREDIT_KEY, &after_return()).await;
    let second = deliver(sink.as_ref(), &memo, CREDIT_KEY, &after_return())
        .await
        .unwrap();

    assert_technical(first, "http_502", Some(502));
    assert_eq!(number_of(&second), "CM1044");
    assert_eq!(fake.count("creditMemo"), 1);
    assert!(fake.has("creditMemo", CREDIT_EID));
}

#[tokio::test]
async fn the_concurrency_limit_is_technical_and_carries_retry_after() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: fixture_text(VENDOR, "error.throttled.json"),
        retry_after: Some(2),
    });

    let result = return_authorization(sink.as_ref()).await;

    let wait = assert_technical(result, "CONCURRENCY_LIMIT_EXCEEDED", Some(429));
    assert_eq!(wait, Some(Duration::from_secs(2)));
    assert_eq!(fake.count("returnAuthorization"), 0);
}

#[tokio::test]
async fn a_validation_error_is_a_business_failure_naming_the_field() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::BAD_REQUEST,
        body: fixture_text(VENDOR, "error.validation.json"),
        retry_after: None,
    });

    let result = return_authorization(sink.as_ref()).await;

    let message = assert_business(result, "INVALID_CONTENT", Some(400));
    assert!(
        message.contains("SKU-X") && message.ends_with("(at item.items[0].item)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refused_login_is_technical() {
    let fake = NetSuiteFake::default();
    let sink = erp_sink(config(), fake.router(), &[("NETSUITE_TOKEN", "stale")]).unwrap();

    let result = return_authorization(sink.as_ref()).await;

    let message = match result {
        Err(SinkError::Technical { code, message, .. }) if code == "unauthorized" => message,
        other => panic!("expected unauthorized, got {other:?}"),
    };
    assert!(message.starts_with("INVALID_LOGIN: "), "{message}");
    assert_eq!(fake.log.count("POST"), 0);
}

#[tokio::test]
async fn a_sku_the_return_authorization_does_not_have_is_refused_before_the_transform() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    return_authorization(sink.as_ref()).await.unwrap();
    let mut receipt = action(ActionKind::ErpInventoryAdjustment);
    receipt.lines[1].sku = Sku::parse("SKU-Z").unwrap();

    let result = deliver(sink.as_ref(), &receipt, RECEIPT_KEY, &after_return()).await;

    let message = assert_business(result, "line_not_authorized", None);
    assert!(message.contains("SKU-Z"), "{message}");
    assert_eq!(fake.count("itemReceipt"), 0);
}

#[tokio::test]
async fn a_cancellation_deletes_the_return_authorization_and_a_repeat_is_done() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();
    return_authorization(sink.as_ref()).await.unwrap();
    fake.log.clear();
    let cancel = action(ActionKind::ErpCancelReturnOrder);
    let key = "RMA-000042:erp_cancel_return_order:11";

    let first = deliver(sink.as_ref(), &cancel, key, &after_return()).await;
    let again = deliver(sink.as_ref(), &cancel, key, &after_return()).await;

    assert_eq!(first, Ok(ActionResult::Accepted));
    assert_eq!(again, Ok(ActionResult::Accepted));
    assert_eq!(
        fake.log.lines(),
        [
            format!("DELETE {RECORDS}/returnAuthorization/eid:RMA-000042"),
            format!("DELETE {RECORDS}/returnAuthorization/eid:RMA-000042"),
        ]
    );
    assert_eq!(fake.count("returnAuthorization"), 0);
}

#[tokio::test]
async fn claims_repairs_and_replacements_are_unsupported() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();

    for kind in [
        ActionKind::ErpSupplierClaim,
        ActionKind::ErpRepairOrder,
        ActionKind::ErpReplacementOrder,
        ActionKind::PortalStatus,
    ] {
        let result = deliver(sink.as_ref(), &action(kind), "key", &after_return()).await;

        let message = assert_business(result, "unsupported_action", None);
        assert!(message.contains(kind.as_str()), "{message}");
    }
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn the_health_check_lists_return_authorizations() {
    let fake = NetSuiteFake::default();
    let sink = fake.sink();

    assert_eq!(sink.health().await, Ok(()));
    assert_eq!(
        fake.log.lines(),
        [format!("GET {RECORDS}/returnAuthorization?limit=1")]
    );
}
