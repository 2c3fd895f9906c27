//! A Bulk API 2.0 client: ingest jobs (create, one CSV upload built in memory, close, poll,
//! the three result sets booked back to each input row) and query jobs (create, poll, result
//! pages by `Sforce-Locator`, parsed from memory). Every call goes through the connector's
//! authenticated [`Client`], so token renewal, 429 retries and pacing work as for REST, and
//! every call counts as one API request. CSV never touches disk. The sink writes and reads
//! back an object through it when the object is large (`bulk_threshold`).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::http::{BodyCap, HttpResponse, HttpStats};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::client::{Call, Client};
use crate::config::SalesforceConfig;

/// The largest CSV upload Salesforce accepts in one job (100 MB of data).
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// What a CSV cell of an upload holds to clear a field (an empty cell leaves it unchanged).
pub const CLEAR: &str = "#N/A";

/// How a job is polled until it finishes: waits doubling from `first` to `max`, for at most
/// `timeout` in all.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// The wait before the first poll.
    pub first: Duration,
    /// The longest wait between polls.
    pub max: Duration,
    /// How long a job may take before the client gives up on it.
    pub timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// What an ingest job does to each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Creates each row.
    Insert,
    /// Updates each row by its `Id` column.
    Update,
    /// Upserts each row by this external-id field.
    Upsert {
        /// The external-id field's API name.
        external_id_field: &'a str,
    },
    /// Deletes each row by its `Id` (the only column).
    Delete,
}

impl Operation<'_> {
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert { .. } => "upsert",
            Operation::Delete => "delete",
        }
    }
}

/// An ingest job's input: rows of cells under `columns`. A cell `None` clears its field
/// (written as `#N/A`); `Some("")` leaves it unchanged. `key_column` is the column whose
/// value tells rows apart (the external id, or `Id`), by which results are booked back to rows.
#[derive(Debug)]
pub struct Ingest<'a, R: Rows + ?Sized = [Vec<Option<String>>]> {
    /// The sObject.
    pub object: &'a str,
    /// What to do.
    pub operation: Operation<'a>,
    /// The header: field API names, or `Relationship.ExternalIdField` for a parent.
    pub columns: &'a [&'a str],
    /// The rows, each as long as `columns`.
    pub rows: &'a R,
    /// The index in `columns` of the value each row is known by.
    pub key_column: usize,
}

impl<R: Rows + ?Sized> Clone for Ingest<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: Rows + ?Sized> Copy for Ingest<'_, R> {}

/// An ingest job's rows, written into the upload's CSV one at a time (no copy of them all
/// is made first).
pub trait Rows: Sync {
    /// How many rows there are.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s value in the key column (`None` when it has none).
    fn key(&self, i: usize, key_column: usize) -> Option<&str>;

    /// Row `i`'s cells, one per column; `None` clears the field.
    fn cells(&self, i: usize) -> Vec<Option<std::borrow::Cow<'_, str>>>;
}

impl Rows for [Vec<Option<String>>] {
    fn len(&self) -> usize {
        <[Vec<Option<String>>]>::len(self)
    }

    fn key(&self, i: usize, key_column: usize) -> Option<&str> {
        self.get(i)?.get(key_column)?.as_deref()
    }

    fn cells(&self, i: usize) -> Vec<Option<std::borrow::Cow<'_, str>>> {
        self.get(i)
            .map(|row| {
                row.iter()
                    .map(|c| c.as_deref().map(std::borrow::Cow::Borrowed))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What became of one input row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOutcome {
    /// Saved: the record id and whether it was created.
    Saved {
        /// The record's id.
        id: String,
        /// Whether the row created the record.
        created: bool,
    },
    /// Refused: Salesforce's error code and the fields it names (never its message, which
    /// quotes values).
    Failed {
        /// The record's id, when the row named an existing record.
        id: Option<String>,
        /// The first error's code, e.g. `REQUIRED_FIELD_MISSING`.
        code: String,
        /// The fields the error names.
        fields: Vec<String>,
    },
    /// Not processed (the job failed or was aborted first, or no result names the row):
    /// nothing was written; send it again.
    Unprocessed,
}

/// One job an ingest ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRun {
    /// The job's id.
    pub id: String,
    /// The input rows it carried.
    pub rows: Range<usize>,
    /// Its `errorMessage` when it ended `Failed` (or a note when it ended otherwise unfinished).
    pub error: Option<String>,
}

/// A finished ingest: the jobs it took and every row's outcome.
#[derive(Clone, Debug)]
pub struct IngestOutcome {
    /// The jobs, in order: more than one when the rows' CSV is larger than one upload takes.
    pub jobs: Vec<JobRun>,
    /// One outcome per input row, in input order.
    pub rows: Vec<RowOutcome>,
}

impl IngestOutcome {
    /// The error messages of the jobs that did not complete.
    pub fn job_errors(&self) -> Vec<&str> {
        self.jobs
            .iter()
            .filter_map(|j| j.error.as_deref())
            .collect()
    }
}

/// A job's info, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct JobInfo {
    id: String,
    state: String,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
    /// Rows that failed, once the job is finished.
    #[serde(rename = "numberRecordsFailed", default)]
    number_records_failed: Option<u64>,
    /// Rows processed (a query job: rows its results hold), once the job is finished.
    #[serde(rename = "numberRecordsProcessed", default)]
    number_records_processed: Option<u64>,
}

/// Rows of a query job read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryRead {
    /// Rows read.
    pub rows: usize,
    /// Result pages fetched.
    pub pages: usize,
}

/// The Bulk API 2.0 of one org.
pub struct BulkClient {
    client: Arc<Client>,
    polling: Polling,
    /// The most CSV bytes one job carries.
    max_upload: usize,
}

impl BulkClient {
    /// A client for the org of `config` (no I/O). Errors name the key as `{key_prefix}.{setting}`.
    pub fn new(config: &SalesforceConfig, key_prefix: &str) -> ConnectorResult<BulkClient> {
        let (_, client) = Client::build(config, key_prefix)?;
        Ok(BulkClient::over(Arc::new(client)))
    }

    /// A client sending through `client` (the sink's: one token, one set of counters).
    pub(crate) fn over(client: Arc<Client>) -> BulkClient {
        BulkClient {
            client,
            polling: Polling::default(),
            max_upload: MAX_UPLOAD_BYTES,
        }
    }

    /// The same client putting at most `bytes` of CSV in one job (never more than
    /// [`MAX_UPLOAD_BYTES`]): more rows go to further jobs.
    pub fn with_max_upload(mut self, bytes: usize) -> BulkClient {
        self.max_upload = bytes.min(MAX_UPLOAD_BYTES);
        self
    }

    /// The same client polling as `polling` says.
    pub fn with_polling(mut self, polling: Polling) -> BulkClient {
        self.polling = polling;
        self
    }

    /// The HTTP counters (requests, retries, 429s) of every call made.
    pub fn stats(&self) -> Arc<HttpStats> {
        self.client.stats()
    }

    fn endpoint(method: &Method, path: &str) -> String {
        format!("{method} {path}")
    }

    async fn json_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> ConnectorResult<JobInfo> {
        let response = self
            .client
            .send(Call {
                method: method.clone(),
                path,
                query: &[],
                body,
                headers: &[],
                cap: BodyCap::Small,
            })
            .await?;
        response.json(VENDOR, &Self::endpoint(&method, path))
    }

    /// Runs ingest jobs to their end and books every row: saved, failed or unprocessed. The
    /// rows go in one job, or in several, one after the other, when their CSV is larger than
    /// one upload takes; each job's CSV is built just before it is uploaded.
    pub async fn ingest<R: Rows + ?Sized>(
        &self,
        job: &Ingest<'_, R>,
    ) -> ConnectorResult<IngestOutcome> {
        let mut outcome = IngestOutcome {
            jobs: Vec::new(),
            rows: Vec::with_capacity(job.rows.len()),
        };
        let mut from = 0;
        while from < job.rows.len() || outcome.jobs.is_empty() {
            let (range, csv) = csv_part(job, from, self.max_upload)?;
            from = range.end;
            let (id, error, rows) = self.ingest_one(job, range.clone(), csv).await?;
            outcome.jobs.push(JobRun {
                id,
                rows: range,
                error,
            });
            outcome.rows.extend(rows);
        }
        Ok(outcome)
    }

    /// One job of `job`'s rows `range`, whose CSV is `csv`: its id, its error, and each row's
    /// outcome.
    async fn ingest_one<R: Rows + ?Sized>(
        &self,
        job: &Ingest<'_, R>,
        range: Range<usize>,
        csv: Vec<u8>,
    ) -> ConnectorResult<(String, Option<String>, Vec<RowOutcome>)> {
        let mut create = serde_json::json!({
            "object": job.object,
            "operation": job.operation.name(),
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if let Operation::Upsert { external_id_field } = job.operation {
            create["externalIdFieldName"] = serde_json::json!(external_id_field);
        }
        let path = self.client.data_path("jobs/ingest");
        let info = self
            .json_call(Method::POST, &path, Some(create.to_string().into_bytes()))
            .await?;
        let id = checked_id(&info.id, &path)?;
        let job_path = format!("{path}/{id}");
        let batches = format!("{job_path}/batches");
        self.client
            .send(Call {
                method: Method::PUT,
                path: &batches,
                query: &[],
                body: Some(csv),
                headers: &[("Content-Type", "text/csv")],
                cap: BodyCap::Small,
            })
            .await?;
        let close = serde_json::json!({"state": "UploadComplete"})
            .to_string()
            .into_bytes();
        self.json_call(Method::PATCH, &job_path, Some(close))
            .await?;
        let info = self.poll(&job_path).await?;
        tracing::debug!(vendor = VENDOR, job = %id, state = %info.state, rows = range.len(), "bulk ingest job finished");
        let mut rows = vec![RowOutcome::Unprocessed; range.len()];
        let mut pending = positions(job, range);
        let mut book = |key: &str, outcome: RowOutcome| {
            if let Some(at) = pending.get_mut(key).and_then(VecDeque::pop_front) {
                rows[at] = outcome;
            }
        };
        let key_name = job.columns.get(job.key_column).copied().unwrap_or_default();
        let successful = self.results(&job_path, "successfulResults").await?;
        successful.each(
            "successfulResults",
            &job_path,
            key_name,
            |id, extra, key| {
                let created = extra.eq_ignore_ascii_case("true");
                book(
                    key,
                    RowOutcome::Saved {
                        id: id.to_owned(),
                        created,
                    },
                );
            },
        )?;
        drop(successful);
        // A complete job that says none failed has an empty failed set: not fetched.
        let none_failed = info.state == "JobComplete" && info.number_records_failed == Some(0);
        if !none_failed {
            let failed = self.results(&job_path, "failedResults").await?;
            failed.each("failedResults", &job_path, key_name, |id, error, key| {
                let (code, fields) = parse_error(error);
                let id = (!id.is_empty()).then(|| id.to_owned());
                book(key, RowOutcome::Failed { id, code, fields });
            })?;
        }
        // Rows in no result set stay unprocessed, whatever `unprocessedrecords` says.
        let error = match info.state.as_str() {
            "JobComplete" => None,
            "Failed" => Some(
                info.error_message
                    .unwrap_or_else(|| "the job failed without an errorMessage".into()),
            ),
            _ => Some("the job was aborted".into()),
        };
        Ok((id.to_owned(), error, rows))
    }

    /// Polls `job_path` until the job is `JobComplete`, `Failed` or `Aborted`.
    async fn poll(&self, job_path: &str) -> ConnectorResult<JobInfo> {
        let started = tokio::time::Instant::now();
        let mut wait = self.polling.first;
        loop {
            tokio::time::sleep(wait).await;
            let info = self.json_call(Method::GET, job_path, None).await?;
            match info.state.as_str() {
                "JobComplete" | "Failed" | "Aborted" => return Ok(info),
                "UploadComplete" | "InProgress" => {}
                other => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET {job_path}"),
                        detail: format!(
                            "the job is in state {:?} while it is polled",
                            clean(other)
                        ),
                    });
                }
            }
            if started.elapsed() >= self.polling.timeout {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {job_path}"),
                    detail: format!(
                        "the job did not finish within {} s",
                        self.polling.timeout.as_secs()
                    ),
                });
            }
            wait = (wait * 2).min(self.polling.max);
        }
    }

    /// One result set of an ingest job, as CSV.
    async fn results(&self, job_path: &str, set: &str) -> ConnectorResult<Results> {
        let path = format!("{job_path}/{set}");
        let response = self.csv_get(&path, &[]).await?;
        Ok(Results { response })
    }

    async fn csv_get(&self, path: &str, query: &[(&str, &str)]) -> ConnectorResult<HttpResponse> {
        self.client
            .send(Call {
                method: Method::GET,
                path,
                query,
                body: None,
                headers: &[("Accept", "text/csv")],
                cap: BodyCap::Page,
            })
            .await
    }

    /// Runs `soql` as a query job and hands every row to `each` with the header, page by
    /// page (`max_records` rows a page, or Salesforce's choice). Cells are text; empty is null.
    pub async fn query_each(
        &self,
        soql: &str,
        max_records: Option<usize>,
        each: impl FnMut(&[String], &[&str]),
    ) -> ConnectorResult<QueryRead> {
        let read = self
            .query_each_within(soql, max_records, None, each)
            .await?;
        // Without a bound the pages are always read.
        Ok(read.unwrap_or_default())
    }

    /// [`BulkClient::query_each`], unless the finished job holds more than `max_rows` rows:
    /// then `None`, and no page is read (its create and polls are spent).
    pub async fn query_each_within(
        &self,
        soql: &str,
        max_records: Option<usize>,
        max_rows: Option<u64>,
        mut each: impl FnMut(&[String], &[&str]),
    ) -> ConnectorResult<Option<QueryRead>> {
        let path = self.client.data_path("jobs/query");
        let create = serde_json::json!({
            "operation": "query",
            "query": soql,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        let info = self
            .json_call(Method::POST, &path, Some(create.to_string().into_bytes()))
            .await?;
        let id = checked_id(&info.id, &path)?;
        let job_path = format!("{path}/{id}");
        let info = self.poll(&job_path).await?;
        if info.state != "JobComplete" {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("GET {job_path}"),
                detail: format!("the query job ended {}", clean(&info.state)),
            });
        }
        if let (Some(max), Some(rows)) = (max_rows, info.number_records_processed)
            && rows > max
        {
            tracing::debug!(vendor = VENDOR, job = %id, rows, max, "bulk query job holds more rows than wanted: not read");
            return Ok(None);
        }
        let results = format!("{job_path}/results");
        let max = max_records.map(|n| n.to_string());
        let mut locator: Option<String> = None;
        let mut read = QueryRead::default();
        loop {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(max) = &max {
                query.push(("maxRecords", max));
            }
            if let Some(l) = &locator {
                query.push(("locator", l));
            }
            let response = self.csv_get(&results, &query).await?;
            read.pages += 1;
            let endpoint = format!("GET {results}");
            let mut reader = reader(&response.body);
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| malformed(&endpoint, &e))?
                .iter()
                .map(str::to_owned)
                .collect();
            let mut record = csv::StringRecord::new();
            while reader
                .read_record(&mut record)
                .map_err(|e| malformed(&endpoint, &e))?
            {
                let cells: Vec<&str> = record.iter().collect();
                each(&header, &cells);
                read.rows += 1;
            }
            match response.header("sforce-locator") {
                None | Some("null") | Some("") => break,
                Some(next) if is_locator(next) => locator = Some(next.to_owned()),
                Some(_) => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint,
                        detail: "the Sforce-Locator header is not a locator".into(),
                    });
                }
            }
        }
        tracing::debug!(vendor = VENDOR, job = %id, rows = read.rows, pages = read.pages, "bulk query job read");
        Ok(Some(read))
    }
}

/// A result set's answer, its body CSV.
struct Results {
    response: HttpResponse,
}

impl Results {
    /// Hands each row's `sf__Id`, second `sf__` column and key cell to `each`. The columns
    /// are found by name: the uploaded ones follow the two `sf__` ones.
    fn each(
        &self,
        set: &str,
        job_path: &str,
        key_name: &str,
        mut each: impl FnMut(&str, &str, &str),
    ) -> ConnectorResult<()> {
        let endpoint = format!("GET {job_path}/{set}");
        let body = &self.response.body;
        if body.is_empty() {
            return Ok(());
        }
        let mut reader = reader(body);
        let header = reader
            .headers()
            .map_err(|e| malformed(&endpoint, &e))?
            .clone();
        let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(id_at), Some(key_at)) = (find("sf__Id"), find(key_name)) else {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: "the results lack the sf__Id or the key column".into(),
            });
        };
        let extra_at = find("sf__Created").or_else(|| find("sf__Error"));
        // One row at a time, into one reused record.
        let mut record = csv::StringRecord::new();
        while reader
            .read_record(&mut record)
            .map_err(|e| malformed(&endpoint, &e))?
        {
            let cell = |at: usize| record.get(at).unwrap_or_default();
            each(cell(id_at), extra_at.map_or("", cell), cell(key_at));
        }
        Ok(())
    }
}

fn reader(body: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body)
}

fn malformed(endpoint: &str, e: &csv::Error) -> ConnectorError {
    // csv's messages name positions, never cell contents.
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: endpoint.to_owned(),
        detail: format!("the CSV answer cannot be read: {e}"),
    }
}

/// The rows whose CSV sizes a job's upload before the rest is written.
const SAMPLE_ROWS: usize = 64;

/// The next job's CSV, in memory: the header, then the rows from `from` (`None` as
/// [`CLEAR`]) for as long as the part stays within `max` bytes, written straight from the
/// rows; with the input rows it holds.
fn csv_part<R: Rows + ?Sized>(
    job: &Ingest<'_, R>,
    from: usize,
    max: usize,
) -> ConnectorResult<(Range<usize>, Vec<u8>)> {
    let bad = |detail: String| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: "PUT jobs/ingest/{id}/batches".into(),
        detail,
    };
    if job.key_column >= job.columns.len() {
        return Err(bad("the key column is not one of the columns".into()));
    }
    // A line at a time, each encoded on its own first, so that a part never grows past `max`.
    let encode = |cells: &mut dyn Iterator<Item = &str>, out: &mut Vec<u8>| {
        let mut line = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(512)
            .from_writer(out);
        line.write_record(cells)
            .and_then(|()| line.flush().map_err(csv::Error::from))
            .map_err(|e| bad(format!("the CSV cannot be written: {e}")))
    };
    let mut csv = Vec::new();
    encode(&mut job.columns.iter().copied(), &mut csv)?;
    let header_len = csv.len();
    let mut bytes = Vec::new();
    let mut end = from;
    while end < job.rows.len() {
        let cells = job.rows.cells(end);
        if cells.len() != job.columns.len() {
            return Err(bad(format!(
                "row {end} has {} cells for {} columns",
                cells.len(),
                job.columns.len()
            )));
        }
        bytes.clear();
        encode(
            &mut cells.iter().map(|c| c.as_deref().unwrap_or(CLEAR)),
            &mut bytes,
        )?;
        if header_len + bytes.len() > max {
            return Err(bad(format!(
                "row {end} takes {} bytes of CSV, more than the {max} one job takes",
                bytes.len()
            )));
        }
        if csv.len() + bytes.len() > max {
            break;
        }
        csv.extend_from_slice(&bytes);
        end += 1;
        if end - from == SAMPLE_ROWS {
            // Room for the rest at the sample's size and an eighth more, at once: grown by
            // doubling, a job's CSV of megabytes held up to twice its length.
            let per_row = (csv.len() - header_len).div_ceil(SAMPLE_ROWS);
            let rest = job.rows.len() - end;
            let want = (per_row + per_row / 8).saturating_mul(rest);
            csv.reserve(want.min(max.saturating_sub(csv.len())));
        }
    }
    Ok((from..end, csv))
}

/// Each key value's rows of `range` (by their index in it), in order (a key given twice is
/// booked to its rows in turn).
fn positions<'r, R: Rows + ?Sized>(
    job: &Ingest<'r, R>,
    range: Range<usize>,
) -> HashMap<&'r str, VecDeque<usize>> {
    let mut by_key: HashMap<&str, VecDeque<usize>> = HashMap::with_capacity(range.len());
    let rows: &'r R = job.rows;
    for (at, i) in range.enumerate() {
        let key = rows.key(i, job.key_column).unwrap_or(CLEAR);
        by_key.entry(key).or_default().push_back(at);
    }
    by_key
}

/// The first error's code and the fields named at the end of an `sf__Error`
/// (`CODE:message:Field1,Field2 --`, or `CODE:message:--`). The message is dropped: it
/// quotes values.
fn parse_error(error: &str) -> (String, Vec<String>) {
    let code: String = error
        .split(':')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(80)
        .collect();
    let fields = error
        .trim_end()
        .strip_suffix("--")
        .and_then(|rest| rest.trim_end().rsplit_once(':'))
        .map(|(_, fields)| {
            fields
                .split(',')
                .map(str::trim)
                .filter(|f| {
                    !f.is_empty()
                        && f.len() <= 80
                        && f.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let code = if code.is_empty() {
        "UNKNOWN".to_owned()
    } else {
        code
    };
    (code, fields)
}

/// A job id Salesforce handed out, checked before it goes into a path: 15 or 18 letters and
/// digits.
fn checked_id<'a>(id: &'a str, path: &str) -> ConnectorResult<&'a str> {
    if matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("POST {path}"),
            detail: "the job id is not a Salesforce id".into(),
        })
    }
}

/// Whether `text` can be a result locator (base64-like, short).
fn is_locator(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

/// A state name for a message: letters only, bounded.
fn clean(state: &str) -> String {
    state
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_give_their_code_and_fields_never_the_message() {
        assert_eq!(
            parse_error(
                "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
            ),
            ("REQUIRED_FIELD_MISSING".into(), vec!["LastName".into()])
        );
        assert_eq!(
            parse_error(
                "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records:--"
            ),
            ("UNABLE_TO_LOCK_ROW".into(), vec![])
        );
        assert_eq!(
            parse_error("INVALID_EMAIL_ADDRESS:Email: invalid email address: a:b@c:Email --"),
            ("INVALID_EMAIL_ADDRESS".into(), vec!["Email".into()])
        );
        assert_eq!(parse_error(""), ("UNKNOWN".into(), vec![]));
    }

    #[test]
    fn rows_become_csv_with_nulls_cleared_and_quotes_doubled() {
        let rows = vec![
            vec![Some("s1".into()), Some("Doose's, \"Market\"".into()), None],
            vec![
                Some("s2".into()),
                Some("two\nlines".into()),
                Some(String::new()),
            ],
        ];
        let job = Ingest {
            object: "Account",
            operation: Operation::Insert,
            columns: &["Ext__c", "Name", "Phone"],
            rows: rows.as_slice(),
            key_column: 0,
        };
        let (rows_in, csv) = csv_part(&job, 0, MAX_UPLOAD_BYTES).expect("csv");
        assert_eq!(rows_in, 0..2);
        let csv = String::from_utf8(csv).expect("utf-8");
        assert_eq!(
            csv,
            "Ext__c,Name,Phone\ns1,\"Doose's, \"\"Market\"\"\",#N/A\ns2,\"two\nlines\",\n"
        );
        // 18 bytes of header and 30 and 16 of rows: a part of 50 bytes holds one row.
        let (first, csv) = csv_part(&job, 0, 50).expect("csv");
        assert_eq!((first.clone(), csv.len()), (0..1, 18 + 30));
        let (second, csv) = csv_part(&job, first.end, 50).expect("csv");
        assert_eq!((second, csv.len()), (1..2, 18 + 16));
        assert!(csv.starts_with(b"Ext__c,Name,Phone\n"));
        assert!(
            csv_part(&job, 0, 40).is_err(),
            "a row larger than a job takes"
        );
        let bad = Ingest {
            key_column: 3,
            ..job
        };
        assert!(csv_part(&bad, 0, MAX_UPLOAD_BYTES).is_err());
    }
}
