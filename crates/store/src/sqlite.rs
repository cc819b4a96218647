//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time, so the store owns exactly one writer
//! connection and sends every write through it; a separate pool of read-only
//! connections serves reads, which WAL lets run while a write is in progress.
//! Write transactions start with `BEGIN IMMEDIATE` so they take the write lock
//! up front (waiting on `busy_timeout` if another process holds it) instead of
//! failing half-way when a read lock cannot be upgraded.
//!
//! The read model (`returns`, `return_skus`) is written lazily: see `lazy`
//! for why, when and what a crash costs. Every read of it on this store
//! first writes the rows still held back.
//!
//! Storage conventions (see `migrations/sqlite`): UUIDs as hyphenated TEXT,
//! timestamps as fixed-width RFC 3339 UTC TEXT, JSON as TEXT. The append
//! algorithm itself lives in `append`.

mod lazy;
mod master;
mod outbox;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::append::{self, AppendTx, DeliveryRow, EventRow, ProjectTx, RowWrite, StoredRow};
use crate::checkpoint;
use crate::common::{list_limit, pow2_chunks, to_i64};
use crate::{
    ApiKeyRecord, AppendConflict, AppendRequest, Appended, BacklogRow, Error, EventStore,
    IdempotencyRecord, JsonText, NewEvent, RawEventRow, RecordedEvent, Result, StreamLookup,
    SummaryFilter, SummaryRow,
};

/// Read connections. Reads are short index lookups, so a few connections
/// keep up, and each SQLite connection is a thread of its own.
const READ_CONNECTIONS: u32 = 4;
/// How long a connection waits for a lock held by another connection or
/// process before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: the fixed statements plus ten
/// chunk sizes per multi-row insert (see `common::pow2_chunks`) and the
/// filter combinations of `list_summaries`.
const STATEMENT_CACHE: usize = 256;

/// How hard SQLite pushes each commit to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// `synchronous=FULL`: a commit is on disk when it returns, even across
    /// power loss. The default, because the hub acknowledges commands only
    /// after they are durable.
    #[default]
    Full,
    /// `synchronous=NORMAL`: with WAL, a crash of the process loses nothing,
    /// but power loss may lose the last commits. For tests and benchmarks
    /// where durability is not what is measured.
    Normal,
}

/// The SQLite backend. Cloning is cheap: clones share the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write goes through it, so SQLite never
    /// sees two writers of this process compete for the lock.
    pub(crate) writer: SqlitePool,
    /// Connections that refuse writes (`query_only`), for all reads.
    pub(crate) reader: SqlitePool,
    /// Read-model rows committed in the log but not yet written (see `lazy`).
    read_model: Arc<lazy::LazyReadModel>,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`, applies
    /// pending migrations and returns the store.
    pub async fn open(path: &Path, sync: SqliteSync) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .statement_cache_capacity(STATEMENT_CACHE);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            // The writer touches the same hot pages (list rows, index
            // interiors, the log's tail) batch after batch: keep them in
            // memory (64 MiB instead of SQLite's 2 MiB default) ...
            .pragma("cache_size", "-65536")
            // ... and checkpoint the WAL less often, in bigger steps, since
            // the checkpoint runs on the writer between batches.
            .pragma("wal_autocheckpoint", "10000")
            // A multi-row statement inside a transaction keeps a statement
            // journal so it can undo itself alone on a constraint failure.
            // On disk (the default) that journal costs a write of every page
            // the statement touches, more than a third of all bytes written
            // under load; in memory it costs nothing durable (it is never
            // read after a crash).
            .pragma("temp_store", "MEMORY");
        // The writer lives as long as the store: reconnecting would throw
        // away its prepared statements.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // Readers connect after the writer switched the file to WAL (a
        // persistent property of the file), so they need not set it.
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        // The last position ever handed out (the AUTOINCREMENT sequence
        // survives deleted rows) and how far the stored rows reflect the log.
        let last_position: i64 = sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(position) FROM events), 0), \
             COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))",
        )
        .fetch_one(&writer)
        .await?;
        let checkpoint = checkpoint::sqlite_load(&writer, lazy::CHECKPOINT).await?;
        tracing::info!(path = %path.display(), ?sync, "opened SQLite store");
        Ok(SqliteStore {
            writer,
            reader,
            read_model: Arc::new(lazy::LazyReadModel::new(
                checkpoint.unwrap_or(0),
                last_position,
            )),
        })
    }

    /// Streams with a label of this tracking number, the most recently
    /// labelled first. The query repeats its index's expression and
    /// condition (migration 0004) word for word: SQLite only uses an
    /// expression or partial index for a query that spells it the same way.
    async fn labelled(&self, tracking: &str, limit: u32) -> Result<Vec<Uuid>> {
        sqlx::query(
            "SELECT stream_id FROM events \
             WHERE event_type = 'LabelIssued' \
             AND json_extract(payload, '$.label.tracking_number') = ? \
             GROUP BY stream_id ORDER BY MAX(position) DESC LIMIT ?",
        )
        .bind(tracking)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| col_uuid(row, "stream_id"))
        .collect()
    }

    /// Starts a write transaction holding SQLite's write lock.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Timestamps are stored with exactly nine fractional digits and a `Z`, so
/// every value has the same width and text comparison is time comparison
/// (filters, ORDER BY, MIN in the backlog).
fn ts(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_ts(text: &str, column: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("{column}: `{text}` is not an RFC 3339 time: {e}")))
}

/// Reads one column, reporting a value of the wrong shape as corrupt data.
fn col<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

fn col_uuid(row: &SqliteRow, column: &str) -> Result<Uuid> {
    Ok(col::<Hyphenated>(row, column)?.into_uuid())
}

fn col_ts(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    parse_ts(&col::<String>(row, column)?, column)
}

const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, \
     payload, correlation_id, causation_id, recorded_at";

fn event_from_row(row: &SqliteRow) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        position: col(row, "position")?,
        stream_id: col_uuid(row, "stream_id")?,
        version: col(row, "version")?,
        event: NewEvent {
            event_id: col_uuid(row, "event_id")?,
            event_type: col(row, "event_type")?,
            schema_version: col(row, "schema_version")?,
            payload: col::<Json<JsonText>>(row, "payload")?.0,
            correlation_id: col_uuid(row, "correlation_id")?,
            causation_id: col_uuid(row, "causation_id")?,
            recorded_at: col_ts(row, "recorded_at")?,
        },
    })
}

const SUMMARY_COLUMNS: &str = "stream_id, version, reference, status, stage, owner, open, \
     customer, order_ref, skus, created_at, updated_at, body";

fn summary_from_row(row: &SqliteRow) -> Result<SummaryRow> {
    Ok(SummaryRow {
        stream_id: col_uuid(row, "stream_id")?,
        version: col(row, "version")?,
        reference: col(row, "reference")?,
        status: col(row, "status")?,
        stage: col(row, "stage")?,
        owner: col(row, "owner")?,
        open: col(row, "open")?,
        customer: col(row, "customer")?,
        order_ref: col(row, "order_ref")?,
        skus: col::<Json<Vec<String>>>(row, "skus")?.0,
        created_at: col_ts(row, "created_at")?,
        updated_at: col_ts(row, "updated_at")?,
        body: col::<Json<JsonText>>(row, "body")?.0,
    })
}

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id: col(row, "key_id")?,
        partner: col(row, "partner")?,
        secret_hash: col(row, "secret_hash")?,
        scopes: col::<Json<Vec<String>>>(row, "scopes")?.0,
        created_at: col_ts(row, "created_at")?,
        revoked_at: col::<Option<String>>(row, "revoked_at")?
            .map(|text| parse_ts(&text, "revoked_at"))
            .transpose()?,
    })
}

/// Appends `VALUES (...), ...` for event rows to an INSERT into `events` or
/// `bench_raw_events` (same columns).
fn push_event_values<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    rows: impl IntoIterator<Item = (Uuid, i64, &'a NewEvent)>,
) {
    qb.push_values(rows, |mut b, (stream_id, version, event)| {
        b.push_bind(stream_id.hyphenated())
            .push_bind(version)
            .push_bind(event.event_id.hyphenated())
            .push_bind(event.event_type.as_str())
            .push_bind(event.schema_version)
            .push_bind(Json(&event.payload))
            .push_bind(event.correlation_id.hyphenated())
            .push_bind(event.causation_id.hyphenated())
            .push_bind(ts(&event.recorded_at));
    });
}

/// Appends `(columns) VALUES (...), ...` for read-model rows to an INSERT
/// into `returns`. The stream id and version are passed apart from the row
/// because the append path writes its own, authoritative ones.
fn push_summary_values<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    rows: impl IntoIterator<Item = (Uuid, i64, &'a SummaryRow)>,
) {
    qb.push("(");
    qb.push(SUMMARY_COLUMNS);
    qb.push(") ");
    qb.push_values(rows, |mut b, (stream_id, version, s)| {
        b.push_bind(stream_id.hyphenated())
            .push_bind(version)
            .push_bind(s.reference.as_str())
            .push_bind(s.status.as_str())
            .push_bind(s.stage.as_str())
            .push_bind(s.owner.as_str())
            .push_bind(s.open)
            .push_bind(s.customer.as_str())
            .push_bind(s.order_ref.as_str())
            .push_bind(Json(&s.skus))
            .push_bind(ts(&s.created_at))
            .push_bind(ts(&s.updated_at))
            .push_bind(Json(&s.body));
    });
}

/// Turns an INSERT of read-model rows into an upsert. The identity columns
/// (reference, customer, order_ref, created_at) are fixed when the stream is
/// created, so they are not assigned: every index ends in `created_at`, and
/// SQLite rewrites each index whose columns are assigned, whether or not the
/// value changes. A row never moves back to an older version.
const UPSERT_ROWS_SUFFIX: &str = " ON CONFLICT (stream_id) DO UPDATE SET \
     version = excluded.version, status = excluded.status, stage = excluded.stage, \
     owner = excluded.owner, open = excluded.open, skus = excluded.skus, \
     updated_at = excluded.updated_at, body = excluded.body \
     WHERE excluded.version > returns.version";

const INSERT_EVENT_PREFIX: &str = "(stream_id, version, event_id, event_type, schema_version, \
     payload, correlation_id, causation_id, recorded_at) ";

/// The append statements on the writer's open transaction.
struct SqliteAppend<'t> {
    conn: &'t mut SqliteConnection,
}

impl AppendTx for SqliteAppend<'_> {
    async fn taken_keys(&mut self, keys: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        let mut taken = HashSet::new();
        for chunk in pow2_chunks(keys) {
            // A join, not `(partner, key) IN (VALUES ...)`: SQLite plans the
            // IN form as a scan of the whole table.
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT i.partner, i.key FROM (");
            qb.push_values(chunk, |mut b, (partner, key)| {
                b.push_bind(*partner).push_bind(*key);
            });
            qb.push(") AS k JOIN idempotency i ON i.partner = k.column1 AND i.key = k.column2");
            for row in qb.build().fetch_all(&mut *self.conn).await? {
                taken.insert((col(&row, "partner")?, col(&row, "key")?));
            }
        }
        Ok(taken)
    }

    async fn heads(&mut self, streams: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
        let mut heads = HashMap::with_capacity(streams.len());
        for chunk in pow2_chunks(streams) {
            // One row holding every head as JSON, not a row per stream:
            // sqlx hands rows from SQLite's thread to ours one at a time.
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT json_group_array(json_array(stream_id, version)) AS heads FROM \
                 (SELECT stream_id, MAX(version) AS version FROM events WHERE stream_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.hyphenated());
            }
            qb.push(") GROUP BY stream_id)");
            let row = qb.build().fetch_one(&mut *self.conn).await?;
            let found: Json<Vec<(Uuid, i64)>> = col(&row, "heads")?;
            heads.extend(found.0);
        }
        Ok(heads)
    }

    async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Result<Vec<(Uuid, i64, i64)>> {
        let mut inserted = Vec::with_capacity(rows.len());
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO events ");
            qb.push(INSERT_EVENT_PREFIX);
            push_event_values(
                &mut qb,
                chunk.iter().map(|r| (r.stream_id, r.version, r.event)),
            );
            // No RETURNING: sqlx hands each returned row from SQLite's
            // thread to ours one at a time, a few thousand hand-offs per
            // batch. The positions are known anyway: `position` is an
            // AUTOINCREMENT key and this connection is the only writer, so
            // one multi-row INSERT gives its rows consecutive positions in
            // VALUES order, ending at the last inserted rowid.
            let done = qb.build().execute(&mut *self.conn).await?;
            let count = to_i64(chunk.len());
            if done.rows_affected() != chunk.len() as u64 {
                return Err(Error::Corrupt(format!(
                    "inserted {} of {count} events",
                    done.rows_affected()
                )));
            }
            let first = done.last_insert_rowid() - count + 1;
            inserted.extend(
                chunk
                    .iter()
                    .zip(first..)
                    .map(|(r, position)| (r.stream_id, r.version, position)),
            );
        }
        Ok(inserted)
    }

    async fn insert_deliveries(&mut self, rows: &[DeliveryRow<'_>]) -> Result<()> {
        outbox::insert_deliveries(self.conn, rows).await
    }

    async fn insert_idempotency(&mut self, records: &[&IdempotencyRecord]) -> Result<()> {
        for chunk in pow2_chunks(records) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO idempotency (partner, key, request_hash, stream_id, status, \
                 response, created_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.partner.as_str())
                    .push_bind(r.key.as_str())
                    .push_bind(r.request_hash.as_str())
                    .push_bind(r.stream_id.hyphenated())
                    .push_bind(i64::from(r.status))
                    .push_bind(Json(&r.response))
                    .push_bind(ts(&r.created_at));
            });
            qb.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }
}

impl ProjectTx for SqliteAppend<'_> {
    async fn stored_rows(&mut self, streams: &[Uuid]) -> Result<HashMap<Uuid, StoredRow>> {
        let mut stored = HashMap::with_capacity(streams.len());
        for chunk in pow2_chunks(streams) {
            // One row holding them all, as `heads` does.
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT json_group_array(json_array(stream_id, version, json(skus))) AS rows \
                 FROM returns WHERE stream_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.hyphenated());
            }
            qb.push(")");
            let row = qb.build().fetch_one(&mut *self.conn).await?;
            let found: Json<Vec<(Uuid, i64, Vec<String>)>> = col(&row, "rows")?;
            stored.extend(
                found
                    .0
                    .into_iter()
                    .map(|(id, version, skus)| (id, StoredRow { version, skus })),
            );
        }
        Ok(stored)
    }

    async fn upsert_rows(&mut self, rows: &[RowWrite<'_>]) -> Result<()> {
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO returns ");
            push_summary_values(
                &mut qb,
                chunk.iter().map(|r| (r.stream_id, r.version, r.summary)),
            );
            qb.push(UPSERT_ROWS_SUFFIX);
            qb.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn replace_skus(&mut self, clear: &[Uuid], rows: &[(Uuid, &str)]) -> Result<()> {
        for chunk in pow2_chunks(clear) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("DELETE FROM return_skus WHERE stream_id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.hyphenated());
            }
            qb.push(")");
            qb.build().execute(&mut *self.conn).await?;
        }
        insert_skus(self.conn, rows).await
    }
}

/// Writes rows taken from the lazy read model and the checkpoint they
/// reach, on an open write transaction.
async fn write_taken(statements: &mut SqliteAppend<'_>, taken: &lazy::Taken) -> Result<()> {
    append::project(statements, &taken.writes()).await?;
    save_read_model_checkpoint(statements.conn, taken.through).await
}

async fn save_read_model_checkpoint(conn: &mut SqliteConnection, through: i64) -> Result<()> {
    checkpoint::sqlite_save(&mut *conn, lazy::CHECKPOINT, through).await
}

async fn insert_skus(conn: &mut SqliteConnection, rows: &[(Uuid, &str)]) -> Result<()> {
    for chunk in pow2_chunks(rows) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO return_skus (stream_id, sku) ");
        qb.push_values(chunk, |mut b, (id, sku)| {
            b.push_bind(id.hyphenated()).push_bind(*sku);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl EventStore for SqliteStore {
    async fn append_batch(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendConflict>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The writer connection is held until the rows are handed to the
        // lazy read model, so they reach it in commit order (see `lazy`).
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut statements = SqliteAppend { conn: &mut tx };
        let applied = append::apply(&mut statements, batch).await?;
        let due = self.read_model.due(Instant::now());
        if let Some(taken) = &due {
            write_taken(&mut statements, taken).await?;
        }
        tx.commit().await?;
        // `conn` is still held here: see above.
        if let Some(taken) = &due {
            self.read_model.confirm(taken);
        }
        self.read_model.add(&applied.rows, applied.positions);
        Ok(applied.outcomes)
    }

    async fn read_stream(&self, stream_id: Uuid) -> Result<Vec<RecordedEvent>> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? ORDER BY version");
        sqlx::query(&sql)
            .bind(stream_id.hyphenated())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        sqlx::query(&sql)
            .bind(after)
            .bind(to_i64(limit))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn find_idempotency(
        &self,
        partner: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT partner, key, request_hash, stream_id, status, response, created_at \
             FROM idempotency WHERE partner = ? AND key = ?",
        )
        .bind(partner)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: i64 = col(&row, "status")?;
        Ok(Some(IdempotencyRecord {
            partner: col(&row, "partner")?,
            key: col(&row, "key")?,
            request_hash: col(&row, "request_hash")?,
            stream_id: col_uuid(&row, "stream_id")?,
            status: u16::try_from(status)
                .map_err(|_| Error::Corrupt(format!("status: {status} is not an HTTP status")))?,
            response: col::<Json<serde_json::Value>>(&row, "response")?.0,
            created_at: col_ts(&row, "created_at")?,
        }))
    }

    async fn get_summary(&self, stream_id: Uuid) -> Result<Option<SummaryRow>> {
        self.flush_read_model().await?;
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM returns WHERE stream_id = ?");
        sqlx::query(&sql)
            .bind(stream_id.hyphenated())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(summary_from_row)
            .transpose()
    }

    async fn list_summaries(&self, filter: &SummaryFilter) -> Result<Vec<SummaryRow>> {
        self.flush_read_model().await?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(SUMMARY_COLUMNS);
        qb.push(" FROM returns WHERE 1 = 1");
        if let Some(status) = &filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(stage) = &filter.stage {
            qb.push(" AND stage = ").push_bind(stage.as_str());
        }
        if let Some(owner) = &filter.owner {
            qb.push(" AND owner = ").push_bind(owner.as_str());
        }
        if let Some(customer) = &filter.customer {
            qb.push(" AND customer = ").push_bind(customer.as_str());
        }
        if let Some(order_ref) = &filter.order_ref {
            qb.push(" AND order_ref = ").push_bind(order_ref.as_str());
        }
        if let Some(sku) = &filter.sku {
            // IN rather than a correlated EXISTS: SQLite plans EXISTS as a
            // scan of every return with one probe each, while IN starts from
            // the SKU index. The semantics are the same (no duplicate rows).
            qb.push(" AND stream_id IN (SELECT stream_id FROM return_skus WHERE sku = ")
                .push_bind(sku.as_str())
                .push(")");
        }
        if let Some(before) = &filter.created_before {
            qb.push(" AND created_at < ").push_bind(ts(before));
        }
        if let Some(after) = &filter.created_after {
            qb.push(" AND created_at > ").push_bind(ts(after));
        }
        // A literal rather than a binding, so the planner can use the
        // partial index on open rows.
        match filter.open {
            Some(true) => {
                qb.push(" AND open = 1");
            }
            Some(false) => {
                qb.push(" AND open = 0");
            }
            None => {}
        }
        qb.push(" ORDER BY created_at DESC, stream_id LIMIT ")
            .push_bind(list_limit(filter.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        qb.build()
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(summary_from_row)
            .collect()
    }

    async fn find_streams(&self, by: StreamLookup<'_>, limit: u32) -> Result<Vec<Uuid>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT stream_id, created_at FROM returns WHERE ");
        match by {
            StreamLookup::TrackingNumber(tracking) => {
                return self.labelled(tracking, limit).await;
            }
            StreamLookup::Reference(reference) => {
                qb.push("reference = ").push_bind(reference);
            }
            StreamLookup::OrderRef(order_ref) => {
                qb.push("order_ref = ").push_bind(order_ref);
            }
            StreamLookup::ReferenceInOrder {
                reference,
                order_ref,
            } => {
                qb.push("reference = ")
                    .push_bind(reference)
                    .push(" AND order_ref = ")
                    .push_bind(order_ref);
            }
        }
        qb.push(" ORDER BY created_at DESC, stream_id LIMIT ")
            .push_bind(i64::from(limit));
        // Rows held back are taken before the table is read: a row written
        // and let go in between is then found in both, never in neither.
        let mut found = self.read_model.matching(|row| by.matches(row));
        for row in qb.build().fetch_all(&self.reader).await? {
            found.push((col(&row, "created_at")?, col_uuid(&row, "stream_id")?));
        }
        // Newest first, as the indexes order them; each stream once.
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found.dedup_by_key(|(_, id)| *id);
        Ok(found
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, id)| id)
            .collect())
    }

    async fn backlog(&self) -> Result<Vec<BacklogRow>> {
        self.flush_read_model().await?;
        let rows = sqlx::query(
            "SELECT status, stage, owner, COUNT(*) AS count, MIN(created_at) AS oldest \
             FROM returns WHERE open = 1 GROUP BY stage, status, owner \
             ORDER BY stage, status, owner",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(BacklogRow {
                    status: col(row, "status")?,
                    stage: col(row, "stage")?,
                    owner: col(row, "owner")?,
                    count: col(row, "count")?,
                    oldest_created_at: col_ts(row, "oldest")?,
                })
            })
            .collect()
    }

    async fn replace_summaries(&self, rows: Vec<SummaryRow>, through: i64) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        // Rows still waiting are newer than or as new as the replacement's;
        // they are written after it, where newer.
        let waiting = self.read_model.all();
        {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("DELETE FROM return_skus")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM returns").execute(&mut *tx).await?;
            let mut statements = SqliteAppend { conn: &mut tx };
            let writes = append::row_writes(&rows);
            append::project(&mut statements, &writes).await?;
            if let Some(taken) = &waiting {
                append::project(&mut statements, &taken.writes()).await?;
            }
            // Only as far as the replacement was folded: whatever came after
            // is folded again at the next start.
            save_read_model_checkpoint(statements.conn, through).await?;
            tx.commit().await?;
        }
        if let Some(taken) = &waiting {
            self.read_model.confirm(taken);
        }
        self.read_model.heal(through);
        tracing::info!(rows = rows.len(), "replaced the read model");
        Ok(())
    }

    async fn read_model_position(&self) -> Result<Option<i64>> {
        let position = checkpoint::sqlite_load(&self.reader, lazy::CHECKPOINT).await?;
        // Migration 0006 writes it, so it is only missing if someone deleted
        // it: then every stream is folded again, which is slow but right.
        Ok(Some(position.unwrap_or(0)))
    }

    /// Also the first step of every read of the read model, so that it sees
    /// every committed append. Costs nothing when no row waits.
    async fn flush_read_model(&self) -> Result<()> {
        if self.read_model.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        let Some(taken) = self.read_model.all() else {
            return Ok(());
        };
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        write_taken(&mut SqliteAppend { conn: &mut tx }, &taken).await?;
        tx.commit().await?;
        self.read_model.confirm(&taken);
        Ok(())
    }

    async fn write_summaries(&self, rows: Vec<SummaryRow>, through: Option<i64>) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut statements = SqliteAppend { conn: &mut tx };
        let writes = append::row_writes(&rows);
        append::project(&mut statements, &writes).await?;
        if let Some(through) = through {
            save_read_model_checkpoint(statements.conn, through).await?;
        }
        tx.commit().await?;
        if let Some(through) = through {
            self.read_model.heal(through);
        }
        Ok(())
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, partner, secret_hash, scopes, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.key_id.as_str())
        .bind(key.partner.as_str())
        .bind(key.secret_hash.as_str())
        .bind(Json(&key.scopes))
        .bind(ts(&key.created_at))
        .bind(key.revoked_at.as_ref().map(ts))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query(
            "SELECT key_id, partner, secret_hash, scopes, created_at, revoked_at \
             FROM api_keys WHERE key_id = ?",
        )
        .bind(key_id)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        sqlx::query(
            "SELECT key_id, partner, secret_hash, scopes, created_at, revoked_at \
             FROM api_keys ORDER BY created_at, key_id",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(api_key_from_row)
        .collect()
    }

    /// Revoking an already revoked key keeps the first revocation time and
    /// still returns true.
    async fn revoke_api_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
        )
        .bind(ts(&at))
        .bind(key_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn raw_insert(&self, rows: Vec<RawEventRow>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for chunk in pow2_chunks(&rows) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO bench_raw_events ");
            qb.push(INSERT_EVENT_PREFIX);
            push_event_values(
                &mut qb,
                chunk.iter().map(|r| (r.stream_id, r.version, &r.event)),
            );
            written += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(pool: &SqlitePool, name: &str) -> String {
        let row = sqlx::query(&format!("PRAGMA {name}"))
            .fetch_one(pool)
            .await
            .expect("read pragma");
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
            .expect("pragma value")
    }

    #[tokio::test]
    async fn connections_are_configured_as_promised() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("pragmas.db");
        let store = SqliteStore::open(&path, SqliteSync::Full)
            .await
            .expect("open");
        assert_eq!(pragma(&store.writer, "journal_mode").await, "wal");
        // 2 is FULL, 1 is NORMAL.
        assert_eq!(pragma(&store.writer, "synchronous").await, "2");
        assert_eq!(pragma(&store.writer, "foreign_keys").await, "1");
        assert_eq!(pragma(&store.writer, "busy_timeout").await, "10000");
        assert_eq!(store.writer.options().get_max_connections(), 1);
        let refused = sqlx::query("DELETE FROM api_keys")
            .execute(&store.reader)
            .await;
        assert!(refused.is_err(), "readers refuse writes");
        drop(store);

        let store = SqliteStore::open(&path, SqliteSync::Normal)
            .await
            .expect("reopen");
        assert_eq!(pragma(&store.writer, "synchronous").await, "1");
    }

    #[test]
    fn sync_setting_parses_lowercase_and_defaults_to_full() {
        assert_eq!(SqliteSync::default(), SqliteSync::Full);
        let parsed: SqliteSync = serde_json::from_str("\"normal\"").expect("parse");
        assert_eq!(parsed, SqliteSync::Normal);
        assert!(serde_json::from_str::<SqliteSync>("\"Normal\"").is_err());
    }

    #[test]
    fn timestamps_have_a_fixed_width_and_round_trip() {
        let whole = DateTime::from_timestamp(1_740_830_400, 0).expect("valid");
        let fine = DateTime::from_timestamp(1_740_830_400, 5).expect("valid");
        assert_eq!(ts(&whole).len(), ts(&fine).len());
        assert!(ts(&whole) < ts(&fine));
        assert_eq!(parse_ts(&ts(&fine), "t").expect("parse"), fine);
    }
}
