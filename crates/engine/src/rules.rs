//! Rules: the eligibility and disposition policy and the master data a hub
//! decides with, held in memory and swapped whole when either changes (a
//! policy reload, a master data import, another hub's import noticed by
//! its revision). Readers take a snapshot ([`RulesHandle::current`]) and
//! never see a half-updated pair.
//!
//! This module also turns a request and master data into the policy's
//! facts, translates other systems' codes through the crosswalks, and
//! decides dispositions after inspection. The policy evaluates; the domain
//! records; this is the glue, and the only place that reads master data
//! for a decision.
//!
//! Not here: loading files or rows (the binary and `backhaul_master::persist`
//! do), the rules themselves (`backhaul_policy`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use backhaul_domain::eligibility::Assessment;
use backhaul_domain::model::{DispositionLine, Inspection, ReturnLine, ReturnRequest};
use backhaul_domain::state::LineState;
use backhaul_domain::values::{ConditionCode, ExternalRef, Money, Quantity, ReasonCode};
use backhaul_domain::{Command, ReturnState};
use backhaul_master::{CrosswalkKind, MasterData, OrderLineRecord, OrderRecord, Unmapped};
use backhaul_policy::{
    CustomerFacts, LineFacts, Policy, Posting, RequestFacts, UnitFacts, VendorAgreementFacts,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// The policy (if one is active) and master data, as one snapshot.
#[derive(Debug, Default)]
pub struct Rules {
    pub policy: Option<Arc<Policy>>,
    pub master: Arc<MasterData>,
}

/// Shared, swappable [`Rules`]. Cheap to clone; every clone sees a swap.
#[derive(Debug, Clone, Default)]
pub struct RulesHandle {
    inner: Arc<RwLock<Arc<Rules>>>,
}

impl RulesHandle {
    pub fn new(policy: Option<Policy>, master: MasterData) -> RulesHandle {
        RulesHandle {
            inner: Arc::new(RwLock::new(Arc::new(Rules {
                policy: policy.map(Arc::new),
                master: Arc::new(master),
            }))),
        }
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Rules> {
        Arc::clone(&self.inner.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `policy` in force, keeping the master data.
    pub fn set_policy(&self, policy: Policy) {
        let mut slot = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(Rules {
            policy: Some(Arc::new(policy)),
            master: Arc::clone(&slot.master),
        });
    }

    /// Puts `master` in force, keeping the policy, unless the one in force
    /// is already newer (two imports racing to publish).
    pub fn set_master(&self, master: MasterData) {
        let mut slot = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if master.revision() < slot.master.revision() {
            return;
        }
        *slot = Arc::new(Rules {
            policy: slot.policy.clone(),
            master: Arc::new(master),
        });
    }
}

/// Why a request could not be assessed: the data it refers to cannot be
/// read in the hub's terms. A business problem with the request, reported
/// to its sender; nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Unmapped(#[from] Unmapped),
    #[error("line {line_no}: {message}")]
    UnknownUom { line_no: u32, message: String },
}

impl RulesError {
    /// Stable code for the API's problem responses.
    pub fn code(&self) -> &'static str {
        match self {
            RulesError::Unmapped(_) => "unmapped_code",
            RulesError::UnknownUom { .. } => "unknown_uom",
        }
    }
}

impl Rules {
    /// The request in canonical codes: each line's reason code as `system`
    /// sent it, translated through `system`'s reason crosswalk. A system
    /// without a reason crosswalk already speaks canonical codes; a system
    /// with one must map every code it sends.
    pub fn translate(
        &self,
        system: &str,
        mut request: ReturnRequest,
    ) -> Result<ReturnRequest, RulesError> {
        for line in &mut request.lines {
            line.reason_code = self.canonical(system, CrosswalkKind::Reason, &line.reason_code)?;
        }
        Ok(request)
    }

    /// A command in canonical codes: the condition codes of an inspection
    /// as `system` sent them, through its condition crosswalk (the same rule
    /// as [`Rules::translate`] for reasons). Other commands carry no system
    /// codes and pass unchanged.
    pub fn translate_command(&self, system: &str, command: Command) -> Result<Command, RulesError> {
        let Command::RecordInspection { mut inspections } = command else {
            return Ok(command);
        };
        for inspection in &mut inspections {
            inspection.condition =
                self.canonical(system, CrosswalkKind::Condition, &inspection.condition)?;
        }
        Ok(Command::RecordInspection { inspections })
    }

    /// The canonical code for `code` as `system` sent it: unchanged if the
    /// system has no crosswalk of `kind`, else its mapping, which must be a
    /// valid code of the same type.
    fn canonical<C>(&self, system: &str, kind: CrosswalkKind, code: &C) -> Result<C, RulesError>
    where
        C: Clone + std::fmt::Display + Code,
    {
        if !self.master.translates(system, kind) {
            return Ok(code.clone());
        }
        let canonical = self.master.to_canonical(system, kind, &code.to_string())?;
        C::parse_code(canonical).map_err(|e| {
            RulesError::Unmapped(Unmapped {
                system: system.to_owned(),
                kind,
                code: format!("{canonical} ({e})"),
                direction: backhaul_master::Direction::ToCanonical,
            })
        })
    }

    /// The policy's assessment of `request` at `now`; `None` without an
    /// active policy (partners then approve or reject themselves).
    /// `prior` is what the hub's own earlier returns of the same order took,
    /// per order line, in base units (see [`claimed_by`]).
    pub fn assess(
        &self,
        request: &ReturnRequest,
        prior: &BTreeMap<String, Decimal>,
        now: DateTime<Utc>,
    ) -> Result<Option<Assessment>, RulesError> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        let facts = self.request_facts(request, prior, now)?;
        Ok(Some(policy.assess(&facts)))
    }

    /// The facts of a request, from master data.
    pub fn request_facts(
        &self,
        request: &ReturnRequest,
        prior: &BTreeMap<String, Decimal>,
        now: DateTime<Utc>,
    ) -> Result<RequestFacts, RulesError> {
        let master = &self.master;
        let customer = master.customer(&request.customer);
        let ancestors = master.ancestors(&request.customer);
        let order = master.order(&request.order_ref);
        let mut value = Decimal::ZERO;
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            let facts = self.line_facts(line, order, prior)?;
            value += facts.value.amount();
            lines.push(facts);
        }
        Ok(RequestFacts {
            requested_at: now,
            channel: request.channel,
            currency: request.currency,
            customer: CustomerFacts {
                account: request.customer.clone(),
                parent: customer.and_then(|c| c.parent.clone()),
                ancestors: ancestors.iter().map(|c| c.account.clone()).collect(),
                segment: customer.map(|c| c.segment.to_string()).unwrap_or_default(),
                region: customer
                    .and_then(|c| c.region.as_ref().map(ToString::to_string))
                    .unwrap_or_default(),
                known: customer.is_some(),
            },
            order_ref: request.order_ref.clone(),
            order_found: order.is_some(),
            sold_at: order.map(|o| o.sold_at),
            value: Money::new(value, request.currency)
                .unwrap_or_else(|_| Money::zero(request.currency)),
            lines,
        })
    }

    fn line_facts(
        &self,
        line: &ReturnLine,
        order: Option<&OrderRecord>,
        prior: &BTreeMap<String, Decimal>,
    ) -> Result<LineFacts, RulesError> {
        let sku = self.master.sku(&line.sku);
        let order_line = order.and_then(|o| order_line_of(o, line));
        let uom_error = |e: backhaul_master::ConversionError| RulesError::UnknownUom {
            line_no: line.line_no.get(),
            message: e.to_string(),
        };
        // Quantities are compared in the SKU's base unit: a case of 12 is 12
        // each. Without the SKU there is nothing to convert with; the
        // policy's `sku.known` rule is what refuses such a line.
        let base = |q: Quantity, uom: &backhaul_domain::values::Uom| match sku {
            Some(s) => s.to_base(q, uom).map_err(uom_error),
            None => Ok(q),
        };
        let base_quantity = base(line.quantity, &line.uom)?;
        let (shipped, returned) = match order_line {
            Some(ol) => {
                let hub = prior.get(ol.line_ref.as_str()).copied().unwrap_or_default();
                let returned = base(ol.returned_quantity, &ol.uom)?;
                (
                    base(ol.shipped_quantity, &ol.uom)?,
                    Quantity::parse(&(returned.get() + hub).to_string()).unwrap_or(returned),
                )
            }
            None => (Quantity::ZERO, Quantity::ZERO),
        };
        let paid = line.unit_paid() * line.quantity.get();
        Ok(LineFacts {
            line_no: line.line_no,
            sku: line.sku.clone(),
            sku_known: sku.is_some(),
            category: sku.map(|s| s.category.to_string()).unwrap_or_default(),
            returnable: sku.is_some_and(|s| s.returnable),
            serial_controlled: sku.is_some_and(|s| s.control == backhaul_master::Control::Serial),
            lot_controlled: sku.is_some_and(|s| s.control == backhaul_master::Control::Lot),
            vendor: sku.and_then(|s| s.vendor.as_ref().map(ToString::to_string)),
            reason: line.reason_code.clone(),
            requested_outcome: line.requested_outcome,
            uom: line.uom.clone(),
            quantity: line.quantity,
            base_quantity,
            order_line_found: order_line.is_some(),
            shipped_at: order_line.and_then(|ol| ol.shipped_at),
            shipped_base_quantity: shipped,
            returned_base_quantity: returned,
            serials: line.serial_numbers.clone(),
            shipped_serials: order_line.map(|ol| ol.serials.clone()).unwrap_or_default(),
            unit_price: line.unit_price,
            unit_tax: line.unit_tax,
            value: Money::new(paid, line.unit_price.currency())
                .unwrap_or_else(|_| Money::zero(line.unit_price.currency())),
            declared_condition: None,
        })
    }

    /// The dispositions the policy decides for the units an inspection
    /// just recorded, with their restocking fees; `None` without a policy.
    /// `state` is the return after the inspection.
    pub fn dispositions(
        &self,
        state: &ReturnState,
        inspections: &[Inspection],
        now: DateTime<Utc>,
    ) -> Option<Command> {
        let policy = self.policy.as_ref()?;
        let header = state.header.as_ref()?;
        let request = &header.request;
        let order = self.master.order(&request.order_ref);
        let segment = self
            .master
            .customer(&request.customer)
            .map(|c| c.segment.to_string())
            .unwrap_or_default();
        let no_prior = BTreeMap::new();
        let mut dispositions = Vec::new();
        for inspection in inspections {
            let line: &LineState = state.lines.get(&inspection.line_no)?;
            let facts = self.line_facts(&line.line, order, &no_prior).ok()?;
            let agreement = facts
                .vendor
                .as_deref()
                .and_then(|v| backhaul_master::VendorId::parse(v).ok())
                .and_then(|v| self.master.vendor(&v))
                .and_then(|v| v.agreement.as_ref())
                .map(|a| VendorAgreementFacts {
                    accepts_returns: a.accepts_returns,
                    window_days: i64::from(a.window_days),
                    restocking_percent: a.restocking_percent.get(),
                });
            let unit = UnitFacts {
                line: facts,
                sold_at: order.map(|o| o.sold_at),
                condition: inspection.condition.clone(),
                customer_segment: segment.clone(),
                vendor_agreement: agreement,
                now,
            };
            let decision = policy.disposition(&unit);
            let fee = policy.fee(&unit);
            dispositions.push(DispositionLine {
                line_no: inspection.line_no,
                quantity: inspection.quantity,
                disposition: decision.disposition,
                serial_numbers: inspection.serial_numbers.clone(),
                restocking_fee: (!fee.fee.amount().is_zero()).then_some(fee.fee),
                location: decision.postings.iter().find_map(|p| match p {
                    Posting::InventoryIncrease { location }
                    | Posting::QuarantineStock { location } => ExternalRef::parse(location).ok(),
                    Posting::ScrapAdjustment
                    | Posting::SupplierClaim { .. }
                    | Posting::RepairOrder
                    | Posting::ReplacementOrder => None,
                }),
                // The claim's vendor is the SKU's, as the policy's posting
                // names it. A vendor id is always a valid reference (the
                // same characters, shorter).
                vendor: decision.postings.iter().find_map(|p| match p {
                    Posting::SupplierClaim { vendor } => {
                        vendor.as_deref().and_then(|v| ExternalRef::parse(v).ok())
                    }
                    Posting::InventoryIncrease { .. }
                    | Posting::QuarantineStock { .. }
                    | Posting::ScrapAdjustment
                    | Posting::RepairOrder
                    | Posting::ReplacementOrder => None,
                }),
                decided_by: Some(format!("{}/{}", decision.policy_version, decision.rule)),
            });
        }
        (!dispositions.is_empty()).then_some(Command::RecordDisposition { dispositions })
    }
}

/// A canonical code type a crosswalk can produce.
trait Code: Sized {
    fn parse_code(raw: &str) -> Result<Self, backhaul_domain::values::ValueError>;
}

impl Code for ReasonCode {
    fn parse_code(raw: &str) -> Result<Self, backhaul_domain::values::ValueError> {
        ReasonCode::parse(raw)
    }
}

impl Code for ConditionCode {
    fn parse_code(raw: &str) -> Result<Self, backhaul_domain::values::ValueError> {
        ConditionCode::parse(raw)
    }
}

/// The original order line a return line refers to: the one it names, or
/// else the first line of the order with the same SKU.
fn order_line_of<'a>(order: &'a OrderRecord, line: &ReturnLine) -> Option<&'a OrderLineRecord> {
    match &line.order_line_ref {
        Some(r) => order.lines.iter().find(|ol| &ol.line_ref == r),
        None => order.lines.iter().find(|ol| ol.sku == line.sku),
    }
}

/// What the hub's own returns of `order` already took per order line, in
/// base units: the authorised quantity of every return that was not
/// rejected, cancelled or expired (those gave their units back). The ERP's
/// `returned_quantity` covers returns it booked before or outside the hub.
pub fn claimed_by<'a>(
    rules: &Rules,
    order: &OrderRecord,
    returns: impl IntoIterator<Item = &'a ReturnState>,
) -> BTreeMap<String, Decimal> {
    let mut claimed = BTreeMap::new();
    for state in returns {
        if matches!(
            state.status(),
            backhaul_domain::Status::Rejected
                | backhaul_domain::Status::Cancelled
                | backhaul_domain::Status::Expired
        ) {
            continue;
        }
        for l in state.lines.values() {
            let Some(ol) = order_line_of(order, &l.line) else {
                continue;
            };
            // Before a decision the request holds its units.
            let units = if state.approved {
                l.authorized
            } else {
                l.line.quantity
            };
            let base = rules
                .master
                .sku(&l.line.sku)
                .and_then(|s| s.to_base(units, &l.line.uom).ok())
                .unwrap_or(units);
            *claimed
                .entry(ol.line_ref.to_string())
                .or_insert(Decimal::ZERO) += base.get();
        }
    }
    claimed
}
