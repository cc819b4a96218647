//! Rebuilding the read model from the event log: all of it (`backhaul
//! replay`), or the streams a crash left behind (`catch_up`, when the engine
//! opens). The log is the truth; the summary table is a cache of `evolve`
//! over it.

use std::collections::{BTreeSet, HashMap};

use backhaul_domain::{ReturnState, ReturnSummary, evolve};
use backhaul_store::{AnyStore, EventStore};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::engine::{Error, decode, fold, summary_row};

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
    store.replace_summaries(rows, after).await?;
    Ok(ReplayReport { events, returns })
}

/// Streams folded again per write while catching up.
const CATCH_UP_CHUNK: usize = 500;

/// Brings the read model up to the log: the streams with events after the
/// store's read-model position are folded from their whole log again and
/// their rows written, then the position is moved to the last event seen.
/// Nothing to do on a backend that writes the read model with the events,
/// or when nothing was lost. Returns how many streams were written.
///
/// Safe while commands run: a row never replaces a newer one, and every
/// stream is folded after the event that named it was read.
pub async fn catch_up(store: &AnyStore) -> Result<u64, Error> {
    let Some(mut after) = store.read_model_position().await? else {
        return Ok(0);
    };
    let mut behind = BTreeSet::new();
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        behind.extend(page.iter().map(|r| r.stream_id));
    }
    if behind.is_empty() {
        return Ok(0);
    }
    let behind: Vec<Uuid> = behind.into_iter().collect();
    let chunks = behind.chunks(CATCH_UP_CHUNK);
    let count = chunks.len();
    for (n, chunk) in chunks.enumerate() {
        let mut rows = Vec::with_capacity(chunk.len());
        for id in chunk {
            let recorded = store.read_stream(*id).await?;
            let loaded = fold(&recorded)?;
            let summary = ReturnSummary::from_state(&loaded.state).ok_or_else(|| {
                Error::Corrupt(format!("stream {id} does not start with a request"))
            })?;
            let updated_at = recorded
                .last()
                .map(|r| r.event.recorded_at)
                .unwrap_or_default();
            rows.push(summary_row(&summary, loaded.version, updated_at)?);
        }
        // The position moves only with the last chunk: a crash in between
        // starts the catch-up over, which is slower but loses nothing.
        let through = (n + 1 == count).then_some(after);
        store.write_summaries(rows, through).await?;
    }
    tracing::info!(
        streams = behind.len(),
        through = after,
        "read model caught up with the log"
    );
    Ok(behind.len() as u64)
}
