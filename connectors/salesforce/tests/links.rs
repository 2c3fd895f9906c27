//! Deals' contacts and notes' parents through the Salesforce sink, against the sandbox emulator
//! over real HTTP on loopback: contact roles follow the deal's contacts (added and removed, never
//! duplicated), a note lands on one parent (deal first), and refusals name the missing link.

use std::net::SocketAddr;

use ferry_core::model::Link;
use ferry_core::{FieldLimit, ObjectType, Record, SecretRef, Sink, Value, field};
use ferry_salesforce::{SalesforceConfig, SalesforceSink};
use ferry_sandbox::salesforce::{Emulator, Options};
use secrecy::SecretString;
use serde_json::json;

async fn start() -> (Emulator, ferry_sandbox::Running, SalesforceSink) {
    let emulator = Emulator::new(Options::default());
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut config: SalesforceConfig = serde_json::from_value(json!({
        "login_url": running.base_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    let sink = SalesforceSink::new(config, "sink").expect("sink");
    (emulator, running, sink)
}

fn link(object: ObjectType, id: &str) -> Link {
    Link {
        object,
        id: id.into(),
    }
}

fn contact_ids(record: &Record) -> Vec<String> {
    match record.get(field::CONTACTS) {
        Some(Value::Links(links)) => {
            let mut ids: Vec<String> = links.iter().map(|l| l.id.clone()).collect();
            ids.sort();
            ids
        }
        _ => Vec::new(),
    }
}

/// A company `co-1`, contacts `c-1` to `c-3`, and the open stage deals are written in.
async fn parents(sink: &SalesforceSink) -> Value {
    for object in [
        ObjectType::COMPANIES,
        ObjectType::CONTACTS,
        ObjectType::DEALS,
        ObjectType::NOTES,
    ] {
        sink.prepare(object).await.expect("prepare");
    }
    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    company.set(field::NAME, Value::Text("Acme".into()));
    let written = sink
        .upsert(ObjectType::COMPANIES, &[company])
        .await
        .expect("company");
    assert!(written[0].result.is_ok(), "{written:?}");
    let contacts: Vec<Record> = (1..=3)
        .map(|i| {
            let mut c = Record::new(ObjectType::CONTACTS, format!("c-{i}"));
            c.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
            c
        })
        .collect();
    let written = sink
        .upsert(ObjectType::CONTACTS, &contacts)
        .await
        .expect("contacts");
    assert!(written.iter().all(|o| o.result.is_ok()), "{written:?}");
    let pipelines = sink.pipelines(ObjectType::DEALS).await.expect("pipelines");
    Value::stage(pipelines[0].id.clone(), pipelines[0].stages[0].id.clone())
}

fn deal(stage: &Value, contacts: &[&str]) -> Record {
    let mut d = Record::new(ObjectType::DEALS, "d-1");
    d.set(field::NAME, Value::Text("Renewal".into()));
    d.set(field::STAGE, stage.clone());
    d.set(field::CLOSE_DATE, Value::Date(20_000));
    d.set(field::AMOUNT, Value::Decimal(1250.5));
    d.set(field::CURRENCY, Value::Text("EUR".into()));
    d.set(field::COMPANY, Value::Reference("co-1".into()));
    d.set(
        field::CONTACTS,
        Value::Links(
            contacts
                .iter()
                .map(|c| link(ObjectType::CONTACTS, c))
                .collect(),
        ),
    );
    d
}

#[tokio::test]
async fn contact_roles_follow_the_deals_contacts() {
    let (emulator, _running, sink) = start().await;
    let stage = parents(&sink).await;

    let written = sink
        .upsert(ObjectType::DEALS, &[deal(&stage, &["c-1", "c-2"])])
        .await
        .expect("deal");
    assert!(
        written[0].result.as_ref().is_ok_and(|w| w.created),
        "{written:?}"
    );
    assert_eq!(emulator.count("OpportunityContactRole"), 2);
    let back = sink
        .read_back(ObjectType::DEALS, &["d-1".into()])
        .await
        .expect("back");
    assert_eq!(contact_ids(&back[0]), ["c-1", "c-2"]);
    assert_eq!(back[0].get(field::STAGE), Some(&stage));
    assert_eq!(back[0].get(field::CLOSE_DATE), Some(&Value::Date(20_000)));
    assert_eq!(
        back[0].get(field::COMPANY),
        Some(&Value::Reference("co-1".into()))
    );
    assert_eq!(back[0].text(field::CURRENCY), Some("EUR"));

    // The source deal lost c-1 and gained c-3: one role removed, one added, c-2's kept.
    let written = sink
        .upsert(ObjectType::DEALS, &[deal(&stage, &["c-2", "c-3"])])
        .await
        .expect("deal again");
    assert!(
        written[0].result.as_ref().is_ok_and(|w| !w.created),
        "{written:?}"
    );
    assert_eq!(emulator.count("OpportunityContactRole"), 2);
    let back = sink
        .read_back(ObjectType::DEALS, &["d-1".into()])
        .await
        .expect("back");
    assert_eq!(contact_ids(&back[0]), ["c-2", "c-3"]);

    // A contact the sink does not hold: the deal is refused naming it (by source id).
    let refused = sink
        .upsert(ObjectType::DEALS, &[deal(&stage, &["c-2", "c-404"])])
        .await
        .expect("deal with a missing contact");
    let rejection = refused[0].result.as_ref().expect_err("refused");
    assert_eq!(rejection.code, "INVALID_FIELD");
    assert!(rejection.reason.contains("c-404"), "{}", rejection.reason);
}

#[tokio::test]
async fn a_note_lands_on_its_deal_once_with_its_time() {
    let (emulator, _running, sink) = start().await;
    let stage = parents(&sink).await;
    let written = sink
        .upsert(ObjectType::DEALS, &[deal(&stage, &["c-1"])])
        .await
        .expect("deal");
    assert!(written[0].result.is_ok(), "{written:?}");

    let limits = sink
        .capability(ObjectType::NOTES)
        .expect("capability")
        .limits;
    assert!(
        limits.contains(&FieldLimit::max_links(field::PARENTS, 1)),
        "{limits:?}"
    );
    assert!(
        limits.contains(&FieldLimit::max_chars(field::BODY, 32_000).of_plain_text()),
        "{limits:?}"
    );

    let mut note = Record::new(ObjectType::NOTES, "n-1");
    note.set(
        field::BODY,
        Value::Text("<p>Called Ana &amp; Gorō</p>".into()),
    );
    note.set(field::TIMESTAMP, Value::Timestamp(1_636_220_320_000));
    note.set(
        field::PARENTS,
        Value::Links(vec![
            link(ObjectType::COMPANIES, "co-1"),
            link(ObjectType::CONTACTS, "c-1"),
            link(ObjectType::DEALS, "d-1"),
        ]),
    );
    for round in 0..2 {
        let written = sink
            .upsert(ObjectType::NOTES, &[note.clone()])
            .await
            .expect("note");
        let w = written[0].result.as_ref().expect("written");
        assert_eq!(w.created, round == 0, "round {round}");
    }
    assert_eq!(emulator.count("Note"), 1);
    let back = sink
        .read_back(ObjectType::NOTES, &["n-1".into()])
        .await
        .expect("back");
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].get(field::PARENTS),
        Some(&Value::Links(vec![link(ObjectType::DEALS, "d-1")]))
    );
    assert_eq!(back[0].text(field::BODY), Some("Called Ana & Gorō"));
    assert_eq!(
        back[0].get(field::TIMESTAMP),
        Some(&Value::Timestamp(1_636_220_320_000))
    );

    // `ParentId` cannot be updated: a note moved to another parent is created again there,
    // and the old one removed.
    note.set(
        field::PARENTS,
        Value::Links(vec![link(ObjectType::CONTACTS, "c-2")]),
    );
    let moved = sink
        .upsert(ObjectType::NOTES, &[note.clone()])
        .await
        .expect("moved");
    assert!(
        moved[0].result.as_ref().is_ok_and(|w| w.created),
        "{moved:?}"
    );
    assert_eq!(emulator.count("Note"), 1);
    let back = sink
        .read_back(ObjectType::NOTES, &["n-1".into()])
        .await
        .expect("back");
    assert_eq!(
        back[0].get(field::PARENTS),
        Some(&Value::Links(vec![link(ObjectType::CONTACTS, "c-2")]))
    );
    assert_eq!(
        back[0].get(field::TIMESTAMP),
        Some(&Value::Timestamp(1_636_220_320_000))
    );

    // Without a parent the sink holds, or without any: refused, naming what is missing.
    let mut orphan = Record::new(ObjectType::NOTES, "n-2");
    orphan.set(
        field::PARENTS,
        Value::Links(vec![link(ObjectType::DEALS, "d-404")]),
    );
    let bare = Record::new(ObjectType::NOTES, "n-3");
    let refused = sink
        .upsert(ObjectType::NOTES, &[orphan, bare])
        .await
        .expect("refusals");
    let first = refused[0].result.as_ref().expect_err("no such deal");
    assert_eq!(first.code, "INVALID_FIELD");
    assert!(first.reason.contains("d-404"), "{}", first.reason);
    let second = refused[1].result.as_ref().expect_err("no parent");
    assert_eq!(second.code, "REQUIRED_FIELD_MISSING");
    assert_eq!(emulator.count("Note"), 1);
}
