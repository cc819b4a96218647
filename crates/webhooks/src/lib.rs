//! Signing and verification of webhooks in the [Standard Webhooks] format, plus the
//! subscriber filters that decide who receives which event.
//!
//! This crate is the pure core: it computes and checks signatures, remembers message
//! ids for replay protection and matches events against subscriptions. It performs no
//! I/O, spawns nothing and never reads the clock; every function that needs "now"
//! takes it as an argument. Delivery, retries with backoff and HTTP plumbing live in
//! the components that use this crate.
//!
//! # Layout
//!
//! - [`secret`]: [`Secret`], the shared HMAC key in its `whsec_<base64>` form, and
//!   [`Secret::from_env`] for keys configured by environment variable name.
//! - [`signature`]: [`MessageId`], [`Signature`], [`sign`] and [`headers`] for an
//!   outbound delivery.
//! - [`verify`]: [`verify()`] for an inbound delivery, the [`HeaderLookup`] trait that
//!   lets any HTTP crate supply headers, and [`Tolerance`].
//! - [`replay`]: [`ReplayWindow`], which refuses a message id seen before.
//! - [`subscription`]: [`Subscription`] config and its [`EventPattern`] filters.
//!
//! # The wire format
//!
//! Three headers travel with every delivery: `webhook-id`, `webhook-timestamp`
//! (integer Unix seconds) and `webhook-signature`. The signed content is
//! `{id}.{timestamp}.{body}` exactly as sent, and each signature is `v1,` followed by
//! the base64 HMAC-SHA256 of that content. The signature header may carry several
//! space-separated signatures so a secret can be rotated without downtime.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

pub mod replay;
pub mod secret;
pub mod signature;
pub mod subscription;
pub mod verify;

/// Errors raised while parsing the crate's value types.
mod error;

pub use error::ParseError;
pub use replay::{ReplayError, ReplayWindow};
pub use secret::{EnvSecretError, Secret};
pub use signature::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MessageId, Signature, headers, sign,
};
pub use subscription::{EndpointUrl, EventPattern, Subscription};
pub use verify::{HeaderLookup, LookupFn, Tolerance, Verified, VerifyError, verify};
