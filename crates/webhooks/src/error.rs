//! The one error type for turning untrusted text into this crate's value types.
//!
//! Verification and replay failures have their own enums in their modules because a
//! caller reacts to them differently (reject the request) than to a parse failure
//! (fix the configuration).

/// Why a string could not become a [`crate::Secret`], [`crate::MessageId`],
/// [`crate::EventPattern`], [`crate::EndpointUrl`] or [`crate::Subscription`].
///
/// Messages never repeat the rejected input: it may be a secret, and it may be
/// attacker-controlled text headed for a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A secret must be written `whsec_<base64>` so it is recognisable wherever it is
    /// pasted.
    #[error("a webhook secret must start with `whsec_`")]
    SecretPrefix,
    /// The part after `whsec_` is not standard base64.
    #[error("a webhook secret must be base64 after `whsec_`")]
    SecretEncoding,
    /// The decoded key length is outside what the specification allows.
    #[error("a webhook secret must decode to between {min} and {max} bytes, not {actual}")]
    SecretLength {
        /// The smallest permitted key, in bytes.
        min: usize,
        /// The largest permitted key, in bytes.
        max: usize,
        /// The decoded length of the rejected key.
        actual: usize,
    },
    /// A message id was empty, too long, or held a character that is not allowed.
    #[error("invalid webhook message id: {0}")]
    MessageId(&'static str),
    /// An event pattern was not `*`, an event type, or an event type prefix with `.*`.
    #[error("invalid event pattern: {0}")]
    EventPattern(&'static str),
    /// An endpoint URL was not an absolute http(s) URL.
    #[error("invalid endpoint url: {0}")]
    EndpointUrl(&'static str),
    /// A subscription's fields are individually valid but do not fit together.
    #[error("invalid subscription: {0}")]
    Subscription(&'static str),
}
