//! The WMS: expected receipts (ASNs), their cancellation, and its rules.

use backhaul_sim::{SimConfig, SimKind, WmsConfig};
use serde_json::json;

use crate::helpers::{expected_receipt, open, open_with};

#[tokio::test]
async fn an_expected_receipt_gets_an_asn_and_replays() {
    let wms = open(SimKind::Wms).await;
    let body = expected_receipt("RMA-1", "DC-1");
    let first = wms.post("/wms/expected-receipts", "k-1", &body).await;
    assert_eq!(first.assert_ok(201), &json!({"asn": "ASN-000001"}));
    let again = wms.post("/wms/expected-receipts", "k-1", &body).await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    let second = wms
        .post(
            "/wms/expected-receipts",
            "k-2",
            &expected_receipt("RMA-2", "DC-9"),
        )
        .await;
    assert_eq!(
        second.assert_ok(201)["asn"],
        "ASN-000002",
        "any site when none are configured"
    );
}

#[tokio::test]
async fn a_site_the_wms_does_not_run_is_rejected() {
    let wms = open_with(SimConfig {
        wms: WmsConfig {
            sites: vec!["DC-1".to_owned()],
        },
        ..SimConfig::new(SimKind::Wms)
    })
    .await;
    wms.post(
        "/wms/expected-receipts",
        "k-1",
        &expected_receipt("RMA-1", "DC-2"),
    )
    .await
    .assert_problem(422, "unknown_site");
    wms.post(
        "/wms/expected-receipts",
        "k-1",
        &expected_receipt("RMA-1", "DC-1"),
    )
    .await
    .assert_ok(201);
}

#[tokio::test]
async fn cancelling_an_asn_needs_a_key_and_a_known_asn() {
    let wms = open(SimKind::Wms).await;
    wms.post(
        "/wms/expected-receipts",
        "k-1",
        &expected_receipt("RMA-1", "DC-1"),
    )
    .await
    .assert_ok(201);

    let path = "/wms/expected-receipts/ASN-000001/cancel";
    wms.post_raw(path, None, "")
        .await
        .assert_problem(400, "idempotency_key_missing");
    // An empty body is the same request as `{}`.
    let cancel = wms.post_raw(path, Some("c-1"), "").await;
    assert_eq!(
        cancel.assert_ok(200),
        &json!({"asn": "ASN-000001", "cancelled": true})
    );
    let again = wms.post(path, "c-1", &json!({})).await;
    assert!(again.replayed());
    assert_eq!(again.raw, cancel.raw);

    wms.post(
        "/wms/expected-receipts/ASN-000404/cancel",
        "c-2",
        &json!({"reason": "typo"}),
    )
    .await
    .assert_problem(422, "unknown_asn");

    let listed = wms.get("/wms/expected-receipts").await;
    let receipts = listed.assert_ok(200).as_array().unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["asn"], "ASN-000001");
    assert_eq!(receipts[0]["cancelled"], true);
    assert_eq!(receipts[0]["site"], "DC-1");
    assert_eq!(receipts[0]["lines"][0]["quantity"], "2");

    let kinds: Vec<_> = wms
        .sim
        .postings()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.kind.as_str(), p.number, p.rma))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "expected_receipt",
                Some("ASN-000001".to_owned()),
                "RMA-1".to_owned()
            ),
            (
                "receipt_cancellation",
                Some("ASN-000001".to_owned()),
                "RMA-1".to_owned()
            ),
        ]
    );
}
