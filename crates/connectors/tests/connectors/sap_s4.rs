//! The SAP S/4HANA connector against a fake of SAP Gateway's OData V2
//! services (`API_CUSTOMER_RETURN_SRV`, `API_CREDIT_MEMO_REQUEST_SRV`): the
//! payloads it sends are the fixtures in `src/sap_s4/fixtures`, the CSRF
//! token and session cookies make the round trip from the fetch to the
//! create, a retry after a lost answer finds the document instead of
//! creating a second one, and SAP's error answers are classified.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{ActionKind, ActionResult};
use backhaul_domain::values::{Currency, Money};
use backhaul_engine::{Sink, SinkError};
use backhaul_master::MasterData;
use rust_decimal::Decimal;
use serde_json::json;

use crate::erp_fake::{
    Fault, Faults, Log, between, erp_reasons, erp_sink, fault_response, fixture, fixture_text,
    json_response, receive,
};
use crate::helpers::{
    RMA, action, assert_business, assert_technical, deliver, deliver_with_master, delivered,
    document, no_prerequisites,
};

const VENDOR: &str = "sap_s4";
const RETURNS: &str = "/sap/opu/odata/sap/API_CUSTOMER_RETURN_SRV";
const CREDITS: &str = "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV";
const ENV: &[(&str, &str)] = &[("SAP_USER", "BACKHAUL_COMM"), ("SAP_PASSWORD", "s3cret-pw")];
/// `Basic` of BACKHAUL_COMM:s3cret-pw.
const BASIC: &str = "Basic QkFDS0hBVUxfQ09NTTpzM2NyZXQtcHc=";
const SESSION_COOKIE: &str = "SAP_SESSIONID_S4H_100=session-42";
const CONTEXT_COOKIE: &str = "sap-usercontext=sap-client=100";
const RETURN_NUMBER: &str = "60000123";
const RETURN_KEY: &str = "RMA-000042:erp_return_order:3";
const CREDIT_KEY: &str = "RMA-000042:erp_credit_memo:9";

fn config() -> ConnectorConfig {
    toml::from_str(
        r#"
        kind = "sap-s4"

        [sap]
        user_env = "SAP_USER"
        password_env = "SAP_PASSWORD"
        sales_organization = "1710"
        distribution_channel = "10"
        division = "00"
        credit_memo_reason = "R01"
        amount_condition_type = "ZRFD"
        "#,
    )
    .unwrap()
}

#[derive(Default)]
struct State {
    /// The CSRF token SAP currently accepts.
    token: String,
    /// How many tokens SAP has made (`token-1`, `token-2`…).
    tokens_issued: u32,
    /// Issue the next token, then stop accepting it (it "expires" before
    /// the create).
    expire_next_token: bool,
    /// References (`PurchaseOrderByCustomer`) of the customer returns.
    returns: Vec<String>,
    deleted: bool,
    /// References of the credit memo requests.
    credits: Vec<String>,
}

/// SAP Gateway with the two services, checking what SAP checks: the
/// communication user, the CSRF token with its session cookies on every
/// modifying request, the ETag on a delete.
#[derive(Clone)]
struct SapFake {
    log: Log,
    faults: Faults,
    state: Arc<Mutex<State>>,
}

impl SapFake {
    fn new() -> SapFake {
        SapFake {
            log: Log::default(),
            faults: Faults::default(),
            state: Arc::new(Mutex::new(State {
                token: "token-1".to_owned(),
                tokens_issued: 1,
                ..State::default()
            })),
        }
    }

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

    async fn handle(&self, request: Request) -> Response {
        let received = receive(request).await;
        self.log.push(received.clone());
        if received.header("authorization") != Some(BASIC) {
            return fault_response(
                StatusCode::UNAUTHORIZED,
                &fixture_text(VENDOR, "error.unauthorized.html"),
                None,
            );
        }
        let fetch = received
            .header("x-csrf-token")
            .is_some_and(|t| t.eq_ignore_ascii_case("fetch"));
        let mut response = self.answer(&received);
        if fetch {
            let mut state = self.state.lock().unwrap();
            let headers = response.headers_mut();
            headers.insert("x-csrf-token", state.token.parse().unwrap());
            headers.append(
                "set-cookie",
                format!("{SESSION_COOKIE}; path=/; secure; HttpOnly")
                    .parse()
                    .unwrap(),
            );
            headers.append(
                "set-cookie",
                format!("{CONTEXT_COOKIE}; path=/").parse().unwrap(),
            );
            if state.expire_next_token {
                state.expire_next_token = false;
                state.tokens_issued += 1;
                state.token = format!("token-{}", state.tokens_issued);
            }
        }
        response
    }

    /// Whether a modifying request carries the token and its session.
    fn csrf_ok(&self, received: &crate::erp_fake::Received) -> bool {
        let state = self.state.lock().unwrap();
        let cookies = received.header("cookie").unwrap_or("");
        received.header("x-csrf-token") == Some(state.token.as_str())
            && cookies.contains(SESSION_COOKIE)
            && cookies.contains(CONTEXT_COOKIE)
    }

    fn answer(&self, received: &crate::erp_fake::Received) -> Response {
        let return_entity = format!("{RETURNS}/A_CustomerReturn('{RETURN_NUMBER}')");
        let method = received.method.as_str();
        let path = received.path.as_str();
        let modifying = method != "GET";
        if modifying && !self.csrf_ok(received) {
            return Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("x-csrf-token", "Required")
                .body(Body::from(fixture_text(VENDOR, "error.csrf_required.txt")))
                .unwrap();
        }
        let reference =
            between(&received.query, "PurchaseOrderByCustomer eq '", "'").map(str::to_owned);
        match (method, path) {
            ("GET", p) if p == format!("{RETURNS}/") => json_response(
                StatusCode::OK,
                &json!({ "d": { "EntitySets": ["A_CustomerReturn", "A_CustomerReturnItem"] } }),
            ),
            ("GET", p) if p == format!("{RETURNS}/A_CustomerReturn") => {
                let state = self.state.lock().unwrap();
                let found = reference.is_some_and(|r| state.returns.contains(&r)) && !state.deleted;
                json_response(
                    StatusCode::OK,
                    &fixture(
                        VENDOR,
                        if found {
                            "customer_return.lookup.json"
                        } else {
                            "lookup.empty.json"
                        },
                    ),
                )
            }
            ("GET", p) if p == return_entity => {
                let state = self.state.lock().unwrap();
                if state.returns.is_empty() || state.deleted {
                    not_found()
                } else {
                    json_response(
                        StatusCode::OK,
                        &fixture(VENDOR, "customer_return.read.json"),
                    )
                }
            }
            ("DELETE", p) if p == return_entity => {
                let etag = fixture(VENDOR, "customer_return.read.json")["d"]["__metadata"]["etag"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let mut state = self.state.lock().unwrap();
                if state.returns.is_empty() || state.deleted {
                    not_found()
                } else if received.header("if-match") != Some(etag.as_str()) {
                    fault_response(StatusCode::PRECONDITION_FAILED, "", None)
                } else {
                    state.deleted = true;
                    fault_response(StatusCode::NO_CONTENT, "", None)
                }
            }
            ("POST", p) if p == format!("{RETURNS}/A_CustomerReturn") => self.create(
                received,
                |state, reference| state.returns.push(reference),
                "customer_return.created.json",
            ),
            ("GET", p) if p == format!("{CREDITS}/A_CreditMemoRequest") => {
                let state = self.state.lock().unwrap();
                let found = reference.is_some_and(|r| state.credits.contains(&r));
                json_response(
                    StatusCode::OK,
                    &fixture(
                        VENDOR,
                        if found {
                            "credit_memo_request.lookup.json"
                        } else {
                            "lookup.empty.json"
                        },
                    ),
                )
            }
            ("POST", p) if p == format!("{CREDITS}/A_CreditMemoRequest") => self.create(
                received,
                |state, reference| state.credits.push(reference),
                "credit_memo_request.created.json",
            ),
            _ => not_found(),
        }
    }

    /// A create: the queued fault, if any, else the document stored under
    /// its reference and the fixture's 201.
    fn create(
        &self,
        received: &crate::erp_fake::Received,
        store: fn(&mut State, String),
        created: &str,
    ) -> Response {
        let reference = received.body["PurchaseOrderByCustomer"]
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
                store(&mut self.state.lock().unwrap(), reference);
                fault_response(StatusCode::GATEWAY_TIMEOUT, "", None)
            }
            None => {
                store(&mut self.state.lock().unwrap(), reference);
                json_response(StatusCode::CREATED, &fixture(VENDOR, created))
            }
        }
    }
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "error": {
            "code": "/IWBEP/CM_MGW_RT/020",
            "message": { "lang": "en", "value": "Resource not found for segment 'A_CustomerReturnType'" }
        }}),
    )
}

async fn return_order(sink: &dyn Sink) -> Result<ActionResult, SinkError> {
    deliver_with_master(
        sink,
        &action(ActionKind::ErpReturnOrder),
        RETURN_KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await
}

#[tokio::test]
async fn a_customer_return_is_the_fixtures_deep_insert_after_a_lookup_that_fetches_the_token() {
    let fake = SapFake::new();
    let sink = fake.sink();

    let result = return_order(sink.as_ref()).await.unwrap();

    assert_eq!(result, document(RETURN_NUMBER));
    let received = fake.log.all();
    assert_eq!(
        fake.log.lines(),
        [
            format!(
                "GET {RETURNS}/A_CustomerReturn?$filter=PurchaseOrderByCustomer eq '{RMA}' and SoldToParty eq 'CUST-001'&$select=CustomerReturn&$top=1&$format=json"
            ),
            format!("POST {RETURNS}/A_CustomerReturn"),
        ]
    );
    // The look-up asks for the token; the create carries it back with the
    // session's cookies (the fake refuses it otherwise).
    assert_eq!(received[0].header("x-csrf-token"), Some("Fetch"));
    assert_eq!(received[1].header("x-csrf-token"), Some("token-1"));
    assert_eq!(
        received[1].header("cookie"),
        Some(format!("{SESSION_COOKIE}; {CONTEXT_COOKIE}").as_str())
    );
    assert_eq!(received[1].header("content-type"), Some("application/json"));
    assert_eq!(
        received[1].body,
        fixture(VENDOR, "customer_return.request.json")
    );
}

#[tokio::test]
async fn a_credit_memo_request_refers_to_the_customer_return_and_credits_the_hubs_amounts() {
    let fake = SapFake::new();
    let sink = fake.sink();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCreditMemo),
        CREDIT_KEY,
        &delivered(ActionKind::ErpReturnOrder, RETURN_NUMBER),
    )
    .await
    .unwrap();

    let expected = Money::new(Decimal::new(3225, 2), Currency::parse("EUR").unwrap()).unwrap();
    assert_eq!(
        result,
        ActionResult::Document {
            number: backhaul_domain::values::ExternalRef::parse("60000456").unwrap(),
            amount: Some(expected),
        }
    );
    let received = fake.log.all();
    assert!(
        received[0]
            .query
            .contains("PurchaseOrderByCustomer eq 'RMA-000042/9'"),
        "{}",
        received[0].query
    );
    assert_eq!(
        received[1].line(),
        format!("POST {CREDITS}/A_CreditMemoRequest")
    );
    assert_eq!(
        received[1].body,
        fixture(VENDOR, "credit_memo_request.request.json")
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_customer_return_and_creates_no_second_one() {
    let fake = SapFake::new();
    let sink = fake.sink();
    fake.faults.push(Fault::LoseAnswer);

    let first = return_order(sink.as_ref()).await;
    let second = return_order(sink.as_ref()).await;

    assert_technical(first, "http_504", Some(504));
    assert_eq!(second, Ok(document(RETURN_NUMBER)));
    assert_eq!(fake.log.count("POST"), 1, "{:?}", fake.log.lines());
    assert_eq!(fake.state.lock().unwrap().returns.len(), 1);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_credit_memo_request() {
    let fake = SapFake::new();
    let sink = fake.sink();
    fake.faults.push(Fault::LoseAnswer);
    let after = delivered(ActionKind::ErpReturnOrder, RETURN_NUMBER);
    let memo = action(ActionKind::ErpCreditMemo);

    let first = deliver(sink.as_ref(), &memo, CREDIT_KEY, &after).await;
    let second = deliver(sink.as_ref(), &memo, CREDIT_KEY, &after)
        .await
        .unwrap();

    assert_technical(first, "http_504", Some(504));
    assert_eq!(crate::helpers::number_of(&second), "60000456");
    assert_eq!(fake.log.count("POST"), 1);
}

#[tokio::test]
async fn a_throttled_create_is_technical_and_carries_retry_after() {
    let fake = SapFake::new();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: fixture_text(VENDOR, "error.throttled.json"),
        retry_after: Some(7),
    });

    let result = return_order(sink.as_ref()).await;

    let wait = assert_technical(result, "/IWFND/CM_BEC/026", Some(429));
    assert_eq!(wait, Some(Duration::from_secs(7)));
    assert!(fake.state.lock().unwrap().returns.is_empty());
}

#[tokio::test]
async fn a_validation_error_is_a_business_failure_with_saps_code_and_message() {
    let fake = SapFake::new();
    let sink = fake.sink();
    fake.faults.push(Fault::Answer {
        status: StatusCode::BAD_REQUEST,
        body: fixture_text(VENDOR, "error.validation.json"),
        retry_after: None,
    });

    let result = return_order(sink.as_ref()).await;

    let message = assert_business(result, "V1/320", Some(400));
    assert!(message.contains("Material SKU-X"), "{message}");
}

#[tokio::test]
async fn a_refused_logon_is_technical_so_the_breaker_holds_the_deliveries() {
    let fake = SapFake::new();
    let env = [("SAP_USER", "BACKHAUL_COMM"), ("SAP_PASSWORD", "wrong")];
    let sink = erp_sink(config(), fake.router(), &env).unwrap();

    let result = return_order(sink.as_ref()).await;

    assert_technical(result, "unauthorized", Some(401));
    assert_eq!(fake.log.count("POST"), 0);
}

#[tokio::test]
async fn an_expired_csrf_token_is_fetched_again_and_the_create_repeated_once() {
    let fake = SapFake::new();
    let sink = fake.sink();
    fake.state.lock().unwrap().expire_next_token = true;

    let result = return_order(sink.as_ref()).await;

    assert_eq!(result, Ok(document(RETURN_NUMBER)));
    let received = fake.log.all();
    assert_eq!(
        fake.log.lines(),
        [
            received[0].line(),
            format!("POST {RETURNS}/A_CustomerReturn"),
            format!("GET {RETURNS}/"),
            format!("POST {RETURNS}/A_CustomerReturn"),
        ]
    );
    assert_eq!(received[3].header("x-csrf-token"), Some("token-2"));
    assert_eq!(fake.state.lock().unwrap().returns.len(), 1);
}

#[tokio::test]
async fn a_token_sap_keeps_refusing_is_technical() {
    let fake = SapFake::new();
    let inner = fake.clone();
    // Every token SAP hands out expires before it is used.
    let router = Router::new().fallback(move |request: Request| {
        let fake = inner.clone();
        async move {
            fake.state.lock().unwrap().expire_next_token = true;
            fake.handle(request).await
        }
    });
    let sink = erp_sink(config(), router, ENV).unwrap();

    let result = return_order(sink.as_ref()).await;

    assert_technical(result, "csrf_token_rejected", None);
    assert_eq!(fake.log.count("POST"), 2, "one repeat, not a loop");
    assert!(fake.state.lock().unwrap().returns.is_empty());
}

#[tokio::test]
async fn a_cancellation_deletes_the_customer_return_with_its_etag_and_a_repeat_is_done() {
    let fake = SapFake::new();
    let sink = fake.sink();
    return_order(sink.as_ref()).await.unwrap();
    fake.log.clear();
    let cancel = action(ActionKind::ErpCancelReturnOrder);
    let after = delivered(ActionKind::ErpReturnOrder, RETURN_NUMBER);

    let first = deliver(
        sink.as_ref(),
        &cancel,
        "RMA-000042:erp_cancel_return_order:11",
        &after,
    )
    .await;
    let again = deliver(
        sink.as_ref(),
        &cancel,
        "RMA-000042:erp_cancel_return_order:11",
        &after,
    )
    .await;

    assert_eq!(first, Ok(ActionResult::Accepted));
    assert_eq!(again, Ok(ActionResult::Accepted));
    let received = fake.log.all();
    let entity = format!("{RETURNS}/A_CustomerReturn('{RETURN_NUMBER}')?$format=json");
    assert_eq!(
        fake.log.lines(),
        [
            format!("GET {entity}"),
            format!("DELETE {entity}"),
            format!("GET {entity}"),
        ]
    );
    assert_eq!(
        received[1].header("if-match"),
        Some("W/\"datetime'2025-03-03T09%3A00%3A05.2170000'\"")
    );
    assert!(fake.state.lock().unwrap().deleted);
}

#[tokio::test]
async fn an_inventory_adjustment_is_unsupported_and_nothing_is_sent() {
    let fake = SapFake::new();
    let sink = fake.sink();

    for kind in [
        ActionKind::ErpInventoryAdjustment,
        ActionKind::ErpSupplierClaim,
        ActionKind::ErpRepairOrder,
        ActionKind::ErpReplacementOrder,
        ActionKind::WmsExpectedReceipt,
    ] {
        let result = deliver(
            sink.as_ref(),
            &action(kind),
            "key",
            &delivered(ActionKind::ErpReturnOrder, RETURN_NUMBER),
        )
        .await;

        let message = assert_business(result, "unsupported_action", None);
        assert!(message.contains(kind.as_str()), "{message}");
    }
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn an_unmapped_reason_is_refused_before_anything_reaches_sap() {
    let fake = SapFake::new();
    let sink = fake.sink();
    // A crosswalk for the ERP that knows only one of the two reasons.
    let csv = "system,kind,external,canonical,preferred\nerp,reason,R07,SIZE_FIT,\n";
    let records = backhaul_master::parse_csv(
        backhaul_master::Kind::Crosswalk,
        "crosswalks.csv",
        csv.as_bytes(),
    )
    .unwrap();
    let master = MasterData::from_records(1, records).unwrap();

    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        RETURN_KEY,
        &no_prerequisites(),
        &master,
    )
    .await;

    assert_business(result, "unmapped_code", None);
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn a_credit_memo_without_the_customer_returns_number_is_not_sent() {
    let fake = SapFake::new();
    let sink = fake.sink();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCreditMemo),
        CREDIT_KEY,
        &std::collections::BTreeMap::from([(ActionKind::ErpReturnOrder, None)]),
    )
    .await;

    assert_business(result, "prerequisite_missing", None);
    assert!(fake.log.all().is_empty());
}

#[tokio::test]
async fn the_health_check_reads_the_service_root_as_the_communication_user() {
    let fake = SapFake::new();
    let sink = fake.sink();

    assert_eq!(sink.health().await, Ok(()));
    assert_eq!(fake.log.lines(), [format!("GET {RETURNS}/")]);
    assert_eq!(fake.log.all()[0].header("authorization"), Some(BASIC));
}

#[tokio::test]
async fn a_sap_client_goes_on_every_request() {
    let fake = SapFake::new();
    let mut config = config();
    config.sap.as_mut().unwrap().sap_client = Some("100".to_owned());
    let sink = erp_sink(config, fake.router(), ENV).unwrap();

    return_order(sink.as_ref()).await.unwrap();

    let received = fake.log.all();
    assert_eq!(received.len(), 2);
    for request in received {
        assert!(
            request.query.ends_with("sap-client=100"),
            "{}",
            request.line()
        );
    }
}
