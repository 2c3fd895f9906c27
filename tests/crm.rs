//! End-to-end: the whole CRM (companies, contacts, deals, notes) through the real `ferry`
//! binary between two vendors' emulators: stage mapping refusals, owners that do not match,
//! deals with many contacts and notes with many parents, won and lost deals, and kills during
//! the deals and the notes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{all_credentials, ferry, industry_table};
use ferry_sandbox::accounts::{account_users, stage_crosswalk, stage_crosswalk_config};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, SeedData, generate};
use ferry_sandbox::{EmulatorSpec, Limits, Running, VendorEmulator};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];

/// Two emulators, the source seeded, the sink empty, and a directory for the config.
struct Pair {
    from: EmulatorSpec,
    to: EmulatorSpec,
    source: Running,
    source_state: Arc<dyn VendorEmulator>,
    sink: Running,
    sink_state: Arc<dyn VendorEmulator>,
    seeded: SeedData,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn spec(vendor: &str) -> EmulatorSpec {
    ferry_sandbox::emulator(vendor).expect("an emulator of every vendor")
}

async fn serve(emulator: &dyn VendorEmulator) -> Running {
    let any = "127.0.0.1:0".parse().expect("loopback address");
    ferry_sandbox::serve("emulator", emulator.router(), any)
        .await
        .expect("serve the emulator")
}

/// Starts `from` seeded with clean data around `contacts` contacts, and `to` empty.
async fn pair(from: &str, to: &str, contacts: usize) -> Pair {
    pair_with(from, to, contacts, Faults::default()).await
}

/// [`pair`] with `sink_faults` in the sink's emulator.
async fn pair_with(from: &str, to: &str, contacts: usize, sink_faults: Faults) -> Pair {
    let sink_state = (spec(to).build)(sink_faults, Limits::Unlimited);
    pair_into(from, to, contacts, sink_state).await
}

/// [`pair`] into `sink_state`, an emulator of `to` built by the test.
async fn pair_into(
    from: &str,
    to: &str,
    contacts: usize,
    sink_state: Arc<dyn VendorEmulator>,
) -> Pair {
    let (from, to) = (spec(from), spec(to));
    let seeded = generate(contacts, 11, &Mess::none());
    let source_state = (from.build)(Faults::default(), Limits::Unlimited);
    source_state.seed(&seeded);
    let source = serve(source_state.as_ref()).await;
    let sink = serve(sink_state.as_ref()).await;
    let dir = std::env::temp_dir().join(format!(
        "ferry-crm-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Pair {
        from,
        to,
        source,
        source_state,
        sink,
        sink_state,
        seeded,
        dir,
    }
}

/// A `[source]` or `[sink]` table for `spec` at `base_url`, with `sizes` overriding its settings.
fn table(role: &str, spec: &EmulatorSpec, base_url: &str, sizes: &[(&str, u64)]) -> String {
    let mut out = format!("[{role}]\nconnector = \"{}\"\n", spec.vendor);
    for (key, value) in (spec.connector_settings)(base_url) {
        if sizes.iter().any(|(s, _)| *s == key) {
            continue;
        }
        match value.parse::<u64>() {
            Ok(n) => writeln!(out, "{key} = {n}"),
            Err(_) => writeln!(out, "{key} = {}", toml::Value::String(value)),
        }
        .expect("write to a String");
    }
    for (key, value) in sizes {
        writeln!(out, "{key} = {value}").expect("write to a String");
    }
    out
}

impl Pair {
    /// Writes the config: every object, the operator's stage table (`stages`), `migration`
    /// lines and `more` tables appended; returns its path.
    fn config(&self, stages: &[(String, String)], migration: &str, more: &str) -> String {
        self.config_sized(stages, migration, more, &[], &[])
    }

    fn config_sized(
        &self,
        stages: &[(String, String)],
        migration: &str,
        more: &str,
        source_sizes: &[(&str, u64)],
        sink_sizes: &[(&str, u64)],
    ) -> String {
        let path = self.dir.join("ferry.toml");
        let text = format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {OBJECTS:?}\n{migration}\n\n{}\n{}\n{more}\n",
            table("source", &self.from, &self.source.base_url, source_sizes),
            table("sink", &self.to, &self.sink.base_url, sink_sizes),
            industry_table(&self.from, &self.to),
            stage_crosswalk_config(stages),
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }

    /// The demo's stage table between the two accounts: every stage mapped.
    fn stages(&self) -> Vec<(String, String)> {
        stage_crosswalk(self.from.deal_stages, self.to.deal_stages)
    }

    /// Live records per object in the sink.
    fn sink_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.sink_state.count(o)).collect()
    }

    /// Live records per object in the source.
    fn source_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.source_state.count(o)).collect()
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, serde_json::Value, String) {
    let out = ferry(
        &[command, "--config", config, "--report", "json", "-q"],
        &all_credentials(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn object<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["objects"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["object"] == name))
        .unwrap_or_else(|| panic!("no {name} in the report: {report:#}"))
}

fn n(value: &serde_json::Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {value:#}"))
}

/// Fails unless every object was read in full and verified, digests equal.
fn assert_exact(pair: &Pair, code: i32, report: &serde_json::Value, stderr: &str) {
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("verified")),
        "{} -> {}: {stderr}\n{report:#}",
        pair.from.vendor,
        pair.to.vendor
    );
    for name in OBJECTS {
        let o = object(report, name);
        assert_eq!(
            (n(o, "read"), n(o, "verified"), o["digests_match"].as_bool()),
            (n(o, "read"), n(o, "read"), Some(true)),
            "{name}: {o:#}"
        );
    }
    assert_eq!(pair.sink_counts(), pair.source_counts());
}

/// The records a `NOT_CARRIED` warning of the report names, per object.
fn not_carried(report: &serde_json::Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for w in report["warnings"].as_array().into_iter().flatten() {
        if w["code"] == "NOT_CARRIED" {
            *counts
                .entry(w["object"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmapped_stage_refuses_the_run_before_any_write_naming_every_one() {
    let pair = pair("hubspot", "salesforce", 40).await;
    let mut stages = pair.stages();
    let dropped: Vec<(String, String)> = stages.drain(..2).collect();
    let config = pair.config(&stages, "", "");
    let (code, report, stderr) = run("migrate", &config).await;
    assert_eq!(code, 2, "{stderr}\n{report:#}");
    let error = report["error"].as_str().unwrap_or_default();
    for (source_stage, _) in &dropped {
        let (pipeline, stage) = source_stage.split_once('/').expect("pipeline/stage");
        assert!(
            error.contains(pipeline) && error.contains(stage),
            "the unmapped stage {source_stage} is not named: {error}"
        );
    }
    assert_eq!(pair.sink_counts(), vec![0; 4], "nothing may be written");
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_owners_rejected_refuse_exactly_their_records() {
    // User 6 is active in HubSpot and deactivated in Salesforce: the records it owns in the
    // source have no active owner in the sink.
    let pair = pair("hubspot", "salesforce", 80).await;
    let sink_active: BTreeSet<usize> = account_users(pair.to.vendor)
        .into_iter()
        .filter(|u| u.active)
        .map(|u| u.key)
        .collect();
    let source_has: BTreeSet<usize> = account_users(pair.from.vendor)
        .into_iter()
        .map(|u| u.key)
        .collect();
    let unmatched = |owner: Option<usize>| {
        owner.is_some_and(|k| source_has.contains(&k) && !sink_active.contains(&k))
    };
    let s = &pair.seeded;
    let expected: BTreeMap<&str, usize> = [
        (
            "companies",
            s.companies.iter().filter(|c| unmatched(c.owner)).count(),
        ),
        (
            "contacts",
            s.contacts.iter().filter(|c| unmatched(c.owner)).count(),
        ),
        (
            "deals",
            s.deals.iter().filter(|d| unmatched(d.owner)).count(),
        ),
        (
            "notes",
            s.notes.iter().filter(|n| unmatched(n.owner)).count(),
        ),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    assert!(!expected.is_empty(), "the seed gives user 6 no records");
    // Links to a refused record are dropped (and warned about), so that the only records
    // refused are those of unmatched owners.
    let config = pair.config(
        &pair.stages(),
        "missing_reference = \"drop\"",
        "[mapping.owners]\nunmatched = \"reject\"\n",
    );
    let (code, report, stderr) = run("migrate", &config).await;
    assert_eq!(code, 3, "{stderr}\n{report:#}");
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for f in report["failures"].as_array().into_iter().flatten() {
        if f["code"] == "OWNER_UNMATCHED" {
            let object = OBJECTS
                .into_iter()
                .find(|o| f["object"] == *o)
                .expect("a known object");
            *refused.entry(object).or_default() += 1;
            let id = f["source_id"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "a refusal without a source id: {f}");
            assert!(ids.insert((object, id.to_owned())), "{id} refused twice");
        }
    }
    assert_eq!(refused, expected, "{report:#}");
    // Nothing else is refused but a note whose every parent was refused: Salesforce takes
    // no note without one, and the warning says its links were dropped.
    let warned: BTreeSet<(&str, &str)> = report["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["code"] == "REFERENCE_REFUSED")
        .filter_map(|w| Some((w["object"].as_str()?, w["source_id"].as_str()?)))
        .collect();
    for f in report["failures"].as_array().into_iter().flatten() {
        let key = (
            f["object"].as_str().unwrap_or_default(),
            f["source_id"].as_str().unwrap_or_default(),
        );
        let parentless_note =
            key.0 == "notes" && f["code"] == "MISSING_REQUIRED" && warned.contains(&key);
        assert!(
            f["code"] == "OWNER_UNMATCHED" || parentless_note,
            "only unmatched owners are refused: {f}"
        );
    }
    let listed: u64 = report["owners_unmatched"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| n(o, "records"))
        .sum();
    assert_eq!(listed as usize, expected.values().sum::<usize>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_currency_org_refuses_exactly_the_deals_in_other_currencies() {
    // Most Salesforce orgs keep every amount in their corporate currency and have no currency
    // field: a deal in another currency cannot be held there, and is refused by source id.
    let org = ferry_sandbox::salesforce::Emulator::new(ferry_sandbox::salesforce::Options {
        multi_currency: false,
        ..Default::default()
    });
    let pair = pair_into("hubspot", "salesforce", 80, Arc::new(org)).await;
    let corporate = ferry_sandbox::salesforce::CORPORATE_CURRENCY;
    let other: usize = pair
        .seeded
        .deals
        .iter()
        .filter(|d| d.currency != corporate)
        .count();
    assert!(
        other > 0 && other < pair.seeded.deals.len(),
        "the seed has deals in several currencies"
    );
    let config = pair.config(&pair.stages(), "missing_reference = \"drop\"", "");
    let (code, report, stderr) = run("migrate", &config).await;
    assert_eq!(code, 3, "{stderr}\n{report:#}");
    let deals = object(&report, "deals");
    assert_eq!(
        (n(deals, "failed"), n(deals, "verified")),
        (other as u64, (pair.seeded.deals.len() - other) as u64),
        "{deals:#}"
    );
    assert_eq!(deals["digests_match"].as_bool(), Some(true), "{deals:#}");
    let refused: Vec<&serde_json::Value> = report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["object"] == "deals")
        .collect();
    assert_eq!(refused.len(), other);
    for f in refused {
        assert_eq!(f["code"], "VALUE_NOT_HELD", "{f}");
        assert!(
            !f["source_id"].as_str().unwrap_or_default().is_empty(),
            "{f}"
        );
        assert!(
            f["reason"]
                .as_str()
                .is_some_and(|r| r.contains("currency") && r.contains(corporate)),
            "{f}"
        );
    }
    for name in ["companies", "contacts"] {
        let o = object(&report, name);
        assert_eq!(n(o, "verified"), n(o, "read"), "{name}: {o:#}");
    }
}

/// Vendors that hold one contact per deal, and one parent per note (as a source they deliver
/// what they hold: the emulator seeds the first).
const ONE_CONTACT: &[&str] = &["dynamics"];
const ONE_PARENT: &[&str] = &["salesforce", "zoho", "dynamics"];

#[tokio::test(flavor = "multi_thread")]
async fn every_link_owner_stage_and_outcome_arrives_and_a_rerun_creates_nothing() {
    // Every pair of vendors, each run its own two emulators, all at once (most of the time is
    // the emulators' pacing, not the CPU).
    const VENDORS: [&str; 5] = ["hubspot", "salesforce", "pipedrive", "zoho", "dynamics"];
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
    let runs = pairs.iter().map(|(from, to)| async move {
        let pair = pair(from, to, 40).await;
        let s = &pair.seeded;
        assert!(s.deals.iter().any(|d| d.contacts.len() == 5));
        assert!(s.notes.iter().any(|n| n.parents.len() == 3));
        assert!(
            s.deals
                .iter()
                .any(|d| d.seed_stage().1.outcome.as_str() == "won")
        );
        assert!(
            s.deals
                .iter()
                .any(|d| d.seed_stage().1.outcome.as_str() == "lost")
        );
        let config = pair.config(&pair.stages(), "", "");
        let (code, report, stderr) = run("migrate", &config).await;
        assert_exact(&pair, code, &report, &stderr);
        // Verification compared every link (as source ids), owner and stage (as the sink's
        // labels, won and lost included); what a sink cannot hold is reported per record.
        let mut expected = BTreeMap::new();
        let narrows =
            |one: &[&str]| one.contains(&pair.to.vendor) && !one.contains(&pair.from.vendor);
        if narrows(ONE_CONTACT) {
            expected.insert(
                "deals".to_owned(),
                s.deals.iter().filter(|d| d.contacts.len() > 1).count(),
            );
        }
        if narrows(ONE_PARENT) {
            expected.insert(
                "notes".to_owned(),
                s.notes.iter().filter(|n| n.parents.len() > 1).count(),
            );
        }
        assert_eq!(not_carried(&report), expected, "{from} -> {to}");
        // Owners: every owner the sink has an active user for was matched.
        let (code, again, stderr) = run("migrate", &config).await;
        assert_exact(&pair, code, &again, &stderr);
        for name in OBJECTS {
            assert_eq!(
                n(object(&again, name), "created"),
                0,
                "{from} -> {to} {name}"
            );
        }
    });
    futures::future::join_all(runs).await;
}

/// How many records of `object` the source holds.
fn total(pair: &Pair, object: &str) -> u64 {
    pair.source_state.count(object) as u64
}

/// Settled records of `object` in the checkpoint at `path`, and whether the run completed.
fn settled(path: &std::path::Path, object: &str) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let settled = json["objects"][object]["settled"].as_u64()?;
    Some((settled, json["complete"].as_bool().unwrap_or(false)))
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_deals_and_during_the_notes_then_resumed_ends_exact() {
    // Every sink request takes 25 ms and one batch is in flight, so that each object takes
    // seconds and the checkpoint (saved at most once a second) shows it under way.
    let slow = Faults {
        latency: Some(Duration::from_millis(25)),
        ..Faults::default()
    };
    let pair = pair_with("hubspot", "salesforce", 400, slow).await;
    let checkpoint = pair.dir.join("checkpoint.json");
    let config = pair.config_sized(
        &pair.stages(),
        &format!(
            "checkpoint = {:?}\nbatches_in_flight = 1",
            checkpoint.display().to_string()
        ),
        "",
        &[("page_size", 10)],
        // Small read-backs too: a record settles once it is verified, and the checkpoint only
        // moves past settled pages.
        &[("batch_size", 5), ("read_back_size", 5)],
    );
    for object in ["deals", "notes"] {
        let mut child = common::spawn_ferry(
            "migrate",
            &config,
            &all_credentials(),
            common::Streams::Discarded,
        );
        let mut killed = false;
        for _ in 0..6_000 {
            if let Some((done, false)) = settled(&checkpoint, object)
                && done > 0
                && done < total(&pair, object)
            {
                child.start_kill().expect("SIGKILL");
                killed = true;
                break;
            }
            if child.try_wait().expect("poll ferry").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = child.wait().await.expect("wait for ferry");
        assert!(
            killed && status.code().is_none(),
            "ferry was not killed during the {object} (exit {status:?}); checkpoint: {}",
            std::fs::read_to_string(&checkpoint).unwrap_or_default()
        );
    }
    let (code, report, stderr) = run("migrate", &config).await;
    assert_exact(&pair, code, &report, &stderr);
    assert!(
        n(object(&report, "companies"), "already_done") > 0,
        "the resumed run started over: {report:#}"
    );
}
