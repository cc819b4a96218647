//! Tests of master data through its public interface: CSV import, the
//! snapshot's lookups, validation of batches, the shipped samples, and
//! storage on SQLite. (Both backends' storage is checked by the store's
//! conformance suite; here the store is only the place imports land.)

mod csv;
mod persist;
mod samples;
mod snapshot;
mod support;
