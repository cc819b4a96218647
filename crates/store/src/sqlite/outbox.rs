//! The outbox on SQLite: the statements behind [`crate::DeliveryStore`].
//! The rules (claimability, operator actions) live in `crate::outbox`.
//! Every write goes through the store's one writer connection, so a claim
//! and the append path never race.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{SqliteStore, col, col_ts, col_uuid, ts};
use crate::append::DeliveryRow;
use crate::common::{list_limit, pow2_chunks};
use crate::outbox::{self, ClaimTx, OperateTx, StreamDelivery, finish_columns};
use crate::{
    AuditEntry, ClaimRequest, Claimed, Delivery, DeliveryFilter, DeliveryState, DeliveryStore,
    Error, Finish, JsonText, OperateError, Operation, Result,
};

const DELIVERY_COLUMNS: &str = "id, stream_id, target, kind, delivery_key, requires, payload, \
     correlation_id, state, attempts, next_attempt_at, lease_owner, lease_until, last_error, \
     result, created_at, updated_at";

fn json_col(row: &SqliteRow, column: &str) -> Result<JsonText> {
    JsonText::from_string(col::<String>(row, column)?)
        .map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

fn opt_json_col(row: &SqliteRow, column: &str) -> Result<Option<JsonText>> {
    col::<Option<String>>(row, column)?
        .map(|text| {
            JsonText::from_string(text).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

fn state_col(row: &SqliteRow) -> Result<DeliveryState> {
    let raw: String = col(row, "state")?;
    DeliveryState::parse(&raw).ok_or_else(|| Error::Corrupt(format!("state: unknown `{raw}`")))
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery> {
    Ok(Delivery {
        id: col(row, "id")?,
        stream_id: col_uuid(row, "stream_id")?,
        target: col(row, "target")?,
        kind: col(row, "kind")?,
        delivery_key: col(row, "delivery_key")?,
        requires: serde_json::from_str(&col::<String>(row, "requires")?)
            .map_err(|e| Error::Corrupt(format!("requires: {e}")))?,
        payload: json_col(row, "payload")?,
        correlation_id: col_uuid(row, "correlation_id")?,
        state: state_col(row)?,
        attempts: col(row, "attempts")?,
        next_attempt_at: col_ts(row, "next_attempt_at")?,
        lease_owner: col(row, "lease_owner")?,
        lease_until: col::<Option<String>>(row, "lease_until")?
            .map(|t| super::parse_ts(&t, "lease_until"))
            .transpose()?,
        last_error: opt_json_col(row, "last_error")?,
        result: opt_json_col(row, "result")?,
        created_at: col_ts(row, "created_at")?,
        updated_at: col_ts(row, "updated_at")?,
    })
}

/// Inserts outbox rows on the append transaction.
pub(super) async fn insert_deliveries(
    conn: &mut SqliteConnection,
    rows: &[DeliveryRow<'_>],
) -> Result<()> {
    for chunk in pow2_chunks(rows) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (stream_id, target, kind, delivery_key, requires, payload, \
             correlation_id, state, attempts, next_attempt_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            let at = ts(&r.created_at);
            b.push_bind(r.stream_id.hyphenated())
                .push_bind(r.delivery.target.as_str())
                .push_bind(r.delivery.kind.as_str())
                .push_bind(r.delivery.delivery_key.as_str())
                .push_bind(serde_json::to_string(&r.delivery.requires).unwrap_or_default())
                .push_bind(r.delivery.payload.as_str())
                .push_bind(r.delivery.correlation_id.hyphenated())
                .push_bind(DeliveryState::Pending.as_str())
                .push_bind(0_i32)
                .push_bind(at.clone())
                .push_bind(at.clone())
                .push_bind(at);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

struct SqliteOutboxTx<'t> {
    conn: &'t mut SqliteConnection,
}

impl ClaimTx for SqliteOutboxTx<'_> {
    async fn due(
        &mut self,
        now: DateTime<Utc>,
        targets: &[String],
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(DELIVERY_COLUMNS)
            .push(" FROM deliveries d WHERE d.state = 'pending' AND d.next_attempt_at <= ")
            .push_bind(ts(&now))
            .push(" AND (d.lease_until IS NULL OR d.lease_until <= ")
            .push_bind(ts(&now))
            .push(") AND d.target IN (");
        let mut list = qb.separated(", ");
        for t in targets {
            list.push_bind(t.clone());
        }
        qb.push(
            ") AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.stream_id = d.stream_id \
             AND p.target = d.target AND p.id < d.id \
             AND p.state IN ('pending', 'dead', 'exception')) \
             ORDER BY d.next_attempt_at, d.id LIMIT ",
        )
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        qb.build()
            .fetch_all(&mut *self.conn)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn stream_deliveries(
        &mut self,
        streams: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<StreamDelivery>>> {
        let mut out: HashMap<Uuid, Vec<StreamDelivery>> = HashMap::new();
        for chunk in pow2_chunks(streams) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT id, stream_id, target, kind, state, result FROM deliveries \
                 WHERE stream_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.hyphenated());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&mut *self.conn).await? {
                out.entry(col_uuid(&row, "stream_id")?)
                    .or_default()
                    .push(StreamDelivery {
                        id: col(&row, "id")?,
                        target: col(&row, "target")?,
                        kind: col(&row, "kind")?,
                        state: state_col(&row)?,
                        result: opt_json_col(&row, "result")?,
                    });
            }
        }
        Ok(out)
    }

    async fn lease(
        &mut self,
        ids: &[i64],
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut leased = 0;
        for chunk in pow2_chunks(ids) {
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE deliveries SET lease_owner = ");
            qb.push_bind(owner)
                .push(", lease_until = ")
                .push_bind(ts(&until))
                .push(", attempts = attempts + 1, updated_at = ")
                .push_bind(ts(&now))
                .push(" WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= ")
                .push_bind(ts(&now))
                .push(") AND id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            leased += qb.build().execute(&mut *self.conn).await?.rows_affected();
        }
        Ok(leased)
    }

    async fn block(&mut self, id: i64, error: &JsonText, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET state = 'exception', last_error = ?, updated_at = ?, \
             lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'pending'",
        )
        .bind(error.as_str())
        .bind(ts(&now))
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

impl OperateTx for SqliteOutboxTx<'_> {
    async fn lock_delivery(&mut self, id: i64) -> Result<Option<Delivery>> {
        // The write transaction already holds SQLite's one write lock.
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn set_state(
        &mut self,
        id: i64,
        state: DeliveryState,
        payload: Option<&JsonText>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let retry = state == DeliveryState::Pending;
        sqlx::query(
            "UPDATE deliveries SET state = ?1, payload = COALESCE(?2, payload), \
             attempts = CASE WHEN ?3 THEN 0 ELSE attempts END, \
             next_attempt_at = CASE WHEN ?3 THEN ?4 ELSE next_attempt_at END, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?4 WHERE id = ?5",
        )
        .bind(state.as_str())
        .bind(payload.map(JsonText::as_str))
        .bind(retry)
        .bind(ts(&now))
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO delivery_audit (delivery_id, action, actor, reason, detail, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.delivery_id)
        .bind(entry.action.as_str())
        .bind(entry.actor.as_str())
        .bind(entry.reason.as_str())
        .bind(entry.detail.as_str())
        .bind(ts(&entry.at))
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

impl DeliveryStore for SqliteStore {
    async fn claim_deliveries(&self, request: &ClaimRequest) -> Result<Vec<Claimed>> {
        let mut tx = self.begin_write().await?;
        let claimed = outbox::claim(&mut SqliteOutboxTx { conn: &mut tx }, request).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (state, error, result, next) = finish_columns(&finish);
        let done = sqlx::query(
            "UPDATE deliveries SET state = ?1, last_error = COALESCE(?2, last_error), \
             result = ?3, next_attempt_at = COALESCE(?4, next_attempt_at), \
             lease_owner = NULL, lease_until = NULL, updated_at = ?5 \
             WHERE id = ?6 AND state = 'pending' AND lease_owner = ?7",
        )
        .bind(state.as_str())
        .bind(error.map(JsonText::as_str))
        .bind(result.map(JsonText::as_str))
        .bind(next.as_ref().map(ts))
        .bind(ts(&now))
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_leases(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND lease_owner = ?",
        )
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.reader)
        .await?;
        row.map(|t| super::parse_ts(&t, "next_attempt_at"))
            .transpose()
    }

    async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(DELIVERY_COLUMNS)
            .push(" FROM deliveries WHERE id > ")
            .push_bind(filter.after_id);
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(stream) = filter.stream_id {
            qb.push(" AND stream_id = ")
                .push_bind(stream.hyphenated().to_string());
        }
        if let Some(target) = &filter.target {
            qb.push(" AND target = ").push_bind(target.clone());
        }
        qb.push(" ORDER BY id LIMIT ")
            .push_bind(list_limit(filter.limit));
        qb.build()
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryState, i64)>> {
        let rows = sqlx::query(
            "SELECT target, state, COUNT(*) AS n FROM deliveries GROUP BY target, state \
             ORDER BY target, state",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((col(row, "target")?, state_col(row)?, col(row, "n")?)))
            .collect()
    }

    async fn operate_delivery(
        &self,
        id: i64,
        operation: Operation,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Delivery, OperateError>> {
        let mut tx = self.begin_write().await?;
        let outcome = outbox::operate(
            &mut SqliteOutboxTx { conn: &mut tx },
            id,
            operation,
            actor,
            reason,
            now,
        )
        .await?;
        if outcome.is_ok() {
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn delivery_audit(&self, id: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT delivery_id, action, actor, reason, detail, at FROM delivery_audit \
             WHERE delivery_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    delivery_id: col(row, "delivery_id")?,
                    action: col(row, "action")?,
                    actor: col(row, "actor")?,
                    reason: col(row, "reason")?,
                    detail: json_col(row, "detail")?,
                    at: col_ts(row, "at")?,
                })
            })
            .collect()
    }
}
