//! A simulator's durable state: one SQLite database per simulator, and every
//! query against it.
//!
//! Schema (created with `CREATE TABLE IF NOT EXISTS` at open):
//! - `postings`: everything the simulated system durably accepted, one row
//!   per successful POST, in arrival order (`seq`). The row *is* the
//!   idempotency record: it carries the key (unique), the request line, the
//!   canonical body and the answer given. So a posting can never exist
//!   without its key or a key without its posting, whatever moment the
//!   process is killed at.
//! - `sequences`: the last number handed out per document series (`RO`,
//!   `ASN`…), bumped in the same transaction as the posting that uses it, so
//!   a restart continues the series and a rolled-back request leaves no gap.
//! - `meta`: the kind of simulator the file belongs to, checked at open.
//!
//! Views (the ERP ledger, the WMS's receipts, the carrier's labels) are
//! folded from the postings in Rust; the simulators are test tools and their
//! databases stay small.
//!
//! One connection only: every write is `BEGIN IMMEDIATE`, and one connection
//! makes "read the key, check the rules, write" a plain serial section.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::config::SimKind;
use crate::error::SimError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    number TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    rma TEXT NOT NULL,
    body TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS postings_by_number ON postings (kind, number);
CREATE INDEX IF NOT EXISTS postings_by_rma ON postings (kind, rma);
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Where a simulator keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimDb {
    /// A SQLite file, created if missing; reopening it continues where the
    /// last process stopped. For the out-of-process simulators and for tests
    /// that restart one.
    File(PathBuf),
    /// A private in-memory database, gone when the [`crate::Sim`] is dropped.
    Memory,
}

/// What kind of document a posting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    /// ERP `RO-…`.
    ReturnOrder,
    /// ERP `IA-…`.
    InventoryAdjustment,
    /// ERP `CM-…`.
    CreditMemo,
    /// ERP cancellation of a return order; its number is the order's.
    ReturnOrderCancellation,
    /// ERP `SC-…`: a claim against a vendor for units returned to it.
    SupplierClaim,
    /// ERP `RP-…`: a repair order for units to refurbish.
    RepairOrder,
    /// ERP `RS-…`: a replacement sales order to the customer.
    ReplacementOrder,
    /// WMS `ASN-…`.
    ExpectedReceipt,
    /// WMS cancellation of an ASN; its number is the ASN.
    ReceiptCancellation,
    /// Carrier label; its number is the tracking number.
    Label,
    /// Carrier void of a label; its number is the tracking number.
    LabelVoid,
    /// Portal status update; it has no number.
    PortalStatus,
}

impl PostingKind {
    const ALL: [PostingKind; 12] = [
        PostingKind::ReturnOrder,
        PostingKind::InventoryAdjustment,
        PostingKind::CreditMemo,
        PostingKind::ReturnOrderCancellation,
        PostingKind::SupplierClaim,
        PostingKind::RepairOrder,
        PostingKind::ReplacementOrder,
        PostingKind::ExpectedReceipt,
        PostingKind::ReceiptCancellation,
        PostingKind::Label,
        PostingKind::LabelVoid,
        PostingKind::PortalStatus,
    ];

    /// snake_case, as stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::ReturnOrder => "return_order",
            PostingKind::InventoryAdjustment => "inventory_adjustment",
            PostingKind::CreditMemo => "credit_memo",
            PostingKind::ReturnOrderCancellation => "return_order_cancellation",
            PostingKind::SupplierClaim => "supplier_claim",
            PostingKind::RepairOrder => "repair_order",
            PostingKind::ReplacementOrder => "replacement_order",
            PostingKind::ExpectedReceipt => "expected_receipt",
            PostingKind::ReceiptCancellation => "receipt_cancellation",
            PostingKind::Label => "label",
            PostingKind::LabelVoid => "label_void",
            PostingKind::PortalStatus => "portal_status",
        }
    }

    fn parse(s: &str) -> Option<PostingKind> {
        PostingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One request the simulated system durably accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posting {
    /// Arrival order, from 1, over the database's whole life.
    pub seq: i64,
    pub kind: PostingKind,
    /// The system's number for it (`RO-000001`, `ASN-000001`, the tracking
    /// number); `None` for portal status updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The key the request came with.
    pub idempotency_key: String,
    /// The RMA the request was about.
    pub rma: String,
    /// The request body as received (canonical key order).
    pub body: Value,
    /// The HTTP status of the answer (which a lost response never delivered).
    pub status: u16,
    /// The answer's body, given again to a replay.
    pub response: Value,
    /// When the simulator stored it, by its clock.
    pub created_at: DateTime<Utc>,
}

/// A posting about to be written.
#[derive(Debug)]
pub(crate) struct NewPosting<'a> {
    pub(crate) kind: PostingKind,
    pub(crate) number: Option<String>,
    pub(crate) key: &'a str,
    /// `POST /erp/return-orders`: what, besides the body, makes two
    /// requests the same.
    pub(crate) request: &'a str,
    pub(crate) rma: &'a str,
    /// Canonical JSON of the request body.
    pub(crate) body: &'a str,
    pub(crate) status: u16,
    pub(crate) response: String,
    pub(crate) created_at: DateTime<Utc>,
}

/// The idempotency side of a stored posting.
#[derive(Debug)]
pub(crate) struct StoredAnswer {
    pub(crate) request: String,
    pub(crate) body: String,
    pub(crate) status: u16,
    pub(crate) response: String,
}

/// The connection pool (of one).
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens or creates the database and checks it belongs to `kind`.
    pub(crate) async fn open(location: &SimDb, kind: SimKind) -> Result<Db, SimError> {
        let options = match location {
            SimDb::File(path) => SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                // A posting is answered only after its commit; NORMAL in WAL
                // mode keeps every commit across a process kill (only a power
                // loss may take the last ones), which is what the simulators
                // promise.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5)),
            SimDb::Memory => SqliteConnectOptions::from_str("sqlite::memory:")?,
        };
        // One connection that never expires: an in-memory database lives
        // exactly as long as its connection, and one connection serialises
        // the writers (see the module doc).
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ('kind', ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(kind.as_str())
        .execute(&pool)
        .await?;
        let found: String = sqlx::query_scalar("SELECT value FROM meta WHERE name = 'kind'")
            .fetch_one(&pool)
            .await?;
        if found != kind.as_str() {
            pool.close().await;
            return Err(SimError::WrongKind {
                expected: kind.as_str().to_owned(),
                found,
            });
        }
        Ok(Db { pool })
    }

    /// Starts a write transaction holding SQLite's write lock from the
    /// first read, so the idempotency lookup, the business rules and the
    /// write see one state.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Every posting, or those of one kind, in arrival order.
    pub(crate) async fn postings(
        &self,
        kind: Option<PostingKind>,
    ) -> Result<Vec<Posting>, SimError> {
        let rows = match kind {
            None => {
                sqlx::query("SELECT * FROM postings ORDER BY seq")
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(kind) => {
                sqlx::query("SELECT * FROM postings WHERE kind = ? ORDER BY seq")
                    .bind(kind.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(posting_from_row).collect()
    }

    /// The postings of several kinds, in arrival order.
    pub(crate) async fn postings_of(
        &self,
        kinds: &[PostingKind],
    ) -> Result<Vec<Posting>, SimError> {
        let mut all = Vec::new();
        for kind in kinds {
            all.extend(self.postings(Some(*kind)).await?);
        }
        all.sort_by_key(|p| p.seq);
        Ok(all)
    }

    /// The first posting of `kind` with `number`, outside any transaction.
    pub(crate) async fn posting(
        &self,
        kind: PostingKind,
        number: &str,
    ) -> Result<Option<Posting>, SimError> {
        let mut conn = self.pool.acquire().await?;
        find_posting(&mut conn, kind, number).await
    }

    /// How many postings were ever stored.
    pub(crate) async fn count(&self) -> Result<u64, SimError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM postings")
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(count).map_err(|_| SimError::Corrupt(format!("posting count {count}")))
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// The stored answer for `key`, if a posting has it.
pub(crate) async fn find_key(
    conn: &mut SqliteConnection,
    key: &str,
) -> Result<Option<StoredAnswer>, SimError> {
    let row = sqlx::query(
        "SELECT request, body, status, response FROM postings WHERE idempotency_key = ?",
    )
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(StoredAnswer {
            request: row.try_get("request")?,
            body: row.try_get("body")?,
            status: status_from(row.try_get("status")?)?,
            response: row.try_get("response")?,
        })
    })
    .transpose()
}

/// The next number of the `series` (`"RO"`, `"ASN"`…), from 1.
pub(crate) async fn next_number(
    conn: &mut SqliteConnection,
    series: &str,
) -> Result<i64, SimError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sequences (name, last) VALUES (?, 1) \
         ON CONFLICT (name) DO UPDATE SET last = last + 1 RETURNING last",
    )
    .bind(series)
    .fetch_one(conn)
    .await?)
}

/// The first posting of `kind` with `number` (`RO-000001`).
pub(crate) async fn find_posting(
    conn: &mut SqliteConnection,
    kind: PostingKind,
    number: &str,
) -> Result<Option<Posting>, SimError> {
    let row =
        sqlx::query("SELECT * FROM postings WHERE kind = ? AND number = ? ORDER BY seq LIMIT 1")
            .bind(kind.as_str())
            .bind(number)
            .fetch_optional(conn)
            .await?;
    row.as_ref().map(posting_from_row).transpose()
}

/// Every posting of `kind` about `rma`, in arrival order.
pub(crate) async fn postings_for_rma(
    conn: &mut SqliteConnection,
    kind: PostingKind,
    rma: &str,
) -> Result<Vec<Posting>, SimError> {
    let rows = sqlx::query("SELECT * FROM postings WHERE kind = ? AND rma = ? ORDER BY seq")
        .bind(kind.as_str())
        .bind(rma)
        .fetch_all(conn)
        .await?;
    rows.iter().map(posting_from_row).collect()
}

pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    posting: NewPosting<'_>,
) -> Result<(), SimError> {
    sqlx::query(
        "INSERT INTO postings \
         (kind, number, idempotency_key, request, rma, body, status, response, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(posting.kind.as_str())
    .bind(posting.number)
    .bind(posting.key)
    .bind(posting.request)
    .bind(posting.rma)
    .bind(posting.body)
    .bind(i64::from(posting.status))
    .bind(posting.response)
    .bind(timestamp(posting.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored form of a time: RFC 3339 in UTC with microseconds, which
/// also sorts as text.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn status_from(raw: i64) -> Result<u16, SimError> {
    u16::try_from(raw).map_err(|_| SimError::Corrupt(format!("HTTP status {raw}")))
}

fn posting_from_row(row: &SqliteRow) -> Result<Posting, SimError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |what: &str| SimError::Corrupt(format!("posting {seq}: {what}"));
    let kind: String = row.try_get("kind")?;
    let body: String = row.try_get("body")?;
    let response: String = row.try_get("response")?;
    let created_at: String = row.try_get("created_at")?;
    Ok(Posting {
        seq,
        kind: PostingKind::parse(&kind).ok_or_else(|| corrupt(&format!("kind {kind:?}")))?,
        number: row.try_get("number")?,
        idempotency_key: row.try_get("idempotency_key")?,
        rma: row.try_get("rma")?,
        body: serde_json::from_str(&body).map_err(|e| corrupt(&format!("body: {e}")))?,
        status: status_from(row.try_get("status")?)?,
        response: serde_json::from_str(&response)
            .map_err(|e| corrupt(&format!("response: {e}")))?,
        created_at: DateTime::parse_from_rfc3339(&created_at)
            .map_err(|e| corrupt(&format!("created_at: {e}")))?
            .with_timezone(&Utc),
    })
}
