//! The tables (account, contact), their columns as the Dataverse table reference defines them,
//! and the rows, indexed by primary key (a GUID, ordered) and by the alternate-key column.
//!
//! Dataverse compares strings under a case-insensitive collation, so the alternate-key index
//! folds case: two source ids that differ only in case address the same row, as they would in
//! a real environment.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json};

use super::error::{ApiError, Entity};

/// The alternate-key column ferry uses (created by the operator, as a custom column).
pub const KEY_COLUMN: &str = "ferry_sourceid";
/// The schema name of the alternate key defined on that column.
pub const KEY_NAME: &str = "ferry_sourceid_key";

/// The two tables the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// `account`, entity set `accounts`.
    Account,
    /// `contact`, entity set `contacts`.
    Contact,
}

impl Table {
    /// The logical name (`account`).
    pub fn logical(self) -> &'static str {
        match self {
            Table::Account => "account",
            Table::Contact => "contact",
        }
    }

    /// The entity set name used in URLs (`accounts`).
    pub fn set(self) -> &'static str {
        match self {
            Table::Account => "accounts",
            Table::Contact => "contacts",
        }
    }

    /// The primary key column (`accountid`).
    pub fn id_column(self) -> &'static str {
        match self {
            Table::Account => "accountid",
            Table::Contact => "contactid",
        }
    }

    /// The table whose entity set is `name`.
    pub fn from_set(name: &str) -> Option<Table> {
        match name {
            "accounts" => Some(Table::Account),
            "contacts" => Some(Table::Contact),
            _ => None,
        }
    }

    /// The table whose logical name is `name`.
    pub fn from_logical(name: &str) -> Option<Table> {
        match name {
            "account" => Some(Table::Account),
            "contact" => Some(Table::Contact),
            _ => None,
        }
    }

    /// The columns of this table.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Account => ACCOUNT_COLUMNS,
            Table::Contact => CONTACT_COLUMNS,
        }
    }

    /// The index of column `name`.
    pub fn column(self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }

    fn key_index(self) -> usize {
        // Both tables declare the key column; the position is fixed by the tables below.
        self.column(KEY_COLUMN).unwrap_or(0)
    }

    /// The GUID prefix of this table's generated ids, so ids of the two tables never collide.
    fn id_prefix(self) -> u128 {
        match self {
            Table::Account => 0xa0c0_0000,
            Table::Contact => 0xc0c0_0000,
        }
    }
}

/// What a column holds, with the limits of the table reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Single line of text, at most `max` characters.
    Text { max: usize },
    /// Two options, `false` by default (never null).
    Bool,
    /// Whole number in a range.
    Int { min: i64, max: i64 },
    /// Currency, in a range.
    Money { min: f64, max: f64 },
    /// A choice (option set): one of the given values.
    Choice(&'static [i64]),
    /// A lookup (to an account, or for `ownerid` to a user); read as `_<name>_value`, set through
    /// a navigation property.
    Lookup,
}

/// One column of a table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The logical name.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
}

/// What a custom column (one an operator added) holds, with its limits.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomKind {
    /// Single line of text (`StringAttributeMetadata`), at most `max` characters.
    String { max: usize },
    /// Multiple lines of text (`MemoAttributeMetadata`), at most `max` characters.
    Memo { max: usize },
    /// Whole number (`IntegerAttributeMetadata`) in a range.
    Integer { min: i64, max: i64 },
    /// Decimal number (`DecimalAttributeMetadata`) in a range, rounded to `precision` places.
    Decimal { min: f64, max: f64, precision: u32 },
    /// Yes/no (`BooleanAttributeMetadata`), `false` by default.
    Boolean,
    /// Date and time (`DateTimeAttributeMetadata`); `date_only` for the `DateOnly` format.
    DateTime { date_only: bool },
    /// A local choice (`PicklistAttributeMetadata`): option values and labels.
    Picklist(Vec<(i64, String)>),
}

/// A column an operator added to a table (through the metadata API, or seeded as if).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomColumn {
    /// The logical name (`new_region`): the schema name in lower case.
    pub logical: String,
    /// The schema name (`new_Region`), with the publisher's prefix.
    pub schema: String,
    /// The display name.
    pub label: String,
    /// What it holds.
    pub kind: CustomKind,
    /// The attribute's `MetadataId`.
    pub metadata_id: u128,
}

/// A column as a request addresses it: one of the table's own or a custom one.
#[derive(Clone, Copy, Debug)]
pub enum Col<'a> {
    /// A column of the table reference ([`Table::columns`]).
    Builtin(Column),
    /// A column an operator added.
    Custom(&'a CustomColumn),
}

/// The custom columns every environment has, as an operator would have added them with the
/// default publisher's prefix `new_` (the sandbox's seeded "Region", "Seats", "Tier",
/// "Favourite Colour" and "Loyalty Points").
fn seeded_columns(table: Table) -> Vec<CustomColumn> {
    let column =
        |n: u128, logical: &str, schema: &str, label: &str, kind: CustomKind| CustomColumn {
            logical: logical.to_owned(),
            schema: schema.to_owned(),
            label: label.to_owned(),
            kind,
            metadata_id: (0xc5c5_0000_u128 << 96) | (table.id_prefix() << 32) | n,
        };
    let whole = CustomKind::Integer {
        min: -2_147_483_648,
        max: 2_147_483_647,
    };
    match table {
        Table::Account => vec![
            column(
                1,
                "new_region",
                "new_Region",
                "Region",
                CustomKind::String { max: 100 },
            ),
            column(2, "new_seats", "new_Seats", "Seats", whole),
            column(
                3,
                "new_tier",
                "new_Tier",
                "Tier",
                CustomKind::Picklist(
                    crate::seed::TIERS
                        .iter()
                        .zip(0..)
                        .map(|(label, i)| (TIER_BASE + i, (*label).to_owned()))
                        .collect(),
                ),
            ),
        ],
        Table::Contact => vec![
            column(
                1,
                "new_favouritecolour",
                "new_FavouriteColour",
                "Favourite Colour",
                CustomKind::String { max: 100 },
            ),
            column(
                4,
                "new_loyaltypoints",
                "new_LoyaltyPoints",
                "Loyalty Points",
                whole,
            ),
        ],
    }
}

/// The first option value of a choice the default publisher (prefix `new`, option value
/// prefix 10000) creates: its options are numbered from here.
pub const TIER_BASE: i64 = 100_000_000;

const fn text(name: &'static str, max: usize) -> Column {
    Column {
        name,
        kind: Kind::Text { max },
    }
}

const fn flag(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Bool,
    }
}

/// `industrycode` choice values 1 to 33 (Accounting … Wholesale).
const INDUSTRY_CODES: &[i64] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32, 33,
];

/// Contact columns the emulator knows (a subset of the table's).
pub static CONTACT_COLUMNS: &[Column] = &[
    text("firstname", 50),
    text("lastname", 50),
    text("emailaddress1", 100),
    text("telephone1", 50),
    text("mobilephone", 50),
    text("jobtitle", 100),
    text("address1_line1", 250),
    text("address1_city", 80),
    text("address1_stateorprovince", 50),
    text("address1_postalcode", 20),
    text("address1_country", 80),
    flag("donotemail"),
    flag("donotbulkemail"),
    flag("donotphone"),
    flag("donotfax"),
    flag("donotpostalmail"),
    flag("donotbulkpostalmail"),
    Column {
        name: "parentcustomerid",
        kind: Kind::Lookup,
    },
    text(KEY_COLUMN, 100),
    OWNER,
];

/// Account columns the emulator knows (a subset of the table's).
pub static ACCOUNT_COLUMNS: &[Column] = &[
    text("name", 160),
    text("websiteurl", 200),
    text("telephone1", 50),
    Column {
        name: "industrycode",
        kind: Kind::Choice(INDUSTRY_CODES),
    },
    Column {
        name: "numberofemployees",
        kind: Kind::Int {
            min: 0,
            max: 1_000_000_000,
        },
    },
    Column {
        name: "revenue",
        kind: Kind::Money {
            min: 0.0,
            max: 100_000_000_000_000.0,
        },
    },
    text("address1_line1", 250),
    text("address1_city", 80),
    text("address1_stateorprovince", 50),
    text("address1_postalcode", 20),
    text("address1_country", 80),
    flag("donotemail"),
    flag("donotbulkemail"),
    text(KEY_COLUMN, 100),
    OWNER,
];

/// `ownerid`: the user who owns the record (set with `ownerid@odata.bind` to
/// `/systemusers(<guid>)`, read as `_ownerid_value`; the caller when a create names none).
const OWNER: Column = Column {
    name: "ownerid",
    kind: Kind::Lookup,
};

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// Text.
    Str(Box<str>),
    /// A flag.
    Bool(bool),
    /// A whole number or a choice value.
    Int(i64),
    /// A currency amount.
    Money(f64),
    /// The id of an account.
    Ref(u128),
}

/// One record.
#[derive(Clone, Debug)]
pub struct Row {
    /// The primary key.
    pub id: u128,
    /// Values by column index.
    pub values: Vec<Option<Val>>,
    /// `createdon`, epoch milliseconds.
    pub created: i64,
    /// `modifiedon`, epoch milliseconds.
    pub modified: i64,
    /// The row version, sent as the ETag.
    pub version: u64,
}

impl Row {
    /// The value of column `name` in `table`.
    pub fn get(&self, table: Table, name: &str) -> Option<&Val> {
        table
            .column(name)
            .and_then(|i| self.values.get(i))
            .and_then(Option::as_ref)
    }
}

/// A table's rows and indexes.
#[derive(Default)]
pub struct TableData {
    /// Rows by primary key, in key order (which is creation order).
    pub rows: BTreeMap<u128, Row>,
    /// Primary key by case-folded alternate-key value.
    pub by_key: HashMap<Box<str>, u128>,
    next: u128,
}

/// The condition headers of a write.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Condition {
    /// Plain upsert.
    #[default]
    None,
    /// `If-Match: *`: update only.
    MustExist,
    /// `If-Match: W/"n"`: update only, and only this version.
    Version(u64),
    /// `If-None-Match: *`: create only.
    MustNotExist,
}

/// How a write addresses its record.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `POST /{set}`: always a new record.
    New,
    /// `/{set}(<guid>)`.
    Id(u128),
    /// `/{set}(ferry_sourceid='v')`.
    Key(String),
}

/// What undoes a write in a failed change set.
#[derive(Clone, Debug)]
pub enum Undo {
    /// An account or contact: its previous state (`None`: it did not exist).
    Row(Table, u128, Option<Row>),
    /// A row created on the shared engine (set, row id): removed again.
    Created(&'static str, u64),
    /// A row of the shared engine changed: its previous cells, every column.
    Updated(&'static str, u64, Vec<(usize, Option<crate::table::Cell>)>),
}

/// Every table.
pub struct Store {
    /// Whether the alternate key on [`KEY_COLUMN`] is defined (and active) on both tables.
    pub keys_defined: bool,
    /// Whether `lastname` / `name` are enforced by the server (a real environment does not:
    /// business-required columns are checked by forms, not by the Web API).
    pub enforce_required: bool,
    /// The environment's organisation id, as `WhoAmI` reports it.
    pub organization_id: String,
    accounts: TableData,
    contacts: TableData,
    version: u64,
    /// Custom columns of account and contact, in creation order; a row's value of custom
    /// column `i` is at index `table.columns().len() + i`.
    custom_accounts: Vec<CustomColumn>,
    custom_contacts: Vec<CustomColumn>,
    /// The tables on the shared engine: opportunities, notes, users, currencies, stages.
    pub records: super::records::Records,
}

/// Folds a key value the way the database collation compares it.
fn fold(key: &str) -> Box<str> {
    key.to_lowercase().into_boxed_str()
}

/// Formats a GUID.
pub fn guid(id: u128) -> String {
    let h = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a GUID (braces optional, any case).
pub fn parse_guid(raw: &str) -> Option<u128> {
    let s = raw.trim().trim_start_matches('{').trim_end_matches('}');
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5 || parts.iter().zip(lens).any(|(p, l)| p.len() != l) {
        return None;
    }
    let hex: String = parts.concat();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

impl Store {
    /// An empty environment.
    pub fn new(keys_defined: bool, enforce_required: bool) -> Store {
        Store {
            keys_defined,
            enforce_required,
            organization_id: "0f0f0f0f-0000-4000-8000-000000000001".to_owned(),
            accounts: TableData::default(),
            contacts: TableData::default(),
            version: 1_000_000,
            custom_accounts: seeded_columns(Table::Account),
            custom_contacts: seeded_columns(Table::Contact),
            records: super::records::Records::new(0),
        }
    }

    /// The custom columns of `table`.
    pub fn customs(&self, table: Table) -> &[CustomColumn] {
        match table {
            Table::Account => &self.custom_accounts,
            Table::Contact => &self.custom_contacts,
        }
    }

    /// Adds a custom column to `table` (the caller checked its name is free).
    pub fn add_column(&mut self, table: Table, column: CustomColumn) {
        match table {
            Table::Account => self.custom_accounts.push(column),
            Table::Contact => self.custom_contacts.push(column),
        }
    }

    /// How many values a row of `table` holds: its own columns and the custom ones.
    pub fn width(&self, table: Table) -> usize {
        table.columns().len() + self.customs(table).len()
    }

    /// The column `name` of `table` (its own or custom) and its index in a row's values.
    pub fn column(&self, table: Table, name: &str) -> Option<(usize, Col<'_>)> {
        if let Some(i) = table.column(name) {
            return Some((i, Col::Builtin(table.columns()[i])));
        }
        let customs = self.customs(table);
        customs
            .iter()
            .position(|c| c.logical == name)
            .map(|i| (table.columns().len() + i, Col::Custom(&customs[i])))
    }

    /// The value of column `name` (its own or custom) in `row`.
    pub fn value<'r>(&self, table: Table, row: &'r Row, name: &str) -> Option<&'r Val> {
        let (i, _) = self.column(table, name)?;
        row.values.get(i).and_then(Option::as_ref)
    }

    /// The rows of `table`.
    pub fn table(&self, table: Table) -> &TableData {
        match table {
            Table::Account => &self.accounts,
            Table::Contact => &self.contacts,
        }
    }

    fn table_mut(&mut self, table: Table) -> &mut TableData {
        match table {
            Table::Account => &mut self.accounts,
            Table::Contact => &mut self.contacts,
        }
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn new_id(&mut self, table: Table) -> u128 {
        let data = self.table_mut(table);
        data.next += 1;
        // Sequential like Dataverse's own GUIDs, so key order is creation order.
        (table.id_prefix() << 96) | (0x4000_8000_u128 << 48) | data.next
    }

    /// Marks the `n`th row (in key order) of `table` as modified at `now_ms`, with a new row
    /// version, as an edit by another user would.
    pub fn touch_nth(&mut self, table: Table, n: usize, now_ms: i64) {
        let version = self.next_version();
        if let Some(row) = self.table_mut(table).rows.values_mut().nth(n) {
            row.modified = now_ms;
            row.version = version;
        }
    }

    /// The row `id` of `table`.
    pub fn get(&self, table: Table, id: u128) -> Option<&Row> {
        self.table(table).rows.get(&id)
    }

    /// The primary key of the row whose alternate key is `key`.
    pub fn id_by_key(&self, table: Table, key: &str) -> Option<u128> {
        self.table(table).by_key.get(&fold(key)).copied()
    }

    /// Replaces (or removes, with `None`) the row `id`, keeping the key index in step.
    pub fn put_row(&mut self, table: Table, id: u128, row: Option<Row>) {
        let key_index = table.key_index();
        let data = self.table_mut(table);
        if let Some(old) = data.rows.remove(&id)
            && let Some(Val::Str(k)) = &old.values[key_index]
        {
            let folded = fold(k);
            if data.by_key.get(&folded) == Some(&id) {
                data.by_key.remove(&folded);
            }
        }
        if let Some(row) = row {
            if let Some(Val::Str(k)) = &row.values[key_index] {
                data.by_key.insert(fold(k), id);
            }
            data.rows.insert(id, row);
        }
    }

    /// Deletes row `id` of `table` and what Dataverse deletes with it: an account's contacts
    /// (`contact_customer_accounts` is parental: Delete = Cascade), and through
    /// [`Records::parent_deleted`](super::records::Records::parent_deleted) the opportunities
    /// and notes of each deleted row.
    pub fn delete_row(&mut self, table: Table, id: u128, now: i64) {
        self.put_row(table, id, None);
        if table == Table::Account {
            let contacts: Vec<u128> = self
                .table(Table::Contact)
                .rows
                .values()
                .filter(|r| r.get(Table::Contact, "parentcustomerid") == Some(&Val::Ref(id)))
                .map(|r| r.id)
                .collect();
            for contact in contacts {
                self.delete_row(Table::Contact, contact, now);
            }
        }
        self.records.parent_deleted(&guid(id), now);
    }

    /// Undoes one write of a failed change set.
    pub fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Row(table, id, previous) => self.put_row(table, id, previous),
            Undo::Created(set, id) => {
                if let Some(t) = self.records.tables.get_mut(set) {
                    let _ = t.archive(id, 0);
                }
            }
            Undo::Updated(set, id, cells) => {
                if let Some(t) = self.records.tables.get_mut(set) {
                    let modified = t.get(id).map_or(0, |r| r.modified_ms);
                    let _ = t.update(id, cells, modified, true);
                }
            }
        }
    }

    /// Inserts a seeded row as-is (no validation beyond what the caller did).
    pub fn insert_seeded(
        &mut self,
        table: Table,
        values: Vec<Option<Val>>,
        created: i64,
        modified: i64,
    ) -> u128 {
        let id = self.new_id(table);
        let version = self.next_version();
        let mut values = values;
        values.resize(self.width(table), None);
        for (i, c) in table.columns().iter().enumerate() {
            if c.kind == Kind::Bool && values[i].is_none() {
                values[i] = Some(Val::Bool(false));
            }
        }
        self.put_row(
            table,
            id,
            Some(Row {
                id,
                values,
                created,
                modified,
                version,
            }),
        );
        id
    }

    /// Upserts (or creates, or updates) one record from a JSON body. Returns the id, whether
    /// the record was created, and the previous state for undo.
    pub fn write(
        &mut self,
        table: Table,
        target: &Target,
        condition: &Condition,
        body: &Map<String, Json>,
        now: i64,
    ) -> Result<(u128, bool, Undo), ApiError> {
        let existing = match target {
            Target::New => None,
            Target::Id(id) => self.get(table, *id).map(|r| r.id),
            Target::Key(key) => {
                if !self.keys_defined {
                    return Err(ApiError::invalid_key(table));
                }
                self.id_by_key(table, key)
            }
        };
        match (condition, existing) {
            (Condition::MustExist | Condition::Version(_), None) => {
                return Err(ApiError::not_found(table, target));
            }
            (Condition::MustNotExist, Some(_)) => return Err(ApiError::exists()),
            (Condition::Version(v), Some(id))
                if self.get(table, id).map(|r| r.version) != Some(*v) =>
            {
                return Err(ApiError::precondition_failed());
            }
            _ => {}
        }
        let mut values = match existing.and_then(|id| self.get(table, id)) {
            Some(row) => {
                let mut v = row.values.clone();
                // A row written before a column was added holds no value for it.
                v.resize(self.width(table), None);
                v
            }
            None => {
                let mut v = vec![None; self.width(table)];
                for (i, c) in table.columns().iter().enumerate() {
                    if c.kind == Kind::Bool {
                        v[i] = Some(Val::Bool(false));
                    }
                }
                v
            }
        };
        self.apply(table, body, &mut values)?;
        let created = existing.is_none();
        if created {
            // A record always has an owner: the calling user unless the request names one.
            if let Some(i) = table.column("ownerid")
                && values[i].is_none()
            {
                values[i] = Some(Val::Ref(self.records.app_user()));
            }
            // On create, the key values in the URL are set on the record.
            if let Target::Key(key) = target {
                values[table.key_index()] = Some(Val::Str(key.clone().into_boxed_str()));
            }
            if self.enforce_required {
                let required = match table {
                    Table::Account => "name",
                    Table::Contact => "lastname",
                };
                if table.column(required).is_none_or(|i| values[i].is_none()) {
                    return Err(ApiError::required(table, required));
                }
            }
        }
        let key_index = table.key_index();
        if self.keys_defined
            && let Some(Val::Str(k)) = &values[key_index]
        {
            let holder = self.id_by_key(table, k);
            if holder.is_some() && holder != existing {
                return Err(ApiError::duplicate_key());
            }
        }
        let id = match existing {
            Some(id) => id,
            None => match target {
                Target::Id(id) => *id,
                _ => self.new_id(table),
            },
        };
        let previous = self.get(table, id).cloned();
        let version = self.next_version();
        let created_ms = previous.as_ref().map_or(now, |r| r.created);
        self.put_row(
            table,
            id,
            Some(Row {
                id,
                values,
                created: created_ms,
                modified: now,
                version,
            }),
        );
        Ok((id, created, Undo::Row(table, id, previous)))
    }

    /// Applies the body's columns and bindings to `values`, validating each.
    fn apply(
        &self,
        table: Table,
        body: &Map<String, Json>,
        values: &mut [Option<Val>],
    ) -> Result<(), ApiError> {
        for (name, value) in body {
            if let Some(nav) = name.strip_suffix("@odata.bind") {
                let lookup = match (table, nav) {
                    (Table::Contact, "parentcustomerid_account") => "parentcustomerid",
                    (_, "ownerid") => "ownerid",
                    _ => return Err(ApiError::unknown_property(table, nav)),
                };
                let index = table.column(lookup).unwrap_or(0);
                values[index] = match value {
                    // An owner cannot be removed, only changed.
                    Json::Null if lookup == "ownerid" => {
                        return Err(ApiError::payload(table, "ownerid cannot be set to null"));
                    }
                    Json::Null => None,
                    Json::String(reference) if lookup == "ownerid" => {
                        Some(Val::Ref(self.resolve_owner(table, reference)?))
                    }
                    Json::String(reference) => Some(Val::Ref(self.resolve_bind(reference)?)),
                    _ => return Err(ApiError::payload(table, "a bind must be a URL string")),
                };
                continue;
            }
            if name.starts_with('@') || name.contains('@') {
                // Instance annotations (`@odata.type`, `x@OData.Community…`) carry no data.
                continue;
            }
            let Some((index, column)) = self.column(table, name) else {
                return Err(ApiError::unknown_property(table, name));
            };
            values[index] = match column {
                Col::Builtin(column) => convert(table, column, value)?,
                Col::Custom(column) => convert_custom(table, column, value)?,
            };
        }
        Ok(())
    }

    /// Resolves `/systemusers(<guid>)` to a user who may own records of `table`.
    pub fn resolve_owner(
        &self,
        table: impl Entity + Copy,
        reference: &str,
    ) -> Result<u128, ApiError> {
        let path = bind_path(reference).ok_or_else(|| ApiError::bad_bind(reference))?;
        let Some((set, inner)) = path.strip_suffix(')').and_then(|p| p.split_once('(')) else {
            return Err(ApiError::bad_bind(reference));
        };
        match set {
            "systemusers" => {
                let id = parse_guid(inner).ok_or_else(|| ApiError::invalid_key(table))?;
                self.records.check_owner(id)?;
                Ok(id)
            }
            // Teams own records too; the emulator's environment has none.
            "teams" => Err(ApiError::does_not_exist(
                "team",
                parse_guid(inner).ok_or_else(|| ApiError::bad_bind(reference))?,
            )),
            _ => Err(ApiError::bad_bind(reference)),
        }
    }

    /// Resolves `/accounts(<guid>)` or `/accounts(ferry_sourceid='v')` to an account id.
    fn resolve_bind(&self, reference: &str) -> Result<u128, ApiError> {
        let path = bind_path(reference).ok_or_else(|| ApiError::bad_bind(reference))?;
        let path = path.as_str();
        let Some((set, inner)) = path.strip_suffix(')').and_then(|p| p.split_once('(')) else {
            return Err(ApiError::bad_bind(reference));
        };
        let Some(Table::Account) = Table::from_set(set) else {
            return Err(ApiError::bad_bind(reference));
        };
        match parse_address(Table::Account, inner)? {
            Target::Id(id) => self
                .get(Table::Account, id)
                .map(|r| r.id)
                .ok_or_else(|| ApiError::not_found(Table::Account, &Target::Id(id))),
            Target::Key(key) => {
                if !self.keys_defined {
                    return Err(ApiError::invalid_key(Table::Account));
                }
                self.id_by_key(Table::Account, &key)
                    .ok_or_else(|| ApiError::not_found(Table::Account, &Target::Key(key)))
            }
            Target::New => Err(ApiError::bad_bind(reference)),
        }
    }
}

/// The `set(…)` part of an `@odata.bind` value (absolute URL, absolute path or relative),
/// percent-decoded.
pub fn bind_path(reference: &str) -> Option<String> {
    let decoded = urlencoding::decode(reference).ok()?;
    let reference = decoded.as_ref();
    let path = match reference.find("/api/data/") {
        Some(i) => reference[i..]
            .split_once("/api/data/")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(_, rest)| rest),
        None => reference.trim_start_matches('/'),
    };
    Some(path.to_owned())
}

/// Characters the documentation says alternate-key values must not contain for `GET`/`PATCH`
/// by key to work.
pub const UNSUPPORTED_KEY_CHARS: &[char] = &['/', '<', '>', '*', '%', '&', ':', '\\', '?', '+'];

/// Parses what is between the parentheses of `/{set}(…)`: a GUID or `ferry_sourceid='v'`
/// (already percent-decoded).
pub fn parse_address(
    table: impl super::error::Entity + Copy,
    inner: &str,
) -> Result<Target, ApiError> {
    if let Some(id) = parse_guid(inner) {
        return Ok(Target::Id(id));
    }
    let Some((name, literal)) = inner.split_once('=') else {
        return Err(ApiError::invalid_key(table));
    };
    let name = name.trim();
    if name == table.id_column() {
        return parse_guid(literal)
            .map(Target::Id)
            .ok_or_else(|| ApiError::invalid_key(table));
    }
    if name != KEY_COLUMN {
        return Err(ApiError::invalid_key(table));
    }
    let literal = literal.trim();
    let value = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .filter(|v| {
            // A lone quote inside must be doubled.
            !v.replace("''", "").contains('\'')
        })
        .ok_or_else(|| ApiError::invalid_key(table))?
        .replace("''", "'");
    if value.contains(UNSUPPORTED_KEY_CHARS) {
        return Err(ApiError::unsupported_key_chars());
    }
    Ok(Target::Key(value))
}

/// Converts a JSON value for `column`, as the Web API deserialises and validates it.
fn convert(table: Table, column: Column, value: &Json) -> Result<Option<Val>, ApiError> {
    if value.is_null() {
        return Ok(match column.kind {
            // A two-option column has no null; clearing it sets the default.
            Kind::Bool => Some(Val::Bool(false)),
            _ => None,
        });
    }
    let mismatch = |edm: &str| ApiError::literal_mismatch(table, value, edm);
    Ok(Some(match column.kind {
        Kind::Text { max } => {
            let s = value.as_str().ok_or_else(|| mismatch("Edm.String"))?;
            if s.chars().count() > max {
                return Err(ApiError::too_long(table, column.name, max));
            }
            if s.is_empty() {
                return Ok(None);
            }
            Val::Str(s.into())
        }
        Kind::Bool => Val::Bool(value.as_bool().ok_or_else(|| mismatch("Edm.Boolean"))?),
        Kind::Int { min, max } => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if n < min || n > max {
                return Err(ApiError::out_of_range(
                    table,
                    column.name,
                    value,
                    &min.to_string(),
                    &max.to_string(),
                ));
            }
            Val::Int(n)
        }
        Kind::Money { min, max } => {
            let n = value.as_f64().ok_or_else(|| mismatch("Edm.Decimal"))?;
            if n < min || n > max {
                return Err(ApiError::out_of_range(
                    table,
                    column.name,
                    value,
                    &format!("{min}"),
                    &format!("{max}"),
                ));
            }
            // Currency precision: two decimals.
            Val::Money((n * 100.0).round() / 100.0)
        }
        Kind::Choice(options) => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if !options.contains(&n) {
                return Err(ApiError::bad_choice(table, column.name, n));
            }
            Val::Int(n)
        }
        Kind::Lookup => return Err(ApiError::unknown_property(table, column.name)),
    }))
}

/// Whether `s` is `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Converts a JSON value for a custom column, as the Web API deserialises and validates it.
fn convert_custom(
    table: Table,
    column: &CustomColumn,
    value: &Json,
) -> Result<Option<Val>, ApiError> {
    if value.is_null() {
        return Ok(match column.kind {
            CustomKind::Boolean => Some(Val::Bool(false)),
            _ => None,
        });
    }
    let mismatch = |edm: &str| ApiError::literal_mismatch(table, value, edm);
    let name = column.logical.as_str();
    Ok(Some(match &column.kind {
        CustomKind::String { max } | CustomKind::Memo { max } => {
            let s = value.as_str().ok_or_else(|| mismatch("Edm.String"))?;
            if s.chars().count() > *max {
                return Err(ApiError::too_long(table, name, *max));
            }
            if s.is_empty() {
                return Ok(None);
            }
            Val::Str(s.into())
        }
        CustomKind::Boolean => Val::Bool(value.as_bool().ok_or_else(|| mismatch("Edm.Boolean"))?),
        CustomKind::Integer { min, max } => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if n < *min || n > *max {
                return Err(ApiError::out_of_range(
                    table,
                    name,
                    value,
                    &min.to_string(),
                    &max.to_string(),
                ));
            }
            Val::Int(n)
        }
        CustomKind::Decimal {
            min,
            max,
            precision,
        } => {
            let n = value.as_f64().ok_or_else(|| mismatch("Edm.Decimal"))?;
            if n < *min || n > *max {
                return Err(ApiError::out_of_range(
                    table,
                    name,
                    value,
                    &min.to_string(),
                    &max.to_string(),
                ));
            }
            let scale = 10f64.powi(*precision as i32);
            Val::Money((n * scale).round() / scale)
        }
        CustomKind::DateTime { date_only } => {
            let s = value.as_str().ok_or_else(|| {
                mismatch(if *date_only {
                    "Edm.Date"
                } else {
                    "Edm.DateTimeOffset"
                })
            })?;
            let date = s.get(..10).filter(|d| is_date(d));
            match (date_only, date) {
                (true, Some(d)) if s.len() == 10 => Val::Str(d.into()),
                (false, Some(_)) if s.len() > 10 && s.as_bytes()[10] == b'T' => Val::Str(s.into()),
                (true, _) => return Err(mismatch("Edm.Date")),
                (false, _) => return Err(mismatch("Edm.DateTimeOffset")),
            }
        }
        CustomKind::Picklist(options) => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if !options.iter().any(|(v, _)| *v == n) {
                return Err(ApiError::bad_choice(table, name, n));
            }
            Val::Int(n)
        }
    }))
}
