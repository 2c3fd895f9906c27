//! The run report: counts, digests, and every failure by source id and reason.
//!
//! Safe to print, mail and attach to a CI log: it holds ids, counts, codes, field names and
//! hashes, never a field value or a secret.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::checksum::AggregateDigest;
use crate::model::ObjectType;

/// The stage of the pipeline where a record failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The source returned a value that could not be mapped.
    Read,
    /// ferry's data-quality checks.
    Validate,
    /// The sink refused the record.
    Write,
    /// The record read back from the sink differs from what was written, or is missing.
    Verify,
    /// `sync`: the sink refused to archive or delete a record deleted in the source.
    Remove,
}

/// One record that did not make it, or a warning about one that did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The record's object type.
    pub object: ObjectType,
    /// The record's id in the source.
    pub source_id: String,
    /// Where it failed.
    pub stage: Stage,
    /// A short code (the vendor's where it gave one).
    pub code: String,
    /// A sentence naming fields, never values.
    pub reason: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Per-object counts and digests.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ObjectReport {
    /// The object type.
    pub object: Option<ObjectType>,
    /// Records read from the source.
    pub read: u64,
    /// Records the sink accepted.
    pub written: u64,
    /// Of those, records the sink created.
    pub created: u64,
    /// Of those, records the sink updated (already there from an earlier run).
    pub updated: u64,
    /// Records not written: refused by the sink, unreadable, or failing a quality check.
    pub failed: u64,
    /// Records the source returned more than once in this run, written once (listed as warnings).
    pub skipped: u64,
    /// `sync`: records read again (the read's overlap with the last sync, or a record the
    /// vendor stamped as modified with no change ferry carries) whose digest equals the one
    /// the last sync wrote and verified: not written again. Settled, neither failed nor lost.
    pub unchanged_skipped: u64,
    /// Records read back from the sink with a checksum equal to the one written.
    pub verified: u64,
    /// Records whose read-back differs from what was written, or (`migrate`) that the sink
    /// accepted and then could not find.
    pub mismatched: u64,
    /// `verify`: source records the sink does not hold at all (never written: refused during
    /// the migration, or not migrated yet). Not a mismatch: nothing written differs.
    pub not_in_sink: u64,
    /// Records read but neither written nor failed because the run stopped.
    pub unprocessed: u64,
    /// Aggregate digest of the records the sink accepted, as they were sent.
    pub sent_digest: AggregateDigest,
    /// Aggregate digest of the same records as read back from the sink.
    pub read_back_digest: AggregateDigest,
    /// Whether the two digests are equal and cover every written record.
    pub digests_match: bool,
    /// Records settled (written and verified, or failed) in earlier, interrupted runs of this
    /// migration, per the checkpoint; this run did not read them again.
    pub already_done: u64,
    /// Fields the source had values for that the sink does not store (and so are neither
    /// written nor verified), sorted.
    pub fields_not_carried: Vec<String>,
    /// Per link field, how many records were written with links left out because the sink
    /// holds fewer there ([`crate::FieldLimit::max_links`]); each is listed in the warnings
    /// (`NOT_CARRIED`) with how many links of which objects.
    pub links_not_carried: std::collections::BTreeMap<String, u64>,
    /// Per timestamp field, how many records had a time finer than the sink keeps, written and
    /// verified to the sink's precision ([`crate::FieldLimit::to_the_second`]); each is listed
    /// in the warnings (`TIME_ROUNDED`).
    pub times_rounded: std::collections::BTreeMap<String, u64>,
    /// Per phone field, how many numbers were written in E.164 form instead of as read
    /// (`migration.phones = "normalize"`); the digests cover that form, which the sink holds.
    pub phones_normalized: std::collections::BTreeMap<String, u64>,
    /// Per code (`DUPLICATE_EMAIL`, `DUPLICATE_PHONE`, `DUPLICATE_NAME`), how many records
    /// were taken for a person read earlier in the run (`migration.duplicates`); each is
    /// listed in the warnings, or skipped.
    pub duplicates: std::collections::BTreeMap<String, u64>,
    /// The records taken for one person, each cluster as source ids in the order read (its
    /// first is the record `skip` keeps): the first 1,000 clusters, each by its first 20 ids
    /// (`crate::duplicates::LISTED`). Filled once the object's read has finished.
    pub duplicate_clusters: Vec<Vec<String>>,
    /// `plan`'s whole-source check: records that passed every check a migration applies
    /// before writing, and so would be written.
    #[serde(skip_serializing_if = "is_zero")]
    pub checked: u64,
    /// Per channel (`email`, `phone`, `sms`, `fax`, `postal`), the opted-out records read, kept
    /// opted out in the sink, refused, lost as `[consent] accept_loss` allows, and the sink's
    /// own opt-outs left standing. Only channels some record was opted out of appear.
    pub consent: crate::consent::ConsentCounts,
    /// Email addresses whose domain DNS did not answer for (a timeout, SERVFAIL) under
    /// `migration.email_mx_check`: neither flagged nor passed.
    pub mx_unchecked: u64,
    /// How many clusters were found, listed or not.
    pub duplicate_clusters_found: u64,
    /// Records merged into another record of their cluster (`migration.duplicates = "merge"`):
    /// not written, and settled (neither failed nor lost).
    pub merged: u64,
    /// Each merge by source ids: the survivor written and the records merged into it.
    pub merges: Vec<crate::duplicates::Merge>,
    /// Records of this object in the sink that carry a source id, counted once the object was
    /// finished; `None` when not counted (the sink cannot count, or the run did not read the
    /// source whole, e.g. after a resume).
    pub in_sink: Option<u64>,
    /// Records in the sink carrying a source id beyond those this run read back: duplicates,
    /// or records whose source record is gone. Any makes the run a mismatch.
    pub extra_in_sink: u64,
    /// `sync`: sink records archived because their source record was deleted or archived.
    pub archived: u64,
    /// `sync`: sink records deleted because their source record was deleted or archived.
    pub deleted: u64,
    /// `sync`: sink records to remove that the sink refused (listed among the failures).
    pub not_removed: u64,
    /// Time spent on this object in this run, in milliseconds (objects run one after another).
    pub elapsed_ms: u64,
    /// Requests the source's client sent while this object ran: what reading it cost.
    pub source_http: HttpReport,
    /// Requests the sink's client sent while this object ran: writing, reading back, counting.
    pub sink_http: HttpReport,
    /// `sync` only: whether the read was full or incremental, and the watermark before and
    /// after. Absent from other commands' reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::sync::SyncReport>,
}

/// Request counts of one vendor's HTTP client.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct HttpReport {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests retried after a transient failure.
    pub retries: u64,
    /// 429 responses received.
    pub throttled: u64,
    /// Milliseconds requests waited on ferry's own pacing to the vendor's rate limit (the
    /// configured one, or the one the vendor announced in its headers) before they were sent.
    /// Summed over requests, so with requests in flight at once it can exceed the elapsed time.
    pub paced_ms: u64,
    /// Milliseconds slept before retrying requests the vendor throttled (a 429, or a 503 with
    /// `Retry-After`), at least as long as its `Retry-After` asked; summed like `paced_ms`.
    pub throttled_wait_ms: u64,
    /// What these requests cost against the vendor's limiting budget, in its units: HubSpot,
    /// requests in the ten-second window (search and the v4 association batches are exempt);
    /// Salesforce, API calls of the daily quota; Dynamics 365, requests of the 5-minute window
    /// (a `$batch` is one); Zoho, credits; Pipedrive, tokens. Token requests cost nothing.
    pub budget_cost: u64,
    /// The vendor account's daily request quota as its last answer stated it (limit and
    /// remaining); absent when its answers state none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<crate::quota::DailyQuota>,
}

impl HttpReport {
    /// What was counted between `before` and `self` (two readings of one client's counters).
    pub fn since(&self, before: &HttpReport) -> HttpReport {
        HttpReport {
            requests: self.requests.saturating_sub(before.requests),
            retries: self.retries.saturating_sub(before.retries),
            throttled: self.throttled.saturating_sub(before.throttled),
            paced_ms: self.paced_ms.saturating_sub(before.paced_ms),
            throttled_wait_ms: self
                .throttled_wait_ms
                .saturating_sub(before.throttled_wait_ms),
            budget_cost: self.budget_cost.saturating_sub(before.budget_cost),
            daily_quota: self.daily_quota,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every record read was written and verified.
    Verified,
    /// Every written record verified, but some records failed (listed).
    RecordsFailed,
    /// Some written records did not verify.
    Mismatch,
    /// The run stopped on an error before finishing.
    Failed,
    /// The run was asked to stop (SIGINT/SIGTERM) and stopped cleanly before finishing.
    Interrupted,
    /// `verify`: every record found in the sink agrees with the source, but some source records
    /// are not in the sink at all (listed; typically the ones refused during the migration).
    NotInSink,
}

impl Outcome {
    /// The process exit code for this outcome (documented in the README).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Verified => 0,
            Outcome::Failed => 1,
            Outcome::RecordsFailed | Outcome::Mismatch | Outcome::NotInSink => 3,
            Outcome::Interrupted => 4,
        }
    }
}

/// `n` followed by the singular or the plural noun: "1 record", "2 records". Every count in a
/// message goes through it, so that none says "1 attempts".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whose fault an error is, kept from where it happened to the end of the run so that a CI job
/// can branch on it (`error_kind` in `--report json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// ferry's configuration, or the vendor account's setup, is wrong: the operator fixes it.
    Config,
    /// The vendor refused the credentials or their permissions.
    Credentials,
    /// The vendor could not be reached, or the connection failed or timed out.
    Network,
    /// The vendor answered with an error or an answer ferry cannot understand.
    Vendor,
    /// A fault of ferry itself: the checkpoint could not be saved, a task died.
    Internal,
    /// The run was asked to stop (SIGINT/SIGTERM).
    Interrupted,
    /// Another `ferry sync` holds the lock of the same sync state; nothing was done.
    Locked,
    /// `sync` would remove more records than `[sync] max_deletes` allows; nothing was written
    /// or removed (`--allow-mass-delete` lets it through).
    MassDelete,
    /// The run stopped at a vendor account's daily request quota: at the configured share of
    /// what was left when it started (`[migration] daily_quota_share`), or refused by the
    /// vendor for it. Resumable once the quota allows (exit 4).
    DailyQuota,
}

impl ErrorKind {
    /// The name used in `--report json` and the human summary.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Network => "network",
            ErrorKind::Vendor => "vendor",
            ErrorKind::Internal => "internal",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Locked => "locked",
            ErrorKind::MassDelete => "mass_delete",
            ErrorKind::DailyQuota => "daily_quota",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole report of a `migrate` or `verify` run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `"migrate"` or `"verify"`.
    pub command: &'static str,
    /// The source vendor.
    pub source: &'static str,
    /// The sink vendor.
    pub sink: &'static str,
    /// How the run ended.
    pub outcome: Outcome,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
    /// Whose fault `error` is; `interrupted` when the run was stopped on request (then `error`
    /// is `null`); `null` when the run ended without either.
    pub error_kind: Option<ErrorKind>,
    /// Per-object counts and digests, in the order they ran.
    pub objects: Vec<ObjectReport>,
    /// Every record that failed, by source id and reason.
    pub failures: Vec<Failure>,
    /// Records written with a warning (duplicate emails, say).
    pub warnings: Vec<Failure>,
    /// The source's HTTP counters.
    pub source_http: HttpReport,
    /// The sink's HTTP counters.
    pub sink_http: HttpReport,
    /// Wall-clock duration of the run.
    pub elapsed_ms: u64,
    /// Whether the run was asked to stop and stopped early.
    pub interrupted: bool,
    /// The checkpoint file progress is saved to, if one is configured.
    pub checkpoint: Option<String>,
    /// Whether the run's last save of the checkpoint succeeded (false without one): only then
    /// may the summary say that progress is saved.
    pub checkpoint_saved: bool,
    /// Sink fields this run created (`create_missing_fields`), as `object.field (kind)`.
    pub fields_created: Vec<String>,
    /// Owners of records read that have no active sink user with their email, by source user
    /// id (never an email or a name), with what was done with their records.
    pub owners_unmatched: Vec<UnmatchedOwner>,
    /// `plan` only: what would stop a migration before it writes anything (a consent field
    /// the sink cannot hold, a stage that maps to none), each as the migration would say it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
    /// Why ferry stopped the run on its own before finishing: `"daily_quota"` (see
    /// [`Report::stop_for_daily_quota`]); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
    /// The vendor account's daily quota that stopped the run, when `stopped` says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<crate::quota::QuotaStop>,
}

/// A source user who owns records of the run but has no active sink user with the same email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnmatchedOwner {
    /// The source vendor's id of the user.
    pub source_user_id: String,
    /// How many records read in this run the user owns.
    pub records: u64,
    /// What was done with them: `unset` (the sink's default owner), `fallback` or `reject`.
    pub action: crate::owners::Unmatched,
}

impl Report {
    /// Works out the outcome from the counts.
    pub fn settle_outcome(&mut self) {
        self.outcome = if self.error.is_some() {
            Outcome::Failed
        } else if self.interrupted {
            Outcome::Interrupted
        } else if self
            .objects
            .iter()
            .any(|o| o.mismatched > 0 || o.extra_in_sink > 0)
        {
            Outcome::Mismatch
        } else if self
            .objects
            .iter()
            .any(|o| o.failed > 0 || o.unprocessed > 0 || o.not_removed > 0)
        {
            Outcome::RecordsFailed
        } else if self.objects.iter().any(|o| o.not_in_sink > 0) {
            Outcome::NotInSink
        } else {
            Outcome::Verified
        };
        if self.error.is_none() && self.interrupted {
            self.error_kind = Some(ErrorKind::Interrupted);
        }
    }

    /// Records the error that stopped the run and whose fault it is.
    pub fn fail(&mut self, kind: ErrorKind, message: String) {
        self.error_kind = Some(kind);
        self.error = Some(message);
    }

    /// Records that the run stopped at a daily quota: `stopped` `"daily_quota"`, error kind
    /// `daily_quota`, exit 4 like a run stopped on request (batches in flight settled, progress
    /// saved), whether ferry stopped it at its share or the vendor refused a request for it.
    pub fn stop_for_daily_quota(&mut self, stop: crate::quota::QuotaStop) {
        self.stopped = Some("daily_quota");
        self.daily_quota = Some(stop);
        self.error_kind = Some(ErrorKind::DailyQuota);
    }

    /// The process exit code (documented in the README): the outcome's, except that a run
    /// stopped by a configuration error exits 2 like any other configuration error, and a sync
    /// refused as a mass delete exits 3, as records it did not carry do.
    pub fn exit_code(&self) -> u8 {
        match (self.outcome, self.error_kind) {
            (Outcome::Failed, Some(ErrorKind::Config)) => 2,
            (Outcome::Failed, Some(ErrorKind::MassDelete)) => 3,
            (Outcome::Failed, Some(ErrorKind::DailyQuota)) => 4,
            (outcome, _) => outcome.exit_code(),
        }
    }
}

/// Live counters of one object's progress, shared with whoever draws progress bars.
#[derive(Debug, Default)]
pub struct ObjectProgress {
    /// Records read so far.
    pub read: AtomicU64,
    /// Records written so far.
    pub written: AtomicU64,
    /// Records failed so far.
    pub failed: AtomicU64,
    /// Records verified so far.
    pub verified: AtomicU64,
    /// Records sent to the sink and not answered yet: a Bulk job holds a whole batch for
    /// seconds, which the display shows rather than a count that seems stuck.
    pub writing: AtomicU64,
    /// Records being read back and not answered yet (a Bulk query job's, likewise).
    pub reading_back: AtomicU64,
    /// Records settled by earlier, interrupted runs (per the checkpoint), which this run does
    /// not read again: progress and ETA count from there, not from zero.
    pub already_done: AtomicU64,
    /// The source's count of records, when it could say (0: unknown).
    pub expected: AtomicU64,
    /// Set when this object is finished.
    pub done: std::sync::atomic::AtomicBool,
}

impl ObjectProgress {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes `n` from a counter of records in flight (never below zero).
    pub fn sub(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

/// Live counters of a whole run, one entry per object in run order.
#[derive(Debug, Default)]
pub struct Progress {
    /// The objects, in the order they run.
    pub objects: Vec<(ObjectType, ObjectProgress)>,
}

impl Progress {
    /// Counters for `objects`.
    pub fn new(objects: &[ObjectType]) -> Progress {
        Progress {
            objects: objects
                .iter()
                .map(|o| (*o, ObjectProgress::default()))
                .collect(),
        }
    }

    /// The counters of `object`.
    pub fn of(&self, object: ObjectType) -> Option<&ObjectProgress> {
        self.objects
            .iter()
            .find(|(o, _)| *o == object)
            .map(|(_, p)| p)
    }
}
