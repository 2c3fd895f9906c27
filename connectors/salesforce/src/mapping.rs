//! Canonical fields ↔ Salesforce fields: one table per object, used for writing, reading back
//! and reading as a source, so every direction agrees by construction.

use std::borrow::Cow;

use ferry_core::json::{Field, Object};
use ferry_core::model::FieldType;
use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde::ser::{Error as _, Serialize, SerializeMap, Serializer};

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

/// A value in the JSON Salesforce expects for a field of canonical type `ty`: borrowed when
/// it already has that type (nearly always), converted by [`Value::to_json`] when it has not.
enum JsonValue<'a> {
    Text(&'a str),
    Bool(bool),
    Integer(i64),
    Decimal(f64),
    Converted(serde_json::Value),
}

fn json_value(ty: FieldType, value: &Value) -> Result<JsonValue<'_>, &'static str> {
    Ok(match (ty, value) {
        (FieldType::Text | FieldType::Email | FieldType::Phone, Value::Text(s)) => {
            JsonValue::Text(s)
        }
        (FieldType::Bool, Value::Bool(b)) => JsonValue::Bool(*b),
        (FieldType::Integer, Value::Integer(n)) => JsonValue::Integer(*n),
        (FieldType::Decimal, Value::Decimal(n)) if n.is_finite() => JsonValue::Decimal(*n),
        _ => JsonValue::Converted(value.to_json(ty)?),
    })
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonValue::Text(t) => s.serialize_str(t),
            JsonValue::Bool(b) => s.serialize_bool(*b),
            JsonValue::Integer(n) => s.serialize_i64(*n),
            JsonValue::Decimal(n) => s.serialize_f64(*n),
            JsonValue::Converted(json) => json.serialize(s),
        }
    }
}

/// The Salesforce record for a canonical record, encoded straight from it (no JSON tree per
/// record): every mapped field (absent ones as `null`, which clears them on update), the
/// external id, and for contacts the company lookup. Built by [`to_salesforce`], which has
/// checked that every value can be written.
#[derive(Clone, Copy, Debug)]
pub struct SalesforceBody<'a> {
    record: &'a Record,
    external_id_field: &'a str,
}

/// The body of `record` for an upsert, or the first field whose value cannot be written.
pub fn to_salesforce<'a>(
    record: &'a Record,
    external_id_field: &'a str,
) -> Result<SalesforceBody<'a>, Unwritable> {
    let object = record.object;
    for f in fields(object) {
        if let Some(v) = record.get(f.canonical) {
            json_value(field_type(object, f.canonical), v).map_err(|expected| Unwritable {
                canonical: f.canonical,
                expected,
            })?;
        }
    }
    Ok(SalesforceBody {
        record,
        external_id_field,
    })
}

/// `{"type": sobject}`, the `attributes` member of a record in a collection.
struct Attributes(&'static str);

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("type", self.0)?;
        map.end()
    }
}

/// `{ext: source id}`: a relationship resolved by the parent's external id.
struct ByExternalId<'a>(&'a str, &'a str);

impl Serialize for ByExternalId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

impl Serialize for SalesforceBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let object = record.object;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("attributes", &Attributes(sobject(object)))?;
        for f in fields(object) {
            match record.get(f.canonical) {
                None => map.serialize_entry(f.salesforce, &())?,
                Some(v) => {
                    // Checked by `to_salesforce`; an error here would be a bug, not data.
                    let value = json_value(field_type(object, f.canonical), v).map_err(|_| {
                        S::Error::custom(format_args!("field `{}` is not writable", f.canonical))
                    })?;
                    map.serialize_entry(f.salesforce, &value)?;
                }
            }
        }
        if object == ObjectType::Contacts {
            let (canonical, relationship, id_field) = COMPANY_LOOKUP;
            match record.text(canonical).filter(|s| !s.is_empty()) {
                Some(company) => map.serialize_entry(
                    relationship,
                    &ByExternalId(self.external_id_field, company),
                )?,
                None => map.serialize_entry(id_field, &())?,
            }
        }
        map.serialize_entry(self.external_id_field, &record.source_id)?;
        map.end()
    }
}

/// The canonical record of a queried Salesforce record, or `None` if it has no external id.
/// A value that does not fit its canonical type is left out (and logged by field name), so
/// the checksum comparison flags the record rather than the whole read failing.
pub fn from_salesforce(
    object: ObjectType,
    sf: &Object<'_>,
    external_id_field: &str,
) -> Option<Record> {
    let source_id = sf
        .get(external_id_field)
        .and_then(Field::text)?
        .into_owned();
    let mut record = Record::new(object, source_id);
    for f in fields(object) {
        let Some(raw) = sf.get(f.salesforce).and_then(Field::text) else {
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
            .and_then(Field::text)
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
fn scalar_text<'v>(value: &'v Field<'_>) -> Result<Option<Cow<'v, str>>, ()> {
    match value {
        Field::Null => Ok(None),
        Field::Object(_) | Field::Array => Err(()),
        other => Ok(other.text()),
    }
}

/// The canonical record of a Salesforce record read as a source, whose `Id` is `id`: mapped
/// fields, the system timestamps and, for a contact, its Account as the `company` reference.
/// A value that does not fit its canonical type makes the whole record unreadable, with a
/// reason naming the fields (never the values), so it is reported rather than half-migrated.
pub fn from_source(
    object: ObjectType,
    id: &str,
    sf: &Object<'_>,
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
    use serde_json::Value as Json;

    /// A queried record from JSON; borrowed types need their input to outlive them: leaked,
    /// in a test.
    fn row(json: Json) -> Object<'static> {
        let text: &'static str = Box::leak(json.to_string().into_boxed_str());
        serde_json::from_str(text).unwrap()
    }

    fn body(record: &Record, ext: &str) -> Result<Json, Unwritable> {
        to_salesforce(record, ext).map(|b| serde_json::to_value(b).unwrap())
    }

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
        let sf = body(&r, "Ext__c").unwrap();
        assert_eq!(sf["attributes"], serde_json::json!({"type": "Contact"}));
        assert_eq!(sf["Account"], serde_json::json!({"Ext__c": "co-9"}));
        assert_eq!(sf["HasOptedOutOfEmail"], Json::Bool(true));
        assert_eq!(sf["Email"], Json::Null);
        assert_eq!(sf["Ext__c"], serde_json::json!("c-1"));
        let mut queried = sf.clone();
        queried.as_object_mut().unwrap().remove("attributes");
        assert_eq!(
            from_salesforce(ObjectType::Contacts, &row(queried), "Ext__c"),
            Some(r.clone())
        );
        r.fields.remove(field::COMPANY);
        let sf = body(&r, "Ext__c").unwrap();
        assert_eq!(sf["AccountId"], Json::Null);
        assert!(sf.get("Account").is_none());

        let mut c = Record::new(ObjectType::Companies, "co-9");
        c.set(field::EMPLOYEE_COUNT, Value::Text("250".into()));
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1000.5));
        let sf = body(&c, "Ext__c").unwrap();
        assert_eq!(sf["NumberOfEmployees"], Json::from(250));
        assert_eq!(sf["AnnualRevenue"], serde_json::json!(1000.5));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        let err = body(&c, "Ext__c").unwrap_err();
        assert_eq!(err.canonical, field::EMPLOYEE_COUNT);
    }

    #[test]
    fn source_records_carry_ids_timestamps_and_company() {
        let sf = row(serde_json::json!({
            "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003"},
            "Id": "003000000000001AAA",
            "LastName": "Gilmore",
            "Email": null,
            "HasOptedOutOfEmail": true,
            "AccountId": "001000000000001AAA",
            "CreatedDate": "2021-11-06T17:38:40.000+0000",
            "LastModifiedDate": "2022-06-01T14:31:48.469+0000",
        }));
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
        let sf = row(serde_json::json!({
            "Id": "001000000000001AAA",
            "Name": "Acme",
            "NumberOfEmployees": "a-great-many",
            "CreatedDate": "the-day-before-yesterday",
            "BillingAddress": {"city": "x"},
        }));
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
        let nested = row(serde_json::json!({"Id": "003", "AccountId": {"Id": "001"}}));
        let e = from_source(ObjectType::Contacts, "003", &nested).unwrap_err();
        assert!(e.reason.contains("AccountId"), "{}", e.reason);
    }
}
