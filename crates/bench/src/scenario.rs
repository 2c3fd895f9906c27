//! The benchmark's runs: a sandbox process, a config, one `ferry migrate`, and the figures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;

use crate::child::{self, Usage};

/// HubSpot Professional/Enterprise's documented burst limit: 190 requests per 10 s.
const HUBSPOT_LIMIT: u32 = 190;
const HUBSPOT_WINDOW_SECS: f64 = 10.0;
/// HubSpot's batch size (inputs per batch upsert and per batch read).
const HUBSPOT_BATCH: f64 = 100.0;
/// Requests the ceiling runs add to every request, both ways.
const LATENCY_MS: u64 = 150;
/// Batches in flight for the run with added latency (see `docs/performance.md`).
const LATENCY_IN_FLIGHT: usize = 8;

/// The benchmark: where ferry is, and a private directory for the generated configs.
pub struct Bench {
    ferry: PathBuf,
    /// A command `ferry migrate` runs under (a profiler), if any.
    wrap: Vec<String>,
    dir: PathBuf,
    overhead_runs: std::cell::RefCell<HashMap<usize, Run>>,
    /// Lines added to `[migration]` of the overhead and memory runs (`--migration`).
    migration: Vec<String>,
    /// Whether the overhead and memory runs read HubSpot partitioned, its default
    /// (`--partitioned`), instead of through the list alone.
    partitioned: bool,
}

/// What the sandbox serves in one run.
struct SandboxPlan<'a> {
    source: &'a str,
    sink: &'a str,
    records: usize,
    limits: Vec<(&'a str, String)>,
    latency_ms: Option<u64>,
    /// Whether the latency is added to the source alone (the sink answers at once).
    latency_source_only: bool,
    /// Config lines added to the `[source]` table.
    source_extra: Vec<String>,
}

/// A running `ferry sandbox`.
struct Sandbox {
    child: Child,
    started: Instant,
    /// Per vendor, the config lines that point its connector at this sandbox.
    settings: HashMap<String, Vec<String>>,
    /// The sandbox-only credentials it printed, for the configs' `${…}` references.
    env: Vec<(String, String)>,
    /// CPU time spent before serving (generating and seeding the data).
    cpu_at_ready: Duration,
    ready_after: Duration,
    /// Its stdin, for its commands (`touch`, `advance`), and the lines it prints after the
    /// banner, for their answers.
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Sandbox {
    /// Runs one of `ferry sandbox`'s stdin commands; returns its answer line.
    fn command(&mut self, command: &str) -> Result<String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("cannot send `{command}` to the sandbox"))?;
        let answered = |l: &str| {
            ["touched ", "advanced ", "error: "]
                .iter()
                .any(|a| l.starts_with(a))
        };
        let lines = child::next_line(&self.lines, answered, Duration::from_secs(60))
            .with_context(|| format!("the sandbox did not answer `{command}`"))?;
        let answer = lines.last().cloned().unwrap_or_default();
        if answer.starts_with("error: ") {
            bail!("the sandbox refused `{command}`: {answer}");
        }
        Ok(answer)
    }
}

/// One measured `ferry migrate`.
#[derive(Clone)]
struct Run {
    report: Json,
    ferry: Usage,
    sandbox: Usage,
    /// The sandbox's CPU time while serving (seeding excluded).
    sandbox_serving_cpu: Duration,
    seeding: Duration,
}

impl Run {
    fn elapsed(&self) -> f64 {
        self.report["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0
    }

    fn object(&self, object: &str, count: &str) -> u64 {
        self.report["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| object == "*" || o["object"] == object)
            .map(|o| o[count].as_u64().unwrap_or(0))
            .sum()
    }

    fn object_http(&self, object: &str, side: &str, count: &str) -> u64 {
        self.report["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["object"] == object)
            .map(|o| o[side][count].as_u64().unwrap_or(0))
            .sum()
    }

    fn sink(&self, count: &str) -> u64 {
        self.report["sink_http"][count].as_u64().unwrap_or(0)
    }

    fn source(&self, count: &str) -> u64 {
        self.report["source_http"][count].as_u64().unwrap_or(0)
    }

    fn processes(&self) -> String {
        let f = &self.ferry;
        format!(
            "ferry: wall {:.2} s, user {:.2} s, sys {:.2} s, peak RSS {:.1} MiB | sandbox (separate process): \
             seeding {:.1} s, serving CPU {:.2} s, peak RSS {:.0} MiB",
            f.wall.as_secs_f64(),
            f.user.as_secs_f64(),
            f.sys.as_secs_f64(),
            f.max_rss_kib as f64 / 1024.0,
            self.seeding.as_secs_f64(),
            self.sandbox_serving_cpu.as_secs_f64(),
            self.sandbox.max_rss_kib as f64 / 1024.0,
        )
    }
}

/// The figures gathered, for the closing summary.
#[derive(Default)]
pub struct Figures {
    lines: Vec<String>,
}

impl Figures {
    fn push(&mut self, line: String) {
        println!("  => {line}\n");
        self.lines.push(line);
    }

    /// Every figure, one per line.
    pub fn summary(&self) -> String {
        let mut text = String::from("Summary\n");
        for line in &self.lines {
            let _ = writeln!(text, "  {line}");
        }
        text
    }
}

impl Bench {
    /// A benchmark running `ferry`.
    pub fn new(ferry: PathBuf, wrap: Vec<String>) -> Result<Bench> {
        let dir = std::env::temp_dir().join(format!("ferry-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Bench {
            ferry,
            wrap,
            dir,
            overhead_runs: Default::default(),
            migration: Vec::new(),
            partitioned: false,
        })
    }

    /// Adds `lines` to `[migration]` of the overhead and memory runs: what they measure
    /// (`duplicate_matching = "full"`, the duplicate finder's memory).
    pub fn with_migration(mut self, lines: Vec<String>) -> Bench {
        self.migration = lines;
        self
    }

    /// Reads HubSpot partitioned (its default) in the overhead and memory runs, to measure
    /// that read without limits rather than ferry's own cost.
    pub fn with_partitioned(mut self, partitioned: bool) -> Bench {
        self.partitioned = partitioned;
        self
    }

    /// The machine: cores, CPU model, memory, load.
    pub fn machine(&self) -> String {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown", |(_, m)| m.trim());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or("unknown".to_owned(), |kib| {
                format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
            });
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "machine: {cores} cores, {model}, {mem} RAM\nferry: {}\n{}\n",
            self.ferry.display(),
            self.load()
        )
    }

    /// The load average: a load above the core count means others were using the machine.
    pub fn load(&self) -> String {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        format!(
            "load average (1, 5, 15 min): {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    fn start_sandbox(&self, plan: &SandboxPlan) -> Result<Sandbox> {
        let mut command = Command::new(&self.ferry);
        command
            .args(["sandbox", "--any-port", "--clean", "--records"])
            .arg(plan.records.to_string())
            .args([
                "--only",
                plan.source,
                "--only",
                plan.sink,
                "--empty",
                plan.sink,
            ]);
        for (vendor, limit) in &plan.limits {
            command.arg("--limit").arg(format!("{vendor}={limit}"));
        }
        if let Some(ms) = plan.latency_ms {
            let sinks = if plan.latency_source_only {
                &[][..]
            } else {
                &[plan.sink][..]
            };
            for vendor in std::iter::once(&plan.source).chain(sinks) {
                command.arg("--latency").arg(format!("{vendor}={ms}"));
            }
        }
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ferry sandbox")?;
        let stdout = child.stdout.take().context("sandbox stdout")?;
        let stdin = child.stdin.take().context("sandbox stdin")?;
        let (lines, rest) = match child::lines_until(stdout, "Ready.", Duration::from_secs(900)) {
            Ok(read) => read,
            Err(e) => {
                let _ = child::terminate(&mut child, started);
                return Err(e.context("ferry sandbox did not start"));
            }
        };
        let ready_after = started.elapsed();
        let cpu_at_ready = child::cpu_so_far(child.id()).unwrap_or_default();
        let mut settings: HashMap<String, Vec<String>> = HashMap::new();
        let mut env = Vec::new();
        // The banner prints each connector's settings as a TOML table: a `connector = "…"`
        // line, then its keys, one a line, up to a blank line.
        let mut table: Option<String> = None;
        for line in &lines {
            let line = line.trim();
            if let Some(export) = line.strip_prefix("export ") {
                if let Some((var, value)) = export.split_once('=') {
                    env.push((var.to_owned(), value.to_owned()));
                }
            } else if let Some(rest) = line.strip_prefix("connector = \"") {
                let vendor = rest.split('"').next().unwrap_or_default().to_owned();
                settings.insert(vendor.clone(), vec![line.to_owned()]);
                table = Some(vendor);
            } else if line.is_empty() || line.starts_with('[') {
                table = None;
            } else if let Some(vendor) = &table
                && line.contains(" = ")
            {
                settings
                    .entry(vendor.clone())
                    .or_default()
                    .push(line.to_owned());
            }
        }
        for vendor in [plan.source, plan.sink] {
            if !settings.contains_key(vendor) {
                let _ = child::terminate(&mut child, started);
                bail!("the sandbox printed no connector settings for {vendor}");
            }
        }
        Ok(Sandbox {
            child,
            started,
            settings,
            env,
            cpu_at_ready,
            ready_after,
            stdin,
            lines: rest,
        })
    }

    /// Runs `ferry migrate` once against a fresh sandbox and stops the sandbox.
    fn migrate(
        &self,
        plan: &SandboxPlan,
        sink_extra: &[String],
        migration: &[String],
        timeout: Duration,
    ) -> Result<Run> {
        let mut sandbox = self.start_sandbox(plan)?;
        let result = self.migrate_against(&sandbox, plan, sink_extra, migration, None, timeout);
        let stopped = child::terminate(&mut sandbox.child, sandbox.started);
        let (report, ferry) = result?;
        let sandbox_usage = stopped.context("stopping the sandbox")?;
        Ok(Run {
            report,
            ferry,
            sandbox_serving_cpu: sandbox_usage.cpu().saturating_sub(sandbox.cpu_at_ready),
            sandbox: sandbox_usage,
            seeding: sandbox.ready_after,
        })
    }

    fn migrate_against(
        &self,
        sandbox: &Sandbox,
        plan: &SandboxPlan,
        sink_extra: &[String],
        migration: &[String],
        sync_state: Option<&Path>,
        timeout: Duration,
    ) -> Result<(Json, Usage)> {
        let mut config = String::from(
            "# Generated by ferry-bench: sandbox connector settings and ${VAR} references only.\nversion = 1\n",
        );
        for (table, vendor, extra) in [
            ("source", plan.source, &plan.source_extra[..]),
            ("sink", plan.sink, sink_extra),
        ] {
            let _ = writeln!(config, "\n[{table}]");
            // A setting in `extra` replaces the sandbox's own (its Dynamics pages of 1,000).
            let key = |line: &str| line.split(" = ").next().unwrap_or_default().to_owned();
            let overridden: Vec<String> = extra.iter().map(|l| key(l)).collect();
            let settings = sandbox.settings[vendor]
                .iter()
                .filter(|l| !overridden.contains(&key(l)));
            for line in settings.chain(extra) {
                let _ = writeln!(config, "{line}");
            }
        }
        let _ = writeln!(config, "\n[migration]");
        for line in migration {
            let _ = writeln!(config, "{line}");
        }
        if let Some(state) = sync_state {
            let _ = writeln!(
                config,
                "\n[sync]\nstate = {:?}",
                state.display().to_string()
            );
        }
        let verb = if sync_state.is_some() {
            "sync"
        } else {
            "migrate"
        };
        // The seeded industries, carried from the source's list into the sink's as an operator
        // would map them; without it, companies whose label the sink lacks would be refused.
        if let (Some(from), Some(to)) = (
            ferry_sandbox::emulator(plan.source),
            ferry_sandbox::emulator(plan.sink),
        ) && let Some(crosswalk) = ferry_sandbox::industry_crosswalk(&from, &to)
        {
            let _ = write!(config, "\n{}", crosswalk.to_config());
        }
        // Deals carry stages by label: the operator's table between the two accounts.
        if migration.iter().any(|l| l.contains("\"deals\""))
            && let (Some(from), Some(to)) = (
                ferry_sandbox::emulator(plan.source),
                ferry_sandbox::emulator(plan.sink),
            )
        {
            let pairs = ferry_sandbox::accounts::stage_crosswalk(from.deal_stages, to.deal_stages);
            let _ = write!(
                config,
                "\n{}",
                ferry_sandbox::accounts::stage_crosswalk_config(&pairs)
            );
        }
        let path = self.dir.join("bench.toml");
        std::fs::write(&path, &config)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let started = Instant::now();
        let mut command = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.ferry);
                c
            }
            None => Command::new(&self.ferry),
        };
        let mut ferry = command
            .args([verb, "-q", "--report", "json", "--config"])
            .arg(&path)
            .envs(sandbox.env.iter().map(|(k, v)| (k, v)))
            .env_remove("FERRY_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start ferry {verb}"))?;
        let stdout = child::drain(ferry.stdout.take().context("ferry stdout")?);
        let stderr = child::drain(ferry.stderr.take().context("ferry stderr")?);
        let usage = child::wait(&mut ferry, started, timeout);
        let _ = std::fs::remove_file(&path);
        let usage = usage.with_context(|| format!("ferry {verb}"))?;
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        let report: Json = serde_json::from_str(&stdout).with_context(|| {
            format!(
                "ferry {verb} (exit {}) printed no JSON report; stderr:\n{stderr}",
                usage.code
            )
        })?;
        // 0: all verified; 3: some records refused (listed in the report). Both are complete runs.
        if usage.code != 0 && usage.code != 3 {
            bail!(
                "ferry {verb} exited {}: {}\n{stderr}",
                usage.code,
                report["error"]
            );
        }
        Ok((report, usage))
    }

    /// The ceiling runs: HubSpot as the sink at 190 requests/10 s, once with the limit in the
    /// config and once learning it.
    pub fn ceiling(&self, records: usize, figures: &mut Figures) -> Result<()> {
        for (label, extra) in [
            (
                "ceiling, limit configured",
                vec![format!("rate_limit_per_10s = {HUBSPOT_LIMIT}")],
            ),
            ("ceiling, limit learned from headers", Vec::new()),
        ] {
            self.ceiling_run(label, records, None, &extra, &[], figures)?;
        }
        Ok(())
    }

    /// The ceiling run with latency added to every request, and more batches in flight.
    pub fn latency(&self, records: usize, figures: &mut Figures) -> Result<()> {
        let extra = vec![format!("rate_limit_per_10s = {HUBSPOT_LIMIT}")];
        let migration = vec![format!("batches_in_flight = {LATENCY_IN_FLIGHT}")];
        self.ceiling_run(
            &format!(
                "latency {LATENCY_MS} ms, limit configured, {LATENCY_IN_FLIGHT} batches in flight"
            ),
            records,
            Some(LATENCY_MS),
            &extra,
            &migration,
            figures,
        )
    }

    fn ceiling_run(
        &self,
        label: &str,
        records: usize,
        latency_ms: Option<u64>,
        sink_extra: &[String],
        migration: &[String],
        figures: &mut Figures,
    ) -> Result<()> {
        println!(
            "== {label}: Salesforce -> HubSpot (limit {HUBSPOT_LIMIT}/10 s), companies of a {records}-contact seed"
        );
        let plan = SandboxPlan {
            source: "salesforce",
            sink: "hubspot",
            records,
            limits: vec![
                ("salesforce", "none".to_owned()),
                ("hubspot", HUBSPOT_LIMIT.to_string()),
            ],
            latency_ms,
            source_extra: Vec::new(),
            latency_source_only: false,
        };
        let mut lines = vec!["objects = [\"companies\"]".to_owned()];
        lines.extend_from_slice(migration);
        let theoretical = f64::from(HUBSPOT_LIMIT) / HUBSPOT_WINDOW_SECS * HUBSPOT_BATCH / 2.0;
        let timeout = Duration::from_secs_f64(records as f64 / 5.0 / theoretical * 3.0 + 120.0);
        let run = self.migrate(&plan, sink_extra, &lines, timeout)?;
        let written = run.object("companies", "written");
        let verified = run.object("companies", "verified");
        let elapsed = run.elapsed();
        let achieved = written as f64 / elapsed;
        let requests = run.sink("requests");
        let counted = run.sink("budget_cost");
        let throttled = run.sink("throttled");
        // The window counts what `budget_cost` counts: read-back searches are exempt from it.
        let budget = counted as f64 / (f64::from(HUBSPOT_LIMIT) / HUBSPOT_WINDOW_SECS * elapsed);
        println!(
            "  {written} companies written, {verified} verified in {elapsed:.2} s; {requests} sink requests \
             ({counted} in the ten-second window), {throttled} answered 429 ({} retries)",
            run.sink("retries")
        );
        println!("  {}", run.processes());
        figures.push(format!(
            "{label}: {achieved:.0} records/s of {theoretical:.0} (upsert + batch read at the limit) = {:.1}%; \
             {:.1} records per window request, window at {:.1}% of the limit; 429s: {throttled} of \
             {requests} requests ({:.2}%)",
            achieved / theoretical * 100.0,
            verified as f64 / counted.max(1) as f64,
            budget * 100.0,
            throttled as f64 / requests.max(1) as f64 * 100.0,
        ));
        Ok(())
    }

    /// Each source vendor read into a sink that never holds it back (Salesforce without
    /// limits; Dynamics without limits for the Salesforce source), the source's emulator
    /// enforcing the vendor's documented limits, once as it answers and once with 150 ms added
    /// to each of its answers (the sink answers at once). Per object: records read per second
    /// of the object's run, against the read ceiling the documented limits give and the bound
    /// one cursor has at 150 ms (a page per round trip).
    /// `only`: the sources to run (all when empty); `case`: only the cases whose label holds it.
    pub fn source_latency(
        &self,
        records: usize,
        only: &[String],
        case: Option<&str>,
        figures: &mut Figures,
    ) -> Result<()> {
        for wanted in only {
            if !SYNC_SOURCES.contains(&wanted.as_str()) {
                bail!(
                    "--source {wanted}: expected one of {}",
                    SYNC_SOURCES.join(", ")
                );
            }
        }
        let mut table = vec![
            "| source | object | records | records/s, no latency | records/s, 150 ms | ceiling | one cursor at 150 ms | % of ceiling | % of no latency |".to_owned(),
            "|---|---|---|---|---|---|---|---|---|".to_owned(),
        ];
        for case in source_cases()
            .iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == c.source))
            .filter(|c| case.is_none_or(|text| c.label.contains(text)))
        {
            let runs = [None, Some(LATENCY_MS)]
                .map(|latency| self.source_run(case, records, latency))
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            for object in SYNC_OBJECTS {
                let rates: Vec<(u64, f64)> =
                    runs.iter().map(|run| read_rate(run, object)).collect();
                let (read, fast) = rates[0];
                let (_, slow) = rates[1];
                // Where the vendor's limits allow more than this machine reads without added
                // latency, the read without latency is what a read at 150 ms can reach.
                let cursor = case.page / (LATENCY_MS as f64 / 1000.0);
                let (ceiling, of_ceiling) = match case.ceiling {
                    Some(c) => (format!("{c:.0}/s"), format!("{:.1} %", slow / c * 100.0)),
                    None => ("none per second".to_owned(), "—".to_owned()),
                };
                let of_fast = slow / fast.max(0.001) * 100.0;
                figures.push(format!(
                    "{} source, {object}: {read} read at {fast:.0} records/s without latency, {slow:.0} \
                     with {LATENCY_MS} ms: {of_ceiling} of the ceiling ({ceiling}: {}), {of_fast:.1} % \
                     of the rate without latency; one cursor at {LATENCY_MS} ms: {cursor:.0}/s",
                    case.label, case.derivation,
                ));
                table.push(format!(
                    "| {} | {object} | {read} | {fast:.0} | {slow:.0} | {ceiling} | {cursor:.0} | {of_ceiling} | {of_fast:.1} % |",
                    case.label,
                ));
            }
        }
        println!("{}\n", table.join("\n"));
        Ok(())
    }

    /// One run of a source case: companies and contacts, with `latency_ms` added to the
    /// source's answers if given.
    fn source_run(
        &self,
        case: &SourceCase,
        records: usize,
        latency_ms: Option<u64>,
    ) -> Result<Run> {
        let latency = latency_ms.map_or("no latency".to_owned(), |ms| format!("latency {ms} ms"));
        println!(
            "== {} source, {latency}: {} -> {} (no limits), {records} contacts + {} companies",
            case.label,
            case.source,
            case.sink,
            records / 5
        );
        let plan = SandboxPlan {
            source: case.source,
            sink: case.sink,
            records,
            limits: [case.limits.clone(), vec![(case.sink, "none".to_owned())]].concat(),
            latency_ms,
            latency_source_only: true,
            source_extra: case.source_extra.clone(),
        };
        let mut migration = vec![format!("objects = {SYNC_OBJECTS:?}")];
        migration.extend(self.migration.iter().cloned());
        let timeout = Duration::from_secs(300 + records as u64 / 300);
        let run = self.migrate(&plan, &case.sink_extra, &migration, timeout)?;
        for object in SYNC_OBJECTS {
            let (read, rate) = read_rate(&run, object);
            println!(
                "  {object}: read {read}, verified {} in {:.2} s: {rate:.0} records/s; source requests {} ({} answered 429)",
                run.object(object, "verified"),
                run.object(object, "elapsed_ms") as f64 / 1000.0,
                run.object_http(object, "source_http", "requests"),
                run.object_http(object, "source_http", "throttled"),
            );
        }
        println!("  {}", run.processes());
        Ok(run)
    }

    /// The ceiling runs of the other sinks: Pipedrive, Dynamics, Zoho and Salesforce, each
    /// with its emulator enforcing the vendor's documented limit and ferry told it (or relying
    /// on its default where that is the documented one).
    /// `only`: the sinks to run (all when empty).
    pub fn sinks(&self, records: usize, only: &[String], figures: &mut Figures) -> Result<()> {
        let cases = sink_cases(records)
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == c.sink));
        for case in cases {
            self.sink_run(&case, figures)?;
        }
        Ok(())
    }

    fn sink_run(&self, case: &SinkCase, figures: &mut Figures) -> Result<()> {
        println!(
            "== {}: {} -> {} ({}), {} of a {}-contact seed",
            case.label, case.source, case.sink, case.limit_text, case.object, case.records
        );
        println!("  theoretical maximum: {}", case.derivation);
        let plan = SandboxPlan {
            source: case.source,
            sink: case.sink,
            records: case.records,
            limits: case.limits.clone(),
            latency_ms: case.latency_ms,
            source_extra: case.source_extra.clone(),
            latency_source_only: false,
        };
        let mut migration = vec![format!("objects = [\"{}\"]", case.object)];
        migration.extend(case.migration.iter().cloned());
        let expected = match case.object {
            "companies" => case.records / 5,
            _ => case.records,
        };
        let theoretical = case.theoretical();
        let timeout =
            Duration::from_secs_f64(expected as f64 / theoretical.min(5_000.0) * 3.0 + 120.0);
        let run = self.migrate(&plan, &case.sink_extra, &migration, timeout)?;
        let written = run.object(case.object, "written");
        let verified = run.object(case.object, "verified");
        let failed = run.object(case.object, "failed");
        let elapsed = run.elapsed();
        let achieved = written as f64 / elapsed;
        let requests = run.sink("requests");
        let throttled = run.sink("throttled");
        println!(
            "  {written} {} written, {verified} verified, {failed} failed in {elapsed:.2} s; {requests} sink requests \
             ({:.2} per 100 records), {throttled} answered 429 ({} retries)",
            case.object,
            requests as f64 * 100.0 / written.max(1) as f64,
            run.sink("retries")
        );
        println!("  {}", run.processes());
        let throttling = format!(
            "429s: {throttled} of {requests} requests ({:.2}%)",
            throttled as f64 / requests.max(1) as f64 * 100.0
        );
        let line = match case.budget {
            Budget::Rate { .. } | Budget::Concurrency { .. } => {
                let share = match case.budget {
                    Budget::Rate {
                        requests: n,
                        window_secs,
                    } => format!(
                        "sink requests at {:.1}% of the limit",
                        requests as f64 / (n / window_secs * elapsed) * 100.0
                    ),
                    Budget::Concurrency { slots, call_secs } => format!(
                        "sink requests at {:.1}% of {slots} calls in flight throughout",
                        requests as f64 / (slots / call_secs * elapsed) * 100.0
                    ),
                    Budget::Daily { .. } => String::new(),
                };
                format!(
                    "{}: {achieved:.1} records/s of {theoretical:.1} theoretical = {:.1}% of ceiling; {share}; {throttling}",
                    case.label,
                    achieved / theoretical * 100.0,
                )
            }
            Budget::Daily {
                requests: allocation,
            } => {
                let minimum = written as f64 / case.records_per_request;
                format!(
                    "{}: {:.1} records per request of {:.1} at best = {:.1}% of the daily allocation's ceiling \
                     (at best {:.1} M records per {:.0} k calls a day); {achieved:.0} records/s (no rate limit); \
                     {throttling}",
                    case.label,
                    written as f64 / requests.max(1) as f64,
                    case.records_per_request,
                    minimum / requests.max(1) as f64 * 100.0,
                    allocation * case.records_per_request / 1e6,
                    allocation / 1e3,
                )
            }
        };
        figures.push(line);
        Ok(())
    }

    /// The whole CRM into each sink at its documented limit: companies, contacts, deals and
    /// notes in one run, and for deals and notes (each written after its references) the
    /// records per counted request and the share of the sink's request budget used while that
    /// object ran (the report gives each object's requests and time).
    /// `only`: the sinks to run (all when empty).
    pub fn crm(&self, records: usize, only: &[String], figures: &mut Figures) -> Result<()> {
        let cases = crm_cases(records)
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == c.sink));
        for case in cases {
            self.crm_run(&case, figures)?;
        }
        Ok(())
    }

    fn crm_run(&self, case: &SinkCase, figures: &mut Figures) -> Result<()> {
        println!(
            "== {}: {} -> {} ({}), companies, contacts, deals and notes of a {}-contact seed",
            case.label, case.source, case.sink, case.limit_text, case.records
        );
        let plan = SandboxPlan {
            source: case.source,
            sink: case.sink,
            records: case.records,
            limits: case.limits.clone(),
            latency_ms: case.latency_ms,
            source_extra: case.source_extra.clone(),
            latency_source_only: false,
        };
        let mut migration =
            vec!["objects = [\"companies\", \"contacts\", \"deals\", \"notes\"]".to_owned()];
        migration.extend(case.migration.iter().cloned());
        // Pipedrive writes one record a request at 40 requests/s; the others are faster.
        let timeout = Duration::from_secs((case.records as u64 * 3 / 10).max(120) + 600);
        let run = self.migrate(&plan, &case.sink_extra, &migration, timeout)?;
        println!("  {}", run.processes());
        let mut parts = Vec::new();
        for object in ["companies", "contacts", "deals", "notes"] {
            let written = run.object(object, "written");
            let verified = run.object(object, "verified");
            let failed = run.object(object, "failed");
            let elapsed = run.object(object, "elapsed_ms") as f64 / 1000.0;
            let requests = run.object_http(object, "sink_http", "requests");
            let throttled = run.object_http(object, "sink_http", "throttled");
            let per_request = written as f64 / requests.max(1) as f64;
            let rate = written as f64 / elapsed.max(0.001);
            let share = match case.budget {
                Budget::Rate {
                    requests: n,
                    window_secs,
                } => format!(
                    "{:.1}% of the request limit",
                    requests as f64 / (n / window_secs * elapsed.max(0.001)) * 100.0
                ),
                Budget::Concurrency { slots, call_secs } => format!(
                    "{:.1}% of {slots} calls in flight",
                    requests as f64 / (slots / call_secs * elapsed.max(0.001)) * 100.0
                ),
                Budget::Daily { requests: a } => format!(
                    "{:.1} M records per {:.0} k calls a day",
                    a * per_request / 1e6,
                    a / 1e3
                ),
            };
            println!(
                "  {object}: {written} written, {verified} verified, {failed} failed in {elapsed:.2} s; \
                 {requests} sink requests ({per_request:.1} records per request), {rate:.1} records/s, {share}, \
                 {throttled} answered 429"
            );
            if object == "deals" || object == "notes" {
                parts.push(format!(
                    "{object} {per_request:.1} records per request, {rate:.0} records/s, {share}, {throttled} 429s"
                ));
            }
        }
        figures.push(format!("{}: {}", case.label, parts.join("; ")));
        Ok(())
    }

    /// The `budget` runs (issue 17): companies and contacts into each sink at its limit, fed
    /// by an unthrottled source, once as the emulators answer and once with [`LATENCY_MS`]
    /// added to every answer of both (and [`LATENCY_IN_FLIGHT`] batches in flight). Per
    /// object and for the whole run: records written and verified per unit of the vendor's
    /// limiting budget (the report's `budget_cost`: HubSpot's ten-second window, Salesforce's
    /// daily API calls, Dynamics' requests, Zoho's credits, Pipedrive's tokens) and the use of
    /// the limit that paces the run. `records`: HubSpot's contacts; the others seed a tenth
    /// as many, Pipedrive a hundredth. `only`: the sinks to run (all when empty).
    pub fn budget(&self, records: usize, only: &[String], figures: &mut Figures) -> Result<()> {
        let cases = crm_cases(records)
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == c.sink))
            .map(|mut c| {
                c.records = match c.sink {
                    "hubspot" => records,
                    "pipedrive" => (records / 100).max(100),
                    _ => (records / 10).max(500),
                };
                // Bulk API 2.0 for an object of 10,000 records or more: the default, said here
                // (in place of the `sinks` case's Collections) so that the runs keep
                // measuring Bulk if the default moves.
                if c.sink == "salesforce" {
                    c.sink_extra.retain(|l| !l.starts_with("bulk_threshold"));
                    c.sink_extra.push("bulk_threshold = 10000".to_owned());
                }
                c
            });
        for case in cases {
            for latency in [false, true] {
                self.budget_run(&case, latency, figures)?;
            }
        }
        Ok(())
    }

    fn budget_run(&self, case: &SinkCase, latency: bool, figures: &mut Figures) -> Result<()> {
        let latency_ms = if latency {
            Some(case.latency_ms.unwrap_or(0) + LATENCY_MS)
        } else {
            case.latency_ms
        };
        let added = if latency {
            format!(", {LATENCY_MS} ms added")
        } else {
            String::new()
        };
        println!(
            "== budget: {}{added}: {} -> {} ({}), companies and contacts of a {}-contact seed",
            case.label, case.source, case.sink, case.limit_text, case.records
        );
        let plan = SandboxPlan {
            source: case.source,
            sink: case.sink,
            records: case.records,
            limits: case.limits.clone(),
            latency_ms,
            source_extra: case.source_extra.clone(),
            latency_source_only: false,
        };
        let mut migration = vec!["objects = [\"companies\", \"contacts\"]".to_owned()];
        migration.extend(case.migration.iter().cloned());
        if latency && !migration.iter().any(|l| l.starts_with("batches_in_flight")) {
            migration.push(format!("batches_in_flight = {LATENCY_IN_FLIGHT}"));
        }
        let timeout = Duration::from_secs((case.records as u64 * 3 / 10).max(120) + 900);
        let run = self.migrate(&plan, &case.sink_extra, &migration, timeout)?;
        println!("  {}", run.processes());
        let unit = budget_unit(case.sink);
        let line = |label: &str, verified: u64, http: &dyn Fn(&str) -> u64, elapsed: f64| {
            let (requests, cost, throttled) =
                (http("requests"), http("budget_cost"), http("throttled"));
            let per_cost = verified as f64 / cost.max(1) as f64;
            // Below one record per unit (Pipedrive's tokens), the cost per record reads better.
            let per = if per_cost >= 1.0 || verified == 0 {
                format!("{per_cost:.1} records per {}", unit.trim_end_matches('s'))
            } else {
                format!("{:.1} {unit} per record", cost as f64 / verified as f64)
            };
            let rate = verified as f64 / elapsed.max(0.001);
            let use_ = ceiling_use(
                case.budget,
                case.sink == "pipedrive",
                (requests, cost, verified),
                elapsed,
            );
            format!(
                "{label}: {verified} verified in {elapsed:.2} s ({rate:.0}/s), {requests} sink requests, \
                 {cost} {unit}: {per}, {use_}, {throttled} 429s"
            )
        };
        let mut parts = Vec::new();
        for object in ["companies", "contacts"] {
            let text = line(
                object,
                run.object(object, "verified"),
                &|count| run.object_http(object, "sink_http", count),
                run.object(object, "elapsed_ms") as f64 / 1000.0,
            );
            println!(
                "  {text} (written {}, failed {})",
                run.object(object, "written"),
                run.object(object, "failed")
            );
            parts.push(text);
        }
        let whole = line(
            "run",
            run.object("*", "verified"),
            &|count| run.sink(count),
            run.elapsed(),
        );
        println!("  {whole}");
        parts.push(whole);
        figures.push(format!("{}{added}: {}", case.label, parts.join("; ")));
        Ok(())
    }

    /// The overhead run at `records` contacts, measured once and kept for the memory figure.
    fn overhead_run(&self, records: usize) -> Result<Run> {
        if let Some(run) = self.overhead_runs.borrow().get(&records) {
            return Ok(run.clone());
        }
        let run = self.fresh_overhead_run(records)?;
        self.overhead_runs.borrow_mut().insert(records, run.clone());
        Ok(run)
    }

    fn fresh_overhead_run(&self, records: usize) -> Result<Run> {
        println!(
            "== HubSpot -> Salesforce, no limits, {records} contacts + {} companies",
            records / 5
        );
        let plan = SandboxPlan {
            source: "hubspot",
            sink: "salesforce",
            records,
            limits: vec![
                ("hubspot", "none".to_owned()),
                ("salesforce", "none".to_owned()),
            ],
            latency_ms: None,
            // The connector paces itself at HubSpot's default 100/10 s until told otherwise,
            // and an emulator without limits announces none: tell it there are none. The list
            // alone unless `--partitioned`: a partitioned read gives part of each object to
            // search, which the connector paces at HubSpot's five a second, and this run is
            // for ferry's own cost.
            source_extra: vec![
                format!("rate_limit_per_10s = {}", u32::MAX),
                format!("read_partitions = {}", self.partitioned),
            ],
            latency_source_only: false,
        };
        let mut migration = vec!["objects = [\"companies\", \"contacts\"]".to_owned()];
        migration.extend(self.migration.iter().cloned());
        let timeout = Duration::from_secs(120 + records as u64 / 500);
        // ferry's own cost and memory, measured through sObject Collections from the start.
        let run = self.migrate(&plan, &salesforce_collections(), &migration, timeout)?;
        println!(
            "  read {}, written {}, verified {}, failed {}, mismatched {} in {:.2} s; requests: source {}, sink {}",
            run.object("*", "read"),
            run.object("*", "written"),
            run.object("*", "verified"),
            run.object("*", "failed"),
            run.object("*", "mismatched"),
            run.elapsed(),
            run.source("requests"),
            run.sink("requests"),
        );
        println!("  {}", run.processes());
        Ok(run)
    }

    /// Records/s of migrate + verify with no limits and no added latency: the median of
    /// `repeat` runs, with the range, since one run on a shared VM varies by several percent.
    pub fn overhead(&self, records: usize, repeat: usize, figures: &mut Figures) -> Result<()> {
        let mut runs = vec![self.overhead_run(records)?];
        for _ in 1..repeat.max(1) {
            runs.push(self.fresh_overhead_run(records)?);
        }
        let rate = |run: &Run| run.object("*", "verified") as f64 / run.elapsed().max(1e-9);
        runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", rate(r))).collect();
        let run = &runs[runs.len() / 2];
        let moved = run.object("*", "verified");
        let elapsed = run.elapsed();
        let ferry_cpu = run.ferry.cpu().as_secs_f64();
        figures.push(format!(
            "overhead, {records} contacts: {moved} records migrated + verified in {elapsed:.1} s = {:.0} records/s end to end \
             (median of {} runs: {} records/s); \
             ferry CPU {ferry_cpu:.1} s (user {:.1} + sys {:.1}) = {:.1} µs/record, {:.0} records per ferry CPU-second; \
             sandbox CPU {:.1} s",
            rate(run),
            runs.len(),
            rates.join(", "),
            run.ferry.user.as_secs_f64(),
            run.ferry.sys.as_secs_f64(),
            ferry_cpu * 1e6 / moved.max(1) as f64,
            moved as f64 / ferry_cpu.max(1e-9),
            run.sandbox_serving_cpu.as_secs_f64(),
        ));
        Ok(())
    }

    /// ferry's peak RSS at a tenth of `records` and at `records`.
    pub fn memory(&self, records: usize, figures: &mut Figures) -> Result<()> {
        let small = self.overhead_run(records / 10)?;
        let large = self.overhead_run(records)?;
        let mib = |r: &Run| r.ferry.max_rss_kib as f64 / 1024.0;
        figures.push(format!(
            "memory: ferry peak RSS {:.1} MiB at {} contacts, {:.1} MiB at {records} ({:.2}x)",
            mib(&small),
            records / 10,
            mib(&large),
            mib(&large) / mib(&small).max(1e-9),
        ));
        Ok(())
    }
}

/// What bounds a sink's throughput, from the vendor's documented limits.
#[derive(Clone, Copy)]
enum Budget {
    /// `requests` per rolling `window_secs`, which ferry paces itself to.
    Rate { requests: f64, window_secs: f64 },
    /// At most `slots` calls in flight, each taking `call_secs` (the latency the emulator adds
    /// while it counts the call as in flight).
    Concurrency { slots: f64, call_secs: f64 },
    /// An allocation of `requests` per 24 hours and no per-second limit: the ceiling is
    /// records per request, not records per second.
    Daily { requests: f64 },
}

/// One sink's ceiling run.
struct SinkCase {
    label: &'static str,
    source: &'static str,
    sink: &'static str,
    object: &'static str,
    /// Contacts seeded (companies: a fifth as many).
    records: usize,
    /// `--limit` flags of the sandbox.
    limits: Vec<(&'static str, String)>,
    latency_ms: Option<u64>,
    source_extra: Vec<String>,
    sink_extra: Vec<String>,
    migration: Vec<String>,
    budget: Budget,
    /// Records per sink request at best: the batch size over the requests each batch needs
    /// (write, read-back, and any per-record requests the connector makes).
    records_per_request: f64,
    limit_text: &'static str,
    derivation: &'static str,
}

impl SinkCase {
    /// Records per second at the limit (for a daily allocation: records per request).
    fn theoretical(&self) -> f64 {
        match self.budget {
            Budget::Rate {
                requests,
                window_secs,
            } => requests / window_secs * self.records_per_request,
            Budget::Concurrency { slots, call_secs } => {
                slots / call_secs * self.records_per_request
            }
            Budget::Daily { .. } => self.records_per_request,
        }
    }
}

/// What a sink's `budget_cost` counts, as the report's field documents it.
fn budget_unit(sink: &str) -> &'static str {
    match sink {
        "hubspot" => "window requests",
        "salesforce" => "API calls",
        "zoho" => "credits",
        "pipedrive" => "tokens",
        _ => "requests",
    }
}

/// How much of the limit that paces the run its `requests` (costing `cost` of the budget, and
/// verifying `verified` records) used over `elapsed` seconds. HubSpot's and Dynamics' windows
/// count what `budget_cost` counts; Pipedrive's burst window counts requests (`by_requests`:
/// its tokens are a daily budget); Zoho's limit is calls in flight; Salesforce's quota is
/// daily, so what a day's quota would carry is given instead.
fn ceiling_use(
    budget: Budget,
    by_requests: bool,
    (requests, cost, verified): (u64, u64, u64),
    elapsed: f64,
) -> String {
    let elapsed = elapsed.max(0.001);
    match budget {
        Budget::Rate {
            requests: n,
            window_secs,
        } => {
            let used = if by_requests { requests } else { cost };
            format!(
                "{:.1}% of the window's limit",
                used as f64 / (n / window_secs * elapsed) * 100.0
            )
        }
        Budget::Concurrency { slots, call_secs } => format!(
            "{:.1}% of {slots} calls in flight",
            requests as f64 / (slots / call_secs * elapsed) * 100.0
        ),
        Budget::Daily { requests: a } => format!(
            "{:.1} M records a day at {:.0} k calls",
            a * verified as f64 / cost.max(1) as f64 / 1e6,
            a / 1e3
        ),
    }
}

/// Pipedrive's burst limit for API-token requests on the Professional plan (VENDOR-FACTS §3.6,
/// legacy request-based limits: Essential 20, Advanced 40, Professional 80, Power 100,
/// Enterprise 120 per 2 s); the emulator's default.
const PIPEDRIVE_LIMIT: u32 = 80;
/// Zoho's concurrency limit on the Standard edition (VENDOR-FACTS §4.4), ferry's default.
const ZOHO_CONCURRENCY: u32 = 10;
/// The latency added to every Zoho call, counted by the emulator as time in flight: it stands
/// for Zoho's own time to serve a call, which is what makes a concurrency limit bind.
const ZOHO_CALL_MS: u64 = 200;

/// The sinks other than HubSpot, each with a source that does not limit the run.
fn sink_cases(records: usize) -> Vec<SinkCase> {
    // Salesforce as a source paces nothing by default; its emulator's daily allocation is lifted.
    let from_salesforce = || vec![("salesforce", "none".to_owned())];
    let pipedrive = |label, sink_extra| SinkCase {
        label,
        source: "salesforce",
        sink: "pipedrive",
        object: "companies",
        // 40 requests/s: a thousand organizations take 25 s.
        records: (records / 15).max(500),
        limits: [
            from_salesforce(),
            vec![("pipedrive", PIPEDRIVE_LIMIT.to_string())],
        ]
        .concat(),
        latency_ms: None,
        source_extra: Vec::new(),
        sink_extra,
        migration: Vec::new(),
        budget: Budget::Rate {
            requests: f64::from(PIPEDRIVE_LIMIT),
            window_secs: 2.0,
        },
        // No batch endpoint: one POST per record (the source-id field is created by this run,
        // so no search is needed), and one `GET ?ids=` per 100 records read back.
        records_per_request: 100.0 / 101.0,
        limit_text: "80 requests per rolling 2 s",
        derivation: "80 / 2 s × 100 records / (100 POSTs + 1 read-back GET) = 39.6 records/s",
    };
    // ferry keeps as many batches in flight as Zoho allows calls (`Sink::concurrent_calls`);
    // 4, the default for other sinks, left slots idle (75.5 %, docs/performance.md).
    let zoho = SinkCase {
        label: "Zoho sink, Standard edition's concurrency limit",
        source: "salesforce",
        sink: "zoho",
        object: "companies",
        records,
        limits: [
            from_salesforce(),
            vec![("zoho", ZOHO_CONCURRENCY.to_string())],
        ]
        .concat(),
        latency_ms: Some(ZOHO_CALL_MS),
        source_extra: Vec::new(),
        sink_extra: vec![format!("max_concurrent_requests = {ZOHO_CONCURRENCY}")],
        migration: Vec::new(),
        budget: Budget::Concurrency {
            slots: f64::from(ZOHO_CONCURRENCY),
            call_secs: ZOHO_CALL_MS as f64 / 1000.0,
        },
        // One upsert of 100 records and one read-back by Zoho id (`GET ?ids=`, 100 ids) per 100.
        records_per_request: 100.0 / 2.0,
        limit_text: "10 concurrent calls, 200 ms a call",
        derivation: "10 calls in flight / 0.2 s × 100 records / (1 upsert + 1 read-back GET by ids) = 2,500 records/s",
    };
    vec![
        pipedrive(
            "Pipedrive sink, limit configured",
            vec![format!("rate_limit_per_2s = {PIPEDRIVE_LIMIT}")],
        ),
        // Unset, ferry starts at the lowest plan's 20 per 2 s and moves to the 80 announced in
        // `x-ratelimit-limit`.
        pipedrive("Pipedrive sink, limit learned from headers", Vec::new()),
        SinkCase {
            label: "Dynamics sink, documented limit (ferry's default)",
            source: "salesforce",
            sink: "dynamics",
            object: "companies",
            // 20 requests/s: 30,000 accounts take 30 s, so that the fixed requests (WhoAmI,
            // the key check, the count) and the first and last round trips weigh under 1 %.
            records: records * 2,
            limits: from_salesforce(),
            latency_ms: None,
            source_extra: Vec::new(),
            sink_extra: Vec::new(),
            migration: Vec::new(),
            budget: Budget::Rate {
                requests: 6_000.0,
                window_secs: 300.0,
            },
            // One `$batch` of 100 upserts per 100 records, and one read-back `$batch` of long
            // GETs per 1,000.
            records_per_request: 1_000.0 / 11.0,
            limit_text: "6,000 requests per sliding 300 s, 52 concurrent",
            derivation: "6,000 / 300 s × 1,000 records / (10 upsert $batches + 1 read-back $batch) = 1,818 records/s",
        },
        zoho,
        SinkCase {
            label: "Salesforce sink, daily allocation",
            source: "hubspot",
            sink: "salesforce",
            object: "companies",
            records,
            limits: vec![("hubspot", "none".to_owned())],
            latency_ms: None,
            // The list alone, as for the overhead run: search's five a second would pace it.
            source_extra: vec![
                format!("rate_limit_per_10s = {}", u32::MAX),
                "read_partitions = false".to_owned(),
            ],
            // sObject Collections, what this case's ceiling is derived from.
            sink_extra: salesforce_collections(),
            migration: Vec::new(),
            budget: Budget::Daily {
                requests: 100_000.0,
            },
            // Upserts of 200 records, read-backs of 500 source ids in one SOQL query.
            records_per_request: 1_000.0 / 7.0,
            limit_text: "100,000 API calls per 24 h, no per-second limit",
            derivation: "1,000 records / (5 upserts of 200 + 2 read-back queries of 500) = 142.9 records per request",
        },
    ]
}

/// The `crm` runs: each sink at the limit of its `sinks` case (HubSpot at 190 per 10 s), fed by
/// an unthrottled source. Pipedrive seeds a tenth as many (one record a request at 40/s).
fn crm_cases(records: usize) -> Vec<SinkCase> {
    let mut cases: Vec<SinkCase> = sink_cases(records)
        .into_iter()
        .filter(|c| !c.label.contains("learned") && !c.label.contains("in flight"))
        .map(|mut c| {
            c.object = "crm";
            c.records = if c.sink == "pipedrive" {
                (records / 10).max(200)
            } else {
                records
            };
            c
        })
        .collect();
    cases.insert(
        0,
        SinkCase {
            label: "HubSpot sink, limit configured",
            source: "salesforce",
            sink: "hubspot",
            object: "crm",
            records,
            limits: vec![
                ("salesforce", "none".to_owned()),
                ("hubspot", HUBSPOT_LIMIT.to_string()),
            ],
            latency_ms: None,
            source_extra: Vec::new(),
            sink_extra: vec![format!("rate_limit_per_10s = {HUBSPOT_LIMIT}")],
            migration: Vec::new(),
            budget: Budget::Rate {
                requests: f64::from(HUBSPOT_LIMIT),
                window_secs: HUBSPOT_WINDOW_SECS,
            },
            records_per_request: HUBSPOT_BATCH / 2.0,
            limit_text: "190 requests per rolling 10 s",
            derivation: "",
        },
    );
    cases
}

/// One source vendor of the `source` runs, at its documented limits.
struct SourceCase {
    label: &'static str,
    source: &'static str,
    /// A sink that does not hold the read back (its limits lifted, no latency).
    sink: &'static str,
    /// `--limit` flags of the source's emulator (none: the emulator's default is the
    /// documented limit).
    limits: Vec<(&'static str, String)>,
    source_extra: Vec<String>,
    sink_extra: Vec<String>,
    /// Records per page, the vendor's largest, as ferry reads them.
    page: f64,
    /// Records per second the vendor's documented short-window limits allow at 150 ms a
    /// call; `None` where it documents none (Salesforce).
    ceiling: Option<f64>,
    derivation: &'static str,
}

/// The Salesforce sink's settings for a run that measures something else than Bulk API 2.0
/// (the sink's default from 10,000 records of an object): sObject Collections throughout, as
/// these runs have measured from the start. Bulk writes one job at a time and holds up to
/// three jobs of records; the `budget` runs measure it.
fn salesforce_collections() -> Vec<String> {
    vec!["bulk_threshold = false".to_owned()]
}

/// The `source` runs: every vendor as the source, at its documented limits. The Salesforce
/// sink (limits lifted) takes the reads; Salesforce's own reads go into Dynamics.
fn source_cases() -> Vec<SourceCase> {
    let call_secs = LATENCY_MS as f64 / 1000.0;
    let hubspot = |label, partitions: bool| SourceCase {
        label,
        source: "hubspot",
        sink: "salesforce",
        limits: vec![("hubspot", HUBSPOT_LIMIT.to_string())],
        source_extra: vec![
            format!("rate_limit_per_10s = {HUBSPOT_LIMIT}"),
            format!("read_partitions = {partitions}"),
        ],
        sink_extra: salesforce_collections(),
        page: HUBSPOT_BATCH,
        ceiling: Some(f64::from(HUBSPOT_LIMIT) / HUBSPOT_WINDOW_SECS * HUBSPOT_BATCH),
        derivation: "190 requests per 10 s (Professional) × 100 a list page",
    };
    // With one call at a time, the source reads one page a round trip; with Standard's 10, a
    // full read keeps 10 COQL pages (of `coql` records) in flight.
    let zoho = |label, calls: u32, coql: u32| SourceCase {
        label,
        source: "zoho",
        sink: "salesforce",
        limits: vec![("zoho", ZOHO_CONCURRENCY.to_string())],
        source_extra: vec![
            format!("max_concurrent_requests = {calls}"),
            format!("coql_page_size = {coql}"),
        ],
        sink_extra: salesforce_collections(),
        page: f64::from(coql),
        ceiling: Some(f64::from(ZOHO_CONCURRENCY) / call_secs * 2_000.0),
        derivation: "10 calls in flight (Standard) / 0.15 s a call × 2,000 a COQL page \
                     (ferry's COQL pages hold `coql_page_size` records, after the list's \
                     first page of up to 200)",
    };
    // One cursor reads one page a round trip; windows read `windows` cursors side by side
    // (`None`: as many as the connector reads by default).
    let pipedrive = |label, windows: Option<u32>| SourceCase {
        label,
        source: "pipedrive",
        sink: "salesforce",
        limits: vec![("pipedrive", PIPEDRIVE_LIMIT.to_string())],
        source_extra: std::iter::once(format!("rate_limit_per_2s = {PIPEDRIVE_LIMIT}"))
            .chain(windows.map(|w| format!("read_windows = {w}")))
            .collect(),
        sink_extra: salesforce_collections(),
        page: 500.0,
        ceiling: Some(f64::from(PIPEDRIVE_LIMIT) / 2.0 * 500.0),
        derivation: "80 requests per 2 s (API token, Professional) × 500 a v2 list page; \
                     the emulator's daily 900,000 tokens at 10 a v2 list page carry 521 \
                     records/s over 24 h",
    };
    vec![
        SourceCase {
            label: "Salesforce",
            source: "salesforce",
            sink: "dynamics",
            // The emulator's default: 100,000 API calls a day, no per-second limit.
            limits: Vec::new(),
            source_extra: Vec::new(),
            // The Dynamics connector paces itself at Dataverse's 6,000 per 5 minutes unless
            // told otherwise; its emulator's limits are lifted here.
            sink_extra: vec![format!("requests_per_5min = {}", u32::MAX)],
            page: 2_000.0,
            ceiling: None,
            derivation: "no per-second limit on short requests (25 long-running ones, of 20 s or \
                         more, at once); query pages of up to 2,000 (`batchSize`); the daily \
                         100,000 calls carry 2,315 records/s over 24 h",
        },
        pipedrive("Pipedrive, one cursor (`read_windows = 1`)", Some(1)),
        pipedrive(
            "Pipedrive, in update-time windows (the default `read_windows`)",
            None,
        ),
        zoho("Zoho CRM, one page at a time", 1, 200),
        zoho("Zoho CRM, 10 pages in flight", ZOHO_CONCURRENCY, 200),
        zoho(
            "Zoho CRM, 10 COQL pages of 1,000 in flight",
            ZOHO_CONCURRENCY,
            1_000,
        ),
        SourceCase {
            label: "Dataverse",
            source: "dynamics",
            sink: "salesforce",
            // The emulator's default: 6,000 requests and 1,200 s of execution per 300 s,
            // 52 at once.
            limits: Vec::new(),
            // Dataverse's largest page (the sandbox's settings say 1,000).
            source_extra: vec!["page_size = 5000".to_owned()],
            sink_extra: salesforce_collections(),
            page: 5_000.0,
            ceiling: Some(6_000.0 / 300.0 * 5_000.0),
            derivation: "6,000 requests per 300 s × 5,000 a page (`odata.maxpagesize`)",
        },
        hubspot("HubSpot, list alone", false),
        hubspot("HubSpot, partitioned", true),
    ]
}

/// Records of `object` read, and read per second of the object's run.
fn read_rate(run: &Run, object: &str) -> (u64, f64) {
    let read = run.object(object, "read");
    let secs = run.object(object, "elapsed_ms") as f64 / 1000.0;
    (read, read as f64 / secs.max(0.001))
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every vendor, as the source of the `sync` runs.
const SYNC_SOURCES: [&str; 5] = ["hubspot", "salesforce", "pipedrive", "zoho", "dynamics"];
/// The objects the `sync` runs move.
const SYNC_OBJECTS: [&str; 2] = ["companies", "contacts"];
/// The records the 1 % sync changes: every 100th of each object.
const SYNC_EVERY: usize = 100;
/// How far the emulators' clocks move between two syncs (after the changes, which are made
/// between them): an hourly sync, and well past every connector's overlap (5 minutes at most),
/// so that no sync re-reads the previous one's changes.
const SYNC_INTERVAL_SECS: u64 = 3600;

/// One `ferry sync` of the `sync` runs: requests per object and in all, read, elapsed.
struct SyncFigures {
    /// (source requests, sink requests, records read) per object of [`SYNC_OBJECTS`].
    objects: Vec<(u64, u64, u64)>,
    source: u64,
    sink: u64,
    elapsed: f64,
}

impl SyncFigures {
    fn of(report: &Json) -> SyncFigures {
        let run = Run {
            report: report.clone(),
            ferry: Usage::default(),
            sandbox: Usage::default(),
            sandbox_serving_cpu: Duration::ZERO,
            seeding: Duration::ZERO,
        };
        SyncFigures {
            objects: SYNC_OBJECTS
                .iter()
                .map(|o| {
                    (
                        run.object_http(o, "source_http", "requests"),
                        run.object_http(o, "sink_http", "requests"),
                        run.object(o, "read"),
                    )
                })
                .collect(),
            source: run.source("requests"),
            sink: run.sink("requests"),
            elapsed: run.elapsed(),
        }
    }

    fn line(&self) -> String {
        let objects: Vec<String> = SYNC_OBJECTS
            .iter()
            .zip(&self.objects)
            .map(|(o, (source, sink, read))| {
                format!("{o}: {read} read, source {source}, sink {sink}")
            })
            .collect();
        format!(
            "requests: source {}, sink {} ({}) in {:.2} s",
            self.source,
            self.sink,
            objects.join("; "),
            self.elapsed
        )
    }
}

impl Bench {
    /// The `sync` runs: for each source vendor, into an empty sink, a first `ferry sync` (a
    /// full read), one with nothing changed and one with 1 % of every object changed, each
    /// costed in requests against the first.
    pub fn sync(&self, records: usize, sources: &[String], figures: &mut Figures) -> Result<()> {
        for wanted in sources {
            if !SYNC_SOURCES.contains(&wanted.as_str()) {
                bail!(
                    "--source {wanted}: expected one of {}",
                    SYNC_SOURCES.join(", ")
                );
            }
        }
        let mut table = vec![
            "| source → sink | full sync: source + sink requests | no change: source + sink | ratio | 1 %: source + sink | ratio | 1 % read = changed |".to_owned(),
            "|---|---|---|---|---|---|---|".to_owned(),
        ];
        for source in SYNC_SOURCES
            .iter()
            .filter(|s| sources.is_empty() || sources.iter().any(|w| w == *s))
        {
            table.push(self.sync_run(source, records, figures)?);
        }
        println!("{}\n", table.join("\n"));
        Ok(())
    }

    fn sync_run(&self, source: &str, records: usize, figures: &mut Figures) -> Result<String> {
        let sink = if source == "salesforce" {
            "hubspot"
        } else {
            "salesforce"
        };
        println!(
            "== sync {source} -> {sink}, no limits, {records} contacts + {} companies",
            records / 5
        );
        // HubSpot's connector paces itself at the default plan's 100 per 10 s unless told
        // otherwise; an emulator without limits announces none. Pacing changes no count.
        let unpaced = |vendor: &str| -> Vec<String> {
            if vendor == "hubspot" {
                vec![format!("rate_limit_per_10s = {}", u32::MAX)]
            } else {
                Vec::new()
            }
        };
        let plan = SandboxPlan {
            source,
            sink,
            records,
            limits: vec![(source, "none".to_owned()), (sink, "none".to_owned())],
            latency_ms: None,
            source_extra: unpaced(source),
            latency_source_only: false,
        };
        let sink_extra = unpaced(sink);
        let migration = vec![format!("objects = {SYNC_OBJECTS:?}")];
        let state = self.dir.join(format!("sync-{source}.json"));
        let _ = std::fs::remove_file(&state);
        let timeout = Duration::from_secs(300 + records as u64 / 20);
        let mut sandbox = self.start_sandbox(&plan)?;
        let result = (|| -> Result<String> {
            let full = SyncFigures::of(&self.sync_once(
                &sandbox,
                &plan,
                &sink_extra,
                &migration,
                &state,
                timeout,
            )?);
            println!("  full (first) sync: {}", full.line());
            let advance = format!("advance {SYNC_INTERVAL_SECS}");
            sandbox.command(&advance)?;
            let unchanged = SyncFigures::of(&self.sync_once(
                &sandbox,
                &plan,
                &sink_extra,
                &migration,
                &state,
                timeout,
            )?);
            println!("  no-change sync:    {}", unchanged.line());
            let mut changed = Vec::new();
            for object in SYNC_OBJECTS {
                let answer = sandbox.command(&format!("touch {source} {object} {SYNC_EVERY}"))?;
                let n: u64 = answer
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("unexpected answer `{answer}`"))?;
                changed.push(n);
            }
            // The changes are made in the hour between two syncs, not in the second the next
            // one starts: a read that ends at the vendor's clock in whole seconds (`Date`,
            // as HubSpot's does) leaves a change in that same second to the sync after.
            sandbox.command(&advance)?;
            let one = SyncFigures::of(&self.sync_once(
                &sandbox,
                &plan,
                &sink_extra,
                &migration,
                &state,
                timeout,
            )?);
            println!("  1 % sync:          {}", one.line());
            let exact: Vec<String> = SYNC_OBJECTS
                .iter()
                .zip(changed.iter().zip(&one.objects))
                .map(|(o, (changed, (_, _, read)))| {
                    let mark = if changed == read { "" } else { " ≠" };
                    format!("{o} {read}/{changed}{mark}")
                })
                .collect();
            let all_exact = changed
                .iter()
                .zip(&one.objects)
                .all(|(c, (_, _, read))| c == read);
            if !all_exact {
                println!(
                    "  !! the 1 % sync read other than the changed records: {}",
                    exact.join(", ")
                );
            }
            let total = |f: &SyncFigures| f.source + f.sink;
            let ratio = |f: &SyncFigures| total(f) as f64 / total(&full).max(1) as f64 * 100.0;
            figures.push(format!(
                "sync {source} -> {sink}, {records} contacts: full {} + {} requests ({:.1} s); \
                 no change {} + {} ({:.2} %, {:.2} s); 1 % changed {} + {} ({:.2} %, {:.2} s), read/changed {}",
                full.source,
                full.sink,
                full.elapsed,
                unchanged.source,
                unchanged.sink,
                ratio(&unchanged),
                unchanged.elapsed,
                one.source,
                one.sink,
                ratio(&one),
                one.elapsed,
                exact.join(", "),
            ));
            Ok(format!(
                "| {source} → {sink} | {} + {} = {} | {} + {} = {} | {:.2} % | {} + {} = {} | {:.2} % | {} |",
                full.source,
                full.sink,
                total(&full),
                unchanged.source,
                unchanged.sink,
                total(&unchanged),
                ratio(&unchanged),
                one.source,
                one.sink,
                total(&one),
                ratio(&one),
                exact.join(", "),
            ))
        })();
        let _ = child::terminate(&mut sandbox.child, sandbox.started);
        let _ = std::fs::remove_file(&state);
        result
    }

    /// One `ferry sync` against `sandbox`; its report.
    fn sync_once(
        &self,
        sandbox: &Sandbox,
        plan: &SandboxPlan,
        sink_extra: &[String],
        migration: &[String],
        state: &Path,
        timeout: Duration,
    ) -> Result<Json> {
        self.migrate_against(sandbox, plan, sink_extra, migration, Some(state), timeout)
            .map(|(report, _)| report)
    }
}
