//! The routes every simulator has besides its system's own: `GET /health`
//! and the `/admin` controls a test or an operator uses to steer it
//! (faults), and to look inside it (counters, every posting). None of them
//! is faulted or counted: they stand outside the simulated system.
//!
//! The ERP's `PUT /admin/erp/period` lives with the ERP (`erp.rs`).

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::config::Faults;
use crate::db::Posting;
use crate::error::{Code, Problem};
use crate::sim::Sim;
use crate::stats::Stats;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/health", get(health))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/stats", get(stats))
        .route("/admin/postings", get(postings))
}

#[derive(Debug, Serialize)]
struct Health {
    /// Always `ok`.
    status: &'static str,
    /// Which system this simulator plays.
    kind: &'static str,
}

/// Liveness; does not touch the database.
async fn health(State(sim): State<Sim>) -> Json<Health> {
    Json(Health {
        status: "ok",
        kind: sim.kind().as_str(),
    })
}

async fn get_faults(State(sim): State<Sim>) -> Json<Faults> {
    Json(sim.faults())
}

/// Replaces the faults with the body (a whole [`Faults`]; absent fields take
/// their defaults, so `{}` turns every fault off) and answers the faults now
/// in force.
async fn put_faults(State(sim): State<Sim>, body: Bytes) -> Result<Json<Faults>, Problem> {
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(Code::InvalidBody, format!("not a Faults object: {e}")))?;
    sim.set_faults(faults)
        .map_err(|e| Problem::new(Code::InvalidBody, e.to_string()))?;
    Ok(Json(sim.faults()))
}

async fn stats(State(sim): State<Sim>) -> Result<Json<Stats>, Problem> {
    Ok(Json(sim.stats().await?))
}

async fn postings(State(sim): State<Sim>) -> Result<Json<Vec<Posting>>, Problem> {
    Ok(Json(sim.postings().await?))
}
