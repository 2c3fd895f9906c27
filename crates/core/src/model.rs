//! The canonical record model every connector maps to and from.
//!
//! N vendors need N mappings, not N²: each connector translates its vendor's shape into these
//! field names and value types, and back. Field names are plain strings so that custom fields
//! named by a mapping can travel alongside the standard ones.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A kind of CRM object: a handle to its descriptor ([`ObjectSpec`]). The engine knows an
/// object only through it (its name, its fields, its references), so a new object is a new
/// descriptor, not a new branch. Two handles are the same object when their names are equal.
#[derive(Clone, Copy)]
pub struct ObjectType(&'static ObjectSpec);

/// The descriptor of one kind of object: its name and its canonical fields, whose reference
/// fields are the object's edges to other objects. Written once, as a `static`.
#[derive(Debug)]
pub struct ObjectSpec {
    /// The name used in configuration files, reports, logs and checksums (`"contacts"`).
    pub name: &'static str,
    /// Its canonical fields; a [`FieldType::Reference`] field is an edge to other objects.
    pub fields: &'static [FieldSpec],
}

static COMPANIES: ObjectSpec = ObjectSpec {
    name: "companies",
    fields: COMPANY_FIELDS,
};

static CONTACTS: ObjectSpec = ObjectSpec {
    name: "contacts",
    fields: CONTACT_FIELDS,
};

static DEALS: ObjectSpec = ObjectSpec {
    name: "deals",
    fields: DEAL_FIELDS,
};

static NOTES: ObjectSpec = ObjectSpec {
    name: "notes",
    fields: NOTE_FIELDS,
};

impl ObjectType {
    /// Organisations: HubSpot companies, Salesforce accounts.
    pub const COMPANIES: ObjectType = ObjectType(&COMPANIES);
    /// People: HubSpot contacts, Salesforce contacts.
    pub const CONTACTS: ObjectType = ObjectType(&CONTACTS);
    /// Sales opportunities: HubSpot deals, Salesforce opportunities, each in a pipeline stage.
    pub const DEALS: ObjectType = ObjectType(&DEALS);
    /// Notes written on deals, contacts or companies (several at once where the vendor allows).
    pub const NOTES: ObjectType = ObjectType(&NOTES);

    /// Every object ferry knows (the names a configuration may list).
    pub const ALL: [ObjectType; 4] = [
        ObjectType::COMPANIES,
        ObjectType::CONTACTS,
        ObjectType::DEALS,
        ObjectType::NOTES,
    ];

    /// The objects a run moves when its configuration lists none: the whole CRM (every
    /// connector moves all of them).
    pub const DEFAULT_RUN: [ObjectType; 4] = ObjectType::ALL;

    /// The object `spec` describes.
    pub const fn new(spec: &'static ObjectSpec) -> ObjectType {
        ObjectType(spec)
    }

    /// Its descriptor.
    pub fn spec(self) -> &'static ObjectSpec {
        self.0
    }

    /// The name used in configuration files, reports and logs.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Parses a configuration name such as `"contacts"`.
    pub fn parse(name: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The canonical fields of this object type.
    pub fn fields(self) -> &'static [FieldSpec] {
        self.0.fields
    }

    /// The canonical field spec called `name`, if this object type has one.
    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// The opt-outs this object's records can hold (contacts: every channel).
    pub fn opt_outs(self) -> impl Iterator<Item = &'static OptOut> {
        OPT_OUTS
            .iter()
            .filter(move |o| self.field(o.field).is_some())
    }

    /// The references this object's records hold: one per reference field of its schema.
    pub fn references(self) -> impl Iterator<Item = Edge> {
        self.fields().iter().filter_map(|f| match f.ty {
            FieldType::Reference(to) => Some(Edge {
                field: f.name,
                targets: to.targets,
                many: to.many,
            }),
            _ => None,
        })
    }
}

impl PartialEq for ObjectType {
    fn eq(&self, other: &ObjectType) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.name == other.0.name
    }
}

impl Eq for ObjectType {}

impl std::hash::Hash for ObjectType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for ObjectType {
    fn partial_cmp(&self, other: &ObjectType) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By name: maps keyed by object list them alphabetically, whatever their write order.
impl Ord for ObjectType {
    fn cmp(&self, other: &ObjectType) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl fmt::Debug for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ObjectType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ObjectType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectType, D::Error> {
        let name = String::deserialize(deserializer)?;
        ObjectType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown object `{name}` (known: {})",
                ObjectType::ALL.map(ObjectType::as_str).join(", ")
            ))
        })
    }
}

/// What a reference field points at: one or several possible target objects (a note's parent
/// may be a contact or a company), and one record or many (a deal's contacts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefSpec {
    /// The objects a reference may point at. With one target and one record, the value is a
    /// [`Value::Reference`] (the id alone); otherwise [`Value::Links`], each naming its object.
    pub targets: &'static [ObjectType],
    /// Whether one record may point at several.
    pub many: bool,
}

impl RefSpec {
    /// A reference to one record of one object: a contact's company.
    pub const fn one(targets: &'static [ObjectType]) -> RefSpec {
        RefSpec {
            targets,
            many: false,
        }
    }

    /// Whether its values are [`Value::Links`] (several targets or several records) rather
    /// than a bare [`Value::Reference`].
    pub fn is_links(self) -> bool {
        self.many || self.targets.len() != 1
    }
}

/// A reference from one object to others, read from the schema: the field of the referring
/// record that holds the target records' source ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The referring field, e.g. a contact's `company`.
    pub field: &'static str,
    /// The objects the field may refer to.
    pub targets: &'static [ObjectType],
    /// Whether one record may refer to several.
    pub many: bool,
}

/// Why the objects of a run cannot be put in a write order.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrderError {
    /// The objects refer to each other in a cycle (a self-reference included): none of them can
    /// be written after all of its targets, and a second "link" pass does not exist yet.
    #[error(
        "objects {} refer to each other in a cycle ({}): none can be written after the objects \
         it refers to",
        .objects.join(", "),
        .path
    )]
    Cycle {
        /// The objects left in the cycle, by name.
        objects: Vec<&'static str>,
        /// The references that close it, as `object.field -> target`.
        path: String,
    },
}

/// The order to write `objects` in: each after every object among them that it refers to (its
/// reference edges, from the schema), and otherwise in the order given. Derived from the
/// edges, never from declaration order, so a new object or reference needs no hand-kept list.
/// Duplicates are dropped.
pub fn write_order(objects: &[ObjectType]) -> Result<Vec<ObjectType>, OrderError> {
    let mut left: Vec<ObjectType> = Vec::new();
    for &object in objects {
        if !left.contains(&object) {
            left.push(object);
        }
    }
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        // The first object (in the order given) none of whose targets is still to be written.
        let ready = left.iter().position(|&object| {
            object
                .references()
                .all(|edge| edge.targets.iter().all(|t| !left.contains(t)))
        });
        match ready {
            Some(at) => ordered.push(left.remove(at)),
            None => {
                let mut closing = Vec::new();
                for &object in &left {
                    for edge in object.references() {
                        for target in edge.targets.iter().filter(|t| left.contains(t)) {
                            closing.push(format!("{object}.{} -> {target}", edge.field));
                        }
                    }
                }
                let path = closing.join(", ");
                return Err(OrderError::Cycle {
                    objects: left.iter().map(|o| o.as_str()).collect(),
                    path,
                });
            }
        }
    }
    Ok(ordered)
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a canonical field, which decides how values are normalised and hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Free text, kept exactly as the vendor returned it.
    Text,
    /// An email address; checked for shape and duplicates before it is written.
    Email,
    /// A phone number, kept as text (vendors do not agree on a format).
    Phone,
    /// A yes/no flag such as an opt-out.
    Bool,
    /// A whole number.
    Integer,
    /// A decimal amount such as annual revenue.
    Decimal,
    /// A point in time, kept as milliseconds since the Unix epoch, UTC.
    Timestamp,
    /// The source id(s) of other records (an association): which objects, one or many.
    Reference(RefSpec),
    /// A calendar date without a time of day (a deal's close date).
    Date,
    /// The user who owns the record: the vendor's own user id, as [`Value::Text`]. Not a
    /// reference edge: users are never written, only matched by email (`crate::owners`).
    Owner,
    /// A pipeline stage, as [`Value::Stage`] (vendor ids), mapped by labels (`crate::stages`).
    Stage,
    /// Text that may be plain or the vendor's HTML (a note's body). Carried as the vendor's
    /// text; its checksum covers the plain form ([`crate::richtext::to_plain`]), so the same
    /// note from an HTML vendor and a plain-text one verifies.
    RichText,
    /// A set of names (the subscription types a person unsubscribed from), carried as one
    /// [`Value::Text`] in canonical form: sorted, without repeats, joined by `"; "`
    /// ([`names_value`]), so the same set verifies whatever order a vendor lists it in.
    Names,
}

/// One canonical field: its name and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The canonical name, e.g. `"email"`.
    pub name: &'static str,
    /// How the value is normalised and hashed.
    pub ty: FieldType,
}

/// Canonical field names, so connectors and the engine never spell them twice.
pub mod field {
    pub const EMAIL: &str = "email";
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const PHONE: &str = "phone";
    pub const MOBILE_PHONE: &str = "mobile_phone";
    pub const JOB_TITLE: &str = "job_title";
    pub const STREET: &str = "street";
    pub const CITY: &str = "city";
    pub const STATE: &str = "state";
    pub const POSTAL_CODE: &str = "postal_code";
    pub const COUNTRY: &str = "country";
    /// Opted out of marketing email (every consent field: [`super::OPT_OUTS`]).
    pub const EMAIL_OPT_OUT: &str = "email_opt_out";
    /// Asked not to be phoned.
    pub const DO_NOT_CALL: &str = "do_not_call";
    /// Opted out of text messages.
    pub const SMS_OPT_OUT: &str = "sms_opt_out";
    /// Opted out of faxes.
    pub const FAX_OPT_OUT: &str = "fax_opt_out";
    /// Opted out of postal mail.
    pub const POSTAL_OPT_OUT: &str = "postal_opt_out";
    /// The email subscription types (by name) a person is unsubscribed from, where the vendor
    /// keeps email consent per type (HubSpot): a [`super::FieldType::Names`] opt-out.
    pub const EMAIL_UNSUBSCRIBED_TYPES: &str = "email_unsubscribed_types";
    /// The legal bases the company processes a person's data on (GDPR Art. 6), as names of
    /// [`super::LEGAL_BASES`] in a [`super::FieldType::Names`]: a record of the controller's,
    /// not an opt-out.
    pub const LEGAL_BASIS: &str = "legal_basis";
    /// The day a person gave the consent on record (Zoho's `Consent_Date`): a consent record
    /// beside [`LEGAL_BASIS`], never an opt-out.
    pub const CONSENT_DATE: &str = "consent_date";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    /// On a contact: the source id of its primary company.
    pub const COMPANY: &str = "company";
    pub const NAME: &str = "name";
    pub const DOMAIN: &str = "domain";
    pub const INDUSTRY: &str = "industry";
    pub const EMPLOYEE_COUNT: &str = "employee_count";
    pub const ANNUAL_REVENUE: &str = "annual_revenue";
    /// The user who owns a record (a [`super::FieldType::Owner`]).
    pub const OWNER: &str = "owner";
    /// A deal's amount.
    pub const AMOUNT: &str = "amount";
    /// A deal's currency code (`EUR`).
    pub const CURRENCY: &str = "currency";
    /// A deal's expected or actual close date.
    pub const CLOSE_DATE: &str = "close_date";
    /// A deal's pipeline and stage.
    pub const STAGE: &str = "stage";
    /// A deal's status: `open`, `won` or `lost`.
    pub const STATUS: &str = "status";
    /// On a deal: the source ids of its contacts.
    pub const CONTACTS: &str = "contacts";
    /// A note's text.
    pub const BODY: &str = "body";
    /// When a note was written (its original time, not the migration's).
    pub const TIMESTAMP: &str = "timestamp";
    /// On a note: the deals, contacts and companies it hangs on.
    pub const PARENTS: &str = "parents";
}

const fn spec(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty }
}

/// The canonical contact fields.
pub static CONTACT_FIELDS: &[FieldSpec] = &[
    spec(field::EMAIL, FieldType::Email),
    spec(field::FIRST_NAME, FieldType::Text),
    spec(field::LAST_NAME, FieldType::Text),
    spec(field::PHONE, FieldType::Phone),
    spec(field::MOBILE_PHONE, FieldType::Phone),
    spec(field::JOB_TITLE, FieldType::Text),
    spec(field::STREET, FieldType::Text),
    spec(field::CITY, FieldType::Text),
    spec(field::STATE, FieldType::Text),
    spec(field::POSTAL_CODE, FieldType::Text),
    spec(field::COUNTRY, FieldType::Text),
    spec(field::EMAIL_OPT_OUT, FieldType::Bool),
    spec(field::DO_NOT_CALL, FieldType::Bool),
    spec(field::SMS_OPT_OUT, FieldType::Bool),
    spec(field::FAX_OPT_OUT, FieldType::Bool),
    spec(field::POSTAL_OPT_OUT, FieldType::Bool),
    spec(field::EMAIL_UNSUBSCRIBED_TYPES, FieldType::Names),
    spec(field::LEGAL_BASIS, FieldType::Names),
    spec(field::CONSENT_DATE, FieldType::Date),
    spec(field::CREATED_AT, FieldType::Timestamp),
    spec(field::UPDATED_AT, FieldType::Timestamp),
    spec(
        field::COMPANY,
        FieldType::Reference(RefSpec::one(&[ObjectType::COMPANIES])),
    ),
    spec(field::OWNER, FieldType::Owner),
];

/// A channel a person can opt out of, and the canonical field that holds the opt-out.
///
/// Consent is schema, not a branch on a field name: the engine's consent guard
/// (`crate::consent`) and the duplicates merge read this list, so a channel added here is
/// guarded everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptOut {
    /// The canonical field: a [`FieldType::Bool`] (`true` means opted out) or, for an opt-out
    /// kept per subscription type, a [`FieldType::Names`] (the types opted out of).
    pub field: &'static str,
    /// The channel as reports name it: `email`, `phone`, `sms`, `fax`, `postal`,
    /// `email_types`.
    pub channel: &'static str,
    /// How the field holds the opt-out.
    pub kind: OptOutKind,
}

/// How an opt-out field holds its fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptOutKind {
    /// A flag: `true` is opted out; `false` or absent is no fact.
    Flag,
    /// A set of names ([`FieldType::Names`]): each name is one type opted out of; an empty set
    /// or none is no fact.
    Names,
}

impl OptOut {
    /// The canonical type of its field.
    pub fn field_type(&self) -> FieldType {
        match self.kind {
            OptOutKind::Flag => FieldType::Bool,
            OptOutKind::Names => FieldType::Names,
        }
    }

    /// Whether `value` (the field's value, if any) says opted out: `true`, or at least one name.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        match (self.kind, value) {
            (OptOutKind::Flag, Some(Value::Bool(true))) => true,
            (OptOutKind::Names, Some(Value::Text(text))) => names(text).next().is_some(),
            _ => false,
        }
    }

    /// The value holding every opt-out of `values` (a merge never weakens one): `true` if any
    /// says so, or the union of their names. `None` when none holds one.
    pub fn join<'a>(&self, values: impl IntoIterator<Item = Option<&'a Value>>) -> Option<Value> {
        let held: Vec<&Value> = values
            .into_iter()
            .filter(|v| self.holds(*v))
            .flatten()
            .collect();
        if held.is_empty() {
            return None;
        }
        match self.kind {
            OptOutKind::Flag => Some(Value::Bool(true)),
            OptOutKind::Names => {
                names_value(held.iter().filter_map(|v| v.as_text()).flat_map(names))
            }
        }
    }
}

/// The names of a [`FieldType::Names`] value's text: split at `;`, trimmed, empty ones dropped.
pub fn names(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|n| !n.is_empty())
}

/// The canonical [`FieldType::Names`] value of `names`: sorted, without repeats, joined by
/// `"; "`; `None` for no names. A `;` inside a name would read back as two names, so it is
/// replaced by `,`.
pub fn names_value<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Option<Value> {
    let mut set: Vec<String> = names
        .into_iter()
        .map(|n| n.as_ref().trim().replace(';', ","))
        .filter(|n| !n.is_empty())
        .collect();
    set.sort();
    set.dedup();
    (!set.is_empty()).then(|| Value::Text(set.join("; ")))
}

/// Every opt-out the model carries, in report order.
pub static OPT_OUTS: &[OptOut] = &[
    OptOut {
        field: field::EMAIL_OPT_OUT,
        channel: "email",
        kind: OptOutKind::Flag,
    },
    OptOut {
        field: field::DO_NOT_CALL,
        channel: "phone",
        kind: OptOutKind::Flag,
    },
    OptOut {
        field: field::SMS_OPT_OUT,
        channel: "sms",
        kind: OptOutKind::Flag,
    },
    OptOut {
        field: field::FAX_OPT_OUT,
        channel: "fax",
        kind: OptOutKind::Flag,
    },
    OptOut {
        field: field::POSTAL_OPT_OUT,
        channel: "postal",
        kind: OptOutKind::Flag,
    },
    OptOut {
        field: field::EMAIL_UNSUBSCRIBED_TYPES,
        channel: "email_types",
        kind: OptOutKind::Names,
    },
];

/// One legal basis for processing a person's data, as the model names it (GDPR Art. 6(1)
/// (a)–(f), and the refinements vendors keep).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegalBasis {
    /// The canonical name, e.g. `"consent"`.
    pub name: &'static str,
    /// The basis this one refines, if it is a refinement: a sink that keeps only the broader
    /// basis is written that (HubSpot's "legitimate interest, existing customer" is a
    /// legitimate interest). Never the other way: a broader basis is not made more specific.
    pub broader: Option<&'static str>,
}

const fn basis(name: &'static str, broader: Option<&'static str>) -> LegalBasis {
    LegalBasis { name, broader }
}

/// Every legal basis the model names ([`field::LEGAL_BASIS`] holds a set of these). A
/// connector translates its vendor's options into these names and back; an option outside
/// them is carried under the vendor's own name.
pub static LEGAL_BASES: &[LegalBasis] = &[
    basis("consent", None),
    basis("contract", None),
    basis("legal_obligation", None),
    basis("vital_interests", None),
    basis("public_interest", None),
    basis("legitimate_interests", None),
    basis(
        "legitimate_interests_prospect",
        Some("legitimate_interests"),
    ),
    basis(
        "legitimate_interests_customer",
        Some("legitimate_interests"),
    ),
    basis("not_applicable", None),
];

/// The consent records: fields that record a fact about consent but are not opt-outs (a legal
/// basis, the day consent was given). A source record without one says nothing: ferry never clears a sink's, and
/// verification reads a sink's own as standing ([`crate::consent::leave_out`],
/// [`crate::consent::keep_sink_opt_outs`]).
pub static CONSENT_RECORDS: &[&str] = &[field::LEGAL_BASIS, field::CONSENT_DATE];

/// The legal basis named `name`, if the model names it.
pub fn legal_basis(name: &str) -> Option<&'static LegalBasis> {
    LEGAL_BASES.iter().find(|b| b.name == name)
}

/// The opt-out `field` holds, if it is a consent field.
pub fn opt_out(field: &str) -> Option<&'static OptOut> {
    OPT_OUTS.iter().find(|o| o.field == field)
}

/// The canonical company fields.
pub static COMPANY_FIELDS: &[FieldSpec] = &[
    spec(field::NAME, FieldType::Text),
    spec(field::DOMAIN, FieldType::Text),
    spec(field::PHONE, FieldType::Phone),
    spec(field::INDUSTRY, FieldType::Text),
    spec(field::EMPLOYEE_COUNT, FieldType::Integer),
    spec(field::ANNUAL_REVENUE, FieldType::Decimal),
    spec(field::STREET, FieldType::Text),
    spec(field::CITY, FieldType::Text),
    spec(field::STATE, FieldType::Text),
    spec(field::POSTAL_CODE, FieldType::Text),
    spec(field::COUNTRY, FieldType::Text),
    spec(field::CREATED_AT, FieldType::Timestamp),
    spec(field::UPDATED_AT, FieldType::Timestamp),
    spec(field::OWNER, FieldType::Owner),
];

/// The canonical deal fields.
pub static DEAL_FIELDS: &[FieldSpec] = &[
    spec(field::NAME, FieldType::Text),
    spec(field::AMOUNT, FieldType::Decimal),
    spec(field::CURRENCY, FieldType::Text),
    spec(field::CLOSE_DATE, FieldType::Date),
    spec(field::STAGE, FieldType::Stage),
    spec(field::STATUS, FieldType::Text),
    spec(field::OWNER, FieldType::Owner),
    spec(
        field::COMPANY,
        FieldType::Reference(RefSpec::one(&[ObjectType::COMPANIES])),
    ),
    spec(
        field::CONTACTS,
        FieldType::Reference(RefSpec {
            targets: &[ObjectType::CONTACTS],
            many: true,
        }),
    ),
    spec(field::CREATED_AT, FieldType::Timestamp),
    spec(field::UPDATED_AT, FieldType::Timestamp),
];

/// The canonical note fields. The order of `parents`' targets is the priority a sink that
/// keeps a single parent follows: deal, then contact, then company.
pub static NOTE_FIELDS: &[FieldSpec] = &[
    spec(field::BODY, FieldType::RichText),
    spec(field::TIMESTAMP, FieldType::Timestamp),
    spec(field::OWNER, FieldType::Owner),
    spec(
        field::PARENTS,
        FieldType::Reference(RefSpec {
            targets: &[
                ObjectType::DEALS,
                ObjectType::CONTACTS,
                ObjectType::COMPANIES,
            ],
            many: true,
        }),
    ),
    spec(field::CREATED_AT, FieldType::Timestamp),
    spec(field::UPDATED_AT, FieldType::Timestamp),
];

/// A normalised field value. Two vendors' representations of the same fact map to equal values.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text, emails and phone numbers, exactly as stored.
    Text(String),
    /// A flag.
    Bool(bool),
    /// A whole number.
    Integer(i64),
    /// A decimal amount.
    Decimal(f64),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// The source id of another record, for a reference with one target object.
    Reference(String),
    /// References that name their object: to one of several objects, or to many records.
    Links(Vec<Link>),
    /// A calendar date, as days since 1970-01-01.
    Date(i64),
    /// A pipeline stage, by the vendor's ids (for Salesforce and Zoho, whose records hold the
    /// label, the "id" is the label text; a vendor without pipelines reports one pipeline).
    Stage(Box<StageId>),
}

// A large run holds tens of thousands of records at once (a Bulk API 2.0 job read back, one
// written, a batch read), each a vector of (field, value): a value of 48 bytes, as two
// strings inline made it, took a third of the field vectors' memory. One stage per deal is
// worth a box; keep every variant within 24 bytes.
const _: () = assert!(std::mem::size_of::<Value>() <= 32);

/// The vendor's ids of a pipeline stage, as [`Value::Stage`] holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageId {
    /// The pipeline's id.
    pub pipeline: String,
    /// The stage's id within it.
    pub stage: String,
}

/// One reference of a [`Value::Links`]: the object and the source id of the record it points at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// The object of the record pointed at.
    pub object: ObjectType,
    /// That record's source id.
    pub id: String,
}

impl Value {
    /// A `Stage` value: the pipeline's id and the stage's id within it.
    pub fn stage(pipeline: impl Into<String>, stage: impl Into<String>) -> Value {
        Value::Stage(Box::new(StageId {
            pipeline: pipeline.into(),
            stage: stage.into(),
        }))
    }

    /// The text of a `Text` or `Reference` value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Reference(s) => Some(s),
            _ => None,
        }
    }

    /// The flag of a `Bool` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Parses a vendor's string into a value of type `ty`, or `None` when it is empty.
    ///
    /// Vendors send most values as strings (HubSpot sends all of them so); this is the one place
    /// where their spellings ("true", "1000.00", "2024-01-02T03:04:05.000+0000") are normalised.
    pub fn parse(ty: FieldType, raw: &str) -> Result<Option<Value>, ValueError> {
        if raw.is_empty() {
            return Ok(None);
        }
        let bad = |expected: &'static str| ValueError { expected };
        let value = match ty {
            FieldType::Text
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Owner
            | FieldType::RichText => Value::Text(raw.to_owned()),
            FieldType::Names => match names_value(names(raw)) {
                Some(v) => v,
                None => return Ok(None),
            },
            // A stage needs its pipeline too: a connector builds it.
            FieldType::Stage => return Err(bad("a pipeline and a stage")),
            FieldType::Date => Value::Date(parse_date(raw).ok_or_else(|| bad("a date"))?),
            FieldType::Reference(to) if !to.is_links() => Value::Reference(raw.to_owned()),
            // A bare id cannot say which object it points at: a connector builds the links.
            FieldType::Reference(_) => return Err(bad("references naming their objects")),
            FieldType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" => Value::Bool(false),
                _ => return Err(bad("a boolean")),
            },
            FieldType::Integer => {
                let n: f64 = raw.trim().parse().map_err(|_| bad("a whole number"))?;
                if n.fract() != 0.0 || !n.is_finite() || n.abs() > i64::MAX as f64 {
                    return Err(bad("a whole number"));
                }
                Value::Integer(n as i64)
            }
            FieldType::Decimal => {
                let n: f64 = raw.trim().parse().map_err(|_| bad("a number"))?;
                if !n.is_finite() {
                    return Err(bad("a number"));
                }
                Value::Decimal(n)
            }
            FieldType::Timestamp => {
                Value::Timestamp(parse_timestamp(raw).ok_or_else(|| bad("an ISO-8601 timestamp"))?)
            }
        };
        Ok(Some(value))
    }

    /// The JSON a vendor's API takes for this value in a field of canonical type `ty`: flags
    /// and numbers as JSON booleans and numbers, everything else as strings in vendor form
    /// (RFC 3339 timestamps). A value of another type is converted first; the error says what
    /// the field expected (never the value).
    pub fn to_json(&self, ty: FieldType) -> Result<serde_json::Value, &'static str> {
        use serde_json::Value as Json;
        if let (
            FieldType::Text | FieldType::Email | FieldType::Phone | FieldType::RichText,
            Value::Text(s),
        ) = (ty, self)
        {
            // Most fields of every record written: one copy of the text, not two.
            return Ok(Json::String(s.clone()));
        }
        if let (FieldType::Stage, Value::Stage(id)) = (ty, self) {
            return Ok(Json::String(id.stage.clone()));
        }
        let normalised = match (ty, self) {
            (FieldType::Bool, Value::Bool(_))
            | (FieldType::Integer, Value::Integer(_))
            | (FieldType::Decimal, Value::Decimal(_))
            | (FieldType::Date, Value::Date(_))
            | (
                FieldType::Text | FieldType::Email | FieldType::Phone | FieldType::Owner,
                Value::Text(_),
            ) => self.clone(),
            // Anything else is parsed into the field's type first: names into canonical form.
            _ => match Value::parse(ty, &self.to_vendor_string()) {
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

    /// The value in a vendor's string form: RFC 3339 for timestamps, shortest form for numbers.
    pub fn to_vendor_string(&self) -> String {
        match self {
            Value::Text(s) | Value::Reference(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Integer(n) => n.to_string(),
            Value::Decimal(n) => format_decimal(*n),
            Value::Timestamp(ms) => format_timestamp(*ms),
            Value::Date(days) => format_date(*days),
            // The stage id alone: vendors set the stage by its id (or label), the pipeline apart.
            Value::Stage(id) => id.stage.clone(),
            Value::Links(links) => links
                .iter()
                .map(|l| format!("{}:{}", l.object, l.id))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// A vendor value that does not fit the canonical field's type. Holds no part of the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("value is not {expected}")]
pub struct ValueError {
    /// What the field expected, e.g. "a whole number".
    pub expected: &'static str,
}

/// Formats a decimal in its shortest exact form, without exponent (`1000`, `12.5`).
pub fn format_decimal(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Parses an ISO-8601 / RFC 3339 timestamp (`Z`, `+0000` or `+00:00` offsets, optional
/// fraction), or epoch milliseconds, into epoch milliseconds UTC.
pub fn parse_timestamp(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = digits[2..].parse().ok()?;
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Parses a calendar date: `YYYY-MM-DD`, or a timestamp at midnight UTC (some vendors send a
/// date as a date-time), into days since 1970-01-01. A time other than midnight is not a date.
pub fn parse_date(raw: &str) -> Option<i64> {
    let s = raw.trim();
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
            return None;
        }
        return Some(days_from_civil(year, month, day));
    }
    let ms = parse_timestamp(s)?;
    (ms.rem_euclid(86_400_000) == 0).then(|| ms.div_euclid(86_400_000))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds (`2024-01-02T03:04:05.000Z`).
pub fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-from-civil algorithm: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

/// A canonical field name: static for standard fields, owned for custom ones.
pub type FieldName = Cow<'static, str>;

/// One CRM record in canonical form, identified by its id in the source system.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// What kind of record this is.
    pub object: ObjectType,
    /// The record's id in the source system; every sink stores it in an external-id field.
    pub source_id: String,
    /// Canonical field values; a field with no value is absent.
    pub fields: Fields,
}

/// A record's field values by canonical name, in name order (the order checksums hash them
/// in). One vector sorted by name: a record holds one to two dozen fields, and a `BTreeMap`
/// took a node of 11 slots for the first and three nodes past 11, about twice the memory of
/// the fields themselves, which mattered where a run holds tens of thousands of records at
/// once (a Bulk API 2.0 job's, read back).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(Vec<(FieldName, Value)>);

/// A field and its value, as [`Fields`] iterates them.
type FieldRef<'a> = (&'a FieldName, &'a Value);

impl Fields {
    /// No fields.
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    fn position(&self, field: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|(name, _)| name.as_ref().cmp(field))
    }

    /// Sets `field` to `value`, returning the value it replaced.
    pub fn insert(&mut self, field: FieldName, value: Value) -> Option<Value> {
        match self.position(&field) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (field, value));
                None
            }
        }
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.position(field).ok().map(|at| &self.0[at].1)
    }

    /// The value of `field` to change in place, if present.
    pub fn get_mut(&mut self, field: &str) -> Option<&mut Value> {
        self.position(field).ok().map(|at| &mut self.0[at].1)
    }

    /// Removes `field`, returning its value.
    pub fn remove(&mut self, field: &str) -> Option<Value> {
        self.position(field).ok().map(|at| self.0.remove(at).1)
    }

    /// How many fields have a value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field has a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields and their values, in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = FieldRef<'_>> + ExactSizeIterator {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// The fields and their values to change in place, in name order.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&FieldName, &mut Value)> + ExactSizeIterator {
        self.0.iter_mut().map(|(name, value)| (&*name, value))
    }

    /// The names of the fields with a value, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &FieldName> + ExactSizeIterator {
        self.0.iter().map(|(name, _)| name)
    }

    /// The values, in their fields' name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.0.iter().map(|(_, value)| value)
    }

    /// Keeps only the fields `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&FieldName, &mut Value) -> bool) {
        self.0.retain_mut(|(name, value)| keep(name, value));
    }

    /// Gives back the room a record built field by field grew beyond its fields: for records
    /// held a while in numbers (a batch waiting to be verified).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl FromIterator<(FieldName, Value)> for Fields {
    /// Collects fields; of a name given twice, the last value stays (as inserting each would).
    fn from_iter<I: IntoIterator<Item = (FieldName, Value)>>(fields: I) -> Fields {
        let mut out = Fields::new();
        out.extend(fields);
        out
    }
}

impl Extend<(FieldName, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (FieldName, Value)>>(&mut self, fields: I) {
        for (name, value) in fields {
            self.insert(name, value);
        }
    }
}

impl IntoIterator for Fields {
    type Item = (FieldName, Value);
    type IntoIter = std::vec::IntoIter<(FieldName, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = FieldRef<'a>;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (FieldName, Value)>,
        fn(&'a (FieldName, Value)) -> FieldRef<'a>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (name, value))
    }
}

impl Record {
    /// An empty record of `object` with the given source id.
    pub fn new(object: ObjectType, source_id: impl Into<String>) -> Record {
        Record {
            object,
            source_id: source_id.into(),
            fields: Fields::new(),
        }
    }

    /// Sets a field named at run time (a mapped field's `custom.<name>`).
    pub fn set_named(&mut self, field: impl Into<FieldName>, value: Value) {
        self.fields.insert(field.into(), value);
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The text of `field`, if present and textual.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_text)
    }

    /// Sets `field` to `value`.
    pub fn set(&mut self, field: &'static str, value: Value) {
        self.fields.insert(Cow::Borrowed(field), value);
    }

    /// Parses `raw` as the canonical type of `field` and sets it; empty strings leave it absent.
    ///
    /// The error names the field and the record, never the value.
    pub fn set_parsed(&mut self, field: &'static str, raw: &str) -> Result<(), FieldError> {
        let ty = self
            .object
            .field(field)
            .map(|f| f.ty)
            .unwrap_or(FieldType::Text);
        match Value::parse(ty, raw) {
            Ok(Some(v)) => {
                self.set(field, v);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(FieldError {
                field,
                source_id: self.source_id.clone(),
                expected: e.expected,
            }),
        }
    }
}

/// A vendor value that could not be mapped to its canonical field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` of record {source_id}: value is not {expected}")]
pub struct FieldError {
    /// The canonical field.
    pub field: &'static str,
    /// The record's source id.
    pub source_id: String,
    /// What the field expected.
    pub expected: &'static str,
}

#[cfg(test)]
mod tests {

    #[test]
    fn fields_stay_in_name_order_and_a_name_holds_one_value() {
        let mut fields = Fields::new();
        assert_eq!(fields.insert("phone".into(), Value::Text("1".into())), None);
        assert_eq!(fields.insert("email".into(), Value::Bool(true)), None);
        assert_eq!(
            fields.insert(Cow::Owned("custom.z".into()), Value::Integer(3)),
            None
        );
        assert_eq!(
            fields.insert("phone".into(), Value::Text("2".into())),
            Some(Value::Text("1".into()))
        );
        let names: Vec<&str> = fields.keys().map(|k| k.as_ref()).collect();
        assert_eq!(names, ["custom.z", "email", "phone"]);
        assert_eq!(fields.get("phone"), Some(&Value::Text("2".into())));
        assert!(fields.get("email").is_some() && fields.get("city").is_none());
        if let Some(v) = fields.get_mut("custom.z") {
            *v = Value::Integer(4);
        }
        assert_eq!(fields.remove("email"), Some(Value::Bool(true)));
        assert_eq!(fields.remove("email"), None);
        assert_eq!(fields.len(), 2);
        // Collected twice under one name, the last value stays, as inserting each would.
        let collected: Fields = [
            (Cow::Borrowed("b"), Value::Integer(1)),
            (Cow::Borrowed("a"), Value::Integer(2)),
            (Cow::Borrowed("b"), Value::Integer(3)),
        ]
        .into_iter()
        .collect();
        let pairs: Vec<(&str, &Value)> = collected.iter().map(|(k, v)| (k.as_ref(), v)).collect();
        assert_eq!(
            pairs,
            [("a", &Value::Integer(2)), ("b", &Value::Integer(3))]
        );
        assert_eq!(fields.get("custom.z"), Some(&Value::Integer(4)));
    }

    #[test]
    fn the_write_order_follows_the_reference_edges_not_the_order_given() {
        assert_eq!(
            ObjectType::CONTACTS.references().collect::<Vec<_>>(),
            vec![Edge {
                field: field::COMPANY,
                targets: &[ObjectType::COMPANIES],
                many: false,
            }]
        );
        assert_eq!(ObjectType::COMPANIES.references().count(), 0);
        for given in [
            vec![ObjectType::CONTACTS, ObjectType::COMPANIES],
            vec![
                ObjectType::COMPANIES,
                ObjectType::CONTACTS,
                ObjectType::COMPANIES,
            ],
        ] {
            assert_eq!(
                write_order(&given),
                Ok(vec![ObjectType::COMPANIES, ObjectType::CONTACTS])
            );
        }
        // An object whose target is not in the run waits for nothing.
        assert_eq!(
            write_order(&[ObjectType::CONTACTS]),
            Ok(vec![ObjectType::CONTACTS])
        );
    }

    use super::*;

    /// Notes hang on companies or contacts (many of them); tasks on a note, and a loop of
    /// objects that refer to each other.
    static NOTES: ObjectSpec = ObjectSpec {
        name: "notes",
        fields: &[
            FieldSpec {
                name: "body",
                ty: FieldType::Text,
            },
            FieldSpec {
                name: "parents",
                ty: FieldType::Reference(RefSpec {
                    targets: &[ObjectType::CONTACTS, ObjectType::COMPANIES],
                    many: true,
                }),
            },
        ],
    };
    static LOOP_A: ObjectSpec = ObjectSpec {
        name: "a",
        fields: &[FieldSpec {
            name: "b",
            ty: FieldType::Reference(RefSpec::one(&[ObjectType::new(&LOOP_B)])),
        }],
    };
    static LOOP_B: ObjectSpec = ObjectSpec {
        name: "b",
        fields: &[FieldSpec {
            name: "a",
            ty: FieldType::Reference(RefSpec::one(&[ObjectType::new(&LOOP_A)])),
        }],
    };

    #[test]
    fn an_object_is_its_descriptor_and_its_edges_order_the_writes() {
        let notes = ObjectType::new(&NOTES);
        assert_eq!(notes.as_str(), "notes");
        assert_eq!(notes.references().count(), 1);
        // A note waits for both objects it may point at, whatever order they are given in.
        assert_eq!(
            write_order(&[notes, ObjectType::CONTACTS, ObjectType::COMPANIES]),
            Ok(vec![ObjectType::COMPANIES, ObjectType::CONTACTS, notes])
        );
        let (a, b) = (ObjectType::new(&LOOP_A), ObjectType::new(&LOOP_B));
        let cycle = write_order(&[a, b]).unwrap_err();
        assert_eq!(
            cycle.to_string(),
            "objects a, b refer to each other in a cycle (a.b -> b, b.a -> a): none can be \
             written after the objects it refers to"
        );
        // Handles compare, hash and sort by name; only built-in names parse from config.
        assert_eq!(ObjectType::new(&COMPANIES), ObjectType::COMPANIES);
        assert!(ObjectType::COMPANIES < ObjectType::CONTACTS && ObjectType::CONTACTS < notes);
        assert_eq!(ObjectType::parse("tasks"), None);
        assert_eq!(ObjectType::parse("deals"), Some(ObjectType::DEALS));
        assert_eq!(
            serde_json::to_string(&ObjectType::CONTACTS).unwrap(),
            "\"contacts\""
        );
        let back: ObjectType = serde_json::from_str("\"companies\"").unwrap();
        assert_eq!(back, ObjectType::COMPANIES);
        let unknown = serde_json::from_str::<ObjectType>("\"tasks\"").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown object `tasks`"),
            "{unknown}"
        );
    }

    #[test]
    fn a_reference_to_several_objects_is_not_a_bare_id() {
        let parents = NOTES.fields[1].ty;
        assert!(Value::parse(parents, "42").is_err());
        let company = ObjectType::CONTACTS.field(field::COMPANY).unwrap().ty;
        assert_eq!(
            Value::parse(company, "42").unwrap(),
            Some(Value::Reference("42".into()))
        );
    }

    #[test]
    fn timestamps_in_vendor_spellings_agree() {
        let hubspot = parse_timestamp("2022-06-01T14:31:48.469Z").unwrap();
        let salesforce = parse_timestamp("2022-06-01T14:31:48.469+0000").unwrap();
        let offset = parse_timestamp("2022-06-01T16:31:48.469+02:00").unwrap();
        assert_eq!(hubspot, salesforce);
        assert_eq!(hubspot, offset);
        assert_eq!(format_timestamp(hubspot), "2022-06-01T14:31:48.469Z");
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1654094108469"), Some(1_654_094_108_469));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2022-13-01T00:00:00Z"), None);
    }

    #[test]
    fn dates_in_vendor_spellings_agree_and_a_time_of_day_is_not_a_date() {
        let day = Value::parse(FieldType::Date, "2024-02-29").unwrap();
        assert_eq!(day, Some(Value::Date(19_782)));
        for midnight in [
            "2024-02-29T00:00:00Z",
            "2024-02-29T00:00:00.000+0000",
            "2024-02-29T01:00:00+01:00",
        ] {
            assert_eq!(
                Value::parse(FieldType::Date, midnight).unwrap(),
                day,
                "{midnight}"
            );
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-02-29T10:00:00Z",
            "29/02/2024",
            "2024-2-29",
        ] {
            assert!(Value::parse(FieldType::Date, bad).is_err(), "{bad}");
        }
        assert_eq!(format_date(19_782), "2024-02-29");
        assert_eq!(
            Value::Date(19_782).to_json(FieldType::Date),
            Ok(serde_json::json!("2024-02-29"))
        );
        for days in (-700_000i64..2_900_000).step_by(991) {
            assert_eq!(parse_date(&format_date(days)), Some(days), "day {days}");
        }
    }

    #[test]
    fn owners_pass_through_as_ids_and_stages_are_built_by_connectors() {
        assert_eq!(
            Value::parse(FieldType::Owner, "7731").unwrap(),
            Some(Value::Text("7731".into()))
        );
        assert!(Value::parse(FieldType::Stage, "closedwon").is_err());
        let stage = Value::stage("default", "closedwon");
        assert_eq!(
            stage.to_json(FieldType::Stage),
            Ok(serde_json::json!("closedwon"))
        );
    }

    #[test]
    fn deals_and_notes_are_written_after_what_they_refer_to_and_owners_are_no_edge() {
        let given = [
            ObjectType::NOTES,
            ObjectType::DEALS,
            ObjectType::CONTACTS,
            ObjectType::COMPANIES,
        ];
        assert_eq!(
            write_order(&given),
            Ok(vec![
                ObjectType::COMPANIES,
                ObjectType::CONTACTS,
                ObjectType::DEALS,
                ObjectType::NOTES
            ])
        );
        assert_eq!(write_order(&ObjectType::ALL), write_order(&given));
        for object in ObjectType::ALL {
            assert_eq!(ObjectType::parse(object.as_str()), Some(object));
            assert!(object.references().all(|e| e.field != field::OWNER));
        }
        let parents = ObjectType::NOTES.field(field::PARENTS).unwrap().ty;
        assert_eq!(
            parents,
            FieldType::Reference(RefSpec {
                targets: &[
                    ObjectType::DEALS,
                    ObjectType::CONTACTS,
                    ObjectType::COMPANIES
                ],
                many: true
            })
        );
        assert_eq!(ObjectType::DEFAULT_RUN, ObjectType::ALL);
    }

    #[test]
    fn timestamp_round_trip_over_many_days() {
        for day in (-800_000i64..800_000).step_by(997) {
            let ms = day * 86_400_000 + 12_345;
            assert_eq!(
                parse_timestamp(&format_timestamp(ms)),
                Some(ms),
                "day {day}"
            );
        }
    }

    #[test]
    fn numbers_normalise_across_spellings() {
        let a = Value::parse(FieldType::Decimal, "1000000.00").unwrap();
        let b = Value::parse(FieldType::Decimal, "1000000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.unwrap().to_vendor_string(), "1000000");
        assert_eq!(
            Value::parse(FieldType::Integer, "250.0").unwrap(),
            Some(Value::Integer(250))
        );
        assert!(Value::parse(FieldType::Integer, "2.5").is_err());
        assert!(Value::parse(FieldType::Decimal, "NaN").is_err());
        assert_eq!(
            Value::parse(FieldType::Bool, "TRUE").unwrap(),
            Some(Value::Bool(true))
        );
        assert_eq!(Value::parse(FieldType::Text, "").unwrap(), None);
    }

    #[test]
    fn json_for_vendors() {
        use serde_json::json;
        assert_eq!(Value::Bool(true).to_json(FieldType::Bool), Ok(json!(true)));
        assert_eq!(
            Value::Text("250".into()).to_json(FieldType::Integer),
            Ok(json!(250))
        );
        assert_eq!(
            Value::Decimal(12.5).to_json(FieldType::Decimal),
            Ok(json!(12.5))
        );
        assert_eq!(
            Value::Timestamp(0).to_json(FieldType::Timestamp),
            Ok(json!("1970-01-01T00:00:00.000Z"))
        );
        assert_eq!(
            Value::Text(String::new()).to_json(FieldType::Integer),
            Ok(json!(null))
        );
        assert_eq!(
            Value::Text("many".into()).to_json(FieldType::Integer),
            Err("a whole number")
        );
    }

    #[test]
    fn field_error_names_field_and_record_not_value() {
        let mut r = Record::new(ObjectType::COMPANIES, "c-1");
        let err = r
            .set_parsed(field::EMPLOYEE_COUNT, "lots-of-people")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("employee_count") && text.contains("c-1"));
        assert!(!text.contains("lots-of-people"));
    }
}
