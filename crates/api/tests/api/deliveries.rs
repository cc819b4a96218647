//! The exception queue over HTTP: listing deliveries with the return's stage
//! and owner and who should look at them, one delivery with its audit trail,
//! and the operator's retry (with a correction), skip and cancel.
//!
//! Deliveries are written by the engine (the app writes the outbox for every
//! target) and moved into the exception queue or the dead letters through
//! the store's claim and finish, as a dispatcher would.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use backhaul_domain::action::Target;
use backhaul_store::{ClaimRequest, DeliveryStore, Finish, JsonText};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_outbound};

const DISPATCHER: &str = "test-dispatcher";

/// An approved return whose deliveries are in every state an operator
/// meets: the ERP return order refused with an owner named in the error,
/// the carrier label refused without one, the WMS receipt a dead letter,
/// the portal's status updates pending.
struct Seeded {
    app: TestApp,
    return_id: String,
    erp: i64,
    wms: i64,
    carrier: i64,
    portal: i64,
}

async fn seeded() -> Seeded {
    let app = spawn_app_with_outbound(&Target::ALL).await;
    let return_id = app.approved_return().await;
    let erp = fail_next(
        &app,
        "erp",
        Finish::Exception {
            error: JsonText::from(json!({
                "class": "business",
                "code": "period_closed",
                "message": "posting period 2025-03 is closed",
                "suggested_owner": "support",
            })),
        },
    )
    .await;
    let carrier = fail_next(
        &app,
        "carrier",
        Finish::Exception {
            error: JsonText::from(json!({
                "class": "business",
                "code": "address_invalid",
                "message": "the pickup address has no postcode",
            })),
        },
    )
    .await;
    let wms = fail_next(
        &app,
        "wms",
        Finish::Dead {
            error: JsonText::from(json!({
                "class": "technical",
                "code": "timeout",
                "message": "no answer within 5000 ms",
            })),
        },
    )
    .await;
    let portal = ids_of(&app, &format!("?return_id={return_id}&target=portal")).await[0];
    Seeded {
        app,
        return_id,
        erp,
        wms,
        carrier,
        portal,
    }
}

/// Claims the due delivery to `target` as a dispatcher would and ends the
/// attempt with `finish`; returns its id.
async fn fail_next(app: &TestApp, target: &str, finish: Finish) -> i64 {
    let store = app.engine.store();
    let now = app.engine.now();
    let claimed = store
        .claim_deliveries(&ClaimRequest {
            now,
            owner: DISPATCHER.to_owned(),
            lease_until: now + chrono::Duration::minutes(1),
            quota: HashMap::from([(target.to_owned(), 1)]),
            scan_limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one {target} delivery is due");
    let id = claimed[0].delivery.id;
    assert!(
        store
            .finish_delivery(id, DISPATCHER, finish, now)
            .await
            .unwrap()
    );
    id
}

/// The items of a list query, as the operator sees them.
async fn items(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get("ops", &format!("/v1/deliveries{query}")).await;
    response.assert_ok(200);
    response.body["items"].as_array().unwrap().clone()
}

async fn ids_of(app: &TestApp, query: &str) -> Vec<i64> {
    items(app, query)
        .await
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

fn item_with(items: &[Value], id: i64) -> &Value {
    items
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("no delivery {id} in {items:?}"))
}

async fn operate(
    app: &TestApp,
    id: i64,
    action: &str,
    body: &Value,
) -> crate::helpers::TestResponse {
    app.post("ops", &format!("/v1/deliveries/{id}/{action}"), body)
        .await
}

#[tokio::test]
async fn the_queue_lists_by_state_with_the_returns_stage_and_who_should_look() {
    let s = seeded().await;
    let app = &s.app;
    let summary = app
        .get("admin", &format!("/v1/returns/{}", s.return_id))
        .await;
    summary.assert_ok(200);
    let (stage, owner, rma) = (
        &summary.body["stage"],
        &summary.body["owner"],
        &summary.body["rma_number"],
    );
    assert!(stage.is_string() && owner.is_string() && rma.is_string());

    let exceptions = items(app, "?state=exception").await;
    let mut ids: Vec<i64> = exceptions
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![s.erp, s.carrier];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let erp = item_with(&exceptions, s.erp);
    assert_eq!(erp["return_id"], s.return_id);
    assert_eq!(&erp["rma"], rma);
    assert_eq!(erp["target"], "erp");
    assert_eq!(erp["kind"], "erp_return_order");
    assert_eq!(erp["state"], "exception");
    assert_eq!(erp["attempts"], 1);
    assert_eq!(erp["last_error"]["code"], "period_closed");
    assert!(erp["result"].is_null());
    assert!(
        erp["delivery_key"]
            .as_str()
            .unwrap()
            .contains("erp_return_order")
    );
    assert!(erp["next_attempt_at"].is_string() && erp["created_at"].is_string());
    assert_eq!(&erp["stage"], stage);
    assert_eq!(&erp["owner"], owner);
    // The owner the error names wins over the kind's.
    assert_eq!(erp["suggested_owner"], "support");
    // Without one, a business refusal goes to the kind's owner.
    let carrier = item_with(&exceptions, s.carrier);
    assert_eq!(carrier["suggested_owner"], "logistics");
    assert_eq!(&carrier["stage"], stage);

    let dead = items(app, "?state=dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], s.wms);
    assert_eq!(dead[0]["suggested_owner"], "integration");

    let pending = items(app, "?state=pending").await;
    let portal = item_with(&pending, s.portal);
    assert!(portal["suggested_owner"].is_null(), "{portal}");
    assert!(portal["last_error"].is_null());

    assert_eq!(
        ids_of(app, "?state=exception&target=erp").await,
        vec![s.erp]
    );
    assert!(ids_of(app, "?state=exception&target=wms").await.is_empty());
}

#[tokio::test]
async fn lists_filter_by_return_and_page_with_next_after_id() {
    let s = seeded().await;
    let app = &s.app;
    let other = app.approved_return().await;
    let all = ids_of(app, "?limit=1000").await;
    let mine = ids_of(app, &format!("?return_id={}", s.return_id)).await;
    let theirs = ids_of(app, &format!("?return_id={other}")).await;
    assert!(!mine.is_empty() && !theirs.is_empty());
    assert!(mine.iter().all(|id| !theirs.contains(id)));
    assert_eq!(mine.len() + theirs.len(), all.len());
    assert!(mine.contains(&s.erp) && !theirs.contains(&s.erp));
    assert!(all.windows(2).all(|w| w[0] < w[1]), "id order: {all:?}");

    // Walk the whole list two at a time.
    let mut walked: Vec<i64> = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = app.get("ops", &format!("/v1/deliveries{query}")).await;
        page.assert_ok(200);
        let ids: Vec<i64> = page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= 2);
        walked.extend(&ids);
        match page.body["next_after_id"].as_i64() {
            Some(after) => {
                assert_eq!(Some(&after), ids.last());
                query = format!("?limit=2&after_id={after}");
            }
            None => break,
        }
    }
    assert_eq!(walked, all);
}

#[tokio::test]
async fn show_has_the_payload_and_the_audit_trail() {
    let s = seeded().await;
    let app = &s.app;
    let path = format!("/v1/deliveries/{}", s.erp);
    let shown = app.get("ops", &path).await;
    shown.assert_ok(200);
    assert_eq!(shown.body["id"], s.erp);
    assert_eq!(shown.body["state"], "exception");
    assert_eq!(shown.body["suggested_owner"], "support");
    assert_eq!(shown.body["payload"]["kind"], "erp_return_order");
    assert_eq!(shown.body["payload"]["return_id"], s.return_id);
    assert_eq!(shown.body["payload"]["rma_number"], shown.body["rma"]);
    assert_eq!(shown.body["audit"], json!([]));

    app.clock.advance(chrono::Duration::minutes(3));
    operate(
        app,
        s.erp,
        "skip",
        &json!({ "reason": "  posted by hand in the ERP  " }),
    )
    .await
    .assert_ok(200);
    let shown = app.get("ops", &path).await;
    let audit = shown.body["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "skip");
    assert_eq!(audit[0]["actor"], "ops");
    assert_eq!(audit[0]["reason"], "posted by hand in the ERP");
    assert_eq!(
        audit[0]["detail"],
        json!({ "from": "exception", "to": "skipped" })
    );
    let at = chrono::DateTime::parse_from_rfc3339(audit[0]["at"].as_str().unwrap()).unwrap();
    assert_eq!(at, app.engine.now(), "the engine's clock");
    assert_eq!(shown.body["updated_at"], audit[0]["at"]);
}

#[tokio::test]
async fn a_corrected_retry_is_pending_again_with_the_partner_in_the_audit() {
    let s = seeded().await;
    let app = &s.app;
    let written = app.engine.outbox_written();
    // The approval's commit left a wake-up for the dispatcher; take it, so
    // the next one is the retry's.
    tokio::time::timeout(Duration::from_secs(5), written.notified())
        .await
        .expect("the approval wrote deliveries");

    let path = format!("/v1/deliveries/{}", s.erp);
    let before = app.get("ops", &path).await.body;
    let mut corrected = before["payload"].clone();
    corrected["site"] = json!("DC2");
    assert_ne!(corrected, before["payload"]);

    app.clock.advance(chrono::Duration::minutes(10));
    let retried = operate(
        app,
        s.erp,
        "retry",
        &json!({ "reason": "period reopened; site corrected", "payload": corrected }),
    )
    .await;
    let item = retried.assert_ok(200);
    assert_eq!(item["state"], "pending");
    assert_eq!(item["attempts"], 0);
    assert!(item["suggested_owner"].is_null());
    let due =
        chrono::DateTime::parse_from_rfc3339(item["next_attempt_at"].as_str().unwrap()).unwrap();
    assert_eq!(due, app.engine.now(), "due at once");
    tokio::time::timeout(Duration::from_secs(5), written.notified())
        .await
        .expect("the retry wakes the dispatcher");

    let after = app.get("ops", &path).await.body;
    assert_eq!(after["payload"], corrected);
    let audit = after["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "retry_with_correction");
    assert_eq!(audit[0]["actor"], "ops");
    assert_eq!(audit[0]["reason"], "period reopened; site corrected");
    assert_eq!(audit[0]["detail"]["from"], "exception");
    assert_eq!(audit[0]["detail"]["to"], "pending");
    assert_eq!(audit[0]["detail"]["payload"], corrected);
    assert_eq!(audit[0]["detail"]["previous_payload"], before["payload"]);

    // The dispatcher can take it again, with the corrected payload.
    let now = app.engine.now();
    let claimed = app
        .engine
        .store()
        .claim_deliveries(&ClaimRequest {
            now,
            owner: DISPATCHER.to_owned(),
            lease_until: now + chrono::Duration::minutes(1),
            quota: HashMap::from([("erp".to_owned(), 1)]),
            scan_limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery.id, s.erp);
    assert_eq!(claimed[0].delivery.payload.to_value()["site"], "DC2");
}

#[tokio::test]
async fn a_plain_retry_keeps_the_payload_and_needs_no_idempotency_key() {
    let s = seeded().await;
    let app = &s.app;
    let path = format!("/v1/deliveries/{}", s.wms);
    let before = app.get("ops", &path).await.body;
    let response = app
        .post_raw(
            "ops",
            &format!("{path}/retry"),
            Some("application/json"),
            None,
            json!({ "reason": "WMS is back" }).to_string(),
        )
        .await;
    assert_eq!(response.assert_ok(200)["state"], "pending");
    let after = app.get("ops", &path).await.body;
    assert_eq!(after["payload"], before["payload"]);
    assert_eq!(after["audit"][0]["action"], "retry");
    assert_eq!(after["audit"][0]["detail"].get("payload"), None);

    // Repeating it is refused rather than applied twice.
    let detail = operate(app, s.wms, "retry", &json!({ "reason": "WMS is back" }))
        .await
        .assert_problem(409, "delivery_state_conflict");
    assert_eq!(detail, "cannot retry a delivery that is pending");
    assert_eq!(
        app.get("ops", &path).await.body["audit"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn skip_takes_an_exception_out_of_the_queue() {
    let s = seeded().await;
    let app = &s.app;
    let skipped = operate(
        app,
        s.carrier,
        "skip",
        &json!({ "reason": "label printed at the counter" }),
    )
    .await;
    let item = skipped.assert_ok(200);
    assert_eq!(item["state"], "skipped");
    assert_eq!(item["id"], s.carrier);
    assert!(item["suggested_owner"].is_null());
    assert_eq!(ids_of(app, "?state=exception").await, vec![s.erp]);
    assert_eq!(ids_of(app, "?state=skipped").await, vec![s.carrier]);

    let detail = operate(app, s.carrier, "skip", &json!({ "reason": "again" }))
        .await
        .assert_problem(409, "delivery_state_conflict");
    assert_eq!(detail, "cannot skip a delivery that is skipped");
}

#[tokio::test]
async fn cancel_applies_to_pending_dead_and_exceptions() {
    let s = seeded().await;
    let app = &s.app;
    for id in [s.portal, s.wms, s.erp] {
        let cancelled = operate(
            app,
            id,
            "cancel",
            &json!({ "reason": "the customer withdrew the return" }),
        )
        .await;
        assert_eq!(cancelled.assert_ok(200)["state"], "cancelled");
        let shown = app.get("ops", &format!("/v1/deliveries/{id}")).await.body;
        assert_eq!(shown["audit"][0]["action"], "cancel");
        assert_eq!(shown["audit"][0]["actor"], "ops");
    }
    let detail = operate(app, s.portal, "cancel", &json!({ "reason": "again" }))
        .await
        .assert_problem(409, "delivery_state_conflict");
    assert_eq!(detail, "cannot cancel a delivery that is cancelled");
}

#[tokio::test]
async fn actions_that_do_not_apply_to_the_state_are_conflicts() {
    let s = seeded().await;
    let app = &s.app;
    let detail = operate(app, s.portal, "skip", &json!({ "reason": "not needed" }))
        .await
        .assert_problem(409, "delivery_state_conflict");
    assert_eq!(detail, "cannot skip a delivery that is pending");
    // The state is judged before the correction: a retry of a pending
    // delivery is a conflict even with a broken payload.
    let detail = operate(
        app,
        s.portal,
        "retry",
        &json!({ "reason": "again", "payload": { "foo": 1 } }),
    )
    .await
    .assert_problem(409, "delivery_state_conflict");
    assert_eq!(detail, "cannot retry a delivery that is pending");
    let shown = app
        .get("ops", &format!("/v1/deliveries/{}", s.portal))
        .await;
    assert_eq!(shown.body["state"], "pending");
    assert_eq!(shown.body["audit"], json!([]));
}

#[tokio::test]
async fn unknown_and_malformed_delivery_ids() {
    let s = seeded().await;
    let app = &s.app;
    let missing = s.erp.max(s.wms).max(s.carrier).max(s.portal) + 1000;
    let detail = app
        .get("ops", &format!("/v1/deliveries/{missing}"))
        .await
        .assert_problem(404, "delivery_not_found");
    assert!(detail.contains(&missing.to_string()), "{detail}");
    for action in ["retry", "skip", "cancel"] {
        operate(app, missing, action, &json!({ "reason": "x" }))
            .await
            .assert_problem(404, "delivery_not_found");
    }
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
        app.get("ops", &format!("/v1/deliveries/{bad}"))
            .await
            .assert_problem(400, "invalid_delivery_id");
    }
}

#[tokio::test]
async fn a_correction_must_be_the_same_action_for_the_same_return() {
    let s = seeded().await;
    let app = &s.app;
    let other = app.approved_return().await;
    let path = format!("/v1/deliveries/{}", s.erp);
    let stored = app.get("ops", &path).await.body["payload"].clone();

    let with = |edit: &dyn Fn(&mut Value)| {
        let mut payload = stored.clone();
        edit(&mut payload);
        json!({ "reason": "corrected", "payload": payload })
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&|p| p["kind"] = json!("erp_credit_memo")),
            vec!["erp_credit_memo", "erp_return_order", "kind"],
        ),
        (
            with(&|p| p["return_id"] = json!(other)),
            vec![other.as_str(), "return_id"],
        ),
        (with(&|p| p["foo"] = json!(1)), vec!["unknown field `foo`"]),
        (
            with(&|p| p["lines"][0]["foo"] = json!(1)),
            vec!["lines[0]", "unknown field `foo`"],
        ),
        (
            with(&|p| p["lines"][0]["sku"] = json!(" bad sku")),
            vec!["lines[0].sku"],
        ),
        (
            json!({ "reason": "corrected", "payload": "not an action" }),
            vec!["expected struct Action"],
        ),
    ];
    for (body, expected) in cases {
        let detail = operate(app, s.erp, "retry", &body)
            .await
            .assert_problem(422, "invalid_correction");
        for part in expected {
            assert!(detail.contains(part), "{detail:?} lacks {part:?}");
        }
    }
    let shown = app.get("ops", &path).await.body;
    assert_eq!(shown["state"], "exception", "nothing was applied");
    assert_eq!(shown["payload"], stored);
    assert_eq!(shown["audit"], json!([]));
}

#[tokio::test]
async fn a_reason_is_required_short_and_printable() {
    let s = seeded().await;
    let app = &s.app;
    let long = "x".repeat(501);
    let bodies = [
        json!({}),
        json!({ "reason": "" }),
        json!({ "reason": "   " }),
        json!({ "reason": long }),
        json!({ "reason": "two\nlines" }),
        json!({ "reason": "ok", "extra": true }),
    ];
    for body in &bodies {
        for action in ["retry", "skip", "cancel"] {
            let detail = operate(app, s.erp, action, body)
                .await
                .assert_problem(422, "invalid_body");
            assert!(
                detail.contains("reason") || detail.contains("extra"),
                "{detail}"
            );
        }
    }
    // 500 characters, counted as characters, are fine.
    let longest = "é".repeat(500);
    let skipped = operate(app, s.erp, "skip", &json!({ "reason": longest })).await;
    assert_eq!(skipped.assert_ok(200)["state"], "skipped");
    let shown = app.get("ops", &format!("/v1/deliveries/{}", s.erp)).await;
    assert_eq!(shown.body["audit"][0]["reason"], longest);
}

#[tokio::test]
async fn bad_filters_are_invalid_queries() {
    let s = seeded().await;
    let app = &s.app;
    for query in [
        "?state=stuck",
        "?state=EXCEPTION",
        "?return_id=not-a-uuid",
        "?target=fax",
        "?limit=0",
        "?limit=1001",
        "?limit=many",
        "?after_id=-1",
        "?owner=finance",
    ] {
        app.get("ops", &format!("/v1/deliveries{query}"))
            .await
            .assert_problem(400, "invalid_query");
    }
    assert_eq!(ids_of(app, "?state=exception&limit=1000").await.len(), 2);
}

#[tokio::test]
async fn only_keys_with_the_scope_may_see_or_act() {
    let s = seeded().await;
    let app = &s.app;
    let paths = [
        "/v1/deliveries".to_owned(),
        format!("/v1/deliveries/{}", s.erp),
    ];
    for path in &paths {
        let detail = app
            .get("finance", path)
            .await
            .assert_problem(403, "forbidden");
        assert!(detail.contains("deliveries:manage"), "{detail}");
        app.get("admin", path).await.assert_ok(200);
    }
    for action in ["retry", "skip", "cancel"] {
        app.post(
            "finance",
            &format!("/v1/deliveries/{}/{action}", s.erp),
            &json!({ "reason": "x" }),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    assert_eq!(
        app.get("ops", &format!("/v1/deliveries/{}", s.erp))
            .await
            .body["state"],
        "exception",
        "nothing was applied"
    );
    // The scope does not reach the returns themselves.
    app.get("ops", "/v1/returns")
        .await
        .assert_problem(403, "forbidden");
    // `admin` implies it.
    app.post(
        "admin",
        &format!("/v1/deliveries/{}/skip", s.erp),
        &json!({ "reason": "x" }),
    )
    .await
    .assert_ok(200);
}

#[tokio::test]
async fn no_key_no_queue() {
    let s = seeded().await;
    let app = &s.app;
    let requests = [
        Request::get("/v1/deliveries").body(Body::empty()).unwrap(),
        Request::get(format!("/v1/deliveries/{}", s.erp))
            .body(Body::empty())
            .unwrap(),
        Request::post(format!("/v1/deliveries/{}/skip", s.erp))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"reason":"x"}"#))
            .unwrap(),
    ];
    for request in requests {
        app.send(request)
            .await
            .assert_problem(401, "unauthenticated");
    }
    assert_eq!(ids_of(app, "?state=exception").await.len(), 2);
}

/// Without connected systems the connectors list is empty; it needs the
/// operators' scope.
#[tokio::test]
async fn connectors_list_needs_the_scope_and_is_empty_without_systems() {
    let app = crate::helpers::spawn_app().await;
    let listed = app.get("ops", "/v1/connectors").await;
    assert_eq!(listed.assert_ok(200)["items"], json!([]));
    app.get("portal", "/v1/connectors")
        .await
        .assert_problem(403, "forbidden");
}
