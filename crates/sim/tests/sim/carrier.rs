//! The carrier: labels with tracking numbers and an expiry by the injected
//! clock, voids, and each label's scan feed.

use backhaul_sim::{CarrierConfig, Scan, SimConfig, SimKind, scan_feed_starting};
use chrono::Duration;
use serde_json::json;

use crate::helpers::{label, open, open_with, start_time};

#[tokio::test]
async fn a_label_has_a_tracking_number_and_expires_in_fourteen_days() {
    let carrier = open(SimKind::Carrier).await;
    let first = carrier
        .post("/carrier/labels", "k-1", &label("RMA-1"))
        .await;
    assert_eq!(
        first.assert_ok(201),
        &json!({
            "carrier": "SIMX",
            "tracking_number": "SIMX0000000001",
            "label_ref": "LBL-000001",
            "expires_at": "2025-03-17T09:00:00Z"
        })
    );
    // The replay is the first answer, even once the clock has moved.
    carrier.clock.advance(Duration::days(1));
    let again = carrier
        .post("/carrier/labels", "k-1", &label("RMA-1"))
        .await;
    assert!(again.replayed());
    assert_eq!(again.raw, first.raw);

    let second = carrier
        .post("/carrier/labels", "k-2", &label("RMA-2"))
        .await;
    assert_eq!(second.body["tracking_number"], "SIMX0000000002");
    assert_eq!(second.body["label_ref"], "LBL-000002");
    assert_eq!(second.body["expires_at"], "2025-03-18T09:00:00Z");

    let mut bad = label("RMA-3");
    bad["parcels"] = json!(0);
    let response = carrier.post("/carrier/labels", "k-3", &bad).await;
    response.assert_problem(400, "invalid_body");
    assert_eq!(response.body["field"], "parcels");
}

#[tokio::test]
async fn the_validity_is_configurable() {
    let carrier = open_with(SimConfig {
        carrier: CarrierConfig {
            label_validity_days: 2,
            ..CarrierConfig::default()
        },
        ..SimConfig::new(SimKind::Carrier)
    })
    .await;
    let response = carrier
        .post("/carrier/labels", "k-1", &label("RMA-1"))
        .await;
    assert_eq!(
        response.assert_ok(201)["expires_at"],
        "2025-03-05T09:00:00Z"
    );
}

#[tokio::test]
async fn labels_can_be_voided_and_are_listed_with_their_state() {
    let carrier = open(SimKind::Carrier).await;
    carrier
        .post("/carrier/labels", "k-1", &label("RMA-1"))
        .await
        .assert_ok(201);
    carrier
        .post("/carrier/labels", "k-2", &label("RMA-2"))
        .await
        .assert_ok(201);

    let void = carrier
        .post_raw("/carrier/labels/SIMX0000000001/void", Some("v-1"), "")
        .await;
    assert_eq!(
        void.assert_ok(200),
        &json!({"tracking_number": "SIMX0000000001", "voided": true})
    );
    carrier
        .post_raw("/carrier/labels/SIMX0000000404/void", Some("v-2"), "")
        .await
        .assert_problem(422, "unknown_tracking_number");

    let labels = carrier.get("/carrier/labels").await;
    let labels = labels.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(labels.len(), 2);
    assert_eq!(
        (
            &labels[0]["voided"],
            &labels[0]["expired"],
            &labels[0]["rma"]
        ),
        (&json!(true), &json!(false), &json!("RMA-1"))
    );
    assert_eq!(labels[1]["voided"], false);
    assert_eq!(labels[1]["to_site"], "DC-1");

    carrier.clock.advance(Duration::days(14));
    let labels = carrier.get("/carrier/labels").await;
    assert!(
        labels
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["expired"] == true),
        "expired by the simulator's clock: {}",
        labels.body
    );
}

#[tokio::test]
async fn a_label_has_its_scan_feed() {
    let carrier = open_with(SimConfig {
        seed: 9,
        carrier: CarrierConfig {
            scan_duplicate_rate: 0.5,
            scan_reorder_rate: 0.5,
            ..CarrierConfig::default()
        },
        ..SimConfig::new(SimKind::Carrier)
    })
    .await;
    carrier
        .post("/carrier/labels", "k-1", &label("RMA-1"))
        .await
        .assert_ok(201);

    let response = carrier.get("/carrier/labels/SIMX0000000001/scans").await;
    let scans: Vec<Scan> = serde_json::from_value(response.assert_ok(200).clone()).unwrap();
    assert_eq!(
        scans,
        scan_feed_starting("SIMX0000000001", start_time(), 9, 0.5, 0.5)
    );
    // The wire form carries the carrier's code and the canonical name.
    let first = &response.body[0];
    assert!(
        first["event_code"].is_string() && first["milestone"].is_string(),
        "{first}"
    );
    carrier
        .get("/carrier/labels/SIMX0000000404/scans")
        .await
        .assert_problem(404, "not_found");
}
