//! N objects and polymorphic references through the engine, without a vendor: a third object
//! invented here (notes, whose `parents` may be companies or contacts, several at once) runs
//! beside the built-in two through an in-memory source and sink that keep the connector
//! contract (upsert by source id, references resolved to the sink's own ids and mapped back on
//! read-back, an unresolved reference refused naming the field).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::MemorySource;
use ferry_core::model::{FieldSpec, FieldType, Link, ObjectSpec, RefSpec, write_order};
use ferry_core::{
    Capability, ConnectorResult, Mode, ObjectType, Progress, Record, RecordOutcome,
    RecordRejection, Report, RunOptions, Sink, Value, Written, field, run,
};

const BODY: &str = "body";
const PARENTS: &str = "parents";

static NOTES_SPEC: ObjectSpec = ObjectSpec {
    name: "notes",
    fields: &[
        FieldSpec {
            name: BODY,
            ty: FieldType::Text,
        },
        FieldSpec {
            name: PARENTS,
            ty: FieldType::Reference(RefSpec {
                targets: &[ObjectType::COMPANIES, ObjectType::CONTACTS],
                many: true,
            }),
        },
    ],
};
const NOTES: ObjectType = ObjectType::new(&NOTES_SPEC);

/// A sink with ids of its own: records are keyed by (object, source id), references are stored
/// as sink ids and turned back into source ids on read-back, as a vendor connector does.
#[derive(Default)]
struct MemorySink {
    /// (object, source id) -> (sink id, record as stored, references as sink ids).
    stored: Mutex<BTreeMap<(ObjectType, String), Record>>,
    sink_ids: Mutex<HashMap<(ObjectType, String), String>>,
    /// When set, read-back drops the last link of this note (a sink that lost an association).
    lose_a_link_of: Option<String>,
}

impl MemorySink {
    fn sink_id(&self, object: ObjectType, source_id: &str) -> Option<String> {
        let ids = self.sink_ids.lock().unwrap();
        ids.get(&(object, source_id.to_owned())).cloned()
    }
    fn source_id(&self, object: ObjectType, sink_id: &str) -> Option<String> {
        let ids = self.sink_ids.lock().unwrap();
        ids.iter()
            .find(|((o, _), s)| *o == object && s.as_str() == sink_id)
            .map(|((_, source), _)| source.clone())
    }
    /// The record with its references as sink ids, or the field that cannot be resolved.
    fn resolve(&self, record: &Record) -> Result<Record, String> {
        let mut out = record.clone();
        for edge in record.object.references() {
            match out.fields.get_mut(edge.field) {
                Some(Value::Reference(id)) => {
                    *id = self.sink_id(edge.targets[0], id).ok_or(edge.field)?;
                }
                Some(Value::Links(links)) => {
                    for link in links.iter_mut() {
                        link.id = self.sink_id(link.object, &link.id).ok_or(edge.field)?;
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
    fn map_back(&self, mut record: Record) -> Record {
        for edge in record.object.references() {
            match record.fields.get_mut(edge.field) {
                Some(Value::Reference(id)) => {
                    *id = self.source_id(edge.targets[0], id).unwrap_or_default();
                }
                Some(Value::Links(links)) => {
                    for link in links.iter_mut() {
                        link.id = self.source_id(link.object, &link.id).unwrap_or_default();
                    }
                }
                _ => {}
            }
        }
        record
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn vendor(&self) -> &'static str {
        "memsink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: 4,
            read_back_size: 5,
            stored: object
                .fields()
                .iter()
                // No owner: it would need the vendors' users (tests/directory.rs has them).
                .filter(|f| {
                    f.name != field::CREATED_AT
                        && f.name != field::UPDATED_AT
                        && f.ty != FieldType::Owner
                })
                .map(|f| f.name.to_owned())
                .collect(),
            required: Vec::new(),
            opt_out_needs_email: false,
            limits: Vec::new(),
        })
    }
    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }
    async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
        Ok(())
    }
    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let mut outcomes = Vec::new();
        for record in records {
            let result = match self.resolve(record) {
                Err(name) => Err(RecordRejection {
                    source_id: record.source_id.clone(),
                    code: "UNRESOLVED_REFERENCE".into(),
                    reason: format!("field `{name}` refers to a record not in the sink"),
                }),
                Ok(resolved) => {
                    let key = (object, record.source_id.clone());
                    let mut ids = self.sink_ids.lock().unwrap();
                    let created = !ids.contains_key(&key);
                    let next = format!("{}-{}", object.as_str(), ids.len() + 1);
                    let sink_id = ids.entry(key.clone()).or_insert(next).clone();
                    drop(ids);
                    self.stored.lock().unwrap().insert(key, resolved);
                    Ok(Written { sink_id, created })
                }
            };
            outcomes.push(RecordOutcome {
                source_id: record.source_id.clone(),
                result,
            });
        }
        Ok(outcomes)
    }
    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        let stored: Vec<Record> = {
            let all = self.stored.lock().unwrap();
            source_ids
                .iter()
                .filter_map(|id| all.get(&(object, id.clone())).cloned())
                .collect()
        };
        Ok(stored
            .into_iter()
            .map(|r| {
                let mut back = self.map_back(r);
                if self.lose_a_link_of.as_deref() == Some(back.source_id.as_str())
                    && let Some(Value::Links(links)) = back.fields.get_mut(PARENTS)
                {
                    links.pop();
                }
                back
            })
            .collect())
    }
    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let all = self.stored.lock().unwrap();
        Ok(Some(all.keys().filter(|(o, _)| *o == object).count() as u64))
    }
}

fn link(object: ObjectType, id: &str) -> Link {
    Link {
        object,
        id: id.to_owned(),
    }
}

/// Four companies, six contacts (each at a company), and notes hanging on one or several
/// records of either object; note `n-bad` points at a company the source does not have, and
/// `n-odd` at another note, which its field does not allow.
fn crm() -> Vec<Record> {
    let mut records = Vec::new();
    for i in 0..4 {
        let mut c = Record::new(ObjectType::COMPANIES, format!("co-{i}"));
        c.set(field::NAME, Value::Text(format!("Company {i}")));
        records.push(c);
    }
    for i in 0..6 {
        let mut p = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
        p.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
        p.set(field::COMPANY, Value::Reference(format!("co-{}", i % 4)));
        records.push(p);
    }
    let notes: [(&str, Vec<Link>); 7] = [
        ("n-1", vec![link(ObjectType::COMPANIES, "co-0")]),
        ("n-2", vec![link(ObjectType::CONTACTS, "p-3")]),
        (
            "n-3",
            vec![
                link(ObjectType::CONTACTS, "p-1"),
                link(ObjectType::COMPANIES, "co-1"),
                link(ObjectType::CONTACTS, "p-5"),
            ],
        ),
        (
            "n-4",
            vec![
                link(ObjectType::COMPANIES, "co-2"),
                link(ObjectType::COMPANIES, "co-3"),
            ],
        ),
        ("n-5", vec![]),
        ("n-bad", vec![link(ObjectType::COMPANIES, "co-404")]),
        ("n-odd", vec![link(NOTES, "n-1")]),
    ];
    for (id, parents) in notes {
        let mut n = Record::new(NOTES, id);
        n.set(BODY, Value::Text(format!("Called about {id}")));
        n.set(PARENTS, Value::Links(parents));
        records.push(n);
    }
    records
}

async fn migrate(records: Vec<Record>, sink: Arc<MemorySink>) -> Report {
    // Given children first: the write order comes from the references, not from this list.
    let objects = write_order(&[NOTES, ObjectType::CONTACTS, ObjectType::COMPANIES]).unwrap();
    assert_eq!(
        objects,
        [ObjectType::COMPANIES, ObjectType::CONTACTS, NOTES],
        "notes wait for both objects their parents may be"
    );
    let options = RunOptions {
        objects,
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(
        Mode::Migrate,
        Arc::new(MemorySource::new(records, 3)),
        sink,
        &options,
        progress,
    )
    .await
}

#[tokio::test]
async fn a_third_object_with_references_to_either_of_two_migrates_and_verifies() {
    let sink = Arc::new(MemorySink::default());
    let report = migrate(crm(), Arc::clone(&sink)).await;
    assert_eq!(report.error, None);
    let by_object: BTreeMap<&str, _> = report
        .objects
        .iter()
        .map(|o| (o.object.unwrap().as_str(), o))
        .collect();
    let notes = by_object["notes"];
    assert_eq!((notes.read, notes.written, notes.failed), (7, 5, 2));
    assert_eq!(notes.verified, 5);
    assert!(notes.digests_match, "{notes:?}");
    for object in ["companies", "contacts"] {
        let o = by_object[object];
        assert!(o.digests_match && o.failed == 0, "{object}: {o:?}");
    }
    let mut refused: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.source_id.as_str(), f.code.as_str()))
        .collect();
    refused.sort_unstable();
    assert_eq!(
        refused,
        [
            ("n-bad", "MISSING_REFERENCE"),
            ("n-odd", "REFERENCE_NOT_ALLOWED")
        ]
    );
    let odd = report.failures.iter().find(|f| f.source_id == "n-odd");
    assert!(
        odd.is_some_and(|f| f.reason.contains("may refer only to companies or contacts")),
        "{odd:?}"
    );

    // The sink holds each note's parents as its own ids, of the right objects.
    let n3 = sink.stored.lock().unwrap()[&(NOTES, "n-3".to_owned())].clone();
    let Some(Value::Links(parents)) = n3.get(PARENTS) else {
        panic!("n-3 has no parents: {n3:?}");
    };
    let expected: Vec<Link> = [
        (ObjectType::CONTACTS, "p-1"),
        (ObjectType::COMPANIES, "co-1"),
        (ObjectType::CONTACTS, "p-5"),
    ]
    .into_iter()
    .map(|(object, id)| link(object, &sink.sink_id(object, id).unwrap()))
    .collect();
    assert_eq!(parents, &expected);

    // A rerun updates what is there and creates nothing.
    let again = migrate(crm(), Arc::clone(&sink)).await;
    let created: u64 = again.objects.iter().map(|o| o.created).sum();
    let updated: u64 = again.objects.iter().map(|o| o.updated).sum();
    assert_eq!((created, updated), (0, 4 + 6 + 5));
}

#[tokio::test]
async fn a_lost_link_is_a_mismatch() {
    let sink = Arc::new(MemorySink {
        lose_a_link_of: Some("n-3".into()),
        ..MemorySink::default()
    });
    let report = migrate(crm(), sink).await;
    let notes = report
        .objects
        .iter()
        .find(|o| o.object == Some(NOTES))
        .unwrap();
    assert_eq!((notes.verified, notes.mismatched), (4, 1));
    assert!(!notes.digests_match);
}

#[tokio::test]
async fn with_missing_references_dropped_a_note_keeps_its_other_parents() {
    let mut records = crm();
    records.retain(|r| r.source_id != "n-odd");
    for r in &mut records {
        if r.source_id == "n-bad" {
            r.set(
                PARENTS,
                Value::Links(vec![
                    link(ObjectType::COMPANIES, "co-404"),
                    link(ObjectType::CONTACTS, "p-2"),
                ]),
            );
        }
    }
    let sink = Arc::new(MemorySink::default());
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS, NOTES],
        quality: ferry_core::quality::QualityRules {
            missing_reference: ferry_core::quality::MissingReference::Drop,
            ..Default::default()
        },
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = run(
        Mode::Migrate,
        Arc::new(MemorySource::new(records, 3)),
        Arc::clone(&sink) as Arc<dyn Sink>,
        &options,
        progress,
    )
    .await;
    assert_eq!(report.error, None);
    let stored = sink.stored.lock().unwrap();
    let bad = &stored[&(NOTES, "n-bad".to_owned())];
    let p2 = sink.sink_id(ObjectType::CONTACTS, "p-2").unwrap();
    assert_eq!(
        bad.get(PARENTS),
        Some(&Value::Links(vec![link(ObjectType::CONTACTS, &p2)]))
    );
    let warned = report
        .warnings
        .iter()
        .any(|w| w.source_id == "n-bad" && w.code == "MISSING_REFERENCE");
    assert!(warned, "{:?}", report.warnings);
}

#[tokio::test]
async fn a_sink_without_a_binding_for_an_object_stops_the_run_before_reading() {
    struct NoNotes(MemorySink);
    #[async_trait]
    impl Sink for NoNotes {
        fn vendor(&self) -> &'static str {
            "memsink"
        }
        fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
            if object == NOTES {
                return Err(Capability::unsupported("memsink", object));
            }
            self.0.capability(object)
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
            Ok(())
        }
        async fn upsert(&self, o: ObjectType, r: &[Record]) -> ConnectorResult<Vec<RecordOutcome>> {
            self.0.upsert(o, r).await
        }
        async fn read_back(&self, o: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
            self.0.read_back(o, ids).await
        }
    }
    let sink = Arc::new(NoNotes(MemorySink::default()));
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS, NOTES],
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = run(
        Mode::Migrate,
        Arc::new(MemorySource::new(crm(), 3)),
        Arc::clone(&sink) as Arc<dyn Sink>,
        &options,
        progress,
    )
    .await;
    assert_eq!(
        report.error.as_deref(),
        Some("memsink: this connector cannot write notes")
    );
    assert_eq!(report.error_kind, Some(ferry_core::ErrorKind::Config));
    assert!(
        sink.0.stored.lock().unwrap().is_empty(),
        "nothing was written"
    );
}
