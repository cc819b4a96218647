//! Positions in the policy text: turning byte offsets into the line and
//! column an analyst sees in an editor, and collecting errors as they are
//! found so that loading can report all of them.

use crate::error::PolicyError;

/// Collects errors against one policy text.
pub(crate) struct Diag<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<PolicyError>,
}

impl<'a> Diag<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Records an error at byte offset `at` of the text.
    pub(crate) fn error(
        &mut self,
        at: usize,
        rule: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        let (line, column) = line_column(self.text, at);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            rule: rule.map(str::to_owned),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    /// The 1-based line of byte offset `at`, for messages that point at
    /// another place in the file.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        line_column(self.text, at).0
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn into_errors(self) -> Vec<PolicyError> {
        self.errors
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A string value from the policy file with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    pub(crate) value: String,
    /// Byte offset of the value (its opening quote) in the file.
    pub(crate) at: usize,
    /// Byte offset where the content starts, when the file spells the value
    /// literally (no escapes), so that offsets inside it can be mapped back
    /// to the file exactly. Otherwise errors inside it point at `at`.
    inner: Option<usize>,
}

impl Text {
    /// `raw` is the file text of the value, quotes included, starting at `at`.
    pub(crate) fn new(value: String, at: usize, raw: &str) -> Self {
        let skip = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            // TOML drops a newline right after the opening delimiter of a
            // multi-line string.
            let rest = &raw[3..];
            3 + if rest.starts_with("\r\n") {
                2
            } else {
                usize::from(rest.starts_with('\n'))
            }
        } else {
            1
        };
        let inner = raw
            .get(skip..)
            .filter(|content| content.starts_with(value.as_str()))
            .map(|_| at + skip);
        Self { value, at, inner }
    }

    /// Byte offset in the file of character `index` of the value.
    pub(crate) fn offset_of_char(&self, index: usize) -> usize {
        match self.inner {
            Some(start) => {
                let byte = self
                    .value
                    .char_indices()
                    .nth(index)
                    .map_or(self.value.len(), |(b, _)| b);
                start + byte
            }
            None => self.at,
        }
    }

    /// Byte offset in the file of byte `index` of the value.
    pub(crate) fn offset_of_byte(&self, index: usize) -> usize {
        match self.inner {
            Some(start) => start + index.min(self.value.len()),
            None => self.at,
        }
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a
/// likely typo (used for "did you mean" hints).
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_column(text, 9), (2, 3));
    }

    #[test]
    fn literal_strings_map_inner_offsets() {
        let t = Text::new("a.b".into(), 10, "\"a.b\"");
        assert_eq!(t.offset_of_char(2), 13);
        let escaped = Text::new("a\"b".into(), 10, "\"a\\\"b\"");
        assert_eq!(escaped.offset_of_char(2), 10);
        let multi = Text::new("x &&\n y".into(), 0, "\"\"\"\nx &&\n y\"\"\"");
        assert_eq!(multi.offset_of_char(0), 4);
    }

    #[test]
    fn closest_suggests_typos_only() {
        assert_eq!(closest("categry", ["category", "code"]), Some("category"));
        assert_eq!(closest("zzz", ["category", "code"]), None);
    }
}
