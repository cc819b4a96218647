//! `GET /health`: liveness, open to anyone. It answers as long as the
//! process serves HTTP; it does not touch the store, so a load balancer does
//! not take the hub out of rotation for a slow disk.

use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}
