//! What the emulated HubSpot account is configured with besides records: its owners
//! (`GET /crm/v3/owners`) and its deal pipelines (`GET /crm/v3/pipelines/deals`).
//!
//! Owners come from [`crate::accounts::account_users`]: a user deactivated in this account is an
//! archived owner (listed with `archived=true`, its `userId` null and `userIdIncludingInactive`
//! kept, as HubSpot's owners guide says). Owners live in the `owners` table of the shared table
//! engine, an archived owner being an archived row, so that a record's `hubspot_owner_id` is a
//! reference the engine checks. Owner ids and custom pipeline and stage ids are derived from the
//! portal id: like HubSpot's, they are local to the account and mean nothing in another one.
//! The default pipeline's ids are the same everywhere (`default`, `appointmentscheduled`, …),
//! as in HubSpot.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;
use super::api::{Params, decode_cursor, encode_cursor};
use super::respond::{error, validation};
use super::store::format_timestamp;
use crate::accounts::{Outcome, PIPELINES, account_users};
use crate::table::{Cell, Column, ColumnType, Fold, Show, Table, TableDef};

/// The owners list's page size when `limit` is not given (HubSpot's spec default).
const OWNERS_DEFAULT_LIMIT: usize = 100;
/// The largest owners page. HubSpot's spec gives no maximum for `limit`; 500 here is the
/// emulator's own cap (UNCONFIRMED).
const OWNERS_MAX_LIMIT: usize = 500;
/// When the account's owners and custom pipeline were set up (fixed, so answers are stable).
const CONFIGURED_MS: i64 = 1_672_531_200_000;

/// The name of the owners table.
pub(crate) const OWNERS: &str = "owners";

/// The `owners` table: one row per owner, archived when the user is deactivated.
pub(crate) fn owners_def() -> TableDef {
    TableDef {
        name: OWNERS,
        columns: vec![
            Column::text("email", 254).unique(Fold::Case),
            Column::text("firstName", 100),
            Column::text("lastName", 100),
            Column::new(
                "userId",
                ColumnType::Integer {
                    min: 1,
                    max: i64::MAX,
                },
            ),
        ],
    }
}

/// Column positions of [`owners_def`].
const EMAIL: usize = 0;
const FIRST_NAME: usize = 1;
const LAST_NAME: usize = 2;
const USER_ID: usize = 3;

/// The owners table of an account with portal id `portal`, filled from the sandbox's users;
/// also returns each seed user's owner id (`None`: not in this account), by user key.
pub(crate) fn owners_table(portal: u64) -> (Table, Vec<Option<u64>>) {
    // Eight- or nine-digit ids that differ between accounts.
    let first = 30_000_000 + (portal % 60_000_000) * 3;
    let first_user = 5_000_000 + (portal % 4_000_000) as i64 * 2;
    let mut table = Table::new(owners_def(), first);
    let mut ids = vec![None; crate::accounts::USERS.len()];
    for user in account_users(super::SPEC.vendor) {
        let cells = vec![
            (EMAIL, Some(Cell::Text(user.email.as_str().into()))),
            (FIRST_NAME, Some(Cell::Text(user.first_name.into()))),
            (LAST_NAME, Some(Cell::Text(user.last_name.into()))),
            (USER_ID, Some(Cell::Int(first_user + user.key as i64))),
        ];
        let id = table.insert_checked(cells, CONFIGURED_MS, CONFIGURED_MS);
        if !user.active {
            // A deactivated user's owner is archived; nothing else refers to it yet.
            let _ = table.archive(id, CONFIGURED_MS + 86_400_000);
        }
        if let Some(slot) = ids.get_mut(user.key) {
            *slot = Some(id);
        }
    }
    (table, ids)
}

/// The active owners as the options of a `hubspot_owner_id` enumeration (label: the name and
/// address, value: the owner id).
pub(crate) fn owner_options(data: &super::Data) -> Vec<Value> {
    let Some(owners) = data.tables.get(OWNERS) else {
        return Vec::new();
    };
    owners
        .iter(Show::Live)
        .enumerate()
        .map(|(i, row)| {
            let text = |c: usize| row.get(c).and_then(Cell::as_str).unwrap_or_default();
            json!({
                "label": format!("{} {} ({})", text(FIRST_NAME), text(LAST_NAME), text(EMAIL)),
                "value": row.id.to_string(),
                "displayOrder": i,
                "hidden": false,
            })
        })
        .collect()
}

/// An owner in the shape of HubSpot's `PublicOwner`.
fn owner_json(row: &crate::table::Row) -> Value {
    let text = |c: usize| row.get(c).and_then(Cell::as_str).unwrap_or_default();
    let user_id = match row.get(USER_ID) {
        Some(Cell::Int(n)) => Some(*n),
        _ => None,
    };
    let mut owner = json!({
        "id": row.id.to_string(),
        "email": text(EMAIL),
        "type": "PERSON",
        "firstName": text(FIRST_NAME),
        "lastName": text(LAST_NAME),
        "userId": if row.is_live() { json!(user_id) } else { Value::Null },
        "userIdIncludingInactive": user_id,
        "createdAt": format_timestamp(row.created_ms),
        "updatedAt": format_timestamp(row.modified_ms),
        "archived": !row.is_live(),
        "teams": [],
    });
    if !row.is_live() {
        owner["archivedAt"] = json!(format_timestamp(row.modified_ms));
    }
    owner
}

/// `GET /crm/v3/owners`: owners in id order, `limit` per page with an `after` cursor, filtered
/// by `email` (ignoring case) and by `archived` (active owners unless `archived=true`).
pub(crate) async fn list_owners(
    State(emulator): State<Emulator>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.as_deref());
    let limit = match params.limit(OWNERS_DEFAULT_LIMIT, OWNERS_MAX_LIMIT) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let archived = match params.flag("archived") {
        Ok(a) => a,
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
    let show = if archived { Show::Archived } else { Show::Live };
    let data = emulator.read();
    let Some(owners) = data.tables.get(OWNERS) else {
        return Json(json!({"results": []})).into_response();
    };
    let email = params.get("email").map(str::to_lowercase);
    let (rows, next) = match email {
        // An address is held once: a filtered answer is one page.
        Some(email) => (
            owners
                .iter(show)
                .filter(|r| {
                    r.get(EMAIL)
                        .and_then(Cell::as_str)
                        .is_some_and(|e| e.to_lowercase() == email)
                })
                .collect::<Vec<_>>(),
            None,
        ),
        None => {
            let page = owners.page(after, limit, show);
            (page.rows, page.next_after)
        }
    };
    let results: Vec<Value> = rows.into_iter().map(owner_json).collect();
    let mut body = json!({ "results": results });
    if let Some(last) = next {
        let after = encode_cursor(last + 1);
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("api.hubapi.com");
        body["paging"] = json!({"next": {
            "after": after,
            "link": format!("http://{host}/crm/v3/owners?limit={limit}&after={}", urlencoding::encode(&after)),
        }});
    }
    Json(body).into_response()
}

/// `GET /crm/v3/owners/{ownerId}`: one owner by `id` (default) or by `userId`
/// (`idProperty=userId`); archived owners only with `archived=true`.
pub(crate) async fn read_owner(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref());
    let archived = match params.flag("archived") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let by_user = match params.get("idProperty") {
        None | Some("id") => false,
        Some("userId") => true,
        Some(other) => {
            return validation(format!(
                "Invalid value for query parameter `idProperty`: {other}. Expected id or userId"
            ));
        }
    };
    let data = emulator.read();
    let id = raw.trim().parse::<i64>().ok();
    let found = data.tables.get(OWNERS).and_then(|owners| {
        owners.iter(Show::All).find(|r| {
            r.is_live() != archived
                && match (by_user, id) {
                    (false, Some(id)) => i64::try_from(r.id).is_ok_and(|own| own == id),
                    (true, Some(id)) => r.get(USER_ID) == Some(&Cell::Int(id)),
                    _ => false,
                }
        })
    });
    match found {
        Some(row) => Json(owner_json(row)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Owner {raw} was not found."),
        ),
    }
}

/// A stage of one of the account's deal pipelines.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub id: String,
    pub label: &'static str,
    /// Whether the stage closes the deal, and how.
    pub outcome: Outcome,
    /// The win probability HubSpot keeps in the stage's metadata (0.0 to 1.0, steps of 0.1).
    pub probability: f64,
}

/// One of the account's deal pipelines.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub id: String,
    pub label: &'static str,
    /// Whether it is HubSpot's default pipeline (created with the account: `createdAt` 0).
    pub default: bool,
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// The stage with id `id`.
    pub(crate) fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }
}

/// HubSpot's id of a default-pipeline stage: its label in lower case without spaces
/// ("Appointment Scheduled" → `appointmentscheduled`).
fn default_stage_id(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The account's deal pipelines from the module's `DEAL_STAGES`: the first is HubSpot's default
/// pipeline (id `default`), the others custom ones with numeric ids derived from the portal id.
pub(crate) fn pipelines(portal: u64) -> Vec<Pipeline> {
    let table = super::DEAL_STAGES;
    let mut out: Vec<Pipeline> = Vec::new();
    let mut next_custom = 700_000_000 + (portal % 90_000_000);
    for (label, stages) in crate::accounts::account_pipelines(table) {
        let default = out.is_empty();
        let id = if default {
            "default".to_owned()
        } else {
            next_custom += 1;
            next_custom.to_string()
        };
        let stages = stages
            .into_iter()
            .enumerate()
            .map(|(i, stage)| {
                // The seed stage kept at this label says whether it closes the deal.
                let outcome = table
                    .iter()
                    .filter(|l| l.pipeline == label && l.stage == stage)
                    .find_map(|l| {
                        let p = PIPELINES.iter().find(|p| p.key == l.seed_pipeline)?;
                        p.stages.iter().find(|s| s.key == l.seed_stage)
                    })
                    .map_or(Outcome::Open, |s| s.outcome);
                let probability = match outcome {
                    Outcome::Won => 1.0,
                    Outcome::Lost => 0.0,
                    // Open stages climb by 0.2 as HubSpot's defaults do, 0.9 at most.
                    Outcome::Open => ((i + 1) * 2).min(9) as f64 / 10.0,
                };
                let id = if default {
                    default_stage_id(stage)
                } else {
                    next_custom += 1;
                    next_custom.to_string()
                };
                Stage {
                    id,
                    label: stage,
                    outcome,
                    probability,
                }
            })
            .collect();
        out.push(Pipeline {
            id,
            label,
            default,
            stages,
        });
    }
    out
}

fn stage_json(pipeline: &Pipeline, order: usize, stage: &Stage) -> Value {
    let created = if pipeline.default { 0 } else { CONFIGURED_MS };
    json!({
        "id": stage.id,
        "label": stage.label,
        "displayOrder": order,
        "metadata": {
            "isClosed": (stage.outcome != Outcome::Open).to_string(),
            "probability": format!("{:.1}", stage.probability),
        },
        "archived": false,
        "createdAt": format_timestamp(created),
        "updatedAt": format_timestamp(created),
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    })
}

fn pipeline_json(order: usize, pipeline: &Pipeline) -> Value {
    let created = if pipeline.default { 0 } else { CONFIGURED_MS };
    let stages: Vec<Value> = pipeline
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| stage_json(pipeline, i, s))
        .collect();
    json!({
        "id": pipeline.id,
        "label": pipeline.label,
        "displayOrder": order,
        "archived": false,
        "createdAt": format_timestamp(created),
        "updatedAt": format_timestamp(created),
        "stages": stages,
    })
}

/// The pipelines of `object`: deals only (`deals` or `0-3`); others are not emulated.
fn deals_only(emulator: &Emulator, object: &str) -> Result<Vec<Pipeline>, Response> {
    match object.to_ascii_lowercase().as_str() {
        "deals" | "deal" | "0-3" => Ok(emulator.inner.pipelines.clone()),
        _ => Err(validation(format!(
            "Unable to infer object type from: {object} (the emulator has deal pipelines only)"
        ))),
    }
}

fn pipeline_not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Unable to find pipeline {id}"),
    )
}

/// `GET /crm/v3/pipelines/{objectType}`: every pipeline with its stages, unpaged.
pub(crate) async fn list_pipelines(
    State(emulator): State<Emulator>,
    Path(object): Path<String>,
) -> Response {
    match deals_only(&emulator, &object) {
        Ok(pipelines) => {
            let results: Vec<Value> = pipelines
                .iter()
                .enumerate()
                .map(|(i, p)| pipeline_json(i, p))
                .collect();
            Json(json!({ "results": results })).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /crm/v3/pipelines/{objectType}/{pipelineId}`.
pub(crate) async fn read_pipeline(
    State(emulator): State<Emulator>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let pipelines = match deals_only(&emulator, &object) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match pipelines.iter().enumerate().find(|(_, p)| p.id == id) {
        Some((i, p)) => Json(pipeline_json(i, p)).into_response(),
        None => pipeline_not_found(&id),
    }
}

/// `GET /crm/v3/pipelines/{objectType}/{pipelineId}/stages`.
pub(crate) async fn list_stages(
    State(emulator): State<Emulator>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let pipelines = match deals_only(&emulator, &object) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match pipelines.iter().find(|p| p.id == id) {
        Some(p) => {
            let results: Vec<Value> = p
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| stage_json(p, i, s))
                .collect();
            Json(json!({ "results": results })).into_response()
        }
        None => pipeline_not_found(&id),
    }
}

/// `GET /crm/v3/pipelines/{objectType}/{pipelineId}/stages/{stageId}`.
pub(crate) async fn read_stage(
    State(emulator): State<Emulator>,
    Path((object, id, stage)): Path<(String, String, String)>,
) -> Response {
    let pipelines = match deals_only(&emulator, &object) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(p) = pipelines.iter().find(|p| p.id == id) else {
        return pipeline_not_found(&id);
    };
    match p.stages.iter().enumerate().find(|(_, s)| s.id == stage) {
        Some((i, s)) => Json(stage_json(p, i, s)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find stage {stage} in pipeline {id}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipeline_ids_are_hubspots_and_custom_ones_numeric() {
        let pipelines = pipelines(12_345_678);
        assert_eq!(pipelines[0].id, "default");
        assert_eq!(pipelines[0].stages[0].id, "appointmentscheduled");
        assert_eq!(pipelines[0].stages[0].probability, 0.2);
        let won = pipelines[0].stage("closedwon").expect("closed won");
        assert_eq!((won.outcome, won.probability), (Outcome::Won, 1.0));
        let lost = pipelines[0].stage("closedlost").expect("closed lost");
        assert_eq!((lost.outcome, lost.probability), (Outcome::Lost, 0.0));
        assert!(pipelines[1].id.parse::<u64>().is_ok());
        assert!(
            pipelines[1]
                .stages
                .iter()
                .all(|s| s.id.parse::<u64>().is_ok())
        );
        assert_ne!(pipelines[1].id, super::pipelines(12_345_679)[1].id);
        for p in &pipelines {
            for s in &p.stages {
                assert!((0.0..=1.0).contains(&s.probability));
            }
        }
    }
}
