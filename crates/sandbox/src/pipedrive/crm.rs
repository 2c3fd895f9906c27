//! The account's sales objects: users (v1), pipelines and stages (v2), deals (v2, on the shared
//! table engine) with their fields and search, and notes (v1, on the table engine).
//!
//! Ids are the account's own: users get large numbers derived from the company id, pipelines and
//! stages small ones offset per account, so that two emulators never share an id for a different
//! thing and nothing can be mapped by id (ferry maps users by email, stages by label).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::store::{format_rfc3339, parse_rfc3339};
use crate::table::{Cell, Column, ColumnType, Fold, Row, Table, TableDef, TableError};

/// The longest deal title Pipedrive's `varchar` holds.
pub(crate) const TITLE_MAX: usize = 255;
/// The longest note content the emulator accepts, in characters. Pipedrive does not document a
/// maximum; the emulator refuses (never truncates) longer content with a 400.
pub(crate) const NOTE_MAX: usize = 100_000;

/// A user of the account.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub admin: bool,
}

/// A pipeline of the account.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub id: u64,
    pub name: &'static str,
}

/// A stage: its pipeline (index into the pipelines) and its place in it.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub id: u64,
    pub pipeline: usize,
    pub order_nr: u64,
    pub name: &'static str,
}

/// A deal field (standard or custom), as the deal fields APIs list it.
#[derive(Clone, Debug)]
pub(crate) struct DealField {
    pub id: u64,
    pub code: String,
    pub name: String,
    pub field_type: String,
    pub custom: bool,
    /// The table column holding a custom field's values.
    pub column: Option<usize>,
    /// Options of an `enum` field: (id, label).
    pub options: Vec<(u64, String)>,
}

/// Deal columns, by position in [`deal_def`].
pub(crate) mod d {
    pub const TITLE: usize = 0;
    pub const OWNER: usize = 1;
    pub const PERSON: usize = 2;
    pub const ORG: usize = 3;
    pub const PIPELINE: usize = 4;
    pub const STAGE: usize = 5;
    pub const VALUE: usize = 6;
    pub const CURRENCY: usize = 7;
    pub const STATUS: usize = 8;
    pub const PROBABILITY: usize = 9;
    pub const LOST_REASON: usize = 10;
    pub const VISIBLE_TO: usize = 11;
    pub const CLOSE_TIME: usize = 12;
    pub const WON_TIME: usize = 13;
    pub const LOST_TIME: usize = 14;
    pub const EXPECTED_CLOSE: usize = 15;
    pub const STAGE_CHANGE: usize = 16;
    pub const CREATOR: usize = 17;
}

/// Note columns, by position in [`note_def`].
pub(crate) mod n {
    pub const CONTENT: usize = 0;
    pub const USER: usize = 1;
    pub const DEAL: usize = 2;
    pub const PERSON: usize = 3;
    pub const ORG: usize = 4;
    pub const LAST_UPDATE_USER: usize = 5;
    pub const PIN_DEAL: usize = 6;
    pub const PIN_PERSON: usize = 7;
    pub const PIN_ORG: usize = 8;
}

const ID: ColumnType = ColumnType::Integer {
    min: 1,
    max: i64::MAX,
};

/// The v2 deal as a table: Pipedrive's names, types and limits; only `title` is required.
pub(crate) fn deal_def() -> TableDef {
    let time = |name| Column::new(name, ColumnType::DateTime);
    TableDef {
        name: "deals",
        columns: vec![
            Column::text("title", TITLE_MAX).required(),
            Column::new("owner_id", ID),
            Column::new("person_id", ID),
            Column::new("org_id", ID),
            Column::new("pipeline_id", ID),
            Column::new("stage_id", ID),
            Column::new("value", ColumnType::Number { max: 1e15 }),
            Column::text("currency", 3),
            Column::new(
                "status",
                ColumnType::Choice {
                    options: vec!["open".into(), "won".into(), "lost".into()],
                    fold: Fold::Exact,
                },
            ),
            Column::new("probability", ColumnType::Integer { min: 0, max: 100 }),
            Column::text("lost_reason", 255),
            Column::new("visible_to", ColumnType::Integer { min: 1, max: 7 }),
            time("close_time"),
            time("won_time"),
            time("lost_time"),
            Column::new("expected_close_date", ColumnType::Date),
            time("stage_change_time").read_only(),
            Column::new("creator_user_id", ID).read_only(),
        ],
    }
}

/// The v1 note as a table: HTML `content` (required, at most [`NOTE_MAX`] characters), its
/// author and its three parents at once.
pub(crate) fn note_def() -> TableDef {
    TableDef {
        name: "notes",
        columns: vec![
            Column::text("content", NOTE_MAX).required(),
            Column::new("user_id", ID),
            Column::new("deal_id", ID),
            Column::new("person_id", ID),
            Column::new("org_id", ID),
            Column::new("last_update_user_id", ID).read_only(),
            Column::new("pinned_to_deal_flag", ColumnType::Bool),
            Column::new("pinned_to_person_flag", ColumnType::Bool),
            Column::new("pinned_to_organization_flag", ColumnType::Bool),
        ],
    }
}

/// The id user number `key` of [`crate::accounts::USERS`] has in the account `company`.
pub(crate) fn user_id(company: u64, key: usize) -> u64 {
    company * 100 + key as u64 + 1
}

/// A 40-character lower-case hex key, as Pipedrive gives custom fields.
fn field_hash() -> String {
    let a: u128 = rand::random();
    let b: u32 = rand::random();
    format!("{a:032x}{b:08x}")
}

/// The account's users, pipelines, stages, deals and notes.
pub(crate) struct Crm {
    pub users: Vec<User>,
    /// The id of the token's user (the account's first user, an admin): the owner and author
    /// of what a write leaves unowned.
    pub me: u64,
    /// The users' default currency (one for all: the emulator's users share it), given to a
    /// deal created without a currency.
    pub default_currency: String,
    pub pipelines: Vec<Pipeline>,
    pub stages: Vec<Stage>,
    pub deals: Table,
    pub deal_fields: Vec<DealField>,
    next_option_id: u64,
    /// Lower-cased custom text values of deals → deal ids, for exact search.
    deal_index: HashMap<Box<str>, Vec<u64>>,
    pub notes: Table,
    /// Deal participants: (deal, person) pairs beyond or including the deal's `person_id`.
    pub participants: crate::table::LinkSet,
    /// Participant link ids: (deal, person) → the `id` the participants API shows.
    participant_ids: HashMap<(u64, u64), u64>,
    next_participant_id: u64,
}

impl Crm {
    /// The account `company`'s metadata, with no deals or notes.
    pub(crate) fn new(company: u64) -> Crm {
        let users: Vec<User> = crate::accounts::account_users("pipedrive")
            .into_iter()
            .enumerate()
            .map(|(i, u)| User {
                id: user_id(company, u.key),
                name: format!("{} {}", u.first_name, u.last_name),
                email: u.email,
                active: u.active,
                admin: i == 0,
            })
            .collect();
        let me = users.first().map_or(1, |u| u.id);
        // Pipelines and stages have small ids in Pipedrive; offset them per account.
        let offset = company % 1000;
        let mut pipelines = Vec::new();
        let mut stages = Vec::new();
        for (p, (pipeline, labels)) in crate::accounts::account_pipelines(super::DEAL_STAGES)
            .into_iter()
            .enumerate()
        {
            pipelines.push(Pipeline {
                id: offset * 10 + p as u64 + 1,
                name: pipeline,
            });
            for (s, label) in labels.into_iter().enumerate() {
                stages.push(Stage {
                    id: offset * 100 + stages.len() as u64 + 1,
                    pipeline: p,
                    order_nr: s as u64 + 1,
                    name: label,
                });
            }
        }
        let standard = |id: u64, code: &str, name: &str, ty: &str| DealField {
            id,
            code: code.to_owned(),
            name: name.to_owned(),
            field_type: ty.to_owned(),
            custom: false,
            column: None,
            options: Vec::new(),
        };
        let deal_fields = vec![
            standard(12_001, "title", "Title", "varchar"),
            standard(12_002, "value", "Value", "monetary"),
            standard(12_003, "owner_id", "Owner", "user"),
            standard(12_004, "person_id", "Contact person", "people"),
            standard(12_005, "org_id", "Organization", "org"),
            standard(12_006, "pipeline_id", "Pipeline", "double"),
            standard(12_007, "stage_id", "Stage", "stage"),
            standard(12_008, "status", "Status", "status"),
            standard(12_009, "probability", "Probability", "double"),
            standard(12_010, "lost_reason", "Lost reason", "varchar"),
            standard(12_011, "expected_close_date", "Expected close date", "date"),
            standard(12_012, "add_time", "Deal created", "date"),
            standard(12_013, "update_time", "Update time", "date"),
            standard(12_014, "close_time", "Deal closed on", "date"),
            standard(12_015, "won_time", "Won time", "date"),
            standard(12_016, "lost_time", "Lost time", "date"),
            standard(12_017, "visible_to", "Visible to", "visible_to"),
            standard(12_018, "label_ids", "Label", "set"),
            standard(12_019, "id", "ID", "int"),
        ];
        Crm {
            users,
            me,
            default_currency: "USD".to_owned(),
            pipelines,
            stages,
            deals: Table::new(deal_def(), 1),
            deal_fields,
            next_option_id: 1,
            deal_index: HashMap::new(),
            notes: Table::new(note_def(), 1),
            participants: crate::table::LinkSet::new(),
            participant_ids: HashMap::new(),
            next_participant_id: 1,
        }
    }

    /// The user with `id`.
    pub(crate) fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The id of seed user `key` in this account, if the account has that user.
    pub(crate) fn user_for_key(&self, company: u64, key: usize) -> Option<u64> {
        let id = user_id(company, key);
        self.user(id).map(|u| u.id)
    }

    /// Whether `id` may own or author a record: an existing, active user. The error is the
    /// 400 message, naming `field`.
    pub(crate) fn check_owner(&self, field: &str, id: u64) -> Result<(), String> {
        match self.user(id) {
            None => Err(format!(
                "Validation failed: {field}: User with id {id} does not exist"
            )),
            Some(u) if !u.active => Err(format!(
                "Validation failed: {field}: User with id {id} is deactivated"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The stage with `id`.
    pub(crate) fn stage(&self, id: u64) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// The id of the stage of `DEAL_STAGES` where seed stage (`pipeline`, `stage`) sits.
    pub(crate) fn seed_stage(&self, pipeline: &str, stage: &str) -> Option<&Stage> {
        let label = crate::accounts::vendor_stage(super::DEAL_STAGES, pipeline, stage)?;
        self.stages
            .iter()
            .find(|s| s.name == label.stage && self.pipelines[s.pipeline].name == label.pipeline)
    }

    /// The custom deal field `code`.
    pub(crate) fn deal_field(&self, code: &str) -> Option<&DealField> {
        self.deal_fields.iter().find(|f| f.custom && f.code == code)
    }

    /// Adds a custom deal field (a column of the deals table); returns its index in the list.
    pub(crate) fn add_deal_field(
        &mut self,
        name: &str,
        field_type: &str,
        options: &[&str],
    ) -> usize {
        let code = field_hash();
        let ty = match field_type {
            "double" | "monetary" => ColumnType::Number { max: 1e15 },
            "enum" => ID,
            "text" => ColumnType::Text { max: 65_535 },
            _ => ColumnType::Text { max: 255 },
        };
        let column = self.deals.add_column(Column::new(&code, ty));
        let options = options
            .iter()
            .map(|label| {
                let id = self.next_option_id;
                self.next_option_id += 1;
                (id, (*label).to_owned())
            })
            .collect();
        let id = 13_000 + self.deal_fields.len() as u64;
        self.deal_fields.push(DealField {
            id,
            code,
            name: name.to_owned(),
            field_type: field_type.to_owned(),
            custom: true,
            column: Some(column),
            options,
        });
        self.deal_fields.len() - 1
    }

    /// The deals whose custom text value equals `term`, ignoring case, in id order.
    pub(crate) fn deals_with_custom_value(&self, term: &str) -> Vec<u64> {
        let mut ids = self
            .deal_index
            .get(term.trim().to_lowercase().as_str())
            .cloned()
            .unwrap_or_default();
        ids.retain(|id| self.deals.get(*id).is_some());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Indexes the custom text values of deal `id` (after a write).
    fn index_deal(&mut self, id: u64) {
        let Some(row) = self.deals.get(id) else {
            return;
        };
        let values: Vec<Box<str>> = self
            .deal_fields
            .iter()
            .filter_map(|f| f.column)
            .filter_map(|c| row.get(c))
            .filter_map(Cell::as_str)
            .map(|s| s.trim().to_lowercase().into_boxed_str())
            .collect();
        for v in values {
            let ids = self.deal_index.entry(v).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    /// Creates a deal from checked cells at `now_ms` (or the seeded times); returns its id.
    pub(crate) fn insert_deal(
        &mut self,
        cells: Vec<(usize, Option<Cell>)>,
        created_ms: i64,
        modified_ms: i64,
    ) -> Result<u64, TableError> {
        let checked = self.deals.prepare(None, cells, true)?;
        let id = self.deals.insert_checked(checked, created_ms, modified_ms);
        self.index_deal(id);
        Ok(id)
    }

    /// Changes deal `id`.
    pub(crate) fn update_deal(
        &mut self,
        id: u64,
        cells: Vec<(usize, Option<Cell>)>,
        now_ms: i64,
    ) -> Result<(), TableError> {
        self.deals.update(id, cells, now_ms, true)?;
        self.index_deal(id);
        Ok(())
    }

    /// Adds person `person` to deal `deal`'s participants; returns the participant id, or
    /// `None` when the person already takes part.
    pub(crate) fn add_participant(&mut self, deal: u64, person: u64) -> Option<u64> {
        if !self.participants.link(deal, person, 0) {
            return None;
        }
        let id = self.next_participant_id;
        self.next_participant_id += 1;
        self.participant_ids.insert((deal, person), id);
        Some(id)
    }

    /// The participant id of (deal, person).
    pub(crate) fn participant_id(&self, deal: u64, person: u64) -> Option<u64> {
        self.participant_ids.get(&(deal, person)).copied()
    }

    /// Removes participant `id` of deal `deal`; `false` if there is none.
    pub(crate) fn remove_participant(&mut self, deal: u64, id: u64) -> bool {
        let Some((person, _)) = self
            .participants
            .from(deal, None, usize::MAX)
            .into_iter()
            .find(|(person, _)| self.participant_ids.get(&(deal, *person)) == Some(&id))
        else {
            return false;
        };
        self.participants.unlink(deal, person, 0);
        self.participant_ids.remove(&(deal, person));
        true
    }
}

/// A table error as Pipedrive's 400 message (`Validation failed: <field>: <why>`).
pub(crate) fn table_message(e: &TableError) -> String {
    let why = match e {
        TableError::UnknownColumn { column } => {
            return format!("Validation failed: {column}: Unrecognized key");
        }
        TableError::ReadOnly { column } => {
            return format!("Validation failed: {column}: Unrecognized key");
        }
        TableError::WrongType {
            column, expected, ..
        } => return format!("Validation failed: {column}: Expected {expected}"),
        TableError::TooLong { column, max, .. } => {
            return format!(
                "Validation failed: {column}: String must contain at most {max} character(s)"
            );
        }
        TableError::OutOfRange { column } => (column, "Number is out of range"),
        TableError::BadDate { column } => (column, "Invalid date, expected YYYY-MM-DD"),
        TableError::NotAnOption { column } => (column, "Invalid enum value"),
        TableError::Required { column } => (column, "Required"),
        TableError::Duplicate { column, .. } => (column, "Duplicate value"),
        TableError::MissingRef { column, .. } => (column, "Record does not exist"),
        TableError::NoRow { id } => return format!("Record {id} not found"),
    };
    format!("Validation failed: {}: {}", why.0, why.1)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), as v1 timestamps look.
pub(crate) fn format_v1_time(ms: i64) -> String {
    let s = format_rfc3339(ms);
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// Parses a v1 timestamp `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn parse_v1_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() != 19 || s.as_bytes().get(10) != Some(&b' ') {
        return None;
    }
    parse_rfc3339(&format!("{}T{}Z", &s[..10], &s[11..]))
}

/// A cell as JSON (ids and numbers as numbers, times RFC 3339).
pub(crate) fn cell_json(cell: Option<&Cell>) -> Value {
    match cell {
        None => Value::Null,
        Some(Cell::Text(s)) => json!(s),
        Some(Cell::Int(n)) => json!(n),
        Some(Cell::Num(n)) => json!(n),
        Some(Cell::Bool(b)) => json!(b),
        Some(Cell::Time(ms)) => json!(format_rfc3339(*ms)),
        Some(Cell::Ref(id)) => json!(id),
    }
}

/// The id in an integer cell.
pub(crate) fn cell_id(row: &Row, column: usize) -> Option<u64> {
    match row.get(column) {
        Some(Cell::Int(n)) => u64::try_from(*n).ok(),
        Some(Cell::Ref(id)) => Some(*id),
        _ => None,
    }
}

/// Renders deal `row` as v2 does. `custom_only` restricts `custom_fields` to those codes.
pub(crate) fn render_deal(crm: &Crm, row: &Row, custom_only: Option<&[String]>) -> Value {
    let mut custom = Map::new();
    for f in crm.deal_fields.iter().filter(|f| f.custom) {
        if custom_only.is_some_and(|only| !only.contains(&f.code)) {
            continue;
        }
        let value = f.column.and_then(|c| row.get(c));
        custom.insert(f.code.clone(), cell_json(value));
    }
    let get = |c: usize| cell_json(row.get(c));
    json!({
        "id": row.id,
        "title": get(d::TITLE),
        "creator_user_id": cell_id(row, d::CREATOR).unwrap_or(crm.me),
        "owner_id": cell_id(row, d::OWNER).unwrap_or(crm.me),
        "value": row.get(d::VALUE).map_or(json!(0), |v| cell_json(Some(v))),
        "person_id": get(d::PERSON),
        "org_id": get(d::ORG),
        "pipeline_id": get(d::PIPELINE),
        "stage_id": get(d::STAGE),
        "currency": get(d::CURRENCY),
        "add_time": format_rfc3339(row.created_ms),
        "update_time": format_rfc3339(row.modified_ms),
        "stage_change_time": get(d::STAGE_CHANGE),
        "is_deleted": !row.is_live(),
        "is_archived": false,
        "archive_time": null,
        "status": get(d::STATUS),
        "probability": get(d::PROBABILITY),
        "lost_reason": get(d::LOST_REASON),
        "visible_to": row.get(d::VISIBLE_TO).map_or(json!(3), |v| cell_json(Some(v))),
        "close_time": get(d::CLOSE_TIME),
        "won_time": get(d::WON_TIME),
        "lost_time": get(d::LOST_TIME),
        "expected_close_date": get(d::EXPECTED_CLOSE),
        "label_ids": [],
        "origin": "API",
        "origin_id": null,
        "channel": null,
        "channel_id": null,
        "arr": null,
        "mrr": null,
        "acv": null,
        "custom_fields": custom,
    })
}

/// A user as v1 shows it.
pub(crate) fn render_user(crm: &Crm, u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "default_currency": crm.default_currency,
        "locale": "en_US",
        "lang": 1,
        "email": u.email,
        "phone": null,
        "activated": true,
        "last_login": "2026-01-05 09:12:44",
        "created": "2023-03-14 08:00:00",
        "modified": "2026-01-05 09:12:44",
        "has_created_company": u.id == crm.me,
        "access": [{"app": "sales", "admin": u.admin, "permission_set_id": "sales-default"}],
        "active_flag": u.active,
        "timezone_name": "Europe/Tallinn",
        "timezone_offset": "+02:00",
        "role_id": 1,
        "icon_url": null,
        "is_you": u.id == crm.me,
        "is_deleted": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_times_round_trip() {
        let ms = parse_v1_time("2024-02-29 13:45:07").expect("valid");
        assert_eq!(format_v1_time(ms), "2024-02-29 13:45:07");
        assert_eq!(parse_v1_time("2024-02-29T13:45:07Z"), None);
        assert_eq!(parse_v1_time("yesterday"), None);
    }

    #[test]
    fn account_metadata_is_local_to_the_account() {
        let a = Crm::new(12_345_678);
        let b = Crm::new(12_345_679);
        assert_eq!(
            a.users.len(),
            crate::accounts::account_users("pipedrive").len()
        );
        assert!(a.users.iter().all(|u| b.user(u.id).is_none()));
        assert!(a.stages.iter().all(|s| b.stage(s.id).is_none()));
        assert_eq!(a.pipelines.len(), 2);
        let won = a.seed_stage("sales", "won").expect("placed");
        assert_eq!(won.name, "Negotiations Started");
        assert_eq!(a.pipelines[won.pipeline].name, "Pipeline");
        assert!(a.check_owner("owner_id", a.me).is_ok());
        assert!(a.check_owner("owner_id", 1).is_err());
    }
}
