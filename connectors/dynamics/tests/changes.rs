//! The Dataverse source's incremental reads (`ferry sync`) against the sandbox's Dataverse
//! emulator, over real HTTP on loopback: `modifiedon ge <watermark>` ordered by `modifiedon`
//! then primary key, paged by next link; the sync point from the environment's `Date`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{config, read_all, start};
use ferry_core::{ObjectType, Record, Source, Watermark, field};
use ferry_dynamics::{DynamicsConfig, DynamicsSource};
use ferry_sandbox::dynamics::{CLIENT_ID, CLIENT_SECRET, Emulator, Options, TENANT_ID};
use ferry_sandbox::seed::{Mess, generate};
use serde_json::{Value as Json, json};

const OBJECTS: [(ObjectType, &str, &str); 4] = [
    (ObjectType::COMPANIES, "account", "accounts"),
    (ObjectType::CONTACTS, "contact", "contacts"),
    (ObjectType::DEALS, "opportunity", "opportunities"),
    (ObjectType::NOTES, "annotation", "annotations"),
];

fn source(base_url: &str, page_size: u32) -> DynamicsSource {
    let c = DynamicsConfig {
        page_size: Some(page_size),
        ..config(base_url)
    };
    DynamicsSource::new(c, "source").expect("source")
}

/// Every record `source` reads of `object` changed since `since`, from `cursor` on, at most
/// `max_pages` pages; the pages read and the cursor left.
async fn read_changes(
    source: &DynamicsSource,
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
            .expect("a page of changes");
        let page = (fetched.records)().expect("records");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        cursor = page.next;
        if cursor.is_none() {
            return (records, pages, None);
        }
    }
    (records, max_pages, cursor)
}

/// An application's own calls to the environment, as a user's edits would arrive.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(base: &str) -> Api {
        let http = reqwest::Client::new();
        let token: Json = http
            .post(format!("{base}/{TENANT_ID}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("scope", &format!("{base}/.default")),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        Api {
            http,
            base: base.to_owned(),
            token: token["access_token"].as_str().expect("token").to_owned(),
        }
    }

    async fn patch(&self, path: &str, body: Json) {
        let answer = self
            .http
            .patch(format!("{}/api/data/v9.2/{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("patch");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
}

fn by_id(records: Vec<Record>) -> HashMap<String, Record> {
    records
        .into_iter()
        .map(|r| (r.source_id.clone(), r))
        .collect()
}

async fn seeded(contacts: usize) -> (Emulator, ferry_sandbox::Running) {
    let (emulator, running) = start(Options::default()).await;
    emulator.seed(&generate(contacts, 9, &Mess::none()));
    (emulator, running)
}

#[tokio::test]
async fn reads_only_the_changed_records_of_every_object_as_a_full_read_does() {
    let (emulator, running) = seeded(60).await;
    let source = source(&running.base_url, 7);
    let api = Api::new(&running.base_url).await;

    // The sync point: the environment's clock less five minutes, to the second.
    let point = source
        .sync_point(ObjectType::COMPANIES)
        .await
        .expect("sync point");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert_eq!(point.at_ms % 1000, 0, "whole seconds");
    assert!(
        (now - 300_000 - point.at_ms).abs() < 5_000,
        "{point:?}: five minutes before the environment's clock"
    );
    // Nothing changed since: every object reads nothing, in one request.
    for (object, _, _) in OBJECTS {
        let (records, pages, _) = read_changes(&source, object, &point, None, 5).await;
        assert_eq!((records.len(), pages), (0, 1), "{object}");
    }

    // An hour on: one account's phone, one contact's account (a lookup), one deal's contact
    // (the deal↔contact link is the opportunity's own `parentcontactid`), one note's text.
    emulator.advance_clock(Duration::from_secs(3_600));
    let (companies, _) = read_all(&source, ObjectType::COMPANIES).await;
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    let (deals, _) = read_all(&source, ObjectType::DEALS).await;
    let (notes, _) = read_all(&source, ObjectType::NOTES).await;
    let account = &companies[1].source_id;
    let contact = &contacts[2].source_id;
    let links = |r: &Record| format!("{:?}", r.get(field::CONTACTS));
    let deal = deals
        .iter()
        .find(|d| !links(d).contains(contact.as_str()))
        .expect("a deal")
        .source_id
        .clone();
    let note = &notes[3].source_id;
    api.patch(
        &format!("accounts({account})"),
        json!({"telephone1": "+1 555 0199"}),
    )
    .await;
    api.patch(
        &format!("contacts({contact})"),
        json!({"parentcustomerid_account@odata.bind": format!("/accounts({})", companies[4].source_id)}),
    )
    .await;
    api.patch(
        &format!("opportunities({deal})"),
        json!({"parentcontactid@odata.bind": format!("/contacts({contact})")}),
    )
    .await;
    api.patch(
        &format!("annotations({note})"),
        json!({"notetext": "Synced again"}),
    )
    .await;
    let changed = [account.clone(), contact.clone(), deal.clone(), note.clone()];

    for ((object, _, _), id) in OBJECTS.into_iter().zip(&changed) {
        let (records, pages, _) = read_changes(&source, object, &point, None, 5).await;
        let ids: Vec<&str> = records.iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!((ids, pages), (vec![id.as_str()], 1), "{object}");
        // The same record a full read makes now: fields, links, owner, stage, currency.
        let (all, _) = read_all(&source, object).await;
        let full = by_id(all);
        assert_eq!(records[0], full[id], "{object}");
    }
    let (deal_read, _, _) = read_changes(&source, ObjectType::DEALS, &point, None, 1).await;
    assert!(
        links(&deal_read[0]).contains(contact.as_str()),
        "the deal's new contact is read"
    );

    // The next sync point is after the changes: from there nothing is read.
    emulator.advance_clock(Duration::from_secs(600));
    let next = source
        .sync_point(ObjectType::DEALS)
        .await
        .expect("sync point");
    assert!(next.at_ms > point.at_ms + 3_600_000);
    for (object, _, _) in OBJECTS {
        let (records, _, _) = read_changes(&source, object, &next, None, 5).await;
        assert!(records.is_empty(), "{object}");
    }
}

#[tokio::test]
async fn ties_at_the_watermark_are_read_across_pages_and_resume_from_a_cursor() {
    let (emulator, running) = seeded(60).await;
    let source = source(&running.base_url, 3);
    emulator.advance_clock(Duration::from_secs(3_600));
    let point = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    // Five minutes on (the overlap): eight contacts and five deals stamped at one instant,
    // as a bulk update leaves them, then two contacts more, a second apart.
    emulator.advance_clock(Duration::from_secs(300));
    let tied = emulator.bulk_stamp("contact", 8);
    let tied_deals = emulator.bulk_stamp("opportunity", 5);
    assert_eq!((tied.len(), tied_deals.len()), (8, 5));
    let api = Api::new(&running.base_url).await;
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    let mut later = Vec::new();
    for c in &contacts[20..22] {
        emulator.advance_clock(Duration::from_secs(1));
        api.patch(
            &format!("contacts({})", c.source_id),
            json!({"jobtitle": "Later"}),
        )
        .await;
        later.push(c.source_id.clone());
    }

    // Ten changes, three a page: four pages, the ties in key order, then the later two.
    let (records, pages, _) = read_changes(&source, ObjectType::CONTACTS, &point, None, 10).await;
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut want = tied.clone();
    want.extend(later.iter().cloned());
    assert_eq!(
        (ids, pages),
        (want.clone(), 4),
        "each change once, in modifiedon then key order"
    );

    // A watermark exactly at the tied instant reads every tie (`ge`); one second later, none.
    let stamped = records[0]
        .get(field::UPDATED_AT)
        .and_then(|v| match v {
            ferry_core::Value::Timestamp(ms) => Some(*ms),
            _ => None,
        })
        .expect("modifiedon as the updated time");
    let at = Watermark::at(stamped - stamped.rem_euclid(1000));
    let (at_tie, _, _) = read_changes(&source, ObjectType::CONTACTS, &at, None, 10).await;
    assert_eq!(at_tie.len(), 10, "the boundary is inclusive");
    let after = Watermark::at(at.at_ms + 1_000);
    let (past_tie, _, _) = read_changes(&source, ObjectType::CONTACTS, &after, None, 10).await;
    let past: Vec<&str> = past_tie.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(past, later.iter().map(String::as_str).collect::<Vec<_>>());

    // A read stopped after two pages resumes from its cursor, in a new process (a new
    // source), with nothing read twice or lost, across the ties.
    let (first, _, cursor) = read_changes(&source, ObjectType::CONTACTS, &point, None, 2).await;
    let cursor = cursor.expect("a cursor after two of four pages");
    let resumed = self::source(&running.base_url, 3);
    let (rest, pages, _) =
        read_changes(&resumed, ObjectType::CONTACTS, &point, Some(cursor), 10).await;
    assert_eq!(pages, 2);
    let all: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|r| r.source_id.clone())
        .collect();
    assert_eq!(all, want);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len());

    // Deals tie the same way, in pages of three.
    let (deals, pages, _) = read_changes(&source, ObjectType::DEALS, &point, None, 10).await;
    let deal_ids: Vec<String> = deals.iter().map(|r| r.source_id.clone()).collect();
    assert_eq!((deal_ids, pages), (tied_deals, 2));
    // Companies and notes did not change.
    for object in [ObjectType::COMPANIES, ObjectType::NOTES] {
        let (records, _, _) = read_changes(&source, object, &point, None, 10).await;
        assert!(records.is_empty(), "{object}");
    }
}
