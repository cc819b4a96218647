//! The `backhaul` binary: the command-line entry point.
//!
//! Layout:
//! - `config`: layered configuration (defaults → file → environment → flags).
//! - `demo`: the whole lifecycle on the embedded default, driven as partners would.
//! - `deliveries`: the exception queue and dead letters from the command line.
//! - `bench`: throughput of full lifecycles against the raw storage ceiling.
//! - `policy`: `backhaul policy check|simulate`, `backhaul master import|status`,
//!   the `[policy]` section and the policy reloader of `serve`.
//! - `runtime`: opening the store and starting the engine under one shutdown token.
//!
//! `anyhow` is used here and only here; the libraries have typed errors.

mod bench;
mod config;
mod deliveries;
mod demo;
mod policy;
mod runtime;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use backhaul_api::Scope;
use backhaul_store::EventStore;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// mimalloc instead of glibc malloc: with many threads handing buffers to
/// one another (callers, the committer, SQLite's worker), glibc's arenas
/// spent a tenth of the CPU time of a loaded hub in `malloc`/`free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "backhaul", version, about = "Returns integration hub")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP API.
    Serve {
        /// Configuration file (TOML); environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Drive a few hundred realistic returns through every stage on an
    /// embedded SQLite store and print what happened.
    Demo {
        /// Folder for the database; a temporary one if omitted.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of returns.
        #[arg(long, default_value_t = 300)]
        returns: usize,
        /// Seed of the scenario mix, for a repeatable run.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Manage partner API keys.
    Keys {
        #[command(subcommand)]
        action: KeysCmd,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Rebuild the read model (return summaries) from the event log.
    Replay {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Measure full-lifecycle throughput against the raw storage ceiling.
    Bench(bench::BenchArgs),
    /// Print the canonical model's JSON Schema.
    Schema,
    /// Check the configured connectors: can each target be reached, and how
    /// many deliveries wait, failed or are done per target.
    Connectors {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Inspect and operate on outbound deliveries (the exception queue).
    Deliveries {
        #[command(subcommand)]
        action: deliveries::DeliveriesCommand,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Who is acting, recorded in the audit trail of retry, skip and cancel.
        #[arg(long, global = true, env = "BACKHAUL_ACTOR", default_value = "cli")]
        actor: String,
    },
    /// Check a policy file, or replay the log through a candidate policy.
    Policy {
        #[command(subcommand)]
        action: policy::PolicyCmd,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Load and inspect master data (SKUs, customers, orders, crosswalks…).
    Master {
        #[command(subcommand)]
        action: policy::MasterCmd,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Run a simulator of an external system (erp, wms, carrier, portal)
    /// over HTTP with its own durable state, for tests and trials.
    Sim {
        /// Which system: erp, wms, carrier or portal.
        kind: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:7001")]
        listen: String,
        /// SQLite file holding the simulator's state (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Simulator settings (TOML: faults, seed, erp/wms/carrier sections).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; the token is printed once and stored only hashed.
    Create {
        #[arg(long)]
        partner: String,
        /// Scopes, e.g. returns:create returns:read warehouse:write.
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
    },
    List,
    Revoke {
        key_id: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a configuration without starting anything.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Cmd::Serve { config, listen } => {
            let mut config = Config::load(config.as_deref())?;
            if let Some(listen) = listen {
                config.server.listen = listen;
                config.validate()?;
            }
            init_logging(&config);
            runtime::serve(config).await
        }
        Cmd::Demo { dir, returns, seed } => {
            if returns == 0 {
                bail!("--returns: must be at least 1");
            }
            demo::run(dir, returns, seed, &mut out).await
        }
        Cmd::Keys { action, config } => {
            let config = Config::load(config.as_deref())?;
            let store = backhaul_store::AnyStore::open(&config.store)
                .await
                .with_context(|| format!("cannot open the store at {}", config.store.url))?;
            match action {
                KeysCmd::Create { partner, scopes } => {
                    let scopes = scopes
                        .iter()
                        .map(|s| Scope::parse(s).map_err(|e| anyhow::anyhow!("--scope {s:?}: {e}")))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let (token, record) =
                        backhaul_api::generate_key(&partner, &scopes, chrono::Utc::now())
                            .map_err(|e| anyhow::anyhow!("--partner {partner:?}: {e}"))?;
                    store.insert_api_key(record.clone()).await?;
                    writeln!(out, "key_id:  {}", record.key_id)?;
                    writeln!(out, "partner: {}", record.partner)?;
                    writeln!(out, "scopes:  {}", record.scopes.join(" "))?;
                    writeln!(out, "token:   {token}")?;
                    writeln!(out, "(the token is shown once; only its hash is stored)")?;
                }
                KeysCmd::List => {
                    writeln!(
                        out,
                        "{:<14} {:<16} {:<10} {:<26} scopes",
                        "key_id", "partner", "state", "created"
                    )?;
                    for k in store.list_api_keys().await? {
                        let state = if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        writeln!(
                            out,
                            "{:<14} {:<16} {:<10} {:<26} {}",
                            k.key_id,
                            k.partner,
                            state,
                            k.created_at.to_rfc3339(),
                            k.scopes.join(" ")
                        )?;
                    }
                }
                KeysCmd::Revoke { key_id } => {
                    if !store.revoke_api_key(&key_id, chrono::Utc::now()).await? {
                        bail!("no key with id {key_id:?}");
                    }
                    writeln!(out, "revoked {key_id}")?;
                }
            }
            Ok(())
        }
        Cmd::Replay { config } => {
            let config = Config::load(config.as_deref())?;
            let store = backhaul_store::AnyStore::open(&config.store)
                .await
                .with_context(|| format!("cannot open the store at {}", config.store.url))?;
            let report = backhaul_engine::replay(&store).await?;
            writeln!(
                out,
                "replayed {} events into {} return summaries",
                report.events, report.returns
            )?;
            Ok(())
        }
        Cmd::Config {
            action: ConfigCmd::Check { config },
        } => {
            let path = config.clone();
            let config = Config::load(config.as_deref())?;
            writeln!(
                out,
                "configuration {} is valid: listen {}, store {}",
                path.map_or_else(
                    || "(defaults + environment)".to_owned(),
                    |p| p.display().to_string()
                ),
                config.server.listen,
                config.store.url
            )?;
            for warning in config.warnings() {
                writeln!(out, "warning: {warning}")?;
            }
            Ok(())
        }
        Cmd::Bench(args) => bench::run(args, &mut out).await,
        Cmd::Connectors { config } => {
            let config = Config::load(config.as_deref())?;
            check_connectors(&config, &mut out).await
        }
        Cmd::Deliveries {
            action,
            config,
            actor,
        } => {
            let config = Config::load(config.as_deref())?;
            let store = backhaul_store::AnyStore::open(&config.store)
                .await
                .with_context(|| format!("cannot open the store at {}", config.store.url))?;
            deliveries::run(store, action, &actor, chrono::Utc::now(), &mut out).await
        }
        Cmd::Sim {
            kind,
            listen,
            db,
            config,
        } => run_sim(&kind, &listen, db, config.as_deref(), &mut out).await,
        Cmd::Policy { action, config } => {
            // `check` needs nothing but the file; `simulate` reads the store.
            let store = match &action {
                policy::PolicyCmd::Check { .. } => None,
                policy::PolicyCmd::Simulate { .. } => {
                    let config = Config::load(config.as_deref())?;
                    Some(
                        backhaul_store::AnyStore::open(&config.store)
                            .await
                            .with_context(|| {
                                format!("cannot open the store at {}", config.store.url)
                            })?,
                    )
                }
            };
            policy::run_policy(action, store, &mut out).await
        }
        Cmd::Master { action, config } => {
            let config = Config::load(config.as_deref())?;
            let store = backhaul_store::AnyStore::open(&config.store)
                .await
                .with_context(|| format!("cannot open the store at {}", config.store.url))?;
            policy::run_master(action, store, &mut out).await
        }
        Cmd::Schema => {
            let schema = backhaul_domain::schema::canonical_schema();
            writeln!(out, "{}", serde_json::to_string_pretty(&schema)?)?;
            Ok(())
        }
    }
}

/// `backhaul connectors`: a health check of every configured target and the
/// outbox per target and state. Fails if a target cannot be reached.
async fn check_connectors(config: &Config, out: &mut impl Write) -> anyhow::Result<()> {
    use backhaul_store::DeliveryStore;

    let sinks = backhaul_connectors::build(&config.connectors, &std::collections::BTreeMap::new())
        .context("invalid connector configuration")?;
    if sinks.is_empty() {
        writeln!(
            out,
            "no connectors configured ([connectors.<target>] sections)"
        )?;
        return Ok(());
    }
    let store = backhaul_store::AnyStore::open(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))?;
    let counts = store.delivery_counts().await?;
    writeln!(
        out,
        "{:<9} {:<8} {:>8} {:>8} {:>10} {:>6}  health",
        "target", "system", "pending", "done", "exception", "dead"
    )?;
    let mut unhealthy = Vec::new();
    for (sink, _) in &sinks {
        let target = sink.target().as_str();
        let count = |state: backhaul_store::DeliveryState| {
            counts
                .iter()
                .find(|(t, s, _)| t == target && *s == state)
                .map_or(0, |(_, _, n)| *n)
        };
        let health = match sink.health().await {
            Ok(()) => "ok".to_owned(),
            Err(error) => {
                unhealthy.push(target.to_owned());
                format!("unreachable: {error}")
            }
        };
        writeln!(
            out,
            "{:<9} {:<8} {:>8} {:>8} {:>10} {:>6}  {health}",
            target,
            sink.system().as_str(),
            count(backhaul_store::DeliveryState::Pending),
            count(backhaul_store::DeliveryState::Done),
            count(backhaul_store::DeliveryState::Exception),
            count(backhaul_store::DeliveryState::Dead),
        )?;
    }
    if !unhealthy.is_empty() {
        bail!("cannot reach: {}", unhealthy.join(", "));
    }
    Ok(())
}

/// `backhaul sim`: one simulator until SIGINT/SIGTERM.
async fn run_sim(
    kind: &str,
    listen: &str,
    db: PathBuf,
    config: Option<&std::path::Path>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let kind: backhaul_sim::SimKind = kind
        .parse()
        .map_err(|e| anyhow::anyhow!("<kind> {kind:?}: {e}"))?;
    let mut sim_config = backhaul_sim::SimConfig::new(kind);
    if let Some(path) = config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        table.insert("kind".into(), toml::Value::String(kind.as_str().to_owned()));
        sim_config = table
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let sim = backhaul_sim::Sim::open(sim_config, backhaul_sim::SimDb::File(db.clone()))
        .await
        .with_context(|| format!("cannot open the simulator state at {}", db.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}: cannot listen"))?;
    let addr = listener.local_addr()?;
    writeln!(out, "{kind} simulator listening on http://{addr}")?;
    out.flush()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let served = backhaul_sim::serve(sim.clone(), listener, shutdown);
    tokio::pin!(served);
    tokio::select! {
        result = &mut served => result?,
        () = runtime::wait_for_signal() => {
            stop.cancel();
            served.await?;
        }
    }
    sim.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let config = Config::load(Some(&config::example_path())).expect("example config");
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.store.url, "sqlite://backhaul.db");
    }

    #[test]
    fn unknown_config_keys_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn a_relative_policy_path_is_the_config_files_neighbour() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(
            dir.path().join("conf/policy.toml"),
            include_str!("../samples/policy.toml"),
        )
        .unwrap();
        let path = dir.path().join("conf/hub.toml");
        std::fs::write(&path, "[policy]\nfile = \"policy.toml\"\n").unwrap();
        let config = Config::load(Some(&path)).expect("the policy next to the config loads");
        assert_eq!(
            config.policy.file,
            Some(dir.path().join("conf/policy.toml"))
        );
        // A bad policy fails the configuration check, naming the file.
        std::fs::write(dir.path().join("conf/policy.toml"), "version = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("policy.toml:1:"), "{err}");
    }

    #[test]
    fn bad_listen_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nlisten = \"nowhere\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }
}
