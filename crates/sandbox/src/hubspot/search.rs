//! `POST /crm/v3/objects/{object}/search`: HubSpot's CRM search, as much of it as ferry needs.
//!
//! Reproduced: the request body (`filterGroups`, `sorts`, `properties`, `limit` up to 200,
//! default 10, and `after` as an integer offset), the limits on filter groups and filters, the
//! 10,000-result paging cap, one sort rule, and the `{total, results, paging}` response. Archived
//! records never appear. Filters compare numbers as numbers, dates and datetimes as instants
//! (epoch milliseconds or ISO-8601), and everything else as text, ignoring case. The free-text
//! `query` and the token operators are refused with a 400 that says the emulator lacks them,
//! rather than answered wrongly. The rate limit (5 per second, no rate-limit headers) is the
//! gate's business. "Newly written records appear after a short indexing delay": HubSpot
//! states no length, so by default search sees every write at once; `Options::search_lag`
//! keeps contacts and companies out of search for that long after each write.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;
use super::api::{body_selection, parse_body, record_json, unknown_object};
use super::respond::validation;
use super::store::{Kind, ObjectStore, Rec, parse_timestamp};

/// What search needs of an object type's records, whichever store holds them (contacts and
/// companies in an [`ObjectStore`], deals and notes on the table engine).
pub(crate) trait Source {
    /// One record.
    type Row;
    /// The id of property `name`.
    fn prop(&self, name: &str) -> Option<usize>;
    /// The HubSpot type of property `prop` (`number`, `datetime`, `string`, …).
    fn prop_type(&self, prop: usize) -> &str;
    /// The value of `prop` on `row`, as HubSpot sends it.
    fn value<'r>(&'r self, row: &'r Self::Row, prop: usize) -> Option<Cow<'r, str>>;
    /// The record's id.
    fn id(row: &Self::Row) -> u64;
    /// The live records, in id order.
    fn live(&self) -> Box<dyn Iterator<Item = &Self::Row> + '_>;
    /// The record as a search result, with the properties the body asks for.
    fn result(&self, row: &Self::Row, body: &Value) -> Value;
    /// When the record was last written (epoch ms), for the index's lag; records of stores
    /// that do not say are never lagged.
    fn updated(_row: &Self::Row) -> i64 {
        i64::MIN
    }
}

impl Source for ObjectStore {
    type Row = Rec;
    fn prop(&self, name: &str) -> Option<usize> {
        self.prop_id(name).map(usize::from)
    }
    fn prop_type(&self, prop: usize) -> &str {
        u16::try_from(prop).map_or("string", |p| self.prop(p).ty.as_str())
    }
    fn value<'r>(&'r self, row: &'r Rec, prop: usize) -> Option<Cow<'r, str>> {
        ObjectStore::value(self, row, u16::try_from(prop).ok()?)
    }
    fn id(row: &Rec) -> u64 {
        row.id
    }
    fn live(&self) -> Box<dyn Iterator<Item = &Rec> + '_> {
        Box::new(self.starting_at(0).iter().filter(|r| !r.is_archived()))
    }
    fn result(&self, row: &Rec, body: &Value) -> Value {
        Value::Object(record_json(self, row, &body_selection(self, body)))
    }
    fn updated(row: &Rec) -> i64 {
        row.updated
    }
}

/// The search page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 10;
/// "The maximum number of supported objects per page is 200."
const MAX_LIMIT: usize = 200;
/// Filter groups per request (the search guide: five groups, six filters each, 18 in all).
const MAX_GROUPS: usize = 5;
/// Filters per group.
const MAX_FILTERS_PER_GROUP: usize = 6;
/// Filters per request, over all groups.
const MAX_FILTERS: usize = 18;
/// The longest free-text `query`.
const MAX_QUERY_CHARS: usize = 3000;

/// A filter operator of the spec's enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
}

impl Operator {
    /// The operator called `name`; `Err` is the 400 for an unknown or unemulated one.
    fn parse(name: &str) -> Result<Operator, Response> {
        Ok(match name {
            "EQ" => Operator::Eq,
            "NEQ" => Operator::Neq,
            "LT" => Operator::Lt,
            "LTE" => Operator::Lte,
            "GT" => Operator::Gt,
            "GTE" => Operator::Gte,
            "BETWEEN" => Operator::Between,
            "IN" => Operator::In,
            "NOT_IN" => Operator::NotIn,
            "HAS_PROPERTY" => Operator::HasProperty,
            "NOT_HAS_PROPERTY" => Operator::NotHasProperty,
            "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
                return Err(validation(format!(
                    "The operator {name} is not supported by the ferry sandbox's HubSpot emulator"
                )));
            }
            other => {
                return Err(validation(format!(
                    "Invalid filter operator: {other}. Expected one of EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, \
                     NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN"
                )));
            }
        })
    }
}

/// One parsed filter.
struct Filter {
    prop: usize,
    operator: Operator,
    value: Option<String>,
    high: Option<String>,
    values: Vec<String>,
    /// For `IN` / `NOT_IN` on a text property: the values lower-cased, so that a record is
    /// matched by one lookup, not a comparison per value (a read-back searches 200 ids).
    text_values: Option<HashSet<String>>,
}

/// A scalar given as a JSON string, number or boolean, as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative integer given as a JSON number or a string of digits.
fn integer(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_filter<S: Source>(store: &S, raw: &Value) -> Result<Filter, Response> {
    let name = raw
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("Some required fields were not set: [propertyName]"))?;
    let operator = raw
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("Some required fields were not set: [operator]"))?;
    let operator = Operator::parse(operator)?;
    let prop = store
        .prop(name)
        .ok_or_else(|| validation(format!("Property {name} does not exist")))?;
    let value = raw.get("value").and_then(scalar);
    let high = raw.get("highValue").and_then(scalar);
    let values: Vec<String> = raw
        .get("values")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().filter_map(scalar).collect())
        .unwrap_or_default();
    let missing = match operator {
        Operator::HasProperty | Operator::NotHasProperty => None,
        Operator::In | Operator::NotIn if values.is_empty() => Some("values"),
        Operator::In | Operator::NotIn => None,
        Operator::Between if high.is_none() => Some("highValue"),
        _ if value.is_none() => Some("value"),
        _ => None,
    };
    if let Some(field) = missing {
        return Err(validation(format!(
            "The filter on {name} needs `{field}` for operator {operator:?}"
        )));
    }
    let text = !matches!(store.prop_type(prop), "number" | "date" | "datetime");
    let text_values = (text && matches!(operator, Operator::In | Operator::NotIn))
        .then(|| values.iter().map(|v| v.to_lowercase()).collect());
    Ok(Filter {
        prop,
        operator,
        value,
        high,
        values,
        text_values,
    })
}

/// Compares a stored value with a filter value by the property's type: numbers as numbers,
/// dates as instants, the rest as text ignoring case. `None` when they are not comparable.
fn compare<S: Source>(store: &S, prop: usize, stored: &str, given: &str) -> Option<Ordering> {
    match store.prop_type(prop) {
        "number" => {
            let (a, b) = (
                stored.trim().parse::<f64>().ok()?,
                given.trim().parse::<f64>().ok()?,
            );
            a.partial_cmp(&b)
        }
        "date" | "datetime" => Some(parse_timestamp(stored)?.cmp(&parse_timestamp(given)?)),
        _ => Some(stored.to_lowercase().cmp(&given.to_lowercase())),
    }
}

impl Filter {
    fn matches<S: Source>(&self, store: &S, rec: &S::Row) -> bool {
        let stored = store.value(rec, self.prop);
        let stored = stored.as_deref().filter(|v| !v.is_empty());
        let cmp = |given: &Option<String>| match (stored, given) {
            (Some(s), Some(g)) => compare(store, self.prop, s, g),
            _ => None,
        };
        let equal_any = || {
            if let Some(set) = &self.text_values {
                return stored.is_some_and(|s| set.contains(&s.to_lowercase()));
            }
            self.values.iter().any(|g| {
                stored.is_some_and(|s| compare(store, self.prop, s, g) == Some(Ordering::Equal))
            })
        };
        match self.operator {
            Operator::HasProperty => stored.is_some(),
            Operator::NotHasProperty => stored.is_none(),
            Operator::Eq => cmp(&self.value) == Some(Ordering::Equal),
            Operator::Neq => cmp(&self.value) != Some(Ordering::Equal),
            Operator::Lt => cmp(&self.value) == Some(Ordering::Less),
            Operator::Lte => matches!(cmp(&self.value), Some(Ordering::Less | Ordering::Equal)),
            Operator::Gt => cmp(&self.value) == Some(Ordering::Greater),
            Operator::Gte => matches!(cmp(&self.value), Some(Ordering::Greater | Ordering::Equal)),
            Operator::Between => {
                matches!(cmp(&self.value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(&self.high), Some(Ordering::Less | Ordering::Equal))
            }
            Operator::In => equal_any(),
            Operator::NotIn => !equal_any(),
        }
    }
}

/// The parsed `filterGroups`: groups are ORed, filters in a group ANDed. Empty: everything.
fn parse_groups<S: Source>(store: &S, body: &Value) -> Result<Vec<Vec<Filter>>, Response> {
    let groups = match body.get("filterGroups") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(groups)) => groups,
        Some(_) => return Err(validation("filterGroups must be an array")),
    };
    let sizes: Vec<usize> = groups
        .iter()
        .map(|g| {
            g.get("filters")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .collect();
    let total: usize = sizes.iter().sum();
    if groups.len() > MAX_GROUPS {
        return Err(validation(format!(
            "Too many filter groups: {} were provided, the maximum is {MAX_GROUPS}",
            groups.len()
        )));
    }
    if let Some(n) = sizes.iter().find(|n| **n > MAX_FILTERS_PER_GROUP) {
        return Err(validation(format!(
            "Too many filters in a filter group: {n} were provided, the maximum is {MAX_FILTERS_PER_GROUP}"
        )));
    }
    if total > MAX_FILTERS {
        return Err(validation(format!(
            "Too many filters: {total} were provided across all filter groups, the maximum is {MAX_FILTERS}"
        )));
    }
    groups
        .iter()
        .map(|g| {
            let filters = g
                .get("filters")
                .and_then(Value::as_array)
                .ok_or_else(|| validation("Some required fields were not set: [filters]"))?;
            filters.iter().map(|f| parse_filter(store, f)).collect()
        })
        .collect()
}

/// The one sort rule, if any: (property, descending).
fn parse_sort<S: Source>(store: &S, body: &Value) -> Result<Option<(usize, bool)>, Response> {
    let sorts = match body.get("sorts") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(sorts)) => sorts,
        Some(_) => return Err(validation("sorts must be an array")),
    };
    if sorts.len() > 1 {
        return Err(validation(format!(
            "Only one sorting rule can be applied, but {} were provided",
            sorts.len()
        )));
    }
    let Some(sort) = sorts.first() else {
        return Ok(None);
    };
    // The spec types a sort as a string (a property name); the guide sends an object.
    let (name, direction) = match sort {
        Value::String(name) => (name.as_str(), "ASCENDING"),
        other => (
            other
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| validation("Some required fields were not set: [propertyName]"))?,
            other
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING"),
        ),
    };
    let descending = match direction {
        "ASCENDING" => false,
        "DESCENDING" => true,
        other => {
            return Err(validation(format!(
                "Invalid sort direction: {other}. Expected ASCENDING or DESCENDING"
            )));
        }
    };
    let prop = store
        .prop(name)
        .ok_or_else(|| validation(format!("Property {name} does not exist")))?;
    Ok(Some((prop, descending)))
}

/// Orders two records by `prop`; records without a value come last, ties go by id.
fn sort_order<S: Source>(
    store: &S,
    prop: usize,
    descending: bool,
    a: &S::Row,
    b: &S::Row,
) -> Ordering {
    let (va, vb) = (store.value(a, prop), store.value(b, prop));
    let by_value = match (va.as_deref(), vb.as_deref()) {
        (Some(x), Some(y)) => {
            let o = compare(store, prop, x, y).unwrap_or_else(|| x.cmp(y));
            if descending { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_value.then(S::id(a).cmp(&S::id(b)))
}

/// `POST /crm/v3/objects/{object}/search`.
pub(crate) async fn search(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let obj = super::records::Obj::parse(&object);
    let Some(kind) = Kind::parse(&object).or(obj.map(|_| Kind::Contacts)) else {
        return unknown_object(&object);
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !body.is_object() {
        return validation("The request body must be a JSON object");
    }
    // Records written within the lag are not indexed yet.
    let indexed_by = emulator
        .search_lag_ms()
        .map_or(i64::MAX, |lag| emulator.now_ms().saturating_sub(lag));
    let cap = emulator.search_max_results();
    let data = emulator.read();
    let answer = match obj {
        Some(obj) => match super::records::searchable(&emulator, &data, obj) {
            Some(source) => run(&source, &body, indexed_by, cap),
            None => Err(unknown_object(&object)),
        },
        None => run(data.store(kind), &body, indexed_by, cap),
    };
    match answer {
        Ok(r) | Err(r) => r,
    }
}

/// Answers the search `body` over the records of `store` written at or before `indexed_by`,
/// paging through the first `cap` results at most.
fn run<S: Source>(
    store: &S,
    body: &Value,
    indexed_by: i64,
    cap: usize,
) -> Result<Response, Response> {
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(raw) => match integer(raw) {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            Some(n) if n > MAX_LIMIT as u64 => {
                return Err(validation(format!(
                    "limit must be less than or equal to {MAX_LIMIT}, but was {n}"
                )));
            }
            _ => return Err(validation(format!("Invalid value for limit: {raw}"))),
        },
    };
    let offset = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(raw) => integer(raw).ok_or_else(|| {
            validation(format!(
                "Invalid value for after: {raw}. It must be formatted as an integer"
            ))
        })? as usize,
    };
    if offset >= cap {
        return Err(validation(format!(
            "Paging is limited to {cap} results for a search, but after was {offset}"
        )));
    }
    match body.get("query") {
        None | Some(Value::Null) => {}
        Some(Value::String(q)) if q.chars().count() > MAX_QUERY_CHARS => {
            return Err(validation(format!(
                "query must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        Some(Value::String(q)) if q.trim().is_empty() => {}
        Some(_) => {
            return Err(validation(
                "The free-text query is not supported by the ferry sandbox's HubSpot emulator",
            ));
        }
    }
    let groups = parse_groups(store, body)?;
    let sort = parse_sort(store, body)?;
    let wanted = |rec: &&S::Row| {
        S::updated(rec) <= indexed_by
            && (groups.is_empty()
                || groups
                    .iter()
                    .any(|g| g.iter().all(|f| f.matches(store, *rec))))
    };
    // Results past the cap (10,000th) can never be paged to, so a page never holds any.
    let end = (offset + limit).min(cap);
    let (total, page): (usize, Vec<&S::Row>) = match sort {
        None => {
            // Id order; only the page's records are kept, so a count over a million is cheap.
            let mut total = 0;
            let mut page = Vec::with_capacity(limit);
            for rec in store.live().filter(wanted) {
                if (offset..end).contains(&total) {
                    page.push(rec);
                }
                total += 1;
            }
            (total, page)
        }
        Some((prop, descending)) => {
            let mut all: Vec<&S::Row> = store.live().filter(wanted).collect();
            if store.prop("hs_object_id") == Some(prop) {
                // Live records come in id order, which is hs_object_id's: a sort would only
                // cost time (keyset reads sort by it on every page).
                if descending {
                    all.reverse();
                }
            } else {
                all.sort_by(|a, b| sort_order(store, prop, descending, a, b));
            }
            let total = all.len();
            let page = all
                .get(offset.min(total)..end.min(total))
                .unwrap_or_default()
                .to_vec();
            (total, page)
        }
    };
    let results: Vec<Value> = page.iter().map(|rec| store.result(rec, body)).collect();
    let next = offset + results.len();
    let mut response = json!({ "total": total, "results": results });
    if !results.is_empty() && next < total {
        response["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    Ok(Json(response).into_response())
}
