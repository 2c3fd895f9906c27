//! The Pipedrive source's full reads in `update_time` windows read side by side
//! (`read_windows`), against the sandbox's Pipedrive emulator over real HTTP on loopback: the
//! same records as one cursor, each once; a resume continues every window; records changed or
//! created during the read are read once each.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::aged_account;
use ferry_core::fields::{FieldBinding, VendorField};
use ferry_core::{ObjectType, Record, SecretRef, Source, Value, field};
use ferry_pipedrive::{PipedriveConfig, PipedriveSource};
use ferry_sandbox::pipedrive::TOKEN;
use ferry_sandbox::seed::Mess;
use secrecy::SecretString;
use serde_json::{Value as Json, json};

/// A source reading `read_windows` windows side by side, in pages of `page_size`, with the
/// seeded custom fields of persons mapped.
async fn source(base_url: &str, read_windows: usize, page_size: u32) -> PipedriveSource {
    let config = PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        page_size: Some(page_size),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        read_windows: Some(read_windows),
        max_retries: Some(2),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    };
    let source = PipedriveSource::new(config, "source").expect("source");
    let fields = source
        .describe(ObjectType::CONTACTS)
        .await
        .expect("describe");
    let bind = |canonical: &'static str, label: &str| {
        let f: &VendorField = fields.iter().find(|f| f.label == label).expect(label);
        FieldBinding::new(
            canonical,
            f.name.clone(),
            f.kind.canonical_type().expect("kind"),
        )
    };
    source
        .map_fields(
            ObjectType::CONTACTS,
            &[
                bind("favourite_colour", "Favourite Colour"),
                bind("loyalty_points", "Loyalty Points"),
            ],
        )
        .expect("map");
    source
}

/// Reads `object` from `cursor` on, at most `max_pages` pages: the records in the order read,
/// the pages read, and the cursor left if it stopped.
async fn read(
    source: &PipedriveSource,
    object: ObjectType,
    mut cursor: Option<String>,
    max_pages: usize,
) -> (Vec<Record>, usize, Option<String>) {
    let mut records = Vec::new();
    for pages in 1..=max_pages {
        let fetched = source
            .fetch_page(object, cursor.as_deref())
            .await
            .expect("page");
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

/// Every person, read by one cursor in pages of 500: what a windowed read must match.
async fn read_by_one_cursor(base_url: &str) -> (Vec<Record>, usize, Option<String>) {
    read(
        &source(base_url, 1, 500).await,
        ObjectType::CONTACTS,
        None,
        100,
    )
    .await
}

/// The records by id, refusing a repeat.
fn by_id(records: Vec<Record>) -> BTreeMap<u64, Record> {
    let mut out = BTreeMap::new();
    for r in records {
        let id = r.source_id.parse().expect("a Pipedrive id");
        assert!(out.insert(id, r).is_none(), "{id} read twice");
    }
    out
}

/// The windows a windowed read's cursor holds: `(since, until, cursor)`.
fn windows(cursor: &str) -> Vec<(Json, Json, Json)> {
    let json: Json =
        serde_json::from_str(cursor.strip_prefix("windows:").expect("windowed")).expect("JSON");
    json.as_array()
        .expect("a list")
        .iter()
        .map(|w| (w["s"].clone(), w["u"].clone(), w["c"].clone()))
        .collect()
}

/// The ids of the pages a windowed read at `cursor` holds in flight, asked again of the
/// emulator: the page at the cursor of each of the first `slots` readable windows.
async fn held_page_ids(base_url: &str, cursor: &str, slots: usize, page_size: u32) -> HashSet<u64> {
    let all = windows(cursor);
    let closed: Vec<_> = all
        .iter()
        .filter(|(_, u, _)| !u.is_null())
        .cloned()
        .collect();
    let readable = if closed.is_empty() { all } else { closed };
    let time = |ms: &Json| ms.as_i64().map(ferry_core::model::format_timestamp);
    let mut ids = HashSet::new();
    for (since, until, at) in readable.into_iter().take(slots) {
        let mut query = vec![("limit", page_size.to_string())];
        query.extend(time(&since).map(|t| ("updated_since", t)));
        query.extend(time(&until).map(|t| ("updated_until", t)));
        query.extend(at.as_str().map(|c| ("cursor", c.to_owned())));
        let answer: Json = reqwest::Client::new()
            .get(format!("{base_url}/api/v2/persons"))
            .header("x-api-token", TOKEN)
            .query(&query)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        for person in answer["data"].as_array().expect("a list") {
            ids.insert(person["id"].as_u64().expect("an id"));
        }
    }
    ids
}

/// `PATCH /api/v2/persons/{id}` with `body`, as another app's edit.
async fn patch_person(base_url: &str, id: u64, body: Json) {
    let answer = reqwest::Client::new()
        .patch(format!("{base_url}/api/v2/persons/{id}"))
        .header("x-api-token", TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 200);
}

#[tokio::test]
async fn a_windowed_read_returns_what_one_cursor_does_each_record_once() {
    let (running, emulator) = aged_account(5_000, &Mess::default()).await;
    let one = source(&running.base_url, 1, 500).await;
    let windowed = source(&running.base_url, 8, 500).await;
    for object in [
        ObjectType::CONTACTS,
        ObjectType::COMPANIES,
        ObjectType::DEALS,
    ] {
        let (plain, plain_pages, _) = read(&one, object, None, 1_000).await;
        let (read, pages, _) = read(&windowed, object, None, 1_000).await;
        let live = emulator.count(object.as_str()).expect("counted");
        assert_eq!(plain.len(), live, "{object}");
        assert_eq!(
            by_id(read),
            by_id(plain),
            "{object}: the same canonical records"
        );
        if object == ObjectType::CONTACTS {
            // 10 pages one after another; windowed: the first call (1,000 records), then
            // rounds of up to 8 (each of the 8 windows about 500 records: one or two pages),
            // and the open window.
            assert_eq!(plain_pages, 10);
            assert!(pages <= 5, "{pages} pages");
        }
    }
    let (contacts, _, _) = read(&windowed, ObjectType::CONTACTS, None, 1_000).await;
    assert!(
        contacts.iter().any(|r| r.get("favourite_colour").is_some()),
        "mapped custom fields are read"
    );
    assert!(
        contacts.iter().any(|r| r.get(field::COMPANY).is_some()),
        "references are read"
    );
}

#[tokio::test]
async fn a_resumed_windowed_read_continues_every_window() {
    let (running, _emulator) = aged_account(5_000, &Mess::default()).await;
    let first = source(&running.base_url, 4, 100).await;
    let (all, _, _) = read_by_one_cursor(&running.base_url).await;
    let all = by_id(all);
    // The first call and two rounds (4 slots × a page of 100), then a new process resumes.
    let (first_call, _, cursor) = read(&first, ObjectType::CONTACTS, None, 1).await;
    // The 100 records changed first and the 100 changed last.
    assert_eq!(first_call.len(), 200);
    let first_page: HashSet<u64> = by_id(first_call.clone()).keys().copied().collect();
    let (rounds, _, cursor) = read(&first, ObjectType::CONTACTS, cursor, 2).await;
    let before: Vec<Record> = first_call.into_iter().chain(rounds).collect();
    let cursor = cursor.expect("not done");
    let started: Vec<_> = windows(&cursor)
        .into_iter()
        .filter(|(_, _, c)| c.is_string())
        .collect();
    // (The oldest window, the thinnest of the seed's, was read whole in that round.)
    assert!(
        started.len() >= 3,
        "the windows read side by side stand at their own cursors: {started:?}"
    );
    let before = by_id(before);
    let resumed = source(&running.base_url, 4, 100).await;
    let (after, _, _) = read(&resumed, ObjectType::CONTACTS, Some(cursor), 100).await;
    let after = by_id(after);
    for id in after.keys() {
        // The resumed read forgot which ids were returned: the first call's records of the
        // seconds where its pages end are met again in the windows that start or end there
        // (written again, harmless); nothing else is.
        assert!(
            !before.contains_key(id) || first_page.contains(id),
            "{id} read again"
        );
    }
    let read: HashSet<u64> = before.keys().chain(after.keys()).copied().collect();
    assert_eq!(read, all.keys().copied().collect(), "nothing missed");
}

#[tokio::test]
async fn records_changed_during_a_windowed_read_are_read_once() {
    let (running, emulator) = aged_account(5_000, &Mess::default()).await;
    let reader = source(&running.base_url, 4, 100).await;
    let (before, _, cursor) = read(&reader, ObjectType::CONTACTS, None, 4).await;
    let read_already: Vec<u64> = by_id(before.clone()).keys().copied().collect();
    let seen: HashSet<u64> = read_already.iter().copied().collect();
    let (all, _, _) = read_by_one_cursor(&running.base_url).await;
    let not_yet: Vec<u64> = by_id(all)
        .keys()
        .copied()
        .filter(|id| !seen.contains(id))
        .collect();
    assert!(read_already.len() > 500 && not_yet.len() > 1_000);
    // Each window's next page was asked after the call and answered before these changes:
    // its records are read as they were then, as if handed out already.
    settled_requests(&emulator).await;
    let cursor_now = cursor.as_deref().expect("not done");
    let held = held_page_ids(&running.base_url, cursor_now, 4, 100).await;
    assert!(held.len() > 100, "{} held", held.len());
    // Changed while the read runs: some read already, some not; and a person created.
    let changed_read: Vec<u64> = read_already.iter().step_by(97).copied().collect();
    let changed_held: Vec<u64> = not_yet
        .iter()
        .filter(|id| held.contains(id))
        .step_by(17)
        .copied()
        .collect();
    let changed_unread: Vec<u64> = not_yet
        .iter()
        .filter(|id| !held.contains(id))
        .step_by(89)
        .copied()
        .collect();
    assert!(!changed_held.is_empty() && !changed_unread.is_empty());
    for id in changed_read
        .iter()
        .chain(&changed_held)
        .chain(&changed_unread)
    {
        patch_person(&running.base_url, *id, json!({"first_name": "Changed"})).await;
    }
    let created = reqwest::Client::new()
        .post(format!("{}/api/v2/persons", running.base_url))
        .header("x-api-token", TOKEN)
        .json(&json!({"name": "Created Mid-Read"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 200);
    let created: Json = created.json().await.expect("JSON");
    let created = created["data"]["id"].as_u64().expect("an id");

    let (after, _, left) = read(&reader, ObjectType::CONTACTS, cursor, 100).await;
    assert!(left.is_none());
    let before = by_id(before);
    let after = by_id(after);
    for id in after.keys() {
        assert!(!before.contains_key(id), "{id} read twice");
    }
    let first_name = |r: &Record| match r.get(field::FIRST_NAME) {
        Some(Value::Text(t)) => t.clone(),
        _ => String::new(),
    };
    for id in &changed_read {
        // Read before the change, as one cursor would have; the next sync reads the change.
        assert_ne!(first_name(&before[id]), "Changed", "{id}");
    }
    for id in &changed_held {
        // Answered before the change (handed out after it), then met again and skipped.
        assert_ne!(
            first_name(&after[id]),
            "Changed",
            "{id}: the version its page held"
        );
    }
    for id in &changed_unread {
        assert_eq!(first_name(&after[id]), "Changed", "{id}: its later version");
    }
    assert!(
        after.contains_key(&created),
        "a person created mid-read is read"
    );
    assert_eq!(
        before.len() + after.len(),
        not_yet.len() + read_already.len() + 1
    );
}

/// The emulator's request count once it has stopped moving (the requests in flight answered).
async fn settled_requests(emulator: &ferry_sandbox::pipedrive::Emulator) -> u64 {
    let mut last = emulator.request_counts().0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let now = emulator.request_counts().0;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn each_windows_next_page_is_asked_between_calls_and_taken_by_the_next_round() {
    let (running, emulator) = aged_account(5_000, &Mess::default()).await;
    let reader = source(&running.base_url, 4, 100).await;
    let (all, plain_pages, _) = read(
        &source(&running.base_url, 1, 100).await,
        ObjectType::CONTACTS,
        None,
        100,
    )
    .await;

    let start = settled_requests(&emulator).await;
    let (mut records, _, cursor) = read(&reader, ObjectType::CONTACTS, None, 1).await;
    let between = settled_requests(&emulator).await;
    // The first pages sorted by `update_time` either way (the clock from the second's
    // `Date`); and, with no call in progress, the first page of each of the 4 closed windows.
    assert_eq!(
        between - start,
        2 + 4,
        "one page per window asked for the next call"
    );

    let (round, _, cursor) = read(&reader, ObjectType::CONTACTS, cursor, 1).await;
    records.extend(round);
    let after_round = settled_requests(&emulator).await;
    // The round takes the 4 pages asked before it, and each window's next page is asked as
    // its page is in: 4 requests, where asking the held pages again would take 8.
    assert_eq!(
        after_round - between,
        4,
        "the held pages were taken, not asked again"
    );

    let (rest, _, left) = read(&reader, ObjectType::CONTACTS, cursor, 100).await;
    assert!(left.is_none());
    records.extend(rest);
    assert_eq!(
        by_id(records),
        by_id(all),
        "every record once, as one cursor reads them"
    );
    let windowed = settled_requests(&emulator).await - start;
    // One cursor's pages, each of the 5 windows' last page partial (the open one empty), and
    // the first call's pages' records of the seconds they end in read again: nothing asked
    // twice.
    assert!(
        windowed <= plain_pages as u64 + 5 + 1,
        "{windowed} requests, one cursor {plain_pages}"
    );
}

#[tokio::test]
async fn the_first_call_reads_the_oldest_and_newest_pages_a_one_page_object_in_id_order() {
    let (running, emulator) = aged_account(600, &Mess::default()).await;
    let windowed = source(&running.base_url, 8, 500).await;
    let one = source(&running.base_url, 1, 500).await;

    // Organizations fit one page: the list sorted by `update_time` either way, and its first
    // page handed out in id order, as one cursor reads it.
    let start = settled_requests(&emulator).await;
    let (companies, pages, _) = read(&windowed, ObjectType::COMPANIES, None, 10).await;
    assert_eq!(pages, 1);
    assert_eq!(settled_requests(&emulator).await - start, 2);
    let (plain, _, _) = read(&one, ObjectType::COMPANIES, None, 10).await;
    let ids = |records: &[Record]| -> Vec<String> {
        records.iter().map(|r| r.source_id.clone()).collect()
    };
    assert_eq!(
        ids(&companies),
        ids(&plain),
        "the same records in the same order"
    );

    // Persons are a little more than a page: the oldest 500 and the newest 500 overlap, and
    // each record is handed out once.
    let (plain, _, _) = read(&one, ObjectType::CONTACTS, None, 10).await;
    assert!(plain.len() > 500 && plain.len() < 1_000, "{}", plain.len());
    let start = settled_requests(&emulator).await;
    let (first, _, cursor) = read(&windowed, ObjectType::CONTACTS, None, 1).await;
    assert_eq!(first.len(), plain.len(), "both pages hold every person");
    let (rest, _, left) = read(&windowed, ObjectType::CONTACTS, cursor, 10).await;
    assert!(left.is_none());
    assert!(rest.is_empty(), "nothing is read again");
    // The two pages, and the open window's one (empty) page, asked before the call returned.
    assert_eq!(settled_requests(&emulator).await - start, 3);
    assert_eq!(by_id(first.into_iter().chain(rest).collect()), by_id(plain));
}

#[tokio::test]
async fn windows_are_planned_for_the_records_left_between_the_first_two_pages() {
    let (running, emulator) = aged_account(250, &Mess::default()).await;
    let windowed = source(&running.base_url, 8, 100).await;
    let one = source(&running.base_url, 1, 100).await;
    let (plain, plain_pages, _) = read(&one, ObjectType::CONTACTS, None, 10).await;
    assert!(plain.len() > 200 && plain.len() < 300, "{}", plain.len());

    // The oldest 100 and the newest 100 leave about 50 between them, a page: one closed
    // window and the open one, not a window for each of the eight slots.
    let start = settled_requests(&emulator).await;
    let (records, _, left) = read(&windowed, ObjectType::CONTACTS, None, 20).await;
    assert!(left.is_none());
    let requests = settled_requests(&emulator).await - start;
    assert!(
        requests <= plain_pages as u64 + 2,
        "{requests} requests, one cursor {plain_pages}"
    );
    assert_eq!(by_id(records), by_id(plain));
}

#[tokio::test]
async fn a_round_takes_a_page_a_window_left_when_fewer_windows_than_slots_are_left() {
    let (running, _emulator) = aged_account(5_000, &Mess::default()).await;
    let reader = source(&running.base_url, 4, 50).await;
    let (mut records, _, mut cursor) = read(&reader, ObjectType::CONTACTS, None, 1).await;
    let mut fewer = 0;
    while let Some(at) = cursor {
        let all = windows(&at);
        let closed = all.iter().filter(|(_, u, _)| !u.is_null()).count();
        let readable = if closed == 0 { all.len() } else { closed };
        let (round, _, next) = read(&reader, ObjectType::CONTACTS, Some(at), 1).await;
        // A round takes one page a window it may read, up to one a slot.
        assert!(
            round.len() <= readable.min(4) * 50,
            "{} records from {readable} windows",
            round.len()
        );
        if readable < 4 && !round.is_empty() {
            fewer += 1;
        }
        records.extend(round);
        cursor = next;
    }
    assert!(fewer >= 2, "the read's end was read with fewer windows");
    let (all, _, _) = read_by_one_cursor(&running.base_url).await;
    assert_eq!(by_id(records), by_id(all), "every record once");
}
