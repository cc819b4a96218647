//! The contract every connector passes, as tables over the four simulated
//! targets (the edi target's file connector passes it in `x12_partner`):
//! it answers its own action with the right kind of result, repeats the
//! answer (and not the effect) for a repeated key, refuses the actions of
//! other targets as business failures, and reports its target healthy.

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::values::{Currency, Money};
use rust_decimal::Decimal;

use crate::helpers::{
    CURRENCY, RMA, SIMULATED, action, assert_business, connect, delivered, first_primary_result,
    number_of, primary,
};

#[tokio::test]
async fn each_connector_answers_its_own_action_with_the_targets_result() {
    for target in SIMULATED {
        let connected = connect(target).await;

        let result = connected
            .deliver(&action(primary(target)), "contract-1")
            .await
            .unwrap_or_else(|e| panic!("{target:?}: {e}"));

        assert_eq!(result, first_primary_result(target), "{target:?}");
    }
}

#[tokio::test]
async fn a_document_number_is_the_one_the_target_stored() {
    for target in [Target::Erp, Target::Wms, Target::Carrier] {
        let connected = connect(target).await;

        let result = connected
            .deliver(&action(primary(target)), "contract-1")
            .await
            .unwrap();

        let number = match &result {
            ActionResult::Document { number, .. } => number.as_str().to_owned(),
            ActionResult::Label(label) => label.tracking_number.as_str().to_owned(),
            ActionResult::Accepted => panic!("{target:?}: no number in {result:?}"),
        };
        let postings = connected.postings().await;
        assert_eq!(postings.len(), 1, "{target:?}");
        assert_eq!(postings[0].number.as_deref(), Some(number.as_str()));
        assert_eq!(postings[0].idempotency_key, "contract-1");
        assert_eq!(postings[0].rma, RMA);
    }
}

#[tokio::test]
async fn a_credit_memo_answers_the_sum_of_its_lines_in_the_requests_currency() {
    let erp = connect(Target::Erp).await;
    let order = erp
        .deliver(&action(ActionKind::ErpReturnOrder), "ro-1")
        .await
        .unwrap();

    let result = erp
        .deliver_after(
            &action(ActionKind::ErpCreditMemo),
            "cm-1",
            &delivered(ActionKind::ErpReturnOrder, &number_of(&order)),
        )
        .await
        .unwrap();

    // The fixture's lines are 25.00 and 7.25.
    let expected = Money::new(Decimal::new(3225, 2), Currency::parse(CURRENCY).unwrap()).unwrap();
    let ActionResult::Document { number, amount } = result else {
        panic!("expected a document, got {result:?}");
    };
    assert_eq!(number.as_str(), "CM-000001");
    assert_eq!(amount, Some(expected));
    assert_eq!(amount.unwrap().currency().code(), CURRENCY);
}

#[tokio::test]
async fn the_same_key_twice_gives_the_same_result_and_one_posting() {
    for target in SIMULATED {
        let connected = connect(target).await;
        let action = action(primary(target));

        let first = connected.deliver(&action, "same-key").await.unwrap();
        let second = connected.deliver(&action, "same-key").await.unwrap();

        assert_eq!(first, second, "{target:?}");
        assert_eq!(connected.postings().await.len(), 1, "{target:?}");
    }
}

#[tokio::test]
async fn another_key_is_another_posting() {
    for target in SIMULATED {
        let connected = connect(target).await;
        let action = action(primary(target));

        connected.deliver(&action, "key-1").await.unwrap();
        connected.deliver(&action, "key-2").await.unwrap();

        let keys: Vec<String> = connected
            .postings()
            .await
            .into_iter()
            .map(|p| p.idempotency_key)
            .collect();
        assert_eq!(keys, ["key-1", "key-2"], "{target:?}");
    }
}

#[tokio::test]
async fn actions_of_other_targets_are_refused_as_unsupported() {
    for target in SIMULATED {
        let connected = connect(target).await;
        for kind in ActionKind::ALL.into_iter().filter(|k| k.target() != target) {
            let result = connected.deliver(&action(kind), "foreign").await;

            let message = assert_business(result, "unsupported_action", None);
            assert!(
                message.contains(kind.as_str()),
                "{target:?} refusing {kind:?}: {message}"
            );
        }
        assert!(
            connected.postings().await.is_empty(),
            "{target:?}: a refused action must not reach the target"
        );
    }
}

#[tokio::test]
async fn each_connector_reports_its_target_healthy() {
    for target in SIMULATED {
        let connected = connect(target).await;

        assert_eq!(connected.sink.health().await, Ok(()), "{target:?}");
    }
}

#[tokio::test]
async fn each_connector_names_its_target_and_system() {
    for target in SIMULATED {
        let connected = connect(target).await;

        assert_eq!(connected.sink.target(), target);
        assert_eq!(connected.sink.system().as_str(), target.as_str());
    }
}
