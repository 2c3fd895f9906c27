//! Deals (`0-3`) and notes (`0-46`): HubSpot objects held on the shared table engine
//! ([`crate::table`]), served on the same routes, gate and fault layers as contacts and
//! companies, in HubSpot's dialect.
//!
//! A table column is a HubSpot property; the properties API describes it with a [`PropDef`].
//! Values travel as strings, as in HubSpot, and are checked by the engine (length, number,
//! datetime, options, references to owners, unique values) with its errors rendered as
//! HubSpot's `Property values were not valid` items. HubSpot's own rules sit on top: a deal
//! needs `dealname` and `dealstage`; without `pipeline` the default pipeline is assumed, and the
//! stage must be one of the pipeline's (ids, never labels); `deal_currency_code` must be one of
//! the account's currencies; `hubspot_owner_id` must be an active owner; a note needs
//! `hs_timestamp` and its body holds at most 65,536 characters (refused, never truncated).
//! `hs_is_closed` and `hs_is_closed_won` are derived from the deal's stage, as HubSpot derives
//! them from the stage's metadata.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;

use axum::Json;
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::account::{OWNERS, Pipeline};
use super::api::{
    DEFAULT_LIMIT, InputError, MAX_BATCH, MAX_LIMIT, MAX_TEXT_VALUE, Params, batch_response,
    decode_cursor, encode_cursor, id_text, inputs, not_found_named, now_ms, trace_ids,
};
use super::links::{Side, assoc_type, v3_associations};
use super::respond::{error, validation};
use super::store::{PropDef, format_timestamp, parse_timestamp};
use super::{Data, Emulator};
use crate::accounts::Outcome;
use crate::table::{Cell, Column, ColumnType, Fold, Row, Show, Table, TableDef, TableError};

/// The currencies of the emulated account (`deal_currency_code` accepts these only): the
/// company currency first.
pub(crate) const CURRENCIES: &[&str] = &["USD", "EUR", "GBP"];

/// A CRM object held on the table engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Obj {
    Deals,
    Notes,
}

impl Obj {
    /// Parses a path segment: plural name, singular name or object type id.
    pub(crate) fn parse(segment: &str) -> Option<Obj> {
        match segment.to_ascii_lowercase().as_str() {
            "deals" | "deal" | "0-3" => Some(Obj::Deals),
            "notes" | "note" | "0-46" => Some(Obj::Notes),
            _ => None,
        }
    }

    /// The table's name.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Obj::Deals => "deals",
            Obj::Notes => "notes",
        }
    }

    fn side(self) -> Side {
        match self {
            Obj::Deals => Side::Deal,
            Obj::Notes => Side::Note,
        }
    }

    fn upper(self) -> &'static str {
        self.side().upper()
    }

    /// The first id handed out (ids are unique per type, as in HubSpot).
    fn first_id(self) -> u64 {
        match self {
            Obj::Deals => 3_000_001,
            Obj::Notes => 4_000_001,
        }
    }

    /// The properties returned when a request names none (HubSpot's spec and guide).
    fn defaults(self) -> &'static [&'static str] {
        match self {
            Obj::Deals => &["dealname", "amount", "closedate", "pipeline", "dealstage"],
            Obj::Notes => &[],
        }
    }

    fn group(self) -> &'static str {
        match self {
            Obj::Deals => "dealinformation",
            Obj::Notes => "engagement",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A property whose value is derived from the row rather than stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Derived {
    ObjectId,
    Created,
    Modified,
    IsClosed,
    IsClosedWon,
}

impl Derived {
    /// Whether HubSpot returns it whatever properties were asked for.
    fn always(self) -> bool {
        matches!(
            self,
            Derived::ObjectId | Derived::Created | Derived::Modified
        )
    }
}

/// One property of a table-held object: its description, and its column or derivation.
#[derive(Clone, Debug)]
pub(crate) struct Prop {
    pub def: PropDef,
    pub derived: Option<Derived>,
}

/// The property descriptions of deals and notes, by [`Obj::index`].
pub(crate) type Props = [Vec<Prop>; 2];

fn prop(obj: Obj, name: &str, label: &str, ty: &str, field_type: &str) -> PropDef {
    PropDef::standard(name, label, ty, field_type, obj.group())
}

fn derived(obj: Obj, name: &str, label: &str, ty: &str, d: Derived) -> Prop {
    let field_type = match ty {
        "number" => "number",
        "bool" => "booleancheckbox",
        _ => "date",
    };
    Prop {
        def: PropDef {
            read_only: true,
            unique: d == Derived::ObjectId,
            ..prop(obj, name, label, ty, field_type)
        },
        derived: Some(d),
    }
}

/// The deals and notes tables and their properties, for an account with `pipelines`.
pub(crate) fn tables(pipelines: &[Pipeline]) -> (Vec<Table>, Props) {
    let stored = |column: Column, def: PropDef| (column, Prop { def, derived: None });
    let pipeline_ids: Vec<String> = pipelines.iter().map(|p| p.id.clone()).collect();
    let stage_ids: Vec<String> = pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| s.id.clone()))
        .collect();
    let choice = |options: Vec<String>| ColumnType::Choice {
        options,
        fold: Fold::Exact,
    };
    let owner = ColumnType::Ref { table: OWNERS };
    let d = Obj::Deals;
    let deal_columns = vec![
        stored(
            Column::text("dealname", MAX_TEXT_VALUE).required(),
            prop(d, "dealname", "Deal Name", "string", "text"),
        ),
        stored(
            Column::new("amount", ColumnType::Number { max: 1e15 }),
            prop(d, "amount", "Amount", "number", "number"),
        ),
        stored(
            Column::new("closedate", ColumnType::DateTime),
            prop(d, "closedate", "Close Date", "datetime", "date"),
        ),
        stored(
            Column::new("pipeline", choice(pipeline_ids)),
            prop(d, "pipeline", "Pipeline", "enumeration", "select"),
        ),
        stored(
            Column::new("dealstage", choice(stage_ids)).required(),
            prop(d, "dealstage", "Deal Stage", "enumeration", "radio"),
        ),
        stored(
            Column::new(
                "deal_currency_code",
                choice(CURRENCIES.iter().map(|c| (*c).to_owned()).collect()),
            ),
            prop(d, "deal_currency_code", "Currency", "enumeration", "select"),
        ),
        stored(
            Column::new("hubspot_owner_id", owner.clone()),
            prop(d, "hubspot_owner_id", "Deal owner", "enumeration", "select"),
        ),
        stored(
            Column::new(
                "dealtype",
                choice(vec!["newbusiness".into(), "existingbusiness".into()]),
            ),
            PropDef {
                options: vec![
                    json!({"label": "New Business", "value": "newbusiness", "displayOrder": 0, "hidden": false}),
                    json!({"label": "Existing Business", "value": "existingbusiness", "displayOrder": 1, "hidden": false}),
                ],
                ..prop(d, "dealtype", "Deal Type", "enumeration", "radio")
            },
        ),
        stored(
            Column::text("description", MAX_TEXT_VALUE),
            prop(d, "description", "Deal Description", "string", "textarea"),
        ),
        stored(
            Column::text("closed_won_reason", MAX_TEXT_VALUE),
            prop(
                d,
                "closed_won_reason",
                "Closed Won Reason",
                "string",
                "textarea",
            ),
        ),
        stored(
            Column::text("closed_lost_reason", MAX_TEXT_VALUE),
            prop(
                d,
                "closed_lost_reason",
                "Closed Lost Reason",
                "string",
                "textarea",
            ),
        ),
    ];
    let n = Obj::Notes;
    let note_columns = vec![
        stored(
            Column::new("hs_timestamp", ColumnType::DateTime).required(),
            prop(n, "hs_timestamp", "Activity date", "datetime", "date"),
        ),
        stored(
            // "hs_note_body … ≤65,536 chars" (HubSpot's notes guide).
            Column::text("hs_note_body", MAX_TEXT_VALUE),
            prop(n, "hs_note_body", "Note body", "string", "html"),
        ),
        stored(
            Column::new("hubspot_owner_id", owner),
            prop(
                n,
                "hubspot_owner_id",
                "Activity assigned to",
                "enumeration",
                "select",
            ),
        ),
        stored(
            Column::text("hs_attachment_ids", MAX_TEXT_VALUE),
            prop(
                n,
                "hs_attachment_ids",
                "Attached file IDs",
                "enumeration",
                "checkbox",
            ),
        ),
    ];
    let build = |obj: Obj, columns: Vec<(Column, Prop)>, extra: Vec<Prop>| {
        let (columns, mut props): (Vec<Column>, Vec<Prop>) = columns.into_iter().unzip();
        props.extend(extra);
        let def = TableDef {
            name: obj.table(),
            columns,
        };
        (Table::new(def, obj.first_id()), props)
    };
    let (deals, deal_props) = build(
        d,
        deal_columns,
        vec![
            derived(d, "hs_object_id", "Record ID", "number", Derived::ObjectId),
            derived(d, "createdate", "Create Date", "datetime", Derived::Created),
            derived(
                d,
                "hs_lastmodifieddate",
                "Last Modified Date",
                "datetime",
                Derived::Modified,
            ),
            derived(
                d,
                "hs_is_closed",
                "Is Deal Closed?",
                "bool",
                Derived::IsClosed,
            ),
            derived(
                d,
                "hs_is_closed_won",
                "Is Closed Won",
                "bool",
                Derived::IsClosedWon,
            ),
        ],
    );
    let (notes, note_props) = build(
        n,
        note_columns,
        vec![
            derived(n, "hs_object_id", "Record ID", "number", Derived::ObjectId),
            derived(
                n,
                "hs_createdate",
                "Created at",
                "datetime",
                Derived::Created,
            ),
            derived(
                n,
                "hs_lastmodifieddate",
                "Last Modified Date",
                "datetime",
                Derived::Modified,
            ),
        ],
    );
    (vec![deals, notes], [deal_props, note_props])
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What a handler needs to read one object's rows.
pub(crate) struct View<'a> {
    obj: Obj,
    data: &'a Data,
    table: &'a Table,
    props: &'a [Prop],
    pipelines: &'a [Pipeline],
}

impl<'a> View<'a> {
    fn new(emulator: &'a Emulator, data: &'a Data, obj: Obj) -> Option<View<'a>> {
        Some(View {
            obj,
            data,
            table: data.tables.get(obj.table())?,
            props: &data.props[obj.index()],
            pipelines: &emulator.inner.pipelines,
        })
    }

    fn prop_index(&self, name: &str) -> Option<usize> {
        self.props.iter().position(|p| p.def.name == name)
    }

    /// The properties named (unknown ones ignored), or the defaults, plus those HubSpot always
    /// returns.
    fn selection<'n>(&self, names: Option<impl IntoIterator<Item = &'n str>>) -> Vec<usize> {
        let mut out: Vec<usize> = match names {
            Some(names) => names
                .into_iter()
                .filter_map(|n| self.prop_index(n.trim()))
                .collect(),
            None => self
                .obj
                .defaults()
                .iter()
                .filter_map(|n| self.prop_index(n))
                .collect(),
        };
        out.extend(
            self.props
                .iter()
                .enumerate()
                .filter(|(_, p)| p.derived.is_some_and(Derived::always))
                .map(|(i, _)| i),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every property with a value on `row`, plus those always returned (answers to writes).
    fn full_selection(&self, row: &Row) -> Vec<usize> {
        (0..self.props.len())
            .filter(|i| match self.props[*i].derived {
                Some(d) => d.always() || self.obj == Obj::Deals,
                None => self.value(row, *i).is_some(),
            })
            .collect()
    }

    /// The stage of a deal row, from its pipeline (the default when it has none).
    fn stage_outcome(&self, row: &Row) -> Option<Outcome> {
        let column = |name| self.table.column(name).and_then(|c| row.get(c));
        let stage = column("dealstage").and_then(Cell::as_str)?;
        let pipeline = column("pipeline").and_then(Cell::as_str);
        self.pipelines
            .iter()
            .find(|p| pipeline.map_or(p.default, |id| p.id == id))
            .and_then(|p| p.stage(stage))
            .map(|s| s.outcome)
    }

    /// The value of property `prop` on `row`, as HubSpot sends it.
    fn value(&self, row: &Row, prop: usize) -> Option<String> {
        let p = self.props.get(prop)?;
        match p.derived {
            Some(Derived::ObjectId) => Some(row.id.to_string()),
            Some(Derived::Created) => Some(format_timestamp(row.created_ms)),
            Some(Derived::Modified) => Some(format_timestamp(row.modified_ms)),
            Some(Derived::IsClosed) => self
                .stage_outcome(row)
                .map(|o| (o != Outcome::Open).to_string()),
            Some(Derived::IsClosedWon) => self
                .stage_outcome(row)
                .map(|o| (o == Outcome::Won).to_string()),
            None => {
                let cell = row.get(self.table.column(&p.def.name)?)?;
                Some(match cell {
                    Cell::Text(s) => s.to_string(),
                    Cell::Int(n) => n.to_string(),
                    Cell::Num(n) => n.to_string(),
                    Cell::Bool(b) => b.to_string(),
                    Cell::Time(ms) => format_timestamp(*ms),
                    Cell::Ref(id) => id.to_string(),
                })
            }
        }
    }

    /// A record as HubSpot returns it, with the selected properties (`null` when unset) and,
    /// when asked for, its associations.
    fn json(&self, row: &Row, selection: &[usize], associations: Option<&[&str]>) -> Value {
        let mut properties = Map::new();
        for &p in selection {
            let value = self.value(row, p).map_or(Value::Null, Value::String);
            properties.insert(self.props[p].def.name.clone(), value);
        }
        let mut obj = Map::new();
        obj.insert("id".into(), json!(row.id.to_string()));
        obj.insert("properties".into(), Value::Object(properties));
        obj.insert("createdAt".into(), json!(format_timestamp(row.created_ms)));
        obj.insert("updatedAt".into(), json!(format_timestamp(row.modified_ms)));
        obj.insert("archived".into(), json!(!row.is_live()));
        if let Some(at) = row.archived_ms {
            obj.insert("archivedAt".into(), json!(format_timestamp(at)));
        }
        if let Some(assocs) =
            associations.and_then(|a| v3_associations(self.data, self.obj.side(), row.id, a))
        {
            obj.insert("associations".into(), assocs);
        }
        Value::Object(obj)
    }

    /// The unique column called `name`, for `idProperty`.
    fn unique_column(&self, name: &str) -> Result<Option<usize>, Response> {
        if name == "hs_object_id" {
            return Ok(None);
        }
        match self.table.column(name) {
            Some(c) if self.table.def().columns[c].unique.is_some() => Ok(Some(c)),
            Some(_) => Err(validation(format!(
                "{name} is not a unique property and cannot be used as an idProperty"
            ))),
            None => Err(validation(format!("Property {name} does not exist"))),
        }
    }

    /// The row an input id names: a record id, or a unique column's value; live or archived as
    /// `archived` says.
    fn find(&self, column: Option<usize>, raw: &str, archived: bool) -> Option<&'a Row> {
        match column {
            Some(c) if !archived => self.table.find(c, raw),
            Some(_) => None,
            None => raw
                .trim()
                .parse()
                .ok()
                .and_then(|id| self.table.get_any(id))
                .filter(|r| r.is_live() != archived),
        }
    }
}

/// Deals or notes as CRM search sees them.
pub(crate) fn searchable<'a>(emulator: &'a Emulator, data: &'a Data, obj: Obj) -> Option<View<'a>> {
    View::new(emulator, data, obj)
}

impl super::search::Source for View<'_> {
    type Row = Row;

    fn prop(&self, name: &str) -> Option<usize> {
        self.prop_index(name)
    }

    fn prop_type(&self, prop: usize) -> &str {
        self.props.get(prop).map_or("string", |p| p.def.ty.as_str())
    }

    fn value<'r>(&'r self, row: &'r Row, prop: usize) -> Option<std::borrow::Cow<'r, str>> {
        View::value(self, row, prop).map(std::borrow::Cow::Owned)
    }

    fn id(row: &Row) -> u64 {
        row.id
    }

    fn live(&self) -> Box<dyn Iterator<Item = &Row> + '_> {
        Box::new(self.table.iter(Show::Live))
    }

    fn result(&self, row: &Row, body: &Value) -> Value {
        let names = body
            .get("properties")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>());
        self.json(row, &self.selection(names), None)
    }
}

fn missing_table(obj: Obj) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        format!("no {} table", obj.table()),
    )
}

/// `GET /crm/v3/objects/{deals|notes}`: one page in id order, `limit` ≤ 100 (default 10),
/// opaque `after` cursor, `properties`, `associations`, `archived`.
pub(crate) fn list(
    emulator: &Emulator,
    obj: Obj,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    let limit = match params.limit(DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let after = match params.get("after") {
        None | Some("") => None,
        Some(cursor) => match decode_cursor(cursor) {
            Some(id) => Some(id.saturating_sub(1)),
            None => {
                return validation(
                    "Invalid value for query parameter `after`: not a paging cursor",
                );
            }
        },
    };
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let data = emulator.read();
    let Some(view) = View::new(emulator, &data, obj) else {
        return missing_table(obj);
    };
    let selection = view.selection(params.list("properties"));
    let associations = params.list("associations");
    let show = if archived { Show::Archived } else { Show::Live };
    let page = view.table.page(after, limit, show);
    let results: Vec<Value> = page
        .rows
        .iter()
        .map(|row| view.json(row, &selection, associations.as_deref()))
        .collect();
    let mut body = json!({ "results": results });
    if let Some(last) = page.next_after {
        let after = encode_cursor(last + 1);
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("api.hubapi.com");
        body["paging"] = json!({"next": {
            "after": after,
            "link": format!("http://{host}/crm/v3/objects/{}?limit={limit}&after={}", obj.table(), urlencoding::encode(&after)),
        }});
    }
    Json(body).into_response()
}

/// `GET /crm/v3/objects/{deals|notes}/{id}` (by id, or by a unique property with `idProperty`).
pub(crate) fn read_one(emulator: &Emulator, obj: Obj, id: &str, params: &Params) -> Response {
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let data = emulator.read();
    let Some(view) = View::new(emulator, &data, obj) else {
        return missing_table(obj);
    };
    let column = match params.get("idProperty").map(|n| view.unique_column(n)) {
        None => None,
        Some(Ok(c)) => c,
        Some(Err(r)) => return r,
    };
    let Some(row) = view.find(column, id, archived) else {
        return not_found_named(obj.upper(), id);
    };
    let selection = view.selection(params.list("properties"));
    let associations = params.list("associations");
    Json(view.json(row, &selection, associations.as_deref())).into_response()
}

/// `POST /crm/v3/objects/{deals|notes}/batch/read` (≤100 inputs; missing ids in a 207).
fn batch_read(emulator: &Emulator, obj: Obj, params: &Params, body: &Value) -> Response {
    let started = now_ms();
    let inputs = match inputs(body, MAX_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let data = emulator.read();
    let Some(view) = View::new(emulator, &data, obj) else {
        return missing_table(obj);
    };
    let column = match body.get("idProperty").and_then(Value::as_str) {
        Some(name) => match view.unique_column(name) {
            Ok(c) => c,
            Err(r) => return r,
        },
        None => None,
    };
    let names = body
        .get("properties")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    let selection = view.selection(names);
    let mut seen = HashSet::new();
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for input in inputs {
        let Some(raw) = id_text(input.get("id")) else {
            return validation("Some required fields were not set: [id]");
        };
        match view.find(column, &raw, archived) {
            Some(row) if seen.insert(row.id) => results.push(view.json(row, &selection, None)),
            Some(_) => {}
            None => missing.push(raw),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", obj.upper()),
            "context": { "ids": missing },
        })]
    };
    batch_response(StatusCode::OK, results, errors, started)
}

// ---------------------------------------------------------------------------------------------
// Writing

/// A checked write: the cells to store and the associations to add.
struct Write {
    cells: Vec<(usize, Option<Cell>)>,
    links: Vec<(&'static super::links::AssocType, u64)>,
}

/// The unique values an earlier input of the same batch writes: (column, folded value).
type BatchValues = HashSet<(usize, Box<str>)>;

/// What one validated input will do.
enum Plan {
    Create(Write),
    Update(u64, Write),
}

/// A value written to a property, as the text HubSpot would store.
fn input_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A property problem: (HubSpot error code, property, message).
type Problem = (&'static str, String, String);

/// The cell a text value becomes in `column`; `None` clears it.
fn to_cell(column: &Column, def: &PropDef, text: &str) -> Result<Option<Cell>, Problem> {
    if text.is_empty() {
        return Ok(None);
    }
    let name = &def.name;
    let invalid = |code: &'static str| {
        (
            code,
            name.clone(),
            format!("{text} was not a valid {} for property {name}.", def.ty),
        )
    };
    Ok(Some(match &column.ty {
        ColumnType::Text { .. } | ColumnType::Choice { .. } | ColumnType::Date => {
            Cell::Text(text.into())
        }
        ColumnType::Number { .. } => Cell::Num(
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| invalid("INVALID_INTEGER"))?,
        ),
        ColumnType::Integer { .. } => Cell::Int(
            text.trim()
                .parse()
                .map_err(|_| invalid("INVALID_INTEGER"))?,
        ),
        ColumnType::Bool => match text {
            "true" => Cell::Bool(true),
            "false" => Cell::Bool(false),
            _ => return Err(invalid("INVALID_OPTION")),
        },
        ColumnType::DateTime => {
            Cell::Time(parse_timestamp(text).ok_or_else(|| invalid("INVALID_DATE"))?)
        }
        ColumnType::Ref { .. } => Cell::Ref(text.trim().parse().map_err(|_| {
            (
                "INVALID_OPTION",
                name.clone(),
                format!("{text} was not one of the allowed options for property {name}."),
            )
        })?),
    }))
}

/// The engine's verdict in HubSpot's words; `written` gives back the text of a column's value.
fn table_error(err: TableError, written: impl Fn(&str) -> String, obj: Obj) -> InputError {
    let one = |code: &'static str, name: String, message: String| {
        InputError::Invalid(vec![(code, name, message)])
    };
    match err {
        TableError::UnknownColumn { column } => one(
            "PROPERTY_DOESNT_EXIST",
            column.clone(),
            format!("Property \"{column}\" does not exist"),
        ),
        TableError::ReadOnly { column } => one(
            "READ_ONLY_VALUE",
            column.clone(),
            format!("{column} is a read only property; its value cannot be set."),
        ),
        TableError::WrongType { column, .. } => one(
            "INVALID_PROPERTY_VALUE",
            column.clone(),
            format!(
                "{} was not a valid value for property {column}.",
                written(&column)
            ),
        ),
        TableError::TooLong { column, max, .. } => one(
            "VALUE_TOO_LONG",
            column.clone(),
            format!("{column} may hold at most {max} characters"),
        ),
        TableError::OutOfRange { column } => one(
            "INVALID_INTEGER",
            column.clone(),
            format!(
                "{} is out of range for property {column}.",
                written(&column)
            ),
        ),
        TableError::BadDate { column } => one(
            "INVALID_DATE",
            column.clone(),
            format!(
                "{} was not a valid date for property {column}.",
                written(&column)
            ),
        ),
        TableError::NotAnOption { column } | TableError::MissingRef { column, .. } => one(
            "INVALID_OPTION",
            column.clone(),
            format!(
                "{} was not one of the allowed options for property {column}.",
                written(&column)
            ),
        ),
        TableError::Required { column } => one(
            "REQUIRED_PROPERTY",
            column.clone(),
            format!(
                "Property \"{column}\" is required to create a {}.",
                obj.upper().to_lowercase()
            ),
        ),
        TableError::Duplicate { existing, .. } => InputError::Conflict(format!(
            "{} already exists. Existing ID: {existing}",
            match obj {
                Obj::Deals => "Deal",
                Obj::Notes => "Note",
            }
        )),
        TableError::NoRow { id } => InputError::NotFound(id.to_string()),
    }
}

/// Checks one input's `properties` and `associations` for a new row (`existing` `None`) or an
/// update of row `existing`.
fn prepare(
    emulator: &Emulator,
    data: &Data,
    obj: Obj,
    input: &Value,
    existing: Option<u64>,
    batch: &mut BatchValues,
) -> Result<Write, InputError> {
    let view = View::new(emulator, data, obj)
        .ok_or_else(|| InputError::Other(format!("no {} table", obj.table())))?;
    let table = view.table;
    let mut cells: Vec<(usize, Option<Cell>)> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    if let Some(props) = input.get("properties") {
        let Some(props) = props.as_object() else {
            return Err(InputError::Other(
                "properties must be an object of property name to value".into(),
            ));
        };
        for (name, value) in props {
            let Some(text) = input_text(value) else {
                problems.push((
                    "INVALID_PROPERTY_VALUE",
                    name.clone(),
                    format!("{name} must be a string"),
                ));
                continue;
            };
            let Some(p) = view.prop_index(name) else {
                problems.push((
                    "PROPERTY_DOESNT_EXIST",
                    name.clone(),
                    format!("Property \"{name}\" does not exist"),
                ));
                continue;
            };
            let def = &view.props[p].def;
            let column = table
                .column(name)
                .filter(|_| view.props[p].derived.is_none());
            let Some(column) = column.filter(|_| !def.read_only) else {
                problems.push((
                    "READ_ONLY_VALUE",
                    name.clone(),
                    format!("{name} is a read only property; its value cannot be set."),
                ));
                continue;
            };
            match to_cell(&table.def().columns[column], def, &text) {
                Ok(cell) => {
                    cells.push((column, cell));
                    texts.push((name.clone(), text));
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    if !problems.is_empty() {
        return Err(InputError::Invalid(problems));
    }
    let written = |column: &str| {
        texts
            .iter()
            .rev()
            .find(|(n, _)| n == column)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    if obj == Obj::Deals {
        deal_rules(&view, &mut cells, existing, &written)?;
    }
    data.tables
        .check_refs(obj.table(), &cells)
        .map_err(|e| table_error(e, written, obj))?;
    let cells = table
        .prepare(existing, cells, false)
        .map_err(|e| table_error(e, written, obj))?;
    for (column, cell) in &cells {
        let col = &table.def().columns[*column];
        if let (Some(fold), Some(Cell::Text(s))) = (col.unique, cell) {
            let key = match fold {
                Fold::Exact => s.clone(),
                Fold::Case => s.to_lowercase().into_boxed_str(),
            };
            if !batch.insert((*column, key)) {
                return Err(InputError::Other(format!(
                    "Duplicate values found in batch input for unique property {}",
                    col.name
                )));
            }
        }
    }
    let links = associations(data, obj, input)?;
    Ok(Write { cells, links })
}

/// HubSpot's pipeline rules for a deal: without a pipeline a new deal goes to the default one,
/// and the stage must be one of its pipeline's.
fn deal_rules(
    view: &View<'_>,
    cells: &mut Vec<(usize, Option<Cell>)>,
    existing: Option<u64>,
    written: &impl Fn(&str) -> String,
) -> Result<(), InputError> {
    let (Some(pipeline_col), Some(stage_col)) = (
        view.table.column("pipeline"),
        view.table.column("dealstage"),
    ) else {
        return Ok(());
    };
    let current = |col: usize| {
        existing
            .and_then(|id| view.table.get(id))
            .and_then(|r| r.get(col))
            .and_then(Cell::as_str)
            .map(str::to_owned)
    };
    let new_value = |col: usize| {
        cells
            .iter()
            .rev()
            .find(|(c, _)| *c == col)
            .map(|(_, v)| v.as_ref().and_then(Cell::as_str).map(str::to_owned))
    };
    let default = view.pipelines.iter().find(|p| p.default);
    let stage = new_value(stage_col).unwrap_or_else(|| current(stage_col));
    let pipeline = match new_value(pipeline_col) {
        Some(Some(id)) => Some(id),
        // Not written, or cleared: the deal's pipeline, else the default one.
        _ => match current(pipeline_col) {
            Some(id) => Some(id),
            None => {
                let id = default.map(|p| p.id.clone());
                if let Some(id) = &id {
                    cells.push((pipeline_col, Some(Cell::Text(id.as_str().into()))));
                }
                id
            }
        },
    };
    let (Some(pipeline), Some(stage)) = (pipeline, stage) else {
        return Ok(());
    };
    let Some(p) = view.pipelines.iter().find(|p| p.id == pipeline) else {
        // An unknown pipeline id: the engine's option check names it.
        return Ok(());
    };
    if p.stage(&stage).is_none() {
        let shown = if written("dealstage").is_empty() {
            stage.clone()
        } else {
            written("dealstage")
        };
        return Err(InputError::Invalid(vec![(
            "INVALID_OPTION",
            "dealstage".into(),
            format!(
                "{shown} was not one of the allowed options for property dealstage in pipeline {}.",
                p.id
            ),
        )]));
    }
    Ok(())
}

/// The `associations` of a create input: each `{to: {id}, types: [{associationCategory,
/// associationTypeId}]}` must name a known type from this object and a live record.
fn associations(
    data: &Data,
    obj: Obj,
    input: &Value,
) -> Result<Vec<(&'static super::links::AssocType, u64)>, InputError> {
    let Some(list) = input.get("associations").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for assoc in list {
        let to = id_text(assoc.pointer("/to/id")).and_then(|s| s.parse::<u64>().ok());
        let types = assoc.get("types").and_then(Value::as_array);
        let (Some(to), Some(types)) = (to, types) else {
            return Err(InputError::Other(
                "Some required fields were not set: [associations.to.id, associations.types]"
                    .into(),
            ));
        };
        for ty in types {
            let id = ty.get("associationTypeId").and_then(Value::as_i64);
            let Some(kind) = id.and_then(|id| assoc_type(obj.side(), id)) else {
                return Err(InputError::Other(format!(
                    "Association type {} is not valid from {}",
                    id.unwrap_or_default(),
                    obj.table()
                )));
            };
            let target = super::links::target(kind);
            if !target.live(data, to) {
                return Err(InputError::Other(format!(
                    "One or more associations are invalid: {} {to} does not exist",
                    target.upper()
                )));
            }
            out.push((kind, to));
        }
    }
    Ok(out)
}

/// Applies planned writes and answers as HubSpot's batch endpoints do.
fn apply(
    emulator: &Emulator,
    data: &mut Data,
    obj: Obj,
    planned: Vec<Result<Plan, InputError>>,
    traces: Option<&[String]>,
    upsert: bool,
) -> (Vec<Value>, Vec<Value>) {
    let now = emulator.now_ms();
    let mut outcomes: Vec<Result<(u64, bool), InputError>> = Vec::with_capacity(planned.len());
    for plan in planned {
        let Some(table) = data.tables.get_mut(obj.table()) else {
            break;
        };
        let outcome = match plan {
            Ok(Plan::Create(write)) => {
                let id = table.insert_checked(write.cells, now, now);
                for (kind, to) in write.links {
                    data.links.add(kind, id, to);
                }
                Ok((id, true))
            }
            Ok(Plan::Update(id, write)) => table
                .update(id, write.cells, now, false)
                .map(|()| (id, false))
                .map_err(|e| table_error(e, |_| String::new(), obj)),
            Err(e) => Err(e),
        };
        outcomes.push(outcome);
    }
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    let Some(view) = View::new(emulator, data, obj) else {
        return (results, errors);
    };
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let trace = traces.and_then(|t| t.get(i));
        match outcome {
            Ok((id, new)) => {
                if let Some(row) = view.table.get(id) {
                    let mut json = view.json(row, &view.full_selection(row), None);
                    if upsert {
                        json["new"] = json!(new);
                    }
                    if let Some(t) = trace {
                        json["objectWriteTraceId"] = json!(t);
                    }
                    results.push(json);
                }
            }
            Err(e) => {
                let id = match &e {
                    InputError::NotFound(id) => Some(id.clone()),
                    _ => None,
                };
                errors.push(e.item(trace.map(String::as_str), id.as_deref()));
            }
        }
    }
    (results, errors)
}

/// Plans every input of a write batch; a bad input fails the whole batch unless every input has
/// its own `objectWriteTraceId` (then it fails alone, in a 207), as in HubSpot.
fn run_batch(
    emulator: &Emulator,
    obj: Obj,
    inputs: &[Value],
    ok: StatusCode,
    upsert: bool,
    plan: impl Fn(&Data, &Value, &mut BatchValues) -> Result<Plan, InputError>,
) -> Response {
    let started = now_ms();
    let traces = trace_ids(inputs);
    let mut data = emulator.write();
    let mut batch = HashSet::new();
    let mut planned = Vec::with_capacity(inputs.len());
    for input in inputs {
        match plan(&data, input, &mut batch) {
            Ok(p) => planned.push(Ok(p)),
            Err(e) if traces.is_none() && !matches!(e, InputError::NotFound(_)) => {
                return e.response();
            }
            Err(e) => planned.push(Err(e)),
        }
    }
    let (results, errors) = apply(emulator, &mut data, obj, planned, traces.as_deref(), upsert);
    drop(data);
    batch_response(ok, results, errors, started)
}

/// The row an update input names (`id`, or a unique property's value with `idProperty`).
fn update_target(
    emulator: &Emulator,
    data: &Data,
    obj: Obj,
    input: &Value,
) -> Result<u64, InputError> {
    let raw = id_text(input.get("id"))
        .ok_or_else(|| InputError::Other("Some required fields were not set: [id]".into()))?;
    let view = View::new(emulator, data, obj)
        .ok_or_else(|| InputError::Other(format!("no {} table", obj.table())))?;
    let column = match input.get("idProperty").and_then(Value::as_str) {
        Some(name) => view.unique_column(name).map_err(|_| {
            InputError::Other(format!(
                "{name} is not a unique property and cannot be used as an idProperty"
            ))
        })?,
        None => None,
    };
    view.find(column, &raw, false)
        .map(|r| r.id)
        .ok_or(InputError::NotFound(raw))
}

fn plan_update(
    emulator: &Emulator,
    obj: Obj,
) -> impl Fn(&Data, &Value, &mut BatchValues) -> Result<Plan, InputError> + '_ {
    move |data, input, batch| {
        let id = update_target(emulator, data, obj, input)?;
        let write = prepare(emulator, data, obj, input, Some(id), batch)?;
        Ok(Plan::Update(id, write))
    }
}

fn plan_create(
    emulator: &Emulator,
    obj: Obj,
) -> impl Fn(&Data, &Value, &mut BatchValues) -> Result<Plan, InputError> + '_ {
    move |data, input, batch| {
        Ok(Plan::Create(prepare(
            emulator, data, obj, input, None, batch,
        )?))
    }
}

fn plan_upsert(
    emulator: &Emulator,
    obj: Obj,
) -> impl Fn(&Data, &Value, &mut BatchValues) -> Result<Plan, InputError> + '_ {
    move |data, input, batch| {
        let raw = id_text(input.get("id"))
            .ok_or_else(|| InputError::Other("Some required fields were not set: [id]".into()))?;
        let name = input
            .get("idProperty")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                InputError::Other("Some required fields were not set: [idProperty]".into())
            })?;
        let view = View::new(emulator, data, obj)
            .ok_or_else(|| InputError::Other(format!("no {} table", obj.table())))?;
        let not_unique = || {
            InputError::Other(format!(
                "{name} is not a unique property and cannot be used as an idProperty for upsert"
            ))
        };
        let column = view
            .unique_column(name)
            .map_err(|_| not_unique())?
            .ok_or_else(not_unique)?;
        let existing = view.table.find(column, &raw).map(|r| r.id);
        let mut input = input.clone();
        if let Some(props) = input.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(name.to_owned(), json!(raw));
        } else {
            input["properties"] = json!({ name: raw });
        }
        let write = prepare(emulator, data, obj, &input, existing, batch)?;
        Ok(match existing {
            Some(id) => Plan::Update(id, write),
            None => Plan::Create(write),
        })
    }
}

/// `POST /crm/v3/objects/{deals|notes}/batch/{read,create,update,upsert,archive}` (≤100 inputs).
pub(crate) fn batch(
    emulator: &Emulator,
    obj: Obj,
    action: &str,
    params: &Params,
    body: &Value,
) -> Response {
    if action == "read" {
        return batch_read(emulator, obj, params, body);
    }
    let inputs = match inputs(body, MAX_BATCH) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match action {
        "create" => run_batch(
            emulator,
            obj,
            inputs,
            StatusCode::CREATED,
            false,
            plan_create(emulator, obj),
        ),
        "update" => run_batch(
            emulator,
            obj,
            inputs,
            StatusCode::OK,
            false,
            plan_update(emulator, obj),
        ),
        "upsert" => {
            let mut ids = HashSet::new();
            for input in inputs {
                let key = (input.get("idProperty").cloned(), id_text(input.get("id")));
                if !ids.insert(key) {
                    return validation("Duplicate IDs found in batch input");
                }
            }
            run_batch(
                emulator,
                obj,
                inputs,
                StatusCode::OK,
                true,
                plan_upsert(emulator, obj),
            )
        }
        "archive" => {
            let now = emulator.now_ms();
            let mut data = emulator.write();
            if let Some(table) = data.tables.get_mut(obj.table()) {
                for input in inputs {
                    if let Some(id) = id_text(input.get("id")).and_then(|s| s.parse().ok()) {
                        // Archiving a missing or archived record is not an error in HubSpot.
                        let _ = table.archive(id, now);
                    }
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unknown batch operation: {action}"),
        ),
    }
}

/// `POST /crm/v3/objects/{deals|notes}`: creates one record (201), with its associations.
pub(crate) fn create_one(emulator: &Emulator, obj: Obj, body: &Value) -> Response {
    let mut data = emulator.write();
    let plan = plan_create(emulator, obj)(&data, body, &mut HashSet::new());
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let (mut results, mut errors) = apply(emulator, &mut data, obj, vec![Ok(plan)], None, false);
    match (results.pop(), errors.pop()) {
        (Some(record), _) => (StatusCode::CREATED, Json(record)).into_response(),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "record vanished",
        ),
    }
}

/// `PATCH /crm/v3/objects/{deals|notes}/{id}` (by id, or `idProperty`).
pub(crate) fn update_one(
    emulator: &Emulator,
    obj: Obj,
    id: &str,
    params: &Params,
    body: &Value,
) -> Response {
    let mut body = body.clone();
    body["id"] = json!(id);
    if let Some(p) = params.get("idProperty") {
        body["idProperty"] = json!(p);
    }
    let mut data = emulator.write();
    let plan = match plan_update(emulator, obj)(&data, &body, &mut HashSet::new()) {
        Ok(p) => p,
        Err(InputError::NotFound(_)) => return not_found_named(obj.upper(), id),
        Err(e) => return e.response(),
    };
    let (mut results, mut errors) = apply(emulator, &mut data, obj, vec![Ok(plan)], None, false);
    match (results.pop(), errors.pop()) {
        (Some(record), _) => Json(record).into_response(),
        _ => not_found_named(obj.upper(), id),
    }
}

/// `DELETE /crm/v3/objects/{deals|notes}/{id}`: archives ("moves to the recycling bin"), 204.
pub(crate) fn archive_one(emulator: &Emulator, obj: Obj, id: &str) -> Response {
    if let Ok(id) = id.parse()
        && let Some(table) = emulator.write().tables.get_mut(obj.table())
    {
        let _ = table.archive(id, emulator.now_ms());
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------------
// Properties

/// The options HubSpot lists for an enumeration the account fills: pipelines, stages,
/// currencies and owners.
fn account_options(emulator: &Emulator, data: &Data, name: &str) -> Option<Vec<Value>> {
    let option = |i: usize, label: String, value: String| json!({"label": label, "value": value, "displayOrder": i, "hidden": false});
    let pipelines = &emulator.inner.pipelines;
    Some(match name {
        "pipeline" => pipelines
            .iter()
            .enumerate()
            .map(|(i, p)| option(i, p.label.to_owned(), p.id.clone()))
            .collect(),
        "dealstage" => pipelines
            .iter()
            .flat_map(|p| p.stages.iter())
            .enumerate()
            .map(|(i, s)| option(i, s.label.to_owned(), s.id.clone()))
            .collect(),
        "deal_currency_code" => CURRENCIES
            .iter()
            .enumerate()
            .map(|(i, c)| option(i, (*c).to_owned(), (*c).to_owned()))
            .collect(),
        "hubspot_owner_id" => super::account::owner_options(data),
        _ => return None,
    })
}

fn property_json(emulator: &Emulator, data: &Data, prop: &Prop, order: usize) -> Value {
    let mut def = prop.def.clone();
    if let Some(options) = account_options(emulator, data, &def.name) {
        def.options = options;
    }
    let mut json = def.to_json(order);
    if def.name == "hubspot_owner_id" {
        json["referencedObjectType"] = json!("OWNER");
        json["externalOptions"] = json!(true);
    }
    json
}

/// `GET /crm/v3/properties/{deals|notes}`.
pub(crate) fn list_properties(emulator: &Emulator, obj: Obj) -> Response {
    let data = emulator.read();
    let results: Vec<Value> = data.props[obj.index()]
        .iter()
        .enumerate()
        .map(|(i, p)| property_json(emulator, &data, p, i))
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `GET /crm/v3/properties/{deals|notes}/{name}`.
pub(crate) fn read_property(emulator: &Emulator, obj: Obj, name: &str) -> Response {
    let data = emulator.read();
    match data.props[obj.index()]
        .iter()
        .enumerate()
        .find(|(_, p)| p.def.name == name)
    {
        Some((i, p)) => Json(property_json(emulator, &data, p, i)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property {name}"),
        ),
    }
}

/// Adds a custom property checked by `api::create_property` (name, types, options) as a new
/// column; `Err` is HubSpot's 409 when the name is taken.
pub(crate) fn add_property(emulator: &Emulator, obj: Obj, def: PropDef) -> Response {
    let ty = match def.ty.as_str() {
        "number" => ColumnType::Number { max: 1e18 },
        "date" | "datetime" => ColumnType::DateTime,
        "bool" => ColumnType::Bool,
        "enumeration" if !def.options.is_empty() => ColumnType::Choice {
            options: def
                .options
                .iter()
                .filter_map(|o| o.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            fold: Fold::Exact,
        },
        _ => ColumnType::Text {
            max: MAX_TEXT_VALUE,
        },
    };
    let mut data = emulator.write();
    if data.props[obj.index()]
        .iter()
        .any(|p| p.def.name == def.name)
    {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("A property named '{}' already exists.", def.name),
        );
    }
    let mut column = Column::new(&def.name, ty);
    if def.unique {
        column = column.unique(Fold::Exact);
    }
    let Some(table) = data.tables.get_mut(obj.table()) else {
        return missing_table(obj);
    };
    table.add_column(column);
    let props = &mut data.props[obj.index()];
    props.push(Prop { def, derived: None });
    let order = props.len() - 1;
    let json = props[order].def.to_json(order);
    (StatusCode::CREATED, Json(json)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// Seeds deals and notes from `seed`: companies and contacts already hold ids from
/// `first_company` and `first_contact`; `owners` maps a seed user to its owner id here.
pub(crate) fn seed(
    emulator: &Emulator,
    data: &mut Data,
    seed: &crate::seed::SeedData,
    first_company: u64,
    first_contact: u64,
    owners: &[Option<u64>],
) -> (usize, usize) {
    use crate::accounts::vendor_stage;
    use crate::seed::SeedParent;
    let pipelines = &emulator.inner.pipelines;
    let owner_of = |key: Option<usize>| key.and_then(|k| owners.get(k).copied().flatten());
    let Some(deals) = data.tables.get_mut("deals") else {
        return (0, 0);
    };
    let col = |t: &Table, name: &str| t.column(name).unwrap_or(usize::MAX);
    let c = [
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "deal_currency_code",
        "hubspot_owner_id",
    ]
    .map(|n| col(deals, n));
    let deal_contact = assoc_type(Side::Deal, 3);
    let deal_company = assoc_type(Side::Deal, 5);
    let mut deal_ids: Vec<Option<u64>> = Vec::with_capacity(seed.deals.len());
    for d in &seed.deals {
        let (seed_pipeline, seed_stage) = d.seed_stage();
        let place =
            vendor_stage(super::DEAL_STAGES, seed_pipeline.key, seed_stage.key).and_then(|label| {
                let p = pipelines.iter().find(|p| p.label == label.pipeline)?;
                let s = p.stages.iter().find(|s| s.label == label.stage)?;
                Some((p.id.as_str(), s.id.as_str()))
            });
        let Some((pipeline, stage)) = place else {
            deal_ids.push(None);
            continue;
        };
        let mut cells = vec![
            (c[0], Some(Cell::Text(d.name.as_str().into()))),
            (c[1], d.amount.map(Cell::Num)),
            (c[2], parse_timestamp(&d.close_date).map(Cell::Time)),
            (c[3], Some(Cell::Text(pipeline.into()))),
            (c[4], Some(Cell::Text(stage.into()))),
            (c[5], Some(Cell::Text(d.currency.into()))),
            (c[6], owner_of(d.owner).map(Cell::Ref)),
        ];
        cells.retain(|(column, _)| *column != usize::MAX);
        let id = deals.insert_checked(cells, d.created_at_ms, d.updated_at_ms);
        deal_ids.push(Some(id));
        if let (Some(company), Some(kind)) = (d.company, deal_company) {
            data.links.seed(kind, id, first_company + company as u64);
        }
        if let Some(kind) = deal_contact {
            for k in &d.contacts {
                data.links.seed(kind, id, first_contact + *k as u64);
            }
        }
    }
    let deal_count = deals.len();
    let Some(notes) = data.tables.get_mut("notes") else {
        return (deal_count, 0);
    };
    let n = ["hs_timestamp", "hs_note_body", "hubspot_owner_id"].map(|name| col(notes, name));
    let (to_contact, to_company, to_deal) = (
        assoc_type(Side::Note, 202),
        assoc_type(Side::Note, 190),
        assoc_type(Side::Note, 214),
    );
    for note in &seed.notes {
        let mut cells = vec![
            (n[0], Some(Cell::Time(note.timestamp_ms))),
            (n[1], Some(Cell::Text(note.body.as_str().into()))),
            (n[2], owner_of(note.owner).map(Cell::Ref)),
        ];
        cells.retain(|(column, _)| *column != usize::MAX);
        let id = notes.insert_checked(cells, note.timestamp_ms, note.timestamp_ms);
        // HubSpot holds every parent a note has.
        for parent in &note.parents {
            let link = match *parent {
                SeedParent::Contact(k) => to_contact.map(|t| (t, first_contact + k as u64)),
                SeedParent::Company(k) => to_company.map(|t| (t, first_company + k as u64)),
                SeedParent::Deal(k) => to_deal.zip(deal_ids.get(k).copied().flatten()),
            };
            if let Some((kind, to)) = link {
                data.links.seed(kind, id, to);
            }
        }
    }
    (deal_count, notes.len())
}

/// How many live records of `obj` there are.
pub(crate) fn count(data: &Data, obj: Obj) -> usize {
    data.tables.get(obj.table()).map_or(0, Table::len)
}
