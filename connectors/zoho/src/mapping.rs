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

/// Deals ↔ Deals. Pipeline and stage, the owner, the company and the contacts are bound apart
/// (the rows' `stage`, [`OWNER`], `references` and `links`).
pub const DEAL_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "Deal_Name"),
    (field::AMOUNT, "Amount"),
    (field::CURRENCY, "Currency"),
    (field::CLOSE_DATE, "Closing_Date"),
];

/// Notes ↔ Notes: the body is `Note_Content`, plain text (a sink writes the plain form of a
/// rich-text body). The parent and the owner are bound apart.
pub const NOTE_FIELDS: &[(&str, &str)] = &[(field::BODY, "Note_Content")];

/// System timestamps: read from a source, never written (Zoho sets them).
pub const SYSTEM_FIELDS: &[(&str, &str)] = &[
    (field::CREATED_AT, "Created_Time"),
    (field::UPDATED_AT, "Modified_Time"),
];

/// The owner lookup every module ferry moves holds (`ownerlookup`): written `{"id"}`, read
/// `{"id", "name", "email"}` (COQL: `{"id"}`).
pub const OWNER: &str = "Owner";

/// A deal's pipeline and stage picklists, both holding display values.
pub const PIPELINE: &str = "Pipeline";
/// See [`PIPELINE`].
pub const STAGE: &str = "Stage";

/// A deal's one-contact lookup; its other contacts are contact roles.
pub const CONTACT_NAME: &str = "Contact_Name";
/// A note's parent lookup (`{"module": {"api_name"}, "id"}`) and its module beside it.
pub const PARENT_ID: &str = "Parent_Id";
/// See [`PARENT_ID`]: the parent's module as a read answers it.
pub const SE_MODULE: &str = "$se_module";

/// Links a row holds outside its lookups: many contacts per deal, or one parent per note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A deal's `contacts`: its contact roles (`/Deals/{id}/Contact_Roles`) and its
    /// `Contact_Name` lookup, read as one set; written as the lookup (the first contact) and a
    /// role for every contact.
    ContactRoles,
    /// A note's `parents`: its one `Parent_Id` (a deal, contact or account).
    NoteParent,
}

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
    /// Whether it holds a pipeline and stage ([`PIPELINE`], [`STAGE`]) as `stage`.
    pub staged: bool,
    /// The links it holds outside its lookups, if any.
    pub links: Option<Links>,
    /// Read-only fields a source reads besides [`SYSTEM_FIELDS`] (a note's time).
    pub read_only: &'static [(&'static str, &'static str)],
    /// Whether the module has `POST /{module}/upsert` (Notes has not).
    pub upsert: bool,
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
        staged: false,
        links: None,
        read_only: &[],
        upsert: true,
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
        staged: false,
        links: None,
        read_only: &[],
        upsert: true,
    },
    ZohoObject {
        object: ObjectType::DEALS,
        module: "Deals",
        record: "Deal",
        fields: DEAL_FIELDS,
        references: &[ZohoReference {
            canonical: field::COMPANY,
            lookup: "Account_Name",
            target: ObjectType::COMPANIES,
        }],
        required: &[field::NAME],
        opt_out: None,
        staged: true,
        links: Some(Links::ContactRoles),
        read_only: &[],
        upsert: true,
    },
    ZohoObject {
        object: ObjectType::NOTES,
        module: "Notes",
        record: "Note",
        fields: NOTE_FIELDS,
        references: &[],
        required: &[field::BODY],
        opt_out: None,
        staged: false,
        links: Some(Links::NoteParent),
        // Zoho stamps a note written through the API with the time of the write.
        read_only: &[(field::TIMESTAMP, "Created_Time")],
        upsert: false,
    },
];

/// The canonical object of a Zoho module a note's parent may be in.
pub fn object_of_module(module: &str) -> Option<ObjectType> {
    OBJECTS
        .iter()
        .find(|row| row.module == module && row.object != ObjectType::NOTES)
        .map(|row| row.object)
}

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

impl ZohoObject {
    /// The standard field table as a field map (written, read back and read as a source).
    pub fn standard(&self) -> FieldMap {
        FieldMap::standard(self.object, self.fields)
    }

    /// The reference whose lookup is the Zoho field `zoho`, if any.
    pub fn reference(&self, zoho: &str) -> Option<&'static ZohoReference> {
        self.references.iter().find(|r| r.lookup == zoho)
    }

    /// The Zoho fields bound outside the field table (owner, pipeline and stage, the lookups
    /// that carry links), with the canonical field each carries.
    pub fn bound_apart(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = vec![(OWNER, field::OWNER)];
        if self.staged {
            out.push((PIPELINE, field::STAGE));
            out.push((STAGE, field::STAGE));
        }
        match self.links {
            Some(Links::ContactRoles) => out.push((CONTACT_NAME, field::CONTACTS)),
            Some(Links::NoteParent) => out.push((PARENT_ID, field::PARENTS)),
            None => {}
        }
        out
    }

    /// The objects its references and links point at.
    pub fn link_targets(&self) -> Vec<ObjectType> {
        let mut out: Vec<ObjectType> = self.references.iter().map(|r| r.target).collect();
        match self.links {
            Some(Links::ContactRoles) => out.push(ObjectType::CONTACTS),
            Some(Links::NoteParent) => out.extend([
                ObjectType::DEALS,
                ObjectType::CONTACTS,
                ObjectType::COMPANIES,
            ]),
            None => {}
        }
        out
    }

    /// The canonical fields the sink stores outside the field table: the references, the owner,
    /// the stage and the links.
    fn stored_apart(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.references.iter().map(|r| r.canonical).collect();
        for (_, canonical) in self.bound_apart() {
            if !names.contains(&canonical) {
                names.push(canonical);
            }
        }
        names
    }
}

/// The Zoho fields a source reads for `row` (the `fields` parameter and COQL columns).
pub fn read_fields(map: &FieldMap, row: &ZohoObject) -> Vec<String> {
    let mut names: Vec<String> = map.vendor_names().into_iter().map(str::to_owned).collect();
    for reference in row.references {
        names.push(reference.lookup.to_owned());
    }
    for (zoho, _) in row.bound_apart() {
        names.push(zoho.to_owned());
    }
    for (_, zoho) in SYSTEM_FIELDS.iter().chain(row.read_only) {
        if !names.iter().any(|n| n == zoho) {
            names.push((*zoho).to_owned());
        }
    }
    names
}

/// The canonical fields the sink writes and reads back. A note's `timestamp` is not among
/// them: `Created_Time` is read-only, so Zoho stamps a written note with the time of the write.
pub fn stored_fields(map: &FieldMap, row: &ZohoObject) -> Vec<String> {
    let mut names = map.canonical_names();
    for canonical in row.stored_apart() {
        names.push(canonical.to_owned());
    }
    names
}

/// The canonical name of a Zoho field in `map` (or a field bound apart), for messages.
pub fn canonical_of(map: &FieldMap, row: &ZohoObject, zoho: &str) -> Option<String> {
    map.by_vendor(zoho)
        .map(|b| b.canonical.to_string())
        .or_else(|| row.reference(zoho).map(|r| r.canonical.to_owned()))
        .or_else(|| {
            row.bound_apart()
                .into_iter()
                .find(|(z, _)| *z == zoho)
                .map(|(_, c)| c.to_owned())
        })
}

/// The user id of an owner lookup (`{"id": …}`), if set.
fn owner_of(z: &Map<String, Json>) -> Option<String> {
    z.get(OWNER)
        .and_then(|o| o.get("id"))
        .and_then(json_text)
        .filter(|s| !s.is_empty())
}

/// A picklist value as records hold it: the display value, or `{"name"}` /
/// `{"display_value"}` (Zoho leaves the shape of `Pipeline` on records undocumented).
fn picklist_of(z: &Map<String, Json>, name: &str) -> Option<String> {
    let v = z.get(name)?;
    v.as_str()
        .or_else(|| v.get("name").and_then(Json::as_str))
        .or_else(|| v.get("display_value").and_then(Json::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A deal's stage: its pipeline's and stage's display values (the ids `pipelines()` reports).
fn stage_of(z: &Map<String, Json>) -> Option<Value> {
    Some(Value::stage(
        picklist_of(z, PIPELINE)?,
        picklist_of(z, STAGE)?,
    ))
}

/// A note's parent as a link to its Zoho record: `Parent_Id {module {api_name}, id}`, or the
/// flat id with `$se_module` beside it. `None` without one, or in a module ferry does not move.
pub fn parent_of(z: &Map<String, Json>) -> Option<(ObjectType, String)> {
    let parent = z.get(PARENT_ID)?;
    let id = match parent {
        Json::Object(_) => parent.get("id").and_then(json_text),
        other => json_text(other),
    }
    .filter(|s| !s.is_empty())?;
    let module = parent
        .get("module")
        .and_then(|m| m.get("api_name").or(Some(m)))
        .and_then(Json::as_str)
        .or_else(|| z.get(SE_MODULE).and_then(Json::as_str))?;
    Some((object_of_module(module)?, id))
}

/// The Zoho id of a deal's `Contact_Name` lookup, if set.
pub fn contact_name_of(z: &Map<String, Json>) -> Option<String> {
    lookup_id(z, CONTACT_NAME)
}

/// The Zoho id of lookup `name` of `z` (`{"name", "id"}` as a read answers it), if set.
pub fn lookup_id(z: &Map<String, Json>, name: &str) -> Option<String> {
    z.get(name)
        .and_then(|c| c.get("id"))
        .and_then(json_text)
        .filter(|s| !s.is_empty())
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

/// Reads the owner and the stage of `z`, as a source and a read-back both hold them.
fn read_apart(record: &mut Record, row: &ZohoObject, z: &Map<String, Json>) {
    if let Some(owner) = owner_of(z) {
        record.set(field::OWNER, Value::Text(owner));
    }
    if row.staged
        && let Some(stage) = stage_of(z)
    {
        record.set(field::STAGE, stage);
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
    let system: Vec<(&'static str, &'static str)> =
        SYSTEM_FIELDS.iter().chain(row.read_only).copied().collect();
    let system = FieldMap::standard(row.object, &system);
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
    read_apart(&mut record, row, z);
    if row.links == Some(Links::NoteParent)
        && let Some((object, parent)) = parent_of(z)
    {
        record.set(
            field::PARENTS,
            Value::Links(vec![ferry_core::model::Link { object, id: parent }]),
        );
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
    text_flags: &std::collections::HashSet<String>,
) -> Result<Map<String, Json>, RecordRejection> {
    let mut out = Map::new();
    for b in map.iter() {
        if ferry_core::consent::leave_out(record, &b.canonical) {
            // Only a true opt-out is a fact to carry, and a source without a legal basis has
            // withdrawn none: the field is left out, so Zoho keeps what it holds on an update
            // (never cleared) and creates the record without it.
            continue;
        }
        let value = match record.get(&b.canonical) {
            None => Json::Null,
            Some(v) if b.is_picklist() => match v.as_text() {
                Some(label) => Json::String(
                    b.write_option(crate::VENDOR, &record.source_id, label)?
                        .to_owned(),
                ),
                None => return Err(invalid(record, b, "a picklist label")),
            },
            // Zoho keeps a note's content as plain text: the plain form of a rich body.
            Some(Value::Text(body)) if b.ty == FieldType::RichText => {
                Json::String(ferry_core::richtext::to_plain(body))
            }
            Some(v) => zoho_json(b.ty, v).map_err(|expected| invalid(record, b, expected))?,
        };
        let opt_out = ferry_core::model::opt_out(&b.canonical).is_some();
        if opt_out && value == Json::Bool(true) && text_flags.contains(b.vendor.as_ref()) {
            // An opt-out mapped into a text field: Zoho refuses a JSON `true` there.
            out.insert(b.vendor.to_string(), Json::String("true".into()));
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
    // No owner leaves `Owner` out: Zoho gives a new record the calling user and keeps an
    // existing record's owner (the engine's `unmatched = "unset"`).
    if let Some(owner) = record.text(field::OWNER).filter(|o| !o.is_empty()) {
        out.insert(OWNER.into(), serde_json::json!({ "id": owner }));
    }
    if row.staged
        && let Some(Value::Stage(id)) = record.get(field::STAGE)
    {
        out.insert(PIPELINE.into(), Json::String(id.pipeline.clone()));
        out.insert(STAGE.into(), Json::String(id.stage.clone()));
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
    read_apart(&mut record, row, z);
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

    /// `to_zoho` with the test source-id field `Src` and no opt-out mapped into a text field.
    fn to_zoho_plain(
        map: &FieldMap,
        row: &ZohoObject,
        record: &Record,
        targets: &[Option<&str>],
    ) -> Result<Map<String, Json>, RecordRejection> {
        to_zoho(map, row, record, "Src", targets, &Default::default())
    }

    #[test]
    fn every_canonical_field_but_system_timestamps_is_stored() {
        for object in ObjectType::ALL {
            let stored = stored_fields(&standard(object), row(object));
            for spec in object.fields() {
                // Zoho sets its timestamps (a note's time too: `Created_Time` is read-only), and
                // a deal's outcome is its stage: Zoho keeps no status.
                let system = spec.name == field::CREATED_AT
                    || spec.name == field::UPDATED_AT
                    || spec.name == field::STATUS
                    || spec.name == field::TIMESTAMP;
                // Zoho keeps only the email opt-out as a field of the record; the legal basis
                // and the consent date live in the GDPR consent record, stored only where the
                // org has GDPR on (`crate::gdpr`, the sink's `capability`).
                let consent = ferry_core::model::opt_out(spec.name)
                    .is_some_and(|o| o.field != field::EMAIL_OPT_OUT)
                    || spec.name == field::LEGAL_BASIS
                    || spec.name == field::CONSENT_DATE;
                assert_eq!(
                    stored.contains(&spec.name.to_owned()),
                    !system && !consent,
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
        let z = to_zoho_plain(&contacts, row(ObjectType::CONTACTS), &r, &[Some("4876")]).unwrap();
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
        let z = to_zoho_plain(&companies, row(ObjectType::COMPANIES), &c, &[]).unwrap();
        assert_eq!(z["Employees"], Json::from(250));
        assert_eq!(z["Annual_Revenue"], serde_json::json!(1000.5));
        assert_eq!(z["Src"], Json::String("co-9".into()));
        c.set(field::EMPLOYEE_COUNT, Value::Text("lots".into()));
        let refused = to_zoho_plain(&companies, row(ObjectType::COMPANIES), &c, &[]).unwrap_err();
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
            let z = to_zoho_plain(
                &standard(ObjectType::CONTACTS),
                row(ObjectType::CONTACTS),
                &r,
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
        let out = to_zoho_plain(&map, row(ObjectType::COMPANIES), &w, &[]).unwrap();
        assert_eq!(out["Tier"], Json::String("T1".into()));
        assert_eq!(out["Seats"], Json::from(12));
        assert_eq!(
            stored_fields(&map, row(ObjectType::COMPANIES))
                .iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>(),
            ["owner", "seats", "tier"]
        );
        w.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_zoho_plain(&map, row(ObjectType::COMPANIES), &w, &[]).unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(!refused.reason.contains("Platinum"));
        w.fields.insert("tier".into(), Value::Integer(3));
        assert_eq!(
            to_zoho_plain(&map, row(ObjectType::COMPANIES), &w, &[])
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
            to_zoho_plain(&map, row(ObjectType::COMPANIES), &w, &[]).unwrap()["Renewal_At"],
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
    fn deals_carry_stage_owner_date_and_company_both_ways() {
        let z: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "91", "Deal_Name": "Renewal", "Amount": 1200.5, "Currency": "EUR",
            "Closing_Date": "2024-02-29", "Pipeline": {"name": "Renewals", "id": "7"},
            "Stage": "Closed Won", "Owner": {"name": "Ana", "id": "555", "email": "a@x"},
            "Account_Name": {"name": "Acme", "id": "77"}, "Contact_Name": {"id": "78"}
        }))
        .unwrap();
        let deals = row(ObjectType::DEALS);
        let r = from_zoho(&standard(ObjectType::DEALS), deals, &z).unwrap();
        assert_eq!(r.get(field::CLOSE_DATE), Some(&Value::Date(19_782)));
        assert_eq!(
            r.get(field::STAGE),
            Some(&Value::stage("Renewals", "Closed Won"))
        );
        assert_eq!(r.get(field::OWNER), Some(&Value::Text("555".into())));
        assert_eq!(r.get(field::COMPANY), Some(&Value::Reference("77".into())));
        assert_eq!(contact_name_of(&z).as_deref(), Some("78"));
        assert_eq!(r.get(field::STATUS), None, "Zoho keeps no status");

        let out = to_zoho_plain(&standard(ObjectType::DEALS), deals, &r, &[Some("4001")]).unwrap();
        assert_eq!(out["Pipeline"], "Renewals");
        assert_eq!(out["Stage"], "Closed Won");
        assert_eq!(out["Closing_Date"], "2024-02-29");
        assert_eq!(out["Owner"], serde_json::json!({"id": "555"}));
        assert_eq!(out["Account_Name"], serde_json::json!({"id": "4001"}));
        assert_eq!(out["Src"], "91");

        let mut unowned = r.clone();
        unowned.fields.remove(field::OWNER);
        unowned.fields.remove(field::STAGE);
        let out = to_zoho_plain(&standard(ObjectType::DEALS), deals, &unowned, &[None]).unwrap();
        assert!(
            out.get("Owner").is_none() && out.get("Stage").is_none(),
            "no owner keeps Zoho's (the calling user's on a new record)"
        );

        let mut back = z.clone();
        back.insert("Src".into(), Json::String("91".into()));
        back.insert("Account_Name.Src".into(), Json::String("co-77".into()));
        back.insert("Owner".into(), serde_json::json!({"id": "555"}));
        let read = from_read_back(&standard(ObjectType::DEALS), deals, &back, "Src").unwrap();
        assert_eq!(read.get(field::STAGE), r.get(field::STAGE));
        assert_eq!(read.get(field::OWNER), r.get(field::OWNER));
        assert_eq!(
            read.get(field::COMPANY),
            Some(&Value::Reference("co-77".into()))
        );
    }

    #[test]
    fn fields_bound_apart_cannot_be_mapped_again() {
        for (object, zoho) in [
            (ObjectType::COMPANIES, "Owner"),
            (ObjectType::DEALS, "Stage"),
            (ObjectType::DEALS, "Contact_Name"),
            (ObjectType::NOTES, "Parent_Id"),
        ] {
            let b = FieldBinding::new("x", zoho, FieldType::Text);
            let e = crate::fields::check_bindings(object, &[b], None).unwrap_err();
            assert!(
                e.to_string().contains("binds itself"),
                "{object} {zoho}: {e}"
            );
        }
        let free = FieldBinding::new("x", "Description", FieldType::Text);
        assert!(crate::fields::check_bindings(ObjectType::DEALS, &[free], None).is_ok());
    }

    #[test]
    fn a_note_reads_its_one_parent_in_either_form_and_writes_plain_text() {
        let notes = row(ObjectType::NOTES);
        let v8: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "id": "12", "Note_Content": "Hi", "Created_Time": "2024-01-02T03:04:05+00:00",
            "Parent_Id": {"module": {"api_name": "Deals", "id": "9"}, "name": "D", "id": "31"},
            "$se_module": "Deals", "Owner": {"id": "555"}
        }))
        .unwrap();
        let r = from_zoho(&standard(ObjectType::NOTES), notes, &v8).unwrap();
        assert_eq!(
            r.get(field::PARENTS),
            Some(&Value::Links(vec![ferry_core::model::Link {
                object: ObjectType::DEALS,
                id: "31".into()
            }]))
        );
        assert!(matches!(r.get(field::TIMESTAMP), Some(Value::Timestamp(_))));
        assert_eq!(r.get(field::BODY), Some(&Value::Text("Hi".into())));
        let flat: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "Parent_Id": "44", "$se_module": "Accounts"
        }))
        .unwrap();
        assert_eq!(parent_of(&flat), Some((ObjectType::COMPANIES, "44".into())));
        let elsewhere: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "Parent_Id": {"module": {"api_name": "Leads"}, "id": "45"}
        }))
        .unwrap();
        assert_eq!(parent_of(&elsewhere), None, "a module ferry does not move");

        let mut html = Record::new(ObjectType::NOTES, "n-1");
        html.set(
            field::BODY,
            Value::Text("<p>Call&nbsp;<b>back</b></p>".into()),
        );
        let out = to_zoho_plain(&standard(ObjectType::NOTES), notes, &html, &[]).unwrap();
        assert_eq!(
            out["Note_Content"],
            Json::String(ferry_core::richtext::to_plain(
                "<p>Call&nbsp;<b>back</b></p>"
            ))
        );
        assert!(!out["Note_Content"].as_str().unwrap_or("<").contains('<'));
        assert!(
            !stored_fields(&standard(ObjectType::NOTES), notes)
                .contains(&field::TIMESTAMP.to_owned()),
            "Created_Time is read-only"
        );
    }

    #[test]
    fn every_object_has_exactly_one_row_and_references_point_at_rows() {
        for object in ObjectType::ALL {
            assert_eq!(
                OBJECTS.iter().filter(|row| row.object == object).count(),
                1,
                "{object}"
            );
            assert_eq!(binding(object).unwrap().object, object);
        }
        assert_eq!(objects(), ObjectType::ALL);
        for row in OBJECTS {
            for reference in row.references {
                assert!(binding(reference.target).is_ok(), "{}", reference.lookup);
                assert!(row.object.field(reference.canonical).is_some());
            }
            for required in row.required {
                assert!(row.fields.iter().any(|(c, _)| c == required), "{required}");
            }
        }
    }
}
