//! What a processed file leaves for people: the reject file and the
//! summary.
//!
//! The reject file (`rejected/<stamp>-<sha12>-<name>.rejects.csv`) is a
//! CSV with the refused rows as they were (the file's own columns; a
//! fixed-width record as one `record` column; for X12 the set's control
//! number and reference) followed by `line`, `field`, `code` and `reason`.
//! A row with several problems appears once per problem; a good row of a
//! refused group appears once with code `group_rejected`, so the file
//! holds every row that was not applied and can be corrected and dropped
//! again. A file refused whole has one row with line 1 (the header) or 0
//! and no original values.
//!
//! Codes: for the whole file `empty_file`, `not_utf8`, `unreadable`,
//! `missing_column`, `unknown_column`, `duplicate_column`; for a row
//! `wrong_field_count`, `missing_value`, `invalid_value`, `inconsistent`
//! (disagrees with an earlier row of its group), `group_rejected`,
//! `return_not_found` (receipts); the hub's own refusal codes as the API
//! gives them (`quantity_not_positive`, `unmapped_code`,
//! `not_attribute_owner`, `dedup_key_reused`…); `invalid_master_data`; for
//! X12 `interchange_rejected`, `group_rejected`, `syntax`, `wrong_count`,
//! `control_number`, `invalid_content`, `invalid_value`.
//!
//! The summary (`archive/<same>.summary.json`) says what became of every
//! request, receipt or transaction set: applied (with its return),
//! duplicate (applied before, by an earlier copy of the same content or an
//! attempt cut short by a crash; nothing was applied again) or rejected.

use serde::Serialize;

use crate::table::{Problem, Row, Table};

/// The columns the reject file adds after the original ones.
const REJECT_COLUMNS: [&str; 4] = ["line", "field", "code", "reason"];

/// The rows of a reject file, built up while a file is processed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rejects {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Rejects {
    /// For rows of `table`: its columns, or `record` for fixed width.
    pub(crate) fn for_table(table: &Table) -> Rejects {
        let fixed = table.rows.first().is_some_and(|r| r.raw.is_some());
        Rejects {
            columns: if fixed {
                vec!["record".to_owned()]
            } else {
                table.header.clone()
            },
            rows: Vec::new(),
        }
    }

    /// With original columns of the caller's choosing (X12), or none (a
    /// file refused before any row was read).
    pub(crate) fn with_columns(columns: &[&str]) -> Rejects {
        Rejects {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// A refused row of a table, with one of its problems.
    pub(crate) fn row(&mut self, row: &Row, problem: &Problem) {
        let original = match &row.raw {
            Some(raw) => vec![raw.clone()],
            None => row.cells.clone(),
        };
        self.push(original, problem);
    }

    /// A problem with the given original values (padded or cut to the
    /// original columns, so every row has the same width).
    pub(crate) fn push(&mut self, mut original: Vec<String>, problem: &Problem) {
        original.resize(self.columns.len(), String::new());
        original.extend([
            problem.line.to_string(),
            problem.field.clone(),
            problem.code.clone(),
            problem.reason.clone(),
        ]);
        self.rows.push(original);
    }

    /// The reject file's bytes.
    pub(crate) fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        header.extend(REJECT_COLUMNS);
        // Writing to memory cannot fail; a failure would only lose the
        // reject file's content, which the summary and the log still say.
        let mut write = |record: &[&str]| {
            if let Err(e) = writer.write_record(record) {
                tracing::error!(error = %e, "cannot write a reject row");
            }
        };
        write(&header);
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            write(&cells);
        }
        writer.into_inner().unwrap_or_default()
    }
}

/// What became of one request, receipt or transaction set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `request_ref`, `receipt_ref`, or `<GS06>/<ST02>` of an X12 set.
    pub reference: String,
    /// The file lines (X12: segment positions) it came from.
    pub lines: Vec<u64>,
    pub outcome: ItemOutcome,
    /// The return it opened or changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_id: Option<String>,
    /// Why it was rejected (the first problem; the reject file has all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Applied now.
    Applied,
    /// Applied before under the same dedup key; not applied again.
    Duplicate,
    /// Not applied; its rows are in the reject file.
    Rejected,
    /// A partner's acknowledgement of something the hub sent (an X12
    /// 997): read and recorded, nothing to apply.
    Acknowledgement,
}
