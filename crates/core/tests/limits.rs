//! What a sink declares it cannot hold, through the real pipeline with an in-memory source and
//! sink: a note body longer than the sink's limit is refused before the write (never
//! truncated), a note with more parents than the sink holds arrives with the first by the
//! edge's priority and is reported as not carried, and both verify. The sink stores the plain
//! text of the bodies, as a vendor without HTML notes does, so HTML bodies verify too, and
//! keeps a note's time to the second, so a time with milliseconds is cut before the digest. It
//! also fills in a company's city when none is written, as Pipedrive does a deal's amount: a
//! company without one is written and verified with the sink's value, as a warning.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::MemorySource;
use ferry_core::model::{FieldSpec, FieldType, Link, ObjectSpec, RefSpec, write_order};
use ferry_core::quality::{NOT_CARRIED, SINK_DEFAULT, TIME_ROUNDED, TOO_LONG};
use ferry_core::{
    Capability, ConnectorResult, FieldLimit, Mode, ObjectType, Progress, Record, RecordOutcome,
    RecordRejection, Report, RunOptions, Sink, Stage, Value, Written, field, run,
};

const BODY: &str = "body";
const PARENTS: &str = "parents";
const TIME: &str = "timestamp";
/// The sink's longest body, HubSpot's `hs_note_body`.
const MAX_BODY: usize = 65_536;
/// The city the sink gives a company written without one.
const SINK_CITY: &str = "Tallinn";

static DEALS_SPEC: ObjectSpec = ObjectSpec {
    name: "deals",
    fields: &[FieldSpec {
        name: field::NAME,
        ty: FieldType::Text,
    }],
};
const DEALS: ObjectType = ObjectType::new(&DEALS_SPEC);

/// Notes hang on deals, contacts and companies, in that priority.
static NOTES_SPEC: ObjectSpec = ObjectSpec {
    name: "notes",
    fields: &[
        FieldSpec {
            name: BODY,
            ty: FieldType::RichText,
        },
        FieldSpec {
            name: PARENTS,
            ty: FieldType::Reference(RefSpec {
                targets: &[DEALS, ObjectType::CONTACTS, ObjectType::COMPANIES],
                many: true,
            }),
        },
        FieldSpec {
            name: TIME,
            ty: FieldType::Timestamp,
        },
    ],
};
const NOTES: ObjectType = ObjectType::new(&NOTES_SPEC);

/// A sink of single-parent notes with plain-text bodies of at most [`MAX_BODY`] characters,
/// and times to the second.
/// Like a vendor, it refuses what it cannot hold (so a record the engine let through over a
/// limit shows up as the sink's refusal, not the engine's), and it stores the plain form of a
/// body.
#[derive(Default)]
struct OneParentSink {
    stored: Mutex<BTreeMap<(ObjectType, String), Record>>,
    /// Every note the engine sent, by source id.
    sent: Mutex<Vec<String>>,
    /// Ignore the declared limits (to show what the engine's checks prevent).
    declare_nothing: bool,
}

#[async_trait]
impl Sink for OneParentSink {
    fn vendor(&self) -> &'static str {
        "onesink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        let limits = if self.declare_nothing {
            Vec::new()
        } else if object == NOTES {
            vec![
                FieldLimit::max_chars(BODY, MAX_BODY).of_plain_text(),
                FieldLimit::max_links(PARENTS, 1),
                FieldLimit::to_the_second(TIME),
            ]
        } else if object == ObjectType::COMPANIES {
            vec![FieldLimit::unset_reads_as(field::CITY, SINK_CITY)]
        } else {
            Vec::new()
        };
        Ok(Capability {
            batch_size: 4,
            read_back_size: 5,
            // No owner: it would need the vendors' users (tests/directory.rs has them).
            stored: object
                .fields()
                .iter()
                .filter(|f| f.ty != FieldType::Owner)
                .map(|f| f.name.to_owned())
                .collect(),
            required: Vec::new(),
            opt_out_needs_email: false,
            limits,
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
            let mut copy = record.clone();
            let mut refused = None;
            // Like a vendor with a default, it holds its own value where none is written.
            if object == ObjectType::COMPANIES && copy.get(field::CITY).is_none() {
                copy.set(field::CITY, Value::Text(SINK_CITY.into()));
            }
            if object == NOTES {
                self.sent.lock().unwrap().push(record.source_id.clone());
                if let Some(Value::Text(body)) = copy.fields.get_mut(BODY) {
                    *body = ferry_core::richtext::to_plain(body);
                    if body.chars().count() > MAX_BODY {
                        refused = Some("STRING_TOO_LONG");
                    }
                }
                if let Some(Value::Timestamp(ms)) = copy.fields.get_mut(TIME) {
                    *ms -= ms.rem_euclid(1_000);
                }
                if matches!(copy.get(PARENTS), Some(Value::Links(l)) if l.len() > 1) {
                    refused = Some("ONE_PARENT_ONLY");
                }
            }
            let key = (object, record.source_id.clone());
            let result = match refused {
                Some(code) => Err(RecordRejection {
                    source_id: record.source_id.clone(),
                    code: code.into(),
                    reason: "refused by the sink".into(),
                }),
                None => {
                    let created = self.stored.lock().unwrap().insert(key, copy).is_none();
                    Ok(Written {
                        sink_id: format!("s-{}", record.source_id),
                        created,
                    })
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
        let all = self.stored.lock().unwrap();
        Ok(source_ids
            .iter()
            .filter_map(|id| all.get(&(object, id.clone())).cloned())
            .collect())
    }
}

fn link(object: ObjectType, id: &str) -> Link {
    Link {
        object,
        id: id.to_owned(),
    }
}

/// Two companies, two contacts, a deal, and five notes: one too long for the sink, one on
/// three parents of three objects, one on two contacts, one in HTML, one plain.
fn crm() -> Vec<Record> {
    let mut records = Vec::new();
    for i in 0..2 {
        let mut c = Record::new(ObjectType::COMPANIES, format!("co-{i}"));
        c.set(field::NAME, Value::Text(format!("Company {i}")));
        // co-0 has no city: the sink gives it its own.
        if i == 1 {
            c.set(field::CITY, Value::Text("Riga".into()));
        }
        records.push(c);
        let mut p = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
        p.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
        records.push(p);
    }
    let mut d = Record::new(DEALS, "d-0");
    d.set(field::NAME, Value::Text("Renewal".into()));
    records.push(d);
    let notes: [(&str, String, Vec<Link>); 5] = [
        (
            "n-long",
            "Łódź ".repeat(14_000),
            vec![link(ObjectType::CONTACTS, "p-0")],
        ),
        (
            "n-three",
            "Met all three".into(),
            vec![
                link(ObjectType::COMPANIES, "co-1"),
                link(ObjectType::CONTACTS, "p-1"),
                link(DEALS, "d-0"),
            ],
        ),
        (
            "n-two",
            "Both people".into(),
            vec![
                link(ObjectType::CONTACTS, "p-1"),
                link(ObjectType::CONTACTS, "p-0"),
            ],
        ),
        (
            "n-html",
            "<p>Call Jane &amp; Bob</p><p>re: renewal &#8211; <b>Zürich</b></p>".into(),
            vec![link(ObjectType::COMPANIES, "co-0")],
        ),
        ("n-plain", "A plain note".into(), vec![link(DEALS, "d-0")]),
    ];
    for (id, body, parents) in notes {
        let mut n = Record::new(NOTES, id);
        n.set_named(BODY, Value::Text(body));
        n.set_named(PARENTS, Value::Links(parents));
        // One note's time has milliseconds; the others are whole seconds.
        let ms = if id == "n-plain" { 250 } else { 0 };
        n.set_named(TIME, Value::Timestamp(1_704_164_645_000 + ms));
        records.push(n);
    }
    records
}

async fn go(mode: Mode, sink: Arc<OneParentSink>) -> Report {
    let objects =
        write_order(&[NOTES, DEALS, ObjectType::CONTACTS, ObjectType::COMPANIES]).unwrap();
    let options = RunOptions {
        objects,
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(
        mode,
        Arc::new(MemorySource::new(crm(), 3)),
        sink,
        &options,
        progress,
    )
    .await
}

fn notes_of(report: &Report) -> &ferry_core::report::ObjectReport {
    report
        .objects
        .iter()
        .find(|o| o.object == Some(NOTES))
        .unwrap()
}

#[tokio::test]
async fn a_body_too_long_is_refused_and_parents_beyond_the_limit_are_reported_not_carried() {
    let sink = Arc::new(OneParentSink::default());
    let report = go(Mode::Migrate, Arc::clone(&sink)).await;
    assert_eq!(report.error, None);
    let notes = notes_of(&report);
    assert_eq!(
        (notes.read, notes.written, notes.failed, notes.verified),
        (5, 4, 1, 4),
        "{notes:?}"
    );
    assert_eq!(notes.mismatched, 0, "{:?}", report.failures);
    assert!(notes.digests_match, "{notes:?}");
    assert!(report.objects.iter().all(|o| o.digests_match));

    // The long body: refused by the engine before the write, naming the field and the limit.
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let refused = &report.failures[0];
    assert_eq!(
        (
            refused.source_id.as_str(),
            refused.stage,
            refused.code.as_str()
        ),
        ("n-long", Stage::Validate, TOO_LONG)
    );
    assert!(
        refused
            .reason
            .contains("`body` is 69999 characters as plain text")
            && refused.reason.contains("onesink holds at most 65536"),
        "{}",
        refused.reason
    );
    assert!(
        !sink.sent.lock().unwrap().contains(&"n-long".to_owned()),
        "never sent to the sink"
    );

    // Three parents to a one-parent sink: the deal, first by priority; the rest reported.
    let stored = sink.stored.lock().unwrap().clone();
    let parents = |id: &str| stored[&(NOTES, id.to_owned())].get(PARENTS).cloned();
    assert_eq!(
        parents("n-three"),
        Some(Value::Links(vec![link(DEALS, "d-0")]))
    );
    // Within one object, the source's order.
    assert_eq!(
        parents("n-two"),
        Some(Value::Links(vec![link(ObjectType::CONTACTS, "p-1")]))
    );
    assert_eq!(
        stored[&(NOTES, "n-html".to_owned())].text(BODY),
        Some("Call Jane & Bob\nre: renewal – Zürich"),
        "the sink stored the plain text, and it verified against the HTML"
    );
    let not_carried: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .filter(|w| w.code == NOT_CARRIED)
        .map(|w| (w.source_id.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(
        not_carried,
        [
            (
                "n-three",
                "field `parents` has 3 links and onesink holds at most 1 there: 2 not carried \
                 (1 of companies, 1 of contacts); written with the first by priority (deals, \
                 contacts, companies)"
            ),
            (
                "n-two",
                "field `parents` has 2 links and onesink holds at most 1 there: 1 not carried \
                 (1 of contacts); written with the first by priority (deals, contacts, \
                 companies)"
            ),
        ]
    );
    assert_eq!(
        notes.links_not_carried,
        BTreeMap::from([(PARENTS.to_owned(), 2)])
    );
    // The time with milliseconds: cut to the second the sink keeps, said, and verified.
    let rounded: Vec<&str> = report
        .warnings
        .iter()
        .filter(|w| w.code == TIME_ROUNDED)
        .map(|w| w.source_id.as_str())
        .collect();
    assert_eq!(rounded, ["n-plain"]);
    assert_eq!(notes.times_rounded, BTreeMap::from([(TIME.to_owned(), 1)]));
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        json.contains("\"links_not_carried\":{\"parents\":2}") && !json.contains("Łódź"),
        "{json}"
    );

    // The company without a city: written and verified with the sink's, one warning saying so.
    let defaulted: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .filter(|w| w.code == SINK_DEFAULT)
        .map(|w| (w.source_id.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(
        defaulted,
        [(
            "co-0",
            "field `city` is unset, and onesink holds an unset one as Tallinn: written and \
             verified as Tallinn"
        )]
    );
    let companies = companies_of(&report);
    assert_eq!(
        (companies.written, companies.verified, companies.mismatched),
        (2, 2, 0)
    );

    // A verify afterwards agrees: the links carried are what the sink holds.
    let verified = go(Mode::Verify, Arc::clone(&sink)).await;
    let notes = notes_of(&verified);
    assert_eq!(
        (notes.verified, notes.mismatched, notes.not_in_sink),
        (4, 0, 0),
        "{:?}",
        verified.failures
    );
    assert!(notes.digests_match);
    assert_eq!(companies_of(&verified).mismatched, 0);
}

fn companies_of(report: &Report) -> &ferry_core::report::ObjectReport {
    report
        .objects
        .iter()
        .find(|o| o.object == Some(ObjectType::COMPANIES))
        .unwrap()
}

#[tokio::test]
async fn without_the_declared_limits_the_sink_refuses_them_itself() {
    // The same run to a sink that declares nothing: the engine sends every note, and the sink
    // refuses the long one and those with several parents; the company it gave a city of its
    // own does not verify. This is what the checks above spare.
    let sink = Arc::new(OneParentSink {
        declare_nothing: true,
        ..OneParentSink::default()
    });
    let report = go(Mode::Migrate, Arc::clone(&sink)).await;
    let mut codes: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.source_id.as_str(), f.code.as_str()))
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            // The company the sink gave its own city reads back with it: a mismatch.
            ("co-0", "CHECKSUM_MISMATCH"),
            ("n-long", "STRING_TOO_LONG"),
            ("n-plain", "CHECKSUM_MISMATCH"),
            ("n-three", "ONE_PARENT_ONLY"),
            ("n-two", "ONE_PARENT_ONLY")
        ]
    );
    // The time with milliseconds reads back cut to the second: a mismatch.
    assert_eq!(notes_of(&report).mismatched, 1);
    assert!(notes_of(&report).links_not_carried.is_empty());
    assert_eq!(companies_of(&report).mismatched, 1, "{:?}", report.failures);
    assert!(report.warnings.iter().all(|w| w.code != SINK_DEFAULT));
}
