//! [`FileDrop`]: one drop folder as a running source. `run_once` is one
//! scan (what the tests call, no sleeping); `run` scans every
//! `interval_ms` until shutdown.
//!
//! One scan: first every file a crash left in `processing/` (oldest claim
//! first), then every waiting file with a configured suffix, by name. For
//! each: claim → read and hash → apply → write the acknowledgement (X12),
//! the reject file and the summary → archive. A technical failure (the
//! store, shutdown) stops that file where it is: it stays in `processing/`
//! and the next scan takes it again from the start, its dedup keys making
//! what was already applied a duplicate.

use std::path::PathBuf;

use backhaul_domain::values::ReturnId;
use backhaul_engine::{Engine, Error as EngineError, Inbox, Received};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::{Checked, Checks, DropConfig, RETURN_COLUMNS};
use crate::folder::{Claimed, Folder, write_atomic};
use crate::reject::{Item, ItemOutcome, Rejects};
use crate::table::{Problem, Table, read_csv, read_fixed};
use crate::warehouse::Events;
use crate::{Error, master, returns, warehouse, x12};

/// What one scan did.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Files processed to the end (archived), in the order taken.
    pub files: Vec<FileReport>,
    /// Files left where they are after a technical failure, with why; the
    /// next scan takes them again.
    pub failed: Vec<(String, String)>,
}

/// What became of one file; also written as its summary.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The name it was dropped under.
    pub file: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// The drop's kind.
    pub kind: &'static str,
    /// Where it was archived.
    pub archived: PathBuf,
    /// The reject file, if anything was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects: Option<PathBuf>,
    /// The acknowledgement written (X12: a 997 or TA1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<PathBuf>,
    /// Why the whole file was refused (nothing in it applied), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Every request, receipt or transaction set of the file.
    pub items: Vec<Item>,
    /// Rows in the reject file.
    pub rejected_rows: usize,
}

impl FileReport {
    fn count(&self, outcome: ItemOutcome) -> usize {
        self.items.iter().filter(|i| i.outcome == outcome).count()
    }

    pub fn applied(&self) -> usize {
        self.count(ItemOutcome::Applied)
    }

    pub fn duplicates(&self) -> usize {
        self.count(ItemOutcome::Duplicate)
    }

    pub fn rejected(&self) -> usize {
        self.count(ItemOutcome::Rejected)
    }

    /// Partners' acknowledgements of what the hub sent (X12 997s).
    pub fn acknowledgements(&self) -> usize {
        self.count(ItemOutcome::Acknowledgement)
    }
}

/// What the engine said to one request or receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Applied(ReturnId),
    Duplicate(ReturnId),
    /// The hub refused it; the same content can never pass.
    Refused {
        code: String,
        reason: String,
    },
}

/// Sorts the engine's answer: `Err` is a technical failure, worth trying
/// the file again for.
pub(crate) fn verdict(result: Result<Received, EngineError>) -> Result<Verdict, String> {
    match result {
        Ok(Received::Applied(o)) => Ok(Verdict::Applied(o.return_id)),
        Ok(Received::Duplicate(o)) => Ok(Verdict::Duplicate(o.return_id)),
        Err(e) => {
            let code = match &e {
                EngineError::Rejected(r) => r.code(),
                EngineError::IdempotencyKeyReused { .. } => "dedup_key_reused",
                EngineError::NotOwner(_) => "not_attribute_owner",
                EngineError::Rules(r) => r.code(),
                EngineError::Invariant(_) => "invariant_violated",
                EngineError::MasterData(_) => "invalid_master_data",
                EngineError::NoPolicy => "no_policy",
                // The hub could not answer now; the same file may pass later.
                EngineError::Contention(_)
                | EngineError::Corrupt(_)
                | EngineError::Master(_)
                | EngineError::Store(_) => return Err(e.to_string()),
            };
            Ok(Verdict::Refused {
                code: code.to_owned(),
                reason: e.to_string(),
            })
        }
    }
}

/// One drop folder, applying its files through an [`Inbox`].
pub struct FileDrop {
    name: String,
    config: Checked,
    folder: Folder,
    inbox: Inbox,
}

/// What processing one file's content produced, before it is written out.
#[derive(Debug, Default)]
struct Work {
    items: Vec<Item>,
    rejects: Option<Rejects>,
    refused: Option<String>,
    ack: Option<(String, String)>,
}

impl FileDrop {
    /// Checks `drops.<name>` and creates the folders (the drop folder, its
    /// `processing/`, `archive/` and `rejected/`, and for X12 the outbound
    /// folder), checking each is writable.
    pub fn build(name: &str, config: &DropConfig, engine: Engine) -> Result<FileDrop, Error> {
        let checked = config.check(name, true)?;
        Ok(FileDrop {
            name: name.to_owned(),
            folder: Folder::new(checked.dir.clone(), checked.suffixes.clone()),
            inbox: Inbox::new(engine, &checked.source),
            config: checked,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One scan of the folder.
    pub async fn run_once(&self) -> Result<ScanReport, Error> {
        self.scan(&CancellationToken::new()).await
    }

    /// Scans every `interval_ms` until `shutdown`. A file being processed
    /// when it is cancelled is left in `processing/` between two of its
    /// requests and finished after the restart.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(drop = %self.name, dir = %self.folder.dir().display(), "watching drop folder");
        loop {
            match self.scan(&shutdown).await {
                Ok(report) => {
                    for (file, error) in &report.failed {
                        tracing::warn!(drop = %self.name, file, error, "file left for the next scan");
                    }
                }
                Err(error) => {
                    tracing::warn!(drop = %self.name, %error, "cannot scan the drop folder; trying again");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
        tracing::info!(drop = %self.name, "drop folder stopped");
    }

    async fn scan(&self, stop: &CancellationToken) -> Result<ScanReport, Error> {
        let mut report = ScanReport::default();
        let mut claimed = self.folder.leftovers().await?;
        if !claimed.is_empty() {
            tracing::info!(drop = %self.name, files = claimed.len(), "processing files a restart left in processing/");
        }
        for name in self.folder.waiting().await? {
            if stop.is_cancelled() {
                break;
            }
            if let Some(c) = self.folder.claim(&name, self.inbox.engine().now()).await? {
                claimed.push(c);
            }
        }
        for file in claimed {
            if stop.is_cancelled() {
                break;
            }
            match self.process(&file, stop).await {
                Ok(done) => report.files.push(done),
                Err(e) => report.failed.push((file.name.clone(), e.to_string())),
            }
        }
        Ok(report)
    }

    async fn process(
        &self,
        claimed: &Claimed,
        stop: &CancellationToken,
    ) -> Result<FileReport, Error> {
        let bytes = tokio::fs::read(&claimed.path)
            .await
            .map_err(|e| Error::io(&claimed.path, e))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let technical = |reason: String| Error::Technical {
            file: claimed.name.clone(),
            reason,
        };
        let work = match &self.config.kind {
            Checks::CsvReturns => match read_csv(&bytes).and_then(|t| {
                t.check_columns(returns::REQUIRED, RETURN_COLUMNS)?;
                Ok(t)
            }) {
                Ok(table) => self.returns(&table, &sha, stop).await,
                Err(problem) => Ok(refused_whole(&problem)),
            },
            Checks::FixedWidthReturns(layout) => match read_fixed(&bytes, layout) {
                Ok(table) => self.returns(&table, &sha, stop).await,
                Err(problem) => Ok(refused_whole(&problem)),
            },
            Checks::CsvWarehouse(events) => match read_csv(&bytes).and_then(|t| {
                warehouse::check_header(&t, *events)?;
                Ok(t)
            }) {
                Ok(table) => self.warehouse(&table, *events, &sha, stop).await,
                Err(problem) => Ok(refused_whole(&problem)),
            },
            Checks::CsvMaster(kind) => {
                master::import(self.inbox.engine(), *kind, &claimed.name, &bytes)
                    .await
                    .map(|imported| Work {
                        items: vec![imported.item],
                        rejects: (!imported.rejects.is_empty()).then_some(imported.rejects),
                        refused: imported.refused,
                        ack: None,
                    })
            }
            Checks::X12(settings) => x12::process(
                &bytes,
                &sha,
                settings,
                &self.inbox,
                self.inbox.engine().now(),
                stop,
            )
            .await
            .map(|processed| Work {
                items: processed.items,
                rejects: (!processed.rejects.is_empty()).then_some(processed.rejects),
                refused: processed.refused,
                ack: processed.ack,
            }),
        }
        .map_err(technical)?;
        self.finish(claimed, &sha, work).await
    }

    /// Writes what the file produced, then archives it: the last step, so a
    /// crash before it processes the file again (writing the same names).
    async fn finish(&self, claimed: &Claimed, sha: &str, work: Work) -> Result<FileReport, Error> {
        let ack = match (&work.ack, &self.config.kind) {
            (Some((name, content)), Checks::X12(settings)) => {
                let path = settings.outbound_dir.join(name);
                write_atomic(&path, content.as_bytes()).await?;
                Some(path)
            }
            (Some(_) | None, _) => None,
        };
        let (rejects, rejected_rows) = match &work.rejects {
            Some(rejects) => {
                let path = self.folder.reject_path(claimed, sha);
                write_atomic(&path, &rejects.to_csv()).await?;
                (Some(path), rejects.len())
            }
            None => (None, 0),
        };
        let mut report = FileReport {
            file: claimed.name.clone(),
            sha256: sha.to_owned(),
            kind: self.kind_name(),
            archived: self
                .folder
                .sub(crate::folder::ARCHIVE)
                .join(claimed.archived_name(sha)),
            rejects,
            ack,
            refused: work.refused,
            items: work.items,
            rejected_rows,
        };
        let summary = serde_json::to_vec_pretty(&report).unwrap_or_default();
        write_atomic(&self.folder.summary_path(claimed, sha), &summary).await?;
        report.archived = self.folder.archive(claimed, sha).await?;
        tracing::info!(
            drop = %self.name,
            file = %report.file,
            applied = report.applied(),
            duplicate = report.duplicates(),
            rejected = report.rejected(),
            refused = report.refused.as_deref().unwrap_or(""),
            "file processed"
        );
        Ok(report)
    }

    fn kind_name(&self) -> &'static str {
        match &self.config.kind {
            Checks::CsvReturns => "csv-returns",
            Checks::CsvWarehouse(Events::Receipts) => "csv-receipts",
            Checks::CsvWarehouse(Events::Inspections) => "csv-inspections",
            Checks::CsvWarehouse(Events::Putaways) => "csv-putaways",
            Checks::CsvMaster(_) => "csv-master",
            Checks::FixedWidthReturns(_) => "fixed-width-returns",
            Checks::X12(_) => "x12",
        }
    }

    async fn returns(
        &self,
        table: &Table,
        sha: &str,
        stop: &CancellationToken,
    ) -> Result<Work, String> {
        let mut work = Work::default();
        let mut rejects = Rejects::for_table(table);
        for group in returns::groups(table, &self.config.source) {
            if stop.is_cancelled() {
                return Err("the hub is shutting down".into());
            }
            let lines = lines_of(table, &group.rows);
            let request = match group.request {
                Err(problems) => {
                    work.items.push(reject_group(
                        table,
                        &group.rows,
                        &group.reference,
                        &problems,
                        &mut rejects,
                    ));
                    continue;
                }
                Ok(request) => request,
            };
            let key = format!("file:{sha}:{}", group.reference);
            let fingerprint = hash_json(&request);
            let received = self.inbox.create(request, &key, &fingerprint, None).await;
            work.items.push(self.item(
                verdict(received)?,
                table,
                &group.rows,
                group.reference,
                lines,
                &mut rejects,
            ));
        }
        work.rejects = (!rejects.is_empty()).then_some(rejects);
        Ok(work)
    }

    async fn warehouse(
        &self,
        table: &Table,
        events: Events,
        sha: &str,
        stop: &CancellationToken,
    ) -> Result<Work, String> {
        let mut work = Work::default();
        let mut rejects = Rejects::for_table(table);
        for group in warehouse::groups(table, events) {
            if stop.is_cancelled() {
                return Err("the hub is shutting down".into());
            }
            let lines = lines_of(table, &group.rows);
            let (target, command) = match group.command {
                Err(problems) => {
                    work.items.push(reject_group(
                        table,
                        &group.rows,
                        &group.reference,
                        &problems,
                        &mut rejects,
                    ));
                    continue;
                }
                Ok(found) => found,
            };
            let return_id = warehouse::resolve(self.inbox.engine(), &target)
                .await
                .map_err(|e| e.to_string())?;
            let outcome = match return_id {
                None => Verdict::Refused {
                    code: "return_not_found".into(),
                    reason: match &target {
                        warehouse::Target::Rma { rma, order_ref } => {
                            format!("no return {rma} among the returns of order {order_ref}")
                        }
                        warehouse::Target::Id(id) => format!("no return {id}"),
                    },
                },
                Some(return_id) => {
                    let key = format!("file:{sha}:{}", group.reference);
                    let fingerprint = hash_json(&command);
                    verdict(
                        self.inbox
                            .receive(return_id, command, &key, &fingerprint, None)
                            .await,
                    )?
                }
            };
            work.items.push(self.item(
                outcome,
                table,
                &group.rows,
                group.reference,
                lines,
                &mut rejects,
            ));
        }
        work.rejects = (!rejects.is_empty()).then_some(rejects);
        Ok(work)
    }

    /// The item of a group the engine answered; a refusal puts every row
    /// of the group in the reject file with the hub's code and reason.
    fn item(
        &self,
        verdict: Verdict,
        table: &Table,
        rows: &[usize],
        reference: String,
        lines: Vec<u64>,
        rejects: &mut Rejects,
    ) -> Item {
        match verdict {
            Verdict::Applied(id) => Item {
                reference,
                lines,
                outcome: ItemOutcome::Applied,
                return_id: Some(id.to_string()),
                reason: None,
            },
            Verdict::Duplicate(id) => Item {
                reference,
                lines,
                outcome: ItemOutcome::Duplicate,
                return_id: Some(id.to_string()),
                reason: Some(
                    "applied before (an earlier copy of the same content, or an attempt a restart cut short); not applied again"
                        .into(),
                ),
            },
            Verdict::Refused { code, reason } => {
                for row in rows.iter().filter_map(|&i| table.rows.get(i)) {
                    rejects.row(row, &Problem::new(row.line, "", &code, reason.clone()));
                }
                Item {
                    reference,
                    lines,
                    outcome: ItemOutcome::Rejected,
                    return_id: None,
                    reason: Some(reason),
                }
            }
        }
    }
}

/// A whole file refused before any row was applied.
fn refused_whole(problem: &Problem) -> Work {
    let mut rejects = Rejects::with_columns(&[]);
    rejects.push(Vec::new(), problem);
    Work {
        items: Vec::new(),
        rejects: Some(rejects),
        refused: Some(problem.reason.clone()),
        ack: None,
    }
}

/// Puts every row of a refused group in the reject file: each problem of a
/// bad row, and the good rows with `group_rejected`.
fn reject_group(
    table: &Table,
    rows: &[usize],
    reference: &str,
    problems: &[(usize, Problem)],
    rejects: &mut Rejects,
) -> Item {
    let bad_lines: Vec<u64> = problems.iter().map(|(_, p)| p.line).collect();
    for &i in rows {
        let Some(row) = table.rows.get(i) else {
            continue;
        };
        let own: Vec<&Problem> = problems
            .iter()
            .filter(|(at, _)| *at == i)
            .map(|(_, p)| p)
            .collect();
        if own.is_empty() {
            let first = bad_lines.first().copied().unwrap_or(0);
            rejects.row(
                row,
                &Problem::new(
                    row.line,
                    "",
                    "group_rejected",
                    format!("not applied: {reference:?} has a bad row (line {first})"),
                ),
            );
        } else {
            for p in own {
                rejects.row(row, p);
            }
        }
    }
    Item {
        reference: reference.to_owned(),
        lines: lines_of(table, rows),
        outcome: ItemOutcome::Rejected,
        return_id: None,
        reason: problems
            .first()
            .map(|(_, p)| format!("line {}: {}: {}", p.line, p.field, p.reason)),
    }
}

fn lines_of(table: &Table, rows: &[usize]) -> Vec<u64> {
    rows.iter()
        .filter_map(|&i| table.rows.get(i).map(|r| r.line))
        .collect()
}

/// SHA-256 of a value's JSON: the fingerprint stored with a dedup key.
fn hash_json<T: Serialize>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}
