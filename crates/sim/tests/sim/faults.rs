//! Faults, in their order: the token bucket (429 with `Retry-After`, counted
//! at a fixed manual time), transient 503s that store nothing, lost
//! responses whose retry gets the original answer, and faults changed at run
//! time through `PUT /admin/faults`.

use backhaul_sim::{Faults, SimConfig, SimKind};
use chrono::Duration;
use serde_json::json;

use crate::helpers::{open, open_with, return_order};

fn erp_with(faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        seed: 42,
        ..SimConfig::new(SimKind::Erp)
    }
}

#[tokio::test]
async fn a_burst_beyond_the_bucket_is_throttled_with_retry_after() {
    let erp = open_with(erp_with(Faults {
        rate_limit_per_sec: Some(10),
        burst: 3,
        ..Faults::default()
    }))
    .await;

    let mut created = 0;
    let mut throttled = 0;
    for i in 0..10 {
        let rma = format!("RMA-{i}");
        let response = erp
            .post(
                "/erp/return-orders",
                &rma,
                &return_order(&rma, "EUR", "SKU-1"),
            )
            .await;
        match response.status.as_u16() {
            201 => created += 1,
            429 => {
                response.assert_problem(429, "rate_limited");
                assert_eq!(response.headers["retry-after"], "1");
                throttled += 1;
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!((created, throttled), (3, 7));

    // At 10 per second, 300 ms refill the three tokens; no more.
    erp.clock.advance(Duration::milliseconds(300));
    let mut statuses = Vec::new();
    for i in 10..15 {
        let rma = format!("RMA-{i}");
        let response = erp
            .post(
                "/erp/return-orders",
                &rma,
                &return_order(&rma, "EUR", "SKU-1"),
            )
            .await;
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);

    let stats = erp.sim.stats().await.unwrap();
    assert_eq!((stats.created, stats.rate_limited, stats.total), (6, 9, 15));
    assert_eq!(erp.sim.postings().await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_transient_error_stores_nothing_and_keeps_the_key_free() {
    let erp = open_with(erp_with(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let body = return_order("RMA-1", "EUR", "SKU-1");
    for _ in 0..3 {
        erp.post("/erp/return-orders", "k-1", &body)
            .await
            .assert_problem(503, "unavailable");
    }
    assert!(erp.sim.postings().await.unwrap().is_empty());
    // Reads and admin are never faulted.
    erp.get("/erp/postings").await.assert_ok(200);

    erp.put("/admin/faults", &json!({})).await.assert_ok(200);
    let response = erp.post("/erp/return-orders", "k-1", &body).await;
    assert_eq!(response.assert_ok(201)["number"], "RO-000001");
    assert!(!response.replayed());
    let stats = erp.sim.stats().await.unwrap();
    assert_eq!((stats.unavailable, stats.created, stats.stored), (3, 1, 1));
}

#[tokio::test]
async fn a_lost_response_was_stored_and_the_retry_gets_the_original_answer() {
    let erp = open_with(erp_with(Faults {
        lost_response_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let body = return_order("RMA-1", "EUR", "SKU-1");
    let lost = erp.post("/erp/return-orders", "k-1", &body).await;
    lost.assert_problem(500, "internal");

    let postings = erp.sim.postings().await.unwrap();
    assert_eq!(postings.len(), 1, "the effect happened");
    assert_eq!(postings[0].number.as_deref(), Some("RO-000001"));
    assert_eq!(postings[0].idempotency_key, "k-1");

    // Still faulty: a replay is never lost, since it stores nothing.
    let retry = erp.post("/erp/return-orders", "k-1", &body).await;
    assert_eq!(retry.assert_ok(201), &json!({"number": "RO-000001"}));
    assert!(retry.replayed());
    assert_eq!(erp.sim.postings().await.unwrap().len(), 1);

    let stats = erp.sim.stats().await.unwrap();
    assert_eq!(
        (stats.lost_response, stats.replayed, stats.created),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn faults_can_be_read_and_replaced_at_run_time() {
    let erp = open(SimKind::Erp).await;
    assert_eq!(
        erp.get("/admin/faults").await.assert_ok(200)["transient_error_rate"],
        0.0
    );

    let response = erp
        .put(
            "/admin/faults",
            &json!({"rate_limit_per_sec": 1, "burst": 1}),
        )
        .await;
    assert_eq!(response.assert_ok(200)["rate_limit_per_sec"], 1);
    assert_eq!(erp.sim.faults().rate_limit_per_sec, Some(1));

    let first = return_order("RMA-1", "EUR", "SKU-1");
    let second = return_order("RMA-2", "EUR", "SKU-1");
    erp.post("/erp/return-orders", "k-1", &first)
        .await
        .assert_ok(201);
    erp.post("/erp/return-orders", "k-2", &second)
        .await
        .assert_problem(429, "rate_limited");
    // Turning the limit off lets the backlog drain.
    erp.put("/admin/faults", &json!({})).await.assert_ok(200);
    erp.post("/erp/return-orders", "k-2", &second)
        .await
        .assert_ok(201);

    for bad in [
        json!({"transient_error_rate": 1.5}),
        json!({"lost_response_rate": -0.1}),
        json!({"rate_limit_per_sec": 0}),
        json!({"latency": 5}),
    ] {
        erp.put("/admin/faults", &bad)
            .await
            .assert_problem(400, "invalid_body");
    }
    assert_eq!(erp.sim.faults(), Faults::default());
}

#[tokio::test]
async fn latency_delays_but_does_not_fail_requests() {
    let erp = open_with(erp_with(Faults {
        latency_ms: 1,
        latency_jitter_ms: 2,
        ..Faults::default()
    }))
    .await;
    erp.post(
        "/erp/return-orders",
        "k-1",
        &return_order("RMA-1", "EUR", "SKU-1"),
    )
    .await
    .assert_ok(201);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let faults = Faults {
        transient_error_rate: 0.3,
        lost_response_rate: 0.3,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let erp = open_with(erp_with(faults.clone())).await;
        let mut statuses = Vec::new();
        for i in 0..30 {
            let rma = format!("RMA-{i}");
            let response = erp
                .post(
                    "/erp/return-orders",
                    &rma,
                    &return_order(&rma, "EUR", "SKU-1"),
                )
                .await;
            statuses.push(response.status.as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    for status in [201, 500, 503] {
        assert!(runs[0].contains(&status), "{status} in {:?}", runs[0]);
    }
}
