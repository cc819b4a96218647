//! The carrier's scan feed: the tracking events of one parcel, as a carrier
//! delivers them to a webhook or a polling client, with the duplicates and
//! reorderings real feeds have.
//!
//! A feed is a pure function of the tracking number, a start time, a seed
//! and two probabilities, so tests and the demo can replay it exactly. The
//! parcel passes the four milestones once each, at increasing times; then,
//! per the rates, a scan is delivered twice (same `scan_id`, as a carrier
//! retrying its webhook does) and neighbouring scans arrive swapped.
//!
//! The randomness comes from `rand`'s `StdRng`, which is reproducible for a
//! given build (the lock file pins its algorithm), not across `rand`
//! releases.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The canonical tracking milestones, in the order a parcel passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
}

impl Milestone {
    /// Every milestone, in order.
    pub const ALL: [Milestone; 4] = [
        Milestone::PickedUp,
        Milestone::InTransit,
        Milestone::OutForDelivery,
        Milestone::Delivered,
    ];

    /// The canonical name: `picked_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::PickedUp => "picked_up",
            Milestone::InTransit => "in_transit",
            Milestone::OutForDelivery => "out_for_delivery",
            Milestone::Delivered => "delivered",
        }
    }

    /// The simulated carrier's own event code: `PU`, `IT`, `OD`, `DL`.
    pub fn carrier_code(self) -> &'static str {
        match self {
            Milestone::PickedUp => "PU",
            Milestone::InTransit => "IT",
            Milestone::OutForDelivery => "OD",
            Milestone::Delivered => "DL",
        }
    }

    /// Where the carrier records the scan.
    fn location(self) -> &'static str {
        match self {
            Milestone::PickedUp => "customer address",
            Milestone::InTransit => "SIMX sorting hub",
            Milestone::OutForDelivery => "SIMX delivery depot",
            Milestone::Delivered => "returns receiving dock",
        }
    }

    /// Minutes after the previous scan (or the feed's start) this scan
    /// happens, as an inclusive range.
    fn delay_minutes(self) -> (i64, i64) {
        match self {
            Milestone::PickedUp => (60, 4 * 60),
            Milestone::InTransit => (6 * 60, 30 * 60),
            Milestone::OutForDelivery => (12 * 60, 48 * 60),
            Milestone::Delivered => (60, 8 * 60),
        }
    }
}

/// One tracking event as the carrier sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The carrier's id of the scan; a duplicate delivery repeats it.
    pub scan_id: String,
    pub tracking_number: String,
    /// The carrier's own code for the event (`PU`, `IT`, `OD`, `DL`).
    pub event_code: String,
    /// The canonical milestone the code stands for.
    pub milestone: Milestone,
    /// When the parcel was scanned (not when the event is delivered).
    pub occurred_at: DateTime<Utc>,
    pub location: String,
}

/// The feed of `tracking` starting on 2025-01-06 08:00 UTC; see
/// [`scan_feed_starting`].
pub fn scan_feed(tracking: &str, seed: u64, duplicate_rate: f64, reorder_rate: f64) -> Vec<Scan> {
    let start = Utc
        .with_ymd_and_hms(2025, 1, 6, 8, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH);
    scan_feed_starting(tracking, start, seed, duplicate_rate, reorder_rate)
}

/// The scans of `tracking` from `start` (the label's creation): every
/// milestone once at increasing times, then each scan duplicated with
/// probability `duplicate_rate` and each pair of neighbours swapped with
/// probability `reorder_rate`. Rates outside `0..=1` are clamped into it
/// (NaN reads as 0). The same arguments always give the same feed;
/// different tracking numbers give different feeds under one seed.
pub fn scan_feed_starting(
    tracking: &str,
    start: DateTime<Utc>,
    seed: u64,
    duplicate_rate: f64,
    reorder_rate: f64,
) -> Vec<Scan> {
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(tracking.as_bytes()));
    let mut at = start;
    let mut scans = Vec::new();
    for milestone in Milestone::ALL {
        let (low, high) = milestone.delay_minutes();
        at += Duration::minutes(rng.gen_range(low..=high));
        let scan = Scan {
            scan_id: format!("{tracking}-{}", milestone.carrier_code()),
            tracking_number: tracking.to_owned(),
            event_code: milestone.carrier_code().to_owned(),
            milestone,
            occurred_at: at,
            location: milestone.location().to_owned(),
        };
        if rng.gen_bool(clamp_probability(duplicate_rate)) {
            scans.push(scan.clone());
        }
        scans.push(scan);
    }
    let reorder_rate = clamp_probability(reorder_rate);
    let mut i = 0;
    while i + 1 < scans.len() {
        if rng.gen_bool(reorder_rate) {
            scans.swap(i, i + 1);
            // A swapped scan moves one place only, as when two webhook
            // deliveries race; it is not swapped on down the feed.
            i += 2;
        } else {
            i += 1;
        }
    }
    scans
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// FNV-1a, a hash that is the same on every platform and release (unlike
/// `std`'s `DefaultHasher`), to mix the tracking number into the seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_feed_is_the_four_milestones_in_order() {
        let feed = scan_feed("SIMX0000000001", 3, 0.0, 0.0);
        let milestones: Vec<Milestone> = feed.iter().map(|s| s.milestone).collect();
        assert_eq!(milestones, Milestone::ALL);
        assert!(feed.windows(2).all(|w| w[0].occurred_at < w[1].occurred_at));
        let codes: Vec<&str> = feed.iter().map(|s| s.event_code.as_str()).collect();
        assert_eq!(codes, ["PU", "IT", "OD", "DL"]);
    }

    #[test]
    fn certain_duplicates_double_every_scan() {
        let feed = scan_feed("SIMX0000000001", 3, 1.0, 0.0);
        assert_eq!(feed.len(), 8);
        assert!(feed.chunks(2).all(|pair| pair[0] == pair[1]));
    }

    #[test]
    fn out_of_range_rates_are_clamped() {
        assert_eq!(
            scan_feed("T", 1, f64::NAN, -3.0),
            scan_feed("T", 1, 0.0, 0.0)
        );
        assert_eq!(scan_feed("T", 1, 7.0, 0.0), scan_feed("T", 1, 1.0, 0.0));
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
