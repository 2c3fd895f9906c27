//! The consent guard through the engine, with a source and a sink in memory whose sink has no
//! place for a do-not-call: the run is refused before writing when the source holds one; a
//! record opted out after the source counted (a stale count) is refused on its own, never
//! written reachable; an accepted loss writes it without the opt-out and lists it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::connector::{Capability, Page, RecordOutcome, Written};
use ferry_core::consent::{CONSENT_LOST, CONSENT_NOT_HELD, ConsentPolicy};
use ferry_core::{
    ConnectorResult, ErrorKind, Mode, ObjectType, Outcome, Progress, Record, Report, RunOptions,
    Sink, Source, Value, field, run,
};
use ferry_testkit::MemorySource;

/// Stores contacts as written; holds every contact field but the owner and `do_not_call`.
#[derive(Default)]
struct NoPhoneConsentSink {
    stored: Mutex<HashMap<String, Record>>,
}

#[async_trait]
impl Sink for NoPhoneConsentSink {
    fn vendor(&self) -> &'static str {
        "memsink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: 10,
            read_back_size: 10,
            stored: object
                .fields()
                .iter()
                .filter(|f| f.name != field::OWNER && f.name != field::DO_NOT_CALL)
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
        Ok(records
            .iter()
            .map(|r| {
                // What the sink cannot hold, it does not keep.
                let mut kept = r.clone();
                kept.fields.remove(field::DO_NOT_CALL);
                RecordOutcome {
                    source_id: r.source_id.clone(),
                    result: Ok(Written {
                        sink_id: format!("s-{}", r.source_id),
                        created: stored.insert(r.source_id.clone(), kept).is_none(),
                    }),
                }
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

/// A source whose opt-out count is stale: it says nobody opted out, as a count taken just
/// before a contact opted out would.
struct StaleCount(MemorySource);

#[async_trait]
impl Source for StaleCount {
    fn vendor(&self) -> &'static str {
        "stale"
    }
    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }
    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        self.0.read_page(object, cursor).await
    }
    async fn count_opted_out(&self, _: ObjectType, _: &str) -> ConnectorResult<u64> {
        Ok(0)
    }
}

fn contacts() -> Vec<Record> {
    let contact = |id: &str, flags: &[&'static str]| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::EMAIL, Value::Text(format!("{id}@example.org")));
        r.set(field::LAST_NAME, Value::Text(format!("Person {id}")));
        for flag in flags {
            r.set(flag, Value::Bool(true));
        }
        r
    };
    vec![
        contact("c-call", &[field::DO_NOT_CALL]),
        contact("c-mail", &[field::EMAIL_OPT_OUT]),
        contact("c-both", &[field::EMAIL_OPT_OUT, field::DO_NOT_CALL]),
        contact("c-none", &[]),
    ]
}

async fn migrate(
    source: Arc<dyn Source>,
    consent: ConsentPolicy,
) -> (Report, Arc<NoPhoneConsentSink>) {
    let sink = Arc::new(NoPhoneConsentSink::default());
    let options = RunOptions {
        objects: vec![ObjectType::CONTACTS],
        consent,
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = run(
        Mode::Migrate,
        source,
        Arc::clone(&sink) as Arc<dyn Sink>,
        &options,
        progress,
    )
    .await;
    (report, sink)
}

#[tokio::test]
async fn a_source_holding_an_opt_out_the_sink_cannot_hold_is_refused_before_writing() {
    let source = Arc::new(MemorySource::new(contacts(), 2));
    let (report, sink) = migrate(source, ConsentPolicy::default()).await;
    assert_eq!(report.error_kind, Some(ErrorKind::Config), "{report:#?}");
    let error = report.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("2 opted out of phone (`do_not_call`)") && error.contains("accept_loss"),
        "{error}"
    );
    assert!(sink.stored.lock().unwrap().is_empty(), "nothing written");
}

#[tokio::test]
async fn a_record_opted_out_after_the_count_is_refused_on_its_own_never_written_reachable() {
    let source = Arc::new(StaleCount(MemorySource::new(contacts(), 2)));
    let (report, sink) = migrate(source, ConsentPolicy::default()).await;
    assert_eq!(report.outcome, Outcome::RecordsFailed, "{report:#?}");
    let mut refused: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.source_id.as_str(), f.code.as_str()))
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [("c-both", CONSENT_NOT_HELD), ("c-call", CONSENT_NOT_HELD)]
    );
    let stored = sink.stored.lock().unwrap();
    assert!(!stored.contains_key("c-call") && !stored.contains_key("c-both"));
    assert!(stored.contains_key("c-mail") && stored.contains_key("c-none"));
    let consent = &report.objects[0].consent;
    assert_eq!(
        (consent["phone"].opted_out, consent["phone"].refused),
        (2, 2)
    );
    // The email opt-out of the refused contact is counted refused too; the other is kept.
    assert_eq!(
        (
            consent["email"].opted_out,
            consent["email"].kept,
            consent["email"].refused
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn an_accepted_loss_writes_without_the_opt_out_and_lists_each_record() {
    let source = Arc::new(MemorySource::new(contacts(), 2));
    let accept = ConsentPolicy {
        accept_loss: vec![field::DO_NOT_CALL.to_owned()],
    };
    let (report, sink) = migrate(source, accept).await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    let mut lost: Vec<&str> = report
        .warnings
        .iter()
        .filter(|w| w.code == CONSENT_LOST)
        .map(|w| w.source_id.as_str())
        .collect();
    lost.sort();
    assert_eq!(lost, ["c-both", "c-call"]);
    assert_eq!(sink.stored.lock().unwrap().len(), 4);
    let consent = &report.objects[0].consent;
    assert_eq!((consent["phone"].lost, consent["email"].kept), (2, 2));
}
