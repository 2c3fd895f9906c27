//! The Salesforce sink: upserts through sObject Collections keyed by the external-id field,
//! reads back through SOQL; a large object (`bulk_threshold`) through Bulk API 2.0 ingest and
//! query jobs instead.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::currency::OrgCurrency;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, NewField, VendorField};
use ferry_core::http::{BodyCap, HttpStats};
use ferry_core::json::{Field, Object};
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::{
    Capability, ConnectorError, ConnectorResult, FieldLimit, IdPage, ObjectType, Record,
    RecordOutcome, RecordRejection, Removal, RemoveOutcome, Removed, Sink, Written, field,
};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::bulk::{BulkClient, Ingest, Operation, Polling, RowOutcome, Rows};
use crate::client::{Call, Client};
use crate::config::{SalesforceConfig, Settings};
use crate::fields::{self, Describe};
use crate::links;
use crate::mapping::{self, OBJECTS, SalesforceBody, SalesforceLinks, SalesforceObject};
use crate::notes;
use crate::policy::clean_code;
use crate::soql;

/// A Salesforce org as a sink.
pub struct SalesforceSink {
    settings: Settings,
    client: Arc<Client>,
    /// Bulk API 2.0 through the same client.
    bulk: BulkClient,
    /// The objects this run writes through Bulk API 2.0: those the source counted at least
    /// `bulk_threshold` records of.
    bulk_objects: Mutex<HashSet<ObjectType>>,
    /// Per object, the Salesforce id of each record a Bulk job saved (by source id) until it is
    /// read back: the read-back then asks for a range of ids, not a list.
    saved: Mutex<HashMap<ObjectType, HashMap<u64, SavedId>>>,
    /// The standard field maps, plus the fields the engine mapped.
    fields: FieldMaps,
    /// Whether the org keeps every amount in one currency.
    currency: OrgCurrency,
}

/// The body of an sObject Collections request.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Collection<'a> {
    all_or_none: bool,
    records: &'a [&'a SalesforceBody<'a>],
}

/// A record's result in an sObject Collections response.
#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<SaveError>,
}

/// A record's error. Salesforce's `message` is deliberately not read: it quotes values.
#[derive(Deserialize)]
struct SaveError {
    #[serde(rename = "statusCode", default)]
    status_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl SalesforceSink {
    /// Builds the sink from its config (no I/O: the token is fetched on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `sink.client_secret`.
    pub fn new(config: SalesforceConfig, key_prefix: &str) -> ConnectorResult<SalesforceSink> {
        let (settings, client) = Client::build(&config, key_prefix)?;
        let client = Arc::new(client);
        Ok(SalesforceSink {
            settings,
            bulk: BulkClient::over(Arc::clone(&client)),
            bulk_objects: Mutex::new(HashSet::new()),
            saved: Mutex::new(HashMap::new()),
            client,
            fields: mapping::standard_maps(),
            currency: OrgCurrency::default(),
        })
    }

    /// The same sink polling its Bulk jobs as `polling` says (tests poll faster).
    pub fn with_bulk_polling(mut self, polling: Polling) -> SalesforceSink {
        self.bulk = self.bulk.with_polling(polling);
        self
    }

    /// Whether `object` is written and read back through Bulk API 2.0 in this run.
    pub fn is_bulk(&self, object: ObjectType) -> bool {
        self.bulk_objects
            .lock()
            .is_ok_and(|objects| objects.contains(&object))
    }

    /// Whether `records` records of `object` go in one Bulk job (or query jobs): a bulk
    /// object's batch of at least [`BULK_MIN_RECORDS`], or of `bulk_threshold` if that is less.
    fn in_bulk(&self, object: ObjectType, records: usize) -> bool {
        let least = BULK_MIN_RECORDS.min(self.settings.bulk_threshold as usize);
        records >= least && self.is_bulk(object)
    }

    /// Keeps the Salesforce id a Bulk job saved `source_id` of `object` under, for its read-back
    /// (by a hash of the source id: 32 bytes a record, where two strings took over 100; a
    /// collision only widens or narrows a range, and a record outside it is read by source id).
    fn remember(&self, object: ObjectType, source_id: &str, id: &str) {
        let Some(id) = SavedId::new(id) else {
            return; // not an id: its record is read back by source id
        };
        if let Ok(mut saved) = self.saved.lock() {
            saved
                .entry(object)
                .or_default()
                .insert(id_hash(source_id), id);
        }
    }

    /// The lowest and highest Salesforce ids saved for `source_ids` of `object` (forgotten
    /// now: each is read back once), and how many there were.
    fn saved_range(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> Option<(String, String, usize)> {
        let mut saved = self.saved.lock().ok()?;
        let ids = saved.get_mut(&object)?;
        let mut range: Option<(SavedId, SavedId)> = None;
        let mut n = 0;
        for source_id in source_ids {
            let Some(id) = ids.remove(&id_hash(source_id)) else {
                continue;
            };
            n += 1;
            range = Some(match range {
                None => (id, id),
                Some((low, high)) => (low.min(id), high.max(id)),
            });
        }
        range.map(|(low, high)| (low.as_str().to_owned(), high.as_str().to_owned(), n))
    }

    /// How many access tokens this sink has fetched (1 unless sessions expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    fn ext(&self) -> &str {
        &self.settings.external_id_field
    }

    /// Checks `sobject` has the external-id field and every mapped field, writable.
    async fn check_object(&self, sobject: &str, written: &[&str]) -> ConnectorResult<Describe> {
        let described = fields::describe(&self.client, sobject).await?;
        let find = |name: &str| described.field(name);
        let ext = self.ext();
        match find(ext) {
            None => return Err(setup_missing_field(sobject, ext)),
            Some(f) if !f.external_id => return Err(setup_not_external(sobject, ext)),
            Some(f) => {
                if !f.case_sensitive {
                    tracing::warn!(
                        vendor = VENDOR,
                        sobject,
                        field = ext,
                        "the external-id field is case-insensitive: source ids differing only in case would be merged"
                    );
                }
            }
        }
        let unwritable: Vec<&str> = written
            .iter()
            .copied()
            .filter(|name| !find(name).is_some_and(|f| f.createable && f.updateable))
            .collect();
        if !unwritable.is_empty() {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "the integration user cannot write {sobject} fields {}: give the connected app's run-as user \
                     edit access to them (Setup → Object Manager → {sobject} → Fields & Relationships → the field → \
                     Set Field-Level Security), or use a profile or permission set that has it",
                    unwritable.join(", ")
                ),
            });
        }
        Ok(described)
    }

    /// Sends one collection upsert of `items` (record index, body) and answers each: written,
    /// refused, or refused for a reason that passes (sent again by [`settle`]).
    async fn send_collection<'r>(
        &self,
        row: &SalesforceObject,
        records: &[Record],
        items: Vec<(usize, SalesforceBody<'r>)>,
        map: &FieldMap,
    ) -> ConnectorResult<Vec<((usize, SalesforceBody<'r>), Attempt<RecordOutcome>)>> {
        let ext = self.ext();
        let sobject = row.sobject;
        let path = self
            .client
            .data_path(&format!("composite/sobjects/{sobject}/{ext}"));
        let endpoint = format!("PATCH {path}");
        let bodies: Vec<&SalesforceBody<'_>> = items.iter().map(|(_, b)| b).collect();
        // Encoded straight from the records: no JSON tree per record.
        let body = serde_json::to_vec(&Collection {
            all_or_none: false,
            records: &bodies,
        })
        .map_err(|e| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.clone(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        let response = self
            .client
            .send(Call {
                method: Method::PATCH,
                path: &path,
                query: &[],
                body: Some(body),
                headers: &[],
                cap: BodyCap::Page,
            })
            .await?;
        let results: Vec<SaveResult> = response.json(VENDOR, &endpoint)?;
        if results.len() != items.len() {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: format!("{} results for {} records", results.len(), items.len()),
            });
        }
        let mut out = Vec::with_capacity(items.len());
        for (item, result) in items.into_iter().zip(results) {
            let record = &records[item.0];
            let attempt = if result.success {
                let sink_id = result.id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: endpoint.clone(),
                        detail: "a successful result has no id".into(),
                    }
                })?;
                Attempt::Done(RecordOutcome {
                    source_id: record.source_id.clone(),
                    result: Ok(Written {
                        sink_id,
                        created: result.created.unwrap_or(false),
                    }),
                })
            } else {
                let (code, reason) = rejection_reason(record, row, &result.errors, ext, map);
                let refused = reject(record, &code, reason);
                if is_transient(&result.errors) {
                    Attempt::Again(refused)
                } else {
                    Attempt::Done(refused)
                }
            };
            out.push((item, attempt));
        }
        Ok(out)
    }

    /// Sends one Bulk API 2.0 upsert job of `items` (record index, body) and answers each:
    /// saved, refused, or to be sent again in a new job (a transient refusal, or a row the job
    /// did not process because it failed or was aborted part-way).
    async fn send_job(
        &self,
        row: &'static SalesforceObject,
        records: &[Record],
        items: Vec<usize>,
        map: &FieldMap,
    ) -> ConnectorResult<Vec<(usize, Attempt<RecordOutcome>)>> {
        let ext = self.ext();
        let rows = BodyRows::new(records, &items, row, ext, map);
        let column_names: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
        let outcome = self
            .bulk
            .ingest(&Ingest {
                object: row.sobject,
                operation: Operation::Upsert {
                    external_id_field: ext,
                },
                columns: &column_names,
                rows: &rows,
                // `BodyRows` puts the external id first.
                key_column: 0,
            })
            .await?;
        drop(rows);
        let failed_jobs = outcome.job_errors().len();
        if failed_jobs > 0 {
            // The job's message can quote values: only the count is logged.
            tracing::warn!(
                vendor = VENDOR,
                sobject = row.sobject,
                failed_jobs,
                "a Bulk job ended before processing every row: its unprocessed rows are sent again"
            );
        }
        let mut out = Vec::with_capacity(items.len());
        for (item, result) in items.into_iter().zip(outcome.rows) {
            let record = &records[item];
            let attempt = match result {
                RowOutcome::Saved { id, created } => {
                    self.remember(row.object, &record.source_id, &id);
                    Attempt::Done(RecordOutcome {
                        source_id: record.source_id.clone(),
                        result: Ok(Written {
                            sink_id: id,
                            created,
                        }),
                    })
                }
                RowOutcome::Failed { code, fields, .. } => {
                    let errors = [SaveError {
                        status_code: code,
                        fields,
                    }];
                    let (code, reason) = rejection_reason(record, row, &errors, ext, map);
                    let refused = reject(record, &code, reason);
                    if is_transient(&errors) {
                        Attempt::Again(refused)
                    } else {
                        Attempt::Done(refused)
                    }
                }
                RowOutcome::Unprocessed => Attempt::Again(reject(
                    record,
                    "BULK_UNPROCESSED",
                    "the Bulk API job ended (failed or aborted) before it processed the record, \
                     in every job it was sent in: not written"
                        .into(),
                )),
            };
            out.push((item, attempt));
        }
        Ok(out)
    }

    /// Upserts `records` in one call of their own: sObject Collections (at most 200), or with
    /// `bulk` one Bulk API 2.0 job; returns outcomes in input order.
    async fn upsert_chunk(
        &self,
        object: ObjectType,
        records: &[Record],
        bulk: bool,
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let row = mapping::binding(object)?;
        let sobject = row.sobject;
        let ext = self.ext();
        let map = self.fields.get(object);
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut sent: Vec<usize> = Vec::with_capacity(records.len());
        // A body weighs about 500 bytes: a Bulk job's are made again a row at a time as its
        // CSV is written, not kept for the whole job (25,000 of them) while it runs.
        let mut bodies: Vec<SalesforceBody<'_>> = Vec::new();
        for (i, record) in records.iter().enumerate() {
            if record.source_id.is_empty() {
                outcomes[i] = Some(reject(
                    record,
                    "MISSING_SOURCE_ID",
                    "the record has no source id".into(),
                ));
                continue;
            }
            match mapping::to_salesforce(record, row, ext, &map) {
                Ok(body) => {
                    sent.push(i);
                    if !bulk {
                        bodies.push(body);
                    }
                }
                Err(e) => {
                    outcomes[i] = Some(RecordOutcome {
                        source_id: record.source_id.clone(),
                        result: Err(e.into_rejection(&record.source_id)),
                    });
                }
            }
        }
        // Records refused with a transient per-record code (a row lock) are sent again, in a
        // smaller collection, after a backoff; the rest of their collection is already saved.
        let resend = Resend::from_retry(&self.settings.retry);
        let settled: Vec<(usize, RecordOutcome)> = if bulk {
            // Each round is a new job: a few, not `max_retries`.
            let rounds = Resend {
                rounds: resend.rounds.min(BULK_ROUNDS),
                ..resend
            };
            settle(VENDOR, sent, rounds, |items| {
                self.send_job(row, records, items, &map)
            })
            .await?
        } else {
            let items: Vec<(usize, SalesforceBody<'_>)> = sent.into_iter().zip(bodies).collect();
            settle(VENDOR, items, resend, |items| {
                self.send_collection(row, records, items, &map)
            })
            .await?
            .into_iter()
            .map(|((i, _), outcome)| (i, outcome))
            .collect()
        };
        for (i, outcome) in settled {
            outcomes[i] = Some(outcome);
        }
        let written = outcomes
            .iter()
            .flatten()
            .filter(|o| o.result.as_ref().is_ok_and(|w| w.created))
            .count();
        let rejected = outcomes
            .iter()
            .flatten()
            .filter(|o| o.result.is_err())
            .count();
        tracing::debug!(
            vendor = VENDOR,
            sobject,
            records = records.len(),
            created = written,
            rejected,
            bulk,
            "upserted"
        );
        let mut outcomes = outcomes
            .into_iter()
            .zip(records)
            .map(|(o, r)| {
                o.ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("PATCH composite/sobjects/{sobject}"),
                    detail: format!("no outcome for record {}", r.source_id),
                })
            })
            .collect::<ConnectorResult<Vec<RecordOutcome>>>()?;
        if let Some(SalesforceLinks::ContactRoles { canonical }) = &row.links {
            links::write_roles(&self.client, resend, ext, canonical, records, &mut outcomes)
                .await?;
        }
        Ok(outcomes)
    }
}

impl SalesforceSink {
    /// Reads back `source_ids` of `object` (not notes), handing each record found to `each`:
    /// a Bulk object's chunk a row at a time as its query job's results are parsed; an object
    /// with links (deals' contact roles) once its links are attached.
    async fn read_back_into(
        &self,
        object: ObjectType,
        source_ids: &[String],
        each: &mut (dyn FnMut(Record) + Send),
    ) -> ConnectorResult<()> {
        if source_ids.is_empty() {
            return Ok(());
        }
        let row = mapping::binding(object)?;
        let ext = self.ext();
        let map = self.fields.get(object);
        // References are read back through the target's external id: `Account.<ext>`.
        let references: Vec<String> = row
            .references
            .iter()
            .map(|r| format!("{}.{ext}", r.relationship))
            .collect();
        let mut extra = vec![ext, mapping::ID_FIELD];
        extra.extend(references.iter().map(String::as_str));
        let select = mapping::read_back_fields(&map, &extra);
        let from = format!("SELECT {} FROM {}", select.join(", "), row.sobject);
        let prefix = format!("{from} WHERE {ext}");
        // Records with links wait here for them, with the sink id of each; the others go on.
        let linked = row.links.is_some();
        let mut held = Vec::new();
        let mut ids = Vec::new();
        let mut found_n = 0usize;
        let mut one = |sf: &Object<'_>| {
            if let Some(record) = mapping::from_salesforce(row, sf, ext, &map) {
                found_n += 1;
                if linked {
                    held.push(record);
                    let id = sf.get(mapping::ID_FIELD).and_then(|v| v.as_str());
                    ids.push(id.unwrap_or_default().to_owned());
                } else {
                    each(record);
                }
            }
        };
        if self.in_bulk(object, source_ids.len()) {
            // The source ids read, among those asked (borrowed from `source_ids`).
            let asked: HashSet<&str> = source_ids.iter().map(String::as_str).collect();
            let mut found: HashSet<&str> = HashSet::new();
            let mut in_range = false;
            if let Some((low, high, saved)) = self.saved_range(object, source_ids) {
                // The range of the ids the jobs saved: one statement however many ids, each
                // row kept only when it is one of those asked (exact: any asked record not in
                // the range is looked for by its source id below). A range holding far more
                // rows than asked (ids interleaved with other records) is not read.
                found.reserve(source_ids.len());
                let q = format!(
                    "{from} WHERE {id} >= {} AND {id} <= {}",
                    soql::literal(&low),
                    soql::literal(&high),
                    id = mapping::ID_FIELD
                );
                let most = (2 * saved + RANGE_SLACK) as u64;
                let read = self
                    .bulk
                    .query_each_within(&q, None, Some(most), |header, cells| {
                        let sf = csv_object(header, cells);
                        let key = sf.get(ext).and_then(|v| v.as_str());
                        if let Some(&key) = key.and_then(|k| asked.get(k))
                            && found.insert(key)
                        {
                            one(&sf);
                        }
                    })
                    .await?;
                in_range = read.is_some();
                tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), saved, in_range = found.len(), read = in_range, "read back by id range");
            }
            let missing: Vec<String> = source_ids
                .iter()
                .filter(|id| !(in_range && found.contains(id.as_str())))
                .cloned()
                .collect();
            drop(found);
            // Query jobs, each statement up to SOQL's 100,000 characters, the same mapping.
            for q in soql::in_statements(&prefix, &missing) {
                self.bulk
                    .query_each(&q, None, |header, cells| one(&csv_object(header, cells)))
                    .await?;
            }
        } else {
            // A Bulk object's small last chunk: the ids its jobs saved are not needed any more.
            let _ = self.saved_range(object, source_ids);
            for q in soql::in_queries(&prefix, source_ids) {
                self.client.query_each(&q, &mut one).await?;
            }
        }
        if let Some(SalesforceLinks::ContactRoles { canonical }) = &row.links {
            let roles = links::roles(&self.client, &ids, &format!("Contact.{ext}")).await?;
            links::attach(&mut held, canonical, roles, |i, _| ids.get(i).cloned());
            held.into_iter().for_each(&mut *each);
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = found_n, "read back");
        Ok(())
    }
}

impl SalesforceSink {
    /// Notes: `Note` takes the fields ferry writes, and every parent object has the
    /// external-id field parents are found by.
    async fn prepare_notes(&self, row: &SalesforceObject) -> ConnectorResult<()> {
        let described = fields::describe(&self.client, row.sobject).await?;
        let unwritable: Vec<&str> = ["Title", "Body", "ParentId", "OwnerId"]
            .into_iter()
            .filter(|name| !described.field(name).is_some_and(|f| f.createable))
            .collect();
        if !unwritable.is_empty() {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "the integration user cannot create Note fields {}: give the connected app's run-as \
                     user Create on Notes and edit access to those fields",
                    unwritable.join(", ")
                ),
            });
        }
        if !described.field("CreatedDate").is_some_and(|f| f.createable) {
            tracing::warn!(
                vendor = VENDOR,
                "Note.CreatedDate is not createable (\"Set Audit Fields upon Record Creation\" is off): \
                 notes will be dated by the migration and their timestamps will not verify"
            );
        }
        for (object, _) in mapping::NOTE_PARENTS {
            self.check_object(mapping::binding(*object)?.sobject, &[])
                .await?;
        }
        Ok(())
    }
}

/// A Salesforce id a Bulk job saved: up to 18 ASCII letters and digits, zero-padded, so that
/// ids compare as their text does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SavedId([u8; 18]);

impl SavedId {
    /// `id`, unless it is not up to 18 ASCII letters and digits.
    fn new(id: &str) -> Option<SavedId> {
        let mut bytes = [0u8; 18];
        let fits = !id.is_empty()
            && id.len() <= bytes.len()
            && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !fits {
            return None;
        }
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Some(SavedId(bytes))
    }

    fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        // Letters and digits only (checked in `new`): always UTF-8.
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }
}

/// The key a saved id is kept under: a hash of the record's source id.
fn id_hash(source_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    source_id.hash(&mut h);
    h.finish()
}

/// The fewest records sent as one Bulk job (the last batch of an object can be small), unless
/// `bulk_threshold` is lower: a job takes about six calls, what 1,000 records take through
/// sObject Collections.
pub const BULK_MIN_RECORDS: usize = 1_000;
/// Rows beyond twice those asked that a read-back's id range may hold and still be read.
const RANGE_SLACK: usize = 1_000;
/// Jobs a row the Bulk API did not process (or refused with a transient code) is sent again in.
const BULK_ROUNDS: usize = 3;

/// Per-record error codes that say the record could not be saved *now*: another transaction
/// held its row (or its parent's). Salesforce documents retrying them.
const TRANSIENT_CODES: &[&str] = &["UNABLE_TO_LOCK_ROW"];

/// Whether a record's errors are all transient, so sending it again can succeed.
fn is_transient(errors: &[SaveError]) -> bool {
    !errors.is_empty()
        && errors
            .iter()
            .all(|e| TRANSIENT_CODES.contains(&e.status_code.as_str()))
}

/// The (name, value) pairs of a record read from CSV.
type Fields<'a> = Vec<(Cow<'a, str>, Field<'a>)>;

/// The rows of a Bulk upsert: the very bodies sObject Collections would carry, flattened to
/// CSV columns, each made from its record as its row is written into the upload (no body nor
/// copy of the rows is kept). A parent found by external id (`Account: {ext: …}`) is the
/// column `Account.<ext>`; `null` (or an empty text, which Salesforce stores as null) clears
/// the field ([`crate::bulk::CLEAR`]); a field a body leaves out (an opt-out not set, no owner)
/// is an empty cell, which leaves it as it is, as leaving it out of the JSON does.
struct BodyRows<'b> {
    records: &'b [Record],
    /// The index in `records` of each row.
    items: &'b [usize],
    row: &'static SalesforceObject,
    ext: &'b str,
    map: &'b FieldMap,
    /// The header: the external id first, then every column a body has, in order of first use.
    columns: Vec<String>,
    /// Each column's index in `columns`.
    at: HashMap<String, usize>,
}

impl<'b> BodyRows<'b> {
    fn new(
        records: &'b [Record],
        items: &'b [usize],
        row: &'static SalesforceObject,
        ext: &'b str,
        map: &'b FieldMap,
    ) -> BodyRows<'b> {
        let mut rows = BodyRows {
            records,
            items,
            row,
            ext,
            map,
            columns: vec![ext.to_owned()],
            at: HashMap::from([(ext.to_owned(), 0)]),
        };
        for i in 0..items.len() {
            if let Some(body) = rows.body(i) {
                body.csv_cells(|column, _| {
                    let name = column.to_string();
                    if !rows.at.contains_key(&name) {
                        rows.at.insert(name.clone(), rows.columns.len());
                        rows.columns.push(name);
                    }
                });
            }
        }
        rows
    }

    /// Row `i`'s body, made again from its record (it was made once before the job, so it can
    /// be: `None` only for a row out of range).
    fn body(&self, i: usize) -> Option<SalesforceBody<'b>> {
        let record = self.records.get(*self.items.get(i)?)?;
        mapping::to_salesforce(record, self.row, self.ext, self.map).ok()
    }
}

impl Rows for BodyRows<'_> {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn key(&self, i: usize, _key_column: usize) -> Option<&str> {
        let record = self.records.get(*self.items.get(i)?)?;
        Some(record.source_id.as_str())
    }

    fn cells(&self, i: usize) -> Vec<Option<Cow<'_, str>>> {
        let mut cells = vec![Some(Cow::Borrowed("")); self.columns.len()];
        if let Some(body) = self.body(i) {
            body.csv_cells(|column, value| {
                if let Some(&at) = self.at.get(column.to_string().as_str()) {
                    cells[at] = value.map(|v| Cow::Owned(v.into_owned()));
                }
            });
        }
        cells
    }
}

/// A row of a Bulk query's CSV as the record a SOQL page holds: an empty cell is `null`, and
/// a column `Account.<ext>` is field `<ext>` of the nested object `Account`.
fn csv_object<'a>(header: &'a [String], cells: &[&'a str]) -> Object<'a> {
    let mut fields: Fields<'a> = Vec::with_capacity(header.len());
    let mut parents: Vec<(&'a str, Fields<'a>)> = Vec::new();
    for (name, cell) in header.iter().zip(cells) {
        let value = if cell.is_empty() {
            Field::Null
        } else {
            Field::Text(Cow::Borrowed(*cell))
        };
        match name.split_once('.') {
            Some((parent, field)) => {
                let field = (Cow::Borrowed(field), value);
                match parents.iter_mut().find(|(p, _)| *p == parent) {
                    Some((_, nested)) => nested.push(field),
                    None => parents.push((parent, vec![field])),
                }
            }
            None => fields.push((Cow::Borrowed(name.as_str()), value)),
        }
    }
    for (parent, nested) in parents {
        // A parent with no value in any of its columns is no parent, as `null` in JSON.
        let value = if nested.iter().all(|(_, v)| matches!(v, Field::Null)) {
            Field::Null
        } else {
            Field::Object(nested.into_iter().collect())
        };
        fields.push((Cow::Borrowed(parent), value));
    }
    fields.into_iter().collect()
}

fn reject(record: &Record, code: &str, reason: String) -> RecordOutcome {
    RecordOutcome {
        source_id: record.source_id.clone(),
        result: Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: code.to_owned(),
            reason,
        }),
    }
}

/// Keeps a Salesforce field name to API-name characters.
fn clean_field(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(80)
        .collect()
}

/// A rejection's code and reason from Salesforce's errors: codes and field names, with the
/// canonical names beside them, never the vendor's message (which quotes values).
fn rejection_reason(
    record: &Record,
    row: &SalesforceObject,
    errors: &[SaveError],
    ext: &str,
    map: &FieldMap,
) -> (String, String) {
    let canonical = |sf: &str| {
        map.iter()
            .find(|b| b.vendor.eq_ignore_ascii_case(sf))
            .map(|b| b.canonical.clone())
    };
    // The reference Salesforce could not resolve when it names no field: the record's first.
    let reference = row
        .references
        .iter()
        .find(|r| record.text(r.canonical).is_some());
    let parts: Vec<String> = errors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let code = clean_code(&e.status_code);
            let names: Vec<String> = e
                .fields
                .iter()
                .map(|f| {
                    let f = clean_field(f);
                    match canonical(&f) {
                        Some(c) => format!("{f} ({c})"),
                        None => f,
                    }
                })
                .collect();
            // The first error's code is the rejection's code; only further errors repeat theirs.
            let prefix = if i == 0 { String::new() } else { format!("{code} ") };
            if !names.is_empty() {
                format!("{prefix}field {}", names.join(", "))
            } else if let Some(reference) = reference.filter(|_| code == "INVALID_FIELD") {
                let (canonical, target) = (reference.canonical, reference.target_sobject());
                let target_noun = mapping::binding(reference.target).map_or(canonical, |t| t.noun);
                format!(
                    "{prefix}the {canonical} reference: no {target} has the {}'s {canonical} as its {ext} (the \
                     {target_noun} was not migrated, or was rejected)",
                    row.noun
                )
            } else if i == 0 {
                "the record (no field named)".to_owned()
            } else {
                code
            }
        })
        .collect();
    let code = errors
        .first()
        .map(|e| clean_code(&e.status_code))
        .filter(|c| !c.is_empty());
    let reason = if parts.is_empty() {
        "refused without an error code".to_owned()
    } else {
        format!("Salesforce refused {}", parts.join("; "))
    };
    (code.unwrap_or_else(|| "UNKNOWN".into()), reason)
}

/// The sObjects of the binding table that hold an external id and that `keep` keeps, as
/// `A, B and C` (a Note takes no custom field: notes are keyed by title).
fn sobjects(keep: impl Fn(&str) -> bool) -> String {
    let names: Vec<&str> = OBJECTS
        .iter()
        .filter(|row| row.object != ObjectType::NOTES)
        .map(|row| row.sobject)
        .filter(|s| keep(s))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

fn setup_missing_field(sobject: &str, ext: &str) -> ConnectorError {
    ConnectorError::Setup {
        vendor: VENDOR,
        detail: format!(
            "{sobject} has no field `{ext}`, which ferry needs to store each record's source id (so reruns update \
             instead of duplicating). Create it: Setup → Object Manager → {sobject} → Fields & Relationships → New → \
             Text; Field Label \"Ferry Source Id\", Length 255; tick \"Unique\" (choose \"Treat \\\"ABC\\\" and \
             \\\"abc\\\" as different values (case sensitive)\") and \"External ID\"; Field Name (API name) {} ; \
             grant the integration user edit access. Do the same on {}. Or set `sink.external_id_field` to the API name \
             of an existing unique External ID text field on {}.",
            ext.strip_suffix("__c").unwrap_or(ext),
            sobjects(|s| s != sobject),
            sobjects(|_| true),
        ),
    }
}

fn setup_not_external(sobject: &str, ext: &str) -> ConnectorError {
    ConnectorError::Setup {
        vendor: VENDOR,
        detail: format!(
            "{sobject}.{ext} exists but is not an External ID field. Edit it: Setup → Object Manager → {sobject} → \
             Fields & Relationships → {ext} → Edit; tick \"Unique\" (case sensitive) and \"External ID\". Or set \
             `sink.external_id_field` to the API name of an existing unique External ID text field."
        ),
    }
}

#[async_trait]
impl Sink for SalesforceSink {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn granted_scopes(&self) -> Option<Vec<String>> {
        self.client.granted_scopes()
    }

    /// The account's org id (`GET /services/oauth2/userinfo`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    /// Every user of the org, active or not (`SELECT Id, Email, IsActive FROM User`).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client).await
    }

    /// Deals: the active opportunity stages as one pipeline, `StageName` (see
    /// [`crate::PIPELINE_ID`]).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object).await
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// One sObject Collections upsert per batch of `batch_size`, and one read-back query per
    /// `read_back_size` records (plus one query of contact roles for an object that has them);
    /// through Bulk, a job and its query job per `bulk_job_records`. Notes (two writes per note):
    /// unknown.
    fn requests_per_record(&self, object: ObjectType) -> Option<f64> {
        if object == ObjectType::NOTES {
            return None;
        }
        let row = mapping::binding(object).ok()?;
        let roles = usize::from(matches!(
            row.links,
            Some(SalesforceLinks::ContactRoles { .. })
        ));
        if self.is_bulk(object) {
            // Per job: create, upload, close, two polls, the saved rows; read back by one
            // query job over the range of the saved ids: a create, two polls and a page.
            return Some((6 + 4 + roles) as f64 / self.settings.bulk_job_records as f64);
        }
        let batch = crate::config::MAX_BATCH_SIZE
            .min(self.settings.batch_size)
            .max(1);
        let read_back = self.settings.read_back_size.max(1);
        Some(1.0 / batch as f64 + (1 + roles) as f64 / read_back as f64)
    }

    /// A Bulk object's batches are whole jobs: one written and one read back at a time keeps
    /// the records held to a few jobs' worth.
    fn batches_in_flight(&self, object: ObjectType) -> Option<usize> {
        self.is_bulk(object).then_some(1)
    }

    /// Every object but notes (written two calls a note, keyed by title) can go through Bulk.
    fn wants_size(&self, object: ObjectType) -> bool {
        // Without a threshold (Bulk off) the migration need not count the source first.
        object != ObjectType::NOTES && self.settings.bulk_threshold < u64::MAX
    }

    /// An object of at least `bulk_threshold` records goes through Bulk API 2.0.
    fn expect(&self, object: ObjectType, records: u64) {
        if records >= self.settings.bulk_threshold
            && self.wants_size(object)
            && let Ok(mut objects) = self.bulk_objects.lock()
        {
            objects.insert(object);
            tracing::info!(vendor = VENDOR, %object, records, threshold = self.settings.bulk_threshold, "writing through Bulk API 2.0");
        }
    }

    // Salesforce refuses an Account without Name and a Contact without LastName (REQUIRED_FIELD_MISSING).
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        let row = mapping::binding(object)?;
        let (batch_size, read_back_size) = if self.is_bulk(object) {
            let job = self.settings.bulk_job_records;
            (job, job)
        } else {
            (self.settings.batch_size, self.settings.read_back_size)
        };
        Ok(Capability {
            batch_size,
            read_back_size,
            stored: mapping::stored_fields(&self.fields.get(object), row),
            required: row.required.iter().map(|f| (*f).to_owned()).collect(),
            opt_out_needs_email: row.opt_out_needs_email,
            limits: if object == ObjectType::NOTES {
                vec![
                    FieldLimit::max_chars(field::BODY, notes::MAX_BODY).of_plain_text(),
                    FieldLimit::max_links(field::PARENTS, 1),
                ]
            } else {
                self.currency.limits(object)
            },
        })
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client.check().await
    }

    /// Deals: whether the org keeps one currency (see [`crate::currency`]).
    async fn survey(&self, object: ObjectType) -> ConnectorResult<()> {
        self.currency
            .learn(object, &self.fields, || {
                crate::currency::single(&self.client)
            })
            .await
            .map(|_| ())
    }

    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        let row = mapping::binding(object)?;
        if object == ObjectType::NOTES {
            return self.prepare_notes(row).await;
        }
        // Normally surveyed already; a single-currency org has no currency field to check.
        self.currency
            .learn(object, &self.fields, || {
                crate::currency::single(&self.client)
            })
            .await?;
        let map = self.fields.get(object);
        let described = self
            .check_object(row.sobject, &mapping::written_fields(&map, row))
            .await?;
        if let Some(bindings) = fields::respelled(&map, &described) {
            self.fields.map(object, &FieldMap::default(), &bindings);
        }
        for reference in row.references {
            // A reference finds its target through the target's external id.
            self.check_object(mapping::binding(reference.target)?.sobject, &[])
                .await?;
        }
        if let Some(SalesforceLinks::ContactRoles { .. }) = &row.links {
            // A contact role finds its contact through the contact's external id.
            self.check_object(mapping::binding(ObjectType::CONTACTS)?.sobject, &[])
                .await?;
        }
        Ok(())
    }

    /// `GET …/sobjects/{Account|Contact}/describe`.
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        fields::vendor_fields(&self.client, object).await
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        let row = mapping::binding(object)?;
        mapping::check_bindings(object, bindings)?;
        self.fields.map(object, row.standard(), bindings);
        self.currency.leave_out(object, &self.fields);
        Ok(())
    }

    /// Tooling `CustomField`, then `FieldPermissions` for the run-as user's profile.
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        fields::create_field(&self.client, object, field).await
    }

    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        if self.in_bulk(object, records.len()) {
            return self.upsert_chunk(object, records, true).await;
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(crate::config::MAX_BATCH_SIZE.min(self.settings.batch_size)) {
            if object == ObjectType::NOTES {
                let resend = Resend::from_retry(&self.settings.retry);
                outcomes.extend(notes::upsert(&self.client, resend, self.ext(), chunk).await?);
            } else {
                outcomes.extend(self.upsert_chunk(object, chunk, false).await?);
            }
        }
        Ok(outcomes)
    }

    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        if object == ObjectType::NOTES {
            return notes::read_back(&self.client, self.ext(), source_ids).await;
        }
        let mut out = Vec::with_capacity(source_ids.len());
        self.read_back_into(object, source_ids, &mut |record| out.push(record))
            .await?;
        Ok(out)
    }

    /// A Bulk object's chunk is handed on a row at a time as its query job's results are
    /// parsed, never held as records all at once.
    async fn read_back_each(
        &self,
        object: ObjectType,
        sent: &[Record],
        each: &mut (dyn FnMut(Record) + Send),
    ) -> ConnectorResult<()> {
        let ids: Vec<String> = sent.iter().map(|r| r.source_id.clone()).collect();
        if object == ObjectType::NOTES {
            notes::read_back(&self.client, self.ext(), &ids)
                .await?
                .into_iter()
                .for_each(each);
            return Ok(());
        }
        self.read_back_into(object, &ids, each).await
    }

    /// `SELECT <ext> FROM <sObject> WHERE <ext> != null ORDER BY Id` (notes: `Title`, kept when
    /// it starts with ferry's prefix), paged through `nextRecordsUrl`: records without ferry's
    /// key are not listed.
    async fn source_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let row = mapping::binding(object)?;
        let notes = object == ObjectType::NOTES;
        let key = if notes { "Title" } else { self.ext() };
        let mut response = match cursor {
            None => {
                // Notes' titles are filtered on ferry's prefix here: `LIKE` is not needed.
                let soql = format!(
                    "SELECT {key} FROM {} WHERE {key} != null ORDER BY {}",
                    row.sobject,
                    mapping::ID_FIELD
                );
                self.client.query(&soql, None).await?
            }
            Some(next) => self.client.query_more(next, None).await?,
        };
        let page = response.page()?;
        let ids = page
            .records
            .iter()
            .filter_map(|r| r.get(key).and_then(|v| v.as_str()))
            .filter_map(|v| {
                if notes {
                    notes::source_id_of(v)
                } else {
                    Some(v)
                }
            })
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let next = if page.done {
            None
        } else {
            Some(
                page.next_records_url
                    .ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET {}", self.client.data_path("query")),
                        detail: "a page with done: false has no nextRecordsUrl".into(),
                    })?,
            )
        };
        Ok(IdPage { ids, next })
    }

    /// Finds the records by ferry's key only (the external-id field; a note's `Title`), then
    /// `DELETE …/composite/sobjects?ids=` (200 a request) into the Recycle Bin, Salesforce's
    /// only removal through this API: `Archive` and `Delete` make the same call, reported as
    /// deleted. A record Salesforce would delete others with (an account's contacts,
    /// opportunities and notes; a contact's or opportunity's notes) while any of them is still
    /// there is refused (`WOULD_CASCADE`), never deleted: children are removed first, so only
    /// children still live in the source remain.
    async fn remove(
        &self,
        object: ObjectType,
        source_ids: &[String],
        _how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        let row = mapping::binding(object)?;
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Source id → Salesforce id.
        let mut found: HashMap<String, String> = HashMap::with_capacity(source_ids.len());
        if object == ObjectType::NOTES {
            notes::find(&self.client, "Id, Title", source_ids, |source, sf| {
                if let Some(id) = sf.get(mapping::ID_FIELD).and_then(|v| v.as_str()) {
                    found.insert(source.to_owned(), id.to_owned());
                }
            })
            .await?;
        } else {
            let ext = self.ext();
            let prefix = format!(
                "SELECT {}, {ext} FROM {} WHERE {ext}",
                mapping::ID_FIELD,
                row.sobject
            );
            for q in soql::in_queries(&prefix, source_ids) {
                self.client
                    .query_each(&q, |sf| {
                        let text = |f: &str| sf.get(f).and_then(|v| v.as_str());
                        if let (Some(id), Some(source)) = (text(mapping::ID_FIELD), text(ext)) {
                            found.insert(source.to_owned(), id.to_owned());
                        }
                    })
                    .await?;
            }
        }
        let ids: Vec<String> = found.values().cloned().collect();
        let with_children = self.with_children(object, &ids).await?;
        let mut refused: HashMap<String, String> = HashMap::new();
        let deletable: Vec<&str> = ids
            .iter()
            .filter(|id| !with_children.contains(*id))
            .map(String::as_str)
            .collect();
        for chunk in deletable.chunks(COLLECTION_LIMIT) {
            let codes = links::delete_ids(&self.client, chunk).await?;
            for (id, code) in chunk.iter().zip(codes) {
                if let Some(code) = code.filter(|c| c != "ENTITY_IS_DELETED") {
                    refused.insert((*id).to_owned(), code);
                }
            }
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = ids.len(), kept_for_children = with_children.len(), "deleted");
        Ok(source_ids
            .iter()
            .map(|source| {
                let result = match found.get(source) {
                    None => Ok(Removed::Absent),
                    Some(id) if with_children.contains(id) => Err(RecordRejection {
                        source_id: source.clone(),
                        code: "WOULD_CASCADE".into(),
                        reason: format!(
                            "Salesforce would delete the {} still on it with it; not deleted",
                            row.sobject
                        ),
                    }),
                    Some(id) => match refused.get(id) {
                        Some(code) => Err(RecordRejection {
                            source_id: source.clone(),
                            code: code.clone(),
                            reason: format!("Salesforce refused to delete the {}", row.sobject),
                        }),
                        None => Ok(Removed::Deleted),
                    },
                };
                RemoveOutcome {
                    source_id: source.clone(),
                    result,
                }
            })
            .collect())
    }

    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        if object == ObjectType::NOTES {
            // Notes are keyed by a title prefix, which only `LIKE` could count.
            return Ok(None);
        }
        let soql = format!(
            "SELECT COUNT() FROM {} WHERE {} != null",
            mapping::binding(object)?.sobject,
            self.ext()
        );
        Ok(self.client.query(&soql, None).await?.page()?.total_size)
    }
}

/// Most ids one `DELETE …/composite/sobjects` carries.
const COLLECTION_LIMIT: usize = 200;

impl SalesforceSink {
    /// Of the Salesforce ids `ids` of `object`, those that records Salesforce deletes with them
    /// still refer to: an account's contacts, opportunities and notes; a contact's or an
    /// opportunity's notes (contact roles only link, and go with either end).
    async fn with_children(
        &self,
        object: ObjectType,
        ids: &[String],
    ) -> ConnectorResult<HashSet<String>> {
        let children: &[(&str, &str)] = if object == ObjectType::COMPANIES {
            &[
                ("Contact", "AccountId"),
                ("Opportunity", "AccountId"),
                ("Note", "ParentId"),
            ]
        } else if object == ObjectType::CONTACTS || object == ObjectType::DEALS {
            &[("Note", "ParentId")]
        } else {
            &[]
        };
        let mut parents = HashSet::new();
        for (sobject, field) in children {
            let prefix = format!("SELECT {field} FROM {sobject} WHERE {field}");
            for q in soql::in_queries(&prefix, ids) {
                self.client
                    .query_each(&q, |sf| {
                        if let Some(parent) = sf.get(field).and_then(|v| v.as_str()) {
                            parents.insert(parent.to_owned());
                        }
                    })
                    .await?;
            }
        }
        Ok(parents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Value, field};

    /// Saved ids compare as their text does, whatever their length, and read back the same.
    #[test]
    fn saved_ids_keep_their_text_and_order() {
        let ids = [
            "003000000000001AAA",
            "003000000000002",
            "00300000000000Z",
            "003",
        ];
        let saved: Vec<SavedId> = ids.iter().filter_map(|id| SavedId::new(id)).collect();
        assert_eq!(saved.len(), ids.len());
        for (a, sa) in ids.iter().zip(&saved) {
            assert_eq!(sa.as_str(), *a);
            for (b, sb) in ids.iter().zip(&saved) {
                assert_eq!(sa.cmp(sb), a.cmp(b), "{a} against {b}");
            }
        }
        for not_an_id in ["", "003000000000001AAAX", "003'00", "003 00"] {
            assert!(SavedId::new(not_an_id).is_none(), "{not_an_id:?}");
        }
    }

    /// A Bulk query row reads as a SOQL page's record: empty cells null, `Parent.Field`
    /// columns a nested parent, a parent with no value null.
    #[test]
    fn csv_rows_read_as_soql_records() {
        let header: Vec<String> = ["Id", "Account.Ext__c", "LastName", "Email"]
            .map(String::from)
            .to_vec();
        let row = csv_object(&header, &["003A", "co-1", "Gilmore", ""]);
        let parent = row.get("Account").and_then(|a| a.get("Ext__c"));
        assert_eq!(parent.and_then(Field::as_str), Some("co-1"));
        assert_eq!(row.get("LastName").and_then(Field::as_str), Some("Gilmore"));
        assert!(matches!(row.get("Email"), Some(Field::Null)));
        let orphan = csv_object(&header, &["003B", "", "Danes", "l@example.org"]);
        assert!(matches!(orphan.get("Account"), Some(Field::Null)));
    }

    /// The messages read the table and say what they said when they named objects in code.
    #[test]
    fn messages_name_the_rows_sobjects() {
        let contacts = mapping::binding(ObjectType::CONTACTS).unwrap();
        let mut orphan = Record::new(ObjectType::CONTACTS, "p-4");
        orphan.set(field::COMPANY, Value::Reference("co-missing-77".into()));
        let errors = [SaveError {
            status_code: "INVALID_FIELD".into(),
            fields: Vec::new(),
        }];
        let (code, reason) =
            rejection_reason(&orphan, contacts, &errors, "Ext__c", contacts.standard());
        assert_eq!(code, "INVALID_FIELD");
        assert_eq!(
            reason,
            "Salesforce refused the company reference: no Account has the contact's company as its Ext__c \
             (the company was not migrated, or was rejected)"
        );
        orphan.fields.remove(field::COMPANY);
        let (_, reason) =
            rejection_reason(&orphan, contacts, &errors, "Ext__c", contacts.standard());
        assert_eq!(reason, "Salesforce refused the record (no field named)");

        let ConnectorError::Setup { detail, .. } = setup_missing_field("Account", "Ext__c") else {
            panic!("not a setup error");
        };
        assert!(
            detail.contains("Do the same on Contact and Opportunity. "),
            "{detail}"
        );
        assert!(
            detail.ends_with("text field on Account, Contact and Opportunity."),
            "{detail}"
        );
        let ConnectorError::Setup { detail, .. } = setup_missing_field("Contact", "Ext__c") else {
            panic!("not a setup error");
        };
        assert!(
            detail.contains("Do the same on Account and Opportunity. "),
            "{detail}"
        );
    }
}
