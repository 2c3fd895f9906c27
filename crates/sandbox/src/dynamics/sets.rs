//! Requests to the tables on the shared engine ([`super::records`]): list with `$select`,
//! `$filter`, `$top`, `$count`, `Prefer: odata.maxpagesize` and `@odata.nextLink` paging; one
//! record by id or alternate key; create, upsert, update and delete with `@odata.bind` lookups;
//! the `WinOpportunity` and `LoseOpportunity` actions; and the `Keys` metadata. The same
//! [`Req`] / [`Reply`] as accounts and contacts, so `$batch` runs these too.

use serde_json::{Map, Value as Json, json};

use crate::table::{Cell, Show, TableError};

use super::api::{API_PREFIX, Reply, Req};
use super::error::ApiError;
use super::odata::{self, COUNT_CAP, Expr, Lit, MAX_PAGE_SIZE};
use super::records::{self, Dv, OPPORTUNITY, Records, SALES_STAGES, Set, state_of_status};
use super::store::{
    Condition, KEY_COLUMN, KEY_NAME, Store, Table, Target, Undo, bind_path, guid, parse_address,
    parse_guid,
};

fn param<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The row id `target` addresses in `set`, if the row exists.
fn resolve(store: &Store, set: &'static Set, target: &Target) -> Result<Option<u64>, ApiError> {
    let records = &store.records;
    Ok(match target {
        Target::New => None,
        Target::Id(g) => records.get(set, *g).map(|r| r.id),
        Target::Key(key) => {
            if !set.keyed || !store.keys_defined {
                return Err(ApiError::invalid_key(set));
            }
            records.by_key(set, key).map(|r| r.id)
        }
    })
}

fn not_found(set: &'static Set, target: &Target) -> ApiError {
    match target {
        Target::Id(g) => ApiError::does_not_exist(set.logical, *g),
        _ => ApiError::not_found(set, target),
    }
}

fn parse_select(set: &Set, raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(records::all_properties(set));
    };
    raw.split(',')
        .map(|s| s.trim().to_owned())
        .map(|s| {
            if records::is_property(set, &s) {
                Ok(s)
            } else {
                Err(odata::no_property(set, &s))
            }
        })
        .collect()
}

fn check_columns(set: &'static Set, expr: &Expr) -> Result<(), ApiError> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => parts.iter().try_for_each(|p| check_columns(set, p)),
        Expr::Eq(c, _) | Expr::Ne(c, _) | Expr::In(c, _) | Expr::Cmp(c, _, _) => {
            if records::is_property(set, c) {
                odata::check_types(expr)
            } else {
                Err(odata::no_property(set, c))
            }
        }
    }
}

fn matches(records: &Records, set: &Set, row: &crate::table::Row, expr: &Expr) -> bool {
    let value = |c: &str| records::property(records, set, row, c);
    match expr {
        Expr::And(parts) => parts.iter().all(|p| matches(records, set, row, p)),
        Expr::Or(parts) => parts.iter().any(|p| matches(records, set, row, p)),
        Expr::Eq(c, lit) => odata::lit_matches(&value(c), lit),
        Expr::Ne(c, lit) => !odata::lit_matches(&value(c), lit),
        Expr::In(c, lits) => {
            let v = value(c);
            lits.iter().any(|l| odata::lit_matches(&v, l))
        }
        Expr::Cmp(c, op, lit) => {
            let exact = match c.as_str() {
                "createdon" => Some(row.created_ms),
                "modifiedon" => Some(row.modified_ms),
                _ => None,
            };
            odata::cmp_matches(&value(c), exact, *op, lit)
        }
    }
}

/// The rows the primary key or the alternate-key index answer `expr` with (`eq`, `In`, `or`
/// of them), so a read-back by key does not scan; `None` when the filter needs a scan.
fn indexed(records: &Records, set: &'static Set, expr: &Expr) -> Option<Vec<u64>> {
    fn collect(records: &Records, set: &'static Set, expr: &Expr, ids: &mut Vec<u64>) -> bool {
        let lookup = |c: &str, lit: &Lit, ids: &mut Vec<u64>| -> bool {
            if c == set.id_column {
                let g = match lit {
                    Lit::Guid(g) => Some(*g),
                    Lit::Str(s) => parse_guid(s),
                    _ => return false,
                };
                ids.extend(g.and_then(|g| records.get(set, g)).map(|r| r.id));
                true
            } else if c == KEY_COLUMN && set.keyed {
                match lit {
                    Lit::Str(s) => {
                        ids.extend(records.by_key(set, s).map(|r| r.id));
                        true
                    }
                    _ => false,
                }
            } else {
                false
            }
        };
        match expr {
            Expr::Eq(c, lit) => lookup(c, lit, ids),
            Expr::In(c, lits) => lits.iter().all(|l| lookup(c, l, ids)),
            Expr::Or(parts) => parts.iter().all(|p| collect(records, set, p, ids)),
            _ => false,
        }
    }
    let mut ids = Vec::new();
    if !collect(records, set, expr, &mut ids) {
        return None;
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

/// One `$expand` item: a lookup's navigation property and the target's selected properties.
struct Expand {
    nav: &'static records::Nav,
    select: Option<String>,
}

/// Splits `a,b($select=x,y),c` at the top-level commas.
fn split_top(raw: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0_i32, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(raw[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(raw[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `$expand` of lookups (`transactioncurrencyid($select=isocurrencycode)`,
/// `parentaccountid`, `customerid_contact`, `objectid_opportunity`, …). The owner's navigation
/// (`ownerid`, to the polymorphic `owner` table) is not expanded: read `_ownerid_value` and
/// look the user up in `systemusers`.
fn parse_expand(
    store: &Store,
    set: &'static Set,
    raw: Option<&str>,
) -> Result<Vec<Expand>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    split_top(raw)
        .into_iter()
        .map(|item| {
            let (name, options) = match item.split_once('(') {
                Some((name, rest)) => (
                    name.trim(),
                    Some(
                        rest.strip_suffix(')')
                            .ok_or_else(|| ApiError::query("Syntax error in $expand."))?,
                    ),
                ),
                None => (item, None),
            };
            let nav = set
                .navs
                .iter()
                .find(|n| n.name == name && n.column != "ownerid")
                .ok_or_else(|| {
                    ApiError::query(format!(
                        "The emulator does not expand '{name}' on {} (it expands the lookups' navigation \
                         properties other than ownerid).",
                        set.set
                    ))
                })?;
            let mut select = None;
            for opt in options.map(|o| o.split(';').collect::<Vec<_>>()).unwrap_or_default() {
                match opt.trim().split_once('=') {
                    Some(("$select", cols)) => select = Some(cols.to_owned()),
                    _ => {
                        return Err(ApiError::query(
                            "The emulator supports only $select inside $expand.",
                        ));
                    }
                }
            }
            // Check the selection against the target now, so a bad name is a 400.
            match Table::from_logical(nav.target) {
                Some(table) => {
                    odata::parse_select(store, table, select.as_deref())?;
                }
                None => {
                    let target = records::by_logical(nav.target)
                        .ok_or_else(|| ApiError::query("Unknown $expand target."))?;
                    parse_select(target, select.as_deref())?;
                }
            }
            Ok(Expand { nav, select })
        })
        .collect()
}

/// The expansions of `row`: each lookup's target record, or `null`.
fn expanded(
    store: &Store,
    set: &'static Set,
    row: &crate::table::Row,
    expand: &[Expand],
    body: &mut Json,
) -> Result<(), ApiError> {
    let records = &store.records;
    for e in expand {
        let value = set
            .column(e.nav.column)
            .and_then(|c| row.get(c))
            .and_then(Cell::as_str)
            .and_then(parse_guid);
        // A multi-table lookup expands only through the navigation of the table it points at.
        let kind = match e.nav.column {
            "customerid" => set.column("customeridtype"),
            "objectid" => set.column("objecttypecode"),
            _ => None,
        }
        .and_then(|c| row.get(c))
        .and_then(Cell::as_str);
        let value = value.filter(|_| kind.is_none_or(|k| k == e.nav.target));
        let target = match (value, Table::from_logical(e.nav.target)) {
            (None, _) => Json::Null,
            (Some(g), Some(table)) => {
                let select = odata::parse_select(store, table, e.select.as_deref())?;
                store.get(table, g).map_or(Json::Null, |r| {
                    odata::render(store, table, r, &select, None)
                })
            }
            (Some(g), None) => {
                let target = records::by_logical(e.nav.target)
                    .ok_or_else(|| ApiError::query("Unknown $expand target."))?;
                let select = parse_select(target, e.select.as_deref())?;
                records
                    .get(target, g)
                    .map_or(Json::Null, |r| records::render(records, target, r, &select))
            }
        };
        body[e.nav.name] = target;
    }
    Ok(())
}

/// Answers a `GET` of the set or of one record.
pub fn read(
    store: &Store,
    set: &'static Set,
    target: Option<&Target>,
    req: &Req,
) -> Result<Reply, ApiError> {
    let expand = parse_expand(store, set, param(req, "$expand"))?;
    let select = parse_select(set, param(req, "$select"))?;
    let records = &store.records;
    if let Some(target) = target {
        let row = resolve(store, set, target)?
            .and_then(|id| records.table(set).get(id))
            .ok_or_else(|| not_found(set, target))?;
        let mut body = records::render(records, set, row, &select);
        expanded(store, set, row, &expand, &mut body)?;
        body["@odata.context"] = Json::String(format!(
            "{}{API_PREFIX}$metadata#{}/$entity",
            req.base, set.set
        ));
        return Ok(Reply::json(200, body));
    }
    if param(req, "$skip").is_some() {
        return Err(ApiError::query(
            "The query parameter $skip is not supported",
        ));
    }
    let order = odata::parse_orderby(param(req, "$orderby"), set.id_column)?;
    let filter = param(req, "$filter").map(odata::parse_expr).transpose()?;
    if let Some(f) = &filter {
        check_columns(set, f)?;
    }
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
            let last = records.row_id(set, last).ok_or_else(bad_token)?;
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
    let table = records.table(set);
    let matching = |row: &&crate::table::Row| {
        filter
            .as_ref()
            .is_none_or(|f| matches(records, set, row, f))
    };
    let candidates = filter.as_ref().and_then(|f| indexed(records, set, f));
    let mut rows: Vec<&crate::table::Row> = Vec::with_capacity(page_size.min(1024) + 1);
    let mut total = None;
    match (&candidates, order) {
        (_, odata::Order::Modified) => {
            // Every match, sorted: the emulator keeps no index on `modifiedon`.
            let mut all: Vec<&crate::table::Row> = match &candidates {
                Some(ids) => ids.iter().filter_map(|id| table.get(*id)).collect(),
                None => table.iter(Show::Live).collect(),
            };
            all.retain(matching);
            all.sort_by_key(|r| (r.modified_ms, r.id));
            total = Some(all.len());
            let after = after.map(|a| (after_modified.unwrap_or(i64::MIN), a));
            rows.extend(
                all.into_iter()
                    .filter(|r| after.is_none_or(|a| (r.modified_ms, r.id) > a))
                    .take(page_size + 1),
            );
        }
        (Some(ids), odata::Order::Key) => {
            let all: Vec<&crate::table::Row> = ids
                .iter()
                .filter_map(|id| table.get(*id))
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
            let mut from = after;
            'pages: loop {
                let page = table.page(from, 1024, Show::Live);
                for row in &page.rows {
                    if matching(row) {
                        rows.push(row);
                        if rows.len() > page_size {
                            break 'pages;
                        }
                    }
                }
                match page.next_after {
                    Some(next) => from = Some(next),
                    None => break,
                }
            }
        }
    }
    let more = rows.len() > page_size && paged;
    rows.truncate(page_size);
    let value: Vec<Json> = rows
        .iter()
        .map(|r| {
            let mut body = records::render(records, set, r, &select);
            expanded(store, set, r, &expand, &mut body).map(|()| body)
        })
        .collect::<Result<_, _>>()?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Json::String(format!(
            "{}{API_PREFIX}$metadata#{}({})",
            req.base,
            set.set,
            select.join(",")
        )),
    );
    if count {
        let n = total.unwrap_or_else(|| {
            table
                .iter(Show::Live)
                .filter(|r| matching(r))
                .take(COUNT_CAP)
                .count()
        });
        body.insert("@odata.count".into(), json!(n.min(COUNT_CAP)));
    }
    body.insert("value".into(), Json::Array(value));
    if more && let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let modified =
            (order == odata::Order::Modified).then_some((first.modified_ms, last.modified_ms));
        let token = odata::skiptoken(
            set,
            page_number,
            records.guid(set, first.id),
            records.guid(set, last.id),
            modified,
        );
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
                set.set,
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

/// `EntityDefinitions(LogicalName='…')/Keys` of `set`.
pub fn keys(store: &Store, set: &'static Set, base: &str) -> Reply {
    let keys: Vec<Json> = if set.keyed && store.keys_defined {
        vec![json!({
            "LogicalName": KEY_NAME,
            "SchemaName": "ferry_SourceId_Key",
            "EntityLogicalName": set.logical,
            "KeyAttributes": [KEY_COLUMN],
            "EntityKeyIndexStatus": "Active",
            "MetadataId": guid((u128::from(set.prefix) << 96) | 0xc0de),
        })]
    } else {
        Vec::new()
    };
    Reply::json(
        200,
        json!({
            "@odata.context": format!("{base}{API_PREFIX}$metadata#EntityDefinitions('{}')/Keys", set.logical),
            "value": keys,
        }),
    )
}

/// Turns the engine's complaint into Dataverse's error.
fn table_error(set: &'static Set, e: TableError) -> ApiError {
    match e {
        TableError::TooLong { column, max, .. } => ApiError::too_long(set, &column, max),
        TableError::Duplicate { .. } => ApiError::duplicate_key(),
        TableError::Required { column } => ApiError::required(set, &column),
        TableError::UnknownColumn { column } => ApiError::unknown_property(set, &column),
        other => ApiError::payload(set, &other.to_string()),
    }
}

/// Resolves the target of a lookup bind: a record of `target` (logical name) addressed by
/// `reference`; returns its GUID. Accounts and contacts are checked against the older store.
fn resolve_bind(
    store: &Store,
    set: &'static Set,
    target: &str,
    reference: &str,
) -> Result<u128, ApiError> {
    let path = bind_path(reference).ok_or_else(|| ApiError::bad_bind(reference))?;
    let Some((bound_set, inner)) = path.strip_suffix(')').and_then(|p| p.split_once('(')) else {
        return Err(ApiError::bad_bind(reference));
    };
    if let Some(table) = Table::from_logical(target) {
        if bound_set != table.set() {
            return Err(ApiError::bad_bind(reference));
        }
        let address = parse_address(table, inner)?;
        let id = match &address {
            Target::Id(id) => store.get(table, *id).map(|r| r.id),
            Target::Key(key) => {
                if !store.keys_defined {
                    return Err(ApiError::invalid_key(table));
                }
                store.id_by_key(table, key)
            }
            Target::New => None,
        };
        return id.ok_or_else(|| ApiError::not_found(table, &address));
    }
    if target == "systemuser" {
        // Owners are users or teams: `resolve_owner` answers both.
        return store.resolve_owner(set, reference);
    }
    let target_set = records::by_logical(target).ok_or_else(|| ApiError::bad_bind(reference))?;
    if bound_set != target_set.set {
        return Err(ApiError::bad_bind(reference));
    }
    let address = parse_address(target_set, inner)?;
    let id =
        resolve(store, target_set, &address)?.ok_or_else(|| not_found(target_set, &address))?;
    Ok(store.records.guid(target_set, id))
}

/// The previous cells of row `id` of `set`, every column, to undo a change.
fn snapshot(records: &Records, set: &'static Set, id: u64) -> Vec<(usize, Option<Cell>)> {
    let row = records.table(set).get_any(id);
    (0..set.columns.len())
        .map(|c| (c, row.and_then(|r| r.get(c)).cloned()))
        .collect()
}

fn int_of(cells: &[(usize, Option<Cell>)], at: Option<usize>) -> Option<Option<i64>> {
    let at = at?;
    cells
        .iter()
        .rev()
        .find(|(c, _)| *c == at)
        .map(|(_, v)| match v {
            Some(Cell::Int(n)) => Some(*n),
            _ => None,
        })
}

fn stored_int(records: &Records, set: &Set, id: Option<u64>, name: &str) -> Option<i64> {
    let row = records.table(set).get(id?)?;
    match row.get(set.column(name)?) {
        Some(Cell::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Answers a `POST` (create), `PATCH` (upsert or update) or `DELETE` of a record of `set`.
pub fn write(
    store: &mut Store,
    set: &'static Set,
    target: Target,
    req: &Req,
    condition: &Condition,
    now: i64,
) -> Result<(Reply, Option<Undo>), ApiError> {
    if !set.writable {
        return Err(ApiError::method());
    }
    let existing = resolve(store, set, &target)?;
    if req.method == "DELETE" {
        let id = existing.ok_or_else(|| not_found(set, &target))?;
        // `If-Match` on a delete: only this version (optimistic concurrency, documented for
        // every table).
        if let Condition::Version(v) = condition
            && store
                .records
                .table(set)
                .get(id)
                .and_then(|row| records::version_of(set, row))
                .and_then(|n| u64::try_from(n).ok())
                != Some(*v)
        {
            return Err(ApiError::precondition_failed());
        }
        store
            .records
            .delete(set, id, now)
            .map_err(|e| table_error(set, e))?;
        // A delete on the engine is not undone by a failed change set (documented).
        return Ok((
            Reply {
                status: 204,
                headers: Vec::new(),
                body: None,
            },
            None,
        ));
    }
    match (condition, existing) {
        (Condition::MustExist | Condition::Version(_), None) => {
            return Err(not_found(set, &target));
        }
        (Condition::MustNotExist, Some(_)) => return Err(ApiError::exists()),
        (Condition::Version(v), Some(id))
            if records::version_of(
                set,
                store
                    .records
                    .table(set)
                    .get(id)
                    .ok_or_else(|| not_found(set, &target))?,
            )
            .and_then(|n| u64::try_from(n).ok())
                != Some(*v) =>
        {
            return Err(ApiError::precondition_failed());
        }
        _ => {}
    }
    if let (Target::Id(_), None) = (&target, existing) {
        // The engine numbers its rows itself: creating with a client-chosen GUID is not
        // emulated (documented); address by alternate key or POST instead.
        return Err(not_found(set, &target));
    }
    let body: Map<String, Json> = match serde_json::from_str::<Json>(&req.body) {
        Ok(Json::Object(m)) => m,
        _ => {
            return Err(ApiError::payload(
                set,
                "Microsoft.OData.ODataException: The request body is not a JSON object.",
            ));
        }
    };
    let created = existing.is_none();
    let mut cells: Vec<(usize, Option<Cell>)> = Vec::new();
    let mut created_ms = now;
    let column = |name: &str| set.column(name);
    for (name, value) in &body {
        if let Some(nav_name) = name.strip_suffix("@odata.bind") {
            let nav = set
                .navs
                .iter()
                .find(|n| n.name == nav_name)
                .ok_or_else(|| ApiError::unknown_property(set, nav_name))?;
            let at = column(nav.column).ok_or_else(|| ApiError::unknown_property(set, nav_name))?;
            let type_column = match nav.column {
                "customerid" => column("customeridtype"),
                "objectid" => column("objecttypecode"),
                "ownerid" => column("owneridtype"),
                _ => None,
            };
            match value {
                Json::Null if nav.column == "ownerid" => {
                    return Err(ApiError::payload(set, "ownerid cannot be set to null"));
                }
                Json::Null => {
                    cells.push((at, None));
                    if let Some(t) = type_column {
                        cells.push((t, None));
                    }
                }
                Json::String(reference) => {
                    let g = resolve_bind(store, set, nav.target, reference)?;
                    cells.push((at, Some(Cell::Text(guid(g).into()))));
                    if let Some(t) = type_column {
                        cells.push((t, Some(Cell::Text(nav.target.into()))));
                    }
                }
                _ => return Err(ApiError::payload(set, "a bind must be a URL string")),
            }
            continue;
        }
        if name.contains('@') {
            // Instance annotations (`@odata.type`, `x@OData.Community…`) carry no data.
            continue;
        }
        let at = column(name).ok_or_else(|| ApiError::unknown_property(set, name))?;
        let col = &set.columns[at];
        if matches!(col.dv, Dv::Lookup(_) | Dv::EntityName) {
            return Err(ApiError::unknown_property(set, name));
        }
        if name == "overriddencreatedon" {
            // Valid for create only: the record's createdon becomes this time, and the column
            // keeps when the record was really created (migrated).
            if created && let Some(Cell::Time(ms)) = records::convert(set, col, value)? {
                created_ms = ms;
                cells.push((at, Some(Cell::Time(now))));
            }
            continue;
        }
        if !col.writable && name != "statecode" {
            // Columns not valid for create or update are ignored, as the Web API does.
            continue;
        }
        cells.push((at, records::convert(set, col, value)?));
    }
    if std::ptr::eq(set, &OPPORTUNITY) {
        opportunity_rules(store, existing, &mut cells, created)?;
    }
    if created {
        if let Target::Key(key) = &target
            && let Some(at) = column(KEY_COLUMN)
        {
            cells.push((at, Some(Cell::Text(key.as_str().into()))));
        }
        if let (Some(owner), Some(kind)) = (column("ownerid"), column("owneridtype"))
            && !cells.iter().any(|(c, _)| *c == owner)
        {
            let me = guid(store.records.app_user());
            cells.push((owner, Some(Cell::Text(me.into()))));
            cells.push((kind, Some(Cell::Text("systemuser".into()))));
        }
        if let Some(at) = column("isdocument")
            && !cells.iter().any(|(c, _)| *c == at)
        {
            cells.push((at, Some(Cell::Bool(false))));
        }
        if store.enforce_required && std::ptr::eq(set, &OPPORTUNITY) {
            let named = column("name").is_some_and(|at| {
                cells
                    .iter()
                    .rev()
                    .find(|(c, _)| *c == at)
                    .is_some_and(|(_, v)| v.is_some())
            });
            if !named {
                return Err(ApiError::required(set, "name"));
            }
        }
    }
    store.records.versioned(set, &mut cells);
    let records = &mut store.records;
    let (id, undo) = match existing {
        Some(id) => {
            let previous = snapshot(records, set, id);
            let table = records
                .tables
                .get_mut(set.set)
                .ok_or_else(|| ApiError::no_resource(set.set))?;
            table
                .update(id, cells, now, true)
                .map_err(|e| table_error(set, e))?;
            (id, Undo::Updated(set.set, id, previous))
        }
        None => {
            let table = records
                .tables
                .get_mut(set.set)
                .ok_or_else(|| ApiError::no_resource(set.set))?;
            // Required columns are ApplicationRequired: not enforced by the Web API.
            let checked = table
                .prepare(None, cells, true)
                .map_err(|e| table_error(set, e))?;
            let id = table.insert_checked(checked, created_ms, now);
            (id, Undo::Created(set.set, id))
        }
    };
    let records = &store.records;
    let entity = format!(
        "{}{API_PREFIX}{}({})",
        req.base,
        set.set,
        records.guid_text(set, id)
    );
    let reply = if req.prefs.representation {
        let select = parse_select(set, param(req, "$select"))?;
        let row = records
            .table(set)
            .get(id)
            .ok_or_else(|| not_found(set, &Target::Id(records.guid(set, id))))?;
        let mut body = records::render(records, set, row, &select);
        body["@odata.context"] = Json::String(format!(
            "{}{API_PREFIX}$metadata#{}/$entity",
            req.base, set.set
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

/// An opportunity's state rules on a create or update: it is created open; closing takes the
/// actions; a closed one is read-only unless the write reopens it (`statecode` 0). The sales
/// stage keeps the business process flow's stage (`stageid`) and `stepname` in step.
fn opportunity_rules(
    store: &Store,
    existing: Option<u64>,
    cells: &mut Vec<(usize, Option<Cell>)>,
    created: bool,
) -> Result<(), ApiError> {
    let set = &OPPORTUNITY;
    let records = &store.records;
    let state_at = set.column("statecode");
    let status_at = set.column("statuscode");
    let state = int_of(cells, state_at);
    let status = int_of(cells, status_at);
    let current = stored_int(records, set, existing, "statecode").unwrap_or(0);
    let reopening = state == Some(Some(0)) && current != 0;
    if current != 0 && !reopening {
        let g = existing.map_or(0, |id| records.guid(set, id));
        return Err(ApiError::closed_opportunity(g));
    }
    if matches!(state, Some(Some(s)) if s != 0) {
        return Err(ApiError::close_with_action());
    }
    if let Some(Some(s)) = status
        && state_of_status(s) != Some(0)
    {
        return Err(ApiError::close_with_action());
    }
    if let (Some(state_at), Some(status_at)) = (state_at, status_at)
        && (created || reopening)
    {
        cells.retain(|(c, _)| *c != state_at);
        cells.push((state_at, Some(Cell::Int(0))));
        if status.flatten().is_none() {
            cells.retain(|(c, _)| *c != status_at);
            cells.push((status_at, Some(Cell::Int(1))));
        }
    }
    if created {
        if let Some(at) = set.column("transactioncurrencyid")
            && !cells.iter().any(|(c, v)| *c == at && v.is_some())
        {
            // The organisation's base currency, as Dataverse defaults it.
            if let Some(base) = records.currency(records::CURRENCIES[0].0) {
                cells.retain(|(c, _)| *c != at);
                cells.push((at, Some(Cell::Text(base.into()))));
            }
        }
        if let Some(at) = set.column("processid") {
            cells.push((
                at,
                Some(Cell::Text(records.guid_text(&records::WORKFLOW, 1).into())),
            ));
        }
    }
    let stage_at = set.column("salesstage");
    let mut stage = int_of(cells, stage_at).flatten();
    if created && stage.is_none() {
        // A new opportunity starts in the process's first stage.
        stage = Some(0);
        if let Some(at) = stage_at {
            cells.push((at, Some(Cell::Int(0))));
        }
    }
    if let Some(value) = stage {
        if let (Some(stage_id), Some(at)) = (records.stage(value), set.column("stageid")) {
            cells.push((at, Some(Cell::Text(stage_id.into()))));
        }
        let step_at = set.column("stepname");
        if let Some(step_at) = step_at
            && !cells.iter().any(|(c, _)| *c == step_at)
            && let Some((_, label)) = SALES_STAGES.iter().find(|s| s.0 == value)
        {
            cells.push((
                step_at,
                Some(Cell::Text(format!("{}-{label}", value + 1).into())),
            ));
        }
    }
    Ok(())
}

/// `POST WinOpportunity` / `POST LoseOpportunity`: `{"Status": n, "OpportunityClose":
/// {"opportunityid@odata.bind": "/opportunities(<id>)", "actualrevenue"?, "actualend"?,
/// "subject"?, "description"?}}`. Closes the opportunity (state Won or Lost, the given status
/// reason), sets its actual revenue and close date; 204.
pub fn close(
    store: &mut Store,
    action: &str,
    req: &Req,
    now: i64,
) -> Result<(Reply, Option<Undo>), ApiError> {
    let won = action == "WinOpportunity";
    let Ok(Json::Object(body)) = serde_json::from_str::<Json>(&req.body) else {
        return Err(ApiError::missing_parameter(action, "OpportunityClose"));
    };
    let status = match body.get("Status") {
        Some(Json::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::missing_parameter(action, "Status"))?,
        Some(Json::Object(o)) => o
            .get("Value")
            .and_then(Json::as_i64)
            .ok_or_else(|| ApiError::missing_parameter(action, "Status"))?,
        _ => return Err(ApiError::missing_parameter(action, "Status")),
    };
    // -1 asks for the state's default status reason.
    let status = match (status, won) {
        (-1, true) => 3,
        (-1, false) => 4,
        (s, _) => s,
    };
    let state = if won { 1 } else { 2 };
    if state_of_status(status) != Some(state) {
        return Err(ApiError::bad_status(action, status));
    }
    let close = body
        .get("OpportunityClose")
        .and_then(Json::as_object)
        .ok_or_else(|| ApiError::missing_parameter(action, "OpportunityClose"))?;
    let reference = close
        .get("opportunityid@odata.bind")
        .and_then(Json::as_str)
        .ok_or_else(|| ApiError::missing_parameter(action, "OpportunityClose.opportunityid"))?;
    let set = &OPPORTUNITY;
    let g = resolve_bind(store, set, "opportunity", reference)?;
    let id = store
        .records
        .row_id(set, g)
        .ok_or_else(|| ApiError::does_not_exist(set.logical, g))?;
    if stored_int(&store.records, set, Some(id), "statecode").unwrap_or(0) != 0 {
        return Err(ApiError::closed_opportunity(g));
    }
    let actual_end = match close.get("actualend") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if crate::table::is_date(s.get(..10).unwrap_or("")) => {
            s.get(..10).map(str::to_owned)
        }
        Some(other) => return Err(ApiError::literal_mismatch(set, other, "Edm.Date")),
    };
    let revenue = match close.get("actualrevenue") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| ApiError::literal_mismatch(set, v, "Edm.Decimal"))?,
        ),
    };
    let records = &mut store.records;
    let previous = snapshot(records, set, id);
    let estimated = set
        .column("estimatedvalue")
        .and_then(|c| records.table(set).get(id)?.get(c).cloned());
    let today = super::odata::iso(now)[..10].to_owned();
    let mut cells = Vec::new();
    let col = |n: &str| set.column(n).unwrap_or(usize::MAX);
    cells.push((col("statecode"), Some(Cell::Int(state))));
    cells.push((col("statuscode"), Some(Cell::Int(status))));
    cells.push((
        col("actualclosedate"),
        Some(Cell::Text(actual_end.unwrap_or(today).into())),
    ));
    let actual = match revenue {
        Some(r) => Some(Cell::Num((r * 100.0).round() / 100.0)),
        None if won => estimated,
        None => None,
    };
    cells.push((col("actualvalue"), actual));
    records.versioned(set, &mut cells);
    records
        .tables
        .get_mut(set.set)
        .ok_or_else(|| ApiError::no_resource(set.set))?
        .update(id, cells, now, true)
        .map_err(|e| table_error(set, e))?;
    Ok((
        Reply {
            status: 204,
            headers: Vec::new(),
            body: None,
        },
        Some(Undo::Updated(set.set, id, previous)),
    ))
}
