//! The traits a connector implements: [`Source`] to read a vendor, [`Sink`] to write one.
//!
//! Contracts (checked by the end-to-end tests and, later, the conformance suite):
//! - A source pages through every live record of an object type exactly once, in a stable
//!   order, resuming from an opaque cursor it handed out earlier.
//! - A sink writes a batch as upserts keyed by the source id, so running twice creates nothing
//!   new, and reports one outcome per input record, in input order. A record the vendor refuses
//!   is an outcome, not an error: only a failure of the whole request is an `Err`.
//! - A sink reads records back by source id, mapped to canonical form with the same mapping,
//!   so the checksums before and after the write are comparable.
//! - Nothing a connector returns or logs carries a secret; rejection reasons carry vendor error
//!   codes and field names, never field values (vendors quote values in their messages).

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{ConnectorError, ConnectorResult};
use crate::fields::{FieldBinding, NewField, VendorField};
use crate::http::HttpStats;
use crate::model::{ObjectType, Record};
use crate::sync::Watermark;

/// One page of records read from a source, and the cursor of the next page if there is one.
#[derive(Debug, Default)]
pub struct Page {
    /// The records on this page, in canonical form.
    pub records: Vec<Record>,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next: Option<String>,
    /// Records on this page that could not be mapped (a value of the wrong type, say): the
    /// source id and the reason, which names the field but never the value.
    pub unreadable: Vec<RecordRejection>,
}

impl Page {
    /// Adds a record as the connector mapped it or, if it could not be mapped, its rejection,
    /// which is logged by source id (the reason names the field, never the value).
    pub fn push(
        &mut self,
        vendor: &'static str,
        object: ObjectType,
        mapped: Result<Record, RecordRejection>,
    ) {
        match mapped {
            Ok(record) => self.records.push(record),
            Err(rejection) => {
                tracing::warn!(vendor, %object, id = %rejection.source_id, "record has unreadable values");
                self.unreadable.push(rejection);
            }
        }
    }

    /// Logs the page's counts, once a source has read it.
    pub fn log_read(&self, vendor: &'static str, object: ObjectType) {
        tracing::debug!(
            vendor,
            %object,
            records = self.records.len(),
            unreadable = self.unreadable.len(),
            last_page = self.next.is_none(),
            "read page"
        );
    }
}

/// A page fetched from the vendor whose records are still to be read out of the answer, so
/// that fetching the next page need not wait for that work.
pub struct FetchedPage {
    /// The opaque cursor of the next page; `None` on the last page.
    pub next: Option<String>,
    /// Reads the records out of the answer (parsing and mapping, CPU work only); the page it
    /// returns carries the same `next`.
    pub records: Box<dyn FnOnce() -> ConnectorResult<Page> + Send>,
}

impl FetchedPage {
    /// A page whose records were read already.
    pub fn ready(page: Page) -> FetchedPage {
        FetchedPage {
            next: page.next.clone(),
            records: Box::new(move || Ok(page)),
        }
    }
}

/// The vendor's own name for the account a connector's credentials reach (HubSpot's portal id,
/// Salesforce's org id, ...). Comparing a source's with a sink's tells whether a migration would
/// write into the account it reads. An account id is neither a secret nor customer data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountId {
    /// What the vendor calls the id, for messages: `"portal id"`, `"org id"`.
    pub kind: &'static str,
    /// The id as the vendor reports it.
    pub id: String,
}

impl AccountId {
    /// Reads the id at JSON `pointer` (`/portalId`) of a vendor's answer: a number or a
    /// non-empty string. Anything else is a malformed answer from `endpoint`.
    pub fn from_json(
        vendor: &'static str,
        endpoint: &str,
        kind: &'static str,
        answer: &serde_json::Value,
        pointer: &str,
    ) -> ConnectorResult<AccountId> {
        let id = match answer.pointer(pointer) {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            // The id is printed in refusals: a control character (a terminal escape from a
            // hostile endpoint) or an id too long to be one makes it unreadable instead.
            Some(serde_json::Value::String(s))
                if !s.trim().is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) =>
            {
                Some(s.trim().to_owned())
            }
            _ => None,
        };
        id.map(|id| AccountId { kind, id })
            .ok_or_else(|| crate::ConnectorError::Malformed {
                vendor,
                endpoint: endpoint.to_owned(),
                detail: format!("no {kind} at `{pointer}`"),
            })
    }
}

/// A vendor user that records may be owned by. Only the id and whether it is active are
/// printed by `Debug`: an email is personal data and never appears in a log or report.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The vendor's id of the user, as records hold it in their owner field.
    pub id: String,
    /// The user's email address, what owners are matched by.
    pub email: String,
    /// Whether the user may own records (not deactivated, archived or disabled).
    pub active: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A sales pipeline and its stages, in the vendor's order. A vendor without pipelines
/// (Salesforce, Dataverse) reports one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// The vendor's id of the pipeline, as records hold it in [`crate::Value::Stage`].
    pub id: String,
    /// Its label, what pipelines are matched by.
    pub label: String,
    /// Its stages.
    pub stages: Vec<PipelineStage>,
}

/// One stage of a [`Pipeline`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineStage {
    /// The vendor's id of the stage (for Salesforce and Zoho, whose records hold the label, the
    /// label text).
    pub id: String,
    /// Its label, what stages are matched by.
    pub label: String,
    /// Whether a deal in this stage is open, won or lost.
    pub outcome: StageOutcome,
}

/// What a stage means for its deals: the vendors' won and lost stages close them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    /// Still open.
    Open,
    /// Closed and won.
    Won,
    /// Closed and lost.
    Lost,
}

/// The refusal of a connector that cannot list its vendor's users or pipelines yet.
fn no_directory(vendor: &'static str, what: &str) -> ConnectorError {
    ConnectorError::Unsupported {
        vendor,
        detail: format!("this connector cannot list its {what} yet"),
    }
}

/// The refusal of a connector that cannot read only the records changed since a watermark.
fn no_changes(vendor: &'static str, object: ObjectType) -> ConnectorError {
    ConnectorError::Unsupported {
        vendor,
        detail: format!(
            "this connector cannot read only the {object} changed since the last sync yet, so \
             `ferry sync` cannot use it as a source (`ferry migrate` reads everything)"
        ),
    }
}

/// How a sink takes away a record deleted in the source (`[sync] deletes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// The sink's soft delete: archive, recycle bin, deactivate.
    Archive,
    /// The sink's delete (which for some vendors is the same soft delete: see each connector).
    Delete,
}

/// One page of what a source says was deleted since a watermark.
#[derive(Debug, PartialEq, Eq)]
pub enum DeletedPage {
    /// The source ids of records deleted (or archived) at or after the watermark, and the
    /// cursor of the next page (`None` on the last).
    Ids {
        /// Source ids, in no particular order; repeats are harmless.
        ids: Vec<String>,
        /// The opaque cursor of the next page.
        next: Option<String>,
    },
    /// The source no longer knows every deletion since the watermark (its log was trimmed, the
    /// window was missed): the engine compares id sets instead.
    Lost,
}

/// One page of ids: the source's live records, or the sink's records that carry a source id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IdPage {
    /// Source ids on this page.
    pub ids: Vec<String>,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// What a sink did with one record it was asked to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    /// Archived (soft-deleted; the vendor can restore it).
    Archived,
    /// Deleted.
    Deleted,
    /// No sink record carries that source id (never written, or removed already).
    Absent,
}

/// The outcome of removing one record, by source id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// The record's source id.
    pub source_id: String,
    /// What was done, or why the sink refused.
    pub result: Result<Removed, RecordRejection>,
}

/// The refusal of a connector that cannot learn its vendor's deletions.
fn no_deletions(vendor: &'static str, object: ObjectType) -> ConnectorError {
    ConnectorError::Unsupported {
        vendor,
        detail: format!("this connector cannot read which {object} were deleted"),
    }
}

/// The refusal of a sink that cannot list or remove its records by source id.
fn cannot_remove(vendor: &'static str, object: ObjectType, what: &str) -> ConnectorError {
    ConnectorError::Unsupported {
        vendor,
        detail: format!(
            "this connector cannot {what} {object} by ferry's source id yet, so `[sync] deletes` \
             must stay \"ignore\" for it"
        ),
    }
}

/// A vendor to read records from.
#[async_trait]
pub trait Source: Send + Sync {
    /// The vendor's name as used in config files and messages, e.g. `"hubspot"`.
    fn vendor(&self) -> &'static str;

    /// Checks connectivity and credentials with one cheap request.
    async fn check(&self) -> ConnectorResult<()>;

    /// Reads the page of `object` at `cursor` (`None` for the first page).
    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page>;

    /// Fetches the page of `object` at `cursor` and finds the next page's cursor, leaving its
    /// records to be read by [`FetchedPage::records`]. The pipeline fetches the next page while
    /// that runs, so a source whose answers name the cursor apart from the records (most list
    /// endpoints do) should override it. The default reads the whole page first.
    async fn fetch_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        Ok(FetchedPage::ready(self.read_page(object, cursor).await?))
    }

    /// Fetches the page of `object` at `cursor` (`None` for the first page) of the records
    /// changed at or after `since`, as [`Source::fetch_page`] does for all of them. A source
    /// that cannot read changes says so: the default is [`ConnectorError::Unsupported`], never
    /// a full read passed off as an incremental one.
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        _since: &Watermark,
        _cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        Err(no_changes(self.vendor(), object))
    }

    /// Where the next incremental read of `object` may start once a read begun now has
    /// settled: the vendor's own clock now, less the connector's overlap (clock skew, writes
    /// committed after their timestamp). Asked before each sync's read of `object`.
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        Err(no_changes(self.vendor(), object))
    }

    /// Fetches the page at `cursor` of the source ids of `object` deleted (or archived) at or
    /// after `since`, or [`DeletedPage::Lost`] when the vendor no longer knows them all. A
    /// source without a deletion log says so: the default is [`ConnectorError::Unsupported`],
    /// never a silent "nothing deleted"; the engine then compares id sets.
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        _since: &Watermark,
        _cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        Err(no_deletions(self.vendor(), object))
    }

    /// Fetches the page at `cursor` of the source ids of every live record of `object`, for an
    /// id-set comparison. The default reads whole pages ([`Source::fetch_page`]); a source
    /// that can list ids alone should override it. Unreadable records are live and count.
    async fn fetch_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let fetched = self.fetch_page(object, cursor).await?;
        let page = (fetched.records)()?;
        Ok(IdPage {
            ids: page
                .records
                .into_iter()
                .map(|r| r.source_id)
                .chain(page.unreadable.into_iter().map(|u| u.source_id))
                .collect(),
            next: page.next,
        })
    }

    /// How many records of `object` there are, if the vendor can say cheaply (for progress
    /// bars' ETA). `None` when it cannot.
    async fn count(&self, _object: ObjectType) -> ConnectorResult<Option<u64>> {
        Ok(None)
    }

    /// How many records of `object` are opted out in the opt-out field `field` (canonical,
    /// e.g. `do_not_call`), asked before a run whose sink cannot hold that opt-out. The
    /// default reads every page and counts; a source whose vendor can count by a filter (one
    /// query) should override it.
    async fn count_opted_out(&self, object: ObjectType, field: &str) -> ConnectorResult<u64> {
        count_opted_out_by_reading(self, object, field).await
    }

    /// Requests reading `object` costs per record, from the connector's page size (a page's
    /// list call and any per-page reads of its links, over the records a page holds):
    /// `ferry plan`'s estimate of a run's requests. `None` (the default): unknown.
    fn requests_per_record(&self, _object: ObjectType) -> Option<f64> {
        None
    }

    /// The request counters of this connector's HTTP client, for the report.
    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        None
    }

    /// The scopes the vendor says the credentials were granted, once a token was fetched
    /// (`None` when the vendor does not say). `ferry check` shows them.
    fn granted_scopes(&self) -> Option<Vec<String>> {
        None
    }

    /// The account the credentials reach, as the vendor identifies it (one cheap request).
    /// `None` when the connector cannot say. Used to refuse a sink in the source's account.
    async fn account_id(&self) -> ConnectorResult<Option<AccountId>> {
        Ok(None)
    }

    /// For a copy within one account (`--allow-same-account`): from now on, leave out the
    /// records that carry the sink's source-id field, the copies earlier runs (or this one)
    /// wrote, so that a rerun updates them instead of copying the copies. Returns `false` when
    /// the connector cannot tell its copies apart; then such a run must be refused.
    fn leave_out_copies(&self) -> bool {
        false
    }

    /// The vendor's fields of `object`, standard and custom, with their kinds, picklist options
    /// and the canonical field each maps to (metadata only: no record is read). `ferry fields`
    /// lists them, and the engine checks a field map against them before a run.
    async fn describe(&self, _object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        Err(ConnectorError::Unsupported {
            vendor: self.vendor(),
            detail: "this connector cannot describe its fields yet".into(),
        })
    }

    /// The vendor's users that records may be owned by, active or not (owners are matched to
    /// the sink's by email). Asked only when the sink stores an owner field of the run.
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        Err(no_directory(self.vendor(), "users"))
    }

    /// The pipelines and stages of `object` (deals). Asked only when the sink stores a stage
    /// field of the run.
    async fn pipelines(&self, _object: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        Err(no_directory(self.vendor(), "pipelines"))
    }

    /// From now on, also read the vendor fields of `bindings` on `object`, as the canonical
    /// fields they name (each replaces a standard binding with the same canonical name or
    /// vendor field). Called before the first read.
    fn map_fields(&self, _object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        not_mappable(self.vendor(), bindings)
    }
}

/// Where a written record now lives in the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The record's id in the sink.
    pub sink_id: String,
    /// Whether the upsert created it (`false`: it updated an existing record).
    pub created: bool,
}

/// Why one record was refused. Carries no field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRejection {
    /// The record's source id.
    pub source_id: String,
    /// A short machine-readable code, the vendor's where it gave one (`REQUIRED_FIELD_MISSING`).
    pub code: String,
    /// A sentence naming the fields involved, never their values.
    pub reason: String,
}

/// The outcome of writing one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The record's source id.
    pub source_id: String,
    /// Where it was written, or why it was refused.
    pub result: Result<Written, RecordRejection>,
}

/// What a sink does with one object, declared in one value (the engine reads nothing else
/// about it): how many records a write and a read-back may carry, which fields it stores,
/// which it requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    /// The most records one `upsert` call may carry (the vendor's batch limit).
    pub batch_size: usize,
    /// The most source ids one `read_back` call may carry.
    pub read_back_size: usize,
    /// The canonical fields this sink stores and returns on read-back; checksums cover these.
    pub stored: Vec<String>,
    /// The canonical fields the vendor refuses a record without (Salesforce's contact
    /// `last_name`). The engine applies the operator's `missing_required` rule to them before
    /// writing.
    pub required: Vec<String>,
    /// Whether the vendor records an email opt-out per email address (HubSpot's subscription
    /// statuses, Pipedrive's marketing status), so that it cannot hold the opt-out of a record
    /// without a valid address. The engine then refuses such records before writing
    /// ([`crate::quality::OPT_OUT_NOT_REPRESENTABLE`]): an opted-out person must never arrive
    /// subscribable. `false` where a person-level flag holds it.
    pub opt_out_needs_email: bool,
    /// What the sink cannot hold of some fields: the most characters of a text (a note's
    /// body), the most links of a link field (one parent per note). The engine refuses a text
    /// over its limit before writing ([`crate::quality::TOO_LONG`]), never truncating it, and
    /// writes the links that fit, reporting each record that lost some
    /// ([`crate::quality::NOT_CARRIED`]), and refuses a value outside the few the sink holds
    /// ([`crate::quality::VALUE_NOT_HELD`]: a single-currency org's one currency), keeps a
    /// timestamp to the sink's precision ([`crate::quality::TIME_ROUNDED`]), and gives a record
    /// without a field the value the sink fills in for it ([`crate::quality::SINK_DEFAULT`]).
    /// Empty when the sink holds whatever it stores, as sent.
    pub limits: Vec<FieldLimit>,
}

/// What a sink can hold of one canonical field (see [`Capability::limits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldLimit {
    /// The canonical field, e.g. `"body"`.
    pub field: String,
    /// The most characters (Unicode scalar values) the sink holds in it, if it has a limit.
    pub max_chars: Option<usize>,
    /// Whether the sink stores the plain form ([`crate::richtext::to_plain`]) of a rich-text
    /// field, so that `max_chars` counts that rather than the vendor's HTML.
    pub counts_plain_text: bool,
    /// The most links (a [`crate::Value::Links`] field) the sink holds in it, if it has a
    /// limit: 1 for a vendor that takes a single parent per note.
    pub max_links: Option<usize>,
    /// The most links to each target object the sink holds in it, if it has a limit: 1 for a
    /// vendor that hangs a note on one deal, one person and one organisation at most.
    pub max_per_target: Option<usize>,
    /// The only values the sink holds in it, if it holds only some: an org that keeps every
    /// amount in one currency holds that currency and no other. Compared ignoring case.
    pub only_values: Option<Vec<String>>,
    /// The most names of a set of names ([`crate::FieldType::Names`]) the sink holds in it,
    /// if it holds fewer than `only_values` lists: 1 for Zoho, whose GDPR record keeps one
    /// legal basis. The names kept are the first of `only_values`, in its order (the sink's
    /// precedence); the others are left out with a warning.
    pub max_names: Option<usize>,
    /// The finest time the sink keeps in a timestamp field, in milliseconds, if coarser than
    /// one: 1,000 for a vendor that keeps whole seconds.
    pub precision_ms: Option<i64>,
    /// What the sink holds in the field when a record is written without it, if it fills it
    /// in (Pipedrive: a deal's `value` 0, its `currency` the user's default), as text parsed
    /// as the field's type. The engine gives a record without the field this value before
    /// the digest and the write ([`crate::quality::SINK_DEFAULT`], a warning), so verification
    /// compares what the sink holds rather than calling the sink's own default a difference.
    pub unset_reads_as: Option<String>,
}

impl FieldLimit {
    /// No limit on `field` yet: what each kind of limit below starts from.
    fn on(field: impl Into<String>) -> FieldLimit {
        FieldLimit {
            field: field.into(),
            max_chars: None,
            counts_plain_text: false,
            max_links: None,
            max_per_target: None,
            only_values: None,
            max_names: None,
            precision_ms: None,
            unset_reads_as: None,
        }
    }

    /// A text field of at most `max` characters, counted on the text as carried.
    pub fn max_chars(field: impl Into<String>, max: usize) -> FieldLimit {
        FieldLimit {
            max_chars: Some(max),
            ..FieldLimit::on(field)
        }
    }

    /// A link field holding at most `max` links.
    pub fn max_links(field: impl Into<String>, max: usize) -> FieldLimit {
        FieldLimit {
            max_links: Some(max),
            ..FieldLimit::on(field)
        }
    }

    /// A link field holding at most `max` links to each of its target objects (one deal, one
    /// person and one organisation per note).
    pub fn max_links_per_target(field: impl Into<String>, max: usize) -> FieldLimit {
        FieldLimit {
            max_per_target: Some(max),
            ..FieldLimit::on(field)
        }
    }

    /// A timestamp field the sink keeps to the whole second: the engine writes and verifies
    /// the time to the second, and says which records lost a fraction of a second.
    pub fn to_the_second(field: impl Into<String>) -> FieldLimit {
        FieldLimit {
            precision_ms: Some(1_000),
            ..FieldLimit::on(field)
        }
    }

    /// A field in which the sink holds only `values` (a single-currency org's currency): a
    /// record with another value is refused, one without a value passes.
    pub fn only_values(field: impl Into<String>, values: Vec<String>) -> FieldLimit {
        FieldLimit {
            only_values: Some(values),
            ..FieldLimit::on(field)
        }
    }

    /// A set of names of which the sink holds one only, out of `values` listed in its order of
    /// precedence (Zoho's legal basis): the engine keeps the first held name of a record and
    /// leaves out the rest, saying so ([`crate::quality::NAMES_NOT_HELD`]).
    pub fn one_of(field: impl Into<String>, values: Vec<String>) -> FieldLimit {
        FieldLimit {
            only_values: Some(values),
            max_names: Some(1),
            ..FieldLimit::on(field)
        }
    }

    /// A field the sink fills in with `value` when a record is written without it (see
    /// [`FieldLimit::unset_reads_as`]): Pipedrive's deal `amount` 0.
    pub fn unset_reads_as(field: impl Into<String>, value: impl Into<String>) -> FieldLimit {
        FieldLimit {
            unset_reads_as: Some(value.into()),
            ..FieldLimit::on(field)
        }
    }

    /// The same limit, counting characters on the plain form of a rich text: for a sink that
    /// stores plain text and whose connector writes [`crate::richtext::to_plain`] of it.
    pub fn of_plain_text(mut self) -> FieldLimit {
        self.counts_plain_text = true;
        self
    }
}

impl Capability {
    /// The refusal of a connector that has no binding for `object`.
    pub fn unsupported(vendor: &'static str, object: ObjectType) -> ConnectorError {
        ConnectorError::Unsupported {
            vendor,
            detail: format!("this connector cannot write {object}"),
        }
    }
}

/// [`Source::count_opted_out`] by reading every page of `object` and counting the records
/// opted out in `field`: the default, and the fallback of a source whose count by filter is
/// capped.
pub async fn count_opted_out_by_reading<S: Source + ?Sized>(
    source: &S,
    object: ObjectType,
    field: &str,
) -> ConnectorResult<u64> {
    let mut n = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let page = source.read_page(object, cursor.as_deref()).await?;
        n += page
            .records
            .iter()
            .filter(|r| r.get(field) == Some(&crate::Value::Bool(true)))
            .count() as u64;
        match page.next {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(n),
        }
    }
}

/// A vendor to write records to.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The vendor's name as used in config files and messages, e.g. `"salesforce"`.
    fn vendor(&self) -> &'static str;

    /// What this sink does with `object`: batch sizes, stored and required fields. An object the
    /// connector has no binding for is [`ConnectorError::Unsupported`], naming it; the engine
    /// asks before reading anything, so such a run stops at once.
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability>;

    /// Checks connectivity and credentials with one cheap request.
    async fn check(&self) -> ConnectorResult<()>;

    /// Reads the account settings that shape [`Sink::capability`] for `object`, where they
    /// differ between accounts of one vendor (whether an org keeps amounts in one currency or
    /// many). The engine calls it before asking the capability. Default: nothing to read.
    async fn survey(&self, _object: ObjectType) -> ConnectorResult<()> {
        Ok(())
    }

    /// Whether the sink writes `object` differently by its size (Salesforce's Bulk API for a
    /// large one): a migration then counts the source's records first and hands the count to
    /// [`Sink::expect`], before it asks the capability. Default: no.
    fn wants_size(&self, _object: ObjectType) -> bool {
        false
    }

    /// Told, before [`Sink::capability`], how many records of `object` a migration reads (the
    /// source's count), when [`Sink::wants_size`] asked for it. Default: ignored.
    fn expect(&self, _object: ObjectType, _records: u64) {}

    /// Makes sure `object` can be written (the external-id field exists, say). Fails with a
    /// [`crate::ConnectorError::Setup`] that says exactly what to do when it cannot.
    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()>;

    /// Upserts `records` (at most `batch_size`), keyed by source id, returning one outcome per
    /// record in the same order. References to parents (a contact's company) hold the parent's
    /// source id; the sink resolves them to its own ids.
    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>>;

    /// Reads back the records with the given source ids (at most `read_back_size`), in canonical
    /// form. Ids not found are simply absent from the result.
    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>>;

    /// Reads back `sent` (at most `read_back_size` records, as they were handed to `upsert`),
    /// in canonical form; records not found are absent. What verification calls. By default
    /// [`Sink::read_back`] by their source ids; a sink whose vendor has nowhere to keep a source
    /// id on an object (Pipedrive's notes) overrides it to find each record by what was sent
    /// (its parent and original time), and returns it under its source id.
    async fn read_back_sent(
        &self,
        object: ObjectType,
        sent: &[Record],
    ) -> ConnectorResult<Vec<Record>> {
        let ids: Vec<String> = sent.iter().map(|r| r.source_id.clone()).collect();
        self.read_back(object, &ids).await
    }

    /// [`Sink::read_back_sent`], handing each record found to `each` as it is read: what
    /// verification calls, comparing each as it comes. By default the records of
    /// `read_back_sent` one by one; a sink reading a large chunk in one answer (a Salesforce
    /// Bulk query job) overrides it so that the chunk's records are never all held at once.
    async fn read_back_each(
        &self,
        object: ObjectType,
        sent: &[Record],
        each: &mut (dyn FnMut(Record) + Send),
    ) -> ConnectorResult<()> {
        for record in self.read_back_sent(object, sent).await? {
            each(record);
        }
        Ok(())
    }

    /// How many records of `object` in the sink carry a source id (any source id, not only
    /// this run's). Verification compares it with the records it read back, which finds
    /// duplicates and records whose source record is gone. `None` when the vendor cannot say
    /// within a bounded number of requests.
    async fn count_with_source_id(&self, _object: ObjectType) -> ConnectorResult<Option<u64>> {
        Ok(None)
    }

    /// Fetches the page at `cursor` of the source ids carried by `object`'s records in the sink
    /// (records without one are never listed), for an id-set comparison.
    async fn source_ids_page(
        &self,
        object: ObjectType,
        _cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        Err(cannot_remove(self.vendor(), object, "list"))
    }

    /// Archives or deletes the sink records of `object` that carry `source_ids` (at most
    /// `batch_size`), found by ferry's source id only, returning one outcome per id in the same
    /// order. A refusal is an outcome; only a failure of the whole request is an `Err`. No ids:
    /// no request, `Ok` of nothing (the engine asks so before a sync, to refuse a sink that
    /// cannot remove).
    async fn remove(
        &self,
        object: ObjectType,
        _source_ids: &[String],
        _how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        Err(cannot_remove(self.vendor(), object, "remove"))
    }

    /// The API calls the vendor lets this sink's account have in flight at once, when that,
    /// not a rate, is what limits it (Zoho's concurrency limit): unless the config names
    /// `batches_in_flight`, a run keeps at least that many batches in flight. `None` (the
    /// default): no such limit.
    fn concurrent_calls(&self) -> Option<usize> {
        None
    }

    /// The most batches of `object` the sink takes in flight at once, when it takes fewer than
    /// the run's `batches_in_flight` (each stage, writes and read-backs): Salesforce's Bulk
    /// jobs, whose batches hold tens of thousands of records. `None` (the default): the run's.
    fn batches_in_flight(&self, _object: ObjectType) -> Option<usize> {
        None
    }

    /// Requests writing `object` costs per record, from the connector's batch size (a batch's
    /// write, read-back and link calls, over the records a batch holds): `ferry plan`'s
    /// estimate of a run's requests. `None` (the default): unknown.
    fn requests_per_record(&self, _object: ObjectType) -> Option<f64> {
        None
    }

    /// The request counters of this connector's HTTP client, for the report.
    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        None
    }

    /// The scopes the vendor says the credentials were granted, once a token was fetched
    /// (`None` when the vendor does not say). `ferry check` shows them.
    fn granted_scopes(&self) -> Option<Vec<String>> {
        None
    }

    /// The account the credentials reach, as the vendor identifies it (one cheap request).
    /// `None` when the connector cannot say. Used to refuse a sink in the source's account.
    async fn account_id(&self) -> ConnectorResult<Option<AccountId>> {
        Ok(None)
    }

    /// The vendor's fields of `object`, as [`Source::describe`].
    async fn describe(&self, _object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        Err(ConnectorError::Unsupported {
            vendor: self.vendor(),
            detail: "this connector cannot describe its fields yet".into(),
        })
    }

    /// The vendor's users that records may be owned by, active or not, as [`Source::users`].
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        Err(no_directory(self.vendor(), "users"))
    }

    /// The pipelines and stages of `object`, as [`Source::pipelines`].
    async fn pipelines(&self, _object: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        Err(no_directory(self.vendor(), "pipelines"))
    }

    /// From now on, also write (and read back) the canonical fields of `bindings` on `object`
    /// into their vendor fields; a picklist label becomes the vendor's internal value, and a
    /// label the list lacks refuses the record, naming the field. Called before the first
    /// write; `stored_fields` then includes them.
    fn map_fields(&self, _object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        not_mappable(self.vendor(), bindings)
    }

    /// The kind `describe` will list a field [`Sink::create_field`] creates for `kind` with
    /// (a vendor without checkbox fields makes a text field for a flag); `None` for a kind it
    /// cannot create. Lets a run see, before it creates anything in the customer's account,
    /// whether the created fields could carry what is mapped into them.
    fn created_kind(&self, kind: crate::fields::FieldKind) -> Option<crate::fields::FieldKind> {
        Some(kind)
    }

    /// Creates a custom field on `object` through the vendor's metadata API
    /// (`create_missing_fields = true`), returning it as `describe` will list it.
    async fn create_field(
        &self,
        _object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        Err(ConnectorError::Unsupported {
            vendor: self.vendor(),
            detail: format!(
                "cannot create field `{}`: this connector cannot create fields",
                field.name
            ),
        })
    }

    /// A place in the sink's account to keep `ferry sync`'s state named `name` (`[sync] state =
    /// "sink"`): one small text document replaced by compare-and-swap
    /// ([`crate::state_store::StateStore`]). Default: `None`, the vendor has no such place
    /// without creating schema, or no compare-and-swap. Called within the async runtime.
    fn state_store(&self, _name: &str) -> Option<Box<dyn crate::state_store::StateStore>> {
        None
    }
}

/// The refusal of a connector that cannot map fields beyond its standard table.
fn not_mappable(vendor: &'static str, bindings: &[FieldBinding]) -> ConnectorResult<()> {
    match bindings.first() {
        None => Ok(()),
        Some(binding) => Err(ConnectorError::Unsupported {
            vendor,
            detail: format!(
                "cannot map field `{}`: this connector reads and writes only its standard fields",
                binding.vendor
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_id_that_could_act_on_a_terminal_is_unreadable() {
        let read = |answer: serde_json::Value| {
            AccountId::from_json("v", "GET /me", "org id", &answer, "/id").map(|a| a.id)
        };
        assert_eq!(read(serde_json::json!({"id": 123})).unwrap(), "123");
        assert_eq!(read(serde_json::json!({"id": " 00D1 "})).unwrap(), "00D1");
        assert!(read(serde_json::json!({"id": "00D\u{1b}]0;x\u{7}"})).is_err());
        assert!(read(serde_json::json!({"id": "x".repeat(129)})).is_err());
        assert!(read(serde_json::json!({"id": ""})).is_err());
    }
}
