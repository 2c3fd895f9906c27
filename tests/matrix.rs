//! End-to-end: every vendor to every other vendor, through the real `ferry` binary and the
//! emulators (`ferry demo --from A --to B`), each pair verified 100%.
//!
//! Clean seeded data, so every record must arrive: companies, contacts, each contact's company
//! (the `company` reference is covered by the checksums), and opt-outs (likewise).

mod common;

use std::collections::BTreeSet;

use futures::StreamExt;

const CONTACTS: u64 = 150;

#[tokio::test(flavor = "multi_thread")]
async fn every_vendor_migrates_to_every_other_and_verifies() {
    // The vendors every pair is drawn from: the sandbox's emulator list. A vendor missing from
    // `ferry connectors` as source or sink fails the test (any CRM to any CRM is the promise),
    // and so does a connector without an emulator.
    let vendors: Vec<&'static str> = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .collect();
    let listing = common::ferry(&["connectors"], &[]).await;
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    for connector in listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(
            vendors.contains(&connector),
            "the connector {connector} has no emulator in ferry_sandbox::emulators()"
        );
    }
    for vendor in &vendors {
        let row = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(vendor));
        let row =
            row.unwrap_or_else(|| panic!("`ferry connectors` does not list {vendor}:\n{listing}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (cols[1], cols[2]),
            ("yes", "yes"),
            "{vendor} must be a source and a sink: {row}"
        );
    }

    let pairs: Vec<(&str, &str)> = vendors
        .iter()
        .flat_map(|a| {
            vendors
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (*a, *b))
        })
        .collect();
    assert_eq!(pairs.len(), vendors.len() * (vendors.len() - 1));
    assert!(vendors.len() >= 5, "five vendors at least: {vendors:?}");
    let mut failures = Vec::new();
    // Four pairs at a time, the next starting as soon as one ends (not in chunks that wait for
    // their slowest): each run is its own process with its own two emulators.
    let runs = futures::stream::iter(pairs.iter().map(|(from, to)| async move {
        let records = CONTACTS.to_string();
        let args = [
            "demo",
            "--from",
            from,
            "--to",
            to,
            "--clean",
            "--records",
            &records,
            "--report",
            "json",
            "-q",
        ];
        let out = common::ferry(&args, &[]).await;
        (from, to, out)
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    for (from, to, out) in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!(
                    "{from} -> {to}: exit {:?}, no report; stderr:\n{stderr}",
                    out.status.code()
                ));
                continue;
            }
        };
        let mut problems = BTreeSet::new();
        if out.status.code() != Some(0) || report["outcome"] != "verified" {
            problems.insert(format!(
                "exit {:?}, outcome {}",
                out.status.code(),
                report["outcome"]
            ));
        }
        for object in ["companies", "contacts"] {
            let o = common::object(&report, object);
            let read = common::count(o, "read");
            let expected = if object == "contacts" {
                CONTACTS
            } else {
                CONTACTS / 5
            };
            // The sink's own count of records with a source id: no duplicate, no stray.
            if read != expected
                || common::count(o, "verified") != read
                || o["digests_match"] != true
                || o["in_sink"] != read
                || o["extra_in_sink"] != 0
            {
                problems.insert(format!(
                    "{object}: read {read} of {expected}, verified {}, digests match {}, \
                         in sink {}, extra {}",
                    o["verified"], o["digests_match"], o["in_sink"], o["extra_in_sink"]
                ));
            }
            for required in ["company", "email_opt_out"] {
                let not_carried = o["fields_not_carried"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if object == "contacts" && not_carried.iter().any(|f| f == required) {
                    problems.insert(format!("contacts: `{required}` was not carried"));
                }
            }
        }
        if !problems.is_empty() {
            let first: Vec<String> = report["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .take(5)
                .map(|f| f.to_string())
                .collect();
            failures.push(format!(
                "{from} -> {to}: {problems:?}; first failures: {first:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pairs failed:\n{}",
        failures.len(),
        pairs.len(),
        failures.join("\n")
    );
}
