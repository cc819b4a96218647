//! Crash safety, shown by force: `backhaul serve` runs as a child process
//! against four simulators that run as processes of their own (ERP, WMS,
//! carrier, portal, each with durable state and injected faults), while a
//! driver pushes returns through their whole lifecycle over HTTP as the
//! partners would, sending duplicates and out-of-order carrier scans. The
//! hub is killed with SIGKILL after a random number of driver requests, many
//! times, and restarted on the same database. At the end:
//! - every return is closed, with every unit received, dispositioned and
//!   settled;
//! - every delivery is done, and every posting exists exactly once in the
//!   simulated systems (in the ERP one return order per return, an
//!   inventory adjustment and a credit memo per parcel, and the supplier
//!   claim or repair order its second line's disposition calls for; one
//!   expected receipt; one label);
//! - the ERP's ledger (credits per currency, inventory per SKU) equals what
//!   the hub recorded, to the unit and the cent;
//! - the portal never saw a status older than one it already had.
//!
//! Runs on SQLite and on PostgreSQL. The figures it prints (returns, kills,
//! duplicates injected, postings checked) go into the closing note.
//!
//! The driver waits for the hub by polling its HTTP API with a deadline:
//! the hub is another process, so there is nothing to await but its answers.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const RETURNS: usize = 48;
const DEADLINE: Duration = Duration::from_secs(60);

struct Sims {
    children: Vec<Child>,
    urls: BTreeMap<&'static str, String>,
}

impl Drop for Sims {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bin() -> Command {
    Command::cargo_bin("backhaul").unwrap()
}

/// Starts one simulator process on a free port; returns it and its URL.
fn spawn_sim(kind: &str, dir: &Path, config: &str) -> (Child, String) {
    let config_path = dir.join(format!("{kind}.toml"));
    std::fs::write(&config_path, config).unwrap();
    let mut child = bin()
        .args(["sim", kind, "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join(format!("{kind}.db")))
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .last()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("{kind} simulator did not say where it listens: {line:?}"))
        .to_owned();
    (child, url)
}

fn start_sims(dir: &Path) -> Sims {
    // The ERP throttles, fails transiently and loses answers after storing
    // (the case idempotency keys exist for); the others fail transiently.
    let erp = "seed = 11\n[faults]\nrate_limit_per_sec = 40\nburst = 5\ntransient_error_rate = 0.1\nlost_response_rate = 0.1\n";
    let flaky = "seed = 12\n[faults]\ntransient_error_rate = 0.1\nlost_response_rate = 0.05\n";
    let mut children = Vec::new();
    let mut urls = BTreeMap::new();
    for (kind, config) in [
        ("erp", erp),
        ("wms", flaky),
        ("carrier", flaky),
        ("portal", flaky),
    ] {
        let (child, url) = spawn_sim(kind, dir, config);
        children.push(child);
        urls.insert(kind, url);
    }
    Sims { children, urls }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hub_config(dir: &Path, store_url: &str, port: u16, sims: &Sims) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[store]\nurl = \"{store_url}\"\nsqlite_sync = \"normal\"\n\n\
         [dispatcher]\ninstance = \"crash-hub\"\nlease_secs = 5\npoll_interval_ms = 20\n\n[log]\nfilter = \"error\"\n"
    );
    for (target, kind) in [
        ("erp", "sim-erp"),
        ("wms", "sim-wms"),
        ("carrier", "sim-carrier"),
        ("portal", "sim-portal"),
    ] {
        text.push_str(&format!(
            "\n[connectors.{target}]\nkind = \"{kind}\"\nurl = \"{}\"\n[connectors.{target}.delivery]\n\
             rate_per_sec = 500.0\nburst = 100\nconcurrency = 16\nmax_attempts = 1000\n\
             backoff_initial_ms = 10\nbackoff_max_ms = 200\ntimeout_ms = 5000\nbreaker_threshold = 1000\n",
            sims.urls[target]
        ));
    }
    let path = dir.join("hub.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn create_key(config: &Path) -> String {
    let out = bin()
        .args([
            "keys",
            "create",
            "--partner",
            "driver",
            "--scope",
            "admin",
            "--config",
        ])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("token:").map(|t| t.trim().to_owned()))
        .unwrap()
}

struct Hub {
    config: PathBuf,
    child: Option<Child>,
    base: String,
    kills: usize,
}

impl Hub {
    fn start(&mut self) {
        let child = bin()
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: no shutdown code runs.
            child.kill().unwrap();
            child.wait().unwrap();
            self.kills += 1;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let status = child.wait().unwrap();
            assert!(status.success(), "graceful stop failed: {status}");
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The driver: every request retried until the hub answers (it may be
/// down), with the same idempotency key, so a request the dead hub already
/// committed is answered from its record.
struct Driver {
    http: reqwest::Client,
    token: String,
    rng: StdRng,
    /// Requests until the next kill.
    until_kill: usize,
    duplicates: usize,
    requests: usize,
}

impl Driver {
    async fn send(
        &mut self,
        hub: &mut Hub,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < DEADLINE, "no answer for {path}");
            if self.until_kill == 0 {
                hub.kill();
                hub.start();
                self.until_kill = self.rng.gen_range(5..40);
            }
            self.until_kill -= 1;
            self.requests += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", hub.base))
                .bearer_auth(&self.token);
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            if let Some(body) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            if let Ok(resp) = req.send().await {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                // 503: shutting down or contended; anything else is an
                // answer the caller checks.
                if status != 503 {
                    return (status, body);
                }
            }
            // The hub is (re)starting: give it a moment before the retry.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn command(
        &mut self,
        hub: &mut Hub,
        id: &str,
        action: &str,
        key: &str,
        body: Value,
    ) -> Value {
        let (status, answer) = self
            .send(
                hub,
                reqwest::Method::POST,
                &format!("/v1/returns/{id}/{action}"),
                Some(key),
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{action} {key}: {answer}");
        answer
    }

    async fn get(&mut self, hub: &mut Hub, path: &str) -> Value {
        let (status, body) = self.send(hub, reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Polls the return until `done` holds.
    async fn wait_for(
        &mut self,
        hub: &mut Hub,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let r = self.get(hub, &format!("/v1/returns/{id}")).await;
            if done(&r) {
                return r;
            }
            if started.elapsed() > DEADLINE {
                let deliveries = self
                    .get(hub, &format!("/v1/deliveries?return_id={id}"))
                    .await;
                panic!("return {id} never reached {what}: {r}\ndeliveries: {deliveries:#}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn request_body(i: usize) -> Value {
    let money =
        |a: &str| json!({"amount": a, "currency": if i.is_multiple_of(3) { "EUR" } else { "USD" }});
    json!({
        "channel": "portal", "customer": format!("C{}", i % 5), "order_ref": format!("SO-{i}"),
        "currency": if i.is_multiple_of(3) { "EUR" } else { "USD" }, "site": "DC1",
        "lines": [
            {"line_no": 1, "sku": format!("SKU-{}", i % 4), "quantity": "2", "uom": "EA", "reason_code": "DAMAGED",
             "requested_outcome": "refund", "unit_price": money("19.99"), "unit_tax": money("3.80")},
            {"line_no": 2, "sku": "SKU-X", "quantity": "1", "uom": "EA", "reason_code": "WRONG_ITEM",
             "requested_outcome": "store_credit", "unit_price": money("5.25"), "unit_tax": money("0.00")}
        ]
    })
}

/// One return from request to close, as portal, carrier and WMS send it.
async fn drive_one(d: &mut Driver, hub: &mut Hub, i: usize) -> String {
    let k = |step: &str| format!("crash-{i}-{step}");
    let (status, created) = d
        .send(
            hub,
            reqwest::Method::POST,
            "/v1/returns",
            Some(&k("create")),
            Some(&request_body(i)),
        )
        .await;
    assert!(status == 201 || status == 200, "create {i}: {created}");
    let id = created["return"]["return_id"].as_str().unwrap().to_owned();
    d.command(hub, &id, "approve", &k("approve"), json!({}))
        .await;
    // The label comes from the carrier connector.
    d.wait_for(hub, &id, "a label", |r| !r["label"].is_null())
        .await;

    // Scans: delivered before in_transit, each sent twice.
    let delivered = json!({"milestone": "delivered", "occurred_at": "2026-11-10T10:00:00Z"});
    let in_transit = json!({"milestone": "in_transit", "occurred_at": "2026-11-09T10:00:00Z"});
    for (step, scan) in [("delivered", &delivered), ("in-transit", &in_transit)] {
        for _ in 0..2 {
            d.command(hub, &id, "milestones", &k(step), scan.clone())
                .await;
        }
        d.duplicates += 1;
    }
    // Receipts: odd returns arrive in two parcels; the WMS replays one.
    let receipts: Vec<Value> = if i % 2 == 1 {
        vec![
            json!({"receipt_ref": format!("RCV-{i}-1"), "lines": [{"line_no": 1, "sku": format!("SKU-{}", i % 4), "quantity": "1"}]}),
            json!({"receipt_ref": format!("RCV-{i}-2"), "lines": [{"line_no": 1, "sku": format!("SKU-{}", i % 4), "quantity": "1"}, {"line_no": 2, "sku": "SKU-X", "quantity": "1"}]}),
        ]
    } else {
        vec![
            json!({"receipt_ref": format!("RCV-{i}-1"), "lines": [{"line_no": 1, "sku": format!("SKU-{}", i % 4), "quantity": "2"}, {"line_no": 2, "sku": "SKU-X", "quantity": "1"}]}),
        ]
    };
    for (n, receipt) in receipts.iter().enumerate() {
        let key = k(&format!("receipt-{n}"));
        let after = d.command(hub, &id, "receipts", &key, receipt.clone()).await;
        d.command(hub, &id, "receipts", &key, receipt.clone()).await;
        d.duplicates += 1;
        let mut inspections = Vec::new();
        let mut dispositions = Vec::new();
        for line in after["return"]["lines"].as_array().unwrap() {
            let line_no = line["line"]["line_no"].as_u64().unwrap();
            let todo: Decimal = line["received"]
                .as_str()
                .unwrap()
                .parse::<Decimal>()
                .unwrap()
                - line["inspected"]
                    .as_str()
                    .unwrap()
                    .parse::<Decimal>()
                    .unwrap();
            if todo.is_zero() {
                continue;
            }
            inspections.push(
                json!({"line_no": line_no, "quantity": todo.to_string(), "condition": "GOOD"}),
            );
            // The second line's unit goes to the vendor, to repair or to
            // scrap, so the ERP's claims and repair orders are posted
            // under the same kills as everything else.
            let mut disposition = json!({"line_no": line_no, "quantity": todo.to_string(),
                                         "disposition": "restock"});
            if line_no == 2 {
                match i % 3 {
                    0 => disposition["disposition"] = json!("scrap"),
                    1 => {
                        disposition["disposition"] = json!("vendor_return");
                        disposition["vendor"] = json!("V-CRASH");
                    }
                    _ => disposition["disposition"] = json!("refurbish"),
                }
            }
            dispositions.push(disposition);
        }
        d.command(
            hub,
            &id,
            "inspections",
            &k(&format!("inspect-{n}")),
            json!({"inspections": inspections}),
        )
        .await;
        d.command(
            hub,
            &id,
            "dispositions",
            &k(&format!("dispose-{n}")),
            json!({"dispositions": dispositions}),
        )
        .await;
    }
    // The credit memo and the settlement come from the ERP connector.
    d.wait_for(hub, &id, "settlement", |r| {
        r["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["settled"] == l["line"]["quantity"])
    })
    .await;
    d.command(hub, &id, "close", &k("close"), json!({})).await;
    id
}

/// A client builder as the hub makes them (TLS with the ring provider
/// included; reqwest has no default provider in this build).
fn http_client() -> reqwest::ClientBuilder {
    backhaul_connectors::ClientTls::build(&backhaul_connectors::TlsConfig::default())
        .unwrap()
        .http_client()
}

async fn sim_get(http: &reqwest::Client, url: &str) -> Value {
    let bytes = http.get(url).send().await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn crash_run(store_url: &str, dir: &Path, label: &str) {
    let sims = start_sims(dir);
    let port = free_port();
    let config = hub_config(dir, store_url, port, &sims);
    let token = create_key(&config);
    let mut hub = Hub {
        config,
        child: None,
        base: format!("http://127.0.0.1:{port}"),
        kills: 0,
    };
    hub.start();
    let mut d = Driver {
        // Every request is bounded: a hub killed mid-answer must show up as
        // an error the driver retries, never as a request that waits forever.
        http: http_client()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        token,
        rng: StdRng::seed_from_u64(2026),
        until_kill: 10,
        duplicates: 0,
        requests: 0,
    };
    let mut ids = Vec::new();
    // A few returns at a time, interleaved, so kills land in every stage.
    for chunk in (0..RETURNS).collect::<Vec<_>>().chunks(4) {
        for &i in chunk {
            ids.push(drive_one(&mut d, &mut hub, i).await);
        }
    }

    // Settle: wait until the outbox is empty, then stop the hub cleanly.
    let started = Instant::now();
    loop {
        let pending = d
            .get(&mut hub, "/v1/deliveries?state=pending&limit=1000")
            .await;
        let open = pending["items"].as_array().map_or(0, Vec::len);
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "deliveries never drained: {pending}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for state in ["dead", "exception"] {
        let stuck = d
            .get(&mut hub, &format!("/v1/deliveries?state={state}"))
            .await;
        assert_eq!(
            stuck["items"].as_array().map_or(0, Vec::len),
            0,
            "{state}: {stuck}"
        );
    }

    // The list read model agrees with the log after every kill: each return
    // is listed, and listed as closed (on SQLite, rows a kill lost in memory
    // are folded again from the log when the hub restarts).
    let listed = d.get(&mut hub, "/v1/returns?status=closed&limit=500").await;
    let listed: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["return_id"].as_str())
        .collect();
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "{id} not listed as closed");
    }

    // What the hub recorded.
    let mut hub_credits: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut hub_restocked: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut hub_documents: Vec<(String, String, String)> = Vec::new();
    for id in &ids {
        let r = d.get(&mut hub, &format!("/v1/returns/{id}")).await;
        assert_eq!(r["status"], "closed", "{r}");
        let currency = r["currency"].as_str().unwrap().to_owned();
        for line in r["lines"].as_array().unwrap() {
            assert_eq!(line["received"], line["line"]["quantity"], "{r}");
            assert_eq!(line["settled"], line["line"]["quantity"], "{r}");
            *hub_credits.entry(currency.clone()).or_default() += line["credited"]
                .as_str()
                .unwrap()
                .parse::<Decimal>()
                .unwrap();
            // The ERP puts restocked and refurbished units back on hand.
            for disposition in ["restock", "refurbish"] {
                if let Some(q) = line["dispositioned"].get(disposition) {
                    *hub_restocked
                        .entry(line["line"]["sku"].as_str().unwrap().to_owned())
                        .or_default() += q.as_str().unwrap().parse::<Decimal>().unwrap();
                }
            }
        }
        let rma = r["rma_number"].as_str().unwrap();
        for doc in r["documents"].as_array().unwrap() {
            let kind = match doc["kind"].as_str().unwrap() {
                "erp_return_order" => "return_order",
                other => other,
            };
            hub_documents.push((
                rma.to_owned(),
                kind.to_owned(),
                doc["number"].as_str().unwrap().to_owned(),
            ));
        }
        // One memo per parcel whose units all got their disposition.
        let memos = r["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "credit_memo")
            .count();
        assert!(memos == 1 || memos == 2, "{r}");
    }
    let connectors = d.get(&mut hub, "/v1/connectors").await;
    let items = connectors["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{connectors}");
    for c in items {
        assert_eq!(c["health"], "ok", "{c}");
        assert_eq!(c["pending"], 0, "{c}");
        assert!(
            c["done"].as_i64().unwrap() >= i64::try_from(RETURNS).unwrap(),
            "{c}"
        );
    }
    hub.stop();

    // What the systems received.
    let http = http_client().build().unwrap();
    let erp = &sims.urls["erp"];
    let postings = sim_get(&http, &format!("{erp}/erp/postings")).await;
    let postings = postings.as_array().unwrap();
    // Exactly once: every ERP posting is a document on its return, and
    // every document on a return is one ERP posting.
    let mut erp_documents: Vec<(String, String, String)> = postings
        .iter()
        .map(|p| {
            (
                p["rma"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
                p["number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    erp_documents.sort();
    hub_documents.sort();
    assert_eq!(
        erp_documents, hub_documents,
        "ERP postings and the returns' documents match one to one"
    );
    let return_orders = erp_documents
        .iter()
        .filter(|d| d.1 == "return_order")
        .count();
    assert_eq!(return_orders, RETURNS, "one return order per return");
    // Line 2 arrives in one parcel: a third of the returns claim it from
    // the vendor, a third repair it.
    for (kind, remainder) in [("supplier_claim", 1), ("repair_order", 2)] {
        let found = erp_documents.iter().filter(|d| d.1 == kind).count();
        let expected = (0..RETURNS).filter(|i| i % 3 == remainder).count();
        assert_eq!(found, expected, "one {kind} per return that calls for one");
    }
    let ledger = sim_get(&http, &format!("{erp}/erp/ledger")).await;
    let erp_credits: BTreeMap<String, Decimal> = ledger["credits"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, a)| (c.clone(), a.as_str().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(erp_credits, hub_credits, "credits reconcile to the cent");
    let erp_inventory: BTreeMap<String, Decimal> = ledger["inventory"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(s, q)| (s.clone(), q.as_str().unwrap().parse().unwrap()))
        .filter(|(_, q): &(String, Decimal)| !q.is_zero())
        .collect();
    assert_eq!(
        erp_inventory, hub_restocked,
        "inventory reconciles to the unit"
    );

    let wms = sim_get(
        &http,
        &format!("{}/wms/expected-receipts", sims.urls["wms"]),
    )
    .await;
    assert_eq!(
        wms.as_array().unwrap().len(),
        RETURNS,
        "one expected receipt per return"
    );
    let labels = sim_get(&http, &format!("{}/carrier/labels", sims.urls["carrier"])).await;
    assert_eq!(
        labels.as_array().unwrap().len(),
        RETURNS,
        "one label per return"
    );
    let portal_stats = sim_get(&http, &format!("{}/admin/stats", sims.urls["portal"])).await;
    assert_eq!(portal_stats["out_of_order"], 0, "{portal_stats}");

    let erp_stats = sim_get(&http, &format!("{erp}/admin/stats")).await;
    println!(
        "crash test ({label}): {RETURNS} returns, {} kills, {} requests, {} duplicate inbound messages, \
         {} ERP postings checked (each once), ERP saw {} replays, {} lost answers, {} rate-limited, {} transient errors",
        hub.kills,
        d.requests,
        d.duplicates,
        postings.len(),
        erp_stats["replayed"],
        erp_stats["lost_response"],
        erp_stats["rate_limited"],
        erp_stats["unavailable"],
    );
    assert!(hub.kills >= 10, "only {} kills", hub.kills);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_posts_nothing_twice_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    crash_run(&url, dir.path(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_posts_nothing_twice_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let admin = std::env::var("BACKHAUL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = backhaul_store::PgStore::fresh_database(&admin, "backhaul_crash_test")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for this test: {e}"));
    crash_run(&url, dir.path(), "postgres").await;
}
