//! The outbox: deliveries (outbound work for one target system) written in
//! the append transaction of the events that call for them, claimed under a
//! lease by a dispatcher, finished once, and acted on by operators with an
//! audit trail.
//!
//! The rules both backends share live here, written once: which pending
//! deliveries are claimable (lane order, prerequisites, per-target quota),
//! which operator action applies to which state, and the row shapes. The
//! backends only run SQL (`sqlite.rs`, `postgres.rs` implement
//! [`ClaimTx`] and [`OperateTx`] on an open write transaction).
//!
//! Invariants:
//! - A delivery is written in the same transaction as the events that call
//!   for it, or not at all (see `append.rs`).
//! - A delivery leaves `pending` once, by the lease holder (done, retry,
//!   dead, exception) or by an operator (cancel); only an operator brings it
//!   back (retry). A finish from a holder whose lease was taken over is
//!   refused, so a slow first attempt cannot overwrite a second one.
//! - Within a lane (stream, target) a later delivery is never claimed while
//!   an earlier one is pending, dead or in the exception queue.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{JsonText, Result};

/// Outbound work to write with an append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The system it goes to (`erp`, `wms`, `carrier`, `portal`).
    pub target: String,
    /// What it is (`erp_credit_memo`…).
    pub kind: String,
    /// Unique forever; passed to the target as its idempotency key.
    pub delivery_key: String,
    /// Kinds of the same stream that must be done (or skipped) first.
    pub requires: Vec<String>,
    /// The canonical action.
    pub payload: JsonText,
    /// The correlation id of the return, for tracing across systems.
    pub correlation_id: Uuid,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its turn, its due time, or a dispatcher (maybe leased).
    Pending,
    /// The target accepted it.
    Done,
    /// Technical retries exhausted: a dead letter.
    Dead,
    /// The target refused it for a business reason: the exception queue.
    Exception,
    /// An operator marked it as handled without delivering it.
    Skipped,
    /// An operator decided it must not happen.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Pending,
        DeliveryState::Done,
        DeliveryState::Dead,
        DeliveryState::Exception,
        DeliveryState::Skipped,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Done => "done",
            DeliveryState::Dead => "dead",
            DeliveryState::Exception => "exception",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the delivery still holds its lane (later ones wait).
    pub fn blocks_lane(self) -> bool {
        match self {
            DeliveryState::Pending | DeliveryState::Dead | DeliveryState::Exception => true,
            DeliveryState::Done | DeliveryState::Skipped | DeliveryState::Cancelled => false,
        }
    }

    /// Whether dependants may go (a skipped prerequisite was handled by hand).
    pub fn satisfies(self) -> bool {
        match self {
            DeliveryState::Done | DeliveryState::Skipped => true,
            DeliveryState::Pending
            | DeliveryState::Dead
            | DeliveryState::Exception
            | DeliveryState::Cancelled => false,
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub stream_id: Uuid,
    pub target: String,
    pub kind: String,
    pub delivery_key: String,
    pub requires: Vec<String>,
    pub payload: JsonText,
    pub correlation_id: Uuid,
    pub state: DeliveryState,
    /// Attempts made so far (technical failures and the final one).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The last failure: `{"class": "technical"|"business", "code", "message", ...}`.
    pub last_error: Option<JsonText>,
    /// What the target answered (done only).
    pub result: Option<JsonText>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A claimed delivery and the results of its prerequisites by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub delivery: Delivery,
    /// Result of each required kind (its latest done delivery); `None` for a
    /// skipped prerequisite.
    pub prerequisites: BTreeMap<String, Option<JsonText>>,
}

/// What to claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    pub now: DateTime<Utc>,
    pub owner: String,
    pub lease_until: DateTime<Utc>,
    /// How many deliveries each target may take now (throttle and
    /// concurrency headroom); targets not listed take none.
    pub quota: HashMap<String, usize>,
    /// At most this many due rows are looked at per claim.
    pub scan_limit: usize,
}

/// How the lease holder ends an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Done {
        result: JsonText,
    },
    /// A technical failure with attempts left: try again at `next_attempt_at`.
    Retry {
        next_attempt_at: DateTime<Utc>,
        error: JsonText,
    },
    /// A technical failure with no attempts left.
    Dead {
        error: JsonText,
    },
    /// The target refused it, or its result could not be applied.
    Exception {
        error: JsonText,
    },
}

/// What an operator may do to a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Deliver again (dead letters and exceptions), optionally with a
    /// corrected payload; attempts start from zero.
    Retry { payload: Option<JsonText> },
    /// Treat as handled by hand (dead letters and exceptions); dependants go.
    Skip,
    /// Must not happen (anything not yet finished).
    Cancel,
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Retry { payload: None } => "retry",
            Operation::Retry { payload: Some(_) } => "retry_with_correction",
            Operation::Skip => "skip",
            Operation::Cancel => "cancel",
        }
    }

    /// The state the operation leads to from `from`, or `None` if it does not
    /// apply there.
    pub fn next_state(&self, from: DeliveryState) -> Option<DeliveryState> {
        match (self, from) {
            (Operation::Retry { .. }, DeliveryState::Dead | DeliveryState::Exception) => {
                Some(DeliveryState::Pending)
            }
            (Operation::Skip, DeliveryState::Dead | DeliveryState::Exception) => {
                Some(DeliveryState::Skipped)
            }
            (
                Operation::Cancel,
                DeliveryState::Pending | DeliveryState::Dead | DeliveryState::Exception,
            ) => Some(DeliveryState::Cancelled),
            (
                Operation::Retry { .. } | Operation::Skip,
                DeliveryState::Pending
                | DeliveryState::Done
                | DeliveryState::Skipped
                | DeliveryState::Cancelled,
            )
            | (
                Operation::Cancel,
                DeliveryState::Done | DeliveryState::Skipped | DeliveryState::Cancelled,
            ) => None,
        }
    }
}

/// Why an operator action was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperateError {
    #[error("no delivery {0}")]
    NotFound(i64),
    #[error("cannot {action} a delivery that is {state}")]
    WrongState {
        action: &'static str,
        state: DeliveryState,
    },
}

/// One audited operator action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub delivery_id: i64,
    pub action: String,
    pub actor: String,
    pub reason: String,
    /// State before and after, and the corrected payload if any.
    pub detail: JsonText,
    pub at: DateTime<Utc>,
}

/// Filter for listing deliveries; fields combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub stream_id: Option<Uuid>,
    pub target: Option<String>,
    /// Page size: 0 means 100; capped at 1000.
    pub limit: u32,
    /// Only deliveries with an id greater than this (paging).
    pub after_id: i64,
}

/// The storage contract of the outbox, on both backends.
pub trait DeliveryStore: Clone + Send + Sync + 'static {
    /// Claims due, claimable deliveries (see [`claim`]) and leases them to
    /// `request.owner` until `request.lease_until`, in one transaction.
    fn claim_deliveries(
        &self,
        request: &ClaimRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>>> + Send;

    /// Ends the attempt of a leased delivery. Returns false (and changes
    /// nothing) unless it is still pending and leased to `owner`.
    fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Drops every lease held by `owner`, so a restarted hub picks up its
    /// interrupted deliveries at once instead of after the lease ran out.
    fn release_leases(&self, owner: &str) -> impl Future<Output = Result<u64>> + Send;

    /// The earliest `next_attempt_at` of a pending delivery, to sleep until.
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>>> + Send;

    fn get_delivery(&self, id: i64) -> impl Future<Output = Result<Option<Delivery>>> + Send;

    fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// Number of deliveries per (target, state).
    fn delivery_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, DeliveryState, i64)>>> + Send;

    /// Applies an operator action and records it in the audit trail, in one
    /// transaction.
    fn operate_delivery(
        &self,
        id: i64,
        operation: Operation,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Result<Delivery, OperateError>>> + Send;

    /// The audit trail of one delivery, oldest first.
    fn delivery_audit(&self, id: i64) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
}

/// A lane's state as the claim sees it: the state of every delivery of the
/// candidate streams (id, target, kind, state, result).
pub(crate) struct StreamDelivery {
    pub(crate) id: i64,
    pub(crate) target: String,
    pub(crate) kind: String,
    pub(crate) state: DeliveryState,
    pub(crate) result: Option<JsonText>,
}

/// The statements a claim needs, on an open write transaction.
pub(crate) trait ClaimTx: Send {
    /// Pending deliveries due at `now` whose lease is free, for one of
    /// `targets`, at the head of their lane (no earlier delivery of the same
    /// stream and target pending, dead or in the exception queue), in due
    /// order. Filtering lanes and targets here, not after the scan, keeps
    /// rows that cannot go from filling the scan window and starving rows
    /// that can.
    fn due(
        &mut self,
        now: DateTime<Utc>,
        targets: &[String],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// Every delivery of these streams.
    fn stream_deliveries(
        &mut self,
        streams: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, Vec<StreamDelivery>>>> + Send;

    /// Leases the deliveries; returns how many were still free.
    fn lease(
        &mut self,
        ids: &[i64],
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Moves a delivery whose prerequisite was cancelled to the exception
    /// queue.
    fn block(
        &mut self,
        id: i64,
        error: &JsonText,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The claim, written once for both backends. A due delivery is claimable
/// when no earlier delivery of its lane blocks it, every kind it requires
/// has a delivery of the same stream that is done or skipped, and its target
/// has quota left. A delivery whose prerequisite was cancelled can never go
/// and is moved to the exception queue for an operator.
pub(crate) async fn claim<T: ClaimTx>(tx: &mut T, request: &ClaimRequest) -> Result<Vec<Claimed>> {
    let mut quota = request.quota.clone();
    if quota.values().all(|q| *q == 0) {
        return Ok(Vec::new());
    }
    let mut targets: Vec<String> = quota
        .iter()
        .filter(|(_, q)| **q > 0)
        .map(|(t, _)| t.clone())
        .collect();
    targets.sort();
    let due = tx.due(request.now, &targets, request.scan_limit).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut streams: Vec<Uuid> = due.iter().map(|d| d.stream_id).collect();
    streams.sort_unstable();
    streams.dedup();
    let known = tx.stream_deliveries(&streams).await?;

    let mut chosen = Vec::new();
    for delivery in due {
        let siblings = known
            .get(&delivery.stream_id)
            .map_or(&[][..], Vec::as_slice);
        let lane_blocked = siblings
            .iter()
            .any(|s| s.id < delivery.id && s.target == delivery.target && s.state.blocks_lane());
        if lane_blocked {
            continue;
        }
        let mut prerequisites = BTreeMap::new();
        let mut waiting = false;
        let mut cancelled = None;
        for kind in &delivery.requires {
            // The latest delivery of that kind counts: a later one replaces
            // an earlier attempt at the same document.
            let latest = siblings
                .iter()
                .filter(|s| &s.kind == kind)
                .max_by_key(|s| s.id);
            match latest {
                Some(s) if s.state.satisfies() => {
                    prerequisites.insert(kind.clone(), s.result.clone());
                }
                Some(s) if s.state == DeliveryState::Cancelled => cancelled = Some(kind.clone()),
                Some(_) | None => waiting = true,
            }
        }
        if let Some(kind) = cancelled {
            let error = JsonText::from(serde_json::json!({
                "class": "business",
                "code": "prerequisite_cancelled",
                "message": format!("the {kind} this delivery refers to was cancelled"),
            }));
            tx.block(delivery.id, &error, request.now).await?;
            continue;
        }
        if waiting {
            continue;
        }
        let Some(left) = quota.get_mut(&delivery.target) else {
            continue;
        };
        if *left == 0 {
            continue;
        }
        *left -= 1;
        chosen.push(Claimed {
            delivery,
            prerequisites,
        });
    }
    if chosen.is_empty() {
        return Ok(chosen);
    }
    let ids: Vec<i64> = chosen.iter().map(|c| c.delivery.id).collect();
    let leased = tx
        .lease(&ids, &request.owner, request.lease_until, request.now)
        .await?;
    if leased != crate::common::to_u64(ids.len()) {
        // Only a writer ignoring the transaction's lock can cause this.
        return Err(crate::Error::Corrupt(format!(
            "leased {leased} of {} claimed deliveries",
            ids.len()
        )));
    }
    for c in &mut chosen {
        c.delivery.lease_owner = Some(request.owner.clone());
        c.delivery.lease_until = Some(request.lease_until);
        c.delivery.attempts += 1;
        c.delivery.updated_at = request.now;
    }
    Ok(chosen)
}

/// The statements an operator action needs, on an open write transaction.
pub(crate) trait OperateTx: Send {
    fn lock_delivery(&mut self, id: i64) -> impl Future<Output = Result<Option<Delivery>>> + Send;
    /// Writes the new state (and payload, for a corrected retry): attempts
    /// back to zero and due now for a retry, the lease dropped.
    fn set_state(
        &mut self,
        id: i64,
        state: DeliveryState,
        payload: Option<&JsonText>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn audit(&mut self, entry: &AuditEntry) -> impl Future<Output = Result<()>> + Send;
}

/// An operator action, written once for both backends.
pub(crate) async fn operate<T: OperateTx>(
    tx: &mut T,
    id: i64,
    operation: Operation,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Result<Delivery, OperateError>> {
    let Some(mut delivery) = tx.lock_delivery(id).await? else {
        return Ok(Err(OperateError::NotFound(id)));
    };
    let Some(next) = operation.next_state(delivery.state) else {
        return Ok(Err(OperateError::WrongState {
            action: operation.name(),
            state: delivery.state,
        }));
    };
    let payload = match &operation {
        Operation::Retry { payload } => payload.as_ref(),
        Operation::Skip | Operation::Cancel => None,
    };
    tx.set_state(id, next, payload, now).await?;
    let mut detail = serde_json::json!({ "from": delivery.state, "to": next });
    if let Some(p) = payload {
        detail["payload"] = p.to_value();
        detail["previous_payload"] = delivery.payload.to_value();
    }
    tx.audit(&AuditEntry {
        delivery_id: id,
        action: operation.name().to_owned(),
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        detail: JsonText::from(detail),
        at: now,
    })
    .await?;
    delivery.state = next;
    if let Some(p) = payload {
        delivery.payload = p.clone();
    }
    if next == DeliveryState::Pending {
        delivery.attempts = 0;
        delivery.next_attempt_at = now;
    }
    delivery.lease_owner = None;
    delivery.lease_until = None;
    delivery.updated_at = now;
    Ok(Ok(delivery))
}

/// The stored text of a finish's state, error and result.
pub(crate) fn finish_columns(
    finish: &Finish,
) -> (
    DeliveryState,
    Option<&JsonText>,
    Option<&JsonText>,
    Option<DateTime<Utc>>,
) {
    match finish {
        Finish::Done { result } => (DeliveryState::Done, None, Some(result), None),
        Finish::Retry {
            next_attempt_at,
            error,
        } => (
            DeliveryState::Pending,
            Some(error),
            None,
            Some(*next_attempt_at),
        ),
        Finish::Dead { error } => (DeliveryState::Dead, Some(error), None, None),
        Finish::Exception { error } => (DeliveryState::Exception, Some(error), None, None),
    }
}
