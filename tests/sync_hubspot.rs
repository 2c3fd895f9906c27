//! End-to-end: `ferry sync` through the real binary from a HubSpot emulator (the source, read
//! incrementally through CRM search) into a Salesforce emulator, every object. A first sync
//! moves everything; records of every object changed in HubSpot afterwards (a deal's contacts
//! among them) are exactly what the next sync reads and writes, verified; a sync with nothing
//! changed reads nothing and exits 0.

mod common;

use std::time::Duration;

use common::{
    SyncPair, all_credentials, assert_full_sync, assert_one_change_each, count as n, object,
    run_config,
};
use ferry_sandbox::hubspot;
use ferry_sandbox::seed::{Mess, generate};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];

/// Counts per object of `OBJECTS`, by `of`.
fn counts(of: &dyn Fn(&str) -> usize) -> Vec<usize> {
    OBJECTS.iter().map(|o| of(o)).collect()
}

/// A seeded hubspot account as the source, an empty Salesforce org as the sink.
type Pair = SyncPair<hubspot::Emulator>;

async fn pair(contacts: usize) -> Pair {
    let portal = hubspot::Emulator::new(hubspot::Options::default());
    portal.seed(&generate(contacts, 11, &Mess::none()));
    SyncPair::start("hubspot", portal, "salesforce").await
}

impl Pair {
    /// `method path` on the HubSpot emulator with `body`, as an app's call would.
    async fn hubspot(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.source.base_url))
            .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// The ids of the first 100 live records of `object`, in id order.
    async fn ids(&self, object: &str) -> Vec<String> {
        let list = self
            .hubspot(
                reqwest::Method::GET,
                &format!("/crm/v3/objects/{object}?limit=100"),
                None,
            )
            .await;
        list["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Sets `property` on record `id` of `object`, as a user's edit would.
    async fn edit(&self, object: &str, id: &str, property: &str, value: &str) {
        self.hubspot(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/{object}/{id}"),
            Some(serde_json::json!({"properties": {property: value}})),
        )
        .await;
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, serde_json::Value, String) {
    run_config(command, config, &all_credentials()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hubspot_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(40).await;
    let config = pair.config(&OBJECTS);
    let totals = counts(&|o| pair.account.count(o).expect("a HubSpot object"));

    // First sync: a full read of every object, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_full_sync(&first, &OBJECTS, &totals);
    assert_eq!(counts(&|o| pair.sink_state.count(o)), totals);

    // An hour on, one record of every object changes in HubSpot, and a deal gains a contact
    // (with its amount: an association alone does not move the last-modified time).
    pair.account.advance_clock(Duration::from_secs(3600));
    let (companies, contacts, deals, notes) = (
        pair.ids("companies").await,
        pair.ids("contacts").await,
        pair.ids("deals").await,
        pair.ids("notes").await,
    );
    pair.edit("companies", &companies[1], "city", "Gdańsk")
        .await;
    pair.edit("contacts", &contacts[2], "jobtitle", "Head of Sync")
        .await;
    pair.edit("deals", &deals[0], "amount", "4711").await;
    let newcomer = contacts.last().expect("contacts");
    pair.hubspot(
        reqwest::Method::PUT,
        &format!(
            "/crm/v4/objects/deals/{}/associations/default/contacts/{newcomer}",
            deals[0]
        ),
        None,
    )
    .await;
    pair.edit("notes", &notes[3], "hs_note_body", "<p>Synced again</p>")
        .await;
    pair.account.advance_clock(Duration::from_secs(3600));
    let (requests, throttled) = pair.account.request_counts();
    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    let requests_by_object = assert_one_change_each(&second, &OBJECTS);
    let (after, throttled_after) = pair.account.request_counts();
    assert_eq!(throttled_after, throttled, "no search refused");
    assert_eq!(
        counts(&|o| pair.sink_state.count(o)),
        totals,
        "nothing created"
    );
    eprintln!(
        "HubSpot requests, second sync (4 changes): {} in all, per object {requests_by_object:?}",
        after - requests
    );
    // Per object: HubSpot's clock and one search, and one association batch read per
    // reference (a contact's company; a deal's company and contacts; a note's three parents).
    // No SMS statuses are read: this account has no SMS subscription type (no SMS add-on),
    // as the consent guard's one look at its subscription types (before the run) found.
    let reading = [2u64, 3, 4, 5];

    // Nothing changed: nothing read, exit 0.
    let (requests, _) = pair.account.request_counts();
    let (code, third, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{third:#}\n{stderr}");
    assert_eq!(third["outcome"], "verified", "{third:#}");
    let mut idle_by_object = Vec::new();
    for name in OBJECTS {
        let o = object(&third, name);
        assert_eq!((n(o, "read"), n(o, "written")), (0, 0), "{o:#}");
        idle_by_object.push(n(&o["source_http"], "requests"));
    }
    let (after, _) = pair.account.request_counts();
    eprintln!(
        "HubSpot requests, third sync (no change): {} in all, per object {idle_by_object:?}",
        after - requests
    );
    assert_eq!(requests_by_object, reading, "reading the changes");
    // Reading nothing: the clock and one search, no association read.
    assert_eq!(idle_by_object, [2, 2, 2, 2], "reading no change");

    // The whole sink agrees with the source, the deal's new contact included.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}
