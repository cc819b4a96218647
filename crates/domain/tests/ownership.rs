//! Governed attributes in the domain: which attributes a command sets, an
//! owner's correction and what it changes downstream, and a refused update
//! kept in the return's history.

mod support;

use backhaul_domain::action::{ActionKind, actions};
use backhaul_domain::model::{Disposition, RequestedOutcome};
use backhaul_domain::ownership::{Attribute, LineCorrection};
use backhaul_domain::values::ReasonCode;
use backhaul_domain::{Command, Event, Rejection, Status};
use support::*;

fn correction(line_no: u32) -> LineCorrection {
    LineCorrection {
        line_no: ln(line_no),
        unit_price: None,
        unit_tax: None,
        reason_code: None,
        requested_outcome: None,
    }
}

fn correct(c: LineCorrection) -> Command {
    Command::CorrectLine {
        system: "erp".into(),
        correction: c,
    }
}

#[test]
fn commands_name_the_attributes_they_set() {
    let cases: Vec<(Command, Vec<Attribute>)> = vec![
        (
            receive("R1", &[(1, "SKU-A", 1)]),
            vec![Attribute::QuantityReceived],
        ),
        (inspect(&[(1, 1)]), vec![Attribute::Condition]),
        (
            dispose(&[(1, 1, Disposition::Restock)]),
            vec![Attribute::Disposition],
        ),
        (
            correct(LineCorrection {
                unit_price: Some(usd_amt("9.00")),
                unit_tax: Some(usd_amt("0.90")),
                ..correction(1)
            }),
            vec![Attribute::Price, Attribute::Tax],
        ),
        (
            correct(LineCorrection {
                requested_outcome: Some(RequestedOutcome::Replacement),
                ..correction(1)
            }),
            vec![Attribute::CustomerIntent],
        ),
        (approve_all(), vec![]),
        (request_cmd(vec![line(1, "SKU-A", 1)]), vec![]),
    ];
    for (command, expected) in cases {
        assert_eq!(command.attributes(), expected, "{}", command.name());
    }
    for a in Attribute::ALL {
        assert_eq!(Attribute::parse(a.as_str()), Some(a));
    }
}

#[test]
fn a_price_correction_changes_the_credit_that_is_later_asked_for() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    h.accept(approve_all());
    let paid_before = h.line(1).line.unit_paid();
    h.accept(correct(LineCorrection {
        unit_price: Some(usd_amt("5.00")),
        unit_tax: Some(usd_amt("0.50")),
        reason_code: Some(ReasonCode::parse("SIZE_FIT").unwrap()),
        ..correction(1)
    }));
    assert_eq!(h.line(1).line.unit_paid(), dec("5.50"));
    assert_ne!(paid_before, dec("5.50"));
    assert_eq!(h.line(1).line.reason_code.as_str(), "SIZE_FIT");
    assert_eq!(
        h.state.status(),
        Status::Approved,
        "a correction moves nothing"
    );

    h.accept(receive("R1", &[(1, "SKU-A", 2)]));
    h.accept(inspect(&[(1, 2)]));
    let before = h.state.clone();
    let events = h.accept(dispose(&[(1, 2, Disposition::Restock)]));
    let memo = actions(&before, &h.state, &events, 9, h.now)
        .into_iter()
        .find(|a| a.kind == ActionKind::ErpCreditMemo)
        .expect("a credit memo is due");
    assert_eq!(memo.lines[0].amount.unwrap().amount(), dec("11.00"));

    // Once the credit is computed, price can no longer change here.
    let refused = h.refuse(correct(LineCorrection {
        unit_price: Some(usd_amt("1.00")),
        ..correction(1)
    }));
    assert!(matches!(refused, Rejection::Invalid { .. }), "{refused:?}");
    // Intent still can, until the end.
    h.accept(correct(LineCorrection {
        reason_code: Some(ReasonCode::parse("DAMAGED").unwrap()),
        ..correction(1)
    }));
}

#[test]
fn a_correction_must_name_something_in_the_right_currency() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    assert!(matches!(
        h.refuse(correct(correction(1))),
        Rejection::Invalid { .. }
    ));
    assert!(matches!(
        h.refuse(correct(LineCorrection {
            unit_price: Some(money("1.00", eur())),
            ..correction(1)
        })),
        Rejection::CurrencyMismatch { .. }
    ));
    assert_eq!(
        h.refuse(correct(LineCorrection {
            unit_price: Some(usd_amt("1.00")),
            ..correction(7)
        })),
        Rejection::UnknownLine(ln(7))
    );
}

#[test]
fn a_refused_update_is_recorded_in_any_status_and_changes_nothing() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    h.accept(reject("not ours"));
    let before = h.state.clone();
    let events = h.accept(Command::RecordRefusedUpdate {
        system: "portal".into(),
        refused: "correct_line".into(),
        attributes: vec![Attribute::Price],
    });
    assert!(matches!(
        &events[..],
        [Event::UpdateRefused { system, attributes, .. }]
            if system == "portal" && attributes == &vec![Attribute::Price]
    ));
    assert_eq!(h.state, before);
}
