//! End-to-end scenarios: one return driven command by command through
//! `decide` + `evolve` with a fake clock, checking status, stage and owner
//! after every step. The harness also checks the invariants and that the log
//! rebuilds the state after every accepted command.

mod support;

use backhaul_domain::model::{
    CarrierMilestone, Disposition, FinancialDocumentKind, RequestedOutcome,
};
use backhaul_domain::{Command, Event, ReturnState, ReturnSummary, Stage, Status, fold};
use chrono::Duration;
use support::*;

/// Request and approve a return of `lines`, checking the first two stages.
fn approved_return(lines: Vec<backhaul_domain::model::ReturnLine>) -> Harness {
    let mut h = Harness::new();
    h.accept(request_cmd(lines));
    h.expect(Status::Requested, Stage::AwaitingDecision, "hub");
    h.advance(Duration::hours(1));
    h.accept(approve_all());
    h.expect(Status::Approved, Stage::AwaitingLabel, "carrier");
    h
}

#[test]
fn happy_path_from_request_to_close() {
    let mut h = approved_return(vec![line(1, "SKU-A", 2)]);

    h.accept(issue_label("LBL-1", Some(h.now + Duration::days(14))));
    h.expect(Status::LabelIssued, Stage::AwaitingShipment, "customer");

    h.advance(Duration::days(1));
    h.accept(scan(CarrierMilestone::InTransit, h.now));
    h.expect(Status::InTransit, Stage::InTransit, "carrier");
    // The carrier does not count units: a moving parcel ships what was authorised.
    assert_eq!(h.line(1).shipped, q(2));

    h.advance(Duration::days(2));
    h.accept(scan(CarrierMilestone::Delivered, h.now));
    h.expect(Status::InTransit, Stage::InTransit, "carrier");
    assert_eq!(
        h.state.last_milestone.map(|(m, _)| m),
        Some(CarrierMilestone::Delivered)
    );

    h.advance(Duration::hours(3));
    h.accept(receive("RCV-1", &[(1, "SKU-A", 2)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");

    h.advance(Duration::hours(1));
    h.accept(inspect(&[(1, 2)]));
    h.expect(Status::Inspected, Stage::AwaitingDisposition, "warehouse");

    h.accept(dispose(&[(1, 2, Disposition::Restock)]));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");

    // Linking the ERP return order is bookkeeping: it moves nothing.
    h.accept(link(document(
        FinancialDocumentKind::ErpReturnOrder,
        "RO-1",
        None,
    )));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");

    h.advance(Duration::days(1));
    let memo = document(
        FinancialDocumentKind::CreditMemo,
        "CM-1",
        Some(usd_amt("24")),
    );
    let events = h.accept(settle_with_documents("STL-1", &[(1, 2, "24")], vec![memo]));
    assert_eq!(
        events.iter().map(Event::event_type).collect::<Vec<_>>(),
        ["UnitsSettled", "DocumentLinked"]
    );
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");

    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");

    // A refund confirmation that arrives after closing is still linked.
    h.advance(Duration::days(2));
    h.accept(link(document(FinancialDocumentKind::Refund, "PSP-9", None)));
    h.expect(Status::Closed, Stage::Done, "none");

    let t = h.state.totals();
    assert_eq!(
        (
            t.requested,
            t.authorized,
            t.received,
            t.inspected,
            t.dispositioned,
            t.settled
        ),
        (q(2), q(2), q(2), q(2), q(2), q(2))
    );
    assert_eq!(t.credited, dec("24"));
    assert_eq!(h.state.documents.len(), 3);
    assert!(h.state.flags().is_empty());
}

#[test]
fn manual_review_then_approval() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(hold("high value, first return"));
    h.expect(Status::PendingReview, Stage::ManualReview, "support");
    assert_eq!(h.state.reason.as_deref(), Some("high value, first return"));
    h.accept(approve_all());
    h.expect(Status::Approved, Stage::AwaitingLabel, "carrier");
}

#[test]
fn rejection_ends_the_return() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(hold("looks like fraud"));
    h.accept(reject("confirmed fraud"));
    h.expect(Status::Rejected, Stage::Done, "none");
    assert_eq!(h.state.reason.as_deref(), Some("confirmed fraud"));
    assert_eq!(h.refuse(approve_all()).code(), "invalid_transition");
}

#[test]
fn partial_receipts_wait_for_the_rest() {
    let mut h = approved_return(vec![line(1, "SKU-A", 10)]);
    h.accept(issue_label("LBL-1", None));
    h.accept(scan(CarrierMilestone::InTransit, h.now));

    // Six of ten arrive.
    h.advance(Duration::days(2));
    h.accept(receive("RCV-1", &[(1, "SKU-A", 6)]));
    h.expect(
        Status::PartiallyReceived,
        Stage::AwaitingInspection,
        "warehouse",
    );
    assert_eq!(h.refuse(Command::Close).code(), "not_ready_to_close");

    // The six are processed in full.
    h.accept(inspect(&[(1, 6)]));
    h.expect(Status::Inspected, Stage::AwaitingDisposition, "warehouse");
    h.accept(dispose(&[(1, 6, Disposition::Restock)]));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");
    h.accept(settle("STL-1", &[(1, 6, "72")]));
    // Everything that arrived is settled; the return now waits on the customer.
    h.expect(Status::Settled, Stage::AwaitingRemainingUnits, "customer");

    // The last four arrive a week later and reopen the warehouse's work.
    h.advance(Duration::days(7));
    h.accept(receive("RCV-2", &[(1, "SKU-A", 4)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    assert!(h.line(1).over_received.is_zero());
    assert_eq!(h.refuse(Command::Close).code(), "not_ready_to_close");

    h.accept(inspect(&[(1, 4)]));
    h.accept(dispose(&[(1, 4, Disposition::Restock)]));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");
    assert_eq!(h.refuse(Command::Close).code(), "not_ready_to_close");
    h.accept(settle("STL-2", &[(1, 4, "48")]));
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");

    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");
    assert_eq!(h.state.totals().credited, dec("120"));
    assert_eq!(h.state.receipts.len(), 2);
}

#[test]
fn one_line_split_over_three_dispositions() {
    let mut h = approved_return(vec![line(1, "SKU-A", 10)]);
    h.accept(receive("RCV-1", &[(1, "SKU-A", 10)]));
    let mut new = inspection(1, q(7));
    new.condition = cond("NEW");
    let mut damaged = inspection(1, q(3));
    damaged.condition = cond("DAMAGED");
    h.accept(Command::RecordInspection {
        inspections: vec![new, damaged],
    });
    assert_eq!(h.line(1).conditions.get(&cond("NEW")), Some(&q(7)));
    assert_eq!(h.line(1).conditions.get(&cond("DAMAGED")), Some(&q(3)));

    h.accept(dispose(&[(1, 7, Disposition::Restock)]));
    // Three units still need a decision.
    h.expect(Status::Inspected, Stage::AwaitingDisposition, "warehouse");

    h.accept(dispose(&[
        (1, 2, Disposition::Scrap),
        (1, 1, Disposition::VendorReturn),
    ]));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");
    let split: Vec<(Disposition, _)> = h
        .line(1)
        .dispositioned
        .iter()
        .map(|(d, qty)| (*d, *qty))
        .collect();
    assert_eq!(
        split,
        [
            (Disposition::Restock, q(7)),
            (Disposition::Scrap, q(2)),
            (Disposition::VendorReturn, q(1)),
        ]
    );
    // A unit has exactly one disposition: no eleventh one fits.
    assert_eq!(
        h.refuse(dispose(&[(1, 1, Disposition::Quarantine)])).code(),
        "quantity_exceeds_available"
    );

    h.accept(settle("STL-1", &[(1, 10, "120")]));
    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");
}

#[test]
fn over_receipt_is_accepted_flagged_and_fully_processed() {
    let mut h = approved_return(vec![line(1, "SKU-A", 2)]);
    h.accept(issue_label("LBL-1", None));

    h.accept(receive("RCV-1", &[(1, "SKU-A", 3)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    assert_eq!(h.line(1).received, q(3));
    assert_eq!(h.line(1).over_received, q(1));
    assert_eq!(h.state.totals().over_received, q(1));
    assert_eq!(h.state.flags(), ["over_receipt"]);

    // The extra unit is real stock: it goes through every step too.
    h.accept(inspect(&[(1, 2)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    h.accept(inspect(&[(1, 1)]));
    h.accept(dispose(&[(1, 3, Disposition::Restock)]));
    h.accept(settle("STL-1", &[(1, 2, "24")]));
    h.expect(Status::Dispositioned, Stage::AwaitingSettlement, "finance");
    assert_eq!(h.refuse(Command::Close).code(), "not_ready_to_close");
    // The third unit was paid for too, so it may be credited.
    h.accept(settle("STL-2", &[(1, 1, "12")]));
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");
    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");
    // The flag stays on the record after closing, for the audit.
    assert_eq!(h.state.flags(), ["over_receipt"]);
}

#[test]
fn unexpected_items_are_kept_and_flagged() {
    let mut h = approved_return(vec![line(1, "SKU-A", 2)]);
    h.accept(issue_label("LBL-1", None));

    // A parcel holding only a SKU that is not on the return moves no line.
    let events = h.accept(receipt("RCV-1", vec![rline(None, "SKU-Z", q(1))]));
    assert!(matches!(
        &events[..],
        [Event::UnitsReceived { lines, unexpected, .. }]
            if lines.is_empty() && unexpected.len() == 1
    ));
    h.expect(Status::LabelIssued, Stage::AwaitingShipment, "customer");
    assert_eq!(h.state.flags(), ["unexpected_items"]);

    // A second parcel has the right SKU plus another stranger.
    h.accept(receipt(
        "RCV-2",
        vec![rline(None, "SKU-A", q(2)), rline(None, "SKU-Y", q(3))],
    ));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    assert_eq!(
        h.state.unexpected,
        [
            unexpected_item("RCV-1", "SKU-Z", 1),
            unexpected_item("RCV-2", "SKU-Y", 3)
        ]
    );
    assert_eq!(h.state.totals().unexpected, q(4));
    // Unexpected units are not counted as received units of the return.
    assert_eq!(h.state.totals().received, q(2));

    h.accept(inspect(&[(1, 2)]));
    h.accept(dispose(&[(1, 2, Disposition::Restock)]));
    h.accept(settle("STL-1", &[(1, 2, "24")]));
    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");

    // Never dropped: still on the state, and in the summary an operator reads.
    assert_eq!(h.state.unexpected.len(), 2);
    let summary = ReturnSummary::from_state(&h.state).expect("the return exists");
    assert_eq!(summary.unexpected.len(), 2);
    assert_eq!(summary.item.flags, ["unexpected_items"]);
}

#[test]
fn a_second_return_against_the_same_order_is_independent() {
    let mut first = approved_return(vec![line(1, "SKU-A", 1)]);
    // The same stream cannot be opened twice…
    assert_eq!(
        first.refuse(request_cmd(vec![line(1, "SKU-B", 1)])).code(),
        "return_exists"
    );
    // …but another return for the same order is another stream.
    let mut second = Harness::new();
    second.accept(Command::Request {
        return_id: other_return_id(),
        request: request(vec![line(1, "SKU-B", 1)]),
        assessment: None,
    });
    second.accept(approve_all());

    // Interleave the two; neither sees the other's facts, and both may use
    // the same receipt reference because references are per return.
    first.accept(receive("RCV-1", &[(1, "SKU-A", 1)]));
    second.expect(Status::Approved, Stage::AwaitingLabel, "carrier");
    second.accept(receive("RCV-1", &[(1, "SKU-B", 1)]));
    first.accept(inspect(&[(1, 1)]));
    first.accept(dispose(&[(1, 1, Disposition::Restock)]));
    second.accept(inspect(&[(1, 1)]));
    first.accept(settle("STL-1", &[(1, 1, "12")]));
    first.accept(Command::Close);
    first.expect(Status::Closed, Stage::Done, "none");
    second.expect(Status::Inspected, Stage::AwaitingDisposition, "warehouse");
    second.accept(dispose(&[(1, 1, Disposition::Scrap)]));
    second.accept(settle("STL-1", &[(1, 1, "12")]));
    second.accept(Command::Close);
    second.expect(Status::Closed, Stage::Done, "none");

    let (a, b) = (
        first.state.header.as_ref().expect("first exists"),
        second.state.header.as_ref().expect("second exists"),
    );
    assert_eq!(a.request.order_ref, b.request.order_ref);
    assert_ne!(a.return_id, b.return_id);
    assert_ne!(a.rma_number, b.rma_number);
    assert_eq!(first.line(1).line.sku, sku("SKU-A"));
    assert_eq!(second.line(1).line.sku, sku("SKU-B"));
}

#[test]
fn cancellation_voids_the_label_only_if_there_is_one() {
    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    h.accept(issue_label("LBL-1", None));
    let events = h.accept(cancel("customer kept the item"));
    assert!(matches!(
        &events[..],
        [Event::ReturnCancelled {
            label_voided: true,
            ..
        }]
    ));
    h.expect(Status::Cancelled, Stage::Done, "none");
    assert_eq!(h.state.reason.as_deref(), Some("customer kept the item"));

    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    let events = h.accept(cancel("customer kept the item"));
    assert!(matches!(
        &events[..],
        [Event::ReturnCancelled {
            label_voided: false,
            ..
        }]
    ));

    // Once goods are in the warehouse the return is settled, not cancelled.
    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    h.accept(receive("RCV-1", &[(1, "SKU-A", 1)]));
    assert_eq!(
        h.refuse(cancel("too late")).code(),
        "units_already_received"
    );
}

#[test]
fn an_unused_label_expires_after_its_deadline() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve(&[], Some(h.now + Duration::days(30))));
    h.accept(issue_label("LBL-1", Some(h.now + Duration::days(7))));

    // The scheduler asks too early: the label is still good.
    h.advance(Duration::days(6));
    assert_eq!(h.refuse(Command::Expire).code(), "not_expired");
    h.expect(Status::LabelIssued, Stage::AwaitingShipment, "customer");

    h.advance(Duration::days(1));
    h.accept(Command::Expire);
    h.expect(Status::Expired, Stage::Done, "none");
    // Goods arriving afterwards cannot reopen an expired return.
    assert_eq!(
        h.refuse(receive("RCV-1", &[(1, "SKU-A", 1)])).code(),
        "invalid_transition"
    );
}

#[test]
fn a_parcel_in_transit_does_not_expire() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve(&[], Some(h.now + Duration::days(7))));
    h.accept(issue_label("LBL-1", Some(h.now + Duration::days(7))));
    h.advance(Duration::days(6));
    h.accept(scan(CarrierMilestone::InTransit, h.now));

    // Past both deadlines, but the carrier has the parcel.
    h.advance(Duration::days(5));
    assert_eq!(h.refuse(Command::Expire).code(), "invalid_transition");
    h.expect(Status::InTransit, Stage::InTransit, "carrier");

    // It arrives late and is processed normally.
    h.accept(receive("RCV-1", &[(1, "SKU-A", 1)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
}

#[test]
fn a_carrier_exception_keeps_the_parcel_in_transit() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve(&[], Some(h.now + Duration::days(7))));
    h.accept(issue_label("LBL-1", None));
    h.advance(Duration::days(5));
    h.accept(scan(CarrierMilestone::InTransit, h.now));

    // A weather delay is reported. The carrier still has the parcel: the
    // return must not go back to "awaiting shipment" with the customer, nor
    // expire when the deadline passes.
    h.advance(Duration::days(1));
    h.accept(scan(CarrierMilestone::Exception, h.now));
    h.expect(Status::InTransit, Stage::InTransit, "carrier");
    h.advance(Duration::days(3));
    assert_eq!(h.refuse(Command::Expire).code(), "invalid_transition");

    h.accept(receive("RCV-1", &[(1, "SKU-A", 1)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
}

#[test]
fn a_parcel_sent_back_to_the_customer_awaits_shipment_again() {
    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    h.accept(issue_label("LBL-1", None));
    h.accept(scan(CarrierMilestone::InTransit, h.now));
    h.advance(Duration::days(2));
    // Unlike a delay, a return to sender does give the parcel back.
    h.accept(scan(CarrierMilestone::ReturnToSender, h.now));
    h.expect(Status::LabelIssued, Stage::AwaitingShipment, "customer");
}

#[test]
fn a_return_without_any_deadline_never_expires() {
    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    h.accept(issue_label("LBL-1", None));
    h.advance(Duration::days(365));
    assert_eq!(h.refuse(Command::Expire).code(), "no_expiry");
}

#[test]
fn out_of_order_scans_do_not_regress_the_parcel() {
    let mut h = approved_return(vec![line(1, "SKU-A", 1)]);
    h.accept(issue_label("LBL-1", None));
    let picked_up = h.now + Duration::days(1);
    let delivered = h.now + Duration::days(3);

    h.advance(Duration::days(4));
    h.accept(scan(CarrierMilestone::Delivered, delivered));
    h.expect(Status::InTransit, Stage::InTransit, "carrier");

    // The pick-up scan is delivered to us late. It is recorded, but the
    // latest milestone by the carrier's clock is still "delivered".
    h.advance(Duration::hours(1));
    h.accept(scan(CarrierMilestone::InTransit, picked_up));
    assert_eq!(
        h.state.last_milestone,
        Some((CarrierMilestone::Delivered, delivered))
    );
    h.expect(Status::InTransit, Stage::InTransit, "carrier");

    // Replaying the same delivered scan is a duplicate only while it is the latest.
    assert_eq!(
        h.refuse(scan(CarrierMilestone::Delivered, delivered))
            .code(),
        "duplicate"
    );
}

#[test]
fn goods_received_before_the_label_are_accepted() {
    let mut h = approved_return(vec![line(1, "SKU-A", 2)]);
    h.accept(receive("RCV-1", &[(1, "SKU-A", 2)]));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
    // Receiving counts as shipped: the units obviously travelled.
    assert_eq!(h.line(1).shipped, q(2));

    // The label is still issued (e.g. the portal was slow); nothing regresses.
    h.accept(issue_label("LBL-1", None));
    h.expect(Status::Received, Stage::AwaitingInspection, "warehouse");
}

#[test]
fn credit_up_to_exactly_what_was_paid() {
    // 19.99 + 1.60 tax = 21.59 per unit, 43.18 for two.
    let mut l = line(1, "SKU-A", 2);
    l.unit_price = usd_amt("19.99");
    l.unit_tax = usd_amt("1.60");
    let mut h = approved_return(vec![l]);
    h.accept(receive("RCV-1", &[(1, "SKU-A", 2)]));
    h.accept(inspect(&[(1, 2)]));
    h.accept(dispose(&[(1, 2, Disposition::Restock)]));

    let r = h.refuse(settle("STL-1", &[(1, 2, "43.19")]));
    assert_eq!(r.code(), "credit_exceeds_paid");
    h.accept(settle("STL-1", &[(1, 2, "43.18")]));
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");
    assert_eq!(h.line(1).credited, dec("43.18"));
}

#[test]
fn a_replacement_is_settled_with_no_money() {
    let mut l = line(1, "SKU-A", 1);
    l.requested_outcome = RequestedOutcome::Replacement;
    let mut h = approved_return(vec![l]);
    h.accept(receive("RCV-1", &[(1, "SKU-A", 1)]));
    h.accept(inspect(&[(1, 1)]));
    h.accept(dispose(&[(1, 1, Disposition::Replacement)]));
    h.accept(settle_with_documents(
        "STL-1",
        &[(1, 1, "0")],
        vec![document(
            FinancialDocumentKind::ReplacementOrder,
            "SO-2002",
            None,
        )],
    ));
    h.expect(Status::Settled, Stage::ReadyToClose, "hub");
    assert_eq!(h.state.totals().credited, dec("0"));
    assert_eq!(h.line(1).settled, q(1));
    h.accept(Command::Close);
    h.expect(Status::Closed, Stage::Done, "none");
}

#[test]
fn summary_reads_off_the_state() {
    assert_eq!(ReturnSummary::from_state(&ReturnState::default()), None);

    let mut h = approved_return(vec![line(2, "SKU-B", 1), line(1, "SKU-A", 2)]);
    h.accept(receipt(
        "RCV-1",
        vec![rline(Some(1), "SKU-A", q(3)), rline(None, "SKU-Z", q(1))],
    ));
    let s = ReturnSummary::from_state(&h.state).expect("the return exists");
    assert_eq!(s.item.return_id, return_id());
    assert_eq!(s.item.rma_number, return_id().rma_number());
    assert_eq!(
        (s.item.status, s.item.stage),
        (Status::Received, Stage::AwaitingInspection)
    );
    assert_eq!(s.item.owner, "warehouse");
    assert_eq!(s.item.flags, ["unexpected_items", "over_receipt"]);
    assert_eq!(
        (s.item.currency.as_str(), s.item.order_ref.as_str()),
        ("USD", "SO-1001")
    );
    // Lines are listed by line number whatever order they were requested in.
    assert_eq!(
        s.lines
            .iter()
            .map(|l| l.line.line_no.get())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(s.skus(), [sku("SKU-A"), sku("SKU-B")]);
    // Three units of line 1 arrived at 12.00 each.
    assert_eq!(s.paid_for_received, dec("36"));
    assert_eq!(s.item.totals, h.state.totals());
    // The summary is a pure function of the log.
    assert_eq!(ReturnSummary::from_state(&fold(&h.events)), Some(s));
}
