//! The HubSpot source's partitioned full read (`read_partitions`): the list endpoint up from the
//! lowest id, CRM search down from the highest, side by side, against the sandbox's HubSpot
//! emulator over real HTTP on loopback. Every record exactly once, the same canonical records
//! as the list alone reads, resumable from any cursor, and faster where answers take time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Once;

use ferry_core::connector::RecordRejection;
use ferry_core::{ObjectType, Record, SecretRef, Source};
use ferry_hubspot::{HubspotConfig, HubspotSource};
use ferry_sandbox::hubspot::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};

const TOKEN_VAR: &str = "FERRY_HUBSPOT_PARTITIONS_TEST_TOKEN";
const BAD_VAR: &str = "FERRY_HUBSPOT_PARTITIONS_BAD_TOKEN";
const BAD: &str = "pat-na1-not-the-right-token-0815";

/// Sets the test tokens once, before any test does anything else.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe {
            std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN);
            std::env::set_var(BAD_VAR, BAD);
        }
    });
}

/// An emulator with HubSpot's search limit (five per second) and no ten-second limit (the
/// sources pace themselves; the reference reads by the list alone need not wait), seeded with
/// `contacts` contacts (a fifth as many companies, and deals and notes), a tenth opted out of
/// SMS and the other channels if `sms` (the account then has an SMS subscription type, and
/// statuses are read).
async fn emulator(
    options: Options,
    contacts: usize,
    sms: bool,
) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(Options {
        search_limit: Some(5),
        burst_limit: None,
        ..options
    });
    let mess = Mess {
        opt_out_channels: if sms { 0.1 } else { 0.0 },
        ..Mess::default()
    };
    emulator.seed(&generate(contacts, 17, &mess));
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}

/// A source with partitioned reads on or off, and `per_10s` list requests per ten seconds.
fn source(base_url: &str, partitions: bool, per_10s: u32) -> HubspotSource {
    let config = HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        rate_limit_per_10s: Some(per_10s),
        read_partitions: Some(partitions),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    };
    HubspotSource::new(config, "source").expect("source")
}

/// What a read returned: the records, the unreadable ones, and every cursor it followed.
#[derive(Default)]
struct Read {
    records: Vec<Record>,
    unreadable: Vec<RecordRejection>,
    cursors: Vec<String>,
}

/// Reads `object` from `cursor` through `fetch_page`, as the engine does, for at most `pages`
/// pages; the last cursor in `cursors` is where the read stopped (`None` pushed: the end).
async fn read(
    source: &HubspotSource,
    object: ObjectType,
    mut cursor: Option<String>,
    pages: usize,
) -> (Read, Option<String>) {
    let mut read = Read::default();
    for _ in 0..pages {
        let fetched = source
            .fetch_page(object, cursor.as_deref())
            .await
            .expect("fetch");
        let page = (fetched.records)().expect("page");
        read.records.extend(page.records);
        read.unreadable.extend(page.unreadable);
        match page.next {
            Some(next) => {
                read.cursors.push(next.clone());
                cursor = Some(next);
            }
            None => return (read, None),
        }
    }
    (read, cursor)
}

/// Reads every record of `object`.
async fn read_all(source: &HubspotSource, object: ObjectType) -> Read {
    let (read, rest) = read(source, object, None, usize::MAX).await;
    assert!(rest.is_none());
    read
}

/// The records sorted by source id, after checking none came twice.
fn by_id(records: &[Record]) -> Vec<&Record> {
    let ids: HashSet<&str> = records.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "a record was read twice");
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.source_id.parse::<u64>().expect("numeric id"));
    sorted
}

/// The lowest id search has read down to by a partitioned read's cursor
/// (`split:<last>:<lo>-<floor>,…:<after>`): the lowest of its lanes' floors.
fn floor(cursor: &str) -> Option<u64> {
    cursor
        .split(':')
        .nth(2)?
        .split(',')
        .filter_map(|lane| lane.split_once('-')?.1.parse().ok())
        .min()
}

/// The emulator's search cap for the read that crosses it: HubSpot's is 10,000 results a query
/// ([`ferry_sandbox::hubspot::SEARCH_MAX_RESULTS`]); a tenth of it makes search cross it with
/// 8,000 contacts rather than 25,000, through the same keyset queries. (8,000 take four rounds:
/// the floors checkpointed after the second already show search past the cap.)
const SEARCH_CAP: usize = 1_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_read_past_the_search_cap_returns_each_contact_once_as_the_list_reads_it() {
    init();
    let options = Options {
        search_max_results: SEARCH_CAP,
        ..Options::default()
    };
    let (hs, emulator) = emulator(options, 8_000, true).await;
    // The list held to 49 requests per 10 s (490 records/s) and search at 4.9 a second (980/s):
    // search reads about two thirds, past one query's cap of results.
    let split = read_all(&source(&hs.base_url, true, 50), ObjectType::CONTACTS).await;
    let listed = read_all(&source(&hs.base_url, false, 5_000), ObjectType::CONTACTS).await;
    let live = emulator.count("contacts").expect("contacts");
    assert_eq!(split.records.len() + split.unreadable.len(), live);
    assert_eq!(
        by_id(&split.records),
        by_id(&listed.records),
        "the same canonical records, companies and opt-outs included"
    );
    let unreadable = |r: &Read| {
        let mut ids: Vec<String> = r.unreadable.iter().map(|u| u.source_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(unreadable(&split), unreadable(&listed));
    assert!(
        split
            .records
            .iter()
            .any(|r| r.get(ferry_core::field::COMPANY).is_some()),
        "companies were read"
    );
    let lowest = split
        .cursors
        .iter()
        .filter_map(|c| floor(c))
        .min()
        .expect("search read");
    let searched = split
        .records
        .iter()
        .filter(|r| r.source_id.parse::<u64>().is_ok_and(|id| id >= lowest))
        .count();
    assert!(
        searched > SEARCH_CAP,
        "search read {searched} records, a query pages through {SEARCH_CAP}"
    );
    assert!(split.cursors.iter().all(|c| c.starts_with("split:")));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_object_read_partitioned_equals_the_list_read_links_included() {
    init();
    let (hs, _emulator) = emulator(Options::default(), 3_000, true).await;
    for object in [
        ObjectType::COMPANIES,
        ObjectType::CONTACTS,
        ObjectType::DEALS,
        ObjectType::NOTES,
    ] {
        let split = read_all(&source(&hs.base_url, true, 20), object).await;
        let listed = read_all(&source(&hs.base_url, false, 5_000), object).await;
        assert!(!listed.records.is_empty(), "{object}");
        assert_eq!(by_id(&split.records), by_id(&listed.records), "{object}");
        assert_eq!(split.unreadable.len(), listed.unreadable.len(), "{object}");
        assert!(
            split.cursors.iter().any(|c| floor(c).is_some()),
            "{object}: search took part"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_resumed_from_a_mid_read_cursor_continues_both_sides_where_they_stood() {
    init();
    let (hs, _emulator) = emulator(Options::default(), 8_000, false).await;
    let whole = read_all(&source(&hs.base_url, false, 5_000), ObjectType::CONTACTS).await;
    // Pages until the list and search lanes have each read, then a new process (a new source)
    // from the checkpointed cursor. The list held to 19 pages per 10 s: by then it has not met
    // search.
    let first = source(&hs.base_url, true, 20);
    let mut begun = Read::default();
    let mut cursor = None;
    for _ in 0..40 {
        let (more, next) = read(&first, ObjectType::CONTACTS, cursor, 1).await;
        begun.records.extend(more.records);
        cursor = Some(next.expect("the read is not over yet"));
        let c = cursor.as_deref().unwrap_or_default();
        let lanes = c.split(':').nth(2).unwrap_or_default();
        let listed = c.split(':').nth(1).and_then(|l| l.parse::<u64>().ok());
        if listed.is_some_and(|l| l > 0) && lanes.split(',').count() > 1 && floor(c).is_some() {
            break;
        }
    }
    let cursor = cursor.expect("a cursor");
    let parts: Vec<&str> = cursor.splitn(4, ':').collect();
    assert_eq!(parts[0], "split", "{cursor}");
    assert!(
        parts[1].parse::<u64>().expect("last") > 0,
        "the list read: {cursor}"
    );
    assert!(floor(&cursor).is_some(), "search read: {cursor}");
    assert!(
        parts[2].split(',').count() > 1,
        "search reads in lanes: {cursor}"
    );
    drop(first);
    let (rest, end) = read(
        &source(&hs.base_url, true, 20),
        ObjectType::CONTACTS,
        Some(cursor),
        usize::MAX,
    )
    .await;
    assert!(end.is_none());
    let mut all = begun.records;
    all.extend(rest.records);
    assert_eq!(by_id(&all), by_id(&whole.records));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_cursor_from_an_unsplit_read_resumes_through_the_list() {
    init();
    let (hs, _emulator) = emulator(Options::default(), 1_000, false).await;
    let unsplit = source(&hs.base_url, false, 5_000);
    let (begun, cursor) = read(&unsplit, ObjectType::CONTACTS, None, 3).await;
    let cursor = cursor.expect("more pages");
    let (rest, _) = read(
        &source(&hs.base_url, true, 5_000),
        ObjectType::CONTACTS,
        Some(cursor),
        usize::MAX,
    )
    .await;
    assert!(rest.cursors.iter().all(|c| !c.starts_with("split:")));
    let mut all = begun.records;
    all.extend(rest.records);
    let whole = read_all(&unsplit, ObjectType::CONTACTS).await;
    assert_eq!(by_id(&all), by_id(&whole.records));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_split_cursor_is_refused_without_echoing_it() {
    init();
    let (hs, _emulator) = emulator(Options::default(), 10, false).await;
    let source = source(&hs.base_url, true, 5_000);
    for cursor in [
        "split:x:-1:",
        "split:5",
        "split:5:-y:abc",
        "split:5:7-9:abc",
        "split:-:-9:",
    ] {
        let Err(e) = source.fetch_page(ObjectType::CONTACTS, Some(cursor)).await else {
            panic!("{cursor} was followed");
        };
        assert!(
            matches!(e, ferry_core::ConnectorError::Malformed { .. }),
            "{e}"
        );
        assert!(!e.to_string().contains(cursor), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_token_fails_a_partitioned_read_as_an_auth_error_without_the_token() {
    init();
    let (hs, _emulator) = emulator(Options::default(), 10, false).await;
    let config = HubspotConfig {
        base_url: Some(hs.base_url.clone()),
        read_partitions: Some(true),
        ..HubspotConfig::new(SecretRef::env(BAD_VAR))
    };
    let source = HubspotSource::new(config, "source").expect("source");
    let Err(err) = source.fetch_page(ObjectType::CONTACTS, None).await else {
        panic!("a bad token read");
    };
    assert!(
        matches!(err, ferry_core::ConnectorError::Auth { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(BAD), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_left_at_its_default_is_partitioned_in_small_pages_and_resumes_exactly_after_any_page()
 {
    init();
    let (hs, _emulator) = emulator(Options::default(), 1_500, true).await;
    let whole = read_all(&source(&hs.base_url, false, 5_000), ObjectType::CONTACTS).await;
    let config = HubspotConfig {
        base_url: Some(hs.base_url.clone()),
        rate_limit_per_10s: Some(50),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    };
    let default = || HubspotSource::new(config.clone(), "source").expect("source");
    // Read through: partitioned, in pages small enough that a stop (between pages) lands within
    // a few hundred records, each record once.
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    let mut all = Vec::new();
    let mut cursors = Vec::new();
    let reader = default();
    loop {
        let page = reader
            .read_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("page");
        sizes.push(page.records.len() + page.unreadable.len());
        all.extend(page.records);
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert!(
        cursors.iter().all(|c| c.starts_with("split:")),
        "{cursors:?}"
    );
    assert!(
        sizes.iter().all(|&n| n <= 700),
        "pages of at most a few hundred records: {sizes:?}"
    );
    assert_eq!(by_id(&all), by_id(&whole.records));
    // Stopped after page k, a new process resumes from that page's cursor and reads the rest:
    // every record once, whichever page the stop fell after.
    for k in [1, cursors.len() / 3, cursors.len() * 2 / 3] {
        let first = default();
        let (begun, at) = read(&first, ObjectType::CONTACTS, None, k).await;
        drop(first);
        let (rest, end) = read(&default(), ObjectType::CONTACTS, at, usize::MAX).await;
        assert!(end.is_none());
        let mut both = begun.records;
        both.extend(rest.records);
        assert_eq!(
            by_id(&both),
            by_id(&whole.records),
            "stopped after page {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_requests_a_partitioned_read_declares_per_record_are_about_what_it_spends() {
    init();
    let (hs, emulator) = emulator(Options::default(), 2_000, false).await;
    use ferry_core::Source as _;
    for object in [
        ObjectType::COMPANIES,
        ObjectType::CONTACTS,
        ObjectType::DEALS,
    ] {
        let source = source(&hs.base_url, true, 190);
        let (before, _) = emulator.request_counts();
        let read = read_all(&source, object).await;
        let spent = (emulator.request_counts().0 - before) as f64;
        let records = (read.records.len() + read.unreadable.len()) as f64;
        let declared = source.requests_per_record(object).expect("declared") * records;
        // `ferry plan` multiplies this by the records counted; the share the list reads moves
        // with the latency, within a few requests of the declared either way.
        assert!(
            declared >= spent * 0.7 - 3.0 && declared <= spent * 1.3 + 3.0,
            "{object}: declared {declared:.1} requests for {records} records, spent {spent}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_created_during_a_partitioned_read_are_read_once_as_the_list_reads_them() {
    init();
    // Two contacts created (and two updated) before each list page after the first, as other
    // users do during a long read: their ids are above the read's first search, whose range
    // is read last.
    let options = Options {
        faults: ferry_sandbox::faults::Faults {
            shift: Some(2),
            ..Default::default()
        },
        ..Options::default()
    };
    let (hs, emulator) = emulator(options, 1_000, false).await;
    let seeded = emulator.count("contacts").expect("contacts");
    let read = read_all(&source(&hs.base_url, true, 50), ObjectType::CONTACTS).await;
    let ids = by_id(&read.records);
    let created = emulator.count("contacts").expect("contacts") - seeded;
    assert!(created > 0, "records were created during the read");
    assert_eq!(
        ids.len() + read.unreadable.len(),
        emulator.count("contacts").expect("contacts"),
        "every record, those created mid-read ({created}) included, once"
    );
}
