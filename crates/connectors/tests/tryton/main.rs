//! The Tryton connector against a real Tryton 8 server: `tools/tryton/serve`
//! restores a seeded database (a company, a chart of accounts, products,
//! customers, and shipped and invoiced sales) and starts `trytond` on
//! loopback. Each test takes its own original sale, so they share one
//! server; they run one at a time because Tryton on SQLite serialises
//! writers anyway.
//!
//! Under `CI=true` a server that cannot be started fails the tests; outside
//! CI (no Python, no network for the first `pip install`) they say so and
//! pass without running.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::{Action, ActionKind, ActionResult};
use backhaul_engine::{
    CommandMeta, DeliveryPolicy, DeliveryRequest, Dispatcher, DispatcherConfig, Engine,
    EngineConfig, ManualClock, Sink, SinkError,
};
use backhaul_master::MasterData;
use backhaul_store::{AnyStore, SqliteStore, SqliteSync};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::harness::{Tryton, tryton};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// An action of `kind` for `rma` against `order` of `customer`.
fn action(kind: ActionKind, rma: &str, customer: &str, order: &str, lines: Value) -> Action {
    serde_json::from_value(json!({
        "kind": kind,
        "return_id": Uuid::now_v7(),
        "rma_number": rma,
        "customer": customer,
        "order_ref": order,
        "site": "WH",
        "lines": lines,
    }))
    .unwrap()
}

type Prerequisites = BTreeMap<ActionKind, Option<ActionResult>>;

async fn deliver(
    sink: &dyn Sink,
    action: &Action,
    key: &str,
    prerequisites: &Prerequisites,
) -> Result<ActionResult, SinkError> {
    sink.deliver(DeliveryRequest {
        delivery_id: 1,
        key,
        attempt: 1,
        action,
        prerequisites,
        correlation_id: Uuid::now_v7(),
        master: &MasterData::empty(),
    })
    .await
}

fn number(result: &ActionResult) -> String {
    match result {
        ActionResult::Document { number, .. } => number.to_string(),
        other => panic!("expected a document, got {other:?}"),
    }
}

fn after_return_order(result: &ActionResult) -> Prerequisites {
    BTreeMap::from([(ActionKind::ErpReturnOrder, Some(result.clone()))])
}

// ---------------------------------------------------------------------------
// The whole lifecycle through the hub

struct Hub {
    engine: Engine,
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start(t: &Tryton) -> Hub {
        Hub::start_skipping(t, &[]).await
    }

    /// The hub with Tryton as its ERP, whose connector is not given the
    /// kinds in `skip` (`delivery.skip_kinds`).
    async fn start_skipping(t: &Tryton, skip: &[ActionKind]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("hub.db"), SqliteSync::Normal)
                .await
                .unwrap(),
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap());
        let policy = DeliveryPolicy {
            // One return costs Tryton about 3 s: one call at a time, and
            // room for it.
            concurrency: 1,
            timeout_ms: 120_000,
            skip_kinds: skip.iter().copied().collect(),
            ..DeliveryPolicy::default()
        };
        let sinks = vec![(t.sink(), policy)];
        let mut config = EngineConfig::default();
        config.connect(&sinks);
        let engine = Engine::start(
            store,
            config,
            Arc::new(clock),
            &tracker,
            shutdown.child_token(),
        );
        let dispatcher =
            Dispatcher::new(engine.clone(), DispatcherConfig::default(), sinks).unwrap();
        Hub {
            engine,
            dispatcher,
            shutdown,
            tracker,
            _dir: dir,
        }
    }

    async fn run(&self, id: backhaul_domain::values::ReturnId, command: Value, key: &str) {
        let command = serde_json::from_value(command).unwrap();
        self.engine
            .execute(id, command, meta(key))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }

    /// A return of SO-1001 (2 × SKU-001 at 25.00 + 2.50 tax, 1 × SKU-002
    /// at 40.00 + 4.00) with each line's (reason, requested outcome),
    /// approved, every unit received under `receipt_ref` and inspected, then
    /// `dispositions`; delivered to Tryton after each step that calls for it.
    async fn received_and_disposed(
        &self,
        lines: [(&str, &str); 2],
        receipt_ref: &str,
        dispositions: Value,
    ) -> backhaul_domain::values::ReturnId {
        let money = |a: &str| json!({"amount": a, "currency": "USD"});
        let [(reason_1, outcome_1), (reason_2, outcome_2)] = lines;
        let request = serde_json::from_value(json!({
            "channel": "portal", "customer": "CUST-1001", "order_ref": "SO-1001", "currency": "USD",
            "site": "WH",
            "lines": [
                {"line_no": 1, "sku": "SKU-001", "quantity": "2", "uom": "EA", "reason_code": reason_1,
                 "requested_outcome": outcome_1, "unit_price": money("25.00"), "unit_tax": money("2.50")},
                {"line_no": 2, "sku": "SKU-002", "quantity": "1", "uom": "EA", "reason_code": reason_2,
                 "requested_outcome": outcome_2, "unit_price": money("40.00"), "unit_tax": money("4.00")}
            ]
        }))
        .unwrap();
        let id = self
            .engine
            .create(request, meta("create"))
            .await
            .unwrap()
            .return_id;
        self.run(id, json!({"command": "approve"}), "approve").await;
        self.settle().await;
        self.run(
            id,
            json!({"command": "record_receipt", "receipt_ref": receipt_ref,
                   "lines": [{"line_no": 1, "sku": "SKU-001", "quantity": "2"},
                             {"line_no": 2, "sku": "SKU-002", "quantity": "1"}]}),
            "receipt",
        )
        .await;
        self.run(
            id,
            json!({"command": "record_inspection", "inspections": [
                {"line_no": 1, "quantity": "2", "condition": "A"},
                {"line_no": 2, "quantity": "1", "condition": "A"}]}),
            "inspect",
        )
        .await;
        self.run(
            id,
            json!({"command": "record_disposition", "dispositions": dispositions}),
            "dispose",
        )
        .await;
        self.settle().await;
        id
    }

    /// Delivers until the outbox is empty; panics on anything but success.
    async fn settle(&self) {
        for _ in 0..20 {
            let report = self.dispatcher.run_once().await.unwrap();
            assert_eq!(
                (report.retried, report.dead, report.exceptions),
                (0, 0, 0),
                "every delivery to Tryton succeeds: {report:?}"
            );
            if report.claimed == 0 {
                return;
            }
        }
        panic!("the dispatcher did not settle");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn meta(key: &str) -> CommandMeta {
    CommandMeta {
        partner: "test".into(),
        idempotency: Some(backhaul_engine::Idempotency {
            key: key.into(),
            request_hash: key.into(),
        }),
        correlation_id: None,
        causation_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_through_the_hub_ends_received_restocked_scrapped_and_credited_in_tryton() {
    let Some(t) = tryton().await else { return };
    let scrap_before = t.stock("SKU-001", "SCRAP").await;
    let store_before = t.stock("SKU-001", "STO").await;
    let second_before = t.stock("SKU-002", "STO").await;

    let hub = Hub::start(&t).await;
    let id = hub
        .received_and_disposed(
            [("DAMAGED", "refund"), ("SIZE_FIT", "refund")],
            "RCPT-1",
            json!([
                {"line_no": 1, "quantity": "1", "disposition": "restock"},
                {"line_no": 1, "quantity": "1", "disposition": "scrap"},
                {"line_no": 2, "quantity": "1", "disposition": "restock"}]),
        )
        .await;

    // The hub holds Tryton's documents, with the credit as Tryton posted it.
    let summary = hub.engine.get(id).await.unwrap().unwrap().to_value();
    let rma = summary["rma_number"].as_str().unwrap().to_owned();
    let documents = summary["documents"].as_array().unwrap();
    let memo = documents
        .iter()
        .find(|d| d["kind"] == "credit_memo")
        .unwrap_or_else(|| panic!("a credit memo in {summary:#}"));
    // 2 × (25.00 + 2.50) + (40.00 + 4.00)
    assert_eq!(memo["amount"]["amount"], "99.00", "{memo}");

    // Tryton: one return sale, its return shipment done, stock where the
    // dispositions said, and a posted credit note of the same amount.
    let docs = t.documents(&rma).await;
    assert_eq!(docs.sales, 1);
    assert_eq!(docs.shipments.len(), 1, "{:?}", docs.shipments);
    assert_eq!(docs.shipments[0]["state"], "done");
    assert_eq!(t.stock("SKU-001", "SCRAP").await - scrap_before, dec("1"));
    assert_eq!(t.stock("SKU-001", "STO").await - store_before, dec("1"));
    assert_eq!(t.stock("SKU-002", "STO").await - second_before, dec("1"));
    let notes = docs.notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["state"], "posted");
    assert_eq!(notes[0]["sequence_type_cache"], "credit_note");
    assert_eq!(harness::decimal(&notes[0]["total_amount"]), dec("-99.00"));
    assert_eq!(memo["number"], notes[0]["number"]);
    hub.stop().await;
}

/// The unit prices and quantities of a credit note's lines, by SKU.
async fn note_lines(t: &Tryton, number: &Value) -> BTreeMap<String, (Decimal, Decimal)> {
    let note = &t
        .records("account.invoice", json!([["number", "=", number]]), &["id"])
        .await[0];
    let lines = t
        .records(
            "account.invoice.line",
            json!([["invoice", "=", note["id"]]]),
            &["product.code", "unit_price", "quantity"],
        )
        .await;
    lines
        .iter()
        .map(|l| {
            (
                l["product."]["code"].as_str().unwrap().to_owned(),
                (
                    harness::decimal(&l["quantity"]),
                    harness::decimal(&l["unit_price"]),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restocking_fee_and_a_replaced_line_are_posted_as_the_hub_credits_them() {
    let Some(t) = tryton().await else { return };
    let store_before = t.stock("SKU-001", "STO").await;
    let second_before = t.stock("SKU-002", "STO").await;

    let hub = Hub::start(&t).await;
    let id = hub
        .received_and_disposed(
            [("CHANGED_MIND", "refund"), ("DAMAGED", "replacement")],
            "RCPT-FEE",
            json!([
                {"line_no": 1, "quantity": "2", "disposition": "restock",
                 "restocking_fee": {"amount": "3.75", "currency": "USD"}},
                {"line_no": 2, "quantity": "1", "disposition": "restock"}]),
        )
        .await;

    let summary = hub.engine.get(id).await.unwrap().unwrap().to_value();
    let rma = summary["rma_number"].as_str().unwrap().to_owned();
    let memo = summary["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "credit_memo")
        .unwrap_or_else(|| panic!("a credit memo in {summary:#}"))
        .clone();
    // SKU-001: 2 × 25.00 less 2 × 3.75 = 42.50, and 15% of the 5.00 tax
    // kept: 4.25. SKU-002 is replaced: nothing.
    assert_eq!(memo["amount"]["amount"], "46.75", "{memo}");

    let docs = t.documents(&rma).await;
    assert_eq!(docs.shipments.len(), 1, "{:?}", docs.shipments);
    assert_eq!(docs.shipments[0]["state"], "done");
    assert_eq!(t.stock("SKU-001", "STO").await - store_before, dec("2"));
    assert_eq!(t.stock("SKU-002", "STO").await - second_before, dec("1"));
    let notes = docs.notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["state"], "posted");
    assert_eq!(harness::decimal(&notes[0]["total_amount"]), dec("-46.75"));
    assert_eq!(memo["number"], notes[0]["number"]);
    // Tryton's lines carry the net prices, its tax is its own.
    let lines = note_lines(&t, &notes[0]["number"]).await;
    assert_eq!(lines["SKU-001"], (dec("-2"), dec("21.25")), "{lines:?}");
    assert_eq!(lines["SKU-002"], (dec("-1"), dec("0")), "{lines:?}");
    hub.stop().await;
}

/// Units dispositioned `replacement` with an ERP connector that is not
/// given replacement orders (Tryton books none here: `skip_kinds`): nothing
/// waits in the exception queue, the replaced units are received into
/// stock, and the credit note credits them nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_units_with_replacement_orders_skipped_are_credited_nothing() {
    let Some(t) = tryton().await else { return };
    let second_before = t.stock("SKU-002", "STO").await;
    let hub = Hub::start_skipping(&t, &[ActionKind::ErpReplacementOrder]).await;
    // `settle` fails on any exception or retry.
    let id = hub
        .received_and_disposed(
            [("DAMAGED", "refund"), ("DAMAGED", "replacement")],
            "RCPT-RPL",
            json!([
                {"line_no": 1, "quantity": "2", "disposition": "restock"},
                {"line_no": 2, "quantity": "1", "disposition": "replacement"}]),
        )
        .await;
    let summary = hub.engine.get(id).await.unwrap().unwrap().to_value();
    let rma = summary["rma_number"].as_str().unwrap().to_owned();
    let documents = summary["documents"].as_array().unwrap();
    assert!(
        documents.iter().all(|d| d["kind"] != "replacement_order"),
        "{summary:#}"
    );
    let memo = documents
        .iter()
        .find(|d| d["kind"] == "credit_memo")
        .unwrap_or_else(|| panic!("a credit memo in {summary:#}"));
    // SKU-001: 2 × (25.00 + 2.50); SKU-002 replaced: nothing.
    assert_eq!(memo["amount"]["amount"], "55.00", "{memo}");
    let docs = t.documents(&rma).await;
    assert_eq!(docs.notes.len(), 1, "{:?}", docs.notes);
    assert_eq!(docs.notes[0]["state"], "posted");
    assert_eq!(
        harness::decimal(&docs.notes[0]["total_amount"]),
        dec("-55.00")
    );
    assert_eq!(t.stock("SKU-002", "STO").await - second_before, dec("1"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_the_price_adjustment_is_finished_without_a_second_one() {
    let Some(t) = tryton().await else { return };
    let sink = t.sink();
    let rma = "RMA-FEE-LOST";
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let order = action(
        ActionKind::ErpReturnOrder,
        rma,
        "CUST-1001",
        "SO-1001",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "unit_price": money("25.00"),
                "reason_code": "DAMAGED"},
               {"line_no": 2, "sku": "SKU-002", "quantity": "1", "unit_price": money("40.00"),
                "reason_code": "DAMAGED"}]),
    );
    let created = deliver(
        sink.as_ref(),
        &order,
        "fee-lost:order",
        &Prerequisites::new(),
    )
    .await
    .unwrap();
    let after = after_return_order(&created);
    let adjustment = action(
        ActionKind::ErpInventoryAdjustment,
        rma,
        "CUST-1001",
        "SO-1001",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "disposition": "restock"},
               {"line_no": 2, "sku": "SKU-002", "quantity": "1", "disposition": "replacement"}]),
    );
    deliver(sink.as_ref(), &adjustment, "fee-lost:adjustment", &after)
        .await
        .unwrap();
    // A 2.50 fee a unit on SKU-001 (45.00 + 4.50 tax); SKU-002 replaced.
    let memo = action(
        ActionKind::ErpCreditMemo,
        rma,
        "CUST-1001",
        "SO-1001",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "amount": money("49.50")},
               {"line_no": 2, "sku": "SKU-002", "quantity": "1", "amount": money("0.00")}]),
    );
    let key = "fee-lost:memo";
    let (lossy, adjusted) = t.sink_watching("model.account.invoice.write", "unit_price", true);
    let err = deliver(lossy.as_ref(), &memo, key, &after)
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Technical { .. }), "{err:?}");
    assert_eq!(adjusted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (retry, adjusted_again) =
        t.sink_watching("model.account.invoice.write", "unit_price", false);
    let posted = deliver(retry.as_ref(), &memo, key, &after).await.unwrap();
    assert_eq!(
        adjusted_again.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the prices written by the lost attempt are not written again"
    );
    let ActionResult::Document { amount, .. } = &posted else {
        panic!("{posted:?}")
    };
    assert_eq!(amount.unwrap().amount(), dec("49.50"));
    let docs = t.documents(rma).await;
    assert_eq!(docs.notes.len(), 1, "{:?}", docs.notes);
    assert_eq!(docs.notes[0]["state"], "posted");
    assert_eq!(
        harness::decimal(&docs.notes[0]["total_amount"]),
        dec("-49.50")
    );
    let lines = note_lines(&t, &docs.notes[0]["number"]).await;
    assert_eq!(lines["SKU-001"], (dec("-2"), dec("22.5")), "{lines:?}");
    assert_eq!(lines["SKU-002"], (dec("-1"), dec("0")), "{lines:?}");
    // Delivered again: the same document, nothing written.
    let again = deliver(retry.as_ref(), &memo, key, &after).await.unwrap();
    assert_eq!(number(&again), number(&posted));
    assert_eq!(adjusted_again.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_note_the_prices_cannot_bring_to_the_hub_s_amount_is_not_posted() {
    let Some(t) = tryton().await else { return };
    let sink = t.sink();
    let rma = "RMA-FEE-CENT";
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let order = action(
        ActionKind::ErpReturnOrder,
        rma,
        "CUST-1002",
        "SO-1003",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "1", "unit_price": money("25.00"),
                "reason_code": "DAMAGED"}]),
    );
    let created = deliver(sink.as_ref(), &order, "cent:order", &Prerequisites::new())
        .await
        .unwrap();
    let after = after_return_order(&created);
    let adjustment = action(
        ActionKind::ErpInventoryAdjustment,
        rma,
        "CUST-1002",
        "SO-1003",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "1", "disposition": "restock"}]),
    );
    deliver(sink.as_ref(), &adjustment, "cent:adjustment", &after)
        .await
        .unwrap();
    let memo = |amount: &str| {
        action(
            ActionKind::ErpCreditMemo,
            rma,
            "CUST-1002",
            "SO-1003",
            json!([{"line_no": 1, "sku": "SKU-001", "quantity": "1", "amount": money(amount)}]),
        )
    };
    // More than Tryton credits: never raised, nothing written.
    let err = deliver(sink.as_ref(), &memo("28.00"), "cent:memo", &after)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Business { code, .. } if code == "amount_mismatch"),
        "{err:?}"
    );
    // With VAT 10% rounded to the cent, no net price comes to 11.16
    // (10.14 → 11.15, 10.15 → 11.17): the note is adjusted, read again,
    // and left in draft.
    let err = deliver(sink.as_ref(), &memo("11.16"), "cent:memo", &after)
        .await
        .unwrap_err();
    let SinkError::Business { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(code, "amount_mismatch", "{message}");
    assert!(
        message.contains("after setting the net unit prices SKU-001 at"),
        "{message}"
    );
    let notes = t.documents(rma).await.notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["state"], "draft");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_deliveries_create_no_second_document() {
    let Some(t) = tryton().await else { return };
    let sink = t.sink();
    let rma = "RMA-RETRY-1";
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let order = action(
        ActionKind::ErpReturnOrder,
        rma,
        "CUST-1002",
        "SO-1003",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "unit_price": money("25.00"),
                "reason_code": "DAMAGED"}]),
    );
    let key = format!("{rma}:erp_return_order:2");
    let first = deliver(sink.as_ref(), &order, &key, &Prerequisites::new())
        .await
        .unwrap();
    // The answer was lost: the dispatcher tries again with the same key.
    let again = deliver(sink.as_ref(), &order, &key, &Prerequisites::new())
        .await
        .unwrap();
    assert_eq!(number(&first), number(&again));
    assert_eq!(t.documents(rma).await.sales, 1);

    let after = after_return_order(&first);
    let adjustment = action(
        ActionKind::ErpInventoryAdjustment,
        rma,
        "CUST-1002",
        "SO-1003",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "disposition": "restock"}]),
    );
    let key = format!("{rma}:erp_inventory_adjustment:6");
    let store_before = t.stock("SKU-001", "STO").await;
    let received = deliver(sink.as_ref(), &adjustment, &key, &after)
        .await
        .unwrap();
    let received_again = deliver(sink.as_ref(), &adjustment, &key, &after)
        .await
        .unwrap();
    assert_eq!(number(&received), number(&received_again));
    assert_eq!(
        t.stock("SKU-001", "STO").await - store_before,
        dec("2"),
        "received once"
    );

    let memo = action(
        ActionKind::ErpCreditMemo,
        rma,
        "CUST-1002",
        "SO-1003",
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "amount": money("55.00")}]),
    );
    let key = format!("{rma}:erp_credit_memo:6");
    let posted = deliver(sink.as_ref(), &memo, &key, &after).await.unwrap();
    let posted_again = deliver(sink.as_ref(), &memo, &key, &after).await.unwrap();
    assert_eq!(posted, posted_again);
    let docs = t.documents(rma).await;
    assert_eq!(docs.sales, 1);
    assert_eq!(docs.notes.len(), 1, "{:?}", docs.notes);
    assert_eq!(docs.notes[0]["state"], "posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_any_write_is_finished_not_repeated() {
    let Some(t) = tryton().await else { return };
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    // Each step's answer lost once after Tryton acted, then the same
    // delivery again: the second attempt finds what the first did.
    let steps = [
        "model.sale.sale.create",
        "model.sale.sale.confirm",
        "model.stock.shipment.out.return.receive",
        "model.stock.move.copy",
        "model.stock.shipment.out.return.do",
        "model.account.invoice.write",
        "model.account.invoice.post",
    ];
    for (n, lost) in steps.into_iter().enumerate() {
        let rma = format!("RMA-LOST-{n}");
        let lines = json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2",
                            "unit_price": money("25.00"), "reason_code": "DAMAGED"}]);
        let order = action(
            ActionKind::ErpReturnOrder,
            &rma,
            "CUST-1002",
            "SO-1003",
            lines,
        );
        let adjustment = action(
            ActionKind::ErpInventoryAdjustment,
            &rma,
            "CUST-1002",
            "SO-1003",
            json!([{"line_no": 1, "sku": "SKU-001", "quantity": "1", "disposition": "restock"},
                   {"line_no": 1, "sku": "SKU-001", "quantity": "1", "disposition": "scrap"}]),
        );
        let memo = action(
            ActionKind::ErpCreditMemo,
            &rma,
            "CUST-1002",
            "SO-1003",
            json!([{"line_no": 1, "sku": "SKU-001", "quantity": "2", "amount": money("55.00")}]),
        );
        let store_before = t.stock("SKU-001", "STO").await;
        let scrap_before = t.stock("SKU-001", "SCRAP").await;
        let lossy = t.sink_losing(lost);
        let sink = t.sink();
        let mut prerequisites = Prerequisites::new();
        for (a, key) in [
            (&order, "order"),
            (&adjustment, "adjustment"),
            (&memo, "memo"),
        ] {
            let key = format!("{rma}:{key}");
            let result = match deliver(lossy.as_ref(), a, &key, &prerequisites).await {
                Ok(result) => result,
                Err(SinkError::Technical { .. }) => deliver(sink.as_ref(), a, &key, &prerequisites)
                    .await
                    .unwrap_or_else(|e| panic!("{lost}: the retry of {key} failed: {e}")),
                Err(e) => panic!("{lost}: {key}: {e}"),
            };
            if a.kind == ActionKind::ErpReturnOrder {
                prerequisites = after_return_order(&result);
            }
        }
        let docs = t.documents(&rma).await;
        assert_eq!(docs.sales, 1, "{lost}");
        let shipments = docs.shipments;
        assert_eq!(shipments.len(), 1, "{lost}: {shipments:?}");
        assert_eq!(shipments[0]["state"], "done", "{lost}");
        assert_eq!(
            t.stock("SKU-001", "STO").await - store_before,
            dec("1"),
            "{lost}"
        );
        assert_eq!(
            t.stock("SKU-001", "SCRAP").await - scrap_before,
            dec("1"),
            "{lost}"
        );
        let notes = docs.notes;
        assert_eq!(notes.len(), 1, "{lost}: {notes:?}");
        assert_eq!(notes[0]["state"], "posted", "{lost}");
        assert_eq!(
            harness::decimal(&notes[0]["total_amount"]),
            dec("-55.00"),
            "{lost}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_receipt_is_received_and_credited_in_two_steps() {
    let Some(t) = tryton().await else { return };
    let sink = t.sink();
    let rma = "RMA-PART-1";
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let order = action(
        ActionKind::ErpReturnOrder,
        rma,
        "CUST-1001",
        "SO-1002",
        json!([{"line_no": 1, "sku": "SKU-003", "quantity": "10", "unit_price": money("12.50"),
                "reason_code": "DAMAGED"}]),
    );
    let created = deliver(sink.as_ref(), &order, "part:order", &Prerequisites::new())
        .await
        .unwrap();
    let after = after_return_order(&created);
    let store_before = t.stock("SKU-003", "STO").await;
    let scrap_before = t.stock("SKU-003", "SCRAP").await;
    // Six arrive: four restocked, two scrapped; the other four a week later.
    for (n, (restock, scrap, credit)) in [("4", "2", "82.50"), ("4", "0", "55.00")]
        .into_iter()
        .enumerate()
    {
        let mut lines = vec![
            json!({"line_no": 1, "sku": "SKU-003", "quantity": restock, "disposition": "restock"}),
        ];
        if scrap != "0" {
            lines.push(
                json!({"line_no": 1, "sku": "SKU-003", "quantity": scrap, "disposition": "scrap"}),
            );
        }
        let adjustment = action(
            ActionKind::ErpInventoryAdjustment,
            rma,
            "CUST-1001",
            "SO-1002",
            json!(lines),
        );
        deliver(sink.as_ref(), &adjustment, &format!("part:adj:{n}"), &after)
            .await
            .unwrap_or_else(|e| panic!("adjustment {n}: {e}"));
        let total = dec(restock) + dec(scrap);
        let memo = action(
            ActionKind::ErpCreditMemo,
            rma,
            "CUST-1001",
            "SO-1002",
            json!([{"line_no": 1, "sku": "SKU-003", "quantity": total.to_string(), "amount": money(credit)}]),
        );
        let posted = deliver(sink.as_ref(), &memo, &format!("part:memo:{n}"), &after)
            .await
            .unwrap_or_else(|e| panic!("credit memo {n}: {e}"));
        let ActionResult::Document { amount, .. } = posted else {
            panic!("{posted:?}")
        };
        assert_eq!(amount.unwrap().amount(), dec(credit));
    }
    assert_eq!(t.stock("SKU-003", "STO").await - store_before, dec("8"));
    assert_eq!(t.stock("SKU-003", "SCRAP").await - scrap_before, dec("2"));
    let docs = t.documents(rma).await;
    let shipments = docs.shipments;
    assert_eq!(
        shipments.len(),
        2,
        "one shipment per arrival: {shipments:?}"
    );
    assert!(
        shipments.iter().all(|s| s["state"] == "done"),
        "{shipments:?}"
    );
    let notes = docs.notes;
    let mut totals: Vec<Decimal> = notes
        .iter()
        .map(|n| harness::decimal(&n["total_amount"]))
        .collect();
    totals.sort();
    assert_eq!(totals, vec![dec("-82.50"), dec("-55.00")]);
    assert!(notes.iter().all(|n| n["state"] == "posted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_tryton_cannot_match_is_a_business_error_that_creates_nothing() {
    let Some(t) = tryton().await else { return };
    let sink = t.sink();
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let line =
        json!([{"line_no": 1, "sku": "SKU-001", "quantity": "1", "unit_price": money("25.00")}]);
    let cases = [
        (
            "RMA-BAD-1",
            "CUST-1001",
            "SO-9999",
            line.clone(),
            "order_not_found",
        ),
        (
            "RMA-BAD-2",
            "CUST-1002",
            "SO-1001",
            line.clone(),
            "customer_mismatch",
        ),
        (
            "RMA-BAD-3",
            "CUST-1001",
            "SO-1001",
            json!([{"line_no": 1, "sku": "SKU-001", "quantity": "4", "unit_price": money("25.00")}]),
            "quantity_exceeds_order",
        ),
        (
            "RMA-BAD-4",
            "CUST-1001",
            "SO-1001",
            json!([{"line_no": 1, "sku": "SKU-003", "quantity": "1", "unit_price": money("12.50")}]),
            "sku_not_on_order",
        ),
    ];
    for (rma, customer, order, lines, code) in cases {
        let a = action(ActionKind::ErpReturnOrder, rma, customer, order, lines);
        let err = deliver(sink.as_ref(), &a, rma, &Prerequisites::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::Business { code: c, .. } if c == code),
            "{rma}: {err:?}"
        );
        assert_eq!(t.documents(rma).await.sales, 0);
    }
}
