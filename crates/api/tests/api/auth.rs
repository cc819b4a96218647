//! Authentication and scopes.

use axum::body::Body;
use axum::http::{Request, header};
use backhaul_api::{Access, ROUTES, Verb};
use backhaul_store::EventStore;
use serde_json::json;

use crate::helpers::{return_request, spawn_app};

/// A request for `route` with `{id}` filled in and no body to speak of.
fn request_for(path: &str, verb: Verb, authorization: Option<&str>) -> Request<Body> {
    let path = path.replace("{id}", "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    let mut builder = Request::builder()
        .method(verb.as_str())
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "auth-test");
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Body::from("{}")).unwrap()
}

#[tokio::test]
async fn health_is_open() {
    let app = spawn_app().await;
    let response = app
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.assert_ok(200), &json!({ "status": "ok" }));
}

#[tokio::test]
async fn every_other_route_needs_a_valid_key() {
    let app = spawn_app().await;
    let (portal_key_id, portal_token) = (&app.key_ids["portal"], app.token("portal"));
    let unknown_key_id = format!("bh_000000000000_{}", "a".repeat(64));
    let secret_start = portal_token.len() - 64;
    let wrong_secret = format!("{}{}", &portal_token[..secret_start], "0".repeat(64));
    assert!(wrong_secret.contains(portal_key_id.as_str()));
    let bad_authorizations = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer not-a-token".to_owned()),
        Some(format!("Basic {portal_token}")),
        Some(format!("Bearer {unknown_key_id}")),
        Some(format!("Bearer {wrong_secret}")),
    ];
    // The webhook receiver takes no key (its senders sign); `webhooks`
    // tests that it refuses what is not signed.
    let protected: Vec<_> = ROUTES
        .iter()
        .filter(|r| !matches!(r.access, Access::Open | Access::Signature))
        .collect();
    assert!(protected.len() >= 20, "the table lists every route");
    for route in protected {
        for authorization in &bad_authorizations {
            let response = app
                .send(request_for(
                    route.path,
                    route.verb,
                    authorization.as_deref(),
                ))
                .await;
            response.assert_problem(401, "unauthenticated");
            assert_eq!(
                response.headers[header::WWW_AUTHENTICATE],
                "Bearer",
                "{} {}",
                route.verb.as_str(),
                route.path
            );
        }
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let app = spawn_app().await;
    app.get("portal", "/v1/returns").await.assert_ok(200);
    let revoked = app
        .engine
        .store()
        .revoke_api_key(&app.key_ids["portal"], app.engine.now())
        .await
        .unwrap();
    assert!(revoked);
    app.get("portal", "/v1/returns")
        .await
        .assert_problem(401, "unauthenticated");
    // Other partners' keys are unaffected.
    app.get("wms", "/v1/returns").await.assert_ok(200);
}

#[tokio::test]
async fn the_wms_cannot_open_a_return() {
    let app = spawn_app().await;
    let detail = app
        .post("wms", "/v1/returns", &return_request())
        .await
        .assert_problem(403, "forbidden");
    assert!(detail.contains("returns:create"), "{detail}");
    assert_eq!(app.return_count().await, 0, "nothing was stored");
}

#[tokio::test]
async fn scopes_are_checked_before_the_body() {
    let app = spawn_app().await;
    // A malformed body from a partner without the scope is still a 403:
    // the caller learns nothing about how its body would have been judged.
    let request = Request::post("/v1/returns")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.token("carrier")),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    app.send(request).await.assert_problem(403, "forbidden");
    // The carrier may not read returns either.
    app.get("carrier", "/v1/returns")
        .await
        .assert_problem(403, "forbidden");
    // Admin implies every scope.
    app.get("admin", "/v1/backlog").await.assert_ok(200);
}

#[tokio::test]
async fn each_partner_may_only_send_its_own_commands() {
    let app = spawn_app().await;
    let id = app.approved_return().await;
    let receipt = json!({
        "receipt_ref": "RCV-1",
        "lines": [{ "sku": "SKU-RED", "quantity": "1" }]
    });
    let path = format!("/v1/returns/{id}/receipts");
    let detail = app
        .post("carrier", &path, &receipt)
        .await
        .assert_problem(403, "forbidden");
    assert!(detail.contains("warehouse:write"), "{detail}");
    app.post(
        "finance",
        &format!("/v1/returns/{id}/cancel"),
        &json!({ "reason": "x" }),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(app.version(&id).await, 2, "nothing was recorded");
    app.post("wms", &path, &receipt).await.assert_ok(200);
}
