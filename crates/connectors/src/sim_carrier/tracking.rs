//! Carrier tracking as a source: the carrier simulator has no webhooks, so
//! the hub polls each open label's scan feed, as it would with a carrier
//! whose API only offers polling, and hands every scan to the inbox under
//! the carrier's own scan id. The feed repeats scans and delivers them out
//! of order; the inbox drops the repeats and the domain folds late scans in
//! without moving a return back.

use std::sync::Arc;
use std::time::Duration;

use backhaul_domain::Command;
use backhaul_domain::command::CarrierEvent;
use backhaul_domain::model::CarrierMilestone;
use backhaul_domain::values::ReturnId;
use backhaul_engine::{BoxFuture, Engine, Error, Inbox, Received, Source};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::Method;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::http::{Transport, classify, wire};

/// One scan as the carrier's feed has it.
#[derive(Debug, Deserialize)]
struct Scan {
    scan_id: String,
    /// The carrier's own event code: `PU`, `IT`, `OD`, `DL`.
    event_code: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    location: Option<String>,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Labels whose feed was read.
    pub labels: usize,
    pub applied: usize,
    pub duplicates: usize,
    /// Scans the return refused (it moved on, e.g. was cancelled) or that
    /// carried a code this connector does not know.
    pub refused: usize,
    /// Feeds that could not be read (retried at the next poll).
    pub failed: usize,
}

/// Polls the carrier simulator's scan feeds.
pub struct TrackingSource {
    transport: Arc<dyn Transport>,
    interval: Duration,
}

impl TrackingSource {
    pub fn new(transport: Arc<dyn Transport>, interval: Duration) -> TrackingSource {
        TrackingSource {
            transport,
            interval,
        }
    }

    /// Reads the feed of every return waiting for or in transit and hands
    /// each scan to the inbox.
    pub async fn poll_once(&self, inbox: &Inbox) -> Result<PollReport, Error> {
        let mut report = PollReport::default();
        for (return_id, tracking) in labels_in_transit(inbox.engine()).await? {
            report.labels += 1;
            let scans = match self.feed(&tracking).await {
                Ok(scans) => scans,
                Err(error) => {
                    tracing::warn!(%return_id, %tracking, %error, "cannot read the scan feed");
                    report.failed += 1;
                    continue;
                }
            };
            for scan in scans {
                let Some(milestone) = milestone(&scan.event_code) else {
                    tracing::warn!(%return_id, code = %scan.event_code, "unknown carrier event code");
                    report.refused += 1;
                    continue;
                };
                let fingerprint = format!("{}|{}|{}", scan.event_code, scan.occurred_at, tracking);
                let command = Command::RecordCarrierMilestone(CarrierEvent {
                    milestone,
                    occurred_at: scan.occurred_at,
                    location: scan.location.clone(),
                });
                match inbox
                    .receive(return_id, command, &scan.scan_id, &fingerprint, None)
                    .await
                {
                    Ok(Received::Applied(_)) => report.applied += 1,
                    Ok(Received::Duplicate(_)) => report.duplicates += 1,
                    Err(Error::Rejected(rejection)) => {
                        tracing::info!(%return_id, scan = %scan.scan_id, %rejection, "scan not applied");
                        report.refused += 1;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(report)
    }

    async fn feed(&self, tracking: &str) -> Result<Vec<Scan>, String> {
        let request = http::Request::builder()
            .method(Method::GET)
            .uri(format!(
                "/carrier/labels/{}/scans",
                wire::path_segment(tracking)
            ))
            .body(Bytes::new())
            .map_err(|e| e.to_string())?;
        let (status, headers, body) = self
            .transport
            .send(request)
            .await
            .map_err(|e| e.to_string())?;
        classify(status, &headers, &body).map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("scan feed: {e}"))
    }
}

impl Source for TrackingSource {
    fn name(&self) -> &str {
        "carrier-tracking"
    }

    fn run(self: Box<Self>, inbox: Inbox, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                match self.poll_once(&inbox).await {
                    Ok(report) if report.applied > 0 || report.failed > 0 => {
                        tracing::info!(?report, "carrier tracking polled");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "carrier tracking poll failed"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        })
    }
}

/// The carrier's codes in the hub's vocabulary. A pick-up scan means the
/// carrier has the parcel: in transit.
fn milestone(code: &str) -> Option<CarrierMilestone> {
    match code {
        "PU" | "IT" => Some(CarrierMilestone::InTransit),
        "OD" => Some(CarrierMilestone::OutForDelivery),
        "DL" => Some(CarrierMilestone::Delivered),
        _ => None,
    }
}

/// Open returns that have a label and wait for shipment or are in transit,
/// with the label's tracking number.
async fn labels_in_transit(engine: &Engine) -> Result<Vec<(ReturnId, String)>, Error> {
    let mut out = Vec::new();
    for id in engine
        .open_returns_in(&["awaiting_shipment", "in_transit"])
        .await?
    {
        if let Some(summary) = engine.get(id).await?
            && let Some(tracking) = summary.to_value()["label"]["tracking_number"].as_str()
        {
            out.push((id, tracking.to_owned()));
        }
    }
    Ok(out)
}
