//! The `Idempotency-Key` header and the request hash it is stored with.
//!
//! Every command on a return (each route with `idempotency_key` in the
//! route table) must carry a key (1 to 255 visible ASCII characters) chosen
//! by the partner. Operator actions on deliveries take none: see
//! `routes::v1::deliveries::delivery_id` for why repeating them is safe. The engine stores the key, the hash of the request and the
//! response in the same transaction as the command's events; a retry with
//! the same key and the same request gets the stored response back, with
//! [`REPLAYED_HEADER`] set, and a retry with the same key but a different
//! request is refused (`idempotency_key_reused`). Keys are scoped per
//! partner by the engine.
//!
//! What is hashed: the method, the path (which names the return and the
//! command) and the raw body bytes, so that "the same request" means
//! byte-for-byte the same.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use backhaul_engine::Idempotency;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Set to `true` on a response that is the stored answer to an earlier
/// identical request.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";

const MAX_KEY_LEN: usize = 255;

/// A validated `Idempotency-Key`, with what it will be hashed together with.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKey {
    key: String,
    method: Method,
    path: String,
}

impl IdempotencyKey {
    /// Binds the key to the request body it arrived with.
    pub(crate) fn bind(self, body: &[u8]) -> Idempotency {
        Idempotency {
            request_hash: request_hash(&self.method, &self.path, body),
            key: self.key,
        }
    }
}

/// Hex SHA-256 over method, path and body. The separators keep
/// `("POST", "/a", "b")` and `("POST", "/ab", "")` apart.
pub(crate) fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hex::encode(hasher.finalize())
}

fn parse_key(raw: &[u8]) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::IdempotencyKeyInvalid("must not be empty"));
    }
    if raw.len() > MAX_KEY_LEN {
        return Err(ApiError::IdempotencyKeyInvalid(
            "must be at most 255 characters",
        ));
    }
    if !raw.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::IdempotencyKeyInvalid(
            "only visible ASCII characters are allowed (no spaces)",
        ));
    }
    // All bytes are ASCII, so this cannot fail.
    String::from_utf8(raw.to_vec()).map_err(|_| ApiError::IdempotencyKeyInvalid("must be ASCII"))
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
        let raw = values.next().ok_or(ApiError::IdempotencyKeyMissing)?;
        if values.next().is_some() {
            return Err(ApiError::IdempotencyKeyInvalid("send the header once"));
        }
        Ok(IdempotencyKey {
            key: parse_key(raw.as_bytes())?,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert_eq!(parse_key(b"order-42/retry#1").unwrap(), "order-42/retry#1");
        assert!(parse_key(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"has space",
            b"tab\t",
            "caf\u{e9}".as_bytes(),
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let base = request_hash(&Method::POST, "/v1/returns", b"{}");
        assert_eq!(base, request_hash(&Method::POST, "/v1/returns", b"{}"));
        assert_ne!(base, request_hash(&Method::PUT, "/v1/returns", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/v1/returns/x", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/v1/returns", b"{ }"));
        assert_ne!(
            request_hash(&Method::POST, "/a", b"b"),
            request_hash(&Method::POST, "/ab", b"")
        );
    }
}
