//! The HubSpot source's incremental reads (`ferry sync`) against the sandbox's HubSpot
//! emulator, over real HTTP on loopback: search by last-modified time and record id, past
//! the 10,000-result cap and through ties on one timestamp, at five searches a second.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use ferry_core::{ConnectorError, ObjectType, Record, SecretRef, Source, Value, Watermark};
use ferry_hubspot::{HubspotConfig, HubspotSource};
use ferry_sandbox::hubspot::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};

const TOKEN_VAR: &str = "FERRY_HUBSPOT_CHANGES_TEST_TOKEN";

/// Sets the test token once, before any test does anything else.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe { std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN) };
    });
}

async fn emulator(contacts: usize) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(Options::default());
    emulator.seed(&generate(contacts, 13, &Mess::default()));
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}

fn source(base_url: &str) -> HubspotSource {
    let config = HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    };
    HubspotSource::new(config, "source").expect("source")
}

/// Every record `source` reads of `object` changed since `since`, from `cursor` on, and the
/// number of pages.
async fn read_changes(
    source: &HubspotSource,
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

/// Sets `property` on record `id` of `object` through the API, as a user's edit would.
async fn edit(base_url: &str, object: &str, id: u64, property: &str) {
    let answer = reqwest::Client::new()
        .patch(format!("{base_url}/crm/v3/objects/{object}/{id}"))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .json(&serde_json::json!({"properties": {property: "Edited since"}}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(answer.status().as_u16(), 200, "{object} {id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_10000_changes_tied_on_one_timestamp_are_read_once_each_at_five_searches_a_second() {
    init();
    let (hs, emulator) = emulator(10_300).await;
    let first = source(&hs.base_url);
    // The watermark of an earlier sync; then a bulk job stamps 10,150 contacts at one instant,
    // one of which is archived, and users edit 3 others a second later.
    let since = first
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    emulator.advance_clock(Duration::from_secs(600));
    let stamped = emulator.bulk_stamp("contacts", 10_150);
    assert_eq!(stamped.len(), 10_150);
    assert!(emulator.archive("contacts", stamped[7]));
    emulator.advance_clock(Duration::from_secs(1));
    let edited = [
        stamped[10_149] + 1,
        stamped[10_149] + 50,
        stamped[10_149] + 120,
    ];
    for id in edited {
        edit(&hs.base_url, "contacts", id, "jobtitle").await;
    }
    emulator.advance_clock(Duration::from_secs(1));
    let mut expected: Vec<u64> = stamped
        .iter()
        .copied()
        .filter(|id| *id != stamped[7])
        .collect();
    expected.extend(edited);
    assert!(expected.len() > 10_000);

    let (requests_before, _) = emulator.request_counts();
    let started = Instant::now();
    let point = first
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    assert!(point.at_ms > since.at_ms);
    // Twenty pages, then a new process resumes from the cursor.
    let (mut records, pages_before, cursor) =
        read_changes(&first, ObjectType::CONTACTS, &since, None, 20).await;
    assert_eq!(pages_before, 20);
    let cursor = cursor.expect("more to read");
    assert!(
        cursor.bytes().all(|b| b.is_ascii_digit() || b == b':'),
        "the cursor is two numbers: {cursor}"
    );
    let resumed = source(&hs.base_url);
    let (rest, pages_after, _) =
        read_changes(&resumed, ObjectType::CONTACTS, &since, Some(cursor), 1_000).await;
    records.extend(rest);
    let elapsed = started.elapsed();
    let (requests_after, throttled) = emulator.request_counts();

    let read: Vec<u64> = records
        .iter()
        .map(|r| r.source_id.parse().expect("numeric id"))
        .collect();
    let unique: HashSet<u64> = read.iter().copied().collect();
    assert_eq!(unique.len(), read.len(), "no record read twice");
    assert_eq!(read, expected, "every change read once, in id order");
    // 10,152 records at 200 a search: 51 searches, each with one association batch read
    // (the contacts' companies), one request for HubSpot's clock, and one for the account's
    // subscription types per process (two: the read resumes in a new one): this account has
    // none on SMS (no SMS add-on), so no page's mobile numbers are looked up.
    let searches = pages_before + pages_after;
    assert_eq!(searches, expected.len().div_ceil(200));
    // Paced at 5 per 1.1 s, a search delayed more than about 120 ms on its way (a machine
    // loaded by parallel builds and tests) can still make a sixth in the second the emulator
    // counts: at most a couple such 429s, each retried, nothing lost or read twice (above).
    assert!(
        throttled <= 2,
        "the emulator's five-per-second search limit refused {throttled}"
    );
    assert_eq!(
        requests_after - requests_before,
        (2 * searches + 1 + 2) as u64 + throttled
    );
    assert!(
        elapsed >= Duration::from_secs_f64((searches - 1) as f64 / 5.0),
        "paced at five searches a second at most: {searches} in {elapsed:?}"
    );
    eprintln!(
        "{} changes tied on one timestamp: {searches} searches, {} requests in all, {elapsed:?}",
        expected.len(),
        requests_after - requests_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_of_every_object_are_read_with_their_links_as_a_full_read_reads_them() {
    init();
    let (hs, emulator) = emulator(60).await;
    let source = source(&hs.base_url);
    for (object, name, property) in [
        (ObjectType::COMPANIES, "companies", "name"),
        (ObjectType::CONTACTS, "contacts", "jobtitle"),
        (ObjectType::DEALS, "deals", "dealname"),
        (ObjectType::NOTES, "notes", "hs_note_body"),
    ] {
        let since = source.sync_point(object).await.expect("sync point");
        // Nothing changed: nothing read, in one search (contacts: and the account's
        // subscription types, asked once a run, whose per-type flags the search asks for).
        let (requests, _) = emulator.request_counts();
        let (none, pages, _) = read_changes(&source, object, &since, None, 5).await;
        assert_eq!((none.len(), pages), (0, 1), "{name}");
        let expected = if object == ObjectType::CONTACTS { 2 } else { 1 };
        assert_eq!(
            emulator.request_counts().0 - requests,
            expected,
            "{name}: one search"
        );

        emulator.advance_clock(Duration::from_secs(60));
        let stamped = emulator.bulk_stamp(name, 2);
        // Past the overlap: the next watermark is after the stamps.
        emulator.advance_clock(Duration::from_secs(600));
        let last = source.sync_point(object).await.expect("sync point");
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = source
                .read_page(object, cursor.as_deref())
                .await
                .expect("page");
            all.extend(page.records);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let ids: Vec<u64> = all
            .iter()
            .map(|r| r.source_id.parse().expect("id"))
            .collect();
        let edited = ids[ids.len() - 1];
        edit(&hs.base_url, name, edited, property).await;
        emulator.advance_clock(Duration::from_secs(1));
        source.sync_point(object).await.expect("sync point");
        let (changed, _, _) = read_changes(&source, object, &since, None, 5).await;
        let full: HashMap<&str, &Record> = all.iter().map(|r| (r.source_id.as_str(), r)).collect();
        let changed_ids: Vec<u64> = changed
            .iter()
            .map(|r| r.source_id.parse().expect("id"))
            .collect();
        assert_eq!(changed_ids, [stamped[0], stamped[1], edited], "{name}");
        for record in &changed[..2] {
            assert_eq!(
                Some(&record),
                full.get(record.source_id.as_str()),
                "{name}: the same record, links included, as the full read"
            );
        }
        if object != ObjectType::COMPANIES {
            assert!(
                changed[..2].iter().any(|r| r
                    .fields
                    .values()
                    .any(|v| matches!(v, Value::Reference(_) | Value::Links(_)))),
                "{name}: the changed records' links were read"
            );
        }
        // A read from the later watermark sees only the edit.
        let (later, _, _) = read_changes(&source, object, &last, None, 5).await;
        assert_eq!(later.len(), 1, "{name}");
        assert_eq!(later[0].source_id, edited.to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_that_is_not_two_numbers_is_refused_naming_the_endpoint() {
    init();
    let (hs, _) = emulator(5).await;
    let source = source(&hs.base_url);
    let since = Watermark::at(0);
    let Err(e) = source
        .fetch_changed_page(ObjectType::CONTACTS, &since, Some("a@b.example:12"))
        .await
    else {
        panic!("a bad cursor was followed");
    };
    let text = e.to_string();
    assert!(matches!(e, ConnectorError::Malformed { .. }), "{text}");
    assert!(
        text.contains("POST /crm/v3/objects/contacts/search") && !text.contains("a@b"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_429s_on_search_is_outlasted_by_a_read_of_changes_not_by_a_count() {
    init();
    // Every 4 requests, the last 3 are refused with HubSpot's 429: requests 2-4, 6-8, ….
    let storm = || Options {
        faults: ferry_sandbox::faults::Faults {
            storm: Some(ferry_sandbox::faults::Storm { burst: 3, every: 4 }),
            retry_after_secs: Some(0),
            ..Default::default()
        },
        ..Options::default()
    };
    // The count's search (request 2) gives up after two retries: it only feeds an estimate.
    // (Beside a partitioned full read it shares the read's searches' limiter and patience:
    // search is the read itself then. Here the source reads through the list alone.)
    let counted = Emulator::new(storm());
    counted.seed(&generate(30, 13, &Mess::default()));
    let running = ferry_sandbox::serve(
        "hubspot",
        counted.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let counting = HubspotSource::new(
        HubspotConfig {
            base_url: Some(running.base_url.clone()),
            timeout_secs: Some(10),
            read_partitions: Some(false),
            ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
        },
        "source",
    )
    .expect("source");
    counting
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    assert!(counting.count(ObjectType::CONTACTS).await.is_err());

    // A read of changes meets the same storm on its search, its association read and its
    // read of SMS statuses, and outlasts all three with the run's retries.
    let changed = Emulator::new(storm());
    changed.seed(&generate(30, 13, &Mess::default()));
    let running = ferry_sandbox::serve(
        "hubspot",
        changed.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let reading = source(&running.base_url);
    // Since the epoch: every contact.
    reading
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    let (records, pages, _) =
        read_changes(&reading, ObjectType::CONTACTS, &Watermark::at(0), None, 5).await;
    let read: Vec<u64> = records
        .iter()
        .map(|r| r.source_id.parse().expect("id"))
        .collect();
    let all: Vec<u64> = (0..30).map(|i| 2_000_001 + i).collect();
    assert_eq!((read, pages), (all, 1));
    let (_, retries, throttled) = reading.http_stats().expect("stats").snapshot();
    assert_eq!(
        (retries, throttled),
        (9, 9),
        "three 429s on the search, three on the links, three on the SMS statuses"
    );
}

/// Every id `source` reads of `object` archived since `since`, and the number of pages; `None`
/// when the deletions are lost.
async fn read_archived(
    source: &HubspotSource,
    object: ObjectType,
    since: &Watermark,
) -> Option<(HashSet<String>, usize)> {
    let (mut ids, mut cursor, mut pages) = (HashSet::new(), None::<String>, 0);
    loop {
        pages += 1;
        match source
            .fetch_deleted_page(object, since, cursor.as_deref())
            .await
            .expect("archived")
        {
            ferry_core::DeletedPage::Lost => return None,
            ferry_core::DeletedPage::Ids { ids: page, next } => {
                ids.extend(page);
                match next {
                    Some(next) => cursor = Some(next),
                    None => return Some((ids, pages)),
                }
            }
        }
    }
}

/// Archived records, which search never shows, are read from the `archived=true` list (every
/// page, 100 a page), keeping those archived at or after the watermark; beyond the recycling
/// bin's 90 days, deletions are lost.
#[tokio::test(flavor = "multi_thread")]
async fn records_archived_since_the_watermark_are_read_from_the_archived_list() {
    init();
    let (hs, emulator) = emulator(300).await;
    let source = source(&hs.base_url);
    let (all, _, _) =
        read_changes(&source, ObjectType::CONTACTS, &Watermark::at(0), None, 10).await;
    let ids: Vec<u64> = all
        .iter()
        .map(|r| r.source_id.parse().expect("numeric id"))
        .collect();
    assert!(emulator.archive("contacts", ids[0]), "archived long before");
    emulator.advance_clock(Duration::from_secs(3600));
    let since = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    emulator.advance_clock(Duration::from_secs(600));
    let archived: HashSet<String> = ids[1..=105]
        .iter()
        .map(|id| {
            assert!(emulator.archive("contacts", *id));
            id.to_string()
        })
        .collect();
    let (got, pages) = read_archived(&source, ObjectType::CONTACTS, &since)
        .await
        .expect("not lost");
    assert_eq!(got, archived, "only those archived since");
    assert_eq!(pages, 2, "106 archived, 100 a page");
    // Beyond the overlap: a later sync point is after those archives.
    emulator.advance_clock(Duration::from_secs(600));
    let later = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("sync point");
    emulator.advance_clock(Duration::from_secs(600));
    let (none, _) = read_archived(&source, ObjectType::CONTACTS, &later)
        .await
        .expect("not lost");
    assert!(none.is_empty(), "{none:?}");
    emulator.advance_clock(Duration::from_secs(91 * 86_400));
    assert_eq!(
        read_archived(&source, ObjectType::CONTACTS, &later).await,
        None
    );
}
