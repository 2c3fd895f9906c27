//! `ferry plan`'s whole-source check, end to end: it predicts exactly what a migration's own
//! checks refuse and flag, by code and count, lists duplicate clusters, writes nothing, and shows
//! no customer value.

mod common;

use std::collections::BTreeMap;

use common::{Setup, count, ferry, object, run_json, sandbox_env, start};
use ferry_sandbox::seed::Mess;

/// `  refused CODE: N (…)` and `  flagged CODE: N (…)` lines of one object's block, by code.
fn findings(stdout: &str, object: &str, label: &str) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
    let mut inside = false;
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            inside = line.starts_with(&format!("{object}: "));
            continue;
        }
        let Some(rest) = line.trim().strip_prefix(&format!("{label} ")) else {
            continue;
        };
        if !inside {
            continue;
        }
        let (code, tail) = rest.split_once(": ").expect("code: count");
        let n: u64 = tail
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        found.insert(code.to_owned(), n);
    }
    found
}

/// The migration's findings of `stage`s, by code.
fn by_code(list: &serde_json::Value, object: &str, stages: &[&str]) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
    for f in list.as_array().expect("a list") {
        if f["object"] == object && stages.iter().any(|s| f["stage"] == *s) {
            *found
                .entry(f["code"].as_str().expect("code").to_owned())
                .or_default() += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_predicts_what_a_migration_refuses_and_flags_and_writes_nothing() {
    let mess = Mess {
        missing_last_name: 0.03,
        malformed_email: 0.02,
        duplicate_email: 0.02,
        overlong_title: 0.01,
        ..Mess::default()
    };
    let sandbox = start(Setup {
        mess,
        ..Setup::clean(600)
    })
    .await;
    // `full` matching lists the clusters (by email only, the report counts the duplicates).
    common::write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        "duplicate_matching = \"full\"",
    );
    // The list alone: the duplicate finder's verdicts depend on the order records arrive in
    // (a near-identical name is matched against those seen before it), and a partitioned read
    // (HubSpot's default) delivers its lanes in an order that varies from run to run, so plan
    // and migrate could each be right and still differ by a record.
    let text = std::fs::read_to_string(&sandbox.config).expect("config");
    let token = "token = \"${HUBSPOT_TOKEN}\"\n";
    assert!(text.contains(token), "{text}");
    let text = text.replacen(token, &format!("{token}read_partitions = false\n"), 1);
    std::fs::write(&sandbox.config, text).expect("config");
    let config = sandbox.config.to_string_lossy().into_owned();
    let out = ferry(&["plan", "--config", &config, "-q"], &sandbox_env()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("whole source checked"), "{stdout}");
    assert!(
        stdout.contains("contacts: 600 read;"),
        "every contact is checked, not a first page:\n{stdout}"
    );

    // Nothing was written by the plan.
    assert_eq!(sandbox.salesforce_state.count("Contact"), 0);
    assert_eq!(sandbox.salesforce_state.count("Account"), 0);

    // No customer value is shown: not an address, not a last name.
    for c in &sandbox.seeded.contacts {
        for value in [&c.email, &c.last_name].into_iter().flatten() {
            if value.len() > 6 {
                assert!(
                    !stdout.contains(value.as_str()),
                    "a customer value in the plan"
                );
            }
        }
    }

    let planned_refused = findings(&stdout, "contacts", "refused");
    let planned_flagged = findings(&stdout, "contacts", "flagged");
    assert!(
        planned_refused.contains_key("MISSING_REQUIRED")
            && planned_refused.contains_key("INVALID_EMAIL"),
        "the seeded defects are found:\n{stdout}"
    );
    assert!(planned_flagged.contains_key("DUPLICATE_EMAIL"), "{stdout}");
    let clusters_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("duplicate clusters:"))
        .unwrap_or_else(|| panic!("no duplicate clusters line:\n{stdout}"));

    // The migration refuses and flags exactly what the plan said, before writing.
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 3, "records refused → exit 3; stderr:\n{stderr}");
    let before_writing = ["read", "validate"];
    assert_eq!(
        by_code(&report["failures"], "contacts", &before_writing),
        planned_refused
    );
    assert_eq!(
        by_code(&report["warnings"], "contacts", &before_writing),
        planned_flagged
    );
    let contacts = object(&report, "contacts");
    assert!(
        clusters_line.trim_start().starts_with(&format!(
            "duplicate clusters: {} (",
            count(contacts, "duplicate_clusters_found")
        )),
        "{clusters_line}"
    );
    let written_or_refused_by_sink = count(contacts, "written")
        + by_code(&report["failures"], "contacts", &["write"])
            .values()
            .sum::<u64>();
    let contacts_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("contacts: ") && l.contains(" would be written, "))
        .unwrap_or_else(|| panic!("no contacts line:\n{stdout}"));
    assert!(
        contacts_line.contains(&format!(
            "; {written_or_refused_by_sink} would be written, {} refused",
            planned_refused.values().sum::<u64>()
        )),
        "plan's contact counts match the migration's: {contacts_line}\n{stdout}"
    );
}
