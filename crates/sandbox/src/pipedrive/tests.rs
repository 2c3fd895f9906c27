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
    let expected = data
        .contacts
        .iter()
        .filter(|c| c.email_opt_out)
        .count();
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
    let started = std::time::Instant::now();
    let summary = emulator.seed(&generate(1_000_000, 1, &Mess::default()));
    assert!(summary.contacts > 999_000, "only nameless contacts are skipped");
    assert_eq!(emulator.count("contacts"), Some(summary.contacts));
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
        (&region["field_type"], &seats["field_type"], &tier["field_type"]),
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
    let labels: Vec<&str> = options.iter().map(|o| o["label"].as_str().unwrap()).collect();
    assert_eq!(labels, crate::seed::TIERS);
    assert!(options.iter().all(|o| o["id"].is_u64()), "custom option ids are numbers");
    let name = field_named(&orgs, "Name");
    assert_eq!((&name["field_code"], &name["is_custom_field"]), (&json!("name"), &json!(false)));
    assert_eq!(field_named(&orgs, "Address")["subfields"][0]["field_code"], "value");
    let (_, persons) = api.get("/api/v2/personFields").await;
    assert_eq!(field_named(&persons, "Favourite Colour")["field_type"], "varchar");
    assert_eq!(field_named(&persons, "Loyalty Points")["field_type"], "double");
    let marketing = field_named(&persons, "Marketing status");
    assert_eq!(marketing["is_optional_response_field"], true);
    assert_eq!(marketing["options"][0]["id"], "no_consent", "built-in ids are names");
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
        .get(&format!("/api/v2/organizationFields/{}", tier["field_code"].as_str().unwrap()))
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
    assert!(seed.companies.iter().any(|c| c.tier.is_some() && c.seats.is_some()));
    let (_, people) = api.get("/api/v2/persons?limit=500").await;
    let colour = key(field_named(&persons, "Favourite Colour"));
    let points = key(field_named(&persons, "Loyalty Points"));
    let named: Vec<_> = seed
        .contacts
        .iter()
        .filter(|c| !crate::pipedrive::store::join_name(c.first_name.as_deref(), c.last_name.as_deref()).is_empty())
        .collect();
    for (contact, item) in named.iter().zip(people["data"].as_array().unwrap()) {
        assert_eq!(item["custom_fields"][&colour], json!(contact.favourite_colour));
        assert_eq!(item["custom_fields"][&points], json!(contact.loyalty_points));
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
            .post("/api/v2/organizations", json!({"name": "A", "custom_fields": custom}))
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
        .get(&format!("/api/v2/organizations/{id}?custom_fields={tier},{seats}"))
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
        .post("/api/v2/personFields", json!({"field_name": "Size", "field_type": "enum"}))
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
    assert_eq!((&field["field_name"], &field["is_custom_field"]), (&json!("Size"), &json!(true)));
    let code = field["field_code"].as_str().unwrap();
    let m = field["options"][1]["id"].clone();
    assert_eq!(field["options"][1]["label"], "M");
    assert!(m.is_u64());
    let (s, b) = api
        .post("/api/v2/persons", json!({"name": "P", "custom_fields": {code: m}}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["custom_fields"][code], m);
    let (_, listed) = api.get("/api/v2/personFields").await;
    assert_eq!(field_named(&listed, "Size")["options"], field["options"]);
}
