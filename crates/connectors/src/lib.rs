//! Connectors: the sinks that deliver the hub's actions to external systems,
//! one folder per connector. A simulator's folder holds only the
//! connector's wire format, a pure [`http::Mapping`] from the canonical
//! [`Action`] to the target's request and from the target's answer back to
//! an [`ActionResult`] (tested on fixtures in `tests/connectors/fixtures`);
//! its sink is the shared [`http::JsonHttpSink`], which owns the transport,
//! the idempotency header and the classification of failures. Every
//! simulator connector passes the contract table in
//! `tests/connectors/contract.rs`. Configuration is the shared
//! [`ConnectorConfig`].
//!
//! Wire formats are apart from transports: a mapping never sees a socket,
//! and the [`http::Transport`] is either a real HTTP client or an in-process
//! axum router (the simulators in `demo` and in tests), with the same bytes
//! on both.
//!
//! Connectors to vendor ERPs need more than one exchange per delivery (a
//! look-up before a create where the vendor takes no idempotency key, a
//! CSRF token, a read-back of the new record), so each has a small sink of
//! its own over the same [`http::Transport`], with its pure mapping beside
//! it and fixtures written from the vendor's public documentation in its
//! `fixtures/` folder. Their settings are a table of their own in the
//! connector's section (`[connectors.erp.sap]`…), and their credentials are
//! names of environment variables, read when the connector is built.
//!
//! Layout:
//! - `http`: transports, the JSON-over-HTTP sink, failure classification;
//!   `http::tls` builds the TLS of every outbound client (Mozilla roots,
//!   a connector's `ca_file` and client certificate, the ring provider).
//! - `sim_erp`, `sim_wms`, `sim_carrier`, `sim_portal`: the mappings for the
//!   built-in simulators' wire contracts (`backhaul-sim`); `sim_carrier` also
//!   holds the tracking source, which polls scan feeds into the inbox.
//! - `sap_s4`, `dynamics_bc`, `netsuite`: SAP S/4HANA (customer returns and
//!   credit memo requests, OData V2), Microsoft Dynamics 365 Business
//!   Central (sales credit memos, API v2.0), Oracle NetSuite (return
//!   authorizations, item receipts and credit memos, REST record service).
//! - `tryton`: the Tryton ERP over JSON-RPC, a multi-call sink of its own
//!   (look-up before create, resumable by document state), tested against
//!   a real trytond.
//! - `rest`, `rest_wms`, `rest_carrier`: generic JSON REST connectors to a
//!   WMS (expected receipts) and a carrier (return labels), shaped by
//!   config (method, path template, field mapping, answer fields), with the
//!   mapping machinery shared in `rest`.
//! - `soap`: a generic SOAP sink for legacy ERPs and WMSs (an envelope
//!   template per action kind, WS-Security UsernameToken, faults
//!   classified by code).
//! - [`webhook`]: signed Standard Webhooks to CRM, portal and analytics
//!   subscribers, with a sink of its own (one delivery fans out to several
//!   endpoints, each signed with its own secret).
//! - [`x12_partner`]: X12 180 RMA notifications to EDI trading partners,
//!   written as files into an outbound folder (target `edi`), with a sink
//!   of its own (no HTTP: the partner transport sends the files).
//! - `vendor`: what the vendor ERP connectors share (credentials,
//!   exchanges, error classification with 401 technical, JSON numbers);
//!   the generic connectors use its credentials and exchanges too.
//! - `registry` (this file): config → build.
//!
//! [`Action`]: backhaul_domain::action::Action
//! [`ActionResult`]: backhaul_domain::action::ActionResult

mod dynamics_bc;
pub mod http;
mod netsuite;
mod rest;
mod rest_carrier;
mod rest_wms;
mod sap_s4;
mod sim_carrier;
mod sim_erp;
mod sim_portal;
mod sim_wms;
mod soap;
pub mod tryton;
mod vendor;
pub mod webhook;
pub mod x12_partner;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::Target;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryPolicy, Sink, Sinks, Source, SystemClock};

pub use crate::dynamics_bc::DynamicsBcConfig;
pub use crate::http::{ClientTls, TlsConfig, TlsError};
pub use crate::netsuite::NetSuiteConfig;
pub use crate::rest::{ErrorsConfig, LookupConfig, OperationConfig};
pub use crate::rest_carrier::RestCarrierConfig;
pub use crate::rest_wms::RestWmsConfig;
pub use crate::sap_s4::SapConfig;
pub use crate::sim_carrier::tracking::{PollReport, TrackingSource};
pub use crate::soap::{
    PasswordType, SecurityConfig, SoapActionConfig, SoapConfig, SoapTarget, SoapVersion,
};
pub use crate::vendor::Env;
pub use crate::x12_partner::{
    PartnerConfig, SeparatorsConfig, X12PartnerConfig, X12PartnerSink, X12Usage, X12Version,
};
use serde::{Deserialize, Serialize};

use crate::dynamics_bc::DynamicsBcSink;
use crate::http::{InProcess, JsonHttpSink, Mapping, Remote, Transport};
use crate::netsuite::NetSuiteSink;
use crate::sap_s4::SapSink;

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
    /// SAP S/4HANA's customer return and credit memo request APIs
    /// (settings in `[connectors.erp.sap]`).
    #[serde(rename = "sap-s4")]
    SapS4,
    /// Microsoft Dynamics 365 Business Central's API v2.0 (settings in
    /// `[connectors.erp.dynamics_bc]`).
    #[serde(rename = "dynamics-bc")]
    DynamicsBc,
    /// Oracle NetSuite's REST record service (settings in
    /// `[connectors.erp.netsuite]`).
    #[serde(rename = "netsuite")]
    NetSuite,
    /// A Tryton ERP (trytond 8) over JSON-RPC (settings in
    /// `[connectors.erp.tryton]`).
    #[serde(rename = "tryton")]
    Tryton,
    /// Any JSON REST WMS, shaped by config (settings in
    /// `[connectors.wms.rest_wms]`).
    RestWms,
    /// Any JSON REST carrier API, shaped by config (settings in
    /// `[connectors.carrier.rest_carrier]`).
    RestCarrier,
    /// A SOAP service of an ERP or a WMS (settings in
    /// `[connectors.<erp|wms>.soap]`, whose `target` says which).
    Soap,
    /// Signed Standard Webhooks to the `subscribers` (CRM, portal,
    /// analytics): the return's status changes.
    Webhook,
    /// X12 180 files answering EDI partners' return requests (settings in
    /// `[connectors.edi.x12_partner]`).
    #[serde(rename = "x12-partner")]
    X12Partner,
}

impl ConnectorKind {
    /// The system a connector of this kind serves; `None` for `soap`,
    /// which serves the target its settings name
    /// ([`ConnectorConfig::target`]).
    pub fn target(self) -> Option<Target> {
        match self {
            ConnectorKind::SimErp
            | ConnectorKind::SapS4
            | ConnectorKind::DynamicsBc
            | ConnectorKind::NetSuite
            | ConnectorKind::Tryton => Some(Target::Erp),
            ConnectorKind::SimWms | ConnectorKind::RestWms => Some(Target::Wms),
            ConnectorKind::SimCarrier | ConnectorKind::RestCarrier => Some(Target::Carrier),
            ConnectorKind::SimPortal | ConnectorKind::Webhook => Some(Target::Portal),
            ConnectorKind::X12Partner => Some(Target::Edi),
            ConnectorKind::Soap => None,
        }
    }

    /// The kind as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::SimErp => "sim-erp",
            ConnectorKind::SimWms => "sim-wms",
            ConnectorKind::SimCarrier => "sim-carrier",
            ConnectorKind::SimPortal => "sim-portal",
            ConnectorKind::SapS4 => "sap-s4",
            ConnectorKind::DynamicsBc => "dynamics-bc",
            ConnectorKind::NetSuite => "netsuite",
            ConnectorKind::Tryton => "tryton",
            ConnectorKind::RestWms => "rest-wms",
            ConnectorKind::RestCarrier => "rest-carrier",
            ConnectorKind::Soap => "soap",
            ConnectorKind::Webhook => "webhook",
            ConnectorKind::X12Partner => "x12-partner",
        }
    }
}

/// One connector's settings (`[connectors.<target>]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub kind: ConnectorKind,
    /// Base URL of the target: `https://erp.example.com/sap/opu/odata/sap`,
    /// or `http://127.0.0.1:7001` for a simulator or a fake on this
    /// machine. Empty means the in-process simulator, which only `demo` and
    /// tests provide.
    #[serde(default)]
    pub url: String,
    /// TLS settings for an `https://` url (`[connectors.<target>.tls]`):
    /// an extra CA to trust, a client certificate for mutual TLS. Without
    /// them the Mozilla roots are trusted. For a `webhook` connector they
    /// apply to every `https://` subscriber without `tls` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The name documents from this system carry on the return; defaults to
    /// the target's name (`erp`…).
    #[serde(default)]
    pub system: Option<String>,
    /// Retries, throttling, timeouts and the circuit breaker.
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    /// SAP S/4HANA settings, for kind `sap-s4` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sap: Option<SapConfig>,
    /// Business Central settings, for kind `dynamics-bc` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamics_bc: Option<DynamicsBcConfig>,
    /// NetSuite settings, for kind `netsuite` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netsuite: Option<NetSuiteConfig>,
    /// Tryton settings, for kind `tryton` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tryton: Option<tryton::TrytonSettings>,
    /// Generic REST WMS settings, for kind `rest-wms` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_wms: Option<RestWmsConfig>,
    /// Generic REST carrier settings, for kind `rest-carrier` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_carrier: Option<RestCarrierConfig>,
    /// Generic SOAP settings, for kind `soap` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap: Option<SoapConfig>,
    /// `webhook` only: who receives the signed webhooks, each with its own
    /// URL, secret and filters (`[[connectors.portal.subscribers]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<webhook::SubscriberConfig>,
    /// X12 partner settings, for kind `x12-partner` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x12_partner: Option<x12_partner::X12PartnerConfig>,
}

impl ConnectorConfig {
    /// The system this connector serves: its kind's, or for `soap` the one
    /// its settings name (`None` when they are missing).
    pub fn target(&self) -> Option<Target> {
        match self.kind {
            ConnectorKind::Soap => self.soap.as_ref().map(|s| s.target.target()),
            ConnectorKind::SimErp
            | ConnectorKind::SimWms
            | ConnectorKind::SimCarrier
            | ConnectorKind::SimPortal
            | ConnectorKind::SapS4
            | ConnectorKind::DynamicsBc
            | ConnectorKind::NetSuite
            | ConnectorKind::Tryton
            | ConnectorKind::RestWms
            | ConnectorKind::RestCarrier
            | ConnectorKind::Webhook
            | ConnectorKind::X12Partner => self.kind.target(),
        }
    }
}

/// Why connectors could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{target}: {message}")]
    Invalid { target: String, message: String },
}

/// Builds the configured sinks. `in_process` supplies routers for
/// connectors without a URL (the embedded simulators). Credentials come
/// from the process environment.
pub fn build(
    connectors: &BTreeMap<String, ConnectorConfig>,
    in_process: &BTreeMap<Target, axum::Router>,
) -> Result<Sinks, BuildError> {
    build_with_env(connectors, in_process, &|name| std::env::var(name).ok())
}

/// [`build`] with the environment variables looked up in `env`.
pub fn build_with_env(
    connectors: &BTreeMap<String, ConnectorConfig>,
    in_process: &BTreeMap<Target, axum::Router>,
    env: Env<'_>,
) -> Result<Sinks, BuildError> {
    let mut sinks = Vec::new();
    for (name, config) in connectors {
        let invalid = |message: String| BuildError::Invalid {
            target: format!("connectors.{name}"),
            message,
        };
        let target = config.target().ok_or_else(|| {
            invalid(format!(
                "kind `{}` needs its settings in [connectors.{name}.soap]",
                config.kind.as_str()
            ))
        })?;
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
            .validate_for(target)
            .map_err(|m| invalid(format!("delivery: {m}")))?;
        let system = ExternalRef::parse(config.system.as_deref().unwrap_or(target.as_str()))
            .map_err(|e| invalid(format!("system: {e}")))?;
        settings_tables(name, config).map_err(invalid)?;
        if config.kind == ConnectorKind::X12Partner {
            // It writes files; there is no transport to build.
            let sink = x12_partner::X12PartnerSink::from_config(name, config)?;
            sinks.push((Arc::new(sink) as Arc<dyn Sink>, config.delivery.clone()));
            continue;
        }
        if config.kind == ConnectorKind::Webhook {
            // Its endpoints are its subscribers', each with a secret.
            let sink = webhook::WebhookSink::from_config(name, config, env, Arc::new(SystemClock))?;
            sinks.push((Arc::new(sink) as Arc<dyn Sink>, config.delivery.clone()));
            continue;
        }
        if !config.subscribers.is_empty() {
            return Err(invalid(format!(
                "subscribers: only a webhook connector has subscribers, not {:?}",
                config.kind
            )));
        }
        let transport =
            transport(&config.url, config.tls.as_ref(), target, in_process).map_err(invalid)?;
        let sink = sink(name, config, target, &system, &transport, env).map_err(invalid)?;
        sinks.push((sink, config.delivery.clone()));
    }
    Ok(sinks)
}

/// Refuses a settings table that is not the kind's own
/// (`[connectors.erp.sap]` under kind `netsuite`).
fn settings_tables(name: &str, config: &ConnectorConfig) -> Result<(), String> {
    let tables = [
        ("sap", config.sap.is_some(), ConnectorKind::SapS4),
        (
            "dynamics_bc",
            config.dynamics_bc.is_some(),
            ConnectorKind::DynamicsBc,
        ),
        (
            "netsuite",
            config.netsuite.is_some(),
            ConnectorKind::NetSuite,
        ),
        ("tryton", config.tryton.is_some(), ConnectorKind::Tryton),
        (
            "rest_wms",
            config.rest_wms.is_some(),
            ConnectorKind::RestWms,
        ),
        (
            "rest_carrier",
            config.rest_carrier.is_some(),
            ConnectorKind::RestCarrier,
        ),
        ("soap", config.soap.is_some(), ConnectorKind::Soap),
        (
            "x12_partner",
            config.x12_partner.is_some(),
            ConnectorKind::X12Partner,
        ),
    ];
    for (table, present, kind) in tables {
        if present && config.kind != kind {
            return Err(format!(
                "[connectors.{name}.{table}] is for kind `{}`, not `{}`",
                kind.as_str(),
                config.kind.as_str()
            ));
        }
    }
    Ok(())
}

/// The sink of one section: the shared JSON sink for a simulator, the
/// vendor's own for an ERP, which must have its settings table (another
/// kind's table was refused by [`settings_tables`]).
fn sink(
    name: &str,
    config: &ConnectorConfig,
    target: Target,
    system: &ExternalRef,
    transport: &Arc<dyn Transport>,
    env: Env<'_>,
) -> Result<Arc<dyn Sink>, String> {
    let missing = |table: &str| {
        format!(
            "kind `{}` needs its settings in [connectors.{name}.{table}]",
            config.kind.as_str()
        )
    };
    // The simulators' mappings are driven by the shared JSON sink; `system`
    // is the name the target's codes are kept under in the crosswalks.
    let json = |mapping: Arc<dyn Mapping>| -> Result<Arc<dyn Sink>, String> {
        Ok(Arc::new(JsonHttpSink::new(
            target,
            system.clone(),
            transport.clone(),
            mapping,
        )))
    };
    match config.kind {
        ConnectorKind::SimErp => json(Arc::new(sim_erp::ErpMapping {
            system: system.to_string(),
        })),
        ConnectorKind::SimWms => json(Arc::new(sim_wms::WmsMapping)),
        ConnectorKind::SimCarrier => json(Arc::new(sim_carrier::CarrierMapping)),
        ConnectorKind::SimPortal => json(Arc::new(sim_portal::PortalMapping)),
        ConnectorKind::SapS4 => {
            let settings = config.sap.clone().ok_or_else(|| missing("sap"))?;
            Ok(Arc::new(SapSink::new(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        ConnectorKind::DynamicsBc => {
            let settings = config
                .dynamics_bc
                .clone()
                .ok_or_else(|| missing("dynamics_bc"))?;
            Ok(Arc::new(DynamicsBcSink::new(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        ConnectorKind::NetSuite => {
            let settings = config.netsuite.clone().ok_or_else(|| missing("netsuite"))?;
            Ok(Arc::new(NetSuiteSink::new(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        ConnectorKind::Tryton => {
            let settings = config.tryton.clone().ok_or_else(|| missing("tryton"))?;
            if config.url.is_empty() {
                return Err("a Tryton connector needs the server's url".to_owned());
            }
            let password = env(&settings.password_env).ok_or_else(|| {
                format!(
                    "tryton.password_env: the environment variable {} is not set",
                    settings.password_env
                )
            })?;
            Ok(Arc::new(tryton::TrytonSink::new(
                system.clone(),
                transport.clone(),
                settings,
                &password,
            )))
        }
        ConnectorKind::RestWms => {
            let settings = config
                .rest_wms
                .as_ref()
                .ok_or_else(|| missing("rest_wms"))?;
            Ok(Arc::new(rest_wms::sink(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        ConnectorKind::RestCarrier => {
            let settings = config
                .rest_carrier
                .as_ref()
                .ok_or_else(|| missing("rest_carrier"))?;
            Ok(Arc::new(rest_carrier::sink(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        ConnectorKind::Soap => {
            let settings = config.soap.as_ref().ok_or_else(|| missing("soap"))?;
            Ok(Arc::new(soap::SoapSink::new(
                system.clone(),
                transport.clone(),
                settings,
                env,
            )?))
        }
        // Built from its subscribers before a transport is made (see
        // `build_with_env`); it has no single URL to reach.
        ConnectorKind::Webhook => {
            Err("a webhook connector is built from its subscribers".to_owned())
        }
        // Built from its settings before a transport is made: it writes
        // files.
        ConnectorKind::X12Partner => {
            Err("an x12-partner connector is built from its settings".to_owned())
        }
    }
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
    /// TLS settings for an `https://` url, as a connector's
    /// (`[sources.<name>.tls]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
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
        let transport =
            transport(&config.url, config.tls.as_ref(), target, in_process).map_err(invalid)?;
        match config.kind {
            SourceKind::SimCarrierTracking => out.push(Box::new(TrackingSource::new(
                transport,
                std::time::Duration::from_millis(config.interval_ms),
            ))),
        }
    }
    Ok(out)
}

/// The transport to `url` with the `tls` settings, or to the in-process
/// simulator of `target` when `url` is empty.
fn transport(
    url: &str,
    tls: Option<&TlsConfig>,
    target: Target,
    in_process: &BTreeMap<Target, axum::Router>,
) -> Result<Arc<dyn Transport>, String> {
    if url.is_empty() {
        if tls.is_some() {
            return Err(
                "tls: there is no url to use it for (an empty url is the in-process simulator)"
                    .to_owned(),
            );
        }
        let router = in_process
            .get(&target)
            .ok_or_else(|| "url is empty and no in-process simulator runs here".to_owned())?;
        return Ok(Arc::new(InProcess::new(router.clone())));
    }
    let client_tls =
        ClientTls::build(tls.unwrap_or(&TlsConfig::default())).map_err(|e| e.to_string())?;
    let remote = Remote::with_tls(url, &client_tls).map_err(|m| format!("url: {m}"))?;
    if tls.is_some() && !remote.is_https() {
        // Most likely a forgotten `s`: the settings would silently do
        // nothing and the traffic would go unencrypted.
        return Err(format!(
            "tls: the settings are for an https:// url, and `{url}` is plain http"
        ));
    }
    Ok(Arc::new(remote))
}

/// The URLs of `connectors` and `sources` that go unencrypted over the
/// network: plain `http://` to a host other than this machine (loopback
/// addresses and `localhost` are fine: the simulators and local fakes).
/// Each names its setting. Allowed (a trusted network, a TLS-terminating
/// sidecar), so `config check` and `serve` warn rather than refuse.
pub fn plain_http_warnings(
    connectors: &BTreeMap<String, ConnectorConfig>,
    sources: &BTreeMap<String, SourceConfig>,
) -> Vec<String> {
    let mut urls: Vec<(String, &str)> = Vec::new();
    for (name, config) in connectors {
        urls.push((format!("connectors.{name}.url"), &config.url));
        for (i, subscriber) in config.subscribers.iter().enumerate() {
            urls.push((
                format!("connectors.{name}.subscribers[{i}].url"),
                &subscriber.url,
            ));
        }
    }
    for (name, config) in sources {
        urls.push((format!("sources.{name}.url"), &config.url));
    }
    urls.into_iter()
        .filter(|(_, url)| is_plain_http_off_machine(url))
        .map(|(key, url)| {
            format!(
                "{key}: `{url}` is plain http to another machine: requests and credentials cross the network unencrypted (use https://)"
            )
        })
        .collect()
}

fn is_plain_http_off_machine(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    match parsed.host() {
        Some(url::Host::Domain(domain)) => {
            !(domain.eq_ignore_ascii_case("localhost")
                || domain.to_ascii_lowercase().ends_with(".localhost"))
        }
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => false,
    }
}
