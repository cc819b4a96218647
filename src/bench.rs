//! `backhaul bench`: drives N returns through the full lifecycle (12 events
//! each, 11 commands) through the engine with many concurrent callers, and in
//! the same run measures the raw ceiling of the storage: the same event rows
//! written with plain batched inserts, same durability. The result reads as a
//! fraction of that ceiling. Every commit is durable: SQLite WAL with
//! `synchronous=FULL`, PostgreSQL with `synchronous_commit=on`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use backhaul_domain::Command;
use backhaul_domain::model::ReturnRequest;
use backhaul_engine::{CommandMeta, Engine, EngineConfig, Idempotency, SystemClock};
use backhaul_store::{AnyStore, EventStore, PgStore, RawEventRow, SqliteStore, SqliteSync};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Returns driven through the whole lifecycle per backend.
    #[arg(long, default_value_t = 5000)]
    returns: usize,
    /// Concurrent callers (portal, WMS, ERP… requests in flight).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Which backends to measure.
    #[arg(long, value_enum, default_value_t = Backend::Both)]
    backend: Backend,
    /// PostgreSQL server to create a scratch database on.
    #[arg(
        long,
        env = "BACKHAUL_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
    /// Instead of the lifecycle, time this many synchronous eligibility
    /// checks (the sample policy and master data, a 10-line request) on an
    /// embedded hub: the hub time of `POST /v1/eligibility` without HTTP.
    #[arg(long, default_value_t = 0)]
    eligibility: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
    Both,
}

/// Figures of one backend.
struct Report {
    backend: &'static str,
    returns: usize,
    events: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    raw_events_per_sec: f64,
}

pub(crate) async fn run(args: BenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    anyhow::ensure!(args.returns > 0, "--returns: must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency: must be at least 1");
    if args.eligibility > 0 {
        return eligibility(args.eligibility, out).await;
    }
    let mut reports = Vec::new();
    if matches!(args.backend, Backend::Sqlite | Backend::Both) {
        let dir = tempfile::tempdir()?;
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("bench.db"), SqliteSync::Full).await?,
        );
        reports.push(measure("sqlite", store, &args).await?);
    }
    if matches!(args.backend, Backend::Postgres | Backend::Both) {
        let url = PgStore::fresh_database(&args.pg_admin_url, "backhaul_bench")
            .await
            .with_context(|| {
                format!("cannot create a scratch database on {}", args.pg_admin_url)
            })?;
        let store = AnyStore::Postgres(PgStore::connect(&url, 16).await?);
        reports.push(measure("postgres", store, &args).await?);
    }
    writeln!(
        out,
        "{:<9} {:>8} {:>8} {:>10} {:>11} {:>9} {:>9} {:>13} {:>9}",
        "backend",
        "returns",
        "events",
        "returns/s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "raw events/s",
        "of raw"
    )?;
    for r in &reports {
        let secs = r.elapsed.as_secs_f64();
        let events_per_sec = r.events as f64 / secs;
        writeln!(
            out,
            "{:<9} {:>8} {:>8} {:>10.0} {:>11.0} {:>9.2} {:>9.2} {:>13.0} {:>8.0}%",
            r.backend,
            r.returns,
            r.events,
            r.returns as f64 / secs,
            events_per_sec,
            r.latency.value_at_quantile(0.5) as f64 / 1000.0,
            r.latency.value_at_quantile(0.99) as f64 / 1000.0,
            r.raw_events_per_sec,
            100.0 * events_per_sec / r.raw_events_per_sec
        )?;
    }
    writeln!(
        out,
        "(full lifecycle: 11 commands, 12 events per return; concurrency {}; durable commits: SQLite WAL synchronous=FULL, PostgreSQL synchronous_commit=on)",
        args.concurrency
    )?;
    Ok(())
}

/// The sample orders (the demo writes its own; the benchmark uses these).
const SAMPLE_ORDERS: &[u8] = include_bytes!("../samples/master/orders.csv");

/// `--eligibility N`: the latency of one eligibility check, sequentially,
/// after a warm-up, with the hub's own store read for prior claims.
async fn eligibility(n: usize, out: &mut impl Write) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store =
        AnyStore::Sqlite(SqliteStore::open(&dir.path().join("bench.db"), SqliteSync::Full).await?);
    let (policy_file, policy_text) = crate::demo::SAMPLE_POLICY;
    let policy = backhaul_policy::Policy::load(policy_file, policy_text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let engine = Engine::start(
        store,
        EngineConfig {
            rules: backhaul_engine::RulesHandle::new(
                Some(policy),
                backhaul_master::MasterData::empty(),
            ),
            ..EngineConfig::default()
        },
        Arc::new(SystemClock),
        &tracker,
        shutdown.child_token(),
    );
    let master = crate::demo::SAMPLE_MASTER
        .into_iter()
        .chain([("orders", SAMPLE_ORDERS)]);
    for (stem, bytes) in master {
        let kind = backhaul_master::Kind::parse(stem).context("sample kind")?;
        engine.import_master(kind, stem, bytes, false).await?;
    }
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let lines: Vec<serde_json::Value> = (1..=10)
        .map(|n| {
            let (sku, line_ref, serial) = if n % 2 == 0 {
                ("BIT-SET-32", "SO-100000-2", None)
            } else {
                ("DRILL-18V", "SO-100000-1", Some("VL18-2610-004411"))
            };
            json!({"line_no": n, "sku": sku, "quantity": "1", "uom": "EA",
                   "serial_numbers": serial.into_iter().collect::<Vec<_>>(),
                   "reason_code": "DAMAGED", "requested_outcome": "refund",
                   "unit_price": money("129.00"), "unit_tax": money("10.32"),
                   "order_line_ref": line_ref})
        })
        .collect();
    let request: ReturnRequest = serde_json::from_value(json!({
        "channel": "portal", "customer": "C0003", "order_ref": "SO-100000", "currency": "USD",
        "site": "DC1", "lines": lines
    }))?;
    let mut latency = Histogram::<u64>::new(3)?;
    for i in 0..n + n / 10 {
        let started = Instant::now();
        let assessment = engine.check_eligibility(request.clone(), "bench").await?;
        let took = started.elapsed();
        anyhow::ensure!(
            assessment.rules.len() > 10,
            "the policy evaluated no line rules"
        );
        if i >= n / 10 {
            latency.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX))?;
        }
    }
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    writeln!(
        out,
        "eligibility checks: {n}, 10-line request, sample policy and master data: p50 {} µs, p99 {} µs, max {} µs",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    )?;
    writeln!(
        out,
        "(hub time without HTTP: crosswalks, facts from master data in memory, the hub's earlier returns of the order from the store, every rule)"
    )?;
    Ok(())
}

/// The lifecycle every benchmarked return goes through, after its creation.
fn lifecycle() -> anyhow::Result<(ReturnRequest, Vec<Command>)> {
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    let request: ReturnRequest = serde_json::from_value(json!({
        "channel": "portal", "customer": "C0001", "order_ref": "SO-BENCH", "currency": "USD", "site": "DC1",
        "lines": [
            {"line_no": 1, "sku": "DRILL-18V", "quantity": "5", "uom": "EA", "reason_code": "DEFECTIVE",
             "requested_outcome": "refund", "unit_price": money("129.00"), "unit_tax": money("10.32")},
            {"line_no": 2, "sku": "GLOVE-L", "quantity": "3", "uom": "EA", "reason_code": "DAMAGED",
             "requested_outcome": "refund", "unit_price": money("12.99"), "unit_tax": money("1.04")}
        ]
    }))?;
    let later = |h: i64| (chrono::Utc::now() + chrono::Duration::hours(h)).to_rfc3339();
    let commands = [
        json!({"command": "approve"}),
        json!({"command": "issue_label", "carrier": "UPS", "tracking_number": "1Z0001", "label_ref": "LBL-1", "expires_at": later(24 * 14)}),
        json!({"command": "record_carrier_milestone", "milestone": "in_transit", "occurred_at": later(1)}),
        json!({"command": "record_carrier_milestone", "milestone": "delivered", "occurred_at": later(2)}),
        json!({"command": "record_receipt", "receipt_ref": "RCV-1", "lines": [
            {"line_no": 1, "sku": "DRILL-18V", "quantity": "5"}, {"line_no": 2, "sku": "GLOVE-L", "quantity": "3"}]}),
        json!({"command": "record_inspection", "inspections": [
            {"line_no": 1, "quantity": "5", "condition": "GOOD"}, {"line_no": 2, "quantity": "3", "condition": "GOOD"}]}),
        json!({"command": "record_disposition", "dispositions": [
            {"line_no": 1, "quantity": "4", "disposition": "restock"}, {"line_no": 1, "quantity": "1", "disposition": "scrap"},
            {"line_no": 2, "quantity": "3", "disposition": "restock"}]}),
        json!({"command": "link_document", "kind": "erp_return_order", "system": "erp", "number": "RO-1"}),
        json!({"command": "record_settlement", "settlement_ref": "STL-1", "lines": [
            {"line_no": 1, "quantity": "5", "amount": money("696.60")}, {"line_no": 2, "quantity": "3", "amount": money("42.09")}],
            "documents": [{"kind": "credit_memo", "system": "erp", "number": "CM-1", "amount": money("738.69")}]}),
        json!({"command": "close"}),
    ];
    let commands = commands
        .into_iter()
        .map(serde_json::from_value::<Command>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((request, commands))
}

async fn measure(
    backend: &'static str,
    store: AnyStore,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let engine = Engine::start(
        store.clone(),
        EngineConfig::default(),
        Arc::new(SystemClock),
        &tracker,
        shutdown.child_token(),
    );
    let (request, commands) = lifecycle()?;
    let work = Arc::new((request, commands));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(args.returns) {
        let (engine, work, next, total) =
            (engine.clone(), work.clone(), next.clone(), args.returns);
        workers.push(tracker.spawn(async move { drive(engine, work, next, total).await }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    let mut events = 0;
    for w in workers {
        let (h, e) = w.await??;
        latency.add(h)?;
        events += e;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;

    // The raw ceiling: the very rows just written, inserted again in plain
    // batches of 1000 into a scratch table, with the same durability.
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        rows.extend(page.into_iter().map(|r| RawEventRow {
            stream_id: r.stream_id,
            version: r.version,
            event: r.event,
        }));
    }
    let raw_started = Instant::now();
    let n_rows = rows.len();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<RawEventRow> = rows.by_ref().take(1000).collect();
        store.raw_insert(batch).await?;
    }
    let raw_events_per_sec = n_rows as f64 / raw_started.elapsed().as_secs_f64();
    Ok(Report {
        backend,
        returns: args.returns,
        events,
        elapsed,
        latency,
        raw_events_per_sec,
    })
}

/// One caller: takes the next return number and drives it to the end.
async fn drive(
    engine: Engine,
    work: Arc<(ReturnRequest, Vec<Command>)>,
    next: Arc<AtomicUsize>,
    total: usize,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut latency = Histogram::<u64>::new(3)?;
    let mut events = 0u64;
    let meta = |idx: usize, step: usize| CommandMeta {
        partner: "bench".into(),
        idempotency: Some(Idempotency {
            key: format!("bench-{idx}-{step}"),
            request_hash: "bench".into(),
        }),
        correlation_id: None,
        causation_id: None,
    };
    loop {
        let idx = next.fetch_add(1, Ordering::Relaxed);
        if idx >= total {
            break;
        }
        let t = Instant::now();
        let created = engine.create(work.0.clone(), meta(idx, 0)).await?;
        latency.record(u64::try_from(t.elapsed().as_micros())?)?;
        events += created.event_count as u64;
        for (step, command) in work.1.iter().enumerate() {
            let t = Instant::now();
            let outcome = engine
                .execute(created.return_id, command.clone(), meta(idx, step + 1))
                .await
                .with_context(|| format!("return {idx}, command {}", command.name()))?;
            latency.record(u64::try_from(t.elapsed().as_micros())?)?;
            events += outcome.event_count as u64;
        }
    }
    Ok((latency, events))
}
