//! Removals from a Dataverse sink (`[sync] deletes = "delete"`): listing the source ids its
//! records carry, deleting by them only, and refusing a record whose delete would take others
//! with it (Dataverse's Cascade relationships), naming what would go.

mod common;

use common::{config, start, upsert_all};
use ferry_core::{ConnectorError, ObjectType, Record, Removal, RemoveOutcome, Sink, Value, field};
use ferry_dynamics::DynamicsSink;
use ferry_sandbox::dynamics::Options;
use ferry_sandbox::seed::{Mess, generate};

fn record(object: ObjectType, id: &str, name: &'static str, parent: Option<&str>) -> Record {
    let mut r = Record::new(object, id);
    if object == ObjectType::NOTES {
        r.set(field::BODY, Value::Text("Call back".into()));
    } else {
        r.set(name, Value::Text(format!("Name of {id}")));
    }
    if let Some(parent) = parent {
        match object == ObjectType::NOTES {
            true => {
                let (object, id) = parent.split_once(':').expect("object:id");
                let object = if object == "company" {
                    ObjectType::COMPANIES
                } else {
                    ObjectType::CONTACTS
                };
                r.set(
                    field::PARENTS,
                    Value::Links(vec![ferry_core::model::Link {
                        object,
                        id: id.to_owned(),
                    }]),
                );
            }
            false => r.set(field::COMPANY, Value::Reference(parent.to_owned())),
        }
    }
    r
}

/// `(source id, what happened)`, the refusal's code and reason when refused.
fn outcomes(got: Vec<RemoveOutcome>) -> Vec<(String, String)> {
    got.into_iter()
        .map(|o| {
            let what = match o.result {
                Ok(r) => format!("{r:?}"),
                Err(e) => format!("{}: {}", e.code, e.reason),
            };
            (o.source_id, what)
        })
        .collect()
}

#[tokio::test]
async fn deletes_by_source_id_only_and_refuses_what_would_cascade_naming_it() {
    let (env, running) = start(Options::default()).await;
    // Records born in Dataverse: no source id, never listed nor removed.
    env.seed(&generate(3, 5, &Mess::none()));
    let born = |table| env.count(table);
    let (born_accounts, born_contacts, born_notes) =
        (born("account"), born("contact"), born("annotation"));
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    for object in ObjectType::ALL {
        sink.prepare(object).await.expect("prepare");
    }
    let companies: Vec<Record> = (0..4)
        .map(|i| record(ObjectType::COMPANIES, &format!("c{i}"), field::NAME, None))
        .collect();
    upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    let contacts = [
        record(ObjectType::CONTACTS, "p0", field::LAST_NAME, Some("c0")),
        record(ObjectType::CONTACTS, "p1", field::LAST_NAME, None),
    ];
    upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;
    let deal = record(ObjectType::DEALS, "d1", field::NAME, Some("c1"));
    upsert_all(&sink, ObjectType::DEALS, &[deal]).await;
    let notes = [
        record(ObjectType::NOTES, "n2", field::BODY, Some("company:c2")),
        record(ObjectType::NOTES, "n3", field::BODY, Some("company:c2")),
        record(ObjectType::NOTES, "np", field::BODY, Some("contact:p1")),
    ];
    upsert_all(&sink, ObjectType::NOTES, &notes).await;

    // Dataverse has no archive for these tables: `archive` is refused before anything.
    let refused = sink
        .remove(ObjectType::COMPANIES, &[], Removal::Archive)
        .await
        .expect_err("archive refused");
    let ConnectorError::Unsupported { detail, .. } = refused else {
        panic!("not unsupported: {refused:?}");
    };
    assert!(detail.contains("deletes = \"delete\""), "{detail}");
    assert_eq!(
        sink.remove(ObjectType::COMPANIES, &[], Removal::Delete)
            .await
            .expect("nothing"),
        Vec::new()
    );

    let listed = sink
        .source_ids_page(ObjectType::COMPANIES, None)
        .await
        .expect("ids");
    let mut ids = listed.ids.clone();
    ids.sort();
    assert_eq!(
        (ids, listed.next),
        (
            vec!["c0", "c1", "c2", "c3"]
                .into_iter()
                .map(String::from)
                .collect(),
            None
        )
    );

    let ids: Vec<String> = ["c0", "c1", "c2", "c3", "nope"].map(String::from).to_vec();
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &ids, Removal::Delete)
            .await
            .expect("remove"),
    );
    let expected = [
        (
            "c0",
            "WOULD_CASCADE: Dataverse would delete the 1 contacts (parentcustomerid) still on this account \
             with it (and what hangs on them); not deleted",
        ),
        (
            "c1",
            "WOULD_CASCADE: Dataverse would delete the 1 opportunities (customerid) still on this account \
             with it (and what hangs on them); not deleted",
        ),
        (
            "c2",
            "WOULD_CASCADE: Dataverse would delete the 2 notes still on this account with it (and what \
             hangs on them); not deleted",
        ),
        ("c3", "Deleted"),
        ("nope", "Absent"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(got, expected);
    assert_eq!(env.count("account"), born_accounts + 3);

    // Children first, as a sync removes them: then their parents go, taking nothing else.
    let notes: Vec<String> = ["n2", "n3"].map(String::from).to_vec();
    let got = outcomes(
        sink.remove(ObjectType::NOTES, &notes, Removal::Delete)
            .await
            .expect("notes"),
    );
    assert_eq!(
        got,
        [
            ("n2".into(), "Deleted".into()),
            ("n3".into(), "Deleted".into())
        ]
    );
    let got = outcomes(
        sink.remove(ObjectType::DEALS, &["d1".into()], Removal::Delete)
            .await
            .expect("deals"),
    );
    assert_eq!(got, [("d1".into(), "Deleted".into())]);
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &ids[1..3], Removal::Delete)
            .await
            .expect("companies"),
    );
    assert_eq!(
        got,
        [
            ("c1".into(), "Deleted".into()),
            ("c2".into(), "Deleted".into())
        ]
    );
    assert_eq!(env.count("account"), born_accounts + 1);
    assert_eq!(env.count("opportunity"), 0);
    // The contact's note is kept: only the two on c2 went.
    assert_eq!(env.count("annotation"), born_notes + 1);
    // A contact with a note is refused too; a removal repeated is absent.
    let got = outcomes(
        sink.remove(
            ObjectType::CONTACTS,
            &["p1".into(), "c3".into()],
            Removal::Delete,
        )
        .await
        .expect("contacts"),
    );
    assert_eq!(got[0].1.split(':').next(), Some("WOULD_CASCADE"));
    assert!(
        got[0].1.contains("the 1 notes still on this contact"),
        "{got:?}"
    );
    assert_eq!(got[1], ("c3".into(), "Absent".into()));
    assert_eq!(env.count("contact"), born_contacts + 2);
}
