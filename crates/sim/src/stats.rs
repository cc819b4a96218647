//! What a simulator counts: every POST by outcome, the portal's out-of-order
//! updates, and the number of stored postings.
//!
//! The request counters live in memory and start at zero with the process:
//! they describe this run's traffic (how many 429s did the hub provoke?).
//! What was durably received is the postings table, which survives restarts;
//! [`Stats::stored`] is read from it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters of one simulator. Served as JSON by `GET /admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every POST to a simulated system's endpoint (not `/admin`, not GETs);
    /// the sum of the outcomes below.
    pub total: u64,
    /// Stored and answered with success.
    pub created: u64,
    /// Answered with the stored answer of an earlier request with the same
    /// idempotency key and body.
    pub replayed: u64,
    /// Answered 429: the token bucket was empty.
    pub rate_limited: u64,
    /// Answered 503 by the transient-error fault; nothing stored.
    pub unavailable: u64,
    /// Answered 422 by a business rule; nothing stored.
    pub rejected: u64,
    /// Stored, but answered 500 by the lost-response fault.
    pub lost_response: u64,
    /// Refused before the business rules: a missing or invalid idempotency
    /// key, a body that does not fit, a key reused with another body.
    pub invalid: u64,
    /// The simulator's own database failed (never expected).
    pub failed: u64,
    /// Portal only: status updates whose `version` was lower than one
    /// already seen for the same RMA. Replays do not count.
    pub out_of_order: u64,
    /// Postings durably stored, over the database's whole life (not only
    /// this process's).
    pub stored: u64,
}

/// How one POST ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Replayed,
    RateLimited,
    Unavailable,
    Rejected,
    LostResponse,
    Invalid,
    Failed,
}

/// The in-memory request counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    total: AtomicU64,
    created: AtomicU64,
    replayed: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
    rejected: AtomicU64,
    lost_response: AtomicU64,
    invalid: AtomicU64,
    failed: AtomicU64,
    out_of_order: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, outcome: Outcome) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let counter = match outcome {
            Outcome::Created => &self.created,
            Outcome::Replayed => &self.replayed,
            Outcome::RateLimited => &self.rate_limited,
            Outcome::Unavailable => &self.unavailable,
            Outcome::Rejected => &self.rejected,
            Outcome::LostResponse => &self.lost_response,
            Outcome::Invalid => &self.invalid,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_out_of_order(&self) {
        self.out_of_order.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with `stored` read from the database by the caller.
    pub(crate) fn snapshot(&self, stored: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            total: get(&self.total),
            created: get(&self.created),
            replayed: get(&self.replayed),
            rate_limited: get(&self.rate_limited),
            unavailable: get(&self.unavailable),
            rejected: get(&self.rejected),
            lost_response: get(&self.lost_response),
            invalid: get(&self.invalid),
            failed: get(&self.failed),
            out_of_order: get(&self.out_of_order),
            stored,
        }
    }
}
