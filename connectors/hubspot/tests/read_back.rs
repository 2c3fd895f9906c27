//! The HubSpot sink's read-back through search (exempt from the ten-second window), and its
//! fallback to batch read for what search does not return, against the sandbox's emulator.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use ferry_core::{ObjectType, Projection, Record, SecretRef, Sink, record_digest};
use ferry_hubspot::{HubspotConfig, HubspotSink};
use ferry_sandbox::hubspot::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use ferry_testkit::canonical_records as canonical;

const TOKEN_VAR: &str = "FERRY_HUBSPOT_READ_BACK_TEST_TOKEN";

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe { std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN) };
    });
}

async fn start(search_lag: Option<Duration>) -> (ferry_sandbox::Running, Emulator) {
    start_with(Options {
        search_lag,
        ..Options::default()
    })
    .await
}

/// The emulator with `options`, without the ten-second window.
async fn start_with(options: Options) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        ..options
    });
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}

fn sink(running: &ferry_sandbox::Running) -> HubspotSink {
    let config = HubspotConfig {
        base_url: Some(running.base_url.clone()),
        timeout_secs: Some(10),
        rate_limit_per_10s: Some(2_000),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    };
    HubspotSink::new(config, "sink").expect("sink")
}

/// (requests, counted against the ten-second window) so far.
fn counters(sink: &HubspotSink) -> (u64, u64) {
    let report = sink.http_stats().expect("stats").report();
    (report.requests, report.budget_cost)
}

/// Writes `records`, reads them back in read-back chunks, and checks every one came back
/// equal; returns what the read-back cost: (requests, counted).
async fn write_and_read_back(
    sink: &HubspotSink,
    object: ObjectType,
    records: &[Record],
) -> (u64, u64) {
    write(sink, object, records).await;
    read_back_equal(sink, object, records).await
}

/// Surveys and prepares `object` as the engine does, and writes `records` in engine batches,
/// every one accepted.
async fn write(sink: &HubspotSink, object: ObjectType, records: &[Record]) {
    sink.survey(object).await.expect("survey");
    sink.prepare(object).await.expect("prepare");
    let capability = sink.capability(object).expect("capability");
    for batch in records.chunks(capability.batch_size) {
        let outcomes = sink.upsert(object, batch).await.expect("upsert");
        assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    }
}

/// Reads `records` back in read-back chunks and checks every one came back equal; returns
/// what it cost: (requests, counted).
async fn read_back_equal(sink: &HubspotSink, object: ObjectType, records: &[Record]) -> (u64, u64) {
    let capability = sink.capability(object).expect("capability");
    let before = counters(sink);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut back = Vec::new();
    for chunk in ids.chunks(capability.read_back_size) {
        back.extend(sink.read_back(object, chunk).await.expect("read back"));
    }
    let after = counters(sink);
    let projection = Projection::new(capability.stored);
    assert_eq!(back.len(), records.len(), "every record read back once");
    for record in records {
        let got = back
            .iter()
            .find(|r| r.source_id == record.source_id)
            .unwrap_or_else(|| panic!("{} not read back", record.source_id));
        assert_eq!(
            record_digest(record, &projection),
            record_digest(got, &projection),
            "digest differs:\n sent {record:?}\n read {got:?}"
        );
    }
    (after.0 - before.0, after.1 - before.1)
}

#[tokio::test]
async fn records_written_are_read_back_through_search_without_counted_requests() {
    init();
    let (hs, _) = start(None).await;
    let sink = sink(&hs);
    let (companies, _) = canonical(&generate(2_000, 3, &Mess::none()));
    assert_eq!(companies.len(), 400);
    assert_eq!(
        sink.capability(ObjectType::COMPANIES)
            .unwrap()
            .read_back_size,
        200,
        "a read-back is one search page"
    );
    let (requests, counted) = write_and_read_back(&sink, ObjectType::COMPANIES, &companies).await;
    assert_eq!(requests, 2, "one search per 200 companies");
    assert_eq!(counted, 0, "search is exempt from the ten-second window");
}

#[tokio::test]
async fn records_search_has_not_indexed_yet_are_read_back_by_batch_read() {
    init();
    let (hs, _) = start(Some(Duration::from_secs(3_600))).await;
    let sink = sink(&hs);
    let (companies, _) = canonical(&generate(1_000, 3, &Mess::none()));
    assert_eq!(companies.len(), 200);
    let (requests, counted) = write_and_read_back(&sink, ObjectType::COMPANIES, &companies).await;
    assert_eq!(
        (requests, counted),
        (3, 2),
        "one search that finds nothing, then two batch reads of 100"
    );
}

#[tokio::test]
async fn records_not_written_in_this_run_are_read_back_by_batch_read() {
    init();
    let (hs, _) = start(None).await;
    let (companies, _) = canonical(&generate(1_000, 3, &Mess::none()));
    write_and_read_back(&sink(&hs), ObjectType::COMPANIES, &companies).await;
    // A second sink (a resumed run, or `ferry verify`) has no write version to hold search's
    // answers to, so it reads back what HubSpot's records are now.
    let again = sink(&hs);
    let ids: Vec<String> = companies.iter().map(|r| r.source_id.clone()).collect();
    let before = counters(&again);
    let back = again
        .read_back(ObjectType::COMPANIES, &ids)
        .await
        .expect("read back");
    let after = counters(&again);
    assert_eq!(back.len(), companies.len());
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 2));
}

#[tokio::test]
async fn contacts_with_companies_read_back_through_search_equal() {
    init();
    for sms_addon in [false, true] {
        let (hs, _) = start_with(Options {
            sms_addon,
            ..Options::default()
        })
        .await;
        let sink = sink(&hs);
        let (companies, contacts) = canonical(&generate(300, 5, &Mess::none()));
        write_and_read_back(&sink, ObjectType::COMPANIES, &companies).await;
        // Opt-outs are written through the preferences API, which needs an address; the
        // sink's own tests cover those. Here, the read-back of the contacts and their
        // companies.
        let contacts: Vec<Record> = contacts
            .into_iter()
            .filter(|c| c.get(ferry_core::field::EMAIL).is_some())
            .collect();
        let (_, counted) = write_and_read_back(&sink, ObjectType::CONTACTS, &contacts).await;
        // The contacts by search and their companies by v4 association batch read (both
        // exempt); with the SMS add-on, what counts is one batch read of the read-back's
        // mobile numbers' SMS statuses per read-back of 200 (SMS opt-outs are kept per
        // number, on no property); without it, the account holds no SMS opt-out to read.
        let read_backs = contacts.len().div_ceil(200) as u64;
        let expected = if sms_addon { read_backs } else { 0 };
        assert_eq!(counted, expected, "SMS add-on: {sms_addon}");
    }
}

/// Issue 17: contacts with companies and 15 % email opt-outs, written and read back, at 80
/// records or more per request counted against the ten-second window: per engine batch of
/// 500, five upserts and one unsubscribe call for the batch's opt-outs; read-back by search.
#[tokio::test]
async fn contacts_with_opt_outs_cost_at_least_80_records_per_counted_request() {
    init();
    let (hs, _) = start(None).await;
    let sink = sink(&hs);
    let (companies, contacts) = canonical(&generate(2_000, 8, &Mess::none()));
    write_and_read_back(&sink, ObjectType::COMPANIES, &companies).await;
    let contacts: Vec<Record> = contacts
        .into_iter()
        .filter(|c| c.get(ferry_core::field::EMAIL).is_some())
        .collect();
    let opted_out = contacts
        .iter()
        .filter(|c| c.get(ferry_core::field::EMAIL_OPT_OUT) == Some(&ferry_core::Value::Bool(true)))
        .count();
    assert!(
        opted_out * 100 >= contacts.len() * 10,
        "{opted_out} of {} opted out",
        contacts.len()
    );
    assert_eq!(
        sink.capability(ObjectType::CONTACTS).unwrap().batch_size,
        500
    );
    // The survey's look at the subscription types and the two property checks come once a
    // run, before the first write.
    sink.survey(ObjectType::CONTACTS).await.expect("survey");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let before = counters(&sink);
    for batch in contacts.chunks(500) {
        let outcomes = sink
            .upsert(ObjectType::CONTACTS, batch)
            .await
            .expect("upsert");
        assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    }
    let written = counters(&sink);
    read_back_equal(&sink, ObjectType::CONTACTS, &contacts).await;
    let after = counters(&sink);
    let batches = contacts.len().div_ceil(500) as u64;
    let upserts = contacts.len().div_ceil(100) as u64;
    assert!(
        written.1 - before.1 <= upserts + batches,
        "{} counted for {upserts} upserts in {batches} batches",
        written.1 - before.1
    );
    let counted = after.1 - before.1;
    let per_request = contacts.len() as f64 / counted as f64;
    assert!(
        per_request >= 80.0,
        "{per_request:.1} records per counted request ({counted} for {})",
        contacts.len()
    );
}
