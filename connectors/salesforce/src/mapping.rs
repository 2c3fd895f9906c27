//! Canonical fields ↔ Salesforce fields: one table per object, used for writing, reading back
//! and reading as a source, so every direction agrees by construction.

use std::borrow::Cow;

use ferry_core::model::FieldType;
use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde_json::{Map, Value as Json};

/// One mapped field.
#[derive(Clone, Copy, Debug)]
pub struct FieldMap {
    /// The canonical name.
    pub canonical: &'static str,
    /// The Salesforce field's API name.
    pub salesforce: &'static str,
}

const fn map(canonical: &'static str, salesforce: &'static str) -> FieldMap {
    FieldMap {
        canonical,
        salesforce,
    }
}

/// Companies → Account.
pub const ACCOUNT_FIELDS: &[FieldMap] = &[
    map(field::NAME, "Name"),
    map(field::DOMAIN, "Website"),
    map(field::PHONE, "Phone"),
    map(field::INDUSTRY, "Industry"),
    map(field::EMPLOYEE_COUNT, "NumberOfEmployees"),
    map(field::ANNUAL_REVENUE, "AnnualRevenue"),
    map(field::STREET, "BillingStreet"),
    map(field::CITY, "BillingCity"),
    map(field::STATE, "BillingState"),
    map(field::POSTAL_CODE, "BillingPostalCode"),
    map(field::COUNTRY, "BillingCountry"),
];

/// Contacts → Contact. The `company` reference is mapped separately (see [`COMPANY_LOOKUP`]).
pub const CONTACT_FIELDS: &[FieldMap] = &[
    map(field::EMAIL, "Email"),
    map(field::FIRST_NAME, "FirstName"),
    map(field::LAST_NAME, "LastName"),
    map(field::PHONE, "Phone"),
    map(field::MOBILE_PHONE, "MobilePhone"),
    map(field::JOB_TITLE, "Title"),
    map(field::STREET, "MailingStreet"),
    map(field::CITY, "MailingCity"),
    map(field::STATE, "MailingState"),
    map(field::POSTAL_CODE, "MailingPostalCode"),
    map(field::COUNTRY, "MailingCountry"),
    map(field::EMAIL_OPT_OUT, "HasOptedOutOfEmail"),
];

/// A contact's company: written as the `Account` relationship keyed by the Account's external
/// id (Salesforce resolves it), cleared through `AccountId`, read back as `Account.<ext id>`.
pub const COMPANY_LOOKUP: (&str, &str, &str) = (field::COMPANY, "Account", "AccountId");

/// System timestamps, read (never written: Salesforce sets them) when Salesforce is the source.
pub const SYSTEM_TIMESTAMPS: &[FieldMap] = &[
    map(field::CREATED_AT, "CreatedDate"),
    map(field::UPDATED_AT, "LastModifiedDate"),
];

/// The record id field, which is the source id when Salesforce is the source.
pub const ID_FIELD: &str = "Id";

/// The sObject an object type is stored as.
pub fn sobject(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Companies => "Account",
        ObjectType::Contacts => "Contact",
    }
}

/// The field table of `object`.
pub fn fields(object: ObjectType) -> &'static [FieldMap] {
    match object {
        ObjectType::Companies => ACCOUNT_FIELDS,
        ObjectType::Contacts => CONTACT_FIELDS,
    }
}

/// Every Salesforce field the mapping writes on `object` (relationships by their id field).
pub fn written_fields(object: ObjectType) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = fields(object).iter().map(|f| f.salesforce).collect();
    if object == ObjectType::Contacts {
        names.push(COMPANY_LOOKUP.2);
    }
    names
}

/// The canonical fields the mapping writes and reads back.
pub fn stored_fields(object: ObjectType) -> Vec<String> {
    let mut names: Vec<String> = fields(object)
        .iter()
        .map(|f| f.canonical.to_owned())
        .collect();
    if object == ObjectType::Contacts {
        names.push(COMPANY_LOOKUP.0.to_owned());
    }
    names
}

fn field_type(object: ObjectType, canonical: &str) -> FieldType {
    object
        .field(canonical)
        .map(|f| f.ty)
        .unwrap_or(FieldType::Text)
}

/// A canonical field whose value could not be written (names the field, never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwritable {
    /// The canonical field.
    pub canonical: &'static str,
    /// What it should have held.
    pub expected: &'static str,
}

/// The JSON Salesforce expects for `value` in a field of canonical type `ty`.
fn to_json(ty: FieldType, value: &Value) -> Result<Json, &'static str> {
    value.to_json(ty)
}

/// The Salesforce record for `record`: every mapped field (absent ones as `null`, which clears
/// them on update), the external id, and for contacts the company lookup.
pub fn to_salesforce(
    record: &Record,
    external_id_field: &str,
) -> Result<Map<String, Json>, Unwritable> {
    let object = record.object;
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        serde_json::json!({"type": sobject(object)}),
    );
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
        out.insert(f.salesforce.into(), value);
    }
    if object == ObjectType::Contacts {
        let (canonical, relationship, id_field) = COMPANY_LOOKUP;
        match record.text(canonical).filter(|s| !s.is_empty()) {
            Some(company) => {
                let mut key = Map::new();
                key.insert(
                    external_id_field.to_owned(),
                    Json::String(company.to_owned()),
                );
                out.insert(relationship.into(), Json::Object(key));
            }
            None => {
                out.insert(id_field.into(), Json::Null);
            }
        }
    }
    out.insert(
        external_id_field.to_owned(),
        Json::String(record.source_id.clone()),
    );
    Ok(out)
}

fn json_text(value: &Json) -> Option<Cow<'_, str>> {
    // Borrowed: every field of every record read passes through here on its way to parsing.
    match value {
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// The canonical record of a queried Salesforce record, or `None` if it has no external id.
/// A value that does not fit its canonical type is left out (and logged by field name), so
/// the checksum comparison flags the record rather than the whole read failing.
pub fn from_salesforce(
    object: ObjectType,
    sf: &Map<String, Json>,
    external_id_field: &str,
) -> Option<Record> {
    let source_id = sf.get(external_id_field).and_then(json_text)?.into_owned();
    let mut record = Record::new(object, source_id);
    for f in fields(object) {
        let Some(raw) = sf.get(f.salesforce).and_then(json_text) else {
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
        let (canonical, relationship, _) = COMPANY_LOOKUP;
        if let Some(company) = sf
            .get(relationship)
            .and_then(|a| a.get(external_id_field))
            .and_then(json_text)
        {
            record.set(canonical, Value::Reference(company.into_owned()));
        }
    }
    Some(record)
}

/// The fields a source query selects on `object`: every mapped field, the record id, a
/// contact's `AccountId`, and the system timestamps.
pub fn source_fields(object: ObjectType) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = fields(object).iter().map(|f| f.salesforce).collect();
    names.push(ID_FIELD);
    if object == ObjectType::Contacts {
        names.push(COMPANY_LOOKUP.2);
    }
    names.extend(SYSTEM_TIMESTAMPS.iter().map(|f| f.salesforce));
    names
}

/// The text of a scalar JSON value; `Ok(None)` for `null`, `Err` for an object or array.
fn scalar_text(value: &Json) -> Result<Option<Cow<'_, str>>, ()> {
    match value {
        Json::Null => Ok(None),
        Json::Object(_) | Json::Array(_) => Err(()),
        other => Ok(json_text(other)),
    }
}

/// The canonical record of a Salesforce record read as a source, whose `Id` is `id`: mapped
/// fields, the system timestamps and, for a contact, its Account as the `company` reference.
/// A value that does not fit its canonical type makes the whole record unreadable, with a
/// reason naming the fields (never the values), so it is reported rather than half-migrated.
pub fn from_source(
    object: ObjectType,
    id: &str,
    sf: &Map<String, Json>,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(object, id);
    let mut problems = Vec::new();
    for f in fields(object).iter().chain(SYSTEM_TIMESTAMPS) {
        let Some(value) = sf.get(f.salesforce) else {
            continue;
        };
        let expected = match scalar_text(value) {
            Ok(None) => continue,
            Ok(Some(raw)) => match record.set_parsed(f.canonical, &raw) {
                Ok(()) => continue,
                Err(e) => e.expected,
            },
            Err(()) => "a single value",
        };
        problems.push(format!(
            "`{}` (Salesforce field `{}`, expected {expected})",
            f.canonical, f.salesforce
        ));
    }
    if object == ObjectType::Contacts {
        let (canonical, _, id_field) = COMPANY_LOOKUP;
        match sf.get(id_field).map(scalar_text) {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(account))) => {
                if !account.is_empty() {
                    record.set(canonical, Value::Reference(account.into_owned()));
                }
            }
            Some(Err(())) => problems.push(format!(
                "`{canonical}` (Salesforce field `{id_field}`, expected an Account id)"
            )),
        }
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(RecordRejection {
            source_id: id.to_owned(),
            code: "UNREADABLE_VALUE".into(),
            reason: format!("value of {} could not be read", problems.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_field_but_system_timestamps_is_mapped() {
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
    fn round_trip_through_salesforce_shape() {
        let mut r = Record::new(ObjectType::Contacts, "c-1");
        r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::COMPANY, Value::Reference("co-9".into()));
        let sf = to_salesforce(&r, "Ext__c").unwrap();
        assert_eq!(sf["Account"], serde_json::json!({"Ext__c": "co-9"}));
        assert_eq!(sf["HasOptedOutOfEmail"], Json::Bool(true));
        assert_eq!(sf["Email"], Json::Null);
        let mut queried = sf.clone();
        queried.remove("attributes");
        assert_eq!(
            from_salesforce(ObjectType::Contacts, &queried, "Ext__c"),
            Some(r)
        );

        let mut c = Record::new(ObjectType::Companies, "co-9");
        c.set(field::EMPLOYEE_COUNT, Value::Text("250".into()));
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1000.5));
        let sf = to_salesforce(&c, "Ext__c").unwrap();
        assert_eq!(sf["NumberOfEmployees"], Json::from(250));
        assert_eq!(sf["AnnualRevenue"], serde_json::json!(1000.5));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        let err = to_salesforce(&c, "Ext__c").unwrap_err();
        assert_eq!(err.canonical, field::EMPLOYEE_COUNT);
    }

    #[test]
    fn source_records_carry_ids_timestamps_and_company() {
        let sf: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003"},
            "Id": "003000000000001AAA",
            "LastName": "Gilmore",
            "Email": null,
            "HasOptedOutOfEmail": true,
            "AccountId": "001000000000001AAA",
            "CreatedDate": "2021-11-06T17:38:40.000+0000",
            "LastModifiedDate": "2022-06-01T14:31:48.469+0000",
        }))
        .unwrap();
        let r = from_source(ObjectType::Contacts, "003000000000001AAA", &sf).unwrap();
        assert_eq!(r.source_id, "003000000000001AAA");
        assert_eq!(r.text(field::LAST_NAME), Some("Gilmore"));
        assert_eq!(r.get(field::EMAIL), None);
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert_eq!(
            r.get(field::COMPANY),
            Some(&Value::Reference("001000000000001AAA".into()))
        );
        assert_eq!(
            r.get(field::CREATED_AT),
            Some(&Value::Timestamp(1_636_220_320_000))
        );
        assert_eq!(
            r.get(field::UPDATED_AT),
            Some(&Value::Timestamp(1_654_093_908_469))
        );
        assert!(source_fields(ObjectType::Contacts).contains(&"AccountId"));
        assert!(!source_fields(ObjectType::Companies).contains(&"AccountId"));
    }

    #[test]
    fn unreadable_source_values_name_the_field_not_the_value() {
        let sf: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "Id": "001000000000001AAA",
            "Name": "Acme",
            "NumberOfEmployees": "a-great-many",
            "CreatedDate": "the-day-before-yesterday",
            "BillingAddress": {"city": "x"},
        }))
        .unwrap();
        let e = from_source(ObjectType::Companies, "001000000000001AAA", &sf).unwrap_err();
        assert_eq!(e.code, "UNREADABLE_VALUE");
        assert_eq!(e.source_id, "001000000000001AAA");
        assert!(
            e.reason.contains("employee_count")
                && e.reason.contains("NumberOfEmployees")
                && e.reason.contains("CreatedDate"),
            "{}",
            e.reason
        );
        assert!(
            !e.reason.contains("a-great-many") && !e.reason.contains("the-day-before"),
            "{}",
            e.reason
        );
        let mut nested = Map::new();
        nested.insert("Id".into(), Json::from("003"));
        nested.insert("AccountId".into(), serde_json::json!({"Id": "001"}));
        let e = from_source(ObjectType::Contacts, "003", &nested).unwrap_err();
        assert!(e.reason.contains("AccountId"), "{}", e.reason);
    }
}
