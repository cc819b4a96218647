//! Publishes the hub's event log to a message broker: every event, in log
//! order, at least once, as a CloudEvents 1.0 JSON envelope; and consumes
//! inbound commands from it, at least once, through the engine's inbox.
//! The brokers are NATS JetStream and, behind the `kafka` cargo feature,
//! Kafka.
//!
//! Layout:
//! - `config`: the `[broker.nats]` section (with `[broker.nats.consumer]`)
//!   and its validation, shared by `serve` and `config check`, and the
//!   connection both tasks open.
//! - `cloudevents`: the envelope (structured mode) and the subject of an event.
//! - `publisher`: the task tailing the log into a JetStream stream, its
//!   resume point (read back from the stream itself) and its [`Handle`].
//! - `consumer`: the task applying command messages of a durable pull
//!   consumer, and its [`ConsumerHandle`]; the parsing and applying of a
//!   command message both brokers share.
//! - `kafka`: the `[broker.kafka]` section (always compiled, so a hub built
//!   without the feature can say how to get it) and, with the `kafka`
//!   feature, [`KafkaPublisher`] and [`KafkaConsumer`] (rdkafka).
//!
//! Architecture invariant: the publisher keeps no checkpoint of its own.
//! The last message in the stream says how far the log was published
//! (`backhaul-position` header), and `Nats-Msg-Id` (the event id) lets
//! JetStream's duplicate window drop what a crash makes it send twice.
//! Kafka has no such window and no cheap "last record" across partitions,
//! so its publisher keeps a checkpoint in the hub's store instead (see
//! `kafka::publisher`).

mod cloudevents;
mod config;
mod consumer;
mod kafka;
mod publisher;

pub use cloudevents::{EVENT_TYPE_PREFIX, envelope, subject};
pub use config::{BrokerConfig, ConsumerConfig, NatsConfig};
pub use consumer::{COMMAND_TYPE_PREFIX, Consumer, ConsumerHandle, RETRY_DELAY, Tally};
#[cfg(feature = "kafka")]
pub use kafka::{DEAD_LETTER_REASON_HEADER, EVENT_TYPE_HEADER, KafkaConsumer, KafkaPublisher};
pub use kafka::{KafkaConfig, KafkaConsumerConfig};
pub use publisher::{Handle, POSITION_HEADER, Progress, Publisher};

/// A failure behind a boxed source: the NATS client has one error type per
/// call, and callers only log them.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the broker boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is refused; `field` is its full key.
    #[error("{field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: Source },
    /// Creating or inspecting the JetStream stream failed.
    #[error("JetStream stream {stream}: {source}")]
    Stream { stream: String, source: Source },
    /// The stream's last message does not say which log position it carries,
    /// so where to resume is unknown; guessing would lose or repeat events.
    #[error("JetStream stream {stream}: message {sequence} has no valid {header} header; is another publisher writing to it?", header = POSITION_HEADER)]
    Resume { stream: String, sequence: u64 },
    /// Creating the durable consumer or fetching from it failed, or the
    /// server did not confirm an acknowledgement.
    #[error("JetStream consumer {durable}: {source}")]
    Consume { durable: String, source: Source },
    #[error("cannot read the event log: {0}")]
    Store(#[from] backhaul_store::Error),
    /// The event cannot become a message (an event type that is not a
    /// subject token, or a payload that does not serialise).
    #[error("event {event_id} at position {position}: {reason}")]
    Encode {
        event_id: uuid::Uuid,
        position: i64,
        reason: String,
    },
    /// A Kafka client could not be created, or a consume or commit failed.
    #[error("Kafka {what}: {source}")]
    Kafka { what: String, source: Source },
    #[error("publishing event {event_id} at position {position} failed: {source}")]
    Publish {
        event_id: uuid::Uuid,
        position: i64,
        source: Source,
    },
}
