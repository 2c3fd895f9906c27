//! The v4 association batch writes between contacts and companies: `batch/create` (with
//! association types, e.g. the primary label), `batch/associate/default` (the unlabelled
//! association) and `batch/archive` (removes every association between each pair).
//!
//! HubSpot keeps one primary company per contact: labelling another company primary moves the
//! label, and the former primary company stays associated without it. The emulator keeps the
//! primary company on the contact's record and the others in `Data::unlabeled`.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{batch_response, id_text, inputs, now_ms, parse_body, unknown_object};
use super::respond::validation;
use super::store::Kind;
use super::{Data, Emulator};

/// Inputs per association batch write. HubSpot documents 1,000 for batch read; 2,000 for
/// batch create is reported by third parties only (UNCONFIRMED), and used for all writes here.
const MAX_ASSOCIATION_WRITE: usize = 2000;

/// Which way round a request names the pair, and its association type ids.
#[derive(Clone, Copy)]
struct Direction {
    /// Whether `from` is the contact (contacts → companies).
    from_contact: bool,
    /// The primary type id in this direction (1 contact→company, 2 company→contact).
    primary: i64,
    /// The unlabelled type id in this direction (279 contact→company, 280 company→contact).
    unlabeled: i64,
}

impl Direction {
    fn of(from: &str, to: &str) -> Result<Direction, Response> {
        match (Kind::parse(from), Kind::parse(to)) {
            (Some(Kind::Contacts), Some(Kind::Companies)) => Ok(Direction {
                from_contact: true,
                primary: 1,
                unlabeled: 279,
            }),
            (Some(Kind::Companies), Some(Kind::Contacts)) => Ok(Direction {
                from_contact: false,
                primary: 2,
                unlabeled: 280,
            }),
            (Some(_), Some(_)) => Err(validation(format!(
                "The emulator supports associations between contacts and companies only, not {from} to {to}"
            ))),
            _ => Err(unknown_object(&format!("{from}/{to}"))),
        }
    }

    fn type_ids(self) -> (&'static str, &'static str) {
        if self.from_contact {
            ("0-1", "0-2")
        } else {
            ("0-2", "0-1")
        }
    }

    /// (contact, company) from the request's (from, to).
    fn pair(self, from: u64, to: u64) -> (u64, u64) {
        if self.from_contact {
            (from, to)
        } else {
            (to, from)
        }
    }
}

/// The (from, to) ids of an input whose `to` is one object (`{"id": …}`).
fn ids(input: &Value) -> (Option<String>, Option<String>) {
    (
        id_text(input.pointer("/from/id")),
        id_text(input.pointer("/to/id")),
    )
}

/// Both records exist and are live: the (contact, company) pair.
fn live_pair(data: &Data, direction: Direction, from: &str, to: &str) -> Option<(u64, u64)> {
    let (from, to) = (from.parse::<u64>().ok()?, to.parse::<u64>().ok()?);
    let (contact, company) = direction.pair(from, to);
    let live = |kind: Kind, id: u64| data.store(kind).get(id).is_some_and(|r| !r.is_archived());
    (live(Kind::Contacts, contact) && live(Kind::Companies, company)).then_some((contact, company))
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

/// Associates `company` with `contact`, as the primary company or without a label.
fn associate(data: &mut Data, contact: u64, company: u64, primary: bool) {
    let current = data
        .store(Kind::Contacts)
        .get(contact)
        .and_then(|r| r.company);
    if primary {
        if current == Some(company) {
            return;
        }
        data.store_mut(Kind::Contacts)
            .set_company(contact, Some(company));
        let others = data.unlabeled.entry(contact).or_default();
        others.retain(|c| *c != company);
        if let Some(previous) = current
            && !others.contains(&previous)
        {
            others.push(previous);
        }
        if others.is_empty() {
            data.unlabeled.remove(&contact);
        }
    } else if current != Some(company) {
        let others = data.unlabeled.entry(contact).or_default();
        if !others.contains(&company) {
            others.push(company);
        }
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/create`: creates associations of the given
/// types; 201, or 207 with an error per input that names a missing record or a type the
/// emulator does not know.
pub(crate) async fn batch_create(
    State(emulator): State<Emulator>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if super::links::handles(&from, &to) {
        return match parse_body(&body) {
            Ok(body) => super::links::batch_create(&emulator, &from, &to, &body),
            Err(r) => r,
        };
    }
    let started = now_ms();
    let direction = match Direction::of(&from, &to) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let inputs = match inputs(&body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut planned = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (Some(from_id), Some(to_id)) = ids(input) else {
            return validation("Some required fields were not set: [from, to]");
        };
        let Some(types) = input.get("types").and_then(Value::as_array) else {
            return validation("Some required fields were not set: [types]");
        };
        let mut primary = false;
        let mut unknown = Vec::new();
        for t in types {
            let id = t.get("associationTypeId").and_then(Value::as_i64);
            let category = t
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or("HUBSPOT_DEFINED");
            match id {
                Some(id) if category == "HUBSPOT_DEFINED" && id == direction.primary => {
                    primary = true
                }
                Some(id) if category == "HUBSPOT_DEFINED" && id == direction.unlabeled => {}
                other => unknown.push(format!("{category}/{}", other.unwrap_or_default())),
            }
        }
        planned.push((from_id, to_id, primary, unknown));
    }
    let (from_type, to_type) = direction.type_ids();
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (from_id, to_id, primary, unknown) in planned {
        if !unknown.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": format!(
                    "The emulator knows only the HUBSPOT_DEFINED contact/company types {}, {}: not {}",
                    direction.primary, direction.unlabeled, unknown.join(", ")
                ),
                "context": {"fromObjectId": [from_id], "toObjectId": [to_id]},
            }));
            continue;
        }
        let Some((contact, company)) = live_pair(&data, direction, &from_id, &to_id) else {
            errors.push(invalid_ids(&from_id, &to_id));
            continue;
        };
        associate(&mut data, contact, company, primary);
        let labels: Vec<&str> = if primary { vec!["Primary"] } else { Vec::new() };
        results.push(json!({
            "fromObjectTypeId": from_type,
            "fromObjectId": from_id,
            "toObjectTypeId": to_type,
            "toObjectId": to_id,
            "labels": labels,
        }));
    }
    drop(data);
    batch_response(StatusCode::CREATED, results, errors, started)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default`: the unlabelled
/// association (type 279 contact→company, 280 company→contact); 200, or 207 per missing record.
pub(crate) async fn batch_associate_default(
    State(emulator): State<Emulator>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if super::links::handles(&from, &to) {
        return match parse_body(&body) {
            Ok(body) => super::links::batch_default(&emulator, &from, &to, &body),
            Err(r) => r,
        };
    }
    let started = now_ms();
    let direction = match Direction::of(&from, &to) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let inputs = match inputs(&body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for input in inputs {
        let (Some(from_id), Some(to_id)) = ids(input) else {
            return validation("Some required fields were not set: [from, to]");
        };
        let Some((contact, company)) = live_pair(&data, direction, &from_id, &to_id) else {
            errors.push(invalid_ids(&from_id, &to_id));
            continue;
        };
        associate(&mut data, contact, company, false);
        results.push(json!({
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": direction.unlabeled},
            "from": {"id": from_id},
            "to": {"id": to_id},
        }));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/archive`: removes every association between
/// each `from` and its `to` ids; 204 whatever the prior state.
pub(crate) async fn batch_archive(
    State(emulator): State<Emulator>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if super::links::handles(&from, &to) {
        return match parse_body(&body) {
            Ok(body) => super::links::batch_archive(&emulator, &from, &to, &body),
            Err(r) => r,
        };
    }
    let direction = match Direction::of(&from, &to) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let inputs = match inputs(&body, MAX_ASSOCIATION_WRITE) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut pairs = Vec::new();
    for input in inputs {
        let Some(from_id) = id_text(input.pointer("/from/id")).and_then(|s| s.parse().ok()) else {
            return validation("Some required fields were not set: [from]");
        };
        let Some(to) = input.get("to").and_then(Value::as_array) else {
            return validation("Some required fields were not set: [to]");
        };
        for t in to {
            if let Some(to_id) = id_text(t.get("id")).and_then(|s| s.parse::<u64>().ok()) {
                pairs.push(direction.pair(from_id, to_id));
            }
        }
    }
    let mut data = emulator.write();
    for (contact, company) in pairs {
        if data
            .store(Kind::Contacts)
            .get(contact)
            .and_then(|r| r.company)
            == Some(company)
        {
            data.store_mut(Kind::Contacts).set_company(contact, None);
        }
        if let Some(others) = data.unlabeled.get_mut(&contact) {
            others.retain(|c| *c != company);
            if others.is_empty() {
                data.unlabeled.remove(&contact);
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
