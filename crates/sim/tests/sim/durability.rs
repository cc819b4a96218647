//! A simulator on a file keeps what it accepted across a restart: postings,
//! idempotency records (a retry after the restart is still a replay) and
//! the number series.

use backhaul_sim::{ManualClock, Sim, SimConfig, SimDb, SimError, SimKind};
use serde_json::json;

use crate::helpers::{credit_memo, open_file, return_order, start_time};

#[tokio::test]
async fn state_survives_reopening_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("erp.db");
    let clock = ManualClock::new(start_time());

    let erp = open_file(SimConfig::new(SimKind::Erp), &path, clock.clone()).await;
    erp.return_order("RMA-1", "EUR").await;
    let memo = credit_memo("RMA-1", "RO-000001", "EUR", &["12.00"]);
    let first = erp.post("/erp/credit-memos", "cm-1", &memo).await;
    first.assert_ok(201);
    let before = erp.sim.postings().await.unwrap();
    erp.sim.close().await;
    drop(erp);

    let erp = open_file(SimConfig::new(SimKind::Erp), &path, clock).await;
    assert_eq!(erp.sim.postings().await.unwrap(), before);
    assert_eq!(erp.sim.stats().await.unwrap().stored, 2);

    // The retry of a request answered before the restart is a replay.
    let retry = erp.post("/erp/credit-memos", "cm-1", &memo).await;
    assert!(retry.replayed());
    assert_eq!(retry.raw, first.raw);
    // The series carry on.
    assert_eq!(erp.return_order("RMA-2", "EUR").await, "RO-000002");
    let second = erp
        .post(
            "/erp/credit-memos",
            "cm-2",
            &credit_memo("RMA-2", "RO-000002", "EUR", &["1.00"]),
        )
        .await;
    assert_eq!(second.assert_ok(201)["number"], "CM-000002");
    assert_eq!(
        erp.get("/erp/ledger").await.body["credits"],
        json!({"EUR": "13.00"})
    );
}

#[tokio::test]
async fn a_file_belongs_to_one_kind_of_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.db");
    let erp = Sim::open(SimConfig::new(SimKind::Erp), SimDb::File(path.clone()))
        .await
        .unwrap();
    erp.close().await;

    let error = Sim::open(SimConfig::new(SimKind::Wms), SimDb::File(path))
        .await
        .unwrap_err();
    assert!(matches!(error, SimError::WrongKind { .. }), "{error}");
}

#[tokio::test]
async fn an_invalid_config_is_refused_at_open() {
    let mut config = SimConfig::new(SimKind::Erp);
    config.faults.lost_response_rate = 2.0;
    let error = Sim::open(config, SimDb::Memory).await.unwrap_err();
    assert!(matches!(error, SimError::Config(_)), "{error}");
}

#[tokio::test]
async fn memory_simulators_are_independent() {
    let a = Sim::open(SimConfig::new(SimKind::Erp), SimDb::Memory)
        .await
        .unwrap();
    let b = Sim::open(SimConfig::new(SimKind::Erp), SimDb::Memory)
        .await
        .unwrap();
    let request = axum::http::Request::post("/erp/return-orders")
        .header("idempotency-key", "k-1")
        .body(axum::body::Body::from(
            return_order("RMA-1", "EUR", "SKU-1").to_string(),
        ))
        .unwrap();
    let response = tower::ServiceExt::oneshot(a.router(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(a.postings().await.unwrap().len(), 1);
    assert!(b.postings().await.unwrap().is_empty());
}
