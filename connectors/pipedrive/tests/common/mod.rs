//! Shared helpers of the Pipedrive connector's tests.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_sandbox::pipedrive::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};

/// An account without limits seeded with `contacts` (and `mess`), whose clock is a year on, so
/// that every seeded record is older than anything a test writes (and than a windowed read's
/// open window).
pub async fn aged_account(contacts: usize, mess: &Mess) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    });
    emulator.seed(&generate(contacts, 7, mess));
    emulator.advance_clock(Duration::from_secs(365 * 86_400));
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}
