//! Producing signatures and headers for an outbound delivery.
//!
//! What lives here: the [`MessageId`] newtype, the [`Signature`] value, [`sign`] and
//! [`headers`]. What does not: sending the request or scheduling retries. A retry
//! keeps its [`MessageId`] but is signed again with the time of the new attempt,
//! because the receiver's tolerance window is measured from the attempt.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _, digest::KeyInit};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq as _;

use crate::{ParseError, Secret};

/// The header carrying the message id, which stays the same across retries.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt time as integer Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The version tag of a symmetric HMAC-SHA256 signature.
pub(crate) const VERSION: &str = "v1";

/// Ids longer than this are refused; real ids are a few dozen characters and an
/// unbounded id would let a sender grow the replay window's memory at will.
const MAX_ID_LEN: usize = 256;

/// The unique id of a webhook message, used by receivers as an idempotency key.
///
/// It is visible ASCII without `.`: the specification forbids the full stop because
/// the signed content joins id, timestamp and body with full stops, and an id holding
/// one would let a signature be re-read with a different timestamp and body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// Checks that `text` is 1 to 256 visible ASCII characters other than `.`.
    ///
    /// # Errors
    ///
    /// [`ParseError::MessageId`] naming the broken rule.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_reason(text).map_err(ParseError::MessageId)
    }

    /// [`MessageId::parse`] with the bare reason, for callers that wrap it in their
    /// own error type.
    pub(crate) fn parse_reason(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("it is empty");
        }
        if text.len() > MAX_ID_LEN {
            return Err("it is longer than 256 characters");
        }
        if text.contains('.') {
            return Err("it contains `.`");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("it contains whitespace, control or non-ASCII characters");
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as sent in the `webhook-id` header.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One HMAC-SHA256 signature; it displays as `v1,<base64>`, the header form.
#[derive(Clone, Copy)]
pub struct Signature([u8; 32]);

impl Signature {
    /// The raw 32-byte MAC.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Compares in constant time: a verifier that compared byte by byte and stopped early
/// would tell an attacker how much of a forged signature was right.
impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Signature {}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION},{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }
}

/// Signs one delivery attempt with one secret.
///
/// The timestamp is truncated to whole seconds because that is what the
/// `webhook-timestamp` header carries and what the receiver will sign in turn.
#[must_use]
pub fn sign(secret: &Secret, id: &MessageId, timestamp: DateTime<Utc>, body: &[u8]) -> Signature {
    sign_raw(
        secret,
        id.as_str(),
        &timestamp.timestamp().to_string(),
        body,
    )
}

/// Signs `{id}.{timestamp}.{body}` with the header texts exactly as they travel, which
/// is what the verifier must do too: re-formatting a received timestamp (say, one with
/// leading zeros) would change the signed bytes.
pub(crate) fn sign_raw(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> Signature {
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&secret.hmac_key().into());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Signature(mac.finalize().into_bytes().into())
}

/// The three headers of one outbound attempt.
///
/// The body is signed with `secret` and then with each of `previous`, in that order,
/// so that during a rotation a receiver that still holds an old secret keeps
/// accepting deliveries. Taking the current secret separately makes an attempt with
/// no signature at all impossible to express.
#[must_use]
pub fn headers(
    secret: &Secret,
    previous: &[Secret],
    id: &MessageId,
    timestamp: DateTime<Utc>,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let seconds = timestamp.timestamp().to_string();
    let signatures = std::iter::once(secret)
        .chain(previous)
        .map(|key| sign_raw(key, id.as_str(), &seconds, body).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    [
        (HEADER_ID, id.as_str().to_owned()),
        (HEADER_TIMESTAMP, seconds),
        (HEADER_SIGNATURE, signatures),
    ]
}
