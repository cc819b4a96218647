//! The outbox on PostgreSQL: the statements behind [`crate::DeliveryStore`].
//! The rules (claimability, operator actions) live in `crate::outbox`.
//!
//! Several hubs may claim at once: the scan of due rows locks what it reads
//! with `FOR UPDATE SKIP LOCKED`, so two hubs never lease the same delivery,
//! and a hub that skips a row another hub is leasing still sees that row as
//! pending when it checks the lane, so it never overtakes it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{PgStore, col};
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

fn opt_json_col(row: &PgRow, column: &str) -> Result<Option<JsonText>> {
    Ok(col::<Option<Json<JsonText>>>(row, column)?.map(|j| j.0))
}

fn state_col(row: &PgRow) -> Result<DeliveryState> {
    let raw: String = col(row, "state")?;
    DeliveryState::parse(&raw).ok_or_else(|| Error::Corrupt(format!("state: unknown `{raw}`")))
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: col(row, "id")?,
        stream_id: col(row, "stream_id")?,
        target: col(row, "target")?,
        kind: col(row, "kind")?,
        delivery_key: col(row, "delivery_key")?,
        requires: col(row, "requires")?,
        payload: col::<Json<JsonText>>(row, "payload")?.0,
        correlation_id: col(row, "correlation_id")?,
        state: state_col(row)?,
        attempts: col(row, "attempts")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        lease_owner: col(row, "lease_owner")?,
        lease_until: col(row, "lease_until")?,
        last_error: opt_json_col(row, "last_error")?,
        result: opt_json_col(row, "result")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Inserts outbox rows on the append transaction.
pub(super) async fn insert_deliveries(
    conn: &mut PgConnection,
    rows: &[DeliveryRow<'_>],
) -> Result<()> {
    for chunk in pow2_chunks(rows) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO deliveries (stream_id, target, kind, delivery_key, requires, payload, \
             correlation_id, state, attempts, next_attempt_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.stream_id)
                .push_bind(r.delivery.target.as_str())
                .push_bind(r.delivery.kind.as_str())
                .push_bind(r.delivery.delivery_key.as_str())
                .push_bind(r.delivery.requires.clone())
                .push_bind(Json(&r.delivery.payload))
                .push_bind(r.delivery.correlation_id)
                .push_bind(DeliveryState::Pending.as_str())
                .push_bind(0_i32)
                .push_bind(r.created_at)
                .push_bind(r.created_at)
                .push_bind(r.created_at);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

struct PgOutboxTx<'t> {
    conn: &'t mut PgConnection,
}

impl ClaimTx for PgOutboxTx<'_> {
    async fn due(
        &mut self,
        now: DateTime<Utc>,
        targets: &[String],
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.state = 'pending' \
             AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1) \
             AND d.target = ANY($2) \
             AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.stream_id = d.stream_id \
             AND p.target = d.target AND p.id < d.id \
             AND p.state IN ('pending', 'dead', 'exception')) \
             ORDER BY d.next_attempt_at, d.id LIMIT $3 FOR UPDATE SKIP LOCKED"
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(targets)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
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
        let rows = sqlx::query(
            "SELECT id, stream_id, target, kind, state, result FROM deliveries \
             WHERE stream_id = ANY($1)",
        )
        .bind(streams)
        .fetch_all(&mut *self.conn)
        .await?;
        let mut out: HashMap<Uuid, Vec<StreamDelivery>> = HashMap::new();
        for row in &rows {
            out.entry(col(row, "stream_id")?)
                .or_default()
                .push(StreamDelivery {
                    id: col(row, "id")?,
                    target: col(row, "target")?,
                    kind: col(row, "kind")?,
                    state: state_col(row)?,
                    result: opt_json_col(row, "result")?,
                });
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
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE state = 'pending' \
             AND (lease_until IS NULL OR lease_until <= $3) AND id = ANY($4)",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(ids)
        .execute(&mut *self.conn)
        .await?;
        Ok(done.rows_affected())
    }

    async fn block(&mut self, id: i64, error: &JsonText, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET state = 'exception', last_error = $1, updated_at = $2, \
             lease_owner = NULL, lease_until = NULL WHERE id = $3 AND state = 'pending'",
        )
        .bind(Json(error))
        .bind(now)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

impl OperateTx for PgOutboxTx<'_> {
    async fn lock_delivery(&mut self, id: i64) -> Result<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 FOR UPDATE");
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
            "UPDATE deliveries SET state = $1, payload = COALESCE($2, payload), \
             attempts = CASE WHEN $3 THEN 0 ELSE attempts END, \
             next_attempt_at = CASE WHEN $3 THEN $4 ELSE next_attempt_at END, \
             lease_owner = NULL, lease_until = NULL, updated_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(payload.map(Json))
        .bind(retry)
        .bind(now)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO delivery_audit (delivery_id, action, actor, reason, detail, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.delivery_id)
        .bind(entry.action.as_str())
        .bind(entry.actor.as_str())
        .bind(entry.reason.as_str())
        .bind(Json(&entry.detail))
        .bind(entry.at)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

impl DeliveryStore for PgStore {
    async fn claim_deliveries(&self, request: &ClaimRequest) -> Result<Vec<Claimed>> {
        let mut tx = self.pool.begin().await?;
        let claimed = outbox::claim(&mut PgOutboxTx { conn: &mut tx }, request).await?;
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
            "UPDATE deliveries SET state = $1, last_error = COALESCE($2, last_error), \
             result = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             lease_owner = NULL, lease_until = NULL, updated_at = $5 \
             WHERE id = $6 AND state = 'pending' AND lease_owner = $7",
        )
        .bind(state.as_str())
        .bind(error.map(Json))
        .bind(result.map(Json))
        .bind(next)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_leases(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(DELIVERY_COLUMNS)
            .push(" FROM deliveries WHERE id > ")
            .push_bind(filter.after_id);
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(stream) = filter.stream_id {
            qb.push(" AND stream_id = ").push_bind(stream);
        }
        if let Some(target) = &filter.target {
            qb.push(" AND target = ").push_bind(target.clone());
        }
        qb.push(" ORDER BY id LIMIT ")
            .push_bind(list_limit(filter.limit));
        qb.build()
            .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let outcome = outbox::operate(
            &mut PgOutboxTx { conn: &mut tx },
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
             WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    delivery_id: col(row, "delivery_id")?,
                    action: col(row, "action")?,
                    actor: col(row, "actor")?,
                    reason: col(row, "reason")?,
                    detail: col::<Json<JsonText>>(row, "detail")?.0,
                    at: col(row, "at")?,
                })
            })
            .collect()
    }
}
