//! The state of one return, folded from its events by [`evolve`], and what
//! is derived from it: status, stage (where it is blocked) and owner (whose
//! move it is). Also the lifecycle invariants, checked by property tests.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::eligibility::Assessment;
use crate::event::Event;
use crate::model::{
    CarrierMilestone, Disposition, FinancialDocument, Label, ReturnLine, ReturnRequest,
    UnexpectedItem,
};
use crate::values::{ConditionCode, LineNo, Quantity, ReturnId};

/// Lifecycle status of a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Requested,
    PendingReview,
    Approved,
    Rejected,
    LabelIssued,
    InTransit,
    PartiallyReceived,
    Received,
    Inspected,
    Dispositioned,
    Settled,
    Closed,
    Cancelled,
    Expired,
}

impl Status {
    pub const ALL: [Status; 14] = [
        Status::Requested,
        Status::PendingReview,
        Status::Approved,
        Status::Rejected,
        Status::LabelIssued,
        Status::InTransit,
        Status::PartiallyReceived,
        Status::Received,
        Status::Inspected,
        Status::Dispositioned,
        Status::Settled,
        Status::Closed,
        Status::Cancelled,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::PendingReview => "pending_review",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::LabelIssued => "label_issued",
            Status::InTransit => "in_transit",
            Status::PartiallyReceived => "partially_received",
            Status::Received => "received",
            Status::Inspected => "inspected",
            Status::Dispositioned => "dispositioned",
            Status::Settled => "settled",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// No command but reads applies to a return in a terminal status.
    pub fn is_terminal(self) -> bool {
        match self {
            Status::Rejected | Status::Closed | Status::Cancelled | Status::Expired => true,
            Status::Requested
            | Status::PendingReview
            | Status::Approved
            | Status::LabelIssued
            | Status::InTransit
            | Status::PartiallyReceived
            | Status::Received
            | Status::Inspected
            | Status::Dispositioned
            | Status::Settled => false,
        }
    }
}

/// Where a return waits, and whose move it is. This answers the operations
/// question "where is this return blocked?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    AwaitingDecision,
    ManualReview,
    AwaitingLabel,
    AwaitingShipment,
    InTransit,
    AwaitingInspection,
    AwaitingDisposition,
    AwaitingSettlement,
    AwaitingRemainingUnits,
    ReadyToClose,
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AwaitingDecision => "awaiting_decision",
            Stage::ManualReview => "manual_review",
            Stage::AwaitingLabel => "awaiting_label",
            Stage::AwaitingShipment => "awaiting_shipment",
            Stage::InTransit => "in_transit",
            Stage::AwaitingInspection => "awaiting_inspection",
            Stage::AwaitingDisposition => "awaiting_disposition",
            Stage::AwaitingSettlement => "awaiting_settlement",
            Stage::AwaitingRemainingUnits => "awaiting_remaining_units",
            Stage::ReadyToClose => "ready_to_close",
            Stage::Done => "done",
        }
    }

    /// The party expected to act next.
    pub fn owner(self) -> &'static str {
        match self {
            Stage::AwaitingDecision => "hub",
            Stage::ManualReview => "support",
            Stage::AwaitingLabel => "carrier",
            Stage::AwaitingShipment => "customer",
            Stage::InTransit => "carrier",
            Stage::AwaitingInspection | Stage::AwaitingDisposition => "warehouse",
            Stage::AwaitingSettlement => "finance",
            Stage::AwaitingRemainingUnits => "customer",
            Stage::ReadyToClose => "hub",
            Stage::Done => "none",
        }
    }
}

/// Quantities of one line through the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineState {
    pub line: ReturnLine,
    pub authorized: Quantity,
    /// Units the carrier has picked up (the authorised quantity once the
    /// parcel is scanned in transit; the carrier does not count units).
    pub shipped: Quantity,
    pub received: Quantity,
    /// Part of `received` beyond `authorized`.
    pub over_received: Quantity,
    pub inspected: Quantity,
    /// Inspected units per condition code.
    pub conditions: BTreeMap<ConditionCode, Quantity>,
    pub dispositioned: BTreeMap<Disposition, Quantity>,
    pub settled: Quantity,
    /// Units whose credit is due: set to the dispositioned units each time
    /// every received unit of the return has its final disposition. The
    /// credit memo the hub asks the ERP for covers the units this adds, so
    /// a unit is never put on two memos, even while an earlier memo's
    /// answer has not come back yet.
    #[serde(default)]
    pub credit_due: Quantity,
    /// Restocking fees of the dispositioned units (fee per unit × units).
    #[serde(default)]
    #[schemars(with = "String")]
    pub fees: Decimal,
    /// The part of `fees` that belongs to the units in `credit_due`, taken
    /// at the same moment, so each memo keeps exactly the fees of its units.
    #[serde(default)]
    #[schemars(with = "String")]
    pub fees_due: Decimal,
    /// The part of `credit_due` dispositioned as replacements: the new
    /// goods are their settlement, so they are credited nothing whatever
    /// the customer asked for. Taken at the same moment as `credit_due`.
    #[serde(default)]
    pub replaced_due: Quantity,
    /// Money credited or refunded for this line so far.
    #[schemars(with = "String")]
    pub credited: Decimal,
}

impl LineState {
    fn new(line: ReturnLine) -> Self {
        Self {
            authorized: Quantity::ZERO,
            shipped: Quantity::ZERO,
            received: Quantity::ZERO,
            over_received: Quantity::ZERO,
            inspected: Quantity::ZERO,
            conditions: BTreeMap::new(),
            dispositioned: BTreeMap::new(),
            settled: Quantity::ZERO,
            credit_due: Quantity::ZERO,
            fees: Decimal::ZERO,
            fees_due: Decimal::ZERO,
            replaced_due: Quantity::ZERO,
            credited: Decimal::ZERO,
            line,
        }
    }

    pub fn dispositioned_total(&self) -> Quantity {
        self.dispositioned.values().copied().sum()
    }

    pub fn awaiting_inspection(&self) -> Quantity {
        self.received.saturating_minus(self.inspected)
    }

    pub fn awaiting_disposition(&self) -> Quantity {
        self.inspected.saturating_minus(self.dispositioned_total())
    }

    pub fn awaiting_settlement(&self) -> Quantity {
        self.dispositioned_total().saturating_minus(self.settled)
    }

    /// The most that may be credited for the settled units.
    pub fn creditable(&self, settled: Quantity) -> Decimal {
        settled.get() * self.line.unit_paid()
    }
}

/// Everything the lifecycle knows about one return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnState {
    /// `None` until the return was requested: the stream does not exist yet.
    pub header: Option<Header>,
    pub lines: BTreeMap<LineNo, LineState>,
    pub label: Option<Label>,
    /// Latest carrier milestone by the carrier's time, and when it happened.
    pub last_milestone: Option<(CarrierMilestone, DateTime<Utc>)>,
    /// Every scan recorded (milestone and the carrier's time): a scan sent
    /// again, however old and under whatever message id, is a duplicate.
    pub milestones: BTreeSet<(CarrierMilestone, DateTime<Utc>)>,
    pub receipts: BTreeSet<String>,
    pub settlements: BTreeSet<String>,
    pub documents: Vec<FinancialDocument>,
    pub unexpected: Vec<UnexpectedItem>,
    pub approved: bool,
    pub pending_review: bool,
    pub authorization_expires_at: Option<DateTime<Utc>>,
    pub terminal: Option<Terminal>,
    /// Why it was held, rejected or cancelled.
    pub reason: Option<String>,
    /// The eligibility policy's explained decision, when the hub's policy
    /// assessed the request (a partner may also approve directly).
    pub assessment: Option<Assessment>,
}

/// The request as it was made, without its lines (those live in `lines`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    pub return_id: ReturnId,
    pub rma_number: String,
    pub request: ReturnRequest,
    pub requested_at: DateTime<Utc>,
}

/// How a return ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Terminal {
    Rejected,
    Closed,
    Cancelled,
    Expired,
}

/// Applies one event to the state. Total: an event is a fact, so `evolve`
/// never fails; `decide` is where facts are checked before they exist.
pub fn evolve(state: &mut ReturnState, event: &Event) {
    match event {
        Event::ReturnRequested {
            return_id,
            rma_number,
            request,
            requested_at,
        } => {
            state.lines = request
                .lines
                .iter()
                .map(|l| (l.line_no, LineState::new(l.clone())))
                .collect();
            state.header = Some(Header {
                return_id: *return_id,
                rma_number: rma_number.clone(),
                request: request.clone(),
                requested_at: *requested_at,
            });
        }
        Event::EligibilityAssessed { assessment, .. } => {
            state.assessment = Some(assessment.clone());
        }
        Event::ReturnHeldForReview { reason } => {
            state.pending_review = true;
            state.reason = Some(reason.clone());
        }
        Event::ReturnApproved {
            authorized,
            expires_at,
            ..
        } => {
            for lq in authorized {
                if let Some(line) = state.lines.get_mut(&lq.line_no) {
                    line.authorized = lq.quantity;
                }
            }
            state.approved = true;
            state.pending_review = false;
            state.authorization_expires_at = *expires_at;
        }
        Event::ReturnRejected { reason, .. } => {
            state.terminal = Some(Terminal::Rejected);
            state.reason = Some(reason.clone());
        }
        Event::LabelIssued { label, .. } => state.label = Some(label.clone()),
        Event::CarrierMilestoneRecorded { event, .. } => {
            // Scans arrive out of order: only a later scan moves the latest
            // milestone, so a late `in_transit` never regresses `delivered`.
            let newer = state
                .last_milestone
                .is_none_or(|(_, at)| event.occurred_at >= at);
            if newer {
                state.last_milestone = Some((event.milestone, event.occurred_at));
            }
            state
                .milestones
                .insert((event.milestone, event.occurred_at));
            if is_moving(event.milestone) {
                for line in state.lines.values_mut() {
                    if line.shipped < line.authorized {
                        line.shipped = line.authorized;
                    }
                }
            }
        }
        Event::UnitsReceived {
            receipt_ref,
            lines,
            unexpected,
            ..
        } => {
            state.receipts.insert(receipt_ref.to_string());
            for r in lines {
                if let Some(line) = state.lines.get_mut(&r.line_no) {
                    line.received = line.received.plus(r.quantity);
                    line.over_received = line.over_received.plus(r.over_received);
                    if line.shipped < line.received {
                        line.shipped = line.received;
                    }
                }
            }
            state.unexpected.extend(unexpected.iter().cloned());
        }
        Event::UnitsInspected { inspections, .. } => {
            for i in inspections {
                if let Some(line) = state.lines.get_mut(&i.line_no) {
                    line.inspected = line.inspected.plus(i.quantity);
                    let c = line.conditions.entry(i.condition.clone()).or_default();
                    *c = c.plus(i.quantity);
                }
            }
        }
        Event::UnitsDispositioned { dispositions, .. } => {
            for d in dispositions {
                if let Some(line) = state.lines.get_mut(&d.line_no) {
                    let q = line.dispositioned.entry(d.disposition).or_default();
                    *q = q.plus(d.quantity);
                    if let Some(fee) = &d.restocking_fee {
                        line.fees += fee.amount() * d.quantity.get();
                    }
                }
            }
            let disposition_final = state
                .lines
                .values()
                .all(|l| l.awaiting_inspection().is_zero() && l.awaiting_disposition().is_zero());
            if disposition_final {
                for line in state.lines.values_mut() {
                    line.credit_due = line.dispositioned_total();
                    line.fees_due = line.fees;
                    line.replaced_due = line
                        .dispositioned
                        .get(&Disposition::Replacement)
                        .copied()
                        .unwrap_or(Quantity::ZERO);
                }
            }
        }
        Event::DocumentLinked { document, .. } => state.documents.push(document.clone()),
        Event::UnitsSettled {
            settlement_ref,
            lines,
            ..
        } => {
            state.settlements.insert(settlement_ref.to_string());
            for s in lines {
                if let Some(line) = state.lines.get_mut(&s.line_no) {
                    line.settled = line.settled.plus(s.quantity);
                    line.credited += s.amount.amount();
                }
            }
        }
        Event::ReturnClosed { .. } => state.terminal = Some(Terminal::Closed),
        Event::LineCorrected { correction, .. } => {
            if let Some(line) = state.lines.get_mut(&correction.line_no) {
                let l = &mut line.line;
                if let Some(price) = correction.unit_price {
                    l.unit_price = price;
                }
                if let Some(tax) = correction.unit_tax {
                    l.unit_tax = tax;
                }
                if let Some(reason) = &correction.reason_code {
                    l.reason_code = reason.clone();
                }
                if let Some(outcome) = correction.requested_outcome {
                    l.requested_outcome = outcome;
                }
            }
        }
        // A refusal is history, not state.
        Event::UpdateRefused { .. } => {}
        Event::ReturnCancelled { reason, .. } => {
            state.terminal = Some(Terminal::Cancelled);
            state.reason = Some(reason.clone());
        }
        Event::ReturnExpired { .. } => state.terminal = Some(Terminal::Expired),
    }
}

/// Milestones that mean the parcel is with the carrier.
pub(crate) fn is_moving(m: CarrierMilestone) -> bool {
    match m {
        CarrierMilestone::InTransit
        | CarrierMilestone::OutForDelivery
        | CarrierMilestone::AvailableForPickup
        | CarrierMilestone::Delivered => true,
        CarrierMilestone::PreTransit
        | CarrierMilestone::ReturnToSender
        | CarrierMilestone::Failure
        | CarrierMilestone::Exception => false,
    }
}

/// Totals over all lines, used for status, summaries and reconciliation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub requested: Quantity,
    pub authorized: Quantity,
    pub received: Quantity,
    pub over_received: Quantity,
    pub inspected: Quantity,
    pub dispositioned: Quantity,
    pub settled: Quantity,
    pub unexpected: Quantity,
    #[schemars(with = "String")]
    pub credited: Decimal,
}

impl ReturnState {
    pub fn exists(&self) -> bool {
        self.header.is_some()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for l in self.lines.values() {
            t.requested = t.requested.plus(l.line.quantity);
            t.authorized = t.authorized.plus(l.authorized);
            t.received = t.received.plus(l.received);
            t.over_received = t.over_received.plus(l.over_received);
            t.inspected = t.inspected.plus(l.inspected);
            t.dispositioned = t.dispositioned.plus(l.dispositioned_total());
            t.settled = t.settled.plus(l.settled);
            t.credited += l.credited;
        }
        t.unexpected = self.unexpected.iter().map(|u| u.quantity).sum();
        t
    }

    /// The lifecycle status, derived from the facts rather than stored, so it
    /// can never disagree with the quantities.
    pub fn status(&self) -> Status {
        match self.terminal {
            Some(Terminal::Rejected) => return Status::Rejected,
            Some(Terminal::Closed) => return Status::Closed,
            Some(Terminal::Cancelled) => return Status::Cancelled,
            Some(Terminal::Expired) => return Status::Expired,
            None => {}
        }
        let t = self.totals();
        if t.received.is_zero() {
            return if !self.approved {
                if self.pending_review {
                    Status::PendingReview
                } else {
                    Status::Requested
                }
            } else if self.with_carrier() {
                Status::InTransit
            } else if self.label.is_some() {
                Status::LabelIssued
            } else {
                Status::Approved
            };
        }
        if t.settled == t.received {
            Status::Settled
        } else if t.dispositioned == t.received {
            Status::Dispositioned
        } else if t.inspected == t.received {
            Status::Inspected
        } else if t.received < t.authorized {
            Status::PartiallyReceived
        } else {
            Status::Received
        }
    }

    /// Whether the carrier has the parcel, by the latest scan. Once the
    /// parcel was picked up, a pre-transit, failure or exception scan (a
    /// delay, a damaged box, a carrier re-labelling it) does not give it
    /// back: only a return to sender does. Otherwise such a scan would send
    /// the return back to "awaiting shipment" and let it expire while the
    /// goods are on their way.
    pub(crate) fn with_carrier(&self) -> bool {
        let Some((milestone, _)) = self.last_milestone else {
            return false;
        };
        match milestone {
            CarrierMilestone::InTransit
            | CarrierMilestone::OutForDelivery
            | CarrierMilestone::AvailableForPickup
            | CarrierMilestone::Delivered => true,
            CarrierMilestone::PreTransit
            | CarrierMilestone::Failure
            | CarrierMilestone::Exception => self.lines.values().any(|l| !l.shipped.is_zero()),
            CarrierMilestone::ReturnToSender => false,
        }
    }

    /// Where the return waits and so whose move it is.
    pub fn stage(&self) -> Stage {
        match self.status() {
            Status::Rejected | Status::Closed | Status::Cancelled | Status::Expired => Stage::Done,
            Status::Requested => Stage::AwaitingDecision,
            Status::PendingReview => Stage::ManualReview,
            Status::Approved => Stage::AwaitingLabel,
            Status::LabelIssued => Stage::AwaitingShipment,
            Status::InTransit => Stage::InTransit,
            Status::PartiallyReceived
            | Status::Received
            | Status::Inspected
            | Status::Dispositioned
            | Status::Settled => {
                let lines = self.lines.values();
                if lines.clone().any(|l| !l.awaiting_inspection().is_zero()) {
                    Stage::AwaitingInspection
                } else if lines.clone().any(|l| !l.awaiting_disposition().is_zero()) {
                    Stage::AwaitingDisposition
                } else if lines.clone().any(|l| !l.awaiting_settlement().is_zero()) {
                    Stage::AwaitingSettlement
                } else if lines.clone().any(|l| l.received < l.authorized) {
                    Stage::AwaitingRemainingUnits
                } else {
                    Stage::ReadyToClose
                }
            }
        }
    }

    /// Conditions an operator should look at, whatever the stage.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if !self.unexpected.is_empty() {
            flags.push("unexpected_items");
        }
        if self.lines.values().any(|l| !l.over_received.is_zero()) {
            flags.push("over_receipt");
        }
        flags
    }

    /// Checks the lifecycle invariants; returns the first broken one. Used by
    /// property tests, and by the engine before every append (a broken invariant
    /// refuses the command instead of storing it).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (no, l) in &self.lines {
            // Units are conserved: every received unit is awaiting inspection,
            // awaiting disposition, or has exactly one disposition.
            if l.inspected > l.received {
                return Err(format!(
                    "line {no}: inspected {} > received {}",
                    l.inspected, l.received
                ));
            }
            let disp = l.dispositioned_total();
            if disp > l.inspected {
                return Err(format!(
                    "line {no}: dispositioned {disp} > inspected {}",
                    l.inspected
                ));
            }
            let conserved = l
                .awaiting_inspection()
                .plus(l.awaiting_disposition())
                .plus(disp);
            if conserved != l.received {
                return Err(format!(
                    "line {no}: units not conserved: {conserved} != {}",
                    l.received
                ));
            }
            let by_condition: Quantity = l.conditions.values().copied().sum();
            if by_condition != l.inspected {
                return Err(format!(
                    "line {no}: conditions {by_condition} != inspected {}",
                    l.inspected
                ));
            }
            // Nothing is settled before its disposition.
            if l.settled > disp {
                return Err(format!(
                    "line {no}: settled {} > dispositioned {disp}",
                    l.settled
                ));
            }
            // Credit never exceeds what was paid for the settled units.
            if l.credited > l.creditable(l.settled) {
                return Err(format!(
                    "line {no}: credited {} > paid {} for {} settled units",
                    l.credited,
                    l.creditable(l.settled),
                    l.settled
                ));
            }
            if l.credited.is_sign_negative() && !l.credited.is_zero() {
                return Err(format!("line {no}: negative credit {}", l.credited));
            }
            // Over-receipt is flagged exactly: what arrived beyond the authorisation.
            if l.over_received != l.received.saturating_minus(l.authorized) {
                return Err(format!(
                    "line {no}: over-receipt {} != received {} - authorised {}",
                    l.over_received, l.received, l.authorized
                ));
            }
        }
        Ok(())
    }
}
