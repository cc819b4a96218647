//! The carrier scan feed is deterministic, passes every milestone, and
//! duplicates and reorders as asked.

use std::collections::HashSet;

use backhaul_sim::{Milestone, scan_feed};

#[test]
fn the_same_arguments_give_the_same_feed() {
    for seed in 0..20 {
        assert_eq!(
            scan_feed("SIMX0000000001", seed, 0.4, 0.4),
            scan_feed("SIMX0000000001", seed, 0.4, 0.4)
        );
    }
    let feeds: HashSet<String> = (0..20)
        .map(|seed| format!("{:?}", scan_feed("SIMX0000000001", seed, 0.4, 0.4)))
        .collect();
    assert!(feeds.len() > 1, "the seed matters");
    assert_ne!(
        scan_feed("SIMX0000000001", 1, 0.0, 0.0),
        scan_feed("SIMX0000000002", 1, 0.0, 0.0),
        "so does the tracking number"
    );
}

#[test]
fn every_milestone_is_in_every_feed_at_increasing_times() {
    for seed in 0..50 {
        let feed = scan_feed("SIMX0000000007", seed, 0.5, 0.5);
        for milestone in Milestone::ALL {
            assert!(
                feed.iter().any(|s| s.milestone == milestone),
                "seed {seed}: no {milestone:?}"
            );
        }
        // Whatever the delivery order, the parcel's own times increase
        // milestone by milestone, and a duplicate repeats its original.
        let time_of = |m: Milestone| {
            let times: HashSet<_> = feed
                .iter()
                .filter(|s| s.milestone == m)
                .map(|s| (s.occurred_at, s.scan_id.clone(), s.event_code.clone()))
                .collect();
            assert_eq!(times.len(), 1, "seed {seed}: duplicates differ");
            times.into_iter().next().unwrap().0
        };
        let times: Vec<_> = Milestone::ALL.into_iter().map(time_of).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "seed {seed}");
        assert!(feed.len() <= 8);
        assert!(feed.iter().all(|s| s.tracking_number == "SIMX0000000007"));
    }
}

#[test]
fn rates_add_duplicates_and_swap_neighbours() {
    let clean = scan_feed("T", 5, 0.0, 0.0);
    assert_eq!(clean.len(), 4);
    let codes: Vec<_> = clean.iter().map(|s| s.event_code.as_str()).collect();
    assert_eq!(codes, ["PU", "IT", "OD", "DL"]);

    let swapped = scan_feed("T", 5, 0.0, 1.0);
    let order: Vec<_> = swapped.iter().map(|s| s.milestone).collect();
    assert_eq!(
        order,
        [
            Milestone::InTransit,
            Milestone::PickedUp,
            Milestone::Delivered,
            Milestone::OutForDelivery
        ]
    );
    assert_eq!(scan_feed("T", 5, 1.0, 0.0).len(), 8);
}
