//! The WMS: expected receipts (advance shipping notices, `ASN-…`) that tell
//! a warehouse which returned units to expect, and their cancellation.
//!
//! Business rules: an expected receipt's `site` must be one of
//! [`crate::WmsConfig::sites`] when that list is not empty, else
//! `unknown_site`; a cancellation must name a stored ASN, else
//! `unknown_asn`. Cancelling an ASN twice (with two keys) is accepted both
//! times and stored both times: the WMS answers like a real one would, and
//! a test can still see that the hub sent the cancellation twice.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use crate::body::{BodyError, Object, unique_line_numbers};
use crate::command::{Applied, ApplyError, Command, Context};
use crate::db::{self, PostingKind};
use crate::error::{Code, Problem, Rejection, RejectionCode};
use crate::pipeline::{self, BodyRule};
use crate::sim::Sim;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route(
            "/wms/expected-receipts",
            post(post_expected_receipt).get(list_expected_receipts),
        )
        .route("/wms/expected-receipts/{asn}/cancel", post(post_cancel))
}

/// `POST /wms/expected-receipts`.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedReceipt {
    rma: String,
    site: String,
}

impl ExpectedReceipt {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(body, &["rma", "return_id", "site", "lines"])?;
        let rma = root.text("rma")?;
        root.uuid("return_id")?;
        let site = root.text("site")?;
        let mut numbers = Vec::new();
        for line in root.objects("lines", &["line_no", "sku", "quantity"])? {
            numbers.push(line.integer("line_no", 1)?);
            line.text("sku")?;
            line.positive_decimal("quantity")?;
        }
        unique_line_numbers("lines", numbers)?;
        Ok(ExpectedReceipt { rma, site })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        let sites = &context.config.wms.sites;
        if !sites.is_empty() && !sites.contains(&self.site) {
            return Err(Rejection::new(
                RejectionCode::UnknownSite,
                format!("site {:?} is not run by this WMS", self.site),
            )
            .into());
        }
        let n = db::next_number(conn, "ASN").await?;
        let asn = format!("ASN-{n:06}");
        let response = json!({ "asn": asn });
        Ok(Applied::created(
            PostingKind::ExpectedReceipt,
            asn,
            self.rma,
            response,
        ))
    }
}

/// `POST /wms/expected-receipts/{asn}/cancel`; the body is empty, `{}` or
/// `{"reason": "..."}`.
#[derive(Debug, Clone)]
pub(crate) struct CancelReceipt {
    asn: String,
}

impl CancelReceipt {
    pub(crate) fn parse(asn: String, body: &Value) -> Result<Self, BodyError> {
        Object::root(body, &["reason"])?.optional_text("reason")?;
        Ok(CancelReceipt { asn })
    }

    pub(crate) async fn apply(self, conn: &mut SqliteConnection) -> Result<Applied, ApplyError> {
        let Some(receipt) = db::find_posting(conn, PostingKind::ExpectedReceipt, &self.asn).await?
        else {
            return Err(Rejection::new(
                RejectionCode::UnknownAsn,
                format!("ASN {:?} does not exist", self.asn),
            )
            .into());
        };
        Ok(Applied {
            kind: PostingKind::ReceiptCancellation,
            response: json!({ "asn": self.asn, "cancelled": true }),
            number: Some(self.asn),
            rma: receipt.rma,
            status: StatusCode::OK,
            out_of_order: false,
        })
    }
}

async fn post_expected_receipt(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        ExpectedReceipt::parse(v).map(Command::ExpectedReceipt)
    })
    .await
}

async fn post_cancel(
    State(sim): State<Sim>,
    asn: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path(asn)) = asn else {
        return Problem::new(Code::NotFound, format!("no route matches {}", uri.path()))
            .into_response();
    };
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Optional, |v| {
        CancelReceipt::parse(asn, v).map(Command::CancelReceipt)
    })
    .await
}

/// One expected receipt as the WMS holds it.
#[derive(Debug, Serialize)]
struct ReceiptView {
    asn: String,
    rma: String,
    return_id: Value,
    site: Value,
    lines: Value,
    cancelled: bool,
    idempotency_key: String,
    created_at: DateTime<Utc>,
}

/// `GET /wms/expected-receipts`: every ASN in arrival order, with whether it
/// was cancelled.
async fn list_expected_receipts(State(sim): State<Sim>) -> Result<Json<Vec<ReceiptView>>, Problem> {
    let cancelled: HashSet<String> = sim
        .db()
        .postings(Some(PostingKind::ReceiptCancellation))
        .await?
        .into_iter()
        .filter_map(|p| p.number)
        .collect();
    let receipts = sim
        .db()
        .postings(Some(PostingKind::ExpectedReceipt))
        .await?;
    let views = receipts
        .into_iter()
        .map(|p| {
            let asn = p.number.unwrap_or_default();
            ReceiptView {
                cancelled: cancelled.contains(&asn),
                asn,
                rma: p.rma,
                return_id: p.body["return_id"].clone(),
                site: p.body["site"].clone(),
                lines: p.body["lines"].clone(),
                idempotency_key: p.idempotency_key,
                created_at: p.created_at,
            }
        })
        .collect();
    Ok(Json(views))
}
