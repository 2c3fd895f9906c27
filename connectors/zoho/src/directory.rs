//! The org's users and its deal pipelines, for owner matching and stage mapping. The source
//! and the sink share these.
//!
//! Deals records hold their `Pipeline` and `Stage` as display values, so a pipeline's id and a
//! stage's id are their `display_value` (the picklist's stage ids are shared across pipelines
//! and appear in no record). Won and lost are stages: `forecast_type` Closed Won / Closed Lost.

use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Pipeline, PipelineStage, StageOutcome, User,
};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::client::Client;

const USERS_PATH: &str = "/crm/v8/users";
const LAYOUTS_PATH: &str = "/crm/v8/settings/layouts";
const PIPELINE_PATH: &str = "/crm/v8/settings/pipeline";

/// Most pages of users read before giving up (200 a page: 200,000 users).
const MAX_USER_PAGES: usize = 1_000;

#[derive(Deserialize)]
struct UsersPage {
    #[serde(default)]
    users: Vec<ZohoUser>,
    #[serde(default)]
    info: Option<PageInfo>,
}

#[derive(Deserialize)]
struct PageInfo {
    #[serde(default)]
    more_records: bool,
}

#[derive(Deserialize)]
struct ZohoUser {
    id: String,
    email: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Layouts {
    #[serde(default)]
    layouts: Vec<Layout>,
}

#[derive(Deserialize)]
struct Layout {
    id: String,
}

#[derive(Deserialize)]
struct Pipelines {
    #[serde(default)]
    pipeline: Vec<ZohoPipeline>,
}

#[derive(Deserialize)]
struct ZohoPipeline {
    display_value: String,
    #[serde(default)]
    maps: Vec<ZohoStage>,
}

#[derive(Deserialize)]
struct ZohoStage {
    display_value: String,
    #[serde(default)]
    sequence_number: Option<i64>,
    #[serde(default)]
    forecast_type: Option<String>,
}

/// Every user of the org, active or not: `GET /crm/v8/users?type=AllUsers`, `per_page` a page,
/// until `more_records` is false (a 204 is no users).
pub(crate) async fn users(client: &Client, per_page: usize) -> ConnectorResult<Vec<User>> {
    let endpoint = format!("GET {USERS_PATH}");
    let per_page = per_page.to_string();
    let mut users = Vec::new();
    for page in 1..=MAX_USER_PAGES {
        let page_text = page.to_string();
        let response = client
            .send_ok(
                Method::GET,
                USERS_PATH,
                &[
                    ("type", "AllUsers"),
                    ("page", &page_text),
                    ("per_page", &per_page),
                ],
                None,
            )
            .await?;
        // No content: no (more) users.
        let answer: UsersPage = if response.status.as_u16() == 204 {
            UsersPage {
                users: Vec::new(),
                info: None,
            }
        } else {
            response.json(VENDOR, &endpoint)?
        };
        for u in answer.users {
            users.push(user(u).map_err(|detail| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: endpoint.clone(),
                detail,
            })?);
        }
        if !answer.info.is_some_and(|i| i.more_records) {
            tracing::debug!(
                vendor = VENDOR,
                users = users.len(),
                pages = page,
                "listed users"
            );
            return Ok(users);
        }
    }
    Err(ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint,
        detail: format!("more than {MAX_USER_PAGES} pages of users"),
    })
}

/// One user: active only when its `status` is `active` (not `disabled` or `deleted`).
fn user(u: ZohoUser) -> Result<User, String> {
    let email = u
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| format!("user {} has no email", u.id))?;
    Ok(User {
        active: u.status.as_deref() == Some("active"),
        id: u.id,
        email,
    })
}

/// Every pipeline of every Deals layout, with its stages in `sequence_number` order:
/// `GET /crm/v8/settings/layouts?module=Deals`, then `GET /crm/v8/settings/pipeline?layout_id=`
/// for each.
pub(crate) async fn pipelines(
    client: &Client,
    object: ObjectType,
) -> ConnectorResult<Vec<Pipeline>> {
    if object != ObjectType::DEALS {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!("{object} have no pipelines (only deals do)"),
        });
    }
    let layouts: Layouts = client
        .send_ok(Method::GET, LAYOUTS_PATH, &[("module", "Deals")], None)
        .await?
        .json(VENDOR, &format!("GET {LAYOUTS_PATH}"))?;
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for layout in layouts.layouts {
        let answer: Pipelines = client
            .send_ok(
                Method::GET,
                PIPELINE_PATH,
                &[("layout_id", &layout.id)],
                None,
            )
            .await?
            .json(VENDOR, &format!("GET {PIPELINE_PATH}"))?;
        for p in answer.pipeline {
            // Records name a pipeline by its label: one with the same label in another layout
            // is the same pipeline to them.
            if pipelines.iter().any(|known| known.id == p.display_value) {
                continue;
            }
            pipelines.push(pipeline(p));
        }
    }
    tracing::debug!(
        vendor = VENDOR,
        pipelines = pipelines.len(),
        "listed deal pipelines"
    );
    Ok(pipelines)
}

fn pipeline(p: ZohoPipeline) -> Pipeline {
    let mut maps = p.maps;
    // Stable: stages without a sequence number keep the order Zoho sent them in, last.
    maps.sort_by_key(|s| s.sequence_number.unwrap_or(i64::MAX));
    Pipeline {
        id: p.display_value.clone(),
        label: p.display_value,
        stages: maps
            .into_iter()
            .map(|s| PipelineStage {
                outcome: outcome(s.forecast_type.as_deref()),
                id: s.display_value.clone(),
                label: s.display_value,
            })
            .collect(),
    }
}

/// Won and lost stages by their `forecast_type`; any other (`Open`, absent) is open.
fn outcome(forecast_type: Option<&str>) -> StageOutcome {
    match forecast_type {
        Some("Closed Won") => StageOutcome::Won,
        Some("Closed Lost") => StageOutcome::Lost,
        _ => StageOutcome::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_forecast_type() {
        assert_eq!(outcome(Some("Closed Won")), StageOutcome::Won);
        assert_eq!(outcome(Some("Closed Lost")), StageOutcome::Lost);
        assert_eq!(outcome(Some("Open")), StageOutcome::Open);
        assert_eq!(outcome(None), StageOutcome::Open);
    }

    #[test]
    fn users_are_active_only_when_active_and_need_an_email() {
        let parse = |j: serde_json::Value| user(serde_json::from_value(j).expect("json"));
        let u = parse(serde_json::json!({"id": "1", "email": "A@b.example", "status": "active"}))
            .expect("user");
        assert_eq!(
            (u.id.as_str(), u.email.as_str(), u.active),
            ("1", "A@b.example", true)
        );
        for status in ["disabled", "deleted"] {
            let u = parse(serde_json::json!({"id": "1", "email": "a@b.example", "status": status}));
            assert!(!u.expect("user").active, "{status}");
        }
        let err = parse(serde_json::json!({"id": "7", "email": null, "status": "active"}))
            .expect_err("no email");
        assert!(err.contains("user 7"), "{err}");
    }

    #[test]
    fn stages_are_ordered_by_sequence_number() {
        let p: ZohoPipeline = serde_json::from_value(serde_json::json!({
            "display_value": "Standard",
            "maps": [
                {"display_value": "B", "sequence_number": 2, "forecast_type": "Closed Won"},
                {"display_value": "A", "sequence_number": 1, "forecast_type": "Open"},
            ],
        }))
        .expect("json");
        let p = pipeline(p);
        let labels: Vec<_> = p
            .stages
            .iter()
            .map(|s| (s.id.as_str(), s.outcome))
            .collect();
        assert_eq!(
            labels,
            [("A", StageOutcome::Open), ("B", StageOutcome::Won)]
        );
        assert_eq!(p.id, "Standard");
    }
}
