//! Why a command was refused. Every rejection has a stable machine-readable
//! [`Rejection::code`] (the API's problem `code`) and a message a person can
//! act on. A rejected command changes nothing.

use crate::state::Status;
use crate::values::{LineNo, Quantity};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("return does not exist")]
    NotFound,
    #[error("return already exists")]
    AlreadyExists,
    #[error("`{command}` is not allowed while the return is {status}", status = status.as_str())]
    InvalidTransition {
        command: &'static str,
        status: Status,
    },
    #[error("a return needs at least one line")]
    NoLines,
    #[error("line {0} appears more than once")]
    DuplicateLine(LineNo),
    #[error("line {0} is not on this return")]
    UnknownLine(LineNo),
    #[error("line {line_no} is for SKU {expected}, not {found}")]
    SkuMismatch {
        line_no: LineNo,
        expected: String,
        found: String,
    },
    #[error("{field}: currency {found} does not match the return's currency {expected}")]
    CurrencyMismatch {
        field: String,
        expected: String,
        found: String,
    },
    #[error("{field}: quantity must be greater than zero")]
    QuantityNotPositive { field: String },
    #[error("line {line_no}: {what} {requested} exceeds the {available} available")]
    QuantityExceeds {
        line_no: LineNo,
        what: &'static str,
        requested: Quantity,
        available: Quantity,
    },
    #[error("line {line_no}: {count} serial numbers given for a quantity of {quantity}")]
    SerialCountMismatch {
        line_no: LineNo,
        count: usize,
        quantity: Quantity,
    },
    #[error("line {line_no}: credit {requested} exceeds the {max} paid for the settled units")]
    CreditExceedsPaid {
        line_no: LineNo,
        requested: String,
        max: String,
    },
    #[error("{kind} {reference} was already recorded")]
    Duplicate {
        kind: &'static str,
        reference: String,
    },
    #[error("the authorisation and label are still valid until {until}")]
    NotExpired { until: String },
    #[error("nothing can expire: no expiry date is set")]
    NoExpiry,
    #[error("units were already received; a received return is settled, not cancelled")]
    UnitsAlreadyReceived,
    #[error("cannot close: {0}")]
    NotReadyToClose(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl Rejection {
    /// Stable code for clients to branch on; never change one.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotFound => "return_not_found",
            Rejection::AlreadyExists => "return_exists",
            Rejection::InvalidTransition { .. } => "invalid_transition",
            Rejection::NoLines => "no_lines",
            Rejection::DuplicateLine(_) => "duplicate_line",
            Rejection::UnknownLine(_) => "unknown_line",
            Rejection::SkuMismatch { .. } => "sku_mismatch",
            Rejection::CurrencyMismatch { .. } => "currency_mismatch",
            Rejection::QuantityNotPositive { .. } => "quantity_not_positive",
            Rejection::QuantityExceeds { .. } => "quantity_exceeds_available",
            Rejection::SerialCountMismatch { .. } => "serial_count_mismatch",
            Rejection::CreditExceedsPaid { .. } => "credit_exceeds_paid",
            Rejection::Duplicate { .. } => "duplicate",
            Rejection::NotExpired { .. } => "not_expired",
            Rejection::NoExpiry => "no_expiry",
            Rejection::UnitsAlreadyReceived => "units_already_received",
            Rejection::NotReadyToClose(_) => "not_ready_to_close",
            Rejection::Invalid { .. } => "invalid_command",
        }
    }
}
