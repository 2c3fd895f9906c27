//! `ferry-bench`: the performance benchmark of issue 6, in one command.
//!
//! It runs the release `ferry` binary against `ferry sandbox` started as a separate process, so
//! that ferry's CPU time and memory are measured apart from the emulators'. Each child's peak
//! RSS and user/system CPU time come from `wait4(2)`; counts, requests and 429s from ferry's
//! JSON report. See `docs/performance.md` for what each figure means.

mod child;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use scenario::{Bench, Figures};

const USAGE: &str = "usage: ferry-bench [all|ceiling|sinks|overhead|memory|latency|source|crm|sync|budget]... \
[--records N] [--ceiling-records N] [--source-records N] [--crm-records N] [--sync-records N] [--budget-records N] [--repeat N] [--sink VENDOR]... \
[--source VENDOR]... [--source-case TEXT] [--migration LINE]... [--partitioned] [--no-build] [--ferry PATH] [--wrap CMD]

  ceiling   HubSpot sink limited to 190 requests/10 s: ceiling use with the limit configured, and learned
  sinks     ceiling use of Pipedrive, Dynamics, Zoho and Salesforce as the sink, at their documented limits
  overhead  HubSpot -> Salesforce, no limits: records/s of migrate + verify (default 1,000,000 contacts)
  memory    ferry's peak RSS at 100,000 and 1,000,000 contacts
  crm       companies, contacts, deals and notes into each sink at its limit: records per request
            and request-budget use for deals and notes (not part of `all`)
  latency   the ceiling run with 150 ms added to every request (8x the ceiling records)
  source    each vendor as the source at its documented limits, with and without 150 ms added
            to its answers (HubSpot through the list alone and partitioned): records read per
            second per object, against the read ceiling of the vendor's limits (not part of `all`)
  sync      each vendor as the source of `ferry sync` (into Salesforce; Salesforce into HubSpot),
            no limits: requests of the first (full) sync, of one with nothing changed and of one
            with 1 % of the companies and contacts changed (not part of `all`)
  budget    companies and contacts into each sink at its limit, with and without 150 ms added:
            records verified per unit of the vendor's limiting budget (report `budget_cost`)
            and use of the limit, per object and per run (not part of `all`)
  all       every one of them but crm, sync and budget (the default)

  --records N          contacts of the overhead run (companies: a fifth as many)
  --source-records N   contacts of each source run (default 30,000; companies: a fifth)
  --ceiling-records N  contacts seeded for the ceiling runs, which move the companies (a fifth);
                       of `sinks`, Pipedrive seeds a fifteenth as many (it moves 40 records/s)
                       and Dynamics twice as many (up to 1,818 records/s)
  --crm-records N      contacts seeded for the crm runs (default 10,000; Pipedrive a tenth)
  --sync-records N     contacts seeded for the sync runs (default 10,000; companies: a fifth)
  --budget-records N   contacts seeded for the HubSpot budget runs (default 20,000; the other
                       sinks a tenth as many, Pipedrive a hundredth)
  --repeat N           overhead runs to take the median of (default 3)
  --sink VENDOR        `sinks` and `crm` run only this sink (repeatable): pipedrive, dynamics, zoho,
                       salesforce (and hubspot for `crm` and `budget`)
  --source VENDOR      `sync` and `source` run only this source (repeatable): hubspot, salesforce,
                       pipedrive, zoho, dynamics
  --source-case TEXT   `source` runs only the cases whose label holds TEXT, e.g. --source pipedrive
                       --source-case windows for the windowed read alone
  --migration LINE     a line added to `[migration]` of the overhead and memory runs (repeatable),
                       e.g. --migration 'duplicate_matching = \"full\"' for the duplicate finder's memory
  --partitioned        the overhead and memory runs read HubSpot partitioned (its default), not
                       through the list alone (which they do to measure ferry's own cost)
  --no-build           use target/release/ferry as it is
  --ferry PATH         the ferry binary to run
  --wrap \"CMD ARGS\"     run `ferry migrate` under CMD, e.g. --wrap \"valgrind --tool=callgrind\"
                       (CPU and RSS are then the wrapper's)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut which: Vec<String> = Vec::new();
    let mut overhead_records = 1_000_000usize;
    let mut ceiling_records = 75_000usize;
    let mut source_records = 30_000usize;
    let mut crm_records = 10_000usize;
    let mut sync_records = 10_000usize;
    let mut budget_records = 20_000usize;
    let mut repeat = 3usize;
    let mut sinks: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut source_case: Option<String> = None;
    let mut build = true;
    let mut ferry: Option<PathBuf> = None;
    let mut wrap: Vec<String> = Vec::new();
    let mut migration: Vec<String> = Vec::new();
    let mut partitioned = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize> {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--records" => overhead_records = number("--records")?,
            "--ceiling-records" => ceiling_records = number("--ceiling-records")?,
            "--source-records" => source_records = number("--source-records")?,
            "--crm-records" => crm_records = number("--crm-records")?,
            "--sync-records" => sync_records = number("--sync-records")?,
            "--budget-records" => budget_records = number("--budget-records")?,
            "--repeat" => repeat = number("--repeat")?,
            "--sink" => sinks.push(args.next().context("--sink needs a vendor")?),
            "--source" => sources.push(args.next().context("--source needs a vendor")?),
            "--source-case" => {
                source_case = Some(args.next().context("--source-case needs a text")?)
            }
            "--migration" => migration.push(args.next().context("--migration needs a line")?),
            "--partitioned" => partitioned = true,
            "--no-build" => build = false,
            "--ferry" => ferry = Some(args.next().context("--ferry needs a path")?.into()),
            "--wrap" => {
                let command = args.next().context("--wrap needs a command")?;
                wrap = command.split_whitespace().map(String::from).collect();
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "all" | "ceiling" | "sinks" | "overhead" | "memory" | "latency" | "source" | "crm"
            | "sync" | "budget" => which.push(arg),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if which.is_empty() || which.iter().any(|w| w == "all") {
        which = ["ceiling", "latency", "sinks", "overhead", "memory"]
            .map(String::from)
            .to_vec();
    }
    let ferry = match ferry {
        Some(path) => path,
        None => locate_ferry(build)?,
    };
    let bench = Bench::new(ferry, wrap)?
        .with_migration(migration)
        .with_partitioned(partitioned);
    println!("{}", bench.machine());
    let mut figures = Figures::default();
    for w in &which {
        match w.as_str() {
            "ceiling" => bench.ceiling(ceiling_records, &mut figures)?,
            // Eight times as long: at 150 ms a request, starting (the sink's property check,
            // the first page) and draining (the last read-back, the sink's count) take about
            // 0.75 s, which a short run would count against ceiling use: 1.2 % of a 60,000-record
            // run, 0.6 % of this one. A real migration runs for hours.
            "latency" => bench.latency(ceiling_records * 8, &mut figures)?,
            "sinks" => bench.sinks(ceiling_records, &sinks, &mut figures)?,
            "source" => bench.source_latency(
                source_records,
                &sources,
                source_case.as_deref(),
                &mut figures,
            )?,
            "crm" => bench.crm(crm_records, &sinks, &mut figures)?,
            "sync" => bench.sync(sync_records, &sources, &mut figures)?,
            "budget" => bench.budget(budget_records, &sinks, &mut figures)?,
            "overhead" => bench.overhead(overhead_records, repeat, &mut figures)?,
            "memory" => bench.memory(overhead_records, &mut figures)?,
            _ => {}
        }
    }
    println!("{}", figures.summary());
    println!("{}", bench.load());
    Ok(())
}

/// `target/release/ferry`, built first (one `cargo build --release --bin ferry`) unless asked not to.
fn locate_ferry(build: bool) -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("ferry-bench: cargo build --release --bin ferry");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--bin", "ferry"])
            .current_dir(&root)
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build --release --bin ferry failed ({status})");
        }
    }
    let ferry = target.join("release/ferry");
    if !ferry.is_file() {
        bail!(
            "{} does not exist: run `cargo build --release --bin ferry`",
            ferry.display()
        );
    }
    Ok(ferry)
}
