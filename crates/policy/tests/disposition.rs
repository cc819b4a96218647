//! Disposition and restocking fee rules through `Policy::disposition` and
//! `Policy::fee`, and the refund arithmetic of `refund`.

// Helpers outside #[test] functions unwrap test data too.
#![allow(clippy::unwrap_used)]

mod common;

use backhaul_domain::model::{Disposition, RequestedOutcome};
use backhaul_domain::values::{Currency, Money};
use backhaul_policy::{Posting, RefundError, VendorAgreementFacts, refund};
use common::*;
use rust_decimal::Decimal;

const DISPOSITIONS: &str = r#"
[[warranty]]
category = "*"
sold_from = 2020-01-01
months = 24

[[disposition]]
id = "d.vendor"
when = "unit.condition == 'DEFECTIVE' && unit.in_warranty && unit.within_vendor_window"
disposition = "vendor_return"
message = "claim against {sku.vendor}, day {unit.days_since_ship} of {unit.vendor_window_days}"

[[disposition]]
id = "d.replace"
when = "unit.condition == 'DEFECTIVE' && unit.in_warranty && line.requested_outcome == 'replacement'"
disposition = "replacement"

[[disposition]]
id = "d.new"
when = "unit.condition == 'NEW'"
disposition = "restock"

[[disposition]]
id = "d.opened"
when = "unit.condition == 'OPENED'"
disposition = "restock"
location = "B-STOCK"

[[disposition]]
id = "d.refurbish"
when = "sku.category == 'electronics' && unit.condition == 'USED'"
disposition = "refurbish"

[[disposition]]
id = "d.scrap"
when = "unit.condition in ['DAMAGED', 'USED']"
disposition = "scrap"
"#;

fn agreement(window_days: i64) -> Option<VendorAgreementFacts> {
    Some(VendorAgreementFacts {
        accepts_returns: true,
        window_days,
        restocking_percent: Decimal::from(10),
    })
}

#[test]
fn first_matching_disposition_wins_with_its_postings() {
    let p = policy(DISPOSITIONS);
    struct Case {
        name: &'static str,
        condition: &'static str,
        category: &'static str,
        outcome: RequestedOutcome,
        agreement: Option<VendorAgreementFacts>,
        rule: &'static str,
        disposition: Disposition,
        postings: Vec<Posting>,
    }
    let cases = [
        Case {
            name: "new goods go back to stock at the default location",
            condition: "NEW",
            category: "apparel",
            outcome: RequestedOutcome::Refund,
            agreement: None,
            rule: "d.new",
            disposition: Disposition::Restock,
            postings: vec![Posting::InventoryIncrease {
                location: "RETURNS".into(),
            }],
        },
        Case {
            name: "a rule's location overrides the default",
            condition: "OPENED",
            category: "apparel",
            outcome: RequestedOutcome::Refund,
            agreement: None,
            rule: "d.opened",
            disposition: Disposition::Restock,
            postings: vec![Posting::InventoryIncrease {
                location: "B-STOCK".into(),
            }],
        },
        Case {
            name: "used electronics match refurbish before scrap",
            condition: "USED",
            category: "electronics",
            outcome: RequestedOutcome::Refund,
            agreement: None,
            rule: "d.refurbish",
            disposition: Disposition::Refurbish,
            postings: vec![Posting::RepairOrder],
        },
        Case {
            name: "used apparel is scrapped",
            condition: "USED",
            category: "apparel",
            outcome: RequestedOutcome::Refund,
            agreement: None,
            rule: "d.scrap",
            disposition: Disposition::Scrap,
            postings: vec![Posting::ScrapAdjustment],
        },
        Case {
            name: "defective in warranty within the vendor's window: supplier claim",
            condition: "DEFECTIVE",
            category: "electronics",
            outcome: RequestedOutcome::Replacement,
            agreement: agreement(30),
            rule: "d.vendor",
            disposition: Disposition::VendorReturn,
            postings: vec![Posting::SupplierClaim {
                vendor: Some("ACME".into()),
            }],
        },
        Case {
            name: "outside the vendor's window (day 11 of 7): replacement order",
            condition: "DEFECTIVE",
            category: "electronics",
            outcome: RequestedOutcome::Replacement,
            agreement: agreement(7),
            rule: "d.replace",
            disposition: Disposition::Replacement,
            postings: vec![Posting::ReplacementOrder],
        },
        Case {
            name: "no rule matches: the default, quarantine",
            condition: "DEFECTIVE",
            category: "electronics",
            outcome: RequestedOutcome::Refund,
            agreement: None,
            rule: "default_disposition",
            disposition: Disposition::Quarantine,
            postings: vec![Posting::QuarantineStock {
                location: "QUARANTINE".into(),
            }],
        },
    ];
    for case in cases {
        let mut u = unit(case.condition);
        u.line.category = case.category.into();
        u.line.requested_outcome = case.outcome;
        u.vendor_agreement = case.agreement;
        let d = p.disposition(&u);
        assert_eq!(d.rule, case.rule, "{}", case.name);
        assert_eq!(d.disposition, case.disposition, "{}", case.name);
        assert_eq!(d.postings, case.postings, "{}", case.name);
        assert_eq!(d.policy_version, "test.1");
        assert!(d.notes.is_empty(), "{}: {:?}", case.name, d.notes);
    }
}

#[test]
fn disposition_messages_carry_the_facts() {
    let p = policy(DISPOSITIONS);
    let mut u = unit("DEFECTIVE");
    u.vendor_agreement = agreement(30);
    assert_eq!(
        p.disposition(&u).message,
        "claim against ACME, day 11 of 30"
    );
    assert_eq!(
        p.disposition(&unit("WET")).message,
        "no disposition rule matched; default quarantine"
    );
}

#[test]
fn warranty_expiry_changes_the_disposition() {
    let p = policy(DISPOSITIONS);
    let mut u = unit("DEFECTIVE");
    u.vendor_agreement = agreement(10_000);
    // Shipped 2026-03-01, 24 months: the last day is 2028-03-01.
    u.now = at("2028-03-01T20:00:00Z");
    assert_eq!(p.disposition(&u).rule, "d.vendor");
    u.now = at("2028-03-01T23:30:00Z"); // 2 March in Berlin
    assert_eq!(p.disposition(&u).rule, "default_disposition");
}

#[test]
fn a_disposition_rule_that_fails_to_evaluate_is_skipped_with_a_note() {
    let p = policy(
        r#"
[[disposition]]
id = "d.broken"
when = "line.unit_price / line.serial_count > 0"
disposition = "scrap"

[[disposition]]
id = "d.all"
when = "true"
disposition = "restock"
"#,
    );
    let d = p.disposition(&unit("NEW"));
    assert_eq!(d.rule, "d.all");
    assert_eq!(d.notes.len(), 1);
    assert!(
        d.notes[0].starts_with("rule \"d.broken\" could not be evaluated"),
        "{:?}",
        d.notes
    );
}

const FEES: &str = r#"
[[fee]]
id = "fee.key_account"
when = "unit.customer_segment == 'key_account'"
amount = "0"
message = "no fee for key accounts"

[[fee]]
id = "fee.opened_electronics"
when = "sku.category == 'electronics' && unit.condition == 'OPENED'"
percent = "15"

[[fee]]
id = "fee.used"
when = "unit.condition == 'USED' && line.reason != 'DEFECTIVE'"
percent = "25"
message = "{unit.condition}: 25% of {line.unit_price} cents"

[[fee]]
id = "fee.opened"
when = "unit.condition == 'OPENED'"
amount = "4.95"
"#;

#[test]
fn first_matching_fee_wins() {
    let p = policy(FEES);
    struct Case {
        name: &'static str,
        condition: &'static str,
        category: &'static str,
        segment: &'static str,
        reason: &'static str,
        price: &'static str,
        rule: Option<&'static str>,
        percent: Option<u32>,
        fee: &'static str,
    }
    let cases = [
        Case {
            name: "a waiver listed first beats every fee",
            condition: "OPENED",
            category: "electronics",
            segment: "key_account",
            reason: "CHANGED_MIND",
            price: "100.00",
            rule: Some("fee.key_account"),
            percent: None,
            fee: "0.00",
        },
        Case {
            name: "percentage of the net unit price",
            condition: "OPENED",
            category: "electronics",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "100.00",
            rule: Some("fee.opened_electronics"),
            percent: Some(15),
            fee: "15.00",
        },
        Case {
            name: "percentage rounded half away from zero: 15% of 0.10 is 0.015",
            condition: "OPENED",
            category: "electronics",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "0.10",
            rule: Some("fee.opened_electronics"),
            percent: Some(15),
            fee: "0.02",
        },
        Case {
            name: "percentage rounded: 15% of 19.99 is 2.9985",
            condition: "OPENED",
            category: "electronics",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "19.99",
            rule: Some("fee.opened_electronics"),
            percent: Some(15),
            fee: "3.00",
        },
        Case {
            name: "a fixed amount when the specific rule does not match",
            condition: "OPENED",
            category: "apparel",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "100.00",
            rule: Some("fee.opened"),
            percent: None,
            fee: "4.95",
        },
        Case {
            name: "a fixed amount never exceeds the unit price",
            condition: "OPENED",
            category: "apparel",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "3.00",
            rule: Some("fee.opened"),
            percent: None,
            fee: "3.00",
        },
        Case {
            name: "the reason matters: used and defective pays no fee",
            condition: "USED",
            category: "apparel",
            segment: "retail",
            reason: "DEFECTIVE",
            price: "100.00",
            rule: None,
            percent: None,
            fee: "0.00",
        },
        Case {
            name: "used for another reason",
            condition: "USED",
            category: "apparel",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "100.00",
            rule: Some("fee.used"),
            percent: Some(25),
            fee: "25.00",
        },
        Case {
            name: "no rule matches: no fee",
            condition: "NEW",
            category: "apparel",
            segment: "retail",
            reason: "CHANGED_MIND",
            price: "100.00",
            rule: None,
            percent: None,
            fee: "0.00",
        },
    ];
    for case in cases {
        let mut u = unit(case.condition);
        u.line.category = case.category.into();
        u.customer_segment = case.segment.into();
        u.line.reason = reason(case.reason);
        u.line.unit_price = eur(case.price);
        let f = p.fee(&u);
        assert_eq!(f.rule.as_deref(), case.rule, "{}", case.name);
        assert_eq!(f.percent, case.percent.map(Decimal::from), "{}", case.name);
        assert_eq!(f.fee, eur(case.fee), "{}", case.name);
        assert_eq!(
            f.fee.to_string(),
            format!("{} EUR", case.fee),
            "{}",
            case.name
        );
    }
}

#[test]
fn fee_messages_carry_the_facts() {
    let p = policy(FEES);
    let f = p.fee(&unit("USED"));
    assert_eq!(f.message, "USED: 25% of 10000 cents");
    let f = p.fee(&unit("NEW"));
    assert_eq!(f.message, "no restocking fee");
}

fn money(amount: &str, currency: &str) -> Money {
    Money::new(amount.parse().unwrap(), Currency::parse(currency).unwrap()).unwrap()
}

#[test]
fn refund_is_price_minus_fee_with_proportional_tax() {
    struct Case {
        name: &'static str,
        currency: &'static str,
        price: &'static str,
        tax: &'static str,
        fee: &'static str,
        refund_price: &'static str,
        refund_tax: &'static str,
        kept_fee: &'static str,
    }
    let cases = [
        Case {
            name: "no fee: everything back",
            currency: "EUR",
            price: "100.00",
            tax: "19.00",
            fee: "0",
            refund_price: "100.00",
            refund_tax: "19.00",
            kept_fee: "0.00",
        },
        Case {
            name: "15% fee: tax refunded in proportion",
            currency: "EUR",
            price: "100.00",
            tax: "19.00",
            fee: "15.00",
            refund_price: "85.00",
            refund_tax: "16.15",
            kept_fee: "15.00",
        },
        Case {
            name: "tax 3.80 x 16.99 / 19.99 = 3.2297… rounds to 3.23",
            currency: "EUR",
            price: "19.99",
            tax: "3.80",
            fee: "3.00",
            refund_price: "16.99",
            refund_tax: "3.23",
            kept_fee: "3.00",
        },
        Case {
            name: "an exact half cent rounds away from zero",
            currency: "EUR",
            price: "10.00",
            tax: "0.25",
            fee: "5.00",
            refund_price: "5.00",
            refund_tax: "0.13",
            kept_fee: "5.00",
        },
        Case {
            name: "a fee above the price is capped: nothing negative",
            currency: "EUR",
            price: "3.00",
            tax: "0.57",
            fee: "4.95",
            refund_price: "0.00",
            refund_tax: "0.00",
            kept_fee: "3.00",
        },
        Case {
            name: "a zero-price unit refunds zero tax",
            currency: "EUR",
            price: "0",
            tax: "1.00",
            fee: "0",
            refund_price: "0.00",
            refund_tax: "0.00",
            kept_fee: "0.00",
        },
        Case {
            name: "yen have no minor unit: 84.5 rounds to 85",
            currency: "JPY",
            price: "1000",
            tax: "100",
            fee: "155",
            refund_price: "845",
            refund_tax: "85",
            kept_fee: "155",
        },
        Case {
            name: "a unit price quoted to 4 places is rounded once, at the end",
            currency: "EUR",
            price: "9.9950",
            tax: "1.90",
            fee: "0",
            refund_price: "10.00",
            refund_tax: "1.90",
            kept_fee: "0.00",
        },
        Case {
            name: "three-decimal currency",
            currency: "KWD",
            price: "1.000",
            tax: "0.055",
            fee: "0.100",
            refund_price: "0.900",
            refund_tax: "0.050",
            kept_fee: "0.100",
        },
    ];
    for case in cases {
        let c = case.currency;
        let r = refund(
            &money(case.price, c),
            &money(case.tax, c),
            &money(case.fee, c),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(r.price, money(case.refund_price, c), "{}: price", case.name);
        assert_eq!(r.tax, money(case.refund_tax, c), "{}: tax", case.name);
        assert_eq!(r.fee, money(case.kept_fee, c), "{}: fee", case.name);
        assert_eq!(r.price.currency().code(), c);
        assert_eq!(r.total(), r.price.amount() + r.tax.amount());
    }
}

#[test]
fn refund_conserves_the_price_at_minor_units() {
    // For prices and fees in minor units, refunded price + fee is the unit
    // price, and the refunded tax never exceeds the original.
    for cents in [0_i64, 1, 99, 1999, 123_456] {
        for fee_cents in [0_i64, 1, 50, 1999, 200_000] {
            let price =
                Money::new(Decimal::new(cents, 2), Currency::parse("EUR").unwrap()).unwrap();
            let tax = Money::new(Decimal::new(cents * 19 / 100, 2), price.currency()).unwrap();
            let fee = Money::new(Decimal::new(fee_cents, 2), price.currency()).unwrap();
            let r = refund(&price, &tax, &fee).unwrap();
            assert_eq!(
                r.price.amount() + r.fee.amount(),
                price.amount(),
                "{price} - {fee}"
            );
            assert!(r.tax.amount() <= tax.amount(), "{price} - {fee}");
            assert!(!r.tax.amount().is_sign_negative() || r.tax.amount().is_zero());
        }
    }
}

#[test]
fn refund_refuses_mixed_currencies() {
    let err = refund(
        &money("10.00", "EUR"),
        &money("1.90", "USD"),
        &money("0", "EUR"),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RefundError::CurrencyMismatch {
            price: "EUR".into(),
            what: "tax",
            other: "USD".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "currency mismatch: unit price in EUR, tax in USD"
    );
}
