//! Builders for records and CSV text shared by the tests.

use backhaul_domain::values::{
    Currency, CustomerAccount, ExternalRef, Money, OrderRef, Quantity, Sku, Uom,
};
use backhaul_master::{
    Code, Control, CrosswalkEntry, CrosswalkKind, CustomerRecord, ExternalCode, Factor,
    ImportErrors, Kind, MasterData, OrderLineRecord, OrderRecord, Record, SkuRecord, SystemName,
    UomConversion, VendorId, VendorRecord,
};
use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn sku(code: &str) -> Sku {
    Sku::parse(code).expect("valid SKU")
}

pub(crate) fn uom(code: &str) -> Uom {
    Uom::parse(code).expect("valid unit")
}

pub(crate) fn account(code: &str) -> CustomerAccount {
    CustomerAccount::parse(code).expect("valid account")
}

pub(crate) fn order_ref(code: &str) -> OrderRef {
    OrderRef::parse(code).expect("valid order reference")
}

pub(crate) fn line_ref(code: &str) -> ExternalRef {
    ExternalRef::parse(code).expect("valid line reference")
}

pub(crate) fn qty(raw: &str) -> Quantity {
    Quantity::parse(raw).expect("valid quantity")
}

pub(crate) fn usd(amount: &str) -> Money {
    money(amount, "USD")
}

pub(crate) fn money(amount: &str, currency: &str) -> Money {
    Money::new(
        amount.parse().expect("decimal"),
        Currency::parse(currency).expect("currency"),
    )
    .expect("valid money")
}

pub(crate) fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// A SKU counted in EA with the given `(unit, factor)` conversions.
pub(crate) fn sku_record(code: &str, control: Control, conversions: &[(&str, &str)]) -> SkuRecord {
    SkuRecord {
        sku: sku(code),
        description: format!("{code} for tests"),
        category: Code::parse("consumables").expect("code"),
        control,
        returnable: true,
        vendor: None,
        base_uom: uom("EA"),
        conversions: conversions
            .iter()
            .map(|(u, f)| UomConversion {
                uom: uom(u),
                factor: Factor::parse(f).expect("factor"),
            })
            .collect(),
    }
}

pub(crate) fn customer(code: &str, parent: Option<&str>) -> CustomerRecord {
    CustomerRecord {
        account: account(code),
        name: format!("Customer {code}"),
        parent: parent.map(account),
        segment: Code::parse("retail").expect("code"),
        region: None,
    }
}

pub(crate) fn vendor(code: &str) -> VendorRecord {
    VendorRecord {
        vendor: VendorId::parse(code).expect("vendor id"),
        name: format!("Vendor {code}"),
        agreement: None,
    }
}

/// One shipped line of `quantity` `unit`s at 10.00 USD.
pub(crate) fn line(line: &str, code: &str, quantity: &str, unit: &str) -> OrderLineRecord {
    OrderLineRecord {
        line_ref: line_ref(line),
        sku: sku(code),
        quantity: qty(quantity),
        uom: uom(unit),
        unit_price: usd("10.00"),
        unit_tax: usd("0.80"),
        shipped_at: Some(day(2)),
        shipped_quantity: qty(quantity),
        serials: Vec::new(),
        returned_quantity: Quantity::ZERO,
    }
}

pub(crate) fn order(code: &str, customer: &str, lines: Vec<OrderLineRecord>) -> OrderRecord {
    OrderRecord {
        order_ref: order_ref(code),
        customer: account(customer),
        currency: Currency::parse("USD").expect("currency"),
        sold_at: day(1),
        lines,
    }
}

pub(crate) fn crosswalk(
    system: &str,
    kind: CrosswalkKind,
    external: &str,
    canonical: &str,
    preferred: bool,
) -> CrosswalkEntry {
    CrosswalkEntry {
        system: SystemName::parse(system).expect("system"),
        kind,
        external: ExternalCode::parse(external).expect("external code"),
        canonical: canonical.to_owned(),
        preferred,
    }
}

/// A snapshot of `records`, which must be valid.
pub(crate) fn data(records: Vec<Record>) -> MasterData {
    MasterData::from_records(1, records).unwrap_or_else(|e| panic!("{e}"))
}

/// Every problem as its one-line text.
pub(crate) fn lines_of(errors: &ImportErrors) -> Vec<String> {
    errors.problems().iter().map(ToString::to_string).collect()
}

/// Parses CSV text that must be good.
pub(crate) fn parse_ok(kind: Kind, text: &str) -> Vec<Record> {
    backhaul_master::parse_csv(kind, "test.csv", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses CSV text that must be bad, and gives its problems as text.
pub(crate) fn parse_err(kind: Kind, file: &str, text: &str) -> Vec<String> {
    match backhaul_master::parse_csv(kind, file, text.as_bytes()) {
        Ok(records) => panic!("expected problems, parsed {records:?}"),
        Err(errors) => lines_of(&errors),
    }
}
