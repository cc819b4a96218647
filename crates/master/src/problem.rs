//! What is wrong with master data that was sent or imported, said so that a
//! business analyst can fix the file without asking a developer: which file,
//! which line, which column, and what is wrong with the value.
//!
//! A CSV problem reads `skus.csv:7: column "base_uom": invalid unit of
//! measure: must be upper case`; a problem with a record sent as JSON reads
//! `sku "DRILL-18V": field "vendor": vendor "V-999" does not exist`.

use std::fmt;

use serde::Serialize;

use crate::record::RecordRef;

/// One problem with the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportError {
    /// The file it was found in (CSV imports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line of the file, counting the header as line 1. A quoted value
    /// spanning lines counts from the line its row starts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The record it is about (records sent as JSON, or a CSV problem whose
    /// line is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
    /// The CSV column or the JSON field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, &self.record) {
            (Some(file), Some(line), _) => write!(f, "{file}:{line}: ")?,
            (Some(file), None, Some(record)) => write!(f, "{file}: {record}: ")?,
            (Some(file), None, None) => write!(f, "{file}: ")?,
            (None, _, Some(record)) => write!(f, "{record}: ")?,
            (None, _, None) => {}
        }
        if let Some(column) = &self.column {
            // A CSV has columns; a JSON record has fields.
            let what = if self.file.is_some() {
                "column"
            } else {
                "field"
            };
            write!(f, "{what} {column:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one import or one batch of records. Nothing of
/// the batch is stored when there is any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ImportErrors(Vec<ImportError>);

impl ImportErrors {
    pub(crate) fn new(problems: Vec<ImportError>) -> ImportErrors {
        ImportErrors(problems)
    }

    /// The problems, in file order for a CSV import and in record order
    /// otherwise. Never empty.
    pub fn problems(&self) -> &[ImportError] {
        &self.0
    }

    pub fn into_problems(self) -> Vec<ImportError> {
        self.0
    }
}

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the master data; nothing was stored",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn problems_read_as_a_place_then_what_is_wrong() {
        let csv = ImportError {
            file: Some("skus.csv".into()),
            line: Some(7),
            record: None,
            column: Some("base_uom".into()),
            message: "invalid unit of measure: must be upper case".into(),
        };
        assert_eq!(
            csv.to_string(),
            "skus.csv:7: column \"base_uom\": invalid unit of measure: must be upper case"
        );
        let json = ImportError {
            file: None,
            line: None,
            record: Some(RecordRef {
                kind: Kind::Order,
                key: "SO-1".into(),
                line_ref: Some("SO-1-2".into()),
            }),
            column: Some("uom".into()),
            message: "unknown".into(),
        };
        assert_eq!(
            json.to_string(),
            "order \"SO-1\" line \"SO-1-2\": field \"uom\": unknown"
        );
        let all = ImportErrors::new(vec![csv, json]);
        assert_eq!(
            all.to_string().lines().next(),
            Some("2 problems in the master data; nothing was stored")
        );
        assert_eq!(all.to_string().lines().count(), 3);
    }
}
