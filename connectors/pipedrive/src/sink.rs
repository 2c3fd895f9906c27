//! The Pipedrive sink. Pipedrive has no batch and no upsert endpoint, so each record is found
//! by its source id (an exact-match search on the source-id custom field, confirmed by reading
//! the candidates back) and then updated (`PATCH`) or created (`POST`), a few at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ferry_core::batch::{self, Answer};
use ferry_core::fields::{
    FieldBinding, FieldKind, FieldMap, FieldMaps, NewField, RecentListings, VendorField,
};
use ferry_core::http::{HttpResponse, HttpStats, Sent};
use ferry_core::quality::{
    OPT_OUT_NOT_REPRESENTABLE, opt_out_not_representable_reason, opt_out_without_address,
};
use ferry_core::resolver::Resolver;
use ferry_core::{
    Capability, ConnectorError, ConnectorResult, FieldLimit, IdPage, ObjectType, Record,
    RecordOutcome, RecordRejection, Removal, RemoveOutcome, Removed, Sink, Value, Written, field,
};
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::{PipedriveClient, endpoint_path};
use crate::config::{MAX_IDS_PER_LIST, PipedriveConfig, Settings};
use crate::mapping;
use crate::notes::{self, NoteKey};
use crate::objects::{self, PipedriveObject};
use crate::policy::clean_code;

/// Search results asked for per source id: more than one means duplicates to sort out.
const SEARCH_LIMIT: &str = "10";
/// Most keys one `custom_fields` parameter may carry (Pipedrive: "A maximum of 15 keys").
const MAX_CUSTOM_FIELD_KEYS: usize = 15;

/// A Pipedrive company account as a sink.
pub struct PipedriveSink {
    client: PipedriveClient,
    settings: Settings,
    /// The source-id custom field's key per object type, once resolved.
    keys: Mutex<HashMap<ObjectType, String>>,
    /// Per object, the fields [`Sink::describe`] listed last: the source-id field is looked
    /// up there instead of listing the fields again (a request of the 80 per 2 s).
    described: RecentListings<Vec<VendorField>>,
    /// Source id ↔ Pipedrive id, for records this run wrote or found: spares a search per
    /// reference (a contact's company) and per read-back. An object whose source-id field
    /// this sink created is marked complete: no record carried a source id before this run,
    /// so a miss means "absent" without a search.
    ids: Resolver<u64>,
    /// The plain fields written and read back per object: the standard table and the mapped
    /// fields.
    fields: FieldMaps,
    /// Note writes to one parent take turns (by stripe of the parent): a note is found by its
    /// parent's listing, and two batches listing one parent at once could both take the same
    /// unclaimed note for two same-second source notes, one overwriting the other.
    note_stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
    /// The token user's default currency, which Pipedrive gives a deal written without one
    /// (`default_currency` of `GET /v1/users/me`): learned once, by [`Sink::survey`] of deals.
    /// `None` inside when the answer names none.
    default_currency: tokio::sync::OnceCell<Option<String>>,
}

/// How many locks the notes' parents are spread over: batches writing notes of different
/// parents rarely wait for each other, and the memory stays fixed however many parents.
const NOTE_STRIPES: usize = 256;

impl PipedriveSink {
    /// Builds the sink from its config (no I/O). Errors name `key_prefix.<key>`.
    pub fn new(config: PipedriveConfig, key_prefix: &str) -> ConnectorResult<PipedriveSink> {
        let (client, settings) = PipedriveClient::new(&config, key_prefix)?;
        Ok(PipedriveSink {
            client,
            settings,
            keys: Mutex::default(),
            described: RecentListings::default(),
            ids: Resolver::default(),
            fields: FieldMaps::new(
                objects::OBJECTS
                    .iter()
                    .map(|row| (row.object, row.standard_map())),
            ),
            note_stripes: (0..NOTE_STRIPES).map(|_| Arc::default()).collect(),
            default_currency: tokio::sync::OnceCell::new(),
        })
    }

    /// The token user's default currency (`GET /v1/users/me`, `data.default_currency`), which
    /// Pipedrive gives a deal written without a currency; `None` when it names no ISO code.
    async fn learn_default_currency(&self) -> ConnectorResult<Option<String>> {
        let me = self.client.get_small("/v1/users/me", &[]).await?;
        let currency = me
            .pointer("/data/default_currency")
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .map(str::to_owned);
        match &currency {
            Some(c) => {
                tracing::debug!(vendor = VENDOR, currency = %c, "the user's default currency")
            }
            None => tracing::debug!(vendor = VENDOR, "the user names no default currency"),
        }
        Ok(currency)
    }

    /// The key of the source-id custom field of `object`, found by name (and created when
    /// `create` is set and it is missing). `None` when it does not exist and was not created.
    async fn source_key(
        &self,
        object: ObjectType,
        create: bool,
    ) -> ConnectorResult<Option<String>> {
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&object)
        {
            return Ok(Some(k.clone()));
        }
        let row = objects::binding(object)?;
        let name = &self.settings.source_id_field;
        let path = format!("/api/v2/{}", row.fields_path);
        let found = self.source_fields(object).await?;
        let entity = row.path;
        let key = match found.as_slice() {
            [] if !create => return Ok(None),
            [] => {
                let body = json!({"field_name": name, "field_type": "varchar"});
                // Created before its answer was lost: the field is listed now.
                let landed = || async {
                    let found = self.source_fields(object).await?;
                    Ok(found.into_iter().next().map(|(code, _)| code))
                };
                let code = match self.client.create(&path, &body, landed).await? {
                    Sent::Landed(code) => code,
                    Sent::Response(response) => self.created_field_code(row, &path, response)?,
                };
                tracing::info!(
                    vendor = VENDOR,
                    entity,
                    "created the source-id custom field"
                );
                self.ids.mark_complete(object);
                code
            }
            [(code, ty)] if matches!(ty.as_str(), "varchar" | "varchar_auto" | "text") => {
                code.clone()
            }
            [(_, ty)] => {
                return Err(ConnectorError::Setup {
                    vendor: VENDOR,
                    detail: format!(
                        "the {entity} custom field \"{name}\" has type `{ty}`; ferry stores source ids as text. \
                         Rename or delete it, or set `source_id_field` to the name of a Text field"
                    ),
                });
            }
            _ => {
                return Err(ConnectorError::Setup {
                    vendor: VENDOR,
                    detail: format!(
                        "{} {entity} custom fields are named \"{name}\"; ferry cannot tell which holds source ids. \
                         Rename all but one, or set `source_id_field` to a unique name",
                        found.len()
                    ),
                });
            }
        };
        Ok(Some(self.remember_key(object, key)))
    }

    /// The key of the field a `POST` to the fields API created, from its answer.
    fn created_field_code(
        &self,
        row: &PipedriveObject,
        path: &str,
        response: HttpResponse,
    ) -> ConnectorResult<String> {
        let (name, entity) = (&self.settings.source_id_field, row.path);
        let created = match self.client.write_envelope(&Method::POST, path, response) {
            Ok(b) => b,
            Err(ConnectorError::Auth { status: 403, .. }) => {
                return Err(ConnectorError::Setup {
                    vendor: VENDOR,
                    detail: format!(
                        "the {entity} custom field \"{name}\" is missing and this API token may not create it \
                         (creating fields needs an admin). Create it once: Settings → Data fields → {} → \
                         Add custom field, type Text, name \"{name}\"; or set `source_id_field` to an \
                         existing text field's name",
                        row.settings_section
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        created
            .pointer("/data/field_code")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("POST {path}"),
                detail: "the created field has no `field_code`".into(),
            })
    }

    fn remember_key(&self, object: ObjectType, key: String) -> String {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(object, key.clone());
        key
    }

    /// The custom fields of `object` named `source_id_field` (ignoring case): key and type.
    /// From the field plan's listing when it is fresh (taken once: a create's check for a
    /// field that landed lists again), otherwise from a new one.
    async fn source_fields(&self, object: ObjectType) -> ConnectorResult<Vec<(String, String)>> {
        let fields = match self.described.take(object) {
            Some(fields) => fields,
            None => crate::fields::describe(&self.client, object).await?,
        };
        let name = self.settings.source_id_field.as_str();
        Ok(fields
            .into_iter()
            .filter(|f| f.custom && f.label.trim().eq_ignore_ascii_case(name))
            .map(|f| (f.name, f.vendor_type))
            .collect())
    }

    /// Reads records by Pipedrive id (≤ 100 per request), with only the source-id custom field
    /// (and the mapped ones) and the fields lists leave out (a person's marketing status).
    async fn fetch(
        &self,
        object: ObjectType,
        key: &str,
        ids: &[u64],
    ) -> ConnectorResult<Vec<Json>> {
        let row = objects::binding(object)?;
        let path = format!("/api/v2/{}", row.path);
        let include = row.include_fields.join(",");
        // Only the custom fields needed: the source id's and the mapped ones; past Pipedrive's
        // cap on `custom_fields` keys, all of them (the default).
        let map = self.fields.get(object);
        let mut wanted = vec![key];
        wanted.extend(mapping::custom_keys(&map).into_iter().filter(|k| *k != key));
        let custom = (wanted.len() <= MAX_CUSTOM_FIELD_KEYS).then(|| wanted.join(","));
        let chunks: Vec<String> = ids
            .chunks(MAX_IDS_PER_LIST)
            .map(|c| c.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
            .collect();
        let requests: Vec<_> = chunks
            .into_iter()
            .map(|list| {
                let (path, custom, include) = (&path, &custom, &include);
                async move {
                    let mut query = vec![("ids", list.as_str())];
                    if let Some(custom) = custom {
                        query.push(("custom_fields", custom.as_str()));
                    }
                    if !include.is_empty() {
                        query.push(("include_fields", include.as_str()));
                    }
                    let body = self.client.get(path, &query).await?;
                    match body.get("data") {
                        Some(Json::Array(items)) => Ok(items.clone()),
                        _ => Err(ConnectorError::Malformed {
                            vendor: VENDOR,
                            endpoint: format!("GET {path}"),
                            detail: "`data` is not a list".into(),
                        }),
                    }
                }
            })
            .collect();
        let pages = stream::iter(requests)
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::with_capacity(ids.len());
        for page in pages {
            out.extend(page?);
        }
        Ok(out)
    }

    /// Finds the Pipedrive ids of the records whose source-id field holds each of
    /// `source_ids`: an exact-match search per id, confirmed by reading the candidates (the
    /// search matches any custom field, and ignores case). Duplicates resolve to the lowest id.
    async fn find(
        &self,
        object: ObjectType,
        key: &str,
        source_ids: &[String],
    ) -> ConnectorResult<HashMap<String, u64>> {
        let path = format!("/api/v2/{}/search", objects::binding(object)?.path);
        let searches: Vec<_> = source_ids
            .iter()
            .filter(|s| !s.is_empty())
            .map(|sid| {
                let path = &path;
                async move {
                    let query = [
                        ("term", sid.as_str()),
                        ("fields", "custom_fields"),
                        ("exact_match", "true"),
                        ("limit", SEARCH_LIMIT),
                    ];
                    let body = self.client.search(path, &query).await?;
                    let ids: Vec<u64> = body
                        .pointer("/data/items")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i.pointer("/item/id").and_then(Json::as_u64))
                        .collect();
                    Ok::<_, ConnectorError>(ids)
                }
            })
            .collect();
        let hits = stream::iter(searches)
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut candidates = Vec::new();
        for ids in hits {
            candidates.extend(ids?);
        }
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: HashSet<&str> = source_ids.iter().map(String::as_str).collect();
        let mut found: HashMap<String, u64> = HashMap::new();
        let mut records = self.fetch(object, key, &candidates).await?;
        records.sort_by_key(|r| mapping::id_of(r).unwrap_or(u64::MAX));
        for raw in &records {
            let (Some(id), Some(sid)) = (mapping::id_of(raw), mapping::custom_text(raw, key))
            else {
                continue;
            };
            if wanted.contains(sid.as_str()) {
                if let Some(first) = found.get(&sid) {
                    tracing::warn!(vendor = VENDOR, %object, kept = first, duplicate = id, "two records carry the same source id; updating the older");
                } else {
                    found.insert(sid, id);
                }
            }
        }
        for (sid, id) in &found {
            self.ids.remember(object, sid, *id);
        }
        Ok(found)
    }

    /// Pipedrive ids for `source_ids`: from the cache, else found.
    async fn resolve(
        &self,
        object: ObjectType,
        key: &str,
        source_ids: &[String],
    ) -> ConnectorResult<HashMap<String, u64>> {
        self.ids
            .resolve(
                object,
                source_ids.iter().map(String::as_str),
                |missing| async move { self.find(object, key, &missing).await },
            )
            .await
    }

    /// Writes one chunk of the batch frame: its existing records and the targets of each
    /// reference are found in one pass each, then each record is written on its own, a few
    /// at a time.
    async fn write_chunk(
        &self,
        object: ObjectType,
        key: &str,
        chunk: Vec<(usize, &Record)>,
    ) -> ConnectorResult<Vec<Answer>> {
        let row = objects::binding(object)?;
        let source_ids: Vec<String> = chunk.iter().map(|(_, r)| r.source_id.clone()).collect();
        let existing = self.resolve(object, key, &source_ids).await?;
        // The Pipedrive ids of the targets, per target object (references and links).
        let mut targets: HashMap<ObjectType, HashMap<String, u64>> = HashMap::new();
        for target in row.targets() {
            let sids = chunk
                .iter()
                .flat_map(|(_, r)| target_source_ids(row, r, target));
            let ids = self.target_ids(target, sids).await?;
            targets.insert(target, ids);
        }
        let needs_email = row.opt_out.as_ref().is_some_and(|o| o.needs_email);
        let mut writes = Vec::with_capacity(chunk.len());
        for (i, record) in chunk {
            let (existing, targets) = (&existing, &targets);
            writes.push(async move {
                // Pipedrive sets no marketing status on a person without a valid address (it
                // stays `no_consent`): refused before anything is written, so the person never
                // arrives without its opt-out (the engine refuses it earlier; this guards
                // callers that skip the engine).
                if needs_email && opt_out_without_address(record) {
                    let reason = opt_out_not_representable_reason(VENDOR);
                    return Ok((i, refusal(record, OPT_OUT_NOT_REPRESENTABLE, reason)));
                }
                let linked = match linked_ids(row, record, targets) {
                    Ok(linked) => linked,
                    Err(rejection) => return Ok((i, Err(rejection))),
                };
                let existing = existing.get(&record.source_id).copied();
                let result = self
                    .write_one(row, record, key, existing, &linked.fields)
                    .await?;
                let result = match (result, &linked.participants) {
                    (Ok(written), Some(people)) => {
                        let id = written.sink_id.parse::<u64>().unwrap_or_default();
                        self.set_participants(row, record, id, written.created, people)
                            .await?
                            .map(|()| written)
                    }
                    (result, _) => result,
                };
                Ok::<Answer, ConnectorError>((i, result))
            });
        }
        stream::iter(writes)
            .buffered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Writes one record: `PATCH` when it exists (falling back to `POST` if it vanished),
    /// else `POST`. A refusal of the record is an outcome; of the request, an error.
    ///
    /// A `POST` is not safe to send twice, so it goes through the HTTP layer's guard: after a
    /// failure that leaves open whether Pipedrive saved the record (the connection broke, a
    /// timeout, a 5xx), the record is looked up by its source id (`find`) before the `POST` is
    /// sent again, and a record found there is the one created.
    ///
    /// `linked` holds the Pipedrive id of each id field of the row's references and links
    /// (`None`: the record has none), already resolved.
    async fn write_one(
        &self,
        row: &PipedriveObject,
        record: &Record,
        key: &str,
        existing: Option<u64>,
        linked: &[(&str, Option<u64>)],
    ) -> ConnectorResult<Result<Written, RecordRejection>> {
        let object = row.object;
        let map = self.fields.get(object);
        let body = match mapping::to_body(row, record, key, linked, &map) {
            Ok(body) => body,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let entity = row.path;
        let mut target = existing;
        loop {
            let (method, path) = match target {
                Some(id) => (Method::PATCH, format!("/api/v2/{entity}/{id}")),
                None => (Method::POST, format!("/api/v2/{entity}")),
            };
            let response = if target.is_some() {
                self.client.write(method.clone(), &path, &body).await?
            } else {
                let landed = || async {
                    let sid = std::slice::from_ref(&record.source_id);
                    Ok(self.find(object, key, sid).await?.remove(&record.source_id))
                };
                match self.client.create(&path, &body, landed).await? {
                    Sent::Response(response) => response,
                    Sent::Landed(id) => {
                        self.ids.remember(object, &record.source_id, id);
                        return Ok(Ok(Written {
                            sink_id: id.to_string(),
                            created: true,
                        }));
                    }
                }
            };
            let status = response.status.as_u16();
            if response.is_success() {
                let endpoint = format!("{method} {}", endpoint_path(&path));
                let answer: Json = response.json(VENDOR, &endpoint)?;
                let id = answer
                    .pointer("/data/id")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint,
                        detail: "a successful write without `data.id`".into(),
                    })?;
                self.ids.remember(object, &record.source_id, id);
                return Ok(Ok(Written {
                    sink_id: id.to_string(),
                    created: target.is_none(),
                }));
            }
            if status == 404 && target.is_some() {
                // Deleted since it was found: create it again.
                target = None;
                continue;
            }
            if matches!(status, 400 | 404 | 409 | 410 | 422) {
                let (code, reason) = rejection_reason(row, &response, &map);
                return Ok(refusal(record, &code, reason));
            }
            return Err(self
                .client
                .error_for(&format!("{method} {}", endpoint_path(&path)), &response));
        }
    }

    /// Makes `people` the participants of `row`'s record `id` (its `person_id`, the first, is
    /// one already): adds the missing ones and removes the others, one request each (v1 has no
    /// batch). A new record needs no read: Pipedrive made its person a participant. A person
    /// Pipedrive refuses to add (it says so with a 400) refuses the record, naming the field.
    async fn set_participants(
        &self,
        row: &PipedriveObject,
        record: &Record,
        id: u64,
        created: bool,
        people: &[u64],
    ) -> ConnectorResult<Result<(), RecordRejection>> {
        let path = format!("/v1/{}/{id}/participants", row.path);
        let current: Vec<(u64, u64)> = if created {
            people.first().map(|p| vec![(0, *p)]).unwrap_or_default()
        } else {
            crate::participants::list(&self.client, &path).await?
        };
        for &(participant, person) in &current {
            if !people.contains(&person) {
                let path = format!("{path}/{participant}");
                let response = self.client.delete(&path).await?;
                // 404: gone already (a resent delete).
                if !response.is_success() && response.status.as_u16() != 404 {
                    let endpoint = format!("DELETE {}", endpoint_path(&path));
                    return Err(self.client.error_for(&endpoint, &response));
                }
            }
        }
        for &person in people {
            if current.iter().any(|(_, p)| *p == person) {
                continue;
            }
            let body = json!({"person_id": person});
            let response = self.client.write(Method::POST, &path, &body).await?;
            if response.is_success() {
                continue;
            }
            if response.status.as_u16() == 400 {
                // Added by a request whose answer was lost, or refused: the list says which.
                let now = crate::participants::list(&self.client, &path).await?;
                if now.iter().any(|(_, p)| *p == person) {
                    continue;
                }
                let field = row
                    .links
                    .iter()
                    .find(|l| l.participants)
                    .map_or("links", |l| l.canonical);
                return Ok(Err(RecordRejection {
                    source_id: record.source_id.clone(),
                    code: PARTICIPANT_REFUSED.to_owned(),
                    reason: format!(
                        "field `{field}`: Pipedrive refused to add a person to the {} as a \
                         participant (the {} itself was written)",
                        row.noun, row.noun
                    ),
                }));
            }
            let endpoint = format!("POST {}", endpoint_path(&path));
            return Err(self.client.error_for(&endpoint, &response));
        }
        Ok(Ok(()))
    }

    /// The Pipedrive id of each distinct `target` record among `source_ids` (those found).
    async fn target_ids(
        &self,
        target: ObjectType,
        source_ids: impl Iterator<Item = String>,
    ) -> ConnectorResult<HashMap<String, u64>> {
        let mut targets: Vec<String> = source_ids.collect();
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        targets.sort();
        targets.dedup();
        match self.source_key(target, false).await? {
            Some(target_key) => self.resolve(target, &target_key, &targets).await,
            None => Ok(HashMap::new()),
        }
    }

    /// The source id of each `target` record id (from the cache, else read back).
    async fn source_ids_of(
        &self,
        target: ObjectType,
        target_ids: &[u64],
    ) -> ConnectorResult<HashMap<u64, String>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        for id in target_ids {
            match self.ids.source_id(target, id) {
                Some(sid) => {
                    out.insert(*id, sid);
                }
                None => missing.push(*id),
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(out);
        }
        let Some(target_key) = self.source_key(target, false).await? else {
            return Ok(out);
        };
        for raw in self.fetch(target, &target_key, &missing).await? {
            if let (Some(id), Some(sid)) = (
                mapping::id_of(&raw),
                mapping::custom_text(&raw, &target_key),
            ) {
                self.ids.remember(target, &sid, id);
                out.insert(id, sid);
            }
        }
        Ok(out)
    }
}

/// The lock stripe of a note parent.
fn stripe_of(parent: (ObjectType, u64)) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    parent.0.as_str().hash(&mut h);
    parent.1.hash(&mut h);
    (h.finish() % NOTE_STRIPES as u64) as usize
}

/// A note keyed for the sink: its parents' Pipedrive ids and its key, or its refusal.
type KeyedNote = Result<(Vec<(&'static str, Option<u64>)>, NoteKey), RecordRejection>;

/// Notes (v1): Pipedrive gives a note no custom field, so a note is found again by its natural
/// key (`crate::notes::NoteKey`): one listing per key parent, then a `PUT` or a `POST`.
impl PipedriveSink {
    /// Resolves each note's parents to Pipedrive ids (one pass per parent object) and keys it;
    /// a note without a parent or an original time, or with parents Pipedrive cannot hold, is
    /// refused.
    async fn key_notes(
        &self,
        row: &PipedriveObject,
        records: &[&Record],
    ) -> ConnectorResult<Vec<KeyedNote>> {
        let mut targets: HashMap<ObjectType, HashMap<String, u64>> = HashMap::new();
        for target in row.targets() {
            let sids = records
                .iter()
                .flat_map(|r| target_source_ids(row, r, target));
            targets.insert(target, self.target_ids(target, sids).await?);
        }
        Ok(records
            .iter()
            .map(|record| {
                let linked = linked_ids(row, record, &targets)?.fields;
                let not_keyed = |what: &str| RecordRejection {
                    source_id: record.source_id.clone(),
                    code: notes::NOTE_NOT_KEYED.to_owned(),
                    reason: format!(
                        "field `{what}` is empty: Pipedrive notes carry no source id, so ferry \
                         finds a note by its first parent and original time; not written"
                    ),
                };
                let parent = notes::key_parent(&linked)
                    .ok_or_else(|| not_keyed(ferry_core::field::PARENTS))?;
                let key = notes::key_of_record(record, parent)
                    .ok_or_else(|| not_keyed(ferry_core::field::TIMESTAMP))?;
                Ok((linked, key))
            })
            .collect())
    }

    /// Finds the Pipedrive note of each keyed note: the notes of each key parent are listed
    /// once, a few parents at a time, and paired by the key ([`notes::pair`]), notes this run
    /// already matched to other source ids left out. Also returns each match's listed note.
    async fn match_notes(
        &self,
        records: &[&Record],
        keyed: &[KeyedNote],
    ) -> ConnectorResult<Vec<Option<(u64, Json)>>> {
        let object = ObjectType::NOTES;
        let mut by_parent: HashMap<(ObjectType, u64), Vec<usize>> = HashMap::new();
        for (i, k) in keyed.iter().enumerate() {
            if let Ok((_, key)) = k {
                by_parent.entry(key.parent).or_default().push(i);
            }
        }
        let listings: Vec<_> = by_parent
            .keys()
            .map(|parent| async move {
                let held = notes::of_parent(&self.client, *parent).await?;
                Ok::<_, ConnectorError>((*parent, held))
            })
            .collect();
        let listed = stream::iter(listings)
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut out: Vec<Option<(u64, Json)>> = vec![None; keyed.len()];
        for answer in listed {
            let (parent, held) = answer?;
            let at = &by_parent[&parent];
            let ours: HashSet<&str> = at.iter().map(|&i| records[i].source_id.as_str()).collect();
            let wanted: Vec<(NoteKey, Option<u64>)> = at
                .iter()
                .filter_map(|&i| {
                    let key = keyed[i].as_ref().ok()?.1.clone();
                    Some((key, self.ids.sink_id(object, &records[i].source_id)))
                })
                .collect();
            // Notes this run wrote or matched for other source ids are theirs.
            let claimed: HashSet<u64> = held
                .iter()
                .filter(|(id, _, _)| {
                    self.ids
                        .source_id(object, id)
                        .is_some_and(|sid| !ours.contains(sid.as_str()))
                })
                .map(|(id, _, _)| *id)
                .collect();
            let keys: Vec<(u64, NoteKey)> =
                held.iter().map(|(id, k, _)| (*id, k.clone())).collect();
            let paired = notes::pair(&wanted, &keys, &claimed);
            for (&i, found) in at.iter().zip(paired) {
                out[i] = found.and_then(|id| {
                    let raw = held.iter().find(|(h, _, _)| *h == id)?.2.clone();
                    Some((id, raw))
                });
            }
        }
        Ok(out)
    }

    /// Writes one chunk of notes: keyed, matched, then each updated (`PUT /v1/notes/{id}`) or
    /// created (`POST /v1/notes`), a few at a time.
    async fn write_notes(
        &self,
        row: &'static PipedriveObject,
        chunk: Vec<(usize, &Record)>,
    ) -> ConnectorResult<Vec<Answer>> {
        let records: Vec<&Record> = chunk.iter().map(|(_, r)| *r).collect();
        let keyed = self.key_notes(row, &records).await?;
        // Held until every note of the chunk is written: listing, pairing and writing the notes
        // of one parent is one step for the other batches. Taken in stripe order: no deadlock.
        let mut stripes: Vec<usize> = keyed
            .iter()
            .filter_map(|k| k.as_ref().ok())
            .map(|(_, key)| stripe_of(key.parent))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut _turns = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            _turns.push(Arc::clone(&self.note_stripes[stripe]).lock_owned().await);
        }
        let matched = self.match_notes(&records, &keyed).await?;
        let mut writes = Vec::with_capacity(chunk.len());
        for (((i, record), keyed), matched) in chunk.into_iter().zip(keyed).zip(matched) {
            writes.push(async move {
                let (linked, key) = match keyed {
                    Ok(k) => k,
                    Err(rejection) => return Ok((i, Err(rejection))),
                };
                let existing = matched.map(|(id, _)| id);
                let result = self
                    .write_note(row, record, &linked, &key, existing)
                    .await?;
                Ok::<Answer, ConnectorError>((i, result))
            });
        }
        stream::iter(writes)
            .buffered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Writes one note: `PUT` when it was matched (a `POST` if it vanished since), else `POST`
    /// with its original time. After a failure that leaves open whether the `POST` landed, the
    /// parent's notes are listed again and an unclaimed note with the same key is the one
    /// created.
    async fn write_note(
        &self,
        row: &PipedriveObject,
        record: &Record,
        linked: &[(&'static str, Option<u64>)],
        key: &NoteKey,
        existing: Option<u64>,
    ) -> ConnectorResult<Result<Written, RecordRejection>> {
        let object = row.object;
        let mut target = existing;
        loop {
            let body = match notes::to_body(record, linked, target.is_none()) {
                Ok(body) => body,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let (method, path) = match target {
                Some(id) => (Method::PUT, format!("{}/{id}", notes::PATH)),
                None => (Method::POST, notes::PATH.to_owned()),
            };
            let response = if target.is_some() {
                self.client.write(method.clone(), &path, &body).await?
            } else {
                let landed = || async {
                    let held = notes::of_parent(&self.client, key.parent).await?;
                    Ok(held
                        .into_iter()
                        .find(|(id, k, _)| k == key && self.ids.source_id(object, id).is_none())
                        .map(|(id, _, _)| id))
                };
                match self.client.create(&path, &body, landed).await? {
                    Sent::Response(response) => response,
                    Sent::Landed(id) => {
                        self.ids.remember(object, &record.source_id, id);
                        return Ok(Ok(Written {
                            sink_id: id.to_string(),
                            created: true,
                        }));
                    }
                }
            };
            let status = response.status.as_u16();
            if response.is_success() {
                let endpoint = format!("{method} {}", endpoint_path(&path));
                let answer: Json = response.json(VENDOR, &endpoint)?;
                let id = answer
                    .pointer("/data/id")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint,
                        detail: "a successful write without `data.id`".into(),
                    })?;
                self.ids.remember(object, &record.source_id, id);
                return Ok(Ok(Written {
                    sink_id: id.to_string(),
                    created: target.is_none(),
                }));
            }
            if status == 404 && target.is_some() {
                // Deleted since it was listed: create it again.
                target = None;
                continue;
            }
            if matches!(status, 400 | 404 | 409 | 410 | 422) {
                let (code, reason) = rejection_reason(row, &response, &self.fields.get(object));
                return Ok(refusal(record, &code, reason));
            }
            return Err(self
                .client
                .error_for(&format!("{method} {}", endpoint_path(&path)), &response));
        }
    }

    /// The notes `sent` (as handed to `upsert`) as Pipedrive holds them, found by their key
    /// as the sink found them, in canonical form under each sent note's source id, parents
    /// mapped back to source ids. Notes not found are absent.
    async fn read_back_notes(&self, sent: &[Record]) -> ConnectorResult<Vec<Record>> {
        let row = objects::binding(ObjectType::NOTES)?;
        let records: Vec<&Record> = sent.iter().collect();
        let keyed = self.key_notes(row, &records).await?;
        let matched = self.match_notes(&records, &keyed).await?;
        let found: Vec<(&Record, Json)> = records
            .iter()
            .zip(matched)
            .filter_map(|(r, m)| Some((*r, m?.1)))
            .collect();
        let mut known: HashMap<(ObjectType, u64), String> = HashMap::new();
        for (target, vendor) in notes::PARENT_FIELDS {
            let ids: Vec<u64> = found
                .iter()
                .filter_map(|(_, raw)| raw.get(vendor).and_then(Json::as_u64))
                .collect();
            let sids = self.source_ids_of(target, &ids).await?;
            known.extend(sids.into_iter().map(|(id, sid)| ((target, id), sid)));
        }
        let source_id_of = |target: ObjectType, id: u64| {
            known.get(&(target, id)).cloned().unwrap_or_else(|| {
                let noun = objects::binding(target).map_or("record", |t| t.noun);
                format!("pipedrive-{noun}-{id}")
            })
        };
        let mut out = Vec::with_capacity(found.len());
        for (record, raw) in found {
            if let Some(id) = mapping::id_of(&raw) {
                self.ids.remember(ObjectType::NOTES, &record.source_id, id);
            }
            match notes::to_record(&raw, record.source_id.clone(), source_id_of) {
                Ok(back) => out.push(back),
                Err(rejection) => {
                    tracing::warn!(vendor = VENDOR, object = %ObjectType::NOTES, source_id = %rejection.source_id, "read-back note has unreadable values");
                }
            }
        }
        tracing::debug!(vendor = VENDOR, object = %ObjectType::NOTES, asked = sent.len(), found = out.len(), "read back");
        Ok(out)
    }
}

fn refusal(record: &Record, code: &str, reason: String) -> Result<Written, RecordRejection> {
    Err(RecordRejection {
        source_id: record.source_id.clone(),
        code: code.to_owned(),
        reason,
    })
}

/// The code of a record one of whose persons Pipedrive refused to add as a participant.
pub const PARTICIPANT_REFUSED: &str = "PARTICIPANT_REFUSED";

/// The code of a record with links Pipedrive cannot hold: several to one object where one id
/// field holds them and no participants hold more, or one to an object the field cannot
/// point at.
pub const LINK_NOT_HELD: &str = "LINK_NOT_HELD";

/// The source ids of the `target` records `record` points at, through the row's references
/// and links.
fn target_source_ids(row: &PipedriveObject, record: &Record, target: ObjectType) -> Vec<String> {
    let mut out = Vec::new();
    for reference in row.references.iter().filter(|r| r.target == target) {
        if let Some(sid) = record.text(reference.canonical) {
            out.push(sid.to_owned());
        }
    }
    for link in row.links {
        if let Some(Value::Links(links)) = record.get(link.canonical) {
            out.extend(
                links
                    .iter()
                    .filter(|l| l.object == target)
                    .map(|l| l.id.clone()),
            );
        }
    }
    out
}

/// What a record links to, resolved to Pipedrive ids.
#[derive(Debug, Default, PartialEq)]
struct Linked {
    /// The Pipedrive id for each top-level id field of the row's references and links
    /// (`None`: no target, cleared).
    fields: Vec<(&'static str, Option<u64>)>,
    /// Of a link field held as participants (a deal's persons): every target, the id field's
    /// first.
    participants: Option<Vec<u64>>,
}

/// What `record` links to, from `targets` (per object, source id → Pipedrive id). A target not
/// found refuses the record, naming the field; so do links Pipedrive cannot hold (two of one
/// object where no participants hold more, or an object the field cannot point at).
fn linked_ids(
    row: &PipedriveObject,
    record: &Record,
    targets: &HashMap<ObjectType, HashMap<String, u64>>,
) -> Result<Linked, RecordRejection> {
    let found =
        |target: ObjectType, sid: &str| targets.get(&target).and_then(|m| m.get(sid)).copied();
    let mut linked = Vec::new();
    let mut participants = None;
    for reference in row.references {
        let id = match record.get(reference.canonical) {
            Some(Value::Reference(sid)) | Some(Value::Text(sid)) => {
                let Some(id) = found(reference.target, sid) else {
                    return Err(RecordRejection {
                        source_id: record.source_id.clone(),
                        code: reference.missing_code.to_owned(),
                        reason: reference.missing_reason.to_owned(),
                    });
                };
                Some(id)
            }
            _ => None,
        };
        linked.push((reference.vendor, id));
    }
    for link in row.links {
        let links: &[ferry_core::model::Link] = match record.get(link.canonical) {
            Some(Value::Links(links)) => links,
            _ => &[],
        };
        if let Some(other) = links.iter().find(|l| link.vendor_of(l.object).is_none()) {
            return Err(RecordRejection {
                source_id: record.source_id.clone(),
                code: LINK_NOT_HELD.to_owned(),
                reason: format!(
                    "field `{}` links to {}, which Pipedrive cannot hold there; not written",
                    link.canonical, other.object
                ),
            });
        }
        if let (true, [(target, vendor)]) = (link.participants, link.targets) {
            let mut ids = Vec::with_capacity(links.len());
            for l in links {
                match found(*target, &l.id) {
                    Some(id) if ids.contains(&id) => {}
                    Some(id) => ids.push(id),
                    None => {
                        return Err(Resolver::<u64>::unresolved(
                            &record.source_id,
                            link.canonical,
                            *target,
                        ));
                    }
                }
            }
            linked.push((*vendor, ids.first().copied()));
            participants = Some(ids);
            continue;
        }
        for &(target, vendor) in link.targets {
            let mut of_target = links.iter().filter(|l| l.object == target);
            let id = match (of_target.next(), of_target.next()) {
                (None, _) => None,
                (Some(one), None) => match found(target, &one.id) {
                    Some(id) => Some(id),
                    None => {
                        return Err(Resolver::<u64>::unresolved(
                            &record.source_id,
                            link.canonical,
                            target,
                        ));
                    }
                },
                (Some(_), Some(_)) => {
                    return Err(RecordRejection {
                        source_id: record.source_id.clone(),
                        code: LINK_NOT_HELD.to_owned(),
                        reason: format!(
                            "field `{}` has several links to {target} and Pipedrive holds one \
                             (`{vendor}`); not written",
                            link.canonical
                        ),
                    });
                }
            };
            linked.push((vendor, id));
        }
    }
    Ok(Linked {
        fields: linked,
        participants,
    })
}

/// A rejection's code and reason from Pipedrive's error body: the error code and the names of
/// the body fields the message mentions, never the message itself (it can quote values).
fn rejection_reason(
    row: &PipedriveObject,
    response: &HttpResponse,
    map: &FieldMap,
) -> (String, String) {
    let body: Json = serde_json::from_slice(&response.body).unwrap_or(Json::Null);
    let code = body
        .get("code")
        .and_then(Json::as_str)
        .map(clean_code)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP_{}", response.status.as_u16()));
    let message = body.get("error").and_then(Json::as_str).unwrap_or("");
    let words: HashSet<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let mut named: Vec<String> = row
        .body_fields
        .iter()
        .filter(|(k, _)| words.contains(k))
        .map(|(k, canonical)| format!("{k} ({canonical})"))
        .collect();
    // A mapped custom field is named by its key (`custom_fields.<key>` in the message).
    named.extend(
        map.iter()
            .filter(|b| mapping::is_custom_key(&b.vendor) && words.contains(b.vendor.as_ref()))
            .map(|b| format!("custom_fields.{} ({})", b.vendor, b.canonical)),
    );
    let reason = if named.is_empty() {
        format!(
            "Pipedrive refused the record (HTTP {}; no field named)",
            response.status.as_u16()
        )
    } else {
        format!("Pipedrive refused field {}", named.join(", "))
    };
    (code, reason)
}

#[async_trait]
impl Sink for PipedriveSink {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The account's company id (`GET /v1/users/me`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// The company's users, active or not (`GET /v1/users`).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client).await
    }

    /// The deal pipelines and their stages (`GET /api/v2/pipelines`, `GET /api/v2/stages`).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object, self.settings.page_size).await
    }

    /// The fields of `object` from Pipedrive's fields API (`GET /api/v2/{personFields|
    /// organizationFields}`), custom ones by their 40-character keys.
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        let fields = crate::fields::describe(&self.client, object).await?;
        self.described.keep(object, fields.clone());
        Ok(fields)
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        crate::fields::check_bindings(object, bindings)?;
        let row = objects::binding(object)?;
        self.fields.map(object, &row.standard_map(), bindings);
        Ok(())
    }

    /// The kind of the field [`Self::create_field`] makes for `kind`: a checkbox becomes text.
    fn created_kind(&self, kind: FieldKind) -> Option<FieldKind> {
        mapping::field_type_for(kind).map(|t| mapping::kind_of("", t))
    }

    /// Creates a custom field (`POST /api/v2/{personFields|organizationFields}`; admins only):
    /// text as `varchar`, numbers as `double`, dates as `date`, picklists as `enum` with the
    /// given labels. Pipedrive has no checkbox and no date-and-time custom field.
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        self.described.forget(object);
        crate::fields::create(&self.client, object, field).await
    }

    /// From the object's row: Pipedrive keeps a person's marketing status only while it has a
    /// valid email address.
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        let row = objects::binding(object)?;
        let stored = row.stored_fields(&self.fields.get(object));
        let mut limits = row.limits();
        // A deal written without a currency gets the user's default (learned by `survey`).
        if let Some(Some(currency)) = self.default_currency.get()
            && object == ObjectType::DEALS
            && stored.iter().any(|f| f == field::CURRENCY)
        {
            limits.push(FieldLimit::unset_reads_as(
                field::CURRENCY,
                currency.clone(),
            ));
        }
        limits.retain(|l| l.unset_reads_as.is_none() || stored.contains(&l.field));
        Ok(Capability {
            batch_size: self.settings.batch_size,
            read_back_size: MAX_IDS_PER_LIST,
            stored,
            required: row.required.iter().map(|f| (*f).to_owned()).collect(),
            opt_out_needs_email: row.opt_out.as_ref().is_some_and(|o| o.needs_email),
            limits,
        })
    }

    /// For deals: the token user's default currency, which Pipedrive gives a deal written
    /// without one (read once, `GET /v1/users/me`).
    async fn survey(&self, object: ObjectType) -> ConnectorResult<()> {
        if object == ObjectType::DEALS {
            self.default_currency
                .get_or_try_init(|| self.learn_default_currency())
                .await?;
        }
        Ok(())
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client
            .get_small("/api/v2/persons", &[("limit", "1")])
            .await?;
        Ok(())
    }

    /// Resolves (or creates) the source-id custom field, and that of each object a reference
    /// targets (contacts need the organizations' one to resolve their company references).
    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        let row = objects::binding(object)?;
        if row.source_id_field {
            self.source_key(object, true).await?;
        }
        for target in row.targets() {
            self.source_key(target, true).await?;
        }
        Ok(())
    }

    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let row = objects::binding(object)?;
        if !row.source_id_field {
            let write = |chunk| self.write_notes(row, chunk);
            return batch::upsert_in_batches(
                VENDOR,
                object,
                records,
                self.settings.batch_size,
                write,
            )
            .await;
        }
        let key = self
            .source_key(object, true)
            .await?
            .ok_or_else(|| ConnectorError::Setup {
                vendor: VENDOR,
                detail: "the source-id custom field could not be created".into(),
            })?;
        let write = |chunk| self.write_chunk(object, &key, chunk);
        let outcomes =
            batch::upsert_in_batches(VENDOR, object, records, self.settings.batch_size, write)
                .await?;
        tracing::debug!(
            vendor = VENDOR,
            %object,
            records = records.len(),
            created = outcomes.iter().filter(|o| o.result.as_ref().is_ok_and(|w| w.created)).count(),
            rejected = outcomes.iter().filter(|o| o.result.is_err()).count(),
            "upserted"
        );
        Ok(outcomes)
    }

    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        if !objects::binding(object)?.source_id_field {
            return Err(ConnectorError::Unsupported {
                vendor: VENDOR,
                detail: format!(
                    "{object} carry no source id in Pipedrive: they are read back by what was \
                     sent (parent and original time), through `read_back_sent`"
                ),
            });
        }
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(key) = self.source_key(object, false).await? else {
            return Ok(Vec::new()); // no source-id field: nothing was ever written
        };
        let wanted: HashSet<&str> = source_ids.iter().map(String::as_str).collect();
        // Cached ids first (this run wrote them); whatever they do not confirm is searched.
        let cached: Vec<u64> = source_ids
            .iter()
            .filter_map(|s| self.ids.sink_id(object, s))
            .collect();
        let mut raws: HashMap<String, Json> = HashMap::new();
        let keep = |raw: Json, raws: &mut HashMap<String, Json>| {
            if let Some(sid) = mapping::custom_text(&raw, &key)
                && wanted.contains(sid.as_str())
                && !raws.contains_key(&sid)
            {
                raws.insert(sid, raw);
            }
        };
        let mut fetched = self.fetch(object, &key, &cached).await?;
        fetched.sort_by_key(|r| mapping::id_of(r).unwrap_or(u64::MAX));
        for raw in fetched {
            keep(raw, &mut raws);
        }
        let missing: Vec<String> = source_ids
            .iter()
            .filter(|s| !raws.contains_key(s.as_str()))
            .cloned()
            .collect();
        // Searched: the ids the cache named whose record no longer carries them (deleted or
        // edited since), and those it never saw unless the object is complete (then absent).
        // The resolver only sorts them here; `find` searches them all in one pass.
        let mut search: Vec<String> = missing
            .iter()
            .filter(|s| self.ids.sink_id(object, s).is_some())
            .cloned()
            .collect();
        let unseen = |unseen: Vec<String>| {
            search.extend(unseen);
            async { Ok(HashMap::new()) }
        };
        self.ids
            .resolve(object, missing.iter().map(String::as_str), unseen)
            .await?;
        if !search.is_empty() {
            let found = self.find(object, &key, &search).await?;
            let mut ids: Vec<u64> = found.values().copied().collect();
            ids.sort_unstable();
            let mut fetched = self.fetch(object, &key, &ids).await?;
            fetched.sort_by_key(|r| mapping::id_of(r).unwrap_or(u64::MAX));
            for raw in fetched {
                keep(raw, &mut raws);
            }
        }
        // The participants of each record whose links they hold (a deal's persons): one read
        // per record, as Pipedrive has no batch read of them.
        let row = objects::binding(object)?;
        let mut people: HashMap<String, Vec<u64>> = HashMap::new();
        if row.links.iter().any(|l| l.participants) {
            let reads: Vec<_> = raws
                .iter()
                .filter_map(|(sid, raw)| Some((sid.clone(), mapping::id_of(raw)?)))
                .map(|(sid, id)| async move {
                    let path = format!("/v1/{}/{id}/participants", row.path);
                    let list = crate::participants::list(&self.client, &path).await?;
                    Ok::<_, ConnectorError>((sid, list))
                })
                .collect();
            let answers = stream::iter(reads)
                .buffer_unordered(self.settings.concurrency)
                .collect::<Vec<_>>()
                .await;
            for answer in answers {
                let (sid, list) = answer?;
                people.insert(sid, list.into_iter().map(|(_, person)| person).collect());
            }
        }
        // Each target's ids (references and links) mapped back to source ids.
        let mut known: HashMap<(ObjectType, u64), String> = HashMap::new();
        for target in row.targets() {
            let fields = row
                .references
                .iter()
                .filter(|r| r.target == target)
                .map(|r| r.vendor)
                .chain(row.links.iter().filter_map(|l| l.vendor_of(target)));
            let fields: Vec<&str> = fields.collect();
            let mut target_ids: Vec<u64> = raws
                .values()
                .flat_map(|r| {
                    fields
                        .iter()
                        .filter_map(|f| r.get(*f).and_then(Json::as_u64))
                })
                .collect();
            if row
                .links
                .iter()
                .any(|l| l.participants && l.vendor_of(target).is_some())
            {
                target_ids.extend(people.values().flatten());
            }
            let found = self.source_ids_of(target, &target_ids).await?;
            known.extend(found.into_iter().map(|(id, sid)| ((target, id), sid)));
        }
        let source_id_of = |target: ObjectType, id: u64| {
            known.get(&(target, id)).cloned().unwrap_or_else(|| {
                // A record ferry did not write: a reference that matches no source id.
                let noun = objects::binding(target).map_or("record", |t| t.noun);
                format!("pipedrive-{noun}-{id}")
            })
        };
        let map = self.fields.get(object);
        let mut out = Vec::with_capacity(raws.len());
        for (sid, raw) in raws {
            let participants = people.remove(&sid).unwrap_or_default();
            match mapping::to_record(row, &raw, sid, source_id_of, &map) {
                Ok(mut record) => {
                    for link in row.links.iter().filter(|l| l.participants) {
                        crate::participants::add_to(&mut record, link, &participants, source_id_of);
                    }
                    out.push(record);
                }
                Err(rejection) => {
                    tracing::warn!(vendor = VENDOR, %object, source_id = %rejection.source_id, "read-back record has unreadable values");
                }
            }
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = out.len(), "read back");
        Ok(out)
    }

    /// Notes: found by their natural key (parent and original time) instead of a source id.
    async fn read_back_sent(
        &self,
        object: ObjectType,
        sent: &[Record],
    ) -> ConnectorResult<Vec<Record>> {
        if objects::binding(object)?.source_id_field {
            let ids: Vec<String> = sent.iter().map(|r| r.source_id.clone()).collect();
            return self.read_back(object, &ids).await;
        }
        self.read_back_notes(sent).await
    }

    /// Pipedrive cannot filter a listing by a custom field, so this pages through every record
    /// of the type with only the source-id field, 500 (the largest page) per request. Notes:
    /// `None`, as nothing tells ferry's notes from others.
    /// `GET /api/v2/{path}?custom_fields=<key>&limit=500`, cursor by cursor: the source ids
    /// the source-id field holds (records without one are not listed). Notes carry none: no
    /// page lists any.
    async fn source_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let row = objects::binding(object)?;
        if !row.source_id_field {
            return Ok(IdPage::default());
        }
        let Some(key) = self.source_key(object, false).await? else {
            return Ok(IdPage::default()); // no source-id field: no record carries one
        };
        let path = format!("/api/v2/{}", row.path);
        let mut query = vec![("limit", "500"), ("custom_fields", key.as_str())];
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        let body = self.client.get(&path, &query).await?;
        let ids = body
            .get("data")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|raw| mapping::custom_text(raw, &key))
            .filter(|s| !s.is_empty())
            .collect();
        let next = body
            .pointer("/additional_data/next_cursor")
            .and_then(Json::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(IdPage { ids, next })
    }

    /// Finds the records by the source-id field only (an exact search per id, confirmed by
    /// reading the candidates), then `DELETE /api/v2/{path}/{id}`, one request each, a few at
    /// a time. Pipedrive marks the record deleted and purges it 30 days later (restorable
    /// until then): its only removal through the API, so `Archive` and `Delete` make the same
    /// call, reported as deleted. Notes carry no source id in Pipedrive (they are matched by
    /// parent and time on write), so a sync that removes notes is refused before it starts.
    async fn remove(
        &self,
        object: ObjectType,
        source_ids: &[String],
        _how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        let row = objects::binding(object)?;
        if !row.source_id_field {
            return Err(ConnectorError::Unsupported {
                vendor: VENDOR,
                detail: format!(
                    "Pipedrive {object} carry no source id, so ferry cannot find the ones deleted in \
                     the source: leave {object} out of `[migration] objects` for a sync with \
                     `[sync] deletes`, or keep \"ignore\""
                ),
            });
        }
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = match self.source_key(object, false).await? {
            Some(key) => self.find(object, &key, source_ids).await?,
            None => HashMap::new(), // no source-id field: nothing was ever written
        };
        let deletes: Vec<_> = found
            .values()
            .map(|id| {
                let path = format!("/api/v2/{}/{id}", row.path);
                async move {
                    let response = self.client.delete(&path).await?;
                    let status = response.status.as_u16();
                    let result = if response.is_success() {
                        Ok(Removed::Deleted)
                    } else if status == 404 {
                        Ok(Removed::Absent) // deleted meanwhile
                    } else if status == 403 || status == 400 {
                        Err(format!("HTTP_{status}"))
                    } else {
                        let endpoint = format!("DELETE {}", endpoint_path(&path));
                        return Err(self.client.error_for(&endpoint, &response));
                    };
                    Ok::<_, ConnectorError>((*id, result))
                }
            })
            .collect();
        let answers = stream::iter(deletes)
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut done: HashMap<u64, Result<Removed, String>> = HashMap::new();
        for answer in answers {
            let (id, result) = answer?;
            done.insert(id, result);
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = found.len(), "deleted");
        Ok(source_ids
            .iter()
            .map(|sid| {
                let result = match found.get(sid).and_then(|id| done.get(id)) {
                    None => Ok(Removed::Absent),
                    Some(Ok(removed)) => Ok(*removed),
                    Some(Err(code)) => Err(RecordRejection {
                        source_id: sid.clone(),
                        code: code.clone(),
                        reason: format!("Pipedrive refused to delete the {}", row.noun),
                    }),
                };
                RemoveOutcome {
                    source_id: sid.clone(),
                    result,
                }
            })
            .collect())
    }

    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        if !objects::binding(object)?.source_id_field {
            return Ok(None);
        }
        let Some(key) = self.source_key(object, false).await? else {
            return Ok(Some(0)); // no source-id field: no record carries one
        };
        let path = format!("/api/v2/{}", objects::binding(object)?.path);
        let mut count = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "500"), ("custom_fields", key.as_str())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.as_str()));
            }
            let body = self.client.get(&path, &query).await?;
            count += body
                .get("data")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter(|raw| mapping::custom_text(raw, &key).is_some_and(|s| !s.is_empty()))
                .count() as u64;
            let next = body
                .pointer("/additional_data/next_cursor")
                .and_then(Json::as_str)
                .filter(|c| !c.is_empty());
            match next {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
                Some(_) => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET {path}"),
                        detail: "the next-page cursor equals the current one".into(),
                    });
                }
                None => return Ok(Some(count)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::SecretRef;
    use secrecy::SecretString;

    #[test]
    fn links_resolve_per_target_and_what_pipedrive_cannot_hold_refuses_the_record() {
        let row = objects::binding(ObjectType::DEALS).unwrap();
        let link = |object, id: &str| ferry_core::model::Link {
            object,
            id: id.into(),
        };
        let person = |id| link(ObjectType::CONTACTS, id);
        let targets = HashMap::from([
            (
                ObjectType::COMPANIES,
                HashMap::from([("co-1".to_owned(), 7)]),
            ),
            (
                ObjectType::CONTACTS,
                HashMap::from([("p-1".to_owned(), 9), ("p-2".to_owned(), 4)]),
            ),
        ]);
        let mut deal = Record::new(ObjectType::DEALS, "d-1");
        deal.set(ferry_core::field::COMPANY, Value::Reference("co-1".into()));
        // The first person goes in `person_id`; all of them, once each, are the participants.
        deal.set(
            ferry_core::field::CONTACTS,
            Value::Links(vec![person("p-1"), person("p-2"), person("p-1")]),
        );
        assert_eq!(
            linked_ids(row, &deal, &targets).unwrap(),
            Linked {
                fields: vec![("org_id", Some(7)), ("person_id", Some(9))],
                participants: Some(vec![9, 4]),
            }
        );
        assert_eq!(
            target_source_ids(row, &deal, ObjectType::CONTACTS),
            ["p-1", "p-2", "p-1"]
        );
        // No contact: `person_id` is cleared, and so are the participants.
        deal.fields.remove(ferry_core::field::CONTACTS);
        assert_eq!(
            linked_ids(row, &deal, &targets).unwrap(),
            Linked {
                fields: vec![("org_id", Some(7)), ("person_id", None)],
                participants: Some(vec![]),
            }
        );
        let refused = |links: Vec<ferry_core::model::Link>| {
            let mut d = deal.clone();
            d.set(ferry_core::field::CONTACTS, Value::Links(links));
            linked_ids(row, &d, &targets).unwrap_err()
        };
        let elsewhere = refused(vec![link(ObjectType::COMPANIES, "co-1")]);
        assert_eq!(elsewhere.code, LINK_NOT_HELD);
        assert!(
            elsewhere.reason.contains("companies"),
            "{}",
            elsewhere.reason
        );
        let unknown = refused(vec![person("p-1"), person("p-3")]);
        assert_eq!(unknown.code, ferry_core::resolver::UNRESOLVED_REFERENCE);
        assert!(!unknown.reason.contains("p-3"), "{}", unknown.reason);
        deal.set(ferry_core::field::COMPANY, Value::Reference("co-2".into()));
        assert_eq!(
            linked_ids(row, &deal, &targets).unwrap_err().code,
            "COMPANY_NOT_FOUND"
        );
    }

    /// Where to click comes from the object's row: persons and organizations each name their
    /// own section of Pipedrive's settings.
    #[test]
    fn a_source_id_field_this_token_may_not_create_is_advice_naming_the_settings_section() {
        let config = PipedriveConfig {
            base_url: Some("http://127.0.0.1:9".into()),
            ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from("t")))
        };
        let sink = PipedriveSink::new(config, "sink").expect("sink");
        for (object, section) in [
            (ObjectType::CONTACTS, "Data fields → Person →"),
            (ObjectType::COMPANIES, "Data fields → Organization →"),
        ] {
            let row = objects::binding(object).unwrap();
            let path = format!("/api/v2/{}", row.fields_path);
            let forbidden = HttpResponse {
                status: reqwest::StatusCode::FORBIDDEN,
                headers: reqwest::header::HeaderMap::new(),
                body: br#"{"success": false, "error": "forbidden"}"#.to_vec().into(),
            };
            match sink.created_field_code(row, &path, forbidden) {
                Err(ConnectorError::Setup { detail, .. }) => {
                    assert!(detail.contains(section), "{detail}");
                    assert!(detail.contains(row.path), "{detail}");
                }
                other => panic!("{object}: {other:?}"),
            }
        }
    }
}
