//! The Pipedrive source's incremental reads (`ferry sync`) against the sandbox's Pipedrive
//! emulator, over real HTTP on loopback: v2 lists and v1 notes filtered on `update_time`
//! with `updated_since`, in id order with the full read's cursors, records identical to a full
//! read's.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::aged_account;
use ferry_core::{ObjectType, Record, SecretRef, Source, Value, Watermark, field};
use ferry_pipedrive::source::SYNC_OVERLAP;
use ferry_pipedrive::{PipedriveConfig, PipedriveSource};
use ferry_sandbox::pipedrive::TOKEN;
use ferry_sandbox::seed::Mess;
use secrecy::SecretString;
use serde_json::{Value as Json, json};

const OBJECTS: [ObjectType; 4] = [
    ObjectType::COMPANIES,
    ObjectType::CONTACTS,
    ObjectType::DEALS,
    ObjectType::NOTES,
];

fn source(base_url: &str, page_size: u32) -> PipedriveSource {
    let config = PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        page_size: Some(page_size),
        max_retries: Some(2),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    };
    PipedriveSource::new(config, "source").expect("source")
}

/// Every record of `object` a full read gives, by source id.
async fn full_read(source: &PipedriveSource, object: ObjectType) -> BTreeMap<String, Record> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("full read");
        for r in page.records {
            out.insert(r.source_id.clone(), r);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// The records changed since `since` that `source` reads of `object`, from `cursor` on, at
/// most `max_pages` pages: the records, the pages read, and the cursor left if it stopped.
async fn read_changes(
    source: &PipedriveSource,
    object: ObjectType,
    since: &Watermark,
    mut cursor: Option<String>,
    max_pages: usize,
) -> (Vec<Record>, usize, Option<String>) {
    let mut records = Vec::new();
    for pages in 1..=max_pages {
        let fetched = source
            .fetch_changed_page(object, since, cursor.as_deref())
            .await
            .expect("changes");
        let page = (fetched.records)().expect("records");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (records, pages, None),
        }
    }
    (records, max_pages, cursor)
}

fn ids(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r.source_id.parse().expect("a Pipedrive id"))
        .collect()
}

/// `method path` with `body` on the emulator, as an app's call would; the answer's `data`.
async fn call(base_url: &str, method: reqwest::Method, path: &str, body: Json) -> Json {
    let answer = reqwest::Client::new()
        .request(method, format!("{base_url}{path}"))
        .header("x-api-token", TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = answer.status().as_u16();
    let body: Json = answer.json().await.expect("JSON");
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].clone()
}

/// The first `n` ids of a v2 list or v1 notes.
async fn first_ids(base_url: &str, path: &str, n: usize) -> Vec<u64> {
    let data = call(base_url, reqwest::Method::GET, path, Json::Null).await;
    data.as_array()
        .expect("a list")
        .iter()
        .take(n)
        .map(|r| r["id"].as_u64().expect("id"))
        .collect()
}

/// Per object: its list (all records, id order), a record's path, and whether it is a v1
/// note (edited by `PUT` of its content) rather than a v2 record (`PATCH`).
const ROUTES: [(ObjectType, &str, &str); 4] = [
    (
        ObjectType::COMPANIES,
        "/api/v2/organizations?limit=500",
        "/api/v2/organizations",
    ),
    (
        ObjectType::CONTACTS,
        "/api/v2/persons?limit=500",
        "/api/v2/persons",
    ),
    (
        ObjectType::DEALS,
        "/api/v2/deals?limit=500",
        "/api/v2/deals",
    ),
    (ObjectType::NOTES, "/v1/notes?limit=500", "/v1/notes"),
];

fn route(object: ObjectType) -> (&'static str, &'static str) {
    let (_, list, path) = ROUTES
        .iter()
        .find(|(o, _, _)| *o == object)
        .expect("an object of the test");
    (list, path)
}

fn list_path(object: ObjectType) -> &'static str {
    route(object).0
}

/// Changes record `id` of `object` as a user's edit would: a deal's value, a note's content,
/// another's name.
async fn edit(base_url: &str, object: ObjectType, id: u64, n: u64) {
    let path = format!("{}/{id}", route(object).1);
    let (method, body) = if object == ObjectType::NOTES {
        (
            reqwest::Method::PUT,
            json!({"content": format!("<p>Edited {n}</p>")}),
        )
    } else if object == ObjectType::DEALS {
        (reqwest::Method::PATCH, json!({"value": 1000 + n}))
    } else {
        (
            reqwest::Method::PATCH,
            json!({"name": format!("Edited {n}")}),
        )
    };
    call(base_url, method, &path, body).await;
}

/// After a sync point, a few records of every object change (a deal's person among them) and
/// another deal gains a participant: an incremental read gives exactly the changed records,
/// each equal to what a full read now gives of it (fields, references, owners, the deal's
/// contacts with its new person); the participant alone is not seen. With nothing changed
/// since, every object costs one request and reads nothing.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_the_changed_records_are_read_as_a_full_read_gives_them() {
    let (pd, emulator) = aged_account(60, &Mess::none()).await;
    let source = source(&pd.base_url, 500);
    let mut points = Vec::new();
    for object in OBJECTS {
        let point = source.sync_point(object).await.expect("sync point");
        points.push(point);
    }
    emulator.advance_clock(Duration::from_secs(3600));
    let mut changed = Vec::new();
    for object in OBJECTS {
        let edited = first_ids(&pd.base_url, list_path(object), 9).await;
        let edited = vec![edited[2], edited[8]];
        for (n, id) in edited.iter().enumerate() {
            edit(&pd.base_url, object, *id, n as u64).await;
        }
        changed.push(edited);
    }
    // The first changed deal also gets another person; a deal not otherwise changed gains a
    // participant, which does not move its update_time.
    let persons = first_ids(&pd.base_url, list_path(ObjectType::CONTACTS), 60).await;
    let newcomer = *persons.last().expect("persons");
    let deal = changed[2][0];
    call(
        &pd.base_url,
        reqwest::Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        json!({"person_id": newcomer}),
    )
    .await;
    let quiet_deal = first_ids(&pd.base_url, list_path(ObjectType::DEALS), 1).await[0];
    assert!(!changed[2].contains(&quiet_deal));
    call(
        &pd.base_url,
        reqwest::Method::POST,
        &format!("/v1/deals/{quiet_deal}/participants"),
        json!({"person_id": newcomer}),
    )
    .await;
    emulator.advance_clock(Duration::from_secs(3600));

    for ((object, point), edited) in OBJECTS.iter().zip(&points).zip(&changed) {
        let (before, _) = emulator.request_counts();
        let (records, pages, _) = read_changes(&source, *object, point, None, 10).await;
        let (after, _) = emulator.request_counts();
        assert_eq!(
            ids(&records),
            *edited,
            "{object}: exactly the changed records"
        );
        assert_eq!(pages, 1);
        let full = full_read(&source, *object).await;
        for r in &records {
            assert_eq!(
                Some(r),
                full.get(&r.source_id),
                "{object}: as a full read gives it"
            );
        }
        // The list, and a deal's participants per deal read.
        let participants = if *object == ObjectType::DEALS { 2 } else { 0 };
        assert_eq!(after - before, 1 + participants, "{object}: requests");
    }
    let deal_read = full_read(&source, ObjectType::DEALS).await;
    match deal_read[&deal.to_string()].get(field::CONTACTS) {
        Some(Value::Links(links)) => assert!(
            links.iter().any(|l| l.id == newcomer.to_string()),
            "the deal's new person is among its contacts"
        ),
        other => panic!("the deal's contacts: {other:?}"),
    }

    // Nothing changed since a later sync point: one request per object, nothing read.
    for object in OBJECTS {
        let point = source.sync_point(object).await.expect("sync point");
        assert_eq!(
            point.at_ms % 1000,
            0,
            "whole seconds, as Pipedrive's times are"
        );
        let (before, _) = emulator.request_counts();
        let (records, pages, _) = read_changes(&source, object, &point, None, 10).await;
        let (after, _) = emulator.request_counts();
        assert!(records.is_empty(), "{object}: {:?}", ids(&records));
        assert_eq!((pages, after - before), (1, 1), "{object}");
    }
}

/// The sync point is Pipedrive's clock (its `Date` header) less the overlap, not this host's.
#[tokio::test(flavor = "multi_thread")]
async fn the_sync_point_is_pipedrives_clock_less_the_overlap() {
    let (pd, emulator) = aged_account(5, &Mess::none()).await;
    let source = source(&pd.base_url, 500);
    emulator.advance_clock(Duration::from_secs(10 * 365 * 86_400));
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let point = source
        .sync_point(ObjectType::DEALS)
        .await
        .expect("sync point");
    let overlap = SYNC_OVERLAP.as_millis() as i64;
    let vendor = host + 11 * 365 * 86_400_000;
    assert!(
        (vendor - overlap - 5_000..=vendor - overlap + 5_000).contains(&point.at_ms),
        "{} vs {}",
        point.to_rfc3339(),
        Watermark::at(vendor - overlap).to_rfc3339()
    );
    assert_eq!(point.after_id, None);
}

/// Records tied on the watermark's second are read: `updated_since` includes its bound, and a
/// watermark inside a second reads that whole second (Pipedrive's times are whole seconds);
/// a watermark a second later leaves them out.
#[tokio::test(flavor = "multi_thread")]
async fn records_at_exactly_the_watermark_are_read() {
    let (pd, emulator) = aged_account(20, &Mess::none()).await;
    let source = source(&pd.base_url, 500);
    emulator.advance_clock(Duration::from_secs(3600));
    let persons = first_ids(&pd.base_url, list_path(ObjectType::CONTACTS), 6).await;
    for (n, id) in persons.iter().enumerate() {
        edit(&pd.base_url, ObjectType::CONTACTS, *id, n as u64).await;
    }
    let mut times: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for id in &persons {
        let person = call(
            &pd.base_url,
            reqwest::Method::GET,
            &format!("/api/v2/persons/{id}"),
            Json::Null,
        )
        .await;
        let at = ferry_core::model::parse_timestamp(person["update_time"].as_str().expect("time"))
            .expect("RFC 3339");
        times.entry(at).or_default().push(*id);
    }
    // The earliest second the edits were stamped in: every edit at or after it.
    let (&first, _) = times.iter().next().expect("edits");
    for since in [Watermark::at(first), Watermark::at(first + 999)] {
        let (records, _, _) = read_changes(&source, ObjectType::CONTACTS, &since, None, 10).await;
        assert_eq!(ids(&records), persons, "at {}", since.to_rfc3339());
    }
    let (&last, tied) = times.iter().next_back().expect("edits");
    let (records, _, _) = read_changes(
        &source,
        ObjectType::CONTACTS,
        &Watermark::at(last),
        None,
        10,
    )
    .await;
    assert_eq!(ids(&records), *tied, "the last second's edits, every one");
    let (records, _, _) = read_changes(
        &source,
        ObjectType::CONTACTS,
        &Watermark::at(last + 1000),
        None,
        10,
    )
    .await;
    assert!(records.is_empty(), "a second past every edit");
}

/// Many changes page by the full read's cursors (v2) and offsets (notes), each record once, in
/// id order; a read stopped after two pages resumes from its cursor in a new source and reads
/// exactly the rest.
#[tokio::test(flavor = "multi_thread")]
async fn many_changes_page_and_a_read_resumes_from_its_cursor() {
    let (pd, emulator) = aged_account(400, &Mess::none()).await;
    let source_of = || source(&pd.base_url, 7);
    let source = source_of();
    let mut points = Vec::new();
    for object in OBJECTS {
        points.push(source.sync_point(object).await.expect("sync point"));
    }
    emulator.advance_clock(Duration::from_secs(3600));
    let mut changed = Vec::new();
    for object in OBJECTS {
        let all = first_ids(&pd.base_url, list_path(object), 500).await;
        // Every third record, 23 at most: more than three pages of seven.
        let edited: Vec<u64> = all.iter().copied().step_by(3).take(23).collect();
        assert!(edited.len() > 21, "{object}: {}", edited.len());
        for (n, id) in edited.iter().enumerate() {
            edit(&pd.base_url, object, *id, n as u64).await;
        }
        changed.push(edited);
    }
    for ((object, point), edited) in OBJECTS.iter().zip(&points).zip(&changed) {
        let (records, pages, _) = read_changes(&source, *object, point, None, 100).await;
        assert_eq!(ids(&records), *edited, "{object}: each once, in id order");
        assert!(pages >= 4, "{object}: {pages} pages");

        let (head, pages, cursor) = read_changes(&source, *object, point, None, 2).await;
        assert_eq!(pages, 2);
        let cursor = cursor.expect("a read stopped after two pages has a cursor");
        let resumed = source_of();
        let (tail, _, left) = read_changes(&resumed, *object, point, Some(cursor), 100).await;
        assert_eq!(left, None);
        let mut both = ids(&head);
        both.extend(ids(&tail));
        assert_eq!(both, *edited, "{object}: resumed, the rest exactly");
        let unique: HashSet<u64> = both.iter().copied().collect();
        assert_eq!(unique.len(), both.len());
    }
}
