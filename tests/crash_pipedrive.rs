//! End-to-end: a `ferry migrate` from Pipedrive (its full reads in `update_time` windows read
//! side by side, `read_windows`) into Salesforce, killed (SIGKILL) mid-way through a windowed
//! read; the rerun resumes every window from the checkpoint and the sink ends with exactly the
//! source's records, verified.

mod common;

use std::time::Duration;

use common::{SyncPair, all_credentials, count, object, run_config};
use ferry_sandbox::pipedrive;
use ferry_sandbox::seed::{Mess, generate};

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_way_through_a_windowed_pipedrive_read_the_rerun_resumes_it_exactly() {
    // Pipedrive's documented 80 requests per 2 s: a read of pages of 100 takes long enough to
    // be killed mid-way.
    let account = pipedrive::Emulator::new(pipedrive::Options::default());
    account.seed(&generate(6_000, 5, &Mess::none()));
    let pair = SyncPair::start("pipedrive", account, "salesforce").await;
    let config = pair.config(&["companies", "contacts"]);
    let checkpoint = pair.dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&config).expect("config");
    // No deals: the stage table the config ends with would do nothing, which is refused.
    let stages = text.find("[mapping.deal_stages]").expect("a stage table");
    let text = text[..stages]
        .replacen(
            "[migration]\n",
            &format!(
                "[migration]\ncheckpoint = {:?}\n",
                checkpoint.display().to_string()
            ),
            1,
        )
        .replacen(
            "connector = \"pipedrive\"\n",
            "connector = \"pipedrive\"\npage_size = 100\nrate_limit_per_2s = 80\nread_windows = 4\n",
            1,
        );
    std::fs::write(&config, text).expect("config");

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["migrate", "--config", &config, "--report", "json", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in all_credentials() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ferry");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut windowed = None;
    while std::time::Instant::now() < deadline {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        // Contacts mid-way: a windowed cursor, its windows started (a Pipedrive cursor in it).
        let cursor = json["objects"]["contacts"]["resume_cursor"].as_str();
        if cursor.is_some_and(|c| c.starts_with("windows:") && c.contains("\"c\":\"")) {
            windowed = Some(text);
            break;
        }
        if child.try_wait().expect("poll ferry").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.start_kill(); // SIGKILL
    let out = child.wait_with_output().await.expect("wait for ferry");
    let status = out.status;
    let windowed = windowed.unwrap_or_else(|| {
        panic!(
            "no checkpoint mid-way through a windowed read; ferry said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        status.code().is_none(),
        "ferry finished before the kill: {status:?}"
    );
    assert!(!windowed.contains("\"complete\":true"), "{windowed}");

    let (code, report, stderr) = run_config("migrate", &config, &all_credentials()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    for name in ["companies", "contacts"] {
        assert_eq!(
            pair.sink_state.count(name),
            pair.account.count(name).expect("a Pipedrive object"),
            "{name}: every record once in Salesforce (its external id is unique)"
        );
    }
    // The rerun read only what the checkpoint had not settled (and, at most, the first page's
    // records again, met in windows not yet past them).
    let contacts = object(&report, "contacts");
    assert!(
        count(contacts, "read") < pair.account.count("contacts").expect("contacts") as u64,
        "{report:#}"
    );
}
