//! The outbox and the dispatcher through their public interfaces, on both
//! storage backends: ordering within a return, parallelism across returns,
//! retries, dead letters, the exception queue and operator fixes,
//! throttling (counted, not timed), duplicate and late inbound messages, and
//! redelivery after a lost lease. Time is a manual clock; the dispatcher is
//! driven with `run_once`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backhaul_domain::Command;
use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::model::{Label, ReturnRequest};
use backhaul_domain::values::{ExternalRef, Money, ReturnId};
use backhaul_engine::{
    BoxFuture, CommandMeta, DeliveryPolicy, DeliveryRequest, Dispatcher, DispatcherConfig, Engine,
    EngineConfig, Idempotency, Inbox, ManualClock, Received, Sink, SinkError,
};
use backhaul_store::{
    AnyStore, ClaimRequest, DeliveryFilter, DeliveryState, DeliveryStore, Operation, PgStore,
    SqliteStore, SqliteSync,
};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ---------------------------------------------------------------------------
// A scriptable target system

/// What every fake target saw and will answer, shared by the fake sinks.
#[derive(Default)]
struct Script {
    /// Every call in arrival order: (kind, key, return, attempt).
    calls: Vec<(ActionKind, String, ReturnId, i32)>,
    /// What was created, by key: a repeated key gets the same answer.
    created: HashMap<String, ActionResult>,
    /// Failures to give before succeeding, per kind.
    failures: HashMap<ActionKind, VecDeque<SinkError>>,
    /// A rejection given every time, per kind, until removed.
    refusals: HashMap<ActionKind, SinkError>,
    /// Status versions the portal got per return.
    statuses: BTreeMap<ReturnId, Vec<i64>>,
    /// The return order each credit memo referred to.
    memo_refs: Vec<Option<String>>,
}

#[derive(Clone)]
struct FakeSink {
    target: Target,
    system: ExternalRef,
    script: Arc<Mutex<Script>>,
    /// When set, every call waits here: a call only ends once as many calls
    /// as the barrier counts are in flight at once.
    barrier: Option<Arc<tokio::sync::Barrier>>,
}

impl Sink for FakeSink {
    fn target(&self) -> Target {
        self.target
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            if let Some(barrier) = &self.barrier {
                barrier.wait().await;
            }
            let action = request.action;
            let mut s = self.script.lock().unwrap();
            s.calls.push((
                action.kind,
                request.key.to_owned(),
                action.return_id,
                request.attempt,
            ));
            if let Some(error) = s
                .failures
                .get_mut(&action.kind)
                .and_then(VecDeque::pop_front)
            {
                return Err(error);
            }
            if let Some(error) = s.refusals.get(&action.kind) {
                return Err(error.clone());
            }
            if let Some(found) = s.created.get(request.key) {
                return Ok(found.clone());
            }
            let n = s.created.len() + 1;
            let number = |prefix: &str| ExternalRef::parse(&format!("{prefix}-{n}")).unwrap();
            let result = match action.kind {
                ActionKind::ErpReturnOrder => ActionResult::Document {
                    number: number("RO"),
                    amount: None,
                },
                ActionKind::ErpInventoryAdjustment => ActionResult::Document {
                    number: number("IA"),
                    amount: None,
                },
                ActionKind::ErpSupplierClaim => ActionResult::Document {
                    number: number("SC"),
                    amount: None,
                },
                ActionKind::ErpRepairOrder => ActionResult::Document {
                    number: number("RP"),
                    amount: None,
                },
                ActionKind::ErpReplacementOrder => ActionResult::Document {
                    number: number("RS"),
                    amount: None,
                },
                ActionKind::ErpCreditMemo => {
                    let reference = request
                        .prerequisite_number(ActionKind::ErpReturnOrder)
                        .map(ToString::to_string);
                    s.memo_refs.push(reference);
                    let total: Decimal = action
                        .lines
                        .iter()
                        .filter_map(|l| l.amount.map(|m| m.amount()))
                        .sum();
                    let currency = action.lines[0].amount.unwrap().currency();
                    ActionResult::Document {
                        number: number("CM"),
                        amount: Some(Money::new(total, currency).unwrap()),
                    }
                }
                ActionKind::CarrierLabel => ActionResult::Label(Label {
                    carrier: ExternalRef::parse("SIMX").unwrap(),
                    tracking_number: number("T"),
                    label_ref: number("L"),
                    expires_at: None,
                }),
                ActionKind::PortalStatus => {
                    let version = action.status.as_ref().unwrap().version;
                    s.statuses
                        .entry(action.return_id)
                        .or_default()
                        .push(version);
                    ActionResult::Accepted
                }
                ActionKind::WmsExpectedReceipt
                | ActionKind::WmsCancelExpectedReceipt
                | ActionKind::ErpCancelReturnOrder
                | ActionKind::CarrierVoidLabel
                | ActionKind::EdiRmaNotification => ActionResult::Accepted,
            };
            s.created.insert(request.key.to_owned(), result.clone());
            Ok(result)
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

// ---------------------------------------------------------------------------
// Harness

struct Hub {
    engine: Engine,
    store: AnyStore,
    clock: ManualClock,
    script: Arc<Mutex<Script>>,
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: Option<tempfile::TempDir>,
}

fn start_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

struct Setup {
    targets: Vec<Target>,
    policy: DeliveryPolicy,
    barrier: Option<usize>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            targets: Target::ALL.to_vec(),
            policy: DeliveryPolicy {
                rate_per_sec: 1000.0,
                burst: 1000,
                concurrency: 64,
                ..DeliveryPolicy::default()
            },
            barrier: None,
        }
    }
}

async fn sqlite(setup: Setup) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    hub(store, Some(dir), setup)
}

async fn postgres(setup: Setup) -> Hub {
    let admin = std::env::var("BACKHAUL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = PgStore::fresh_database(&admin, "backhaul_dispatch_test")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for these tests: {e}"));
    hub(
        AnyStore::Postgres(PgStore::connect(&url, 4).await.unwrap()),
        None,
        setup,
    )
}

fn hub(store: AnyStore, dir: Option<tempfile::TempDir>, setup: Setup) -> Hub {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let clock = ManualClock::new(start_at());
    let script = Arc::new(Mutex::new(Script::default()));
    let barrier = setup
        .barrier
        .map(|n| Arc::new(tokio::sync::Barrier::new(n)));
    let sinks: Vec<(Arc<dyn Sink>, DeliveryPolicy)> = setup
        .targets
        .iter()
        .map(|t| {
            let sink: Arc<dyn Sink> = Arc::new(FakeSink {
                target: *t,
                system: ExternalRef::parse(t.as_str()).unwrap(),
                script: Arc::clone(&script),
                barrier: barrier.clone(),
            });
            // Each connector skips the kinds of its own target.
            let mut policy = setup.policy.clone();
            policy.skip_kinds.retain(|k| k.target() == *t);
            (sink, policy)
        })
        .collect();
    let mut config = EngineConfig::default();
    config.connect(&sinks);
    let engine = Engine::start(
        store.clone(),
        config,
        Arc::new(clock.clone()),
        &tracker,
        shutdown.child_token(),
    );
    let dispatcher = Dispatcher::new(engine.clone(), DispatcherConfig::default(), sinks).unwrap();
    Hub {
        engine,
        store,
        clock,
        script,
        dispatcher,
        shutdown,
        tracker,
        _dir: dir,
    }
}

impl Hub {
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Runs the dispatcher until nothing more can go at this instant.
    async fn settle(&self) {
        for _ in 0..50 {
            if self.dispatcher.run_once().await.unwrap().claimed == 0 {
                return;
            }
        }
        panic!("the dispatcher did not settle");
    }

    async fn approved_return(&self, qty: &str) -> ReturnId {
        let created = self
            .engine
            .create(request(qty), meta("create"))
            .await
            .unwrap();
        let id = created.return_id;
        self.run(id, json!({"command": "approve"}), "approve").await;
        id
    }

    async fn run(&self, id: ReturnId, command: serde_json::Value, key: &str) {
        let command: Command = serde_json::from_value(command).unwrap();
        self.engine
            .execute(id, command, meta(&format!("{id}-{key}")))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }

    async fn status(&self, id: ReturnId) -> String {
        let body = self.engine.get(id).await.unwrap().unwrap().to_value();
        body["status"].as_str().unwrap().to_owned()
    }

    async fn deliveries(&self, state: DeliveryState) -> Vec<backhaul_store::Delivery> {
        self.store
            .list_deliveries(&DeliveryFilter {
                state: Some(state),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap()
    }

    fn calls(&self, kind: ActionKind) -> Vec<(String, ReturnId, i32)> {
        self.script
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.0 == kind)
            .map(|c| (c.1.clone(), c.2, c.3))
            .collect()
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

fn unavailable(retry_after: Option<u64>) -> SinkError {
    SinkError::Technical {
        code: "unavailable".into(),
        message: "503 from target".into(),
        status: Some(503),
        retry_after: retry_after.map(Duration::from_secs),
    }
}

/// Receives, inspects and restocks every unit of the return.
async fn process_units(h: &Hub, id: ReturnId, qty: &str) {
    h.run(
        id,
        json!({"command": "record_receipt", "receipt_ref": format!("RCPT-{}", &id.to_string()[..8]),
               "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": qty}]}),
        "receipt",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": qty, "condition": "A"}]}),
        "inspect",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_disposition", "dispositions": [{"line_no": 1, "quantity": qty, "disposition": "restock"}]}),
        "dispose",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Checks

/// Approval calls for the return order, the expected receipt and a label;
/// their results come back (label issued, return order linked); after the
/// disposition the inventory adjustment and the credit memo follow, the
/// memo referring to the return order, and the settlement is recorded.
/// Status updates reach the portal in version order.
async fn actions_flow_in_order_and_results_come_back(h: Hub) {
    let id = h.approved_return("2").await;
    h.settle().await;
    assert_eq!(h.calls(ActionKind::ErpReturnOrder).len(), 1);
    assert_eq!(h.calls(ActionKind::WmsExpectedReceipt).len(), 1);
    assert_eq!(h.calls(ActionKind::CarrierLabel).len(), 1);
    assert_eq!(
        h.status(id).await,
        "label_issued",
        "the label came back as a command"
    );
    let summary = h.engine.get(id).await.unwrap().unwrap().to_value();
    let docs = summary["documents"].as_array().unwrap();
    assert_eq!(docs[0]["kind"], "erp_return_order");
    assert_eq!(docs[0]["system"], "erp");

    process_units(&h, id, "2").await;
    h.settle().await;
    assert_eq!(h.calls(ActionKind::ErpInventoryAdjustment).len(), 1);
    assert_eq!(h.calls(ActionKind::ErpCreditMemo).len(), 1);
    let return_order = docs[0]["number"].as_str().unwrap().to_owned();
    assert_eq!(h.script.lock().unwrap().memo_refs, vec![Some(return_order)]);
    assert_eq!(h.status(id).await, "settled");
    let summary = h.engine.get(id).await.unwrap().unwrap().to_value();
    assert_eq!(
        summary["lines"][0]["credited"], "22.00",
        "price plus tax for 2 units"
    );

    let statuses = h.script.lock().unwrap().statuses[&id].clone();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(statuses, sorted, "status updates in version order");
    assert!(statuses.len() >= 6, "{statuses:?}");
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

/// While a target fails for one return, that return's later deliveries to
/// it wait; another return's deliveries go on.
async fn failure_blocks_its_lane_not_other_returns(h: Hub) {
    h.script.lock().unwrap().failures.insert(
        ActionKind::ErpReturnOrder,
        VecDeque::from([unavailable(None)]),
    );
    let a = h.approved_return("1").await;
    h.settle().await;
    let b = h.approved_return("1").await;
    h.settle().await;
    // a's return order failed once and waits for its retry; b's went.
    let ro = h.calls(ActionKind::ErpReturnOrder);
    assert_eq!(ro.iter().filter(|c| c.1 == a).count(), 1);
    assert_eq!(ro.iter().filter(|c| c.1 == b).count(), 1);
    assert_eq!(h.status(b).await, "label_issued");
    let pending = h.deliveries(DeliveryState::Pending).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, "erp_return_order");
    h.clock.advance(chrono::Duration::minutes(2));
    h.settle().await;
    let ro = h.calls(ActionKind::ErpReturnOrder);
    assert_eq!(
        ro.iter()
            .filter(|c| c.1 == a)
            .map(|c| c.2)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

/// Deliveries of different returns are in flight together: the fake target
/// only answers once four calls are waiting at once.
async fn returns_are_delivered_in_parallel(h: Hub) {
    for _ in 0..4 {
        h.engine
            .create(request("1"), meta(&uuid::Uuid::now_v7().to_string()))
            .await
            .unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(60), h.dispatcher.run_once())
        .await
        .expect("four deliveries were in flight at once")
        .unwrap();
    assert_eq!(report.delivered, 4);
    assert!(h.dispatcher.stats()[&Target::Portal].max_in_flight >= 4);
    h.stop().await;
}

/// Technical failures are retried with backoff, at least as late as the
/// target's Retry-After, and then succeed.
async fn technical_failure_retries_then_succeeds(h: Hub) {
    h.script.lock().unwrap().failures.insert(
        ActionKind::CarrierLabel,
        VecDeque::from([unavailable(Some(120)), unavailable(None)]),
    );
    let id = h.approved_return("1").await;
    h.settle().await;
    let label = h
        .store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.kind == "carrier_label")
        .unwrap();
    assert_eq!(label.state, DeliveryState::Pending);
    assert!(
        label.next_attempt_at >= start_at() + chrono::Duration::seconds(120),
        "Retry-After honoured: {}",
        label.next_attempt_at
    );
    assert_eq!(label.last_error.unwrap().to_value()["code"], "unavailable");
    h.clock.advance(chrono::Duration::seconds(119));
    h.settle().await;
    assert_eq!(
        h.calls(ActionKind::CarrierLabel).len(),
        1,
        "not before Retry-After"
    );
    h.clock.advance(chrono::Duration::minutes(10));
    h.settle().await;
    h.clock.advance(chrono::Duration::minutes(10));
    h.settle().await;
    let attempts: Vec<i32> = h
        .calls(ActionKind::CarrierLabel)
        .iter()
        .map(|c| c.2)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(h.status(id).await, "label_issued");
    assert_eq!(h.dispatcher.stats()[&Target::Carrier].retried, 2);
    h.stop().await;
}

/// A target that keeps failing: after max_attempts the delivery is a dead
/// letter, visible as such; an operator retry starts it over.
async fn exhausted_retries_become_a_dead_letter(h: Hub) {
    let always: VecDeque<SinkError> = (0..3).map(|_| unavailable(None)).collect();
    h.script
        .lock()
        .unwrap()
        .failures
        .insert(ActionKind::WmsExpectedReceipt, always);
    h.approved_return("1").await;
    for _ in 0..4 {
        h.settle().await;
        h.clock.advance(chrono::Duration::minutes(5));
    }
    let dead = h.deliveries(DeliveryState::Dead).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].kind, "wms_expected_receipt");
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(
        dead[0].last_error.as_ref().unwrap().to_value()["class"],
        "technical"
    );
    assert_eq!(h.calls(ActionKind::WmsExpectedReceipt).len(), 3);

    let retried = h
        .store
        .operate_delivery(
            dead[0].id,
            Operation::Retry { payload: None },
            "ops",
            "WMS is back",
            h.engine.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.state, DeliveryState::Pending);
    h.settle().await;
    assert_eq!(h.calls(ActionKind::WmsExpectedReceipt).len(), 4);
    assert!(h.deliveries(DeliveryState::Dead).await.is_empty());
    h.stop().await;
}

/// A business rejection goes to the exception queue at once (no retries),
/// with the system, error and suggested owner; the credit memo that depends
/// on it waits; the operator fixes the data and retries; all goes through
/// and the action is audited.
async fn business_rejection_waits_for_an_operator(h: Hub) {
    h.script.lock().unwrap().refusals.insert(
        ActionKind::ErpReturnOrder,
        SinkError::Business {
            code: "period_closed".into(),
            message: "posting period 2026-11 is closed".into(),
            status: Some(422),
        },
    );
    let id = h.approved_return("1").await;
    h.settle().await;
    process_units(&h, id, "1").await;
    h.settle().await;
    let exceptions = h.deliveries(DeliveryState::Exception).await;
    assert_eq!(exceptions.len(), 1);
    let error = exceptions[0].last_error.as_ref().unwrap().to_value();
    assert_eq!(error["code"], "period_closed");
    assert_eq!(error["class"], "business");
    assert_eq!(error["suggested_owner"], "finance");
    assert_eq!(h.calls(ActionKind::ErpReturnOrder).len(), 1, "no retries");
    assert!(
        h.calls(ActionKind::ErpCreditMemo).is_empty(),
        "the memo waits for its return order"
    );
    assert_eq!(h.status(id).await, "dispositioned");

    h.script.lock().unwrap().refusals.clear();
    let mut corrected = exceptions[0].payload.to_value();
    corrected["order_ref"] = json!("SO-1-CORRECTED");
    let fixed = h
        .store
        .operate_delivery(
            exceptions[0].id,
            Operation::Retry {
                payload: Some(corrected.into()),
            },
            "alice",
            "period reopened",
            h.engine.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fixed.state, DeliveryState::Pending);
    h.settle().await;
    assert_eq!(h.status(id).await, "settled");
    assert_eq!(h.calls(ActionKind::ErpCreditMemo).len(), 1);
    let audit = h.store.delivery_audit(exceptions[0].id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "alice");
    assert_eq!(audit[0].action, "retry_with_correction");
    h.stop().await;
}

/// Rate limit 2/s with a burst of 3 and a concurrency cap of 2: counted
/// per run at fixed instants of the manual clock.
async fn throttle_is_respected(h: Hub) {
    for n in 0..10 {
        h.engine
            .create(request("1"), meta(&format!("t{n}")))
            .await
            .unwrap();
    }
    let mut delivered = Vec::new();
    for step in 0..5 {
        let mut in_step = 0;
        loop {
            let report = h.dispatcher.run_once().await.unwrap();
            assert!(report.claimed <= 2, "concurrency cap: {report:?}");
            if report.claimed == 0 {
                break;
            }
            in_step += report.delivered;
        }
        delivered.push(in_step);
        let _ = step;
        h.clock.advance(chrono::Duration::seconds(1));
    }
    // The burst of 3 first, then 2 per second.
    assert_eq!(delivered, vec![3, 2, 2, 2, 1]);
    assert!(h.dispatcher.stats()[&Target::Portal].max_in_flight <= 2);
    h.stop().await;
}

/// A duplicate inbound message is acknowledged and not applied again; a
/// late scan folds in without moving the return back.
async fn inbox_drops_duplicates_and_folds_late_events(h: Hub) {
    let id = h.approved_return("1").await;
    let inbox = Inbox::new(h.engine.clone(), "carrier-webhook");
    let scan = |m: &str, at: &str| -> Command {
        serde_json::from_value(
            json!({"command": "record_carrier_milestone", "milestone": m, "occurred_at": at}),
        )
        .unwrap()
    };
    let delivered = inbox
        .receive(
            id,
            scan("delivered", "2026-11-04T10:00:00Z"),
            "scan-2",
            "h2",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(delivered, Received::Applied(_)));
    let status_after_delivery = h.status(id).await;
    let before = h.engine.timeline(id).await.unwrap().unwrap().len();
    let again = inbox
        .receive(
            id,
            scan("delivered", "2026-11-04T10:00:00Z"),
            "scan-2",
            "h2",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(again, Received::Duplicate(_)));
    assert_eq!(h.engine.timeline(id).await.unwrap().unwrap().len(), before);
    let late = inbox
        .receive(
            id,
            scan("in_transit", "2026-11-03T08:00:00Z"),
            "scan-1",
            "h1",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(late, Received::Applied(_)));
    assert_eq!(
        h.engine.timeline(id).await.unwrap().unwrap().len(),
        before + 1,
        "the late scan is recorded"
    );
    assert_eq!(
        h.status(id).await,
        status_after_delivery,
        "and does not move the return back"
    );
    h.stop().await;
}

/// A hub that died mid-delivery leaves a leased delivery; restarted, it
/// takes its leases back and delivers again with the same key, which the
/// target answers from its record: one posting, one feedback.
async fn lost_lease_is_delivered_again_with_the_same_key(h: Hub) {
    let id = h.approved_return("1").await;
    // The "crashed" attempt: leased under this hub's name, never finished.
    let leased = h
        .store
        .claim_deliveries(&ClaimRequest {
            now: h.engine.now(),
            owner: DispatcherConfig::default().instance,
            lease_until: h.engine.now() + chrono::Duration::minutes(10),
            quota: [("erp".to_owned(), 1)].into_iter().collect(),
            scan_limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    h.settle().await;
    assert!(
        h.calls(ActionKind::ErpReturnOrder).is_empty(),
        "leased: nobody else delivers it"
    );
    assert_eq!(h.dispatcher.recover().await.unwrap(), 1);
    h.settle().await;
    // Deliver it a second time by hand, as a hub would after a lost answer.
    let ro = h.calls(ActionKind::ErpReturnOrder);
    assert_eq!(ro.len(), 1);
    assert_eq!(ro[0].0, leased[0].delivery.delivery_key);
    assert_eq!(ro[0].2, 2, "second attempt of the same delivery");
    let summary = h.engine.get(id).await.unwrap().unwrap().to_value();
    let linked = summary["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "erp_return_order")
        .count();
    assert_eq!(linked, 1);
    h.stop().await;
}

/// Units received in two parcels: the first parcel's memo is still
/// undelivered when the second parcel is dispositioned, and the second memo
/// covers only the second parcel's units.
async fn a_unit_is_never_on_two_credit_memos(h: Hub) {
    let id = h.approved_return("2").await;
    h.settle().await;
    for n in 0..2 {
        h.run(
            id,
            json!({"command": "record_receipt", "receipt_ref": format!("RCPT-{n}"),
                   "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1"}]}),
            &format!("receipt-{n}"),
        )
        .await;
        h.run(
            id,
            json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": "1", "condition": "A"}]}),
            &format!("inspect-{n}"),
        )
        .await;
        h.run(
            id,
            json!({"command": "record_disposition", "dispositions": [{"line_no": 1, "quantity": "1", "disposition": "restock"}]}),
            &format!("dispose-{n}"),
        )
        .await;
    }
    h.settle().await;
    let memos: Vec<serde_json::Value> = h
        .store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.kind == "erp_credit_memo")
        .map(|d| d.payload.to_value())
        .collect();
    assert_eq!(memos.len(), 2);
    for memo in &memos {
        assert_eq!(memo["lines"][0]["quantity"], "1", "{memo}");
        assert_eq!(memo["lines"][0]["amount"]["amount"], "11.00", "{memo}");
    }
    let summary = h.engine.get(id).await.unwrap().unwrap().to_value();
    assert_eq!(summary["lines"][0]["settled"], "2");
    assert_eq!(summary["lines"][0]["credited"], "22.00");
    assert!(h.deliveries(DeliveryState::Exception).await.is_empty());
    h.stop().await;
}

/// A target that keeps answering 429 is pacing the hub, not failing: the
/// delivery waits as long as it asks and never becomes a dead letter, and
/// the breaker stays closed.
async fn throttling_never_dead_letters(h: Hub) {
    let throttled: VecDeque<SinkError> = (0..5)
        .map(|_| SinkError::Technical {
            code: "rate_limited".into(),
            message: "429".into(),
            status: Some(429),
            retry_after: Some(Duration::from_secs(1)),
        })
        .collect();
    h.script
        .lock()
        .unwrap()
        .failures
        .insert(ActionKind::ErpReturnOrder, throttled);
    h.approved_return("1").await;
    for _ in 0..8 {
        h.settle().await;
        h.clock.advance(chrono::Duration::minutes(2));
    }
    assert!(h.deliveries(DeliveryState::Dead).await.is_empty());
    assert_eq!(
        h.calls(ActionKind::ErpReturnOrder).len(),
        6,
        "five 429s, then through"
    );
    assert_eq!(h.dispatcher.stats()[&Target::Erp].breaker, "closed");
    h.stop().await;
}

/// A return cancelled after its label: the label is voided, the warehouse
/// stops expecting it and the ERP cancels its return order, each after the
/// document it cancels exists.
async fn cancellation_undoes_what_the_systems_were_told(h: Hub) {
    let id = h.approved_return("1").await;
    h.settle().await;
    h.run(
        id,
        json!({"command": "cancel", "reason": "customer kept it"}),
        "cancel",
    )
    .await;
    h.settle().await;
    for kind in [
        ActionKind::CarrierVoidLabel,
        ActionKind::WmsCancelExpectedReceipt,
        ActionKind::ErpCancelReturnOrder,
    ] {
        assert_eq!(h.calls(kind).len(), 1, "{kind:?}");
    }
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

/// The label request was still being retried when the return was
/// cancelled: the carrier creates the label anyway, the hub records it on
/// the cancelled return and voids it, so no live label is left behind.
async fn a_label_arriving_after_cancellation_is_voided(h: Hub) {
    h.script.lock().unwrap().failures.insert(
        ActionKind::CarrierLabel,
        VecDeque::from([unavailable(None)]),
    );
    let id = h.approved_return("1").await;
    h.settle().await;
    h.run(
        id,
        json!({"command": "cancel", "reason": "customer kept it"}),
        "cancel",
    )
    .await;
    assert!(
        h.calls(ActionKind::CarrierVoidLabel).is_empty(),
        "no label to void yet"
    );
    h.clock.advance(chrono::Duration::minutes(5));
    h.settle().await;
    h.settle().await;
    let label = &h.calls(ActionKind::CarrierLabel);
    assert_eq!(label.len(), 2);
    let voids = h.calls(ActionKind::CarrierVoidLabel);
    assert_eq!(voids.len(), 1, "the late label is voided");
    assert_eq!(h.status(id).await, "cancelled");
    assert!(h.deliveries(DeliveryState::Exception).await.is_empty());
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

/// An approved return nobody ships: the scheduler expires it once its
/// authorisation ran out (not before), and the outbox then cancels its
/// expected receipt and ERP return order.
async fn the_scheduler_expires_returns_nobody_ships(h: Hub) {
    let created = h.engine.create(request("1"), meta("create")).await.unwrap();
    let id = created.return_id;
    let deadline = (h.engine.now() + chrono::Duration::days(14)).to_rfc3339();
    h.run(
        id,
        json!({"command": "approve", "expires_at": deadline}),
        "approve",
    )
    .await;
    h.settle().await;
    let expirer = backhaul_engine::Expirer::new(h.engine.clone());
    assert_eq!(expirer.run_once().await.unwrap(), 0, "not due yet");
    h.clock.advance(chrono::Duration::days(15));
    assert_eq!(expirer.run_once().await.unwrap(), 1);
    assert_eq!(h.status(id).await, "expired");
    assert_eq!(expirer.run_once().await.unwrap(), 0, "expired once");
    h.settle().await;
    assert_eq!(h.calls(ActionKind::ErpCancelReturnOrder).len(), 1);
    assert_eq!(h.calls(ActionKind::WmsCancelExpectedReceipt).len(), 1);
    h.stop().await;
}

/// Units returned to two vendors, refurbished and replaced: the ERP is
/// asked for a claim per vendor, a repair order and a replacement order,
/// each after the return order, and each number comes back linked on the
/// return as its kind of document.
async fn disposition_documents_are_asked_for_and_linked(h: Hub) {
    let id = h.approved_return("4").await;
    h.settle().await;
    h.run(
        id,
        json!({"command": "record_receipt", "receipt_ref": "RCPT-DOCS",
               "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "4"}]}),
        "receipt",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": "4", "condition": "X"}]}),
        "inspect",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_disposition", "dispositions": [
            {"line_no": 1, "quantity": "1", "disposition": "vendor_return", "vendor": "V-ONE"},
            {"line_no": 1, "quantity": "1", "disposition": "vendor_return", "vendor": "V-TWO"},
            {"line_no": 1, "quantity": "1", "disposition": "refurbish"},
            {"line_no": 1, "quantity": "1", "disposition": "replacement"}]}),
        "dispose",
    )
    .await;
    h.settle().await;

    let claims = h.calls(ActionKind::ErpSupplierClaim);
    assert_eq!(claims.len(), 2, "one claim per vendor");
    assert_ne!(claims[0].0, claims[1].0, "each claim has its own key");
    assert_eq!(h.calls(ActionKind::ErpRepairOrder).len(), 1);
    assert_eq!(h.calls(ActionKind::ErpReplacementOrder).len(), 1);
    let summary = h.engine.get(id).await.unwrap().unwrap().to_value();
    let mut kinds: Vec<&str> = summary["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "credit_memo",
            "erp_return_order",
            "inventory_adjustment",
            "repair_order",
            "replacement_order",
            "supplier_claim",
            "supplier_claim",
        ]
    );
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

/// An ERP that takes no inventory adjustments and no supplier claims
/// (`delivery.skip_kinds`): the hub writes no delivery for them, so nothing
/// waits in the exception queue, and the credit memo and the other
/// documents go as before.
async fn skipped_kinds_are_not_written_to_the_outbox(h: Hub) {
    let id = h.approved_return("4").await;
    h.settle().await;
    h.run(
        id,
        json!({"command": "record_receipt", "receipt_ref": "RCPT-SKIP",
               "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "4"}]}),
        "receipt",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_inspection", "inspections": [{"line_no": 1, "quantity": "4", "condition": "X"}]}),
        "inspect",
    )
    .await;
    h.run(
        id,
        json!({"command": "record_disposition", "dispositions": [
            {"line_no": 1, "quantity": "2", "disposition": "vendor_return", "vendor": "V-ONE"},
            {"line_no": 1, "quantity": "2", "disposition": "refurbish"}]}),
        "dispose",
    )
    .await;
    h.settle().await;

    assert!(h.calls(ActionKind::ErpSupplierClaim).is_empty());
    assert!(h.calls(ActionKind::ErpInventoryAdjustment).is_empty());
    assert_eq!(h.calls(ActionKind::ErpRepairOrder).len(), 1);
    assert_eq!(h.calls(ActionKind::ErpCreditMemo).len(), 1);
    let kinds: BTreeSet<String> = h
        .store
        .list_deliveries(&backhaul_store::DeliveryFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|d| d.kind.clone())
        .collect();
    assert!(
        !kinds.contains("erp_supplier_claim") && !kinds.contains("erp_inventory_adjustment"),
        "{kinds:?}"
    );
    assert!(h.deliveries(DeliveryState::Exception).await.is_empty());
    assert!(h.deliveries(DeliveryState::Pending).await.is_empty());
    h.stop().await;
}

fn skipping() -> Setup {
    let mut setup = Setup::default();
    setup.policy.skip_kinds = [
        ActionKind::ErpSupplierClaim,
        ActionKind::ErpInventoryAdjustment,
    ]
    .into();
    setup
}

macro_rules! on_both_backends {
    ($($check:ident => $setup:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::sqlite($setup).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::postgres($setup).await).await;
                }
            )*
        }
    };
}

fn throttled() -> Setup {
    Setup {
        targets: vec![Target::Portal],
        policy: DeliveryPolicy {
            rate_per_sec: 2.0,
            burst: 3,
            concurrency: 2,
            ..DeliveryPolicy::default()
        },
        barrier: None,
    }
}

fn parallel() -> Setup {
    Setup {
        targets: vec![Target::Portal],
        barrier: Some(4),
        ..Setup::default()
    }
}

fn retries(max_attempts: i32) -> Setup {
    Setup {
        policy: DeliveryPolicy {
            max_attempts,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
            rate_per_sec: 1000.0,
            burst: 1000,
            concurrency: 64,
            ..DeliveryPolicy::default()
        },
        ..Setup::default()
    }
}

on_both_backends!(
    actions_flow_in_order_and_results_come_back => super::Setup::default(),
    disposition_documents_are_asked_for_and_linked => super::Setup::default(),
    failure_blocks_its_lane_not_other_returns => super::retries(8),
    returns_are_delivered_in_parallel => super::parallel(),
    technical_failure_retries_then_succeeds => super::retries(8),
    exhausted_retries_become_a_dead_letter => super::retries(3),
    business_rejection_waits_for_an_operator => super::Setup::default(),
    throttle_is_respected => super::throttled(),
    inbox_drops_duplicates_and_folds_late_events => super::Setup::default(),
    lost_lease_is_delivered_again_with_the_same_key => super::Setup::default(),
    a_unit_is_never_on_two_credit_memos => super::Setup::default(),
    throttling_never_dead_letters => super::retries(2),
    cancellation_undoes_what_the_systems_were_told => super::Setup::default(),
    a_label_arriving_after_cancellation_is_voided => super::retries(8),
    the_scheduler_expires_returns_nobody_ships => super::Setup::default(),
    skipped_kinds_are_not_written_to_the_outbox => super::skipping(),
);
