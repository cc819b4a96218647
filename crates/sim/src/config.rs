//! What a simulator is told at start: which system it plays ([`SimKind`]),
//! how badly it behaves ([`Faults`], also changeable at run time through
//! `PUT /admin/faults`), the seed of its fault draws, and the business
//! settings of each kind. Every struct denies unknown fields, so a typo in a
//! config file is an error rather than a silently ignored setting.
//!
//! Not here: the database location ([`crate::SimDb`], an argument of
//! [`crate::Sim::open`]) and the clock (not serialisable; see
//! [`crate::Sim::open_with_clock`]).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Which external system a simulator plays. Decides its routes, its document
/// numbers and its business rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimKind {
    /// Finance: return orders, inventory adjustments, credit memos,
    /// supplier claims, repair and replacement orders.
    Erp,
    /// Warehouse: expected receipts (ASNs) and their cancellation.
    Wms,
    /// Parcel carrier: return labels, voids and scans.
    Carrier,
    /// Customer portal: status updates.
    Portal,
}

impl SimKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [SimKind; 4] = [
        SimKind::Erp,
        SimKind::Wms,
        SimKind::Carrier,
        SimKind::Portal,
    ];

    /// Lower case, as in configs, the CLI and `GET /health`.
    pub fn as_str(self) -> &'static str {
        match self {
            SimKind::Erp => "erp",
            SimKind::Wms => "wms",
            SimKind::Carrier => "carrier",
            SimKind::Portal => "portal",
        }
    }
}

impl fmt::Display for SimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SimKind {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        SimKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| SimError::UnknownKind(s.to_owned()))
    }
}

/// The settings of one simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Which system this simulator plays.
    pub kind: SimKind,
    /// Misbehaviour at start; `PUT /admin/faults` replaces it at run time.
    #[serde(default)]
    pub faults: Faults,
    /// Seed of the fault draws (which request fails, latency jitter) and of
    /// the carrier's scan feed. The same seed and the same sequence of
    /// requests give the same faults, so a failing run can be replayed.
    #[serde(default)]
    pub seed: u64,
    /// ERP business settings; ignored by the other kinds.
    #[serde(default)]
    pub erp: ErpConfig,
    /// WMS business settings; ignored by the other kinds.
    #[serde(default)]
    pub wms: WmsConfig,
    /// Carrier settings; ignored by the other kinds.
    #[serde(default)]
    pub carrier: CarrierConfig,
}

impl SimConfig {
    /// A well-behaved simulator of `kind`: no faults, seed 0, default
    /// business settings.
    pub fn new(kind: SimKind) -> Self {
        SimConfig {
            kind,
            faults: Faults::default(),
            seed: 0,
            erp: ErpConfig::default(),
            wms: WmsConfig::default(),
            carrier: CarrierConfig::default(),
        }
    }

    /// Checks what the types cannot: probabilities in `0..=1`, positive
    /// rates and durations.
    pub fn validate(&self) -> Result<(), SimError> {
        self.faults.validate().map_err(SimError::Config)?;
        self.carrier.validate().map_err(SimError::Config)
    }
}

/// How badly a simulator behaves. Applied to every POST, in this order:
/// latency, rate limit, transient error, (idempotency and business rules),
/// lost response. Reads (`GET`) and `/admin` are never faulted, so a test can
/// always look at the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Fixed delay before a POST is handled, in milliseconds (default 0).
    /// Real time: its point is to make the hub wait and overlap requests.
    pub latency_ms: u64,
    /// Up to this many milliseconds more, drawn per request from the seeded
    /// generator (default 0), so latencies are not all identical.
    pub latency_jitter_ms: u64,
    /// Token bucket refill rate, in requests per second; `None` (the
    /// default) means no rate limit. A POST that finds the bucket empty is
    /// answered 429 `rate_limited` with `Retry-After` in whole seconds.
    pub rate_limit_per_sec: Option<u32>,
    /// Size of the token bucket: how many POSTs may arrive at once after a
    /// quiet period. 0 (the default) means one second's worth, that is
    /// `rate_limit_per_sec`.
    pub burst: u32,
    /// Probability (`0..=1`) that an admitted POST is answered 503
    /// `unavailable` without being looked at; nothing is stored.
    pub transient_error_rate: f64,
    /// Probability (`0..=1`) that a POST which *was* stored is answered 500
    /// `internal`: the reply was lost, the effect was not. The retry with the
    /// same idempotency key gets the original answer. Replays are never lost.
    pub lost_response_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            latency_jitter_ms: 0,
            rate_limit_per_sec: None,
            burst: 0,
            transient_error_rate: 0.0,
            lost_response_rate: 0.0,
        }
    }
}

impl Faults {
    /// Checks the ranges serde cannot; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        probability("faults.transient_error_rate", self.transient_error_rate)?;
        probability("faults.lost_response_rate", self.lost_response_rate)?;
        if self.rate_limit_per_sec == Some(0) {
            return Err(
                "faults.rate_limit_per_sec: must be at least 1 (leave it out for no limit)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// `p` is a probability: finite and within `0..=1`.
pub(crate) fn probability(field: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be a probability between 0 and 1, got {p}"
        ))
    }
}

/// The ERP's business settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErpConfig {
    /// SKUs the ERP's item master does not know: a return order with one of
    /// them is rejected with 422 `unknown_sku`.
    pub unknown_skus: Vec<String>,
    /// Whether the posting period is closed at start: every ERP POST is then
    /// rejected with 422 `period_closed` until `PUT /admin/erp/period`
    /// `{"closed":false}` opens it.
    pub period_closed: bool,
    /// The largest total one credit memo may have, as a decimal string
    /// (`"500.00"`); above it the memo is rejected with 422
    /// `credit_limit_exceeded`. `None` (the default) means no limit.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub credit_limit: Option<Decimal>,
}

/// The WMS's business settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WmsConfig {
    /// Sites the WMS runs. When the list is not empty, an expected receipt
    /// for another site is rejected with 422 `unknown_site`; when it is
    /// empty (the default) every site is accepted.
    pub sites: Vec<String>,
}

/// The carrier's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarrierConfig {
    /// How long a label is valid, in days (default 14): `expires_at` is the
    /// creation time plus this.
    pub label_validity_days: u32,
    /// Probability (`0..=1`) that each scan of
    /// `GET /carrier/labels/{tracking}/scans` is delivered twice.
    pub scan_duplicate_rate: f64,
    /// Probability (`0..=1`) that two neighbouring scans of that feed arrive
    /// swapped.
    pub scan_reorder_rate: f64,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            label_validity_days: 14,
            scan_duplicate_rate: 0.0,
            scan_reorder_rate: 0.0,
        }
    }
}

impl CarrierConfig {
    fn validate(&self) -> Result<(), String> {
        if self.label_validity_days == 0 {
            return Err("carrier.label_validity_days: must be at least 1".to_owned());
        }
        probability("carrier.scan_duplicate_rate", self.scan_duplicate_rate)?;
        probability("carrier.scan_reorder_rate", self.scan_reorder_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in SimKind::ALL {
            assert_eq!(kind.to_string().parse::<SimKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert!("ERP".parse::<SimKind>().is_err());
    }

    #[test]
    fn config_has_defaults_and_denies_unknown_fields() {
        let config: SimConfig = serde_json::from_str(r#"{"kind":"erp"}"#).unwrap();
        assert_eq!(config, SimConfig::new(SimKind::Erp));
        assert!(serde_json::from_str::<SimConfig>(r#"{"kind":"erp","sed":1}"#).is_err());
        assert!(
            serde_json::from_str::<SimConfig>(r#"{"kind":"erp","faults":{"latency":1}}"#).is_err()
        );
        let config: SimConfig =
            serde_json::from_str(r#"{"kind":"erp","erp":{"credit_limit":"500.00"}}"#).unwrap();
        assert_eq!(config.erp.credit_limit, Some(Decimal::new(50000, 2)));
    }

    #[test]
    fn credit_limit_is_a_decimal_string_never_a_number() {
        let error =
            serde_json::from_str::<SimConfig>(r#"{"kind":"erp","erp":{"credit_limit":500.5}}"#);
        assert!(error.is_err());
    }

    #[test]
    fn probabilities_and_rates_are_range_checked() {
        let mut config = SimConfig::new(SimKind::Wms);
        assert!(config.validate().is_ok());
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            config.faults.transient_error_rate = bad;
            assert!(config.validate().is_err(), "{bad}");
        }
        config.faults.transient_error_rate = 1.0;
        config.faults.rate_limit_per_sec = Some(0);
        assert!(config.validate().is_err());
        config.faults.rate_limit_per_sec = Some(1);
        assert!(config.validate().is_ok());
        config.carrier.label_validity_days = 0;
        assert!(config.validate().is_err());
    }
}
