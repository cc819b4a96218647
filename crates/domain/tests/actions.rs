//! The outbound actions a command's events call for (`action::actions`) and
//! the commands their results become (`action::feedback`), through the
//! public interface, on returns driven by the scenario harness.

mod support;

use backhaul_domain::action::{
    ActionKind, ActionResult, PartnerDecision, Target, actions, feedback,
};
use backhaul_domain::model::{Channel, Disposition, FinancialDocumentKind};
use backhaul_domain::{Command, ReturnState};
use support::*;

/// The actions of one accepted command.
fn act(h: &mut Harness, command: Command) -> Vec<backhaul_domain::action::Action> {
    let before: ReturnState = h.state.clone();
    let events = h.accept(command);
    let version = i64::try_from(h.events.len()).expect("small");
    actions(&before, &h.state, &events, version, h.now)
}

fn kinds(actions: &[backhaul_domain::action::Action]) -> Vec<ActionKind> {
    actions.iter().map(|a| a.kind).collect()
}

#[test]
fn a_new_return_is_published_and_approval_calls_for_the_systems() {
    let mut h = Harness::new();
    let created = act(&mut h, request_cmd(vec![line(1, "SKU-A", 2)]));
    assert_eq!(kinds(&created), vec![ActionKind::PortalStatus]);
    let approved = act(&mut h, approve_all());
    assert_eq!(
        kinds(&approved),
        vec![
            ActionKind::ErpReturnOrder,
            ActionKind::WmsExpectedReceipt,
            ActionKind::CarrierLabel,
            ActionKind::PortalStatus,
        ]
    );
    assert_eq!(approved[0].lines[0].quantity, q(2));
    assert_eq!(approved[0].lines[0].unit_price, Some(usd_amt("10.00")));
    // Keys are unique per return, kind and version.
    let keys: std::collections::BTreeSet<String> =
        approved.iter().map(|a| a.delivery_key(2)).collect();
    assert_eq!(keys.len(), approved.len());
}

/// A request from an EDI partner, as the X12 mapping makes it: channel
/// `edi`, the partner's request number as external reference `edi`, its
/// line ids as the lines' `order_line_ref`.
fn edi_request(lines: Vec<backhaul_domain::model::ReturnLine>) -> Command {
    let mut request = request(
        lines
            .into_iter()
            .map(|mut l| {
                l.order_line_ref = Some(xref(&format!("LI-{}", l.line_no)));
                l
            })
            .collect(),
    );
    request.channel = Channel::Edi;
    request
        .external_refs
        .insert("edi".to_owned(), xref("RAR-2025-7"));
    Command::Request {
        return_id: return_id(),
        request,
        assessment: None,
    }
}

#[test]
fn an_edi_return_s_approval_answers_the_partner_line_by_line() {
    let mut h = Harness::new();
    h.accept(edi_request(vec![line(1, "SKU-A", 2), line(2, "SKU-B", 3)]));
    let approved = act(&mut h, approve(&[(1, 1), (2, 0)], None));
    assert_eq!(
        kinds(&approved),
        vec![
            ActionKind::ErpReturnOrder,
            ActionKind::WmsExpectedReceipt,
            ActionKind::CarrierLabel,
            ActionKind::EdiRmaNotification,
            ActionKind::PortalStatus,
        ]
    );
    let notification = &approved[3];
    assert_eq!(notification.target(), Target::Edi);
    let answer = notification.answer.as_ref().expect("an answer");
    assert_eq!(answer.decision, PartnerDecision::Approved);
    assert_eq!(answer.request_ref, Some(xref("RAR-2025-7")));
    assert_eq!(answer.reason, None);
    assert_eq!(answer.at, h.now);
    // Every line the partner asked for, the refused one at zero, with its
    // unit and the partner's own line id.
    let lines: Vec<(u32, String, Option<String>, Option<String>)> = notification
        .lines
        .iter()
        .map(|l| {
            (
                l.line_no.get(),
                l.quantity.to_string(),
                l.uom.as_ref().map(ToString::to_string),
                l.order_line_ref.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, "1".into(), Some("EA".into()), Some("LI-1".into())),
            (2, "0".into(), Some("EA".into()), Some("LI-2".into())),
        ]
    );
    // The ERP's return order still carries only what was authorised.
    assert_eq!(approved[0].lines.len(), 1);
}

#[test]
fn an_edi_return_s_rejection_answers_the_partner_with_nothing_authorised() {
    let mut h = Harness::new();
    h.accept(edi_request(vec![line(1, "SKU-A", 2)]));
    let rejected = act(&mut h, reject("outside the return window"));
    assert_eq!(
        kinds(&rejected),
        vec![ActionKind::EdiRmaNotification, ActionKind::PortalStatus]
    );
    let answer = rejected[0].answer.as_ref().expect("an answer");
    assert_eq!(answer.decision, PartnerDecision::Rejected);
    assert_eq!(answer.reason.as_deref(), Some("outside the return window"));
    assert!(rejected[0].lines.iter().all(|l| l.quantity.is_zero()));
    assert_eq!(rejected[0].lines.len(), 1);
}

#[test]
fn returns_from_other_channels_never_call_for_a_partner_answer() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    let rejected = act(&mut h, reject("outside the return window"));
    assert_eq!(kinds(&rejected), vec![ActionKind::PortalStatus]);
    assert!(rejected.iter().all(|a| a.answer.is_none()));
}

#[test]
fn no_credit_memo_until_every_received_unit_has_its_disposition() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2), line(2, "SKU-B", 1)]));
    h.accept(approve_all());
    h.accept(receive("RCV-1", &[(1, "SKU-A", 2), (2, "SKU-B", 1)]));
    h.accept(inspect(&[(1, 2), (2, 1)]));
    let partial = act(&mut h, dispose(&[(1, 2, Disposition::Restock)]));
    // Line 2 still waits for its disposition: no memo yet (and no status
    // change to publish).
    assert_eq!(kinds(&partial), vec![ActionKind::ErpInventoryAdjustment]);
    let rest = act(&mut h, dispose(&[(2, 1, Disposition::Scrap)]));
    let memo = rest
        .iter()
        .find(|a| a.kind == ActionKind::ErpCreditMemo)
        .expect("a credit memo once every unit has its disposition");
    let amounts: Vec<String> = memo
        .lines
        .iter()
        .map(|l| l.amount.expect("amount").amount().to_string())
        .collect();
    assert_eq!(amounts, vec!["24.00", "12.00"]);
}

#[test]
fn over_received_units_are_settled_at_zero() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    h.accept(approve_all());
    h.accept(receive("RCV-1", &[(1, "SKU-A", 3)]));
    h.accept(inspect(&[(1, 3)]));
    let done = act(&mut h, dispose(&[(1, 3, Disposition::Restock)]));
    let memo = done
        .iter()
        .find(|a| a.kind == ActionKind::ErpCreditMemo)
        .expect("memo");
    assert_eq!(memo.lines[0].quantity, q(3));
    assert_eq!(
        memo.lines[0].amount.expect("amount").amount().to_string(),
        "24.00",
        "two units paid for, the third was never bought"
    );
    // The memo's answer settles all three units for that amount.
    let result = ActionResult::Document {
        number: xref("CM-1"),
        amount: Some(usd_amt("24.00")),
    };
    let settle = feedback(memo, &result, &xref("erp")).expect("a settlement");
    h.accept(settle);
    assert_eq!(h.state.totals().credited.to_string(), "24.00");
}

#[test]
fn cancellation_undoes_the_systems_and_a_late_label_is_voided() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve_all());
    let cancelled = act(&mut h, cancel("customer kept it"));
    assert_eq!(
        kinds(&cancelled),
        vec![
            ActionKind::WmsCancelExpectedReceipt,
            ActionKind::ErpCancelReturnOrder,
            ActionKind::PortalStatus,
        ]
    );
    let late = act(&mut h, issue_label("LBL-9", None));
    assert_eq!(kinds(&late), vec![ActionKind::CarrierVoidLabel]);
    assert_eq!(
        late[0].tracking_number,
        Some(h.state.label.clone().expect("label").tracking_number)
    );
}

#[test]
fn expiry_voids_a_label_still_usable_but_not_one_that_ran_out() {
    // The authorisation runs out while the label (no expiry of its own)
    // could still be used: it is voided with the rest.
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve(&[(1, 1)], Some(at(60))));
    h.accept(issue_label("LBL-1", None));
    h.advance(chrono::Duration::minutes(61));
    let expired = act(&mut h, Command::Expire);
    assert_eq!(
        kinds(&expired),
        vec![
            ActionKind::CarrierVoidLabel,
            ActionKind::WmsCancelExpectedReceipt,
            ActionKind::ErpCancelReturnOrder,
            ActionKind::PortalStatus,
        ]
    );
    assert_eq!(
        expired[0].tracking_number,
        Some(h.state.label.clone().expect("label").tracking_number)
    );

    // The label's own expiry is what expired the return: nothing to void.
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve_all());
    h.accept(issue_label("LBL-2", Some(at(30))));
    h.advance(chrono::Duration::minutes(31));
    let expired = act(&mut h, Command::Expire);
    assert_eq!(
        kinds(&expired),
        vec![
            ActionKind::WmsCancelExpectedReceipt,
            ActionKind::ErpCancelReturnOrder,
            ActionKind::PortalStatus,
        ]
    );
}

#[test]
fn restocking_fees_come_off_the_credit_with_tax_in_proportion() {
    // Unit price 10.00, tax 2.00. Two units: one restocked with a 1.50 fee,
    // one scrapped without. Credit = (20.00 - 1.50) + 4.00 * 18.50 / 20.00
    // = 18.50 + 3.70 = 22.20.
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    h.accept(approve_all());
    h.accept(receive("R1", &[(1, "SKU-A", 2)]));
    h.accept(inspect(&[(1, 2)]));
    let mut with_fee = disposition(1, q(1), Disposition::Restock);
    with_fee.restocking_fee = Some(usd_amt("1.50"));
    let dispositioned = act(
        &mut h,
        Command::RecordDisposition {
            dispositions: vec![with_fee, disposition(1, q(1), Disposition::Scrap)],
        },
    );
    let memo = dispositioned
        .iter()
        .find(|a| a.kind == ActionKind::ErpCreditMemo)
        .expect("credit is due");
    assert_eq!(memo.lines[0].amount, Some(usd_amt("22.20")));
    assert_eq!(h.line(1).fees, dec("1.50"));
}

#[test]
fn a_fee_above_the_price_or_in_another_currency_is_refused() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 1)]));
    h.accept(approve_all());
    h.accept(receive("R1", &[(1, "SKU-A", 1)]));
    h.accept(inspect(&[(1, 1)]));
    for fee in [usd_amt("10.01"), money("1.00", eur())] {
        let mut d = disposition(1, q(1), Disposition::Restock);
        d.restocking_fee = Some(fee);
        let refused = h.refuse(Command::RecordDisposition {
            dispositions: vec![d],
        });
        assert!(
            matches!(
                refused,
                backhaul_domain::Rejection::Invalid { .. }
                    | backhaul_domain::Rejection::CurrencyMismatch { .. }
            ),
            "{refused:?}"
        );
    }
}

/// The ERP documents besides the inventory adjustment and the credit memo
/// that a disposition calls for: the table the issue states.
fn documents_for(disposition: Disposition) -> Vec<ActionKind> {
    match disposition {
        Disposition::Restock | Disposition::Scrap | Disposition::Quarantine => Vec::new(),
        Disposition::VendorReturn => vec![ActionKind::ErpSupplierClaim],
        Disposition::Refurbish => vec![ActionKind::ErpRepairOrder],
        Disposition::Replacement => vec![ActionKind::ErpReplacementOrder],
    }
}

fn is_disposition_document(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::ErpSupplierClaim | ActionKind::ErpRepairOrder | ActionKind::ErpReplacementOrder
    )
}

#[test]
fn each_disposition_calls_for_its_document_for_exactly_its_units() {
    for disposition in Disposition::ALL {
        let mut h = Harness::new();
        h.accept(request_cmd(vec![line(1, "SKU-A", 3)]));
        h.accept(approve_all());
        h.accept(receive("R1", &[(1, "SKU-A", 3)]));
        h.accept(inspect(&[(1, 3)]));
        // Two of the three units get the disposition under test, the third
        // is scrapped: a document must carry only its own units.
        let done = act(
            &mut h,
            dispose(&[(1, 2, disposition), (1, 1, Disposition::Scrap)]),
        );

        let documents: Vec<ActionKind> = kinds(&done)
            .into_iter()
            .filter(|k| is_disposition_document(*k))
            .collect();
        assert_eq!(documents, documents_for(disposition), "{disposition:?}");
        for document in done.iter().filter(|a| is_disposition_document(a.kind)) {
            let units: Vec<(u32, String, String)> = document
                .lines
                .iter()
                .map(|l| (l.line_no.get(), l.sku.to_string(), l.quantity.to_string()))
                .collect();
            assert_eq!(
                units,
                [(1, "SKU-A".to_owned(), "2".to_owned())],
                "{disposition:?}"
            );
            assert_eq!(
                document.kind.requires(),
                [ActionKind::ErpReturnOrder],
                "the ERP refers to its return order"
            );
        }
        // Every dispositioned unit is still on the inventory adjustment.
        let adjustment = done
            .iter()
            .find(|a| a.kind == ActionKind::ErpInventoryAdjustment)
            .expect("an adjustment");
        assert_eq!(adjustment.lines.len(), 2, "{disposition:?}");
    }
}

#[test]
fn one_disposition_with_every_kind_writes_each_document_once_in_order() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![
        line(1, "SKU-A", 2),
        line(2, "SKU-B", 1),
        line(3, "SKU-C", 1),
    ]));
    h.accept(approve_all());
    h.accept(receive(
        "R1",
        &[(1, "SKU-A", 2), (2, "SKU-B", 1), (3, "SKU-C", 1)],
    ));
    h.accept(inspect(&[(1, 2), (2, 1), (3, 1)]));
    let done = act(
        &mut h,
        dispose(&[
            (1, 1, Disposition::Refurbish),
            (1, 1, Disposition::Refurbish),
            (2, 1, Disposition::Replacement),
            (3, 1, Disposition::VendorReturn),
        ]),
    );
    let erp: Vec<ActionKind> = kinds(&done)
        .into_iter()
        .filter(|k| *k != ActionKind::PortalStatus)
        .collect();
    assert_eq!(
        erp,
        [
            ActionKind::ErpInventoryAdjustment,
            ActionKind::ErpSupplierClaim,
            ActionKind::ErpRepairOrder,
            ActionKind::ErpReplacementOrder,
            ActionKind::ErpCreditMemo,
        ]
    );
    let repair = done
        .iter()
        .find(|a| a.kind == ActionKind::ErpRepairOrder)
        .expect("a repair order");
    // Both refurbish entries of line 1 are on the one repair order.
    assert_eq!(repair.lines.len(), 2);
    assert!(repair.lines.iter().all(|l| l.line_no == ln(1)));
}

#[test]
fn vendor_returns_of_several_vendors_are_one_claim_per_vendor() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![
        line(1, "SKU-A", 1),
        line(2, "SKU-B", 2),
        line(3, "SKU-C", 1),
        line(4, "SKU-D", 1),
    ]));
    h.accept(approve_all());
    h.accept(receive(
        "R1",
        &[
            (1, "SKU-A", 1),
            (2, "SKU-B", 2),
            (3, "SKU-C", 1),
            (4, "SKU-D", 1),
        ],
    ));
    h.accept(inspect(&[(1, 1), (2, 2), (3, 1), (4, 1)]));
    let of = |n: u32, units: u32, vendor: Option<&str>| {
        let mut d = disposition(n, q(units), Disposition::VendorReturn);
        d.vendor = vendor.map(xref);
        d
    };
    let done = act(
        &mut h,
        Command::RecordDisposition {
            dispositions: vec![
                of(1, 1, Some("V-LEVELPRO")),
                of(2, 2, Some("V-VOLTLINE")),
                of(3, 1, Some("V-LEVELPRO")),
                // A SKU without a vendor in master data: its units still
                // need a claim, which names no vendor until someone does.
                of(4, 1, None),
            ],
        },
    );
    let claims: Vec<_> = done
        .iter()
        .filter(|a| a.kind == ActionKind::ErpSupplierClaim)
        .collect();
    let by_vendor: Vec<(Option<String>, Vec<u32>)> = claims
        .iter()
        .map(|c| {
            (
                c.vendor().map(ToString::to_string),
                c.lines.iter().map(|l| l.line_no.get()).collect(),
            )
        })
        .collect();
    assert_eq!(
        by_vendor,
        [
            (None, vec![4]),
            (Some("V-LEVELPRO".to_owned()), vec![1, 3]),
            (Some("V-VOLTLINE".to_owned()), vec![2]),
        ]
    );
    // Every line of a claim names the claim's vendor.
    for claim in &claims {
        assert!(
            claim
                .lines
                .iter()
                .all(|l| l.vendor.as_ref() == claim.vendor())
        );
    }
    // The outbox needs a key per delivery: each claim has its own.
    let keys: std::collections::BTreeSet<String> =
        claims.iter().map(|c| c.delivery_key(7)).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&format!(
        "{}:erp_supplier_claim:7:V-VOLTLINE",
        claims[0].rma_number
    )));
    // The adjustment carries no vendor: it is about stock, not about whom.
    let adjustment = done
        .iter()
        .find(|a| a.kind == ActionKind::ErpInventoryAdjustment)
        .expect("an adjustment");
    assert!(adjustment.lines.iter().all(|l| l.vendor.is_none()));
}

#[test]
fn disposition_documents_come_back_as_linked_documents_of_their_kind() {
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 3)]));
    h.accept(approve_all());
    h.accept(receive("R1", &[(1, "SKU-A", 3)]));
    h.accept(inspect(&[(1, 3)]));
    let done = act(
        &mut h,
        dispose(&[
            (1, 1, Disposition::VendorReturn),
            (1, 1, Disposition::Refurbish),
            (1, 1, Disposition::Replacement),
        ]),
    );
    let expected = [
        (
            ActionKind::ErpSupplierClaim,
            FinancialDocumentKind::SupplierClaim,
            "SC-1",
        ),
        (
            ActionKind::ErpRepairOrder,
            FinancialDocumentKind::RepairOrder,
            "RP-1",
        ),
        (
            ActionKind::ErpReplacementOrder,
            FinancialDocumentKind::ReplacementOrder,
            "RS-1",
        ),
    ];
    for (kind, document_kind, number) in expected {
        let action = done
            .iter()
            .find(|a| a.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?}"));
        assert_eq!(
            feedback(action, &ActionResult::Accepted, &xref("erp")),
            None,
            "only a document is worth recording"
        );
        let result = ActionResult::Document {
            number: xref(number),
            amount: None,
        };
        let command = feedback(action, &result, &xref("erp")).expect("a command");
        assert_eq!(
            command,
            link(document(document_kind, number, None)),
            "{kind:?}"
        );
        h.accept(command);
    }
    let linked: Vec<(FinancialDocumentKind, String)> = h
        .state
        .documents
        .iter()
        .map(|d| (d.kind, d.number.to_string()))
        .collect();
    assert_eq!(
        linked,
        [
            (FinancialDocumentKind::SupplierClaim, "SC-1".to_owned()),
            (FinancialDocumentKind::RepairOrder, "RP-1".to_owned()),
            (FinancialDocumentKind::ReplacementOrder, "RS-1".to_owned()),
        ]
    );
}

#[test]
fn every_erp_kind_but_the_return_order_waits_for_it() {
    for kind in ActionKind::ALL {
        let expected: &[ActionKind] = match kind {
            ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder => &[ActionKind::ErpReturnOrder],
            ActionKind::WmsCancelExpectedReceipt => &[ActionKind::WmsExpectedReceipt],
            ActionKind::CarrierVoidLabel => &[ActionKind::CarrierLabel],
            ActionKind::ErpReturnOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::CarrierLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => &[],
        };
        assert_eq!(kind.requires(), expected, "{kind:?}");
        assert_eq!(ActionKind::parse(kind.as_str()), Some(kind));
        assert_eq!(
            serde_json::to_value(kind).expect("serialises"),
            serde_json::json!(kind.as_str())
        );
    }
    assert_eq!(ActionKind::ErpSupplierClaim.suggested_owner(), "finance");
    assert_eq!(ActionKind::ErpRepairOrder.suggested_owner(), "warehouse");
    assert_eq!(ActionKind::ErpReplacementOrder.suggested_owner(), "support");
    assert_eq!(ActionKind::EdiRmaNotification.target(), Target::Edi);
    assert_eq!(Target::parse("edi"), Some(Target::Edi));
}

#[test]
fn a_replaced_unit_is_credited_nothing_even_on_a_refund_line() {
    // The customer asked for money back for two units; one is restocked
    // and refunded, the other replaced: its settlement is the new unit.
    let mut h = Harness::new();
    h.accept(request_cmd(vec![line(1, "SKU-A", 2)]));
    h.accept(approve_all());
    h.accept(receive("R1", &[(1, "SKU-A", 2)]));
    h.accept(inspect(&[(1, 2)]));
    let dispositioned = act(
        &mut h,
        dispose(&[
            (1, 1, Disposition::Restock),
            (1, 1, Disposition::Replacement),
        ]),
    );
    let kinds = kinds(&dispositioned);
    assert!(
        kinds.contains(&ActionKind::ErpReplacementOrder),
        "{kinds:?}"
    );
    let memo = dispositioned
        .iter()
        .find(|a| a.kind == ActionKind::ErpCreditMemo)
        .expect("credit is due");
    assert_eq!(memo.lines[0].quantity, q(2), "both units are settled");
    assert_eq!(
        memo.lines[0].amount,
        Some(usd_amt("12.00")),
        "one unit paid back"
    );
}
