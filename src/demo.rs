//! `backhaul demo`: a few hundred returns driven through every stage on the
//! embedded default (SQLite), the way partners would drive them: each
//! partner (portal, support, carrier, WMS, ERP/finance) has its own API key
//! and sends JSON requests with idempotency keys to the real router. The
//! scenario mix includes partial receipts a week apart, split dispositions,
//! over-receipts and unexpected items, duplicates, out-of-order carrier scans,
//! rejected requests, cancellations after the label, expiry and bad input.
//! Time is a manual clock, so "a week later" takes no time.
//!
//! The orchestration issue later replaces these scripted partners with
//! simulators behind connectors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use backhaul_api::{ApiConfig, AppState, Scope, generate_key, router};
use backhaul_engine::{Clock, Engine, EngineConfig, ManualClock};
use backhaul_store::{AnyStore, EventStore, SqliteStore, SqliteSync, SummaryFilter};
use chrono::{Duration, Utc};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Returns driven at the same time.
const PARALLEL: usize = 32;

/// What each scripted return will go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Standard,
    PartialReceipt,
    SplitDisposition,
    OverAndUnexpected,
    Rejected,
    ReviewThenApproved,
    CancelledAfterLabel,
    Expired,
}

impl Scenario {
    fn pick(rng: &mut StdRng) -> Scenario {
        match rng.gen_range(0..100) {
            0..=39 => Scenario::Standard,
            40..=54 => Scenario::PartialReceipt,
            55..=69 => Scenario::SplitDisposition,
            70..=76 => Scenario::OverAndUnexpected,
            77..=82 => Scenario::Rejected,
            83..=88 => Scenario::ReviewThenApproved,
            89..=94 => Scenario::CancelledAfterLabel,
            _ => Scenario::Expired,
        }
    }
}

/// A scripted return: scenario plus its request.
#[derive(Debug, Clone)]
struct Plan {
    idx: usize,
    scenario: Scenario,
    /// (sku, quantity, unit price in cents, reason)
    lines: Vec<(String, u32, i64, &'static str)>,
    order_ref: String,
    customer: String,
    send_duplicates: bool,
}

/// Counters shared by all drivers.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    replayed: AtomicU64,
    refused: AtomicU64,
    bad_input: AtomicU64,
}

/// Partners talking to the hub through the router, each with its own key.
struct Hub {
    router: Router,
    tokens: BTreeMap<&'static str, String>,
    counters: Counters,
}

impl Hub {
    async fn call(
        &self,
        partner: &str,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let token = self.tokens.get(partner).context("unknown partner")?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(b)?))?,
            None => req.body(Body::empty())?,
        };
        let resp = tower::ServiceExt::oneshot(self.router.clone(), req).await?;
        let status = resp.status();
        if resp.headers().get("idempotent-replayed").is_some() {
            self.counters.replayed.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok((status, value))
    }

    /// A command that must succeed.
    async fn command(
        &self,
        partner: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let (status, value) = self
            .call(partner, "POST", path, Some(key), Some(&body))
            .await?;
        if !status.is_success() {
            bail!("{partner} POST {path} failed with {status}: {value}");
        }
        Ok(value)
    }

    /// A command the hub is expected to refuse (counted, not an error).
    async fn refused(
        &self,
        partner: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> anyhow::Result<()> {
        let (status, value) = self
            .call(partner, "POST", path, Some(key), Some(&body))
            .await?;
        if status.is_success() {
            bail!("{partner} POST {path} should have been refused: {value}");
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY && value["code"] == "invalid_body" {
            self.counters.bad_input.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn money(cents: i64) -> Value {
    json!({"amount": Decimal::new(cents, 2).to_string(), "currency": "USD"})
}

const SKUS: &[(&str, i64)] = &[
    ("DRILL-18V", 12900),
    ("SAW-CIRC-7", 8950),
    ("BIT-SET-32", 2499),
    ("GLOVE-L", 1299),
    ("LEVEL-24", 3450),
    ("LADDER-6FT", 15900),
];
const REASONS: &[&str] = &["DAMAGED", "DEFECTIVE", "WRONG_ITEM", "CHANGED_MIND"];

fn plan(idx: usize, rng: &mut StdRng) -> Plan {
    let scenario = Scenario::pick(rng);
    let n_lines = rng.gen_range(1..=3);
    let mut lines = Vec::new();
    let mut skus: Vec<usize> = (0..SKUS.len()).collect();
    for _ in 0..n_lines {
        let (sku, price) = SKUS[skus.remove(rng.gen_range(0..skus.len()))];
        let qty = match scenario {
            Scenario::SplitDisposition | Scenario::PartialReceipt => rng.gen_range(4..=10),
            _ => rng.gen_range(1..=4),
        };
        lines.push((
            sku.to_owned(),
            qty,
            price,
            REASONS[rng.gen_range(0..REASONS.len())],
        ));
    }
    // Every fifth order is returned twice: a second return against the same order.
    let order_no = if idx % 5 == 4 { idx - 1 } else { idx };
    Plan {
        idx,
        scenario,
        lines,
        order_ref: format!("SO-{:06}", 100_000 + order_no),
        customer: format!("C{:04}", rng.gen_range(1..=60)),
        send_duplicates: rng.gen_bool(0.25),
    }
}

fn unit_tax(price: i64) -> i64 {
    price * 8 / 100
}

/// Runs the demo and prints the summary.
pub(crate) async fn run(
    dir: Option<PathBuf>,
    n: usize,
    seed: u64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let temp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    let db = dir.join("backhaul.db");
    let store = AnyStore::Sqlite(
        SqliteStore::open(&db, SqliteSync::Full)
            .await
            .with_context(|| format!("cannot open {}", db.display()))?,
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let clock = ManualClock::new(Utc::now());
    let engine = Engine::start(
        store.clone(),
        EngineConfig::default(),
        Arc::new(clock.clone()),
        &tracker,
        shutdown.child_token(),
    );

    let mut tokens = BTreeMap::new();
    let partners: [(&'static str, &[Scope]); 5] = [
        ("portal", &[Scope::ReturnsCreate, Scope::ReturnsRead]),
        (
            "support",
            &[
                Scope::ReturnsDecide,
                Scope::ReturnsCancel,
                Scope::ReturnsRead,
            ],
        ),
        ("carrier", &[Scope::CarrierWrite]),
        ("wms", &[Scope::WarehouseWrite, Scope::ReturnsRead]),
        ("erp", &[Scope::FinanceWrite, Scope::ReturnsRead]),
    ];
    for (partner, scopes) in partners {
        let (token, record) =
            generate_key(partner, scopes, clock.now()).map_err(|e| anyhow::anyhow!("{e}"))?;
        store.insert_api_key(record).await?;
        tokens.insert(partner, token);
    }
    let hub = Arc::new(Hub {
        router: router(AppState {
            engine: engine.clone(),
            config: ApiConfig::default(),
        }),
        tokens,
        counters: Counters::default(),
    });

    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..n).map(|i| plan(i, &mut rng)).collect();
    let progress = ProgressBar::new((n * 2) as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );

    // A bad request from the portal: an SKU with a space. Refused, nothing stored.
    hub.refused(
        "portal",
        "/v1/returns",
        "bad-input-1",
        json!({"channel":"portal","customer":"C0001","order_ref":"SO-1","currency":"USD","site":"DC1",
               "lines":[{"line_no":1,"sku":"BAD SKU","quantity":"1","uom":"EA","reason_code":"DAMAGED",
                         "requested_outcome":"refund","unit_price":money(100),"unit_tax":money(8)}]}),
    )
    .await?;

    progress.set_message("week 1: request → receipt");
    let ids = drive_all(&tracker, &hub, &plans, &progress, |hub, plan| async move {
        week_one(&hub, &plan).await
    })
    .await?;
    clock.advance(Duration::days(8));
    progress.set_message("week 2: late units, close");
    let phase_two: Vec<(Plan, String)> = plans.iter().cloned().zip(ids).collect();
    drive_all(
        &tracker,
        &hub,
        &phase_two,
        &progress,
        |hub, (plan, id)| async move { week_two(&hub, &plan, &id).await },
    )
    .await?;
    progress.finish_and_clear();

    let summary = summarize(&engine, &store).await?;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    print_summary(out, n, &summary, &hub.counters, &db, started.elapsed())?;
    if !summary.problems.is_empty() {
        bail!("reconciliation failed:\n{}", summary.problems.join("\n"));
    }
    Ok(())
}

/// Drives every item through `step`, at most [`PARALLEL`] at a time, on the tracker.
async fn drive_all<T, F, Fut, R>(
    tracker: &TaskTracker,
    hub: &Arc<Hub>,
    items: &[T],
    progress: &ProgressBar,
    step: F,
) -> anyhow::Result<Vec<R>>
where
    T: Clone + Send + 'static,
    F: Fn(Arc<Hub>, T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits.clone().acquire_owned().await?;
        let fut = step(hub.clone(), item.clone());
        let progress = progress.clone();
        handles.push(tracker.spawn(async move {
            let r = fut.await;
            progress.inc(1);
            drop(permit);
            r
        }));
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await??);
    }
    Ok(results)
}

fn path(id: &str, action: &str) -> String {
    format!("/v1/returns/{id}/{action}")
}

/// Week one: request, decision, label, transit, first receipt and its
/// processing. Returns the return id.
async fn week_one(hub: &Hub, p: &Plan) -> anyhow::Result<String> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    let lines: Vec<Value> = p
        .lines
        .iter()
        .enumerate()
        .map(|(i, (sku, qty, price, reason))| {
            json!({"line_no": i + 1, "sku": sku, "quantity": qty.to_string(), "uom": "EA",
                   "reason_code": reason, "requested_outcome": "refund",
                   "unit_price": money(*price), "unit_tax": money(unit_tax(*price)),
                   "order_line_ref": format!("{}-{}", p.order_ref, i + 1)})
        })
        .collect();
    let request = json!({"channel": "portal", "customer": p.customer, "order_ref": p.order_ref,
                         "currency": "USD", "site": "DC1", "region": "NA", "lines": lines});
    let created = hub
        .command("portal", "/v1/returns", &k("create"), request.clone())
        .await?;
    if p.send_duplicates {
        // The portal times out and sends the same request again.
        hub.command("portal", "/v1/returns", &k("create"), request)
            .await?;
    }
    let id = created["return"]["return_id"]
        .as_str()
        .context("no return_id")?
        .to_owned();
    let now = Utc::now();
    match p.scenario {
        Scenario::Rejected => {
            hub.command(
                "support",
                &path(&id, "reject"),
                &k("reject"),
                json!({"reason": "outside the return window"}),
            )
            .await?;
            // The WMS tries to receive against a rejected return: refused.
            hub.refused("wms", &path(&id, "receipts"), &k("bad-receipt"), json!({"receipt_ref": format!("RCV-{}-X", p.idx), "lines": [{"sku": p.lines[0].0, "quantity": "1"}]})).await?;
            return Ok(id);
        }
        Scenario::ReviewThenApproved => {
            hub.command(
                "support",
                &path(&id, "hold"),
                &k("hold"),
                json!({"reason": "high value, check photos"}),
            )
            .await?;
            hub.command("support", &path(&id, "approve"), &k("approve"), json!({}))
                .await?;
        }
        Scenario::Standard
        | Scenario::PartialReceipt
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::CancelledAfterLabel
        | Scenario::Expired => {
            hub.command("support", &path(&id, "approve"), &k("approve"), json!({}))
                .await?;
        }
    }
    let label = json!({"carrier": "UPS", "tracking_number": format!("1Z{:010}", p.idx), "label_ref": format!("LBL-{}", p.idx),
                       "expires_at": (now + Duration::days(7)).to_rfc3339()});
    hub.command("carrier", &path(&id, "label"), &k("label"), label)
        .await?;
    match p.scenario {
        Scenario::CancelledAfterLabel => {
            hub.command(
                "support",
                &path(&id, "cancel"),
                &k("cancel"),
                json!({"reason": "customer kept the goods"}),
            )
            .await?;
            return Ok(id);
        }
        Scenario::Expired => return Ok(id),
        Scenario::Standard
        | Scenario::PartialReceipt
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::Rejected
        | Scenario::ReviewThenApproved => {}
    }
    // Carrier scans: sometimes `delivered` arrives before `in_transit`, sometimes twice.
    let in_transit =
        json!({"milestone": "in_transit", "occurred_at": (now + Duration::hours(20)).to_rfc3339()});
    let delivered =
        json!({"milestone": "delivered", "occurred_at": (now + Duration::hours(60)).to_rfc3339()});
    let in_transit = ("in-transit", in_transit);
    let delivered = ("delivered", delivered);
    let scans = if p.idx % 7 == 3 {
        vec![delivered, in_transit]
    } else if p.send_duplicates {
        vec![in_transit.clone(), in_transit, delivered]
    } else {
        vec![in_transit, delivered]
    };
    for (step, scan) in scans {
        hub.command("carrier", &path(&id, "milestones"), &k(step), scan)
            .await?;
    }
    // The warehouse receives; for partial receipts only ~60% now.
    let mut receipt_lines: Vec<Value> = p
        .lines
        .iter()
        .enumerate()
        .map(|(i, (sku, qty, _, _))| {
            let q = match p.scenario {
                Scenario::PartialReceipt => (qty * 6).div_ceil(10),
                Scenario::OverAndUnexpected if i == 0 => qty + 1,
                Scenario::Standard
                | Scenario::SplitDisposition
                | Scenario::OverAndUnexpected
                | Scenario::Rejected
                | Scenario::ReviewThenApproved
                | Scenario::CancelledAfterLabel
                | Scenario::Expired => *qty,
            };
            json!({"line_no": i + 1, "sku": sku, "quantity": q.to_string()})
        })
        .collect();
    if p.scenario == Scenario::OverAndUnexpected {
        receipt_lines.push(json!({"sku": "MYSTERY-BOX", "quantity": "1"}));
    }
    let receipt = json!({"receipt_ref": format!("RCV-{}-1", p.idx), "lines": receipt_lines});
    let after = hub
        .command(
            "wms",
            &path(&id, "receipts"),
            &k("receipt-1"),
            receipt.clone(),
        )
        .await?;
    if p.send_duplicates {
        // The WMS replays its receipt message: answered, not applied twice.
        hub.command("wms", &path(&id, "receipts"), &k("receipt-1"), receipt)
            .await?;
    }
    process_received(hub, p, &id, &after, "1").await?;
    hub.command(
        "erp",
        &path(&id, "documents"),
        &k("erp-ro"),
        json!({"kind": "erp_return_order", "system": "erp", "number": format!("RO-{:06}", p.idx)}),
    )
    .await?;
    settle(hub, p, &id, "1").await?;
    Ok(id)
}

/// Inspects and dispositions every unit awaiting it, per the scenario.
async fn process_received(
    hub: &Hub,
    p: &Plan,
    id: &str,
    state: &Value,
    round: &str,
) -> anyhow::Result<()> {
    let k = |step: &str| format!("demo-{}-{step}-{round}", p.idx);
    let mut inspections = Vec::new();
    let mut dispositions = Vec::new();
    for line in state["return"]["lines"].as_array().context("no lines")? {
        let line_no = line["line"]["line_no"].as_u64().context("line_no")?;
        let received: i64 = line["received"].as_str().context("received")?.parse()?;
        let inspected: i64 = line["inspected"].as_str().context("inspected")?.parse()?;
        let todo = received - inspected;
        if todo <= 0 {
            continue;
        }
        inspections.push(json!({"line_no": line_no, "quantity": todo.to_string(), "condition": if p.scenario == Scenario::SplitDisposition { "MIXED" } else { "GOOD" }}));
        if p.scenario == Scenario::SplitDisposition && todo >= 4 {
            // e.g. 10 units: 7 restock, 2 scrap, 1 vendor return.
            let scrap = (todo / 5).max(1);
            let vendor = 1;
            let restock = todo - scrap - vendor;
            dispositions.push(json!({"line_no": line_no, "quantity": restock.to_string(), "disposition": "restock"}));
            dispositions.push(
                json!({"line_no": line_no, "quantity": scrap.to_string(), "disposition": "scrap"}),
            );
            dispositions.push(json!({"line_no": line_no, "quantity": vendor.to_string(), "disposition": "vendor_return"}));
        } else {
            dispositions.push(
                json!({"line_no": line_no, "quantity": todo.to_string(), "disposition": "restock"}),
            );
        }
    }
    if inspections.is_empty() {
        return Ok(());
    }
    hub.command(
        "wms",
        &path(id, "inspections"),
        &k("inspect"),
        json!({"inspections": inspections}),
    )
    .await?;
    hub.command(
        "wms",
        &path(id, "dispositions"),
        &k("dispose"),
        json!({"dispositions": dispositions}),
    )
    .await?;
    Ok(())
}

/// Credits every dispositioned, unsettled unit: price plus tax, less a 10%
/// restocking fee on the price for a change of mind.
async fn settle(hub: &Hub, p: &Plan, id: &str, round: &str) -> anyhow::Result<()> {
    let (_, current) = hub
        .call("erp", "GET", &format!("/v1/returns/{id}"), None, None)
        .await?;
    let mut lines = Vec::new();
    let mut total = 0i64;
    for line in current["lines"].as_array().context("no lines")? {
        let line_no = line["line"]["line_no"].as_u64().context("line_no")?;
        let dispositioned: i64 = line["dispositioned"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str()?.parse::<i64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        let settled: i64 = line["settled"].as_str().context("settled")?.parse()?;
        let qty = dispositioned - settled;
        if qty <= 0 {
            continue;
        }
        let idx = usize::try_from(line_no)? - 1;
        let (_, _, price, reason) = &p.lines[idx];
        let fee = if *reason == "CHANGED_MIND" {
            price / 10
        } else {
            0
        };
        let amount = qty * (price + unit_tax(*price) - fee);
        total += amount;
        lines.push(
            json!({"line_no": line_no, "quantity": qty.to_string(), "amount": money(amount)}),
        );
    }
    if lines.is_empty() {
        return Ok(());
    }
    let body = json!({"settlement_ref": format!("STL-{}-{round}", p.idx), "lines": lines,
                      "documents": [{"kind": "credit_memo", "system": "erp", "number": format!("CM-{}-{round}", p.idx), "amount": money(total)}]});
    hub.command(
        "erp",
        &path(id, "settlements"),
        &format!("demo-{}-settle-{round}", p.idx),
        body,
    )
    .await?;
    Ok(())
}

/// Week two: late units, expiry, closing.
async fn week_two(hub: &Hub, p: &Plan, id: &str) -> anyhow::Result<()> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    match p.scenario {
        Scenario::Rejected | Scenario::CancelledAfterLabel => return Ok(()),
        Scenario::Expired => {
            hub.command("support", &path(id, "expire"), &k("expire"), json!({}))
                .await?;
            return Ok(());
        }
        Scenario::PartialReceipt => {
            // Closing too early is refused: units are still expected.
            let receipt_lines: Vec<Value> = p
                .lines
                .iter()
                .enumerate()
                .map(|(i, (sku, qty, _, _))| json!({"line_no": i + 1, "sku": sku, "quantity": (qty - (qty * 6).div_ceil(10)).to_string()}))
                .filter(|l| l["quantity"] != "0")
                .collect();
            if !receipt_lines.is_empty() {
                let after = hub
                    .command(
                        "wms",
                        &path(id, "receipts"),
                        &k("receipt-2"),
                        json!({"receipt_ref": format!("RCV-{}-2", p.idx), "lines": receipt_lines}),
                    )
                    .await?;
                process_received(hub, p, id, &after, "2").await?;
                settle(hub, p, id, "2").await?;
            }
        }
        Scenario::Standard
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::ReviewThenApproved => {}
    }
    hub.command("erp", &path(id, "close"), &k("close"), json!({}))
        .await?;
    Ok(())
}

/// Totals over every return, and any reconciliation problem found.
#[derive(Default)]
struct Summary {
    by_status: BTreeMap<String, u64>,
    units: BTreeMap<&'static str, Decimal>,
    by_disposition: BTreeMap<String, Decimal>,
    paid_for_received: Decimal,
    credited: Decimal,
    events: u64,
    open_flags: BTreeMap<String, u64>,
    problems: Vec<String>,
}

fn dec(v: &Value) -> Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

async fn summarize(engine: &Engine, store: &AnyStore) -> anyhow::Result<Summary> {
    let mut s = Summary::default();
    let mut offset = 0;
    loop {
        let page = engine
            .list(&SummaryFilter {
                limit: 1000,
                offset,
                ..SummaryFilter::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        offset += u32::try_from(page.len())?;
        for item in page.iter().map(backhaul_store::JsonText::to_value) {
            // The list row has the totals; the full summary (lines) comes
            // from the return's log.
            let id = backhaul_domain::values::ReturnId::parse(
                item["return_id"].as_str().unwrap_or_default(),
            )?;
            let full = engine
                .get(id)
                .await?
                .context("a listed return has a log")?
                .to_value();
            let r = &full;
            *s.by_status
                .entry(r["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
            for flag in r["flags"].as_array().into_iter().flatten() {
                *s.open_flags
                    .entry(flag.as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            let t = &r["totals"];
            for key in [
                "requested",
                "authorized",
                "received",
                "over_received",
                "unexpected",
                "inspected",
                "dispositioned",
                "settled",
            ] {
                *s.units.entry(key).or_default() += dec(&t[key]);
            }
            s.paid_for_received += dec(&r["paid_for_received"]);
            s.credited += dec(&t["credited"]);
            for line in r["lines"].as_array().into_iter().flatten() {
                let received = dec(&line["received"]);
                let inspected = dec(&line["inspected"]);
                let mut disp = Decimal::ZERO;
                for (k, v) in line["dispositioned"].as_object().into_iter().flatten() {
                    *s.by_disposition.entry(k.clone()).or_default() += dec(v);
                    disp += dec(v);
                }
                // Units conserved: received = awaiting inspection + awaiting disposition + dispositioned.
                if (received - inspected) + (inspected - disp) + disp != received
                    || disp > inspected
                    || inspected > received
                {
                    s.problems.push(format!(
                        "{}: units not conserved on a line",
                        r["rma_number"]
                    ));
                }
                let paid = dec(&line["settled"])
                    * (dec(&line["line"]["unit_price"]["amount"])
                        + dec(&line["line"]["unit_tax"]["amount"]));
                if dec(&line["credited"]) > paid {
                    s.problems
                        .push(format!("{}: credited more than paid", r["rma_number"]));
                }
            }
        }
    }
    let mut after = 0;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        s.events += page.len() as u64;
    }
    Ok(s)
}

fn print_summary(
    out: &mut impl Write,
    n: usize,
    s: &Summary,
    c: &Counters,
    db: &std::path::Path,
    elapsed: std::time::Duration,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "Backhaul demo: {n} returns on embedded SQLite ({})",
        db.display()
    )?;
    writeln!(out)?;
    writeln!(out, "{:<22} {:>8}", "outcome", "returns")?;
    for (status, count) in &s.by_status {
        writeln!(out, "{status:<22} {count:>8}")?;
    }
    writeln!(out)?;
    writeln!(out, "{:<22} {:>8}", "units", "count")?;
    for key in [
        "requested",
        "authorized",
        "received",
        "over_received",
        "unexpected",
        "inspected",
        "dispositioned",
        "settled",
    ] {
        writeln!(
            out,
            "{key:<22} {:>8}",
            s.units.get(key).copied().unwrap_or_default()
        )?;
    }
    for (d, q) in &s.by_disposition {
        writeln!(out, "  {:<20} {q:>8}", format!("→ {d}"))?;
    }
    writeln!(out)?;
    writeln!(out, "{:<22} {:>12}", "money (USD)", "amount")?;
    writeln!(
        out,
        "{:<22} {:>12}",
        "paid for received", s.paid_for_received
    )?;
    writeln!(out, "{:<22} {:>12}", "credited", s.credited)?;
    writeln!(
        out,
        "{:<22} {:>12}",
        "retained (fees)",
        s.paid_for_received - s.credited
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "requests sent          {:>8}",
        c.requests.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "duplicates replayed    {:>8}  (answered from the idempotency record, not re-applied)",
        c.replayed.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "commands refused       {:>8}  (business rule: nothing stored)",
        c.refused.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "bad input refused      {:>8}  (problem+json, nothing stored)",
        c.bad_input.load(Ordering::Relaxed)
    )?;
    writeln!(out, "events in the log      {:>8}", s.events)?;
    for (flag, count) in &s.open_flags {
        writeln!(out, "flagged {flag:<14} {count:>8}")?;
    }
    let ok = if s.problems.is_empty() {
        "yes (units conserved, credit ≤ paid on every line)"
    } else {
        "NO"
    };
    writeln!(out, "reconciled             {ok}")?;
    writeln!(out, "elapsed                {elapsed:.2?}")?;
    Ok(())
}
