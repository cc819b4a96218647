//! Durable storage for Backhaul: the event log (which is also every stream's
//! head), the read model derived from it (the return list rows), idempotency
//! records, the outbox, API keys and master data.
//!
//! The store knows nothing about returns beyond the columns it filters on; the
//! engine turns domain state into [`SummaryRow`]s and domain events into
//! [`NewEvent`]s. Two backends implement [`EventStore`]: [`SqliteStore`] (the
//! embedded default) and [`PgStore`] (scale-out). [`AnyStore`] picks one at run
//! time, and [`Committer`] group-commits appends so that many commands share
//! one transaction and one fsync.
//!
//! Layout:
//! - `types`: rows and requests exchanged with the store.
//! - `append`: the append algorithm (conflicts, idempotency, SKU changes),
//!   written once against a small statement trait each backend implements.
//! - `sqlite`, `postgres`: the two backends (migrations under `migrations/`).
//! - `common`: chunking of multi-row statements and other shared helpers.
//! - `committer`: the group-commit task and its handle.
//! - `outbox`: deliveries (outbound work) written with the events, claimed
//!   under a lease, finished once, operated on with an audit trail; the
//!   claim and operator rules written once for both backends.
//! - `master`: master data (SKUs, customers, orders, crosswalks…) as JSON
//!   documents keyed by kind and key, with a revision bumped on every write;
//!   the rules about the records themselves live in `backhaul-master`.
//! - `checkpoint`: named log positions kept by readers that publish the
//!   log elsewhere (the Kafka publisher's resume point).
//! - `any`: run-time choice of backend.

mod any;
mod append;
mod checkpoint;
mod committer;
mod common;
mod master;
mod outbox;
mod postgres;
mod sqlite;
mod types;

pub use any::{AnyStore, StoreConfig};
pub use checkpoint::CheckpointStore;
pub use committer::{Committer, CommitterConfig, CommitterHandle};
pub use master::{
    MasterBatch, MasterBatchError, MasterKey, MasterRow, MasterSnapshot, MasterStore, NewMasterRow,
    RevisionMismatch,
};
pub use outbox::{
    AuditEntry, ClaimRequest, Claimed, Delivery, DeliveryFilter, DeliveryState, DeliveryStore,
    Finish, NewDelivery, OperateError, Operation,
};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, SqliteSync};
pub use types::*;

use std::future::Future;
use uuid::Uuid;

/// Errors of the storage boundary. Conflicts that a caller is expected to
/// handle (version, idempotency key) are not errors: they are
/// [`AppendConflict`]s returned per append.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("invalid store configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The storage contract both backends implement and the conformance suite
/// (`tests/conformance.rs`) checks.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Applies every request of the batch in **one transaction** (one fsync).
    /// Each request is all-or-nothing and independent of the others: a
    /// request whose expected version does not match, or whose idempotency
    /// key is already taken, gets `Err(AppendConflict)` and writes nothing,
    /// while the other requests of the batch still commit. Requests for the
    /// same stream within one batch are applied in order, so the second may
    /// expect the version the first produced. `Err(Error)` means nothing of
    /// the batch was written.
    fn append_batch(
        &self,
        batch: &[AppendRequest],
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendConflict>>>> + Send;

    /// All events of one stream in version order (empty if it does not exist).
    fn read_stream(
        &self,
        stream_id: Uuid,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// Events with a global position strictly greater than `after`, in
    /// position order, at most `limit` of them. Positions are assigned in
    /// commit order, so a subscriber that remembers the last position it saw
    /// never misses an event.
    fn read_all(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// The idempotency record of a partner's key, if any.
    fn find_idempotency(
        &self,
        partner: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>>> + Send;

    /// The read-model row of one stream.
    fn get_summary(
        &self,
        stream_id: Uuid,
    ) -> impl Future<Output = Result<Option<SummaryRow>>> + Send;

    /// Read-model rows matching the filter, newest first.
    fn list_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> impl Future<Output = Result<Vec<SummaryRow>>> + Send;

    /// Streams matching `by`, the most recently created (for a reference or
    /// an order) or labelled (for a tracking number) first, at most `limit`.
    /// As current as the last commit, on every backend: the lookups read
    /// columns fixed when a stream is created, so the SQLite backend answers
    /// them from its table and its held-back rows together, without writing
    /// those first. A caller
    /// that must find exactly one asks for two, to tell "one" from
    /// "ambiguous".
    fn find_streams(
        &self,
        by: StreamLookup<'_>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Uuid>>> + Send;

    /// Count and oldest `created_at` of open streams per (status, stage, owner).
    fn backlog(&self) -> impl Future<Output = Result<Vec<BacklogRow>>> + Send;

    /// Replaces the whole read model with `rows` in one transaction (used by
    /// `backhaul replay`): the rows of every stream, folded from the log up
    /// to position `through`. Stream versions in `rows` must match the log.
    fn replace_summaries(
        &self,
        rows: Vec<SummaryRow>,
        through: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The log position up to which every event is reflected in the read
    /// model as stored, or `None` for a backend that writes the read model
    /// with the events (nothing to catch up after a crash). The SQLite
    /// backend writes it lazily: see [`SqliteStore`].
    fn read_model_position(&self) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Writes whatever of the read model is still held back (the SQLite
    /// backend's lazy rows), so that a clean stop leaves nothing to catch up.
    /// A no-op for a backend that writes it with the events.
    fn flush_read_model(&self) -> impl Future<Output = Result<()>> + Send;

    /// Writes read-model rows folded from the log (one per stream; a row
    /// never replaces a newer one) and, with `through`, records that every
    /// event up to that position is now reflected. For catching up after a
    /// crash (`backhaul_engine::Engine::open`).
    fn write_summaries(
        &self,
        rows: Vec<SummaryRow>,
        through: Option<i64>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores a new API key (the secret is only ever stored hashed).
    fn insert_api_key(&self, key: ApiKeyRecord) -> impl Future<Output = Result<()>> + Send;
    fn find_api_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>>> + Send;
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>>> + Send;
    /// Marks a key revoked; returns false if no such key exists.
    fn revoke_api_key(
        &self,
        key_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Benchmark helper: the raw ceiling of the storage. Inserts the rows
    /// into a scratch table `bench_raw_events` (same columns as the event
    /// log) in one transaction with the same durability settings, nothing
    /// else. Returns the number of rows written.
    fn raw_insert(&self, rows: Vec<RawEventRow>) -> impl Future<Output = Result<u64>> + Send;
}
