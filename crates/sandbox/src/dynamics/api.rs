//! The Web API resources: entity sets, single records by id or alternate key, `$batch`,
//! `WhoAmI` and the alternate-key metadata. Requests are parsed once into a [`Req`] so that
//! top-level requests and the parts of a batch go through the same code.

use serde_json::{Map, Value as Json, json};

use super::batch::{self, Item, PartResponse, ResponseItem};
use super::error::ApiError;
use super::odata::{self, COUNT_CAP, MAX_PAGE_SIZE};
use super::records::{self, Set};
use super::sets;
use super::store::{
    Condition, KEY_COLUMN, KEY_NAME, Store, Table, Target, Undo, guid, parse_address,
};

/// The API version path the emulator serves.
pub const API_PREFIX: &str = "/api/data/v9.2/";

/// The preferences of a request (`Prefer` headers).
#[derive(Clone, Debug, Default)]
pub struct Prefs {
    /// `odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
    /// `return=representation`.
    pub representation: bool,
    /// `odata.continue-on-error`.
    pub continue_on_error: bool,
}

impl Prefs {
    /// Reads every `Prefer` value.
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Prefs {
        let mut prefs = Prefs::default();
        for value in values {
            for p in value.split(',') {
                let p = p.trim();
                if let Some(n) = p.strip_prefix("odata.maxpagesize=") {
                    prefs.max_page_size = n.trim().parse().ok();
                } else if p.eq_ignore_ascii_case("return=representation") {
                    prefs.representation = true;
                } else if p.eq_ignore_ascii_case("odata.continue-on-error") {
                    prefs.continue_on_error = true;
                }
            }
        }
        prefs
    }
}

/// One request to a Web API resource.
#[derive(Clone, Debug)]
pub struct Req {
    /// The method, upper-case.
    pub method: String,
    /// The percent-decoded path after `/api/data/v9.2/`.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Preferences.
    pub prefs: Prefs,
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// The body.
    pub body: String,
    /// `http://host:port`, for URLs in responses.
    pub base: String,
}

/// A response before it becomes HTTP (top level) or a batch part.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<Json>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Json) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// The error's reply.
    pub fn error(e: &ApiError) -> Reply {
        Reply::json(e.status.as_u16(), e.body())
    }

    /// Whether the status is an error.
    pub fn failed(&self) -> bool {
        self.status >= 400
    }
}

/// Splits `target` (`path?query` after the API prefix) into a decoded path and query pairs.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let decode = |s: &str| {
        urlencoding::decode(s)
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| s.to_owned())
    };
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect();
    (decode(path), pairs)
}

fn param<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What a path addresses.
enum Resource {
    Set(Table),
    Record(Table, Target),
    Keys(Table),
    /// `EntityDefinitions(LogicalName='…')/Attributes…`, with what follows the entity.
    Attributes(Table, String),
    WhoAmI,
    /// A table on the shared engine ([`super::records`]).
    NewSet(&'static Set),
    /// One of its records.
    NewRecord(&'static Set, Target),
    /// Its alternate keys.
    NewKeys(&'static Set),
    /// Its column definitions, with what follows the entity.
    NewAttributes(&'static Set, String),
    /// `WinOpportunity` or `LoseOpportunity`.
    Action(&'static str),
}

fn resource(path: &str) -> Result<Resource, ApiError> {
    let path = path.trim_end_matches('/');
    if path == "WhoAmI" || path == "WhoAmI()" {
        return Ok(Resource::WhoAmI);
    }
    for action in ["WinOpportunity", "LoseOpportunity"] {
        if path == action || path == format!("Microsoft.Dynamics.CRM.{action}") {
            return Ok(Resource::Action(action));
        }
    }
    if let Some(rest) = path.strip_prefix("EntityDefinitions(") {
        let (inner, tail) = rest
            .split_once(')')
            .ok_or_else(|| ApiError::no_resource(path))?;
        let name = inner
            .trim()
            .strip_prefix("LogicalName=")
            .map(|n| n.trim().trim_matches('\''))
            .ok_or_else(|| ApiError::no_resource(path))?;
        if let Some(set) = records::by_logical(name) {
            return match tail {
                "/Keys" => Ok(Resource::NewKeys(set)),
                t if t.starts_with("/Attributes") => Ok(Resource::NewAttributes(set, t.to_owned())),
                _ => Err(ApiError::query(
                    "The emulator serves only EntityDefinitions(LogicalName='…')/Keys and /Attributes of the metadata.",
                )),
            };
        }
        let table = Table::from_logical(name).ok_or_else(|| ApiError::no_resource(path))?;
        return match tail {
            "/Keys" => Ok(Resource::Keys(table)),
            t if t.starts_with("/Attributes") => Ok(Resource::Attributes(table, t.to_owned())),
            _ => Err(ApiError::query(
                "The emulator serves only EntityDefinitions(LogicalName='…')/Keys and /Attributes of the metadata.",
            )),
        };
    }
    if let Some(table) = Table::from_set(path) {
        return Ok(Resource::Set(table));
    }
    if let Some(set) = records::by_set(path) {
        return Ok(Resource::NewSet(set));
    }
    if let Some((set, inner)) = path.strip_suffix(')').and_then(|p| p.split_once('(')) {
        if let Some(table) = Table::from_set(set) {
            return Ok(Resource::Record(table, parse_address(table, inner)?));
        }
        if let Some(set) = records::by_set(set) {
            return Ok(Resource::NewRecord(set, parse_address(set, inner)?));
        }
    }
    Err(ApiError::no_resource(path))
}

/// Answers a `GET`.
pub fn read(store: &Store, req: &Req) -> Reply {
    match read_inner(store, req) {
        Ok(r) => r,
        Err(e) => Reply::error(&e),
    }
}

fn read_inner(store: &Store, req: &Req) -> Result<Reply, ApiError> {
    match resource(&req.path)? {
        Resource::WhoAmI => Ok(Reply::json(
            200,
            json!({
                "@odata.context": format!("{}{API_PREFIX}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", req.base),
                "BusinessUnitId": "b0b0b0b0-0000-4000-8000-000000000001",
                "UserId": guid(store.records.app_user()),
                "OrganizationId": store.organization_id,
            }),
        )),
        Resource::Keys(table) => {
            let keys: Vec<Json> = if store.keys_defined {
                vec![json!({
                    "LogicalName": KEY_NAME,
                    "SchemaName": "ferry_SourceId_Key",
                    "EntityLogicalName": table.logical(),
                    "KeyAttributes": [KEY_COLUMN],
                    "EntityKeyIndexStatus": "Active",
                    "MetadataId": format!("{}-0000-4000-8000-00000000c0de", if table == Table::Account { "aaaaaaaa" } else { "cccccccc" }),
                })]
            } else {
                Vec::new()
            };
            Ok(Reply::json(
                200,
                json!({
                    "@odata.context": format!("{}{API_PREFIX}$metadata#EntityDefinitions('{}')/Keys", req.base, table.logical()),
                    "value": keys,
                }),
            ))
        }
        Resource::Record(table, target) => {
            let id = match &target {
                Target::Id(id) => Some(*id),
                Target::Key(key) => {
                    if !store.keys_defined {
                        return Err(ApiError::invalid_key(table));
                    }
                    store.id_by_key(table, key)
                }
                Target::New => None,
            };
            let row = id
                .and_then(|id| store.get(table, id))
                .ok_or_else(|| ApiError::not_found(table, &target))?;
            let select = odata::parse_select(store, table, param(req, "$select"))?;
            let expand = odata::parse_expand(store, table, param(req, "$expand"))?;
            let mut body = odata::render(store, table, row, &select, expand.as_deref());
            body["@odata.context"] = Json::String(format!(
                "{}{API_PREFIX}$metadata#{}/$entity",
                req.base,
                table.set()
            ));
            Ok(Reply::json(200, body))
        }
        Resource::Attributes(table, tail) => {
            super::metadata::read(store, table, &tail, &req.query, &req.base)
        }
        Resource::Set(table) => list(store, table, req),
        Resource::NewSet(set) => sets::read(store, set, None, req),
        Resource::NewRecord(set, target) => sets::read(store, set, Some(&target), req),
        Resource::NewKeys(set) => Ok(sets::keys(store, set, &req.base)),
        Resource::NewAttributes(set, tail) => {
            super::metadata::read_set(set, &tail, &req.query, &req.base)
        }
        Resource::Action(_) => Err(ApiError::method()),
    }
}

fn list(store: &Store, table: Table, req: &Req) -> Result<Reply, ApiError> {
    if param(req, "$skip").is_some() {
        return Err(ApiError::query(
            "The query parameter $skip is not supported",
        ));
    }
    let select = odata::parse_select(store, table, param(req, "$select"))?;
    let expand = odata::parse_expand(store, table, param(req, "$expand"))?;
    let filter = param(req, "$filter")
        .map(|f| odata::parse_filter(store, table, f))
        .transpose()?;
    let order = odata::parse_orderby(param(req, "$orderby"), table.id_column())?;
    let top = param(req, "$top")
        .map(|t| {
            t.parse::<usize>()
                .map_err(|_| ApiError::query("$top must be a whole number."))
        })
        .transpose()?;
    let count = param(req, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true"));
    let bad_token = || ApiError::query("The $skiptoken is not a valid paging cookie.");
    let (page_number, after, after_modified) = match param(req, "$skiptoken") {
        Some(token) => {
            let (page, last) = odata::parse_skiptoken(token).ok_or_else(bad_token)?;
            let modified = match order {
                odata::Order::Key => None,
                odata::Order::Modified => {
                    Some(odata::skiptoken_modified(token).ok_or_else(bad_token)?)
                }
            };
            (page, Some(last), modified)
        }
        None => (1, None, None),
    };
    // $top is ignored when odata.maxpagesize is given (documented).
    let (page_size, paged) = match (req.prefs.max_page_size, top) {
        (Some(n), _) => (n.clamp(1, MAX_PAGE_SIZE), true),
        (None, Some(t)) => (t.min(MAX_PAGE_SIZE), false),
        (None, None) => (MAX_PAGE_SIZE, true),
    };
    let data = store.table(table);
    let candidates = filter
        .as_ref()
        .and_then(|f| odata::indexed_candidates(store, table, f));
    let matching = |row: &&super::store::Row| {
        filter
            .as_ref()
            .is_none_or(|f| odata::matches(store, table, row, f))
    };
    let mut rows: Vec<&super::store::Row> = Vec::with_capacity(page_size.min(1024) + 1);
    let mut total = None;
    match (&candidates, order) {
        (_, odata::Order::Modified) => {
            // Every match, sorted: the emulator keeps no index on `modifiedon`.
            let mut all: Vec<&super::store::Row> = match &candidates {
                Some(ids) => ids.iter().filter_map(|id| data.rows.get(id)).collect(),
                None => data.rows.values().collect(),
            };
            all.retain(matching);
            all.sort_by_key(|r| (r.modified, r.id));
            total = Some(all.len());
            let after = after.map(|a| (after_modified.unwrap_or(i64::MIN), a));
            rows.extend(
                all.into_iter()
                    .filter(|r| after.is_none_or(|a| (r.modified, r.id) > a))
                    .take(page_size + 1),
            );
        }
        (Some(ids), odata::Order::Key) => {
            let all: Vec<&super::store::Row> = ids
                .iter()
                .filter_map(|id| data.rows.get(id))
                .filter(matching)
                .collect();
            total = Some(all.len());
            rows.extend(
                all.into_iter()
                    .filter(|r| after.is_none_or(|a| r.id > a))
                    .take(page_size + 1),
            );
        }
        (None, odata::Order::Key) => {
            let range = match after {
                Some(a) => data
                    .rows
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None => data.rows.range(..),
            };
            rows.extend(range.map(|(_, r)| r).filter(matching).take(page_size + 1));
        }
    }
    let more = rows.len() > page_size && paged;
    rows.truncate(page_size);
    let value: Vec<Json> = rows
        .iter()
        .map(|r| odata::render(store, table, r, &select, expand.as_deref()))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}{API_PREFIX}$metadata#{}({})",
            req.base,
            table.set(),
            select.join(",")
        )),
    );
    if count {
        let n = match total {
            Some(n) => n,
            None => data
                .rows
                .values()
                .filter(|r| matching(r))
                .take(COUNT_CAP)
                .count(),
        };
        body.insert("@odata.count".into(), json!(n.min(COUNT_CAP)));
    }
    body.insert("value".into(), Json::Array(value));
    if more && let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let modified = (order == odata::Order::Modified).then_some((first.modified, last.modified));
        let token = odata::skiptoken(table, page_number, first.id, last.id, modified);
        let mut query: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
            .collect();
        query.push(format!("$skiptoken={}", urlencoding::encode(&token)));
        body.insert(
            "@odata.nextLink".into(),
            Json::String(format!(
                "{}{API_PREFIX}{}?{}",
                req.base,
                table.set(),
                query.join("&")
            )),
        );
    }
    let mut reply = Reply::json(200, Json::Object(body));
    if let Some(n) = req.prefs.max_page_size {
        reply.headers.push((
            "Preference-Applied".into(),
            format!("odata.maxpagesize={}", n.clamp(1, MAX_PAGE_SIZE)),
        ));
    }
    Ok(reply)
}

fn condition(req: &Req) -> Result<Condition, ApiError> {
    if let Some(m) = req.if_none_match.as_deref().map(str::trim) {
        // `If-None-Match: null` is what the batch examples send; it means nothing.
        if m == "*" {
            return Ok(Condition::MustNotExist);
        }
    }
    match req.if_match.as_deref().map(str::trim) {
        None => Ok(Condition::None),
        Some("*") => Ok(Condition::MustExist),
        Some(tag) => tag
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<u64>()
            .map(Condition::Version)
            .map_err(|_| ApiError::query("If-Match must be * or an ETag.")),
    }
}

/// Answers a `PATCH`, `POST` or `DELETE`; returns the state to restore if a change set fails.
pub fn write(store: &mut Store, req: &Req, now: i64) -> (Reply, Option<Undo>) {
    match write_inner(store, req, now) {
        Ok(r) => r,
        Err(e) => (Reply::error(&e), None),
    }
}

fn write_inner(store: &mut Store, req: &Req, now: i64) -> Result<(Reply, Option<Undo>), ApiError> {
    let (table, target) = match (req.method.as_str(), resource(&req.path)?) {
        ("POST", Resource::Attributes(table, tail))
            if tail.trim_end_matches('/') == "/Attributes" =>
        {
            // A definition change, not a row: nothing for a change set to undo.
            return Ok((
                super::metadata::create(store, table, &req.body, &req.base)?,
                None,
            ));
        }
        ("POST", Resource::Set(table)) => (table, Target::New),
        ("POST", Resource::Action(action)) => return sets::close(store, action, req, now),
        ("POST", Resource::NewSet(set)) => {
            return sets::write(store, set, Target::New, req, &condition(req)?, now);
        }
        ("PATCH" | "DELETE", Resource::NewRecord(set, target)) => {
            return sets::write(store, set, target, req, &condition(req)?, now);
        }
        ("PATCH" | "DELETE", Resource::Record(table, target)) => (table, target),
        _ => return Err(ApiError::method()),
    };
    if req.method == "DELETE" {
        let id = match &target {
            Target::Id(id) => store.get(table, *id).map(|r| r.id),
            Target::Key(key) => {
                if !store.keys_defined {
                    return Err(ApiError::invalid_key(table));
                }
                store.id_by_key(table, key)
            }
            Target::New => None,
        }
        .ok_or_else(|| ApiError::not_found(table, &target))?;
        let previous = store.get(table, id).cloned();
        // An account's contacts, and the opportunities and notes of what is deleted, go with
        // it (Cascade), or lose the link (RemoveLink); only the row itself is undone by a
        // failed change set (documented).
        store.delete_row(table, id, now);
        let reply = Reply {
            status: 204,
            headers: Vec::new(),
            body: None,
        };
        return Ok((reply, Some(Undo::Row(table, id, previous))));
    }
    let body: Map<String, Json> = match serde_json::from_str::<Json>(&req.body) {
        Ok(Json::Object(m)) => m,
        _ => {
            return Err(ApiError::payload(
                table,
                "Microsoft.OData.ODataException: The request body is not a JSON object.",
            ));
        }
    };
    let (id, created, undo) = store.write(table, &target, &condition(req)?, &body, now)?;
    let entity = format!("{}{API_PREFIX}{}({})", req.base, table.set(), guid(id));
    let reply = if req.prefs.representation {
        let select = odata::parse_select(store, table, param(req, "$select"))?;
        let row = store
            .get(table, id)
            .ok_or_else(|| ApiError::not_found(table, &Target::Id(id)))?;
        let mut body = odata::render(store, table, row, &select, None);
        body["@odata.context"] = Json::String(format!(
            "{}{API_PREFIX}$metadata#{}/$entity",
            req.base,
            table.set()
        ));
        Reply {
            status: if created { 201 } else { 200 },
            headers: vec![
                ("Preference-Applied".into(), "return=representation".into()),
                ("OData-EntityId".into(), entity),
            ],
            body: Some(body),
        }
    } else {
        Reply {
            status: 204,
            headers: vec![("OData-EntityId".into(), entity)],
            body: None,
        }
    };
    Ok((reply, Some(undo)))
}

/// The path after the API prefix of a URL in a batch part (absolute, absolute-path, or
/// relative to the service root).
fn part_target(url: &str) -> String {
    match url.find(API_PREFIX) {
        Some(i) => url[i + API_PREFIX.len()..].to_owned(),
        None => url.trim_start_matches('/').to_owned(),
    }
}

fn part_req(part: &batch::Part, base: &str) -> Req {
    let (path, query) = split_target(&part_target(&part.url));
    let header = |name: &str| {
        part.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Req {
        method: part.method.clone(),
        path,
        query,
        prefs: Prefs::parse(
            part.headers
                .iter()
                .filter(|(k, _)| k == "prefer")
                .map(|(_, v)| v.as_str()),
        ),
        if_match: header("if-match"),
        if_none_match: header("if-none-match"),
        body: part.body.clone(),
        base: base.to_owned(),
    }
}

fn part_response(reply: Reply, content_id: Option<String>) -> PartResponse {
    PartResponse {
        status: reply.status,
        headers: reply.headers,
        body: reply.body.map(|b| b.to_string()),
        content_id,
    }
}

fn run_part(store: &mut Store, part: &batch::Part, base: &str, now: i64) -> (Reply, Option<Undo>) {
    let req = part_req(part, base);
    if req.path.starts_with("$batch") {
        return (
            Reply::error(&ApiError::query(
                "A batch request can't contain another batch request.",
            )),
            None,
        );
    }
    if req.method == "GET" {
        (read(store, &req), None)
    } else {
        write(store, &req, now)
    }
}

/// A transient database failure (Dataverse's "Generic SQL error", SQL error 1205: the request
/// was chosen as a deadlock victim and rolled back); sending it again can succeed.
fn deadlock() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        code: "0x80044150",
        message: "Generic SQL error.".into(),
    }
}

/// Runs a batch: each item in order, change sets all or nothing, stopping at the first error
/// unless `odata.continue-on-error`. Returns the overall status and the response items.
pub fn run_batch(
    store: &mut Store,
    items: &[Item],
    continue_on_error: bool,
    base: &str,
    now: i64,
    mut transient_fault: impl FnMut() -> bool,
) -> (u16, Vec<ResponseItem>) {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let failed_status = match item {
            Item::Single(part) => {
                let (reply, _) = if transient_fault() {
                    (Reply::error(&deadlock()), None)
                } else {
                    run_part(store, part, base, now)
                };
                let status = reply.status;
                out.push(ResponseItem::Single(part_response(reply, None)));
                (status >= 400).then_some(status)
            }
            Item::ChangeSet(parts) => {
                let mut undo = Vec::new();
                let mut responses = Vec::new();
                let mut failure = None;
                // A change set is one transaction: a deadlock fails it whole.
                let run = if transient_fault() {
                    let content_id = parts.first().and_then(|p| p.content_id.clone());
                    failure = Some(part_response(Reply::error(&deadlock()), content_id));
                    &[][..]
                } else {
                    &parts[..]
                };
                for part in run {
                    let (reply, u) = run_part(store, part, base, now);
                    if reply.failed() {
                        failure = Some(part_response(reply, part.content_id.clone()));
                        break;
                    }
                    undo.extend(u);
                    responses.push(part_response(reply, part.content_id.clone()));
                }
                match failure {
                    Some(error) => {
                        for u in undo.into_iter().rev() {
                            store.undo(u);
                        }
                        let status = error.status;
                        out.push(ResponseItem::ChangeSet(vec![error]));
                        Some(status)
                    }
                    None => {
                        out.push(ResponseItem::ChangeSet(responses));
                        None
                    }
                }
            }
        };
        if let Some(status) = failed_status
            && !continue_on_error
        {
            return (status, out);
        }
    }
    (200, out)
}
