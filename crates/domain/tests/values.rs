//! The edges of the value types, seen from the lifecycle: the largest
//! quantities and amounts that parse must go through every command without
//! the decimal arithmetic overflowing, because a panic in `decide` or
//! `status` would make the return unusable for good (every later command on
//! the stream would panic too).

mod support;

use backhaul_domain::model::Disposition;
use backhaul_domain::values::{Money, Quantity};
use backhaul_domain::{Command, ReturnSummary, Stage, Status};
use support::*;

/// The largest quantity and amount the value types accept.
const MAX_QUANTITY: &str = "10000000000";
const MAX_AMOUNT: &str = "10000000000000";

#[test]
fn quantities_beyond_the_maximum_are_refused_at_parse() {
    assert!(Quantity::parse(MAX_QUANTITY).is_ok());
    assert!(Quantity::parse("10000000000.000001").is_err());
    // `Decimal::MAX`: before the bound, two such lines made `totals()` panic.
    assert!(Quantity::parse("79228162514264337593543950335").is_err());
    assert!(serde_json::from_str::<Quantity>("\"10000000001\"").is_err());
    assert!(serde_json::from_str::<Quantity>("10000000001").is_err());
    // Every `u32` is a valid quantity, so `from_units` cannot build an invalid one.
    assert_eq!(Quantity::from_units(u32::MAX), qd(&u32::MAX.to_string()));
}

#[test]
fn amounts_beyond_the_maximum_are_refused_at_parse() {
    assert!(Money::new(dec(MAX_AMOUNT), usd()).is_ok());
    assert!(Money::new(dec("10000000000000.01"), usd()).is_err());
    assert!(Money::new(dec("79228162514264337593543950335"), usd()).is_err());
    assert!(
        serde_json::from_str::<Money>(r#"{"amount":"10000000000001","currency":"JPY"}"#).is_err()
    );
}

#[test]
fn the_largest_values_go_through_the_whole_lifecycle() {
    let big = || {
        let mut l = line(1, "SKU-A", 1);
        l.quantity = qd(MAX_QUANTITY);
        l.unit_price = usd_amt(MAX_AMOUNT);
        l.unit_tax = usd_amt(MAX_AMOUNT);
        l
    };
    let mut lines = vec![big(), big(), big()];
    for (i, l) in lines.iter_mut().enumerate() {
        l.line_no = ln(u32::try_from(i).expect("three lines") + 1);
    }
    let mut h = Harness::new();
    h.accept(request_cmd(lines));
    h.accept(approve_all());

    // Every line receives its maximum twice: a full receipt and as much again
    // over-received, so totals are six times the largest quantity.
    for receipt_ref in ["RCV-1", "RCV-2"] {
        h.accept(receipt(
            receipt_ref,
            (1..=3)
                .map(|n| rline(Some(n), "SKU-A", qd(MAX_QUANTITY)))
                .collect(),
        ));
    }
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    assert_eq!(h.line(1).over_received, qd(MAX_QUANTITY));

    for _ in 0..2 {
        h.accept(Command::RecordInspection {
            inspections: (1..=3).map(|n| inspection(n, qd(MAX_QUANTITY))).collect(),
        });
        h.accept(Command::RecordDisposition {
            dispositions: (1..=3)
                .map(|n| disposition(n, qd(MAX_QUANTITY), Disposition::Restock))
                .collect(),
        });
    }
    for settlement_ref in ["STL-1", "STL-2"] {
        h.accept(Command::RecordSettlement(
            backhaul_domain::command::Settlement {
                settlement_ref: xref(settlement_ref),
                lines: (1..=3)
                    .map(|n| settlement_line(n, qd(MAX_QUANTITY), usd_amt(MAX_AMOUNT)))
                    .collect(),
                documents: Vec::new(),
            },
        ));
    }
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");

    let summary = ReturnSummary::from_state(&h.state).expect("the return exists");
    // Six maximal receipts at twice the maximal amount per unit.
    assert_eq!(summary.paid_for_received, dec("1200000000000000000000000"));
    assert_eq!(summary.item.totals.credited, dec("60000000000000"));

    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");
}

/// Free text must be printable: a NUL in a reason is refused by the domain,
/// the same on every backend, instead of failing in PostgreSQL's `jsonb`.
#[test]
fn control_characters_in_free_text_are_refused() {
    use backhaul_domain::{Command, ReturnState, decide};
    let state = ReturnState::default();
    // The rule is checked on a return that exists, through `hold_for_review`.
    let request: backhaul_domain::model::ReturnRequest = serde_json::from_value(serde_json::json!({
        "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "uom": "EA", "reason_code": "DAMAGED",
                   "requested_outcome": "refund",
                   "unit_price": {"amount": "1.00", "currency": "USD"},
                   "unit_tax": {"amount": "0.00", "currency": "USD"}}]
    }))
    .unwrap();
    let id =
        backhaul_domain::values::ReturnId::parse("0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
        .unwrap()
        .to_utc();
    let events = decide(
        &state,
        &Command::Request {
            return_id: id,
            request,
            assessment: None,
        },
        now,
    )
    .unwrap();
    let state = backhaul_domain::fold(&events);
    let hold = |reason: &str| {
        decide(
            &state,
            &Command::HoldForReview {
                reason: reason.into(),
            },
            now,
        )
        .map_err(|r| r.code())
    };
    assert_eq!(hold("damaged\u{0}box"), Err("invalid_command"));
    assert_eq!(hold("line\nbreak"), Err("invalid_command"));
    assert!(hold("damaged box").is_ok());
}
