//! End-to-end: `ferry demo --from A --to B` exits 0 for every pair of vendors on the demo's
//! messy data, as the README promises, through the real `ferry` binary, moving companies,
//! contacts, deals and notes, every written record verified.
//!
//! The demo's default data (seed 42, the default mess) at fewer records than the default
//! 10,000, so that 20 runs in a debug build take seconds; [`sample_holds_every_kind_of_mess`]
//! proves that the sample still holds every kind of messy record, among them an opted-out
//! contact with no email address, which HubSpot and Pipedrive cannot hold and so refuse
//! before writing. The full default runs take minutes (a Pipedrive sink paces itself to the
//! emulator's documented rate limits) and are measured by hand in release.

mod common;

use std::collections::{BTreeSet, HashSet};

use ferry_sandbox::seed::{Mess, generate};

const VENDORS: &[&str] = &["hubspot", "salesforce", "pipedrive", "zoho", "dynamics"];
/// The demo's default seed (`ferry demo --seed`).
const SEED: u64 = 42;
/// Contacts per run: the fewest (in steps of 10) at which seed 42 yields every kind of mess,
/// an overlong title (1 in 1,000) included (see below).
const CONTACTS: usize = 410;
/// The sinks that keep an email opt-out per address (see `Sink::opt_out_needs_email`).
const OPT_OUT_PER_ADDRESS: &[&str] = &["hubspot", "pipedrive"];

#[test]
fn sample_holds_every_kind_of_mess() {
    let data = generate(CONTACTS, SEED, &Mess::default());
    let contacts = &data.contacts;
    let plausible = |e: &str| ferry_core::email::is_valid(e);
    let mut emails = HashSet::new();
    let kinds = [
        (
            "opted out, no email",
            contacts
                .iter()
                .any(|c| c.email_opt_out && c.email.is_none()),
        ),
        (
            "opted out, with email",
            contacts
                .iter()
                .any(|c| c.email_opt_out && c.email.as_deref().is_some_and(plausible)),
        ),
        (
            "malformed email",
            contacts
                .iter()
                .any(|c| c.email.as_deref().is_some_and(|e| !plausible(e))),
        ),
        (
            "duplicate email",
            contacts
                .iter()
                .filter_map(|c| c.email.as_deref())
                .any(|e| !emails.insert(e.to_lowercase())),
        ),
        (
            "no last name",
            contacts.iter().any(|c| c.last_name.is_none()),
        ),
        ("no company", contacts.iter().any(|c| c.company.is_none())),
        (
            "overlong title",
            contacts
                .iter()
                .any(|c| c.job_title.as_deref().is_some_and(|t| t.len() > 128)),
        ),
        (
            "non-ASCII name",
            contacts
                .iter()
                .any(|c| c.last_name.as_deref().is_some_and(|n| !n.is_ascii())),
        ),
    ];
    let missing: Vec<&str> = kinds
        .iter()
        .filter(|(_, present)| !present)
        .map(|(kind, _)| *kind)
        .collect();
    assert!(
        missing.is_empty(),
        "seed {SEED} at {CONTACTS} contacts lacks: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_demo_pair_exits_0_on_its_messy_data() {
    let pairs: Vec<(&str, &str)> = VENDORS
        .iter()
        .flat_map(|a| {
            VENDORS
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (*a, *b))
        })
        .collect();
    assert_eq!(pairs.len(), 20);
    let mut failures = Vec::new();
    // All at once: each run is its own process with its own two emulators, and spends most of
    // its time waiting for the emulators' rate limits (a Pipedrive sink about 13 s in a debug
    // build, the others 1 to 3 s), not on the CPU.
    let runs = pairs.iter().map(|(from, to)| async move {
        let records = CONTACTS.to_string();
        let seed = SEED.to_string();
        let args = [
            "demo",
            "--from",
            from,
            "--to",
            to,
            "--records",
            &records,
            "--seed",
            &seed,
            "--report",
            "json",
            "-q",
        ];
        (from, to, common::ferry(&args, &[]).await)
    });
    for (from, to, out) in futures::future::join_all(runs).await {
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
        // The messy records are refused (exit 0 unless `--strict`); nothing may differ,
        // be missing, or sit in the sink beyond what was read back.
        if out.status.code() != Some(0)
            || !["verified", "records_failed"].contains(&report["outcome"].as_str().unwrap_or(""))
        {
            problems.insert(format!(
                "exit {:?}, outcome {}, error {}",
                out.status.code(),
                report["outcome"],
                report["error"]
            ));
        }
        // The whole CRM, every object each vendor holds.
        let moved: Vec<&str> = report["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["object"].as_str())
            .collect();
        if moved != ["companies", "contacts", "deals", "notes"] {
            problems.insert(format!("moved {moved:?}"));
        }
        let mut failed = 0;
        for object in moved {
            let o = common::object(&report, object);
            failed += common::count(o, "failed");
            if common::count(o, "verified") != common::count(o, "written")
                || common::count(o, "mismatched") != 0
                || o["digests_match"] != true
                || o["extra_in_sink"] != 0
            {
                problems.insert(format!(
                    "{object}: written {}, verified {}, mismatched {}, digests match {}, \
                         extra in sink {}",
                    o["written"],
                    o["verified"],
                    o["mismatched"],
                    o["digests_match"],
                    o["extra_in_sink"]
                ));
            }
        }
        // Each refused record is counted once, as failed.
        let failures_of = |code: Option<&str>| -> HashSet<String> {
            report["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| code.is_none_or(|c| f["code"] == c))
                .map(|f| format!("{} {}", f["object"], f["source_id"]))
                .collect()
        };
        if failures_of(None).len() as u64 != failed {
            problems.insert(format!(
                "{failed} failed, but {} records listed as failures",
                failures_of(None).len()
            ));
        }
        // Opted-out contacts with no address: refused by the sinks that keep opt-outs per
        // address, written (with their opt-out, as the digests prove) by the others.
        let refused_opt_outs = failures_of(Some("OPT_OUT_NOT_REPRESENTABLE")).len();
        if OPT_OUT_PER_ADDRESS.contains(to) != (refused_opt_outs > 0) {
            problems.insert(format!(
                "{refused_opt_outs} records refused as OPT_OUT_NOT_REPRESENTABLE"
            ));
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
        "{} of 20 pairs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
