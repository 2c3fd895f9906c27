//! Sessions that die again and again: the real `ferry migrate` (a child process) with a
//! Salesforce, Zoho or Dynamics emulator whose `revoke` fault kills every access token after a
//! few API calls, as the sink and as the source. The sink writes small batches with
//! `batches_in_flight = 8`, so several requests hold a dead token at once, renew it together,
//! and a renewed token can die again before a request used it. Every run must end exact: exit
//! 0, every record read verified, the sink holding each once, and the token renewed many times
//! (the 401s the emulator answered are counted from ferry's debug log of the token cache).

mod common;

use std::fmt::Write as _;

use common::ferry;
use std::sync::Arc;

use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::Mess;
use ferry_sandbox::{Limits, Running, VendorEmulator};

const CONTACTS: usize = 120;

/// A new emulator of `vendor` with `faults`, through the sandbox's registry.
fn emulator(vendor: &str, faults: Faults) -> Arc<dyn VendorEmulator> {
    let spec = ferry_sandbox::emulator(vendor).expect("an emulator of every vendor");
    (spec.build)(faults, Limits::Documented)
}

/// Serves `emulator` on a free loopback port.
async fn serve(emulator: &dyn VendorEmulator) -> Running {
    let any = "127.0.0.1:0".parse().expect("loopback address");
    ferry_sandbox::serve("emulator", emulator.router(), any)
        .await
        .expect("serve the emulator")
}

/// The `[source]` or `[sink]` table for `vendor` at `base_url`: small pages and batches.
fn table(role: &str, vendor: &str, base_url: &str) -> String {
    let spec = ferry_sandbox::emulator(vendor).expect("an emulator of every vendor");
    let mut out = format!("[{role}]\nconnector = \"{vendor}\"\n");
    let sizes: &[(&str, u64)] = if role == "source" {
        // Salesforce's query pages hold 200 records at least.
        if vendor == "salesforce" {
            &[("query_batch_size", 200)]
        } else {
            &[("page_size", 20)]
        }
    } else {
        &[("batch_size", 5), ("read_back_size", 5)]
    };
    for (key, value) in (spec.connector_settings)(base_url)
        .iter()
        .filter(|(k, _)| !sizes.iter().any(|(s, _)| s == k))
    {
        match value.parse::<u64>() {
            Ok(n) => writeln!(out, "{key} = {n}"),
            Err(_) => writeln!(out, "{key} = \"{value}\""),
        }
        .expect("write to a String");
    }
    for (key, value) in sizes {
        let _ = writeln!(out, "{key} = {value}");
    }
    let _ = writeln!(out, "timeout_secs = 10\nmax_retries = 10");
    out
}

fn credentials() -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = ferry_sandbox::emulators()
        .iter()
        .flat_map(|e| e.credentials.iter())
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    // The token cache logs each refused token at debug level: the count shows the fault bit.
    env.push(("FERRY_LOG", "warn,ferry_core::oauth=debug".to_owned()));
    env
}

/// Migrates from `from` to `to` with `faults` on the OAuth side (`revoked` names it), and
/// answers everything that went wrong.
async fn run(from: &str, to: &str, revoked: &str, faults: &str) -> Result<(), String> {
    let name = format!("{from} to {to}, {faults} on {revoked}");
    let parse = |vendor: &str| {
        if vendor == revoked {
            Faults::parse(faults).expect("a fault profile")
        } else {
            Faults::default()
        }
    };
    let data = ferry_sandbox::seed::generate(CONTACTS, 7, &Mess::none());
    let source = emulator(from, parse(from));
    let sink = emulator(to, parse(to));
    source.seed(&data);
    // What the source holds, as its own count says (a vendor may refuse a seeded record).
    let seeded = ["companies", "contacts"].map(|object| source.count(object) as u64);
    let (source_served, sink_served) = (serve(&*source).await, serve(&*sink).await);
    let dir = std::env::temp_dir().join(format!(
        "ferry-oauth-faults-{}-{from}-{to}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("ferry.toml");
    let spec = |v| ferry_sandbox::emulator(v).expect("an emulator of every vendor");
    let text = format!(
        "version = 1\n\n{}\n{}\n[migration]\nobjects = [\"companies\", \"contacts\"]\n\
         batches_in_flight = 8\n{}",
        table("source", from, &source_served.base_url),
        table("sink", to, &sink_served.base_url),
        common::industry_table(&spec(from), &spec(to)),
    );
    std::fs::write(&config, text).expect("write config");
    let config_arg = config.to_string_lossy().into_owned();
    let out = ferry(
        &["migrate", "--config", &config_arg, "--report", "json", "-q"],
        &credentials(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("DEBUG")).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{name}: no JSON report ({e}); stderr:\n{tail}"))?;
    let mut problems = String::new();
    let mut fail = |what: String| {
        let _ = writeln!(problems, "  - {what}");
    };
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        fail(format!("exit code {code}; stderr:\n{tail}"));
    }
    if report["outcome"] != "verified" {
        fail(format!("outcome {}", report["outcome"]));
    }
    if report["failures"].as_array().is_some_and(|f| !f.is_empty()) {
        fail(format!("failures: {}", report["failures"]));
    }
    for (k, object) in ["companies", "contacts"].into_iter().enumerate() {
        let Some(o) = report["objects"]
            .as_array()
            .and_then(|objects| objects.iter().find(|o| o["object"] == object))
        else {
            fail(format!("{object}: not in the report"));
            continue;
        };
        let (read, verified) = (num(&o["read"]), num(&o["verified"]));
        if read != seeded[k] || verified != read {
            fail(format!(
                "{object}: {read} read and {verified} verified of {} seeded",
                seeded[k]
            ));
        }
        if o["digests_match"] != true {
            fail(format!("{object}: digests differ"));
        }
        let in_sink = sink.count(object) as u64;
        if in_sink != seeded[k] {
            fail(format!(
                "{object}: the sink holds {in_sink} of {} seeded",
                seeded[k]
            ));
        }
    }
    let refused = stderr
        .lines()
        .filter(|l| l.contains("token refused"))
        .count();
    if refused < 3 {
        fail(format!(
            "only {refused} refused tokens logged: the revoke fault did not bite"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}:\n{problems}"))
    }
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_default()
}

/// Runs the cases concurrently and reports every failing one.
async fn all(cases: &[(&str, &str, &str, &str)]) {
    let results = futures::future::join_all(
        cases
            .iter()
            .map(|(from, to, revoked, faults)| run(from, to, revoked, faults)),
    )
    .await;
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_sinks_end_exact_when_tokens_are_revoked_every_few_calls() {
    all(&[
        ("hubspot", "salesforce", "salesforce", "revoke:3"),
        ("hubspot", "zoho", "zoho", "revoke:3"),
        ("hubspot", "dynamics", "dynamics", "revoke:3"),
        // The run: Dynamics to Zoho, where requests also wait out 429s and 5xx (with
        // backoff) while the token they hold is revoked.
        (
            "dynamics",
            "zoho",
            "zoho",
            "revoke:4,storm:2/15,5xx:10,seed:21",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_sources_end_exact_when_tokens_are_revoked_every_few_calls() {
    // The sinks here are clean; the source's reads (pages, counts, and the sink's read-backs
    // do not touch it) race only with each other, so the fault revokes at every call served.
    all(&[
        ("salesforce", "zoho", "salesforce", "revoke:1"),
        ("zoho", "dynamics", "zoho", "revoke:1"),
        ("dynamics", "salesforce", "dynamics", "revoke:1"),
    ])
    .await;
}
