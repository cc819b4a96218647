//! The engine with the sample policy and sample master data, on both
//! storage backends: a request is decided by the policy, an inspection is
//! dispositioned by it with its restocking fee, the credit memo keeps the
//! fee, a defective unit under warranty is claimed from its vendor, and a
//! simulation of a stricter candidate reports what would change without
//! writing anything.

// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use backhaul_domain::Command;
use backhaul_domain::action::Target;
use backhaul_domain::model::ReturnRequest;
use backhaul_engine::{
    CommandMeta, Engine, EngineConfig, Error, ManualClock, Rules, RulesHandle, simulate,
};
use backhaul_master::{Kind, MasterData};
use backhaul_policy::Policy;
use backhaul_store::{
    AnyStore, DeliveryFilter, DeliveryStore, EventStore, PgStore, SqliteStore, SqliteSync,
};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

fn sample_policy() -> String {
    std::fs::read_to_string(samples().join("policy.toml")).unwrap()
}

struct Hub {
    engine: Engine,
    store: AnyStore,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: Option<tempfile::TempDir>,
}

async fn hub(store: AnyStore, dir: Option<tempfile::TempDir>) -> Hub {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // A week after the sample order SO-100001 shipped.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 10, 10, 0, 0).unwrap());
    let policy = Policy::load("policy.toml", &sample_policy()).unwrap();
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            outbound: [Target::Erp].into_iter().collect(),
            rules: RulesHandle::new(Some(policy), MasterData::empty()),
            dispose_on_inspection: true,
            ..EngineConfig::default()
        },
        Arc::new(clock),
        &tracker,
        shutdown.child_token(),
    );
    for stem in [
        "vendors",
        "skus",
        "customers",
        "sites",
        "orders",
        "crosswalks",
    ] {
        let file = samples().join("master").join(format!("{stem}.csv"));
        let bytes = std::fs::read(&file).unwrap();
        engine
            .import_master(Kind::parse(stem).unwrap(), stem, &bytes, false)
            .await
            .unwrap();
    }
    Hub {
        engine,
        store,
        shutdown,
        tracker,
        _dir: dir,
    }
}

fn gloves(quantity: &str) -> ReturnRequest {
    let usd = |a: &str| json!({"amount": a, "currency": "USD"});
    serde_json::from_value(json!({
        "channel": "portal", "customer": "C0017", "order_ref": "SO-100001", "currency": "USD",
        "site": "DC1",
        "lines": [{"line_no": 1, "sku": "GLOVE-L", "quantity": quantity, "uom": "EA",
                   "reason_code": "TOO_SMALL", "requested_outcome": "refund",
                   "unit_price": usd("12.99"), "unit_tax": usd("1.03"),
                   "order_line_ref": "SO-100001-1"}]
    }))
    .unwrap()
}

fn meta(partner: &str) -> CommandMeta {
    CommandMeta {
        partner: partner.into(),
        ..CommandMeta::default()
    }
}

fn event_types(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

async fn the_policy_decides_disposes_and_charges_its_fee(h: Hub) {
    let created = h.engine.create(gloves("2"), meta("portal")).await.unwrap();
    let body: Value = created.body.parse().unwrap();
    assert_eq!(body["return"]["status"], "approved", "{body}");
    let id = created.return_id;

    let receipt: Command = serde_json::from_value(json!({"command": "record_receipt",
        "receipt_ref": "R-1", "lines": [{"line_no": 1, "sku": "GLOVE-L", "quantity": "2"}]}))
    .unwrap();
    h.engine.execute(id, receipt, meta("wms")).await.unwrap();
    // A grade the WMS's crosswalk does not know is refused, naming both.
    let unknown: Command = serde_json::from_value(json!({"command": "record_inspection",
        "inspections": [{"line_no": 1, "quantity": "2", "condition": "Z"}]}))
    .unwrap();
    match h.engine.execute(id, unknown, meta("wms")).await {
        Err(Error::Rules(e)) => {
            assert_eq!(e.code(), "unmapped_code");
            assert!(
                e.to_string().contains("wms") && e.to_string().contains("\"Z\""),
                "{e}"
            );
        }
        other => panic!("an unmapped condition was not refused: {other:?}"),
    }
    let inspection: Command = serde_json::from_value(json!({"command": "record_inspection",
        "inspections": [{"line_no": 1, "quantity": "1", "condition": "A"},
                        {"line_no": 1, "quantity": "1", "condition": "C"}]}))
    .unwrap();
    let inspected = h.engine.execute(id, inspection, meta("wms")).await.unwrap();
    let body: Value = inspected.body.parse().unwrap();
    // The WMS's grades A and C are the canonical NEW and USED.
    assert_eq!(
        body["return"]["lines"][0]["conditions"],
        json!({"NEW": "1", "USED": "1"})
    );
    assert_eq!(
        event_types(&body),
        ["UnitsInspected", "UnitsDispositioned"],
        "the policy disposes in the same step"
    );
    let line = &body["return"]["lines"][0];
    assert_eq!(line["dispositioned"], json!({"restock": "1", "scrap": "1"}));
    // 25% of 12.99 for the used pair, rounded half away from zero.
    assert_eq!(line["fees"], "3.25");

    // The credit memo: 2 x 12.99 - 3.25 = 22.73, tax 2.06 x 22.73/25.98 =
    // 1.8022..., 24.53 in all (towards zero).
    let deliveries = h
        .store
        .list_deliveries(&DeliveryFilter {
            stream_id: Some(id.as_uuid()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    let payloads = |kind: &str| -> Vec<Value> {
        deliveries
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.payload.parse().unwrap())
            .collect()
    };
    // The restocked pair goes to the policy's restock location; the ERP
    // return order carries the ERP's own reason code.
    let adjustment = &payloads("erp_inventory_adjustment")[0];
    assert_eq!(adjustment["lines"][0]["disposition"], "restock");
    assert_eq!(adjustment["lines"][0]["location"], "RET-STOCK");
    assert_eq!(
        payloads("erp_return_order")[0]["lines"][0]["reason_code"],
        "SIZE_FIT"
    );
    let memos = payloads("erp_credit_memo");
    assert_eq!(memos.len(), 1);
    assert_eq!(
        memos[0]["lines"][0]["amount"]["amount"], "24.53",
        "{}",
        memos[0]
    );

    // A stricter candidate, replayed over the log: the approval would be a
    // rejection, and 28.04 USD less would be authorised. Nothing is written.
    let strict = sample_policy()
        .replace("version = \"2026-spring.1\"", "version = \"strict\"")
        .replace("line.days_since_ship <= 30", "line.days_since_ship <= 3");
    let before = h.store.read_all(0, 1000).await.unwrap().len();
    let rules = Rules {
        policy: Some(Arc::new(Policy::load("strict.toml", &strict).unwrap())),
        master: h.engine.reload_master().await.unwrap(),
    };
    let sim = simulate(&h.store, &rules).await.unwrap();
    assert_eq!(sim.requests, 1);
    assert_eq!(sim.transitions.get("approve → reject"), Some(&1), "{sim:?}");
    assert_eq!(sim.changed[0].failed, ["window.standard (line 1)"]);
    assert_eq!(sim.value_delta["USD"].to_string(), "-28.04");
    assert_eq!(h.store.read_all(0, 1000).await.unwrap().len(), before);

    // The policy in force, replayed: nothing would change.
    let same = Rules {
        policy: h.engine.rules().current().policy.clone(),
        master: h.engine.reload_master().await.unwrap(),
    };
    let sim = simulate(&h.store, &same).await.unwrap();
    assert!(sim.changed.is_empty(), "{sim:?}");
    assert_eq!(sim.transitions.get("approve → approve"), Some(&1));

    h.shutdown.cancel();
    h.tracker.close();
    h.tracker.wait().await;
}

/// A digital level from SO-100001 that does not work, a week after it
/// shipped: in its two-year electronics warranty, and its vendor LevelPro
/// takes units back for 180 days (`disp.vendor_warranty`).
fn defective_level() -> ReturnRequest {
    let usd = |a: &str| json!({"amount": a, "currency": "USD"});
    serde_json::from_value(json!({
        "channel": "portal", "customer": "C0017", "order_ref": "SO-100001", "currency": "USD",
        "site": "DC1",
        "lines": [{"line_no": 1, "sku": "LEVEL-24", "quantity": "1", "uom": "EA",
                   "reason_code": "DOES_NOT_WORK", "requested_outcome": "refund",
                   "unit_price": usd("34.50"), "unit_tax": usd("2.76"),
                   "order_line_ref": "SO-100001-2"}]
    }))
    .unwrap()
}

async fn a_defective_unit_in_warranty_is_claimed_from_its_vendor(h: Hub) {
    let created = h
        .engine
        .create(defective_level(), meta("portal"))
        .await
        .unwrap();
    let body: Value = created.body.parse().unwrap();
    assert_eq!(body["return"]["status"], "approved", "{body}");
    let id = created.return_id;
    let receipt: Command = serde_json::from_value(json!({"command": "record_receipt",
        "receipt_ref": "R-L", "lines": [{"line_no": 1, "sku": "LEVEL-24", "quantity": "1"}]}))
    .unwrap();
    h.engine.execute(id, receipt, meta("wms")).await.unwrap();
    // The WMS's grade X is the canonical DEFECTIVE.
    let inspection: Command = serde_json::from_value(json!({"command": "record_inspection",
        "inspections": [{"line_no": 1, "quantity": "1", "condition": "X"}]}))
    .unwrap();
    let inspected = h.engine.execute(id, inspection, meta("wms")).await.unwrap();
    let body: Value = inspected.body.parse().unwrap();
    assert_eq!(
        body["return"]["lines"][0]["dispositioned"],
        json!({"vendor_return": "1"}),
        "{body}"
    );

    let deliveries = h
        .store
        .list_deliveries(&DeliveryFilter {
            stream_id: Some(id.as_uuid()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    let claims: Vec<Value> = deliveries
        .iter()
        .filter(|d| d.kind == "erp_supplier_claim")
        .map(|d| d.payload.parse().unwrap())
        .collect();
    assert_eq!(claims.len(), 1, "{deliveries:?}");
    assert_eq!(
        claims[0]["lines"],
        json!([{"line_no": 1, "sku": "LEVEL-24", "quantity": "1", "vendor": "V-LEVELPRO"}]),
        "the claim is against the SKU's vendor"
    );
    let claim = deliveries
        .iter()
        .find(|d| d.kind == "erp_supplier_claim")
        .unwrap();
    assert_eq!(claim.target, "erp");
    assert_eq!(claim.requires, ["erp_return_order"]);
    // Nothing is repaired or replaced: the vendor takes the unit back.
    assert!(
        !deliveries
            .iter()
            .any(|d| d.kind == "erp_repair_order" || d.kind == "erp_replacement_order"),
        "{deliveries:?}"
    );
    // The disposition records the vendor and the rule that decided.
    let log = h.store.read_stream(id.as_uuid()).await.unwrap();
    let disposed: Value = log
        .iter()
        .find(|e| e.event.event_type == "UnitsDispositioned")
        .map(|e| e.event.payload.to_value())
        .unwrap();
    assert_eq!(disposed["dispositions"][0]["vendor"], "V-LEVELPRO");
    assert_eq!(
        disposed["dispositions"][0]["decided_by"],
        "2026-spring.1/disp.vendor_warranty"
    );

    h.shutdown.cancel();
    h.tracker.close();
    h.tracker.wait().await;
}

#[tokio::test]
async fn sqlite_vendor_claim_for_a_defective_unit_in_warranty() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    a_defective_unit_in_warranty_is_claimed_from_its_vendor(hub(store, Some(dir)).await).await;
}

#[tokio::test]
async fn postgres_vendor_claim_for_a_defective_unit_in_warranty() {
    let admin = std::env::var("BACKHAUL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = PgStore::fresh_database(&admin, "backhaul_policy_claim_test")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for these tests: {e}"));
    let store = AnyStore::Postgres(PgStore::connect(&url, 4).await.unwrap());
    a_defective_unit_in_warranty_is_claimed_from_its_vendor(hub(store, None).await).await;
}

#[tokio::test]
async fn sqlite_policy_decides_disposes_and_simulates() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    the_policy_decides_disposes_and_charges_its_fee(hub(store, Some(dir)).await).await;
}

#[tokio::test]
async fn postgres_policy_decides_disposes_and_simulates() {
    let admin = std::env::var("BACKHAUL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = PgStore::fresh_database(&admin, "backhaul_policy_test")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for these tests: {e}"));
    let store = AnyStore::Postgres(PgStore::connect(&url, 4).await.unwrap());
    the_policy_decides_disposes_and_charges_its_fee(hub(store, None).await).await;
}
