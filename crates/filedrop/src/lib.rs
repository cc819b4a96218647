//! Drop folders: files of return requests, warehouse events (receipts,
//! inspections, putaways) and master data that
//! other systems put in a folder, each applied once through the engine's
//! [`Inbox`](backhaul_engine::Inbox), with what could not be applied
//! written to a reject file next to it. One [`FileDrop`] per configured
//! folder (`[drops.<name>]`).
//!
//! Layout:
//! - `config`: the `[drops.<name>]` section, its kinds and their checks,
//!   shared by `serve` and `config check`.
//! - `folder`: the folder protocol: claiming a file by renaming it into
//!   `processing/`, archiving it, writing files atomically.
//! - `table`: reading a CSV or fixed-width file into rows with their line
//!   numbers; a file that cannot be read at all is refused whole.
//! - `reject`: the reject file (each refused row with `line`, `field`,
//!   `code`, `reason`) and the summary written beside the archived file.
//! - `returns`: rows → canonical return requests, grouped by `request_ref`.
//! - `warehouse`: rows → receipts, inspections or putaways of existing
//!   returns, grouped by their reference column.
//! - `master`: a master data file handed to the existing import.
//! - `x12`: inbound 180 interchanges → return requests, answered with a
//!   997 (or a TA1 when the interchange cannot be read past its ISA).
//! - `source`: [`FileDrop`] itself: `build`, `run_once`, `run`.
//!
//! Architecture invariant: a file is applied exactly once *in effect*.
//! Every request or receipt carries a dedup key derived from the file's
//! content hash (or, for X12, the sender's control numbers), stored with
//! its events in the same transaction. A file left in `processing/` by a
//! crash is processed again from the start on the next scan, and what was
//! already applied comes back as a duplicate, never as a second return.

mod config;
mod folder;
mod master;
mod reject;
mod returns;
mod source;
mod table;
mod warehouse;
mod x12;

pub use config::{DropConfig, DropKind, FixedField, X12Config, validate_all};
pub use reject::{Item, ItemOutcome};
pub use source::{FileDrop, FileReport, ScanReport};

/// Errors of the drop-folder boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is refused; `field` is its full key
    /// (`drops.returns.dir`).
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    /// A folder could not be read or written; the file stays where it is
    /// and the next scan tries again.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The engine could not answer now (store down, shutting down,
    /// contention): the file stays in `processing/` and is processed again,
    /// its dedup keys making what was applied a duplicate.
    #[error("{file}: {reason}")]
    Technical { file: String, reason: String },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
