//! The emulator over real HTTP on loopback.

use std::net::SocketAddr;

use serde_json::{Value as Json, json};

use super::*;
use crate::seed::{Mess, generate};

struct Env {
    emulator: Emulator,
    running: crate::Running,
    http: reqwest::Client,
    token: String,
}

async fn env(options: Options) -> Env {
    let emulator = Emulator::new(options);
    let running = crate::serve(
        "dynamics",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut env = Env {
        emulator,
        running,
        http: reqwest::Client::new(),
        token: String::new(),
    };
    let (status, body) = env.token(CLIENT_ID, CLIENT_SECRET, "/.default").await;
    assert_eq!(status, 200, "{body}");
    env.token = body["access_token"].as_str().expect("token").to_owned();
    env
}

impl Env {
    async fn token(&self, id: &str, secret: &str, scope_suffix: &str) -> (u16, Json) {
        let resp = self
            .http
            .post(format!(
                "{}/{TENANT_ID}/oauth2/v2.0/token",
                self.running.base_url
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", &format!("{}{scope_suffix}", self.running.base_url)),
            ])
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }

    fn url(&self, rest: &str) -> String {
        format!("{}{API_PREFIX}{rest}", self.running.base_url)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Json>,
    ) -> (u16, reqwest::header::HeaderMap, Json) {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("OData-Version", "4.0");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("text");
        let json = serde_json::from_str(&text).unwrap_or(Json::Null);
        (status, headers, json)
    }

    async fn get(
        &self,
        rest: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Json) {
        self.send(reqwest::Method::GET, &self.url(rest), headers, None)
            .await
    }

    async fn patch(
        &self,
        rest: &str,
        headers: &[(&str, &str)],
        body: Json,
    ) -> (u16, reqwest::header::HeaderMap, Json) {
        self.send(reqwest::Method::PATCH, &self.url(rest), headers, Some(body))
            .await
    }
}

#[tokio::test]
async fn token_endpoint_speaks_the_identity_platform_shape() {
    let env = env(Options::default()).await;
    let (status, body) = env.token(CLIENT_ID, CLIENT_SECRET, "/.default").await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let (status, body) = env.token(CLIENT_ID, "wrong", "/.default").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let (status, body) = env.token("someone-else", CLIENT_SECRET, "/.default").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (status, body) = env
        .token(CLIENT_ID, CLIENT_SECRET, "/user_impersonation")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // Without a valid token the Web API answers 401 with an empty body.
    let resp = env
        .http
        .get(env.url("WhoAmI"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, _, body) = env.get("WhoAmI", &[]).await;
    assert_eq!(status, 200);
    assert!(body["UserId"].is_string());
}

#[tokio::test]
async fn pages_follow_next_links_with_the_same_max_page_size() {
    let env = env(Options::default()).await;
    let seeded = env.emulator.seed(&generate(120, 4, &Mess::none()));
    assert_eq!(seeded.contacts, 120);
    let prefer = [("Prefer", "odata.maxpagesize=50")];
    let (status, headers, page) = env
        .get(
            "contacts?$select=lastname,donotemail,_parentcustomerid_value&$count=true",
            &prefer,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(headers["preference-applied"], "odata.maxpagesize=50");
    assert_eq!(page["@odata.count"], 120);
    assert_eq!(page["value"].as_array().unwrap().len(), 50);
    let first = &page["value"][0];
    assert!(first["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert!(first["contactid"].is_string() && first["lastname"].is_string());
    assert!(first.get("firstname").is_none(), "only selected columns");
    let mut seen: Vec<String> = Vec::new();
    let mut next = page["@odata.nextLink"].as_str().map(str::to_owned);
    seen.extend(
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["contactid"].as_str().unwrap().to_owned()),
    );
    let mut pages = 1;
    while let Some(link) = next {
        assert!(link.contains("$skiptoken="), "{link}");
        let (status, _, page) = env.send(reqwest::Method::GET, &link, &prefer, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["contactid"].as_str().unwrap().to_owned()),
        );
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (seen.len(), unique.len()),
        (120, 120),
        "every record exactly once"
    );

    // $skip is not supported; unknown columns and operators are honest 400s.
    for bad in [
        "contacts?$skip=10",
        "contacts?$select=nosuchcolumn",
        "contacts?$filter=contains(lastname,'a')",
        "contacts?$filter=lastname gt",
        "contacts?$orderby=lastname",
    ] {
        let (status, _, body) = env.get(bad, &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].is_string(), "{bad}");
    }
    // $top without a page size: that many, no next link.
    let (_, _, page) = env.get("contacts?$select=lastname&$top=7", &[]).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 7);
    assert!(page.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn count_is_capped_at_five_thousand() {
    let env = env(Options::default()).await;
    env.emulator.seed(&generate(5_200, 4, &Mess::none()));
    let (_, _, page) = env
        .get(
            "contacts?$select=contactid&$count=true",
            &[("Prefer", "odata.maxpagesize=1")],
        )
        .await;
    assert_eq!(page["@odata.count"], 5_000);
    let (_, _, page) = env
        .get(
            "accounts?$select=accountid&$count=true",
            &[("Prefer", "odata.maxpagesize=1")],
        )
        .await;
    assert_eq!(page["@odata.count"], 1_040);
}

#[tokio::test]
async fn upsert_by_alternate_key_with_conditions_and_binds() {
    let env = env(Options::default()).await;
    let (status, headers, _) = env
        .patch(
            "accounts(ferry_sourceid='co-1')",
            &[],
            json!({"name": "Dragonfly Inn"}),
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        headers["odata-entityid"]
            .to_str()
            .unwrap()
            .contains("/accounts(")
    );
    let repr = [("Prefer", "return=representation")];
    let (status, headers, body) = env
        .patch(
            "accounts(ferry_sourceid='co-1')?$select=name",
            &repr,
            json!({"name": "Dragonfly"}),
        )
        .await;
    assert_eq!(status, 200, "an update");
    assert_eq!(headers["preference-applied"], "return=representation");
    assert_eq!(body["name"], "Dragonfly");
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='co-2')?$select=accountid",
            &repr,
            json!({"name": "Luke's"}),
        )
        .await;
    assert_eq!(status, 201, "a create: {body}");
    // Quotes in key values are doubled.
    let (status, _, _) = env
        .patch(
            "accounts(ferry_sourceid='o''brien')",
            &[],
            json!({"name": "O'Brien"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = env
        .get(
            "accounts(ferry_sourceid='o''brien')?$select=name,ferry_sourceid",
            &[],
        )
        .await;
    assert_eq!(
        (status, body["ferry_sourceid"].as_str()),
        (200, Some("o'brien"))
    );
    // The key is case-insensitive, as the collation is.
    let (status, _, body) = env
        .get("accounts(ferry_sourceid='CO-1')?$select=name", &[])
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Dragonfly")));

    // If-Match: * prevents a create; If-None-Match: * prevents an update.
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='co-9')",
            &[("If-Match", "*")],
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "0x80040217");
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='co-1')",
            &[("If-None-Match", "*")],
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 412);
    assert_eq!(
        body["error"]["message"],
        "A record with matching key values already exists."
    );
    assert_eq!(env.emulator.count("account"), 3);

    // A contact bound to its account through the account's alternate key.
    let (status, _, body) = env
        .patch(
            "contacts(ferry_sourceid='p-1')",
            &[],
            json!({"lastname": "Gilmore", "donotemail": true,
                   "parentcustomerid_account@odata.bind": "/accounts(ferry_sourceid='co-1')"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, _, body) = env
        .get(
            "contacts(ferry_sourceid='p-1')?$select=lastname,donotemail,donotbulkemail,_parentcustomerid_value&$expand=parentcustomerid_account($select=ferry_sourceid)",
            &[],
        )
        .await;
    assert_eq!(body["donotemail"], true);
    assert_eq!(body["donotbulkemail"], false);
    assert_eq!(body["parentcustomerid_account"]["ferry_sourceid"], "co-1");
    assert!(body["_parentcustomerid_value"].is_string());
    // Binding to an account that does not exist fails; a null bind disassociates.
    let (status, _, body) = env
        .patch(
            "contacts(ferry_sourceid='p-2')",
            &[],
            json!({"lastname": "Danes", "parentcustomerid_account@odata.bind": "/accounts(ferry_sourceid='co-404')"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("0x80040217"))
    );
    env.patch(
        "contacts(ferry_sourceid='p-1')",
        &[],
        json!({"parentcustomerid_account@odata.bind": null}),
    )
    .await;
    let (_, _, body) = env
        .get(
            "contacts(ferry_sourceid='p-1')?$select=_parentcustomerid_value",
            &[],
        )
        .await;
    assert!(body["_parentcustomerid_value"].is_null());
    let (status, _, body) = env.get("contacts(ferry_sourceid='nobody')", &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("0x80040217"))
    );
    // Characters alternate keys do not support.
    let (status, _, _) = env
        .patch(
            "accounts(ferry_sourceid='a%2Bb')",
            &[],
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn validation_errors_have_dataverse_codes() {
    let env = env(Options::default()).await;
    let cases = [
        (
            json!({"lastname": "x".repeat(51)}),
            "0x80044331",
            "'lastname'",
        ),
        (
            json!({"lastname": "Ng", "nosuch": 1}),
            "0x80048d19",
            "'nosuch'",
        ),
        (json!({"lastname": 5}), "0x80048d19", "Edm.String"),
        (
            json!({"lastname": "Ng", "donotemail": "yes"}),
            "0x80048d19",
            "Edm.Boolean",
        ),
    ];
    for (body, code, needle) in cases {
        let (status, _, answer) = env
            .patch("contacts(ferry_sourceid='v')", &[], body.clone())
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{answer}"
        );
    }
    let (status, _, answer) = env
        .patch(
            "accounts(ferry_sourceid='a')",
            &[],
            json!({"name": "A", "numberofemployees": -1}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("0x80044331"))
    );
    // The Web API does not enforce business-required columns...
    let (status, _, _) = env
        .patch(
            "contacts(ferry_sourceid='nameless')",
            &[],
            json!({"firstname": "Rory"}),
        )
        .await;
    assert_eq!(status, 204);
    // ...unless the emulator is told to.
    let strict = self::env(Options {
        enforce_required: true,
        ..Options::default()
    })
    .await;
    let (status, _, answer) = strict
        .patch(
            "contacts(ferry_sourceid='nameless')",
            &[],
            json!({"firstname": "Rory"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'lastname'")
    );
}

#[tokio::test]
async fn without_the_alternate_key_key_addressing_fails_and_metadata_says_so() {
    let env = env(Options {
        alternate_keys: false,
        ..Options::default()
    })
    .await;
    let (status, _, body) = env
        .get("EntityDefinitions(LogicalName='contact')/Keys", &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    let (status, _, body) = env
        .patch(
            "contacts(ferry_sourceid='p-1')",
            &[],
            json!({"lastname": "Ng"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The key in the request URI is not valid")
    );
    let keyed = self::env(Options::default()).await;
    let (_, _, body) = keyed
        .get("EntityDefinitions(LogicalName='account')/Keys", &[])
        .await;
    assert_eq!(body["value"][0]["KeyAttributes"], json!(["ferry_sourceid"]));
    assert_eq!(body["value"][0]["EntityKeyIndexStatus"], "Active");
}

fn batch_body(boundary: &str, parts: &[(&str, &str, Option<Json>)]) -> String {
    let mut out = String::new();
    for (method, url, body) in parts {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method} {API_PREFIX}{url} HTTP/1.1\r\nContent-Type: application/json\r\nPrefer: return=representation\r\n\r\n"
        ));
        if let Some(b) = body {
            out.push_str(&b.to_string());
        }
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

async fn post_batch(env: &Env, body: String, continue_on_error: bool) -> (u16, String) {
    let mut req = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(&env.token)
        .header("Content-Type", "multipart/mixed; boundary=batch_t1")
        .body(body);
    if continue_on_error {
        req = req.header("Prefer", "odata.continue-on-error");
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn batch_continues_on_error_only_when_asked_and_change_sets_roll_back() {
    let env = env(Options::default()).await;
    let parts = [
        (
            "PATCH",
            "accounts(ferry_sourceid='a1')?$select=accountid",
            Some(json!({"name": "A"})),
        ),
        (
            "PATCH",
            "accounts(ferry_sourceid='a2')?$select=accountid",
            Some(json!({"name": "x".repeat(161)})),
        ),
        (
            "PATCH",
            "accounts(ferry_sourceid='a3')?$select=accountid",
            Some(json!({"name": "C"})),
        ),
    ];
    let (status, text) = post_batch(&env, batch_body("batch_t1", &parts), false).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("HTTP/1.1 201 Created") && text.contains("0x80044331"),
        "{text}"
    );
    assert_eq!(
        env.emulator.count("account"),
        1,
        "stopped at the first error"
    );

    let (status, text) = post_batch(&env, batch_body("batch_t1", &parts), true).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 200 OK").count(),
        1,
        "a1 updated: {text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 201 Created").count(),
        1,
        "a3 created"
    );
    assert_eq!(text.matches("HTTP/1.1 400 Bad Request").count(), 1);
    assert!(text.starts_with("--batchresponse_"));
    assert_eq!(env.emulator.count("account"), 2);

    // A change set is all or nothing.
    let body = format!(
        "--batch_t1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
PATCH {API_PREFIX}accounts(ferry_sourceid='cs1') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"ok\"}}\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
PATCH {API_PREFIX}accounts(ferry_sourceid='cs2') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"bogus\":1}}\r\n\
--changeset_c1--\r\n--batch_t1--\r\n"
    );
    let (status, text) = post_batch(&env, body, true).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("changesetresponse_") && text.contains("0x80048d19"),
        "{text}"
    );
    assert_eq!(env.emulator.count("account"), 2, "cs1 rolled back");

    // More than 1,000 requests is refused.
    let many: Vec<(&str, &str, Option<Json>)> =
        (0..1001).map(|_| ("GET", "WhoAmI", None)).collect();
    let (status, _) = post_batch(&env, batch_body("batch_t1", &many), true).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn partial_fails_requests_and_whole_change_sets_as_deadlock_victims() {
    let env = env(Options {
        faults: crate::faults::Faults::parse("partial:100").unwrap(),
        ..Options::default()
    })
    .await;
    let parts = [
        (
            "PATCH",
            "accounts(ferry_sourceid='p1')?$select=accountid",
            Some(json!({"name": "A"})),
        ),
        (
            "PATCH",
            "accounts(ferry_sourceid='p2')?$select=accountid",
            Some(json!({"name": "B"})),
        ),
    ];
    let (status, text) = post_batch(&env, batch_body("batch_t1", &parts), true).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 500 Internal Server Error").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("0x80044150").count(), 2, "{text}");
    let body = format!(
        "--batch_t1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
PATCH {API_PREFIX}accounts(ferry_sourceid='cs1') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"ok\"}}\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
PATCH {API_PREFIX}accounts(ferry_sourceid='cs2') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"ok too\"}}\r\n\
--changeset_c1--\r\n--batch_t1--\r\n"
    );
    let (status, text) = post_batch(&env, body, true).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("changesetresponse_") && text.matches("0x80044150").count() == 1,
        "one error for the whole change set: {text}"
    );
    assert_eq!(env.emulator.count("account"), 0, "nothing written");
}

#[tokio::test]
async fn service_protection_limits_answer_429_with_retry_after() {
    let env = env(Options {
        requests_per_window: 3,
        window: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    for expected_remaining in [2, 1, 0] {
        let (status, headers, _) = env.get("WhoAmI", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["x-ms-ratelimit-burst-remaining-xrm-requests"],
            expected_remaining.to_string().as_str()
        );
        assert!(headers.contains_key("x-ms-ratelimit-time-remaining-xrm-requests"));
    }
    let (status, headers, body) = env.get("WhoAmI", &[]).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "0x80072322");
    assert_eq!(
        body["error"]["message"],
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, _) = env.get("WhoAmI", &[]).await;
    assert_eq!(status, 200, "the window slid");

    // The concurrency limit fails at once.
    let env = self::env(Options {
        max_concurrent: 0,
        ..Options::default()
    })
    .await;
    let (status, headers, body) = env.get("WhoAmI", &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("0x80072326"))
    );
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn filters_by_key_use_the_index_and_in_works() {
    let env = env(Options::default()).await;
    for i in 0..5 {
        env.patch(
            &format!("contacts(ferry_sourceid='p-{i}')"),
            &[],
            json!({"lastname": format!("N{i}")}),
        )
        .await;
    }
    let (status, _, page) = env
        .get(
            "contacts?$select=lastname,ferry_sourceid&$filter=Microsoft.Dynamics.CRM.In(PropertyName='ferry_sourceid',PropertyValues=['p-1','p-3','missing'])",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let got: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ferry_sourceid"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["p-1", "p-3"]);
    let (_, _, page) = env
        .get("contacts?$select=lastname&$filter=(ferry_sourceid eq 'p-0' or lastname eq 'n4') and ferry_sourceid ne null", &[])
        .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2, "{page}");
}

/// The attributes of `table`'s metadata list, by logical name.
async fn attributes(env: &Env, rest: &str) -> Vec<Json> {
    let (status, _, body) = env.get(rest, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().expect("value").clone()
}

fn find<'a>(list: &'a [Json], logical: &str) -> &'a Json {
    list.iter()
        .find(|a| a["LogicalName"] == logical)
        .unwrap_or_else(|| panic!("no {logical}"))
}

#[tokio::test]
async fn column_definitions_list_standard_system_and_custom_columns() {
    let env = env(Options::default()).await;
    let select = "$select=LogicalName,SchemaName,AttributeType,IsCustomAttribute,IsValidForCreate,IsValidForUpdate,DisplayName";
    let accounts = attributes(
        &env,
        &format!("EntityDefinitions(LogicalName='account')/Attributes?{select}"),
    )
    .await;
    let region = find(&accounts, "new_region");
    assert_eq!(region["AttributeType"], "String");
    assert_eq!(region["SchemaName"], "new_Region");
    assert_eq!(region["IsCustomAttribute"], true);
    assert_eq!(
        region["@odata.type"],
        "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    );
    assert_eq!(
        region["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Region"
    );
    assert!(region["MetadataId"].is_string());
    // $select keeps only what was asked (and the type and id).
    assert!(region.get("MaxLength").is_none() && region.get("RequiredLevel").is_none());
    assert_eq!(find(&accounts, "new_seats")["AttributeType"], "Integer");
    assert_eq!(find(&accounts, "new_tier")["AttributeType"], "Picklist");
    assert_eq!(find(&accounts, "industrycode")["IsCustomAttribute"], false);
    assert_eq!(find(&accounts, "name")["AttributeType"], "String");
    let created = find(&accounts, "createdon");
    assert_eq!(
        (&created["IsValidForCreate"], &created["IsValidForUpdate"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        find(&accounts, "accountid")["AttributeType"],
        "Uniqueidentifier"
    );
    let contacts = attributes(
        &env,
        &format!("EntityDefinitions(LogicalName='contact')/Attributes?{select}"),
    )
    .await;
    assert_eq!(
        find(&contacts, "new_favouritecolour")["AttributeType"],
        "String"
    );
    assert_eq!(
        find(&contacts, "new_loyaltypoints")["AttributeType"],
        "Integer"
    );
    assert_eq!(
        find(&contacts, "parentcustomerid")["AttributeType"],
        "Customer"
    );
    assert_eq!(find(&contacts, "fullname")["IsValidForCreate"], false);
    // Derived properties need a cast; OptionSet is expanded on the choice type only.
    let (status, _, answer) = env
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,MaxLength",
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _, _) = env
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes?$expand=OptionSet",
            &[],
        )
        .await;
    assert_eq!(status, 400);
    let strings = attributes(
        &env,
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength",
    )
    .await;
    assert!(
        strings
            .iter()
            .all(|a| a["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata")
    );
    assert_eq!(find(&strings, "name")["MaxLength"], 160);
    assert_eq!(find(&strings, "new_region")["MaxLength"], 100);
}

#[tokio::test]
async fn choice_options_come_with_values_and_labels() {
    let env = env(Options::default()).await;
    let choices = attributes(
        &env,
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)",
    )
    .await;
    assert_eq!(choices.len(), 2, "industrycode and new_tier");
    let options = |logical: &str| -> Vec<(i64, String)> {
        find(&choices, logical)["OptionSet"]["Options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["Value"].as_i64().unwrap(),
                    o["Label"]["UserLocalizedLabel"]["Label"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        options("new_tier"),
        [
            (100_000_000, "Gold".to_owned()),
            (100_000_001, "Silver".to_owned()),
            (100_000_002, "Bronze".to_owned())
        ]
    );
    let industry = options("industrycode");
    assert_eq!(industry.len(), 33);
    assert_eq!(industry[0], (1, "Accounting".to_owned()));
    assert_eq!(industry[32], (33, "Wholesale".to_owned()));
    // One attribute by its logical name.
    let (status, _, one) = env
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_tier')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["OptionSet"]["Options"].as_array().unwrap().len(), 3);
    let (status, _, _) = env
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_nosuch')",
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn seeded_records_carry_custom_values_returned_when_selected() {
    let env = env(Options::default()).await;
    let data = generate(60, 7, &Mess::default());
    env.emulator.seed(&data);
    let (status, _, page) = env
        .get("accounts?$select=name,new_region,new_seats,new_tier", &[])
        .await;
    assert_eq!(status, 200, "{page}");
    let rows = page["value"].as_array().unwrap();
    assert_eq!(rows.len(), data.companies.len());
    for (row, company) in rows.iter().zip(&data.companies) {
        assert_eq!(row["new_region"].as_str(), company.region.as_deref());
        assert_eq!(row["new_seats"].as_u64(), company.seats.map(u64::from));
        let tier = company
            .tier
            .and_then(|t| crate::seed::TIERS.iter().position(|x| *x == t))
            .map(|i| 100_000_000 + i as i64);
        assert_eq!(row["new_tier"].as_i64(), tier);
    }
    assert!(rows.iter().any(|r| r["new_tier"].is_i64()));
    // Not selected, not returned.
    let (_, _, page) = env.get("accounts?$select=name", &[]).await;
    assert!(page["value"][0].get("new_region").is_none());
    let (_, _, page) = env
        .get(
            "contacts?$select=lastname,new_favouritecolour,new_loyaltypoints",
            &[],
        )
        .await;
    let rows = page["value"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["new_favouritecolour"].is_string()));
    assert!(rows.iter().any(|r| r["new_loyaltypoints"].is_u64()));
}

#[tokio::test]
async fn custom_values_are_validated_like_the_web_api_does() {
    let env = env(Options::default()).await;
    let (status, _, answer) = env
        .patch(
            "accounts(ferry_sourceid='a1')?$select=new_region,new_seats,new_tier",
            &[("Prefer", "return=representation")],
            json!({"name": "A", "new_region": "EMEA", "new_seats": 12, "new_tier": 100_000_001}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        (
            &answer["new_region"],
            &answer["new_seats"],
            &answer["new_tier"]
        ),
        (&json!("EMEA"), &json!(12), &json!(100_000_001))
    );
    for (body, code, needle) in [
        (json!({"new_tier": 7}), "0x8004431a", "'new_tier'"),
        (json!({"new_seats": "twelve"}), "0x80048d19", "Edm.Int32"),
        (json!({"new_region": 5}), "0x80048d19", "Edm.String"),
        (json!({"new_regoin": "x"}), "0x80048d19", "'new_regoin'"),
        (
            json!({"new_region": "x".repeat(101)}),
            "0x80044331",
            "'new_region'",
        ),
    ] {
        let (status, _, answer) = env
            .patch("accounts(ferry_sourceid='a1')", &[], body.clone())
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{answer}"
        );
    }
    // Filtering on a custom column works too.
    let (status, _, page) = env
        .get("accounts?$select=name&$filter=new_region eq 'emea'", &[])
        .await;
    assert_eq!(
        (status, page["value"].as_array().map(Vec::len)),
        (200, Some(1))
    );
}

#[tokio::test]
async fn created_columns_are_described_and_written_like_seeded_ones() {
    let env = env(Options::default()).await;
    let label = |text: &str| json!({"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]});
    let url = env.url("EntityDefinitions(LogicalName='contact')/Attributes");
    let (status, headers, _) = env
        .send(
            reqwest::Method::POST,
            &url,
            &[("MSCRM.SolutionUniqueName", "ferry")],
            Some(json!({
                "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
                "AttributeType": "Picklist",
                "AttributeTypeName": {"Value": "PicklistType"},
                "SchemaName": "new_Segment",
                "DisplayName": label("Segment"),
                "RequiredLevel": {"Value": "None"},
                "OptionSet": {"IsGlobal": false, "OptionSetType": "Picklist", "Options": [
                    {"Value": null, "Label": label("Retail")},
                    {"Label": label("Wholesale")}
                ]}
            })),
        )
        .await;
    assert_eq!(status, 204);
    let entity = headers["odata-entityid"].to_str().unwrap();
    assert!(
        entity.contains("EntityDefinitions(LogicalName='contact')/Attributes("),
        "{entity}"
    );
    let (status, _, _) = env
        .send(
            reqwest::Method::POST,
            &url,
            &[],
            Some(json!({
                "@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
                "SchemaName": "new_Score", "DisplayName": label("Score"), "Precision": 1
            })),
        )
        .await;
    assert_eq!(status, 204);
    // Same name again, no prefix, an unsupported type: refused.
    for (body, needle) in [
        (
            json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_segment", "DisplayName": label("x")}),
            "already exists",
        ),
        (
            json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "Segment2", "DisplayName": label("x")}),
            "prefix",
        ),
        (
            json!({"@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata", "SchemaName": "new_Cash", "DisplayName": label("x")}),
            "Money",
        ),
        (
            json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_Nameless"}),
            "DisplayName",
        ),
    ] {
        let (status, _, answer) = env.send(reqwest::Method::POST, &url, &[], Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{answer}"
        );
    }
    let choices = attributes(
        &env,
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName,SchemaName,IsCustomAttribute&$expand=OptionSet($select=Options)",
    )
    .await;
    let segment = find(&choices, "new_segment");
    assert_eq!(segment["SchemaName"], "new_Segment");
    let values: Vec<i64> = segment["OptionSet"]["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [100_000_000, 100_000_001]);
    // A contact written before the column existed reads it as null; new writes hold it.
    let (status, _, _) = env
        .patch(
            "contacts(ferry_sourceid='c1')",
            &[],
            json!({"lastname": "Ng"}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, _, row) = env
        .get(
            "contacts(ferry_sourceid='c1')?$select=new_segment,new_score",
            &[],
        )
        .await;
    assert_eq!(
        (&row["new_segment"], &row["new_score"]),
        (&Json::Null, &Json::Null)
    );
    let (status, _, row) = env
        .patch(
            "contacts(ferry_sourceid='c1')?$select=new_segment,new_score",
            &[("Prefer", "return=representation")],
            json!({"new_segment": 100_000_001, "new_score": 4.26}),
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        (&row["new_segment"], &row["new_score"]),
        (&json!(100_000_001), &json!(4.3))
    );
    let (status, _, answer) = env
        .patch(
            "contacts(ferry_sourceid='c1')",
            &[],
            json!({"new_segment": 100_000_005}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("0x8004431a"))
    );
}

mod changes;
mod deals;
mod environment_variables;
