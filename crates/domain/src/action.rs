//! Actions: the outbound work a command's events call for (create the
//! expected receipt in the WMS, the return order in the ERP, request a label,
//! post a credit memo, publish the status), and how each action's result
//! comes back as a command. Pure like the rest of the domain: the engine
//! writes the actions into the outbox in the same transaction as the events,
//! the dispatcher delivers them, and [`feedback`] turns the answer of the
//! target system into the next command.
//!
//! What does not live here: wire formats (connectors), retries and
//! throttling (the dispatcher), which systems are connected (the engine's
//! configuration filters actions by [`Target`]).
//!
//! Ordering and prerequisites. Actions for one return and one target are
//! delivered in the order they were written. Across targets an action names
//! the kinds it [`requires`](ActionKind::requires): a credit memo, an
//! inventory adjustment, a supplier claim, a repair order or a replacement
//! order waits for the ERP return order, because the ERP refers to it; a
//! cancellation of the expected receipt waits for the receipt to exist.
//! The domain only writes a credit memo once the disposition of every
//! received unit is final, and an inventory adjustment only for
//! dispositioned (so received) units, so "no credit before disposition"
//! and "no restock before receipt" hold by construction.
//!
//! Dispositions and their documents. Every dispositioned unit is on the
//! ERP's inventory adjustment (restock puts it on hand at the site and
//! location, scrap writes it off, the others are recorded). Besides, vendor
//! returns call for a supplier claim against the SKU's vendor (one claim
//! per vendor), refurbished units for a repair order, and replacements for
//! a replacement sales order; the money side is the credit memo.
//!
//! Trading partners. A return that came in over EDI (channel `edi`) is
//! answered over EDI: its approval, and its rejection, call for an RMA
//! notification to the partner ([`ActionKind::EdiRmaNotification`], target
//! [`Target::Edi`]) carrying every line with its authorised quantity (zero
//! for a line or a return refused) and the partner's own references, so
//! the connector can write the X12 180 the partner matches to its request.
//! Returns from other channels never call for it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::command::{Command, Settlement};
use crate::event::Event;
use crate::model::{
    Channel, Disposition, DispositionLine, FinancialDocument, FinancialDocumentKind, Label,
    RequestedOutcome, SettlementLine,
};
use crate::state::{ReturnState, Status};
use crate::values::{
    CustomerAccount, ExternalRef, LineNo, Money, OrderRef, Quantity, ReasonCode, ReturnId,
    SiteCode, Sku, Uom,
};

/// The external system an action is for. One connector serves each target.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Erp,
    Wms,
    Carrier,
    Portal,
    /// The EDI trading partners a return came from (X12 files), answered
    /// in their own format. A target of its own rather than `portal`:
    /// one connector serves each target, and the portal's is the portal
    /// or the webhook subscribers.
    Edi,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Erp,
        Target::Wms,
        Target::Carrier,
        Target::Portal,
        Target::Edi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Erp => "erp",
            Target::Wms => "wms",
            Target::Carrier => "carrier",
            Target::Portal => "portal",
            Target::Edi => "edi",
        }
    }

    pub fn parse(raw: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// What kind of work an action is; stored beside the payload.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    ErpReturnOrder,
    ErpInventoryAdjustment,
    ErpCreditMemo,
    ErpCancelReturnOrder,
    /// A claim against a vendor for its units returned to it.
    ErpSupplierClaim,
    /// A repair order for units to be refurbished.
    ErpRepairOrder,
    /// A replacement sales order shipping new units to the customer.
    ErpReplacementOrder,
    WmsExpectedReceipt,
    WmsCancelExpectedReceipt,
    CarrierLabel,
    CarrierVoidLabel,
    PortalStatus,
    /// The answer to an EDI partner's return request: the RMA with the
    /// authorised quantities (an X12 180 out), or its rejection.
    EdiRmaNotification,
}

impl ActionKind {
    pub const ALL: [ActionKind; 13] = [
        ActionKind::ErpReturnOrder,
        ActionKind::ErpInventoryAdjustment,
        ActionKind::ErpCreditMemo,
        ActionKind::ErpCancelReturnOrder,
        ActionKind::ErpSupplierClaim,
        ActionKind::ErpRepairOrder,
        ActionKind::ErpReplacementOrder,
        ActionKind::WmsExpectedReceipt,
        ActionKind::WmsCancelExpectedReceipt,
        ActionKind::CarrierLabel,
        ActionKind::CarrierVoidLabel,
        ActionKind::PortalStatus,
        ActionKind::EdiRmaNotification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ErpReturnOrder => "erp_return_order",
            ActionKind::ErpInventoryAdjustment => "erp_inventory_adjustment",
            ActionKind::ErpCreditMemo => "erp_credit_memo",
            ActionKind::ErpCancelReturnOrder => "erp_cancel_return_order",
            ActionKind::ErpSupplierClaim => "erp_supplier_claim",
            ActionKind::ErpRepairOrder => "erp_repair_order",
            ActionKind::ErpReplacementOrder => "erp_replacement_order",
            ActionKind::WmsExpectedReceipt => "wms_expected_receipt",
            ActionKind::WmsCancelExpectedReceipt => "wms_cancel_expected_receipt",
            ActionKind::CarrierLabel => "carrier_label",
            ActionKind::CarrierVoidLabel => "carrier_void_label",
            ActionKind::PortalStatus => "portal_status",
            ActionKind::EdiRmaNotification => "edi_rma_notification",
        }
    }

    pub fn parse(raw: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    pub fn target(self) -> Target {
        match self {
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder => Target::Erp,
            ActionKind::WmsExpectedReceipt | ActionKind::WmsCancelExpectedReceipt => Target::Wms,
            ActionKind::CarrierLabel | ActionKind::CarrierVoidLabel => Target::Carrier,
            ActionKind::PortalStatus => Target::Portal,
            ActionKind::EdiRmaNotification => Target::Edi,
        }
    }

    /// Kinds that must have been delivered (for the same return) before this
    /// one may go: their results carry the numbers this one refers to.
    pub fn requires(self) -> &'static [ActionKind] {
        match self {
            ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder => &[ActionKind::ErpReturnOrder],
            ActionKind::WmsCancelExpectedReceipt => &[ActionKind::WmsExpectedReceipt],
            ActionKind::CarrierVoidLabel => &[ActionKind::CarrierLabel],
            ActionKind::ErpReturnOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::CarrierLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => &[],
        }
    }

    /// Who should look at a business rejection of this kind first.
    pub fn suggested_owner(self) -> &'static str {
        match self {
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            // A claim is money owed by a vendor: finance holds the vendor
            // accounts and agreements it is booked against.
            | ActionKind::ErpSupplierClaim => "finance",
            // The units to repair are in the warehouse, which runs the
            // refurbishment; a refused repair order stops its work first.
            ActionKind::ErpRepairOrder => "warehouse",
            // The customer waits for the new goods: support owns that
            // conversation when the ERP will not ship them.
            ActionKind::ErpReplacementOrder => "support",
            ActionKind::WmsExpectedReceipt | ActionKind::WmsCancelExpectedReceipt => "warehouse",
            ActionKind::CarrierLabel | ActionKind::CarrierVoidLabel => "logistics",
            ActionKind::PortalStatus => "support",
            // The partner waits for its answer; support owns the
            // relationship (and the agreement the answer is written with).
            ActionKind::EdiRmaNotification => "support",
        }
    }
}

/// One line of an outbound document, in the hub's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionLine {
    pub line_no: LineNo,
    pub sku: Sku,
    pub quantity: Quantity,
    /// Net unit price (return orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
    /// Amount credited for these units (credit memos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// What happens to the units (inventory adjustments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<Disposition>,
    /// Why the customer returns them, in canonical codes (return orders);
    /// the connector sends the target's own code through its crosswalk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    /// Where the units go at the site (inventory adjustments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ExternalRef>,
    /// Whom the units go back to (supplier claims): the SKU's vendor. One
    /// claim names one vendor, on every line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<ExternalRef>,
    /// The unit the quantity is counted in, as requested (EDI RMA
    /// notifications: the partner reads the quantity in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<Uom>,
    /// The request line's `order_line_ref` (EDI RMA notifications: for a
    /// return from an X12 180, the partner's own line id, echoed back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_ref: Option<ExternalRef>,
}

/// The payload of an action: everything a connector needs to build its
/// target's request, plus what it got from the prerequisites at delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub kind: ActionKind,
    pub return_id: ReturnId,
    pub rma_number: String,
    pub customer: CustomerAccount,
    pub order_ref: OrderRef,
    pub site: SiteCode,
    /// Lines of the document; empty for status updates, labels and voids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ActionLine>,
    /// Status updates only: where the return is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusUpdate>,
    /// Voids only: the label to void.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<ExternalRef>,
    /// EDI RMA notifications only: what the partner is told and which of
    /// its requests it answers. The lines carry every requested line with
    /// its authorised quantity (zero where refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<PartnerAnswer>,
}

/// The answer to a trading partner's return request (EDI RMA
/// notifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerAnswer {
    pub decision: PartnerDecision,
    /// The partner's number of the request this answers: the return's
    /// external reference `edi` (BGN02 of the partner's 180). `None` for
    /// an EDI-channel return opened without one, which no partner
    /// document can answer (the connector refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ref: Option<ExternalRef>,
    /// Why the return was rejected, as the rejection says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the return was approved or rejected.
    pub at: DateTime<Utc>,
}

/// What a trading partner's return request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerDecision {
    /// Authorised, line by line (a line may be authorised for zero).
    Approved,
    /// Refused whole: every line authorised for zero.
    Rejected,
}

/// The public state of a return, for customer-facing systems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusUpdate {
    pub status: Status,
    pub stage: String,
    pub owner: String,
    /// Stream version after the change, so a receiver can drop stale updates.
    pub version: i64,
    pub at: DateTime<Utc>,
}

impl Action {
    pub fn target(&self) -> Target {
        self.kind.target()
    }

    /// The delivery's idempotency key, stable across retries and restarts:
    /// the target system sees the same key however often it is sent. A
    /// supplier claim adds its vendor: one disposition may call for a claim
    /// per vendor, and each is a delivery of its own.
    pub fn delivery_key(&self, version: i64) -> String {
        match self.vendor() {
            Some(vendor) => format!(
                "{}:{}:{version}:{vendor}",
                self.rma_number,
                self.kind.as_str()
            ),
            None => format!("{}:{}:{version}", self.rma_number, self.kind.as_str()),
        }
    }

    /// The vendor a supplier claim is against (every line names the same
    /// one); `None` for other kinds, and for a claim whose SKU has no
    /// vendor in master data.
    pub fn vendor(&self) -> Option<&ExternalRef> {
        match self.kind {
            ActionKind::ErpSupplierClaim => self.lines.first().and_then(|l| l.vendor.as_ref()),
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::CarrierLabel
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => None,
        }
    }
}

/// What a target system answered, in the hub's vocabulary. Connectors map
/// their wire answers to this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionResult {
    /// A document was created; `number` is the target's id of it.
    Document {
        number: ExternalRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
    },
    /// A label was created.
    Label(Label),
    /// Accepted; nothing to remember.
    Accepted,
}

/// The external reference under which a return from an EDI partner keeps
/// the partner's own request number (set by the X12 mapping).
pub const EDI_REFERENCE: &str = "edi";

/// The actions the events of one command call for. `before` and `after`
/// are the return's state before and after the command's events, `version` the
/// stream version after them, `now` the time the command was decided at.
pub fn actions(
    before: &ReturnState,
    after: &ReturnState,
    events: &[Event],
    version: i64,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let Some(header) = after.header.as_ref() else {
        return Vec::new();
    };
    let base = |kind: ActionKind| Action {
        kind,
        return_id: header.return_id,
        rma_number: header.rma_number.clone(),
        customer: header.request.customer.clone(),
        order_ref: header.request.order_ref.clone(),
        site: header.request.site.clone(),
        lines: Vec::new(),
        status: None,
        tracking_number: None,
        answer: None,
    };
    // The partner's answer (EDI returns only): every line with what it
    // was authorised, so the partner hears about each line it asked for.
    let answer = |decision: PartnerDecision, reason: Option<&str>, at: DateTime<Utc>| Action {
        lines: after
            .lines
            .values()
            .map(|l| ActionLine {
                line_no: l.line.line_no,
                sku: l.line.sku.clone(),
                quantity: l.authorized,
                unit_price: None,
                amount: None,
                disposition: None,
                reason_code: None,
                location: None,
                vendor: None,
                uom: Some(l.line.uom.clone()),
                order_line_ref: l.line.order_line_ref.clone(),
            })
            .collect(),
        answer: Some(PartnerAnswer {
            decision,
            request_ref: header.request.external_refs.get(EDI_REFERENCE).cloned(),
            reason: reason.map(str::to_owned),
            at,
        }),
        ..base(ActionKind::EdiRmaNotification)
    };
    let from_partner = header.request.channel == Channel::Edi;
    let mut out = Vec::new();
    for event in events {
        match event {
            Event::ReturnApproved { approved_at, .. } => {
                let authorized: Vec<ActionLine> = after
                    .lines
                    .values()
                    .filter(|l| !l.authorized.is_zero())
                    .map(|l| ActionLine {
                        line_no: l.line.line_no,
                        sku: l.line.sku.clone(),
                        quantity: l.authorized,
                        unit_price: Some(l.line.unit_price),
                        amount: None,
                        disposition: None,
                        reason_code: Some(l.line.reason_code.clone()),
                        location: None,
                        vendor: None,
                        uom: None,
                        order_line_ref: None,
                    })
                    .collect();
                out.push(Action {
                    lines: authorized.clone(),
                    ..base(ActionKind::ErpReturnOrder)
                });
                out.push(Action {
                    lines: authorized
                        .into_iter()
                        .map(|l| ActionLine {
                            unit_price: None,
                            reason_code: None,
                            ..l
                        })
                        .collect(),
                    ..base(ActionKind::WmsExpectedReceipt)
                });
                if after.label.is_none() {
                    out.push(base(ActionKind::CarrierLabel));
                }
                if from_partner {
                    out.push(answer(PartnerDecision::Approved, None, *approved_at));
                }
            }
            Event::ReturnRejected {
                reason,
                rejected_at,
            } => {
                if from_partner {
                    out.push(answer(
                        PartnerDecision::Rejected,
                        Some(reason),
                        *rejected_at,
                    ));
                }
            }
            Event::UnitsDispositioned { dispositions, .. } => {
                let lines: Vec<ActionLine> = dispositions
                    .iter()
                    .filter_map(|d| {
                        let line = after.lines.get(&d.line_no)?;
                        Some(ActionLine {
                            line_no: d.line_no,
                            sku: line.line.sku.clone(),
                            quantity: d.quantity,
                            unit_price: None,
                            amount: None,
                            disposition: Some(d.disposition),
                            reason_code: None,
                            location: d.location.clone(),
                            vendor: None,
                            uom: None,
                            order_line_ref: None,
                        })
                    })
                    .collect();
                if !lines.is_empty() {
                    out.push(Action {
                        lines,
                        ..base(ActionKind::ErpInventoryAdjustment)
                    });
                }
                // The documents the dispositions call for besides the
                // adjustment: each vendor's claim, then the repair and the
                // replacement order, each only with units to put on it.
                let mut claims: BTreeMap<Option<ExternalRef>, Vec<ActionLine>> = BTreeMap::new();
                for d in dispositions
                    .iter()
                    .filter(|d| d.disposition == Disposition::VendorReturn)
                {
                    if let Some(line) = document_line(after, d) {
                        claims
                            .entry(d.vendor.clone())
                            .or_default()
                            .push(ActionLine {
                                vendor: d.vendor.clone(),
                                ..line
                            });
                    }
                }
                for lines in claims.into_values() {
                    out.push(Action {
                        lines,
                        ..base(ActionKind::ErpSupplierClaim)
                    });
                }
                for (disposition, kind) in [
                    (Disposition::Refurbish, ActionKind::ErpRepairOrder),
                    (Disposition::Replacement, ActionKind::ErpReplacementOrder),
                ] {
                    let lines: Vec<ActionLine> = dispositions
                        .iter()
                        .filter(|d| d.disposition == disposition)
                        .filter_map(|d| document_line(after, d))
                        .collect();
                    if !lines.is_empty() {
                        out.push(Action {
                            lines,
                            ..base(kind)
                        });
                    }
                }
                if let Some(memo) = credit_memo(before, after) {
                    out.push(Action {
                        lines: memo,
                        ..base(ActionKind::ErpCreditMemo)
                    });
                }
            }
            Event::ReturnCancelled { label_voided, .. } => {
                if *label_voided && let Some(label) = &after.label {
                    out.push(Action {
                        tracking_number: Some(label.tracking_number.clone()),
                        ..base(ActionKind::CarrierVoidLabel)
                    });
                }
                if after.approved {
                    out.push(base(ActionKind::WmsCancelExpectedReceipt));
                    out.push(base(ActionKind::ErpCancelReturnOrder));
                }
            }
            // An approved return that expired unshipped: nothing will
            // arrive, so the warehouse stops expecting it and the ERP
            // closes its return order.
            // A label still usable at that moment (one without an expiry of
            // its own, the authorisation ran out) is voided so nobody ships
            // with it; a label that ran out itself needs nothing.
            Event::ReturnExpired { expired_at } if after.approved => {
                if let Some(label) = &after.label
                    && label.expires_at.is_none_or(|at| at > *expired_at)
                {
                    out.push(Action {
                        tracking_number: Some(label.tracking_number.clone()),
                        ..base(ActionKind::CarrierVoidLabel)
                    });
                }
                out.push(base(ActionKind::WmsCancelExpectedReceipt));
                out.push(base(ActionKind::ErpCancelReturnOrder));
            }
            // A label that arrived after the return was cancelled or
            // expired: nobody will ship with it, so it is voided.
            Event::LabelIssued { label, .. }
                if matches!(after.status(), Status::Cancelled | Status::Expired) =>
            {
                out.push(Action {
                    tracking_number: Some(label.tracking_number.clone()),
                    ..base(ActionKind::CarrierVoidLabel)
                });
            }
            Event::ReturnRequested { .. }
            | Event::EligibilityAssessed { .. }
            | Event::ReturnHeldForReview { .. }
            | Event::LabelIssued { .. }
            | Event::CarrierMilestoneRecorded { .. }
            | Event::UnitsReceived { .. }
            | Event::UnitsInspected { .. }
            | Event::DocumentLinked { .. }
            | Event::UnitsSettled { .. }
            | Event::ReturnClosed { .. }
            | Event::ReturnExpired { .. }
            | Event::LineCorrected { .. }
            | Event::UpdateRefused { .. } => {}
        }
    }
    let status = after.status();
    let status_before = before.header.as_ref().map(|_| before.status());
    if Some(status) != status_before {
        let stage = after.stage();
        out.push(Action {
            status: Some(StatusUpdate {
                status,
                stage: stage.as_str().to_owned(),
                owner: stage.owner().to_owned(),
                version,
                at: now,
            }),
            ..base(ActionKind::PortalStatus)
        });
    }
    out
}

/// The units of one disposition line as a line of the document it calls
/// for (supplier claim, repair order, replacement order): the SKU and the
/// quantity. `None` for a line the return does not have, which `decide`
/// never lets through.
fn document_line(after: &ReturnState, d: &DispositionLine) -> Option<ActionLine> {
    let line = after.lines.get(&d.line_no)?;
    Some(ActionLine {
        line_no: d.line_no,
        sku: line.line.sku.clone(),
        quantity: d.quantity,
        unit_price: None,
        amount: None,
        disposition: None,
        reason_code: None,
        location: None,
        vendor: None,
        uom: None,
        order_line_ref: None,
    })
}

/// The credit memo for the units whose credit became due with this command
/// (see `LineState::credit_due`: once the disposition of every received unit
/// is final), credited at what was paid for them (price plus tax) when the
/// customer asked for money back, at zero otherwise (replacement, exchange,
/// repair: the goods are the settlement), and at zero for units beyond the
/// authorised quantity. Amounts are rounded towards zero
/// to the currency's minor unit, so the hub never credits more than was
/// paid. `None` when no credit became due.
fn credit_memo(before: &ReturnState, after: &ReturnState) -> Option<Vec<ActionLine>> {
    let header = after.header.as_ref()?;
    let currency = header.request.currency;
    let lines: Vec<ActionLine> = after
        .lines
        .values()
        .filter_map(|l| {
            let earlier = before
                .lines
                .get(&l.line.line_no)
                .map_or(Quantity::ZERO, |b| b.credit_due);
            let quantity = l.credit_due.saturating_minus(earlier);
            if quantity.is_zero() {
                return None;
            }
            // Units beyond the authorised quantity (an over-receipt) are
            // settled at zero: the customer never paid for them; so are
            // replaced units, whose settlement is the replacement order.
            let creditable = |due: Quantity, replaced: Quantity| {
                due.saturating_minus(replaced).min(l.authorized)
            };
            let earlier_replaced = before
                .lines
                .get(&l.line.line_no)
                .map_or(Quantity::ZERO, |b| b.replaced_due);
            let paid_for = creditable(l.credit_due, l.replaced_due)
                .saturating_minus(creditable(earlier, earlier_replaced));
            let earlier_fees = before
                .lines
                .get(&l.line.line_no)
                .map_or(Decimal::ZERO, |b| b.fees_due);
            let credit = match l.line.requested_outcome {
                RequestedOutcome::Refund | RequestedOutcome::StoreCredit => {
                    refund(l, paid_for, l.fees_due - earlier_fees)
                        .round_dp_with_strategy(currency.minor_units(), RoundingStrategy::ToZero)
                }
                RequestedOutcome::Replacement
                | RequestedOutcome::Exchange
                | RequestedOutcome::Repair => Decimal::ZERO,
            };
            Some(ActionLine {
                line_no: l.line.line_no,
                sku: l.line.sku.clone(),
                quantity,
                unit_price: None,
                amount: Some(
                    Money::new(credit, currency).unwrap_or_else(|_| Money::zero(currency)),
                ),
                disposition: None,
                reason_code: None,
                location: None,
                vendor: None,
                uom: None,
                order_line_ref: None,
            })
        })
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// What is refunded for `units` paid-for units of a line with `fees` of
/// restocking fees: the price less the fees (never below zero), and the tax
/// in proportion to the price refunded, so a 15% fee keeps 15% of the tax.
fn refund(l: &crate::state::LineState, units: Quantity, fees: Decimal) -> Decimal {
    let price = units.get() * l.line.unit_price.amount();
    let tax = units.get() * l.line.unit_tax.amount();
    if price.is_zero() {
        return tax;
    }
    let kept = fees.max(Decimal::ZERO).min(price);
    let refunded_price = price - kept;
    refunded_price + tax * refunded_price / price
}

/// The command that records a delivered action's result on the return, if
/// the result is something the return must know.
pub fn feedback(action: &Action, result: &ActionResult, system: &ExternalRef) -> Option<Command> {
    let document = |kind: FinancialDocumentKind, number: &ExternalRef, amount: &Option<Money>| {
        FinancialDocument {
            kind,
            system: system.clone(),
            number: number.clone(),
            amount: *amount,
        }
    };
    match (action.kind, result) {
        (ActionKind::ErpReturnOrder, ActionResult::Document { number, amount }) => {
            Some(Command::LinkDocument(document(
                FinancialDocumentKind::ErpReturnOrder,
                number,
                amount,
            )))
        }
        (ActionKind::ErpInventoryAdjustment, ActionResult::Document { number, amount }) => {
            Some(Command::LinkDocument(document(
                FinancialDocumentKind::InventoryAdjustment,
                number,
                amount,
            )))
        }
        (ActionKind::ErpCreditMemo, ActionResult::Document { number, amount }) => {
            Some(Command::RecordSettlement(Settlement {
                settlement_ref: number.clone(),
                lines: action
                    .lines
                    .iter()
                    .filter_map(|l| {
                        Some(SettlementLine {
                            line_no: l.line_no,
                            quantity: l.quantity,
                            amount: l.amount?,
                        })
                    })
                    .collect(),
                documents: vec![document(FinancialDocumentKind::CreditMemo, number, amount)],
            }))
        }
        (ActionKind::ErpSupplierClaim, ActionResult::Document { number, amount }) => {
            Some(Command::LinkDocument(document(
                FinancialDocumentKind::SupplierClaim,
                number,
                amount,
            )))
        }
        (ActionKind::ErpRepairOrder, ActionResult::Document { number, amount }) => Some(
            Command::LinkDocument(document(FinancialDocumentKind::RepairOrder, number, amount)),
        ),
        (ActionKind::ErpReplacementOrder, ActionResult::Document { number, amount }) => {
            Some(Command::LinkDocument(document(
                FinancialDocumentKind::ReplacementOrder,
                number,
                amount,
            )))
        }
        (ActionKind::CarrierLabel, ActionResult::Label(label)) => {
            Some(Command::IssueLabel(label.clone()))
        }
        (
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::CarrierLabel
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification,
            _,
        ) => None,
    }
}
