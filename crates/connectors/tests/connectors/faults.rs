//! How the simulators' failures come out of a sink: throttling, transient
//! errors and lost responses are technical (retried by the dispatcher),
//! rule violations are business failures with the simulator's code.

use std::time::Duration;

use backhaul_domain::action::{ActionKind, Target};
use backhaul_sim::{Faults, SimConfig};
use rust_decimal::Decimal;

use crate::helpers::{
    SIMULATED, action, assert_business, assert_technical, connect, connect_with, delivered,
    first_primary_result, number_of, primary, sim_kind,
};

fn faulty(target: Target, faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..SimConfig::new(sim_kind(target))
    }
}

#[tokio::test]
async fn a_throttled_delivery_is_technical_and_carries_retry_after() {
    for target in SIMULATED {
        // One request per second and no burst: the second request at the
        // same (manual) instant finds the bucket empty.
        let connected = connect_with(faulty(
            target,
            Faults {
                rate_limit_per_sec: Some(1),
                burst: 1,
                ..Faults::default()
            },
        ))
        .await;
        let action = action(primary(target));
        connected.deliver(&action, "first").await.unwrap();

        let result = connected.deliver(&action, "second").await;

        let retry_after = assert_technical(result, "rate_limited", Some(429));
        assert_eq!(retry_after, Some(Duration::from_secs(1)), "{target:?}");
        assert_eq!(connected.postings().await.len(), 1, "{target:?}");
    }
}

#[tokio::test]
async fn a_throttled_delivery_goes_through_once_the_wait_is_over() {
    let erp = connect_with(faulty(
        Target::Erp,
        Faults {
            rate_limit_per_sec: Some(1),
            burst: 1,
            ..Faults::default()
        },
    ))
    .await;
    let order = action(ActionKind::ErpReturnOrder);
    erp.deliver(&order, "first").await.unwrap();
    let wait = assert_technical(
        erp.deliver(&order, "second").await,
        "rate_limited",
        Some(429),
    )
    .unwrap();

    erp.clock.advance(chrono::Duration::from_std(wait).unwrap());
    let result = erp.deliver(&order, "second").await.unwrap();

    assert_eq!(number_of(&result), "RO-000002");
}

#[tokio::test]
async fn a_transient_error_is_technical_and_nothing_is_stored() {
    for target in SIMULATED {
        let connected = connect_with(faulty(
            target,
            Faults {
                transient_error_rate: 1.0,
                ..Faults::default()
            },
        ))
        .await;

        let result = connected.deliver(&action(primary(target)), "key").await;

        let retry_after = assert_technical(result, "unavailable", Some(503));
        assert_eq!(retry_after, None, "{target:?}: the simulator sends none");
        assert!(connected.postings().await.is_empty(), "{target:?}");
    }
}

#[tokio::test]
async fn a_lost_response_is_technical_although_the_posting_is_stored() {
    for target in SIMULATED {
        let connected = connect_with(faulty(
            target,
            Faults {
                lost_response_rate: 1.0,
                ..Faults::default()
            },
        ))
        .await;

        let result = connected.deliver(&action(primary(target)), "key").await;

        assert_technical(result, "internal", Some(500));
        assert_eq!(connected.postings().await.len(), 1, "{target:?}");
    }
}

#[tokio::test]
async fn the_retry_after_a_lost_response_returns_the_original_answer() {
    for target in SIMULATED {
        let connected = connect_with(faulty(
            target,
            Faults {
                lost_response_rate: 1.0,
                ..Faults::default()
            },
        ))
        .await;
        let action = action(primary(target));
        assert_technical(
            connected.deliver(&action, "key").await,
            "internal",
            Some(500),
        );

        connected.sim.set_faults(Faults::default()).unwrap();
        let retried = connected.deliver(&action, "key").await.unwrap();

        assert_eq!(retried, first_primary_result(target), "{target:?}");
        assert_eq!(connected.postings().await.len(), 1, "{target:?}");
    }
}

#[tokio::test]
async fn an_unknown_sku_is_the_erps_business_rejection() {
    let mut config = SimConfig::new(sim_kind(Target::Erp));
    config.erp.unknown_skus = vec!["SKU-B".to_owned()];
    let erp = connect_with(config).await;

    let result = erp.deliver(&action(ActionKind::ErpReturnOrder), "ro").await;

    let message = assert_business(result, "unknown_sku", Some(422));
    assert!(message.contains("SKU-B"), "{message}");
    assert!(erp.postings().await.is_empty());
}

#[tokio::test]
async fn a_closed_period_is_the_erps_business_rejection() {
    let erp = connect(Target::Erp).await;
    erp.sim.set_period_closed(true);

    let result = erp.deliver(&action(ActionKind::ErpReturnOrder), "ro").await;

    assert_business(result, "period_closed", Some(422));
    assert!(erp.postings().await.is_empty());
}

#[tokio::test]
async fn a_business_rejection_does_not_use_up_the_key() {
    let erp = connect(Target::Erp).await;
    erp.sim.set_period_closed(true);
    let order = action(ActionKind::ErpReturnOrder);
    assert_business(erp.deliver(&order, "ro").await, "period_closed", Some(422));

    erp.sim.set_period_closed(false);
    let result = erp.deliver(&order, "ro").await.unwrap();

    assert_eq!(number_of(&result), "RO-000001");
}

#[tokio::test]
async fn a_credit_memo_above_the_limit_is_the_erps_business_rejection() {
    let mut config = SimConfig::new(sim_kind(Target::Erp));
    // The fixture memo totals 32.25.
    config.erp.credit_limit = Some(Decimal::new(3000, 2));
    let erp = connect_with(config).await;
    let order = erp
        .deliver(&action(ActionKind::ErpReturnOrder), "ro")
        .await
        .unwrap();

    let result = erp
        .deliver_after(
            &action(ActionKind::ErpCreditMemo),
            "cm",
            &delivered(ActionKind::ErpReturnOrder, &number_of(&order)),
        )
        .await;

    let message = assert_business(result, "credit_limit_exceeded", Some(422));
    assert!(message.contains("32.25"), "{message}");
    assert_eq!(erp.sim.ledger().await.unwrap().counts.credit_memo, 0);
}

#[tokio::test]
async fn an_unknown_site_is_the_wms_business_rejection() {
    let mut config = SimConfig::new(sim_kind(Target::Wms));
    config.wms.sites = vec!["DC9".to_owned()];
    let wms = connect_with(config).await;

    let result = wms
        .deliver(&action(ActionKind::WmsExpectedReceipt), "asn")
        .await;

    let message = assert_business(result, "unknown_site", Some(422));
    assert!(message.contains("DC1"), "{message}");
    assert!(wms.postings().await.is_empty());
}
