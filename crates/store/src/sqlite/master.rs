//! Master data on SQLite: the statements behind [`crate::MasterStore`]. The
//! write algorithm lives in `crate::master`. Writes go through the store's
//! one writer connection under `BEGIN IMMEDIATE`, which is what serialises
//! master writers; loads read on a reader connection inside one read
//! transaction, which WAL turns into a consistent snapshot of rows and
//! revision.

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, col, col_ts, ts};
use crate::common::pow2_chunks;
use crate::master::{self, MasterTx};
use crate::{
    Error, JsonText, MasterBatch, MasterKey, MasterRow, MasterSnapshot, MasterStore, NewMasterRow,
    Result, RevisionMismatch,
};

struct SqliteMasterTx<'t> {
    conn: &'t mut SqliteConnection,
}

impl MasterTx for SqliteMasterTx<'_> {
    async fn lock_revision(&mut self) -> Result<i64> {
        // `BEGIN IMMEDIATE` already holds SQLite's one write lock.
        revision(&mut *self.conn).await
    }

    async fn set_revision(&mut self, revision: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE master_revision SET revision = ?, updated_at = ? WHERE id = 1")
            .bind(revision)
            .bind(ts(&at))
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
        let at = ts(&at);
        for chunk in pow2_chunks(rows) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO master_records (kind, key, body, revision, updated_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.kind.as_str())
                    .push_bind(r.key.as_str())
                    .push_bind(r.body.as_str())
                    .push_bind(revision)
                    .push_bind(at.clone());
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
        // One prepared statement per key: deletions are rare and few, and a
        // point delete on the primary key is what SQLite plans best.
        for k in keys {
            sqlx::query("DELETE FROM master_records WHERE kind = ? AND key = ?")
                .bind(k.kind.as_str())
                .bind(k.key.as_str())
                .execute(&mut *self.conn)
                .await?;
        }
        Ok(())
    }
}

async fn revision(conn: &mut SqliteConnection) -> Result<i64> {
    let row = sqlx::query("SELECT revision FROM master_revision WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => col(&row, "revision"),
        None => Err(Error::Corrupt(
            "master_revision: the row migration 0003 inserts is missing".to_owned(),
        )),
    }
}

fn master_row(row: &SqliteRow) -> Result<MasterRow> {
    Ok(MasterRow {
        kind: col(row, "kind")?,
        key: col(row, "key")?,
        body: JsonText::from_string(col::<String>(row, "body")?)
            .map_err(|e| Error::Corrupt(format!("body: {e}")))?,
        revision: col(row, "revision")?,
        updated_at: col_ts(row, "updated_at")?,
    })
}

impl MasterStore for SqliteStore {
    async fn put_master(
        &self,
        batch: &MasterBatch,
        at: DateTime<Utc>,
    ) -> Result<Result<i64, RevisionMismatch>> {
        let mut tx = self.begin_write().await?;
        let outcome = master::put(&mut SqliteMasterTx { conn: &mut tx }, batch, at).await?;
        match outcome {
            Ok(_) => tx.commit().await?,
            Err(_) => tx.rollback().await?,
        }
        Ok(outcome)
    }

    async fn load_master(&self) -> Result<MasterSnapshot> {
        let mut tx = self.reader.begin().await?;
        let revision = revision(&mut tx).await?;
        let rows = sqlx::query(
            "SELECT kind, key, body, revision, updated_at FROM master_records \
             ORDER BY kind, key",
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
        let mut conn = self.reader.acquire().await?;
        revision(&mut conn).await
    }
}
