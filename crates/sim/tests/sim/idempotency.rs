//! The rules every creating POST shares: the idempotency key (required,
//! replayed, never reused for another request), bodies that must fit their
//! shape with decimals as strings, and problem+json for every failure.

use backhaul_sim::SimKind;
use serde_json::json;

use crate::helpers::{open, return_order};

#[tokio::test]
async fn the_same_key_and_body_get_the_first_answer_again() {
    let erp = open(SimKind::Erp).await;
    let body = return_order("RMA-1", "EUR", "SKU-1");
    let first = erp.post("/erp/return-orders", "k-1", &body).await;
    assert_eq!(first.assert_ok(201), &json!({"number": "RO-000001"}));
    assert!(!first.replayed());

    // Another key order and formatting is still the same request.
    let reformatted = serde_json::to_string_pretty(&json!({
        "lines": body["lines"], "currency": "EUR", "order_ref": "SO-1",
        "customer": "C-1", "return_id": body["return_id"], "rma": "RMA-1"
    }))
    .unwrap();
    let again = erp
        .post_raw("/erp/return-orders", Some("k-1"), reformatted)
        .await;
    again.assert_ok(201);
    assert!(again.replayed());
    assert_eq!(again.raw, first.raw, "a replay is byte for byte the answer");

    assert_eq!(erp.sim.postings().await.unwrap().len(), 1);
    let stats = erp.sim.stats().await.unwrap();
    assert_eq!(
        (stats.total, stats.created, stats.replayed, stats.stored),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_once() {
    let erp = open(SimKind::Erp).await;
    let body = return_order("RMA-1", "EUR", "SKU-1");
    let send = || erp.post("/erp/return-orders", "k-1", &body);
    let (a, b, c, d) = tokio::join!(send(), send(), send(), send());
    let responses = [a, b, c, d];
    assert!(
        responses
            .iter()
            .all(|r| r.body == json!({"number": "RO-000001"}))
    );
    assert_eq!(responses.iter().filter(|r| !r.replayed()).count(), 1);
    assert_eq!(erp.sim.postings().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let erp = open(SimKind::Erp).await;
    erp.post(
        "/erp/return-orders",
        "k-1",
        &return_order("RMA-1", "EUR", "SKU-1"),
    )
    .await
    .assert_ok(201);

    let other_body = return_order("RMA-2", "EUR", "SKU-1");
    erp.post("/erp/return-orders", "k-1", &other_body)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // The same body on another endpoint is another request too.
    let order = return_order("RMA-1", "EUR", "SKU-1");
    erp.post("/erp/credit-memos", "k-1", &order)
        .await
        .assert_problem(400, "invalid_body");
    let memo = json!({"rma": "RMA-1", "return_order": "RO-000001", "currency": "EUR",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "amount": "1.00"}]});
    erp.post("/erp/credit-memos", "k-1", &memo)
        .await
        .assert_problem(422, "idempotency_key_reused");

    assert_eq!(erp.sim.postings().await.unwrap().len(), 1);
    assert_eq!(erp.sim.stats().await.unwrap().invalid, 3);
}

#[tokio::test]
async fn a_post_without_a_key_is_refused_and_stores_nothing() {
    let erp = open(SimKind::Erp).await;
    let body = return_order("RMA-1", "EUR", "SKU-1").to_string();
    erp.post_raw("/erp/return-orders", None, body)
        .await
        .assert_problem(400, "idempotency_key_missing");
    erp.post_raw("/erp/return-orders", Some("has space"), "{}")
        .await
        .assert_problem(400, "idempotency_key_invalid");
    assert!(erp.sim.postings().await.unwrap().is_empty());
}

#[tokio::test]
async fn quantities_and_amounts_must_be_decimal_strings() {
    let erp = open(SimKind::Erp).await;
    let mut body = return_order("RMA-1", "EUR", "SKU-1");
    body["lines"][0]["quantity"] = json!(2.0);
    let response = erp.post("/erp/return-orders", "k-1", &body).await;
    let detail = response.assert_problem(400, "invalid_body");
    assert_eq!(response.body["field"], "lines[0].quantity");
    assert!(detail.starts_with("lines[0].quantity:"), "{detail}");

    // Integers are refused as well: the wire type is a string.
    let mut body = return_order("RMA-1", "EUR", "SKU-1");
    body["lines"][0]["unit_price"] = json!(10);
    let response = erp.post("/erp/return-orders", "k-1", &body).await;
    response.assert_problem(400, "invalid_body");
    assert_eq!(response.body["field"], "lines[0].unit_price");

    let mut body = return_order("RMA-1", "EUR", "SKU-1");
    body["lines"][0]["quantity"] = json!("0");
    let response = erp.post("/erp/return-orders", "k-1", &body).await;
    response.assert_problem(400, "invalid_body");
    assert_eq!(response.body["field"], "lines[0].quantity");
    assert!(erp.sim.postings().await.unwrap().is_empty());
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_name_the_field() {
    let erp = open(SimKind::Erp).await;
    let cases = [
        (json!({"rma": "RMA-1"}), Some("return_id")),
        (
            {
                let mut b = return_order("RMA-1", "EUR", "SKU-1");
                b["colour"] = json!("red");
                b
            },
            Some("colour"),
        ),
        (
            {
                let mut b = return_order("RMA-1", "EUR", "SKU-1");
                b["currency"] = json!("euro");
                b
            },
            Some("currency"),
        ),
        (
            {
                let mut b = return_order("RMA-1", "EUR", "SKU-1");
                b["lines"] = json!([]);
                b
            },
            Some("lines"),
        ),
        (json!([1, 2]), None),
    ];
    for (body, field) in cases {
        let response = erp.post("/erp/return-orders", "k-1", &body).await;
        response.assert_problem(400, "invalid_body");
        assert_eq!(response.body["field"].as_str(), field, "{body}");
    }
    erp.post_raw("/erp/return-orders", Some("k-1"), "{\"rma\":")
        .await
        .assert_problem(400, "invalid_body");
    assert!(erp.sim.postings().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let erp = open(SimKind::Erp).await;
    erp.get("/nowhere").await.assert_problem(404, "not_found");
    // Another kind's routes are not served.
    erp.get("/wms/expected-receipts")
        .await
        .assert_problem(404, "not_found");
    erp.get("/erp/return-orders")
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn health_names_the_kind() {
    for kind in SimKind::ALL {
        let sim = open(kind).await;
        let response = sim.get("/health").await;
        assert_eq!(
            response.assert_ok(200),
            &json!({"status": "ok", "kind": kind.to_string()})
        );
    }
}
