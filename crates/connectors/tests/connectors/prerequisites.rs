//! Actions that refer to an earlier action's number: the ERP's credit memo,
//! inventory adjustment, supplier claim, repair and replacement order name
//! their return order, the WMS cancellation
//! names its ASN. Without the number (the prerequisite was skipped by an
//! operator) the action is a business failure and nothing is sent.

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_sim::PostingKind;

use crate::helpers::{
    Prerequisites, action, assert_business, connect, delivered, no_prerequisites, number_of,
};

/// The ERP documents whose body names the return order they follow.
fn erp_follow_ups() -> Vec<ActionKind> {
    ActionKind::ALL
        .into_iter()
        .filter(|k| k.requires() == [ActionKind::ErpReturnOrder])
        // The cancellation names the order in its path, not its body.
        .filter(|k| *k != ActionKind::ErpCancelReturnOrder)
        .collect()
}

/// What a delivery of a credit memo or an adjustment may find in its
/// prerequisites when the return order's number is not there.
fn without_return_order() -> [(&'static str, Prerequisites); 3] {
    [
        ("never delivered", no_prerequisites()),
        (
            "skipped by an operator",
            Prerequisites::from([(ActionKind::ErpReturnOrder, None)]),
        ),
        (
            "accepted without a number",
            Prerequisites::from([(ActionKind::ErpReturnOrder, Some(ActionResult::Accepted))]),
        ),
    ]
}

#[tokio::test]
async fn erp_follow_ups_without_the_return_orders_number_are_refused() {
    let erp = connect(Target::Erp).await;
    assert_eq!(erp_follow_ups().len(), 5, "{:?}", erp_follow_ups());
    for kind in erp_follow_ups() {
        for (case, prerequisites) in without_return_order() {
            let result = erp
                .deliver_after(&action(kind), "follow-up", &prerequisites)
                .await;

            let message = assert_business(result, "prerequisite_missing", None);
            assert!(
                message.contains("erp_return_order"),
                "{kind:?}, {case}: {message}"
            );
        }
    }
    assert!(erp.postings().await.is_empty());
}

#[tokio::test]
async fn erp_follow_ups_refer_to_the_return_order_from_their_prerequisite() {
    for kind in erp_follow_ups() {
        let erp = connect(Target::Erp).await;
        // Two return orders, so the follow-up must pick the right one
        // rather than happen to name the first.
        erp.deliver(&action(ActionKind::ErpReturnOrder), "ro-1")
            .await
            .unwrap();
        let order = erp
            .deliver(&action(ActionKind::ErpReturnOrder), "ro-2")
            .await
            .unwrap();
        let order = number_of(&order);
        assert_eq!(order, "RO-000002");

        erp.deliver_after(
            &action(kind),
            "follow-up",
            &delivered(ActionKind::ErpReturnOrder, &order),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));

        let postings = erp.postings().await;
        let follow_up = postings.last().unwrap();
        assert_eq!(follow_up.idempotency_key, "follow-up");
        assert_eq!(follow_up.body["return_order"], order.as_str(), "{kind:?}");
    }
}

#[tokio::test]
async fn a_return_order_number_the_erp_does_not_know_is_its_business_rejection() {
    let erp = connect(Target::Erp).await;

    let result = erp
        .deliver_after(
            &action(ActionKind::ErpCreditMemo),
            "cm-1",
            &delivered(ActionKind::ErpReturnOrder, "RO-999999"),
        )
        .await;

    assert_business(result, "unknown_return_order", Some(422));
}

#[tokio::test]
async fn a_wms_cancellation_without_the_asn_is_refused() {
    let wms = connect(Target::Wms).await;

    let result = wms
        .deliver_after(
            &action(ActionKind::WmsCancelExpectedReceipt),
            "cancel",
            &Prerequisites::from([(ActionKind::WmsExpectedReceipt, None)]),
        )
        .await;

    let message = assert_business(result, "prerequisite_missing", None);
    assert!(message.contains("wms_expected_receipt"), "{message}");
    assert!(wms.postings().await.is_empty());
}

#[tokio::test]
async fn a_wms_cancellation_cancels_the_asn_from_its_prerequisite() {
    let wms = connect(Target::Wms).await;
    wms.deliver(&action(ActionKind::WmsExpectedReceipt), "asn-1")
        .await
        .unwrap();
    let asn = wms
        .deliver(&action(ActionKind::WmsExpectedReceipt), "asn-2")
        .await
        .unwrap();
    let asn = number_of(&asn);

    let result = wms
        .deliver_after(
            &action(ActionKind::WmsCancelExpectedReceipt),
            "cancel",
            &delivered(ActionKind::WmsExpectedReceipt, &asn),
        )
        .await
        .unwrap();

    assert_eq!(result, ActionResult::Accepted);
    let postings = wms.postings().await;
    let cancellation = postings.last().unwrap();
    assert_eq!(cancellation.idempotency_key, "cancel");
    assert_eq!(cancellation.kind, PostingKind::ReceiptCancellation);
    assert_eq!(cancellation.number.as_deref(), Some("ASN-000002"));
}

#[tokio::test]
async fn a_wms_cancellation_of_an_asn_the_wms_does_not_know_is_its_business_rejection() {
    let wms = connect(Target::Wms).await;

    let result = wms
        .deliver_after(
            &action(ActionKind::WmsCancelExpectedReceipt),
            "cancel",
            &delivered(ActionKind::WmsExpectedReceipt, "ASN-404404"),
        )
        .await;

    assert_business(result, "unknown_asn", Some(422));
}

#[tokio::test]
async fn a_carrier_void_voids_the_actions_tracking_number() {
    let carrier = connect(Target::Carrier).await;
    let label = carrier
        .deliver(&action(ActionKind::CarrierLabel), "label")
        .await
        .unwrap();
    let ActionResult::Label(label) = label else {
        panic!("expected a label, got {label:?}");
    };

    let result = carrier
        .deliver_after(
            &action(ActionKind::CarrierVoidLabel),
            "void",
            &Prerequisites::from([(
                ActionKind::CarrierLabel,
                Some(ActionResult::Label(label.clone())),
            )]),
        )
        .await
        .unwrap();

    assert_eq!(result, ActionResult::Accepted);
    let postings = carrier.postings().await;
    let void = postings.last().unwrap();
    assert_eq!(void.kind, PostingKind::LabelVoid);
    assert_eq!(void.number.as_deref(), Some(label.tracking_number.as_str()));
}

#[tokio::test]
async fn a_carrier_void_without_a_tracking_number_is_refused() {
    let carrier = connect(Target::Carrier).await;
    let mut void = action(ActionKind::CarrierVoidLabel);
    void.tracking_number = None;

    let result = carrier.deliver(&void, "void").await;

    assert_business(result, "invalid_action", None);
    assert!(carrier.postings().await.is_empty());
}
