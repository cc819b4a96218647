//! Governed attributes: the facts about a return that one system is the
//! source of truth for (the ERP owns price and tax, the WMS the quantity
//! received and the condition, the portal the customer's intent). Which
//! system owns which attribute is configuration, checked at the edge by the
//! engine; the domain only says which attributes a command sets, records a
//! refused update, and applies an owner's correction.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::model::RequestedOutcome;
use crate::values::{LineNo, Money, ReasonCode};

/// An attribute of a return that has an owning system.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Net unit price of a line.
    Price,
    /// Unit tax of a line.
    Tax,
    /// Why the customer returns and what they want back (reason code,
    /// requested outcome).
    CustomerIntent,
    /// How many units arrived (warehouse receipts).
    QuantityReceived,
    /// The condition found at inspection.
    Condition,
    /// What happens to an inspected unit.
    Disposition,
}

impl Attribute {
    pub const ALL: [Attribute; 6] = [
        Attribute::Price,
        Attribute::Tax,
        Attribute::CustomerIntent,
        Attribute::QuantityReceived,
        Attribute::Condition,
        Attribute::Disposition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attribute::Price => "price",
            Attribute::Tax => "tax",
            Attribute::CustomerIntent => "customer_intent",
            Attribute::QuantityReceived => "quantity_received",
            Attribute::Condition => "condition",
            Attribute::Disposition => "disposition",
        }
    }

    pub fn parse(raw: &str) -> Option<Attribute> {
        Attribute::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// An owner's correction of one line after the request. Only the fields
/// given change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineCorrection {
    pub line_no: LineNo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_tax: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_outcome: Option<RequestedOutcome>,
}

impl LineCorrection {
    /// The governed attributes this correction sets.
    pub fn attributes(&self) -> Vec<Attribute> {
        let mut out = Vec::new();
        if self.unit_price.is_some() {
            out.push(Attribute::Price);
        }
        if self.unit_tax.is_some() {
            out.push(Attribute::Tax);
        }
        if self.reason_code.is_some() || self.requested_outcome.is_some() {
            out.push(Attribute::CustomerIntent);
        }
        out
    }
}

impl Command {
    /// The governed attributes a command sets on an existing return. Opening
    /// a return sets everything once and is not an update; feedback from
    /// connectors (labels, documents, settlements) sets none.
    pub fn attributes(&self) -> Vec<Attribute> {
        match self {
            Command::CorrectLine { correction, .. } => correction.attributes(),
            Command::RecordReceipt(_) => vec![Attribute::QuantityReceived],
            Command::RecordInspection { .. } => vec![Attribute::Condition],
            Command::RecordDisposition { .. } => vec![Attribute::Disposition],
            Command::Request { .. }
            | Command::Approve(_)
            | Command::HoldForReview { .. }
            | Command::Reject { .. }
            | Command::IssueLabel(_)
            | Command::RecordCarrierMilestone(_)
            | Command::LinkDocument(_)
            | Command::RecordSettlement(_)
            | Command::Close
            | Command::Cancel { .. }
            | Command::Expire
            | Command::RecordRefusedUpdate { .. } => Vec::new(),
        }
    }
}
