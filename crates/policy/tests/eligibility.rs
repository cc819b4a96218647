//! Eligibility rules through `Policy::assess`: each rule kind with its
//! edges, and how rule outcomes add up to line and request verdicts.

// Helpers outside #[test] functions unwrap test data too.
#![allow(clippy::unwrap_used)]

mod common;

use backhaul_domain::eligibility::{Assessment, RuleOutcome, Verdict};
use backhaul_domain::values::Quantity;
use chrono::{Duration, NaiveDate};
use common::*;

fn outcome<'a>(a: &'a Assessment, rule: &str, line: u32) -> &'a RuleOutcome {
    a.rules
        .iter()
        .find(|r| r.rule == rule && r.line_no.map(|l| l.get()) == Some(line))
        .unwrap_or_else(|| panic!("no outcome of {rule} for line {line} in {:#?}", a.rules))
}

fn request_outcome<'a>(a: &'a Assessment, rule: &str) -> &'a RuleOutcome {
    a.rules
        .iter()
        .find(|r| r.rule == rule && r.line_no.is_none())
        .unwrap_or_else(|| panic!("no request outcome of {rule} in {:#?}", a.rules))
}

const WINDOWS: &str = r#"
[lists]
window_exempt = ["C-EXEMPT"]

[[eligibility]]
id = "window.standard"
applies = "customer.segment != 'key_account' && !(customer.account in lists.window_exempt)"
require = "line.days_since_ship <= 30"
on_fail = "reject"
message = "returned {line.days_since_ship} days after shipping; the window is 30 days"

[[eligibility]]
id = "window.key_account"
applies = "customer.segment == 'key_account' && !(customer.account in lists.window_exempt)"
require = "line.days_since_ship <= 60"
on_fail = "reject"
message = "returned {line.days_since_ship} days after shipping; the key-account window is 60 days"
"#;

#[test]
fn return_window_by_segment_counts_local_calendar_days() {
    let berlin = policy(WINDOWS);
    let utc_policy = backhaul_policy::Policy::load(
        "utc.toml",
        &format!("{}{WINDOWS}", HEADER.replace("Europe/Berlin", "UTC")),
    )
    .unwrap();

    // Shipped 2026-03-01T12:00Z (13:00 in Berlin).
    struct Case {
        name: &'static str,
        requested_at: &'static str,
        segment: &'static str,
        account: &'static str,
        utc_policy: bool,
        verdict: Verdict,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "day 30 is the last day of the window",
            requested_at: "2026-03-31T10:00:00Z",
            segment: "retail",
            account: "C-1",
            utc_policy: false,
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            name: "day 31 is outside",
            requested_at: "2026-04-01T10:00:00Z",
            segment: "retail",
            account: "C-1",
            utc_policy: false,
            verdict: Verdict::Reject,
            message: "returned 31 days after shipping; the window is 30 days",
        },
        Case {
            name: "22:30 UTC on 31 March is already 1 April in Berlin: day 31",
            requested_at: "2026-03-31T22:30:00Z",
            segment: "retail",
            account: "C-1",
            utc_policy: false,
            verdict: Verdict::Reject,
            message: "returned 31 days after shipping; the window is 30 days",
        },
        Case {
            name: "the same instant is still day 30 under a UTC policy",
            requested_at: "2026-03-31T22:30:00Z",
            segment: "retail",
            account: "C-1",
            utc_policy: true,
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            name: "key accounts have 60 days: day 45 passes",
            requested_at: "2026-04-15T10:00:00Z",
            segment: "key_account",
            account: "C-1",
            utc_policy: false,
            verdict: Verdict::Approve,
            message: "not applicable",
        },
        Case {
            name: "key accounts: day 61 fails",
            requested_at: "2026-05-01T10:00:00Z",
            segment: "key_account",
            account: "C-1",
            utc_policy: false,
            verdict: Verdict::Reject,
            message: "not applicable",
        },
        Case {
            name: "an allow-listed customer skips the window",
            requested_at: "2026-09-01T10:00:00Z",
            segment: "retail",
            account: "C-EXEMPT",
            utc_policy: false,
            verdict: Verdict::Approve,
            message: "not applicable",
        },
    ];
    for case in cases {
        // Given
        let mut facts = request(vec![line(1)]);
        facts.requested_at = at(case.requested_at);
        facts.customer.segment = case.segment.into();
        facts.customer.account = customer(case.account);
        let p = if case.utc_policy {
            &utc_policy
        } else {
            &berlin
        };
        // When
        let a = p.assess(&facts);
        // Then
        assert_eq!(a.verdict, case.verdict, "{}", case.name);
        assert_eq!(
            outcome(&a, "window.standard", 1).message,
            case.message,
            "{}",
            case.name
        );
    }
}

#[test]
fn key_account_window_message_carries_the_facts() {
    let p = policy(WINDOWS);
    let mut facts = request(vec![line(1)]);
    facts.customer.segment = "key_account".into();
    facts.requested_at = at("2026-05-01T10:00:00Z");
    let a = p.assess(&facts);
    let o = outcome(&a, "window.key_account", 1);
    assert!(!o.passed);
    assert_eq!(o.on_fail, Verdict::Reject);
    assert_eq!(
        o.message,
        "returned 61 days after shipping; the key-account window is 60 days"
    );
}

const WARRANTY: &str = r#"
[[warranty]]
category = "electronics"
sold_from = 2020-01-01
months = 12

[[warranty]]
category = "electronics"
sold_from = "2026-01-01"
months = 24

[[eligibility]]
id = "warranty.defective"
applies = "line.reason == 'DEFECTIVE'"
require = "line.in_warranty"
on_fail = "reject"
message = "the {line.warranty_months}-month warranty ended on {line.warranty_until}"
"#;

#[test]
fn warranty_uses_the_terms_in_force_at_the_sale() {
    let p = policy(WARRANTY);
    struct Case {
        name: &'static str,
        sold_at: &'static str,
        requested_at: &'static str,
        verdict: Verdict,
        message: &'static str,
    }
    // Shipped 2026-01-02 in every case.
    let cases = [
        Case {
            name: "sold before the terms changed: 12 months, last day included",
            sold_at: "2025-12-31T10:00:00Z",
            requested_at: "2027-01-02T10:00:00Z",
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            name: "sold before the terms changed: the day after is out",
            sold_at: "2025-12-31T10:00:00Z",
            requested_at: "2027-01-03T10:00:00Z",
            verdict: Verdict::Reject,
            message: "the 12-month warranty ended on 2027-01-02",
        },
        Case {
            name: "sold on the day the new terms start: 24 months",
            sold_at: "2026-01-01T10:00:00Z",
            requested_at: "2027-01-03T10:00:00Z",
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            // 23:30 UTC on 31 December is 1 January in Berlin.
            name: "the sale date is a local date too",
            sold_at: "2025-12-31T23:30:00Z",
            requested_at: "2027-01-03T10:00:00Z",
            verdict: Verdict::Approve,
            message: "passed",
        },
    ];
    for case in cases {
        let mut l = line(1);
        l.category = "electronics".into();
        l.reason = reason("DEFECTIVE");
        l.shipped_at = Some(at("2026-01-02T09:00:00Z"));
        let mut facts = request(vec![l]);
        facts.sold_at = Some(at(case.sold_at));
        facts.requested_at = at(case.requested_at);
        let a = p.assess(&facts);
        assert_eq!(a.verdict, case.verdict, "{}", case.name);
        assert_eq!(
            outcome(&a, "warranty.defective", 1).message,
            case.message,
            "{}",
            case.name
        );
    }
}

#[test]
fn warranty_helper_reports_term_and_last_day() {
    let p = policy(WARRANTY);
    let w = p
        .warranty(
            "electronics",
            Some(at("2025-06-01T10:00:00Z")),
            Some(at("2025-06-03T10:00:00Z")),
            at("2026-06-03T10:00:00Z"),
        )
        .expect("electronics have terms");
    assert_eq!(w.months, 12);
    assert_eq!(w.terms_from, NaiveDate::from_ymd_opt(2020, 1, 1).unwrap());
    assert_eq!(w.until, NaiveDate::from_ymd_opt(2026, 6, 3).unwrap());
    assert!(w.active);
    assert_eq!(
        p.warranty(
            "apparel",
            Some(at("2025-06-01T10:00:00Z")),
            None,
            at("2025-06-02T10:00:00Z")
        ),
        None,
        "no terms for apparel and no catch-all"
    );
    assert_eq!(
        p.warranty(
            "electronics",
            Some(at("2019-06-01T10:00:00Z")),
            None,
            at("2019-06-02T10:00:00Z")
        ),
        None,
        "sold before any terms"
    );
}

const QUANTITY: &str = r#"
[[eligibility]]
id = "quantity.available"
require = "line.quantity <= line.available"
on_fail = "reject"
message = "{line.quantity} requested but only {line.available} remain returnable"
"#;

#[test]
fn quantity_is_limited_to_shipped_minus_returned_in_base_units() {
    let p = policy(QUANTITY);
    struct Case {
        name: &'static str,
        uom: &'static str,
        requested: u32,
        base: u32,
        shipped: u32,
        returned: u32,
        verdict: Verdict,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "everything shipped may come back",
            uom: "EA",
            requested: 10,
            base: 10,
            shipped: 10,
            returned: 0,
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            name: "a partial earlier return leaves 6",
            uom: "EA",
            requested: 7,
            base: 7,
            shipped: 10,
            returned: 4,
            verdict: Verdict::Reject,
            message: "7 requested but only 6 remain returnable",
        },
        Case {
            name: "exactly what remains",
            uom: "EA",
            requested: 6,
            base: 6,
            shipped: 10,
            returned: 4,
            verdict: Verdict::Approve,
            message: "passed",
        },
        Case {
            name: "1 case (12 each) when 10 each remain",
            uom: "CS",
            requested: 1,
            base: 12,
            shipped: 24,
            returned: 14,
            verdict: Verdict::Reject,
            message: "12 requested but only 10 remain returnable",
        },
        Case {
            name: "1 case (12 each) when 12 each remain",
            uom: "CS",
            requested: 1,
            base: 12,
            shipped: 24,
            returned: 12,
            verdict: Verdict::Approve,
            message: "passed",
        },
    ];
    for case in cases {
        let mut l = line(1);
        l.uom = backhaul_domain::values::Uom::parse(case.uom).unwrap();
        l.quantity = qty(case.requested);
        l.base_quantity = qty(case.base);
        l.shipped_base_quantity = qty(case.shipped);
        l.returned_base_quantity = qty(case.returned);
        let a = p.assess(&request(vec![l]));
        assert_eq!(a.verdict, case.verdict, "{}", case.name);
        assert_eq!(
            outcome(&a, "quantity.available", 1).message,
            case.message,
            "{}",
            case.name
        );
        let expected = match case.verdict {
            Verdict::Reject => Quantity::ZERO,
            Verdict::Approve | Verdict::Review => qty(case.requested),
        };
        assert_eq!(
            a.lines[0].eligible_quantity, expected,
            "eligible quantity is in the requested unit: {}",
            case.name
        );
    }
}

const SERIALS: &str = r#"
[[eligibility]]
id = "serial.match"
applies = "sku.serial_controlled"
require = "line.serial_count == line.quantity && line.serials_unique && line.serials_shipped"
on_fail = "reject"
message = "serials [{line.serials}] do not match the shipped serials [{line.shipped_serials}]"
"#;

#[test]
fn serialized_skus_need_the_shipped_serials() {
    let p = policy(SERIALS);
    struct Case {
        name: &'static str,
        serialized: bool,
        quantity: u32,
        serials: &'static [&'static str],
        passed: bool,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "the shipped serial",
            serialized: true,
            quantity: 1,
            serials: &["SN-1"],
            passed: true,
            message: "passed",
        },
        Case {
            name: "a serial that was never shipped",
            serialized: true,
            quantity: 1,
            serials: &["SN-9"],
            passed: false,
            message: "serials [SN-9] do not match the shipped serials [SN-1, SN-2]",
        },
        Case {
            name: "a missing serial",
            serialized: true,
            quantity: 1,
            serials: &[],
            passed: false,
            message: "serials [] do not match the shipped serials [SN-1, SN-2]",
        },
        Case {
            name: "one serial for two units",
            serialized: true,
            quantity: 2,
            serials: &["SN-1"],
            passed: false,
            message: "serials [SN-1] do not match the shipped serials [SN-1, SN-2]",
        },
        Case {
            name: "the same serial twice",
            serialized: true,
            quantity: 2,
            serials: &["SN-1", "SN-1"],
            passed: false,
            message: "serials [SN-1, SN-1] do not match the shipped serials [SN-1, SN-2]",
        },
        Case {
            name: "both shipped serials",
            serialized: true,
            quantity: 2,
            serials: &["SN-2", "SN-1"],
            passed: true,
            message: "passed",
        },
        Case {
            name: "not serialized: not applicable",
            serialized: false,
            quantity: 1,
            serials: &[],
            passed: true,
            message: "not applicable",
        },
    ];
    for case in cases {
        let mut l = line(1);
        l.serial_controlled = case.serialized;
        l.quantity = qty(case.quantity);
        l.base_quantity = qty(case.quantity);
        l.shipped_base_quantity = qty(2);
        l.serials = case.serials.iter().map(|s| serial(s)).collect();
        l.shipped_serials = vec![serial("SN-1"), serial("SN-2")];
        let a = p.assess(&request(vec![l]));
        let o = outcome(&a, "serial.match", 1);
        assert_eq!(o.passed, case.passed, "{}", case.name);
        assert_eq!(o.message, case.message, "{}", case.name);
    }
}

const BASICS: &str = r#"
[lists]
blocked_customers = ["C-BAD"]

[[eligibility]]
id = "customer.blocked"
scope = "request"
require = "!(customer.account in lists.blocked_customers)"
on_fail = "reject"
message = "account {customer.account} may not return goods"

[[eligibility]]
id = "value.threshold"
scope = "request"
require = "request.value <= 500000"
on_fail = "review"
message = "value {request.value} is above the review threshold"

[[eligibility]]
id = "sku.returnable"
require = "line.returnable"
on_fail = "reject"
message = "{line.sku} ({line.category}) cannot be returned"

[[eligibility]]
id = "sku.fragile"
require = "line.category != 'fragile'"
on_fail = "review"
message = "fragile goods are checked by a person"
"#;

#[test]
fn non_returnable_items_are_rejected() {
    let p = policy(BASICS);
    let mut l = line(1);
    l.returnable = false;
    l.category = "hazmat".into();
    let a = p.assess(&request(vec![l]));
    assert_eq!(a.verdict, Verdict::Reject);
    let o = outcome(&a, "sku.returnable", 1);
    assert!(!o.passed);
    assert_eq!(o.message, "SKU-1 (hazmat) cannot be returned");
    assert_eq!(a.expires_at, None);
}

#[test]
fn value_threshold_sends_the_request_to_review() {
    let p = policy(BASICS);
    for (value, verdict) in [("5000.00", Verdict::Approve), ("5000.01", Verdict::Review)] {
        let mut facts = request(vec![line(1)]);
        facts.value = eur(value);
        let a = p.assess(&facts);
        assert_eq!(a.verdict, verdict, "value {value}");
        let o = request_outcome(&a, "value.threshold");
        assert_eq!(o.line_no, None);
        assert_eq!(o.on_fail, Verdict::Review);
        if verdict == Verdict::Review {
            assert_eq!(o.message, "value 500001 is above the review threshold");
            assert_eq!(a.expires_at, None, "only approvals expire");
            assert_eq!(a.lines[0].eligible_quantity, qty(1));
        }
    }
}

#[test]
fn blocked_customers_are_rejected_on_every_line() {
    let p = policy(BASICS);
    let mut facts = request(vec![line(1), line(2)]);
    facts.customer.account = customer("C-BAD");
    let a = p.assess(&facts);
    assert_eq!(a.verdict, Verdict::Reject);
    assert!(
        a.lines
            .iter()
            .all(|l| l.verdict == Verdict::Reject && l.eligible_quantity == Quantity::ZERO)
    );
    assert_eq!(
        request_outcome(&a, "customer.blocked").message,
        "account C-BAD may not return goods"
    );
    assert!(a.reason(Verdict::Reject).contains("customer.blocked"));
}

#[test]
fn verdicts_add_up_from_lines() {
    let p = policy(BASICS);
    let ok = line(1);
    let mut rejected = line(2);
    rejected.returnable = false;
    let mut fragile = line(3);
    fragile.category = "fragile".into();

    struct Case {
        name: &'static str,
        lines: Vec<backhaul_policy::LineFacts>,
        value: &'static str,
        verdict: Verdict,
        line_verdicts: Vec<Verdict>,
    }
    let cases = [
        Case {
            name: "all approved",
            lines: vec![ok.clone()],
            value: "10.00",
            verdict: Verdict::Approve,
            line_verdicts: vec![Verdict::Approve],
        },
        Case {
            name: "a rejected line beside an approved one is simply not authorised",
            lines: vec![ok.clone(), rejected.clone()],
            value: "10.00",
            verdict: Verdict::Approve,
            line_verdicts: vec![Verdict::Approve, Verdict::Reject],
        },
        Case {
            name: "all lines rejected",
            lines: vec![rejected.clone()],
            value: "10.00",
            verdict: Verdict::Reject,
            line_verdicts: vec![Verdict::Reject],
        },
        Case {
            name: "any line in review puts the request in review",
            lines: vec![ok.clone(), rejected.clone(), fragile],
            value: "10.00",
            verdict: Verdict::Review,
            line_verdicts: vec![Verdict::Approve, Verdict::Reject, Verdict::Review],
        },
        Case {
            name: "a request-level review applies to every line, a rejection stays worse",
            lines: vec![ok, rejected],
            value: "9000.00",
            verdict: Verdict::Review,
            line_verdicts: vec![Verdict::Review, Verdict::Reject],
        },
        Case {
            name: "no lines: nothing to authorise",
            lines: vec![],
            value: "0.00",
            verdict: Verdict::Reject,
            line_verdicts: vec![],
        },
    ];
    for case in cases {
        let mut facts = request(case.lines);
        facts.value = eur(case.value);
        let a = p.assess(&facts);
        assert_eq!(a.verdict, case.verdict, "{}", case.name);
        assert_eq!(a.policy_version, "test.1");
        let got: Vec<Verdict> = a.lines.iter().map(|l| l.verdict).collect();
        assert_eq!(got, case.line_verdicts, "{}", case.name);
        for l in &a.lines {
            let expected = if l.verdict == Verdict::Reject {
                Quantity::ZERO
            } else {
                qty(1)
            };
            assert_eq!(l.eligible_quantity, expected, "{}", case.name);
        }
        let expected_expiry =
            (case.verdict == Verdict::Approve).then(|| facts.requested_at + Duration::days(14));
        assert_eq!(a.expires_at, expected_expiry, "{}", case.name);
    }
}

#[test]
fn every_rule_outcome_is_recorded_in_policy_order() {
    let p = policy(BASICS);
    let a = p.assess(&request(vec![line(1), line(2)]));
    let got: Vec<(String, Option<u32>, bool)> = a
        .rules
        .iter()
        .map(|r| (r.rule.clone(), r.line_no.map(|l| l.get()), r.passed))
        .collect();
    let expected = vec![
        ("customer.blocked".to_owned(), None, true),
        ("value.threshold".to_owned(), None, true),
        ("sku.returnable".to_owned(), Some(1), true),
        ("sku.returnable".to_owned(), Some(2), true),
        ("sku.fragile".to_owned(), Some(1), true),
        ("sku.fragile".to_owned(), Some(2), true),
    ];
    assert_eq!(got, expected);
}

#[test]
fn a_rule_that_cannot_be_evaluated_fails_with_its_on_fail() {
    let p = policy(
        r#"
[[eligibility]]
id = "price.per.serial"
require = "line.unit_price / line.serial_count > 0"
on_fail = "review"
message = "never shown"

[[eligibility]]
id = "applies.broken"
applies = "line.unit_price / line.serial_count > 0"
require = "true"
on_fail = "reject"
message = "never shown"
"#,
    );
    // No serials: division by zero at evaluation, not at load.
    let a = p.assess(&request(vec![line(1)]));
    let o = outcome(&a, "price.per.serial", 1);
    assert!(!o.passed);
    assert_eq!(o.on_fail, Verdict::Review);
    assert!(
        o.message
            .starts_with("the rule could not be evaluated (require): ")
            && o.message.contains("ivision by zero"),
        "{}",
        o.message
    );
    let o = outcome(&a, "applies.broken", 1);
    assert!(!o.passed);
    assert!(o.message.contains("(applies)"), "{}", o.message);
    assert_eq!(a.verdict, Verdict::Reject);
}

#[test]
fn request_rules_can_look_at_all_lines() {
    let p = policy(
        r#"
[[eligibility]]
id = "mixed.categories"
scope = "request"
require = "!lines.exists(l, l.category == 'hazmat') || request.line_count == 1"
on_fail = "review"
message = "hazmat mixed with other goods on {request.line_count} lines"
"#,
    );
    let mut hazmat = line(2);
    hazmat.category = "hazmat".into();
    let a = p.assess(&request(vec![line(1), hazmat]));
    assert_eq!(a.verdict, Verdict::Review);
    assert_eq!(
        request_outcome(&a, "mixed.categories").message,
        "hazmat mixed with other goods on 2 lines"
    );
    assert_eq!(p.assess(&request(vec![line(1)])).verdict, Verdict::Approve);
}
