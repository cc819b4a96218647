//! Rebuilding the read model from the event log (`backhaul replay`). The log
//! is the truth; the summary table is a cache of `evolve` over it.

use std::collections::HashMap;

use backhaul_domain::{ReturnState, ReturnSummary, evolve};
use backhaul_store::{AnyStore, EventStore};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::engine::{Error, decode, summary_row};

/// Events read per page while replaying.
const PAGE: usize = 5_000;

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub events: u64,
    pub returns: u64,
}

/// Folds the whole log and replaces the read model with the result, in one
/// transaction. Run it with the hub stopped: commands committed meanwhile
/// would be overwritten by older rows.
pub async fn replay(store: &AnyStore) -> Result<ReplayReport, Error> {
    let mut streams: HashMap<Uuid, (ReturnState, i64, DateTime<Utc>)> = HashMap::new();
    let mut after = 0;
    let mut events = 0u64;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for r in &page {
            let entry = streams
                .entry(r.stream_id)
                .or_insert_with(|| (ReturnState::default(), 0, r.event.recorded_at));
            evolve(&mut entry.0, &decode(r)?);
            entry.1 = r.version;
            entry.2 = r.event.recorded_at;
            events += 1;
        }
    }
    let mut rows = Vec::with_capacity(streams.len());
    for (id, (state, version, updated_at)) in streams {
        let summary = ReturnSummary::from_state(&state)
            .ok_or_else(|| Error::Corrupt(format!("stream {id} does not start with a request")))?;
        rows.push(summary_row(&summary, version, updated_at)?);
    }
    let returns = rows.len() as u64;
    store.replace_summaries(rows).await?;
    Ok(ReplayReport { events, returns })
}
