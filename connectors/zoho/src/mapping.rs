//! Canonical fields ↔ Zoho fields: one table per module, used for reading, writing and reading
//! back, so every direction agrees by construction.

use ferry_core::fields::{FieldBinding, FieldKind, FieldMap, PicklistOption, VendorField};
use ferry_core::model::FieldType;
use ferry_core::{ObjectType, Record, RecordRejection, Value, field};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

/// Companies ↔ Accounts: `(canonical, Zoho API name)`.
pub const ACCOUNT_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "Account_Name"),
    (field::DOMAIN, "Website"),
    (field::PHONE, "Phone"),
    (field::INDUSTRY, "Industry"),
    (field::EMPLOYEE_COUNT, "Employees"),
    (field::ANNUAL_REVENUE, "Annual_Revenue"),
    (field::STREET, "Billing_Street"),
    (field::CITY, "Billing_City"),
    (field::STATE, "Billing_State"),
    (field::POSTAL_CODE, "Billing_Code"),
    (field::COUNTRY, "Billing_Country"),
];

/// Contacts ↔ Contacts. The `company` reference is the `Account_Name` lookup ([`COMPANY_LOOKUP`]).
pub const CONTACT_FIELDS: &[(&str, &str)] = &[
    (field::EMAIL, "Email"),
    (field::FIRST_NAME, "First_Name"),
    (field::LAST_NAME, "Last_Name"),
    (field::PHONE, "Phone"),
    (field::MOBILE_PHONE, "Mobile"),
    (field::JOB_TITLE, "Title"),
    (field::STREET, "Mailing_Street"),
    (field::CITY, "Mailing_City"),
    (field::STATE, "Mailing_State"),
    (field::POSTAL_CODE, "Mailing_Zip"),
    (field::COUNTRY, "Mailing_Country"),
    (field::EMAIL_OPT_OUT, "Email_Opt_Out"),
];

/// System timestamps: read from a source, never written (Zoho sets them).
pub const SYSTEM_FIELDS: &[(&str, &str)] = &[
    (field::CREATED_AT, "Created_Time"),
    (field::UPDATED_AT, "Modified_Time"),
];

/// A contact's company: the `Account_Name` lookup (`{"id": …}`) on Contacts.
pub const COMPANY_LOOKUP: (&str, &str) = (field::COMPANY, "Account_Name");

/// The module an object type lives in.
pub fn module(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Companies => "Accounts",
        ObjectType::Contacts => "Contacts",
    }
}

/// The standard field table of `object` (written, read back and read as a source).
pub fn standard(object: ObjectType) -> FieldMap {
    let table = match object {
        ObjectType::Companies => ACCOUNT_FIELDS,
        ObjectType::Contacts => CONTACT_FIELDS,
    };
    FieldMap::standard(object, table)
}

/// The lookup field of `object` that holds a reference, if any: a contact's company.
pub fn lookup(object: ObjectType) -> Option<(&'static str, &'static str)> {
    (object == ObjectType::Contacts).then_some(COMPANY_LOOKUP)
}

/// The Zoho fields a source reads for `object` (the `fields` parameter and COQL columns).
pub fn read_fields(map: &FieldMap, object: ObjectType) -> Vec<String> {
    let mut names: Vec<String> = map.vendor_names().into_iter().map(str::to_owned).collect();
    if let Some((_, zoho)) = lookup(object) {
        names.push(zoho.to_owned());
    }
    for (_, zoho) in SYSTEM_FIELDS {
        if !names.iter().any(|n| n == zoho) {
            names.push((*zoho).to_owned());
        }
    }
    names
}

/// The canonical fields the sink writes and reads back.
pub fn stored_fields(map: &FieldMap, object: ObjectType) -> Vec<String> {
    let mut names = map.canonical_names();
    if let Some((canonical, _)) = lookup(object) {
        names.push(canonical.to_owned());
    }
    names
}

/// The canonical name of a Zoho field in `map` (or the lookup), for messages.
pub fn canonical_of(map: &FieldMap, object: ObjectType, zoho: &str) -> Option<String> {
    map.by_vendor(zoho)
        .map(|b| b.canonical.to_string())
        .or_else(|| {
            lookup(object)
                .filter(|(_, z)| *z == zoho)
                .map(|(c, _)| c.to_owned())
        })
}

/// Whether `name` can be a Zoho API name: letters, digits and underscores, starting with a
/// letter. Only such names go into a `fields` parameter or a COQL query.
pub fn is_api_name(name: &str) -> bool {
    name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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

/// Reads one bound field of `z` into `record`; the error says what the field should hold.
fn read_into(
    record: &mut Record,
    binding: &FieldBinding,
    z: &Map<String, Json>,
) -> Result<(), &'static str> {
    let Some(raw) = z.get(binding.vendor.as_ref()).and_then(json_text) else {
        return Ok(());
    };
    match binding.read(&raw) {
        Ok(Some(value)) => {
            record.fields.insert(binding.canonical.clone(), value);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e.expected),
    }
}

/// The canonical record of a Zoho record read by a source: its Zoho id is the source id, and a
/// contact's company is its account's Zoho id. A value that does not fit its canonical type
/// makes the record unreadable; the rejection names the field, never the value.
pub fn from_zoho(
    map: &FieldMap,
    object: ObjectType,
    z: &Map<String, Json>,
) -> Result<Record, RecordRejection> {
    let id = z.get("id").and_then(json_text).unwrap_or_default();
    let mut record = Record::new(object, id.clone());
    let mut bad: Vec<String> = Vec::new();
    let system = FieldMap::standard(object, SYSTEM_FIELDS);
    for binding in map.iter().chain(system.iter()) {
        if let Err(expected) = read_into(&mut record, binding, z) {
            bad.push(format!(
                "{} ({}) is not {expected}",
                binding.canonical, binding.vendor
            ));
        }
    }
    if let Some((canonical, zoho)) = lookup(object) {
        if let Some(account) = z.get(zoho).and_then(|a| a.get("id")).and_then(json_text) {
            record.set(canonical, Value::Reference(account));
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

/// The Zoho record for `record`: every field of `map` (absent ones as `null`, which clears
/// them on update; an absent opt-out as `false`, since the checkbox cannot be empty; a
/// picklist label as its Zoho value), the source id, and for contacts the account lookup
/// (`account_id`: the company's Zoho id, resolved by the sink). A value that does not fit its
/// field, or a label the picklist lacks, refuses the record, naming the field, never the value.
pub fn to_zoho(
    map: &FieldMap,
    record: &Record,
    source_id_field: &str,
    account_id: Option<&str>,
) -> Result<Map<String, Json>, RecordRejection> {
    let object = record.object;
    let mut out = Map::new();
    for b in map.iter() {
        let value = match record.get(&b.canonical) {
            None => Json::Null,
            Some(v) if b.is_picklist() => match v.as_text() {
                Some(label) => Json::String(
                    b.write_option(crate::VENDOR, &record.source_id, label)?
                        .to_owned(),
                ),
                None => return Err(invalid(record, b, "a picklist label")),
            },
            Some(v) => zoho_json(b.ty, v).map_err(|expected| invalid(record, b, expected))?,
        };
        let value = if b.canonical == field::EMAIL_OPT_OUT {
            // Only a true opt-out is a fact to carry; anything else is "not opted out".
            Json::Bool(value == Json::Bool(true))
        } else {
            value
        };
        out.insert(b.vendor.to_string(), value);
    }
    if let Some((_, zoho)) = lookup(object) {
        let lookup = match account_id {
            Some(id) => serde_json::json!({ "id": id }),
            None => Json::Null,
        };
        out.insert(zoho.into(), lookup);
    }
    out.insert(
        source_id_field.to_owned(),
        Json::String(record.source_id.clone()),
    );
    Ok(out)
}

/// The JSON Zoho takes for `value` in a field of canonical type `ty`. A date-time goes in
/// Zoho's documented form, `YYYY-MM-DDTHH:MM:SS+00:00`: Zoho keeps seconds, so milliseconds
/// are dropped (and a read-back of a value with milliseconds differs, which the checksum shows).
fn zoho_json(ty: FieldType, value: &Value) -> Result<Json, &'static str> {
    let json = value.to_json(ty)?;
    if ty != FieldType::Timestamp {
        return Ok(json);
    }
    Ok(match json.as_str().and_then(|s| s.get(..19)) {
        Some(seconds) => Json::String(format!("{seconds}+00:00")),
        None => json,
    })
}

fn invalid(record: &Record, binding: &FieldBinding, expected: &str) -> RecordRejection {
    RecordRejection {
        source_id: record.source_id.clone(),
        code: "INVALID_VALUE".into(),
        reason: format!("{} is not {expected}", binding.canonical),
    }
}

/// The canonical record of a record read back by source id (COQL), or `None` without one. The
/// company is the account's source id (`Account_Name.<source id field>`). A value that does
/// not fit its type is left out (logged by field name), so the checksum flags the record.
pub fn from_read_back(
    map: &FieldMap,
    object: ObjectType,
    z: &Map<String, Json>,
    source_id_field: &str,
) -> Option<Record> {
    let source_id = z.get(source_id_field).and_then(json_text)?;
    let mut record = Record::new(object, source_id);
    for binding in map.iter() {
        if let Err(expected) = read_into(&mut record, binding, z) {
            tracing::debug!(
                vendor = crate::VENDOR,
                field = %binding.canonical,
                expected,
                "unreadable value on read-back"
            );
        }
    }
    if let Some((canonical, zoho)) = lookup(object) {
        let key = format!("{zoho}.{source_id_field}");
        if let Some(company) = z.get(&key).and_then(json_text).filter(|s| !s.is_empty()) {
            record.set(canonical, Value::Reference(company));
        }
    }
    Some(record)
}

/// One field of a `GET /crm/v8/settings/fields` answer (the attributes ferry reads).
#[derive(Deserialize)]
pub(crate) struct FieldMeta {
    #[serde(default)]
    pub id: Json,
    pub api_name: String,
    #[serde(default)]
    pub field_label: Option<String>,
    #[serde(default)]
    pub display_label: Option<String>,
    #[serde(default)]
    pub data_type: String,
    #[serde(default)]
    pub unique: Json,
    #[serde(default)]
    pub custom_field: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub field_read_only: bool,
    #[serde(default)]
    pub operation_type: Option<OperationType>,
    #[serde(default)]
    pub pick_list_values: Vec<PickListValue>,
}

/// Which API operations may set a field.
#[derive(Deserialize)]
pub(crate) struct OperationType {
    #[serde(default = "yes")]
    pub api_create: bool,
    #[serde(default = "yes")]
    pub api_update: bool,
}

fn yes() -> bool {
    true
}

/// One picklist option: Zoho reads and writes `display_value` (its `actual_value` is a
/// reference behind the scenes, not what records hold).
#[derive(Deserialize)]
pub(crate) struct PickListValue {
    #[serde(default)]
    pub display_value: String,
}

/// The `settings/fields` answer.
#[derive(Deserialize)]
pub(crate) struct FieldsBody {
    #[serde(default)]
    pub fields: Vec<FieldMeta>,
}

/// ferry's kind of a Zoho `data_type`.
pub fn kind_of(data_type: &str) -> FieldKind {
    match data_type {
        "text" | "textarea" | "website" | "autonumber" => FieldKind::Text,
        "email" => FieldKind::Email,
        "phone" => FieldKind::Phone,
        "boolean" => FieldKind::Bool,
        "integer" | "bigint" => FieldKind::Integer,
        "double" | "currency" | "decimal" | "percent" => FieldKind::Decimal,
        "date" => FieldKind::Date,
        "datetime" => FieldKind::Timestamp,
        "picklist" => FieldKind::Picklist,
        "multiselectpicklist" => FieldKind::MultiPicklist,
        "lookup" | "ownerlookup" | "userlookup" | "multiselectlookup" => FieldKind::Reference,
        _ => FieldKind::Other,
    }
}

/// The Zoho `data_type` a new field of `kind` is created as.
pub fn data_type_of(kind: FieldKind) -> Option<&'static str> {
    Some(match kind {
        FieldKind::Text => "text",
        FieldKind::Email => "email",
        FieldKind::Phone => "phone",
        FieldKind::Bool => "boolean",
        FieldKind::Integer => "integer",
        FieldKind::Decimal => "double",
        FieldKind::Date => "date",
        FieldKind::Timestamp => "datetime",
        FieldKind::Picklist => "picklist",
        FieldKind::MultiPicklist | FieldKind::Reference | FieldKind::Other => return None,
    })
}

/// The canonical field the standard tables give a Zoho field of `object`.
fn standard_canonical(object: ObjectType, zoho: &str) -> Option<String> {
    canonical_of(&standard(object), object, zoho).or_else(|| {
        SYSTEM_FIELDS
            .iter()
            .find(|(_, z)| *z == zoho)
            .map(|(c, _)| (*c).to_owned())
    })
}

/// A described field in ferry's terms. Zoho's `-None-` option means "no value", not an option.
pub(crate) fn vendor_field(object: ObjectType, f: &FieldMeta) -> VendorField {
    let kind = kind_of(&f.data_type);
    let writable = !f.read_only
        && !f.field_read_only
        && f.operation_type
            .as_ref()
            .is_none_or(|o| o.api_create || o.api_update);
    let options = f
        .pick_list_values
        .iter()
        .filter(|o| !o.display_value.is_empty() && o.display_value != "-None-")
        .map(|o| PicklistOption {
            // The API reads and writes the display value.
            value: o.display_value.clone(),
            label: o.display_value.clone(),
        })
        .collect();
    VendorField {
        name: f.api_name.clone(),
        label: f
            .field_label
            .clone()
            .or_else(|| f.display_label.clone())
            .unwrap_or_else(|| f.api_name.clone()),
        kind,
        vendor_type: f.data_type.clone(),
        custom: f.custom_field,
        writable,
        options,
        canonical: standard_canonical(object, &f.api_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_field_but_system_timestamps_is_stored() {
        for object in ObjectType::ALL {
            let stored = stored_fields(&standard(object), object);
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
        let contacts = standard(ObjectType::Contacts);
        let z = to_zoho(&contacts, &r, "Src", Some("4876")).unwrap();
        assert_eq!(z["Account_Name"], serde_json::json!({"id": "4876"}));
        assert_eq!(z["Email_Opt_Out"], Json::Bool(true));
        assert_eq!(z["Email"], Json::Null);
        let mut back = z.clone();
        back.insert("Account_Name.Src".into(), Json::String("co-9".into()));
        assert_eq!(
            from_read_back(&contacts, ObjectType::Contacts, &back, "Src"),
            Some(r)
        );

        let mut c = Record::new(ObjectType::Companies, "co-9");
        c.set(field::EMPLOYEE_COUNT, Value::Text("250".into()));
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1000.5));
        let companies = standard(ObjectType::Companies);
        let z = to_zoho(&companies, &c, "Src", None).unwrap();
        assert_eq!(z["Employees"], Json::from(250));
        assert_eq!(z["Annual_Revenue"], serde_json::json!(1000.5));
        assert_eq!(z["Src"], Json::String("co-9".into()));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        let refused = to_zoho(&companies, &c, "Src", None).unwrap_err();
        assert_eq!(refused.code, "INVALID_VALUE");
        assert!(
            refused.reason.starts_with(field::EMPLOYEE_COUNT) && !refused.reason.contains("lots")
        );
    }

    #[test]
    fn an_absent_opt_out_is_written_as_not_opted_out() {
        let r = Record::new(ObjectType::Contacts, "c-2");
        assert_eq!(
            to_zoho(&standard(ObjectType::Contacts), &r, "Src", None).unwrap()["Email_Opt_Out"],
            Json::Bool(false)
        );
    }

    #[test]
    fn mapped_fields_are_read_and_written_picklists_by_label() {
        let tier = FieldBinding {
            options: vec![PicklistOption {
                value: "T1".into(),
                label: "Gold".into(),
            }],
            ..FieldBinding::new("tier", "Tier", FieldType::Text)
        };
        let seats = FieldBinding::new("seats", "Seats", FieldType::Integer);
        let map = standard(ObjectType::Companies).with(&[tier, seats]);
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "5", "Account_Name": "Acme", "Tier": "T1", "Seats": 12
        }))
        .unwrap();
        let r = from_zoho(&map, ObjectType::Companies, &z).unwrap();
        assert_eq!(r.get("tier"), Some(&Value::Text("Gold".into())));
        assert_eq!(r.get("seats"), Some(&Value::Integer(12)));
        let mut w = Record::new(ObjectType::Companies, "co-1");
        w.fields.insert("tier".into(), Value::Text(" gold".into()));
        w.fields.insert("seats".into(), Value::Integer(12));
        let out = to_zoho(&map, &w, "Src", None).unwrap();
        assert_eq!(out["Tier"], Json::String("T1".into()));
        assert_eq!(out["Seats"], Json::from(12));
        assert_eq!(
            stored_fields(&map, ObjectType::Companies)
                .iter()
                .rev()
                .take(2)
                .collect::<Vec<_>>(),
            ["seats", "tier"]
        );
        w.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_zoho(&map, &w, "Src", None).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(!refused.reason.contains("Platinum"));
        w.fields.insert("tier".into(), Value::Integer(3));
        assert_eq!(
            to_zoho(&map, &w, "Src", None).unwrap_err().code,
            "INVALID_VALUE"
        );

        let at = FieldBinding::new("renewal_at", "Renewal_At", FieldType::Timestamp);
        let map = standard(ObjectType::Companies).with(&[at]);
        let mut w = Record::new(ObjectType::Companies, "co-2");
        w.fields
            .insert("renewal_at".into(), Value::Timestamp(1_704_164_645_678));
        assert_eq!(
            to_zoho(&map, &w, "Src", None).unwrap()["Renewal_At"],
            "2024-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn source_records_name_unreadable_fields_not_values() {
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "77", "Account_Name": "Acme", "Employees": "lots-of-people",
            "Created_Time": "2024-01-02T03:04:05+05:30"
        }))
        .unwrap();
        let e = from_zoho(&standard(ObjectType::Companies), ObjectType::Companies, &z).unwrap_err();
        assert!(e.reason.contains("employee_count") && !e.reason.contains("lots-of-people"));
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "78", "Last_Name": "A", "Account_Name": {"name": "Acme", "id": "77"},
            "Email_Opt_Out": true, "Modified_Time": "2024-01-02T03:04:05+05:30"
        }))
        .unwrap();
        let r = from_zoho(&standard(ObjectType::Contacts), ObjectType::Contacts, &z).unwrap();
        assert_eq!(r.get(field::COMPANY), Some(&Value::Reference("77".into())));
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert!(matches!(
            r.get(field::UPDATED_AT),
            Some(Value::Timestamp(_))
        ));
    }
}
