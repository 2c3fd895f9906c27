//! End-to-end: the daily request quota. `ferry plan` says when a migration would need more of
//! a vendor's daily quota than `[migration] daily_quota_share` allows, and its estimate is close
//! to what a migration spends; `ferry migrate` stops cleanly at that share (exit 4, the report
//! says why) and the same command resumes once the quota allows, ending with the sink exact.
//!
//! HubSpot → Salesforce, with Salesforce's allocation (100,000 a day in the emulator) mostly
//! spent by "other integrations" (`set_api_usage`) so that little is left, and sink batches of
//! 10 so that the run needs over a hundred calls.

mod common;

use common::*;

/// Contacts seeded (and a fifth as many companies).
const CONTACTS: usize = 1_000;

/// Records per sObject Collections call: small, so the run spends enough calls to stop in.
const SINK_BATCH: usize = 10;

/// The emulator's daily API allocation (`salesforce::Options::default`).
const ALLOCATION: u64 = 100_000;

/// Writes the config: HubSpot to Salesforce in batches of [`SINK_BATCH`], a checkpoint, and
/// `share` as `daily_quota_share` (none: the default).
fn configure(sandbox: &Sandbox, share: Option<f64>) -> std::path::PathBuf {
    configure_with(sandbox, share, "")
}

/// [`configure`] with `sync` appended (a `[sync]` table, or nothing).
fn configure_with(sandbox: &Sandbox, share: Option<f64>, sync: &str) -> std::path::PathBuf {
    let checkpoint = sandbox.config.with_file_name("checkpoint.json");
    let share = share
        .map(|s| format!("daily_quota_share = {s}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{hubspot}"
token = "${{HUBSPOT_TOKEN}}"

[sink]
connector = "salesforce"
login_url = "{salesforce}"
client_id = "${{SF_CLIENT_ID}}"
client_secret = "${{SF_CLIENT_SECRET}}"
batch_size = {SINK_BATCH}

[migration]
objects = ["companies", "contacts"]
checkpoint = {checkpoint:?}
{share}
{sync}
{industries}"#,
        hubspot = sandbox.hubspot.base_url,
        salesforce = sandbox.salesforce.base_url,
        checkpoint = checkpoint.display().to_string(),
        industries = industry_table(
            &ferry_sandbox::hubspot::SPEC,
            &ferry_sandbox::salesforce::SPEC
        ),
    );
    std::fs::write(&sandbox.config, text).expect("write config");
    checkpoint
}

/// Runs `ferry plan --first-page-only` and returns its exit code and stdout.
async fn plan(sandbox: &Sandbox) -> (i32, String) {
    let config = sandbox.config.to_string_lossy().into_owned();
    let out = ferry(
        &["plan", "--config", &config, "--first-page-only", "-q"],
        &sandbox_env(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "plan died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

/// Every seeded record verified in the sink, and the sink holding exactly those.
async fn assert_sink_exact(sandbox: &Sandbox) {
    let (code, verified, stderr) = run_json("verify", sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "verify: {stderr}\n{verified:#}");
    for (name, n) in [
        ("companies", sandbox.seeded.companies.len()),
        ("contacts", sandbox.seeded.contacts.len()),
    ] {
        let o = object(&verified, name);
        assert_eq!(
            (
                count(o, "verified"),
                count(o, "in_sink"),
                count(o, "extra_in_sink")
            ),
            (n as u64, n as u64, 0),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_estimates_what_a_migration_spends() {
    let sandbox = start(Setup::clean(CONTACTS)).await;
    configure(&sandbox, None);
    let (code, plan) = plan(&sandbox).await;
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("sink salesforce: ") && plan.contains(" of 100000 left today"),
        "the plan shows Salesforce's allocation from Sforce-Limit-Info:\n{plan}"
    );
    assert!(
        plan.contains("source hubspot: ") && plan.contains(" of 250000 left today"),
        "and HubSpot's daily headers:\n{plan}"
    );
    let (source_estimate, sink_estimate) = (estimate(&plan, "source"), estimate(&plan, "sink"));

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let source = report["source_http"]["requests"].as_u64().unwrap_or(0);
    let sink = report["sink_http"]["requests"].as_u64().unwrap_or(0);
    eprintln!(
        "requests: source {source} (estimated {source_estimate}), sink {sink} (estimated {sink_estimate})"
    );
    // The estimate counts the reads and writes of the records; a run also spends a few calls
    // on its setup (a token, describes, users, checks), so it may be under by up to 20% plus 15
    // calls, and never over by more than 10%.
    for (role, actual, estimated) in [
        ("source", source, source_estimate),
        ("sink", sink, sink_estimate),
    ] {
        let actual = actual as f64;
        let estimated = estimated as f64;
        assert!(
            estimated >= actual * 0.8 - 15.0 && estimated <= actual * 1.1,
            "{role}: estimated {estimated} requests, the migration made {actual}"
        );
    }
    assert_eq!(
        report["sink_http"]["daily_quota"]["limit"], ALLOCATION,
        "the report shows the sink's quota: {report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_stops_at_its_share_of_the_daily_quota_and_resumes_exactly() {
    let sandbox = start(Setup::clean(CONTACTS)).await;
    let checkpoint = configure(&sandbox, Some(0.5));
    // Other integrations spent all but 200 of the day's calls.
    sandbox.salesforce_state.set_api_usage(ALLOCATION - 200);

    let (code, plan) = plan(&sandbox).await;
    assert_eq!(
        code, 2,
        "a run that would not finish within its share: exit 2\n{plan}"
    );
    assert!(
        plan.contains("MORE than the") && plan.contains("a migration would stop part-way"),
        "{plan}"
    );
    let needed = estimate(&plan, "sink");
    assert!(needed > 100, "the run needs more than its share: {needed}");

    let before = sandbox.salesforce_state.api_usage();
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(
        code, 4,
        "stopped at the share: exit 4\n{stderr}\n{report:#}"
    );
    assert_eq!(report["outcome"], "interrupted", "{report:#}");
    assert_eq!(report["stopped"], "daily_quota", "{report:#}");
    assert_eq!(report["error_kind"], "daily_quota", "{report:#}");
    let quota = &report["daily_quota"];
    assert_eq!(quota["role"], "sink");
    assert_eq!(quota["vendor"], "salesforce");
    assert_eq!(quota["limit"], ALLOCATION);
    assert_eq!(quota["share"], 0.5);
    eprintln!("stopped at the share: {quota}");
    let at_start = count(quota, "remaining_at_start");
    let used = count(quota, "used");
    assert!(
        at_start <= 200 && used >= at_start / 2,
        "stopped once half of what was left was used: {quota:#}"
    );
    let spent = sandbox.salesforce_state.api_usage() - before;
    assert!(
        sandbox.salesforce_state.api_usage() < ALLOCATION,
        "stopped before the vendor refused anything: {spent} calls spent"
    );
    assert!(
        report["failures"].as_array().is_none_or(|f| f.is_empty()),
        "nothing failed: {report:#}"
    );
    assert!(checkpoint.exists(), "progress saved");
    let written: u64 = ["companies", "contacts"]
        .iter()
        .map(|o| count(object(&report, o), "verified"))
        .sum();
    assert!(
        written > 0,
        "the run moved records before stopping: {report:#}"
    );
    assert!(
        written < (CONTACTS + CONTACTS / 5) as u64,
        "and stopped before the end: {report:#}"
    );

    // A new day: the same command resumes where it stopped and finishes.
    sandbox.salesforce_state.set_api_usage(0);
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    assert!(report.get("stopped").is_none(), "{report:#}");
    let resumed: u64 = ["companies", "contacts"]
        .iter()
        .map(|o| count(object(&report, o), "already_done"))
        .sum();
    assert!(
        resumed >= written.min(1),
        "resumed from the checkpoint, not from the start: {report:#}"
    );
    assert_sink_exact(&sandbox).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vendors_own_refusal_is_reported_as_the_daily_quota() {
    let sandbox = start(Setup::clean(CONTACTS)).await;
    configure(&sandbox, Some(1.0));
    let config = sandbox.config.to_string_lossy().into_owned();
    let child = common::spawn_ferry("migrate", &config, &sandbox_env(), common::Streams::Piped);
    // Once the run is writing, other integrations spend the rest of the day's allocation: the
    // next call is refused (403 REQUEST_LIMIT_EXCEEDED) before any answer said none was left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sandbox.salesforce_state.api_usage() < 30 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    sandbox.salesforce_state.set_api_usage(ALLOCATION);
    let out = child.wait_with_output().await.expect("wait for ferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), Some(4), "{stderr}\n{report:#}");
    assert_eq!(report["stopped"], "daily_quota", "{report:#}");
    assert_eq!(report["error_kind"], "daily_quota", "{report:#}");
    let quota = &report["daily_quota"];
    assert_eq!(
        (&quota["role"], &quota["vendor"]),
        (&"sink".into(), &"salesforce".into())
    );
    assert!(quota["share"].is_null(), "the vendor refused: {report:#}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("REQUEST_LIMIT_EXCEEDED")),
        "the vendor's own code is kept: {report:#}"
    );

    sandbox.salesforce_state.set_api_usage(0);
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_sink_exact(&sandbox).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sources_daily_quota_stops_the_run_too() {
    let sandbox = start(Setup::clean(CONTACTS)).await;
    configure(&sandbox, Some(1.0));
    // HubSpot's documented 250,000 a day in the emulator, all but a handful used by other apps;
    // a share of 1 lets the run use every one of them.
    sandbox.hubspot_state.set_daily_used(250_000 - 12);
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 4, "{stderr}\n{report:#}");
    assert_eq!(report["stopped"], "daily_quota", "{report:#}");
    let quota = &report["daily_quota"];
    assert_eq!(
        (&quota["role"], &quota["vendor"]),
        (&"source".into(), &"hubspot".into())
    );
    assert_eq!(quota["limit"], 250_000, "{report:#}");
    assert_eq!(quota["remaining"], 0, "{report:#}");

    sandbox.hubspot_state.set_daily_used(0);
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_sink_exact(&sandbox).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_stops_at_its_share_too_and_the_next_sync_finishes_exactly() {
    let sandbox = start(Setup::clean(CONTACTS)).await;
    let state = sandbox.config.with_file_name("sync-state.json");
    configure_with(
        &sandbox,
        Some(0.5),
        &format!("[sync]\nstate = {:?}\n", state.display().to_string()),
    );
    sandbox.salesforce_state.set_api_usage(ALLOCATION - 200);
    let (code, report, stderr) = run_json("sync", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 4, "{stderr}\n{report:#}");
    assert_eq!(report["stopped"], "daily_quota", "{report:#}");
    assert_eq!(report["daily_quota"]["vendor"], "salesforce", "{report:#}");

    sandbox.salesforce_state.set_api_usage(0);
    let (code, report, stderr) = run_json("sync", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_sink_exact(&sandbox).await;
}

#[tokio::test]
async fn sandbox_daily_limits_are_refused_where_there_is_none_to_set() {
    for (flag, said) in [
        ("zoho=daily:5", "has no daily quota to set"),
        ("salesforce=daily:lots", "expected `daily:N`"),
    ] {
        let out = ferry(&["sandbox", "--any-port", "--limit", flag], &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(said), "{flag}: {stderr}");
    }
}
