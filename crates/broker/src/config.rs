//! The `[broker]` configuration section, its checks and the connection it
//! describes (shared by the publisher and the consumer). Validation lives
//! here, not in `serve`, so `config check` refuses exactly what `serve`
//! would.

use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// Message brokers the hub publishes its events to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// NATS JetStream; off while its `url` is empty.
    pub nats: NatsConfig,
    /// Kafka; on when the section is present. Parsed even in a hub built
    /// without the `kafka` feature, so that one can say what to do.
    pub kafka: Option<crate::KafkaConfig>,
}

impl BrokerConfig {
    /// Checks every part that is on; an empty `url` with the consumer on is
    /// refused rather than silently leaving the consumer off.
    pub fn validate(&self) -> Result<(), Error> {
        if self.nats.enabled() || self.nats.consumer.enabled {
            self.nats.validate()?;
        }
        if let Some(kafka) = &self.kafka {
            if !cfg!(feature = "kafka") {
                return Err(Error::Config {
                    field: "broker.kafka",
                    reason: "this backhaul was built without Kafka support; build it with `cargo build --features kafka`".into(),
                });
            }
            kafka.validate()?;
        }
        Ok(())
    }
}

/// Publishing the event log to a NATS JetStream stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL (`nats://host:4222` or `tls://host:4222`). Empty turns
    /// publishing off, which is the default: most hubs have no broker.
    pub url: String,
    /// The JetStream stream, created (file storage) if missing. It belongs
    /// to the publisher: its last message is the resume point.
    pub stream: String,
    /// Events go to `{subject_prefix}.{event_type}`; the stream takes
    /// `{subject_prefix}.>`.
    pub subject_prefix: String,
    /// The CloudEvents `source` of every event (a URI reference naming this
    /// hub), so consumers of several hubs can tell them apart.
    pub source: String,
    /// How often the log is looked at for new events, in milliseconds. It
    /// bounds the delay between a commit and its publication.
    pub poll_ms: u64,
    /// Events read from the log per round trip to the store.
    pub batch: usize,
    /// How long JetStream remembers message ids to drop a re-publish, in
    /// seconds. A crash between a publish and its ack re-publishes at once
    /// after the restart, so this only has to cover a restart.
    pub duplicate_window_secs: u64,
    /// Consuming inbound commands from another stream of the same server
    /// (`[broker.nats.consumer]`); off by default.
    pub consumer: ConsumerConfig,
}

/// Consuming inbound commands (CloudEvents whose `type` names a command)
/// from a durable pull consumer on the server of `[broker.nats]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Off by default. On, it needs `broker.nats.url` (which also turns
    /// publishing on: both share the server).
    pub enabled: bool,
    /// The JetStream stream inbound messages are published to, created
    /// (file storage, taking `filter_subject`) if missing. It must not be
    /// the publisher's stream: the hub would consume its own events.
    pub stream: String,
    /// The durable consumer's name, created if missing. Its position on the
    /// server is what survives a restart, so two hubs sharing it share the
    /// work instead of each applying every message.
    pub durable: String,
    /// Only messages on these subjects are consumed (wildcards allowed).
    pub filter_subject: String,
    /// The partner the engine sees as the sender: it scopes the dedup keys
    /// and is what `[engine.ownership] partners` maps to a system.
    pub source: String,
    /// Messages fetched per request to the server.
    pub batch: usize,
    /// How long the server waits for an ack before redelivering, in
    /// seconds. It must cover one command's commit.
    pub ack_wait_secs: u64,
    /// Deliveries of one message before the server gives up on it; only
    /// technical failures are redelivered (a bad message is terminated at
    /// once). -1 is unlimited.
    pub max_deliver: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            stream: "BACKHAUL_INBOUND".into(),
            durable: "backhaul".into(),
            filter_subject: "backhaul.inbound.>".into(),
            source: "nats".into(),
            batch: 100,
            ack_wait_secs: 30,
            max_deliver: 10,
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            stream: "BACKHAUL_EVENTS".into(),
            subject_prefix: "backhaul.events".into(),
            source: "backhaul".into(),
            poll_ms: 200,
            batch: 500,
            duplicate_window_secs: 120,
            consumer: ConsumerConfig::default(),
        }
    }
}

impl NatsConfig {
    /// Whether publishing is on.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Checks what serde cannot. An empty `url` is refused too: call this
    /// only for an enabled publisher.
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        match url::Url::parse(&self.url) {
            Ok(url)
                if matches!(url.scheme(), "nats" | "tls")
                    && url.host_str().is_some_and(|h| !h.is_empty()) => {}
            Ok(_) | Err(_) => {
                return refuse(
                    "broker.nats.url",
                    format!(
                        "{:?} is not a NATS URL like nats://127.0.0.1:4222",
                        self.url
                    ),
                );
            }
        }
        if !is_stream_name(&self.stream) {
            return refuse(
                "broker.nats.stream",
                format!(
                    "{:?} must be a non-empty name without spaces, dots, slashes or wildcards",
                    self.stream
                ),
            );
        }
        if !self.subject_prefix.split('.').all(is_subject_token) {
            return refuse(
                "broker.nats.subject_prefix",
                format!(
                    "{:?} must be dot-separated non-empty tokens without spaces or wildcards",
                    self.subject_prefix
                ),
            );
        }
        if self.source.is_empty() || self.source.chars().any(char::is_whitespace) {
            return refuse(
                "broker.nats.source",
                format!("{:?} must be a non-empty URI reference", self.source),
            );
        }
        if self.poll_ms == 0 {
            return refuse("broker.nats.poll_ms", "must be greater than zero".into());
        }
        if self.batch == 0 {
            return refuse("broker.nats.batch", "must be greater than zero".into());
        }
        if self.duplicate_window_secs == 0 {
            return refuse(
                "broker.nats.duplicate_window_secs",
                "must be greater than zero: the window is what drops a re-publish".into(),
            );
        }
        if self.consumer.enabled {
            self.consumer.validate(&self.stream)?;
        }
        Ok(())
    }

    /// Connects to the server; the publisher and the consumer each hold
    /// their own connection, so a slow one does not hold up the other.
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, Error> {
        async_nats::ConnectOptions::new()
            .name("backhaul")
            .connection_timeout(Duration::from_secs(5))
            .connect(self.url.as_str())
            .await
            .map_err(|e| Error::Connect {
                url: self.url.clone(),
                source: e.into(),
            })
    }
}

impl ConsumerConfig {
    /// Checks what serde cannot; `publisher_stream` is refused as the
    /// consumer's stream.
    fn validate(&self, publisher_stream: &str) -> Result<(), Error> {
        let refuse = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if !is_stream_name(&self.stream) {
            return refuse(
                "broker.nats.consumer.stream",
                format!(
                    "{:?} must be a non-empty name without spaces, dots, slashes or wildcards",
                    self.stream
                ),
            );
        }
        if self.stream == publisher_stream {
            return refuse(
                "broker.nats.consumer.stream",
                format!(
                    "{:?} is the publisher's stream (broker.nats.stream): the hub would consume its own events",
                    self.stream
                ),
            );
        }
        // Consumer names are API subject tokens too.
        if !is_stream_name(&self.durable) {
            return refuse(
                "broker.nats.consumer.durable",
                format!(
                    "{:?} must be a non-empty name without spaces, dots, slashes or wildcards",
                    self.durable
                ),
            );
        }
        if !is_filter_subject(&self.filter_subject) {
            return refuse(
                "broker.nats.consumer.filter_subject",
                format!(
                    "{:?} must be dot-separated non-empty tokens, `*` or a final `>`",
                    self.filter_subject
                ),
            );
        }
        if self.source.trim().is_empty() {
            return refuse(
                "broker.nats.consumer.source",
                "must not be empty: it is the partner the engine sees".into(),
            );
        }
        if self.batch == 0 {
            return refuse(
                "broker.nats.consumer.batch",
                "must be greater than zero".into(),
            );
        }
        if self.ack_wait_secs == 0 {
            return refuse(
                "broker.nats.consumer.ack_wait_secs",
                "must be greater than zero".into(),
            );
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return refuse(
                "broker.nats.consumer.max_deliver",
                format!("{} must be positive, or -1 for unlimited", self.max_deliver),
            );
        }
        Ok(())
    }
}

/// A JetStream stream or consumer name: they become subject tokens of its
/// API (`$JS.API.STREAM.INFO.<name>`), so they cannot hold separators or
/// wildcards.
fn is_stream_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

/// A subject to subscribe to: tokens, `*` for one token, `>` only last.
fn is_filter_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    tokens
        .iter()
        .enumerate()
        .all(|(i, t)| *t == "*" || (*t == ">" && i == last) || is_subject_token(t))
}

/// One token of a NATS subject: not empty, no separator, wildcard or space.
pub(crate) fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> NatsConfig {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            ..NatsConfig::default()
        }
    }

    fn refused_field(config: &NatsConfig) -> &'static str {
        match config.validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_off_and_valid_once_a_url_is_given() {
        assert!(!NatsConfig::default().enabled());
        assert!(enabled().enabled());
        enabled()
            .validate()
            .expect("the defaults with a URL are valid");
        let tls = NatsConfig {
            url: "tls://nats.example:4222".into(),
            ..NatsConfig::default()
        };
        tls.validate().expect("tls:// is a NATS URL");
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_field() {
        type Spoil = fn(&mut NatsConfig);
        let cases: Vec<(&str, Spoil)> = vec![
            ("broker.nats.url", |c| {
                c.url = "http://127.0.0.1:4222".into()
            }),
            ("broker.nats.url", |c| c.url = "127.0.0.1:4222".into()),
            ("broker.nats.url", |c| c.url = "nats://".into()),
            ("broker.nats.stream", |c| c.stream = String::new()),
            ("broker.nats.stream", |c| c.stream = "a.b".into()),
            ("broker.nats.subject_prefix", |c| {
                c.subject_prefix = String::new()
            }),
            ("broker.nats.subject_prefix", |c| {
                c.subject_prefix = "a..b".into()
            }),
            ("broker.nats.subject_prefix", |c| {
                c.subject_prefix = "a.>".into()
            }),
            ("broker.nats.source", |c| c.source = "my hub".into()),
            ("broker.nats.poll_ms", |c| c.poll_ms = 0),
            ("broker.nats.batch", |c| c.batch = 0),
            ("broker.nats.duplicate_window_secs", |c| {
                c.duplicate_window_secs = 0
            }),
            ("broker.nats.consumer.stream", |c| {
                c.consumer.enabled = true;
                c.consumer.stream = "a b".into();
            }),
            ("broker.nats.consumer.stream", |c| {
                c.consumer.enabled = true;
                c.consumer.stream = c.stream.clone();
            }),
            ("broker.nats.consumer.durable", |c| {
                c.consumer.enabled = true;
                c.consumer.durable = "a.b".into();
            }),
            ("broker.nats.consumer.filter_subject", |c| {
                c.consumer.enabled = true;
                c.consumer.filter_subject = "a.>.b".into();
            }),
            ("broker.nats.consumer.filter_subject", |c| {
                c.consumer.enabled = true;
                c.consumer.filter_subject = String::new();
            }),
            ("broker.nats.consumer.source", |c| {
                c.consumer.enabled = true;
                c.consumer.source = " ".into();
            }),
            ("broker.nats.consumer.batch", |c| {
                c.consumer.enabled = true;
                c.consumer.batch = 0;
            }),
            ("broker.nats.consumer.ack_wait_secs", |c| {
                c.consumer.enabled = true;
                c.consumer.ack_wait_secs = 0;
            }),
            ("broker.nats.consumer.max_deliver", |c| {
                c.consumer.enabled = true;
                c.consumer.max_deliver = 0;
            }),
        ];
        for (field, spoil) in cases {
            let mut config = enabled();
            spoil(&mut config);
            assert_eq!(refused_field(&config), field, "{config:?}");
        }
    }

    #[test]
    fn the_consumer_is_off_by_default_and_checked_only_when_on() {
        let off = NatsConfig {
            consumer: ConsumerConfig {
                batch: 0,
                ..ConsumerConfig::default()
            },
            ..enabled()
        };
        off.validate().expect("an off consumer is not checked");
        let mut on = enabled();
        on.consumer.enabled = true;
        on.validate().expect("the consumer's defaults are valid");
        on.consumer.filter_subject = "partners.*.commands".into();
        on.validate().expect("`*` is a wildcard token");
        // On without a server URL: refused, not silently off.
        let broker = BrokerConfig {
            nats: NatsConfig {
                url: String::new(),
                ..on
            },
            kafka: None,
        };
        match broker.validate() {
            Err(Error::Config { field, .. }) => assert_eq!(field, "broker.nats.url"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        BrokerConfig::default()
            .validate()
            .expect("all off is valid");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<BrokerConfig, _> =
            toml::from_str("[nats]\nurl = \"nats://x:4222\"\nstreem = \"X\"\n");
        let err = parsed.expect_err("a misspelt key must not be ignored");
        assert!(err.to_string().contains("streem"), "{err}");
        let parsed: Result<BrokerConfig, _> =
            toml::from_str("[nats.consumer]\nenabled = true\nduarble = \"x\"\n");
        let err = parsed.expect_err("a misspelt consumer key must not be ignored");
        assert!(err.to_string().contains("duarble"), "{err}");
    }
}

#[cfg(test)]
mod kafka_section_tests {
    use super::*;

    #[test]
    fn a_kafka_section_is_parsed_and_refused_without_the_feature() {
        let parsed: BrokerConfig =
            toml::from_str("[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n").expect("parses");
        let result = parsed.validate();
        if cfg!(feature = "kafka") {
            result.expect("valid with the feature");
        } else {
            let err = result.expect_err("refused without the feature").to_string();
            assert!(err.contains("--features kafka"), "{err}");
        }
        let misspelt: Result<BrokerConfig, _> =
            toml::from_str("[kafka]\nbootstrap_server = \"x:1\"\n");
        let err = misspelt.expect_err("a misspelt key must not be ignored");
        assert!(err.to_string().contains("bootstrap_server"), "{err}");
    }
}
