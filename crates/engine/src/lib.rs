//! The engine: applies commands to returns durably. It is the only writer of
//! the event log. For each command it loads the return's state (from its
//! cache or the log), asks the pure domain to `decide`, and hands the events,
//! the new summary row and the idempotency record to the store's group
//! committer as one all-or-nothing append. It answers after the commit.
//!
//! Layout:
//! - `clock`: the injected clock (system or manual, for tests).
//! - `engine`: [`Engine`], command handling, idempotency, queries.
//! - `replay`: rebuilding the read model from the log.
//!
//! Not here: HTTP (the `api` crate), outbound delivery (the outbox, later).

mod clock;
mod engine;
mod replay;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{CommandMeta, Engine, EngineConfig, Error, Idempotency, Outcome, TimelineEntry};
pub use replay::{ReplayReport, replay};
