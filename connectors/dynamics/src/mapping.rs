//! Canonical fields ↔ Dataverse columns: one table per object, used for writing, reading and
//! reading back, so every direction agrees by construction.
//!
//! Not mapped: `industry` (account `industrycode` is a choice column holding option numbers, not
//! text) and, on writes, `created_at` / `updated_at` (system columns). Consent: an opt-out is
//! written as both `donotemail` and `donotbulkemail`; nothing else about consent is ever written;
//! a record reads as opted out if either flag is set.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use ferry_core::model::FieldType;
use ferry_core::model::Link;
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

/// Deals ↔ opportunity: the plain columns. The currency, stage, status, owner and links are
/// mapped by the row's other parts.
pub const OPPORTUNITY_FIELDS: &[(&str, &str)] = &[
    (field::NAME, "name"),
    (field::AMOUNT, "estimatedvalue"),
    (field::CLOSE_DATE, "estimatedclosedate"),
];

/// Notes ↔ annotation: the body (rich text, held as given). The timestamp, owner and parent are
/// mapped by the row's other parts.
pub const ANNOTATION_FIELDS: &[(&str, &str)] = &[(field::BODY, "notetext")];

/// The longest `notetext` Dataverse holds (a `Memo` of 100,000 characters).
pub const NOTETEXT_MAX: usize = 100_000;

/// The owner lookup every user-owned table has: written as `ownerid@odata.bind:
/// "/systemusers(<guid>)"`, read as `_ownerid_value`.
pub const OWNER_NAV: &str = "ownerid";
/// How a read selects the owner lookup's value.
pub const OWNER_VALUE: &str = "_ownerid_value";

/// The two consent columns an email opt-out sets, and reads from.
pub const OPT_OUT_COLUMNS: [&str; 2] = ["donotemail", "donotbulkemail"];
/// A contact's consent columns, per canonical opt-out: every column of an opt-out is set by a
/// `true`, and any one set reads as opted out.
pub const CONTACT_OPT_OUTS: &[DataverseOptOut] = &[
    DataverseOptOut {
        canonical: field::EMAIL_OPT_OUT,
        columns: &OPT_OUT_COLUMNS,
    },
    DataverseOptOut {
        canonical: field::DO_NOT_CALL,
        columns: &["donotphone"],
    },
    DataverseOptOut {
        canonical: field::FAX_OPT_OUT,
        columns: &["donotfax"],
    },
    DataverseOptOut {
        canonical: field::POSTAL_OPT_OUT,
        columns: &["donotpostalmail", "donotbulkpostalmail"],
    },
];
/// The contact's navigation property to its parent account.
pub const COMPANY_NAV: &str = "parentcustomerid_account";

/// The system columns a source reads for timestamps.
const TIMESTAMPS: [(&str, &str); 2] = [
    (field::CREATED_AT, "createdon"),
    (field::UPDATED_AT, "modifiedon"),
];

/// A reference a table holds: one lookup column, written through a single-valued navigation
/// property as `<navigation>@odata.bind: "/<target set>(<source-id column>='…')"` (Dataverse
/// finds the target by its alternate key, so no id map is needed) and expanded on reads. A
/// lookup holds one record: a link field (a deal's contacts, a note's parents) keeps one link
/// (the sink declares `FieldLimit::max_links(field, 1)`).
#[derive(Debug)]
pub struct DataverseReference {
    /// The canonical field holding the target's source id, e.g. a contact's `company`.
    pub canonical: &'static str,
    /// The lookup column, as Dataverse's messages may name it (`parentcustomerid`).
    pub lookup: &'static str,
    /// The navigation property bound and expanded per target object, in the field's priority
    /// order (`objectid_opportunity`, `objectid_contact`, `objectid_account`).
    pub navigations: &'static [(ObjectType, &'static str)],
    /// Other navigation properties bound to the same record as the first target's
    /// (an opportunity's `customerid_account` beside `parentaccountid`), written, never read.
    pub mirrors: &'static [&'static str],
}

/// Where a table keeps a deal's pipeline stage: a choice whose values are the business process
/// flow's `stagecategory` numbers, and the flow (the pipeline) as a lookup.
#[derive(Debug)]
pub struct DataverseStage {
    /// The canonical field (`stage`).
    pub canonical: &'static str,
    /// The choice column written and read (`salesstage`).
    pub column: &'static str,
    /// The flow's lookup value as read (`_processid_value`); set by Dataverse, never written.
    pub process: &'static str,
}

/// Where a table keeps won and lost: the state column (`statecode` 0 open, 1 won, 2 lost),
/// changed by the close actions, never by a plain write.
#[derive(Debug)]
pub struct DataverseStatus {
    /// The canonical field (`status`).
    pub canonical: &'static str,
    /// The state column (`statecode`).
    pub column: &'static str,
    /// The action that closes a record as won, with its status reason (`WinOpportunity`, 3).
    pub win: (&'static str, i64),
    /// The action that closes a record as lost, with its status reason (`LoseOpportunity`, 4).
    pub lose: (&'static str, i64),
    /// The close activity's lookup to the record (`opportunityid@odata.bind`).
    pub close_bind: &'static str,
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
    /// Its consent columns, one entry per opt-out it carries.
    pub opt_outs: &'static [DataverseOptOut],
    /// The canonical fields Dataverse refuses a record without. None: Dataverse does not
    /// enforce "business required" columns (a contact's last name) through the Web API.
    pub required: &'static [&'static str],
    /// Whether it is user-owned (`ownerid`), carrying the canonical `owner`.
    pub owned: bool,
    /// The currency lookup's navigation property (`transactioncurrencyid`), carrying the
    /// canonical `currency` as the currency's ISO code.
    pub currency: Option<&'static str>,
    /// Its pipeline stage, if it has one.
    pub stage: Option<DataverseStage>,
    /// Its won/lost state, if it has one.
    pub status: Option<DataverseStatus>,
    /// The canonical timestamp written on create only and read back (`overriddencreatedon`,
    /// read as `createdon`): `(canonical, written column, read column)`.
    pub timestamp: Option<(&'static str, &'static str, &'static str)>,
    /// The most characters a canonical text field holds.
    pub max_chars: &'static [(&'static str, usize)],
    /// The rows Dataverse deletes with a record of this table (relationships whose Delete
    /// behaviour is Cascade by default); RemoveLink relationships are not listed.
    pub cascades: &'static [Cascade],
}

/// Rows Dataverse deletes with the record their lookup holds.
#[derive(Debug)]
pub struct Cascade {
    /// The child table's entity set (`opportunities`).
    pub set: &'static str,
    /// The child's lookup value as read and filtered (`_customerid_value`).
    pub lookup: &'static str,
    /// The children as a message names them (`opportunities linked by customerid`).
    pub name: &'static str,
}

/// A record's notes (`Account_Annotation`, `Contact_Annotation`, `Opportunity_Annotation`:
/// Delete = Cascade).
const NOTES_CASCADE: Cascade = Cascade {
    set: "annotations",
    lookup: "_objectid_value",
    name: "notes",
};
/// Opportunities whose potential customer is the record (`opportunity_customer_accounts`,
/// `opportunity_customer_contacts`: Delete = Cascade; `parentaccountid` only unlinks).
const CUSTOMER_CASCADE: Cascade = Cascade {
    set: "opportunities",
    lookup: "_customerid_value",
    name: "opportunities (customerid)",
};

/// Dataverse's side of every object ferry moves: read top to bottom to see what maps where.
pub static OBJECTS: &[DataverseObject] = &[
    DataverseObject {
        object: ObjectType::COMPANIES,
        logical: "account",
        set: "accounts",
        id: "accountid",
        fields: ACCOUNT_FIELDS,
        references: &[],
        opt_outs: &[],
        required: &[],
        owned: true,
        currency: None,
        stage: None,
        status: None,
        timestamp: None,
        max_chars: &[],
        // `contact_customer_accounts` is a parental relationship: its contacts go too.
        cascades: &[
            Cascade {
                set: "contacts",
                lookup: "_parentcustomerid_value",
                name: "contacts (parentcustomerid)",
            },
            CUSTOMER_CASCADE,
            NOTES_CASCADE,
        ],
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
            navigations: &[(ObjectType::COMPANIES, COMPANY_NAV)],
            mirrors: &[],
        }],
        opt_outs: CONTACT_OPT_OUTS,
        required: &[],
        owned: true,
        currency: None,
        stage: None,
        status: None,
        timestamp: None,
        max_chars: &[],
        cascades: &[CUSTOMER_CASCADE, NOTES_CASCADE],
    },
    DataverseObject {
        object: ObjectType::DEALS,
        logical: "opportunity",
        set: "opportunities",
        id: "opportunityid",
        fields: OPPORTUNITY_FIELDS,
        references: &[
            // The potential customer (`customerid`) follows the account: Dataverse's forms
            // expect one. Deleting that account then deletes the opportunity (Cascade), as in
            // any Dataverse environment.
            DataverseReference {
                canonical: field::COMPANY,
                lookup: "parentaccountid",
                navigations: &[(ObjectType::COMPANIES, "parentaccountid")],
                mirrors: &["customerid_account"],
            },
            // Dataverse holds one contact per opportunity.
            DataverseReference {
                canonical: field::CONTACTS,
                lookup: "parentcontactid",
                navigations: &[(ObjectType::CONTACTS, "parentcontactid")],
                mirrors: &[],
            },
        ],
        opt_outs: &[],
        required: &[],
        owned: true,
        currency: Some("transactioncurrencyid"),
        stage: Some(DataverseStage {
            canonical: field::STAGE,
            column: "salesstage",
            process: "_processid_value",
        }),
        status: Some(DataverseStatus {
            canonical: field::STATUS,
            column: "statecode",
            win: ("WinOpportunity", 3),
            lose: ("LoseOpportunity", 4),
            close_bind: "opportunityid@odata.bind",
        }),
        timestamp: None,
        max_chars: &[],
        cascades: &[NOTES_CASCADE],
    },
    DataverseObject {
        object: ObjectType::NOTES,
        logical: "annotation",
        set: "annotations",
        id: "annotationid",
        fields: ANNOTATION_FIELDS,
        // The regarding lookup holds one record, of one of three tables.
        references: &[DataverseReference {
            canonical: field::PARENTS,
            lookup: "objectid",
            navigations: &[
                (ObjectType::DEALS, "objectid_opportunity"),
                (ObjectType::CONTACTS, "objectid_contact"),
                (ObjectType::COMPANIES, "objectid_account"),
            ],
            mirrors: &[],
        }],
        opt_outs: &[],
        required: &[],
        owned: true,
        currency: None,
        stage: None,
        status: None,
        timestamp: Some((field::TIMESTAMP, "overriddencreatedon", "createdon")),
        max_chars: &[(field::BODY, NOTETEXT_MAX)],
        cascades: &[],
    },
];

/// The row of `object`, or the refusal of an object this connector does not move (or whose
/// references point at one it does not move).
pub fn binding(object: ObjectType) -> ConnectorResult<&'static DataverseObject> {
    let table = ferry_core::kit::row_of(VENDOR, OBJECTS, object)?;
    for reference in table.references {
        for (target, _) in reference.navigations {
            ferry_core::kit::row_of(VENDOR, OBJECTS, *target)?;
        }
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

/// The row of `object` ([`binding`] checked the targets exist).
fn row(object: ObjectType) -> Option<&'static DataverseObject> {
    ferry_core::kit::row_of(VENDOR, OBJECTS, object).ok()
}

impl DataverseReference {
    /// Whether the canonical field of `object` holds links ([`Value::Links`]) rather than one
    /// bare reference.
    pub fn is_links(&self, object: ObjectType) -> bool {
        matches!(
            object.field(self.canonical).map(|f| f.ty),
            Some(FieldType::Reference(to)) if to.is_links()
        )
    }

    /// The objects it may point at.
    pub fn targets(&self) -> impl Iterator<Item = ObjectType> + '_ {
        self.navigations.iter().map(|(t, _)| *t)
    }
}

/// The canonical fields the sink writes and reads back through `map`: exactly what
/// round-trips. A note's timestamp is among them, kept to the second ([`limits`]).
pub fn stored_fields(table: &DataverseObject, map: &FieldMap) -> Vec<String> {
    let mut names = map.canonical_names();
    names.extend(table.opt_outs.iter().map(|o| o.canonical.to_owned()));
    names.extend(table.references.iter().map(|r| r.canonical.to_owned()));
    if table.owned {
        names.push(field::OWNER.to_owned());
    }
    if table.currency.is_some() {
        names.push(field::CURRENCY.to_owned());
    }
    names.extend(table.stage.iter().map(|s| s.canonical.to_owned()));
    names.extend(table.status.iter().map(|s| s.canonical.to_owned()));
    names.extend(table.timestamp.iter().map(|(c, _, _)| (*c).to_owned()));
    names
}

/// What the sink cannot hold of `table`'s fields: the longest texts, one link in a link field
/// held in a single lookup, and a fraction of a second in a timestamp (Dataverse keeps whole
/// seconds).
pub fn limits(table: &DataverseObject) -> Vec<ferry_core::FieldLimit> {
    let mut limits: Vec<ferry_core::FieldLimit> = table
        .max_chars
        .iter()
        .map(|(canonical, max)| ferry_core::FieldLimit::max_chars(*canonical, *max))
        .collect();
    for reference in table.references {
        if reference.is_links(table.object) {
            limits.push(ferry_core::FieldLimit::max_links(reference.canonical, 1));
        }
    }
    limits.extend(
        table
            .timestamp
            .iter()
            .map(|(canonical, _, _)| ferry_core::FieldLimit::to_the_second(*canonical)),
    );
    limits
}

/// Every column name `map` and the compound fields touch on `table` (for `$select` and for
/// naming columns in rejections).
pub fn columns<'a>(table: &DataverseObject, map: &'a FieldMap) -> Vec<&'a str> {
    let mut names = map.vendor_names();
    for opt_out in table.opt_outs {
        names.extend(opt_out.columns);
    }
    if table.owned {
        names.push(OWNER_VALUE);
    }
    if let Some(stage) = &table.stage {
        names.extend([stage.column, stage.process]);
    }
    if let Some(status) = &table.status {
        names.push(status.column);
    }
    if let Some((_, _, read)) = table.timestamp {
        names.push(read);
    }
    names
}

/// The canonical field a column maps to through `map`, for naming it beside the column.
pub fn canonical_of(table: &DataverseObject, map: &FieldMap, column: &str) -> Option<String> {
    if let Some(opt_out) = table.opt_outs.iter().find(|o| o.columns.contains(&column)) {
        return Some(opt_out.canonical.to_owned());
    }
    let reference = table.references.iter().find(|r| {
        column == r.lookup
            || r.mirrors.contains(&column)
            || r.navigations.iter().any(|(_, nav)| *nav == column)
    });
    if let Some(reference) = reference {
        return Some(reference.canonical.to_owned());
    }
    if table.owned && (column == OWNER_NAV || column == OWNER_VALUE) {
        return Some(field::OWNER.to_owned());
    }
    if table.currency == Some(column) {
        return Some(field::CURRENCY.to_owned());
    }
    if let Some(stage) = table.stage.as_ref().filter(|s| s.column == column) {
        return Some(stage.canonical.to_owned());
    }
    if let Some(status) = table.status.as_ref().filter(|s| s.column == column) {
        return Some(status.canonical.to_owned());
    }
    if let Some((canonical, _, _)) = table.timestamp.filter(|t| t.1 == column) {
        return Some(canonical.to_owned());
    }
    map.by_vendor(column).map(|b| b.canonical.to_string())
}

/// `$select` for a read through `map`: the mapped columns, the primary key, the timestamps
/// (sources) or the source-id column (read-back).
pub fn select(table: &DataverseObject, map: &FieldMap, extra: &[&str]) -> String {
    let mut cols = columns(table, map);
    cols.push(table.id);
    for column in extra {
        if !cols.contains(column) {
            cols.push(column);
        }
    }
    cols.join(",")
}

/// The column of a reference's target that a read selects, by `identity`: the target's
/// primary key (a source reads the target's id) or its source-id column (a read-back).
fn target_column(target: ObjectType, identity: Identity<'_>) -> Option<&str> {
    match identity {
        Identity::Source => row(target).map(|t| t.id),
        Identity::ReadBack(column) => Some(column),
    }
}

/// The currency's column a read selects through the currency lookup.
const CURRENCY_CODE: &str = "isocurrencycode";

/// `$expand` of `table`'s lookups (a contact's parent account, a note's three regarding
/// navigations, a deal's currency), each selecting the target's column for `identity`; `None`
/// without lookups.
pub fn expand(table: &DataverseObject, identity: Identity<'_>) -> Option<String> {
    let mut parts: Vec<String> = table
        .references
        .iter()
        .flat_map(|r| r.navigations.iter())
        .filter_map(|(target, nav)| {
            let column = target_column(*target, identity)?;
            Some(format!("{nav}($select={column})"))
        })
        .collect();
    if let Some(nav) = table.currency {
        parts.push(format!("{nav}($select={CURRENCY_CODE})"));
    }
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

/// The environment's currencies: ISO code (upper case) → `transactioncurrencyid`.
pub type Currencies = BTreeMap<String, String>;

/// Whether `id` can stand as a record id in a path (`/systemusers(<id>)`): a GUID's characters only.
pub(crate) fn is_guid_like(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// `/<set>(<source-id column>='…')`: the bind of a record by its source id, or the refusal of
/// an id alternate keys cannot hold.
fn bind_by_key(
    record: &Record,
    canonical: &str,
    target: &DataverseObject,
    source_id_column: &str,
    source_id: &str,
) -> Result<Json, RecordRejection> {
    if source_id.contains(UNSUPPORTED_KEY_CHARS) {
        return Err(unwritable(
            record,
            canonical,
            "a source id without / < > * % & : \\ ? + (alternate keys cannot hold them)",
        ));
    }
    Ok(Json::String(format!(
        "/{}({source_id_column}={})",
        target.set,
        literal(source_id)
    )))
}

/// The record `reference` points at: its target object and source id. A link field keeps its
/// first link by the field's target priority (the engine already left out what one lookup cannot
/// hold, see [`limits`]).
pub(crate) fn pointed_at<'r>(
    table: &DataverseObject,
    reference: &DataverseReference,
    record: &'r Record,
) -> Option<(ObjectType, &'r str)> {
    if reference.is_links(table.object) {
        let Some(Value::Links(links)) = record.get(reference.canonical) else {
            return None;
        };
        reference.targets().find_map(|target| {
            links
                .iter()
                .find(|l| l.object == target && !l.id.is_empty())
                .map(|l| (target, l.id.as_str()))
        })
    } else {
        let target = reference.navigations.first()?.0;
        let id = record.text(reference.canonical).filter(|s| !s.is_empty())?;
        Some((target, id))
    }
}

/// The JSON body of an upsert of `record` (a row of `table`) through `map`: every mapped
/// column (absent ones as `null`, which clears them on update; a choice as its option value),
/// the opt-out only when it is `true`, each reference (a contact's company, a deal's contact, a
/// note's parent) bound by its target's alternate key (or unbound), the owner bound by user id,
/// the currency by its id in `currencies`, the stage as its choice value, and a deal's state
/// as open (`statecode: 0`: a won or lost deal is reopened to be updated, then closed again by
/// the sink). The source id is in the URL, never in the body. A value that cannot be written
/// refuses the record, naming the field.
pub fn to_dataverse(
    table: &DataverseObject,
    record: &Record,
    source_id_column: &str,
    map: &FieldMap,
    currencies: &Currencies,
) -> Result<Map<String, Json>, RecordRejection> {
    let mut out = Map::new();
    for b in map.iter() {
        if ferry_core::consent::leave_out(record, &b.canonical) {
            // A mapped opt-out column too: only `true` is written, an opt-out is never cleared.
            continue;
        }
        let value = match record.get(&b.canonical) {
            None => Json::Null,
            Some(v) => column_value(record, b, v)?,
        };
        out.insert(b.vendor.to_string(), value);
    }
    for opt_out in table.opt_outs {
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
        let Some((first, _)) = reference.navigations.first() else {
            continue;
        };
        // One lookup column: one bind, through the navigation of the target's table (or the
        // first navigation's `null`, which clears the lookup).
        let (navigation, value) = match pointed_at(table, reference, record) {
            Some((target, source_id)) => {
                let Some((nav, row)) = reference
                    .navigations
                    .iter()
                    .find(|(t, _)| *t == target)
                    .and_then(|(t, nav)| Some((*nav, row(*t)?)))
                else {
                    continue;
                };
                let bind = bind_by_key(
                    record,
                    reference.canonical,
                    row,
                    source_id_column,
                    source_id,
                )?;
                (nav, bind)
            }
            None => {
                let nav = reference.navigations.iter().find(|(t, _)| t == first);
                (nav.map_or("", |n| n.1), Json::Null)
            }
        };
        out.insert(format!("{navigation}@odata.bind"), value.clone());
        for mirror in reference.mirrors {
            out.insert(format!("{mirror}@odata.bind"), value.clone());
        }
    }
    if table.owned {
        // An owner cannot be removed in Dataverse: none written leaves the record's (on
        // create, the application user's).
        if let Some(owner) = record.text(field::OWNER).filter(|s| !s.is_empty()) {
            if !is_guid_like(owner) {
                return Err(unwritable(
                    record,
                    field::OWNER,
                    "a Dataverse user id (GUID)",
                ));
            }
            out.insert(
                format!("{OWNER_NAV}@odata.bind"),
                Json::String(format!("/systemusers({owner})")),
            );
        }
    }
    if let Some(nav) = table.currency {
        // Dataverse gives every opportunity a currency (the base currency when none is named),
        // so an absent one writes nothing.
        if let Some(code) = record
            .text(field::CURRENCY)
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let Some(id) = currencies.get(&code.to_ascii_uppercase()) else {
                return Err(unwritable(
                    record,
                    field::CURRENCY,
                    "a currency code of this environment's currencies (transactioncurrencies)",
                ));
            };
            out.insert(
                format!("{nav}@odata.bind"),
                Json::String(format!("/transactioncurrencies({id})")),
            );
        }
    }
    if let Some(stage) = &table.stage {
        match record.get(stage.canonical) {
            Some(Value::Stage(id)) => {
                let Ok(value) = id.stage.trim().parse::<i64>() else {
                    return Err(unwritable(record, stage.canonical, "a sales stage number"));
                };
                out.insert(stage.column.into(), Json::from(value));
            }
            Some(_) => return Err(unwritable(record, stage.canonical, "a pipeline stage")),
            None => {}
        }
    }
    if let Some(status) = &table.status {
        out.insert(status.column.into(), Json::from(0));
    }
    if let Some((canonical, column, _)) = table.timestamp
        && let Some(value) = record.get(canonical)
    {
        let json = value
            .to_json(FieldType::Timestamp)
            .map_err(|expected| unwritable(record, canonical, expected))?;
        out.insert(column.into(), json);
    }
    Ok(out)
}

/// The close a won or lost `record` needs after its upsert: the action's name and body
/// (`{"Status": n, "OpportunityClose": {"opportunityid@odata.bind": "/opportunities(<address>)",
/// "actualend"?}}`, the address its id or its alternate key), or `None` for an open one (or a
/// table without a state).
pub fn close_action(
    table: &DataverseObject,
    record: &Record,
    address: &str,
) -> Option<(&'static str, Json)> {
    let status = table.status.as_ref()?;
    let word = record.text(status.canonical)?.trim().to_ascii_lowercase();
    let (action, reason) = match word.as_str() {
        "won" => status.win,
        "lost" => status.lose,
        _ => return None,
    };
    let mut close = Map::new();
    close.insert(
        status.close_bind.into(),
        Json::String(format!("/{}({address})", table.set)),
    );
    if let Some(Value::Date(days)) = record.get(field::CLOSE_DATE) {
        close.insert(
            "actualend".into(),
            Json::String(ferry_core::model::format_date(*days)),
        );
    }
    let mut body = Map::new();
    body.insert("Status".into(), Json::from(reason));
    body.insert("OpportunityClose".into(), Json::Object(close));
    Some((action, Json::Object(body)))
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
    let set = |record: &mut Record, bad: &mut Vec<String>, canonical: &'static str, raw: &str| {
        if let Err(e) = record.set_parsed(canonical, raw) {
            bad.push(e.field.to_owned());
        }
    };
    for opt_out in table.opt_outs {
        let opted_out = opt_out
            .columns
            .iter()
            .any(|c| row.get(*c).and_then(Json::as_bool) == Some(true));
        if opted_out {
            record.set(opt_out.canonical, Value::Bool(true));
        }
    }
    for reference in table.references {
        let mut links: Vec<Link> = Vec::new();
        for (target, nav) in reference.navigations {
            let Some(column) = target_column(*target, identity) else {
                continue;
            };
            if let Some(id) = row
                .get(*nav)
                .and_then(|a| a.get(column))
                .and_then(json_text)
                .filter(|s| !s.is_empty())
            {
                links.push(Link {
                    object: *target,
                    id,
                });
            }
        }
        if reference.is_links(table.object) {
            if !links.is_empty() {
                record.set(reference.canonical, Value::Links(links));
            }
        } else if let Some(link) = links.into_iter().next() {
            record.set(reference.canonical, Value::Reference(link.id));
        }
    }
    if table.owned
        && let Some(owner) = row.get(OWNER_VALUE).and_then(json_text)
    {
        record.set(field::OWNER, Value::Text(owner));
    }
    if let Some(nav) = table.currency
        && let Some(code) = row
            .get(nav)
            .and_then(|c| c.get(CURRENCY_CODE))
            .and_then(json_text)
    {
        record.set(field::CURRENCY, Value::Text(code));
    }
    if let Some(stage) = &table.stage {
        let process = row.get(stage.process).and_then(json_text);
        let value = row.get(stage.column).and_then(json_text);
        if let (Some(pipeline), Some(stage_id)) = (process, value) {
            record.set(stage.canonical, Value::stage(pipeline, stage_id));
        }
    }
    if let Some(status) = &table.status {
        match row.get(status.column).and_then(Json::as_i64) {
            Some(0) => record.set(status.canonical, Value::Text("open".into())),
            Some(1) => record.set(status.canonical, Value::Text("won".into())),
            Some(2) => record.set(status.canonical, Value::Text("lost".into())),
            Some(_) => bad.push(status.canonical.to_owned()),
            None => {}
        }
    }
    if let Some((canonical, _, column)) = table.timestamp
        && let Some(raw) = row.get(column).and_then(json_text)
    {
        set(&mut record, &mut bad, canonical, &raw);
    }
    if let Identity::Source = identity {
        for (canonical, column) in TIMESTAMPS {
            if let Some(raw) = row.get(column).and_then(json_text) {
                set(&mut record, &mut bad, canonical, &raw);
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
    fn every_canonical_field_but_industry_and_system_times_is_stored() {
        for object in ObjectType::ALL {
            let stored = stored_fields(table(object), &standard(object));
            for spec in object.fields() {
                // A note's timestamp is stored, to the second (see `limits`). Dataverse has no
                // text-message consent column, nor consent per subscription type, nor a
                // legal-basis column or consent date.
                let left_out = [
                    field::CREATED_AT,
                    field::UPDATED_AT,
                    field::INDUSTRY,
                    field::SMS_OPT_OUT,
                    field::EMAIL_UNSUBSCRIBED_TYPES,
                    field::LEGAL_BASIS,
                    field::CONSENT_DATE,
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
            &Currencies::new(),
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
            &Currencies::new(),
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
        let body = to_dataverse(
            table(ObjectType::COMPANIES),
            &r,
            "ferry_sourceid",
            &map,
            &Currencies::new(),
        )
        .unwrap();
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
        let refused = to_dataverse(
            table(ObjectType::COMPANIES),
            &r,
            "ferry_sourceid",
            &map,
            &Currencies::new(),
        )
        .unwrap_err();
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(refused.reason.contains("industrycode") && !refused.reason.contains("Banking"));
    }

    fn deal() -> Record {
        let mut r = Record::new(ObjectType::DEALS, "d-1");
        r.set(field::NAME, Value::Text("Renewal".into()));
        r.set(field::AMOUNT, Value::Decimal(1250.5));
        r.set(field::CURRENCY, Value::Text("eur".into()));
        r.set(field::CLOSE_DATE, Value::Date(19_782));
        r.set(field::STAGE, Value::stage("f1", "2"));
        r.set(field::STATUS, Value::Text("won".into()));
        r.set(
            field::OWNER,
            Value::Text("5e5e5e5e-0000-0000-0000-000000000002".into()),
        );
        r.set(field::COMPANY, Value::Reference("co-1".into()));
        r.set(
            field::CONTACTS,
            Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "p-1".into(),
            }]),
        );
        r
    }

    fn currencies() -> Currencies {
        Currencies::from([(
            "EUR".to_owned(),
            "7c7c7c7c-0000-0000-0000-000000000002".to_owned(),
        )])
    }

    #[test]
    fn a_deal_binds_its_links_owner_and_currency_and_is_written_open() {
        let t = table(ObjectType::DEALS);
        let body =
            to_dataverse(t, &deal(), "ferry_sourceid", &t.standard(), &currencies()).unwrap();
        assert_eq!(body["name"], "Renewal");
        assert_eq!(body["estimatedvalue"], json!(1250.5));
        assert_eq!(body["estimatedclosedate"], "2024-02-29");
        assert_eq!(body["salesstage"], json!(2));
        // Closed by the action after the upsert, never by the write.
        assert_eq!(body["statecode"], json!(0));
        assert!(body.get("statuscode").is_none());
        assert_eq!(
            body["parentaccountid@odata.bind"],
            "/accounts(ferry_sourceid='co-1')"
        );
        assert_eq!(
            body["customerid_account@odata.bind"],
            "/accounts(ferry_sourceid='co-1')"
        );
        assert_eq!(
            body["parentcontactid@odata.bind"],
            "/contacts(ferry_sourceid='p-1')"
        );
        assert_eq!(
            body["ownerid@odata.bind"],
            "/systemusers(5e5e5e5e-0000-0000-0000-000000000002)"
        );
        assert_eq!(
            body["transactioncurrencyid@odata.bind"],
            "/transactioncurrencies(7c7c7c7c-0000-0000-0000-000000000002)"
        );
        let (action, close) =
            close_action(t, &deal(), "0dd00000-0000-0000-0000-000000000001").unwrap();
        assert_eq!(action, "WinOpportunity");
        assert_eq!(
            close,
            json!({"Status": 3, "OpportunityClose": {
                "opportunityid@odata.bind": "/opportunities(0dd00000-0000-0000-0000-000000000001)",
                "actualend": "2024-02-29"}})
        );
        let mut lost = deal();
        lost.set(field::STATUS, Value::Text("Lost".into()));
        assert_eq!(close_action(t, &lost, "x").unwrap().0, "LoseOpportunity");
        lost.set(field::STATUS, Value::Text("open".into()));
        assert!(close_action(t, &lost, "x").is_none());
    }

    #[test]
    fn a_deal_without_links_unbinds_and_bad_values_are_refused_by_field() {
        let t = table(ObjectType::DEALS);
        let mut r = deal();
        r.fields.remove(field::COMPANY);
        r.fields.remove(field::CONTACTS);
        r.fields.remove(field::OWNER);
        r.fields.remove(field::CURRENCY);
        let body = to_dataverse(t, &r, "ferry_sourceid", &t.standard(), &currencies()).unwrap();
        assert_eq!(body["parentaccountid@odata.bind"], Json::Null);
        assert_eq!(body["customerid_account@odata.bind"], Json::Null);
        assert_eq!(body["parentcontactid@odata.bind"], Json::Null);
        // No owner or currency: Dataverse keeps the record's (it cannot clear them).
        assert!(body.get("ownerid@odata.bind").is_none());
        assert!(body.get("transactioncurrencyid@odata.bind").is_none());
        let refused = |r: &Record| {
            to_dataverse(t, r, "ferry_sourceid", &t.standard(), &currencies()).unwrap_err()
        };
        let mut r = deal();
        r.set(field::CURRENCY, Value::Text("XTS".into()));
        let e = refused(&r);
        assert!(
            e.reason.starts_with("currency is not") && !e.reason.contains("XTS"),
            "{}",
            e.reason
        );
        let mut r = deal();
        r.set(field::OWNER, Value::Text("jane@example.com".into()));
        assert!(refused(&r).reason.starts_with("owner is not"));
        let mut r = deal();
        r.set(field::STAGE, Value::stage("f1", "Closed Won"));
        assert!(refused(&r).reason.starts_with("stage is not"));
    }

    #[test]
    fn a_deal_reads_its_stage_status_owner_currency_and_one_contact_as_links() {
        let t = table(ObjectType::DEALS);
        let row = json!({
            "opportunityid": "0dd00000-0000-0000-0000-000000000001",
            "ferry_sourceid": "d-1",
            "name": "Renewal",
            "estimatedvalue": 1250.5,
            "estimatedclosedate": "2024-02-29",
            "salesstage": 2,
            "_processid_value": "f1",
            "statecode": 2,
            "_ownerid_value": "u-1",
            "transactioncurrencyid": {"isocurrencycode": "EUR"},
            "parentaccountid": {"accountid": "a-guid", "ferry_sourceid": "co-1"},
            "parentcontactid": {"contactid": "c-guid", "ferry_sourceid": "p-1"},
            "createdon": "2024-01-02T03:04:05Z",
        });
        let row = row.as_object().unwrap();
        let back = from_dataverse(t, row, Identity::ReadBack("ferry_sourceid"), &t.standard())
            .unwrap()
            .unwrap();
        assert_eq!(back.source_id, "d-1");
        assert_eq!(back.get(field::CLOSE_DATE), Some(&Value::Date(19_782)));
        assert_eq!(back.get(field::STAGE), Some(&Value::stage("f1", "2")));
        assert_eq!(back.text(field::STATUS), Some("lost"));
        assert_eq!(back.text(field::OWNER), Some("u-1"));
        assert_eq!(back.text(field::CURRENCY), Some("EUR"));
        assert_eq!(
            back.get(field::COMPANY),
            Some(&Value::Reference("co-1".into()))
        );
        assert_eq!(
            back.get(field::CONTACTS),
            Some(&Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "p-1".into()
            }]))
        );
        let read = from_dataverse(t, row, Identity::Source, &t.standard())
            .unwrap()
            .unwrap();
        assert_eq!(
            read.get(field::COMPANY),
            Some(&Value::Reference("a-guid".into()))
        );
        assert_eq!(
            read.get(field::CONTACTS),
            Some(&Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "c-guid".into()
            }]))
        );
        assert!(read.get(field::CREATED_AT).is_some());
    }

    #[test]
    fn a_note_binds_one_parent_by_priority_and_reads_it_back_as_a_link() {
        let t = table(ObjectType::NOTES);
        let mut r = Record::new(ObjectType::NOTES, "n-1");
        r.set(field::BODY, Value::Text("<p>Called</p>".into()));
        r.set(field::TIMESTAMP, Value::Timestamp(1_700_000_000_000));
        r.set(
            field::PARENTS,
            Value::Links(vec![
                Link {
                    object: ObjectType::COMPANIES,
                    id: "co-1".into(),
                },
                Link {
                    object: ObjectType::DEALS,
                    id: "d-1".into(),
                },
            ]),
        );
        let body =
            to_dataverse(t, &r, "ferry_sourceid", &t.standard(), &Currencies::new()).unwrap();
        assert_eq!(body["notetext"], "<p>Called</p>");
        assert_eq!(body["overriddencreatedon"], "2023-11-14T22:13:20.000Z");
        // One regarding lookup: the deal first, and no other navigation (a null would clear it).
        assert_eq!(
            body["objectid_opportunity@odata.bind"],
            "/opportunities(ferry_sourceid='d-1')"
        );
        assert!(body.get("objectid_account@odata.bind").is_none());
        assert!(body.get("objectid_contact@odata.bind").is_none());
        r.fields.remove(field::PARENTS);
        let body =
            to_dataverse(t, &r, "ferry_sourceid", &t.standard(), &Currencies::new()).unwrap();
        assert_eq!(body["objectid_opportunity@odata.bind"], Json::Null);
        assert_eq!(
            limits(t),
            vec![
                ferry_core::FieldLimit::max_chars(field::BODY, 100_000),
                ferry_core::FieldLimit::max_links(field::PARENTS, 1),
                ferry_core::FieldLimit::to_the_second(field::TIMESTAMP)
            ]
        );
        assert_eq!(
            limits(table(ObjectType::DEALS)),
            vec![ferry_core::FieldLimit::max_links(field::CONTACTS, 1)]
        );
        let row = json!({
            "annotationid": "0aa00000-0000-0000-0000-000000000001",
            "ferry_sourceid": "n-1",
            "notetext": "<p>Called</p>",
            "createdon": "2023-11-14T22:13:20Z",
            "objectid_opportunity": null,
            "objectid_contact": {"contactid": "c-guid", "ferry_sourceid": "p-1"},
            "objectid_account": null,
        });
        let back = from_dataverse(
            t,
            row.as_object().unwrap(),
            Identity::ReadBack("ferry_sourceid"),
            &t.standard(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            back.get(field::PARENTS),
            Some(&Value::Links(vec![Link {
                object: ObjectType::CONTACTS,
                id: "p-1".into()
            }]))
        );
        assert_eq!(
            back.get(field::TIMESTAMP),
            Some(&Value::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            expand(t, Identity::Source).as_deref(),
            Some(
                "objectid_opportunity($select=opportunityid),objectid_contact($select=contactid),\
                 objectid_account($select=accountid)"
            )
        );
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
        for object in ObjectType::ALL {
            assert_eq!(
                OBJECTS.iter().filter(|t| t.object == object).count(),
                1,
                "{object}"
            );
            assert_eq!(binding(object).unwrap().object, object);
        }
        assert_eq!(objects(), ObjectType::ALL);
        for t in OBJECTS {
            for reference in t.references {
                for (target, nav) in reference.navigations {
                    assert!(binding(*target).is_ok(), "{nav}");
                }
                // Every target the canonical field allows has a navigation, in its order.
                let Some(FieldType::Reference(to)) =
                    t.object.field(reference.canonical).map(|f| f.ty)
                else {
                    panic!("{} is no reference", reference.canonical);
                };
                assert_eq!(reference.targets().collect::<Vec<_>>(), to.targets);
            }
        }
        assert_eq!(
            expand(table(ObjectType::CONTACTS), Identity::Source).as_deref(),
            Some("parentcustomerid_account($select=accountid)")
        );
        assert_eq!(expand(table(ObjectType::COMPANIES), Identity::Source), None);
    }
}
