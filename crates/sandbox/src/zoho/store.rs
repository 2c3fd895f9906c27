//! The Zoho org's records: two modules (Accounts, Contacts), their field metadata, and the
//! upsert rules (validation, duplicate checks, unique fields).
//!
//! Record ids come from one counter, so within a module rows are stored in id order and a
//! lookup by id is a binary search. Unique fields and the module's system duplicate-check field
//! (Contacts `Email`, Accounts `Account_Name`) are indexed, so an upsert costs the same with a
//! million records as with ten.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

/// The first record id handed out; Zoho ids are 19-digit numbers.
pub(crate) const FIRST_ID: u64 = 4_876_876_000_000_100_001;

/// The modules the emulator holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Module {
    Accounts,
    Contacts,
}

impl Module {
    pub(crate) fn parse(name: &str) -> Option<Module> {
        match name {
            "Accounts" => Some(Module::Accounts),
            "Contacts" => Some(Module::Contacts),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Module::Accounts => "Accounts",
            Module::Contacts => "Contacts",
        }
    }

    /// The system-defined duplicate-check field of the module (upsert docs).
    pub(crate) fn system_duplicate_field(self) -> &'static str {
        match self {
            Module::Accounts => "Account_Name",
            Module::Contacts => "Email",
        }
    }

    /// The field whose value names a record in lookups (`{"name": …, "id": …}`).
    fn display_field(self) -> &'static str {
        match self {
            Module::Accounts => "Account_Name",
            Module::Contacts => "Last_Name",
        }
    }
}

/// A field's data type, as `settings/fields` reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Text,
    Email,
    Phone,
    Website,
    Picklist,
    Integer,
    /// A number with decimals (`double`), as custom "Decimal" fields are.
    Double,
    Currency,
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    Lookup(Module),
    DateTime,
    /// A user of the org (`ownerlookup`): written `{"id"}`, read `{"name", "id", "email"}`.
    Owner,
    /// The GDPR consent record `Data_Processing_Basis_Details` (a nested object, see
    /// [`CONSENT_KEYS`]), stored as its JSON text.
    Consent,
}

impl Kind {
    pub(crate) fn data_type(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Website => "website",
            Kind::Picklist => "picklist",
            Kind::Integer => "integer",
            Kind::Double => "double",
            Kind::Currency => "currency",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Lookup(_) => "lookup",
            Kind::DateTime => "datetime",
            Kind::Owner => "ownerlookup",
            // Zoho does not document the field's metadata; the name is the emulator's.
            Kind::Consent => "consent_lookup",
        }
    }

    /// The kind of a `data_type` the create-field call accepts, with its default length.
    pub(crate) fn creatable(data_type: &str) -> Option<(Kind, usize)> {
        Some(match data_type {
            "text" => (Kind::Text, 255),
            "email" => (Kind::Email, 100),
            "phone" => (Kind::Phone, 30),
            "website" => (Kind::Website, 255),
            "picklist" => (Kind::Picklist, 120),
            "integer" => (Kind::Integer, 9),
            "double" => (Kind::Double, 16),
            "currency" => (Kind::Currency, 16),
            "boolean" => (Kind::Boolean, 5),
            "date" => (Kind::Date, 20),
            "datetime" => (Kind::DateTime, 120),
            _ => return None,
        })
    }

    pub(crate) fn json_type(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Currency | Kind::Double => "double",
            Kind::Boolean => "boolean",
            Kind::Lookup(_) | Kind::Owner | Kind::Consent => "jsonobject",
            _ => "string",
        }
    }
}

/// One field of a module.
#[derive(Clone, Debug)]
pub(crate) struct FieldDef {
    pub api_name: String,
    pub label: String,
    pub kind: Kind,
    /// Longest text accepted, in characters.
    pub length: usize,
    pub mandatory: bool,
    /// `Some(case_sensitive)` for a field marked "Do not allow duplicate values".
    pub unique: Option<bool>,
    pub custom: bool,
    pub read_only: bool,
    /// A picklist's options: Zoho reads and writes the display value, and for the fields the
    /// emulator holds the actual value is the same text.
    pub options: Vec<String>,
}

fn std_field(api_name: &str, label: &str, kind: Kind, length: usize) -> FieldDef {
    FieldDef {
        api_name: api_name.to_owned(),
        label: label.to_owned(),
        kind,
        length,
        mandatory: false,
        unique: None,
        custom: false,
        read_only: false,
        options: Vec::new(),
    }
}

/// The options of Zoho's standard Accounts `Industry` picklist, as a new org has them.
pub(crate) const INDUSTRIES: &[&str] = &[
    "-None-",
    "ASP (Application Service Provider)",
    "Data/Telecom OEM",
    "ERP (Enterprise Resource Planning)",
    "Government/Military",
    "Large Enterprise",
    "ManagementISV",
    "MSP (Management Service Provider)",
    "Network Equipment Enterprise",
    "Non-management ISV",
    "Optical Networking",
    "Service Provider",
    "Small/Medium Enterprise",
    "Storage Equipment",
    "Storage Service Provider",
    "Systems Integrator",
    "Wireless Industry",
];

/// The GDPR consent record of a Contacts record where the org has GDPR compliance on
/// ([`crate::zoho::Options::gdpr`]).
pub(crate) const CONSENT_FIELD: &str = "Data_Processing_Basis_Details";

/// `Data_Processing_Basis` values ("GDPR Compliance", Zoho's API docs): the lawful bases, then
/// the consent stages (only `Obtained` says consent was given). A new record's is `Not
/// Applicable`.
pub(crate) const DATA_PROCESSING_BASES: &[&str] = &[
    "Not Applicable",
    "Legitimate Interests",
    "Contract",
    "Legal Obligation",
    "Vital Interests",
    "Public Interest",
    "Pending",
    "Awaiting",
    "Obtained",
    "Not Responded",
    "Denied",
];

/// The keys of [`CONSENT_FIELD`] the emulator keeps (the `Consent` schema's own, beside its id
/// and audit fields), with their kinds: text, a boolean, a date, a date-time.
const CONSENT_KEYS: &[(&str, Kind)] = &[
    ("Data_Processing_Basis", Kind::Picklist),
    ("Consent_Date", Kind::Date),
    ("Consent_Through", Kind::Text),
    ("Consent_Remarks", Kind::Text),
    ("Lawful_Reason", Kind::Text),
    ("Mail_Sent_Time", Kind::DateTime),
    ("Contact_Through_Email", Kind::Boolean),
    ("Contact_Through_Phone", Kind::Boolean),
    ("Contact_Through_Survey", Kind::Boolean),
    ("Contact_Through_Social", Kind::Boolean),
];

/// The API name Zoho derives from a field label: spaces become underscores, characters other
/// than letters, digits and underscores are dropped ("Favourite Colour" → `Favourite_Colour`).
pub(crate) fn api_name_from_label(label: &str) -> String {
    label
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('_'),
            c if c.is_ascii_alphanumeric() || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The org's seeded custom fields of `module` ([`crate::seed::CUSTOM_FIELDS`]), named as Zoho
/// names fields created with those labels.
fn custom_fields(module: Module) -> Vec<FieldDef> {
    let object = match module {
        Module::Accounts => "companies",
        Module::Contacts => "contacts",
    };
    crate::seed::CUSTOM_FIELDS
        .iter()
        .filter(|f| f.object == object)
        .map(|f| {
            let (kind, length, options) = match f.kind {
                crate::seed::CustomKind::Text => (Kind::Text, 255, Vec::new()),
                crate::seed::CustomKind::Number => (Kind::Integer, 9, Vec::new()),
                crate::seed::CustomKind::Picklist => (
                    Kind::Picklist,
                    120,
                    crate::seed::TIERS.iter().map(|t| (*t).to_owned()).collect(),
                ),
            };
            FieldDef {
                custom: true,
                options,
                ..std_field(&api_name_from_label(f.label), f.label, kind, length)
            }
        })
        .collect()
}

/// How the org's source-id custom field is set up (or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIdField {
    /// Its API name, e.g. `Ferry_Source_Id`.
    pub api_name: String,
    /// Whether "Do not allow duplicate values" is ticked.
    pub unique: bool,
    /// Whether uniqueness is case sensitive (only meaningful when `unique`).
    pub case_sensitive: bool,
}

/// A module's fields, by position and by API name.
#[derive(Debug)]
pub(crate) struct Schema {
    pub fields: Vec<FieldDef>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    fn new(module: Module, source_id: Option<&SourceIdField>, gdpr: bool) -> Schema {
        let mut fields = match module {
            Module::Contacts => vec![
                std_field("First_Name", "First Name", Kind::Text, 40),
                FieldDef {
                    mandatory: true,
                    ..std_field("Last_Name", "Last Name", Kind::Text, 80)
                },
                std_field("Email", "Email", Kind::Email, 100),
                std_field("Phone", "Phone", Kind::Phone, 30),
                std_field("Mobile", "Mobile", Kind::Phone, 30),
                std_field("Title", "Title", Kind::Text, 100),
                std_field("Mailing_Street", "Mailing Street", Kind::Text, 250),
                std_field("Mailing_City", "Mailing City", Kind::Text, 100),
                std_field("Mailing_State", "Mailing State", Kind::Text, 100),
                std_field("Mailing_Zip", "Mailing Zip", Kind::Text, 30),
                std_field("Mailing_Country", "Mailing Country", Kind::Text, 100),
                std_field("Email_Opt_Out", "Email Opt Out", Kind::Boolean, 5),
                std_field(
                    "Account_Name",
                    "Account Name",
                    Kind::Lookup(Module::Accounts),
                    120,
                ),
                std_field("Owner", "Contact Owner", Kind::Owner, 120),
            ],
            Module::Accounts => vec![
                FieldDef {
                    mandatory: true,
                    ..std_field("Account_Name", "Account Name", Kind::Text, 200)
                },
                std_field("Website", "Website", Kind::Website, 255),
                std_field("Phone", "Phone", Kind::Phone, 30),
                FieldDef {
                    options: INDUSTRIES.iter().map(|s| (*s).to_owned()).collect(),
                    ..std_field("Industry", "Industry", Kind::Picklist, 120)
                },
                std_field("Employees", "Employees", Kind::Integer, 9),
                std_field("Annual_Revenue", "Annual Revenue", Kind::Currency, 16),
                std_field("Billing_Street", "Billing Street", Kind::Text, 250),
                std_field("Billing_City", "Billing City", Kind::Text, 100),
                std_field("Billing_State", "Billing State", Kind::Text, 100),
                std_field("Billing_Code", "Billing Code", Kind::Text, 30),
                std_field("Billing_Country", "Billing Country", Kind::Text, 100),
                std_field("Owner", "Account Owner", Kind::Owner, 120),
            ],
        };
        if gdpr && module == Module::Contacts {
            fields.push(std_field(
                CONSENT_FIELD,
                "Data Processing Basis Details",
                Kind::Consent,
                0,
            ));
        }
        fields.extend(custom_fields(module));
        if let Some(f) = source_id {
            fields.push(FieldDef {
                unique: f.unique.then_some(f.case_sensitive),
                custom: true,
                ..std_field(&f.api_name, "Ferry Source Id", Kind::Text, 255)
            });
        }
        for (name, label) in [
            ("Created_Time", "Created Time"),
            ("Modified_Time", "Modified Time"),
        ] {
            fields.push(FieldDef {
                read_only: true,
                ..std_field(name, label, Kind::DateTime, 120)
            });
        }
        Schema::from_fields(fields)
    }

    fn from_fields(fields: Vec<FieldDef>) -> Schema {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.api_name.clone(), i))
            .collect();
        Schema { fields, by_name }
    }

    pub(crate) fn field(&self, api_name: &str) -> Option<usize> {
        self.by_name.get(api_name).copied()
    }

    /// The `settings/fields` answer (the attributes a client relies on).
    pub(crate) fn describe(&self) -> Json {
        let fields: Vec<Json> = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let unique = match f.unique {
                    Some(cs) => json!({"case_sensitive": cs}),
                    None => json!({}),
                };
                let lookup = match f.kind {
                    Kind::Lookup(m) => {
                        json!({"module": {"api_name": m.name(), "id": "4876876000000002177"}})
                    }
                    _ => json!({}),
                };
                let options: Vec<Json> = f
                    .options
                    .iter()
                    .enumerate()
                    .map(|(k, o)| {
                        json!({
                            "id": format!("4876876000{:03}{:06}", i, k + 1),
                            "sequence_number": k + 1,
                            "display_value": o,
                            "actual_value": o,
                            "reference_value": o,
                            "colour_code": null,
                            "type": "used",
                        })
                    })
                    .collect();
                json!({
                    "id": field_id(i),
                    "api_name": f.api_name,
                    "field_label": f.label,
                    "display_label": f.label,
                    "data_type": f.kind.data_type(),
                    "json_type": f.kind.json_type(),
                    "length": f.length,
                    "system_mandatory": f.mandatory,
                    "custom_field": f.custom,
                    "read_only": f.read_only,
                    "field_read_only": f.read_only,
                    "unique": unique,
                    "lookup": lookup,
                    "pick_list_values": options,
                    "decimal_place": if f.kind == Kind::Double { json!(2) } else { Json::Null },
                    "visible": true,
                    "type": "used",
                    "operation_type": {
                        "web_update": !f.read_only, "api_create": !f.read_only,
                        "web_create": !f.read_only, "api_update": !f.read_only
                    },
                })
            })
            .collect();
        json!({ "fields": fields })
    }
}

/// The id of the field at position `i` of its module (19 digits, like Zoho's).
pub(crate) fn field_id(i: usize) -> String {
    format!("48768760000000{:05}", 551 + i)
}

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Str(Box<str>),
    Bool(bool),
    Int(i64),
    Num(f64),
    /// A lookup: the parent record's id.
    Ref(u64),
}

/// One record.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub id: u64,
    /// One slot per schema field (read-only system fields stay `None`).
    pub values: Vec<Option<Val>>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// A module's records and indexes.
#[derive(Debug)]
pub(crate) struct Table {
    pub module: Module,
    pub schema: Arc<Schema>,
    /// In id order.
    pub rows: Vec<Row>,
    /// Unique field → (normalised value → row position).
    unique: HashMap<usize, HashMap<Box<str>, usize>>,
    /// System duplicate-check field value (lowercased) → first row holding it.
    system_dup: HashMap<Box<str>, usize>,
}

fn unique_key(value: &str, case_sensitive: bool) -> Box<str> {
    if case_sensitive {
        value.into()
    } else {
        value.to_lowercase().into_boxed_str()
    }
}

impl Table {
    fn new(module: Module, source_id: Option<&SourceIdField>, gdpr: bool) -> Table {
        let schema = Arc::new(Schema::new(module, source_id, gdpr));
        let unique = schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.unique.is_some())
            .map(|(i, _)| (i, HashMap::new()))
            .collect();
        Table {
            module,
            schema,
            rows: Vec::new(),
            unique,
            system_dup: HashMap::new(),
        }
    }

    /// Adds a field (the create-field call): every record gets it, empty. Returns its
    /// position.
    pub(crate) fn add_field(&mut self, def: FieldDef) -> usize {
        let mut fields = self.schema.fields.clone();
        fields.push(def);
        self.schema = Arc::new(Schema::from_fields(fields));
        for row in &mut self.rows {
            row.values.push(None);
        }
        self.schema.fields.len() - 1
    }

    /// The row position of record `id`.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id).ok()
    }

    /// The row holding `value` in unique field `field`, if that field is unique.
    pub(crate) fn by_unique(&self, field: usize, value: &str) -> Option<usize> {
        let cs = self.schema.fields.get(field)?.unique?;
        self.unique
            .get(&field)?
            .get(&unique_key(value, cs))
            .copied()
    }

    fn system_dup_field(&self) -> Option<usize> {
        self.schema.field(self.module.system_duplicate_field())
    }

    fn index(&mut self, pos: usize) {
        let row = &self.rows[pos];
        for (field, map) in self.unique.iter_mut() {
            let cs = self.schema.fields[*field].unique.unwrap_or(true);
            if let Some(Val::Str(s)) = &row.values[*field] {
                map.insert(unique_key(s, cs), pos);
            }
        }
        if let Some(f) = self.system_dup_field()
            && let Some(Val::Str(s)) = &row.values[f]
        {
            self.system_dup
                .entry(s.to_lowercase().into_boxed_str())
                .or_insert(pos);
        }
    }

    /// Removes record `id` (a delete); the unique indexes, which hold row positions, are
    /// rebuilt. Whether the record was there.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        self.rows.remove(pos);
        for map in self.unique.values_mut() {
            map.clear();
        }
        self.system_dup.clear();
        for pos in 0..self.rows.len() {
            self.index(pos);
        }
        true
    }

    fn unindex(&mut self, pos: usize) {
        let row = &self.rows[pos];
        for (field, map) in self.unique.iter_mut() {
            let cs = self.schema.fields[*field].unique.unwrap_or(true);
            if let Some(Val::Str(s)) = &row.values[*field] {
                map.remove(&unique_key(s, cs));
            }
        }
        if let Some(f) = self.system_dup_field()
            && let Some(Val::Str(s)) = &row.values[f]
        {
            let key = s.to_lowercase().into_boxed_str();
            if self.system_dup.get(&key) == Some(&pos) {
                self.system_dup.remove(&key);
            }
        }
    }
}

/// A whole-request error: status and Zoho's `{code, details, message, status}` body.
#[derive(Debug)]
pub(crate) struct RequestError {
    pub status: u16,
    pub body: Json,
}

impl RequestError {
    pub(crate) fn new(status: u16, code: &str, message: &str, details: Json) -> RequestError {
        RequestError {
            status,
            body: json!({"code": code, "details": details, "message": message, "status": "error"}),
        }
    }
}

/// The org.
#[derive(Debug)]
pub(crate) struct Store {
    accounts: Table,
    contacts: Table,
    next_id: u64,
    /// The org's users ([`crate::accounts::account_users`]), the first being the API's
    /// calling user (who writes, and owns what a write gives no owner).
    pub users: Vec<User>,
    /// Deals, Notes and the deals' contact roles (on the shared table engine).
    pub crm: super::crm::Crm,
    /// Every record deleted through the API, oldest first: what `GET /{module}/deleted` lists
    /// (the recycle bin is never emptied here).
    pub deleted: Vec<Deleted>,
}

/// A deleted record, as `GET /crm/v8/{module}/deleted` lists it.
#[derive(Clone, Debug)]
pub(crate) struct Deleted {
    /// The module's API name (`Accounts`).
    pub module: &'static str,
    /// The record's id.
    pub id: u64,
    /// When it was deleted, epoch milliseconds.
    pub at_ms: i64,
}

/// A user of the org, as `GET /crm/v8/users` lists them and `Owner` points at them.
#[derive(Clone, Debug)]
pub(crate) struct User {
    /// The seed user's key ([`crate::accounts::SeedUser::key`]).
    pub key: usize,
    /// The user id (19 digits, local to this org).
    pub id: u64,
    pub email: String,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// Deactivated users are listed (`status: "disabled"`) but cannot own records.
    pub active: bool,
}

impl User {
    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }

    /// `{"name", "id"}`, as `Created_By` / `Modified_By` show a user.
    pub(crate) fn minified(&self) -> Json {
        json!({"name": self.full_name(), "id": self.id.to_string()})
    }

    /// `{"name", "id", "email"}`, as `Owner` reads.
    pub(crate) fn owner_json(&self) -> Json {
        json!({"name": self.full_name(), "id": self.id.to_string(), "email": self.email})
    }
}

/// A timestamp as Zoho writes them: `2024-01-02T03:04:05+00:00`.
pub(crate) fn zoho_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::timestamp::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Zoho's email check, as far as ferry can tell: one `@`, a non-empty local part, a dotted
/// domain, no spaces.
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Whether `s` is a date as Zoho writes them: `YYYY-MM-DD`.
fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u8>().unwrap_or(0))
}

/// Whether `s` is a date-time as Zoho reads them: `YYYY-MM-DDTHH:MM:SS` and an offset
/// (`+05:30`, `-08:00` or `Z`).
fn valid_date_time(s: &str) -> bool {
    let (Some(date), Some(rest)) = (s.get(..10), s.get(10..)) else {
        return false;
    };
    let Some(time) = rest.strip_prefix('T') else {
        return false;
    };
    let clock = |t: &str| {
        let b = t.as_bytes();
        b.len() == 8
            && b[2] == b':'
            && b[5] == b':'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
    };
    let offset = |o: &str| {
        o == "Z"
            || (o.len() == 6
                && (o.starts_with('+') || o.starts_with('-'))
                && clock(&format!("{}:00", &o[1..])))
    };
    valid_date(date) && time.get(..8).is_some_and(clock) && time.get(8..).is_some_and(offset)
}

/// The consent record as read: its kept keys, `Data_Processing_Basis` `Not Applicable` where
/// none was set (Zoho's default for a record of a GDPR module).
fn consent_json(stored: Option<&Val>) -> Json {
    let mut out = match stored {
        Some(Val::Str(text)) => serde_json::from_str::<Map<String, Json>>(text).unwrap_or_default(),
        _ => Map::new(),
    };
    out.entry("Data_Processing_Basis")
        .or_insert_with(|| Json::String(DATA_PROCESSING_BASES[0].to_owned()));
    Json::Object(out)
}

/// The stored consent record `old` with the keys of `new` set over it.
fn merge_consent(old: &str, new: &str) -> String {
    let mut out = serde_json::from_str::<Map<String, Json>>(old).unwrap_or_default();
    out.extend(serde_json::from_str::<Map<String, Json>>(new).unwrap_or_default());
    Json::Object(out).to_string()
}

/// Zoho's `INVALID_DATA` for the field `api_name` at `json_path`, with `extra` details (the
/// expected type or length).
fn invalid_data(api_name: &str, json_path: &str, extra: Json) -> FieldError {
    let mut details = json!({"api_name": api_name, "json_path": json_path});
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    FieldError {
        code: "INVALID_DATA",
        message: "invalid data",
        details,
    }
}

/// The keys of a written consent record the emulator keeps, each checked: a basis out of
/// [`DATA_PROCESSING_BASES`], a `YYYY-MM-DD` date, a date-time, booleans, texts. A bad key is
/// `INVALID_DATA` naming it (`api_name` and its JSON path), as Zoho names a bad field; unknown
/// keys are ignored, and `null` leaves a key out.
fn consent_of(value: &Json, path: &str) -> Result<Map<String, Json>, FieldError> {
    let invalid = |key: &str, extra: Json| invalid_data(key, &format!("{path}.{key}"), extra);
    let Some(given) = value.as_object() else {
        return Err(FieldError {
            code: "INVALID_DATA",
            message: "invalid data",
            details: json!({"api_name": CONSENT_FIELD, "json_path": path, "expected_data_type": "jsonobject"}),
        });
    };
    let mut kept = Map::new();
    for (key, kind) in CONSENT_KEYS {
        let Some(v) = given.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        let expected = || invalid(key, json!({"expected_data_type": kind.data_type()}));
        let fits = match kind {
            Kind::Boolean => v.is_boolean(),
            Kind::Date => v.as_str().is_some_and(valid_date),
            Kind::DateTime => v.as_str().is_some_and(valid_date_time),
            Kind::Picklist => {
                if !v
                    .as_str()
                    .is_some_and(|b| DATA_PROCESSING_BASES.contains(&b))
                {
                    return Err(invalid(key, json!({})));
                }
                true
            }
            _ => v.as_str().is_some_and(|t| t.chars().count() <= 255),
        };
        if !fits {
            return Err(expected());
        }
        kept.insert((*key).to_owned(), v.clone());
    }
    Ok(kept)
}

/// The id of a lookup value `{"id": "…"}` (a string or a number).
pub(crate) fn lookup_id(value: &Json) -> Option<u64> {
    match value.get("id")? {
        Json::String(s) => s.parse::<u64>().ok(),
        Json::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// One per-record error: code, details (API name and JSON path), message.
struct FieldError {
    code: &'static str,
    message: &'static str,
    details: Json,
}

impl FieldError {
    fn to_json(&self) -> Json {
        json!({"code": self.code, "details": self.details, "message": self.message, "status": "error"})
    }
}

/// The outcome of one upserted record, as Zoho reports it.
pub(crate) struct ItemResult {
    pub ok: bool,
    pub body: Json,
}

impl Store {
    /// An empty org whose metadata ids (users, pipelines, layouts) start with `zgid` (eight
    /// digits, from the org id), so that two orgs' ids differ.
    pub(crate) fn new(
        source_id: Option<&SourceIdField>,
        zgid: u64,
        multi_currency: bool,
        gdpr: bool,
    ) -> Store {
        let users = crate::accounts::account_users("zoho")
            .into_iter()
            .map(|u| User {
                key: u.key,
                id: zgid * 100_000_000_000 + 2_250_001 + 1_000 * u.key as u64,
                email: u.email,
                first_name: u.first_name,
                last_name: u.last_name,
                active: u.active,
            })
            .collect();
        Store {
            accounts: Table::new(Module::Accounts, source_id, false),
            contacts: Table::new(Module::Contacts, source_id, gdpr),
            next_id: FIRST_ID,
            users,
            crm: super::crm::Crm::new(source_id, zgid, multi_currency),
            deleted: Vec::new(),
        }
    }

    /// The calling user: who writes, and who owns what a write gives no owner.
    pub(crate) fn current_user(&self) -> &User {
        &self.users[0]
    }

    /// User `id`, active or not.
    pub(crate) fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The id of seed user `key` in this org, or the calling user's when the org does not have
    /// that user (a record is always owned by someone).
    pub(crate) fn user_id_of_seed(&self, key: Option<usize>) -> u64 {
        key.and_then(|k| self.users.iter().find(|u| u.key == k))
            .unwrap_or(self.current_user())
            .id
    }

    pub(crate) fn table(&self, module: Module) -> &Table {
        match module {
            Module::Accounts => &self.accounts,
            Module::Contacts => &self.contacts,
        }
    }

    /// Marks the `n`th row (in id order) of `module` as modified at `now_ms`, as an edit by
    /// another user would.
    pub(crate) fn touch_nth(&mut self, module: Module, n: usize, now_ms: i64) {
        if let Some(row) = self.table_mut(module).rows.get_mut(n) {
            row.modified_ms = now_ms;
        }
    }

    pub(crate) fn table_mut(&mut self, module: Module) -> &mut Table {
        match module {
            Module::Accounts => &mut self.accounts,
            Module::Contacts => &mut self.contacts,
        }
    }

    /// Deletes record `id` of `module`; a contact's roles on deals go with it. Lookups that
    /// name it (a deal's `Contact_Name`, a note's parent) are left as they are.
    pub(crate) fn delete(&mut self, module: Module, id: u64) -> bool {
        if !self.table_mut(module).remove(id) {
            return false;
        }
        if module == Module::Contacts {
            self.crm.roles.unlink_all_to(id);
        }
        true
    }

    /// Inserts a copy of the record at `pos` of `module` under a new id, as a record saved while
    /// its unique fields did not refuse duplicates: the unique indexes keep the original.
    pub(crate) fn duplicate_row(&mut self, module: Module, pos: usize) -> Option<u64> {
        let id = self.next_id;
        let table = self.table_mut(module);
        let mut row = table.rows.get(pos)?.clone();
        row.id = id;
        table.rows.push(row);
        self.next_id += 1;
        Some(id)
    }

    /// Appends a record without validation (seeding); returns its id.
    pub(crate) fn insert_seeded(
        &mut self,
        module: Module,
        values: Vec<(&str, Option<Val>)>,
        created_ms: i64,
        modified_ms: i64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let table = self.table_mut(module);
        let mut row = Row {
            id,
            values: vec![None; table.schema.fields.len()],
            created_ms,
            modified_ms,
        };
        for (name, value) in values {
            if let Some(i) = table.schema.field(name) {
                row.values[i] = value;
            }
        }
        table.rows.push(row);
        let pos = table.rows.len() - 1;
        table.index(pos);
        id
    }

    /// A value of `row` for output in a list or query: JSON, with lookups as
    /// `{"name", "id"}` and timestamps in Zoho's format.
    pub(crate) fn render_value(&self, module: Module, row: &Row, field: usize) -> Json {
        let table = self.table(module);
        let def = &table.schema.fields[field];
        match def.api_name.as_str() {
            "Created_Time" => return Json::String(zoho_time(row.created_ms)),
            "Modified_Time" => return Json::String(zoho_time(row.modified_ms)),
            _ => {}
        }
        if def.kind == Kind::Consent {
            return consent_json(row.values[field].as_ref());
        }
        match &row.values[field] {
            None => Json::Null,
            Some(Val::Str(s)) => Json::String(s.to_string()),
            Some(Val::Bool(b)) => Json::Bool(*b),
            Some(Val::Int(n)) => Json::from(*n),
            Some(Val::Num(n)) => serde_json::Number::from_f64(*n)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Some(Val::Ref(id)) if def.kind == Kind::Owner => self
                .user(*id)
                .map_or_else(|| json!({"id": id.to_string()}), User::owner_json),
            Some(Val::Ref(id)) => {
                let Kind::Lookup(parent) = def.kind else {
                    return Json::Null;
                };
                let name = self
                    .parent_row(parent, *id)
                    .and_then(|r| {
                        let t = self.table(parent);
                        let f = t.schema.field(parent.display_field())?;
                        match &r.values[f] {
                            Some(Val::Str(s)) => Some(s.to_string()),
                            _ => None,
                        }
                    })
                    .map_or(Json::Null, Json::String);
                json!({"name": name, "id": id.to_string()})
            }
        }
    }

    /// The name a lookup to record `id` of `module` shows (`Account_Name`, a contact's
    /// `Last_Name`).
    pub(crate) fn record_name(&self, module: Module, id: u64) -> Option<String> {
        let row = self.parent_row(module, id)?;
        let f = self.table(module).schema.field(module.display_field())?;
        match &row.values[f] {
            Some(Val::Str(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    /// The row of record `id` in `module`.
    pub(crate) fn parent_row(&self, module: Module, id: u64) -> Option<&Row> {
        let t = self.table(module);
        t.position(id).map(|p| &t.rows[p])
    }

    /// Converts one JSON value for field `def`, or says why it cannot be stored.
    fn convert(&self, def: &FieldDef, value: &Json, path: &str) -> Result<Option<Val>, FieldError> {
        let invalid = |extra: Json| invalid_data(&def.api_name, path, extra);
        let expected = || invalid(json!({"expected_data_type": def.kind.data_type()}));
        if value.is_null() {
            return Ok(None);
        }
        let val = match def.kind {
            Kind::Text | Kind::Email | Kind::Phone | Kind::Website | Kind::Picklist => {
                let Some(s) = value.as_str() else {
                    return Err(expected());
                };
                if s.is_empty() {
                    return Ok(None);
                }
                if s.chars().count() > def.length {
                    return Err(invalid(json!({"maximum_length": def.length})));
                }
                if def.kind == Kind::Email && !valid_email(s) {
                    return Err(invalid(json!({})));
                }
                Val::Str(s.into())
            }
            Kind::Boolean => Val::Bool(value.as_bool().ok_or_else(expected)?),
            Kind::Integer => {
                let n = value.as_i64().ok_or_else(expected)?;
                if n.unsigned_abs().to_string().len() > def.length {
                    return Err(invalid(json!({"maximum_length": def.length})));
                }
                Val::Int(n)
            }
            Kind::Currency | Kind::Double => {
                let n = value
                    .as_f64()
                    .filter(|n| n.is_finite())
                    .ok_or_else(expected)?;
                Val::Num(n)
            }
            Kind::Date | Kind::DateTime => {
                let Some(s) = value.as_str() else {
                    return Err(expected());
                };
                if s.is_empty() {
                    return Ok(None);
                }
                let fits = if def.kind == Kind::Date {
                    valid_date(s)
                } else {
                    valid_date_time(s)
                };
                if !fits {
                    return Err(expected());
                }
                Val::Str(s.into())
            }
            Kind::Lookup(parent) => {
                let id = lookup_id(value).ok_or_else(expected)?;
                if self.parent_row(parent, id).is_none() {
                    return Err(invalid(json!({})));
                }
                Val::Ref(id)
            }
            Kind::Owner => {
                let id = lookup_id(value).ok_or_else(expected)?;
                // An unknown or deactivated user: `INVALID_DATA` naming `Owner`.
                if !self.user(id).is_some_and(|u| u.active) {
                    return Err(invalid(json!({})));
                }
                Val::Ref(id)
            }
            Kind::Consent => {
                let kept = consent_of(value, path)?;
                Val::Str(Json::Object(kept).to_string().into())
            }
        };
        Ok(Some(val))
    }

    /// Upserts `records` into `module`, one after another (a later record sees an earlier
    /// one's write), matching on `dup_fields` in order, then on the remaining unique fields.
    pub(crate) fn upsert(
        &mut self,
        module: Module,
        records: &[Map<String, Json>],
        dup_fields: &[usize],
        now_ms: i64,
    ) -> Vec<ItemResult> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| self.upsert_one(module, i, r, dup_fields, now_ms))
            .collect()
    }

    fn upsert_one(
        &mut self,
        module: Module,
        index: usize,
        record: &Map<String, Json>,
        dup_fields: &[usize],
        now_ms: i64,
    ) -> ItemResult {
        let schema = Arc::clone(&self.table(module).schema);
        let mut errors: Vec<FieldError> = Vec::new();
        let mut given: Vec<(usize, Option<Val>)> = Vec::new();
        // Unknown keys and read-only fields are ignored, as Zoho ignores them.
        for (key, value) in record {
            let Some(f) = schema.field(key) else { continue };
            let def = &schema.fields[f];
            if def.read_only {
                continue;
            }
            match self.convert(def, value, &format!("$.data[{index}].{key}")) {
                Ok(v) => given.push((f, v)),
                Err(e) => errors.push(e),
            }
        }
        let table = self.table(module);
        // Matching: the requested fields in order, then the other unique fields.
        let mut order: Vec<usize> = dup_fields.to_vec();
        for (i, f) in schema.fields.iter().enumerate() {
            if f.unique.is_some() && !order.contains(&i) {
                order.push(i);
            }
        }
        let mut matched: Option<(usize, &str)> = None;
        for f in order {
            let Some(Some(Val::Str(v))) = given.iter().find(|(g, _)| *g == f).map(|(_, v)| v)
            else {
                continue;
            };
            let hit = if schema.fields[f].unique.is_some() {
                table.by_unique(f, v)
            } else {
                table.system_dup.get(&*v.to_lowercase()).copied()
            };
            if let Some(pos) = hit {
                matched = Some((pos, schema.fields[f].api_name.as_str()));
                break;
            }
        }
        // The record as it would be after the write.
        let mut values = match matched {
            Some((pos, _)) => table.rows[pos].values.clone(),
            None => vec![None; schema.fields.len()],
        };
        for (f, v) in &given {
            values[*f] = match (schema.fields[*f].kind, &values[*f], v) {
                // The consent record takes the keys given and keeps the others (whether Zoho
                // replaces or merges it is not documented: merging never loses a date).
                (Kind::Consent, Some(Val::Str(old)), Some(Val::Str(new))) => {
                    Some(Val::Str(merge_consent(old, new).into()))
                }
                _ => v.clone(),
            };
        }
        // No owner given (or cleared): the calling user owns the record.
        if let Some(f) = schema.field("Owner")
            && values[f].is_none()
        {
            values[f] = Some(Val::Ref(self.current_user().id));
        }
        for (i, def) in schema.fields.iter().enumerate() {
            let supplied_invalid = errors
                .iter()
                .any(|e| e.details.get("api_name").and_then(Json::as_str) == Some(&def.api_name));
            if def.mandatory && values[i].is_none() && !supplied_invalid {
                errors.push(FieldError {
                    code: "MANDATORY_NOT_FOUND",
                    message: "required field not found",
                    details: json!({"api_name": def.api_name, "json_path": format!("$.data[{index}].{}", def.api_name)}),
                });
            }
            if let (Some(_), Some(Val::Str(v))) = (def.unique, &values[i]) {
                let holder = table.by_unique(i, v);
                let own = matched.map(|(p, _)| p);
                if holder.is_some() && holder != own {
                    let dup_id = holder.map(|p| table.rows[p].id.to_string());
                    errors.push(FieldError {
                        code: "DUPLICATE_DATA",
                        message: "duplicate data",
                        details: json!({
                            "api_name": def.api_name,
                            "json_path": format!("$.data[{index}].{}", def.api_name),
                            "duplicate_record": {"id": dup_id, "module": {"api_name": module.name()}, "Owner": self.current_user().owner_json()},
                        }),
                    });
                }
            }
        }
        if !errors.is_empty() {
            let body = if errors.len() == 1 {
                errors[0].to_json()
            } else {
                json!({
                    "code": "MULTIPLE_OR_MULTI_ERRORS",
                    "details": {"errors": errors.iter().map(FieldError::to_json).collect::<Vec<_>>()},
                    "message": "Multiple errors in the request",
                    "status": "error",
                })
            };
            return ItemResult { ok: false, body };
        }
        let duplicate_field = matched.map(|(_, name)| name.to_owned());
        let (pos, action, created_ms) = match matched {
            Some((pos, _)) => {
                let table = self.table_mut(module);
                table.unindex(pos);
                table.rows[pos].values = values;
                table.rows[pos].modified_ms = now_ms;
                table.index(pos);
                (pos, "update", table.rows[pos].created_ms)
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let table = self.table_mut(module);
                table.rows.push(Row {
                    id,
                    values,
                    created_ms: now_ms,
                    modified_ms: now_ms,
                });
                let pos = table.rows.len() - 1;
                table.index(pos);
                (pos, "insert", now_ms)
            }
        };
        let id = self.table(module).rows[pos].id;
        let writer = self.current_user().minified();
        ItemResult {
            ok: true,
            body: json!({
                "code": "SUCCESS",
                "duplicate_field": duplicate_field,
                "action": action,
                "details": {
                    "Modified_Time": zoho_time(now_ms),
                    "Modified_By": writer,
                    "Created_Time": zoho_time(created_ms),
                    "id": id.to_string(),
                    "Created_By": writer,
                },
                "message": if action == "insert" { "record added" } else { "record updated" },
                "status": "success",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_zoho_does() {
        assert_eq!(zoho_time(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(zoho_time(1_654_094_108_469), "2022-06-01T14:35:08+00:00");
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(valid_email("a.b@example.org"));
        for bad in ["a", "a@b", "@b.c", "a b@c.d", "a@b.", "a@@b.c"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
