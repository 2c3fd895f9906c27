//! End-to-end: `ferry sync` through the real binary from a Zoho CRM emulator (the source, read
//! incrementally: COQL on `Modified_Time` for Accounts, Contacts and Deals, `If-Modified-Since`
//! for Notes) into a Salesforce emulator, every object. A first sync moves everything; records
//! of every object changed in Zoho afterwards (a deal's new contact role among them) are exactly
//! what the next sync reads and writes, verified; a sync with nothing changed reads nothing
//! and exits 0. A contact role changed on a deal nothing else changed on is not seen (Zoho does
//! not document that it modifies the deal) until the deal itself changes.

mod common;

use std::time::Duration;

use common::{
    SyncPair, all_credentials, assert_full_sync, assert_one_change_each, count as n, object,
    run_config,
};
use ferry_sandbox::VendorEmulator;
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho;
use serde_json::{Value as Json, json};

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];

/// Counts per object of `OBJECTS`, by `of`.
fn counts(of: &dyn Fn(&str) -> usize) -> Vec<usize> {
    OBJECTS.iter().map(|o| of(o)).collect()
}

/// A seeded zoho account as the source, an empty Salesforce org as the sink.
type Pair = SyncPair<zoho::Emulator>;

async fn pair(contacts: usize) -> Pair {
    let org = zoho::Emulator::new(zoho::Options::default());
    org.seed(&generate(contacts, 11, &Mess::none()));
    SyncPair::start("zoho", org, "salesforce").await
}

impl Pair {
    /// An access token for the org, as an app gets one.
    async fn token(&self) -> String {
        let answer: Json = reqwest::Client::new()
            .post(format!("{}/oauth/v2/token", self.source.base_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", zoho::ZOHO_CLIENT_ID),
                ("client_secret", zoho::ZOHO_CLIENT_SECRET),
                ("refresh_token", zoho::ZOHO_REFRESH_TOKEN),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        answer["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// `method path` on the Zoho emulator with `body`, as an app's call would.
    async fn zoho(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let token = self.token().await;
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.source.base_url))
            .header("Authorization", format!("Zoho-oauthtoken {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or(Json::Null)
    }

    /// The first 200 records of `module` in id order, with `fields`.
    async fn list(&self, module: &str, fields: &str) -> Vec<Json> {
        let path = format!("/crm/v8/{module}?fields={fields}&per_page=200&sort_order=asc");
        let body = self.zoho(reqwest::Method::GET, &path, None).await;
        body["data"].as_array().expect("data").clone()
    }

    /// Writes `record` through `path` and checks Zoho took it.
    async fn write(&self, method: reqwest::Method, path: &str, record: Json) {
        let answer = self
            .zoho(method, path, Some(json!({"data": [record]})))
            .await;
        assert_eq!(answer["data"][0]["status"], "success", "{answer}");
    }

    /// Gives `contact` a role on `deal`.
    async fn add_role(&self, deal: &str, contact: &str) {
        let path = format!("/crm/v8/Deals/{deal}/Contact_Roles/{contact}");
        self.write(
            reqwest::Method::PUT,
            &path,
            json!({"Contact_Role": "Purchasing"}),
        )
        .await;
    }
}

fn id(record: &Json) -> String {
    record["id"].as_str().expect("id").to_owned()
}

/// Runs `ferry <command> --config <config> --report json -q`.
async fn run(command: &str, config: &str) -> (i32, Json, String) {
    run_config(command, config, &all_credentials()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zoho_sync_moves_everything_then_exactly_what_changed_then_nothing() {
    let pair = pair(40).await;
    let config = pair.config(&OBJECTS);
    let totals = counts(&|o| VendorEmulator::count(&pair.account, o));

    // First sync: a full read of every object, everything created, watermarks set.
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    assert_full_sync(&first, &OBJECTS, &totals);
    assert_eq!(counts(&|o| pair.sink_state.count(o)), totals);

    // An hour on, one record of every object changes in Zoho, and the changed deal gains a
    // contact role. Another deal gains a role and nothing else: not seen.
    pair.account.advance_clock(Duration::from_secs(3600));
    let accounts = pair.list("Accounts", "Account_Name").await;
    let contacts = pair.list("Contacts", "Email").await;
    let deals = pair.list("Deals", "Deal_Name").await;
    let notes = pair.list("Notes", "Note_Title").await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    pair.write(
        post.clone(),
        "/crm/v8/Accounts/upsert",
        json!({"Account_Name": accounts[1]["Account_Name"], "Billing_City": "Gdańsk"}),
    )
    .await;
    pair.write(
        post,
        "/crm/v8/Contacts/upsert",
        json!({"Email": contacts[2]["Email"], "Title": "Head of Sync"}),
    )
    .await;
    let (deal, quiet_deal) = (id(&deals[0]), id(&deals[2]));
    pair.write(
        put.clone(),
        &format!("/crm/v8/Deals/{deal}"),
        json!({"Amount": 4711}),
    )
    .await;
    let newcomer = id(contacts.last().expect("contacts"));
    pair.add_role(&deal, &newcomer).await;
    pair.add_role(&quiet_deal, &newcomer).await;
    pair.write(
        put.clone(),
        &format!("/crm/v8/Notes/{}", id(&notes[3])),
        json!({"Note_Content": "Synced again"}),
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
    eprintln!(
        "Zoho requests, second sync (4 changes): {} in all, per object {requests_by_object:?}",
        pair.account.requests() - requests
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
        "Zoho requests, third sync (no change): {idle} in all, per object {idle_by_object:?}"
    );
    // Per object: Zoho's clock (GET /crm/v8/org's Date) and one read (COQL, or Notes' list
    // answering 304); deals also survey the org's currency (GET /crm/v8/org). Before them,
    // what every run asks: the org id, four field lists, the users, the Deals layouts and
    // their pipeline.
    assert_eq!(idle_by_object, [2, 2, 3, 2], "reading no change");
    assert_eq!(idle, 17, "every request the Zoho emulator saw");
    // Reading the changes: the same, and the changed deal's contact roles.
    assert_eq!(requests_by_object, [2, 2, 4, 2], "reading the changes");

    // Not seen so far: the sink's copy of the quiet deal lacks its new contact.
    let (code, unseen, stderr) = run("verify", &config).await;
    assert_eq!(code, 3, "{unseen:#}\n{stderr}");
    let failures = unseen["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{unseen:#}");
    assert_eq!(
        (&failures[0]["object"], &failures[0]["source_id"]),
        (&json!("deals"), &json!(quiet_deal)),
        "{unseen:#}"
    );
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with("differ: contacts")),
        "{unseen:#}"
    );

    // The quiet deal's new contact shows once the deal itself changes.
    pair.account.advance_clock(Duration::from_secs(60));
    pair.write(
        put,
        &format!("/crm/v8/Deals/{quiet_deal}"),
        json!({"Amount": 815}),
    )
    .await;
    pair.account.advance_clock(Duration::from_secs(3600));
    let (code, fourth, stderr) = run("sync", &config).await;
    assert_eq!(code, 0, "{fourth:#}\n{stderr}");
    let o = object(&fourth, "deals");
    assert_eq!((n(o, "read"), n(o, "updated")), (1, 1), "{o:#}");

    // The whole sink agrees with the source, both deals' new contacts included.
    let (code, verified, stderr) = run("verify", &config).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}
