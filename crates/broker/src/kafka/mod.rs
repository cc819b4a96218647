//! Kafka: the `[broker.kafka]` section, always; with the `kafka` feature,
//! the publisher and the consumer (rdkafka, vendored librdkafka).
//!
//! Protocol binding: CloudEvents' Kafka binding in **structured mode**. The
//! record value is the same JSON envelope the NATS publisher sends
//! (`content-type: application/cloudevents+json`), so one parser serves
//! both brokers and the envelope survives any tool that copies values but
//! drops headers (MirrorMaker configurations, sinks that write values to
//! files). Headers add what routing needs without parsing:
//! `backhaul-event-type` and `backhaul-position`. The record key is the
//! return id, so one partition holds one return's events, in order.

mod config;
#[cfg(feature = "kafka")]
mod consumer;
#[cfg(feature = "kafka")]
mod publisher;

pub use config::{KafkaConfig, KafkaConsumerConfig};
#[cfg(feature = "kafka")]
pub use consumer::{DEAD_LETTER_REASON_HEADER, KafkaConsumer};
#[cfg(feature = "kafka")]
pub use publisher::{EVENT_TYPE_HEADER, KafkaPublisher};

/// Turns an rdkafka error into the broker's error, saying what failed.
#[cfg(feature = "kafka")]
fn failed(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> crate::Error {
    let what = what.into();
    move |e| crate::Error::Kafka {
        what,
        source: Box::new(e),
    }
}

/// The settings of a client: `defaults` the operator may change, then the
/// operator's passthrough settings, then `owned` (the hub's promises rest
/// on them; `validate` refuses them in the passthrough too).
#[cfg(feature = "kafka")]
fn client_config(
    config: &KafkaConfig,
    defaults: &[(&str, &str)],
    owned: &[(&str, &str)],
) -> rdkafka::ClientConfig {
    let mut client = rdkafka::ClientConfig::new();
    client.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    for (key, value) in defaults {
        client.set(*key, *value);
    }
    for (key, value) in config.passthrough() {
        client.set(key, value);
    }
    client.set("bootstrap.servers", &config.bootstrap_servers);
    for (key, value) in owned {
        client.set(*key, *value);
    }
    client
}

/// The producer settings of the publisher and of the dead-letter producer:
/// idempotent, acknowledged by every in-sync replica, and partitioning keys
/// like the Java client (murmur2), so a return's partition is the one any
/// other Kafka tool would pick for its id.
#[cfg(feature = "kafka")]
fn producer_config(config: &KafkaConfig) -> rdkafka::ClientConfig {
    let timeout = config.delivery_timeout_ms.to_string();
    client_config(
        config,
        &[("partitioner", "murmur2_random")],
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("message.timeout.ms", timeout.as_str()),
        ],
    )
}
