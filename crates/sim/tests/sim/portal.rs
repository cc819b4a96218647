//! The portal: status updates are always accepted, and updates older than
//! one already received for the same RMA are counted as out of order.

use backhaul_sim::SimKind;
use serde_json::json;

use crate::helpers::{open, portal_status};

#[tokio::test]
async fn older_versions_are_counted_out_of_order() {
    let portal = open(SimKind::Portal).await;
    let sends = [
        ("RMA-1", 1, "a"),
        ("RMA-1", 3, "b"),
        ("RMA-1", 2, "c"), // older than 3: out of order
        ("RMA-1", 3, "d"), // the same version again: a duplicate, not out of order
        ("RMA-2", 1, "e"), // another RMA has its own versions
        ("RMA-1", 4, "f"),
    ];
    for (rma, version, key) in sends {
        let response = portal
            .post("/portal/status", key, &portal_status(rma, version))
            .await;
        assert_eq!(response.assert_ok(200), &json!({"accepted": true}));
    }
    // A replay of the out-of-order update is not counted again.
    let replay = portal
        .post("/portal/status", "c", &portal_status("RMA-1", 2))
        .await;
    assert!(replay.replayed());

    let stats = portal.sim.stats().await.unwrap();
    assert_eq!(
        (stats.out_of_order, stats.created, stats.replayed),
        (1, 6, 1)
    );

    let response = portal.get("/portal/statuses?rma=RMA-1").await;
    let statuses = response.assert_ok(200).as_array().unwrap();
    let seen: Vec<(u64, bool)> = statuses
        .iter()
        .map(|s| {
            (
                s["version"].as_u64().unwrap(),
                s["out_of_order"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(1, false), (3, false), (2, true), (3, false), (4, false)]
    );
    assert_eq!(statuses[0]["stage"], "awaiting_shipment");
    assert_eq!(statuses[0]["received_at"], "2025-03-03T09:00:00Z");

    let all = portal.get("/portal/statuses").await;
    assert_eq!(all.body.as_array().unwrap().len(), 6);
    portal
        .get("/portal/statuses?colour=red")
        .await
        .assert_problem(400, "invalid_query");
}

#[tokio::test]
async fn a_status_update_must_have_every_field() {
    let portal = open(SimKind::Portal).await;
    let mut body = portal_status("RMA-1", 1);
    body["version"] = json!("1");
    let response = portal.post("/portal/status", "k-1", &body).await;
    response.assert_problem(400, "invalid_body");
    assert_eq!(response.body["field"], "version");

    let mut body = portal_status("RMA-1", 1);
    body["at"] = json!("yesterday");
    let response = portal.post("/portal/status", "k-1", &body).await;
    assert_eq!(response.body["field"], "at");
}
