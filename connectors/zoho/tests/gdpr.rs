//! The GDPR consent record (`Data_Processing_Basis_Details`) of Zoho contacts, against the
//! emulator over real HTTP on loopback: read as `legal_basis` and `consent_date`, written only
//! when a record holds one, one basis by precedence, read back, never cleared; and not carried
//! where the org has GDPR off.

mod common;

use common::{config, start};
use ferry_core::{ObjectType, Record, Sink, Source, Value, field};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::{Value as Json, json};

fn gdpr() -> Options {
    Options {
        gdpr: true,
        ..Options::default()
    }
}

fn contact(id: &str, basis: Option<&str>, date: Option<i64>) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, id);
    r.set(field::LAST_NAME, Value::Text(format!("Person {id}")));
    if let Some(b) = basis {
        r.set(field::LEGAL_BASIS, Value::Text(b.into()));
    }
    if let Some(d) = date {
        r.set(field::CONSENT_DATE, Value::Date(d));
    }
    r
}

/// The consent record Zoho holds for the contact with source id `id`.
fn held(emulator: &ferry_sandbox::zoho::Emulator, id: &str) -> Json {
    emulator
        .record_by_source_id("Contacts", id)
        .expect("the contact")["Data_Processing_Basis_Details"]
        .clone()
}

async fn write(sink: &ZohoSink, records: &[Record]) {
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, records)
        .await
        .expect("upsert");
    for o in &outcomes {
        assert!(o.result.is_ok(), "{o:?}");
    }
}

#[tokio::test]
async fn a_gdpr_sink_writes_one_basis_and_the_date_reads_them_back_and_never_clears_them() {
    let (emulator, running) = start(gdpr()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    sink.survey(ObjectType::CONTACTS).await.expect("survey");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let capability = sink.capability(ObjectType::CONTACTS).expect("capability");
    for f in [field::LEGAL_BASIS, field::CONSENT_DATE] {
        assert!(capability.stored.iter().any(|s| s == f), "{f} stored");
    }
    let limit = capability
        .limits
        .iter()
        .find(|l| l.field == field::LEGAL_BASIS)
        .expect("a limit on the legal basis");
    assert_eq!(limit.max_names, Some(1), "Zoho holds one basis");
    assert_eq!(
        limit
            .only_values
            .as_deref()
            .and_then(|v| v.first())
            .map(String::as_str),
        Some("consent"),
        "consent first"
    );
    let companies = sink.capability(ObjectType::COMPANIES).expect("capability");
    assert!(!companies.stored.iter().any(|s| s == field::LEGAL_BASIS));

    let records = [
        contact("c-1", Some("consent"), Some(19_782)),
        contact("c-2", Some("contract"), None),
        contact("c-3", None, None),
        contact("c-4", Some("Awaiting"), None),
        // Not narrowed by an engine here: the first by precedence is written.
        contact("c-5", Some("legitimate_interests; not_applicable"), None),
    ];
    write(&sink, &records).await;
    assert_eq!(
        held(&emulator, "c-1"),
        json!({"Data_Processing_Basis": "Obtained", "Consent_Date": "2024-02-29"})
    );
    assert_eq!(
        held(&emulator, "c-2"),
        json!({"Data_Processing_Basis": "Contract"})
    );
    assert_eq!(
        held(&emulator, "c-3"),
        json!({"Data_Processing_Basis": "Not Applicable"}),
        "left out: Zoho's default"
    );
    assert_eq!(
        held(&emulator, "c-4"),
        json!({"Data_Processing_Basis": "Awaiting"})
    );
    assert_eq!(
        held(&emulator, "c-5"),
        json!({"Data_Processing_Basis": "Legitimate Interests"})
    );

    // Read back by id (COQL does not serve it), as the model names it.
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let back = sink
        .read_back(ObjectType::CONTACTS, &ids)
        .await
        .expect("read back");
    let read = |id: &str| {
        let r = back.iter().find(|r| r.source_id == id).expect("read back");
        (
            r.text(field::LEGAL_BASIS).map(str::to_owned),
            r.get(field::CONSENT_DATE).cloned(),
        )
    };
    assert_eq!(
        read("c-1"),
        (Some("consent".into()), Some(Value::Date(19_782)))
    );
    assert_eq!(read("c-2"), (Some("contract".into()), None));
    assert_eq!(read("c-3"), (Some("not_applicable".into()), None));
    assert_eq!(read("c-4"), (Some("Awaiting".into()), None));

    // A rerun without them clears nothing; a new basis alone keeps the date.
    write(&sink, &[contact("c-1", None, None)]).await;
    assert_eq!(
        held(&emulator, "c-1"),
        json!({"Data_Processing_Basis": "Obtained", "Consent_Date": "2024-02-29"})
    );
    write(&sink, &[contact("c-1", Some("contract"), None)]).await;
    assert_eq!(
        held(&emulator, "c-1"),
        json!({"Data_Processing_Basis": "Contract", "Consent_Date": "2024-02-29"})
    );
}

#[tokio::test]
async fn an_org_with_gdpr_off_holds_neither_and_its_source_reads_none() {
    let (emulator, running) = start(Options::default()).await;
    emulator.seed(&generate(
        30,
        5,
        &Mess {
            legal_bases: 0.5,
            ..Mess::none()
        },
    ));
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    sink.survey(ObjectType::CONTACTS).await.expect("survey");
    let stored = sink
        .capability(ObjectType::CONTACTS)
        .expect("capability")
        .stored;
    for f in [field::LEGAL_BASIS, field::CONSENT_DATE] {
        assert!(!stored.iter().any(|s| s == f), "{f} not carried");
    }
    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    let (records, _) = common::read_all(&source, ObjectType::CONTACTS).await;
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.get(field::LEGAL_BASIS).is_none() && r.get(field::CONSENT_DATE).is_none())
    );
}

/// Reads every contact page by page; returns the records and each page's size.
async fn read_pages(source: &ZohoSource) -> (Vec<Record>, Vec<usize>) {
    let (mut records, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let page = source
            .read_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("page");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        sizes.push(page.records.len());
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (records, sizes),
        }
    }
}

#[tokio::test]
async fn a_gdpr_source_reads_each_contacts_basis_and_date_at_one_call_per_hundred() {
    let seed = generate(
        450,
        9,
        &Mess {
            legal_bases: 0.5,
            ..Mess::none()
        },
    );
    let mut calls = Vec::new();
    let mut read = Vec::new();
    for options in [Options::default(), gdpr()] {
        let (emulator, running) = start(options).await;
        emulator.seed(&seed);
        let source = ZohoSource::new(
            // One call in flight: no COQL pages asked ahead, so the calls counted are exactly
            // those of the pages read.
            config(
                &running.base_url,
                json!({"coql_page_size": 250, "page_size": 200, "max_concurrent_requests": 1}),
            ),
            "source",
        )
        .expect("source");
        let before = emulator.requests();
        let (records, sizes) = read_pages(&source).await;
        calls.push((emulator.requests() - before, sizes));
        read.push((
            records,
            ferry_sandbox::VendorEmulator::records(&emulator, "contacts"),
        ));
    }
    let (records, in_zoho) = &read[1];
    let mut consent = 0;
    let mut stages = 0;
    for z in in_zoho {
        let id = z["id"].as_str().expect("id");
        let r = records.iter().find(|r| r.source_id == id).expect("read");
        let details = &z["Data_Processing_Basis_Details"];
        let want = match details["Data_Processing_Basis"].as_str().expect("a basis") {
            "Obtained" => "consent",
            "Contract" => "contract",
            "Legitimate Interests" => "legitimate_interests",
            "Not Applicable" => "not_applicable",
            stage => {
                stages += 1;
                stage
            }
        };
        assert_eq!(r.text(field::LEGAL_BASIS), Some(want), "{id}");
        match details["Consent_Date"].as_str() {
            Some(date) => {
                consent += 1;
                assert_eq!(
                    r.get(field::CONSENT_DATE),
                    Value::parse(ferry_core::model::FieldType::Date, date)
                        .expect("a date")
                        .as_ref()
                );
            }
            None => assert_eq!(r.get(field::CONSENT_DATE), None),
        }
    }
    assert!(
        consent >= 10 && stages >= 5,
        "too few seeded: {consent} dated, {stages} stages"
    );
    assert!(
        read[0]
            .0
            .iter()
            .all(|r| r.get(field::LEGAL_BASIS).is_none())
    );

    // Every org is asked once whether it has GDPR on (`GET /org`); one that has is asked for
    // the Contacts field metadata once, then one `?ids=` per 100 contacts of each page.
    let (off, sizes) = &calls[0];
    let (on, _) = &calls[1];
    let per_page: u64 = sizes.iter().map(|n| n.div_ceil(100) as u64).sum();
    assert_eq!(on - off, 1 + per_page, "pages {sizes:?}, {calls:?}");
    println!(
        "{} contacts in {} pages: {off} calls without GDPR, {on} with ({} extra)",
        records.len(),
        sizes.len(),
        on - off
    );
}
