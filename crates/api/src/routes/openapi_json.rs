//! `GET /openapi.json`: the OpenAPI 3.1 document of this API (built by
//! [`crate::openapi`]).

use axum::Json;
use serde_json::Value;

pub(crate) async fn openapi() -> Json<&'static Value> {
    Json(crate::openapi::document())
}
