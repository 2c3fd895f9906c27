//! `ferry sandbox`: every vendor's emulator on its own loopback port, for trying ferry by hand.

use std::fmt::Write as _;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_sandbox::faults::Faults;
use ferry_sandbox::{Limits, SandboxConfig, VendorEmulator, VendorSetup, seed::Mess};

use ferry_core::report::count;

use crate::CliError;

/// Options of `ferry sandbox`.
#[derive(clap::Args)]
pub struct SandboxArgs {
    /// Contacts to seed into each emulator (companies: a fifth as many).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seed only valid data.
    #[arg(long)]
    clean: bool,
    /// Serve only these vendors (repeatable; default: all).
    #[arg(long = "only", value_name = "VENDOR")]
    only: Vec<String>,
    /// Leave this vendor's emulator empty instead of seeding it (repeatable).
    #[arg(long = "empty", value_name = "VENDOR")]
    empty: Vec<String>,
    /// Listen on any free ports instead of the fixed ones (the URLs are printed).
    #[arg(long)]
    any_port: bool,
    /// Fault: answer every Nth request of VENDOR with its 429 (`--throttle salesforce=4`, repeatable).
    #[arg(long = "throttle", value_name = "VENDOR=N")]
    throttle: Vec<String>,
    /// Rate limits of VENDOR's emulator (repeatable): `none` (no limits at all, to measure
    /// ferry alone), `documented` (the default), or N requests per the vendor's burst window
    /// (`--limit hubspot=190`: HubSpot Professional's 190 per 10 s; pipedrive counts per 2 s;
    /// for zoho, N concurrent calls: `--limit zoho=10`, the Standard edition's), or
    /// `daily:N`, a daily quota of N (HubSpot's daily requests, Salesforce's daily API
    /// allocation, Pipedrive's daily tokens: `--limit salesforce=daily:500`).
    #[arg(long = "limit", value_name = "VENDOR=LIMIT")]
    limit: Vec<String>,
    /// Milliseconds added to every request VENDOR's emulator answers, as a distant vendor's
    /// round trip adds them (`--latency hubspot=150`, repeatable).
    #[arg(long = "latency", value_name = "VENDOR=MS")]
    latency: Vec<String>,
    /// `Retry-After` seconds sent with injected 429s (default: none).
    #[arg(long)]
    retry_after: Option<u64>,
    /// Fault profile of VENDOR's emulator (repeatable): comma-separated faults, each with an
    /// optional `:VALUE`, or `all`. Faults: storm[:BURST/EVERY] (bursts of 429s, default 3/40),
    /// retry-after[:SECS] (sent with injected 429s), 5xx[:PCT] (500/502/503), reset[:PCT]
    /// (connection dropped mid-response), slow[:PCT] (answers held back, 2500 ms or slow-ms:MS:
    /// set the connector's timeout_secs below it), truncate[:PCT] (200 with cut-off JSON),
    /// badutf8[:PCT] (email addresses whose `@` is sent as the invalid byte 0xFF),
    /// partial[:PCT] (batch inputs failing with the vendor's transient error), shift[:N] (records
    /// created and updated between pages), expire[:N] (tokens expire every N requests),
    /// seed:N. Percentages default to 5. E.g. `--faults salesforce=storm,5xx,partial`,
    /// `--faults hubspot=all`.
    #[arg(long = "faults", value_name = "VENDOR=PROFILE")]
    faults: Vec<String>,
}

/// Serves the emulators until Ctrl-C or SIGTERM.
pub async fn run(args: SandboxArgs) -> Result<u8, CliError> {
    let known: Vec<&str> = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .collect();
    let check = |vendor: &str| -> Result<(), CliError> {
        if known.contains(&vendor) {
            Ok(())
        } else {
            Err(CliError::config(anyhow::anyhow!(
                "no emulator for `{vendor}` (available: {})",
                known.join(", ")
            )))
        }
    };
    let mut throttles = Vec::new();
    for t in &args.throttle {
        let (vendor, n) = vendor_flag("--throttle", t, "N")?;
        check(vendor)?;
        let every = n.parse::<u64>().map_err(|_| {
            CliError::config(anyhow::anyhow!("--throttle `{t}`: expected VENDOR=N"))
        })?;
        throttles.push((vendor.to_owned(), every));
    }
    let mut profiles: Vec<(String, Faults)> = Vec::new();
    for f in &args.faults {
        let (vendor, profile) = vendor_flag("--faults", f, "PROFILE")?;
        check(vendor)?;
        let parsed = Faults::parse(profile)
            .map_err(|e| CliError::config(anyhow::anyhow!("--faults `{f}`: {e}")))?;
        profiles.push((vendor.to_owned(), parsed));
    }
    let mut limits: Vec<(String, Limits)> = Vec::new();
    for l in &args.limit {
        let (vendor, limit) = vendor_flag("--limit", l, "LIMIT")?;
        check(vendor)?;
        let parsed = Limits::parse(limit)
            .map_err(|e| CliError::config(anyhow::anyhow!("--limit `{l}`: {e}")))?;
        let unsettable = ferry_sandbox::emulator(vendor).is_some_and(|e| e.limit_unit.is_none());
        if matches!(parsed, Limits::Burst(_)) && unsettable {
            return Err(CliError::config(anyhow::anyhow!(
                "--limit `{l}`: {vendor} has no limit a number can set (only `none` or `documented`)"
            )));
        }
        if matches!(parsed, Limits::Daily(_))
            && !ferry_sandbox::DAILY_QUOTA_VENDORS.contains(&vendor)
        {
            return Err(CliError::config(anyhow::anyhow!(
                "--limit `{l}`: {vendor}'s emulator has no daily quota to set (those that do: {})",
                ferry_sandbox::DAILY_QUOTA_VENDORS.join(", ")
            )));
        }
        limits.push((vendor.to_owned(), parsed));
    }
    let mut latencies: Vec<(String, std::time::Duration)> = Vec::new();
    for l in &args.latency {
        let (vendor, ms) = vendor_flag("--latency", l, "MS")?;
        check(vendor)?;
        let ms = ms.parse::<u64>().map_err(|_| {
            CliError::config(anyhow::anyhow!("--latency `{l}`: expected VENDOR=MS"))
        })?;
        latencies.push((vendor.to_owned(), std::time::Duration::from_millis(ms)));
    }
    for v in args.only.iter().chain(&args.empty) {
        check(v)?;
    }
    let limits_of = |vendor: &str| -> Limits {
        limits
            .iter()
            .rev()
            .find(|(v, _)| v == vendor)
            .map_or(Limits::Documented, |(_, l)| *l)
    };
    let faults_of = |vendor: &str| -> Faults {
        let mut faults = profiles
            .iter()
            .rev()
            .find(|(v, _)| v == vendor)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        if let Some((_, every)) = throttles.iter().find(|(v, _)| v == vendor) {
            faults.throttle_every = Some(*every);
        }
        if args.retry_after.is_some() {
            faults.retry_after_secs = args.retry_after;
        }
        if let Some((_, latency)) = latencies.iter().rev().find(|(v, _)| v == vendor) {
            faults.latency = Some(*latency);
        }
        faults
    };
    let vendors = ferry_sandbox::emulators()
        .into_iter()
        .filter(|e| args.only.is_empty() || args.only.iter().any(|o| o == e.vendor))
        .map(|spec| VendorSetup {
            spec,
            addr: SocketAddr::from((
                [127, 0, 0, 1],
                if args.any_port { 0 } else { spec.default_port },
            )),
            faults: faults_of(spec.vendor),
            limits: limits_of(spec.vendor),
            seeded: !args.empty.iter().any(|e| e == spec.vendor),
        })
        .collect();
    let config = SandboxConfig {
        records: args.records,
        seed: args.seed,
        mess: if args.clean {
            Mess::none()
        } else {
            Mess::default()
        },
        vendors,
    };
    let sandbox = ferry_sandbox::start(config).await.map_err(|e| {
        CliError::failed(anyhow::anyhow!(
            "cannot listen on the emulators' loopback ports: {e} (try --any-port)"
        ))
    })?;
    // The banner is written in one piece, and a reader that went away (`ferry sandbox | head`)
    // is no reason to stop serving.
    let mut out = String::new();
    for e in &sandbox.emulators {
        let seeded = match e.seeded {
            Some(s) => {
                let mut text = format!(
                    "seeded: {}, {}",
                    count(s.companies as u64, "company", "companies"),
                    count(s.contacts as u64, "contact", "contacts")
                );
                // Deals and notes once the emulator holds them.
                for (n, one, many) in [(s.deals, "deal", "deals"), (s.notes, "note", "notes")] {
                    if n > 0 {
                        text.push_str(&format!(", {}", count(n as u64, one, many)));
                    }
                }
                text
            }
            None => "empty".to_owned(),
        };
        let _ = writeln!(
            out,
            "emulator {:<11} {}  ({seeded})",
            e.spec.vendor, e.running.base_url
        );
        match limits_of(e.spec.vendor) {
            Limits::Documented => {}
            Limits::Unlimited => {
                let _ = writeln!(out, "         limits: none");
            }
            Limits::Burst(n) => {
                let _ = writeln!(
                    out,
                    "         limits: {n} {}",
                    e.spec.limit_unit.unwrap_or("requests")
                );
            }
            Limits::Daily(n) => {
                let _ = writeln!(out, "         limits: a daily quota of {n}");
            }
        }
        let faults = faults_of(e.spec.vendor);
        if faults.any() {
            let _ = writeln!(out, "         faults: {}", describe_faults(&faults));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Sandbox-only credentials, for the configs' ${{...}} references:"
    );
    for e in &sandbox.emulators {
        for (var, value) in e.spec.credentials {
            let _ = writeln!(out, "  export {var}={value}");
        }
    }
    let blocks: Vec<(&str, Vec<(&str, String)>)> = sandbox
        .emulators
        .iter()
        .map(|e| (e.spec.vendor, e.connector_settings()))
        .collect();
    // examples/sandbox.toml names the fixed ports of HubSpot and Salesforce: only then does
    // it point at these emulators.
    let example = !args.any_port
        && ["hubspot", "salesforce"]
            .iter()
            .all(|v| sandbox.get(v).is_some());
    out.push_str(&settings_text(&blocks, example));
    let _ = writeln!(
        out,
        "Commands on stdin, one a line: `{TOUCH_USAGE}` (every Nth record of OBJECT, changed \
         now) and `{ADVANCE_USAGE}` (every emulator's clock)."
    );
    let _ = writeln!(
        out,
        "Ready. Ctrl-C stops the emulators (their data lives only in memory)."
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        tracing::debug!(error = %e, "the start-up banner could not be printed");
    }
    drop(stdout);
    let served: Vec<Served> = sandbox
        .emulators
        .iter()
        .map(|e| (e.spec.vendor, Arc::clone(&e.emulator)))
        .collect();
    // A blocking read, on a thread of its own: the process ends at Ctrl-C or SIGTERM whether
    // or not stdin is still open.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let answer = command(&served, &line);
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{answer}").and_then(|()| stdout.flush());
        }
    });
    wait_for_shutdown().await;
    Ok(0)
}

/// An emulator `ferry sandbox` serves, by vendor, for its stdin commands.
type Served = (&'static str, Arc<dyn VendorEmulator>);

const TOUCH_USAGE: &str = "touch VENDOR OBJECT N";
const ADVANCE_USAGE: &str = "advance SECONDS";

/// Runs one stdin command (`touch VENDOR OBJECT N`, `advance SECONDS`) and returns its answer
/// line: `touched …`, `advanced …`, or `error: …`. Sandbox-only hooks that change records and
/// move time as users and the clock would, so that `ferry sync` has changes to read.
fn command(served: &[Served], line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["touch", vendor, object, every] => {
            let Some((_, emulator)) = served.iter().find(|(v, _)| v == vendor) else {
                return format!("error: no `{vendor}` emulator is served");
            };
            if !["companies", "contacts", "deals", "notes"].contains(object) {
                return format!("error: `{object}`: expected companies, contacts, deals or notes");
            }
            match every.parse::<usize>() {
                Ok(n) if n > 0 => {
                    format!("touched {} {object} of {vendor}", emulator.touch(object, n))
                }
                _ => format!("error: `{every}`: expected every how many records, 1 or more"),
            }
        }
        ["advance", secs] => match secs.parse::<u64>() {
            Ok(secs) => {
                for (_, emulator) in served {
                    emulator.advance_clock(std::time::Duration::from_secs(secs));
                }
                format!("advanced the clocks {secs} s")
            }
            Err(_) => format!("error: `{secs}`: expected whole seconds"),
        },
        _ => format!("error: expected `{TOUCH_USAGE}` or `{ADVANCE_USAGE}`"),
    }
}

/// The banner's connector settings: one TOML table per emulator, each ready to paste into a
/// config as its `[source]` or `[sink]`, and the example config when it points at these ports.
fn settings_text(blocks: &[(&str, Vec<(&str, String)>)], example: bool) -> String {
    let mut out = String::from(
        "\nConnector settings: paste one table as the [source] and one as the [sink] of a config\n\
         (a table that reads [source] serves as [sink] too, renamed):\n",
    );
    for (i, (vendor, settings)) in blocks.iter().enumerate() {
        let header = if i == 0 { "source" } else { "sink" };
        let _ = writeln!(out, "\n[{header}]");
        let _ = writeln!(out, "connector = {}", toml::Value::from(*vendor));
        for (key, value) in settings {
            let _ = writeln!(out, "{key} = {}", toml::Value::from(value.as_str()));
        }
    }
    let _ = writeln!(out);
    if example {
        let _ = writeln!(
            out,
            "For example: ferry migrate --config examples/sandbox.toml (HubSpot to Salesforce)"
        );
    } else {
        let _ = writeln!(
            out,
            "examples/sandbox.toml names the fixed ports (18081-18085), not these: write a config \
             with a [source] and a [sink] table from above"
        );
    }
    out
}

/// Splits a `VENDOR=VALUE` flag value.
fn vendor_flag<'a>(flag: &str, text: &'a str, value: &str) -> Result<(&'a str, &'a str), CliError> {
    text.split_once('=').ok_or_else(|| {
        CliError::config(anyhow::anyhow!("{flag} `{text}`: expected VENDOR={value}"))
    })
}

/// "request", "3 requests": how often a fault recurs.
fn every(n: u64) -> String {
    if n == 1 {
        "request".to_owned()
    } else {
        count(n, "request", "requests")
    }
}

/// A one-line account of a fault profile, for the start-up banner.
fn describe_faults(f: &Faults) -> String {
    let mut parts = Vec::new();
    if let Some(n) = f.throttle_every {
        parts.push(format!("429 every {}", every(n)));
    }
    if let Some(s) = f.storm {
        parts.push(format!(
            "429 storms of {} every {}",
            s.burst,
            every(s.every)
        ));
    }
    if let Some(secs) = f.retry_after_secs {
        parts.push(format!("Retry-After {secs}s"));
    }
    if let Some(n) = f.unavailable_every {
        parts.push(format!("503 every {}", every(n)));
    }
    if let Some(p) = f.server_errors {
        parts.push(format!("{p}% 5xx"));
    }
    if let Some(p) = f.resets {
        parts.push(format!("{p}% resets"));
    }
    if let Some(s) = f.slow {
        parts.push(format!(
            "{}% held {} ms (set timeout_secs below it)",
            s.percent,
            s.delay.as_millis()
        ));
    }
    if let Some(p) = f.truncated {
        parts.push(format!("{p}% truncated JSON"));
    }
    if let Some(p) = f.bad_utf8 {
        parts.push(format!("{p}% of email addresses not UTF-8"));
    }
    if let Some(p) = f.partial {
        parts.push(format!("{p}% of batch inputs fail transiently"));
    }
    if let Some(n) = f.shift {
        parts.push(format!("{n} created + {n} updated between pages"));
    }
    if let Some(latency) = f.latency {
        parts.push(format!("{} ms added to every request", latency.as_millis()));
    }
    if let Some(n) = f.expire_after {
        parts.push(format!("tokens expire every {}", every(n)));
    }
    if let Some(n) = f.revoke_after {
        parts.push(format!("every token revoked once one served {n} calls"));
    }
    parts.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        ["hubspot", "salesforce", "zoho"]
            .iter()
            .map(|v| {
                let spec = ferry_sandbox::emulator(v).expect("a known emulator");
                (
                    spec.vendor,
                    (spec.connector_settings)("http://127.0.0.1:40123"),
                )
            })
            .collect()
    }

    #[test]
    fn the_banner_settings_are_tables_a_config_can_take() {
        let text = settings_text(&blocks(), true);
        let tables: Vec<&str> = text
            .split("\n\n")
            .filter(|b| b.starts_with("[source]") || b.starts_with("[sink]"))
            .collect();
        assert_eq!(tables.len(), 3, "{text}");
        for table in tables {
            let parsed: toml::Table =
                toml::from_str(table).unwrap_or_else(|e| panic!("not valid TOML: {e}\n{table}"));
            let (_, settings) = parsed.iter().next().expect("one table");
            let connector = settings.get("connector").and_then(|c| c.as_str());
            assert!(connector.is_some(), "{table}");
            assert!(table.contains("http://127.0.0.1:40123"), "{table}");
        }
        assert!(text.contains("token = \"${HUBSPOT_TOKEN}\""), "{text}");
        assert!(text.contains("examples/sandbox.toml (HubSpot"), "{text}");
    }

    #[test]
    fn faults_every_request_are_not_plural() {
        let faults = Faults {
            throttle_every: Some(1),
            unavailable_every: Some(7),
            ..Faults::default()
        };
        let text = describe_faults(&faults);
        assert!(text.contains("429 every request"), "{text}");
        assert!(text.contains("503 every 7 requests"), "{text}");
    }

    #[test]
    fn stdin_commands_touch_records_and_move_the_clocks() {
        let data = ferry_sandbox::seed::generate(100, 7, &Mess::none());
        let served: Vec<Served> = ["hubspot", "salesforce"]
            .iter()
            .map(|v| {
                let spec = ferry_sandbox::emulator(v).expect("a known emulator");
                let emulator = (spec.build)(Faults::default(), Limits::Unlimited);
                emulator.seed(&data);
                (spec.vendor, emulator)
            })
            .collect();
        assert_eq!(
            command(&served, "touch salesforce contacts 10"),
            "touched 10 contacts of salesforce"
        );
        assert_eq!(
            command(&served, "touch  hubspot companies 7 "),
            "touched 3 companies of hubspot"
        );
        assert_eq!(
            command(&served, "advance 3600"),
            "advanced the clocks 3600 s"
        );
        for bad in [
            "touch zoho contacts 10",
            "touch hubspot owners 10",
            "touch hubspot contacts 0",
            "advance soon",
            "touch hubspot",
        ] {
            assert!(command(&served, bad).starts_with("error: "), "{bad}");
        }
    }

    #[test]
    fn other_ports_do_not_suggest_the_example_config() {
        let text = settings_text(&blocks(), false);
        assert!(!text.contains("For example: ferry migrate"), "{text}");
        assert!(text.contains("not these"), "{text}");
    }
}
