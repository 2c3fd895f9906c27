//! The engine's incremental reads, without HTTP: `MemorySource` as the source, a sink in memory,
//! and the sync state in a temporary directory. A first sync reads everything and sets the
//! watermarks; a second reads only the changed records and updates them; a third reads none;
//! an object whose records did not all settle keeps its watermark; a source that cannot read
//! changes is refused before anything is written. Deletions in the source follow `[sync]
//! deletes`; a mass delete is refused before anything is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::connector::{Capability, RecordOutcome, Removal};
use ferry_core::deletions::DeletePolicy;
use ferry_core::sync::StateFile;
use ferry_core::{
    ConnectorResult, Mode, ObjectType, Outcome, Page, Progress, Record, Report, RunOptions, Sink,
    Source, Value, Watermark, field,
};
use ferry_testkit::memory_sink::KEEP;
use ferry_testkit::{MemorySink, MemorySource};

/// The sink of these tests: three records a call, no creation time held.
fn memory_sink() -> MemorySink {
    MemorySink::new(3).without(field::CREATED_AT)
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
    sync_deleting(source, sink, state, DeletePolicy::default()).await
}

async fn sync_deleting(
    source: Arc<dyn Source>,
    sink: Arc<MemorySink>,
    state: &Path,
    deletes: DeletePolicy,
) -> Report {
    let file = StateFile::open(state, "fp", source.vendor(), sink.vendor()).unwrap();
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        sync: Some(Arc::new(file)),
        deletes,
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
    let sink = Arc::new(memory_sink());

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
        sink.get("p7")
            .unwrap()
            .text(field::LAST_NAME)
            .map(str::to_owned),
        Some("Wiśniewska".to_owned())
    );
    assert_eq!(source.changed_read(), 3);

    let third = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(third.outcome, Outcome::Verified, "{third:#?}");
    assert_eq!(third.outcome.exit_code(), 0);
    assert!(third.objects.iter().all(|o| o.read == 0 && o.written == 0));
    assert_eq!(source.changed_read(), 3, "nothing changed, nothing read");
    assert_eq!(sink.len(), 13);
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
    let sink = Arc::new(memory_sink());
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
    let sink = Arc::new(memory_sink());
    let report = sync(Arc::new(FullOnly), Arc::clone(&sink), &state).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error_kind, Some(ferry_core::ErrorKind::Config));
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("fullonly") && error.contains("changed since"),
        "{error}"
    );
    assert_eq!(sink.upserted(), 0);
    assert!(!state.exists(), "no state is written");
}

fn policy(removal: Option<Removal>, max_deletes: u64, allow_mass_delete: bool) -> DeletePolicy {
    DeletePolicy {
        removal,
        max_deletes,
        allow_mass_delete,
    }
}

/// A source of 3 companies and 6 contacts, synced once into `sink` (the first sync learns no
/// deletions: it sets the cursors), then 2 contacts and 1 company deleted in the source.
async fn synced_then_deleted(
    name: &str,
    removal: Option<Removal>,
) -> (MemorySource, Arc<MemorySink>, PathBuf) {
    let state = state_path(name);
    let source = MemorySource::new(
        (0..3)
            .map(company)
            .chain((0..6).map(|i| contact(i, "Nowak"))),
        2,
    );
    source.set_clock(1_000_000);
    let sink = Arc::new(memory_sink());
    let first = sync_deleting(
        Arc::new(source.clone()),
        Arc::clone(&sink),
        &state,
        policy(removal, 100, false),
    )
    .await;
    assert_eq!(first.outcome, Outcome::Verified, "{first:#?}");
    assert!(first.objects.iter().all(|o| o.archived + o.deleted == 0));
    source.set_clock(2_000_000);
    source.delete(ObjectType::CONTACTS, "p1");
    source.delete(ObjectType::CONTACTS, "p4");
    // A company whose contacts were deleted with it, as the source's cascade would.
    source.delete(ObjectType::COMPANIES, "c2");
    source.delete(ObjectType::CONTACTS, "p2");
    source.delete(ObjectType::CONTACTS, "p5");
    source.set_clock(3_000_000);
    (source, sink, state)
}

fn in_sink(sink: &MemorySink) -> Vec<String> {
    sink.ids()
}

#[tokio::test]
async fn deletions_in_the_source_follow_the_policy_children_first() {
    // ignore: the sink keeps them, nothing is even read of the deletions.
    let (source, sink, state) = synced_then_deleted("ignore", None).await;
    let report = sync(Arc::new(source.clone()), Arc::clone(&sink), &state).await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    assert_eq!(in_sink(&sink).len(), 9);
    assert!(sink.removed().is_empty());
    let marks = object(&report, ObjectType::CONTACTS).sync.clone().unwrap();
    assert_eq!(marks.deletions, None);

    for (name, how) in [("archive", Removal::Archive), ("delete", Removal::Delete)] {
        let (source, sink, state) = synced_then_deleted(name, Some(how)).await;
        let report = sync_deleting(
            Arc::new(source.clone()),
            Arc::clone(&sink),
            &state,
            policy(Some(how), 100, false),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
        assert_eq!(
            in_sink(&sink),
            ["c0", "c1", "p0", "p3"],
            "{name}: the deleted records are gone"
        );
        let removed = sink.removed();
        assert_eq!(
            removed
                .iter()
                .map(|(o, id, h)| (*o, id.as_str(), *h))
                .collect::<Vec<_>>(),
            [
                (ObjectType::CONTACTS, "p1", how),
                (ObjectType::CONTACTS, "p4", how),
                (ObjectType::CONTACTS, "p2", how),
                (ObjectType::CONTACTS, "p5", how),
                (ObjectType::COMPANIES, "c2", how),
            ],
            "{name}: children before parents, in the log's order"
        );
        let contacts = object(&report, ObjectType::CONTACTS);
        let companies = object(&report, ObjectType::COMPANIES);
        let counts = |o: &ferry_core::report::ObjectReport| (o.archived, o.deleted);
        match how {
            Removal::Archive => {
                assert_eq!((counts(contacts), counts(companies)), ((4, 0), (1, 0)))
            }
            Removal::Delete => {
                assert_eq!((counts(contacts), counts(companies)), ((0, 4), (0, 1)))
            }
        }
        let marks = contacts.sync.clone().unwrap();
        assert_eq!(marks.deletions, Some("source"));
        assert_eq!(
            marks.deletions_after.as_deref(),
            Some("1970-01-01T00:50:00.000Z"),
            "the cursor moves to the point taken before the deletions were read"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["objects"][1]["archived"], counts(contacts).0);
        assert_eq!(json["objects"][1]["deleted"], counts(contacts).1);

        // Nothing deleted since: nothing removed, nothing asked of the sink.
        let again = sync_deleting(
            Arc::new(source.clone()),
            Arc::clone(&sink),
            &state,
            policy(Some(how), 100, false),
        )
        .await;
        assert_eq!(again.outcome, Outcome::Verified, "{again:#?}");
        assert_eq!(sink.removed().len(), 5);
    }
}

#[tokio::test]
async fn a_mass_delete_is_refused_before_anything_is_written_unless_allowed() {
    let (source, sink, state) = synced_then_deleted("mass", Some(Removal::Archive)).await;
    source.change(contact(0, "Changed"));
    let before = std::fs::read(&state).unwrap();
    let refused = sync_deleting(
        Arc::new(source.clone()),
        Arc::clone(&sink),
        &state,
        policy(Some(Removal::Archive), 4, false),
    )
    .await;
    assert_eq!(refused.outcome, Outcome::Failed, "{refused:#?}");
    assert_eq!(refused.error_kind, Some(ferry_core::ErrorKind::MassDelete));
    assert_eq!(refused.exit_code(), 3);
    let error = refused.error.clone().unwrap();
    assert!(
        error.contains("would remove 5 records")
            && error.contains("4 contacts")
            && error.contains("1 companies")
            && error.contains("max_deletes` = 4")
            && error.contains("--allow-mass-delete"),
        "{error}"
    );
    assert_eq!(in_sink(&sink).len(), 9, "nothing removed");
    assert_eq!(
        sink.get("p0")
            .unwrap()
            .text(field::LAST_NAME)
            .map(str::to_owned),
        Some("Nowak".to_owned()),
        "nothing written"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the state is untouched"
    );

    // Allowed: the same sync writes and removes.
    let allowed = sync_deleting(
        Arc::new(source.clone()),
        Arc::clone(&sink),
        &state,
        policy(Some(Removal::Archive), 4, true),
    )
    .await;
    assert_eq!(allowed.outcome, Outcome::Verified, "{allowed:#?}");
    assert_eq!(in_sink(&sink), ["c0", "c1", "p0", "p3"]);
    assert_eq!(
        sink.get("p0")
            .unwrap()
            .text(field::LAST_NAME)
            .map(str::to_owned),
        Some("Changed".to_owned())
    );
}

#[tokio::test]
async fn a_lost_or_missing_deletion_log_falls_back_to_id_sets() {
    for lost in ["trimmed", "none"] {
        let (source, sink, state) =
            synced_then_deleted(&format!("lost-{lost}"), Some(Removal::Delete)).await;
        match lost {
            "trimmed" => source.trim_deletion_log(2_500_000),
            _ => source.without_deletion_log(),
        }
        let report = sync_deleting(
            Arc::new(source.clone()),
            Arc::clone(&sink),
            &state,
            policy(Some(Removal::Delete), 100, false),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Verified, "{lost}: {report:#?}");
        assert_eq!(in_sink(&sink), ["c0", "c1", "p0", "p3"], "{lost}");
        let marks = object(&report, ObjectType::CONTACTS).sync.clone().unwrap();
        assert_eq!(marks.deletions, Some("id_sets"), "{lost}");
        assert_eq!(object(&report, ObjectType::CONTACTS).deleted, 4);
    }
}

#[tokio::test]
async fn a_refused_removal_is_listed_and_keeps_the_deletions_cursor() {
    let (source, sink, state) = synced_then_deleted("refused", Some(Removal::Archive)).await;
    let mut locked = sink.get("p4").expect("p4 in the sink");
    locked.set(field::LAST_NAME, Value::Text(KEEP.into()));
    sink.put(locked);
    let report = sync_deleting(
        Arc::new(source.clone()),
        Arc::clone(&sink),
        &state,
        policy(Some(Removal::Archive), 100, false),
    )
    .await;
    assert_eq!(report.outcome, Outcome::RecordsFailed, "{report:#?}");
    assert_eq!(report.outcome.exit_code(), 3);
    let contacts = object(&report, ObjectType::CONTACTS);
    assert_eq!((contacts.archived, contacts.not_removed), (3, 1));
    let failure = &report.failures[0];
    assert_eq!(
        (
            failure.source_id.as_str(),
            failure.stage,
            failure.code.as_str()
        ),
        ("p4", ferry_core::Stage::Remove, "LOCKED")
    );
    assert_eq!(
        object(&report, ObjectType::COMPANIES).archived,
        1,
        "the run goes on"
    );
    let saved = StateFile::open(&state, "fp", "memory", "memsink").unwrap();
    let contacts_state = &saved.snapshot().objects[&ObjectType::CONTACTS];
    assert_eq!(
        contacts_state.deletions_cursor,
        Some(Watermark::at(1_000_000)),
        "contacts did not settle: their deletions are read again"
    );
    assert_eq!(
        saved.snapshot().objects[&ObjectType::COMPANIES].deletions_cursor,
        Some(Watermark::at(3_000_000))
    );
}

#[tokio::test]
async fn a_sink_that_cannot_remove_is_refused_on_the_first_sync() {
    /// The memory sink without `remove`: the trait's default.
    struct NoRemove(MemorySink);
    #[async_trait]
    impl Sink for NoRemove {
        fn vendor(&self) -> &'static str {
            "noremove"
        }
        fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
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
    let state = state_path("noremove");
    let source = MemorySource::new((0..2).map(company), 2);
    let sink = Arc::new(NoRemove(memory_sink()));
    let file = StateFile::open(&state, "fp", "memory", "noremove").unwrap();
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES],
        sync: Some(Arc::new(file)),
        deletes: policy(Some(Removal::Archive), 100, false),
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = ferry_core::run(
        Mode::Migrate,
        Arc::new(source),
        sink.clone(),
        &options,
        progress,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error_kind, Some(ferry_core::ErrorKind::Config));
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("noremove") && error.contains("must stay \"ignore\""),
        "{error}"
    );
    assert_eq!(sink.0.upserted(), 0);
}
