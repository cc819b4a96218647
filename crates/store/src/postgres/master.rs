//! Master data on PostgreSQL: the statements behind [`crate::MasterStore`].
//! The write algorithm lives in `crate::master`.
//!
//! Several hubs may write master data at once: each write locks the one
//! `master_revision` row first (`FOR UPDATE`), so writers queue behind each
//! other and an expected revision that matched stays true until the commit.
//! Master writes do not take the append lock: they touch no event.
//! Loads run in one `REPEATABLE READ` transaction so the rows and the
//! revision come from the same snapshot.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::{PgStore, col};
use crate::common::pow2_chunks;
use crate::master::{self, MasterTx};
use crate::{
    Error, JsonText, MasterBatch, MasterKey, MasterRow, MasterSnapshot, MasterStore, NewMasterRow,
    Result, RevisionMismatch,
};

struct PgMasterTx<'t> {
    conn: &'t mut PgConnection,
}

impl MasterTx for PgMasterTx<'_> {
    async fn lock_revision(&mut self) -> Result<i64> {
        revision(
            &mut *self.conn,
            "SELECT revision FROM master_revision WHERE id = 1 FOR UPDATE",
        )
        .await
    }

    async fn set_revision(&mut self, revision: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE master_revision SET revision = $1, updated_at = $2 WHERE id = 1")
            .bind(revision)
            .bind(at)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn upsert(
        &mut self,
        rows: &[NewMasterRow],
        revision: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO master_records (kind, key, body, revision, updated_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.kind.as_str())
                    .push_bind(r.key.as_str())
                    .push_bind(Json(&r.body))
                    .push_bind(revision)
                    .push_bind(at);
            });
            qb.push(
                " ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, \
                 revision = excluded.revision, updated_at = excluded.updated_at",
            );
            qb.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn delete(&mut self, keys: &[MasterKey]) -> Result<()> {
        let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        sqlx::query(
            "DELETE FROM master_records m USING UNNEST($1::text[], $2::text[]) AS d (kind, key) \
             WHERE m.kind = d.kind AND m.key = d.key",
        )
        .bind(kinds)
        .bind(names)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

async fn revision(conn: &mut PgConnection, sql: &str) -> Result<i64> {
    let row = sqlx::query(sql).fetch_optional(conn).await?;
    match row {
        Some(row) => col(&row, "revision"),
        None => Err(Error::Corrupt(
            "master_revision: the row migration 0003 inserts is missing".to_owned(),
        )),
    }
}

const READ_REVISION: &str = "SELECT revision FROM master_revision WHERE id = 1";

fn master_row(row: &PgRow) -> Result<MasterRow> {
    Ok(MasterRow {
        kind: col(row, "kind")?,
        key: col(row, "key")?,
        body: col::<Json<JsonText>>(row, "body")?.0,
        revision: col(row, "revision")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl MasterStore for PgStore {
    async fn put_master(
        &self,
        batch: &MasterBatch,
        at: DateTime<Utc>,
    ) -> Result<Result<i64, RevisionMismatch>> {
        let mut tx = self.pool.begin().await?;
        let outcome = master::put(&mut PgMasterTx { conn: &mut tx }, batch, at).await?;
        match outcome {
            Ok(_) => tx.commit().await?,
            Err(_) => tx.rollback().await?,
        }
        Ok(outcome)
    }

    async fn load_master(&self) -> Result<MasterSnapshot> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let revision = revision(&mut tx, READ_REVISION).await?;
        // Byte order, as SQLite sorts, whatever the database's collation.
        let rows = sqlx::query(
            "SELECT kind, key, body, revision, updated_at FROM master_records \
             ORDER BY kind COLLATE \"C\", key COLLATE \"C\"",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(master_row)
        .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(MasterSnapshot { revision, rows })
    }

    async fn master_revision(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        revision(&mut conn, READ_REVISION).await
    }
}
