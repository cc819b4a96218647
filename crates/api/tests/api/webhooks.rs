//! Signed inbound webhooks, from the raw signed request to the return's
//! state: WMS receipts, inspections and putaways, carrier tracking in any
//! order, canonical commands; and every way a webhook is refused with
//! nothing applied (bad or missing signature, stale timestamp, a body that
//! does not fit, an unknown return, a replayed attempt).

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{OTHER_WEBHOOK_SECRET, TestApp, WEBHOOK_SECRET, sign, spawn_app};

/// An approved return (3 × SKU-RED on line 1, 1 × SKU-BLUE on line 2) and
/// its RMA number.
async fn approved(app: &TestApp) -> (String, String) {
    let id = app.approved_return().await;
    let rma = app.summary(&id).await["rma_number"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, rma)
}

fn receipt(rma: &str, receipt_ref: &str) -> Value {
    json!({
        "type": "receipt.created",
        "timestamp": "2025-03-03T09:00:00Z",
        "data": {
            "rma_number": rma,
            "receipt_ref": receipt_ref,
            "lines": [
                { "sku": "SKU-RED", "quantity": "3", "lot_number": "LOT-7" },
                { "sku": "SKU-BLUE", "quantity": 1, "serial_numbers": ["SN-1"] }
            ]
        }
    })
}

fn scan(tracking: &str, status: &str, occurred_at: &str) -> Value {
    json!({
        "type": "tracking.updated",
        "data": { "tracking_number": tracking, "status": status, "occurred_at": occurred_at }
    })
}

/// Issues a label with `tracking` to the return, as the carrier partner.
async fn label(app: &TestApp, id: &str, tracking: &str) {
    app.post(
        "carrier",
        &format!("/v1/returns/{id}/label"),
        &json!({ "carrier": "UPS", "tracking_number": tracking, "label_ref": "LBL-1" }),
    )
    .await
    .assert_ok(200);
}

fn status(summary: &Value) -> &str {
    summary["status"].as_str().unwrap_or("?")
}

#[tokio::test]
async fn a_signed_wms_receipt_moves_an_approved_return_to_received() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;

    let response = app
        .webhook("wms", "msg_receipt_1", &receipt(&rma, "RCV-1"))
        .await;

    response.assert_ok(200);
    assert_eq!(response.status_stage().0, "received");
    let summary = app.summary(&id).await;
    assert_eq!(status(&summary), "received");
    assert_eq!(summary["totals"]["received"], "4");
    assert_eq!(app.event_types(&id).await.last().unwrap(), "UnitsReceived");
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    let before = app.version(&id).await;
    let body = receipt(&rma, "RCV-1").to_string().into_bytes();

    // Signed with a secret the source does not have.
    let wrong = sign(OTHER_WEBHOOK_SECRET, "msg_1", app.now(), &body);
    let detail = app
        .webhook_raw("wms", &wrong, body.clone())
        .await
        .assert_problem(401, "webhook_signature_invalid");
    assert!(detail.contains("no signature matches"), "{detail}");

    // Signed right, then the body changed on the way.
    let signed = sign(WEBHOOK_SECRET, "msg_1", app.now(), &body);
    let tampered = body
        .iter()
        .map(|b| if *b == b'3' { b'9' } else { *b })
        .collect();
    app.webhook_raw("wms", &signed, tampered)
        .await
        .assert_problem(401, "webhook_signature_invalid");

    // No signature at all; an API key is no substitute.
    let unsigned: Vec<(&str, String)> = signed
        .iter()
        .filter(|(name, _)| *name != "webhook-signature")
        .cloned()
        .chain([("authorization", format!("Bearer {}", app.token("admin")))])
        .collect();
    let detail = app
        .webhook_raw("wms", &unsigned, body)
        .await
        .assert_problem(401, "webhook_signature_invalid");
    assert!(detail.contains("webhook-signature"), "{detail}");

    assert_eq!(app.version(&id).await, before, "nothing applied");
    assert_eq!(status(&app.summary(&id).await), "approved");
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    let before = app.version(&id).await;
    let body = receipt(&rma, "RCV-1").to_string().into_bytes();

    for skew in [Duration::minutes(-6), Duration::minutes(6)] {
        let headers = sign(WEBHOOK_SECRET, "msg_1", app.now() + skew, &body);
        app.webhook_raw("wms", &headers, body.clone())
            .await
            .assert_problem(401, "webhook_timestamp_out_of_tolerance");
    }
    // Within the five minutes it verifies.
    let headers = sign(
        WEBHOOK_SECRET,
        "msg_1",
        app.now() - Duration::minutes(4),
        &body,
    );
    app.webhook_raw("wms", &headers, body).await.assert_ok(200);
    assert_eq!(app.version(&id).await, before + 1);
}

#[tokio::test]
async fn the_same_webhook_id_twice_is_applied_once_with_the_first_answer() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    let body = receipt(&rma, "RCV-1");

    let first = app.webhook("wms", "msg_receipt_1", &body).await;
    first.assert_ok(200);
    let version = app.version(&id).await;
    // The sender did not see the answer and retries: same id, signed again
    // a minute later.
    app.clock.advance(Duration::minutes(1));
    let second = app.webhook("wms", "msg_receipt_1", &body).await;

    second.assert_ok(200);
    assert_eq!(second.body, first.body, "the first answer again");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.version(&id).await, version, "applied once");

    // The same id with another body is not the same delivery.
    let other = app
        .webhook("wms", "msg_receipt_1", &receipt(&rma, "RCV-2"))
        .await;
    other.assert_problem(422, "webhook_id_reused");
    assert_eq!(app.version(&id).await, version);
}

#[tokio::test]
async fn the_same_receipt_under_another_webhook_id_is_acknowledged_not_applied() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    app.webhook("wms", "msg_1", &receipt(&rma, "RCV-1"))
        .await
        .assert_ok(200);
    let version = app.version(&id).await;

    let again = app.webhook("wms", "msg_2", &receipt(&rma, "RCV-1")).await;

    again.assert_ok(200);
    assert_eq!(again.body["outcome"], "already_recorded");
    assert_eq!(again.body["return_id"], id.as_str());
    assert_eq!(app.version(&id).await, version);
}

#[tokio::test]
async fn a_body_that_does_not_fit_is_422_naming_the_field_and_nothing_is_applied() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    let before = app.version(&id).await;

    let mut missing = receipt(&rma, "RCV-1");
    missing["data"]
        .as_object_mut()
        .unwrap()
        .remove("receipt_ref");
    let detail = app
        .webhook("wms", "msg_1", &missing)
        .await
        .assert_problem(422, "invalid_body");
    assert!(
        detail.contains("data") && detail.contains("receipt_ref"),
        "{detail}"
    );

    let mut bad_quantity = receipt(&rma, "RCV-1");
    bad_quantity["data"]["lines"][0]["quantity"] = json!(1.5);
    let detail = app
        .webhook("wms", "msg_2", &bad_quantity)
        .await
        .assert_problem(422, "invalid_body");
    assert!(detail.starts_with("data.lines[0].quantity"), "{detail}");

    let mut misspelt = receipt(&rma, "RCV-1");
    misspelt["data"]["lines"][0]["lot"] = json!("LOT-7");
    let detail = app
        .webhook("wms", "msg_3", &misspelt)
        .await
        .assert_problem(422, "invalid_body");
    assert!(detail.contains("lot"), "{detail}");

    let detail = app
        .webhook(
            "wms",
            "msg_4",
            &json!({ "type": "receipt.deleted", "data": {} }),
        )
        .await
        .assert_problem(422, "invalid_body");
    assert!(detail.starts_with("type:"), "{detail}");

    let mut nameless = receipt(&rma, "RCV-1");
    nameless["data"]
        .as_object_mut()
        .unwrap()
        .remove("rma_number");
    let detail = app
        .webhook("wms", "msg_5", &nameless)
        .await
        .assert_problem(422, "invalid_body");
    assert!(detail.contains("rma_number"), "{detail}");

    let mut unknown = receipt(&rma, "RCV-1");
    unknown["data"]["rma_number"] = json!("RMA-000000000000-000000000000");
    let detail = app
        .webhook("wms", "msg_6", &unknown)
        .await
        .assert_problem(422, "webhook_return_unknown");
    assert!(detail.starts_with("data.rma_number"), "{detail}");

    let mut mismatch = receipt(&rma, "RCV-1");
    let other = app.approved_return().await;
    mismatch["data"]["return_id"] = json!(other);
    app.webhook("wms", "msg_7", &mismatch)
        .await
        .assert_problem(422, "webhook_return_mismatch");

    let bytes = b"{\"type\": ".to_vec();
    let headers = sign(WEBHOOK_SECRET, "msg_8", app.now(), &bytes);
    app.webhook_raw("wms", &headers, bytes)
        .await
        .assert_problem(400, "malformed_json");

    assert_eq!(app.version(&id).await, before, "nothing applied");
}

#[tokio::test]
async fn an_exact_copy_of_a_refused_attempt_is_refused_but_a_retry_is_processed() {
    let app = spawn_app().await;
    // Not approved yet: a receipt is refused by the return.
    let id = app.create_return(&crate::helpers::return_request()).await;
    let rma = app.summary(&id).await["rma_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = receipt(&rma, "RCV-1").to_string().into_bytes();
    let attempt = sign(WEBHOOK_SECRET, "msg_early", app.now(), &body);
    app.webhook_raw("wms", &attempt, body.clone())
        .await
        .assert_problem(409, "invalid_transition");

    app.post("support", &format!("/v1/returns/{id}/approve"), &json!({}))
        .await
        .assert_ok(200);
    let version = app.version(&id).await;

    // Someone replays the captured attempt byte for byte: refused, although
    // the return would now take it.
    app.webhook_raw("wms", &attempt, body.clone())
        .await
        .assert_problem(409, "webhook_replayed");
    assert_eq!(app.version(&id).await, version);

    // The sender's own retry is signed at the time of its attempt.
    app.clock.advance(Duration::seconds(30));
    let retry = sign(WEBHOOK_SECRET, "msg_early", app.now(), &body);
    let applied = app.webhook_raw("wms", &retry, body).await;
    applied.assert_ok(200);
    assert_eq!(applied.status_stage().0, "received");
}

#[tokio::test]
async fn carrier_events_out_of_order_end_at_the_latest_milestone() {
    let app = spawn_app().await;
    let (id, _) = approved(&app).await;
    label(&app, &id, "1Z999AA10123456784").await;

    // Delivered arrives before the in-transit scan that preceded it.
    app.webhook(
        "carrier",
        "evt_2",
        &scan("1Z999AA10123456784", "DL", "2025-03-05T14:00:00Z"),
    )
    .await
    .assert_ok(200);
    let late = app
        .webhook(
            "carrier",
            "evt_1",
            &scan("1Z999AA10123456784", "In Transit", "2025-03-04T08:00:00Z"),
        )
        .await;
    late.assert_ok(200);

    let summary = app.summary(&id).await;
    assert_eq!(status(&summary), "in_transit");
    assert_eq!(summary["tracking"]["milestone"], "delivered");
    assert_eq!(summary["tracking"]["occurred_at"], "2025-03-05T14:00:00Z");
    let types = app.event_types(&id).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "CarrierMilestoneRecorded")
            .count(),
        2,
        "the late scan is recorded, not dropped"
    );

    // The older scan again, under a new message id (a carrier replaying
    // its feed): answered, not recorded a second time.
    app.webhook(
        "carrier",
        "evt_1_again",
        &scan("1Z999AA10123456784", "In Transit", "2025-03-04T08:00:00Z"),
    )
    .await
    .assert_ok(200);
    let types = app.event_types(&id).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "CarrierMilestoneRecorded")
            .count(),
        2,
        "a scan already recorded is a duplicate, however old"
    );
}

#[tokio::test]
async fn a_delayed_scan_after_delivery_and_receipt_does_not_move_the_return_back() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    label(&app, &id, "1ZTRACK").await;
    app.webhook(
        "carrier",
        "evt_1",
        &scan("1ZTRACK", "PU", "2025-03-04T08:00:00Z"),
    )
    .await
    .assert_ok(200);
    app.webhook(
        "carrier",
        "evt_3",
        &scan("1ZTRACK", "delivered", "2025-03-05T14:00:00Z"),
    )
    .await
    .assert_ok(200);
    app.webhook("wms", "rcv_1", &receipt(&rma, "RCV-1"))
        .await
        .assert_ok(200);

    // The out-for-delivery scan shows up a day late.
    let delayed = app
        .webhook(
            "carrier",
            "evt_2",
            &scan("1ZTRACK", "out-for-delivery", "2025-03-05T07:30:00Z"),
        )
        .await;

    delayed.assert_ok(200);
    let summary = app.summary(&id).await;
    assert_eq!(status(&summary), "received");
    assert_eq!(summary["tracking"]["milestone"], "delivered");
    assert_eq!(
        app.event_types(&id).await.last().unwrap(),
        "CarrierMilestoneRecorded",
        "folded in, not dropped"
    );
}

#[tokio::test]
async fn carrier_statuses_are_mapped_or_refused_and_returns_found_by_tracking_number() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    label(&app, &id, "1ZTRACK").await;
    let before = app.version(&id).await;

    let detail = app
        .webhook(
            "carrier",
            "evt_1",
            &scan("1ZTRACK", "XX", "2025-03-04T08:00:00Z"),
        )
        .await
        .assert_problem(422, "unmapped_code");
    assert!(
        detail.starts_with("data.status") && detail.contains("status_map"),
        "{detail}"
    );

    let detail = app
        .webhook(
            "carrier",
            "evt_2",
            &scan("1ZNOPE", "DL", "2025-03-04T08:00:00Z"),
        )
        .await
        .assert_problem(422, "webhook_return_unknown");
    assert!(detail.starts_with("data.tracking_number"), "{detail}");
    assert_eq!(app.version(&id).await, before);

    // By RMA number as well as the tracking number, if they agree.
    let mut both = scan("1ZTRACK", "pre_transit", "2025-03-04T07:00:00Z");
    both["data"]["rma_number"] = json!(rma);
    app.webhook("carrier", "evt_3", &both).await.assert_ok(200);
    assert_eq!(
        app.summary(&id).await["tracking"]["milestone"],
        "pre_transit"
    );
}

#[tokio::test]
async fn inspection_with_serial_lot_and_photos_then_putaway_reach_dispositioned() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;
    app.webhook("wms", "rcv_1", &receipt(&rma, "RCV-1"))
        .await
        .assert_ok(200);

    let inspected = app
        .webhook(
            "wms",
            "insp_1",
            &json!({
                "type": "inspection.completed",
                "data": {
                    "return_id": id,
                    "inspections": [
                        { "line_no": 1, "quantity": "3", "condition": "OPENED", "lot_number": "LOT-7",
                          "evidence_ref": "PHOTOS-RCV-1-L1" },
                        { "line_no": 2, "quantity": "1", "condition": "DAMAGED",
                          "serial_numbers": ["SN-1"], "evidence_ref": "PHOTOS-RCV-1-L2" }
                    ]
                }
            }),
        )
        .await;
    inspected.assert_ok(200);
    assert_eq!(inspected.status_stage().0, "inspected");

    let put_away = app
        .webhook(
            "wms",
            "put_1",
            &json!({
                "type": "putaway.completed",
                "data": {
                    "rma_number": rma,
                    "lines": [
                        { "line_no": 1, "quantity": "3", "disposition": "restock", "location": "BIN-A-01" },
                        { "line_no": 2, "quantity": "1", "disposition": "quarantine", "location": "CAGE-Q",
                          "serial_numbers": ["SN-1"] }
                    ]
                }
            }),
        )
        .await;
    put_away.assert_ok(200);
    assert_eq!(put_away.status_stage().0, "dispositioned");

    let timeline = app.get("admin", &format!("/v1/returns/{id}/events")).await;
    let events = timeline.body["events"].as_array().unwrap();
    let payload = |kind: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == kind)
            .map(|e| e["payload"].clone())
            .unwrap()
    };
    let inspections = &payload("UnitsInspected")["inspections"];
    assert_eq!(inspections[0]["lot_number"], "LOT-7");
    assert_eq!(inspections[0]["evidence_ref"], "PHOTOS-RCV-1-L1");
    assert_eq!(inspections[1]["serial_numbers"][0], "SN-1");
    let dispositions = &payload("UnitsDispositioned")["dispositions"];
    assert_eq!(dispositions[0]["location"], "BIN-A-01");
    assert_eq!(dispositions[1]["disposition"], "quarantine");
}

#[tokio::test]
async fn a_canonical_source_sends_the_hubs_own_commands() {
    let app = spawn_app().await;
    let (id, rma) = approved(&app).await;

    let response = app
        .webhook(
            "hub",
            "cmd_1",
            &json!({
                "type": "record_carrier_milestone",
                "data": { "rma_number": rma, "milestone": "in_transit", "occurred_at": "2025-03-04T08:00:00Z" }
            }),
        )
        .await;
    response.assert_ok(200);
    assert_eq!(response.status_stage().0, "in_transit");

    for (kind, expected) in [
        ("request", "not accepted by webhook"),
        ("launch_rockets", "is not a command"),
    ] {
        let detail = app
            .webhook(
                "hub",
                &format!("cmd_{kind}"),
                &json!({ "type": kind, "data": { "return_id": id } }),
            )
            .await
            .assert_problem(422, "invalid_body");
        assert!(detail.contains(expected), "{kind}: {detail}");
    }
}

#[tokio::test]
async fn unknown_sources_wrong_kinds_and_oversized_bodies_are_problems() {
    let app = spawn_app().await;
    let (_, rma) = approved(&app).await;
    app.webhook("erp", "msg_1", &receipt(&rma, "RCV-1"))
        .await
        .assert_problem(404, "webhook_source_unknown");
    // A receipt is not a carrier event.
    app.webhook("carrier", "msg_1", &receipt(&rma, "RCV-1"))
        .await
        .assert_problem(422, "invalid_body");
    let body = receipt(&rma, "RCV-1").to_string().into_bytes();
    let headers = sign(WEBHOOK_SECRET, "msg_2", app.now(), &body);
    let text: Vec<(&str, String)> = headers
        .into_iter()
        .chain([("content-type", "text/plain".to_owned())])
        .collect();
    let mut request = axum::http::Request::post("/v1/webhooks/wms");
    for (name, value) in &text {
        request = request.header(*name, value);
    }
    app.send(request.body(axum::body::Body::from(body)).unwrap())
        .await
        .assert_problem(415, "unsupported_media_type");

    let huge = json!({ "type": "receipt.created", "data": { "pad": "x".repeat(2 * 1024 * 1024) } })
        .to_string()
        .into_bytes();
    let headers = sign(WEBHOOK_SECRET, "msg_3", app.now(), &huge);
    app.webhook_raw("wms", &headers, huge)
        .await
        .assert_problem(413, "payload_too_large");
}
