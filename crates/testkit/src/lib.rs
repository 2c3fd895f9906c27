//! ferry's connector conformance kit: the checks every connector must pass against its
//! vendor's emulator before it ships. Implement the traits, write the emulator, pass the suite.
//!
//! # Running it for a connector
//!
//! Add a test target without libtest's harness (the suite must set the emulator's sandbox
//! credentials in the environment before any thread exists, and prints its own results) and
//! the dev-dependencies, in `connectors/<vendor>/Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "conformance"
//! harness = false
//!
//! [dev-dependencies]
//! ferry-sandbox.workspace = true
//! ferry-testkit = { path = "../../crates/testkit" }
//! ```
//!
//! and `connectors/<vendor>/tests/conformance.rs`:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     ferry_testkit::run(ferry_testkit::Target {
//!         connector: ferry_pipedrive::spec(),
//!         emulator: ferry_sandbox::pipedrive::SPEC,
//!         // A contact the vendor refuses (see `refusals`), or a vendor-specific
//!         // `fn() -> ferry_core::Record`, or `None` if the vendor refuses no contact.
//!         refused_contact: Some(ferry_testkit::refusals::missing_name),
//!     })
//! }
//! ```
//!
//! Then `cargo test -p ferry-<vendor> --test conformance`. Arguments after `--` work like
//! libtest's: a substring filter (`-- sink::`), `--exact`, `--skip <pattern>`, `--list`; other
//! flags (`--nocapture`, …) are ignored.
//!
//! # What it does
//!
//! The suite builds the connector exactly as the `ferry` binary does, through
//! [`ferry_core::ConnectorSpec::source`] / `::sink` with the settings
//! [`ferry_sandbox::EmulatorSpec::connector_settings`] gives for an emulator it serves itself
//! (behind a middleware that counts requests and responses). It runs the checks that apply to
//! the directions the connector supports, prints one line per check (`ok`, `FAILED` with the
//! reason, or `skipped` with why) and ends with the line CI reads:
//!
//! ```text
//! conformance <vendor>: N passed, M failed
//! ```
//!
//! The checks are listed and explained in `docs/testkit.md` and in [`checks`]. A check fails
//! for what a connector really does wrong; when it fails, read its reason before suspecting
//! the suite.

pub mod checks;
mod data;
mod harness;
pub mod memory_sink;
pub mod memory_source;
pub mod refusals;

use std::process::ExitCode;

use ferry_core::{ConnectorSpec, Record};
use ferry_sandbox::EmulatorSpec;

pub use data::canonical_records;
pub use memory_sink::MemorySink;
pub use memory_source::MemorySource;

/// What the suite runs against: one connector and its vendor's emulator.
#[derive(Clone, Copy)]
pub struct Target {
    /// The connector, as its crate's `spec()` returns it.
    pub connector: ConnectorSpec,
    /// The emulator of the same vendor (its `SPEC`).
    pub emulator: EmulatorSpec,
    /// Makes a contact the vendor refuses on write, for the refused-record check (a sink only);
    /// `None` skips that check. See [`refusals`] for ready-made ones.
    pub refused_contact: Option<fn() -> Record>,
}

/// Hooks for the testkit's own tests, which run checks against deliberately broken connectors
/// to prove each check can fail. Not for connector crates: use [`run`].
#[doc(hidden)]
pub mod selftest {
    pub use crate::harness::Status;
    use crate::{Target, checks, harness};

    /// Puts the target's emulator credentials (and wrong ones) into the environment.
    ///
    /// # Safety
    ///
    /// No other thread may exist while this runs.
    pub unsafe fn set_credentials(target: &Target) {
        // SAFETY: passed on to the caller.
        unsafe { harness::set_credentials(target) }
    }

    /// Runs the checks named in `names` (all if empty) and returns each one's status.
    pub async fn run(target: Target, names: &[&str]) -> Vec<(&'static str, Status)> {
        let selected = checks::all()
            .into_iter()
            .filter(|c| names.is_empty() || names.contains(&c.name))
            .collect();
        let mut results = Vec::new();
        harness::execute(target, selected, harness::logs(), |name, status| {
            results.push((name, status))
        })
        .await;
        results
    }
}

/// Runs the conformance suite against `target` and returns the test binary's exit code
/// (failure if any check failed). Call it first thing in `main`: it writes the emulator's
/// credentials into the process environment before starting any thread.
pub fn run(target: Target) -> ExitCode {
    harness::run(target)
}
