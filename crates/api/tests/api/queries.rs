//! Reads: list filters, the timeline and the backlog.

use axum::body::Body;
use axum::http::{Request, header};
use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{TestApp, new_key, return_request, spawn_app};

fn request_for(customer: &str, order_ref: &str, sku: &str) -> Value {
    let mut body = return_request();
    body["customer"] = json!(customer);
    body["order_ref"] = json!(order_ref);
    body["lines"][0]["sku"] = json!(sku);
    body
}

/// Ids of the returns a list query finds.
async fn found(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get("portal", &format!("/v1/returns{query}")).await;
    response.assert_ok(200);
    response.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["return_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_filter_by_status_customer_order_sku_and_age() {
    let app = spawn_app().await;
    let first = app
        .create_return(&request_for("CUST-A", "SO-1", "SKU-RED"))
        .await;
    app.clock.advance(Duration::hours(5));
    let second = app
        .create_return(&request_for("CUST-B", "SO-2", "SKU-GREEN"))
        .await;
    let third = app
        .create_return(&request_for("CUST-A", "SO-3", "SKU-PINK"))
        .await;
    app.post(
        "support",
        &format!("/v1/returns/{second}/approve"),
        &json!({}),
    )
    .await
    .assert_ok(200);

    let mut all = found(&app, "").await;
    all.sort();
    let mut expected = vec![first.clone(), second.clone(), third.clone()];
    expected.sort();
    assert_eq!(all, expected);

    assert_eq!(found(&app, "?status=approved").await, vec![second.clone()]);
    assert_eq!(found(&app, "?status=requested").await.len(), 2);
    assert_eq!(
        found(&app, "?stage=awaiting_label").await,
        vec![second.clone()]
    );
    assert_eq!(found(&app, "?owner=carrier").await, vec![second.clone()]);
    assert_eq!(found(&app, "?owner=hub").await.len(), 2);
    let mut cust_a = found(&app, "?customer=CUST-A").await;
    cust_a.sort();
    let mut expected = vec![first.clone(), third.clone()];
    expected.sort();
    assert_eq!(cust_a, expected);
    assert_eq!(found(&app, "?order_ref=SO-3").await, vec![third.clone()]);
    assert_eq!(found(&app, "?sku=SKU-RED").await, vec![first.clone()]);
    // Line 2 (SKU-BLUE) is on every return.
    assert_eq!(found(&app, "?sku=SKU-BLUE").await.len(), 3);
    assert_eq!(
        found(&app, "?customer=CUST-A&status=requested").await.len(),
        2
    );
    assert_eq!(found(&app, "?open=true").await.len(), 3);
    assert!(found(&app, "?open=false").await.is_empty());
    assert_eq!(found(&app, "?min_age_hours=4").await, vec![first.clone()]);
    assert_eq!(found(&app, "?max_age_hours=4").await.len(), 2);

    let page = app.get("portal", "/v1/returns?limit=2&offset=1").await;
    page.assert_ok(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        (&page.body["limit"], &page.body["offset"]),
        (&json!(2), &json!(1))
    );
}

#[tokio::test]
async fn bad_queries_are_a_400() {
    let app = spawn_app().await;
    for query in [
        "?status=lost",
        "?colour=red",
        "?limit=0",
        "?limit=501",
        "?limit=ten",
        "?sku=BAD%20SKU",
        "?open=maybe",
        "?min_age_hours=5&max_age_hours=1",
    ] {
        let detail = app
            .get("portal", &format!("/v1/returns{query}"))
            .await
            .assert_problem(400, "invalid_query");
        assert!(!detail.is_empty(), "{query}");
    }
}

#[tokio::test]
async fn the_timeline_lists_events_in_order_with_their_envelope() {
    let app = spawn_app().await;
    let correlation = "0195a1b2-0000-7000-8000-00000000c0de";
    let request = Request::post("/v1/returns")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.token("portal")),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", new_key())
        .header("x-correlation-id", correlation)
        .body(Body::from(return_request().to_string()))
        .unwrap();
    let created = app.send(request).await;
    created.assert_ok(201);
    let id = created.body["return"]["return_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post("support", &format!("/v1/returns/{id}/approve"), &json!({}))
        .await
        .assert_ok(200);
    app.clock.advance(Duration::minutes(30));
    app.post(
        "carrier",
        &format!("/v1/returns/{id}/label"),
        &json!({ "carrier": "DHL", "tracking_number": "JD01", "label_ref": "L-9" }),
    )
    .await
    .assert_ok(200);

    let timeline = app
        .get("support", &format!("/v1/returns/{id}/events"))
        .await;
    timeline.assert_ok(200);
    assert_eq!(timeline.body["return_id"], id);
    let events = timeline.body["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ReturnRequested", "ReturnApproved", "LabelIssued"]);
    let mut last_position = 0;
    let mut event_ids = Vec::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["version"], i + 1);
        let position = event["position"].as_i64().unwrap();
        assert!(position > last_position, "positions increase");
        last_position = position;
        assert_eq!(event["correlation_id"], correlation, "one correlation id");
        assert!(
            event["causation_id"]
                .as_str()
                .is_some_and(|c| c.len() == 36)
        );
        assert_eq!(event["schema_version"], 1);
        assert_eq!(event["payload"]["type"], event["event_type"]);
        event_ids.push(event["event_id"].as_str().unwrap().to_owned());
    }
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 3, "event ids are distinct");
    assert_eq!(events[0]["recorded_at"], "2025-03-03T09:00:00Z");
    assert_eq!(events[2]["recorded_at"], "2025-03-03T09:30:00Z");
    assert_eq!(events[2]["payload"]["label"]["tracking_number"], "JD01");
}

#[tokio::test]
async fn the_backlog_counts_open_returns_per_stage() {
    let app = spawn_app().await;
    app.create_return(&return_request()).await;
    app.clock.advance(Duration::hours(1));
    app.create_return(&return_request()).await;
    app.approved_return().await;
    let backlog = app.get("finance", "/v1/backlog").await;
    backlog.assert_ok(200);
    let mut rows: Vec<(String, String, String, i64, String)> = backlog.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["stage"].as_str().unwrap().to_owned(),
                r["owner"].as_str().unwrap().to_owned(),
                r["count"].as_i64().unwrap(),
                r["oldest_created_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (
                "approved".into(),
                "awaiting_label".into(),
                "carrier".into(),
                1,
                "2025-03-03T10:00:00Z".into()
            ),
            (
                "requested".into(),
                "awaiting_decision".into(),
                "hub".into(),
                2,
                "2025-03-03T09:00:00Z".into()
            ),
        ]
    );
}
