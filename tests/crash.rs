//! End-to-end: ferry killed at random points (SIGKILL) and stopped by SIGTERM, then run again.
//! Whatever happens, the sink ends with exactly the source's records, no duplicates, all
//! verified, and reruns resume from the checkpoint rather than starting over.

mod common;

use std::time::Duration;

use common::*;
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::{hubspot, pipedrive};
use futures::StreamExt;

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

/// Settled records in the checkpoint file (all objects), and whether it is complete; `None`
/// when there is none.
fn settled(path: &std::path::Path) -> Option<(u64, bool)> {
    settled_in(&std::fs::read_to_string(path).ok()?)
}

/// [`settled`] of a checkpoint's text.
fn settled_in(text: &str) -> Option<(u64, bool)> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let objects = json["objects"].as_object()?;
    let total = objects.values().filter_map(|o| o["settled"].as_u64()).sum();
    Some((total, json["complete"].as_bool().unwrap_or(false)))
}

fn spawn_migrate(config: &str) -> tokio::process::Child {
    spawn_ferry("migrate", config, &all_credentials(), Streams::Piped)
}

/// Runs `ferry migrate` with `config` and kills it (SIGKILL) as soon as the checkpoint file's
/// text satisfies `mid_way`; that text. Fails if ferry ended first or never got there.
async fn killed_mid_way(
    config: &str,
    checkpoint: &std::path::Path,
    mid_way: impl Fn(&str) -> bool,
) -> String {
    let mut child = spawn_migrate(config);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        let text = std::fs::read_to_string(checkpoint).unwrap_or_default();
        if mid_way(&text) {
            seen = Some(text);
            break;
        }
        if child.try_wait().expect("poll ferry").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.start_kill(); // SIGKILL
    let out = child.wait_with_output().await.expect("wait for ferry");
    let seen = seen.unwrap_or_else(|| {
        panic!(
            "no checkpoint mid-way; ferry said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.code().is_none(),
        "ferry finished before the kill: {:?}",
        out.status
    );
    seen
}

/// Kill points per cycle, and cycles: each cycle starts from an empty sink, is killed up to
/// `KILLS_PER_CYCLE` times (each run resuming from the last one's checkpoint), then runs to the
/// end, and the sink is checked against the source exactly before the next cycle.
const CYCLES: usize = 6;
const KILLS_PER_CYCLE: usize = 5;

/// Cycles run at once: each has its own emulators and ferry processes, and most of a cycle is
/// spent waiting (kill delays, the source's pacing), so two overlap without slowing each other
/// much.
const CONCURRENT_CYCLES: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_random_points_then_resumed_the_sink_matches_the_source_every_time() {
    // A fixed pseudo-random series of kill delays (xorshift): reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let delays: Vec<Vec<Duration>> = (0..CYCLES)
        .map(|_| {
            (0..KILLS_PER_CYCLE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    Duration::from_millis(60 + x % 1_200)
                })
                .collect()
        })
        .collect();
    let cycles: Vec<(usize, usize)> = futures::stream::iter(
        delays
            .into_iter()
            .enumerate()
            .map(|(cycle, delays)| kill_cycle(cycle, delays)),
    )
    .buffer_unordered(CONCURRENT_CYCLES)
    .collect()
    .await;
    // Kills that hit a running ferry (a later one may find it finished), and runs that resumed
    // from a saved checkpoint.
    let landed: usize = cycles.iter().map(|c| c.0).sum();
    let resumed_points: usize = cycles.iter().map(|c| c.1).sum();
    assert!(
        landed >= 20,
        "only {landed} kills hit a running ferry; at least 20 are wanted"
    );
    assert!(
        resumed_points >= 3,
        "too few runs resumed from a saved checkpoint: {resumed_points}"
    );
}

/// One cycle: a new sandbox, ferry killed once its first progress is saved, then after each
/// of `delays` (each run resuming from the last one's checkpoint), then a run to the end, the sink checked against the source exactly,
/// and `ferry verify`. Returns the kills that hit a running ferry and the runs that resumed
/// from a saved checkpoint.
async fn kill_cycle(cycle: usize, delays: Vec<Duration>) -> (usize, usize) {
    let mut landed = 0;
    let mut resumed_points = 0;
    let sandbox = start(Setup::clean(1_500)).await;
    let checkpoint = checkpointed(&sandbox);
    let config = sandbox.config.to_string_lossy().into_owned();
    // First a kill as soon as progress is saved, so that the random kills after it resume from
    // a checkpoint: the first save comes about a second into a debug run, and the random
    // delays (60 ms to 1.26 s) alone fell before it in every cycle of some runs.
    killed_mid_way(&config, &checkpoint, |text| {
        settled_in(text).is_some_and(|(n, complete)| n > 0 && !complete)
    })
    .await;
    landed += 1;
    let mut last = settled(&checkpoint);
    for (kill, delay) in delays.into_iter().enumerate() {
        let mut child = spawn_migrate(&config);
        tokio::time::sleep(delay).await;
        let _ = child.start_kill(); // SIGKILL: no chance to clean up
        let status = child.wait().await.expect("wait for ferry");
        if status.code().is_none() {
            landed += 1;
        }
        let now = settled(&checkpoint);
        if let (Some((before, false)), Some((after, _))) = (last, now) {
            assert!(
                after >= before,
                "cycle {cycle}, kill {kill}: progress went backwards ({before} -> {after})"
            );
            if before > 0 {
                resumed_points += 1;
            }
        }
        eprintln!("cycle {cycle}, kill {kill} after {delay:?}: {status:?}, checkpoint {now:?}");
        last = now;
    }

    // The run that is allowed to finish, then the sink against the source, exactly.
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "cycle {cycle}: stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "cycle {cycle}");
    assert_sink_matches_source(&sandbox, cycle);

    // And the independent check: re-read both sides, and count the sink's records.
    let (code, verified, stderr) = run_json("verify", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "cycle {cycle}: {stderr}\n{verified:#}");
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
            "cycle {cycle}: {name}"
        );
    }
    (landed, resumed_points)
}

/// HubSpot's partitioned full reads (`read_partitions`, the default; set here all the same):
/// the list beside search lanes, each side's next request asked as soon as its last answered.
/// Killed as soon as the checkpoint holds such a read's cursor (the list's
/// position and every lane's), the rerun resumes each side where it stood and the sink ends
/// exact.
#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_way_through_a_partitioned_hubspot_read_the_rerun_resumes_it_exactly() {
    let sandbox = start(Setup::clean(6_000)).await;
    let checkpoint = checkpointed(&sandbox);
    let text = std::fs::read_to_string(&sandbox.config).expect("config");
    let token = "token = \"${HUBSPOT_TOKEN}\"\n";
    assert!(text.contains(token), "{text}");
    let text = text.replacen(token, &format!("{token}read_partitions = true\n"), 1);
    std::fs::write(&sandbox.config, text).expect("config");
    let config = sandbox.config.to_string_lossy().into_owned();
    let split = killed_mid_way(&config, &checkpoint, |text| text.contains("\"split:")).await;
    let (settled_before, complete) = settled(&checkpoint).expect("checkpoint");
    assert!(settled_before > 0 && !complete, "{split}");

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    assert_sink_matches_source(&sandbox, 0);
    // The rerun read only what the checkpoint had not settled.
    let contacts = object(&report, "contacts");
    let companies = object(&report, "companies");
    assert!(
        count(contacts, "read") + count(companies, "read")
            < (sandbox.seeded.contacts.len() + sandbox.seeded.companies.len()) as u64,
        "{report:#}"
    );
}

/// Every seeded company and contact is in the Salesforce emulator exactly once under its
/// source id (the external id is unique there), and nothing else is.
fn assert_sink_matches_source(sandbox: &Sandbox, cycle: usize) {
    let seeded = [
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
    ];
    for (sobject, first_id, n) in seeded {
        assert_eq!(
            sandbox.salesforce_state.count(sobject),
            n,
            "cycle {cycle}: {sobject} count (duplicates or missing records)"
        );
        let missing: Vec<u64> = (first_id..first_id + n as u64)
            .filter(|id| {
                sandbox
                    .salesforce_state
                    .record_by_external_id(sobject, &id.to_string())
                    .is_none()
            })
            .collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {sobject} missing for source ids {missing:?}"
        );
    }
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

/// A `ferry migrate` from Pipedrive (its full reads in `update_time` windows read side by side,
/// `read_windows`) into Salesforce, killed mid-way through a windowed read: the rerun resumes
/// every window from the checkpoint and the sink ends with exactly the source's records.
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

    // Contacts mid-way: a windowed cursor, its windows started (a Pipedrive cursor in it).
    let windowed = killed_mid_way(&config, &checkpoint, |text| {
        let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        json["objects"]["contacts"]["resume_cursor"]
            .as_str()
            .is_some_and(|c| c.starts_with("windows:") && c.contains("\"c\":\""))
    })
    .await;
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
