//! `ferry demo`: the whole product on the built-in emulators, in one command.

use std::collections::BTreeMap;

use ferry_core::fieldplan::FieldSettings;
use ferry_core::{Mode, ObjectType, Outcome, RunOptions};
use ferry_sandbox::{SandboxConfig, VendorSetup, seed::Mess};

use crate::config::{Config, ConnectorTable, MigrationConfig};
use crate::{CliError, ReportFormat};

/// Options of `ferry demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The vendor to migrate from (its emulator is seeded).
    #[arg(long, default_value = "hubspot")]
    from: String,
    /// The vendor to migrate to (its emulator starts empty).
    #[arg(long, default_value = "salesforce")]
    to: String,
    /// Contacts to seed into the source's emulator (companies: a fifth as many).
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

/// The demo's field map between two emulators: the seeded industries carried from the
/// source's list into the sink's, as an operator would write it (`[values.companies.industry]`,
/// and `[fields.companies]` where a connector does not carry industry by itself).
fn demo_fields(
    from: ferry_sandbox::EmulatorSpec,
    to: ferry_sandbox::EmulatorSpec,
) -> BTreeMap<ObjectType, FieldSettings> {
    let Some(crosswalk) = ferry_sandbox::industry_crosswalk(&from, &to) else {
        return BTreeMap::new();
    };
    let settings = FieldSettings {
        pairs: crosswalk
            .field
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .into_iter()
            .collect(),
        values: BTreeMap::from([(
            crosswalk.key.to_owned(),
            crosswalk
                .values
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )]),
    };
    BTreeMap::from([(ObjectType::COMPANIES, settings)])
}

/// The objects the demo moves: every object both connectors list, in the schema's order (all
/// four once both move deals and notes).
fn demo_objects(from: &str, to: &str) -> Vec<ObjectType> {
    let listed =
        |name: &str| crate::connectors::by_name(name).map_or_else(Vec::new, |c| c.objects.to_vec());
    let (source, sink) = (listed(from), listed(to));
    ObjectType::ALL
        .into_iter()
        .filter(|o| source.contains(o) && sink.contains(o))
        .collect()
}

/// The demo's `[mapping.deal_stages]` between two emulated accounts: each source stage to where
/// the sink's account keeps the same seed stage, as an operator would write it.
fn demo_deal_stages(
    from: ferry_sandbox::EmulatorSpec,
    to: ferry_sandbox::EmulatorSpec,
) -> ferry_core::stages::StageRules {
    ferry_core::stages::StageRules {
        pairs: ferry_sandbox::accounts::stage_crosswalk(from.deal_stages, to.deal_stages),
    }
}

/// Puts every emulator's sandbox-only credentials in this process's environment, where the
/// connectors' `${VAR}` references find them, exactly as in a real run.
///
/// # Safety
/// Must run before any other thread exists (it calls `std::env::set_var`).
pub unsafe fn export_sandbox_credentials() {
    for spec in ferry_sandbox::emulators() {
        for (var, value) in spec.credentials {
            // SAFETY: the caller guarantees the process is still single-threaded.
            unsafe { std::env::set_var(var, value) };
        }
    }
}

/// Starts the two vendors' emulators in-process on loopback, seeds the source, migrates to
/// the sink and verifies. Nothing is written to disk: the emulators live in this process's memory.
pub async fn run(args: DemoArgs, quiet: bool) -> Result<u8, CliError> {
    let emulator = |vendor: &str| {
        ferry_sandbox::emulator(vendor).ok_or_else(|| {
            let known: Vec<&str> = ferry_sandbox::emulators()
                .iter()
                .map(|e| e.vendor)
                .collect();
            CliError::config(anyhow::anyhow!(
                "no emulator for `{vendor}` (available: {})",
                known.join(", ")
            ))
        })
    };
    if args.from == args.to {
        return Err(CliError::config(anyhow::anyhow!(
            "--from and --to are both `{}`; pick two vendors",
            args.from
        )));
    }
    let config = SandboxConfig {
        records: args.records,
        seed: args.seed,
        mess: if args.clean {
            Mess::none()
        } else {
            Mess::default()
        },
        vendors: vec![
            VendorSetup::ephemeral(emulator(&args.from)?, true),
            VendorSetup::ephemeral(emulator(&args.to)?, false),
        ],
    };
    let sandbox = ferry_sandbox::start(config).await.map_err(|e| {
        CliError::failed(anyhow::anyhow!(
            "cannot start the emulators on loopback: {e}"
        ))
    })?;
    let (from, to) = (&sandbox.emulators[0], &sandbox.emulators[1]);
    let seeded = from.seeded.unwrap_or_default();
    let mut counts = vec![
        ferry_core::report::count(seeded.companies as u64, "company", "companies"),
        ferry_core::report::count(seeded.contacts as u64, "contact", "contacts"),
    ];
    if seeded.deals > 0 {
        counts.push(ferry_core::report::count(
            seeded.deals as u64,
            "deal",
            "deals",
        ));
    }
    if seeded.notes > 0 {
        counts.push(ferry_core::report::count(
            seeded.notes as u64,
            "note",
            "notes",
        ));
    }
    let last = counts.pop().unwrap_or_default();
    eprintln!(
        "demo: {} emulator at {} seeded with {} and {last}{}; {} emulator at {} (empty)",
        args.from,
        from.running.base_url,
        counts.join(", "),
        if args.clean {
            ""
        } else {
            " (deliberately messy: some records are invalid)"
        },
        args.to,
        to.running.base_url,
    );
    let config = Config {
        source: ConnectorTable::from_settings("source", &args.from, &from.connector_settings()),
        sink: ConnectorTable::from_settings("sink", &args.to, &to.connector_settings()),
        migration: MigrationConfig::default(),
        fields: demo_fields(from.spec, to.spec),
        create_missing_fields: false,
        directory: ferry_core::directory::DirectoryRules {
            deal_stages: demo_deal_stages(from.spec, to.spec),
            ..Default::default()
        },
        sync: Default::default(),
        consent: Default::default(),
    };
    let source = crate::connectors::source(&config.source)?;
    let sink = crate::connectors::sink(&config.sink)?;
    let objects = demo_objects(&args.from, &args.to);
    let mut options = RunOptions {
        objects,
        directory: config.directory.clone(),
        ..RunOptions::default()
    };
    // The same field map resolution as `migrate`: both vendors' field metadata, picklists
    // carried by label (and by the demo's industry table).
    let setup = crate::fields::resolve(
        &source,
        &sink,
        &config,
        &options.objects,
        crate::fields::Creating::Never,
    )
    .await?;
    options.value_maps = setup
        .plans
        .iter()
        .map(|(object, plan)| (*object, plan.value_maps.clone()))
        .collect();
    options.source_fields = setup.source_fields;
    let report = crate::execute(Mode::Migrate, source, sink, &options, quiet, 5, None).await;
    crate::print_report(&report, args.report)?;
    let code = report.exit_code();
    if report.outcome == Outcome::RecordsFailed && !args.strict {
        eprintln!(
            "demo: the failed records above are the seeded invalid data, refused before writing by ferry's \
             checks or by {} as the real vendor would refuse them; every record that was written is \
             verified. (`--strict` exits {code} for them.)",
            args.to
        );
        return Ok(0);
    }
    Ok(code)
}
