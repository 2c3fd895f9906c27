//! Bulk API 2.0, as Salesforce documents it: ingest jobs (`/jobs/ingest`: create, one CSV
//! upload, close or abort, poll, successful / failed / unprocessed results, delete, list) and
//! query jobs (`/jobs/query`: create, poll, CSV results by `Sforce-Locator`, delete, list).
//!
//! Records are written through the same validation and store as sObject Collections
//! ([`Store::write_each`]), so a row REST would refuse fails here with the same code and
//! message, as `sf__Error` text (`CODE:message:fields --`). Every call is an API call: the
//! routes sit behind the same guard as REST (daily allocation, `Sforce-Limit-Info`) and the
//! same fault layers (429s while polling).
//!
//! Processing is asynchronous but driven by polls, so tests are deterministic: a closed job is
//! `UploadComplete`; the next read of its info moves it to `InProgress`, and the read after
//! that processes the data and reports `JobComplete` (or `Failed`). Query jobs go the same way
//! from `UploadComplete`, and their rows are the ones the query matches when it completes.

// A route's error answer is the `Response` it stops at, as in the other emulators' APIs.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::body::{FieldValue, Record};
use super::schema::{self, ObjectKind};
use super::store::{Column, ItemError, Mode, RequestError, RowResult, Store};
use super::{Shared, internal, metadata, not_found, sf_error, soql};
use crate::faults::{BULK_SALT, Counter, PARTIAL_SALT};

/// Most CSV bytes one upload may carry: Salesforce takes 150 MB once base64-encoded and tells
/// clients to upload no more than 100 MB of data.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// Records Salesforce processes together: it splits an ingest job's data into batches of
/// 10,000 records; duplicate external ids are judged within one.
const BATCH_RECORDS: usize = 10_000;
/// The longest SOQL statement Salesforce takes ("Maximum length of SOQL statements: by
/// default, 100,000 characters").
pub const MAX_SOQL_CHARS: usize = 100_000;
/// Rows in one page of query results when the client names no `maxRecords`.
pub const DEFAULT_QUERY_PAGE: usize = 50_000;
/// The `retries` a job reports when the `bulkfail` / `bulkcut` faults fail it: Salesforce
/// retries a batch up to 20 times before it fails the job.
const FAULT_RETRIES: u32 = 20;

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    /// The state as the query results' 412 names it (`IN_PROGRESS`).
    fn status(self) -> &'static str {
        match self {
            JobState::Open => "OPEN",
            JobState::UploadComplete => "UPLOAD_COMPLETE",
            JobState::InProgress => "IN_PROGRESS",
            JobState::JobComplete => "JOB_COMPLETE",
            JobState::Failed => "FAILED",
            JobState::Aborted => "ABORTED",
        }
    }

    fn finished(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// The column delimiters a job may name.
const DELIMITERS: &[(&str, u8)] = &[
    ("COMMA", b','),
    ("TAB", b'\t'),
    ("PIPE", b'|'),
    ("SEMICOLON", b';'),
    ("CARET", b'^'),
    ("BACKQUOTE", b'`'),
];

/// A job's CSV format: its column delimiter and line ending.
#[derive(Clone, Copy, Debug)]
struct Format {
    delimiter: (&'static str, u8),
    crlf: bool,
}

impl Format {
    /// The format a create request names (COMMA and LF by default).
    fn parse(body: &Json) -> Result<Format, RequestError> {
        let delimiter = match body.get("columnDelimiter").and_then(Json::as_str) {
            None => DELIMITERS[0],
            Some(name) => *DELIMITERS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| job_error(format!("Invalid columnDelimiter: {name}")))?,
        };
        let crlf = match body.get("lineEnding").and_then(Json::as_str) {
            None | Some("LF") => false,
            Some("CRLF") => true,
            Some(other) => return Err(job_error(format!("Invalid lineEnding: {other}"))),
        };
        Ok(Format { delimiter, crlf })
    }

    fn line_ending(self) -> &'static str {
        if self.crlf { "CRLF" } else { "LF" }
    }

    fn reader(self, data: &[u8]) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter.1)
            .terminator(if self.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .has_headers(false)
            .flexible(true)
            .from_reader(data)
    }

    /// Writes `rows` as CSV in this format, every field quoted, as Salesforce's results are.
    fn write<'r>(self, rows: impl Iterator<Item = Vec<Cow<'r, str>>>) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter.1)
            .terminator(if self.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        for row in rows {
            // Writing to memory cannot fail.
            let _ = writer.write_record(row.iter().map(|c| c.as_bytes()));
        }
        writer.into_inner().unwrap_or_default()
    }
}

/// What an ingest job does to each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
        }
    }
}

/// An ingest job's results, one entry per row of its data (the cells as uploaded).
#[derive(Default)]
struct Results {
    header: Vec<String>,
    successful: Vec<(String, bool, Vec<String>)>,
    failed: Vec<(String, String, Vec<String>)>,
    unprocessed: Vec<Vec<String>>,
}

struct IngestJob {
    id: String,
    object: ObjectKind,
    operation: Operation,
    external_id_field: Option<String>,
    format: Format,
    version: String,
    created: i64,
    modstamp: i64,
    state: JobState,
    error_message: Option<String>,
    retries: u32,
    data: Option<Bytes>,
    results: Results,
}

struct QueryJob {
    id: String,
    object: ObjectKind,
    all: bool,
    query: soql::Query,
    format: Format,
    version: String,
    created: i64,
    modstamp: i64,
    state: JobState,
    error_message: Option<String>,
    /// The SELECT columns and the matching rows, once the job completed.
    columns: Vec<(String, Column)>,
    rows: Arc<Vec<u32>>,
}

/// The org's Bulk API 2.0 jobs.
#[derive(Default)]
pub(super) struct Jobs {
    ingest: HashMap<String, IngestJob>,
    query: HashMap<String, QueryJob>,
    /// Job ids in creation order, for the listings.
    order: Vec<String>,
    next_id: u64,
    /// Ingest jobs closed so far (the `bulkfail` / `bulkcut` decisions).
    closed: Counter,
    /// Rows processed so far (the `partial` decisions).
    rows: Counter,
}

impl Jobs {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // 18 characters with the `750` key prefix of Salesforce's job ids.
        format!("7508d{:010}AAA", self.next_id)
    }
}

fn invalid_job(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "INVALIDJOB", message)
}

fn job_error(message: String) -> RequestError {
    RequestError::bad_request("INVALIDJOB", message)
}

/// What a route answers: its response, or the error answer it stopped at.
type Answer = Result<Response, Response>;

/// The jobs, locked, or the 500 answer (a poisoned lock).
fn lock_jobs(s: &Shared) -> Result<std::sync::MutexGuard<'_, Jobs>, Response> {
    s.bulk.lock().map_err(|_| internal())
}

/// The job `id` of one of the jobs' tables (ingest or query), or the 404 answer.
fn job_for<'j, J>(table: &'j mut HashMap<String, J>, id: &str) -> Result<&'j mut J, Response> {
    table.get_mut(id).ok_or_else(not_found)
}

fn invalid_state(message: &str) -> Response {
    sf_error(StatusCode::CONFLICT, "INVALIDJOBSTATE", message)
}

fn api_version(version: &str) -> f64 {
    version
        .trim_start_matches('v')
        .parse::<f64>()
        .unwrap_or_default()
}

fn parse_json(body: &Bytes) -> Result<Json, RequestError> {
    serde_json::from_slice::<Json>(body)
        .ok()
        .filter(Json::is_object)
        .ok_or_else(|| {
            RequestError::bad_request(
                "JSON_PARSER_ERROR",
                "The request body is not a JSON object.",
            )
        })
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}

impl IngestJob {
    fn info(&self) -> Json {
        let processed = self.results.successful.len() + self.results.failed.len();
        let mut info = json!({
            "id": self.id,
            "operation": self.operation.name(),
            "object": self.object.name(),
            "createdById": metadata::USER_ID,
            "createdDate": schema::format_datetime(self.created),
            "systemModstamp": schema::format_datetime(self.modstamp),
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": api_version(&self.version),
            "jobType": "V2Ingest",
            "lineEnding": self.format.line_ending(),
            "columnDelimiter": self.format.delimiter.0,
            "numberRecordsProcessed": processed,
            "numberRecordsFailed": self.results.failed.len(),
            "retries": self.retries,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        });
        if self.state == JobState::Open {
            info["contentUrl"] = json!(format!(
                "services/data/{}/jobs/ingest/{}/batches",
                self.version, self.id
            ));
        }
        if let Some(field) = &self.external_id_field {
            info["externalIdFieldName"] = json!(field);
        }
        if let Some(message) = &self.error_message {
            info["errorMessage"] = json!(message);
        }
        info
    }
}

impl QueryJob {
    fn info(&self) -> Json {
        let mut info = json!({
            "id": self.id,
            "operation": if self.all { "queryAll" } else { "query" },
            "object": self.object.name(),
            "createdById": metadata::USER_ID,
            "createdDate": schema::format_datetime(self.created),
            "systemModstamp": schema::format_datetime(self.modstamp),
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": api_version(&self.version),
            "jobType": "V2Query",
            "lineEnding": self.format.line_ending(),
            "columnDelimiter": self.format.delimiter.0,
            "numberRecordsProcessed": self.rows.len(),
            "retries": 0,
            "totalProcessingTime": 0,
        });
        if let Some(message) = &self.error_message {
            info["errorMessage"] = json!(message);
        }
        info
    }
}

// ---- ingest ------------------------------------------------------------------------------

/// `POST /jobs/ingest`: a new job, `Open`.
pub(super) async fn create_ingest(
    State(s): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return super::request_error(e),
    };
    let text = |k: &str| body.get(k).and_then(Json::as_str);
    let Some(object) = text("object").and_then(ObjectKind::parse) else {
        return invalid_job(&format!(
            "Unable to find object: {}",
            text("object").unwrap_or_default()
        ));
    };
    let operation = match text("operation") {
        Some("insert") => Operation::Insert,
        Some("update") => Operation::Update,
        Some("upsert") => Operation::Upsert,
        Some("delete") => Operation::Delete,
        Some("hardDelete") => {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "FEATURENOTENABLED",
                "hardDelete requires the Bulk API Hard Delete permission, which the integration user lacks",
            );
        }
        other => {
            return invalid_job(&format!("Invalid operation: {}", other.unwrap_or_default()));
        }
    };
    if text("contentType").is_some_and(|t| t != "CSV") {
        return invalid_job("contentType must be CSV");
    }
    let format = match Format::parse(&body) {
        Ok(f) => f,
        Err(e) => return super::request_error(e),
    };
    let external_id_field = match (operation, text("externalIdFieldName")) {
        (Operation::Upsert, None) => {
            return invalid_job(&format!(
                "External ID was blank for {}. An External ID must be specified for upsert.",
                object.name()
            ));
        }
        (Operation::Upsert, Some(field)) => {
            let Ok(store) = s.store.read() else {
                return internal();
            };
            let schema = &store.table(object).schema;
            match schema.field(field) {
                Some(i) if schema.fields[i].external_id => Some(schema.fields[i].name.to_owned()),
                _ => {
                    return invalid_job(&format!(
                        "The field {field} is not an External ID or indexed field for {}",
                        object.name()
                    ));
                }
            }
        }
        _ => None,
    };
    let now = s.now_ms();
    let Ok(mut jobs) = s.bulk.lock() else {
        return internal();
    };
    let id = jobs.new_id();
    let job = IngestJob {
        id: id.clone(),
        object,
        operation,
        external_id_field,
        format,
        version,
        created: now,
        modstamp: now,
        state: JobState::Open,
        error_message: None,
        retries: 0,
        data: None,
        results: Results::default(),
    };
    let info = job.info();
    jobs.order.push(id.clone());
    jobs.ingest.insert(id, job);
    axum::Json(info).into_response()
}

/// `PUT /jobs/ingest/{id}/batches`: the job's CSV data, once, while it is `Open`.
pub(super) async fn upload(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let too_large = || {
        sf_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "EXCEEDED_MAX_SIZE_REQUEST",
            &format!("Job data exceeds the maximum size of {MAX_UPLOAD_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let Ok(body) = body else {
        return Err(too_large());
    };
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(too_large());
    }
    if !content_type_is(&headers, "text/csv") {
        return Err(sf_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALIDCONTENTTYPE",
            "Job data must be uploaded as text/csv",
        ));
    }
    let now = s.now_ms();
    let mut jobs = lock_jobs(&s)?;
    let job = job_for(&mut jobs.ingest, &id)?;
    if job.state != JobState::Open {
        return Err(invalid_state(&format!(
            "Job data can be uploaded only while the job is Open; job {id} is {}",
            job.state.name()
        )));
    }
    if job.data.is_some() {
        return Err(invalid_state(&format!(
            "Found multiple contents for job: <{id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
        )));
    }
    job.data = Some(body);
    job.modstamp = now;
    Ok(StatusCode::CREATED.into_response())
}

/// `PATCH /jobs/{ingest|query}/{id}` with `{"state": "UploadComplete" | "Aborted"}`.
pub(super) async fn patch_ingest(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return Err(super::request_error(e)),
    };
    let wanted = body
        .get("state")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let now = s.now_ms();
    let mut guard = lock_jobs(&s)?;
    let jobs = &mut *guard;
    let job = job_for(&mut jobs.ingest, &id)?;
    match (wanted.as_str(), job.state) {
        ("UploadComplete", JobState::Open) => {
            job.state = JobState::UploadComplete;
        }
        ("Aborted", state) if !state.finished() => {
            job.state = JobState::Aborted;
            abort_results(job);
        }
        ("UploadComplete" | "Aborted", state) => {
            return Err(invalid_state(&format!(
                "Job {id} is {}; it cannot move to {wanted}",
                state.name()
            )));
        }
        _ => return Err(invalid_job(&format!("Invalid state: {wanted}"))),
    }
    job.modstamp = now;
    Ok(axum::Json(job.info()).into_response())
}

/// An aborted job's data, every row unprocessed.
fn abort_results(job: &mut IngestJob) {
    let Some(data) = job.data.take() else {
        return;
    };
    if let Ok((header, rows)) = read_rows(job.format, &data) {
        job.results.header = header;
        job.results.unprocessed = rows;
    }
}

/// `GET /jobs/ingest/{id}`: the job's info; a read moves a closed job one step on.
pub(super) async fn ingest_info(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
) -> Answer {
    let now = s.now_ms();
    let mut guard = lock_jobs(&s)?;
    let jobs = &mut *guard;
    let job = job_for(&mut jobs.ingest, &id)?;
    match job.state {
        JobState::UploadComplete => {
            job.state = JobState::InProgress;
            job.modstamp = now;
        }
        JobState::InProgress => {
            let faults = &s.options.faults;
            let n = jobs.closed.next();
            let fail = faults
                .bulk_fail
                .is_some_and(|p| faults.hits(BULK_SALT, n, p));
            let cut = faults
                .bulk_cut
                .is_some_and(|p| faults.hits(BULK_SALT + 1, n, p));
            let Ok(mut store) = s.store.write() else {
                return Err(internal());
            };
            let stop = if fail {
                Some(0)
            } else if cut {
                Some(usize::MAX)
            } else {
                None
            };
            process(job, &mut store, &s, &jobs.rows, stop, now);
            job.modstamp = now;
        }
        _ => {}
    }
    Ok(axum::Json(job.info()).into_response())
}

/// The header and the rows of a job's data, each cell as uploaded.
fn read_rows(format: Format, data: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut reader = format.reader(data);
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        None => return Ok((Vec::new(), Vec::new())),
        Some(Ok(r)) => r.iter().map(str::to_owned).collect(),
        Some(Err(e)) => return Err(format!("ClientInputError : {e}")),
    };
    let mut rows = Vec::new();
    for (i, record) in records.enumerate() {
        let record = record.map_err(|e| format!("ClientInputError : {e}"))?;
        if record.len() != header.len() {
            return Err(format!(
                "ClientInputError : Wrong number of fields in row {}: expected {}, found {}",
                i + 2,
                header.len(),
                record.len()
            ));
        }
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok((header, rows))
}

/// Whether the data's first line ends the way the job says its lines end: Salesforce fails
/// a job whose data does not.
fn line_ending_matches(format: Format, data: &[u8]) -> bool {
    match data.iter().position(|b| *b == b'\n') {
        None => true,
        Some(at) => (at > 0 && data[at - 1] == b'\r') == format.crlf,
    }
}

/// How a header column writes a field: the field itself, or a parent by one of its external
/// id fields (`Account.Ferry_Source_Id__c`).
enum Target {
    Field(String),
    Parent { relationship: String, field: String },
}

/// The header's columns, or the job's `errorMessage` for a column the object lacks.
fn targets(
    store: &Store,
    object: ObjectKind,
    operation: Operation,
    header: &[String],
) -> Result<Vec<Target>, String> {
    let schema = &store.table(object).schema;
    let not_found = |name: &str| format!("InvalidBatch : Field name not found : {name}");
    if operation == Operation::Delete {
        return match header {
            [id] if id.eq_ignore_ascii_case("Id") => Ok(vec![Target::Field("Id".into())]),
            _ => Err("InvalidBatch : The CSV of a delete job must hold only the Id column".into()),
        };
    }
    header
        .iter()
        .map(|name| match name.split_once('.') {
            None if schema.field(name).is_some() => Ok(Target::Field(name.clone())),
            Some((rel, field)) if schema.relationship(rel).is_some() => Ok(Target::Parent {
                relationship: rel.to_owned(),
                field: field.to_owned(),
            }),
            _ => Err(not_found(name)),
        })
        .collect()
}

/// The record a row writes: an empty cell leaves the field as it is, `#N/A` clears it.
fn row_record<'r>(targets: &'r [Target], row: &'r [String]) -> Record<'r> {
    let fields = targets
        .iter()
        .zip(row)
        .filter(|(_, cell)| !cell.is_empty())
        .map(|(target, cell)| {
            let value = if cell == "#N/A" {
                FieldValue::Null
            } else {
                FieldValue::Str(Cow::Borrowed(cell.as_str()))
            };
            match target {
                Target::Field(name) => (Cow::Borrowed(name.as_str()), value),
                Target::Parent {
                    relationship,
                    field,
                } => {
                    let parent = match value {
                        FieldValue::Null => FieldValue::Null,
                        _ => FieldValue::Other(json!({ field.as_str(): cell })),
                    };
                    (Cow::Borrowed(relationship.as_str()), parent)
                }
            }
        })
        .collect();
    Record::from_fields(fields)
}

/// `sf__Error` for a row's errors: `CODE:message:field,field --` each (`CODE:message:--`
/// without fields).
fn error_text(errors: &[ItemError]) -> String {
    errors
        .iter()
        .map(|e| match e.fields.as_slice() {
            [] => format!("{}:{}:--", e.status_code, e.message),
            fields => format!("{}:{}:{} --", e.status_code, e.message, fields.join(",")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Processes a job's data into its results: [`BATCH_RECORDS`] rows at a time through the
/// store. `stop`: the job fails once that many rows are processed (`usize::MAX`: half of
/// them), the rest unprocessed.
fn process(
    job: &mut IngestJob,
    store: &mut Store,
    s: &Shared,
    row_counter: &Counter,
    stop: Option<usize>,
    now: i64,
) {
    let data = job.data.take().unwrap_or_default();
    if !line_ending_matches(job.format, &data) {
        job.state = JobState::Failed;
        job.error_message = Some(format!(
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {}",
            job.format.line_ending()
        ));
        return;
    }
    let (header, rows) = match read_rows(job.format, &data) {
        Ok(parsed) => parsed,
        Err(message) => {
            job.state = JobState::Failed;
            job.error_message = Some(message);
            return;
        }
    };
    job.results.header = header;
    let targets = match targets(store, job.object, job.operation, &job.results.header) {
        Ok(t) => t,
        Err(message) => {
            job.state = JobState::Failed;
            job.error_message = Some(message);
            job.results.unprocessed = rows;
            return;
        }
    };
    let stop_at = match stop {
        Some(usize::MAX) => rows.len().div_ceil(2),
        Some(n) => n.min(rows.len()),
        None => rows.len(),
    };
    let mode = match job.operation {
        Operation::Insert => Mode::Create,
        Operation::Update => Mode::Update,
        Operation::Upsert | Operation::Delete => {
            let schema = &store.table(job.object).schema;
            let ext = job
                .external_id_field
                .as_deref()
                .and_then(|f| schema.field(f));
            match ext {
                Some(ext_field) => Mode::Upsert { ext_field },
                None => Mode::Update,
            }
        }
    };
    let faults = &s.options.faults;
    let mut rows = rows.into_iter();
    let mut done = 0;
    while done < stop_at {
        let chunk: Vec<Vec<String>> = rows
            .by_ref()
            .take(BATCH_RECORDS.min(stop_at - done))
            .collect();
        done += chunk.len();
        // Rows another transaction holds (the `partial` fault) fail without being written.
        let locked: Vec<bool> = chunk
            .iter()
            .map(|_| {
                faults
                    .partial
                    .is_some_and(|p| faults.hits(PARTIAL_SALT, row_counter.next(), p))
            })
            .collect();
        let outcomes: Vec<RowResult> = if job.operation == Operation::Delete {
            let ids: Vec<&str> = chunk
                .iter()
                .zip(&locked)
                .filter(|(_, l)| !**l)
                .map(|(row, _)| row.first().map_or("", String::as_str))
                .collect();
            store
                .delete(&ids, false, now)
                .into_iter()
                .map(|r| r.into_outcome().map(|id| (id, false)))
                .collect()
        } else {
            let records: Vec<Record<'_>> = chunk
                .iter()
                .zip(&locked)
                .filter(|(_, l)| !**l)
                .map(|(row, _)| row_record(&targets, row))
                .collect();
            let items: Vec<_> = records.iter().map(|r| (job.object, r)).collect();
            store.write_each(&items, mode, now)
        };
        let mut outcomes = outcomes.into_iter();
        for (row, locked) in chunk.into_iter().zip(locked) {
            let outcome = if locked {
                Err((None, vec![ItemError::locked()]))
            } else {
                outcomes
                    .next()
                    .unwrap_or_else(|| Err((None, vec![ItemError::locked()])))
            };
            match outcome {
                Ok((id, created)) => job.results.successful.push((id, created, row)),
                Err((id, errors)) => {
                    job.results
                        .failed
                        .push((id.unwrap_or_default(), error_text(&errors), row));
                }
            }
        }
    }
    job.results.unprocessed = rows.collect();
    if stop.is_some() {
        job.state = JobState::Failed;
        job.retries = FAULT_RETRIES;
        job.error_message = Some(
            "InternalServerError : a batch could not be processed after 20 retries; the rest of the job data was not processed"
                .into(),
        );
    } else {
        job.state = JobState::JobComplete;
    }
    tracing::debug!(
        job = %job.id,
        successful = job.results.successful.len(),
        failed = job.results.failed.len(),
        unprocessed = job.results.unprocessed.len(),
        "bulk ingest job processed"
    );
}

/// Which result set of an ingest job.
#[derive(Clone, Copy)]
enum ResultSet {
    Successful,
    Failed,
    Unprocessed,
}

/// A row's cells, borrowed for writing.
fn cells(row: &[String]) -> Vec<Cow<'_, str>> {
    row.iter().map(|c| Cow::Borrowed(c.as_str())).collect()
}

fn csv_response(body: Vec<u8>) -> Response {
    let mut response = Bytes::from(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    response
}

/// `GET /jobs/ingest/{id}/successfulResults` (`failedResults`, `unprocessedrecords`).
fn ingest_results(s: &Shared, id: &str, set: ResultSet) -> Answer {
    let mut jobs = lock_jobs(s)?;
    let job = job_for(&mut jobs.ingest, id)?;
    if !job.state.finished() {
        return Err(invalid_state(&format!(
            "The results of job {id} are available once it is complete; it is {}",
            job.state.name()
        )));
    }
    let r = &job.results;
    let original = r.header.iter().map(|h| Cow::Borrowed(h.as_str()));
    let body = match set {
        ResultSet::Successful => {
            let header = [Cow::Borrowed("sf__Id"), Cow::Borrowed("sf__Created")]
                .into_iter()
                .chain(original)
                .collect();
            job.format
                .write(std::iter::once(header).chain(r.successful.iter().map(
                    |(id, created, row)| {
                        let mut out =
                            vec![Cow::Borrowed(id.as_str()), Cow::Owned(created.to_string())];
                        out.extend(cells(row));
                        out
                    },
                )))
        }
        ResultSet::Failed => {
            let header = [Cow::Borrowed("sf__Id"), Cow::Borrowed("sf__Error")]
                .into_iter()
                .chain(original)
                .collect();
            job.format
                .write(
                    std::iter::once(header).chain(r.failed.iter().map(|(id, error, row)| {
                        let mut out =
                            vec![Cow::Borrowed(id.as_str()), Cow::Borrowed(error.as_str())];
                        out.extend(cells(row));
                        out
                    })),
                )
        }
        ResultSet::Unprocessed => job.format.write(
            std::iter::once(original.collect()).chain(r.unprocessed.iter().map(|row| cells(row))),
        ),
    };
    Ok(csv_response(body))
}

/// `GET /jobs/ingest/{id}/{set}`.
pub(super) async fn ingest_result_set(
    State(s): State<Arc<Shared>>,
    Path((_version, id, set)): Path<(String, String, String)>,
) -> Answer {
    let set = match set.as_str() {
        "successfulResults" => ResultSet::Successful,
        "failedResults" => ResultSet::Failed,
        "unprocessedrecords" => ResultSet::Unprocessed,
        _ => return Err(not_found()),
    };
    ingest_results(&s, &id, set)
}

/// `DELETE /jobs/ingest/{id}` (and query jobs): 204, once the job is no longer `Open` or
/// `InProgress`.
pub(super) async fn delete_ingest(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
) -> Answer {
    let mut jobs = lock_jobs(&s)?;
    let job = job_for(&mut jobs.ingest, &id)?;
    if matches!(job.state, JobState::Open | JobState::InProgress) {
        return Err(invalid_state(&format!(
            "Job {id} is {}; it cannot be deleted",
            job.state.name()
        )));
    }
    jobs.ingest.remove(&id);
    jobs.order.retain(|j| *j != id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /jobs/ingest` (or `/jobs/query`): every job of the kind, oldest first, in one page.
fn list(records: Vec<Json>) -> Response {
    axum::Json(json!({"done": true, "records": records, "nextRecordsUrl": null})).into_response()
}

/// `GET /jobs/ingest`.
pub(super) async fn list_ingest(State(s): State<Arc<Shared>>) -> Response {
    let Ok(jobs) = s.bulk.lock() else {
        return internal();
    };
    list(
        jobs.order
            .iter()
            .filter_map(|id| jobs.ingest.get(id))
            .map(IngestJob::info)
            .collect(),
    )
}

// ---- query -------------------------------------------------------------------------------

/// `POST /jobs/query`: a new query job, `UploadComplete`.
pub(super) async fn create_query(
    State(s): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return super::request_error(e),
    };
    let all = match body.get("operation").and_then(Json::as_str) {
        Some("query") => false,
        Some("queryAll") => true,
        other => return invalid_job(&format!("Invalid operation: {}", other.unwrap_or_default())),
    };
    if body
        .get("contentType")
        .and_then(Json::as_str)
        .is_some_and(|t| t != "CSV")
    {
        return invalid_job("contentType must be CSV");
    }
    let format = match Format::parse(&body) {
        Ok(f) => f,
        Err(e) => return super::request_error(e),
    };
    let Some(text) = body.get("query").and_then(Json::as_str) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query has to be specified",
        );
    };
    if text.chars().count() > MAX_SOQL_CHARS {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &format!("Query exceeds the maximum length of {MAX_SOQL_CHARS} characters"),
        );
    }
    let query = match soql::parse(text) {
        Ok(q) => q,
        Err(message) => return sf_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &message),
    };
    if query.select == soql::Select::Count {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "Bulk API 2.0 does not support aggregate queries such as COUNT()",
        );
    }
    let object = {
        let Ok(store) = s.store.read() else {
            return internal();
        };
        if let Err(e) = store.select_columns(&query) {
            return super::request_error(e);
        }
        ObjectKind::parse(&query.from)
    };
    let Some(object) = object else {
        return not_found();
    };
    let now = s.now_ms();
    let Ok(mut jobs) = s.bulk.lock() else {
        return internal();
    };
    let id = jobs.new_id();
    let job = QueryJob {
        id: id.clone(),
        object,
        all,
        query,
        format,
        version,
        created: now,
        modstamp: now,
        state: JobState::UploadComplete,
        error_message: None,
        columns: Vec::new(),
        rows: Arc::default(),
    };
    let info = job.info();
    jobs.order.push(id.clone());
    jobs.query.insert(id, job);
    axum::Json(info).into_response()
}

/// `GET /jobs/query/{id}`: the job's info; a read moves it one step on, the query running as
/// it completes.
pub(super) async fn query_info(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
) -> Answer {
    let now = s.now_ms();
    let mut jobs = lock_jobs(&s)?;
    let job = job_for(&mut jobs.query, &id)?;
    match job.state {
        JobState::UploadComplete => {
            job.state = JobState::InProgress;
            job.modstamp = now;
        }
        JobState::InProgress => {
            let Ok(store) = s.store.read() else {
                return Err(internal());
            };
            match store
                .run(&job.query)
                .and_then(|planned| Ok((store.select_columns(&job.query)?, planned.rows)))
            {
                Ok((columns, rows)) => {
                    job.columns = columns;
                    job.rows = rows;
                    job.state = JobState::JobComplete;
                }
                Err(e) => {
                    job.state = JobState::Failed;
                    job.error_message = Some(format!("{}: {}", e.error_code, e.message));
                }
            }
            job.modstamp = now;
        }
        _ => {}
    }
    Ok(axum::Json(job.info()).into_response())
}

/// `PATCH /jobs/query/{id}` with `{"state": "Aborted"}`.
pub(super) async fn patch_query(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return Err(super::request_error(e)),
    };
    let wanted = body
        .get("state")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut jobs = lock_jobs(&s)?;
    let job = job_for(&mut jobs.query, &id)?;
    if wanted != "Aborted" {
        return Err(invalid_job(&format!("Invalid state: {wanted}")));
    }
    if job.state.finished() {
        return Err(invalid_state(&format!(
            "Job {id} is {}; it cannot be aborted",
            job.state.name()
        )));
    }
    job.state = JobState::Aborted;
    job.modstamp = s.now_ms();
    Ok(axum::Json(job.info()).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct ResultsParams {
    locator: Option<String>,
    #[serde(rename = "maxRecords")]
    max_records: Option<String>,
}

/// The opaque locator of row `offset`: its decimal digits in unpadded base64, as
/// Salesforce's look (`MTAwMDA` is the row after 10,000).
fn locator(offset: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = offset.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// The row a locator stands for, if it is one of [`locator`]'s.
fn offset_of(text: &str) -> Option<usize> {
    decode_locator(text).filter(|n| locator(*n) == text)
}

fn decode_locator(text: &str) -> Option<usize> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut digits = Vec::new();
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            digits.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// `GET /jobs/query/{id}/results?locator=&maxRecords=`: a page of CSV rows (with the header
/// row), `Sforce-NumberOfRecords` and `Sforce-Locator` (`null` after the last page).
pub(super) async fn query_results(
    State(s): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(params): Query<ResultsParams>,
) -> Answer {
    let page = {
        let mut jobs = lock_jobs(&s)?;
        let job = job_for(&mut jobs.query, &id)?;
        if job.state != JobState::JobComplete {
            return Err(sf_error(
                StatusCode::PRECONDITION_FAILED,
                "JOB_NOT_COMPLETE",
                &format!(
                    "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: {}",
                    job.state.status()
                ),
            ));
        }
        if job.version != version {
            return Err(sf_error(
                StatusCode::CONFLICT,
                "INVALIDVERSION",
                &format!(
                    "The results of job {id} are read with the API version that created it ({})",
                    job.version
                ),
            ));
        }
        (
            job.object,
            job.format,
            job.columns.clone(),
            Arc::clone(&job.rows),
        )
    };
    let (object, format, columns, rows) = page;
    let offset = match params.locator.as_deref() {
        None | Some("") => 0,
        Some(text) => match offset_of(text).filter(|n| *n <= rows.len()) {
            Some(n) => n,
            None => {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDLOCATOR",
                    "The locator is not one this job handed out",
                ));
            }
        },
    };
    let max = match params.max_records.as_deref() {
        None | Some("") => DEFAULT_QUERY_PAGE,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDPARAMETER",
                    "maxRecords must be a positive whole number",
                ));
            }
        },
    };
    let end = offset.saturating_add(max).min(rows.len());
    let Ok(store) = s.store.read() else {
        return Err(internal());
    };
    let header = columns
        .iter()
        .map(|(h, _)| Cow::Borrowed(h.as_str()))
        .collect();
    let body = format.write(
        std::iter::once(header).chain(rows[offset..end].iter().map(|row| {
            columns
                .iter()
                .map(|(_, col)| Cow::Owned(store.cell_text(object, *row, col)))
                .collect()
        })),
    );
    drop(store);
    let mut response = csv_response(body);
    let next = if end < rows.len() {
        locator(end)
    } else {
        "null".to_owned()
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", v);
    }
    headers.insert("sforce-numberofrecords", HeaderValue::from(end - offset));
    Ok(response)
}

/// `DELETE /jobs/query/{id}`: 204, once the job is finished.
pub(super) async fn delete_query(
    State(s): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
) -> Answer {
    let mut jobs = lock_jobs(&s)?;
    let job = job_for(&mut jobs.query, &id)?;
    if matches!(job.state, JobState::InProgress) {
        return Err(invalid_state(&format!(
            "Job {id} is {}; it cannot be deleted",
            job.state.name()
        )));
    }
    jobs.query.remove(&id);
    jobs.order.retain(|j| *j != id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /jobs/query`.
pub(super) async fn list_query(State(s): State<Arc<Shared>>) -> Response {
    let Ok(jobs) = s.bulk.lock() else {
        return internal();
    };
    list(
        jobs.order
            .iter()
            .filter_map(|id| jobs.query.get(id))
            .map(QueryJob::info)
            .collect(),
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn locators_are_base64_of_the_offset_and_round_trip() {
        assert_eq!(locator(10000), "MTAwMDA");
        for n in [0, 1, 9, 10, 99, 123, 2000, 50_000, 1_234_567] {
            assert_eq!(offset_of(&locator(n)), Some(n), "{n}");
        }
        assert_eq!(offset_of("not a locator!"), None);
    }
}
