//! The emulator over real HTTP on loopback.

use std::net::SocketAddr;

use serde_json::{Value as Json, json};

use super::*;
use crate::seed::{Mess, generate};

const V: &str = "/services/data/v62.0";

/// An org served on loopback with a session (shared with the Bulk API tests).
pub(super) struct Org {
    pub(super) emulator: Emulator,
    pub(super) running: crate::Running,
    pub(super) http: reqwest::Client,
    pub(super) token: String,
}

pub(super) async fn org(options: Options) -> Org {
    let emulator = Emulator::new(options);
    let running = crate::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let http = reqwest::Client::new();
    let mut org = Org {
        emulator,
        running,
        http,
        token: String::new(),
    };
    let (status, body) = org
        .token(crate::SALESFORCE_CLIENT_ID, crate::SALESFORCE_CLIENT_SECRET)
        .await;
    assert_eq!(status, 200, "{body}");
    org.token = body["access_token"].as_str().expect("token").to_owned();
    org
}

impl Org {
    async fn token(&self, id: &str, secret: &str) -> (u16, Json) {
        let resp = self
            .http
            .post(format!("{}/services/oauth2/token", self.running.base_url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> (u16, reqwest::header::HeaderMap, Json) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.running.base_url)
        };
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Json::Null))
    }

    async fn upsert(&self, object: &str, records: Json, all_or_none: bool) -> (u16, Json) {
        let (status, _, body) = self
            .call(
                reqwest::Method::PATCH,
                &format!("{V}/composite/sobjects/{object}/Ferry_Source_Id__c"),
                Some(json!({"allOrNone": all_or_none, "records": records})),
            )
            .await;
        (status, body)
    }

    async fn query(&self, soql: &str) -> (u16, Json) {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{V}/query", self.running.base_url),
            &[("q", soql)],
        )
        .expect("url");
        let (status, _, body) = self.call(reqwest::Method::GET, url.as_str(), None).await;
        (status, body)
    }
}

fn contact(ext: &str, last: Option<&str>) -> Json {
    let mut c = json!({"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": ext, "FirstName": "Rory", "Email": format!("rory{ext}@chilton.example.org")});
    if let Some(last) = last {
        c["LastName"] = json!(last);
    }
    c
}

#[tokio::test]
async fn token_flow_and_invalid_session() {
    let org = org(Options::default()).await;
    let (status, body) = org
        .token(crate::SALESFORCE_CLIENT_ID, crate::SALESFORCE_CLIENT_SECRET)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["instance_url"], json!(org.running.base_url));
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["issued_at"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok())
    );
    assert!(
        body.get("expires_in").is_none(),
        "client credentials responses carry no expiry"
    );

    let (status, body) = org.token(crate::SALESFORCE_CLIENT_ID, "wrong").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "invalid client credentials"})
    );

    // No token, a bad token, an expired one: 401 with Salesforce's body and no usage counted.
    let resp = org
        .http
        .get(format!("{}{V}/limits", org.running.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Json = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    let (status, headers, body) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["DailyApiRequests"]["Max"], 100_000);
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/100000");
    org.emulator.expire_tokens();
    let (status, _, body) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");

    // The versions list needs no auth and carries no usage header.
    let resp = org
        .http
        .get(format!("{}/services/data/", org.running.base_url))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("sforce-limit-info").is_none());
    let versions: Json = resp.json().await.unwrap();
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "62.0" && v["label"] == "Winter '25")
    );
}

#[tokio::test]
async fn token_lifetime_expires_sessions() {
    let org = org(Options {
        token_lifetime: Some(Duration::from_millis(50)),
        ..Options::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let (status, _, _) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn upsert_creates_then_updates_without_duplicates() {
    let org = org(Options::default()).await;
    let (status, body) = org.upsert("Account", json!([{"attributes": {"type": "Account"}, "Name": "Acme", "Ferry_Source_Id__c": "c1"}]), false).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["created"], true);
    let records = json!([
        {"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "1", "LastName": "Gilmore", "Title": "  Editor  ",
         "HasOptedOutOfEmail": true, "Account": {"Ferry_Source_Id__c": "c1"}},
        contact("2", Some("Hayden")),
    ]);
    let (status, first) = org.upsert("Contact", records.clone(), false).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert!(
        first
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true && r["created"] == true)
    );
    let (_, second) = org.upsert("Contact", records, false).await;
    assert!(
        second
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true && r["created"] == false)
    );
    assert_eq!(first[0]["id"], second[0]["id"]);
    assert_eq!(org.emulator.count("Contact"), 2);

    let stored = org.emulator.record_by_external_id("Contact", "1").unwrap();
    assert_eq!(stored["Title"], "Editor", "Salesforce trims string values");
    assert_eq!(stored["HasOptedOutOfEmail"], true);
    assert!(
        stored["AccountId"]
            .as_str()
            .is_some_and(|id| id.starts_with("001"))
    );
    assert!(
        stored["CreatedDate"]
            .as_str()
            .is_some_and(|d| d.ends_with("+0000"))
    );

    // null clears a field; a missing parent is a per-record error.
    let (_, body) = org
        .upsert(
            "Contact",
            json!([
                {"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "1", "Title": null, "AccountId": null},
                {"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "3", "LastName": "X", "Account": {"Ferry_Source_Id__c": "123"}},
            ]),
            false,
        )
        .await;
    assert_eq!(body[0]["success"], true);
    assert_eq!(body[1]["success"], false);
    assert_eq!(body[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(
        body[1]["errors"][0]["message"],
        "Foreign key external ID: 123 not found for field Ferry_Source_Id__c in entity Account"
    );
    let stored = org.emulator.record_by_external_id("Contact", "1").unwrap();
    assert_eq!(stored["Title"], Json::Null);
    assert_eq!(stored["AccountId"], Json::Null);
    assert_eq!(stored["LastName"], "Gilmore", "fields not sent are kept");
}

#[tokio::test]
async fn per_record_errors_and_all_or_none() {
    let org = org(Options::default()).await;
    let mut bad_email = contact("2", Some("Gilmore"));
    bad_email["Email"] = json!("two@@example.com");
    let mut long_title = contact("3", Some("Gilmore"));
    long_title["Title"] = json!("Senior Vice President of ".repeat(8));
    let records = json!([
        contact("1", None),
        bad_email,
        long_title,
        contact("4", Some("Ok")),
        contact("4", Some("Again"))
    ]);
    let (status, body) = org.upsert("Contact", records.clone(), false).await;
    assert_eq!(status, 200);
    let err = |i: usize| body[i]["errors"][0].clone();
    assert_eq!(err(0)["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(err(0)["message"], "Required fields are missing: [LastName]");
    assert_eq!(err(0)["fields"], json!(["LastName"]));
    assert_eq!(err(1)["statusCode"], "INVALID_EMAIL_ADDRESS");
    assert!(
        err(1)["message"]
            .as_str()
            .unwrap()
            .contains("two@@example.com"),
        "Salesforce quotes the value"
    );
    assert_eq!(err(2)["statusCode"], "STRING_TOO_LONG");
    assert_eq!(err(2)["fields"], json!(["Title"]));
    assert_eq!(body[3]["success"], true);
    assert_eq!(err(4)["statusCode"], "DUPLICATE_EXTERNAL_ID");
    assert_eq!(org.emulator.count("Contact"), 1);

    // allOrNone: nothing written, the valid records report the rollback.
    let records = json!([contact("10", Some("Fine")), contact("11", None)]);
    let (_, body) = org.upsert("Contact", records, true).await;
    assert_eq!(body[0]["success"], false);
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(org.emulator.count("Contact"), 1);

    // Whole-request errors: unknown field, type mismatch, too many records, unknown ext field.
    let mut unknown = contact("5", Some("X"));
    unknown["Shoe_Size__c"] = json!(9);
    let (status, body) = org.upsert("Contact", json!([unknown]), false).await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("INVALID_FIELD"))
    );
    let (status, body) = org
        .upsert(
            "Contact",
            json!([{"attributes": {"type": "Account"}, "Name": "x", "Ferry_Source_Id__c": "9"}]),
            false,
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("INVALID_TYPE"))
    );
    let many: Vec<Json> = (0..201)
        .map(|i| contact(&format!("m{i}"), Some("X")))
        .collect();
    let (status, body) = org.upsert("Contact", Json::Array(many), false).await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("EXCEEDED_ID_LIMIT"))
    );
    let (status, _, body) = org
        .call(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects/Contact/Nope__c"),
            Some(json!({"records": []})),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (404, json!("NOT_FOUND"))
    );
}

#[tokio::test]
async fn create_and_update_by_id() {
    let org = org(Options::default()).await;
    let (status, _, body) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "Acme"},
                {"attributes": {"type": "Contact"}, "LastName": "Johnson"},
            ]})),
        )
        .await;
    assert_eq!(status, 200);
    let contact_id = body[1]["id"].as_str().unwrap().to_owned();
    assert!(contact_id.starts_with("003") && contact_id.len() == 18);
    let (_, _, body) = org
        .call(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects"),
            Some(json!({"records": [
                {"attributes": {"type": "Contact"}, "id": contact_id, "FirstName": "Kim"},
                {"attributes": {"type": "Contact"}, "id": "003000000000000AAA", "FirstName": "X"},
            ]})),
        )
        .await;
    assert_eq!(body[0]["success"], true);
    assert_eq!(body[1]["errors"][0]["statusCode"], "MALFORMED_ID");
    let (_, body) = org
        .query(&format!(
            "SELECT FirstName, LastName FROM Contact WHERE Id = '{contact_id}'"
        ))
        .await;
    assert_eq!(body["records"][0]["FirstName"], "Kim");
}

#[tokio::test]
async fn query_pages_to_the_end_with_next_records_url() {
    let org = org(Options::default()).await;
    let seeded = org.emulator.seed(&generate(2_600, 3, &Mess::default()));
    assert!(seeded.skipped_contacts > 0 && seeded.contacts + seeded.skipped_contacts == 2_600);
    let total = org.emulator.count("Contact");

    let (status, body) = org.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(status, 200);
    assert_eq!(body["totalSize"], total);

    let mut url = reqwest::Url::parse_with_params(
        &format!("{}{V}/query", org.running.base_url),
        &[(
            "q",
            "SELECT Id, LastName, Account.Name, CreatedDate FROM Contact ORDER BY LastName",
        )],
    )
    .unwrap()
    .to_string();
    let (mut seen, mut pages) = (Vec::new(), 0);
    loop {
        let resp = org
            .http
            .get(&url)
            .bearer_auth(&org.token)
            .header("Sforce-Query-Options", "batchSize=500")
            .send()
            .await
            .unwrap();
        let body: Json = resp.json().await.unwrap();
        assert_eq!(body["totalSize"], total);
        pages += 1;
        for r in body["records"].as_array().unwrap() {
            assert_eq!(r["attributes"]["type"], "Contact");
            assert!(r["Account"].is_null() || r["Account"]["Name"].is_string());
            seen.push(r["LastName"].as_str().unwrap().to_lowercase());
        }
        match body["nextRecordsUrl"].as_str() {
            Some(next) => {
                assert_eq!(body["done"], false);
                url = format!("{}{next}", org.running.base_url);
            }
            None => {
                assert_eq!(body["done"], true);
                break;
            }
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(pages, total.div_ceil(500));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "ORDER BY holds across pages"
    );

    let (status, body) = org
        .query("SELECT Id FROM Contact WHERE LastName LIKE 'G%'")
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("MALFORMED_QUERY"))
    );
    let (status, body) = org.query("SELECT Shoe_Size__c FROM Contact").await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("INVALID_FIELD"))
    );
}

#[tokio::test]
async fn query_by_external_id_with_relationship_fields() {
    let org = org(Options::default()).await;
    org.upsert("Account", json!([{"attributes": {"type": "Account"}, "Name": "Acme", "Ferry_Source_Id__c": "c'1", "NumberOfEmployees": 12, "AnnualRevenue": 1000.5}]), false).await;
    org.upsert("Contact", json!([
        {"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "a\\b", "LastName": "A", "Account": {"Ferry_Source_Id__c": "c'1"}},
        {"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "x", "LastName": "B"},
    ]), false)
    .await;
    let (status, body) = org
        .query("SELECT LastName, Ferry_Source_Id__c, Account.Ferry_Source_Id__c FROM Contact WHERE Ferry_Source_Id__c IN ('a\\\\b', 'x', 'nope')")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 2);
    assert_eq!(body["records"][0]["Account"]["Ferry_Source_Id__c"], "c'1");
    assert_eq!(body["records"][1]["Account"], Json::Null);
    let (_, body) = org.query("SELECT NumberOfEmployees, AnnualRevenue FROM Account WHERE Ferry_Source_Id__c = 'c\\'1'").await;
    assert_eq!(body["records"][0]["NumberOfEmployees"], 12);
    assert_eq!(body["records"][0]["AnnualRevenue"], 1000.5);
}

#[tokio::test]
async fn describe_with_and_without_external_id_field() {
    let with = org(Options::default()).await;
    let (status, _, body) = with
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Contact/describe"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let field = |body: &Json, name: &str| {
        body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
    };
    let ext = field(&body, "Ferry_Source_Id__c").unwrap();
    assert_eq!(
        (
            ext["externalId"].clone(),
            ext["unique"].clone(),
            ext["length"].clone()
        ),
        (json!(true), json!(true), json!(255))
    );
    let last = field(&body, "LastName").unwrap();
    assert_eq!(
        (last["nillable"].clone(), last["length"].clone()),
        (json!(false), json!(80))
    );
    assert_eq!(
        field(&body, "AccountId").unwrap()["relationshipName"],
        "Account"
    );

    let without = org(Options {
        external_id_fields: false,
        ..Options::default()
    })
    .await;
    let (_, _, body) = without
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Account/describe"),
            None,
        )
        .await;
    assert!(field(&body, "Ferry_Source_Id__c").is_none());
    assert_eq!(field(&body, "Name").unwrap()["nillable"], false);
    let (status, _, _) = without
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Widget__c/describe"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = without
        .call(reqwest::Method::GET, "/services/data/v12.0/limits", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn daily_limit_gives_403_request_limit_exceeded() {
    let org = org(Options {
        daily_api_limit: 3,
        ..Options::default()
    })
    .await;
    for i in 1..=3 {
        let (status, headers, _) = org
            .call(reqwest::Method::GET, &format!("{V}/limits"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["sforce-limit-info"],
            format!("api-usage={i}/3").as_str()
        );
    }
    let (status, headers, body) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert!(
        headers.get("retry-after").is_none(),
        "Salesforce sends no Retry-After"
    );
}

#[tokio::test]
async fn injected_throttling_uses_salesforce_error_shape() {
    let faults = Faults {
        throttle_every: Some(2),
        retry_after_secs: Some(1),
        ..Faults::default()
    };
    let org = org(Options {
        faults,
        ..Options::default()
    })
    .await; // the token call was request 1
    let (status, headers, body) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
}

#[test]
fn release_labels() {
    assert_eq!(release_label(62), "Winter '25");
    assert_eq!(release_label(66), "Spring '26");
    assert_eq!(release_label(59), "Winter '24");
}

/// Seeding speed is a benchmark matter (`a_million_contacts_stay_fast`, ignored, times a
/// release build; `ferry-bench` starts `ferry sandbox` with the data it measures): this checks a
/// large seed is stored whole. A timed assertion here would fail on a loaded machine.
#[test]
fn seeding_many_records_stores_them_all() {
    // 200k keeps CI fast; `a_million_contacts_stay_fast` (ignored) covers the full size.
    let data = generate(200_000, 9, &Mess::default());
    let emulator = Emulator::new(Options::default());
    let seeded = emulator.seed(&data);
    assert_eq!(seeded.accounts, 40_000);
    assert_eq!(seeded.opportunities, 50_000);
}

/// `cargo test -p ferry-sandbox --release -- --ignored a_million`: a million contacts in memory,
/// then writes and indexed reads stay fast.
#[tokio::test]
#[ignore = "large: run in release mode"]
async fn a_million_contacts_stay_fast() {
    let org = org(Options {
        daily_api_limit: u64::MAX,
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let seeded = org.emulator.seed(&generate(1_000_000, 1, &Mess::default()));
    let seeding = started.elapsed();
    assert!(seeded.contacts > 990_000);
    let started = Instant::now();
    for batch in 0..50 {
        let records: Vec<Json> = (0..200)
            .map(|i| contact(&format!("{batch}-{i}"), Some("Gilmore")))
            .collect();
        let (status, _) = org.upsert("Contact", Json::Array(records), false).await;
        assert_eq!(status, 200);
    }
    let writes = started.elapsed();
    let started = Instant::now();
    let ids: Vec<String> = (0..200).map(|i| format!("'7-{i}'")).collect();
    let (_, body) = org
        .query(&format!(
            "SELECT Id, LastName FROM Contact WHERE Ferry_Source_Id__c IN ({})",
            ids.join(",")
        ))
        .await;
    assert_eq!(body["totalSize"], 200);
    let indexed = started.elapsed();
    let started = Instant::now();
    let (_, body) = org
        .query("SELECT COUNT() FROM Contact WHERE Email != null")
        .await;
    assert!(body["totalSize"].as_u64().unwrap() > 900_000);
    let scan = started.elapsed();
    // A deal's contact roles and a record's notes, 200 parents at a time, as a reader asks.
    let started = Instant::now();
    let deals: Vec<String> = (0..200)
        .map(|i| format!("'{}'", schema::record_id(ObjectKind::Opportunity, i * 7)))
        .collect();
    let (_, roles) = org
        .query(&format!(
            "SELECT ContactId, IsPrimary FROM OpportunityContactRole WHERE OpportunityId IN ({})",
            deals.join(",")
        ))
        .await;
    assert!(roles["totalSize"].as_u64().unwrap() > 0);
    let (_, notes) = org
        .query(&format!(
            "SELECT Title FROM Note WHERE ParentId IN ({})",
            deals.join(",")
        ))
        .await;
    assert!(notes["totalSize"].as_u64().is_some());
    let children = started.elapsed();
    println!(
        "seed {seeding:?} ({} deals, {} roles, {} notes), 10k upserts {writes:?}, indexed query \
         {indexed:?}, full scan {scan:?}, roles and notes of 200 deals {children:?}",
        seeded.opportunities, seeded.contact_roles, seeded.notes
    );
    assert!(indexed < Duration::from_millis(200) && writes < Duration::from_secs(10));
    assert!(children < Duration::from_millis(400));
}

#[tokio::test]
async fn order_by_id_pages_seeded_records_and_locators_expire() {
    let org = org(Options {
        // Long enough to page through everything on a loaded machine, short enough to wait out.
        query_locator_lifetime: Duration::from_secs(3),
        ..Options::default()
    })
    .await;
    let data = generate(4_100, 5, &Mess::none());
    let seeded = org.emulator.seed(&data);
    assert_eq!(seeded.skipped_contacts, 0);

    let (status, accounts) = org.query("SELECT Id FROM Account ORDER BY Id").await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts["done"], true);
    let account_ids: Vec<&str> = accounts["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    assert_eq!(account_ids.len(), data.companies.len());

    let soql = "SELECT Id, AccountId, HasOptedOutOfEmail, CreatedDate, LastModifiedDate FROM Contact ORDER BY Id";
    let (status, first) = org.query(soql).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["totalSize"], data.contacts.len());
    assert_eq!(first["done"], false);
    let mut records: Vec<Json> = first["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2000, "default batch size");
    let mut next = first["nextRecordsUrl"].as_str().map(str::to_owned);
    let second_url = next.clone().unwrap();
    while let Some(url) = next {
        let (status, _, page) = org.call(reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200, "{page}");
        records.extend(page["records"].as_array().unwrap().iter().cloned());
        next = page["nextRecordsUrl"].as_str().map(str::to_owned);
    }
    assert_eq!(records.len(), data.contacts.len());
    let ids: Vec<&str> = records.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert!(
        ids.windows(2).all(
            |w| schema::parse_record_id(ObjectKind::Contact, w[0]).unwrap()
                < schema::parse_record_id(ObjectKind::Contact, w[1]).unwrap()
        ),
        "ascending ids across pages"
    );
    for (r, c) in records.iter().zip(&data.contacts) {
        assert_eq!(r["CreatedDate"], schema::format_datetime(c.created_at_ms));
        assert_eq!(
            r["LastModifiedDate"],
            schema::format_datetime(c.updated_at_ms)
        );
        assert_eq!(r["HasOptedOutOfEmail"], c.email_opt_out);
        assert_eq!(r["AccountId"].as_str(), c.company.map(|k| account_ids[k]));
    }
    let (_, desc) = org
        .query("SELECT Id FROM Contact ORDER BY Id DESC LIMIT 1")
        .await;
    assert_eq!(desc["records"][0]["Id"].as_str(), ids.last().copied());

    // Locators expire a fixed time after their query, and on demand.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let (status, _, body) = org.call(reqwest::Method::GET, &second_url, None).await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("INVALID_QUERY_LOCATOR"))
    );
    let (_, fresh) = org.query(soql).await;
    org.emulator.expire_query_locators();
    let url = fresh["nextRecordsUrl"].as_str().unwrap();
    let (status, _, body) = org.call(reqwest::Method::GET, url, None).await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("INVALID_QUERY_LOCATOR"))
    );
}

/// Write results and query pages are serialised straight from the store; their bytes must stay
/// what a `serde_json::Value` of the same answer gives (sorted keys, compact), as before.
#[tokio::test]
async fn bodies_are_byte_for_byte_what_a_value_tree_gives() {
    let org = org(Options::default()).await;
    let raw = |path: String| {
        let request = org.http.get(path).bearer_auth(&org.token);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let same = |raw: &str| {
        let tree: Json = serde_json::from_str(raw).unwrap();
        assert_eq!(raw, serde_json::to_string(&tree).unwrap());
    };
    let (status, _) = org
        .upsert(
            "Account",
            json!([{"attributes": {"type": "Account"}, "Name": "Acme", "Ferry_Source_Id__c": "a1", "AnnualRevenue": 12.5}]),
            false,
        )
        .await;
    assert_eq!(status, 200);
    let mut records = vec![contact("c1", Some("Gilmore")), contact("c2", None)];
    records[0]["Account"] = json!({"Ferry_Source_Id__c": "a1"});
    let response = org
        .http
        .patch(format!(
            "{}{V}/composite/sobjects/Contact/Ferry_Source_Id__c",
            org.running.base_url
        ))
        .bearer_auth(&org.token)
        .json(&json!({"records": records}))
        .send()
        .await
        .unwrap();
    same(&response.text().await.unwrap());
    for soql in [
        "SELECT FirstName, LastName, Email, HasOptedOutOfEmail, Ferry_Source_Id__c, Account.Ferry_Source_Id__c, Account.Name, CreatedDate FROM Contact WHERE Ferry_Source_Id__c IN ('c1', 'c2')",
        "SELECT Id, Name, AnnualRevenue, NumberOfEmployees FROM Account",
        "SELECT COUNT() FROM Contact WHERE Ferry_Source_Id__c != null",
    ] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{V}/query", org.running.base_url),
            &[("q", soql)],
        )
        .unwrap();
        same(&raw(url.to_string()).await);
    }
}

#[tokio::test]
async fn userinfo_names_the_org_of_the_token_and_each_emulator_is_an_org() {
    let org_a = org(Options::default()).await;
    let (status, _, info) = org_a
        .call(reqwest::Method::GET, "/services/oauth2/userinfo", None)
        .await;
    assert_eq!(status, 200, "{info}");
    let id = info["organization_id"].as_str().expect("organization_id");
    assert_eq!(id, org_a.emulator.org_id());
    assert!(id.starts_with("00D") && id.len() == 18, "{id}");
    assert!(info["sub"].as_str().is_some_and(|s| s.contains(id)));
    // The token's identity URL names the same org; the token starts with its 15-character id.
    let (_, token) = org_a
        .token(crate::SALESFORCE_CLIENT_ID, crate::SALESFORCE_CLIENT_SECRET)
        .await;
    assert!(token["id"].as_str().is_some_and(|u| u.contains(id)));
    assert!(
        token["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with(&id[..15]))
    );
    // Not counted against the API allocation.
    assert_eq!(org_a.emulator.api_usage(), 0);
    // Without a valid token: the REST API's 401.
    org_a.emulator.expire_tokens();
    let (status, _, body) = org_a
        .call(reqwest::Method::GET, "/services/oauth2/userinfo", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");

    let org_b = org(Options::default()).await;
    assert_ne!(org_b.emulator.org_id(), id, "two emulators, two orgs");
    let same = org(Options {
        org_id: Some(id.to_owned()),
        ..Options::default()
    })
    .await;
    assert_eq!(same.emulator.org_id(), id, "an emulator claiming the org");
}

/// The fields of a describe answer by name.
fn described(body: &Json, name: &str) -> Option<Json> {
    body["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}

#[tokio::test]
async fn describe_lists_the_seeded_custom_fields_with_types_and_picklists() {
    let org = org(Options::default()).await;
    let (_, _, account) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Account/describe"),
            None,
        )
        .await;
    let region = described(&account, "Region__c").unwrap();
    assert_eq!(
        (
            &region["type"],
            &region["length"],
            &region["custom"],
            &region["createable"]
        ),
        (&json!("string"), &json!(255), &json!(true), &json!(true))
    );
    let seats = described(&account, "Seats__c").unwrap();
    assert_eq!(
        (
            &seats["type"],
            &seats["precision"],
            &seats["scale"],
            &seats["soapType"]
        ),
        (
            &json!("double"),
            &json!(18),
            &json!(0),
            &json!("xsd:double")
        )
    );
    let tier = described(&account, "Tier__c").unwrap();
    assert_eq!(tier["type"], "picklist");
    assert_eq!(tier["restrictedPicklist"], true);
    let values: Vec<(&str, &str)> = tier["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].as_str().unwrap(), v["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        values,
        [("Gold", "Gold"), ("Silver", "Silver"), ("Bronze", "Bronze")]
    );
    let industry = described(&account, "Industry").unwrap();
    assert_eq!(industry["custom"], false);
    assert_eq!(industry["restrictedPicklist"], false);
    assert!(industry["picklistValues"].as_array().unwrap().len() > 20);
    let id = described(&account, "Id").unwrap();
    assert_eq!(
        (&id["createable"], &id["custom"]),
        (&json!(false), &json!(false))
    );

    let (_, _, contact) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Contact/describe"),
            None,
        )
        .await;
    assert_eq!(
        described(&contact, "Favourite_Colour__c").unwrap()["type"],
        "string"
    );
    assert_eq!(
        described(&contact, "Loyalty_Points__c").unwrap()["type"],
        "double"
    );
}

#[tokio::test]
async fn seeded_records_carry_custom_values_returned_only_when_selected() {
    let org = org(Options::default()).await;
    let data = generate(200, 4, &Mess::default());
    org.emulator.seed(&data);
    let (status, body) = org
        .query("SELECT Id, Name, Region__c, Seats__c, Tier__c FROM Account ORDER BY Id")
        .await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    for (record, company) in records.iter().zip(&data.companies) {
        assert_eq!(record["Region__c"].as_str(), company.region.as_deref());
        assert_eq!(record["Seats__c"].as_f64(), company.seats.map(f64::from));
        assert!(
            record["Seats__c"].is_null() || record["Seats__c"].is_f64(),
            "a double"
        );
        assert_eq!(record["Tier__c"].as_str(), company.tier);
    }
    assert!(records.iter().any(|r| r["Tier__c"].is_string()));
    assert!(records.iter().any(|r| r["Seats__c"].is_number()));
    let (_, body) = org.query("SELECT Id, Name FROM Account LIMIT 1").await;
    assert!(body["records"][0].get("Region__c").is_none(), "{body}");

    let (_, body) = org
        .query("SELECT Id, Favourite_Colour__c, Loyalty_Points__c FROM Contact ORDER BY Id")
        .await;
    let records = body["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["Favourite_Colour__c"].is_string()));
    assert!(records.iter().any(|r| r["Loyalty_Points__c"].is_number()));
}

#[tokio::test]
async fn custom_fields_are_written_checked_and_read() {
    let org = org(Options::default()).await;
    let account = |ext: &str, extra: Json| {
        let mut a =
            json!({"attributes": {"type": "Account"}, "Ferry_Source_Id__c": ext, "Name": "Acme"});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    let (status, body) = org
        .upsert(
            "Account",
            json!([
                account(
                    "a1",
                    json!({"Region__c": "EMEA", "Seats__c": 42, "Tier__c": "Gold"})
                ),
                account("a2", json!({"Tier__c": "Platinum"})),
                account("a3", json!({"Seats__c": 1e18})),
            ]),
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(
        body[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(body[1]["errors"][0]["fields"], json!(["Tier__c"]));
    assert_eq!(
        body[2]["errors"][0]["statusCode"],
        "NUMBER_OUTSIDE_VALID_RANGE"
    );
    let (_, body) = org
        .query("SELECT Region__c, Seats__c, Tier__c FROM Account WHERE Ferry_Source_Id__c = 'a1'")
        .await;
    let r = &body["records"][0];
    assert_eq!(
        (&r["Region__c"], &r["Seats__c"], &r["Tier__c"]),
        (&json!("EMEA"), &json!(42.0), &json!("Gold"))
    );

    // A text into a number field fails the whole request, as Salesforce's JSON parser does.
    let (status, body) = org
        .upsert(
            "Account",
            json!([account("a4", json!({"Seats__c": "many"}))]),
            false,
        )
        .await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("JSON_PARSER_ERROR"))
    );
    // An unknown field too.
    let (status, body) = org
        .upsert(
            "Account",
            json!([account("a5", json!({"Nope__c": "x"}))]),
            false,
        )
        .await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_FIELD"))
    );
    let (status, body) = org.query("SELECT Nope__c FROM Account").await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_FIELD"))
    );
}

async fn create_field(org: &Org, full_name: &str, metadata: Json) -> (u16, Json) {
    let (status, _, body) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/tooling/sobjects/CustomField"),
            Some(json!({"FullName": full_name, "Metadata": metadata})),
        )
        .await;
    (status, body)
}

async fn grant(org: &Org, object: &str, field: &str, edit: bool) -> (u16, Json) {
    let (status, _, body) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/sobjects/FieldPermissions"),
            Some(json!({
                "ParentId": super::metadata::PERMISSION_SET_ID,
                "SobjectType": object,
                "Field": format!("{object}.{field}"),
                "PermissionsRead": true,
                "PermissionsEdit": edit,
            })),
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn created_fields_stay_invisible_until_field_permissions_grant_them() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(20, 1, &Mess::default()));
    let (status, body) = create_field(
        &org,
        "Contact.Shoe_Size__c",
        json!({"type": "Number", "label": "Shoe Size", "precision": 4, "scale": 1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true);
    assert!(body["id"].as_str().unwrap().starts_with("00N"), "{body}");

    let describe = || async {
        org.call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Contact/describe"),
            None,
        )
        .await
        .2
    };
    assert!(described(&describe().await, "Shoe_Size__c").is_none());
    let (status, body) = org.query("SELECT Shoe_Size__c FROM Contact").await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_FIELD"))
    );
    let write = json!([{"attributes": {"type": "Contact"}, "Ferry_Source_Id__c": "s1", "LastName": "Gilmore", "Shoe_Size__c": 8.5}]);
    let (status, body) = org.upsert("Contact", write.clone(), false).await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_FIELD"))
    );

    // The same name again is a duplicate, even while invisible.
    let (status, body) = create_field(
        &org,
        "Contact.Shoe_Size__c",
        json!({"type": "Text", "label": "Shoe Size", "length": 10}),
    )
    .await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("DUPLICATE_DEVELOPER_NAME"))
    );

    // Read only: described, queryable, not writable.
    let (status, body) = grant(&org, "Contact", "Shoe_Size__c", false).await;
    assert_eq!(status, 201, "{body}");
    let field = described(&describe().await, "Shoe_Size__c").unwrap();
    assert_eq!(
        (
            &field["type"],
            &field["precision"],
            &field["scale"],
            &field["createable"],
            &field["custom"]
        ),
        (
            &json!("double"),
            &json!(4),
            &json!(1),
            &json!(false),
            &json!(true)
        )
    );
    let (_, body) = org.upsert("Contact", write.clone(), false).await;
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    let (status, body) = org.query("SELECT Id, Shoe_Size__c FROM Contact").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["records"][0]["Shoe_Size__c"].is_null(),
        "existing rows hold it empty"
    );
    let (status, body) = grant(&org, "Contact", "Shoe_Size__c", false).await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("DUPLICATE_VALUE"))
    );
}

#[tokio::test]
async fn a_granted_field_works_like_a_seeded_one() {
    let org = org(Options::default()).await;
    let picklist = json!({
        "type": "Picklist",
        "label": "Stage",
        "valueSet": {"restricted": true, "valueSetDefinition": {"sorted": false, "value": [
            {"fullName": "Lead", "label": "Lead", "default": false},
            {"fullName": "Customer", "label": "Customer", "default": false},
        ]}},
    });
    assert_eq!(
        create_field(&org, "Account.Stage__c", picklist).await.0,
        201
    );
    assert_eq!(
        create_field(
            &org,
            "Account.Vip__c",
            json!({"type": "Checkbox", "label": "VIP", "defaultValue": "false"})
        )
        .await
        .0,
        201
    );
    assert_eq!(grant(&org, "Account", "Stage__c", true).await.0, 201);
    assert_eq!(grant(&org, "Account", "Vip__c", true).await.0, 201);
    let (_, _, account) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Account/describe"),
            None,
        )
        .await;
    let stage = described(&account, "Stage__c").unwrap();
    assert_eq!(
        (
            &stage["type"],
            &stage["restrictedPicklist"],
            &stage["updateable"]
        ),
        (&json!("picklist"), &json!(true), &json!(true))
    );
    assert_eq!(stage["picklistValues"][1]["label"], "Customer");
    let (status, body) = org
        .upsert(
            "Account",
            json!([
                {"attributes": {"type": "Account"}, "Ferry_Source_Id__c": "x1", "Name": "A", "Stage__c": "Customer", "Vip__c": true},
                {"attributes": {"type": "Account"}, "Ferry_Source_Id__c": "x2", "Name": "B", "Stage__c": "Prospect"},
            ]),
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(
        body[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    let (_, body) = org
        .query("SELECT Stage__c, Vip__c FROM Account WHERE Ferry_Source_Id__c = 'x1'")
        .await;
    assert_eq!(
        (
            &body["records"][0]["Stage__c"],
            &body["records"][0]["Vip__c"]
        ),
        (&json!("Customer"), &json!(true))
    );
}

#[tokio::test]
async fn tooling_and_field_permissions_refuse_bad_requests() {
    let org = org(Options::default()).await;
    for (full_name, metadata, code) in [
        (
            "Account.Bad",
            json!({"type": "Text", "label": "Bad", "length": 10}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            "Account.Two__Parts__c",
            json!({"type": "Text", "label": "X", "length": 10}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            "Widget.Region__c",
            json!({"type": "Text", "label": "X", "length": 10}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            "Account.Region__c",
            json!({"type": "Text", "label": "Region", "length": 255}),
            "DUPLICATE_DEVELOPER_NAME",
        ),
        (
            "Account.Long__c",
            json!({"type": "Text", "label": "Long", "length": 256}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            "Account.Nolabel__c",
            json!({"type": "Text", "length": 10}),
            "REQUIRED_FIELD_MISSING",
        ),
        (
            "Account.Geo__c",
            json!({"type": "Location", "label": "Geo"}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
    ] {
        let (status, body) = create_field(&org, full_name, metadata).await;
        assert_eq!(
            (status, body[0]["errorCode"].as_str()),
            (400, Some(code)),
            "{full_name}: {body}"
        );
    }
    let (status, body) = grant(&org, "Account", "Nothing__c", true).await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"))
    );
    let (status, body) = grant(&org, "Account", "Name", true).await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("FIELD_INTEGRITY_EXCEPTION"))
    );
    let (status, _, body) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/sobjects/FieldPermissions"),
            Some(json!({"ParentId": "0PS8d0000000099AAA", "SobjectType": "Account", "Field": "Account.Region__c", "PermissionsRead": true})),
        )
        .await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (400, &json!("INVALID_CROSS_REFERENCE_KEY"))
    );
    // Other single-record creates stay unserved, as before.
    let (status, _, _) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            Some(json!({"Name": "A"})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_integration_user_and_its_profile_permission_set_are_queryable() {
    let org = org(Options::default()).await;
    let (status, body) = org
        .query(&format!(
            "SELECT Id, ProfileId FROM User WHERE Id = '{}'",
            super::metadata::USER_ID
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let profile = body["records"][0]["ProfileId"].as_str().unwrap().to_owned();
    let (status, body) = org
        .query(&format!(
            "SELECT Id FROM PermissionSet WHERE ProfileId = '{profile}'"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["Id"], super::metadata::PERMISSION_SET_ID);
    let (_, body) = org
        .query("SELECT Id FROM PermissionSet WHERE ProfileId = '00e000000000000AAA'")
        .await;
    assert_eq!(body["totalSize"], 0);
    let (status, _) = org.query("SELECT Shoe FROM User").await;
    assert_eq!(status, 400);
}

// ---- users, stages, owners, opportunities, contact roles, notes ----------------------------

async fn create(org: &Org, records: Json) -> Json {
    let (status, _, body) = org
        .call(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": records})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn update(org: &Org, records: Json) -> Json {
    let (status, _, body) = org
        .call(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": records})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn code(result: &Json) -> &str {
    result["errors"][0]["statusCode"].as_str().unwrap_or("")
}

/// The id of the account user with seed key `key`.
async fn user_id(org: &Org, email: &str) -> String {
    let (_, body) = org
        .query(&format!("SELECT Id FROM User WHERE Email = '{email}'"))
        .await;
    body["records"][0]["Id"].as_str().expect("user").to_owned()
}

#[tokio::test]
async fn users_and_stages_are_set_up_in_an_empty_org() {
    let org = org(Options::default()).await;
    assert_eq!(
        schema::record_id(ObjectKind::User, 0),
        metadata::USER_ID,
        "the integration user is the first user"
    );
    let (status, body) = org
        .query("SELECT Id, Email, Name, Username, IsActive FROM User ORDER BY Id")
        .await;
    assert_eq!(status, 200, "{body}");
    let users = crate::accounts::account_users("salesforce");
    assert_eq!(body["totalSize"], users.len() + 1);
    assert_eq!(body["records"][0]["Id"], metadata::USER_ID);
    assert_eq!(body["records"][1]["Email"], "ANA.GARCIA@FERRY-DEMO.EXAMPLE");
    assert_eq!(body["records"][1]["Name"], "Ana García");
    let (_, inactive) = org
        .query("SELECT Email FROM User WHERE IsActive = false")
        .await;
    assert_eq!(inactive["totalSize"], 1);
    assert_eq!(
        inactive["records"][0]["Email"],
        "goro.tanaka@ferry-demo.example"
    );
    let (_, body) = org
        .query(
            "SELECT MasterLabel, ApiName, IsClosed, IsWon, SortOrder, DefaultProbability \
             FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder",
        )
        .await;
    let labels: Vec<&str> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["MasterLabel"].as_str().unwrap_or(""))
        .collect();
    let configured = crate::accounts::account_pipelines(DEAL_STAGES);
    assert_eq!(labels, configured[0].1, "one pipeline, its stages in order");
    let won = &body["records"][4];
    assert_eq!(
        (
            &won["MasterLabel"],
            &won["IsClosed"],
            &won["IsWon"],
            &won["DefaultProbability"]
        ),
        (
            &json!("Closed Won"),
            &json!(true),
            &json!(true),
            &json!(100.0)
        )
    );
    assert_eq!(body["records"][5]["IsWon"], false);
    assert_eq!(body["records"][5]["IsClosed"], true);
    let (_, _, describe) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Opportunity/describe"),
            None,
        )
        .await;
    let stage = described(&describe, "StageName").expect("StageName");
    let values: Vec<&str> = stage["picklistValues"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["value"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(values, labels);
    assert_eq!(stage["restrictedPicklist"], true);
    let (_, _, describe) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/User/describe"),
            None,
        )
        .await;
    assert_eq!(describe["createable"], false);
    let body = create(
        &org,
        json!([{"attributes": {"type": "OpportunityStage"}, "MasterLabel": "New"}]),
    )
    .await;
    assert_eq!(code(&body[0]), "INVALID_TYPE_FOR_OPERATION");
}

#[tokio::test]
async fn owners_default_to_the_caller_and_inactive_or_unknown_owners_are_refused() {
    let org = org(Options::default()).await;
    let ben = user_id(&org, "ben.okafor@ferry-demo.example").await;
    let goro = user_id(&org, "goro.tanaka@ferry-demo.example").await;
    let body = create(
        &org,
        json!([
            {"attributes": {"type": "Account"}, "Name": "Default owner"},
            {"attributes": {"type": "Account"}, "Name": "Ben's", "OwnerId": ben},
            {"attributes": {"type": "Account"}, "Name": "Goro's", "OwnerId": goro},
            {"attributes": {"type": "Contact"}, "LastName": "Nobody's", "OwnerId": "0058d0000000999AAA"},
            {"attributes": {"type": "Contact"}, "LastName": "Typo", "OwnerId": "005nope"},
        ]),
    )
    .await;
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(body[1]["success"], true, "{body}");
    assert_eq!(code(&body[2]), "INACTIVE_OWNER_OR_USER");
    assert!(
        body[2]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&goro) && m.contains("account")),
        "{body}"
    );
    assert_eq!(code(&body[3]), "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(code(&body[4]), "MALFORMED_ID");
    let (first, second) = (body[0]["id"].clone(), body[1]["id"].clone());
    let (_, rows) = org
        .query(&format!(
            "SELECT OwnerId, Owner.Email FROM Account WHERE Id IN ('{}', '{}') ORDER BY Id",
            first.as_str().unwrap_or(""),
            second.as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(rows["records"][0]["OwnerId"], metadata::USER_ID);
    assert_eq!(rows["records"][1]["OwnerId"], json!(ben));
    assert_eq!(
        rows["records"][1]["Owner"]["Email"],
        "ben.okafor@ferry-demo.example"
    );
    // Reassigning to an inactive user is refused too; the record keeps its owner.
    let body = update(
        &org,
        json!([{"attributes": {"type": "Account"}, "id": second, "OwnerId": goro}]),
    )
    .await;
    assert_eq!(code(&body[0]), "INACTIVE_OWNER_OR_USER");
}

fn opportunity(ext: &str) -> Json {
    json!({"attributes": {"type": "Opportunity"}, "Ferry_Source_Id__c": ext, "Name": format!("Deal {ext}"),
           "StageName": "Prospecting", "CloseDate": "2027-03-31", "Amount": 1200.5})
}

#[tokio::test]
async fn opportunities_hold_stage_labels_and_derive_closed_and_won() {
    let org = org(Options::default()).await;
    let (_, body) = org
        .upsert(
            "Account",
            json!([{"Ferry_Source_Id__c": "acc-1", "Name": "Acme"}]),
            false,
        )
        .await;
    let account = body[0]["id"].as_str().expect("account").to_owned();
    let mut won = opportunity("o-1");
    won["StageName"] = json!("Closed Won");
    won["Account"] = json!({"Ferry_Source_Id__c": "acc-1"});
    won["CreatedDate"] = json!("2024-02-29T10:30:00.000+0000");
    let mut no_close = opportunity("o-2");
    no_close
        .as_object_mut()
        .expect("object")
        .remove("CloseDate");
    let mut long_name = opportunity("o-3");
    long_name["Name"] = json!("é".repeat(121));
    let mut bad_stage = opportunity("o-4");
    bad_stage["StageName"] = json!("Bogus");
    let mut bad_currency = opportunity("o-5");
    bad_currency["CurrencyIsoCode"] = json!("XYZ");
    let mut derived = opportunity("o-6");
    derived["IsWon"] = json!(true);
    let mut euro = opportunity("o-7");
    euro["CurrencyIsoCode"] = json!("EUR");
    let (status, body) = org
        .upsert(
            "Opportunity",
            json!([
                won,
                no_close,
                long_name,
                bad_stage,
                bad_currency,
                derived,
                euro
            ]),
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(body[0]["created"], true);
    assert_eq!(code(&body[1]), "REQUIRED_FIELD_MISSING");
    assert_eq!(body[1]["errors"][0]["fields"], json!(["CloseDate"]));
    assert_eq!(code(&body[2]), "STRING_TOO_LONG");
    assert_eq!(code(&body[3]), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(code(&body[4]), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(code(&body[5]), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(body[6]["success"], true);
    let id = body[0]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("006"));
    let (status, _, record) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Opportunity/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["attributes"]["type"], "Opportunity");
    assert_eq!(record["StageName"], "Closed Won");
    assert_eq!(
        (&record["IsClosed"], &record["IsWon"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(record["Probability"], 100.0);
    assert_eq!(record["ForecastCategoryName"], "Closed");
    assert_eq!(record["CurrencyIsoCode"], "USD", "the corporate currency");
    assert_eq!(record["AccountId"], json!(account));
    assert_eq!(record["OwnerId"], metadata::USER_ID);
    assert_eq!(record["CloseDate"], "2027-03-31");
    assert_eq!(
        record["CreatedDate"], "2024-02-29T10:30:00.000+0000",
        "audit field kept"
    );
    // Lost: closed, not won. The stage is matched exactly, as a restricted picklist is.
    let mut lost = opportunity("o-1");
    lost["StageName"] = json!("Closed Lost");
    let (_, body) = org.upsert("Opportunity", json!([lost]), false).await;
    assert_eq!(body[0]["created"], false, "{body}");
    let (_, rows) = org
        .query(&format!(
            "SELECT StageName, IsClosed, IsWon, Account.Ferry_Source_Id__c FROM Opportunity WHERE Id = '{id}'"
        ))
        .await;
    let row = &rows["records"][0];
    assert_eq!(
        (&row["IsClosed"], &row["IsWon"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(row["Account"]["Ferry_Source_Id__c"], "acc-1");
    // CreatedDate is written on create only.
    let mut again = opportunity("o-1");
    again["CreatedDate"] = json!("2020-01-01T00:00:00Z");
    let (_, body) = org.upsert("Opportunity", json!([again]), false).await;
    assert_eq!(code(&body[0]), "INVALID_FIELD_FOR_INSERT_UPDATE");
    let (status, _, body) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Opportunity/006000000000000AAA"),
            None,
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    assert_eq!(org.emulator.count("Opportunity"), 2);
}

#[tokio::test]
async fn contact_roles_keep_one_primary_and_their_opportunity() {
    let org = org(Options::default()).await;
    let (_, deals) = org
        .upsert(
            "Opportunity",
            json!([opportunity("d-1"), opportunity("d-2")]),
            false,
        )
        .await;
    let (d1, d2) = (deals[0]["id"].clone(), deals[1]["id"].clone());
    let (_, contacts) = org
        .upsert(
            "Contact",
            json!([
                contact("c-1", Some("One")),
                contact("c-2", Some("Two")),
                contact("c-3", Some("Three"))
            ]),
            false,
        )
        .await;
    let c: Vec<Json> = (0..3).map(|i| contacts[i]["id"].clone()).collect();
    let role = |opp: &Json, contact: &Json, primary: bool| {
        json!({"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": opp,
               "ContactId": contact, "Role": "Decision Maker", "IsPrimary": primary})
    };
    let body = create(
        &org,
        json!([
            role(&d1, &c[0], true),
            role(&d1, &c[1], false),
            role(&d2, &c[2], true),
            {"attributes": {"type": "OpportunityContactRole"}, "ContactId": c[0]},
            {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": d1,
             "Contact": {"Ferry_Source_Id__c": "c-3"}, "Role": "Someone we met"},
        ]),
    )
    .await;
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(code(&body[3]), "REQUIRED_FIELD_MISSING");
    assert_eq!(
        body[4]["success"], true,
        "a role outside the picklist is kept: {body}"
    );
    let second = body[1]["id"].clone();
    assert!(second.as_str().is_some_and(|id| id.starts_with("00K")));
    // Making the second role primary takes it from the first.
    let body = update(
        &org,
        json!([{"attributes": {"type": "OpportunityContactRole"}, "id": second, "IsPrimary": true}]),
    )
    .await;
    assert_eq!(body[0]["success"], true, "{body}");
    let (status, rows) = org
        .query(&format!(
            "SELECT OpportunityId, ContactId, Contact.Ferry_Source_Id__c, Role, IsPrimary \
             FROM OpportunityContactRole WHERE OpportunityId IN ('{}', '{}') ORDER BY Id",
            d1.as_str().unwrap_or(""),
            d2.as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["totalSize"], 4);
    let of_d1: Vec<(&Json, &Json)> = rows["records"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["OpportunityId"] == d1)
        .map(|r| (&r["Contact"]["Ferry_Source_Id__c"], &r["IsPrimary"]))
        .collect();
    assert_eq!(
        of_d1,
        vec![
            (&json!("c-1"), &json!(false)),
            (&json!("c-2"), &json!(true)),
            (&json!("c-3"), &json!(false))
        ]
    );
    // The opportunity of a role is set once.
    let body = update(
        &org,
        json!([{"attributes": {"type": "OpportunityContactRole"}, "id": second, "OpportunityId": d2}]),
    )
    .await;
    assert_eq!(code(&body[0]), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(body[0]["errors"][0]["fields"], json!(["OpportunityId"]));
}

#[tokio::test]
async fn notes_hang_on_one_parent_and_refuse_long_bodies() {
    let org = org(Options::default()).await;
    let (_, accounts) = org
        .upsert(
            "Account",
            json!([{"Ferry_Source_Id__c": "a", "Name": "Acme"}]),
            false,
        )
        .await;
    let (_, contacts) = org
        .upsert("Contact", json!([contact("c", Some("Gilmore"))]), false)
        .await;
    let (_, deals) = org
        .upsert("Opportunity", json!([opportunity("d")]), false)
        .await;
    let parents = [&accounts[0]["id"], &contacts[0]["id"], &deals[0]["id"]];
    let note = |parent: &Json, title: &str, body: &str| {
        json!({"attributes": {"type": "Note"}, "ParentId": parent, "Title": title, "Body": body,
               "CreatedDate": "2023-05-01T08:00:00.000Z"})
    };
    let hana = user_id(&org, "hana.novak@ferry-demo.example").await;
    let mut owned = note(parents[2], "Owned", "x");
    owned["OwnerId"] = json!(hana);
    let body = create(
        &org,
        json!([
            note(parents[0], "Kickoff", "Rappel : envoyer le devis révisé\n見積書"),
            note(parents[1], "Call", "<p>kept as written</p>"),
            owned,
            note(parents[2], &"t".repeat(81), "x"),
            note(parents[2], "Long", &"b".repeat(32_001)),
            note(&json!(metadata::USER_ID), "On a user", "x"),
            {"attributes": {"type": "Note"}, "Title": "Orphan"},
            note(parents[2], "Full", &"é".repeat(32_000)),
        ]),
    )
    .await;
    for i in [0, 1, 2, 7] {
        assert_eq!(body[i]["success"], true, "{i}: {body}");
        assert!(
            body[i]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("002"))
        );
    }
    assert_eq!(code(&body[3]), "STRING_TOO_LONG");
    assert_eq!(
        code(&body[4]),
        "STRING_TOO_LONG",
        "refused, never truncated"
    );
    assert_eq!(code(&body[5]), "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(code(&body[6]), "REQUIRED_FIELD_MISSING");
    let first = body[0]["id"].clone();
    let (status, rows) = org
        .query(&format!(
            "SELECT Id, Title, Body, ParentId, OwnerId, IsPrivate, CreatedDate FROM Note \
             WHERE ParentId IN ('{}', '{}') ORDER BY Id",
            parents[0].as_str().unwrap_or(""),
            parents[2].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["totalSize"], 3);
    let row = &rows["records"][0];
    assert_eq!(row["Body"], "Rappel : envoyer le devis révisé\n見積書");
    assert_eq!(row["ParentId"], *parents[0]);
    assert_eq!(row["OwnerId"], metadata::USER_ID);
    assert_eq!(row["IsPrivate"], false);
    assert_eq!(row["CreatedDate"], "2023-05-01T08:00:00.000+0000");
    assert_eq!(rows["records"][1]["OwnerId"], json!(hana));
    let body = update(
        &org,
        json!([{"attributes": {"type": "Note"}, "id": first, "ParentId": parents[1], "Title": "Moved"}]),
    )
    .await;
    assert_eq!(code(&body[0]), "INVALID_FIELD_FOR_INSERT_UPDATE");
    let (_, _, describe) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Note/describe"),
            None,
        )
        .await;
    let parent = described(&describe, "ParentId").expect("ParentId");
    assert_eq!(
        parent["referenceTo"],
        json!(["Account", "Contact", "Opportunity"])
    );
    assert_eq!(parent["updateable"], false);
    assert!(
        described(&describe, EXTERNAL_ID_FIELD).is_none(),
        "Note takes no custom fields"
    );
}

#[test]
fn seeded_deals_have_their_stages_roles_and_notes() {
    let data = generate(600, 5, &Mess::default());
    let emulator = Emulator::new(Options::default());
    let seeded = emulator.seed(&data);
    assert_eq!(seeded.opportunities, data.deals.len());
    assert!(seeded.contact_roles > 0 && seeded.notes > 0);
    assert_eq!(seeded.notes + seeded.skipped_notes, data.notes.len());
    let summary = crate::VendorEmulator::seed(&Emulator::new(Options::default()), &data);
    assert_eq!(
        (summary.deals, summary.notes),
        (seeded.opportunities, seeded.notes)
    );
    assert_eq!(
        crate::VendorEmulator::count(&emulator, "deals"),
        data.deals.len()
    );
    assert_eq!(
        crate::VendorEmulator::count(&emulator, "notes"),
        seeded.notes
    );
    let store = emulator.shared.store.read().expect("store");
    let run = |q: &str| {
        let planned = store.run(&soql::parse(q).expect("parse")).expect("run");
        store.render(&planned, &planned.rows, "v62.0")
    };
    let deals = run("SELECT Id, StageName, IsClosed, IsWon, OwnerId FROM Opportunity");
    for label in crate::accounts::account_pipelines(DEAL_STAGES)[0].1.iter() {
        assert!(
            deals.iter().any(|d| d["StageName"] == *label),
            "a deal in {label}"
        );
    }
    assert!(deals.iter().any(|d| d["IsWon"] == true));
    assert!(
        deals
            .iter()
            .any(|d| d["IsClosed"] == true && d["IsWon"] == false)
    );
    assert!(deals.iter().any(|d| d["OwnerId"] != metadata::USER_ID));
    let roles = run("SELECT OpportunityId, IsPrimary FROM OpportunityContactRole");
    assert_eq!(roles.len(), seeded.contact_roles);
    let mut primaries: HashMap<String, usize> = HashMap::new();
    for r in &roles {
        if r["IsPrimary"] == true {
            *primaries.entry(r["OpportunityId"].to_string()).or_default() += 1;
        }
    }
    assert!(primaries.values().all(|n| *n == 1), "one primary per deal");
    assert!(
        data.deals.iter().any(|d| d.contacts.len() >= 5),
        "the generator makes deals with five contacts"
    );
    let notes = run("SELECT Body, ParentId FROM Note");
    let bodies: Vec<&str> = notes.iter().filter_map(|n| n["Body"].as_str()).collect();
    assert_eq!(bodies.len(), notes.len());
    assert!(
        bodies
            .iter()
            .all(|b| !b.contains("<p>") && !b.contains("<br>") && !b.contains("&amp;")),
        "a classic Note holds plain text"
    );
    for prefix in ["001", "003", "006"] {
        assert!(
            notes.iter().any(|n| n["ParentId"]
                .as_str()
                .is_some_and(|p| p.starts_with(prefix))),
            "notes on {prefix}"
        );
    }
    assert!(
        notes
            .iter()
            .any(|n| n["Body"].as_str().is_some_and(|b| !b.is_ascii()))
    );
}

#[tokio::test]
async fn the_new_objects_live_in_the_shared_table_engine() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(40, 3, &Mess::default()));
    {
        let store = org.emulator.shared.store.read().expect("store");
        for object in [
            ObjectKind::Opportunity,
            ObjectKind::OpportunityContactRole,
            ObjectKind::Note,
            ObjectKind::User,
            ObjectKind::OpportunityStage,
        ] {
            assert!(store.table(object).is_engine(), "{object:?}");
        }
        assert!(!store.table(ObjectKind::Contact).is_engine());
    }
    // The engine's date column knows the calendar: Salesforce's parser refuses 30 February.
    let mut bad = opportunity("cal-1");
    bad["CloseDate"] = json!("2027-02-30");
    let (status, body) = org.upsert("Opportunity", json!([bad]), false).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("JSON_PARSER_ERROR")),
        "{body}"
    );
    // A field added through the Tooling API becomes a column: existing rows hold it unticked.
    let (status, body) = create_field(
        &org,
        "Opportunity.Strategic__c",
        json!({"type": "Checkbox", "label": "Strategic", "defaultValue": "false"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = grant(&org, "Opportunity", "Strategic__c", true).await;
    assert_eq!(status, 201, "{body}");
    let (_, rows) = org
        .query("SELECT Id, Strategic__c FROM Opportunity ORDER BY Id LIMIT 1")
        .await;
    assert_eq!(rows["records"][0]["Strategic__c"], false, "{rows}");
    let mut strategic = opportunity("cal-2");
    strategic["Strategic__c"] = json!(true);
    let (_, body) = org.upsert("Opportunity", json!([strategic]), false).await;
    assert_eq!(body[0]["success"], true, "{body}");
    let (_, rows) = org
        .query("SELECT Strategic__c FROM Opportunity WHERE Ferry_Source_Id__c = 'cal-2'")
        .await;
    assert_eq!(rows["records"][0]["Strategic__c"], true);
}

#[tokio::test]
async fn audit_dates_and_parent_ids_must_be_well_formed() {
    let org = org(Options::default()).await;
    let mut bad_date = opportunity("audit-1");
    bad_date["CreatedDate"] = json!("yesterday");
    let (status, body) = org.upsert("Opportunity", json!([bad_date]), false).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("JSON_PARSER_ERROR")),
        "{body}"
    );
    let mut offset = opportunity("audit-2");
    offset["CreatedDate"] = json!("2024-01-01T01:30:00+01:30");
    let (_, body) = org.upsert("Opportunity", json!([offset]), false).await;
    assert_eq!(body[0]["success"], true, "{body}");
    let (_, rows) = org
        .query("SELECT CreatedDate FROM Opportunity WHERE Ferry_Source_Id__c = 'audit-2'")
        .await;
    assert_eq!(
        rows["records"][0]["CreatedDate"],
        "2024-01-01T00:00:00.000+0000"
    );
    let body = create(
        &org,
        json!([
            {"attributes": {"type": "Note"}, "Title": "x", "ParentId": "zzz8d0000000001AAA"},
            {"attributes": {"type": "Note"}, "Title": "x", "ParentId": "0018d0000000999AAA"},
        ]),
    )
    .await;
    assert_eq!(code(&body[0]), "MALFORMED_ID");
    assert_eq!(code(&body[1]), "INVALID_CROSS_REFERENCE_KEY");
    let (status, _, _) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Lead/00Q8d0000000001AAA"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deleting_an_opportunity_takes_its_roles_and_notes_with_it() {
    let org = org(Options::default()).await;
    let (_, deals) = org
        .upsert(
            "Opportunity",
            json!([opportunity("del-1"), opportunity("del-2")]),
            false,
        )
        .await;
    let (d1, d2) = (deals[0]["id"].clone(), deals[1]["id"].clone());
    let (_, contacts) = org
        .upsert("Contact", json!([contact("del-c", Some("Kept"))]), false)
        .await;
    let c = contacts[0]["id"].clone();
    let body = create(
        &org,
        json!([
            {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": d1, "ContactId": c},
            {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": d2, "ContactId": c},
            {"attributes": {"type": "Note"}, "ParentId": d1, "Title": "Gone with its deal"},
            {"attributes": {"type": "Note"}, "ParentId": c, "Title": "Stays"},
        ]),
    )
    .await;
    assert!(
        body.as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{body}"
    );
    let delete = |ids: String, all_or_none: bool| {
        let org = &org;
        async move {
            let (status, _, body) = org
                .call(
                    reqwest::Method::DELETE,
                    &format!("{V}/composite/sobjects?ids={ids}&allOrNone={all_or_none}"),
                    None,
                )
                .await;
            (status, body)
        }
    };
    let (d1s, d2s, cs) = (
        d1.as_str().unwrap_or("").to_owned(),
        d2.as_str().unwrap_or("").to_owned(),
        c.as_str().unwrap_or("").to_owned(),
    );
    // allOrNone: a malformed id rolls the deal back.
    let (status, body) = delete(format!("{d1s},006nope"), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body[0]), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(code(&body[1]), "MALFORMED_ID");
    assert_eq!(org.emulator.count("Contact"), 1, "{cs} stays");
    assert_eq!(org.emulator.count("Opportunity"), 2);
    let (_, body) = delete(format!("{d1s},006nope"), false).await;
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(code(&body[1]), "MALFORMED_ID");
    assert_eq!(org.emulator.count("Opportunity"), 1);
    assert_eq!(
        org.emulator.count("OpportunityContactRole"),
        1,
        "its role went with it"
    );
    assert_eq!(org.emulator.count("Note"), 1, "its note went with it");
    let (_, rows) = org.query("SELECT Id FROM Opportunity").await;
    assert_eq!(
        (
            rows["totalSize"].as_u64(),
            rows["records"][0]["Id"].as_str()
        ),
        (Some(1), Some(d2s.as_str()))
    );
    let (_, rows) = org
        .query(&format!(
            "SELECT Id FROM OpportunityContactRole WHERE OpportunityId IN ('{d1s}', '{d2s}')"
        ))
        .await;
    assert_eq!(rows["totalSize"], 1);
    let (status, _, _) = org
        .call(
            reqwest::Method::GET,
            &format!("{V}/sobjects/Opportunity/{d1s}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, body) = delete(d1s.clone(), false).await;
    assert_eq!(code(&body[0]), "ENTITY_IS_DELETED");
    let body = update(
        &org,
        json!([{"attributes": {"type": "Opportunity"}, "id": d1s, "Name": "Back"}]),
    )
    .await;
    assert_eq!(code(&body[0]), "ENTITY_IS_DELETED");
    // Its external id is free again: the same upsert creates a new record.
    let (_, body) = org
        .upsert("Opportunity", json!([opportunity("del-1")]), false)
        .await;
    assert_eq!(body[0]["created"], true, "{body}");
    assert_ne!(body[0]["id"], d1);
    let (status, body) = delete(String::new(), false).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("MISSING_ARGUMENT"))
    );
}

/// SOQL `WHERE SystemModstamp >= … ORDER BY SystemModstamp, Id`: every change moves the stamp,
/// the filter includes its bound, ties are ordered by id, and the `Date` header is the org's
/// clock, which `advance_clock` moves.
#[tokio::test]
async fn incremental_reads_filter_and_order_on_system_modstamp() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(20, 3, &Mess::none()));
    let (_, headers, _) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    let date = |h: &reqwest::header::HeaderMap| {
        let raw = h[reqwest::header::DATE].to_str().unwrap().to_owned();
        crate::timestamp::http_date(0).len() == raw.len() && raw.ends_with(" GMT")
    };
    assert!(date(&headers), "{headers:?}");
    let before = org.emulator.shared.now_ms();

    org.emulator.advance_clock(Duration::from_secs(3600));
    let (_, headers, _) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    let dated = headers[reqwest::header::DATE].to_str().unwrap().to_owned();
    assert_eq!(
        dated,
        crate::timestamp::http_date(org.emulator.shared.now_ms()),
        "the Date header follows the org's clock"
    );
    let (_, all) = org.query("SELECT Id FROM Contact ORDER BY Id").await;
    let ids: Vec<String> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    // Changed in reverse id order, all within one second or so: ties broken by id.
    let changed = [ids[7].clone(), ids[2].clone()];
    let results = update(
        &org,
        json!([
            {"attributes": {"type": "Contact"}, "Id": changed[0], "Title": "Changed"},
            {"attributes": {"type": "Contact"}, "Id": changed[1], "Title": "Changed"},
        ]),
    )
    .await;
    assert_eq!(results[0]["success"], true, "{results}");
    let since = schema::format_datetime(before + 1_800_000).replace(".000+0000", "Z");
    let soql = format!(
        "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {since} \
         ORDER BY SystemModstamp, Id"
    );
    let (status, page) = org.query(&soql).await;
    assert_eq!(status, 200, "{page}");
    let got: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    let stamps: Vec<i64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| soql::parse_datetime(r["SystemModstamp"].as_str().unwrap()).unwrap())
        .collect();
    let mut expected: Vec<(i64, &str)> = stamps.iter().copied().zip(got.iter().copied()).collect();
    expected.sort();
    assert_eq!(got.len(), 2, "only the changed records: {page}");
    assert_eq!(
        got,
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        "ordered by stamp, then id"
    );
    // The bound is included: `>=` the exact stamp of the latest change still finds it.
    let latest = schema::format_datetime(*stamps.iter().max().unwrap()).replace("+0000", "Z");
    let (_, at) = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE SystemModstamp >= {latest}"
        ))
        .await;
    assert!(at["totalSize"].as_u64().unwrap() >= 1, "{at}");
    let (_, after) = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE SystemModstamp > {latest}"
        ))
        .await;
    assert_eq!(after["totalSize"], 0, "{after}");
    // Only date-time fields compare with a date-time literal.
    let (status, refused) = org
        .query(&format!("SELECT Id FROM Contact WHERE LastName >= {since}"))
        .await;
    assert_eq!(status, 400, "{refused}");
}

/// Deleting an account takes its contacts, opportunities and notes with it; getDeleted lists
/// each deleted record of an object between `start` and `end` (seconds dropped) with its
/// `deletedDate`, and `earliestDateAvailable` moves when the Recycle Bin is emptied or the 15
/// days pass.
#[tokio::test]
async fn deleted_records_are_listed_by_get_deleted_until_purged() {
    let org = org(Options::default()).await;
    let (_, accounts) = org
        .upsert(
            "Account",
            json!([
                {"attributes": {"type": "Account"}, "Ferry_Source_Id__c": "a-1", "Name": "Gone"},
                {"attributes": {"type": "Account"}, "Ferry_Source_Id__c": "a-2", "Name": "Kept"},
            ]),
            false,
        )
        .await;
    let (a1, a2) = (accounts[0]["id"].clone(), accounts[1]["id"].clone());
    let mut c1 = contact("c-1", Some("Of gone"));
    c1["AccountId"] = a1.clone();
    let mut c2 = contact("c-2", Some("Of kept"));
    c2["AccountId"] = a2.clone();
    let (_, contacts) = org.upsert("Contact", json!([c1, c2]), false).await;
    let c2id = contacts[1]["id"].as_str().expect("id").to_owned();
    let mut deal = opportunity("d-1");
    deal["AccountId"] = a1.clone();
    let (_, deals) = org.upsert("Opportunity", json!([deal]), false).await;
    assert_eq!(deals[0]["success"], true, "{deals}");
    let body = create(
        &org,
        json!([
            {"attributes": {"type": "Note"}, "ParentId": a1, "Title": "Gone with its account"},
            {"attributes": {"type": "Note"}, "ParentId": c2id, "Title": "Gone with its contact"},
        ]),
    )
    .await;
    assert!(
        body.as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{body}"
    );

    let (status, _, before) = org
        .call(reqwest::Method::GET, &format!("{V}/limits"), None)
        .await;
    assert_eq!(status, 200, "{before}");
    let start = "2020-01-01T00:00:00Z";
    let a1s = a1.as_str().expect("id").to_owned();
    let (_, _, body) = org
        .call(
            reqwest::Method::DELETE,
            &format!("{V}/composite/sobjects?ids={a1s},{c2id}"),
            None,
        )
        .await;
    assert!(
        body.as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{body}"
    );
    assert_eq!(
        ["Account", "Contact", "Opportunity", "Note"].map(|o| org.emulator.count(o)),
        [1, 0, 0, 0]
    );
    let deleted = |sobject: &'static str, start: String, end: String| {
        let org = &org;
        async move {
            let (status, _, body) = org
                .call(
                    reqwest::Method::GET,
                    &format!("{V}/sobjects/{sobject}/deleted/?start={start}&end={end}"),
                    None,
                )
                .await;
            (status, body)
        }
    };
    let end = "2100-01-01T00:00:59Z".to_owned();
    let (status, body) = deleted("Contact", start.into(), end.clone()).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["deletedRecords"]
        .as_array()
        .expect("deletedRecords")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "the account's contact and the one deleted: {body}"
    );
    assert!(ids.contains(&c2id.as_str()));
    assert!(
        body["deletedRecords"][0]["deletedDate"]
            .as_str()
            .expect("date")
            .ends_with("+0000")
    );
    assert_eq!(
        body["latestDateCovered"], "2100-01-01T00:00:00.000+0000",
        "seconds dropped"
    );
    for sobject in ["Account", "Opportunity", "Note"] {
        let (_, body) = deleted(sobject, start.into(), end.clone()).await;
        let n = body["deletedRecords"].as_array().map(Vec::len);
        assert_eq!(
            n,
            Some(if sobject == "Note" { 2 } else { 1 }),
            "{sobject}: {body}"
        );
    }
    // A window that ends before the deletes holds none of them.
    let (_, body) = deleted("Contact", start.into(), "2020-01-02T00:00:00Z".into()).await;
    assert_eq!(body["deletedRecords"], json!([]));
    // Emptied from the bin: no longer listed, and the earliest date available says so.
    org.emulator.advance_clock(Duration::from_secs(120));
    org.emulator.purge_deleted(Duration::from_secs(60));
    let (_, body) = deleted("Contact", start.into(), end.clone()).await;
    assert_eq!(body["deletedRecords"], json!([]), "{body}");
    let earliest = body["earliestDateAvailable"].as_str().expect("earliest");
    assert!(earliest > "2020-01-01", "{earliest}");
    // 15 days on, the window starts 15 days back.
    org.emulator.advance_clock(Duration::from_secs(16 * 86_400));
    let (_, body) = deleted("Contact", start.into(), end.clone()).await;
    assert!(
        body["earliestDateAvailable"].as_str().expect("earliest") > earliest,
        "{body}"
    );
    let (status, body) = deleted("Contact", "yesterday".into(), end).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("INVALID_REPLICATION_DATE"))
    );
}
