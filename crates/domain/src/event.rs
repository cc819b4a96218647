//! Events: facts about a return, in the order they happened. The event log is
//! the source of truth; every read model is a fold of [`crate::evolve`] over
//! it. Serialized events are a compatibility promise: never change a variant's
//! meaning, add a new one instead.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::command::CarrierEvent;
use crate::eligibility::Assessment;
use crate::model::{
    DispositionLine, FinancialDocument, Inspection, Label, LineQuantity, ReceivedUnits,
    ReturnRequest, SettlementLine, UnexpectedItem,
};
use crate::ownership::{Attribute, LineCorrection};
use crate::values::{ExternalRef, ReturnId};

/// Version of the event payload schema written today.
pub const EVENT_SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Event {
    ReturnRequested {
        return_id: ReturnId,
        rma_number: String,
        request: ReturnRequest,
        requested_at: DateTime<Utc>,
    },
    /// The eligibility policy's explained decision on the request; the
    /// approval, hold or rejection it led to follows as its own event.
    EligibilityAssessed {
        assessment: Assessment,
        assessed_at: DateTime<Utc>,
    },
    ReturnHeldForReview {
        reason: String,
    },
    ReturnApproved {
        /// Authorised quantity of every line.
        authorized: Vec<LineQuantity>,
        expires_at: Option<DateTime<Utc>>,
        approved_at: DateTime<Utc>,
    },
    ReturnRejected {
        reason: String,
        rejected_at: DateTime<Utc>,
    },
    LabelIssued {
        label: Label,
        issued_at: DateTime<Utc>,
    },
    CarrierMilestoneRecorded {
        event: CarrierEvent,
        recorded_at: DateTime<Utc>,
    },
    UnitsReceived {
        receipt_ref: ExternalRef,
        lines: Vec<ReceivedUnits>,
        unexpected: Vec<UnexpectedItem>,
        received_at: DateTime<Utc>,
    },
    UnitsInspected {
        inspections: Vec<Inspection>,
        inspected_at: DateTime<Utc>,
    },
    UnitsDispositioned {
        dispositions: Vec<DispositionLine>,
        dispositioned_at: DateTime<Utc>,
    },
    DocumentLinked {
        document: FinancialDocument,
        linked_at: DateTime<Utc>,
    },
    UnitsSettled {
        settlement_ref: ExternalRef,
        lines: Vec<SettlementLine>,
        settled_at: DateTime<Utc>,
    },
    ReturnClosed {
        closed_at: DateTime<Utc>,
    },
    ReturnCancelled {
        reason: String,
        /// True when a label had been issued and must now be voided.
        label_voided: bool,
        cancelled_at: DateTime<Utc>,
    },
    ReturnExpired {
        expired_at: DateTime<Utc>,
    },
    /// The owning system corrected a line; later documents use the new values.
    LineCorrected {
        system: String,
        correction: LineCorrection,
        corrected_at: DateTime<Utc>,
    },
    /// A system tried to set attributes it does not own; nothing changed.
    UpdateRefused {
        system: String,
        command: String,
        attributes: Vec<Attribute>,
        refused_at: DateTime<Utc>,
    },
}

impl Event {
    /// Stable type name, stored beside the payload.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::ReturnRequested { .. } => "ReturnRequested",
            Event::EligibilityAssessed { .. } => "EligibilityAssessed",
            Event::ReturnHeldForReview { .. } => "ReturnHeldForReview",
            Event::ReturnApproved { .. } => "ReturnApproved",
            Event::ReturnRejected { .. } => "ReturnRejected",
            Event::LabelIssued { .. } => "LabelIssued",
            Event::CarrierMilestoneRecorded { .. } => "CarrierMilestoneRecorded",
            Event::UnitsReceived { .. } => "UnitsReceived",
            Event::UnitsInspected { .. } => "UnitsInspected",
            Event::UnitsDispositioned { .. } => "UnitsDispositioned",
            Event::DocumentLinked { .. } => "DocumentLinked",
            Event::UnitsSettled { .. } => "UnitsSettled",
            Event::ReturnClosed { .. } => "ReturnClosed",
            Event::ReturnCancelled { .. } => "ReturnCancelled",
            Event::ReturnExpired { .. } => "ReturnExpired",
            Event::LineCorrected { .. } => "LineCorrected",
            Event::UpdateRefused { .. } => "UpdateRefused",
        }
    }
}
