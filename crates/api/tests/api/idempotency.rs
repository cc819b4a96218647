//! Idempotency keys: replays answer like the original, a reused key with a
//! different request is refused, and keys belong to one partner.

use serde_json::json;

use crate::helpers::{new_key, return_request, spawn_app};

#[tokio::test]
async fn a_retried_create_gets_the_same_answer_and_stores_nothing_new() {
    let app = spawn_app().await;
    let key = new_key();
    let first = app
        .post_with_key("portal", "/v1/returns", &key, &return_request())
        .await;
    first.assert_ok(201);
    assert!(first.headers.get("idempotent-replayed").is_none());

    let again = app
        .post_with_key("portal", "/v1/returns", &key, &return_request())
        .await;
    again.assert_ok(201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(app.return_count().await, 1);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    let key = new_key();
    app.post_with_key("portal", "/v1/returns", &key, &return_request())
        .await
        .assert_ok(201);
    let mut other = return_request();
    other["order_ref"] = json!("SO-2002");
    let detail = app
        .post_with_key("portal", "/v1/returns", &key, &other)
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert!(detail.contains(&key), "{detail}");
    assert_eq!(app.return_count().await, 1);
}

#[tokio::test]
async fn keys_are_scoped_per_partner() {
    let app = spawn_app().await;
    let key = new_key();
    let portal = app
        .post_with_key("portal", "/v1/returns", &key, &return_request())
        .await;
    portal.assert_ok(201);
    // The admin (another partner) uses the same key for another request:
    // that is a new command, neither a replay nor a reuse.
    let mut other = return_request();
    other["order_ref"] = json!("SO-2002");
    let admin = app
        .post_with_key("admin", "/v1/returns", &key, &other)
        .await;
    admin.assert_ok(201);
    assert!(admin.headers.get("idempotent-replayed").is_none());
    assert_ne!(
        admin.body["return"]["return_id"],
        portal.body["return"]["return_id"]
    );
    assert_eq!(app.return_count().await, 2);
}

#[tokio::test]
async fn a_retried_command_is_applied_once() {
    let app = spawn_app().await;
    let id = app.create_return(&return_request()).await;
    let path = format!("/v1/returns/{id}/approve");
    let key = new_key();
    let first = app.post_with_key("support", &path, &key, &json!({})).await;
    first.assert_ok(200);
    let again = app.post_with_key("support", &path, &key, &json!({})).await;
    again.assert_ok(200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(app.version(&id).await, 2);

    // The same key on another return's path is another request.
    let other = app.create_return(&return_request()).await;
    app.post_with_key(
        "support",
        &format!("/v1/returns/{other}/approve"),
        &key,
        &json!({}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    assert_eq!(app.version(&other).await, 1);
}
