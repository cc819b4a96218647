//! Black-box tests of the HTTP API: one test binary, every test on a fresh
//! app from `spawn_app()` (its own SQLite file, engine, manual clock and API
//! keys), requests sent through the router in process.
//!
//! - `helpers`: `spawn_app()`, request helpers, fixtures.
//! - `auth`: keys, scopes, the open health check.
//! - `lifecycle`: a return from request to close through the right partners.
//! - `idempotency`: replays, reused keys, per-partner keys.
//! - `deliveries`: the exception queue: list, show, retry, skip, cancel.
//! - `bad_input`: every malformed request is a problem and stores nothing.
//! - `queries`: list filters, the timeline, the backlog.
//! - `routes`: the route table against the router and the OpenAPI document.
//! - `serve`: the router on a real socket, and graceful shutdown.
//! - `webhooks`: signed inbound webhooks (WMS, carrier, canonical) from the
//!   raw request to the return's state, and every way one is refused.

// A test fails by panicking; clippy's test exemption does not reach the
// helpers of an integration test binary.
#![allow(clippy::unwrap_used)]

mod auth;
mod bad_input;
mod deliveries;
mod helpers;
mod idempotency;
mod lifecycle;
mod ownership;
mod policy;
mod queries;
mod routes;
mod serve;
mod webhooks;
