//! The ERP: return orders (`RO-…`), inventory adjustments (`IA-…`), credit
//! memos (`CM-…`), supplier claims (`SC-…`), repair orders (`RP-…`) and
//! replacement sales orders (`RS-…`), each numbered from its own durable
//! series, and the ledger folded from them.
//!
//! Business rules, checked in this order:
//! - every post: the posting period is open, else `period_closed`;
//! - return order: no SKU of [`crate::ErpConfig::unknown_skus`], else
//!   `unknown_sku`;
//! - inventory adjustment, credit memo, supplier claim, repair order and
//!   replacement order: `return_order` names a stored return order, else
//!   `unknown_return_order`;
//! - return order cancellation: names a stored return order, else
//!   `unknown_return_order`;
//! - credit memo: same currency as its return order, else
//!   `currency_mismatch`; total within [`crate::ErpConfig::credit_limit`],
//!   else `credit_limit_exceeded`.
//!
//! Only `restock` and `refurbish` adjustments add to on-hand inventory;
//! other dispositions are recorded and change nothing, as in an ERP where
//! scrapped or quarantined units never re-enter sellable stock.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::body::{BodyError, Object, unique_line_numbers};
use crate::command::{Applied, ApplyError, Command, Context};
use crate::db::{self, Db, Posting, PostingKind};
use crate::error::{Code, Problem, Rejection, RejectionCode, SimError};
use crate::pipeline::{self, BodyRule};
use crate::sim::Sim;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/erp/return-orders", post(post_return_order))
        .route(
            "/erp/inventory-adjustments",
            post(post_inventory_adjustment),
        )
        .route(
            "/erp/return-orders/{number}/cancel",
            post(post_cancel_return_order),
        )
        .route("/erp/credit-memos", post(post_credit_memo))
        .route("/erp/supplier-claims", post(post_supplier_claim))
        .route("/erp/repair-orders", post(post_repair_order))
        .route("/erp/replacement-orders", post(post_replacement_order))
        .route("/erp/postings", get(postings))
        .route("/erp/ledger", get(get_ledger))
        .route("/admin/erp/period", get(get_period).put(put_period))
}

/// `POST /erp/return-orders`.
#[derive(Debug, Clone)]
pub(crate) struct ReturnOrder {
    rma: String,
    currency: String,
    lines: Vec<OrderLine>,
}

#[derive(Debug, Clone)]
struct OrderLine {
    sku: String,
}

impl ReturnOrder {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(
            body,
            &[
                "rma",
                "return_id",
                "customer",
                "order_ref",
                "currency",
                "lines",
            ],
        )?;
        let rma = root.text("rma")?;
        let _: Uuid = root.uuid("return_id")?;
        root.text("customer")?;
        root.text("order_ref")?;
        let currency = root.currency("currency")?;
        let mut numbers = Vec::new();
        let mut lines = Vec::new();
        for line in root.objects(
            "lines",
            &["line_no", "sku", "quantity", "unit_price", "reason_code"],
        )? {
            numbers.push(line.integer("line_no", 1)?);
            line.positive_decimal("quantity")?;
            line.non_negative_decimal("unit_price")?;
            // The ERP's own reason code (through the hub's crosswalk), when sent.
            line.optional_text("reason_code")?;
            lines.push(OrderLine {
                sku: line.text("sku")?,
            });
        }
        unique_line_numbers("lines", numbers)?;
        Ok(ReturnOrder {
            rma,
            currency,
            lines,
        })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        check_period(context)?;
        let unknown = &context.config.erp.unknown_skus;
        if let Some(line) = self.lines.iter().find(|l| unknown.contains(&l.sku)) {
            return Err(Rejection::new(
                RejectionCode::UnknownSku,
                format!("SKU {:?} is not in the item master", line.sku),
            )
            .into());
        }
        let number = number(conn, "RO").await?;
        let response = json!({ "number": number });
        Ok(Applied::created(
            PostingKind::ReturnOrder,
            number,
            self.rma,
            response,
        ))
    }
}

/// `POST /erp/inventory-adjustments`.
#[derive(Debug, Clone)]
pub(crate) struct InventoryAdjustment {
    rma: String,
    return_order: String,
    lines: Vec<AdjustmentLine>,
}

#[derive(Debug, Clone)]
struct AdjustmentLine {
    sku: String,
    quantity: Decimal,
    disposition: String,
}

impl AdjustmentLine {
    /// Whether the units go back into on-hand inventory.
    fn adds_stock(&self) -> bool {
        matches!(self.disposition.as_str(), "restock" | "refurbish")
    }
}

impl InventoryAdjustment {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(body, &["rma", "return_order", "site", "lines"])?;
        let rma = root.text("rma")?;
        let return_order = root.text("return_order")?;
        root.text("site")?;
        let mut numbers = Vec::new();
        let mut lines = Vec::new();
        for line in root.objects(
            "lines",
            &["line_no", "sku", "quantity", "disposition", "location"],
        )? {
            // The bin at the site, when the hub's policy names one.
            line.optional_text("location")?;
            numbers.push(line.integer("line_no", 1)?);
            lines.push(AdjustmentLine {
                sku: line.text("sku")?,
                quantity: line.positive_decimal("quantity")?,
                disposition: line.text("disposition")?,
            });
        }
        unique_line_numbers("lines", numbers)?;
        Ok(InventoryAdjustment {
            rma,
            return_order,
            lines,
        })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        check_period(context)?;
        stored_return_order(conn, &self.return_order).await?;
        let number = number(conn, "IA").await?;
        let response = json!({ "number": number });
        Ok(Applied::created(
            PostingKind::InventoryAdjustment,
            number,
            self.rma,
            response,
        ))
    }
}

/// `POST /erp/credit-memos`.
#[derive(Debug, Clone)]
pub(crate) struct CreditMemo {
    rma: String,
    return_order: String,
    currency: String,
    /// Sum of the line amounts; its scale is the largest scale given.
    total: Decimal,
}

impl CreditMemo {
    pub(crate) fn parse(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(body, &["rma", "return_order", "currency", "lines"])?;
        let rma = root.text("rma")?;
        let return_order = root.text("return_order")?;
        let currency = root.currency("currency")?;
        let mut numbers = Vec::new();
        let mut total = Decimal::ZERO;
        for line in root.objects("lines", &["line_no", "sku", "quantity", "amount"])? {
            numbers.push(line.integer("line_no", 1)?);
            line.text("sku")?;
            line.positive_decimal("quantity")?;
            let amount = line.non_negative_decimal("amount")?;
            total = total.checked_add(amount).ok_or_else(|| BodyError {
                field: Some(line.path_of("amount")),
                message: "the total of the amounts is too large".to_owned(),
            })?;
        }
        unique_line_numbers("lines", numbers)?;
        Ok(CreditMemo {
            rma,
            return_order,
            currency,
            total,
        })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        check_period(context)?;
        let order = stored_return_order(conn, &self.return_order).await?;
        if order.currency != self.currency {
            return Err(Rejection::new(
                RejectionCode::CurrencyMismatch,
                format!(
                    "return order {} is in {}, the credit memo in {}",
                    self.return_order, order.currency, self.currency
                ),
            )
            .into());
        }
        if let Some(limit) = context.config.erp.credit_limit
            && self.total > limit
        {
            return Err(Rejection::new(
                RejectionCode::CreditLimitExceeded,
                format!(
                    "credit memo total {} exceeds the limit of {limit}",
                    self.total
                ),
            )
            .into());
        }
        let number = number(conn, "CM").await?;
        let response = json!({ "number": number, "amount": self.total.to_string() });
        Ok(Applied::created(
            PostingKind::CreditMemo,
            number,
            self.rma,
            response,
        ))
    }
}

/// A document about some units of a return that refers to the ERP's
/// return order: a supplier claim, a repair order or a replacement order.
/// Their lines are alike (`line_no`, `sku`, `quantity`); what sets them
/// apart is in the header, checked by each parser.
#[derive(Debug, Clone)]
pub(crate) struct UnitDocument {
    kind: UnitDocumentKind,
    rma: String,
    return_order: String,
}

#[derive(Debug, Clone, Copy)]
enum UnitDocumentKind {
    SupplierClaim,
    RepairOrder,
    ReplacementOrder,
}

impl UnitDocumentKind {
    fn posting_kind(self) -> PostingKind {
        match self {
            UnitDocumentKind::SupplierClaim => PostingKind::SupplierClaim,
            UnitDocumentKind::RepairOrder => PostingKind::RepairOrder,
            UnitDocumentKind::ReplacementOrder => PostingKind::ReplacementOrder,
        }
    }

    /// The number series, its prefix: `SC-000001`.
    fn series(self) -> &'static str {
        match self {
            UnitDocumentKind::SupplierClaim => "SC",
            UnitDocumentKind::RepairOrder => "RP",
            UnitDocumentKind::ReplacementOrder => "RS",
        }
    }
}

impl UnitDocument {
    /// `POST /erp/supplier-claims`: the units go back to `vendor`, who owes
    /// for them under its return agreement.
    pub(crate) fn parse_supplier_claim(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(body, &["rma", "return_order", "site", "vendor", "lines"])?;
        root.text("site")?;
        root.text("vendor")?;
        Self::parse(UnitDocumentKind::SupplierClaim, &root)
    }

    /// `POST /erp/repair-orders`: the units are refurbished at `site`.
    pub(crate) fn parse_repair_order(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(body, &["rma", "return_order", "site", "lines"])?;
        root.text("site")?;
        Self::parse(UnitDocumentKind::RepairOrder, &root)
    }

    /// `POST /erp/replacement-orders`: new units shipped to `customer`
    /// against the original sales order `order_ref`.
    pub(crate) fn parse_replacement_order(body: &Value) -> Result<Self, BodyError> {
        let root = Object::root(
            body,
            &["rma", "return_order", "customer", "order_ref", "lines"],
        )?;
        root.text("customer")?;
        root.text("order_ref")?;
        Self::parse(UnitDocumentKind::ReplacementOrder, &root)
    }

    fn parse(kind: UnitDocumentKind, root: &Object<'_>) -> Result<Self, BodyError> {
        let rma = root.text("rma")?;
        let return_order = root.text("return_order")?;
        let mut numbers = Vec::new();
        for line in root.objects("lines", &["line_no", "sku", "quantity"])? {
            numbers.push(line.integer("line_no", 1)?);
            line.text("sku")?;
            line.positive_decimal("quantity")?;
        }
        unique_line_numbers("lines", numbers)?;
        Ok(UnitDocument {
            kind,
            rma,
            return_order,
        })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        check_period(context)?;
        stored_return_order(conn, &self.return_order).await?;
        let number = number(conn, self.kind.series()).await?;
        let response = json!({ "number": number });
        Ok(Applied::created(
            self.kind.posting_kind(),
            number,
            self.rma,
            response,
        ))
    }
}

/// `POST /erp/return-orders/{number}/cancel`; the body is empty, `{}` or
/// `{"reason": "..."}`. The order must exist (`unknown_return_order`) and the
/// period be open. Cancelling twice with two keys stores both, so a test can
/// see that the hub sent it twice.
#[derive(Debug, Clone)]
pub(crate) struct CancelReturnOrder {
    number: String,
}

impl CancelReturnOrder {
    pub(crate) fn parse(number: String, body: &Value) -> Result<Self, BodyError> {
        Object::root(body, &["reason"])?.optional_text("reason")?;
        Ok(CancelReturnOrder { number })
    }

    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        check_period(context)?;
        let order = stored_return_order(conn, &self.number).await?;
        Ok(Applied {
            kind: PostingKind::ReturnOrderCancellation,
            response: json!({ "number": self.number, "cancelled": true }),
            number: Some(self.number),
            rma: order.rma,
            status: axum::http::StatusCode::OK,
            out_of_order: false,
        })
    }
}

fn check_period(context: &Context<'_>) -> Result<(), Rejection> {
    if context.period_closed {
        Err(Rejection::new(
            RejectionCode::PeriodClosed,
            "the posting period is closed",
        ))
    } else {
        Ok(())
    }
}

/// The next number of `series`: `RO-000001`.
async fn number(conn: &mut SqliteConnection, series: &str) -> Result<String, SimError> {
    let n = db::next_number(conn, series).await?;
    Ok(format!("{series}-{n:06}"))
}

/// The stored return order `number`, or `unknown_return_order`.
async fn stored_return_order(
    conn: &mut SqliteConnection,
    number: &str,
) -> Result<ReturnOrder, ApplyError> {
    let Some(posting) = db::find_posting(conn, PostingKind::ReturnOrder, number).await? else {
        return Err(Rejection::new(
            RejectionCode::UnknownReturnOrder,
            format!("return order {number:?} does not exist"),
        )
        .into());
    };
    Ok(reparse(&posting, ReturnOrder::parse)?)
}

/// A stored body read back with the parser that accepted it.
fn reparse<T>(posting: &Posting, parse: fn(&Value) -> Result<T, BodyError>) -> Result<T, SimError> {
    parse(&posting.body).map_err(|e| {
        SimError::Corrupt(format!(
            "posting {} no longer parses: {}",
            posting.seq, e.message
        ))
    })
}

/// The ERP's books, folded from its postings. Served by `GET /erp/ledger`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Total credited per currency (decimal strings on the wire).
    pub credits: BTreeMap<String, Decimal>,
    /// Units put back on hand per SKU by `restock` and `refurbish`
    /// adjustments.
    pub inventory: BTreeMap<String, Decimal>,
    /// Documents per kind.
    pub counts: LedgerCounts,
}

/// How many documents of each kind the ERP holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    pub return_order: u64,
    pub inventory_adjustment: u64,
    pub credit_memo: u64,
    pub return_order_cancellation: u64,
    pub supplier_claim: u64,
    pub repair_order: u64,
    pub replacement_order: u64,
}

pub(crate) async fn ledger(db: &Db) -> Result<Ledger, SimError> {
    let postings = db
        .postings_of(&[
            PostingKind::ReturnOrder,
            PostingKind::InventoryAdjustment,
            PostingKind::CreditMemo,
            PostingKind::ReturnOrderCancellation,
            PostingKind::SupplierClaim,
            PostingKind::RepairOrder,
            PostingKind::ReplacementOrder,
        ])
        .await?;
    let mut ledger = Ledger::default();
    for posting in &postings {
        match posting.kind {
            PostingKind::ReturnOrder => ledger.counts.return_order += 1,
            PostingKind::InventoryAdjustment => {
                ledger.counts.inventory_adjustment += 1;
                let adjustment = reparse(posting, InventoryAdjustment::parse)?;
                for line in adjustment.lines.iter().filter(|l| l.adds_stock()) {
                    *ledger.inventory.entry(line.sku.clone()).or_default() += line.quantity;
                }
            }
            PostingKind::CreditMemo => {
                ledger.counts.credit_memo += 1;
                let memo = reparse(posting, CreditMemo::parse)?;
                *ledger.credits.entry(memo.currency).or_default() += memo.total;
            }
            PostingKind::ReturnOrderCancellation => {
                ledger.counts.return_order_cancellation += 1;
            }
            PostingKind::SupplierClaim => ledger.counts.supplier_claim += 1,
            PostingKind::RepairOrder => ledger.counts.repair_order += 1,
            PostingKind::ReplacementOrder => ledger.counts.replacement_order += 1,
            PostingKind::ExpectedReceipt
            | PostingKind::ReceiptCancellation
            | PostingKind::Label
            | PostingKind::LabelVoid
            | PostingKind::PortalStatus => {}
        }
    }
    Ok(ledger)
}

async fn post_return_order(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        ReturnOrder::parse(v).map(Command::ReturnOrder)
    })
    .await
}

async fn post_inventory_adjustment(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        InventoryAdjustment::parse(v).map(Command::InventoryAdjustment)
    })
    .await
}

async fn post_cancel_return_order(
    State(sim): State<Sim>,
    number: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(axum::extract::Path(number)) = number else {
        return axum::response::IntoResponse::into_response(Problem::new(
            Code::NotFound,
            format!("no route matches {}", uri.path()),
        ));
    };
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Optional, |v| {
        CancelReturnOrder::parse(number, v).map(Command::CancelReturnOrder)
    })
    .await
}

async fn post_credit_memo(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        CreditMemo::parse(v).map(Command::CreditMemo)
    })
    .await
}

async fn post_supplier_claim(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        UnitDocument::parse_supplier_claim(v).map(Command::UnitDocument)
    })
    .await
}

async fn post_repair_order(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        UnitDocument::parse_repair_order(v).map(Command::UnitDocument)
    })
    .await
}

async fn post_replacement_order(
    State(sim): State<Sim>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    pipeline::post(&sim, &headers, &uri, body, BodyRule::Required, |v| {
        UnitDocument::parse_replacement_order(v).map(Command::UnitDocument)
    })
    .await
}

/// `GET /erp/postings`: every document, in arrival order.
async fn postings(State(sim): State<Sim>) -> Result<Json<Vec<Posting>>, Problem> {
    Ok(Json(sim.postings().await?))
}

async fn get_ledger(State(sim): State<Sim>) -> Result<Json<Ledger>, Problem> {
    Ok(Json(sim.ledger().await?))
}

/// The body and answer of `/admin/erp/period`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Period {
    closed: bool,
}

async fn get_period(State(sim): State<Sim>) -> Json<Period> {
    Json(Period {
        closed: sim.period_closed(),
    })
}

/// Closes or reopens the posting period; in memory only, so a restarted
/// ERP starts from its config again.
async fn put_period(State(sim): State<Sim>, body: Bytes) -> Result<Json<Period>, Problem> {
    let period: Period = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            Code::InvalidBody,
            format!("expected {{\"closed\": true|false}}: {e}"),
        )
    })?;
    sim.set_period_closed(period.closed);
    Ok(Json(period))
}
