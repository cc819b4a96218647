//! `GET /v1/schema`: the canonical model's JSON Schema, the same document
//! `backhaul schema` prints.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;

static SCHEMA: LazyLock<Value> = LazyLock::new(backhaul_domain::schema::canonical_schema);

pub(crate) async fn schema() -> Json<&'static Value> {
    Json(&SCHEMA)
}
