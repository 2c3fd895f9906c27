//! The emulated org's data: one table per sObject, indexed by row (the id encodes the row) and
//! by external id, with the write rules Salesforce applies and the query executor.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value as Json;

use super::body::{FieldValue, Record};
use super::schema::{
    FieldDef, IdError, Kind, ObjectKind, RecordId, SObject, Slot, Val, datetime, normalise_text,
    parse_record_id, record_id, valid_email,
};
use super::soql::{self, Literal, Op, Select};
use crate::table::{
    Cell as EngineCell, Column as EngineColumn, ColumnType, Fold, TableDef, TableError,
};
use crate::timestamp::AsText;

/// One stored record.
pub(crate) struct Row {
    pub created: i64,
    pub modified: i64,
    pub values: Box<[Option<Val>]>,
    /// When it was deleted (into the Recycle Bin), if it was.
    pub deleted: Option<i64>,
}

/// Where an sObject's records live.
pub(crate) enum Rows {
    /// Account and Contact: the store's own rows (a value slot per field), as before the
    /// sandbox had a shared table engine.
    Own(Vec<Row>),
    /// Every other object: a table of the sandbox's shared engine ([`crate::table`]), declared
    /// from the sObject's schema ([`table_def`]): column `i` is data slot `i`, row id `n` is
    /// the store's row `n` (ids start at 0 and nothing is deleted), and the engine checks
    /// every write (types, limits, required, the unique external id) after Salesforce's own
    /// rules have run.
    Engine(crate::table::Table),
}

/// A stored value as the readers see it, wherever the row lives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum V<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Num(f64),
    Ref(u32),
    Poly(ObjectKind, u32),
}

impl Val {
    fn view(&self) -> V<'_> {
        match self {
            Val::Str(s) => V::Str(s),
            Val::Bool(b) => V::Bool(*b),
            Val::Int(n) => V::Int(*n),
            Val::Num(n) => V::Num(*n),
            Val::Ref(r) => V::Ref(*r),
            Val::Poly(o, r) => V::Poly(*o, *r),
        }
    }

    /// The engine's cell for this value. A polymorphic reference keeps its object in the high
    /// half of the id (the object's position + 1, so that a plain reference has none).
    fn into_cell(self) -> EngineCell {
        match self {
            Val::Str(s) => EngineCell::Text(s),
            Val::Bool(b) => EngineCell::Bool(b),
            Val::Int(n) => EngineCell::Int(n),
            Val::Num(n) => EngineCell::Num(n),
            Val::Ref(r) => EngineCell::Ref(u64::from(r)),
            Val::Poly(o, r) => EngineCell::Ref(((o.index() as u64 + 1) << 32) | u64::from(r)),
        }
    }
}

fn cell_view(cell: &EngineCell) -> Option<V<'_>> {
    Some(match cell {
        EngineCell::Text(s) => V::Str(s),
        EngineCell::Bool(b) => V::Bool(*b),
        EngineCell::Int(n) => V::Int(*n),
        EngineCell::Num(n) => V::Num(*n),
        EngineCell::Time(_) => return None,
        EngineCell::Ref(id) => {
            let row = (*id & u64::from(u32::MAX)) as u32;
            match (*id >> 32) as usize {
                0 => V::Ref(row),
                o => V::Poly(*ObjectKind::ALL.get(o - 1)?, row),
            }
        }
    })
}

/// The engine's table of an sObject: a column per data slot, in slot order, typed, limited,
/// required and unique as the schema says.
pub(crate) fn table_def(schema: &SObject) -> TableDef {
    let mut columns: Vec<Option<EngineColumn>> = vec![None; schema.data_slots];
    for f in &schema.fields {
        if let Slot::Data(slot) = f.slot
            && let Some(c) = columns.get_mut(slot)
        {
            *c = Some(engine_column(f));
        }
    }
    TableDef {
        name: schema.kind.name(),
        columns: columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.unwrap_or_else(|| EngineColumn::text(&format!("#{i}"), 0)))
            .collect(),
    }
}

/// The engine's column for field `f`. Field-level security and read-only fields are
/// Salesforce's rules, applied before the engine sees a write: only derived fields are
/// read-only columns.
fn engine_column(f: &FieldDef) -> EngineColumn {
    let ty = match f.kind {
        Kind::Picklist if f.restricted => ColumnType::Choice {
            options: f.picklist.iter().map(|v| v.value.to_string()).collect(),
            fold: Fold::Exact,
        },
        Kind::Int => ColumnType::Integer {
            min: -99_999_999,
            max: 99_999_999,
        },
        Kind::Currency | Kind::Double => ColumnType::Number { max: 1e18 },
        Kind::Boolean => ColumnType::Bool,
        Kind::Date => ColumnType::Date,
        Kind::Reference => ColumnType::Ref {
            table: f.reference.map_or("Parent", |(o, _)| o.name()),
        },
        // Datetimes are kept as the text written, as the store's own rows keep them.
        Kind::Datetime => ColumnType::Text { max: 64 },
        _ => ColumnType::Text { max: f.length },
    };
    let mut column = EngineColumn::new(f.name, ty);
    column.required = f.required;
    column.read_only = !f.writable && !f.custom();
    if f.external_id {
        column.unique = Some(Fold::Exact);
    }
    column
}

/// Salesforce's per-record error for what the engine refused.
fn engine_error(schema: &SObject, e: &TableError) -> Conv {
    let label = |column: &str| {
        schema
            .field(column)
            .map_or(column.to_owned(), |i| schema.fields[i].label.to_owned())
    };
    let item = |code, message: String, column: &str| {
        let name = schema.field(column).map_or("", |i| schema.fields[i].name);
        Conv::Item(ItemError::new(code, message, &[name]))
    };
    match e {
        TableError::TooLong { column, max, .. } => item(
            "STRING_TOO_LONG",
            format!("{}: data value too large (max length={max})", label(column)),
            column,
        ),
        TableError::Required { column } => item(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{column}]"),
            column,
        ),
        TableError::Duplicate { column, existing } => item(
            "DUPLICATE_VALUE",
            format!(
                "duplicate value found: {column} duplicates value on record with id: {}",
                RecordId(schema.kind, *existing as u32)
            ),
            column,
        ),
        TableError::NotAnOption { column } => item(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!("{}: bad value for restricted picklist field", label(column)),
            column,
        ),
        TableError::OutOfRange { column } => item(
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!(
                "{}: value outside of valid range on numeric field",
                label(column)
            ),
            column,
        ),
        TableError::ReadOnly { column } => item(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!("Unable to create/update fields: {column}."),
            column,
        ),
        TableError::BadDate { column } => Conv::Request(RequestError::bad_request(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize value of type `date` for {column}: not a calendar date"),
        )),
        other => Conv::Item(ItemError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            other.to_string(),
            &[],
        )),
    }
}

/// A parent (object and row) → its child rows, in row order.
pub(crate) type Children = HashMap<(ObjectKind, u32), Vec<u32>>;

/// One sObject's records.
pub(crate) struct Table {
    pub schema: Arc<SObject>,
    rows: Rows,
    /// External-id value → row (the field is unique and case-sensitive), for the store's own
    /// rows; the engine keeps its own unique index.
    by_ext: HashMap<Box<str>, u32>,
    /// For a child object whose parent is set on create and never changes (a contact role's
    /// `OpportunityId`, a note's `ParentId`): that field, and parent → children in row order,
    /// so that `WHERE OpportunityId IN (…)` and the one-primary rule cost what they return.
    pub children: Option<(usize, Children)>,
    /// How many of the store's own rows were deleted (the engine counts its own).
    own_deleted: usize,
}

/// Every table of the org.
pub(crate) struct Store {
    pub tables: Vec<Table>,
    /// Every delete, in order: the object, the row and when (what `getDeleted` reports).
    pub deleted_log: Vec<(ObjectKind, u32, i64)>,
    /// When the last delete physically purged from the Recycle Bin was deleted, if any was
    /// (`earliestDateAvailable`: deletes before it are no longer reported).
    pub purged_through: Option<i64>,
}

/// A per-record error, as sObject Collections report it. Serialised with its fields in this
/// (sorted) order, the order the emulator's answers have always had.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ItemError {
    pub fields: Vec<String>,
    pub message: String,
    #[serde(rename = "statusCode")]
    pub status_code: &'static str,
}

impl ItemError {
    /// The error of a record another transaction holds locked (a transient failure).
    pub(crate) fn locked() -> ItemError {
        ItemError::new(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records".into(),
            &[],
        )
    }

    fn new(status_code: &'static str, message: String, fields: &[&str]) -> ItemError {
        ItemError {
            status_code,
            message,
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// One record's result in an sObject Collections answer (`SaveResult`, or `UpsertResult` with
/// `created`). Serialised straight into the response, keys in sorted order as before.
#[derive(Debug, Serialize)]
pub(crate) struct SaveResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<bool>,
    errors: Vec<ItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    success: bool,
}

impl SaveResult {
    /// The result as the record's id, or its id (if known) and its errors.
    pub(crate) fn into_outcome(self) -> Result<String, (Option<String>, Vec<ItemError>)> {
        match self.id {
            Some(id) if self.success => Ok(id),
            id => Err((id, self.errors)),
        }
    }
}

/// A failure of the whole request (HTTP 4xx with Salesforce's error array).
#[derive(Clone, Debug)]
pub(crate) struct RequestError {
    pub status: u16,
    pub error_code: &'static str,
    pub message: String,
}

impl RequestError {
    pub(crate) fn bad_request(
        error_code: &'static str,
        message: impl Into<String>,
    ) -> RequestError {
        RequestError {
            status: 400,
            error_code,
            message: message.into(),
        }
    }
}

/// How a record in a write request finds its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `PATCH composite/sobjects/{SObject}/{ExtIdField}`: by the external-id value.
    Upsert { ext_field: usize },
    /// `POST composite/sobjects`: always new.
    Create,
    /// `PATCH composite/sobjects`: by `id`.
    Update,
}

#[derive(Debug)]
enum Target {
    New,
    Existing(u32),
}

/// A validated write, not yet applied.
#[derive(Debug)]
pub(crate) struct Change {
    object: ObjectKind,
    target: Target,
    values: Vec<(usize, Option<Val>)>,
    /// `CreatedDate` written on create (audit fields), ms since the epoch.
    created: Option<i64>,
}

/// A record of a write request and the sObject it is written to.
pub(crate) type Item<'a> = (ObjectKind, &'a Record<'a>);

/// A record written on its own: its id and whether it was created, or its id (if known) and
/// its errors.
pub(crate) type RowResult = Result<(String, bool), (Option<String>, Vec<ItemError>)>;

/// The result of one record of a write request.
pub(crate) type ItemOutcome = Result<Change, (Option<String>, Vec<ItemError>)>;

enum Conv {
    Item(ItemError),
    Request(RequestError),
}

impl Conv {
    /// The error as a whole-request failure (a value the JSON parser could not read).
    fn into_request(self) -> RequestError {
        match self {
            Conv::Request(e) => e,
            Conv::Item(e) => RequestError::bad_request(e.status_code, e.message),
        }
    }
}

/// Epoch milliseconds of an ISO 8601 date and time (`2021-11-06T17:38:40.000+0000`,
/// `…Z`, `…+01:00`, seconds fraction optional), as a datetime field takes it.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let s = text.trim();
    if !is_datetime(s) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if s.as_bytes().get(13) != Some(&b':')
        || s.as_bytes().get(16) != Some(&b':')
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<3}", frac.get(..digits.min(3))?);
        millis = padded.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let hh = digits.get(..2)?.parse::<i64>().ok()?;
            let mm = digits.get(2..)?.parse::<i64>().ok()?;
            sign * (hh * 60 + mm)
        }
    };
    // Howard Hinnant's days-from-civil.
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + millis)
}

fn parser_error(def: &FieldDef, value: &FieldValue<'_>) -> Conv {
    let value = value.to_json();
    let token = match value {
        Json::String(_) => "VALUE_STRING",
        Json::Number(_) => "VALUE_NUMBER",
        Json::Bool(_) => "VALUE_TRUE",
        Json::Array(_) => "START_ARRAY",
        Json::Object(_) => "START_OBJECT",
        Json::Null => "VALUE_NULL",
    };
    let ty = match def.kind {
        Kind::Int => "int",
        Kind::Currency | Kind::Double => "double",
        Kind::Boolean => "boolean",
        Kind::Date => "date",
        Kind::Datetime => "datetime",
        _ => "string",
    };
    Conv::Request(RequestError::bad_request(
        "JSON_PARSER_ERROR",
        format!(
            "Cannot deserialize instance of {ty} from {token} value {value} or request may be missing a required field"
        ),
    ))
}

/// Applies Salesforce's string rules to `raw` for field `def`: trim, empty is null, length,
/// email shape. The messages quote the value, as Salesforce's do.
pub(crate) fn convert_text(def: &FieldDef, raw: &str) -> Result<Option<Val>, ItemError> {
    let Some(text) = normalise_text(raw) else {
        return Ok(None);
    };
    if def.kind == Kind::Email && !valid_email(text) {
        return Err(ItemError::new(
            "INVALID_EMAIL_ADDRESS",
            format!("{}: invalid email address: {text}", def.label),
            &[def.name],
        ));
    }
    // A string no longer in bytes than the limit is no longer in characters either.
    if text.len() > def.length && text.chars().count() > def.length {
        return Err(ItemError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {text} (max length={})",
                def.label, def.length
            ),
            &[def.name],
        ));
    }
    if def.kind == Kind::Picklist
        && def.restricted
        && !def.picklist.iter().any(|v| &*v.value == text)
    {
        return Err(ItemError::new(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!(
                "{}: bad value for restricted picklist field: {text}",
                def.label
            ),
            &[def.name],
        ));
    }
    Ok(Some(Val::Str(text.into())))
}

/// Whether `s` is a calendar date `YYYY-MM-DD`, as a date field takes it.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

/// Whether `s` is an ISO 8601 date and time (`2021-11-06T17:38:40.000+0000`, or `…Z`).
fn is_datetime(s: &str) -> bool {
    s.len() >= 19
        && s.is_char_boundary(10)
        && is_date(&s[..10])
        && s.as_bytes()[10] == b'T'
        && s[11..]
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b':' | b'.' | b'+' | b'-' | b'Z'))
}

fn out_of_range(def: &FieldDef, n: f64) -> Conv {
    Conv::Item(ItemError::new(
        "NUMBER_OUTSIDE_VALID_RANGE",
        format!(
            "{}: value outside of valid range on numeric field: {n}",
            def.label
        ),
        &[def.name],
    ))
}

impl Table {
    fn new(schema: Arc<SObject>) -> Table {
        let children = schema
            .fields
            .iter()
            .position(|f| f.create_only && (f.reference.is_some() || !f.poly.is_empty()))
            .map(|field| (field, HashMap::new()));
        let rows = match schema.kind {
            ObjectKind::Account | ObjectKind::Contact => Rows::Own(Vec::new()),
            _ => Rows::Engine(crate::table::Table::new(table_def(&schema), 0)),
        };
        Table {
            schema,
            rows,
            by_ext: HashMap::new(),
            children,
            own_deleted: 0,
        }
    }

    /// Whether its rows live in the shared table engine.
    #[cfg(test)]
    pub(crate) fn is_engine(&self) -> bool {
        matches!(self.rows, Rows::Engine(_))
    }

    /// How many rows it holds: ids `0..len` (no row is ever removed).
    pub(crate) fn len(&self) -> usize {
        match &self.rows {
            Rows::Own(rows) => rows.len(),
            Rows::Engine(t) => t.next_id() as usize,
        }
    }

    /// Whether row `row` exists and is not deleted.
    pub(crate) fn has(&self, row: u32) -> bool {
        match &self.rows {
            Rows::Own(rows) => rows.get(row as usize).is_some_and(|r| r.deleted.is_none()),
            Rows::Engine(t) => t.get(u64::from(row)).is_some(),
        }
    }

    /// How many records it holds, deleted ones not counted.
    pub(crate) fn live_len(&self) -> usize {
        match &self.rows {
            Rows::Own(rows) => rows.len() - self.own_deleted,
            Rows::Engine(t) => t.len(),
        }
    }

    /// Whether any of its rows was deleted (then listings skip them).
    fn has_deleted(&self) -> bool {
        self.live_len() != self.len()
    }

    /// Deletes row `row` at `now` (kept, as in the Recycle Bin, its external id free again).
    /// `false` when it was not live.
    fn delete_row(&mut self, row: u32, now: i64) -> bool {
        if !self.has(row) {
            return false;
        }
        let ext = self.ext_value(row).map(Box::<str>::from);
        match &mut self.rows {
            Rows::Own(rows) => {
                if let Some(r) = rows.get_mut(row as usize) {
                    r.deleted = Some(now);
                }
                self.own_deleted += 1;
                if let Some(ext) = ext {
                    self.by_ext.remove(&ext);
                }
                true
            }
            Rows::Engine(t) => t.archive(u64::from(row), now).is_ok(),
        }
    }

    /// Stamps row `row` as changed at `now` (`SystemModstamp`, `LastModifiedDate`), values
    /// untouched; `false` when it is not live.
    fn touch(&mut self, row: u32, now: i64) -> bool {
        if !self.has(row) {
            return false;
        }
        match &mut self.rows {
            Rows::Own(rows) => rows
                .get_mut(row as usize)
                .map(|r| r.modified = now)
                .is_some(),
            Rows::Engine(t) => t.touch(u64::from(row), now),
        }
    }

    /// The live rows whose field `name` refers to `parent` (a plain or polymorphic reference).
    fn referring(&self, name: &str, parent: (ObjectKind, u32)) -> Vec<u32> {
        let Some(field) = self.schema.field(name) else {
            return Vec::new();
        };
        let def = &self.schema.fields[field];
        let Slot::Data(slot) = def.slot else {
            return Vec::new();
        };
        let target = def.reference.map(|r| r.0);
        (0..self.len() as u32)
            .filter(|row| self.has(*row))
            .filter(|row| match self.value(*row, slot) {
                Some(V::Ref(r)) => target == Some(parent.0) && r == parent.1,
                Some(V::Poly(o, r)) => (o, r) == parent,
                _ => false,
            })
            .collect()
    }

    /// When row `row` was created and last changed, ms since the epoch. Deleting a record is
    /// a change: it moves the stamp, which is how `queryAll … WHERE SystemModstamp >= …` finds
    /// what was deleted since.
    fn times(&self, row: u32) -> Option<(i64, i64)> {
        let (created, modified, deleted) = match &self.rows {
            Rows::Own(rows) => rows
                .get(row as usize)
                .map(|r| (r.created, r.modified, r.deleted))?,
            Rows::Engine(t) => t
                .get_any(u64::from(row))
                .map(|r| (r.created_ms, r.modified_ms, r.archived_ms))?,
        };
        Some((created, deleted.map_or(modified, |d| d.max(modified))))
    }

    /// The value in data slot `slot` of row `row`.
    pub(crate) fn value(&self, row: u32, slot: usize) -> Option<V<'_>> {
        match &self.rows {
            Rows::Own(rows) => rows
                .get(row as usize)?
                .values
                .get(slot)?
                .as_ref()
                .map(Val::view),
            Rows::Engine(t) => cell_view(t.get_any(u64::from(row))?.get(slot)?),
        }
    }

    /// The row whose external id is `key`.
    pub(crate) fn ext_row(&self, key: &str) -> Option<u32> {
        match &self.rows {
            Rows::Own(_) => self.by_ext.get(key).copied(),
            Rows::Engine(t) => t.find(self.ext_slot()?, key).map(|r| r.id as u32),
        }
    }

    /// Stores a new row of `values` (by data slot); returns it.
    fn push(&mut self, values: Vec<(usize, Option<Val>)>, created: i64, modified: i64) -> u32 {
        let row = match &mut self.rows {
            Rows::Own(rows) => {
                let mut stored = vec![None; self.schema.data_slots];
                for (slot, value) in values {
                    if let Some(at) = stored.get_mut(slot) {
                        *at = value;
                    }
                }
                rows.push(Row {
                    created,
                    modified,
                    values: stored.into_boxed_slice(),
                    deleted: None,
                });
                (rows.len() - 1) as u32
            }
            Rows::Engine(t) => {
                let cells = values
                    .into_iter()
                    .map(|(slot, v)| (slot, v.map(Val::into_cell)))
                    .collect();
                t.insert_checked(cells, created, modified) as u32
            }
        };
        self.index_child(row);
        row
    }

    /// Writes `values` (by data slot) into row `row` at `now`.
    fn set(&mut self, row: u32, values: Vec<(usize, Option<Val>)>, now: i64) {
        match &mut self.rows {
            Rows::Own(rows) => {
                if let Some(stored) = rows.get_mut(row as usize) {
                    stored.modified = now;
                    for (slot, value) in values {
                        if let Some(at) = stored.values.get_mut(slot) {
                            *at = value;
                        }
                    }
                }
            }
            Rows::Engine(t) => {
                let cells = values
                    .into_iter()
                    .map(|(slot, v)| (slot, v.map(Val::into_cell)))
                    .collect();
                // Checked already: by Salesforce's rules, then by the engine in `prepare`.
                if let Err(e) = t.update(u64::from(row), cells, now, true) {
                    tracing::warn!(object = self.schema.kind.name(), row, error = %e, "a checked write was refused");
                }
            }
        }
    }

    /// The engine's own check of a write Salesforce's rules let through (`target`: the row
    /// it changes, `None` for a new one).
    fn engine_check(
        &self,
        target: Option<u32>,
        values: &[(usize, Option<Val>)],
    ) -> Result<(), TableError> {
        let Rows::Engine(t) = &self.rows else {
            return Ok(());
        };
        let cells = values
            .iter()
            .map(|(slot, v)| (*slot, v.clone().map(Val::into_cell)))
            .collect();
        t.prepare(target.map(u64::from), cells, false).map(|_| ())
    }

    /// The data slot of field `name`.
    pub(crate) fn slot(&self, name: &str) -> Option<usize> {
        match self.schema.fields[self.schema.field(name)?].slot {
            Slot::Data(s) => Some(s),
            _ => None,
        }
    }

    /// The parent a child row hangs on, for the children index.
    fn parent_key(&self, row: u32) -> Option<(ObjectKind, u32)> {
        let (field, _) = self.children.as_ref()?;
        let def = &self.schema.fields[*field];
        let Slot::Data(slot) = def.slot else {
            return None;
        };
        match self.value(row, slot)? {
            V::Ref(r) => Some((def.reference?.0, r)),
            V::Poly(o, r) => Some((o, r)),
            _ => None,
        }
    }

    /// Keeps the external-id map of the store's own rows in step with row `row`, whose value
    /// was `old` before the write (the engine indexes its rows itself).
    fn reindex_ext(&mut self, row: u32, old: Option<Box<str>>) {
        if !matches!(self.rows, Rows::Own(_)) {
            return;
        }
        let new = self.ext_value(row).map(Box::<str>::from);
        if old != new {
            if let Some(old) = old {
                self.by_ext.remove(&old);
            }
            if let Some(new) = new {
                self.by_ext.insert(new, row);
            }
        }
    }

    /// Files new row `row` under its parent in the children index.
    fn index_child(&mut self, row: u32) {
        if let Some(key) = self.parent_key(row)
            && let Some((_, index)) = self.children.as_mut()
        {
            index.entry(key).or_default().push(row);
        }
    }

    fn ext_slot(&self) -> Option<usize> {
        self.schema
            .external_id
            .and_then(|i| match self.schema.fields[i].slot {
                Slot::Data(s) => Some(s),
                _ => None,
            })
    }

    fn ext_value(&self, row: u32) -> Option<&str> {
        match self.value(row, self.ext_slot()?)? {
            V::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// How long the Recycle Bin keeps deleted records: 15 days.
pub(crate) const RECYCLE_BIN_MS: i64 = 15 * 86_400_000;

impl Store {
    pub(crate) fn new(with_external_id: bool, multi_currency: bool) -> Store {
        let tables = ObjectKind::ALL
            .into_iter()
            .map(|k| Table::new(Arc::new(SObject::new(k, with_external_id, multi_currency))))
            .collect();
        Store {
            tables,
            deleted_log: Vec::new(),
            purged_through: None,
        }
    }

    pub(crate) fn table(&self, object: ObjectKind) -> &Table {
        &self.tables[object.index()]
    }

    fn table_mut(&mut self, object: ObjectKind) -> &mut Table {
        &mut self.tables[object.index()]
    }

    /// Stamps every `every_nth` live record of `object` (in id order) as changed at `now`,
    /// values untouched, as other users' edits would; returns how many.
    pub(crate) fn touch_every(&mut self, object: ObjectKind, every_nth: usize, now: i64) -> usize {
        let table = self.table_mut(object);
        let live: Vec<u32> = (0..table.len() as u32).filter(|r| table.has(*r)).collect();
        crate::every_nth(live.len(), every_nth)
            .filter(|at| table.touch(live[*at], now))
            .count()
    }

    /// The value of JSON `value` for field `def` of `object`, by Salesforce's rules.
    fn convert(&self, def: &FieldDef, value: &FieldValue<'_>) -> Result<Option<Val>, Conv> {
        if matches!(value, FieldValue::Null) {
            return Ok((def.kind == Kind::Boolean).then_some(Val::Bool(false)));
        }
        match def.kind {
            k if k.is_text() => {
                let raw: Cow<str> = match value {
                    FieldValue::Str(s) => Cow::Borrowed(s.as_ref()),
                    FieldValue::Num(n) => Cow::Owned(n.to_string()),
                    FieldValue::Bool(b) => Cow::Owned(b.to_string()),
                    _ => return Err(parser_error(def, value)),
                };
                convert_text(def, &raw).map_err(Conv::Item)
            }
            Kind::Int => {
                let n = match value {
                    FieldValue::Num(n) => n.as_f64(),
                    FieldValue::Str(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                let n = n
                    .filter(|n| n.is_finite() && n.fract() == 0.0)
                    .ok_or_else(|| parser_error(def, value))?;
                if n.abs() > 99_999_999.0 {
                    return Err(out_of_range(def, n));
                }
                Ok(Some(Val::Int(n as i64)))
            }
            Kind::Currency => {
                let n = match value {
                    FieldValue::Num(n) => n.as_f64(),
                    FieldValue::Str(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                let n = n
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| parser_error(def, value))?;
                if n.abs() >= 1e18 {
                    return Err(out_of_range(def, n));
                }
                Ok(Some(Val::Num(n)))
            }
            Kind::Double => {
                let n = match value {
                    FieldValue::Num(n) => n.as_f64(),
                    FieldValue::Str(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                let n = n
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| parser_error(def, value))?;
                // Salesforce rounds to the field's scale, then checks the digits before the point.
                let factor = 10f64.powi(i32::from(def.scale));
                let n = (n * factor).round() / factor;
                if n.abs() >= 10f64.powi(i32::from(def.precision.saturating_sub(def.scale))) {
                    return Err(out_of_range(def, n));
                }
                Ok(Some(Val::Num(n)))
            }
            Kind::Date | Kind::Datetime => {
                let FieldValue::Str(s) = value else {
                    return Err(parser_error(def, value));
                };
                let Some(s) = normalise_text(s) else {
                    return Ok(None);
                };
                let ok = if def.kind == Kind::Date {
                    is_date(s)
                } else {
                    is_datetime(s)
                };
                if ok {
                    Ok(Some(Val::Str(s.into())))
                } else {
                    Err(parser_error(def, value))
                }
            }
            Kind::Boolean => match value {
                FieldValue::Bool(b) => Ok(Some(Val::Bool(*b))),
                FieldValue::Str(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Val::Bool(true))),
                FieldValue::Str(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Val::Bool(false))),
                _ => Err(parser_error(def, value)),
            },
            Kind::Reference => {
                let FieldValue::Str(s) = value else {
                    return Err(parser_error(def, value));
                };
                let Some(s) = normalise_text(s) else {
                    return Ok(None);
                };
                if !def.poly.is_empty() {
                    return self.convert_poly(def, s);
                }
                let (parent, _) = def.reference.unwrap_or((ObjectKind::Account, "Account"));
                match parse_record_id(parent, s) {
                    Ok(row) if self.table(parent).has(row) => Ok(Some(Val::Ref(row))),
                    Ok(_) => Err(Conv::Item(ItemError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id".into(),
                        &[def.name],
                    ))),
                    Err(IdError::Malformed) => Err(Conv::Item(ItemError::new(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", def.label),
                        &[def.name],
                    ))),
                }
            }
            _ => Err(parser_error(def, value)),
        }
    }

    /// A polymorphic reference (Note's `ParentId`): the id's key prefix says which object it
    /// points at, which must be one the field allows.
    fn convert_poly(&self, def: &FieldDef, id: &str) -> Result<Option<Val>, Conv> {
        let malformed = || {
            Conv::Item(ItemError::new(
                "MALFORMED_ID",
                format!("{}: id value of incorrect type: {id}", def.label),
                &[def.name],
            ))
        };
        let parent = ObjectKind::of_id(id).ok_or_else(malformed)?;
        let row = parse_record_id(parent, id).map_err(|_| malformed())?;
        if !def.poly.contains(&parent) {
            return Err(Conv::Item(ItemError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                format!("{}: id value of incorrect type: {id}", def.label),
                &[def.name],
            )));
        }
        if self.table(parent).has(row) {
            Ok(Some(Val::Poly(parent, row)))
        } else {
            Err(Conv::Item(ItemError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id".into(),
                &[def.name],
            )))
        }
    }

    /// Whether user row `row` is active (a deactivated user may not own records).
    pub(crate) fn user_active(&self, row: u32) -> bool {
        let table = self.table(ObjectKind::User);
        table
            .slot("IsActive")
            .is_some_and(|slot| table.value(row, slot) == Some(V::Bool(true)))
    }

    /// Salesforce's refusal of an owner who is deactivated.
    fn inactive_owner(
        &self,
        object: ObjectKind,
        def: &FieldDef,
        value: &Option<Val>,
    ) -> Option<ItemError> {
        match (def.reference, value) {
            (Some((ObjectKind::User, _)), Some(Val::Ref(row))) if !self.user_active(*row) => {
                Some(ItemError::new(
                    "INACTIVE_OWNER_OR_USER",
                    format!(
                        "operation performed with inactive user [{}] as owner of {}",
                        record_id(ObjectKind::User, *row),
                        object.label().to_lowercase()
                    ),
                    &[def.name],
                ))
            }
            _ => None,
        }
    }

    /// Resolves `"Account": {"Ferry_Source_Id__c": "123"}` to the parent's row.
    fn resolve_parent(&self, def: &FieldDef, value: &FieldValue<'_>) -> Result<Option<Val>, Conv> {
        let (parent, relationship) = def.reference.unwrap_or((ObjectKind::Account, "Account"));
        let FieldValue::Other(Json::Object(map)) = value else {
            return if matches!(value, FieldValue::Null) {
                Ok(None)
            } else {
                Err(parser_error(def, value))
            };
        };
        let keys: Vec<(&String, &Json)> = map
            .iter()
            .filter(|(k, _)| k.as_str() != "attributes")
            .collect();
        let [(key, key_value)] = keys.as_slice() else {
            return Err(Conv::Request(RequestError::bad_request(
                "INVALID_FIELD",
                format!(
                    "The relationship {relationship} must name exactly one external id field of {}",
                    parent.name()
                ),
            )));
        };
        let table = self.table(parent);
        let field = table.schema.field(key).map(|i| &table.schema.fields[i]);
        let raw = match key_value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            other => return Err(parser_error(def, &FieldValue::Other(Json::clone(other)))),
        };
        match field {
            Some(f) if f.external_id => {
                let row = normalise_text(&raw).and_then(|v| table.ext_row(v));
                match row {
                    Some(row) => Ok(Some(Val::Ref(row))),
                    None => Err(Conv::Item(ItemError::new(
                        "INVALID_FIELD",
                        format!(
                            "Foreign key external ID: {raw} not found for field {} in entity {}",
                            f.name,
                            parent.name()
                        ),
                        &[],
                    ))),
                }
            }
            Some(f) if f.kind == Kind::Id => self.convert(def, &FieldValue::Str(Cow::Owned(raw))),
            _ => Err(Conv::Request(RequestError::bad_request(
                "INVALID_FIELD",
                format!(
                    "Field name provided, {key} is not an External ID or indexed field for {}",
                    parent.name()
                ),
            ))),
        }
    }

    /// Validates one record of a write request against `object`. `Err` fails the whole request.
    pub(crate) fn prepare(
        &self,
        object: ObjectKind,
        record: &Record<'_>,
        mode: Mode,
    ) -> Result<ItemOutcome, RequestError> {
        let table = self.table(object);
        let schema = &table.schema;
        if !object.writable() {
            let verb = if mode == Mode::Update {
                "updated"
            } else {
                "inserted"
            };
            return Ok(Err((
                None,
                vec![ItemError::new(
                    "INVALID_TYPE_FOR_OPERATION",
                    format!("entity type cannot be {verb}: {}", object.label()),
                    &[],
                )],
            )));
        }
        let mut errors = Vec::new();
        let mut values: Vec<(usize, Option<Val>)> = Vec::new();
        let mut not_writable = Vec::new();
        // Fields that may be written on create only, and `CreatedDate` (audit fields).
        let mut create_only: Vec<&'static str> = Vec::new();
        let mut created = None;
        let mut target = Target::New;
        let mut existing_id = None;
        let mut ext_key: Option<Option<Box<str>>> = None;

        if mode == Mode::Update {
            let id = record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                .and_then(|(_, v)| v.as_str());
            match id.map(|id| parse_record_id(object, id)) {
                None => {
                    errors.push(ItemError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call".into(),
                        &[],
                    ));
                }
                Some(Ok(row)) if table.has(row) => {
                    target = Target::Existing(row);
                    existing_id = Some(record_id(object, row));
                }
                Some(Ok(_)) => errors.push(ItemError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted".into(),
                    &[],
                )),
                Some(Err(_)) => errors.push(ItemError::new(
                    "MALFORMED_ID",
                    format!(
                        "{} ID: id value of incorrect type: {}",
                        object.name(),
                        id.unwrap_or_default()
                    ),
                    &["Id"],
                )),
            }
        }

        for (key, value) in record.iter() {
            if key == "attributes" {
                continue;
            }
            let Some(i) = schema.field(key) else {
                if let Some(i) = schema.relationship(key) {
                    let def = &schema.fields[i];
                    match self.resolve_parent(def, value) {
                        Ok(v) => {
                            if let Some(e) = self.inactive_owner(object, def, &v) {
                                errors.push(e);
                            }
                            push_value(&mut values, def, v);
                        }
                        Err(Conv::Item(e)) => errors.push(e),
                        Err(Conv::Request(e)) => return Err(e),
                    }
                    continue;
                }
                return Err(RequestError::bad_request(
                    "INVALID_FIELD",
                    format!(
                        "No such column '{key}' on sobject of type {}",
                        object.name()
                    ),
                ));
            };
            let def = &schema.fields[i];
            if def.kind == Kind::Id {
                if mode != Mode::Update {
                    not_writable.push(def.name);
                }
                continue;
            }
            if !def.writable {
                not_writable.push(def.name);
                continue;
            }
            if def.create_only {
                create_only.push(def.name);
            }
            if def.slot == Slot::CreatedDate {
                match value {
                    FieldValue::Str(text) => match parse_datetime(text) {
                        Some(ms) => created = Some(ms),
                        None => return Err(parser_error(def, value).into_request()),
                    },
                    FieldValue::Null => {}
                    _ => return Err(parser_error(def, value).into_request()),
                }
                continue;
            }
            let converted = match self.convert(def, value) {
                Ok(v) => v,
                Err(Conv::Item(e)) => {
                    errors.push(e);
                    continue;
                }
                Err(Conv::Request(e)) => return Err(e),
            };
            if let Some(e) = self.inactive_owner(object, def, &converted) {
                errors.push(e);
            }
            if schema.external_id == Some(i) {
                if let Some(Val::Str(s)) = &converted {
                    ext_key = Some(Some(s.clone()));
                } else {
                    ext_key = Some(None);
                }
            }
            push_value(&mut values, def, converted);
        }

        if let Mode::Upsert { ext_field } = mode {
            let name = schema.fields[ext_field].name;
            match ext_key.clone().flatten() {
                Some(key) => {
                    if let Some(row) = table.ext_row(&key) {
                        target = Target::Existing(row);
                        existing_id = Some(record_id(object, row));
                    }
                }
                None => errors.push(ItemError::new(
                    "MISSING_ARGUMENT",
                    format!("{name} not specified"),
                    &[],
                )),
            }
        } else if let Some(Some(key)) = &ext_key {
            // Creating or updating may not take another record's unique value.
            if let Some(other) = table.ext_row(key)
                && !matches!(target, Target::Existing(row) if row == other)
            {
                let name = schema
                    .external_id
                    .map(|i| schema.fields[i].name)
                    .unwrap_or_default();
                errors.push(ItemError::new(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {name} duplicates value on record with id: {}",
                        record_id(object, other)
                    ),
                    &[name],
                ));
            }
        }

        if matches!(target, Target::Existing(_)) {
            not_writable.extend(create_only);
            created = None;
        }
        if !not_writable.is_empty() {
            errors.push(ItemError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify \
                     that it is read/write for your profile or permission set.",
                    not_writable.join(", ")
                ),
                &not_writable,
            ));
        }

        // Required fields, judged on the record as it would be saved.
        let missing: Vec<&str> = schema
            .fields
            .iter()
            .filter(|f| f.required)
            .filter(|f| {
                let Slot::Data(slot) = f.slot else {
                    return false;
                };
                match values.iter().find(|(s, _)| *s == slot) {
                    Some((_, v)) => v.is_none(),
                    None => match target {
                        Target::New => true,
                        Target::Existing(row) => table.value(row, slot).is_none(),
                    },
                }
            })
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            errors.push(ItemError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        if errors.is_empty() {
            let row = match target {
                Target::Existing(row) => Some(row),
                Target::New => None,
            };
            if let Err(e) = table.engine_check(row, &values) {
                match engine_error(schema, &e) {
                    Conv::Item(e) => errors.push(e),
                    Conv::Request(e) => return Err(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(Ok(Change {
                object,
                target,
                values,
                created,
            }))
        } else {
            Ok(Err((existing_id, errors)))
        }
    }

    /// Applies a validated change, returning the record's id and whether it was created.
    pub(crate) fn apply(&mut self, change: Change, now: i64) -> (String, bool) {
        let object = change.object;
        let table = self.table_mut(object);
        let written: Vec<usize> = change.values.iter().map(|(slot, _)| *slot).collect();
        let (row, created) = match change.target {
            Target::Existing(row) => {
                let old_ext = table.ext_value(row).map(Box::<str>::from);
                table.set(row, change.values, now);
                table.reindex_ext(row, old_ext);
                (row, false)
            }
            Target::New => {
                // A new record's checkboxes are unticked unless written.
                let mut values: Vec<(usize, Option<Val>)> = table
                    .schema
                    .fields
                    .iter()
                    .filter_map(|f| match (f.kind, f.slot) {
                        (Kind::Boolean, Slot::Data(s)) if !written.contains(&s) => {
                            Some((s, Some(Val::Bool(false))))
                        }
                        _ => None,
                    })
                    .collect();
                values.extend(change.values);
                let row = table.push(values, change.created.unwrap_or(now), now);
                table.reindex_ext(row, None);
                (row, true)
            }
        };
        self.derive(object, row, created, &written, now);
        (record_id(object, row), created)
    }

    /// What Salesforce sets itself when a record is saved: on create, the owner (the calling
    /// user) and the currency (the corporate one) when the write named none; on an
    /// opportunity, `IsClosed`, `IsWon`, `ForecastCategoryName` from its stage, and the
    /// stage's probability unless the write set one; on a contact role made primary, every
    /// other role of its opportunity made not primary (one primary per opportunity).
    fn derive(&mut self, object: ObjectKind, row: u32, created: bool, written: &[usize], now: i64) {
        let table = self.table_mut(object);
        let mut set: Vec<(usize, Option<Val>)> = Vec::new();
        if created {
            if let Some(slot) = table
                .slot("OwnerId")
                .filter(|s| table.value(row, *s).is_none())
            {
                set.push((slot, Some(Val::Ref(0))));
            }
            if let Some(slot) = table
                .slot("CurrencyIsoCode")
                .filter(|s| table.value(row, *s).is_none())
            {
                set.push((slot, Some(Val::Str(super::schema::CURRENCIES[0].into()))));
            }
        }
        if object == ObjectKind::Opportunity {
            let stage = table
                .slot("StageName")
                .filter(|s| created || written.contains(s))
                .and_then(|s| match table.value(row, s) {
                    Some(V::Str(label)) => {
                        super::schema::stages().iter().find(|st| st.label == label)
                    }
                    _ => None,
                });
            if let Some(stage) = stage {
                let derived = [
                    ("IsClosed", Val::Bool(stage.closed)),
                    ("IsWon", Val::Bool(stage.won)),
                    ("ForecastCategoryName", Val::Str(stage.forecast.into())),
                ];
                for (name, value) in derived {
                    if let Some(slot) = table.slot(name) {
                        set.push((slot, Some(value)));
                    }
                }
                if let Some(slot) = table.slot("Probability").filter(|s| !written.contains(s)) {
                    set.push((slot, Some(Val::Num(stage.probability))));
                }
            }
        }
        if !set.is_empty() {
            table.set(row, set, now);
        }
        if object == ObjectKind::OpportunityContactRole {
            let Some(primary) = table.slot("IsPrimary") else {
                return;
            };
            let made_primary =
                written.contains(&primary) && table.value(row, primary) == Some(V::Bool(true));
            let Some(key) = table.parent_key(row).filter(|_| made_primary) else {
                return;
            };
            let siblings: Vec<u32> = table
                .children
                .as_ref()
                .and_then(|(_, index)| index.get(&key))
                .map(|rows| rows.iter().copied().filter(|r| *r != row).collect())
                .unwrap_or_default();
            for sibling in siblings {
                if table.has(sibling) && table.value(sibling, primary) == Some(V::Bool(true)) {
                    table.set(sibling, vec![(primary, Some(Val::Bool(false)))], now);
                }
            }
        }
    }

    /// Deletes row `row` of `object` at `now` with what Salesforce deletes with it: an
    /// account's contacts, opportunities and notes; a contact's notes and contact roles; an
    /// opportunity's contact roles and notes. Each goes into the deletion log. `false` when
    /// the row was not live.
    fn delete_with_children(&mut self, object: ObjectKind, row: u32, now: i64) -> bool {
        if !self.table_mut(object).delete_row(row, now) {
            return false;
        }
        self.deleted_log.push((object, row, now));
        let children: &[(ObjectKind, &str)] = match object {
            ObjectKind::Account => &[
                (ObjectKind::Contact, "AccountId"),
                (ObjectKind::Opportunity, "AccountId"),
                (ObjectKind::Note, "ParentId"),
            ],
            ObjectKind::Contact => &[
                (ObjectKind::Note, "ParentId"),
                (ObjectKind::OpportunityContactRole, "ContactId"),
            ],
            ObjectKind::Opportunity => &[
                (ObjectKind::OpportunityContactRole, "OpportunityId"),
                (ObjectKind::Note, "ParentId"),
            ],
            _ => &[],
        };
        for &(child, field) in children {
            let table = self.table(child);
            // An indexed parent (a contact role's opportunity, a note's parent) costs what it
            // holds; other references are scanned (deletes are rare).
            let rows: Vec<u32> = match &table.children {
                Some((f, index)) if table.schema.fields[*f].name == field => index
                    .get(&(object, row))
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| table.has(*r))
                    .collect(),
                _ => table.referring(field, (object, row)),
            };
            for r in rows {
                self.delete_with_children(child, r, now);
            }
        }
        true
    }

    /// `getDeleted`: the rows of `object` deleted within `start..=end` (ms), with the time each
    /// was deleted, and `earliestDateAvailable`: the last purged delete, or the start of the
    /// Recycle Bin's 15 days before `now`, whichever is later.
    pub(crate) fn deleted_between(
        &self,
        object: ObjectKind,
        start: i64,
        end: i64,
        now: i64,
    ) -> (Vec<(String, i64)>, i64) {
        let window = now - RECYCLE_BIN_MS;
        let earliest = self.purged_through.map_or(window, |p| p.max(window));
        let records = self
            .deleted_log
            .iter()
            .filter(|(o, _, at)| *o == object && *at >= start && *at <= end && *at >= earliest)
            .map(|(o, row, at)| (record_id(*o, *row), *at))
            .collect();
        (records, earliest)
    }

    /// Empties the Recycle Bin of the deletes before `before` (ms): `getDeleted` no longer
    /// reports them, and says so in `earliestDateAvailable`.
    pub(crate) fn purge_deleted(&mut self, before: i64) {
        let last = self
            .deleted_log
            .iter()
            .filter(|(_, _, at)| *at < before)
            .map(|(_, _, at)| *at)
            .max();
        self.deleted_log.retain(|(_, _, at)| *at >= before);
        if let Some(last) = last {
            self.purged_through = Some(self.purged_through.map_or(last, |p| p.max(last)));
        }
    }

    /// `DELETE composite/sobjects?ids=…`: each id's result in request order, with what
    /// Salesforce deletes with each record ([`Store::delete_with_children`]).
    pub(crate) fn delete(&mut self, ids: &[&str], all_or_none: bool, now: i64) -> Vec<SaveResult> {
        let targets: Vec<Result<(ObjectKind, u32), ItemError>> = ids
            .iter()
            .map(|id| {
                let malformed =
                    || ItemError::new("MALFORMED_ID", format!("malformed id {id}"), &[]);
                let object = ObjectKind::of_id(id).ok_or_else(malformed)?;
                let row = parse_record_id(object, id).map_err(|_| malformed())?;
                let table = self.table(object);
                if !object.writable() {
                    return Err(ItemError::new(
                        "DELETE_FAILED",
                        format!("the sandbox does not delete {} records", object.name()),
                        &[],
                    ));
                }
                if !table.has(row) {
                    return Err(ItemError::new(
                        "ENTITY_IS_DELETED",
                        "entity is deleted".into(),
                        &[],
                    ));
                }
                Ok((object, row))
            })
            .collect();
        let failed = targets.iter().any(Result::is_err);
        let mut results = Vec::with_capacity(targets.len());
        for (target, id) in targets.into_iter().zip(ids) {
            let result = match target {
                Err(e) => failure(Some((*id).to_owned()), vec![e]),
                Ok((object, row)) if all_or_none && failed => failure(
                    Some(record_id(object, row)),
                    vec![ItemError::new(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header"
                            .into(),
                        &[],
                    )],
                ),
                Ok((object, row)) => {
                    if self.delete_with_children(object, row, now) {
                        SaveResult {
                            created: None,
                            errors: Vec::new(),
                            id: Some(record_id(object, row)),
                            success: true,
                        }
                    } else {
                        failure(
                            Some(record_id(object, row)),
                            vec![ItemError::new("ENTITY_IS_DELETED", "entity is deleted".into(), &[])],
                        )
                    }
                }
            };
            results.push(result);
        }
        results
    }

    /// Runs a whole collections write: validation, duplicate external ids within the request,
    /// allOrNone, then the writes in request order. Returns the per-record results.
    pub(crate) fn write(
        &mut self,
        items: Vec<Item<'_>>,
        mode: Mode,
        all_or_none: bool,
        now: i64,
    ) -> Result<Vec<SaveResult>, RequestError> {
        let outcomes = self.prepare_all(&items, mode, false)?;
        let failed = outcomes.iter().any(Result::is_err);
        let mut results = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let result = match outcome {
                Ok(change) if all_or_none && failed => {
                    let id = match change.target {
                        Target::Existing(row) => Some(record_id(change.object, row)),
                        Target::New => None,
                    };
                    failure(id, vec![ItemError::new(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header"
                            .into(),
                        &[],
                    )])
                }
                Ok(change) => {
                    let (id, created) = self.apply(change, now);
                    SaveResult {
                        created: matches!(mode, Mode::Upsert { .. }).then_some(created),
                        errors: Vec::new(),
                        id: Some(id),
                        success: true,
                    }
                }
                Err((id, errors)) => failure(id, errors),
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Validates every record of a write: [`Store::prepare`] each, then duplicate external ids
    /// within the request refused. With `per_record`, a record that would fail the whole
    /// request (a value the parser cannot read, an unknown field) fails on its own instead, as
    /// Bulk API 2.0 reports it per row.
    fn prepare_all(
        &self,
        items: &[Item<'_>],
        mode: Mode,
        per_record: bool,
    ) -> Result<Vec<ItemOutcome>, RequestError> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut seen: HashSet<(ObjectKind, String)> = HashSet::new();
        for (object, record) in items {
            let mut outcome = match self.prepare(*object, record, mode) {
                Ok(outcome) => outcome,
                Err(e) if per_record => {
                    Err((None, vec![ItemError::new(e.error_code, e.message, &[])]))
                }
                Err(e) => return Err(e),
            };
            if let (Mode::Upsert { ext_field }, Ok(_)) = (mode, &outcome) {
                let schema = &self.table(*object).schema;
                let name = schema.fields[ext_field].name;
                let key = record
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
                    .and_then(normalise_text)
                    .unwrap_or_default()
                    .to_owned();
                if !seen.insert((*object, key.clone())) {
                    outcome = Err((
                        None,
                        vec![ItemError::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!("Duplicate external id specified: {key}"),
                            &[name],
                        )],
                    ));
                }
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Writes each record on its own (Bulk API 2.0 ingest): a record's errors, of whatever
    /// kind, fail that record only; duplicate external ids within `items` are refused.
    /// Each result: the record id and whether it was created, or the id (if known) and errors.
    pub(crate) fn write_each(
        &mut self,
        items: &[Item<'_>],
        mode: Mode,
        now: i64,
    ) -> Vec<RowResult> {
        let outcomes = self.prepare_all(items, mode, true).unwrap_or_default();
        outcomes
            .into_iter()
            .map(|outcome| outcome.map(|change| self.apply(change, now)))
            .collect()
    }

    // ---- queries ---------------------------------------------------------------------------

    /// Resolves a SOQL path on `object` to a column.
    fn column(&self, object: ObjectKind, path: &soql::Path) -> Result<Column, RequestError> {
        let schema = &self.table(object).schema;
        let no_column = |name: &str, on: &str| {
            RequestError::bad_request(
                "INVALID_FIELD",
                format!(
                    "No such column '{name}' on entity '{on}'. If you are attempting to use a custom field, be sure \
                     to append the '__c' after the custom field name. Please reference your WSDL or the describe \
                     call for the appropriate names."
                ),
            )
        };
        match &path.relationship {
            None => {
                let field = schema
                    .field(&path.field)
                    .ok_or_else(|| no_column(&path.field, object.name()))?;
                Ok(Column {
                    relationship: None,
                    field,
                })
            }
            Some(rel) => {
                let via = schema.relationship(rel).ok_or_else(|| {
                    RequestError::bad_request(
                        "INVALID_FIELD",
                        format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name."),
                    )
                })?;
                let (parent, _) = schema.fields[via]
                    .reference
                    .unwrap_or((ObjectKind::Account, "Account"));
                let parent_schema = &self.table(parent).schema;
                let field = parent_schema
                    .field(&path.field)
                    .ok_or_else(|| no_column(&path.field, parent.name()))?;
                Ok(Column {
                    relationship: Some((via, parent)),
                    field,
                })
            }
        }
    }

    /// The value of `field` in row `row` of `object`.
    fn cell(&self, object: ObjectKind, row: u32, field: usize) -> Cell<'_> {
        let table = self.table(object);
        // A row deleted after its query ran still renders (a query's rows are a snapshot).
        if row as usize >= table.len() {
            return Cell::Null;
        }
        match table.schema.fields[field].slot {
            Slot::Id => Cell::Id(object, row),
            Slot::CreatedDate => table.times(row).map_or(Cell::Null, |(c, _)| Cell::Date(c)),
            // Every change of a record moves both: the emulator's changes are all API writes.
            Slot::LastModifiedDate | Slot::SystemModstamp => {
                table.times(row).map_or(Cell::Null, |(_, m)| Cell::Date(m))
            }
            Slot::Data(s) => match table.value(row, s) {
                None => Cell::Null,
                Some(V::Str(v)) => Cell::Str(v),
                Some(V::Bool(b)) => Cell::Bool(b),
                Some(V::Int(n)) => Cell::Num(n as f64),
                // Custom Number fields are Java doubles on Salesforce: `12.0`, never `12`.
                Some(V::Num(n)) if table.schema.fields[field].kind == Kind::Double => {
                    Cell::Double(n)
                }
                Some(V::Num(n)) => Cell::Num(n),
                Some(V::Poly(o, r)) => Cell::Id(o, r),
                Some(V::Ref(r)) => {
                    let parent = table.schema.fields[field]
                        .reference
                        .map(|(p, _)| p)
                        .unwrap_or(ObjectKind::Account);
                    Cell::Id(parent, r)
                }
            },
        }
    }

    /// The parent row a relationship column goes through, if set.
    fn parent_row(&self, object: ObjectKind, row: u32, via: usize) -> Option<u32> {
        match self.cell(object, row, via) {
            Cell::Id(_, r) => Some(r),
            _ => None,
        }
    }

    fn column_cell(&self, object: ObjectKind, row: u32, col: &Column) -> Cell<'_> {
        match col.relationship {
            None => self.cell(object, row, col.field),
            Some((via, parent)) => match self.parent_row(object, row, via) {
                Some(p) => self.cell(parent, p, col.field),
                None => Cell::Null,
            },
        }
    }

    /// The columns of `query`'s SELECT list in order, each with its header (the path as the
    /// query writes it), as Bulk API 2.0 query results lay them out.
    pub(crate) fn select_columns(
        &self,
        query: &soql::Query,
    ) -> Result<Vec<(String, Column)>, RequestError> {
        let object = ObjectKind::parse(&query.from).ok_or_else(|| {
            RequestError::bad_request(
                "INVALID_TYPE",
                format!("sObject type '{}' is not supported.", query.from),
            )
        })?;
        let Select::Fields(paths) = &query.select else {
            return Ok(Vec::new());
        };
        paths
            .iter()
            .map(|path| {
                let header = match &path.relationship {
                    Some(rel) => format!("{rel}.{}", path.field),
                    None => path.field.clone(),
                };
                Ok((header, self.column(object, path)?))
            })
            .collect()
    }

    /// The value of `col` in row `row` of `object` as CSV text: empty for null, ids, `true` /
    /// `false`, numbers as JSON writes them, date-times as Salesforce formats them.
    pub(crate) fn cell_text(&self, object: ObjectKind, row: u32, col: &Column) -> String {
        match self.column_cell(object, row, col) {
            Cell::Null => String::new(),
            Cell::Id(o, r) => record_id(o, r),
            Cell::Str(s) => s.to_owned(),
            Cell::Bool(b) => b.to_string(),
            Cell::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => (n as i64).to_string(),
            Cell::Num(n) | Cell::Double(n) if !n.is_finite() => String::new(),
            Cell::Double(n) if n.fract() == 0.0 => format!("{n:.1}"),
            Cell::Num(n) | Cell::Double(n) => n.to_string(),
            Cell::Date(ms) => datetime(ms).to_string(),
        }
    }

    /// Plans and runs `query`, returning the matching live rows in order.
    pub(crate) fn run(&self, query: &soql::Query) -> Result<Planned, RequestError> {
        self.run_over(query, false)
    }

    /// `queryAll`: [`Store::run`] over the live rows and those deleted into the Recycle Bin
    /// (not yet purged from it).
    pub(crate) fn run_all(&self, query: &soql::Query) -> Result<Planned, RequestError> {
        self.run_over(query, true)
    }

    fn run_over(&self, query: &soql::Query, in_bin: bool) -> Result<Planned, RequestError> {
        let object = ObjectKind::parse(&query.from).ok_or_else(|| {
            RequestError::bad_request(
                "INVALID_TYPE",
                format!(
                    "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to \
                     append the '__c' after the entity name. Please reference your WSDL or the describe call for \
                     the appropriate names.",
                    query.from
                ),
            )
        })?;
        let table = self.table(object);
        let columns = match &query.select {
            Select::Count => Vec::new(),
            Select::Fields(paths) => paths
                .iter()
                .map(|p| self.column(object, p))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut rows: Vec<u32> = match &query.filter {
            None => (0..table.len() as u32).collect(),
            Some(soql::Filter {
                path,
                op: op @ (Op::Gt(Literal::DateTime(_)) | Op::Ge(_)),
            }) => {
                let col = self.column(object, path)?;
                let def = &table.schema.fields[col.field];
                let (Op::Gt(Literal::DateTime(at)) | Op::Ge(Literal::DateTime(at))) = op else {
                    return Err(RequestError::bad_request(
                        "MALFORMED_QUERY",
                        "the sandbox compares with >= only a date-time field with a date-time literal"
                            .to_owned(),
                    ));
                };
                if col.relationship.is_some() || def.kind != Kind::Datetime {
                    return Err(RequestError::bad_request(
                        "INVALID_FIELD",
                        format!(
                            "the sandbox compares with > and >= a date-time literal only to a \
                             date-time field of the queried object, and '{}' is not one",
                            def.name
                        ),
                    ));
                }
                let strict = matches!(op, Op::Gt(_));
                (0..table.len() as u32)
                    .filter(|&row| match self.column_cell(object, row, &col) {
                        Cell::Date(ms) => ms > *at || (!strict && ms == *at),
                        _ => false,
                    })
                    .collect()
            }
            Some(soql::Filter {
                path,
                op: Op::Between(low, high),
            }) => {
                let col = self.column(object, path)?;
                let is_id =
                    col.relationship.is_none() && table.schema.fields[col.field].kind == Kind::Id;
                let bound = |l: &Literal| match l {
                    Literal::Str(s) if is_id => parse_record_id(object, s).map_err(|_| {
                        RequestError::bad_request(
                            "INVALID_QUERY_FILTER_OPERATOR",
                            format!("invalid ID field: {s}"),
                        )
                    }),
                    _ => Err(RequestError::bad_request(
                        "MALFORMED_QUERY",
                        "the sandbox compares with >= … AND <= … only Id, with id literals"
                            .to_owned(),
                    )),
                };
                let (low, high) = (bound(low)?, bound(high)?);
                let end = high.saturating_add(1).min(table.len() as u32);
                (low.min(end)..end).collect()
            }
            Some(soql::Filter {
                path,
                op: Op::Gt(after),
            }) => {
                let col = self.column(object, path)?;
                let is_id =
                    col.relationship.is_none() && table.schema.fields[col.field].kind == Kind::Id;
                let after = match after {
                    Literal::Str(s) if is_id => parse_record_id(object, s).map_err(|_| {
                        RequestError::bad_request(
                            "INVALID_QUERY_FILTER_OPERATOR",
                            format!("invalid ID field: {s}"),
                        )
                    })?,
                    _ => {
                        return Err(RequestError::bad_request(
                            "MALFORMED_QUERY",
                            "the sandbox compares with > only on Id, with an id literal".to_owned(),
                        ));
                    }
                };
                (after.saturating_add(1)..table.len() as u32).collect()
            }
            Some(filter) => {
                let col = self.column(object, &filter.path)?;
                let literals: &[Literal] = match &filter.op {
                    Op::In(v) => v,
                    Op::Eq(v) => std::slice::from_ref(v),
                    Op::Ne(_) | Op::Gt(_) | Op::Ge(_) | Op::Between(..) => &[],
                };
                let indexed = col.relationship.is_none()
                    && !matches!(filter.op, Op::Ne(_))
                    && literals.iter().all(|l| matches!(l, Literal::Str(_)));
                let def = &table.schema.fields[col.field];
                let children = table
                    .children
                    .as_ref()
                    .filter(|(field, _)| indexed && *field == col.field);
                if let Some((_, index)) = children {
                    let mut rows: Vec<u32> = literals
                        .iter()
                        .filter_map(|l| match l {
                            Literal::Str(s) => {
                                let parent = ObjectKind::of_id(s)?;
                                let row = parse_record_id(parent, s).ok()?;
                                index.get(&(parent, row))
                            }
                            _ => None,
                        })
                        .flatten()
                        .copied()
                        .collect();
                    rows.sort_unstable();
                    rows.dedup();
                    rows
                } else if indexed && table.schema.external_id == Some(col.field) {
                    let mut rows: Vec<u32> = literals
                        .iter()
                        .filter_map(|l| match l {
                            Literal::Str(s) => table.ext_row(s),
                            _ => None,
                        })
                        .collect();
                    rows.sort_unstable();
                    rows.dedup();
                    rows
                } else if indexed && def.kind == Kind::Id {
                    let mut rows: Vec<u32> = literals
                        .iter()
                        .filter_map(|l| match l {
                            Literal::Str(s) => parse_record_id(object, s).ok(),
                            _ => None,
                        })
                        .filter(|r| table.has(*r))
                        .collect();
                    rows.sort_unstable();
                    rows.dedup();
                    rows
                } else {
                    let case_sensitive =
                        col.relationship.is_none() && table.schema.external_id == Some(col.field);
                    (0..table.len() as u32)
                        .filter(|&row| {
                            let cell = self.column_cell(object, row, &col);
                            match &filter.op {
                                Op::In(values) => {
                                    values.iter().any(|l| cell.matches(l, case_sensitive))
                                }
                                Op::Eq(l) => cell.matches(l, case_sensitive),
                                Op::Ne(l) => !cell.matches(l, case_sensitive),
                                Op::Gt(_) | Op::Ge(_) | Op::Between(..) => false, // answered above
                            }
                        })
                        .collect()
                }
            }
        };
        if table.has_deleted() {
            let binned: std::collections::HashSet<u32> = if in_bin {
                self.deleted_log
                    .iter()
                    .filter(|(o, _, _)| *o == object)
                    .map(|(_, row, _)| *row)
                    .collect()
            } else {
                Default::default()
            };
            rows.retain(|row| table.has(*row) || binned.contains(row));
        }
        let keys = query
            .order
            .iter()
            .map(|order| Ok((order, self.column(object, &order.path)?)))
            .collect::<Result<Vec<_>, RequestError>>()?;
        if let [(order, col)] = keys.as_slice()
            && col.relationship.is_none()
            && matches!(table.schema.fields[col.field].slot, Slot::Id)
        {
            debug_assert!(rows.is_sorted());
            // Rows are already in id order (the id encodes the row, and every filter
            // yields ascending rows): sorting a million of them per query is wasted work.
            if order.descending {
                rows.reverse();
            }
        } else if !keys.is_empty() {
            // Each key in turn; the sort is stable, so ties on every key stay in id order.
            rows.sort_by(|&a, &b| {
                keys.iter()
                    .map(|(order, col)| {
                        let (x, y) = (
                            self.column_cell(object, a, col),
                            self.column_cell(object, b, col),
                        );
                        match (x.is_null(), y.is_null()) {
                            (true, true) => Ordering::Equal,
                            (true, false) => {
                                if order.nulls_last {
                                    Ordering::Greater
                                } else {
                                    Ordering::Less
                                }
                            }
                            (false, true) => {
                                if order.nulls_last {
                                    Ordering::Less
                                } else {
                                    Ordering::Greater
                                }
                            }
                            (false, false) => {
                                let o = x.compare(&y);
                                if order.descending { o.reverse() } else { o }
                            }
                        }
                    })
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            });
        }
        if let Some(limit) = query.limit {
            rows.truncate(limit);
        }
        let names = match &query.select {
            Select::Count => Vec::new(),
            Select::Fields(_) => columns
                .iter()
                .map(|c| match c.relationship {
                    None => table.schema.fields[c.field].name,
                    Some((_, parent)) => self.table(parent).schema.fields[c.field].name,
                })
                .collect(),
        };
        let layout = layout(self, object, &columns, &names);
        Ok(Planned {
            object,
            count_only: query.select == Select::Count,
            layout,
            rows: Arc::new(rows),
        })
    }

    /// Renders rows of a planned query as Salesforce's JSON records, as `Value`s (for
    /// callers that inspect them; responses serialise [`Records`] directly).
    pub(crate) fn render(&self, planned: &Planned, rows: &[u32], version: &str) -> Vec<Json> {
        let records = Records {
            store: self,
            planned,
            rows,
            version,
        };
        match serde_json::to_value(records) {
            Ok(Json::Array(values)) => values,
            _ => Vec::new(), // unreachable: records always serialise to an array
        }
    }

    /// Adds field `def` to `object` in a new data slot (every existing row gets it empty, a
    /// checkbox unticked) and returns its index. A unique external-id field becomes the
    /// object's external id when it has none.
    pub(crate) fn add_field(&mut self, object: ObjectKind, mut def: FieldDef) -> usize {
        let table = self.table_mut(object);
        let mut schema = SObject::clone(&table.schema);
        let slot = schema.data_slots;
        schema.data_slots += 1;
        def.slot = Slot::Data(slot);
        let empty = (def.kind == Kind::Boolean).then_some(Val::Bool(false));
        if def.external_id && schema.external_id.is_none() {
            schema.external_id = Some(schema.fields.len());
        }
        let column = engine_column(&def);
        schema.fields.push(def);
        match &mut table.rows {
            Rows::Own(rows) => {
                for row in rows {
                    let mut values = std::mem::take(&mut row.values).into_vec();
                    values.resize(slot + 1, None);
                    values[slot] = empty.clone();
                    row.values = values.into_boxed_slice();
                }
            }
            Rows::Engine(t) => {
                let at = t.add_column(column);
                debug_assert_eq!(at, slot, "engine columns are the data slots");
                if let Some(empty) = empty {
                    let rows: Vec<(u64, i64)> = t
                        .iter(crate::table::Show::All)
                        .map(|r| (r.id, r.modified_ms))
                        .collect();
                    for (id, modified) in rows {
                        // Adding a field changes no record's LastModifiedDate.
                        let _ = t.update(
                            id,
                            vec![(at, Some(empty.clone().into_cell()))],
                            modified,
                            true,
                        );
                    }
                }
            }
        }
        table.schema = Arc::new(schema);
        table.schema.fields.len() - 1
    }

    /// Sets what the user may do with field `field` of `object` (field-level security).
    pub(crate) fn set_access(&mut self, object: ObjectKind, field: usize, read: bool, edit: bool) {
        let table = self.table_mut(object);
        let mut schema = SObject::clone(&table.schema);
        if let Some(def) = schema.fields.get_mut(field) {
            def.readable = read;
            def.writable = edit;
        }
        table.schema = Arc::new(schema);
    }

    /// Loads a row without validation of the request shape (seeding); `values` by field name.
    pub(crate) fn insert_seeded(
        &mut self,
        object: ObjectKind,
        values: Vec<(&str, Option<Val>)>,
        created: i64,
        modified: i64,
    ) -> u32 {
        let table = self.table_mut(object);
        let mut row = Vec::with_capacity(values.len());
        for (name, value) in values {
            if let Some(Slot::Data(s)) = table
                .schema
                .field(name)
                .map(|i| table.schema.fields[i].slot)
            {
                row.push((s, value));
            }
        }
        // The engine keeps cells in column order.
        row.sort_by_key(|(s, _)| *s);
        let row = table.push(row, created, modified);
        table.reindex_ext(row, None);
        row
    }
}

fn push_value(values: &mut Vec<(usize, Option<Val>)>, def: &FieldDef, value: Option<Val>) {
    if let Slot::Data(s) = def.slot {
        // A field named twice (in two spellings) keeps its last value.
        match values.iter_mut().find(|(slot, _)| *slot == s) {
            Some(entry) => entry.1 = value,
            None => values.push((s, value)),
        }
    }
}

fn failure(id: Option<String>, errors: Vec<ItemError>) -> SaveResult {
    SaveResult {
        created: None,
        errors,
        id,
        success: false,
    }
}

/// A record's `attributes` object: its type and its URL.
struct Attributes<'a> {
    object: ObjectKind,
    row: u32,
    version: &'a str,
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = self.object.name();
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", name)?;
        map.serialize_entry(
            "url",
            &AsText(format_args!(
                "/services/data/{}/sobjects/{name}/{}",
                self.version,
                RecordId(self.object, self.row)
            )),
        )?;
        map.end()
    }
}

/// What a query record holds under one key, in the key order of a `serde_json::Map` (sorted),
/// the order the emulator's answers have always had.
#[derive(Clone, Debug)]
enum Entry {
    /// The record's own `attributes`.
    Attributes,
    /// A field of the record (field index).
    Field(usize),
    /// A parent record through lookup field `via`: its `attributes` (`None`) and fields.
    Parent {
        via: usize,
        parent: ObjectKind,
        fields: Vec<(&'static str, Option<usize>)>,
    },
}

/// The keys of a query's records and what each holds, sorted by key; built once per query.
fn layout(
    store: &Store,
    object: ObjectKind,
    columns: &[Column],
    names: &[&'static str],
) -> Vec<(&'static str, Entry)> {
    let schema = &store.table(object).schema;
    let mut keys: BTreeMap<&'static str, Entry> = BTreeMap::new();
    keys.insert("attributes", Entry::Attributes);
    for (col, name) in columns.iter().zip(names) {
        match col.relationship {
            None => {
                keys.insert(name, Entry::Field(col.field));
            }
            Some((via, parent)) => {
                let rel = schema.fields[via]
                    .reference
                    .map(|(_, r)| r)
                    .unwrap_or("Account");
                let entry = keys.entry(rel).or_insert_with(|| Entry::Parent {
                    via,
                    parent,
                    fields: vec![("attributes", None)],
                });
                if let Entry::Parent { fields, .. } = entry {
                    fields.retain(|(n, _)| n != name);
                    fields.push((name, Some(col.field)));
                    fields.sort_by(|a, b| a.0.cmp(b.0));
                }
            }
        }
    }
    keys.into_iter().collect()
}

/// Rows of a planned query as Salesforce's JSON records, serialised straight into the
/// response body (no `Value` tree per record).
pub(crate) struct Records<'a> {
    pub store: &'a Store,
    pub planned: &'a Planned,
    pub rows: &'a [u32],
    pub version: &'a str,
}

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.rows
                .iter()
                .map(|&row| RecordView { records: self, row }),
        )
    }
}

/// One row of [`Records`].
struct RecordView<'a> {
    records: &'a Records<'a>,
    row: u32,
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Records {
            store,
            planned,
            version,
            ..
        } = *self.records;
        let (object, row) = (planned.object, self.row);
        let mut map = s.serialize_map(Some(planned.layout.len()))?;
        for (key, entry) in &planned.layout {
            match entry {
                Entry::Attributes => map.serialize_entry(
                    key,
                    &Attributes {
                        object,
                        row,
                        version,
                    },
                )?,
                Entry::Field(field) => {
                    map.serialize_entry(key, &store.cell(object, row, *field))?
                }
                Entry::Parent {
                    via,
                    parent,
                    fields,
                } => match store.parent_row(object, row, *via) {
                    None => map.serialize_entry(key, &Cell::Null)?,
                    Some(p) => map.serialize_entry(
                        key,
                        &ParentView {
                            store,
                            parent: *parent,
                            row: p,
                            fields,
                            version,
                        },
                    )?,
                },
            }
        }
        map.end()
    }
}

/// The parent record nested in a query record.
struct ParentView<'a> {
    store: &'a Store,
    parent: ObjectKind,
    row: u32,
    fields: &'a [(&'static str, Option<usize>)],
    version: &'a str,
}

impl Serialize for ParentView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (key, field) in self.fields {
            match field {
                None => map.serialize_entry(
                    key,
                    &Attributes {
                        object: self.parent,
                        row: self.row,
                        version: self.version,
                    },
                )?,
                Some(f) => map.serialize_entry(key, &self.store.cell(self.parent, self.row, *f))?,
            }
        }
        map.end()
    }
}

/// A resolved SELECT column: the field, possibly through a lookup (field index, parent).
#[derive(Clone, Debug)]
pub(crate) struct Column {
    relationship: Option<(usize, ObjectKind)>,
    field: usize,
}

/// A query's matching rows and how to render them.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub object: ObjectKind,
    pub count_only: bool,
    /// The records' keys, sorted, and what each holds.
    layout: Vec<(&'static str, Entry)>,
    pub rows: Arc<Vec<u32>>,
}

/// A field value read for filtering, sorting or rendering.
enum Cell<'a> {
    Null,
    Id(ObjectKind, u32),
    Str(&'a str),
    Bool(bool),
    Num(f64),
    /// A number always written with a decimal point.
    Double(f64),
    Date(i64),
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Cell::Null => s.serialize_unit(),
            Cell::Id(o, r) => RecordId(o, r).serialize(s),
            Cell::Str(text) => s.serialize_str(text),
            Cell::Bool(b) => s.serialize_bool(b),
            Cell::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => s.serialize_i64(n as i64),
            // As `serde_json::Value` has it: a non-finite number is `null`.
            Cell::Num(n) if !n.is_finite() => s.serialize_unit(),
            Cell::Num(n) => s.serialize_f64(n),
            Cell::Double(n) if !n.is_finite() => s.serialize_unit(),
            Cell::Double(n) => s.serialize_f64(n),
            Cell::Date(ms) => datetime(ms).serialize(s),
        }
    }
}

impl Cell<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    fn matches(&self, literal: &Literal, case_sensitive: bool) -> bool {
        match (self, literal) {
            (Cell::Null, Literal::Null) => true,
            (Cell::Null, _) | (_, Literal::Null) => false,
            (Cell::Str(s), Literal::Str(l)) => {
                if case_sensitive {
                    *s == l
                } else {
                    s.to_lowercase() == l.to_lowercase()
                }
            }
            (Cell::Id(o, r), Literal::Str(l)) => {
                let id = record_id(*o, *r);
                id == *l || (l.len() == 15 && id.starts_with(l.as_str()))
            }
            (Cell::Bool(b), Literal::Bool(l)) => b == l,
            (Cell::Num(n) | Cell::Double(n), Literal::Num(l)) => n == l,
            (Cell::Date(ms), Literal::DateTime(l)) => ms == l,
            _ => false,
        }
    }

    fn compare(&self, other: &Cell<'_>) -> Ordering {
        match (self, other) {
            (Cell::Str(a), Cell::Str(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
            (Cell::Num(a) | Cell::Double(a), Cell::Num(b) | Cell::Double(b)) => a.total_cmp(b),
            (Cell::Date(a), Cell::Date(b)) => a.cmp(b),
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Id(_, a), Cell::Id(_, b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}
