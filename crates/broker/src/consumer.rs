//! The consumer: applies inbound commands from a durable JetStream pull
//! consumer, at least once, with the [`Inbox`] dropping what arrives twice.
//!
//! A message is a CloudEvents 1.0 JSON envelope (structured mode): `type` is
//! `dev.backhaul.command.<command>` ([`COMMAND_TYPE_PREFIX`]), `subject` the
//! return id, `id` the message id, `data` the command body as the HTTP API
//! takes it (without its `command` field: the type says which), and an
//! optional `causationid` extension. A `request` opens a return: it has no
//! `subject` (the hub assigns the id) and its `data` is the return request
//! as `POST /v1/returns` takes it.
//!
//! What happens to a message:
//! - applied, or already applied under the same id (the dedup key
//!   `nats:<id>` is stored with the events) → ack, after the commit;
//! - malformed, or refused by the return → term: redelivering cannot make
//!   it pass, so it is logged with its reason and counted instead;
//! - a technical failure (the store, the engine shutting down) → nak with
//!   [`RETRY_DELAY`], so the server delivers it again, up to `max_deliver`.
//!
//! Architecture invariant: no ack before the effect is committed. A crash in
//! between redelivers the message after `ack_wait_secs`, and the dedup key
//! turns it into a duplicate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, PullConsumer, pull},
    stream,
};
use backhaul_domain::Command;
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::ReturnId;
use backhaul_engine::{Engine, Error as EngineError, Inbox, Received};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Error, NatsConfig};

/// What every CloudEvents `type` of an inbound command starts with.
pub const COMMAND_TYPE_PREFIX: &str = "dev.backhaul.command.";

/// How long the server holds back a message that failed for a technical
/// reason: long enough for a store to come back, short enough that a blip
/// costs little.
pub const RETRY_DELAY: Duration = Duration::from_secs(5);

/// How long `run` waits for new messages in one request; it bounds how long
/// a shutdown waits for an idle consumer.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts after failures to reach the server.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Commands a broker message may not carry, and why.
const REFUSED_COMMANDS: [(&str, &str); 1] = [(
    "record_refused_update",
    "only the engine records refused updates",
)];

/// The command that opens a return: its `data` is the return request as
/// `POST /v1/returns` takes it, and it has no `subject` (the hub assigns
/// the return's id).
const OPEN_COMMAND: &str = "request";

/// What one pass over the available messages did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Applied now, then acked.
    pub applied: u64,
    /// Already applied under the same message id; acked, not applied again.
    pub duplicate: u64,
    /// Refused by the return (or not found); terminated.
    pub rejected: u64,
    /// Not a command message the hub accepts; terminated.
    pub malformed: u64,
    /// Technical failure; nak'd to be delivered again.
    pub retried: u64,
}

impl Tally {
    /// Messages handled in the pass.
    pub fn total(&self) -> u64 {
        self.applied + self.duplicate + self.rejected + self.malformed + self.retried
    }

    pub(crate) fn add(&mut self, other: Tally) {
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.rejected += other.rejected;
        self.malformed += other.malformed;
        self.retried += other.retried;
    }
}

/// A cheap-clone view of a running consumer: what it did since it was built.
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    pub(crate) counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    applied: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    malformed: AtomicU64,
    retried: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, verdict: &Verdict) {
        let counter = match verdict {
            Verdict::Applied => &self.applied,
            Verdict::Duplicate => &self.duplicate,
            Verdict::Rejected(_) => &self.rejected,
            Verdict::Malformed(_) => &self.malformed,
            Verdict::Retry(_) => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConsumerHandle {
    pub fn tally(&self) -> Tally {
        Tally {
            applied: self.counters.applied.load(Ordering::Relaxed),
            duplicate: self.counters.duplicate.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            malformed: self.counters.malformed.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
        }
    }
}

/// What became of one message, and what the server is told.
#[derive(Debug)]
pub(crate) enum Verdict {
    Applied,
    Duplicate,
    Rejected(String),
    Malformed(String),
    Retry(String),
}

/// A command message, parsed.
#[derive(Debug)]
struct Inbound {
    id: String,
    action: Apply,
    fingerprint: String,
    causation_id: Option<Uuid>,
}

/// What a message asks of the hub.
#[derive(Debug)]
enum Apply {
    /// A command for an existing return.
    Command(ReturnId, Command),
    /// A new return.
    Open(ReturnRequest),
}

/// Applies the commands of a JetStream stream through an [`Inbox`].
pub struct Consumer {
    config: NatsConfig,
    inbox: Inbox,
    consumer: Option<PullConsumer>,
    counters: Arc<Counters>,
}

impl Consumer {
    /// Checks the configuration (`[broker.nats]` with its `consumer`
    /// section); connects on the first fetch, so a broker that is down at
    /// start-up delays consuming, not the hub.
    pub fn build(config: &NatsConfig, engine: Engine) -> Result<Self, Error> {
        if !config.consumer.enabled {
            return Err(Error::Config {
                field: "broker.nats.consumer.enabled",
                reason: "the consumer is off".into(),
            });
        }
        config.validate()?;
        Ok(Self {
            inbox: Inbox::new(engine, &config.consumer.source),
            config: config.clone(),
            consumer: None,
            counters: Arc::default(),
        })
    }

    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle {
            counters: Arc::clone(&self.counters),
        }
    }

    /// Handles the messages available now, one fetch of at most `batch`.
    pub async fn run_once(&mut self) -> Result<Tally, Error> {
        self.fetch(None, &CancellationToken::new()).await
    }

    /// Handles messages until none is available now. A message nak'd in the
    /// pass is not waited for: it comes back after [`RETRY_DELAY`].
    pub async fn drain(&mut self) -> Result<Tally, Error> {
        let mut tally = Tally::default();
        loop {
            let pass = self.run_once().await?;
            if pass.total() == 0 {
                return Ok(tally);
            }
            tally.add(pass);
        }
    }

    /// One fetch: `wait` `None` takes only what is there now; `Some` waits
    /// up to that long for messages. Once `stop` is cancelled no further
    /// message is taken, but the one in hand is finished and acknowledged:
    /// cutting it between its commit and its ack would only cost a
    /// redelivery, yet there is no reason to.
    async fn fetch(
        &mut self,
        wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Tally, Error> {
        let consumer = self.connect().await?;
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Consume {
            durable: self.config.consumer.durable.clone(),
            source,
        };
        let batch = self.config.consumer.batch;
        let mut messages = match wait {
            None => consumer
                .fetch()
                .max_messages(batch)
                .messages()
                .await
                .map_err(|e| failed(e.into()))?,
            Some(wait) => consumer
                .batch()
                .max_messages(batch)
                .expires(wait)
                .messages()
                .await
                .map_err(|e| failed(e.into()))?,
        };
        let mut tally = Tally::default();
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => break,
                next = messages.next() => next,
            };
            // A message fetched but never handled is not acknowledged: the
            // server delivers it again after `ack_wait_secs`.
            let Some(message) = next else { break };
            let message = message.map_err(failed)?;
            let verdict = self.handle_message(&message.payload).await;
            let (kind, counter) = match &verdict {
                Verdict::Applied => (AckKind::Ack, &mut tally.applied),
                Verdict::Duplicate => (AckKind::Ack, &mut tally.duplicate),
                Verdict::Rejected(_) => (AckKind::Term, &mut tally.rejected),
                Verdict::Malformed(_) => (AckKind::Term, &mut tally.malformed),
                Verdict::Retry(_) => (AckKind::Nak(Some(RETRY_DELAY)), &mut tally.retried),
            };
            *counter += 1;
            self.count(&verdict);
            let delivered = message.info().map_or(0, |i| i.delivered);
            match &verdict {
                Verdict::Applied | Verdict::Duplicate => {}
                Verdict::Rejected(reason) => {
                    tracing::warn!(subject = %message.subject, attempt = delivered, error = %reason, "inbound command rejected; terminated");
                }
                Verdict::Malformed(reason) => {
                    tracing::warn!(subject = %message.subject, attempt = delivered, error = %reason, "malformed inbound message; terminated");
                }
                Verdict::Retry(reason) => {
                    tracing::warn!(subject = %message.subject, attempt = delivered, error = %reason, delay = ?RETRY_DELAY, "inbound command failed; redelivered later");
                }
            }
            // Double ack: the server confirms it, so when this returns the
            // message will not come back (a lost ack would only cost a
            // duplicate, but the counts of a pass are then exact).
            message.double_ack_with(kind).await.map_err(failed)?;
        }
        Ok(tally)
    }

    fn count(&self, verdict: &Verdict) {
        self.counters.count(verdict);
    }

    async fn handle_message(&self, payload: &[u8]) -> Verdict {
        apply(&self.inbox, payload, "nats").await
    }

    /// Connects, and creates the stream and the durable consumer if missing,
    /// once.
    async fn connect(&mut self) -> Result<PullConsumer, Error> {
        if let Some(consumer) = &self.consumer {
            return Ok(consumer.clone());
        }
        let config = &self.config.consumer;
        let jetstream = jetstream::new(self.config.connect().await?);
        // Existing ones are used as they are: their limits are the
        // operator's to change.
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.filter_subject.clone()],
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| Error::Stream {
                stream: config.stream.clone(),
                source: e.into(),
            })?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &config.durable,
                pull::Config {
                    durable_name: Some(config.durable.clone()),
                    filter_subject: config.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(config.ack_wait_secs),
                    max_deliver: config.max_deliver,
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|e| Error::Consume {
                durable: config.durable.clone(),
                source: e.into(),
            })?;
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// Consumes until `shutdown` is cancelled. A message being handled when
    /// it is cancelled is finished and acknowledged first; failures to reach
    /// the server are logged and retried with a growing pause.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.fetch(Some(IDLE_WAIT), &shutdown).await {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    // The connection may be the problem: make a new one.
                    self.consumer = None;
                    let pause = Duration::from_millis(200)
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(%error, attempt = failures, ?pause, "consuming from NATS failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::info!(tally = ?self.handle().tally(), "inbound consumer stopped");
    }
}

/// Parses `payload` and applies its command through `inbox` under the
/// dedup key `{scheme}:{id}`, and says what became of it. Shared by the
/// NATS and Kafka consumers, so both accept and refuse the same messages.
pub(crate) async fn apply(inbox: &Inbox, payload: &[u8], scheme: &str) -> Verdict {
    let inbound = match parse(payload) {
        Ok(inbound) => inbound,
        Err(reason) => return Verdict::Malformed(reason),
    };
    let key = format!("{scheme}:{}", inbound.id);
    let (received, about) = match inbound.action {
        Apply::Command(return_id, command) => (
            inbox
                .receive(
                    return_id,
                    command,
                    &key,
                    &inbound.fingerprint,
                    inbound.causation_id,
                )
                .await,
            format!("return {return_id}"),
        ),
        Apply::Open(request) => (
            inbox
                .create(request, &key, &inbound.fingerprint, inbound.causation_id)
                .await,
            "a new return".to_owned(),
        ),
    };
    let context = |e: &EngineError| format!("message {} for {about}: {e}", inbound.id);
    match received {
        Ok(Received::Applied(_)) => Verdict::Applied,
        Ok(Received::Duplicate(_)) => Verdict::Duplicate,
        // The message, not the hub, is at fault: the same message can
        // never pass, so it is not delivered again.
        Err(
            e @ (EngineError::Rejected(_)
            | EngineError::IdempotencyKeyReused { .. }
            | EngineError::NotOwner(_)
            | EngineError::Rules(_)
            | EngineError::Invariant(_)
            | EngineError::MasterData(_)
            | EngineError::NoPolicy),
        ) => Verdict::Rejected(context(&e)),
        // The hub could not answer now; the message may pass later.
        Err(
            e @ (EngineError::Contention(_)
            | EngineError::Corrupt(_)
            | EngineError::Master(_)
            | EngineError::Store(_)),
        ) => Verdict::Retry(context(&e)),
    }
}

/// Reads a command message, or says why it is not one.
fn parse(payload: &[u8]) -> Result<Inbound, String> {
    let envelope: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|e| format!("not a JSON object: {e}"))?;
    let text = |name: &str| -> Result<&str, String> {
        match envelope.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(format!("attribute `{name}` must be a non-empty string")),
            None => Err(format!("attribute `{name}` is missing")),
        }
    };
    let version = text("specversion")?;
    if version != "1.0" {
        return Err(format!("specversion {version:?} is not 1.0"));
    }
    let id = text("id")?.to_owned();
    text("source")?;
    let kind = text("type")?;
    let name = kind
        .strip_prefix(COMMAND_TYPE_PREFIX)
        .ok_or_else(|| format!("type {kind:?} does not start with {COMMAND_TYPE_PREFIX:?}"))?;
    if let Some((_, why)) = REFUSED_COMMANDS
        .iter()
        .find(|(refused, _)| *refused == name)
    {
        return Err(format!(
            "command `{name}` is not accepted from the broker: {why}"
        ));
    }
    let return_id = if name == OPEN_COMMAND {
        if envelope.contains_key("subject") {
            return Err("a `request` has no `subject`: the hub assigns the new return's id".into());
        }
        None
    } else {
        Some(ReturnId::parse(text("subject")?).map_err(|e| format!("subject: {e}"))?)
    };
    if let Some(content_type) = envelope.get("datacontenttype")
        && !matches!(content_type.as_str(), Some("application/json"))
    {
        return Err(format!(
            "datacontenttype {content_type} is not application/json"
        ));
    }
    if envelope.contains_key("data_base64") {
        return Err("data_base64 is not accepted: data must be JSON".into());
    }
    let causation_id = match envelope.get("causationid") {
        None => None,
        Some(Value::String(raw)) => {
            Some(Uuid::parse_str(raw).map_err(|e| format!("attribute `causationid`: {e}"))?)
        }
        Some(_) => return Err("attribute `causationid` must be a UUID string".into()),
    };
    // A command without fields (`close`) may come without data.
    let data = envelope.get("data").cloned().unwrap_or(Value::Null);
    let fingerprint = hex::encode(Sha256::digest(data.to_string().as_bytes()));
    let mut body = match data {
        Value::Object(body) => body,
        Value::Null => Map::new(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_) => {
            return Err("data must be a JSON object".into());
        }
    };
    if body.contains_key("command") {
        return Err("data must not carry `command`: the type names it".into());
    }
    let action = match return_id {
        None => Apply::Open(
            serde_json::from_value(Value::Object(body))
                .map_err(|e| format!("data is not a return request: {e}"))?,
        ),
        Some(return_id) => {
            body.insert("command".into(), Value::String(name.to_owned()));
            let command: Command = serde_json::from_value(Value::Object(body))
                .map_err(|e| format!("data is not a `{name}` command: {e}"))?;
            Apply::Command(return_id, command)
        }
    };
    Ok(Inbound {
        id,
        action,
        fingerprint,
        causation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(kind: &str, data: Value) -> Value {
        json!({
            "specversion": "1.0", "id": "m-1", "source": "urn:carrier",
            "type": format!("{COMMAND_TYPE_PREFIX}{kind}"),
            "subject": Uuid::now_v7().to_string(), "data": data,
        })
    }

    fn reason(message: &Value) -> String {
        parse(message.to_string().as_bytes()).expect_err("refused")
    }

    #[test]
    fn a_command_message_is_read_with_its_fingerprint() {
        let data = json!({"milestone": "in_transit", "occurred_at": "2026-11-02T10:00:00Z"});
        let mut message = envelope("record_carrier_milestone", data.clone());
        let causation = Uuid::now_v7();
        message["causationid"] = json!(causation.to_string());
        let inbound = parse(message.to_string().as_bytes()).expect("parses");
        assert_eq!(inbound.id, "m-1");
        let Apply::Command(_, command) = &inbound.action else {
            panic!("a command: {inbound:?}");
        };
        assert_eq!(command.name(), "record_carrier_milestone");
        assert_eq!(inbound.causation_id, Some(causation));
        assert_eq!(
            inbound.fingerprint,
            hex::encode(Sha256::digest(data.to_string().as_bytes()))
        );
        let close = parse(envelope("close", Value::Null).to_string().as_bytes()).expect("parses");
        assert!(matches!(close.action, Apply::Command(_, Command::Close)));
    }

    #[test]
    fn a_request_message_opens_a_return_and_has_no_subject() {
        let data = json!({
            "channel": "marketplace", "customer": "C1", "order_ref": "SO-1", "currency": "USD",
            "site": "DC1",
            "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "uom": "EA",
                       "reason_code": "DAMAGED", "requested_outcome": "refund",
                       "unit_price": {"amount": "10.00", "currency": "USD"},
                       "unit_tax": {"amount": "0.00", "currency": "USD"}}]
        });
        let mut message = envelope("request", data);
        assert!(reason(&message).contains("has no `subject`"));
        message.as_object_mut().expect("object").remove("subject");
        let inbound = parse(message.to_string().as_bytes()).expect("parses");
        let Apply::Open(request) = &inbound.action else {
            panic!("a new return: {inbound:?}");
        };
        assert_eq!(request.lines.len(), 1);
        let mut no_lines = envelope("request", json!({"channel": "portal"}));
        no_lines.as_object_mut().expect("object").remove("subject");
        assert!(reason(&no_lines).starts_with("data is not a return request"));
    }

    #[test]
    fn each_defect_is_named() {
        let good = envelope("close", Value::Null);
        let without = |name: &str| {
            let mut m = good.clone();
            m.as_object_mut().expect("object").remove(name);
            m
        };
        assert!(
            parse(b"nope")
                .expect_err("refused")
                .starts_with("not a JSON object")
        );
        assert!(reason(&without("subject")).contains("`subject` is missing"));
        assert!(reason(&without("id")).contains("`id` is missing"));
        let mut bad_id = good.clone();
        bad_id["subject"] = json!("R-1");
        assert!(reason(&bad_id).starts_with("subject: "));
        let mut other_type = good.clone();
        other_type["type"] = json!("dev.backhaul.return.ReturnApproved");
        assert!(reason(&other_type).contains("does not start with"));
        assert!(reason(&envelope("teleport", json!({}))).contains("unknown variant"));
        assert!(
            reason(&envelope("record_refused_update", json!({})))
                .contains("not accepted from the broker")
        );
        assert!(reason(&envelope("close", json!({"command": "cancel"}))).contains("carry"));
        assert!(reason(&envelope("close", json!([1]))).contains("JSON object"));
        assert!(
            reason(&envelope(
                "record_carrier_milestone",
                json!({"milestone": "in_transit"})
            ))
            .contains("occurred_at")
        );
    }
}
