//! The routes of the sales objects: v1 users, v2 pipelines and stages, v2 deals (list with
//! filters, get, create, update, delete, search), v2 and v1 deal fields, v1 deal participants,
//! and v1 notes (offset-paged list with filters, get, create, update, delete).

#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::api::{csv, cursor, encode_cursor, limit, parse_body};
use super::crm::{
    Crm, cell_id, d, format_v1_time, n, parse_v1_time, render_deal, render_user, table_message,
};
use super::gate::{error, invalid, not_found, ok};
use super::store::parse_rfc3339;
use super::{Data, Emulator};
use crate::table::{Cell, Row, Show};

type Params = Query<HashMap<String, String>>;

/// The (column, value) cells of a table write.
type Cells = Vec<(usize, Option<Cell>)>;

/// v1's default page size, and its largest.
const V1_DEFAULT_LIMIT: usize = 100;
const V1_MAX_LIMIT: usize = 500;

/// A v1 400 (no `code`).
fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message, None)
}

fn parse_id(raw: &str) -> Result<u64, Response> {
    raw.parse::<u64>()
        .map_err(|_| invalid("Validation failed: id: Expected number, received string"))
}

fn number_param(params: &HashMap<String, String>, key: &str) -> Result<Option<u64>, Response> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| invalid(format!("Validation failed: {key}: Expected number"))),
    }
}

pub(super) fn time_param(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<i64>, Response> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_rfc3339(v).map(Some).ok_or_else(|| {
            invalid(format!(
                "Validation failed: {key}: Invalid datetime, expected RFC 3339"
            ))
        }),
    }
}

/// `start` and `limit` of a v1 offset-paged list.
fn offset_page(params: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let start = match params.get("start") {
        None => 0,
        Some(s) => s
            .parse()
            .map_err(|_| bad_request("start must be a non-negative integer"))?,
    };
    let limit = match params.get("limit") {
        None => V1_DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad_request("limit must be a positive integer"))?
            .clamp(1, V1_MAX_LIMIT),
    };
    Ok((start, limit))
}

fn pagination(start: usize, limit: usize, more: bool) -> Value {
    let mut p = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        p["next_start"] = json!(start + limit);
    }
    json!({"pagination": p})
}

// ---------------------------------------------------------------------------------------------
// Users

/// `GET /v1/users`: every user of the company, active or not.
pub(crate) async fn users(State(emulator): State<Emulator>) -> Response {
    let data = emulator.read();
    let crm = &data.crm;
    let users: Vec<Value> = crm.users.iter().map(|u| render_user(crm, u)).collect();
    ok(json!(users), Value::Null)
}

/// `GET /v1/users/{id}`.
pub(crate) async fn user(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let data = emulator.read();
    match data.crm.user(id) {
        Some(u) => ok(render_user(&data.crm, u), Value::Null),
        None => not_found("User not found"),
    }
}

/// `PUT /v1/users/{id}`: only `active_flag` can change (an admin deactivating a user).
pub(crate) async fn update_user(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(active) = body.get("active_flag").and_then(Value::as_bool) else {
        return bad_request("active_flag is required and must be a boolean");
    };
    let mut data = emulator.write();
    let crm = &mut data.crm;
    let Some(user) = crm.users.iter_mut().find(|u| u.id == id) else {
        return not_found("User not found");
    };
    user.active = active;
    let user = user.clone();
    ok(render_user(crm, &user), Value::Null)
}

/// `GET /v1/users/find?term=&search_by_email=0|1`: users whose name (or email) contains the term,
/// ignoring case.
pub(crate) async fn find_users(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
    let Some(term) = params
        .get("term")
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
    else {
        return bad_request("term is required");
    };
    let by_email = params.get("search_by_email").is_some_and(|v| v == "1");
    let data = emulator.read();
    let crm = &data.crm;
    let found: Vec<Value> = crm
        .users
        .iter()
        .filter(|u| {
            let hay = if by_email { &u.email } else { &u.name };
            hay.to_lowercase().contains(&term)
        })
        .map(|u| render_user(crm, u))
        .collect();
    ok(json!(found), Value::Null)
}

/// `GET /v1/users/me`: the token's user with the bound company data (id, name, domain).
pub(crate) async fn users_me(State(emulator): State<Emulator>) -> Response {
    let company = emulator.company_id();
    let data = emulator.read();
    let crm = &data.crm;
    let mut me = match crm.user(crm.me) {
        Some(u) => render_user(crm, u),
        None => json!({"id": crm.me}),
    };
    if let Some(obj) = me.as_object_mut() {
        obj.insert("company_id".into(), json!(company));
        obj.insert("company_name".into(), json!("Sandbox Company"));
        obj.insert("company_domain".into(), json!(format!("sandbox-{company}")));
        obj.insert("company_country".into(), json!("EE"));
        obj.insert("is_admin".into(), json!(1));
        obj.insert(
            "language".into(),
            json!({"language_code": "en", "country_code": "US"}),
        );
    }
    ok(me, Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Pipelines and stages

fn sorted_by_id_only(params: &HashMap<String, String>, extra: &[&str]) -> Result<(), Response> {
    let by = params.get("sort_by").map(String::as_str);
    if by.is_some_and(|b| b != "id" && !extra.contains(&b))
        || params
            .get("sort_direction")
            .is_some_and(|s| s != "asc" && s != "desc")
    {
        return Err(invalid("Validation failed: sort_by: Invalid enum value"));
    }
    if params.get("sort_direction").is_some_and(|s| s == "desc")
        || by.is_some_and(|b| b != "id" && b != "order_nr")
    {
        return Err(invalid(
            "Validation failed: sort_by: the emulator sorts by id (or order_nr) ascending only",
        ));
    }
    Ok(())
}

/// `GET /api/v2/pipelines`: cursor-paged.
pub(crate) async fn pipelines(State(emulator): State<Emulator>, Query(params): Params) -> Response {
    let (limit, from) = match (limit(&params), cursor(&params)) {
        (Ok(l), Ok(c)) => (l, c.unwrap_or(0) as usize),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = sorted_by_id_only(&params, &["update_time", "add_time"]) {
        return r;
    }
    let data = emulator.read();
    let all = &data.crm.pipelines;
    let page: Vec<Value> = all
        .iter()
        .enumerate()
        .skip(from)
        .take(limit)
        .map(|(i, p)| {
            json!({
                "id": p.id,
                "name": p.name,
                "order_nr": i + 1,
                "is_deleted": false,
                "is_deal_probability_enabled": false,
                "add_time": "2023-03-14T08:00:00Z",
                "update_time": "2023-03-14T08:00:00Z",
                "is_selected": i == 0,
            })
        })
        .collect();
    let next = (from + limit < all.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!(page), json!({"next_cursor": next}))
}

/// `GET /api/v2/stages?pipeline_id=`: cursor-paged, all pipelines' stages when none is named.
pub(crate) async fn stages(State(emulator): State<Emulator>, Query(params): Params) -> Response {
    let (limit, from, pipeline) = match (
        limit(&params),
        cursor(&params),
        number_param(&params, "pipeline_id"),
    ) {
        (Ok(l), Ok(c), Ok(p)) => (l, c.unwrap_or(0) as usize, p),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    if let Err(r) = sorted_by_id_only(&params, &["update_time", "add_time", "order_nr"]) {
        return r;
    }
    let data = emulator.read();
    let crm = &data.crm;
    let matching: Vec<_> = crm
        .stages
        .iter()
        .filter(|s| pipeline.is_none_or(|p| crm.pipelines[s.pipeline].id == p))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(limit)
        .map(|s| {
            json!({
                "id": s.id,
                "order_nr": s.order_nr,
                "name": s.name,
                "is_deleted": false,
                "deal_probability": 100,
                "pipeline_id": crm.pipelines[s.pipeline].id,
                "is_deal_rot_enabled": false,
                "days_to_rotten": null,
                "add_time": "2023-03-14T08:00:00Z",
                "update_time": "2023-03-14T08:00:00Z",
            })
        })
        .collect();
    let next = (from + limit < matching.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!(page), json!({"next_cursor": next}))
}

// ---------------------------------------------------------------------------------------------
// Deals

/// Most ids one `ids` list may carry.
const MAX_IDS: usize = 100;

/// Which deals a list shows.
struct DealFilter {
    owner: Option<u64>,
    person: Option<u64>,
    org: Option<u64>,
    pipeline: Option<u64>,
    stage: Option<u64>,
    statuses: Vec<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl DealFilter {
    fn parse(params: &HashMap<String, String>) -> Result<DealFilter, Response> {
        let statuses = csv(params, "status");
        if let Some(bad) = statuses
            .iter()
            .find(|s| !["open", "won", "lost", "deleted"].contains(&s.as_str()))
        {
            return Err(invalid(format!(
                "Validation failed: status: Invalid enum value '{bad}'. Expected open | won | lost | deleted"
            )));
        }
        Ok(DealFilter {
            owner: number_param(params, "owner_id")?,
            person: number_param(params, "person_id")?,
            org: number_param(params, "org_id")?,
            pipeline: number_param(params, "pipeline_id")?,
            stage: number_param(params, "stage_id")?,
            statuses,
            since: time_param(params, "updated_since")?,
            until: time_param(params, "updated_until")?,
        })
    }

    fn show(&self) -> Show {
        if self.statuses.iter().any(|s| s == "deleted") {
            Show::All
        } else {
            Show::Live
        }
    }

    fn matches(&self, crm: &Crm, row: &Row) -> bool {
        let status_ok = if self.statuses.is_empty() {
            row.is_live()
        } else if !row.is_live() {
            self.statuses.iter().any(|s| s == "deleted")
        } else {
            let status = row.get(d::STATUS).and_then(Cell::as_str).unwrap_or("open");
            self.statuses.iter().any(|s| s == status)
        };
        let id_ok = |want: Option<u64>, col: usize, default: Option<u64>| {
            want.is_none_or(|w| cell_id(row, col).or(default) == Some(w))
        };
        status_ok
            && id_ok(self.owner, d::OWNER, Some(crm.me))
            && id_ok(self.person, d::PERSON, None)
            && id_ok(self.org, d::ORG, None)
            && id_ok(self.pipeline, d::PIPELINE, None)
            && id_ok(self.stage, d::STAGE, None)
            && self.since.is_none_or(|t| row.modified_ms >= t)
            && self.until.is_none_or(|t| row.modified_ms < t)
    }
}

/// `custom_fields` of a read: at most 15 keys.
fn custom_only(params: &HashMap<String, String>) -> Result<Option<Vec<String>>, Response> {
    let custom = csv(params, "custom_fields");
    if custom.len() > 15 {
        return Err(invalid(
            "Validation failed: custom_fields: A maximum of 15 keys is allowed",
        ));
    }
    Ok((!custom.is_empty()).then_some(custom))
}

/// `GET /api/v2/deals`: cursor paging in id order, with the documented filters, or `ids`.
pub(crate) async fn list_deals(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
    let (limit, after, filter, custom) = match (
        limit(&params),
        cursor(&params),
        DealFilter::parse(&params),
        custom_only(&params),
    ) {
        (Ok(l), Ok(c), Ok(f), Ok(o)) => (l, c, f, o),
        (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), _) | (.., Err(r)) => return r,
    };
    let order = match super::api::Order::parse(&params) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if params.contains_key("filter_id") {
        return invalid("Validation failed: filter_id: the emulator has no saved filters");
    }
    let data = emulator.read();
    let crm = &data.crm;
    let custom = custom.as_deref();
    let ids = csv(&params, "ids");
    if !ids.is_empty() {
        if ids.len() > MAX_IDS {
            return invalid(format!(
                "Validation failed: ids: Array must contain at most {MAX_IDS} element(s)"
            ));
        }
        let mut wanted = Vec::with_capacity(ids.len());
        for id in &ids {
            match id.parse::<u64>() {
                Ok(n) => wanted.push(n),
                Err(_) => return invalid("Validation failed: ids: Expected number"),
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let items: Vec<Value> = wanted
            .iter()
            .filter_map(|id| crm.deals.get(*id))
            .filter(|r| filter.matches(crm, r))
            .map(|r| render_deal(crm, r, custom))
            .collect();
        return ok(json!(items), json!({"next_cursor": null}));
    }
    let show = filter.show();
    if !order.by_id() {
        let rows = crm
            .deals
            .iter(show)
            .filter(|r| filter.matches(crm, r))
            .map(|r| ((r.created_ms, r.modified_ms, r.id), r))
            .collect();
        let (page, next) = super::api::sorted_page(rows, order, after.unwrap_or(0), limit);
        let items: Vec<Value> = page
            .into_iter()
            .map(|r| render_deal(crm, r, custom))
            .collect();
        return ok(
            json!(items),
            json!({"next_cursor": next.map(encode_cursor)}),
        );
    }
    let mut after = after;
    let mut items = Vec::with_capacity(limit.min(1024));
    let next = loop {
        let page = crm.deals.page(after, limit - items.len(), show);
        items.extend(
            page.rows
                .iter()
                .filter(|r| filter.matches(crm, r))
                .map(|r| render_deal(crm, r, custom)),
        );
        match page.next_after {
            Some(next) if items.len() < limit => after = Some(next),
            other => break other,
        }
    };
    ok(
        json!(items),
        json!({"next_cursor": next.map(encode_cursor)}),
    )
}

/// `GET /api/v2/deals/{id}`.
pub(crate) async fn get_deal(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let (id, custom) = match (parse_id(&id), custom_only(&params)) {
        (Ok(i), Ok(c)) => (i, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let data = emulator.read();
    match data.crm.deals.get(id) {
        Some(row) => ok(render_deal(&data.crm, row, custom.as_deref()), Value::Null),
        None => not_found("Deal not found"),
    }
}

/// The keys a v2 deal write accepts.
const DEAL_KEYS: &[&str] = &[
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "is_deleted",
    "is_archived",
    "archive_time",
    "custom_fields",
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The cells a v2 deal body writes, checked against the account (users, persons,
/// organizations, pipelines and stages) and Pipedrive's rules: `stage_id` sets the pipeline
/// (`pipeline_id` is then ignored), a pipeline alone puts the deal in its first stage, a new
/// deal with neither goes to the first stage of the default pipeline; `status` stamps
/// `won_time`/`lost_time` and `close_time` unless given; `lost_reason` belongs to lost deals.
fn deal_cells(
    data: &Data,
    body: &Value,
    existing: Option<&Row>,
    now: i64,
) -> Result<Cells, String> {
    let crm = &data.crm;
    let Some(body) = body.as_object() else {
        return Err("Validation failed: body: Expected object".into());
    };
    if let Some(unknown) = body.keys().find(|k| !DEAL_KEYS.contains(&k.as_str())) {
        return Err(format!("Validation failed: {unknown}: Unrecognized key"));
    }
    for k in ["is_deleted", "is_archived"] {
        if body.get(k).is_some_and(|v| v.as_bool() == Some(true)) {
            return Err(format!(
                "Validation failed: {k}: the emulator does not archive or delete through writes"
            ));
        }
    }
    let mut cells: Vec<(usize, Option<Cell>)> = Vec::new();
    let id_of = |k: &str| -> Result<Option<Option<u64>>, String> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v.as_u64().map(|n| Some(Some(n))).ok_or_else(|| {
                format!(
                    "Validation failed: {k}: Expected number, received {}",
                    type_name(v)
                )
            }),
        }
    };
    let text = |k: &str| -> Result<Option<Option<Cell>>, String> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(
                Some(s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| Cell::Text(s.into())),
            )),
            Some(v) => Err(format!(
                "Validation failed: {k}: Expected string, received {}",
                type_name(v)
            )),
        }
    };
    let time = |k: &str| -> Result<Option<Option<Cell>>, String> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_str()
                .and_then(parse_rfc3339)
                .map(|ms| Some(Some(Cell::Time(ms))))
                .ok_or_else(|| format!("Validation failed: {k}: Invalid datetime")),
        }
    };
    let number = |k: &str| -> Result<Option<Option<Cell>>, String> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match (v.as_i64(), v.as_f64()) {
                (Some(i), _) => Ok(Some(Some(Cell::Int(i)))),
                (None, Some(f)) => Ok(Some(Some(Cell::Num(f)))),
                _ => Err(format!(
                    "Validation failed: {k}: Expected number, received {}",
                    type_name(v)
                )),
            },
        }
    };
    if let Some(title) = text("title")? {
        cells.push((d::TITLE, title));
    }
    if let Some(owner) = id_of("owner_id")? {
        let owner = owner.unwrap_or(crm.me);
        crm.check_owner("owner_id", owner)?;
        cells.push((d::OWNER, Some(Cell::Int(owner as i64))));
    } else if existing.is_none() {
        cells.push((d::OWNER, Some(Cell::Int(crm.me as i64))));
    }
    if let Some(person) = id_of("person_id")? {
        if let Some(p) = person
            && data.persons.get(p).is_none()
        {
            return Err(format!(
                "Validation failed: person_id: Person with id {p} does not exist"
            ));
        }
        cells.push((d::PERSON, person.map(|p| Cell::Int(p as i64))));
    }
    if let Some(org) = id_of("org_id")? {
        if let Some(o) = org
            && data.organizations.get(o).is_none()
        {
            return Err(format!(
                "Validation failed: org_id: Organization with id {o} does not exist"
            ));
        }
        cells.push((d::ORG, org.map(|o| Cell::Int(o as i64))));
    }
    // Stage and pipeline.
    let stage = match (id_of("stage_id")?, id_of("pipeline_id")?) {
        (Some(Some(s)), _) => Some(crm.stage(s).ok_or_else(|| {
            format!("Validation failed: stage_id: Stage with id {s} does not exist")
        })?),
        (Some(None), _) => return Err("Validation failed: stage_id: Expected number".into()),
        (None, Some(Some(p))) => {
            let pipeline = crm
                .pipelines
                .iter()
                .position(|x| x.id == p)
                .ok_or_else(|| {
                    format!("Validation failed: pipeline_id: Pipeline with id {p} does not exist")
                })?;
            let current = existing
                .and_then(|r| cell_id(r, d::STAGE))
                .and_then(|s| crm.stage(s))
                .filter(|s| s.pipeline == pipeline);
            current.or_else(|| crm.stages.iter().find(|s| s.pipeline == pipeline))
        }
        (None, Some(None)) => {
            return Err("Validation failed: pipeline_id: Expected number".into());
        }
        (None, None) if existing.is_none() => crm.stages.first(),
        (None, None) => None,
    };
    if let Some(stage) = stage {
        let changed = existing.and_then(|r| cell_id(r, d::STAGE)) != Some(stage.id);
        cells.push((d::STAGE, Some(Cell::Int(stage.id as i64))));
        cells.push((
            d::PIPELINE,
            Some(Cell::Int(crm.pipelines[stage.pipeline].id as i64)),
        ));
        if changed {
            cells.push((d::STAGE_CHANGE, Some(Cell::Time(now))));
        }
    }
    if let Some(v) = number("value")? {
        cells.push((d::VALUE, v));
    } else if existing.is_none() {
        cells.push((d::VALUE, Some(Cell::Num(0.0))));
    }
    match text("currency")? {
        Some(Some(Cell::Text(c))) => {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(
                    "Validation failed: currency: Expected a 3-letter ISO 4217 code in capitals"
                        .into(),
                );
            }
            cells.push((d::CURRENCY, Some(Cell::Text(c))));
        }
        Some(_) => cells.push((
            d::CURRENCY,
            Some(Cell::Text(crm.default_currency.as_str().into())),
        )),
        None if existing.is_none() => {
            cells.push((
                d::CURRENCY,
                Some(Cell::Text(crm.default_currency.as_str().into())),
            ));
        }
        None => {}
    }
    for (k, col) in [
        ("probability", d::PROBABILITY),
        ("visible_to", d::VISIBLE_TO),
    ] {
        if let Some(v) = number(k)? {
            cells.push((col, v));
        }
    }
    if let Some(date) = text("expected_close_date")? {
        cells.push((d::EXPECTED_CLOSE, date));
    }
    if let Some(v) = body.get("label_ids")
        && !v.as_array().is_some_and(|a| a.iter().all(Value::is_u64))
    {
        return Err("Validation failed: label_ids: Expected array of numbers".into());
    }
    // Status and its times.
    let was = existing
        .and_then(|r| r.get(d::STATUS))
        .and_then(Cell::as_str)
        .unwrap_or("open")
        .to_owned();
    let status = match text("status")? {
        Some(Some(Cell::Text(s))) => {
            if !["open", "won", "lost"].contains(&&*s) {
                return Err(
                    "Validation failed: status: Invalid enum value. Expected open | won | lost"
                        .into(),
                );
            }
            s.to_string()
        }
        Some(_) => "open".to_owned(),
        None => was.clone(),
    };
    if existing.is_none() || status != was {
        cells.push((d::STATUS, Some(Cell::Text(status.as_str().into()))));
    }
    let won_time = time("won_time")?;
    let lost_time = time("lost_time")?;
    let close_time = time("close_time")?;
    let lost_reason = text("lost_reason")?;
    if status != "won" && won_time.as_ref().is_some_and(Option::is_some) {
        return Err("Validation failed: won_time: Can only be set on a won deal".into());
    }
    if status != "lost" && lost_time.as_ref().is_some_and(Option::is_some) {
        return Err("Validation failed: lost_time: Can only be set on a lost deal".into());
    }
    if status != "lost" && lost_reason.as_ref().is_some_and(Option::is_some) {
        return Err("Validation failed: lost_reason: Can only be set on a lost deal".into());
    }
    if status == "open" && close_time.as_ref().is_some_and(Option::is_some) {
        return Err("Validation failed: close_time: Can only be set on a won or lost deal".into());
    }
    let reopened_or_switched = status != was;
    let stamp = |given: Option<Option<Cell>>, col: usize, cells: &mut Vec<_>| {
        let current = existing.and_then(|r| r.get(col)).cloned();
        let value = match given {
            Some(v) => v,
            None if reopened_or_switched || current.is_none() => Some(Cell::Time(now)),
            None => current,
        };
        cells.push((col, value.clone()));
        value
    };
    // The close time follows the won or lost time unless given, or kept from before when
    // neither the status nor that time changes.
    let close = |given: Option<Option<Cell>>, at: Option<Cell>, stamped: bool| match given {
        Some(v) => v,
        None if stamped || reopened_or_switched => at,
        None => existing.and_then(|r| r.get(d::CLOSE_TIME)).cloned().or(at),
    };
    match status.as_str() {
        "won" => {
            let given = won_time.is_some();
            let won = stamp(won_time, d::WON_TIME, &mut cells);
            cells.push((d::LOST_TIME, None));
            cells.push((d::LOST_REASON, None));
            cells.push((d::CLOSE_TIME, close(close_time, won, given)));
        }
        "lost" => {
            let given = lost_time.is_some();
            let lost = stamp(lost_time, d::LOST_TIME, &mut cells);
            cells.push((d::WON_TIME, None));
            if let Some(reason) = lost_reason {
                cells.push((d::LOST_REASON, reason));
            }
            cells.push((d::CLOSE_TIME, close(close_time, lost, given)));
        }
        _ => {
            for col in [d::WON_TIME, d::LOST_TIME, d::CLOSE_TIME, d::LOST_REASON] {
                cells.push((col, None));
            }
        }
    }
    if let Some(v) = body.get("custom_fields") {
        let Some(values) = v.as_object() else {
            return Err("Validation failed: custom_fields: Expected object".into());
        };
        for (code, value) in values {
            let Some(field) = crm.deal_field(code) else {
                return Err(format!(
                    "Validation failed: custom_fields.{code}: Unknown custom field"
                ));
            };
            let Some(column) = field.column else { continue };
            let cell = match (field.field_type.as_str(), value) {
                (_, Value::Null) => None,
                ("enum", v) => {
                    let id = v
                        .as_u64()
                        .filter(|id| field.options.iter().any(|(o, _)| o == id));
                    match id {
                        Some(id) => Some(Cell::Int(id as i64)),
                        None => {
                            return Err(format!(
                                "Validation failed: custom_fields.{code}: Invalid option id"
                            ));
                        }
                    }
                }
                ("double" | "monetary", v) => match v.as_f64() {
                    Some(f) => Some(Cell::Num(f)),
                    None => {
                        return Err(format!(
                            "Validation failed: custom_fields.{code}: Expected number, received {}",
                            type_name(v)
                        ));
                    }
                },
                (_, Value::String(s)) => Some(Cell::Text(s.as_str().into())),
                (_, v) => {
                    return Err(format!(
                        "Validation failed: custom_fields.{code}: Expected string, received {}",
                        type_name(v)
                    ));
                }
            };
            cells.push((column, cell));
        }
    }
    Ok(cells)
}

/// `POST /api/v2/deals`: one deal (Pipedrive has no batch create).
pub(crate) async fn create_deal(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let cells = match deal_cells(&data, &body, None, now) {
        Ok(mut c) => {
            c.push((d::CREATOR, Some(Cell::Int(data.crm.me as i64))));
            c
        }
        Err(m) => return invalid(m),
    };
    let crm = &mut data.crm;
    match crm.insert_deal(cells, now, now) {
        Ok(id) => {
            if let Some(person) = crm.deals.get(id).and_then(|r| cell_id(r, d::PERSON)) {
                crm.add_participant(id, person);
            }
            match crm.deals.get(id) {
                Some(row) => ok(render_deal(crm, row, None), Value::Null),
                None => not_found("Deal not found"),
            }
        }
        Err(e) => invalid(table_message(&e)),
    }
}

/// `PATCH /api/v2/deals/{id}`.
pub(crate) async fn update_deal(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let Some(existing) = data.crm.deals.get(id) else {
        return not_found("Deal not found");
    };
    let cells = match deal_cells(&data, &body, Some(existing), now) {
        Ok(c) => c,
        Err(m) => return invalid(m),
    };
    let crm = &mut data.crm;
    if let Err(e) = crm.update_deal(id, cells, now) {
        return invalid(table_message(&e));
    }
    if let Some(person) = crm.deals.get(id).and_then(|r| cell_id(r, d::PERSON)) {
        crm.add_participant(id, person);
    }
    match crm.deals.get(id) {
        Some(row) => ok(render_deal(crm, row, None), Value::Null),
        None => not_found("Deal not found"),
    }
}

/// `DELETE /api/v2/deals/{id}`: marks the deal deleted (listed with `status=deleted`).
pub(crate) async fn delete_deal(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut data = emulator.write();
    match data.crm.deals.archive(id, emulator.now_ms()) {
        Ok(()) => ok(json!({"id": id}), Value::Null),
        Err(_) => not_found("Deal not found"),
    }
}

/// `GET /api/v2/deals/search`: exact-match search on custom field values (or titles).
pub(crate) async fn search_deals(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
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
        return invalid(
            "Validation failed: exact_match: the emulator supports exact_match=true only",
        );
    }
    let fields = csv(&params, "fields");
    if let Some(bad) = fields
        .iter()
        .find(|f| !["custom_fields", "notes", "title"].contains(&f.as_str()))
    {
        return invalid(format!(
            "Validation failed: fields: Invalid enum value '{bad}'"
        ));
    }
    let (limit, from) = match (limit(&params), cursor(&params)) {
        (Ok(l), Ok(c)) => (l, c.unwrap_or(0) as usize),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let all = fields.is_empty();
    let data = emulator.read();
    let crm = &data.crm;
    let mut ids = Vec::new();
    if all || fields.iter().any(|f| f == "custom_fields") {
        ids.extend(crm.deals_with_custom_value(&term));
    }
    if all || fields.iter().any(|f| f == "title") {
        // Titles are not indexed: a scan, fine for the emulator's tests.
        let folded = term.to_lowercase();
        ids.extend(
            crm.deals
                .iter(Show::Live)
                .filter(|r| {
                    r.get(d::TITLE)
                        .and_then(Cell::as_str)
                        .is_some_and(|t| t.to_lowercase() == folded)
                })
                .map(|r| r.id),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    let page: Vec<Value> = ids
        .iter()
        .skip(from)
        .take(limit)
        .filter_map(|id| crm.deals.get(*id))
        .map(|r| {
            let custom: Vec<Value> = crm
                .deal_fields
                .iter()
                .filter(|f| f.field_type != "enum")
                .filter_map(|f| f.column)
                .filter_map(|c| r.get(c))
                .filter_map(Cell::as_str)
                .map(|s| json!(s))
                .collect();
            let stage = cell_id(r, d::STAGE).and_then(|s| crm.stage(s));
            let person = cell_id(r, d::PERSON).and_then(|p| data.persons.get(p));
            let org = cell_id(r, d::ORG).and_then(|o| data.organizations.get(o));
            json!({"result_score": 1.0, "item": {
                "id": r.id,
                "type": "deal",
                "title": r.get(d::TITLE).and_then(Cell::as_str),
                "value": super::crm::cell_json(r.get(d::VALUE)),
                "currency": r.get(d::CURRENCY).and_then(Cell::as_str),
                "status": r.get(d::STATUS).and_then(Cell::as_str),
                "visible_to": 3,
                "owner": {"id": cell_id(r, d::OWNER).unwrap_or(crm.me)},
                "stage": stage.map(|s| json!({"id": s.id, "name": s.name})),
                "person": person.map(|p| json!({"id": p.id, "name": p.name})),
                "organization": org.map(|o| json!({"id": o.id, "name": o.name})),
                "custom_fields": custom,
                "notes": [],
            }})
        })
        .collect();
    let next = (from + limit < ids.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!({"items": page}), json!({"next_cursor": next}))
}

// ---------------------------------------------------------------------------------------------
// Deal fields

fn render_deal_field_v2(f: &super::crm::DealField) -> Value {
    let options = if f.field_type == "enum" {
        json!(
            f.options
                .iter()
                .map(|(id, label)| json!({"id": id, "label": label}))
                .collect::<Vec<_>>()
        )
    } else {
        Value::Null
    };
    let subfields = if f.code == "value" {
        json!([
            {"field_code": "value", "field_name": "Amount of Value", "field_type": "double"},
            {"field_code": "currency", "field_name": "Currency of Value", "field_type": "varchar"},
        ])
    } else {
        Value::Null
    };
    json!({
        "field_name": f.name,
        "field_code": f.code,
        "field_type": f.field_type,
        "is_custom_field": f.custom,
        "is_optional_response_field": false,
        "options": options,
        "subfields": subfields,
    })
}

/// `GET /api/v2/dealFields`: cursor-paged.
pub(crate) async fn list_deal_fields(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
    let (limit, from) = match (limit(&params), cursor(&params)) {
        (Ok(l), Ok(c)) => (l, c.unwrap_or(0) as usize),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let data = emulator.read();
    let fields = &data.crm.deal_fields;
    let page: Vec<Value> = fields
        .iter()
        .skip(from)
        .take(limit)
        .map(render_deal_field_v2)
        .collect();
    let next = (from + limit < fields.len()).then(|| encode_cursor((from + limit) as u64));
    ok(json!(page), json!({"next_cursor": next}))
}

/// `GET /v1/dealFields`: offset-paged, v1 shape.
pub(crate) async fn list_deal_fields_v1(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
    let (start, limit) = match offset_page(&params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data = emulator.read();
    let fields = &data.crm.deal_fields;
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
                "mandatory_flag": f.code == "title",
                "options": render_deal_field_v2(f)["options"].clone(),
            })
        })
        .collect();
    ok(
        json!(page),
        pagination(start, limit, start + limit < fields.len()),
    )
}

/// Deal field types the emulator creates.
const DEAL_FIELD_TYPES: &[&str] = &[
    "varchar",
    "varchar_auto",
    "text",
    "double",
    "monetary",
    "enum",
];

/// `POST /api/v2/dealFields`: a custom deal field.
pub(crate) async fn create_deal_field(State(emulator): State<Emulator>, body: Bytes) -> Response {
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
    let Some(field_type) = body.get("field_type").and_then(Value::as_str) else {
        return invalid("Validation failed: field_type: Required");
    };
    if !DEAL_FIELD_TYPES.contains(&field_type) {
        return invalid(format!(
            "Validation failed: field_type: the emulator creates deal fields of types {}",
            DEAL_FIELD_TYPES.join(", ")
        ));
    }
    let labels: Vec<&str> = body
        .get("options")
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(|o| o.get("label").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if field_type == "enum" && labels.is_empty() {
        return invalid("Validation failed: options: Required for enum and set fields");
    }
    let mut data = emulator.write();
    let at = data.crm.add_deal_field(name, field_type, &labels);
    ok(render_deal_field_v2(&data.crm.deal_fields[at]), Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Deal participants (v1)

/// `GET /v1/deals/{id}/participants`: offset-paged, the deal's `person_id` included.
pub(crate) async fn participants(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let (start, limit) = match offset_page(&params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data = emulator.read();
    let crm = &data.crm;
    let Some(deal) = crm.deals.get(id) else {
        return not_found("Deal not found");
    };
    let people = crm.participants.from(id, None, usize::MAX);
    let page: Vec<Value> = people
        .iter()
        .skip(start)
        .take(limit)
        .map(|(person, _)| {
            let p = data.persons.get(*person);
            json!({
                "id": crm.participant_id(id, *person),
                "person_id": {"value": person, "name": p.map(|p| p.name.clone())},
                "add_time": format_v1_time(deal.created_ms),
                "active_flag": true,
                "related_item_data": {"deal_id": id, "title": deal.get(d::TITLE).and_then(Cell::as_str)},
                "person": {"id": person, "name": p.map(|p| p.name.clone())},
                "added_by_user_id": crm.me,
            })
        })
        .collect();
    ok(
        json!(page),
        pagination(start, limit, start + limit < people.len()),
    )
}

/// `POST /v1/deals/{id}/participants` `{"person_id": …}`.
pub(crate) async fn add_participant(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(person) = body.get("person_id").and_then(Value::as_u64) else {
        return bad_request("person_id is required and must be a number");
    };
    let mut data = emulator.write();
    if data.crm.deals.get(id).is_none() {
        return not_found("Deal not found");
    }
    if data.persons.get(person).is_none() {
        return bad_request(format!("Person with id {person} does not exist"));
    }
    let crm = &mut data.crm;
    let participant = match crm.add_participant(id, person) {
        Some(p) => p,
        None => {
            return bad_request("This person is already a participant of the deal");
        }
    };
    ok(
        json!({"id": participant, "person_id": person, "deal_id": id, "active_flag": true}),
        Value::Null,
    )
}

/// `DELETE /v1/deals/{id}/participants/{deal_participant_id}`.
pub(crate) async fn delete_participant(
    State(emulator): State<Emulator>,
    Path((id, participant)): Path<(String, String)>,
) -> Response {
    let (Ok(id), Ok(participant)) = (id.parse::<u64>(), participant.parse::<u64>()) else {
        return bad_request("id must be a number");
    };
    let mut data = emulator.write();
    if data.crm.remove_participant(id, participant) {
        ok(json!({"id": participant}), Value::Null)
    } else {
        not_found("Participant not found")
    }
}

// ---------------------------------------------------------------------------------------------
// Notes (v1)

/// Renders note `row` as v1 does.
fn render_note(data: &Data, row: &Row) -> Value {
    let crm = &data.crm;
    let user_id = cell_id(row, n::USER).unwrap_or(crm.me);
    let user = crm.user(user_id);
    let deal = cell_id(row, n::DEAL);
    let person = cell_id(row, n::PERSON);
    let org = cell_id(row, n::ORG);
    let flag = |c: usize| matches!(row.get(c), Some(Cell::Bool(true)));
    json!({
        "id": row.id,
        "active_flag": row.is_live(),
        "add_time": format_v1_time(row.created_ms),
        "update_time": format_v1_time(row.modified_ms),
        "content": row.get(n::CONTENT).and_then(Cell::as_str).unwrap_or(""),
        "deal_id": deal,
        "deal": deal.and_then(|id| crm.deals.get_any(id)).map(|r| json!({"title": r.get(d::TITLE).and_then(Cell::as_str)})),
        "person_id": person,
        "person": person.and_then(|id| data.persons.get(id)).map(|p| json!({"name": p.name})),
        "org_id": org,
        "organization": org.and_then(|id| data.organizations.get(id)).map(|o| json!({"name": o.name})),
        "lead_id": null,
        "project_id": null,
        "project": null,
        "task_id": null,
        "task": null,
        "last_update_user_id": cell_id(row, n::LAST_UPDATE_USER).unwrap_or(user_id),
        "pinned_to_deal_flag": flag(n::PIN_DEAL),
        "pinned_to_person_flag": flag(n::PIN_PERSON),
        "pinned_to_organization_flag": flag(n::PIN_ORG),
        "pinned_to_project_flag": false,
        "pinned_to_task_flag": false,
        "user_id": user_id,
        "user": user.map(|u| json!({"email": u.email, "name": u.name, "icon_url": null, "is_you": u.id == crm.me})),
    })
}

/// Which notes a list shows.
struct NoteFilter {
    user: Option<u64>,
    deal: Option<u64>,
    person: Option<u64>,
    org: Option<u64>,
    since: Option<i64>,
}

impl NoteFilter {
    fn matches(&self, crm: &Crm, row: &Row) -> bool {
        let is = |want: Option<u64>, col: usize| want.is_none_or(|w| cell_id(row, col) == Some(w));
        self.user
            .is_none_or(|w| cell_id(row, n::USER).unwrap_or(crm.me) == w)
            && is(self.deal, n::DEAL)
            && is(self.person, n::PERSON)
            && is(self.org, n::ORG)
            && self.since.is_none_or(|t| row.modified_ms >= t)
    }
}

/// `GET /v1/notes`: offset paging in id order, with the owner, parent and `updated_since`
/// filters.
pub(crate) async fn list_notes(
    State(emulator): State<Emulator>,
    Query(params): Params,
) -> Response {
    let parsed = (|| -> Result<_, Response> {
        Ok((
            offset_page(&params)?,
            NoteFilter {
                user: number_param(&params, "user_id")?,
                deal: number_param(&params, "deal_id")?,
                person: number_param(&params, "person_id")?,
                org: number_param(&params, "org_id")?,
                since: time_param(&params, "updated_since")?,
            },
        ))
    })();
    let ((start, limit), filter) = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    if params
        .get("sort")
        .is_some_and(|s| !s.trim().eq_ignore_ascii_case("id asc"))
    {
        return bad_request("the emulator sorts notes by id ascending only (sort=id ASC)");
    }
    let data = emulator.read();
    let crm = &data.crm;
    let mut matching = crm
        .notes
        .iter(Show::Live)
        .filter(|r| filter.matches(crm, r))
        .skip(start);
    let page: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|r| render_note(&data, r))
        .collect();
    let more = matching.next().is_some();
    ok(json!(page), pagination(start, limit, more))
}

/// `GET /v1/notes/{id}`.
pub(crate) async fn get_note(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let data = emulator.read();
    match data.crm.notes.get(id) {
        Some(row) => ok(render_note(&data, row), Value::Null),
        None => not_found("Note not found"),
    }
}

/// The cells a v1 note body writes: `content` (HTML, required on create), parents checked
/// against the live records, at least one parent left, the author an active user.
fn note_cells(
    data: &Data,
    body: &Value,
    existing: Option<&Row>,
) -> Result<(Cells, Option<i64>), String> {
    let crm = &data.crm;
    let Some(body) = body.as_object() else {
        return Err("The request body must be a JSON object".into());
    };
    let mut cells = Vec::new();
    match body.get("content") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            cells.push((n::CONTENT, Some(Cell::Text(s.as_str().into()))));
        }
        None if existing.is_some() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err("Content is required".into());
        }
        Some(_) => return Err("content must be a string".into()),
    }
    let mut parents = 0;
    for (k, col, exists) in [
        (
            "deal_id",
            n::DEAL,
            &(|id| crm.deals.get(id).is_some()) as &dyn Fn(u64) -> bool,
        ),
        ("person_id", n::PERSON, &|id| data.persons.get(id).is_some()),
        ("org_id", n::ORG, &|id| data.organizations.get(id).is_some()),
    ] {
        match body.get(k) {
            None => {
                if existing.is_some_and(|r| r.get(col).is_some()) {
                    parents += 1;
                }
            }
            Some(Value::Null) => cells.push((col, None)),
            Some(v) => {
                let id = v.as_u64().ok_or_else(|| format!("{k} must be a number"))?;
                if !exists(id) {
                    return Err(format!("{k}: no such record with id {id}"));
                }
                cells.push((col, Some(Cell::Int(id as i64))));
                parents += 1;
            }
        }
    }
    if parents == 0 {
        return Err(
            "The note must be attached to a deal, person, organization, lead or project (deal_id, person_id, org_id, lead_id or project_id)".into(),
        );
    }
    if let Some(v) = body.get("user_id") {
        let id = v.as_u64().ok_or("user_id must be a number")?;
        crm.check_owner("user_id", id)?;
        cells.push((n::USER, Some(Cell::Int(id as i64))));
    } else if existing.is_none() {
        cells.push((n::USER, Some(Cell::Int(crm.me as i64))));
    }
    for (k, col) in [
        ("pinned_to_deal_flag", n::PIN_DEAL),
        ("pinned_to_person_flag", n::PIN_PERSON),
        ("pinned_to_organization_flag", n::PIN_ORG),
    ] {
        if let Some(v) = body.get(k) {
            let flag = v
                .as_u64()
                .filter(|f| *f <= 1)
                .map(|f| f == 1)
                .or_else(|| v.as_bool())
                .ok_or_else(|| format!("{k} must be 0 or 1"))?;
            cells.push((col, Some(Cell::Bool(flag))));
        }
    }
    cells.push((n::LAST_UPDATE_USER, Some(Cell::Int(crm.me as i64))));
    let add_time = match body.get("add_time") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(parse_v1_time)
                .ok_or("add_time must be a UTC time YYYY-MM-DD HH:MM:SS")?,
        ),
    };
    Ok((cells, add_time))
}

/// `POST /v1/notes`.
pub(crate) async fn create_note(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(_) => return bad_request("The request body is not valid JSON"),
    };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let (cells, add_time) = match note_cells(&data, &body, None) {
        Ok(c) => c,
        Err(m) => return bad_request(m),
    };
    let notes = &mut data.crm.notes;
    let checked = match notes.prepare(None, cells, true) {
        Ok(c) => c,
        Err(e) => return bad_request(table_message(&e)),
    };
    let id = notes.insert_checked(checked, add_time.unwrap_or(now), now);
    match data.crm.notes.get(id) {
        Some(row) => ok(render_note(&data, row), Value::Null),
        None => not_found("Note not found"),
    }
}

/// `PUT /v1/notes/{id}`.
pub(crate) async fn update_note(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(_) => return bad_request("The request body is not valid JSON"),
    };
    let mut data = emulator.write();
    let Some(existing) = data.crm.notes.get(id) else {
        return not_found("Note not found");
    };
    let cells = match note_cells(&data, &body, Some(existing)) {
        Ok((c, _)) => c,
        Err(m) => return bad_request(m),
    };
    if let Err(e) = data.crm.notes.update(id, cells, emulator.now_ms(), true) {
        return bad_request(table_message(&e));
    }
    match data.crm.notes.get(id) {
        Some(row) => ok(render_note(&data, row), Value::Null),
        None => not_found("Note not found"),
    }
}

/// `DELETE /v1/notes/{id}`: `data: true`.
pub(crate) async fn delete_note(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_request("id must be a number");
    };
    let mut data = emulator.write();
    match data.crm.notes.archive(id, emulator.now_ms()) {
        Ok(()) => ok(json!(true), Value::Null),
        Err(_) => not_found("Note not found"),
    }
}
