//! End-to-end: `ferry migrate` HubSpot → Salesforce with a low `bulk_threshold`, so companies
//! and contacts go through Bulk API 2.0 ingest and query jobs: verified exactly, in a few
//! calls a job; then killed (SIGKILL) in the middle of the jobs and run again, ending exact
//! with no duplicates. Jobs of 1,000 (`bulk_job_records`, 25,000 by default) make several jobs an
//! object out of 5,000 contacts.

mod common;

use std::time::Duration;

use common::*;
use ferry_sandbox::hubspot;

/// Records per ingest job (`bulk_job_records`): 5,000 contacts make five jobs.
const JOB: u64 = 1_000;

/// The sandbox's config with `bulk_threshold`, jobs of [`JOB`] (and `extra` in `[migration]`).
fn bulk_config(sandbox: &Sandbox, threshold: u64, extra: &str) -> String {
    write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        extra,
    );
    let text = std::fs::read_to_string(&sandbox.config).expect("read config");
    let secret = "client_secret = \"${SF_CLIENT_SECRET}\"\n";
    assert!(text.contains(secret));
    let text = text.replacen(
        secret,
        &format!("{secret}bulk_threshold = {threshold}\nbulk_job_records = {JOB}\n"),
        1,
    );
    std::fs::write(&sandbox.config, text).expect("write config");
    sandbox.config.to_string_lossy().into_owned()
}

/// The Bulk jobs of `kind` (`"ingest"` or `"query"`) the Salesforce emulator holds on
/// `sobject`, oldest first.
async fn jobs(sandbox: &Sandbox, kind: &str, sobject: &str) -> Vec<serde_json::Value> {
    let list = salesforce_call(
        &sandbox.salesforce.base_url,
        reqwest::Method::GET,
        &format!("/services/data/v62.0/jobs/{kind}"),
        &[],
        None,
    )
    .await;
    list["records"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["object"] == sobject)
        .cloned()
        .collect()
}

/// Every seeded company and contact is in the Salesforce emulator exactly once.
fn assert_sink_matches_source(sandbox: &Sandbox) {
    for (sobject, first_id, n) in [
        (
            "Account",
            hubspot::FIRST_COMPANY_ID,
            sandbox.seeded.companies.len(),
        ),
        (
            "Contact",
            hubspot::FIRST_CONTACT_ID,
            sandbox.seeded.contacts.len(),
        ),
    ] {
        assert_eq!(sandbox.salesforce_state.count(sobject), n, "{sobject}");
        let missing = (first_id..first_id + n as u64)
            .filter(|id| {
                sandbox
                    .salesforce_state
                    .record_by_external_id(sobject, &id.to_string())
                    .is_none()
            })
            .count();
        assert_eq!(missing, 0, "{sobject} missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_contacts_go_through_several_bulk_jobs_verified() {
    let sandbox = start(Setup::clean(5_000)).await;
    let config = bulk_config(&sandbox, 1_000, "");
    let (code, report, stderr) = run_config("migrate", &config, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    for (name, sobject, n) in [
        ("companies", "Account", 1_000u64),
        ("contacts", "Contact", 5_000),
    ] {
        let o = object(&report, name);
        assert_eq!(
            (count(o, "written"), count(o, "verified")),
            (n, n),
            "{name}"
        );
        // One upsert job a batch of `JOB`, every row processed; read back by query jobs.
        let ingest = jobs(&sandbox, "ingest", sobject).await;
        let sizes: Vec<u64> = ingest
            .iter()
            .map(|j| j["numberRecordsProcessed"].as_u64().expect("processed"))
            .collect();
        assert_eq!(sizes, vec![JOB; (n / JOB) as usize], "{name}: ingest jobs");
        assert!(
            ingest
                .iter()
                .all(|j| j["operation"] == "upsert" && j["state"] == "JobComplete")
        );
        let queries = jobs(&sandbox, "query", sobject).await.len() as u64;
        assert!(queries >= n / JOB, "{name}: {queries} query jobs");
        // A job takes six calls (create, upload, close, two polls, the saved rows) and a query
        // job four (create, two polls, a page): a few calls a job, not one a record.
        let requests = count(&o["sink_http"], "requests");
        let calls = 6 * ingest.len() as u64 + 4 * queries;
        eprintln!(
            "{name}: {n} records, {} jobs, {queries} query jobs, {requests} sink requests",
            ingest.len()
        );
        assert!(
            (calls..=calls + 4).contains(&requests),
            "{name}: {requests} sink requests for {calls} job calls"
        );
    }
    assert_sink_matches_source(&sandbox);

    // A rerun writes every record again by its external id: updates, no duplicates. Its
    // progress lines, one a second, show the records a job holds unanswered: a job takes
    // seconds, and "written" alone would seem stuck through it.
    let args = [
        "migrate",
        "--config",
        &config,
        "--report",
        "json",
        "--progress-interval",
        "1",
    ];
    let out = ferry(&args, &sandbox_env()).await;
    let (code, stderr) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(code, Some(0), "stderr:\n{stderr}\n{report:#}");
    let held: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: contacts: read"))
        .filter(|l| l.contains(" in flight),") || l.contains(" being read back),"))
        .collect();
    assert!(
        !held.is_empty(),
        "a progress line shows a job's records in flight:\n{stderr}"
    );
    assert_eq!(report["outcome"], "verified");
    assert_eq!(count(object(&report, "contacts"), "updated"), 5_000);
    assert_eq!(jobs(&sandbox, "ingest", "Contact").await.len(), 10);
    assert_sink_matches_source(&sandbox);
}

/// `ferry plan` estimates the calls of the Bulk jobs an object above the threshold will go
/// through, close to what the migration then spends: not those of sObject Collections, which
/// at the batches of 10 set here would be ten times as many.
#[tokio::test(flavor = "multi_thread")]
async fn plan_estimates_the_bulk_calls_a_migration_spends() {
    let sandbox = start(Setup::clean(5_000)).await;
    let config = bulk_config(&sandbox, 1_000, "");
    let text = std::fs::read_to_string(&config).expect("read config");
    let text = text.replacen("bulk_threshold", "batch_size = 10\nbulk_threshold", 1);
    std::fs::write(&config, text).expect("write config");
    let out = ferry(
        &["plan", "--config", &config, "--first-page-only", "-q"],
        &sandbox_env(),
    )
    .await;
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{plan}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let estimated = estimate(&plan, "sink") as f64;

    let (code, report, stderr) = run_config("migrate", &config, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    let spent = count(&report["sink_http"], "requests") as f64;
    eprintln!("sink requests: {spent}, estimated {estimated}");
    // As `daily_quota.rs` allows: under by up to 20% plus the setup's 15 calls, over by 10%.
    assert!(
        estimated >= spent * 0.8 - 15.0 && estimated <= spent * 1.1,
        "estimated {estimated} sink requests, the migration made {spent}:\n{plan}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_in_the_middle_of_bulk_jobs_then_resumed_exact_without_duplicates() {
    let sandbox = start(Setup::clean(5_000)).await;
    let checkpoint = sandbox.config.with_file_name("checkpoint.json");
    let config = bulk_config(
        &sandbox,
        1_000,
        &format!("checkpoint = {:?}", checkpoint.display().to_string()),
    );
    let mut child = common::spawn_ferry(
        "migrate",
        &config,
        &sandbox_env(),
        common::Streams::Discarded,
    );
    // Killed once the first contacts job has written its rows, while others are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while sandbox.salesforce_state.count("Contact") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no contact written");
        assert!(child.try_wait().expect("wait").is_none(), "ferry ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait for ferry");
    assert!(status.code().is_none(), "killed, not finished: {status:?}");
    let written_before = sandbox.salesforce_state.count("Contact");
    assert!(written_before < 5_000, "{written_before}");
    let text = std::fs::read_to_string(&checkpoint).expect("a checkpoint");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("checkpoint JSON");
    assert_eq!(saved["complete"], false);

    let (code, report, stderr) = run_config("migrate", &config, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    assert_sink_matches_source(&sandbox);

    let (code, verified, stderr) = run_config("verify", &config, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{verified:#}");
    for (name, n) in [("companies", 1_000u64), ("contacts", 5_000)] {
        let o = object(&verified, name);
        assert_eq!(
            (
                count(o, "verified"),
                count(o, "in_sink"),
                count(o, "extra_in_sink")
            ),
            (n, n, 0),
            "{name}"
        );
    }
}
