//! Canonical fields ↔ Zoho fields: one table per module, used for reading, writing and reading
//! back, so every direction agrees by construction.

use ferry_core::model::FieldType;
use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde_json::{Map, Value as Json};

/// One mapped field.
#[derive(Clone, Copy, Debug)]
pub struct FieldMap {
    /// The canonical name.
    pub canonical: &'static str,
    /// The Zoho field's API name.
    pub zoho: &'static str,
}

const fn map(canonical: &'static str, zoho: &'static str) -> FieldMap {
    FieldMap { canonical, zoho }
}

/// Companies ↔ Accounts.
pub const ACCOUNT_FIELDS: &[FieldMap] = &[
    map(field::NAME, "Account_Name"),
    map(field::DOMAIN, "Website"),
    map(field::PHONE, "Phone"),
    map(field::INDUSTRY, "Industry"),
    map(field::EMPLOYEE_COUNT, "Employees"),
    map(field::ANNUAL_REVENUE, "Annual_Revenue"),
    map(field::STREET, "Billing_Street"),
    map(field::CITY, "Billing_City"),
    map(field::STATE, "Billing_State"),
    map(field::POSTAL_CODE, "Billing_Code"),
    map(field::COUNTRY, "Billing_Country"),
];

/// Contacts ↔ Contacts. The `company` reference is the `Account_Name` lookup ([`COMPANY_LOOKUP`]).
pub const CONTACT_FIELDS: &[FieldMap] = &[
    map(field::EMAIL, "Email"),
    map(field::FIRST_NAME, "First_Name"),
    map(field::LAST_NAME, "Last_Name"),
    map(field::PHONE, "Phone"),
    map(field::MOBILE_PHONE, "Mobile"),
    map(field::JOB_TITLE, "Title"),
    map(field::STREET, "Mailing_Street"),
    map(field::CITY, "Mailing_City"),
    map(field::STATE, "Mailing_State"),
    map(field::POSTAL_CODE, "Mailing_Zip"),
    map(field::COUNTRY, "Mailing_Country"),
    map(field::EMAIL_OPT_OUT, "Email_Opt_Out"),
];

/// System timestamps: read from a source, never written (Zoho sets them).
pub const SYSTEM_FIELDS: &[FieldMap] = &[
    map(field::CREATED_AT, "Created_Time"),
    map(field::UPDATED_AT, "Modified_Time"),
];

/// A contact's company: the `Account_Name` lookup (`{"id": …}`) on Contacts.
pub const COMPANY_LOOKUP: FieldMap = map(field::COMPANY, "Account_Name");

/// The module an object type lives in.
pub fn module(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Companies => "Accounts",
        ObjectType::Contacts => "Contacts",
    }
}

/// The written field table of `object`.
pub fn fields(object: ObjectType) -> &'static [FieldMap] {
    match object {
        ObjectType::Companies => ACCOUNT_FIELDS,
        ObjectType::Contacts => CONTACT_FIELDS,
    }
}

/// The Zoho fields a source reads for `object` (the `fields` parameter).
pub fn read_fields(object: ObjectType) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = fields(object).iter().map(|f| f.zoho).collect();
    if object == ObjectType::Contacts {
        names.push(COMPANY_LOOKUP.zoho);
    }
    names.extend(SYSTEM_FIELDS.iter().map(|f| f.zoho));
    names
}

/// The canonical fields the sink writes and reads back.
pub fn stored_fields(object: ObjectType) -> Vec<String> {
    let mut names: Vec<String> = fields(object)
        .iter()
        .map(|f| f.canonical.to_owned())
        .collect();
    if object == ObjectType::Contacts {
        names.push(COMPANY_LOOKUP.canonical.to_owned());
    }
    names
}

fn field_type(object: ObjectType, canonical: &str) -> FieldType {
    object
        .field(canonical)
        .map(|f| f.ty)
        .unwrap_or(FieldType::Text)
}

/// A JSON scalar as the text `Value::parse` reads.
fn json_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The canonical record of a Zoho record read by a source: its Zoho id is the source id, and a
/// contact's company is its account's Zoho id. A value that does not fit its canonical type
/// makes the record unreadable; the rejection names the field, never the value.
pub fn from_zoho(object: ObjectType, z: &Map<String, Json>) -> Result<Record, RecordRejection> {
    let id = z.get("id").and_then(json_text).unwrap_or_default();
    let mut record = Record::new(object, id.clone());
    let mut bad: Vec<String> = Vec::new();
    for f in fields(object).iter().chain(SYSTEM_FIELDS) {
        let Some(raw) = z.get(f.zoho).and_then(json_text) else {
            continue;
        };
        if let Err(e) = record.set_parsed(f.canonical, &raw) {
            bad.push(format!(
                "{} ({}) is not {}",
                f.canonical, f.zoho, e.expected
            ));
        }
    }
    if object == ObjectType::Contacts {
        if let Some(account) = z
            .get(COMPANY_LOOKUP.zoho)
            .and_then(|a| a.get("id"))
            .and_then(json_text)
        {
            record.set(COMPANY_LOOKUP.canonical, Value::Reference(account));
        }
    }
    if id.is_empty() {
        bad.push("the record has no id".into());
    }
    if bad.is_empty() {
        Ok(record)
    } else {
        Err(RecordRejection {
            source_id: id,
            code: "UNREADABLE_VALUE".into(),
            reason: bad.join("; "),
        })
    }
}

/// A canonical field whose value could not be written (names the field, never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwritable {
    /// The canonical field.
    pub canonical: &'static str,
    /// What it should have held.
    pub expected: &'static str,
}

/// The JSON Zoho expects for `value` in a field of canonical type `ty`.
fn to_json(ty: FieldType, value: &Value) -> Result<Json, &'static str> {
    value.to_json(ty)
}

/// The Zoho record for `record`: every mapped field (absent ones as `null`, which clears them
/// on update; an absent opt-out as `false`, since the checkbox cannot be empty), the source id,
/// and for contacts the account lookup (`account_id`: the company's Zoho id, resolved by the
/// sink).
pub fn to_zoho(
    record: &Record,
    source_id_field: &str,
    account_id: Option<&str>,
) -> Result<Map<String, Json>, Unwritable> {
    let object = record.object;
    let mut out = Map::new();
    for f in fields(object) {
        let value = match record.get(f.canonical) {
            None => Json::Null,
            Some(v) => {
                to_json(field_type(object, f.canonical), v).map_err(|expected| Unwritable {
                    canonical: f.canonical,
                    expected,
                })?
            }
        };
        let value = if f.canonical == field::EMAIL_OPT_OUT {
            // Only a true opt-out is a fact to carry; anything else is "not opted out".
            Json::Bool(value == Json::Bool(true))
        } else {
            value
        };
        out.insert(f.zoho.into(), value);
    }
    if object == ObjectType::Contacts {
        let lookup = match account_id {
            Some(id) => serde_json::json!({ "id": id }),
            None => Json::Null,
        };
        out.insert(COMPANY_LOOKUP.zoho.into(), lookup);
    }
    out.insert(
        source_id_field.to_owned(),
        Json::String(record.source_id.clone()),
    );
    Ok(out)
}

/// The canonical record of a record read back by source id (COQL), or `None` without one. The
/// company is the account's source id (`Account_Name.<source id field>`). A value that does
/// not fit its type is left out (logged by field name), so the checksum flags the record.
pub fn from_read_back(
    object: ObjectType,
    z: &Map<String, Json>,
    source_id_field: &str,
) -> Option<Record> {
    let source_id = z.get(source_id_field).and_then(json_text)?;
    let mut record = Record::new(object, source_id);
    for f in fields(object) {
        let Some(raw) = z.get(f.zoho).and_then(json_text) else {
            continue;
        };
        if let Err(e) = record.set_parsed(f.canonical, &raw) {
            tracing::debug!(
                vendor = crate::VENDOR,
                field = e.field,
                expected = e.expected,
                "unreadable value on read-back"
            );
        }
    }
    if object == ObjectType::Contacts {
        let key = format!("{}.{source_id_field}", COMPANY_LOOKUP.zoho);
        if let Some(company) = z.get(&key).and_then(json_text).filter(|s| !s.is_empty()) {
            record.set(COMPANY_LOOKUP.canonical, Value::Reference(company));
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_field_but_system_timestamps_is_stored() {
        for object in ObjectType::ALL {
            let stored = stored_fields(object);
            for spec in object.fields() {
                let system = spec.name == field::CREATED_AT || spec.name == field::UPDATED_AT;
                assert_eq!(
                    stored.contains(&spec.name.to_owned()),
                    !system,
                    "{object} {}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn round_trip_through_zoho_shape() {
        let mut r = Record::new(ObjectType::Contacts, "c-1");
        r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::COMPANY, Value::Reference("co-9".into()));
        let z = to_zoho(&r, "Src", Some("4876")).unwrap();
        assert_eq!(z["Account_Name"], serde_json::json!({"id": "4876"}));
        assert_eq!(z["Email_Opt_Out"], Json::Bool(true));
        assert_eq!(z["Email"], Json::Null);
        let mut back = z.clone();
        back.insert("Account_Name.Src".into(), Json::String("co-9".into()));
        assert_eq!(from_read_back(ObjectType::Contacts, &back, "Src"), Some(r));

        let mut c = Record::new(ObjectType::Companies, "co-9");
        c.set(field::EMPLOYEE_COUNT, Value::Text("250".into()));
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1000.5));
        let z = to_zoho(&c, "Src", None).unwrap();
        assert_eq!(z["Employees"], Json::from(250));
        assert_eq!(z["Annual_Revenue"], serde_json::json!(1000.5));
        assert_eq!(z["Src"], Json::String("co-9".into()));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        assert_eq!(
            to_zoho(&c, "Src", None).unwrap_err().canonical,
            field::EMPLOYEE_COUNT
        );
    }

    #[test]
    fn an_absent_opt_out_is_written_as_not_opted_out() {
        let r = Record::new(ObjectType::Contacts, "c-2");
        assert_eq!(
            to_zoho(&r, "Src", None).unwrap()["Email_Opt_Out"],
            Json::Bool(false)
        );
    }

    #[test]
    fn source_records_name_unreadable_fields_not_values() {
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "77", "Account_Name": "Acme", "Employees": "lots-of-people",
            "Created_Time": "2024-01-02T03:04:05+05:30"
        }))
        .unwrap();
        let e = from_zoho(ObjectType::Companies, &z).unwrap_err();
        assert!(e.reason.contains("employee_count") && !e.reason.contains("lots-of-people"));
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "78", "Last_Name": "A", "Account_Name": {"name": "Acme", "id": "77"},
            "Email_Opt_Out": true, "Modified_Time": "2024-01-02T03:04:05+05:30"
        }))
        .unwrap();
        let r = from_zoho(ObjectType::Contacts, &z).unwrap();
        assert_eq!(r.get(field::COMPANY), Some(&Value::Reference("77".into())));
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert!(matches!(
            r.get(field::UPDATED_AT),
            Some(Value::Timestamp(_))
        ));
    }
}
