//! Reading a CSV or fixed-width file into rows, each with the line it
//! starts on. A file that cannot be read as a whole (not UTF-8, no header,
//! a required column missing, an unknown column) is refused with one
//! [`Problem`] and nothing in it is applied; a row that does not fit (too
//! many or too few cells) is a problem of that row only.
//!
//! CSV as the master import reads it: UTF-8 (a byte-order mark is
//! skipped), comma-separated, `"` quotes, spaces around values ignored,
//! header names matched ignoring case, rows of empty cells skipped.
//! Fixed width: one record per line (LF or CRLF), no header, fields cut by
//! the configured layout (1-based start, length in characters) and trimmed;
//! a line shorter than the layout leaves its last fields empty.

use std::collections::{BTreeMap, HashMap};

use crate::config::FixedField;

/// Why a file or a row was not applied, placed on a line and a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The line in the file (the header is line 1 of a CSV file); 0 when
    /// the problem is the file's as a whole.
    pub(crate) line: u64,
    /// The column (or X12 segment and element) at fault; empty when none.
    pub(crate) field: String,
    /// Stable, machine-readable: `missing_column`, `invalid_value`…
    pub(crate) code: String,
    pub(crate) reason: String,
}

impl Problem {
    pub(crate) fn new(line: u64, field: &str, code: &str, reason: impl Into<String>) -> Problem {
        Problem {
            line,
            field: field.to_owned(),
            code: code.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One data row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) line: u64,
    /// The cells as read (trimmed), in the file's column order.
    pub(crate) cells: Vec<String>,
    /// Fixed width: the record as it was, for the reject file.
    pub(crate) raw: Option<String>,
}

/// A file's rows under its header.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// The column names as written (the layout's for fixed width).
    pub(crate) header: Vec<String>,
    index: HashMap<String, usize>,
    pub(crate) rows: Vec<Row>,
}

impl Table {
    /// The rows (their indexes) grouped by the value of `column`, groups in
    /// order of first appearance. A row without a value cannot join a group:
    /// it is a group of its own, `(line N)`, refused for the missing value
    /// when its group is built.
    pub(crate) fn group_by(&self, column: &str) -> Vec<(String, Vec<usize>)> {
        let mut order: Vec<String> = Vec::new();
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, row) in self.rows.iter().enumerate() {
            let key = self
                .get(row, column)
                .map_or_else(|| format!("(line {})", row.line), str::to_owned);
            if !members.contains_key(&key) {
                order.push(key.clone());
            }
            members.entry(key).or_default().push(i);
        }
        order
            .into_iter()
            .map(|key| {
                let rows = members.remove(&key).unwrap_or_default();
                (key, rows)
            })
            .collect()
    }

    fn new(header: Vec<String>, rows: Vec<Row>) -> Result<Table, Problem> {
        let mut index = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            let key = name.to_lowercase();
            if key.is_empty() {
                return Err(Problem::new(
                    1,
                    "",
                    "missing_column",
                    format!("column {} of the header has no name", i + 1),
                ));
            }
            if index.insert(key, i).is_some() {
                return Err(Problem::new(
                    1,
                    name,
                    "duplicate_column",
                    format!("column {name:?} appears twice in the header"),
                ));
            }
        }
        Ok(Table {
            header,
            index,
            rows,
        })
    }

    pub(crate) fn has(&self, column: &str) -> bool {
        self.index.contains_key(column)
    }

    /// The value of `column` in `row`; `None` when the column is absent or
    /// the cell empty.
    pub(crate) fn get<'r>(&self, row: &'r Row, column: &str) -> Option<&'r str> {
        let i = *self.index.get(column)?;
        row.cells
            .get(i)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether a row has as many cells as the header; the problem if not.
    pub(crate) fn width_problem(&self, row: &Row) -> Option<Problem> {
        (row.cells.len() != self.header.len()).then(|| {
            Problem::new(
                row.line,
                "",
                "wrong_field_count",
                format!(
                    "the row has {} values, the header {} columns",
                    row.cells.len(),
                    self.header.len()
                ),
            )
        })
    }

    /// Refuses the file if a required column is missing or a column is not
    /// one of `known` (a misspelt header would otherwise lose a column
    /// silently). `required` entries with `|` are alternatives.
    pub(crate) fn check_columns(&self, required: &[&str], known: &[&str]) -> Result<(), Problem> {
        for column in required {
            if !column.split('|').any(|c| self.has(c)) {
                let shown = column.replace('|', "\" or \"");
                return Err(Problem::new(
                    1,
                    column.split('|').next().unwrap_or(column),
                    "missing_column",
                    format!(
                        "required column \"{shown}\" is missing from the header; nothing in the file was applied"
                    ),
                ));
            }
        }
        for name in &self.header {
            if !known.contains(&name.to_lowercase().as_str()) {
                return Err(Problem::new(
                    1,
                    name,
                    "unknown_column",
                    format!(
                        "column {name:?} is not one of {}; nothing in the file was applied",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, Problem> {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes
            .get(..e.valid_up_to())
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count() + 1);
        Problem::new(
            u64::try_from(line).unwrap_or(u64::MAX),
            "",
            "not_utf8",
            "the file is not UTF-8 text",
        )
    })
}

/// Reads a CSV file with a header row.
pub(crate) fn read_csv(bytes: &[u8]) -> Result<Table, Problem> {
    let text = utf8(bytes)?;
    if text.trim().is_empty() {
        return Err(Problem::new(
            0,
            "",
            "empty_file",
            "the file is empty; a header row is required",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| {
            Problem::new(
                1,
                "",
                "unreadable",
                format!("the header cannot be read: {e}"),
            )
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            Problem::new(
                line,
                "",
                "unreadable",
                format!("the file cannot be read: {e}"),
            )
        })?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        rows.push(Row {
            line: record.position().map_or(0, csv::Position::line),
            cells: record.iter().map(str::to_owned).collect(),
            raw: None,
        });
    }
    Table::new(header, rows)
}

/// Reads a fixed-width file by `layout`.
pub(crate) fn read_fixed(bytes: &[u8], layout: &[FixedField]) -> Result<Table, Problem> {
    let text = utf8(bytes)?;
    let header: Vec<String> = layout.iter().map(|f| f.name.clone()).collect();
    let mut rows = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let cells = layout
            .iter()
            .map(|f| {
                let from = f.start.saturating_sub(1).min(chars.len());
                let to = (from + f.length).min(chars.len());
                chars
                    .get(from..to)
                    .map(|c| c.iter().collect::<String>().trim().to_owned())
                    .unwrap_or_default()
            })
            .collect();
        rows.push(Row {
            line: u64::try_from(i + 1).unwrap_or(u64::MAX),
            cells,
            raw: Some(line.to_owned()),
        });
    }
    if rows.is_empty() {
        return Err(Problem::new(0, "", "empty_file", "the file has no records"));
    }
    Table::new(header, rows)
}
