//! A return through its lifecycle over HTTP, each step by the partner whose
//! move it is.

use axum::http::header;
use serde_json::json;

use crate::helpers::{new_key, return_request, spawn_app, usd};

#[tokio::test]
async fn a_return_goes_from_request_to_close() {
    let app = spawn_app().await;

    let created = app.post("portal", "/v1/returns", &return_request()).await;
    created.assert_ok(201);
    let id = created.body["return"]["return_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created.headers[header::LOCATION],
        format!("/v1/returns/{id}")
    );
    assert_eq!(created.status_stage(), ("requested", "awaiting_decision"));
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["events"], json!(["ReturnRequested"]));
    assert!(created.headers.get("idempotent-replayed").is_none());
    let rma = created.body["return"]["rma_number"].as_str().unwrap();
    assert!(rma.starts_with("RMA-"), "{rma}");

    let base = format!("/v1/returns/{id}");
    let step = |partner: &'static str, command: &'static str, body: serde_json::Value| {
        let path = format!("{base}/{command}");
        let app = &app;
        async move {
            let response = app.post(partner, &path, &body).await;
            response.assert_ok(200);
            response
        }
    };

    let r = step("support", "approve", json!({})).await;
    assert_eq!(r.status_stage(), ("approved", "awaiting_label"));
    assert_eq!(r.body["events"], json!(["ReturnApproved"]));

    let r = step(
        "carrier",
        "label",
        json!({ "carrier": "UPS", "tracking_number": "1Z999", "label_ref": "LBL-1" }),
    )
    .await;
    assert_eq!(r.status_stage(), ("label_issued", "awaiting_shipment"));
    assert_eq!(r.body["return"]["label"]["tracking_number"], "1Z999");

    let r = step(
        "carrier",
        "milestones",
        json!({ "milestone": "in_transit", "occurred_at": "2025-03-03T12:00:00Z", "location": "Louisville" }),
    )
    .await;
    assert_eq!(r.status_stage(), ("in_transit", "in_transit"));

    let r = step(
        "wms",
        "receipts",
        json!({
            "receipt_ref": "RCV-1",
            "lines": [
                { "line_no": 1, "sku": "SKU-RED", "quantity": "3" },
                { "sku": "SKU-BLUE", "quantity": "1" }
            ]
        }),
    )
    .await;
    assert_eq!(r.status_stage(), ("received", "awaiting_inspection"));
    assert_eq!(r.body["return"]["totals"]["received"], "4");

    let r = step(
        "wms",
        "inspections",
        json!({ "inspections": [
            { "line_no": 1, "quantity": "3", "condition": "OPENED" },
            { "line_no": 2, "quantity": "1", "condition": "NEW" }
        ] }),
    )
    .await;
    assert_eq!(r.status_stage(), ("inspected", "awaiting_disposition"));

    // Split: two units of line 1 go back to stock, one is scrapped.
    let r = step(
        "wms",
        "dispositions",
        json!({ "dispositions": [
            { "line_no": 1, "quantity": "2", "disposition": "restock" },
            { "line_no": 1, "quantity": "1", "disposition": "scrap" },
            { "line_no": 2, "quantity": "1", "disposition": "restock" }
        ] }),
    )
    .await;
    assert_eq!(r.status_stage(), ("dispositioned", "awaiting_settlement"));
    let line1 = &r.body["return"]["lines"][0];
    assert_eq!(
        line1["dispositioned"],
        json!({ "restock": "2", "scrap": "1" })
    );

    let r = step(
        "finance",
        "documents",
        json!({ "kind": "credit_memo", "system": "erp", "number": "CM-77", "amount": usd("77.00") }),
    )
    .await;
    assert_eq!(r.status_stage(), ("dispositioned", "awaiting_settlement"));
    assert_eq!(r.body["events"], json!(["DocumentLinked"]));

    let r = step(
        "finance",
        "settlements",
        json!({
            "settlement_ref": "STL-1",
            "lines": [
                { "line_no": 1, "quantity": "3", "amount": usd("66.00") },
                { "line_no": 2, "quantity": "1", "amount": usd("11.00") }
            ]
        }),
    )
    .await;
    assert_eq!(r.status_stage(), ("settled", "ready_to_close"));
    assert_eq!(r.body["return"]["totals"]["credited"], "77.00");

    let r = step("finance", "close", json!({})).await;
    assert_eq!(r.status_stage(), ("closed", "done"));
    assert_eq!(r.body["version"], 10);

    // The read model agrees with the last command's answer.
    let summary = app.get("portal", &base).await;
    assert_eq!(summary.assert_ok(200), &r.body["return"]);
}

#[tokio::test]
async fn a_partial_receipt_leaves_the_rest_awaited() {
    let app = spawn_app().await;
    let id = app.approved_return().await;
    let r = app
        .post(
            "wms",
            &format!("/v1/returns/{id}/receipts"),
            &json!({ "receipt_ref": "RCV-1", "lines": [{ "sku": "SKU-RED", "quantity": "1" }] }),
        )
        .await;
    r.assert_ok(200);
    assert_eq!(
        r.status_stage(),
        ("partially_received", "awaiting_inspection")
    );
    let line1 = &r.body["return"]["lines"][0];
    assert_eq!(
        (&line1["authorized"], &line1["received"]),
        (&json!("3"), &json!("1"))
    );
    assert_eq!(r.body["return"]["totals"]["received"], "1");

    let summary = app.get("wms", &format!("/v1/returns/{id}")).await;
    assert_eq!(summary.assert_ok(200)["status"], "partially_received");
}

#[tokio::test]
async fn support_can_hold_and_cancel() {
    let app = spawn_app().await;
    let id = app.create_return(&return_request()).await;
    let r = app
        .post(
            "support",
            &format!("/v1/returns/{id}/hold"),
            &json!({ "reason": "high value" }),
        )
        .await;
    r.assert_ok(200);
    assert_eq!(r.status_stage(), ("pending_review", "manual_review"));
    let r = app
        .post(
            "support",
            &format!("/v1/returns/{id}/cancel"),
            &json!({ "reason": "customer withdrew" }),
        )
        .await;
    r.assert_ok(200);
    assert_eq!(r.status_stage(), ("cancelled", "done"));
    assert_eq!(r.body["return"]["reason"], "customer withdrew");
}

#[tokio::test]
async fn an_approval_expires_once_the_clock_passes_its_deadline() {
    let app = spawn_app().await;
    let id = app.create_return(&return_request()).await;
    app.post(
        "support",
        &format!("/v1/returns/{id}/approve"),
        &json!({ "expires_at": "2025-03-10T09:00:00Z" }),
    )
    .await
    .assert_ok(200);
    let expire = format!("/v1/returns/{id}/expire");
    // An empty body is fine for a command without arguments.
    let early = app
        .post_raw("support", &expire, None, Some(&new_key()), "")
        .await;
    early.assert_problem(409, "not_expired");
    app.clock.advance(chrono::Duration::days(8));
    let r = app.post("support", &expire, &json!({})).await;
    r.assert_ok(200);
    assert_eq!(r.status_stage(), ("expired", "done"));
}
