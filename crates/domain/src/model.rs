//! The canonical returns model: what a return request, a line, a disposition
//! and a financial document *are*, independent of any system's codes.
//! Serialized types here are a compatibility promise (see
//! [`MODEL_VERSION`]); connectors translate to and from them through
//! crosswalks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{
    ConditionCode, Currency, CustomerAccount, ExternalRef, LineNo, LotNumber, Money, OrderRef,
    Quantity, ReasonCode, RegionCode, SerialNumber, SiteCode, Sku, Uom,
};

/// Version of the canonical model. Bump the major on any breaking change of a
/// serialized type and add an upcaster for stored events.
pub const MODEL_VERSION: &str = "1.1.0";

/// Where a return request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Portal,
    Crm,
    Marketplace,
    Edi,
    CallCentre,
    Batch,
}

/// What the customer asks for in exchange for the returned units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedOutcome {
    Refund,
    Replacement,
    Exchange,
    Repair,
    StoreCredit,
}

/// What happens to an inspected unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Restock,
    Refurbish,
    Scrap,
    Quarantine,
    VendorReturn,
    Replacement,
}

impl Disposition {
    pub const ALL: [Disposition; 6] = [
        Disposition::Restock,
        Disposition::Refurbish,
        Disposition::Scrap,
        Disposition::Quarantine,
        Disposition::VendorReturn,
        Disposition::Replacement,
    ];
}

/// Kinds of documents in other systems that a return is linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinancialDocumentKind {
    ErpReturnOrder,
    CreditMemo,
    Refund,
    ReplacementOrder,
    SupplierClaim,
    InventoryAdjustment,
    RepairOrder,
}

/// A link to a document in an external system (ERP return order, credit memo…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinancialDocument {
    pub kind: FinancialDocumentKind,
    /// The system that owns the document, e.g. `erp`, `psp`.
    pub system: ExternalRef,
    /// The document number in that system.
    pub number: ExternalRef,
    /// Document total, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
}

/// One requested line of a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub line_no: LineNo,
    pub sku: Sku,
    pub quantity: Quantity,
    pub uom: Uom,
    /// Serials of the returned units, for serialized SKUs. When given, their
    /// count equals the quantity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<LotNumber>,
    pub reason_code: ReasonCode,
    pub requested_outcome: RequestedOutcome,
    /// Net price paid per unit on the original order.
    pub unit_price: Money,
    /// Tax paid per unit on the original order.
    pub unit_tax: Money,
    /// The original order line this return line refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_ref: Option<ExternalRef>,
}

impl ReturnLine {
    /// What the customer paid per unit: the most that can be credited per unit.
    pub fn unit_paid(&self) -> rust_decimal::Decimal {
        self.unit_price.amount() + self.unit_tax.amount()
    }
}

/// A request to return goods, as it arrives from any channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub channel: Channel,
    pub customer: CustomerAccount,
    pub order_ref: OrderRef,
    pub currency: Currency,
    /// Warehouse site expected to receive the goods.
    pub site: SiteCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    /// References of this return in other systems, by system name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_refs: BTreeMap<String, ExternalRef>,
    pub lines: Vec<ReturnLine>,
}

/// Quantity of one line, used by approvals and settlements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantity {
    pub line_no: LineNo,
    pub quantity: Quantity,
}

/// A carrier tracking milestone, in the hub's one vocabulary.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CarrierMilestone {
    PreTransit,
    InTransit,
    OutForDelivery,
    AvailableForPickup,
    Delivered,
    ReturnToSender,
    Failure,
    Exception,
}

impl CarrierMilestone {
    pub const ALL: [CarrierMilestone; 8] = [
        CarrierMilestone::PreTransit,
        CarrierMilestone::InTransit,
        CarrierMilestone::OutForDelivery,
        CarrierMilestone::AvailableForPickup,
        CarrierMilestone::Delivered,
        CarrierMilestone::ReturnToSender,
        CarrierMilestone::Failure,
        CarrierMilestone::Exception,
    ];

    /// The canonical name, as serialized (`out_for_delivery`).
    pub fn as_str(self) -> &'static str {
        match self {
            CarrierMilestone::PreTransit => "pre_transit",
            CarrierMilestone::InTransit => "in_transit",
            CarrierMilestone::OutForDelivery => "out_for_delivery",
            CarrierMilestone::AvailableForPickup => "available_for_pickup",
            CarrierMilestone::Delivered => "delivered",
            CarrierMilestone::ReturnToSender => "return_to_sender",
            CarrierMilestone::Failure => "failure",
            CarrierMilestone::Exception => "exception",
        }
    }

    /// Reads the canonical name however a carrier spells it: any case, with
    /// spaces or hyphens for the underscores (`Out for delivery`,
    /// `OUT-FOR-DELIVERY`). A carrier's own codes (`DL`, `OD`) are not
    /// guessed here: each inbound connector maps them explicitly, so an
    /// unknown code is refused rather than read as something it is not.
    pub fn parse(raw: &str) -> Option<CarrierMilestone> {
        let normalised: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                other => other.to_ascii_lowercase(),
            })
            .collect();
        CarrierMilestone::ALL
            .into_iter()
            .find(|m| m.as_str() == normalised)
    }
}

/// The return label issued for the customer's shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Label {
    pub carrier: ExternalRef,
    pub tracking_number: ExternalRef,
    pub label_ref: ExternalRef,
    /// After this instant the label can no longer be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// One line of a warehouse receipt as the WMS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLine {
    /// The return line the units belong to, when the WMS knows it; otherwise
    /// units are matched by SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_no: Option<LineNo>,
    pub sku: Sku,
    pub quantity: Quantity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<LotNumber>,
}

/// Units received against one return line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedUnits {
    pub line_no: LineNo,
    pub quantity: Quantity,
    /// The part of `quantity` beyond what was authorised: accepted, flagged.
    pub over_received: Quantity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<LotNumber>,
}

/// Units that arrived but match no line of the return: kept and flagged for
/// an operator, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnexpectedItem {
    pub receipt_ref: ExternalRef,
    pub sku: Sku,
    pub quantity: Quantity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
}

/// Settlement of some units of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementLine {
    pub line_no: LineNo,
    pub quantity: Quantity,
    /// Amount credited or refunded for these units (zero for a replacement).
    pub amount: Money,
}

/// Condition recorded at inspection, per line, with the units' serials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    pub line_no: LineNo,
    pub quantity: Quantity,
    pub condition: ConditionCode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
    /// The lot the inspected units belong to, for lot-controlled SKUs, as
    /// the warehouse read it at inspection. Recorded as reported, like the
    /// serials: a quality problem is often a lot's, and the finding must
    /// name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<LotNumber>,
    /// Reference to photos or a report in the WMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_ref: Option<ExternalRef>,
}

/// Disposition decided for some inspected units of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionLine {
    pub line_no: LineNo,
    pub quantity: Quantity,
    pub disposition: Disposition,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<SerialNumber>,
    /// Restocking fee per unit, kept from the credit (the policy's fee
    /// rules set it by reason and condition). At most the unit price; the
    /// tax credited shrinks in proportion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restocking_fee: Option<Money>,
    /// Where at the site the units go (restock and quarantine), as the
    /// policy's disposition rule says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ExternalRef>,
    /// The SKU's vendor (supplier), for vendor returns: whom the ERP's
    /// supplier claim is against. The policy fills it from master data;
    /// absent for other dispositions and when the SKU has no vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<ExternalRef>,
    /// The policy rule that decided, `<policy version>/<rule id>`, when the
    /// policy disposed of the units (absent when a partner did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_read_their_canonical_name_however_spelt() {
        for m in CarrierMilestone::ALL {
            assert_eq!(CarrierMilestone::parse(m.as_str()), Some(m));
            let json = serde_json::to_value(m).unwrap();
            assert_eq!(json, m.as_str(), "as_str is the serialized name");
        }
        for (raw, expected) in [
            ("Out for delivery", CarrierMilestone::OutForDelivery),
            ("PRE-TRANSIT", CarrierMilestone::PreTransit),
            (" delivered ", CarrierMilestone::Delivered),
            ("available_for_pickup", CarrierMilestone::AvailableForPickup),
        ] {
            assert_eq!(CarrierMilestone::parse(raw), Some(expected), "{raw}");
        }
        for unknown in ["DL", "", "in transit now", "intransit"] {
            assert_eq!(CarrierMilestone::parse(unknown), None, "{unknown}");
        }
    }
}
