//! Deletions with Zoho CRM: as a sink, removing by the source-id field only into the recycle
//! bin; as a source, the records deleted since a watermark (`GET /{module}/deleted` with
//! `If-Modified-Since`).

mod common;

use common::{config, start};
use ferry_core::{
    DeletedPage, ObjectType, Record, Removal, RemoveOutcome, Sink, Source, Value, Watermark, field,
};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::json;

fn outcomes(got: Vec<RemoveOutcome>) -> Vec<(String, String)> {
    got.into_iter()
        .map(|o| {
            let what = match o.result {
                Ok(r) => format!("{r:?}"),
                Err(e) => e.code,
            };
            (o.source_id, what)
        })
        .collect()
}

/// Every id the source's deletion log gives since `since`.
async fn deleted_since(source: &ZohoSource, object: ObjectType, since: &Watermark) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        match source
            .fetch_deleted_page(object, since, cursor.as_deref())
            .await
            .expect("deleted page")
        {
            DeletedPage::Lost => panic!("Zoho's log is never lost here"),
            DeletedPage::Ids { ids: page, next } => {
                ids.extend(page);
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn removes_by_source_id_into_the_recycle_bin_and_the_source_lists_the_deleted() {
    let (emulator, running) = start(Options::default()).await;
    // Records born in Zoho: no source id, never listed nor removed.
    emulator.seed(&generate(3, 5, &Mess::none()));
    let born = emulator.count("Accounts");
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    for object in [ObjectType::COMPANIES, ObjectType::NOTES] {
        sink.prepare(object).await.expect("prepare");
    }
    let companies: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = Record::new(ObjectType::COMPANIES, format!("c{i}"));
            r.set(field::NAME, Value::Text(format!("Company {i}")));
            r
        })
        .collect();
    for o in sink
        .upsert(ObjectType::COMPANIES, &companies)
        .await
        .expect("upsert")
    {
        o.result.expect("written");
    }
    let mut note = Record::new(ObjectType::NOTES, "n0");
    note.set(field::BODY, Value::Text("Call back".into()));
    note.set(
        field::PARENTS,
        Value::Links(vec![ferry_core::model::Link {
            object: ObjectType::COMPANIES,
            id: "c0".into(),
        }]),
    );
    for o in sink
        .upsert(ObjectType::NOTES, &[note])
        .await
        .expect("upsert note")
    {
        o.result.expect("note written");
    }
    let zoho_id = |sid: &str| {
        emulator
            .record_by_source_id("Accounts", sid)
            .expect("stored")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let mut gone = vec![zoho_id("c1"), zoho_id("c2")];
    gone.sort();
    let since = source
        .sync_point(ObjectType::COMPANIES)
        .await
        .expect("sync point");

    let listed = sink
        .source_ids_page(ObjectType::COMPANIES, None)
        .await
        .expect("ids");
    let mut ids = listed.ids;
    ids.sort();
    assert_eq!(
        (ids, listed.next),
        (vec!["c0".into(), "c1".into(), "c2".into()], None)
    );
    let notes = sink
        .source_ids_page(ObjectType::NOTES, None)
        .await
        .expect("note ids");
    assert_eq!(notes.ids, ["n0"]);

    let asked = ["c1".to_owned(), "nope".to_owned(), "c2".to_owned()];
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &asked, Removal::Archive)
            .await
            .expect("remove"),
    );
    assert_eq!(
        got,
        [
            ("c1".into(), "Deleted".into()),
            ("nope".into(), "Absent".into()),
            ("c2".into(), "Deleted".into()),
        ]
    );
    assert_eq!(emulator.count("Accounts"), born + 1);
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &asked[..1], Removal::Delete)
            .await
            .expect("again"),
    );
    assert_eq!(
        got,
        [("c1".into(), "Absent".into())],
        "removed twice: absent"
    );
    let notes_before = emulator.count("Notes");
    let got = outcomes(
        sink.remove(ObjectType::NOTES, &["n0".into()], Removal::Delete)
            .await
            .expect("note"),
    );
    assert_eq!(got, [("n0".into(), "Deleted".into())]);
    assert_eq!(emulator.count("Notes"), notes_before - 1);

    // The source: exactly the two accounts deleted since the sync point, none of the contacts,
    // and nothing since a later point.
    assert_eq!(
        deleted_since(&source, ObjectType::COMPANIES, &since).await,
        gone
    );
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &since).await,
        Vec::<String>::new()
    );
    let later = Watermark::at(emulator.now_ms() + 2_000);
    assert_eq!(
        deleted_since(&source, ObjectType::COMPANIES, &later).await,
        Vec::<String>::new()
    );
}
