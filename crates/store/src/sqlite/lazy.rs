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
//! - a read of the read model (get, list, backlog): it writes them first,
//!   so a reader of this store always sees every committed append, as if
//!   the rows had been written with the events. Lookups on the columns
//!   fixed at creation (RMA number, order) merge the held rows instead
//!   (`matching`), so the hot lookups write nothing;
//! - the committer's queue staying empty for 200 ms (`committer::IDLE_FLUSH`).
//!
//! Losing them costs nothing but time: the checkpoint `read_model` (written
//! with the rows) says up to which log position every event is reflected in
//! the table, and the engine folds the streams with later events again when
//! it opens (`backhaul_engine::Engine::open`). The backend may defer because
//! it is the only writer of its file; PostgreSQL, shared by several hub
//! processes, writes the rows with the events.
//!
//! Ordering: rows are added while the writer connection is still held after
//! the commit, and written while holding it, so they arrive here in commit
//! order and the checkpoint never covers an event whose row is neither in
//! the table nor here. Two things could break that, and neither does:
//! - an append future dropped during its commit (the commit may still
//!   happen on SQLite's thread) never adds its rows. Positions of one writer
//!   are consecutive, so the next add sees the gap, and from then on the
//!   checkpoint stops before it: the next start folds those streams again;
//! - a write of waiting rows that fails or is dropped: rows leave this
//!   memory only once their write committed (`confirm`), so they are simply
//!   written again.

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
#[derive(Debug)]
pub(crate) struct LazyReadModel {
    pending: Mutex<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// The newest row of each stream, with the store's id and version.
    rows: HashMap<Uuid, SummaryRow>,
    /// Every event up to this position is reflected in `rows` or the table,
    /// unless `gap` says otherwise.
    through: i64,
    /// The position the next committed event gets.
    next: i64,
    /// Events whose rows may be in neither the table nor here: (the last
    /// position before them, the last of them). The checkpoint does not pass
    /// the first until a fold of the log covers the second (`heal`).
    gap: Option<(i64, i64)>,
    /// When the oldest row in `rows` arrived.
    since: Option<Instant>,
}

/// A copy of waiting rows being written, with the checkpoint they reach.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) rows: Vec<SummaryRow>,
    /// The checkpoint to write with them.
    pub(crate) through: i64,
}

impl Taken {
    /// The rows in the shape `append::project` writes.
    pub(crate) fn writes(&self) -> Vec<RowWrite<'_>> {
        crate::append::row_writes(&self.rows)
    }
}

impl LazyReadModel {
    /// Nothing waits; the stored checkpoint is `checkpoint` and the last
    /// position the log ever handed out is `last_position`. Events between
    /// the two are a crash's leftovers: they count as a gap until a fold of
    /// the log covers them, so no write of rows moves the checkpoint past
    /// them before that.
    pub(crate) fn new(checkpoint: i64, last_position: i64) -> Self {
        LazyReadModel {
            pending: Mutex::new(Pending {
                rows: HashMap::new(),
                through: checkpoint,
                next: last_position + 1,
                gap: (checkpoint < last_position).then_some((checkpoint, last_position)),
                since: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The data stays consistent whatever panicked while holding the lock:
        // every method leaves it whole between statements.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().rows.is_empty()
    }

    /// Keeps the rows of a committed batch whose events took the positions
    /// `positions` (`None`: it wrote no event).
    pub(crate) fn add(&self, rows: &[RowWrite<'_>], positions: Option<(i64, i64)>) {
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
        if let Some((first, last)) = positions {
            if first > pending.next {
                let missing = (pending.next - 1, first - 1);
                tracing::warn!(
                    missing_from = pending.next,
                    missing_to = first - 1,
                    "events committed without their read-model rows; the next start folds them again"
                );
                pending.gap = Some(pending.gap.map_or(missing, |(good, to)| {
                    (good.min(missing.0), to.max(missing.1))
                }));
            }
            pending.next = pending.next.max(last + 1);
            pending.through = pending.through.max(last);
        }
        if !pending.rows.is_empty() && pending.since.is_none() {
            pending.since = Some(Instant::now());
        }
    }

    /// A copy of the waiting rows if they are due at `now`.
    pub(crate) fn due(&self, now: Instant) -> Option<Taken> {
        let pending = self.lock();
        let due = pending.rows.len() > MAX_ROWS
            || pending
                .since
                .is_some_and(|since| now.duration_since(since) >= DELAY);
        due.then(|| copy(&pending))
    }

    /// A copy of every waiting row, if there is any.
    pub(crate) fn all(&self) -> Option<Taken> {
        let pending = self.lock();
        (!pending.rows.is_empty()).then(|| copy(&pending))
    }

    /// Records that rows folded from the log up to `through` were written
    /// with that checkpoint: a gap it covers is closed.
    pub(crate) fn heal(&self, through: i64) {
        let mut pending = self.lock();
        if pending.gap.is_some_and(|(_, to)| to <= through) {
            pending.gap = None;
        }
        pending.through = pending.through.max(through);
    }

    /// The (creation time as stored, stream) of the waiting rows `keep`
    /// accepts.
    pub(crate) fn matching(&self, keep: impl Fn(&SummaryRow) -> bool) -> Vec<(String, Uuid)> {
        self.lock()
            .rows
            .values()
            .filter(|row| keep(row))
            .map(|row| (super::ts(&row.created_at), row.stream_id))
            .collect()
    }

    /// Forgets the rows of `taken` once their write committed; a row added
    /// meanwhile for the same stream is newer and stays.
    pub(crate) fn confirm(&self, taken: &Taken) {
        let mut pending = self.lock();
        for row in &taken.rows {
            let written = pending
                .rows
                .get(&row.stream_id)
                .is_some_and(|held| held.version <= row.version);
            if written {
                pending.rows.remove(&row.stream_id);
            }
        }
        if pending.rows.is_empty() {
            pending.since = None;
        }
    }
}

fn copy(pending: &Pending) -> Taken {
    Taken {
        rows: pending.rows.values().cloned().collect(),
        through: pending
            .gap
            .map_or(pending.through, |(good, _)| good.min(pending.through)),
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
        let lazy = LazyReadModel::new(0, 0);
        let id = Uuid::now_v7();
        let (v1, v2) = (row(id, 1), row(id, 2));
        lazy.add(&[write(&v1)], Some((1, 10)));
        lazy.add(&[write(&v2)], Some((11, 20)));
        lazy.add(&[write(&v1)], None);
        let taken = lazy.all().expect("rows wait");
        assert_eq!(taken.rows.len(), 1);
        assert_eq!(taken.rows[0].version, 2);
        assert_eq!(taken.through, 20);
        lazy.confirm(&taken);
        assert!(lazy.is_empty());
        assert!(lazy.all().is_none());
    }

    #[test]
    fn rows_are_due_after_the_delay_or_past_the_bound() {
        let lazy = LazyReadModel::new(0, 0);
        let first = row(Uuid::now_v7(), 1);
        lazy.add(&[write(&first)], Some((1, 1)));
        let now = Instant::now();
        assert!(lazy.due(now).is_none(), "not due at once");
        let taken = lazy.due(now + DELAY).expect("due after the delay");
        lazy.confirm(&taken);

        let many: Vec<SummaryRow> = (0..=MAX_ROWS).map(|_| row(Uuid::now_v7(), 1)).collect();
        let writes: Vec<RowWrite<'_>> = many.iter().map(write).collect();
        lazy.add(&writes, Some((2, 2)));
        assert_eq!(
            lazy.due(Instant::now()).map(|t| t.rows.len()),
            Some(MAX_ROWS + 1),
            "due past the bound"
        );
    }

    #[test]
    fn rows_leave_only_once_their_write_committed() {
        let lazy = LazyReadModel::new(0, 0);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (a1, b1) = (row(a, 1), row(b, 1));
        lazy.add(&[write(&a1), write(&b1)], Some((1, 5)));
        // A write that failed (or was dropped) confirms nothing.
        let lost = lazy.all().expect("rows wait");
        drop(lost);
        let taken = lazy.all().expect("rows still wait");
        assert_eq!(taken.rows.len(), 2);
        // A row newer than the one written stays after the confirmation.
        let a2 = row(a, 2);
        lazy.add(&[write(&a2)], Some((6, 7)));
        lazy.confirm(&taken);
        let left = lazy.all().expect("the newer row waits");
        assert_eq!(
            left.rows
                .iter()
                .map(|r| (r.stream_id, r.version))
                .collect::<Vec<_>>(),
            vec![(a, 2)]
        );
        assert_eq!(left.through, 7);
    }

    #[test]
    fn events_whose_rows_never_arrived_hold_the_checkpoint_back() {
        let lazy = LazyReadModel::new(10, 10);
        let (x, y) = (row(Uuid::now_v7(), 1), row(Uuid::now_v7(), 1));
        lazy.add(&[write(&x)], Some((11, 12)));
        // Positions 13..=15 were committed by an append that never added its rows.
        lazy.add(&[write(&y)], Some((16, 18)));
        let taken = lazy.all().expect("rows wait");
        assert_eq!(taken.through, 12, "the checkpoint stops before the gap");
        lazy.confirm(&taken);
        lazy.add(&[write(&x)], Some((19, 19)));
        assert_eq!(lazy.all().map(|t| t.through), Some(12), "until a fold");
        lazy.heal(14);
        assert_eq!(lazy.all().map(|t| t.through), Some(12), "that misses some");
        lazy.heal(15);
        assert_eq!(lazy.all().map(|t| t.through), Some(19), "covers them");
    }

    #[test]
    fn a_crash_s_leftovers_hold_the_checkpoint_until_folded() {
        // Stored checkpoint 5, log up to 9: rows of 6..=9 may be lost.
        let lazy = LazyReadModel::new(5, 9);
        let x = row(Uuid::now_v7(), 1);
        lazy.add(&[write(&x)], Some((10, 11)));
        assert_eq!(lazy.all().map(|t| t.through), Some(5));
        lazy.heal(9);
        assert_eq!(lazy.all().map(|t| t.through), Some(11));
    }
}
