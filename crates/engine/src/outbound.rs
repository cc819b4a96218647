//! The connector contract: what a sink (a connector that delivers actions to
//! one external system) and a source (a connector that brings messages in)
//! must do, and how their failures are classified. Connectors live in the
//! `backhaul-connectors` crate; the dispatcher (`dispatch`) drives sinks and
//! the [`Inbox`] takes what sources bring.
//!
//! API boundary: a sink never decides about retries, throttling or the
//! return's state. It maps one canonical [`Action`] to its wire format, sends
//! it with the delivery's idempotency key, and says what came back: a result,
//! a technical failure (worth retrying) or a business rejection (a person
//! must look).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use backhaul_domain::Command;
use backhaul_domain::action::{Action, ActionKind, ActionResult, Target};
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::{ExternalRef, ReturnId};
use backhaul_master::{CrosswalkKind, MasterData};
use serde::Serialize;
use uuid::Uuid;

use crate::engine::{CommandMeta, Engine, Error, Idempotency, Outcome};

/// A boxed future, so sinks can be trait objects in a registry.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One attempt at one delivery, as a sink sees it.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    pub delivery_id: i64,
    /// Pass it on to the target as its idempotency key: every attempt of a
    /// delivery carries the same one.
    pub key: &'a str,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub action: &'a Action,
    /// Results of the kinds this action requires (an ERP return order's
    /// number for a credit memo); `None` if an operator skipped it.
    pub prerequisites: &'a BTreeMap<ActionKind, Option<ActionResult>>,
    pub correlation_id: Uuid,
    /// The master data in force, for the target's codes (crosswalks): a
    /// canonical code the target's crosswalk does not map is a business
    /// error, never sent as is.
    pub master: &'a MasterData,
}

impl DeliveryRequest<'_> {
    /// The code `system` uses for a canonical code of `kind`: through its
    /// crosswalk if it has one of that kind, else the canonical code (the
    /// system speaks canonical codes). An unmapped code is a business error
    /// (`unmapped_code`) naming the system and the code.
    pub fn outbound_code(
        &self,
        system: &str,
        kind: CrosswalkKind,
        canonical: &str,
    ) -> Result<String, SinkError> {
        if !self.master.translates(system, kind) {
            return Ok(canonical.to_owned());
        }
        self.master
            .from_canonical(system, kind, canonical)
            .map(str::to_owned)
            .map_err(|unmapped| SinkError::business("unmapped_code", unmapped.to_string()))
    }
}

impl DeliveryRequest<'_> {
    /// The document number a prerequisite produced, if it did.
    pub fn prerequisite_number(&self, kind: ActionKind) -> Option<&ExternalRef> {
        match self.prerequisites.get(&kind) {
            Some(Some(ActionResult::Document { number, .. })) => Some(number),
            Some(Some(ActionResult::Label(label))) => Some(&label.tracking_number),
            Some(Some(ActionResult::Accepted) | None) | None => None,
        }
    }
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum SinkError {
    /// The target could not be reached or could not answer now (timeout,
    /// connection error, 5xx, 429): retried with backoff.
    #[error("{code}: {message}")]
    Technical {
        code: String,
        message: String,
        /// HTTP status, where there was one.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The target asked to wait this long (429/503 `Retry-After`).
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        retry_after: Option<Duration>,
    },
    /// The target understood and refused (closed period, unknown SKU, credit
    /// limit): retrying the same request cannot help. Goes to the exception
    /// queue.
    #[error("{code}: {message}")]
    Business {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
}

impl SinkError {
    pub fn technical(code: &str, message: impl Into<String>) -> SinkError {
        SinkError::Technical {
            code: code.to_owned(),
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    pub fn business(code: &str, message: impl Into<String>) -> SinkError {
        SinkError::Business {
            code: code.to_owned(),
            message: message.into(),
            status: None,
        }
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// A connector that delivers actions to one external system.
pub trait Sink: Send + Sync + 'static {
    /// The system this sink serves.
    fn target(&self) -> Target;

    /// The name documents from this system carry (`erp`, `tryton`…), as
    /// recorded on the return's financial documents.
    fn system(&self) -> &ExternalRef;

    /// Delivers one action. Must be safe to repeat with the same key.
    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>>;

    /// Whether the system answers at all (for `/health` and start-up checks).
    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>>;
}

/// What an inbound message became.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Applied now.
    Applied(Outcome),
    /// Seen before under the same dedup key: acknowledged, not applied
    /// again; the first answer is repeated.
    Duplicate(Outcome),
}

/// The way in for every source (webhook, file row, broker message): each
/// message carries a dedup key, which the engine stores with the events in
/// the same transaction, so a message sent twice is applied once however
/// the two copies race. The API's `Idempotency-Key` is the same mechanism.
#[derive(Clone)]
pub struct Inbox {
    engine: Engine,
    /// The source, which scopes its dedup keys (two sources may reuse keys).
    source: String,
}

impl Inbox {
    pub fn new(engine: Engine, source: &str) -> Inbox {
        Inbox {
            engine,
            source: source.to_owned(),
        }
    }

    /// The engine behind the inbox, for the queries a source needs (which
    /// returns to poll for).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Opens a new return, once per `dedup_key`: a message seen before
    /// finds the return the first copy opened instead of opening a second
    /// one (the key is written with the new return's first events). The
    /// request goes through [`Engine::create`], so crosswalks and the policy
    /// apply as for the API. `fingerprint` as for [`Inbox::receive`].
    pub async fn create(
        &self,
        request: ReturnRequest,
        dedup_key: &str,
        fingerprint: &str,
        causation_id: Option<Uuid>,
    ) -> Result<Received, Error> {
        let meta = self.meta(dedup_key, fingerprint, causation_id);
        let outcome = self.engine.create(request, meta).await?;
        Ok(if outcome.replayed {
            Received::Duplicate(outcome)
        } else {
            Received::Applied(outcome)
        })
    }

    fn meta(&self, dedup_key: &str, fingerprint: &str, causation_id: Option<Uuid>) -> CommandMeta {
        CommandMeta {
            partner: self.source.clone(),
            idempotency: Some(Idempotency {
                key: dedup_key.to_owned(),
                request_hash: fingerprint.to_owned(),
            }),
            correlation_id: None,
            causation_id,
        }
    }

    /// Applies a command to an existing return, once per `dedup_key`.
    /// `fingerprint` identifies the message's content: the same key with
    /// another content is refused (`Error::IdempotencyKeyReused`).
    pub async fn receive(
        &self,
        return_id: ReturnId,
        command: Command,
        dedup_key: &str,
        fingerprint: &str,
        causation_id: Option<Uuid>,
    ) -> Result<Received, Error> {
        let meta = self.meta(dedup_key, fingerprint, causation_id);
        let outcome = self.engine.execute(return_id, command, meta).await?;
        Ok(if outcome.replayed {
            Received::Duplicate(outcome)
        } else {
            Received::Applied(outcome)
        })
    }
}

/// A connector that brings messages in: it runs until `shutdown`, handing
/// every message to its [`Inbox`].
pub trait Source: Send + 'static {
    fn name(&self) -> &str;
    fn run(
        self: Box<Self>,
        inbox: Inbox,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> BoxFuture<'static, ()>;
}
