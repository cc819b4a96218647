//! The gate every master-data write goes through: a batch of records is
//! checked on its own and against the stored data *plus the batch itself*
//! (a batch may bring an order together with its new SKU), and either every
//! record is good or nothing is written.
//!
//! Rules checked here, beyond each record's own (`Record::issues`):
//! - no record twice in one batch;
//! - a SKU's vendor exists; a customer's parent exists and the hierarchy
//!   has no cycle; an order's customer and its lines' SKUs exist, each line's
//!   unit of measure is one of its SKU's, serials only on serial-controlled
//!   SKUs and no more of them than units shipped;
//! - a changed SKU does not invalidate a stored order line (a unit it
//!   drops, serials it no longer allows);
//! - crosswalks stay unambiguous outbound: where several codes of one
//!   system mean the same canonical code, exactly one is preferred.
//!
//! What is *not* checked: nothing is deleted by an import (records are
//! upserted), so nothing here guards against dangling references left by a
//! deletion.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use backhaul_domain::values::{CustomerAccount, OrderRef, Sku};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::problem::{ImportError, ImportErrors};
use crate::record::{
    Control, CrosswalkEntry, CrosswalkKind, CustomerRecord, Kind, OrderLineRecord, OrderRecord,
    Record, RecordRef, SkuRecord, VendorRecord,
};
use crate::snapshot::{MasterData, Stored};
use crate::values::{SystemName, VendorId};

/// What a batch does to one kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindChanges {
    /// Records whose key was not stored.
    pub created: usize,
    /// Records that replace a different stored record.
    pub updated: usize,
    /// Records identical to the stored ones: not written again.
    pub unchanged: usize,
}

/// What a batch does, per kind: the answer of a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Changes(BTreeMap<Kind, KindChanges>);

impl Changes {
    /// The changes to `kind` (all zero if the batch has none of it).
    pub fn of(&self, kind: Kind) -> KindChanges {
        self.0.get(&kind).copied().unwrap_or_default()
    }

    /// Records that will be (or were) written: created plus updated.
    pub fn written(&self) -> usize {
        self.0.values().map(|c| c.created + c.updated).sum()
    }

    fn count(&mut self, kind: Kind, stored: Stored) {
        let entry = self.0.entry(kind).or_default();
        match stored {
            Stored::Absent => entry.created += 1,
            Stored::Different => entry.updated += 1,
            Stored::Same => entry.unchanged += 1,
        }
    }
}

/// Checks `records` as one batch against `base` and says what writing them
/// would change. `Err` lists every problem found; a batch with any problem
/// must not be written at all.
pub fn validate(base: &MasterData, records: &[Record]) -> Result<Changes, ImportErrors> {
    check(base, records).map(|plan| plan.changes)
}

/// A validated batch: what it changes and which of its records to write.
pub(crate) struct Plan {
    pub(crate) changes: Changes,
    /// Indexes into the batch of the created and updated records.
    pub(crate) changed: Vec<usize>,
}

pub(crate) fn check(base: &MasterData, records: &[Record]) -> Result<Plan, ImportErrors> {
    let mut problems = Problems::default();
    let mut seen = HashSet::with_capacity(records.len());
    for record in records {
        let reference = record.reference();
        for issue in record.issues() {
            problems.push(
                RecordRef {
                    line_ref: issue.line_ref.map(|l| l.to_string()),
                    ..reference.clone()
                },
                issue.column,
                issue.message,
            );
        }
        if !seen.insert((reference.kind, reference.key.clone())) {
            let column = key_column(reference.kind);
            problems.push(
                reference,
                column,
                "appears more than once in this batch".to_owned(),
            );
        }
    }

    let view = View::new(base, records);
    for record in records {
        view.references(record, &mut problems);
    }
    view.stored_orders_stay_valid(&mut problems);
    view.no_hierarchy_cycles(&mut problems);
    view.crosswalks_unambiguous(&mut problems);

    if !problems.0.is_empty() {
        return Err(ImportErrors::new(problems.0));
    }
    let mut changes = Changes::default();
    let mut changed = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let stored = base.compare(record);
        changes.count(record.kind(), stored);
        if stored != Stored::Same {
            changed.push(i);
        }
    }
    Ok(Plan { changes, changed })
}

/// The column (or field) holding a record's key.
pub(crate) fn key_column(kind: Kind) -> &'static str {
    match kind {
        Kind::Sku => "sku",
        Kind::Customer => "account",
        Kind::Site => "site",
        Kind::Order => "order_ref",
        Kind::Vendor => "vendor",
        Kind::Crosswalk => "external",
    }
}

#[derive(Default)]
struct Problems(Vec<ImportError>);

impl Problems {
    fn push(&mut self, record: RecordRef, column: &str, message: String) {
        self.0.push(ImportError {
            file: None,
            line: None,
            record: Some(record),
            column: Some(column.to_owned()),
            message,
        });
    }
}

/// The stored data with the batch laid over it: what the data would be
/// after the write. Later records of the batch win over earlier ones with
/// the same key (which is itself reported).
struct View<'a> {
    base: &'a MasterData,
    skus: HashMap<&'a Sku, &'a SkuRecord>,
    customers: HashMap<&'a CustomerAccount, &'a CustomerRecord>,
    orders: HashMap<&'a OrderRef, &'a OrderRecord>,
    vendors: HashMap<&'a VendorId, &'a VendorRecord>,
    crosswalks: HashMap<(&'a SystemName, CrosswalkKind, &'a str), &'a CrosswalkEntry>,
}

impl<'a> View<'a> {
    fn new(base: &'a MasterData, records: &'a [Record]) -> View<'a> {
        let mut view = View {
            base,
            skus: HashMap::new(),
            customers: HashMap::new(),
            orders: HashMap::new(),
            vendors: HashMap::new(),
            crosswalks: HashMap::new(),
        };
        for record in records {
            match record {
                Record::Sku(r) => {
                    view.skus.insert(&r.sku, r);
                }
                Record::Customer(r) => {
                    view.customers.insert(&r.account, r);
                }
                Record::Order(r) => {
                    view.orders.insert(&r.order_ref, r);
                }
                Record::Vendor(r) => {
                    view.vendors.insert(&r.vendor, r);
                }
                Record::Crosswalk(r) => {
                    view.crosswalks
                        .insert((&r.system, r.kind, r.external.as_str()), r);
                }
                // Nothing refers to sites yet.
                Record::Site(_) => {}
            }
        }
        view
    }

    fn sku(&self, sku: &Sku) -> Option<&'a SkuRecord> {
        self.skus.get(sku).copied().or_else(|| self.base.sku(sku))
    }

    fn customer(&self, account: &CustomerAccount) -> Option<&'a CustomerRecord> {
        self.customers
            .get(account)
            .copied()
            .or_else(|| self.base.customer(account))
    }

    fn vendor_exists(&self, vendor: &VendorId) -> bool {
        self.vendors.contains_key(vendor) || self.base.vendor(vendor).is_some()
    }

    /// References from one record to others.
    fn references(&self, record: &Record, problems: &mut Problems) {
        let reference = record.reference();
        match record {
            Record::Sku(r) => {
                if let Some(vendor) = &r.vendor
                    && !self.vendor_exists(vendor)
                {
                    problems.push(
                        reference,
                        "vendor",
                        format!("vendor {vendor} does not exist"),
                    );
                }
            }
            Record::Customer(r) => {
                if let Some(parent) = &r.parent
                    && parent != &r.account
                    && self.customer(parent).is_none()
                {
                    problems.push(
                        reference,
                        "parent",
                        format!("parent account {parent} does not exist"),
                    );
                }
            }
            Record::Order(r) => {
                if self.customer(&r.customer).is_none() {
                    problems.push(
                        reference.clone(),
                        "customer",
                        format!("customer {} does not exist", r.customer),
                    );
                }
                for line in &r.lines {
                    for (column, message) in line_issues(self.sku(&line.sku), line) {
                        problems.push(
                            RecordRef {
                                line_ref: Some(line.line_ref.to_string()),
                                ..reference.clone()
                            },
                            column,
                            message,
                        );
                    }
                }
            }
            Record::Site(_) | Record::Vendor(_) | Record::Crosswalk(_) => {}
        }
    }

    /// A SKU of the batch must not make a stored order line (one the batch
    /// does not replace) invalid.
    fn stored_orders_stay_valid(&self, problems: &mut Problems) {
        if self.skus.is_empty() {
            return;
        }
        for order in self.base.orders() {
            if self.orders.contains_key(&order.order_ref) {
                continue;
            }
            for line in &order.lines {
                let Some(sku) = self.skus.get(&line.sku) else {
                    continue;
                };
                for (column, message) in line_issues(Some(sku), line) {
                    // Point at what in the SKU causes it.
                    let column = match column {
                        "serials" => "control",
                        _ => "conversions",
                    };
                    problems.push(
                        RecordRef {
                            kind: Kind::Sku,
                            key: sku.sku.to_string(),
                            line_ref: None,
                        },
                        column,
                        format!(
                            "stored order {} line {} would become invalid: {message}",
                            order.order_ref, line.line_ref
                        ),
                    );
                }
            }
        }
    }

    /// Walks up from every customer of the batch: a cycle after the write
    /// must pass through a changed customer, because the stored hierarchy
    /// has none. Each cycle is reported once.
    fn no_hierarchy_cycles(&self, problems: &mut Problems) {
        let mut reported: HashSet<BTreeSet<&CustomerAccount>> = HashSet::new();
        let mut starts: Vec<&&CustomerAccount> = self.customers.keys().collect();
        starts.sort();
        for start in starts {
            let mut path: Vec<&CustomerAccount> = vec![start];
            let mut on_path: HashSet<&CustomerAccount> = HashSet::from([*start]);
            let mut current = self.customer(start).and_then(|c| c.parent.as_ref());
            while let Some(parent) = current {
                if parent == *start {
                    let members: BTreeSet<&CustomerAccount> = path.iter().copied().collect();
                    if members.len() > 1 && reported.insert(members) {
                        let mut chain: Vec<String> = path.iter().map(ToString::to_string).collect();
                        chain.push(start.to_string());
                        problems.push(
                            RecordRef {
                                kind: Kind::Customer,
                                key: start.to_string(),
                                line_ref: None,
                            },
                            "parent",
                            format!("the hierarchy would have a cycle: {}", chain.join(" → ")),
                        );
                    }
                    break;
                }
                // A loop that does not come back to `start` is found from
                // one of its own members.
                if !on_path.insert(parent) {
                    break;
                }
                path.push(parent);
                current = self.customer(parent).and_then(|c| c.parent.as_ref());
            }
        }
    }

    /// Where the batch adds, changes or moves a crosswalk entry, the
    /// canonical codes it touches (old and new) must each have one code to
    /// send back: a single entry, or exactly one preferred.
    fn crosswalks_unambiguous(&self, problems: &mut Problems) {
        // (system, kind, canonical) → the batch entry that touched it first.
        let mut touched: BTreeMap<(&SystemName, CrosswalkKind, &str), &CrosswalkEntry> =
            BTreeMap::new();
        let mut entries: Vec<&&CrosswalkEntry> = self.crosswalks.values().collect();
        entries.sort_by_key(|e| (&e.system, e.kind, &e.external));
        for entry in entries {
            touched
                .entry((&entry.system, entry.kind, entry.canonical.as_str()))
                .or_insert(entry);
            let before = self
                .base
                .crosswalk(entry.system.as_str(), entry.kind)
                .and_then(|c| c.inbound.get(&entry.external));
            if let Some(before) = before {
                touched
                    .entry((&entry.system, entry.kind, before.canonical.as_str()))
                    .or_insert(entry);
            }
        }
        for ((system, kind, canonical), trigger) in touched {
            let mut codes: Vec<(&str, bool)> = Vec::new();
            if let Some(stored) = self.base.crosswalk(system.as_str(), kind) {
                for e in stored.inbound.values() {
                    let replaced =
                        self.crosswalks
                            .contains_key(&(system, kind, e.external.as_str()));
                    if !replaced && e.canonical == canonical {
                        codes.push((e.external.as_str(), e.preferred));
                    }
                }
            }
            for ((s, k, external), e) in &self.crosswalks {
                if *s == system && *k == kind && e.canonical == canonical {
                    codes.push((external, e.preferred));
                }
            }
            if codes.len() < 2 {
                continue;
            }
            codes.sort_unstable();
            let preferred: Vec<&str> = codes.iter().filter(|(_, p)| *p).map(|(c, _)| *c).collect();
            let all: Vec<&str> = codes.iter().map(|(c, _)| *c).collect();
            let message = match preferred.len() {
                1 => continue,
                0 => format!(
                    "canonical {kind} code {canonical} would have {} {system} codes ({}) and none is \
                     preferred: mark exactly one preferred, the code the hub sends to {system}",
                    all.len(),
                    all.join(", ")
                ),
                n => format!(
                    "canonical {kind} code {canonical} would have {n} preferred {system} codes ({}): \
                     only one may be preferred",
                    preferred.join(", ")
                ),
            };
            problems.push(
                RecordRef {
                    kind: Kind::Crosswalk,
                    key: crate::record::crosswalk_key(
                        &trigger.system,
                        trigger.kind,
                        trigger.external.as_str(),
                    ),
                    line_ref: None,
                },
                "preferred",
                message,
            );
        }
    }
}

/// What is wrong with an order line given its SKU (`None`: the SKU does
/// not exist).
fn line_issues(sku: Option<&SkuRecord>, line: &OrderLineRecord) -> Vec<(&'static str, String)> {
    let Some(sku) = sku else {
        return vec![("sku", format!("SKU {} does not exist", line.sku))];
    };
    let mut out = Vec::new();
    if let Err(e) = sku.to_base(line.quantity, &line.uom) {
        out.push(("uom", e.to_string()));
        return out;
    }
    if !line.serials.is_empty() {
        match sku.control {
            Control::Serial => {
                // Serials name units, so they are counted in base units.
                if let Ok(shipped) = sku.to_base(line.shipped_quantity, &line.uom) {
                    // A fraction of a unit carries no serial of its own.
                    let units = shipped.get().floor().to_u64().unwrap_or(u64::MAX);
                    let serials = u64::try_from(line.serials.len()).unwrap_or(u64::MAX);
                    if serials > units {
                        out.push((
                            "serials",
                            format!(
                                "{serials} serials for {shipped} {} shipped",
                                sku.base_uom
                            ),
                        ));
                    }
                }
            }
            Control::None | Control::Lot => out.push((
                "serials",
                format!(
                    "SKU {} is not serial-controlled (control is {}), so its lines carry no serials",
                    sku.sku,
                    sku.control.as_str()
                ),
            )),
        }
    }
    out
}
