//! Owners and stages through the real pipeline, without a vendor: an in-memory source and sink
//! whose users and pipelines have ids of their own (as every vendor's do). The sink refuses an
//! owner or stage that is not one of its own ids, as a vendor does, so a record arrives only if
//! the engine translated it; and it can be told to store a wrong stage or owner, to show that
//! verification catches it.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::MemorySource;
use ferry_core::directory::DirectoryRules;
use ferry_core::owners::{OwnerRules, Unmatched};
use ferry_core::stages::StageRules;
use ferry_core::{
    Capability, ConnectorResult, ErrorKind, Mode, ObjectType, Outcome, Pipeline, PipelineStage,
    Progress, Record, RecordOutcome, RecordRejection, Report, RunOptions, Sink, StageOutcome, User,
    Value, Written, field, run,
};

fn user(id: &str, email: &str, active: bool) -> User {
    User {
        id: id.into(),
        email: email.into(),
        active,
    }
}

fn pipeline(id: &str, label: &str, stages: &[(&str, &str, StageOutcome)]) -> Pipeline {
    Pipeline {
        id: id.into(),
        label: label.into(),
        stages: stages
            .iter()
            .map(|(id, label, outcome)| PipelineStage {
                id: (*id).into(),
                label: (*label).into(),
                outcome: *outcome,
            })
            .collect(),
    }
}

/// HubSpot-like: stage ids are internal names.
fn source_pipelines(extra_stage: bool) -> Vec<Pipeline> {
    let mut stages = vec![
        (
            "appointmentscheduled",
            "Appointment Scheduled",
            StageOutcome::Open,
        ),
        ("closedwon", "Closed Won", StageOutcome::Won),
        ("closedlost", "closed lost ", StageOutcome::Lost),
    ];
    if extra_stage {
        stages.push(("negotiation", "Negotiation", StageOutcome::Open));
    }
    vec![pipeline("default", "Sales Pipeline", &stages)]
}

/// Salesforce-like: one pipeline, stage ids are their labels.
fn sink_pipelines() -> Vec<Pipeline> {
    vec![pipeline(
        "Opportunity",
        "Opportunity",
        &[
            ("Prospecting", "Prospecting", StageOutcome::Open),
            ("Closed Won", "Closed Won", StageOutcome::Won),
            ("Closed Lost", "Closed Lost", StageOutcome::Lost),
        ],
    )]
}

fn source_users() -> Vec<User> {
    vec![
        user("s-ann", "ANN@example.com ", true),
        user("s-bob", "bob@example.com", true),
        user("s-cy", "cy@example.com", true),
        user("s-dee", "dee@old.example", false),
    ]
}

fn sink_users() -> Vec<User> {
    vec![
        user("k-ann", "ann@example.com", true),
        user("k-cy", "cy@example.com", false),
        user("k-dana", "dana@new.example", true),
        user("k-ops", "ops@example.com", true),
    ]
}

/// The owner of record `i`: matched, unmatched, inactive in the sink, paired explicitly, not a
/// source user at all, and none.
fn owner_of(i: usize) -> Option<&'static str> {
    [
        Some("s-ann"),
        Some("s-bob"),
        Some("s-cy"),
        Some("s-dee"),
        Some("s-404"),
        None,
    ][i % 6]
}

fn deals(n: usize) -> Vec<Record> {
    let stages = ["appointmentscheduled", "closedwon", "closedlost"];
    (0..n)
        .map(|i| {
            let mut d = Record::new(ObjectType::DEALS, format!("d-{i}"));
            d.set(field::NAME, Value::Text(format!("Deal {i}")));
            d.set(field::AMOUNT, Value::Decimal(1000.0 + i as f64));
            d.set(field::CLOSE_DATE, Value::Date(19_800 + i as i64));
            d.set(field::STAGE, Value::stage("default", stages[i % 3]));
            if let Some(owner) = owner_of(i) {
                d.set(field::OWNER, Value::Text(owner.into()));
            }
            d
        })
        .collect()
}

fn contacts(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut c = Record::new(ObjectType::CONTACTS, format!("c-{i}"));
            c.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
            if let Some(owner) = owner_of(i) {
                c.set(field::OWNER, Value::Text(owner.into()));
            }
            c
        })
        .collect()
}

/// The HubSpot-like source of these tests: four records to a page, its users and pipelines.
fn memory_source(records: Vec<Record>) -> MemorySource {
    MemorySource::new(records, 4).with_directory(source_users(), source_pipelines(false))
}

/// Stores records by source id as sent, refusing owners and stages that are not its own
/// (active) ids. Optionally stores a default owner where none was sent (the vendor's default),
/// or a wrong stage or owner for one record.
#[derive(Default)]
struct MemorySink {
    stored: Mutex<BTreeMap<(ObjectType, String), Record>>,
    /// Without users and pipelines: a connector that cannot list them.
    no_directory: bool,
    default_owner: Option<&'static str>,
    /// Another account of the same vendor: the same users and labels under other ids.
    other_ids: bool,
    wrong_stage_for: Option<&'static str>,
    wrong_owner_for: Option<&'static str>,
}

impl MemorySink {
    fn users(&self) -> Vec<User> {
        let mut users = sink_users();
        if self.other_ids {
            users.iter_mut().for_each(|u| u.id = format!("x{}", u.id));
        }
        users
    }

    fn pipelines(&self) -> Vec<Pipeline> {
        let mut pipelines = sink_pipelines();
        if self.other_ids {
            for p in &mut pipelines {
                p.id = format!("x{}", p.id);
                p.stages
                    .iter_mut()
                    .for_each(|s| s.id = format!("x{}", s.id));
            }
        }
        pipelines
    }

    fn problem(&self, record: &Record) -> Option<&'static str> {
        let users = self.users();
        if let Some(owner) = record.get(field::OWNER) {
            let known = users
                .iter()
                .any(|u| u.active && Some(u.id.as_str()) == owner.as_text());
            if !known {
                return Some("INVALID_OWNER");
            }
        }
        if let Some(stage) = record.get(field::STAGE) {
            let Value::Stage(id) = stage else {
                return Some("INVALID_STAGE");
            };
            let (pipeline, stage) = (&id.pipeline, &id.stage);
            let known = self
                .pipelines()
                .iter()
                .any(|p| &p.id == pipeline && p.stages.iter().any(|s| &s.id == stage));
            if !known {
                return Some("INVALID_STAGE");
            }
        }
        None
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn vendor(&self) -> &'static str {
        "memsink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: 3,
            read_back_size: 5,
            stored: object
                .fields()
                .iter()
                .filter(|f| f.name != field::CREATED_AT && f.name != field::UPDATED_AT)
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
        let mut stored = self.stored.lock().unwrap();
        Ok(records
            .iter()
            .map(|record| {
                let result = match self.problem(record) {
                    Some(code) => Err(RecordRejection {
                        source_id: record.source_id.clone(),
                        code: code.into(),
                        reason: "not one of the sink's ids".into(),
                    }),
                    None => {
                        let mut copy = record.clone();
                        let id = Some(record.source_id.as_str());
                        if let (None, Some(default)) = (copy.get(field::OWNER), self.default_owner)
                        {
                            copy.set(field::OWNER, Value::Text(default.into()));
                        }
                        if id == self.wrong_owner_for {
                            copy.set(field::OWNER, Value::Text("k-ops".into()));
                        }
                        if id == self.wrong_stage_for {
                            copy.set(field::STAGE, Value::stage("Opportunity", "Closed Lost"));
                        }
                        let key = (object, record.source_id.clone());
                        let created = stored.insert(key, copy).is_none();
                        Ok(Written {
                            sink_id: format!("k{}", record.source_id),
                            created,
                        })
                    }
                };
                RecordOutcome {
                    source_id: record.source_id.clone(),
                    result,
                }
            })
            .collect())
    }
    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        let stored = self.stored.lock().unwrap();
        Ok(source_ids
            .iter()
            .filter_map(|id| stored.get(&(object, id.clone())).cloned())
            .collect())
    }
    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let stored = self.stored.lock().unwrap();
        Ok(Some(
            stored.keys().filter(|(o, _)| *o == object).count() as u64
        ))
    }
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        if self.no_directory {
            return Err(ferry_core::ConnectorError::Unsupported {
                vendor: "memsink",
                detail: "this connector cannot list its users yet".into(),
            });
        }
        Ok(MemorySink::users(self))
    }
    async fn pipelines(&self, _: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        Ok(MemorySink::pipelines(self))
    }
}

fn rules(unmatched: Unmatched) -> DirectoryRules {
    DirectoryRules {
        owners: OwnerRules {
            unmatched,
            fallback: (unmatched == Unmatched::Fallback).then(|| "OPS@example.com".into()),
            pairs: vec![("dee@old.example".into(), "dana@new.example".into())],
        },
        deal_stages: StageRules {
            pairs: vec![(
                "Sales Pipeline/Appointment Scheduled".into(),
                "Prospecting".into(),
            )],
        },
    }
}

async fn go(
    mode: Mode,
    source: Arc<MemorySource>,
    sink: Arc<MemorySink>,
    directory: DirectoryRules,
) -> Report {
    let options = RunOptions {
        objects: vec![ObjectType::CONTACTS, ObjectType::DEALS],
        directory,
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(mode, source, sink, &options, progress).await
}

fn all_records() -> Vec<Record> {
    let mut records = contacts(12);
    records.extend(deals(12));
    records
}

fn stored(sink: &MemorySink, object: ObjectType, id: &str) -> Record {
    sink.stored.lock().unwrap()[&(object, id.to_owned())].clone()
}

fn stage(stage: &str) -> Value {
    Value::stage("Opportunity", stage)
}

#[tokio::test]
async fn owners_and_stages_arrive_as_the_sinks_own_ids_and_verify() {
    let sink = Arc::new(MemorySink {
        // The vendor's default owner where none was sent: "unset" lets it apply.
        default_owner: Some("k-ops"),
        ..MemorySink::default()
    });
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        rules(Unmatched::Unset),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    for o in &report.objects {
        assert_eq!((o.written, o.verified, o.failed), (12, 12, 0), "{o:?}");
        assert!(o.digests_match);
    }
    let deal = |id: &str| stored(&sink, ObjectType::DEALS, id);
    // Matched by email ignoring case and spaces; paired explicitly (an inactive source user
    // still owns records); unmatched ones got the sink's default.
    assert_eq!(
        deal("d-0").get(field::OWNER),
        Some(&Value::Text("k-ann".into()))
    );
    assert_eq!(
        deal("d-3").get(field::OWNER),
        Some(&Value::Text("k-dana".into()))
    );
    for unmatched in ["d-1", "d-2", "d-4", "d-5"] {
        assert_eq!(
            deal(unmatched).get(field::OWNER),
            Some(&Value::Text("k-ops".into())),
            "{unmatched}"
        );
    }
    // Stages by key, and by the same label (case and spaces aside) in the only sink pipeline.
    assert_eq!(deal("d-0").get(field::STAGE), Some(&stage("Prospecting")));
    assert_eq!(deal("d-1").get(field::STAGE), Some(&stage("Closed Won")));
    assert_eq!(deal("d-2").get(field::STAGE), Some(&stage("Closed Lost")));
    // Unmatched owners by source id, with their records (contacts and deals) and the action.
    let unmatched: Vec<(&str, u64, Unmatched)> = report
        .owners_unmatched
        .iter()
        .map(|u| (u.source_user_id.as_str(), u.records, u.action))
        .collect();
    assert_eq!(
        unmatched,
        vec![
            ("s-404", 4, Unmatched::Unset),
            ("s-bob", 4, Unmatched::Unset),
            ("s-cy", 4, Unmatched::Unset),
        ]
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"owners_unmatched\""), "{json}");
    assert!(!json.contains("example"), "no email in the report: {json}");

    // `ferry verify`, a separate run, computes the same digests.
    let source = Arc::new(memory_source(all_records()));
    let verify = go(Mode::Verify, source, sink, rules(Unmatched::Unset)).await;
    assert_eq!(verify.outcome, Outcome::Verified, "{verify:#?}");
    for (m, v) in report.objects.iter().zip(&verify.objects) {
        assert_eq!(m.sent_digest, v.sent_digest);
        assert_eq!(m.read_back_digest, v.read_back_digest);
    }
}

#[tokio::test]
async fn owners_hash_as_emails_and_stages_as_labels_whatever_the_sinks_ids() {
    let mut digests = Vec::new();
    for other_ids in [false, true] {
        let sink = Arc::new(MemorySink {
            other_ids,
            ..MemorySink::default()
        });
        let source = Arc::new(memory_source(all_records()));
        let report = go(
            Mode::Migrate,
            source,
            Arc::clone(&sink),
            rules(Unmatched::Fallback),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
        let owner = stored(&sink, ObjectType::DEALS, "d-0")
            .get(field::OWNER)
            .cloned();
        let want = if other_ids { "xk-ann" } else { "k-ann" };
        assert_eq!(owner, Some(Value::Text(want.into())));
        let deals = &report.objects[1];
        digests.push((deals.sent_digest, deals.read_back_digest));
    }
    // The same owners (by email) and stages (by labels) in two accounts with different ids.
    assert_eq!(digests[0], digests[1]);
}

#[tokio::test]
async fn unmatched_owners_get_the_fallback() {
    let sink = Arc::new(MemorySink::default());
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        rules(Unmatched::Fallback),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    for id in ["c-1", "c-2", "c-4"] {
        let contact = stored(&sink, ObjectType::CONTACTS, id);
        assert_eq!(
            contact.get(field::OWNER),
            Some(&Value::Text("k-ops".into())),
            "{id}"
        );
    }
    // A record without an owner keeps none: there was no owner to match.
    assert_eq!(
        stored(&sink, ObjectType::CONTACTS, "c-5").get(field::OWNER),
        None
    );
    assert!(
        report
            .owners_unmatched
            .iter()
            .all(|u| u.action == Unmatched::Fallback)
    );
}

#[tokio::test]
async fn unset_leaves_the_owner_out() {
    let sink = Arc::new(MemorySink::default());
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        rules(Unmatched::Unset),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    for id in ["d-1", "d-2", "d-4", "d-5"] {
        assert_eq!(
            stored(&sink, ObjectType::DEALS, id).get(field::OWNER),
            None,
            "{id}"
        );
    }
}

#[tokio::test]
async fn reject_refuses_exactly_the_records_of_unmatched_owners() {
    let sink = Arc::new(MemorySink::default());
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        rules(Unmatched::Reject),
    )
    .await;
    assert_eq!(report.outcome, Outcome::RecordsFailed, "{report:#?}");
    assert_eq!(report.exit_code(), 3);
    let mut refused: Vec<(String, &str)> = report
        .failures
        .iter()
        .map(|f| (format!("{}:{}", f.object, f.source_id), f.code.as_str()))
        .collect();
    refused.sort();
    let mut want: Vec<(String, &str)> = Vec::new();
    for object in ["contacts", "deals"] {
        let prefix = &object[..1];
        for i in (0..12).filter(|i| [1, 2, 4].contains(&(i % 6))) {
            want.push((format!("{object}:{prefix}-{i}"), "OWNER_UNMATCHED"));
        }
    }
    want.sort();
    assert_eq!(refused, want);
    for o in &report.objects {
        assert_eq!((o.written, o.verified, o.failed), (6, 6, 6), "{o:?}");
    }
    assert!(
        report.failures.iter().all(|f| !f.reason.contains('@')),
        "no email in a reason"
    );
}

#[tokio::test]
async fn unmapped_stages_refuse_the_run_before_anything_is_read_or_written() {
    let sink = Arc::new(MemorySink::default());
    let mut source = memory_source(all_records());
    source.pipelines = source_pipelines(true);
    let source = Arc::new(source);
    let mut directory = rules(Unmatched::Unset);
    directory.deal_stages.pairs.clear();
    let report = go(
        Mode::Migrate,
        Arc::clone(&source),
        Arc::clone(&sink),
        directory,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error_kind, Some(ErrorKind::Config));
    assert_eq!(report.exit_code(), 2);
    let error = report.error.unwrap_or_default();
    for named in [
        "\"Sales Pipeline/Appointment Scheduled\"",
        "\"Sales Pipeline/Negotiation\"",
    ] {
        assert!(error.contains(named), "{named} in {error}");
    }
    assert!(error.contains("2 stages"), "{error}");
    assert!(sink.stored.lock().unwrap().is_empty(), "nothing written");
    assert_eq!(*source.pages_read.lock().unwrap(), 0, "nothing read");
    assert!(report.objects.is_empty());
}

#[tokio::test]
async fn a_stage_key_naming_no_source_stage_refuses_the_run() {
    let mut directory = rules(Unmatched::Unset);
    directory
        .deal_stages
        .pairs
        .push(("Sales Pipeline/Closed Wonn".into(), "Closed Won".into()));
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::new(MemorySink::default()),
        directory,
    )
    .await;
    assert_eq!(report.exit_code(), 2);
    let error = report.error.unwrap_or_default();
    assert!(
        error
            .contains("`mapping.deal_stages.\"Sales Pipeline/Closed Wonn\"` names no source stage"),
        "{error}"
    );
}

#[tokio::test]
async fn a_stage_the_source_does_not_define_refuses_the_record() {
    let mut records = all_records();
    let odd = records.iter_mut().find(|r| r.source_id == "d-7").unwrap();
    odd.set(field::STAGE, Value::stage("default", "deleted-stage"));
    let report = go(
        Mode::Migrate,
        Arc::new(memory_source(records)),
        Arc::new(MemorySink::default()),
        rules(Unmatched::Unset),
    )
    .await;
    let failed: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.source_id.as_str(), f.code.as_str()))
        .collect();
    assert_eq!(failed, vec![("d-7", "STAGE_UNKNOWN")]);
    assert_eq!(report.outcome, Outcome::RecordsFailed);
}

#[tokio::test]
async fn a_wrong_stage_or_owner_in_the_sink_is_a_mismatch_naming_the_field() {
    for (sink, id, field_name) in [
        (
            MemorySink {
                wrong_stage_for: Some("d-0"),
                ..MemorySink::default()
            },
            "d-0",
            field::STAGE,
        ),
        (
            MemorySink {
                wrong_owner_for: Some("d-0"),
                ..MemorySink::default()
            },
            "d-0",
            field::OWNER,
        ),
        // Another record's owner where none was sent is the sink's default: not a mismatch;
        // but a changed owner where one was sent is.
        (
            MemorySink {
                wrong_owner_for: Some("d-3"),
                ..MemorySink::default()
            },
            "d-3",
            field::OWNER,
        ),
    ] {
        let source = Arc::new(memory_source(all_records()));
        let report = go(
            Mode::Migrate,
            source,
            Arc::new(sink),
            rules(Unmatched::Unset),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Mismatch, "{report:#?}");
        let deals = &report.objects[1];
        assert_eq!((deals.verified, deals.mismatched), (11, 1));
        assert!(!deals.digests_match);
        let failure = &report.failures[0];
        assert_eq!(
            (failure.source_id.as_str(), failure.code.as_str()),
            (id, "CHECKSUM_MISMATCH")
        );
        assert!(
            failure
                .reason
                .ends_with(&format!("fields that differ: {field_name}")),
            "{}",
            failure.reason
        );
    }
}

#[tokio::test]
async fn a_sink_storing_owners_without_users_stops_the_run_before_reading() {
    let sink = Arc::new(MemorySink {
        no_directory: true,
        ..MemorySink::default()
    });
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        Arc::clone(&source),
        sink,
        rules(Unmatched::Unset),
    )
    .await;
    assert_eq!(report.error_kind, Some(ErrorKind::Config));
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("memsink: this connector cannot list its users"),
        "{error}"
    );
    assert_eq!(*source.pages_read.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_fallback_naming_an_inactive_sink_user_is_a_config_error_naming_the_key() {
    let mut directory = rules(Unmatched::Fallback);
    directory.owners.fallback = Some("cy@example.com".into());
    let source = Arc::new(memory_source(all_records()));
    let report = go(
        Mode::Migrate,
        source,
        Arc::new(MemorySink::default()),
        directory,
    )
    .await;
    assert_eq!(report.exit_code(), 2);
    let error = report.error.unwrap_or_default();
    assert!(
        error.starts_with("config key `mapping.owners.fallback`"),
        "{error}"
    );
    assert!(!error.contains('@'), "{error}");
}

#[tokio::test]
async fn won_and_lost_follow_the_deal_whether_its_vendor_keeps_them_in_a_status_or_a_stage() {
    let sink = Arc::new(MemorySink::default());
    let mut records = contacts(6);
    let mut deals = deals(6);
    // Won in an open stage, as Pipedrive and Dataverse keep it (a status beside the stage).
    deals[0].set(field::STATUS, Value::Text("won".into()));
    deals[3].set(field::STATUS, Value::Text("Lost".into()));
    records.extend(deals);
    let source = Arc::new(memory_source(records));
    let report = go(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        rules(Unmatched::Unset),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    let deal = |id: &str| stored(&sink, ObjectType::DEALS, id);
    let status = |id: &str| deal(id).get(field::STATUS).cloned();
    // The sink keeps won and lost in stages: the deal moves to the pipeline's won/lost stage.
    assert_eq!(deal("d-0").get(field::STAGE), Some(&stage("Closed Won")));
    assert_eq!(status("d-0"), Some(Value::Text("won".into())));
    assert_eq!(deal("d-3").get(field::STAGE), Some(&stage("Closed Lost")));
    assert_eq!(status("d-3"), Some(Value::Text("lost".into())));
    // A stage that says won gives the deal its status; an open one says open.
    assert_eq!(status("d-1"), Some(Value::Text("won".into())));
    assert_eq!(status("d-2"), Some(Value::Text("lost".into())));
    assert_eq!(deal("d-4").get(field::STAGE), Some(&stage("Closed Won")));
    assert_eq!(deal("d-5").get(field::STAGE), Some(&stage("Closed Lost")));
}
