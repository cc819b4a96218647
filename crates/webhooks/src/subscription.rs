//! Who receives which outbound webhook: subscriptions and their event filters.
//!
//! What lives here: the [`Subscription`] config (endpoint, secrets, filters) and
//! [`Subscription::matches`]. What does not: storing subscriptions or fanning events
//! out to them, which the delivery component does with this as its predicate.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::fmt;

use crate::{MessageId, ParseError, Secret};

/// URLs longer than this are refused; browsers and proxies commonly cap around 2 KiB.
const MAX_URL_LEN: usize = 2048;

/// An absolute `http://` or `https://` URL to deliver to.
///
/// Only the shape is checked here. Whether the host may be called at all (the
/// specification warns about server-side request forgery) is a policy for the
/// component that sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    /// Checks for an http(s) scheme, a non-empty host and no whitespace or controls.
    ///
    /// # Errors
    ///
    /// [`ParseError::EndpointUrl`] naming the broken rule.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_URL_LEN {
            return Err(ParseError::EndpointUrl("it is longer than 2048 characters"));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or(ParseError::EndpointUrl(
                "it must start with https:// or http://",
            ))?;
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::EndpointUrl(
                "it contains whitespace, control or non-ASCII characters",
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(ParseError::EndpointUrl("it has no host"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The URL as configured.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EndpointUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which event types a subscription wants.
///
/// Event types are full-stop separated segments of `[A-Za-z0-9_]`, as the
/// specification recommends, for example `return.status_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventPattern {
    /// `*`: every event type.
    Any,
    /// `return.status_changed`: exactly this type.
    Exact(String),
    /// `return.*`: every type below `return.`, at any depth. Stored with its trailing
    /// full stop, so `return.*` does not match `returns.x` nor `return` itself.
    Prefix(String),
}

impl EventPattern {
    /// Parses `*`, an event type, or an event type followed by `.*`.
    ///
    /// # Errors
    ///
    /// [`ParseError::EventPattern`] naming the broken rule.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        if let Some(stem) = text.strip_suffix(".*") {
            check_event_type(stem)?;
            return Ok(Self::Prefix(format!("{stem}.")));
        }
        check_event_type(text)?;
        Ok(Self::Exact(text.to_owned()))
    }

    /// Whether `event_type` is selected by this pattern.
    #[must_use]
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(wanted) => wanted == event_type,
            Self::Prefix(stem) => event_type
                .strip_prefix(stem.as_str())
                .is_some_and(|rest| !rest.is_empty()),
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(wanted) => f.write_str(wanted),
            Self::Prefix(stem) => write!(f, "{stem}*"),
        }
    }
}

impl<'de> Deserialize<'de> for EventPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn check_event_type(text: &str) -> Result<(), ParseError> {
    if text.is_empty() {
        return Err(ParseError::EventPattern("it is empty"));
    }
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if text.split('.').all(segment_ok) {
        Ok(())
    } else {
        Err(ParseError::EventPattern(
            "segments must be non-empty [A-Za-z0-9_] separated by `.`, with `*` only as `.*` at the end",
        ))
    }
}

/// The config of one subscription as written in a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionConfig {
    /// Where deliveries are POSTed.
    url: EndpointUrl,
    /// The secret every delivery is signed with.
    secret: Secret,
    /// Secrets being rotated out; deliveries are also signed with these until the
    /// subscriber confirms the new one, so no delivery fails during the switch.
    #[serde(default)]
    previous_secrets: Vec<Secret>,
    /// The event types to deliver; at least one. Use `["*"]` for everything.
    event_types: Vec<EventPattern>,
    /// If set, only events carrying one of these statuses are delivered; absent means
    /// any status, including events that have none.
    #[serde(default)]
    statuses: Option<Vec<String>>,
}

/// One subscriber endpoint with the events it wants and the secrets to sign with.
///
/// Deserialized from config with unknown fields refused, so a misspelt `statuses`
/// fails loudly instead of silently delivering everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "SubscriptionConfig")]
pub struct Subscription {
    /// See [`SubscriptionConfig::url`].
    url: EndpointUrl,
    /// See [`SubscriptionConfig::secret`].
    secret: Secret,
    /// See [`SubscriptionConfig::previous_secrets`].
    previous_secrets: Vec<Secret>,
    /// Never empty: a subscription that can match nothing is a configuration mistake.
    event_types: Vec<EventPattern>,
    /// `None` for any status; never `Some` of an empty list, which would match nothing.
    statuses: Option<Vec<String>>,
}

impl TryFrom<SubscriptionConfig> for Subscription {
    type Error = ParseError;

    fn try_from(config: SubscriptionConfig) -> Result<Self, Self::Error> {
        Self::new(
            config.url,
            config.secret,
            config.previous_secrets,
            config.event_types,
            config.statuses,
        )
    }
}

impl Subscription {
    /// Builds a subscription, refusing filters that could never match.
    ///
    /// # Errors
    ///
    /// [`ParseError::Subscription`] if `event_types` is empty, or `statuses` is an
    /// empty list or holds an empty string.
    pub fn new(
        url: EndpointUrl,
        secret: Secret,
        previous_secrets: Vec<Secret>,
        event_types: Vec<EventPattern>,
        statuses: Option<Vec<String>>,
    ) -> Result<Self, ParseError> {
        if event_types.is_empty() {
            return Err(ParseError::Subscription(
                "event_types must list at least one pattern; use \"*\" for all",
            ));
        }
        if let Some(list) = &statuses {
            if list.is_empty() {
                return Err(ParseError::Subscription(
                    "statuses must not be empty; leave it out to accept any status",
                ));
            }
            if list.iter().any(String::is_empty) {
                return Err(ParseError::Subscription("statuses must not contain \"\""));
            }
        }
        Ok(Self {
            url,
            secret,
            previous_secrets,
            event_types,
            statuses,
        })
    }

    /// Whether an event of `event_type`, carrying `status` if it has one, should be
    /// delivered to this subscriber. Status comparison is exact and case-sensitive.
    #[must_use]
    pub fn matches(&self, event_type: &str, status: Option<&str>) -> bool {
        let type_ok = self
            .event_types
            .iter()
            .any(|pattern| pattern.matches(event_type));
        let status_ok = match (&self.statuses, status) {
            (None, _) => true,
            (Some(wanted), Some(status)) => wanted.iter().any(|w| w == status),
            (Some(_), None) => false,
        };
        type_ok && status_ok
    }

    /// The three signed headers for one delivery attempt to this subscriber.
    #[must_use]
    pub fn headers(
        &self,
        id: &MessageId,
        timestamp: DateTime<Utc>,
        body: &[u8],
    ) -> [(&'static str, String); 3] {
        crate::headers(&self.secret, &self.previous_secrets, id, timestamp, body)
    }

    /// Where deliveries go.
    #[must_use]
    pub fn url(&self) -> &EndpointUrl {
        &self.url
    }

    /// The event type patterns, never empty.
    #[must_use]
    pub fn event_types(&self) -> &[EventPattern] {
        &self.event_types
    }

    /// The status filter, `None` meaning any.
    #[must_use]
    pub fn statuses(&self) -> Option<&[String]> {
        self.statuses.as_deref()
    }
}
