//! End-to-end: `ferry sync` through the real binary from a Dataverse emulator (the source, read
//! incrementally by `modifiedon`) into a Salesforce emulator, every object. A first sync moves
//! everything; records of every object changed in Dataverse afterwards (a deal's contact among
//! them) are exactly what the next sync reads and writes, verified; a sync with nothing changed
//! reads nothing, exits 0 and costs Dataverse a known number of requests.

mod common;

use std::time::Duration;

use common::{
    SyncPair, all_credentials, assert_full_sync, assert_one_change_each, count as n, object,
    run_config,
};
use ferry_sandbox::dynamics;
use ferry_sandbox::seed::{Mess, generate};
use serde_json::{Value as Json, json};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];

/// Counts per object of `OBJECTS`, by `of`.
fn counts(of: &dyn Fn(&str) -> usize) -> Vec<usize> {
    OBJECTS.iter().map(|o| of(o)).collect()
}

/// A seeded dynamics account as the source, an empty Salesforce org as the sink.
type Pair = SyncPair<dynamics::Emulator>;

async fn pair(contacts: usize) -> Pair {
    let environment = dynamics::Emulator::new(dynamics::Options::default());
    environment.seed(&generate(contacts, 11, &Mess::none()));
    SyncPair::start("dynamics", environment, "salesforce").await
}

impl Pair {
    /// An application user's access token for the environment.
    async fn token(&self) -> String {
        let base = &self.source.base_url;
        let answer: Json = reqwest::Client::new()
            .post(format!("{base}/{}/oauth2/v2.0/token", dynamics::TENANT_ID))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", dynamics::CLIENT_ID),
                ("client_secret", dynamics::CLIENT_SECRET),
                ("scope", &format!("{base}/.default")),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        answer["access_token"].as_str().expect("token").to_owned()
    }

    /// `method path` on the Web API with `body`, as another application's call would.
    async fn web_api(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let mut request = reqwest::Client::new()
            .request(
                method,
                format!("{}/api/data/v9.2/{path}", self.source.base_url),
            )
            .bearer_auth(self.token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or(Json::Null)
    }

    /// The first 50 rows of entity set `set`, with `select`, in key order.
    async fn rows(&self, set: &str, select: &str) -> Vec<Json> {
        let page = self
            .web_api(
                reqwest::Method::GET,
                &format!("{set}?$select={select}&$top=50"),
                None,
            )
            .await;
        page["value"].as_array().expect("value").clone()
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, Json, String) {
    run_config(command, config, &all_credentials()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dynamics_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(40).await;
    let config = pair.config(&OBJECTS);
    let tables = ["account", "contact", "opportunity", "annotation"];
    let totals: Vec<usize> = tables.iter().map(|t| pair.account.count(t)).collect();

    // First sync: a full read of every object, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_full_sync(&first, &OBJECTS, &totals);
    assert_eq!(counts(&|o| pair.sink_state.count(o)), totals);

    // An hour on, one record of every object changes in Dataverse: an account's phone, a
    // contact's title, a deal gains a contact (its own `parentcontactid` lookup: the deal's
    // row is updated), a note's text.
    pair.account.advance_clock(Duration::from_secs(3600));
    let accounts = pair.rows("accounts", "accountid").await;
    let contacts = pair.rows("contacts", "contactid").await;
    let deals = pair
        .rows("opportunities", "opportunityid,_parentcontactid_value")
        .await;
    let notes = pair.rows("annotations", "annotationid").await;
    let id = |row: &Json, column: &str| row[column].as_str().expect("an id").to_owned();
    let deal = deals
        .iter()
        .find(|d| d["_parentcontactid_value"].is_null())
        .expect("a deal without a contact");
    let patch = reqwest::Method::PATCH;
    pair.web_api(
        patch.clone(),
        &format!("accounts({})", id(&accounts[1], "accountid")),
        Some(json!({"telephone1": "+48 58 555 0100"})),
    )
    .await;
    pair.web_api(
        patch.clone(),
        &format!("contacts({})", id(&contacts[2], "contactid")),
        Some(json!({"jobtitle": "Head of Sync"})),
    )
    .await;
    pair.web_api(
        patch.clone(),
        &format!("opportunities({})", id(deal, "opportunityid")),
        Some(json!({
            "parentcontactid@odata.bind": format!("/contacts({})", id(&contacts[5], "contactid"))
        })),
    )
    .await;
    pair.web_api(
        patch,
        &format!("annotations({})", id(&notes[3], "annotationid")),
        Some(json!({"notetext": "Synced again"})),
    )
    .await;
    pair.account.advance_clock(Duration::from_secs(3600));
    let requests = pair.account.requests();
    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    let requests_by_object = assert_one_change_each(&second, &OBJECTS);
    assert_eq!(
        counts(&|o| pair.sink_state.count(o)),
        totals,
        "nothing created"
    );
    let second_requests = pair.account.requests() - requests;
    eprintln!(
        "Dataverse requests, second sync (4 changes): {second_requests} in all, per object {requests_by_object:?}"
    );

    // Nothing changed: nothing read, exit 0.
    let requests = pair.account.requests();
    let (code, third, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{third:#}\n{stderr}");
    assert_eq!(third["outcome"], "verified", "{third:#}");
    let mut idle_by_object = Vec::new();
    for name in OBJECTS {
        let o = object(&third, name);
        assert_eq!((n(o, "read"), n(o, "written")), (0, 0), "{o:#}");
        idle_by_object.push(n(&o["source_http"], "requests"));
    }
    let idle = pair.account.requests() - requests;
    eprintln!(
        "Dataverse requests, third sync (no change): {idle} in all, per object {idle_by_object:?}"
    );
    // Per object: the environment's clock (`WhoAmI`) and one page of changes; the links come
    // with the records (lookup columns), so nothing else is read.
    assert_eq!(requests_by_object, [2, 2, 2, 2], "reading the changes");
    assert_eq!(idle_by_object, [2, 2, 2, 2], "reading no change");
    // The whole run, as the environment counted it: those 8; `WhoAmI` once more (the
    // organisation id, to refuse writing into the environment read); the column definitions
    // of each table (its attributes and their string, choice and date-time casts: 16); users,
    // business process flows and their stages (3), for owners and stages; and one count of the
    // contacts opted out of postal mail (`$count` under a `$filter`), an opt-out the Salesforce
    // sink cannot hold, asked before writing by the consent guard.
    assert_eq!(idle, 29, "the whole run, as the environment counted it");
    assert_eq!(
        second_requests, 29,
        "reading four changes costs no more requests"
    );

    // The whole sink agrees with the source, the deal's new contact included.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}
