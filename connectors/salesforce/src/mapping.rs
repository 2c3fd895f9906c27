//! Canonical fields ↔ Salesforce fields: one table per object, used for writing and reading
//! back, so both directions agree by construction.

use ferry_core::model::FieldType;
use ferry_core::{ObjectType, Record, Value, field};
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
    let normalised = match (ty, value) {
        (FieldType::Bool, Value::Bool(_))
        | (FieldType::Integer, Value::Integer(_))
        | (FieldType::Decimal, Value::Decimal(_))
        | (FieldType::Text | FieldType::Email | FieldType::Phone, Value::Text(_)) => value.clone(),
        _ => match Value::parse(ty, &value.to_vendor_string()) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Json::Null),
            Err(e) => return Err(e.expected),
        },
    };
    Ok(match normalised {
        Value::Bool(b) => Json::Bool(b),
        Value::Integer(n) => Json::from(n),
        Value::Decimal(n) => serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or("a finite number")?,
        other => Json::String(other.to_vendor_string()),
    })
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

fn json_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
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
    let source_id = sf.get(external_id_field).and_then(json_text)?;
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
            record.set(canonical, Value::Reference(company));
        }
    }
    Some(record)
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
}
