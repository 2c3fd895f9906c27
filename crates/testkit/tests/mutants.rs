//! Proves the checks can fail: runs them against the Salesforce connector with one deliberate
//! bug at a time (a "mutant"), and expects the check that guards against that bug to fail,
//! and every check to pass on the unmutated connector.
//!
//! A binary without libtest's harness, like the suite itself: the emulator's credentials go
//! into the environment before any thread exists.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use ferry_core::http::HttpStats;
use ferry_core::{
    AccountId, Capability, ConnectorResult, ConnectorSpec, FieldBinding, NewField, ObjectType,
    Page, Pipeline, Record, RecordOutcome, Sink, Source, User, Value, VendorField, field,
};
use ferry_testkit::Target;
use ferry_testkit::selftest::{self, Status};

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mutation {
    None,
    /// The sink drops `email_opt_out` on write.
    SinkDropsOptOut,
    /// The sink says every upsert created its record.
    SinkAlwaysCreated,
    /// The sink puts the record's email in a rejection reason.
    SinkQuotesValue,
    /// The sink sends a batch again when a record in it was refused.
    SinkRetriesRefusal,
    /// The sink logs its client secret.
    SinkLogsSecret,
    /// The source stops after the first page.
    SourceStopsEarly,
    /// The source returns a record twice.
    SourceRepeats,
    /// The source loses opt-outs.
    SourceDropsOptOut,
    /// The source hands each contact its neighbour's company.
    SourceSwapsCompanies,
    /// The source calls a wrong credential a network error.
    SourceMisnamesAuth,
    /// The source reports one fixed account id whatever account it reaches.
    SourceFixedAccountId,
    /// The sink accepts mapped fields but writes only its standard ones.
    SinkIgnoresMappedFields,
    /// The source lists only active users (a deactivated owner then never matches by email).
    SourceDropsInactiveUsers,
    /// The sink writes no record's owner.
    SinkDropsOwner,
    /// The sink writes each deal in the stage of the next deal of the batch.
    SinkShiftsStages,
    /// The sink writes only the first of a deal's contacts.
    SinkDropsContactLinks,
    /// The sink hangs each note on the parents of the next note of the batch.
    SinkShiftsParents,
}

static MUTATION: AtomicU8 = AtomicU8::new(Mutation::None as u8);

fn mutation() -> Mutation {
    use Mutation::*;
    [
        None,
        SinkDropsOptOut,
        SinkAlwaysCreated,
        SinkQuotesValue,
        SinkRetriesRefusal,
        SinkLogsSecret,
        SourceStopsEarly,
        SourceRepeats,
        SourceDropsOptOut,
        SourceSwapsCompanies,
        SourceMisnamesAuth,
        SourceFixedAccountId,
        SinkIgnoresMappedFields,
        SourceDropsInactiveUsers,
        SinkDropsOwner,
        SinkShiftsStages,
        SinkDropsContactLinks,
        SinkShiftsParents,
    ][MUTATION.load(Ordering::Relaxed) as usize]
}

/// Gives each record `field`'s value of the next record (the last gets the first's).
fn shift(records: &mut [Record], field: &'static str) {
    let values: Vec<Option<Value>> = records.iter().map(|r| r.get(field).cloned()).collect();
    let n = values.len();
    for (i, r) in records.iter_mut().enumerate() {
        if let Some(v) = &values[(i + 1) % n] {
            r.set(field, v.clone());
        }
    }
}

struct MutantSink(Arc<dyn Sink>);

#[async_trait]
impl Sink for MutantSink {
    fn vendor(&self) -> &'static str {
        self.0.vendor()
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        self.0.capability(object)
    }
    async fn survey(&self, object: ObjectType) -> ConnectorResult<()> {
        self.0.survey(object).await
    }
    async fn check(&self) -> ConnectorResult<()> {
        if mutation() == Mutation::SinkLogsSecret {
            let secret = std::env::var("SF_CLIENT_SECRET").unwrap_or_default();
            tracing::debug!(vendor = "salesforce", secret, "checking");
        }
        self.0.check().await
    }
    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        self.0.prepare(object).await
    }
    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let mut sent = records.to_vec();
        for r in &mut sent {
            match mutation() {
                Mutation::SinkDropsOptOut => {
                    r.fields.remove(field::EMAIL_OPT_OUT);
                }
                Mutation::SinkDropsOwner => {
                    r.fields.remove(field::OWNER);
                }
                Mutation::SinkDropsContactLinks => {
                    if let Some(Value::Links(links)) = r.fields.get_mut(field::CONTACTS) {
                        links.truncate(1);
                    }
                }
                _ => {}
            }
        }
        match mutation() {
            Mutation::SinkShiftsStages => shift(&mut sent, field::STAGE),
            Mutation::SinkShiftsParents => shift(&mut sent, field::PARENTS),
            _ => {}
        }
        let mut outcomes = self.0.upsert(object, &sent).await?;
        match mutation() {
            Mutation::SinkAlwaysCreated => {
                for o in &mut outcomes {
                    if let Ok(w) = &mut o.result {
                        w.created = true;
                    }
                }
            }
            Mutation::SinkQuotesValue => {
                for (o, r) in outcomes.iter_mut().zip(records) {
                    if let Err(rejection) = &mut o.result {
                        let email = r.text(field::EMAIL).unwrap_or_default();
                        rejection.reason.push_str(&format!(" (email {email})"));
                    }
                }
            }
            Mutation::SinkRetriesRefusal if outcomes.iter().any(|o| o.result.is_err()) => {
                outcomes = self.0.upsert(object, &sent).await?;
            }
            _ => {}
        }
        Ok(outcomes)
    }
    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        self.0.read_back(object, source_ids).await
    }
    async fn read_back_sent(
        &self,
        object: ObjectType,
        sent: &[Record],
    ) -> ConnectorResult<Vec<Record>> {
        self.0.read_back_sent(object, sent).await
    }
    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        self.0.http_stats()
    }
    async fn account_id(&self) -> ConnectorResult<Option<AccountId>> {
        self.0.account_id().await
    }
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        self.0.users().await
    }
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        self.0.pipelines(object).await
    }
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        self.0.describe(object).await
    }
    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        if mutation() == Mutation::SinkIgnoresMappedFields {
            return Ok(());
        }
        self.0.map_fields(object, bindings)
    }
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        self.0.create_field(object, field).await
    }
}

struct MutantSource(Arc<dyn Source>);

#[async_trait]
impl Source for MutantSource {
    fn vendor(&self) -> &'static str {
        self.0.vendor()
    }
    async fn check(&self) -> ConnectorResult<()> {
        let result = self.0.check().await;
        match (mutation(), result) {
            (
                Mutation::SourceMisnamesAuth,
                Err(ferry_core::ConnectorError::Auth { endpoint, .. }),
            ) => Err(ferry_core::ConnectorError::Network {
                vendor: "salesforce",
                endpoint,
                detail: "refused".into(),
            }),
            (_, result) => result,
        }
    }
    async fn account_id(&self) -> ConnectorResult<Option<AccountId>> {
        let id = self.0.account_id().await?;
        Ok(match mutation() {
            Mutation::SourceFixedAccountId => id.map(|a| AccountId {
                id: "00D000000000001AAA".into(),
                ..a
            }),
            _ => id,
        })
    }
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        self.0.describe(object).await
    }
    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        self.0.map_fields(object, bindings)
    }
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        let mut users = self.0.users().await?;
        if mutation() == Mutation::SourceDropsInactiveUsers {
            users.retain(|u| u.active);
        }
        Ok(users)
    }
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        self.0.pipelines(object).await
    }
    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let mut page = self.0.read_page(object, cursor).await?;
        match mutation() {
            Mutation::SourceStopsEarly => page.next = None,
            Mutation::SourceRepeats if cursor.is_none() => {
                if let Some(first) = page.records.first().cloned() {
                    page.records.push(first);
                }
            }
            Mutation::SourceDropsOptOut => {
                for r in &mut page.records {
                    r.fields.remove(field::EMAIL_OPT_OUT);
                }
            }
            Mutation::SourceSwapsCompanies if object == ObjectType::CONTACTS => {
                let companies: Vec<Option<Value>> = page
                    .records
                    .iter()
                    .map(|r| r.get(field::COMPANY).cloned())
                    .collect();
                let n = companies.len();
                for (i, r) in page.records.iter_mut().enumerate() {
                    match &companies[(i + 1) % n] {
                        Some(v) => r.set(field::COMPANY, v.clone()),
                        None => {
                            r.fields.remove(field::COMPANY);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(page)
    }
}

fn real() -> ConnectorSpec {
    ferry_salesforce::spec()
}

fn build_sink(settings: serde_json::Value, prefix: &str) -> ConnectorResult<Arc<dyn Sink>> {
    let build = real().sink.expect("salesforce is a sink");
    Ok(Arc::new(MutantSink(build(settings, prefix)?)))
}

fn build_source(settings: serde_json::Value, prefix: &str) -> ConnectorResult<Arc<dyn Source>> {
    let build = real().source.expect("salesforce is a source");
    Ok(Arc::new(MutantSource(build(settings, prefix)?)))
}

fn target() -> Target {
    Target {
        connector: ConnectorSpec {
            sink: Some(build_sink),
            source: Some(build_source),
            ..real()
        },
        emulator: ferry_sandbox::salesforce::SPEC,
        refused_contact: Some(ferry_testkit::refusals::missing_last_name),
    }
}

fn main() -> ExitCode {
    let target = target();
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { selftest::set_credentials(&target) };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut failures = Vec::new();

    // Unmutated, every check passes.
    MUTATION.store(Mutation::None as u8, Ordering::Relaxed);
    for (name, status) in runtime.block_on(selftest::run(target, &[])) {
        let ok = matches!(status, Status::Passed(_));
        println!(
            "{} baseline {name}: {status:?}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failures.push(format!("baseline {name}"));
        }
    }

    use Mutation::*;
    let cases: &[(Mutation, &str)] = &[
        (SinkDropsOptOut, "sink::read_back"),
        (SinkDropsOptOut, "round_trip"),
        (SinkAlwaysCreated, "sink::idempotent_upsert"),
        (SinkQuotesValue, "sink::refused_record"),
        (SinkRetriesRefusal, "sink::refused_record"),
        (SourceStopsEarly, "source::paging"),
        (SourceRepeats, "source::paging"),
        (SourceDropsOptOut, "source::opt_outs"),
        (SourceSwapsCompanies, "source::associations"),
        (SourceMisnamesAuth, "secrets"),
        (SourceFixedAccountId, "account_id"),
        (SinkIgnoresMappedFields, "fields"),
        (SourceDropsInactiveUsers, "directory"),
        (SinkDropsOwner, "round_trip"),
        (SinkShiftsStages, "round_trip"),
        (SinkDropsContactLinks, "round_trip"),
        (SinkShiftsParents, "round_trip"),
        // Last: the log is the process's, so the leaked secret stays in it.
        (SinkLogsSecret, "secrets"),
    ];
    for &(mutation, check) in cases {
        MUTATION.store(mutation as u8, Ordering::Relaxed);
        let results = runtime.block_on(selftest::run(target, &[check]));
        let status = results
            .into_iter()
            .find(|(n, _)| *n == check)
            .map(|(_, s)| s);
        let caught = matches!(status, Some(Status::Failed(_)));
        println!(
            "{} {mutation:?} caught by {check}: {status:?}",
            if caught { "ok" } else { "FAILED" }
        );
        if !caught {
            failures.push(format!("{mutation:?} not caught by {check}"));
        }
    }
    if failures.is_empty() {
        println!("mutants: all caught");
        ExitCode::SUCCESS
    } else {
        println!("mutants: {}", failures.join("; "));
        ExitCode::FAILURE
    }
}
