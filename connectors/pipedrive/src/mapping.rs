//! Pipedrive's record shapes (v2), and the tables between them and canonical records.
//!
//! Persons ↔ contacts: `first_name`/`last_name` (and `name`, their join), the primary email,
//! the phone labelled other than `mobile` (primary first) as `phone`, the one labelled
//! `mobile` as `mobile_phone`, `org_id` as the `company` reference, and `marketing_status ==
//! "unsubscribed"` as `email_opt_out`. Organizations ↔ companies: `name` and the address
//! subfields (`route`, `locality`, `admin_area_level_1`, `postal_code`, `country`).
//! Pipedrive has no standard field for the rest of the canonical fields; they are not written
//! and so not among [`stored_fields`].

use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde_json::{Map, Value as Json, json};

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

/// The canonical fields the sink writes and reads back exactly.
pub fn stored_fields(object: ObjectType) -> Vec<String> {
    let fields: &[&str] = match object {
        ObjectType::Contacts => &[
            field::EMAIL,
            field::FIRST_NAME,
            field::LAST_NAME,
            field::PHONE,
            field::MOBILE_PHONE,
            field::EMAIL_OPT_OUT,
            field::COMPANY,
        ],
        ObjectType::Companies => &[
            field::NAME,
            field::STREET,
            field::CITY,
            field::STATE,
            field::POSTAL_CODE,
            field::COUNTRY,
        ],
    };
    fields.iter().map(|f| (*f).to_owned()).collect()
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
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(object, source_id);
    let mut problems = Vec::new();
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
            set(
                &mut record,
                field::FIRST_NAME,
                "first_name",
                text(raw, "first_name"),
            );
            set(
                &mut record,
                field::LAST_NAME,
                "last_name",
                text(raw, "last_name"),
            );
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
            set(&mut record, field::NAME, "name", text(raw, "name"));
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

/// The v2 body that writes `record` (a PATCH body clears what the record lacks). `source_key`
/// is the source-id custom field's key; `org_id` the person's resolved organization.
pub fn to_body(record: &Record, source_key: &str, org_id: Option<u64>) -> Json {
    let mut body = Map::new();
    match record.object {
        ObjectType::Contacts => {
            let first = record_text(record, field::FIRST_NAME);
            let last = record_text(record, field::LAST_NAME);
            let name = [first, last]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            body.insert("name".into(), json!(name));
            body.insert("first_name".into(), json!(first));
            body.insert("last_name".into(), json!(last));
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
            body.insert(
                "name".into(),
                json!(record_text(record, field::NAME).unwrap_or("")),
            );
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
    body.insert(
        "custom_fields".into(),
        json!({ source_key: record.source_id }),
    );
    Json::Object(body)
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
        let body = to_body(&r, "k", Some(7));
        assert_eq!(body["name"], "Zoë van der Berg");
        assert_eq!(body["org_id"], 7);
        assert_eq!(body["marketing_status"], "unsubscribed");
        assert_eq!(body["phones"][0]["label"], "mobile");
        assert_eq!(body["custom_fields"]["k"], "hs-1");
        // What Pipedrive would answer for that body.
        let mut stored = body.clone();
        stored["id"] = json!(1);
        let back = to_record(
            ObjectType::Contacts,
            &stored,
            "hs-1".into(),
            Some("co-9".into()),
        )
        .unwrap();
        let p = Projection::new(stored_fields(ObjectType::Contacts));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn never_writes_consent() {
        let mut r = contact();
        r.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert!(to_body(&r, "k", None).get("marketing_status").is_none());
        r.fields.remove(field::EMAIL_OPT_OUT);
        let body = to_body(&r, "k", None);
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
        let body = to_body(&r, "k", None);
        assert_eq!(body["address"]["route"], "12 Main Street");
        assert!(body.get("website").is_none(), "no invented fields");
        let back = to_record(ObjectType::Companies, &body, "co-9".into(), None).unwrap();
        let p = Projection::new(stored_fields(ObjectType::Companies));
        assert_eq!(record_digest(&r, &p), record_digest(&back, &p));
    }

    #[test]
    fn source_shape_reads_street_number_phones_and_status() {
        let raw = json!({"id": 5, "first_name": "A", "emails": [{"value": "x@example.org", "primary": false}, {"value": "p@example.org", "primary": true}],
            "phones": [{"value": "m", "label": "mobile", "primary": true}, {"value": "w", "label": "work"}],
            "marketing_status": "no_consent", "add_time": "2024-01-02T03:04:05Z"});
        let r = to_record(ObjectType::Contacts, &raw, "5".into(), None).unwrap();
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
        let err = to_record(ObjectType::Companies, &org, "1".into(), None).unwrap_err();
        assert!(err.reason.contains("add_time") && !err.reason.contains("soon"));
    }
}
