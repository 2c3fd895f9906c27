//! End-to-end: ferry killed at random points (SIGKILL) and stopped by SIGTERM, then run again.
//! Whatever happens, the sink ends with exactly the source's records, no duplicates, all
//! verified, and reruns resume from the checkpoint rather than starting over.

mod common;

use std::time::Duration;

use common::*;

fn checkpointed(sandbox: &Sandbox) -> std::path::PathBuf {
    let path = sandbox.config.with_file_name("checkpoint.json");
    let hubspot = sandbox.hubspot.base_url.clone();
    let salesforce = sandbox.salesforce.base_url.clone();
    write_config(
        &sandbox.config,
        &hubspot,
        &salesforce,
        &format!("checkpoint = {:?}", path.display().to_string()),
    );
    path
}

/// Settled records per object in the checkpoint file, if there is one.
fn settled(path: &std::path::Path) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let objects = json["objects"].as_object()?;
    let total = objects.values().filter_map(|o| o["settled"].as_u64()).sum();
    Some((total, json["complete"].as_bool().unwrap_or(false)))
}

fn spawn_migrate(config: &str) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["migrate", "--config", config, "--report", "json", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in sandbox_env() {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn ferry")
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_random_points_then_resumed_the_sink_matches_the_source() {
    let sandbox = start(Setup::clean(3_000)).await;
    let checkpoint = checkpointed(&sandbox);
    let config = sandbox.config.to_string_lossy().into_owned();
    let (companies, contacts) = (
        sandbox.seeded.companies.len(),
        sandbox.seeded.contacts.len(),
    );

    // A fixed pseudo-random series of kill delays (xorshift), 80 ms to 1.6 s: reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut resumed_points = 0;
    let mut last = None;
    for kill in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(80 + x % 1_520);
        let mut child = spawn_migrate(&config);
        tokio::time::sleep(delay).await;
        let _ = child.start_kill(); // SIGKILL: no chance to clean up
        let status = child.wait().await.expect("wait for ferry");
        let now = settled(&checkpoint);
        if let (Some((before, false)), Some((after, _))) = (last, now) {
            assert!(
                after >= before,
                "kill {kill}: progress went backwards ({before} -> {after})"
            );
            if before > 0 {
                resumed_points += 1;
            }
        }
        eprintln!("kill {kill} after {delay:?}: {status:?}, checkpoint {now:?}");
        last = now;
    }
    assert!(
        resumed_points >= 3,
        "too few runs resumed from a saved checkpoint: {resumed_points}"
    );

    // The run that is allowed to finish.
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    assert_eq!(
        sandbox.salesforce_state.count("Account"),
        companies,
        "no duplicate or missing companies"
    );
    assert_eq!(
        sandbox.salesforce_state.count("Contact"),
        contacts,
        "no duplicate or missing contacts"
    );

    // And the independent check: re-read both sides.
    let (code, verified, stderr) = run_json("verify", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{verified:#}");
    assert_eq!(
        count(object(&verified, "contacts"), "verified"),
        contacts as u64
    );
    assert_eq!(
        count(object(&verified, "companies"), "verified"),
        companies as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_exit_4_and_the_rerun_resumes() {
    let sandbox = start(Setup::clean(2_500)).await;
    let checkpoint = checkpointed(&sandbox);
    let config = sandbox.config.to_string_lossy().into_owned();

    let child = spawn_migrate(&config);
    let pid = child.id().expect("pid");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stops promptly")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "interrupted runs exit 4; stderr:\n{stderr}"
    );
    assert!(stderr.contains("stopping"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a report even when stopped");
    assert_eq!(report["outcome"], "interrupted");
    let written: u64 = ["companies", "contacts"]
        .iter()
        .filter_map(|o| {
            report["objects"]
                .as_array()?
                .iter()
                .find(|x| x["object"] == *o)
        })
        .map(|o| count(o, "written"))
        .sum();
    let verified: u64 = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| count(o, "verified"))
        .sum();
    assert_eq!(
        written, verified,
        "batches in flight were finished and verified, not abandoned"
    );
    let (saved, complete) = settled(&checkpoint).expect("a checkpoint was saved");
    assert!(saved > 0 && !complete);

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}");
    let already: u64 = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| count(o, "already_done"))
        .sum();
    assert_eq!(
        already, saved,
        "the rerun resumed where the stopped run left off"
    );
    assert_eq!(
        sandbox.salesforce_state.count("Contact"),
        sandbox.seeded.contacts.len()
    );
}
