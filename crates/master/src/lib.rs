//! Master data for Backhaul: what the hub knows about SKUs, customers,
//! sites, sales orders, vendors and other systems' codes, held locally so
//! that validating and translating a return, and answering the eligibility
//! API, never waits on the ERP.
//!
//! Master data arrives by API (JSON [`Record`]s) or CSV import, is checked
//! as one batch against what is stored ([`validate()`]), written all or
//! nothing ([`persist`]), and read through an in-memory, indexed snapshot
//! ([`MasterData`]) that a hub process reloads when the store's revision
//! moves.
//!
//! Layout:
//! - [`values`]: constrained values only master data needs (`VendorId`,
//!   `SystemName`, `Code`, `ExternalCode`, `Factor`, `Percent`).
//! - [`record`](mod@record): the records and their own rules; unit-of-measure conversion.
//! - [`snapshot`]: [`MasterData`], lookups, hierarchy, crosswalks both ways.
//! - [`validate`](mod@validate): the batch rules (references, cycles, ambiguity) and
//!   what a batch changes.
//! - [`import`]: the CSV layouts, [`parse_csv`] and [`dry_run`].
//! - [`problem`]: [`ImportErrors`], every problem with its file, line and column.
//! - [`persist`]: loading and writing through `backhaul_store::MasterStore`.
//!
//! What is not here: the policies that use master data (`backhaul-policy`)
//! and the HTTP endpoints (`backhaul-api`). The store keeps records as JSON
//! documents and knows none of these rules.

pub mod import;
pub mod persist;
pub mod problem;
pub mod record;
pub mod snapshot;
pub mod validate;
pub mod values;

pub use import::{ColumnSpec, columns, dry_run, parse_csv};
pub use persist::{Error, Mode, Outcome};
pub use problem::{ImportError, ImportErrors};
pub use record::{
    Control, ConversionError, CrosswalkEntry, CrosswalkKind, CustomerRecord, Kind, OrderLineRecord,
    OrderRecord, Record, RecordRef, RtvAgreement, SiteRecord, SkuRecord, UomConversion,
    VendorRecord,
};
pub use snapshot::{Direction, MasterData, Unmapped};
pub use validate::{Changes, KindChanges, validate};
pub use values::{Code, ExternalCode, Factor, Percent, SystemName, VendorId};
