//! End-to-end: `ferry sync` through the real binary from a Salesforce emulator (the source, read
//! incrementally by `SystemModstamp`) into a HubSpot emulator, every object. A first sync moves
//! everything; records of every object changed in Salesforce afterwards are exactly what the
//! next sync reads and writes, verified, among them a deal whose only change is a contact role
//! added to it (a row of its own, which does not move the opportunity's stamp); a sync with
//! nothing changed reads nothing, exits 0 and costs Salesforce a known number of requests.

mod common;

use std::time::Duration;

use common::{
    SyncPair, all_credentials, assert_full_sync, assert_one_change_each, count as n, object,
    run_config,
};
use ferry_sandbox::salesforce;
use ferry_sandbox::seed::{Mess, generate};
use serde_json::{Value as Json, json};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];
const SOBJECTS: [&str; 4] = ["Account", "Contact", "Opportunity", "Note"];

/// A seeded Salesforce org as the source, an empty HubSpot account as the sink.
type Pair = SyncPair<salesforce::Emulator>;

async fn pair(contacts: usize) -> Pair {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(contacts, 17, &Mess::none()));
    SyncPair::start("salesforce", org, "hubspot").await
}

impl Pair {
    /// `method path` on the org's REST API (under `/services/data/v62.0/`) with `body`, as
    /// another app of the org would call it.
    async fn rest(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        self.call(method, path, &[], body).await
    }

    /// The records `soql` selects (one page).
    async fn soql(&self, soql: &str) -> Vec<Json> {
        let rows = self
            .call(reqwest::Method::GET, "query", &[("q", soql)], None)
            .await;
        rows["records"].as_array().expect("records").clone()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Json>,
    ) -> Json {
        let path = format!("/services/data/v62.0/{path}");
        common::salesforce_call(&self.source.base_url, method, &path, query, body).await
    }

    /// The `Id`s of the first 50 records of `sobject`, in id order.
    async fn ids(&self, sobject: &str) -> Vec<String> {
        self.soql(&format!("SELECT Id FROM {sobject} ORDER BY Id LIMIT 50"))
            .await
            .iter()
            .map(|r| r["Id"].as_str().expect("Id").to_owned())
            .collect()
    }

    /// Sets `values` on record `id` of `sobject`, as a user's edit would.
    async fn edit(&self, sobject: &str, id: &str, values: Json) {
        let mut record = json!({"attributes": {"type": sobject}, "id": id});
        if let (Some(record), Some(values)) = (record.as_object_mut(), values.as_object()) {
            record.extend(values.clone());
        }
        let answer = self
            .rest(
                reqwest::Method::PATCH,
                "composite/sobjects",
                Some(json!({"allOrNone": true, "records": [record]})),
            )
            .await;
        assert_eq!(answer[0]["success"], true, "{answer}");
    }
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, Json, String) {
    run_config(command, config, &all_credentials()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_salesforce_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(40).await;
    let config = pair.config(&OBJECTS);
    let totals: Vec<usize> = SOBJECTS.iter().map(|s| pair.account.count(s)).collect();

    // First sync: a full read of every object, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_full_sync(&first, &OBJECTS, &totals);
    let in_sink = |o: &str| pair.sink_state.count(o);
    assert_eq!(OBJECTS.map(in_sink).to_vec(), totals);

    // An hour on, one record of every object changes in Salesforce: an account's phone, a
    // contact's title, a note's body, and a deal without contacts gains one, through a
    // contact role alone (its own row: the opportunity is not touched).
    pair.account.advance_clock(Duration::from_secs(3600));
    let (accounts, contacts, notes) = (
        pair.ids("Account").await,
        pair.ids("Contact").await,
        pair.ids("Note").await,
    );
    pair.edit("Account", &accounts[1], json!({"Phone": "+48 58 555 0100"}))
        .await;
    pair.edit("Contact", &contacts[2], json!({"Title": "Head of Sync"}))
        .await;
    pair.edit("Note", &notes[3], json!({"Body": "Synced again"}))
        .await;
    let roles = pair
        .soql("SELECT OpportunityId FROM OpportunityContactRole")
        .await;
    let with_roles: Vec<&str> = roles
        .iter()
        .filter_map(|r| r["OpportunityId"].as_str())
        .collect();
    let deals = pair.ids("Opportunity").await;
    let lonely = deals
        .iter()
        .find(|d| !with_roles.contains(&d.as_str()))
        .expect("a deal without contacts");
    let created = pair
        .rest(
            reqwest::Method::POST,
            "composite/sobjects",
            Some(json!({"allOrNone": true, "records": [{
                "attributes": {"type": "OpportunityContactRole"},
                "OpportunityId": lonely, "ContactId": contacts[5], "IsPrimary": true,
            }]})),
        )
        .await;
    assert_eq!(created[0]["success"], true, "{created}");
    pair.account.advance_clock(Duration::from_secs(3600));

    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    let reading = assert_one_change_each(&second, &OBJECTS);
    assert_eq!(
        OBJECTS.map(in_sink).to_vec(),
        totals,
        "nothing created in the sink"
    );
    eprintln!("Salesforce requests, second sync (4 changes), per object {reading:?}");

    // Nothing changed: nothing read, exit 0.
    let (code, third, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{third:#}\n{stderr}");
    assert_eq!(third["outcome"], "verified", "{third:#}");
    let mut idle = Vec::new();
    for name in OBJECTS {
        let o = object(&third, name);
        assert_eq!((n(o, "read"), n(o, "written")), (0, 0), "{o:#}");
        idle.push(n(&o["source_http"], "requests"));
    }
    eprintln!("Salesforce requests, third sync (no change), per object {idle:?}");
    // Per object: the org's clock and one query (the mapped fields are spelled, and the
    // org's currencies known, from the describes the field plan read); deals one more: the
    // contact roles changed since (none).
    assert_eq!(idle, [2, 2, 3, 2], "reading no change");

    // The whole sink agrees with the source, the deal's new contact included.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}
