//! The append algorithm and the read-model projection, written once for
//! both backends.
//!
//! A backend opens the transaction and takes its write lock (SQLite: `BEGIN
//! IMMEDIATE`; PostgreSQL: the append advisory lock), hands [`apply`] an
//! [`AppendTx`] that knows its SQL, writes the read-model rows [`apply`]
//! returns with [`project`] (now, or later: see `sqlite::LazyReadModel`), and
//! commits. All decisions about conflicts, idempotency keys, streams touched
//! twice in one batch and SKU changes live here, so the two backends cannot
//! drift apart on the semantics the conformance suite checks. What does not
//! live here: SQL text, type mapping, transactions.
//!
//! The stream head (the version optimistic concurrency checks) is the log
//! itself: the highest version of the stream's events. The `returns` row is
//! only the read model, derived from the log, so writing it may lag the
//! events without any append ever deciding on a stale version.
//!
//! The shape of one batch. This is the benchmarked path, and on both
//! backends the cost of a batch is dominated by the number of statements
//! (each one a thread hand-off for SQLite, a network round trip for
//! PostgreSQL), not by the number of rows; so the statement count does not
//! grow with the number of requests:
//! 1. read the idempotency keys of the whole batch, then the versions of
//!    every stream it touches (from the log): one query each (per chunk);
//! 2. decide every request in memory, in batch order: idempotency key, then
//!    expected version against the head as the earlier requests of the batch
//!    left it;
//! 3. write in bulk: the events, the outbox rows and the idempotency records
//!    of the accepted requests. The events carry their own guard: a second
//!    event at the same (stream, version) is a unique violation.
//!
//! Deciding in memory is sound because the backend holds its write lock from
//! before step 1 until commit, so no other append can move a head in
//! between; should anything write events without the lock anyway, the
//! unique (stream, version) index fails the batch with `Err(Error)` instead
//! of committing on a stale decision, and the committer retries its requests
//! one by one.
//!
//! A failing statement aborts the whole batch with `Err(Error)`; the caller
//! drops the transaction, so nothing of the batch is written.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;

use uuid::Uuid;

use crate::common::to_i64;
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

/// A read-model row to write: a stream's summary at `version`.
pub(crate) struct RowWrite<'a> {
    pub(crate) stream_id: Uuid,
    /// The stream's version the row reflects; the store's, whatever
    /// `summary.version` says.
    pub(crate) version: i64,
    pub(crate) summary: &'a SummaryRow,
}

/// Rows as they are (their own stream id and version), in the shape
/// [`project`] writes.
pub(crate) fn row_writes(rows: &[SummaryRow]) -> Vec<RowWrite<'_>> {
    rows.iter()
        .map(|summary| RowWrite {
            stream_id: summary.stream_id,
            version: summary.version,
            summary,
        })
        .collect()
}

/// A read-model row as stored: what [`project`] compares against.
pub(crate) struct StoredRow {
    pub(crate) version: i64,
    pub(crate) skus: Vec<String>,
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

    /// The version (highest event version) of those of `streams` that have
    /// events.
    fn heads(
        &mut self,
        streams: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, i64>>> + Send;

    /// Inserts the events and returns (stream_id, version, position) of every
    /// inserted row, in any order.
    fn insert_events(
        &mut self,
        rows: &[EventRow<'_>],
    ) -> impl Future<Output = Result<Vec<(Uuid, i64, i64)>>> + Send;

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

/// The statements of [`project`], on an open write transaction.
pub(crate) trait ProjectTx: Send {
    /// The stored read-model rows (version and SKU list) of those of
    /// `streams` that have one.
    fn stored_rows(
        &mut self,
        streams: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, StoredRow>>> + Send;

    /// Inserts the rows of new streams and overwrites the changeable columns
    /// of existing ones, never replacing a row with an older version.
    fn upsert_rows(&mut self, rows: &[RowWrite<'_>]) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the `return_skus` rows of the streams in `clear`, then inserts
    /// `rows` (stream_id, sku), which hold no duplicates.
    fn replace_skus(
        &mut self,
        clear: &[Uuid],
        rows: &[(Uuid, &str)],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What [`apply`] decided and wrote.
pub(crate) struct Applied<'a> {
    /// One per request, in order.
    pub(crate) outcomes: Vec<Result<Appended, AppendConflict>>,
    /// The read-model row of every stream the batch changed, as its last
    /// accepted request left it, in the order the batch first changed them.
    pub(crate) rows: Vec<RowWrite<'a>>,
    /// The lowest and highest positions the batch wrote, if it wrote events.
    pub(crate) positions: Option<(i64, i64)>,
}

/// A stream as this batch has left it so far.
struct Stream<'a> {
    /// The version after the requests accepted so far.
    version: i64,
    /// The summary of the last accepted request with events; `None` while
    /// the batch has not changed the stream.
    summary: Option<&'a SummaryRow>,
}

/// Applies `batch` inside the backend's open, write-locked transaction:
/// writes the events, deliveries and idempotency records of the accepted
/// requests and returns one outcome per request, in order, with the
/// read-model rows to write. See [`crate::EventStore::append_batch`].
///
/// The store is authoritative for the rows' identity: they carry
/// `request.stream_id` and `expected_version + events.len()`, whatever
/// `summary.stream_id` and `summary.version` say (a mismatch is an engine
/// bug, logged as a warning).
///
/// Deliveries of a request are written only with its events: a request
/// without events writes none.
///
/// A request without events is valid: it checks the expected version like
/// any other, writes nothing but its idempotency record (the summary is left
/// as is), and answers `Appended { new_version: expected_version,
/// last_position: 0 }`. That lets a command that decided "nothing to do"
/// still answer retries of its idempotency key.
pub(crate) async fn apply<'a, T: AppendTx>(
    tx: &mut T,
    batch: &'a [AppendRequest],
) -> Result<Applied<'a>> {
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
        let stream = streams.entry(stream_id).or_insert_with(|| Stream {
            version: stored.get(&stream_id).copied().unwrap_or(0),
            summary: None,
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
    let rows = changed
        .into_iter()
        .filter_map(|stream_id| {
            let stream = streams.get(&stream_id)?;
            Some(RowWrite {
                stream_id,
                version: stream.version,
                summary: stream.summary?,
            })
        })
        .collect();

    let mut positions: Option<(i64, i64)> = None;
    if !events.is_empty() {
        let mut assigned = 0usize;
        for (stream_id, version, position) in tx.insert_events(&events).await? {
            positions = Some(positions.map_or((position, position), |(first, last)| {
                (first.min(position), last.max(position))
            }));
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

    if !deliveries.is_empty() {
        tx.insert_deliveries(&deliveries).await?;
    }

    if !records.is_empty() {
        tx.insert_idempotency(&records).await?;
    }

    Ok(Applied {
        outcomes,
        rows,
        positions,
    })
}

/// Writes read-model rows (one per stream) on the backend's open write
/// transaction: new streams get their row, existing rows move forward, a
/// row already at the same or a newer version is left alone (so a late or
/// repeated write never moves the read model backwards), and `return_skus`
/// follows only a changed SKU set.
pub(crate) async fn project<T: ProjectTx>(tx: &mut T, rows: &[RowWrite<'_>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.stream_id).collect();
    let stored = tx.stored_rows(&ids).await?;
    let mut writes = Vec::with_capacity(rows.len());
    let mut clear = Vec::new();
    let mut sku_rows = Vec::new();
    for row in rows {
        let new_skus = distinct(&row.summary.skus);
        match stored.get(&row.stream_id) {
            None => sku_rows.extend(new_skus.into_iter().map(|sku| (row.stream_id, sku))),
            Some(old) if old.version >= row.version => continue,
            Some(old) => {
                // Only a changed set touches `return_skus`; a reordered list
                // is the same set.
                if distinct(&old.skus) != new_skus {
                    clear.push(row.stream_id);
                    sku_rows.extend(new_skus.into_iter().map(|sku| (row.stream_id, sku)));
                }
            }
        }
        writes.push(RowWrite {
            stream_id: row.stream_id,
            version: row.version,
            summary: row.summary,
        });
    }
    if !writes.is_empty() {
        tx.upsert_rows(&writes).await?;
    }
    if !clear.is_empty() || !sku_rows.is_empty() {
        tx.replace_skus(&clear, &sku_rows).await?;
    }
    Ok(())
}

/// The SKU set of a list: the index table holds each SKU once.
fn distinct(skus: &[String]) -> BTreeSet<&str> {
    skus.iter().map(String::as_str).collect()
}
