//! The org's setup, as far as creating custom fields needs it: the Tooling API's
//! `CustomField` create, `FieldPermissions` rows (field-level security), and the integration
//! user and its profile's permission set, readable with SOQL.
//!
//! As on Salesforce, a field created through the Tooling API is visible to no one: describe
//! leaves it out, SOQL and DML answer `INVALID_FIELD` for it, until a `FieldPermissions` row
//! grants the user's permission set Read (and Edit, to write it).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::schema::{FieldDef, Kind, MAX_CUSTOM_FIELDS, ObjectKind, PicklistValue, normalise_text};
use super::soql::{Literal, Op, Query, Select};
use super::{Shared, internal, not_found, sf_error};

/// The integration user every token of the emulator acts as.
pub(crate) const USER_ID: &str = "0058d0000000001AAA";
/// The integration user's profile.
pub(crate) const PROFILE_ID: &str = "00e8d0000000001AAA";
/// The permission set owned by that profile: what `FieldPermissions` rows hang on.
pub(crate) const PERMISSION_SET_ID: &str = "0PS8d0000000001AAA";

/// What the org's setup holds beyond the schema: how many fields and grants were made, for
/// their ids.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    fields_created: u64,
    /// `(ParentId, "Object.Field")` of every `FieldPermissions` row, and its id.
    grants: Vec<(String, String, String)>,
}

/// An id of a setup record: key prefix, the emulator's pod, a serial, `AAA`.
fn setup_id(prefix: &str, n: u64) -> String {
    format!("{prefix}8d{n:010}AAA")
}

/// Salesforce's error for a single-record or Tooling call, with the fields it concerns.
fn field_error(status: StatusCode, code: &str, message: &str, fields: &[&str]) -> Response {
    (
        status,
        axum::Json(json!([{"message": message, "errorCode": code, "fields": fields}])),
    )
        .into_response()
}

fn bad(code: &str, message: &str, fields: &[&str]) -> Response {
    field_error(StatusCode::BAD_REQUEST, code, message, fields)
}

/// Whether `name` (without `__c`) is a custom field name Salesforce accepts: a letter first,
/// then letters, digits and single underscores, no underscore last, at most 40 characters.
fn valid_developer_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// Leaks a name of a created field: field names are `&'static str` throughout the emulator
/// (its standard fields are constants), and an object holds at most [`MAX_CUSTOM_FIELDS`],
/// so what leaks is bounded by what the org's users create.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// `POST /services/data/vXX.X/tooling/sobjects/CustomField` with
/// `{"FullName": "Account.Region__c", "Metadata": {"type": "Text", "label": "Region", "length": 255}}`.
/// Answers 201 `{"id", "success": true, "errors": [], "warnings": [], "infos": []}`.
pub(crate) async fn create_custom_field(
    State(s): State<Arc<Shared>>,
    method: Method,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return not_found();
    }
    let Ok(body) = serde_json::from_slice::<Json>(&body) else {
        return bad(
            "JSON_PARSER_ERROR",
            "The request body is not valid JSON",
            &[],
        );
    };
    let Some(full_name) = body.get("FullName").and_then(Json::as_str) else {
        return bad(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [FullName]",
            &["FullName"],
        );
    };
    let metadata = body.get("Metadata").cloned().unwrap_or(Json::Null);
    let Some((object_name, field_name)) = full_name.split_once('.') else {
        return bad(
            "FIELD_INTEGRITY_EXCEPTION",
            "FullName must be Object.Field__c",
            &["FullName"],
        );
    };
    let Some(object) = ObjectKind::parse(object_name) else {
        return bad(
            "FIELD_INTEGRITY_EXCEPTION",
            &format!("Cannot find an entity named {object_name}"),
            &["FullName"],
        );
    };
    let developer = field_name.strip_suffix("__c").unwrap_or("");
    if !valid_developer_name(developer) {
        return bad(
            "FIELD_INTEGRITY_EXCEPTION",
            &format!(
                "The field name {field_name} is not valid: it must end with __c, begin with a letter, use only \
                 alphanumeric characters and underscores, not include two consecutive underscores, not end with \
                 an underscore, and be at most 40 characters before __c"
            ),
            &["FullName"],
        );
    }
    let Some(label) = metadata
        .get("label")
        .and_then(Json::as_str)
        .and_then(normalise_text)
    else {
        return bad(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Label]",
            &["Label"],
        );
    };
    let def = match field_def(&metadata, label) {
        Ok(def) => def,
        Err(message) => return bad("FIELD_INTEGRITY_EXCEPTION", &message, &["Metadata"]),
    };
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let schema = &store.table(object).schema;
    if schema.any_field(field_name).is_some() {
        return bad(
            "DUPLICATE_DEVELOPER_NAME",
            &format!(
                "There is already a field named {developer} on {}.",
                object.name()
            ),
            &["FullName"],
        );
    }
    if schema.fields.iter().filter(|f| f.custom()).count() >= MAX_CUSTOM_FIELDS {
        return bad(
            "LIMIT_EXCEEDED",
            &format!(
                "You have reached the maximum number of custom fields ({MAX_CUSTOM_FIELDS}) on {}",
                object.name()
            ),
            &[],
        );
    }
    let def = FieldDef {
        name: leak(&format!("{developer}__c")),
        ..def
    };
    store.add_field(object, def);
    drop(store);
    let Ok(mut setup) = s.setup.lock() else {
        return internal();
    };
    setup.fields_created += 1;
    let id = setup_id("00N", setup.fields_created);
    tracing::debug!(object = object.name(), "custom field created");
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "success": true, "errors": [], "warnings": [], "infos": []})),
    )
        .into_response()
}

/// The field a `CustomField`'s `Metadata` describes (named later), invisible until granted.
/// `Err` holds the message of Salesforce's `FIELD_INTEGRITY_EXCEPTION`.
fn field_def(metadata: &Json, label: &str) -> Result<FieldDef, String> {
    let ty = metadata.get("type").and_then(Json::as_str).unwrap_or("");
    let int = |key: &str| metadata.get(key).and_then(Json::as_u64);
    let label = leak(label);
    let base = |kind, length| FieldDef {
        readable: false,
        writable: false,
        external_id: metadata.get("externalId").and_then(Json::as_bool) == Some(true)
            && matches!(kind, Kind::String | Kind::Email | Kind::Double),
        ..FieldDef::data("", label, kind, length, 0)
    };
    let invalid = |what: &str| format!("{ty}: {what}");
    Ok(match ty {
        "Text" => match int("length") {
            Some(n @ 1..=255) => base(Kind::String, n as usize),
            _ => return Err(invalid("Length must be between 1 and 255")),
        },
        "TextArea" => base(Kind::Textarea, 255),
        "LongTextArea" => match int("length") {
            Some(n @ 256..=131_072) => base(Kind::Textarea, n as usize),
            _ => return Err(invalid("Length must be between 256 and 131072")),
        },
        "Email" => base(Kind::Email, 80),
        "Phone" => base(Kind::Phone, 40),
        "Url" => base(Kind::Url, 255),
        "Checkbox" => match metadata.get("defaultValue").and_then(Json::as_str) {
            Some("true" | "false") => base(Kind::Boolean, 0),
            _ => {
                return Err(invalid(
                    "Default Value: a checkbox needs defaultValue true or false",
                ));
            }
        },
        "Date" => base(Kind::Date, 0),
        "DateTime" => base(Kind::Datetime, 0),
        "Number" | "Currency" => {
            let precision = int("precision").unwrap_or(18);
            let scale = int("scale").unwrap_or(0);
            if !(1..=18).contains(&precision) || scale > precision {
                return Err(invalid(
                    "precision must be 1 to 18 and scale no more than precision",
                ));
            }
            FieldDef {
                precision: precision as u8,
                scale: scale as u8,
                ..base(
                    if ty == "Number" {
                        Kind::Double
                    } else {
                        Kind::Currency
                    },
                    0,
                )
            }
        }
        "Picklist" => {
            let set = metadata.get("valueSet").cloned().unwrap_or(Json::Null);
            let values: Vec<PicklistValue> = set
                .pointer("/valueSetDefinition/value")
                .and_then(Json::as_array)
                .map(|values| {
                    values
                        .iter()
                        .filter_map(|v| {
                            let value = v.get("fullName").and_then(Json::as_str)?;
                            let label = v.get("label").and_then(Json::as_str).unwrap_or(value);
                            Some(PicklistValue {
                                value: value.into(),
                                label: label.into(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if values.is_empty() {
                return Err(invalid(
                    "a picklist needs valueSet.valueSetDefinition.value",
                ));
            }
            FieldDef {
                picklist: values,
                restricted: set.get("restricted").and_then(Json::as_bool) == Some(true),
                ..base(Kind::Picklist, 255)
            }
        }
        _ => return Err(invalid("this field type is not supported by the sandbox")),
    })
}

/// `POST /services/data/vXX.X/sobjects/{SObject}`: the sandbox creates single records of
/// `FieldPermissions` only (Account and Contact are written through sObject Collections).
pub(crate) async fn create_record(
    State(s): State<Arc<Shared>>,
    method: Method,
    Path((_version, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if method != Method::POST || !sobject.eq_ignore_ascii_case("FieldPermissions") {
        return not_found();
    }
    let Ok(body) = serde_json::from_slice::<Json>(&body) else {
        return bad(
            "JSON_PARSER_ERROR",
            "The request body is not valid JSON",
            &[],
        );
    };
    let text = |key: &str| body.get(key).and_then(Json::as_str).unwrap_or("");
    let flag = |key: &str| body.get(key).and_then(Json::as_bool).unwrap_or(false);
    let (parent, object_name, field) = (text("ParentId"), text("SobjectType"), text("Field"));
    let (read, edit) = (flag("PermissionsRead"), flag("PermissionsEdit"));
    let mut missing: Vec<&str> = [
        ("ParentId", parent),
        ("SobjectType", object_name),
        ("Field", field),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_empty())
    .map(|(k, _)| k)
    .collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        return bad(
            "REQUIRED_FIELD_MISSING",
            &format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        );
    }
    if parent != PERMISSION_SET_ID && parent.get(..15) != PERMISSION_SET_ID.get(..15) {
        return bad(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            &["ParentId"],
        );
    }
    let Some(object) = ObjectKind::parse(object_name) else {
        return bad(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!("Object: bad value for restricted picklist field: {object_name}"),
            &["SobjectType"],
        );
    };
    let field_index = field
        .split_once('.')
        .filter(|(o, _)| o.eq_ignore_ascii_case(object.name()))
        .and_then(|(_, name)| {
            let store = s.store.read().ok()?;
            store.table(object).schema.any_field(name)
        });
    let Some(field_index) = field_index else {
        return bad(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!("Field Name: bad value for restricted picklist field: {field}"),
            &["Field"],
        );
    };
    if edit && !read {
        return bad(
            "FIELD_INTEGRITY_EXCEPTION",
            "Permission Edit depends on permission(s): Read",
            &["PermissionsEdit"],
        );
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let def = &store.table(object).schema.fields[field_index];
    if !def.custom() {
        return bad(
            "FIELD_INTEGRITY_EXCEPTION",
            &format!("Field-level security of {field} cannot be changed"),
            &["Field"],
        );
    }
    let Ok(mut setup) = s.setup.lock() else {
        return internal();
    };
    let key = format!("{}.{}", object.name(), def.name);
    if let Some((_, _, id)) = setup
        .grants
        .iter()
        .find(|(p, f, _)| p.get(..15) == parent.get(..15) && f.eq_ignore_ascii_case(&key))
    {
        return bad(
            "DUPLICATE_VALUE",
            &format!("duplicate value found: <unknown> duplicates value on record with id: {id}"),
            &[],
        );
    }
    store.set_access(object, field_index, read, edit);
    let id = setup_id("01k", setup.grants.len() as u64 + 1);
    setup
        .grants
        .push((PERMISSION_SET_ID.to_owned(), key, id.clone()));
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response()
}

/// The setup objects a query may read (`PermissionSet`): `None` for other objects, which the
/// store answers (`User` among them). One profile-owned permission set.
pub(crate) fn setup_query(query: &Query) -> Option<Response> {
    let (object, records) = match query.from.to_ascii_lowercase().as_str() {
        "permissionset" => (
            "PermissionSet",
            vec![json!({
                "Id": PERMISSION_SET_ID,
                "Name": format!("X{PROFILE_ID}"),
                "Label": PROFILE_ID,
                "IsOwnedByProfile": true,
                "ProfileId": PROFILE_ID,
            })],
        ),
        _ => return None,
    };
    let no_column = |name: &str| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            &format!("No such column '{name}' on entity '{object}'."),
        )
    };
    let column = |name: &str, record: &Json| -> Option<(String, Json)> {
        record.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(k, v)| (k.clone(), v.clone()))
        })
    };
    let mut matching = Vec::new();
    for record in records {
        if let Some(filter) = &query.filter {
            if filter.path.relationship.is_some() {
                return Some(no_column(&filter.path.field));
            }
            let Some((_, cell)) = column(&filter.path.field, &record) else {
                return Some(no_column(&filter.path.field));
            };
            let equal = |l: &Literal| match (l, &cell) {
                (Literal::Str(l), Json::String(c)) => {
                    c == l || (l.len() == 15 && c.starts_with(l.as_str()))
                }
                (Literal::Bool(l), Json::Bool(c)) => l == c,
                (Literal::Null, Json::Null) => true,
                _ => false,
            };
            let keep = match &filter.op {
                Op::Eq(l) => equal(l),
                Op::Ne(l) => !equal(l),
                Op::In(ls) => ls.iter().any(equal),
                Op::Gt(_) | Op::Ge(_) | Op::Between(..) => false,
            };
            if !keep {
                continue;
            }
        }
        matching.push(record);
    }
    let Select::Fields(paths) = &query.select else {
        return Some(
            axum::Json(json!({"totalSize": matching.len(), "done": true, "records": []}))
                .into_response(),
        );
    };
    let mut out = Vec::with_capacity(matching.len());
    for record in &matching {
        let mut row = serde_json::Map::new();
        let id = record["Id"].as_str().unwrap_or_default();
        row.insert(
            "attributes".into(),
            json!({"type": object, "url": format!("/services/data/v62.0/sobjects/{object}/{id}")}),
        );
        for path in paths {
            match column(&path.field, record).filter(|_| path.relationship.is_none()) {
                Some((k, v)) => {
                    row.insert(k, v);
                }
                None => return Some(no_column(&path.field)),
            }
        }
        out.push(Json::Object(row));
    }
    Some(axum::Json(json!({"totalSize": out.len(), "done": true, "records": out})).into_response())
}
