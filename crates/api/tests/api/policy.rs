//! Master data, crosswalks and the eligibility policy over HTTP, with the
//! sample policy and sample master data that ship with the project: load
//! the CSVs, ask whether a return is eligible, open returns that the policy
//! approves or rejects with its explanation, and refuse bad input whole.

use backhaul_engine::{EngineConfig, RulesHandle};
use backhaul_master::MasterData;
use backhaul_policy::Policy;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_engine, usd};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples");

async fn governed_app() -> TestApp {
    let text = std::fs::read_to_string(format!("{SAMPLES}/policy.toml")).unwrap();
    let policy = Policy::load("policy.toml", &text).unwrap();
    let app = spawn_app_with_engine(EngineConfig {
        rules: RulesHandle::new(Some(policy), MasterData::empty()),
        ..EngineConfig::default()
    })
    .await;
    // Ten days after the sample orders shipped.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 10, 10, 0, 0).unwrap());
    app
}

async fn load_csv(app: &TestApp, stem: &str, dry_run: bool) -> crate::helpers::TestResponse {
    let body = std::fs::read(format!("{SAMPLES}/master/{stem}.csv")).unwrap();
    let path = format!("/v1/master/{stem}?dry_run={dry_run}");
    app.post_raw("admin", &path, Some("text/csv"), None, body)
        .await
}

async fn load_samples(app: &TestApp) {
    for stem in [
        "vendors",
        "skus",
        "customers",
        "sites",
        "orders",
        "crosswalks",
    ] {
        load_csv(app, stem, false).await.assert_ok(200);
    }
}

/// A portal request for gloves of sample order SO-100001 (6 shipped, 2
/// already returned before the hub).
fn gloves(quantity: &str, uom: &str, reason: &str) -> Value {
    json!({
        "channel": "portal",
        "customer": "C0017",
        "order_ref": "SO-100001",
        "currency": "USD",
        "site": "DC1",
        "lines": [{
            "line_no": 1,
            "sku": "GLOVE-L",
            "quantity": quantity,
            "uom": uom,
            "reason_code": reason,
            "requested_outcome": "refund",
            "unit_price": usd("12.99"),
            "unit_tax": usd("1.03"),
            "order_line_ref": "SO-100001-1"
        }]
    })
}

fn rule<'a>(assessment: &'a Value, id: &str) -> &'a Value {
    assessment["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == id)
        .unwrap_or_else(|| panic!("rule {id} not in {assessment}"))
}

#[tokio::test]
async fn sample_master_data_loads_and_a_dry_run_stores_nothing() {
    let app = governed_app().await;
    let dry = load_csv(&app, "vendors", true).await;
    let body = dry.assert_ok(200);
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["revision"], 0);
    assert_eq!(body["changes"]["vendor"]["created"], 6);
    let status = app.get("admin", "/v1/master").await;
    assert_eq!(status.assert_ok(200)["counts"]["vendor"], 0);

    load_samples(&app).await;
    let status = app.get("admin", "/v1/master").await;
    let body = status.assert_ok(200);
    assert_eq!(body["counts"]["sku"], 13);
    assert_eq!(body["counts"]["order"], 10);
    let revision = body["revision"].as_i64().unwrap();
    assert!(revision > 0);
    // Loading the same file again changes nothing.
    let again = load_csv(&app, "skus", false).await;
    assert_eq!(again.assert_ok(200)["changes"]["sku"]["unchanged"], 13);
    assert_eq!(again.body["revision"], revision);
}

#[tokio::test]
async fn a_bad_csv_is_refused_whole_with_every_problem_located() {
    let app = governed_app().await;
    load_samples(&app).await;
    let before = app.get("admin", "/v1/master").await.body;
    // Line 2 is good, line 3 has a bad unit of measure and line 4 a bad
    // boolean: nothing of the file is stored.
    let csv = "sku,description,category,control,returnable,vendor,base_uom,conversions\n\
               NEW-1,New item,apparel,none,true,,EA,\n\
               NEW-2,Bad unit,apparel,none,true,,ea,\n\
               NEW-3,Bad flag,apparel,none,perhaps,,EA,\n";
    let r = app
        .post_raw("admin", "/v1/master/skus", Some("text/csv"), None, csv)
        .await;
    r.assert_problem(422, "invalid_master_data");
    let problems = r.body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0]["line"], 3);
    assert_eq!(problems[0]["column"], "base_uom");
    assert_eq!(problems[1]["line"], 4);
    assert_eq!(problems[1]["column"], "returnable");
    assert_eq!(app.get("admin", "/v1/master").await.body, before);

    // A missing column is named too.
    let r = app
        .post_raw(
            "admin",
            "/v1/master/skus",
            Some("text/csv"),
            None,
            "sku,description\nX,Y\n",
        )
        .await;
    let detail = r.assert_problem(422, "invalid_master_data");
    assert!(detail.contains("category"), "{detail}");
    assert_eq!(app.get("admin", "/v1/master").await.body, before);
}

#[tokio::test]
async fn eligibility_is_explained_rule_by_rule_without_storing_anything() {
    let app = governed_app().await;
    load_samples(&app).await;

    // 3 of the 4 still returnable: eligible.
    let r = app
        .post("admin", "/v1/eligibility", &gloves("3", "EA", "SIZE_FIT"))
        .await;
    let a = r.assert_ok(200).clone();
    assert_eq!(a["verdict"], "approve", "{a}");
    assert_eq!(a["policy_version"], "2026-spring.1");
    assert_eq!(rule(&a, "quantity.available")["passed"], true);
    assert!(
        rule(&a, "window.standard")["message"]
            .as_str()
            .unwrap()
            .contains("day 7"),
        "{a}"
    );

    // 5 when 6 were shipped and 2 already returned: not eligible.
    let r = app
        .post("admin", "/v1/eligibility", &gloves("5", "EA", "SIZE_FIT"))
        .await;
    let a = r.assert_ok(200).clone();
    assert_eq!(a["verdict"], "reject");
    assert_eq!(rule(&a, "quantity.available")["passed"], false);
    assert_eq!(a["lines"][0]["eligible_quantity"], "0");

    // One case is twelve pairs: far more than remain.
    let r = app
        .post("admin", "/v1/eligibility", &gloves("1", "CS", "SIZE_FIT"))
        .await;
    assert_eq!(r.assert_ok(200)["verdict"], "reject");

    // A unit the SKU does not have is a clear error, not a guess.
    let r = app
        .post("admin", "/v1/eligibility", &gloves("1", "PL", "SIZE_FIT"))
        .await;
    let detail = r.assert_problem(422, "unknown_uom");
    assert!(
        detail.contains("GLOVE-L") && detail.contains("PL"),
        "{detail}"
    );

    let list = app.get("admin", "/v1/returns").await;
    assert_eq!(list.assert_ok(200)["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn returns_are_decided_by_the_policy_in_the_systems_codes() {
    let app = governed_app().await;
    load_samples(&app).await;

    // The portal says TOO_SMALL; the hub records the canonical SIZE_FIT.
    let created = app
        .post("portal", "/v1/returns", &gloves("3", "EA", "TOO_SMALL"))
        .await;
    let body = created.assert_ok(201);
    assert_eq!(
        body["events"],
        json!(["ReturnRequested", "EligibilityAssessed", "ReturnApproved"])
    );
    let ret = &body["return"];
    assert_eq!(ret["status"], "approved");
    assert_eq!(ret["lines"][0]["line"]["reason_code"], "SIZE_FIT");
    assert_eq!(ret["eligibility"]["verdict"], "approve");

    // The hub's own return now holds 3 of the 4: one more is too many.
    let second = app
        .post("portal", "/v1/returns", &gloves("2", "EA", "TOO_SMALL"))
        .await;
    let body = second.assert_ok(201);
    assert_eq!(body["return"]["status"], "rejected");
    let reason = body["return"]["reason"].as_str().unwrap();
    assert!(reason.contains("quantity.available"), "{reason}");

    // A code the portal's crosswalk does not map is refused, naming both.
    let r = app
        .post("portal", "/v1/returns", &gloves("1", "EA", "BECAUSE"))
        .await;
    let detail = r.assert_problem(422, "unmapped_code");
    assert!(
        detail.contains("portal") && detail.contains("BECAUSE"),
        "{detail}"
    );
}
