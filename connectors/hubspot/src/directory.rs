//! The account's owners (`GET /crm/v3/owners`) and deal pipelines
//! (`GET /crm/v3/pipelines/deals`), for matching record owners by email and deal stages by
//! label. Shared by the source and the sink.

use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Pipeline, PipelineStage, StageOutcome, User,
};
use serde::Deserialize;
use serde_json::Value;

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::mapping::Paging;

/// The owners list.
const OWNERS_PATH: &str = "/crm/v3/owners";
/// The deal pipelines list (unpaged: HubSpot returns every pipeline with its stages).
const DEAL_PIPELINES_PATH: &str = "/crm/v3/pipelines/deals";

/// One page of `GET /crm/v3/owners`.
#[derive(Deserialize)]
struct OwnersPage {
    #[serde(default)]
    results: Vec<Owner>,
    #[serde(default)]
    paging: Option<Paging>,
}

/// An owner (`PublicOwner`): only what matching needs. `id` is what `hubspot_owner_id` holds
/// (never `userId`, the login's id, which is null once the user is deactivated).
#[derive(Deserialize)]
struct Owner {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

/// Every owner of the account: the active ones, then the archived ones (deactivated users,
/// `archived=true`: records may still hold their id), `page_size` per page. An owner without
/// an email (HubSpot's spec makes it optional) cannot be matched and is left out.
pub(crate) async fn users(client: &HubspotClient, page_size: u32) -> ConnectorResult<Vec<User>> {
    let limit = page_size.to_string();
    let mut users = Vec::new();
    let mut without_email = 0usize;
    for archived in [false, true] {
        let archived_text = if archived { "true" } else { "false" };
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", limit.as_str()), ("archived", archived_text)];
            if let Some(after) = after.as_deref() {
                query.push(("after", after));
            }
            let (endpoint, response) = client.get_ok(OWNERS_PATH, &query).await?;
            let page: OwnersPage = response.json(VENDOR, &endpoint)?;
            for owner in page.results {
                match owner.email.filter(|e| !e.trim().is_empty()) {
                    Some(email) => users.push(User {
                        id: owner.id,
                        email,
                        active: !archived,
                    }),
                    None => without_email += 1,
                }
            }
            let next = page.paging.and_then(|p| p.next).map(|n| n.after);
            match next {
                // A cursor that does not move would loop for ever.
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                Some(_) => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint,
                        detail: "`paging.next.after` repeats the cursor of the page it is on"
                            .into(),
                    });
                }
                None => break,
            }
        }
    }
    tracing::debug!(
        vendor = VENDOR,
        users = users.len(),
        without_email,
        "listed owners"
    );
    Ok(users)
}

/// `GET /crm/v3/pipelines/deals`.
#[derive(Deserialize)]
struct PipelinesAnswer {
    results: Vec<PipelineJson>,
}

#[derive(Deserialize)]
struct PipelineJson {
    id: String,
    label: String,
    #[serde(default, rename = "displayOrder")]
    display_order: Option<i64>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    stages: Vec<StageJson>,
}

#[derive(Deserialize)]
struct StageJson {
    id: String,
    label: String,
    #[serde(default, rename = "displayOrder")]
    display_order: Option<i64>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    metadata: Value,
}

/// Every deal pipeline with its stages, both in HubSpot's display order (archived ones left
/// out: no deal can be put in them). Any object but deals is refused: ferry binds no other
/// object with pipelines.
pub(crate) async fn pipelines(
    client: &HubspotClient,
    object: ObjectType,
) -> ConnectorResult<Vec<Pipeline>> {
    if object != ObjectType::DEALS {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!("this connector lists the pipelines of deals only, not of {object}"),
        });
    }
    let (endpoint, response) = client.get_ok(DEAL_PIPELINES_PATH, &[]).await?;
    let answer: PipelinesAnswer = response.json(VENDOR, &endpoint)?;
    let mut listed: Vec<PipelineJson> =
        answer.results.into_iter().filter(|p| !p.archived).collect();
    // A stable sort: without `displayOrder`, HubSpot's own order stands.
    listed.sort_by_key(|p| p.display_order.unwrap_or(i64::MAX));
    let mut pipelines = Vec::with_capacity(listed.len());
    for pipeline in listed {
        let mut stages: Vec<StageJson> = pipeline
            .stages
            .into_iter()
            .filter(|s| !s.archived)
            .collect();
        stages.sort_by_key(|s| s.display_order.unwrap_or(i64::MAX));
        let stages = stages
            .into_iter()
            .map(|s| {
                let outcome =
                    stage_outcome(&s.metadata).ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: endpoint.clone(),
                        detail: format!(
                            "stage `{}` of pipeline `{}`: a closed stage whose \
                             `metadata.probability` is neither 0.0 (lost) nor 1.0 (won)",
                            s.id, pipeline.id
                        ),
                    })?;
                Ok(PipelineStage {
                    id: s.id,
                    label: s.label,
                    outcome,
                })
            })
            .collect::<ConnectorResult<Vec<_>>>()?;
        pipelines.push(Pipeline {
            id: pipeline.id,
            label: pipeline.label,
            stages,
        });
    }
    tracing::debug!(
        vendor = VENDOR,
        pipelines = pipelines.len(),
        "listed deal pipelines"
    );
    Ok(pipelines)
}

/// A boolean or number HubSpot may send as a string (stage metadata values are strings:
/// `"isClosed": "true"`, `"probability": "1.0"`).
fn as_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A stage's outcome from its metadata: open unless `isClosed`; a closed stage is won with
/// probability 1.0 and lost with 0.0 (HubSpot's "Closed won" and "Closed lost"). `None` for a
/// closed stage with any other probability (or none), which says neither.
fn stage_outcome(metadata: &Value) -> Option<StageOutcome> {
    let closed = as_text(metadata.get("isClosed")).is_some_and(|c| c.eq_ignore_ascii_case("true"));
    if !closed {
        return Some(StageOutcome::Open);
    }
    let probability: f64 = as_text(metadata.get("probability"))?.parse().ok()?;
    if probability == 1.0 {
        Some(StageOutcome::Won)
    } else if probability == 0.0 {
        Some(StageOutcome::Lost)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_follow_is_closed_and_probability() {
        let cases = [
            (
                json!({"isClosed": "false", "probability": "0.2"}),
                Some(StageOutcome::Open),
            ),
            (
                json!({"isClosed": "false", "probability": "1.0"}),
                Some(StageOutcome::Open),
            ),
            (json!({}), Some(StageOutcome::Open)),
            (
                json!({"isClosed": "true", "probability": "1.0"}),
                Some(StageOutcome::Won),
            ),
            (
                json!({"isClosed": "true", "probability": "0.0"}),
                Some(StageOutcome::Lost),
            ),
            (
                json!({"isClosed": true, "probability": 1}),
                Some(StageOutcome::Won),
            ),
            (
                json!({"isClosed": "TRUE", "probability": 0}),
                Some(StageOutcome::Lost),
            ),
            (json!({"isClosed": "true", "probability": "0.5"}), None),
            (json!({"isClosed": "true"}), None),
        ];
        for (metadata, expected) in cases {
            assert_eq!(stage_outcome(&metadata), expected, "{metadata}");
        }
    }
}
