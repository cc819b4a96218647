//! Policy simulation: what a candidate policy would have decided on every
//! return request in the event log, compared with what was decided, and
//! how much authorised value would change. Read only: it folds the log in
//! memory and writes nothing, so it is safe against a production store.
//!
//! Each request is assessed as of its own request time, with the master
//! data in force now (the hub keeps no history of master data) and with
//! the hub's earlier returns of the same order as they stood just before
//! it, so "already returned" means what it meant then.

use std::collections::{BTreeMap, HashMap};

use backhaul_domain::eligibility::Verdict;
use backhaul_domain::{Event, ReturnState, evolve};
use backhaul_store::{AnyStore, EventStore};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::engine::{Error, decode};
use crate::rules::{Rules, claimed_by};

/// Events read per page.
const PAGE: usize = 1000;

/// What the decision on one request was and would be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub rma_number: String,
    pub return_id: Uuid,
    /// `approve`, `review`, `reject`, or `undecided` (nobody decided yet).
    pub was: String,
    pub would_be: String,
    pub currency: String,
    /// Value (price plus tax) of the units authorised then and under the
    /// candidate: an approval authorises its eligible units, anything else
    /// none.
    pub value_was: Decimal,
    pub value_would_be: Decimal,
    /// The candidate's failed rules, `rule (line n)`.
    pub failed: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Simulation {
    pub policy_version: String,
    /// Requests replayed.
    pub requests: usize,
    /// Requests whose decision or authorised value would change.
    pub changed: Vec<Changed>,
    /// `was → would_be` counts over all requests.
    pub transitions: BTreeMap<String, usize>,
    /// Authorised value that would change, per currency (positive: more
    /// would be authorised).
    pub value_delta: BTreeMap<String, Decimal>,
}

/// Replays every request of the log through `candidate` (which must have a
/// policy; `Error::NoPolicy` otherwise).
pub async fn simulate(store: &AnyStore, candidate: &Rules) -> Result<Simulation, Error> {
    let Some(policy) = &candidate.policy else {
        return Err(Error::NoPolicy);
    };
    let mut sim = Simulation {
        policy_version: policy.version().to_owned(),
        ..Simulation::default()
    };
    let mut states: HashMap<Uuid, ReturnState> = HashMap::new();
    let mut by_order: HashMap<String, Vec<Uuid>> = HashMap::new();
    // Requests waiting for their first decision: stream → the candidate's
    // verdict and value, and the request's currency.
    let mut pending: HashMap<Uuid, (Verdict, Decimal, Vec<String>)> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.position;
        for recorded in &page {
            let event = decode(recorded)?;
            let stream = recorded.stream_id;
            if let Event::ReturnRequested {
                request,
                requested_at,
                ..
            } = &event
            {
                sim.requests += 1;
                let prior = match candidate.master.order(&request.order_ref) {
                    Some(order) => {
                        let others = by_order
                            .get(request.order_ref.as_str())
                            .into_iter()
                            .flatten()
                            .filter_map(|id| states.get(id));
                        claimed_by(candidate, order, others)
                    }
                    None => BTreeMap::new(),
                };
                let assessment = candidate
                    .assess(request, &prior, *requested_at)?
                    .ok_or(Error::NoPolicy)?;
                let value: Decimal = request
                    .lines
                    .iter()
                    .filter_map(|l| {
                        let v = assessment.lines.iter().find(|v| v.line_no == l.line_no)?;
                        Some(v.eligible_quantity.get() * l.unit_paid())
                    })
                    .sum();
                let value = if assessment.verdict == Verdict::Approve {
                    value
                } else {
                    Decimal::ZERO
                };
                let failed = assessment
                    .failures()
                    .map(|r| match r.line_no {
                        Some(n) => format!("{} (line {n})", r.rule),
                        None => r.rule.clone(),
                    })
                    .collect();
                pending.insert(stream, (assessment.verdict, value, failed));
                by_order
                    .entry(request.order_ref.to_string())
                    .or_default()
                    .push(stream);
            }
            let state = states.entry(stream).or_default();
            evolve(state, &event);
            let decided = match &event {
                Event::ReturnApproved { .. } => Some(Verdict::Approve),
                Event::ReturnHeldForReview { .. } => Some(Verdict::Review),
                Event::ReturnRejected { .. } => Some(Verdict::Reject),
                Event::ReturnRequested { .. }
                | Event::EligibilityAssessed { .. }
                | Event::LabelIssued { .. }
                | Event::CarrierMilestoneRecorded { .. }
                | Event::UnitsReceived { .. }
                | Event::UnitsInspected { .. }
                | Event::UnitsDispositioned { .. }
                | Event::DocumentLinked { .. }
                | Event::UnitsSettled { .. }
                | Event::ReturnClosed { .. }
                | Event::ReturnCancelled { .. }
                | Event::ReturnExpired { .. }
                | Event::LineCorrected { .. }
                | Event::UpdateRefused { .. } => None,
            };
            if let Some(was) = decided
                && let Some(candidate) = pending.remove(&stream)
            {
                compare(&mut sim, state, Some(was), candidate);
            }
        }
    }
    // Requests nobody decided yet.
    for (stream, candidate) in pending {
        if let Some(state) = states.get(&stream) {
            compare(&mut sim, state, None, candidate);
        }
    }
    sim.changed.sort_by(|a, b| a.rma_number.cmp(&b.rma_number));
    Ok(sim)
}

fn verdict_name(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Approve) => "approve",
        Some(Verdict::Review) => "review",
        Some(Verdict::Reject) => "reject",
        None => "undecided",
    }
}

/// Records one request's comparison. `state` is the return right after its
/// first decision (or now, if undecided).
fn compare(
    sim: &mut Simulation,
    state: &ReturnState,
    was: Option<Verdict>,
    (would_be, value_would_be, failed): (Verdict, Decimal, Vec<String>),
) {
    let Some(header) = &state.header else {
        return;
    };
    let value_was: Decimal = if state.approved {
        state
            .lines
            .values()
            .map(|l| l.authorized.get() * l.line.unit_paid())
            .sum()
    } else {
        Decimal::ZERO
    };
    let transition = format!("{} → {}", verdict_name(was), verdict_name(Some(would_be)));
    *sim.transitions.entry(transition).or_default() += 1;
    if was == Some(would_be) && value_was == value_would_be {
        return;
    }
    let currency = header.request.currency.to_string();
    *sim.value_delta.entry(currency.clone()).or_default() += value_would_be - value_was;
    sim.changed.push(Changed {
        rma_number: header.rma_number.clone(),
        return_id: header.return_id.as_uuid(),
        was: verdict_name(was).to_owned(),
        would_be: verdict_name(Some(would_be)).to_owned(),
        currency,
        value_was,
        value_would_be,
        failed,
    });
}
