//! The carrier tracking source against the carrier simulator: a label
//! created through the carrier connector, its scan feed (with duplicates and
//! reordering) polled into the inbox; a second poll applies nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backhaul_connectors::TrackingSource;
use backhaul_connectors::http::InProcess;
use backhaul_domain::action::Target;
use backhaul_engine::{
    CommandMeta, Dispatcher, DispatcherConfig, Engine, EngineConfig, Idempotency, Inbox,
    SystemClock,
};
use backhaul_sim::{Sim, SimConfig, SimDb, SimKind};
use backhaul_store::{AnyStore, SqliteStore, SqliteSync};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn meta(key: &str) -> CommandMeta {
    CommandMeta {
        partner: "test".into(),
        idempotency: Some(Idempotency {
            key: key.into(),
            request_hash: key.into(),
        }),
        correlation_id: None,
        causation_id: None,
    }
}

#[tokio::test]
async fn scan_feed_is_applied_once_whatever_its_duplicates_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("hub.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let engine = Engine::start(
        store,
        EngineConfig {
            outbound: [Target::Carrier].into(),
            ..EngineConfig::default()
        },
        Arc::new(SystemClock),
        &tracker,
        shutdown.child_token(),
    );
    let mut config = SimConfig::new(SimKind::Carrier);
    config.carrier.scan_duplicate_rate = 0.5;
    config.carrier.scan_reorder_rate = 0.5;
    let sim = Sim::open(config, SimDb::Memory).await.unwrap();
    let routers: BTreeMap<Target, axum::Router> = [(Target::Carrier, sim.router())].into();
    let connectors = [(
        "carrier".to_owned(),
        toml::from_str(r#"kind = "sim-carrier""#).unwrap(),
    )]
    .into();
    let sinks = backhaul_connectors::build(&connectors, &routers).unwrap();
    let dispatcher = Dispatcher::new(engine.clone(), DispatcherConfig::default(), sinks).unwrap();

    let request = serde_json::from_value(json!({
        "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "uom": "EA", "reason_code": "DAMAGED",
                   "requested_outcome": "refund", "unit_price": {"amount": "10.00", "currency": "USD"},
                   "unit_tax": {"amount": "0.00", "currency": "USD"}}]
    }))
    .unwrap();
    let id = engine
        .create(request, meta("create"))
        .await
        .unwrap()
        .return_id;
    engine
        .execute(
            id,
            serde_json::from_value(json!({"command": "approve"})).unwrap(),
            meta("approve"),
        )
        .await
        .unwrap();
    while dispatcher.run_once().await.unwrap().claimed > 0 {}
    assert_eq!(
        engine.get(id).await.unwrap().unwrap().to_value()["status"],
        "label_issued"
    );

    let source = TrackingSource::new(
        Arc::new(InProcess::new(sim.router())),
        Duration::from_secs(1),
    );
    let inbox = Inbox::new(engine.clone(), "carrier-tracking");
    let first = source.poll_once(&inbox).await.unwrap();
    assert_eq!(first.labels, 1);
    assert_eq!(first.failed, 0);
    assert!(first.applied >= 4, "every milestone of the feed: {first:?}");
    let timeline = engine.timeline(id).await.unwrap().unwrap().len();
    let summary = engine.get(id).await.unwrap().unwrap().to_value();
    assert_eq!(summary["stage"], "in_transit", "{summary}");

    // The return is still in transit (nobody received it), so it is polled
    // again: every scan is now a duplicate and nothing is appended.
    let second = source.poll_once(&inbox).await.unwrap();
    assert_eq!(second.applied, 0, "{second:?}");
    assert_eq!(
        second.duplicates,
        first.applied + first.duplicates,
        "{second:?}"
    );
    assert_eq!(engine.timeline(id).await.unwrap().unwrap().len(), timeline);

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}
