//! Answers no simulator gives, from small axum routers standing in for a
//! target: what a connector sends on the wire (headers, paths), and success
//! answers it cannot read, which are business failures (`invalid_response`):
//! the target acted, so sending the same request again cannot fix them.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use backhaul_domain::action::{ActionKind, ActionResult, Target};

use crate::helpers::{
    RMA, action, assert_business, assert_technical, deliver, delivered, document, in_process_sink,
    no_prerequisites,
};

/// One request a fake received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A target that answers every request with `status` and `body`, and
/// remembers what it was sent.
#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Fake {
    fn router(&self, status: StatusCode, body: &'static str) -> Router {
        let received = self.received.clone();
        Router::new().fallback(move |request: Request| {
            let received = received.clone();
            async move {
                let (parts, body_in) = request.into_parts();
                let bytes = axum::body::to_bytes(body_in, usize::MAX).await.unwrap();
                received.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body: bytes,
                });
                (status, body)
            }
        })
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_delivery_sends_its_key_correlation_id_and_json() {
    let fake = Fake::default();
    let sink = in_process_sink(
        Target::Erp,
        fake.router(StatusCode::CREATED, r#"{"number":"RO-7"}"#),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        "RMA-000042:erp_return_order:3",
        &no_prerequisites(),
    )
    .await
    .unwrap();

    assert_eq!(result, document("RO-7"));
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/erp/return-orders")
    );
    assert_eq!(
        request.headers["idempotency-key"],
        "RMA-000042:erp_return_order:3"
    );
    assert_eq!(
        request.headers["x-correlation-id"],
        uuid::Uuid::from_u128(7).to_string().as_str()
    );
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["rma"], RMA);
}

#[tokio::test]
async fn a_success_without_the_number_is_an_invalid_response() {
    for (target, kind) in [
        (Target::Erp, ActionKind::ErpReturnOrder),
        (Target::Wms, ActionKind::WmsExpectedReceipt),
        (Target::Carrier, ActionKind::CarrierLabel),
    ] {
        let sink = in_process_sink(
            target,
            Fake::default().router(StatusCode::OK, r#"{"ok":true}"#),
        );

        let result = deliver(sink.as_ref(), &action(kind), "key", &no_prerequisites()).await;

        assert_business(result, "invalid_response", None);
    }
}

#[tokio::test]
async fn a_success_that_is_not_json_is_an_invalid_response() {
    let sink = in_process_sink(
        Target::Erp,
        Fake::default().router(StatusCode::OK, "<html>created</html>"),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        "key",
        &no_prerequisites(),
    )
    .await;

    let message = assert_business(result, "invalid_response", None);
    assert!(message.contains("not JSON"), "{message}");
}

#[tokio::test]
async fn a_number_the_hub_cannot_hold_is_an_invalid_response() {
    let sink = in_process_sink(
        Target::Erp,
        Fake::default().router(StatusCode::OK, r#"{"number":"RO 1 <script>"}"#),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        "key",
        &no_prerequisites(),
    )
    .await;

    assert_business(result, "invalid_response", None);
}

#[tokio::test]
async fn a_credit_memo_answer_without_its_amount_is_an_invalid_response() {
    let sink = in_process_sink(
        Target::Erp,
        Fake::default().router(StatusCode::CREATED, r#"{"number":"CM-1"}"#),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCreditMemo),
        "key",
        &delivered(ActionKind::ErpReturnOrder, "RO-1"),
    )
    .await;

    let message = assert_business(result, "invalid_response", None);
    assert!(message.contains("amount"), "{message}");
}

#[tokio::test]
async fn a_portal_that_answers_with_no_body_has_accepted() {
    let sink = in_process_sink(
        Target::Portal,
        Fake::default().router(StatusCode::NO_CONTENT, ""),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::PortalStatus),
        "key",
        &no_prerequisites(),
    )
    .await;

    assert_eq!(result, Ok(ActionResult::Accepted));
}

#[tokio::test]
async fn a_plain_text_gateway_error_is_technical_and_named_by_its_status() {
    let sink = in_process_sink(
        Target::Wms,
        Fake::default().router(StatusCode::BAD_GATEWAY, "upstream went away"),
    );

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::WmsExpectedReceipt),
        "key",
        &no_prerequisites(),
    )
    .await;

    assert_technical(result, "http_502", Some(502));
}

#[tokio::test]
async fn an_unhealthy_target_fails_the_health_check_technically() {
    let fake = Fake::default();
    let sink = in_process_sink(
        Target::Carrier,
        fake.router(StatusCode::SERVICE_UNAVAILABLE, ""),
    );

    let result = sink.health().await;

    assert_technical(
        result.map(|()| ActionResult::Accepted),
        "http_503",
        Some(503),
    );
    let received = fake.received();
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("GET", "/health")
    );
}

#[tokio::test]
async fn a_number_with_a_slash_stays_one_path_segment() {
    // ERPs and WMSs often number documents by year ("ASN/2025/17"); the
    // number must not become extra path segments of the cancel URL.
    let fake = Fake::default();
    let sink = in_process_sink(Target::Wms, fake.router(StatusCode::OK, "{}"));

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::WmsCancelExpectedReceipt),
        "cancel",
        &delivered(ActionKind::WmsExpectedReceipt, "ASN/2025/17"),
    )
    .await;

    assert_eq!(result, Ok(ActionResult::Accepted));
    assert_eq!(
        fake.received()[0].path,
        "/wms/expected-receipts/ASN%2F2025%2F17/cancel"
    );
}

#[tokio::test]
async fn a_tracking_number_with_a_hash_stays_in_the_path() {
    // `#` would start a URL fragment and cut the path short.
    let fake = Fake::default();
    let sink = in_process_sink(Target::Carrier, fake.router(StatusCode::OK, "{}"));
    let mut void = action(ActionKind::CarrierVoidLabel);
    void.tracking_number = Some(backhaul_domain::values::ExternalRef::parse("1Z#99").unwrap());

    let result = deliver(sink.as_ref(), &void, "void", &no_prerequisites()).await;

    assert_eq!(result, Ok(ActionResult::Accepted));
    assert_eq!(fake.received()[0].path, "/carrier/labels/1Z%2399/void");
}
