//! The emulator over real HTTP on loopback.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde_json::{Value, json};

use super::*;
use crate::seed::{Mess, generate};

async fn start(options: Options, contacts: usize) -> (crate::Running, Emulator, SeedData) {
    let emulator = Emulator::new(options);
    let data = generate(contacts, 7, &Mess::default());
    emulator.seed(&data);
    let running = crate::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve on loopback");
    (running, emulator, data)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(base: &str, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

fn unlimited() -> Options {
    Options {
        burst_limit: None,
        ..Options::default()
    }
}

#[tokio::test]
async fn pages_to_the_end_without_gap_or_repeat() {
    let (hs, _, data) = start(unlimited(), 1_234).await;
    for (object, expected) in [
        ("contacts", data.contacts.len()),
        ("companies", data.companies.len()),
    ] {
        let mut seen = HashSet::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/crm/v3/objects/{object}?limit=100&associations=companies");
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", urlencoding::encode(a)));
            }
            let (status, _, body) = get(&hs.base_url, &path, crate::HUBSPOT_TOKEN).await;
            assert_eq!(status, 200, "{body}");
            pages += 1;
            for r in body["results"].as_array().expect("results") {
                let id = r["id"].as_str().expect("id").to_owned();
                assert_eq!(r["properties"]["hs_object_id"], json!(id));
                assert!(
                    r["properties"]["createdate"]
                        .as_str()
                        .is_some_and(|t| t.ends_with('Z'))
                );
                assert!(seen.insert(id), "repeated record");
            }
            match body["paging"]["next"]["after"].as_str() {
                Some(a) => {
                    assert!(a.parse::<u64>().is_err(), "cursor is opaque, not a raw id");
                    assert!(body["paging"]["next"]["link"].as_str().is_some());
                    after = Some(a.to_owned());
                }
                None => {
                    assert!(body.get("paging").is_none(), "no paging on the last page");
                    break;
                }
            }
        }
        assert_eq!(seen.len(), expected, "{object}");
        assert_eq!(pages, expected.div_ceil(100), "{object}");
    }
}

#[tokio::test]
async fn records_have_hubspot_shape_properties_and_associations() {
    let (hs, _, data) = start(unlimited(), 50).await;
    let (status, _, body) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 10, "default limit is 10");
    let first = &results[0];
    let props = first["properties"].as_object().expect("properties");
    let keys: HashSet<&str> = props.keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "firstname",
        "lastname",
        "email",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected, "default properties");
    assert_eq!(first["id"], json!(FIRST_CONTACT_ID.to_string()));
    assert_eq!(first["archived"], json!(false));
    assert!(
        first.get("associations").is_none(),
        "associations only when asked"
    );

    // Requested properties: unknown names ignored, unset ones null.
    let path = "/crm/v3/objects/contacts?limit=100&properties=hs_email_optout,jobtitle,nonexistent&associations=companies";
    let (_, _, body) = get(&hs.base_url, path, crate::HUBSPOT_TOKEN).await;
    let results = body["results"].as_array().expect("results");
    for (r, seeded) in results.iter().zip(&data.contacts) {
        let p = &r["properties"];
        assert!(p.get("nonexistent").is_none());
        assert_eq!(
            p["hs_email_optout"],
            json!(seeded.email_opt_out.to_string())
        );
        assert_eq!(
            p["jobtitle"],
            seeded
                .job_title
                .as_deref()
                .map_or(Value::Null, |t| json!(t))
        );
        match seeded.company {
            Some(key) => {
                let company = (FIRST_COMPANY_ID + key as u64).to_string();
                let assoc = &r["associations"]["companies"]["results"];
                assert_eq!(
                    assoc[0],
                    json!({"id": company, "type": "contact_to_company"})
                );
                assert_eq!(
                    assoc[1],
                    json!({"id": company, "type": "contact_to_company_unlabeled"})
                );
            }
            None => assert!(r.get("associations").is_none()),
        }
    }

    let (_, _, company) =
        get(&hs.base_url, &format!("/crm/v3/objects/companies/{FIRST_COMPANY_ID}?properties=numberofemployees,hs_lastmodifieddate"), crate::HUBSPOT_TOKEN).await;
    assert_eq!(company["id"], json!(FIRST_COMPANY_ID.to_string()));
    assert!(
        company["properties"]["hs_lastmodifieddate"]
            .as_str()
            .is_some()
    );
    let (status, _, missing) = get(
        &hs.base_url,
        "/crm/v3/objects/companies/999",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(
        (status, missing["category"].as_str()),
        (404, Some("OBJECT_NOT_FOUND"))
    );
}

#[tokio::test]
async fn limit_over_100_is_a_validation_error() {
    let (hs, _, _) = start(unlimited(), 10).await;
    let (status, _, body) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts?limit=101",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], json!("error"));
    assert_eq!(body["category"], json!("VALIDATION_ERROR"));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("100")));
    assert!(
        body["correlationId"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );
    let (status, _, _) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts?after=garbage!",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bad_or_missing_token_is_401_with_hubspot_body() {
    let (hs, _, _) = start(Options::default(), 10).await;
    let (status, headers, body) =
        get(&hs.base_url, "/crm/v3/objects/contacts", "wrong-token").await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], json!("error"));
    assert_eq!(body["category"], json!("INVALID_AUTHENTICATION"));
    assert!(body["correlationId"].is_string() && body["message"].is_string());
    assert!(headers.get("x-hubspot-ratelimit-remaining").is_none());
    let resp = client()
        .get(format!("{}/crm/v3/objects/contacts", hs.base_url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn burst_limit_gives_429_with_headers_and_no_retry_after() {
    let options = Options {
        burst_limit: Some(5),
        daily_limit: Some(1000),
        ..Options::default()
    };
    let (hs, emulator, _) = start(options, 10).await;
    for i in 0..5u32 {
        let (status, headers, _) = get(
            &hs.base_url,
            "/crm/v3/objects/contacts?limit=1",
            crate::HUBSPOT_TOKEN,
        )
        .await;
        assert_eq!(status, 200);
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("x-hubspot-ratelimit-interval-milliseconds").as_deref(),
            Some("10000")
        );
        assert_eq!(header("x-hubspot-ratelimit-max").as_deref(), Some("5"));
        assert_eq!(
            header("x-hubspot-ratelimit-remaining"),
            Some((4 - i).to_string())
        );
        assert_eq!(header("x-hubspot-ratelimit-daily").as_deref(), Some("1000"));
        assert_eq!(
            header("x-hubspot-ratelimit-daily-remaining"),
            Some((999 - i).to_string())
        );
    }
    let (status, headers, body) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts?limit=1",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["errorType"], json!("RATE_LIMIT"));
    assert_eq!(body["policyName"], json!("TEN_SECONDLY_ROLLING"));
    assert_eq!(
        body["message"],
        json!("You have reached your ten_secondly_rolling limit.")
    );
    assert!(headers.get("retry-after").is_none());
    assert_eq!(
        headers
            .get("x-hubspot-ratelimit-remaining")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert_eq!(emulator.request_counts().1, 1);
}

#[tokio::test]
async fn daily_limit_gives_daily_policy() {
    let options = Options {
        burst_limit: None,
        daily_limit: Some(2),
        ..Options::default()
    };
    let (hs, _, _) = start(options, 10).await;
    for _ in 0..2 {
        assert_eq!(
            get(
                &hs.base_url,
                "/crm/v3/objects/contacts",
                crate::HUBSPOT_TOKEN
            )
            .await
            .0,
            200
        );
    }
    let (status, _, body) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!((status, body["policyName"].as_str()), (429, Some("DAILY")));
}

#[tokio::test]
async fn injected_throttling_uses_hubspot_body() {
    let faults = Faults {
        throttle_every: Some(2),
        retry_after_secs: Some(1),
        ..Faults::default()
    };
    let (hs, _, _) = start(
        Options {
            faults,
            ..unlimited()
        },
        10,
    )
    .await;
    assert_eq!(
        get(
            &hs.base_url,
            "/crm/v3/objects/contacts",
            crate::HUBSPOT_TOKEN
        )
        .await
        .0,
        200
    );
    let (status, headers, body) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (429, Some("RATE_LIMIT"))
    );
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
}

#[tokio::test]
async fn batches_over_100_inputs_are_refused() {
    let (hs, _, _) = start(unlimited(), 10).await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"id": (FIRST_CONTACT_ID + i).to_string()}))
        .collect();
    for action in ["read", "create", "update", "upsert", "archive"] {
        let (status, body) = post(
            &hs.base_url,
            &format!("/crm/v3/objects/contacts/batch/{action}"),
            json!({"inputs": inputs}),
        )
        .await;
        assert_eq!(status, 400, "{action}");
        assert_eq!(body["category"], json!("VALIDATION_ERROR"), "{action}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("100")),
            "{action}"
        );
    }
}

#[tokio::test]
async fn batch_read_reports_missing_ids_as_207() {
    let (hs, _, data) = start(unlimited(), 20).await;
    let email = data
        .contacts
        .iter()
        .find_map(|c| c.email.clone())
        .expect("an email");
    let body = json!({"properties": ["email"], "inputs": [{"id": FIRST_CONTACT_ID.to_string()}, {"id": "1"}]});
    let (status, body) = post(&hs.base_url, "/crm/v3/objects/contacts/batch/read", body).await;
    assert_eq!(status, 207);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["numErrors"], json!(1));
    assert_eq!(body["errors"][0]["category"], json!("OBJECT_NOT_FOUND"));
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["1"]));
    let by_email = json!({"idProperty": "email", "inputs": [{"id": email}]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/read",
        by_email,
    )
    .await;
    assert_eq!(
        (status, body["results"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let not_unique = json!({"idProperty": "firstname", "inputs": [{"id": "x"}]});
    assert_eq!(
        post(
            &hs.base_url,
            "/crm/v3/objects/contacts/batch/read",
            not_unique
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn custom_unique_property_upsert_create_update_archive() {
    let (hs, emulator, _) = start(unlimited(), 10).await;
    let property = json!({"name": "ferry_source_id", "label": "Ferry source id", "type": "string",
                          "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/properties/contacts",
        property.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hasUniqueValue"], json!(true));
    assert_eq!(
        post(&hs.base_url, "/crm/v3/properties/contacts", property)
            .await
            .0,
        409
    );
    let (_, _, listed) = get(
        &hs.base_url,
        "/crm/v3/properties/contacts",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert!(
        listed["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|p| p["name"] == json!("ferry_source_id")))
    );

    let upsert = |first: &str| {
        json!({"inputs": [
            {"id": "src-1", "idProperty": "ferry_source_id", "properties": {"firstname": first, "email": "new1@example.com"},
             "associations": []},
            {"id": "src-2", "idProperty": "ferry_source_id", "properties": {"firstname": first}},
        ]})
    };
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/upsert",
        upsert("A"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x["new"] == json!(true)))
    );
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/upsert",
        upsert("B"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert!(
        results
            .iter()
            .all(|x| x["new"] == json!(false) && x["properties"]["firstname"] == json!("B"))
    );
    assert_eq!(emulator.count("contacts"), Some(12));
    let not_unique = json!({"inputs": [{"id": "x", "idProperty": "firstname", "properties": {}}]});
    assert_eq!(
        post(
            &hs.base_url,
            "/crm/v3/objects/contacts/batch/upsert",
            not_unique
        )
        .await
        .0,
        400
    );

    // One bad input fails the whole batch; with trace ids, it is a 207.
    let bad =
        json!({"inputs": [{"properties": {"firstname": "ok"}}, {"properties": {"nope": "x"}}]});
    let (status, body) = post(&hs.base_url, "/crm/v3/objects/contacts/batch/create", bad).await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert_eq!(body["errors"][0]["code"], json!("PROPERTY_DOESNT_EXIST"));
    let traced = json!({"inputs": [
        {"properties": {"firstname": "ok"}, "objectWriteTraceId": "t1"},
        {"properties": {"nope": "x"}, "objectWriteTraceId": "t2"},
    ]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/create",
        traced,
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["t2"])
    );
    assert_eq!(emulator.count("contacts"), Some(13));
    let duplicate = json!({"inputs": [{"properties": {"email": "new1@example.com"}}]});
    assert_eq!(
        post(
            &hs.base_url,
            "/crm/v3/objects/contacts/batch/create",
            duplicate
        )
        .await
        .0,
        409
    );

    let created = body["results"][0]["id"].as_str().expect("id").to_owned();
    let update = json!({"inputs": [{"id": created, "properties": {"lastname": "Z"}}, {"id": "5"}]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/update",
        update,
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["properties"]["lastname"], json!("Z"));
    assert_eq!(body["errors"][0]["category"], json!("OBJECT_NOT_FOUND"));

    let resp = client()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/archive",
            hs.base_url
        ))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .json(&json!({"inputs": [{"id": created}]}))
        .send()
        .await
        .expect("archive");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(emulator.count("contacts"), Some(12));
    let (_, _, archived) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts?archived=true",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(archived["results"][0]["id"], json!(created));
    assert_eq!(archived["results"][0]["archived"], json!(true));
}

#[tokio::test]
async fn v4_association_batch_read() {
    let (hs, _, data) = start(unlimited(), 30).await;
    let (i, key) = data
        .contacts
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.company.map(|k| (i, k)))
        .expect("a contact with company");
    let contact = (FIRST_CONTACT_ID + i as u64).to_string();
    let company = FIRST_COMPANY_ID + key as u64;
    let (status, body) = post(
        &hs.base_url,
        "/crm/v4/associations/contacts/companies/batch/read",
        json!({"inputs": [{"id": contact}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["to"][0]["toObjectId"], json!(company));
    let (status, body) = post(
        &hs.base_url,
        "/crm/v4/associations/companies/contacts/batch/read",
        json!({"inputs": [{"id": company.to_string()}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let to: Vec<&Value> = body["results"][0]["to"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    assert!(
        to.iter()
            .any(|t| t["toObjectId"] == json!(FIRST_CONTACT_ID + i as u64))
    );
}

/// Seeding speed is a benchmark matter (`ferry-bench` starts `ferry sandbox` with the data
/// set it measures; `seeding_a_million_contacts` below times a release build): this only checks
/// that a large seed is stored whole. A timed assertion here would fail on a loaded machine.
#[test]
fn seeding_many_contacts_stores_them_all() {
    let data = generate(100_000, 1, &Mess::default());
    let emulator = Emulator::new(Options::default());
    emulator.seed(&data);
    assert_eq!(emulator.count("contacts"), Some(100_000));
    assert_eq!(emulator.count("deals"), Some(data.deals.len()));
    assert_eq!(emulator.count("notes"), Some(data.notes.len()));
}

/// Run with `cargo test --release -p ferry-sandbox seeding_a_million -- --ignored --nocapture`.
#[test]
#[ignore = "takes a release build; a benchmark check"]
fn seeding_a_million_contacts() {
    let data = generate(1_000_000, 1, &Mess::default());
    let emulator = Emulator::new(Options::default());
    let started = std::time::Instant::now();
    emulator.seed(&data);
    let elapsed = started.elapsed();
    drop(data);
    println!("seeded 1,000,000 contacts and 200,000 companies in {elapsed:?}");
    assert_eq!(emulator.count("contacts"), Some(1_000_000));
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// Search

async fn search(base: &str, object: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{base}/crm/v3/objects/{object}/search"))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (
        status,
        headers,
        resp.json::<Value>().await.unwrap_or(Value::Null),
    )
}

fn no_rate_limit_headers(headers: &reqwest::header::HeaderMap) -> bool {
    !headers
        .keys()
        .any(|k| k.as_str().starts_with("x-hubspot-ratelimit"))
}

fn unlimited_search() -> Options {
    Options {
        search_limit: None,
        ..unlimited()
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn search_pages_through_live_records_with_total_and_no_rate_limit_headers() {
    let (hs, _, data) = start(unlimited_search(), 450).await;
    let archived = (FIRST_CONTACT_ID + 3).to_string();
    let resp = client()
        .delete(format!(
            "{}/crm/v3/objects/contacts/{archived}",
            hs.base_url
        ))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("archive");
    assert_eq!(resp.status().as_u16(), 204);
    let live = data.contacts.len() - 1;

    let (status, headers, body) = search(&hs.base_url, "contacts", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(no_rate_limit_headers(&headers), "{headers:?}");
    assert_eq!(body["total"], json!(live));
    assert_eq!(ids(&body).len(), 10, "default limit is 10");
    assert_eq!(body["paging"]["next"]["after"], json!("10"));
    let first = &body["results"][0];
    assert_eq!(first["id"], json!(FIRST_CONTACT_ID.to_string()));
    assert!(first["properties"]["email"].is_string() || first["properties"]["email"].is_null());
    assert!(first["properties"]["hs_object_id"].is_string());

    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = json!({"filterGroups": [], "limit": 200, "properties": ["jobtitle"]});
        if let Some(a) = &after {
            request["after"] = json!(a);
        }
        let (status, _, body) = search(&hs.base_url, "contacts", request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], json!(live));
        pages += 1;
        for id in ids(&body) {
            assert_ne!(id, archived, "archived records never appear");
            assert!(seen.insert(id), "repeated record");
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => {
                assert!(a.parse::<u64>().is_ok(), "search's after is an integer");
                after = Some(a.to_owned());
            }
            None => {
                assert!(body.get("paging").is_none(), "no paging on the last page");
                break;
            }
        }
    }
    assert_eq!((seen.len(), pages), (live, 3));
    let (status, _, body) = search(&hs.base_url, "companies", json!({"limit": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(data.companies.len()));
    assert_eq!(ids(&body), vec![FIRST_COMPANY_ID.to_string()]);
}

#[tokio::test]
async fn search_filters_groups_and_sorts() {
    let (hs, _, data) = start(unlimited_search(), 300).await;
    let count = |body: &Value| body["total"].as_u64().unwrap_or(u64::MAX) as usize;

    // EQ, ignoring case, as HubSpot compares text.
    let email = data
        .contacts
        .iter()
        .find_map(|c| c.email.clone())
        .expect("an email");
    let expected = data
        .contacts
        .iter()
        .filter(|c| {
            c.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        })
        .count();
    let eq = json!({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "EQ", "value": email.to_uppercase()}]}]});
    let (status, _, body) = search(&hs.base_url, "contacts", eq).await;
    assert_eq!((status, count(&body)), (200, expected), "{body}");

    // HAS_PROPERTY.
    let with_title = data
        .contacts
        .iter()
        .filter(|c| c.job_title.is_some())
        .count();
    assert!(with_title > 0 && with_title < data.contacts.len());
    let has = json!({"filterGroups": [{"filters": [
        {"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}]}]});
    let (status, _, body) = search(&hs.base_url, "contacts", has).await;
    assert_eq!((status, count(&body)), (200, with_title), "{body}");

    // GT and LT on a number, ANDed in one group; then ORed with a second group.
    let employees: Vec<u32> = data
        .companies
        .iter()
        .filter_map(|c| c.employee_count)
        .collect();
    let mut sorted = employees.clone();
    sorted.sort_unstable();
    let (low, high) = (sorted[sorted.len() / 4], sorted[sorted.len() * 3 / 4]);
    let between = employees.iter().filter(|n| **n > low && **n < high).count();
    let range = json!({"filterGroups": [{"filters": [
        {"propertyName": "numberofemployees", "operator": "GT", "value": low.to_string()},
        {"propertyName": "numberofemployees", "operator": "LT", "value": high.to_string()}]}]});
    let (status, _, body) = search(&hs.base_url, "companies", range).await;
    assert_eq!((status, count(&body)), (200, between), "{body}");
    let either = json!({"filterGroups": [
        {"filters": [{"propertyName": "numberofemployees", "operator": "LT", "value": low.to_string()}]},
        {"filters": [{"propertyName": "numberofemployees", "operator": "GT", "value": high.to_string()}]}]});
    let outside = employees.iter().filter(|n| **n < low || **n > high).count();
    let (status, _, body) = search(&hs.base_url, "companies", either).await;
    assert_eq!((status, count(&body)), (200, outside), "{body}");

    // Dates compare as instants: epoch milliseconds against the stored timestamps.
    let mut created: Vec<i64> = data.contacts.iter().map(|c| c.created_at_ms).collect();
    created.sort_unstable();
    let cut = created[created.len() / 2];
    let later = created.iter().filter(|t| **t > cut).count();
    let by_date = json!({"filterGroups": [{"filters": [
        {"propertyName": "createdate", "operator": "GT", "value": cut.to_string()}]}]});
    let (status, _, body) = search(&hs.base_url, "contacts", by_date).await;
    assert_eq!((status, count(&body)), (200, later), "{body}");

    // One sort rule, descending.
    let sorted = json!({"sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
                        "properties": ["createdate"], "limit": 5});
    let (status, _, body) = search(&hs.base_url, "contacts", sorted).await;
    assert_eq!(status, 200, "{body}");
    let newest = created.last().copied().unwrap_or_default();
    assert_eq!(
        body["results"][0]["properties"]["createdate"],
        json!(super::store::format_timestamp(newest))
    );
}

#[tokio::test]
async fn search_validation_errors() {
    let (hs, _, _) = start(unlimited_search(), 20).await;
    let filter = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let group = |n: usize| json!({"filters": vec![filter.clone(); n]});
    let too_many = [
        ("groups", json!({"filterGroups": vec![group(1); 6]})),
        ("filters in a group", json!({"filterGroups": [group(7)]})),
        (
            "filters in all",
            json!({"filterGroups": [group(5), group(5), group(5), group(4)]}),
        ),
        ("limit", json!({"limit": 201})),
        ("after", json!({"after": "ten"})),
        ("after 10,000", json!({"after": "10000"})),
        (
            "two sorts",
            json!({"sorts": [{"propertyName": "email"}, {"propertyName": "createdate"}]}),
        ),
        (
            "operator",
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]}),
        ),
        (
            "value",
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ"}]}]}),
        ),
    ];
    for (what, body) in too_many {
        let (status, headers, body) = search(&hs.base_url, "contacts", body).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["status"], json!("error"), "{what}");
        assert_eq!(body["category"], json!("VALIDATION_ERROR"), "{what}");
        assert!(body["correlationId"].is_string(), "{what}");
        assert!(no_rate_limit_headers(&headers), "{what}");
    }
    // The limits themselves are allowed: 5 groups, 6 in a group, 18 in all, 200 per page.
    let at_limits = json!({"filterGroups": [group(6), group(6), group(6)], "limit": 200});
    let (status, _, body) = search(&hs.base_url, "contacts", at_limits).await;
    assert_eq!(status, 200, "{body}");
    let five = json!({"filterGroups": vec![group(1); 5]});
    assert_eq!(search(&hs.base_url, "contacts", five).await.0, 200);
    let (status, _, body) = search(&hs.base_url, "widgets", json!({})).await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn search_paging_stops_at_10000_results() {
    let (hs, _, data) = start(unlimited_search(), 10_050).await;
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"limit": 200, "after": "9900", "properties": ["email"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(data.contacts.len()));
    assert_eq!(ids(&body).len(), 100, "nothing past the 10,000th result");
    assert_eq!(body["paging"]["next"]["after"], json!("10000"));
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"limit": 10, "after": "10000"}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn a_lowered_search_cap_stops_paging_there_as_10000_does() {
    let options = Options {
        search_max_results: 300,
        ..unlimited_search()
    };
    let (hs, _, data) = start(options, 400).await;
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"limit": 200, "after": "200"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(data.contacts.len()));
    assert_eq!(ids(&body).len(), 100, "nothing past the 300th result");
    assert_eq!(body["paging"]["next"]["after"], json!("300"));
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"limit": 10, "after": "300"}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    // A new query (a keyset below the lowest id read) starts from the top again.
    let below = json!({"filterGroups": [{"filters": [
        {"propertyName": "hs_object_id", "operator": "LT", "value": "2000101"}
    ]}], "limit": 200});
    let (status, _, body) = search(&hs.base_url, "contacts", below).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body).len(), 100);
}

#[tokio::test]
async fn search_has_its_own_five_per_second_limit_without_headers() {
    let options = Options {
        burst_limit: Some(3),
        ..Options::default()
    };
    let (hs, emulator, _) = start(options, 10).await;
    for i in 0..5 {
        let (status, headers, body) = search(&hs.base_url, "contacts", json!({"limit": 1})).await;
        assert_eq!(status, 200, "search {i}: {body}");
        assert!(no_rate_limit_headers(&headers));
    }
    let (status, headers, body) = search(&hs.base_url, "contacts", json!({"limit": 1})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errorType"], json!("RATE_LIMIT"));
    assert_eq!(body["policyName"], json!("SECONDLY"));
    assert_eq!(
        body["message"],
        json!("You have reached your secondly limit.")
    );
    assert!(body["correlationId"].is_string());
    assert!(no_rate_limit_headers(&headers), "{headers:?}");
    assert!(headers.get("retry-after").is_none());
    assert_eq!(emulator.request_counts(), (6, 1));

    // The searches took nothing from the ten-second window: all 3 list requests pass.
    for _ in 0..3 {
        let (status, headers, _) = get(
            &hs.base_url,
            "/crm/v3/objects/contacts?limit=1",
            crate::HUBSPOT_TOKEN,
        )
        .await;
        assert_eq!(status, 200);
        assert!(headers.get("x-hubspot-ratelimit-max").is_some());
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    assert_eq!(
        search(&hs.base_url, "contacts", json!({"limit": 1}))
            .await
            .0,
        200,
        "the window rolls on"
    );
}

#[tokio::test]
async fn v4_association_writes_move_the_primary_label_and_archive() {
    let (hs, _, data) = start(unlimited(), 30).await;
    let (i, key) = data
        .contacts
        .iter()
        .enumerate()
        .find_map(|(i, c)| c.company.map(|k| (i, k)))
        .expect("a contact with company");
    let contact = (FIRST_CONTACT_ID + i as u64).to_string();
    let old = FIRST_COMPANY_ID + key as u64;
    let new = if key == 0 { old + 1 } else { old - 1 };
    let read = |hs: String, contact: String| async move {
        let (status, body) = post(
            &hs,
            "/crm/v4/associations/contacts/companies/batch/read",
            json!({"inputs": [{"id": contact}]}),
        )
        .await;
        assert!(status == 200 || status == 207, "{body}");
        body["results"][0]["to"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let primary = |to: &[Value]| -> Option<u64> {
        to.iter()
            .find(|t| {
                t["associationTypes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["typeId"] == json!(1)))
            })
            .and_then(|t| t["toObjectId"].as_u64())
    };

    let (status, body) = post(
        &hs.base_url,
        "/crm/v4/associations/contacts/companies/batch/create",
        json!({"inputs": [
            {"from": {"id": contact}, "to": {"id": new.to_string()},
             "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]},
            {"from": {"id": contact}, "to": {"id": "999"},
             "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]},
        ]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["labels"], json!(["Primary"]));
    assert_eq!(body["results"][0]["fromObjectTypeId"], json!("0-1"));
    assert_eq!(body["errors"][0]["context"]["toObjectId"], json!(["999"]));
    let to = read(hs.base_url.clone(), contact.clone()).await;
    assert_eq!(primary(&to), Some(new), "the label moved: {to:?}");
    assert!(
        to.iter().any(|t| t["toObjectId"] == json!(old)),
        "the former primary stays associated"
    );
    let (_, _, listed) = get(
        &hs.base_url,
        &format!("/crm/v3/objects/contacts/{contact}?associations=companies"),
        crate::HUBSPOT_TOKEN,
    )
    .await;
    let types: Vec<&str> = listed["associations"]["companies"]["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        [
            "contact_to_company",
            "contact_to_company_unlabeled",
            "contact_to_company_unlabeled"
        ]
    );

    let resp = client()
        .post(format!(
            "{}/crm/v4/associations/contacts/companies/batch/archive",
            hs.base_url
        ))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .json(&json!({"inputs": [{"from": {"id": contact}, "to": [{"id": new.to_string()}, {"id": old.to_string()}]}]}))
        .send()
        .await
        .expect("archive");
    assert_eq!(resp.status().as_u16(), 204);
    assert!(read(hs.base_url.clone(), contact.clone()).await.is_empty());

    let (status, body) = post(
        &hs.base_url,
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": contact}, "to": {"id": old.to_string()}}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["associationSpec"]["associationTypeId"],
        json!(279)
    );
    let to = read(hs.base_url.clone(), contact).await;
    assert_eq!(primary(&to), None, "the default association is unlabelled");
    assert_eq!(to[0]["toObjectId"], json!(old));
}

#[tokio::test]
async fn opt_outs_only_through_communication_preferences() {
    let (hs, _, _) = start(unlimited(), 0).await;
    let create = json!({"inputs": [
        {"properties": {"email": "keep@example.com"}, "objectWriteTraceId": "a"},
        {"properties": {"email": "x@example.com", "hs_email_optout": "true"}, "objectWriteTraceId": "b"},
        {"properties": {"email": "not an email@example.com"}, "objectWriteTraceId": "c"},
        {"properties": {"email": "c@example.com", "jobtitle": "x".repeat(65_537)}, "objectWriteTraceId": "d"},
    ]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/create",
        create,
    )
    .await;
    assert_eq!(status, 207);
    let code = |trace: &str| {
        body["errors"]
            .as_array()
            .and_then(|e| {
                e.iter()
                    .find(|x| x["context"]["objectWriteTraceId"] == json!([trace]))
            })
            .map(|x| x["errors"][0]["code"].clone())
    };
    assert_eq!(code("b"), Some(json!("READ_ONLY_VALUE")));
    assert_eq!(code("c"), Some(json!("INVALID_EMAIL")));
    assert_eq!(code("d"), Some(json!("VALUE_TOO_LONG")));
    let id = body["results"][0]["id"]
        .as_str()
        .expect("created")
        .to_owned();

    let (status, body) = post(
        &hs.base_url,
        "/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=EMAIL",
        json!({"inputs": ["KEEP@example.com", "nobody-yet@example.com", "broken@"]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body["results"][0]["statuses"][0]["status"],
        json!("NOT_SUBSCRIBED")
    );
    assert_eq!(
        body["errors"][0]["context"]["subscriberIdString"],
        json!(["broken@"])
    );
    let (_, _, contact) = get(
        &hs.base_url,
        &format!("/crm/v3/objects/contacts/{id}?properties=hs_email_optout"),
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(contact["properties"]["hs_email_optout"], json!("true"));

    // The opt-out belongs to the address: a contact created with it later is opted out.
    let later = json!({"inputs": [{"properties": {"email": "nobody-yet@example.com"}}]});
    let (status, body) = post(&hs.base_url, "/crm/v3/objects/contacts/batch/create", later).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["results"][0]["properties"]["hs_email_optout"],
        json!("true")
    );
    let (status, _, wide) = get(
        &hs.base_url,
        "/communication-preferences/2026-03/statuses/nobody-yet@example.com/unsubscribe-all",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(wide["results"][0]["status"], json!("NOT_SUBSCRIBED"));

    // One address at a time needs `channel`.
    let single = "/communication-preferences/v4/statuses/solo%40example.com/unsubscribe-all";
    assert_eq!(post(&hs.base_url, single, json!({})).await.0, 400);
    let (status, body) = post(&hs.base_url, &format!("{single}?channel=EMAIL"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["subscriberIdString"],
        json!("solo@example.com")
    );
}

#[tokio::test]
async fn sms_opt_outs_are_the_numbers_in_e164() {
    let (hs, _, _) = start(unlimited(), 0).await;
    let (status, body) = post(
        &hs.base_url,
        "/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=SMS",
        json!({"inputs": ["+4915112345678", "0151 12345678"]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["statuses"][0]["channel"], json!("SMS"));
    assert_eq!(
        body["errors"][0]["context"]["subscriberIdString"],
        json!(["0151 12345678"])
    );
    let read = "/communication-preferences/v4/statuses/batch/unsubscribe-all/read?channel=SMS";
    let (status, body) = post(
        &hs.base_url,
        read,
        json!({"inputs": ["+4915112345678", "+4915100000000"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["wideStatuses"][0]["status"],
        json!("NOT_SUBSCRIBED")
    );
    assert_eq!(body["results"][1]["wideStatuses"], json!([]));
    // The number is not an email address: the email channel does not hold it.
    let (_, _, email) = get(
        &hs.base_url,
        "/communication-preferences/v4/statuses/%2B4915112345678/unsubscribe-all?channel=EMAIL",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(email["results"], json!([]));
    let (_, _, sms) = get(
        &hs.base_url,
        "/communication-preferences/v4/statuses/%2B4915112345678/unsubscribe-all?channel=SMS",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(sms["results"][0]["status"], json!("NOT_SUBSCRIBED"));
    assert_eq!(post(&hs.base_url, read, json!({"inputs": []})).await.0, 200);
}

#[tokio::test]
async fn statuses_per_subscription_type_keep_legal_basis_and_hubspots_timestamp() {
    let (hs, _, data) = start(unlimited(), 40).await;
    let (status, _, defs) = get(
        &hs.base_url,
        "/communication-preferences/2026-03/definitions",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = defs["results"]
        .as_array()
        .expect("definitions")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    // No SMS status in this account (no SMS add-on): no SMS type.
    assert!(
        names.contains(&"One to One") && !names.contains(&"SMS Marketing"),
        "{names:?}"
    );
    let (status, body) = post(
        &hs.base_url,
        "/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=SMS",
        json!({"inputs": ["+4915112345678"]}),
    )
    .await;
    assert!((200..300).contains(&status), "{body}");
    let sms_types = |defs: &Value| {
        defs["results"]
            .as_array()
            .expect("definitions")
            .iter()
            .filter(|d| d["communicationMethod"] == "SMS")
            .count()
    };
    let definitions = "/communication-preferences/v4/definitions";
    let (_, _, defs) = get(&hs.base_url, definitions, crate::HUBSPOT_TOKEN).await;
    assert_eq!(
        sms_types(&defs),
        0,
        "a write does not buy the SMS add-on: {defs}"
    );
    let (with_addon, _, _) = start(
        Options {
            sms_addon: true,
            ..unlimited()
        },
        1,
    )
    .await;
    let (_, _, defs) = get(&with_addon.base_url, definitions, crate::HUBSPOT_TOKEN).await;
    assert_eq!(
        sms_types(&defs),
        1,
        "an account with the add-on has its SMS type: {defs}"
    );
    let sms_seeded = Emulator::new(unlimited());
    let mut seed = generate(40, 7, &Mess::default());
    seed.contacts.iter_mut().for_each(|c| {
        c.sms_opt_out = true;
        c.mobile_phone = Some("+49 151 12345678".into());
    });
    sms_seeded.seed(&seed);
    assert!(
        sms_seeded.read().sms_addon,
        "an account seeded with SMS opt-outs has the add-on"
    );

    // Seeded (only where the seed draws opt-outs per channel): contacts unsubscribed from One
    // to One on a legal basis, shown on the record by the type's read-only flag.
    let typed = Emulator::new(unlimited());
    let mess = Mess {
        opt_out_channels: 0.3,
        ..Mess::default()
    };
    let typed_data = generate(40, 7, &mess);
    typed.seed(&typed_data);
    let typed_hs = crate::serve(
        "hubspot",
        typed.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve on loopback");
    assert!(
        data.contacts
            .iter()
            .all(|c| c.email_unsubscribed_types.is_empty()),
        "the default seed holds no per-type opt-out"
    );
    let seeded = typed_data
        .contacts
        .iter()
        .find(|c| c.email_unsubscribed_types == ["One to One"] && c.email.is_some())
        .expect("a seeded per-type unsubscription");
    let email = seeded.email.clone().expect("an address");
    let read = "/communication-preferences/v4/statuses/batch/read?channel=EMAIL";
    let (status, body) = post(&typed_hs.base_url, read, json!({"inputs": [email]})).await;
    assert_eq!(status, 200, "{body}");
    let statuses = body["results"][0]["statuses"].as_array().expect("statuses");
    assert_eq!(statuses.len(), 3, "one per email type");
    let one = statuses
        .iter()
        .find(|s| s["subscriptionName"] == "One to One")
        .expect("One to One");
    assert_eq!(one["status"], json!("NOT_SUBSCRIBED"));
    assert_eq!(one["legalBasis"], json!("LEGITIMATE_INTEREST_CLIENT"));
    let flags = |base: String, email: String| async move {
        let path = format!(
            "/crm/v3/objects/contacts/{}?idProperty=email&properties=hs_email_optout_1,hs_email_optout_2,hs_email_optout_3",
            urlencoding::encode(&email)
        );
        let (status, _, body) = get(&base, &path, crate::HUBSPOT_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        ["1", "2", "3"].map(|n| body["properties"][format!("hs_email_optout_{n}")].clone())
    };
    assert_eq!(
        flags(typed_hs.base_url.clone(), email.clone()).await,
        [Value::Null, json!("true"), Value::Null],
        "a type never opted out of shows no value"
    );
    let unsubscribe = json!({"inputs": [{"subscriberIdString": email.clone(), "channel": "EMAIL",
        "statusState": "NOT_SUBSCRIBED", "subscriptionId": 3, "legalBasis": "NON_GDPR"}]});
    let write = "/communication-preferences/v4/statuses/batch/write";
    let (status, body) = post(&typed_hs.base_url, write, unsubscribe).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        flags(typed_hs.base_url.clone(), email.clone()).await,
        [Value::Null, json!("true"), json!("true")],
        "a status written shows on the contact's flag"
    );

    // A write sets status and legal basis; the timestamp is HubSpot's, whatever is sent.
    let write = json!({"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 3,
                       "legalBasis": "PERFORMANCE_OF_CONTRACT", "legalBasisExplanation": "Contract",
                       "timestamp": "2001-01-01T00:00:00Z"});
    let path = "/communication-preferences/v4/statuses/new%40example.com";
    let (status, body) = post(&hs.base_url, path, write).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["legalBasis"], json!("PERFORMANCE_OF_CONTRACT"));
    assert_ne!(body["timestamp"], json!("2001-01-01T00:00:00Z"));
    let bad = json!({"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 4});
    assert_eq!(
        post(&hs.base_url, path, bad).await.0,
        400,
        "type 4 is an SMS type"
    );
    let bad = json!({"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 3, "legalBasis": "WHIM"});
    assert_eq!(post(&hs.base_url, path, bad).await.0, 400);
    let (status, body) = post(
        &hs.base_url,
        "/communication-preferences/v4/statuses/batch/write",
        json!({"inputs": [
            {"subscriberIdString": "new@example.com", "channel": "EMAIL", "statusState": "NOT_SUBSCRIBED", "subscriptionId": 2},
            {"subscriberIdString": "broken@", "channel": "EMAIL", "statusState": "NOT_SUBSCRIBED", "subscriptionId": 2},
        ]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    let (_, body) = post(&hs.base_url, read, json!({"inputs": ["NEW@example.com"]})).await;
    let by_name = |name: &str| {
        body["results"][0]["statuses"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["subscriptionName"] == name).cloned())
            .expect("a status")
    };
    assert_eq!(by_name("One to One")["status"], json!("NOT_SUBSCRIBED"));
    assert_eq!(
        by_name("Customer Service Communication")["status"],
        json!("SUBSCRIBED")
    );
    assert_eq!(
        by_name("Marketing Information")["status"],
        json!("NOT_SPECIFIED")
    );
}

#[tokio::test]
async fn batch_unsubscribe_needs_the_batch_scopes() {
    let (hs, _, _) = start(
        Options {
            batch_subscriptions: false,
            ..unlimited()
        },
        0,
    )
    .await;
    let (status, body) = post(
        &hs.base_url,
        "/communication-preferences/v4/statuses/batch/unsubscribe-all",
        json!({"inputs": ["a@example.com"]}),
    )
    .await;
    assert_eq!(
        (status, body["category"].clone()),
        (403, json!("MISSING_SCOPES"))
    );
}

/// Lists are serialised straight from the store; their bytes must stay what a
/// `serde_json::Value` of the same answer gives (sorted keys, compact), as before.
#[tokio::test]
async fn list_bodies_are_byte_for_byte_what_a_value_tree_gives() {
    let (hs, emulator, _) = start(unlimited(), 120).await;
    emulator.archive("contacts", FIRST_CONTACT_ID + 3);
    for path in [
        "/crm/v3/objects/contacts?limit=100&properties=email,firstname,lastname,company,hs_email_optout&associations=companies",
        "/crm/v3/objects/contacts?archived=true&associations=companies",
        "/crm/v3/objects/companies?limit=7&properties=name,domain,annualrevenue",
        "/crm/v3/objects/contacts/2000001?associations=companies",
    ] {
        let raw = client()
            .get(format!("{}{path}", hs.base_url))
            .bearer_auth(crate::HUBSPOT_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let tree: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(raw, serde_json::to_string(&tree).unwrap(), "{path}");
    }
}

/// The property of `object` called `name`, from `GET /crm/v3/properties/{object}`.
async fn property(base: &str, object: &str, name: &str) -> Value {
    let (status, _, listed) = get(
        base,
        &format!("/crm/v3/properties/{object}"),
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    listed["results"]
        .as_array()
        .and_then(|r| r.iter().find(|p| p["name"] == json!(name)).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn properties_list_the_seeded_custom_fields_and_industry_options() {
    let (hs, _, _) = start(unlimited(), 5).await;
    for (object, name, ty, field_type) in [
        ("companies", "region", "string", "text"),
        ("companies", "seats", "number", "number"),
        ("companies", "tier", "enumeration", "select"),
        ("contacts", "favourite_colour", "string", "text"),
        ("contacts", "loyalty_points", "number", "number"),
    ] {
        let p = property(&hs.base_url, object, name).await;
        assert_eq!(p["type"], json!(ty), "{object}.{name}: {p}");
        assert_eq!(p["fieldType"], json!(field_type), "{object}.{name}");
        assert_eq!(p["hubspotDefined"], json!(false), "{object}.{name}");
        assert_eq!(
            p["modificationMetadata"]["readOnlyValue"],
            json!(false),
            "{object}.{name}"
        );
    }
    let tier = property(&hs.base_url, "companies", "tier").await;
    let options: Vec<(&str, &str)> = tier["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap_or(""),
                o["label"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        options,
        [("gold", "Gold"), ("silver", "Silver"), ("bronze", "Bronze")]
    );
    let industry = property(&hs.base_url, "companies", "industry").await;
    assert_eq!(industry["type"], json!("enumeration"));
    assert_eq!(industry["hubspotDefined"], json!(true));
    let options = industry["options"].as_array().expect("industry options");
    assert_eq!(options.len(), super::fields::INDUSTRIES.len());
    assert!(
        options
            .iter()
            .any(|o| o["value"] == json!("COMPUTER_SOFTWARE")
                && o["label"] == json!("Computer Software"))
    );
    // System properties are listed, read-only.
    let id = property(&hs.base_url, "contacts", "hs_object_id").await;
    assert_eq!(id["modificationMetadata"]["readOnlyValue"], json!(true));
    // The contact custom fields are not company properties.
    assert_eq!(
        property(&hs.base_url, "companies", "loyalty_points").await,
        Value::Null
    );
}

#[tokio::test]
async fn seeded_custom_values_are_returned_only_when_asked_for() {
    let (hs, _, data) = start(unlimited(), 40).await;
    let (status, _, plain) = get(
        &hs.base_url,
        "/crm/v3/objects/companies?limit=100",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    assert!(plain["results"][0]["properties"].get("region").is_none());
    let (_, _, asked) = get(
        &hs.base_url,
        "/crm/v3/objects/companies?limit=100&properties=region,seats,tier",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    let results = asked["results"].as_array().expect("results");
    assert_eq!(results.len(), data.companies.len());
    for (company, r) in data.companies.iter().zip(results) {
        let props = &r["properties"];
        assert_eq!(props["region"].as_str(), company.region.as_deref());
        assert_eq!(
            props["seats"].as_str(),
            company.seats.map(|n| n.to_string()).as_deref()
        );
        // The internal value, not the label.
        assert_eq!(
            props["tier"].as_str(),
            company.tier.map(str::to_lowercase).as_deref()
        );
    }
    assert!(
        data.companies
            .iter()
            .any(|c| c.tier.is_some() && c.seats.is_some())
    );
    let (_, _, contacts) = get(
        &hs.base_url,
        "/crm/v3/objects/contacts?limit=100&properties=favourite_colour,loyalty_points",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    for (contact, r) in data
        .contacts
        .iter()
        .zip(contacts["results"].as_array().expect("results"))
    {
        let props = &r["properties"];
        assert_eq!(
            props["favourite_colour"].as_str(),
            contact.favourite_colour.as_deref()
        );
        assert_eq!(
            props["loyalty_points"].as_str(),
            contact.loyalty_points.map(|n| n.to_string()).as_deref()
        );
    }
}

#[tokio::test]
async fn custom_values_are_checked_on_write() {
    let (hs, _, _) = start(unlimited(), 3).await;
    let create =
        |props: Value| json!({"inputs": [{"properties": props, "objectWriteTraceId": "t"}]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/companies/batch/create",
        create(json!({"name": "Acme", "region": "EMEA", "seats": 12, "tier": "silver"})),
    )
    .await;
    assert!(status == 201 || status == 200, "{body}");
    let id = body["results"][0]["id"].as_str().expect("id").to_owned();
    let (_, _, read) = get(
        &hs.base_url,
        &format!("/crm/v3/objects/companies/{id}?properties=region,seats,tier"),
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(read["properties"]["seats"], json!("12"));
    assert_eq!(read["properties"]["tier"], json!("silver"));
    // A label is not a value, nor is an unknown option.
    for (props, code) in [
        (json!({"name": "B", "tier": "Silver"}), "INVALID_OPTION"),
        (json!({"name": "B", "tier": "platinum"}), "INVALID_OPTION"),
        (json!({"name": "B", "seats": "a dozen"}), "INVALID_INTEGER"),
        (
            json!({"name": "B", "shoe_size": "9"}),
            "PROPERTY_DOESNT_EXIST",
        ),
    ] {
        let (status, body) = post(
            &hs.base_url,
            "/crm/v3/objects/companies/batch/create",
            create(props.clone()),
        )
        .await;
        assert!(status == 400 || status == 207, "{props}: {status} {body}");
        assert!(body.to_string().contains(code), "{props}: {body}");
    }
    // Industry takes HubSpot's internal values only, as the API does: not a label, not a name
    // of ferry's seed.
    for (industry, ok) in [
        ("COMPUTER_SOFTWARE", true),
        ("Computer Software", false),
        ("Technology", false),
    ] {
        let (status, body) = post(
            &hs.base_url,
            "/crm/v3/objects/companies/batch/create",
            create(json!({"name": "C", "industry": industry})),
        )
        .await;
        if ok {
            assert!(status == 201 || status == 200, "{industry}: {body}");
        } else {
            assert!(
                body.to_string().contains("INVALID_OPTION"),
                "{industry}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_created_enumeration_property_works_like_a_seeded_one() {
    let (hs, _, _) = start(unlimited(), 3).await;
    let band = json!({"name": "size_band", "label": "Size band", "type": "enumeration",
        "fieldType": "select", "groupName": "companyinformation",
        "options": [{"label": "Small", "value": "small"}, {"label": "Large", "value": "large"}]});
    let (status, body) = post(&hs.base_url, "/crm/v3/properties/companies", band).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hubspotDefined"], json!(false));
    assert_eq!(body["options"][1]["label"], json!("Large"));
    let listed = property(&hs.base_url, "companies", "size_band").await;
    assert_eq!(listed["type"], json!("enumeration"));
    // Options need labels and values.
    for bad in [
        json!([{"label": "Small"}]),
        json!([{"label": "A", "value": "a"}, {"label": "B", "value": "a"}]),
    ] {
        let p = json!({"name": "bad_band", "label": "Bad", "type": "enumeration",
            "fieldType": "select", "groupName": "companyinformation", "options": bad});
        let (status, body) = post(&hs.base_url, "/crm/v3/properties/companies", p).await;
        assert_eq!(status, 400, "{body}");
    }
    let create = |tier: &str| json!({"inputs": [{"properties": {"name": "D", "size_band": tier}, "objectWriteTraceId": "t"}]});
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/companies/batch/create",
        create("large"),
    )
    .await;
    assert!(status == 201 || status == 200, "{body}");
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/companies/batch/create",
        create("medium"),
    )
    .await;
    assert!(status == 400 || status == 207, "{body}");
    assert!(body.to_string().contains("INVALID_OPTION"), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Owners, pipelines, deals, notes and their associations

async fn patch(base: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .patch(format!("{base}{path}"))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

async fn read(base: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = get(base, path, crate::HUBSPOT_TOKEN).await;
    (status, body)
}

/// The `error` codes and property names inside a `Property values were not valid` body.
fn property_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["code"].as_str().unwrap_or_default().to_owned(),
                        e["context"]["propertyName"][0]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every page of a v3 list, following `paging.next.after`.
async fn list_all(base: &str, object: &str, limit: usize, extra: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/crm/v3/objects/{object}?limit={limit}{extra}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", urlencoding::encode(a)));
        }
        let (status, body) = read(base, &path).await;
        assert_eq!(status, 200, "{body}");
        out.extend(body["results"].as_array().cloned().unwrap_or_default());
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn owners_list_page_filter_by_email_and_show_deactivated_users_as_archived() {
    let (hs, _, _) = start(unlimited(), 10).await;
    let (status, first) = read(&hs.base_url, "/crm/v3/owners?limit=3").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"].as_array().map(Vec::len), Some(3));
    let after = first["paging"]["next"]["after"].as_str().expect("paging");
    let (_, second) = read(
        &hs.base_url,
        &format!(
            "/crm/v3/owners?limit=3&after={}",
            urlencoding::encode(after)
        ),
    )
    .await;
    let mut ids: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|b| b["results"].as_array().cloned().unwrap_or_default())
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    let all = read(&hs.base_url, "/crm/v3/owners").await.1;
    let active: Vec<&Value> = all["results"].as_array().expect("results").iter().collect();
    // Farah is not a HubSpot user; Hana is deactivated: six active owners.
    assert_eq!(active.len(), 6, "{all}");
    ids.dedup();
    assert_eq!(ids.len(), 6);
    let ana = active
        .iter()
        .find(|o| o["email"] == json!("ana.garcia@ferry-demo.example"))
        .expect("Ana");
    assert_eq!(ana["firstName"], json!("Ana"));
    assert_eq!(ana["lastName"], json!("García"));
    assert_eq!(ana["type"], json!("PERSON"));
    assert_eq!(ana["archived"], json!(false));
    assert!(ana["userId"].is_number() && ana["id"].is_string());
    assert_ne!(
        ana["id"].as_str(),
        ana["userId"].to_string().as_str().into()
    );

    let (_, by_email) = read(
        &hs.base_url,
        "/crm/v3/owners?email=BEN.OKAFOR%40ferry-demo.example",
    )
    .await;
    assert_eq!(by_email["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_email["results"][0]["firstName"], json!("Ben"));
    let (_, farah) = read(
        &hs.base_url,
        "/crm/v3/owners?email=farah.haddad%40ferry-demo.example",
    )
    .await;
    assert_eq!(farah["results"], json!([]));

    let (_, archived) = read(&hs.base_url, "/crm/v3/owners?archived=true").await;
    let archived = archived["results"].as_array().expect("results").clone();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["email"], json!("hana.novak@ferry-demo.example"));
    assert_eq!(archived[0]["archived"], json!(true));
    assert_eq!(archived[0]["userId"], Value::Null);
    assert!(archived[0]["userIdIncludingInactive"].is_number());

    let id = ana["id"].as_str().expect("id");
    let (status, one) = read(&hs.base_url, &format!("/crm/v3/owners/{id}")).await;
    assert_eq!((status, &one["email"]), (200, &ana["email"]));
    let (status, by_user) = read(
        &hs.base_url,
        &format!("/crm/v3/owners/{}?idProperty=userId", ana["userId"]),
    )
    .await;
    assert_eq!((status, &by_user["id"]), (200, &ana["id"]));
    let hana = archived[0]["id"].as_str().expect("id");
    let (status, _) = read(&hs.base_url, &format!("/crm/v3/owners/{hana}")).await;
    assert_eq!(status, 404, "an archived owner needs archived=true");
    let (status, _) = read(
        &hs.base_url,
        &format!("/crm/v3/owners/{hana}?archived=true"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = read(&hs.base_url, "/crm/v3/owners/1").await;
    assert_eq!(
        (status, body["category"].as_str()),
        (404, Some("OBJECT_NOT_FOUND"))
    );
    let (status, _) = read(&hs.base_url, "/crm/v3/owners?limit=501").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn owner_ids_are_local_to_the_account() {
    let a = Emulator::new(Options::default());
    let b = Emulator::new(Options::default());
    assert_ne!(a.inner.owner_ids[0], b.inner.owner_ids[0]);
    assert_eq!(a.inner.owner_ids[5], None, "Farah is not a HubSpot user");
}

#[tokio::test]
async fn deal_pipelines_with_stage_ids_probability_and_closed_flags() {
    let (hs, _, _) = start(unlimited(), 10).await;
    let (status, body) = read(&hs.base_url, "/crm/v3/pipelines/deals").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("paging").is_none(), "pipelines are not paged");
    let pipelines = body["results"].as_array().expect("results");
    assert_eq!(pipelines.len(), 2);
    let sales = &pipelines[0];
    assert_eq!(sales["id"], json!("default"));
    assert_eq!(sales["label"], json!("Sales Pipeline"));
    assert_eq!(sales["createdAt"], json!("1970-01-01T00:00:00.000Z"));
    let stages = sales["stages"].as_array().expect("stages");
    assert_eq!(stages[0]["id"], json!("appointmentscheduled"));
    assert_eq!(stages[0]["label"], json!("Appointment Scheduled"));
    assert_eq!(
        stages[0]["metadata"],
        json!({"isClosed": "false", "probability": "0.2"})
    );
    let won = stages
        .iter()
        .find(|s| s["id"] == json!("closedwon"))
        .expect("won");
    assert_eq!(
        won["metadata"],
        json!({"isClosed": "true", "probability": "1.0"})
    );
    let lost = stages
        .iter()
        .find(|s| s["id"] == json!("closedlost"))
        .expect("lost");
    assert_eq!(
        lost["metadata"],
        json!({"isClosed": "true", "probability": "0.0"})
    );
    let renewals = &pipelines[1];
    assert_eq!(renewals["label"], json!("Renewals"));
    let id = renewals["id"].as_str().expect("id");
    assert!(id.parse::<u64>().is_ok(), "custom pipeline ids are numeric");
    let stage = renewals["stages"][0]["id"].as_str().expect("stage id");
    assert!(stage.parse::<u64>().is_ok());

    let (status, one) = read(&hs.base_url, &format!("/crm/v3/pipelines/0-3/{id}")).await;
    assert_eq!((status, &one["label"]), (200, &json!("Renewals")));
    let (status, stages) = read(
        &hs.base_url,
        &format!("/crm/v3/pipelines/deals/{id}/stages"),
    )
    .await;
    assert_eq!(
        (status, stages["results"].as_array().map(Vec::len)),
        (200, Some(4))
    );
    let (status, s) = read(
        &hs.base_url,
        &format!("/crm/v3/pipelines/deals/{id}/stages/{stage}"),
    )
    .await;
    assert_eq!((status, &s["label"]), (200, &json!("Renewal Due")));
    let (status, body) = read(&hs.base_url, "/crm/v3/pipelines/deals/nope").await;
    assert_eq!(
        (status, body["category"].as_str()),
        (404, Some("OBJECT_NOT_FOUND"))
    );
    let (status, _) = read(&hs.base_url, "/crm/v3/pipelines/deals/default/stages/nope").await;
    assert_eq!(status, 404);
    let (status, _) = read(&hs.base_url, "/crm/v3/pipelines/widgets").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn owners_on_contacts_and_companies_are_seeded_readable_and_checked() {
    let (hs, emulator, data) = start(unlimited(), 40).await;
    let owner_of = |key: Option<usize>| {
        key.and_then(|k| emulator.inner.owner_ids[k])
            .map(|id| json!(id.to_string()))
            .unwrap_or(Value::Null)
    };
    let contacts = list_all(
        &hs.base_url,
        "contacts",
        100,
        "&properties=hubspot_owner_id",
    )
    .await;
    for (r, seeded) in contacts.iter().zip(&data.contacts) {
        assert_eq!(r["properties"]["hubspot_owner_id"], owner_of(seeded.owner));
    }
    let companies = list_all(
        &hs.base_url,
        "companies",
        100,
        "&properties=hubspot_owner_id",
    )
    .await;
    for (r, seeded) in companies.iter().zip(&data.companies) {
        assert_eq!(r["properties"]["hubspot_owner_id"], owner_of(seeded.owner));
    }
    let active = emulator.inner.owner_ids[1].expect("Ben").to_string();
    let inactive = emulator.inner.owner_ids[7].expect("Hana").to_string();
    let path = format!("/crm/v3/objects/contacts/{FIRST_CONTACT_ID}");
    let (status, body) = patch(
        &hs.base_url,
        &path,
        json!({"properties": {"hubspot_owner_id": active}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["hubspot_owner_id"], json!(active));
    for bad in [inactive.as_str(), "12345", "ana.garcia@ferry-demo.example"] {
        let (status, body) = patch(
            &hs.base_url,
            &path,
            json!({"properties": {"hubspot_owner_id": bad}}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["category"], json!("VALIDATION_ERROR"));
        assert_eq!(
            property_errors(&body),
            vec![("INVALID_OPTION".to_owned(), "hubspot_owner_id".to_owned())]
        );
    }
    let (_, prop) = read(
        &hs.base_url,
        "/crm/v3/properties/companies/hubspot_owner_id",
    )
    .await;
    assert_eq!(prop["type"], json!("enumeration"));
    assert_eq!(
        prop["options"].as_array().map(Vec::len),
        Some(6),
        "active owners"
    );
}

#[tokio::test]
async fn seeded_deals_list_with_stage_ids_owner_currency_and_won_lost() {
    let (hs, emulator, data) = start(unlimited(), 200).await;
    assert_eq!(emulator.count("deals"), Some(data.deals.len()));
    assert_eq!(emulator.count("0-3"), Some(data.deals.len()));
    let deals = list_all(
        &hs.base_url,
        "deals",
        17,
        "&properties=dealname,dealstage,pipeline,amount,deal_currency_code,hubspot_owner_id,closedate,hs_is_closed,hs_is_closed_won",
    )
    .await;
    assert_eq!(deals.len(), data.deals.len());
    let pipelines = &emulator.inner.pipelines;
    let (mut won, mut lost) = (0, 0);
    for (r, seeded) in deals.iter().zip(&data.deals) {
        let p = &r["properties"];
        assert_eq!(p["dealname"], json!(seeded.name));
        assert_eq!(p["deal_currency_code"], json!(seeded.currency));
        assert_eq!(
            p["closedate"],
            json!(format!("{}T00:00:00.000Z", seeded.close_date))
        );
        let (seed_pipeline, seed_stage) = seeded.seed_stage();
        let label = crate::accounts::vendor_stage(DEAL_STAGES, seed_pipeline.key, seed_stage.key)
            .expect("placed");
        let pipeline = pipelines
            .iter()
            .find(|x| x.label == label.pipeline)
            .expect("pipeline");
        assert_eq!(p["pipeline"], json!(pipeline.id));
        let stage = pipeline
            .stages
            .iter()
            .find(|s| s.label == label.stage)
            .expect("stage");
        assert_eq!(p["dealstage"], json!(stage.id));
        let outcome = seed_stage.outcome;
        assert_eq!(
            p["hs_is_closed_won"],
            json!((outcome == crate::accounts::Outcome::Won).to_string())
        );
        assert_eq!(
            p["hs_is_closed"],
            json!((outcome != crate::accounts::Outcome::Open).to_string())
        );
        match outcome {
            crate::accounts::Outcome::Won => won += 1,
            crate::accounts::Outcome::Lost => lost += 1,
            _ => {}
        }
        if let Some(amount) = seeded.amount {
            assert_eq!(p["amount"], json!(amount.to_string()));
        }
        let owner = seeded
            .owner
            .and_then(|k| emulator.inner.owner_ids[k])
            .map(|id| json!(id.to_string()))
            .unwrap_or(Value::Null);
        assert_eq!(p["hubspot_owner_id"], owner);
    }
    assert!(won > 0 && lost > 0);
    // The default properties of a deal.
    let (_, one) = read(
        &hs.base_url,
        &format!(
            "/crm/v3/objects/deals/{}",
            deals[0]["id"].as_str().unwrap_or_default()
        ),
    )
    .await;
    let keys: HashSet<&str> = one["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    let (status, body) = read(&hs.base_url, "/crm/v3/objects/deals?limit=101").await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn deal_writes_follow_hubspots_stage_pipeline_currency_and_owner_rules() {
    let (hs, emulator, _) = start(unlimited(), 20).await;
    let renewals = emulator.inner.pipelines[1].clone();
    let renewal_stage = renewals.stages[0].id.clone();
    let base = &hs.base_url;
    let create = |props: Value| {
        let base = base.clone();
        async move {
            post(
                &base,
                "/crm/v3/objects/deals",
                json!({ "properties": props }),
            )
            .await
        }
    };
    // Name and stage: the default pipeline is assumed.
    let (status, deal) =
        create(json!({"dealname": "Plain", "dealstage": "qualifiedtobuy", "amount": 1200.5})).await;
    assert_eq!(status, 201, "{deal}");
    assert_eq!(deal["properties"]["pipeline"], json!("default"));
    assert_eq!(deal["properties"]["amount"], json!("1200.5"));
    assert_eq!(deal["properties"]["hs_is_closed"], json!("false"));
    let id = deal["id"].as_str().expect("id").to_owned();

    let cases = [
        (
            json!({"dealstage": "qualifiedtobuy"}),
            "REQUIRED_PROPERTY",
            "dealname",
        ),
        (
            json!({"dealname": "No stage"}),
            "REQUIRED_PROPERTY",
            "dealstage",
        ),
        (
            json!({"dealname": "Label", "dealstage": "Closed Won"}),
            "INVALID_OPTION",
            "dealstage",
        ),
        (
            json!({"dealname": "Wrong pipeline", "dealstage": renewal_stage}),
            "INVALID_OPTION",
            "dealstage",
        ),
        (
            json!({"dealname": "Wrong pipeline", "pipeline": "default", "dealstage": renewal_stage}),
            "INVALID_OPTION",
            "dealstage",
        ),
        (
            json!({"dealname": "Bad pipeline", "pipeline": "Renewals", "dealstage": renewal_stage}),
            "INVALID_OPTION",
            "pipeline",
        ),
        (
            json!({"dealname": "Yen", "dealstage": "closedwon", "deal_currency_code": "JPY"}),
            "INVALID_OPTION",
            "deal_currency_code",
        ),
        (
            json!({"dealname": "Amount", "dealstage": "closedwon", "amount": "lots"}),
            "INVALID_INTEGER",
            "amount",
        ),
        (
            json!({"dealname": "Date", "dealstage": "closedwon", "closedate": "soon"}),
            "INVALID_DATE",
            "closedate",
        ),
        (
            json!({"dealname": "Owner", "dealstage": "closedwon", "hubspot_owner_id": emulator.inner.owner_ids[7].expect("Hana").to_string()}),
            "INVALID_OPTION",
            "hubspot_owner_id",
        ),
        (
            json!({"dealname": "Owner", "dealstage": "closedwon", "hubspot_owner_id": "99"}),
            "INVALID_OPTION",
            "hubspot_owner_id",
        ),
        (
            json!({"dealname": "Closed", "dealstage": "closedwon", "hs_is_closed_won": "true"}),
            "READ_ONLY_VALUE",
            "hs_is_closed_won",
        ),
        (
            json!({"dealname": "x".repeat(65_537), "dealstage": "closedwon"}),
            "VALUE_TOO_LONG",
            "dealname",
        ),
        (
            json!({"dealname": "Nope", "dealstage": "closedwon", "nope": "1"}),
            "PROPERTY_DOESNT_EXIST",
            "nope",
        ),
    ];
    for (props, code, name) in cases {
        let (status, body) = create(props.clone()).await;
        assert_eq!(status, 400, "{props}: {body}");
        assert_eq!(body["category"], json!("VALIDATION_ERROR"), "{body}");
        assert_eq!(
            property_errors(&body),
            vec![(code.to_owned(), name.to_owned())],
            "{props}: {body}"
        );
    }
    let before = emulator.count("deals");
    // A renewal stage with its pipeline; a valid currency and an active owner.
    let owner = emulator.inner.owner_ids[0].expect("Ana").to_string();
    let (status, renewal) = create(json!({
        "dealname": "Renewal", "pipeline": renewals.id, "dealstage": renewals.stages[2].id,
        "deal_currency_code": "EUR", "hubspot_owner_id": owner, "closedate": "2025-03-01",
    }))
    .await;
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(renewal["properties"]["hs_is_closed_won"], json!("true"));
    assert_eq!(renewal["properties"]["hubspot_owner_id"], json!(owner));
    assert_eq!(
        renewal["properties"]["closedate"],
        json!("2025-03-01T00:00:00.000Z")
    );
    assert_eq!(emulator.count("deals"), before.map(|n| n + 1));

    // Updates: moving to a stage of another pipeline needs the pipeline too.
    let path = format!("/crm/v3/objects/deals/{id}");
    let (status, body) = patch(
        base,
        &path,
        json!({"properties": {"dealstage": renewal_stage}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = patch(
        base,
        &path,
        json!({"properties": {"pipeline": renewals.id, "dealstage": renewal_stage}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["pipeline"], json!(renewals.id));
    let (status, body) = patch(base, &path, json!({"properties": {"dealname": ""}})).await;
    assert_eq!(
        (status, property_errors(&body)),
        (
            400,
            vec![("REQUIRED_PROPERTY".to_owned(), "dealname".to_owned())]
        )
    );
    let (status, _) = patch(
        base,
        "/crm/v3/objects/deals/42",
        json!({"properties": {"dealname": "x"}}),
    )
    .await;
    assert_eq!(status, 404);
    // Closed won, then lost: HubSpot keeps a closed deal editable.
    let (status, body) = patch(
        base,
        &path,
        json!({"properties": {"pipeline": "default", "dealstage": "closedlost"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["hs_is_closed_won"], json!("false"));
    assert_eq!(body["properties"]["hs_is_closed"], json!("true"));
    // Archive: gone from reads, listed with archived=true.
    let resp = client()
        .delete(format!("{base}{path}"))
        .bearer_auth(crate::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(read(base, &path).await.0, 404);
    let (status, archived) = read(base, &format!("{path}?archived=true")).await;
    assert_eq!((status, &archived["archived"]), (200, &json!(true)));
}

#[tokio::test]
async fn deal_batches_cap_inputs_report_per_input_errors_and_upsert_by_source_id() {
    let (hs, emulator, _) = start(unlimited(), 20).await;
    let base = &hs.base_url;
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"dealname": format!("d{i}"), "dealstage": "closedwon"}}))
        .collect();
    let (status, body) = post(
        base,
        "/crm/v3/objects/0-3/batch/create",
        json!({"inputs": too_many}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    // One bad input fails the batch, unless every input has a trace id.
    let inputs = json!([
        {"properties": {"dealname": "ok", "dealstage": "closedwon"}},
        {"properties": {"dealname": "bad", "dealstage": "nope"}},
    ]);
    let before = emulator.count("deals");
    let (status, _) = post(
        base,
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": inputs}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(emulator.count("deals"), before);
    let traced = json!([
        {"objectWriteTraceId": "a", "properties": {"dealname": "ok", "dealstage": "closedwon"}},
        {"objectWriteTraceId": "b", "properties": {"dealname": "bad", "dealstage": "nope"}},
    ]);
    let (status, body) = post(
        base,
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": traced}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["objectWriteTraceId"], json!("a"));
    assert_eq!(
        body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["b"])
    );
    assert_eq!(emulator.count("deals"), before.map(|n| n + 1));

    // The connector's unique source-id property, then upserts keyed by it.
    let (status, prop) = post(
        base,
        "/crm/v3/properties/deals",
        json!({"name": "ferry_source_id", "label": "Ferry source id", "type": "string",
               "fieldType": "text", "groupName": "dealinformation", "hasUniqueValue": true}),
    )
    .await;
    assert_eq!(status, 201, "{prop}");
    assert_eq!(prop["hasUniqueValue"], json!(true));
    let (status, _) = post(
        base,
        "/crm/v3/properties/deals",
        json!({"name": "ferry_source_id", "label": "Again", "type": "string", "fieldType": "text", "groupName": "dealinformation"}),
    )
    .await;
    assert_eq!(status, 409);
    let upsert = |name: &str| {
        json!({"inputs": [{"id": "src-1", "idProperty": "ferry_source_id",
                           "properties": {"dealname": name, "dealstage": "contractsent"}}]})
    };
    let (status, first) = post(base, "/crm/v3/objects/deals/batch/upsert", upsert("First")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"][0]["new"], json!(true));
    let id = first["results"][0]["id"].clone();
    let (status, second) = post(base, "/crm/v3/objects/deals/batch/upsert", upsert("Second")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["results"][0]["new"], json!(false));
    assert_eq!(second["results"][0]["id"], id);
    assert_eq!(
        second["results"][0]["properties"]["ferry_source_id"],
        json!("src-1")
    );
    let (status, by_source) = read(
        base,
        "/crm/v3/objects/deals/src-1?idProperty=ferry_source_id&properties=dealname",
    )
    .await;
    assert_eq!(
        (status, &by_source["properties"]["dealname"]),
        (200, &json!("Second"))
    );
    // A duplicate source id on create is a conflict.
    let (status, body) = post(
        base,
        "/crm/v3/objects/deals",
        json!({"properties": {"dealname": "Dup", "dealstage": "closedwon", "ferry_source_id": "src-1"}}),
    )
    .await;
    assert_eq!((status, body["category"].as_str()), (409, Some("CONFLICT")));
    // Batch read, update and archive.
    let (status, body) = post(
        base,
        "/crm/v3/objects/deals/batch/read",
        json!({"inputs": [{"id": id}, {"id": "1"}], "properties": ["dealname"]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["results"][0]["properties"]["dealname"],
        json!("Second")
    );
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["1"]));
    let (status, body) = post(
        base,
        "/crm/v3/objects/deals/batch/update",
        json!({"inputs": [{"id": id, "properties": {"amount": "10"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["properties"]["amount"], json!("10"));
    let count = emulator.count("deals");
    let (status, _) = post(
        base,
        "/crm/v3/objects/deals/batch/archive",
        json!({"inputs": [{"id": id}]}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(emulator.count("deals"), count.map(|n| n - 1));
}

#[tokio::test]
async fn deal_and_note_associations_read_write_and_archive() {
    let (hs, emulator, data) = start(unlimited(), 100).await;
    let base = &hs.base_url;
    let first_deal = 3_000_001u64;
    // Deal 0 has five contacts and (perhaps) a primary company.
    let (status, body) = post(
        base,
        "/crm/v4/associations/deals/contacts/batch/read",
        json!({"inputs": [{"id": first_deal.to_string()}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let to = body["results"][0]["to"].as_array().expect("to");
    let mut expected: Vec<u64> = data.deals[0]
        .contacts
        .iter()
        .map(|k| FIRST_CONTACT_ID + *k as u64)
        .collect();
    expected.sort_unstable();
    let got: Vec<u64> = to.iter().filter_map(|t| t["toObjectId"].as_u64()).collect();
    assert_eq!(got, expected);
    assert_eq!(got.len(), 5);
    assert_eq!(
        to[0]["associationTypes"],
        json!([{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": null}])
    );
    // The reverse direction.
    let (_, back) = post(
        base,
        "/crm/v4/associations/0-1/0-3/batch/read",
        json!({"inputs": [{"id": expected[0].to_string()}]}),
    )
    .await;
    let deals: Vec<u64> = back["results"][0]["to"]
        .as_array()
        .expect("to")
        .iter()
        .filter_map(|t| t["toObjectId"].as_u64())
        .collect();
    assert!(deals.contains(&first_deal), "{back}");
    // A deal's primary company: typeId 5 "Primary" and the unlabelled 341.
    let (key, with_company) = data
        .deals
        .iter()
        .enumerate()
        .find_map(|(i, d)| d.company.map(|c| (i, c)))
        .expect("a deal with a company");
    let deal = first_deal + key as u64;
    let (_, companies) = read(
        base,
        &format!("/crm/v4/objects/deals/{deal}/associations/companies"),
    )
    .await;
    assert_eq!(
        companies["results"],
        json!([{"toObjectId": FIRST_COMPANY_ID + with_company as u64, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null},
        ]}])
    );
    // v3 reads carry associations when asked.
    let (_, v3) = read(
        base,
        &format!("/crm/v3/objects/deals/{first_deal}?associations=contacts"),
    )
    .await;
    assert_eq!(
        v3["associations"]["contacts"]["results"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    // Note 0 hangs on a deal, a contact and a company.
    let first_note = 4_000_001u64;
    for (object, parent) in data.notes[0].parents.iter().map(|p| match p {
        crate::seed::SeedParent::Deal(k) => ("deals", first_deal + *k as u64),
        crate::seed::SeedParent::Contact(k) => ("contacts", FIRST_CONTACT_ID + *k as u64),
        crate::seed::SeedParent::Company(k) => ("companies", FIRST_COMPANY_ID + *k as u64),
    }) {
        let (status, body) = read(
            base,
            &format!("/crm/v4/objects/notes/{first_note}/associations/{object}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .any(|r| r["toObjectId"] == json!(parent)),
            "{object}: {body}"
        );
    }
    assert_eq!(emulator.count("notes"), Some(data.notes.len()));

    // A new note with associations on create, then moved by the v4 batch endpoints.
    let (status, note) = post(
        base,
        "/crm/v3/objects/notes",
        json!({"properties": {"hs_timestamp": "2024-05-01T10:00:00Z", "hs_note_body": "<p>Grüße &amp; 見積</p>"},
               "associations": [{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}]}),
    )
    .await;
    assert_eq!(status, 201, "{note}");
    let note_id = note["id"].as_str().expect("id").to_owned();
    assert_eq!(
        note["properties"]["hs_note_body"],
        json!("<p>Grüße &amp; 見積</p>")
    );
    assert_eq!(
        note["properties"]["hs_timestamp"],
        json!("2024-05-01T10:00:00.000Z")
    );
    let (_, on_deal) = read(
        base,
        &format!("/crm/v4/objects/deals/{deal}/associations/notes"),
    )
    .await;
    assert!(
        on_deal["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["toObjectId"] == json!(note_id.parse::<u64>().unwrap_or_default()))
    );
    let contact = FIRST_CONTACT_ID + 3;
    let (status, body) = post(
        base,
        "/crm/v4/associations/notes/contacts/batch/create",
        json!({"inputs": [
            {"from": {"id": note_id}, "to": {"id": contact.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
            {"from": {"id": note_id}, "to": {"id": "1"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
            {"from": {"id": note_id}, "to": {"id": contact.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]},
        ]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));
    let (status, _) = post(
        base,
        "/crm/v4/associations/notes/contacts/batch/archive",
        json!({"inputs": [{"from": {"id": note_id}, "to": [{"id": contact.to_string()}]}]}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = post(
        base,
        "/crm/v4/associations/notes/contacts/batch/read",
        json!({"inputs": [{"id": note_id}]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["errors"][0]["subCategory"],
        json!("crm.associations.NO_ASSOCIATIONS_FOUND")
    );
    // A deal's primary company moves; the former one stays unlabelled.
    let other = FIRST_COMPANY_ID + ((with_company + 1) % data.companies.len()) as u64;
    let (status, body) = post(
        base,
        "/crm/v4/associations/deals/companies/batch/create",
        json!({"inputs": [{"from": {"id": deal.to_string()}, "to": {"id": other.to_string()},
                           "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, companies) = read(
        base,
        &format!("/crm/v4/objects/deals/{deal}/associations/companies"),
    )
    .await;
    let primaries: Vec<u64> = companies["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| {
            r["associationTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["typeId"] == json!(5)))
        })
        .filter_map(|r| r["toObjectId"].as_u64())
        .collect();
    assert_eq!(primaries, vec![other]);
    assert_eq!(companies["results"].as_array().map(Vec::len), Some(2));
    // Inputs over the caps.
    let many: Vec<Value> = (0..1001).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _) = post(
        base,
        "/crm/v4/associations/deals/contacts/batch/read",
        json!({"inputs": many}),
    )
    .await;
    assert_eq!(status, 400);
    let many: Vec<Value> = (0..2001)
        .map(|i| json!({"from": {"id": i.to_string()}, "to": {"id": "1"}, "types": []}))
        .collect();
    let (status, _) = post(
        base,
        "/crm/v4/associations/deals/contacts/batch/create",
        json!({"inputs": many}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn notes_need_a_timestamp_and_refuse_an_overlong_body() {
    let (hs, emulator, data) = start(unlimited(), 40).await;
    let base = &hs.base_url;
    let notes = list_all(
        base,
        "notes",
        100,
        "&properties=hs_note_body,hs_timestamp,hubspot_owner_id",
    )
    .await;
    assert_eq!(notes.len(), data.notes.len());
    for (r, seeded) in notes.iter().zip(&data.notes) {
        assert_eq!(r["properties"]["hs_note_body"], json!(seeded.body));
        assert_eq!(
            r["properties"]["hs_timestamp"],
            json!(crate::hubspot::store::format_timestamp(seeded.timestamp_ms))
        );
    }
    assert!(notes.iter().any(|n| {
        n["properties"]["hs_note_body"]
            .as_str()
            .is_some_and(|b| b.starts_with("<p>"))
    }));
    let (status, body) = post(
        base,
        "/crm/v3/objects/notes",
        json!({"properties": {"hs_note_body": "x"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        property_errors(&body),
        vec![("REQUIRED_PROPERTY".to_owned(), "hs_timestamp".to_owned())]
    );
    let before = emulator.count("notes");
    let (status, body) = post(
        base,
        "/crm/v3/objects/notes",
        json!({"properties": {"hs_timestamp": "1714557600000", "hs_note_body": "é".repeat(65_537)}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        property_errors(&body),
        vec![("VALUE_TOO_LONG".to_owned(), "hs_note_body".to_owned())]
    );
    assert_eq!(emulator.count("notes"), before, "refused, not truncated");
    let (status, body) = post(
        base,
        "/crm/v3/objects/notes",
        json!({"properties": {"hs_timestamp": "1714557600000", "hs_note_body": "é".repeat(65_536)}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["properties"]["hs_note_body"]
            .as_str()
            .map(|b| b.chars().count()),
        Some(65_536)
    );
    let (status, body) = post(
        base,
        "/crm/v3/objects/notes",
        json!({"properties": {"hs_timestamp": "1714557600000"},
               "associations": [{"to": {"id": "1"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (_, props) = read(base, "/crm/v3/properties/notes").await;
    let names: Vec<&str> = props["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "hs_timestamp",
        "hs_note_body",
        "hubspot_owner_id",
        "hs_object_id",
    ] {
        assert!(names.contains(&name), "{name}");
    }
}

#[test]
fn seeding_reports_deals_and_notes() {
    let data = generate(400, 3, &Mess::default());
    let emulator = Emulator::new(Options::default());
    let summary = crate::VendorEmulator::seed(&emulator, &data);
    assert_eq!(
        (summary.deals, summary.notes),
        (data.deals.len(), data.notes.len())
    );
    assert_eq!(crate::VendorEmulator::count(&emulator, "deals"), 100);
    assert_eq!(crate::VendorEmulator::count(&emulator, "notes"), 200);
}

#[tokio::test]
async fn deals_and_notes_are_searchable() {
    let (hs, _, data) = start(unlimited_search(), 200).await;
    let base = &hs.base_url;
    let (status, _, body) = search(
        base,
        "deals",
        json!({"filterGroups": [{"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]}],
               "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}],
               "properties": ["dealname", "amount", "dealstage"], "limit": 200}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let won = data
        .deals
        .iter()
        .filter(|d| d.pipeline == 0 && d.seed_stage().1.key == "won")
        .count();
    assert_eq!(body["total"], json!(won));
    let amounts: Vec<f64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["properties"]["amount"].as_str()?.parse().ok())
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "{amounts:?}");
    assert!(
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["properties"]["dealstage"] == json!("closedwon"))
    );
    let cut = data.notes[0].timestamp_ms;
    let expected = data.notes.iter().filter(|n| n.timestamp_ms >= cut).count();
    let (status, _, body) = search(
        base,
        "notes",
        json!({"filterGroups": [{"filters": [{"propertyName": "hs_timestamp", "operator": "GTE", "value": cut.to_string()}]}], "limit": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(expected));
    let (status, _, _) = search(
        base,
        "notes",
        json!({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn new_endpoints_sit_behind_auth_rate_limits_and_partial_faults() {
    let (hs, _, _) = start(unlimited(), 20).await;
    for path in [
        "/crm/v3/owners",
        "/crm/v3/pipelines/deals",
        "/crm/v3/objects/deals",
        "/crm/v3/objects/notes",
    ] {
        let (status, headers, body) = get(&hs.base_url, path, "wrong-token").await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["category"], json!("INVALID_AUTHENTICATION"));
        assert!(headers.get("x-hubspot-ratelimit-max").is_none());
    }
    let (status, headers, _) =
        get(&hs.base_url, "/crm/v3/objects/deals", crate::HUBSPOT_TOKEN).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_some());

    // The burst window counts deal and owner requests like any other.
    let (limited, _, _) = start(
        Options {
            burst_limit: Some(3),
            ..Options::default()
        },
        10,
    )
    .await;
    let mut statuses = Vec::new();
    for path in [
        "/crm/v3/owners",
        "/crm/v3/pipelines/deals",
        "/crm/v3/objects/notes",
        "/crm/v3/objects/deals",
    ] {
        statuses.push(get(&limited.base_url, path, crate::HUBSPOT_TOKEN).await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);

    // `partial` locks inputs of a deal batch as it does contacts'.
    let faults = crate::faults::Faults {
        partial: Some(100),
        ..crate::faults::Faults::default()
    };
    let (locked, emulator, _) = start(
        Options {
            faults,
            ..unlimited()
        },
        10,
    )
    .await;
    let before = emulator.count("deals");
    let (status, body) = post(
        &locked.base_url,
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": [{"objectWriteTraceId": "t", "properties": {"dealname": "x", "dealstage": "closedwon"}}]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["errors"][0]["category"], json!("LOCKED"));
    assert_eq!(emulator.count("deals"), before);
}

#[tokio::test]
async fn single_association_writes_of_deals_and_notes() {
    let (hs, _, _) = start(unlimited(), 40).await;
    let base = &hs.base_url;
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let base = base.clone();
        async move {
            let mut req = client()
                .request(method, format!("{base}{path}"))
                .bearer_auth(crate::HUBSPOT_TOKEN);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (deal, note, company) = (3_000_002u64, 4_000_002u64, FIRST_COMPANY_ID + 2);
    let (status, body) = send(
        reqwest::Method::PUT,
        format!("/crm/v4/objects/notes/{note}/associations/default/deals/{deal}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["associationSpec"]["associationTypeId"],
        json!(214)
    );
    let (_, listed) = read(
        base,
        &format!("/crm/v4/objects/deals/{deal}/associations/notes"),
    )
    .await;
    assert!(
        listed["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["toObjectId"] == json!(note))
    );
    let (status, body) = send(
        reqwest::Method::PUT,
        format!("/crm/v4/objects/deals/{deal}/associations/companies/{company}"),
        Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}])),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["labels"], json!(["Primary"]));
    assert_eq!(body["toObjectId"], json!(company));
    let (status, _) = send(
        reqwest::Method::DELETE,
        format!("/crm/v4/objects/deals/{deal}/associations/companies/{company}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, listed) = read(
        base,
        &format!("/crm/v4/objects/deals/{deal}/associations/companies"),
    )
    .await;
    assert!(
        !listed["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["toObjectId"] == json!(company))
    );
    let (status, _) = send(
        reqwest::Method::PUT,
        format!("/crm/v4/objects/deals/{deal}/associations/default/contacts/1"),
        None,
    )
    .await;
    assert_eq!(status, 400, "a missing contact");
    let (status, _) = send(
        reqwest::Method::PUT,
        format!("/crm/v4/objects/deals/{deal}/associations/companies/{company}"),
        Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}])),
    )
    .await;
    assert_eq!(
        status, 400,
        "a deal→contact type between a deal and a company"
    );
}

// ---------------------------------------------------------------------------------------------
// Incremental reads: the last-modified time, the clock, bulk stamps

/// The ids a search of `object` finds with `filters`, sorted by `hs_object_id`, 200 a page
/// through `after`; and the `total` of the first page.
async fn search_ids(base: &str, object: &str, filters: Value) -> (Vec<u64>, u64) {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    let mut total = None;
    loop {
        let mut body = json!({
            "filterGroups": [{"filters": filters.clone()}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": 200,
        });
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let (status, _, body) = search(base, object, body).await;
        assert_eq!(status, 200, "{body}");
        let total = *total.get_or_insert(body["total"].as_u64().expect("total"));
        found.extend(
            ids(&body)
                .iter()
                .map(|id| id.parse::<u64>().expect("numeric id")),
        );
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return (found, total),
        }
    }
}

fn modified(object: &str) -> &'static str {
    if object == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

#[tokio::test]
async fn writes_stamp_the_last_modified_time_from_the_account_clock_that_dates_answers() {
    let (hs, emulator, _) = start(unlimited_search(), 40).await;
    emulator.advance_clock(std::time::Duration::from_secs(30 * 86_400));
    let (status, headers, _) = get(
        &hs.base_url,
        "/account-info/v3/details",
        crate::HUBSPOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    let date = headers[reqwest::header::DATE]
        .to_str()
        .expect("Date")
        .to_owned();
    let clock = emulator.now_ms();
    assert!(
        [clock - 1000, clock]
            .iter()
            .any(|ms| crate::timestamp::http_date(*ms) == date),
        "the Date header follows the account's clock: {date}"
    );
    let since = (clock - clock.rem_euclid(1000)).to_string();
    for (object, property) in [
        ("companies", "name"),
        ("contacts", "jobtitle"),
        ("deals", "dealname"),
        ("notes", "hs_note_body"),
    ] {
        let (unchanged, _) = search_ids(
            &hs.base_url,
            object,
            json!([{"propertyName": modified(object), "operator": "GTE", "value": since}]),
        )
        .await;
        assert_eq!(
            unchanged,
            Vec::<u64>::new(),
            "{object}: nothing changed since"
        );
        let (all, _) = search_ids(&hs.base_url, object, json!([])).await;
        assert!(all.len() >= 3, "{object}: seeded");
        let (status, body) = patch(
            &hs.base_url,
            &format!("/crm/v3/objects/{object}/{}", all[1]),
            json!({"properties": {property: "Changed later"}}),
        )
        .await;
        assert_eq!(status, 200, "{object}: {body}");
        assert!(emulator.archive(object, all[2]));
        // Archiving alone is not a change search can see: archived records never appear.
        let (changed, total) = search_ids(
            &hs.base_url,
            object,
            json!([{"propertyName": modified(object), "operator": "GTE", "value": since}]),
        )
        .await;
        assert_eq!((changed, total), (vec![all[1]], 1), "{object}");
        let (between, _) = search_ids(
            &hs.base_url,
            object,
            json!([{"propertyName": modified(object), "operator": "BETWEEN",
                    "value": since, "highValue": (clock + 60_000).to_string()}]),
        )
        .await;
        assert_eq!(between, vec![all[1]], "{object}: BETWEEN");
        let (before, _) = search_ids(
            &hs.base_url,
            object,
            json!([{"propertyName": modified(object), "operator": "LT", "value": since}]),
        )
        .await;
        assert!(
            !before.contains(&all[1]) && !before.contains(&all[2]),
            "{object}: LT"
        );
    }
}

#[tokio::test]
async fn a_bulk_stamp_ties_over_10000_records_which_only_an_id_keyset_reads_past_the_cap() {
    let (hs, emulator, _) = start(unlimited_search(), 10_100).await;
    emulator.advance_clock(std::time::Duration::from_secs(3600));
    let stamped = emulator.bulk_stamp("contacts", 10_050);
    assert_eq!(stamped.len(), 10_050);
    let at = emulator
        .read()
        .contacts
        .get(stamped[0])
        .expect("stamped")
        .updated;
    assert!(
        stamped
            .iter()
            .all(|id| emulator.read().contacts.get(*id).map(|r| r.updated) == Some(at)),
        "one timestamp for all"
    );
    let tie =
        json!([{"propertyName": "lastmodifieddate", "operator": "EQ", "value": at.to_string()}]);
    // Windowing on the timestamp alone cannot get past the 10,000th: the next page is a 400.
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"filterGroups": [{"filters": tie}], "limit": 200, "after": "9800",
               "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(10_050));
    assert_eq!(body["paging"]["next"]["after"], json!("10000"));
    let first: Vec<u64> = ids(&body).iter().map(|i| i.parse().expect("id")).collect();
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "sorted by hs_object_id"
    );
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"filterGroups": [{"filters": tie}], "limit": 200, "after": "10000"}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    // A new query from the last id read gets the rest.
    let last = *first.last().expect("a page");
    let mut rest = tie.as_array().expect("filters").clone();
    rest.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}));
    let (after, total) = search_ids(&hs.base_url, "contacts", Value::Array(rest)).await;
    assert_eq!(total, 50);
    assert_eq!(after, stamped[10_000..].to_vec());
    // A second sort rule is refused.
    let (status, _, body) = search(
        &hs.base_url,
        "contacts",
        json!({"sorts": ["lastmodifieddate", "hs_object_id"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
