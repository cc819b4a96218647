//! The wire format of each connector: the body the simulator stored for
//! every action kind, compared with the fixture named after the kind
//! (`fixtures/<kind>.json`), and the kind of document it became. Amounts
//! and quantities travel as decimal strings, never JSON numbers.

use std::collections::BTreeMap;

use backhaul_domain::action::{ActionKind, Target};
use backhaul_sim::PostingKind;
use serde_json::Value;

use backhaul_engine::SinkError;
use backhaul_master::{Kind, MasterData};

use crate::helpers::{
    Connected, SIMULATED, action, assert_business, connect, deliver_with_master, delivered,
    no_prerequisites, number_of,
};

fn fixture(kind: ActionKind) -> Value {
    let path = format!(
        "{}/tests/connectors/fixtures/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        kind.as_str()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn posting_kind(kind: ActionKind) -> PostingKind {
    match kind {
        ActionKind::ErpReturnOrder => PostingKind::ReturnOrder,
        ActionKind::ErpInventoryAdjustment => PostingKind::InventoryAdjustment,
        ActionKind::ErpCreditMemo => PostingKind::CreditMemo,
        ActionKind::ErpCancelReturnOrder => PostingKind::ReturnOrderCancellation,
        ActionKind::ErpSupplierClaim => PostingKind::SupplierClaim,
        ActionKind::ErpRepairOrder => PostingKind::RepairOrder,
        ActionKind::ErpReplacementOrder => PostingKind::ReplacementOrder,
        ActionKind::WmsExpectedReceipt => PostingKind::ExpectedReceipt,
        ActionKind::WmsCancelExpectedReceipt => PostingKind::ReceiptCancellation,
        ActionKind::CarrierLabel => PostingKind::Label,
        ActionKind::CarrierVoidLabel => PostingKind::LabelVoid,
        ActionKind::PortalStatus => PostingKind::PortalStatus,
        ActionKind::EdiRmaNotification => panic!("no simulator stores 180s"),
    }
}

/// Delivers what `kind` requires, then `kind` itself, the way the
/// dispatcher orders them.
async fn deliver_with_prerequisites(connected: &Connected, kind: ActionKind) {
    let mut prerequisites = BTreeMap::new();
    for (n, required) in kind.requires().iter().enumerate() {
        let result = connected
            .deliver(&action(*required), &format!("prerequisite-{n}"))
            .await
            .unwrap();
        prerequisites.insert(*required, Some(result));
    }
    connected
        .deliver_after(&action(kind), "under-test", &prerequisites)
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
}

#[tokio::test]
async fn every_action_kind_sends_the_body_of_its_fixture() {
    // The edi target's files are compared in `x12_partner`.
    for kind in ActionKind::ALL
        .into_iter()
        .filter(|k| SIMULATED.contains(&k.target()))
    {
        let connected = connect(kind.target()).await;

        deliver_with_prerequisites(&connected, kind).await;

        let postings = connected.postings().await;
        let posting = postings
            .iter()
            .find(|p| p.idempotency_key == "under-test")
            .unwrap_or_else(|| panic!("{kind:?} was not stored: {postings:?}"));
        assert_eq!(posting.kind, posting_kind(kind), "{kind:?}");
        assert_eq!(posting.body, fixture(kind), "{kind:?}");
    }
}

#[tokio::test]
async fn an_inventory_adjustment_puts_back_only_the_restocked_units() {
    let erp = connect(Target::Erp).await;

    deliver_with_prerequisites(&erp, ActionKind::ErpInventoryAdjustment).await;

    // The fixture restocks 2 × SKU-A and scraps 1 × SKU-B.
    let ledger = erp.sim.ledger().await.unwrap();
    let inventory: Vec<(String, String)> = ledger
        .inventory
        .iter()
        .map(|(sku, q)| (sku.clone(), q.to_string()))
        .collect();
    assert_eq!(inventory, [("SKU-A".to_owned(), "2".to_owned())]);
    assert_eq!(ledger.counts.inventory_adjustment, 1);
}

#[tokio::test]
async fn a_credit_memo_is_booked_in_the_erps_ledger_in_the_actions_currency() {
    let erp = connect(Target::Erp).await;

    deliver_with_prerequisites(&erp, ActionKind::ErpCreditMemo).await;

    let credits: Vec<(String, String)> = erp
        .sim
        .ledger()
        .await
        .unwrap()
        .credits
        .iter()
        .map(|(currency, total)| (currency.clone(), total.to_string()))
        .collect();
    assert_eq!(credits, [("EUR".to_owned(), "32.25".to_owned())]);
}

/// Master data whose ERP crosswalk maps the two reasons of the fixture, or
/// only one of them.
fn erp_reasons(both: bool) -> MasterData {
    let mut csv =
        String::from("system,kind,external,canonical,preferred\nerp,reason,R07,SIZE_FIT,\n");
    if both {
        csv.push_str("erp,reason,R02,DAMAGED,\n");
    }
    let records =
        backhaul_master::parse_csv(Kind::Crosswalk, "crosswalks.csv", csv.as_bytes()).unwrap();
    MasterData::from_records(1, records).unwrap()
}

#[tokio::test]
async fn the_erp_gets_its_own_reason_codes_and_an_unmapped_one_is_an_exception() {
    let erp = connect(Target::Erp).await;
    let order = action(ActionKind::ErpReturnOrder);

    deliver_with_master(
        erp.sink.as_ref(),
        &order,
        "mapped",
        &no_prerequisites(),
        &erp_reasons(true),
    )
    .await
    .unwrap();
    let postings = erp.postings().await;
    let body = &postings
        .iter()
        .find(|p| p.idempotency_key == "mapped")
        .unwrap()
        .body;
    assert_eq!(body["lines"][0]["reason_code"], "R02");
    assert_eq!(body["lines"][1]["reason_code"], "R07");

    // DAMAGED has no ERP code: nothing is sent, a person adds the mapping.
    let refused = deliver_with_master(
        erp.sink.as_ref(),
        &order,
        "unmapped",
        &no_prerequisites(),
        &erp_reasons(false),
    )
    .await
    .unwrap_err();
    match refused {
        SinkError::Business { code, message, .. } => {
            assert_eq!(code, "unmapped_code");
            assert!(
                message.contains("DAMAGED") && message.contains("erp"),
                "{message}"
            );
        }
        other => panic!("an unmapped code is a business error: {other:?}"),
    }
    assert!(
        !erp.postings()
            .await
            .iter()
            .any(|p| p.idempotency_key == "unmapped"),
        "nothing reached the ERP"
    );
}

#[tokio::test]
async fn claims_repairs_and_replacements_come_back_with_their_erps_numbers() {
    let erp = connect(Target::Erp).await;
    let order = erp
        .deliver(&action(ActionKind::ErpReturnOrder), "ro")
        .await
        .unwrap();
    let after = delivered(ActionKind::ErpReturnOrder, &number_of(&order));
    for (kind, number) in [
        (ActionKind::ErpSupplierClaim, "SC-000001"),
        (ActionKind::ErpRepairOrder, "RP-000001"),
        (ActionKind::ErpReplacementOrder, "RS-000001"),
    ] {
        let result = erp
            .deliver_after(&action(kind), kind.as_str(), &after)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(number_of(&result), number, "{kind:?}");
    }
    let counts = erp.sim.ledger().await.unwrap().counts;
    assert_eq!(
        (
            counts.supplier_claim,
            counts.repair_order,
            counts.replacement_order
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_supplier_claim_without_a_vendor_is_not_sent() {
    let erp = connect(Target::Erp).await;
    let order = erp
        .deliver(&action(ActionKind::ErpReturnOrder), "ro")
        .await
        .unwrap();
    let mut claim = action(ActionKind::ErpSupplierClaim);
    for line in &mut claim.lines {
        line.vendor = None;
    }

    let result = erp
        .deliver_after(
            &claim,
            "claim",
            &delivered(ActionKind::ErpReturnOrder, &number_of(&order)),
        )
        .await;

    let message = assert_business(result, "vendor_missing", None);
    assert!(message.contains("RMA-000042"), "{message}");
    assert_eq!(erp.postings().await.len(), 1, "only the return order");
}
