//! [`MasterData`]: one revision of all master records, indexed in memory so
//! that validation, translation and the eligibility API look things up
//! without a database or the ERP. A snapshot is immutable; a new revision is
//! a new snapshot (share one behind an `Arc` and swap it).
//!
//! A snapshot is only ever built from records that passed `validate`, so
//! its hierarchy has no cycles and its crosswalks are unambiguous both ways.

use std::collections::{HashMap, HashSet};

use backhaul_domain::values::{CustomerAccount, ExternalRef, OrderRef, SiteCode, Sku};

use crate::problem::ImportErrors;
use crate::record::{
    CrosswalkEntry, CrosswalkKind, CustomerRecord, Kind, OrderLineRecord, OrderRecord, Record,
    SiteRecord, SkuRecord, VendorRecord,
};
use crate::values::{ExternalCode, SystemName, VendorId};

/// An order with its lines indexed by line reference and by SKU.
#[derive(Debug, Clone)]
struct IndexedOrder {
    record: OrderRecord,
    by_line: HashMap<ExternalRef, usize>,
    by_sku: HashMap<Sku, Vec<usize>>,
}

impl IndexedOrder {
    fn new(record: OrderRecord) -> IndexedOrder {
        let mut by_line = HashMap::with_capacity(record.lines.len());
        let mut by_sku: HashMap<Sku, Vec<usize>> = HashMap::new();
        for (i, line) in record.lines.iter().enumerate() {
            by_line.insert(line.line_ref.clone(), i);
            by_sku.entry(line.sku.clone()).or_default().push(i);
        }
        IndexedOrder {
            record,
            by_line,
            by_sku,
        }
    }
}

/// The codes of one system for one vocabulary, both ways.
#[derive(Debug, Clone, Default)]
pub(crate) struct Crosswalk {
    /// External code → entry.
    pub(crate) inbound: HashMap<ExternalCode, CrosswalkEntry>,
    /// Canonical code → the external code sent for it: the only one, or the
    /// preferred one.
    outbound: HashMap<String, ExternalCode>,
}

impl Crosswalk {
    fn rebuild_outbound(&mut self) {
        let mut outbound: HashMap<String, (ExternalCode, bool)> = HashMap::new();
        for entry in self.inbound.values() {
            let slot = outbound
                .entry(entry.canonical.clone())
                .or_insert_with(|| (entry.external.clone(), entry.preferred));
            // Validation guarantees exactly one preferred entry wherever a
            // canonical code has several; that one wins.
            if entry.preferred && !slot.1 {
                *slot = (entry.external.clone(), true);
            }
        }
        self.outbound = outbound.into_iter().map(|(k, (v, _))| (k, v)).collect();
    }
}

/// Which way a code was being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a system's code to the canonical one.
    ToCanonical,
    /// From the canonical code to a system's.
    FromCanonical,
}

/// A code no crosswalk maps: a business exception for a person to resolve
/// (add the mapping), never a silent default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Unmapped {
    pub system: String,
    pub kind: CrosswalkKind,
    /// The code that was looked up: the system's for
    /// [`Direction::ToCanonical`], the canonical one otherwise.
    pub code: String,
    pub direction: Direction,
}

impl Unmapped {
    fn describe(&self) -> String {
        match self.direction {
            Direction::ToCanonical => format!(
                "{} {} code {:?} is not mapped to a canonical {} code; add it to the crosswalks",
                self.system, self.kind, self.code, self.kind
            ),
            Direction::FromCanonical => format!(
                "canonical {} code {:?} has no {} code; add it to the crosswalks",
                self.kind, self.code, self.system
            ),
        }
    }
}

/// One revision of the master data, indexed.
#[derive(Debug, Clone, Default)]
pub struct MasterData {
    revision: i64,
    skus: HashMap<Sku, SkuRecord>,
    customers: HashMap<CustomerAccount, CustomerRecord>,
    sites: HashMap<SiteCode, SiteRecord>,
    orders: HashMap<OrderRef, IndexedOrder>,
    vendors: HashMap<VendorId, VendorRecord>,
    crosswalks: HashMap<SystemName, HashMap<CrosswalkKind, Crosswalk>>,
}

impl MasterData {
    /// No master data at all (revision 0, as an empty store).
    pub fn empty() -> MasterData {
        MasterData::default()
    }

    /// Validates `records` as one batch against nothing and indexes them.
    /// This is how a stored revision is loaded, so a store that somehow holds
    /// bad data is refused rather than half believed.
    pub fn from_records(revision: i64, records: Vec<Record>) -> Result<MasterData, ImportErrors> {
        let empty = MasterData::empty();
        crate::validate::validate(&empty, &records)?;
        let mut data = MasterData {
            revision,
            ..MasterData::default()
        };
        data.insert_all(records);
        Ok(data)
    }

    /// This snapshot with `records` (already validated against it) applied
    /// on top, as `revision`.
    pub(crate) fn merged(&self, records: &[Record], revision: i64) -> MasterData {
        let mut data = self.clone();
        data.revision = revision;
        data.insert_all(records.iter().cloned());
        data
    }

    fn insert_all(&mut self, records: impl IntoIterator<Item = Record>) {
        let mut touched = HashSet::new();
        for record in records {
            match record {
                Record::Sku(r) => {
                    self.skus.insert(r.sku.clone(), r);
                }
                Record::Customer(r) => {
                    self.customers.insert(r.account.clone(), r);
                }
                Record::Site(r) => {
                    self.sites.insert(r.site.clone(), r);
                }
                Record::Order(r) => {
                    self.orders
                        .insert(r.order_ref.clone(), IndexedOrder::new(r));
                }
                Record::Vendor(r) => {
                    self.vendors.insert(r.vendor.clone(), r);
                }
                Record::Crosswalk(r) => {
                    touched.insert((r.system.clone(), r.kind));
                    self.crosswalks
                        .entry(r.system.clone())
                        .or_default()
                        .entry(r.kind)
                        .or_default()
                        .inbound
                        .insert(r.external.clone(), r);
                }
            }
        }
        for (system, kind) in touched {
            if let Some(crosswalk) = self
                .crosswalks
                .get_mut(&system)
                .and_then(|by_kind| by_kind.get_mut(&kind))
            {
                crosswalk.rebuild_outbound();
            }
        }
    }

    /// The store revision this snapshot is (0 for no data).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// How many records of `kind` there are.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Sku => self.skus.len(),
            Kind::Customer => self.customers.len(),
            Kind::Site => self.sites.len(),
            Kind::Order => self.orders.len(),
            Kind::Vendor => self.vendors.len(),
            Kind::Crosswalk => self
                .crosswalks
                .values()
                .flat_map(HashMap::values)
                .map(|c| c.inbound.len())
                .sum(),
        }
    }

    pub fn sku(&self, sku: &Sku) -> Option<&SkuRecord> {
        self.skus.get(sku)
    }

    pub fn customer(&self, account: &CustomerAccount) -> Option<&CustomerRecord> {
        self.customers.get(account)
    }

    /// The customers above `account` in the hierarchy, nearest first (parent,
    /// then grandparent…); empty for an unknown account or one without a
    /// parent. Stops at a repeated account, so even a cycle (which
    /// validation refuses) cannot make it loop.
    pub fn ancestors(&self, account: &CustomerAccount) -> Vec<&CustomerRecord> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([account]);
        let mut next = self.customers.get(account).and_then(|c| c.parent.as_ref());
        while let Some(parent) = next {
            if !seen.insert(parent) {
                break;
            }
            let Some(record) = self.customers.get(parent) else {
                break;
            };
            out.push(record);
            next = record.parent.as_ref();
        }
        out
    }

    pub fn site(&self, site: &SiteCode) -> Option<&SiteRecord> {
        self.sites.get(site)
    }

    pub fn order(&self, order_ref: &OrderRef) -> Option<&OrderRecord> {
        self.orders.get(order_ref).map(|o| &o.record)
    }

    pub fn order_line(
        &self,
        order_ref: &OrderRef,
        line_ref: &ExternalRef,
    ) -> Option<&OrderLineRecord> {
        let order = self.orders.get(order_ref)?;
        let index = *order.by_line.get(line_ref)?;
        order.record.lines.get(index)
    }

    /// The lines of the order that carry `sku`, in order; empty when the
    /// order is unknown or has none.
    pub fn order_lines_for_sku(&self, order_ref: &OrderRef, sku: &Sku) -> Vec<&OrderLineRecord> {
        let Some(order) = self.orders.get(order_ref) else {
            return Vec::new();
        };
        order
            .by_sku
            .get(sku)
            .map(|indexes| {
                indexes
                    .iter()
                    .filter_map(|i| order.record.lines.get(*i))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn vendor(&self, vendor: &VendorId) -> Option<&VendorRecord> {
        self.vendors.get(vendor)
    }

    /// The canonical code `system` means by its `external` code.
    pub fn to_canonical(
        &self,
        system: &str,
        kind: CrosswalkKind,
        external: &str,
    ) -> Result<&str, Unmapped> {
        self.crosswalk(system, kind)
            .and_then(|c| c.inbound.get(external))
            .map(|entry| entry.canonical.as_str())
            .ok_or_else(|| Unmapped {
                system: system.to_owned(),
                kind,
                code: external.to_owned(),
                direction: Direction::ToCanonical,
            })
    }

    /// The code to send `system` for the `canonical` code: its only code
    /// for it, or the one marked preferred.
    pub fn from_canonical(
        &self,
        system: &str,
        kind: CrosswalkKind,
        canonical: &str,
    ) -> Result<&str, Unmapped> {
        self.crosswalk(system, kind)
            .and_then(|c| c.outbound.get(canonical))
            .map(ExternalCode::as_str)
            .ok_or_else(|| Unmapped {
                system: system.to_owned(),
                kind,
                code: canonical.to_owned(),
                direction: Direction::FromCanonical,
            })
    }

    /// Whether `system` has a crosswalk of `kind`: if not, it is taken to
    /// speak canonical codes; if so, every code it sends must be mapped.
    pub fn translates(&self, system: &str, kind: CrosswalkKind) -> bool {
        self.crosswalk(system, kind).is_some()
    }

    pub(crate) fn crosswalk(&self, system: &str, kind: CrosswalkKind) -> Option<&Crosswalk> {
        self.crosswalks.get(system)?.get(&kind)
    }

    pub(crate) fn orders(&self) -> impl Iterator<Item = &OrderRecord> {
        self.orders.values().map(|o| &o.record)
    }

    /// Whether a record with the same kind and key as `record` is stored,
    /// and if so whether it is the same.
    pub(crate) fn compare(&self, record: &Record) -> Stored {
        let stored = match record {
            Record::Sku(r) => self.skus.get(&r.sku).map(|s| s == r),
            Record::Customer(r) => self.customers.get(&r.account).map(|s| s == r),
            Record::Site(r) => self.sites.get(&r.site).map(|s| s == r),
            Record::Order(r) => self.order(&r.order_ref).map(|s| s == r),
            Record::Vendor(r) => self.vendors.get(&r.vendor).map(|s| s == r),
            Record::Crosswalk(r) => self
                .crosswalk(r.system.as_str(), r.kind)
                .and_then(|c| c.inbound.get(&r.external))
                .map(|s| s == r),
        };
        match stored {
            None => Stored::Absent,
            Some(true) => Stored::Same,
            Some(false) => Stored::Different,
        }
    }
}

/// How a record compares with what a snapshot holds under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Absent,
    Same,
    Different,
}
