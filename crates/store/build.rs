//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the
//! migration files at compile time, and cargo does not know they are inputs.

// Build scripts talk to cargo through stdout; that is the only way.
#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
