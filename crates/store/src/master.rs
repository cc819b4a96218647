//! Master data at rest: SKUs, customers, sites, orders, vendors and code
//! crosswalks as JSON documents keyed by `(kind, key)`, plus one revision
//! number that every write bumps.
//!
//! The store knows nothing about what a SKU or a crosswalk *is*: the shapes
//! and every rule about them (references, cycles, ambiguous codes) live in
//! `backhaul-master`, which validates a batch before it is written and parses
//! the documents when it loads them. What lives here is what both backends
//! share: the shape of a batch and its own rules (valid kinds and keys, no
//! record twice), and the write algorithm (check the expected revision, bump
//! it, upsert, delete), written once against [`MasterTx`]. The backends only
//! run SQL (`sqlite/master.rs`, `postgres/master.rs`).
//!
//! Why documents and not typed tables: the hub reads the whole set into
//! memory and looks records up there (the eligibility API must answer without
//! a database round trip), so no SQL ever filters on a field; and a new field
//! or kind then needs no migration on two backends.
//!
//! Invariants:
//! - A batch is written in one transaction, or not at all.
//! - The revision grows by exactly one per batch that writes something, and
//!   every row carries the revision that last wrote it; a batch that writes
//!   nothing leaves the revision alone. Other hub processes poll
//!   [`MasterStore::master_revision`] (one row) to notice a change cheaply.
//! - Writers are serialised (SQLite's one writer; a row lock on the revision
//!   in PostgreSQL), so an expected revision that matched stays true until
//!   the batch commits.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{JsonText, Result};

/// Longest kind name (`sku`, `crosswalk`…).
const MAX_KIND_LEN: usize = 32;
/// Longest key, in bytes. Crosswalk keys join a system, a kind and a code of
/// up to 64 characters (up to 256 bytes of UTF-8), so this leaves room.
const MAX_KEY_LEN: usize = 512;

/// One master record to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMasterRow {
    /// What the record is (`sku`, `customer`…), chosen by `backhaul-master`.
    pub kind: String,
    /// Its identity within the kind (the SKU, the account…).
    pub key: String,
    /// The record itself. The database requires a JSON object.
    pub body: JsonText,
}

/// Names one stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MasterKey {
    pub kind: String,
    pub key: String,
}

impl fmt::Display for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.key)
    }
}

/// A master record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterRow {
    pub kind: String,
    pub key: String,
    pub body: JsonText,
    /// The revision of the batch that last wrote the record.
    pub revision: i64,
    /// When that batch was written (the writer's clock).
    pub updated_at: DateTime<Utc>,
}

/// Everything stored, as of one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterSnapshot {
    /// 0 before the first write.
    pub revision: i64,
    /// Ordered by kind, then key.
    pub rows: Vec<MasterRow>,
}

/// Why a batch could not be formed. These are mistakes of the caller (the
/// master-data rules run before a batch is built), so the messages name the
/// offending record rather than explain a business rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterBatchError {
    #[error(
        "kind {0:?} must be 1-{MAX_KIND_LEN} characters: a lower-case letter, then lower-case letters, digits or '_'"
    )]
    InvalidKind(String),
    #[error("key of {kind} must be 1-{MAX_KEY_LEN} bytes without control characters, got {key:?}")]
    InvalidKey { kind: String, key: String },
    #[error("{0} appears more than once in the batch")]
    Duplicate(MasterKey),
}

/// Writes to apply together: upserts (a record that exists is replaced
/// whole) and deletions (of records that may or may not exist). Built with
/// [`MasterBatch::new`], so a batch that exists names each record once.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterBatch {
    expected_revision: Option<i64>,
    upserts: Vec<NewMasterRow>,
    deletes: Vec<MasterKey>,
}

impl MasterBatch {
    /// Checks kinds and keys and that no record is named twice.
    /// `expected_revision` makes the write conditional: it happens only if
    /// the stored revision is still the one the caller validated against.
    pub fn new(
        expected_revision: Option<i64>,
        upserts: Vec<NewMasterRow>,
        deletes: Vec<MasterKey>,
    ) -> Result<MasterBatch, MasterBatchError> {
        let mut seen = HashSet::with_capacity(upserts.len() + deletes.len());
        let named = upserts
            .iter()
            .map(|r| (r.kind.as_str(), r.key.as_str()))
            .chain(deletes.iter().map(|k| (k.kind.as_str(), k.key.as_str())));
        for (kind, key) in named {
            check_kind(kind)?;
            check_key(kind, key)?;
            if !seen.insert((kind, key)) {
                return Err(MasterBatchError::Duplicate(MasterKey {
                    kind: kind.to_owned(),
                    key: key.to_owned(),
                }));
            }
        }
        Ok(MasterBatch {
            expected_revision,
            upserts,
            deletes,
        })
    }

    pub fn expected_revision(&self) -> Option<i64> {
        self.expected_revision
    }

    pub fn upserts(&self) -> &[NewMasterRow] {
        &self.upserts
    }

    pub fn deletes(&self) -> &[MasterKey] {
        &self.deletes
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

fn check_kind(kind: &str) -> Result<(), MasterBatchError> {
    let mut chars = kind.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && kind.len() <= MAX_KIND_LEN;
    if valid {
        Ok(())
    } else {
        Err(MasterBatchError::InvalidKind(kind.to_owned()))
    }
}

fn check_key(kind: &str, key: &str) -> Result<(), MasterBatchError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(MasterBatchError::InvalidKey {
            kind: kind.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// A conditional batch found another revision stored than it expected:
/// someone else wrote master data since the caller validated. Nothing was
/// written; validate again against fresh data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("master data is at revision {actual}, the batch expected {expected}")]
pub struct RevisionMismatch {
    pub expected: i64,
    pub actual: i64,
}

/// The storage contract of master data, on both backends.
pub trait MasterStore: Clone + Send + Sync + 'static {
    /// Writes the batch in one transaction and returns the new revision (the
    /// current one, unchanged, if the batch is empty). `Ok(Err(_))` when the
    /// batch expected another revision: nothing was written. `Err(_)` means
    /// nothing was written either.
    fn put_master(
        &self,
        batch: &MasterBatch,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Result<i64, RevisionMismatch>>> + Send;

    /// Every stored record and the revision they make up, read in one
    /// transaction so the two agree.
    fn load_master(&self) -> impl Future<Output = Result<MasterSnapshot>> + Send;

    /// The current revision (0 before the first write): one row, cheap to
    /// poll.
    fn master_revision(&self) -> impl Future<Output = Result<i64>> + Send;
}

/// The statements of a master write, on an open write transaction.
pub(crate) trait MasterTx: Send {
    /// The stored revision, locked against other writers until the
    /// transaction ends.
    fn lock_revision(&mut self) -> impl Future<Output = Result<i64>> + Send;
    fn set_revision(
        &mut self,
        revision: i64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Inserts or replaces the rows, stamping them with `revision` and `at`.
    fn upsert(
        &mut self,
        rows: &[NewMasterRow],
        revision: i64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn delete(&mut self, keys: &[MasterKey]) -> impl Future<Output = Result<()>> + Send;
}

/// The write algorithm both backends run inside their transaction; the
/// caller commits on `Ok(Ok(_))` and rolls back otherwise.
pub(crate) async fn put<T: MasterTx>(
    tx: &mut T,
    batch: &MasterBatch,
    at: DateTime<Utc>,
) -> Result<Result<i64, RevisionMismatch>> {
    let current = tx.lock_revision().await?;
    if let Some(expected) = batch.expected_revision
        && expected != current
    {
        return Ok(Err(RevisionMismatch {
            expected,
            actual: current,
        }));
    }
    if batch.is_empty() {
        return Ok(Ok(current));
    }
    let revision = current + 1;
    tx.set_revision(revision, at).await?;
    if !batch.upserts.is_empty() {
        tx.upsert(&batch.upserts, revision, at).await?;
    }
    if !batch.deletes.is_empty() {
        tx.delete(&batch.deletes).await?;
    }
    Ok(Ok(revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, key: &str) -> NewMasterRow {
        NewMasterRow {
            kind: kind.to_owned(),
            key: key.to_owned(),
            body: serde_json::json!({ "k": key }).into(),
        }
    }

    fn key(kind: &str, key: &str) -> MasterKey {
        MasterKey {
            kind: kind.to_owned(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn a_batch_names_each_record_once() {
        let twice = MasterBatch::new(None, vec![row("sku", "A"), row("sku", "A")], vec![]);
        assert_eq!(twice, Err(MasterBatchError::Duplicate(key("sku", "A"))));
        let put_and_delete = MasterBatch::new(None, vec![row("sku", "A")], vec![key("sku", "A")]);
        assert_eq!(
            put_and_delete,
            Err(MasterBatchError::Duplicate(key("sku", "A")))
        );
        // The same key under another kind is another record.
        let batch = MasterBatch::new(Some(3), vec![row("sku", "A"), row("customer", "A")], vec![])
            .expect("valid batch");
        assert_eq!(batch.expected_revision(), Some(3));
        assert_eq!(batch.upserts().len(), 2);
        assert!(!batch.is_empty());
    }

    #[test]
    fn kinds_and_keys_are_checked() {
        for bad in ["", "Sku", "9sku", "sku-x", &"k".repeat(33)] {
            assert_eq!(
                MasterBatch::new(None, vec![row(bad, "A")], vec![]),
                Err(MasterBatchError::InvalidKind(bad.to_owned())),
                "{bad:?}"
            );
        }
        for bad in ["", "a\nb", &"x".repeat(513)] {
            assert!(
                matches!(
                    MasterBatch::new(None, vec![], vec![key("sku", bad)]),
                    Err(MasterBatchError::InvalidKey { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(
            MasterBatch::new(
                None,
                vec![row("crosswalk", "portal:reason:Trop petit ✓")],
                vec![]
            )
            .is_ok()
        );
        assert!(
            MasterBatch::new(None, vec![], vec![])
                .expect("empty")
                .is_empty()
        );
    }
}
