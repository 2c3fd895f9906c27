//! The Dataverse sink: one `$batch` per upsert call, each record a `PATCH` by the source-id
//! alternate key with `Prefer: return=representation` (201 created, 200 updated), sent with
//! `Prefer: odata.continue-on-error` so each record succeeds or fails on its own; read-back
//! with `$filter=Microsoft.Dynamics.CRM.In(…)` on the source-id column.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::batch::{self as frame, Answer};
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, NewField, VendorField};
use ferry_core::http::{BodyCap, HttpStats};
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::{
    Capability, ConnectorError, ConnectorResult, IdPage, ObjectType, Record, RecordOutcome,
    RecordRejection, Removal, RemoveOutcome, Removed, Sink, Written,
};
use rand::Rng;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::VENDOR;
use crate::batch;
use crate::client::{Call, Client, endpoint};
use crate::config::DynamicsConfig;
use crate::mapping::{self, Currencies, DataverseObject, Identity};
use crate::policy::parse_error;
use crate::source::{COUNT_CAP, Collection, max_page_size};

/// How many times a `$batch` whose answer cannot be read (cut short) is sent again.
const CUT_BATCH_RETRIES: usize = 3;
/// Longest `$filter` a read-back puts in one URL; longer id lists are split.
const MAX_FILTER_CHARS: usize = 6_000;
/// Longest `$filter` of a read-back `GET` sent inside a `$batch`, where Dataverse allows URLs
/// of 32,768 characters (VENDOR-FACTS §5.4), less room for the path, `$select` and `$expand`
/// (checked per URL: a longer one goes out on its own).
const MAX_BATCH_FILTER_CHARS: usize = 24_000;
/// Longest URL of a `GET` inside a `$batch`.
const MAX_BATCH_URL_CHARS: usize = 32_768;

/// One request of a `$batch` with its record and the record's input position.
type Part<'r> = (usize, &'r Record, batch::Request);

/// A Dataverse environment as a [`Sink`].
pub struct DynamicsSink {
    client: Arc<Client>,
    column: String,
    batch_size: usize,
    read_back_size: usize,
    /// How batch parts that failed for a transient reason are sent again.
    resend: Resend,
    /// The standard columns and the operator's mapped ones, per object.
    fields: FieldMaps,
    /// The customization prefix of the columns `create_field` creates.
    publisher_prefix: String,
    /// The environment's currencies by ISO code, read once when deals are first written.
    currencies: tokio::sync::OnceCell<Currencies>,
}

#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    value: Vec<KeyMetadata>,
}

#[derive(Deserialize)]
struct KeyMetadata {
    #[serde(rename = "KeyAttributes", default)]
    key_attributes: Vec<String>,
    #[serde(rename = "EntityKeyIndexStatus", default)]
    status: Option<String>,
}

impl DynamicsSink {
    /// Builds the sink from its config (no I/O); errors name `key_prefix.<key>`.
    pub fn new(config: DynamicsConfig, key_prefix: &str) -> ConnectorResult<DynamicsSink> {
        let settings = config.settings(key_prefix)?;
        Ok(DynamicsSink {
            client: Arc::new(Client::new(&settings)?),
            column: settings.source_id_column.clone(),
            batch_size: settings.batch_size,
            read_back_size: settings.read_back_size,
            resend: Resend::from_retry(&settings.retry),
            fields: crate::fields::standard_maps(),
            publisher_prefix: settings.publisher_prefix.clone(),
            currencies: tokio::sync::OnceCell::new(),
        })
    }

    /// How many access tokens this sink has fetched.
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    /// Checks `table` has an active alternate key made of exactly the source-id column.
    async fn check_key(&self, logical: &str) -> ConnectorResult<()> {
        let mut url = self
            .client
            .api_url(&format!("EntityDefinitions(LogicalName='{logical}')/Keys"))?;
        url.query_pairs_mut()
            .append_pair("$select", "LogicalName,KeyAttributes,EntityKeyIndexStatus");
        let keys: KeyList = self.client.get_json(url, &[]).await?;
        let column = &self.column;
        let key = keys.value.iter().find(|k| {
            k.key_attributes.len() == 1 && k.key_attributes[0].eq_ignore_ascii_case(column)
        });
        match key.map(|k| k.status.as_deref().unwrap_or("Active")) {
            Some("Active") => Ok(()),
            Some(status) => Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "the alternate key on {logical}.{column} is {status}, not Active: Dataverse builds the key's index \
                     in the background. Wait until Power Apps → Tables → {logical} → Keys shows it Active (if it \
                     shows Failed, fix the duplicate or invalid values it names and reactivate it), then run again."
                ),
            }),
            None => Err(setup_missing_key(logical, column)),
        }
    }

    /// The environment's currencies (`GET transactioncurrencies`), read on first use.
    async fn currencies(&self) -> ConnectorResult<&Currencies> {
        self.currencies
            .get_or_try_init(|| async {
                let rows = crate::directory::all_rows(
                    &self.client,
                    crate::directory::PAGE,
                    "transactioncurrencies",
                    "transactioncurrencyid,isocurrencycode",
                    None,
                )
                .await?;
                let mut out = Currencies::new();
                for row in &rows {
                    let id = row.get("transactioncurrencyid").and_then(Json::as_str);
                    let code = row.get("isocurrencycode").and_then(Json::as_str);
                    if let (Some(id), Some(code)) = (id, code) {
                        out.insert(code.trim().to_ascii_uppercase(), id.to_owned());
                    }
                }
                tracing::debug!(vendor = VENDOR, currencies = out.len(), "read currencies");
                Ok(out)
            })
            .await
    }

    /// Writes one chunk of the frame ([`frame::upsert_in_batches`]) as one `$batch`: records
    /// whose key or values Dataverse cannot take are refused unsent; parts that failed for a
    /// transient reason (a 5xx, a 429) are sent again in a new batch, since upserts by key are
    /// idempotent and the others' outcomes stand.
    async fn write_chunk<'r>(
        &self,
        t: &DataverseObject,
        chunk: Vec<(usize, &'r Record)>,
    ) -> ConnectorResult<Vec<Answer>> {
        let map = self.fields.get(t.object);
        let no_currencies = Currencies::new();
        let currencies = match t.currency {
            Some(_) => self.currencies().await?,
            None => &no_currencies,
        };
        let mut answers: Vec<Answer> = Vec::with_capacity(chunk.len());
        let mut pending: Vec<Part<'r>> = Vec::with_capacity(chunk.len());
        for (i, record) in chunk {
            let Some(key) = mapping::key_segment(&self.column, &record.source_id) else {
                answers.push((
                    i,
                    Err(reject(
                        record,
                        "UNSUPPORTED_KEY_VALUE",
                        format!(
                            "the source id holds one of / < > * % & : \\ ? +, which Dataverse alternate keys ({}) \
                             cannot be addressed by",
                            self.column
                        ),
                    )),
                ));
                continue;
            };
            let body = match mapping::to_dataverse(t, record, &self.column, &map, currencies) {
                Ok(body) => body,
                Err(rejection) => {
                    answers.push((i, Err(rejection)));
                    continue;
                }
            };
            let url = self
                .client
                .api_url(&format!("{}{key}?$select={}", t.set, t.id))?;
            let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
            let request = batch::Request {
                method: "PATCH",
                target,
                body: Json::Object(body).to_string(),
            };
            pending.push((i, record, request));
        }
        let settled = settle(VENDOR, pending, self.resend, |pending| {
            self.send_parts(t, pending)
        })
        .await?;
        // Won and lost deals, upserted open, are closed now by the table's actions.
        let mut closing: Vec<Part<'r>> = Vec::new();
        let mut written: std::collections::HashMap<usize, Written> = Default::default();
        for ((i, record, _), result) in settled {
            match result {
                Ok(w) => match mapping::close_action(t, record, &self.address(&w, record)) {
                    Some((action, body)) => {
                        let url = self.client.api_url(action)?;
                        let request = batch::Request {
                            method: "POST",
                            target: url.path().to_owned(),
                            body: body.to_string(),
                        };
                        closing.push((i, record, request));
                        written.insert(i, w);
                    }
                    _ => answers.push((i, Ok(w))),
                },
                Err(rejection) => answers.push((i, Err(rejection))),
            }
        }
        if !closing.is_empty() {
            let closed = settle(VENDOR, closing, self.resend, |pending| {
                self.send_closes(pending)
            })
            .await?;
            for ((i, _, _), result) in closed {
                let outcome = match result {
                    Ok(()) => Ok(written.remove(&i).unwrap_or(Written {
                        sink_id: String::new(),
                        created: false,
                    })),
                    Err(rejection) => Err(rejection),
                };
                answers.push((i, outcome));
            }
        }
        Ok(answers)
    }

    /// How a close action names the record just written: its id, or (should an answer lack
    /// it, or hold something else) its alternate key.
    fn address(&self, written: &Written, record: &Record) -> String {
        if !mapping::is_guid_like(&written.sink_id) {
            format!("{}={}", self.column, mapping::literal(&record.source_id))
        } else {
            written.sink_id.clone()
        }
    }

    /// Sends one `$batch` of close actions (`WinOpportunity`, `LoseOpportunity`) and answers
    /// each: closed, refused (the deal stays open in Dataverse; a rerun closes it), or failed for
    /// a reason that passes.
    async fn send_closes<'r>(
        &self,
        pending: Vec<Part<'r>>,
    ) -> ConnectorResult<Vec<(Part<'r>, Attempt<Result<(), RecordRejection>>)>> {
        let (_, parts) = self.send_batch(&requests_of(&pending)).await?;
        let mut out = Vec::with_capacity(pending.len());
        for (sent, part) in pending.into_iter().zip(parts) {
            let attempt = if (200..300).contains(&part.status) {
                Attempt::Done(Ok(()))
            } else {
                let (code, _) = parse_error(part.body.as_bytes()).unwrap_or_default();
                let code = if code.is_empty() {
                    format!("HTTP_{}", part.status)
                } else {
                    code
                };
                let action = sent
                    .2
                    .target
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let refused = Err(reject(
                    sent.1,
                    &code,
                    format!(
                        "Dynamics wrote the deal but refused to close it ({action}, HTTP {}): it is open in Dynamics \
                         until a rerun closes it",
                        part.status
                    ),
                ));
                if part.status == 429 || part.status >= 500 {
                    Attempt::Again(refused)
                } else {
                    Attempt::Done(refused)
                }
            };
            out.push((sent, attempt));
        }
        Ok(out)
    }

    /// Sends one `$batch` of `pending` requests and answers each: written, refused, or failed
    /// for a reason that passes (a 429 or 5xx part, sent again by [`settle`]).
    async fn send_parts<'r>(
        &self,
        t: &DataverseObject,
        pending: Vec<Part<'r>>,
    ) -> ConnectorResult<Vec<(Part<'r>, Attempt<Result<Written, RecordRejection>>)>> {
        let map = self.fields.get(t.object);
        let (_, parts) = self.send_batch(&requests_of(&pending)).await?;
        let mut out = Vec::with_capacity(pending.len());
        for (sent, part) in pending.into_iter().zip(parts) {
            let record = sent.1;
            let attempt = if (200..300).contains(&part.status) {
                let sink_id = serde_json::from_str::<Json>(&part.body)
                    .ok()
                    .and_then(|b| b.get(t.id).and_then(Json::as_str).map(str::to_owned))
                    .unwrap_or_default();
                Attempt::Done(Ok(Written {
                    sink_id,
                    created: part.status == 201,
                }))
            } else {
                let (code, reason) = rejection_reason(
                    t,
                    record,
                    part.status,
                    part.body.as_bytes(),
                    &self.column,
                    &map,
                );
                let refused = Err(reject(record, &code, reason));
                if part.status == 429 || part.status >= 500 {
                    Attempt::Again(refused)
                } else {
                    Attempt::Done(refused)
                }
            };
            out.push((sent, attempt));
        }
        Ok(out)
    }

    /// Sends one `$batch` of `pending` requests with `odata.continue-on-error`; returns the
    /// endpoint's name and one response per request, in order.
    async fn send_batch(
        &self,
        requests: &[&batch::Request],
    ) -> ConnectorResult<(String, Vec<batch::Response>)> {
        let boundary = format!("batch_ferry_{:016x}", rand::rng().random::<u64>());
        let call = Call {
            method: Method::POST,
            url: self.client.api_url("$batch")?,
            headers: &[("Prefer", "odata.continue-on-error")],
            body: Some((
                format!("multipart/mixed; boundary={boundary}"),
                batch::build(&boundary, requests).into_bytes(),
            )),
            cap: BodyCap::Page,
        };
        let name = endpoint(&call.method, &call.url);
        let mut attempt = 0;
        loop {
            let response = self.client.send_ok(&call).await?;
            match Self::parts_of(&name, &response, requests.len()) {
                Ok(parts) => return Ok((name, parts)),
                // A batch answer cut short (by a proxy or an overloaded server) is sent again:
                // every request in it is an upsert by key, a close or a delete, so repeating
                // it is safe (a delete repeated answers 404: absent).
                Err(e) if attempt < CUT_BATCH_RETRIES => {
                    attempt += 1;
                    tracing::debug!(vendor = VENDOR, attempt, error = %e, "batch answer unreadable; sending the batch again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The responses of a `$batch` answer, one per request sent.
    fn parts_of(
        name: &str,
        response: &ferry_core::http::HttpResponse,
        expected: usize,
    ) -> ConnectorResult<Vec<batch::Response>> {
        let response_boundary = response
            .header("content-type")
            .and_then(batch::boundary_of)
            .ok_or_else(|| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: name.to_owned(),
                detail: "the batch response is not multipart/mixed".into(),
            })?;
        let text = String::from_utf8_lossy(&response.body);
        let parts = batch::parse(name, &text, &response_boundary)?;
        if parts.len() != expected {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: name.to_owned(),
                detail: format!("{} responses for {expected} requests", parts.len()),
            });
        }
        Ok(parts)
    }

    /// The read-back query of the records whose source ids are `ids`.
    fn read_back_url(&self, t: &DataverseObject, ids: &[&String]) -> ConnectorResult<url::Url> {
        let map = self.fields.get(t.object);
        let mut url = self.client.api_url(t.set)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$select", &mapping::select(t, &map, &[&self.column]));
            q.append_pair("$filter", &self.in_filter(ids));
            if let Some(expand) = mapping::expand(t, Identity::ReadBack(&self.column)) {
                q.append_pair("$expand", &expand);
            }
        }
        Ok(url)
    }

    /// A read-back row in canonical form, if it is one of ferry's records and readable.
    fn read_back_row(
        t: &DataverseObject,
        row: &serde_json::Map<String, Json>,
        column: &str,
        map: &ferry_core::fields::FieldMap,
        out: &mut Vec<Record>,
    ) {
        match mapping::from_dataverse(t, row, Identity::ReadBack(column), map) {
            Some(Ok(record)) => out.push(record),
            // A value that does not fit is left out of the record, so the digest comparison
            // names the field.
            Some(Err(rejection)) => {
                tracing::debug!(vendor = VENDOR, id = %rejection.source_id, "unreadable value on read-back");
            }
            None => {}
        }
    }

    /// Reads back the records whose source ids are `ids` (one filter, all pages).
    async fn read_chunk(
        &self,
        t: &DataverseObject,
        ids: &[&String],
    ) -> ConnectorResult<Vec<Record>> {
        let map = self.fields.get(t.object);
        let url = self.read_back_url(t, ids)?;
        let mut out = Vec::with_capacity(ids.len());
        self.each_row(t.set, url, |row| {
            Self::read_back_row(t, row, &self.column, &map, &mut out)
        })
        .await?;
        Ok(out)
    }

    /// Reads back the records of several filters in one `$batch` of `GET`s: one request
    /// against the five-minute budget however many URLs the ids need. A filter whose URL is
    /// too long for a batch, or whose answer has more pages, is read on its own.
    async fn read_chunks_batched(
        &self,
        t: &DataverseObject,
        chunks: &[Vec<&String>],
    ) -> ConnectorResult<Vec<Record>> {
        let map = self.fields.get(t.object);
        let mut out = Vec::new();
        let mut requests = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let url = self.read_back_url(t, chunk)?;
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            if target.len() > MAX_BATCH_URL_CHARS {
                out.extend(self.read_chunk(t, chunk).await?);
                continue;
            }
            requests.push(batch::Request {
                method: "GET",
                target,
                body: String::new(),
            });
        }
        if requests.is_empty() {
            return Ok(out);
        }
        let (name, parts) = self
            .send_batch(&requests.iter().collect::<Vec<_>>())
            .await?;
        for part in parts {
            if part.status != 200 {
                return Err(ConnectorError::Status {
                    vendor: VENDOR,
                    endpoint: format!("{name} (a read-back GET of {})", t.set),
                    status: part.status,
                    detail: crate::policy::describe(part.status, part.body.as_bytes()),
                });
            }
            let page: Collection =
                serde_json::from_str(&part.body).map_err(|e| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: name.clone(),
                    detail: format!("a read-back answer in the batch is not a collection: {e}"),
                })?;
            for row in &page.value {
                Self::read_back_row(t, row, &self.column, &map, &mut out);
            }
            if let Some(link) = page.next_link {
                let next = self.next_url(t.set, &link)?;
                self.each_row(t.set, next, |row| {
                    Self::read_back_row(t, row, &self.column, &map, &mut out)
                })
                .await?;
            }
        }
        Ok(out)
    }

    /// The `$filter` of the records whose source id is one of `ids`.
    fn in_filter(&self, ids: &[&String]) -> String {
        let values: Vec<String> = ids.iter().map(|id| mapping::literal(id)).collect();
        format!(
            "Microsoft.Dynamics.CRM.In(PropertyName='{}',PropertyValues=[{}])",
            self.column,
            values.join(",")
        )
    }

    /// The URL of the next page an `@odata.nextLink` names, refused unless it points at this
    /// environment's entity set `set`.
    fn next_url(&self, set: &str, link: &str) -> ConnectorResult<url::Url> {
        let malformed = |detail: String| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {}{set}", self.client.api_base().path()),
            detail,
        };
        if !link.starts_with(&format!("{}{set}?", self.client.api_base())) {
            return Err(malformed(
                "the @odata.nextLink does not point at this environment's entity set".into(),
            ));
        }
        url::Url::parse(link)
            .map_err(|e| malformed(format!("the @odata.nextLink is not a URL: {e}")))
    }

    /// Every row of a query (`url` on entity set `set`), following `@odata.nextLink`.
    async fn each_row(
        &self,
        set: &str,
        url: url::Url,
        mut each: impl FnMut(&serde_json::Map<String, Json>),
    ) -> ConnectorResult<()> {
        let prefer = max_page_size(crate::config::MAX_PAGE_SIZE);
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let page: Collection = self.client.get_json(url, &[("Prefer", &prefer)]).await?;
            page.value.iter().for_each(&mut each);
            next = page
                .next_link
                .map(|link| self.next_url(set, &link))
                .transpose()?;
        }
        Ok(())
    }

    /// Source id → Dataverse id of the records of `t` that carry `source_ids`.
    async fn find(
        &self,
        t: &DataverseObject,
        source_ids: &[String],
    ) -> ConnectorResult<HashMap<String, String>> {
        let mut found = HashMap::with_capacity(source_ids.len());
        for chunk in filter_chunks(source_ids, MAX_FILTER_CHARS) {
            let mut url = self.client.api_url(t.set)?;
            url.query_pairs_mut()
                .append_pair("$select", &format!("{},{}", t.id, self.column))
                .append_pair("$filter", &self.in_filter(&chunk));
            self.each_row(t.set, url, |row| {
                let text = |c: &str| row.get(c).and_then(Json::as_str);
                if let (Some(id), Some(source)) = (text(t.id), text(&self.column)) {
                    found.insert(source.to_owned(), id.to_owned());
                }
            })
            .await?;
        }
        Ok(found)
    }

    /// Of the Dataverse ids `ids` of `t`, those that rows Dataverse would delete with them
    /// still point at, each with how many of each kind (`t.cascades`, in order).
    async fn with_children(
        &self,
        t: &DataverseObject,
        ids: &[String],
    ) -> ConnectorResult<HashMap<String, Vec<usize>>> {
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (k, cascade) in t.cascades.iter().enumerate() {
            for chunk in ids.chunks(CHILD_FILTER_IDS) {
                let filter: Vec<String> = chunk
                    .iter()
                    .map(|id| format!("{} eq {id}", cascade.lookup))
                    .collect();
                let mut url = self.client.api_url(cascade.set)?;
                url.query_pairs_mut()
                    .append_pair("$select", cascade.lookup)
                    .append_pair("$filter", &filter.join(" or "));
                self.each_row(cascade.set, url, |row| {
                    if let Some(parent) = row.get(cascade.lookup).and_then(Json::as_str) {
                        let counts = children
                            .entry(parent.to_lowercase())
                            .or_insert_with(|| vec![0; t.cascades.len()]);
                        counts[k] += 1;
                    }
                })
                .await?;
            }
        }
        Ok(children)
    }

    /// Sends one `$batch` of deletes and answers each: deleted, absent (404: removed already),
    /// refused, or failed for a reason that passes (a 429 or 5xx part, sent again).
    async fn send_deletes(
        &self,
        pending: Vec<(String, batch::Request)>,
    ) -> ConnectorResult<Vec<DeleteAnswer>> {
        let requests: Vec<&batch::Request> = pending.iter().map(|(_, r)| r).collect();
        let (_, parts) = self.send_batch(&requests).await?;
        Ok(pending
            .into_iter()
            .zip(parts)
            .map(|(sent, part)| {
                let answer = match part.status {
                    200..=299 => Ok(Removed::Deleted),
                    404 => Ok(Removed::Absent),
                    status => {
                        let (code, _) = parse_error(part.body.as_bytes()).unwrap_or_default();
                        Err(if code.is_empty() {
                            format!("HTTP_{status}")
                        } else {
                            code
                        })
                    }
                };
                let attempt = if part.status == 429 || part.status >= 500 {
                    Attempt::Again(answer)
                } else {
                    Attempt::Done(answer)
                };
                (sent, attempt)
            })
            .collect())
    }
}

/// One delete of a `$batch` (by Dataverse id) and its answer (an error code when refused).
type DeleteAnswer = ((String, batch::Request), Attempt<Result<Removed, String>>);

/// Most parent ids one child query filters on (`_x_value eq <guid> or …`, about 60 characters
/// each, so the URL stays well within limits).
const CHILD_FILTER_IDS: usize = 50;

/// What would go with a record that still has `counts` of `t.cascades`.
fn cascade_reason(t: &DataverseObject, counts: &[usize]) -> String {
    let what: Vec<String> = t
        .cascades
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{n} {}", c.name))
        .collect();
    format!(
        "Dataverse would delete the {} still on this {} with it (and what hangs on them); not deleted",
        prose(&what.iter().map(String::as_str).collect::<Vec<_>>()),
        t.logical
    )
}

/// Splits `ids` into read-back chunks whose `$filter` value lists stay within `max_chars`
/// once percent-encoded (a single huge id still gets a chunk of its own).
///
/// Each id is counted as the URL carries it. Counting three characters a byte, as if every
/// byte were encoded, split a read-back of 100 Salesforce ids (18 characters) in two, so
/// verifying cost three requests per 100 records instead of two.
fn filter_chunks(ids: &[String], max_chars: usize) -> Vec<Vec<&String>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<&String> = Vec::new();
    let mut chars = 0usize;
    for id in ids {
        // The quoted literal percent-encoded, and its comma (`%2C`).
        let cost = urlencoding::encode(&mapping::literal(id)).len() + 3;
        if !chunk.is_empty() && chars + cost > max_chars {
            chunks.push(std::mem::take(&mut chunk));
            chars = 0;
        }
        chunk.push(id);
        chars += cost;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// The requests of `pending`, in order.
fn requests_of<'p>(pending: &'p [Part<'_>]) -> Vec<&'p batch::Request> {
    pending.iter().map(|(_, _, r)| r).collect()
}

fn reject(record: &Record, code: &str, reason: String) -> RecordRejection {
    RecordRejection {
        source_id: record.source_id.clone(),
        code: code.to_owned(),
        reason,
    }
}

/// A rejection's code and reason from an error part: the Dataverse code and the columns its
/// message names, with their canonical names; never the message itself (it may quote values).
fn rejection_reason(
    t: &DataverseObject,
    record: &Record,
    status: u16,
    body: &[u8],
    column: &str,
    map: &FieldMap,
) -> (String, String) {
    let (code, message) = parse_error(body).unwrap_or_default();
    let code = if code.is_empty() {
        format!("HTTP_{status}")
    } else {
        code
    };
    // Only names the mapping itself knows are repeated, so nothing from a value can leak.
    let mut known: Vec<&str> = mapping::columns(t, map);
    known.push(column);
    for r in t.references {
        known.extend(r.navigations.iter().map(|(_, nav)| *nav));
        known.extend(r.mirrors.iter().copied());
    }
    let mut named: Vec<String> = Vec::new();
    for quoted in message.split('\'').skip(1).step_by(2) {
        if let Some(c) = known.iter().find(|k| **k == quoted) {
            let text = match mapping::canonical_of(t, map, c) {
                Some(canonical) => format!("{c} ({canonical})"),
                None => (*c).to_owned(),
            };
            if !named.contains(&text) {
                named.push(text);
            }
        }
    }
    // A 404 on a record that binds a reference: the target is not in the sink.
    // Dataverse names the missing record's table ("… does not exist in contact entity",
    // "contact With Id = … Does Not Exist"): the reference to that table, else the first bound.
    let bound: Vec<_> = t
        .references
        .iter()
        .filter_map(|r| {
            let (target, _) = mapping::pointed_at(t, r, record)?;
            let nav = r.navigations.iter().find(|(o, _)| *o == target)?.1;
            Some((r, target, nav))
        })
        .collect();
    let names_table = |target: ObjectType| {
        mapping::binding(target).is_ok_and(|o| {
            message.contains(&format!("in {} entity", o.logical))
                || message.starts_with(&format!("{} With Id", o.logical))
        })
    };
    let bound = bound
        .iter()
        .find(|(_, target, _)| names_table(*target))
        .or(bound.first())
        .copied();
    // Dataverse names the table of a missing lookup target ("systemuser With Id = … Does Not
    // Exist"); a table name is no value.
    let missing_user = message.to_ascii_lowercase().contains("systemuser");
    let reason = if !named.is_empty() {
        format!("Dynamics refused field {}", named.join(", "))
    } else if t.owned && missing_user {
        format!(
            "Dynamics refused the owner (ownerid): the {} names a user this environment does not have, or one \
             that is disabled",
            t.logical
        )
    } else if let (404, Some((reference, target, nav))) = (status, bound) {
        let field = reference.canonical;
        let target = mapping::binding(target).map_or(field, |o| o.logical);
        format!(
            "Dynamics refused the {field} reference ({nav}): no {target} has the {}'s {field} as its {column} (the \
             {field} was not migrated, or was rejected)",
            t.logical
        )
    } else if status == 412 {
        format!(
            "Dynamics refused the record: another record already has this source id in {column} (the alternate key \
             compares without regard to case)"
        )
    } else if status == 429 || status >= 500 {
        format!("Dynamics could not save the record (HTTP {status}), still after the retries")
    } else {
        format!("Dynamics refused the record (HTTP {status}, no column named)")
    };
    (code, reason)
}

/// `names` as prose: "a", "a and b", "a, b and c".
fn prose(names: &[&str]) -> String {
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn setup_missing_key(logical: &str, column: &str) -> ConnectorError {
    let tables: Vec<&str> = mapping::OBJECTS.iter().map(|t| t.logical).collect();
    let others: Vec<&str> = tables.iter().copied().filter(|t| *t != logical).collect();
    let (every, all) = if tables.len() == 2 {
        ("both tables", format!("both {}", prose(&tables)))
    } else {
        ("each table", format!("each of {}", prose(&tables)))
    };
    ConnectorError::Setup {
        vendor: VENDOR,
        detail: format!(
            "the {logical} table has no alternate key on `{column}`, which ferry needs to upsert by each record's \
             source id (so reruns update instead of duplicating). In Power Apps (make.powerapps.com) → your \
             environment → Tables → {logical}: (1) Columns → New column: Display name \"Ferry Source Id\", logical \
             name {column} (the publisher prefix is part of it), Data type Single line of text, Maximum character \
             count 100 (or more); (2) Keys → New key: Display name \"Ferry Source Id Key\", select the column, Save; \
             (3) wait until the key's status is Active. Do the same on the {} table{}, and give the application user \
             create and write privileges on {every}. Or set `sink.source_id_column` to the logical name of an \
             existing text column that is an alternate key of {all}.",
            prose(&others),
            if others.len() == 1 { "" } else { "s" },
        ),
    }
}

#[async_trait]
impl Sink for DynamicsSink {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// An environment variable of the environment (`[sync] state = "sink"`, see `state`).
    fn state_store(&self, name: &str) -> Option<Box<dyn ferry_core::state_store::StateStore>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(Box::new(crate::state::EnvironmentStore::new(
            Arc::clone(&self.client),
            name,
            runtime,
        )))
    }

    /// The account's organisation id (`GET WhoAmI`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// The table's column definitions (`GET EntityDefinitions(LogicalName='…')/Attributes`).
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        crate::fields::describe(&self.client, object).await
    }

    /// Writes and reads back the mapped columns too (a label as its choice's option value).
    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        crate::fields::map_fields(&self.fields, object, bindings)
    }

    /// Creates a custom column (`POST EntityDefinitions(LogicalName='…')/Attributes`), named
    /// with the publisher's prefix.
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        crate::fields::create(&self.client, &self.publisher_prefix, object, field).await
    }

    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        let t = mapping::binding(object)?;
        Ok(Capability {
            batch_size: self.batch_size,
            read_back_size: self.read_back_size,
            stored: mapping::stored_fields(t, &self.fields.get(object)),
            required: t.required.iter().map(|f| (*f).to_owned()).collect(),
            // The opt-out is held in consent columns of the record (`opt_out`), not per address.
            opt_out_needs_email: false,
            limits: mapping::limits(t),
        })
    }

    /// Every user of the environment (`systemusers`): who records may be owned by.
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client, crate::directory::PAGE).await
    }

    /// The opportunity business process flows and their stages.
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, crate::directory::PAGE, object).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client.authenticate().await?;
        let _: Json = self
            .client
            .get_json_capped(self.client.api_url("WhoAmI")?, &[], BodyCap::Small)
            .await?;
        Ok(())
    }

    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        let t = mapping::binding(object)?;
        self.check_key(t.logical).await?;
        // A reference binds to its target through the target's alternate key (contacts to
        // their account, notes to their deal, contact or account).
        let mut checked = vec![t.logical];
        for reference in t.references {
            for target in reference.targets() {
                let target = mapping::binding(target)?;
                if !checked.contains(&target.logical) {
                    self.check_key(target.logical).await?;
                    checked.push(target.logical);
                }
            }
        }
        if t.currency.is_some() {
            self.currencies().await?;
        }
        Ok(())
    }

    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let t = mapping::binding(object)?;
        let outcomes =
            frame::upsert_in_batches(VENDOR, object, records, self.batch_size, |chunk| {
                self.write_chunk(t, chunk)
            })
            .await?;
        let rejected = outcomes.iter().filter(|o| o.result.is_err()).count();
        tracing::debug!(vendor = VENDOR, %object, records = records.len(), rejected, "upserted");
        Ok(outcomes)
    }

    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        let t = mapping::binding(object)?;
        let out = match filter_chunks(source_ids, MAX_FILTER_CHARS).as_slice() {
            [] => Vec::new(),
            [one] => self.read_chunk(t, one).await?,
            // More ids than one URL carries: longer URLs, all in one `$batch`.
            _ => {
                let chunks = filter_chunks(source_ids, MAX_BATCH_FILTER_CHARS);
                self.read_chunks_batched(t, &chunks).await?
            }
        };
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = out.len(), "read back");
        Ok(out)
    }

    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let t = mapping::binding(object)?;
        let mut url = self.client.api_url(t.set)?;
        url.query_pairs_mut()
            .append_pair("$select", t.id)
            .append_pair("$filter", &format!("{} ne null", self.column))
            .append_pair("$count", "true");
        let page: Collection = self
            .client
            .get_json(url, &[("Prefer", &max_page_size(1))])
            .await?;
        // Dataverse stops counting at 5,000: a capped count proves nothing.
        Ok(page.count.filter(|n| *n < COUNT_CAP))
    }

    /// `GET /<set>?$select=<column>&$filter=<column> ne null`, paged through
    /// `@odata.nextLink`: records without ferry's source id are not listed.
    async fn source_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let t = mapping::binding(object)?;
        let url = match cursor {
            Some(link) => self.next_url(t.set, link)?,
            None => {
                let mut url = self.client.api_url(t.set)?;
                url.query_pairs_mut()
                    .append_pair("$select", &self.column)
                    .append_pair("$filter", &format!("{} ne null", self.column));
                url
            }
        };
        let prefer = max_page_size(crate::config::MAX_PAGE_SIZE);
        let page: Collection = self.client.get_json(url, &[("Prefer", &prefer)]).await?;
        let ids = page
            .value
            .iter()
            .filter_map(|row| row.get(&self.column).and_then(Json::as_str))
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        let next = page
            .next_link
            .map(|link| self.next_url(t.set, &link).map(String::from))
            .transpose()?;
        Ok(IdPage { ids, next })
    }

    /// Finds the records by ferry's source id only, then `DELETE /<set>(<guid>)` in a
    /// `$batch`: a hard delete, Dataverse having no archive for these tables, so only
    /// `Delete` is taken (`Archive` is refused before the sync). A record Dataverse would
    /// delete others with (an account's contacts, its opportunities by `customerid` and its
    /// notes; a contact's such opportunities and notes; an opportunity's notes) while any of
    /// them is still there is refused (`WOULD_CASCADE`), naming what would go: children are
    /// removed first, so only children still live in the source remain.
    async fn remove(
        &self,
        object: ObjectType,
        source_ids: &[String],
        how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        let t = mapping::binding(object)?;
        if how == Removal::Archive {
            return Err(ConnectorError::Unsupported {
                vendor: VENDOR,
                detail: "Dataverse has no archive or recycle bin for accounts, contacts, opportunities \
                         and notes: a removal is a permanent delete. Set `[sync] deletes = \"delete\"` \
                         to delete them, or keep \"ignore\""
                    .into(),
            });
        }
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.find(t, source_ids).await?;
        let ids: Vec<String> = found.values().map(|id| id.to_lowercase()).collect();
        let with_children = self.with_children(t, &ids).await?;
        let deletable: Vec<&String> = ids
            .iter()
            .filter(|id| !with_children.contains_key(*id))
            .collect();
        let mut answers: HashMap<String, Result<Removed, String>> = HashMap::new();
        for chunk in deletable.chunks(self.batch_size.max(1)) {
            let mut items = Vec::with_capacity(chunk.len());
            for id in chunk {
                let url = self.client.api_url(&format!("{}({id})", t.set))?;
                let request = batch::Request {
                    method: "DELETE",
                    target: url.path().to_owned(),
                    body: String::new(),
                };
                items.push(((*id).clone(), request));
            }
            let settled =
                settle(VENDOR, items, self.resend, |items| self.send_deletes(items)).await?;
            answers.extend(settled.into_iter().map(|((id, _), answer)| (id, answer)));
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = ids.len(), kept_for_children = with_children.len(), "deleted");
        Ok(source_ids
            .iter()
            .map(|source| {
                let result = match found.get(source).map(|id| id.to_lowercase()) {
                    None => Ok(Removed::Absent),
                    Some(id) => match (with_children.get(&id), answers.get(&id)) {
                        (Some(counts), _) => Err(RecordRejection {
                            source_id: source.clone(),
                            code: "WOULD_CASCADE".into(),
                            reason: cascade_reason(t, counts),
                        }),
                        (None, Some(Ok(removed))) => Ok(*removed),
                        (None, Some(Err(code))) => Err(RecordRejection {
                            source_id: source.clone(),
                            code: code.clone(),
                            reason: format!("Dataverse refused to delete the {}", t.logical),
                        }),
                        (None, None) => Ok(Removed::Absent),
                    },
                };
                RemoveOutcome {
                    source_id: source.clone(),
                    result,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of the `$filter` value list of `chunk` as the URL carries it.
    fn encoded(chunk: &[&String]) -> usize {
        let values: Vec<String> = chunk.iter().map(|id| mapping::literal(id)).collect();
        urlencoding::encode(&values.join(",")).len()
    }

    #[test]
    fn read_back_chunks_count_ids_as_the_url_carries_them() {
        // A read-back of 100 Salesforce ids is one request.
        let salesforce: Vec<String> = (0..100).map(|i| format!("001Ws00000{i:08}")).collect();
        assert_eq!(filter_chunks(&salesforce, MAX_FILTER_CHARS).len(), 1);
        // Ids whose every byte is encoded still fit the limit, in more chunks.
        let wide: Vec<String> = (0..300).map(|i| format!("é'ü {i:06}")).collect();
        let chunks = filter_chunks(&wide, MAX_FILTER_CHARS);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 300);
        for chunk in &chunks {
            assert!(encoded(chunk) <= MAX_FILTER_CHARS, "{}", encoded(chunk));
        }
        // One id too long for the limit gets a chunk of its own.
        let huge = vec!["a".repeat(MAX_FILTER_CHARS), "b".into()];
        assert_eq!(filter_chunks(&huge, MAX_FILTER_CHARS).len(), 2);
        assert!(filter_chunks(&[], MAX_FILTER_CHARS).is_empty());
    }

    #[test]
    fn reference_and_setup_messages_name_the_tables_of_the_rows() {
        let contacts = mapping::binding(ObjectType::CONTACTS).unwrap();
        let mut r = Record::new(ObjectType::CONTACTS, "p-1");
        r.set(
            ferry_core::field::COMPANY,
            ferry_core::Value::Reference("co-9".into()),
        );
        let body = br#"{"error":{"code":"0x80040217","message":"No account found"}}"#;
        let map = contacts.standard();
        let (code, reason) = rejection_reason(contacts, &r, 404, body, "ferry_sourceid", &map);
        assert_eq!(code, "0x80040217");
        assert_eq!(
            reason,
            "Dynamics refused the company reference (parentcustomerid_account): no account has the \
             contact's company as its ferry_sourceid (the company was not migrated, or was rejected)"
        );
        let setup = |logical| setup_missing_key(logical, "ferry_sourceid").to_string();
        let account = setup("account");
        assert!(
            account.contains(
                "Do the same on the contact, opportunity and annotation tables, and give the application \
                 user create and write privileges on each table. Or set `sink.source_id_column` to the \
                 logical name of an existing text column that is an alternate key of each of account, \
                 contact, opportunity and annotation."
            ),
            "{account}"
        );
        assert!(
            setup("contact")
                .contains("Do the same on the account, opportunity and annotation tables, and")
        );
    }
}
