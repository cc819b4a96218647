//! Every malformed or refused request is a problem with the expected code,
//! and stores nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, new_key, return_request, spawn_app};

/// POSTs a request to open a return and checks the problem and that no
/// return was stored. Returns the problem's detail.
async fn refused_create(app: &TestApp, body: &Value, status: u16, code: &str) -> String {
    let detail = app
        .post("portal", "/v1/returns", body)
        .await
        .assert_problem(status, code);
    assert_eq!(app.return_count().await, 0, "{code}: nothing is stored");
    detail
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    for body in ["{\"channel\": \"portal\",", "{} {}", "not json", ""] {
        app.post_raw(
            "portal",
            "/v1/returns",
            Some("application/json"),
            Some(&new_key()),
            body,
        )
        .await
        .assert_problem(400, "malformed_json");
    }
    assert_eq!(app.return_count().await, 0);
}

#[tokio::test]
async fn bodies_that_do_not_fit_the_model_name_the_field() {
    let app = spawn_app().await;
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "SKU format",
            Box::new(|b| b["lines"][0]["sku"] = json!("BAD SKU!")),
            "lines[0].sku: invalid SKU",
        ),
        (
            "negative quantity",
            Box::new(|b| b["lines"][1]["quantity"] = json!("-1")),
            "lines[1].quantity: invalid quantity: must not be negative",
        ),
        (
            "negative integer quantity",
            Box::new(|b| b["lines"][0]["quantity"] = json!(-2)),
            "lines[0].quantity",
        ),
        (
            "float money",
            Box::new(|b| {
                b["lines"][0]["unit_price"] = json!({ "amount": 19.99, "currency": "USD" })
            }),
            "lines[0].unit_price.amount: invalid amount: 19.99 is a JSON float",
        ),
        (
            "unknown currency code",
            Box::new(|b| b["currency"] = json!("XYZ")),
            "currency: invalid currency",
        ),
        (
            "unknown field",
            Box::new(|b| b["lines"][0]["colour"] = json!("red")),
            "lines[0].colour: unknown field `colour`",
        ),
        (
            "missing field",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("site");
            }),
            "missing field `site`",
        ),
    ];
    for (what, change, expected) in cases {
        let mut body = return_request();
        change(&mut body);
        let detail = refused_create(&app, &body, 422, "invalid_body").await;
        assert!(detail.contains(expected), "{what}: {detail}");
    }
}

#[tokio::test]
async fn a_line_in_another_currency_is_rejected_by_the_domain() {
    let app = spawn_app().await;
    let mut body = return_request();
    body["lines"][1]["unit_price"] = json!({ "amount": "10.00", "currency": "EUR" });
    let detail = refused_create(&app, &body, 422, "currency_mismatch").await;
    assert!(detail.contains("lines[2].unit_price"), "{detail}");
}

#[tokio::test]
async fn a_return_without_lines_is_rejected() {
    let app = spawn_app().await;
    let mut body = return_request();
    body["lines"] = json!([]);
    refused_create(&app, &body, 422, "no_lines").await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let app = spawn_app().await;
    let mut body = return_request();
    body["external_refs"] = json!({ "padding": "x".repeat(1024 * 1024) });
    refused_create(&app, &body, 413, "payload_too_large").await;
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = crate::helpers::spawn_app_with(backhaul_api::ApiConfig { max_body_bytes: 64 }).await;
    let detail = refused_create(&app, &return_request(), 413, "payload_too_large").await;
    assert!(detail.contains("64 bytes"), "{detail}");
}

#[tokio::test]
async fn posts_need_an_idempotency_key() {
    let app = spawn_app().await;
    let body = return_request().to_string();
    app.post_raw(
        "portal",
        "/v1/returns",
        Some("application/json"),
        None,
        body.clone(),
    )
    .await
    .assert_problem(400, "idempotency_key_missing");
    for bad in ["has space", ""] {
        app.post_raw(
            "portal",
            "/v1/returns",
            Some("application/json"),
            Some(bad),
            body.clone(),
        )
        .await
        .assert_problem(400, "idempotency_key_invalid");
    }
    app.post_raw(
        "portal",
        "/v1/returns",
        Some("application/json"),
        Some(&"k".repeat(256)),
        body,
    )
    .await
    .assert_problem(400, "idempotency_key_invalid");
    assert_eq!(app.return_count().await, 0);
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let app = spawn_app().await;
    let body = return_request().to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        app.post_raw(
            "portal",
            "/v1/returns",
            content_type,
            Some(&new_key()),
            body.clone(),
        )
        .await
        .assert_problem(415, "unsupported_media_type");
    }
    assert_eq!(app.return_count().await, 0);
}

#[tokio::test]
async fn a_bad_correlation_id_is_a_400() {
    let app = spawn_app().await;
    let request = axum::http::Request::post("/v1/returns")
        .header("authorization", format!("Bearer {}", app.token("portal")))
        .header("content-type", "application/json")
        .header("idempotency-key", new_key())
        .header("x-correlation-id", "not-a-uuid")
        .body(axum::body::Body::from(return_request().to_string()))
        .unwrap();
    app.send(request)
        .await
        .assert_problem(400, "correlation_id_invalid");
    assert_eq!(app.return_count().await, 0);
}

#[tokio::test]
async fn commands_the_lifecycle_refuses_change_nothing() {
    let app = spawn_app().await;
    let id = app.approved_return().await;
    let base = format!("/v1/returns/{id}");

    // Approving twice is not a transition from `approved`.
    let detail = app
        .post("support", &format!("{base}/approve"), &json!({}))
        .await
        .assert_problem(409, "invalid_transition");
    assert!(detail.contains("approved"), "{detail}");
    app.post(
        "support",
        &format!("{base}/reject"),
        &json!({ "reason": "late" }),
    )
    .await
    .assert_problem(409, "invalid_transition");
    assert_eq!(app.version(&id).await, 2);

    app.post(
        "wms",
        &format!("{base}/receipts"),
        &json!({ "receipt_ref": "RCV-1", "lines": [{ "sku": "SKU-RED", "quantity": "2" }] }),
    )
    .await
    .assert_ok(200);

    // Inspecting more than was received.
    let detail = app
        .post(
            "wms",
            &format!("{base}/inspections"),
            &json!({ "inspections": [{ "line_no": 1, "quantity": "3", "condition": "NEW" }] }),
        )
        .await
        .assert_problem(422, "quantity_exceeds_available");
    assert!(detail.contains("line 1"), "{detail}");
    // A line the return does not have.
    app.post(
        "wms",
        &format!("{base}/inspections"),
        &json!({ "inspections": [{ "line_no": 9, "quantity": "1", "condition": "NEW" }] }),
    )
    .await
    .assert_problem(422, "unknown_line");
    // A receipt applied twice.
    app.post(
        "wms",
        &format!("{base}/receipts"),
        &json!({ "receipt_ref": "RCV-1", "lines": [{ "sku": "SKU-RED", "quantity": "1" }] }),
    )
    .await
    .assert_problem(409, "duplicate");
    // Closing with units still awaiting inspection.
    app.post("finance", &format!("{base}/close"), &json!({}))
        .await
        .assert_problem(409, "not_ready_to_close");
    // Cancelling once goods arrived.
    app.post(
        "support",
        &format!("{base}/cancel"),
        &json!({ "reason": "oops" }),
    )
    .await
    .assert_problem(409, "units_already_received");
    // A settlement in another currency.
    app.post(
        "finance",
        &format!("{base}/documents"),
        &json!({ "kind": "refund", "system": "psp", "number": "R-1", "amount": { "amount": "5", "currency": "EUR" } }),
    )
    .await
    .assert_problem(422, "currency_mismatch");
    // A command body with an unknown field.
    let detail = app
        .post(
            "finance",
            &format!("{base}/close"),
            &json!({ "force": true }),
        )
        .await
        .assert_problem(422, "invalid_body");
    assert!(detail.contains("force"), "{detail}");

    assert_eq!(
        app.version(&id).await,
        3,
        "only the first receipt was recorded"
    );
}

#[tokio::test]
async fn unknown_and_malformed_return_ids() {
    let app = spawn_app().await;
    let missing = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    app.get("portal", &format!("/v1/returns/{missing}"))
        .await
        .assert_problem(404, "return_not_found");
    app.get("portal", &format!("/v1/returns/{missing}/events"))
        .await
        .assert_problem(404, "return_not_found");
    app.post(
        "support",
        &format!("/v1/returns/{missing}/approve"),
        &json!({}),
    )
    .await
    .assert_problem(404, "return_not_found");
    app.get("portal", "/v1/returns/RMA-123")
        .await
        .assert_problem(400, "invalid_return_id");
    app.post("support", "/v1/returns/RMA-123/approve", &json!({}))
        .await
        .assert_problem(400, "invalid_return_id");
}
