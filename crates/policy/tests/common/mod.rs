//! Builders for facts and policies shared by the policy tests. Defaults
//! describe an ordinary, eligible return; each test changes only what it is
//! about.
#![allow(dead_code, clippy::unwrap_used)]

use backhaul_domain::model::{Channel, RequestedOutcome};
use backhaul_domain::values::{
    ConditionCode, Currency, CustomerAccount, LineNo, Money, OrderRef, Quantity, ReasonCode,
    SerialNumber, Sku, Uom,
};
use backhaul_policy::{CustomerFacts, LineFacts, Policy, RequestFacts, UnitFacts};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

pub(crate) const HEADER: &str = r#"version = "test.1"
timezone = "Europe/Berlin"
approval_valid_days = 14
default_disposition = "quarantine"
"#;

/// Loads a policy made of the test header and `body`, panicking with the
/// errors if it does not load.
pub(crate) fn policy(body: &str) -> Policy {
    let text = format!("{HEADER}{body}");
    match Policy::load("test.toml", &text) {
        Ok(p) => p,
        Err(e) => panic!("policy did not load:\n{e}\n---\n{text}"),
    }
}

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

pub(crate) fn eur(amount: &str) -> Money {
    Money::new(
        amount.parse::<Decimal>().expect("test amount"),
        Currency::parse("EUR").unwrap(),
    )
    .unwrap()
}

pub(crate) fn qty(n: u32) -> Quantity {
    Quantity::from_units(n)
}

pub(crate) fn serial(s: &str) -> SerialNumber {
    SerialNumber::parse(s).unwrap()
}

/// An ordinary line: one unit of apparel shipped on 1 March 2026.
pub(crate) fn line(no: u32) -> LineFacts {
    LineFacts {
        line_no: LineNo::parse(no).unwrap(),
        sku: Sku::parse(&format!("SKU-{no}")).unwrap(),
        sku_known: true,
        category: "apparel".into(),
        returnable: true,
        serial_controlled: false,
        lot_controlled: false,
        vendor: Some("ACME".into()),
        reason: ReasonCode::parse("CHANGED_MIND").unwrap(),
        requested_outcome: RequestedOutcome::Refund,
        uom: Uom::parse("EA").unwrap(),
        quantity: qty(1),
        base_quantity: qty(1),
        order_line_found: true,
        shipped_at: Some(at("2026-03-01T12:00:00Z")),
        shipped_base_quantity: qty(1),
        returned_base_quantity: Quantity::ZERO,
        serials: vec![],
        shipped_serials: vec![],
        unit_price: eur("100.00"),
        unit_tax: eur("19.00"),
        value: eur("119.00"),
        declared_condition: None,
    }
}

/// An ordinary request on 10 March 2026 by a known retail customer.
pub(crate) fn request(lines: Vec<LineFacts>) -> RequestFacts {
    RequestFacts {
        requested_at: at("2026-03-10T10:00:00Z"),
        channel: Channel::Portal,
        currency: Currency::parse("EUR").unwrap(),
        customer: CustomerFacts {
            account: CustomerAccount::parse("C-1").unwrap(),
            parent: None,
            ancestors: vec![],
            segment: "retail".into(),
            region: "DE".into(),
            known: true,
        },
        order_ref: OrderRef::parse("SO-1").unwrap(),
        order_found: true,
        sold_at: Some(at("2026-02-27T09:00:00Z")),
        value: eur("119.00"),
        lines,
    }
}

/// A new unit of an ordinary line, inspected on 12 March 2026.
pub(crate) fn unit(condition: &str) -> UnitFacts {
    UnitFacts {
        line: line(1),
        sold_at: Some(at("2026-02-27T09:00:00Z")),
        condition: ConditionCode::parse(condition).unwrap(),
        customer_segment: "retail".into(),
        vendor_agreement: None,
        now: at("2026-03-12T10:00:00Z"),
    }
}

pub(crate) fn customer(account: &str) -> CustomerAccount {
    CustomerAccount::parse(account).unwrap()
}

pub(crate) fn reason(code: &str) -> ReasonCode {
    ReasonCode::parse(code).unwrap()
}
