//! The route table against the router and the OpenAPI document.

use axum::body::Body;
use axum::http::{Request, header};
use backhaul_api::{Access, ROUTES};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_route_of_the_table_is_served_and_documented() {
    let app = spawn_app().await;
    let doc = app.get("carrier", "/openapi.json").await;
    doc.assert_ok(200);
    let doc = doc.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ROUTES.len(), "one operation per route");

    for route in ROUTES {
        let method = route.verb.as_str().to_ascii_lowercase();
        let op = &doc["paths"][route.path][&method];
        assert_eq!(
            op["operationId"], route.operation_id,
            "{} {}",
            method, route.path
        );
        assert!(op["responses"][route.success.to_string()].is_object());
        if let Some(request) = route.request {
            let schema_ref = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(schema_ref, &format!("#/components/schemas/{request}"));
            assert!(
                doc["components"]["schemas"][request].is_object(),
                "{request}"
            );
        }
        match route.access {
            Access::Scope(scope) => {
                assert_eq!(op["security"][0]["bearer"][0], scope.as_str());
            }
            Access::Open => assert_eq!(op["security"], Value::Array(vec![])),
            Access::AnyKey => assert!(op["security"][0]["bearer"].is_array()),
            Access::Signature => {
                assert!(op["security"][0]["standardWebhooks"].is_array());
                for header in ["WebhookId", "WebhookTimestamp", "WebhookSignature"] {
                    assert!(op["parameters"].to_string().contains(header), "{header}");
                }
            }
        }
        let params = op["parameters"].to_string();
        assert_eq!(
            params.contains("IdempotencyKey"),
            route.idempotency_key,
            "{}",
            route.path
        );
        // Every lifecycle command takes a key; the POSTs without one are
        // operator actions on deliveries, the eligibility check (it stores
        // nothing), master data loads (an upsert: repeating it changes
        // nothing) and webhooks (their webhook-id is the key).
        if route.verb == backhaul_api::Verb::Post && !route.idempotency_key {
            assert!(
                route.path.starts_with("/v1/deliveries/")
                    || route.path == "/v1/eligibility"
                    || route.path.starts_with("/v1/master/")
                    || route.access == Access::Signature,
                "{}",
                route.path
            );
        }
        if route.path.contains("{kind}") {
            assert!(params.contains("MasterKind"), "{}: {params}", route.path);
        }
        if route.path.contains("{id}") {
            let expected = if route.path.starts_with("/v1/deliveries/") {
                "DeliveryId"
            } else {
                "ReturnId"
            };
            assert!(params.contains(expected), "{}: {params}", route.path);
        }

        // The router serves the same (method, path): without a key (or a
        // signature) it is a 401, not a 404 or 405.
        let path = route
            .path
            .replace("{id}", "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            .replace("{source}", "wms");
        let request = Request::builder()
            .method(route.verb.as_str())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        let expected = if route.access == Access::Open {
            200
        } else {
            401
        };
        assert_eq!(response.status.as_u16(), expected, "{method} {path}");
    }

    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        !doc.to_string().contains("#/$defs/"),
        "every reference points into components"
    );
}

#[tokio::test]
async fn the_canonical_schema_is_served() {
    let app = spawn_app().await;
    let schema = app.get("wms", "/v1/schema").await;
    schema.assert_ok(200);
    assert_eq!(
        schema.body["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema.body["$defs"]["ReturnRequest"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    app.get("admin", "/v1/nothing-here")
        .await
        .assert_problem(404, "not_found");
    app.send(Request::get("/v2/returns").body(Body::empty()).unwrap())
        .await
        .assert_problem(404, "not_found");
    let request = Request::delete("/v1/returns")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.token("admin")),
        )
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    response.assert_problem(405, "method_not_allowed");
    let allow = response
        .headers
        .get(header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        allow
            .as_deref()
            .is_some_and(|a| a.contains("GET") && a.contains("POST")),
        "{allow:?}"
    );
}
