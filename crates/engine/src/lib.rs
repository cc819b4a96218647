//! The engine: applies commands to returns durably. It is the only writer of
//! the event log. For each command it loads the return's state (from its
//! cache or the log), asks the pure domain to `decide`, and hands the events,
//! the new summary row and the idempotency record to the store's group
//! committer as one all-or-nothing append, together with the outbound actions
//! the events call for (the outbox). It answers after the commit.
//!
//! Layout:
//! - `clock`: the injected clock (system or manual, for tests).
//! - `engine`: [`Engine`], command handling, idempotency, queries.
//! - `replay`: rebuilding the read model from the log.
//! - `outbound`: the connector contract ([`Sink`], [`Source`], [`Inbox`]) and
//!   how failures are classified (technical or business).
//! - `expiry`: the [`Expirer`], which expires approved returns whose
//!   deadline passed before the carrier got the parcel.
//! - `ownership`: which system owns which governed attribute, and which
//!   system each sender speaks for; checked before every command.
//! - `rules`: the policy and master data in force ([`RulesHandle`]), facts
//!   from master data, crosswalk translation, dispositions after inspection.
//! - `simulate`: replaying the log's requests through a candidate policy
//!   (`backhaul policy simulate`), read only.
//! - `dispatch`: the [`Dispatcher`], which delivers the outbox through the
//!   sinks with retries, throttling and circuit breakers, and feeds results
//!   back as commands.
//!
//! Not here: HTTP (the `api` crate), wire formats and transports (the
//! `connectors` crate).

mod clock;
mod dispatch;
mod engine;
mod expiry;
mod outbound;
mod ownership;
mod replay;
mod rules;
mod simulate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatch::{
    ConnectorStats, DeliveryPolicy, Dispatcher, DispatcherConfig, RunReport, Sinks,
};
pub use engine::{CommandMeta, Engine, EngineConfig, Error, Idempotency, Outcome, TimelineEntry};
pub use expiry::{Expirer, ExpiryConfig};
pub use outbound::{BoxFuture, DeliveryRequest, Inbox, Received, Sink, SinkError, Source};
pub use ownership::{NotOwner, Ownership, OwnershipConfig};
pub use replay::{ReplayReport, catch_up, replay};
pub use rules::{Rules, RulesError, RulesHandle, claimed_by};
pub use simulate::{Changed, Simulation, simulate};
