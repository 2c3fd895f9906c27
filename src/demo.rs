//! `ferry demo`: the whole product on the built-in emulators, in one command.

use std::sync::Arc;

use ferry_core::{Mode, Outcome, RunOptions};
use ferry_sandbox::{SandboxConfig, seed::Mess};

use crate::{CliError, ReportFormat};

/// Options of `ferry demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Contacts to seed into the HubSpot emulator (companies: a fifth as many).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Seed of the data generator: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seed only valid data (by default the data is deliberately messy, as real CRMs are).
    #[arg(long)]
    clean: bool,
    /// How to print the final report on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    report: ReportFormat,
    /// Exit as `migrate` would: 3 when any record failed, even the demo's deliberately bad ones.
    #[arg(long)]
    strict: bool,
}

/// Starts both emulators in-process on loopback, seeds HubSpot, migrates to Salesforce and
/// verifies. Nothing is written to disk: the emulators live in this process's memory.
pub async fn run(args: DemoArgs, quiet: bool) -> Result<u8, CliError> {
    let mut config = SandboxConfig::ephemeral(args.records);
    config.seed = args.seed;
    if args.clean {
        config.mess = Mess::none();
    }
    let sandbox = ferry_sandbox::start(config).await.map_err(|e| {
        CliError::failed(anyhow::anyhow!(
            "cannot start the emulators on loopback: {e}"
        ))
    })?;
    eprintln!(
        "demo: HubSpot emulator at {} seeded with {} companies and {} contacts{}; Salesforce emulator at {} (empty)",
        sandbox.hubspot.base_url,
        sandbox.seeded.companies,
        sandbox.seeded.contacts,
        if args.clean {
            ""
        } else {
            " (deliberately messy: some records are invalid for Salesforce)"
        },
        sandbox.salesforce.base_url,
    );
    let (source, sink) =
        crate::connectors::sandbox_pair(&sandbox.hubspot.base_url, &sandbox.salesforce.base_url)?;
    let options = RunOptions::default();
    let report = crate::execute(Mode::Migrate, source, Arc::clone(&sink), &options, quiet, 5).await;
    crate::print_report(&report, args.report)?;
    let code = report.outcome.exit_code();
    if report.outcome == Outcome::RecordsFailed && !args.strict {
        eprintln!(
            "demo: the failed records above are the seeded invalid data, refused as a real Salesforce would \
             refuse them; every record that was written is verified. (`--strict` exits {code} for them.)"
        );
        return Ok(0);
    }
    Ok(code)
}
