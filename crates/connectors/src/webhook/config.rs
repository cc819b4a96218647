//! One subscriber of the webhook connector, as the config file has it, and
//! its checks (in `sink::WebhookSink::from_config`).

use backhaul_domain::Status;
use serde::{Deserialize, Serialize};

use crate::http::TlsConfig;

/// One `[[connectors.portal.subscribers]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    /// Names the subscriber in logs and in the exception queue's errors;
    /// unique within the connector.
    pub name: String,
    /// Where deliveries are POSTed, e.g. `https://crm.example.com/hooks/backhaul`
    /// (`http://` works too, for a subscriber on a trusted network).
    pub url: String,
    /// TLS settings for this subscriber's `https://` url (its own CA, a
    /// client certificate); instead of the connector's `tls`, not merged
    /// with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The environment variable holding the subscriber's `whsec_…` secret.
    pub secret_env: String,
    /// Variables of secrets being rotated out: deliveries are signed with
    /// these too until the subscriber has switched to the new one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secret_envs: Vec<String>,
    /// The event types to deliver, at least one: `return.status_changed`,
    /// `return.*` or `*`.
    pub event_types: Vec<String>,
    /// If set, only status changes to one of these statuses (`received`,
    /// `closed`…); absent means every status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
}
