//! The customer portal: it receives the hub's status updates for each RMA
//! and shows the latest to the customer.
//!
//! It never rejects an update. What it watches is order: each update carries
//! the return's stream `version`, and one lower than a version already
//! received for the same RMA is counted as `out_of_order` (in
//! [`crate::Stats`] and in `GET /portal/statuses`), which is how a test sees
//! whether the hub delivers a return's updates in order. An update with the
//! version already seen is a duplicate, not out of order.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use crate::body::{BodyError, Object};
use crate::command::{Applied, ApplyError, Command};
use crate::db::{self, Posting, PostingKind};
use crate::error::{Code, Problem, SimError};
use crate::pipeline::{self, BodyRule};
use crate::sim::Sim;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/portal/status", post(post_status))
        .route("/portal/statuses", get(list_statuses))
}

/// `POST /portal/status`.
#[derive(Debug, Clone)]
pub(crate) struct StatusUpdate {
    rma: String,
    version: u64,
}

impl StatusUpdate {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(
            body,
            &[
                "rma",
                "return_id",
                "status",
                "stage",
                "owner",
                "version",
                "at",
            ],
        )?;
        let rma = root.text("rma")?;
        root.uuid("return_id")?;
        root.text("status")?;
        root.text("stage")?;
        root.text("owner")?;
        let version = root.integer("version", 0)?;
        root.timestamp("at")?;
        Ok(StatusUpdate { rma, version })
    }

    pub(crate) async fn apply(self, conn: &mut SqliteConnection) -> Result<Applied, ApplyError> {
        let earlier = db::postings_for_rma(conn, PostingKind::PortalStatus, &self.rma).await?;
        let highest = earlier
            .iter()
            .map(stored_version)
            .collect::<Result<Vec<u64>, SimError>>()?
            .into_iter()
            .max();
        Ok(Applied {
            kind: PostingKind::PortalStatus,
            number: None,
            out_of_order: highest.is_some_and(|highest| self.version < highest),
            rma: self.rma,
            status: StatusCode::OK,
            response: json!({ "accepted": true }),
        })
    }
}

fn stored_version(posting: &Posting) -> Result<u64, SimError> {
    posting.body["version"]
        .as_u64()
        .ok_or_else(|| SimError::Corrupt(format!("posting {} has no version", posting.seq)))
}

async fn post_status(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        StatusUpdate::parse(v).map(Command::PortalStatus)
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    /// Only this RMA's updates.
    rma: Option<String>,
}

/// One update as the portal received it.
#[derive(Debug, Serialize)]
struct StatusView {
    rma: String,
    return_id: Value,
    status: Value,
    stage: Value,
    owner: Value,
    version: u64,
    at: Value,
    /// Lower than a version received earlier for the same RMA.
    out_of_order: bool,
    idempotency_key: String,
    received_at: DateTime<Utc>,
}

/// `GET /portal/statuses[?rma=]`: the updates in arrival order.
async fn list_statuses(State(sim): State<Sim>, uri: Uri) -> Result<Json<Vec<StatusView>>, Problem> {
    let Query(query) = Query::<StatusQuery>::try_from_uri(&uri)
        .map_err(|e| Problem::new(Code::InvalidQuery, e.body_text()))?;
    let postings = sim.db().postings(Some(PostingKind::PortalStatus)).await?;
    // Out-of-order is decided against every earlier update of the RMA, so
    // the fold runs over all postings before the filter.
    let mut highest: HashMap<String, u64> = HashMap::new();
    let mut views = Vec::new();
    for posting in postings {
        let version = stored_version(&posting)?;
        let seen = highest.entry(posting.rma.clone()).or_insert(version);
        let out_of_order = version < *seen;
        *seen = (*seen).max(version);
        if query.rma.as_ref().is_some_and(|rma| *rma != posting.rma) {
            continue;
        }
        views.push(StatusView {
            return_id: posting.body["return_id"].clone(),
            status: posting.body["status"].clone(),
            stage: posting.body["stage"].clone(),
            owner: posting.body["owner"].clone(),
            at: posting.body["at"].clone(),
            rma: posting.rma,
            version,
            out_of_order,
            idempotency_key: posting.idempotency_key,
            received_at: posting.created_at,
        });
    }
    Ok(Json(views))
}
