//! `ferry sandbox`: the vendor emulators on fixed loopback ports, for trying ferry by hand.

use std::net::SocketAddr;

use ferry_sandbox::faults::Faults;
use ferry_sandbox::{SandboxConfig, seed::Mess};

use crate::CliError;

/// Options of `ferry sandbox`.
#[derive(clap::Args)]
pub struct SandboxArgs {
    /// Contacts to seed into the HubSpot emulator (companies: a fifth as many).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seed only valid data.
    #[arg(long)]
    clean: bool,
    /// Loopback port of the HubSpot emulator (0: any free port).
    #[arg(long, default_value_t = 18081)]
    hubspot_port: u16,
    /// Loopback port of the Salesforce emulator (0: any free port).
    #[arg(long, default_value_t = 18082)]
    salesforce_port: u16,
    /// Fault: answer every Nth HubSpot request with HubSpot's 429.
    #[arg(long)]
    hubspot_throttle_every: Option<u64>,
    /// Fault: answer every Nth Salesforce request with a 429.
    #[arg(long)]
    salesforce_throttle_every: Option<u64>,
    /// `Retry-After` seconds sent with injected 429s (default: none).
    #[arg(long)]
    retry_after: Option<u64>,
}

/// Serves the emulators until Ctrl-C.
pub async fn run(args: SandboxArgs) -> Result<u8, CliError> {
    let mut config = SandboxConfig::ephemeral(args.records);
    config.seed = args.seed;
    if args.clean {
        config.mess = Mess::none();
    }
    config.hubspot_addr = SocketAddr::from(([127, 0, 0, 1], args.hubspot_port));
    config.salesforce_addr = SocketAddr::from(([127, 0, 0, 1], args.salesforce_port));
    config.hubspot.faults = Faults {
        throttle_every: args.hubspot_throttle_every,
        retry_after_secs: args.retry_after,
    };
    config.salesforce.faults = Faults {
        throttle_every: args.salesforce_throttle_every,
        retry_after_secs: args.retry_after,
    };
    let sandbox = ferry_sandbox::start(config).await.map_err(|e| {
        CliError::failed(anyhow::anyhow!(
            "cannot listen on loopback ports {} and {}: {e} (pick others with --hubspot-port / --salesforce-port)",
            args.hubspot_port,
            args.salesforce_port
        ))
    })?;
    println!(
        "HubSpot emulator     {}  ({} companies, {} contacts)",
        sandbox.hubspot.base_url, sandbox.seeded.companies, sandbox.seeded.contacts
    );
    println!(
        "Salesforce emulator  {}  (empty)",
        sandbox.salesforce.base_url
    );
    println!();
    println!("Sandbox-only credentials, for the config's ${{...}} references:");
    println!("  export HUBSPOT_TOKEN={}", ferry_sandbox::HUBSPOT_TOKEN);
    println!(
        "  export SF_CLIENT_ID={}",
        ferry_sandbox::SALESFORCE_CLIENT_ID
    );
    println!(
        "  export SF_CLIENT_SECRET={}",
        ferry_sandbox::SALESFORCE_CLIENT_SECRET
    );
    println!(
        "Then, with a config like examples/sandbox.toml (base_url {} / login_url {}):",
        sandbox.hubspot.base_url, sandbox.salesforce.base_url
    );
    println!("  ferry migrate --config examples/sandbox.toml");
    println!("  ferry verify --config examples/sandbox.toml");
    println!("Ready. Ctrl-C stops the emulators (their data lives only in memory).");
    wait_for_shutdown().await;
    Ok(0)
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
