//! The `[broker]` configuration section and its checks. Validation lives
//! here, not in `serve`, so `config check` refuses exactly what `serve`
//! would.

use serde::Deserialize;

use crate::Error;

/// Message brokers the hub publishes its events to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// NATS JetStream; off while its `url` is empty.
    pub nats: NatsConfig,
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
        // JetStream stream names become subject tokens of its API
        // (`$JS.API.STREAM.INFO.<name>`), so they cannot hold separators or
        // wildcards.
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
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
        Ok(())
    }
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
        ];
        for (field, spoil) in cases {
            let mut config = enabled();
            spoil(&mut config);
            assert_eq!(refused_field(&config), field, "{config:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<BrokerConfig, _> =
            toml::from_str("[nats]\nurl = \"nats://x:4222\"\nstreem = \"X\"\n");
        let err = parsed.expect_err("a misspelt key must not be ignored");
        assert!(err.to_string().contains("streem"), "{err}");
    }
}
