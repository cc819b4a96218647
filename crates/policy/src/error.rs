//! The errors this crate reports: [`PolicyErrors`] when a policy file cannot
//! be loaded, [`RefundError`] when refund inputs do not fit together.
//!
//! Evaluation itself never fails: a rule that cannot be evaluated is a
//! failed rule with an explanation (see [`crate::Policy::assess`]), because
//! a request must always get a decision a person can read.

use std::fmt;

/// One problem found in a policy file, located precisely enough that a
/// business analyst can open the file and fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file name given to [`crate::Policy::load`]; only used in messages.
    pub file: String,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// The id of the rule (eligibility, fee or disposition) the problem is in,
    /// when it is in one.
    pub rule: Option<String>,
    /// The field the problem is in, e.g. `when` or `warranty.months`.
    pub field: Option<String>,
    /// What is wrong, and where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        match (&self.rule, &self.field) {
            (Some(rule), Some(field)) => write!(f, "rule {rule:?}, field {field:?}: ")?,
            (Some(rule), None) => write!(f, "rule {rule:?}: ")?,
            (None, Some(field)) => write!(f, "field {field:?}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file, in file order. Loading reports all
/// of them at once so that one round of editing can fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(Vec<PolicyError>);

impl PolicyErrors {
    pub(crate) fn new(mut errors: Vec<PolicyError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        Self(errors)
    }

    pub fn as_slice(&self) -> &[PolicyError] {
        &self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<PolicyError> {
        self.0
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a PolicyErrors {
    type Item = &'a PolicyError;
    type IntoIter = std::slice::Iter<'a, PolicyError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a refund could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// Price, tax and fee must be in one currency: mixing them is a bug in
    /// the caller, not something to round away.
    #[error("currency mismatch: unit price in {price}, {what} in {other}")]
    CurrencyMismatch {
        price: String,
        what: &'static str,
        other: String,
    },
    /// A computed amount is not a valid money amount (cannot happen for valid
    /// inputs; kept so the computation needs no unwrap).
    #[error(transparent)]
    Value(#[from] backhaul_domain::values::ValueError),
}
