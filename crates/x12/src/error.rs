//! The crate's one error type: every failure names the segment (id and
//! 1-based position in the interchange, plus byte offset) and, where it is
//! about one value, the element. Nothing here decides how an error is
//! acknowledged; `ack` maps errors to 997 codes.

use std::fmt;

/// Where in an interchange an error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Segment id such as `SE`; empty when the input ended where a segment
    /// was expected.
    pub segment_id: String,
    /// 1-based index of the segment in the interchange (ISA is 1).
    pub segment: usize,
    /// Byte offset of the segment's first byte in the input.
    pub offset: usize,
    /// 1-based element position, when the error is about one element.
    pub element: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segment_id.is_empty() {
            write!(f, "segment {} (end of input)", self.segment)?;
        } else {
            write!(f, "segment {} ({})", self.segment, self.segment_id)?;
        }
        if let Some(element) = self.element {
            write!(f, ", element {element}")?;
        }
        Ok(())
    }
}

/// What is wrong with the content of a transaction set, in the categories a
/// 997 can express (AK304 / AK403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A segment the subset requires is absent (AK304 code 3).
    MissingSegment,
    /// A segment appears where it may not (AK304 code 2).
    UnexpectedSegment,
    /// A required element is empty (AK403 code 1).
    MissingElement,
    /// An element has a value outside the allowed codes or syntax (AK403 code 7).
    InvalidValue,
    /// An element is not a valid date (AK403 code 8).
    InvalidDate,
    /// The set or group is of a kind or version this crate does not handle.
    Unsupported,
}

/// Why an interchange could not be read, validated, parsed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed interchange: bad ISA, a segment that
    /// is not terminated, envelopes out of order, input ending early.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A trailer's count (SE01, GE01, IEA01) disagrees with what was counted.
    #[error("{at}: {message}")]
    Count { at: Location, message: String },
    /// A control number is malformed or the trailer's copy disagrees with
    /// the header's.
    #[error("{at}: {message}")]
    Control { at: Location, message: String },
    /// A transaction set's content does not fit the supported subset.
    #[error("{at}: {message}")]
    Content {
        at: Location,
        problem: Problem,
        message: String,
    },
    /// A value handed to a generator cannot be written as X12.
    #[error("cannot write {field}: {message}")]
    Write {
        field: &'static str,
        message: String,
    },
}

impl Error {
    /// The location of the error in the received interchange; `None` for
    /// errors raised while writing.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Syntax { at, .. }
            | Error::Count { at, .. }
            | Error::Control { at, .. }
            | Error::Content { at, .. } => Some(at),
            Error::Write { .. } => None,
        }
    }
}
