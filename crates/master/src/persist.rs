//! Master data in the store: loading a snapshot, noticing that another hub
//! process changed it, and writing a validated batch (records sent by API,
//! or a CSV import) all or nothing.
//!
//! Records are stored as JSON documents keyed by kind and key
//! (`backhaul_store::MasterStore`); this module is the only place that turns
//! records into rows and back. A write is validated against a snapshot and
//! made conditional on that snapshot's revision, so a batch is never
//! checked against data older than what it is written over: if another
//! process wrote in between, the data is reloaded and the batch checked
//! again.

use backhaul_store::{JsonText, MasterBatch, MasterBatchError, MasterStore, NewMasterRow};
use chrono::{DateTime, Utc};

use crate::import::prepare;
use crate::problem::ImportErrors;
use crate::record::{Kind, Record};
use crate::snapshot::MasterData;
use crate::validate::{Changes, Plan, check};

/// How often a write is validated again after losing a race with another
/// writer before giving up. Master data changes a few times a day, so a
/// second loss in a row already means something is writing in a loop.
const MAX_ATTEMPTS: u32 = 3;

/// Errors of reading and writing master data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The batch or file has problems; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ImportErrors),
    #[error("master data storage failed: {0}")]
    Store(#[from] backhaul_store::Error),
    #[error("the stored master data is unreadable: {0}")]
    Corrupt(String),
    /// A record could not be made into a row; validated records always can.
    #[error("master data row refused: {0}")]
    Batch(#[from] MasterBatchError),
    #[error(
        "master data was changed by another writer {MAX_ATTEMPTS} times while this batch was validated; nothing was written, try again"
    )]
    Contended,
}

/// Whether an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Parse and validate only; say what would change.
    DryRun,
    /// Parse, validate and write, all or nothing.
    Apply,
}

/// What a write or an import did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Created, updated and unchanged records per kind (what would be, for
    /// a dry run).
    pub changes: Changes,
    /// The master data after the write: a new revision if anything changed,
    /// the data it was checked against otherwise. `None` for a dry run.
    pub data: Option<MasterData>,
}

/// Loads every stored record as one snapshot.
pub async fn load<S: MasterStore>(store: &S) -> Result<MasterData, Error> {
    let snapshot = store.load_master().await?;
    let mut records = Vec::with_capacity(snapshot.rows.len());
    for row in snapshot.rows {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == row.kind)
            .ok_or_else(|| {
                Error::Corrupt(format!("unknown kind {:?} (key {:?})", row.kind, row.key))
            })?;
        let record = Record::from_body(kind, row.body.as_str())
            .map_err(|e| Error::Corrupt(format!("{kind} {:?}: {e}", row.key)))?;
        if record.key() != row.key {
            return Err(Error::Corrupt(format!(
                "{kind} stored under {:?} is {:?}",
                row.key,
                record.key()
            )));
        }
        records.push(record);
    }
    MasterData::from_records(snapshot.revision, records).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A fresh snapshot if the stored revision is not `current`'s, else `None`:
/// one cheap read when nothing changed.
pub async fn reload_if_changed<S: MasterStore>(
    store: &S,
    current: &MasterData,
) -> Result<Option<MasterData>, Error> {
    if store.master_revision().await? == current.revision() {
        return Ok(None);
    }
    load(store).await.map(Some)
}

/// Validates `records` as one batch against `base` (reloaded first if the
/// store has moved on, and again if another writer gets in between) and
/// writes the created and updated ones in one
/// transaction. Unchanged records are not written; if nothing changed,
/// nothing is written and the revision stays.
pub async fn write<S: MasterStore>(
    store: &S,
    base: &MasterData,
    records: &[Record],
    at: DateTime<Utc>,
) -> Result<Outcome, Error> {
    write_checked(store, base, records, |base| check(base, records), at).await
}

/// Imports one CSV file of `kind` (see `import` for the layouts): parse,
/// validate against `base` and the file together, then write all or nothing
/// (or, for a dry run, only say what would change). Problems name the file,
/// line and column.
pub async fn import_csv<S: MasterStore>(
    store: &S,
    base: &MasterData,
    kind: Kind,
    file_name: &str,
    bytes: &[u8],
    mode: Mode,
    at: DateTime<Utc>,
) -> Result<Outcome, Error> {
    let (parsed, plan) = prepare(base, kind, file_name, bytes)?;
    match mode {
        Mode::DryRun => Ok(Outcome {
            changes: plan.changes,
            data: None,
        }),
        Mode::Apply => {
            let records = &parsed.records;
            let validate = |base: &MasterData| check(base, records).map_err(|e| parsed.place(e));
            write_checked(store, base, records, validate, at).await
        }
    }
}

async fn write_checked<S: MasterStore>(
    store: &S,
    base: &MasterData,
    records: &[Record],
    validate: impl Fn(&MasterData) -> Result<Plan, ImportErrors>,
    at: DateTime<Utc>,
) -> Result<Outcome, Error> {
    // One cheap read first: a caller's snapshot that is already behind
    // would refuse records that refer to what another process added.
    let mut reloaded = reload_if_changed(store, base).await?;
    for _ in 0..MAX_ATTEMPTS {
        let current = reloaded.as_ref().unwrap_or(base);
        let plan = validate(current)?;
        let changed: Vec<Record> = plan
            .changed
            .iter()
            .filter_map(|i| records.get(*i).cloned())
            .collect();
        if changed.is_empty() {
            return Ok(Outcome {
                changes: plan.changes,
                data: Some(current.clone()),
            });
        }
        let rows = changed.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        let batch = MasterBatch::new(Some(current.revision()), rows, Vec::new())?;
        match store.put_master(&batch, at).await? {
            Ok(revision) => {
                return Ok(Outcome {
                    changes: plan.changes,
                    data: Some(current.merged(&changed, revision)),
                });
            }
            // Another writer got there first: check again against what it
            // wrote.
            Err(_) => reloaded = Some(load(store).await?),
        }
    }
    Err(Error::Contended)
}

/// A record as the store keeps it.
fn row(record: &Record) -> Result<NewMasterRow, Error> {
    let body = match record {
        Record::Sku(r) => JsonText::from_value(r),
        Record::Customer(r) => JsonText::from_value(r),
        Record::Site(r) => JsonText::from_value(r),
        Record::Order(r) => JsonText::from_value(r),
        Record::Vendor(r) => JsonText::from_value(r),
        Record::Crosswalk(r) => JsonText::from_value(r),
    }
    .map_err(|e| Error::Corrupt(format!("{}: {e}", record.reference())))?;
    Ok(NewMasterRow {
        kind: record.kind().as_str().to_owned(),
        key: record.key(),
        body,
    })
}
