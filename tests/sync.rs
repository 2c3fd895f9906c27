//! End-to-end: `ferry sync` through the real binary, from a Salesforce emulator into a HubSpot
//! emulator. A first sync moves everything and sets the watermarks; records changed in the
//! source afterwards (through its REST API) are exactly what the next sync reads and updates;
//! a sync with nothing changed reads nothing; a second sync on a locked state refuses with
//! exit 5; a sync killed mid-way leaves a valid state, and the next one ends exact.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    all_credentials, count as n, emulator_table, ferry, industry_table, object, run_config,
};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce;
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::{Limits, Running, VendorEmulator};

const OBJECTS: [&str; 2] = ["companies", "contacts"];
const SOBJECTS: [&str; 2] = ["Account", "Contact"];

/// A seeded Salesforce org, an empty HubSpot portal, and a directory for config and state.
struct Pair {
    source: Running,
    org: salesforce::Emulator,
    sink: Running,
    sink_state: Arc<dyn VendorEmulator>,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn pair(contacts: usize, sink_faults: Faults) -> Pair {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(contacts, 17, &Mess::none()));
    let hubspot = ferry_sandbox::emulator("hubspot").expect("hubspot emulator");
    let sink_state = (hubspot.build)(sink_faults, Limits::Unlimited);
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let source = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .expect("serve salesforce");
    let sink = ferry_sandbox::serve("hubspot", sink_state.router(), any)
        .await
        .expect("serve hubspot");
    let dir = std::env::temp_dir().join(format!(
        "ferry-sync-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Pair {
        source,
        org,
        sink,
        sink_state,
        dir,
    }
}

impl Pair {
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Writes the config with `sync` as the `[sync]` table's lines; returns its path.
    fn config_with(&self, sync: &str, migration: &str) -> String {
        let path = self.dir.join("ferry.toml");
        let (sf, hs) = (
            ferry_sandbox::emulator("salesforce").expect("salesforce"),
            ferry_sandbox::emulator("hubspot").expect("hubspot"),
        );
        let text = format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {OBJECTS:?}\n{migration}\n\n[sync]\n{sync}\n\n{}\n",
            emulator_table("source", "salesforce", &self.source.base_url),
            emulator_table("sink", "hubspot", &self.sink.base_url),
            industry_table(&sf, &hs),
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }

    fn config(&self) -> String {
        self.config_with(
            &format!("state = {:?}", self.state().display().to_string()),
            "",
        )
    }

    fn source_counts(&self) -> Vec<usize> {
        SOBJECTS.iter().map(|o| self.org.count(o)).collect()
    }

    fn sink_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.sink_state.count(o)).collect()
    }

    /// Ids of the first `n` records of `sobject`, in id order, through the org's REST API.
    async fn ids(&self, sobject: &str, n: usize) -> Vec<String> {
        let answer = self
            .rest(
                reqwest::Method::GET,
                &format!(
                    "/services/data/v62.0/query?q={}",
                    format!("SELECT Id FROM {sobject} ORDER BY Id LIMIT {n}").replace(' ', "+")
                ),
                None,
            )
            .await;
        answer["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["Id"].as_str().expect("Id").to_owned())
            .collect()
    }

    /// Sets `field` to `value` on the records `ids` of `sobject`, as a user's edit would.
    async fn change(&self, sobject: &str, ids: &[String], field: &str, value: &str) {
        let records: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"attributes": {"type": sobject}, "Id": id, field: value}))
            .collect();
        let answer = self
            .rest(
                reqwest::Method::PATCH,
                "/services/data/v62.0/composite/sobjects",
                Some(serde_json::json!({"allOrNone": true, "records": records})),
            )
            .await;
        assert!(
            answer
                .as_array()
                .expect("results")
                .iter()
                .all(|r| r["success"] == true),
            "{answer}"
        );
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        common::salesforce_call(&self.source.base_url, method, path, &[], body).await
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, serde_json::Value, String) {
    run_config(command, config, &all_credentials()).await
}

/// Salesforce requests an incremental read of `object` takes when nothing needs a second
/// page: `GET …/limits` for the org's clock and one query. (The companies' mapped industry
/// field is spelled from the describe the run's field plan read before the objects: the
/// source keeps it, so the read describes nothing again.)
const READ_REQUESTS: u64 = 2;

/// Starts `ferry sync --config <config>` in the background, output discarded, to be killed.
fn spawn_sync(config: &str) -> tokio::process::Child {
    common::spawn_ferry(
        "sync",
        config,
        &all_credentials(),
        common::Streams::Discarded,
    )
}

/// The watermark the state file holds for `object`, if any.
fn watermark(state: &Path, object: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(state).ok()?).ok()?;
    json["objects"][object]["watermark"]["at"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(60, Faults::default()).await;
    let config = pair.config();
    let totals = pair.source_counts();

    // First sync: a full read, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_eq!(first["command"], "sync");
    for (name, total) in OBJECTS.iter().zip(&totals) {
        let o = object(&first, name);
        assert_eq!(
            (n(o, "read"), n(o, "created")),
            (*total as u64, *total as u64),
            "{o:#}"
        );
        assert_eq!(o["sync"]["read"], "full", "{o:#}");
        assert!(o["sync"]["watermark_before"].is_null());
        assert_eq!(o["sync"]["advanced"], true);
        let after = o["sync"]["watermark_after"].as_str().expect("a watermark");
        assert_eq!(Some(after.to_owned()), watermark(&pair.state(), name));
    }
    assert_eq!(pair.sink_counts(), totals);
    // The state holds watermarks, never a record.
    let text = std::fs::read_to_string(pair.state()).expect("state");
    assert!(!text.contains('@'), "{text}");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
    for name in OBJECTS {
        let keys: Vec<&String> = state["objects"][name]
            .as_object()
            .expect("object")
            .keys()
            .collect();
        assert_eq!(
            keys,
            [
                "deletions_cursor",
                "delta_token",
                "digests",
                "synced_at",
                "watermark"
            ],
            "{text}"
        );
    }
    // And the accounts it belongs to, as the vendors name them.
    assert_eq!(
        state["source_account"].as_str(),
        Some(format!("org id {}", pair.org.org_id()).as_str()),
        "{text}"
    );
    assert!(state["sink_account"].is_string(), "{text}");
    let first_marks: Vec<String> = OBJECTS
        .iter()
        .map(|o| watermark(&pair.state(), o).expect("watermark"))
        .collect();

    // An hour on, 2 accounts and 3 contacts change; an hour later the next sync runs.
    pair.org.advance_clock(Duration::from_secs(3600));
    let accounts = pair.ids("Account", 2).await;
    let contacts = pair.ids("Contact", 3).await;
    pair.change("Account", &accounts, "Phone", "+48 12 345 67 89")
        .await;
    pair.change("Contact", &contacts, "Title", "Head of Sync")
        .await;
    pair.org.advance_clock(Duration::from_secs(3600));
    let usage = pair.org.api_usage();
    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    for (name, changed, before) in [
        ("companies", 2, &first_marks[0]),
        ("contacts", 3, &first_marks[1]),
    ] {
        let o = object(&second, name);
        assert_eq!(
            (
                n(o, "read"),
                n(o, "created"),
                n(o, "updated"),
                n(o, "verified")
            ),
            (changed, 0, changed, changed),
            "exactly the changed records: {o:#}"
        );
        assert_eq!(o["sync"]["read"], "incremental");
        assert_eq!(
            o["sync"]["watermark_before"].as_str(),
            Some(before.as_str())
        );
        assert!(
            o["sync"]["watermark_after"].as_str() > Some(before.as_str()),
            "{o:#}"
        );
        // Reading the changes of one object: the org's clock, then one query page.
        assert_eq!(n(&o["source_http"], "requests"), READ_REQUESTS, "{o:#}");
    }
    assert_eq!(second["outcome"], "verified");
    assert_eq!(pair.sink_counts(), totals, "nothing created");
    let second_usage = pair.org.api_usage() - usage;

    // Nothing changed: nothing read, exit 0.
    let usage = pair.org.api_usage();
    let (code, third, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{third:#}\n{stderr}");
    assert_eq!(third["outcome"], "verified");
    for name in OBJECTS {
        let o = object(&third, name);
        assert_eq!((n(o, "read"), n(o, "written")), (0, 0), "{o:#}");
        assert_eq!(n(&o["source_http"], "requests"), READ_REQUESTS, "{o:#}");
    }
    let third_usage = pair.org.api_usage() - usage;
    // The human summary says so, object by object.
    let out = ferry(&["sync", "--config", &config, "-q"], &all_credentials()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("nothing changed since the last sync: 0 records read"),
        "{stdout}"
    );
    for name in OBJECTS {
        assert!(
            stdout.contains(&format!(
                "sync {name}: incremental read of the changes since "
            )) && stdout.contains("0 records; watermark now "),
            "{stdout}"
        );
    }
    eprintln!(
        "Salesforce API calls: second sync (5 changes) {second_usage}, third sync (none) {third_usage}"
    );

    // The whole sink agrees with the source.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_on_a_locked_state_refuses_at_once_with_exit_5() {
    let pair = pair(10, Faults::default()).await;
    let config = pair.config();
    let lock_path = PathBuf::from(format!("{}.lock", pair.state().display()));
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    held.try_lock().expect("the test holds the lock");

    let (code, report, stderr) = run("sync", &config).await;
    assert_eq!(code, 5, "{report:#}\n{stderr}");
    assert_eq!(report["error_kind"], "locked", "{report:#}");
    let state = pair.state().display().to_string();
    assert!(
        stderr.contains(&state) && stderr.contains("another `ferry sync`"),
        "{stderr}"
    );
    assert_eq!(pair.sink_counts(), vec![0, 0], "nothing written");
    assert!(!pair.state().exists());

    drop(held);
    let (code, report, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(pair.sink_counts(), pair.source_counts());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_mid_way_is_finished_by_the_next_exactly() {
    // Every sink request takes 40 ms and one batch is in flight, so that the contacts take
    // over a second: the kill lands after the companies settled, among the contacts.
    let slow = Faults {
        latency: Some(Duration::from_millis(40)),
        ..Faults::default()
    };
    let pair = pair(900, slow).await;
    let config = pair.config_with(
        &format!("state = {:?}", pair.state().display().to_string()),
        "batches_in_flight = 1",
    );
    let totals = pair.source_counts();
    let mut child = spawn_sync(&config);
    let mut killed = false;
    for _ in 0..6_000 {
        let contacts = pair.sink_state.count("contacts");
        if watermark(&pair.state(), "companies").is_some() && contacts > 0 && contacts < totals[1] {
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
        "ferry was not killed during the contacts (exit {status:?}); sink {:?}",
        pair.sink_counts()
    );
    // The state is whole: the companies' watermark, none for the contacts.
    assert!(watermark(&pair.state(), "companies").is_some());
    assert_eq!(watermark(&pair.state(), "contacts"), None);

    let (code, report, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let companies = object(&report, "companies");
    assert_eq!(companies["sync"]["read"], "incremental");
    assert_eq!(n(companies, "read"), 0, "{companies:#}");
    let contacts = object(&report, "contacts");
    assert_eq!(contacts["sync"]["read"], "full", "{contacts:#}");
    assert_eq!(n(contacts, "read"), totals[1] as u64);
    assert!(
        n(contacts, "updated") > 0,
        "the killed run's writes are updated: {contacts:#}"
    );
    assert_eq!(
        n(contacts, "created") + n(contacts, "updated"),
        totals[1] as u64
    );
    assert_eq!(pair.sink_counts(), totals, "nothing duplicated");
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_settings_are_checked_naming_their_keys() {
    let pair = pair(5, Faults::default()).await;
    for (sync, key, says) in [
        ("", "sync.state", "required by `ferry sync`"),
        (
            "state = \"s.json\"\ndeletes = \"purge\"",
            "sync.deletes",
            "must be \"ignore\"",
        ),
        ("state = \"s.json\"\nturbo = true", "turbo", "unknown field"),
    ] {
        let config = pair.config_with(sync, "");
        let (code, report, stderr) = run("sync", &config).await;
        assert_eq!(code, 2, "{sync}: {report:#}\n{stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(says),
            "{sync}: {stderr}"
        );
    }
    assert_eq!(pair.sink_counts(), vec![0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_at_random_points_of_its_changes_then_run_again_ends_exact() {
    // Every sink request takes 40 ms and one batch is in flight, so that a sync of the changes
    // takes over a second and the kills land anywhere in it: reading, writing, verifying,
    // saving the state.
    let slow = Faults {
        latency: Some(Duration::from_millis(40)),
        ..Faults::default()
    };
    let pair = pair(600, slow).await;
    let config = pair.config_with(
        &format!("state = {:?}", pair.state().display().to_string()),
        "batches_in_flight = 1",
    );
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    let totals = pair.source_counts();

    // An hour on, a third of the accounts and of the contacts change.
    pair.org.advance_clock(Duration::from_secs(3600));
    let accounts = pair.ids("Account", totals[0] / 3).await;
    let contacts = pair.ids("Contact", totals[1] / 3).await;
    pair.change("Account", &accounts, "Phone", "+48 12 345 67 89")
        .await;
    pair.change("Contact", &contacts, "Title", "Head of Sync")
        .await;
    pair.org.advance_clock(Duration::from_secs(3600));

    // A fixed pseudo-random series of kill delays (xorshift): reproducible.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(150 + x % 1_200);
        let mut child = spawn_sync(&config);
        tokio::time::sleep(delay).await;
        if child.try_wait().expect("poll ferry").is_none() {
            child.start_kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().await.expect("wait for ferry");
        // Whatever the kill left, the state is whole JSON with both objects' watermarks (a
        // killed run never writes half a state, nor moves a watermark past unsettled work).
        for name in OBJECTS {
            assert!(
                watermark(&pair.state(), name).is_some(),
                "{name} after a kill"
            );
        }
        assert_eq!(pair.sink_counts(), totals, "nothing duplicated");
    }
    assert!(kills > 0, "no sync was killed: the delays are too long");

    // The next sync finishes: every change is in the sink, nothing duplicated, all verified.
    let (code, last, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{last:#}\n{stderr}");
    assert_eq!(pair.sink_counts(), totals, "nothing duplicated");
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "every change arrived: {verified:#}\n{stderr}");
    eprintln!("{kills} of 4 syncs killed");
}
