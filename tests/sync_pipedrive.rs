//! End-to-end: `ferry sync` through the real binary from a Pipedrive emulator (the source, read
//! incrementally with `updated_since` on its lists) into a Salesforce emulator, every object. A
//! first sync moves everything; records of every object changed in Pipedrive afterwards (a
//! deal's new person and participant among them) are exactly what the next sync reads and
//! writes, verified; a sync with nothing changed reads nothing, exits 0, and costs the
//! Pipedrive account a known number of requests.

mod common;

use std::time::Duration;

use common::{
    SyncPair, all_credentials, assert_full_sync, assert_one_change_each, count as n, object,
    run_config,
};
use ferry_sandbox::pipedrive;
use ferry_sandbox::seed::{Mess, generate};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];

/// Counts per object of `OBJECTS`, by `of`.
fn counts(of: &dyn Fn(&str) -> usize) -> Vec<usize> {
    OBJECTS.iter().map(|o| of(o)).collect()
}

/// A seeded pipedrive account as the source, an empty Salesforce org as the sink.
type Pair = SyncPair<pipedrive::Emulator>;

async fn pair(contacts: usize) -> Pair {
    let account = pipedrive::Emulator::new(pipedrive::Options::default());
    account.seed(&generate(contacts, 11, &Mess::none()));
    SyncPair::start("pipedrive", account, "salesforce").await
}

impl Pair {
    /// `method path` on the Pipedrive emulator with `body`, as an app's call would: the
    /// answer's `data`.
    async fn pipedrive(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.source.base_url))
            .header("x-api-token", pipedrive::TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        let body: serde_json::Value = answer.json().await.expect("JSON");
        body["data"].clone()
    }

    /// The ids of the first 100 live records of the list at `path`, in id order.
    async fn ids(&self, path: &str) -> Vec<u64> {
        self.pipedrive(reqwest::Method::GET, path, None)
            .await
            .as_array()
            .expect("a list")
            .iter()
            .map(|r| r["id"].as_u64().expect("id"))
            .collect()
    }

    /// `PATCH` (v2) or `PUT` (v1 notes) `body` onto `path`, as a user's edit would.
    async fn edit(&self, path: &str, body: serde_json::Value) {
        let method = if path.starts_with("/v1/") {
            reqwest::Method::PUT
        } else {
            reqwest::Method::PATCH
        };
        self.pipedrive(method, path, Some(body)).await;
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, serde_json::Value, String) {
    run_config(command, config, &all_credentials()).await
}

/// Requests the Pipedrive account answers for a sync of the four objects with nothing changed
/// (`docs/connectors/pipedrive.md`, "Incremental reads"): the account id (`GET /v1/users/me`),
/// the three fields lists (organizations, persons, deals), the users, the pipelines and the
/// stages of each of the account's two; then per object the clock (`GET /v1/users/me`) and one
/// list.
const IDLE_SYNC_REQUESTS: u64 = 1 + 3 + 1 + 1 + 2 + 4 * 2;

#[tokio::test(flavor = "multi_thread")]
async fn a_pipedrive_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(40).await;
    let config = pair.config(&OBJECTS);
    let totals = counts(&|o| pair.account.count(o).expect("a Pipedrive object"));

    // First sync: a full read of every object, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_full_sync(&first, &OBJECTS, &totals);
    assert_eq!(counts(&|o| pair.sink_state.count(o)), totals);

    // An hour on, one record of every object changes in Pipedrive. The deal gets another
    // person and a participant too, with its value: a participant added alone does not move
    // a deal's update_time, so it would not be seen (see the connector's page).
    pair.account.advance_clock(Duration::from_secs(3600));
    let (companies, contacts, deals, notes) = (
        pair.ids("/api/v2/organizations").await,
        pair.ids("/api/v2/persons").await,
        pair.ids("/api/v2/deals").await,
        pair.ids("/v1/notes").await,
    );
    pair.edit(
        &format!("/api/v2/organizations/{}", companies[1]),
        serde_json::json!({"name": "Gdańsk Sync Ltd"}),
    )
    .await;
    pair.edit(
        &format!("/api/v2/persons/{}", contacts[2]),
        serde_json::json!({"name": "Head of Sync"}),
    )
    .await;
    let taking_part: Vec<u64> = pair
        .pipedrive(
            reqwest::Method::GET,
            &format!("/v1/deals/{}/participants", deals[0]),
            None,
        )
        .await
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| p["person"]["id"].as_u64().expect("person id"))
        .collect();
    let mut strangers = contacts.iter().rev().filter(|p| !taking_part.contains(p));
    let (newcomer, participant) = (
        *strangers.next().expect("a person"),
        *strangers.next().expect("another"),
    );
    pair.pipedrive(
        reqwest::Method::POST,
        &format!("/v1/deals/{}/participants", deals[0]),
        Some(serde_json::json!({"person_id": participant})),
    )
    .await;
    pair.edit(
        &format!("/api/v2/deals/{}", deals[0]),
        serde_json::json!({"value": 4711, "person_id": newcomer}),
    )
    .await;
    pair.edit(
        &format!("/v1/notes/{}", notes[3]),
        serde_json::json!({"content": "<p>Synced again</p>"}),
    )
    .await;
    pair.account.advance_clock(Duration::from_secs(3600));
    let (requests, throttled) = pair.account.request_counts();
    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    let requests_by_object = assert_one_change_each(&second, &OBJECTS);
    let (after, throttled_after) = pair.account.request_counts();
    assert_eq!(throttled_after, throttled, "nothing refused");
    assert_eq!(
        counts(&|o| pair.sink_state.count(o)),
        totals,
        "nothing created"
    );
    eprintln!(
        "Pipedrive requests, second sync (4 changes): {} in all, per object {requests_by_object:?}",
        after - requests
    );
    // Per object: Pipedrive's clock and one list; the deal's participants besides.
    assert_eq!(requests_by_object, [2, 2, 3, 2], "reading the changes");

    // Nothing changed: nothing read, exit 0.
    let (requests, _) = pair.account.request_counts();
    let (code, third, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{third:#}\n{stderr}");
    assert_eq!(third["outcome"], "verified", "{third:#}");
    let mut idle_by_object = Vec::new();
    for name in OBJECTS {
        let o = object(&third, name);
        assert_eq!((n(o, "read"), n(o, "written")), (0, 0), "{o:#}");
        assert_eq!(o["sync"]["read"], "incremental", "{o:#}");
        idle_by_object.push(n(&o["source_http"], "requests"));
    }
    let (after, _) = pair.account.request_counts();
    eprintln!(
        "Pipedrive requests, third sync (no change): {} in all, per object {idle_by_object:?}",
        after - requests
    );
    // Reading nothing: the clock and one list per object.
    assert_eq!(idle_by_object, [2, 2, 2, 2], "reading no change");
    assert_eq!(after - requests, IDLE_SYNC_REQUESTS, "the whole sync");

    // The whole sink agrees with the source, the deal's new person and participant included.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}
