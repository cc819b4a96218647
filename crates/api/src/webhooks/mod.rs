//! Inbound webhooks in the Standard Webhooks format: the `[webhooks]`
//! configuration, the sources built from it (secrets resolved from the
//! environment), verification of a delivery, and the replay rule. The route
//! that receives them is `routes::v1::webhooks`; what a body means (a WMS
//! receipt, a carrier scan) is in [`mapping`].
//!
//! Not here: signing and verification themselves (`backhaul-webhooks`, a
//! pure library), and applying commands (the engine's `Inbox`).
//!
//! # Authentication
//!
//! `POST /v1/webhooks/{source}` takes no API key: the senders (a WMS, a
//! carrier) sign with the secret configured for their source, and that
//! signature is the authentication. A request without the three headers,
//! with a signature no configured secret produced, or with a timestamp
//! outside the source's tolerance is refused (401) before its body is
//! parsed.
//!
//! # Duplicates and replays
//!
//! Two mechanisms, each for what it can do:
//! - **The engine's inbox is the record.** Every delivery is applied under
//!   the dedup key `webhook:<webhook-id>`, scoped by the source's name and
//!   stored in the same append as its events. A sender retrying a delivery
//!   it does not know arrived (same id, new timestamp and signature) gets
//!   the first answer again (`Idempotent-Replayed: true`), across restarts
//!   and hub processes, and nothing is applied twice.
//! - **The replay window only refuses exact copies of refused attempts**
//!   (and of an attempt still being processed). A delivery refused after
//!   verification (a body the hub cannot read, a return in the wrong state)
//!   stores nothing, so the inbox cannot stop a copy of it: sent again after
//!   the return moved on, it would apply. Its exact attempt (id and signed
//!   timestamp) is therefore remembered, in memory, for the tolerance
//!   window, and a byte-for-byte copy is refused with 409
//!   `webhook_replayed`. The sender's own retry is signed anew with the time
//!   of the attempt, so it is not a copy and is processed. Applied attempts
//!   are forgotten once answered (the inbox answers for them from then on),
//!   and so are attempts that failed for the hub's own reasons (5xx):
//!   repeating them is what a retry does anyway.
//!
//! The window is per process: a copy sent to another hub sharing the
//! database is not caught by it, which costs only the protection above,
//! never a double effect.

pub(crate) mod mapping;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::HeaderMap;
use backhaul_domain::model::CarrierMilestone;
use backhaul_webhooks::{
    LookupFn, MessageId, ReplayError, ReplayWindow, Secret, Tolerance, Verified, VerifyError,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The longest tolerance a source may have: the window a captured delivery
/// can be replayed in grows with it.
const MAX_TOLERANCE_SECS: u32 = 3600;

/// `[webhooks]`: signed webhooks the hub receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Inbound sources by name (`[webhooks.inbound.<name>]`); each is served
    /// at `POST /v1/webhooks/<name>`. The name is also the partner the
    /// engine sees: it scopes the sources' dedup keys, and
    /// `[engine.ownership.partners]` says which system it speaks for (a
    /// source named `wms` speaks for `wms`).
    pub inbound: BTreeMap<String, InboundSourceConfig>,
}

/// One inbound webhook source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSourceConfig {
    /// What the bodies are: `wms` (receipts, inspections, putaways),
    /// `carrier` (tracking events) or `canonical` (the hub's own commands).
    pub kind: InboundKind,
    /// The environment variable holding the source's `whsec_…` secret. The
    /// secret itself is never written in the file.
    pub secret_env: String,
    /// Variables of secrets still accepted while the sender rotates to the
    /// new one; remove them once it has.
    #[serde(default)]
    pub previous_secret_envs: Vec<String>,
    /// How far a delivery's signed timestamp may be from the hub's clock,
    /// either way, in seconds (default 300, at most 3600).
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u32,
    /// Refused attempts remembered at most, to refuse their exact replays
    /// (default 10000). When it is full, deliveries are answered 503 until
    /// the oldest leave the tolerance window.
    #[serde(default = "default_replay_capacity")]
    pub replay_capacity: usize,
    /// `carrier` only: the carrier's own status codes and the milestone each
    /// means (`DL = "delivered"`). Canonical names (`out_for_delivery`,
    /// `Out for delivery`) are understood without an entry; any other code
    /// is refused (422 `unmapped_code`), never guessed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, CarrierMilestone>,
}

fn default_tolerance_secs() -> u32 {
    Tolerance::DEFAULT.seconds()
}

fn default_replay_capacity() -> usize {
    10_000
}

/// What a source's bodies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    /// Warehouse events: `receipt.created`, `inspection.completed`,
    /// `putaway.completed`.
    Wms,
    /// Carrier tracking: `tracking.updated`.
    Carrier,
    /// The hub's own commands by name (`record_receipt`…), bodies as the
    /// HTTP API takes them.
    Canonical,
}

/// A `[webhooks]` setting that cannot work, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct WebhookConfigError {
    /// The full key, e.g. `webhooks.inbound.wms.secret_env`.
    pub key: String,
    pub reason: String,
}

/// The configured sources, secrets resolved. Cheap to clone.
#[derive(Clone, Default)]
pub struct InboundWebhooks {
    sources: Arc<BTreeMap<String, Arc<InboundSource>>>,
}

impl std::fmt::Debug for InboundWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sources.keys()).finish()
    }
}

impl InboundWebhooks {
    /// Builds the sources, reading secrets from the process environment.
    pub fn build(config: &WebhooksConfig) -> Result<InboundWebhooks, WebhookConfigError> {
        InboundWebhooks::build_with(config, |name| std::env::var(name).ok())
    }

    /// Builds the sources with `env` as the environment (tests pass a map:
    /// changing the process environment is `unsafe` in this edition).
    pub fn build_with(
        config: &WebhooksConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<InboundWebhooks, WebhookConfigError> {
        let mut sources = BTreeMap::new();
        for (name, source) in &config.inbound {
            let prefix = format!("webhooks.inbound.{name}");
            let error = |field: &str, reason: String| WebhookConfigError {
                key: if field.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}.{field}")
                },
                reason,
            };
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !name_ok {
                return Err(error(
                    "",
                    "a source name is 1 to 64 characters of a-z, 0-9, '_' and '-' (it is a URL segment and a partner name)".into(),
                ));
            }
            if source.tolerance_secs == 0 || source.tolerance_secs > MAX_TOLERANCE_SECS {
                return Err(error(
                    "tolerance_secs",
                    format!("must be between 1 and {MAX_TOLERANCE_SECS}"),
                ));
            }
            if source.replay_capacity == 0 {
                return Err(error("replay_capacity", "must be at least 1".into()));
            }
            if !source.status_map.is_empty() && source.kind != InboundKind::Carrier {
                return Err(error(
                    "status_map",
                    "only a `carrier` source maps status codes".into(),
                ));
            }
            let mut secrets = vec![
                resolve_secret(&env, &source.secret_env)
                    .map_err(|reason| error("secret_env", reason))?,
            ];
            for (i, variable) in source.previous_secret_envs.iter().enumerate() {
                secrets.push(
                    resolve_secret(&env, variable)
                        .map_err(|reason| error(&format!("previous_secret_envs[{i}]"), reason))?,
                );
            }
            let tolerance = Tolerance::from_seconds(source.tolerance_secs);
            sources.insert(
                name.clone(),
                Arc::new(InboundSource {
                    name: name.clone(),
                    kind: source.kind,
                    secrets,
                    tolerance,
                    refused: Mutex::new(ReplayWindow::new(tolerance, source.replay_capacity)),
                    status_map: source.status_map.clone(),
                }),
            );
        }
        Ok(InboundWebhooks {
            sources: Arc::new(sources),
        })
    }

    /// The source served at `/v1/webhooks/<name>`.
    pub(crate) fn source(&self, name: &str) -> Option<Arc<InboundSource>> {
        self.sources.get(name).cloned()
    }

    /// The configured sources' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }
}

/// The secret in the environment variable `variable`, or why not (naming
/// the variable, never its value).
fn resolve_secret(env: &impl Fn(&str) -> Option<String>, variable: &str) -> Result<Secret, String> {
    Secret::from_env(variable, env).map_err(|e| e.to_string())
}

/// One configured source, ready to verify deliveries.
pub(crate) struct InboundSource {
    pub(crate) name: String,
    pub(crate) kind: InboundKind,
    /// The current secret first, then those being rotated out.
    secrets: Vec<Secret>,
    tolerance: Tolerance,
    /// Exact attempts (id and timestamp) refused after verification, see the
    /// module documentation.
    refused: Mutex<ReplayWindow>,
    pub(crate) status_map: BTreeMap<String, CarrierMilestone>,
}

impl InboundSource {
    /// Checks the three Standard Webhooks headers against the body.
    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, ApiError> {
        let lookup = LookupFn::new(|name: &str| headers.get(name).and_then(|v| v.to_str().ok()));
        backhaul_webhooks::verify(&self.secrets, &lookup, body, now, self.tolerance)
            .map_err(ApiError::WebhookVerification)
    }

    /// Starts processing a verified attempt: refuses an exact copy of one
    /// refused before, or of one in flight. The returned guard forgets the
    /// attempt when dropped unless it is kept as refused.
    pub(crate) fn begin(
        self: &Arc<Self>,
        verified: &Verified,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ApiError> {
        let attempt = Verified {
            id: attempt_id(verified),
            timestamp: verified.timestamp,
        };
        let recorded = self.window().check_and_record(&attempt, now);
        match recorded {
            Ok(()) => Ok(Attempt {
                source: Arc::clone(self),
                id: Some(attempt.id),
            }),
            Err(ReplayError::Duplicate { .. }) => Err(ApiError::WebhookReplayed),
            Err(ReplayError::Full { .. }) => Err(ApiError::WebhookReplayWindowFull),
            // Verification with the same tolerance and clock already
            // refused anything this old.
            Err(ReplayError::OutsideWindow { timestamp, now, .. }) => {
                Err(ApiError::WebhookVerification(VerifyError::TooOld {
                    timestamp,
                    now,
                    tolerance: self.tolerance,
                }))
            }
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, ReplayWindow> {
        // The window holds no invariant a panic could break half-way: a
        // poisoned lock is still a usable set of ids.
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The exact attempt as one id: the sender's id and the signed timestamp,
/// hashed so that any id (up to 256 characters) fits the 256 allowed.
fn attempt_id(verified: &Verified) -> MessageId {
    let digest = Sha256::new()
        .chain_update(verified.id.as_str().as_bytes())
        .chain_update([0])
        .chain_update(verified.timestamp.timestamp().to_string().as_bytes())
        .finalize();
    // Hex is 64 visible ASCII characters without `.`: always a valid id.
    MessageId::parse(&hex::encode(digest)).unwrap_or_else(|_| verified.id.clone())
}

/// A verified attempt being processed. Dropped without [`Attempt::keep`]
/// (applied, failed for the hub's reasons, or the client went away), it is
/// forgotten.
pub(crate) struct Attempt {
    source: Arc<InboundSource>,
    id: Option<MessageId>,
}

impl Attempt {
    /// Remembers the attempt as refused, so its exact copies are refused.
    pub(crate) fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.source.window().forget(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(toml: &str) -> WebhooksConfig {
        toml::from_str(toml).unwrap()
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "WMS_SECRET" | "OLD_SECRET" => Some(SECRET.to_owned()),
            "BAD_SECRET" => Some("not-a-secret".to_owned()),
            _ => None,
        }
    }

    fn error(toml: &str) -> WebhookConfigError {
        InboundWebhooks::build_with(&config(toml), env).unwrap_err()
    }

    #[test]
    fn a_source_resolves_its_secrets_and_defaults() {
        let config = config(
            "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\nprevious_secret_envs = [\"OLD_SECRET\"]\n",
        );
        let source = &config.inbound["wms"];
        assert_eq!(source.tolerance_secs, 300);
        assert_eq!(source.replay_capacity, 10_000);
        let built = InboundWebhooks::build_with(&config, env).unwrap();
        assert_eq!(built.names().collect::<Vec<_>>(), ["wms"]);
        assert_eq!(built.source("wms").unwrap().secrets.len(), 2);
    }

    #[test]
    fn problems_name_their_key_and_never_the_secret() {
        let missing = error("[inbound.wms]\nkind = \"wms\"\nsecret_env = \"NOPE\"\n");
        assert_eq!(missing.key, "webhooks.inbound.wms.secret_env");
        assert!(missing.reason.contains("NOPE is not set"), "{missing}");

        let bad = error("[inbound.wms]\nkind = \"wms\"\nsecret_env = \"BAD_SECRET\"\n");
        assert_eq!(bad.key, "webhooks.inbound.wms.secret_env");
        assert!(!bad.to_string().contains("not-a-secret"), "{bad}");

        let previous = error(
            "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\nprevious_secret_envs = [\"WMS_SECRET\", \"GONE\"]\n",
        );
        assert_eq!(previous.key, "webhooks.inbound.wms.previous_secret_envs[1]");

        let tolerance = error(
            "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\ntolerance_secs = 0\n",
        );
        assert_eq!(tolerance.key, "webhooks.inbound.wms.tolerance_secs");

        let map = error(
            "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\n[inbound.wms.status_map]\nDL = \"delivered\"\n",
        );
        assert_eq!(map.key, "webhooks.inbound.wms.status_map");

        let name = error("[inbound.\"W MS\"]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\n");
        assert_eq!(name.key, "webhooks.inbound.W MS");
    }

    #[test]
    fn unknown_keys_and_milestones_are_refused_when_read() {
        assert!(
            toml::from_str::<WebhooksConfig>(
                "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"X\"\nsecret = \"whsec_x\"\n"
            )
            .is_err()
        );
        assert!(
            toml::from_str::<WebhooksConfig>(
                "[inbound.ups]\nkind = \"carrier\"\nsecret_env = \"X\"\n[inbound.ups.status_map]\nDL = \"arrived\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn an_exact_attempt_is_refused_while_kept_and_forgotten_otherwise() {
        let built = InboundWebhooks::build_with(
            &config("[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\n"),
            env,
        )
        .unwrap();
        let source = built.source("wms").unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let verified = Verified {
            id: MessageId::parse("msg_1").unwrap(),
            timestamp: now,
        };
        // Forgotten on drop: the same attempt may come again.
        drop(source.begin(&verified, now).unwrap());
        let attempt = source.begin(&verified, now).unwrap();
        // While in flight, or once kept as refused, a copy is refused.
        assert!(matches!(
            source.begin(&verified, now),
            Err(ApiError::WebhookReplayed)
        ));
        attempt.keep();
        assert!(matches!(
            source.begin(&verified, now),
            Err(ApiError::WebhookReplayed)
        ));
        // The sender's retry is signed at a later time: not a copy.
        let retry = Verified {
            timestamp: now + chrono::Duration::seconds(5),
            ..verified
        };
        assert!(source.begin(&retry, now).is_ok());
    }

    #[test]
    fn a_full_window_refuses_rather_than_forget_a_refused_attempt() {
        let built = InboundWebhooks::build_with(
            &config(
                "[inbound.wms]\nkind = \"wms\"\nsecret_env = \"WMS_SECRET\"\nreplay_capacity = 1\n",
            ),
            env,
        )
        .unwrap();
        let source = built.source("wms").unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let attempt = |id: &str| Verified {
            id: MessageId::parse(id).unwrap(),
            timestamp: now,
        };
        source.begin(&attempt("msg_1"), now).unwrap().keep();
        assert!(matches!(
            source.begin(&attempt("msg_2"), now),
            Err(ApiError::WebhookReplayWindowFull)
        ));
        // Once the refused attempt is older than the tolerance, there is room.
        let later = now + chrono::Duration::seconds(301);
        let fresh = Verified {
            timestamp: later,
            ..attempt("msg_2")
        };
        assert!(source.begin(&fresh, later).is_ok());
    }
}
