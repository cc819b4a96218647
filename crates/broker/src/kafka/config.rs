//! The `[broker.kafka]` section (with `[broker.kafka.consumer]`) and its
//! checks. It is compiled with or without the `kafka` feature, so a hub
//! built without it still parses the section and can say how to get Kafka
//! instead of calling the key unknown.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;

/// librdkafka settings the hub sets itself: the at-least-once and ordering
/// promises depend on them, so `client` may not change them.
const OWNED_SETTINGS: [&str; 8] = [
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
    "message.timeout.ms",
];

/// Publishing the event log to a Kafka topic; on when the section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port` of one or more brokers, comma-separated.
    pub bootstrap_servers: String,
    /// The one topic every event goes to, keyed by return id. One topic,
    /// not one per event type: Kafka orders records only within a
    /// partition of one topic, and a return's events must stay in order.
    pub topic: String,
    /// The CloudEvents `source` of every event (a URI reference naming this
    /// hub), so consumers of several hubs can tell them apart.
    pub source: String,
    /// How often the log is looked at for new events, in milliseconds.
    pub poll_ms: u64,
    /// Events produced before waiting for their acknowledgements and saving
    /// the checkpoint; it bounds what a crash re-publishes.
    pub batch: usize,
    /// How long librdkafka keeps trying to deliver a record before failing
    /// it (`message.timeout.ms`); the batch is then produced again.
    pub delivery_timeout_ms: u64,
    /// Further librdkafka settings passed through as they are
    /// (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`…).
    /// Secrets are refused here: name them in `client_env`.
    pub client: BTreeMap<String, String>,
    /// librdkafka settings read from environment variables, by variable
    /// name (`"sasl.password" = "KAFKA_PASSWORD"`), so secrets never sit in
    /// the file.
    pub client_env: BTreeMap<String, String>,
    /// Consuming inbound commands (`[broker.kafka.consumer]`); off by default.
    pub consumer: KafkaConsumerConfig,
}

/// Consuming inbound commands (CloudEvents whose `type` names a command)
/// from a topic of the same cluster, in a consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConsumerConfig {
    /// Off by default.
    pub enabled: bool,
    /// The topic inbound commands are read from. It must not be the
    /// publisher's topic: the hub would consume its own events.
    pub topic: String,
    /// The consumer group. Its committed offsets are what survives a
    /// restart, so hubs sharing it share the partitions.
    pub group_id: String,
    /// The partner the engine sees as the sender: it scopes the dedup keys
    /// and is what `[engine.ownership] partners` maps to a system.
    pub source: String,
    /// Where malformed and refused messages go, with the reason in a
    /// `backhaul-dead-letter-reason` header. Empty: they are logged with
    /// the reason and skipped.
    pub dead_letter_topic: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            topic: "backhaul.events".into(),
            source: "backhaul".into(),
            poll_ms: 200,
            batch: 500,
            delivery_timeout_ms: 30_000,
            client: BTreeMap::new(),
            client_env: BTreeMap::new(),
            consumer: KafkaConsumerConfig::default(),
        }
    }
}

impl Default for KafkaConsumerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            topic: "backhaul.inbound".into(),
            group_id: "backhaul".into(),
            source: "kafka".into(),
            dead_letter_topic: String::new(),
        }
    }
}

impl KafkaConfig {
    /// The checkpoint row of this topic in the hub's store: another topic
    /// starts from the beginning of the log.
    pub fn checkpoint_name(&self) -> String {
        format!("kafka:{}", self.topic)
    }

    /// Checks what serde cannot, environment variables of `client_env`
    /// included (they must be set).
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if self.bootstrap_servers.trim().is_empty()
            || !self.bootstrap_servers.split(',').all(is_host_port)
        {
            return refuse(
                "broker.kafka.bootstrap_servers",
                format!(
                    "{:?} must be host:port, comma-separated, like 127.0.0.1:9092",
                    self.bootstrap_servers
                ),
            );
        }
        if !is_topic_name(&self.topic) {
            return refuse("broker.kafka.topic", topic_reason(&self.topic));
        }
        if self.source.is_empty() || self.source.chars().any(char::is_whitespace) {
            return refuse(
                "broker.kafka.source",
                format!("{:?} must be a non-empty URI reference", self.source),
            );
        }
        if self.poll_ms == 0 {
            return refuse("broker.kafka.poll_ms", "must be greater than zero".into());
        }
        // librdkafka queues 100,000 records by default; a batch must fit.
        if self.batch == 0 || self.batch > 10_000 {
            return refuse(
                "broker.kafka.batch",
                format!("{} must be between 1 and 10000", self.batch),
            );
        }
        if self.delivery_timeout_ms == 0 {
            return refuse(
                "broker.kafka.delivery_timeout_ms",
                "must be greater than zero".into(),
            );
        }
        for (key, value) in &self.client {
            if OWNED_SETTINGS.contains(&key.as_str()) {
                return refuse(
                    "broker.kafka.client",
                    format!("{key:?} is set by the hub and cannot be changed"),
                );
            }
            if is_secret(key) {
                return refuse(
                    "broker.kafka.client",
                    format!(
                        "{key:?} is a secret: name the environment variable holding it in broker.kafka.client_env instead"
                    ),
                );
            }
            if value.is_empty() {
                return refuse("broker.kafka.client", format!("{key:?} has an empty value"));
            }
        }
        for (key, variable) in &self.client_env {
            if OWNED_SETTINGS.contains(&key.as_str()) || self.client.contains_key(key) {
                return refuse(
                    "broker.kafka.client_env",
                    format!("{key:?} is set by the hub or in broker.kafka.client already"),
                );
            }
            if variable.is_empty()
                || !variable
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return refuse(
                    "broker.kafka.client_env",
                    format!("{key:?}: {variable:?} is not an environment variable name"),
                );
            }
            if std::env::var(variable).map_or(true, |v| v.is_empty()) {
                return refuse(
                    "broker.kafka.client_env",
                    format!("{key:?}: environment variable {variable} is not set"),
                );
            }
        }
        if self.consumer.enabled {
            self.consumer.validate(&self.topic)?;
        }
        Ok(())
    }

    /// The settings `client` and `client_env` add, the variables read.
    /// Call after [`validate`](Self::validate). Only the rdkafka clients
    /// need it.
    #[cfg(any(feature = "kafka", test))]
    pub(crate) fn passthrough(&self) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = self
            .client
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, variable) in &self.client_env {
            settings.push((key.clone(), std::env::var(variable).unwrap_or_default()));
        }
        settings
    }
}

impl KafkaConsumerConfig {
    fn validate(&self, publisher_topic: &str) -> Result<(), Error> {
        let refuse = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if !is_topic_name(&self.topic) {
            return refuse("broker.kafka.consumer.topic", topic_reason(&self.topic));
        }
        if self.topic == publisher_topic {
            return refuse(
                "broker.kafka.consumer.topic",
                format!(
                    "{:?} is the publisher's topic (broker.kafka.topic): the hub would consume its own events",
                    self.topic
                ),
            );
        }
        if self.group_id.trim().is_empty() {
            return refuse("broker.kafka.consumer.group_id", "must not be empty".into());
        }
        if self.source.trim().is_empty() {
            return refuse(
                "broker.kafka.consumer.source",
                "must not be empty: it is the partner the engine sees".into(),
            );
        }
        let dead = &self.dead_letter_topic;
        if !dead.is_empty() {
            if !is_topic_name(dead) {
                return refuse(
                    "broker.kafka.consumer.dead_letter_topic",
                    topic_reason(dead),
                );
            }
            if dead == &self.topic || dead == publisher_topic {
                return refuse(
                    "broker.kafka.consumer.dead_letter_topic",
                    format!("{dead:?} must differ from the inbound and the event topic"),
                );
            }
        }
        Ok(())
    }
}

/// A Kafka topic name: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn topic_reason(name: &str) -> String {
    format!("{name:?} must be 1 to 249 letters, digits, `.`, `_` or `-`")
}

fn is_host_port(item: &str) -> bool {
    item.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    })
}

/// Settings whose value is a credential.
fn is_secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key == "ssl.key.pem"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092,kafka-2.example:9093".into(),
            ..KafkaConfig::default()
        }
    }

    fn refused_field(config: &KafkaConfig) -> &'static str {
        match config.validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_with_servers_are_valid() {
        on().validate().expect("valid");
        let mut consumer = on();
        consumer.consumer.enabled = true;
        consumer.consumer.dead_letter_topic = "backhaul.dead".into();
        consumer.validate().expect("valid");
        assert_eq!(on().checkpoint_name(), "kafka:backhaul.events");
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_field() {
        type Spoil = fn(&mut KafkaConfig);
        let cases: Vec<(&str, Spoil)> = vec![
            ("broker.kafka.bootstrap_servers", |c| {
                c.bootstrap_servers = String::new()
            }),
            ("broker.kafka.bootstrap_servers", |c| {
                c.bootstrap_servers = "kafka:9092,".into()
            }),
            ("broker.kafka.bootstrap_servers", |c| {
                c.bootstrap_servers = "kafka".into()
            }),
            ("broker.kafka.topic", |c| c.topic = "a b".into()),
            ("broker.kafka.topic", |c| c.topic = "..".into()),
            ("broker.kafka.source", |c| c.source = String::new()),
            ("broker.kafka.poll_ms", |c| c.poll_ms = 0),
            ("broker.kafka.batch", |c| c.batch = 0),
            ("broker.kafka.batch", |c| c.batch = 10_001),
            ("broker.kafka.delivery_timeout_ms", |c| {
                c.delivery_timeout_ms = 0
            }),
            ("broker.kafka.client", |c| {
                c.client.insert("acks".into(), "1".into());
            }),
            ("broker.kafka.client", |c| {
                c.client.insert("sasl.password".into(), "hunter2".into());
            }),
            ("broker.kafka.client_env", |c| {
                c.client_env
                    .insert("sasl.password".into(), "NO SUCH VAR".into());
            }),
            ("broker.kafka.client_env", |c| {
                c.client_env.insert(
                    "sasl.password".into(),
                    "BACKHAUL_TEST_SURELY_UNSET_VARIABLE".into(),
                );
            }),
            ("broker.kafka.consumer.topic", |c| {
                c.consumer.enabled = true;
                c.consumer.topic = c.topic.clone();
            }),
            ("broker.kafka.consumer.group_id", |c| {
                c.consumer.enabled = true;
                c.consumer.group_id = " ".into();
            }),
            ("broker.kafka.consumer.source", |c| {
                c.consumer.enabled = true;
                c.consumer.source = String::new();
            }),
            ("broker.kafka.consumer.dead_letter_topic", |c| {
                c.consumer.enabled = true;
                c.consumer.dead_letter_topic = c.consumer.topic.clone();
            }),
        ];
        for (field, spoil) in cases {
            let mut config = on();
            spoil(&mut config);
            assert_eq!(refused_field(&config), field, "{config:?}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let mut config = on();
        config
            .client
            .insert("security.protocol".into(), "SASL_SSL".into());
        // PATH is set wherever tests run; its value stands in for a secret.
        config
            .client_env
            .insert("sasl.password".into(), "PATH".into());
        config.validate().expect("valid");
        let settings = config.passthrough();
        assert!(settings.contains(&("security.protocol".into(), "SASL_SSL".into())));
        assert!(
            settings
                .iter()
                .any(|(k, v)| k == "sasl.password" && !v.is_empty())
        );
    }
}
