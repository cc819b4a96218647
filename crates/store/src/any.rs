//! Choosing the backend at run time from the configured URL.
//!
//! [`AnyStore`] is an enum rather than a trait object because
//! [`EventStore`]'s methods return `impl Future` (not object safe) and
//! because two variants cost one branch per call. Each method only delegates;
//! behaviour belongs to the backends.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ApiKeyRecord, AppendConflict, AppendRequest, Appended, AuditEntry, BacklogRow, ClaimRequest,
    Claimed, Delivery, DeliveryFilter, DeliveryState, DeliveryStore, Error, EventStore, Finish,
    IdempotencyRecord, MasterBatch, MasterSnapshot, MasterStore, OperateError, Operation, PgStore,
    RawEventRow, RecordedEvent, Result, RevisionMismatch, SqliteStore, SqliteSync, StreamLookup,
    SummaryFilter, SummaryRow,
};

/// Where and how to store data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database: `sqlite:///absolute/path.db`, `sqlite://relative.db`
    /// (relative to the working directory; the file is created if missing)
    /// or `postgres://user:password@host:port/database` (also
    /// `postgresql://`). In-memory SQLite is refused: the writer and the
    /// readers would each see a different empty database.
    pub url: String,
    /// SQLite only: `full` (default, durable across power loss) or `normal`
    /// (durable across process crashes only; for tests and benchmarks).
    pub sqlite_sync: SqliteSync,
    /// PostgreSQL only: size of the connection pool. SQLite always uses one
    /// writer and a small fixed pool of readers.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://backhaul.db".to_owned(),
            sqlite_sync: SqliteSync::default(),
            max_connections: 8,
        }
    }
}

/// The URL may carry a database password, so `Debug` (and thus logs of the
/// configuration) shows it redacted.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redacted(&self.url))
            .field("sqlite_sync", &self.sqlite_sync)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, and this one has one.
            let _ = parsed.set_password(Some("redacted"));
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

/// The backend a URL names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Sqlite(PathBuf),
    Postgres,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres);
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        if let Some(path) = path {
            if path.is_empty() {
                return Err(Error::Config("the SQLite URL names no file".to_owned()));
            }
            if path.contains('?') || path == ":memory:" {
                return Err(Error::Config(
                    "SQLite URLs take a file path only: no `?` options, no `:memory:`".to_owned(),
                ));
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        // Name only the scheme: the rest may hold a password.
        Err(match url.split_once(':') {
            Some((scheme, _)) => Error::Config(format!(
                "unsupported store URL scheme `{scheme}`: expected `sqlite://` or `postgres://`"
            )),
            None => Error::Config(
                "the store URL has no scheme: expected `sqlite://` or `postgres://`".to_owned(),
            ),
        })
    }
}

/// One of the backends, chosen from [`StoreConfig::url`].
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the backend the URL's scheme names.
    pub async fn open(config: &StoreConfig) -> Result<AnyStore> {
        match Target::parse(&config.url)? {
            Target::Sqlite(path) => SqliteStore::open(&path, config.sqlite_sync)
                .await
                .map(AnyStore::Sqlite),
            Target::Postgres => PgStore::connect(&config.url, config.max_connections)
                .await
                .map(AnyStore::Postgres),
        }
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl EventStore for AnyStore {
    async fn append_batch(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendConflict>>> {
        delegate!(self, s => s.append_batch(batch))
    }

    async fn read_stream(&self, stream_id: Uuid) -> Result<Vec<RecordedEvent>> {
        delegate!(self, s => s.read_stream(stream_id))
    }

    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>> {
        delegate!(self, s => s.read_all(after, limit))
    }

    async fn find_idempotency(
        &self,
        partner: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        delegate!(self, s => s.find_idempotency(partner, key))
    }

    async fn get_summary(&self, stream_id: Uuid) -> Result<Option<SummaryRow>> {
        delegate!(self, s => s.get_summary(stream_id))
    }

    async fn list_summaries(&self, filter: &SummaryFilter) -> Result<Vec<SummaryRow>> {
        delegate!(self, s => s.list_summaries(filter))
    }

    async fn find_streams(&self, by: StreamLookup<'_>, limit: u32) -> Result<Vec<Uuid>> {
        delegate!(self, s => s.find_streams(by, limit))
    }

    async fn backlog(&self) -> Result<Vec<BacklogRow>> {
        delegate!(self, s => s.backlog())
    }

    async fn replace_summaries(&self, rows: Vec<SummaryRow>, through: i64) -> Result<()> {
        delegate!(self, s => s.replace_summaries(rows, through))
    }

    async fn read_model_position(&self) -> Result<Option<i64>> {
        delegate!(self, s => s.read_model_position())
    }

    async fn flush_read_model(&self) -> Result<()> {
        delegate!(self, s => s.flush_read_model())
    }

    async fn write_summaries(&self, rows: Vec<SummaryRow>, through: Option<i64>) -> Result<()> {
        delegate!(self, s => s.write_summaries(rows, through))
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<()> {
        delegate!(self, s => s.insert_api_key(key))
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        delegate!(self, s => s.find_api_key(key_id))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        delegate!(self, s => s.list_api_keys())
    }

    async fn revoke_api_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool> {
        delegate!(self, s => s.revoke_api_key(key_id, at))
    }

    async fn raw_insert(&self, rows: Vec<RawEventRow>) -> Result<u64> {
        delegate!(self, s => s.raw_insert(rows))
    }
}

impl DeliveryStore for AnyStore {
    async fn claim_deliveries(&self, request: &ClaimRequest) -> Result<Vec<Claimed>> {
        delegate!(self, s => s.claim_deliveries(request))
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        delegate!(self, s => s.finish_delivery(id, owner, finish, now))
    }

    async fn release_leases(&self, owner: &str) -> Result<u64> {
        delegate!(self, s => s.release_leases(owner))
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        delegate!(self, s => s.next_due())
    }

    async fn get_delivery(&self, id: i64) -> Result<Option<Delivery>> {
        delegate!(self, s => s.get_delivery(id))
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        delegate!(self, s => s.list_deliveries(filter))
    }

    async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryState, i64)>> {
        delegate!(self, s => s.delivery_counts())
    }

    async fn operate_delivery(
        &self,
        id: i64,
        operation: Operation,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Delivery, OperateError>> {
        delegate!(self, s => s.operate_delivery(id, operation, actor, reason, now))
    }

    async fn delivery_audit(&self, id: i64) -> Result<Vec<AuditEntry>> {
        delegate!(self, s => s.delivery_audit(id))
    }
}

impl MasterStore for AnyStore {
    async fn put_master(
        &self,
        batch: &MasterBatch,
        at: DateTime<Utc>,
    ) -> Result<Result<i64, RevisionMismatch>> {
        delegate!(self, s => s.put_master(batch, at))
    }

    async fn load_master(&self) -> Result<MasterSnapshot> {
        delegate!(self, s => s.load_master())
    }

    async fn master_revision(&self) -> Result<i64> {
        delegate!(self, s => s.master_revision())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(
            Target::parse("sqlite:///var/lib/backhaul/hub.db").ok(),
            Some(Target::Sqlite(PathBuf::from("/var/lib/backhaul/hub.db")))
        );
        assert_eq!(
            Target::parse("sqlite://backhaul.db").ok(),
            Some(Target::Sqlite(PathBuf::from("backhaul.db")))
        );
        assert_eq!(
            Target::parse("postgres://u:p@localhost/hub").ok(),
            Some(Target::Postgres)
        );
        assert_eq!(
            Target::parse("postgresql://localhost/hub").ok(),
            Some(Target::Postgres)
        );
    }

    #[test]
    fn bad_urls_are_config_errors_without_secrets() {
        for url in [
            "mysql://root:hunter2@db/hub",
            "backhaul.db",
            "sqlite://",
            "sqlite://:memory:",
            "sqlite://hub.db?mode=rwc",
        ] {
            match Target::parse(url) {
                Err(Error::Config(message)) => assert!(!message.contains("hunter2"), "{message}"),
                other => panic!("{url}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_redacts_the_password() {
        let config = StoreConfig {
            url: "postgres://hub:hunter2@db/hub".to_owned(),
            ..StoreConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn config_defaults_and_rejects_unknown_fields() {
        let config: StoreConfig =
            serde_json::from_str(r#"{"sqlite_sync": "normal"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.url, "sqlite://backhaul.db");
        assert_eq!(config.sqlite_sync, SqliteSync::Normal);
        assert_eq!(config.max_connections, 8);
        assert!(serde_json::from_str::<StoreConfig>(r#"{"uri": "x"}"#).is_err());
    }
}
