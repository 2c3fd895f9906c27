//! Faithful in-memory emulators of the CRM vendors' APIs, served over real HTTP on loopback,
//! with a seeded data generator and fault injection. Used by tests, `ferry demo`, `ferry
//! sandbox` and the benchmarks; never by a real migration.

pub mod faults;
pub mod hubspot;
pub mod salesforce;
pub mod seed;

use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

/// The private-app token the HubSpot emulator accepts unless configured otherwise.
pub const HUBSPOT_TOKEN: &str = "sandbox-hubspot-token";
/// The OAuth client id the Salesforce emulator accepts unless configured otherwise.
pub const SALESFORCE_CLIENT_ID: &str = "sandbox-client-id";
/// The OAuth client secret the Salesforce emulator accepts unless configured otherwise.
pub const SALESFORCE_CLIENT_SECRET: &str = "sandbox-client-secret";

/// An emulator listening on loopback.
pub struct Running {
    /// The vendor it emulates.
    pub vendor: &'static str,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, the value for a connector's `base_url` / `login_url`.
    pub base_url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `addr` (port 0 picks a free port) in a background task.
pub async fn serve(vendor: &'static str, router: Router, addr: SocketAddr) -> io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(vendor, error = %e, "emulator stopped");
        }
    });
    Ok(Running {
        vendor,
        addr,
        base_url: format!("http://{addr}"),
        task,
    })
}

/// What to start: data set size and each emulator's options.
pub struct SandboxConfig {
    /// How many contacts to seed into the source emulator (companies: a fifth as many).
    pub records: usize,
    /// The generator's seed.
    pub seed: u64,
    /// How messy the seeded data is.
    pub mess: seed::Mess,
    /// Where the HubSpot emulator listens.
    pub hubspot_addr: SocketAddr,
    /// Where the Salesforce emulator listens.
    pub salesforce_addr: SocketAddr,
    /// HubSpot emulator options.
    pub hubspot: hubspot::Options,
    /// Salesforce emulator options.
    pub salesforce: salesforce::Options,
}

impl SandboxConfig {
    /// `records` contacts, messy data, both emulators on free loopback ports.
    pub fn ephemeral(records: usize) -> SandboxConfig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        SandboxConfig {
            records,
            seed: 42,
            mess: seed::Mess::default(),
            hubspot_addr: any,
            salesforce_addr: any,
            hubspot: hubspot::Options::default(),
            salesforce: salesforce::Options::default(),
        }
    }
}

/// Both emulators, running; HubSpot seeded with the generated data, Salesforce empty.
pub struct Sandbox {
    /// The HubSpot emulator (the demo's source).
    pub hubspot: Running,
    /// The Salesforce emulator (the demo's sink).
    pub salesforce: Running,
    /// What was seeded.
    pub seeded: SeedSummary,
}

/// Counts of what the sandbox seeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedSummary {
    /// Companies seeded into HubSpot.
    pub companies: usize,
    /// Contacts seeded into HubSpot.
    pub contacts: usize,
}

/// Generates the data, seeds HubSpot, and starts both emulators.
pub async fn start(config: SandboxConfig) -> io::Result<Sandbox> {
    let data = seed::generate(config.records, config.seed, &config.mess);
    let seeded = SeedSummary {
        companies: data.companies.len(),
        contacts: data.contacts.len(),
    };
    let hubspot = hubspot::Emulator::new(config.hubspot);
    hubspot.seed(&data);
    drop(data);
    let salesforce = salesforce::Emulator::new(config.salesforce);
    Ok(Sandbox {
        hubspot: serve("hubspot", hubspot.router(), config.hubspot_addr).await?,
        salesforce: serve("salesforce", salesforce.router(), config.salesforce_addr).await?,
        seeded,
    })
}
