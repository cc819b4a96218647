//! `backhaul demo`: a few hundred returns driven through every stage on the
//! embedded default (SQLite), with simulators of the ERP, the WMS, the
//! carrier and the portal running in this process behind the real
//! connectors and the real dispatcher.
//!
//! Who plays what:
//! - Partners that *call* the hub do so through the router, each with its
//!   own API key and idempotency keys, as they would over HTTP: the portal
//!   opens returns, support decides, cancels and expires, the carrier posts
//!   its scan feed (read from the carrier simulator, with its duplicates and
//!   reorderings), the WMS posts receipts, inspections and dispositions,
//!   finance closes, and operations works the exception queue.
//! - Systems the hub *calls* are the simulators (`backhaul-sim`), reached
//!   through `backhaul_connectors` over their wire contracts: the ERP gets
//!   return orders, inventory adjustments and credit memos, the WMS expected
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
//! - day 0: returns are requested and decided; the hub asks the ERP for
//!   return orders, the WMS for expected receipts, the carrier for labels;
//! - day 4: a few returns are cancelled (the hub voids their label and
//!   cancels their expected receipt); the others' scans come in and the
//!   warehouse receives, inspects and dispositions them, after which the
//!   hub posts inventory adjustments and credit memos to the ERP;
//! - day 11: the exception queue is worked, the late units of partial
//!   receipts arrive, unused labels have expired;
//! - day 12: finance closes every settled return.
//!
//! Money: the hub credits what was paid (price plus tax) for refund and
//! store-credit lines and nothing for replacements; the demo no longer
//! posts settlements of its own, so there is no restocking fee.
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
use backhaul_engine::{
    Clock, DeliveryPolicy, Dispatcher, DispatcherConfig, Engine, EngineConfig, ManualClock,
};
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
}

/// One line of a scripted return.
#[derive(Debug, Clone)]
struct PlanLine {
    sku: String,
    quantity: u32,
    /// Unit price in minor units.
    price: i64,
    reason: &'static str,
    /// `refund`, `store_credit` or `replacement`.
    outcome: &'static str,
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
            price,
            reason: REASONS[rng.gen_range(0..REASONS.len())],
            outcome,
        });
    }
    // Every fifth order is returned twice: a second return against the same order.
    let order_no = if idx % 5 == 4 { idx - 1 } else { idx };
    Plan {
        idx,
        scenario,
        lines,
        order_ref: format!("SO-{:06}", 100_000 + order_no),
        customer: format!("C{:04}", rng.gen_range(1..=60)),
        // The European web shop's returns are in euros.
        currency: if rng.gen_bool(0.15) { "EUR" } else { "USD" },
        send_duplicates: rng.gen_bool(0.25),
    }
}

/// The scripted returns, with the kit on every [`KIT_EVERY`]th standard one.
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
    plans
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
    };
    // The hub was told the ERP takes bursts of 30; it takes fewer, and
    // answers the rest 429 with `Retry-After`.
    let erp = DeliveryPolicy {
        rate_per_sec: f64::from(ERP_RATE_LIMIT),
        burst: 30,
        concurrency: 30,
        ..quick
    };
    [
        (ConnectorKind::SimErp, erp),
        (ConnectorKind::SimWms, quick.clone()),
        (ConnectorKind::SimCarrier, quick.clone()),
        (ConnectorKind::SimPortal, quick),
    ]
    .into_iter()
    .map(|(kind, delivery)| {
        let config = ConnectorConfig {
            kind,
            url: String::new(),
            system: None,
            delivery,
        };
        (kind.target().as_str().to_owned(), config)
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
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            outbound: sinks.iter().map(|(sink, _)| sink.target()).collect(),
            ..EngineConfig::default()
        },
        Arc::new(clock.clone()),
        &tracker,
        shutdown.child_token(),
    );
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
        }),
        tokens,
        counters: Counters::default(),
        carrier_system: systems.carrier.router(),
    });

    let plans = plans(n, seed);
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
    summary.problems.extend(left_open);
    print_summary(out, n, &summary, &hub.counters, &dir, started.elapsed())?;
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

/// Day 0: the portal opens the return, support decides. Returns the id.
async fn request_and_decide(hub: &Hub, p: &Plan) -> anyhow::Result<String> {
    let k = |step: &str| format!("demo-{}-{step}", p.idx);
    let lines: Vec<Value> = p
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"line_no": i + 1, "sku": l.sku, "quantity": l.quantity.to_string(), "uom": "EA",
                   "reason_code": l.reason, "requested_outcome": l.outcome,
                   "unit_price": money(l.price, p.currency), "unit_tax": money(unit_tax(l.price), p.currency),
                   "order_line_ref": format!("{}-{}", p.order_ref, i + 1)})
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
            hub.refused("wms", &path(&id, "receipts"), &k("bad-receipt"), json!({"receipt_ref": format!("RCV-{}-X", p.idx), "lines": [{"sku": p.lines[0].sku, "quantity": "1"}]})).await?;
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
    Ok(id)
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
/// its feed has them); the warehouse receives, inspects and dispositions.
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
    // One message per disposition, each with the lines it applies to, as a
    // WMS confirms each put-away on its own.
    let mut dispositions: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    for line in state["return"]["lines"].as_array().context("no lines")? {
        let line_no = line["line"]["line_no"].as_u64().context("line_no")?;
        let received: i64 = line["received"].as_str().context("received")?.parse()?;
        let inspected: i64 = line["inspected"].as_str().context("inspected")?.parse()?;
        let todo = received - inspected;
        if todo <= 0 {
            continue;
        }
        let split = p.scenario == Scenario::SplitDisposition && todo >= 4;
        let condition = if split { "MIXED" } else { "GOOD" };
        inspections.push(
            json!({"line_no": line_no, "quantity": todo.to_string(), "condition": condition}),
        );
        let mut dispose = |quantity: i64, disposition: &'static str| {
            if quantity > 0 {
                dispositions.entry(disposition).or_default().push(json!({
                    "line_no": line_no, "quantity": quantity.to_string(), "disposition": disposition
                }));
            }
        };
        if split {
            // e.g. 10 units: 6 restock, 1 refurbish, 2 scrap, 1 vendor return.
            let scrap = (todo / 5).max(1);
            let vendor = 1;
            let refurbish = i64::from(todo >= 6);
            dispose(todo - scrap - vendor - refurbish, "restock");
            dispose(refurbish, "refurbish");
            dispose(scrap, "scrap");
            dispose(vendor, "vendor_return");
        } else {
            dispose(todo, "restock");
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
    // Each message makes the hub post an inventory adjustment to the ERP;
    // the last one, which leaves no unit without its disposition, also the
    // credit memo.
    for (disposition, lines) in dispositions {
        hub.command(
            "wms",
            &path(id, "dispositions"),
            &k(&format!("dispose-{disposition}")),
            json!({"dispositions": lines}),
        )
        .await?;
    }
    Ok(())
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
    units: BTreeMap<&'static str, Decimal>,
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
            for line in r["lines"].as_array().into_iter().flatten() {
                let received = dec(&line["received"]);
                let inspected = dec(&line["inspected"]);
                let sku = line["line"]["sku"].as_str().unwrap_or("?");
                let mut disp = Decimal::ZERO;
                for (k, v) in line["dispositioned"].as_object().into_iter().flatten() {
                    *s.by_disposition.entry(k.clone()).or_default() += dec(v);
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
                let paid = dec(&line["settled"])
                    * (dec(&line["line"]["unit_price"]["amount"])
                        + dec(&line["line"]["unit_tax"]["amount"]));
                if dec(&line["credited"]) > paid {
                    s.problems.push(format!("{rma}: credited more than paid"));
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

    // One return order per approved return. Cancelling a return leaves its
    // return order in the ERP: the lifecycle has no action that cancels it.
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

    // Every ERP posting is linked on its return exactly once, as the kind
    // it is, and the returns link nothing the ERP does not have.
    let mut numbers: BTreeSet<(&str, &str)> = BTreeSet::new();
    for p in &postings {
        let kind = match p.kind {
            PostingKind::ReturnOrder => "erp_return_order",
            PostingKind::InventoryAdjustment => "inventory_adjustment",
            PostingKind::CreditMemo => "credit_memo",
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
    writeln!(out, "{:<22} {:>8}", "units", "count")?;
    for key in UNIT_TOTALS {
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
    writeln!(
        out,
        "credit policy          price + tax for refund and store-credit lines, nothing for replacements (the goods are the settlement) or for units beyond those authorised; no restocking fee"
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
            "reconciled             yes (units conserved, credit ≤ price + tax of the settled units on every line, ERP ledger = hub, every delivery done)"
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
