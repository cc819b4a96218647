//! The sample policy that ships with the project loads and decides a few
//! everyday cases as its comments say it does, so it never rots.

// Helpers outside #[test] functions unwrap test data too.
#![allow(clippy::unwrap_used)]

mod common;

use backhaul_domain::eligibility::Verdict;
use backhaul_domain::model::Disposition;
use backhaul_policy::{Policy, Posting, VendorAgreementFacts};
use chrono::Duration;
use common::*;
use rust_decimal::Decimal;

const SAMPLE: &str = include_str!("../../../samples/policy.toml");

fn sample() -> Policy {
    Policy::load("samples/policy.toml", SAMPLE).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sample_policy_loads() {
    let p = sample();
    assert_eq!(p.version(), "2026-spring.1");
    assert_eq!(p.timezone(), chrono_tz::Europe::Berlin);
}

#[test]
fn sample_approves_an_ordinary_return_and_explains_every_rule() {
    let p = sample();
    let facts = request(vec![line(1), line(2)]);
    let a = p.assess(&facts);
    assert_eq!(a.verdict, Verdict::Approve, "{:#?}", a.rules);
    assert_eq!(a.policy_version, "2026-spring.1");
    assert_eq!(a.expires_at, Some(facts.requested_at + Duration::days(30)));
    // 4 request rules + 8 line rules for each of 2 lines.
    assert_eq!(a.rules.len(), 4 + 8 * 2);
    let window = a
        .rules
        .iter()
        .find(|r| r.rule == "window.standard")
        .unwrap();
    assert_eq!(window.message, "within the 30-day window (day 9)");
}

#[test]
fn sample_decides_everyday_cases() {
    let p = sample();
    struct Case {
        name: &'static str,
        given: fn(&mut backhaul_policy::RequestFacts),
        verdict: Verdict,
        failed: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "blocked customer",
            given: |f| f.customer.account = customer("C-900013"),
            verdict: Verdict::Reject,
            failed: &["customer.blocked"],
        },
        Case {
            name: "day 31 in Berlin though day 30 in UTC",
            given: |f| f.requested_at = at("2026-03-31T22:30:00Z"),
            verdict: Verdict::Reject,
            failed: &["window.standard"],
        },
        Case {
            name: "late, but the customer has an any-time return right",
            given: |f| {
                f.requested_at = at("2026-06-30T10:00:00Z");
                f.customer.account = customer("C-100001");
            },
            verdict: Verdict::Approve,
            failed: &[],
        },
        Case {
            name: "late defective goods: no window, but the warranty",
            given: |f| {
                f.requested_at = at("2026-06-30T10:00:00Z");
                f.lines[0].reason = reason("DEFECTIVE");
            },
            verdict: Verdict::Approve,
            failed: &[],
        },
        Case {
            name: "defective after the 6-month catch-all warranty",
            given: |f| {
                f.requested_at = at("2026-09-02T10:00:00Z");
                f.lines[0].reason = reason("DEFECTIVE");
            },
            verdict: Verdict::Reject,
            failed: &["warranty.defective"],
        },
        Case {
            name: "high value goes to review",
            given: |f| f.value = eur("5200.00"),
            verdict: Verdict::Review,
            failed: &["value.threshold"],
        },
        Case {
            name: "opened electronics go to review",
            given: |f| {
                f.lines[0].category = "electronics".into();
                f.lines[0].declared_condition =
                    Some(backhaul_domain::values::ConditionCode::parse("OPENED").unwrap());
            },
            verdict: Verdict::Review,
            failed: &["electronics.opened"],
        },
        Case {
            name: "more than remains returnable",
            given: |f| {
                f.lines[0].shipped_base_quantity = qty(5);
                f.lines[0].returned_base_quantity = qty(5);
            },
            verdict: Verdict::Reject,
            failed: &["quantity.available"],
        },
    ];
    for case in cases {
        let mut facts = request(vec![line(1)]);
        (case.given)(&mut facts);
        let a = p.assess(&facts);
        assert_eq!(a.verdict, case.verdict, "{}: {:#?}", case.name, a.rules);
        let failed: Vec<&str> = a.failures().map(|r| r.rule.as_str()).collect();
        assert_eq!(failed, case.failed, "{}", case.name);
    }
}

#[test]
fn sample_fees_and_dispositions() {
    let p = sample();

    let mut opened = unit("OPENED");
    opened.line.category = "electronics".into();
    let fee = p.fee(&opened);
    assert_eq!(fee.rule.as_deref(), Some("fee.opened_electronics"));
    assert_eq!(fee.fee, eur("15.00"));
    let d = p.disposition(&opened);
    assert_eq!(d.disposition, Disposition::Refurbish);
    assert_eq!(d.postings, vec![Posting::RepairOrder]);

    let new = unit("NEW");
    assert_eq!(p.fee(&new).fee, eur("0.00"));
    let d = p.disposition(&new);
    assert_eq!(d.rule, "disp.restock_new");
    assert_eq!(
        d.postings,
        vec![Posting::InventoryIncrease {
            location: "RET-STOCK".into()
        }]
    );

    let mut defective = unit("DEFECTIVE");
    defective.line.reason = reason("DEFECTIVE");
    defective.vendor_agreement = Some(VendorAgreementFacts {
        accepts_returns: true,
        window_days: 90,
        restocking_percent: Decimal::ZERO,
    });
    let fee = p.fee(&defective);
    assert_eq!(fee.rule.as_deref(), Some("fee.our_fault"));
    assert_eq!(fee.fee, eur("0.00"));
    let d = p.disposition(&defective);
    assert_eq!(d.disposition, Disposition::VendorReturn);
    assert_eq!(d.message, "defective in warranty: claim against ACME");

    let d = p.disposition(&unit("SMELLS"));
    assert_eq!(d.rule, "default_disposition");
    assert_eq!(
        d.postings,
        vec![Posting::QuarantineStock {
            location: "RET-QUAR".into()
        }]
    );
}
