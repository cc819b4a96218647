//! `backhaul demo`: a few hundred returns driven through every stage on the
//! embedded default (SQLite), with simulators of the ERP, the WMS, the
//! carrier and the portal running in this process behind the real
//! connectors and the real dispatcher.
//!
//! Who plays what:
//! - The hub runs with the sample policy (`samples/policy.toml`) and the
//!   sample master data (`samples/master/*.csv`: vendors, SKUs, customers,
//!   sites, crosswalks), both built into the binary, so returns are decided
//!   as a governed hub decides them: the policy approves, holds for review
//!   or rejects each request from the customer, the order and the SKUs, and
//!   dispositions each inspected unit by its condition, keeping a
//!   restocking fee where the policy says so. The sample `orders.csv` is
//!   not loaded (its dates are fixed, and would fall outside the return
//!   windows); the demo writes the orders its returns refer to, sold 5 to
//!   20 days before the demo's clock.
//! - Partners that *call* the hub do so through the router, each with its
//!   own API key and idempotency keys, as they would over HTTP: the portal
//!   opens returns (in its own reason codes, which the hub translates
//!   through the portal's crosswalk), support approves what the policy
//!   sent to review, cancels and expires, the carrier posts its scan feed
//!   (read from the carrier simulator, with its duplicates and
//!   reorderings), the WMS posts receipts and inspections with the
//!   condition of each unit in its own grades (translated through its
//!   crosswalk), finance closes, and operations works the exception queue.
//! - Systems the hub *calls* are the simulators (`backhaul-sim`), reached
//!   through `backhaul_connectors` over their wire contracts: the ERP gets
//!   return orders, inventory adjustments, credit memos, supplier claims,
//!   repair and replacement orders, the WMS expected
//!   receipts and their cancellations, the carrier label requests and voids,
//!   the portal status updates. Their answers come back to the returns as
//!   commands (the ERP's document numbers, the carrier's label, the credit
//!   memo as the settlement). The demo fakes none of these any more.
//!
//! The simulators misbehave as real systems do: transient 503s, responses
//! lost after the posting was stored, an ERP that throttles harder than the
//! hub was told. And the ERP's item master lacks one new SKU, so a few
//! return orders land in the exception queue until an operator corrects and
//! retries them. At the end the ERP's ledger is reconciled against the hub.
//!
//! The days:
//! - day 0: returns are requested and decided by the policy (support
//!   approves those it holds for review); the hub asks the ERP for return
//!   orders, the WMS for expected receipts, the carrier for labels;
//! - day 4: a few returns are cancelled (the hub voids their label and
//!   cancels their expected receipt); the others' scans come in and the
//!   warehouse receives and inspects them, the policy dispositions the
//!   inspected units in the same step, after which the hub posts inventory
//!   adjustments, supplier claims, repair and replacement orders and credit
//!   memos to the ERP;
//! - day 11: the exception queue is worked, the late units of partial
//!   receipts arrive, unused labels have expired;
//! - day 12: finance closes every settled return.
//!
//! Money: the hub credits what was paid (price plus tax) for refund and
//! store-credit lines, less the policy's restocking fees (the tax in
//! proportion), and nothing for replacements. The hub's credit memos are
//! the truth the ERP's ledger is reconciled against.
//!
//! Time is one manual clock shared by the hub and the simulators, so "a week
//! later" takes no time, and when only retries are pending the demo moves
//! the clock to the first of them instead of sleeping. Simulated latency is
//! off, since it is real time. The dispatcher is driven with `run_once` from
//! this task; the partners run on the demo's task tracker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use backhaul_api::{ApiConfig, AppState, Scope, generate_key, router};
use backhaul_connectors::{ConnectorConfig, ConnectorKind};
use backhaul_domain::action::Target;
use backhaul_domain::values::Sku;
use backhaul_engine::{
    Clock, DeliveryPolicy, Dispatcher, DispatcherConfig, Engine, EngineConfig, ManualClock,
    RulesHandle,
};
use backhaul_master::{Control, Kind, MasterData, OrderRecord, Record};
use backhaul_policy::Policy;
use backhaul_sim::{
    CarrierConfig, Faults, Milestone, PostingKind, Scan, Sim, SimConfig, SimDb, SimKind, Stats,
};
use backhaul_store::{
    AnyStore, Delivery, DeliveryFilter, DeliveryState, DeliveryStore, EventStore, SqliteStore,
    SqliteSync, SummaryFilter,
};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Returns driven at the same time by the scripted partners.
const PARALLEL: usize = 32;

/// A new product the web shop sells but the ERP's item master does not have
/// yet: the ERP refuses return orders that carry it (`unknown_sku`).
const KIT_SKU: &str = "DRILL-18V-KIT";
/// What the ERP calls that product; finance puts it into the corrected
/// return order.
const KIT_ERP_ITEM: &str = "DRILL-18V-K";
const KIT_PRICE: i64 = 17900;
/// Every this many standard returns (starting with the first) carries the
/// kit, so every run shows the exception queue at work.
const KIT_EVERY: usize = 20;

/// The ERP's real limit: requests per second, and how many may arrive at
/// once. Lower than what the hub's connector is configured for (below), so
/// the hub meets some 429s and honours their `Retry-After`.
const ERP_RATE_LIMIT: u32 = 50;
const ERP_BURST: u32 = 25;
/// Probability that a simulated system answers 503 without looking.
const TRANSIENT_ERROR_RATE: f64 = 0.05;
/// Probability that a simulated system stores a posting but the answer is
/// lost (500); the retry with the same key gets the stored answer.
const LOST_RESPONSE_RATE: f64 = 0.02;
/// The carrier's label validity; the demo's "expired" returns outlive it.
const LABEL_VALIDITY_DAYS: u32 = 7;

/// How far the clock moves when deliveries are due but none may go (the
/// connector's token bucket is empty or its circuit breaker is open).
const THROTTLE_STEP_MS: i64 = 500;
/// How many such steps in a row before the demo gives up: far beyond the
/// longest backoff, lease or breaker cooldown configured here.
const MAX_STALLED_STEPS: u32 = 4000;
/// Rounds of "work the queue, deliver" before the operator gives up.
const MAX_OPERATOR_ROUNDS: usize = 3;

/// The sample policy and master data that ship with the project, built
/// into the binary so the demo runs from any directory.
pub(crate) const SAMPLE_POLICY: (&str, &str) = (
    "samples/policy.toml",
    include_str!("../samples/policy.toml"),
);
/// In the order they must be loaded: SKUs name vendors, and the demo's
/// orders (written after these) name SKUs and customers.
pub(crate) const SAMPLE_MASTER: [(&str, &[u8]); 5] = [
    ("vendors", include_bytes!("../samples/master/vendors.csv")),
    ("skus", include_bytes!("../samples/master/skus.csv")),
    (
        "customers",
        include_bytes!("../samples/master/customers.csv"),
    ),
    ("sites", include_bytes!("../samples/master/sites.csv")),
    (
        "crosswalks",
        include_bytes!("../samples/master/crosswalks.csv"),
    ),
];
/// The accounts of the sample policy's `blocked_customers` list (both in
/// the sample customers): the policy rejects their returns. Should the
/// policy's list change, the demo's check of each decision says so.
const BLOCKED_CUSTOMERS: [&str; 2] = ["C-900013", "C-900027"];
/// The sample policy's `value.threshold`, in minor units: a request worth
/// more goes to review.
const REVIEW_THRESHOLD: i64 = 500_000;
/// What a return for review carries: enough of the most expensive SKU to
/// be above [`REVIEW_THRESHOLD`] (a contractor's pallet of ladders).
const HIGH_VALUE_SKU: &str = "LADDER-6FT";
/// How many days before the demo's clock its orders were sold (shipped a
/// day later): well inside the policy's 30-day window.
const SOLD_DAYS_AGO: std::ops::RangeInclusive<i64> = 5..=20;

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

    /// Whether the return is received and ends closed.
    fn closes(self) -> bool {
        match self {
            Scenario::Standard
            | Scenario::PartialReceipt
            | Scenario::SplitDisposition
            | Scenario::OverAndUnexpected
            | Scenario::ReviewThenApproved => true,
            Scenario::Rejected | Scenario::CancelledAfterLabel | Scenario::Expired => false,
        }
    }

    /// What the policy must decide on the request: its verdict, the
    /// status that leaves the return in, and the rules it must find failed
    /// (none for an approval).
    fn expected_decision(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Scenario::Rejected => ("reject", "rejected", &["customer.blocked"]),
            Scenario::ReviewThenApproved => ("review", "pending_review", &["value.threshold"]),
            Scenario::Standard
            | Scenario::PartialReceipt
            | Scenario::SplitDisposition
            | Scenario::OverAndUnexpected
            | Scenario::CancelledAfterLabel
            | Scenario::Expired => ("approve", "approved", &[]),
        }
    }
}

/// Why a customer sends a line back, as the demo's customers choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Damaged,
    Defective,
    WrongItem,
    ChangedMind,
}

impl Reason {
    const ALL: [Reason; 4] = [
        Reason::Damaged,
        Reason::Defective,
        Reason::WrongItem,
        Reason::ChangedMind,
    ];

    /// What the portal sends: its own code, which the hub translates to
    /// the canonical one through the portal's crosswalk
    /// (`samples/master/crosswalks.csv`).
    fn portal_code(self) -> &'static str {
        match self {
            Reason::Damaged => "DAMAGED",
            Reason::Defective => "DOES_NOT_WORK",
            Reason::WrongItem => "WRONG_ITEM_SENT",
            Reason::ChangedMind => "NO_LONGER_NEEDED",
        }
    }

    /// The condition the warehouse finds such a unit in: a defective unit
    /// is defective, a wrong item comes back unopened, a customer who
    /// changed their mind has opened the box.
    fn condition(self) -> Condition {
        match self {
            Reason::Damaged => Condition::Damaged,
            Reason::Defective => Condition::Defective,
            Reason::WrongItem => Condition::New,
            Reason::ChangedMind => Condition::Opened,
        }
    }
}

/// The condition the warehouse finds a returned unit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    New,
    Opened,
    Damaged,
    Defective,
}

impl Condition {
    /// What the WMS sends: its own grade, which the hub translates to the
    /// canonical condition (`NEW`, `OPENED`…) through the WMS's crosswalk
    /// (`samples/master/crosswalks.csv`).
    fn wms_grade(self) -> &'static str {
        match self {
            Condition::New => "A",
            Condition::Opened => "B",
            Condition::Damaged => "D",
            Condition::Defective => "X",
        }
    }
}

/// One line of a scripted return.
#[derive(Debug, Clone)]
struct PlanLine {
    sku: String,
    quantity: u32,
    /// Units shipped on the order line (at least `quantity`).
    shipped: u32,
    /// Unit price in minor units.
    price: i64,
    reason: Reason,
    /// `refund`, `store_credit` or `replacement`.
    outcome: &'static str,
    /// The order line of its own this line returns from, so two returns of
    /// one order never compete for the same units.
    order_line_ref: String,
    /// Serials of the returned units, for serial-controlled SKUs: the
    /// first `quantity` of those shipped (see [`orders`]).
    serials: Vec<String>,
}

/// A scripted return: its scenario and its request.
#[derive(Debug, Clone)]
struct Plan {
    idx: usize,
    scenario: Scenario,
    lines: Vec<PlanLine>,
    order_ref: String,
    customer: String,
    currency: &'static str,
    /// Days before the demo's clock the order was sold.
    sold_days_ago: i64,
    send_duplicates: bool,
}

/// Counters shared by all partners.
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
    /// The carrier's own system, from which its webhook reads each label's
    /// scan feed before posting it to the hub.
    carrier_system: Router,
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

    /// A request that must succeed.
    async fn ok(
        &self,
        partner: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(partner, method, path, None, body).await?;
        if !status.is_success() {
            bail!("{partner} {method} {path} failed with {status}: {value}");
        }
        Ok(value)
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

/// A GET on a simulator's own API (what its owner's other tools would read).
async fn sim_get(system: &Router, path: &str) -> anyhow::Result<Value> {
    let req = Request::builder()
        .method("GET")
        .uri(path)
        .body(Body::empty())?;
    let resp = tower::ServiceExt::oneshot(system.clone(), req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "simulator GET {path} failed with {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}

fn money(cents: i64, currency: &str) -> Value {
    json!({"amount": Decimal::new(cents, 2).to_string(), "currency": currency})
}

const SKUS: &[(&str, i64)] = &[
    ("DRILL-18V", 12900),
    ("SAW-CIRC-7", 8950),
    ("BIT-SET-32", 2499),
    ("GLOVE-L", 1299),
    ("LEVEL-24", 3450),
    (HIGH_VALUE_SKU, 15900),
];

fn plan(idx: usize, rng: &mut StdRng) -> Plan {
    let scenario = Scenario::pick(rng);
    let n_lines = rng.gen_range(1..=3);
    let mut lines = Vec::new();
    let mut skus: Vec<usize> = (0..SKUS.len()).collect();
    for _ in 0..n_lines {
        let (sku, price) = SKUS[skus.remove(rng.gen_range(0..skus.len()))];
        let quantity = match scenario {
            Scenario::SplitDisposition | Scenario::PartialReceipt => rng.gen_range(4..=10),
            Scenario::Standard
            | Scenario::OverAndUnexpected
            | Scenario::Rejected
            | Scenario::ReviewThenApproved
            | Scenario::CancelledAfterLabel
            | Scenario::Expired => rng.gen_range(1..=4),
        };
        let outcome = match rng.gen_range(0..100) {
            0..=74 => "refund",
            75..=89 => "store_credit",
            _ => "replacement",
        };
        lines.push(PlanLine {
            sku: sku.to_owned(),
            quantity,
            shipped: quantity,
            price,
            reason: Reason::ALL[rng.gen_range(0..Reason::ALL.len())],
            outcome,
            order_line_ref: String::new(),
            serials: Vec::new(),
        });
    }
    if scenario == Scenario::ReviewThenApproved {
        // The most expensive SKU first (it may already be on the return),
        // in a quantity worth more than the review threshold on its own.
        match lines.iter().position(|l| l.sku == HIGH_VALUE_SKU) {
            Some(at) => lines.swap(0, at),
            None => {
                lines[0].sku = HIGH_VALUE_SKU.to_owned();
                lines[0].price = SKUS
                    .iter()
                    .find(|(sku, _)| *sku == HIGH_VALUE_SKU)
                    .map_or(lines[0].price, |(_, price)| *price);
            }
        }
        let unit_paid = lines[0].price + unit_tax(lines[0].price);
        let above = REVIEW_THRESHOLD / unit_paid + 1;
        lines[0].quantity = u32::try_from(above)
            .unwrap_or(u32::MAX)
            .saturating_add(rng.gen_range(0..=5));
    }
    // Some orders shipped more than comes back.
    for line in &mut lines {
        line.shipped = line.quantity + rng.gen_range(0..=2);
    }
    Plan {
        idx,
        scenario,
        lines,
        order_ref: format!("SO-{:06}", 100_000 + idx),
        customer: match scenario {
            // A customer the policy does not let return anything.
            Scenario::Rejected => BLOCKED_CUSTOMERS[idx % BLOCKED_CUSTOMERS.len()].to_owned(),
            Scenario::Standard
            | Scenario::PartialReceipt
            | Scenario::SplitDisposition
            | Scenario::OverAndUnexpected
            | Scenario::ReviewThenApproved
            | Scenario::CancelledAfterLabel
            | Scenario::Expired => format!("C{:04}", rng.gen_range(1..=60)),
        },
        // The European web shop's returns are in euros.
        currency: if rng.gen_bool(0.15) { "EUR" } else { "USD" },
        sold_days_ago: rng.gen_range(SOLD_DAYS_AGO),
        send_duplicates: rng.gen_bool(0.25),
    }
}

/// The scripted returns, with the kit on every [`KIT_EVERY`]th standard
/// one, and every fifth return a second return of the order before it.
fn plans(n: usize, seed: u64) -> Vec<Plan> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plans: Vec<Plan> = (0..n).map(|i| plan(i, &mut rng)).collect();
    let standard = plans
        .iter_mut()
        .filter(|p| p.scenario == Scenario::Standard);
    for p in standard.step_by(KIT_EVERY) {
        if let Some(first) = p.lines.first_mut() {
            first.sku = KIT_SKU.to_owned();
            first.price = KIT_PRICE;
        }
    }
    // Every fifth order is returned twice: a second return against the
    // same order, by the same customer in the same currency. Not when
    // either return is a blocked customer's: the other would be refused
    // with it.
    for i in (4..plans.len()).step_by(5) {
        let (before, after) = plans.split_at_mut(i);
        let (first, second) = (&before[i - 1], &mut after[0]);
        if first.scenario == Scenario::Rejected || second.scenario == Scenario::Rejected {
            continue;
        }
        second.order_ref.clone_from(&first.order_ref);
        second.customer.clone_from(&first.customer);
        second.currency = first.currency;
        second.sold_days_ago = first.sold_days_ago;
    }
    for p in &mut plans {
        for (n, line) in p.lines.iter_mut().enumerate() {
            line.order_line_ref = format!("{}-{}-{}", p.order_ref, p.idx, n + 1);
        }
    }
    plans
}

/// The orders the plans return from, as the ERP would have sent them to
/// the hub's master data: sold [`SOLD_DAYS_AGO`] before `now`, shipped a
/// day later, one order line per plan line. Lines of serial-controlled
/// SKUs ship with serials, and each plan line returns the first of its
/// line's serials (filled in here).
fn orders(
    plans: &mut [Plan],
    master: &MasterData,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Record>> {
    let mut orders: BTreeMap<String, Value> = BTreeMap::new();
    for p in plans.iter_mut() {
        let sold_at = now - Duration::days(p.sold_days_ago);
        let order = orders.entry(p.order_ref.clone()).or_insert_with(|| {
            json!({"order_ref": p.order_ref, "customer": p.customer, "currency": p.currency,
                   "sold_at": sold_at.to_rfc3339(), "lines": []})
        });
        let order_lines = order["lines"]
            .as_array_mut()
            .context("an order's lines are a list")?;
        for line in &mut p.lines {
            let sku = Sku::parse(&line.sku).map_err(|e| anyhow::anyhow!("{e}"))?;
            let serial_controlled = master
                .sku(&sku)
                .with_context(|| format!("{} is not in the sample SKUs", line.sku))?
                .control
                == Control::Serial;
            let shipped_serials: Vec<String> = if serial_controlled {
                (1..=line.shipped)
                    .map(|u| format!("{}-{}-{u:03}", line.sku, line.order_line_ref))
                    .collect()
            } else {
                Vec::new()
            };
            line.serials = shipped_serials
                .iter()
                .take(usize::try_from(line.quantity)?)
                .cloned()
                .collect();
            order_lines.push(json!({
                "line_ref": line.order_line_ref, "sku": line.sku,
                "quantity": line.shipped.to_string(), "uom": "EA",
                "unit_price": money(line.price, p.currency),
                "unit_tax": money(unit_tax(line.price), p.currency),
                "shipped_at": (sold_at + Duration::days(1)).to_rfc3339(),
                "shipped_quantity": line.shipped.to_string(),
                "serials": shipped_serials,
            }));
        }
    }
    orders
        .into_values()
        .map(|order| {
            let record: OrderRecord =
                serde_json::from_value(order).context("a demo order is not an order record")?;
            Ok(Record::Order(record))
        })
        .collect()
}

fn unit_tax(price: i64) -> i64 {
    price * 8 / 100
}

/// The hub's manual clock, as the simulators read time: one clock, so a
/// simulated week passes for the hub and the systems around it at once.
struct SharedClock(ManualClock);

impl backhaul_sim::Clock for SharedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

/// The four simulated systems.
struct Systems {
    erp: Sim,
    wms: Sim,
    carrier: Sim,
    portal: Sim,
}

impl Systems {
    /// Opens the simulators with their state in `dir`, kept for inspection
    /// next to the hub's database.
    async fn open(dir: &Path, seed: u64, clock: &ManualClock) -> anyhow::Result<Systems> {
        let open = |kind: SimKind| {
            let mut config = SimConfig::new(kind);
            // Each system draws its own faults, all from the demo's seed.
            let salt = match kind {
                SimKind::Erp => 1,
                SimKind::Wms => 2,
                SimKind::Carrier => 3,
                SimKind::Portal => 4,
            };
            config.seed = seed.wrapping_mul(31).wrapping_add(salt);
            // No simulated latency: it is real time, and the demo is meant
            // to take seconds.
            config.faults = Faults {
                transient_error_rate: TRANSIENT_ERROR_RATE,
                lost_response_rate: LOST_RESPONSE_RATE,
                ..Faults::default()
            };
            match kind {
                SimKind::Erp => {
                    config.faults.rate_limit_per_sec = Some(ERP_RATE_LIMIT);
                    config.faults.burst = ERP_BURST;
                    config.erp.unknown_skus = vec![KIT_SKU.to_owned()];
                }
                SimKind::Carrier => {
                    config.carrier = CarrierConfig {
                        label_validity_days: LABEL_VALIDITY_DAYS,
                        scan_duplicate_rate: 0.2,
                        scan_reorder_rate: 0.15,
                    };
                }
                SimKind::Wms | SimKind::Portal => {}
            }
            let file = dir.join(format!("sim-{kind}.db"));
            let clock = Arc::new(SharedClock(clock.clone()));
            async move {
                Sim::open_with_clock(config, SimDb::File(file.clone()), clock)
                    .await
                    .with_context(|| {
                        format!("cannot open the {kind} simulator at {}", file.display())
                    })
            }
        };
        Ok(Systems {
            erp: open(SimKind::Erp).await?,
            wms: open(SimKind::Wms).await?,
            carrier: open(SimKind::Carrier).await?,
            portal: open(SimKind::Portal).await?,
        })
    }

    fn all(&self) -> [(Target, &Sim); 4] {
        [
            (Target::Erp, &self.erp),
            (Target::Wms, &self.wms),
            (Target::Carrier, &self.carrier),
            (Target::Portal, &self.portal),
        ]
    }

    async fn close(&self) {
        for (_, sim) in self.all() {
            sim.close().await;
        }
    }
}

/// The connectors, as a `[connectors.*]` config would list them, but with
/// no URL: the in-process simulators serve them.
fn connectors() -> BTreeMap<String, ConnectorConfig> {
    // Systems that do not throttle get a generous policy: time stands still
    // while deliveries go, so a tight bucket would only make the demo move
    // its clock in small steps. Retries start at half a second and give up
    // (dead letter) after ten attempts.
    let quick = DeliveryPolicy {
        rate_per_sec: 1000.0,
        burst: 500,
        concurrency: 64,
        max_attempts: 10,
        backoff_initial_ms: 500,
        backoff_max_ms: 30_000,
        timeout_ms: 10_000,
        breaker_threshold: 10,
        breaker_cooldown_ms: 5_000,
        // The simulators take every kind.
        skip_kinds: BTreeSet::new(),
    };
    // The hub was told the ERP takes bursts of 30; it takes fewer, and
    // answers the rest 429 with `Retry-After`.
    let erp = DeliveryPolicy {
        rate_per_sec: f64::from(ERP_RATE_LIMIT),
        burst: 30,
        concurrency: 30,
        ..quick.clone()
    };
    [
        (ConnectorKind::SimErp, erp),
        (ConnectorKind::SimWms, quick.clone()),
        (ConnectorKind::SimCarrier, quick.clone()),
        (ConnectorKind::SimPortal, quick),
    ]
    .into_iter()
    // The simulator kinds each serve one fixed target.
    .filter_map(|(kind, delivery)| {
        let target = kind.target()?;
        let config = ConnectorConfig {
            kind,
            url: String::new(),
            tls: None,
            system: None,
            delivery,
            tryton: None,
            sap: None,
            dynamics_bc: None,
            netsuite: None,
            rest_wms: None,
            rest_carrier: None,
            soap: None,
            subscribers: Vec::new(),
            x12_partner: None,
        };
        Some((target.as_str().to_owned(), config))
    })
    .collect()
}

/// The dispatcher and what it needs to be driven to the end: the store to
/// see what is pending, the clock to move when only retries are left.
struct Outbox {
    dispatcher: Dispatcher,
    store: AnyStore,
    clock: ManualClock,
    attempts: usize,
    /// Deliveries the operator sent again, by target.
    operated: BTreeMap<String, BTreeSet<i64>>,
}

impl Outbox {
    /// Delivers until nothing can go any more: nothing is pending, or what
    /// is pending waits behind an exception or a dead letter (a person's
    /// move). When only retries are pending, the clock jumps to the first
    /// of them; when deliveries are due but none may go (a connector's
    /// token bucket is empty, its breaker open), it moves a little.
    async fn deliver(&mut self, progress: &ProgressBar, stage: &str) -> anyhow::Result<()> {
        let mut stalled = 0u32;
        loop {
            let report = self.dispatcher.run_once().await?;
            if report.claimed > 0 {
                self.attempts += report.claimed;
                progress.set_message(format!("{stage} ({} attempts)", self.attempts));
                stalled = 0;
                continue;
            }
            let now = self.clock.now();
            // The cheap question first: nothing pending at all, or nothing
            // due yet, needs no look at the lanes.
            let next = match self.store.next_due().await? {
                None => return Ok(()),
                Some(first) if first > now => first,
                Some(_) => match self.next_open().await? {
                    None => return Ok(()),
                    Some(next) => next,
                },
            };
            if next > now {
                self.clock.set(next);
                continue;
            }
            stalled += 1;
            if stalled > MAX_STALLED_STEPS {
                bail!(
                    "{stage}: deliveries due since {next} made no progress in {} simulated seconds",
                    i64::from(MAX_STALLED_STEPS) * THROTTLE_STEP_MS / 1000
                );
            }
            self.clock.advance(Duration::milliseconds(THROTTLE_STEP_MS));
        }
    }

    /// When the first delivery that can go is due: the first pending one of
    /// each lane (return and target) that no exception or dead letter
    /// blocks. `None` when there is none.
    async fn next_open(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        type Lane = (Uuid, String);
        let mut parked: HashMap<Lane, i64> = HashMap::new();
        for state in [DeliveryState::Exception, DeliveryState::Dead] {
            for d in self.deliveries(state).await? {
                let first = parked.entry((d.stream_id, d.target)).or_insert(d.id);
                *first = (*first).min(d.id);
            }
        }
        let mut heads: HashMap<Lane, Delivery> = HashMap::new();
        for d in self.deliveries(DeliveryState::Pending).await? {
            let lane = (d.stream_id, d.target.clone());
            match heads.get(&lane) {
                Some(head) if head.id < d.id => {}
                Some(_) | None => {
                    heads.insert(lane, d);
                }
            }
        }
        Ok(heads
            .into_iter()
            .filter(|(lane, d)| parked.get(lane).is_none_or(|p| *p > d.id))
            // A lease left behind by an attempt that could not record its
            // end keeps the delivery until it runs out.
            .map(|(_, d)| {
                d.lease_until
                    .map_or(d.next_attempt_at, |l| l.max(d.next_attempt_at))
            })
            .min())
    }

    async fn deliveries(&self, state: DeliveryState) -> anyhow::Result<Vec<Delivery>> {
        let mut all = Vec::new();
        let mut after_id = 0;
        loop {
            let page = self
                .store
                .list_deliveries(&DeliveryFilter {
                    state: Some(state),
                    limit: 1000,
                    after_id,
                    ..DeliveryFilter::default()
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(all);
            };
            after_id = last.id;
            all.extend(page);
        }
    }

    /// Operations works the dead letters, and with `review` the exception
    /// queue too, until they are empty or hold only what the operator cannot
    /// fix, delivering after each round.
    async fn work_the_queue(
        &mut self,
        hub: &Hub,
        progress: &ProgressBar,
        stage: &str,
        review: Review,
    ) -> anyhow::Result<()> {
        for _ in 0..MAX_OPERATOR_ROUNDS {
            let sent_again = operate(hub, &mut self.operated, review).await?;
            if sent_again == 0 {
                return Ok(());
            }
            self.deliver(progress, stage).await?;
        }
        Ok(())
    }
}

/// What the operator looks at in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Review {
    /// Dead letters only: a technical failure is retried as soon as it is
    /// seen, since the system answers again.
    DeadLetters,
    /// Dead letters and the exception queue, which finance reviews once a
    /// week.
    Everything,
}

/// One round of the operator, through the API with the operations key, as a
/// person would: dead letters are retried as they are; with
/// [`Review::Everything`], the ERP's `unknown_sku` refusals are retried with
/// the return order corrected to the ERP's item code. Anything else is left
/// for the summary to show. Returns how many were retried.
async fn operate(
    hub: &Hub,
    operated: &mut BTreeMap<String, BTreeSet<i64>>,
    review: Review,
) -> anyhow::Result<usize> {
    let states: &[&str] = match review {
        Review::DeadLetters => &["dead"],
        Review::Everything => &["dead", "exception"],
    };
    let mut sent_again = 0;
    for &state in states {
        let list = hub
            .ok(
                "operations",
                "GET",
                &format!("/v1/deliveries?state={state}&limit=1000"),
                None,
            )
            .await?;
        for item in list["items"].as_array().into_iter().flatten() {
            let id = item["id"].as_i64().context("a delivery without an id")?;
            let body = match (state, item["last_error"]["code"].as_str()) {
                ("exception", Some("unknown_sku")) => {
                    let detail = hub
                        .ok("operations", "GET", &format!("/v1/deliveries/{id}"), None)
                        .await?;
                    let mut payload = detail["payload"].clone();
                    for line in payload["lines"].as_array_mut().into_iter().flatten() {
                        if line["sku"] == KIT_SKU {
                            line["sku"] = json!(KIT_ERP_ITEM);
                        }
                    }
                    json!({
                        "reason": format!("the ERP's item master has {KIT_SKU} as {KIT_ERP_ITEM}; return order corrected"),
                        "payload": payload,
                    })
                }
                ("dead", _) => json!({"reason": "the system answers again; deliver once more"}),
                _ => continue,
            };
            hub.ok(
                "operations",
                "POST",
                &format!("/v1/deliveries/{id}/retry"),
                Some(&body),
            )
            .await?;
            let target = item["target"].as_str().unwrap_or("?").to_owned();
            operated.entry(target).or_default().insert(id);
            sent_again += 1;
        }
    }
    Ok(sent_again)
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

    let systems = Systems::open(&dir, seed, &clock).await?;
    let in_process: BTreeMap<Target, Router> = systems
        .all()
        .into_iter()
        .map(|(target, sim)| (target, sim.router()))
        .collect();
    let sinks = backhaul_connectors::build(&connectors(), &in_process)
        .context("invalid connector configuration")?;
    let (policy_file, policy_text) = SAMPLE_POLICY;
    let policy = Policy::load(policy_file, policy_text)
        .map_err(|e| anyhow::anyhow!("the sample policy does not load:\n{e}"))?;
    let policy_version = policy.version().to_owned();
    let mut engine_config = EngineConfig {
        // The master data is loaded below, through the engine, as an
        // operator's import would be.
        rules: RulesHandle::new(Some(policy), MasterData::empty()),
        dispose_on_inspection: true,
        ..EngineConfig::default()
    };
    engine_config.connect(&sinks);
    let engine = Engine::open(
        store.clone(),
        engine_config,
        Arc::new(clock.clone()),
        &tracker,
        shutdown.child_token(),
    )
    .await?;
    let dispatcher = Dispatcher::new(
        engine.clone(),
        DispatcherConfig {
            instance: "demo".to_owned(),
            ..DispatcherConfig::default()
        },
        sinks,
    )
    .map_err(|e| anyhow::anyhow!("dispatcher: {e}"))?;
    let mut outbox = Outbox {
        dispatcher,
        store: store.clone(),
        clock: clock.clone(),
        attempts: 0,
        operated: BTreeMap::new(),
    };

    let mut tokens = BTreeMap::new();
    let partners: [(&'static str, &[Scope]); 6] = [
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
        ("finance", &[Scope::FinanceWrite, Scope::ReturnsRead]),
        ("operations", &[Scope::DeliveriesManage]),
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
            dispatcher: None,
            webhooks: backhaul_api::InboundWebhooks::default(),
        }),
        tokens,
        counters: Counters::default(),
        carrier_system: systems.carrier.router(),
    });

    let mut plans = plans(n, seed);
    let loaded = load_master(&engine, &mut plans, clock.now()).await?;
    writeln!(
        out,
        "policy {policy_version} ({policy_file}); master data: {loaded}"
    )?;
    out.flush()?;
    let progress = ProgressBar::new((n * 4) as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg:<40} [{bar:30}] {pos}/{len}")
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
                         "requested_outcome":"refund","unit_price":money(100, "USD"),"unit_tax":money(8, "USD")}]}),
    )
    .await?;

    // Day 0: requests and decisions; the hub asks the ERP for return
    // orders, the WMS for expected receipts, the carrier for labels.
    progress.set_message("day 0: requests, decisions");
    let ids = drive_all(&tracker, &hub, &plans, &progress, |hub, plan| async move {
        request_and_decide(&hub, &plan).await
    })
    .await?;
    outbox.deliver(&progress, "day 0: hub → systems").await?;
    outbox
        .work_the_queue(&hub, &progress, "day 0: dead letters", Review::DeadLetters)
        .await?;

    // Day 4: parcels on their way and in the warehouse; a few cancelled.
    clock.advance(Duration::days(4));
    progress.set_message("day 4: scans, receipts, cancellations");
    let labels = labels_by_return(&systems.carrier).await?;
    let returns: Vec<(Plan, String, Option<String>)> = plans
        .iter()
        .cloned()
        .zip(ids)
        .map(|(plan, id)| {
            let tracking = labels.get(&id).cloned();
            (plan, id, tracking)
        })
        .collect();
    drive_all(
        &tracker,
        &hub,
        &returns,
        &progress,
        |hub, (plan, id, tracking)| async move {
            ship_and_receive(&hub, &plan, &id, tracking.as_deref()).await
        },
    )
    .await?;
    outbox.deliver(&progress, "day 4: hub → systems").await?;
    outbox
        .work_the_queue(&hub, &progress, "day 4: dead letters", Review::DeadLetters)
        .await?;

    // Day 11: the exception queue is worked; late units arrive; labels
    // nobody used have expired.
    clock.advance(Duration::days(7));
    progress.set_message("day 11: exception queue");
    outbox
        .work_the_queue(
            &hub,
            &progress,
            "day 11: exception queue",
            Review::Everything,
        )
        .await?;
    progress.set_message("day 11: late units, expiry");
    drive_all(
        &tracker,
        &hub,
        &returns,
        &progress,
        |hub, (plan, id, _)| async move { late_units_and_expiry(&hub, &plan, &id).await },
    )
    .await?;
    outbox.deliver(&progress, "day 11: hub → systems").await?;
    outbox
        .work_the_queue(
            &hub,
            &progress,
            "day 11: exception queue",
            Review::Everything,
        )
        .await?;

    // Day 12: finance closes what is settled.
    clock.advance(Duration::days(1));
    progress.set_message("day 12: close");
    let left_open: Vec<String> = drive_all(
        &tracker,
        &hub,
        &returns,
        &progress,
        |hub, (plan, id, _)| async move { close(&hub, &plan, &id).await },
    )
    .await?
    .into_iter()
    .flatten()
    .collect();
    outbox.deliver(&progress, "day 12: hub → systems").await?;
    outbox
        .work_the_queue(
            &hub,
            &progress,
            "day 12: exception queue",
            Review::Everything,
        )
        .await?;
    progress.finish_and_clear();

    let summary = summarize(&engine, &store, &systems, &outbox).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    systems.close().await;
    let mut summary = summary?;
    summary.policy_version = policy_version;
    summary.problems.extend(left_open);
    print_summary(out, n, &summary, &hub.counters, &dir, started.elapsed())?;
    if !summary.problems.is_empty() {
        bail!("reconciliation failed:\n{}", summary.problems.join("\n"));
    }
    Ok(())
}

/// Loads the sample master data and the orders the plans return from
/// (filling in the serials the plans return), as an operator's imports
/// would. Returns what was loaded, in words.
async fn load_master(
    engine: &Engine,
    plans: &mut [Plan],
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let mut loaded = Vec::new();
    for (stem, bytes) in SAMPLE_MASTER {
        let kind = Kind::parse(stem).with_context(|| format!("no master data kind {stem}"))?;
        let file = format!("samples/master/{stem}.csv");
        let (changes, _revision) = engine
            .import_master(kind, &file, bytes, false)
            .await
            .with_context(|| format!("cannot import {file}"))?;
        let c = changes.of(kind);
        loaded.push(format!("{} {stem}", c.created + c.updated + c.unchanged));
    }
    let master = engine.rules().current().master.clone();
    let orders = orders(plans, &master, now)?;
    engine
        .put_master(&orders, false)
        .await
        .context("cannot store the demo's orders")?;
    loaded.push(format!(
        "{} orders written for the demo's returns (sold {} to {} days ago)",
        orders.len(),
        SOLD_DAYS_AGO.start(),
        SOLD_DAYS_AGO.end()
    ));
    Ok(loaded.join(", "))
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

/// Day 0: the portal opens the return in its own codes and the policy
/// decides; support approves what the policy sent to review. Fails if the
/// policy decided otherwise than the scenario expects. Returns the id.
async fn request_and_decide(hub: &Hub, p: &Plan) -> anyhow::Result<String> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    let lines: Vec<Value> = p
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"line_no": i + 1, "sku": l.sku, "quantity": l.quantity.to_string(), "uom": "EA",
                   "reason_code": l.reason.portal_code(), "requested_outcome": l.outcome,
                   "unit_price": money(l.price, p.currency), "unit_tax": money(unit_tax(l.price), p.currency),
                   "order_line_ref": l.order_line_ref, "serial_numbers": l.serials})
        })
        .collect();
    let request = json!({"channel": "portal", "customer": p.customer, "order_ref": p.order_ref,
                         "currency": p.currency, "site": "DC1", "lines": lines});
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
    check_decision(p, &created)?;
    match p.scenario {
        Scenario::Rejected => {
            // The WMS tries to receive against a rejected return: refused.
            hub.refused("wms", &path(&id, "receipts"), &k("bad-receipt"), json!({"receipt_ref": format!("RCV-{}-X", p.idx), "lines": [{"sku": p.lines[0].sku, "quantity": "1"}]})).await?;
        }
        Scenario::ReviewThenApproved => {
            // Support looked at the photos of the pallet.
            hub.command("support", &path(&id, "approve"), &k("approve"), json!({}))
                .await?;
        }
        Scenario::Standard
        | Scenario::PartialReceipt
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::CancelledAfterLabel
        | Scenario::Expired => {}
    }
    Ok(id)
}

/// Whether the policy decided on the new return as the scenario expects:
/// the verdict, the status it led to, and exactly the expected rules
/// failed. The demo is scripted against the sample policy, so any other
/// decision means the policy, the master data or the demo changed.
fn check_decision(p: &Plan, created: &Value) -> anyhow::Result<()> {
    let ret = &created["return"];
    let eligibility = &ret["eligibility"];
    let (verdict, status, failures) = p.scenario.expected_decision();
    let failed: BTreeSet<&str> = eligibility["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["passed"] == false)
        .filter_map(|r| r["rule"].as_str())
        .collect();
    if eligibility["verdict"] != verdict
        || ret["status"] != status
        || failed != failures.iter().copied().collect()
    {
        bail!(
            "{} ({:?}, customer {}, order {}): the policy was expected to {verdict} it with {failures:?} failed; \
             it is {} with eligibility {eligibility}",
            ret["rma_number"].as_str().unwrap_or("a new return"),
            p.scenario,
            p.customer,
            p.order_ref,
            ret["status"],
        );
    }
    Ok(())
}

/// The carrier's labels that are not voided, by the return they were
/// requested for (the label request carries the return's id).
async fn labels_by_return(carrier: &Sim) -> anyhow::Result<HashMap<String, String>> {
    let labels = sim_get(&carrier.router(), "/carrier/labels").await?;
    Ok(labels
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["voided"] != true)
        .filter_map(|l| {
            Some((
                l["return_id"].as_str()?.to_owned(),
                l["tracking_number"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Day 4: support cancels the returns whose customers kept the goods; the
/// carrier posts the scans of the others (duplicates and reorderings as
/// its feed has them); the warehouse receives and inspects, and the
/// policy dispositions.
async fn ship_and_receive(
    hub: &Hub,
    p: &Plan,
    id: &str,
    tracking: Option<&str>,
) -> anyhow::Result<()> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    match p.scenario {
        Scenario::CancelledAfterLabel => {
            // The hub voids the label and cancels the expected receipt.
            hub.command(
                "support",
                &path(id, "cancel"),
                &k("cancel"),
                json!({"reason": "customer kept the goods"}),
            )
            .await?;
            return Ok(());
        }
        Scenario::Rejected | Scenario::Expired => return Ok(()),
        Scenario::Standard
        | Scenario::PartialReceipt
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::ReviewThenApproved => {}
    }
    let tracking = tracking.with_context(|| format!("the carrier has no label for return {id}"))?;
    let feed = sim_get(
        &hub.carrier_system,
        &format!("/carrier/labels/{tracking}/scans"),
    )
    .await?;
    let scans: Vec<Scan> = serde_json::from_value(feed).context("the carrier's scan feed")?;
    for scan in scans {
        // The hub has no "picked up": once the carrier has the parcel, it
        // is in transit.
        let milestone = match scan.milestone {
            Milestone::PickedUp | Milestone::InTransit => "in_transit",
            Milestone::OutForDelivery => "out_for_delivery",
            Milestone::Delivered => "delivered",
        };
        // A scan delivered twice carries the same scan id, so the same
        // idempotency key: answered again, not applied twice.
        hub.command(
            "carrier",
            &path(id, "milestones"),
            &format!("scan-{}", scan.scan_id),
            json!({"milestone": milestone, "occurred_at": scan.occurred_at.to_rfc3339(),
                   "location": scan.location}),
        )
        .await?;
    }
    // The warehouse receives; for partial receipts only ~60% now.
    let mut receipt_lines: Vec<Value> = p
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let q = match p.scenario {
                Scenario::PartialReceipt => (l.quantity * 6).div_ceil(10),
                Scenario::OverAndUnexpected if i == 0 => l.quantity + 1,
                Scenario::Standard
                | Scenario::SplitDisposition
                | Scenario::OverAndUnexpected
                | Scenario::Rejected
                | Scenario::ReviewThenApproved
                | Scenario::CancelledAfterLabel
                | Scenario::Expired => l.quantity,
            };
            json!({"line_no": i + 1, "sku": l.sku, "quantity": q.to_string()})
        })
        .collect();
    if p.scenario == Scenario::OverAndUnexpected {
        receipt_lines.push(json!({"sku": "MYSTERY-BOX", "quantity": "1"}));
    }
    let receipt = json!({"receipt_ref": format!("RCV-{}-1", p.idx), "lines": receipt_lines});
    let after = hub
        .command(
            "wms",
            &path(id, "receipts"),
            &k("receipt-1"),
            receipt.clone(),
        )
        .await?;
    if p.send_duplicates {
        // The WMS replays its receipt message: answered, not applied twice.
        hub.command("wms", &path(id, "receipts"), &k("receipt-1"), receipt)
            .await?;
    }
    process_received(hub, p, id, &after, "1").await
}

/// The WMS inspects every unit awaiting it and reports each unit's
/// condition; the policy dispositions them in the same step (and decides
/// the restocking fees), so the WMS sends no dispositions of its own.
async fn process_received(
    hub: &Hub,
    p: &Plan,
    id: &str,
    state: &Value,
    round: &str,
) -> anyhow::Result<()> {
    let k = |step: &str| format!("demo-{}-{step}-{round}", p.idx);
    let mut inspections = Vec::new();
    for line in state["return"]["lines"].as_array().context("no lines")? {
        let line_no = line["line"]["line_no"].as_u64().context("line_no")?;
        let received: i64 = line["received"].as_str().context("received")?.parse()?;
        let inspected: i64 = line["inspected"].as_str().context("inspected")?.parse()?;
        let todo = received - inspected;
        if todo <= 0 {
            continue;
        }
        let planned = usize::try_from(line_no)
            .ok()
            .and_then(|n| p.lines.get(n.checked_sub(1)?))
            .with_context(|| format!("return {id} has a line {line_no} the demo did not plan"))?;
        for (condition, quantity) in conditions(p.scenario, planned.reason, todo) {
            if quantity > 0 {
                inspections.push(json!({"line_no": line_no, "quantity": quantity.to_string(),
                                        "condition": condition.wms_grade()}));
            }
        }
    }
    if inspections.is_empty() {
        return Ok(());
    }
    let answer = hub
        .command(
            "wms",
            &path(id, "inspections"),
            &k("inspect"),
            json!({"inspections": inspections}),
        )
        .await?;
    // The hub dispositions inspected units by the policy; without that the
    // units would wait for a disposition nobody sends.
    let events = &answer["events"];
    let dispositioned = events
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e == "UnitsDispositioned"));
    if !dispositioned {
        bail!(
            "{}: the policy did not disposition the inspected units (events {events}): {}",
            answer["return"]["rma_number"].as_str().unwrap_or(id),
            json!({"inspections": inspections})
        );
    }
    Ok(())
}

/// The conditions the warehouse finds `units` units of a line in. A line
/// usually comes back as its reason says; a split return's units come back
/// in every state (one defective, a fifth damaged, one opened, the rest
/// new), so the policy sends them to vendor return, scrap, refurbishment
/// or B-stock and restock. The units for review come back new.
fn conditions(scenario: Scenario, reason: Reason, units: i64) -> Vec<(Condition, i64)> {
    match scenario {
        Scenario::SplitDisposition if units >= 4 => {
            let defective = 1;
            let damaged = (units / 5).max(1);
            let opened = i64::from(units >= 6);
            vec![
                (Condition::New, units - defective - damaged - opened),
                (Condition::Opened, opened),
                (Condition::Damaged, damaged),
                (Condition::Defective, defective),
            ]
        }
        Scenario::ReviewThenApproved => vec![(Condition::New, units)],
        Scenario::Standard
        | Scenario::PartialReceipt
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::Rejected
        | Scenario::CancelledAfterLabel
        | Scenario::Expired => vec![(reason.condition(), units)],
    }
}

/// Day 11: the rest of the partial receipts arrives; support expires the
/// returns whose label ran out unused.
async fn late_units_and_expiry(hub: &Hub, p: &Plan, id: &str) -> anyhow::Result<()> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    match p.scenario {
        Scenario::Expired => {
            hub.command("support", &path(id, "expire"), &k("expire"), json!({}))
                .await?;
        }
        Scenario::PartialReceipt => {
            let receipt_lines: Vec<Value> = p
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i, l, l.quantity - (l.quantity * 6).div_ceil(10)))
                .filter(|(_, _, late)| *late > 0)
                .map(|(i, l, late)| json!({"line_no": i + 1, "sku": l.sku, "quantity": late.to_string()}))
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
            }
        }
        Scenario::Standard
        | Scenario::SplitDisposition
        | Scenario::OverAndUnexpected
        | Scenario::Rejected
        | Scenario::ReviewThenApproved
        | Scenario::CancelledAfterLabel => {}
    }
    Ok(())
}

/// Day 12: finance closes every received return; the ERP's credit memos
/// have settled all their units by now. A return the hub will not close yet
/// (units still awaiting settlement because a credit memo is stuck) is left
/// open for the summary to name; returns the RMA of such a return.
async fn close(hub: &Hub, p: &Plan, id: &str) -> anyhow::Result<Option<String>> {
    if !p.scenario.closes() {
        return Ok(None);
    }
    let key = format!("demo-{}-close", p.idx);
    let (status, value) = hub
        .call(
            "finance",
            "POST",
            &path(id, "close"),
            Some(&key),
            Some(&json!({})),
        )
        .await?;
    if status.is_success() {
        return Ok(None);
    }
    if value["code"] == "not_ready_to_close" {
        let (_, current) = hub
            .call("finance", "GET", &format!("/v1/returns/{id}"), None, None)
            .await?;
        let rma = current["rma_number"].as_str().unwrap_or(id);
        let detail = value["detail"].as_str().unwrap_or_default();
        return Ok(Some(format!("{rma} could not be closed: {detail}")));
    }
    bail!(
        "finance POST {} failed with {status}: {value}",
        path(id, "close")
    );
}

/// What paid and credited came to in one currency.
#[derive(Default, Clone, Copy)]
struct MoneyTotals {
    paid_for_received: Decimal,
    credited: Decimal,
    /// Restocking fees the policy kept from the credits (the price part;
    /// the tax on it is kept in proportion).
    fees: Decimal,
}

/// One connector's deliveries, from the dispatcher's counters and the
/// outbox's final states.
#[derive(Default)]
struct DeliveryRow {
    done: i64,
    retried: u64,
    exceptions: u64,
    /// Sent again by the operator and done since.
    fixed: usize,
    dead: u64,
}

/// One line of the ledger reconciliation: what the ERP holds and what the
/// hub says it should.
struct LedgerLine {
    what: String,
    erp: String,
    hub: String,
    note: String,
}

/// Totals over every return, and any reconciliation problem found.
#[derive(Default)]
struct Summary {
    by_status: BTreeMap<String, u64>,
    /// The version of the policy in force, and its verdicts on the
    /// requests (`approve`, `review`, `reject`).
    policy_version: String,
    verdicts: BTreeMap<String, u64>,
    units: BTreeMap<&'static str, Decimal>,
    /// Inspected units per condition the warehouse reported.
    by_condition: BTreeMap<String, Decimal>,
    by_disposition: BTreeMap<String, Decimal>,
    money: BTreeMap<String, MoneyTotals>,
    events: u64,
    open_flags: BTreeMap<String, u64>,
    deliveries: BTreeMap<String, DeliveryRow>,
    systems: Vec<(Target, Stats)>,
    ledger: Vec<LedgerLine>,
    problems: Vec<String>,
}

/// What the ledger reconciliation needs of one return.
struct ReturnFacts {
    rma: String,
    currency: String,
    credited: Decimal,
    /// Whether it was ever approved (approval authorises at least one unit).
    approved: bool,
    /// Cancelled or expired: an approved one must have its ERP return order
    /// cancelled.
    cancelled: bool,
    /// Documents of the ERP linked on the return: (kind, number).
    erp_documents: Vec<(String, String)>,
    /// Units per disposition, over its lines: what its supplier claims,
    /// repair and replacement orders must add up to.
    dispositioned: BTreeMap<String, Decimal>,
}

fn dec(v: &Value) -> Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

const UNIT_TOTALS: [&str; 8] = [
    "requested",
    "authorized",
    "received",
    "over_received",
    "unexpected",
    "inspected",
    "dispositioned",
    "settled",
];

async fn summarize(
    engine: &Engine,
    store: &AnyStore,
    systems: &Systems,
    outbox: &Outbox,
) -> anyhow::Result<Summary> {
    let mut s = Summary::default();
    let mut facts = Vec::new();
    // Units put back on hand per SKU: what the ERP's inventory must show.
    let mut restocked: BTreeMap<String, Decimal> = BTreeMap::new();
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
            // The list row has the totals; the full summary (lines,
            // documents) comes from the return's log.
            let id = backhaul_domain::values::ReturnId::parse(
                item["return_id"].as_str().unwrap_or_default(),
            )?;
            let r = engine
                .get(id)
                .await?
                .context("a listed return has a log")?
                .to_value();
            let status = r["status"].as_str().unwrap_or("?").to_owned();
            let rma = r["rma_number"].as_str().unwrap_or("?").to_owned();
            *s.by_status.entry(status.clone()).or_default() += 1;
            let verdict = r["eligibility"]["verdict"].as_str().unwrap_or("none");
            *s.verdicts.entry(verdict.to_owned()).or_default() += 1;
            for flag in r["flags"].as_array().into_iter().flatten() {
                *s.open_flags
                    .entry(flag.as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            let t = &r["totals"];
            for key in UNIT_TOTALS {
                *s.units.entry(key).or_default() += dec(&t[key]);
            }
            let currency = r["currency"].as_str().unwrap_or("?").to_owned();
            let money = s.money.entry(currency.clone()).or_default();
            money.paid_for_received += dec(&r["paid_for_received"]);
            money.credited += dec(&t["credited"]);
            let mut dispositioned: BTreeMap<String, Decimal> = BTreeMap::new();
            for line in r["lines"].as_array().into_iter().flatten() {
                money.fees += dec(&line["fees"]);
                for (c, q) in line["conditions"].as_object().into_iter().flatten() {
                    *s.by_condition.entry(c.clone()).or_default() += dec(q);
                }
                let received = dec(&line["received"]);
                let inspected = dec(&line["inspected"]);
                let sku = line["line"]["sku"].as_str().unwrap_or("?");
                let mut disp = Decimal::ZERO;
                for (k, v) in line["dispositioned"].as_object().into_iter().flatten() {
                    *s.by_disposition.entry(k.clone()).or_default() += dec(v);
                    *dispositioned.entry(k.clone()).or_default() += dec(v);
                    disp += dec(v);
                    if k == "restock" || k == "refurbish" {
                        *restocked.entry(sku.to_owned()).or_default() += dec(v);
                    }
                }
                // Units conserved: received = awaiting inspection + awaiting disposition + dispositioned.
                if (received - inspected) + (inspected - disp) + disp != received
                    || disp > inspected
                    || inspected > received
                {
                    s.problems
                        .push(format!("{rma}: units not conserved on a line"));
                }
                // Credit ≤ what was paid for the settled units, less the
                // restocking fees the policy kept, once every dispositioned
                // unit of the line is settled (before that, the fees of
                // units not yet credited are not kept from anything).
                let settled = dec(&line["settled"]);
                let paid = settled
                    * (dec(&line["line"]["unit_price"]["amount"])
                        + dec(&line["line"]["unit_tax"]["amount"]));
                let kept = if settled == disp {
                    dec(&line["fees"])
                } else {
                    Decimal::ZERO
                };
                if dec(&line["credited"]) > paid - kept {
                    s.problems.push(format!(
                        "{rma}: credited more than paid less restocking fees on a line"
                    ));
                }
            }
            let erp_documents = r["documents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["system"] == "erp")
                .map(|d| {
                    (
                        d["kind"].as_str().unwrap_or("?").to_owned(),
                        d["number"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect();
            facts.push(ReturnFacts {
                rma,
                currency,
                credited: dec(&t["credited"]),
                approved: !dec(&t["authorized"]).is_zero(),
                cancelled: status == "cancelled" || status == "expired",
                erp_documents,
                dispositioned,
            });
        }
    }
    let mut after = 0;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        s.events += page.len() as u64;
    }
    deliveries(&mut s, store, outbox).await?;
    for (target, sim) in systems.all() {
        let stats = sim.stats().await?;
        if stats.invalid + stats.failed > 0 {
            s.problems.push(format!(
                "the {} simulator refused {} requests as invalid and failed {}",
                target.as_str(),
                stats.invalid,
                stats.failed
            ));
        }
        s.systems.push((target, stats));
    }
    reconcile_erp(&mut s, &facts, &restocked, &systems.erp).await?;
    let portal = systems.portal.stats().await?;
    s.ledger.push(LedgerLine {
        what: "portal updates out of order".to_owned(),
        erp: String::new(),
        hub: portal.out_of_order.to_string(),
        note: String::new(),
    });
    if portal.out_of_order > 0 {
        s.problems.push(format!(
            "the portal saw {} status updates out of order",
            portal.out_of_order
        ));
    }
    Ok(s)
}

/// The deliveries table, and a problem for every delivery not done.
async fn deliveries(s: &mut Summary, store: &AnyStore, outbox: &Outbox) -> anyhow::Result<()> {
    for (target, stats) in outbox.dispatcher.stats() {
        let row = s.deliveries.entry(target.as_str().to_owned()).or_default();
        row.retried = stats.retried;
        row.exceptions = stats.exceptions;
        row.dead = stats.dead;
    }
    for (target, state, count) in store.delivery_counts().await? {
        match state {
            DeliveryState::Done => s.deliveries.entry(target).or_default().done += count,
            DeliveryState::Pending
            | DeliveryState::Dead
            | DeliveryState::Exception
            | DeliveryState::Skipped
            | DeliveryState::Cancelled => s
                .problems
                .push(format!("{count} deliveries to {target} ended {state}")),
        }
    }
    for (target, ids) in &outbox.operated {
        let mut fixed = 0;
        for id in ids {
            let delivery = store.get_delivery(*id).await?;
            if delivery.is_some_and(|d| d.state == DeliveryState::Done) {
                fixed += 1;
            }
        }
        s.deliveries.entry(target.clone()).or_default().fixed = fixed;
    }
    Ok(())
}

/// The ERP's books against the hub: credits per currency, inventory per
/// SKU, return orders per return, and every ERP document linked once.
async fn reconcile_erp(
    s: &mut Summary,
    facts: &[ReturnFacts],
    restocked: &BTreeMap<String, Decimal>,
    erp: &Sim,
) -> anyhow::Result<()> {
    let ledger = erp.ledger().await?;
    let postings = erp.postings().await?;

    // Credits per currency = what the returns say they credited.
    let mut credited: BTreeMap<String, Decimal> = BTreeMap::new();
    for f in facts {
        *credited.entry(f.currency.clone()).or_default() += f.credited;
    }
    let currencies: BTreeSet<&String> = credited.keys().chain(ledger.credits.keys()).collect();
    for currency in currencies {
        let in_erp = ledger.credits.get(currency).copied().unwrap_or_default();
        let in_hub = credited.get(currency).copied().unwrap_or_default();
        if in_erp != in_hub {
            s.problems.push(format!(
                "credits in {currency}: the ERP has {in_erp}, the returns credited {in_hub}"
            ));
        }
        s.ledger.push(LedgerLine {
            what: format!("credits {currency}"),
            erp: in_erp.to_string(),
            hub: in_hub.to_string(),
            note: "credited on the returns".to_owned(),
        });
    }

    // Inventory per SKU = units restocked or refurbished.
    let skus: BTreeSet<&String> = restocked.keys().chain(ledger.inventory.keys()).collect();
    let mut units = (Decimal::ZERO, Decimal::ZERO);
    for sku in &skus {
        let on_hand = ledger.inventory.get(*sku).copied().unwrap_or_default();
        let put_back = restocked.get(*sku).copied().unwrap_or_default();
        if on_hand != put_back {
            s.problems.push(format!(
                "inventory of {sku}: the ERP has {on_hand}, the hub restocked or refurbished {put_back}"
            ));
        }
        units.0 += on_hand;
        units.1 += put_back;
    }
    s.ledger.push(LedgerLine {
        what: format!("inventory ({} SKUs)", skus.len()),
        erp: units.0.to_string(),
        hub: units.1.to_string(),
        note: "units restocked or refurbished, per SKU".to_owned(),
    });

    // One return order per approved return; those of approved returns that
    // were cancelled or expired are cancelled in the ERP (below), not
    // removed.
    let by_rma: HashMap<&str, &ReturnFacts> = facts.iter().map(|f| (f.rma.as_str(), f)).collect();
    let mut orders: HashMap<&str, usize> = HashMap::new();
    for p in postings
        .iter()
        .filter(|p| p.kind == PostingKind::ReturnOrder)
    {
        *orders.entry(p.rma.as_str()).or_default() += 1;
    }
    let approved = facts.iter().filter(|f| f.approved).count();
    let cancelled = facts.iter().filter(|f| f.approved && f.cancelled).count();
    for f in facts {
        let expected = usize::from(f.approved);
        let found = orders.get(f.rma.as_str()).copied().unwrap_or(0);
        if found != expected {
            s.problems.push(format!(
                "{}: the ERP has {found} return orders, expected {expected}",
                f.rma
            ));
        }
    }
    for rma in orders.keys().filter(|rma| !by_rma.contains_key(*rma)) {
        s.problems.push(format!(
            "the ERP has a return order for {rma}, which the hub does not know"
        ));
    }
    s.ledger.push(LedgerLine {
        what: "return orders".to_owned(),
        erp: orders.values().sum::<usize>().to_string(),
        hub: approved.to_string(),
        note: "one per approved return".to_owned(),
    });
    // Approved returns that were cancelled or expired: their order is
    // cancelled in the ERP, once.
    let mut cancellations: BTreeMap<&str, usize> = BTreeMap::new();
    for p in postings
        .iter()
        .filter(|p| p.kind == PostingKind::ReturnOrderCancellation)
    {
        *cancellations.entry(p.rma.as_str()).or_default() += 1;
    }
    for f in facts {
        let expected = usize::from(f.approved && f.cancelled);
        let found = cancellations.get(f.rma.as_str()).copied().unwrap_or(0);
        if found != expected {
            s.problems.push(format!(
                "{}: the ERP cancelled its return order {found} times, expected {expected}",
                f.rma
            ));
        }
    }
    s.ledger.push(LedgerLine {
        what: "orders cancelled".to_owned(),
        erp: cancellations.values().sum::<usize>().to_string(),
        hub: cancelled.to_string(),
        note: "approved returns cancelled or expired".to_owned(),
    });

    // Every unit returned to its vendor, refurbished or replaced is on the
    // ERP's supplier claims, repair orders or replacement orders of its
    // return, once: per return, their units add up to the hub's.
    for (kind, linked_as, disposition, what) in [
        (
            PostingKind::SupplierClaim,
            "supplier_claim",
            "vendor_return",
            "supplier claims",
        ),
        (
            PostingKind::RepairOrder,
            "repair_order",
            "refurbish",
            "repair orders",
        ),
        (
            PostingKind::ReplacementOrder,
            "replacement_order",
            "replacement",
            "replacement orders",
        ),
    ] {
        let mut on_documents: HashMap<&str, Decimal> = HashMap::new();
        let mut documents = 0;
        for p in postings.iter().filter(|p| p.kind == kind) {
            documents += 1;
            let units: Decimal = p.body["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| dec(&l["quantity"]))
                .sum();
            *on_documents.entry(p.rma.as_str()).or_default() += units;
        }
        let mut units = Decimal::ZERO;
        for f in facts {
            let expected = f
                .dispositioned
                .get(disposition)
                .copied()
                .unwrap_or_default();
            let found = on_documents
                .get(f.rma.as_str())
                .copied()
                .unwrap_or_default();
            units += expected;
            if found != expected {
                s.problems.push(format!(
                    "{}: the ERP's {what} have {found} units, the return {expected} {disposition} units",
                    f.rma
                ));
            }
        }
        let linked = facts
            .iter()
            .flat_map(|f| &f.erp_documents)
            .filter(|(k, _)| k == linked_as)
            .count();
        s.ledger.push(LedgerLine {
            what: what.to_owned(),
            erp: documents.to_string(),
            hub: linked.to_string(),
            note: format!("{units} {disposition} units on them, per return"),
        });
    }

    // Every ERP posting is linked on its return exactly once, as the kind
    // it is, and the returns link nothing the ERP does not have.
    let mut numbers: BTreeSet<(&str, &str)> = BTreeSet::new();
    for p in &postings {
        let kind = match p.kind {
            PostingKind::ReturnOrder => "erp_return_order",
            PostingKind::InventoryAdjustment => "inventory_adjustment",
            PostingKind::CreditMemo => "credit_memo",
            PostingKind::SupplierClaim => "supplier_claim",
            PostingKind::RepairOrder => "repair_order",
            PostingKind::ReplacementOrder => "replacement_order",
            PostingKind::ReturnOrderCancellation
            | PostingKind::ExpectedReceipt
            | PostingKind::ReceiptCancellation
            | PostingKind::Label
            | PostingKind::LabelVoid
            | PostingKind::PortalStatus => continue,
        };
        let number = p.number.as_deref().unwrap_or("?");
        numbers.insert((p.rma.as_str(), number));
        let linked = by_rma.get(p.rma.as_str()).map_or(0, |f| {
            f.erp_documents
                .iter()
                .filter(|(k, n)| k == kind && n == number)
                .count()
        });
        if linked != 1 {
            s.problems.push(format!(
                "{}: the ERP's {kind} {number} is linked {linked} times on the return",
                p.rma
            ));
        }
    }
    let mut linked = 0;
    for f in facts {
        for (kind, number) in &f.erp_documents {
            linked += 1;
            if !numbers.contains(&(f.rma.as_str(), number.as_str())) {
                s.problems.push(format!(
                    "{}: the return links the ERP's {kind} {number}, which the ERP does not have",
                    f.rma
                ));
            }
        }
    }
    s.ledger.push(LedgerLine {
        what: "ERP documents".to_owned(),
        erp: numbers.len().to_string(),
        hub: linked.to_string(),
        note: "each linked once on its return".to_owned(),
    });
    Ok(())
}

fn print_summary(
    out: &mut impl Write,
    n: usize,
    s: &Summary,
    c: &Counters,
    dir: &Path,
    elapsed: std::time::Duration,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "Backhaul demo: {n} returns on embedded SQLite, ERP, WMS, carrier and portal simulated in process ({})",
        dir.display()
    )?;
    writeln!(out)?;
    writeln!(out, "{:<22} {:>8}", "outcome", "returns")?;
    for (status, count) in &s.by_status {
        writeln!(out, "{status:<22} {count:>8}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:>8}",
        format!("policy {}", s.policy_version),
        "verdicts"
    )?;
    // Best to worst, then anything else (a return decided without the
    // policy would show as `none`).
    let order = ["approve", "review", "reject"];
    let others = s.verdicts.keys().filter(|v| !order.contains(&v.as_str()));
    for verdict in order.iter().copied().chain(others.map(String::as_str)) {
        let count = s.verdicts.get(verdict).copied().unwrap_or_default();
        writeln!(out, "  {verdict:<20} {count:>8}")?;
    }
    writeln!(
        out,
        "decided by             the sample policy on each request, from the sample master data and the demo's orders; support approved the ones held for review"
    )?;
    writeln!(out)?;
    writeln!(out, "{:<22} {:>8}", "units", "count")?;
    for key in UNIT_TOTALS {
        writeln!(
            out,
            "{key:<22} {:>8}",
            s.units.get(key).copied().unwrap_or_default()
        )?;
        let breakdown = match key {
            "inspected" => &s.by_condition,
            "dispositioned" => &s.by_disposition,
            _ => continue,
        };
        for (what, q) in breakdown {
            writeln!(out, "  {:<20} {q:>8}", format!("→ {what}"))?;
        }
    }
    writeln!(
        out,
        "conditions             as the WMS graded each unit (its grades through its crosswalk); the policy dispositioned them and set the restocking fees"
    )?;
    writeln!(out)?;
    write!(out, "{:<22}", "money")?;
    for currency in s.money.keys() {
        write!(out, " {currency:>12}")?;
    }
    writeln!(out)?;
    let mut row = |label: &str, value: &dyn Fn(&MoneyTotals) -> Decimal| -> anyhow::Result<()> {
        write!(out, "{label:<22}")?;
        for m in s.money.values() {
            write!(out, " {:>12}", value(m))?;
        }
        writeln!(out)?;
        Ok(())
    };
    row("paid for received", &|m| m.paid_for_received)?;
    row("credited", &|m| m.credited)?;
    row("not credited", &|m| m.paid_for_received - m.credited)?;
    row("  restocking fees", &|m| m.fees)?;
    writeln!(
        out,
        "credit policy          price + tax for refund and store-credit lines less the policy's restocking fees (tax kept in proportion), nothing for replacements (the goods are the settlement) or for units beyond those authorised"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:>8} {:>8} {:>10} {:>6} {:>6}",
        "deliveries", "done", "retried", "exceptions", "fixed", "dead"
    )?;
    for (target, row) in &s.deliveries {
        writeln!(
            out,
            "{target:<22} {:>8} {:>8} {:>10} {:>6} {:>6}",
            row.done, row.retried, row.exceptions, row.fixed, row.dead
        )?;
    }
    writeln!(
        out,
        "fixed                  exceptions and dead letters operations retried (return orders with {KIT_SKU} corrected to the ERP's {KIT_ERP_ITEM}) that went through"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "simulated system", "posts", "stored", "replayed", "429", "503", "lost", "refused"
    )?;
    for (target, st) in &s.systems {
        writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}",
            target.as_str(),
            st.total,
            st.stored,
            st.replayed,
            st.rate_limited,
            st.unavailable,
            st.lost_response,
            st.rejected
        )?;
    }
    writeln!(
        out,
        "faults                 every system: {:.0}% 503s, {:.0}% lost responses; the ERP takes {ERP_RATE_LIMIT}/s in bursts of {ERP_BURST} and does not know {KIT_SKU}",
        TRANSIENT_ERROR_RATE * 100.0,
        LOST_RESPONSE_RATE * 100.0
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:>12} {:>12}",
        "ERP ledger vs hub", "ERP", "hub"
    )?;
    for l in &s.ledger {
        let line = format!("{:<28} {:>12} {:>12}  {}", l.what, l.erp, l.hub, l.note);
        writeln!(out, "{}", line.trim_end())?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "requests sent          {:>8}  (partners → hub API)",
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
    if s.problems.is_empty() {
        writeln!(
            out,
            "reconciled             yes (units conserved, credit ≤ price + tax − restocking fees of the settled units on every line, ERP ledger = hub, every delivery done)"
        )?;
    } else {
        writeln!(out, "reconciled             NO")?;
        for problem in &s.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    writeln!(out, "elapsed                {elapsed:.2?}")?;
    Ok(())
}
