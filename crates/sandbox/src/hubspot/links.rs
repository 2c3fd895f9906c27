//! Associations of deals and notes (v4): deal ↔ contact (types 3/4), deal ↔ company (341/342,
//! the primary company 5/6), note ↔ contact (202/201), note ↔ company (190/189) and note ↔ deal
//! (214/213), held in [`LinkSet`]s of the shared table engine, one per pair of object types.
//!
//! Served: `POST /crm/v4/associations/{from}/{to}/batch/read` (≤1,000 inputs, 500 associations
//! per object with an `after` cursor), `batch/create` (≤2,000, with association types),
//! `batch/associate/default` and `batch/archive`, `GET /crm/v4/objects/{from}/{id}/associations/{to}`,
//! and the single-pair `PUT …/associations/default/{to}/{toId}`, `PUT` and `DELETE
//! …/associations/{to}/{toId}`.
//! A labelled association brings the unlabelled one with it, as in HubSpot; a deal has one
//! primary company, so labelling another one primary moves the label. Associations of an
//! archived record stay stored (HubSpot restores them with the record) but are not listed.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{
    ASSOCIATION_PAGE, MAX_ASSOCIATION_BATCH, Params, batch_response, decode_cursor, encode_cursor,
    id_text, inputs, now_ms, unknown_object,
};
use super::respond::validation;
use super::store::Kind;
use super::{Data, Emulator};
use crate::table::LinkSet;

/// Inputs per association batch write ("batch create is ≤2,000 inputs", HubSpot's v4 guide).
const MAX_ASSOCIATION_WRITE: usize = 2000;

/// An object type that takes part in the associations of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Contact,
    Company,
    Deal,
    Note,
}

impl Side {
    /// Parses a path segment: plural or singular name, or object type id.
    pub(crate) fn parse(segment: &str) -> Option<Side> {
        match segment.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(Side::Contact),
            "companies" | "company" | "0-2" => Some(Side::Company),
            "deals" | "deal" | "0-3" => Some(Side::Deal),
            "notes" | "note" | "0-46" => Some(Side::Note),
            _ => None,
        }
    }

    /// The object type id (`0-3`).
    pub(crate) fn type_id(self) -> &'static str {
        match self {
            Side::Contact => "0-1",
            Side::Company => "0-2",
            Side::Deal => "0-3",
            Side::Note => "0-46",
        }
    }

    /// The upper-case singular name of error messages.
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Side::Contact => "CONTACT",
            Side::Company => "COMPANY",
            Side::Deal => "DEAL",
            Side::Note => "NOTE",
        }
    }

    /// Whether record `id` of this type exists and is not archived.
    pub(crate) fn live(self, data: &Data, id: u64) -> bool {
        match self {
            Side::Contact => live_in_store(data, Kind::Contacts, id),
            Side::Company => live_in_store(data, Kind::Companies, id),
            Side::Deal => data.tables.get("deals").and_then(|t| t.get(id)).is_some(),
            Side::Note => data.tables.get("notes").and_then(|t| t.get(id)).is_some(),
        }
    }
}

fn live_in_store(data: &Data, kind: Kind, id: u64) -> bool {
    data.store(kind).get(id).is_some_and(|r| !r.is_archived())
}

/// The link sets, one per pair of object types, each stored from the deal's or note's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    DealContacts,
    DealCompanies,
    NoteContacts,
    NoteCompanies,
    NoteDeals,
}

/// One association type: `type_id` from `from` to `to`, stored in `set` under `stored` (the
/// type id in the set's own direction), with `base` the unlabelled type it implies.
#[derive(Debug)]
pub(crate) struct AssocType {
    from: Side,
    to: Side,
    /// The type id in this direction, as requests and answers carry it.
    pub type_id: u32,
    set: Set,
    /// Whether `from` is the set's owning side (deal or note).
    forward: bool,
    stored: u32,
    base: u32,
    /// HubSpot's label ("Primary"), `None` for the unlabelled type.
    pub label: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)]
const fn t(
    from: Side,
    to: Side,
    type_id: u32,
    set: Set,
    forward: bool,
    stored: u32,
    base: u32,
    label: Option<&'static str>,
) -> AssocType {
    AssocType {
        from,
        to,
        type_id,
        set,
        forward,
        stored,
        base,
        label,
    }
}

/// The association types the emulator serves (HubSpot's v4 guide, HUBSPOT_DEFINED).
const TYPES: &[AssocType] = &[
    t(
        Side::Deal,
        Side::Contact,
        3,
        Set::DealContacts,
        true,
        3,
        3,
        None,
    ),
    t(
        Side::Contact,
        Side::Deal,
        4,
        Set::DealContacts,
        false,
        3,
        3,
        None,
    ),
    t(
        Side::Deal,
        Side::Company,
        341,
        Set::DealCompanies,
        true,
        341,
        341,
        None,
    ),
    t(
        Side::Deal,
        Side::Company,
        5,
        Set::DealCompanies,
        true,
        5,
        341,
        Some("Primary"),
    ),
    t(
        Side::Company,
        Side::Deal,
        342,
        Set::DealCompanies,
        false,
        341,
        341,
        None,
    ),
    t(
        Side::Company,
        Side::Deal,
        6,
        Set::DealCompanies,
        false,
        5,
        341,
        Some("Primary"),
    ),
    t(
        Side::Note,
        Side::Contact,
        202,
        Set::NoteContacts,
        true,
        202,
        202,
        None,
    ),
    t(
        Side::Contact,
        Side::Note,
        201,
        Set::NoteContacts,
        false,
        202,
        202,
        None,
    ),
    t(
        Side::Note,
        Side::Company,
        190,
        Set::NoteCompanies,
        true,
        190,
        190,
        None,
    ),
    t(
        Side::Company,
        Side::Note,
        189,
        Set::NoteCompanies,
        false,
        190,
        190,
        None,
    ),
    t(
        Side::Note,
        Side::Deal,
        214,
        Set::NoteDeals,
        true,
        214,
        214,
        None,
    ),
    t(
        Side::Deal,
        Side::Note,
        213,
        Set::NoteDeals,
        false,
        214,
        214,
        None,
    ),
];

/// The association type `type_id` from `from`; `None` if the emulator does not know it.
pub(crate) fn assoc_type(from: Side, type_id: i64) -> Option<&'static AssocType> {
    TYPES
        .iter()
        .find(|t| t.from == from && i64::from(t.type_id) == type_id)
}

/// The object type an association of `kind` points at.
pub(crate) fn target(kind: &AssocType) -> Side {
    kind.to
}

/// The unlabelled (default) type from `from` to `to`.
fn default_type(from: Side, to: Side) -> Option<&'static AssocType> {
    TYPES
        .iter()
        .find(|t| t.from == from && t.to == to && t.label.is_none())
}

/// Whether the emulator serves associations between `from` and `to` here (a pair with a deal
/// or a note); contacts ↔ companies are `associations.rs`'s.
pub(crate) fn handles(from: &str, to: &str) -> bool {
    let (Some(a), Some(b)) = (Side::parse(from), Side::parse(to)) else {
        return false;
    };
    matches!(a, Side::Deal | Side::Note) || matches!(b, Side::Deal | Side::Note)
}

/// Every association of deals and notes.
#[derive(Default)]
pub(crate) struct Links {
    sets: [LinkSet; 5],
}

impl Links {
    fn set(&self, set: Set) -> &LinkSet {
        &self.sets[set as usize]
    }

    fn set_mut(&mut self, set: Set) -> &mut LinkSet {
        &mut self.sets[set as usize]
    }

    /// Associates `from` with `to` as `kind` says (with its unlabelled type; a primary label
    /// moves from any other record).
    pub(crate) fn add(&mut self, kind: &AssocType, from: u64, to: u64) {
        let (owner, other) = if kind.forward { (from, to) } else { (to, from) };
        let set = self.set_mut(kind.set);
        if kind.label.is_some() {
            let moved: Vec<u64> = set
                .from(owner, None, usize::MAX)
                .into_iter()
                .filter(|(o, l)| *l == kind.stored && *o != other)
                .map(|(o, _)| o)
                .collect();
            for o in moved {
                set.unlink(owner, o, kind.stored);
            }
        }
        set.link(owner, other, kind.base);
        set.link(owner, other, kind.stored);
    }

    /// Seeds one association, in the set's own direction (no primary bookkeeping).
    pub(crate) fn seed(&mut self, kind: &AssocType, owner: u64, other: u64) {
        let set = self.set_mut(kind.set);
        set.link(owner, other, kind.base);
        set.link(owner, other, kind.stored);
    }

    /// Removes every association between `from` and `to`.
    fn remove_all(&mut self, kind: &AssocType, from: u64, to: u64) {
        let (owner, other) = if kind.forward { (from, to) } else { (to, from) };
        let set = self.set_mut(kind.set);
        let labels: Vec<u32> = set
            .from(owner, other.checked_sub(1), usize::MAX)
            .into_iter()
            .take_while(|(o, _)| *o == other)
            .map(|(_, l)| l)
            .collect();
        for label in labels {
            set.unlink(owner, other, label);
        }
    }

    /// `id`'s live associations from `from` to `to`, in id order: (other id, types in this
    /// direction).
    pub(crate) fn list(
        &self,
        data: &Data,
        from: Side,
        to: Side,
        id: u64,
    ) -> Vec<(u64, Vec<&'static AssocType>)> {
        let Some(default) = default_type(from, to) else {
            return Vec::new();
        };
        let set = self.set(default.set);
        let raw = if default.forward {
            set.from(id, None, usize::MAX)
        } else {
            set.to(id, None, usize::MAX)
        };
        let mut out: Vec<(u64, Vec<&'static AssocType>)> = Vec::new();
        for (other, stored) in raw {
            if !to.live(data, other) {
                continue;
            }
            let Some(kind) = TYPES
                .iter()
                .find(|t| t.from == from && t.to == to && t.stored == stored)
            else {
                continue;
            };
            match out.last_mut() {
                Some((last, kinds)) if *last == other => kinds.push(kind),
                _ => out.push((other, vec![kind])),
            }
        }
        for (_, kinds) in &mut out {
            // The labelled types first, as HubSpot lists them.
            kinds.sort_by_key(|k| k.label.is_none());
        }
        out
    }
}

/// The `associationTypes` of one association, in HubSpot's v4 shape.
pub(crate) fn types_json(kinds: &[&AssocType]) -> Vec<Value> {
    kinds
        .iter()
        .map(|k| json!({"category": "HUBSPOT_DEFINED", "typeId": k.type_id, "label": k.label}))
        .collect()
}

fn sides(from: &str, to: &str) -> Result<(Side, Side), Response> {
    match (Side::parse(from), Side::parse(to)) {
        (Some(a), Some(b)) if default_type(a, b).is_some() => Ok((a, b)),
        (Some(_), Some(_)) => Err(validation(format!(
            "The emulator has no association types from {from} to {to}"
        ))),
        _ => Err(unknown_object(&format!("{from}/{to}"))),
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read` for pairs with a deal or a note.
pub(crate) fn batch_read(emulator: &Emulator, from: &str, to: &str, body: &Value) -> Response {
    let started = now_ms();
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let inputs = match inputs(body, MAX_ASSOCIATION_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut wanted: Vec<(u64, usize)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Some(id) = id_text(input.get("id")).and_then(|s| s.parse().ok()) else {
            return validation("Some required fields were not set: [id]");
        };
        let offset = match input.get("after").and_then(Value::as_str) {
            None => 0,
            Some(after) => match decode_cursor(after) {
                Some(o) => usize::try_from(o).unwrap_or(usize::MAX),
                None => {
                    return validation(format!(
                        "Invalid input: `after` of {id} is not a paging cursor"
                    ));
                }
            },
        };
        wanted.push((id, offset));
    }
    let data = emulator.read();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (id, offset) in wanted {
        let found = if from.live(&data, id) {
            data.links.list(&data, from, to, id)
        } else {
            Vec::new()
        };
        if found.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {} is associated with {} {id}.", to.upper(), from.upper()),
                "context": {"fromObjectId": [id.to_string()]},
            }));
            continue;
        }
        let offset = offset.min(found.len());
        let end = offset.saturating_add(ASSOCIATION_PAGE).min(found.len());
        let page: Vec<Value> = found[offset..end]
            .iter()
            .map(|(other, kinds)| json!({"toObjectId": other, "associationTypes": types_json(kinds)}))
            .collect();
        let mut result = json!({"from": {"id": id.to_string()}, "to": page});
        if end < found.len() {
            result["paging"] = json!({"next": {"after": encode_cursor(end as u64), "link": null}});
        }
        results.push(result);
    }
    batch_response(StatusCode::OK, results, errors, started)
}

/// An input naming a record that does not exist. The shape follows HubSpot's batch error
/// items; the exact subCategory and context keys are UNCONFIRMED.
fn invalid_ids(from: &str, to: &str) -> Value {
    json!({
        "status": "error",
        "category": "VALIDATION_ERROR",
        "subCategory": "crm.associations.INVALID_OBJECT_IDS",
        "message": format!("One or more of the object ids are invalid: from {from} to {to}"),
        "context": {"fromObjectId": [from], "toObjectId": [to]},
    })
}

/// Both ids parse and name live records.
fn live_pair(data: &Data, from: Side, to: Side, a: &str, b: &str) -> Option<(u64, u64)> {
    let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (from.live(data, a) && to.live(data, b)).then_some((a, b))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/create` for pairs with a deal or a note: 201,
/// or 207 with an error per input naming a missing record or an unknown type.
pub(crate) fn batch_create(emulator: &Emulator, from: &str, to: &str, body: &Value) -> Response {
    let started = now_ms();
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let inputs = match inputs(body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut planned = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (Some(a), Some(b)) = (
            id_text(input.pointer("/from/id")),
            id_text(input.pointer("/to/id")),
        ) else {
            return validation("Some required fields were not set: [from, to]");
        };
        let Some(types) = input.get("types").and_then(Value::as_array) else {
            return validation("Some required fields were not set: [types]");
        };
        let mut kinds = Vec::new();
        let mut unknown = Vec::new();
        for ty in types {
            let id = ty.get("associationTypeId").and_then(Value::as_i64);
            let category = ty
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or("HUBSPOT_DEFINED");
            match id.and_then(|id| assoc_type(from, id)) {
                Some(kind) if category == "HUBSPOT_DEFINED" && kind.to == to => kinds.push(kind),
                _ => unknown.push(format!("{category}/{}", id.unwrap_or_default())),
            }
        }
        planned.push((a, b, kinds, unknown));
    }
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (a, b, kinds, unknown) in planned {
        if !unknown.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": format!(
                    "Unknown association types from {} to {}: {}",
                    from.type_id(), to.type_id(), unknown.join(", ")
                ),
                "context": {"fromObjectId": [a], "toObjectId": [b]},
            }));
            continue;
        }
        let Some((x, y)) = live_pair(&data, from, to, &a, &b) else {
            errors.push(invalid_ids(&a, &b));
            continue;
        };
        for kind in &kinds {
            data.links.add(kind, x, y);
        }
        let labels: Vec<&str> = kinds.iter().filter_map(|k| k.label).collect();
        results.push(json!({
            "fromObjectTypeId": from.type_id(),
            "fromObjectId": x,
            "toObjectTypeId": to.type_id(),
            "toObjectId": y,
            "labels": labels,
        }));
    }
    drop(data);
    batch_response(StatusCode::CREATED, results, errors, started)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default` for pairs with a deal or a
/// note: the unlabelled association; 200, or 207 per missing record.
pub(crate) fn batch_default(emulator: &Emulator, from: &str, to: &str, body: &Value) -> Response {
    let started = now_ms();
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(kind) = default_type(from, to) else {
        return validation("No default association type");
    };
    let inputs = match inputs(body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for input in inputs {
        let (Some(a), Some(b)) = (
            id_text(input.pointer("/from/id")),
            id_text(input.pointer("/to/id")),
        ) else {
            return validation("Some required fields were not set: [from, to]");
        };
        let Some((x, y)) = live_pair(&data, from, to, &a, &b) else {
            errors.push(invalid_ids(&a, &b));
            continue;
        };
        data.links.add(kind, x, y);
        results.push(json!({
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": kind.type_id},
            "from": {"id": a},
            "to": {"id": b},
        }));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/archive` for pairs with a deal or a note:
/// removes every association between each `from` and its `to` ids; 204.
pub(crate) fn batch_archive(emulator: &Emulator, from: &str, to: &str, body: &Value) -> Response {
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(kind) = default_type(from, to) else {
        return validation("No default association type");
    };
    let inputs = match inputs(body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut pairs = Vec::new();
    for input in inputs {
        let Some(a) = id_text(input.pointer("/from/id")).and_then(|s| s.parse::<u64>().ok()) else {
            return validation("Some required fields were not set: [from]");
        };
        let Some(to) = input.get("to").and_then(Value::as_array) else {
            return validation("Some required fields were not set: [to]");
        };
        for target in to {
            if let Some(b) = id_text(target.get("id")).and_then(|s| s.parse::<u64>().ok()) {
                pairs.push((a, b));
            }
        }
    }
    let mut data = emulator.write();
    for (a, b) in pairs {
        data.links.remove_all(kind, a, b);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}`: one record's associations, 500 per
/// page (`limit` up to 500) with an `after` cursor.
pub(crate) fn list_of(
    emulator: &Emulator,
    from: &str,
    id: &str,
    to: &str,
    params: &Params,
) -> Response {
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let limit = match params.limit(ASSOCIATION_PAGE, ASSOCIATION_PAGE) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let offset = match params.get("after") {
        None | Some("") => 0,
        Some(after) => match decode_cursor(after) {
            Some(o) => usize::try_from(o).unwrap_or(usize::MAX),
            None => {
                return validation(
                    "Invalid value for query parameter `after`: not a paging cursor",
                );
            }
        },
    };
    let data = emulator.read();
    let Some(id) = id.parse::<u64>().ok().filter(|i| from.live(&data, *i)) else {
        return super::api::not_found_named(from.upper(), id);
    };
    let found = data.links.list(&data, from, to, id);
    let offset = offset.min(found.len());
    let end = offset.saturating_add(limit).min(found.len());
    let results: Vec<Value> = found[offset..end]
        .iter()
        .map(|(other, kinds)| json!({"toObjectId": other, "associationTypes": types_json(kinds)}))
        .collect();
    let mut body = json!({ "results": results });
    if end < found.len() {
        body["paging"] = json!({"next": {"after": encode_cursor(end as u64), "link": null}});
    }
    Json(body).into_response()
}

/// The v3 `associations` member of a deal or note read with `associations=…`: per requested
/// type, `{"results": [{"id", "type"}]}` with HubSpot's snake-case type names.
pub(crate) fn v3_associations(
    data: &Data,
    from: Side,
    id: u64,
    requested: &[&str],
) -> Option<Value> {
    let mut out = serde_json::Map::new();
    let mut seen: HashMap<&'static str, ()> = HashMap::new();
    for name in requested {
        let Some(to) = Side::parse(name) else {
            continue;
        };
        let key = match to {
            Side::Contact => "contacts",
            Side::Company => "companies",
            Side::Deal => "deals",
            Side::Note => "notes",
        };
        if seen.insert(key, ()).is_some() || default_type(from, to).is_none() {
            continue;
        }
        let word = |s: Side| match s {
            Side::Contact => "contact",
            Side::Company => "company",
            Side::Deal => "deal",
            Side::Note => "note",
        };
        let mut results = Vec::new();
        for (other, kinds) in data.links.list(data, from, to, id) {
            for kind in kinds {
                let ty = match kind.label {
                    Some(_) => format!("{}_to_{}", word(from), word(to)),
                    None if to == Side::Company && from == Side::Deal => {
                        format!("{}_to_{}_unlabeled", word(from), word(to))
                    }
                    None => format!("{}_to_{}", word(from), word(to)),
                };
                results.push(json!({"id": other.to_string(), "type": ty}));
            }
        }
        if !results.is_empty() {
            out.insert(key.into(), json!({ "results": results }));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The two records of a per-record association write, both live; `Err` is HubSpot-style 400.
fn pair_of(data: &Data, from: Side, to: Side, a: &str, b: &str) -> Result<(u64, u64), Response> {
    live_pair(data, from, to, a, b).ok_or_else(|| {
        super::respond::error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("One or more of the object ids are invalid: from {a} to {b}"),
        )
    })
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`: the unlabelled
/// association of one pair, answered as a one-result batch (200).
pub(crate) fn put_default(emulator: &Emulator, from: &str, a: &str, to: &str, b: &str) -> Response {
    let started = now_ms();
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(kind) = default_type(from, to) else {
        return validation("No default association type");
    };
    let mut data = emulator.write();
    let (x, y) = match pair_of(&data, from, to, a, b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    data.links.add(kind, x, y);
    drop(data);
    let result = json!({
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": kind.type_id},
        "from": {"id": x.to_string()},
        "to": {"id": y.to_string()},
    });
    batch_response(StatusCode::OK, vec![result], Vec::new(), started)
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` with a body of association
/// types: labels one pair (201, `LabelsBetweenObjectPair`).
pub(crate) fn put_labelled(
    emulator: &Emulator,
    from: &str,
    a: &str,
    to: &str,
    b: &str,
    body: &Value,
) -> Response {
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(types) = body.as_array() else {
        return validation("The body must be an array of association types");
    };
    let mut kinds = Vec::with_capacity(types.len());
    for ty in types {
        let id = ty.get("associationTypeId").and_then(Value::as_i64);
        match id
            .and_then(|id| assoc_type(from, id))
            .filter(|k| k.to == to)
        {
            Some(kind) => kinds.push(kind),
            None => {
                return validation(format!(
                    "Unknown association type {} from {} to {}",
                    id.unwrap_or_default(),
                    from.type_id(),
                    to.type_id()
                ));
            }
        }
    }
    let mut data = emulator.write();
    let (x, y) = match pair_of(&data, from, to, a, b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    for kind in &kinds {
        data.links.add(kind, x, y);
    }
    let labels: Vec<&str> = kinds.iter().filter_map(|k| k.label).collect();
    let body = json!({
        "fromObjectTypeId": from.type_id(),
        "fromObjectId": x,
        "toObjectTypeId": to.type_id(),
        "toObjectId": y,
        "labels": labels,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`: removes every association of
/// the pair; 204 whatever the prior state.
pub(crate) fn delete_pair(emulator: &Emulator, from: &str, a: &str, to: &str, b: &str) -> Response {
    let (from, to) = match sides(from, to) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (Some(kind), Ok(x), Ok(y)) = (default_type(from, to), a.parse::<u64>(), b.parse::<u64>())
    else {
        return StatusCode::NO_CONTENT.into_response();
    };
    emulator.write().links.remove_all(kind, x, y);
    StatusCode::NO_CONTENT.into_response()
}
