//! The pure core of Backhaul: the canonical returns model and the return
//! lifecycle as a decider. No I/O, no clock, no randomness: time comes in as
//! an argument and ids are chosen by the caller.
//!
//! Layout:
//! - [`values`]: constrained values (`Sku`, `Quantity`, `Money`, `ReturnId`…) with `parse`.
//! - [`eligibility`]: a policy's explained decision on a request (the policy itself lives in `backhaul-policy`).
//! - [`model`]: the canonical model of a return request, lines, dispositions, documents.
//! - [`ownership`]: governed attributes (who owns price, condition…), owner corrections.
//! - [`command`]: what may be asked of a return.
//! - [`event`]: what happened to a return; the event log's payloads.
//! - [`state`]: the fold of events, derived status/stage/owner, invariants.
//! - [`decide`](mod@decide): `decide(state, command, now) -> events | rejection`.
//! - [`view`]: the return summary read model.
//! - [`schema`]: JSON Schema export of the canonical model.

pub mod action;
pub mod command;
pub mod decide;
pub mod eligibility;
pub mod event;
pub mod model;
pub mod ownership;
pub mod rejection;
pub mod schema;
pub mod state;
pub mod values;
pub mod view;

pub use command::Command;
pub use decide::decide;
pub use event::{EVENT_SCHEMA_VERSION, Event};
pub use rejection::Rejection;
pub use state::{ReturnState, Stage, Status, evolve};
pub use view::{ReturnListItem, ReturnSummary};

/// Folds a sequence of events into a state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> ReturnState {
    let mut state = ReturnState::default();
    for e in events {
        evolve(&mut state, e);
    }
    state
}
