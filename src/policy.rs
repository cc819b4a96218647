//! The eligibility policy and master data from the command line and in
//! `serve`: `backhaul policy check|simulate`, `backhaul master
//! import|status`, the `[policy]` configuration section, and the reloader
//! that puts a changed policy file in force without a restart.
//!
//! Safe change: a policy is only ever put in force after it loaded and
//! checked clean; a bad file is reported (file, line, rule, field) and the
//! policy in force stays.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use backhaul_engine::{Engine, Rules, RulesHandle, simulate};
use backhaul_master::{Kind, MasterData, Mode, persist};
use backhaul_policy::Policy;
use backhaul_store::AnyStore;
use clap::Subcommand;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// `[policy]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PolicyConfig {
    /// The policy file (TOML). Without one, no policy is in force and
    /// partners approve and reject returns themselves.
    pub(crate) file: Option<PathBuf>,
    /// How often `serve` looks for a changed policy file and for master
    /// data changed by another hub process, in seconds; 0 turns both off.
    pub(crate) reload_secs: u64,
    /// Disposition inspected units by the policy in the same step as the
    /// inspection (otherwise a partner sends dispositions).
    pub(crate) dispose_on_inspection: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            file: None,
            reload_secs: 5,
            dispose_on_inspection: false,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Check a policy file: syntax, unknown fields, types in expressions.
    /// Every problem is printed with its file, line, rule and field.
    Check { file: PathBuf },
    /// Replay the return requests of the event log through a candidate
    /// policy and report which decisions and how much authorised value would
    /// change. Reads only.
    Simulate {
        file: PathBuf,
        /// How many changed requests to list (all are counted).
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
}

#[derive(Subcommand)]
pub(crate) enum MasterCmd {
    /// Import CSV files of master data, in the order given; each file is
    /// all or nothing, its kind taken from its name (`skus.csv`,
    /// `customers.csv`, `sites.csv`, `orders.csv`, `vendors.csv`,
    /// `crosswalks.csv`). Stops at the first file with problems.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check and say what would change; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The master data revision and how many records of each kind.
    Status,
}

/// Reads and checks a policy file; the error lists every problem.
pub(crate) fn load(path: &Path) -> anyhow::Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Policy::load(&path.display().to_string(), &text).map_err(|errors| {
        anyhow::anyhow!(
            "policy {} is not valid; nothing was activated:\n{errors}",
            path.display()
        )
    })
}

pub(crate) async fn run_policy(
    action: PolicyCmd,
    store: Option<AnyStore>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        PolicyCmd::Check { file } => {
            let policy = load(&file)?;
            writeln!(
                out,
                "policy {} is valid: version {}, time zone {}",
                file.display(),
                policy.version(),
                policy.timezone()
            )?;
            Ok(())
        }
        PolicyCmd::Simulate { file, show } => {
            let policy = load(&file)?;
            let store = store.context("simulate needs the store (`--config`)")?;
            let master = persist::load(&store)
                .await
                .context("cannot load master data")?;
            let rules = Rules {
                policy: Some(std::sync::Arc::new(policy)),
                master: std::sync::Arc::new(master),
            };
            let sim = simulate(&store, &rules).await?;
            writeln!(
                out,
                "policy {} (version {}) against {} return requests in the log:",
                file.display(),
                sim.policy_version,
                sim.requests
            )?;
            for (transition, n) in &sim.transitions {
                writeln!(out, "  {transition:<24} {n:>7}")?;
            }
            writeln!(
                out,
                "{} decisions or amounts would change",
                sim.changed.len()
            )?;
            for (currency, delta) in &sim.value_delta {
                writeln!(out, "  authorised value {delta:+} {currency}")?;
            }
            for c in sim.changed.iter().take(show) {
                writeln!(
                    out,
                    "  {} {} → {}  {} → {} {}  {}",
                    c.rma_number,
                    c.was,
                    c.would_be,
                    c.value_was,
                    c.value_would_be,
                    c.currency,
                    c.failed.join(", ")
                )?;
            }
            if sim.changed.len() > show {
                writeln!(out, "  … {} more", sim.changed.len() - show)?;
            }
            Ok(())
        }
    }
}

pub(crate) async fn run_master(
    action: MasterCmd,
    store: AnyStore,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut base = persist::load(&store)
        .await
        .context("cannot load master data")?;
    match action {
        MasterCmd::Status => {
            write_status(&base, out)?;
        }
        MasterCmd::Import { files, dry_run } => {
            let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
            for file in &files {
                let kind = kind_of(file)?;
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let name = file.display().to_string();
                let outcome = persist::import_csv(
                    &store,
                    &base,
                    kind,
                    &name,
                    &bytes,
                    mode,
                    chrono::Utc::now(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let c = outcome.changes.of(kind);
                writeln!(
                    out,
                    "{name}: {} {kind} records: {} new, {} changed, {} unchanged{}",
                    c.created + c.updated + c.unchanged,
                    c.created,
                    c.updated,
                    c.unchanged,
                    if dry_run {
                        " (dry run: nothing stored)"
                    } else {
                        ""
                    }
                )?;
                if let Some(data) = outcome.data {
                    base = data;
                }
            }
            if !dry_run {
                write_status(&base, out)?;
            }
        }
    }
    Ok(())
}

fn write_status(master: &MasterData, out: &mut impl Write) -> anyhow::Result<()> {
    let counts: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{} {}", master.count(*k), k.file_stem()))
        .collect();
    writeln!(
        out,
        "master data revision {}: {}",
        master.revision(),
        counts.join(", ")
    )?;
    Ok(())
}

/// The kind of a CSV file, from its name.
fn kind_of(file: &Path) -> anyhow::Result<Kind> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    match Kind::parse(stem) {
        Some(kind) => Ok(kind),
        None => bail!(
            "{}: cannot tell the kind of master data from the file name; name it skus.csv, customers.csv, sites.csv, orders.csv, vendors.csv or crosswalks.csv",
            file.display()
        ),
    }
}

/// Watches the policy file: a file whose content changed is loaded and, if
/// it checks clean, put in force; a bad one is refused and the policy in
/// force stays.
pub(crate) struct PolicyWatch {
    file: PathBuf,
    /// Digest of the content last looked at (activated or refused), so a
    /// refused file is reported once, not on every tick.
    seen: Option<Vec<u8>>,
}

/// What one look at the policy file did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    Unchanged,
    /// The new version in force.
    Activated(String),
    /// Why the changed file was refused.
    Refused(String),
}

impl PolicyWatch {
    /// Watches `file`, whose current content is what is in force.
    pub(crate) fn new(file: PathBuf) -> PolicyWatch {
        let seen = digest(&file);
        PolicyWatch { file, seen }
    }

    pub(crate) fn check(&mut self, rules: &RulesHandle) -> Reload {
        let now = digest(&self.file);
        if now.is_none() || now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        match load(&self.file) {
            Ok(policy) => {
                let version = policy.version().to_owned();
                rules.set_policy(policy);
                Reload::Activated(version)
            }
            Err(error) => Reload::Refused(format!("{error:#}")),
        }
    }
}

fn digest(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path)
        .ok()
        .map(|b| Sha256::digest(&b).to_vec())
}

/// Keeps the policy file and master data current in `serve`: on every tick
/// the [`PolicyWatch`] looks at the file, and master data is reloaded if
/// another hub process changed it.
pub(crate) async fn reload(
    engine: Engine,
    file: Option<PathBuf>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut watch = file.map(PolicyWatch::new);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Some(watch) = &mut watch {
            match watch.check(engine.rules()) {
                Reload::Unchanged => {}
                Reload::Activated(version) => tracing::info!(version, "policy activated"),
                Reload::Refused(error) => {
                    let in_force = engine
                        .rules()
                        .current()
                        .policy
                        .as_ref()
                        .map(|p| p.version().to_owned())
                        .unwrap_or_default();
                    tracing::error!(%error, in_force, "policy change refused; the policy in force stays");
                }
            }
        }
        if let Err(error) = engine.reload_master().await {
            tracing::warn!(%error, "cannot reload master data; the data in force stays");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../samples/policy.toml");

    #[test]
    fn a_changed_policy_file_is_activated_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(&file, SAMPLE).unwrap();
        let rules = RulesHandle::new(Some(load(&file).unwrap()), MasterData::empty());
        let version = |rules: &RulesHandle| {
            rules
                .current()
                .policy
                .as_ref()
                .unwrap()
                .version()
                .to_owned()
        };
        let mut watch = PolicyWatch::new(file.clone());
        assert_eq!(watch.check(&rules), Reload::Unchanged);

        let next = SAMPLE.replace("version = \"2026-spring.1\"", "version = \"2026-summer.1\"");
        assert_ne!(next, SAMPLE);
        std::fs::write(&file, &next).unwrap();
        assert_eq!(
            watch.check(&rules),
            Reload::Activated("2026-summer.1".into())
        );
        assert_eq!(version(&rules), "2026-summer.1");

        let broken = next.replace(
            "version = \"2026-summer.1\"",
            "version = \"2026-summer.2\"\ncolour = 1",
        );
        std::fs::write(&file, &broken).unwrap();
        match watch.check(&rules) {
            Reload::Refused(why) => assert!(why.contains("colour"), "{why}"),
            other => panic!("a bad policy was not refused: {other:?}"),
        }
        assert_eq!(
            version(&rules),
            "2026-summer.1",
            "the policy in force stays"
        );
        // Refused once, not on every tick.
        assert_eq!(watch.check(&rules), Reload::Unchanged);
    }
}
