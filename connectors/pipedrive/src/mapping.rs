//! Pipedrive's record shapes (v2), and the tables between them and canonical records.
//!
//! Persons ↔ contacts: `first_name`/`last_name` (and `name`, their join), the primary email,
//! the phone labelled other than `mobile` (primary first) as `phone`, the one labelled
//! `mobile` as `mobile_phone`, `org_id` as the `company` reference, and `marketing_status ==
//! "unsubscribed"` as `email_opt_out`. Organizations ↔ companies: `name` and the address
//! subfields (`route`, `locality`, `admin_area_level_1`, `postal_code`, `country`). Deals ↔
//! deals: `title`, `value` (0 reads as 0: Pipedrive's value for none, declared as
//! the sink's default for an unset amount), `currency`, `expected_close_date`, `status`,
//! the stage as (`pipeline_id`, `stage_id`) (written as `stage_id`), `org_id` as the company
//! and `person_id` as the first contact (the others are participants, `crate::participants`).
//! Every object's `owner_id` is its owner, a user id written as a number.
//! Pipedrive has no standard field for the rest of the canonical fields; they are not written
//! and so not among [`PipedriveObject::stored_fields`].
//!
//! Which object has which of these is a column of its row in [`crate::objects::OBJECTS`];
//! the code here reads the row and never branches on the object.
//!
//! The plain fields (a canonical field in one top-level field or one custom field) are a
//! [`FieldMap`]: the row's standard table plus the operator's mapped fields, whose vendor
//! names are custom fields' 40-character keys. The compound ones (email and phone lists, the
//! references, the marketing status, the address) are the row's other columns, read here.

use ferry_core::fields::{FieldBinding, FieldKind, FieldMap, PicklistOption, VendorField};
use ferry_core::model::Link;
use ferry_core::{FieldType, ObjectType, Record, RecordRejection, Value, field};
use std::borrow::Cow;

use ferry_core::json::Tree;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::objects::{NameRule, PipedriveObject, TIMESTAMPS};

/// The refusal code of a record whose value does not fit its mapped Pipedrive field.
pub const UNWRITABLE_VALUE: &str = "UNWRITABLE_VALUE";

/// The top-level fields a binding may name (the rest of the body is compound and stays
/// code); any other vendor name of a binding is a custom field's key.
pub const PLAIN_TOP_LEVEL: &[&str] = &["name", "first_name", "last_name"];

/// ferry's kind of a Pipedrive `field_type` (the field `code` decides for the built-in
/// email and phone lists).
pub fn kind_of(code: &str, field_type: &str) -> FieldKind {
    match (code, field_type) {
        ("emails" | "email", _) => FieldKind::Email,
        ("phones", _) | (_, "phone") => FieldKind::Phone,
        (_, "varchar" | "varchar_auto" | "text" | "varchar_options") => FieldKind::Text,
        (_, "double") => FieldKind::Decimal,
        (_, "int") => FieldKind::Integer,
        (_, "boolean") => FieldKind::Bool,
        (_, "date") => FieldKind::Date,
        (_, "enum") => FieldKind::Picklist,
        (_, "set") => FieldKind::MultiPicklist,
        (
            _,
            "org" | "people" | "user" | "deal" | "deals" | "lead" | "project" | "stage"
            | "activity",
        ) => FieldKind::Reference,
        // Monetary (amount + currency), ranges, times, addresses and the rest.
        _ => FieldKind::Other,
    }
}

/// The Pipedrive `field_type` a new field of `kind` is created with, if Pipedrive has one:
/// numbers are `double` (Pipedrive has no integer or checkbox custom field, and no
/// date-and-time one). A checkbox becomes a text field: Pipedrive has no other place for a
/// flag such as a do-not-call opt-out, which ferry writes there as `"true"` (and only when
/// true, see [`to_body`]) and reads back as a flag.
pub fn field_type_for(kind: FieldKind) -> Option<&'static str> {
    Some(match kind {
        FieldKind::Text | FieldKind::Email | FieldKind::Bool => "varchar",
        FieldKind::Phone => "phone",
        FieldKind::Integer | FieldKind::Decimal => "double",
        FieldKind::Date => "date",
        FieldKind::Picklist => "enum",
        FieldKind::MultiPicklist => "set",
        FieldKind::Timestamp | FieldKind::Reference | FieldKind::Other => {
            return None;
        }
    })
}

/// An option id as text (custom options have numbers, built-in ones names).
fn option_id(id: &Json) -> Option<String> {
    match id {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A v2 fields-API definition as a [`VendorField`]; `None` when it has no `field_code`.
/// `standard` names the canonical field each top-level field maps to; `row` the compound ones.
pub fn vendor_field(row: &PipedriveObject, raw: &Json, standard: &FieldMap) -> Option<VendorField> {
    let code = raw.get("field_code").and_then(Json::as_str)?.to_owned();
    let label = raw
        .get("field_name")
        .and_then(Json::as_str)
        .unwrap_or(&code)
        .to_owned();
    let vendor_type = raw
        .get("field_type")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    let custom = raw.get("is_custom_field").and_then(Json::as_bool) == Some(true);
    let options = raw
        .get("options")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some(PicklistOption {
                value: option_id(o.get("id")?)?,
                label: o.get("label").and_then(Json::as_str)?.to_owned(),
            })
        })
        .collect();
    let canonical = if custom {
        None
    } else {
        standard
            .by_vendor(&code)
            .map(|b| b.canonical.to_string())
            .or_else(|| row.compound_canonical(&code).map(str::to_owned))
    };
    Some(VendorField {
        kind: kind_of(&code, &vendor_type),
        writable: custom || row.writable.contains(&code.as_str()),
        name: code,
        label,
        vendor_type,
        custom,
        options,
        canonical,
    })
}

/// The label Pipedrive gives mobile numbers.
pub const MOBILE_LABEL: &str = "mobile";
/// The marketing status that means "opted out of all marketing email".
pub const UNSUBSCRIBED: &str = "unsubscribed";

/// Canonical company field ↔ Pipedrive organization address subfield.
pub const ADDRESS_PARTS: &[(&str, &str)] = &[
    (field::STREET, "route"),
    (field::CITY, "locality"),
    (field::STATE, "admin_area_level_1"),
    (field::POSTAL_CODE, "postal_code"),
    (field::COUNTRY, "country"),
];

/// Whether `name` looks like a custom field's key (40 lower-case hex characters).
pub(crate) fn is_custom_key(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The custom-field keys among `map`'s vendor fields (what a read must ask for).
pub fn custom_keys(map: &FieldMap) -> Vec<&str> {
    map.vendor_names()
        .into_iter()
        .filter(|v| is_custom_key(v))
        .collect()
}

/// A record as parsed JSON, for reading: serde_json's owned tree (answers to writes, the
/// sink's read-back) or a [`Tree`] borrowed from the body (the source's list pages, where a
/// page of 500 records would otherwise cost an allocation per name and value).
pub trait Raw: Sized {
    /// The value of field `key` of an object.
    fn get(&self, key: &str) -> Option<&Self>;
    /// The text of a string.
    fn as_str(&self) -> Option<&str>;
    /// A non-negative integer.
    fn as_u64(&self) -> Option<u64>;
    /// A flag.
    fn as_bool(&self) -> Option<bool>;
    /// The elements of an array.
    fn items(&self) -> Option<&[Self]>;
    /// Whether this is an object.
    fn is_object(&self) -> bool;
    /// A scalar as the text [`FieldBinding::read`] parses: a string trimmed (`None` when
    /// empty), a number or flag in its JSON spelling; `None` for null, objects and arrays.
    fn scalar_text(&self) -> Option<Cow<'_, str>>;
}

impl Raw for Json {
    fn get(&self, key: &str) -> Option<&Self> {
        Json::get(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        Json::as_str(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Json::as_u64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Json::as_bool(self)
    }
    fn items(&self) -> Option<&[Self]> {
        Json::as_array(self).map(Vec::as_slice)
    }
    fn is_object(&self) -> bool {
        Json::is_object(self)
    }
    fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::String(s) => Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty()),
            Json::Number(n) => Some(Cow::Owned(n.to_string())),
            Json::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}

impl Raw for Tree<'_> {
    fn get(&self, key: &str) -> Option<&Self> {
        Tree::get(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        Tree::as_str(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Tree::as_u64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Tree::as_bool(self)
    }
    fn items(&self) -> Option<&[Self]> {
        Tree::as_list(self)
    }
    fn is_object(&self) -> bool {
        Tree::is_object(self)
    }
    fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Tree::Text(s) => Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty()),
            Tree::Number(n) => Some(Cow::Owned(n.to_string())),
            Tree::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}

/// Where a binding's value sits in a v2 record: under `custom_fields` for a custom field's
/// key, else a top-level field (the row's standard table).
fn bound_value<'a, R: Raw>(raw: &'a R, vendor: &str) -> Option<&'a R> {
    if is_custom_key(vendor) {
        raw.get("custom_fields")?.get(vendor)
    } else {
        raw.get(vendor)
    }
}

fn text<'a, R: Raw>(raw: &'a R, key: &str) -> Option<&'a str> {
    raw.get(key)
        .and_then(R::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A Pipedrive record's id, as text.
pub fn id_of<R: Raw>(raw: &R) -> Option<u64> {
    raw.get("id").and_then(R::as_u64)
}

/// The value of custom field `key` as text (`None` when unset or not text/number).
pub fn custom_text(raw: &Json, key: &str) -> Option<String> {
    match raw.get("custom_fields")?.get(key)? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The (value, label, primary) entries of a person's `emails`/`phones`.
fn channels<'a, R: Raw>(raw: &'a R, key: &str) -> Vec<(&'a str, &'a str, bool)> {
    raw.get(key)
        .and_then(R::items)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    let value = c.get("value")?.as_str()?.trim();
                    let label = c.get("label").and_then(R::as_str).unwrap_or("");
                    let primary = c.get("primary").and_then(R::as_bool).unwrap_or(false);
                    (!value.is_empty()).then_some((value, label, primary))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The primary entry, else the first.
fn primary<'a>(list: &[(&'a str, &'a str, bool)]) -> Option<&'a str> {
    list.iter()
        .find(|c| c.2)
        .or_else(|| list.first())
        .map(|c| c.0)
}

/// Maps a Pipedrive record of `row`'s object to a canonical record with the given source id;
/// `reference` gives the source id of a target record (its object and the Pipedrive id the
/// record holds), for the row's references and links. A value that does not parse is a
/// rejection naming the field, never the value.
pub fn to_record<R: Raw>(
    row: &PipedriveObject,
    raw: &R,
    source_id: String,
    reference: impl Fn(ObjectType, u64) -> String,
    map: &FieldMap,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(row.object, source_id);
    let mut problems = Vec::new();
    for binding in map.iter() {
        let Some(text) = bound_value(raw, &binding.vendor).and_then(R::scalar_text) else {
            continue;
        };
        match binding.read(&text) {
            Ok(Some(value)) => {
                record.fields.insert(binding.canonical.clone(), value);
            }
            Ok(None) => {}
            Err(e) => problems.push(format!(
                "`{}` (Pipedrive `{}`, expected {})",
                binding.canonical, binding.vendor, e.expected
            )),
        }
    }
    let mut set =
        |record: &mut Record, canonical: &'static str, vendor: &str, value: Option<&str>| {
            if let Some(value) = value
                && let Err(e) = record.set_parsed(canonical, value)
            {
                problems.push(format!(
                    "`{canonical}` (Pipedrive `{vendor}`, expected {})",
                    e.expected
                ));
            }
        };
    for list in row.channels {
        let entries = channels(raw, list.vendor);
        match list.mobile {
            Some(mobile) => {
                let (mobiles, others): (Vec<_>, Vec<_>) =
                    entries.into_iter().partition(|c| c.1 == MOBILE_LABEL);
                set(&mut record, list.main, list.vendor, primary(&others));
                set(
                    &mut record,
                    mobile,
                    list.vendor,
                    mobiles.first().map(|c| c.0),
                );
            }
            None => set(&mut record, list.main, list.vendor, primary(&entries)),
        }
    }
    for &(canonical, vendor) in row.read_only {
        set(&mut record, canonical, vendor, text(raw, vendor));
    }
    if let Some(opt_out) = &row.opt_out
        && let Some(status) = text(raw, opt_out.vendor)
    {
        record.set(opt_out.canonical, Value::Bool(status == opt_out.opted_out));
    }
    for r in row.references {
        if let Some(id) = raw.get(r.vendor).and_then(R::as_u64) {
            record.set(r.canonical, Value::Reference(reference(r.target, id)));
        }
    }
    for l in row.links {
        let links: Vec<Link> = l
            .targets
            .iter()
            .filter_map(|&(object, vendor)| {
                let id = raw.get(vendor).and_then(R::as_u64)?;
                Some(Link {
                    object,
                    id: reference(object, id),
                })
            })
            .collect();
        if !links.is_empty() {
            record.set(l.canonical, Value::Links(links));
        }
    }
    if let (Some(address), Some((&(street, route), parts))) = (
        raw.get("address").filter(|a| a.is_object()),
        row.address.split_first(),
    ) {
        let street_value = match (text(address, "street_number"), text(address, route)) {
            (Some(n), Some(r)) => Some(format!("{n} {r}")),
            (None, r) => r.map(str::to_owned),
            (n, None) => n.map(str::to_owned),
        };
        set(
            &mut record,
            street,
            &format!("address.{route}"),
            street_value.as_deref(),
        );
        for &(canonical, part) in parts {
            set(&mut record, canonical, part, text(address, part));
        }
    }
    for &(canonical, vendor) in TIMESTAMPS {
        set(&mut record, canonical, vendor, text(raw, vendor));
    }
    if let Some(stage) = &row.stage {
        let id = |k: &str| raw.get(k).and_then(R::as_u64);
        match (id(stage.pipeline), id(stage.stage)) {
            (Some(pipeline), Some(stage_id)) => record.set(
                stage.canonical,
                Value::stage(pipeline.to_string(), stage_id.to_string()),
            ),
            (None, None) => {}
            _ => problems.push(format!(
                "`{}` (Pipedrive `{}` and `{}`, expected a pipeline and a stage)",
                stage.canonical, stage.pipeline, stage.stage
            )),
        }
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: "UNREADABLE_VALUE".into(),
            reason: format!("value of {} could not be read", problems.join(", ")),
        })
    }
}

fn record_text<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    record
        .get(field)
        .and_then(Value::as_text)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The JSON a binding writes for `record`'s value (`null` clears): text trimmed, numbers as
/// JSON numbers, a picklist label as its option id (a number, as Pipedrive takes it). A label
/// the list lacks, or a value of another type, refuses the record, naming the field.
fn bound_json(binding: &FieldBinding, record: &Record) -> Result<Json, RecordRejection> {
    let Some(value) = record.get(&binding.canonical) else {
        return Ok(Json::Null);
    };
    if binding.is_picklist() {
        let label = value.to_vendor_string();
        if label.trim().is_empty() {
            return Ok(Json::Null);
        }
        let id = binding.write_option(VENDOR, &record.source_id, &label)?;
        return Ok(id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)));
    }
    if let Value::Text(s) = value {
        let s = s.trim();
        return Ok(if s.is_empty() { Json::Null } else { json!(s) });
    }
    value
        .to_json(binding.ty)
        .map_err(|expected| RecordRejection {
            source_id: record.source_id.clone(),
            code: UNWRITABLE_VALUE.into(),
            reason: format!(
                "`{}` ({VENDOR} field `{}`): the value is not {expected}",
                binding.canonical, binding.vendor
            ),
        })
}

/// A Pipedrive id held as text (an owner's user id, a stage id) as the JSON number Pipedrive
/// takes; a value that is no such number refuses the record, naming the field.
fn id_json(
    record: &Record,
    canonical: &str,
    vendor: &str,
    text: &str,
) -> Result<Json, RecordRejection> {
    text.trim()
        .parse::<u64>()
        .map(|n| json!(n))
        .map_err(|_| RecordRejection {
            source_id: record.source_id.clone(),
            code: UNWRITABLE_VALUE.into(),
            reason: format!(
                "`{canonical}` ({VENDOR} field `{vendor}`): the value is not a Pipedrive id"
            ),
        })
}

/// The v2 body that writes `record` of `row`'s object (a PATCH body clears what the record
/// lacks, apart from its owner and stage: without one, Pipedrive's own default or the value
/// it holds stays). `source_key` is the source-id custom field's key; `linked` the Pipedrive
/// id each top-level id field of the row's references and links resolved to (`None`: no
/// target, cleared); `map` the plain fields. A value a mapped field cannot take refuses the
/// record.
pub fn to_body(
    row: &PipedriveObject,
    record: &Record,
    source_key: &str,
    linked: &[(&str, Option<u64>)],
    map: &FieldMap,
) -> Result<Json, RecordRejection> {
    let mut body = Map::new();
    let mut custom = Map::new();
    for binding in map.iter() {
        if ferry_core::model::opt_out(&binding.canonical).is_some() {
            // Only an opt-out is ever written: `null` would clear one Pipedrive holds. A flag
            // goes into its text field as `"true"`, names as they are.
            if !ferry_core::consent::leave_out(record, &binding.canonical) {
                let value = match record.get(&binding.canonical) {
                    Some(Value::Text(names)) => json!(names),
                    _ => json!("true"),
                };
                custom.insert(binding.vendor.to_string(), value);
            }
        } else if is_custom_key(&binding.vendor) {
            custom.insert(binding.vendor.to_string(), bound_json(binding, record)?);
        } else if binding.ty == FieldType::Owner {
            // The owner is a user id, a number; none: the token's user or the current owner.
            if let Some(id) = record.get(&binding.canonical).and_then(Value::as_text) {
                let id = id_json(record, &binding.canonical, &binding.vendor, id)?;
                body.insert(binding.vendor.to_string(), id);
            }
        } else {
            body.insert(binding.vendor.to_string(), bound_json(binding, record)?);
        }
    }
    if let Some(stage) = &row.stage {
        // The stage id sets the pipeline too.
        if let Some(Value::Stage(id)) = record.get(stage.canonical) {
            body.insert(
                stage.stage.into(),
                id_json(record, stage.canonical, stage.stage, &id.stage)?,
            );
        }
    }
    match row.name {
        NameRule::Joined(parts) => {
            if !body.contains_key("name") {
                let part = |k: &str| body.get(k).and_then(Json::as_str).map(str::to_owned);
                let name = parts
                    .iter()
                    .filter_map(|k| part(k))
                    .collect::<Vec<_>>()
                    .join(" ");
                body.insert("name".into(), json!(name));
            }
        }
        NameRule::Required => {
            if body.get("name").is_none_or(Json::is_null) {
                body.insert("name".into(), json!(""));
            }
        }
        NameRule::Given => {}
    }
    for list in row.channels {
        let main = record_text(record, list.main);
        let mut entries = Vec::new();
        if let Some(v) = main {
            entries.push(json!({"value": v, "primary": true, "label": "work"}));
        }
        if let Some(v) = list.mobile.and_then(|m| record_text(record, m)) {
            entries.push(json!({"value": v, "primary": main.is_none(), "label": MOBILE_LABEL}));
        }
        body.insert(list.vendor.into(), Json::Array(entries));
    }
    for &(vendor, id) in linked {
        body.insert(vendor.into(), json!(id));
    }
    if let Some(opt_out) = &row.opt_out {
        // Only an opt-out is ever written: a missing or false flag must not become consent,
        // and must not overwrite an opt-out Pipedrive already holds.
        if record.get(opt_out.canonical).and_then(Value::as_bool) == Some(true) {
            body.insert(opt_out.vendor.into(), json!(opt_out.opted_out));
        }
    }
    if !row.address.is_empty() {
        let mut address = Map::new();
        for &(canonical, part) in row.address {
            if let Some(v) = record_text(record, canonical) {
                address.insert(part.into(), json!(v));
            }
        }
        if address.is_empty() {
            body.insert("address".into(), Json::Null);
        } else {
            let formatted: Vec<&str> = row
                .address
                .iter()
                .filter_map(|(c, _)| record_text(record, c))
                .collect();
            address.insert("value".into(), json!(formatted.join(", ")));
            body.insert("address".into(), Json::Object(address));
        }
    }
    custom.insert(source_key.to_owned(), json!(record.source_id));
    body.insert("custom_fields".into(), Json::Object(custom));
    Ok(Json::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{ObjectType, Projection, record_digest};

    fn row(object: ObjectType) -> &'static PipedriveObject {
        crate::objects::binding(object).unwrap()
    }

    fn standard_map(object: ObjectType) -> FieldMap {
        row(object).standard_map()
    }

    fn stored_fields(object: ObjectType, map: &FieldMap) -> Vec<String> {
        row(object).stored_fields(map)
    }

    fn contact() -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, "hs-1");
        r.set(field::FIRST_NAME, Value::Text("Zoë".into()));
        r.set(field::LAST_NAME, Value::Text("van der Berg".into()));
        r.set(field::EMAIL, Value::Text("zoe@example.org".into()));
        r.set(field::MOBILE_PHONE, Value::Text("+49 151 1".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::COMPANY, Value::Reference("co-9".into()));
        r
    }

    #[test]
    fn a_contact_round_trips_through_the_person_shape() {
        let r = contact();
        let body = to_body(
            row(r.object),
            &r,
            "k",
            &[("org_id", Some(7))],
            &standard_map(r.object),
        )
        .unwrap();
        assert_eq!(body["name"], "Zoë van der Berg");
        assert_eq!(body["org_id"], 7);
        assert_eq!(body["marketing_status"], "unsubscribed");
        assert_eq!(body["phones"][0]["label"], "mobile");
        assert_eq!(body["custom_fields"]["k"], "hs-1");
        // What Pipedrive would answer for that body.
        let mut stored = body.clone();
        stored["id"] = json!(1);
        let map = standard_map(ObjectType::CONTACTS);
        let back = to_record(
            row(ObjectType::CONTACTS),
            &stored,
            "hs-1".into(),
            |_, _| "co-9".into(),
            &map,
        )
        .unwrap();
        let p = Projection::new(stored_fields(ObjectType::CONTACTS, &map));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn mapped_fields_go_under_custom_fields_and_picklists_as_option_ids() {
        const TIER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const SEATS: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let tier = FieldBinding {
            options: vec![PicklistOption {
                value: "17".into(),
                label: "Gold".into(),
            }],
            ..FieldBinding::new("tier", TIER, ferry_core::FieldType::Text)
        };
        let seats = FieldBinding::new("seats", SEATS, ferry_core::FieldType::Integer);
        let map = standard_map(ObjectType::COMPANIES).with(&[tier, seats]);
        let mut r = Record::new(ObjectType::COMPANIES, "co-1");
        r.set(field::NAME, Value::Text("Acme".into()));
        r.fields.insert("tier".into(), Value::Text(" gold ".into()));
        r.fields.insert("seats".into(), Value::Integer(12));
        let body = to_body(row(r.object), &r, "k", &[], &map).unwrap();
        assert_eq!(
            body["custom_fields"],
            json!({"k": "co-1", TIER: 17, SEATS: 12})
        );
        let back = to_record(
            row(ObjectType::COMPANIES),
            &body,
            "co-1".into(),
            |_, id| id.to_string(),
            &map,
        )
        .unwrap();
        assert_eq!(back.get("tier"), Some(&Value::Text("Gold".into())));
        assert_eq!(back.get("seats"), Some(&Value::Integer(12)));
        assert!(stored_fields(ObjectType::COMPANIES, &map).contains(&"tier".to_owned()));
        // Unset mapped fields are cleared on update; an unknown label refuses the record.
        r.fields.remove("seats");
        r.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_body(row(r.object), &r, "k", &[], &map).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        r.fields.remove("tier");
        let body = to_body(row(r.object), &r, "k", &[], &map).unwrap();
        assert_eq!(body["custom_fields"][SEATS], Json::Null);
        assert_eq!(body["custom_fields"][TIER], Json::Null);
    }

    fn deal() -> Record {
        let mut r = Record::new(ObjectType::DEALS, "d-1");
        r.set(field::NAME, Value::Text("Größere Lizenz".into()));
        r.set(field::AMOUNT, Value::Decimal(1200.5));
        r.set(field::CURRENCY, Value::Text("EUR".into()));
        r.set(field::CLOSE_DATE, Value::Date(19_800));
        r.set(field::STAGE, Value::stage("11", "105"));
        r.set(field::STATUS, Value::Text("won".into()));
        r.set(field::OWNER, Value::Text("1234501".into()));
        r.set(field::COMPANY, Value::Reference("co-1".into()));
        r.set(
            field::CONTACTS,
            Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "p-1".into(),
            }]),
        );
        r
    }

    #[test]
    fn a_deal_round_trips_with_its_stage_owner_date_and_links() {
        let r = deal();
        let map = standard_map(ObjectType::DEALS);
        let linked = [("org_id", Some(7)), ("person_id", Some(9))];
        let body = to_body(row(r.object), &r, "k", &linked, &map).unwrap();
        assert_eq!(body["title"], "Größere Lizenz");
        assert_eq!(body["value"], 1200.5);
        assert_eq!(body["currency"], "EUR");
        assert_eq!(body["expected_close_date"], "2024-03-18");
        assert_eq!(body["status"], "won");
        // Ids as numbers; the stage sets the pipeline, which is not sent.
        assert_eq!(body["stage_id"], 105);
        assert!(body.get("pipeline_id").is_none());
        assert_eq!(body["owner_id"], 1_234_501);
        assert_eq!(
            (&body["org_id"], &body["person_id"]),
            (&json!(7), &json!(9))
        );
        assert!(body.get("name").is_none(), "a deal has no `name`");
        assert_eq!(body["custom_fields"]["k"], "d-1");
        // What Pipedrive would answer for that body.
        let mut stored = body.clone();
        stored["id"] = json!(3);
        stored["pipeline_id"] = json!(11);
        let back = to_record(
            row(ObjectType::DEALS),
            &stored,
            "d-1".into(),
            |object, id| match (object.as_str(), id) {
                ("companies", 7) => "co-1".into(),
                ("contacts", 9) => "p-1".into(),
                other => panic!("asked for {other:?}"),
            },
            &map,
        )
        .unwrap();
        assert_eq!(back.get(field::OWNER), Some(&Value::Text("1234501".into())));
        assert_eq!(back.get(field::CLOSE_DATE), Some(&Value::Date(19_800)));
        assert_eq!(back.get(field::STAGE), r.get(field::STAGE));
        assert_eq!(back.get(field::CONTACTS), r.get(field::CONTACTS));
        let p = Projection::new(stored_fields(ObjectType::DEALS, &map));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn a_deal_without_owner_or_stage_leaves_them_to_pipedrive_and_bad_ids_refuse_it() {
        let map = standard_map(ObjectType::DEALS);
        let mut r = deal();
        r.fields.remove(field::OWNER);
        r.fields.remove(field::STAGE);
        let body = to_body(row(r.object), &r, "k", &[], &map).unwrap();
        assert!(body.get("owner_id").is_none() && body.get("stage_id").is_none());
        for (field, value) in [
            (field::OWNER, Value::Text("jane@example.org".into())),
            (field::STAGE, Value::stage("Sales", "Won")),
        ] {
            let mut bad = deal();
            bad.set(field, value);
            let refused = to_body(row(bad.object), &bad, "k", &[], &map).unwrap_err();
            assert_eq!(refused.code, UNWRITABLE_VALUE);
            assert!(refused.reason.contains(field), "{}", refused.reason);
            assert!(!refused.reason.contains("jane") && !refused.reason.contains("Won"));
        }
    }

    #[test]
    fn a_zero_deal_value_reads_as_0_and_a_stage_needs_its_pipeline() {
        let map = standard_map(ObjectType::DEALS);
        let read = |raw: Json| {
            to_record(
                row(ObjectType::DEALS),
                &raw,
                "1".into(),
                |_, id| id.to_string(),
                &map,
            )
        };
        let r = read(
            json!({"id": 1, "title": "T", "value": 0, "owner_id": 5, "person_id": 4,
            "pipeline_id": 2, "stage_id": 8, "add_time": "2024-01-02T03:04:05Z"}),
        )
        .unwrap();
        assert_eq!(r.get(field::AMOUNT), Some(&Value::Decimal(0.0)));
        assert_eq!(r.get(field::OWNER), Some(&Value::Text("5".into())));
        assert_eq!(
            r.get(field::CONTACTS),
            Some(&Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "4".into()
            }]))
        );
        assert_eq!(
            read(json!({"id": 1, "value": 12}))
                .unwrap()
                .get(field::AMOUNT),
            Some(&Value::Decimal(12.0))
        );
        let err = read(json!({"id": 1, "stage_id": 8})).unwrap_err();
        assert!(err.reason.contains("pipeline_id"), "{}", err.reason);
    }

    #[test]
    fn never_writes_consent() {
        let mut r = contact();
        r.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert!(
            to_body(row(r.object), &r, "k", &[], &standard_map(r.object))
                .unwrap()
                .get("marketing_status")
                .is_none()
        );
        r.fields.remove(field::EMAIL_OPT_OUT);
        let body = to_body(row(r.object), &r, "k", &[], &standard_map(r.object)).unwrap();
        assert!(body.get("marketing_status").is_none());
        assert_eq!(body["org_id"], Json::Null);
    }

    #[test]
    fn a_company_round_trips_through_the_organization_shape() {
        let mut r = Record::new(ObjectType::COMPANIES, "co-9");
        r.set(field::NAME, Value::Text("Café Größe GmbH".into()));
        r.set(field::STREET, Value::Text("12 Main Street".into()));
        r.set(field::COUNTRY, Value::Text("Germany".into()));
        r.set(field::DOMAIN, Value::Text("cafe.example.com".into()));
        let body = to_body(row(r.object), &r, "k", &[], &standard_map(r.object)).unwrap();
        assert_eq!(body["address"]["route"], "12 Main Street");
        assert!(body.get("website").is_none(), "no invented fields");
        let map = standard_map(ObjectType::COMPANIES);
        let back = to_record(
            row(ObjectType::COMPANIES),
            &body,
            "co-9".into(),
            |_, id| id.to_string(),
            &map,
        )
        .unwrap();
        let p = Projection::new(stored_fields(ObjectType::COMPANIES, &map));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn source_shape_reads_street_number_phones_and_status() {
        let raw = json!({"id": 5, "first_name": "A", "emails": [{"value": "x@example.org", "primary": false}, {"value": "p@example.org", "primary": true}],
            "phones": [{"value": "m", "label": "mobile", "primary": true}, {"value": "w", "label": "work"}],
            "marketing_status": "no_consent", "add_time": "2024-01-02T03:04:05Z"});
        let r = to_record(
            row(ObjectType::CONTACTS),
            &raw,
            "5".into(),
            |_, id| id.to_string(),
            &standard_map(ObjectType::CONTACTS),
        )
        .unwrap();
        assert_eq!(r.text(field::EMAIL), Some("p@example.org"));
        assert_eq!(
            (r.text(field::PHONE), r.text(field::MOBILE_PHONE)),
            (Some("w"), Some("m"))
        );
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(false)));
        assert!(matches!(
            r.get(field::CREATED_AT),
            Some(Value::Timestamp(_))
        ));
        let org = json!({"id": 1, "name": "O", "address": {"street_number": "12", "route": "Main St"}, "add_time": "soon"});
        let err = to_record(
            row(ObjectType::COMPANIES),
            &org,
            "1".into(),
            |_, id| id.to_string(),
            &standard_map(ObjectType::COMPANIES),
        )
        .unwrap_err();
        assert!(err.reason.contains("add_time") && !err.reason.contains("soon"));
    }
}
