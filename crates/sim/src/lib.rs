//! Simulators of the external systems Backhaul talks to: an ERP, a warehouse
//! management system (WMS), a parcel carrier and a customer portal. They
//! behave like the real thing where it matters to an integration: their own
//! document numbers, latency, throttling (429 with `Retry-After`), transient
//! 5xx, deterministic business rejections, lost responses, idempotency keys,
//! and durable state in SQLite, so a test can kill the hub and still count
//! exactly what the ERP received.
//!
//! Layout:
//! - `config`: [`SimConfig`], [`Faults`] and the per-kind settings, all
//!   serde with `deny_unknown_fields`.
//! - `clock`: the injected [`Clock`] (token bucket, label expiry, timestamps).
//! - `sim`: [`Sim`], the cheap-clone handle, and its router.
//! - `db`: the SQLite schema and every query ([`SimDb`], [`Posting`]).
//! - `pipeline`: the one path every creating POST takes: faults, key, body,
//!   replay, business rules, durable write, lost response.
//! - `faults`: the token bucket and the seeded fault draws.
//! - `command`: the `Command` enum, one variant per creating POST.
//! - `erp`, `wms`, `carrier`, `portal`: each system's requests, rules, reads
//!   and routes (one file each, mirroring the URL tree).
//! - `admin`: `/health`, `/admin/faults`, `/admin/stats`, `/admin/postings`.
//! - `body`: the JSON body reader that names the failing field, and the
//!   canonical JSON that idempotency compares.
//! - `error`: [`SimError`] (the library's errors) and the problem+json
//!   responses of the HTTP side.
//! - `stats`: [`Stats`] and the per-outcome counters.
//! - `scan`: the deterministic carrier scan feed, [`scan_feed`].
//!
//! Not here: anything of the hub. The simulators know nothing of Backhaul's
//! domain crates on purpose: they stand for systems someone else wrote, and
//! their wire contract is theirs, not a copy of the hub's types.
//!
//! Entry points: [`Sim::open`] then [`Sim::router`] (driven in process with
//! `tower::ServiceExt::oneshot`, no socket), or [`serve`] on a listener.

mod admin;
mod body;
mod carrier;
mod clock;
mod command;
mod config;
mod db;
mod erp;
mod error;
mod faults;
mod pipeline;
mod portal;
mod scan;
mod sim;
mod stats;
mod wms;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CarrierConfig, ErpConfig, Faults, SimConfig, SimKind, WmsConfig};
pub use db::{Posting, PostingKind, SimDb};
pub use erp::{Ledger, LedgerCounts};
pub use error::SimError;
pub use scan::{Milestone, Scan, scan_feed, scan_feed_starting};
pub use sim::Sim;
pub use stats::Stats;

/// Serves `sim` over HTTP on `listener` until `shutdown` is cancelled, then
/// stops accepting connections and waits for in-flight requests (including
/// their simulated latency) to finish.
pub async fn serve(
    sim: Sim,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let kind = sim.kind();
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, %kind, "simulator listening");
    }
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!(%kind, "simulator stopped");
    Ok(())
}
