//! Verifying an inbound delivery: headers present, timestamp fresh, signature valid.
//!
//! What lives here: [`verify()`], its [`VerifyError`], the [`Tolerance`] window and the
//! [`HeaderLookup`] trait that keeps this crate independent of any HTTP library. What
//! does not: refusing a message id seen before, which needs memory and lives in
//! [`crate::replay`].

use base64::Engine as _;
use chrono::{DateTime, Utc};
use std::fmt;
use std::marker::PhantomData;

use crate::signature::{VERSION, sign_raw};
use crate::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MessageId, Secret, Signature};

/// Timestamps with more digits than this cannot be a date chrono represents; refusing
/// them early keeps parsing cheap whatever a sender puts in the header.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// How far a delivery's timestamp may be from the receiver's clock, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tolerance(u32);

impl Tolerance {
    /// The specification's reference libraries use five minutes.
    pub const DEFAULT: Self = Self(5 * 60);

    /// A window of `seconds` either side of now.
    #[must_use]
    pub const fn from_seconds(seconds: u32) -> Self {
        Self(seconds)
    }

    /// The window in seconds.
    #[must_use]
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// Where [`verify()`] reads request headers from.
///
/// Implemented for slices and arrays of name/value pairs (matched case-insensitively,
/// as HTTP header names are) and, through [`LookupFn`], for any closure, so an `http`
/// or `axum` request can be adapted in one line.
pub trait HeaderLookup {
    /// The first value of the header `name` (given in lower case), if present.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

/// Adapts a closure to [`HeaderLookup`], for example
/// `LookupFn::new(|name| request.headers().get(name)?.to_str().ok())`.
///
/// The lifetime ties the returned values to whatever the closure borrows (usually the
/// request), which a bare closure impl could not express.
pub struct LookupFn<'a, F> {
    /// The lookup, called with lower-case header names.
    lookup: F,
    /// Records that the closure hands out `&'a str`.
    _borrow: PhantomData<&'a str>,
}

impl<'a, F> LookupFn<'a, F>
where
    F: Fn(&str) -> Option<&'a str>,
{
    /// Wraps `lookup`.
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            _borrow: PhantomData,
        }
    }
}

impl<'a, F> HeaderLookup for LookupFn<'a, F>
where
    F: Fn(&str) -> Option<&'a str>,
{
    fn header(&self, name: &str) -> Option<&str> {
        (self.lookup)(name)
    }
}

/// What a successful verification establishes about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's message id; use it as the idempotency key.
    pub id: MessageId,
    /// The attempt time the sender signed.
    pub timestamp: DateTime<Utc>,
}

/// Why an inbound delivery was refused.
///
/// Messages quote no header content: it is attacker-controlled and would end up in
/// logs. Every variant means "answer 4xx and do not process".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The receiver was configured without any secret, so nothing could ever match.
    #[error("no webhook secret is configured to verify against")]
    NoSecrets,
    /// One of the three required headers is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// The `webhook-id` header is not a valid message id.
    #[error("malformed `webhook-id` header: {0}")]
    MalformedId(&'static str),
    /// The `webhook-timestamp` header is not integer Unix seconds in chrono's range.
    #[error("malformed `webhook-timestamp` header: expected integer Unix seconds")]
    MalformedTimestamp,
    /// The delivery is older than the tolerance allows: possibly a replay.
    #[error("message timestamp {timestamp} is too old: now is {now}, tolerance is {tolerance}")]
    TooOld {
        /// The signed attempt time.
        timestamp: DateTime<Utc>,
        /// The receiver's clock.
        now: DateTime<Utc>,
        /// The window that was exceeded.
        tolerance: Tolerance,
    },
    /// The delivery claims a time further ahead than the tolerance allows.
    #[error(
        "message timestamp {timestamp} is too far in the future: now is {now}, tolerance is {tolerance}"
    )]
    TooNew {
        /// The signed attempt time.
        timestamp: DateTime<Utc>,
        /// The receiver's clock.
        now: DateTime<Utc>,
        /// The window that was exceeded.
        tolerance: Tolerance,
    },
    /// At least one well-formed `v1` signature was present and none matched a secret.
    #[error("no signature matches any configured secret")]
    NoMatchingSignature,
    /// No entry was a well-formed `v1` signature and at least one was malformed (or the
    /// header was blank); `position` is the first bad entry, counted from 0.
    #[error("malformed `webhook-signature` entry at position {position}")]
    MalformedSignature {
        /// The zero-based index of the first malformed space-separated entry.
        position: usize,
    },
}

/// Verifies an inbound delivery against the receiver's secrets.
///
/// `secrets` holds every secret currently accepted, so a sender can rotate keys: a
/// delivery passes if any of its signatures matches any of them. The timestamp must
/// be within `tolerance` of `now`, inclusive at both ends; `now` is taken in whole
/// seconds because that is the header's resolution.
///
/// Entries with another version tag (such as `v1a`, asymmetric) are skipped so a
/// sender may add schemes without breaking this receiver. The timestamp is checked
/// before any HMAC is computed, so stale or garbage requests cost almost nothing.
///
/// # Errors
///
/// See [`VerifyError`]; no header content can make this function panic.
pub fn verify<H: HeaderLookup + ?Sized>(
    secrets: &[Secret],
    headers: &H,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Tolerance,
) -> Result<Verified, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let id_text = required(headers, HEADER_ID)?;
    let timestamp_text = required(headers, HEADER_TIMESTAMP)?;
    let signature_text = required(headers, HEADER_SIGNATURE)?;

    let id = MessageId::parse_reason(id_text).map_err(VerifyError::MalformedId)?;
    let timestamp = parse_timestamp(timestamp_text)?;
    check_freshness(timestamp, now, tolerance)?;

    // One MAC per secret, not per entry, so a header stuffed with entries costs only
    // base64 decoding.
    let expected: Vec<Signature> = secrets
        .iter()
        .map(|secret| sign_raw(secret, id_text, timestamp_text, body))
        .collect();

    let mut first_malformed = None;
    let mut saw_v1 = false;
    let mut saw_any = false;
    for (position, entry) in signature_text.split(' ').enumerate() {
        saw_any |= !entry.is_empty();
        match classify(entry) {
            Entry::Skip => {}
            Entry::Malformed => {
                first_malformed.get_or_insert(position);
            }
            Entry::V1(decoded) => {
                saw_v1 = true;
                let candidate = decoded.unwrap_or_default();
                // Every expected signature is compared, matched or not, so timing does
                // not reveal which secret matched.
                let matched = expected.iter().fold(false, |found, mac| {
                    found | constant_time_eq(mac, &candidate)
                });
                if matched {
                    return Ok(Verified { id, timestamp });
                }
            }
        }
    }
    match first_malformed {
        Some(position) if !saw_v1 => Err(VerifyError::MalformedSignature { position }),
        // A present but blank header holds no signature at all, which is a malformed
        // header rather than a signature that failed to match.
        None if !saw_any => Err(VerifyError::MalformedSignature { position: 0 }),
        Some(_) | None => Err(VerifyError::NoMatchingSignature),
    }
}

/// Reads a header that must be present, trimming the whitespace HTTP allows around it.
fn required<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    headers
        .header(name)
        .map(|value| value.trim_matches(|c: char| c == ' ' || c == '\t'))
        .ok_or(VerifyError::MissingHeader(name))
}

/// Parses integer Unix seconds: ASCII digits only, no sign, no fraction.
fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, VerifyError> {
    if text.is_empty()
        || text.len() > MAX_TIMESTAMP_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VerifyError::MalformedTimestamp);
    }
    let seconds: i64 = text.parse().map_err(|_| VerifyError::MalformedTimestamp)?;
    DateTime::from_timestamp(seconds, 0).ok_or(VerifyError::MalformedTimestamp)
}

/// Refuses timestamps more than `tolerance` seconds either side of `now`.
fn check_freshness(
    timestamp: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Tolerance,
) -> Result<(), VerifyError> {
    let skew = timestamp.timestamp().saturating_sub(now.timestamp());
    let limit = i64::from(tolerance.seconds());
    if skew < -limit {
        Err(VerifyError::TooOld {
            timestamp,
            now,
            tolerance,
        })
    } else if skew > limit {
        Err(VerifyError::TooNew {
            timestamp,
            now,
            tolerance,
        })
    } else {
        Ok(())
    }
}

/// One space-separated entry of the signature header, sorted by what to do with it.
enum Entry {
    /// A well-formed entry of a scheme this receiver does not check, or an empty one
    /// left by doubled spaces.
    Skip,
    /// Not `version,payload` with both parts non-empty.
    Malformed,
    /// A `v1` signature, decoded if it is canonical base64. Anything else in a `v1`
    /// entry cannot match, and is counted as a wrong signature rather than a malformed
    /// one, as the reference libraries (which compare the encoded text) do.
    V1(Option<Vec<u8>>),
}

fn classify(entry: &str) -> Entry {
    if entry.is_empty() {
        return Entry::Skip;
    }
    let Some((version, payload)) = entry.split_once(',') else {
        return Entry::Malformed;
    };
    if version.is_empty() || payload.is_empty() {
        return Entry::Malformed;
    }
    if version != VERSION {
        return Entry::Skip;
    }
    // Strict, padded base64: a signature has exactly one spelling, as when it is
    // compared as text.
    Entry::V1(
        base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok(),
    )
}

fn constant_time_eq(expected: &Signature, candidate: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    // `ct_eq` on slices of different lengths returns false without comparing, and the
    // length of a signature is public anyway.
    bool::from(expected.as_bytes().as_slice().ct_eq(candidate))
}
