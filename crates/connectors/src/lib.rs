//! Connectors: the sinks that deliver the hub's actions to external systems,
//! one folder per connector, all of the same shape: the folder holds only the
//! connector's wire format, a pure [`http::Mapping`] from the canonical
//! [`Action`] to the target's request and from the target's answer back to
//! an [`ActionResult`] (tested on fixtures in `tests/connectors/fixtures`).
//! Configuration is the shared [`ConnectorConfig`]; the sink is the shared
//! [`http::JsonHttpSink`], which owns the transport, the idempotency header
//! and the classification of failures. Every connector passes the contract
//! table in `tests/connectors/contract.rs`.
//!
//! Wire formats are apart from transports: a mapping never sees a socket,
//! and the [`http::Transport`] is either a real HTTP client or an in-process
//! axum router (the simulators in `demo` and in tests), with the same bytes
//! on both.
//!
//! Layout:
//! - `http`: transports, the JSON-over-HTTP sink, failure classification.
//! - `sim_erp`, `sim_wms`, `sim_carrier`, `sim_portal`: the mappings for the
//!   built-in simulators' wire contracts (`backhaul-sim`); `sim_carrier` also
//!   holds the tracking source, which polls scan feeds into the inbox.
//! - [`webhook`]: signed Standard Webhooks to CRM, portal and analytics
//!   subscribers, with a sink of its own (one delivery fans out to several
//!   endpoints, each signed with its own secret).
//! - `registry` (this file): config → build.
//!
//! [`Action`]: backhaul_domain::action::Action
//! [`ActionResult`]: backhaul_domain::action::ActionResult

pub mod http;
mod sim_carrier;
mod sim_erp;
mod sim_portal;
mod sim_wms;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::Target;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryPolicy, Sink, Sinks, Source, SystemClock};

pub use crate::sim_carrier::tracking::{PollReport, TrackingSource};
use serde::{Deserialize, Serialize};

use crate::http::{InProcess, JsonHttpSink, Mapping, Remote, Transport};

/// The kinds of connector this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorKind {
    /// The built-in ERP simulator's REST contract.
    SimErp,
    /// The built-in WMS simulator's REST contract.
    SimWms,
    /// The built-in carrier simulator's REST contract.
    SimCarrier,
    /// The built-in portal simulator's REST contract.
    SimPortal,
    /// Signed Standard Webhooks to the `subscribers` (CRM, portal,
    /// analytics): the return's status changes.
    Webhook,
}

impl ConnectorKind {
    /// The system a connector of this kind serves.
    pub fn target(self) -> Target {
        match self {
            ConnectorKind::SimErp => Target::Erp,
            ConnectorKind::SimWms => Target::Wms,
            ConnectorKind::SimCarrier => Target::Carrier,
            ConnectorKind::SimPortal | ConnectorKind::Webhook => Target::Portal,
        }
    }

    /// The mapping of a JSON-over-HTTP kind; `system` is the name the
    /// target's codes are kept under in the crosswalks. `None` for the
    /// webhook kind, which has a sink of its own.
    fn mapping(self, system: &ExternalRef) -> Option<Arc<dyn Mapping>> {
        match self {
            ConnectorKind::SimErp => Some(Arc::new(sim_erp::ErpMapping {
                system: system.to_string(),
            })),
            ConnectorKind::SimWms => Some(Arc::new(sim_wms::WmsMapping)),
            ConnectorKind::SimCarrier => Some(Arc::new(sim_carrier::CarrierMapping)),
            ConnectorKind::SimPortal => Some(Arc::new(sim_portal::PortalMapping)),
            ConnectorKind::Webhook => None,
        }
    }
}

/// One connector's settings (`[connectors.<target>]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub kind: ConnectorKind,
    /// Base URL of the target (`http://127.0.0.1:7001`). Empty means the
    /// in-process simulator, which only `demo` and tests provide.
    #[serde(default)]
    pub url: String,
    /// The name documents from this system carry on the return; defaults to
    /// the target's name (`erp`…).
    #[serde(default)]
    pub system: Option<String>,
    /// Retries, throttling, timeouts and the circuit breaker.
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    /// `webhook` only: who receives the signed webhooks, each with its own
    /// URL, secret and filters (`[[connectors.portal.subscribers]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<webhook::SubscriberConfig>,
}

/// Why connectors could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{target}: {message}")]
    Invalid { target: String, message: String },
}

/// Builds the configured sinks. `in_process` supplies routers for
/// connectors without a URL (the embedded simulators). Secrets configured
/// by variable name (webhook subscribers) are read from the process
/// environment.
pub fn build(
    connectors: &BTreeMap<String, ConnectorConfig>,
    in_process: &BTreeMap<Target, axum::Router>,
) -> Result<Sinks, BuildError> {
    build_with_env(connectors, in_process, &|name| std::env::var(name).ok())
}

/// [`build`] with `env` as the environment (tests pass a map: changing the
/// process environment is `unsafe` in this edition).
pub fn build_with_env(
    connectors: &BTreeMap<String, ConnectorConfig>,
    in_process: &BTreeMap<Target, axum::Router>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Sinks, BuildError> {
    let mut sinks = Vec::new();
    for (name, config) in connectors {
        let invalid = |message: String| BuildError::Invalid {
            target: format!("connectors.{name}"),
            message,
        };
        let target = config.kind.target();
        if name != target.as_str() {
            return Err(invalid(format!(
                "a {:?} connector serves `{}`; name the section [connectors.{}]",
                config.kind,
                target.as_str(),
                target.as_str()
            )));
        }
        config
            .delivery
            .validate()
            .map_err(|m| invalid(format!("delivery: {m}")))?;
        let system = ExternalRef::parse(config.system.as_deref().unwrap_or(target.as_str()))
            .map_err(|e| invalid(format!("system: {e}")))?;
        let sink: Arc<dyn Sink> = match config.kind.mapping(&system) {
            Some(mapping) => {
                if !config.subscribers.is_empty() {
                    return Err(invalid(format!(
                        "subscribers: only a webhook connector has subscribers, not {:?}",
                        config.kind
                    )));
                }
                let transport = transport(&config.url, target, in_process).map_err(invalid)?;
                Arc::new(JsonHttpSink::new(target, system, transport, mapping))
            }
            None => Arc::new(webhook::WebhookSink::from_config(
                name,
                config,
                env,
                Arc::new(SystemClock),
            )?),
        };
        sinks.push((sink, config.delivery.clone()));
    }
    Ok(sinks)
}

/// The kinds of source (inbound connector) this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Polls the carrier simulator's scan feed of every open label.
    SimCarrierTracking,
}

/// One source's settings (`[sources.<name>]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Base URL of the system polled; empty means the in-process simulator.
    #[serde(default)]
    pub url: String,
    /// Time between two polls.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_interval_ms() -> u64 {
    5_000
}

/// Builds the configured sources; `in_process` as for [`build`].
pub fn build_sources(
    sources: &BTreeMap<String, SourceConfig>,
    in_process: &BTreeMap<Target, axum::Router>,
) -> Result<Vec<Box<dyn Source>>, BuildError> {
    let mut out: Vec<Box<dyn Source>> = Vec::new();
    for (name, config) in sources {
        let invalid = |message: String| BuildError::Invalid {
            target: format!("sources.{name}"),
            message,
        };
        if config.interval_ms == 0 {
            return Err(invalid("interval_ms must be above 0".to_owned()));
        }
        let target = match config.kind {
            SourceKind::SimCarrierTracking => Target::Carrier,
        };
        let transport = transport(&config.url, target, in_process).map_err(invalid)?;
        match config.kind {
            SourceKind::SimCarrierTracking => out.push(Box::new(TrackingSource::new(
                transport,
                std::time::Duration::from_millis(config.interval_ms),
            ))),
        }
    }
    Ok(out)
}

/// The transport to `url`, or to the in-process simulator of `target` when
/// `url` is empty.
fn transport(
    url: &str,
    target: Target,
    in_process: &BTreeMap<Target, axum::Router>,
) -> Result<Arc<dyn Transport>, String> {
    if url.is_empty() {
        let router = in_process
            .get(&target)
            .ok_or_else(|| "url is empty and no in-process simulator runs here".to_owned())?;
        Ok(Arc::new(InProcess::new(router.clone())))
    } else {
        Ok(Arc::new(Remote::new(url).map_err(|m| format!("url: {m}"))?))
    }
}
