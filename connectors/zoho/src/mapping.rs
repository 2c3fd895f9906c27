//! Canonical fields ↔ Zoho fields: one table per module, used for reading, writing and reading
//! back, so every direction agrees by construction.

use std::sync::LazyLock;

use ferry_core::fields::{
    FieldBinding, FieldKind, FieldMap, FieldMaps, PicklistOption, VendorField,
};
use ferry_core::model::FieldType;
use ferry_core::{ConnectorResult, ObjectType, Record, RecordRejection, Value, field};
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

/// Contacts ↔ Contacts. The `company` reference is the `Account_Name` lookup (a row of
/// [`OBJECTS`]).
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

/// A reference a Zoho module holds: a lookup field whose value is `{"id": <the target's Zoho
/// id>}`. The sink resolves the target's source id to that id through the target module's
/// source-id field (cached per run); a read-back names it as `<lookup>.<source-id field>`.
#[derive(Debug)]
pub struct ZohoReference {
    /// The canonical field holding the target's source id, e.g. a contact's `company`.
    pub canonical: &'static str,
    /// The lookup field, e.g. `Account_Name` on Contacts.
    pub lookup: &'static str,
    /// The object the lookup points at.
    pub target: ObjectType,
}

/// Zoho's side of one object ferry moves: one row of [`OBJECTS`].
#[derive(Debug)]
pub struct ZohoObject {
    /// The canonical object.
    pub object: ObjectType,
    /// Its module: the API path segment, COQL's `from`, the `module` of field metadata.
    pub module: &'static str,
    /// One record of the module, as messages name it (Zoho's singular label).
    pub record: &'static str,
    /// The standard field table: `(canonical, Zoho API name)`.
    pub fields: &'static [(&'static str, &'static str)],
    /// The lookups it holds, each resolved to its target's Zoho id by the sink.
    pub references: &'static [ZohoReference],
    /// The canonical fields Zoho refuses a record without (`MANDATORY_NOT_FOUND`).
    pub required: &'static [&'static str],
    /// The consent checkbox it carries, if any: a person-level flag (so no email address is
    /// needed to hold it), written `true` only for a true opt-out and `false` otherwise, since
    /// a checkbox cannot be empty and `false` claims no consent.
    pub opt_out: Option<&'static str>,
}

/// Zoho's side of every object ferry moves: read top to bottom to see what maps where.
pub static OBJECTS: &[ZohoObject] = &[
    ZohoObject {
        object: ObjectType::COMPANIES,
        module: "Accounts",
        record: "Account",
        fields: ACCOUNT_FIELDS,
        references: &[],
        required: &[field::NAME],
        opt_out: None,
    },
    ZohoObject {
        object: ObjectType::CONTACTS,
        module: "Contacts",
        record: "Contact",
        fields: CONTACT_FIELDS,
        references: &[ZohoReference {
            canonical: field::COMPANY,
            lookup: "Account_Name",
            target: ObjectType::COMPANIES,
        }],
        required: &[field::LAST_NAME],
        opt_out: Some(field::EMAIL_OPT_OUT),
    },
];

/// The row of `object`, or the refusal of an object this connector does not move.
pub fn binding(object: ObjectType) -> ConnectorResult<&'static ZohoObject> {
    ferry_core::kit::row_of(crate::VENDOR, OBJECTS, object)
}

impl ferry_core::kit::ObjectRow for ZohoObject {
    fn object(&self) -> ObjectType {
        self.object
    }
}

/// The objects this connector moves, in table order (the registry's list).
pub fn objects() -> &'static [ObjectType] {
    static LIST: LazyLock<Vec<ObjectType>> =
        LazyLock::new(|| OBJECTS.iter().map(|row| row.object).collect());
    &LIST
}

/// The standard field maps of every row, before the operator maps fields.
pub fn standard_maps() -> FieldMaps {
    FieldMaps::new(OBJECTS.iter().map(|row| (row.object, row.standard())))
}

/// Whether some row's reference points at `object`, so the sink remembers the Zoho ids it
/// writes for it.
pub fn is_reference_target(object: ObjectType) -> bool {
    OBJECTS
        .iter()
        .flat_map(|row| row.references)
        .any(|reference| reference.target == object)
}

impl ZohoObject {
    /// The standard field table as a field map (written, read back and read as a source).
    pub fn standard(&self) -> FieldMap {
        FieldMap::standard(self.object, self.fields)
    }

    /// The reference whose lookup is the Zoho field `zoho`, if any.
    pub fn reference(&self, zoho: &str) -> Option<&'static ZohoReference> {
        self.references.iter().find(|r| r.lookup == zoho)
    }
}

/// The Zoho fields a source reads for `row` (the `fields` parameter and COQL columns).
pub fn read_fields(map: &FieldMap, row: &ZohoObject) -> Vec<String> {
    let mut names: Vec<String> = map.vendor_names().into_iter().map(str::to_owned).collect();
    for reference in row.references {
        names.push(reference.lookup.to_owned());
    }
    for (_, zoho) in SYSTEM_FIELDS {
        if !names.iter().any(|n| n == zoho) {
            names.push((*zoho).to_owned());
        }
    }
    names
}

/// The canonical fields the sink writes and reads back.
pub fn stored_fields(map: &FieldMap, row: &ZohoObject) -> Vec<String> {
    let mut names = map.canonical_names();
    for reference in row.references {
        names.push(reference.canonical.to_owned());
    }
    names
}

/// The canonical name of a Zoho field in `map` (or a lookup), for messages.
pub fn canonical_of(map: &FieldMap, row: &ZohoObject, zoho: &str) -> Option<String> {
    map.by_vendor(zoho)
        .map(|b| b.canonical.to_string())
        .or_else(|| row.reference(zoho).map(|r| r.canonical.to_owned()))
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
/// reference (a contact's company) is its target's Zoho id. A value that does not fit its
/// canonical type makes the record unreadable; the rejection names the field, never the value.
pub fn from_zoho(
    map: &FieldMap,
    row: &ZohoObject,
    z: &Map<String, Json>,
) -> Result<Record, RecordRejection> {
    let id = z.get("id").and_then(json_text).unwrap_or_default();
    let mut record = Record::new(row.object, id.clone());
    let mut bad: Vec<String> = Vec::new();
    let system = FieldMap::standard(row.object, SYSTEM_FIELDS);
    for binding in map.iter().chain(system.iter()) {
        if let Err(expected) = read_into(&mut record, binding, z) {
            bad.push(format!(
                "{} ({}) is not {expected}",
                binding.canonical, binding.vendor
            ));
        }
    }
    for reference in row.references {
        let target = z.get(reference.lookup).and_then(|a| a.get("id"));
        if let Some(target) = target.and_then(json_text) {
            record.set(reference.canonical, Value::Reference(target));
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
/// picklist label as its Zoho value), the source id, and each lookup of `row` (`targets`, in
/// the order of `row.references`: the target's Zoho id, resolved by the sink, or `None`). A
/// value that does not fit its field, or a label the picklist lacks, refuses the record,
/// naming the field, never the value.
pub fn to_zoho(
    map: &FieldMap,
    row: &ZohoObject,
    record: &Record,
    source_id_field: &str,
    targets: &[Option<&str>],
) -> Result<Map<String, Json>, RecordRejection> {
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
        if row.opt_out == Some(b.canonical.as_ref()) && value != Json::Bool(true) {
            // Only a true opt-out is a fact to carry. Anything else leaves the field out: Zoho
            // keeps what it holds on an update (an opt-out is never cleared) and creates the
            // record not opted out.
            continue;
        }
        out.insert(b.vendor.to_string(), value);
    }
    for (at, reference) in row.references.iter().enumerate() {
        let lookup = match targets.get(at).copied().flatten() {
            Some(id) => serde_json::json!({ "id": id }),
            None => Json::Null,
        };
        out.insert(reference.lookup.into(), lookup);
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

/// The canonical record of a record read back by source id (COQL), or `None` without one. A
/// reference is its target's source id (`<lookup>.<source id field>`, e.g.
/// `Account_Name.Ferry_Source_Id`). A value that does not fit its type is left out (logged by
/// field name), so the checksum flags the record.
pub fn from_read_back(
    map: &FieldMap,
    row: &ZohoObject,
    z: &Map<String, Json>,
    source_id_field: &str,
) -> Option<Record> {
    let source_id = z.get(source_id_field).and_then(json_text)?;
    let mut record = Record::new(row.object, source_id);
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
    for reference in row.references {
        let key = format!("{}.{source_id_field}", reference.lookup);
        if let Some(target) = z.get(&key).and_then(json_text).filter(|s| !s.is_empty()) {
            record.set(reference.canonical, Value::Reference(target));
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

/// The canonical field the standard tables give a Zoho field of `row`.
fn standard_canonical(row: &ZohoObject, zoho: &str) -> Option<String> {
    canonical_of(&row.standard(), row, zoho).or_else(|| {
        SYSTEM_FIELDS
            .iter()
            .find(|(_, z)| *z == zoho)
            .map(|(c, _)| (*c).to_owned())
    })
}

/// A described field in ferry's terms. Zoho's `-None-` option means "no value", not an option.
pub(crate) fn vendor_field(row: &ZohoObject, f: &FieldMeta) -> VendorField {
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
        canonical: standard_canonical(row, &f.api_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(object: ObjectType) -> &'static ZohoObject {
        binding(object).unwrap()
    }

    fn standard(object: ObjectType) -> FieldMap {
        row(object).standard()
    }

    #[test]
    fn every_canonical_field_but_system_timestamps_is_stored() {
        for object in ObjectType::DEFAULT_RUN {
            let stored = stored_fields(&standard(object), row(object));
            for spec in object.fields() {
                // The owner is bound with the connector step of #14 (users and owners).
                let system = spec.name == field::CREATED_AT
                    || spec.name == field::UPDATED_AT
                    || spec.name == field::OWNER;
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
        let mut r = Record::new(ObjectType::CONTACTS, "c-1");
        r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::COMPANY, Value::Reference("co-9".into()));
        let contacts = standard(ObjectType::CONTACTS);
        let z = to_zoho(
            &contacts,
            row(ObjectType::CONTACTS),
            &r,
            "Src",
            &[Some("4876")],
        )
        .unwrap();
        assert_eq!(z["Account_Name"], serde_json::json!({"id": "4876"}));
        assert_eq!(z["Email_Opt_Out"], Json::Bool(true));
        assert_eq!(z["Email"], Json::Null);
        let mut back = z.clone();
        back.insert("Account_Name.Src".into(), Json::String("co-9".into()));
        assert_eq!(
            from_read_back(&contacts, row(ObjectType::CONTACTS), &back, "Src"),
            Some(r)
        );

        let mut c = Record::new(ObjectType::COMPANIES, "co-9");
        c.set(field::EMPLOYEE_COUNT, Value::Text("250".into()));
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1000.5));
        let companies = standard(ObjectType::COMPANIES);
        let z = to_zoho(&companies, row(ObjectType::COMPANIES), &c, "Src", &[]).unwrap();
        assert_eq!(z["Employees"], Json::from(250));
        assert_eq!(z["Annual_Revenue"], serde_json::json!(1000.5));
        assert_eq!(z["Src"], Json::String("co-9".into()));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        let refused = to_zoho(&companies, row(ObjectType::COMPANIES), &c, "Src", &[]).unwrap_err();
        assert_eq!(refused.code, "INVALID_VALUE");
        assert!(
            refused.reason.starts_with(field::EMPLOYEE_COUNT) && !refused.reason.contains("lots")
        );
    }

    #[test]
    fn only_a_true_opt_out_is_written_so_an_update_never_clears_one() {
        for flag in [None, Some(false)] {
            let mut r = Record::new(ObjectType::CONTACTS, "c-2");
            if let Some(b) = flag {
                r.set(field::EMAIL_OPT_OUT, Value::Bool(b));
            }
            let z = to_zoho(
                &standard(ObjectType::CONTACTS),
                row(ObjectType::CONTACTS),
                &r,
                "Src",
                &[],
            )
            .unwrap();
            assert!(z.get("Email_Opt_Out").is_none(), "{flag:?}: {z:?}");
        }
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
        let map = standard(ObjectType::COMPANIES).with(&[tier, seats]);
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "5", "Account_Name": "Acme", "Tier": "T1", "Seats": 12
        }))
        .unwrap();
        let r = from_zoho(&map, row(ObjectType::COMPANIES), &z).unwrap();
        assert_eq!(r.get("tier"), Some(&Value::Text("Gold".into())));
        assert_eq!(r.get("seats"), Some(&Value::Integer(12)));
        let mut w = Record::new(ObjectType::COMPANIES, "co-1");
        w.fields.insert("tier".into(), Value::Text(" gold".into()));
        w.fields.insert("seats".into(), Value::Integer(12));
        let out = to_zoho(&map, row(ObjectType::COMPANIES), &w, "Src", &[]).unwrap();
        assert_eq!(out["Tier"], Json::String("T1".into()));
        assert_eq!(out["Seats"], Json::from(12));
        assert_eq!(
            stored_fields(&map, row(ObjectType::COMPANIES))
                .iter()
                .rev()
                .take(2)
                .collect::<Vec<_>>(),
            ["seats", "tier"]
        );
        w.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_zoho(&map, row(ObjectType::COMPANIES), &w, "Src", &[]).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(!refused.reason.contains("Platinum"));
        w.fields.insert("tier".into(), Value::Integer(3));
        assert_eq!(
            to_zoho(&map, row(ObjectType::COMPANIES), &w, "Src", &[])
                .unwrap_err()
                .code,
            "INVALID_VALUE"
        );

        let at = FieldBinding::new("renewal_at", "Renewal_At", FieldType::Timestamp);
        let map = standard(ObjectType::COMPANIES).with(&[at]);
        let mut w = Record::new(ObjectType::COMPANIES, "co-2");
        w.fields
            .insert("renewal_at".into(), Value::Timestamp(1_704_164_645_678));
        assert_eq!(
            to_zoho(&map, row(ObjectType::COMPANIES), &w, "Src", &[]).unwrap()["Renewal_At"],
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
        let e = from_zoho(
            &standard(ObjectType::COMPANIES),
            row(ObjectType::COMPANIES),
            &z,
        )
        .unwrap_err();
        assert!(e.reason.contains("employee_count") && !e.reason.contains("lots-of-people"));
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "78", "Last_Name": "A", "Account_Name": {"name": "Acme", "id": "77"},
            "Email_Opt_Out": true, "Modified_Time": "2024-01-02T03:04:05+05:30"
        }))
        .unwrap();
        let r = from_zoho(
            &standard(ObjectType::CONTACTS),
            row(ObjectType::CONTACTS),
            &z,
        )
        .unwrap();
        assert_eq!(r.get(field::COMPANY), Some(&Value::Reference("77".into())));
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert!(matches!(
            r.get(field::UPDATED_AT),
            Some(Value::Timestamp(_))
        ));
    }

    #[test]
    fn every_object_has_exactly_one_row_and_references_point_at_rows() {
        for object in ObjectType::DEFAULT_RUN {
            assert_eq!(
                OBJECTS.iter().filter(|row| row.object == object).count(),
                1,
                "{object}"
            );
            assert_eq!(binding(object).unwrap().object, object);
        }
        assert_eq!(objects(), ObjectType::DEFAULT_RUN);
        for row in OBJECTS {
            for reference in row.references {
                assert!(binding(reference.target).is_ok(), "{}", reference.lookup);
                assert!(row.object.field(reference.canonical).is_some());
            }
            for required in row.required {
                assert!(row.fields.iter().any(|(c, _)| c == required), "{required}");
            }
        }
        assert!(is_reference_target(ObjectType::COMPANIES));
        assert!(!is_reference_target(ObjectType::CONTACTS));
    }
}
