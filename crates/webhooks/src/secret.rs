//! The shared HMAC key, in the `whsec_<base64>` form the specification prescribes.
//!
//! What lives here: parsing, generation and the redacting `Debug`. What does not:
//! storage or encryption at rest of secrets, which belongs to the store.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::{CryptoRng, RngCore};
use std::fmt;

use crate::ParseError;

/// The prefix that marks a symmetric Standard Webhooks secret.
const PREFIX: &str = "whsec_";

/// The specification asks for at least 24 random bytes (192 bits).
pub const MIN_LEN: usize = 24;

/// The specification caps symmetric keys at 512 bits. It is also the SHA-256 block
/// size, which [`Secret::hmac_key`] relies on.
pub const MAX_LEN: usize = 64;

/// The size of a freshly generated key: 256 bits, comfortably above the minimum.
const GENERATED_LEN: usize = 32;

/// Standard base64 that accepts the key with or without `=` padding, because
/// producers differ on padding and a secret pasted without it is still the same key.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A symmetric webhook signing key of 24 to 64 bytes.
///
/// `Debug` prints no key material, so a `Secret` can sit inside a config struct that
/// is logged. There is deliberately no `Display` and no `Serialize`: the only way to
/// see the key is [`Secret::expose_whsec`], which is easy to find in review.
#[derive(Clone)]
pub struct Secret {
    /// The decoded key bytes; the length invariant is upheld by every constructor.
    bytes: Vec<u8>,
}

impl Secret {
    /// Parses `whsec_<base64>`, checking the decoded length against the specification.
    ///
    /// # Errors
    ///
    /// [`ParseError::SecretPrefix`], [`ParseError::SecretEncoding`] or
    /// [`ParseError::SecretLength`].
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(ParseError::SecretPrefix)?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| ParseError::SecretEncoding)?;
        if !(MIN_LEN..=MAX_LEN).contains(&bytes.len()) {
            return Err(ParseError::SecretLength {
                min: MIN_LEN,
                max: MAX_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self { bytes })
    }

    /// Draws a new 32-byte key from the caller's cryptographic RNG, so tests can pass
    /// a seeded one and production passes the operating system's.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = vec![0_u8; GENERATED_LEN];
        rng.fill_bytes(&mut bytes);
        Self { bytes }
    }

    /// The key in its `whsec_<base64>` form, for showing once to the subscriber.
    #[must_use]
    pub fn expose_whsec(&self) -> String {
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }

    /// The key zero-padded to the SHA-256 block size.
    ///
    /// HMAC pads any key shorter than the block with zeros (RFC 2104, step 1), so this
    /// is the same key the algorithm would use. Handing the padded block to
    /// `Hmac::new` avoids the fallible `new_from_slice`, whose error cannot happen
    /// here but would otherwise need an `unwrap`.
    pub(crate) fn hmac_key(&self) -> [u8; MAX_LEN] {
        let mut block = [0_u8; MAX_LEN];
        for (slot, byte) in block.iter_mut().zip(&self.bytes) {
            *slot = *byte;
        }
        block
    }
}

/// Why [`Secret::from_env`] found no secret. Messages name the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvSecretError {
    /// The configured name cannot be an environment variable.
    #[error("{0:?} is not an environment variable name")]
    InvalidName(String),
    /// The variable is not set.
    #[error("the environment variable {0} is not set")]
    NotSet(String),
    /// The variable holds something that is not a secret.
    #[error("the environment variable {variable} holds no valid secret: {reason}")]
    Invalid {
        /// The variable read.
        variable: String,
        /// Why its value is not a secret.
        reason: ParseError,
    },
}

impl Secret {
    /// Reads the secret held by the environment variable `variable`, through `lookup`.
    ///
    /// Configuration names the variable rather than holding the key, so the key never
    /// sits in a file. `lookup` is the process environment in production and a map in
    /// tests, which keeps this crate free of I/O. Surrounding whitespace (a trailing
    /// newline from a secrets file) is ignored.
    ///
    /// # Errors
    ///
    /// [`EnvSecretError`], naming the variable.
    pub fn from_env(
        variable: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvSecretError> {
        if variable.is_empty() || variable.contains(['=', '\0']) {
            return Err(EnvSecretError::InvalidName(variable.to_owned()));
        }
        let value = lookup(variable).ok_or_else(|| EnvSecretError::NotSet(variable.to_owned()))?;
        Self::parse(value.trim()).map_err(|reason| EnvSecretError::Invalid {
            variable: variable.to_owned(),
            reason,
        })
    }
}

/// Compares in constant time, so equality checks on key material cannot leak a prefix.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.bytes.as_slice().ct_eq(other.bytes.as_slice()))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
