//! `/v1/master`: the master data the hub decides with (SKUs, customers,
//! sites, orders, vendors, crosswalks).
//!
//! - `GET /v1/master`: the revision in force and how many records of each kind.
//! - `POST /v1/master/{kind}`: load records of one kind, all or nothing,
//!   either as a JSON array of records or as a CSV file
//!   (`Content-Type: text/csv`, the layout of `backhaul master import`).
//!   `?dry_run=true` checks and says what would change without storing.
//!   Problems come back as `invalid_master_data` with a `problems` list
//!   naming the line (CSV) or record (JSON) and the column.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use backhaul_master::{Changes, Kind, Record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::QueryParams;

/// Query parameters of `POST /v1/master/{kind}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MasterQuery {
    /// Check and say what would change; store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What a load did (or, for a dry run, would do).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MasterLoad {
    dry_run: bool,
    /// The master data revision in force after the load.
    revision: i64,
    /// Created, updated and unchanged records per kind.
    #[schemars(with = "serde_json::Value")]
    changes: Changes,
}

/// The master data in force.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MasterStatus {
    revision: i64,
    /// Records per kind.
    #[schemars(with = "std::collections::BTreeMap<String, usize>")]
    counts: std::collections::BTreeMap<&'static str, usize>,
}

pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<MasterStatus>, ApiError> {
    let master = state.engine.reload_master().await?;
    Ok(Json(MasterStatus {
        revision: master.revision(),
        counts: Kind::ALL
            .into_iter()
            .map(|k| (k.as_str(), master.count(k)))
            .collect(),
    }))
}

pub(crate) async fn load(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    QueryParams(query): QueryParams<MasterQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<MasterLoad>, ApiError> {
    let kind = Kind::parse(&kind).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::NotFound(format!(
            "/v1/master/{kind}: no such kind of master data (known: {})",
            known.join(", ")
        ))
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let (changes, revision) = match content_type.as_deref() {
        Some("text/csv") => {
            let file = format!("{}.csv", kind.file_stem());
            state
                .engine
                .import_master(kind, &file, &body, query.dry_run)
                .await?
        }
        Some("application/json") => {
            let records = parse_records(kind, &body)?;
            state.engine.put_master(&records, query.dry_run).await?
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send master data as `application/json` (an array of records) or `text/csv`"
                    .to_owned(),
            ));
        }
    };
    Ok(Json(MasterLoad {
        dry_run: query.dry_run,
        revision,
        changes,
    }))
}

/// A JSON array of records of `kind`, each without its `type` tag (the
/// path says the kind).
fn parse_records(kind: Kind, body: &[u8]) -> Result<Vec<Record>, ApiError> {
    let items: Vec<serde_json::Value> = crate::json::parse(body)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Record::from_body(kind, &item.to_string())
                .map_err(|e| ApiError::InvalidBody(format!("[{i}]: {e}")))
        })
        .collect()
}
