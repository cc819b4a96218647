//! Drop folders end to end: a raw file dropped in a folder, a scan, and the
//! final state of the hub (returns, master data) and of the folder (archive,
//! reject file, acknowledgement), with a real SQLite store and the real
//! engine. Scans are driven with `run_once`, never by waiting.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backhaul_domain::Command;
use backhaul_domain::action::{Action, Target};
use backhaul_domain::command::Approve;
use backhaul_domain::model::LineQuantity;
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::{LineNo, Quantity, ReturnId, Sku};
use backhaul_engine::{
    CommandMeta, DeliveryRequest, Dispatcher, DispatcherConfig, Engine, EngineConfig, ManualClock,
};
use backhaul_filedrop::{DropConfig, FileDrop, FileReport, validate_all};
use backhaul_master::MasterData;
use backhaul_store::{
    AnyStore, DeliveryFilter, DeliveryStore, SqliteStore, SqliteSync, SummaryFilter,
};
use backhaul_x12::Interchange;
use backhaul_x12::ts180::notifications;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Hub {
    engine: Engine,
    store: AnyStore,
    dir: tempfile::TempDir,
    /// The connected systems actions are written for (none by default).
    outbound: BTreeSet<Target>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Hub {
    async fn start() -> Hub {
        Hub::connected_to(BTreeSet::new()).await
    }

    /// A hub that writes actions for `outbound` into its outbox.
    async fn connected_to(outbound: BTreeSet<Target>) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("hub.db"), SqliteSync::Normal)
                .await
                .unwrap(),
        );
        Hub::on(store, dir, outbound)
    }

    fn on(store: AnyStore, dir: tempfile::TempDir, outbound: BTreeSet<Target>) -> Hub {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 15, 10, 15, 0).unwrap());
        let engine = Engine::start(
            store.clone(),
            EngineConfig {
                outbound: outbound.clone(),
                ..EngineConfig::default()
            },
            Arc::new(clock),
            &tracker,
            shutdown.child_token(),
        );
        Hub {
            engine,
            store,
            dir,
            outbound,
            shutdown,
            tracker,
        }
    }

    /// Stops the engine (its committer with it) and starts a new one on the
    /// same store and folders: a restart.
    async fn restart(self) -> Hub {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        Hub::on(self.store, self.dir, self.outbound)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A drop named `name` from the TOML of its section (`dir` added).
    fn drop(&self, name: &str, section: &str) -> FileDrop {
        let config = config(&format!(
            "dir = {:?}\n{section}",
            self.path(name).display().to_string()
        ));
        FileDrop::build(name, &config, self.engine.clone()).unwrap()
    }

    /// Drops `content` as `file` the way a producer should: `.tmp`, then
    /// renamed.
    fn put(&self, name: &str, file: &str, content: &str) {
        let tmp = self.path(name).join(format!("{file}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.path(name).join(file)).unwrap();
    }

    async fn returns(&self) -> Vec<Value> {
        let rows = self
            .engine
            .list(&SummaryFilter {
                limit: 1000,
                ..SummaryFilter::default()
            })
            .await
            .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r.as_str()).unwrap())
            .collect()
    }

    async fn summary(&self, id: &str) -> Value {
        let id = ReturnId::parse(id).unwrap();
        let text = self.engine.get(id).await.unwrap().unwrap();
        serde_json::from_str(text.as_str()).unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn config(toml_text: &str) -> DropConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
}

/// The only file of one scan.
async fn scan_one(drop: &FileDrop) -> FileReport {
    let report = drop.run_once().await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.files.len(), 1, "{:?}", report.files);
    report.files.into_iter().next().unwrap()
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

const HEADER: &str = "request_ref,customer,order_ref,currency,site,sku,quantity,uom,reason,requested_outcome,unit_price,unit_tax,serials";

fn returns_file(rows: &[&str]) -> String {
    let mut out = format!("{HEADER}\n");
    for row in rows {
        out.push_str(row);
        out.push('\n');
    }
    out
}

const GOOD_ROWS: [&str; 3] = [
    "R-1,C1,SO-1,USD,DC1,SKU-1,2,EA,DAMAGED,refund,19.99,1.60,",
    "R-1,C1,SO-1,USD,DC1,SKU-2,1,EA,SIZE_FIT,exchange,5.00,0.40,SN-1",
    "R-2,C2,SO-2,EUR,DC1,SKU-3,1,EA,DAMAGED,refund,7.50,0,",
];

#[tokio::test]
async fn a_good_csv_file_opens_one_return_per_request_with_its_lines() {
    let hub = Hub::start().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    hub.put("returns", "batch-1.csv", &returns_file(&GOOD_ROWS));

    let file = scan_one(&drop).await;
    assert_eq!(
        (file.applied(), file.duplicates(), file.rejected()),
        (2, 0, 0)
    );
    assert!(file.rejects.is_none() && file.refused.is_none());
    assert_eq!(hub.returns().await.len(), 2);

    let r1 = file.items.iter().find(|i| i.reference == "R-1").unwrap();
    assert_eq!(r1.lines, vec![2, 3]);
    let summary = hub.summary(r1.return_id.as_deref().unwrap()).await;
    assert_eq!(summary["customer"], "C1");
    assert_eq!(summary["channel"], "batch");
    let lines = summary["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"]["sku"], "SKU-1");
    assert_eq!(lines[0]["line"]["quantity"], "2");
    assert_eq!(lines[0]["line"]["unit_price"]["amount"], "19.99");
    assert_eq!(lines[1]["line"]["line_no"], 2);
    assert_eq!(lines[1]["line"]["requested_outcome"], "exchange");
    assert_eq!(lines[1]["line"]["serial_numbers"], json!(["SN-1"]));

    // The folder: the file archived under a stamped name with its summary,
    // nothing left behind.
    assert!(file.archived.exists());
    let archived = file.archived.file_name().unwrap().to_str().unwrap();
    assert!(archived.starts_with("20260315T101500000Z-"), "{archived}");
    assert!(archived.ends_with("-batch-1.csv"), "{archived}");
    assert_eq!(
        files_in(&hub.path("returns/archive")),
        vec![archived.to_owned(), format!("{archived}.summary.json")]
    );
    let summary: Value = serde_json::from_slice(
        &std::fs::read(
            hub.path("returns/archive")
                .join(format!("{archived}.summary.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["items"][0]["outcome"], "applied");
    assert!(files_in(&hub.path("returns/processing")).is_empty());
    assert!(files_in(&hub.path("returns/rejected")).is_empty());
    assert_eq!(
        files_in(&hub.path("returns")),
        vec!["archive", "processing", "rejected"]
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_bad_row_rejects_its_whole_request_and_only_that_one() {
    let hub = Hub::start().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    hub.put(
        "returns",
        "batch-2.csv",
        &returns_file(&[
            GOOD_ROWS[0],
            // R-1's second row: a negative quantity and a lower-case unit.
            "R-1,C1,SO-1,USD,DC1,SKU-2,-1,ea,SIZE_FIT,exchange,5.00,0.40,",
            GOOD_ROWS[2],
            // R-3 disagrees with itself about the customer.
            "R-3,C3,SO-3,USD,DC1,SKU-4,1,EA,DAMAGED,refund,1.00,0,",
            "R-3,C9,SO-3,USD,DC1,SKU-5,1,EA,DAMAGED,refund,1.00,0,",
        ]),
    );

    let file = scan_one(&drop).await;
    assert_eq!((file.applied(), file.rejected()), (1, 2));
    let returns = hub.returns().await;
    assert_eq!(returns.len(), 1, "only R-2 is applied");
    assert_eq!(returns[0]["customer"], "C2");

    let rows = read_csv(file.rejects.as_ref().unwrap());
    let shown: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["request_ref"].as_str(),
                r["line"].as_str(),
                r["field"].as_str(),
                r["code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("R-1", "2", "", "group_rejected"),
            ("R-1", "3", "quantity", "invalid_value"),
            ("R-1", "3", "uom", "invalid_value"),
            ("R-3", "5", "", "group_rejected"),
            ("R-3", "6", "customer", "inconsistent"),
        ]
    );
    // The original row is kept beside the reason, ready to be corrected.
    assert_eq!(rows[1]["quantity"], "-1");
    assert_eq!(rows[1]["sku"], "SKU-2");
    assert!(
        rows[1]["reason"].contains("must not be negative"),
        "{}",
        rows[1]["reason"]
    );
    assert!(
        rows[2]["reason"].contains("upper case"),
        "{}",
        rows[2]["reason"]
    );
    assert!(
        rows[4]["reason"].contains("differs from line 5"),
        "{}",
        rows[4]["reason"]
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_file_missing_a_required_column_is_refused_whole_naming_it() {
    let hub = Hub::start().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    let without_currency = returns_file(&GOOD_ROWS)
        .replace(",currency,", ",")
        .replace(",USD,", ",")
        .replace(",EUR,", ",");
    hub.put("returns", "no-currency.csv", &without_currency);

    let file = scan_one(&drop).await;
    assert!(hub.returns().await.is_empty(), "nothing applied");
    assert!(file.items.is_empty());
    let refused = file.refused.as_deref().unwrap();
    assert!(refused.contains("\"currency\""), "{refused}");
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["field"], "currency");
    assert_eq!(rows[0]["code"], "missing_column");
    assert_eq!(rows[0]["line"], "1");
    assert!(file.archived.exists(), "refused files are archived too");

    // A misspelt column is refused too, rather than silently ignored.
    hub.put(
        "returns",
        "typo.csv",
        &returns_file(&GOOD_ROWS).replace("unit_tax,serials", "unit_tax,serial"),
    );
    let file = scan_one(&drop).await;
    assert!(hub.returns().await.is_empty());
    assert_eq!(
        read_csv(file.rejects.as_ref().unwrap())[0]["code"],
        "unknown_column"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_file_processed_again_after_a_crash_applies_nothing_twice() {
    let hub = Hub::start().await;
    let content = returns_file(&GOOD_ROWS);
    {
        let drop = hub.drop("returns", "kind = \"csv-returns\"");
        hub.put("returns", "batch-3.csv", &content);
        let file = scan_one(&drop).await;
        assert_eq!(file.applied(), 2);
    }
    // The crash: the hub applied the file but died before archiving it, so
    // it is still in processing/ when the hub starts again.
    std::fs::write(
        hub.path("returns/processing")
            .join("20260315T101500000Z-batch-3.csv"),
        &content,
    )
    .unwrap();
    let restarted = hub.drop("returns", "kind = \"csv-returns\"");
    let file = scan_one(&restarted).await;
    assert_eq!(file.file, "batch-3.csv");
    assert_eq!(
        (file.applied(), file.duplicates(), file.rejected()),
        (0, 2, 0)
    );
    assert_eq!(hub.returns().await.len(), 2, "no duplicate returns");
    assert!(files_in(&hub.path("returns/processing")).is_empty());

    // The same content dropped again later, under another name: applied
    // again as no-op duplicates, and the summary says so.
    hub.put("returns", "batch-3-again.csv", &content);
    let again = scan_one(&restarted).await;
    assert_eq!(again.duplicates(), 2);
    assert!(
        again.items[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not applied again")
    );
    assert_eq!(hub.returns().await.len(), 2);
    // Every copy is archived; none overwrote another.
    assert_eq!(files_in(&hub.path("returns/archive")).len(), 4);
    hub.stop().await;
}

#[tokio::test]
async fn a_file_the_store_could_not_take_waits_in_processing_for_the_restart() {
    let hub = Hub::start().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    // The engine is shut down (its committer gone) while the file comes in.
    hub.shutdown.cancel();
    hub.tracker.close();
    hub.tracker.wait().await;
    hub.put("returns", "batch-4.csv", &returns_file(&GOOD_ROWS));
    let report = drop.run_once().await.unwrap();
    assert!(report.files.is_empty());
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, "batch-4.csv");
    assert_eq!(files_in(&hub.path("returns/processing")).len(), 1);
    assert!(files_in(&hub.path("returns/archive")).is_empty());

    let hub = hub.restart().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    let file = scan_one(&drop).await;
    assert_eq!((file.file.as_str(), file.applied()), ("batch-4.csv", 2));
    assert_eq!(hub.returns().await.len(), 2);
    assert!(files_in(&hub.path("returns/processing")).is_empty());
    hub.stop().await;
}

#[tokio::test]
async fn a_half_written_file_or_another_suffix_is_left_alone() {
    let hub = Hub::start().await;
    let drop = hub.drop("returns", "kind = \"csv-returns\"");
    std::fs::write(hub.path("returns/batch.csv.tmp"), returns_file(&GOOD_ROWS)).unwrap();
    std::fs::write(hub.path("returns/notes.txt"), "not for us").unwrap();
    let report = drop.run_once().await.unwrap();
    assert!(report.files.is_empty());
    assert!(hub.path("returns/batch.csv.tmp").exists());
    assert!(hub.returns().await.is_empty());
    hub.stop().await;
}

#[tokio::test]
async fn a_fixed_width_file_is_read_by_its_layout() {
    let hub = Hub::start().await;
    let layout = r#"
kind = "fixed-width-returns"
fields = [
  { name = "request_ref", start = 1, length = 6 },
  { name = "customer", start = 7, length = 6 },
  { name = "order_ref", start = 13, length = 8 },
  { name = "currency", start = 21, length = 3 },
  { name = "site", start = 24, length = 4 },
  { name = "sku", start = 28, length = 10 },
  { name = "quantity", start = 38, length = 5 },
  { name = "uom", start = 43, length = 3 },
  { name = "reason", start = 46, length = 10 },
  { name = "requested_outcome", start = 56, length = 12 },
  { name = "unit_price", start = 68, length = 9 },
  { name = "unit_tax", start = 77, length = 7 },
]
"#;
    let drop = hub.drop("legacy", layout);
    let record = |r: &str, c: &str, o: &str, sku: &str, q: &str, price: &str| {
        format!(
            "{r:<6}{c:<6}{o:<8}USD{:<4}{sku:<10}{q:>5}EA {:<10}{:<12}{price:>9}{:>7}",
            "DC1", "DAMAGED", "refund", "0.50"
        )
    };
    let content = format!(
        "{}\r\n{}\r\n\r\n{}\r\n",
        record("L-1", "C1", "SO-10", "SKU-1", "3", "12.00"),
        record("L-1", "C1", "SO-10", "SKU-2", "1", "4.25"),
        // A price that is not a number rejects L-2 alone.
        record("L-2", "C2", "SO-11", "SKU-3", "1", "12,00"),
    );
    hub.put("legacy", "RETURNS.DAT", &content);

    let file = scan_one(&drop).await;
    assert_eq!((file.applied(), file.rejected()), (1, 1));
    let l1 = file.items.iter().find(|i| i.reference == "L-1").unwrap();
    let summary = hub.summary(l1.return_id.as_deref().unwrap()).await;
    assert_eq!(summary["order_ref"], "SO-10");
    assert_eq!(summary["lines"][0]["line"]["quantity"], "3");
    assert_eq!(summary["lines"][1]["line"]["unit_price"]["amount"], "4.25");
    assert_eq!(summary["lines"][1]["line"]["unit_tax"]["amount"], "0.50");

    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["line"], "4", "blank lines still count");
    assert_eq!(rows[0]["field"], "unit_price");
    assert!(
        rows[0]["record"].starts_with("L-2   C2"),
        "the record as it was"
    );
    hub.stop().await;
}

fn request(order: &str) -> ReturnRequest {
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    serde_json::from_value(json!({
        "channel": "portal", "customer": "C1", "order_ref": order, "currency": "USD", "site": "DC1",
        "lines": [
            {"line_no": 1, "sku": "SKU-1", "quantity": "2", "uom": "EA", "reason_code": "DAMAGED",
             "requested_outcome": "refund", "unit_price": money("10.00"), "unit_tax": money("1.00")},
            {"line_no": 2, "sku": "SKU-2", "quantity": "1", "uom": "EA", "reason_code": "DAMAGED",
             "requested_outcome": "refund", "unit_price": money("5.00"), "unit_tax": money("0.00")}
        ]
    }))
    .unwrap()
}

async fn approved_return(engine: &Engine, order: &str) -> (ReturnId, String) {
    let meta = || CommandMeta {
        partner: "portal".into(),
        ..CommandMeta::default()
    };
    let created = engine.create(request(order), meta()).await.unwrap();
    engine
        .execute(
            created.return_id,
            Command::Approve(Approve::default()),
            meta(),
        )
        .await
        .unwrap();
    (created.return_id, created.return_id.rma_number())
}

#[tokio::test]
async fn a_receipts_file_records_receipts_of_approved_returns() {
    let hub = Hub::start().await;
    let (by_id, _) = approved_return(&hub.engine, "SO-7").await;
    let (_, rma) = approved_return(&hub.engine, "SO-8").await;
    let drop = hub.drop("receipts", "kind = \"csv-receipts\"");
    hub.put(
        "receipts",
        "wms-0001.csv",
        &format!(
            "receipt_ref,return_id,rma_number,order_ref,line_no,sku,quantity\n\
             GR-1,{by_id},,,1,SKU-1,2\n\
             GR-1,{by_id},,,,SKU-2,1\n\
             GR-2,,{rma},SO-8,,SKU-1,1\n\
             GR-3,,RMA-000000000000-000000000000,SO-8,,SKU-1,1\n\
             GR-4,{by_id},,,,SKU 1,x\n"
        ),
    );

    let file = scan_one(&drop).await;
    assert_eq!((file.applied(), file.rejected()), (2, 2));
    let first = hub.summary(&by_id.to_string()).await;
    assert_eq!(first["lines"][0]["received"], "2");
    assert_eq!(first["lines"][1]["received"], "1");
    let gr2 = file.items.iter().find(|i| i.reference == "GR-2").unwrap();
    let second = hub.summary(gr2.return_id.as_deref().unwrap()).await;
    assert_eq!(second["rma_number"], rma.as_str());
    assert_eq!(second["lines"][0]["received"], "1");

    let rows = read_csv(file.rejects.as_ref().unwrap());
    let codes: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["receipt_ref"].as_str(),
                r["field"].as_str(),
                r["code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("GR-3", "", "return_not_found"),
            ("GR-4", "sku", "invalid_value"),
            ("GR-4", "quantity", "invalid_value"),
        ]
    );

    // The same receipts again (a WMS re-sending its export): duplicates.
    hub.put(
        "receipts",
        "wms-0001-resent.csv",
        &std::fs::read_to_string(&file.archived).unwrap(),
    );
    let again = scan_one(&drop).await;
    assert_eq!(again.duplicates(), 2);
    let first = hub.summary(&by_id.to_string()).await;
    assert_eq!(first["lines"][0]["received"], "2", "not received twice");
    hub.stop().await;
}

/// Receipts, then inspections, then putaways, each from its own drop
/// folder: the return goes through the warehouse's steps with what the
/// files say (conditions, lot, evidence, dispositions with locations); bad
/// rows are rejected naming the column, and nothing of their event is
/// applied.
#[tokio::test]
async fn inspection_and_putaway_files_take_received_units_to_their_dispositions() {
    let hub = Hub::start().await;
    let (id, rma) = approved_return(&hub.engine, "SO-9").await;
    let receipts = hub.drop("receipts", "kind = \"csv-receipts\"");
    hub.put(
        "receipts",
        "gr.csv",
        &format!(
            "receipt_ref,return_id,line_no,sku,quantity\nGR-1,{id},1,SKU-1,2\nGR-1,{id},2,SKU-2,1\n"
        ),
    );
    assert_eq!(scan_one(&receipts).await.applied(), 1);

    let inspections = hub.drop("inspections", "kind = \"csv-inspections\"");
    hub.put(
        "inspections",
        "qc.csv",
        &format!(
            "inspection_ref,rma_number,order_ref,line_no,quantity,condition,serials,lot,evidence_ref\n\
             QC-1,{rma},SO-9,1,2,A,,LOT-7,PHOTO-1\n\
             QC-1,{rma},SO-9,2,1,DMG,,,\n\
             QC-2,{rma},SO-9,1,1,not a code,,,\n"
        ),
    );
    let file = scan_one(&inspections).await;
    assert_eq!((file.applied(), file.rejected()), (1, 1), "{file:?}");
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(
        (
            rows[0]["inspection_ref"].as_str(),
            rows[0]["field"].as_str()
        ),
        ("QC-2", "condition"),
        "{rows:?}"
    );
    let summary = hub.summary(&id.to_string()).await;
    assert_eq!(summary["lines"][0]["inspected"], "2", "{summary}");
    assert_eq!(summary["lines"][1]["conditions"]["DMG"], "1", "{summary}");

    let putaways = hub.drop("putaways", "kind = \"csv-putaways\"");
    hub.put(
        "putaways",
        "pa.csv",
        &format!(
            "putaway_ref,return_id,line_no,quantity,disposition,location\n\
             PA-1,{id},1,2,restock,BIN-A1\n\
             PA-1,{id},2,1,scrap,SCRAP-CAGE\n\
             PA-2,{id},1,1,teleport,BIN-A1\n"
        ),
    );
    let file = scan_one(&putaways).await;
    assert_eq!((file.applied(), file.rejected()), (1, 1), "{file:?}");
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(
        (rows[0]["putaway_ref"].as_str(), rows[0]["field"].as_str()),
        ("PA-2", "disposition"),
        "{rows:?}"
    );
    let summary = hub.summary(&id.to_string()).await;
    assert_eq!(
        summary["lines"][0]["dispositioned"]["restock"], "2",
        "{summary}"
    );
    assert_eq!(
        summary["lines"][1]["dispositioned"]["scrap"], "1",
        "{summary}"
    );
    assert_eq!(summary["status"], "dispositioned", "{summary}");

    // A file without a column its kind needs is refused whole.
    hub.put(
        "putaways",
        "no-location.csv",
        &format!("putaway_ref,return_id,line_no,quantity,disposition\nPA-3,{id},1,1,restock\n"),
    );
    let file = scan_one(&putaways).await;
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(
        (rows[0]["field"].as_str(), rows[0]["code"].as_str()),
        ("location", "missing_column")
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_receipts_file_that_cannot_name_its_returns_is_refused() {
    let hub = Hub::start().await;
    let drop = hub.drop("receipts", "kind = \"csv-receipts\"");
    hub.put(
        "receipts",
        "r.csv",
        "receipt_ref,rma_number,sku,quantity\nGR-1,RMA-1,SKU-1,1\n",
    );
    let file = scan_one(&drop).await;
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(
        (rows[0]["field"].as_str(), rows[0]["code"].as_str()),
        ("order_ref", "missing_column")
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_master_data_file_goes_through_the_import_all_or_nothing() {
    let hub = Hub::start().await;
    let drop = hub.drop("skus", "kind = \"csv-master\"\nmaster = \"skus\"");
    hub.put(
        "skus",
        "skus.csv",
        "sku,description,category,returnable,base_uom\n\
         DRILL-1,Drill,tools,true,EA\n\
         SAW-1,Saw,tools,yes,EA\n",
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.applied(), 1);
    let master = hub.engine.reload_master().await.unwrap();
    assert!(master.sku(&Sku::parse("DRILL-1").unwrap()).is_some());
    assert!(master.sku(&Sku::parse("SAW-1").unwrap()).is_some());

    // One bad row: nothing of the file is stored, every problem on its line.
    hub.put(
        "skus",
        "skus-2.csv",
        "sku,description,category,returnable,base_uom\n\
         HAMMER-1,Hammer,tools,true,EA\n\
         NAIL-1,Nails,tools,perhaps,ea\n",
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.rejected(), 1);
    let master = hub.engine.reload_master().await.unwrap();
    assert!(master.sku(&Sku::parse("HAMMER-1").unwrap()).is_none());
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["line"] == "3" && r["sku"] == "NAIL-1")
    );
    let fields: Vec<&str> = rows.iter().map(|r| r["field"].as_str()).collect();
    assert!(
        fields.contains(&"returnable") && fields.contains(&"base_uom"),
        "{fields:?}"
    );
    hub.stop().await;
}

const ISA: &str = "ISA*00*          *00*          *ZZ*MEGAMART       *ZZ*BACKHAUL       *240312*0915*^*00501*000004711*0*P*>~";

fn set(control: &str, reference: &str, body: &[&str], count: Option<usize>) -> String {
    let mut segments = vec![
        format!("ST*180*{control}"),
        format!("BGN*00*{reference}*20240312"),
        "N1*BY*MEGAMART STORES*92*MM-0042".to_owned(),
    ];
    segments.extend(body.iter().map(|s| (*s).to_owned()));
    let n = count.unwrap_or(segments.len() + 1);
    segments.push(format!("SE*{n}*{control}"));
    segments.join("~") + "~"
}

fn interchange(sets: &[String], iea_groups: usize) -> String {
    format!(
        "{ISA}\nGS*AN*MEGAMART*BACKHAUL*20240312*0915*4711*X*005010~\n{}GE*{}*4711~\nIEA*{iea_groups}*000004711~\n",
        sets.concat(),
        sets.len()
    )
}

const LINE_A: [&str; 4] = [
    "BLI*SK*SKU-AX100*2*EA*UCP*19.99",
    "N9*LI*001",
    "RDR**DM",
    "PRF*PO-88123",
];
const LINE_B: [&str; 3] = [
    "BLI*SK*SKU-CB22*1*EA*UCP*120.5",
    "N9*LI*002",
    "PRF*PO-88124",
];

fn x12_drop(hub: &Hub) -> FileDrop {
    hub.drop(
        "edi",
        &format!(
            r#"kind = "x12"
[x12]
our_qualifier = "ZZ"
our_id = "BACKHAUL"
outbound_dir = {:?}
currency = "USD"
site = "DC1"
default_reason = "OTHER"
reasons = {{ DM = "DAMAGED" }}
"#,
            hub.path("edi-out").display().to_string()
        ),
    )
}

fn segments_of(ack: &str) -> Vec<String> {
    ack.split('~')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn a_good_180_interchange_opens_returns_and_is_acknowledged_as_accepted() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);
    let content = interchange(
        &[
            set("0001", "RAR-1", &LINE_A, None),
            set(
                "0002",
                "RAR-2",
                &[LINE_A.as_slice(), LINE_B.as_slice()].concat(),
                None,
            ),
        ],
        1,
    );
    hub.put("edi", "megamart-4711.edi", &content);

    let file = scan_one(&drop).await;
    assert_eq!((file.applied(), file.rejected()), (2, 0));
    assert!(file.rejects.is_none());
    let returns = hub.returns().await;
    assert_eq!(returns.len(), 2);
    let second = file
        .items
        .iter()
        .find(|i| i.reference == "4711/0002")
        .unwrap();
    let summary = hub.summary(second.return_id.as_deref().unwrap()).await;
    assert_eq!(summary["channel"], "edi");
    assert_eq!(summary["customer"], "MM-0042");
    assert_eq!(summary["order_ref"], "PO-88123");
    assert_eq!(summary["lines"][0]["line"]["reason_code"], "DAMAGED");
    assert_eq!(summary["lines"][1]["line"]["reason_code"], "OTHER");
    assert_eq!(
        summary["lines"][1]["line"]["unit_price"]["amount"],
        "120.50"
    );

    let ack_path = file.ack.as_ref().unwrap();
    assert_eq!(
        ack_path,
        &hub.path("edi-out").join("997-MEGAMART-000004711.edi")
    );
    let ack = std::fs::read_to_string(ack_path).unwrap();
    let segments = segments_of(&ack);
    assert!(
        segments[0].starts_with("ISA*00*          *00*          *ZZ*BACKHAUL       *ZZ*MEGAMART")
    );
    assert!(segments.contains(&"ST*997*0001".to_owned()), "{segments:?}");
    assert!(
        segments.contains(&"AK1*AN*4711*005010".to_owned()),
        "{segments:?}"
    );
    assert_eq!(
        segments.iter().filter(|s| *s == "AK5*A").count(),
        2,
        "{segments:?}"
    );
    assert!(segments.contains(&"AK9*A*2*2*2".to_owned()), "{segments:?}");

    // The partner sends the same interchange again: duplicates, the same
    // acknowledgement.
    hub.put("edi", "megamart-4711-resent.edi", &content);
    let again = scan_one(&drop).await;
    assert_eq!(again.duplicates(), 2);
    assert_eq!(hub.returns().await.len(), 2);
    hub.stop().await;
}

#[tokio::test]
async fn a_truncated_interchange_applies_nothing_and_is_rejected_with_a_ta1() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);
    let whole = interchange(&[set("0001", "RAR-1", &LINE_A, None)], 1);
    let cut = &whole[..whole.find("N9*LI").unwrap() + 5];
    hub.put("edi", "cut.edi", cut);

    let file = scan_one(&drop).await;
    assert!(hub.returns().await.is_empty(), "nothing applied");
    let refused = file.refused.as_deref().unwrap();
    assert!(refused.contains("truncated"), "{refused}");
    let ta1 = std::fs::read_to_string(file.ack.as_ref().unwrap()).unwrap();
    let segments = segments_of(&ta1);
    assert_eq!(
        segments[1], "TA1*000004711*240312*0915*R*023",
        "{segments:?}"
    );
    assert_eq!(segments[2], "IEA*0*000004711");
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(rows[0]["code"], "interchange_rejected");
    hub.stop().await;
}

#[tokio::test]
async fn a_wrong_envelope_count_rejects_the_whole_interchange() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);
    // IEA says two groups; there is one.
    hub.put(
        "edi",
        "iea.edi",
        &interchange(&[set("0001", "RAR-1", &LINE_A, None)], 2),
    );

    let file = scan_one(&drop).await;
    assert!(hub.returns().await.is_empty(), "nothing applied");
    assert_eq!(file.rejected(), 1);
    let ack = std::fs::read_to_string(file.ack.as_ref().unwrap()).unwrap();
    let segments = segments_of(&ack);
    assert!(
        segments.iter().any(|s| s.starts_with("AK9*R")),
        "{segments:?}"
    );
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert!(
        rows.iter()
            .any(|r| r["field"] == "IEA01" && r["code"] == "interchange_rejected"),
        "{rows:?}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_wrong_se_count_rejects_that_set_only() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);
    let content = interchange(
        &[
            set("0001", "RAR-1", &LINE_A, Some(99)),
            set("0002", "RAR-2", &LINE_B, None),
            // A reason the agreement does not map: refused by the mapping.
            set(
                "0003",
                "RAR-3",
                &["BLI*SK*SKU-9*1*EA", "RDR**ZZ", "PRF*PO-1"],
                None,
            ),
        ],
        1,
    );
    hub.put("edi", "se.edi", &content);

    let file = scan_one(&drop).await;
    assert_eq!((file.applied(), file.rejected()), (1, 2));
    assert_eq!(hub.returns().await.len(), 1);
    let applied = file.items.iter().find(|i| i.return_id.is_some()).unwrap();
    assert_eq!(applied.reference, "4711/0002");

    let segments = segments_of(&std::fs::read_to_string(file.ack.as_ref().unwrap()).unwrap());
    let from = |control: &str| {
        let at = segments
            .iter()
            .position(|s| *s == format!("AK2*180*{control}"))
            .unwrap();
        segments[at + 1..]
            .iter()
            .find(|s| s.starts_with("AK5"))
            .unwrap()
            .clone()
    };
    assert_eq!(from("0001"), "AK5*R*4");
    assert_eq!(from("0002"), "AK5*A");
    assert!(from("0003").starts_with("AK5*R"), "{segments:?}");
    assert!(segments.contains(&"AK9*P*3*3*1".to_owned()), "{segments:?}");

    let rows = read_csv(file.rejects.as_ref().unwrap());
    let first = rows.iter().find(|r| r["set"] == "0001").unwrap();
    assert_eq!(
        (first["field"].as_str(), first["code"].as_str()),
        ("SE01", "wrong_count")
    );
    assert_eq!(first["reference"], "RAR-1");
    let third = rows.iter().find(|r| r["set"] == "0003").unwrap();
    assert!(third["reason"].contains("\"ZZ\""), "{}", third["reason"]);
    hub.stop().await;
}

#[tokio::test]
async fn an_interchange_for_another_receiver_is_rejected() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);
    let content = interchange(&[set("0001", "RAR-1", &LINE_A, None)], 1)
        .replace("*ZZ*BACKHAUL       *", "*ZZ*SOMEONEELSE    *");
    hub.put("edi", "other.edi", &content);
    let file = scan_one(&drop).await;
    assert!(hub.returns().await.is_empty());
    assert!(file.refused.as_deref().unwrap().contains("SOMEONEELSE"));
    // The rejection comes from this hub, not in the other party's name.
    let reply = std::fs::read_to_string(file.ack.as_ref().unwrap()).unwrap();
    let reply = Interchange::parse_valid(reply.as_bytes()).unwrap();
    assert_eq!(reply.sender(), ("ZZ", "BACKHAUL"));
    assert_eq!(reply.receiver(), ("ZZ", "MEGAMART"));
    assert_eq!(reply.groups()[0].header().element(2), "BACKHAUL");
    hub.stop().await;
}

/// The connector answering EDI partners, writing into `out`.
fn x12_partner(out: &Path) -> Arc<dyn backhaul_engine::Sink> {
    let section = format!(
        r#"
[edi]
kind = "x12-partner"
[edi.x12_partner]
outbound_dir = {:?}
sender_qualifier = "ZZ"
sender_id = "BACKHAUL"
[edi.x12_partner.partners.MM-0042]
receiver_qualifier = "ZZ"
receiver_id = "MEGAMART"
usage = "P"
"#,
        out.display().to_string()
    );
    let connectors: BTreeMap<String, backhaul_connectors::ConnectorConfig> =
        toml::from_str(&section).unwrap();
    let mut sinks = backhaul_connectors::build(&connectors, &BTreeMap::new()).unwrap();
    sinks.remove(0).0
}

/// The 180 files in `dir`, by name, with their text.
fn edi_files(dir: &Path) -> Vec<(String, String)> {
    files_in(dir)
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            (name, text)
        })
        .collect()
}

#[tokio::test]
async fn an_edi_return_approved_or_rejected_is_answered_with_a_180_to_the_partner() {
    let hub = Hub::connected_to(BTreeSet::from([Target::Edi])).await;
    let out = hub.path("partner-out");
    std::fs::create_dir_all(&out).unwrap();
    let sink = x12_partner(&out);
    let dispatcher = Dispatcher::new(
        hub.engine.clone(),
        DispatcherConfig::default(),
        vec![(sink.clone(), backhaul_engine::DeliveryPolicy::default())],
    )
    .unwrap();
    let drop = x12_drop(&hub);
    hub.put(
        "edi",
        "megamart-4711.edi",
        &interchange(
            &[
                set("0001", "RAR-1", &LINE_A, None),
                set(
                    "0002",
                    "RAR-2",
                    &[LINE_A.as_slice(), LINE_B.as_slice()].concat(),
                    None,
                ),
            ],
            1,
        ),
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.applied(), 2);
    let id_of = |reference: &str| {
        let item = file
            .items
            .iter()
            .find(|i| i.reference == reference)
            .unwrap();
        ReturnId::parse(item.return_id.as_deref().unwrap()).unwrap()
    };
    let (rejected, approved) = (id_of("4711/0001"), id_of("4711/0002"));
    let meta = || CommandMeta {
        partner: "support".into(),
        ..CommandMeta::default()
    };
    // Nothing goes to the partner while the returns wait for a decision.
    assert_eq!(dispatcher.run_once().await.unwrap().claimed, 0);

    // Line 001 authorised for one of its two units, line 002 for none.
    let lq = |n: u32, units: u32| LineQuantity {
        line_no: LineNo::parse(n).unwrap(),
        quantity: Quantity::from_units(units),
    };
    hub.engine
        .execute(
            approved,
            Command::Approve(Approve {
                lines: vec![lq(1, 1), lq(2, 0)],
                expires_at: None,
            }),
            meta(),
        )
        .await
        .unwrap();
    let report = dispatcher.run_once().await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");

    let written = edi_files(&out);
    assert_eq!(written.len(), 1, "{written:?}");
    let (name, text) = &written[0];
    assert!(
        name.starts_with("180-MEGAMART-") && name.ends_with(".edi"),
        "{name}"
    );
    let interchange = Interchange::parse_valid(text.as_bytes()).unwrap();
    assert!(
        interchange.validate().is_empty(),
        "{:?}",
        interchange.validate()
    );
    assert_eq!(interchange.receiver(), ("ZZ", "MEGAMART"));
    let rma = notifications(&interchange).remove(0).unwrap();
    assert_eq!(rma.rma_number, approved.rma_number());
    assert_eq!(
        rma.request_reference, "RAR-2",
        "BGN06: the partner's request"
    );
    assert_eq!(rma.partner.id, "MM-0042");
    let lines: Vec<(&str, &str, String, Option<&str>)> = rma
        .lines
        .iter()
        .map(|l| {
            (
                l.line_id.as_str(),
                l.sku.as_str(),
                l.quantity.to_string(),
                l.disposition.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("001", "SKU-AX100", "1".to_owned(), Some("RA")),
            ("002", "SKU-CB22", "0".to_owned(), Some("RD")),
        ]
    );

    // The same delivery once more (a crash after the file was renamed):
    // the same file, the same control numbers.
    let delivery = hub
        .store
        .list_deliveries(&DeliveryFilter {
            target: Some("edi".into()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .remove(0);
    let action: Action = serde_json::from_str(delivery.payload.as_str()).unwrap();
    sink.deliver(DeliveryRequest {
        delivery_id: delivery.id,
        key: &delivery.delivery_key,
        attempt: 2,
        action: &action,
        prerequisites: &BTreeMap::new(),
        correlation_id: delivery.correlation_id,
        master: &MasterData::empty(),
    })
    .await
    .unwrap();
    assert_eq!(edi_files(&out), written);

    // The other request refused: every line denied, the reason in RDR04.
    hub.engine
        .execute(
            rejected,
            Command::Reject {
                reason: "outside the return window".into(),
            },
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap().delivered, 1);
    let written = edi_files(&out);
    assert_eq!(written.len(), 2);
    let (_, text) = written
        .iter()
        .find(|(_, text)| text.contains("RAR-1~"))
        .unwrap();
    let interchange = Interchange::parse_valid(text.as_bytes()).unwrap();
    assert!(interchange.validate().is_empty());
    let rma = notifications(&interchange).remove(0).unwrap();
    assert_eq!(rma.rma_number, rejected.rma_number());
    assert_eq!(rma.request_reference, "RAR-1");
    assert_eq!(rma.lines.len(), 1);
    assert!(rma.lines[0].quantity.is_zero());
    assert_eq!(rma.lines[0].disposition.as_deref(), Some("RD"));
    assert_eq!(
        rma.lines[0].description.as_deref(),
        Some("outside the return window")
    );
    // Each interchange has its own control number.
    let controls: BTreeSet<String> = edi_files(&out)
        .iter()
        .map(|(_, text)| {
            Interchange::parse_valid(text.as_bytes())
                .unwrap()
                .control_number()
                .to_owned()
        })
        .collect();
    assert_eq!(controls.len(), 2);
    hub.stop().await;
}

/// A group of the partner's 997s answering our group `group` (its 180
/// set `group` too), with `ak5`/`ak9` the partner's verdicts.
fn fa_group(group: &str, ak5: &str, ak9: &str) -> String {
    format!(
        "GS*FA*MEGAMART*BACKHAUL*20240313*1000*902*X*005010~\nST*997*0001~AK1*AR*{group}*005010~AK2*180*{group}~AK5*{ak5}~AK9*{ak9}~SE*6*0001~GE*1*902~\n"
    )
}

fn fa_interchange(groups: &[String]) -> String {
    format!(
        "{}\n{}IEA*{}*000004711~\n",
        ISA,
        groups.concat(),
        groups.len()
    )
}

#[tokio::test]
async fn a_partners_997_for_our_180_is_recorded_and_never_answered() {
    let hub = Hub::start().await;
    let drop = x12_drop(&hub);

    hub.put(
        "edi",
        "997-accepted.edi",
        &fa_interchange(&[fa_group("17", "A", "A*1*1*1")]),
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.acknowledgements(), 1, "{file:?}");
    assert_eq!((file.applied(), file.rejected()), (0, 0), "{file:?}");
    assert!(file.ack.is_none(), "an acknowledgement is not acknowledged");
    assert!(file.refused.is_none());
    let reason = file.items[0].reason.as_deref().unwrap();
    assert!(reason.contains("our group 17 (AR): accepted"), "{reason}");

    hub.put(
        "edi",
        "997-rejected.edi",
        &fa_interchange(&[fa_group("18", "R*5", "R*1*1*0")]),
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.acknowledgements(), 1, "{file:?}");
    assert!(file.ack.is_none());
    let reason = file.items[0].reason.as_deref().unwrap();
    assert!(reason.contains("our group 18 (AR): rejected"), "{reason}");
    assert!(
        reason.contains("sets not accepted: 18 rejected"),
        "{reason}"
    );

    // A 997 that cannot be read is refused in the reject file, still not
    // answered.
    hub.put(
        "edi",
        "997-bad.edi",
        &fa_interchange(&[fa_group("19", "Q", "A*1*1*1")]),
    );
    let file = scan_one(&drop).await;
    assert_eq!(file.rejected(), 1, "{file:?}");
    assert!(file.ack.is_none());
    let rows = read_csv(file.rejects.as_ref().unwrap());
    assert_eq!(rows[0]["field"], "AK501", "{rows:?}");

    // Beside a group of 180s: the requests are applied and acknowledged,
    // the 997s read; the reply acknowledges the 180 group alone.
    let mixed = interchange(&[set("0001", "RAR-9", &LINE_A, None)], 2).replace(
        "IEA*2*",
        &format!("{}IEA*2*", fa_group("20", "A", "A*1*1*1")),
    );
    hub.put("edi", "mixed.edi", &mixed);
    let file = scan_one(&drop).await;
    assert_eq!(
        (file.applied(), file.acknowledgements()),
        (1, 1),
        "{file:?}"
    );
    let reply = std::fs::read_to_string(file.ack.as_ref().unwrap()).unwrap();
    let ak1: Vec<String> = segments_of(&reply)
        .into_iter()
        .filter(|s| s.starts_with("AK1"))
        .collect();
    assert_eq!(ak1, ["AK1*AN*4711*005010"], "{reply}");
    assert_eq!(hub.returns().await.len(), 1);
    hub.stop().await;
}

#[test]
fn the_configuration_is_checked_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let at = |section: &str| {
        let mut drops = BTreeMap::new();
        drops.insert(
            "d".to_owned(),
            config(&format!(
                "dir = {:?}\n{section}",
                dir.path().join("d").display().to_string()
            )),
        );
        validate_all(&drops).unwrap_err().to_string()
    };
    assert!(at("kind = \"csv-master\"").starts_with("drops.d.master: required"));
    assert!(at("kind = \"csv-master\"\nmaster = \"planets\"").contains("drops.d.master"));
    assert!(at("kind = \"csv-returns\"\ninterval_ms = 0").starts_with("drops.d.interval_ms"));
    assert!(
        at("kind = \"csv-returns\"\nmaster = \"skus\"").starts_with("drops.d.master: is not used")
    );
    assert!(at("kind = \"x12\"").starts_with("drops.d.x12: required"));
    assert!(
        at("kind = \"fixed-width-returns\"\nfields = [{ name = \"sku\", start = 1, length = 5 }]")
            .contains("has no \"request_ref\"")
    );
    assert!(at("kind = \"csv-returns\"\nsuffixes = [\".tmp\"]").starts_with("drops.d.suffixes"));
    // A file where the folder should be.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let mut drops = BTreeMap::new();
    drops.insert(
        "f".to_owned(),
        config(&format!(
            "kind = \"csv-returns\"\ndir = {:?}",
            dir.path().join("file").display().to_string()
        )),
    );
    let err = validate_all(&drops).unwrap_err().to_string();
    assert!(
        err.starts_with("drops.f.dir:") && err.contains("not a folder"),
        "{err}"
    );
    // Unknown keys are refused by serde.
    assert!(
        toml::from_str::<DropConfig>("kind = \"csv-returns\"\ndir = \"x\"\ndirr = \"y\"").is_err()
    );
    // config check creates nothing.
    assert!(!dir.path().join("d").exists());
}
