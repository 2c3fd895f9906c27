//! `ferry`: migrates customer records between CRM vendor APIs, in memory, verified by checksum.

// These shadow std's `print!`/`println!` in every module below (macros defined before the
// `mod` lines are in scope there): std's panic on a closed stdout, these stop writing instead.
// See `out`.

/// Prints to stdout through [`out::write`]: never panics when stdout is closed.
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}

/// Prints a line to stdout through [`out::write`]: never panics when stdout is closed.
macro_rules! println {
    () => { $crate::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints a line to stderr through [`out::write_err`]: never panics when stderr is closed.
macro_rules! eprintln {
    () => { $crate::out::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

mod config;
mod connectors;
mod demo;
mod fields;
mod hardening;
mod out;
mod plan;
mod progress;
mod same_account;
mod sandbox;
mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::quota::{QuotaGuard, QuotaStop};
use ferry_core::{ErrorKind, Mode, Outcome, Progress, Report, Role, RunOptions};

/// Exit code when the configuration is wrong (see README: exit codes).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when the run failed (network, credentials, vendor errors).
pub const EXIT_FAILED: u8 = 1;
/// Exit code when another `ferry sync` holds the sync state's lock (see README: exit codes).
pub const EXIT_LOCKED: u8 = 5;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Migrates customer records between CRM vendor APIs, in memory, verified by SHA-256 checksums."
)]
struct Cli {
    /// More log detail on stderr (-v info, -vv debug, -vvv trace). Logs never hold field values or secrets.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A table and the first failures, for people.
    Human,
    /// The whole report as JSON on stdout, for CI.
    Json,
}

/// The arguments `migrate` and `verify` share.
#[derive(clap::Args)]
struct RunArgs {
    /// The config file.
    #[arg(short, long, default_value = "ferry.toml")]
    config: PathBuf,
    /// How to print the final report on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    report: ReportFormat,
    /// Seconds between progress lines when stderr is not a terminal, or `NO_COLOR` is set.
    #[arg(long, default_value_t = 5)]
    progress_interval: u64,
    /// Run even though source and sink are the same account (a copy within one account; the
    /// source-id field keeps the copies apart, so a rerun creates nothing).
    #[arg(long)]
    allow_same_account: bool,
}

/// `sync`'s arguments: the shared ones and `--allow-mass-delete`.
#[derive(clap::Args)]
struct SyncArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Archive or delete (`[sync] deletes`) even more sink records than `[sync] max_deletes`
    /// allows in this run.
    #[arg(long)]
    allow_mass_delete: bool,
}

/// `migrate`'s arguments: the shared ones and `--fresh` (a verify keeps no checkpoint).
#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Ignore the configured checkpoint's saved progress and start the migration afresh.
    #[arg(long)]
    fresh: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Starts two vendors' emulators, seeds the source, migrates and verifies (default HubSpot → Salesforce).
    Demo(demo::DemoArgs),
    /// Migrates the objects named in the config from source to sink, then verifies them.
    Migrate(MigrateArgs),
    /// Moves what changed in the source since the last sync (everything, the first time), then
    /// verifies it; `[sync] state` keeps each object's watermark between runs, and `[sync]
    /// deletes` says what becomes of records deleted in the source.
    Sync(SyncArgs),
    /// Re-reads source and sink and compares checksums, writing nothing.
    Verify(RunArgs),
    /// A dry run: checks config and connectivity, reads each object's first page and shows
    /// what would be written (values masked), writing nothing.
    Plan(plan::PlanArgs),
    /// Lists the source's and the sink's fields for each configured object (kinds, picklist
    /// options, what each is carried as, which are unmapped), reading no record.
    Fields(fields::FieldsArgs),
    /// Checks the config, credentials and connectivity of source and sink, writing nothing.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "ferry.toml")]
        config: PathBuf,
        /// Seconds the checks of source and sink may take before ferry gives up on them.
        #[arg(long, default_value_t = CHECK_DEADLINE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
        deadline: u64,
        /// Report source and sink in the same account without refusing.
        #[arg(long)]
        allow_same_account: bool,
    },
    /// Serves the vendor emulators on loopback ports for trying ferry by hand.
    Sandbox(sandbox::SandboxArgs),
    /// Lists the connectors, the objects each supports and the directions.
    Connectors,
}

/// An error with the exit code it should end the process with.
pub struct CliError {
    /// The process exit code.
    pub code: u8,
    /// Whose fault it is (`error_kind` of the JSON report).
    pub kind: ErrorKind,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl CliError {
    /// A configuration error (exit 2).
    pub fn config(error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: EXIT_CONFIG,
            kind: ErrorKind::Config,
            error: error.into(),
        }
    }

    /// A run failure (exit 1): ferry's own fault unless the error is a connector's, whose kind
    /// it keeps.
    pub fn failed(error: impl Into<anyhow::Error>) -> CliError {
        let error = error.into();
        let kind = error
            .downcast_ref::<ferry_core::ConnectorError>()
            .map_or(ErrorKind::Internal, ferry_core::ConnectorError::kind);
        CliError {
            code: EXIT_FAILED,
            kind,
            error,
        }
    }
}

/// Keeps glibc's threshold for serving an allocation by its own `mmap` at its starting 128 KiB.
/// Left alone, glibc raises it (up to 32 MiB) each time such a block is freed, and from then on
/// a Bulk job's buffers of megabytes (its batch of records, CSV, result sets) come from the
/// arenas, where they leave holes among the records around them: the peak RSS of a Bulk run
/// varied between 149 and 171 MiB from that alone, and is 138 MiB with the threshold fixed
/// (docs/performance.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_buffers_mapped() {
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if set != 1 {
        tracing::debug!("glibc did not take the mmap threshold");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_buffers_mapped() {}

fn main() -> ExitCode {
    keep_large_buffers_mapped();
    hardening::disable_core_dumps();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if matches!(cli.command, Command::Demo(_)) {
        // SAFETY: no other thread exists yet; the runtime is built below.
        unsafe { demo::export_sandbox_credentials() };
    }
    // Landlock binds the calling thread and the threads it starts afterwards, so reading the
    // config, running secret commands, reading the checkpoint and sealing happen here, before
    // the runtime starts its threads.
    let prepared = match prepare(&cli.command) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            json_error(&cli.command, &e);
            return ExitCode::from(e.code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let command = json_command(&cli.command);
    match runtime.block_on(dispatch(cli, prepared)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            if let Some(command) = command {
                println!("{}", summary::json_error(command, e.kind, &e.error));
            }
            ExitCode::from(e.code)
        }
    }
}

/// The command's name when it was asked for `--report json`: an error that ends it before a
/// report exists is then still printed as JSON on stdout, with its kind, for CI to parse.
fn json_command(command: &Command) -> Option<&'static str> {
    match command {
        Command::Migrate(args) if args.run.report == ReportFormat::Json => Some("migrate"),
        Command::Sync(args) if args.run.report == ReportFormat::Json => Some("sync"),
        Command::Verify(args) if args.report == ReportFormat::Json => Some("verify"),
        _ => None,
    }
}

/// Prints `error` as a JSON report when the command asked for one (see [`json_command`]).
fn json_error(command: &Command, error: &CliError) {
    if let Some(command) = json_command(command) {
        println!("{}", summary::json_error(command, error.kind, &error.error));
    }
}

/// Logs go to stderr. Only ferry's own crates get verbose: dependencies stay at `warn`, so
/// no HTTP library ever logs a header (and with it a token) at trace level.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Directive targets match by prefix, so `ferry` covers every ferry crate (ferry_core,
    // ferry_hubspot, …) and nothing else.
    // The DNS resolver of the email MX check logs the names it asks about (a customer's email
    // domain) in some warnings: it logs nothing (`mx.rs` reports what matters by count).
    let filter =
        std::env::var("FERRY_LOG").unwrap_or_else(|_| format!("warn,hickory=off,ferry={level}"));
    // Colours only on a terminal without NO_COLOR: in a CI log or a file, escape codes are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(out::styled_stderr())
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .init();
}

async fn dispatch(cli: Cli, prepared: Option<Prepared>) -> Result<u8, CliError> {
    match (cli.command, prepared) {
        (Command::Demo(args), _) => demo::run(args, cli.quiet).await,
        (Command::Migrate(args), Some(mut run)) => {
            guard_same_account(&run, args.run.allow_same_account).await?;
            let setup = map_fields(&mut run, fields::Creating::Allowed).await?;
            run_config(Mode::Migrate, args.run, run, cli.quiet, setup).await
        }
        (Command::Sync(args), Some(mut run)) => {
            guard_same_account(&run, args.run.allow_same_account).await?;
            open_sink_state(&mut run).await?;
            check_sync_accounts(&run).await?;
            run.options.deletes.allow_mass_delete = args.allow_mass_delete;
            let setup = map_fields(&mut run, fields::Creating::Allowed).await?;
            run_config(Mode::Migrate, args.run, run, cli.quiet, setup).await
        }
        (Command::Verify(args), Some(mut run)) => {
            guard_same_account(&run, args.allow_same_account).await?;
            let setup = map_fields(&mut run, fields::Creating::Never).await?;
            run_config(Mode::Verify, args, run, cli.quiet, setup).await
        }
        (Command::Plan(args), Some(mut run)) => {
            guard_same_account(&run, args.allow_same_account).await?;
            // The dry run's deadline covers reading the field metadata too.
            let deadline = Duration::from_secs(args.deadline);
            let setup = tokio::time::timeout(
                deadline,
                map_fields(&mut run, fields::Creating::WouldCreate),
            )
            .await
            .map_err(|_| {
                let last: Vec<String> = [run.source.vendor(), run.sink.vendor()]
                    .into_iter()
                    .filter_map(|v| ferry_core::http::last_request(v).map(|e| format!("{v} {e}")))
                    .collect();
                CliError::failed(anyhow::anyhow!(
                    "stopped: the dry run did not finish within its {} s deadline (--deadline), \
                     still reading the field metadata{}",
                    args.deadline,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!("; the last requests were {}", last.join(" and "))
                    }
                ))
            })??;
            plan::run(args, run, setup, cli.quiet).await
        }
        (Command::Fields(args), _) => fields::run(args).await,
        (Command::Migrate(_) | Command::Sync(_) | Command::Verify(_) | Command::Plan(_), None) => {
            Err(CliError::failed(anyhow::anyhow!(
                "internal error: the run was not prepared"
            )))
        }
        (
            Command::Check {
                config,
                deadline,
                allow_same_account,
            },
            _,
        ) => check(config, deadline, allow_same_account).await,
        (Command::Sandbox(args), _) => sandbox::run(args).await,
        (Command::Connectors, _) => {
            print!("{}", connectors::listing());
            Ok(0)
        }
    }
}

/// What `migrate`, `verify` and `plan` set up before the async runtime starts (see `main`).
pub struct Prepared {
    /// The loaded config.
    pub config: config::Config,
    /// The source connector (its secrets resolved).
    pub source: Arc<dyn ferry_core::Source>,
    /// The sink connector (its secrets resolved).
    pub sink: Arc<dyn ferry_core::Sink>,
    /// The run's options, with the checkpoint opened.
    pub options: RunOptions,
    /// `sync`: the lock of the sync state, held until the process ends.
    pub lock: Option<ferry_core::sync::StateLock>,
    /// The command's name in the report: `migrate`, `sync`, `verify`.
    pub command: &'static str,
}

/// Sets up the commands that handle customer data and seals the filesystem (Landlock) for
/// them: `migrate`, `verify`, `plan` and `demo`. Other commands are not sealed.
fn prepare(command: &Command) -> Result<Option<Prepared>, CliError> {
    let prepared = match command {
        Command::Migrate(args) => Some(prepare_run(
            "migrate",
            &args.run.config,
            args.fresh,
            args.run.allow_same_account,
        )?),
        Command::Sync(args) => Some(prepare_run(
            "sync",
            &args.run.config,
            false,
            args.run.allow_same_account,
        )?),
        Command::Verify(args) => Some(prepare_run(
            "verify",
            &args.config,
            false,
            args.allow_same_account,
        )?),
        Command::Plan(args) => Some(prepare_run(
            "plan",
            &args.config,
            false,
            args.allow_same_account,
        )?),
        Command::Demo(_) => None,
        Command::Check { .. } | Command::Sandbox(_) | Command::Connectors | Command::Fields(_) => {
            return Ok(None);
        }
    };
    let options = prepared.as_ref().map(|p| &p.options);
    let writable: Vec<&Path> = options
        .and_then(|o| o.checkpoint.as_deref())
        .map(|c| c.path())
        .into_iter()
        .chain(
            options
                .and_then(|o| o.sync.as_deref())
                .and_then(|s| s.path()),
        )
        .collect();
    hardening::seal(&writable);
    Ok(prepared)
}

/// Loads the config, builds both connectors (running any secret commands) and opens the
/// checkpoint (`migrate` only) or takes the lock of the sync state and opens it (`sync`). No
/// network I/O. Refuses source and sink in the same account by their settings before anything
/// else, unless `allow_same_account`.
fn prepare_run(
    command: &'static str,
    config_path: &Path,
    fresh: bool,
    allow_same_account: bool,
) -> Result<Prepared, CliError> {
    let mut config = config::Config::load(config_path).map_err(CliError::config)?;
    refuse_static_same_account(&config, config_path, allow_same_account)?;
    if allow_same_account {
        same_account::share_source_id_setting(&mut config.source, &config.sink);
    }
    let source = connectors::source(&config.source)?;
    let sink = connectors::sink(&config.sink)?;
    // A sync keeps its state instead of a checkpoint: a stopped sync reads again from the
    // watermarks, which move only once an object settled.
    // A state kept in the sink is opened once the runtime runs ([`open_sink_state`]).
    let (lock, sync) = if command == "sync" && !config.sync.in_sink() {
        let (lock, state) = open_sync_state(&config, source.vendor(), sink.vendor())?;
        (Some(lock), Some(Arc::new(state)))
    } else {
        (None, None)
    };
    let checkpoint = match (&config.migration.checkpoint, command) {
        (Some(path), "migrate") => {
            let fingerprint = config.fingerprint().map_err(CliError::config)?;
            let file = ferry_core::checkpoint::CheckpointFile::open(path, &fingerprint, fresh)
                .map_err(|e| match e {
                    ferry_core::checkpoint::CheckpointError::Io { .. } => CliError::failed(e),
                    _ => CliError::config(e),
                })?;
            Some(Arc::new(file))
        }
        _ => None,
    };
    let options = RunOptions {
        objects: config.migration.object_types().map_err(CliError::config)?,
        batches_in_flight: config.migration.in_flight(sink.concurrent_calls()),
        quality: config.migration.quality_rules(),
        checkpoint,
        stop: None,
        value_maps: Default::default(),
        directory: config.directory.clone(),
        deletes: ferry_core::deletions::DeletePolicy {
            removal: config.sync.removal().map_err(CliError::config)?,
            max_deletes: config.sync.max_deletes,
            allow_mass_delete: false,
        },
        sync,
        consent: config.consent.clone(),
        source_fields: Default::default(),
    };
    Ok(Prepared {
        config,
        source,
        sink,
        options,
        lock,
        command,
    })
}

/// Takes the lock of the configured sync state (refusing at once, exit 5, when another sync
/// holds it) and opens the state, refusing one written for another source, sink or
/// configuration.
fn open_sync_state(
    config: &config::Config,
    source: &str,
    sink: &str,
) -> Result<(ferry_core::sync::StateLock, ferry_core::sync::StateFile), CliError> {
    let path = config.sync.state_path().map_err(CliError::config)?;
    let lock = ferry_core::sync::lock(path).map_err(sorted)?;
    let fingerprint = config.fingerprint().map_err(CliError::config)?;
    let state =
        ferry_core::sync::StateFile::open(path, &fingerprint, source, sink).map_err(sorted)?;
    Ok((lock, state))
}

/// The exit code and kind of a sync state that cannot be used: held by another sync (exit 5),
/// unreadable or another sync's (a config error), or not read or written (failed).
fn sorted(e: ferry_core::sync::StateError) -> CliError {
    use ferry_core::sync::StateError;
    match e {
        StateError::Locked { .. } | StateError::LeaseHeld(_) => CliError {
            code: EXIT_LOCKED,
            kind: ErrorKind::Locked,
            error: e.into(),
        },
        StateError::Io { .. } | StateError::Store(_) => CliError::failed(e),
        StateError::Unreadable { .. } | StateError::OtherSync { .. } => CliError::config(e),
    }
}

/// `[sync] state = "sink"`: takes the lease of the state the sink keeps for this configuration
/// (refusing at once, exit 5, while another sync holds it) and opens the state, before
/// anything is read or written. Refuses (exit 2) a sink that keeps none.
async fn open_sink_state(run: &mut Prepared) -> Result<(), CliError> {
    if !run.config.sync.in_sink() {
        return Ok(());
    }
    let fingerprint = run.config.fingerprint().map_err(CliError::config)?;
    let opened = ferry_core::sync::open_in_sink(
        &*run.sink,
        &fingerprint,
        run.source.vendor(),
        run.config.sync.lease(),
    )
    .map_err(sorted)?;
    let Some((lock, state)) = opened else {
        return Err(CliError::config(anyhow::anyhow!(
            "config key `sync.state`: \"sink\" cannot be used with the {} sink: its connector \
             has no place to keep the sync state; name a file such as \"ferry-sync-state.json\"",
            run.sink.vendor()
        )));
    };
    run.lock = Some(lock);
    run.options.sync = Some(Arc::new(state));
    Ok(())
}

/// Refuses (exit 2) a config whose source and sink name the same account by their settings
/// alone (see `same_account::static_match`), unless `allow`.
fn refuse_static_same_account(
    config: &config::Config,
    path: &Path,
    allow: bool,
) -> Result<(), CliError> {
    match same_account::static_match(&config.source, &config.sink) {
        Some(refusal) if !allow => Err(CliError::config(anyhow::anyhow!(
            "config file {}: {refusal}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Refuses (exit 2) a sync whose credentials reach other accounts than its state was written
/// for (by the vendors' account ids), and records them in a new state. An account id that
/// cannot be read is not compared (the config's fingerprint still is).
async fn check_sync_accounts(run: &Prepared) -> Result<(), CliError> {
    let Some(state) = &run.options.sync else {
        return Ok(());
    };
    let (source, sink) = tokio::join!(run.source.account_id(), run.sink.account_id());
    let known = |role: &str, id: ferry_core::ConnectorResult<Option<ferry_core::AccountId>>| {
        id.unwrap_or_else(|e| {
            tracing::warn!(role, error = %e, "the account id cannot be read; not compared with the sync state's");
            None
        })
    };
    let (source, sink) = (known("source", source), known("sink", sink));
    state
        .check_accounts(source.as_ref(), sink.as_ref())
        .map_err(CliError::config)
}

/// Resolves the config's field map against both vendors' fields (creating sink fields when
/// `creating` and the config allow), gives each connector its bindings and the run its
/// picklist value maps. Before anything is read or written.
async fn map_fields(
    run: &mut Prepared,
    creating: fields::Creating,
) -> Result<fields::FieldSetup, CliError> {
    let setup = fields::resolve(
        &run.source,
        &run.sink,
        &run.config,
        &run.options.objects,
        creating,
    )
    .await?;
    run.options.value_maps = setup
        .plans
        .iter()
        .map(|(object, plan)| (*object, plan.value_maps.clone()))
        .collect();
    run.options.source_fields = setup.source_fields.clone();
    Ok(setup)
}

/// Refuses (exit 2) a run whose source and sink credentials reach the account the vendor
/// names the same, before anything is read or written, unless `allow`.
async fn guard_same_account(run: &Prepared, allow: bool) -> Result<(), CliError> {
    let by_config = same_account::static_match(&run.config.source, &run.config.sink);
    same_account::guard(&*run.source, &*run.sink, by_config, allow)
        .await
        .map_err(CliError::config)
}

async fn run_config(
    mode: Mode,
    args: RunArgs,
    prepared: Prepared,
    quiet: bool,
    setup: fields::FieldSetup,
) -> Result<u8, CliError> {
    let Prepared {
        source,
        sink,
        options,
        lock,
        command,
        config,
        ..
    } = prepared;
    // Only a run that writes spends a day's quota worth stopping for; a verify reads.
    let share = (mode == Mode::Migrate).then(|| config.migration.daily_quota_share());
    let mut report = execute(
        mode,
        source,
        sink,
        &options,
        quiet,
        args.progress_interval,
        share,
    )
    .await;
    report.command = command;
    // Released only now, once the state holds this run's last watermark.
    drop(lock);
    report.fields_created = setup
        .created
        .iter()
        .map(|f| format!("{}.{} ({})", f.object, f.name, f.kind))
        .collect();
    print_report(&report, args.report)?;
    Ok(report.exit_code())
}

/// Runs the pipeline with a progress display. With `daily_quota_share`, the run stops cleanly
/// once it has used that share of a vendor account's daily quota left when it started
/// ([`stop_at_daily_quota`]).
pub async fn execute(
    mode: Mode,
    source: Arc<dyn ferry_core::Source>,
    sink: Arc<dyn ferry_core::Sink>,
    options: &RunOptions,
    quiet: bool,
    progress_interval: u64,
    daily_quota_share: Option<f64>,
) -> Report {
    let progress = Arc::new(Progress::new(&options.objects));
    let objects: Vec<&str> = options.objects.iter().map(|o| o.as_str()).collect();
    let heading = match mode {
        Mode::Migrate if options.sync.is_some() => format!(
            "sync: reading what changed in {} since the last sync from {}, writing to {}",
            objects.join(", "),
            source.vendor(),
            sink.vendor()
        ),
        Mode::Migrate => format!(
            "migrate: reading {} from {}, writing to {}",
            objects.join(", "),
            source.vendor(),
            sink.vendor()
        ),
        Mode::Verify => format!(
            "verify: reading {} from {} and from {}, writing nothing",
            objects.join(", "),
            source.vendor(),
            sink.vendor()
        ),
        Mode::Check => format!(
            "plan: reading {} from {} and checking every record as a migration to {} would, \
             writing nothing",
            objects.join(", "),
            source.vendor(),
            sink.vendor()
        ),
    };
    let display = progress::Display::start(
        Arc::clone(&progress),
        quiet,
        Duration::from_secs(progress_interval.max(1)),
        heading,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(stop_on_signals(stop.clone(), mode));
    let quota_stop: Arc<std::sync::Mutex<Option<QuotaStop>>> = Arc::default();
    let guard = daily_quota_share.map(|share| {
        tokio::spawn(stop_at_daily_quota(
            Arc::clone(&source),
            Arc::clone(&sink),
            share,
            stop,
            Arc::clone(&quota_stop),
        ))
    });
    let options = RunOptions {
        stop: Some(stopped),
        ..options.clone()
    };
    let (source_stats, sink_stats) = (Arc::clone(&source), Arc::clone(&sink));
    let mut report = ferry_core::run(mode, source, sink, &options, progress).await;
    signals.abort();
    if let Some(guard) = guard {
        guard.abort();
    }
    let stopped_at = quota_stop.lock().ok().and_then(|mut s| s.take());
    if let Some(stop) = stopped_at.filter(|_| report.interrupted && report.error.is_none()) {
        report.stop_for_daily_quota(stop);
    } else if report.error.is_some() {
        // The vendor refused a request for its daily quota: said so, not as a vendor error.
        let refused = [
            ("source", report.source, source_stats.http_stats()),
            ("sink", report.sink, sink_stats.http_stats()),
        ]
        .into_iter()
        .find_map(|(role, vendor, stats)| {
            let stats = stats?;
            stats
                .daily_quota
                .exhausted()
                .then(|| ferry_core::quota::refused(role, vendor, stats.daily_quota.get()))
        });
        if let Some(refused) = refused {
            report.stop_for_daily_quota(refused);
        }
    }
    display.finish().await;
    report
}

/// Every 50 ms, reads each vendor account's daily quota from its client's latest answer and,
/// once the run has used `share` of what was left at the first reading, asks the run to stop
/// (as the first Ctrl-C does: no new page is read, batches in flight settle, progress is
/// saved) and keeps why in `found`. A vendor whose answers state no quota is never stopped.
async fn stop_at_daily_quota(
    source: Arc<dyn ferry_core::Source>,
    sink: Arc<dyn ferry_core::Sink>,
    share: f64,
    stop: tokio::sync::watch::Sender<bool>,
    found: Arc<std::sync::Mutex<Option<QuotaStop>>>,
) {
    let mut guards = [
        QuotaGuard::new("source", source.vendor(), share),
        QuotaGuard::new("sink", sink.vendor(), share),
    ];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        for (guard, stats) in guards
            .iter_mut()
            .zip([source.http_stats(), sink.http_stats()])
        {
            let reading = stats.and_then(|s| s.daily_quota.get());
            if let Some(reached) = guard.check(reading) {
                eprintln!(
                    "ferry: stopping: the run used {} of the {} requests left of {}'s daily quota \
                     when it started ({:.0}%, daily_quota_share); finishing the batches in flight",
                    reached.used,
                    reached.remaining_at_start,
                    reached.vendor,
                    share * 100.0
                );
                if let Ok(mut found) = found.lock() {
                    *found = Some(reached);
                }
                let _ = stop.send(true);
                return;
            }
        }
    }
}

/// The first SIGINT or SIGTERM asks the run to stop: no new page is read, batches in flight
/// finish and are verified, progress is saved. A second one abandons them and exits at once;
/// the checkpoint still holds only settled pages, so a rerun resumes correctly.
async fn stop_on_signals(stop: tokio::sync::watch::Sender<bool>, mode: Mode) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for count in 0.. {
        #[cfg(unix)]
        let term_signal = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term_signal = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_signal => {}
        }
        if count == 0 {
            eprintln!(
                "ferry: stopping: reading no more pages, finishing the batches in flight (signal again to abandon them)"
            );
            let _ = stop.send(true);
        } else {
            // Only a migration resumes; a verify keeps nothing and starts over.
            match mode {
                Mode::Migrate => eprintln!(
                    "ferry: abandoning the batches in flight; rerun the same command to resume"
                ),
                Mode::Verify | Mode::Check => {
                    eprintln!("ferry: abandoning the batches in flight")
                }
            }
            std::process::exit(i32::from(Outcome::Interrupted.exit_code()));
        }
    }
}

fn print_report(report: &Report, format: ReportFormat) -> Result<(), CliError> {
    match format {
        ReportFormat::Human => {
            print!("{}", summary::human(report));
            if let Some(status) = hardening::status() {
                print!("{}", summary::sandbox(status));
            }
        }
        ReportFormat::Json => println!(
            "{}",
            summary::json(report, hardening::status()).map_err(CliError::failed)?
        ),
    }
    Ok(())
}

/// Retries `ferry check` allows per request unless the config sets `max_retries`: a dead
/// endpoint or a wrong port should be reported in seconds, not after a migration's patience.
const CHECK_MAX_RETRIES: i64 = 2;

/// Seconds one request of `ferry check` may take unless the config sets `timeout_secs`: the
/// answers it asks for are small. With [`CHECK_MAX_RETRIES`], an endpoint that accepts and
/// never answers is reported after about 31 s (3 attempts and two short waits).
const CHECK_TIMEOUT_SECS: i64 = 10;

/// The default of `ferry check --deadline`: above the 31 s a single hung endpoint takes, so
/// that case is reported with its endpoint and timeout; the deadline bounds the rest (a
/// vendor answering each of several requests just before its timeout).
const CHECK_DEADLINE_SECS: u64 = 45;

async fn check(path: PathBuf, deadline: u64, allow_same_account: bool) -> Result<u8, CliError> {
    let mut config = config::Config::load(&path).map_err(CliError::config)?;
    refuse_static_same_account(&config, &path, allow_same_account)?;
    for table in [&mut config.source, &mut config.sink] {
        table
            .settings
            .entry("max_retries")
            .or_insert(toml::Value::Integer(CHECK_MAX_RETRIES));
        table
            .settings
            .entry("timeout_secs")
            .or_insert(toml::Value::Integer(CHECK_TIMEOUT_SECS));
    }
    let source = connectors::source(&config.source)?;
    let sink = connectors::sink(&config.sink)?;
    println!("config {}: valid", path.display());
    let mut code = 0;
    let limit = Duration::from_secs(deadline);
    let (source_check, sink_check) = tokio::join!(
        tokio::time::timeout(limit, source.check()),
        tokio::time::timeout(limit, sink.check())
    );
    let late = |vendor: &str| {
        let waiting = ferry_core::http::last_request(vendor)
            .map(|e| format!("; its last request was {e}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "no result within the {deadline} s deadline of `ferry check` (--deadline){waiting}"
        )
    };
    let source_check = source_check
        .map_err(|_| late(source.vendor()))
        .and_then(|r| r.map_err(Into::into));
    let sink_check = sink_check
        .map_err(|_| late(sink.vendor()))
        .and_then(|r| r.map_err(Into::into));
    let source_spec = connectors::by_name(&config.source.connector);
    let sink_spec = connectors::by_name(&config.sink.connector);
    for (role, vendor, spec, result, granted) in [
        (
            Role::Source,
            source.vendor(),
            source_spec,
            source_check,
            source.granted_scopes(),
        ),
        (
            Role::Sink,
            sink.vendor(),
            sink_spec,
            sink_check,
            sink.granted_scopes(),
        ),
    ] {
        let role_name = role.as_str();
        match result {
            Ok(()) => println!("{role_name} {vendor}: reachable, credentials accepted"),
            Err(e) => {
                println!("{role_name} {vendor}: {e}");
                code = EXIT_FAILED;
            }
        }
        // The advice comes from the connector's own spec: the binary knows no vendor.
        if let Some(spec) = spec {
            let p = (spec.permissions)(role);
            println!("  needs: {}", p.needs);
            match &granted {
                Some(scopes) => println!("  granted: {}", scopes.join(" ")),
                None => println!("  granted: {}", p.visibility),
            }
            if let Some(warning) = granted
                .as_deref()
                .and_then(|s| plan::excess_warning(role, &(spec.excess_scopes)(role, s)))
            {
                println!("  warning: {warning}");
            }
        }
    }
    // A vendor that did not answer cannot name its account either: no second wait for it.
    let identities = if code == 0 {
        same_account::compare_identities(&*source, &*sink).await
    } else {
        None
    };
    if let Some(identities) = identities {
        println!("account: {}", identities.summary());
        if let Some(refusal) = identities.refusal() {
            if !allow_same_account {
                return Err(CliError::config(anyhow::anyhow!(refusal)));
            }
            println!("  allowed by {}", same_account::ALLOW_FLAG);
        }
    }
    Ok(code)
}
