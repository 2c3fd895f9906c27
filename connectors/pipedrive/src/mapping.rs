//! Pipedrive's record shapes (v2), and the tables between them and canonical records.
//!
//! Persons ↔ contacts: `first_name`/`last_name` (and `name`, their join), the primary email,
//! the phone labelled other than `mobile` (primary first) as `phone`, the one labelled
//! `mobile` as `mobile_phone`, `org_id` as the `company` reference, and `marketing_status ==
//! "unsubscribed"` as `email_opt_out`. Organizations ↔ companies: `name` and the address
//! subfields (`route`, `locality`, `admin_area_level_1`, `postal_code`, `country`).
//! Pipedrive has no standard field for the rest of the canonical fields; they are not written
//! and so not among [`stored_fields`].
//!
//! The plain fields (a canonical field in one top-level field or one custom field) are a
//! [`FieldMap`]: the standard table ([`standard_map`]) plus the operator's mapped fields,
//! whose vendor names are custom fields' 40-character keys. The compound ones (emails and
//! phones, the organization reference, the marketing status, the address) are code here.

use ferry_core::fields::{FieldBinding, FieldKind, FieldMap, PicklistOption, VendorField};
use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;

/// The refusal code of a record whose value does not fit its mapped Pipedrive field.
pub const UNWRITABLE_VALUE: &str = "UNWRITABLE_VALUE";

/// The plain standard fields: canonical field ↔ top-level Pipedrive field.
pub fn standard_table(object: ObjectType) -> &'static [(&'static str, &'static str)] {
    match object {
        ObjectType::Contacts => &[
            (field::FIRST_NAME, "first_name"),
            (field::LAST_NAME, "last_name"),
        ],
        ObjectType::Companies => &[(field::NAME, "name")],
    }
}

/// The standard field map of `object`.
pub fn standard_map(object: ObjectType) -> FieldMap {
    FieldMap::standard(object, standard_table(object))
}

/// The top-level fields a binding may name (the rest of the body is compound and stays
/// code); any other vendor name of a binding is a custom field's key.
pub const PLAIN_TOP_LEVEL: &[&str] = &["name", "first_name", "last_name"];

/// The compound standard fields and the canonical field each holds, for `describe`.
fn compound_canonical(object: ObjectType, code: &str) -> Option<&'static str> {
    Some(match (object, code) {
        (ObjectType::Contacts, "emails") => field::EMAIL,
        (ObjectType::Contacts, "phones") => field::PHONE,
        (ObjectType::Contacts, "org_id") => field::COMPANY,
        (ObjectType::Contacts, "marketing_status") => field::EMAIL_OPT_OUT,
        (_, "add_time") => field::CREATED_AT,
        (_, "update_time") => field::UPDATED_AT,
        _ => return None,
    })
}

/// The top-level fields a v2 `POST`/`PATCH` of `object` accepts (everything else a fields
/// list shows is read-only, apart from custom fields).
fn writable_top_level(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Contacts => &[
            "name",
            "first_name",
            "last_name",
            "owner_id",
            "org_id",
            "add_time",
            "emails",
            "phones",
            "visible_to",
            "label_ids",
            "marketing_status",
        ],
        ObjectType::Companies => &[
            "name",
            "owner_id",
            "add_time",
            "visible_to",
            "label_ids",
            "address",
        ],
    }
}

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
/// date-and-time one).
pub fn field_type_for(kind: FieldKind) -> Option<&'static str> {
    Some(match kind {
        FieldKind::Text | FieldKind::Email => "varchar",
        FieldKind::Phone => "phone",
        FieldKind::Integer | FieldKind::Decimal => "double",
        FieldKind::Date => "date",
        FieldKind::Picklist => "enum",
        FieldKind::MultiPicklist => "set",
        FieldKind::Bool | FieldKind::Timestamp | FieldKind::Reference | FieldKind::Other => {
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
/// `standard` names the canonical field each top-level field maps to.
pub fn vendor_field(object: ObjectType, raw: &Json, standard: &FieldMap) -> Option<VendorField> {
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
            .or_else(|| compound_canonical(object, &code).map(str::to_owned))
    };
    Some(VendorField {
        kind: kind_of(&code, &vendor_type),
        writable: custom || writable_top_level(object).contains(&code.as_str()),
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

/// Pipedrive's path segment for `object`.
pub fn object_path(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "persons",
        ObjectType::Companies => "organizations",
    }
}

/// Pipedrive's fields-API segment for `object`.
pub fn fields_path(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "personFields",
        ObjectType::Companies => "organizationFields",
    }
}

/// The canonical fields the sink writes and reads back exactly: the compound ones and those
/// of `map` (the standard table and the mapped fields).
pub fn stored_fields(object: ObjectType, map: &FieldMap) -> Vec<String> {
    let compound: &[&str] = match object {
        ObjectType::Contacts => &[
            field::EMAIL,
            field::PHONE,
            field::MOBILE_PHONE,
            field::EMAIL_OPT_OUT,
            field::COMPANY,
        ],
        ObjectType::Companies => &[
            field::STREET,
            field::CITY,
            field::STATE,
            field::POSTAL_CODE,
            field::COUNTRY,
        ],
    };
    let mut fields: Vec<String> = compound.iter().map(|f| (*f).to_owned()).collect();
    fields.extend(map.canonical_names());
    fields.sort();
    fields.dedup();
    fields
}

/// The custom-field keys among `map`'s vendor fields (what a read must ask for).
pub fn custom_keys(map: &FieldMap) -> Vec<&str> {
    map.vendor_names()
        .into_iter()
        .filter(|v| !PLAIN_TOP_LEVEL.contains(v))
        .collect()
}

/// Where a binding's value sits in a v2 record: a top-level field, or under `custom_fields`.
fn bound_value<'a>(raw: &'a Json, vendor: &str) -> Option<&'a Json> {
    if PLAIN_TOP_LEVEL.contains(&vendor) {
        raw.get(vendor)
    } else {
        raw.get("custom_fields")?.get(vendor)
    }
}

/// A raw JSON value as the text [`FieldBinding::read`] parses (`None` for null or a shape no
/// plain field has).
fn raw_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text<'a>(raw: &'a Json, key: &str) -> Option<&'a str> {
    raw.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A Pipedrive record's id, as text.
pub fn id_of(raw: &Json) -> Option<u64> {
    raw.get("id").and_then(Json::as_u64)
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
fn channels<'a>(raw: &'a Json, key: &str) -> Vec<(&'a str, &'a str, bool)> {
    raw.get(key)
        .and_then(Json::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    let value = c.get("value")?.as_str()?.trim();
                    let label = c.get("label").and_then(Json::as_str).unwrap_or("");
                    let primary = c.get("primary").and_then(Json::as_bool).unwrap_or(false);
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

/// Maps a Pipedrive person or organization to a canonical record with the given source id
/// and (for persons) company reference. A value that does not parse is a rejection naming
/// the field, never the value.
pub fn to_record(
    object: ObjectType,
    raw: &Json,
    source_id: String,
    company: Option<String>,
    map: &FieldMap,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(object, source_id);
    let mut problems = Vec::new();
    for binding in map.iter() {
        let Some(text) = bound_value(raw, &binding.vendor).and_then(raw_text) else {
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
            if let Some(value) = value {
                if let Err(e) = record.set_parsed(canonical, value) {
                    problems.push(format!(
                        "`{canonical}` (Pipedrive `{vendor}`, expected {})",
                        e.expected
                    ));
                }
            }
        };
    match object {
        ObjectType::Contacts => {
            let emails = channels(raw, "emails");
            set(&mut record, field::EMAIL, "emails", primary(&emails));
            let phones = channels(raw, "phones");
            let (mobiles, others): (Vec<_>, Vec<_>) =
                phones.into_iter().partition(|c| c.1 == MOBILE_LABEL);
            set(&mut record, field::PHONE, "phones", primary(&others));
            set(
                &mut record,
                field::MOBILE_PHONE,
                "phones",
                mobiles.first().map(|c| c.0),
            );
            // Present only with contact sync; written nowhere, read when there.
            set(
                &mut record,
                field::JOB_TITLE,
                "job_title",
                text(raw, "job_title"),
            );
            if let Some(status) = text(raw, "marketing_status") {
                record.set(field::EMAIL_OPT_OUT, Value::Bool(status == UNSUBSCRIBED));
            }
            if let Some(company) = company {
                record.set(field::COMPANY, Value::Reference(company));
            }
        }
        ObjectType::Companies => {
            if let Some(address) = raw.get("address").filter(|a| a.is_object()) {
                let street = match (text(address, "street_number"), text(address, "route")) {
                    (Some(n), Some(r)) => Some(format!("{n} {r}")),
                    (None, r) => r.map(str::to_owned),
                    (n, None) => n.map(str::to_owned),
                };
                set(
                    &mut record,
                    field::STREET,
                    "address.route",
                    street.as_deref(),
                );
                for &(canonical, part) in &ADDRESS_PARTS[1..] {
                    set(&mut record, canonical, part, text(address, part));
                }
            }
        }
    }
    set(
        &mut record,
        field::CREATED_AT,
        "add_time",
        text(raw, "add_time"),
    );
    set(
        &mut record,
        field::UPDATED_AT,
        "update_time",
        text(raw, "update_time"),
    );
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

/// The v2 body that writes `record` (a PATCH body clears what the record lacks). `source_key`
/// is the source-id custom field's key; `org_id` the person's resolved organization; `map`
/// the plain fields. A value a mapped field cannot take refuses the record.
pub fn to_body(
    record: &Record,
    source_key: &str,
    org_id: Option<u64>,
    map: &FieldMap,
) -> Result<Json, RecordRejection> {
    let mut body = Map::new();
    let mut custom = Map::new();
    for binding in map.iter() {
        let value = bound_json(binding, record)?;
        if PLAIN_TOP_LEVEL.contains(&binding.vendor.as_ref()) {
            body.insert(binding.vendor.to_string(), value);
        } else {
            custom.insert(binding.vendor.to_string(), value);
        }
    }
    match record.object {
        ObjectType::Contacts => {
            if !body.contains_key("name") {
                // A person's name is its first and last names joined.
                let part = |k: &str| body.get(k).and_then(Json::as_str).map(str::to_owned);
                let name = [part("first_name"), part("last_name")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                body.insert("name".into(), json!(name));
            }
            let emails: Vec<Json> = record_text(record, field::EMAIL)
                .map(|e| json!({"value": e, "primary": true, "label": "work"}))
                .into_iter()
                .collect();
            body.insert("emails".into(), Json::Array(emails));
            let phone = record_text(record, field::PHONE);
            let mobile = record_text(record, field::MOBILE_PHONE);
            let mut phones = Vec::new();
            if let Some(p) = phone {
                phones.push(json!({"value": p, "primary": true, "label": "work"}));
            }
            if let Some(m) = mobile {
                phones.push(json!({"value": m, "primary": phone.is_none(), "label": MOBILE_LABEL}));
            }
            body.insert("phones".into(), Json::Array(phones));
            body.insert("org_id".into(), json!(org_id));
            // Only an opt-out is ever written: a missing or false flag must not become consent,
            // and must not overwrite an opt-out Pipedrive already holds.
            if record.get(field::EMAIL_OPT_OUT).and_then(Value::as_bool) == Some(true) {
                body.insert("marketing_status".into(), json!(UNSUBSCRIBED));
            }
        }
        ObjectType::Companies => {
            if body.get("name").is_none_or(Json::is_null) {
                body.insert("name".into(), json!(""));
            }
            let mut address = Map::new();
            for &(canonical, part) in ADDRESS_PARTS {
                if let Some(v) = record_text(record, canonical) {
                    address.insert(part.into(), json!(v));
                }
            }
            if address.is_empty() {
                body.insert("address".into(), Json::Null);
            } else {
                let formatted: Vec<&str> = ADDRESS_PARTS
                    .iter()
                    .filter_map(|(c, _)| record_text(record, c))
                    .collect();
                address.insert("value".into(), json!(formatted.join(", ")));
                body.insert("address".into(), Json::Object(address));
            }
        }
    }
    custom.insert(source_key.to_owned(), json!(record.source_id));
    body.insert("custom_fields".into(), Json::Object(custom));
    Ok(Json::Object(body))
}

/// The top-level body keys that can appear in a Pipedrive validation error, with the
/// canonical fields behind them, for rejection reasons (names only, never values).
pub fn body_fields(object: ObjectType) -> &'static [(&'static str, &'static str)] {
    match object {
        ObjectType::Contacts => &[
            ("name", "first_name, last_name"),
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("emails", "email"),
            ("phones", "phone, mobile_phone"),
            ("org_id", "company"),
            ("marketing_status", "email_opt_out"),
            ("custom_fields", "source id"),
        ],
        ObjectType::Companies => &[
            ("name", "name"),
            ("address", "street, city, state, postal_code, country"),
            ("custom_fields", "source id"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Projection, record_digest};

    fn contact() -> Record {
        let mut r = Record::new(ObjectType::Contacts, "hs-1");
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
        let body = to_body(&r, "k", Some(7), &standard_map(r.object)).unwrap();
        assert_eq!(body["name"], "Zoë van der Berg");
        assert_eq!(body["org_id"], 7);
        assert_eq!(body["marketing_status"], "unsubscribed");
        assert_eq!(body["phones"][0]["label"], "mobile");
        assert_eq!(body["custom_fields"]["k"], "hs-1");
        // What Pipedrive would answer for that body.
        let mut stored = body.clone();
        stored["id"] = json!(1);
        let map = standard_map(ObjectType::Contacts);
        let back = to_record(
            ObjectType::Contacts,
            &stored,
            "hs-1".into(),
            Some("co-9".into()),
            &map,
        )
        .unwrap();
        let p = Projection::new(stored_fields(ObjectType::Contacts, &map));
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
        let map = standard_map(ObjectType::Companies).with(&[tier, seats]);
        let mut r = Record::new(ObjectType::Companies, "co-1");
        r.set(field::NAME, Value::Text("Acme".into()));
        r.fields.insert("tier".into(), Value::Text(" gold ".into()));
        r.fields.insert("seats".into(), Value::Integer(12));
        let body = to_body(&r, "k", None, &map).unwrap();
        assert_eq!(
            body["custom_fields"],
            json!({"k": "co-1", TIER: 17, SEATS: 12})
        );
        let back = to_record(ObjectType::Companies, &body, "co-1".into(), None, &map).unwrap();
        assert_eq!(back.get("tier"), Some(&Value::Text("Gold".into())));
        assert_eq!(back.get("seats"), Some(&Value::Integer(12)));
        assert!(stored_fields(ObjectType::Companies, &map).contains(&"tier".to_owned()));
        // Unset mapped fields are cleared on update; an unknown label refuses the record.
        r.fields.remove("seats");
        r.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_body(&r, "k", None, &map).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        r.fields.remove("tier");
        let body = to_body(&r, "k", None, &map).unwrap();
        assert_eq!(body["custom_fields"][SEATS], Json::Null);
        assert_eq!(body["custom_fields"][TIER], Json::Null);
    }

    #[test]
    fn never_writes_consent() {
        let mut r = contact();
        r.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert!(
            to_body(&r, "k", None, &standard_map(r.object))
                .unwrap()
                .get("marketing_status")
                .is_none()
        );
        r.fields.remove(field::EMAIL_OPT_OUT);
        let body = to_body(&r, "k", None, &standard_map(r.object)).unwrap();
        assert!(body.get("marketing_status").is_none());
        assert_eq!(body["org_id"], Json::Null);
    }

    #[test]
    fn a_company_round_trips_through_the_organization_shape() {
        let mut r = Record::new(ObjectType::Companies, "co-9");
        r.set(field::NAME, Value::Text("Café Größe GmbH".into()));
        r.set(field::STREET, Value::Text("12 Main Street".into()));
        r.set(field::COUNTRY, Value::Text("Germany".into()));
        r.set(field::DOMAIN, Value::Text("cafe.example.com".into()));
        let body = to_body(&r, "k", None, &standard_map(r.object)).unwrap();
        assert_eq!(body["address"]["route"], "12 Main Street");
        assert!(body.get("website").is_none(), "no invented fields");
        let map = standard_map(ObjectType::Companies);
        let back = to_record(ObjectType::Companies, &body, "co-9".into(), None, &map).unwrap();
        let p = Projection::new(stored_fields(ObjectType::Companies, &map));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn source_shape_reads_street_number_phones_and_status() {
        let raw = json!({"id": 5, "first_name": "A", "emails": [{"value": "x@example.org", "primary": false}, {"value": "p@example.org", "primary": true}],
            "phones": [{"value": "m", "label": "mobile", "primary": true}, {"value": "w", "label": "work"}],
            "marketing_status": "no_consent", "add_time": "2024-01-02T03:04:05Z"});
        let r = to_record(
            ObjectType::Contacts,
            &raw,
            "5".into(),
            None,
            &standard_map(ObjectType::Contacts),
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
            ObjectType::Companies,
            &org,
            "1".into(),
            None,
            &standard_map(ObjectType::Companies),
        )
        .unwrap_err();
        assert!(err.reason.contains("add_time") && !err.reason.contains("soon"));
    }
}
