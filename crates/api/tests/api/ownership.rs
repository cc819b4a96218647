//! Governed attributes over HTTP: the owner corrects, a non-owner is refused
//! with a problem and the refusal is in the return's timeline.

use backhaul_engine::EngineConfig;
use serde_json::json;

use crate::helpers::{return_request, spawn_app_with_engine, usd};

fn governed() -> EngineConfig {
    toml::from_str(
        r#"
        [ownership]
        owners = { price = ["erp"], tax = ["erp"], quantity_received = ["wms"], customer_intent = ["portal"] }
        "#,
    )
    .unwrap()
}

#[tokio::test]
async fn owners_correct_and_others_are_refused_and_recorded() {
    let app = spawn_app_with_engine(governed()).await;
    let created = app.post("portal", "/v1/returns", &return_request()).await;
    let id = created.assert_ok(201)["return"]["return_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let corrections = format!("/v1/returns/{id}/corrections");

    // The ERP owns price and tax.
    let r = app
        .post(
            "erp",
            &corrections,
            &json!({ "line_no": 1, "unit_price": usd("80.00"), "unit_tax": usd("8.00") }),
        )
        .await;
    let body = r.assert_ok(200);
    assert_eq!(body["events"], json!(["LineCorrected"]));
    assert_eq!(
        body["return"]["lines"][0]["line"]["unit_price"],
        usd("80.00")
    );

    // The portal owns intent, not price.
    let r = app
        .post(
            "portal",
            &corrections,
            &json!({ "line_no": 1, "requested_outcome": "replacement" }),
        )
        .await;
    r.assert_ok(200);
    let r = app
        .post(
            "portal",
            &corrections,
            &json!({ "line_no": 1, "unit_price": usd("1.00") }),
        )
        .await;
    let detail = r.assert_problem(403, "not_attribute_owner");
    assert!(detail.contains("portal does not own price"), "{detail}");

    // A receipt is the WMS's to record, even with the scope.
    let r = app
        .post(
            "portal",
            &format!("/v1/returns/{id}/receipts"),
            &json!({ "receipt_ref": "R-1", "lines": [] }),
        )
        .await;
    r.assert_problem(403, "not_attribute_owner");

    let timeline = app.get("portal", &format!("/v1/returns/{id}/events")).await;
    let events = timeline.assert_ok(200)["events"]
        .as_array()
        .unwrap()
        .clone();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ReturnRequested",
            "LineCorrected",
            "LineCorrected",
            "UpdateRefused",
            "UpdateRefused"
        ]
    );
    assert_eq!(events[1]["payload"]["system"], "erp");
    assert_eq!(events[3]["payload"]["system"], "portal");
    assert_eq!(events[3]["payload"]["attributes"], json!(["price"]));
    assert_eq!(
        events[4]["payload"]["attributes"],
        json!(["quantity_received"])
    );
    // Nothing the refused commands carried was applied.
    let summary = app.get("portal", &format!("/v1/returns/{id}")).await;
    let line = &summary.assert_ok(200)["lines"][0];
    assert_eq!(line["line"]["unit_price"], usd("80.00"));
    assert_eq!(line["line"]["requested_outcome"], "replacement");
}
