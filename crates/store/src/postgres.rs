//! The scale-out backend: PostgreSQL, shared by any number of hub processes.
//!
//! Architecture invariant (read this before touching the append path): every
//! transaction that inserts events first takes the transaction-scoped
//! advisory lock [`APPEND_LOCK`]. Event positions come from an identity
//! column and are handed out when a row is inserted, not when its transaction
//! commits; without the lock, a transaction holding position 10 could commit
//! after one holding position 11, and a `read_all` subscriber that already
//! saw 11 would skip 10 forever. Holding the lock until commit (it is released
//! only after the commit is durable and visible) makes positions visible in
//! commit order, which is the promise of [`crate::EventStore::read_all`]. The
//! cost is that appends are serialised across processes; the committer's
//! group commit is what keeps that cheap. `replace_summaries` takes the same
//! lock so a replay never interleaves with appends.
//!
//! Durability: every connection sets `synchronous_commit=on`, overriding
//! whatever the server, database or role default says, because the hub
//! acknowledges a command only once it is durable.
//!
//! Types: UUIDs are `uuid`, timestamps `timestamptz` (microsecond precision),
//! JSON `jsonb`. The append algorithm itself lives in `append`.

mod master;
mod outbox;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::append::{self, AppendTx, DeliveryRow, EventRow, ProjectTx, RowWrite, StoredRow};
use crate::common::{list_limit, pow2_chunks, to_i64};
use crate::{
    ApiKeyRecord, AppendConflict, AppendRequest, Appended, BacklogRow, Error, EventStore,
    IdempotencyRecord, JsonText, NewEvent, RawEventRow, RecordedEvent, Result, StreamLookup,
    SummaryFilter, SummaryRow,
};

/// Key of the advisory lock every append transaction holds until it commits
/// (see the module documentation). The bytes spell "backhaul".
const APPEND_LOCK: i64 = 0x6261_636b_6861_756c;
/// Prepared statements kept per connection: the fixed statements plus ten
/// chunk sizes per multi-row insert (see `common::pow2_chunks`) and the
/// filter combinations of `list_summaries`.
const STATEMENT_CACHE: usize = 256;

/// The PostgreSQL backend. Cloning is cheap: clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects a pool of at most `max_connections` to `url` and applies
    /// pending migrations (sqlx serialises concurrent migrators with an
    /// advisory lock of its own, so several hubs may start at once).
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore> {
        if max_connections == 0 {
            return Err(Error::Config(
                "max_connections must be at least 1".to_owned(),
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?
            .options([("synchronous_commit", "on")])
            .statement_cache_capacity(STATEMENT_CACHE);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        tracing::info!(max_connections, "connected PostgreSQL store");
        Ok(PgStore { pool })
    }

    /// Creates a new, empty database named `prefix` + `_` + a short random
    /// suffix on the server of `admin_url` and returns the URL to reach it
    /// (the admin URL with its database replaced). For tests and benchmarks,
    /// which want a clean database each run. `prefix` must be a lower-case
    /// identifier (`[a-z_][a-z0-9_]*`, at most 40 characters) because it
    /// becomes part of an SQL identifier.
    pub async fn fresh_database(admin_url: &str, prefix: &str) -> Result<String> {
        let valid_start = prefix
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest = prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_start || !valid_rest || prefix.len() > 40 {
            return Err(Error::Config(format!(
                "database prefix `{prefix}` must match [a-z_][a-z0-9_]* and be at most 40 characters"
            )));
        }
        let suffix = Uuid::new_v4().simple().to_string();
        let name = format!("{prefix}_{}", &suffix[..12]);
        let url = database_url(admin_url, &name)?;
        let mut admin = PgConnection::connect(admin_url).await?;
        // The name is validated above, so formatting it into the statement
        // is safe; CREATE DATABASE takes no parameters.
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        tracing::info!(database = %name, "created database");
        Ok(url)
    }
}

/// `admin_url` with its database path replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> Result<String> {
    let mut url = url::Url::parse(admin_url)
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?;
    url.set_path(&format!("/{name}"));
    Ok(url.into())
}

/// Reads one column, reporting a value of the wrong shape as corrupt data.
fn col<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, \
     payload, correlation_id, causation_id, recorded_at";

fn event_from_row(row: &PgRow) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        position: col(row, "position")?,
        stream_id: col(row, "stream_id")?,
        version: col(row, "version")?,
        event: NewEvent {
            event_id: col(row, "event_id")?,
            event_type: col(row, "event_type")?,
            schema_version: col(row, "schema_version")?,
            payload: col::<Json<JsonText>>(row, "payload")?.0,
            correlation_id: col(row, "correlation_id")?,
            causation_id: col(row, "causation_id")?,
            recorded_at: col(row, "recorded_at")?,
        },
    })
}

const SUMMARY_COLUMNS: &str = "stream_id, version, reference, status, stage, owner, open, \
     customer, order_ref, skus, created_at, updated_at, body";

fn summary_from_row(row: &PgRow) -> Result<SummaryRow> {
    Ok(SummaryRow {
        stream_id: col(row, "stream_id")?,
        version: col(row, "version")?,
        reference: col(row, "reference")?,
        status: col(row, "status")?,
        stage: col(row, "stage")?,
        owner: col(row, "owner")?,
        open: col(row, "open")?,
        customer: col(row, "customer")?,
        order_ref: col(row, "order_ref")?,
        skus: col(row, "skus")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        body: col::<Json<JsonText>>(row, "body")?.0,
    })
}

fn api_key_from_row(row: &PgRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id: col(row, "key_id")?,
        partner: col(row, "partner")?,
        secret_hash: col(row, "secret_hash")?,
        scopes: col::<Json<Vec<String>>>(row, "scopes")?.0,
        created_at: col(row, "created_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

/// Appends `VALUES (...), ...` for event rows to an INSERT into `events` or
/// `bench_raw_events` (same columns).
fn push_event_values<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    rows: impl IntoIterator<Item = (Uuid, i64, &'a NewEvent)>,
) {
    qb.push_values(rows, |mut b, (stream_id, version, event)| {
        b.push_bind(stream_id)
            .push_bind(version)
            .push_bind(event.event_id)
            .push_bind(event.event_type.as_str())
            .push_bind(event.schema_version)
            .push_bind(Json(&event.payload))
            .push_bind(event.correlation_id)
            .push_bind(event.causation_id)
            .push_bind(event.recorded_at);
    });
}

/// Appends `(columns) VALUES (...), ...` for read-model rows to an INSERT
/// into `returns`. The stream id and version are passed apart from the row
/// because the append path writes its own, authoritative ones.
fn push_summary_values<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    rows: impl IntoIterator<Item = (Uuid, i64, &'a SummaryRow)>,
) {
    qb.push("(");
    qb.push(SUMMARY_COLUMNS);
    qb.push(") ");
    qb.push_values(rows, |mut b, (stream_id, version, s)| {
        b.push_bind(stream_id)
            .push_bind(version)
            .push_bind(s.reference.as_str())
            .push_bind(s.status.as_str())
            .push_bind(s.stage.as_str())
            .push_bind(s.owner.as_str())
            .push_bind(s.open)
            .push_bind(s.customer.as_str())
            .push_bind(s.order_ref.as_str())
            .push_bind(s.skus.as_slice())
            .push_bind(s.created_at)
            .push_bind(s.updated_at)
            .push_bind(Json(&s.body));
    });
}

/// Turns an INSERT of read-model rows into an upsert. The identity columns
/// (reference, customer, order_ref, created_at) are fixed when the stream is
/// created, so they are not assigned. A row never moves back to an older
/// version.
const UPSERT_ROWS_SUFFIX: &str = " ON CONFLICT (stream_id) DO UPDATE SET \
     version = excluded.version, status = excluded.status, stage = excluded.stage, \
     owner = excluded.owner, open = excluded.open, skus = excluded.skus, \
     updated_at = excluded.updated_at, body = excluded.body \
     WHERE excluded.version > returns.version";

const INSERT_EVENT_PREFIX: &str = "(stream_id, version, event_id, event_type, schema_version, \
     payload, correlation_id, causation_id, recorded_at) ";

/// The append statements on an open transaction that holds [`APPEND_LOCK`].
struct PgAppend<'t> {
    conn: &'t mut PgConnection,
}

impl AppendTx for PgAppend<'_> {
    async fn taken_keys(&mut self, keys: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        // Two array parameters cover any number of keys in one statement.
        let (partners, keys): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
        let rows = sqlx::query(
            "SELECT i.partner, i.key FROM UNNEST($1::text[], $2::text[]) AS k (partner, key) \
             JOIN idempotency i ON i.partner = k.partner AND i.key = k.key",
        )
        .bind(partners)
        .bind(keys)
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter()
            .map(|row| Ok((col(row, "partner")?, col(row, "key")?)))
            .collect()
    }

    async fn heads(&mut self, streams: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
        let rows = sqlx::query(
            "SELECT stream_id, MAX(version) AS version FROM events \
             WHERE stream_id = ANY($1) GROUP BY stream_id",
        )
        .bind(streams)
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter()
            .map(|row| Ok((col(row, "stream_id")?, col(row, "version")?)))
            .collect()
    }

    async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Result<Vec<(Uuid, i64, i64)>> {
        let mut inserted = Vec::with_capacity(rows.len());
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO events ");
            qb.push(INSERT_EVENT_PREFIX);
            push_event_values(
                &mut qb,
                chunk.iter().map(|r| (r.stream_id, r.version, r.event)),
            );
            qb.push(" RETURNING position, stream_id, version");
            for row in qb.build().fetch_all(&mut *self.conn).await? {
                inserted.push((
                    col(&row, "stream_id")?,
                    col(&row, "version")?,
                    col(&row, "position")?,
                ));
            }
        }
        Ok(inserted)
    }

    async fn insert_deliveries(&mut self, rows: &[DeliveryRow<'_>]) -> Result<()> {
        outbox::insert_deliveries(self.conn, rows).await
    }

    async fn insert_idempotency(&mut self, records: &[&IdempotencyRecord]) -> Result<()> {
        for chunk in pow2_chunks(records) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO idempotency (partner, key, request_hash, stream_id, status, \
                 response, created_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.partner.as_str())
                    .push_bind(r.key.as_str())
                    .push_bind(r.request_hash.as_str())
                    .push_bind(r.stream_id)
                    .push_bind(i32::from(r.status))
                    .push_bind(Json(&r.response))
                    .push_bind(r.created_at);
            });
            qb.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }
}

impl ProjectTx for PgAppend<'_> {
    async fn stored_rows(&mut self, streams: &[Uuid]) -> Result<HashMap<Uuid, StoredRow>> {
        let rows =
            sqlx::query("SELECT stream_id, version, skus FROM returns WHERE stream_id = ANY($1)")
                .bind(streams)
                .fetch_all(&mut *self.conn)
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    col(row, "stream_id")?,
                    StoredRow {
                        version: col(row, "version")?,
                        skus: col(row, "skus")?,
                    },
                ))
            })
            .collect()
    }

    async fn upsert_rows(&mut self, rows: &[RowWrite<'_>]) -> Result<()> {
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO returns ");
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
        if !clear.is_empty() {
            // One array parameter covers any number of streams.
            sqlx::query("DELETE FROM return_skus WHERE stream_id = ANY($1)")
                .bind(clear)
                .execute(&mut *self.conn)
                .await?;
        }
        insert_skus(self.conn, rows).await
    }
}

async fn insert_skus(conn: &mut PgConnection, rows: &[(Uuid, &str)]) -> Result<()> {
    for chunk in pow2_chunks(rows) {
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO return_skus (stream_id, sku) ");
        qb.push_values(chunk, |mut b, (id, sku)| {
            b.push_bind(*id).push_bind(*sku);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Takes the append lock for the rest of the transaction (see the module
/// documentation for why every append needs it).
async fn lock_appends(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

impl EventStore for PgStore {
    async fn append_batch(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendConflict>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // Invariant: the lock comes before any read or write of this
        // transaction, so positions become visible in commit order.
        lock_appends(&mut tx).await?;
        let mut statements = PgAppend { conn: &mut tx };
        let applied = append::apply(&mut statements, batch).await?;
        // Several hub processes share the database, so the read model is
        // written with the events (no process could tell what another one
        // still holds back).
        append::project(&mut statements, &applied.rows).await?;
        tx.commit().await?;
        Ok(applied.outcomes)
    }

    async fn read_stream(&self, stream_id: Uuid) -> Result<Vec<RecordedEvent>> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY version");
        sqlx::query(&sql)
            .bind(stream_id)
            .fetch_all(&self.pool)
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(after)
            .bind(to_i64(limit))
            .fetch_all(&self.pool)
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
             FROM idempotency WHERE partner = $1 AND key = $2",
        )
        .bind(partner)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: i32 = col(&row, "status")?;
        Ok(Some(IdempotencyRecord {
            partner: col(&row, "partner")?,
            key: col(&row, "key")?,
            request_hash: col(&row, "request_hash")?,
            stream_id: col(&row, "stream_id")?,
            status: u16::try_from(status)
                .map_err(|_| Error::Corrupt(format!("status: {status} is not an HTTP status")))?,
            response: col::<Json<serde_json::Value>>(&row, "response")?.0,
            created_at: col(&row, "created_at")?,
        }))
    }

    async fn get_summary(&self, stream_id: Uuid) -> Result<Option<SummaryRow>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM returns WHERE stream_id = $1");
        sqlx::query(&sql)
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(summary_from_row)
            .transpose()
    }

    async fn list_summaries(&self, filter: &SummaryFilter) -> Result<Vec<SummaryRow>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(SUMMARY_COLUMNS);
        qb.push(" FROM returns WHERE TRUE");
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
            // A semi-join, like EXISTS, so a return matches once however its
            // SKUs are spelled. Written as IN to match the SQLite backend,
            // where the form decides the plan.
            qb.push(" AND stream_id IN (SELECT stream_id FROM return_skus WHERE sku = ")
                .push_bind(sku.as_str())
                .push(")");
        }
        if let Some(before) = filter.created_before {
            qb.push(" AND created_at < ").push_bind(before);
        }
        if let Some(after) = filter.created_after {
            qb.push(" AND created_at > ").push_bind(after);
        }
        // A literal rather than a binding, so the planner can use the
        // partial index on open rows.
        match filter.open {
            Some(true) => {
                qb.push(" AND open");
            }
            Some(false) => {
                qb.push(" AND NOT open");
            }
            None => {}
        }
        qb.push(" ORDER BY created_at DESC, stream_id LIMIT ")
            .push_bind(list_limit(filter.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        qb.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(summary_from_row)
            .collect()
    }

    async fn find_streams(&self, by: StreamLookup<'_>, limit: u32) -> Result<Vec<Uuid>> {
        let limit = i64::from(limit);
        // The label query repeats its partial index's expression and
        // condition (migration 0004) so the planner can use it.
        let query = match by {
            StreamLookup::Reference(reference) => sqlx::query(
                "SELECT stream_id FROM returns WHERE reference = $1 \
                 ORDER BY created_at DESC, stream_id LIMIT $2",
            )
            .bind(reference)
            .bind(limit),
            StreamLookup::OrderRef(order_ref) => sqlx::query(
                "SELECT stream_id FROM returns WHERE order_ref = $1 \
                 ORDER BY created_at DESC, stream_id LIMIT $2",
            )
            .bind(order_ref)
            .bind(limit),
            StreamLookup::ReferenceInOrder {
                reference,
                order_ref,
            } => sqlx::query(
                "SELECT stream_id FROM returns WHERE reference = $1 AND order_ref = $2 \
                 ORDER BY created_at DESC, stream_id LIMIT $3",
            )
            .bind(reference)
            .bind(order_ref)
            .bind(limit),
            StreamLookup::TrackingNumber(tracking) => sqlx::query(
                "SELECT stream_id FROM events \
                 WHERE event_type = 'LabelIssued' \
                 AND (payload -> 'label' ->> 'tracking_number') = $1 \
                 GROUP BY stream_id ORDER BY MAX(position) DESC LIMIT $2",
            )
            .bind(tracking)
            .bind(limit),
        };
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| col::<Uuid>(row, "stream_id"))
            .collect()
    }

    async fn backlog(&self) -> Result<Vec<BacklogRow>> {
        let rows = sqlx::query(
            "SELECT status, stage, owner, COUNT(*) AS count, MIN(created_at) AS oldest \
             FROM returns WHERE open GROUP BY stage, status, owner \
             ORDER BY stage, status, owner",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(BacklogRow {
                    status: col(row, "status")?,
                    stage: col(row, "stage")?,
                    owner: col(row, "owner")?,
                    count: col(row, "count")?,
                    oldest_created_at: col(row, "oldest")?,
                })
            })
            .collect()
    }

    /// DELETE rather than TRUNCATE keeps readers served from the old rows
    /// until the new ones commit. `through` is not kept: this backend writes
    /// the read model with the events, so there is never anything to catch
    /// up.
    async fn replace_summaries(&self, rows: Vec<SummaryRow>, _through: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_appends(&mut tx).await?;
        sqlx::query("DELETE FROM return_skus")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM returns").execute(&mut *tx).await?;
        append::project(&mut PgAppend { conn: &mut tx }, &append::row_writes(&rows)).await?;
        tx.commit().await?;
        tracing::info!(rows = rows.len(), "replaced the read model");
        Ok(())
    }

    async fn read_model_position(&self) -> Result<Option<i64>> {
        // Written with the events: nothing to catch up.
        Ok(None)
    }

    async fn flush_read_model(&self) -> Result<()> {
        Ok(())
    }

    async fn write_summaries(&self, rows: Vec<SummaryRow>, _through: Option<i64>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_appends(&mut tx).await?;
        append::project(&mut PgAppend { conn: &mut tx }, &append::row_writes(&rows)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, partner, secret_hash, scopes, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.key_id.as_str())
        .bind(key.partner.as_str())
        .bind(key.secret_hash.as_str())
        .bind(Json(&key.scopes))
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query(
            "SELECT key_id, partner, secret_hash, scopes, created_at, revoked_at \
             FROM api_keys WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(api_key_from_row)
        .collect()
    }

    /// Revoking an already revoked key keeps the first revocation time and
    /// still returns true.
    async fn revoke_api_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn raw_insert(&self, rows: Vec<RawEventRow>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for chunk in pow2_chunks(&rows) {
            let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO bench_raw_events ");
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

    #[test]
    fn database_url_replaces_only_the_database() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t_1").ok(),
            Some("postgres://postgres@127.0.0.1:5432/t_1".to_owned())
        );
        assert_eq!(
            database_url("postgres://u:p%40ss@db/postgres?sslmode=disable", "t_2").ok(),
            Some("postgres://u:p%40ss@db/t_2?sslmode=disable".to_owned())
        );
        assert_eq!(
            database_url("postgres://db", "t_3").ok(),
            Some("postgres://db/t_3".to_owned())
        );
    }
}

/// Needs the PostgreSQL server the conformance suite uses
/// (`BACKHAUL_TEST_PG_URL`); fails, never skips, when it is unreachable.
#[cfg(test)]
mod server_tests {
    use super::*;

    #[tokio::test]
    async fn synchronous_commit_stays_on_whatever_the_database_default() {
        let admin_url = std::env::var("BACKHAUL_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let url = PgStore::fresh_database(&admin_url, "backhaul_unit")
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
        let name = url.rsplit('/').next().expect("database in URL").to_owned();
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect");
        sqlx::raw_sql(&format!(
            "ALTER DATABASE \"{name}\" SET synchronous_commit = off"
        ))
        .execute(&mut admin)
        .await
        .expect("turn the database default off");

        let store = PgStore::connect(&url, 1).await.expect("connect store");
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&store.pool)
            .await
            .expect("show setting");
        assert_eq!(setting, "on");

        store.pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop database");
    }
}
