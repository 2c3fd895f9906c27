//! Canonical fields ↔ Dataverse columns: one table per object, used for writing, reading and
//! reading back, so every direction agrees by construction.
//!
//! Not mapped: `industry` (account `industrycode` is a choice column holding option numbers, not
//! text) and, on writes, `created_at` / `updated_at` (system columns). Consent: an opt-out is
//! written as both `donotemail` and `donotbulkemail`; nothing else about consent is ever written;
//! a record reads as opted out if either flag is set.

use std::sync::LazyLock;

use ferry_core::model::FieldType;
use ferry_core::{ConnectorResult, FieldMap, ObjectType, Record, RecordRejection, Value, field};
use serde_json::{Map, Value as Json};

use crate::VENDOR;

/// Companies ↔ account: `(canonical, column)`.
pub const ACCOUNT_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "name"),
    (field::DOMAIN, "websiteurl"),
    (field::PHONE, "telephone1"),
    (field::EMPLOYEE_COUNT, "numberofemployees"),
    (field::ANNUAL_REVENUE, "revenue"),
    (field::STREET, "address1_line1"),
    (field::CITY, "address1_city"),
    (field::STATE, "address1_stateorprovince"),
    (field::POSTAL_CODE, "address1_postalcode"),
    (field::COUNTRY, "address1_country"),
];

/// Contacts ↔ contact. The opt-out and the company are mapped separately.
pub const CONTACT_FIELDS: &[(&str, &str)] = &[
    (field::EMAIL, "emailaddress1"),
    (field::FIRST_NAME, "firstname"),
    (field::LAST_NAME, "lastname"),
    (field::PHONE, "telephone1"),
    (field::MOBILE_PHONE, "mobilephone"),
    (field::JOB_TITLE, "jobtitle"),
    (field::STREET, "address1_line1"),
    (field::CITY, "address1_city"),
    (field::STATE, "address1_stateorprovince"),
    (field::POSTAL_CODE, "address1_postalcode"),
    (field::COUNTRY, "address1_country"),
];

/// The two consent columns an opt-out sets, and reads from.
pub const OPT_OUT_COLUMNS: [&str; 2] = ["donotemail", "donotbulkemail"];
/// The contact's navigation property to its parent account.
pub const COMPANY_NAV: &str = "parentcustomerid_account";

/// The system columns a source reads for timestamps.
const TIMESTAMPS: [(&str, &str); 2] = [
    (field::CREATED_AT, "createdon"),
    (field::UPDATED_AT, "modifiedon"),
];

/// A reference a table holds: a single-valued navigation property, written as
/// `<navigation>@odata.bind: "/<target set>(<source-id column>='…')"` (Dataverse finds the
/// target by its alternate key, so no id map is needed) and expanded on reads.
#[derive(Debug)]
pub struct DataverseReference {
    /// The canonical field holding the target's source id, e.g. a contact's `company`.
    pub canonical: &'static str,
    /// The lookup column, as Dataverse's messages may name it (`parentcustomerid`).
    pub lookup: &'static str,
    /// The navigation property bound and expanded (`parentcustomerid_account`).
    pub navigation: &'static str,
    /// The object the reference points at.
    pub target: ObjectType,
}

/// An opt-out held in consent columns of the record itself (no email address needed).
#[derive(Debug)]
pub struct DataverseOptOut {
    /// The canonical field (`email_opt_out`).
    pub canonical: &'static str,
    /// The columns a `true` sets, every one; either set reads as opted out. Nothing else about
    /// consent is ever written: a `false` never becomes consent, and an opt-out already recorded
    /// is never cleared.
    pub columns: &'static [&'static str],
}

/// Dataverse's side of one object ferry moves: one row of [`OBJECTS`].
#[derive(Debug)]
pub struct DataverseObject {
    /// The canonical object.
    pub object: ObjectType,
    /// The table's logical name (`contact`): metadata paths, messages.
    pub logical: &'static str,
    /// The entity set (`contacts`): the path of reads and writes.
    pub set: &'static str,
    /// The primary key column (`contactid`).
    pub id: &'static str,
    /// The standard field table: `(canonical, column)`.
    pub fields: &'static [(&'static str, &'static str)],
    /// The references it holds, each bound by its target's alternate key.
    pub references: &'static [DataverseReference],
    /// Its consent columns, if it carries an opt-out.
    pub opt_out: Option<DataverseOptOut>,
    /// The canonical fields Dataverse refuses a record without. None: Dataverse does not
    /// enforce "business required" columns (a contact's last name) through the Web API.
    pub required: &'static [&'static str],
}

/// Dataverse's side of every object ferry moves: read top to bottom to see what maps where.
pub static OBJECTS: &[DataverseObject] = &[
    DataverseObject {
        object: ObjectType::COMPANIES,
        logical: "account",
        set: "accounts",
        id: "accountid",
        fields: ACCOUNT_FIELDS,
        references: &[],
        opt_out: None,
        required: &[],
    },
    DataverseObject {
        object: ObjectType::CONTACTS,
        logical: "contact",
        set: "contacts",
        id: "contactid",
        fields: CONTACT_FIELDS,
        references: &[DataverseReference {
            canonical: field::COMPANY,
            lookup: "parentcustomerid",
            navigation: COMPANY_NAV,
            target: ObjectType::COMPANIES,
        }],
        opt_out: Some(DataverseOptOut {
            canonical: field::EMAIL_OPT_OUT,
            columns: &OPT_OUT_COLUMNS,
        }),
        required: &[],
    },
];

/// The row of `object`, or the refusal of an object this connector does not move (or whose
/// references point at one it does not move).
pub fn binding(object: ObjectType) -> ConnectorResult<&'static DataverseObject> {
    let table = ferry_core::kit::row_of(VENDOR, OBJECTS, object)?;
    for reference in table.references {
        ferry_core::kit::row_of(VENDOR, OBJECTS, reference.target)?;
    }
    Ok(table)
}

impl ferry_core::kit::ObjectRow for DataverseObject {
    fn object(&self) -> ObjectType {
        self.object
    }
}

/// The objects this connector moves, in table order (the registry's list).
pub fn objects() -> &'static [ObjectType] {
    static LIST: LazyLock<Vec<ObjectType>> =
        LazyLock::new(|| OBJECTS.iter().map(|t| t.object).collect());
    &LIST
}

impl DataverseObject {
    /// The standard field map: its plain columns (the operator's mapped fields are added on
    /// top, see [`ferry_core::FieldMaps`]).
    pub fn standard(&self) -> FieldMap {
        FieldMap::standard(self.object, self.fields)
    }
}

impl DataverseReference {
    /// The row of the target ([`binding`] checked it exists).
    fn target(&self) -> Option<&'static DataverseObject> {
        ferry_core::kit::row_of(VENDOR, OBJECTS, self.target).ok()
    }
}

/// The canonical fields the sink writes and reads back through `map`: exactly what
/// round-trips.
pub fn stored_fields(table: &DataverseObject, map: &FieldMap) -> Vec<String> {
    let mut names = map.canonical_names();
    names.extend(table.opt_out.iter().map(|o| o.canonical.to_owned()));
    names.extend(table.references.iter().map(|r| r.canonical.to_owned()));
    names
}

/// Every column name `map` and the compound fields touch on `table` (for `$select` and for
/// naming columns in rejections).
pub fn columns<'a>(table: &DataverseObject, map: &'a FieldMap) -> Vec<&'a str> {
    let mut names = map.vendor_names();
    if let Some(opt_out) = &table.opt_out {
        names.extend(opt_out.columns);
    }
    names
}

/// The canonical field a column maps to through `map`, for naming it beside the column.
pub fn canonical_of(table: &DataverseObject, map: &FieldMap, column: &str) -> Option<String> {
    if let Some(opt_out) = table
        .opt_out
        .as_ref()
        .filter(|o| o.columns.contains(&column))
    {
        return Some(opt_out.canonical.to_owned());
    }
    let reference = table
        .references
        .iter()
        .find(|r| column == r.navigation || column == r.lookup);
    if let Some(reference) = reference {
        return Some(reference.canonical.to_owned());
    }
    map.by_vendor(column).map(|b| b.canonical.to_string())
}

/// `$select` for a read through `map`: the mapped columns, the primary key, the timestamps
/// (sources) or the source-id column (read-back).
pub fn select(table: &DataverseObject, map: &FieldMap, extra: &[&str]) -> String {
    let mut cols = columns(table, map);
    cols.push(table.id);
    cols.extend_from_slice(extra);
    cols.join(",")
}

/// The column of a reference's target that a read selects, by `identity`: the target's
/// primary key (a source reads the target's id) or its source-id column (a read-back).
fn target_column<'a>(reference: &DataverseReference, identity: Identity<'a>) -> Option<&'a str> {
    match identity {
        Identity::Source => reference.target().map(|t| t.id),
        Identity::ReadBack(column) => Some(column),
    }
}

/// `$expand` of `table`'s references (a contact's parent account), each selecting the
/// target's column for `identity`; `None` without references.
pub fn expand(table: &DataverseObject, identity: Identity<'_>) -> Option<String> {
    let parts: Vec<String> = table
        .references
        .iter()
        .filter_map(|r| {
            let column = target_column(r, identity)?;
            Some(format!("{}($select={column})", r.navigation))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// A record's refusal for a value that cannot be written (names the field, never the value).
fn unwritable(record: &Record, canonical: &str, expected: &str) -> RecordRejection {
    RecordRejection {
        source_id: record.source_id.clone(),
        code: "INVALID_VALUE".into(),
        reason: format!("{canonical} is not {expected}"),
    }
}

/// The JSON a column of `binding` takes for `value`: a picklist's label becomes its option
/// value (a number), refused with `NO_SUCH_OPTION` when the choice has no such label.
fn column_value(
    record: &Record,
    binding: &ferry_core::FieldBinding,
    value: &Value,
) -> Result<Json, RecordRejection> {
    if binding.is_picklist() {
        let Some(label) = value.as_text() else {
            return Err(unwritable(record, &binding.canonical, "a choice label"));
        };
        let option = binding.write_option(VENDOR, &record.source_id, label)?;
        // Dataverse option values are whole numbers.
        return Ok(option
            .parse::<i64>()
            .map_or_else(|_| Json::String(option.to_owned()), Json::from));
    }
    value
        .to_json(binding.ty)
        .map_err(|expected| unwritable(record, &binding.canonical, expected))
}

/// Characters alternate-key values must not contain for `GET`/`PATCH` by key to work
/// (documented: `/ < > * % & : \ ? +`).
pub const UNSUPPORTED_KEY_CHARS: &[char] = &['/', '<', '>', '*', '%', '&', ':', '\\', '?', '+'];

/// An OData string literal: quoted, inner quotes doubled.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `({column}='value')` for a URL path, percent-encoded; `None` if the value has a character
/// alternate keys do not support.
pub fn key_segment(column: &str, value: &str) -> Option<String> {
    if value.is_empty() || value.contains(UNSUPPORTED_KEY_CHARS) {
        return None;
    }
    Some(format!(
        "({column}='{}')",
        urlencoding::encode(&value.replace('\'', "''"))
    ))
}

/// The JSON body of an upsert of `record` (a row of `table`) through `map`: every mapped
/// column (absent ones as `null`, which clears them on update; a choice as its option value),
/// the opt-out only when it is `true`, and each reference (a contact's company) bound by its
/// target's alternate key (or unbound). The source id is in the URL, never in the body. A value
/// that cannot be written refuses the record, naming the field.
pub fn to_dataverse(
    table: &DataverseObject,
    record: &Record,
    source_id_column: &str,
    map: &FieldMap,
) -> Result<Map<String, Json>, RecordRejection> {
    let mut out = Map::new();
    for b in map.iter() {
        let value = match record.get(&b.canonical) {
            None => Json::Null,
            Some(v) => column_value(record, b, v)?,
        };
        out.insert(b.vendor.to_string(), value);
    }
    if let Some(opt_out) = &table.opt_out {
        let opted_out = match record.get(opt_out.canonical) {
            None => false,
            Some(v) => match v.to_json(FieldType::Bool) {
                Ok(Json::Bool(b)) => b,
                Ok(_) => false,
                Err(expected) => {
                    return Err(unwritable(record, opt_out.canonical, expected));
                }
            },
        };
        // Only an opt-out is written: a `false` never becomes consent, and an opt-out already
        // recorded in Dataverse is never cleared.
        if opted_out {
            for column in opt_out.columns {
                out.insert((*column).into(), Json::Bool(true));
            }
        }
    }
    for reference in table.references {
        let Some(target) = reference.target() else {
            continue;
        };
        let bind = format!("{}@odata.bind", reference.navigation);
        match record.text(reference.canonical).filter(|s| !s.is_empty()) {
            Some(source_id) => {
                if source_id.contains(UNSUPPORTED_KEY_CHARS) {
                    return Err(unwritable(
                        record,
                        reference.canonical,
                        "a source id without / < > * % & : \\ ? + (alternate keys cannot hold them)",
                    ));
                }
                out.insert(
                    bind,
                    Json::String(format!(
                        "/{}({source_id_column}={})",
                        target.set,
                        literal(source_id)
                    )),
                );
            }
            None => {
                out.insert(bind, Json::Null);
            }
        }
    }
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

/// Where a read record's identity comes from.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    /// A source read: the primary key is the source id, a reference is its target's primary key
    /// (the company is the account's id), and timestamps are read.
    Source,
    /// A read-back: the source id is in this column, and so is each reference's target's.
    ReadBack(&'a str),
}

/// The canonical record of a Dataverse row, or `None` when it has no identity. Values that do
/// not fit their canonical type are reported by field (never by value).
pub fn from_dataverse(
    table: &DataverseObject,
    row: &Map<String, Json>,
    identity: Identity<'_>,
    map: &FieldMap,
) -> Option<Result<Record, RecordRejection>> {
    let id_column = match identity {
        Identity::Source => table.id,
        Identity::ReadBack(column) => column,
    };
    let source_id = row
        .get(id_column)
        .and_then(json_text)
        .filter(|s| !s.is_empty())?;
    let mut record = Record::new(table.object, source_id);
    let mut bad: Vec<String> = Vec::new();
    for b in map.iter() {
        if let Some(raw) = row.get(b.vendor.as_ref()).and_then(json_text) {
            // A choice's option value reads as its label.
            match b.read(&raw) {
                Ok(Some(value)) => {
                    record.fields.insert(b.canonical.clone(), value);
                }
                Ok(None) => {}
                Err(_) => bad.push(b.canonical.to_string()),
            }
        }
    }
    let mut set = |record: &mut Record, canonical: &'static str, raw: &str| {
        if let Err(e) = record.set_parsed(canonical, raw) {
            bad.push(e.field.to_owned());
        }
    };
    if let Some(opt_out) = &table.opt_out {
        let opted_out = opt_out
            .columns
            .iter()
            .any(|c| row.get(*c).and_then(Json::as_bool) == Some(true));
        if opted_out {
            record.set(opt_out.canonical, Value::Bool(true));
        }
    }
    for reference in table.references {
        let Some(column) = target_column(reference, identity) else {
            continue;
        };
        if let Some(target) = row
            .get(reference.navigation)
            .and_then(|a| a.get(column))
            .and_then(json_text)
            .filter(|s| !s.is_empty())
        {
            record.set(reference.canonical, Value::Reference(target));
        }
    }
    if let Identity::Source = identity {
        for (canonical, column) in TIMESTAMPS {
            if let Some(raw) = row.get(column).and_then(json_text) {
                set(&mut record, canonical, &raw);
            }
        }
    }
    if bad.is_empty() {
        Some(Ok(record))
    } else {
        Some(Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: "INVALID_VALUE".into(),
            reason: format!("unreadable value in field {}", bad.join(", ")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(object: ObjectType) -> &'static DataverseObject {
        binding(object).unwrap()
    }

    fn standard(object: ObjectType) -> FieldMap {
        table(object).standard()
    }

    #[test]
    fn every_canonical_field_but_industry_and_timestamps_is_stored() {
        for object in ObjectType::DEFAULT_RUN {
            let stored = stored_fields(table(object), &standard(object));
            for spec in object.fields() {
                // The owner is bound with the connector step of #14 (users and owners).
                let left_out = [
                    field::CREATED_AT,
                    field::UPDATED_AT,
                    field::INDUSTRY,
                    field::OWNER,
                ];
                assert_eq!(
                    stored.contains(&spec.name.to_owned()),
                    !left_out.contains(&spec.name),
                    "{object} {}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn opt_out_writes_both_flags_and_false_writes_nothing() {
        let mut r = Record::new(ObjectType::CONTACTS, "p-1");
        r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        r.set(field::COMPANY, Value::Reference("o'co".into()));
        let body = to_dataverse(
            table(ObjectType::CONTACTS),
            &r,
            "ferry_sourceid",
            &standard(ObjectType::CONTACTS),
        )
        .unwrap();
        assert!(body.get("donotemail").is_none() && body.get("donotbulkemail").is_none());
        assert_eq!(
            body["parentcustomerid_account@odata.bind"],
            "/accounts(ferry_sourceid='o''co')"
        );
        assert_eq!(body["emailaddress1"], Json::Null);
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        let body = to_dataverse(
            table(ObjectType::CONTACTS),
            &r,
            "ferry_sourceid",
            &standard(ObjectType::CONTACTS),
        )
        .unwrap();
        assert_eq!(
            (&body["donotemail"], &body["donotbulkemail"]),
            (&json!(true), &json!(true))
        );
    }

    #[test]
    fn either_flag_reads_as_opted_out_and_read_back_uses_the_source_id_column() {
        let row = json!({
            "contactid": "c0c00000-0000-4000-8000-000000000001",
            "ferry_sourceid": "p-1",
            "lastname": "Gilmore",
            "donotemail": false,
            "donotbulkemail": true,
            "parentcustomerid_account": {"accountid": "a0c00000-0000-4000-8000-000000000001", "ferry_sourceid": "co-1"},
            "modifiedon": "2024-01-02T03:04:05Z",
        });
        let row = row.as_object().unwrap();
        let back = from_dataverse(
            table(ObjectType::CONTACTS),
            row,
            Identity::ReadBack("ferry_sourceid"),
            &standard(ObjectType::CONTACTS),
        )
        .unwrap()
        .unwrap();
        assert_eq!(back.source_id, "p-1");
        assert_eq!(back.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert_eq!(back.text(field::COMPANY), Some("co-1"));
        assert!(back.get(field::UPDATED_AT).is_none());
        let read = from_dataverse(
            table(ObjectType::CONTACTS),
            row,
            Identity::Source,
            &standard(ObjectType::CONTACTS),
        )
        .unwrap()
        .unwrap();
        assert_eq!(read.source_id, "c0c00000-0000-4000-8000-000000000001");
        assert_eq!(
            read.text(field::COMPANY),
            Some("a0c00000-0000-4000-8000-000000000001")
        );
        assert!(read.get(field::UPDATED_AT).is_some());
    }

    #[test]
    fn a_mapped_choice_overrides_the_standard_table_and_travels_as_its_label() {
        let industry = ferry_core::FieldBinding {
            options: vec![ferry_core::fields::PicklistOption {
                value: "1".into(),
                label: "Accounting".into(),
            }],
            ..ferry_core::FieldBinding::new(field::INDUSTRY, "industrycode", FieldType::Text)
        };
        let map = standard(ObjectType::COMPANIES).with(&[industry]);
        assert!(
            stored_fields(table(ObjectType::COMPANIES), &map).contains(&field::INDUSTRY.to_owned())
        );
        let mut r = Record::new(ObjectType::COMPANIES, "co-1");
        r.set(field::NAME, Value::Text("Acme".into()));
        r.set(field::INDUSTRY, Value::Text(" accounting ".into()));
        let body = to_dataverse(table(ObjectType::COMPANIES), &r, "ferry_sourceid", &map).unwrap();
        assert_eq!(body["industrycode"], json!(1));
        let row = json!({"ferry_sourceid": "co-1", "name": "Acme", "industrycode": 1});
        let back = from_dataverse(
            table(ObjectType::COMPANIES),
            row.as_object().unwrap(),
            Identity::ReadBack("ferry_sourceid"),
            &map,
        )
        .unwrap()
        .unwrap();
        assert_eq!(back.text(field::INDUSTRY), Some("Accounting"));
        r.set(field::INDUSTRY, Value::Text("Banking".into()));
        let refused =
            to_dataverse(table(ObjectType::COMPANIES), &r, "ferry_sourceid", &map).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(refused.reason.contains("industrycode") && !refused.reason.contains("Banking"));
    }

    #[test]
    fn key_segments_escape_quotes_and_refuse_unsupported_characters() {
        assert_eq!(
            key_segment("ferry_sourceid", "o'brien 5").as_deref(),
            Some("(ferry_sourceid='o%27%27brien%205')")
        );
        assert_eq!(key_segment("ferry_sourceid", "a/b"), None);
        assert_eq!(key_segment("ferry_sourceid", ""), None);
    }

    #[test]
    fn every_object_has_exactly_one_row_and_references_point_at_rows() {
        for object in ObjectType::DEFAULT_RUN {
            assert_eq!(
                OBJECTS.iter().filter(|t| t.object == object).count(),
                1,
                "{object}"
            );
            assert_eq!(binding(object).unwrap().object, object);
        }
        assert_eq!(objects(), ObjectType::DEFAULT_RUN);
        for t in OBJECTS {
            for reference in t.references {
                assert!(
                    binding(reference.target).is_ok(),
                    "{}",
                    reference.navigation
                );
                assert!(t.object.field(reference.canonical).is_some());
            }
        }
        assert_eq!(
            expand(table(ObjectType::CONTACTS), Identity::Source).as_deref(),
            Some("parentcustomerid_account($select=accountid)")
        );
        assert_eq!(expand(table(ObjectType::COMPANIES), Identity::Source), None);
    }
}
