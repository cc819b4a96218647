//! The master records: what the hub knows about SKUs, customers, sites,
//! orders, vendors and other systems' codes, as they arrive by API (JSON)
//! or CSV import and as they are stored.
//!
//! A record is a plain value: its fields are public and its field values
//! are already parsed (`Sku`, `Money`…). The rules a record must follow on
//! its own (a case is not the base unit, shipped ≤ ordered, prices in the
//! order's currency) are `Record::issues`; the rules that involve other
//! records (the SKU exists, no hierarchy cycle, crosswalks unambiguous) are
//! in `validate`. Every write goes through both, so no record that breaks
//! them is stored.
//!
//! The JSON shapes here are stored as they are and sent by partners: they
//! are a compatibility promise. Add optional fields; never change the
//! meaning of one.

use std::collections::HashSet;
use std::fmt;

use backhaul_domain::model::Disposition;
use backhaul_domain::values::{
    ConditionCode, Currency, CustomerAccount, ExternalRef, Money, OrderRef, Quantity, ReasonCode,
    RegionCode, SerialNumber, SiteCode, Sku, Uom,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::values::{Code, ExternalCode, Factor, Percent, SystemName, VendorId};

/// Longest free text (names, descriptions, locations), in characters.
const MAX_TEXT: usize = 200;
/// Longest return-to-vendor window: ten years is already generous.
const MAX_WINDOW_DAYS: u32 = 3650;

/// The kinds of master record. The names are those of the store's `kind`
/// column and of the `type` tag of a [`Record`] in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sku,
    Customer,
    Site,
    Order,
    Vendor,
    Crosswalk,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Sku,
        Kind::Customer,
        Kind::Site,
        Kind::Order,
        Kind::Vendor,
        Kind::Crosswalk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sku => "sku",
            Kind::Customer => "customer",
            Kind::Site => "site",
            Kind::Order => "order",
            Kind::Vendor => "vendor",
            Kind::Crosswalk => "crosswalk",
        }
    }

    /// The kind named `raw` (`sku`) or its plural file stem (`skus`).
    pub fn parse(raw: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == raw || k.file_stem() == raw)
    }

    /// The usual CSV file name without `.csv` (`skus`, `crosswalks`).
    pub fn file_stem(self) -> &'static str {
        match self {
            Kind::Sku => "skus",
            Kind::Customer => "customers",
            Kind::Site => "sites",
            Kind::Order => "orders",
            Kind::Vendor => "vendors",
            Kind::Crosswalk => "crosswalks",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How units of a SKU are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Units are interchangeable.
    #[default]
    None,
    /// Every unit has a serial number (shipped serials are on the order line).
    Serial,
    /// Units come in lots (batches) with a lot number.
    Lot,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::None => "none",
            Control::Serial => "serial",
            Control::Lot => "lot",
        }
    }
}

/// One unit of measure beyond the base unit: `factor` base units make one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UomConversion {
    pub uom: Uom,
    pub factor: Factor,
}

/// A stock keeping unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuRecord {
    pub sku: Sku,
    pub description: String,
    /// Drives return windows and rules per product family (`electronics`).
    pub category: Code,
    #[serde(default)]
    pub control: Control,
    /// Whether customers may return it at all (made-to-order furniture may not).
    pub returnable: bool,
    /// Who supplies it: where a vendor return (RTV) goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<VendorId>,
    /// The unit quantities are counted in (`EA`); conversions are to it.
    pub base_uom: Uom,
    /// Other units it is sold in (a case of 12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversions: Vec<UomConversion>,
}

/// Why a quantity could not be expressed in a SKU's base unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("SKU {sku} has no unit of measure {uom} (it has {})", join(known))]
    UnknownUom { sku: Sku, uom: Uom, known: Vec<Uom> },
    #[error("{quantity} {uom} of SKU {sku} cannot be counted in {base}: {reason}")]
    OutOfRange {
        sku: Sku,
        uom: Uom,
        base: Uom,
        quantity: Quantity,
        reason: String,
    },
}

fn join(items: &[impl fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SkuRecord {
    /// Every unit of measure of the SKU, the base unit first.
    pub fn uoms(&self) -> impl Iterator<Item = &Uom> {
        std::iter::once(&self.base_uom).chain(self.conversions.iter().map(|c| &c.uom))
    }

    /// Base units in one `uom`: 1 for the base unit, `None` for a unit the
    /// SKU does not have.
    pub fn factor(&self, uom: &Uom) -> Option<Decimal> {
        if *uom == self.base_uom {
            return Some(Decimal::ONE);
        }
        self.conversions
            .iter()
            .find(|c| c.uom == *uom)
            .map(|c| c.factor.get())
    }

    /// `quantity` of `uom` in base units (2 CS of 12 = 24 EA). A unit the
    /// SKU does not have is an error naming the SKU and the unit, never a
    /// silent 1.
    pub fn to_base(&self, quantity: Quantity, uom: &Uom) -> Result<Quantity, ConversionError> {
        let factor = self
            .factor(uom)
            .ok_or_else(|| ConversionError::UnknownUom {
                sku: self.sku.clone(),
                uom: uom.clone(),
                known: self.uoms().cloned().collect(),
            })?;
        let out_of_range = |reason: String| ConversionError::OutOfRange {
            sku: self.sku.clone(),
            uom: uom.clone(),
            base: self.base_uom.clone(),
            quantity,
            reason,
        };
        let product = quantity
            .get()
            .checked_mul(factor)
            .ok_or_else(|| out_of_range("the result is too large".to_owned()))?;
        Quantity::from_decimal(product).map_err(|e| out_of_range(e.reason))
    }
}

/// A customer account, possibly part of a group (its parent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRecord {
    pub account: CustomerAccount,
    pub name: String,
    /// The account this one belongs to (a store of a chain, a chain of a
    /// buying group). Must exist; the hierarchy has no cycles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CustomerAccount>,
    /// Commercial segment (`key_account`, `retail`, `marketplace`): policies
    /// treat segments differently.
    pub segment: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
}

/// A warehouse site that receives returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRecord {
    pub site: SiteCode,
    pub name: String,
    /// Where returned units are put until inspected (`RET-DOCK-1`).
    pub default_location: String,
    /// IANA time zone of the site (`America/Chicago`), for its local dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// One line of a sales order, as the ERP reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRecord {
    /// The ERP's id of the line; return lines point at it.
    pub line_ref: ExternalRef,
    pub sku: Sku,
    /// Ordered, in `uom`.
    pub quantity: Quantity,
    pub uom: Uom,
    /// Net price per `uom`, in the order's currency.
    pub unit_price: Money,
    /// Tax per `uom`, in the order's currency.
    pub unit_tax: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    /// Shipped so far, in `uom`.
    #[serde(default)]
    pub shipped_quantity: Quantity,
    /// Serials of the shipped units (serial-controlled SKUs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serials: Vec<SerialNumber>,
    /// Returned before the hub or outside it, as the ERP reports, in `uom`.
    #[serde(default)]
    pub returned_quantity: Quantity,
}

impl OrderLineRecord {
    /// Shipped and not yet returned, in `uom`: the most a new return of
    /// this line can take.
    pub fn returnable_quantity(&self) -> Quantity {
        self.shipped_quantity
            .saturating_minus(self.returned_quantity)
    }
}

/// A sales order: what a return refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRecord {
    pub order_ref: OrderRef,
    pub customer: CustomerAccount,
    /// Every price and tax of the order is in this currency.
    pub currency: Currency,
    pub sold_at: DateTime<Utc>,
    pub lines: Vec<OrderLineRecord>,
}

/// The terms under which a vendor takes goods back (return to vendor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtvAgreement {
    pub accepts_returns: bool,
    /// Days after the sale within which the vendor takes units back.
    pub window_days: u32,
    /// What the vendor keeps of the unit cost when it takes units back.
    pub restocking_percent: Percent,
    /// Whether the vendor's authorisation number is needed before shipping.
    pub requires_authorisation: bool,
}

/// A supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorRecord {
    pub vendor: VendorId,
    pub name: String,
    /// Absent when there is no return-to-vendor agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<RtvAgreement>,
}

/// What vocabulary a crosswalk translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrosswalkKind {
    /// Return reasons; canonical codes are `ReasonCode`s (`SIZE_FIT`).
    Reason,
    /// Inspection conditions; canonical codes are `ConditionCode`s.
    Condition,
    /// Dispositions; canonical codes are the model's (`restock`, `vendor_return`…).
    Disposition,
}

impl CrosswalkKind {
    pub const ALL: [CrosswalkKind; 3] = [
        CrosswalkKind::Reason,
        CrosswalkKind::Condition,
        CrosswalkKind::Disposition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrosswalkKind::Reason => "reason",
            CrosswalkKind::Condition => "condition",
            CrosswalkKind::Disposition => "disposition",
        }
    }

    pub fn parse(raw: &str) -> Option<CrosswalkKind> {
        CrosswalkKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// Checks that `code` is a canonical code of this vocabulary.
    pub fn check_canonical(self, code: &str) -> Result<(), String> {
        match self {
            CrosswalkKind::Reason => ReasonCode::parse(code).map(drop).map_err(|e| e.to_string()),
            CrosswalkKind::Condition => ConditionCode::parse(code)
                .map(drop)
                .map_err(|e| e.to_string()),
            CrosswalkKind::Disposition => {
                serde_json::from_value::<Disposition>(serde_json::Value::String(code.to_owned()))
                    .map(drop)
                    .map_err(|_| {
                        let known: Vec<String> = Disposition::ALL
                            .iter()
                            .filter_map(|d| serde_json::to_value(d).ok())
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect();
                        format!(
                            "{code:?} is not a disposition (one of {})",
                            known.join(", ")
                        )
                    })
            }
        }
    }
}

impl fmt::Display for CrosswalkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One code of another system and the canonical code it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrosswalkEntry {
    pub system: SystemName,
    pub kind: CrosswalkKind,
    /// The system's own code (`TOO_SMALL`, `R07`).
    pub external: ExternalCode,
    /// The hub's code (`SIZE_FIT`, `restock`).
    pub canonical: String,
    /// When several external codes of one system mean the same canonical
    /// code, the one the hub sends to that system. Needed only then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preferred: bool,
}

/// Any master record, tagged with its kind in JSON
/// (`{"type": "sku", "sku": "DRILL-18V", ...}`). The tag is `type`, not
/// `kind`, because a crosswalk entry has a `kind` field of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Sku(SkuRecord),
    Customer(CustomerRecord),
    Site(SiteRecord),
    Order(OrderRecord),
    Vendor(VendorRecord),
    Crosswalk(CrosswalkEntry),
}

impl Record {
    pub fn kind(&self) -> Kind {
        match self {
            Record::Sku(_) => Kind::Sku,
            Record::Customer(_) => Kind::Customer,
            Record::Site(_) => Kind::Site,
            Record::Order(_) => Kind::Order,
            Record::Vendor(_) => Kind::Vendor,
            Record::Crosswalk(_) => Kind::Crosswalk,
        }
    }

    /// The record's identity within its kind, as stored. A crosswalk entry
    /// is identified by system, kind and external code together
    /// (`portal:reason:TOO_SMALL`); system and kind cannot contain `:`, so
    /// the key is unambiguous.
    pub fn key(&self) -> String {
        match self {
            Record::Sku(r) => r.sku.to_string(),
            Record::Customer(r) => r.account.to_string(),
            Record::Site(r) => r.site.to_string(),
            Record::Order(r) => r.order_ref.to_string(),
            Record::Vendor(r) => r.vendor.to_string(),
            Record::Crosswalk(r) => crosswalk_key(&r.system, r.kind, r.external.as_str()),
        }
    }

    /// Names the record in messages.
    pub fn reference(&self) -> RecordRef {
        RecordRef {
            kind: self.kind(),
            key: self.key(),
            line_ref: None,
        }
    }

    /// Reads one record of `kind` from JSON without its `type` tag, as the
    /// store keeps it and as `POST /v1/master/{kind}` takes it.
    pub fn from_body(kind: Kind, body: &str) -> Result<Record, serde_json::Error> {
        Ok(match kind {
            Kind::Sku => Record::Sku(serde_json::from_str(body)?),
            Kind::Customer => Record::Customer(serde_json::from_str(body)?),
            Kind::Site => Record::Site(serde_json::from_str(body)?),
            Kind::Order => Record::Order(serde_json::from_str(body)?),
            Kind::Vendor => Record::Vendor(serde_json::from_str(body)?),
            Kind::Crosswalk => Record::Crosswalk(serde_json::from_str(body)?),
        })
    }

    /// What is wrong with the record on its own, each with the column (CSV)
    /// or field (JSON) it is about. Empty for a good record.
    pub(crate) fn issues(&self) -> Vec<Issue> {
        let mut out = Issues::default();
        match self {
            Record::Sku(r) => {
                out.text("description", &r.description);
                let mut seen = HashSet::new();
                for c in &r.conversions {
                    if c.uom == r.base_uom {
                        out.push(
                            "conversions",
                            format!("{} is the base unit; list only the other units", c.uom),
                        );
                    } else if !seen.insert(&c.uom) {
                        out.push("conversions", format!("{} is listed twice", c.uom));
                    }
                }
            }
            Record::Customer(r) => {
                out.text("name", &r.name);
                if r.parent.as_ref() == Some(&r.account) {
                    out.push("parent", format!("{} cannot be its own parent", r.account));
                }
            }
            Record::Site(r) => {
                out.text("name", &r.name);
                out.text("default_location", &r.default_location);
                if let Some(tz) = &r.timezone {
                    let valid = !tz.is_empty()
                        && tz.len() <= 64
                        && tz
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
                    if !valid {
                        out.push(
                            "timezone",
                            format!("{tz:?} is not a time zone name such as Europe/Berlin"),
                        );
                    }
                }
            }
            Record::Order(r) => order_issues(r, &mut out),
            Record::Vendor(r) => {
                out.text("name", &r.name);
                if let Some(a) = &r.agreement
                    && a.window_days > MAX_WINDOW_DAYS
                {
                    out.push(
                        "window_days",
                        format!(
                            "must be at most {MAX_WINDOW_DAYS} days, got {}",
                            a.window_days
                        ),
                    );
                }
            }
            Record::Crosswalk(r) => {
                if let Err(reason) = r.kind.check_canonical(&r.canonical) {
                    out.push("canonical", reason);
                }
            }
        }
        out.0
    }
}

fn order_issues(r: &OrderRecord, out: &mut Issues) {
    if r.lines.is_empty() {
        out.push("lines", "an order needs at least one line".to_owned());
    }
    let mut line_refs = HashSet::new();
    let mut serials = HashSet::new();
    for line in &r.lines {
        let mut at = |column: &'static str, message: String| {
            out.0.push(Issue {
                line_ref: Some(line.line_ref.clone()),
                column,
                message,
            });
        };
        if !line_refs.insert(&line.line_ref) {
            at(
                "line_ref",
                format!("line {} appears twice in the order", line.line_ref),
            );
        }
        for (column, money) in [
            ("unit_price", &line.unit_price),
            ("unit_tax", &line.unit_tax),
        ] {
            if money.currency() != r.currency {
                at(
                    column,
                    format!("{money} is not in the order's currency {}", r.currency),
                );
            }
        }
        if line.shipped_quantity > line.quantity {
            at(
                "shipped_quantity",
                format!(
                    "{} shipped is more than the {} ordered",
                    line.shipped_quantity, line.quantity
                ),
            );
        }
        if line.returned_quantity > line.shipped_quantity {
            at(
                "returned_quantity",
                format!(
                    "{} returned is more than the {} shipped",
                    line.returned_quantity, line.shipped_quantity
                ),
            );
        }
        match line.shipped_at {
            None if !line.shipped_quantity.is_zero() => at(
                "shipped_at",
                "is required when something was shipped".to_owned(),
            ),
            Some(shipped) if shipped < r.sold_at => at(
                "shipped_at",
                format!("{shipped} is before the order was sold ({})", r.sold_at),
            ),
            None | Some(_) => {}
        }
        for serial in &line.serials {
            if !serials.insert(serial) {
                at(
                    "serials",
                    format!("serial {serial} appears twice in the order"),
                );
            }
        }
    }
}

/// Something wrong with one record, before it is given a place (a CSV line
/// or a record reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    /// The order line it is about, for orders.
    pub(crate) line_ref: Option<ExternalRef>,
    pub(crate) column: &'static str,
    pub(crate) message: String,
}

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn push(&mut self, column: &'static str, message: String) {
        self.0.push(Issue {
            line_ref: None,
            column,
            message,
        });
    }

    /// Names and descriptions: something a person can read, on one line.
    fn text(&mut self, column: &'static str, value: &str) {
        if value.trim().is_empty() {
            self.push(column, "must not be empty".to_owned());
        } else if value.chars().count() > MAX_TEXT {
            self.push(
                column,
                format!(
                    "must be at most {MAX_TEXT} characters, got {}",
                    value.chars().count()
                ),
            );
        } else if value.chars().any(char::is_control) {
            self.push(column, "must be one line of printable text".to_owned());
        }
    }
}

/// The store key of a crosswalk entry.
pub(crate) fn crosswalk_key(system: &SystemName, kind: CrosswalkKind, external: &str) -> String {
    format!("{system}:{kind}:{external}")
}

/// Names one record (and, for orders, one of its lines) in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RecordRef {
    pub kind: Kind,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_ref: Option<String>,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.key)?;
        if let Some(line) = &self.line_ref {
            write!(f, " line {line:?}")?;
        }
        Ok(())
    }
}
