//! The connectors' tests, in one binary: every sink driven through
//! `Sink::deliver` with real delivery requests against the in-memory
//! simulators of `backhaul-sim` (in process, through their routers), plus
//! hand-written HTTP fakes where a simulator cannot misbehave the way a test
//! needs.
//!
//! Layout:
//! - `helpers`: simulators on a manual clock, connectors built with
//!   `backhaul_connectors::build`, the canonical actions the tests deliver.
//! - `contract`: what every connector does, as one table over the four
//!   simulated targets.
//! - `mapping`: the bodies each connector sends, compared with fixtures.
//! - `prerequisites`: actions that refer to an earlier action's number.
//! - `faults`: technical and business failures of the simulators and how
//!   they are classified.
//! - `fakes`: answers no simulator gives (malformed success bodies, plain
//!   text errors), from small axum routers.
//! - `classify`: `http::classify` on its own.
//! - `build`: configurations `build` refuses.
//! - `remote`: the real HTTP transport over a socket.
//! - `tracking`: the carrier tracking source polled into the inbox.
//! - `sap_s4`, `dynamics_bc`, `netsuite`: the vendor ERP connectors against
//!   in-process fakes of SAP S/4HANA, Business Central and NetSuite, whose
//!   payloads are the fixtures next to each mapping (`src/<vendor>/fixtures`);
//!   `erp_fake` holds what those fakes share.
//! - `rest_wms`, `rest_carrier`, `soap`: the generic connectors, configured
//!   as the tests' config sections say, against in-process fakes of a JSON
//!   ASN API, a JSON return-shipment API and a legacy SOAP return-order
//!   service (which verifies the WS-Security token); the payloads are the
//!   fixtures next to each connector (`src/<kind>/fixtures`).
//! - `tls`: connectors over HTTPS to loopback servers with certificates
//!   made at test time (trusted CA, untrusted CA, mutual TLS), and bad TLS
//!   files refused at build.
//! - `webhook`: signed webhooks to subscribers on a socket: signatures,
//!   filters, fan-out retries, classification, configuration refusals.
//! - `x12_partner`: X12 180 files to EDI partners: the file against the
//!   fixture in `src/x12_partner/fixtures` and read back, retries writing
//!   one file, the contract on files, configuration refusals.

// A test fails by panicking; clippy's test exemption does not reach the
// helpers of an integration test binary.
#![allow(clippy::unwrap_used)]

mod build;
mod classify;
mod contract;
mod dynamics_bc;
mod erp_fake;
mod fakes;
mod faults;
mod helpers;
mod mapping;
mod netsuite;
mod prerequisites;
mod remote;
mod rest_carrier;
mod rest_wms;
mod sap_s4;
mod soap;
mod tls;
mod tracking;
mod webhook;
mod x12_partner;
