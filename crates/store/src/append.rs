//! The append algorithm, written once for both backends.
//!
//! A backend opens the transaction and takes its write lock (SQLite: `BEGIN
//! IMMEDIATE`; PostgreSQL: the append advisory lock), hands [`apply`] an
//! [`AppendTx`] that knows its SQL, and commits. All decisions about
//! conflicts, idempotency keys, streams touched twice in one batch and SKU
//! changes live here, so the two backends cannot drift apart on the semantics
//! the conformance suite checks. What does not live here: SQL text, type
//! mapping, transactions.
//!
//! The shape of one batch. This is the benchmarked path, and on both
//! backends the cost of a batch is dominated by the number of statements
//! (each one a thread hand-off for SQLite, a network round trip for
//! PostgreSQL), not by the number of rows; so the statement count does not
//! grow with the number of requests:
//! 1. read the idempotency keys of the whole batch, then the heads (version
//!    and SKU list) of every stream it touches: one query each (per chunk);
//! 2. decide every request in memory, in batch order: idempotency key, then
//!    expected version against the head as the earlier requests of the batch
//!    left it;
//! 3. write in bulk: new heads (multi-row INSERT), moved heads (one multi-row
//!    UPDATE, each stream once with its final state), the events, the changed
//!    SKU rows and the idempotency records of the accepted requests.
//!
//! Deciding in memory is sound because the backend holds its write lock from
//! before step 1 until commit, so no other append can move a head in
//! between. The writes still carry their conditions (`INSERT` without
//! `ON CONFLICT`, `UPDATE ... WHERE version = expected`) and their row counts
//! are checked: should anything write heads without the lock, the batch fails
//! with `Err(Error)` instead of committing on a stale decision, and the
//! committer retries its requests one by one.
//!
//! A failing statement aborts the whole batch with `Err(Error)`; the caller
//! drops the transaction, so nothing of the batch is written.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;

use uuid::Uuid;

use crate::common::{to_i64, to_u64};
use crate::{
    AppendConflict, AppendRequest, Appended, Error, IdempotencyRecord, NewDelivery, NewEvent,
    Result, SummaryRow,
};

/// One event row to insert, borrowed from its request.
pub(crate) struct EventRow<'a> {
    pub(crate) stream_id: Uuid,
    pub(crate) version: i64,
    pub(crate) event: &'a NewEvent,
}

/// One outbox row to insert, borrowed from its request.
pub(crate) struct DeliveryRow<'a> {
    pub(crate) stream_id: Uuid,
    pub(crate) delivery: &'a NewDelivery,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
}

/// A stream head as stored when the batch began.
pub(crate) struct StoredHead {
    pub(crate) version: i64,
    pub(crate) skus: Vec<String>,
}

/// A stream head to write: the stream's final state after this batch.
pub(crate) struct HeadWrite<'a> {
    pub(crate) stream_id: Uuid,
    /// The stored version the head must still be at (updates only).
    pub(crate) expected: i64,
    pub(crate) version: i64,
    /// The summary of the stream's last accepted request.
    pub(crate) summary: &'a SummaryRow,
}

/// The statements the append algorithm needs, implemented by each backend
/// on top of an open transaction that holds the write lock.
pub(crate) trait AppendTx: Send {
    /// The subset of `keys` (partner, key) that already have an idempotency
    /// record.
    fn taken_keys(
        &mut self,
        keys: &[(&str, &str)],
    ) -> impl Future<Output = Result<HashSet<(String, String)>>> + Send;

    /// The stored heads of those of `streams` that have one.
    fn heads(
        &mut self,
        streams: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, StoredHead>>> + Send;

    /// Inserts heads of new streams (a plain INSERT: an existing head is a
    /// unique violation, failing the batch). Returns the rows inserted.
    fn insert_heads(&mut self, heads: &[HeadWrite<'_>])
    -> impl Future<Output = Result<u64>> + Send;

    /// Moves existing heads from `expected` to `version` and overwrites every
    /// summary column. Returns the rows updated, which is fewer than
    /// `heads.len()` if some head was not at `expected`.
    fn update_heads(&mut self, heads: &[HeadWrite<'_>])
    -> impl Future<Output = Result<u64>> + Send;

    /// Inserts the events and returns (stream_id, version, position) of every
    /// inserted row, in any order.
    fn insert_events(
        &mut self,
        rows: &[EventRow<'_>],
    ) -> impl Future<Output = Result<Vec<(Uuid, i64, i64)>>> + Send;

    /// Deletes the `return_skus` rows of the streams in `clear`, then inserts
    /// `rows` (stream_id, sku), which hold no duplicates.
    fn replace_skus(
        &mut self,
        clear: &[Uuid],
        rows: &[(Uuid, &str)],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Inserts the outbox rows of the accepted requests, as pending and due
    /// at their `created_at`.
    fn insert_deliveries(
        &mut self,
        rows: &[DeliveryRow<'_>],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Inserts the idempotency records, none of which exists yet.
    fn insert_idempotency(
        &mut self,
        records: &[&IdempotencyRecord],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A stream as this batch has left it so far.
struct Stream<'a> {
    /// The head as stored when the batch began; `None` for a new stream.
    stored: Option<&'a StoredHead>,
    /// The version after the requests accepted so far.
    version: i64,
    /// The summary of the last accepted request with events; `None` while
    /// the batch has not changed the stream.
    summary: Option<&'a SummaryRow>,
}

/// Applies `batch` inside the backend's open, write-locked transaction and
/// returns one outcome per request, in order. See
/// [`crate::EventStore::append_batch`].
///
/// The store is authoritative for the head: it writes `request.stream_id` and
/// `expected_version + events.len()`, whatever `summary.stream_id` and
/// `summary.version` say (a mismatch is an engine bug, logged as a warning).
///
/// Deliveries of a request are written only with its events: a request
/// without events writes none.
///
/// A request without events is valid: it checks the expected version like
/// any other, writes nothing but its idempotency record (the summary is left
/// as is), and answers `Appended { new_version: expected_version,
/// last_position: 0 }`. That lets a command that decided "nothing to do"
/// still answer retries of its idempotency key.
pub(crate) async fn apply<T: AppendTx>(
    tx: &mut T,
    batch: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendConflict>>> {
    // Step 1: what the store holds for this batch.
    let keys: Vec<(&str, &str)> = batch
        .iter()
        .filter_map(|r| r.idempotency.as_ref())
        .map(|r| (r.partner.as_str(), r.key.as_str()))
        .collect();
    let taken = if keys.is_empty() {
        HashSet::new()
    } else {
        tx.taken_keys(&keys).await?
    };
    let mut seen = HashSet::new();
    let stream_ids: Vec<Uuid> = batch
        .iter()
        .map(|r| r.stream_id)
        .filter(|id| seen.insert(*id))
        .collect();
    let stored = tx.heads(&stream_ids).await?;

    // Step 2: decide every request in batch order.
    let mut streams: HashMap<Uuid, Stream<'_>> = HashMap::with_capacity(stream_ids.len());
    // Streams the batch changed, in the order it first changed them, so the
    // writes happen in a deterministic order.
    let mut changed: Vec<Uuid> = Vec::new();
    // Keys claimed by accepted requests earlier in this batch.
    let mut claimed: HashSet<(&str, &str)> = HashSet::new();
    let mut events: Vec<EventRow<'_>> = Vec::new();
    // (stream, version of its last event) -> index of the request, to hand
    // each request the position of its last event.
    let mut last_events: HashMap<(Uuid, i64), usize> = HashMap::new();
    let mut records: Vec<&IdempotencyRecord> = Vec::new();
    let mut deliveries: Vec<DeliveryRow<'_>> = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());

    for (index, req) in batch.iter().enumerate() {
        // The key first: a replayed request must be recognised as such even
        // if its stream moved on since.
        let key = req
            .idempotency
            .as_ref()
            .map(|r| (r.partner.as_str(), r.key.as_str()));
        if let Some((partner, key)) = key {
            let used = claimed.contains(&(partner, key))
                || (!taken.is_empty() && taken.contains(&(partner.to_owned(), key.to_owned())));
            if used {
                outcomes.push(Err(AppendConflict::IdempotencyKey {
                    partner: partner.to_owned(),
                    key: key.to_owned(),
                }));
                continue;
            }
        }

        let stream_id = req.stream_id;
        let expected = req.expected_version;
        let stream = streams.entry(stream_id).or_insert_with(|| {
            let head = stored.get(&stream_id);
            Stream {
                stored: head,
                version: head.map_or(0, |h| h.version),
                summary: None,
            }
        });
        if stream.version != expected {
            outcomes.push(Err(AppendConflict::Version {
                stream_id,
                expected,
                actual: stream.version,
            }));
            continue;
        }

        let new_version = expected + to_i64(req.events.len());
        if !req.events.is_empty() {
            if req.summary.stream_id != stream_id || req.summary.version != new_version {
                tracing::warn!(
                    return_id = %stream_id,
                    summary_stream_id = %req.summary.stream_id,
                    summary_version = req.summary.version,
                    new_version,
                    "summary row does not match its append request; storing the request's stream and version"
                );
            }
            if stream.summary.is_none() {
                changed.push(stream_id);
            }
            stream.version = new_version;
            stream.summary = Some(&req.summary);
            for (offset, event) in req.events.iter().enumerate() {
                events.push(EventRow {
                    stream_id,
                    version: expected + 1 + to_i64(offset),
                    event,
                });
            }
            last_events.insert((stream_id, new_version), index);
            deliveries.extend(req.deliveries.iter().map(|delivery| DeliveryRow {
                stream_id,
                delivery,
                created_at: req.summary.updated_at,
            }));
        }
        if let Some(record) = &req.idempotency {
            records.push(record);
        }
        if let Some(key) = key {
            claimed.insert(key);
        }
        outcomes.push(Ok(Appended {
            new_version,
            last_position: 0,
        }));
    }

    // Step 3: write.
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut sku_clear = Vec::new();
    let mut sku_rows = Vec::new();
    for stream_id in changed {
        let Some(Stream {
            stored,
            version,
            summary: Some(summary),
        }) = streams.get(&stream_id)
        else {
            continue;
        };
        let head = HeadWrite {
            stream_id,
            expected: stored.map_or(0, |h| h.version),
            version: *version,
            summary,
        };
        let new_skus = distinct(&summary.skus);
        match stored {
            None => {
                inserts.push(head);
                sku_rows.extend(new_skus.into_iter().map(|sku| (stream_id, sku)));
            }
            Some(stored) => {
                updates.push(head);
                // Only a changed set touches `return_skus`; a reordered list
                // is the same set.
                if distinct(&stored.skus) != new_skus {
                    sku_clear.push(stream_id);
                    sku_rows.extend(new_skus.into_iter().map(|sku| (stream_id, sku)));
                }
            }
        }
    }

    if !inserts.is_empty() {
        let inserted = tx.insert_heads(&inserts).await?;
        if inserted != to_u64(inserts.len()) {
            return Err(moved_heads("inserted", inserted, inserts.len()));
        }
    }
    if !updates.is_empty() {
        let updated = tx.update_heads(&updates).await?;
        if updated != to_u64(updates.len()) {
            return Err(moved_heads("updated", updated, updates.len()));
        }
    }

    if !events.is_empty() {
        let mut assigned = 0usize;
        for (stream_id, version, position) in tx.insert_events(&events).await? {
            if let Some(&index) = last_events.get(&(stream_id, version))
                && let Some(Ok(appended)) = outcomes.get_mut(index)
            {
                appended.last_position = position;
                assigned += 1;
            }
        }
        if assigned != last_events.len() {
            return Err(Error::Corrupt(format!(
                "event insert reported positions for {assigned} of {} appends",
                last_events.len()
            )));
        }
    }

    if !sku_clear.is_empty() || !sku_rows.is_empty() {
        tx.replace_skus(&sku_clear, &sku_rows).await?;
    }

    if !deliveries.is_empty() {
        tx.insert_deliveries(&deliveries).await?;
    }

    if !records.is_empty() {
        tx.insert_idempotency(&records).await?;
    }

    Ok(outcomes)
}

/// The error for heads that changed between reading and writing them, which
/// only a writer ignoring the write lock can cause.
fn moved_heads(action: &str, done: u64, wanted: usize) -> Error {
    Error::Corrupt(format!(
        "stream heads changed during the append ({action} {done} of {wanted}); \
         something writes `returns` without the store's write lock"
    ))
}

/// The SKU set of a list: the index table holds each SKU once.
fn distinct(skus: &[String]) -> BTreeSet<&str> {
    skus.iter().map(String::as_str).collect()
}

/// The distinct SKUs of summary rows as (stream_id, sku) pairs, for bulk
/// loads of `return_skus`.
pub(crate) fn sku_rows(rows: &[SummaryRow]) -> Vec<(Uuid, &str)> {
    rows.iter()
        .flat_map(|row| {
            distinct(&row.skus)
                .into_iter()
                .map(move |sku| (row.stream_id, sku))
        })
        .collect()
}
