//! Facts: what the caller knows about a request, assembled from the request
//! itself and master data (customer, SKU, order line, vendor agreement).
//! They are plain structs so that the caller (the engine, a simulator, a
//! test) can fill them without going through this crate's logic; everything
//! derived from them (days since shipping, available quantity, warranty) is
//! computed here, so every caller derives it the same way.
//!
//! Absent optional facts reach expressions as empty strings or lists, never
//! as `null`, so that an expression like `line.vendor == "ACME"` has one type
//! whatever the data.

use backhaul_domain::model::{Channel, RequestedOutcome};
use backhaul_domain::values::{
    ConditionCode, Currency, CustomerAccount, LineNo, Money, OrderRef, Quantity, ReasonCode,
    SerialNumber, Sku, Uom,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Everything an eligibility assessment looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// When the customer asked; the "today" of every window rule.
    pub requested_at: DateTime<Utc>,
    pub channel: Channel,
    pub currency: Currency,
    pub customer: CustomerFacts,
    pub order_ref: OrderRef,
    /// Whether the original order was found in the ERP.
    pub order_found: bool,
    /// When the original order was sold (order date), if known.
    pub sold_at: Option<DateTime<Utc>>,
    /// Total requested value, price plus tax, over all lines.
    pub value: Money,
    pub lines: Vec<LineFacts>,
}

/// The requesting customer, from customer master data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFacts {
    pub account: CustomerAccount,
    /// The direct parent account in the customer hierarchy.
    pub parent: Option<CustomerAccount>,
    /// The whole parent chain, nearest first, so a rule can match any
    /// account under a key account.
    pub ancestors: Vec<CustomerAccount>,
    /// Commercial segment, e.g. `key_account`, `retail`.
    pub segment: String,
    pub region: String,
    /// Whether the account exists in master data.
    pub known: bool,
}

/// One requested line with its SKU and original order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFacts {
    pub line_no: LineNo,
    pub sku: Sku,
    /// Whether the SKU exists in master data.
    pub sku_known: bool,
    pub category: String,
    pub returnable: bool,
    pub serial_controlled: bool,
    pub lot_controlled: bool,
    /// The SKU's vendor, for vendor returns.
    pub vendor: Option<String>,
    pub reason: ReasonCode,
    pub requested_outcome: RequestedOutcome,
    /// The unit of measure the customer asked in.
    pub uom: Uom,
    /// The quantity as requested, in `uom`.
    pub quantity: Quantity,
    /// The quantity converted to the SKU's base unit (1 case = 12 each).
    /// Compared with shipped and returned quantities, which are in base
    /// units too.
    pub base_quantity: Quantity,
    /// Whether the original order line was found.
    pub order_line_found: bool,
    pub shipped_at: Option<DateTime<Utc>>,
    pub shipped_base_quantity: Quantity,
    /// Already returned on earlier requests, in base units.
    pub returned_base_quantity: Quantity,
    /// Serials the customer gave for the returned units.
    pub serials: Vec<SerialNumber>,
    /// Serials shipped on the original order line.
    pub shipped_serials: Vec<SerialNumber>,
    pub unit_price: Money,
    pub unit_tax: Money,
    /// Requested value of the line, price plus tax.
    pub value: Money,
    /// The condition the customer declared, if asked.
    pub declared_condition: Option<ConditionCode>,
}

/// One inspected unit (or a group of identical ones), for disposition and
/// restocking fee rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFacts {
    /// The return line the unit belongs to.
    pub line: LineFacts,
    /// When the original order was sold, for the warranty terms.
    pub sold_at: Option<DateTime<Utc>>,
    /// The condition found at inspection.
    pub condition: ConditionCode,
    pub customer_segment: String,
    /// The agreement with the SKU's vendor, if there is one.
    pub vendor_agreement: Option<VendorAgreementFacts>,
    /// The instant of the decision (inspection time); warranty and vendor
    /// windows are measured to it.
    pub now: DateTime<Utc>,
}

/// What the vendor agreed to take back, from vendor master data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorAgreementFacts {
    pub accepts_returns: bool,
    /// Days after our ship date within which the vendor takes units back.
    pub window_days: i64,
    /// What the vendor charges us, in percent of the unit price.
    pub restocking_percent: Decimal,
}
