//! Master data files (`csv-master`): the file is handed whole to the
//! existing import (`Engine::import_master`, layouts in
//! `backhaul_master::import`), which writes all of it or nothing and
//! reports every problem in one go; those problems become the reject file,
//! each on the row it is about. Importing the same file again changes
//! nothing (the import compares with what is stored), which is what makes
//! a file processed again after a crash safe without a dedup key.

use backhaul_engine::{Engine, Error as EngineError};
use backhaul_master::Kind;

use crate::reject::{Item, ItemOutcome, Rejects};
use crate::table::{Problem, read_csv};

/// What importing one file did.
#[derive(Debug)]
pub(crate) struct Imported {
    pub(crate) item: Item,
    pub(crate) rejects: Rejects,
    pub(crate) refused: Option<String>,
}

/// Imports `bytes` as master data of `kind`; `Err` is a technical failure
/// (the file is tried again).
pub(crate) async fn import(
    engine: &Engine,
    kind: Kind,
    file_name: &str,
    bytes: &[u8],
) -> Result<Imported, String> {
    let reference = format!("{} ({file_name})", kind.file_stem());
    match engine.import_master(kind, file_name, bytes, false).await {
        Ok((changes, revision)) => Ok(Imported {
            item: Item {
                reference,
                lines: Vec::new(),
                outcome: if changes.written() == 0 {
                    ItemOutcome::Duplicate
                } else {
                    ItemOutcome::Applied
                },
                return_id: None,
                reason: Some(format!(
                    "{} record(s) written; master data revision {revision}",
                    changes.written()
                )),
            },
            rejects: Rejects::default(),
            refused: None,
        }),
        Err(EngineError::MasterData(problems)) => {
            // The original rows, to put beside each problem; a file that
            // cannot even be read as CSV has none.
            let table = read_csv(bytes).ok();
            let mut rejects = table
                .as_ref()
                .map_or_else(|| Rejects::with_columns(&[]), Rejects::for_table);
            for p in problems.problems() {
                let line = p.line.unwrap_or(0);
                let reason = match &p.record {
                    Some(record) if p.line.is_none() => format!("{record}: {}", p.message),
                    Some(_) | None => p.message.clone(),
                };
                let problem = Problem::new(
                    line,
                    p.column.as_deref().unwrap_or(""),
                    "invalid_master_data",
                    reason,
                );
                match table
                    .as_ref()
                    .and_then(|t| t.rows.iter().find(|r| r.line == line))
                {
                    Some(row) => rejects.row(row, &problem),
                    None => rejects.push(Vec::new(), &problem),
                }
            }
            let summary = problems.to_string();
            let first = summary.lines().next().unwrap_or_default().to_owned();
            Ok(Imported {
                item: Item {
                    reference,
                    lines: Vec::new(),
                    outcome: ItemOutcome::Rejected,
                    return_id: None,
                    reason: Some(first.clone()),
                },
                rejects,
                refused: Some(first),
            })
        }
        Err(
            e @ (EngineError::Rejected(_)
            | EngineError::IdempotencyKeyReused { .. }
            | EngineError::NotOwner(_)
            | EngineError::Rules(_)
            | EngineError::Invariant(_)
            | EngineError::NoPolicy
            | EngineError::Contention(_)
            | EngineError::Corrupt(_)
            | EngineError::Master(_)
            | EngineError::Store(_)),
        ) => Err(e.to_string()),
    }
}
