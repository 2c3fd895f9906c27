//! The Salesforce sink on Bulk API 2.0 (an object the source counted at least `bulk_threshold`
//! records of) against the sandbox emulator over real HTTP on loopback: written and read back
//! exactly in a handful of calls, refusals booked as the REST path books them, rows a failed
//! job left unprocessed sent again or reported, polling under 429s.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::{ObjectType, Projection, Record, SecretRef, Sink, Value, field, record_digest};
use ferry_salesforce::bulk::Polling;
use ferry_salesforce::config::DEFAULT_BULK_JOB_RECORDS;
use ferry_salesforce::{SalesforceConfig, SalesforceSink};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use ferry_testkit::canonical_records as canonical;
use secrecy::SecretString;
use serde_json::json;

async fn start(faults: Faults) -> (Emulator, ferry_sandbox::Running, SalesforceSink) {
    let emulator = Emulator::new(Options {
        faults,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let sink = sink_for(&running.base_url);
    (emulator, running, sink)
}

/// A sink on the emulator at `base_url`, Bulk from 1,000 records, polling fast.
fn sink_for(base_url: &str) -> SalesforceSink {
    let mut config: SalesforceConfig = serde_json::from_value(json!({
        "login_url": base_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
        "max_retries": 10,
        "bulk_threshold": 1000,
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    SalesforceSink::new(config, "sink")
        .expect("sink")
        .with_bulk_polling(Polling {
            first: Duration::from_millis(1),
            max: Duration::from_millis(20),
            timeout: Duration::from_secs(60),
        })
}

fn contact(id: &str, last: Option<&str>) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, id);
    if let Some(last) = last {
        r.set(field::LAST_NAME, Value::Text(last.into()));
    }
    r
}

/// `n` contacts the org takes.
fn fine_contacts(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| contact(&format!("ok-{i}"), Some(&format!("Last{i}"))))
        .collect()
}

async fn assert_read_back_equal(sink: &SalesforceSink, object: ObjectType, records: &[Record]) {
    let mut stored = sink.capability(object).unwrap().stored;
    stored.retain(|f| f != field::OWNER);
    let projection = Projection::new(stored);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut back = Vec::new();
    for chunk in ids.chunks(sink.capability(object).unwrap().read_back_size) {
        back.extend(sink.read_back(object, chunk).await.expect("read back"));
    }
    assert_eq!(
        back.len(),
        records.len(),
        "{object}: every record read back"
    );
    let digests = |records: &[Record]| {
        let mut d: Vec<_> = records
            .iter()
            .map(|r| (r.source_id.clone(), record_digest(r, &projection)))
            .collect();
        d.sort();
        d
    };
    let (before, after) = (digests(records), digests(&back));
    for (b, a) in before.iter().zip(&after) {
        if b != a {
            let orig = records.iter().find(|r| r.source_id == b.0);
            let got = back.iter().find(|r| r.source_id == a.0);
            panic!("{object} digest differs:\n before {orig:?}\n after  {got:?}");
        }
    }
}

#[tokio::test]
async fn a_large_object_is_written_and_read_back_exactly_in_a_few_bulk_calls() {
    let (emulator, _running, sink) = start(Faults::default()).await;
    let (companies, contacts) = canonical(&generate(6_000, 11, &Mess::none()));
    assert!(companies.len() >= 1_000, "{}", companies.len());
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        assert!(!sink.is_bulk(object));
        sink.expect(object, records.len() as u64);
        assert!(sink.is_bulk(object));
        let capability = sink.capability(object).expect("capability");
        assert_eq!(
            (capability.batch_size, capability.read_back_size),
            (DEFAULT_BULK_JOB_RECORDS, DEFAULT_BULK_JOB_RECORDS)
        );
        sink.prepare(object).await.expect("prepare");
    }
    // Notes are never written through Bulk.
    sink.expect(ObjectType::NOTES, 1_000_000);
    assert!(!sink.is_bulk(ObjectType::NOTES));

    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let before = emulator.api_usage();
        let outcomes = sink.upsert(object, records).await.expect("upsert");
        assert_eq!(outcomes.len(), records.len());
        for (o, r) in outcomes.iter().zip(records.iter()) {
            assert_eq!(o.source_id, r.source_id, "outcomes in input order");
            assert!(o.result.as_ref().is_ok_and(|w| w.created), "{o:?}");
        }
        let written = emulator.api_usage() - before;
        // Create, upload, close, two polls, the saved rows (none failed: no failed set).
        assert_eq!(written, 6, "{object}: API calls of one job");
        let before = emulator.api_usage();
        assert_read_back_equal(&sink, object, records).await;
        let read = emulator.api_usage() - before;
        // One query job (the ids fit one statement): create, two polls, one page.
        assert_eq!(read, 4, "{object}: API calls of the read-back");
    }
    assert_eq!(emulator.count("Account"), companies.len());
    assert_eq!(emulator.count("Contact"), contacts.len());
    let linked = contacts
        .iter()
        .find(|c| c.get(field::COMPANY).is_some())
        .expect("a contact with a company");
    let stored = emulator
        .record_by_external_id("Contact", &linked.source_id)
        .expect("stored");
    assert!(
        stored["AccountId"]
            .as_str()
            .is_some_and(|id| id.starts_with("001")),
        "the company resolved by its external id column"
    );

    // A rerun updates in place; a contact that lost its company and first name has them cleared.
    let mut again = contacts.clone();
    let changed = again
        .iter_mut()
        .find(|c| c.get(field::COMPANY).is_some() && c.get(field::FIRST_NAME).is_some())
        .expect("a contact with a company and a first name");
    changed.fields.remove(field::COMPANY);
    changed.fields.remove(field::FIRST_NAME);
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &again)
        .await
        .expect("rerun");
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| !w.created)),
        "none created"
    );
    assert_eq!(emulator.count("Contact"), contacts.len(), "no duplicates");
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &again).await;
    assert_eq!(sink.token_fetches(), 1);
}

/// `n` contacts with source ids of about 64 characters starting with `prefix`: 1,600 of
/// them fill SOQL's 100,000 characters.
fn long_id_contacts(prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| contact(&format!("{prefix}-{i:0>60}"), Some(&format!("Last{i}"))))
        .collect()
}

fn source_ids(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.source_id.clone()).collect()
}

/// Source ids of `records`, sorted.
fn sorted_ids(records: &[Record]) -> Vec<String> {
    let mut ids = source_ids(records);
    ids.sort();
    ids
}

/// An org where a Bulk sink writes `first` and `second` and another writer `between` them,
/// inside their id range; the sink and the records it wrote (`first` then `second`).
async fn around_another_writer(
    first: &[Record],
    between: &[Record],
    second: &[Record],
) -> (
    Emulator,
    ferry_sandbox::Running,
    SalesforceSink,
    Vec<Record>,
) {
    let (emulator, running, sink) = start(Faults::default()).await;
    let other = sink_for(&running.base_url);
    for s in [&sink, &other] {
        s.expect(ObjectType::CONTACTS, 5_000);
        s.prepare(ObjectType::CONTACTS).await.expect("prepare");
    }
    for (s, records) in [(&sink, first), (&other, between), (&sink, second)] {
        let outcomes = s
            .upsert(ObjectType::CONTACTS, records)
            .await
            .expect("upsert");
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
    }
    (emulator, running, sink, [first, second].concat())
}

#[tokio::test]
async fn the_read_back_asks_for_the_range_of_saved_ids_and_keeps_only_those_asked() {
    // Another writer's records land between this sink's two jobs, inside their id range.
    let first = long_id_contacts("a", 1_500);
    let between = long_id_contacts("b", 1_000);
    let second = long_id_contacts("c", 1_500);
    let (emulator, _running, sink, asked) = around_another_writer(&first, &between, &second).await;
    let before = emulator.api_usage();
    let back = sink
        .read_back(ObjectType::CONTACTS, &source_ids(&asked))
        .await
        .expect("read back");
    // By their 3,000 source ids it would take two statements (two query jobs, 8 calls).
    assert_eq!(emulator.api_usage() - before, 4, "one query job");
    assert_eq!(
        sorted_ids(&back),
        sorted_ids(&asked),
        "exactly those asked, none of the other writer's"
    );
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &second).await;

    // Records this sink did not save are found by their source ids.
    let before = emulator.api_usage();
    let back = sink
        .read_back(ObjectType::CONTACTS, &source_ids(&between))
        .await
        .expect("read back");
    assert_eq!(back.len(), between.len());
    assert_eq!(
        emulator.api_usage() - before,
        4,
        "one statement of 1,000 ids"
    );
}

#[tokio::test]
async fn a_range_holding_far_more_rows_than_asked_is_not_read() {
    // 3,500 of another writer's between two jobs of 1,000: 5,500 rows in the range, more than
    // twice the 2,000 asked plus 1,000.
    let named = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| contact(&format!("{prefix}-{i}"), Some("Last")))
            .collect::<Vec<_>>()
    };
    let (first, between, second) = (named("a", 1_000), named("b", 3_500), named("c", 1_000));
    let (emulator, _running, sink, asked) = around_another_writer(&first, &between, &second).await;
    let before = emulator.api_usage();
    let back = sink
        .read_back(ObjectType::CONTACTS, &source_ids(&asked))
        .await
        .expect("read back");
    assert_eq!(sorted_ids(&back), sorted_ids(&asked));
    // The range job's create and two polls, no page; then one `IN` statement's four.
    assert_eq!(emulator.api_usage() - before, 3 + 4);
}

#[tokio::test]
async fn bulk_refusals_are_booked_as_the_rest_path_books_them() {
    let (emulator, _running, sink) = start(Faults::default()).await;
    sink.expect(ObjectType::CONTACTS, 5_000);
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let mut bad_email = contact("p-2", Some("Gilmore"));
    bad_email.set(
        field::EMAIL,
        Value::Text("lorelai@@stars-hollow.example".into()),
    );
    let mut long_title = contact("p-3", Some("Gilmore"));
    long_title.set(
        field::JOB_TITLE,
        Value::Text("Senior Vice President of ".repeat(8)),
    );
    let mut orphan = contact("p-4", Some("Danes"));
    orphan.set(field::COMPANY, Value::Reference("co-missing-77".into()));
    let mut weird = contact("o'brien\\5, \"x\"", Some("O'Brien"));
    weird.set(field::EMAIL_OPT_OUT, Value::Bool(true));
    let mut records = vec![contact("p-1", None), bad_email, long_title, orphan, weird];
    records.extend(fine_contacts(1_200));

    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let rejection = |i: usize| outcomes[i].result.clone().expect_err("rejected");
    assert_eq!(rejection(0).code, "REQUIRED_FIELD_MISSING");
    assert_eq!(
        rejection(0).reason,
        "Salesforce refused field LastName (last_name)"
    );
    assert_eq!(rejection(1).code, "INVALID_EMAIL_ADDRESS");
    assert!(rejection(1).reason.contains("Email (email)"));
    assert_eq!(rejection(2).code, "STRING_TOO_LONG");
    assert!(rejection(2).reason.contains("Title (job_title)"));
    assert_eq!(rejection(3).code, "INVALID_FIELD");
    assert!(
        rejection(3).reason.contains("company"),
        "{}",
        rejection(3).reason
    );
    for (i, record) in records.iter().enumerate().take(4) {
        let r = rejection(i);
        assert_eq!(r.source_id, record.source_id);
        for value in [
            "lorelai",
            "Senior Vice",
            "co-missing-77",
            "Gilmore",
            "Danes",
        ] {
            assert!(
                !r.reason.contains(value) && !r.code.contains(value),
                "{r:?} quotes a value"
            );
        }
    }
    assert!(outcomes[4..].iter().all(|o| o.result.is_ok()));
    assert_eq!(emulator.count("Contact"), records.len() - 4);
    // Quotes, commas and backslashes survive the CSV and the query's escaping.
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &records[4..]).await;
    let stored = emulator
        .record_by_external_id("Contact", "o'brien\\5, \"x\"")
        .expect("stored");
    assert_eq!(stored["HasOptedOutOfEmail"], json!(true));
}

#[tokio::test]
async fn rows_a_failed_job_left_unprocessed_are_sent_again_then_reported() {
    // Every job stops half-way: each round writes half of what is left; after the first job
    // and three more, a sixteenth is reported, never dropped.
    let (emulator, _running, sink) = start(Faults::parse("bulkcut:100").expect("faults")).await;
    sink.expect(ObjectType::CONTACTS, 1_600);
    let records = fine_contacts(1_600);
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let unprocessed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert_eq!(unprocessed.len(), 100);
    assert!(unprocessed.iter().all(|r| r.code == "BULK_UNPROCESSED"));
    assert_eq!(emulator.count("Contact"), 1_500);
    for (o, r) in outcomes.iter().zip(&records) {
        assert_eq!(o.source_id, r.source_id);
        let stored = emulator.record_by_external_id("Contact", &r.source_id);
        assert_eq!(stored.is_some(), o.result.is_ok(), "{}", r.source_id);
    }

    // Every job fails before it processes a row: every record is reported, none written.
    let (emulator, _running, sink) = start(Faults::parse("bulkfail:100").expect("faults")).await;
    sink.expect(ObjectType::CONTACTS, 1_000);
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &fine_contacts(1_000))
        .await
        .expect("upsert");
    assert!(outcomes.iter().all(|o| {
        o.result
            .as_ref()
            .is_err_and(|r| r.code == "BULK_UNPROCESSED")
    }));
    assert_eq!(emulator.count("Contact"), 0);
}

#[tokio::test]
async fn locked_rows_are_sent_again_and_polling_rides_out_429s() {
    let faults = Faults {
        throttle_every: Some(4),
        ..Faults::parse("partial:20,seed:5").expect("faults")
    };
    let (emulator, _running, sink) = start(faults).await;
    sink.expect(ObjectType::CONTACTS, 1_500);
    let records = fine_contacts(1_500);
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let refused: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    // 20 % locked in the first job, 4 % in the second, ... under 0.1 % after four jobs.
    assert!(refused.len() <= 5, "{refused:?}");
    assert!(refused.iter().all(|r| r.code == "UNABLE_TO_LOCK_ROW"));
    assert_eq!(emulator.count("Contact"), 1_500 - refused.len());
    let report = sink.http_stats().expect("stats").report();
    assert!(report.throttled > 0, "{report:?}");
    assert_read_back_equal(
        &sink,
        ObjectType::CONTACTS,
        &records
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.result.is_ok())
            .map(|(r, _)| r.clone())
            .collect::<Vec<_>>(),
    )
    .await;
}
