//! The storage conformance suite: every check is written once against
//! [`AnyStore`] and runs on both backends, SQLite (a fresh file in a temporary
//! directory, `synchronous=NORMAL` because durability is not what these
//! checks are about) and PostgreSQL (a fresh database per check on the server
//! of `BACKHAUL_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! PostgreSQL being unreachable fails the PostgreSQL checks with a message
//! saying so: a skipped check would let a backend rot unnoticed.
//!
//! Each check commits a handful of transactions at most, because every
//! commit is an fsync and this machine's disk is slow when it is busy.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Waker};

use std::collections::HashMap;

use backhaul_store::{
    AnyStore, ApiKeyRecord, AppendConflict, AppendRequest, Appended, BacklogRow, ClaimRequest,
    Claimed, Committer, CommitterConfig, DeliveryFilter, DeliveryState, DeliveryStore, Error,
    EventStore, Finish, IdempotencyRecord, MasterBatch, MasterKey, MasterRow, MasterStore,
    NewDelivery, NewEvent, NewMasterRow, OperateError, Operation, PgStore, RawEventRow,
    RevisionMismatch, SqliteSync, StoreConfig, StreamLookup, SummaryFilter, SummaryRow,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

// ---------------------------------------------------------------------------
// Backends

/// A store under test plus what must live (and be cleaned up) with it.
struct Backend {
    store: AnyStore,
    /// Keeps the SQLite file's directory alive until the check ends.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (admin URL, database name), dropped after a passing check.
    database: Option<(String, String)>,
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("conformance.db");
        let config = StoreConfig {
            url: format!("sqlite://{}", path.display()),
            sqlite_sync: SqliteSync::Normal,
            ..StoreConfig::default()
        };
        let store = AnyStore::open(&config)
            .await
            .expect("open the SQLite store");
        assert_eq!(store.backend_name(), "sqlite");
        Backend {
            store,
            _dir: Some(dir),
            database: None,
        }
    }

    async fn postgres() -> Backend {
        let admin_url = std::env::var("BACKHAUL_TEST_PG_URL")
            .unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned());
        let url = PgStore::fresh_database(&admin_url, "backhaul_conformance")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for the conformance suite but {admin_url} failed: {e}. \
                     Start it (pg_ctlcluster --skip-systemctl-redirect <version> main start) or \
                     point BACKHAUL_TEST_PG_URL at a server you may create databases on."
                )
            });
        let name = url
            .rsplit('/')
            .next()
            .and_then(|last| last.split('?').next())
            .expect("fresh_database returns a URL with a database")
            .to_owned();
        let config = StoreConfig {
            url,
            max_connections: 4,
            ..StoreConfig::default()
        };
        let store = AnyStore::open(&config)
            .await
            .expect("open the PostgreSQL store");
        assert_eq!(store.backend_name(), "postgres");
        Backend {
            store,
            _dir: None,
            database: Some((admin_url, name)),
        }
    }

    /// Drops the check's PostgreSQL database. Only reached when the check
    /// passed, so a failing check leaves its database behind to inspect.
    async fn finish(self) {
        drop(self.store);
        if let Some((admin_url, name)) = self.database {
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to drop the test database");
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop the test database");
        }
    }
}

/// Instantiates one `#[tokio::test]` per check and backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let backend = super::Backend::sqlite().await;
                    super::$check(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let backend = super::Backend::postgres().await;
                    super::$check(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance!(
    append_and_read_stream_round_trip,
    stale_version_is_rejected_and_the_rest_of_the_batch_commits,
    requests_for_one_stream_apply_in_order_within_a_batch,
    creating_a_stream_twice_conflicts,
    taken_idempotency_keys_conflict_and_write_nothing,
    request_without_events_checks_version_and_records_its_key,
    failing_batch_writes_nothing,
    read_all_is_complete_and_in_position_order,
    large_batch_crosses_chunk_boundaries,
    summaries_get_and_list_with_filters,
    sku_filter_follows_sku_changes,
    backlog_counts_open_returns,
    replace_summaries_replaces_the_read_model,
    written_summaries_never_move_a_row_back,
    api_keys_insert_find_list_revoke,
    raw_insert_writes_rows,
    committer_answers_many_concurrent_appends,
    committer_isolates_a_failing_request,
    committer_shutdown_commits_queued_requests_then_refuses,
    deliveries_commit_with_their_events_or_not_at_all,
    claims_follow_lane_order_prerequisites_and_quota,
    leases_exclude_other_claimers_until_they_run_out,
    finish_requires_the_lease_and_happens_once,
    operator_actions_follow_the_state_and_are_audited,
    cancelled_prerequisite_sends_dependants_to_the_exception_queue,
    rows_that_cannot_go_do_not_fill_the_claim_window,
    master_records_load_as_they_were_put,
    master_upsert_replaces_and_every_write_bumps_the_revision,
    master_batch_is_all_or_nothing,
    master_write_with_a_stale_revision_writes_nothing,
    streams_are_found_by_reference_and_label_tracking_number,
    streams_are_found_by_order_and_rma_as_soon_as_committed,
    checkpoints_start_absent_and_keep_the_last_save,
);

// ---------------------------------------------------------------------------
// Test data

/// A fixed instant plus `seconds`, with microseconds (the precision both
/// backends keep).
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_740_830_400 + seconds, 123_456_000).expect("valid timestamp")
}

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: format!("Event{n}"),
        schema_version: i32::try_from(n % 3 + 1).expect("small"),
        payload: json!({ "n": n, "lines": [{ "sku": "SKU-1", "qty": 2 }], "note": "ü \"quoted\"" })
            .into(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        recorded_at: at(n),
    }
}

fn summary(stream_id: Uuid, version: i64) -> SummaryRow {
    SummaryRow {
        stream_id,
        version,
        reference: format!("RMA-{}", &stream_id.simple().to_string()[..8]),
        status: "requested".to_owned(),
        stage: "intake".to_owned(),
        owner: "customer".to_owned(),
        open: true,
        customer: "cust-1".to_owned(),
        order_ref: "ORD-1".to_owned(),
        skus: vec!["SKU-1".to_owned()],
        created_at: at(0),
        updated_at: at(version),
        body: json!({ "version": version, "lines": [] }).into(),
    }
}

/// Appends `events` events to `stream_id`, which is at `expected`.
fn append(stream_id: Uuid, expected: i64, events: i64) -> AppendRequest {
    AppendRequest {
        stream_id,
        expected_version: expected,
        events: (expected + 1..=expected + events).map(event).collect(),
        summary: summary(stream_id, expected + events),
        idempotency: None,
        deliveries: Vec::new(),
    }
}

fn with_key(mut req: AppendRequest, partner: &str, key: &str) -> AppendRequest {
    req.idempotency = Some(IdempotencyRecord {
        partner: partner.to_owned(),
        key: key.to_owned(),
        request_hash: format!("hash-of-{key}"),
        stream_id: req.stream_id,
        status: 201,
        response: json!({ "id": req.stream_id, "status": "created" }),
        created_at: at(5),
    });
    req
}

async fn commit(
    store: &AnyStore,
    batch: Vec<AppendRequest>,
) -> Vec<Result<Appended, AppendConflict>> {
    store.append_batch(&batch).await.expect("batch commits")
}

async fn commit_ok(store: &AnyStore, batch: Vec<AppendRequest>) -> Vec<Appended> {
    commit(store, batch)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("append accepted"))
        .collect()
}

fn version_conflict(stream_id: Uuid, expected: i64, actual: i64) -> AppendConflict {
    AppendConflict::Version {
        stream_id,
        expected,
        actual,
    }
}

fn key_conflict(partner: &str, key: &str) -> AppendConflict {
    AppendConflict::IdempotencyKey {
        partner: partner.to_owned(),
        key: key.to_owned(),
    }
}

async fn versions(store: &AnyStore, stream_id: Uuid) -> Vec<i64> {
    store
        .read_stream(stream_id)
        .await
        .expect("read stream")
        .iter()
        .map(|e| e.version)
        .collect()
}

async fn list(store: &AnyStore, filter: SummaryFilter) -> Vec<Uuid> {
    store
        .list_summaries(&filter)
        .await
        .expect("list summaries")
        .iter()
        .map(|s| s.stream_id)
        .collect()
}

/// Polls `future` once, so it runs up to its first real wait. For
/// `CommitterHandle::append` that queues the request; the committer task
/// cannot take it before the test yields (the test runtime has one thread),
/// so the requests queued this way form one batch.
fn queue<F: Future>(future: Pin<&mut F>) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        future.poll(&mut cx).is_pending(),
        "the committer cannot have answered yet"
    );
}

// ---------------------------------------------------------------------------
// Checks

async fn append_and_read_stream_round_trip(store: AnyStore) {
    let id = Uuid::now_v7();
    let req = with_key(append(id, 0, 3), "acme", "k-1");
    let expected_events = req.events.clone();
    let expected_summary = req.summary.clone();
    let expected_record = req.idempotency.clone();

    let outcome = commit_ok(&store, vec![req]).await;
    assert_eq!(outcome[0].new_version, 3);

    let events = store.read_stream(id).await.expect("read stream");
    assert_eq!(events.len(), 3);
    for (i, recorded) in events.iter().enumerate() {
        assert_eq!(recorded.stream_id, id);
        assert_eq!(recorded.version, i64::try_from(i).expect("small") + 1);
        assert_eq!(
            recorded.event, expected_events[i],
            "every envelope field survives"
        );
    }
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(outcome[0].last_position, events[2].position);

    assert_eq!(
        store.get_summary(id).await.expect("get summary"),
        Some(expected_summary)
    );
    assert_eq!(
        store
            .find_idempotency("acme", "k-1")
            .await
            .expect("find key"),
        expected_record
    );
    assert_eq!(
        store
            .find_idempotency("other", "k-1")
            .await
            .expect("find key"),
        None
    );
    assert!(
        store
            .read_stream(Uuid::now_v7())
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.get_summary(Uuid::now_v7()).await.expect("get"), None);
}

async fn stale_version_is_rejected_and_the_rest_of_the_batch_commits(store: AnyStore) {
    let (a, b, c, missing) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    commit_ok(&store, vec![append(a, 0, 2), append(b, 0, 1)]).await;
    let before = store.get_summary(a).await.expect("get");

    let mut stale = with_key(append(a, 1, 1), "acme", "stale");
    stale.summary.status = "should-not-be-written".to_owned();
    let outcomes = commit(
        &store,
        vec![
            stale,
            append(b, 1, 2),
            append(c, 0, 1),
            append(missing, 4, 1),
        ],
    )
    .await;

    assert_eq!(outcomes[0], Err(version_conflict(a, 1, 2)));
    assert_eq!(outcomes[1].as_ref().map(|o| o.new_version), Ok(3));
    assert_eq!(outcomes[2].as_ref().map(|o| o.new_version), Ok(1));
    assert_eq!(outcomes[3], Err(version_conflict(missing, 4, 0)));

    assert_eq!(
        versions(&store, a).await,
        vec![1, 2],
        "nothing appended to a"
    );
    assert_eq!(
        store.get_summary(a).await.expect("get"),
        before,
        "a's summary untouched"
    );
    assert_eq!(
        store.find_idempotency("acme", "stale").await.expect("find"),
        None,
        "a rejected request does not record its key"
    );
    assert_eq!(versions(&store, b).await, vec![1, 2, 3]);
    assert_eq!(versions(&store, c).await, vec![1]);
    assert!(versions(&store, missing).await.is_empty());
    assert_eq!(store.get_summary(missing).await.expect("get"), None);
}

async fn requests_for_one_stream_apply_in_order_within_a_batch(store: AnyStore) {
    let id = Uuid::now_v7();
    let mut second = append(id, 2, 1);
    second.summary.status = "authorised".to_owned();
    let outcomes = commit(&store, vec![append(id, 0, 2), second, append(id, 2, 1)]).await;

    let first = outcomes[0].clone().expect("create accepted");
    let second = outcomes[1].clone().expect("follow-up accepted");
    assert_eq!(first.new_version, 2);
    assert_eq!(second.new_version, 3);
    assert!(second.last_position > first.last_position);
    assert_eq!(outcomes[2], Err(version_conflict(id, 2, 3)));

    assert_eq!(versions(&store, id).await, vec![1, 2, 3]);
    let row = store.get_summary(id).await.expect("get").expect("exists");
    assert_eq!(row.version, 3);
    assert_eq!(row.status, "authorised");
}

async fn creating_a_stream_twice_conflicts(store: AnyStore) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    commit_ok(&store, vec![append(a, 0, 1)]).await;
    let outcomes = commit(&store, vec![append(a, 0, 2)]).await;
    assert_eq!(outcomes[0], Err(version_conflict(a, 0, 1)));
    assert_eq!(versions(&store, a).await, vec![1]);

    // Twice within one batch: the second sees the first's head.
    let mut again = append(b, 0, 1);
    again.summary.status = "second".to_owned();
    let outcomes = commit(&store, vec![append(b, 0, 1), again]).await;
    assert!(outcomes[0].is_ok());
    assert_eq!(outcomes[1], Err(version_conflict(b, 0, 1)));
    let row = store.get_summary(b).await.expect("get").expect("exists");
    assert_eq!(row.status, "requested");
    assert_eq!(versions(&store, b).await, vec![1]);
}

async fn taken_idempotency_keys_conflict_and_write_nothing(store: AnyStore) {
    let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
    commit_ok(&store, vec![with_key(append(ids[0], 0, 1), "acme", "k")]).await;

    let outcomes = commit(
        &store,
        vec![
            // Taken in an earlier batch.
            with_key(append(ids[1], 0, 1), "acme", "k"),
            // Taken, and the version is stale too: the key is checked first.
            with_key(append(ids[0], 0, 1), "acme", "k"),
            // The same key of another partner is a different key.
            with_key(append(ids[2], 0, 1), "globex", "k"),
            // Taken earlier in this batch.
            with_key(append(ids[3], 0, 1), "acme", "fresh"),
            with_key(append(ids[4], 0, 1), "acme", "fresh"),
            // A rejected request does not claim its key.
            with_key(append(ids[5], 3, 1), "acme", "retry"),
            with_key(append(ids[6], 0, 1), "acme", "retry"),
        ],
    )
    .await;

    assert_eq!(outcomes[0], Err(key_conflict("acme", "k")));
    assert_eq!(outcomes[1], Err(key_conflict("acme", "k")));
    assert!(outcomes[2].is_ok());
    assert!(outcomes[3].is_ok());
    assert_eq!(outcomes[4], Err(key_conflict("acme", "fresh")));
    assert_eq!(outcomes[5], Err(version_conflict(ids[5], 3, 0)));
    assert!(outcomes[6].is_ok());

    for rejected in [ids[1], ids[4], ids[5]] {
        assert!(versions(&store, rejected).await.is_empty());
        assert_eq!(store.get_summary(rejected).await.expect("get"), None);
    }
    assert_eq!(versions(&store, ids[0]).await, vec![1]);
    let record = |partner: &'static str, key: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_idempotency(partner, key)
                .await
                .expect("find")
                .map(|r| r.stream_id)
        }
    };
    assert_eq!(record("acme", "k").await, Some(ids[0]));
    assert_eq!(record("globex", "k").await, Some(ids[2]));
    assert_eq!(record("acme", "fresh").await, Some(ids[3]));
    assert_eq!(record("acme", "retry").await, Some(ids[6]));
}

async fn request_without_events_checks_version_and_records_its_key(store: AnyStore) {
    let id = Uuid::now_v7();
    commit_ok(&store, vec![append(id, 0, 1)]).await;
    let before = store.get_summary(id).await.expect("get");

    let mut noop = with_key(append(id, 1, 0), "acme", "noop");
    noop.summary.status = "ignored".to_owned();
    let outcomes = commit(&store, vec![noop, append(id, 0, 0)]).await;
    assert_eq!(
        outcomes[0],
        Ok(Appended {
            new_version: 1,
            last_position: 0
        })
    );
    assert_eq!(outcomes[1], Err(version_conflict(id, 0, 1)));
    assert_eq!(versions(&store, id).await, vec![1]);
    assert_eq!(
        store.get_summary(id).await.expect("get"),
        before,
        "summary untouched"
    );
    assert!(
        store
            .find_idempotency("acme", "noop")
            .await
            .expect("find")
            .is_some()
    );
}

async fn failing_batch_writes_nothing(store: AnyStore) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let first = with_key(append(a, 0, 1), "acme", "a");
    let mut second = with_key(append(b, 0, 1), "acme", "b");
    // The same event id twice violates the log's uniqueness: a storage
    // error, not a conflict.
    second.events[0].event_id = first.events[0].event_id;

    let result = store.append_batch(&[first, second]).await;
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(store.read_all(0, 100).await.expect("read all").is_empty());
    assert_eq!(store.get_summary(a).await.expect("get"), None);
    assert_eq!(
        store.find_idempotency("acme", "a").await.expect("find"),
        None
    );
}

async fn read_all_is_complete_and_in_position_order(store: AnyStore) {
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    commit_ok(&store, ids.iter().map(|id| append(*id, 0, 2)).collect()).await;
    commit_ok(
        &store,
        vec![
            append(ids[2], 2, 3),
            append(ids[0], 2, 1),
            append(ids[3], 2, 1),
        ],
    )
    .await;
    let total = 4 * 2 + 3 + 1 + 1;

    let all = store.read_all(0, 1000).await.expect("read all");
    assert_eq!(all.len(), total);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    for id in &ids {
        let mine: Vec<i64> = all
            .iter()
            .filter(|e| e.stream_id == *id)
            .map(|e| e.version)
            .collect();
        assert_eq!(
            mine,
            versions(&store, *id).await,
            "per-stream order holds in the log"
        );
    }

    // Paging by the last seen position yields the same sequence.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 4).await.expect("read page");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = last.position;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(store.read_all(after, 10).await.expect("read").is_empty());
    assert!(store.read_all(0, 0).await.expect("read").is_empty());
}

async fn large_batch_crosses_chunk_boundaries(store: AnyStore) {
    // More rows than one multi-row statement takes, for every table the
    // append writes in bulk.
    let n = 700;
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let batch = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut req = with_key(append(*id, 0, 1), "acme", &format!("bulk-{i}"));
            req.summary.skus = vec![format!("SKU-{}", i % 10), "COMMON".to_owned()];
            req
        })
        .collect();
    let outcomes = commit_ok(&store, batch).await;
    let positions: Vec<i64> = outcomes.iter().map(|o| o.last_position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions follow request order"
    );

    let all = store.read_all(0, 10_000).await.expect("read all");
    assert_eq!(all.len(), n);
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    assert!(
        store
            .find_idempotency("acme", "bulk-699")
            .await
            .expect("find")
            .is_some()
    );
    let common = SummaryFilter {
        sku: Some("COMMON".to_owned()),
        limit: 1000,
        ..SummaryFilter::default()
    };
    assert_eq!(list(&store, common).await.len(), n);
    let one = SummaryFilter {
        sku: Some("SKU-3".to_owned()),
        limit: 1000,
        ..SummaryFilter::default()
    };
    assert_eq!(list(&store, one).await.len(), n / 10);
}

/// Six returns with distinct values per filter column; returns ids in the
/// order the list must produce (created_at descending, then stream_id).
async fn seed_summaries(store: &AnyStore) -> Vec<SummaryRow> {
    let mut ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    // Rows 1 and 2 share created_at, so the stream_id tie-break decides.
    ids[1..3].sort();
    let spec = [
        // (created_at, status, stage, owner, open, customer, order_ref, skus)
        (
            50,
            "requested",
            "intake",
            "customer",
            true,
            "cust-a",
            "ORD-1",
            vec!["A", "B"],
        ),
        (
            40,
            "authorised",
            "transit",
            "carrier",
            true,
            "cust-b",
            "ORD-2",
            vec!["B"],
        ),
        (
            40,
            "authorised",
            "transit",
            "carrier",
            true,
            "cust-a",
            "ORD-3",
            vec!["C"],
        ),
        (
            30,
            "received",
            "inspection",
            "warehouse",
            true,
            "cust-b",
            "ORD-4",
            vec![],
        ),
        (
            20,
            "refunded",
            "closed",
            "finance",
            false,
            "cust-a",
            "ORD-5",
            vec!["A"],
        ),
        (
            10,
            "requested",
            "intake",
            "customer",
            true,
            "cust-c",
            "ORD-6",
            vec!["D"],
        ),
    ];
    let rows: Vec<SummaryRow> = spec
        .into_iter()
        .zip(&ids)
        .map(
            |((created, status, stage, owner, open, customer, order_ref, skus), id)| {
                let mut row = summary(*id, 1);
                row.created_at = at(created);
                row.status = status.to_owned();
                row.stage = stage.to_owned();
                row.owner = owner.to_owned();
                row.open = open;
                row.customer = customer.to_owned();
                row.order_ref = order_ref.to_owned();
                row.skus = skus.into_iter().map(str::to_owned).collect();
                row
            },
        )
        .collect();
    let batch = rows
        .iter()
        .map(|row| {
            let mut req = append(row.stream_id, 0, 1);
            req.summary = row.clone();
            req
        })
        .collect();
    commit_ok(store, batch).await;
    rows
}

async fn summaries_get_and_list_with_filters(store: AnyStore) {
    let rows = seed_summaries(&store).await;
    let id = |i: usize| rows[i].stream_id;
    for row in &rows {
        assert_eq!(
            store
                .get_summary(row.stream_id)
                .await
                .expect("get")
                .as_ref(),
            Some(row)
        );
    }

    let everything = store
        .list_summaries(&SummaryFilter::default())
        .await
        .expect("list");
    assert_eq!(
        everything, rows,
        "newest first, stream_id breaks ties, full rows"
    );

    let cases: Vec<(SummaryFilter, Vec<usize>)> = vec![
        (
            SummaryFilter {
                status: Some("authorised".into()),
                ..Default::default()
            },
            vec![1, 2],
        ),
        (
            SummaryFilter {
                stage: Some("intake".into()),
                ..Default::default()
            },
            vec![0, 5],
        ),
        (
            SummaryFilter {
                owner: Some("carrier".into()),
                ..Default::default()
            },
            vec![1, 2],
        ),
        (
            SummaryFilter {
                customer: Some("cust-a".into()),
                ..Default::default()
            },
            vec![0, 2, 4],
        ),
        (
            SummaryFilter {
                order_ref: Some("ORD-4".into()),
                ..Default::default()
            },
            vec![3],
        ),
        (
            SummaryFilter {
                sku: Some("A".into()),
                ..Default::default()
            },
            vec![0, 4],
        ),
        (
            SummaryFilter {
                sku: Some("B".into()),
                ..Default::default()
            },
            vec![0, 1],
        ),
        (
            SummaryFilter {
                sku: Some("nope".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            SummaryFilter {
                open: Some(true),
                ..Default::default()
            },
            vec![0, 1, 2, 3, 5],
        ),
        (
            SummaryFilter {
                open: Some(false),
                ..Default::default()
            },
            vec![4],
        ),
        // Both bounds are exclusive.
        (
            SummaryFilter {
                created_before: Some(at(40)),
                ..Default::default()
            },
            vec![3, 4, 5],
        ),
        (
            SummaryFilter {
                created_after: Some(at(40)),
                ..Default::default()
            },
            vec![0],
        ),
        (
            SummaryFilter {
                created_after: Some(at(10)),
                created_before: Some(at(50)),
                ..Default::default()
            },
            vec![1, 2, 3, 4],
        ),
        (
            SummaryFilter {
                customer: Some("cust-a".into()),
                open: Some(true),
                sku: Some("C".into()),
                ..Default::default()
            },
            vec![2],
        ),
        (
            SummaryFilter {
                limit: 2,
                ..Default::default()
            },
            vec![0, 1],
        ),
        (
            SummaryFilter {
                limit: 2,
                offset: 2,
                ..Default::default()
            },
            vec![2, 3],
        ),
        (
            SummaryFilter {
                offset: 5,
                ..Default::default()
            },
            vec![5],
        ),
        (
            SummaryFilter {
                offset: 6,
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let expected: Vec<Uuid> = expected.into_iter().map(id).collect();
        assert_eq!(list(&store, filter.clone()).await, expected, "{filter:?}");
    }
}

async fn sku_filter_follows_sku_changes(store: AnyStore) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let by_sku = |sku: &str| SummaryFilter {
        sku: Some(sku.to_owned()),
        ..SummaryFilter::default()
    };
    let with_skus = |mut req: AppendRequest, skus: &[&str]| {
        req.summary.skus = skus.iter().map(|s| (*s).to_owned()).collect();
        req
    };

    commit_ok(&store, vec![with_skus(append(a, 0, 1), &["X", "Y", "Y"])]).await;
    assert_eq!(
        list(&store, by_sku("Y")).await,
        vec![a],
        "a repeated SKU is fine"
    );

    // Changed set: X leaves, Z arrives.
    commit_ok(&store, vec![with_skus(append(a, 1, 1), &["Z", "Y"])]).await;
    assert!(list(&store, by_sku("X")).await.is_empty());
    assert_eq!(list(&store, by_sku("Z")).await, vec![a]);
    // Same set in another order: rows stay, the row keeps the order given.
    commit_ok(&store, vec![with_skus(append(a, 2, 1), &["Y", "Z"])]).await;
    assert_eq!(list(&store, by_sku("Z")).await, vec![a]);
    let row = store.get_summary(a).await.expect("get").expect("exists");
    assert_eq!(row.skus, vec!["Y".to_owned(), "Z".to_owned()]);
    // Unchanged set: the single-statement path.
    commit_ok(&store, vec![with_skus(append(a, 3, 1), &["Y", "Z"])]).await;
    assert_eq!(list(&store, by_sku("Y")).await, vec![a]);

    // Created and changed twice within one batch: the last set wins.
    commit_ok(
        &store,
        vec![
            with_skus(append(b, 0, 1), &["P"]),
            with_skus(append(b, 1, 1), &["Q"]),
            with_skus(append(b, 2, 1), &["R", "P"]),
            with_skus(append(a, 4, 1), &[]),
        ],
    )
    .await;
    assert!(list(&store, by_sku("Q")).await.is_empty());
    assert_eq!(list(&store, by_sku("R")).await, vec![b]);
    assert_eq!(list(&store, by_sku("P")).await, vec![b]);
    assert!(list(&store, by_sku("Y")).await.is_empty());
    assert!(list(&store, by_sku("Z")).await.is_empty());
}

async fn backlog_counts_open_returns(store: AnyStore) {
    let rows = seed_summaries(&store).await;
    let backlog = store.backlog().await.expect("backlog");
    let line = |status: &str, stage: &str, owner: &str, count: i64, oldest: usize| BacklogRow {
        status: status.to_owned(),
        stage: stage.to_owned(),
        owner: owner.to_owned(),
        count,
        oldest_created_at: rows[oldest].created_at,
    };
    assert_eq!(
        backlog,
        vec![
            line("received", "inspection", "warehouse", 1, 3),
            line("requested", "intake", "customer", 2, 5),
            line("authorised", "transit", "carrier", 2, 1),
        ],
        "open rows only, grouped, ordered by stage"
    );
}

async fn last_position(store: &AnyStore) -> i64 {
    let all = store.read_all(0, 100_000).await.expect("read all");
    all.last().map_or(0, |e| e.position)
}

async fn replace_summaries_replaces_the_read_model(store: AnyStore) {
    let rows = seed_summaries(&store).await;
    let mut replacement = rows.clone();
    replacement[0].status = "rebuilt".to_owned();
    replacement[0].skus = vec!["NEW".to_owned()];
    replacement[0].body = json!({ "rebuilt": true }).into();
    replacement[4].open = true;

    let through = last_position(&store).await;
    store
        .replace_summaries(replacement.clone(), through)
        .await
        .expect("replace");

    let listed = store
        .list_summaries(&SummaryFilter::default())
        .await
        .expect("list");
    assert_eq!(listed, replacement);
    let sku = |s: &str| SummaryFilter {
        sku: Some(s.to_owned()),
        ..SummaryFilter::default()
    };
    assert_eq!(list(&store, sku("NEW")).await, vec![rows[0].stream_id]);
    assert_eq!(list(&store, sku("A")).await, vec![rows[4].stream_id]);
    assert_eq!(
        store
            .backlog()
            .await
            .expect("backlog")
            .iter()
            .map(|l| l.count)
            .sum::<i64>(),
        6
    );

    // The heads survive the replacement: appends continue from the log's version.
    let id = rows[0].stream_id;
    let outcome = commit(&store, vec![append(id, 1, 1)]).await;
    assert_eq!(outcome[0].as_ref().map(|o| o.new_version), Ok(2));
    assert_eq!(
        commit(&store, vec![append(id, 1, 1)]).await[0],
        Err(version_conflict(id, 1, 2))
    );

    // A row a backend still holds back is newer than any replacement could
    // know, so it would be written after it: write it now, to replace it too.
    store.flush_read_model().await.expect("flush");
    let through = last_position(&store).await;
    store
        .replace_summaries(Vec::new(), through)
        .await
        .expect("replace with nothing");
    assert!(
        store
            .list_summaries(&SummaryFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
}

/// The catch-up path (`write_summaries`): a row folded from the log is
/// written unless the table already holds that version or a newer one, and
/// the read-model position is a backend's own (`None`: written with the
/// events, nothing ever to catch up).
async fn written_summaries_never_move_a_row_back(store: AnyStore) {
    let rows = seed_summaries(&store).await;
    let position = store.read_model_position().await.expect("position");
    match store {
        AnyStore::Sqlite(_) => assert!(position.is_some(), "SQLite writes rows lazily"),
        AnyStore::Postgres(_) => assert_eq!(position, None),
    }

    let mut older = rows[0].clone();
    older.version -= 1;
    older.status = "older".to_owned();
    let mut newer = rows[1].clone();
    newer.version += 1;
    newer.status = "newer".to_owned();
    newer.skus = vec!["NEWER".to_owned()];
    let through = last_position(&store).await;
    store
        .write_summaries(vec![older, newer.clone()], Some(through))
        .await
        .expect("write");

    let get = |id| {
        let store = store.clone();
        async move { store.get_summary(id).await.expect("get").expect("row") }
    };
    assert_eq!(
        get(rows[0].stream_id).await,
        rows[0],
        "an older row is ignored"
    );
    assert_eq!(
        get(rows[1].stream_id).await,
        newer,
        "a newer row is written"
    );
    let sku = SummaryFilter {
        sku: Some("NEWER".to_owned()),
        ..SummaryFilter::default()
    };
    assert_eq!(list(&store, sku).await, vec![rows[1].stream_id]);
    if position.is_some() {
        assert_eq!(
            store.read_model_position().await.expect("position"),
            Some(through)
        );
    }
}

async fn api_keys_insert_find_list_revoke(store: AnyStore) {
    let key = |id: &str, partner: &str, created: i64| ApiKeyRecord {
        key_id: id.to_owned(),
        partner: partner.to_owned(),
        secret_hash: format!("sha256-of-{id}"),
        scopes: vec!["returns:write".to_owned(), "returns:read".to_owned()],
        created_at: at(created),
        revoked_at: None,
    };
    let (first, second) = (key("bk_2", "acme", 1), key("bk_1", "globex", 2));
    store.insert_api_key(first.clone()).await.expect("insert");
    store.insert_api_key(second.clone()).await.expect("insert");
    assert!(
        store.insert_api_key(first.clone()).await.is_err(),
        "key ids are unique"
    );

    assert_eq!(
        store.find_api_key("bk_2").await.expect("find"),
        Some(first.clone())
    );
    assert_eq!(store.find_api_key("missing").await.expect("find"), None);
    assert_eq!(
        store.list_api_keys().await.expect("list"),
        vec![first.clone(), second.clone()],
        "oldest first"
    );

    assert!(store.revoke_api_key("bk_2", at(10)).await.expect("revoke"));
    assert!(
        store
            .revoke_api_key("bk_2", at(20))
            .await
            .expect("revoke again")
    );
    assert!(
        !store
            .revoke_api_key("missing", at(10))
            .await
            .expect("revoke")
    );
    let revoked = store
        .find_api_key("bk_2")
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        revoked.revoked_at,
        Some(at(10)),
        "the first revocation stands"
    );
    assert_eq!(
        store.find_api_key("bk_1").await.expect("find"),
        Some(second)
    );
}

async fn raw_insert_writes_rows(store: AnyStore) {
    let id = Uuid::now_v7();
    let rows: Vec<RawEventRow> = (1..=600)
        .map(|version| RawEventRow {
            stream_id: id,
            version,
            event: event(version),
        })
        .collect();
    assert_eq!(store.raw_insert(rows).await.expect("raw insert"), 600);
    assert!(
        store.read_all(0, 10).await.expect("read").is_empty(),
        "the log is untouched"
    );
}

async fn committer_answers_many_concurrent_appends(store: AnyStore) {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    // Small batches, so the run spans several commits.
    let config = CommitterConfig {
        max_batch_events: 16,
        ..CommitterConfig::default()
    };
    let handle = Committer::start(store.clone(), config, &tracker, shutdown.clone());

    let ids: Vec<Uuid> = (0..60).map(|_| Uuid::now_v7()).collect();
    let mut calls = Vec::new();
    // Every stream is created twice concurrently: one creation wins, the
    // other gets a conflict.
    for _ in 0..2 {
        for id in &ids {
            let handle = handle.clone();
            let req = append(*id, 0, 2);
            calls.push(tracker.spawn(async move { handle.append(req).await }));
        }
    }
    let mut wins = std::collections::HashMap::new();
    for call in calls {
        match call.await.expect("client task").expect("committed") {
            Ok(appended) => {
                assert_eq!(appended.new_version, 2);
                *wins.entry(appended.last_position).or_insert(0) += 1;
            }
            Err(AppendConflict::Version {
                actual, expected, ..
            }) => {
                assert_eq!((expected, actual), (0, 2));
            }
            Err(other) => panic!("unexpected conflict {other}"),
        }
    }
    assert_eq!(
        wins.len(),
        ids.len(),
        "one creation per stream, each at its own position"
    );
    assert_eq!(
        store.read_all(0, 1000).await.expect("read all").len(),
        ids.len() * 2
    );
    for id in &ids {
        assert_eq!(versions(&store, *id).await, vec![1, 2]);
    }

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn committer_isolates_a_failing_request(store: AnyStore) {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let handle = Committer::start(
        store.clone(),
        CommitterConfig::default(),
        &tracker,
        shutdown.clone(),
    );

    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = append(a, 0, 1);
    let mut bad = append(b, 0, 1);
    bad.events[0].event_id = first.events[0].event_id;
    let mut first = pin!(handle.append(first));
    let mut bad = pin!(handle.append(bad));
    let mut last = pin!(handle.append(append(c, 0, 1)));
    queue(first.as_mut());
    queue(bad.as_mut());
    queue(last.as_mut());

    // The three form one batch, which fails on the duplicate event id; the
    // committer then commits them one by one.
    assert!(first.await.expect("committed").is_ok());
    assert!(matches!(bad.await, Err(Error::Database(_))));
    assert!(last.await.expect("committed").is_ok());
    assert_eq!(versions(&store, a).await, vec![1]);
    assert!(versions(&store, b).await.is_empty());
    assert_eq!(versions(&store, c).await, vec![1]);

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn committer_shutdown_commits_queued_requests_then_refuses(store: AnyStore) {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let handle = Committer::start(
        store.clone(),
        CommitterConfig::default(),
        &tracker,
        shutdown.clone(),
    );

    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut queued: Vec<_> = ids
        .iter()
        .map(|id| Box::pin(handle.append(append(*id, 0, 1))))
        .collect();
    for call in &mut queued {
        queue(call.as_mut());
    }
    // Cancelled before the committer ever ran: it must still commit what
    // was already queued.
    shutdown.cancel();
    for call in queued {
        assert!(call.await.expect("queued before shutdown").is_ok());
    }
    for id in &ids {
        assert_eq!(versions(&store, *id).await, vec![1]);
    }

    let late = handle.append(append(Uuid::now_v7(), 0, 1)).await;
    assert!(matches!(late, Err(Error::ShuttingDown)), "{late:?}");
    tracker.close();
    tracker.wait().await;
    let after_exit = handle.append(append(Uuid::now_v7(), 0, 1)).await;
    assert!(
        matches!(after_exit, Err(Error::ShuttingDown)),
        "{after_exit:?}"
    );
}

// ---------------------------------------------------------------------------
// The outbox

fn delivery(target: &str, kind: &str, key: &str, requires: &[&str]) -> NewDelivery {
    NewDelivery {
        target: target.to_owned(),
        kind: kind.to_owned(),
        delivery_key: key.to_owned(),
        requires: requires.iter().map(|r| (*r).to_owned()).collect(),
        payload: json!({ "kind": kind, "key": key }).into(),
        correlation_id: Uuid::new_v4(),
    }
}

fn with_deliveries(mut req: AppendRequest, deliveries: Vec<NewDelivery>) -> AppendRequest {
    req.deliveries = deliveries;
    req
}

/// A claim at `at(seconds)` by `owner`, with `quota` per target.
fn claim_at(seconds: i64, owner: &str, quota: &[(&str, usize)]) -> ClaimRequest {
    ClaimRequest {
        now: at(seconds),
        owner: owner.to_owned(),
        lease_until: at(seconds + 30),
        quota: quota
            .iter()
            .map(|(t, q)| ((*t).to_owned(), *q))
            .collect::<HashMap<_, _>>(),
        scan_limit: 100,
    }
}

fn keys(claimed: &[Claimed]) -> Vec<&str> {
    claimed
        .iter()
        .map(|c| c.delivery.delivery_key.as_str())
        .collect()
}

async fn claim(store: &AnyStore, request: &ClaimRequest) -> Vec<Claimed> {
    store.claim_deliveries(request).await.expect("claim")
}

async fn finish(store: &AnyStore, c: &Claimed, owner: &str, finish: Finish, seconds: i64) -> bool {
    store
        .finish_delivery(c.delivery.id, owner, finish, at(seconds))
        .await
        .expect("finish")
}

fn done(result: serde_json::Value) -> Finish {
    Finish::Done {
        result: result.into(),
    }
}

async fn deliveries_commit_with_their_events_or_not_at_all(store: AnyStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    let outcomes = commit(
        &store,
        vec![
            with_deliveries(
                append(a, 0, 1),
                vec![delivery("erp", "erp_return_order", "a:1", &[])],
            ),
            // Stale: its delivery must not be written either.
            with_deliveries(
                append(b, 3, 1),
                vec![delivery("erp", "erp_return_order", "b:1", &[])],
            ),
        ],
    )
    .await;
    assert!(outcomes[0].is_ok() && outcomes[1].is_err(), "{outcomes:?}");
    let all = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
    let d = &all[0];
    assert_eq!(
        (d.stream_id, d.target.as_str(), d.kind.as_str()),
        (a, "erp", "erp_return_order")
    );
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.attempts, 0);
    assert_eq!(d.next_attempt_at, at(1), "due when decided");
    assert_eq!(d.payload.to_value()["key"], "a:1");
    assert_eq!(store.next_due().await.expect("next due"), Some(at(1)));
    // A duplicate delivery key fails the whole batch: events included.
    let failed = store
        .append_batch(&[with_deliveries(
            append(b, 0, 1),
            vec![delivery("erp", "erp_return_order", "a:1", &[])],
        )])
        .await;
    assert!(failed.is_err());
    assert!(store.read_stream(b).await.expect("read").is_empty());
}

async fn claims_follow_lane_order_prerequisites_and_quota(store: AnyStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    commit_ok(
        &store,
        vec![
            with_deliveries(
                append(a, 0, 1),
                vec![
                    delivery("erp", "erp_return_order", "a:ro", &[]),
                    delivery("portal", "portal_status", "a:st1", &[]),
                    delivery("portal", "portal_status", "a:st2", &[]),
                ],
            ),
            with_deliveries(
                append(b, 0, 1),
                vec![delivery("portal", "portal_status", "b:st1", &[])],
            ),
        ],
    )
    .await;
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 1, 1),
            vec![delivery(
                "erp",
                "erp_credit_memo",
                "a:cm",
                &["erp_return_order"],
            )],
        )],
    )
    .await;

    // Lane heads only; the portal quota of 1 takes the oldest head.
    let first = claim(&store, &claim_at(10, "hub-1", &[("erp", 5), ("portal", 1)])).await;
    assert_eq!(keys(&first), vec!["a:ro", "a:st1"]);
    assert!(first.iter().all(|c| c.delivery.attempts == 1));
    assert!(
        first
            .iter()
            .all(|c| c.delivery.lease_owner.as_deref() == Some("hub-1"))
    );
    // Different returns go in parallel; a:st2 waits behind a:st1, the credit
    // memo behind the return order it requires.
    let second = claim(&store, &claim_at(10, "hub-1", &[("erp", 5), ("portal", 5)])).await;
    assert_eq!(keys(&second), vec!["b:st1"]);

    assert!(
        finish(
            &store,
            &first[0],
            "hub-1",
            done(json!({"number": "RO-1"})),
            11
        )
        .await
    );
    assert!(finish(&store, &first[1], "hub-1", done(json!({})), 11).await);
    let third = claim(&store, &claim_at(12, "hub-1", &[("erp", 5), ("portal", 5)])).await;
    assert_eq!(keys(&third), vec!["a:st2", "a:cm"]);
    let memo = &third[1];
    assert_eq!(
        memo.prerequisites
            .get("erp_return_order")
            .cloned()
            .flatten()
            .map(|r| r.to_value()),
        Some(json!({"number": "RO-1"})),
        "the credit memo is handed the return order it refers to"
    );
    // A target without quota takes nothing.
    assert!(
        claim(&store, &claim_at(12, "hub-1", &[("erp", 0)]))
            .await
            .is_empty()
    );
}

async fn leases_exclude_other_claimers_until_they_run_out(store: AnyStore) {
    let a = Uuid::now_v7();
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 0, 1),
            vec![delivery("wms", "wms_expected_receipt", "a:asn", &[])],
        )],
    )
    .await;
    let first = claim(&store, &claim_at(10, "hub-1", &[("wms", 5)])).await;
    assert_eq!(keys(&first), vec!["a:asn"]);
    // Leased until 40: nobody else gets it before.
    assert!(
        claim(&store, &claim_at(39, "hub-2", &[("wms", 5)]))
            .await
            .is_empty()
    );
    // After the lease ran out (hub-1 died), hub-2 delivers it again with the
    // same key, and hub-1's late finish is refused.
    let again = claim(&store, &claim_at(40, "hub-2", &[("wms", 5)])).await;
    assert_eq!(keys(&again), vec!["a:asn"]);
    assert_eq!(again[0].delivery.attempts, 2);
    assert!(!finish(&store, &first[0], "hub-1", done(json!({"asn": "late"})), 41).await);
    assert!(
        finish(
            &store,
            &again[0],
            "hub-2",
            done(json!({"asn": "ASN-1"})),
            41
        )
        .await
    );
    let stored = store
        .get_delivery(again[0].delivery.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, DeliveryState::Done);
    assert_eq!(
        stored.result.map(|r| r.to_value()),
        Some(json!({"asn": "ASN-1"}))
    );

    // A restarted hub releases its own leases and claims at once.
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 1, 1),
            vec![delivery(
                "wms",
                "wms_cancel_expected_receipt",
                "a:cancel",
                &[],
            )],
        )],
    )
    .await;
    assert_eq!(
        keys(&claim(&store, &claim_at(50, "hub-1", &[("wms", 5)])).await),
        vec!["a:cancel"]
    );
    assert_eq!(store.release_leases("hub-2").await.expect("release"), 0);
    assert_eq!(store.release_leases("hub-1").await.expect("release"), 1);
    assert_eq!(
        keys(&claim(&store, &claim_at(51, "hub-1", &[("wms", 5)])).await),
        vec!["a:cancel"]
    );
}

async fn finish_requires_the_lease_and_happens_once(store: AnyStore) {
    let a = Uuid::now_v7();
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 0, 1),
            vec![
                delivery("carrier", "carrier_label", "a:label", &[]),
                delivery(
                    "carrier",
                    "carrier_void_label",
                    "a:void",
                    &["carrier_label"],
                ),
            ],
        )],
    )
    .await;
    let first = claim(&store, &claim_at(10, "hub-1", &[("carrier", 5)])).await;
    let error = json!({"class": "technical", "code": "unavailable"});
    assert!(
        finish(
            &store,
            &first[0],
            "hub-1",
            Finish::Retry {
                next_attempt_at: at(20),
                error: error.clone().into()
            },
            11
        )
        .await
    );
    // Not due before 20, and still holding its lane.
    assert!(
        claim(&store, &claim_at(19, "hub-1", &[("carrier", 5)]))
            .await
            .is_empty()
    );
    assert_eq!(
        store.next_due().await.expect("due"),
        Some(at(1)),
        "a:void is due but blocked"
    );
    let retry = claim(&store, &claim_at(20, "hub-1", &[("carrier", 5)])).await;
    assert_eq!(keys(&retry), vec!["a:label"]);
    assert_eq!(
        retry[0].delivery.last_error.as_ref().map(|e| e.to_value()),
        Some(error)
    );
    assert!(
        finish(
            &store,
            &retry[0],
            "hub-1",
            Finish::Dead {
                error: json!({"class": "technical"}).into()
            },
            21
        )
        .await
    );
    assert!(
        !finish(&store, &retry[0], "hub-1", done(json!({})), 22).await,
        "finished once"
    );
    // A dead letter blocks its lane.
    assert!(
        claim(&store, &claim_at(30, "hub-1", &[("carrier", 5)]))
            .await
            .is_empty()
    );
    let dead = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Dead),
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    let counts = store.delivery_counts().await.expect("counts");
    assert!(
        counts.contains(&("carrier".to_owned(), DeliveryState::Dead, 1)),
        "{counts:?}"
    );
    assert!(
        counts.contains(&("carrier".to_owned(), DeliveryState::Pending, 1)),
        "{counts:?}"
    );
}

async fn operator_actions_follow_the_state_and_are_audited(store: AnyStore) {
    let a = Uuid::now_v7();
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 0, 1),
            vec![
                delivery("erp", "erp_return_order", "a:ro", &[]),
                delivery("erp", "erp_credit_memo", "a:cm", &["erp_return_order"]),
            ],
        )],
    )
    .await;
    let first = claim(&store, &claim_at(10, "hub-1", &[("erp", 5)])).await;
    let id = first[0].delivery.id;
    // Pending: only cancel applies.
    let refused = store
        .operate_delivery(id, Operation::Skip, "ops", "why", at(11))
        .await
        .expect("operate");
    assert_eq!(
        refused,
        Err(OperateError::WrongState {
            action: "skip",
            state: DeliveryState::Pending
        })
    );
    assert!(
        finish(
            &store,
            &first[0],
            "hub-1",
            Finish::Exception {
                error: json!({"code": "period_closed"}).into()
            },
            11
        )
        .await
    );

    let corrected = json!({"kind": "erp_return_order", "key": "a:ro", "fixed": true});
    let retried = store
        .operate_delivery(
            id,
            Operation::Retry {
                payload: Some(corrected.clone().into()),
            },
            "alice",
            "period reopened",
            at(12),
        )
        .await
        .expect("operate")
        .expect("retry applies to an exception");
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.attempts, 0);
    let again = claim(&store, &claim_at(12, "hub-1", &[("erp", 5)])).await;
    assert_eq!(keys(&again), vec!["a:ro"]);
    assert_eq!(again[0].delivery.payload.to_value(), corrected);
    assert!(
        finish(
            &store,
            &again[0],
            "hub-1",
            Finish::Exception {
                error: json!({"code": "unknown_sku"}).into()
            },
            13
        )
        .await
    );
    let skipped = store
        .operate_delivery(id, Operation::Skip, "bob", "posted by hand", at(14))
        .await
        .expect("operate")
        .expect("skip");
    assert_eq!(skipped.state, DeliveryState::Skipped);
    // A skipped prerequisite lets the dependant go, with no result.
    let memo = claim(&store, &claim_at(15, "hub-1", &[("erp", 5)])).await;
    assert_eq!(keys(&memo), vec!["a:cm"]);
    assert_eq!(memo[0].prerequisites.get("erp_return_order"), Some(&None));
    let cancelled = store
        .operate_delivery(
            memo[0].delivery.id,
            Operation::Cancel,
            "bob",
            "credited in the ERP",
            at(16),
        )
        .await
        .expect("operate")
        .expect("cancel");
    assert_eq!(cancelled.state, DeliveryState::Cancelled);
    assert_eq!(
        store
            .operate_delivery(9_999_999, Operation::Cancel, "bob", "x", at(16))
            .await
            .expect("operate"),
        Err(OperateError::NotFound(9_999_999))
    );

    let audit = store.delivery_audit(id).await.expect("audit");
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("retry_with_correction", "alice", "period reopened"),
            ("skip", "bob", "posted by hand")
        ]
    );
    assert_eq!(audit[0].detail.to_value()["payload"], corrected);
    assert_eq!(audit[0].detail.to_value()["from"], "exception");
    assert_eq!(audit[1].at, at(14));
}

async fn cancelled_prerequisite_sends_dependants_to_the_exception_queue(store: AnyStore) {
    let a = Uuid::now_v7();
    commit_ok(
        &store,
        vec![with_deliveries(
            append(a, 0, 1),
            vec![
                delivery("wms", "wms_expected_receipt", "a:asn", &[]),
                delivery("erp", "erp_credit_memo", "a:cm", &["wms_expected_receipt"]),
            ],
        )],
    )
    .await;
    let asn = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list")[0]
        .id;
    store
        .operate_delivery(asn, Operation::Cancel, "ops", "not needed", at(5))
        .await
        .expect("operate")
        .expect("cancel");
    assert!(
        claim(&store, &claim_at(10, "hub-1", &[("erp", 5), ("wms", 5)]))
            .await
            .is_empty()
    );
    let blocked = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Exception),
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].delivery_key, "a:cm");
    assert_eq!(
        blocked[0]
            .last_error
            .as_ref()
            .map(|e| e.to_value()["code"].clone()),
        Some(json!("prerequisite_cancelled"))
    );
}

async fn rows_that_cannot_go_do_not_fill_the_claim_window(store: AnyStore) {
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();
    commit_ok(
        &store,
        vec![
            with_deliveries(
                append(a, 0, 1),
                vec![
                    delivery("portal", "portal_status", "a:1", &[]),
                    delivery("portal", "portal_status", "a:2", &[]),
                    delivery("portal", "portal_status", "a:3", &[]),
                    delivery("erp", "erp_return_order", "a:ro", &[]),
                ],
            ),
            with_deliveries(
                append(b, 0, 1),
                vec![delivery("portal", "portal_status", "b:1", &[])],
            ),
        ],
    )
    .await;
    let mut one = claim_at(10, "hub-1", &[("portal", 1)]);
    one.scan_limit = 1;
    assert_eq!(keys(&claim(&store, &one).await), vec!["a:1"]);
    // a:1 is leased, a:2 and a:3 wait behind it, the ERP has no quota: with
    // a window of one row, b:1 must still be found.
    one.quota.insert("erp".to_owned(), 0);
    assert_eq!(keys(&claim(&store, &one).await), vec!["b:1"]);
}

// ---------------------------------------------------------------------------
// Master data

fn master_row(kind: &str, key: &str, body: serde_json::Value) -> NewMasterRow {
    NewMasterRow {
        kind: kind.to_owned(),
        key: key.to_owned(),
        body: body.into(),
    }
}

fn master_batch(
    expected: Option<i64>,
    rows: Vec<NewMasterRow>,
    deletes: &[(&str, &str)],
) -> MasterBatch {
    let deletes = deletes
        .iter()
        .map(|(kind, key)| MasterKey {
            kind: (*kind).to_owned(),
            key: (*key).to_owned(),
        })
        .collect();
    MasterBatch::new(expected, rows, deletes).expect("a valid batch")
}

async fn put_master(store: &AnyStore, batch: &MasterBatch, seconds: i64) -> i64 {
    store
        .put_master(batch, at(seconds))
        .await
        .expect("put master data")
        .expect("no revision mismatch")
}

/// (kind, key, body, revision) of every stored record, in load order.
async fn master_contents(store: &AnyStore) -> (i64, Vec<(String, String, serde_json::Value, i64)>) {
    let snapshot = store.load_master().await.expect("load master data");
    let rows = snapshot
        .rows
        .iter()
        .map(|r: &MasterRow| (r.kind.clone(), r.key.clone(), r.body.to_value(), r.revision))
        .collect();
    (snapshot.revision, rows)
}

async fn master_records_load_as_they_were_put(store: AnyStore) {
    let empty = store.load_master().await.expect("load");
    assert_eq!((empty.revision, empty.rows.len()), (0, 0));
    assert_eq!(store.master_revision().await.expect("revision"), 0);

    let sku = json!({ "sku": "DRILL-18V", "description": "Drill \"18V\" ü", "conversions": [{ "uom": "CS", "factor": "12" }] });
    let customer = json!({ "account": "C0001", "parent": null });
    // Keys that sort differently by byte and by a locale's collation: the
    // load order is byte order on both backends.
    let revision = put_master(
        &store,
        &master_batch(
            None,
            vec![
                master_row("sku", "b-2", sku.clone()),
                master_row("sku", "B-10", sku.clone()),
                master_row("customer", "C0001", customer.clone()),
                master_row(
                    "crosswalk",
                    "portal:reason:Trop petit",
                    json!({ "canonical": "SIZE_FIT" }),
                ),
            ],
            &[],
        ),
        5,
    )
    .await;
    assert_eq!(revision, 1);
    assert_eq!(store.master_revision().await.expect("revision"), 1);

    let snapshot = store.load_master().await.expect("load");
    assert_eq!(snapshot.revision, 1);
    let names: Vec<(&str, &str)> = snapshot
        .rows
        .iter()
        .map(|r| (r.kind.as_str(), r.key.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("crosswalk", "portal:reason:Trop petit"),
            ("customer", "C0001"),
            ("sku", "B-10"),
            ("sku", "b-2"),
        ]
    );
    assert_eq!(snapshot.rows[2].body.to_value(), sku);
    assert_eq!(snapshot.rows[1].body.to_value(), customer);
    assert!(
        snapshot
            .rows
            .iter()
            .all(|r| r.revision == 1 && r.updated_at == at(5))
    );
}

async fn master_upsert_replaces_and_every_write_bumps_the_revision(store: AnyStore) {
    let first = master_batch(
        None,
        vec![
            master_row("sku", "A", json!({ "v": 1 })),
            master_row("sku", "B", json!({ "v": 1 })),
            master_row("site", "DC1", json!({ "v": 1 })),
        ],
        &[],
    );
    assert_eq!(put_master(&store, &first, 1).await, 1);

    // Replace A whole (its old field goes), add C, delete the site and a
    // record that never existed.
    let second = master_batch(
        Some(1),
        vec![
            master_row("sku", "A", json!({ "w": 2 })),
            master_row("sku", "C", json!({ "v": 2 })),
        ],
        &[("site", "DC1"), ("site", "NOWHERE")],
    );
    assert_eq!(put_master(&store, &second, 2).await, 2);
    let (revision, rows) = master_contents(&store).await;
    assert_eq!(revision, 2);
    assert_eq!(
        rows,
        [
            ("sku".to_owned(), "A".to_owned(), json!({ "w": 2 }), 2),
            ("sku".to_owned(), "B".to_owned(), json!({ "v": 1 }), 1),
            ("sku".to_owned(), "C".to_owned(), json!({ "v": 2 }), 2),
        ]
    );
    let loaded = store.load_master().await.expect("load");
    assert_eq!(loaded.rows[0].updated_at, at(2));
    assert_eq!(
        loaded.rows[1].updated_at,
        at(1),
        "untouched rows keep their stamp"
    );

    // Writing the same content again is still a write: a new revision.
    let again = master_batch(None, vec![master_row("sku", "A", json!({ "w": 2 }))], &[]);
    assert_eq!(put_master(&store, &again, 3).await, 3);
    // An empty batch writes nothing and keeps the revision.
    assert_eq!(
        put_master(&store, &master_batch(None, vec![], &[]), 4).await,
        3
    );
    assert_eq!(
        put_master(&store, &master_batch(Some(3), vec![], &[]), 4).await,
        3
    );
    assert_eq!(store.master_revision().await.expect("revision"), 3);
}

async fn master_batch_is_all_or_nothing(store: AnyStore) {
    put_master(
        &store,
        &master_batch(
            None,
            vec![master_row("sku", "KEEP", json!({ "v": 1 }))],
            &[],
        ),
        1,
    )
    .await;
    // More rows than one statement takes, so the batch spans several
    // statements, the last row of which the database refuses (a body must be
    // a JSON object). Nothing of it may remain, the update and the deletion
    // included.
    let mut rows: Vec<NewMasterRow> = (0..600)
        .map(|n| master_row("order", &format!("SO-{n:04}"), json!({ "n": n })))
        .collect();
    rows.push(master_row("sku", "KEEP", json!({ "v": 2 })));
    rows.push(master_row(
        "order",
        "SO-BAD",
        json!(["not", "an", "object"]),
    ));
    let failed = store
        .put_master(&master_batch(Some(1), rows, &[("sku", "GONE")]), at(2))
        .await;
    assert!(matches!(failed, Err(Error::Database(_))), "{failed:?}");
    let (revision, rows) = master_contents(&store).await;
    assert_eq!(revision, 1);
    assert_eq!(
        rows,
        [("sku".to_owned(), "KEEP".to_owned(), json!({ "v": 1 }), 1)]
    );
    assert_eq!(store.master_revision().await.expect("revision"), 1);

    // The same batch without the bad row goes through whole.
    let rows: Vec<NewMasterRow> = (0..600)
        .map(|n| master_row("order", &format!("SO-{n:04}"), json!({ "n": n })))
        .collect();
    assert_eq!(
        put_master(&store, &master_batch(Some(1), rows, &[("sku", "KEEP")]), 3).await,
        2
    );
    let (revision, rows) = master_contents(&store).await;
    assert_eq!(revision, 2);
    assert_eq!(rows.len(), 600);
    assert!(
        rows.iter()
            .all(|(kind, _, _, rev)| kind == "order" && *rev == 2)
    );
}

async fn master_write_with_a_stale_revision_writes_nothing(store: AnyStore) {
    put_master(
        &store,
        &master_batch(
            None,
            vec![master_row("vendor", "V1", json!({ "v": 1 }))],
            &[],
        ),
        1,
    )
    .await;
    put_master(
        &store,
        &master_batch(
            Some(1),
            vec![master_row("vendor", "V2", json!({ "v": 1 }))],
            &[],
        ),
        2,
    )
    .await;
    // A writer that validated against revision 1 lost the race.
    let stale = master_batch(
        Some(1),
        vec![master_row("vendor", "V1", json!({ "v": 9 }))],
        &[("vendor", "V2")],
    );
    let outcome = store.put_master(&stale, at(3)).await.expect("put");
    assert_eq!(
        outcome,
        Err(RevisionMismatch {
            expected: 1,
            actual: 2
        })
    );
    let (revision, rows) = master_contents(&store).await;
    assert_eq!(revision, 2);
    assert_eq!(
        rows,
        [
            ("vendor".to_owned(), "V1".to_owned(), json!({ "v": 1 }), 1),
            ("vendor".to_owned(), "V2".to_owned(), json!({ "v": 1 }), 2),
        ]
    );
    // An empty batch with a stale expectation is refused as well.
    let outcome = store
        .put_master(&master_batch(Some(0), vec![], &[]), at(4))
        .await
        .expect("put");
    assert_eq!(
        outcome,
        Err(RevisionMismatch {
            expected: 0,
            actual: 2
        })
    );
}

// ---------------------------------------------------------------------------
// Lookups from outside (inbound webhooks)

/// A `LabelIssued` event as the engine writes it, with `tracking`.
fn label_event(tracking: &str) -> NewEvent {
    NewEvent {
        event_type: "LabelIssued".to_owned(),
        payload: json!({
            "type": "LabelIssued",
            "label": { "carrier": "UPS", "tracking_number": tracking, "label_ref": "L-1" },
            "issued_at": "2025-03-01T12:00:00Z",
        })
        .into(),
        ..event(1)
    }
}

/// Lookups on a return's identity (its order, its RMA number within the
/// order) find every committed stream, newest first, each once: also one
/// whose list row a backend still holds back (SQLite writes them lazily and
/// answers lookups from its table and its held rows together).
async fn streams_are_found_by_order_and_rma_as_soon_as_committed(store: AnyStore) {
    let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let request = |id, created: i64, reference: &str, order_ref: &str| {
        let mut req = append(id, 0, 1);
        req.summary.created_at = at(created);
        req.summary.reference = reference.to_owned();
        req.summary.order_ref = order_ref.to_owned();
        req
    };
    commit_ok(&store, vec![request(x, 10, "RMA-LOOK-X", "ORD-LOOK")]).await;
    // A read writes what is held back: `x` is in the table from here on.
    store
        .list_summaries(&SummaryFilter::default())
        .await
        .expect("list");
    commit_ok(
        &store,
        vec![
            request(y, 20, "RMA-LOOK-Y", "ORD-LOOK"),
            request(z, 30, "RMA-LOOK-Y", "ORD-LOOK-OTHER"),
        ],
    )
    .await;
    // `x` moves on: held back again, and still found once.
    let mut moved = append(x, 1, 1);
    moved.summary.created_at = at(10);
    moved.summary.reference = "RMA-LOOK-X".to_owned();
    moved.summary.order_ref = "ORD-LOOK".to_owned();
    commit_ok(&store, vec![moved]).await;

    let find = |by: StreamLookup<'static>, limit| {
        let store = store.clone();
        async move { store.find_streams(by, limit).await.expect("lookup") }
    };
    assert_eq!(
        find(StreamLookup::OrderRef("ORD-LOOK"), 10).await,
        vec![y, x],
        "the order's returns, newest first"
    );
    assert_eq!(find(StreamLookup::OrderRef("ORD-LOOK"), 1).await, vec![y]);
    assert_eq!(
        find(StreamLookup::Reference("RMA-LOOK-Y"), 10).await,
        vec![z, y]
    );
    let in_order = |order_ref: &'static str| StreamLookup::ReferenceInOrder {
        reference: "RMA-LOOK-Y",
        order_ref,
    };
    assert_eq!(find(in_order("ORD-LOOK"), 2).await, vec![y]);
    assert_eq!(find(in_order("ORD-LOOK-OTHER"), 2).await, vec![z]);
    assert!(find(in_order("ORD-NONE"), 2).await.is_empty());
}

async fn streams_are_found_by_reference_and_label_tracking_number(store: AnyStore) {
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // `a` gets a label; `b` gets the same tracking number later (a carrier
    // reusing numbers), `c` an event of another type carrying the same
    // text, which must not count.
    let mut first = append(a, 0, 1);
    first.events = vec![label_event("1Z-TRACK-1")];
    // Test references are derived from the id's first digits, which ids
    // made in the same millisecond share: this one is unique.
    first.summary.reference = "RMA-LOOKUP-A".to_owned();
    commit_ok(&store, vec![first]).await;
    let mut second = append(b, 0, 1);
    second.events = vec![label_event("1Z-TRACK-1")];
    commit_ok(&store, vec![second]).await;
    let mut other = append(c, 0, 1);
    other.events[0].payload =
        json!({ "type": "Other", "label": { "tracking_number": "1Z-TRACK-2" } }).into();
    commit_ok(&store, vec![other]).await;

    let by_tracking = |t: &'static str, limit| {
        let store = store.clone();
        async move {
            store
                .find_streams(StreamLookup::TrackingNumber(t), limit)
                .await
                .expect("lookup")
        }
    };
    assert_eq!(
        by_tracking("1Z-TRACK-1", 2).await,
        vec![b, a],
        "newest label first"
    );
    assert_eq!(by_tracking("1Z-TRACK-1", 1).await, vec![b]);
    assert!(
        by_tracking("1Z-TRACK-2", 2).await.is_empty(),
        "only label events count"
    );
    assert!(by_tracking("1z-track-1", 2).await.is_empty(), "exact match");

    let found = store
        .find_streams(StreamLookup::Reference("RMA-LOOKUP-A"), 2)
        .await
        .expect("lookup");
    assert_eq!(found, vec![a]);
    let none = store
        .find_streams(StreamLookup::Reference("RMA-NOPE"), 2)
        .await
        .expect("lookup");
    assert!(none.is_empty());
}

// ---------------------------------------------------------------------------
// Checkpoints (the Kafka publisher's resume position)

async fn checkpoints_start_absent_and_keep_the_last_save(store: AnyStore) {
    use backhaul_store::CheckpointStore;
    assert_eq!(store.load_checkpoint("kafka:a").await.expect("load"), None);
    store.save_checkpoint("kafka:a", 7).await.expect("save");
    store.save_checkpoint("kafka:b", 3).await.expect("save");
    store
        .save_checkpoint("kafka:a", 12)
        .await
        .expect("save again");
    assert_eq!(
        store.load_checkpoint("kafka:a").await.expect("load"),
        Some(12)
    );
    assert_eq!(
        store.load_checkpoint("kafka:b").await.expect("load"),
        Some(3)
    );
}
