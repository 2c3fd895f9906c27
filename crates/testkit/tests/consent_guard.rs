//! The consent guard through the engine, with a source and a sink in memory whose sink has no
//! place for a do-not-call: the run is refused before writing when the source holds one; a
//! record opted out after the source counted (a stale count) is refused on its own, never
//! written reachable; an accepted loss writes it without the opt-out and lists it.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::connector::Page;
use ferry_core::consent::{CONSENT_LOST, CONSENT_NOT_HELD, ConsentPolicy};
use ferry_core::{
    ConnectorResult, ErrorKind, Mode, ObjectType, Outcome, Progress, Record, Report, RunOptions,
    Sink, Source, Value, field, run,
};
use ferry_testkit::{MemorySink, MemorySource};

/// A sink in memory with no place for a do-not-call.
fn no_phone_consent_sink() -> MemorySink {
    MemorySink::new(10).without(field::DO_NOT_CALL)
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

async fn migrate(source: Arc<dyn Source>, consent: ConsentPolicy) -> (Report, Arc<MemorySink>) {
    let sink = Arc::new(no_phone_consent_sink());
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
    assert!(sink.is_empty(), "nothing written");
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
    let stored = sink.ids();
    assert_eq!(stored, ["c-mail", "c-none"]);
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
    assert_eq!(sink.len(), 4);
    let consent = &report.objects[0].consent;
    assert_eq!((consent["phone"].lost, consent["email"].kept), (2, 2));
}
