//! Deals and Notes on the shared table engine ([`crate::table`]), the deals' contact roles, and
//! the org's metadata around them: users, layouts, pipelines and contact-role definitions.
//!
//! Zoho's dialect stays here: field API names, `{"id"}` lookups, the stage picklist holding
//! display values that must belong to the deal's pipeline, notes hanging on one parent written
//! either as v8's `{"module": {"api_name"}, "id"}` or as the older flat `Parent_Id` + `se_module`,
//! and per-record `{code, details, message, status}` answers.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use super::store::{self, FieldDef, Kind, Module, SourceIdField, Store};
use crate::accounts::Outcome;
use crate::table::{
    Cell, Column, ColumnType, Fold, LinkSet, Row, Show, Table, TableDef, TableError,
};

/// The first Deal id (19 digits, apart from Accounts' and Contacts').
pub(crate) const DEALS_FIRST_ID: u64 = 4_876_876_010_000_100_001;
/// The first Note id.
pub(crate) const NOTES_FIRST_ID: u64 = 4_876_876_020_000_100_001;
/// The longest `Note_Content` Zoho accepts, in characters (ZO-oas `notes.json`: `maxLen` 65535).
pub const NOTE_CONTENT_MAX: usize = 65_535;
/// The longest `Note_Title` (ZO-oas `notes.json`: `maxLen` 120).
pub const NOTE_TITLE_MAX: usize = 120;
/// The longest `Deal_Name`.
pub const DEAL_NAME_MAX: usize = 120;
/// The currencies the org has enabled (multi-currency on, home currency USD).
pub const CURRENCIES: &[&str] = &["USD", "EUR", "GBP", "CAD", "JPY"];
/// The org's contact-role definitions (`GET /crm/v8/Contacts/roles`), in sequence order.
pub const CONTACT_ROLES: &[&str] = &[
    "Decision Maker",
    "Evaluator",
    "Influencer",
    "Purchasing",
    "Technical Buyer",
    "Executive Sponsor",
    "Economic Decision Maker",
    "Product Management",
];
/// The name of the Deals layout the pipelines belong to.
pub const DEALS_LAYOUT: &str = "Standard";

/// The modules held on the table engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CrmModule {
    Deals,
    Notes,
}

impl CrmModule {
    pub(crate) fn parse(name: &str) -> Option<CrmModule> {
        match name {
            "Deals" => Some(CrmModule::Deals),
            "Notes" => Some(CrmModule::Notes),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            CrmModule::Deals => "Deals",
            CrmModule::Notes => "Notes",
        }
    }
}

/// How Zoho types a field: what `settings/fields` says and how a JSON value converts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ZType {
    Text,
    Textarea,
    Currency,
    Date,
    Picklist,
    /// A lookup into Accounts or Contacts (`{"id"}`).
    Lookup(Module),
    /// `ownerlookup`: a user of the org.
    Owner,
    /// A note's parent record: its id (the module is the `$se_module` column).
    Parent,
    /// A note's parent module (`$se_module`).
    SeModule,
    /// A custom field created through `POST settings/fields`, of that call's data type.
    Custom(Kind),
}

impl ZType {
    fn data_type(self) -> &'static str {
        match self {
            ZType::Text | ZType::SeModule => "text",
            ZType::Textarea => "textarea",
            ZType::Currency => "currency",
            ZType::Date => "date",
            ZType::Picklist => "picklist",
            ZType::Lookup(_) => "lookup",
            ZType::Owner => "ownerlookup",
            ZType::Parent => "lookup",
            ZType::Custom(kind) => kind.data_type(),
        }
    }

    fn json_type(self) -> &'static str {
        match self {
            ZType::Currency => "double",
            ZType::Lookup(_) | ZType::Owner | ZType::Parent => "jsonobject",
            ZType::Custom(kind) => kind.json_type(),
            _ => "string",
        }
    }
}

/// One field: the table column plus Zoho's label and type.
struct Field {
    label: Box<str>,
    /// A custom field (the source-id field and created fields).
    custom: bool,
    ztype: ZType,
    /// Written by Zoho only (not from a client's JSON).
    system: bool,
}

/// One module's records: a [`Table`], its fields' Zoho types, and the index of the module's
/// system duplicate-check field (Deals: `Deal_Name`, not unique, matched ignoring case).
pub(crate) struct Records {
    pub(crate) table: Table,
    fields: Vec<Field>,
    system_dup: Option<(usize, HashMap<Box<str>, u64>)>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("module", &self.table.def().name)
            .field("rows", &self.table.len())
            .finish()
    }
}

struct Spec {
    api_name: &'static str,
    label: &'static str,
    ztype: ZType,
    ty: ColumnType,
    required: bool,
}

fn spec(api_name: &'static str, label: &'static str, ztype: ZType, ty: ColumnType) -> Spec {
    Spec {
        api_name,
        label,
        ztype,
        ty,
        required: false,
    }
}

fn text(max: usize) -> ColumnType {
    ColumnType::Text { max }
}

fn choice(options: &[&str]) -> ColumnType {
    ColumnType::Choice {
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        fold: Fold::Exact,
    }
}

impl Records {
    fn new(
        name: &'static str,
        first_id: u64,
        specs: Vec<Spec>,
        source_id: Option<&SourceIdField>,
        system_dup: Option<&str>,
    ) -> Records {
        let mut columns = Vec::with_capacity(specs.len() + 1);
        let mut fields = Vec::with_capacity(specs.len() + 1);
        for s in specs {
            let mut c = Column::new(s.api_name, s.ty);
            if s.required {
                c = c.required();
            }
            if s.ztype == ZType::SeModule {
                c = c.read_only();
            }
            columns.push(c);
            fields.push(Field {
                label: s.label.into(),
                custom: false,
                ztype: s.ztype,
                system: s.ztype == ZType::SeModule,
            });
        }
        if let Some(f) = source_id {
            let mut c = Column::text(&f.api_name, 255);
            if f.unique {
                c = c.unique(if f.case_sensitive {
                    Fold::Exact
                } else {
                    Fold::Case
                });
            }
            columns.push(c);
            fields.push(Field {
                label: "Ferry Source Id".into(),
                custom: true,
                ztype: ZType::Text,
                system: false,
            });
        }
        let table = Table::new(TableDef { name, columns }, first_id);
        let system_dup = system_dup
            .and_then(|n| table.column(n))
            .map(|c| (c, HashMap::new()));
        Records {
            table,
            fields,
            system_dup,
        }
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.table.column(name)
    }

    fn dup_key(value: &str) -> Box<str> {
        value.to_lowercase().into_boxed_str()
    }

    /// Keeps the system duplicate-check index in step with row `id` (after a write).
    fn reindex(&mut self, id: u64, before: Option<Box<str>>) {
        let Some((col, index)) = self.system_dup.as_mut() else {
            return;
        };
        if let Some(old) = before
            && index.get(&old) == Some(&id)
        {
            index.remove(&old);
        }
        let now = self
            .table
            .get(id)
            .and_then(|r| r.get(*col))
            .and_then(Cell::as_str)
            .map(Records::dup_key);
        if let Some(key) = now {
            index.entry(key).or_insert(id);
        }
    }

    /// Indexes a seeded row (written with [`Table::insert_checked`]).
    pub(crate) fn reindex_seeded(&mut self, id: u64) {
        self.reindex(id, None);
    }

    fn dup_value(&self, id: u64) -> Option<Box<str>> {
        let (col, _) = self.system_dup.as_ref()?;
        self.table
            .get_any(id)
            .and_then(|r| r.get(*col))
            .and_then(Cell::as_str)
            .map(Records::dup_key)
    }

    /// The live record whose system duplicate-check field holds `value` (ignoring case).
    fn by_system_dup(&self, value: &str) -> Option<u64> {
        let (_, index) = self.system_dup.as_ref()?;
        let id = *index.get(&Records::dup_key(value))?;
        self.table.get(id).map(|r| r.id)
    }

    /// The `settings/fields` answer for this module.
    fn describe(&self, zgid: u64) -> Json {
        let mut out: Vec<Json> = self
            .table
            .def()
            .columns
            .iter()
            .zip(&self.fields)
            .enumerate()
            .filter(|(_, (_, f))| f.ztype != ZType::SeModule)
            .map(|(i, (c, f))| {
                let length = match &c.ty {
                    ColumnType::Text { max } => *max,
                    ColumnType::Number { .. } => 16,
                    _ => 120,
                };
                let options: Vec<Json> = match &c.ty {
                    ColumnType::Choice { options, .. } => options
                        .iter()
                        .enumerate()
                        .map(|(k, o)| {
                            json!({
                                "id": meta_id(zgid, 400_000 + i as u64 * 100 + k as u64),
                                "sequence_number": k + 1,
                                "display_value": o,
                                "actual_value": o,
                                "reference_value": o,
                                "colour_code": null,
                                "type": "used",
                            })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let lookup = match f.ztype {
                    ZType::Lookup(m) => {
                        json!({"module": {"api_name": m.name(), "id": meta_id(zgid, 2_177)}})
                    }
                    _ => json!({}),
                };
                let unique = match c.unique {
                    Some(fold) => json!({"case_sensitive": fold == Fold::Exact}),
                    None => json!({}),
                };
                json!({
                    "id": meta_id(zgid, 500_000 + i as u64),
                    "api_name": c.name,
                    "field_label": &*f.label,
                    "display_label": &*f.label,
                    "data_type": f.ztype.data_type(),
                    "json_type": f.ztype.json_type(),
                    "length": length,
                    "system_mandatory": c.required,
                    "custom_field": f.custom,
                    "read_only": false,
                    "field_read_only": false,
                    "unique": unique,
                    "lookup": lookup,
                    "pick_list_values": options,
                    "decimal_place": if f.ztype == ZType::Currency { json!(2) } else { Json::Null },
                    "visible": true,
                    "type": "used",
                    "operation_type": {"web_update": true, "api_create": true, "web_create": true, "api_update": true},
                })
            })
            .collect();
        for (k, (name, label)) in [
            ("Created_Time", "Created Time"),
            ("Modified_Time", "Modified Time"),
        ]
        .into_iter()
        .enumerate()
        {
            out.push(json!({
                "id": meta_id(zgid, 500_900 + k as u64),
                "api_name": name, "field_label": label, "display_label": label,
                "data_type": "datetime", "json_type": "string", "length": 120,
                "system_mandatory": false, "custom_field": false, "read_only": true,
                "field_read_only": true, "unique": {}, "lookup": {}, "pick_list_values": [],
                "decimal_place": null, "visible": true, "type": "used",
                "operation_type": {"web_update": false, "api_create": false, "web_create": false, "api_update": false},
            }));
        }
        json!({ "fields": out })
    }
}

/// An id of the org's metadata (layouts, pipelines, stages, roles, users): the org's eight-digit
/// prefix and a serial, 19 digits like Zoho's.
pub(crate) fn meta_id(zgid: u64, n: u64) -> String {
    (zgid * 100_000_000_000 + n).to_string()
}

/// The org's pipelines (of the Deals layout [`DEALS_LAYOUT`]) and their stages, from the
/// emulator's stage table: (pipeline, [(stage, forecast type)]).
pub(crate) fn pipelines() -> Vec<(&'static str, Vec<(&'static str, Outcome)>)> {
    crate::accounts::account_pipelines(super::DEAL_STAGES)
        .into_iter()
        .map(|(pipeline, stages)| {
            let stages = stages
                .into_iter()
                .map(|stage| (stage, outcome_of(stage)))
                .collect();
            (pipeline, stages)
        })
        .collect()
}

/// Whether a deal at stage label `stage` is open, won or lost (Zoho's `forecast_type`).
fn outcome_of(stage: &str) -> Outcome {
    use crate::accounts::PIPELINES;
    super::DEAL_STAGES
        .iter()
        .filter(|l| l.stage == stage)
        .find_map(|l| {
            PIPELINES
                .iter()
                .find(|p| p.key == l.seed_pipeline)?
                .stages
                .iter()
                .find(|s| s.key == l.seed_stage)
                .map(|s| s.outcome)
        })
        .unwrap_or(Outcome::Open)
}

/// Every stage label, in first-seen order: the options of the one `Stage` picklist both
/// pipelines share.
fn stage_options() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, stages) in pipelines() {
        for (s, _) in stages {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Deals, Notes, and the deals' contact roles.
#[derive(Debug)]
pub(crate) struct Crm {
    pub(crate) deals: Records,
    pub(crate) notes: Records,
    /// Deal → contact, labelled with the role's position in [`CONTACT_ROLES`].
    pub(crate) roles: LinkSet,
    /// The org's eight-digit id prefix, for metadata ids.
    pub(crate) zgid: u64,
    /// Each pipeline's stage labels, for the stage-belongs-to-pipeline rule.
    pipelines: Vec<(&'static str, Vec<(&'static str, Outcome)>)>,
}

impl Crm {
    /// The org's modules; Deals have a `Currency` field only with `multi_currency`.
    pub(crate) fn new(source_id: Option<&SourceIdField>, zgid: u64, multi_currency: bool) -> Crm {
        let pipelines = pipelines();
        let pipeline_names: Vec<&str> = pipelines.iter().map(|(p, _)| *p).collect();
        let mut deal_fields = vec![
            Spec {
                required: true,
                ..spec("Deal_Name", "Deal Name", ZType::Text, text(DEAL_NAME_MAX))
            },
            spec(
                "Amount",
                "Amount",
                ZType::Currency,
                ColumnType::Number { max: 1e16 },
            ),
            spec("Currency", "Currency", ZType::Picklist, choice(CURRENCIES)),
            spec(
                "Closing_Date",
                "Closing Date",
                ZType::Date,
                ColumnType::Date,
            ),
            Spec {
                required: true,
                ..spec(
                    "Pipeline",
                    "Pipeline",
                    ZType::Picklist,
                    choice(&pipeline_names),
                )
            },
            Spec {
                required: true,
                ..spec("Stage", "Stage", ZType::Picklist, choice(&stage_options()))
            },
            spec(
                "Account_Name",
                "Account Name",
                ZType::Lookup(Module::Accounts),
                ColumnType::Ref { table: "Accounts" },
            ),
            spec(
                "Contact_Name",
                "Contact Name",
                ZType::Lookup(Module::Contacts),
                ColumnType::Ref { table: "Contacts" },
            ),
            spec(
                "Owner",
                "Deal Owner",
                ZType::Owner,
                ColumnType::Ref { table: "users" },
            ),
            spec("Description", "Description", ZType::Textarea, text(32_000)),
        ];
        if !multi_currency {
            // A single-currency org has no currency field on its records.
            deal_fields.retain(|f| f.api_name != "Currency");
        }
        let deals = Records::new(
            "Deals",
            DEALS_FIRST_ID,
            deal_fields,
            source_id,
            Some("Deal_Name"),
        );
        let notes = Records::new(
            "Notes",
            NOTES_FIRST_ID,
            vec![
                spec(
                    "Note_Title",
                    "Note Title",
                    ZType::Text,
                    text(NOTE_TITLE_MAX),
                ),
                spec(
                    "Note_Content",
                    "Note Content",
                    ZType::Textarea,
                    text(NOTE_CONTENT_MAX),
                ),
                spec(
                    "Parent_Id",
                    "Parent ID",
                    ZType::Parent,
                    ColumnType::Ref { table: "records" },
                ),
                spec(
                    "$se_module",
                    "Parent Module",
                    ZType::SeModule,
                    choice(&["Accounts", "Contacts", "Deals"]),
                ),
                spec(
                    "Owner",
                    "Note Owner",
                    ZType::Owner,
                    ColumnType::Ref { table: "users" },
                ),
            ],
            source_id,
            None,
        );
        Crm {
            deals,
            notes,
            roles: LinkSet::new(),
            zgid,
            pipelines,
        }
    }

    pub(crate) fn records(&self, m: CrmModule) -> &Records {
        match m {
            CrmModule::Deals => &self.deals,
            CrmModule::Notes => &self.notes,
        }
    }

    pub(crate) fn records_mut(&mut self, m: CrmModule) -> &mut Records {
        match m {
            CrmModule::Deals => &mut self.deals,
            CrmModule::Notes => &mut self.notes,
        }
    }

    /// Whether `stage` is one of `pipeline`'s stages.
    fn stage_in(&self, pipeline: &str, stage: &str) -> bool {
        self.pipelines
            .iter()
            .find(|(p, _)| *p == pipeline)
            .is_some_and(|(_, stages)| stages.iter().any(|(s, _)| *s == stage))
    }

    /// The `settings/fields` answer for `m`.
    pub(crate) fn describe(&self, m: CrmModule) -> Json {
        self.records(m).describe(self.zgid)
    }

    /// The module column `col` of `m` looks up into, if it is a lookup.
    pub(crate) fn lookup_module(&self, m: CrmModule, col: usize) -> Option<Module> {
        match self.records(m).fields.get(col)?.ztype {
            ZType::Lookup(parent) => Some(parent),
            _ => None,
        }
    }

    /// Whether a field of `m` already has this API name or label (ignoring case).
    pub(crate) fn is_taken(&self, m: CrmModule, api_name: &str, label: &str) -> bool {
        let recs = self.records(m);
        recs.table
            .def()
            .columns
            .iter()
            .zip(&recs.fields)
            .any(|(c, f)| {
                c.name.eq_ignore_ascii_case(api_name) || f.label.eq_ignore_ascii_case(label)
            })
            || ["Created_Time", "Modified_Time"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(api_name))
    }

    /// Adds a custom field created through `POST settings/fields`; returns its id.
    pub(crate) fn add_field(&mut self, m: CrmModule, def: FieldDef) -> String {
        let ty = match def.kind {
            Kind::Integer => {
                let max = 10i64.saturating_pow(def.length.min(18) as u32) - 1;
                ColumnType::Integer { min: -max, max }
            }
            Kind::Double | Kind::Currency => ColumnType::Number { max: 1e16 },
            Kind::Boolean => ColumnType::Bool,
            Kind::Date => ColumnType::Date,
            Kind::Picklist if !def.options.is_empty() => ColumnType::Choice {
                options: def.options.clone(),
                fold: Fold::Exact,
            },
            _ => ColumnType::Text { max: def.length },
        };
        let zgid = self.zgid;
        let recs = self.records_mut(m);
        let at = recs.table.add_column(Column::new(&def.api_name, ty));
        recs.fields.push(Field {
            label: def.label.into_boxed_str(),
            custom: true,
            ztype: ZType::Custom(def.kind),
            system: false,
        });
        meta_id(zgid, 500_000 + at as u64)
    }

    /// Whether column `col` of `m` is an owner (`ownerlookup`).
    pub(crate) fn is_owner(&self, m: CrmModule, col: usize) -> bool {
        self.records(m)
            .fields
            .get(col)
            .is_some_and(|f| f.ztype == ZType::Owner)
    }
}

// ---- per-record errors -----------------------------------------------------------------------

fn item_error(code: &str, message: &str, details: Json) -> Json {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

fn path(index: usize, api_name: &str) -> String {
    format!("$.data[{index}].{api_name}")
}

fn invalid(index: usize, api_name: &str, extra: Json) -> Json {
    let mut details = json!({"api_name": api_name, "json_path": path(index, api_name)});
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    item_error("INVALID_DATA", "invalid data", details)
}

fn mandatory(index: usize, api_name: &str) -> Json {
    item_error(
        "MANDATORY_NOT_FOUND",
        "required field not found",
        json!({"api_name": api_name, "json_path": path(index, api_name)}),
    )
}

/// A [`TableError`] as Zoho's per-record error.
fn table_error(m: CrmModule, e: &TableError, index: usize, owner: &Json) -> Json {
    match e {
        TableError::Required { column } => mandatory(index, column),
        TableError::TooLong { column, max, .. } => {
            invalid(index, column, json!({"maximum_length": max}))
        }
        TableError::WrongType { column, .. } | TableError::BadDate { column } => {
            invalid(index, column, json!({}))
        }
        TableError::NotAnOption { column } | TableError::OutOfRange { column } => {
            invalid(index, column, json!({}))
        }
        TableError::MissingRef { column, .. } | TableError::ReadOnly { column } => {
            invalid(index, column, json!({}))
        }
        TableError::UnknownColumn { column } => invalid(index, column, json!({})),
        TableError::Duplicate { column, existing } => item_error(
            "DUPLICATE_DATA",
            "duplicate data",
            json!({
                "api_name": column,
                "json_path": path(index, column),
                "duplicate_record": {"id": existing.to_string(), "module": {"api_name": m.name()}, "Owner": owner},
            }),
        ),
        TableError::NoRow { .. } => invalid_id(index),
    }
}

fn invalid_id(index: usize) -> Json {
    item_error(
        "INVALID_DATA",
        "the related id given seems to be invalid",
        json!({"api_name": "id", "json_path": path(index, "id")}),
    )
}

// ---- JSON in -----------------------------------------------------------------------------------

/// A note's parent as written: v8's `{"module": {"api_name"}, "id"}`, or the older flat id with
/// `se_module` (or `$se_module`) beside it.
fn parent_of(record: &Map<String, Json>) -> Option<Result<(String, Option<u64>), &'static str>> {
    let value = record.get("Parent_Id").filter(|v| !v.is_null())?;
    let id = match value {
        Json::Object(_) => store::lookup_id(value),
        Json::String(s) => s.parse().ok(),
        Json::Number(n) => n.as_u64(),
        _ => return Some(Err("Parent_Id")),
    };
    let module = value
        .get("module")
        .and_then(|m| m.get("api_name").or(Some(m)))
        .and_then(Json::as_str)
        .or_else(|| record.get("se_module").and_then(Json::as_str))
        .or_else(|| record.get("$se_module").and_then(Json::as_str));
    match module {
        Some(m) => Some(Ok((m.to_owned(), id))),
        None => Some(Err("se_module")),
    }
}

/// Converts one client record into cells of `m`, or the per-record error. Unknown keys and
/// Zoho's own fields are ignored, as Zoho ignores them.
fn cells_of(
    store: &Store,
    m: CrmModule,
    index: usize,
    record: &Map<String, Json>,
) -> Result<Vec<(usize, Option<Cell>)>, Json> {
    let recs = store.crm.records(m);
    let def = recs.table.def();
    let mut cells = Vec::with_capacity(record.len());
    for (key, value) in record {
        let Some(col) = recs.col(key) else { continue };
        let field = &recs.fields[col];
        if field.system || field.ztype == ZType::Parent {
            continue;
        }
        let name = def.columns[col].name.as_str();
        if value.is_null() {
            cells.push((col, None));
            continue;
        }
        let cell = match field.ztype {
            ZType::Text | ZType::Textarea | ZType::Date | ZType::SeModule => match value {
                Json::String(s) if s.is_empty() => None,
                Json::String(s) => Some(Cell::Text(s.as_str().into())),
                _ => {
                    return Err(invalid(
                        index,
                        name,
                        json!({"expected_data_type": field.ztype.data_type()}),
                    ));
                }
            },
            ZType::Picklist => {
                // A picklist takes its display value; `{"name"}` / `{"id"}` forms are taken too
                // for Pipeline, whose record shape Zoho leaves undocumented.
                let s = value
                    .as_str()
                    .or_else(|| value.get("name").and_then(Json::as_str))
                    .or_else(|| value.get("display_value").and_then(Json::as_str));
                match s {
                    Some("") => None,
                    Some(s) => Some(Cell::Text(s.into())),
                    None => {
                        return Err(invalid(
                            index,
                            name,
                            json!({"expected_data_type": "picklist"}),
                        ));
                    }
                }
            }
            ZType::Currency => match value.as_f64().filter(|n| n.is_finite()) {
                Some(n) => Some(Cell::Num(n)),
                None => {
                    return Err(invalid(
                        index,
                        name,
                        json!({"expected_data_type": "double"}),
                    ));
                }
            },
            ZType::Lookup(parent) => {
                let Some(id) = store::lookup_id(value) else {
                    return Err(invalid(
                        index,
                        name,
                        json!({"expected_data_type": "jsonobject"}),
                    ));
                };
                if store.parent_row(parent, id).is_none() {
                    return Err(invalid(index, name, json!({})));
                }
                Some(Cell::Ref(id))
            }
            ZType::Owner => {
                let Some(id) = store::lookup_id(value) else {
                    return Err(invalid(
                        index,
                        name,
                        json!({"expected_data_type": "jsonobject"}),
                    ));
                };
                // An unknown or deactivated user: `INVALID_DATA` naming `Owner`.
                if !store.user(id).is_some_and(|u| u.active) {
                    return Err(invalid(index, name, json!({})));
                }
                Some(Cell::Ref(id))
            }
            ZType::Parent => None,
            ZType::Custom(kind) => {
                let wrong =
                    || invalid(index, name, json!({"expected_data_type": kind.data_type()}));
                match kind {
                    Kind::Integer => Some(Cell::Int(value.as_i64().ok_or_else(wrong)?)),
                    Kind::Double | Kind::Currency => Some(Cell::Num(
                        value.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?,
                    )),
                    Kind::Boolean => Some(Cell::Bool(value.as_bool().ok_or_else(wrong)?)),
                    _ => match value.as_str().ok_or_else(wrong)? {
                        "" => None,
                        s => Some(Cell::Text(s.into())),
                    },
                }
            }
        };
        cells.push((col, cell));
    }
    if m == CrmModule::Notes {
        match parent_of(record) {
            None => {}
            Some(Err(what)) => {
                return Err(if what == "se_module" {
                    mandatory(index, "se_module")
                } else {
                    invalid(index, "Parent_Id", json!({}))
                });
            }
            Some(Ok((module, id))) => {
                let exists = match (module.as_str(), id) {
                    ("Accounts", Some(id)) => store.parent_row(Module::Accounts, id).is_some(),
                    ("Contacts", Some(id)) => store.parent_row(Module::Contacts, id).is_some(),
                    ("Deals", Some(id)) => store.crm.deals.table.get(id).is_some(),
                    _ => false,
                };
                let (Some(id), true) = (id, exists) else {
                    return Err(invalid(index, "Parent_Id", json!({})));
                };
                let parent = recs.col("Parent_Id");
                let se = recs.col("$se_module");
                if let (Some(p), Some(se)) = (parent, se) {
                    cells.push((p, Some(Cell::Ref(id))));
                    cells.push((se, Some(Cell::Text(module.into_boxed_str()))));
                }
            }
        }
    }
    Ok(cells)
}

/// The value a write leaves in column `col`: the written one, else the stored one.
fn merged<'a>(
    cells: &'a [(usize, Option<Cell>)],
    existing: Option<&'a Row>,
    col: usize,
) -> Option<&'a Cell> {
    match cells.iter().rev().find(|(c, _)| *c == col) {
        Some((_, cell)) => cell.as_ref(),
        None => existing.and_then(|r| r.get(col)),
    }
}

/// Zoho's module rules beyond types and limits, on the record as the write would leave it.
fn module_rules(
    store: &Store,
    m: CrmModule,
    index: usize,
    cells: &[(usize, Option<Cell>)],
    existing: Option<&Row>,
) -> Result<(), Json> {
    let recs = store.crm.records(m);
    match m {
        CrmModule::Deals => {
            let (Some(p), Some(s)) = (recs.col("Pipeline"), recs.col("Stage")) else {
                return Ok(());
            };
            let pipeline = merged(cells, existing, p).and_then(Cell::as_str);
            let stage = merged(cells, existing, s).and_then(Cell::as_str);
            if let (Some(pipeline), Some(stage)) = (pipeline, stage) {
                // Values are matched as the picklist stores them, so compare after the table's
                // own check has normalised them: here, exactly as written.
                if recs
                    .table
                    .check(p, Some(Cell::Text(pipeline.into())))
                    .is_ok()
                    && recs.table.check(s, Some(Cell::Text(stage.into()))).is_ok()
                    && !store.crm.stage_in(pipeline, stage)
                {
                    return Err(invalid(
                        index,
                        "Stage",
                        json!({"dependee": {"api_name": "Pipeline"}}),
                    ));
                }
            }
            Ok(())
        }
        CrmModule::Notes => {
            let title = recs
                .col("Note_Title")
                .and_then(|c| merged(cells, existing, c));
            let content = recs
                .col("Note_Content")
                .and_then(|c| merged(cells, existing, c));
            if title.is_none() && content.is_none() {
                return Err(item_error(
                    "EXPECTED_FIELD_MISSING",
                    "should contain either content or title",
                    json!({"expected_fields": [
                        {"api_name": "Note_Content", "json_path": path(index, "Note_Content")},
                        {"api_name": "Note_Title", "json_path": path(index, "Note_Title")},
                    ]}),
                ));
            }
            let parent = recs
                .col("Parent_Id")
                .and_then(|c| merged(cells, existing, c));
            if parent.is_none() {
                return Err(mandatory(index, "Parent_Id"));
            }
            Ok(())
        }
    }
}

/// How a write finds the record it changes.
pub(crate) enum Mode<'a> {
    /// `POST /crm/v8/{module}`: always a new record.
    Insert,
    /// `PUT /crm/v8/{module}[/{id}]`: the record named by `id` (the path's, else the record's).
    Update(Option<u64>),
    /// `POST /crm/v8/{module}/upsert`: the first match on these columns (system duplicate-check
    /// field or unique), else a new record.
    Upsert(&'a [usize]),
}

/// The outcome of one record of a write.
pub(crate) struct Written {
    pub ok: bool,
    pub body: Json,
}

/// Writes one record; a later record of the same call sees an earlier one's write.
pub(crate) fn write_one(
    store: &mut Store,
    m: CrmModule,
    index: usize,
    record: &Map<String, Json>,
    mode: &Mode<'_>,
    now_ms: i64,
) -> Written {
    match prepare_one(store, m, index, record, mode) {
        Err(body) => Written { ok: false, body },
        Ok((target, cells, matched_on)) => {
            let writer = store.current_user().minified();
            let owner_json = store.current_user().owner_json();
            let recs = store.crm.records_mut(m);
            let before = target.and_then(|id| recs.dup_value(id));
            let result = match target {
                Some(id) => recs.table.update(id, cells, now_ms, true).map(|()| id),
                None => recs.table.insert(cells, now_ms, true),
            };
            match result {
                Err(e) => Written {
                    ok: false,
                    body: table_error(m, &e, index, &owner_json),
                },
                Ok(id) => {
                    recs.reindex(id, before);
                    let created = recs.table.get(id).map_or(now_ms, |r| r.created_ms);
                    let action = if target.is_some() { "update" } else { "insert" };
                    let mut body = json!({
                        "code": "SUCCESS",
                        "details": {
                            "Modified_Time": store::zoho_time(now_ms),
                            "Modified_By": writer,
                            "Created_Time": store::zoho_time(created),
                            "id": id.to_string(),
                            "Created_By": writer,
                        },
                        "message": if target.is_some() { "record updated" } else { "record added" },
                        "status": "success",
                    });
                    if let (Mode::Upsert(_), Some(o)) = (mode, body.as_object_mut()) {
                        o.insert("action".into(), json!(action));
                        o.insert("duplicate_field".into(), json!(matched_on));
                    }
                    Written { ok: true, body }
                }
            }
        }
    }
}

type Prepared = (Option<u64>, Vec<(usize, Option<Cell>)>, Option<String>);

fn prepare_one(
    store: &Store,
    m: CrmModule,
    index: usize,
    record: &Map<String, Json>,
    mode: &Mode<'_>,
) -> Result<Prepared, Json> {
    let recs = store.crm.records(m);
    let mut cells = cells_of(store, m, index, record)?;
    let (target, matched_on) = match mode {
        Mode::Insert => (None, None),
        Mode::Update(path_id) => {
            let id = match path_id {
                Some(id) => *id,
                None => match record.get("id") {
                    None | Some(Json::Null) => return Err(mandatory(index, "id")),
                    Some(v) => match v {
                        Json::String(s) => s.parse::<u64>().map_err(|_| invalid_id(index))?,
                        Json::Number(n) => n.as_u64().ok_or_else(|| invalid_id(index))?,
                        _ => return Err(invalid_id(index)),
                    },
                },
            };
            if recs.table.get(id).is_none() {
                return Err(invalid_id(index));
            }
            (Some(id), None)
        }
        Mode::Upsert(columns) => {
            let mut hit = None;
            for &col in *columns {
                let Some(value) = cells
                    .iter()
                    .rev()
                    .find(|(c, _)| *c == col)
                    .and_then(|(_, v)| v.as_ref())
                    .and_then(Cell::as_str)
                else {
                    continue;
                };
                let found = if recs.table.def().columns[col].unique.is_some() {
                    recs.table.find(col, value).map(|r| r.id)
                } else {
                    recs.by_system_dup(value)
                };
                if let Some(id) = found {
                    hit = Some((id, recs.table.def().columns[col].name.clone()));
                    break;
                }
            }
            match hit {
                Some((id, name)) => (Some(id), Some(name)),
                None => (None, None),
            }
        }
    };
    let existing = target.and_then(|id| recs.table.get(id));
    module_rules(store, m, index, &cells, existing)?;
    // No owner given on a new record (or cleared): the calling user owns it.
    if let Some(owner) = recs.col("Owner")
        && merged(&cells, existing, owner).is_none()
    {
        cells.push((owner, Some(Cell::Ref(store.current_user().id))));
    }
    let owner_json = store.current_user().owner_json();
    let cells = recs
        .table
        .prepare(target, cells, true)
        .map_err(|e| table_error(m, &e, index, &owner_json))?;
    Ok((target, cells, matched_on))
}

/// Deletes record `id` of `m` (to the recycle bin: archived); a deal's contact roles go with it.
pub(crate) fn delete_one(store: &mut Store, m: CrmModule, id: u64, now_ms: i64) -> bool {
    let recs = store.crm.records_mut(m);
    let before = recs.dup_value(id);
    if recs.table.archive(id, now_ms).is_err() {
        return false;
    }
    recs.reindex(id, before);
    if m == CrmModule::Deals {
        store.crm.roles.unlink_all_from(id);
    }
    true
}

// ---- JSON out ----------------------------------------------------------------------------------

/// Column `col` of `row` as Zoho renders it in a read.
pub(crate) fn cell_json(store: &Store, m: CrmModule, row: &Row, col: usize) -> Json {
    render_cell(store, m, row, col)
}

fn render_cell(store: &Store, m: CrmModule, row: &Row, col: usize) -> Json {
    let recs = store.crm.records(m);
    let Some(cell) = row.get(col) else {
        return Json::Null;
    };
    match (recs.fields[col].ztype, cell) {
        (ZType::Owner, Cell::Ref(id)) => store
            .user(*id)
            .map_or_else(|| json!({"id": id.to_string()}), store::User::owner_json),
        (ZType::Lookup(parent), Cell::Ref(id)) => {
            json!({"name": store.record_name(parent, *id), "id": id.to_string()})
        }
        (ZType::Parent, Cell::Ref(id)) => {
            let module = recs
                .col("$se_module")
                .and_then(|c| row.get(c))
                .and_then(Cell::as_str)
                .unwrap_or("Deals");
            let name = match module {
                "Accounts" => store.record_name(Module::Accounts, *id),
                "Contacts" => store.record_name(Module::Contacts, *id),
                _ => store
                    .crm
                    .deals
                    .table
                    .get_any(*id)
                    .and_then(|d| d.get(0))
                    .and_then(Cell::as_str)
                    .map(str::to_owned),
            };
            json!({
                "module": {"api_name": module, "id": module_id(store.crm.zgid, module)},
                "name": name,
                "id": id.to_string(),
            })
        }
        (_, Cell::Text(s)) => Json::String(s.to_string()),
        (_, Cell::Num(n)) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        (_, Cell::Int(n)) => json!(n),
        (_, Cell::Bool(b)) => json!(b),
        (_, Cell::Time(t)) => Json::String(store::zoho_time(*t)),
        (_, Cell::Ref(id)) => json!({"id": id.to_string()}),
    }
}

/// The id Zoho gives a module (in `Parent_Id.module.id`).
fn module_id(zgid: u64, module: &str) -> String {
    meta_id(
        zgid,
        match module {
            "Accounts" => 2_177,
            "Contacts" => 2_179,
            _ => 2_181,
        },
    )
}

/// `row` as a read shows it: `id` and the named fields (every field when `names` is `None`).
pub(crate) fn render_row(store: &Store, m: CrmModule, row: &Row, names: Option<&[&str]>) -> Json {
    let recs = store.crm.records(m);
    let mut out = Map::new();
    out.insert("id".into(), Json::String(row.id.to_string()));
    let all: Vec<&str>;
    let names = match names {
        Some(n) => n,
        None => {
            all = recs
                .table
                .def()
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .chain(["Created_Time", "Modified_Time"])
                .collect();
            &all
        }
    };
    for name in names {
        match *name {
            "Created_Time" => {
                out.insert((*name).into(), json!(store::zoho_time(row.created_ms)));
            }
            "Modified_Time" => {
                out.insert((*name).into(), json!(store::zoho_time(row.modified_ms)));
            }
            "$se_module" => {}
            _ => {
                if let Some(col) = recs.col(name) {
                    out.insert((*name).into(), render_cell(store, m, row, col));
                    if *name == "Parent_Id" {
                        let se = recs
                            .col("$se_module")
                            .and_then(|c| row.get(c))
                            .and_then(Cell::as_str)
                            .map(str::to_owned);
                        out.insert("$se_module".into(), json!(se));
                    }
                }
            }
        }
    }
    Json::Object(out)
}

/// Up to `per_page` live rows of `m` in id order (`desc`: from the highest), starting `offset`
/// rows in or after id `after`; and whether more follow.
pub(crate) fn page(
    store: &Store,
    m: CrmModule,
    after: Option<u64>,
    offset: usize,
    per_page: usize,
    desc: bool,
) -> (Vec<&Row>, bool) {
    let table = &store.crm.records(m).table;
    if !desc {
        match after {
            Some(_) => {
                let page = table.page(after, per_page, Show::Live);
                let more = page.next_after.is_some();
                (page.rows, more)
            }
            None => {
                let mut rows: Vec<&Row> = table
                    .iter(Show::Live)
                    .skip(offset)
                    .take(per_page + 1)
                    .collect();
                let more = rows.len() > per_page;
                rows.truncate(per_page);
                (rows, more)
            }
        }
    } else {
        // Descending (Zoho's default order): the table pages upwards only, so count from the top.
        let live: Vec<&Row> = match after {
            Some(after) => table.iter(Show::Live).filter(|r| r.id < after).collect(),
            None => table.iter(Show::Live).collect(),
        };
        let end = live.len().saturating_sub(offset);
        let begin = end.saturating_sub(per_page);
        let mut rows = live[begin..end].to_vec();
        rows.reverse();
        (rows, begin > 0)
    }
}

/// The seeded contact roles' labels: the first contact of a deal is its decision maker.
pub(crate) fn seed_role(position: usize) -> u32 {
    (position % CONTACT_ROLES.len()) as u32
}

/// A note body as Zoho holds it (plain text): an HTML body's tags dropped (paragraphs and line
/// breaks become new lines) and its entities decoded.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        if (tag == "br" || tag == "br/" || tag == "br /" || tag == "/p") && !out.is_empty() {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_become_plain_text() {
        assert_eq!(
            plain_text("<p>Budget &lt; €50k &amp; more</p><p>Next: <b>call</b><br>Ref #3</p>"),
            "Budget < €50k & more\nNext: call\nRef #3"
        );
        assert_eq!(plain_text("no tags"), "no tags");
    }

    #[test]
    fn both_pipelines_share_the_stage_picklist_and_close_won_and_lost() {
        let p = pipelines();
        assert_eq!(p.len(), 2);
        assert_eq!(outcome_of("Closed Won"), Outcome::Won);
        assert_eq!(outcome_of("Closed Lost"), Outcome::Lost);
        assert_eq!(outcome_of("Qualification"), Outcome::Open);
        let options = stage_options();
        for (_, stages) in &p {
            assert!(stages.iter().all(|(s, _)| options.contains(s)));
        }
    }
}
