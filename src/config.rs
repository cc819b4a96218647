//! Configuration of the `backhaul` binary, loaded in one place: defaults →
//! file (TOML) → environment (`BACKHAUL_…`, `__` between levels, e.g.
//! `BACKHAUL_STORE__URL`) → command-line flags (applied by the caller).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use backhaul_api::{ApiConfig, InboundWebhooks, WebhooksConfig};
use backhaul_broker::BrokerConfig;
use backhaul_connectors::{ConnectorConfig, SourceConfig};
use backhaul_engine::{DispatcherConfig, EngineConfig, ExpiryConfig};
use backhaul_filedrop::DropConfig;
use backhaul_store::StoreConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::policy::PolicyConfig;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) store: StoreConfig,
    pub(crate) engine: EngineConfig,
    pub(crate) api: ApiConfig,
    pub(crate) log: LogConfig,
    /// Connected systems, by target (`erp`, `wms`, `carrier`, `portal`).
    /// Actions for a target without a connector are not written at all.
    pub(crate) connectors: BTreeMap<String, ConnectorConfig>,
    /// How this hub delivers the outbox.
    pub(crate) dispatcher: DispatcherConfig,
    /// Inbound connectors, by name (e.g. `carrier_tracking`).
    pub(crate) sources: BTreeMap<String, SourceConfig>,
    /// Expiring approved returns nobody ships.
    pub(crate) expiry: ExpiryConfig,
    /// The eligibility and disposition policy.
    pub(crate) policy: PolicyConfig,
    /// Message brokers every event of the log is published to.
    pub(crate) broker: BrokerConfig,
    /// Drop folders, by name: files of return requests, receipts, master
    /// data or X12 interchanges, each applied once.
    pub(crate) drops: BTreeMap<String, DropConfig>,
    /// Signed webhooks received (`[webhooks.inbound.<source>]`); the signed
    /// webhooks sent are a connector (`[connectors.portal] kind = "webhook"`).
    pub(crate) webhooks: WebhooksConfig,
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address and port to listen on.
    pub(crate) listen: String,
    /// HTTPS on the listener (`[server.tls]`); without it the hub speaks
    /// plain HTTP (behind a TLS-terminating proxy, or on this machine).
    pub(crate) tls: Option<ServerTlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tls: None,
        }
    }
}

/// The listener's certificate (`[server.tls]`). Relative paths are the
/// configuration file's neighbours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerTlsConfig {
    /// PEM certificate chain the listener presents, leaf first.
    pub(crate) cert_file: PathBuf,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub(crate) key_file: PathBuf,
}

impl ServerTlsConfig {
    /// The certificate and key, read and checked; errors name the setting
    /// (`server.tls.cert_file`) and the file.
    pub(crate) fn load(&self) -> anyhow::Result<backhaul_api::ServerTls> {
        backhaul_api::ServerTls::from_pem_files(&self.cert_file, &self.key_file)
            .map_err(|e| anyhow::anyhow!("server.tls.{e}"))
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub(crate) format: LogFormat,
    /// A tracing filter, e.g. `info` or `backhaul_engine=debug,info`.
    pub(crate) filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment.
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        // Every section has `#[serde(default)]`, so an empty figment yields the defaults.
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Every setting is `section.key`, so its variable has a `__`
        // (`BACKHAUL_STORE__URL`). Variables without one belong to tools and
        // tests (`BACKHAUL_TEST_PG_URL`) and are not configuration.
        figment = figment.merge(
            Env::prefixed("BACKHAUL_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(|e| {
            let source =
                file.map_or_else(|| "the environment".to_owned(), |p| p.display().to_string());
            anyhow::anyhow!("invalid configuration in {source}: {e}")
        })?;
        // A relative policy path is the configuration file's neighbour, so
        // `serve --config /etc/backhaul/hub.toml` works from any directory.
        if let (Some(config_file), Some(policy)) = (file, &config.policy.file)
            && policy.is_relative()
            && let Some(folder) = config_file.parent()
        {
            config.policy.file = Some(folder.join(policy));
        }
        // The same for the TLS files of connectors, webhook subscribers and
        // sources, and for the folders of drops and of the X12 partner
        // connector.
        if let Some(folder) = file.and_then(Path::parent) {
            config.resolve_tls_paths(folder);
            config.resolve_folders(folder);
            if let Some(tls) = &mut config.server.tls {
                for path in [&mut tls.cert_file, &mut tls.key_file] {
                    if path.is_relative() {
                        *path = folder.join(&*path);
                    }
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: addresses and URLs that must parse.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if let Some(tls) = &self.server.tls {
            tls.load()?;
        }
        let url = &self.store.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("store.url: {url:?} must start with sqlite: or postgres://");
        }
        // The same checks `serve` makes when it builds them; with no
        // in-process simulators here, an empty url is refused too.
        backhaul_connectors::build(&self.connectors, &BTreeMap::new())?;
        backhaul_connectors::build_sources(&self.sources, &BTreeMap::new())?;
        // Resolves every secret from the environment, as `serve` does, so a
        // missing variable is named here rather than at start-up.
        InboundWebhooks::build(&self.webhooks)?;
        if self.dispatcher.instance.trim().is_empty() {
            bail!("dispatcher.instance: must not be empty");
        }
        // The same checks `serve` makes when it builds the publisher and
        // the consumer.
        self.broker.validate()?;
        // The same checks `serve` makes when it builds the drop folders,
        // without creating them.
        backhaul_filedrop::validate_all(&self.drops)?;
        if let Some(file) = &self.policy.file {
            crate::policy::load(file).context("policy.file")?;
        }
        if self.api.max_body_bytes == 0 {
            bail!("api.max_body_bytes: must be greater than zero");
        }
        if self.engine.committer.max_batch_events == 0 || self.engine.committer.queue_capacity == 0
        {
            bail!(
                "engine.committer: max_batch_events and queue_capacity must be greater than zero"
            );
        }
        Ok(())
    }

    /// Makes the relative paths of every `tls` table relative to `folder`.
    fn resolve_tls_paths(&mut self, folder: &Path) {
        for connector in self.connectors.values_mut() {
            let subscribers = connector.subscribers.iter_mut().map(|s| &mut s.tls);
            for tls in std::iter::once(&mut connector.tls)
                .chain(subscribers)
                .flatten()
            {
                tls.resolve_relative_to(folder);
            }
        }
        for tls in self.sources.values_mut().filter_map(|s| s.tls.as_mut()) {
            tls.resolve_relative_to(folder);
        }
    }

    /// Makes the relative folders of drops (`dir`, `x12.outbound_dir`) and
    /// of `x12-partner` connectors (`outbound_dir`) relative to `folder`.
    fn resolve_folders(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        };
        for drop in self.drops.values_mut() {
            resolve(&mut drop.dir);
            if let Some(x12) = &mut drop.x12 {
                resolve(&mut x12.outbound_dir);
            }
        }
        for partner in self
            .connectors
            .values_mut()
            .filter_map(|c| c.x12_partner.as_mut())
        {
            resolve(&mut partner.outbound_dir);
        }
    }

    /// What is allowed but probably a mistake, for `config check` to print
    /// and `serve` to log: plain http to another machine.
    pub(crate) fn warnings(&self) -> Vec<String> {
        backhaul_connectors::plain_http_warnings(&self.connectors, &self.sources)
    }

    pub(crate) fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.server.listen.parse().with_context(|| {
            format!(
                "server.listen: {:?} is not an address like 127.0.0.1:8080",
                self.server.listen
            )
        })
    }
}

/// The example configuration shipped with the project.
#[cfg(test)]
pub(crate) fn example_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("backhaul.example.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_keeps_the_broker_off_with_every_key_spelt_right() {
        let config = Config::load(Some(&example_path())).expect("example config");
        assert!(!config.broker.nats.enabled());
        assert_eq!(config.broker.nats.stream, "BACKHAUL_EVENTS");
        assert_eq!(config.broker.nats.subject_prefix, "backhaul.events");
        assert!(!config.broker.nats.consumer.enabled);
        assert_eq!(config.broker.nats.consumer.stream, "BACKHAUL_INBOUND");
        assert_eq!(config.broker.nats.consumer.source, "nats");
        assert!(
            config.broker.kafka.is_none(),
            "Kafka is off unless its section is there"
        );
    }

    #[test]
    fn a_kafka_section_needs_the_feature_and_valid_values() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "[broker.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
        )
        .expect("written");
        let loaded = Config::load(Some(&path));
        if cfg!(feature = "kafka") {
            loaded.expect("valid with the feature");
        } else {
            let err = format!("{:#}", loaded.expect_err("refused without the feature"));
            assert!(err.contains("--features kafka"), "{err}");
        }
        std::fs::write(
            &path,
            "[broker.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[broker.kafka.client_env]\n\"sasl.password\" = \"BACKHAUL_TEST_SURELY_UNSET_VARIABLE\"\n",
        )
        .expect("written");
        let err = format!("{:#}", Config::load(Some(&path)).expect_err("refused"));
        let expected = if cfg!(feature = "kafka") {
            "broker.kafka.client_env"
        } else {
            "--features kafka"
        };
        assert!(err.contains(expected), "{err}");
    }

    /// The commented webhook example of the example file, uncommented.
    fn webhook_example() -> String {
        let text = std::fs::read_to_string(example_path()).expect("example config");
        let start = text
            .find("# --- example: signed webhooks ---")
            .expect("the webhook example starts");
        let end = text
            .find("# --- end of example ---")
            .expect("the webhook example ends");
        text[start..end]
            .lines()
            .skip(1)
            .map(|line| {
                line.strip_prefix("# ")
                    .unwrap_or(line.trim_start_matches('#'))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_commented_webhook_example_builds_with_its_secrets_set() {
        let config: Config = toml::from_str(&webhook_example()).expect("the example parses");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let env = |name: &str| name.starts_with("BACKHAUL_").then(|| secret.clone());
        let inbound = InboundWebhooks::build_with(&config.webhooks, env).expect("sources build");
        assert_eq!(inbound.names().collect::<Vec<_>>(), ["carrier", "wms"]);
        let sinks = backhaul_connectors::build_with_env(&config.connectors, &BTreeMap::new(), &env)
            .expect("the webhook connector builds");
        assert_eq!(sinks.len(), 1);

        // Without the variables, each is named.
        let err = InboundWebhooks::build_with(&config.webhooks, |_| None).unwrap_err();
        assert_eq!(err.key, "webhooks.inbound.carrier.secret_env");
        assert!(
            err.to_string().contains("BACKHAUL_CARRIER_WEBHOOK_SECRET"),
            "{err}"
        );
        let err =
            backhaul_connectors::build_with_env(&config.connectors, &BTreeMap::new(), &|_| None)
                .err()
                .expect("refused")
                .to_string();
        assert!(
            err.contains("connectors.portal.subscribers[0].secret_env")
                && err.contains("BACKHAUL_CRM_WEBHOOK_SECRET"),
            "{err}"
        );
    }

    /// The commented X12 180 example of the example file, uncommented,
    /// with its folder under `root`.
    fn x12_partner_example(root: &Path) -> String {
        let text = std::fs::read_to_string(example_path()).expect("example config");
        let start = text
            .find("# --- example: X12 180 out ---")
            .expect("the X12 example starts");
        let end = text
            .find("# --- end of X12 example ---")
            .expect("the X12 example ends");
        text[start..end]
            .lines()
            .skip(1)
            .map(|line| {
                line.strip_prefix("# ")
                    .unwrap_or(line.trim_start_matches('#'))
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace("/var/lib/backhaul", &root.display().to_string())
    }

    #[test]
    fn the_commented_x12_partner_example_builds_once_its_folder_exists() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config: Config =
            toml::from_str(&x12_partner_example(dir.path())).expect("the example parses");
        // The folder is the partner transport's: the hub does not make it.
        let err = backhaul_connectors::build(&config.connectors, &BTreeMap::new())
            .err()
            .expect("refused without its folder")
            .to_string();
        assert!(
            err.starts_with("connectors.edi.x12_partner.outbound_dir: "),
            "{err}"
        );
        std::fs::create_dir_all(dir.path().join("drops/megamart/out")).expect("created");
        let sinks = backhaul_connectors::build(&config.connectors, &BTreeMap::new())
            .expect("the x12-partner connector builds");
        assert_eq!(sinks.len(), 1);
        assert_eq!(sinks[0].0.target(), backhaul_domain::action::Target::Edi);
    }

    #[test]
    fn the_example_documents_drop_folders_that_parse() {
        let text = std::fs::read_to_string(example_path()).expect("example config");
        // The example keeps its drops commented out (their folders would be
        // created), at the end of the file; uncommented, every one must
        // parse and pass the checks.
        let mut section = String::new();
        let mut on = false;
        for line in text.lines() {
            if line.starts_with("# [drops.") {
                on = true;
            }
            // From the first drop on, every commented line is TOML (the
            // explanation comes before it).
            if on {
                let rest = line
                    .strip_prefix("# ")
                    .or_else(|| line.strip_prefix('#'))
                    .unwrap_or(line);
                section.push_str(rest);
                section.push('\n');
            }
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let section = section.replace("/var/lib/backhaul", &dir.path().display().to_string());
        let drops: BTreeMap<String, BTreeMap<String, DropConfig>> =
            toml::from_str(&section).unwrap_or_else(|e| panic!("{e}\n{section}"));
        let drops = &drops["drops"];
        assert_eq!(drops.len(), 7, "{section}");
        backhaul_filedrop::validate_all(drops).expect("the example's drops pass");
    }

    #[test]
    fn a_bad_tls_file_fails_the_check_naming_the_connector_the_field_and_the_path() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir(dir.path().join("conf")).expect("created");
        std::fs::write(dir.path().join("conf/not-a-ca.pem"), "hello\n").expect("written");
        let path = dir.path().join("conf/hub.toml");
        for (file, expected) in [
            ("missing.pem", "cannot read"),
            ("not-a-ca.pem", "holds no PEM certificate"),
        ] {
            std::fs::write(
                &path,
                format!(
                    "[connectors.wms]\nkind = \"sim-wms\"\nurl = \"https://wms.example.com\"\n\
                     [connectors.wms.tls]\nca_file = \"{file}\"\n"
                ),
            )
            .expect("written");
            let err = format!("{:#}", Config::load(Some(&path)).expect_err("refused"));
            // The relative path is the configuration file's neighbour.
            let full = dir.path().join("conf").join(file).display().to_string();
            assert!(
                err.contains("connectors.wms: tls.ca_file:")
                    && err.contains(expected)
                    && err.contains(&full),
                "{err}"
            );
        }
    }

    #[test]
    fn relative_drop_and_partner_folders_are_the_configuration_files_neighbours() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let conf = dir.path().join("conf");
        for sub in ["drops/in", "drops/997", "edi-out"] {
            std::fs::create_dir_all(conf.join(sub)).expect("created");
        }
        let path = conf.join("hub.toml");
        std::fs::write(
            &path,
            r#"
[drops.edi]
kind = "x12"
dir = "drops/in"
[drops.edi.x12]
our_qualifier = "ZZ"
our_id = "BACKHAUL"
outbound_dir = "drops/997"
currency = "USD"
site = "DC1"
default_reason = "OTHER"

[connectors.edi]
kind = "x12-partner"
[connectors.edi.x12_partner]
outbound_dir = "edi-out"
sender_qualifier = "ZZ"
sender_id = "BACKHAUL"
[connectors.edi.x12_partner.partners.MM-0042]
receiver_qualifier = "ZZ"
receiver_id = "MEGAMART"
usage = "P"
"#,
        )
        .expect("written");
        let config = Config::load(Some(&path)).expect("valid from any working directory");
        let drop = &config.drops["edi"];
        assert_eq!(drop.dir, conf.join("drops/in"));
        assert_eq!(
            drop.x12.as_ref().expect("x12").outbound_dir,
            conf.join("drops/997")
        );
        let partner = config.connectors["edi"]
            .x12_partner
            .as_ref()
            .expect("x12_partner");
        assert_eq!(partner.outbound_dir, conf.join("edi-out"));
    }

    #[test]
    fn plain_http_to_another_machine_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "[connectors.wms]\nkind = \"sim-wms\"\nurl = \"http://wms.internal:8080\"\n\
             [connectors.carrier]\nkind = \"sim-carrier\"\nurl = \"http://127.0.0.1:7003\"\n",
        )
        .expect("written");
        let config = Config::load(Some(&path)).expect("valid");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("connectors.wms.url:"),
            "{warnings:?}"
        );
    }

    #[test]
    fn config_check_refuses_a_bad_broker_naming_the_field() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("hub.toml");
        for (section, field) in [
            ("url = \"http://127.0.0.1:4222\"", "broker.nats.url"),
            (
                "url = \"nats://127.0.0.1:4222\"\nstream = \"\"",
                "broker.nats.stream",
            ),
            // A consumer without a server is refused, not silently off.
            ("[broker.nats.consumer]\nenabled = true", "broker.nats.url"),
            (
                "url = \"nats://127.0.0.1:4222\"\n[broker.nats.consumer]\nenabled = true\nbatch = 0",
                "broker.nats.consumer.batch",
            ),
        ] {
            std::fs::write(&path, format!("[broker.nats]\n{section}\n")).expect("written");
            let err = Config::load(Some(&path)).expect_err("refused").to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
