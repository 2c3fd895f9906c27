//! Canonical fields ↔ Salesforce fields: the binding table [`OBJECTS`] (one row per object
//! ferry moves: its sObject, standard field table, references, required fields), and one
//! [`FieldMap`] per object (the standard table, plus the fields an operator mapped), used for
//! writing, reading back and reading as a source, so every direction agrees by construction.

use std::borrow::Cow;
use std::sync::LazyLock;

use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, IndexedBinding};
use ferry_core::json::{Field, Object};
use ferry_core::model::FieldType;
use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Record, RecordRejection, Value, field,
};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Companies → Account: `(canonical, Salesforce API name)`.
pub const ACCOUNT_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "Name"),
    (field::DOMAIN, "Website"),
    (field::PHONE, "Phone"),
    (field::INDUSTRY, "Industry"),
    (field::EMPLOYEE_COUNT, "NumberOfEmployees"),
    (field::ANNUAL_REVENUE, "AnnualRevenue"),
    (field::STREET, "BillingStreet"),
    (field::CITY, "BillingCity"),
    (field::STATE, "BillingState"),
    (field::POSTAL_CODE, "BillingPostalCode"),
    (field::COUNTRY, "BillingCountry"),
    (field::OWNER, "OwnerId"),
];

/// Contacts → Contact. The `company` reference is a row of its own (see [`OBJECTS`]).
pub const CONTACT_FIELDS: &[(&str, &str)] = &[
    (field::EMAIL, "Email"),
    (field::FIRST_NAME, "FirstName"),
    (field::LAST_NAME, "LastName"),
    (field::PHONE, "Phone"),
    (field::MOBILE_PHONE, "MobilePhone"),
    (field::JOB_TITLE, "Title"),
    (field::STREET, "MailingStreet"),
    (field::CITY, "MailingCity"),
    (field::STATE, "MailingState"),
    (field::POSTAL_CODE, "MailingPostalCode"),
    (field::COUNTRY, "MailingCountry"),
    (field::EMAIL_OPT_OUT, "HasOptedOutOfEmail"),
    (field::DO_NOT_CALL, "DoNotCall"),
    (field::FAX_OPT_OUT, "HasOptedOutOfFax"),
    (field::OWNER, "OwnerId"),
];

/// Deals → Opportunity. Won and lost are stages (`IsWon`, `IsClosed` follow `StageName`), so a
/// deal has no status of its own; the `company` reference and the `contacts` links (contact
/// roles) are rows of their own (see [`OBJECTS`]).
pub const OPPORTUNITY_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "Name"),
    (field::AMOUNT, "Amount"),
    (field::CURRENCY, "CurrencyIsoCode"),
    (field::CLOSE_DATE, "CloseDate"),
    (field::STAGE, "StageName"),
    (field::OWNER, "OwnerId"),
];

/// Notes → classic Note. `CreatedDate` is written on create only (the integration user may
/// "Set Audit Fields upon Record Creation"); `Title` is ferry's key (see [`crate::notes`]) and
/// the one parent is `ParentId` (see [`OBJECTS`]).
pub const NOTE_FIELDS_SF: &[(&str, &str)] = &[
    (field::BODY, "Body"),
    (field::TIMESTAMP, "CreatedDate"),
    (field::OWNER, "OwnerId"),
];

/// What a note's `ParentId` may point at, in the order a single parent is chosen, with the key
/// prefix of their record ids (the first three characters, fixed for standard objects), which
/// tells a polymorphic id's object.
pub const NOTE_PARENTS: &[(ObjectType, &str)] = &[
    (ObjectType::DEALS, "006"),
    (ObjectType::CONTACTS, "003"),
    (ObjectType::COMPANIES, "001"),
];

/// The object of a record id, by its key prefix, among a note's possible parents.
pub fn parent_object(id: &str) -> Option<ObjectType> {
    NOTE_PARENTS
        .iter()
        .find(|(_, prefix)| id.get(..3) == Some(*prefix))
        .map(|(object, _)| *object)
}

/// System timestamps, read (never written: Salesforce sets them) when Salesforce is the source.
pub const SYSTEM_TIMESTAMPS: &[(&str, &str)] = &[
    (field::CREATED_AT, "CreatedDate"),
    (field::UPDATED_AT, "LastModifiedDate"),
];

/// The record id field, which is the source id when Salesforce is the source.
pub const ID_FIELD: &str = "Id";

/// Salesforce's side of one object ferry moves.
#[derive(Debug)]
pub struct SalesforceObject {
    /// The canonical object.
    pub object: ObjectType,
    /// The sObject it is stored as (`composite/sobjects/{sobject}`, `FROM {sobject}`,
    /// `sobjects/{sobject}/describe`, and Setup's Object Manager).
    pub sobject: &'static str,
    /// One record of it in messages (`the contact's company`).
    pub noun: &'static str,
    /// The standard fields: `(canonical, Salesforce API name)`.
    pub fields: &'static [(&'static str, &'static str)],
    /// Its references to other objects, each written and read through a lookup.
    pub references: &'static [SalesforceReference],
    /// The canonical fields Salesforce refuses a record without (`REQUIRED_FIELD_MISSING`).
    pub required: &'static [&'static str],
    /// Whether the opt-out needs an email address ([`ferry_core::Capability::opt_out_needs_email`]):
    /// Salesforce keeps it as a flag on the record (`HasOptedOutOfEmail`), so never.
    pub opt_out_needs_email: bool,
    /// Its links held in rows of another sObject (a deal's contacts as contact roles).
    pub links: Option<SalesforceLinks>,
}

/// A links field of a row and the rows that hold it.
#[derive(Debug)]
pub enum SalesforceLinks {
    /// A deal's contacts: `OpportunityContactRole` rows (`OpportunityId`, `ContactId`), any
    /// number per opportunity, read for a page of opportunities at once and written through
    /// sObject Collections (see [`crate::links`]).
    ContactRoles {
        /// The canonical links field (`contacts`).
        canonical: &'static str,
    },
    /// A note's one parent: a polymorphic lookup (`ParentId`) to an Account, a Contact or an
    /// Opportunity, told apart by the id's key prefix ([`NOTE_PARENTS`]).
    Parent {
        /// The canonical links field (`parents`).
        canonical: &'static str,
        /// The lookup field.
        id_field: &'static str,
    },
}

impl SalesforceLinks {
    /// The canonical links field.
    pub fn canonical(&self) -> &'static str {
        match self {
            SalesforceLinks::ContactRoles { canonical }
            | SalesforceLinks::Parent { canonical, .. } => canonical,
        }
    }
}

/// A lookup from one object to another, e.g. a contact's company. Written as the relationship
/// keyed by the target's external-id field (`"Account": {"<ext>": "<company source id>"}`:
/// Salesforce resolves it, and refuses the record with `INVALID_FIELD` when no target has that
/// id), cleared through the lookup's id field (`AccountId: null`), read back as
/// `<relationship>.<ext>`, and read as a source from the id field (the target's `Id`, which is
/// its source id). The external-id field is the sink's `external_id_field`, the same on every
/// sObject, so `prepare` checks the target's sObject has it.
#[derive(Debug)]
pub struct SalesforceReference {
    /// The canonical field holding the target's source id.
    pub canonical: &'static str,
    /// The object it points to (a row of [`OBJECTS`]).
    pub target: ObjectType,
    /// The relationship name (`Account`): written and read back through the target's
    /// external-id field.
    pub relationship: &'static str,
    /// The lookup's id field (`AccountId`): cleared with `null`, read as a source.
    pub id_field: &'static str,
}

impl SalesforceReference {
    /// The sObject of the target (the binding test checks every target has a row; its
    /// canonical name stands in otherwise).
    pub fn target_sobject(&self) -> &'static str {
        binding(self.target).map_or(self.target.as_str(), |row| row.sobject)
    }
}

/// Every row, as a constant (so that [`OBJECT_TYPES`] can be derived from it).
const ROWS: [SalesforceObject; 4] = [
    SalesforceObject {
        object: ObjectType::COMPANIES,
        sobject: "Account",
        noun: "company",
        fields: ACCOUNT_FIELDS,
        references: &[],
        required: &[field::NAME],
        opt_out_needs_email: false,
        links: None,
    },
    SalesforceObject {
        object: ObjectType::CONTACTS,
        sobject: "Contact",
        noun: "contact",
        fields: CONTACT_FIELDS,
        references: &[SalesforceReference {
            canonical: field::COMPANY,
            target: ObjectType::COMPANIES,
            relationship: "Account",
            id_field: "AccountId",
        }],
        required: &[field::LAST_NAME],
        opt_out_needs_email: false,
        links: None,
    },
    SalesforceObject {
        object: ObjectType::DEALS,
        sobject: "Opportunity",
        noun: "deal",
        fields: OPPORTUNITY_FIELDS,
        references: &[SalesforceReference {
            canonical: field::COMPANY,
            target: ObjectType::COMPANIES,
            relationship: "Account",
            id_field: "AccountId",
        }],
        required: &[field::NAME, field::STAGE, field::CLOSE_DATE],
        opt_out_needs_email: false,
        links: Some(SalesforceLinks::ContactRoles {
            canonical: field::CONTACTS,
        }),
    },
    SalesforceObject {
        object: ObjectType::NOTES,
        sobject: "Note",
        noun: "note",
        fields: NOTE_FIELDS_SF,
        references: &[],
        // A Note without `ParentId` is refused (`REQUIRED_FIELD_MISSING`).
        required: &[field::PARENTS],
        opt_out_needs_email: false,
        links: Some(SalesforceLinks::Parent {
            canonical: field::PARENTS,
            id_field: "ParentId",
        }),
    },
];

/// Salesforce's side of every object ferry moves: read top to bottom to see what maps where.
pub static OBJECTS: &[SalesforceObject] = &ROWS;

/// The objects of [`OBJECTS`], in its order, for the connector's registry entry.
pub static OBJECT_TYPES: [ObjectType; ROWS.len()] = {
    let mut out = [ROWS[0].object; ROWS.len()];
    let mut i = 1;
    while i < ROWS.len() {
        out[i] = ROWS[i].object;
        i += 1;
    }
    out
};

/// The row of `object`, or the refusal of an object this connector does not move.
pub fn binding(object: ObjectType) -> ConnectorResult<&'static SalesforceObject> {
    ferry_core::kit::row_of(crate::VENDOR, OBJECTS, object)
}

impl ferry_core::kit::ObjectRow for SalesforceObject {
    fn object(&self) -> ObjectType {
        self.object
    }
}

/// The field maps a row's table gives, built once.
struct Standard {
    object: ObjectType,
    fields: FieldMap,
    timestamps: FieldMap,
}

static STANDARD: LazyLock<Vec<Standard>> = LazyLock::new(|| {
    OBJECTS
        .iter()
        .map(|row| Standard {
            object: row.object,
            fields: FieldMap::standard(row.object, row.fields),
            timestamps: FieldMap::standard(row.object, SYSTEM_TIMESTAMPS),
        })
        .collect()
});

static EMPTY: LazyLock<FieldMap> = LazyLock::new(FieldMap::default);

impl SalesforceObject {
    fn built(&self) -> Option<&'static Standard> {
        STANDARD.iter().find(|s| s.object == self.object)
    }

    /// The standard field map of this object (empty for a row outside [`OBJECTS`]).
    pub fn standard(&self) -> &'static FieldMap {
        self.built().map_or(&EMPTY, |s| &s.fields)
    }

    /// The system timestamps of this object as a field map.
    fn timestamps(&self) -> &'static FieldMap {
        self.built().map_or(&EMPTY, |s| &s.timestamps)
    }
}

/// The standard maps of every object the connector moves, for a source's or sink's
/// [`FieldMaps`].
pub fn standard_maps() -> FieldMaps {
    FieldMaps::new(
        OBJECTS
            .iter()
            .map(|row| (row.object, row.standard().clone())),
    )
}

/// The canonical field the standard tables give Salesforce field `name` of `object` (the
/// field map, the system timestamps, the lookups' id fields), for `describe`.
pub fn standard_canonical(object: ObjectType, name: &str) -> Option<&'static str> {
    let row = binding(object).ok()?;
    let lookups = row.references.iter().map(|r| (r.canonical, r.id_field));
    row.fields
        .iter()
        .chain(SYSTEM_TIMESTAMPS)
        .copied()
        .chain(lookups)
        .find(|(_, sf)| sf.eq_ignore_ascii_case(name))
        .map(|(canonical, _)| canonical)
}

/// Whether `name` can stand in SOQL and a request body as a field's API name: a letter, then
/// letters, digits and underscores (custom fields end in `__c`), at most 80 characters.
pub fn is_api_name(name: &str) -> bool {
    name.len() <= 80
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks that every binding names a field by an API name (they go into SOQL and request
/// bodies), refusing the first that does not, by the config's `[fields.<object>]`.
pub fn check_bindings(object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
    if object == ObjectType::NOTES && !bindings.is_empty() {
        return Err(ConnectorError::Config {
            vendor: crate::VENDOR,
            key: format!("fields.{object}"),
            detail: "a Salesforce Note takes no custom fields: ferry moves its body, time, owner and parent only"
                .into(),
        });
    }
    match bindings.iter().find(|b| !is_api_name(&b.vendor)) {
        None => Ok(()),
        Some(b) => Err(ConnectorError::Config {
            vendor: crate::VENDOR,
            key: format!("fields.{object}"),
            detail: format!(
                "`{}` is not a Salesforce field API name (a letter, then letters, digits and underscores)",
                b.vendor
            ),
        }),
    }
}

/// Every Salesforce field the mapping writes on `row`'s object (references by their id field).
pub fn written_fields<'a>(map: &'a FieldMap, row: &SalesforceObject) -> Vec<&'a str> {
    let mut names = map.vendor_names();
    names.extend(row.references.iter().map(|r| r.id_field));
    names
}

/// The canonical fields the mapping writes and reads back (references and links included).
pub fn stored_fields(map: &FieldMap, row: &SalesforceObject) -> Vec<String> {
    let mut names = map.canonical_names();
    names.extend(row.references.iter().map(|r| r.canonical.to_owned()));
    names.extend(row.links.iter().map(|l| l.canonical().to_owned()));
    names
}

/// A canonical field whose value could not be written (names the field, never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwritable {
    /// The canonical field.
    pub canonical: String,
    /// What it should have held.
    pub expected: &'static str,
    /// For a picklist label the field's list lacks: the refusal, code
    /// [`ferry_core::fields::NO_SUCH_OPTION`].
    pub no_option: Option<RecordRejection>,
}

impl Unwritable {
    /// The record's refusal: `NO_SUCH_OPTION` for a picklist label the list lacks,
    /// `INVALID_VALUE` otherwise.
    pub fn into_rejection(self, source_id: &str) -> RecordRejection {
        self.no_option.unwrap_or_else(|| RecordRejection {
            source_id: source_id.to_owned(),
            code: "INVALID_VALUE".into(),
            reason: format!("{} is not {}", self.canonical, self.expected),
        })
    }
}

/// A value in the JSON Salesforce expects for a field of canonical type `ty`: borrowed when
/// it already has that type (nearly always), converted by [`Value::to_json`] when it has not.
#[derive(Debug)]
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

/// The JSON written for `value` into the field of `binding`: a picklist's internal value for
/// its label, or the value in the binding's type.
fn bound_value<'v>(
    binding: IndexedBinding<'v>,
    source_id: &str,
    value: &'v Value,
) -> Result<JsonValue<'v>, Unwritable> {
    if binding.is_picklist() {
        let Some(label) = value.as_text() else {
            return Err(Unwritable {
                canonical: binding.canonical.to_string(),
                expected: "a picklist label",
                no_option: None,
            });
        };
        return binding
            .write_option(crate::VENDOR, source_id, label)
            .map(JsonValue::Text)
            .map_err(|refusal| Unwritable {
                canonical: binding.canonical.to_string(),
                expected: "an option of the picklist",
                no_option: Some(refusal),
            });
    }
    json_value(binding.ty, value).map_err(|expected| Unwritable {
        canonical: binding.canonical.to_string(),
        expected,
        no_option: None,
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
/// external id, and the row's references. Built by [`to_salesforce`], which has computed (and
/// so checked) every field's value, once.
#[derive(Debug)]
pub struct SalesforceBody<'a> {
    record: &'a Record,
    row: &'static SalesforceObject,
    external_id_field: &'a str,
    map: &'a FieldMap,
    /// The value of each binding of `map`, in its order; `None` where the record has none.
    values: Vec<Option<JsonValue<'a>>>,
}

/// The body of `record` (an object of `row`) for an upsert through `map`, or the first field
/// whose value cannot be written.
pub fn to_salesforce<'a>(
    record: &'a Record,
    row: &'static SalesforceObject,
    external_id_field: &'a str,
    map: &'a FieldMap,
) -> Result<SalesforceBody<'a>, Unwritable> {
    let values = map
        .indexed()
        .map(|binding| {
            record
                .get(&binding.canonical)
                .map(|v| bound_value(binding, &record.source_id, v))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    Ok(SalesforceBody {
        record,
        row,
        external_id_field,
        map,
        values,
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

/// One member of a body: a field and its value (`None`: `null`, which clears it), or a
/// parent found by its external id.
enum Entry<'b> {
    /// A field of the record.
    Field(&'b str, Option<&'b JsonValue<'b>>),
    /// The record's own key: the external-id field and the source id.
    Key(&'b str, &'b str),
    /// `relationship: {ext: target}`.
    Parent(&'static str, &'b str, &'b str),
}

impl<'a> SalesforceBody<'a> {
    /// The source id of the record the body is of.
    pub fn source_id(&self) -> &'a str {
        &self.record.source_id
    }

    /// The members a body carries, in order: the mapped fields it writes, the references,
    /// the external id. What the JSON of sObject Collections and the CSV of Bulk both hold.
    fn entries<'s>(&'s self, mut each: impl FnMut(Entry<'s>)) {
        let record = self.record;
        for (binding, value) in self.map.iter().zip(&self.values) {
            if ferry_core::consent::leave_out(record, &binding.canonical) {
                // Only a true opt-out is written: `false` or `null` would clear one Salesforce
                // holds, and a new record is created not opted out anyway.
                continue;
            }
            if binding.ty == FieldType::Owner && value.is_none() {
                // Every record has an owner: `OwnerId: null` is refused. Without one (an
                // unmatched owner left unset) a create gets the calling user, an update keeps
                // the record's.
                continue;
            }
            each(Entry::Field(binding.vendor.as_ref(), value.as_ref()));
        }
        for reference in self.row.references {
            match record.text(reference.canonical).filter(|s| !s.is_empty()) {
                Some(target) => each(Entry::Parent(
                    reference.relationship,
                    self.external_id_field,
                    target,
                )),
                None => each(Entry::Field(reference.id_field, None)),
            }
        }
        each(Entry::Key(self.external_id_field, &record.source_id));
    }

    /// The body as Bulk API 2.0 CSV cells: each member's column (`Account.<ext>` for a parent
    /// found by external id) and text, `None` for `null` (and for an empty text, which
    /// Salesforce stores as null), which clears the field.
    pub fn csv_cells<'s>(&'s self, mut each: impl FnMut(CsvColumn<'s>, Option<Cow<'s, str>>)) {
        self.entries(|entry| match entry {
            Entry::Field(name, value) => each(CsvColumn::Field(name), value.and_then(csv_text)),
            Entry::Key(name, id) => each(
                CsvColumn::Field(name),
                (!id.is_empty()).then_some(Cow::Borrowed(id)),
            ),
            Entry::Parent(relationship, ext, target) => each(
                CsvColumn::Parent(relationship, ext),
                Some(Cow::Borrowed(target)),
            ),
        });
    }
}

/// A Bulk CSV column of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvColumn<'c> {
    /// A field of the record, by API name.
    Field(&'c str),
    /// A parent found by external id: `relationship.field`.
    Parent(&'c str, &'c str),
}

impl std::fmt::Display for CsvColumn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsvColumn::Field(name) => f.write_str(name),
            CsvColumn::Parent(relationship, field) => write!(f, "{relationship}.{field}"),
        }
    }
}

/// A value as a Bulk CSV cell: `None` (null, or an empty text) clears the field; numbers and
/// booleans as JSON writes them.
fn csv_text<'v>(value: &'v JsonValue<'_>) -> Option<Cow<'v, str>> {
    match value {
        JsonValue::Text("") => None,
        JsonValue::Text(t) => Some(Cow::Borrowed(t)),
        JsonValue::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        JsonValue::Integer(n) => Some(Cow::Owned(n.to_string())),
        JsonValue::Decimal(n) => Some(Cow::Owned(serde_json::Value::from(*n).to_string())),
        JsonValue::Converted(json) => match json {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.is_empty() => None,
            serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
            other => Some(Cow::Owned(other.to_string())),
        },
    }
}

impl Serialize for SalesforceBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("attributes", &Attributes(self.row.sobject))?;
        let mut result = Ok(());
        self.entries(|entry| {
            if result.is_err() {
                return;
            }
            result = match entry {
                Entry::Field(name, None) => map.serialize_entry(name, &()),
                Entry::Field(name, Some(value)) => map.serialize_entry(name, value),
                Entry::Key(name, id) => map.serialize_entry(name, id),
                Entry::Parent(relationship, ext, target) => {
                    map.serialize_entry(relationship, &ByExternalId(ext, target))
                }
            };
        });
        result?;
        map.end()
    }
}

/// Reads field `binding` of a queried record into `record`: `Ok(false)` when absent or null,
/// `Err` with what was expected when the value does not fit.
fn read_bound(
    record: &mut Record,
    binding: IndexedBinding<'_>,
    sf: &Object<'_>,
) -> Result<bool, &'static str> {
    let Some(value) = sf.get(&binding.vendor) else {
        return Ok(false);
    };
    let raw = match scalar_text(value) {
        Ok(None) => return Ok(false),
        Ok(Some(raw)) => raw,
        Err(()) => return Err("a single value"),
    };
    if binding.ty == FieldType::Stage {
        // Salesforce's one "pipeline" of stages: the value is the stage's id (its `ApiName`).
        record.fields.insert(
            binding.canonical.clone(),
            Value::stage(crate::PIPELINE_ID.to_owned(), raw.into_owned()),
        );
        return Ok(true);
    }
    match binding.read(&raw) {
        Ok(Some(v)) => {
            record.fields.insert(binding.canonical.clone(), v);
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(e) => Err(e.expected),
    }
}

/// The canonical record of a queried Salesforce record read back through `map`, or `None` if
/// it has no external id. A value that does not fit its canonical type is left out (and
/// logged by field name), so the checksum comparison flags the record rather than the whole
/// read failing.
pub fn from_salesforce(
    row: &SalesforceObject,
    sf: &Object<'_>,
    external_id_field: &str,
    map: &FieldMap,
) -> Option<Record> {
    let source_id = sf
        .get(external_id_field)
        .and_then(Field::text)?
        .into_owned();
    let mut record = Record::new(row.object, source_id);
    for binding in map.indexed() {
        if let Err(expected) = read_bound(&mut record, binding, sf) {
            tracing::debug!(
                vendor = crate::VENDOR,
                field = %binding.canonical,
                expected,
                "unreadable value on read-back"
            );
        }
    }
    for reference in row.references {
        if let Some(target) = sf
            .get(reference.relationship)
            .and_then(|a| a.get(external_id_field))
            .and_then(Field::text)
        {
            record.set(reference.canonical, Value::Reference(target.into_owned()));
        }
    }
    Some(record)
}

/// Adds `name` to `names` unless it is there already (SOQL refuses a field selected twice).
fn push_unique<'a>(names: &mut Vec<&'a str>, name: &'a str) {
    if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        names.push(name);
    }
}

/// The fields a read-back query selects: the map's, then `extra` (no name twice).
pub fn read_back_fields<'a>(map: &'a FieldMap, extra: &[&'a str]) -> Vec<&'a str> {
    let mut names = Vec::new();
    for name in map.vendor_names().into_iter().chain(extra.iter().copied()) {
        push_unique(&mut names, name);
    }
    names
}

/// The fields a source query selects on `row`'s object through `map`: every mapped field, the
/// record id, the references' id fields (a contact's `AccountId`), and the system timestamps
/// (no name twice).
pub fn source_fields<'a>(row: &SalesforceObject, map: &'a FieldMap) -> Vec<&'a str> {
    let mut extra = vec![ID_FIELD];
    extra.extend(row.references.iter().map(|r| r.id_field));
    if let Some(SalesforceLinks::Parent { id_field, .. }) = &row.links {
        extra.push(id_field);
    }
    extra.extend(SYSTEM_TIMESTAMPS.iter().map(|(_, sf)| *sf));
    read_back_fields(map, &extra)
}

/// The text of a scalar JSON value; `Ok(None)` for `null`, `Err` for an object or array.
fn scalar_text<'v>(value: &'v Field<'_>) -> Result<Option<Cow<'v, str>>, ()> {
    match value {
        Field::Null => Ok(None),
        Field::Object(_) | Field::Array => Err(()),
        other => Ok(other.text()),
    }
}

/// The canonical record of a Salesforce record read as a source through `map`, whose `Id` is
/// `id`: mapped fields (a picklist's value as its label), the system timestamps and the row's
/// references (a contact's Account as the `company` reference). A value that does not fit its canonical
/// type makes the whole record unreadable, with a reason naming the fields (never the
/// values), so it is reported rather than half-migrated.
pub fn from_source(
    row: &SalesforceObject,
    id: &str,
    sf: &Object<'_>,
    map: &FieldMap,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(row.object, id);
    let mut problems = Vec::new();
    for binding in map.indexed().chain(row.timestamps().indexed()) {
        if let Err(expected) = read_bound(&mut record, binding, sf) {
            problems.push(format!(
                "`{}` (Salesforce field `{}`, expected {expected})",
                binding.canonical, binding.vendor
            ));
        }
    }
    for reference in row.references {
        let (canonical, id_field) = (reference.canonical, reference.id_field);
        match sf.get(id_field).map(scalar_text) {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(target))) => {
                if !target.is_empty() {
                    record.set(canonical, Value::Reference(target.into_owned()));
                }
            }
            Some(Err(())) => problems.push(format!(
                "`{canonical}` (Salesforce field `{id_field}`, expected an {} id)",
                reference.target_sobject()
            )),
        }
    }
    if let Some(SalesforceLinks::Parent {
        canonical,
        id_field,
    }) = &row.links
    {
        match sf.get(id_field).map(scalar_text) {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(parent))) => match parent_object(&parent) {
                Some(object) => record.set(
                    canonical,
                    Value::Links(vec![ferry_core::model::Link {
                        object,
                        id: parent.into_owned(),
                    }]),
                ),
                // A parent ferry does not move (a Case, an Asset…): the note has no parent here.
                None => tracing::debug!(
                    vendor = crate::VENDOR,
                    id,
                    "a note's parent is not an Account, Contact or Opportunity"
                ),
            },
            Some(Err(())) => problems.push(format!(
                "`{canonical}` (Salesforce field `{id_field}`, expected a record id)"
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

    /// The row of `object`.
    fn of(object: ObjectType) -> &'static SalesforceObject {
        binding(object).unwrap()
    }

    /// The standard map of `object`.
    fn standard(object: ObjectType) -> &'static FieldMap {
        of(object).standard()
    }

    fn body(record: &Record, ext: &str) -> Result<Json, Unwritable> {
        to_salesforce(record, of(record.object), ext, standard(record.object))
            .map(|b| serde_json::to_value(b).unwrap())
    }

    #[test]
    fn every_object_has_one_row_and_every_reference_a_target() {
        for object in OBJECT_TYPES {
            let rows = OBJECTS.iter().filter(|row| row.object == object).count();
            assert_eq!(rows, 1, "{object}");
            assert_eq!(binding(object).unwrap().object, object);
        }
        assert_eq!(OBJECT_TYPES.len(), OBJECTS.len());
        for (row, object) in OBJECTS.iter().zip(OBJECT_TYPES) {
            assert_eq!(row.object, object);
            assert!(row.standard().iter().next().is_some(), "{object}");
            for reference in row.references {
                let target = binding(reference.target).unwrap();
                assert_eq!(reference.target_sobject(), target.sobject);
            }
        }
    }

    #[test]
    fn every_canonical_field_but_system_timestamps_is_mapped() {
        for object in OBJECT_TYPES {
            let stored = stored_fields(standard(object), of(object));
            for spec in object.fields() {
                let system = spec.name == field::CREATED_AT || spec.name == field::UPDATED_AT;
                // Won and lost are stages on Salesforce: a deal has no status of its own.
                let stage_based = object == ObjectType::DEALS && spec.name == field::STATUS;
                // Salesforce keeps no text-message or postal opt-out, nor consent per
                // subscription type, nor a legal basis or consent date, on a contact.
                let no_column = [
                    field::SMS_OPT_OUT,
                    field::POSTAL_OPT_OUT,
                    field::EMAIL_UNSUBSCRIBED_TYPES,
                    field::LEGAL_BASIS,
                    field::CONSENT_DATE,
                ]
                .contains(&spec.name);
                assert_eq!(
                    stored.contains(&spec.name.to_owned()),
                    !system && !stage_based && !no_column,
                    "{object} {}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn only_a_true_opt_out_is_written_so_an_update_never_clears_one() {
        for flag in [None, Some(false)] {
            let mut r = Record::new(ObjectType::CONTACTS, "c-1");
            r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
            if let Some(b) = flag {
                r.set(field::EMAIL_OPT_OUT, Value::Bool(b));
                r.set(field::DO_NOT_CALL, Value::Bool(b));
                r.set(field::FAX_OPT_OUT, Value::Bool(b));
            }
            let sf = body(&r, "Ext__c").unwrap();
            for opt_out in ["HasOptedOutOfEmail", "DoNotCall", "HasOptedOutOfFax"] {
                assert!(sf.get(opt_out).is_none(), "{flag:?}: {sf}");
            }
            // Other absent fields are still cleared.
            assert_eq!(sf["Email"], Json::Null);
        }
    }

    #[test]
    fn notes_take_no_mapped_fields() {
        let topic = FieldBinding::new("topic", "Topic__c", FieldType::Text);
        let e = check_bindings(ObjectType::NOTES, std::slice::from_ref(&topic)).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config { key, .. } if key == "fields.notes"),
            "{e:?}"
        );
        assert!(check_bindings(ObjectType::NOTES, &[]).is_ok());
        assert!(check_bindings(ObjectType::DEALS, &[topic]).is_ok());
    }

    #[test]
    fn deals_carry_stage_dates_and_contacts_links() {
        let sf = row(serde_json::json!({
            "Id": "006000000000001AAA",
            "Name": "Renewal",
            "StageName": "Closed Won",
            "CloseDate": "2024-03-01",
            "Amount": 1250.5,
            "CurrencyIsoCode": "EUR",
            "AccountId": "001000000000001AAA",
            "OwnerId": "005000000000002AAA",
        }));
        let deals = of(ObjectType::DEALS);
        let r = from_source(
            deals,
            "006000000000001AAA",
            &sf,
            standard(ObjectType::DEALS),
        )
        .unwrap();
        assert_eq!(
            r.get(field::STAGE),
            Some(&Value::stage(crate::PIPELINE_ID, "Closed Won"))
        );
        assert_eq!(r.get(field::CLOSE_DATE), Some(&Value::Date(19_783)));
        assert_eq!(r.get(field::AMOUNT), Some(&Value::Decimal(1250.5)));
        assert_eq!(r.text(field::OWNER), Some("005000000000002AAA"));
        assert_eq!(
            r.get(field::COMPANY),
            Some(&Value::Reference("001000000000001AAA".into()))
        );
        assert_eq!(r.get(field::STATUS), None, "won and lost are stages");
        let sf = body(&r, "Ext__c").unwrap();
        assert_eq!(sf["StageName"], "Closed Won");
        assert_eq!(sf["CloseDate"], "2024-03-01");
        assert_eq!(
            sf["Account"],
            serde_json::json!({"Ext__c": "001000000000001AAA"})
        );
        assert!(
            sf.get(field::CONTACTS).is_none() && sf.get("IsWon").is_none(),
            "{sf}"
        );
        assert!(stored_fields(standard(ObjectType::DEALS), deals).contains(&"contacts".to_owned()));
    }

    #[test]
    fn a_notes_parent_is_a_link_told_by_its_id_prefix() {
        let notes = of(ObjectType::NOTES);
        for (parent, object) in [
            ("006000000000001AAA", Some(ObjectType::DEALS)),
            ("003000000000001AAA", Some(ObjectType::CONTACTS)),
            ("001000000000001AAA", Some(ObjectType::COMPANIES)),
            ("500000000000001AAA", None),
        ] {
            let sf = row(serde_json::json!({
                "Id": "002000000000001AAA",
                "Body": "Called",
                "ParentId": parent,
                "CreatedDate": "2021-11-06T17:38:40.000+0000",
            }));
            let r = from_source(
                notes,
                "002000000000001AAA",
                &sf,
                standard(ObjectType::NOTES),
            )
            .unwrap();
            let expected = object.map(|object| {
                Value::Links(vec![ferry_core::model::Link {
                    object,
                    id: parent.into(),
                }])
            });
            assert_eq!(r.get(field::PARENTS), expected.as_ref(), "{parent}");
            assert_eq!(
                r.get(field::TIMESTAMP),
                Some(&Value::Timestamp(1_636_220_320_000))
            );
            assert_eq!(r.text(field::BODY), Some("Called"));
        }
        assert!(source_fields(notes, standard(ObjectType::NOTES)).contains(&"ParentId"));
    }

    #[test]
    fn an_owner_is_written_and_read_but_never_cleared() {
        let mut r = Record::new(ObjectType::COMPANIES, "co-1");
        r.set(field::NAME, Value::Text("Acme".into()));
        let sf = body(&r, "Ext__c").unwrap();
        // `OwnerId: null` is refused by Salesforce: without an owner the org's default applies.
        assert!(sf.get("OwnerId").is_none(), "{sf}");
        r.set(field::OWNER, Value::Text("005000000000002AAA".into()));
        let sf = body(&r, "Ext__c").unwrap();
        assert_eq!(sf["OwnerId"], "005000000000002AAA");
        let queried =
            row(serde_json::json!({"Id": "001", "Name": "Acme", "OwnerId": "005000000000002AAA"}));
        let read = from_source(
            of(ObjectType::COMPANIES),
            "001",
            &queried,
            standard(ObjectType::COMPANIES),
        )
        .unwrap();
        assert_eq!(read.text(field::OWNER), Some("005000000000002AAA"));
        assert!(
            source_fields(of(ObjectType::CONTACTS), standard(ObjectType::CONTACTS))
                .contains(&"OwnerId")
        );
    }

    #[test]
    fn round_trip_through_salesforce_shape() {
        let mut r = Record::new(ObjectType::CONTACTS, "c-1");
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
            from_salesforce(
                of(ObjectType::CONTACTS),
                &row(queried),
                "Ext__c",
                standard(ObjectType::CONTACTS)
            ),
            Some(r.clone())
        );
        r.fields.remove(field::COMPANY);
        let sf = body(&r, "Ext__c").unwrap();
        assert_eq!(sf["AccountId"], Json::Null);
        assert!(sf.get("Account").is_none());

        let mut c = Record::new(ObjectType::COMPANIES, "co-9");
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
        let r = from_source(
            of(ObjectType::CONTACTS),
            "003000000000001AAA",
            &sf,
            standard(ObjectType::CONTACTS),
        )
        .unwrap();
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
        let contacts = standard(ObjectType::CONTACTS);
        let companies = standard(ObjectType::COMPANIES);
        assert!(source_fields(of(ObjectType::CONTACTS), contacts).contains(&"AccountId"));
        assert!(!source_fields(of(ObjectType::COMPANIES), companies).contains(&"AccountId"));
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
        let e = from_source(
            of(ObjectType::COMPANIES),
            "001000000000001AAA",
            &sf,
            standard(ObjectType::COMPANIES),
        )
        .unwrap_err();
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
        let e = from_source(
            of(ObjectType::CONTACTS),
            "003",
            &nested,
            standard(ObjectType::CONTACTS),
        )
        .unwrap_err();
        assert!(e.reason.contains("AccountId"), "{}", e.reason);
    }

    #[test]
    fn mapped_picklists_write_values_and_read_labels() {
        use ferry_core::fields::{NO_SUCH_OPTION, PicklistOption};
        let tier = FieldBinding {
            options: vec![PicklistOption {
                value: "GOLD_TIER".into(),
                label: "Gold".into(),
            }],
            ..FieldBinding::new("tier", "Tier__c", FieldType::Text)
        };
        let sector = FieldBinding::new(field::INDUSTRY, "Sector__c", FieldType::Text);
        let map = standard(ObjectType::COMPANIES).with(&[tier, sector]);
        let mut c = Record::new(ObjectType::COMPANIES, "co-1");
        c.set(field::INDUSTRY, Value::Text("Banking".into()));
        c.fields.insert("tier".into(), Value::Text(" gold ".into()));
        let sf = serde_json::to_value(
            to_salesforce(&c, of(ObjectType::COMPANIES), "Ext__c", &map).unwrap(),
        )
        .unwrap();
        assert_eq!(sf["Tier__c"], "GOLD_TIER");
        assert_eq!(sf["Sector__c"], "Banking");
        assert!(sf.get("Industry").is_none(), "the mapped field replaced it");
        assert!(stored_fields(&map, of(ObjectType::COMPANIES)).contains(&"tier".to_owned()));

        let queried =
            row(serde_json::json!({"Id": "001", "Tier__c": "GOLD_TIER", "Sector__c": "Banking"}));
        let read = from_source(of(ObjectType::COMPANIES), "001", &queried, &map).unwrap();
        assert_eq!(read.text("tier"), Some("Gold"));
        assert_eq!(read.text(field::INDUSTRY), Some("Banking"));
        assert!(source_fields(of(ObjectType::COMPANIES), &map).contains(&"Tier__c"));

        c.fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_salesforce(&c, of(ObjectType::COMPANIES), "Ext__c", &map)
            .unwrap_err()
            .into_rejection("co-1");
        assert_eq!(
            (refused.code.as_str(), refused.source_id.as_str()),
            (NO_SUCH_OPTION, "co-1")
        );
        assert!(!refused.reason.contains("Platinum"), "{}", refused.reason);
    }
}
