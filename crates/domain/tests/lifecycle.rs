//! Given/when/then tables for `decide`: for every command, the events it
//! produces or the rejection code it is refused with, in every status where
//! the answer differs. The transition matrix at the bottom checks all
//! fourteen commands against all fourteen statuses (plus "no return"), so a
//! change to the transition table in `decide.rs` shows up as one cell here.

mod support;

use backhaul_domain::model::{
    CarrierMilestone, Disposition, FinancialDocumentKind, RequestedOutcome, ReturnLine,
};
use backhaul_domain::ownership::{Attribute, LineCorrection};
use backhaul_domain::values::{LineNo, Quantity};
use backhaul_domain::{Command, Event, Rejection, Status, decide, fold};
use support::*;

// ------------------------------------------------------------ histories ----

/// The default return: one line of two units of `SKU-A`, 12.00 paid per unit.
fn one_line() -> Vec<ReturnLine> {
    vec![line(1, "SKU-A", 2)]
}

/// The default authorisation deadline. It has passed by `now()`, so `expire`
/// is possible wherever the status allows it, and the matrix shows that.
fn deadline() -> Option<chrono::DateTime<chrono::Utc>> {
    Some(at(50))
}

fn plus(mut history: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    history.extend(more);
    history
}

fn h_requested() -> Vec<Event> {
    vec![requested(one_line())]
}

fn h_pending() -> Vec<Event> {
    plus(h_requested(), [held("fraud check")])
}

fn h_rejected() -> Vec<Event> {
    plus(h_requested(), [rejected("not eligible")])
}

fn h_approved() -> Vec<Event> {
    plus(h_requested(), [approved(&[(1, 2)], deadline())])
}

fn h_labelled() -> Vec<Event> {
    plus(h_approved(), [label_issued("LBL-1", None)])
}

fn h_in_transit() -> Vec<Event> {
    plus(h_labelled(), [scanned(CarrierMilestone::InTransit, at(20))])
}

fn h_partial() -> Vec<Event> {
    plus(h_labelled(), [received("RCV-1", &[(1, 1, 0)])])
}

fn h_received() -> Vec<Event> {
    plus(h_labelled(), [received("RCV-1", &[(1, 2, 0)])])
}

fn h_inspected() -> Vec<Event> {
    plus(h_received(), [inspected(&[(1, 2)])])
}

fn h_dispositioned() -> Vec<Event> {
    plus(
        h_inspected(),
        [dispositioned(&[(1, 2, Disposition::Restock)])],
    )
}

fn h_settled() -> Vec<Event> {
    plus(h_dispositioned(), [settled("STL-1", &[(1, 2, "24")])])
}

fn h_closed() -> Vec<Event> {
    plus(h_settled(), [closed()])
}

fn h_cancelled() -> Vec<Event> {
    plus(h_labelled(), [cancelled(true)])
}

fn h_expired() -> Vec<Event> {
    plus(h_approved(), [expired()])
}

/// Two lines of one SKU with a different SKU between them, to test matching
/// receipts by SKU.
fn h_same_sku_twice() -> Vec<Event> {
    vec![
        requested(vec![
            line(1, "SKU-A", 2),
            line(2, "SKU-B", 1),
            line(3, "SKU-A", 1),
        ]),
        approved(&[(1, 2), (2, 1), (3, 1)], None),
    ]
}

fn events(list: Vec<Event>) -> Then {
    Then::Events(list)
}

fn refused(code: &'static str) -> Then {
    Then::Rejected(code)
}

fn with_serials(mut l: ReturnLine, serial_count: u32) -> ReturnLine {
    l.serial_numbers = serials("SN", serial_count);
    l
}

// ---------------------------------------------------------------- request ----

fn request_cases() -> Vec<Case> {
    let two_lines = vec![line(1, "SKU-A", 2), line(2, "SKU-B", 1)];
    let mut eur_price = line(1, "SKU-A", 2);
    eur_price.unit_price = money("10.00", eur());
    let mut eur_tax = line(1, "SKU-A", 2);
    eur_tax.unit_tax = money("2.00", eur());
    let mut half_with_serial = line(1, "SKU-A", 1);
    half_with_serial.quantity = qd("1.5");
    half_with_serial.serial_numbers = serials("SN", 1);
    let mut repeated_serial = line(1, "SKU-A", 2);
    repeated_serial.serial_numbers = vec![serials("SN", 1)[0].clone(), serials("SN", 1)[0].clone()];

    vec![
        case(
            "a new return is opened with its RMA number",
            vec![],
            request_cmd(two_lines.clone()),
            events(vec![Event::ReturnRequested {
                return_id: return_id(),
                rma_number: return_id().rma_number(),
                request: request(two_lines),
                requested_at: now(),
            }]),
        ),
        case(
            "one serial per unit is accepted",
            vec![],
            request_cmd(vec![with_serials(line(1, "SKU-A", 2), 2)]),
            events(vec![Event::ReturnRequested {
                return_id: return_id(),
                rma_number: return_id().rma_number(),
                request: request(vec![with_serials(line(1, "SKU-A", 2), 2)]),
                requested_at: now(),
            }]),
        ),
        case(
            "the same return requested again",
            h_requested(),
            request_cmd(one_line()),
            refused("return_exists"),
        ),
        // A terminal return is still a stream: its id cannot be reused.
        case(
            "the same return requested after closing",
            h_closed(),
            request_cmd(one_line()),
            refused("return_exists"),
        ),
        case("no lines", vec![], request_cmd(vec![]), refused("no_lines")),
        case(
            "a line number used twice",
            vec![],
            request_cmd(vec![line(1, "SKU-A", 1), line(1, "SKU-B", 1)]),
            refused("duplicate_line"),
        ),
        case(
            "a line of zero units",
            vec![],
            request_cmd(vec![line(1, "SKU-A", 0)]),
            refused("quantity_not_positive"),
        ),
        case(
            "a unit price in EUR on a USD return",
            vec![],
            request_cmd(vec![eur_price]),
            refused("currency_mismatch"),
        ),
        case(
            "a unit tax in EUR on a USD return",
            vec![],
            request_cmd(vec![eur_tax]),
            refused("currency_mismatch"),
        ),
        case(
            "two units with one serial",
            vec![],
            request_cmd(vec![with_serials(line(1, "SKU-A", 2), 1)]),
            refused("serial_count_mismatch"),
        ),
        // Serials identify whole units, so a fractional quantity cannot have them.
        case(
            "1.5 units with a serial",
            vec![],
            request_cmd(vec![half_with_serial]),
            refused("serial_count_mismatch"),
        ),
        case(
            "the same serial twice on a line",
            vec![],
            request_cmd(vec![repeated_serial]),
            refused("invalid_command"),
        ),
    ]
}

#[test]
fn request_table() {
    run_table(&request_cases());
}

// ---------------------------------------------------------------- approve ----

fn approve_cases() -> Vec<Case> {
    let two_lines = || vec![requested(vec![line(1, "SKU-A", 2), line(2, "SKU-B", 3)])];
    vec![
        case(
            "approve every line in full",
            h_requested(),
            approve_all(),
            events(vec![Event::ReturnApproved {
                authorized: vec![lq(1, 2)],
                expires_at: None,
                approved_at: now(),
            }]),
        ),
        case(
            "a listed line is reduced, a line left out is authorised in full",
            two_lines(),
            approve(&[(1, 1)], Some(at(2_000))),
            events(vec![Event::ReturnApproved {
                authorized: vec![lq(1, 1), lq(2, 3)],
                expires_at: Some(at(2_000)),
                approved_at: now(),
            }]),
        ),
        case(
            "one line refused (zero) while another is authorised",
            two_lines(),
            approve(&[(1, 0)], None),
            events(vec![Event::ReturnApproved {
                authorized: vec![lq(1, 0), lq(2, 3)],
                expires_at: None,
                approved_at: now(),
            }]),
        ),
        case(
            "approve after manual review",
            h_pending(),
            approve_all(),
            events(vec![Event::ReturnApproved {
                authorized: vec![lq(1, 2)],
                expires_at: None,
                approved_at: now(),
            }]),
        ),
        case(
            "approve a return that does not exist",
            vec![],
            approve_all(),
            refused("return_not_found"),
        ),
        case(
            "approve after approval",
            h_approved(),
            approve_all(),
            refused("invalid_transition"),
        ),
        case(
            "approve a rejected return",
            h_rejected(),
            approve_all(),
            refused("invalid_transition"),
        ),
        case(
            "approve a closed return",
            h_closed(),
            approve_all(),
            refused("invalid_transition"),
        ),
        case(
            "approve a cancelled return",
            h_cancelled(),
            approve_all(),
            refused("invalid_transition"),
        ),
        case(
            "a line listed twice",
            two_lines(),
            approve(&[(1, 1), (1, 1)], None),
            refused("duplicate_line"),
        ),
        case(
            "a line not on the return",
            h_requested(),
            approve(&[(9, 1)], None),
            refused("unknown_line"),
        ),
        case(
            "authorise more than requested",
            h_requested(),
            approve(&[(1, 3)], None),
            refused("quantity_exceeds_available"),
        ),
        case(
            "authorise nothing at all (that is a rejection)",
            h_requested(),
            approve(&[(1, 0)], None),
            refused("invalid_command"),
        ),
        case(
            "a deadline that is now",
            h_requested(),
            approve(&[], Some(now())),
            refused("invalid_command"),
        ),
        case(
            "a deadline in the past",
            h_requested(),
            approve(&[], Some(at(10))),
            refused("invalid_command"),
        ),
    ]
}

#[test]
fn approve_table() {
    run_table(&approve_cases());
}

// ---------------------------------------------------- hold and reject ----

fn hold_and_reject_cases() -> Vec<Case> {
    vec![
        case(
            "hold a new request, reason trimmed",
            h_requested(),
            hold("  fraud check  "),
            events(vec![held("fraud check")]),
        ),
        case(
            "a reason of exactly 500 characters",
            h_requested(),
            hold(&"x".repeat(500)),
            events(vec![held(&"x".repeat(500))]),
        ),
        case(
            "hold a return that does not exist",
            vec![],
            hold("fraud check"),
            refused("return_not_found"),
        ),
        case(
            "hold twice",
            h_pending(),
            hold("again"),
            refused("invalid_transition"),
        ),
        case(
            "hold after approval",
            h_approved(),
            hold("too late"),
            refused("invalid_transition"),
        ),
        case(
            "hold with a blank reason",
            h_requested(),
            hold("   "),
            refused("invalid_command"),
        ),
        case(
            "hold with a 501 character reason",
            h_requested(),
            hold(&"x".repeat(501)),
            refused("invalid_command"),
        ),
        case(
            "reject a new request",
            h_requested(),
            reject("outside the return window"),
            events(vec![Event::ReturnRejected {
                reason: "outside the return window".into(),
                rejected_at: now(),
            }]),
        ),
        case(
            "reject after manual review",
            h_pending(),
            reject("fraud"),
            events(vec![Event::ReturnRejected {
                reason: "fraud".into(),
                rejected_at: now(),
            }]),
        ),
        case(
            "reject after approval",
            h_approved(),
            reject("changed our mind"),
            refused("invalid_transition"),
        ),
        case(
            "reject twice",
            h_rejected(),
            reject("again"),
            refused("invalid_transition"),
        ),
        case(
            "reject with an empty reason",
            h_requested(),
            reject(""),
            refused("invalid_command"),
        ),
    ]
}

#[test]
fn hold_and_reject_table() {
    run_table(&hold_and_reject_cases());
}

// ------------------------------------------------------------ issue_label ----

fn label_cases() -> Vec<Case> {
    let issued = |label_ref: &str, expires| {
        events(vec![Event::LabelIssued {
            label: label(label_ref, expires),
            issued_at: now(),
        }])
    };
    vec![
        case(
            "a label for an approved return",
            h_approved(),
            issue_label("LBL-2", Some(at(2_000))),
            issued("LBL-2", Some(at(2_000))),
        ),
        // Goods are goods: the customer may ship without our label, and the
        // label can still be issued afterwards.
        case(
            "a label after the units were received",
            plus(h_approved(), [received("RCV-1", &[(1, 2, 0)])]),
            issue_label("LBL-2", None),
            issued("LBL-2", None),
        ),
        case(
            "a label after a carrier scan without one",
            plus(h_approved(), [scanned(CarrierMilestone::InTransit, at(20))]),
            issue_label("LBL-2", None),
            issued("LBL-2", None),
        ),
        case(
            "a label before approval",
            h_requested(),
            issue_label("LBL-2", None),
            refused("invalid_transition"),
        ),
        case(
            "a label while pending review",
            h_pending(),
            issue_label("LBL-2", None),
            refused("invalid_transition"),
        ),
        case(
            "a second label",
            h_labelled(),
            issue_label("LBL-2", None),
            refused("duplicate"),
        ),
        case(
            "a label that expires now",
            h_approved(),
            issue_label("LBL-2", Some(now())),
            refused("invalid_command"),
        ),
        // The carrier created it before the cancellation reached it: it is
        // recorded (and the hub then asks the carrier to void it).
        case(
            "a late label for a cancelled return",
            plus(h_approved(), [cancelled(false)]),
            issue_label("LBL-2", None),
            issued("LBL-2", None),
        ),
        case(
            "a second label for a cancelled return",
            h_cancelled(),
            issue_label("LBL-2", None),
            refused("duplicate"),
        ),
    ]
}

#[test]
fn issue_label_table() {
    run_table(&label_cases());
}

// ------------------------------------------------ record_carrier_milestone ----

fn milestone_cases() -> Vec<Case> {
    let recorded = |m, occurred| {
        events(vec![Event::CarrierMilestoneRecorded {
            event: carrier_event(m, occurred),
            recorded_at: now(),
        }])
    };
    vec![
        case(
            "the parcel is picked up",
            h_labelled(),
            scan(CarrierMilestone::InTransit, at(20)),
            recorded(CarrierMilestone::InTransit, at(20)),
        ),
        case(
            "a scan before any label (customer used their own)",
            h_approved(),
            scan(CarrierMilestone::InTransit, at(20)),
            recorded(CarrierMilestone::InTransit, at(20)),
        ),
        case(
            "the identical scan again",
            h_in_transit(),
            scan(CarrierMilestone::InTransit, at(20)),
            refused("duplicate"),
        ),
        case(
            "the same milestone at another time",
            h_in_transit(),
            scan(CarrierMilestone::InTransit, at(21)),
            recorded(CarrierMilestone::InTransit, at(21)),
        ),
        // Scans arrive out of order; a late one is a fact worth keeping even
        // though it does not move the latest milestone (see the scenarios).
        case(
            "an older scan after delivery",
            plus(
                h_in_transit(),
                [scanned(CarrierMilestone::Delivered, at(40))],
            ),
            scan(CarrierMilestone::OutForDelivery, at(30)),
            recorded(CarrierMilestone::OutForDelivery, at(30)),
        ),
        case(
            "an older scan sent again after a later one",
            plus(
                h_in_transit(),
                [scanned(CarrierMilestone::Delivered, at(40))],
            ),
            scan(CarrierMilestone::InTransit, at(20)),
            refused("duplicate"),
        ),
        case(
            "a scan after receipt",
            h_received(),
            scan(CarrierMilestone::Delivered, at(90)),
            recorded(CarrierMilestone::Delivered, at(90)),
        ),
        case(
            "a scan before approval",
            h_requested(),
            scan(CarrierMilestone::InTransit, at(20)),
            refused("invalid_transition"),
        ),
        case(
            "a scan on a closed return",
            h_closed(),
            scan(CarrierMilestone::Delivered, at(90)),
            refused("invalid_transition"),
        ),
        case(
            "a scan on an unknown return",
            vec![],
            scan(CarrierMilestone::Delivered, at(90)),
            refused("return_not_found"),
        ),
    ]
}

#[test]
fn record_carrier_milestone_table() {
    run_table(&milestone_cases());
}

// ---------------------------------------------------------- record_receipt ----

fn receipt_cases() -> Vec<Case> {
    let got = |lines: Vec<backhaul_domain::model::ReceivedUnits>| {
        events(vec![Event::UnitsReceived {
            receipt_ref: xref("RCV-2"),
            lines,
            unexpected: Vec::new(),
            received_at: now(),
        }])
    };
    let mut with_sn = rline(None, "SKU-A", q(3));
    with_sn.serial_numbers = serials("SN", 3);
    let mut line1_sn = received_units(1, q(2), q(0));
    line1_sn.serial_numbers = serials("SN", 2);
    let mut line3_sn = received_units(3, q(1), q(0));
    line3_sn.serial_numbers = vec![serials("SN", 3)[2].clone()];
    let mut one_serial_two_units = rline(Some(1), "SKU-A", q(2));
    one_serial_two_units.serial_numbers = serials("SN", 1);
    let mut repeated_serial = rline(Some(1), "SKU-A", q(2));
    repeated_serial.serial_numbers = vec![serials("SN", 1)[0].clone(), serials("SN", 1)[0].clone()];

    vec![
        case(
            "units against their line",
            h_labelled(),
            receive("RCV-2", &[(1, "SKU-A", 2)]),
            got(vec![received_units(1, q(2), q(0))]),
        ),
        case(
            "units matched by SKU",
            h_labelled(),
            receipt("RCV-2", vec![rline(None, "SKU-A", q(1))]),
            got(vec![received_units(1, q(1), q(0))]),
        ),
        case(
            "a receipt before any label",
            h_approved(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            got(vec![received_units(1, q(1), q(0))]),
        ),
        case(
            "half a unit (exact decimals)",
            h_labelled(),
            receipt("RCV-2", vec![rline(Some(1), "SKU-A", qd("0.5"))]),
            got(vec![received_units(1, qd("0.5"), q(0))]),
        ),
        case(
            "three arrive where two were authorised",
            h_labelled(),
            receive("RCV-2", &[(1, "SKU-A", 3)]),
            got(vec![received_units(1, q(3), q(1))]),
        ),
        case(
            "after a full receipt, every further unit is over-received",
            h_received(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            got(vec![received_units(1, q(1), q(1))]),
        ),
        case(
            "the same line twice in one receipt counts cumulatively",
            h_labelled(),
            receive("RCV-2", &[(1, "SKU-A", 1), (1, "SKU-A", 2)]),
            got(vec![
                received_units(1, q(1), q(0)),
                received_units(1, q(2), q(1)),
            ]),
        ),
        case(
            "a SKU on two lines fills them in order, the excess goes to the last",
            h_same_sku_twice(),
            receipt("RCV-2", vec![rline(None, "SKU-A", q(4))]),
            got(vec![
                received_units(1, q(2), q(0)),
                received_units(3, q(2), q(1)),
            ]),
        ),
        case(
            "serials follow the units to their lines",
            h_same_sku_twice(),
            receipt("RCV-2", vec![with_sn]),
            got(vec![line1_sn, line3_sn]),
        ),
        case(
            "a SKU not on the return is kept as unexpected",
            h_labelled(),
            receipt(
                "RCV-2",
                vec![rline(None, "SKU-A", q(1)), rline(None, "SKU-Z", q(2))],
            ),
            events(vec![Event::UnitsReceived {
                receipt_ref: xref("RCV-2"),
                lines: vec![received_units(1, q(1), q(0))],
                unexpected: vec![unexpected_item("RCV-2", "SKU-Z", 2)],
                received_at: now(),
            }]),
        ),
        case(
            "the same receipt twice",
            h_received(),
            receive("RCV-1", &[(1, "SKU-A", 1)]),
            refused("duplicate"),
        ),
        case(
            "a receipt without lines",
            h_labelled(),
            receipt("RCV-2", vec![]),
            refused("invalid_command"),
        ),
        case(
            "zero units",
            h_labelled(),
            receive("RCV-2", &[(1, "SKU-A", 0)]),
            refused("quantity_not_positive"),
        ),
        case(
            "a line not on the return",
            h_labelled(),
            receive("RCV-2", &[(9, "SKU-A", 1)]),
            refused("unknown_line"),
        ),
        case(
            "a line number with another SKU",
            h_labelled(),
            receive("RCV-2", &[(1, "SKU-B", 1)]),
            refused("sku_mismatch"),
        ),
        case(
            "two units with one serial",
            h_labelled(),
            receipt("RCV-2", vec![one_serial_two_units]),
            refused("serial_count_mismatch"),
        ),
        case(
            "the same serial twice",
            h_labelled(),
            receipt("RCV-2", vec![repeated_serial]),
            refused("invalid_command"),
        ),
        case(
            "a receipt before approval",
            h_requested(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            refused("invalid_transition"),
        ),
        case(
            "a receipt while pending review",
            h_pending(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            refused("invalid_transition"),
        ),
        case(
            "a receipt on a cancelled return",
            h_cancelled(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            refused("invalid_transition"),
        ),
        case(
            "a receipt on an expired return",
            h_expired(),
            receive("RCV-2", &[(1, "SKU-A", 1)]),
            refused("invalid_transition"),
        ),
    ]
}

#[test]
fn record_receipt_table() {
    run_table(&receipt_cases());
}

// ------------------------------------------------------- record_inspection ----

fn inspection_cases() -> Vec<Case> {
    let mut new_one = inspection(1, q(1));
    new_one.condition = cond("NEW");
    let mut damaged_one = inspection(1, q(1));
    damaged_one.condition = cond("DAMAGED");
    let mut one_serial_two_units = inspection(1, q(2));
    one_serial_two_units.serial_numbers = serials("SN", 1);
    let only_unexpected = plus(
        h_labelled(),
        [Event::UnitsReceived {
            receipt_ref: xref("RCV-1"),
            lines: Vec::new(),
            unexpected: vec![unexpected_item("RCV-1", "SKU-Z", 1)],
            received_at: at(100),
        }],
    );
    vec![
        case(
            "inspect everything received",
            h_received(),
            inspect(&[(1, 2)]),
            events(vec![Event::UnitsInspected {
                inspections: vec![inspection(1, q(2))],
                inspected_at: now(),
            }]),
        ),
        case(
            "two conditions on one line",
            h_received(),
            Command::RecordInspection {
                inspections: vec![new_one.clone(), damaged_one.clone()],
            },
            events(vec![Event::UnitsInspected {
                inspections: vec![new_one, damaged_one],
                inspected_at: now(),
            }]),
        ),
        case(
            "inspect units of a partial receipt",
            h_partial(),
            inspect(&[(1, 1)]),
            events(vec![Event::UnitsInspected {
                inspections: vec![inspection(1, q(1))],
                inspected_at: now(),
            }]),
        ),
        case(
            "inspect more than received",
            h_received(),
            inspect(&[(1, 3)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "two entries for one line add up to more than received",
            h_received(),
            inspect(&[(1, 1), (1, 2)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "inspect again what was already inspected",
            plus(h_received(), [inspected(&[(1, 1)])]),
            inspect(&[(1, 2)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "a line not on the return",
            h_received(),
            inspect(&[(9, 1)]),
            refused("unknown_line"),
        ),
        case(
            "zero units",
            h_received(),
            inspect(&[(1, 0)]),
            refused("quantity_not_positive"),
        ),
        case(
            "two units with one serial",
            h_received(),
            Command::RecordInspection {
                inspections: vec![one_serial_two_units],
            },
            refused("serial_count_mismatch"),
        ),
        case(
            "no inspections",
            h_received(),
            inspect(&[]),
            refused("invalid_command"),
        ),
        case(
            "inspect before anything was received",
            h_in_transit(),
            inspect(&[(1, 1)]),
            refused("invalid_transition"),
        ),
        // Unexpected items are held for an operator, not inspected as lines.
        case(
            "only unexpected items were received",
            only_unexpected,
            inspect(&[(1, 1)]),
            refused("invalid_transition"),
        ),
        case(
            "inspect on a closed return",
            h_closed(),
            inspect(&[(1, 1)]),
            refused("invalid_transition"),
        ),
    ]
}

#[test]
fn record_inspection_table() {
    run_table(&inspection_cases());
}

// ------------------------------------------------------ record_disposition ----

fn disposition_cases() -> Vec<Case> {
    let mut one_serial_two_units = disposition(1, q(2), Disposition::Restock);
    one_serial_two_units.serial_numbers = serials("SN", 1);
    vec![
        case(
            "split the inspected units",
            h_inspected(),
            dispose(&[(1, 1, Disposition::Restock), (1, 1, Disposition::Scrap)]),
            events(vec![Event::UnitsDispositioned {
                dispositions: vec![
                    disposition(1, q(1), Disposition::Restock),
                    disposition(1, q(1), Disposition::Scrap),
                ],
                dispositioned_at: now(),
            }]),
        ),
        case(
            "disposition more than inspected",
            h_inspected(),
            dispose(&[(1, 3, Disposition::Restock)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "disposition units received but not yet inspected",
            plus(h_received(), [inspected(&[(1, 1)])]),
            dispose(&[(1, 2, Disposition::Restock)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "entries add up to more than inspected",
            h_inspected(),
            dispose(&[(1, 2, Disposition::Restock), (1, 1, Disposition::Scrap)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "disposition again what already has one",
            plus(
                h_inspected(),
                [dispositioned(&[(1, 1, Disposition::Scrap)])],
            ),
            dispose(&[(1, 2, Disposition::Restock)]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "a line not on the return",
            h_inspected(),
            dispose(&[(9, 1, Disposition::Restock)]),
            refused("unknown_line"),
        ),
        case(
            "zero units",
            h_inspected(),
            dispose(&[(1, 0, Disposition::Restock)]),
            refused("quantity_not_positive"),
        ),
        case(
            "two units with one serial",
            h_inspected(),
            Command::RecordDisposition {
                dispositions: vec![one_serial_two_units],
            },
            refused("serial_count_mismatch"),
        ),
        case(
            "no dispositions",
            h_inspected(),
            dispose(&[]),
            refused("invalid_command"),
        ),
        case(
            "disposition before inspection",
            h_received(),
            dispose(&[(1, 1, Disposition::Restock)]),
            refused("invalid_transition"),
        ),
        case(
            "disposition on an expired return",
            h_expired(),
            dispose(&[(1, 1, Disposition::Restock)]),
            refused("invalid_transition"),
        ),
    ]
}

#[test]
fn record_disposition_table() {
    run_table(&disposition_cases());
}

// ----------------------------------------------------------- link_document ----

fn document_cases() -> Vec<Case> {
    let linked_now = |doc| {
        events(vec![Event::DocumentLinked {
            document: doc,
            linked_at: now(),
        }])
    };
    let order = document(FinancialDocumentKind::ErpReturnOrder, "RO-1", None);
    let memo_24 = document(
        FinancialDocumentKind::CreditMemo,
        "CM-1",
        Some(usd_amt("24")),
    );
    vec![
        case(
            "an ERP return order on an approved return",
            h_approved(),
            link(order.clone()),
            linked_now(order.clone()),
        ),
        case(
            "a credit memo with its total",
            h_settled(),
            link(memo_24.clone()),
            linked_now(memo_24.clone()),
        ),
        // A refund confirmation may arrive after the return was closed.
        case(
            "a document after closing",
            h_closed(),
            link(memo_24.clone()),
            linked_now(memo_24.clone()),
        ),
        case(
            "a document after cancelling",
            h_cancelled(),
            link(order.clone()),
            linked_now(order.clone()),
        ),
        case(
            "a document after expiry",
            h_expired(),
            link(order.clone()),
            linked_now(order.clone()),
        ),
        case(
            "the same number as a different kind of document",
            plus(h_approved(), [linked(order.clone())]),
            link(document(FinancialDocumentKind::CreditMemo, "RO-1", None)),
            linked_now(document(FinancialDocumentKind::CreditMemo, "RO-1", None)),
        ),
        case(
            "the same document again",
            plus(h_approved(), [linked(order.clone())]),
            link(order.clone()),
            refused("duplicate"),
        ),
        case(
            "the same document again with another amount",
            plus(h_settled(), [linked(memo_24)]),
            link(document(
                FinancialDocumentKind::CreditMemo,
                "CM-1",
                Some(usd_amt("12")),
            )),
            refused("duplicate"),
        ),
        case(
            "a document amount in EUR on a USD return",
            h_settled(),
            link(document(
                FinancialDocumentKind::CreditMemo,
                "CM-1",
                Some(money("24", eur())),
            )),
            refused("currency_mismatch"),
        ),
        case(
            "a document before approval",
            h_requested(),
            link(order.clone()),
            refused("invalid_transition"),
        ),
        // Link is the one command allowed after the end, but only for
        // returns that were approved: a rejected one has no documents.
        case(
            "a document on a rejected return",
            h_rejected(),
            link(order),
            refused("invalid_transition"),
        ),
    ]
}

#[test]
fn link_document_table() {
    run_table(&document_cases());
}

// ------------------------------------------------------- record_settlement ----

fn settlement_cases() -> Vec<Case> {
    let settled_now = |lines: Vec<backhaul_domain::model::SettlementLine>| Event::UnitsSettled {
        settlement_ref: xref("STL-2"),
        lines,
        settled_at: now(),
    };
    let memo = credit_memo("CM-1");
    let replacement = plus(
        h_inspected(),
        [dispositioned(&[(1, 2, Disposition::Replacement)])],
    );
    vec![
        case(
            "credit exactly what was paid",
            h_dispositioned(),
            settle("STL-2", &[(1, 2, "24")]),
            events(vec![settled_now(vec![settlement_line(
                1,
                q(2),
                usd_amt("24"),
            )])]),
        ),
        case(
            "a replacement settles at zero",
            replacement,
            settle("STL-2", &[(1, 2, "0")]),
            events(vec![settled_now(vec![settlement_line(
                1,
                q(2),
                usd_amt("0"),
            )])]),
        ),
        case(
            "a settlement links the documents that carry it",
            h_dispositioned(),
            settle_with_documents("STL-2", &[(1, 2, "24")], vec![memo.clone()]),
            events(vec![
                settled_now(vec![settlement_line(1, q(2), usd_amt("24"))]),
                Event::DocumentLinked {
                    document: memo.clone(),
                    linked_at: now(),
                },
            ]),
        ),
        case(
            "a document listed twice in one settlement is linked once",
            h_dispositioned(),
            settle_with_documents("STL-2", &[(1, 2, "24")], vec![memo.clone(), memo.clone()]),
            events(vec![
                settled_now(vec![settlement_line(1, q(2), usd_amt("24"))]),
                Event::DocumentLinked {
                    document: memo.clone(),
                    linked_at: now(),
                },
            ]),
        ),
        // The limit is on the line's total, so credit not used by an earlier
        // settlement (a goodwill zero) may be used by a later one.
        case(
            "credit is capped per line in total, not per settlement",
            plus(h_dispositioned(), [settled("STL-1", &[(1, 1, "0")])]),
            settle("STL-2", &[(1, 1, "24")]),
            events(vec![settled_now(vec![settlement_line(
                1,
                q(1),
                usd_amt("24"),
            )])]),
        ),
        case(
            "one cent more than was paid",
            h_dispositioned(),
            settle("STL-2", &[(1, 2, "24.01")]),
            refused("credit_exceeds_paid"),
        ),
        case(
            "more than was paid for the one unit settled",
            h_dispositioned(),
            settle("STL-2", &[(1, 1, "12.01")]),
            refused("credit_exceeds_paid"),
        ),
        case(
            "a second settlement that takes the total over",
            plus(h_dispositioned(), [settled("STL-1", &[(1, 1, "12")])]),
            settle("STL-2", &[(1, 1, "12.01")]),
            refused("credit_exceeds_paid"),
        ),
        case(
            "settle more than dispositioned",
            h_dispositioned(),
            settle("STL-2", &[(1, 3, "24")]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "settle units inspected but not yet dispositioned",
            plus(
                h_inspected(),
                [dispositioned(&[(1, 1, Disposition::Restock)])],
            ),
            settle("STL-2", &[(1, 2, "24")]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "entries add up to more than dispositioned",
            h_dispositioned(),
            settle("STL-2", &[(1, 1, "12"), (1, 2, "0")]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "settle again what was settled",
            h_settled(),
            settle("STL-2", &[(1, 1, "0")]),
            refused("quantity_exceeds_available"),
        ),
        case(
            "an amount in EUR on a USD return",
            h_dispositioned(),
            Command::RecordSettlement(backhaul_domain::command::Settlement {
                settlement_ref: xref("STL-2"),
                lines: vec![settlement_line(1, q(2), money("24", eur()))],
                documents: Vec::new(),
            }),
            refused("currency_mismatch"),
        ),
        case(
            "a carried document in EUR",
            h_dispositioned(),
            settle_with_documents(
                "STL-2",
                &[(1, 2, "24")],
                vec![document(
                    FinancialDocumentKind::Refund,
                    "PSP-1",
                    Some(money("24", eur())),
                )],
            ),
            refused("currency_mismatch"),
        ),
        case(
            "the same settlement twice",
            plus(h_dispositioned(), [settled("STL-2", &[(1, 1, "12")])]),
            settle("STL-2", &[(1, 1, "12")]),
            refused("duplicate"),
        ),
        // Regression: two different documents under one number used to be
        // linked side by side.
        case(
            "two different documents under one number in one settlement",
            h_dispositioned(),
            settle_with_documents(
                "STL-2",
                &[(1, 2, "24")],
                vec![
                    memo.clone(),
                    document(
                        FinancialDocumentKind::CreditMemo,
                        "CM-1",
                        Some(usd_amt("24")),
                    ),
                ],
            ),
            refused("duplicate"),
        ),
        case(
            "a carried document that is already linked",
            plus(h_dispositioned(), [linked(memo.clone())]),
            settle_with_documents("STL-2", &[(1, 2, "24")], vec![memo]),
            refused("duplicate"),
        ),
        case(
            "a line not on the return",
            h_dispositioned(),
            settle("STL-2", &[(9, 1, "12")]),
            refused("unknown_line"),
        ),
        case(
            "zero units",
            h_dispositioned(),
            settle("STL-2", &[(1, 0, "0")]),
            refused("quantity_not_positive"),
        ),
        case(
            "a settlement without lines",
            h_dispositioned(),
            settle("STL-2", &[]),
            refused("invalid_command"),
        ),
        case(
            "settle before any disposition",
            h_inspected(),
            settle("STL-2", &[(1, 1, "12")]),
            refused("invalid_transition"),
        ),
        case(
            "settle on a closed return",
            h_closed(),
            settle("STL-2", &[(1, 1, "12")]),
            refused("invalid_transition"),
        ),
    ]
}

#[test]
fn record_settlement_table() {
    run_table(&settlement_cases());
}

// ------------------------------------------------------------------ close ----

fn close_cases() -> Vec<Case> {
    let closed_now = || events(vec![Event::ReturnClosed { closed_at: now() }]);
    let partial_settled = plus(
        h_partial(),
        [
            inspected(&[(1, 1)]),
            dispositioned(&[(1, 1, Disposition::Restock)]),
            settled("STL-1", &[(1, 1, "12")]),
        ],
    );
    vec![
        case(
            "every received unit is settled",
            h_settled(),
            Command::Close,
            closed_now(),
        ),
        // The transition table closes on "every received unit settled": the
        // stage says awaiting_remaining_units, but units the customer may
        // never send do not block an operator from closing.
        case(
            "half the units arrived and all of them are settled",
            partial_settled,
            Command::Close,
            closed_now(),
        ),
        case(
            "nothing received yet",
            h_in_transit(),
            Command::Close,
            refused("not_ready_to_close"),
        ),
        case(
            "units await inspection",
            h_received(),
            Command::Close,
            refused("not_ready_to_close"),
        ),
        case(
            "units await disposition",
            h_inspected(),
            Command::Close,
            refused("not_ready_to_close"),
        ),
        case(
            "units await settlement",
            h_dispositioned(),
            Command::Close,
            refused("not_ready_to_close"),
        ),
        case(
            "one of two units awaits settlement",
            plus(h_dispositioned(), [settled("STL-1", &[(1, 1, "12")])]),
            Command::Close,
            refused("not_ready_to_close"),
        ),
        case(
            "close twice",
            h_closed(),
            Command::Close,
            refused("invalid_transition"),
        ),
        case(
            "close a cancelled return",
            h_cancelled(),
            Command::Close,
            refused("invalid_transition"),
        ),
        case(
            "close a return that does not exist",
            vec![],
            Command::Close,
            refused("return_not_found"),
        ),
    ]
}

#[test]
fn close_table() {
    run_table(&close_cases());
}

// ----------------------------------------------------------------- cancel ----

fn cancel_cases() -> Vec<Case> {
    let cancelled_now = |label_voided| {
        events(vec![Event::ReturnCancelled {
            reason: "customer changed their mind".into(),
            label_voided,
            cancelled_at: now(),
        }])
    };
    vec![
        case(
            "cancel a new request",
            h_requested(),
            cancel("customer changed their mind"),
            cancelled_now(false),
        ),
        case(
            "cancel while pending review",
            h_pending(),
            cancel("customer changed their mind"),
            cancelled_now(false),
        ),
        case(
            "cancel an approved return without a label",
            h_approved(),
            cancel("customer changed their mind"),
            cancelled_now(false),
        ),
        case(
            "cancel after the label: it must be voided",
            h_labelled(),
            cancel("  customer changed their mind "),
            cancelled_now(true),
        ),
        case(
            "cancel in transit",
            h_in_transit(),
            cancel("customer changed their mind"),
            cancelled_now(true),
        ),
        case(
            "cancel after a partial receipt",
            h_partial(),
            cancel("customer changed their mind"),
            refused("units_already_received"),
        ),
        case(
            "cancel after everything was settled",
            h_settled(),
            cancel("customer changed their mind"),
            refused("units_already_received"),
        ),
        case(
            "cancel with a blank reason",
            h_approved(),
            cancel(" "),
            refused("invalid_command"),
        ),
        case(
            "cancel twice",
            h_cancelled(),
            cancel("again"),
            refused("invalid_transition"),
        ),
        case(
            "cancel a rejected return",
            h_rejected(),
            cancel("again"),
            refused("invalid_transition"),
        ),
        case(
            "cancel an expired return",
            h_expired(),
            cancel("again"),
            refused("invalid_transition"),
        ),
        case(
            "cancel a return that does not exist",
            vec![],
            cancel("nothing"),
            refused("return_not_found"),
        ),
    ]
}

#[test]
fn cancel_table() {
    run_table(&cancel_cases());
}

// ----------------------------------------------------------------- expire ----

fn expire_cases() -> Vec<Case> {
    let expired_now = || events(vec![Event::ReturnExpired { expired_at: now() }]);
    let approved_until = |until| plus(h_requested(), [approved(&[(1, 2)], until)]);
    vec![
        case(
            "the authorisation deadline has passed",
            h_approved(),
            Command::Expire,
            expired_now(),
        ),
        case(
            "exactly at the deadline",
            approved_until(Some(now())),
            Command::Expire,
            expired_now(),
        ),
        case(
            "the label's expiry has passed",
            plus(approved_until(None), [label_issued("LBL-1", Some(at(60)))]),
            Command::Expire,
            expired_now(),
        ),
        case(
            "a label printed but never picked up",
            plus(
                h_labelled(),
                [scanned(CarrierMilestone::PreTransit, at(10))],
            ),
            Command::Expire,
            expired_now(),
        ),
        case(
            "the parcel went back to the customer",
            plus(
                h_in_transit(),
                [scanned(CarrierMilestone::ReturnToSender, at(30))],
            ),
            Command::Expire,
            expired_now(),
        ),
        case(
            "before the deadline",
            approved_until(Some(at(2_000))),
            Command::Expire,
            refused("not_expired"),
        ),
        // The label's validity is what the customer holds in hand, so it
        // decides over the authorisation deadline.
        case(
            "the label is still valid though the authorisation passed",
            plus(h_approved(), [label_issued("LBL-1", Some(at(2_000)))]),
            Command::Expire,
            refused("not_expired"),
        ),
        case(
            "no deadline anywhere",
            plus(approved_until(None), [label_issued("LBL-1", None)]),
            Command::Expire,
            refused("no_expiry"),
        ),
        case(
            "the parcel is in transit",
            h_in_transit(),
            Command::Expire,
            refused("invalid_transition"),
        ),
        // Regression: the latest scan used to decide alone, so a delay or
        // exception after pick-up let the return expire in transit.
        case(
            "a carrier exception after pick-up",
            plus(
                h_in_transit(),
                [scanned(CarrierMilestone::Exception, at(30))],
            ),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "a delivery failure after pick-up",
            plus(h_in_transit(), [scanned(CarrierMilestone::Failure, at(30))]),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "an exception before the carrier ever had the parcel",
            plus(h_labelled(), [scanned(CarrierMilestone::Exception, at(30))]),
            Command::Expire,
            expired_now(),
        ),
        case(
            "the parcel was delivered",
            plus(
                h_in_transit(),
                [scanned(CarrierMilestone::Delivered, at(40))],
            ),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "units were received",
            h_partial(),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "not approved yet",
            h_requested(),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "already expired",
            h_expired(),
            Command::Expire,
            refused("invalid_transition"),
        ),
        case(
            "expire a return that does not exist",
            vec![],
            Command::Expire,
            refused("return_not_found"),
        ),
    ]
}

#[test]
fn expire_table() {
    run_table(&expire_cases());
}

// ------------------------------------------------------- transition matrix ----

const OK: &str = "ok";
const NF: &str = "return_not_found";
const EX: &str = "return_exists";
const INV: &str = "invalid_transition";
const DUP: &str = "duplicate";
const EXC: &str = "quantity_exceeds_available";
const NRC: &str = "not_ready_to_close";
const UAR: &str = "units_already_received";

/// One ordinary instance of every command, in the matrix's column order,
/// with the event type it produces when accepted.
fn matrix_commands() -> [(Command, &'static str); 16] {
    [
        (request_cmd(one_line()), "ReturnRequested"),
        (approve_all(), "ReturnApproved"),
        (hold("fraud check"), "ReturnHeldForReview"),
        (reject("not eligible"), "ReturnRejected"),
        (issue_label("LBL-2", None), "LabelIssued"),
        (
            scan(CarrierMilestone::Delivered, at(900)),
            "CarrierMilestoneRecorded",
        ),
        (receive("RCV-9", &[(1, "SKU-A", 1)]), "UnitsReceived"),
        (inspect(&[(1, 1)]), "UnitsInspected"),
        (
            dispose(&[(1, 1, Disposition::Restock)]),
            "UnitsDispositioned",
        ),
        (link(credit_memo("CM-9")), "DocumentLinked"),
        (settle("STL-9", &[(1, 1, "12")]), "UnitsSettled"),
        (Command::Close, "ReturnClosed"),
        (cancel("customer changed their mind"), "ReturnCancelled"),
        (Command::Expire, "ReturnExpired"),
        (
            Command::CorrectLine {
                system: "portal".into(),
                correction: LineCorrection {
                    line_no: ln(1),
                    unit_price: None,
                    unit_tax: None,
                    reason_code: None,
                    requested_outcome: Some(RequestedOutcome::Replacement),
                },
            },
            "LineCorrected",
        ),
        (
            Command::RecordRefusedUpdate {
                system: "portal".into(),
                refused: "correct_line".into(),
                attributes: vec![Attribute::Price],
            },
            "UpdateRefused",
        ),
    ]
}

/// Every status, the history that reaches it, and the outcome of each
/// matrix command. `None` is the return that does not exist yet.
#[rustfmt::skip]
fn matrix() -> Vec<(Option<Status>, Vec<Event>, [&'static str; 16])> {
    use Status as S;
    vec![
        //                                          request approve hold reject label scan receipt inspect dispose link settle close cancel expire correct refused
        (None,                    vec![],            [OK,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF ]),
        (Some(S::Requested),      h_requested(),     [EX,  OK,  OK,  OK,  INV, INV, INV, INV, INV, INV, INV, NRC, OK,  INV, OK,  OK ]),
        (Some(S::PendingReview),  h_pending(),       [EX,  OK,  INV, OK,  INV, INV, INV, INV, INV, INV, INV, NRC, OK,  INV, OK,  OK ]),
        (Some(S::Approved),       h_approved(),      [EX,  INV, INV, INV, OK,  OK,  OK,  INV, INV, OK,  INV, NRC, OK,  OK,  OK,  OK ]),
        (Some(S::LabelIssued),    h_labelled(),      [EX,  INV, INV, INV, DUP, OK,  OK,  INV, INV, OK,  INV, NRC, OK,  OK,  OK,  OK ]),
        (Some(S::InTransit),      h_in_transit(),    [EX,  INV, INV, INV, DUP, OK,  OK,  INV, INV, OK,  INV, NRC, OK,  INV, OK,  OK ]),
        (Some(S::PartiallyReceived), h_partial(),    [EX,  INV, INV, INV, DUP, OK,  OK,  OK,  INV, OK,  INV, NRC, UAR, INV, OK,  OK ]),
        (Some(S::Received),       h_received(),      [EX,  INV, INV, INV, DUP, OK,  OK,  OK,  INV, OK,  INV, NRC, UAR, INV, OK,  OK ]),
        (Some(S::Inspected),      h_inspected(),     [EX,  INV, INV, INV, DUP, OK,  OK,  EXC, OK,  OK,  INV, NRC, UAR, INV, OK,  OK ]),
        (Some(S::Dispositioned),  h_dispositioned(), [EX,  INV, INV, INV, DUP, OK,  OK,  EXC, EXC, OK,  OK,  NRC, UAR, INV, OK,  OK ]),
        (Some(S::Settled),        h_settled(),       [EX,  INV, INV, INV, DUP, OK,  OK,  EXC, EXC, OK,  EXC, OK,  UAR, INV, OK,  OK ]),
        (Some(S::Rejected),       h_rejected(),      [EX,  INV, INV, INV, INV, INV, INV, INV, INV, INV, INV, INV, INV, INV, INV, OK ]),
        (Some(S::Closed),         h_closed(),        [EX,  INV, INV, INV, INV, INV, INV, INV, INV, OK,  INV, INV, INV, INV, INV, OK ]),
        (Some(S::Cancelled),      h_cancelled(),     [EX,  INV, INV, INV, DUP, INV, INV, INV, INV, OK,  INV, INV, INV, INV, INV, OK ]),
        (Some(S::Expired),        h_expired(),       [EX,  INV, INV, INV, OK,  INV, INV, INV, INV, OK,  INV, INV, INV, INV, INV, OK ]),
    ]
}

#[test]
fn transition_matrix_covers_every_command_in_every_status() {
    let rows = matrix();
    // The matrix must list every status once, or a new status would go untested.
    let listed: Vec<Status> = rows.iter().filter_map(|(s, _, _)| *s).collect();
    for s in Status::ALL {
        assert_eq!(
            listed.iter().filter(|l| **l == s).count(),
            1,
            "status {} must appear exactly once in the matrix",
            s.as_str()
        );
    }

    let mut failures = Vec::new();
    for (status, history, outcomes) in rows {
        let state = fold(&history);
        let row = status.map_or("no return", Status::as_str);
        // The row's history must really reach the status it claims.
        if let Some(s) = status {
            assert_eq!(state.status(), s, "history of row {row}");
        } else {
            assert!(!state.exists());
        }
        for ((command, event_type), expected) in matrix_commands().iter().zip(outcomes) {
            let cell = format!("{row} × {}", command.name());
            match (decide(&state, command, now()), expected) {
                (Ok(events), OK) => {
                    if events.first().map(Event::event_type) != Some(*event_type) {
                        failures.push(format!("{cell}: expected {event_type}, got {events:?}"));
                    }
                }
                (Ok(events), code) => {
                    failures.push(format!("{cell}: expected {code}, got {events:?}"));
                }
                (Err(r), OK) => failures.push(format!("{cell}: expected ok, got {}", r.code())),
                (Err(r), code) => {
                    if r.code() != code {
                        failures.push(format!("{cell}: expected {code}, got {} ({r})", r.code()));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn terminal_returns_accept_only_documents() {
    // Whatever the terminal status, every command but link_document (and a
    // late label on a cancelled or expired return) is an
    // invalid transition that names the command and the status.
    for (history, status) in [
        (h_rejected(), Status::Rejected),
        (h_closed(), Status::Closed),
        (h_cancelled(), Status::Cancelled),
        (h_expired(), Status::Expired),
    ] {
        let state = fold(&history);
        for (command, _) in matrix_commands() {
            let outcome = decide(&state, &command, now());
            match &command {
                Command::Request { .. } => {
                    assert_eq!(outcome, Err(Rejection::AlreadyExists));
                }
                // A refused update is history, recorded in any status.
                Command::RecordRefusedUpdate { .. } => assert!(outcome.is_ok()),
                Command::LinkDocument(_) => {
                    assert_eq!(
                        outcome.is_ok(),
                        status != Status::Rejected,
                        "link_document on {}",
                        status.as_str()
                    );
                }
                // A late label on a cancelled or expired return is recorded
                // (to be voided); see the label table.
                Command::IssueLabel(_) if matches!(status, Status::Cancelled | Status::Expired) => {
                    assert!(
                        !matches!(outcome, Err(Rejection::InvalidTransition { .. })),
                        "issue_label on {}: {outcome:?}",
                        status.as_str()
                    );
                }
                Command::Approve(_)
                | Command::HoldForReview { .. }
                | Command::Reject { .. }
                | Command::IssueLabel(_)
                | Command::RecordCarrierMilestone(_)
                | Command::RecordReceipt(_)
                | Command::RecordInspection { .. }
                | Command::RecordDisposition { .. }
                | Command::RecordSettlement(_)
                | Command::Close
                | Command::Cancel { .. }
                | Command::Expire
                | Command::CorrectLine { .. } => {
                    assert_eq!(
                        outcome,
                        Err(Rejection::InvalidTransition {
                            command: command.name(),
                            status,
                        })
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------ rejection coverage ----

/// One value of every rejection, with its code. The exhaustive match makes a
/// new variant a compile error here, so the coverage check below cannot
/// silently miss it.
fn every_rejection_code() -> Vec<&'static str> {
    let l = LineNo::parse(1).expect("valid line");
    let samples = [
        Rejection::NotFound,
        Rejection::AlreadyExists,
        Rejection::InvalidTransition {
            command: "close",
            status: Status::Requested,
        },
        Rejection::NoLines,
        Rejection::DuplicateLine(l),
        Rejection::UnknownLine(l),
        Rejection::SkuMismatch {
            line_no: l,
            expected: String::new(),
            found: String::new(),
        },
        Rejection::CurrencyMismatch {
            field: String::new(),
            expected: String::new(),
            found: String::new(),
        },
        Rejection::QuantityNotPositive {
            field: String::new(),
        },
        Rejection::QuantityExceeds {
            line_no: l,
            what: "",
            requested: Quantity::ZERO,
            available: Quantity::ZERO,
        },
        Rejection::SerialCountMismatch {
            line_no: l,
            count: 0,
            quantity: Quantity::ZERO,
        },
        Rejection::CreditExceedsPaid {
            line_no: l,
            requested: String::new(),
            max: String::new(),
        },
        Rejection::Duplicate {
            kind: "",
            reference: String::new(),
        },
        Rejection::NotExpired {
            until: String::new(),
        },
        Rejection::NoExpiry,
        Rejection::UnitsAlreadyReceived,
        Rejection::NotReadyToClose(String::new()),
        Rejection::Invalid {
            field: String::new(),
            reason: String::new(),
        },
    ];
    let mut seen = [false; 18];
    for s in &samples {
        let index = match s {
            Rejection::NotFound => 0,
            Rejection::AlreadyExists => 1,
            Rejection::InvalidTransition { .. } => 2,
            Rejection::NoLines => 3,
            Rejection::DuplicateLine(_) => 4,
            Rejection::UnknownLine(_) => 5,
            Rejection::SkuMismatch { .. } => 6,
            Rejection::CurrencyMismatch { .. } => 7,
            Rejection::QuantityNotPositive { .. } => 8,
            Rejection::QuantityExceeds { .. } => 9,
            Rejection::SerialCountMismatch { .. } => 10,
            Rejection::CreditExceedsPaid { .. } => 11,
            Rejection::Duplicate { .. } => 12,
            Rejection::NotExpired { .. } => 13,
            Rejection::NoExpiry => 14,
            Rejection::UnitsAlreadyReceived => 15,
            Rejection::NotReadyToClose(_) => 16,
            Rejection::Invalid { .. } => 17,
        };
        seen[index] = true;
    }
    assert!(seen.iter().all(|s| *s), "a rejection variant has no sample");
    samples.iter().map(Rejection::code).collect()
}

#[test]
fn rejection_codes_are_distinct() {
    // Clients branch on the code, so two variants must never share one.
    let codes = every_rejection_code();
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "{codes:?}");
}

#[test]
fn every_rejection_code_is_exercised_by_a_table() {
    let tables = [
        request_cases(),
        approve_cases(),
        hold_and_reject_cases(),
        label_cases(),
        milestone_cases(),
        receipt_cases(),
        inspection_cases(),
        disposition_cases(),
        document_cases(),
        settlement_cases(),
        close_cases(),
        cancel_cases(),
        expire_cases(),
    ];
    let exercised: Vec<&str> = tables
        .iter()
        .flatten()
        .filter_map(|c| match c.then {
            Then::Rejected(code) => Some(code),
            Then::Events(_) => None,
        })
        .collect();
    let missing: Vec<&str> = every_rejection_code()
        .into_iter()
        .filter(|code| !exercised.contains(code))
        .collect();
    assert!(missing.is_empty(), "no table case expects {missing:?}");
}

#[test]
fn rejections_name_the_command_and_status() {
    // The message is what a partner's operator reads; it must say what was
    // refused and why, not just the code.
    let state = fold(&h_closed());
    let r = decide(&state, &approve_all(), now()).expect_err("closed returns refuse approve");
    assert_eq!(
        r.to_string(),
        "`approve` is not allowed while the return is closed"
    );
    let state = fold(&h_dispositioned());
    let r = decide(&state, &settle("STL-2", &[(1, 2, "24.01")]), now())
        .expect_err("over-credit is refused");
    assert_eq!(
        r.to_string(),
        "line 1: credit 24.01 USD exceeds the 24.00 USD paid for the settled units"
    );
}
