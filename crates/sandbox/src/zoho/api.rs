//! The routes of Deals, Notes and the org's metadata (users, layouts, pipelines, contact roles),
//! behind the same auth, concurrency and credit guard and fault layer as the other routes.

// The helpers that validate a request return the finished error answer (`Err(Response)`) for the
// handler to send as is; it is built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::crm::{self, CONTACT_ROLES, CrmModule, DEALS_LAYOUT, Mode, meta_id};
use super::store::{Module, Store, User};
use super::{
    MAX_PER_PAGE, Shared, Target, WRITE_LIMIT, credits_exhausted, internal, internal_error_item,
    invalid_module, invalid_param, zoho_error,
};
use crate::accounts::Outcome;

fn required_param(name: &str) -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "REQUIRED_PARAM_MISSING",
        "required param is missing",
        json!({"param_name": name}),
    )
}

/// `page` and `per_page` (1–200) of a metadata or related list.
fn paging(page: Option<&str>, per_page: Option<&str>) -> Result<(usize, usize), Response> {
    let per_page = match per_page.map(str::parse::<usize>) {
        None => MAX_PER_PAGE,
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => n,
        Some(_) => return Err(invalid_param("per_page")),
    };
    let page = match page.map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Err(invalid_param("page")),
    };
    Ok((page, per_page))
}

// ---- users ----------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(super) struct UsersParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    ids: Option<String>,
}

fn user_json(store: &Store, u: &User) -> Json {
    let zgid = store.crm.zgid;
    let admin = u.id == store.current_user().id;
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "full_name": u.full_name(),
        "status": if u.active { "active" } else { "disabled" },
        "confirm": true,
        "zuid": (70_000_000 + u.key as u64 * 7_919).to_string(),
        "role": if admin {
            json!({"name": "CEO", "id": meta_id(zgid, 861)})
        } else {
            json!({"name": "Manager", "id": meta_id(zgid, 867)})
        },
        "profile": if admin {
            json!({"name": "Administrator", "id": meta_id(zgid, 497)})
        } else {
            json!({"name": "Standard", "id": meta_id(zgid, 503)})
        },
        "locale": "en_US",
        "time_zone": "America/Los_Angeles",
        "created_time": "2024-01-02T09:00:00+00:00",
        "Modified_Time": "2024-01-02T09:00:00+00:00",
        "type__s": "Regular User",
    })
}

/// `GET /crm/v8/users?type=&page=&per_page=&ids=`: the org's users, deactivated ones with
/// `status: "disabled"`; 204 when none matches.
pub(super) async fn users(
    State(s): State<Arc<Shared>>,
    Query(params): Query<UsersParams>,
) -> Response {
    let (page, per_page) = match paging(params.page.as_deref(), params.per_page.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let kind = params.kind.as_deref().unwrap_or("AllUsers");
    let filter: fn(&User, u64) -> bool = match kind {
        "AllUsers" | "ConfirmedUsers" => |_, _| true,
        "ActiveUsers" | "ActiveConfirmedUsers" => |u, _| u.active,
        "DeactiveUsers" => |u, _| !u.active,
        "NotConfirmedUsers" | "DeletedUsers" => |_, _| false,
        "AdminUsers" | "ActiveConfirmedAdmins" | "CurrentUser" => |u, me| u.id == me,
        _ => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "type"}),
            );
        }
    };
    let ids: Option<Vec<u64>> = params.ids.as_deref().map(|ids| {
        ids.split(',')
            .filter_map(|i| i.trim().parse().ok())
            .collect()
    });
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let me = store.current_user().id;
    let matching: Vec<&User> = store
        .users
        .iter()
        .filter(|u| filter(u, me))
        .filter(|u| ids.as_ref().is_none_or(|ids| ids.contains(&u.id)))
        .collect();
    let start = (page - 1).saturating_mul(per_page);
    let shown: Vec<Json> = matching
        .iter()
        .skip(start)
        .take(per_page)
        .map(|u| user_json(&store, u))
        .collect();
    if shown.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = start + shown.len() < matching.len();
    axum::Json(json!({
        "users": shown,
        "info": {"per_page": per_page, "count": shown.len(), "page": page, "more_records": more},
    }))
    .into_response()
}

/// `GET /crm/v8/users/{id}`.
pub(super) async fn user(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    match id.parse::<u64>().ok().and_then(|id| store.user(id)) {
        Some(u) => axum::Json(json!({"users": [user_json(&store, u)]})).into_response(),
        None => zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the id given seems to be invalid",
            json!({"resource_path_index": 1}),
        ),
    }
}

// ---- layouts and pipelines ------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(super) struct ModuleParam {
    module: Option<String>,
}

/// The id of module `m`'s one layout ("Standard").
fn layout_id(zgid: u64, module: &str) -> String {
    meta_id(
        zgid,
        match module {
            "Accounts" => 91_051,
            "Contacts" => 91_053,
            _ => 91_055,
        },
    )
}

/// `GET /crm/v8/settings/layouts?module=`: each module has one layout, "Standard".
pub(super) async fn layouts(
    State(s): State<Arc<Shared>>,
    Query(params): Query<ModuleParam>,
) -> Response {
    let Some(module) = params.module else {
        return required_param("module");
    };
    if !matches!(module.as_str(), "Accounts" | "Contacts" | "Deals") {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"param_name": "module"}),
        );
    }
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let zgid = store.crm.zgid;
    axum::Json(json!({"layouts": [{
        "id": layout_id(zgid, &module),
        "name": DEALS_LAYOUT,
        "display_label": DEALS_LAYOUT,
        "api_name": DEALS_LAYOUT,
        "status": "active",
        "visible": true,
        "source": "crm",
        "show_business_card": false,
        "generated_type": "default",
        "profiles": [{"name": "Administrator", "id": meta_id(zgid, 497), "default": true}],
        "sections": [],
    }]}))
    .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct PipelineParams {
    layout_id: Option<String>,
}

/// `GET /crm/v8/settings/pipeline?layout_id=`: the Deals layout's pipelines, each with its
/// stages (`maps`); a stage has one id in every pipeline that uses it (one `Stage` picklist).
pub(super) async fn pipelines(
    State(s): State<Arc<Shared>>,
    Query(params): Query<PipelineParams>,
) -> Response {
    let Some(layout) = params.layout_id else {
        return required_param("layout_id");
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let zgid = store.crm.zgid;
    if layout != layout_id(zgid, "Deals") {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({"param_name": "layout_id"}),
        );
    }
    let mut stage_ids: Vec<&str> = Vec::new();
    let out: Vec<Json> = crm::pipelines()
        .into_iter()
        .enumerate()
        .map(|(p, (name, stages))| {
            let maps: Vec<Json> = stages
                .into_iter()
                .enumerate()
                .map(|(k, (stage, outcome))| {
                    let serial = match stage_ids.iter().position(|s| *s == stage) {
                        Some(at) => at,
                        None => {
                            stage_ids.push(stage);
                            stage_ids.len() - 1
                        }
                    };
                    let (forecast_type, category, category_id) = match outcome {
                        Outcome::Open => ("Open", "Pipeline", 7_092),
                        Outcome::Won => ("Closed Won", "Closed", 7_094),
                        Outcome::Lost => ("Closed Lost", "Omitted", 7_096),
                    };
                    json!({
                        "id": meta_id(zgid, 7_104 + 2 * serial as u64),
                        "display_value": stage,
                        "actual_value": stage,
                        "sequence_number": k + 1,
                        "forecast_type": forecast_type,
                        "forecast_category": {"name": category, "id": meta_id(zgid, category_id)},
                        "colour_code": null,
                    })
                })
                .collect();
            json!({
                "id": meta_id(zgid, 2_800_001 + 10 * p as u64),
                "display_value": name,
                "actual_value": name,
                "default": p == 0,
                "child_available": false,
                "parent": null,
                "maps": maps,
            })
        })
        .collect();
    axum::Json(json!({ "pipeline": out })).into_response()
}

// ---- records by id --------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(super) struct RecordParams {
    fields: Option<String>,
    /// `type` of the deleted-records list.
    #[serde(rename = "type")]
    kind: Option<String>,
    ids: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// `GET /crm/v8/{module}/{id}` (and `GET /crm/v8/Contacts/roles`): one record with every field
/// (or the `fields` asked for); 204 when there is no such record.
pub(super) async fn record_get(
    State(s): State<Arc<Shared>>,
    Path((module, id)): Path<(String, String)>,
    Query(params): Query<RecordParams>,
    headers: axum::http::HeaderMap,
) -> Response {
    if module == "Contacts" && id == "roles" {
        return contact_roles(s);
    }
    if id == "deleted" {
        return deleted_list(&s, &module, &params, &headers);
    }
    let Some(target) = Target::parse(&module) else {
        return invalid_module();
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let Ok(id) = id.parse::<u64>() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let names: Option<Vec<&str>> = params.fields.as_deref().map(|f| {
        f.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect()
    });
    let record = match target {
        Target::Crm(m) => store
            .crm
            .records(m)
            .table
            .get(id)
            .map(|row| crm::render_row(&store, m, row, names.as_deref())),
        Target::Store(m) => store.parent_row(m, id).map(|row| {
            let table = store.table(m);
            let mut out = Map::new();
            out.insert("id".into(), Json::String(row.id.to_string()));
            for (i, f) in table.schema.fields.iter().enumerate() {
                if names
                    .as_ref()
                    .is_none_or(|n| n.contains(&f.api_name.as_str()))
                {
                    out.insert(f.api_name.clone(), store.render_value(m, row, i));
                }
            }
            Json::Object(out)
        }),
    };
    match record {
        Some(r) => axum::Json(json!({ "data": [r] })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `GET /crm/v8/Contacts/roles`: the org's contact-role definitions.
fn contact_roles(s: Arc<Shared>) -> Response {
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let zgid = store.crm.zgid;
    let roles: Vec<Json> = CONTACT_ROLES
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"name": name, "id": role_id(zgid, i), "sequence_number": i + 1}))
        .collect();
    axum::Json(json!({ "contact_roles": roles })).into_response()
}

fn role_id(zgid: u64, i: usize) -> String {
    meta_id(zgid, 3_100_001 + i as u64)
}

// ---- writes -----------------------------------------------------------------------------------

fn bad_body() -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "body is not a valid JSON",
        json!({}),
    )
}

/// The `data` array of a write: at most 100 objects.
fn records_of(body: &Json) -> Result<Vec<Map<String, Json>>, Response> {
    let Some(records) = body.get("data").and_then(Json::as_array) else {
        return Err(required_param("data"));
    };
    if records.is_empty() {
        return Err(zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({"api_name": "data", "json_path": "$.data"}),
        ));
    }
    if records.len() > WRITE_LIMIT {
        return Err(zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit of 100 per call",
            json!({"limit": WRITE_LIMIT, "api_name": "data", "json_path": "$.data"}),
        ));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object().cloned().ok_or_else(|| {
                zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"expected_data_type": "jsonobject", "json_path": format!("$.data[{i}]")}),
                )
            })
        })
        .collect()
}

/// Which write a request is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Insert,
    Update,
    Upsert,
}

/// A write of up to 100 records of `m`: per-record results, the `partial` fault failing some,
/// one credit per ten records. Insert answers 201, update and upsert 200; 207 when some
/// records fail and 400 when all do.
pub(super) fn write(
    s: &Shared,
    m: CrmModule,
    body: &[u8],
    kind: Write,
    path_id: Option<u64>,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Json>(body) else {
        return bad_body();
    };
    let records = match records_of(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if path_id.is_some() && records.len() > 1 {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "only one record can be updated through its URL",
            json!({"limit": 1, "api_name": "data", "json_path": "$.data"}),
        );
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let mut dup_columns = Vec::new();
    if kind == Write::Upsert {
        let recs = &store.crm.records(m).table;
        match body.get("duplicate_check_fields") {
            None | Some(Json::Null) => {
                if let Some(c) = (m == CrmModule::Deals)
                    .then(|| recs.column("Deal_Name"))
                    .flatten()
                {
                    dup_columns.push(c);
                }
            }
            Some(Json::Array(names)) => {
                for (i, name) in names.iter().enumerate() {
                    let col = name.as_str().and_then(|n| recs.column(n)).filter(|&c| {
                        recs.def().columns[c].unique.is_some()
                            || (m == CrmModule::Deals && recs.def().columns[c].name == "Deal_Name")
                    });
                    match col {
                        Some(c) => dup_columns.push(c),
                        None => {
                            return zoho_error(
                                StatusCode::BAD_REQUEST,
                                "INVALID_DATA",
                                "the field given in duplicate_check_fields is not a unique field",
                                json!({"api_name": name, "json_path": format!("$.duplicate_check_fields[{i}]")}),
                            );
                        }
                    }
                }
            }
            Some(_) => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"expected_data_type": "jsonarray", "api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields"}),
                );
            }
        }
    }
    if !s.charge(records.len().div_ceil(10) as u64) {
        return credits_exhausted();
    }
    let mode = match kind {
        Write::Insert => Mode::Insert,
        Write::Update => Mode::Update(path_id),
        Write::Upsert => Mode::Upsert(&dup_columns),
    };
    let now = s.clock.now_ms();
    let results: Vec<(bool, Json)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if s.partial_fails() {
                return (false, internal_error_item());
            }
            let w = crm::write_one(&mut store, m, i, r, &mode, now);
            (w.ok, w.body)
        })
        .collect();
    drop(store);
    respond(
        results,
        if kind == Write::Insert {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
    )
}

fn respond(results: Vec<(bool, Json)>, all_ok: StatusCode) -> Response {
    let ok = results.iter().filter(|(ok, _)| *ok).count();
    let status = if ok == results.len() {
        all_ok
    } else if ok == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    let data: Vec<Json> = results.into_iter().map(|(_, body)| body).collect();
    (status, axum::Json(json!({ "data": data }))).into_response()
}

/// `POST /crm/v8/{module}`: inserts (Deals, Notes).
pub(super) async fn module_post(
    State(s): State<Arc<Shared>>,
    Path(module): Path<String>,
    body: Bytes,
) -> Response {
    match CrmModule::parse(&module) {
        Some(m) => write(&s, m, &body, Write::Insert, None),
        None => not_emulated(&module),
    }
}

/// `PUT /crm/v8/{module}`: updates, each record naming its `id`.
pub(super) async fn module_put(
    State(s): State<Arc<Shared>>,
    Path(module): Path<String>,
    body: Bytes,
) -> Response {
    match CrmModule::parse(&module) {
        Some(m) => write(&s, m, &body, Write::Update, None),
        None => not_emulated(&module),
    }
}

/// `PUT /crm/v8/{module}/{id}`: updates one record.
pub(super) async fn record_put(
    State(s): State<Arc<Shared>>,
    Path((module, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(m) = CrmModule::parse(&module) else {
        return not_emulated(&module);
    };
    match id.parse::<u64>() {
        Ok(id) => write(&s, m, &body, Write::Update, Some(id)),
        Err(_) => invalid_id_path(),
    }
}

fn invalid_id_path() -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "the related id given seems to be invalid",
        json!({"resource_path_index": 2}),
    )
}

/// Accounts and Contacts are written through upsert only in this emulator.
fn not_emulated(module: &str) -> Response {
    if Target::parse(module).is_none() {
        return invalid_module();
    }
    super::invalid_url()
}

#[derive(serde::Deserialize)]
pub(super) struct IdsParam {
    ids: Option<String>,
}

/// `DELETE /crm/v8/{module}?ids=` (at most 100): per-record results, into the recycle bin.
pub(super) async fn module_delete(
    State(s): State<Arc<Shared>>,
    Path(module): Path<String>,
    Query(params): Query<IdsParam>,
) -> Response {
    let Some(m) = Target::parse(&module) else {
        return not_emulated(&module);
    };
    let Some(ids) = params.ids.filter(|i| !i.trim().is_empty()) else {
        return required_param("ids");
    };
    let ids: Vec<&str> = ids.split(',').map(str::trim).collect();
    if ids.len() > WRITE_LIMIT {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit of 100 per call",
            json!({"limit": WRITE_LIMIT, "param_name": "ids"}),
        );
    }
    delete(&s, m, &ids)
}

/// `DELETE /crm/v8/{module}/{id}` (Deals, Notes, Contacts).
pub(super) async fn record_delete(
    State(s): State<Arc<Shared>>,
    Path((module, id)): Path<(String, String)>,
) -> Response {
    if module == "Contacts" {
        return delete_contact(&s, &id);
    }
    let Some(m) = CrmModule::parse(&module) else {
        return not_emulated(&module);
    };
    delete(&s, Target::Crm(m), &[id.as_str()])
}

/// `DELETE /crm/v8/Contacts/{id}`: the contact and its roles on deals go (as another user
/// deleting it would).
fn delete_contact(s: &Shared, raw: &str) -> Response {
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let now = s.clock.now_ms();
    let deleted = raw
        .parse::<u64>()
        .is_ok_and(|id| delete_one(&mut store, Target::Store(Module::Contacts), id, now));
    let result = if deleted {
        json!({"code": "SUCCESS", "details": {"id": raw}, "message": "record deleted", "status": "success"})
    } else {
        json!({"code": "INVALID_DATA", "details": {"id": raw},
               "message": "the related id given seems to be invalid", "status": "error"})
    };
    respond(vec![(deleted, result)], StatusCode::OK)
}

/// Deletes record `id` of `m` (into the recycle bin: listed by `GET /{module}/deleted`).
fn delete_one(store: &mut Store, m: Target, id: u64, now: i64) -> bool {
    let (deleted, module) = match m {
        Target::Store(module) => (store.delete(module, id), module.name()),
        Target::Crm(crm_module) => (
            crm::delete_one(store, crm_module, id, now),
            crm_module.name(),
        ),
    };
    if deleted {
        store.deleted.push(super::store::Deleted {
            module,
            id,
            at_ms: now,
        });
    }
    deleted
}

fn delete(s: &Shared, m: Target, ids: &[&str]) -> Response {
    if !s.charge(ids.len().div_ceil(10) as u64) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let now = s.clock.now_ms();
    let results = ids
        .iter()
        .map(|raw| {
            let deleted = raw
                .parse::<u64>()
                .is_ok_and(|id| delete_one(&mut store, m, id, now));
            if deleted {
                (
                    true,
                    json!({"code": "SUCCESS", "details": {"id": raw}, "message": "record deleted", "status": "success"}),
                )
            } else {
                (
                    false,
                    json!({"code": "INVALID_DATA", "details": {"id": raw},
                           "message": "the related id given seems to be invalid", "status": "error"}),
                )
            }
        })
        .collect();
    respond(results, StatusCode::OK)
}

/// `GET /crm/v8/{module}/deleted?type=all|recycle|permanent&page=&per_page=` with an optional
/// `If-Modified-Since`: the records deleted (at or after it), oldest first, `{id, display_name,
/// type, deleted_by, created_by, deleted_time}` and `info.more_records`; 204 when none.
fn deleted_list(
    s: &Shared,
    module: &str,
    params: &RecordParams,
    headers: &axum::http::HeaderMap,
) -> Response {
    let Some(target) = Target::parse(module) else {
        return invalid_module();
    };
    let name = match target {
        Target::Store(m) => m.name(),
        Target::Crm(m) => m.name(),
    };
    match params.kind.as_deref() {
        None | Some("all") | Some("recycle") => {}
        Some("permanent") => return StatusCode::NO_CONTENT.into_response(),
        Some(_) => return invalid_param("type"),
    }
    let since = match headers.get(axum::http::header::IF_MODIFIED_SINCE) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(crate::timestamp::parse_rfc3339) {
            Some(ms) => Some(ms),
            None => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"header_name": "If-Modified-Since"}),
                );
            }
        },
    };
    let (page, per_page) = match paging(params.page.as_deref(), params.per_page.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let me = store.current_user().owner_json();
    let all: Vec<&super::store::Deleted> = store
        .deleted
        .iter()
        .filter(|d| d.module == name && since.is_none_or(|t| d.at_ms >= t))
        .collect();
    let from = (page - 1) * per_page;
    let data: Vec<Json> = all
        .iter()
        .skip(from)
        .take(per_page)
        .map(|d| {
            json!({
                "id": d.id.to_string(),
                "display_name": null,
                "type": "recycle",
                "deleted_by": me,
                "created_by": me,
                "deleted_time": super::store::zoho_time(d.at_ms),
            })
        })
        .collect();
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = all.len() > from + data.len();
    axum::Json(json!({
        "data": data,
        "info": {"per_page": per_page, "count": data.len(), "page": page, "more_records": more},
    }))
    .into_response()
}

// ---- contact roles ----------------------------------------------------------------------------

fn deal_of(store: &Store, module: &str, deal: &str) -> Result<u64, Response> {
    if module != "Deals" {
        return Err(super::invalid_url());
    }
    deal.parse::<u64>()
        .ok()
        .filter(|id| store.crm.deals.table.get(*id).is_some())
        .ok_or_else(invalid_id_path)
}

/// `GET /crm/v8/Deals/{deal}/Contact_Roles?fields=&ids=&page=&per_page=`: the deal's contacts,
/// each with its `Contact_Role` and the contact fields asked for; 204 when it has none.
pub(super) async fn deal_roles(
    State(s): State<Arc<Shared>>,
    Path((module, deal)): Path<(String, String)>,
    Query(params): Query<RecordParams>,
) -> Response {
    roles_of_deal(&s, &module, &deal, None, params)
}

/// `GET /crm/v8/Deals/{deal}/Contact_Roles/{contact}`: that contact's role on the deal.
pub(super) async fn deal_role_get(
    State(s): State<Arc<Shared>>,
    Path((module, deal, contact)): Path<(String, String, String)>,
    Query(params): Query<RecordParams>,
) -> Response {
    match contact.parse::<u64>() {
        Ok(c) => roles_of_deal(&s, &module, &deal, Some(c), params),
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

fn roles_of_deal(
    s: &Shared,
    module: &str,
    deal: &str,
    only: Option<u64>,
    params: RecordParams,
) -> Response {
    let (page, per_page) = match paging(params.page.as_deref(), params.per_page.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let deal = match deal_of(&store, module, deal) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let zgid = store.crm.zgid;
    let ids: Option<Vec<u64>> = only.map(|c| vec![c]).or_else(|| {
        params.ids.as_deref().map(|ids| {
            ids.split(',')
                .filter_map(|i| i.trim().parse().ok())
                .collect()
        })
    });
    let names: Vec<&str> = params
        .fields
        .as_deref()
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_else(|| vec!["Last_Name", "First_Name", "Email"]);
    let links: Vec<(u64, u32)> = store
        .crm
        .roles
        .from(deal, None, usize::MAX)
        .into_iter()
        .filter(|(c, _)| ids.as_ref().is_none_or(|ids| ids.contains(c)))
        .collect();
    let start = (page - 1).saturating_mul(per_page);
    let contacts = store.table(Module::Contacts);
    let data: Vec<Json> = links
        .iter()
        .skip(start)
        .take(per_page)
        .filter_map(|(c, role)| {
            let row = store.parent_row(Module::Contacts, *c)?;
            let mut out = Map::new();
            for name in &names {
                if let Some(f) = contacts.schema.field(name) {
                    out.insert(
                        (*name).to_owned(),
                        store.render_value(Module::Contacts, row, f),
                    );
                }
            }
            let role_name = CONTACT_ROLES.get(*role as usize).copied();
            out.insert(
                "Contact_Role".into(),
                json!({"name": role_name, "id": role_id(zgid, *role as usize)}),
            );
            out.insert("id".into(), Json::String(c.to_string()));
            Some(Json::Object(out))
        })
        .collect();
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = start + data.len() < links.len();
    axum::Json(json!({
        "data": data,
        "info": {"per_page": per_page, "count": data.len(), "page": page, "more_records": more},
    }))
    .into_response()
}

/// The role a contact-role write names: `"Purchasing"`, `{"name"}` or `{"id"}`.
fn role_of(zgid: u64, value: &Json) -> Option<u32> {
    let by_name = |n: &str| CONTACT_ROLES.iter().position(|r| *r == n);
    let at = match value {
        Json::String(n) => by_name(n),
        Json::Object(o) => match (o.get("id"), o.get("name").and_then(Json::as_str)) {
            (Some(id), _) if !id.is_null() => {
                let id = match id {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (0..CONTACT_ROLES.len()).find(|i| role_id(zgid, *i) == id)
            }
            (_, Some(n)) => by_name(n),
            _ => None,
        },
        _ => None,
    }?;
    u32::try_from(at).ok()
}

/// `PUT /crm/v8/Deals/{deal}/Contact_Roles/{contact}` with `{"data": [{"Contact_Role": …}]}`:
/// gives the contact that role on the deal (a contact holds one role per deal).
pub(super) async fn deal_role_put(
    State(s): State<Arc<Shared>>,
    Path((module, deal, contact)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Json>(&body) else {
        return bad_body();
    };
    let role = match body
        .get("data")
        .and_then(Json::as_array)
        .and_then(|d| d.first())
    {
        None => return required_param("data"),
        Some(item) => item.get("Contact_Role").filter(|r| !r.is_null()),
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let deal = match deal_of(&store, &module, &deal) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(contact_id) = contact
        .parse::<u64>()
        .ok()
        .filter(|c| store.parent_row(Module::Contacts, *c).is_some())
    else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the related id given seems to be invalid",
            json!({"resource_path_index": 4}),
        );
    };
    let item = |code: &str, message: &str, details: Json| {
        let status = if code == "SUCCESS" {
            "success"
        } else {
            "error"
        };
        json!({"data": [{"code": code, "details": details, "message": message, "status": status}]})
    };
    let Some(role) = role else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(item(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                json!({"api_name": "Contact_Role", "json_path": "$.data[0].Contact_Role"}),
            )),
        )
            .into_response();
    };
    let zgid = store.crm.zgid;
    let Some(role) = role_of(zgid, role) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(item(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "Contact_Role", "json_path": "$.data[0].Contact_Role"}),
            )),
        )
            .into_response();
    };
    unlink_contact(&mut store, deal, contact_id);
    store.crm.roles.link(deal, contact_id, role);
    axum::Json(item(
        "SUCCESS",
        "relation updated",
        json!({"id": contact_id.to_string()}),
    ))
    .into_response()
}

/// `DELETE /crm/v8/Deals/{deal}/Contact_Roles?ids=`: removes those contacts' roles, with a
/// result per id.
pub(super) async fn deal_roles_delete(
    State(s): State<Arc<Shared>>,
    Path((module, deal)): Path<(String, String)>,
    Query(params): Query<IdsParam>,
) -> Response {
    let Some(ids) = params.ids.filter(|i| !i.trim().is_empty()) else {
        return required_param("ids");
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let deal = match deal_of(&store, &module, &deal) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let results = ids
        .split(',')
        .map(str::trim)
        .map(|raw| {
            let removed = raw
                .parse::<u64>()
                .is_ok_and(|c| unlink_contact(&mut store, deal, c));
            if removed {
                (
                    true,
                    json!({"code": "SUCCESS", "details": {"id": raw}, "message": "relation removed", "status": "success"}),
                )
            } else {
                (
                    false,
                    json!({"code": "INVALID_DATA", "details": {"id": raw},
                           "message": "the related id given seems to be invalid", "status": "error"}),
                )
            }
        })
        .collect();
    respond(results, StatusCode::OK)
}

/// Removes contact `c`'s role on `deal`; `false` when it had none.
fn unlink_contact(store: &mut Store, deal: u64, c: u64) -> bool {
    let held: Vec<u32> = store
        .crm
        .roles
        .from(deal, Some(c.saturating_sub(1)), CONTACT_ROLES.len())
        .into_iter()
        .filter(|(x, _)| *x == c)
        .map(|(_, l)| l)
        .collect();
    for l in &held {
        store.crm.roles.unlink(deal, c, *l);
    }
    !held.is_empty()
}

/// `DELETE /crm/v8/Deals/{deal}/Contact_Roles/{contact}`.
pub(super) async fn deal_role_delete(
    State(s): State<Arc<Shared>>,
    Path((module, deal, contact)): Path<(String, String, String)>,
) -> Response {
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let deal = match deal_of(&store, &module, &deal) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let contact_id = contact.parse::<u64>().unwrap_or(0);
    if !unlink_contact(&mut store, deal, contact_id) {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the related id given seems to be invalid",
            json!({"resource_path_index": 4}),
        );
    }
    axum::Json(
        json!({"data": [{"code": "SUCCESS", "details": {"id": contact},
        "message": "relation removed", "status": "success"}]}),
    )
    .into_response()
}

/// A list page of `m` as `data` items, whether more follow, and the last id served.
pub(super) fn list_page(
    store: &Store,
    m: CrmModule,
    names: &[&str],
    after: Option<u64>,
    offset: usize,
    per_page: usize,
    desc: bool,
) -> (Vec<Json>, bool, u64) {
    let (rows, more) = crm::page(store, m, after, offset, per_page, desc);
    let last = rows.last().map_or(0, |r| r.id);
    let data = rows
        .iter()
        .map(|row| crm::render_row(store, m, row, Some(names)))
        .collect();
    (data, more, last)
}
