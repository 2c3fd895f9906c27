//! The engine's incremental reads, without HTTP: `MemorySource` as the source, a sink in memory,
//! and the sync state in a temporary directory. A first sync reads everything and sets the
//! watermarks; a second reads only the changed records and updates them; a third reads none;
//! an object whose records did not all settle keeps its watermark; a source that cannot read
//! changes is refused before anything is written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::connector::{Capability, RecordOutcome, RecordRejection, Written};
use ferry_core::sync::StateFile;
use ferry_core::{
    ConnectorResult, Mode, ObjectType, Outcome, Page, Progress, Record, Report, RunOptions, Sink,
    Source, Value, Watermark, field,
};
use ferry_testkit::MemorySource;

/// Stores records by source id; refuses those whose last name is "REFUSE".
#[derive(Default)]
struct MemorySink {
    stored: Mutex<HashMap<String, Record>>,
    upserted: Mutex<u64>,
}

#[async_trait]
impl Sink for MemorySink {
    fn vendor(&self) -> &'static str {
        "memsink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: 3,
            read_back_size: 3,
            stored: object
                .fields()
                .iter()
                .filter(|f| f.name != field::CREATED_AT && f.name != field::OWNER)
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
        _: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let mut stored = self.stored.lock().unwrap();
        *self.upserted.lock().unwrap() += records.len() as u64;
        Ok(records
            .iter()
            .map(|r| RecordOutcome {
                source_id: r.source_id.clone(),
                result: if r.text(field::LAST_NAME) == Some("REFUSE") {
                    Err(RecordRejection {
                        source_id: r.source_id.clone(),
                        code: "REFUSED".into(),
                        reason: "refused".into(),
                    })
                } else {
                    let created = stored.insert(r.source_id.clone(), r.clone()).is_none();
                    Ok(Written {
                        sink_id: format!("s{}", r.source_id),
                        created,
                    })
                },
            })
            .collect())
    }
    async fn read_back(&self, _: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
        let stored = self.stored.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| stored.get(id).cloned())
            .collect())
    }
}

fn company(i: usize) -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, format!("c{i}"));
    r.set(field::NAME, Value::Text(format!("Company {i}")));
    r
}

fn contact(i: usize, last: &str) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, format!("p{i}"));
    r.set(field::LAST_NAME, Value::Text(last.into()));
    r.set(field::EMAIL, Value::Text(format!("p{i}@example.com")));
    r.set(field::COMPANY, Value::Reference(format!("c{}", i % 3)));
    r
}

fn state_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferry-sync-engine-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.json")
}

async fn sync(source: Arc<dyn Source>, sink: Arc<MemorySink>, state: &Path) -> Report {
    let file = StateFile::open(state, "fp", source.vendor(), sink.vendor()).unwrap();
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        sync: Some(Arc::new(file)),
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    ferry_core::run(Mode::Migrate, source, sink, &options, progress).await
}

fn object(report: &Report, object: ObjectType) -> &ferry_core::report::ObjectReport {
    report
        .objects
        .iter()
        .find(|o| o.object == Some(object))
        .unwrap_or_else(|| panic!("no {object} in {report:#?}"))
}

#[tokio::test]
async fn a_sync_reads_everything_once_then_only_what_changed() {
    let state = state_path("changes");
    let records = (0..3)
        .map(company)
        .chain((0..10).map(|i| contact(i, "Nowak")));
    let source = MemorySource::new(records, 4);
    source.set_clock(1_000_000);
    let sink = Arc::new(MemorySink::default());

    let first = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(first.outcome, Outcome::Verified, "{first:#?}");
    let contacts = object(&first, ObjectType::CONTACTS);
    assert_eq!((contacts.read, contacts.created), (10, 10));
    let marks = contacts.sync.as_ref().unwrap();
    assert_eq!(marks.read, "full");
    assert_eq!(marks.watermark_before, None);
    assert_eq!(
        marks.watermark_after.as_deref(),
        Some("1970-01-01T00:16:40.000Z")
    );
    assert_eq!(source.changed_read(), 0, "a first sync reads in full");

    source.set_clock(2_000_000);
    source.change(contact(4, "Kowalska"));
    source.change(contact(7, "Wiśniewska"));
    source.change(company(1));
    source.set_clock(3_000_000);
    let second = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(second.outcome, Outcome::Verified, "{second:#?}");
    let contacts = object(&second, ObjectType::CONTACTS);
    assert_eq!(
        (
            contacts.read,
            contacts.created,
            contacts.updated,
            contacts.verified
        ),
        (2, 0, 2, 2)
    );
    let companies = object(&second, ObjectType::COMPANIES);
    assert_eq!((companies.read, companies.updated), (1, 1));
    let marks = contacts.sync.as_ref().unwrap();
    assert_eq!(marks.read, "incremental");
    assert_eq!(
        marks.watermark_before.as_deref(),
        Some("1970-01-01T00:16:40.000Z")
    );
    assert_eq!(
        marks.watermark_after.as_deref(),
        Some("1970-01-01T00:50:00.000Z")
    );
    assert_eq!(
        sink.stored.lock().unwrap()["p7"].text(field::LAST_NAME),
        Some("Wiśniewska")
    );
    assert_eq!(source.changed_read(), 3);

    let third = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(third.outcome, Outcome::Verified, "{third:#?}");
    assert_eq!(third.outcome.exit_code(), 0);
    assert!(third.objects.iter().all(|o| o.read == 0 && o.written == 0));
    assert_eq!(source.changed_read(), 3, "nothing changed, nothing read");
    assert_eq!(sink.stored.lock().unwrap().len(), 13);
}

#[tokio::test]
async fn an_object_whose_records_did_not_all_settle_keeps_its_watermark() {
    let state = state_path("unsettled");
    let source = MemorySource::new(
        (0..3)
            .map(company)
            .chain((0..4).map(|i| contact(i, "Nowak"))),
        10,
    );
    source.set_clock(1_000_000);
    let sink = Arc::new(MemorySink::default());
    let first = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(first.outcome, Outcome::Verified, "{first:#?}");

    source.set_clock(2_000_000);
    source.change(contact(2, "REFUSE"));
    source.change(contact(3, "Lis"));
    let second = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(second.outcome, Outcome::RecordsFailed, "{second:#?}");
    let marks = object(&second, ObjectType::CONTACTS).sync.clone().unwrap();
    assert!(!marks.advanced);
    assert_eq!(marks.watermark_after, marks.watermark_before);
    let companies = object(&second, ObjectType::COMPANIES).sync.clone().unwrap();
    assert!(
        companies.advanced,
        "a settled object moves on: {companies:?}"
    );
    let saved = StateFile::open(&state, "fp", "memory", "memsink").unwrap();
    assert_eq!(
        saved.since(ObjectType::CONTACTS),
        Some(Watermark::at(1_000_000))
    );

    // Fixed at the source: the next sync reads both changes again, and moves on.
    source.set_clock(3_000_000);
    source.change(contact(2, "Fixed"));
    let third = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(third.outcome, Outcome::Verified, "{third:#?}");
    assert_eq!(object(&third, ObjectType::CONTACTS).read, 2);
    assert_eq!(object(&third, ObjectType::CONTACTS).created, 0);
}

/// A source that reads pages but no changes: the traits' defaults.
struct FullOnly;

#[async_trait]
impl Source for FullOnly {
    fn vendor(&self) -> &'static str {
        "fullonly"
    }
    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }
    async fn read_page(&self, object: ObjectType, _: Option<&str>) -> ConnectorResult<Page> {
        Ok(Page {
            records: vec![Record::new(object, "1")],
            ..Page::default()
        })
    }
}

#[tokio::test]
async fn a_source_that_cannot_read_changes_is_refused_before_any_write() {
    let state = state_path("unsupported");
    let sink = Arc::new(MemorySink::default());
    let report = sync(Arc::new(FullOnly), Arc::clone(&sink), &state).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error_kind, Some(ferry_core::ErrorKind::Config));
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("fullonly") && error.contains("changed since"),
        "{error}"
    );
    assert_eq!(*sink.upserted.lock().unwrap(), 0);
    assert!(!state.exists(), "no state is written");
}
