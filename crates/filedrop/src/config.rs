//! The `[drops.<name>]` configuration: one section per drop folder, its
//! kind and the settings that kind needs, and the checks `serve` and
//! `config check` share (so `config check` refuses exactly what `serve`
//! would). What the files look like is documented in the modules that read
//! them (`returns`, `warehouse`, `master`, `x12`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use backhaul_domain::model::RequestedOutcome;
use backhaul_domain::values::{Currency, ReasonCode, SiteCode};
use backhaul_master::Kind;
use serde::Deserialize;

use crate::Error;
use crate::warehouse::Events;

/// One drop folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// What the files in the folder are.
    pub kind: DropKind,
    /// The folder producers drop files into. It and its `processing/`,
    /// `archive/` and `rejected/` subfolders are created if missing and must
    /// be writable by the hub.
    pub dir: PathBuf,
    /// Time between two scans of the folder, in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// File name endings taken, compared ignoring case (a producer writes
    /// `name.tmp` and renames it to `name.csv` when done, so a half-written
    /// file is never taken). Empty: the kind's default (`.csv`; `.txt` and
    /// `.dat` for fixed width; `.edi` and `.x12` for X12).
    #[serde(default)]
    pub suffixes: Vec<String>,
    /// The sender the engine sees: it scopes the dedup keys and is what
    /// `[engine.ownership] partners` maps to a system (and so which
    /// crosswalk translates the file's codes). Default: the drop's name.
    #[serde(default)]
    pub source: Option<String>,
    /// `csv-master` only: the kind of master data in the files (`skus`,
    /// `customers`, `sites`, `orders`, `vendors`, `crosswalks`, or the
    /// singular).
    #[serde(default)]
    pub master: Option<String>,
    /// `fixed-width-returns` only: the record layout, one entry per field,
    /// named as the columns of `csv-returns`.
    #[serde(default)]
    pub fields: Vec<FixedField>,
    /// `x12` only: the trading partner agreement.
    #[serde(default)]
    pub x12: Option<X12Config>,
}

fn default_interval_ms() -> u64 {
    5_000
}

/// What a drop folder's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropKind {
    /// Return requests, one CSV row per line, grouped by `request_ref`.
    CsvReturns,
    /// Warehouse receipts of existing returns, one CSV row per line,
    /// grouped by `receipt_ref`.
    CsvReceipts,
    /// Inspections (condition, serials, lot, evidence reference) of
    /// received units, grouped by `inspection_ref`.
    CsvInspections,
    /// Putaways: inspected units put away under a disposition at a
    /// location, grouped by `putaway_ref`.
    CsvPutaways,
    /// Master data of one kind (`master`), imported all or nothing.
    CsvMaster,
    /// Return requests in fixed-width records laid out by `fields`.
    FixedWidthReturns,
    /// X12 interchanges of 180 return authorization requests.
    X12,
}

impl DropKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DropKind::CsvReturns => "csv-returns",
            DropKind::CsvReceipts => "csv-receipts",
            DropKind::CsvInspections => "csv-inspections",
            DropKind::CsvPutaways => "csv-putaways",
            DropKind::CsvMaster => "csv-master",
            DropKind::FixedWidthReturns => "fixed-width-returns",
            DropKind::X12 => "x12",
        }
    }

    fn default_suffixes(self) -> &'static [&'static str] {
        match self {
            DropKind::CsvReturns
            | DropKind::CsvReceipts
            | DropKind::CsvInspections
            | DropKind::CsvPutaways
            | DropKind::CsvMaster => &[".csv"],
            DropKind::FixedWidthReturns => &[".txt", ".dat"],
            DropKind::X12 => &[".edi", ".x12"],
        }
    }
}

/// One field of a fixed-width record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedField {
    /// A `csv-returns` column name (`request_ref`, `sku`…).
    pub name: String,
    /// First character of the field, counting from 1 (as legacy record
    /// layouts are written).
    pub start: usize,
    /// Width in characters; the value is trimmed of the padding.
    pub length: usize,
}

/// The parts of a trading partner agreement an X12 drop needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X12Config {
    /// Our interchange id qualifier (ISA07 of what partners send us), e.g.
    /// `ZZ` or `01`.
    pub our_qualifier: String,
    /// Our interchange id (ISA08). An interchange addressed to anyone else
    /// is rejected whole.
    pub our_id: String,
    /// Our application receiver code (GS03); a group addressed to another
    /// is rejected. Default: `our_id`.
    #[serde(default)]
    pub our_application_id: Option<String>,
    /// Where the 997s (and TA1s) are written, as `<name>.tmp` renamed when
    /// complete, for the partner transport to pick up. Created if missing.
    pub outbound_dir: PathBuf,
    /// What a 180 does not carry: the currency of its prices…
    pub currency: String,
    /// …the site that receives the goods…
    pub site: String,
    /// …what the customer asks for (default `refund`)…
    #[serde(default = "default_outcome")]
    pub requested_outcome: RequestedOutcome,
    /// …the partner's RDR02 reason codes → canonical reason codes (a code
    /// not listed rejects its transaction set)…
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// …and the reason of a line that gives none.
    pub default_reason: String,
}

fn default_outcome() -> RequestedOutcome {
    RequestedOutcome::Refund
}

/// Column names a fixed-width layout may use: those of `csv-returns`.
pub(crate) const RETURN_COLUMNS: &[&str] = &[
    "request_ref",
    "customer",
    "order_ref",
    "currency",
    "site",
    "channel",
    "region",
    "line_no",
    "sku",
    "quantity",
    "uom",
    "reason",
    "requested_outcome",
    "unit_price",
    "unit_tax",
    "serials",
    "lot",
    "order_line_ref",
];

/// A checked drop configuration, what `build` runs on.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) kind: Checks,
    pub(crate) dir: PathBuf,
    pub(crate) interval: std::time::Duration,
    /// Lower case, each starting with what it must end with.
    pub(crate) suffixes: Vec<String>,
    pub(crate) source: String,
}

/// The kind with its own settings, parsed.
#[derive(Debug, Clone)]
pub(crate) enum Checks {
    CsvReturns,
    CsvWarehouse(Events),
    CsvMaster(Kind),
    FixedWidthReturns(Vec<FixedField>),
    X12(Box<X12Checked>),
}

/// [`X12Config`] with its values parsed.
#[derive(Debug, Clone)]
pub(crate) struct X12Checked {
    pub(crate) our_qualifier: String,
    pub(crate) our_id: String,
    pub(crate) our_application_id: String,
    pub(crate) outbound_dir: PathBuf,
    pub(crate) mapping: backhaul_x12::mapping::MappingSettings,
}

/// Checks every drop without creating anything (`config check`): the same
/// checks as [`crate::FileDrop::build`], where a folder that does not exist
/// yet is fine if it could be created.
pub fn validate_all(drops: &BTreeMap<String, DropConfig>) -> Result<(), Error> {
    for (name, config) in drops {
        config.check(name, false)?;
    }
    Ok(())
}

impl DropConfig {
    /// Checks the section `drops.<name>`; with `create`, makes the folders.
    pub(crate) fn check(&self, name: &str, create: bool) -> Result<Checked, Error> {
        let key = |field: &str| format!("drops.{name}.{field}");
        let refuse = |field: &str, reason: String| Error::Config {
            field: key(field),
            reason,
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '.') {
            return Err(Error::Config {
                field: format!("drops.{name}"),
                reason: "a drop's name must be non-empty, without spaces or dots".into(),
            });
        }
        if self.interval_ms == 0 {
            return Err(refuse("interval_ms", "must be greater than zero".into()));
        }
        let suffixes: Vec<String> = if self.suffixes.is_empty() {
            self.kind
                .default_suffixes()
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            self.suffixes.iter().map(|s| s.to_lowercase()).collect()
        };
        for suffix in &suffixes {
            if suffix.is_empty() || suffix.contains('/') || suffix.ends_with(".tmp") {
                return Err(refuse(
                    "suffixes",
                    format!(
                        "{suffix:?} must be a non-empty file name ending, not .tmp (producers write .tmp files and rename them when done)"
                    ),
                ));
            }
        }
        let source = self.source.clone().unwrap_or_else(|| name.to_owned());
        if source.trim().is_empty() {
            return Err(refuse("source", "must not be empty".into()));
        }
        let unused = |field: &str, set: bool| -> Result<(), Error> {
            if set {
                return Err(refuse(
                    field,
                    format!("is not used by kind {:?}", self.kind.as_str()),
                ));
            }
            Ok(())
        };
        if self.kind != DropKind::CsvMaster {
            unused("master", self.master.is_some())?;
        }
        if self.kind != DropKind::FixedWidthReturns {
            unused("fields", !self.fields.is_empty())?;
        }
        if self.kind != DropKind::X12 {
            unused("x12", self.x12.is_some())?;
        }
        let kind = match self.kind {
            DropKind::CsvReturns => Checks::CsvReturns,
            DropKind::CsvReceipts => Checks::CsvWarehouse(Events::Receipts),
            DropKind::CsvInspections => Checks::CsvWarehouse(Events::Inspections),
            DropKind::CsvPutaways => Checks::CsvWarehouse(Events::Putaways),
            DropKind::CsvMaster => {
                let raw = self
                    .master
                    .as_deref()
                    .ok_or_else(|| refuse("master", "required for kind \"csv-master\"".into()))?;
                let kind = Kind::parse(raw).ok_or_else(|| {
                    let known: Vec<&str> = Kind::ALL.iter().map(|k| k.file_stem()).collect();
                    refuse(
                        "master",
                        format!(
                            "{raw:?} is not a kind of master data ({})",
                            known.join(", ")
                        ),
                    )
                })?;
                Checks::CsvMaster(kind)
            }
            DropKind::FixedWidthReturns => {
                check_layout(&self.fields).map_err(|reason| refuse("fields", reason))?;
                Checks::FixedWidthReturns(self.fields.clone())
            }
            DropKind::X12 => {
                let x12 = self.x12.as_ref().ok_or_else(|| {
                    refuse(
                        "x12",
                        "required for kind \"x12\" (the partner agreement)".into(),
                    )
                })?;
                Checks::X12(Box::new(check_x12(x12, &key, create)?))
            }
        };
        check_dir(&self.dir, &key("dir"), create)?;
        for sub in crate::folder::SUBFOLDERS {
            check_dir(&self.dir.join(sub), &key("dir"), create)?;
        }
        Ok(Checked {
            kind,
            dir: self.dir.clone(),
            interval: std::time::Duration::from_millis(self.interval_ms),
            suffixes,
            source,
        })
    }
}

fn check_layout(fields: &[FixedField]) -> Result<(), String> {
    if fields.is_empty() {
        return Err("required for kind \"fixed-width-returns\": the record layout".into());
    }
    let mut seen = BTreeSet::new();
    for field in fields {
        if !RETURN_COLUMNS.contains(&field.name.as_str()) {
            return Err(format!(
                "{:?} is not a return column ({})",
                field.name,
                RETURN_COLUMNS.join(", ")
            ));
        }
        if !seen.insert(field.name.as_str()) {
            return Err(format!("{:?} appears twice", field.name));
        }
        if field.start == 0 || field.length == 0 {
            return Err(format!(
                "{:?}: start counts from 1 and length must be at least 1",
                field.name
            ));
        }
    }
    for required in crate::returns::REQUIRED {
        if !seen.contains(required) {
            return Err(format!("the layout has no {required:?} field"));
        }
    }
    Ok(())
}

fn check_x12(
    x12: &X12Config,
    key: &dyn Fn(&str) -> String,
    create: bool,
) -> Result<X12Checked, Error> {
    let refuse = |field: &str, reason: String| Error::Config {
        field: key(&format!("x12.{field}")),
        reason,
    };
    let ascii_id = |field: &str, value: &str, max: usize| -> Result<(), Error> {
        if value.is_empty()
            || value.len() > max
            || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(refuse(
                field,
                format!("{value:?} must be 1 to {max} printable ASCII characters"),
            ));
        }
        Ok(())
    };
    ascii_id("our_qualifier", &x12.our_qualifier, 2)?;
    ascii_id("our_id", &x12.our_id, 15)?;
    let our_application_id = x12
        .our_application_id
        .clone()
        .unwrap_or_else(|| x12.our_id.clone());
    ascii_id("our_application_id", &our_application_id, 15)?;
    let currency = Currency::parse(&x12.currency).map_err(|e| refuse("currency", e.to_string()))?;
    let site = SiteCode::parse(&x12.site).map_err(|e| refuse("site", e.to_string()))?;
    let default_reason = ReasonCode::parse(&x12.default_reason)
        .map_err(|e| refuse("default_reason", e.to_string()))?;
    let mut reasons = BTreeMap::new();
    for (partner, canonical) in &x12.reasons {
        let code = ReasonCode::parse(canonical)
            .map_err(|e| refuse(&format!("reasons.{partner}"), e.to_string()))?;
        reasons.insert(partner.clone(), code);
    }
    check_dir(&x12.outbound_dir, &key("x12.outbound_dir"), create)?;
    Ok(X12Checked {
        our_qualifier: x12.our_qualifier.clone(),
        our_id: x12.our_id.clone(),
        our_application_id,
        outbound_dir: x12.outbound_dir.clone(),
        mapping: backhaul_x12::mapping::MappingSettings {
            currency,
            site,
            requested_outcome: x12.requested_outcome,
            reasons,
            default_reason,
        },
    })
}

/// A folder that exists and is writable; with `create`, made first. Without
/// it (`config check`), a missing folder is fine if its nearest existing
/// ancestor is a directory: `serve` will create it.
fn check_dir(dir: &Path, field: &str, create: bool) -> Result<(), Error> {
    let refuse = |reason: String| Error::Config {
        field: field.to_owned(),
        reason: format!("{}: {reason}", dir.display()),
    };
    if dir.as_os_str().is_empty() {
        return Err(Error::Config {
            field: field.to_owned(),
            reason: "must not be empty".into(),
        });
    }
    if create {
        std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create it: {e}")))?;
    }
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(refuse("is not a folder".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
            let mut parent = dir.parent();
            while let Some(p) = parent {
                if p.as_os_str().is_empty() || p.is_dir() {
                    return Ok(());
                }
                if p.exists() {
                    return Err(refuse(format!("{} is not a folder", p.display())));
                }
                parent = p.parent();
            }
            return Ok(());
        }
        Err(e) => return Err(refuse(e.to_string())),
    }
    // Permissions say little (root, ACLs, read-only mounts): writing a
    // probe file is the only reliable test.
    let probe = dir.join(format!(".backhaul-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| refuse(format!("is not writable by the hub: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
