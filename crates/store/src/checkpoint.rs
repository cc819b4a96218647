//! Named positions in the event log, kept by readers that publish it
//! elsewhere (the Kafka publisher) and by the SQLite store for its lazily
//! written read model (`read_model`). What lives here: the trait and its two
//! implementations; what does not: when a reader saves (its own promise).

use std::future::Future;

use crate::{AnyStore, PgStore, Result, SqliteStore};

/// The last log position a named reader has finished with.
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    /// The saved position of `name`, `None` if it never saved one.
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Saves `position` for `name`, replacing the previous one, durably
    /// (one transaction, like an append).
    fn save_checkpoint(&self, name: &str, position: i64)
    -> impl Future<Output = Result<()>> + Send;
}

/// The SQLite statements, on any connection or open transaction (the
/// store's own read-model checkpoint is written inside its transactions).
pub(crate) async fn sqlite_load<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    name: &str,
) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(executor)
            .await?,
    )
}

pub(crate) async fn sqlite_save<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    name: &str,
    position: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO checkpoints (name, position) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )
    .bind(name)
    .bind(position)
    .execute(executor)
    .await?;
    Ok(())
}

impl CheckpointStore for SqliteStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<i64>> {
        sqlite_load(&self.reader, name).await
    }

    async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        sqlite_save(&self.writer, name, position).await
    }
}

impl CheckpointStore for PgStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(name)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl CheckpointStore for AnyStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<i64>> {
        match self {
            AnyStore::Sqlite(s) => s.load_checkpoint(name).await,
            AnyStore::Postgres(s) => s.load_checkpoint(name).await,
        }
    }

    async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.save_checkpoint(name, position).await,
            AnyStore::Postgres(s) => s.save_checkpoint(name, position).await,
        }
    }
}
