//! The parcel carrier (`SIMX`): return labels with tracking numbers
//! (`SIMX0000000001`) that expire after
//! [`crate::CarrierConfig::label_validity_days`], voids, and each label's
//! scan feed.
//!
//! Business rule: a void must name a stored tracking number, else
//! `unknown_tracking_number`. Voiding twice (with two keys) is accepted and
//! stored both times, like the WMS's cancellations.
//!
//! The scan feed is generated, not stored: [`crate::scan_feed_starting`]
//! from the label's creation time and the simulator's seed, so every read
//! of a label's scans gives the same feed.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use crate::body::{BodyError, Object};
use crate::command::{Applied, ApplyError, Command, Context};
use crate::db::{self, PostingKind};
use crate::error::{Code, Problem, Rejection, RejectionCode};
use crate::pipeline::{self, BodyRule};
use crate::scan::{Scan, scan_feed_starting};
use crate::sim::Sim;

/// The carrier's code, in every label and tracking number.
pub(crate) const CARRIER: &str = "SIMX";

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/carrier/labels", post(post_label).get(list_labels))
        .route("/carrier/labels/{tracking}/void", post(post_void))
        .route("/carrier/labels/{tracking}/scans", get(scans))
}

/// `POST /carrier/labels`.
#[derive(Debug, Clone)]
pub(crate) struct LabelRequest {
    rma: String,
}

impl LabelRequest {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(
            body,
            &["rma", "return_id", "customer", "to_site", "parcels"],
        )?;
        let rma = root.text("rma")?;
        root.uuid("return_id")?;
        root.text("customer")?;
        root.text("to_site")?;
        root.integer("parcels", 1)?;
        Ok(LabelRequest { rma })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        let n = db::next_number(conn, "LABEL").await?;
        let tracking_number = format!("{CARRIER}{n:010}");
        let validity = Duration::days(i64::from(context.config.carrier.label_validity_days));
        let expires_at = (context.now + validity).to_rfc3339_opts(SecondsFormat::Secs, true);
        let response = json!({
            "carrier": CARRIER,
            "tracking_number": tracking_number,
            "label_ref": format!("LBL-{n:06}"),
            "expires_at": expires_at,
        });
        Ok(Applied::created(
            PostingKind::Label,
            tracking_number,
            self.rma,
            response,
        ))
    }
}

/// `POST /carrier/labels/{tracking}/void`; the body is empty, `{}` or
/// `{"reason": "..."}`.
#[derive(Debug, Clone)]
pub(crate) struct VoidLabel {
    tracking_number: String,
}

impl VoidLabel {
    pub(crate) fn parse(tracking_number: String, body: &Value) -> Result<Self, BodyError> {
        Object::root(body, &["reason"])?.optional_text("reason")?;
        Ok(VoidLabel { tracking_number })
    }

    pub(crate) async fn apply(self, conn: &mut SqliteConnection) -> Result<Applied, ApplyError> {
        let Some(label) = db::find_posting(conn, PostingKind::Label, &self.tracking_number).await?
        else {
            return Err(Rejection::new(
                RejectionCode::UnknownTrackingNumber,
                format!("no label has tracking number {:?}", self.tracking_number),
            )
            .into());
        };
        Ok(Applied {
            kind: PostingKind::LabelVoid,
            response: json!({ "tracking_number": self.tracking_number, "voided": true }),
            number: Some(self.tracking_number),
            rma: label.rma,
            status: StatusCode::OK,
            out_of_order: false,
        })
    }
}

async fn post_label(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        LabelRequest::parse(v).map(Command::Label)
    })
    .await
}

async fn post_void(
    State(sim): State<Sim>,
    tracking: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path(tracking)) = tracking else {
        return Problem::new(Code::NotFound, format!("no route matches {}", uri.path()))
            .into_response();
    };
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Optional, |v| {
        VoidLabel::parse(tracking, v).map(Command::VoidLabel)
    })
    .await
}

/// One label as the carrier holds it.
#[derive(Debug, Serialize)]
struct LabelView {
    carrier: &'static str,
    tracking_number: String,
    label_ref: Value,
    rma: String,
    return_id: Value,
    customer: Value,
    to_site: Value,
    parcels: Value,
    expires_at: Value,
    /// Whether `expires_at` has passed, by the simulator's clock.
    expired: bool,
    voided: bool,
    idempotency_key: String,
    created_at: DateTime<Utc>,
}

/// `GET /carrier/labels`: every label in creation order.
async fn list_labels(State(sim): State<Sim>) -> Result<Json<Vec<LabelView>>, Problem> {
    let voided: HashSet<String> = sim
        .db()
        .postings(Some(PostingKind::LabelVoid))
        .await?
        .into_iter()
        .filter_map(|p| p.number)
        .collect();
    let now = sim.now();
    let labels = sim.db().postings(Some(PostingKind::Label)).await?;
    let views = labels
        .into_iter()
        .map(|p| {
            let tracking_number = p.number.unwrap_or_default();
            let expired = p.response["expires_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= now);
            LabelView {
                carrier: CARRIER,
                voided: voided.contains(&tracking_number),
                tracking_number,
                label_ref: p.response["label_ref"].clone(),
                rma: p.rma,
                return_id: p.body["return_id"].clone(),
                customer: p.body["customer"].clone(),
                to_site: p.body["to_site"].clone(),
                parcels: p.body["parcels"].clone(),
                expires_at: p.response["expires_at"].clone(),
                expired,
                idempotency_key: p.idempotency_key,
                created_at: p.created_at,
            }
        })
        .collect();
    Ok(Json(views))
}

/// `GET /carrier/labels/{tracking}/scans`: the label's scan feed, with the
/// duplicates and reorderings of [`crate::CarrierConfig`].
async fn scans(
    State(sim): State<Sim>,
    tracking: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Json<Vec<Scan>>, Problem> {
    let Ok(Path(tracking)) = tracking else {
        return Err(Problem::new(
            Code::NotFound,
            format!("no route matches {}", uri.path()),
        ));
    };
    let Some(label) = sim.db().posting(PostingKind::Label, &tracking).await? else {
        return Err(Problem::new(
            Code::NotFound,
            format!("no label has tracking number {tracking:?}"),
        ));
    };
    let carrier = &sim.config().carrier;
    Ok(Json(scan_feed_starting(
        &tracking,
        label.created_at,
        sim.config().seed,
        carrier.scan_duplicate_rate,
        carrier.scan_reorder_rate,
    )))
}
