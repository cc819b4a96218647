//! Read models of a return, both pure functions of [`ReturnState`] and so
//! always rebuildable from the log:
//! - [`ReturnListItem`]: what an operator scans for in a list (where, whose
//!   move, how many units, how much money). The store keeps it as the list
//!   row of each return, a few hundred bytes.
//! - [`ReturnSummary`]: the list item plus lines, label, the carrier's
//!   latest milestone, documents and unexpected items; folded from the log
//!   on demand.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::eligibility::Assessment;
use crate::model::{CarrierMilestone, Channel, FinancialDocument, Label, UnexpectedItem};
use crate::state::{LineState, ReturnState, Stage, Status, Totals};
use crate::values::{ReturnId, Sku};

/// One row of a return list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnListItem {
    pub return_id: ReturnId,
    pub rma_number: String,
    pub status: Status,
    pub stage: Stage,
    /// Whose move it is: `customer`, `carrier`, `warehouse`, `finance`, `support`, `hub`, `none`.
    pub owner: String,
    /// Conditions for an operator: `unexpected_items`, `over_receipt`.
    pub flags: Vec<String>,
    pub channel: Channel,
    pub customer: String,
    pub order_ref: String,
    pub currency: String,
    pub site: String,
    pub totals: Totals,
    pub requested_at: DateTime<Utc>,
}

/// Everything about one return: its list item (flattened into the same JSON
/// object) and the details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnSummary {
    #[serde(flatten)]
    pub item: ReturnListItem,
    pub lines: Vec<LineState>,
    /// What the customer paid (price plus tax) for the units received so far.
    #[schemars(with = "String")]
    pub paid_for_received: Decimal,
    pub label: Option<Label>,
    /// The latest carrier milestone by the carrier's own time. Scans arrive
    /// late and out of order; a late one is recorded in the log but never
    /// moves this back. Absent until the carrier reported anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
    pub documents: Vec<FinancialDocument>,
    pub unexpected: Vec<UnexpectedItem>,
    /// Why it was held, rejected or cancelled.
    pub reason: Option<String>,
    /// The eligibility policy's decision and, rule by rule, why; absent
    /// when a partner decided without the hub's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility: Option<Assessment>,
}

/// Where the parcel is, by the carrier's latest milestone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tracking {
    pub milestone: CarrierMilestone,
    /// When the carrier says it happened.
    pub occurred_at: DateTime<Utc>,
}

impl ReturnListItem {
    /// Builds the list item; `None` if the return does not exist.
    pub fn from_state(state: &ReturnState) -> Option<Self> {
        let header = state.header.as_ref()?;
        let stage = state.stage();
        Some(Self {
            return_id: header.return_id,
            rma_number: header.rma_number.clone(),
            status: state.status(),
            stage,
            owner: stage.owner().to_owned(),
            flags: state.flags().into_iter().map(str::to_owned).collect(),
            channel: header.request.channel,
            customer: header.request.customer.to_string(),
            order_ref: header.request.order_ref.to_string(),
            currency: header.request.currency.to_string(),
            site: header.request.site.to_string(),
            totals: state.totals(),
            requested_at: header.requested_at,
        })
    }
}

impl ReturnSummary {
    /// Builds the summary; `None` if the return does not exist.
    pub fn from_state(state: &ReturnState) -> Option<Self> {
        Some(Self {
            item: ReturnListItem::from_state(state)?,
            lines: state.lines.values().cloned().collect(),
            paid_for_received: state
                .lines
                .values()
                .map(|l| l.received.get() * l.line.unit_paid())
                .sum(),
            label: state.label.clone(),
            tracking: state
                .last_milestone
                .map(|(milestone, occurred_at)| Tracking {
                    milestone,
                    occurred_at,
                }),
            documents: state.documents.clone(),
            unexpected: state.unexpected.clone(),
            reason: state.reason.clone(),
            eligibility: state.assessment.clone(),
        })
    }

    /// Distinct SKUs on the return, for filtering.
    pub fn skus(&self) -> Vec<Sku> {
        let mut skus: Vec<Sku> = self.lines.iter().map(|l| l.line.sku.clone()).collect();
        skus.sort();
        skus.dedup();
        skus
    }
}
