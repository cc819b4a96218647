//! The Business Central connector against a fake of the API v2.0
//! `salesCreditMemos` endpoint: the credit memo it sends is the fixture in
//! `src/dynamics_bc/fixtures`, the bearer token goes on every request, a
//! retry after a lost answer finds the credit memo by its external
//! document number, Business Central's error answers are classified, and
//! the actions API v2.0 has no document for are answered without a call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{Action, ActionKind, ActionResult};
use backhaul_domain::values::{Currency, ExternalRef, Money, Quantity};
use backhaul_engine::{Sink, SinkError};
use rust_decimal::Decimal;
use serde_json::json;

use crate::erp_fake::{
    Fault, Faults, Log, Received, between, erp_sink, fault_response, fixture, fixture_text,
    json_response, receive,
};
use crate::helpers::{
    action, assert_business, assert_technical, deliver, delivered, no_prerequisites, number_of,
};

const VENDOR: &str = "dynamics_bc";
const COMPANY: &str = "5c3f2b1a-8e9d-4c7b-a6f5-0e1d2c3b4a59";
const ENV: &[(&str, &str)] = &[("BC_TOKEN", "eyJ0eXAi.bc-access-token")];
const BEARER: &str = "Bearer eyJ0eXAi.bc-access-token";
const CREDIT_KEY: &str = "RMA-000042:erp_credit_memo:9";

fn config_with(extra: &str) -> ConnectorConfig {
    toml::from_str(&format!(
        r#"
        kind = "dynamics-bc"

        [dynamics_bc]
        token_env = "BC_TOKEN"
        company_id = "{COMPANY}"
        {extra}
        "#
    ))
    .unwrap()
}

fn memos_path() -> String {
    format!("/api/v2.0/companies({COMPANY})/salesCreditMemos")
}

/// Business Central's credit memos endpoint, checking the bearer token.
#[derive(Clone, Default)]
struct BcFake {
    log: Log,
    faults: Faults,
    /// `externalDocumentNumber` of every credit memo created.
    memos: Arc<Mutex<Vec<String>>>,
}

impl BcFake {
    fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        })
    }

    fn sink(&self) -> Arc<dyn Sink> {
        erp_sink(config_with(""), self.router(), ENV).unwrap()
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
        match (received.method.as_str(), received.path.as_str()) {
            ("GET", p) if p == memos_path() => self.lookup(&received),
            ("POST", p) if p == memos_path() => self.create(&received),
            ("GET", p) if p == format!("/api/v2.0/companies({COMPANY})") => json_response(
                StatusCode::OK,
                &json!({ "id": COMPANY, "name": "CRONUS", "displayName": "CRONUS" }),
            ),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({ "error": { "code": "BadRequest_NotFound", "message": "Bad Request - Error in query syntax." } }),
            ),
        }
    }

    fn lookup(&self, received: &Received) -> Response {
        let reference = between(&received.query, "externalDocumentNumber eq '", "'");
        let found = reference.is_some_and(|r| self.memos.lock().unwrap().iter().any(|m| m == r));
        json_response(
            StatusCode::OK,
            &fixture(
                VENDOR,
                if found {
                    "sales_credit_memo.lookup.json"
                } else {
                    "lookup.empty.json"
                },
            ),
        )
    }

    fn create(&self, received: &Received) -> Response {
        let reference = received.body["externalDocumentNumber"]
            .as_str()
            .unwrap()
            .to_owned();
        match self.faults.next() {
            Some(Fault::Answer {
                status,
                body,
                retry_after,
            }) => fault_response(status, &body, retry_after),
            Some(Fault::LoseAnswer) => {
                self.memos.lock().unwrap().push(reference);
                fault_response(StatusCode::GATEWAY_TIMEOUT, "", None)
            }
            None => {
                self.memos.lock().unwrap().push(reference);
                json_response(
                    StatusCode::CREATED,
                    &fixture(VENDOR, "sales_credit_memo.created.json"),
                )
            }
        }
    }
}

async fn credit_memo(sink: &dyn Sink, memo: &Action) -> Result<ActionResult, SinkError> {
    deliver(
        sink,
        memo,
        CREDIT_KEY,
        &delivered(ActionKind::ErpReturnOrder, "RMA-000042"),
    )
    .await
}

fn eur(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::parse("EUR").unwrap()).unwrap()
}

#[tokio::test]
async fn a_credit_memo_is_the_fixtures_deep_insert_after_a_lookup_by_external_document_number() {
    let fake = BcFake::default();
    let sink = fake.sink();

    let result = credit_memo(sink.as_ref(), &action(ActionKind::ErpCreditMemo))
        .await
        .unwrap();

    assert_eq!(
        result,
        ActionResult::Document {
            number: ExternalRef::parse("1009").unwrap(),
            amount: Some(eur(3225)),
        }
    );
    assert_eq!(
        fake.log.lines(),
        [
            format!(
                "GET {}?$filter=externalDocumentNumber eq 'RMA-000042/9' and customerNumber eq 'CUST-001'&$select=id,number,externalDocumentNumber,totalAmountIncludingTax,currencyCode&$top=1",
                memos_path()
            ),
            format!("POST {}", memos_path()),
        ]
    );
    let received = fake.log.all();
    for request in &received {
        assert_eq!(request.header("authorization"), Some(BEARER));
    }
    assert_eq!(received[1].header("content-type"), Some("application/json"));
    assert_eq!(
        received[1].body,
        fixture(VENDOR, "sales_credit_memo.request.json")
    );
}

#[tokio::test]
async fn the_local_currency_is_left_for_business_central_to_fill_in() {
    let fake = BcFake::default();
    let sink = erp_sink(config_with(r#"local_currency = "EUR""#), fake.router(), ENV).unwrap();

    credit_memo(sink.as_ref(), &action(ActionKind::ErpCreditMemo))
        .await
        .unwrap();

    let mut expected = fixture(VENDOR, "sales_credit_memo.request.json");
    expected.as_object_mut().unwrap().remove("currencyCode");
    assert_eq!(fake.log.all()[1].body, expected);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_credit_memo_and_creates_no_second_one() {
    let fake = BcFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::LoseAnswer);
    let memo = action(ActionKind::ErpCreditMemo);

    let first = credit_memo(sink.as_ref(), &memo).await;
    let second = credit_memo(sink.as_ref(), &memo).await.unwrap();

    assert_technical(first, "http_504", Some(504));
    assert_eq!(number_of(&second), "1009");
    assert_eq!(fake.log.count("POST"), 1, "{:?}", fake.log.lines());
    assert_eq!(fake.memos.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_throttled_create_is_technical_and_carries_retry_after() {
    let fake = BcFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: fixture_text(VENDOR, "error.throttled.json"),
        retry_after: Some(30),
    });

    let result = credit_memo(sink.as_ref(), &action(ActionKind::ErpCreditMemo)).await;

    let wait = assert_technical(result, "Application_TooManyRequests", Some(429));
    assert_eq!(wait, Some(Duration::from_secs(30)));
    assert!(fake.memos.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_validation_error_is_a_business_failure_with_business_centrals_code_and_message() {
    let fake = BcFake::default();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::BAD_REQUEST,
        body: fixture_text(VENDOR, "error.validation.json"),
        retry_after: None,
    });

    let result = credit_memo(sink.as_ref(), &action(ActionKind::ErpCreditMemo)).await;

    let message = assert_business(result, "Application_DialogException", Some(400));
    assert!(message.contains("SKU-X"), "{message}");
}

#[tokio::test]
async fn a_refused_token_is_technical_and_names_business_centrals_code() {
    let fake = BcFake::default();
    let sink = erp_sink(
        config_with(""),
        fake.router(),
        &[("BC_TOKEN", "expired-token")],
    )
    .unwrap();

    let result = credit_memo(sink.as_ref(), &action(ActionKind::ErpCreditMemo)).await;

    match result {
        Err(SinkError::Technical {
            code,
            message,
            status,
            ..
        }) => {
            assert_eq!((code.as_str(), status), ("unauthorized", Some(401)));
            assert!(
                message.starts_with("Authentication_InvalidCredentials: "),
                "{message}"
            );
            // The message says what failed, never with which token.
            assert!(!message.contains("expired-token"), "{message}");
        }
        other => panic!("expected a technical failure, got {other:?}"),
    }
    assert_eq!(fake.log.count("POST"), 0);
}

#[tokio::test]
async fn the_return_order_and_its_cancellation_need_no_call() {
    let fake = BcFake::default();
    let sink = fake.sink();

    let order = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        "RMA-000042:erp_return_order:3",
        &no_prerequisites(),
    )
    .await;
    let cancel = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCancelReturnOrder),
        "RMA-000042:erp_cancel_return_order:11",
        &std::collections::BTreeMap::from([(
            ActionKind::ErpReturnOrder,
            Some(ActionResult::Accepted),
        )]),
    )
    .await;

    assert_eq!(order, Ok(ActionResult::Accepted));
    assert_eq!(cancel, Ok(ActionResult::Accepted));
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn an_inventory_adjustment_and_the_other_documents_are_unsupported() {
    let fake = BcFake::default();
    let sink = fake.sink();

    for kind in [
        ActionKind::ErpInventoryAdjustment,
        ActionKind::ErpSupplierClaim,
        ActionKind::ErpRepairOrder,
        ActionKind::ErpReplacementOrder,
        ActionKind::CarrierLabel,
    ] {
        let result = deliver(sink.as_ref(), &action(kind), "key", &no_prerequisites()).await;

        let message = assert_business(result, "unsupported_action", None);
        assert!(message.contains(kind.as_str()), "{message}");
    }
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn an_amount_no_unit_price_gives_back_is_refused_before_anything_is_sent() {
    let fake = BcFake::default();
    let sink = fake.sink();
    let mut memo = action(ActionKind::ErpCreditMemo);
    // One cent over 3,000 units: no unit price of five decimals
    // multiplies back to it.
    memo.lines[0].quantity = Quantity::parse("3000").unwrap();
    memo.lines[0].amount = Some(eur(1));

    let result = credit_memo(sink.as_ref(), &memo).await;

    assert_business(result, "amount_not_divisible", None);
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn a_reference_too_long_for_business_central_is_refused_not_cut() {
    let fake = BcFake::default();
    let sink = fake.sink();
    let mut memo = action(ActionKind::ErpCreditMemo);
    memo.rma_number = "RMA-0190D8F27C1E-5E6F7A8B9C0D".to_owned();

    let result = deliver(
        sink.as_ref(),
        &memo,
        "RMA-0190D8F27C1E-5E6F7A8B9C0D:erp_credit_memo:123456",
        &no_prerequisites(),
    )
    .await;

    assert_business(result, "reference_too_long", None);
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn the_health_check_reads_the_company() {
    let fake = BcFake::default();
    let sink = fake.sink();

    assert_eq!(sink.health().await, Ok(()));
    assert_eq!(
        fake.log.lines(),
        [format!("GET /api/v2.0/companies({COMPANY})")]
    );
}
