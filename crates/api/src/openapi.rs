//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the
//! route table ([`crate::ROUTES`]) and from the Rust types' JSON Schemas.
//!
//! Why no utoipa: the request and response types already derive
//! `schemars::JsonSchema`, and the canonical model's schema
//! (`backhaul_domain::schema::canonical_schema`) is what partners validate
//! against. schemars emits JSON Schema 2020-12, which OpenAPI 3.1 uses
//! natively, so its `$defs` move into `components.schemas` unchanged (only
//! `$ref`s are rewritten). A second set of derive macros would be a second
//! source of schemas that could disagree with the first.
//!
//! What is not here: the route list itself (`routes`), and any schema
//! written by hand except `CommandResult`, whose shape the engine builds.

use std::sync::LazyLock;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::auth::Scope;
use crate::deliveries::{DeliveryDetail, DeliveryList, DeliveryQuery, DeliveryView};
use crate::error::Problem;
use crate::routes::v1::backlog::Backlog;
use crate::routes::v1::deliveries::delivery_id::{OperatorReason, RetryDelivery};
use crate::routes::v1::returns::return_id::commands::{Dispositions, Inspections, Reason};
use crate::routes::v1::returns::return_id::events::Timeline;
use crate::routes::v1::returns::{ListQuery, ReturnList};
use crate::routes::{Access, ROUTES, Route};
use crate::webhooks::mapping::{CarrierTracking, WmsInspection, WmsPutaway, WmsReceipt};

const DEFS_PREFIX: &str = "#/$defs/";
const COMPONENTS_PREFIX: &str = "#/components/schemas/";

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The OpenAPI document (built once).
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// Adds `T` to the generator's definitions.
fn add<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

/// Every named schema: the canonical model's `$defs`, the API's own request
/// and response types, and the few hand-written ones.
fn component_schemas() -> Map<String, Value> {
    let canonical = backhaul_domain::schema::canonical_schema();
    let mut schemas = match canonical.get("$defs") {
        Some(Value::Object(defs)) => defs.clone(),
        _ => Map::new(),
    };

    // The same settings as the canonical schema, so shared types come out
    // identical and under the same names.
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    add::<backhaul_domain::model::ReturnRequest>(&mut generator);
    add::<backhaul_domain::ReturnSummary>(&mut generator);
    add::<backhaul_domain::command::Approve>(&mut generator);
    add::<backhaul_domain::model::Label>(&mut generator);
    add::<backhaul_domain::command::CarrierEvent>(&mut generator);
    add::<backhaul_domain::command::Receipt>(&mut generator);
    add::<backhaul_domain::model::FinancialDocument>(&mut generator);
    add::<backhaul_domain::command::Settlement>(&mut generator);
    add::<backhaul_domain::ownership::LineCorrection>(&mut generator);
    add::<backhaul_domain::eligibility::Assessment>(&mut generator);
    add::<crate::routes::v1::master::MasterQuery>(&mut generator);
    add::<crate::routes::v1::master::MasterLoad>(&mut generator);
    add::<crate::routes::v1::master::MasterStatus>(&mut generator);
    add::<Reason>(&mut generator);
    add::<Inspections>(&mut generator);
    add::<Dispositions>(&mut generator);
    add::<ListQuery>(&mut generator);
    add::<ReturnList>(&mut generator);
    add::<Timeline>(&mut generator);
    add::<Backlog>(&mut generator);
    add::<crate::routes::v1::connectors::Connectors>(&mut generator);
    add::<DeliveryQuery>(&mut generator);
    add::<DeliveryList>(&mut generator);
    add::<DeliveryView>(&mut generator);
    add::<DeliveryDetail>(&mut generator);
    add::<RetryDelivery>(&mut generator);
    add::<OperatorReason>(&mut generator);
    add::<crate::routes::health::Health>(&mut generator);
    add::<WmsReceipt>(&mut generator);
    add::<WmsInspection>(&mut generator);
    add::<WmsPutaway>(&mut generator);
    add::<CarrierTracking>(&mut generator);
    add::<Problem>(&mut generator);
    schemas.extend(generator.take_definitions(true));

    schemas.insert(
        "CommandResult".into(),
        json!({
            "description": "The result of a command: the return after it, its version and the events the command recorded. A replayed answer is the stored original.",
            "type": "object",
            "properties": {
                "return": { "$ref": format!("{DEFS_PREFIX}ReturnSummary") },
                "version": { "type": "integer", "description": "The return's version (number of events) after the command." },
                "events": { "type": "array", "items": { "type": "string" }, "description": "Types of the events recorded, in order." }
            },
            "required": ["return", "version", "events"]
        }),
    );
    schemas.insert("InboundWebhook".into(), inbound_webhook_schema());
    let mut schemas = Value::Object(schemas);
    rewrite_refs(&mut schemas);
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The body of `POST /v1/webhooks/{source}`: the Standard Webhooks envelope
/// around each event a source of each kind takes. Written by hand because
/// the route reads `type` first and then `data` by it (for errors that name
/// the field), which no derived schema would show.
fn inbound_webhook_schema() -> Value {
    let envelope = |kind: &str, event_type: &str, data: Value| {
        json!({
            "title": format!("{kind}: {event_type}"),
            "type": "object",
            "properties": {
                "type": { "const": event_type },
                "timestamp": { "type": "string", "format": "date-time", "description": "When the sender says the event happened; informational." },
                "data": data,
            },
            "required": ["type", "data"],
            "additionalProperties": false,
        })
    };
    let data = |name: &str| json!({ "$ref": format!("{DEFS_PREFIX}{name}") });
    json!({
        "description": "A Standard Webhooks payload. Which `type`s a source takes depends on its configured kind: `wms`, `carrier` or `canonical` (type = a command's name, data = its body as the command's route takes it plus `return_id` or `rma_number`).",
        "oneOf": [
            envelope("wms", "receipt.created", data("WmsReceipt")),
            envelope("wms", "inspection.completed", data("WmsInspection")),
            envelope("wms", "putaway.completed", data("WmsPutaway")),
            envelope("carrier", "tracking.updated", data("CarrierTracking")),
            {
                "title": "canonical: a command",
                "type": "object",
                "properties": {
                    "type": { "type": "string", "description": "The command's name, e.g. `record_receipt`." },
                    "timestamp": { "type": "string", "format": "date-time" },
                    "data": { "type": "object" },
                },
                "required": ["type", "data"],
                "additionalProperties": false,
            },
        ],
    })
}

/// Points `$ref`s at `components.schemas` instead of `$defs`.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "$ref" => {
                        if let Some(name) = s.strip_prefix(DEFS_PREFIX) {
                            *s = format!("{COMPONENTS_PREFIX}{name}");
                        }
                    }
                    _ => rewrite_refs(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// A query parameter's schema without the `null` an `Option` adds: an
/// absent parameter is how "none" is said.
fn without_null(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
    if let Some(Value::Array(any_of)) = schema.get("anyOf").cloned() {
        let rest: Vec<Value> = any_of
            .into_iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = rest.as_slice()
            && let Some(map) = schema.as_object_mut()
        {
            map.remove("anyOf");
            if let Some(only) = only.as_object() {
                map.extend(only.clone());
            }
        }
    }
    schema
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENTS_PREFIX}{name}") })
}

/// One operation object.
fn operation(route: &Route, schemas: &Map<String, Value>) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), route.operation_id.into());
    op.insert("summary".into(), route.summary.into());
    let (security, description) = match route.access {
        Access::Open => (json!([]), "No API key needed.".to_owned()),
        Access::AnyKey => (json!([{ "bearer": [] }]), "Any valid API key.".to_owned()),
        Access::Scope(scope) => (
            json!([{ "bearer": [scope.as_str()] }]),
            format!("Requires an API key with scope `{scope}` (or `admin`)."),
        ),
        Access::Signature => (
            json!([{ "standardWebhooks": [] }]),
            "No API key: the body is signed with the source's secret (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`). Unsigned or badly signed: 401 `webhook_signature_invalid`; a timestamp outside the tolerance: 401 `webhook_timestamp_out_of_tolerance`. The `webhook-id` is the dedup key: a delivery applied before gets its first answer again.".to_owned(),
        ),
    };
    op.insert("description".into(), description.into());
    op.insert("security".into(), security);
    if let Access::Scope(scope) = route.access {
        op.insert("x-required-scope".into(), scope.as_str().into());
    }

    let mut parameters = Vec::new();
    if route.path.contains("{id}") {
        // The `{id}` of a delivery's routes is the delivery's; elsewhere it
        // is a return's.
        let name = if route.path.starts_with("/v1/deliveries/") {
            "DeliveryId"
        } else {
            "ReturnId"
        };
        parameters.push(schema_param_ref(name));
    }
    if route.path.contains("{kind}") {
        parameters.push(schema_param_ref("MasterKind"));
    }
    if route.path.contains("{source}") {
        parameters.push(schema_param_ref("WebhookSource"));
    }
    if route.access == Access::Signature {
        for name in ["WebhookId", "WebhookTimestamp", "WebhookSignature"] {
            parameters.push(schema_param_ref(name));
        }
    }
    if route.idempotency_key {
        parameters.push(schema_param_ref("IdempotencyKey"));
        parameters.push(schema_param_ref("CorrelationId"));
    }
    if let Some(properties) = route
        .query
        .and_then(|name| schemas.get(name))
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    {
        for (name, schema) in properties {
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": false,
                "schema": without_null(schema),
            });
            if let Some(description) = schema.get("description") {
                param["description"] = description.clone();
            }
            parameters.push(param);
        }
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }

    if let Some(request) = route.request {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": schema_ref(request) } }
            }),
        );
    }

    let mut success = json!({
        "description": "Success",
        "content": { "application/json": {
            "schema": route.response.map_or_else(|| json!({ "type": "object" }), schema_ref)
        } }
    });
    let mut headers = Map::new();
    if route.success == 201 {
        headers.insert(
            "Location".into(),
            json!({ "description": "The new return's URL.", "schema": { "type": "string" } }),
        );
    }
    if route.idempotency_key || route.access == Access::Signature {
        headers.insert(
            "Idempotent-Replayed".into(),
            json!({
                "description": "`true` when this is the stored answer to an earlier request with the same key and body.",
                "schema": { "type": "string", "enum": ["true"] }
            }),
        );
    }
    if !headers.is_empty() {
        success["headers"] = Value::Object(headers);
    }
    op.insert(
        "responses".into(),
        json!({
            route.success.to_string(): success,
            "default": {
                "description": "A problem (RFC 9457); `code` says which.",
                "content": { "application/problem+json": { "schema": schema_ref("Problem") } }
            }
        }),
    );
    Value::Object(op)
}

fn schema_param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn build() -> Value {
    let schemas = component_schemas();
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[route.verb.as_str().to_ascii_lowercase()] = operation(route, &schemas);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Backhaul API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The returns lifecycle over HTTP. Every command on a return needs an `Idempotency-Key`; operator actions on deliveries take none (a repeated action finds the delivery moved on and gets 409 `delivery_state_conflict`). Every error is an RFC 9457 problem with a stable `code`.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": format!("An API key `bh_<key_id>_<secret>` created with `backhaul keys create`. Scopes: {} (`admin` implies all).", Scope::names()),
                },
                "standardWebhooks": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks: `v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>` with the source's `whsec_` secret; several space-separated signatures during a key rotation.",
                },
            },
            "parameters": {
                "ReturnId": {
                    "name": "id",
                    "in": "path",
                    "required": true,
                    "schema": { "type": "string", "format": "uuid" },
                },
                "MasterKind": {
                    "name": "kind",
                    "in": "path",
                    "required": true,
                    "description": "The kind of master data, singular or plural.",
                    "schema": { "type": "string", "enum": ["sku", "skus", "customer", "customers", "site", "sites", "order", "orders", "vendor", "vendors", "crosswalk", "crosswalks"] },
                },
                "DeliveryId": {
                    "name": "id",
                    "in": "path",
                    "required": true,
                    "description": "The delivery's id, as listed by `GET /v1/deliveries`.",
                    "schema": { "type": "integer", "format": "int64", "minimum": 1 },
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": true,
                    "description": "Chosen by the caller, 1 to 255 visible ASCII characters, scoped per partner. The same key with the same request returns the stored response (with `Idempotent-Replayed: true`); with a different request it is refused (`idempotency_key_reused`).",
                    "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7E]+$" },
                },
                "WebhookSource": {
                    "name": "source",
                    "in": "path",
                    "required": true,
                    "description": "A source configured under `[webhooks.inbound.<source>]`.",
                    "schema": { "type": "string", "pattern": "^[a-z0-9_-]{1,64}$" },
                },
                "WebhookId": {
                    "name": "webhook-id",
                    "in": "header",
                    "required": true,
                    "description": "The message id, the same on every retry: the dedup key.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": 256 },
                },
                "WebhookTimestamp": {
                    "name": "webhook-timestamp",
                    "in": "header",
                    "required": true,
                    "description": "The attempt's time in integer Unix seconds; within the source's tolerance of the hub's clock.",
                    "schema": { "type": "string", "pattern": "^[0-9]+$" },
                },
                "WebhookSignature": {
                    "name": "webhook-signature",
                    "in": "header",
                    "required": true,
                    "description": "`v1,<base64>` signatures, space-separated.",
                    "schema": { "type": "string" },
                },
                "CorrelationId": {
                    "name": "X-Correlation-Id",
                    "in": "header",
                    "required": false,
                    "description": "Ties a new return's events to the caller's business transaction.",
                    "schema": { "type": "string", "format": "uuid" },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if k == "$ref" => out.push(s),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external ref {r}"));
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn every_named_schema_of_the_route_table_exists() {
        let schemas = &document()["components"]["schemas"];
        for route in ROUTES {
            for name in [route.request, route.response, route.query]
                .into_iter()
                .flatten()
            {
                assert!(
                    schemas.get(name).is_some(),
                    "{} names missing schema {name}",
                    route.operation_id
                );
            }
        }
    }

    #[test]
    fn query_parameters_come_from_the_query_type() {
        let list = &document()["paths"]["/v1/returns"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for expected in ["status", "stage", "customer", "order_ref", "sku", "limit"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let limit = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["type"], "integer");
    }
}
