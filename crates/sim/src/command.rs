//! [`Command`]: one variant per POST that creates something, each parsed
//! from its body by its system's module and applied there. The pipeline
//! treats them all alike; the match below is the one place that knows
//! every kind, so a new endpoint cannot be half wired.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::SqliteConnection;

use crate::carrier::{LabelRequest, VoidLabel};
use crate::config::SimConfig;
use crate::db::PostingKind;
use crate::erp::{CancelReturnOrder, CreditMemo, InventoryAdjustment, ReturnOrder, UnitDocument};
use crate::error::{Rejection, SimError};
use crate::portal::StatusUpdate;
use crate::wms::{CancelReceipt, ExpectedReceipt};

/// A parsed request to create something.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    ReturnOrder(ReturnOrder),
    InventoryAdjustment(InventoryAdjustment),
    CreditMemo(CreditMemo),
    CancelReturnOrder(CancelReturnOrder),
    /// A supplier claim, repair order or replacement order.
    UnitDocument(UnitDocument),
    ExpectedReceipt(ExpectedReceipt),
    CancelReceipt(CancelReceipt),
    Label(LabelRequest),
    VoidLabel(VoidLabel),
    PortalStatus(StatusUpdate),
}

/// What a command sees besides the database.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The simulator's clock when the request was admitted.
    pub(crate) now: DateTime<Utc>,
    pub(crate) config: &'a SimConfig,
    /// The ERP's posting period, as set at start or by
    /// `PUT /admin/erp/period`.
    pub(crate) period_closed: bool,
}

/// The posting a command produced and the answer to give.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) kind: PostingKind,
    pub(crate) number: Option<String>,
    pub(crate) rma: String,
    pub(crate) status: StatusCode,
    pub(crate) response: Value,
    /// Portal only: the update is older than one already received.
    pub(crate) out_of_order: bool,
}

impl Applied {
    /// A created document with its number.
    pub(crate) fn created(kind: PostingKind, number: String, rma: String, response: Value) -> Self {
        Applied {
            kind,
            number: Some(number),
            rma,
            status: StatusCode::CREATED,
            response,
            out_of_order: false,
        }
    }
}

/// Why a command was not applied.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// A business rule refused it (422).
    Rejected(Rejection),
    Store(SimError),
}

impl From<Rejection> for ApplyError {
    fn from(rejection: Rejection) -> Self {
        ApplyError::Rejected(rejection)
    }
}

impl From<SimError> for ApplyError {
    fn from(error: SimError) -> Self {
        ApplyError::Store(error)
    }
}

impl Command {
    /// Checks the business rules against the state in `conn` (inside the
    /// write transaction) and allocates the document's number. Writes
    /// nothing but the number sequence; the pipeline writes the posting.
    pub(crate) async fn apply(
        self,
        conn: &mut SqliteConnection,
        context: &Context<'_>,
    ) -> Result<Applied, ApplyError> {
        match self {
            Command::ReturnOrder(c) => c.apply(conn, context).await,
            Command::InventoryAdjustment(c) => c.apply(conn, context).await,
            Command::CreditMemo(c) => c.apply(conn, context).await,
            Command::CancelReturnOrder(c) => c.apply(conn, context).await,
            Command::UnitDocument(c) => c.apply(conn, context).await,
            Command::ExpectedReceipt(c) => c.apply(conn, context).await,
            Command::CancelReceipt(c) => c.apply(conn).await,
            Command::Label(c) => c.apply(conn, context).await,
            Command::VoidLabel(c) => c.apply(conn).await,
            Command::PortalStatus(c) => c.apply(conn).await,
        }
    }
}
