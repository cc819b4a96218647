//! The read model of the embedded backend, written lazily.
//!
//! Every command moves its return's read-model row (`returns`: status,
//! stage, owner, the summary document) and the indexes on it. Written with
//! the events, that row is most of the writer's work per command, and a
//! return gets several commands a second under load. So the SQLite backend
//! commits the events (the truth) at once and keeps the newest row of each
//! changed stream here, in memory, until one of:
//! - a later append finds them due (the oldest waited [`DELAY`], or more
//!   than [`MAX_ROWS`] are waiting): they are written inside that append's
//!   transaction, so they cost no commit of their own, and each stream's row
//!   is written once for all the commands it got meanwhile;
//! - a read of the read model (get, list, reference lookup, backlog): it
//!   writes them first, so a reader of this store always sees every
//!   committed append, as if the rows had been written with the events.
//!
//! Losing them costs nothing but time: the checkpoint `read_model` (written
//! with the rows) says up to which log position every event is reflected in
//! the table, and the engine folds the streams with later events again when
//! it opens (`backhaul_engine::Engine::open`). The backend may defer because
//! it is the only writer of its file; PostgreSQL, shared by several hub
//! processes, writes the rows with the events.
//!
//! Ordering: rows are added while the writer connection is still held after
//! the commit, and taken while holding it, so they arrive here in commit
//! order and the checkpoint never covers an event whose row is neither in
//! the table nor here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::SummaryRow;
use crate::append::RowWrite;

/// How long a row may wait for an append to carry it.
pub(crate) const DELAY: Duration = Duration::from_millis(200);
/// How many rows may wait; more are written with the next append.
pub(crate) const MAX_ROWS: usize = 4096;
/// The checkpoint that records how far the table reflects the log.
pub(crate) const CHECKPOINT: &str = "read_model";

/// Rows committed in the log but not yet in the `returns` table.
#[derive(Debug, Default)]
pub(crate) struct LazyReadModel {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// The newest row of each stream, with the store's id and version.
    rows: HashMap<Uuid, SummaryRow>,
    /// Every event up to this position is reflected in `rows` or the table.
    through: i64,
    /// When the oldest row in `rows` arrived.
    since: Option<Instant>,
}

/// Rows taken out to be written, with what they cover.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) rows: Vec<SummaryRow>,
    /// The checkpoint to write with them.
    pub(crate) through: i64,
    since: Option<Instant>,
}

impl Taken {
    /// The rows in the shape `append::project` writes.
    pub(crate) fn writes(&self) -> Vec<RowWrite<'_>> {
        crate::append::row_writes(&self.rows)
    }
}

impl LazyReadModel {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The data stays consistent whatever panicked while holding the lock:
        // every method leaves it whole between statements.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().rows.is_empty()
    }

    /// Keeps the rows of a committed batch whose events end at
    /// `last_position` (0: it wrote none).
    pub(crate) fn add(&self, rows: &[RowWrite<'_>], last_position: i64) {
        let mut pending = self.lock();
        for row in rows {
            let newer = pending
                .rows
                .get(&row.stream_id)
                .is_none_or(|held| held.version < row.version);
            if newer {
                let mut owned = row.summary.clone();
                owned.stream_id = row.stream_id;
                owned.version = row.version;
                pending.rows.insert(row.stream_id, owned);
            }
        }
        pending.through = pending.through.max(last_position);
        if !pending.rows.is_empty() && pending.since.is_none() {
            pending.since = Some(Instant::now());
        }
    }

    /// The waiting rows if they are due at `now`.
    pub(crate) fn take_due(&self, now: Instant) -> Option<Taken> {
        let mut pending = self.lock();
        let due = pending.rows.len() > MAX_ROWS
            || pending
                .since
                .is_some_and(|since| now.duration_since(since) >= DELAY);
        due.then(|| take(&mut pending))
    }

    /// Every waiting row, if there is any.
    pub(crate) fn take_all(&self) -> Option<Taken> {
        let mut pending = self.lock();
        (!pending.rows.is_empty()).then(|| take(&mut pending))
    }

    /// Puts rows back after their write failed; a row added meanwhile for
    /// the same stream is newer and stays.
    pub(crate) fn restore(&self, taken: Taken) {
        let mut pending = self.lock();
        for row in taken.rows {
            let older = pending
                .rows
                .get(&row.stream_id)
                .is_some_and(|held| held.version >= row.version);
            if !older {
                pending.rows.insert(row.stream_id, row);
            }
        }
        pending.through = pending.through.max(taken.through);
        pending.since = match (pending.since, taken.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

fn take(pending: &mut Pending) -> Taken {
    Taken {
        rows: pending.rows.drain().map(|(_, row)| row).collect(),
        through: pending.through,
        since: pending.since.take(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonText;

    fn row(stream_id: Uuid, version: i64) -> SummaryRow {
        SummaryRow {
            stream_id,
            version,
            reference: "RMA-1".into(),
            status: "requested".into(),
            stage: "review".into(),
            owner: "hub".into(),
            open: true,
            customer: "C1".into(),
            order_ref: "SO-1".into(),
            skus: vec!["SKU-1".into()],
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            body: JsonText::from(serde_json::json!({})),
        }
    }

    fn write(row: &SummaryRow) -> RowWrite<'_> {
        RowWrite {
            stream_id: row.stream_id,
            version: row.version,
            summary: row,
        }
    }

    #[test]
    fn keeps_the_newest_row_per_stream_and_the_highest_position() {
        let lazy = LazyReadModel::default();
        let id = Uuid::now_v7();
        let (v2, v1) = (row(id, 2), row(id, 1));
        lazy.add(&[write(&v2)], 20);
        lazy.add(&[write(&v1)], 10);
        let taken = lazy.take_all().expect("rows wait");
        assert_eq!(taken.rows.len(), 1);
        assert_eq!(taken.rows[0].version, 2);
        assert_eq!(taken.through, 20);
        assert!(lazy.is_empty());
        assert!(lazy.take_all().is_none());
    }

    #[test]
    fn rows_are_due_after_the_delay_or_past_the_bound() {
        let lazy = LazyReadModel::default();
        let first = row(Uuid::now_v7(), 1);
        lazy.add(&[write(&first)], 1);
        let now = Instant::now();
        assert!(lazy.take_due(now).is_none(), "not due at once");
        assert!(lazy.take_due(now + DELAY).is_some(), "due after the delay");

        let many: Vec<SummaryRow> = (0..=MAX_ROWS).map(|_| row(Uuid::now_v7(), 1)).collect();
        let writes: Vec<RowWrite<'_>> = many.iter().map(write).collect();
        lazy.add(&writes, 2);
        assert_eq!(
            lazy.take_due(Instant::now()).map(|t| t.rows.len()),
            Some(MAX_ROWS + 1),
            "due past the bound"
        );
    }

    #[test]
    fn a_failed_write_puts_rows_back_without_hiding_newer_ones() {
        let lazy = LazyReadModel::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (a1, b1) = (row(a, 1), row(b, 1));
        lazy.add(&[write(&a1), write(&b1)], 5);
        let taken = lazy.take_all().expect("rows wait");
        let a2 = row(a, 2);
        lazy.add(&[write(&a2)], 7);
        lazy.restore(taken);
        let mut back = lazy.take_all().expect("rows are back");
        back.rows.sort_by_key(|r| r.stream_id);
        let mut want = vec![(a, 2), (b, 1)];
        want.sort();
        assert_eq!(
            back.rows
                .iter()
                .map(|r| (r.stream_id, r.version))
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(back.through, 7);
    }
}
