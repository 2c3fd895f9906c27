//! The Pipedrive emulator over real HTTP on loopback.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::*;
use crate::seed::{Mess, generate};

struct Api {
    base: String,
    http: reqwest::Client,
    _running: crate::Running,
}

impl Api {
    async fn start(emulator: &Emulator) -> Api {
        let running = crate::serve(
            "pipedrive",
            emulator.router(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();
        Api {
            base: running.base_url.clone(),
            http: reqwest::Client::new(),
            _running: running,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-token", TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::PATCH, path, Some(body)).await;
        (s, b)
    }
}

fn unlimited() -> Options {
    Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    }
}

#[tokio::test]
async fn auth_by_header_or_legacy_query_parameter() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let resp = api
        .http
        .get(format!("{}/api/v2/persons", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401,
        "error_info": "Please check developers.pipedrive.com"})
    );
    let wrong = api
        .http
        .get(format!("{}/api/v2/persons", api.base))
        .header("x-api-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let legacy = api
        .http
        .get(format!("{}/v1/personFields?api_token={TOKEN}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status().as_u16(), 200);
    let body: Value = legacy.json().await.unwrap();
    assert_eq!(body["data"][0]["key"], "name");
    assert_eq!(body["additional_data"]["pagination"]["start"], 0);
}

#[tokio::test]
async fn crud_envelopes_and_validation() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, b) = api
        .post(
            "/api/v2/persons",
            json!({"emails": [{"value": "a@example.com"}]}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["success"], false);
    assert_eq!(b["code"], "ERR_SCHEMA_VALIDATION_FAILED");
    assert!(b["error"].as_str().unwrap().contains("name"));
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "X", "shoe_size": 9}))
        .await;
    assert_eq!(s, 400, "unknown keys are refused: {b}");
    let (s, org) = api
        .post("/api/v2/organizations", json!({"name": "Dragonfly Inn", "address": {"route": "1 Main St", "locality": "Stars Hollow"}}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(org["data"]["address"]["locality"], "Stars Hollow");
    let org_id = org["data"]["id"].as_u64().unwrap();
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "Y", "org_id": 999}))
        .await;
    assert_eq!(s, 400, "unknown org: {b}");
    let (s, p) = api
        .post("/api/v2/persons", json!({"name": "Lorelai Gilmore", "org_id": org_id,
            "phones": [{"value": "+1 555", "primary": true, "label": "work"}, {"value": "+1 556", "label": "mobile"}]}))
        .await;
    assert_eq!(s, 200);
    let p = &p["data"];
    assert_eq!(
        (p["first_name"].as_str(), p["last_name"].as_str()),
        (Some("Lorelai"), Some("Gilmore"))
    );
    assert_eq!(p["phones"][1]["label"], "mobile");
    let id = p["id"].as_u64().unwrap();
    let (s, b) = api
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"first_name": "Lorelai Victoria", "org_id": null, "phones": []}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["name"], "Lorelai Victoria Gilmore");
    assert_eq!(b["data"]["org_id"], Value::Null);
    assert_eq!(b["data"]["phones"], json!([]));
    let (s, _, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v2/persons/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api.get(&format!("/api/v2/persons/{id}")).await;
    assert_eq!((s, b["success"].clone()), (404, json!(false)));
    assert_eq!(emulator.count("contacts"), Some(0));
}

#[tokio::test]
async fn cursor_paging_to_the_end_and_limits() {
    let emulator = Emulator::new(unlimited());
    let summary = emulator.seed(&generate(250, 3, &Mess::none()));
    let api = Api::start(&emulator).await;
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v2/persons?limit=100&cursor={c}"),
            None => "/api/v2/persons?limit=100".to_owned(),
        };
        let (s, b) = api.get(&path).await;
        assert_eq!(s, 200);
        seen.extend(
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap()),
        );
        match b["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert_eq!(b["additional_data"]["next_cursor"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(seen.len(), summary.contacts);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let (s, b) = api.get("/api/v2/persons").await;
    assert_eq!(
        (s, b["data"].as_array().unwrap().len()),
        (200, 100),
        "default limit 100"
    );
    let (s, _) = api.get("/api/v2/persons?limit=501").await;
    assert_eq!(s, 400);
    let (s, b) = api.get("/api/v2/persons?ids=3,1,999").await;
    assert_eq!(s, 200);
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(b["data"][0]["id"], 1);
}

#[tokio::test]
async fn custom_fields_by_hash_and_exact_search() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, f) = api
        .post(
            "/api/v2/personFields",
            json!({"field_name": "Ferry source id", "field_type": "varchar"}),
        )
        .await;
    assert_eq!(s, 200);
    let code = f["data"]["field_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 40);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    let (_, fields) = api.get("/api/v2/personFields?limit=500").await;
    assert!(
        fields["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field_code"] == code.as_str() && f["is_custom_field"] == true)
    );
    let (_, v1) = api.get("/v1/personFields").await;
    assert!(
        v1["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == code.as_str())
    );
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "A", "custom_fields": {"0123456789012345678901234567890123456789": "x"}}))
        .await;
    assert_eq!(s, 400, "unknown custom field: {b}");
    let (s, b) = api
        .post(
            "/api/v2/persons",
            json!({"name": "A", "custom_fields": {&code: 7}}),
        )
        .await;
    assert_eq!(s, 400, "a varchar takes strings: {b}");
    for (name, sid) in [("A", "HS-1"), ("B", "hs-10"), ("C", "HS-100")] {
        let (s, _) = api
            .post(
                "/api/v2/persons",
                json!({"name": name, "custom_fields": {&code: sid}}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, b) = api
        .get("/api/v2/persons/search?term=hs-1&fields=custom_fields&exact_match=true")
        .await;
    assert_eq!(s, 200);
    let items = b["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "exact and case-insensitive: {b}");
    assert_eq!(items[0]["item"]["type"], "person");
    assert_eq!(items[0]["item"]["custom_fields"], json!(["HS-1"]));
    assert_eq!(b["additional_data"]["next_cursor"], Value::Null);
    let (s, _) = api
        .get("/api/v2/persons/search?term=h&fields=custom_fields")
        .await;
    assert_eq!(s, 400, "two characters at least without exact_match");
    let (s, b) = api
        .get(&format!("/api/v2/persons?custom_fields={code}&limit=1"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["custom_fields"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn marketing_status_needs_an_email_and_changes_once() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (_, b) = api
        .post(
            "/api/v2/persons",
            json!({"name": "No Mail", "marketing_status": "unsubscribed"}),
        )
        .await;
    assert_eq!(
        b["data"]["marketing_status"], "no_consent",
        "not set without a valid email"
    );
    let (_, b) = api
        .post("/api/v2/persons", json!({"name": "Has Mail", "emails": [{"value": "a@example.com", "primary": true}], "marketing_status": "unsubscribed"}))
        .await;
    assert_eq!(b["data"]["marketing_status"], "unsubscribed");
    let id = b["data"]["id"].as_u64().unwrap();
    let (_, b) = api
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"marketing_status": "no_consent"}),
        )
        .await;
    assert_eq!(
        b["data"]["marketing_status"], "no_consent",
        "the one change"
    );
    let (s, b) = api
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"marketing_status": "unsubscribed"}),
        )
        .await;
    assert_eq!(
        (s, b["data"]["marketing_status"].clone()),
        (200, json!("no_consent")),
        "a second change is ignored"
    );
    let (s, _) = api
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"marketing_status": "opted_out"}),
        )
        .await;
    assert_eq!(s, 400);
    let (_, b) = api.get(&format!("/api/v2/persons/{id}")).await;
    assert!(
        b["data"].get("marketing_status").is_none(),
        "only with include_fields"
    );
    let (_, b) = api
        .get(&format!(
            "/api/v2/persons/{id}?include_fields=marketing_status"
        ))
        .await;
    assert_eq!(b["data"]["marketing_status"], "no_consent");
}

#[tokio::test]
async fn seeding_never_invents_consent() {
    let emulator = Emulator::new(unlimited());
    let data = generate(300, 9, &Mess::default());
    emulator.seed(&data);
    let api = Api::start(&emulator).await;
    let (_, b) = api
        .get("/api/v2/persons?limit=500&include_fields=marketing_status")
        .await;
    let persons = b["data"].as_array().unwrap();
    assert!(
        persons
            .iter()
            .all(|p| p["marketing_status"] != "subscribed")
    );
    let unsubscribed = persons
        .iter()
        .filter(|p| p["marketing_status"] == "unsubscribed")
        .count();
    let expected = data.contacts.iter().filter(|c| c.email_opt_out).count();
    assert_eq!(unsubscribed, expected);
    assert!(unsubscribed > 0);
}

#[tokio::test]
async fn burst_window_and_daily_budget_answer_429_with_headers() {
    let emulator = Emulator::new(Options {
        burst_limit: Some(3),
        search_limit: Some(1),
        daily_token_budget: Some(1_000),
        ..Options::default()
    });
    let api = Api::start(&emulator).await;
    for left in ["2", "1", "0"] {
        let (s, h, _) = api
            .call(reqwest::Method::GET, "/api/v2/persons", None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], left);
        assert!(h.contains_key("x-ratelimit-reset"));
        assert!(h.contains_key("x-daily-ratelimit-token-remaining"));
    }
    let (s, h, b) = api
        .call(reqwest::Method::GET, "/api/v2/persons", None)
        .await;
    assert_eq!(s, 429);
    assert_eq!(b["success"], false);
    assert_eq!(b["errorCode"], 429);
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(
        h["x-daily-ratelimit-token-remaining"], "970",
        "three lists at 10 tokens"
    );
    let (s, _, _) = api
        .call(
            reqwest::Method::GET,
            "/api/v2/persons/search?term=a&exact_match=true",
            None,
        )
        .await;
    assert_eq!(s, 200, "search has its own window");
    let (s, _, _) = api
        .call(
            reqwest::Method::GET,
            "/api/v2/persons/search?term=a&exact_match=true",
            None,
        )
        .await;
    assert_eq!(s, 429);
    assert_eq!(emulator.request_counts().1, 2);
    assert_eq!(emulator.tokens_used(), 50);

    let poor = Emulator::new(Options {
        daily_token_budget: Some(15),
        ..unlimited()
    });
    let api = Api::start(&poor).await;
    let (s, _, _) = api
        .call(reqwest::Method::GET, "/api/v2/persons", None)
        .await;
    assert_eq!(s, 200);
    let (s, h, _) = api
        .call(reqwest::Method::GET, "/api/v2/persons", None)
        .await;
    assert_eq!(s, 429);
    assert_eq!(h["x-daily-ratelimit-token-remaining"], "5");
}

#[tokio::test]
async fn injected_throttling_carries_the_pipedrive_body() {
    let emulator = Emulator::new(Options {
        faults: Faults {
            throttle_every: Some(2),
            retry_after_secs: Some(1),
            ..Faults::default()
        },
        ..unlimited()
    });
    let api = Api::start(&emulator).await;
    let (s, _, _) = api
        .call(reqwest::Method::GET, "/api/v2/persons", None)
        .await;
    assert_eq!(s, 200);
    let (s, h, b) = api
        .call(reqwest::Method::GET, "/api/v2/persons", None)
        .await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "1"));
    assert_eq!(b["error"], "Request over limit");
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn seeding_a_million_contacts() {
    let emulator = Emulator::new(unlimited());
    let seed = generate(1_000_000, 1, &Mess::default());
    let started = std::time::Instant::now();
    let summary = emulator.seed(&seed);
    assert!(
        summary.contacts > 999_000,
        "only nameless contacts are skipped"
    );
    assert_eq!(emulator.count("contacts"), Some(summary.contacts));
    assert_eq!(summary.deals, seed.deals.len());
    assert_eq!(emulator.count("deals"), Some(summary.deals));
    // Notes whose only parent is a contact Pipedrive cannot hold (no name) are skipped.
    assert!(summary.notes * 1000 > seed.notes.len() * 999);
    assert_eq!(emulator.count("notes"), Some(summary.notes));
    eprintln!("seeded in {:?}", started.elapsed());
}

/// The v2 field definition called `name` in a fields list.
fn field_named<'a>(fields: &'a Value, name: &str) -> &'a Value {
    fields["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {fields}"))
}

#[tokio::test]
async fn seeded_custom_fields_are_listed_with_options_and_hold_the_seed_values() {
    let emulator = Emulator::new(unlimited());
    let other = Emulator::new(unlimited());
    let seed = generate(60, 7, &Mess::default());
    emulator.seed(&seed);
    let api = Api::start(&emulator).await;
    let (s, orgs) = api.get("/api/v2/organizationFields?limit=500").await;
    assert_eq!(s, 200);
    let (region, seats, tier) = (
        field_named(&orgs, "Region"),
        field_named(&orgs, "Seats"),
        field_named(&orgs, "Tier"),
    );
    assert_eq!(
        (
            &region["field_type"],
            &seats["field_type"],
            &tier["field_type"]
        ),
        (&json!("varchar"), &json!("double"), &json!("enum"))
    );
    for f in [region, seats, tier] {
        assert_eq!(f["is_custom_field"], true);
        let code = f["field_code"].as_str().unwrap();
        assert!(code.len() == 40 && code.bytes().all(|b| b.is_ascii_hexdigit()));
        // Keys are per account: another company's Region has another key.
        assert_ne!(
            other.custom_field_key("companies", f["field_name"].as_str().unwrap()),
            Some(code.to_owned())
        );
    }
    assert_eq!(region["options"], Value::Null);
    let options = tier["options"].as_array().unwrap();
    let labels: Vec<&str> = options
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, crate::seed::TIERS);
    assert!(
        options.iter().all(|o| o["id"].is_u64()),
        "custom option ids are numbers"
    );
    let name = field_named(&orgs, "Name");
    assert_eq!(
        (&name["field_code"], &name["is_custom_field"]),
        (&json!("name"), &json!(false))
    );
    assert_eq!(
        field_named(&orgs, "Address")["subfields"][0]["field_code"],
        "value"
    );
    let (_, persons) = api.get("/api/v2/personFields").await;
    assert_eq!(
        field_named(&persons, "Favourite Colour")["field_type"],
        "varchar"
    );
    assert_eq!(
        field_named(&persons, "Loyalty Points")["field_type"],
        "double"
    );
    let marketing = field_named(&persons, "Marketing status");
    assert_eq!(marketing["is_optional_response_field"], true);
    assert_eq!(
        marketing["options"][0]["id"], "no_consent",
        "built-in ids are names"
    );
    // v1 lists the same keys and options.
    let (_, v1) = api.get("/v1/organizationFields").await;
    let v1_tier = v1["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Tier")
        .unwrap();
    assert_eq!(v1_tier["key"], tier["field_code"]);
    assert_eq!(v1_tier["options"], tier["options"]);
    // One field by its code.
    let (s, one) = api
        .get(&format!(
            "/api/v2/organizationFields/{}",
            tier["field_code"].as_str().unwrap()
        ))
        .await;
    assert_eq!((s, &one["data"]["field_name"]), (200, &json!("Tier")));
    let (s, _) = api.get("/api/v2/organizationFields/nope").await;
    assert_eq!(s, 404);

    // Seeded records carry the seed's values: numbers as numbers, the Tier as its option id.
    let (_, page) = api.get("/api/v2/organizations?limit=100").await;
    let items = page["data"].as_array().unwrap();
    assert_eq!(items.len(), seed.companies.len());
    let key = |f: &Value| f["field_code"].as_str().unwrap().to_owned();
    let option_id = |label: &str| {
        options
            .iter()
            .find(|o| o["label"] == label)
            .map(|o| o["id"].clone())
            .unwrap()
    };
    for (company, item) in seed.companies.iter().zip(items) {
        let custom = &item["custom_fields"];
        assert_eq!(custom[key(region)], json!(company.region));
        assert_eq!(custom[key(seats)], json!(company.seats));
        assert_eq!(
            custom[key(tier)],
            company.tier.map_or(Value::Null, option_id)
        );
    }
    assert!(
        seed.companies
            .iter()
            .any(|c| c.tier.is_some() && c.seats.is_some())
    );
    let (_, people) = api.get("/api/v2/persons?limit=500").await;
    let colour = key(field_named(&persons, "Favourite Colour"));
    let points = key(field_named(&persons, "Loyalty Points"));
    let named: Vec<_> = seed
        .contacts
        .iter()
        .filter(|c| {
            !crate::pipedrive::store::join_name(c.first_name.as_deref(), c.last_name.as_deref())
                .is_empty()
        })
        .collect();
    for (contact, item) in named.iter().zip(people["data"].as_array().unwrap()) {
        assert_eq!(
            item["custom_fields"][&colour],
            json!(contact.favourite_colour)
        );
        assert_eq!(
            item["custom_fields"][&points],
            json!(contact.loyalty_points)
        );
    }
    assert!(named.iter().any(|c| c.loyalty_points.is_some()));
}

#[tokio::test]
async fn custom_values_are_checked_by_type_and_option() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let tier = emulator.custom_field_key("companies", "Tier").unwrap();
    let seats = emulator.custom_field_key("companies", "Seats").unwrap();
    let region = emulator.custom_field_key("companies", "Region").unwrap();
    let (_, fields) = api.get("/api/v2/organizationFields").await;
    let gold = field_named(&fields, "Tier")["options"][0]["id"].clone();
    let bad = [
        json!({tier.as_str(): 999_999}),
        json!({tier.as_str(): "Gold"}),
        json!({seats.as_str(): "12"}),
        json!({region.as_str(): 5}),
        json!({"ffffffffffffffffffffffffffffffffffffffff": "x"}),
    ];
    for custom in bad {
        let (s, b) = api
            .post(
                "/api/v2/organizations",
                json!({"name": "A", "custom_fields": custom}),
            )
            .await;
        assert_eq!(s, 400, "{custom} must be refused: {b}");
        assert_eq!(b["success"], false);
    }
    let (s, b) = api
        .post(
            "/api/v2/organizations",
            json!({"name": "A", "custom_fields": {&tier: gold, &seats: 12.5, &region: "North"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let id = b["data"]["id"].as_u64().unwrap();
    let (_, one) = api
        .get(&format!(
            "/api/v2/organizations/{id}?custom_fields={tier},{seats}"
        ))
        .await;
    let custom = one["data"]["custom_fields"].as_object().unwrap();
    assert_eq!(custom.len(), 2, "only the fields asked for: {custom:?}");
    assert_eq!((&custom[&tier], &custom[&seats]), (&gold, &json!(12.5)));
    // Option fields are not searchable; text custom fields are.
    let (_, hits) = api
        .get(&format!(
            "/api/v2/organizations/search?term={gold}&fields=custom_fields&exact_match=true"
        ))
        .await;
    assert_eq!(hits["data"]["items"], json!([]));
    let (_, hits) = api
        .get("/api/v2/organizations/search?term=north&fields=custom_fields&exact_match=true")
        .await;
    assert_eq!(hits["data"]["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_created_option_field_gets_option_ids_and_takes_them() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, b) = api
        .post(
            "/api/v2/personFields",
            json!({"field_name": "Size", "field_type": "enum"}),
        )
        .await;
    assert_eq!(s, 400, "enum needs options: {b}");
    let (s, b) = api
        .post(
            "/api/v2/personFields",
            json!({"field_name": "Size", "field_type": "enum", "options": [{"label": "S"}, {}]}),
        )
        .await;
    assert_eq!(s, 400, "an option needs a label: {b}");
    let (s, b) = api
        .post(
            "/api/v2/personFields",
            json!({"field_name": "Size", "field_type": "enum", "options": [{"label": "S"}, {"label": "M"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let field = &b["data"];
    assert_eq!(
        (&field["field_name"], &field["is_custom_field"]),
        (&json!("Size"), &json!(true))
    );
    let code = field["field_code"].as_str().unwrap();
    let m = field["options"][1]["id"].clone();
    assert_eq!(field["options"][1]["label"], "M");
    assert!(m.is_u64());
    let (s, b) = api
        .post(
            "/api/v2/persons",
            json!({"name": "P", "custom_fields": {code: m}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["custom_fields"][code], m);
    let (_, listed) = api.get("/api/v2/personFields").await;
    assert_eq!(field_named(&listed, "Size")["options"], field["options"]);
}

impl Api {
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::PUT, path, Some(body)).await;
        (s, b)
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::DELETE, path, None).await;
        (s, b)
    }
}

/// The account's users by email.
async fn user_ids(api: &Api) -> std::collections::HashMap<String, u64> {
    let (s, b) = api.get("/v1/users").await;
    assert_eq!(s, 200);
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap().to_owned(),
                u["id"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn users_are_the_accounts_own_found_by_email_and_deactivated_users_own_nothing_new() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, b) = api.get("/v1/users").await;
    assert_eq!(s, 200);
    let users = b["data"].as_array().unwrap();
    let expected = crate::accounts::account_users("pipedrive");
    assert_eq!(users.len(), expected.len());
    assert!(
        users
            .iter()
            .all(|u| u["email"] != "hana.novak@ferry-demo.example"),
        "Hana is not in this account"
    );
    assert!(users.iter().all(|u| u["active_flag"] == true));
    let other = Emulator::new(unlimited());
    let other_api = Api::start(&other).await;
    let theirs = user_ids(&other_api).await;
    let ours = user_ids(&api).await;
    assert!(
        ours.values().all(|id| !theirs.values().any(|t| t == id)),
        "user ids belong to one account"
    );
    let ben = ours["ben.okafor@ferry-demo.example"];
    let (s, b) = api.get(&format!("/v1/users/{ben}")).await;
    assert_eq!((s, b["data"]["name"].as_str()), (200, Some("Ben Okafor")));
    assert_eq!(api.get("/v1/users/1").await.0, 404);
    let (s, b) = api
        .get("/v1/users/find?term=BEN.OKAFOR@&search_by_email=1")
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["id"], ben);
    assert_eq!(api.get("/v1/users/find").await.0, 400);
    let (_, me) = api.get("/v1/users/me").await;
    assert_eq!(me["data"]["is_you"], true);
    assert_eq!(me["data"]["company_id"], emulator.company_id());
    let me = me["data"]["id"].as_u64().unwrap();

    // Owners on persons and organizations: the caller by default, any active user, never an
    // unknown or deactivated one.
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "Nobody's"}))
        .await;
    assert_eq!((s, b["data"]["owner_id"].as_u64()), (200, Some(me)));
    let (s, b) = api
        .post(
            "/api/v2/organizations",
            json!({"name": "Ben's", "owner_id": ben}),
        )
        .await;
    assert_eq!((s, b["data"]["owner_id"].as_u64()), (200, Some(ben)));
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "X", "owner_id": 424242}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["code"], "ERR_SCHEMA_VALIDATION_FAILED");
    assert!(b["error"].as_str().unwrap().contains("owner_id"), "{b}");
    let (s, b) = api
        .put(&format!("/v1/users/{ben}"), json!({"active_flag": false}))
        .await;
    assert_eq!((s, &b["data"]["active_flag"]), (200, &json!(false)));
    let (s, b) = api
        .patch("/api/v2/organizations/1", json!({"owner_id": ben}))
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("deactivated"), "{b}");
    let (s, b) = api
        .post("/api/v2/deals", json!({"title": "D", "owner_id": ben}))
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api.get(&format!("/v1/users/{ben}")).await;
    assert_eq!((s, &b["data"]["active_flag"]), (200, &json!(false)));
}

#[tokio::test]
async fn pipelines_and_stages_page_by_cursor_with_the_accounts_ids() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, b) = api.get("/api/v2/pipelines?limit=1").await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["name"], "Pipeline");
    let cursor = b["additional_data"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, b2) = api.get(&format!("/api/v2/pipelines?cursor={cursor}")).await;
    assert_eq!(b2["data"][0]["name"], "Renewals");
    assert!(b2["additional_data"]["next_cursor"].is_null());
    let renewals = b2["data"][0]["id"].as_u64().unwrap();
    let (s, b) = api
        .get(&format!("/api/v2/stages?pipeline_id={renewals}"))
        .await;
    assert_eq!(s, 200);
    let stages: Vec<(&str, u64)> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["order_nr"].as_u64().unwrap()))
        .collect();
    assert_eq!(stages, vec![("Renewal Due", 1), ("Negotiation", 2)]);
    assert!(b["data"][0]["deal_probability"].is_number());
    let (_, all) = api.get("/api/v2/stages?limit=3").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    assert!(all["additional_data"]["next_cursor"].is_string());
    assert_eq!(api.get("/api/v2/stages?pipeline_id=x").await.0, 400);
    assert_eq!(api.get("/api/v2/stages?limit=501").await.0, 400);
}

#[tokio::test]
async fn deals_follow_pipedrives_stage_status_and_reference_rules() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (_, pipes) = api.get("/api/v2/pipelines").await;
    let (sales, renewals) = (
        pipes["data"][0]["id"].as_u64().unwrap(),
        pipes["data"][1]["id"].as_u64().unwrap(),
    );
    let (_, stages) = api.get("/api/v2/stages").await;
    let stage = |name: &str| {
        stages["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let me = api.get("/v1/users/me").await.1["data"]["id"]
        .as_u64()
        .unwrap();
    // Only the title is required; the rest defaults as Pipedrive documents.
    let (s, b) = api
        .post("/api/v2/deals", json!({"title": "Só o título"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    assert_eq!(d["pipeline_id"], sales);
    assert_eq!(d["stage_id"], stage("Lead In"));
    assert_eq!(
        (
            &d["status"],
            &d["value"],
            &d["currency"],
            d["owner_id"].as_u64()
        ),
        (&json!("open"), &json!(0.0), &json!("USD"), Some(me))
    );
    let (s, b) = api.post("/api/v2/deals", json!({"value": 5})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("ERR_SCHEMA_VALIDATION_FAILED"))
    );
    assert!(b["error"].as_str().unwrap().contains("title"));
    let (s, _) = api
        .post("/api/v2/deals", json!({"title": "x".repeat(256)}))
        .await;
    assert_eq!(s, 400, "titles hold 255 characters");
    let (s, b) = api
        .post("/api/v2/deals", json!({"title": "t", "nope": 1}))
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("nope"));
    // stage_id sets the pipeline (pipeline_id is ignored); a pipeline alone means its first stage.
    let (_, b) = api
        .post(
            "/api/v2/deals",
            json!({"title": "t", "stage_id": stage("Negotiation"), "pipeline_id": sales}),
        )
        .await;
    assert_eq!(b["data"]["pipeline_id"], renewals);
    let (_, b) = api
        .post(
            "/api/v2/deals",
            json!({"title": "t", "pipeline_id": renewals}),
        )
        .await;
    assert_eq!(b["data"]["stage_id"], stage("Renewal Due"));
    for bad in [
        json!({"title": "t", "stage_id": 1}),
        json!({"title": "t", "pipeline_id": 1}),
        json!({"title": "t", "person_id": 99}),
        json!({"title": "t", "org_id": 99}),
        json!({"title": "t", "owner_id": 99}),
        json!({"title": "t", "status": "closed"}),
        json!({"title": "t", "currency": "usd"}),
        json!({"title": "t", "expected_close_date": "2027-02-30"}),
        json!({"title": "t", "lost_reason": "price"}),
        json!({"title": "t", "won_time": "2026-01-01T00:00:00Z"}),
        json!({"title": "t", "probability": 101}),
    ] {
        let (s, b) = api.post("/api/v2/deals", bad.clone()).await;
        assert_eq!(s, 400, "{bad} → {b}");
    }
    // Won and lost stamp their times; reopening clears them.
    let (_, b) = api
        .post(
            "/api/v2/deals",
            json!({"title": "Won", "status": "won", "won_time": "2025-05-01T10:00:00Z",
                   "value": 1200.5, "currency": "EUR", "expected_close_date": "2025-05-01"}),
        )
        .await;
    let won = b["data"]["id"].as_u64().unwrap();
    assert_eq!(b["data"]["won_time"], "2025-05-01T10:00:00Z");
    assert_eq!(b["data"]["close_time"], "2025-05-01T10:00:00Z");
    assert_eq!(b["data"]["value"], 1200.5);
    let (_, b) = api
        .patch(
            &format!("/api/v2/deals/{won}"),
            json!({"close_time": "2025-05-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(b["data"]["close_time"], "2025-05-02T00:00:00Z");
    let (_, b) = api
        .patch(
            &format!("/api/v2/deals/{won}"),
            json!({"title": "Won again"}),
        )
        .await;
    assert_eq!(
        (&b["data"]["won_time"], &b["data"]["close_time"]),
        (
            &json!("2025-05-01T10:00:00Z"),
            &json!("2025-05-02T00:00:00Z")
        ),
        "an edit keeps the close"
    );
    let (s, b) = api
        .patch(
            &format!("/api/v2/deals/{won}"),
            json!({"status": "lost", "lost_reason": "Budget"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["data"]["won_time"].is_null() && b["data"]["lost_time"].is_string());
    assert_eq!(b["data"]["lost_reason"], "Budget");
    let (_, b) = api
        .patch(&format!("/api/v2/deals/{won}"), json!({"status": "open"}))
        .await;
    assert!(b["data"]["close_time"].is_null() && b["data"]["lost_reason"].is_null());
    // Delete: gone from reads and lists, listed with status=deleted.
    assert_eq!(api.delete(&format!("/api/v2/deals/{won}")).await.0, 200);
    assert_eq!(api.get(&format!("/api/v2/deals/{won}")).await.0, 404);
    assert_eq!(api.delete(&format!("/api/v2/deals/{won}")).await.0, 404);
    assert_eq!(
        api.patch(&format!("/api/v2/deals/{won}"), json!({"title": "x"}))
            .await
            .0,
        404
    );
    let (_, b) = api.get("/api/v2/deals?status=deleted").await;
    let deleted: Vec<&Value> = b["data"].as_array().unwrap().iter().collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["is_deleted"], true);
    assert_eq!(emulator.count("deals"), Some(3));
}

#[tokio::test]
async fn seeded_deals_list_by_cursor_with_every_filter() {
    let emulator = Emulator::new(unlimited());
    let seed = generate(400, 9, &Mess::none());
    let summary = emulator.seed(&seed);
    assert_eq!(summary.deals, seed.deals.len());
    assert_eq!(emulator.count("deals"), Some(seed.deals.len()));
    let api = Api::start(&emulator).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, b) = api
            .get(&format!("/api/v2/deals?limit=37&cursor={cursor}"))
            .await;
        assert_eq!(s, 200);
        seen.extend(
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_u64().unwrap()),
        );
        match b["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), seed.deals.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let count = |q: String| {
        let api = &api;
        async move {
            let (s, b) = api.get(&format!("/api/v2/deals?limit=500&{q}")).await;
            assert_eq!(s, 200, "{q}: {b}");
            b["data"].as_array().unwrap().clone()
        }
    };
    let won = count("status=won".into()).await;
    let expected_won = seed
        .deals
        .iter()
        .filter(|d| d.seed_stage().1.outcome == crate::accounts::Outcome::Won)
        .count();
    assert_eq!(won.len(), expected_won);
    assert!(
        won.iter()
            .all(|d| d["won_time"].is_string() && d["close_time"].is_string())
    );
    let lost = count("status=lost,won".into()).await;
    assert!(lost.len() > won.len());
    let first = &won[0];
    for key in ["owner_id", "stage_id", "pipeline_id", "org_id", "person_id"] {
        if first[key].is_null() {
            continue;
        }
        let hits = count(format!("{key}={}", first[key])).await;
        assert!(
            !hits.is_empty() && hits.iter().all(|d| d[key] == first[key]),
            "{key}"
        );
    }
    let since = first["update_time"].as_str().unwrap();
    let recent = count(format!("updated_since={since}")).await;
    assert!(
        recent
            .iter()
            .all(|d| d["update_time"].as_str().unwrap() >= since)
    );
    let ids = count(format!("ids={},{}", seen[0], seen[1])).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(api.get("/api/v2/deals?limit=501").await.0, 400);
    assert_eq!(api.get("/api/v2/deals?status=closed").await.0, 400);
    assert_eq!(
        api.get("/api/v2/deals?updated_since=yesterday").await.0,
        400
    );
    assert_eq!(api.get("/api/v2/deals?sort_by=title").await.0, 400);
}

#[tokio::test]
async fn seeding_places_every_stage_owner_link_and_note_parent() {
    let emulator = Emulator::new(unlimited());
    let seed = generate(200, 3, &Mess::none());
    let summary = emulator.seed(&seed);
    assert_eq!(
        (summary.deals, summary.notes),
        (seed.deals.len(), seed.notes.len())
    );
    assert_eq!(emulator.count("notes"), Some(seed.notes.len()));
    let api = Api::start(&emulator).await;
    let users = user_ids(&api).await;
    let me = api.get("/v1/users/me").await.1["data"]["id"]
        .as_u64()
        .unwrap();
    let owner_of = |key: Option<usize>| {
        key.and_then(|k| users.get(crate::accounts::USERS[k].email).copied())
            .unwrap_or(me)
    };
    // Organizations and persons carry their seeded owners (the caller for Hana, who is not here).
    let (_, org) = api.get("/api/v2/organizations/1").await;
    assert_eq!(
        org["data"]["owner_id"].as_u64(),
        Some(owner_of(seed.companies[0].owner))
    );
    // Deal 0: its five contacts, the first as person_id, all as participants.
    let (_, deal) = api.get("/api/v2/deals/1").await;
    let d0 = &seed.deals[0];
    assert_eq!(deal["data"]["owner_id"].as_u64(), Some(owner_of(d0.owner)));
    assert_eq!(deal["data"]["title"], d0.name.as_str());
    assert_eq!(deal["data"]["expected_close_date"], d0.close_date.as_str());
    let (s, parts) = api.get("/v1/deals/1/participants").await;
    assert_eq!(s, 200);
    assert_eq!(parts["data"].as_array().unwrap().len(), 5);
    assert!(
        parts["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["person"]["id"] == deal["data"]["person_id"])
    );
    // Every stage of both pipelines holds deals; won and lost are statuses.
    let (_, stages) = api.get("/api/v2/stages").await;
    for s in stages["data"].as_array().unwrap() {
        let (_, b) = api
            .get(&format!("/api/v2/deals?stage_id={}", s["id"]))
            .await;
        assert!(!b["data"].as_array().unwrap().is_empty(), "{}", s["name"]);
    }
    // Note 0 hangs on a deal, a person and an organization at once, at its original time.
    let (s, note) = api.get("/v1/notes/1").await;
    assert_eq!(s, 200);
    let n = &note["data"];
    assert!(
        n["deal_id"].is_u64() && n["person_id"].is_u64() && n["org_id"].is_u64(),
        "{n}"
    );
    assert_eq!(
        n["add_time"],
        super::crm::format_v1_time(seed.notes[0].timestamp_ms)
    );
    assert_eq!(n["user_id"].as_u64(), Some(owner_of(seed.notes[0].owner)));
    // Plain seed text is held as HTML.
    let plain = seed.notes.iter().position(|n| !n.html).unwrap();
    let (_, note) = api.get(&format!("/v1/notes/{}", plain + 1)).await;
    let content = note["data"]["content"].as_str().unwrap();
    assert!(
        content.contains("<br>") && !content.contains('\n'),
        "{content}"
    );
}

#[tokio::test]
async fn deal_custom_fields_hold_the_source_id_and_exact_search_finds_it() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (s, f) = api
        .post(
            "/api/v2/dealFields",
            json!({"field_name": "Ferry source id", "field_type": "varchar"}),
        )
        .await;
    assert_eq!(s, 200);
    let code = f["data"]["field_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 40);
    assert_eq!(
        emulator
            .custom_field_key("deals", "Ferry source id")
            .as_deref(),
        Some(code.as_str())
    );
    let (s, d) = api
        .post(
            "/api/v2/deals",
            json!({"title": "Mirrored", "custom_fields": {&code: "hubspot:deal:77"}}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["data"]["custom_fields"][&code], "hubspot:deal:77");
    let (s, b) = api
        .get("/api/v2/deals/search?term=HUBSPOT:deal:77&fields=custom_fields&exact_match=true")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["items"][0]["item"]["id"], d["data"]["id"]);
    assert_eq!(b["data"]["items"][0]["item"]["type"], "deal");
    let (_, none) = api
        .get("/api/v2/deals/search?term=hubspot:deal:78&fields=custom_fields&exact_match=true")
        .await;
    assert!(none["data"]["items"].as_array().unwrap().is_empty());
    assert_eq!(api.get("/api/v2/deals/search?term=ab").await.0, 400);
    let (_, v1) = api.get("/v1/dealFields?limit=500").await;
    assert!(
        v1["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == code.as_str())
    );
    let (s, _) = api
        .post(
            "/api/v2/deals",
            json!({"title": "t", "custom_fields": {"0000000000000000000000000000000000000000": "x"}}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = api
        .post(
            "/api/v2/dealFields",
            json!({"field_name": "Where", "field_type": "address"}),
        )
        .await;
    assert_eq!(s, 400, "a type the emulator does not create");
}

#[tokio::test]
async fn deal_participants_are_added_listed_and_removed() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let p1 = api.post("/api/v2/persons", json!({"name": "Ann"})).await.1["data"]["id"].clone();
    let p2 = api.post("/api/v2/persons", json!({"name": "Bo"})).await.1["data"]["id"].clone();
    let deal = api
        .post("/api/v2/deals", json!({"title": "t", "person_id": p1}))
        .await
        .1["data"]["id"]
        .as_u64()
        .unwrap();
    let path = format!("/v1/deals/{deal}/participants");
    let (s, b) = api.post(&path, json!({"person_id": p2})).await;
    assert_eq!(s, 200, "{b}");
    let participant = b["data"]["id"].as_u64().unwrap();
    assert_eq!(
        api.post(&path, json!({"person_id": p2})).await.0,
        400,
        "twice"
    );
    assert_eq!(api.post(&path, json!({"person_id": 999})).await.0, 400);
    assert_eq!(
        api.post("/v1/deals/999/participants", json!({"person_id": p2}))
            .await
            .0,
        404
    );
    let (_, list) = api.get(&path).await;
    let people: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["person"]["id"])
        .collect();
    assert_eq!(people, vec![&p1, &p2], "the deal's person takes part too");
    assert_eq!(api.delete(&format!("{path}/{participant}")).await.0, 200);
    assert_eq!(api.delete(&format!("{path}/{participant}")).await.0, 404);
    assert_eq!(api.get(&path).await.1["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn notes_hold_html_on_up_to_three_parents_and_page_by_offset() {
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let org = api
        .post("/api/v2/organizations", json!({"name": "Acme"}))
        .await
        .1["data"]["id"]
        .clone();
    let person = api.post("/api/v2/persons", json!({"name": "Ann"})).await.1["data"]["id"].clone();
    let deal = api.post("/api/v2/deals", json!({"title": "t"})).await.1["data"]["id"].clone();
    let users = user_ids(&api).await;
    let dev = users["dev.patel@ferry-demo.example"];
    let html = "<p>Réunion &amp; démo</p><br>見積書";
    let (s, b) = api
        .post(
            "/v1/notes",
            json!({"content": html, "deal_id": deal, "person_id": person, "org_id": org,
                   "user_id": dev, "add_time": "2024-03-01 09:30:00"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let n = &b["data"];
    assert_eq!(n["content"], html);
    assert_eq!(
        (&n["deal_id"], &n["person_id"], &n["org_id"]),
        (&deal, &person, &org)
    );
    assert_eq!(n["add_time"], "2024-03-01 09:30:00");
    assert_eq!(n["user_id"], dev);
    assert_eq!(n["organization"]["name"], "Acme");
    let id = n["id"].as_u64().unwrap();
    for (bad, why) in [
        (json!({"deal_id": deal}), "content is required"),
        (json!({"content": "  ", "deal_id": deal}), "empty content"),
        (json!({"content": "x"}), "no parent"),
        (json!({"content": "x", "deal_id": 999}), "missing deal"),
        (
            json!({"content": "x", "org_id": org, "user_id": 5}),
            "unknown author",
        ),
        (
            json!({"content": "x", "org_id": org, "add_time": "2024-03-01T09:30:00Z"}),
            "v1 time",
        ),
        (
            json!({"content": "é".repeat(super::crm::NOTE_MAX + 1), "org_id": org}),
            "too long",
        ),
    ] {
        let (s, b) = api.post("/v1/notes", bad).await;
        assert_eq!(s, 400, "{why}: {b}");
        assert_eq!(b["success"], false);
        assert!(b.get("code").is_none(), "v1 errors carry no code");
    }
    assert_eq!(
        emulator.count("notes"),
        Some(1),
        "nothing truncated and kept"
    );
    let (s, b) = api
        .post(
            "/v1/notes",
            json!({"content": "é".repeat(super::crm::NOTE_MAX), "person_id": person}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for k in 0..5 {
        api.post(
            "/v1/notes",
            json!({"content": format!("n{k}"), "org_id": org}),
        )
        .await;
    }
    let (_, b) = api.get(&format!("/v1/notes?org_id={org}&limit=4")).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 4);
    let p = &b["additional_data"]["pagination"];
    assert_eq!(
        (&p["more_items_in_collection"], &p["next_start"]),
        (&json!(true), &json!(4))
    );
    let (_, b) = api
        .get(&format!("/v1/notes?org_id={org}&start=4&limit=4"))
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        b["additional_data"]["pagination"]["more_items_in_collection"],
        false
    );
    let (_, b) = api.get(&format!("/v1/notes?deal_id={deal}")).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (_, b) = api.get(&format!("/v1/notes?user_id={dev}")).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (_, b) = api.get(&format!("/v1/notes?person_id={person}")).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    let (_, b) = api
        .get("/v1/notes?updated_since=2999-01-01T00:00:00Z")
        .await;
    assert!(b["data"].as_array().unwrap().is_empty());
    assert_eq!(api.get("/v1/notes?updated_since=soon").await.0, 400);
    // Update keeps the add time and at least one parent; delete answers `data: true`.
    let (s, b) = api
        .put(
            &format!("/v1/notes/{id}"),
            json!({"content": "<b>edited</b>", "deal_id": null}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["content"], "<b>edited</b>");
    assert!(b["data"]["deal_id"].is_null());
    assert_eq!(b["data"]["add_time"], "2024-03-01 09:30:00");
    let (s, _) = api
        .put(
            &format!("/v1/notes/{id}"),
            json!({"person_id": null, "org_id": null}),
        )
        .await;
    assert_eq!(s, 400, "a note keeps a parent");
    assert_eq!(
        api.put("/v1/notes/999", json!({"content": "x"})).await.0,
        404
    );
    let (s, b) = api.delete(&format!("/v1/notes/{id}")).await;
    assert_eq!((s, &b["data"]), (200, &json!(true)));
    assert_eq!(api.get(&format!("/v1/notes/{id}")).await.0, 404);
    assert_eq!(api.delete(&format!("/v1/notes/{id}")).await.0, 404);
}

#[tokio::test]
async fn sales_routes_draw_on_the_token_budget() {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: Some(1_000),
        ..Options::default()
    });
    let api = Api::start(&emulator).await;
    let before = emulator.tokens_used();
    api.get("/api/v2/deals").await;
    api.get("/v1/notes").await;
    api.get("/v1/users/me").await;
    assert_eq!(emulator.tokens_used() - before, 10 + 20 + 2);
    let (s, h, _) = api.call(reqwest::Method::GET, "/v1/users", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        h["x-daily-ratelimit-token-remaining"].to_str().unwrap(),
        (1_000 - 52).to_string()
    );
}

#[tokio::test]
async fn every_other_refusal_of_the_sales_routes() {
    use reqwest::Method;
    let emulator = Emulator::new(unlimited());
    let api = Api::start(&emulator).await;
    let (_, f) = api
        .post(
            "/api/v2/dealFields",
            json!({"field_name": "Plan", "field_type": "enum", "options": [{"label": "A"}]}),
        )
        .await;
    let plan = f["data"]["field_code"].as_str().unwrap().to_owned();
    let (_, f) = api
        .post(
            "/api/v2/dealFields",
            json!({"field_name": "Size", "field_type": "double"}),
        )
        .await;
    let size = f["data"]["field_code"].as_str().unwrap().to_owned();
    let deal = api.post("/api/v2/deals", json!({"title": "t"})).await.1["data"]["id"].clone();
    let org = api
        .post("/api/v2/organizations", json!({"name": "o"}))
        .await
        .1["data"]["id"]
        .clone();
    let many_ids = (1..=101)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let many_keys = (0..16)
        .map(|n| format!("k{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (
            Method::PUT,
            "/v1/users/1".into(),
            Some(json!({"active_flag": true})),
            404,
        ),
        (
            Method::PUT,
            "/v1/users/x".into(),
            Some(json!({"active_flag": true})),
            400,
        ),
        (
            Method::PUT,
            format!("/v1/users/{}", emulator.company_id() * 100 + 2),
            Some(json!({})),
            400,
        ),
        (Method::GET, "/v1/users/x".into(), None, 400),
        (
            Method::POST,
            "/api/v2/dealFields".into(),
            Some(json!({"field_type": "varchar"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/dealFields".into(),
            Some(json!({"field_name": "n"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/dealFields".into(),
            Some(json!({"field_name": "n", "field_type": "enum"})),
            400,
        ),
        (
            Method::GET,
            format!("/api/v2/deals?ids={many_ids}"),
            None,
            400,
        ),
        (Method::GET, "/api/v2/deals?ids=a".into(), None, 400),
        (Method::GET, "/api/v2/deals?filter_id=1".into(), None, 400),
        (
            Method::GET,
            format!("/api/v2/deals?custom_fields={many_keys}"),
            None,
            400,
        ),
        (Method::GET, "/api/v2/deals?owner_id=me".into(), None, 400),
        (Method::GET, "/api/v2/deals/x".into(), None, 400),
        (Method::GET, "/api/v2/stages?sort_by=name".into(), None, 400),
        (
            Method::GET,
            "/api/v2/pipelines?sort_direction=desc".into(),
            None,
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "is_deleted": true})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "label_ids": ["a"]})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "stage_id": null})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "pipeline_id": null})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": 5})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "value": "5"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "status": "open", "close_time": "2026-01-01T00:00:00Z"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "status": "won", "lost_time": "2026-01-01T00:00:00Z"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "status": "won", "won_time": "soon"})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "custom_fields": {&plan: 999}})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "custom_fields": {&size: "big"}})),
            400,
        ),
        (
            Method::POST,
            "/api/v2/deals".into(),
            Some(json!({"title": "t", "custom_fields": []})),
            400,
        ),
        (Method::POST, "/api/v2/deals".into(), Some(json!([1])), 400),
        (Method::DELETE, "/api/v2/deals/x".into(), None, 400),
        (
            Method::GET,
            "/api/v2/deals/search?term=x&exact_match=true&fields=email".into(),
            None,
            400,
        ),
        (
            Method::GET,
            "/api/v2/deals/search?exact_match=true".into(),
            None,
            400,
        ),
        (Method::GET, "/v1/deals/x/participants".into(), None, 400),
        (Method::GET, "/v1/deals/999/participants".into(), None, 404),
        (
            Method::POST,
            format!("/v1/deals/{deal}/participants"),
            Some(json!({})),
            400,
        ),
        (
            Method::DELETE,
            format!("/v1/deals/{deal}/participants/x"),
            None,
            400,
        ),
        (
            Method::GET,
            "/v1/notes?sort=add_time%20DESC".into(),
            None,
            400,
        ),
        (Method::GET, "/v1/notes?start=-1".into(), None, 400),
        (Method::GET, "/v1/notes?limit=x".into(), None, 400),
        (Method::GET, "/v1/notes/x".into(), None, 400),
        (
            Method::POST,
            "/v1/notes".into(),
            Some(json!({"content": 5, "org_id": org})),
            400,
        ),
        (
            Method::POST,
            "/v1/notes".into(),
            Some(json!({"content": "c", "org_id": "1"})),
            400,
        ),
        (
            Method::POST,
            "/v1/notes".into(),
            Some(json!({"content": "c", "org_id": org, "user_id": "me"})),
            400,
        ),
        (
            Method::POST,
            "/v1/notes".into(),
            Some(json!({"content": "c", "org_id": org, "pinned_to_deal_flag": 2})),
            400,
        ),
        (Method::POST, "/v1/notes".into(), Some(json!("text")), 400),
        (
            Method::PUT,
            "/v1/notes/x".into(),
            Some(json!({"content": "c"})),
            400,
        ),
        (Method::DELETE, "/v1/notes/x".into(), None, 400),
    ];
    for (method, path, body, status) in cases {
        let (s, _, b) = api.call(method.clone(), &path, body.clone()).await;
        assert_eq!(s, status, "{method} {path} {body:?} → {b}");
        assert_eq!(b["success"], false, "{method} {path}");
    }
    // Invalid JSON: v2 says ERR_BAD_REQUEST, v1 a plain 400.
    for path in ["/api/v2/deals", "/v1/notes"] {
        let resp = api
            .http
            .post(format!("{}{path}", api.base))
            .header("x-api-token", TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{path}");
    }
    assert_eq!(
        emulator.count("deals"),
        Some(1),
        "nothing refused was stored"
    );
    assert_eq!(emulator.count("notes"), Some(0));
}

/// The ids a list answers (`data[].id`), in its order.
fn listed_ids(body: &Value) -> Vec<u64> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

/// `time` (epoch ms) as a query value: RFC 3339 in whole seconds, `+` escaped.
fn rfc3339_query(ms: i64) -> String {
    store::format_rfc3339(ms).replace('+', "%2B")
}

/// Every write (create, update, a deal's person, a note's edit) stamps `update_time` with the
/// account's clock, which tests move ahead; `updated_since` (≥) and `updated_until` (<) filter
/// on it on persons, organizations and deals, `updated_since` on notes, to the second; a
/// participant added or removed leaves the deal's time alone (Pipedrive documents no such
/// stamp); every answer carries the clock in `Date`.
#[tokio::test]
async fn writes_stamp_update_time_by_the_accounts_clock_and_lists_filter_on_it() {
    let emulator = Emulator::new(unlimited());
    emulator.seed(&generate(30, 3, &Mess::none()));
    let api = Api::start(&emulator).await;
    // A year on: every seeded record is older than what follows.
    emulator.advance_clock(std::time::Duration::from_secs(365 * 86_400));
    let before = emulator.now_ms();
    let (status, headers, _) = api.call(reqwest::Method::GET, "/v1/users/me", None).await;
    let after = emulator.now_ms();
    assert_eq!(status, 200);
    let date = headers.get("date").unwrap().to_str().unwrap();
    assert!(
        [before, after]
            .iter()
            .any(|t| crate::timestamp::http_date(*t) == date),
        "{date}"
    );
    let (status, headers, _) = api.call(reqwest::Method::GET, "/nowhere", None).await;
    assert_eq!(status, 404);
    assert!(headers.contains_key("date"), "every answer is dated");

    let t1 = emulator.now_ms();
    let org = api
        .post("/api/v2/organizations", json!({"name": "Acme"}))
        .await
        .1["data"]["id"]
        .as_u64()
        .unwrap();
    let person = api
        .post("/api/v2/persons", json!({"name": "Ann", "org_id": org}))
        .await
        .1["data"]["id"]
        .as_u64()
        .unwrap();
    let other = api.post("/api/v2/persons", json!({"name": "Bo"})).await.1["data"]["id"]
        .as_u64()
        .unwrap();
    let deal = api
        .post("/api/v2/deals", json!({"title": "t", "person_id": person}))
        .await
        .1["data"]["id"]
        .as_u64()
        .unwrap();
    let note = api
        .post("/v1/notes", json!({"content": "<p>n</p>", "deal_id": deal}))
        .await
        .1["data"]["id"]
        .as_u64()
        .unwrap();
    let since = |t: i64| format!("updated_since={}", rfc3339_query(t));
    let until = |t: i64| format!("updated_until={}", rfc3339_query(t));
    let list = |path: &'static str, query: String| {
        let api = &api;
        async move {
            let (s, b) = api.get(&format!("{path}?{query}")).await;
            assert_eq!(s, 200, "{path}?{query}: {b}");
            listed_ids(&b)
        }
    };
    assert_eq!(list("/api/v2/organizations", since(t1)).await, [org]);
    assert_eq!(list("/api/v2/persons", since(t1)).await, [person, other]);
    assert_eq!(list("/api/v2/deals", since(t1)).await, [deal]);
    assert_eq!(list("/v1/notes", since(t1)).await, [note]);
    let created = api.get(&format!("/api/v2/persons/{person}")).await.1["data"]["update_time"]
        .as_str()
        .unwrap()
        .to_owned();
    let stamped = store::parse_rfc3339(&created).unwrap();
    assert!(
        stamped >= t1 && stamped % 1000 == 0,
        "{created}: whole seconds"
    );

    // An hour on, every record but `other` changes; a participant added to the deal and taken
    // away again does not move it.
    emulator.advance_clock(std::time::Duration::from_secs(3600));
    let t2 = emulator.now_ms();
    let path = format!("/v1/deals/{deal}/participants");
    let (s, b) = api.post(&path, json!({"person_id": other})).await;
    assert_eq!(s, 200, "{b}");
    let participant = b["data"]["id"].as_u64().unwrap();
    assert_eq!(api.delete(&format!("{path}/{participant}")).await.0, 200);
    assert!(
        list("/api/v2/deals", since(t2)).await.is_empty(),
        "participants move nothing"
    );
    for (path, body) in [
        (
            format!("/api/v2/organizations/{org}"),
            json!({"name": "Acme Ltd"}),
        ),
        (format!("/api/v2/persons/{person}"), json!({"org_id": null})),
        (format!("/api/v2/deals/{deal}"), json!({"person_id": other})),
    ] {
        let (s, b) = api.patch(&path, body).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let (s, b) = api
        .put(
            &format!("/v1/notes/{note}"),
            json!({"content": "<p>edited</p>"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(list("/api/v2/organizations", since(t2)).await, [org]);
    assert_eq!(list("/api/v2/persons", since(t2)).await, [person]);
    assert_eq!(list("/api/v2/deals", since(t2)).await, [deal]);
    assert_eq!(list("/v1/notes", since(t2)).await, [note]);
    // Between the two: only `other`, unchanged since its creation.
    assert_eq!(
        list("/api/v2/persons", format!("{}&{}", since(t1), until(t2))).await,
        [other]
    );
    assert!(
        list("/api/v2/deals", format!("{}&{}", since(t1), until(t2)))
            .await
            .is_empty()
    );

    // Ties at the bound: `updated_since` at a record's exact time reads it, a second later
    // does not; `updated_until` at it leaves it out, a second later takes it in.
    for (path, id) in [
        ("/api/v2/organizations", org),
        ("/api/v2/persons", person),
        ("/api/v2/deals", deal),
    ] {
        let (_, b) = api.get(&format!("{path}/{id}")).await;
        let at = store::parse_rfc3339(b["data"]["update_time"].as_str().unwrap()).unwrap();
        assert_eq!(list(path, since(at)).await, [id], "{path} at its bound");
        assert!(
            list(path, since(at + 1000)).await.is_empty(),
            "{path} past it"
        );
        let window = |end: i64| format!("{}&{}", since(t2), until(end));
        assert_eq!(list(path, window(at + 1000)).await, [id], "{path}");
        assert!(
            list(path, window(at)).await.is_empty(),
            "{path}: until excludes"
        );
    }
    let (_, b) = api.get(&format!("/v1/notes/{note}")).await;
    let v1 = b["data"]["update_time"].as_str().unwrap().replace(' ', "T") + "Z";
    let at = store::parse_rfc3339(&v1).unwrap();
    assert_eq!(list("/v1/notes", since(at)).await, [note]);
    assert!(list("/v1/notes", since(at + 1000)).await.is_empty());
    // `ids` and paging keep the filter.
    assert_eq!(
        list(
            "/api/v2/persons",
            format!("ids={person},{other}&{}", since(t2))
        )
        .await,
        [person]
    );
    let (_, page) = api
        .get(&format!("/api/v2/persons?limit=1&{}", since(t1)))
        .await;
    assert_eq!(listed_ids(&page), [person]);
    let cursor = page["additional_data"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, page) = api
        .get(&format!(
            "/api/v2/persons?limit=1&cursor={cursor}&{}",
            since(t1)
        ))
        .await;
    assert_eq!(listed_ids(&page), [other]);

    for bad in [
        "/api/v2/persons?updated_since=yesterday",
        "/api/v2/organizations?updated_until=2024-13-01",
        "/api/v2/deals?updated_until=soon",
        "/v1/notes?updated_since=2024-01-01",
    ] {
        assert_eq!(api.get(bad).await.0, 400, "{bad}");
    }
}

/// `sort_by=update_time` (and `add_time`, `id`) with `sort_direction`, on persons,
/// organizations and deals: the first and last changed, ties by id, paged by the cursor, with
/// the filters; an unknown order is refused.
#[tokio::test]
async fn lists_sort_by_update_time_either_way() {
    let emulator = Emulator::new(unlimited());
    emulator.seed(&generate(60, 3, &Mess::none()));
    let api = Api::start(&emulator).await;
    for path in ["/api/v2/persons", "/api/v2/organizations", "/api/v2/deals"] {
        let (s, b) = api.get(&format!("{path}?limit=500")).await;
        assert_eq!(s, 200, "{b}");
        let mut by_time: Vec<(i64, u64)> = b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let t = store::parse_rfc3339(r["update_time"].as_str().unwrap()).unwrap();
                (t, r["id"].as_u64().unwrap())
            })
            .collect();
        by_time.sort_unstable();
        assert!(by_time.len() > 5, "{path}");
        let ids = |v: &[(i64, u64)]| v.iter().map(|(_, id)| *id).collect::<Vec<_>>();
        // Paged three at a time, up then down.
        for (direction, expected) in [
            ("asc", ids(&by_time)),
            ("desc", ids(&by_time).into_iter().rev().collect()),
        ] {
            let mut read = Vec::new();
            let mut cursor = String::new();
            loop {
                let (s, b) = api
                    .get(&format!(
                        "{path}?limit=3&sort_by=update_time&sort_direction={direction}{cursor}"
                    ))
                    .await;
                assert_eq!(s, 200, "{b}");
                read.extend(listed_ids(&b));
                match b["additional_data"]["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
            assert_eq!(read, expected, "{path} {direction}");
        }
        // With a window: the first changed at or after the middle one's time.
        let middle = by_time[by_time.len() / 2].0;
        let since = rfc3339_query(middle);
        let (_, b) = api
            .get(&format!(
                "{path}?limit=1&sort_by=update_time&updated_since={since}"
            ))
            .await;
        let first = by_time.iter().find(|(t, _)| *t >= middle).unwrap().1;
        assert_eq!(listed_ids(&b), [first]);
    }
    assert_eq!(api.get("/api/v2/persons?sort_by=name").await.0, 400);
    assert_eq!(api.get("/api/v2/persons?sort_direction=up").await.0, 400);
    let (s, b) = api
        .get("/api/v2/persons?sort_by=id&sort_direction=desc&limit=2")
        .await;
    assert_eq!(s, 200);
    let mut all = listed_ids(&api.get("/api/v2/persons?limit=500").await.1);
    all.reverse();
    assert_eq!(listed_ids(&b), all[..2]);
}
