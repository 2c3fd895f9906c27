//! The routes: v2 persons and organizations (list, get, create, update, delete, search), v2
//! fields (list, create) and the v1 fields list.

// Parameter parsers hand back the ready error response; it is built once per request, so its
// size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Emulator;
use super::gate::{error, invalid, not_found, ok};
use super::store::{CREATABLE_FIELD_TYPES, Kind, Record, SearchField, Store};

/// Pipedrive's default page size.
const DEFAULT_LIMIT: usize = 100;
/// Pipedrive's largest page ("a maximum value of 500 is allowed").
const MAX_LIMIT: usize = 500;
/// Most ids one `ids` list may carry.
const MAX_IDS: usize = 100;
/// Most custom field keys one `custom_fields` parameter may carry.
const MAX_CUSTOM_KEYS: usize = 15;

type Params = Query<HashMap<String, String>>;

fn kind_of(segment: &str) -> Result<Kind, Response> {
    Kind::parse(segment).ok_or_else(|| not_found("Unknown method ."))
}

/// Encodes a position as an opaque cursor (base64 of a small JSON object, as Pipedrive's look).
pub(crate) fn encode_cursor(position: u64) -> String {
    base64(format!("{{\"p\":{position}}}").as_bytes())
}

/// Decodes a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor(cursor: &str) -> Option<u64> {
    let raw = unbase64(cursor)?;
    let text = std::str::from_utf8(&raw).ok()?;
    text.strip_prefix("{\"p\":")?
        .strip_suffix('}')?
        .parse()
        .ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// Parses `limit`: default 100, 1 to 500.
pub(super) fn limit(params: &HashMap<String, String>) -> Result<usize, Response> {
    match params.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(invalid(
                "Validation failed: limit: Number must be less than or equal to 500",
            )),
        },
    }
}

/// What a v2 list is sorted by (`sort_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SortKey {
    Id,
    UpdateTime,
    AddTime,
}

/// A v2 list's order: `sort_by` (`id`, `update_time` or `add_time`; default `id`) and
/// `sort_direction` (`asc`, the default, or `desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Order {
    pub key: SortKey,
    pub desc: bool,
}

impl Order {
    /// Parses `sort_by` and `sort_direction`.
    pub(super) fn parse(params: &HashMap<String, String>) -> Result<Order, Response> {
        let key = match params.get("sort_by").map(String::as_str) {
            None | Some("id") => SortKey::Id,
            Some("update_time") => SortKey::UpdateTime,
            Some("add_time") => SortKey::AddTime,
            Some(_) => return Err(invalid("Validation failed: sort_by: Invalid enum value")),
        };
        let desc = match params.get("sort_direction").map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                return Err(invalid(
                    "Validation failed: sort_direction: Invalid enum value",
                ));
            }
        };
        Ok(Order { key, desc })
    }

    /// Whether this is the lists' own order, id ascending, which pages by id.
    pub(super) fn by_id(&self) -> bool {
        self.key == SortKey::Id && !self.desc
    }
}

/// The page at `offset` of `rows` (each with its add and update times and its id) in
/// `order`, ties broken by id; and the next page's offset. Other orders than id ascending
/// page by position: the emulator's cursor then is an offset (Pipedrive does not document
/// what its cursor holds), which a write between pages can shift.
pub(super) fn sorted_page<T>(
    mut rows: Vec<((i64, i64, u64), T)>,
    order: Order,
    offset: u64,
    limit: usize,
) -> (Vec<T>, Option<u64>) {
    let key = |k: &(i64, i64, u64)| match order.key {
        SortKey::Id => (0, k.2),
        SortKey::UpdateTime => (k.1, k.2),
        SortKey::AddTime => (k.0, k.2),
    };
    rows.sort_by_key(|(k, _)| key(k));
    if order.desc {
        rows.reverse();
    }
    let total = rows.len() as u64;
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let page: Vec<T> = rows
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(_, t)| t)
        .collect();
    let next = offset.saturating_add(limit as u64);
    (page, (next < total).then_some(next))
}

pub(super) fn cursor(params: &HashMap<String, String>) -> Result<Option<u64>, Response> {
    match params.get("cursor").filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => decode_cursor(c)
            .map(Some)
            .ok_or_else(|| invalid("Validation failed: cursor: Invalid cursor")),
    }
}

pub(super) fn csv(params: &HashMap<String, String>, key: &str) -> Vec<String> {
    params
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The `custom_fields` and `include_fields` parameters of a read.
struct ReadShape {
    custom_only: Option<Vec<String>>,
    marketing: bool,
}

fn read_shape(params: &HashMap<String, String>, campaigns: bool) -> Result<ReadShape, Response> {
    let custom = csv(params, "custom_fields");
    if custom.len() > MAX_CUSTOM_KEYS {
        return Err(invalid(format!(
            "Validation failed: custom_fields: A maximum of {MAX_CUSTOM_KEYS} keys is allowed"
        )));
    }
    let include = csv(params, "include_fields");
    Ok(ReadShape {
        custom_only: (!custom.is_empty()).then_some(custom),
        // Only companies with the marketing (Campaigns) app get `marketing_status`.
        marketing: campaigns && include.iter().any(|f| f == "marketing_status"),
    })
}

/// `GET /api/v2/{persons|organizations}`: cursor paging in id order, or `ids`, filtered on
/// `org_id` (persons) and `updated_since`/`updated_until`.
pub(crate) async fn list(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    Query(params): Params,
) -> Response {
    if Kind::parse_fields(&segment).is_some() {
        return list_fields_v2(State(emulator), Path(segment), Query(params)).await;
    }
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let (limit, from, shape) = match (
        limit(&params),
        cursor(&params),
        read_shape(&params, emulator.inner.options.campaigns_app),
    ) {
        (Ok(l), Ok(c), Ok(s)) => (l, c, s),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let order = match Order::parse(&params) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if params.contains_key("filter_id") {
        return invalid("Validation failed: filter_id: the emulator has no saved filters");
    }
    // `update_time` at or after `updated_since`, before `updated_until` (RFC 3339).
    let (since, until) = match (
        super::crm_api::time_param(&params, "updated_since"),
        super::crm_api::time_param(&params, "updated_until"),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let changed = |r: &Record| {
        since.is_none_or(|t| r.update_time_ms >= t) && until.is_none_or(|t| r.update_time_ms < t)
    };
    let data = emulator.read();
    let store = data.store(kind);
    let custom = shape.custom_only.as_deref();
    let ids = csv(&params, "ids");
    if !ids.is_empty() {
        if ids.len() > MAX_IDS {
            return invalid(format!(
                "Validation failed: ids: Array must contain at most {MAX_IDS} element(s)"
            ));
        }
        let mut wanted: Vec<u64> = Vec::with_capacity(ids.len());
        for id in &ids {
            match id.parse() {
                Ok(n) => wanted.push(n),
                Err(_) => return invalid("Validation failed: ids: Expected number"),
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let items: Vec<Value> = wanted
            .iter()
            .filter_map(|id| store.get(*id))
            .filter(|r| changed(r))
            .map(|r| store.render(r, custom, shape.marketing))
            .collect();
        return ok(json!(items), json!({"next_cursor": null}));
    }
    let org_filter = match params.get("org_id").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(id)) if kind == Kind::Persons => Some(id),
        Some(_) => return invalid("Validation failed: org_id: Expected number"),
    };
    let shown = |r: &Record| org_filter.is_none_or(|o| r.org_id == Some(o)) && changed(r);
    if !order.by_id() {
        let (all, _) = store.page(1, usize::MAX);
        let rows = all
            .into_iter()
            .filter(|r| shown(r))
            .map(|r| ((r.add_time_ms, r.update_time_ms, r.id), r))
            .collect();
        let (page, next) = sorted_page(rows, order, from.unwrap_or(0), limit);
        let items: Vec<Value> = page
            .into_iter()
            .map(|r| store.render(r, custom, shape.marketing))
            .collect();
        return ok(
            json!(items),
            json!({"next_cursor": next.map(encode_cursor)}),
        );
    }
    let mut position = from.unwrap_or(1);
    let mut items = Vec::with_capacity(limit.min(1024));
    let next = loop {
        let (page, next) = store.page(position, limit - items.len());
        items.extend(
            page.into_iter()
                .filter(|r| shown(r))
                .map(|r| store.render(r, custom, shape.marketing)),
        );
        match next {
            Some(n) if items.len() < limit => position = n,
            other => break other,
        }
    };
    ok(
        json!(items),
        json!({"next_cursor": next.map(encode_cursor)}),
    )
}

/// `GET /api/v2/{persons|organizations}/{id}`.
pub(crate) async fn get_one(
    State(emulator): State<Emulator>,
    Path((segment, id)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    if let Some(kind) = Kind::parse_fields(&segment) {
        return get_field(&emulator, kind, &id).await;
    }
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<u64>() else {
        return invalid("Validation failed: id: Expected number, received string");
    };
    let shape = match read_shape(&params, emulator.inner.options.campaigns_app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let data = emulator.read();
    let store = data.store(kind);
    match store.get(id) {
        Some(r) => ok(
            store.render(r, shape.custom_only.as_deref(), shape.marketing),
            Value::Null,
        ),
        None => not_found(format!("{} not found", kind.noun())),
    }
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON in request body",
            Some("ERR_BAD_REQUEST"),
        )
    })
}

/// `POST /api/v2/{persons|organizations|personFields|organizationFields}`.
pub(crate) async fn create_or_fields(
    state: State<Emulator>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    if Kind::parse_fields(&segment).is_some() {
        create_field(state, Path(segment), body).await
    } else {
        create(state, Path(segment), body).await
    }
}

/// `POST /api/v2/{persons|organizations}`.
async fn create(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let campaigns = emulator.inner.options.campaigns_app;
    let mut data = emulator.write();
    let orgs_live = |id: u64| data.organizations.get(id).is_some();
    let owner_ok = |id: u64| data.crm.check_owner("owner_id", id);
    let store = data.store(kind);
    let id = store.next_id();
    let record = match store.apply(
        &body,
        None,
        id,
        emulator.now_ms(),
        campaigns,
        &orgs_live,
        &owner_ok,
    ) {
        Ok(r) => r,
        Err(e) => return invalid(e.0),
    };
    let rendered = store.render(&record, None, campaigns && kind == Kind::Persons);
    data.store_mut(kind).insert(record);
    ok(rendered, Value::Null)
}

/// `PATCH /api/v2/{persons|organizations}/{id}`.
pub(crate) async fn update(
    State(emulator): State<Emulator>,
    Path((segment, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<u64>() else {
        return invalid("Validation failed: id: Expected number, received string");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let campaigns = emulator.inner.options.campaigns_app;
    let mut data = emulator.write();
    let orgs_live = |id: u64| data.organizations.get(id).is_some();
    let owner_ok = |id: u64| data.crm.check_owner("owner_id", id);
    let store = data.store(kind);
    let Some(existing) = store.get(id) else {
        return not_found(format!("{} not found", kind.noun()));
    };
    let record = match store.apply(
        &body,
        Some(existing),
        id,
        emulator.now_ms(),
        campaigns,
        &orgs_live,
        &owner_ok,
    ) {
        Ok(r) => r,
        Err(e) => return invalid(e.0),
    };
    let rendered = store.render(&record, None, campaigns && kind == Kind::Persons);
    data.store_mut(kind).replace(record);
    ok(rendered, Value::Null)
}

/// `DELETE /api/v2/{persons|organizations}/{id}`: marks the record deleted.
pub(crate) async fn delete(
    State(emulator): State<Emulator>,
    Path((segment, id)): Path<(String, String)>,
) -> Response {
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<u64>() else {
        return invalid("Validation failed: id: Expected number, received string");
    };
    if emulator.write().store_mut(kind).delete(id) {
        ok(json!({"id": id}), Value::Null)
    } else {
        not_found(format!("{} not found", kind.noun()))
    }
}

/// `GET /api/v2/{persons|organizations}/search`: exact-match search over the indexed fields.
pub(crate) async fn search(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    Query(params): Params,
) -> Response {
    let kind = match kind_of(&segment) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(term) = params.get("term").map(|t| t.trim().to_owned()) else {
        return invalid("Validation failed: term: Required");
    };
    let exact = params.get("exact_match").is_some_and(|v| v == "true");
    let min = if exact { 1 } else { 2 };
    if term.chars().count() < min {
        return invalid(format!(
            "Validation failed: term: String must contain at least {min} character(s)"
        ));
    }
    if !exact {
        // Partial matching would need a scan of every record per request; ferry never asks
        // for it, so the emulator says so rather than answering wrongly.
        return invalid(
            "Validation failed: exact_match: the emulator supports exact_match=true only",
        );
    }
    let (limit, from) = match (limit(&params), cursor(&params)) {
        (Ok(l), Ok(c)) => (l, c.unwrap_or(0) as usize),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let requested = csv(&params, "fields");
    if let Some(bad) = requested.iter().find(|f| !SearchField::known(kind, f)) {
        return invalid(format!(
            "Validation failed: fields: Invalid enum value '{bad}'"
        ));
    }
    let fields: Vec<SearchField> = if requested.is_empty() {
        ["name", "email", "phone", "address", "custom_fields"]
            .iter()
            .filter_map(|f| SearchField::parse(kind, f))
            .collect()
    } else {
        requested
            .iter()
            .filter_map(|f| SearchField::parse(kind, f))
            .collect()
    };
    let org_filter = match params.get("organization_id").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return invalid("Validation failed: organization_id: Expected number"),
    };
    let data = emulator.read();
    let store = data.store(kind);
    let mut ids: Vec<u64> = fields
        .iter()
        .flat_map(|f| store.exact(*f, &term).iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let matching: Vec<&Record> = ids
        .iter()
        .filter_map(|id| store.get(*id))
        .filter(|r| org_filter.is_none_or(|o| r.org_id == Some(o)))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(limit)
        .map(|r| {
            let org = r.org_id.and_then(|o| data.organizations.get(o));
            json!({"result_score": 1.0, "item": store.render_search_item(r, org)})
        })
        .collect();
    let next = (from + limit < matching.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!({"items": page}), json!({"next_cursor": next}))
}

/// A field's options as the fields APIs list them (`null` for fields without options).
fn render_options(f: &super::store::Field) -> Value {
    if !matches!(f.field_type.as_str(), "enum" | "set") {
        return Value::Null;
    }
    json!(
        f.options
            .iter()
            .map(|o| json!({"id": o.id, "label": o.label}))
            .collect::<Vec<_>>()
    )
}

fn render_field_v2(f: &super::store::Field) -> Value {
    let subfields = match f.field_type.as_str() {
        "address" => json!(
            super::store::ADDRESS_PARTS
                .iter()
                .map(|p| json!({"field_code": p, "field_name": p, "field_type": "varchar"}))
                .collect::<Vec<_>>()
        ),
        _ => Value::Null,
    };
    json!({
        "field_name": f.name,
        "field_code": f.code,
        "field_type": f.field_type,
        "is_custom_field": f.custom,
        "is_optional_response_field": f.optional_response,
        "options": render_options(f),
        "subfields": subfields,
    })
}

/// `GET /api/v2/{personFields|organizationFields}/{field_code}`: one field definition.
async fn get_field(emulator: &Emulator, kind: Kind, code: &str) -> Response {
    let data = emulator.read();
    match data.store(kind).fields.iter().find(|f| f.code == code) {
        Some(f) => ok(render_field_v2(f), Value::Null),
        None => not_found("Field not found"),
    }
}

/// `GET /api/v2/{personFields|organizationFields}`: cursor-paged field definitions.
async fn list_fields_v2(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    Query(params): Params,
) -> Response {
    let Some(kind) = Kind::parse_fields(&segment) else {
        return not_found("Unknown method .");
    };
    let (limit, from) = match (limit(&params), cursor(&params)) {
        (Ok(l), Ok(c)) => (l, c.unwrap_or(0) as usize),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let data = emulator.read();
    let fields = &data.store(kind).fields;
    let page: Vec<Value> = fields
        .iter()
        .skip(from)
        .take(limit)
        .map(render_field_v2)
        .collect();
    let next = (from + limit < fields.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!(page), json!({"next_cursor": next}))
}

/// `POST /api/v2/{personFields|organizationFields}`: creates a custom field.
async fn create_field(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let Some(kind) = Kind::parse_fields(&segment) else {
        return not_found("Unknown method .");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = body
        .get("field_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return invalid("Validation failed: field_name: Required");
    };
    let Some(field_type) = body
        .get("field_type")
        .and_then(Value::as_str)
        .filter(|t| CREATABLE_FIELD_TYPES.contains(t))
    else {
        return invalid("Validation failed: field_type: Invalid enum value");
    };
    let mut labels: Vec<&str> = Vec::new();
    match body.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Array(options)) => {
            for (i, option) in options.iter().enumerate() {
                match option
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                {
                    Some(label) => labels.push(label),
                    None => {
                        return invalid(format!("Validation failed: options.{i}.label: Required"));
                    }
                }
            }
        }
        Some(_) => return invalid("Validation failed: options: Expected array"),
    }
    if matches!(field_type, "enum" | "set") && labels.is_empty() {
        return invalid("Validation failed: options: Required for enum and set fields");
    }
    if !matches!(field_type, "enum" | "set") {
        // Options belong to option fields only.
        labels.clear();
    }
    let mut data = emulator.write();
    let store: &mut Store = data.store_mut(kind);
    let index = store.add_field(name, field_type, &labels);
    ok(render_field_v2(&store.fields[index]), Value::Null)
}

/// `GET /v1/{personFields|organizationFields}`: offset-paged field definitions (v1 shape).
pub(crate) async fn list_fields_v1(
    State(emulator): State<Emulator>,
    Path(segment): Path<String>,
    Query(params): Params,
) -> Response {
    let Some(kind) = Kind::parse_fields(&segment) else {
        return not_found("Unknown method .");
    };
    let start: usize = params
        .get("start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: usize = params
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let data = emulator.read();
    let fields = &data.store(kind).fields;
    let page: Vec<Value> = fields
        .iter()
        .skip(start)
        .take(limit)
        .map(|f| {
            json!({
                "id": f.id,
                "key": f.code,
                "name": f.name,
                "field_type": f.field_type,
                "edit_flag": f.custom,
                "active_flag": true,
                "add_visible_flag": true,
                "mandatory_flag": f.code == "name",
                "options": render_options(f),
            })
        })
        .collect();
    let more = start + limit < fields.len();
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(start + limit);
    }
    ok(json!(page), json!({"pagination": pagination}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_look_opaque() {
        for p in [0, 1, 99, 1_000_001, u64::MAX] {
            let c = encode_cursor(p);
            assert!(c.bytes().all(|b| B64.contains(&b)), "{c}");
            assert_eq!(decode_cursor(&c), Some(p));
        }
        assert_eq!(decode_cursor("not a cursor!"), None);
    }
}
