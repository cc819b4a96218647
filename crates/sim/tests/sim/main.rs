//! Black-box tests of the simulators through their public API: every test
//! opens its own simulator (in memory, or on a file in a temporary
//! directory when it restarts one), on a manual clock, and drives its router
//! in process with `oneshot`.
//!
//! - `helpers`: opening simulators, sending requests, request fixtures.
//! - `idempotency`: replays, reused keys, missing keys, bad bodies.
//! - `faults`: rate limit, transient errors, lost responses, runtime faults.
//! - `erp`, `wms`, `carrier`, `portal`: each system's documents and rules.
//! - `durability`: state and number series survive a reopen.
//! - `scan`: the carrier scan feed.
//! - `serve`: a simulator on a real socket, and its shutdown.

// A test fails by panicking; clippy's test exemption does not reach the
// helpers of an integration test binary.
#![allow(clippy::unwrap_used)]

mod carrier;
mod durability;
mod erp;
mod faults;
mod helpers;
mod idempotency;
mod portal;
mod scan;
mod serve;
mod wms;
