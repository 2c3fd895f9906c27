//! Bulk API 2.0 over real HTTP on loopback: job states, CSV formats and quoting, per-row
//! results, faults, query locators.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::tests::{Org, org};
use super::*;
use crate::faults::Faults;

const V: &str = "/services/data/v62.0";

impl Org {
    fn url(&self, path: &str) -> String {
        format!("{}{V}{path}", self.running.base_url)
    }

    /// A JSON call: status and body (`null` when there is none).
    async fn bulk(&self, method: Method, path: &str, body: Option<Json>) -> (u16, Json) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Json::Null))
    }

    /// A CSV upload: the status.
    async fn put_csv(&self, id: &str, csv: impl Into<reqwest::Body>) -> (u16, Json) {
        let resp = self
            .http
            .put(self.url(&format!("/jobs/ingest/{id}/batches")))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Json::Null))
    }

    /// A CSV download: status, headers, body.
    async fn get_csv(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("text"))
    }

    /// Creates an ingest job, uploads `csv`, closes it: the job id.
    async fn load(&self, job: Json, csv: &str) -> String {
        let (status, info) = self.bulk(Method::POST, "/jobs/ingest", Some(job)).await;
        assert_eq!(status, 200, "{info}");
        let id = info["id"].as_str().expect("id").to_owned();
        let (status, body) = self.put_csv(&id, csv.to_owned()).await;
        assert_eq!(status, 201, "{body}");
        let (status, info) = self
            .bulk(
                Method::PATCH,
                &format!("/jobs/ingest/{id}"),
                Some(json!({"state": "UploadComplete"})),
            )
            .await;
        assert_eq!(status, 200, "{info}");
        id
    }

    /// Polls a job's info until it is finished: the info and how many polls it took.
    async fn finish(&self, kind: &str, id: &str) -> (Json, usize) {
        for polls in 1..=10 {
            let (status, info) = self
                .bulk(Method::GET, &format!("/jobs/{kind}/{id}"), None)
                .await;
            if status == 429 {
                continue;
            }
            assert_eq!(status, 200, "{info}");
            if matches!(
                info["state"].as_str(),
                Some("JobComplete" | "Failed" | "Aborted")
            ) {
                return (info, polls);
            }
        }
        panic!("job {id} never finished");
    }
}

/// Parses CSV text in a job's format: the rows, header first.
fn rows(text: &str, delimiter: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect()
}

fn contact_job(operation: &str) -> Json {
    let mut job = json!({"object": "Contact", "operation": operation, "contentType": "CSV"});
    if operation == "upsert" {
        job["externalIdFieldName"] = json!(EXTERNAL_ID_FIELD);
    }
    job
}

#[tokio::test]
async fn an_insert_job_moves_through_its_states_and_books_every_row() {
    let org = org(Options::default()).await;
    let (status, info) = org
        .bulk(Method::POST, "/jobs/ingest", Some(contact_job("insert")))
        .await;
    assert_eq!(status, 200, "{info}");
    let id = info["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(info["state"], "Open");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["lineEnding"], "LF");
    assert_eq!(info["columnDelimiter"], "COMMA");
    assert_eq!(
        info["contentUrl"],
        format!("services/data/v62.0/jobs/ingest/{id}/batches")
    );

    let csv = "FirstName,LastName,Email\nLorelai,Gilmore,lorelai@example.org\nRory,,rory@example.org\nLuke,Danes,not-an-email\nSookie,St. James,\n";
    let (status, body) = org.put_csv(&id, csv).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = org.put_csv(&id, csv).await;
    assert_eq!(status, 409, "one upload per job");
    assert_eq!(body[0]["errorCode"], "INVALIDJOBSTATE");
    let (status, _, _) = org
        .get_csv(&format!("/jobs/ingest/{id}/successfulResults"))
        .await;
    assert_eq!(status, 409, "no results before the job is processed");

    let (status, info) = org
        .bulk(
            Method::PATCH,
            &format!("/jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["state"], "UploadComplete");
    assert_eq!(
        org.emulator.count("Contact"),
        0,
        "nothing written before processing"
    );
    let (_, info) = org
        .bulk(Method::GET, &format!("/jobs/ingest/{id}"), None)
        .await;
    assert_eq!(info["state"], "InProgress");
    let (_, info) = org
        .bulk(Method::GET, &format!("/jobs/ingest/{id}"), None)
        .await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(info["numberRecordsFailed"], 2);
    assert_eq!(org.emulator.count("Contact"), 2);

    let (status, headers, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/successfulResults"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv");
    assert!(
        text.starts_with("\"sf__Id\",\"sf__Created\",\"FirstName\",\"LastName\",\"Email\"\n"),
        "{text}"
    );
    let ok = rows(&text, b',');
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[1][1], "true");
    assert_eq!(ok[1][2..], ["Lorelai", "Gilmore", "lorelai@example.org"]);
    assert!(ok[1][0].starts_with("003"), "{:?}", ok[1]);
    assert_eq!(ok[2][2..], ["Sookie", "St. James", ""]);

    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/failedResults"))
        .await;
    let failed = rows(&text, b',');
    assert_eq!(
        failed[0],
        ["sf__Id", "sf__Error", "FirstName", "LastName", "Email"]
    );
    assert_eq!(failed[1][0], "");
    assert_eq!(
        failed[1][1],
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    );
    assert_eq!(failed[1][2], "Rory");
    assert_eq!(
        failed[2][1],
        "INVALID_EMAIL_ADDRESS:Email: invalid email address: not-an-email:Email --"
    );
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/unprocessedrecords"))
        .await;
    assert_eq!(rows(&text, b','), [["FirstName", "LastName", "Email"]]);

    let (status, list) = org.bulk(Method::GET, "/jobs/ingest", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["done"], true);
    assert_eq!(list["records"][0]["id"], id.as_str());

    let before = org.emulator.api_usage();
    let (status, _) = org
        .bulk(Method::DELETE, &format!("/jobs/ingest/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = org
        .bulk(Method::GET, &format!("/jobs/ingest/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        org.emulator.api_usage(),
        before + 2,
        "every Bulk call is an API call"
    );
}

#[tokio::test]
async fn every_delimiter_and_line_ending_with_quoted_delimiters_quotes_and_newlines() {
    let org = org(Options::default()).await;
    let delimiters = [
        ("COMMA", ','),
        ("TAB", '\t'),
        ("PIPE", '|'),
        ("SEMICOLON", ';'),
        ("CARET", '^'),
        ("BACKQUOTE", '`'),
    ];
    for (name, d) in delimiters {
        for crlf in [false, true] {
            let eol = if crlf { "\r\n" } else { "\n" };
            let ext = format!("q-{name}-{crlf}");
            let title = format!("VP{d} \"Sales\"");
            let description = format!("line one{eol}line two{d}with delimiter");
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let csv = format!(
                "{EXTERNAL_ID_FIELD}{d}LastName{d}Title{d}MailingStreet{eol}{ext}{d}Gilmore{d}{}{d}{}{eol}",
                quote(&title),
                quote(&description)
            );
            let mut job = contact_job("upsert");
            job["columnDelimiter"] = json!(name);
            job["lineEnding"] = json!(if crlf { "CRLF" } else { "LF" });
            let id = org.load(job, &csv).await;
            let (info, _) = org.finish("ingest", &id).await;
            assert_eq!(info["state"], "JobComplete", "{name} {crlf}: {info}");
            assert_eq!(info["columnDelimiter"], name);
            assert_eq!(info["numberRecordsFailed"], 0, "{name} {crlf}");
            let record = org
                .emulator
                .record_by_external_id("Contact", &ext)
                .expect("saved");
            assert_eq!(record["Title"], title.as_str(), "{name} {crlf}");
            assert_eq!(
                record["MailingStreet"],
                description.as_str(),
                "{name} {crlf}"
            );
            // The results come back in the job's own format.
            let (_, _, text) = org
                .get_csv(&format!("/jobs/ingest/{id}/successfulResults"))
                .await;
            assert!(
                text.contains(&format!("\"sf__Id\"{d}\"sf__Created\"{d}")),
                "{text}"
            );
            assert!(text.ends_with(eol), "{name}: {text:?}");
            let ok = rows(&text, d as u8);
            assert_eq!(ok[1][4], title);
            assert_eq!(ok[1][5], description);
        }
    }
}

#[tokio::test]
async fn upsert_update_and_delete_by_row_with_empty_cells_kept_and_na_cleared() {
    let org = org(Options::default()).await;
    let csv = format!(
        "{EXTERNAL_ID_FIELD},LastName,Title,Email\nu1,Gilmore,Editor,rory@example.org\nu2,Danes,Owner,\nu2,Danes,Twice,\n"
    );
    let id = org.load(contact_job("upsert"), &csv).await;
    let (info, polls) = org.finish("ingest", &id).await;
    assert_eq!(polls, 2, "UploadComplete, then InProgress, then done");
    assert_eq!(info["externalIdFieldName"], EXTERNAL_ID_FIELD);
    assert_eq!(info["numberRecordsFailed"], 1);
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/failedResults"))
        .await;
    let failed = rows(&text, b',');
    assert_eq!(
        failed[1][1],
        format!("DUPLICATE_EXTERNAL_ID:Duplicate external id specified: u2:{EXTERNAL_ID_FIELD} --")
    );

    // Empty: no change. `#N/A`: cleared. Existing: updated, not created.
    let csv = format!("{EXTERNAL_ID_FIELD},LastName,Title,Email\nu1,,Chief,#N/A\nu3,Hastings,,\n");
    let id = org.load(contact_job("upsert"), &csv).await;
    org.finish("ingest", &id).await;
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/successfulResults"))
        .await;
    let ok = rows(&text, b',');
    assert_eq!((ok[1][1].as_str(), ok[2][1].as_str()), ("false", "true"));
    let u1 = org
        .emulator
        .record_by_external_id("Contact", "u1")
        .expect("u1");
    assert_eq!(u1["LastName"], "Gilmore");
    assert_eq!(u1["Title"], "Chief");
    assert_eq!(u1["Email"], Json::Null);
    let u1_id = u1["Id"].as_str().expect("id").to_owned();

    // Update by Id, a malformed id failing alone.
    let id = org
        .load(
            contact_job("update"),
            &format!("Id,Title\n{u1_id},Publisher\n001nope,X\n"),
        )
        .await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(
        (
            info["numberRecordsProcessed"].clone(),
            info["numberRecordsFailed"].clone()
        ),
        (json!(2), json!(1))
    );
    let u1 = org
        .emulator
        .record_by_external_id("Contact", "u1")
        .expect("u1");
    assert_eq!(u1["Title"], "Publisher");

    // A parent named by its external id in the header.
    let id = org
        .load(
            json!({"object": "Account", "operation": "insert"}),
            &format!("Name,{EXTERNAL_ID_FIELD}\nStars Hollow Gazette,a1\n"),
        )
        .await;
    org.finish("ingest", &id).await;
    let id = org
        .load(
            contact_job("upsert"),
            &format!("{EXTERNAL_ID_FIELD},Account.{EXTERNAL_ID_FIELD}\nu3,a1\n"),
        )
        .await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let account = org
        .emulator
        .record_by_external_id("Account", "a1")
        .expect("a1");
    let u3 = org
        .emulator
        .record_by_external_id("Contact", "u3")
        .expect("u3");
    assert_eq!(u3["AccountId"], account["Id"]);

    // Delete by Id.
    let id = org
        .load(contact_job("delete"), &format!("Id\n{u1_id}\n"))
        .await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(info["numberRecordsProcessed"], 1);
    assert!(
        org.emulator
            .record_by_external_id("Contact", "u1")
            .is_none()
    );
    assert_eq!(org.emulator.count("Contact"), 2);
}

#[tokio::test]
async fn bad_jobs_and_bad_data_are_refused_as_salesforce_refuses_them() {
    let org = org(Options::default()).await;
    let (status, body) = org
        .bulk(
            Method::POST,
            "/jobs/ingest",
            Some(json!({"object": "Contact", "operation": "upsert"})),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("INVALIDJOB"))
    );
    let (status, _) = org
        .bulk(
            Method::POST,
            "/jobs/ingest",
            Some(json!({"object": "Nope__c", "operation": "insert"})),
        )
        .await;
    assert_eq!(status, 400);
    let mut job = contact_job("insert");
    job["columnDelimiter"] = json!("COLON");
    let (status, _) = org.bulk(Method::POST, "/jobs/ingest", Some(job)).await;
    assert_eq!(status, 400);

    // Data whose lines end otherwise than the job says: the job fails.
    let id = org
        .load(contact_job("insert"), "LastName\r\nGilmore\r\n")
        .await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"
    );
    // A column the object lacks: the job fails, every row unprocessed.
    let id = org
        .load(contact_job("insert"), "LastName,Nope__c\nGilmore,x\n")
        .await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Field name not found : Nope__c"
    );
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/unprocessedrecords"))
        .await;
    assert_eq!(
        rows(&text, b','),
        [["LastName", "Nope__c"], ["Gilmore", "x"]]
    );
    assert_eq!(org.emulator.count("Contact"), 0);

    // Closing twice, uploading to a closed job, aborting.
    let (status, _) = org
        .bulk(
            Method::PATCH,
            &format!("/jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = org.put_csv(&id, "LastName\nX\n").await;
    assert_eq!(status, 409);
    let (_, info) = org
        .bulk(Method::POST, "/jobs/ingest", Some(contact_job("insert")))
        .await;
    let open = info["id"].as_str().expect("id").to_owned();
    let (status, _) = org
        .bulk(Method::DELETE, &format!("/jobs/ingest/{open}"), None)
        .await;
    assert_eq!(
        status, 409,
        "an open job is closed or aborted before it is deleted"
    );
    org.put_csv(&open, "LastName\nGilmore\n").await;
    let (_, info) = org
        .bulk(
            Method::PATCH,
            &format!("/jobs/ingest/{open}"),
            Some(json!({"state": "Aborted"})),
        )
        .await;
    assert_eq!(info["state"], "Aborted");
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{open}/unprocessedrecords"))
        .await;
    assert_eq!(rows(&text, b','), [["LastName"], ["Gilmore"]]);
    assert_eq!(org.emulator.count("Contact"), 0);

    // Not CSV; more than 100 MB.
    let resp = org
        .http
        .put(org.url(&format!("/jobs/ingest/{open}/batches")))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 415);
    let (_, info) = org
        .bulk(Method::POST, "/jobs/ingest", Some(contact_job("insert")))
        .await;
    let big = info["id"].as_str().expect("id").to_owned();
    let (status, body) = org
        .put_csv(&big, vec![b'x'; bulk::MAX_UPLOAD_BYTES + 1])
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body[0]["errorCode"], "EXCEEDED_MAX_SIZE_REQUEST");
}

fn insert_csv(n: usize) -> String {
    let mut csv = format!("{EXTERNAL_ID_FIELD},LastName\n");
    for i in 0..n {
        csv.push_str(&format!("f{i},Last{i}\n"));
    }
    csv
}

#[tokio::test]
async fn partial_fails_rows_with_unable_to_lock_row_and_saves_the_rest() {
    let org = org(Options {
        faults: Faults::parse("partial:30,seed:4").expect("profile"),
        ..Options::default()
    })
    .await;
    let id = org.load(contact_job("upsert"), &insert_csv(50)).await;
    let (info, _) = org.finish("ingest", &id).await;
    assert_eq!(info["state"], "JobComplete");
    let failed = info["numberRecordsFailed"].as_u64().expect("n") as usize;
    assert!((5..=30).contains(&failed), "{failed}");
    let (_, _, text) = org
        .get_csv(&format!("/jobs/ingest/{id}/failedResults"))
        .await;
    for row in rows(&text, b',').iter().skip(1) {
        assert_eq!(
            row[1],
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records:--"
        );
        assert!(
            org.emulator
                .record_by_external_id("Contact", &row[2])
                .is_none()
        );
    }
    assert_eq!(org.emulator.count("Contact"), 50 - failed);
}

#[tokio::test]
async fn bulkcut_fails_a_job_part_way_and_bulkfail_before_any_row() {
    let org_cut = org(Options {
        faults: Faults::parse("bulkcut:100").expect("profile"),
        ..Options::default()
    })
    .await;
    let id = org_cut.load(contact_job("upsert"), &insert_csv(7)).await;
    let (info, _) = org_cut.finish("ingest", &id).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(info["retries"], 20);
    assert!(info["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    let (_, _, text) = org_cut
        .get_csv(&format!("/jobs/ingest/{id}/unprocessedrecords"))
        .await;
    let unprocessed = rows(&text, b',');
    assert_eq!(unprocessed.len(), 1 + 3);
    assert_eq!(unprocessed[1], ["f4", "Last4"]);
    let (_, _, text) = org_cut
        .get_csv(&format!("/jobs/ingest/{id}/successfulResults"))
        .await;
    assert_eq!(rows(&text, b',').len(), 1 + 4);
    assert_eq!(org_cut.emulator.count("Contact"), 4);

    let org_fail = org(Options {
        faults: Faults::parse("bulkfail:100").expect("profile"),
        ..Options::default()
    })
    .await;
    let id = org_fail.load(contact_job("upsert"), &insert_csv(7)).await;
    let (info, _) = org_fail.finish("ingest", &id).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["numberRecordsProcessed"], 0);
    let (_, _, text) = org_fail
        .get_csv(&format!("/jobs/ingest/{id}/unprocessedrecords"))
        .await;
    assert_eq!(rows(&text, b',').len(), 1 + 7);
    assert_eq!(org_fail.emulator.count("Contact"), 0);
}

#[tokio::test]
async fn polling_meets_the_injected_429s_and_they_are_not_counted() {
    let org = org(Options {
        faults: Faults {
            throttle_every: Some(3),
            ..Faults::default()
        },
        ..Options::default()
    })
    .await;
    // The token was request 1.
    let (status, info) = org
        .bulk(Method::POST, "/jobs/ingest", Some(contact_job("insert")))
        .await;
    assert_eq!(status, 200, "{info}");
    let id = info["id"].as_str().expect("id").to_owned();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = org
            .bulk(Method::GET, &format!("/jobs/ingest/{id}"), None)
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [429, 200, 200, 429, 200, 200]);
    assert_eq!(
        org.emulator.api_usage(),
        1 + 4,
        "throttled calls are not API calls"
    );
}

#[tokio::test]
async fn a_query_job_completes_then_pages_by_locator_in_its_own_format() {
    let org = org(Options::default()).await;
    let id = org
        .load(
            json!({"object": "Account", "operation": "insert"}),
            &format!("Name,{EXTERNAL_ID_FIELD}\n\"Doose's, Market\",a1\n"),
        )
        .await;
    org.finish("ingest", &id).await;
    let mut csv = format!("{EXTERNAL_ID_FIELD},LastName,Account.{EXTERNAL_ID_FIELD}\n");
    for i in 0..25 {
        csv.push_str(&format!("q{i:02},Last{i},a1\n"));
    }
    let id = org.load(contact_job("upsert"), &csv).await;
    org.finish("ingest", &id).await;

    let (status, info) = org
        .bulk(
            Method::POST,
            "/jobs/query",
            Some(json!({"operation": "query", "query": format!("SELECT {EXTERNAL_ID_FIELD}, Id, Account.Name FROM Contact ORDER BY {EXTERNAL_ID_FIELD}"), "columnDelimiter": "TAB", "lineEnding": "CRLF"})),
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["state"], "UploadComplete");
    let id = info["id"].as_str().expect("id").to_owned();
    let (status, _, text) = org.get_csv(&format!("/jobs/query/{id}/results")).await;
    assert_eq!(status, 412);
    let body: Json = serde_json::from_str(&text).expect("json");
    assert_eq!(body[0]["errorCode"], "JOB_NOT_COMPLETE");
    assert_eq!(
        body[0]["message"],
        "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: UPLOAD_COMPLETE"
    );
    let (info, polls) = org.finish("query", &id).await;
    assert_eq!((info["state"].as_str(), polls), (Some("JobComplete"), 2));
    assert_eq!(info["numberRecordsProcessed"], 25);

    let mut locator: Option<String> = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let path = match &locator {
            None => format!("/jobs/query/{id}/results?maxRecords=10"),
            Some(l) => format!("/jobs/query/{id}/results?maxRecords=10&locator={l}"),
        };
        let (status, headers, text) = org.get_csv(&path).await;
        assert_eq!(status, 200, "{text}");
        pages += 1;
        assert!(text.ends_with("\r\n"));
        let page = rows(&text, b'\t');
        assert_eq!(
            page[0],
            [EXTERNAL_ID_FIELD, "Id", "Account.Name"],
            "every page has the header"
        );
        assert_eq!(
            headers["sforce-numberofrecords"],
            (page.len() - 1).to_string().as_str()
        );
        all.extend(page.into_iter().skip(1));
        let next = headers["sforce-locator"].to_str().expect("text").to_owned();
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 25);
    assert_eq!(all[0][0], "q00");
    assert_eq!(all[24][0], "q24");
    assert!(all[0][1].starts_with("003"));
    assert_eq!(all[0][2], "Doose's, Market");

    // The same version that created it, a locator it handed out.
    let resp = org
        .http
        .get(format!(
            "{}/services/data/v61.0/jobs/query/{id}/results",
            org.running.base_url
        ))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 409);
    let (status, _, _) = org
        .get_csv(&format!("/jobs/query/{id}/results?locator=bogus"))
        .await;
    assert_eq!(status, 400);
    // Aggregates and bad SOQL are refused at creation.
    let (status, _) = org
        .bulk(
            Method::POST,
            "/jobs/query",
            Some(json!({"operation": "query", "query": "SELECT COUNT() FROM Contact"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = org
        .bulk(
            Method::POST,
            "/jobs/query",
            Some(json!({"operation": "query", "query": "SELECT Nope FROM Contact"})),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("INVALID_FIELD"))
    );
    // A statement longer than SOQL's 100,000 characters, however valid.
    let ids: Vec<String> = (0..8_000).map(|i| format!("'{i:0>10}'")).collect();
    let long = format!(
        "SELECT Id FROM Contact WHERE Ferry_Source_Id__c IN ({})",
        ids.join(",")
    );
    assert!(long.len() > 100_000);
    let (status, body) = org
        .bulk(
            Method::POST,
            "/jobs/query",
            Some(json!({"operation": "query", "query": long})),
        )
        .await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str()),
        (400, Some("MALFORMED_QUERY"))
    );
    let (status, list) = org.bulk(Method::GET, "/jobs/query", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1));
    let (status, _) = org
        .bulk(Method::DELETE, &format!("/jobs/query/{id}"), None)
        .await;
    assert_eq!(status, 204);
}
