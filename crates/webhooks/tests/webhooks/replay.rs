//! The replay window: duplicates refused, memory bounded by time and capacity.

use crate::{at, id};
use backhaul_webhooks::{ReplayError, ReplayWindow, Tolerance, Verified};

fn delivery(message: &str, seconds: i64) -> Verified {
    Verified {
        id: id(message),
        timestamp: at(seconds),
    }
}

const T0: i64 = 1_700_000_000;

#[test]
fn the_same_id_is_accepted_once() {
    let mut window = ReplayWindow::new(Tolerance::DEFAULT, 100);
    assert_eq!(
        window.check_and_record(&delivery("msg_a", T0), at(T0)),
        Ok(())
    );
    assert_eq!(
        window.check_and_record(&delivery("msg_a", T0), at(T0 + 1)),
        Err(ReplayError::Duplicate { id: id("msg_a") })
    );
    assert_eq!(
        window.check_and_record(&delivery("msg_b", T0), at(T0 + 1)),
        Ok(())
    );
    assert_eq!(window.len(), 2);
}

#[test]
fn an_id_is_remembered_exactly_as_long_as_verify_would_accept_it() {
    let mut window = ReplayWindow::new(Tolerance::from_seconds(300), 100);
    window
        .check_and_record(&delivery("msg_a", T0), at(T0))
        .expect("first");
    // At the tolerance edge verify() still accepts, so the id must still be known.
    assert!(matches!(
        window.check_and_record(&delivery("msg_a", T0), at(T0 + 300)),
        Err(ReplayError::Duplicate { .. })
    ));
    // One second later verify() refuses it as too old, so it can be forgotten.
    window.evict_expired(at(T0 + 301));
    assert!(window.is_empty());
    assert!(matches!(
        window.check_and_record(&delivery("msg_a", T0), at(T0 + 301)),
        Err(ReplayError::OutsideWindow { .. })
    ));
}

#[test]
fn a_retry_with_a_newer_timestamp_extends_protection() {
    let mut window = ReplayWindow::new(Tolerance::from_seconds(300), 100);
    window
        .check_and_record(&delivery("msg_a", T0), at(T0))
        .expect("first");
    // The sender retries with a fresh timestamp; refused, and remembered from then.
    assert!(
        window
            .check_and_record(&delivery("msg_a", T0 + 100), at(T0 + 100))
            .is_err()
    );
    // Past the first timestamp's window, a replay of the retry is still refused.
    assert!(matches!(
        window.check_and_record(&delivery("msg_a", T0 + 100), at(T0 + 350)),
        Err(ReplayError::Duplicate { .. })
    ));
    assert_eq!(window.len(), 1);
}

#[test]
fn a_full_window_refuses_rather_than_forgetting_unexpired_ids() {
    let mut window = ReplayWindow::new(Tolerance::from_seconds(60), 2);
    window
        .check_and_record(&delivery("msg_a", T0), at(T0))
        .expect("a");
    window
        .check_and_record(&delivery("msg_b", T0), at(T0))
        .expect("b");
    assert_eq!(
        window.check_and_record(&delivery("msg_c", T0), at(T0)),
        Err(ReplayError::Full { capacity: 2 })
    );
    // The refusal did not push out an id whose replay would still verify.
    assert!(matches!(
        window.check_and_record(&delivery("msg_a", T0), at(T0 + 1)),
        Err(ReplayError::Duplicate { .. })
    ));
    // Once the old ids expire there is room again.
    assert_eq!(
        window.check_and_record(&delivery("msg_c", T0 + 61), at(T0 + 61)),
        Ok(())
    );
    assert_eq!(window.len(), 1);
}

#[test]
fn memory_stays_bounded_by_the_window_under_a_steady_stream() {
    let mut window = ReplayWindow::new(Tolerance::from_seconds(10), 1_000);
    for second in 0..5_000 {
        let message = format!("msg_{second}");
        window
            .check_and_record(&delivery(&message, T0 + second), at(T0 + second))
            .expect("unique ids inside the window");
        assert!(
            window.len() <= 11,
            "{} ids at second {second}",
            window.len()
        );
    }
}

#[test]
fn forget_lets_a_retry_through_after_failed_processing() {
    let mut window = ReplayWindow::new(Tolerance::DEFAULT, 10);
    window
        .check_and_record(&delivery("msg_a", T0), at(T0))
        .expect("first");
    window.forget(&id("msg_a"));
    assert!(window.is_empty());
    assert_eq!(
        window.check_and_record(&delivery("msg_a", T0 + 5), at(T0 + 5)),
        Ok(())
    );
}

#[test]
fn future_dated_messages_are_remembered_until_they_expire() {
    let mut window = ReplayWindow::new(Tolerance::from_seconds(300), 10);
    window
        .check_and_record(&delivery("msg_a", T0 + 300), at(T0))
        .expect("future edge");
    window.evict_expired(at(T0 + 600));
    assert_eq!(window.len(), 1);
    window.evict_expired(at(T0 + 601));
    assert!(window.is_empty());
}
