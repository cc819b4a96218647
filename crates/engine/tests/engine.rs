//! Engine behaviour through its public interface, on both storage backends:
//! idempotency, rejections storing nothing, envelopes, concurrency on one
//! return, and replay.

// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use backhaul_domain::Command;
use backhaul_domain::model::ReturnRequest;
use backhaul_engine::{
    CommandMeta, Engine, EngineConfig, Error, Idempotency, ManualClock, catch_up, replay,
};
use backhaul_store::{AnyStore, EventStore, PgStore, SqliteStore, SqliteSync, SummaryFilter};
use chrono::{TimeZone, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

struct TestEngine {
    engine: Engine,
    store: AnyStore,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: Option<tempfile::TempDir>,
}

impl TestEngine {
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn sqlite() -> TestEngine {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    start(store, Some(dir))
}

async fn postgres() -> TestEngine {
    let admin = std::env::var("BACKHAUL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = PgStore::fresh_database(&admin, "backhaul_engine_test")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for these tests: {e}"));
    start(
        AnyStore::Postgres(PgStore::connect(&url, 4).await.unwrap()),
        None,
    )
}

fn start(store: AnyStore, dir: Option<tempfile::TempDir>) -> TestEngine {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
    let engine = Engine::start(
        store.clone(),
        EngineConfig::default(),
        Arc::new(clock),
        &tracker,
        shutdown.child_token(),
    );
    TestEngine {
        engine,
        store,
        shutdown,
        tracker,
        _dir: dir,
    }
}

fn request(qty: &str) -> ReturnRequest {
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    serde_json::from_value(json!({
        "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": qty, "uom": "EA", "reason_code": "DAMAGED",
                   "requested_outcome": "refund", "unit_price": money("10.00"), "unit_tax": money("1.00")}]
    }))
    .unwrap()
}

fn cmd(v: serde_json::Value) -> Command {
    serde_json::from_value(v).unwrap()
}

fn meta(key: Option<(&str, &str)>) -> CommandMeta {
    CommandMeta {
        partner: "portal".into(),
        idempotency: key.map(|(k, h)| Idempotency {
            key: k.into(),
            request_hash: h.into(),
        }),
        correlation_id: None,
        causation_id: None,
    }
}

async fn count_returns(store: &AnyStore) -> usize {
    store
        .list_summaries(&SummaryFilter::default())
        .await
        .unwrap()
        .len()
}

async fn idempotent_create_returns_the_first_result(t: TestEngine) {
    let first = t
        .engine
        .create(request("2"), meta(Some(("k1", "h1"))))
        .await
        .unwrap();
    let again = t
        .engine
        .create(request("2"), meta(Some(("k1", "h1"))))
        .await
        .unwrap();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.return_id, again.return_id);
    assert_eq!(first.body, again.body);
    assert_eq!(first.status, 201);
    assert_eq!(count_returns(&t.store).await, 1);
    let reused = t
        .engine
        .create(request("3"), meta(Some(("k1", "h2"))))
        .await;
    assert!(
        matches!(reused, Err(Error::IdempotencyKeyReused { .. })),
        "{reused:?}"
    );
    assert_eq!(count_returns(&t.store).await, 1);
    t.stop().await;
}

async fn rejected_commands_store_nothing(t: TestEngine) {
    let created = t.engine.create(request("2"), meta(None)).await.unwrap();
    let id = created.return_id;
    let before = t.engine.timeline(id).await.unwrap().unwrap();
    let err = t
        .engine
        .execute(
            id,
            cmd(json!({"command": "close"})),
            meta(Some(("k-close", "h"))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Rejected(ref r) if r.code() == "not_ready_to_close"),
        "{err:?}"
    );
    let after = t.engine.timeline(id).await.unwrap().unwrap();
    assert_eq!(before, after);
    // The key of a rejected command is not consumed: a corrected retry may use it.
    assert!(
        t.store
            .find_idempotency("portal", "k-close")
            .await
            .unwrap()
            .is_none()
    );
    let summary = t.engine.get(id).await.unwrap().unwrap().to_value();
    assert_eq!(summary["status"], "requested");
    t.stop().await;
}

async fn events_carry_correlation_and_causation(t: TestEngine) {
    let correlation = Uuid::now_v7();
    let causation = Uuid::now_v7();
    let mut m = meta(None);
    m.correlation_id = Some(correlation);
    let created = t.engine.create(request("2"), m).await.unwrap();
    let mut m = meta(None);
    m.causation_id = Some(causation);
    t.engine
        .execute(created.return_id, cmd(json!({"command": "approve"})), m)
        .await
        .unwrap();
    let timeline = t.engine.timeline(created.return_id).await.unwrap().unwrap();
    assert_eq!(timeline.len(), 2);
    assert!(timeline.iter().all(|e| e.correlation_id == correlation));
    assert_eq!(timeline[1].causation_id, causation);
    assert_eq!(timeline[0].event_type, "ReturnRequested");
    assert_eq!(timeline[1].event_type, "ReturnApproved");
    assert_eq!((timeline[0].version, timeline[1].version), (1, 2));
    assert!(timeline[0].position < timeline[1].position);
    t.stop().await;
}

async fn concurrent_commands_on_one_return_all_apply_in_order(t: TestEngine) {
    let created = t.engine.create(request("40"), meta(None)).await.unwrap();
    let id = created.return_id;
    for c in [
        json!({"command": "approve"}),
        json!({"command": "record_receipt", "receipt_ref": "R1", "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "40"}]}),
    ] {
        t.engine.execute(id, cmd(c), meta(None)).await.unwrap();
    }
    // Forty inspections of one unit each, all at once.
    let mut handles = Vec::new();
    for i in 0..40 {
        let engine = t.engine.clone();
        handles.push(t.tracker.spawn(async move {
            engine
                .execute(
                    id,
                    cmd(json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": "1", "condition": "GOOD"}]})),
                    meta(Some((&format!("insp-{i}"), "h"))),
                )
                .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let timeline = t.engine.timeline(id).await.unwrap().unwrap();
    let versions: Vec<i64> = timeline.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=43).collect::<Vec<_>>());
    let summary = t.engine.get(id).await.unwrap().unwrap().to_value();
    assert_eq!(summary["totals"]["inspected"], "40");
    assert_eq!(summary["stage"], "awaiting_disposition");
    // A 41st inspection is refused: nothing left to inspect.
    let err = t
        .engine
        .execute(
            id,
            cmd(json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": "1", "condition": "GOOD"}]})),
            meta(None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected(ref r) if r.code() == "quantity_exceeds_available"));
    t.stop().await;
}

async fn replay_rebuilds_the_same_read_model(t: TestEngine) {
    create_approved(&t, &["1", "2", "3"]).await;
    let before = t
        .store
        .list_summaries(&SummaryFilter::default())
        .await
        .unwrap();
    let report = replay(&t.store).await.unwrap();
    assert_eq!(report.returns, 3);
    assert_eq!(report.events, 6);
    let after = t
        .store
        .list_summaries(&SummaryFilter::default())
        .await
        .unwrap();
    let strip = |rows: Vec<backhaul_store::SummaryRow>| {
        rows.into_iter()
            .map(|r| (r.stream_id, r.version, r.status, r.stage, r.body))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(before), strip(after));
    t.stop().await;
}

/// Two hub processes on one database: a hub whose cached state is behind
/// must not refuse a command the log allows.
async fn a_stale_cache_never_refuses_what_the_log_allows(t: TestEngine) {
    let other = start(t.store.clone(), None);
    let created = t.engine.create(request("2"), meta(None)).await.unwrap();
    let id = created.return_id;
    // The other hub approves; this one still caches the requested state.
    other
        .engine
        .execute(id, cmd(json!({"command": "approve"})), meta(None))
        .await
        .unwrap();
    let received = t
        .engine
        .execute(
            id,
            cmd(json!({"command": "record_receipt", "receipt_ref": "R1", "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "2"}]})),
            meta(None),
        )
        .await
        .unwrap();
    assert_eq!(received.body.to_value()["return"]["status"], "received");
    assert_eq!(t.engine.timeline(id).await.unwrap().unwrap().len(), 3);
    other.stop().await;
    t.stop().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::sqlite().await).await; })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::postgres().await).await; })*
        }
    };
}

on_both_backends!(
    idempotent_create_returns_the_first_result,
    rejected_commands_store_nothing,
    events_carry_correlation_and_causation,
    concurrent_commands_on_one_return_all_apply_in_order,
    replay_rebuilds_the_same_read_model,
    a_stale_cache_never_refuses_what_the_log_allows,
);

/// Rows of the read model whose version is the log's: the stream is
/// reflected up to its last event.
async fn current_rows(store: &AnyStore, ids: &[backhaul_domain::values::ReturnId]) -> usize {
    let rows = store
        .list_summaries(&SummaryFilter::default())
        .await
        .unwrap();
    let mut current = 0;
    for id in ids {
        let version = store.read_stream(id.as_uuid()).await.unwrap().len() as i64;
        let row = rows.iter().find(|r| r.stream_id == id.as_uuid());
        if row.is_some_and(|r| r.version == version && r.status == "approved") {
            current += 1;
        }
    }
    current
}

/// Creates and approves one return per quantity.
async fn create_approved(
    t: &TestEngine,
    quantities: &[&str],
) -> Vec<backhaul_domain::values::ReturnId> {
    let mut ids = Vec::new();
    for qty in quantities {
        let created = t.engine.create(request(qty), meta(None)).await.unwrap();
        t.engine
            .execute(
                created.return_id,
                cmd(json!({"command": "approve"})),
                meta(None),
            )
            .await
            .unwrap();
        ids.push(created.return_id);
    }
    ids
}

/// SQLite writes read-model rows lazily (the log is written at once). Rows
/// a crash kept in memory are folded again from the log when the engine
/// opens, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_model_rows_lost_in_a_crash_are_caught_up_on_open() {
    let t = sqlite().await;
    let path = t._dir.as_ref().unwrap().path().join("t.db");
    let ids = create_approved(&t, &["2", "2", "2"]).await;

    // The crash: another store opens the file while the first one still
    // holds rows (at least the last append's) in memory, never to write them.
    let reopened = AnyStore::Sqlite(SqliteStore::open(&path, SqliteSync::Normal).await.unwrap());
    assert!(
        current_rows(&reopened, &ids).await < 3,
        "the last append's rows are not in the table yet"
    );
    let caught_up = catch_up(&reopened).await.unwrap();
    assert!(
        (1..=3).contains(&caught_up),
        "caught up {caught_up} streams"
    );
    assert_eq!(current_rows(&reopened, &ids).await, 3);
    assert_eq!(catch_up(&reopened).await.unwrap(), 0, "nothing left behind");
    drop(t.engine);
}

/// A clean stop writes the rows it held: the next start has nothing to
/// catch up, and a reader of the file sees every return as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_clean_stop_leaves_no_row_behind() {
    let mut t = sqlite().await;
    let path = t._dir.as_ref().unwrap().path().join("t.db");
    let ids = create_approved(&t, &["2", "2", "2"]).await;
    // The folder outlives the engine.
    let _dir = t._dir.take();
    t.stop().await;

    let reopened = AnyStore::Sqlite(SqliteStore::open(&path, SqliteSync::Normal).await.unwrap());
    assert_eq!(current_rows(&reopened, &ids).await, 3);
    assert_eq!(catch_up(&reopened).await.unwrap(), 0);
}
