//! The directory of a run: both vendors' users and pipelines, read once before any record, and
//! what the operator's `[mapping.owners]` and `[mapping.deal_stages]` make of them.
//!
//! Owner and stage values are the vendors' own ids, local to each account. Each record is
//! translated from the source's ids to the sink's after the quality checks
//! ([`Directory::translate`]); for the digests, an owner is replaced with its sink user's
//! normalised email and a stage with its sink labels, on both sides
//! ([`Directory::canonical_sent`], [`Directory::canonical_back`]), so that a source digest, a
//! read-back digest and a later `ferry verify` all agree.
//!
//! Only what the sink stores is translated: a run whose sink stores no owner or stage field
//! asks neither vendor for users or pipelines.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::connector::{Capability, Sink, Source, StageOutcome};
use crate::error::ConnectorError;
use crate::model::{FieldType, ObjectType, Record, Value, field};
use crate::owners::{OWNER_UNMATCHED, OwnerError, OwnerMap, OwnerOutcome, OwnerRules, Unmatched};
use crate::quality::{Action, Finding};
use crate::report::{ErrorKind, UnmatchedOwner};
use crate::stages::{StageMap, StageRules};

/// The code of a record refused because its stage is not among the source's stages.
pub const STAGE_UNKNOWN: &str = "STAGE_UNKNOWN";

/// The operator's rules for owners and stages (`[mapping.owners]`, `[mapping.deal_stages]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryRules {
    /// How owners are matched, and what happens to the unmatched.
    pub owners: OwnerRules,
    /// How deal stages are mapped.
    pub deal_stages: StageRules,
}

/// Why a run cannot start with these vendors' users and pipelines.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// `[mapping.owners]` names a sink user that is missing or inactive.
    #[error(transparent)]
    Owners(#[from] OwnerError),
    /// Source stages that map to no single sink stage, or keys that name no source stage.
    #[error("{object}: {detail}")]
    Stages {
        /// The object whose stages these are.
        object: ObjectType,
        /// Every unmapped stage and unknown key, named.
        detail: String,
    },
    /// A vendor's users or pipelines could not be read.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

impl DirectoryError {
    /// Whose fault it is: the configuration's, except for a vendor's failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DirectoryError::Owners(_) | DirectoryError::Stages { .. } => ErrorKind::Config,
            DirectoryError::Connector(e) => e.kind(),
        }
    }
}

/// Owners and stages of a run, mapped from the source's ids to the sink's.
#[derive(Debug, Default)]
pub struct Directory {
    /// The owner matching, when the sink stores an owner field of the run.
    owners: Option<OwnerMap>,
    /// The objects whose owner field the sink stores.
    owner_objects: Vec<ObjectType>,
    /// The stage mapping of each object whose stage field the sink stores.
    stages: BTreeMap<ObjectType, StageMap>,
    /// Records per unmatched source owner id, as they were translated.
    unmatched: Mutex<BTreeMap<String, u64>>,
}

/// The fields of `object` of type `ty` that `capability` stores.
fn stored_of(object: ObjectType, capability: &Capability, ty: FieldType) -> Vec<&'static str> {
    object
        .fields()
        .iter()
        .filter(|f| f.ty == ty && capability.stored.iter().any(|s| s == f.name))
        .map(|f| f.name)
        .collect()
}

impl Directory {
    /// A directory that translates nothing (no owner or stage is stored by the sink).
    pub fn empty() -> Directory {
        Directory::default()
    }

    /// Reads what the run's `objects` need of both vendors (users when the sink stores an
    /// owner field, an object's pipelines when it stores its stage field) and maps it by
    /// `rules`. Unmapped stages do not fail here ([`Directory::problem`] names them), so that
    /// `ferry plan` can list the whole mapping.
    pub async fn read(
        source: &dyn Source,
        sink: &dyn Sink,
        objects: &[(ObjectType, &Capability)],
        rules: &DirectoryRules,
    ) -> Result<Directory, DirectoryError> {
        let mut directory = Directory::default();
        let owner_objects: Vec<ObjectType> = objects
            .iter()
            .filter(|(o, c)| !stored_of(*o, c, FieldType::Owner).is_empty())
            .map(|(o, _)| *o)
            .collect();
        if !owner_objects.is_empty() {
            // The two sides' lists do not depend on each other: asked together, one round trip.
            let (source_users, sink_users) = tokio::join!(source.users(), sink.users());
            let (source_users, sink_users) = (source_users?, sink_users?);
            let map = OwnerMap::build(&rules.owners, &source_users, &sink_users)?;
            tracing::info!(
                source_users = source_users.len(),
                sink_users = sink_users.len(),
                matched = map.matched_count(),
                unmatched = map.unmatched_users().len(),
                "owners matched by email"
            );
            directory.owners = Some(map);
            directory.owner_objects = owner_objects;
        }
        for (object, capability) in objects {
            if stored_of(*object, capability, FieldType::Stage).is_empty() {
                continue;
            }
            let (source_pipelines, sink_pipelines) =
                tokio::join!(source.pipelines(*object), sink.pipelines(*object));
            let (source_pipelines, sink_pipelines) = (source_pipelines?, sink_pipelines?);
            // `[mapping.deal_stages]` is the only stage table; another object matches by labels.
            let none = StageRules::default();
            let stage_rules = if *object == ObjectType::DEALS {
                &rules.deal_stages
            } else {
                &none
            };
            let map = StageMap::build(stage_rules, &source_pipelines, &sink_pipelines);
            tracing::info!(
                %object,
                mapped = map.mapped.len(),
                unmapped = map.unmapped.len(),
                "stages mapped by label"
            );
            directory.stages.insert(*object, map);
        }
        Ok(directory)
    }

    /// Why the run must not start: the first object with unmapped stages or unknown keys,
    /// every one named. `None` when every stage is mapped.
    pub fn problem(&self) -> Option<DirectoryError> {
        self.stages.iter().find_map(|(object, map)| {
            map.problem().map(|detail| DirectoryError::Stages {
                object: *object,
                detail,
            })
        })
    }

    /// The owner matching, when the run needs one.
    pub fn owners(&self) -> Option<&OwnerMap> {
        self.owners.as_ref()
    }

    /// The stage mapping of `object`, when the run needs one.
    pub fn stages(&self, object: ObjectType) -> Option<&StageMap> {
        self.stages.get(&object)
    }

    /// Whether this directory changes records of `object` at all.
    fn applies(&self, object: ObjectType) -> bool {
        self.owner_objects.contains(&object) || self.stages.contains_key(&object)
    }

    /// Translates `record`'s owner and stage from the source's ids to the sink's. An unmatched
    /// owner is left out, replaced with the fallback or refuses the record, as configured; a
    /// stage the source's definitions lack refuses it ([`STAGE_UNKNOWN`]). Findings name the
    /// field, never a value.
    pub fn translate(&self, record: &mut Record) -> Vec<Finding> {
        let mut findings = Vec::new();
        if !self.applies(record.object) {
            return findings;
        }
        for spec in record.object.fields() {
            match spec.ty {
                FieldType::Owner if self.owner_objects.contains(&record.object) => {
                    self.translate_owner(record, spec.name, &mut findings);
                }
                FieldType::Stage => {
                    if let Some(map) = self.stages.get(&record.object) {
                        translate_stage(map, record, spec.name, &mut findings);
                    }
                }
                _ => {}
            }
        }
        findings
    }

    fn translate_owner(
        &self,
        record: &mut Record,
        field: &'static str,
        findings: &mut Vec<Finding>,
    ) {
        let Some(owners) = &self.owners else {
            return;
        };
        let source_id = match record.get(field) {
            None => return,
            Some(value) if crate::checksum::is_blank(value) => {
                record.fields.remove(field);
                return;
            }
            Some(Value::Text(id) | Value::Reference(id)) => id.clone(),
            Some(other) => other.to_vendor_string(),
        };
        let outcome = owners.owner(&source_id);
        if !matches!(outcome, OwnerOutcome::Matched(_)) {
            let mut unmatched = self
                .unmatched
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *unmatched.entry(source_id).or_default() += 1;
        }
        match outcome {
            OwnerOutcome::Matched(sink_id) | OwnerOutcome::Fallback(sink_id) => {
                record.set(field, Value::Text(sink_id));
            }
            OwnerOutcome::Unset => {
                record.fields.remove(field);
            }
            OwnerOutcome::Reject => findings.push(Finding {
                code: OWNER_UNMATCHED,
                reason: format!(
                    "field `{field}`: the source user who owns the record has no active sink user \
                     with the same email, and [mapping.owners] says unmatched = \"reject\""
                ),
                action: Action::Reject,
            }),
        }
    }

    /// The unmatched source owners met so far, by source user id, with how many records each
    /// owned and what was done with them.
    pub fn unmatched_owners(&self) -> Vec<UnmatchedOwner> {
        let action = self
            .owners
            .as_ref()
            .map_or(Unmatched::Unset, OwnerMap::unmatched_rule);
        let unmatched = self
            .unmatched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        unmatched
            .iter()
            .map(|(id, records)| UnmatchedOwner {
                source_user_id: id.clone(),
                records: *records,
                action,
            })
            .collect()
    }

    /// `record` as its digest sees it before the write: its (sink) owner as the sink user's
    /// normalised email, its (sink) stage as the sink's normalised labels.
    pub fn canonical_sent<'a>(&self, record: &'a Record) -> Cow<'a, Record> {
        if !self.applies(record.object) {
            return Cow::Borrowed(record);
        }
        Cow::Owned(self.canonical(record.clone()))
    }

    /// `back`, the read-back of `sent`, as its digest sees it: as [`Directory::canonical_sent`],
    /// and without an owner where `sent` had none (the sink's default owner applies then).
    pub fn canonical_back<'a>(&self, sent: &Record, back: &'a Record) -> Cow<'a, Record> {
        if !self.applies(back.object) {
            return Cow::Borrowed(back);
        }
        let mut back = back.clone();
        if self.owner_objects.contains(&back.object) {
            for spec in back
                .object
                .fields()
                .iter()
                .filter(|f| f.ty == FieldType::Owner)
            {
                if sent.get(spec.name).is_none_or(crate::checksum::is_blank) {
                    back.fields.remove(spec.name);
                }
            }
        }
        Cow::Owned(self.canonical(back))
    }

    fn canonical(&self, mut record: Record) -> Record {
        let owners = self.owner_objects.contains(&record.object);
        let stages = self.stages.contains_key(&record.object);
        for spec in record.object.fields() {
            // Only owners and stages change: the other fields are not looked up at all (a
            // record's fields are searched by name, twice for every record verified).
            let changes = match spec.ty {
                FieldType::Owner => owners,
                FieldType::Stage => stages,
                _ => false,
            };
            if !changes {
                continue;
            }
            let Some(value) = record.fields.get_mut(spec.name) else {
                continue;
            };
            match (spec.ty, value) {
                (FieldType::Owner, Value::Text(id)) => {
                    let owners = self.owners.as_ref();
                    *id = match owners.and_then(|o| o.canonical_email(id)) {
                        Some(email) => email.to_owned(),
                        // Not a user the sink listed: never equal to an email.
                        None => format!("sink user id {id}"),
                    };
                }
                (FieldType::Stage, Value::Stage(id)) => {
                    if let Some(map) = self.stages.get(&record.object)
                        && let Some((p, s)) = map.sink_labels(&id.pipeline, &id.stage)
                    {
                        (id.pipeline, id.stage) = (p.clone(), s.clone());
                    }
                }
                _ => {}
            }
        }
        record
    }
}

fn translate_stage(
    map: &StageMap,
    record: &mut Record,
    field: &'static str,
    findings: &mut Vec<Finding>,
) {
    let Some(value) = record.fields.get(field) else {
        return;
    };
    if crate::checksum::is_blank(value) {
        return;
    }
    let source = match value {
        Value::Stage(id) => Some((id.pipeline.clone(), id.stage.clone())),
        _ => None,
    };
    let mapped = source
        .as_ref()
        .and_then(|(p, s)| Some((map.to_sink(p, s)?, map.source_outcome(p, s)?)));
    let Some(((pipeline, stage), stage_outcome)) = mapped else {
        findings.push(Finding {
            code: STAGE_UNKNOWN,
            reason: format!(
                "field `{field}`: the record's pipeline stage is not among the source's stage \
                 definitions, so it cannot be mapped to a sink stage"
            ),
            action: Action::Reject,
        });
        return;
    };
    // Won and lost are a stage in some vendors and a status beside the stage in others
    // (Pipedrive, Dataverse): the deal's own status wins, else its stage's outcome, and the
    // deal is put in the sink pipeline's stage for that outcome where the sink has one.
    let has_status = record.object.field(field::STATUS).is_some();
    let status = record
        .get(field::STATUS)
        .and_then(Value::as_text)
        .and_then(outcome_of);
    let outcome = status
        .filter(|s| *s != StageOutcome::Open)
        .unwrap_or(stage_outcome);
    let (pipeline, stage) = map.closing_stage(pipeline, stage, outcome);
    record.set(field, Value::stage(pipeline, stage));
    if has_status {
        record.set(field::STATUS, Value::Text(status_word(outcome).to_owned()));
    }
}

/// The outcome a deal's `status` names (`open`, `won`, `lost`, any case).
fn outcome_of(status: &str) -> Option<StageOutcome> {
    match status.trim().to_ascii_lowercase().as_str() {
        "open" => Some(StageOutcome::Open),
        "won" => Some(StageOutcome::Won),
        "lost" => Some(StageOutcome::Lost),
        _ => None,
    }
}

/// The `status` word of an outcome.
fn status_word(outcome: StageOutcome) -> &'static str {
    match outcome {
        StageOutcome::Open => "open",
        StageOutcome::Won => "won",
        StageOutcome::Lost => "lost",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Barrier;

    use super::*;
    use crate::connector::{Page, Pipeline, RecordOutcome, User};
    use crate::error::ConnectorResult;

    /// One side of a run whose users and pipelines each answer only once the other side was
    /// asked for its own: asked one side after the other, the first never answers.
    struct Side {
        vendor: &'static str,
        both_asked: Arc<Barrier>,
    }

    impl Side {
        async fn meet(&self, what: &str) -> ConnectorResult<()> {
            tokio::time::timeout(Duration::from_secs(5), self.both_asked.wait())
                .await
                .map(|_| ())
                .map_err(|_| ConnectorError::Malformed {
                    vendor: self.vendor,
                    endpoint: what.to_owned(),
                    detail: "asked while the other side was not".into(),
                })
        }
    }

    #[async_trait]
    impl Source for Side {
        fn vendor(&self) -> &'static str {
            self.vendor
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn read_page(&self, _: ObjectType, _: Option<&str>) -> ConnectorResult<Page> {
            Ok(Page {
                records: Vec::new(),
                next: None,
                unreadable: Vec::new(),
            })
        }
        async fn users(&self) -> ConnectorResult<Vec<User>> {
            self.meet("users").await?;
            Ok(Vec::new())
        }
        async fn pipelines(&self, _: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
            self.meet("pipelines").await?;
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl Sink for Side {
        fn vendor(&self) -> &'static str {
            self.vendor
        }
        fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
            Ok(Capability {
                batch_size: 10,
                read_back_size: 10,
                stored: object.fields().iter().map(|f| f.name.to_owned()).collect(),
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
        async fn upsert(&self, _: ObjectType, _: &[Record]) -> ConnectorResult<Vec<RecordOutcome>> {
            Ok(Vec::new())
        }
        async fn read_back(&self, _: ObjectType, _: &[String]) -> ConnectorResult<Vec<Record>> {
            Ok(Vec::new())
        }
        async fn users(&self) -> ConnectorResult<Vec<User>> {
            self.meet("users").await?;
            Ok(Vec::new())
        }
        async fn pipelines(&self, _: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
            self.meet("pipelines").await?;
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn both_sides_users_and_pipelines_are_asked_together() {
        let both_asked = Arc::new(Barrier::new(2));
        let source = Side {
            vendor: "source",
            both_asked: Arc::clone(&both_asked),
        };
        let sink = Side {
            vendor: "sink",
            both_asked,
        };
        let deals = Sink::capability(&sink, ObjectType::DEALS).expect("a capability");
        let directory = Directory::read(
            &source,
            &sink,
            &[(ObjectType::DEALS, &deals)],
            &DirectoryRules::default(),
        )
        .await;
        assert!(directory.is_ok(), "{:?}", directory.err());
    }
}
