//! Refusing a message id that was already accepted.
//!
//! What lives here: [`ReplayWindow`], an in-memory set of recently seen ids. What does
//! not: sharing that set between processes (a caller running several receivers needs
//! a shared store keyed the same way) and the clock, which is passed in.
//!
//! Memory stays bounded because an id only needs remembering while its timestamp is
//! inside the tolerance window: once it falls out, [`crate::verify()`] refuses the
//! delivery as too old before the replay check is ever reached.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};

use crate::{MessageId, Tolerance, Verified};

/// Why [`ReplayWindow::check_and_record`] refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The id was accepted before. For an honest retry this means the first attempt
    /// was processed; answer 2xx without processing again.
    #[error("message `{id}` was already received")]
    Duplicate {
        /// The repeated id.
        id: MessageId,
    },
    /// The timestamp lies outside the window, so the id could not be remembered for as
    /// long as a replay would be accepted. Verification with the same tolerance and
    /// clock never lets such a message through.
    #[error("message `{id}` timestamp {timestamp} is outside the replay window at {now}")]
    OutsideWindow {
        /// The refused id.
        id: MessageId,
        /// Its signed timestamp.
        timestamp: DateTime<Utc>,
        /// The clock used for the check.
        now: DateTime<Utc>,
    },
    /// The window holds `capacity` unexpired ids. Refusing is the safe choice: dropping
    /// an unexpired id to make room would let its replay through.
    #[error("replay window is full ({capacity} unexpired message ids)")]
    Full {
        /// The configured limit.
        capacity: usize,
    },
}

/// The ids accepted within the last tolerance window.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Must equal the tolerance passed to [`crate::verify()`]; shorter would forget ids
    /// whose replays still verify.
    tolerance: Tolerance,
    /// A hard ceiling on remembered ids, for a sender that floods unique ids.
    capacity: usize,
    /// Each id with the latest timestamp it was seen with, in Unix seconds.
    seen: HashMap<MessageId, i64>,
    /// The same entries ordered by timestamp, so expiry pops from the front.
    by_time: BTreeSet<(i64, MessageId)>,
}

impl ReplayWindow {
    /// An empty window remembering at most `capacity` ids for `tolerance`.
    #[must_use]
    pub fn new(tolerance: Tolerance, capacity: usize) -> Self {
        Self {
            tolerance,
            capacity,
            seen: HashMap::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Accepts a verified delivery whose id has not been seen within the window and
    /// remembers it.
    ///
    /// # Errors
    ///
    /// [`ReplayError::Duplicate`] for a known id (its remembered time moves forward to
    /// the newer timestamp, so a replay of the retry is caught too),
    /// [`ReplayError::OutsideWindow`] and [`ReplayError::Full`].
    pub fn check_and_record(
        &mut self,
        verified: &Verified,
        now: DateTime<Utc>,
    ) -> Result<(), ReplayError> {
        self.evict_expired(now);
        let stamp = verified.timestamp.timestamp();
        if stamp < self.oldest_allowed(now) {
            return Err(ReplayError::OutsideWindow {
                id: verified.id.clone(),
                timestamp: verified.timestamp,
                now,
            });
        }
        if let Some(previous) = self.seen.get_mut(&verified.id) {
            if stamp > *previous {
                self.by_time.remove(&(*previous, verified.id.clone()));
                self.by_time.insert((stamp, verified.id.clone()));
                *previous = stamp;
            }
            return Err(ReplayError::Duplicate {
                id: verified.id.clone(),
            });
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full {
                capacity: self.capacity,
            });
        }
        self.seen.insert(verified.id.clone(), stamp);
        self.by_time.insert((stamp, verified.id.clone()));
        Ok(())
    }

    /// Forgets `id`, for a caller whose processing failed after the check and who
    /// wants the sender's retry to be accepted.
    pub fn forget(&mut self, id: &MessageId) {
        if let Some(stamp) = self.seen.remove(id) {
            self.by_time.remove(&(stamp, id.clone()));
        }
    }

    /// How many ids are remembered, expired ones included until the next check.
    #[must_use]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops every id whose timestamp has left the window.
    pub fn evict_expired(&mut self, now: DateTime<Utc>) {
        let oldest = self.oldest_allowed(now);
        while let Some((stamp, _)) = self.by_time.first() {
            if *stamp >= oldest {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_first() {
                self.seen.remove(&id);
            }
        }
    }

    /// The earliest timestamp [`crate::verify()`] still accepts at `now`.
    fn oldest_allowed(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp()
            .saturating_sub(i64::from(self.tolerance.seconds()))
    }
}
