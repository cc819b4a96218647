//! What a policy decides about an inspected unit: its disposition with the
//! postings that follow from it, and its restocking fee. (Eligibility
//! decisions use the domain's `Assessment`, which the event log stores.)

use backhaul_domain::model::Disposition;
use backhaul_domain::values::Money;
use rust_decimal::Decimal;

/// A booking in another system that a disposition calls for. The engine
/// turns each into an outbox action for the right connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posting {
    /// Restock: the units go back into sellable stock at the receiving site,
    /// into `location`.
    InventoryIncrease { location: String },
    /// Quarantine: the units are booked into blocked stock at `location`
    /// until someone decides.
    QuarantineStock { location: String },
    /// Scrap: a scrap adjustment writes the units off.
    ScrapAdjustment,
    /// Vendor return: a claim against the SKU's vendor.
    SupplierClaim { vendor: Option<String> },
    /// Refurbish: a repair order for the units.
    RepairOrder,
    /// Replacement: a replacement sales order to the customer.
    ReplacementOrder,
}

/// The disposition of a unit, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispositionDecision {
    /// The version of the policy that decided.
    pub policy_version: String,
    /// The id of the matching `[[disposition]]` rule, or
    /// `default_disposition` when none matched.
    pub rule: String,
    pub disposition: Disposition,
    pub postings: Vec<Posting>,
    /// The rule's message, or a description of the decision.
    pub message: String,
    /// Rules skipped because they could not be evaluated for these facts
    /// (e.g. a division by zero), each with the reason.
    pub notes: Vec<String>,
}

/// The restocking fee for one unit, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeDecision {
    pub policy_version: String,
    /// The id of the matching `[[fee]]` rule; `None` when no fee applies.
    pub rule: Option<String>,
    /// The percentage charged, for a percentage fee.
    pub percent: Option<Decimal>,
    /// The fee per unit, in the unit price's currency, rounded to its minor
    /// unit and never above the unit price.
    pub fee: Money,
    pub message: String,
    /// Rules skipped because they could not be evaluated.
    pub notes: Vec<String>,
}

/// The name of a disposition in the policy file.
pub(crate) fn disposition_name(d: Disposition) -> &'static str {
    match d {
        Disposition::Restock => "restock",
        Disposition::Refurbish => "refurbish",
        Disposition::Scrap => "scrap",
        Disposition::Quarantine => "quarantine",
        Disposition::VendorReturn => "vendor_return",
        Disposition::Replacement => "replacement",
    }
}

pub(crate) fn parse_disposition(name: &str) -> Option<Disposition> {
    Disposition::ALL
        .into_iter()
        .find(|d| disposition_name(*d) == name)
}

/// Whether a rule may name a `location` for this disposition.
pub(crate) fn takes_location(d: Disposition) -> bool {
    match d {
        Disposition::Restock | Disposition::Quarantine => true,
        Disposition::Refurbish
        | Disposition::Scrap
        | Disposition::VendorReturn
        | Disposition::Replacement => false,
    }
}

/// The postings a disposition calls for.
pub(crate) fn postings(d: Disposition, location: &str, vendor: Option<&str>) -> Vec<Posting> {
    match d {
        Disposition::Restock => vec![Posting::InventoryIncrease {
            location: location.to_owned(),
        }],
        Disposition::Quarantine => vec![Posting::QuarantineStock {
            location: location.to_owned(),
        }],
        Disposition::Scrap => vec![Posting::ScrapAdjustment],
        Disposition::VendorReturn => vec![Posting::SupplierClaim {
            vendor: vendor.map(str::to_owned),
        }],
        Disposition::Refurbish => vec![Posting::RepairOrder],
        Disposition::Replacement => vec![Posting::ReplacementOrder],
    }
}
