//! The return summary: the read model served by the API and stored by the
//! store beside the stream head. A pure function of [`ReturnState`], so it
//! can always be rebuilt from the log.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Channel, FinancialDocument, Label, UnexpectedItem};
use crate::state::{LineState, ReturnState, Stage, Status, Totals};
use crate::values::{ReturnId, Sku};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnSummary {
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
    pub lines: Vec<LineState>,
    pub totals: Totals,
    /// Total that may still be credited for units settled so far plus units
    /// awaiting settlement.
    #[schemars(with = "String")]
    pub paid_for_received: Decimal,
    pub label: Option<Label>,
    pub documents: Vec<FinancialDocument>,
    pub unexpected: Vec<UnexpectedItem>,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
}

impl ReturnSummary {
    /// Builds the summary; `None` if the return does not exist.
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
            lines: state.lines.values().cloned().collect(),
            totals: state.totals(),
            paid_for_received: state
                .lines
                .values()
                .map(|l| l.received.get() * l.line.unit_paid())
                .sum(),
            label: state.label.clone(),
            documents: state.documents.clone(),
            unexpected: state.unexpected.clone(),
            reason: state.reason.clone(),
            requested_at: header.requested_at,
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

/// One row of a return list: what an operator scans for (where, whose move,
/// how many units and how much money), without lines, label or documents.
/// This is what the store keeps per return, so every command rewrites only
/// a few hundred bytes; the full [`ReturnSummary`] is folded from the log on
/// demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnListItem {
    pub return_id: ReturnId,
    pub rma_number: String,
    pub status: Status,
    pub stage: Stage,
    pub owner: String,
    pub flags: Vec<String>,
    pub channel: Channel,
    pub customer: String,
    pub order_ref: String,
    pub currency: String,
    pub site: String,
    pub totals: Totals,
    pub requested_at: DateTime<Utc>,
}

impl ReturnListItem {
    pub fn of(summary: &ReturnSummary) -> Self {
        Self {
            return_id: summary.return_id,
            rma_number: summary.rma_number.clone(),
            status: summary.status,
            stage: summary.stage,
            owner: summary.owner.clone(),
            flags: summary.flags.clone(),
            channel: summary.channel,
            customer: summary.customer.clone(),
            order_ref: summary.order_ref.clone(),
            currency: summary.currency.clone(),
            site: summary.site.clone(),
            totals: summary.totals,
            requested_at: summary.requested_at,
        }
    }
}
