//! The Zoho sink's read-back by Zoho id (`GET /{module}?ids=`, 100 a call) against the emulator
//! over real HTTP on loopback: references to targets written in the run and to targets written
//! before it mapped back to source ids, a target that cannot be mapped read as a difference, the
//! GDPR consent record in the same call, COQL for records whose id the run does not know, and a
//! duplicate by source id still counted.

mod common;

use common::{assert_read_back_equal, config, start, token};
use ferry_core::{ObjectType, Projection, Record, Sink, Value, field, record_digest};
use ferry_sandbox::zoho::{Emulator, Options};
use ferry_zoho::ZohoSink;
use serde_json::{Value as Json, json};

fn company(id: usize) -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, format!("co-{id}"));
    r.set(field::NAME, Value::Text(format!("Company {id}")));
    r
}

fn contact(id: usize, company: Option<usize>) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, format!("p-{id}"));
    r.set(field::LAST_NAME, Value::Text(format!("Person {id}")));
    if let Some(c) = company {
        r.set(field::COMPANY, Value::Reference(format!("co-{c}")));
    }
    r
}

async fn sink(base_url: &str) -> ZohoSink {
    let sink = ZohoSink::new(config(base_url, json!({})), "sink").expect("sink");
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        sink.survey(object).await.expect("survey");
        sink.prepare(object).await.expect("prepare");
    }
    sink
}

async fn write(sink: &ZohoSink, object: ObjectType, records: &[Record]) {
    for batch in records.chunks(100) {
        for o in sink.upsert(object, batch).await.expect("upsert") {
            assert!(o.result.is_ok(), "{o:?}");
        }
    }
}

/// `ids` of `object` read back by `sink`.
async fn read(sink: &ZohoSink, object: ObjectType, ids: &[String]) -> Vec<Record> {
    sink.read_back(object, ids).await.expect("read back")
}

/// The calls and credits `emulator` answered since `before` (calls, credits).
fn spent(emulator: &Emulator, before: (u64, u64)) -> (u64, u64) {
    (
        emulator.requests() - before.0,
        emulator.credits_used() - before.1,
    )
}

fn counters(emulator: &Emulator) -> (u64, u64) {
    (emulator.requests(), emulator.credits_used())
}

#[tokio::test]
async fn records_written_in_the_run_are_read_back_by_id_their_references_mapped_back() {
    let (emulator, running) = start(Options::default()).await;
    // Companies 0–9 were written before this run (by another run); 10–19 are written by it.
    let before_run: Vec<Record> = (0..10).map(company).collect();
    write(
        &sink(&running.base_url).await,
        ObjectType::COMPANIES,
        &before_run,
    )
    .await;
    let sink = sink(&running.base_url).await;
    let in_run: Vec<Record> = (10..20).map(company).collect();
    write(&sink, ObjectType::COMPANIES, &in_run).await;
    let contacts: Vec<Record> = (0..200)
        .map(|i| contact(i, (i % 3 != 0).then_some(10 + i % 10)))
        .collect();
    write(&sink, ObjectType::CONTACTS, &contacts).await;
    let ids: Vec<String> = contacts.iter().map(|r| r.source_id.clone()).collect();

    // Two calls of 100 by id: 2 credits for 200 records, references from the run's cache.
    let before = counters(&emulator);
    let back = read(&sink, ObjectType::CONTACTS, &ids).await;
    assert_eq!(back.len(), 200);
    assert_eq!(spent(&emulator, before), (2, 2));
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &contacts).await;

    // Another app links p-1 to co-1, written before the run (its Zoho id unknown to this run):
    // one COQL query by id maps it back to its source id.
    let co1 = emulator
        .record_by_source_id("Accounts", "co-1")
        .expect("co-1");
    upsert(
        &running.base_url,
        "Contacts",
        json!({"Ferry_Source_Id": "p-1", "Last_Name": "Person 1", "Account_Name": {"id": co1["id"]}}),
        "Ferry_Source_Id",
    )
    .await;
    let before = counters(&emulator);
    let back = read(&sink, ObjectType::CONTACTS, &ids[..100]).await;
    assert_eq!(back.len(), 100);
    assert_eq!(
        spent(&emulator, before),
        (2, 2),
        "one read by id, one COQL query"
    );
    let linked = back.iter().find(|r| r.source_id == "p-1").expect("p-1");
    assert_eq!(
        linked.get(field::COMPANY),
        Some(&Value::Reference("co-1".into())),
        "a company written before the run, by its source id"
    );
    // Now known: one call.
    let before = counters(&emulator);
    read(&sink, ObjectType::CONTACTS, &ids[..100]).await;
    assert_eq!(spent(&emulator, before), (1, 1));

    // A run that wrote nothing (a verify, a resume) knows no ids: COQL by source id, 50 a
    // query, and the same records.
    let fresh = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let before = counters(&emulator);
    let again = read(&fresh, ObjectType::CONTACTS, &ids).await;
    assert_eq!(spent(&emulator, before).0, 4, "four COQL queries of 50");
    let by_id = read(&sink, ObjectType::CONTACTS, &ids).await;
    let projection = Projection::new(sink.capability(ObjectType::CONTACTS).unwrap().stored);
    let digests = |records: &[Record]| {
        let mut d: Vec<_> = records
            .iter()
            .map(|r| (r.source_id.clone(), record_digest(r, &projection)))
            .collect();
        d.sort();
        d
    };
    assert_eq!(digests(&again), digests(&by_id), "both ways read the same");
}

/// Upserts `record` into `module` as another app of the org, matched on `check`; its Zoho id.
async fn upsert(base_url: &str, module: &str, record: Json, check: &str) -> String {
    let answer: Json = reqwest::Client::new()
        .post(format!("{base_url}/crm/v8/{module}/upsert"))
        .header(
            "Authorization",
            format!("Zoho-oauthtoken {}", token(base_url).await),
        )
        .json(&json!({"data": [record], "duplicate_check_fields": [check]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["data"][0]["status"], "success", "{answer}");
    answer["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn a_target_without_a_source_id_or_a_record_changed_since_is_never_guessed() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = sink(&running.base_url).await;
    write(&sink, ObjectType::COMPANIES, &[company(1)]).await;
    let mut p2 = contact(2, Some(1));
    p2.set(field::EMAIL, Value::Text("p2@example.com".into()));
    let contacts = [contact(1, Some(1)), p2, contact(3, None)];
    write(&sink, ObjectType::CONTACTS, &contacts).await;

    // Another app links p-1 to an account ferry did not write (no source id).
    let native = upsert(
        &running.base_url,
        "Accounts",
        json!({"Account_Name": "Made in Zoho"}),
        "Account_Name",
    )
    .await;
    upsert(
        &running.base_url,
        "Contacts",
        json!({"Ferry_Source_Id": "p-1", "Last_Name": "Person 1", "Account_Name": {"id": native}}),
        "Ferry_Source_Id",
    )
    .await;
    // And p-2 now holds another source id: its Zoho id no longer reads as p-2.
    upsert(
        &running.base_url,
        "Contacts",
        json!({"Email": "p2@example.com", "Last_Name": "Person 2", "Ferry_Source_Id": "p-2-renamed"}),
        "Email",
    )
    .await;

    let ids: Vec<String> = contacts.iter().map(|r| r.source_id.clone()).collect();
    let back = read(&sink, ObjectType::CONTACTS, &ids).await;
    let p1 = back.iter().find(|r| r.source_id == "p-1").expect("p-1");
    assert_eq!(
        p1.get(field::COMPANY),
        Some(&Value::Reference(format!("zoho:{native}"))),
        "named by its Zoho id: a difference from co-1, and from no company"
    );
    assert!(
        back.iter().all(|r| r.source_id != "p-2-renamed"),
        "a record no longer holding the source id asked is not taken for it"
    );
    assert!(back.iter().all(|r| r.source_id != "p-2"), "p-2 is gone");
    assert!(back.iter().any(|r| r.source_id == "p-3"));
}

#[tokio::test]
async fn a_gdpr_contacts_consent_record_comes_in_the_same_call() {
    let (emulator, running) = start(Options {
        gdpr: true,
        ..Options::default()
    })
    .await;
    let sink = sink(&running.base_url).await;
    let contacts: Vec<Record> = (0..100)
        .map(|i| {
            let mut r = contact(i, None);
            r.set(field::LEGAL_BASIS, Value::Text("consent".into()));
            r.set(field::CONSENT_DATE, Value::Date(19_782));
            r
        })
        .collect();
    write(&sink, ObjectType::CONTACTS, &contacts).await;
    let ids: Vec<String> = contacts.iter().map(|r| r.source_id.clone()).collect();
    let before = counters(&emulator);
    let back = read(&sink, ObjectType::CONTACTS, &ids).await;
    assert_eq!(spent(&emulator, before), (1, 1), "one call for 100");
    assert_eq!(back.len(), 100);
    for r in &back {
        assert_eq!(r.text(field::LEGAL_BASIS), Some("consent"), "{r:?}");
        assert_eq!(r.get(field::CONSENT_DATE), Some(&Value::Date(19_782)));
    }
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &contacts).await;

    // Read by source id (a run that wrote nothing): COQL, then the consent by id.
    let fresh = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    fresh.survey(ObjectType::CONTACTS).await.expect("survey");
    let before = counters(&emulator);
    let again = read(&fresh, ObjectType::CONTACTS, &ids).await;
    assert_eq!(
        spent(&emulator, before).0,
        3,
        "two COQL queries and one read by id"
    );
    assert!(
        again
            .iter()
            .all(|r| r.text(field::LEGAL_BASIS) == Some("consent"))
    );
}

#[tokio::test]
async fn a_duplicate_by_source_id_is_not_read_back_by_id_and_the_count_shows_it() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running.base_url).await;
    let companies: Vec<Record> = (0..3).map(company).collect();
    write(&sink, ObjectType::COMPANIES, &companies).await;
    emulator
        .duplicate("Accounts", "co-1")
        .expect("a copy of co-1");
    let ids: Vec<String> = companies.iter().map(|r| r.source_id.clone()).collect();
    let before = counters(&emulator);
    let back = read(&sink, ObjectType::COMPANIES, &ids).await;
    assert_eq!(spent(&emulator, before).0, 1, "one read by id");
    assert_eq!(back.len(), 3, "the copy is not read back by id");
    // The engine compares this count with the records read back: one beyond them.
    assert_eq!(
        sink.count_with_source_id(ObjectType::COMPANIES)
            .await
            .expect("count"),
        Some(4)
    );
}
