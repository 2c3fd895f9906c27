//! The route handlers: CRM objects v3 (list, read, write, batch), properties v3, and the v4
//! association batch read.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::Emulator;
use super::links;
use super::records::{self, Obj};
use super::respond::{error, error_with, too_many_inputs, validation};
use super::store::{Kind, ObjectStore, PropDef, Rec, format_timestamp, timestamp};
use crate::timestamp::AsText;

/// HubSpot's batch limit for CRM object endpoints.
pub(crate) const MAX_BATCH: usize = 100;
/// HubSpot's batch-read limit for v4 associations (since 2025-02-10).
pub(crate) const MAX_ASSOCIATION_BATCH: usize = 1000;
/// Associations listed per object in one answer ("Limit 500 per call"); `paging` leads on.
pub(crate) const ASSOCIATION_PAGE: usize = 500;
/// HubSpot's largest list page.
pub(crate) const MAX_LIMIT: usize = 100;
/// The most characters a text property value may hold when written through the CRM ("the
/// character limit is 65,536 characters", HubSpot's knowledge base on property field types).
/// The error code HubSpot gives for a longer value is UNCONFIRMED; `VALUE_TOO_LONG` here.
pub(crate) const MAX_TEXT_VALUE: usize = 65_536;
/// The list page size when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 10;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Query strings and cursors

/// A decoded query string; repeated keys are kept.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Params {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            urlencoding::decode(&s).map(|c| c.into_owned()).unwrap_or(s)
        };
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), decode(v))
            })
            .collect();
        Params(pairs)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated item of every `key` parameter; `None` when the key is absent.
    pub(crate) fn list(&self, key: &str) -> Option<Vec<&str>> {
        let mut found = false;
        let mut items = Vec::new();
        for (_, v) in self.0.iter().filter(|(k, _)| k == key) {
            found = true;
            items.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
        found.then_some(items)
    }

    pub(crate) fn flag(&self, key: &str) -> Result<bool, Response> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(validation(format!(
                "Invalid value for query parameter `{key}`: expected true or false"
            ))),
        }
    }

    /// The `limit` parameter: `default` when absent, a 400 when over `max` or not a positive
    /// whole number.
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, Response> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (1..=max as i64).contains(&n) => Ok(n as usize),
                Ok(n) if n > max as i64 => Err(validation(format!(
                    "limit must be less than or equal to {max}, but was {n}"
                ))),
                _ => Err(validation(format!(
                    "Invalid value for query parameter `limit`: {raw}"
                ))),
            },
        }
    }

    /// The requested properties, or the object type's defaults.
    fn selection(&self, store: &ObjectStore) -> Vec<u16> {
        match self.list("properties") {
            Some(names) => store.selection(names),
            None => store.default_selection(),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The opaque `after` cursor pointing at record `id`: base64 of the id, as in HubSpot's spec
/// example (`NTI1Cg==`), so clients cannot mistake it for an id.
pub(crate) fn encode_cursor(id: u64) -> String {
    base64(format!("{id}\n").as_bytes())
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = unbase64(cursor.trim())?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Shapes

pub(crate) fn unknown_object(segment: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        format!("Unable to infer object type from: {segment}"),
    )
}

fn not_found(kind: Kind, id: &str) -> Response {
    not_found_named(kind.upper(), id)
}

/// HubSpot's 404 for a record of type `upper` (`DEAL`) that does not exist.
pub(crate) fn not_found_named(upper: &str, id: &str) -> Response {
    let mut extra = Map::new();
    extra.insert("context".into(), json!({"id": [id]}));
    error_with(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!(
            "Object not found. {} ids are usually numeric.",
            upper.to_lowercase()
        ),
        extra,
    )
}

/// A record as HubSpot returns it, with the selected properties (`null` when unset).
pub(crate) fn record_json(store: &ObjectStore, rec: &Rec, selection: &[u16]) -> Map<String, Value> {
    let props = sorted_selection(store, selection);
    let view = RecordView {
        store,
        rec,
        props: &props,
        companies: None,
    };
    match serde_json::to_value(view) {
        Ok(Value::Object(obj)) => obj,
        _ => Map::new(), // unreachable: a record view always serialises to an object
    }
}

/// The selected properties as (name, id), in name order: the order a `serde_json::Map` (a
/// sorted map here) writes them in, which the emulator's answers have always had.
pub(crate) fn sorted_selection<'s>(
    store: &'s ObjectStore,
    selection: &[u16],
) -> Vec<(&'s str, u16)> {
    let mut props: Vec<(&str, u16)> = selection
        .iter()
        .map(|&p| (store.prop(p).name.as_str(), p))
        .collect();
    props.sort_unstable_by(|a, b| a.0.cmp(b.0));
    props.dedup_by(|a, b| a.0 == b.0);
    props
}

/// A record as HubSpot returns it, serialised straight into a response body: no `Value`
/// tree and no copied values per record. Keys come in sorted order, as the `serde_json::Map`
/// it replaces wrote them, so the bytes a client receives are the same.
pub(crate) struct RecordView<'a> {
    store: &'a ObjectStore,
    rec: &'a Rec,
    /// From [`sorted_selection`].
    props: &'a [(&'a str, u16)],
    /// The contact's companies (id, primary?), when the request asked for them.
    companies: Option<Vec<(u64, bool)>>,
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rec = self.rec;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("archived", &rec.is_archived())?;
        if let Some(at) = rec.archived_at {
            map.serialize_entry("archivedAt", &timestamp(at))?;
        }
        if let Some(companies) = self.companies.as_deref().filter(|c| !c.is_empty()) {
            map.serialize_entry("associations", &CompanyAssociations(companies))?;
        }
        map.serialize_entry("createdAt", &timestamp(rec.created))?;
        map.serialize_entry("id", &AsText(rec.id))?;
        map.serialize_entry(
            "properties",
            &Properties {
                store: self.store,
                rec,
                props: self.props,
            },
        )?;
        map.serialize_entry("updatedAt", &timestamp(rec.updated))?;
        map.end()
    }
}

/// A record's `properties` object.
struct Properties<'a> {
    store: &'a ObjectStore,
    rec: &'a Rec,
    props: &'a [(&'a str, u16)],
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.props.len()))?;
        for &(name, p) in self.props {
            map.serialize_entry(name, &self.store.value_ref(self.rec, p))?;
        }
        map.end()
    }
}

/// A contact's company associations in the v3 list shape: the primary association appears
/// twice, once labelled `contact_to_company` and once `contact_to_company_unlabeled`; other
/// companies appear once, unlabelled.
struct CompanyAssociations<'a>(&'a [(u64, bool)]);

impl Serialize for CompanyAssociations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Association {
            id: AsText<u64>,
            #[serde(rename = "type")]
            label: &'static str,
        }
        #[derive(Serialize)]
        struct Results<'a> {
            results: &'a [Association],
        }
        let mut results = Vec::with_capacity(self.0.len() + 1);
        for &(id, primary) in self.0 {
            if primary {
                results.push(Association {
                    id: AsText(id),
                    label: "contact_to_company",
                });
            }
            results.push(Association {
                id: AsText(id),
                label: "contact_to_company_unlabeled",
            });
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("companies", &Results { results: &results })?;
        map.end()
    }
}

fn wants_companies(kind: Kind, params: &Params) -> bool {
    kind == Kind::Contacts
        && params
            .list("associations")
            .is_some_and(|l| l.iter().any(|a| Kind::parse(a) == Some(Kind::Companies)))
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        validation(format!(
            "Invalid input JSON on line {}, column {}: {}",
            e.line(),
            e.column(),
            e
        ))
    })
}

pub(crate) fn inputs(body: &Value, max: usize) -> Result<&Vec<Value>, Response> {
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| validation("Some required fields were not set: [inputs]"))?;
    if inputs.len() > max {
        return Err(too_many_inputs(max, inputs.len()));
    }
    Ok(inputs)
}

/// An input id as text (HubSpot accepts numbers too).
pub(crate) fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn batch_response(
    ok: StatusCode,
    results: Vec<Value>,
    errors: Vec<Value>,
    started: i64,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": format_timestamp(started),
        "completedAt": format_timestamp(now_ms()),
    });
    let status = if errors.is_empty() {
        ok
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    (status, Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Reads

/// `GET /crm/v3/objects/{object}`: one page, in id order.
pub(crate) async fn list(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(obj) = Obj::parse(&object) {
        return records::list(&emulator, obj, &Params::parse(query.as_deref()), &headers);
    }
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    let params = Params::parse(query.as_deref());
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            Ok(n) if n > MAX_LIMIT as i64 => {
                return validation(format!(
                    "limit must be less than or equal to {MAX_LIMIT}, but was {n}"
                ));
            }
            _ => return validation(format!("Invalid value for query parameter `limit`: {raw}")),
        },
    };
    let start = match params.get("after") {
        None | Some("") => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(id) => id,
            None => {
                return validation(
                    "Invalid value for query parameter `after`: not a paging cursor",
                );
            }
        },
    };
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let with_companies = wants_companies(kind, &params);
    let data = emulator.read();
    let store = data.store(kind);
    let props = sorted_selection(store, &params.selection(store));
    let mut results = Vec::with_capacity(limit);
    let mut next = None;
    for rec in store
        .starting_at(start)
        .iter()
        .filter(|r| r.is_archived() == archived)
    {
        if results.len() == limit {
            next = Some(rec.id);
            break;
        }
        results.push(RecordView {
            store,
            rec,
            props: &props,
            companies: with_companies.then(|| data.contact_companies(rec)),
        });
    }
    let paging = next.map(|id| {
        let after = encode_cursor(id);
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("api.hubapi.com");
        let link = format!(
            "http://{host}/crm/v3/objects/{}?limit={limit}&after={}",
            kind.plural(),
            urlencoding::encode(&after)
        );
        Paging {
            next: NextPage { after, link },
        }
    });
    // Serialised under the read lock, straight from the store.
    Json(ListPage { paging, results }).into_response()
}

/// A list answer; fields in sorted order, as before (see [`RecordView`]).
#[derive(Serialize)]
struct ListPage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
    results: Vec<RecordView<'a>>,
}

#[derive(Serialize)]
struct Paging {
    next: NextPage,
}

#[derive(Serialize)]
struct NextPage {
    after: String,
    link: String,
}

/// `GET /crm/v3/objects/{object}/{id}` (by id, or by a unique value with `idProperty`).
pub(crate) async fn read_one(
    State(emulator): State<Emulator>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(obj) = Obj::parse(&object) {
        return records::read_one(&emulator, obj, &id, &Params::parse(query.as_deref()));
    }
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    let params = Params::parse(query.as_deref());
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut data = emulator.write();
    let store = data.store_mut(kind);
    let found = match params.get("idProperty") {
        Some(name) => match unique_property(store, name) {
            Ok(prop) => store.find_unique(prop, &id),
            Err(r) => return r,
        },
        None => id
            .parse()
            .ok()
            .filter(|i| store.get(*i).is_some_and(|r| r.is_archived() == archived)),
    };
    let data = &*data;
    let store = data.store(kind);
    let Some(rec) = found.and_then(|i| store.get(i)) else {
        return not_found(kind, &id);
    };
    let props = sorted_selection(store, &params.selection(store));
    Json(RecordView {
        store,
        rec,
        props: &props,
        companies: wants_companies(kind, &params).then(|| data.contact_companies(rec)),
    })
    .into_response()
}

fn unique_property(store: &ObjectStore, name: &str) -> Result<u16, Response> {
    match store.prop_id(name) {
        Some(p) if store.prop(p).unique => Ok(p),
        Some(_) => Err(validation(format!(
            "{name} is not a unique property and cannot be used as an idProperty"
        ))),
        None => Err(validation(format!("Property {name} does not exist"))),
    }
}

/// The property ids of a JSON `properties` array (unknown names ignored), or the defaults.
pub(crate) fn body_selection(store: &ObjectStore, body: &Value) -> Vec<u16> {
    match body.get("properties").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => store.selection(names.iter().filter_map(Value::as_str)),
        _ => store.default_selection(),
    }
}

/// `POST /crm/v3/objects/{object}/batch/read`.
fn batch_read(emulator: &Emulator, kind: Kind, params: &Params, body: &Value) -> Response {
    let started = now_ms();
    let inputs = match inputs(body, MAX_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut data = emulator.write();
    let store = data.store_mut(kind);
    let id_property = match body.get("idProperty").and_then(Value::as_str) {
        Some(name) if name != "hs_object_id" => match unique_property(store, name) {
            Ok(p) => Some(p),
            Err(r) => return r,
        },
        _ => None,
    };
    let selection = body_selection(store, body);
    let mut seen = HashSet::new();
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for input in inputs {
        let Some(raw) = id_text(input.get("id")) else {
            return validation("Some required fields were not set: [id]");
        };
        let found = match id_property {
            Some(p) => store.find_unique(p, &raw),
            None => raw
                .parse()
                .ok()
                .filter(|i| store.get(*i).is_some_and(|r| r.is_archived() == archived)),
        };
        match found.and_then(|id| store.get(id)) {
            Some(rec) if seen.insert(rec.id) => {
                results.push(Value::Object(record_json(store, rec, &selection)))
            }
            Some(_) => {}
            None => missing.push(raw),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", kind.upper()),
            "context": { "ids": missing },
        })]
    };
    batch_response(StatusCode::OK, results, errors, started)
}

// ---------------------------------------------------------------------------------------------
// Writes

/// Why one input cannot be written.
pub(crate) enum InputError {
    /// Property problems: (HubSpot error code, property name, message).
    Invalid(Vec<(&'static str, String, String)>),
    /// A unique value already belongs to another record.
    Conflict(String),
    /// The record to update does not exist.
    NotFound(String),
    /// Something else about the input (HubSpot category `VALIDATION_ERROR`).
    Other(String),
}

impl InputError {
    fn category(&self) -> &'static str {
        match self {
            InputError::Conflict(_) => "CONFLICT",
            InputError::NotFound(_) => "OBJECT_NOT_FOUND",
            _ => "VALIDATION_ERROR",
        }
    }

    fn message(&self) -> String {
        match self {
            InputError::Invalid(problems) => {
                let items: Vec<Value> = problems
                    .iter()
                    .map(|(code, name, message)| {
                        json!({"isValid": false, "message": message, "error": code, "name": name, "localizedErrorMessage": message})
                    })
                    .collect();
                format!("Property values were not valid: {}", Value::Array(items))
            }
            InputError::Conflict(m) | InputError::Other(m) => m.clone(),
            InputError::NotFound(id) => {
                format!("Object not found. objectId are usually numeric. ({id})")
            }
        }
    }

    fn errors(&self) -> Vec<Value> {
        match self {
            InputError::Invalid(problems) => problems
                .iter()
                .map(|(code, name, message)| json!({"message": message, "code": code, "context": {"propertyName": [name]}}))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The error as one item of a 207 response's `errors`.
    pub(crate) fn item(&self, trace: Option<&str>, id: Option<&str>) -> Value {
        let mut context = Map::new();
        if let Some(t) = trace {
            context.insert("objectWriteTraceId".into(), json!([t]));
        }
        if let Some(id) = id {
            context.insert("ids".into(), json!([id]));
        }
        let mut item = json!({"status": "error", "category": self.category(), "message": self.message(), "context": context});
        let errors = self.errors();
        if !errors.is_empty() {
            item["errors"] = Value::Array(errors);
        }
        item
    }

    /// The error as a whole-request response.
    pub(crate) fn response(&self) -> Response {
        let status = match self {
            InputError::Conflict(_) => StatusCode::CONFLICT,
            InputError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut extra = Map::new();
        let errors = self.errors();
        if !errors.is_empty() {
            extra.insert("errors".into(), Value::Array(errors));
        }
        error_with(status, self.category(), self.message(), extra)
    }
}

/// A validated write: property changes and, for contacts, a new primary company.
struct Prepared {
    changes: Vec<(u16, String)>,
    company: Option<Option<u64>>,
}

impl Prepared {
    fn pairs(&self) -> Vec<(u16, &str)> {
        self.changes.iter().map(|(p, v)| (*p, v.as_str())).collect()
    }
}

/// Validates an input's `properties` and `associations` against the store.
fn prepare(data: &super::Data, kind: Kind, input: &Value) -> Result<Prepared, InputError> {
    let store = data.store(kind);
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    if let Some(props) = input.get("properties") {
        let Some(props) = props.as_object() else {
            return Err(InputError::Other(
                "properties must be an object of property name to value".into(),
            ));
        };
        for (name, value) in props {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    problems.push((
                        "INVALID_PROPERTY_VALUE",
                        name.clone(),
                        format!("{name} must be a string"),
                    ));
                    continue;
                }
            };
            let Some(prop) = store.prop_id(name) else {
                problems.push((
                    "PROPERTY_DOESNT_EXIST",
                    name.clone(),
                    format!("Property \"{name}\" does not exist"),
                ));
                continue;
            };
            let def = store.prop(prop);
            if def.read_only {
                problems.push((
                    "READ_ONLY_VALUE",
                    name.clone(),
                    format!("{name} is a read only property; its value cannot be set."),
                ));
                continue;
            }
            if def.ty == "string" && text.chars().count() > MAX_TEXT_VALUE {
                problems.push((
                    "VALUE_TOO_LONG",
                    name.clone(),
                    format!("{name} may hold at most {MAX_TEXT_VALUE} characters"),
                ));
                continue;
            }
            if kind == Kind::Contacts && name == "email" && !text.is_empty() && !valid_email(&text)
            {
                problems.push((
                    "INVALID_EMAIL",
                    name.clone(),
                    format!("Email address {text} is invalid"),
                ));
                continue;
            }
            if let Err(code) = def.check_value(&text) {
                problems.push((
                    code,
                    name.clone(),
                    format!("{text} was not a valid {} for property {name}.", def.ty),
                ));
                continue;
            }
            changes.push((prop, text));
        }
    }
    if !problems.is_empty() {
        return Err(InputError::Invalid(problems));
    }
    let mut company = None;
    if let Some(assocs) = input.get("associations").and_then(Value::as_array) {
        for assoc in assocs {
            let to = id_text(assoc.pointer("/to/id")).and_then(|s| s.parse::<u64>().ok());
            let types: Vec<i64> = assoc
                .get("types")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.get("associationTypeId").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default();
            let is_contact_company =
                kind == Kind::Contacts && types.iter().any(|t| *t == 1 || *t == 279);
            match to {
                Some(id)
                    if is_contact_company
                        && data
                            .store(Kind::Companies)
                            .get(id)
                            .is_some_and(|c| !c.is_archived()) =>
                {
                    company = Some(Some(id));
                }
                _ => {
                    return Err(InputError::Other(
                        "One or more associations are invalid (the emulator supports contact-to-company types 1 and 279 to existing companies)".into(),
                    ));
                }
            }
        }
    }
    Ok(Prepared { changes, company })
}

/// Whether HubSpot would accept `email` as a contact's address: one `@`, a local part without
/// spaces, and a dotted domain whose labels are non-empty, do not start or end with `-`, and
/// end in a top-level domain of two or more letters. HubSpot's own check is stricter still
/// (it also refuses some well-formed addresses on unknown domains); that part is not emulated.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '@' | ',' | ';' | '<' | '>' | '(' | ')' | '[' | ']' | '\\' | '"'
            )
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.chars().count() >= 2 && t.chars().all(char::is_alphabetic));
    !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(bad)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && labels.len() >= 2
        && tld_ok
        && labels.iter().all(|l| {
            !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && !l.chars().any(bad)
        })
}

/// A conflict if a unique value in `changes` belongs to a record other than `except`, or to
/// an earlier input of the same batch.
fn unique_conflict(
    store: &mut ObjectStore,
    changes: &[(u16, String)],
    except: Option<u64>,
    batch: &mut HashSet<(u16, String)>,
) -> Option<InputError> {
    for (prop, value) in changes {
        if !store.prop(*prop).unique || value.is_empty() {
            continue;
        }
        if let Some(existing) = store
            .find_unique(*prop, value)
            .filter(|id| Some(*id) != except)
        {
            let what = match store.kind {
                Kind::Contacts => "Contact",
                Kind::Companies => "Company",
            };
            return Some(InputError::Conflict(format!(
                "{what} already exists. Existing ID: {existing}"
            )));
        }
        if !batch.insert((*prop, value.clone())) {
            return Some(InputError::Other(format!(
                "Duplicate values found in batch input for unique property {}",
                store.prop(*prop).name
            )));
        }
    }
    None
}

/// The `objectWriteTraceId` of every input, if every input has a distinct one: only then may a
/// batch partly succeed (HubSpot fails the whole batch on one bad input otherwise).
pub(crate) fn trace_ids(inputs: &[Value]) -> Option<Vec<String>> {
    let ids: Vec<String> = inputs
        .iter()
        .map(|i| {
            i.get("objectWriteTraceId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect::<Option<_>>()?;
    let distinct: HashSet<&String> = ids.iter().collect();
    (distinct.len() == ids.len()).then_some(ids)
}

/// What one input of a write batch did.
enum Outcome {
    Written { id: u64, new: bool },
    Failed(InputError, Option<String>),
}

/// Runs `plan` over every input (validation only), then, if the batch may proceed, `apply`.
fn run_batch(
    emulator: &Emulator,
    kind: Kind,
    inputs: &[Value],
    ok: StatusCode,
    upsert: bool,
    plan: impl Fn(&mut super::Data, &Value, &mut HashSet<(u16, String)>) -> Result<Planned, InputError>,
) -> Response {
    let started = now_ms();
    let traces = trace_ids(inputs);
    let mut data = emulator.write();
    let mut batch_values = HashSet::new();
    let mut planned = Vec::with_capacity(inputs.len());
    for input in inputs {
        match plan(&mut data, input, &mut batch_values) {
            Ok(p) => planned.push(Ok(p)),
            Err(e) if traces.is_none() && !matches!(e, InputError::NotFound(_)) => {
                return e.response();
            }
            Err(e) => planned.push(Err(e)),
        }
    }
    let now = emulator.now_ms();
    let mut outcomes = Vec::with_capacity(planned.len());
    for (i, p) in planned.into_iter().enumerate() {
        let trace = traces.as_ref().and_then(|t| t.get(i)).cloned();
        outcomes.push(match p {
            Ok(Planned::Create(prep)) => {
                let company = prep.company.flatten();
                let id = data
                    .store_mut(kind)
                    .create(now, now, company, &prep.pairs());
                if kind == Kind::Contacts {
                    data.sync_opt_out(id, now);
                }
                Outcome::Written { id, new: true }
            }
            Ok(Planned::Update(id, prep)) => {
                data.store_mut(kind)
                    .update(id, now, &prep.pairs(), prep.company);
                if kind == Kind::Contacts {
                    data.sync_opt_out(id, now);
                }
                Outcome::Written { id, new: false }
            }
            Err(e) => Outcome::Failed(e, trace),
        });
    }
    let store = data.store(kind);
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Written { id, new } => {
                if let Some(rec) = store.get(id) {
                    let mut obj = record_json(store, rec, &store.full_selection(rec));
                    if upsert {
                        obj.insert("new".into(), json!(new));
                    }
                    if let Some(t) = traces.as_ref().and_then(|t| t.get(i)) {
                        obj.insert("objectWriteTraceId".into(), json!(t));
                    }
                    results.push(Value::Object(obj));
                }
            }
            Outcome::Failed(e, trace) => {
                let id = match &e {
                    InputError::NotFound(id) => Some(id.as_str()),
                    _ => None,
                };
                errors.push(e.item(trace.as_deref(), id));
            }
        }
    }
    batch_response(ok, results, errors, started)
}

/// What a validated input will do.
enum Planned {
    Create(Prepared),
    Update(u64, Prepared),
}

fn plan_create(
    kind: Kind,
) -> impl Fn(&mut super::Data, &Value, &mut HashSet<(u16, String)>) -> Result<Planned, InputError> {
    move |data, input, batch| {
        let prep = prepare(data, kind, input)?;
        if let Some(conflict) = unique_conflict(data.store_mut(kind), &prep.changes, None, batch) {
            return Err(conflict);
        }
        Ok(Planned::Create(prep))
    }
}

fn plan_update(
    kind: Kind,
) -> impl Fn(&mut super::Data, &Value, &mut HashSet<(u16, String)>) -> Result<Planned, InputError> {
    move |data, input, batch| {
        let raw = id_text(input.get("id"))
            .ok_or_else(|| InputError::Other("Some required fields were not set: [id]".into()))?;
        let id_property = match input.get("idProperty").and_then(Value::as_str) {
            Some(name) if name != "hs_object_id" => {
                let store = data.store(kind);
                match store.prop_id(name) {
                    Some(p) if store.prop(p).unique => Some(p),
                    _ => {
                        return Err(InputError::Other(format!(
                            "{name} is not a unique property and cannot be used as an idProperty"
                        )));
                    }
                }
            }
            _ => None,
        };
        let prep = prepare(data, kind, input)?;
        let store = data.store_mut(kind);
        let id = store
            .resolve(id_property, &raw)
            .ok_or(InputError::NotFound(raw))?;
        if let Some(conflict) = unique_conflict(store, &prep.changes, Some(id), batch) {
            return Err(conflict);
        }
        Ok(Planned::Update(id, prep))
    }
}

fn plan_upsert(
    kind: Kind,
) -> impl Fn(&mut super::Data, &Value, &mut HashSet<(u16, String)>) -> Result<Planned, InputError> {
    move |data, input, batch| {
        let raw = id_text(input.get("id"))
            .ok_or_else(|| InputError::Other("Some required fields were not set: [id]".into()))?;
        let name = input
            .get("idProperty")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                InputError::Other("Some required fields were not set: [idProperty]".into())
            })?;
        let store = data.store(kind);
        let prop = match store.prop_id(name) {
            Some(p) if store.prop(p).unique && store.prop(p).computed.is_none() => p,
            _ => {
                return Err(InputError::Other(format!(
                    "{name} is not a unique property and cannot be used as an idProperty for upsert"
                )));
            }
        };
        let mut prep = prepare(data, kind, input)?;
        prep.changes.retain(|(p, _)| *p != prop);
        prep.changes.push((prop, raw.clone()));
        let store = data.store_mut(kind);
        let existing = store.find_unique(prop, &raw);
        if let Some(conflict) = unique_conflict(store, &prep.changes, existing, batch) {
            return Err(conflict);
        }
        Ok(match existing {
            Some(id) => Planned::Update(id, prep),
            None => Planned::Create(prep),
        })
    }
}

/// `POST /crm/v3/objects/{object}/batch/{action}`.
pub(crate) async fn batch(
    State(emulator): State<Emulator>,
    Path((object, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let obj = Obj::parse(&object);
    let Some(kind) = Kind::parse(&object).or(obj.map(|_| Kind::Contacts)) else {
        return unknown_object(&object);
    };
    let params = Params::parse(query.as_deref());
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(obj) = obj {
        return records::batch(&emulator, obj, &action, &params, &body);
    }
    if action == "read" {
        return batch_read(&emulator, kind, &params, &body);
    }
    let inputs = match inputs(&body, MAX_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match action.as_str() {
        "create" => run_batch(
            &emulator,
            kind,
            inputs,
            StatusCode::CREATED,
            false,
            plan_create(kind),
        ),
        "update" => run_batch(
            &emulator,
            kind,
            inputs,
            StatusCode::OK,
            false,
            plan_update(kind),
        ),
        "upsert" => {
            let mut ids = HashSet::new();
            for input in inputs {
                let key = (input.get("idProperty").cloned(), id_text(input.get("id")));
                if !ids.insert(key) {
                    return validation("Duplicate IDs found in batch input");
                }
            }
            run_batch(
                &emulator,
                kind,
                inputs,
                StatusCode::OK,
                true,
                plan_upsert(kind),
            )
        }
        "archive" => {
            let now = emulator.now_ms();
            let mut data = emulator.write();
            let store = data.store_mut(kind);
            for input in inputs {
                if let Some(id) = id_text(input.get("id")).and_then(|s| s.parse().ok()) {
                    store.archive(id, now);
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unknown batch operation: {action}"),
        ),
    }
}

/// `POST /crm/v3/objects/{object}`: creates one record (201).
pub(crate) async fn create_one(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let obj = Obj::parse(&object);
    let Some(kind) = Kind::parse(&object).or(obj.map(|_| Kind::Contacts)) else {
        return unknown_object(&object);
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(obj) = obj {
        return records::create_one(&emulator, obj, &body);
    }
    let mut data = emulator.write();
    let planned = plan_create(kind)(&mut data, &body, &mut HashSet::new());
    let prep = match planned {
        Ok(Planned::Create(p)) => p,
        Ok(Planned::Update(..)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "unexpected update",
            );
        }
        Err(e) => return e.response(),
    };
    let now = emulator.now_ms();
    let id = data
        .store_mut(kind)
        .create(now, now, prep.company.flatten(), &prep.pairs());
    if kind == Kind::Contacts {
        data.sync_opt_out(id, now);
    }
    let store = data.store(kind);
    match store.get(id) {
        Some(rec) => (
            StatusCode::CREATED,
            Json(Value::Object(record_json(
                store,
                rec,
                &store.full_selection(rec),
            ))),
        )
            .into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "record vanished",
        ),
    }
}

/// `PATCH /crm/v3/objects/{object}/{id}`: updates one record (by id or `idProperty`).
pub(crate) async fn update_one(
    State(emulator): State<Emulator>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let obj = Obj::parse(&object);
    let Some(kind) = Kind::parse(&object).or(obj.map(|_| Kind::Contacts)) else {
        return unknown_object(&object);
    };
    let params = Params::parse(query.as_deref());
    let mut body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(obj) = obj {
        return records::update_one(&emulator, obj, &id, &params, &body);
    }
    body["id"] = json!(id);
    if let Some(p) = params.get("idProperty") {
        body["idProperty"] = json!(p);
    }
    let mut data = emulator.write();
    let (target, prep) = match plan_update(kind)(&mut data, &body, &mut HashSet::new()) {
        Ok(Planned::Update(target, prep)) => (target, prep),
        Ok(Planned::Create(_)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "unexpected create",
            );
        }
        Err(InputError::NotFound(_)) => return not_found(kind, &id),
        Err(e) => return e.response(),
    };
    let now = emulator.now_ms();
    data.store_mut(kind)
        .update(target, now, &prep.pairs(), prep.company);
    if kind == Kind::Contacts {
        data.sync_opt_out(target, now);
    }
    let store = data.store(kind);
    match store.get(target) {
        Some(rec) => Json(Value::Object(record_json(
            store,
            rec,
            &store.full_selection(rec),
        )))
        .into_response(),
        None => not_found(kind, &id),
    }
}

/// `DELETE /crm/v3/objects/{object}/{id}`: archives one record (204).
pub(crate) async fn archive_one(
    State(emulator): State<Emulator>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    if let Some(obj) = Obj::parse(&object) {
        return records::archive_one(&emulator, obj, &id);
    }
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    if let Ok(id) = id.parse() {
        emulator
            .write()
            .store_mut(kind)
            .archive(id, emulator.now_ms());
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------------
// Properties

/// `GET /crm/v3/properties/{object}`.
pub(crate) async fn list_properties(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
) -> Response {
    if let Some(obj) = Obj::parse(&object) {
        return records::list_properties(&emulator, obj);
    }
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    let data = emulator.read();
    let results: Vec<Value> = data
        .store(kind)
        .props
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_json(i))
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `GET /crm/v3/properties/{object}/{name}`.
pub(crate) async fn read_property(
    State(emulator): State<Emulator>,
    Path((object, name)): Path<(String, String)>,
) -> Response {
    if let Some(obj) = Obj::parse(&object) {
        return records::read_property(&emulator, obj, &name);
    }
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    let data = emulator.read();
    let store = data.store(kind);
    match store.prop_id(&name) {
        Some(p) => Json(store.prop(p).to_json(usize::from(p))).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property {name}"),
        ),
    }
}

const PROPERTY_TYPES: &[&str] = &[
    "string",
    "number",
    "date",
    "datetime",
    "enumeration",
    "bool",
    "phone_number",
];
const FIELD_TYPES: &[&str] = &[
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
];

/// `POST /crm/v3/properties/{object}`: creates a custom property (201).
pub(crate) async fn create_property(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let obj = Obj::parse(&object);
    let Some(kind) = Kind::parse(&object).or(obj.map(|_| Kind::Contacts)) else {
        return unknown_object(&object);
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let missing: Vec<&str> = ["name", "label", "type", "fieldType", "groupName"]
        .into_iter()
        .filter(|k| text(k).is_none())
        .collect();
    if !missing.is_empty() {
        return validation(format!(
            "Some required fields were not set: [{}]",
            missing.join(", ")
        ));
    }
    let (name, label, ty, field_type, group) = (
        text("name").unwrap_or_default(),
        text("label").unwrap_or_default(),
        text("type").unwrap_or_default(),
        text("fieldType").unwrap_or_default(),
        text("groupName").unwrap_or_default(),
    );
    let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return validation(format!(
            "Property name {name} is invalid: use lowercase letters, digits and underscores, starting with a letter"
        ));
    }
    if !PROPERTY_TYPES.contains(&ty.as_str()) {
        return validation(format!("Invalid property type: {ty}"));
    }
    if !FIELD_TYPES.contains(&field_type.as_str()) {
        return validation(format!("Invalid fieldType: {field_type}"));
    }
    let options = body
        .get("options")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ty == "enumeration" && options.is_empty() && field_type != "booleancheckbox" {
        return validation("Enumeration properties require options");
    }
    // Every option needs a label and an internal value, and the values must differ (a write
    // names an option by its value).
    let mut values = HashSet::new();
    for option in &options {
        let label = option.get("label").and_then(Value::as_str);
        let value = option.get("value").and_then(Value::as_str);
        match (label, value) {
            (Some(l), Some(v)) if !l.trim().is_empty() && !v.trim().is_empty() => {
                if !values.insert(v) {
                    return validation(format!("Duplicate option value: {v}"));
                }
            }
            _ => return validation("Each option requires a label and a value"),
        }
    }
    let def = PropDef {
        name,
        label,
        ty,
        field_type,
        group,
        description: text("description").unwrap_or_default(),
        options,
        unique: body
            .get("hasUniqueValue")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        read_only: false,
        hubspot_defined: false,
        computed: None,
        created_ms: now_ms(),
    };
    if let Some(obj) = obj {
        return records::add_property(&emulator, obj, def);
    }
    let name = def.name.clone();
    let mut data = emulator.write();
    let store = data.store_mut(kind);
    if store.prop_id(&name).is_some() {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("A property named '{name}' already exists."),
        );
    }
    let id = store.add_property(def);
    (
        StatusCode::CREATED,
        Json(store.prop(id).to_json(usize::from(id))),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Associations v4

/// `POST /crm/v4/associations/{from}/{to}/batch/read` (contacts ↔ companies only).
pub(crate) async fn association_batch_read(
    State(emulator): State<Emulator>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let started = now_ms();
    if links::handles(&from, &to) {
        return match parse_body(&body) {
            Ok(body) => links::batch_read(&emulator, &from, &to, &body),
            Err(r) => r,
        };
    }
    let (Some(from_kind), Some(to_kind)) = (Kind::parse(&from), Kind::parse(&to)) else {
        return unknown_object(&format!("{from}/{to}"));
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let inputs = match inputs(&body, MAX_ASSOCIATION_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    // Each input may carry the `after` cursor of a result's `paging.next`, to read on.
    let mut ids: Vec<u64> = Vec::new();
    let mut offsets: HashMap<u64, usize> = HashMap::new();
    for input in inputs {
        let Some(id) = id_text(input.get("id")).and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(after) = input.get("after").and_then(Value::as_str) {
            let Some(offset) = decode_cursor(after) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    format!("Invalid input: `after` of {id} is not a paging cursor"),
                );
            };
            offsets.insert(id, usize::try_from(offset).unwrap_or(usize::MAX));
        }
        ids.push(id);
    }
    let data = emulator.read();
    let mut found: Vec<(u64, Vec<(u64, bool)>)> = ids.iter().map(|id| (*id, Vec::new())).collect();
    match (from_kind, to_kind) {
        (Kind::Contacts, Kind::Companies) => {
            for (id, to) in found.iter_mut() {
                if let Some(rec) = data
                    .store(Kind::Contacts)
                    .get(*id)
                    .filter(|r| !r.is_archived())
                {
                    to.extend(data.contact_companies(rec));
                }
            }
        }
        (Kind::Companies, Kind::Contacts) => {
            let wanted: HashSet<u64> = found.iter().map(|(id, _)| *id).collect();
            let mut reverse: std::collections::HashMap<u64, Vec<(u64, bool)>> =
                std::collections::HashMap::new();
            for rec in data
                .store(Kind::Contacts)
                .starting_at(0)
                .iter()
                .filter(|r| !r.is_archived())
            {
                if let Some(c) = rec.company.filter(|c| wanted.contains(c)) {
                    reverse.entry(c).or_default().push((rec.id, true));
                }
            }
            for (contact, companies) in &data.unlabeled {
                for c in companies.iter().filter(|c| wanted.contains(c)) {
                    if data
                        .store(Kind::Contacts)
                        .get(*contact)
                        .is_some_and(|r| !r.is_archived())
                    {
                        reverse.entry(*c).or_default().push((*contact, false));
                    }
                }
            }
            for (id, to) in found.iter_mut() {
                to.extend(reverse.remove(id).unwrap_or_default());
            }
        }
        _ => {}
    }
    let (primary, unlabeled) = match (from_kind, to_kind) {
        (Kind::Contacts, Kind::Companies) => (1, 279),
        _ => (2, 280),
    };
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for (id, mut to) in found {
        if to.is_empty() {
            missing.push(id.to_string());
            continue;
        }
        // Pages of ASSOCIATION_PAGE in id order, the primary wherever its id puts it.
        to.sort_unstable();
        let offset = offsets.get(&id).copied().unwrap_or(0).min(to.len());
        let end = offset.saturating_add(ASSOCIATION_PAGE).min(to.len());
        let paging = (end < to.len())
            .then(|| json!({"next": {"after": encode_cursor(end as u64), "link": null}}));
        let to: Vec<Value> = to[offset..end]
            .iter()
            .copied()
            .map(|(to_id, is_primary)| {
                let mut types = Vec::new();
                if is_primary {
                    types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": primary, "label": "Primary"}));
                }
                types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": null}));
                json!({"toObjectId": to_id, "associationTypes": types})
            })
            .collect();
        let mut result = json!({"from": {"id": id.to_string()}, "to": to});
        if let Some(paging) = paging {
            result["paging"] = paging;
        }
        results.push(result);
    }
    let errors: Vec<Value> = missing
        .into_iter()
        .map(|id| {
            json!({"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                   "message": format!("No {} is associated with {} {id}.", to_kind.upper(), from_kind.upper()),
                   "context": {"fromObjectId": [id]}})
        })
        .collect();
    batch_response(StatusCode::OK, results, errors, started)
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}`: one record's associations (pairs with
/// a deal or a note).
pub(crate) async fn associations_of(
    State(emulator): State<Emulator>,
    Path((from, id, to)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if !links::handles(&from, &to) {
        return validation(format!(
            "The emulator lists associations of deals and notes only, not {from} to {to}"
        ));
    }
    links::list_of(&emulator, &from, &id, &to, &Params::parse(query.as_deref()))
}

/// The 400 for a per-record association write between objects `links.rs` does not serve.
fn only_deals_and_notes(from: &str, to: &str) -> Response {
    validation(format!(
        "The emulator writes single associations of deals and notes only, not {from} to {to}"
    ))
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`.
pub(crate) async fn association_put_default(
    State(emulator): State<Emulator>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
) -> Response {
    if !links::handles(&from, &to) {
        return only_deals_and_notes(&from, &to);
    }
    links::put_default(&emulator, &from, &id, &to, &to_id)
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` (labelled, types in the body).
pub(crate) async fn association_put(
    State(emulator): State<Emulator>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    if !links::handles(&from, &to) {
        return only_deals_and_notes(&from, &to);
    }
    match parse_body(&body) {
        Ok(body) => links::put_labelled(&emulator, &from, &id, &to, &to_id, &body),
        Err(r) => r,
    }
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`.
pub(crate) async fn association_delete(
    State(emulator): State<Emulator>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
) -> Response {
    if !links::handles(&from, &to) {
        return only_deals_and_notes(&from, &to);
    }
    links::delete_pair(&emulator, &from, &id, &to, &to_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_opaque_and_round_trip() {
        assert_eq!(encode_cursor(525), "NTI1Cg==");
        for id in [0u64, 1, 2_000_001, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        }
        assert_eq!(decode_cursor("not base64!"), None);
        assert_ne!(
            decode_cursor("2000001"),
            Some(2_000_001),
            "a raw id is not a cursor"
        );
    }
}
