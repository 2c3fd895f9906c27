//! End-to-end: `ferry sync` with `[sync] state = "sink"` through the real binary, from a
//! Salesforce emulator into a Dataverse emulator that keeps the sync state as environment
//! variables. A first sync is full; the state is then visible in the environment (definition
//! and value, watermarks only); the next sync moves exactly what changed (counted by the
//! source emulator); a second sync while one runs refuses with exit 5 naming the sink; a run
//! killed with SIGKILL leaves the previous state valid and its lease blocks the next sync until
//! it expires, after which that sync ends exact. `state = "sink"` with a HubSpot sink is
//! refused naming the key. No state file is written anywhere.

mod common;

use std::time::Duration;

use common::{SyncPair, all_credentials, count as n, object, run_config};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce;
use ferry_sandbox::seed::{Mess, generate};
use serde_json::{Value as Json, json};

const OBJECTS: [&str; 2] = ["companies", "contacts"];
const SOBJECTS: [&str; 2] = ["Account", "Contact"];
/// The lease the tests configure: a killed run blocks the next sync this long at most.
const LEASE_SECONDS: u64 = 3;

type Pair = SyncPair<salesforce::Emulator>;

async fn pair(contacts: usize, sink_faults: Faults) -> Pair {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(contacts, 29, &Mess::none()));
    SyncPair::start_with("salesforce", org, "dynamics", sink_faults).await
}

/// The pair's config with the state kept in the sink, a short lease and `sink_lines` added
/// to the `[sink]` table.
fn sink_state_config(pair: &Pair, sink_lines: &str) -> String {
    sink_state_config_with(
        pair,
        sink_lines,
        &format!("[sync]\nstate = \"sink\"\nlease_seconds = {LEASE_SECONDS}\n"),
    )
}

/// The `[sync]` table `docs/scheduled-sync.md` shows for a state in the sink, as operators
/// copy it.
fn documented_sync_table() -> String {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/scheduled-sync.md"
    ))
    .expect("docs/scheduled-sync.md");
    let start = page
        .find("```toml state-in-sink\n")
        .expect("the state-in-sink block")
        + "```toml state-in-sink\n".len();
    let len = page[start..].find("```").expect("the block's end");
    page[start..start + len].to_owned()
}

/// The pair's config with `sync_table` as its `[sync]` table and `sink_lines` added to the
/// `[sink]` table.
fn sink_state_config_with(pair: &Pair, sink_lines: &str, sync_table: &str) -> String {
    let path = pair.config(&OBJECTS);
    let mut text = std::fs::read_to_string(&path).expect("config");
    // Deals are not synced here: no stage table (it comes last).
    if let Some(at) = text.find("[mapping.deal_stages]") {
        text.truncate(at);
    }
    let state_line = format!("[sync]\nstate = {:?}\n", pair.state().display().to_string());
    assert!(text.contains(&state_line), "{text}");
    let text = text.replace(&state_line, sync_table).replace(
        "[sink]\nconnector = \"dynamics\"\n",
        &format!("[sink]\nconnector = \"dynamics\"\n{sink_lines}"),
    );
    std::fs::write(&path, text).expect("config");
    path
}

async fn run(config: &str) -> (i32, Json, String) {
    run_config("sync", config, &all_credentials()).await
}

/// `GET rest` on the sink environment's Web API, as an administrator looking at it would.
async fn dataverse(pair: &Pair, rest: &str) -> Json {
    let base = &pair.sink.base_url;
    let http = reqwest::Client::new();
    let token: Json = http
        .post(format!(
            "{base}/{}/oauth2/v2.0/token",
            ferry_sandbox::dynamics::TENANT_ID
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ferry_sandbox::dynamics::CLIENT_ID),
            ("client_secret", ferry_sandbox::dynamics::CLIENT_SECRET),
            ("scope", &format!("{base}/.default")),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    http.get(format!("{base}/api/data/v9.2/{rest}"))
        .bearer_auth(token["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// The environment variable values whose schema name starts `ferry_`, by schema name.
async fn variables(pair: &Pair) -> std::collections::BTreeMap<String, String> {
    let page = dataverse(pair, "environmentvariablevalues?$select=schemaname,value").await;
    page["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|v| {
            let name = v["schemaname"].as_str()?;
            name.starts_with("ferry_").then(|| {
                (
                    name.to_owned(),
                    v["value"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

/// The sync state kept in the sink, parsed.
async fn state(pair: &Pair) -> Option<Json> {
    let vars = variables(pair).await;
    let (_, text) = vars.iter().find(|(k, _)| k.starts_with("ferry_state_"))?;
    Some(serde_json::from_str(text).expect("the state is JSON"))
}

fn watermark(state: &Option<Json>, object: &str) -> Option<String> {
    state.as_ref()?["objects"][object]["watermark"]["at"]
        .as_str()
        .map(str::to_owned)
}

impl Pair {
    fn source_counts(&self) -> Vec<usize> {
        SOBJECTS.iter().map(|o| self.account.count(o)).collect()
    }

    fn sink_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.sink_state.count(o)).collect()
    }

    /// Sets `field` on the first record of `sobject`, as a user's edit would.
    async fn change_one(&self, sobject: &str, field: &str, value: &str) {
        let soql = format!("SELECT Id FROM {sobject} ORDER BY Id LIMIT 1");
        let answer = common::salesforce_call(
            &self.source.base_url,
            reqwest::Method::GET,
            &format!("/services/data/v62.0/query?q={}", soql.replace(' ', "+")),
            &[],
            None,
        )
        .await;
        let id = answer["records"][0]["Id"]
            .as_str()
            .expect("an id")
            .to_owned();
        common::salesforce_call(
            &self.source.base_url,
            reqwest::Method::PATCH,
            "/services/data/v62.0/composite/sobjects",
            &[],
            Some(json!({
                "allOrNone": true,
                "records": [{ "attributes": { "type": sobject }, "Id": id, field: value }],
            })),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_lives_in_dataverse_and_the_next_sync_moves_only_what_changed() {
    let pair = pair(30, Faults::default()).await;
    // The `[sync]` table as the scheduled-sync page shows it.
    let config = sink_state_config_with(&pair, "", &documented_sync_table());
    let totals = pair.source_counts();

    let (code, first, stderr) = run(&config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    for (name, total) in OBJECTS.iter().zip(&totals) {
        let o = object(&first, name);
        assert_eq!(o["sync"]["read"], "full", "{o:#}");
        assert_eq!(n(o, "created"), *total as u64, "{o:#}");
    }
    assert_eq!(pair.sink_counts(), totals);
    assert!(!pair.state().exists(), "no state file");

    // The state is an environment variable of the sink, beside its lease (freed at the end).
    let vars = variables(&pair).await;
    assert_eq!(vars.len(), 2, "{vars:?}");
    let state = state(&pair).await;
    for name in OBJECTS {
        assert!(watermark(&state, name).is_some(), "{state:?}");
    }
    let state = state.expect("a state");
    assert_eq!(
        (state["source"].as_str(), state["sink"].as_str()),
        (Some("salesforce"), Some("dynamics"))
    );
    let lease: Json = serde_json::from_str(
        vars.iter()
            .find(|(k, _)| k.starts_with("ferry_lease_"))
            .expect("a lease")
            .1,
    )
    .expect("lease JSON");
    assert_eq!(lease["holder"], "", "freed by the run that ended: {lease}");
    // Both names carry the same key, a hash: no customer data.
    let keys: Vec<&str> = vars.keys().map(|k| k.rsplit('_').next().unwrap()).collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0].len(), 16);
    // `ferry plan` says where the state lives.
    let out = common::ferry(&["plan", "--config", &config], &all_credentials()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "sync state: in the dynamics sink, environment variable ferry_state_{}",
            keys[0]
        )),
        "{stdout}"
    );
    // The definitions are there too, typed JSON.
    let definitions = dataverse(
        &pair,
        "environmentvariabledefinitions?$select=schemaname,type",
    )
    .await;
    let definitions = definitions["value"].as_array().expect("value");
    assert_eq!(definitions.len(), 2, "{definitions:?}");
    assert!(definitions.iter().all(|d| d["type"] == 100_000_003));

    // An hour on, one record of each object changes: the next sync reads exactly those.
    pair.account.advance_clock(Duration::from_secs(3600));
    pair.change_one("Account", "Phone", "+1 555 0100").await;
    pair.change_one("Contact", "Title", "Chief Ferry Officer")
        .await;
    pair.take_source_requests();
    pair.take_sink_requests();
    let (code, second, stderr) = run(&config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    assert_eq!(second["outcome"], "verified", "{second:#}");
    for name in OBJECTS {
        let o = object(&second, name);
        assert_eq!(o["sync"]["read"], "incremental", "{o:#}");
        assert_eq!(
            (n(o, "read"), n(o, "created"), n(o, "updated")),
            (1, 0, 1),
            "{o:#}"
        );
    }
    let source_requests: u64 = pair.take_source_requests().values().sum();
    // The state's own requests: the lease read, taken and freed, the state read and one
    // save per object (and a renewal if the run outlasts a quarter of the lease).
    let state_requests: u64 = pair
        .take_sink_requests()
        .iter()
        .filter(|(endpoint, _)| endpoint.contains("environmentvariable"))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "second sync: {source_requests} source requests, {state_requests} sink requests for the state"
    );
    assert!((6..=10).contains(&state_requests), "{state_requests}");
    assert_eq!(pair.sink_counts(), totals, "nothing duplicated");
    let after = self::state(&pair).await;
    assert!(watermark(&after, "contacts") > watermark(&Some(state), "contacts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_sync_is_refused_and_a_killed_runs_lease_expires() {
    // Every sink request takes 40 ms and batches hold 10 records, one in flight: the contacts
    // take seconds, long enough to start a second sync and to kill the first among them.
    let slow = Faults {
        latency: Some(Duration::from_millis(40)),
        ..Faults::default()
    };
    let pair = pair(300, slow).await;
    let config = sink_state_config(&pair, "batch_size = 10\nread_back_size = 10\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[migration]\n", "[migration]\nbatches_in_flight = 1\n");
    std::fs::write(&config, text).unwrap();
    let totals = pair.source_counts();

    let mut child = common::spawn_ferry(
        "sync",
        &config,
        &all_credentials(),
        common::Streams::Discarded,
    );
    let mut killed = false;
    let mut refused = false;
    for _ in 0..3_000 {
        let contacts = pair.sink_state.count("contacts");
        if contacts > 0
            && contacts < totals[1]
            && watermark(&state(&pair).await, "companies").is_some()
        {
            if !refused {
                // A second sync while the first runs: refused at once, naming the sink.
                let (code, report, stderr) = run(&config).await;
                assert_eq!(code, 5, "{report:#}\n{stderr}");
                assert_eq!(report["error_kind"], "locked", "{report:#}");
                assert!(
                    stderr.contains("dynamics environment variable ferry_lease_")
                        && stderr.contains("another `ferry sync`"),
                    "{stderr}"
                );
                refused = true;
                continue;
            }
            child.start_kill().expect("SIGKILL");
            killed = true;
            break;
        }
        if child.try_wait().expect("poll ferry").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = child.wait().await.expect("wait for ferry");
    assert!(
        refused && killed && status.code().is_none(),
        "ferry was not killed during the contacts (exit {status:?}); sink {:?}",
        pair.sink_counts()
    );
    // The state is whole: the companies' watermark, none for the contacts.
    let kept = state(&pair).await;
    assert!(watermark(&kept, "companies").is_some(), "{kept:?}");
    assert_eq!(watermark(&kept, "contacts"), None, "{kept:?}");

    // The killed run's lease still holds: the next sync is refused until it expires.
    let (code, report, stderr) = run(&config).await;
    assert_eq!(code, 5, "{report:#}\n{stderr}");
    assert!(stderr.contains("until"), "{stderr}");
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;

    let (code, report, stderr) = run(&config).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let companies = object(&report, "companies");
    assert_eq!(companies["sync"]["read"], "incremental", "{companies:#}");
    assert_eq!(n(companies, "read"), 0, "{companies:#}");
    let contacts = object(&report, "contacts");
    assert_eq!(contacts["sync"]["read"], "full", "{contacts:#}");
    assert_eq!(n(contacts, "read"), totals[1] as u64);
    assert!(
        n(contacts, "updated") > 0,
        "the killed run's writes are updated: {contacts:#}"
    );
    assert_eq!(pair.sink_counts(), totals, "nothing duplicated");
    assert!(watermark(&state(&pair).await, "contacts").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_in_a_hubspot_sink_is_refused_naming_the_key() {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(3, 29, &Mess::none()));
    let pair = SyncPair::start("salesforce", org, "hubspot").await;
    let path = pair.config(&OBJECTS);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("state = {:?}", pair.state().display().to_string()),
        "state = \"sink\"",
    );
    std::fs::write(&path, text).unwrap();
    let (code, report, stderr) = run(&path).await;
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert!(
        stderr.contains("`sync.state`")
            && stderr.contains("hubspot sink")
            && stderr.contains("without creating schema"),
        "{stderr}"
    );
    assert_eq!(pair.sink_state.count("contacts"), 0, "nothing written");
}
