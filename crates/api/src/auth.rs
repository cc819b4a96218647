//! API keys: scopes, key generation (also used by the CLI's `backhaul keys`),
//! and authentication of requests.
//!
//! A token is `bh_<key_id>_<secret>`: `key_id` is 12 lowercase hex
//! characters and public (it is how the store finds the key and how logs
//! name it); `secret` is 32 random bytes as 64 hex characters and is shown
//! once, at creation. The store keeps only the SHA-256 of the secret.
//!
//! Every route but `/health` and the webhook receiver (authenticated by its
//! Standard Webhooks signature, see `crate::webhooks`) passes through
//! [`guard`], which authenticates the bearer token, checks the route's scope
//! and leaves the [`Principal`] in the request's extensions for handlers to
//! extract. Which route needs which scope is written once, in the route
//! table (`routes`).

use std::fmt;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use backhaul_store::{ApiKeyRecord, EventStore};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// What an API key may do. `Admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Open returns (`POST /v1/returns`).
    ReturnsCreate,
    /// Read returns, their timelines and the backlog.
    ReturnsRead,
    /// Approve, hold or reject returns.
    ReturnsDecide,
    /// Issue labels and record carrier milestones.
    CarrierWrite,
    /// Record receipts, inspections and dispositions.
    WarehouseWrite,
    /// Link financial documents, record settlements, close returns.
    FinanceWrite,
    /// Cancel or expire returns.
    ReturnsCancel,
    /// See the outbound deliveries (the exception queue) and retry, skip or
    /// cancel them.
    DeliveriesManage,
    /// Correct governed attributes of a line (price, tax, intent); the
    /// configured owner of each attribute is checked as well.
    ReturnsCorrect,
    /// Load master data (SKUs, customers, orders, crosswalks…).
    MasterWrite,
    /// Ask whether a return would be eligible, without opening one.
    EligibilityCheck,
    /// Everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 12] = [
        Scope::ReturnsCreate,
        Scope::ReturnsRead,
        Scope::ReturnsDecide,
        Scope::CarrierWrite,
        Scope::WarehouseWrite,
        Scope::FinanceWrite,
        Scope::ReturnsCancel,
        Scope::DeliveriesManage,
        Scope::ReturnsCorrect,
        Scope::MasterWrite,
        Scope::EligibilityCheck,
        Scope::Admin,
    ];

    /// The scope's name as stored and as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReturnsCreate => "returns:create",
            Scope::ReturnsRead => "returns:read",
            Scope::ReturnsDecide => "returns:decide",
            Scope::CarrierWrite => "carrier:write",
            Scope::WarehouseWrite => "warehouse:write",
            Scope::FinanceWrite => "finance:write",
            Scope::ReturnsCancel => "returns:cancel",
            Scope::DeliveriesManage => "deliveries:manage",
            Scope::ReturnsCorrect => "returns:correct",
            Scope::MasterWrite => "master:write",
            Scope::EligibilityCheck => "eligibility:check",
            Scope::Admin => "admin",
        }
    }

    /// Every scope's name, comma-separated, for messages and documentation.
    pub fn names() -> String {
        Scope::ALL.map(Scope::as_str).join(", ")
    }

    /// Parses a scope name such as `returns:read`.
    pub fn parse(raw: &str) -> Result<Scope, KeyError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| KeyError::UnknownScope(raw.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

/// Why a key could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid partner name {0:?}: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    InvalidPartner(String),
    #[error("unknown scope {0:?}; known scopes: {known}", known = Scope::names())]
    UnknownScope(String),
    #[error("a key needs at least one scope")]
    NoScopes,
}

const TOKEN_PREFIX: &str = "bh_";
const KEY_ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// Creates a new API key for `partner`. Returns the token (shown to the
/// operator once, never stored) and the record to store.
pub fn generate_key(
    partner: &str,
    scopes: &[Scope],
    now: DateTime<Utc>,
) -> Result<(String, ApiKeyRecord), KeyError> {
    let partner_ok = (1..=64).contains(&partner.len())
        && partner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !partner_ok {
        return Err(KeyError::InvalidPartner(partner.to_owned()));
    }
    if scopes.is_empty() {
        return Err(KeyError::NoScopes);
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();

    let mut key_id = [0u8; KEY_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut key_id);
    OsRng.fill_bytes(&mut secret);
    let key_id = hex::encode(key_id);
    let secret = hex::encode(secret);
    let token = format!("{TOKEN_PREFIX}{key_id}_{secret}");
    let record = ApiKeyRecord {
        key_id,
        partner: partner.to_owned(),
        secret_hash: hash_secret(&secret),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at: now,
        revoked_at: None,
    };
    Ok((token, record))
}

/// Hex SHA-256 of a token's secret.
///
/// A plain hash, not a slow password KDF (argon2, bcrypt): those exist to
/// make guessing low-entropy human passwords expensive, but the secret is
/// 256 bits from the OS's random generator, so there is nothing to guess
/// faster, and a fast hash keeps authentication off the request's critical
/// path.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits a token into key id and secret, or `None` if it is not shaped
/// like one of ours.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (key_id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let shaped = key_id.len() == KEY_ID_BYTES * 2
        && secret.len() == SECRET_BYTES * 2
        && lower_hex(key_id)
        && lower_hex(secret);
    shaped.then_some((key_id, secret))
}

/// The authenticated caller: the partner who owns the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's owner; commands are recorded and idempotency keys scoped
    /// under this name.
    pub partner: String,
    /// The public part of the key, for logs.
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether the key has `scope`, directly or through `admin`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

const UNAUTHENTICATED: &str =
    "a valid API key is required: send `Authorization: Bearer bh_<key_id>_<secret>`";

/// Authenticates the request's bearer token against the store.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthenticated(UNAUTHENTICATED))?;
    let (key_id, secret) = parse_token(token).ok_or(ApiError::Unauthenticated(UNAUTHENTICATED))?;
    let record = state
        .engine
        .store()
        .find_api_key(key_id)
        .await?
        .filter(|r| r.revoked_at.is_none())
        .ok_or(ApiError::Unauthenticated(UNAUTHENTICATED))?;
    // Constant time, so response timing tells nothing about how much of a
    // guessed secret's hash matched.
    let matches: bool = hash_secret(secret)
        .as_bytes()
        .ct_eq(record.secret_hash.as_bytes())
        .into();
    if !matches {
        return Err(ApiError::Unauthenticated(UNAUTHENTICATED));
    }
    let scopes = record
        .scopes
        .iter()
        .filter_map(|raw| match Scope::parse(raw) {
            Ok(scope) => Some(scope),
            Err(_) => {
                // A scope written by a newer hub: ignore it rather than lock
                // the partner out of what this hub does know.
                tracing::warn!(key_id, scope = %raw, "ignoring unknown scope of API key");
                None
            }
        })
        .collect();
    let principal = Principal {
        partner: record.partner,
        key_id: record.key_id,
        scopes,
    };
    tracing::Span::current().record("partner", principal.partner.as_str());
    Ok(principal)
}

/// What [`guard`] checks for one route.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) state: AppState,
    /// `None`: any valid key will do.
    pub(crate) scope: Option<Scope>,
}

/// Route middleware: authenticates, checks the route's scope, and stores
/// the [`Principal`] for the handler. Runs before any other extractor, so a
/// caller without the right key learns nothing about the body it sent.
pub(crate) async fn guard(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = authenticate(&guard.state, request.headers()).await?;
    if let Some(scope) = guard.scope {
        principal.require(scope)?;
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        // Not behind the guard: authenticate here.
        let principal = authenticate(state, &parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
            assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope));
        }
        assert_eq!(
            Scope::parse("returns:write"),
            Err(KeyError::UnknownScope("returns:write".into()))
        );
        let message = KeyError::UnknownScope("x".into()).to_string();
        for scope in Scope::ALL {
            assert!(message.contains(scope.as_str()), "{message}");
        }
        assert_eq!(
            Scope::parse("deliveries:manage"),
            Ok(Scope::DeliveriesManage)
        );
    }

    #[test]
    fn generated_tokens_parse_and_hash_to_the_record() {
        let (token, record) = generate_key(
            "wms-eu_1",
            &[Scope::ReturnsRead, Scope::ReturnsRead],
            Utc::now(),
        )
        .unwrap();
        let (key_id, secret) = parse_token(&token).unwrap();
        assert_eq!(key_id, record.key_id);
        assert_eq!(hash_secret(secret), record.secret_hash);
        assert_eq!(record.scopes, vec!["returns:read".to_owned()]);
        assert!(!record.secret_hash.contains(secret));
    }

    #[test]
    fn partner_names_and_scopes_are_checked() {
        for bad in ["", "WMS", "wms eu", "wms.eu", &"x".repeat(65)] {
            assert_eq!(
                generate_key(bad, &[Scope::Admin], Utc::now()).map(|_| ()),
                Err(KeyError::InvalidPartner(bad.to_owned()))
            );
        }
        assert_eq!(
            generate_key("wms", &[], Utc::now()).map(|_| ()),
            Err(KeyError::NoScopes)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let secret = "a".repeat(64);
        assert!(parse_token(&format!("bh_0123456789ab_{secret}")).is_some());
        for bad in [
            format!("bh_0123456789AB_{secret}"),
            format!("bh_0123456789a_{secret}"),
            format!("xx_0123456789ab_{secret}"),
            format!("bh_0123456789ab_{secret}0"),
            "bh_0123456789ab".to_owned(),
        ] {
            assert!(parse_token(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn admin_implies_every_scope() {
        let admin = Principal {
            partner: "ops".into(),
            key_id: "0123456789ab".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(Scope::ALL.into_iter().all(|s| admin.has(s)));
        let wms = Principal {
            scopes: vec![Scope::WarehouseWrite],
            ..admin
        };
        assert!(!wms.has(Scope::ReturnsCreate));
        assert!(wms.require(Scope::ReturnsCreate).is_err());
    }
}
