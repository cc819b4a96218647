//! The outbound actions a command's events call for (`action::actions`) and
//! the commands their results become (`action::feedback`), through the
//! public interface, on returns driven by the scenario harness.

mod support;

use backhaul_domain::action::{ActionKind, ActionResult, actions, feedback};
use backhaul_domain::model::Disposition;
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
