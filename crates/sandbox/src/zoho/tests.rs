//! The Zoho emulator over real HTTP on loopback.

use std::net::SocketAddr;

use serde_json::{Value as Json, json};

use super::*;
use crate::seed::{Mess, generate};

struct Org {
    emulator: Emulator,
    running: crate::Running,
    http: reqwest::Client,
    token: String,
}

async fn org(options: Options) -> Org {
    let emulator = Emulator::new(options);
    let running = crate::serve(
        "zoho",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut org = Org {
        emulator,
        running,
        http: reqwest::Client::new(),
        token: String::new(),
    };
    let body = org
        .refresh(ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN)
        .await;
    org.token = body["access_token"].as_str().expect("token").to_owned();
    org
}

impl Org {
    async fn refresh(&self, id: &str, secret: &str, refresh: &str) -> Json {
        let resp = self
            .http
            .post(format!("{}/oauth/v2/token", self.running.base_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", id),
                ("client_secret", secret),
                ("refresh_token", refresh),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("json")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> (u16, reqwest::header::HeaderMap, Json) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.running.base_url))
            .header("Authorization", format!("Zoho-oauthtoken {}", self.token));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Json::Null))
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        let (s, _, b) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }

    async fn post(&self, path: &str, body: Json) -> (u16, Json) {
        let (s, _, b) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }
}

#[tokio::test]
async fn token_grant_and_auth_errors() {
    let org = org(Options::default()).await;
    let body = org
        .refresh(ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN)
        .await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["api_domain"], org.running.base_url.as_str());
    let bad = org
        .refresh(ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, "1000.wrong")
        .await;
    assert_eq!(bad, json!({"error": "invalid_code"}));
    let bad = org
        .refresh("nope", ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN)
        .await;
    assert_eq!(bad["error"], "invalid_client");

    let (status, body) = org.get("/crm/v8/Contacts?fields=Last_Name").await;
    assert_eq!(status, 204, "{body}");
    org.emulator.expire_tokens();
    let (status, body) = org.get("/crm/v8/Contacts?fields=Last_Name").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
    );
    let resp = org
        .http
        .get(format!(
            "{}/crm/v8/Contacts?fields=Last_Name",
            org.running.base_url
        ))
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

/// Zoho's OAuth reference puts the refresh grant's parameters in the query string, and the
/// official Node SDK posts them as `multipart/form-data`: both get a token.
#[tokio::test]
async fn token_grant_from_query_parameters_and_multipart_bodies() {
    let org = org(Options::default()).await;
    let url = format!(
        "{}/oauth/v2/token?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
        org.running.base_url,
        urlencoding::encode(ZOHO_CLIENT_ID),
        urlencoding::encode(ZOHO_CLIENT_SECRET),
        urlencoding::encode(ZOHO_REFRESH_TOKEN)
    );
    let body: Json = org
        .http
        .post(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");

    let boundary = "--------------------------123456789012345678901234";
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let multipart = |secret: &str| {
        format!(
            "{}{}{}{}--{boundary}--\r\n",
            field("client_id", ZOHO_CLIENT_ID),
            field("client_secret", secret),
            field("grant_type", "refresh_token"),
            field("refresh_token", ZOHO_REFRESH_TOKEN)
        )
    };
    let send = |body: String| {
        org.http
            .post(format!("{}/oauth/v2/token", org.running.base_url))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    let body: Json = send(multipart(ZOHO_CLIENT_SECRET))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let access = body["access_token"].as_str().unwrap();
    let resp = org
        .http
        .get(format!(
            "{}/crm/v8/Contacts?fields=Last_Name",
            org.running.base_url
        ))
        .header("Authorization", format!("Zoho-oauthtoken {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let bad: Json = send(multipart("wrong"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad, json!({"error": "invalid_client_secret"}));
    let broken: Json = send("not multipart".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(broken, json!({"error": "invalid_request"}));
}

#[tokio::test]
async fn list_requires_fields_and_pages_by_number_then_token() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(2_600, 3, &Mess::none()));
    let contacts = org.emulator.count("Contacts");
    assert_eq!(contacts, 2_600);

    let (status, body) = org.get("/crm/v8/Contacts").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "REQUIRED_PARAM_MISSING");
    assert_eq!(body["details"]["param_name"], "fields");
    let (status, body) = org.get("/crm/v8/Widgets?fields=Name").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_MODULE"))
    );
    let (status, _) = org
        .get("/crm/v8/Contacts?fields=Last_Name&per_page=201")
        .await;
    assert_eq!(status, 400);

    // Page 10 of 200 is the last reachable by number; page 11 needs page_token.
    let (status, body) = org
        .get("/crm/v8/Contacts?fields=Last_Name&per_page=200&page=10&sort_order=asc")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["info"]["more_records"], true);
    let (status, body) = org
        .get("/crm/v8/Contacts?fields=Last_Name&per_page=200&page=11")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "DISCRETE_PAGINATION_LIMIT_EXCEEDED");
    assert_eq!(body["details"]["limit"], 2000);

    // Walk everything with page tokens, ascending by id.
    let mut seen = std::collections::HashSet::new();
    let mut last = 0u64;
    let mut path =
        "/crm/v8/Contacts?fields=Last_Name,Account_Name,Email_Opt_Out&per_page=200&sort_order=asc"
            .to_owned();
    loop {
        let (status, body) = org.get(&path).await;
        assert_eq!(status, 200, "{body}");
        for r in body["data"].as_array().unwrap() {
            let id: u64 = r["id"].as_str().unwrap().parse().unwrap();
            assert!(id > last, "ascending ids");
            last = id;
            assert!(seen.insert(id));
            assert!(r["Last_Name"].is_string());
            assert!(r["Email_Opt_Out"].is_boolean());
            assert!(r["Account_Name"].is_null() || r["Account_Name"]["id"].is_string());
        }
        if body["info"]["more_records"] != true {
            assert!(body["info"]["next_page_token"].is_null());
            break;
        }
        let token = body["info"]["next_page_token"].as_str().unwrap();
        path = format!(
            "/crm/v8/Contacts?fields=Last_Name,Account_Name,Email_Opt_Out&per_page=200&sort_order=asc&page_token={token}"
        );
        let (status, body) = org.get(&format!("{path}&page=2")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("AMBIGUITY_DURING_PROCESSING"))
        );
    }
    assert_eq!(seen.len(), contacts);
}

#[tokio::test]
async fn page_tokens_stop_at_their_reach() {
    let org = org(Options {
        page_token_reach: 400,
        ..Options::default()
    })
    .await;
    org.emulator.seed(&generate(1_000, 3, &Mess::none()));
    let mut path = "/crm/v8/Contacts?fields=Last_Name&per_page=200".to_owned();
    for _ in 0..2 {
        let (status, body) = org.get(&path).await;
        assert_eq!(status, 200);
        let token = body["info"]["next_page_token"].as_str().unwrap();
        path = format!("/crm/v8/Contacts?fields=Last_Name&per_page=200&page_token={token}");
    }
    let (status, body) = org.get(&path).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "PAGINATION_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn upsert_matches_on_duplicate_check_fields_and_reports_per_record() {
    let org = org(Options::default()).await;
    let dup = json!(["Ferry_Source_Id"]);
    let (status, body) = org
        .post(
            "/crm/v8/Accounts/upsert",
            json!({"data": [{"Account_Name": "Acme", "Ferry_Source_Id": "co-1", "Employees": 10}], "duplicate_check_fields": dup}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(
        (item["code"].as_str(), item["action"].as_str()),
        (Some("SUCCESS"), Some("insert"))
    );
    assert_eq!(item["message"], "record added");
    let account_id = item["details"]["id"].as_str().unwrap().to_owned();

    // Same source id: an update, whatever the name.
    let (status, body) = org
        .post(
            "/crm/v8/Accounts/upsert",
            json!({"data": [{"Account_Name": "Acme Ltd", "Ferry_Source_Id": "co-1"}], "duplicate_check_fields": dup}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["duplicate_field"], "Ferry_Source_Id");
    assert_eq!(body["data"][0]["details"]["id"], account_id.as_str());
    assert_eq!(org.emulator.count("Accounts"), 1);

    // Mixed batch: 207 with per-record codes naming fields, lookups by id.
    let (status, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [
                {"Last_Name": "Gilmore", "Email": "lorelai@example.org", "Ferry_Source_Id": "p-1", "Account_Name": {"id": account_id}},
                {"First_Name": "Rory", "Ferry_Source_Id": "p-2"},
                {"Last_Name": "Danes", "Email": "not-an-email", "Ferry_Source_Id": "p-3"},
                {"Last_Name": "x".repeat(81), "Ferry_Source_Id": "p-4"},
                {"Last_Name": "Kim", "Ferry_Source_Id": "p-5", "Account_Name": {"id": "1"}},
                {"Last_Name": "Bo", "Ferry_Source_Id": "p-6", "Email_Opt_Out": "yes"},
            ], "duplicate_check_fields": dup}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let codes: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "SUCCESS",
            "MANDATORY_NOT_FOUND",
            "INVALID_DATA",
            "INVALID_DATA",
            "INVALID_DATA",
            "INVALID_DATA"
        ]
    );
    assert_eq!(body["data"][1]["details"]["api_name"], "Last_Name");
    assert_eq!(body["data"][2]["details"]["api_name"], "Email");
    assert_eq!(body["data"][3]["details"]["maximum_length"], 80);
    assert_eq!(body["data"][4]["details"]["api_name"], "Account_Name");
    assert_eq!(body["data"][5]["details"]["expected_data_type"], "boolean");

    // All refused: 400 with the data array.
    let (status, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [{"First_Name": "Nobody"}], "duplicate_check_fields": dup}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "MANDATORY_NOT_FOUND");

    let stored = org.emulator.record_by_source_id("Contacts", "p-1").unwrap();
    assert_eq!(stored["Account_Name"]["name"], "Acme Ltd");
}

#[tokio::test]
async fn partial_fails_some_records_with_internal_error_and_saves_the_rest() {
    let org = org(Options {
        faults: crate::faults::Faults::parse("partial:30,seed:4").unwrap(),
        ..Options::default()
    })
    .await;
    let data: Vec<Json> = (0..40)
        .map(|i| json!({"Account_Name": format!("A{i}"), "Ferry_Source_Id": format!("co-{i}")}))
        .collect();
    let (status, body) = org
        .post(
            "/crm/v8/Accounts/upsert",
            json!({"data": data, "duplicate_check_fields": ["Ferry_Source_Id"]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 40, "one answer per record, in order");
    let failed = items.iter().filter(|i| i["status"] == "error").count();
    assert!(failed > 0 && failed < 40, "{failed} failed");
    for item in items.iter().filter(|i| i["status"] == "error") {
        assert_eq!(item["code"], "INTERNAL_ERROR");
    }
    assert_eq!(
        org.emulator.count("Accounts"),
        40 - failed,
        "failed records not saved"
    );
}

#[tokio::test]
async fn upsert_limits_and_duplicate_check_field_rules() {
    let org = org(Options::default()).await;
    let many: Vec<Json> = (0..101)
        .map(|i| json!({"Last_Name": format!("L{i}")}))
        .collect();
    let (status, body) = org
        .post("/crm/v8/Contacts/upsert", json!({"data": many}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "LIMIT_EXCEEDED");
    let (status, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [{"Last_Name": "A"}], "duplicate_check_fields": ["Phone"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "INVALID_DATA");
    // Without duplicate_check_fields the system field (Email) matches.
    for _ in 0..2 {
        let (status, _) = org
            .post(
                "/crm/v8/Contacts/upsert",
                json!({"data": [{"Last_Name": "A", "Email": "a@example.org"}]}),
            )
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(org.emulator.count("Contacts"), 1);
    // With only the source-id field, Email is ignored: a second contact with it is inserted.
    let (_, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [{"Last_Name": "B", "Email": "a@example.org", "Ferry_Source_Id": "x"}], "duplicate_check_fields": ["Ferry_Source_Id"]}),
        )
        .await;
    assert_eq!(body["data"][0]["action"], "insert");
    // Case-insensitive unique field: "X" is the same record as "x".
    let (_, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [{"Last_Name": "C", "Ferry_Source_Id": "X"}], "duplicate_check_fields": ["Ferry_Source_Id"]}),
        )
        .await;
    assert_eq!(body["data"][0]["action"], "update");
}

#[tokio::test]
async fn field_metadata_reports_the_source_id_field() {
    let org = org(Options::default()).await;
    let (status, body) = org.get("/crm/v8/settings/fields?module=Contacts").await;
    assert_eq!(status, 200);
    let field = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["api_name"] == "Ferry_Source_Id")
        .unwrap();
    assert_eq!(field["unique"], json!({"case_sensitive": false}));
    assert_eq!(field["data_type"], "text");
    let (status, body) = org.get("/crm/v8/settings/fields").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("REQUIRED_PARAM_MISSING"))
    );

    let bare = self::org(Options {
        source_id_field: None,
        ..Options::default()
    })
    .await;
    let (_, body) = bare.get("/crm/v8/settings/fields?module=Accounts").await;
    assert!(
        body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["api_name"] != "Ferry_Source_Id")
    );
}

#[tokio::test]
async fn coql_reads_back_by_source_id_with_lookup_fields() {
    let org = org(Options::default()).await;
    let dup = json!(["Ferry_Source_Id"]);
    let (_, body) = org
        .post(
            "/crm/v8/Accounts/upsert",
            json!({"data": [{"Account_Name": "Acme", "Ferry_Source_Id": "co-'1"}], "duplicate_check_fields": dup}),
        )
        .await;
    let account = body["data"][0]["details"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    org.post(
        "/crm/v8/Contacts/upsert",
        json!({"data": [
            {"Last_Name": "A", "Ferry_Source_Id": "p-1", "Account_Name": {"id": account}},
            {"Last_Name": "B", "Ferry_Source_Id": "p-2", "Email_Opt_Out": true},
        ], "duplicate_check_fields": dup}),
    )
    .await;
    let (status, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select Last_Name, Email_Opt_Out, Account_Name, Account_Name.Ferry_Source_Id, Ferry_Source_Id from Contacts where Ferry_Source_Id in ('p-1', 'p-2', 'p-9') limit 50"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["info"], json!({"count": 2, "more_records": false}));
    let a = &body["data"][0];
    assert_eq!(a["Account_Name.Ferry_Source_Id"], "co-'1");
    assert_eq!(a["Account_Name"]["id"], account.as_str());
    assert_eq!(body["data"][1]["Email_Opt_Out"], true);
    assert!(body["data"][1]["Account_Name"].is_null());
    let (status, _) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select id from Accounts where Ferry_Source_Id = 'co-\\'1'"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select id from Accounts where Ferry_Source_Id = 'nope'"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select Nope from Accounts"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_QUERY"))
    );
}

#[tokio::test]
async fn coql_pages_by_id_with_exact_19_digit_ids() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(50, 4, &Mess::none()));
    let (status, body) = org
        .post("/crm/v8/coql", json!({"select_query": "select Account_Name from Accounts where id > 0 order by id asc limit 4"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let fourth = body["data"][3]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["info"]["more_records"], true);
    let (status, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": format!("select Account_Name from Accounts where id > {fourth} order by id asc limit 200")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["info"]["count"], 6, "ids one apart are told apart");
    assert_eq!(body["info"]["more_records"], false);
}

#[tokio::test]
async fn credits_and_the_concurrency_limit_give_429() {
    let org = org(Options {
        credits: Some(4),
        ..Options::default()
    })
    .await;
    for _ in 0..4 {
        let (status, _) = org.get("/crm/v8/Contacts?fields=Last_Name").await;
        assert_eq!(status, 204);
    }
    let (status, headers, body) = org
        .call(
            reqwest::Method::GET,
            "/crm/v8/Contacts?fields=Last_Name",
            None,
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert_eq!(headers["x-api-credits-remaining"], "0");
    assert!(headers.get("retry-after").is_none());

    let slow = self::org(Options {
        concurrency_limit: Some(2),
        latency: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let request = slow
            .http
            .get(format!(
                "{}/crm/v8/Contacts?fields=Last_Name",
                slow.running.base_url
            ))
            .header("Authorization", format!("Zoho-oauthtoken {}", slow.token));
        tasks.spawn(async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
}

/// `ferry sandbox --limit zoho=2 --latency zoho=200`: two concurrent calls, and the added
/// latency counted while a call is in flight, as Zoho counts its own serving time.
#[tokio::test]
async fn sandbox_limit_sets_the_concurrency_and_latency_counts_as_in_flight() {
    let faults = Faults {
        latency: Some(Duration::from_millis(200)),
        ..Faults::default()
    };
    let emulator = (SPEC.build)(faults, crate::Limits::Burst(2));
    let running = crate::serve(
        "zoho",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let http = reqwest::Client::new();
    let grant: Json = http
        .post(format!("{}/oauth/v2/token", running.base_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", ZOHO_CLIENT_ID),
            ("client_secret", ZOHO_CLIENT_SECRET),
            ("refresh_token", ZOHO_REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = grant["access_token"].as_str().expect("token").to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let request = http
            .get(format!(
                "{}/crm/v8/Contacts?fields=Last_Name",
                running.base_url
            ))
            .header("Authorization", format!("Zoho-oauthtoken {token}"));
        tasks.spawn(async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn injected_throttling_uses_zohos_body() {
    let org = org(Options {
        faults: Faults {
            throttle_every: Some(3),
            ..Faults::default()
        },
        ..Options::default()
    })
    .await;
    // Request 1 was the token grant.
    let (first, _) = org.get("/crm/v8/Contacts?fields=Last_Name").await;
    let (second, body) = org.get("/crm/v8/Contacts?fields=Last_Name").await;
    assert_eq!(first, 204);
    assert_eq!(second, 429);
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
}

#[test]
fn seeding_skips_what_zoho_refuses() {
    let emulator = Emulator::new(Options::default());
    let seeded = emulator.seed(&generate(5_000, 9, &Mess::default()));
    assert_eq!(seeded.accounts, 1_000);
    assert!(seeded.skipped_contacts > 0);
    assert_eq!(seeded.contacts + seeded.skipped_contacts, 5_000);
}

#[test]
#[ignore = "slow in debug builds; run with --release"]
fn seeding_a_million_contacts() {
    let emulator = Emulator::new(Options::default());
    let started = std::time::Instant::now();
    let data = generate(1_000_000, 1, &Mess::default());
    let generated = started.elapsed();
    let seeded = emulator.seed(&data);
    assert!(seeded.contacts > 990_000);
    assert_eq!(seeded.deals, data.deals.len(), "250,000 deals");
    assert!(seeded.notes + seeded.skipped_notes == data.notes.len());
    assert!(
        seeded.notes > 490_000,
        "500,000 notes, a few on skipped contacts"
    );
    eprintln!(
        "generated in {generated:?}, seeded in {:?}: {seeded:?}",
        started.elapsed() - generated
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

fn field<'a>(body: &'a Json, api_name: &str) -> &'a Json {
    body["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["api_name"] == api_name))
        .unwrap_or_else(|| panic!("no field {api_name}"))
}

fn options(field: &Json) -> Vec<(String, String)> {
    field["pick_list_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["actual_value"].as_str().unwrap().to_owned(),
                o["display_value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn field_metadata_lists_standard_system_and_seeded_custom_fields() {
    let org = org(Options::default()).await;
    let (status, accounts) = org.get("/crm/v8/settings/fields?module=Accounts").await;
    assert_eq!(status, 200);
    let region = field(&accounts, "Region");
    assert_eq!(
        (
            &region["data_type"],
            &region["custom_field"],
            &region["field_label"]
        ),
        (&json!("text"), &json!(true), &json!("Region"))
    );
    let seats = field(&accounts, "Seats");
    assert_eq!(
        (&seats["data_type"], &seats["json_type"]),
        (&json!("integer"), &json!("integer"))
    );
    let tier = field(&accounts, "Tier");
    assert_eq!(tier["data_type"], "picklist");
    assert_eq!(
        options(tier),
        [("Gold", "Gold"), ("Silver", "Silver"), ("Bronze", "Bronze")]
            .map(|(a, d)| (a.to_owned(), d.to_owned()))
    );
    let industry = field(&accounts, "Industry");
    assert_eq!(
        (&industry["data_type"], &industry["custom_field"]),
        (&json!("picklist"), &json!(false))
    );
    let industries = options(industry);
    assert_eq!(industries[0].1, "-None-");
    assert!(industries.iter().any(|(_, d)| d == "Large Enterprise"));
    // Other kinds have an empty option list; system fields are read-only.
    assert_eq!(
        field(&accounts, "Account_Name")["pick_list_values"],
        json!([])
    );
    let modified = field(&accounts, "Modified_Time");
    assert_eq!(
        (
            &modified["read_only"],
            &modified["operation_type"]["api_update"]
        ),
        (&json!(true), &json!(false))
    );

    let (_, contacts) = org.get("/crm/v8/settings/fields?module=Contacts").await;
    assert_eq!(field(&contacts, "Favourite_Colour")["data_type"], "text");
    assert_eq!(field(&contacts, "Loyalty_Points")["data_type"], "integer");
    assert_eq!(field(&contacts, "Account_Name")["data_type"], "lookup");
    assert!(
        contacts["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["api_name"] != "Tier"),
        "Tier is an Accounts field"
    );
}

#[tokio::test]
async fn seeded_records_carry_custom_values_returned_only_when_asked_for() {
    let org = org(Options::default()).await;
    let data = generate(200, 3, &Mess::default());
    org.emulator.seed(&data);
    let (status, body) = org
        .get("/crm/v8/Accounts?fields=Account_Name,Region,Seats,Tier&per_page=200&sort_order=asc")
        .await;
    assert_eq!(status, 200);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), data.companies.len());
    for (row, company) in rows.iter().zip(&data.companies) {
        assert_eq!(row["Region"].as_str(), company.region.as_deref());
        assert_eq!(row["Seats"].as_u64(), company.seats.map(u64::from));
        assert_eq!(row["Tier"].as_str(), company.tier);
    }
    assert!(rows.iter().any(|r| r["Seats"].is_number()));
    assert!(rows.iter().any(|r| r["Tier"].is_string()));
    let (_, body) = org
        .get("/crm/v8/Contacts?fields=Favourite_Colour,Loyalty_Points")
        .await;
    let rows = body["data"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["Favourite_Colour"].is_string()));
    assert!(rows.iter().any(|r| r["Loyalty_Points"].is_number()));
    // Not asked for, not returned.
    let (_, body) = org.get("/crm/v8/Accounts?fields=Account_Name").await;
    assert!(body["data"][0].get("Tier").is_none());
}

#[tokio::test]
async fn custom_fields_are_written_typed_and_read_back() {
    let org = org(Options::default()).await;
    let dup = json!(["Ferry_Source_Id"]);
    let (status, body) = org
        .post(
            "/crm/v8/Accounts/upsert",
            json!({"data": [
                {"Account_Name": "A", "Ferry_Source_Id": "a-1", "Region": "EMEA", "Seats": 12, "Tier": "Gold"},
                {"Account_Name": "B", "Ferry_Source_Id": "a-2", "Seats": "twelve"},
                {"Account_Name": "C", "Ferry_Source_Id": "a-3", "Seats": 1.5},
                // Zoho's picklists are not restricted for the API: a value outside the list is kept.
                {"Account_Name": "D", "Ferry_Source_Id": "a-4", "Tier": "Platinum", "No_Such_Field": "x"},
            ], "duplicate_check_fields": dup}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let items = body["data"].as_array().unwrap();
    assert_eq!(items[0]["status"], "success");
    for bad in [&items[1], &items[2]] {
        assert_eq!(bad["code"], "INVALID_DATA");
        assert_eq!(bad["details"]["api_name"], "Seats");
        assert_eq!(bad["details"]["expected_data_type"], "integer");
    }
    assert_eq!(items[3]["status"], "success");
    let (status, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select Ferry_Source_Id, Region, Seats, Tier from Accounts where Ferry_Source_Id in ('a-1', 'a-4') limit 10"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let a1 = &body["data"][0];
    assert_eq!(
        (&a1["Region"], &a1["Seats"], &a1["Tier"]),
        (&json!("EMEA"), &json!(12), &json!("Gold"))
    );
    assert_eq!(body["data"][1]["Tier"], "Platinum");
}

#[tokio::test]
async fn created_fields_are_listed_and_hold_values() {
    let org = org(Options::default()).await;
    let path = "/crm/v8/settings/fields?module=Contacts";
    let (status, body) = org
        .post(
            path,
            json!({"fields": [
                {"field_label": "Shoe Size", "data_type": "double"},
                {"field_label": "Plan", "data_type": "picklist",
                 "pick_list_values": [{"display_value": "Free"}, {"display_value": "Pro"}]},
                {"field_label": "Renewal", "data_type": "date"},
                {"field_label": "Nickname", "data_type": "text", "length": 80},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created = body["fields"].as_array().unwrap();
    assert_eq!(created.len(), 4);
    assert!(
        created
            .iter()
            .all(|c| c["code"] == "SUCCESS" && c["details"]["id"].is_string())
    );
    let (_, fields) = org.get(path).await;
    let shoe = field(&fields, "Shoe_Size");
    assert_eq!(
        (&shoe["data_type"], &shoe["custom_field"], &shoe["id"]),
        (&json!("double"), &json!(true), &created[0]["details"]["id"])
    );
    assert_eq!(
        options(field(&fields, "Plan")),
        [("Free", "Free"), ("Pro", "Pro")].map(|(a, d)| (a.to_owned(), d.to_owned()))
    );
    assert_eq!(field(&fields, "Nickname")["length"], 80);

    let (status, body) = org
        .post(
            "/crm/v8/Contacts/upsert",
            json!({"data": [
                {"Last_Name": "A", "Ferry_Source_Id": "c-1", "Shoe_Size": 42.5, "Plan": "Pro", "Renewal": "2026-01-31", "Nickname": "Al"},
                {"Last_Name": "B", "Ferry_Source_Id": "c-2", "Renewal": "31/01/2026"},
            ], "duplicate_check_fields": ["Ferry_Source_Id"]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["data"][1]["details"]["api_name"], "Renewal");
    let (_, body) = org
        .get("/crm/v8/Contacts?fields=Shoe_Size,Plan,Renewal,Nickname")
        .await;
    let row = &body["data"][0];
    assert_eq!(
        (
            &row["Shoe_Size"],
            &row["Plan"],
            &row["Renewal"],
            &row["Nickname"]
        ),
        (
            &json!(42.5),
            &json!("Pro"),
            &json!("2026-01-31"),
            &json!("Al")
        )
    );

    // Refusals: nothing of a refused request is created.
    for (fields, code, api_name) in [
        (
            json!([{"field_label": "Plan", "data_type": "text"}]),
            "ALREADY_USED",
            "field_label",
        ),
        (
            json!([{"field_label": "Colour Two"}]),
            "MANDATORY_NOT_FOUND",
            "data_type",
        ),
        (
            json!([{"data_type": "text"}]),
            "MANDATORY_NOT_FOUND",
            "field_label",
        ),
        (
            json!([{"field_label": "X", "data_type": "rich"}]),
            "INVALID_DATA",
            "data_type",
        ),
        (
            json!([{"field_label": "Y", "data_type": "picklist"}]),
            "MANDATORY_NOT_FOUND",
            "pick_list_values",
        ),
    ] {
        let (status, body) = org.post(path, json!({ "fields": fields })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["fields"][0]["code"], code, "{body}");
        assert_eq!(body["fields"][0]["details"]["api_name"], api_name, "{body}");
    }
    let (_, after) = org.get(path).await;
    assert_eq!(
        after["fields"].as_array().unwrap().len(),
        fields["fields"].as_array().unwrap().len()
    );
    let (status, body) = org
        .post(
            "/crm/v8/settings/fields",
            json!({"fields": [{"field_label": "Z", "data_type": "text"}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("REQUIRED_PARAM_MISSING"))
    );
}

// ---- users, layouts, pipelines, owners, deals, contact roles, notes ------------------------

impl Org {
    async fn put(&self, path: &str, body: Json) -> (u16, Json) {
        let (s, _, b) = self.call(reqwest::Method::PUT, path, Some(body)).await;
        (s, b)
    }

    async fn delete(&self, path: &str) -> (u16, Json) {
        let (s, _, b) = self.call(reqwest::Method::DELETE, path, None).await;
        (s, b)
    }

    /// The id of the user whose email is `email`.
    async fn user_id(&self, email: &str) -> String {
        let (_, body) = self.get("/crm/v8/users?type=AllUsers").await;
        body["users"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["email"] == email))
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no user {email}"))
            .to_owned()
    }

    /// Inserts one record through upsert (Accounts, Contacts) and returns its id.
    async fn upsert_one(&self, module: &str, record: Json) -> String {
        let (status, body) = self
            .post(
                &format!("/crm/v8/{module}/upsert"),
                json!({"data": [record], "duplicate_check_fields": ["Ferry_Source_Id"]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"][0]["details"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Inserts deals; returns the status and per-record answers.
    async fn insert(&self, module: &str, records: Json) -> (u16, Vec<Json>) {
        let (status, body) = self
            .post(&format!("/crm/v8/{module}"), json!({ "data": records }))
            .await;
        let items = body["data"].as_array().cloned().unwrap_or_default();
        (status, items)
    }
}

const ANA: &str = "ana.garcia@ferry-demo.example";
const BEN: &str = "ben.okafor@ferry-demo.example";
const HANA: &str = "hana.novak@ferry-demo.example";

#[tokio::test]
async fn users_list_by_type_and_page_with_deactivated_users_disabled() {
    let org = org(Options::default()).await;
    let (status, body) = org.get("/crm/v8/users?type=AllUsers").await;
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().expect("users");
    let expected = crate::accounts::account_users("zoho");
    assert_eq!(users.len(), expected.len());
    assert!(
        users
            .iter()
            .all(|u| u["email"] != "farah.haddad@ferry-demo.example"),
        "Farah is not in this org"
    );
    let ana = &users[0];
    assert_eq!(ana["email"], ANA);
    assert_eq!(ana["full_name"], "Ana García");
    assert_eq!(ana["status"], "active");
    assert!(ana["id"].as_str().is_some_and(|id| id.len() == 19));
    assert_eq!(body["info"]["more_records"], false);

    let (_, page) = org.get("/crm/v8/users?per_page=3&page=3").await;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["info"]["page"], 3);
    let (_, page) = org.get("/crm/v8/users?per_page=3&page=2").await;
    assert_eq!(page["info"]["more_records"], true);
    let (status, _) = org.get("/crm/v8/users?per_page=201").await;
    assert_eq!(status, 400);
    let (status, body) = org.get("/crm/v8/users?type=Everyone").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_DATA")));

    let (status, _) = org.get("/crm/v8/users?type=DeactiveUsers").await;
    assert_eq!(status, 204, "nobody is deactivated yet");
    assert!(
        org.emulator
            .deactivate_user("HANA.NOVAK@ferry-demo.example")
    );
    let (_, body) = org.get("/crm/v8/users?type=DeactiveUsers").await;
    let off = body["users"].as_array().expect("users");
    assert_eq!(off.len(), 1);
    assert_eq!(
        (off[0]["email"].as_str(), off[0]["status"].as_str()),
        (Some(HANA), Some("disabled"))
    );
    let (_, body) = org.get("/crm/v8/users?type=ActiveUsers").await;
    assert_eq!(
        body["users"].as_array().map(Vec::len),
        Some(expected.len() - 1)
    );
    let (_, body) = org.get("/crm/v8/users?type=CurrentUser").await;
    assert_eq!(body["users"][0]["email"], ANA);

    let ben = org.user_id(BEN).await;
    let (status, body) = org.get(&format!("/crm/v8/users/{ben}")).await;
    assert_eq!(
        (status, body["users"][0]["email"].as_str()),
        (200, Some(BEN))
    );
    let (status, _) = org.get("/crm/v8/users/1").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn pipelines_belong_to_the_deals_layout_and_share_stage_ids() {
    let org = org(Options::default()).await;
    let (status, body) = org.get("/crm/v8/settings/layouts?module=Deals").await;
    assert_eq!(status, 200, "{body}");
    let layout = body["layouts"][0]["id"]
        .as_str()
        .expect("layout id")
        .to_owned();
    let (status, body) = org.get("/crm/v8/settings/layouts").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("REQUIRED_PARAM_MISSING"))
    );

    let (status, body) = org.get("/crm/v8/settings/pipeline").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "REQUIRED_PARAM_MISSING");
    assert_eq!(body["details"]["param_name"], "layout_id");
    let (status, body) = org.get("/crm/v8/settings/pipeline?layout_id=123").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_DATA")));

    let (status, body) = org
        .get(&format!("/crm/v8/settings/pipeline?layout_id={layout}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let pipelines = body["pipeline"].as_array().expect("pipelines");
    let names: Vec<&str> = pipelines
        .iter()
        .filter_map(|p| p["display_value"].as_str())
        .collect();
    assert_eq!(names, ["Standard", "Renewals"]);
    assert_eq!(pipelines[0]["default"], true);
    let stage = |p: usize, label: &str| -> Json {
        pipelines[p]["maps"]
            .as_array()
            .and_then(|m| m.iter().find(|s| s["display_value"] == label).cloned())
            .unwrap_or_else(|| panic!("no stage {label}"))
    };
    assert_eq!(stage(0, "Closed Won")["forecast_type"], "Closed Won");
    assert_eq!(stage(1, "Closed Lost")["forecast_type"], "Closed Lost");
    assert_eq!(stage(0, "Qualification")["forecast_type"], "Open");
    assert_eq!(
        stage(0, "Qualification")["id"],
        stage(1, "Qualification")["id"]
    );
    assert!(
        pipelines[1]["maps"]
            .as_array()
            .is_some_and(|m| m.len() == 4)
    );
    for p in pipelines {
        assert_ne!(p["id"], p["display_value"], "ids are not labels");
    }

    // Another org: the same labels under other ids.
    let other = self::org(Options::default()).await;
    let (_, body) = other.get("/crm/v8/settings/layouts?module=Deals").await;
    let other_layout = body["layouts"][0]["id"].as_str().expect("id").to_owned();
    assert_ne!(layout, other_layout);
    let (_, body) = other
        .get(&format!(
            "/crm/v8/settings/pipeline?layout_id={other_layout}"
        ))
        .await;
    assert_eq!(body["pipeline"][0]["display_value"], "Standard");
    assert_ne!(body["pipeline"][0]["id"], pipelines[0]["id"]);
}

#[tokio::test]
async fn owners_on_accounts_and_contacts_default_to_the_caller_and_must_be_active_users() {
    let org = org(Options::default()).await;
    let ben = org.user_id(BEN).await;
    let hana = org.user_id(HANA).await;
    let account = org
        .upsert_one(
            "Accounts",
            json!({"Account_Name": "Owned Co", "Ferry_Source_Id": "o-1"}),
        )
        .await;
    let contact = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "Owned", "Ferry_Source_Id": "o-2", "Owner": {"id": ben}}),
        )
        .await;
    let (_, body) = org.get(&format!("/crm/v8/Accounts/{account}")).await;
    assert_eq!(
        body["data"][0]["Owner"]["email"], ANA,
        "the caller by default"
    );
    let (_, body) = org.get("/crm/v8/Contacts?fields=Owner,Last_Name").await;
    assert_eq!(body["data"][0]["id"], contact.as_str());
    assert_eq!(body["data"][0]["Owner"]["id"], ben.as_str());
    assert_eq!(body["data"][0]["Owner"]["email"], BEN);
    // An update without Owner keeps it.
    org.upsert_one(
        "Contacts",
        json!({"Last_Name": "Owned 2", "Ferry_Source_Id": "o-2"}),
    )
    .await;
    let record = org
        .emulator
        .record_by_source_id("Contacts", "o-2")
        .expect("contact");
    assert_eq!(record["Owner"]["email"], BEN);

    for (owner, why) in [
        (json!({"id": "123"}), "unknown"),
        (json!({"id": hana}), "deactivated"),
    ] {
        if why == "deactivated" {
            org.emulator.deactivate_user(HANA);
        }
        let (status, body) = org
            .post(
                "/crm/v8/Contacts/upsert",
                json!({"data": [{"Last_Name": "X", "Ferry_Source_Id": "o-3", "Owner": owner}]}),
            )
            .await;
        assert_eq!(status, 400, "{why}: {body}");
        let item = &body["data"][0];
        assert_eq!(item["code"], "INVALID_DATA", "{why}");
        assert_eq!(item["details"]["api_name"], "Owner", "{why}");
        assert_eq!(item["details"]["json_path"], "$.data[0].Owner");
    }
    let (_, body) = org.get("/crm/v8/settings/fields?module=Contacts").await;
    assert_eq!(field(&body, "Owner")["data_type"], "ownerlookup");
}

#[tokio::test]
async fn deals_are_written_read_listed_and_deleted_with_stage_rules() {
    let org = org(Options::default()).await;
    let account = org
        .upsert_one(
            "Accounts",
            json!({"Account_Name": "Deal Co", "Ferry_Source_Id": "d-a"}),
        )
        .await;
    let contact = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "Buyer", "Ferry_Source_Id": "d-c"}),
        )
        .await;
    let ben = org.user_id(BEN).await;
    let (status, items) = org
        .insert(
            "Deals",
            json!([
                {"Deal_Name": "Big one", "Stage": "Negotiation/Review", "Pipeline": "Standard",
                 "Amount": 1234.5, "Currency": "EUR", "Closing_Date": "2027-03-31",
                 "Account_Name": {"id": account}, "Contact_Name": {"id": contact},
                 "Owner": {"id": ben}, "Ferry_Source_Id": "deal-1"},
                {"Deal_Name": "No stage", "Pipeline": "Standard"},
                {"Deal_Name": "Wrong pipeline", "Pipeline": "Renewals", "Stage": "Needs Analysis"},
                {"Deal_Name": "Bad account", "Pipeline": "Standard", "Stage": "Qualification",
                 "Account_Name": {"id": "4876876000000000001"}},
                {"Deal_Name": "Bad date", "Pipeline": "Standard", "Stage": "Qualification",
                 "Closing_Date": "2027-02-30"},
                {"Deal_Name": "x".repeat(121), "Pipeline": "Standard", "Stage": "Qualification"},
            ]),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(items[0]["code"], "SUCCESS", "{}", items[0]);
    assert_eq!(items[0]["message"], "record added");
    let codes: Vec<(&str, &str)> = items[1..]
        .iter()
        .map(|i| {
            (
                i["code"].as_str().unwrap_or(""),
                i["details"]["api_name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("MANDATORY_NOT_FOUND", "Stage"),
            ("INVALID_DATA", "Stage"),
            ("INVALID_DATA", "Account_Name"),
            ("INVALID_DATA", "Closing_Date"),
            ("INVALID_DATA", "Deal_Name"),
        ]
    );
    assert_eq!(items[5]["details"]["maximum_length"], 120);
    let deal = items[0]["details"]["id"].as_str().expect("id").to_owned();

    let (status, body) = org.get(&format!("/crm/v8/Deals/{deal}")).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"][0];
    assert_eq!(d["Stage"], "Negotiation/Review");
    assert_eq!(d["Pipeline"], "Standard");
    assert_eq!(d["Amount"], 1234.5);
    assert_eq!(d["Currency"], "EUR");
    assert_eq!(d["Closing_Date"], "2027-03-31");
    assert_eq!(d["Account_Name"], json!({"name": "Deal Co", "id": account}));
    assert_eq!(d["Contact_Name"]["id"], contact.as_str());
    assert_eq!(d["Owner"]["email"], BEN);
    assert!(d["Created_Time"].is_string());
    let (status, _) = org.get("/crm/v8/Deals/4876876010000999999").await;
    assert_eq!(status, 204);

    // Updates: by id in the body, and by the URL; closing it won.
    let (status, body) = org
        .put(
            "/crm/v8/Deals",
            json!({"data": [{"id": deal, "Stage": "Closed Won"}, {"Stage": "Closed Won"}]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["data"][0]["message"], "record updated");
    assert_eq!(body["data"][1]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(body["data"][1]["details"]["api_name"], "id");
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{deal}"),
            json!({"data": [{"Pipeline": "Renewals"}]}),
        )
        .await;
    assert_eq!(status, 200, "Closed Won is a Renewals stage too: {body}");
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{deal}"),
            json!({"data": [{"Stage": "Proposal/Price Quote"}]}),
        )
        .await;
    assert_eq!(
        (status, body["data"][0]["details"]["api_name"].as_str()),
        (400, Some("Stage"))
    );
    let (status, body) = org
        .put(
            "/crm/v8/Deals",
            json!({"data": [{"id": "4876876010000999999", "Stage": "Closed Won"}]}),
        )
        .await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (400, Some("INVALID_DATA"))
    );

    // Upsert: by the source id, then by Deal_Name (the system duplicate check) ignoring case.
    let (status, body) = org
        .post(
            "/crm/v8/Deals/upsert",
            json!({"data": [{"Deal_Name": "Renamed", "Ferry_Source_Id": "deal-1", "Pipeline": "Renewals", "Stage": "Closed Won"}],
                   "duplicate_check_fields": ["Ferry_Source_Id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["duplicate_field"], "Ferry_Source_Id");
    assert_eq!(body["data"][0]["details"]["id"], deal.as_str());
    let (_, body) = org
        .post(
            "/crm/v8/Deals/upsert",
            json!({"data": [{"Deal_Name": "RENAMED", "Pipeline": "Renewals", "Stage": "Due"}]}),
        )
        .await;
    assert_eq!(
        body["data"][0]["code"], "INVALID_DATA",
        "no stage Due: {body}"
    );
    let (_, body) = org
        .post(
            "/crm/v8/Deals/upsert",
            json!({"data": [{"Deal_Name": "RENAMED", "Pipeline": "Renewals", "Stage": "Qualification"}]}),
        )
        .await;
    assert_eq!(body["data"][0]["action"], "update", "{body}");
    assert_eq!(body["data"][0]["duplicate_field"], "Deal_Name");
    let (status, body) = org
        .post(
            "/crm/v8/Deals/upsert",
            json!({"data": [{"Deal_Name": "Z"}], "duplicate_check_fields": ["Amount"]}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_DATA")));
    let (_, body) = org
        .insert(
            "Deals",
            json!([{"Deal_Name": "Dup", "Pipeline": "Standard", "Stage": "Qualification", "Ferry_Source_Id": "DEAL-1"}]),
        )
        .await;
    assert_eq!(
        body[0]["code"], "DUPLICATE_DATA",
        "source ids compare ignoring case"
    );
    assert_eq!(body[0]["details"]["duplicate_record"]["id"], deal.as_str());

    // Caps.
    let many: Vec<Json> = (0..101)
        .map(|i| json!({"Deal_Name": format!("d{i}"), "Pipeline": "Standard", "Stage": "Qualification"}))
        .collect();
    let (status, body) = org.post("/crm/v8/Deals", json!({ "data": many })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("LIMIT_EXCEEDED"))
    );

    // Listing: fields are mandatory, pages by number and by token, in either order.
    let batch: Vec<Json> = (0..100)
        .map(|i| json!({"Deal_Name": format!("d{i}"), "Pipeline": "Standard", "Stage": "Qualification"}))
        .collect();
    let (status, _) = org.insert("Deals", json!(batch)).await;
    assert_eq!(status, 201);
    assert_eq!(org.emulator.count("Deals"), 101);
    let (status, body) = org.get("/crm/v8/Deals").await;
    assert_eq!(
        (status, body["details"]["param_name"].as_str()),
        (400, Some("fields"))
    );
    for order in ["asc", "desc"] {
        let mut seen = std::collections::HashSet::new();
        let mut path =
            format!("/crm/v8/Deals?fields=Deal_Name,Stage&per_page=30&sort_order={order}");
        let mut last: Option<u64> = None;
        loop {
            let (status, body) = org.get(&path).await;
            assert_eq!(status, 200, "{body}");
            for r in body["data"].as_array().expect("data") {
                let id: u64 = r["id"].as_str().expect("id").parse().expect("number");
                if let Some(l) = last {
                    assert!(if order == "asc" { id > l } else { id < l });
                }
                last = Some(id);
                assert!(seen.insert(id));
                assert!(r["Stage"].is_string());
            }
            if body["info"]["more_records"] != true {
                break;
            }
            let token = body["info"]["next_page_token"].as_str().expect("token");
            path = format!(
                "/crm/v8/Deals?fields=Deal_Name,Stage&per_page=30&sort_order={order}&page_token={token}"
            );
        }
        assert_eq!(seen.len(), 101, "{order}");
    }
    let (_, body) = org
        .get("/crm/v8/Deals?fields=Deal_Name&per_page=100&page=2&sort_order=asc")
        .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    let (_, body) = org.get("/crm/v8/Deals/actions/count").await;
    assert_eq!(body["count"], 101);

    // Delete.
    let (status, body) = org.delete(&format!("/crm/v8/Deals?ids={deal},123")).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["data"][0]["code"], "SUCCESS");
    assert_eq!(body["data"][1]["code"], "INVALID_DATA");
    assert_eq!(org.emulator.count("Deals"), 100);
    let (status, _) = org.get(&format!("/crm/v8/Deals/{deal}")).await;
    assert_eq!(status, 204);
    let (status, _) = org.delete("/crm/v8/Deals").await;
    assert_eq!(status, 400);

    let (_, body) = org.get("/crm/v8/settings/fields?module=Deals").await;
    assert_eq!(field(&body, "Deal_Name")["system_mandatory"], true);
    assert_eq!(field(&body, "Stage")["data_type"], "picklist");
    assert_eq!(field(&body, "Stage")["system_mandatory"], true);
    assert_eq!(field(&body, "Pipeline")["system_mandatory"], true);
    assert_eq!(field(&body, "Owner")["data_type"], "ownerlookup");
    assert_eq!(field(&body, "Amount")["data_type"], "currency");
    assert_eq!(
        field(&body, "Account_Name")["lookup"]["module"]["api_name"],
        "Accounts"
    );
    assert_eq!(
        field(&body, "Ferry_Source_Id")["unique"]["case_sensitive"],
        false
    );
    let stages: Vec<String> = options(field(&body, "Stage"))
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(stages.contains(&"Closed Lost".to_owned()));
}

#[tokio::test]
async fn contact_roles_link_many_contacts_to_a_deal() {
    let org = org(Options::default()).await;
    let mut contacts = Vec::new();
    for i in 0..3 {
        contacts.push(
            org.upsert_one(
                "Contacts",
                json!({"Last_Name": format!("C{i}"), "Email": format!("c{i}@example.com"), "Ferry_Source_Id": format!("c-{i}")}),
            )
            .await,
        );
    }
    let (_, items) = org
        .insert(
            "Deals",
            json!([{"Deal_Name": "Roles", "Pipeline": "Standard", "Stage": "Qualification"}]),
        )
        .await;
    let deal = items[0]["details"]["id"].as_str().expect("id").to_owned();
    let (status, _) = org
        .get(&format!("/crm/v8/Deals/{deal}/Contact_Roles"))
        .await;
    assert_eq!(status, 204);

    let (status, body) = org.get("/crm/v8/Contacts/roles").await;
    assert_eq!(status, 200);
    let roles = body["contact_roles"].as_array().expect("roles");
    assert_eq!(roles.len(), CONTACT_ROLES.len());
    let evaluator_id = roles[1]["id"].as_str().expect("id").to_owned();
    for (c, role) in contacts.iter().zip([
        json!("Purchasing"),
        json!({"id": evaluator_id}),
        json!({"name": "Influencer"}),
    ]) {
        let (status, body) = org
            .put(
                &format!("/crm/v8/Deals/{deal}/Contact_Roles/{c}"),
                json!({"data": [{"Contact_Role": role}]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["code"], "SUCCESS");
    }
    // A contact holds one role per deal: a second PUT replaces it.
    let (status, _) = org
        .put(
            &format!("/crm/v8/Deals/{deal}/Contact_Roles/{}", contacts[0]),
            json!({"data": [{"Contact_Role": "Decision Maker"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Deals/{deal}/Contact_Roles?fields=Email,Last_Name"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["id"], contacts[0].as_str());
    assert_eq!(data[0]["Contact_Role"]["name"], "Decision Maker");
    assert_eq!(data[1]["Contact_Role"]["name"], "Evaluator");
    assert_eq!(data[2]["Contact_Role"]["name"], "Influencer");
    assert_eq!(data[2]["Email"], "c2@example.com");
    let (_, body) = org
        .get(&format!(
            "/crm/v8/Deals/{deal}/Contact_Roles?per_page=2&page=2"
        ))
        .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{deal}/Contact_Roles/{}", contacts[0]),
            json!({"data": [{"Contact_Role": "Astronaut"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "INVALID_DATA");
    assert_eq!(body["data"][0]["details"]["api_name"], "Contact_Role");
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{deal}/Contact_Roles/{}", contacts[0]),
            json!({"data": [{}]}),
        )
        .await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (400, Some("MANDATORY_NOT_FOUND"))
    );
    let (status, _) = org
        .put(
            &format!("/crm/v8/Deals/{deal}/Contact_Roles/4876876000000000009"),
            json!({"data": [{"Contact_Role": "Purchasing"}]}),
        )
        .await;
    assert_eq!(status, 400, "no such contact");
    let (status, _) = org
        .put(
            &format!(
                "/crm/v8/Deals/4876876010000999999/Contact_Roles/{}",
                contacts[0]
            ),
            json!({"data": [{"Contact_Role": "Purchasing"}]}),
        )
        .await;
    assert_eq!(status, 400, "no such deal");

    let (status, body) = org
        .delete(&format!(
            "/crm/v8/Deals/{deal}/Contact_Roles/{}",
            contacts[1]
        ))
        .await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (200, Some("SUCCESS"))
    );
    assert_eq!(
        org.emulator.deal_contact_roles(&deal),
        vec![contacts[0].clone(), contacts[2].clone()]
    );
    let (status, _) = org
        .delete(&format!(
            "/crm/v8/Deals/{deal}/Contact_Roles/{}",
            contacts[1]
        ))
        .await;
    assert_eq!(status, 400, "already removed");

    // Deleting a contact takes its roles with it; its id is then invalid for a role write,
    // and the other contacts are still found by their unique fields.
    let (status, body) = org
        .delete(&format!("/crm/v8/Contacts/{}", contacts[2]))
        .await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (200, Some("SUCCESS"))
    );
    assert_eq!(
        org.emulator.deal_contact_roles(&deal),
        vec![contacts[0].clone()]
    );
    assert_eq!(org.emulator.count("Contacts"), 2);
    assert!(
        org.emulator
            .record_by_source_id("Contacts", "c-2")
            .is_none()
    );
    assert!(
        org.emulator
            .record_by_source_id("Contacts", "c-1")
            .is_some()
    );
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{deal}/Contact_Roles/{}", contacts[2]),
            json!({"data": [{"Contact_Role": "Purchasing"}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_DATA")),
        "{body}"
    );
    let (status, _) = org
        .delete(&format!("/crm/v8/Contacts/{}", contacts[2]))
        .await;
    assert_eq!(status, 400, "already deleted");

    org.delete(&format!("/crm/v8/Deals?ids={deal}")).await;
    assert!(org.emulator.deal_contact_roles(&deal).is_empty());
}

#[tokio::test]
async fn notes_hang_on_one_parent_in_either_form_and_refuse_overlong_content() {
    let org = org(Options::default()).await;
    let contact = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "Noted", "Ferry_Source_Id": "n-c"}),
        )
        .await;
    let (_, items) = org
        .insert(
            "Deals",
            json!([{"Deal_Name": "Noted deal", "Pipeline": "Standard", "Stage": "Qualification"}]),
        )
        .await;
    let deal = items[0]["details"]["id"].as_str().expect("id").to_owned();
    let ben = org.user_id(BEN).await;
    let longest = "é".repeat(NOTE_CONTENT_MAX);
    let (status, items) = org
        .insert(
            "Notes",
            json!([
                {"Note_Content": "Rappel : devis révisé\nligne 2", "Parent_Id": {"module": {"api_name": "Deals"}, "id": deal}, "Owner": {"id": ben}},
                {"Note_Title": "Flat", "Note_Content": longest, "Parent_Id": contact, "se_module": "Contacts"},
                {"Parent_Id": {"module": {"api_name": "Deals"}, "id": deal}},
                {"Note_Content": format!("{longest}x"), "Parent_Id": contact, "se_module": "Contacts"},
                {"Note_Content": "orphan"},
                {"Note_Content": "lost", "Parent_Id": {"module": {"api_name": "Deals"}, "id": "4876876010000999999"}},
                {"Note_Content": "no module", "Parent_Id": contact},
            ]),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(items[0]["code"], "SUCCESS", "{}", items[0]);
    assert_eq!(
        items[1]["code"], "SUCCESS",
        "65,535 characters fit: {}",
        items[1]["code"]
    );
    assert_eq!(items[2]["code"], "EXPECTED_FIELD_MISSING");
    assert_eq!(items[3]["code"], "INVALID_DATA");
    assert_eq!(items[3]["details"]["api_name"], "Note_Content");
    assert_eq!(items[3]["details"]["maximum_length"], NOTE_CONTENT_MAX);
    assert_eq!(
        (
            items[4]["code"].as_str(),
            items[4]["details"]["api_name"].as_str()
        ),
        (Some("MANDATORY_NOT_FOUND"), Some("Parent_Id"))
    );
    assert_eq!(items[5]["details"]["api_name"], "Parent_Id");
    assert_eq!(items[6]["details"]["api_name"], "se_module");
    let on_deal = items[0]["details"]["id"].as_str().expect("id").to_owned();
    let on_contact = items[1]["details"]["id"].as_str().expect("id").to_owned();

    let (status, body) = org.get("/crm/v8/Notes").await;
    assert_eq!(
        (status, body["details"]["param_name"].as_str()),
        (400, Some("fields"))
    );
    let (status, body) = org
        .get("/crm/v8/Notes?fields=Note_Content,Parent_Id,Owner&sort_order=asc")
        .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], on_deal.as_str());
    assert_eq!(data[0]["Note_Content"], "Rappel : devis révisé\nligne 2");
    assert_eq!(data[0]["Parent_Id"]["module"]["api_name"], "Deals");
    assert_eq!(data[0]["Parent_Id"]["id"], deal.as_str());
    assert_eq!(data[0]["Parent_Id"]["name"], "Noted deal");
    assert_eq!(data[0]["Owner"]["email"], BEN);
    assert_eq!(data[1]["Parent_Id"]["module"]["api_name"], "Contacts");
    assert_eq!(data[1]["$se_module"], "Contacts");
    assert_eq!(data[1]["Owner"]["email"], ANA, "the caller by default");

    let (status, body) = org
        .put(
            &format!("/crm/v8/Notes/{on_contact}"),
            json!({"data": [{"Note_Title": "Renamed"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = org.get(&format!("/crm/v8/Notes/{on_contact}")).await;
    assert_eq!(body["data"][0]["Note_Title"], "Renamed");
    assert_eq!(
        body["data"][0]["Parent_Id"]["id"],
        contact.as_str(),
        "parent kept"
    );
    let (status, body) = org
        .put(
            "/crm/v8/Notes",
            json!({"data": [{"id": on_contact, "Note_Content": null}]}),
        )
        .await;
    assert_eq!(status, 200, "its title remains: {body}");
    let (status, body) = org
        .put(
            "/crm/v8/Notes",
            json!({"data": [{"id": on_deal, "Note_Content": null}]}),
        )
        .await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (400, Some("EXPECTED_FIELD_MISSING"))
    );
    let (status, _) = org
        .post(
            "/crm/v8/Notes/upsert",
            json!({"data": [{"Note_Content": "x"}]}),
        )
        .await;
    assert_eq!(status, 404, "Notes have no upsert");

    let (status, body) = org.delete(&format!("/crm/v8/Notes?ids={on_deal}")).await;
    assert_eq!(
        (status, body["data"][0]["code"].as_str()),
        (200, Some("SUCCESS"))
    );
    assert_eq!(org.emulator.count("Notes"), 1);
}

#[test]
fn seeded_deals_and_notes_cover_every_stage_roles_and_plain_bodies() {
    use crate::VendorEmulator;
    let emulator = Emulator::new(Options::default());
    let data = generate(2_000, 5, &Mess::none());
    let summary = VendorEmulator::seed(&emulator, &data);
    assert_eq!(summary.companies, 400);
    assert_eq!(summary.contacts, 2_000);
    assert_eq!(summary.deals, data.deals.len());
    assert_eq!(
        summary.notes,
        data.notes.len(),
        "every note has a seeded parent"
    );
    assert_eq!(VendorEmulator::count(&emulator, "deals"), summary.deals);
    assert_eq!(VendorEmulator::count(&emulator, "notes"), summary.notes);

    let store = emulator.shared.store.read().expect("store");
    let deals = &store.crm.deals.table;
    let stage = deals.column("Stage").expect("Stage");
    let pipeline = deals.column("Pipeline").expect("Pipeline");
    let mut placed = std::collections::HashSet::new();
    for row in deals.iter(crate::table::Show::Live) {
        let p = row
            .get(pipeline)
            .and_then(crate::table::Cell::as_str)
            .expect("pipeline");
        let s = row
            .get(stage)
            .and_then(crate::table::Cell::as_str)
            .expect("stage");
        placed.insert((p.to_owned(), s.to_owned()));
    }
    for label in DEAL_STAGES {
        assert!(
            placed.contains(&(label.pipeline.to_owned(), label.stage.to_owned())),
            "{label:?}"
        );
    }
    // The first seeded deal has five contacts: five contact roles, the first its Contact_Name.
    let first = deals.iter(crate::table::Show::Live).next().expect("a deal");
    let roles = store.crm.roles.from(first.id, None, 10);
    assert_eq!(roles.len(), 5);
    assert_eq!(data.deals[0].contacts.len(), 5);
    let contact = deals.column("Contact_Name").expect("Contact_Name");
    assert!(first.get(contact).is_some());

    let notes = &store.crm.notes.table;
    let content = notes.column("Note_Content").expect("content");
    let se = notes.column("$se_module").expect("se");
    let mut modules = std::collections::HashSet::new();
    for (row, seed) in notes.iter(crate::table::Show::Live).zip(&data.notes) {
        let body = row
            .get(content)
            .and_then(crate::table::Cell::as_str)
            .expect("body");
        assert!(!body.contains("<p>"), "HTML is seeded as plain text");
        assert_eq!(row.created_ms, seed.timestamp_ms, "the note's own time");
        modules.insert(
            row.get(se)
                .and_then(crate::table::Cell::as_str)
                .expect("module")
                .to_owned(),
        );
    }
    assert_eq!(modules.len(), 3, "notes on deals, contacts and accounts");
    // The note with three parents hangs on its deal.
    let first_note = notes.iter(crate::table::Show::Live).next().expect("note");
    assert_eq!(
        first_note.get(se).and_then(crate::table::Cell::as_str),
        Some("Deals")
    );
}

#[tokio::test]
async fn coql_reads_deals_by_source_id_and_by_id_with_lookups_and_owner() {
    let org = org(Options::default()).await;
    org.emulator.seed(&generate(1_000, 4, &Mess::none()));
    let account = org
        .upsert_one(
            "Accounts",
            json!({"Account_Name": "Coql Co", "Ferry_Source_Id": "q-a"}),
        )
        .await;
    let ben = org.user_id(BEN).await;
    let (status, items) = org
        .insert(
            "Deals",
            json!([
                {"Deal_Name": "Q1", "Pipeline": "Standard", "Stage": "Closed Lost", "Amount": 10,
                 "Account_Name": {"id": account}, "Owner": {"id": ben}, "Ferry_Source_Id": "q-1"},
                {"Deal_Name": "Q2", "Pipeline": "Renewals", "Stage": "Qualification", "Ferry_Source_Id": "q-2"},
            ]),
        )
        .await;
    assert_eq!(status, 201, "{items:?}");
    let q1 = items[0]["details"]["id"].as_str().expect("id").to_owned();
    let coql = |q: String| {
        let org = &org;
        async move { org.post("/crm/v8/coql", json!({ "select_query": q })).await }
    };
    let (status, body) = coql(
        "select Ferry_Source_Id, Deal_Name, Stage, Amount, Account_Name, Account_Name.Ferry_Source_Id, Owner, Owner.email from Deals where Ferry_Source_Id in ('Q-1', 'q-2', 'q-3') order by id asc limit 10".into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], q1.as_str());
    assert_eq!(rows[0]["Stage"], "Closed Lost");
    assert_eq!(rows[0]["Amount"], 10.0);
    assert_eq!(rows[0]["Account_Name"], json!({"id": account}));
    assert_eq!(rows[0]["Account_Name.Ferry_Source_Id"], "q-a");
    assert_eq!(rows[0]["Owner"], json!({"id": ben}));
    assert_eq!(rows[0]["Owner.email"], BEN);
    assert_eq!(rows[1]["Owner.email"], ANA);

    // Keyset paging over every deal, seeded ones included.
    let total = org.emulator.count("Deals");
    let mut seen = 0;
    let mut last = 0u64;
    loop {
        let (status, body) = coql(format!(
            "select id, Deal_Name from Deals where id > {last} order by id asc limit 100"
        ))
        .await;
        if status == 204 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        let rows = body["data"].as_array().expect("rows");
        seen += rows.len();
        last = rows
            .last()
            .and_then(|r| r["id"].as_str())
            .expect("id")
            .parse()
            .expect("id");
        if body["info"]["more_records"] != true {
            break;
        }
    }
    assert_eq!(seen, total);
    let (_, body) = coql(
        "select id from Deals where (Ferry_Source_Id is not null and Stage = 'Closed Lost') limit 10".into(),
    )
    .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    let (status, body) = coql("select id from Deals where Nope = 1".into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_QUERY"))
    );
    let (status, body) = coql("select id from Notes limit 1".into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_QUERY")),
        "COQL has no Notes"
    );
}

#[tokio::test]
async fn custom_fields_created_on_deals_and_notes_hold_typed_values() {
    let org = org(Options::default()).await;
    let (status, body) = org
        .post(
            "/crm/v8/settings/fields?module=Deals",
            json!({"fields": [
                {"field_label": "Deal Region", "data_type": "text", "length": 20},
                {"field_label": "Deal Score", "data_type": "integer"},
                {"field_label": "Deal Tier", "data_type": "picklist",
                 "pick_list_values": [{"display_value": "Gold"}, {"display_value": "Silver"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let region_id = body["fields"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = org
        .post(
            "/crm/v8/settings/fields?module=Deals",
            json!({"fields": [{"field_label": "deal region", "data_type": "text"}]}),
        )
        .await;
    assert_eq!(
        (status, body["fields"][0]["code"].as_str()),
        (400, Some("ALREADY_USED"))
    );
    let (_, body) = org.get("/crm/v8/settings/fields?module=Deals").await;
    assert_eq!(field(&body, "Deal_Region")["id"], region_id.as_str());
    assert_eq!(field(&body, "Deal_Region")["custom_field"], true);
    assert_eq!(field(&body, "Deal_Score")["data_type"], "integer");
    assert_eq!(field(&body, "Stage")["custom_field"], false);
    assert_eq!(
        options(field(&body, "Deal_Tier")),
        vec![
            ("Gold".to_owned(), "Gold".to_owned()),
            ("Silver".to_owned(), "Silver".to_owned())
        ]
    );

    let base = json!({"Deal_Name": "Custom", "Pipeline": "Standard", "Stage": "Qualification"});
    let with = |extra: Json| {
        let mut d = base.clone();
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        d
    };
    let (status, items) = org
        .insert(
            "Deals",
            json!([
                with(json!({"Deal_Region": "Nordics", "Deal_Score": 7, "Deal_Tier": "Gold"})),
                with(json!({"Deal_Score": "seven"})),
                with(json!({"Deal_Region": "x".repeat(21)})),
                with(json!({"Deal_Tier": "Platinum"})),
            ]),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(items[0]["code"], "SUCCESS", "{}", items[0]);
    assert_eq!(items[1]["details"]["expected_data_type"], "integer");
    assert_eq!(items[2]["details"]["maximum_length"], 20);
    assert_eq!(items[3]["details"]["api_name"], "Deal_Tier");
    let id = items[0]["details"]["id"].as_str().expect("id");
    let (_, body) = org
        .get(&format!(
            "/crm/v8/Deals/{id}?fields=Deal_Region,Deal_Score,Deal_Tier"
        ))
        .await;
    assert_eq!(body["data"][0]["Deal_Region"], "Nordics");
    assert_eq!(body["data"][0]["Deal_Score"], 7);
    assert_eq!(body["data"][0]["Deal_Tier"], "Gold");
    let (_, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select Deal_Score from Deals where Deal_Region = 'Nordics'"}),
        )
        .await;
    assert_eq!(body["data"][0]["Deal_Score"], 7);

    let (status, body) = org
        .post(
            "/crm/v8/settings/fields?module=Notes",
            json!({"fields": [{"field_label": "Source System", "data_type": "text"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = org.get("/crm/v8/settings/fields?module=Notes").await;
    assert_eq!(field(&body, "Source_System")["custom_field"], true);
}

// ---- Incremental reads: the org's clock, Modified_Time, If-Modified-Since ----------------

/// Two records of every module written now; returns their ids (Accounts, Contacts, Deals,
/// Notes) and the deal's first contact.
async fn two_of_each(org: &Org) -> [Vec<String>; 4] {
    let mut ids: [Vec<String>; 4] = Default::default();
    for i in 0..2 {
        ids[0].push(
            org.upsert_one(
                "Accounts",
                json!({"Account_Name": format!("Acct {i}"), "Ferry_Source_Id": format!("a-{i}")}),
            )
            .await,
        );
        ids[1].push(
            org.upsert_one(
                "Contacts",
                json!({"Last_Name": format!("C{i}"), "Email": format!("c{i}@example.com"), "Ferry_Source_Id": format!("c-{i}")}),
            )
            .await,
        );
        let (_, items) = org
            .insert("Deals", json!([{"Deal_Name": format!("D{i}"), "Pipeline": "Standard", "Stage": "Qualification"}]))
            .await;
        ids[2].push(items[0]["details"]["id"].as_str().expect("id").to_owned());
        let (_, items) = org
            .insert(
                "Notes",
                json!([{"Note_Content": format!("n{i}"), "Parent_Id": ids[1][i], "se_module": "Contacts"}]),
            )
            .await;
        ids[3].push(items[0]["details"]["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// The ids a list of `module` with `If-Modified-Since: since` answers, and its status.
async fn modified_since(org: &Org, module: &str, since: &str, extra: &str) -> (u16, Vec<String>) {
    let resp = org
        .http
        .get(format!(
            "{}/crm/v8/{module}?fields=Modified_Time&sort_by=Modified_Time&sort_order=asc{extra}",
            org.running.base_url
        ))
        .header("Authorization", format!("Zoho-oauthtoken {}", org.token))
        .header("If-Modified-Since", since)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let body: Json = resp.json().await.unwrap_or(Json::Null);
    let ids = body["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|r| r["id"].as_str().expect("id").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

/// `ms` as ISO 8601 in India's offset (+05:30), as Zoho's docs write times.
fn in_india(ms: i64) -> String {
    let shifted = store::zoho_time(ms + 19_800_000);
    format!("{}+05:30", &shifted[..19])
}

#[tokio::test]
async fn writes_stamp_modified_time_from_the_org_clock_that_dates_answers() {
    let org = org(Options::default()).await;
    org.emulator.advance_clock(Duration::from_secs(30 * 86_400));
    let (_, headers, _) = org.call(reqwest::Method::GET, "/crm/v8/org", None).await;
    let date = headers["date"].to_str().expect("ascii").to_owned();
    let clock = org.emulator.now_ms();
    assert!(
        [clock - 1000, clock]
            .iter()
            .any(|ms| crate::timestamp::http_date(*ms) == date),
        "the Date header follows the org's clock: {date}"
    );
    let ids = two_of_each(&org).await;
    org.emulator.advance_clock(Duration::from_secs(3600));
    let since = in_india(org.emulator.now_ms());
    org.emulator.advance_clock(Duration::from_secs(5));
    let edited_at = org.emulator.now_ms();

    // Nothing changed since: 304 on every module.
    for module in ["Accounts", "Contacts", "Deals", "Notes"] {
        assert_eq!(
            modified_since(&org, module, &since, "").await,
            (304, vec![]),
            "{module}"
        );
    }
    // A deal's contact role changes: Zoho does not document that this modifies the deal.
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{}/Contact_Roles/{}", ids[2][0], ids[1][0]),
            json!({"data": [{"Contact_Role": "Purchasing"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(modified_since(&org, "Deals", &since, "").await.0, 304);

    // One edit of each module: each is the one record modified since.
    org.upsert_one(
        "Accounts",
        json!({"Ferry_Source_Id": "a-1", "Phone": "+1 555 0100"}),
    )
    .await;
    org.upsert_one(
        "Contacts",
        json!({"Ferry_Source_Id": "c-0", "Title": "CTO"}),
    )
    .await;
    let (status, body) = org
        .put(
            &format!("/crm/v8/Deals/{}", ids[2][1]),
            json!({"data": [{"Amount": 12.5}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = org
        .put(
            &format!("/crm/v8/Notes/{}", ids[3][0]),
            json!({"data": [{"Note_Content": "edited"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (module, id) in [
        ("Accounts", &ids[0][1]),
        ("Contacts", &ids[1][0]),
        ("Deals", &ids[2][1]),
        ("Notes", &ids[3][0]),
    ] {
        assert_eq!(
            modified_since(&org, module, &since, "").await,
            (200, vec![id.clone()]),
            "{module}"
        );
        let (status, body) = org
            .get(&format!("/crm/v8/{module}/{id}?fields=Modified_Time"))
            .await;
        assert_eq!(status, 200, "{body}");
        let stamped = body["data"][0]["Modified_Time"].as_str().expect("time");
        assert!(
            [edited_at, edited_at + 1000]
                .iter()
                .any(|ms| store::zoho_time(*ms) == stamped),
            "{module}: stamped by the org's clock, {stamped}"
        );
        // COQL filters on the same time, whatever the literal's offset (not Notes: COQL does
        // not serve them).
        if module != "Notes" {
            let (status, body) = org
                .post(
                    "/crm/v8/coql",
                    json!({"select_query": format!(
                        "select Modified_Time from {module} where Modified_Time >= '{since}' and id > 0 order by id asc limit 10"
                    )}),
                )
                .await;
            assert_eq!(status, 200, "{module}: {body}");
            assert_eq!(
                body["data"].as_array().map(Vec::len),
                Some(1),
                "{module}: {body}"
            );
            assert_eq!(body["data"][0]["id"], id.as_str());
        }
    }
    // Exactly at the second of the edit: not "modified since" (the stricter reading).
    let (_, body) = org
        .get(&format!("/crm/v8/Notes/{}?fields=Modified_Time", ids[3][0]))
        .await;
    let at = body["data"][0]["Modified_Time"].as_str().expect("time");
    assert_eq!(modified_since(&org, "Notes", at, "").await.0, 304);
}

#[tokio::test]
async fn modified_lists_page_by_token_bound_to_their_filter_and_refuse_bad_dates() {
    let org = org(Options {
        page_token_reach: 4,
        ..Options::default()
    })
    .await;
    let contact = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "N", "Ferry_Source_Id": "n"}),
        )
        .await;
    let since = in_india(org.emulator.now_ms() - 60_000);
    let mut notes = Vec::new();
    for i in 0..5 {
        let (_, items) = org
            .insert("Notes", json!([{"Note_Content": format!("n{i}"), "Parent_Id": contact, "se_module": "Contacts"}]))
            .await;
        notes.push(items[0]["details"]["id"].as_str().expect("id").to_owned());
        org.emulator.advance_clock(Duration::from_secs(1));
    }
    // Edited last, the first note sorts last by Modified_Time.
    org.put(
        &format!("/crm/v8/Notes/{}", notes[0]),
        json!({"data": [{"Note_Content": "again"}]}),
    )
    .await;
    let want: Vec<String> = notes[1..].iter().chain(&notes[..1]).cloned().collect();
    let fetch = |extra: String| {
        let org = &org;
        let since = since.clone();
        async move {
            org.http
                .get(format!(
                    "{}/crm/v8/Notes?fields=Note_Content&sort_by=Modified_Time&sort_order=asc&per_page=2{extra}",
                    org.running.base_url
                ))
                .header("Authorization", format!("Zoho-oauthtoken {}", org.token))
                .header("If-Modified-Since", since)
                .send()
                .await
                .expect("send")
                .json::<Json>()
                .await
                .expect("json")
        }
    };
    let first = fetch(String::new()).await;
    assert_eq!(first["info"]["sort_by"], "Modified_Time");
    let token = first["info"]["next_page_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let second = fetch(format!("&page_token={token}")).await;
    let mut got: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|b| b["data"].as_array().expect("data").iter())
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    let token2 = second["info"]["next_page_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // Past the token's reach (4 here, 100,000 at Zoho): PAGINATION_LIMIT_EXCEEDED.
    let third = fetch(format!("&page_token={token2}")).await;
    assert_eq!(third["code"], "PAGINATION_LIMIT_EXCEEDED", "{third}");
    got.push(want[4].clone());
    assert_eq!(got, want, "in Modified_Time order, ties by id");

    // The token belongs to its filter and order.
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Notes?fields=Note_Content&per_page=2&sort_order=asc&page_token={token}"
        ))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("TOKEN_BOUND_DATA_MISMATCH"))
    );
    // A date Zoho cannot read is refused, not taken as "no filter".
    let (status, _) = modified_since(&org, "Notes", "yesterday", "").await;
    assert_eq!(status, 400);
    let (status, body) = org
        .get("/crm/v8/Notes?fields=Note_Content&sort_by=Last_Name")
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_DATA")));
}

#[tokio::test]
async fn a_gdpr_org_holds_a_consent_record_on_contacts_checked_listed_by_ids_and_kept_from_coql() {
    // Off (a new org): no consent record, and the org says so.
    let plain = org(Options::default()).await;
    let (_, body) = plain.get("/crm/v8/org").await;
    assert_eq!(body["org"][0]["privacy_settings"], false);
    let listed = |meta: &Json| {
        meta["fields"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["api_name"] == "Data_Processing_Basis_Details")
        })
    };
    let (_, meta) = plain.get("/crm/v8/settings/fields?module=Contacts").await;
    assert!(!listed(&meta));

    let org = org(Options {
        gdpr: true,
        ..Options::default()
    })
    .await;
    let (_, body) = org.get("/crm/v8/org").await;
    assert_eq!(body["org"][0]["privacy_settings"], true);
    let (_, meta) = org.get("/crm/v8/settings/fields?module=Contacts").await;
    assert_eq!(
        field(&meta, "Data_Processing_Basis_Details")["json_type"],
        "jsonobject"
    );
    let (_, meta) = org.get("/crm/v8/settings/fields?module=Accounts").await;
    assert!(!listed(&meta));

    let consent = json!({"Data_Processing_Basis": "Obtained", "Consent_Date": "2024-02-29"});
    let with = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "Gilmore", "Ferry_Source_Id": "s-1",
                   "Data_Processing_Basis_Details": consent}),
        )
        .await;
    let without = org
        .upsert_one(
            "Contacts",
            json!({"Last_Name": "Hayden", "Ferry_Source_Id": "s-2"}),
        )
        .await;

    // A basis Zoho has no value for, or a date that is not one: INVALID_DATA naming the key.
    for (bad, key) in [
        (
            json!({"Data_Processing_Basis": "Consent"}),
            "Data_Processing_Basis",
        ),
        (json!({"Consent_Date": "29/02/2024"}), "Consent_Date"),
        (
            json!({"Contact_Through_Email": "yes"}),
            "Contact_Through_Email",
        ),
    ] {
        let (status, body) = org
            .post(
                "/crm/v8/Contacts/upsert",
                json!({"data": [{"Last_Name": "X", "Data_Processing_Basis_Details": bad}]}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let item = &body["data"][0];
        assert_eq!(item["code"], "INVALID_DATA", "{item}");
        assert_eq!(item["details"]["api_name"], key, "{item}");
        assert_eq!(
            item["details"]["json_path"],
            format!("$.data[0].Data_Processing_Basis_Details.{key}")
        );
    }

    // Read by ids: the record's, and `Not Applicable` where none was set (Zoho's default).
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Contacts?ids={with},{without}&fields=Data_Processing_Basis_Details"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let read: Vec<(&str, &Json)> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                &r["Data_Processing_Basis_Details"],
            )
        })
        .collect();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0], (with.as_str(), &consent));
    assert_eq!(
        read[1].1["Data_Processing_Basis"], "Not Applicable",
        "{body}"
    );

    // An update giving the basis alone keeps the date.
    org.upsert_one(
        "Contacts",
        json!({"Ferry_Source_Id": "s-1", "Last_Name": "Gilmore",
               "Data_Processing_Basis_Details": {"Data_Processing_Basis": "Contract"}}),
    )
    .await;
    let (_, body) = org
        .get(&format!(
            "/crm/v8/Contacts/{with}?fields=Data_Processing_Basis_Details"
        ))
        .await;
    assert_eq!(
        body["data"][0]["Data_Processing_Basis_Details"],
        json!({"Data_Processing_Basis": "Contract", "Consent_Date": "2024-02-29"})
    );

    // More than 100 ids are refused.
    let many = vec![with.as_str(); 101].join(",");
    let (status, body) = org
        .get(&format!("/crm/v8/Contacts?ids={many}&fields=Last_Name"))
        .await;
    assert_eq!((status, &body["code"]), (400, &json!("LIMIT_EXCEEDED")));

    // COQL does not serve it (an assumption: undocumented).
    let (status, body) = org
        .post(
            "/crm/v8/coql",
            json!({"select_query": "select Last_Name, Data_Processing_Basis_Details from Contacts where id > 0"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["details"]["column_name"],
        "Data_Processing_Basis_Details"
    );
}

#[tokio::test]
async fn records_by_ids_answer_lookups_by_zoho_id_within_zohos_limits() {
    let org = org(Options::default()).await;
    let account = org
        .upsert_one(
            "Accounts",
            json!({"Ferry_Source_Id": "a-1", "Account_Name": "Acme"}),
        )
        .await;
    let contact = org
        .upsert_one(
            "Contacts",
            json!({"Ferry_Source_Id": "c-1", "Last_Name": "Gilmore", "Account_Name": {"id": account}}),
        )
        .await;
    let before = org.emulator.credits_used();
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Contacts?ids={contact},999&fields=Ferry_Source_Id,Last_Name,Account_Name,Owner"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(org.emulator.credits_used() - before, 1, "one credit a call");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "an id the module lacks is left out: {body}");
    let z = &data[0];
    assert_eq!(
        (&z["id"], &z["Ferry_Source_Id"]),
        (&json!(contact), &json!("c-1"))
    );
    // A lookup names its target by Zoho id and display name, never by the target's fields.
    assert_eq!(z["Account_Name"], json!({"name": "Acme", "id": account}));
    for key in ["id", "name", "email"] {
        assert!(z["Owner"][key].is_string(), "Owner.{key}: {z}");
    }
    assert_eq!(body["info"]["more_records"], false);

    // None of the ids found: 204, no body.
    let (status, _) = org.get("/crm/v8/Contacts?ids=999&fields=Last_Name").await;
    assert_eq!(status, 204);
    // `fields` holds at most 50 names; `ids` at most 100.
    let fifty_one: Vec<String> = (0..51).map(|i| format!("Field_{i}")).collect();
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Contacts?ids={contact}&fields={}",
            fifty_one.join(",")
        ))
        .await;
    assert_eq!(
        (status, &body["code"], &body["details"]["limit"]),
        (400, &json!("LIMIT_EXCEEDED"), &json!(50))
    );
    let hundred = vec![contact.as_str(); 100].join(",");
    let (status, body) = org
        .get(&format!("/crm/v8/Contacts?ids={hundred}&fields=Last_Name"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = org
        .get(&format!(
            "/crm/v8/Contacts?ids={hundred},{contact}&fields=Last_Name"
        ))
        .await;
    assert_eq!(
        (status, &body["code"], &body["details"]["param_name"]),
        (400, &json!("LIMIT_EXCEEDED"), &json!("ids"))
    );
}
