//! Commands: what a partner system or operator asks the hub to do to one
//! return. A command is a request, not a fact; [`crate::decide`] turns it into
//! events or a [`crate::Rejection`].

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::eligibility::Assessment;
use crate::model::{
    CarrierMilestone, DispositionLine, FinancialDocument, Inspection, Label, LineQuantity,
    ReceiptLine, ReturnRequest, SettlementLine,
};
use crate::ownership::{Attribute, LineCorrection};
use crate::values::{ExternalRef, ReturnId};

/// Every command the lifecycle understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Open a new return. `return_id` is assigned by the hub. With an
    /// `assessment` (the hub's eligibility policy decided at the edge, from
    /// master data), the return is approved, held or rejected in the same
    /// step, and the explanation is recorded with it.
    Request {
        return_id: ReturnId,
        request: ReturnRequest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assessment: Option<Assessment>,
    },
    /// Authorise the return; `lines` may authorise less than requested (a line
    /// left out is authorised in full).
    Approve(Approve),
    /// Park the request for a person to decide.
    HoldForReview {
        reason: String,
    },
    Reject {
        reason: String,
    },
    IssueLabel(Label),
    RecordCarrierMilestone(CarrierEvent),
    RecordReceipt(Receipt),
    RecordInspection {
        inspections: Vec<Inspection>,
    },
    RecordDisposition {
        dispositions: Vec<DispositionLine>,
    },
    LinkDocument(FinancialDocument),
    RecordSettlement(Settlement),
    Close,
    Cancel {
        reason: String,
    },
    /// Expire an authorisation or label whose time has passed. The hub's
    /// scheduler sends it; `decide` checks the time against its clock.
    Expire,
    /// The owning system corrects a governed attribute of a line (price,
    /// tax, customer intent). `system` is who sent it, set by the hub from
    /// the sender's credentials, never from the body.
    CorrectLine {
        system: String,
        correction: LineCorrection,
    },
    /// Records that `system` tried to set attributes it does not own. Sent
    /// by the engine only (no route accepts it), so the refusal is in the
    /// return's history.
    RecordRefusedUpdate {
        system: String,
        refused: String,
        attributes: Vec<Attribute>,
    },
}

impl Command {
    /// Stable name, used in rejections and telemetry.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Request { .. } => "request",
            Command::Approve(_) => "approve",
            Command::HoldForReview { .. } => "hold_for_review",
            Command::Reject { .. } => "reject",
            Command::IssueLabel(_) => "issue_label",
            Command::RecordCarrierMilestone(_) => "record_carrier_milestone",
            Command::RecordReceipt(_) => "record_receipt",
            Command::RecordInspection { .. } => "record_inspection",
            Command::RecordDisposition { .. } => "record_disposition",
            Command::LinkDocument(_) => "link_document",
            Command::RecordSettlement(_) => "record_settlement",
            Command::Close => "close",
            Command::Cancel { .. } => "cancel",
            Command::Expire => "expire",
            Command::CorrectLine { .. } => "correct_line",
            Command::RecordRefusedUpdate { .. } => "record_refused_update",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    #[serde(default)]
    pub lines: Vec<LineQuantity>,
    /// The customer must ship before this instant, or the return expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierEvent {
    pub milestone: CarrierMilestone,
    /// When the carrier says it happened (may be earlier than events already
    /// recorded: scans arrive out of order).
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The WMS's id of this receipt; a receipt is applied once.
    pub receipt_ref: ExternalRef,
    pub lines: Vec<ReceiptLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// The finance system's id of this settlement; applied once.
    pub settlement_ref: ExternalRef,
    pub lines: Vec<SettlementLine>,
    /// Documents that carry the settlement (credit memo, refund…).
    #[serde(default)]
    pub documents: Vec<FinancialDocument>,
}
