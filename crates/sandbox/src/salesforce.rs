//! Emulator skeleton: to be replaced by the faithful emulator.

use axum::Router;

use crate::faults::Faults;
use crate::seed::SeedData;

/// Emulator options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Injected faults.
    pub faults: Faults,
}

/// The emulator's shared state.
#[derive(Clone)]
pub struct Emulator {}

impl Emulator {
    /// A new, empty emulator.
    pub fn new(_options: Options) -> Emulator {
        Emulator {}
    }

    /// Loads generated data.
    pub fn seed(&self, _data: &SeedData) {}

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
    }
}
