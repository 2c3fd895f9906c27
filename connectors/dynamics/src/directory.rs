//! The environment's users and deal pipelines, for the engine's owner matching and stage
//! mapping: `systemusers` (a record's `ownerid` names one), and the opportunity business process
//! flows (`workflows` of category 4) with their `processstages`. Both the source and the sink
//! answer through these functions.
//!
//! An opportunity holds its stage as the `salesstage` choice, whose values are the flow's
//! `stagecategory` numbers, so a stage's id is that number and a pipeline's id the flow's GUID
//! (the opportunity's `_processid_value`). Won and lost are the opportunity's `statecode`, beside
//! the stage: every stage is open.

use ferry_core::{Capability, ConnectorError, ConnectorResult, ObjectType};
use ferry_core::{Pipeline, PipelineStage, StageOutcome, User};
use reqwest::Method;
use serde_json::{Map, Value as Json};

use crate::VENDOR;
use crate::client::{Client, endpoint};
use crate::source::{Collection, max_page_size};

/// How many rows one page of users or stages asks for where no page size is configured.
pub(crate) const PAGE: u32 = 500;

/// Every row of entity set `set` matching `filter`, with the columns of `select`, `page` to a
/// page, following `@odata.nextLink` within the environment.
pub(crate) async fn all_rows(
    client: &Client,
    page: u32,
    set: &str,
    select: &str,
    filter: Option<&str>,
) -> ConnectorResult<Vec<Map<String, Json>>> {
    let mut url = client.api_url(set)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("$select", select);
        if let Some(filter) = filter {
            q.append_pair("$filter", filter);
        }
    }
    let prefer = max_page_size(page);
    let mut rows = Vec::new();
    loop {
        let name = endpoint(&Method::GET, &url);
        let page: Collection = client.get_json(url, &[("Prefer", &prefer)]).await?;
        rows.extend(page.value);
        let Some(link) = page.next_link else {
            return Ok(rows);
        };
        let expected = format!("{}{set}?", client.api_base());
        if !link.starts_with(&expected) {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: name,
                detail: "the @odata.nextLink does not point at this environment's entity set"
                    .into(),
            });
        }
        url = url::Url::parse(&link).map_err(|e| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: name.clone(),
            detail: format!("the @odata.nextLink is not a URL: {e}"),
        })?;
    }
}

/// A text column of a row, or a malformed-answer error naming the column (never its value).
fn text<'r>(row: &'r Map<String, Json>, column: &str, set: &str) -> ConnectorResult<&'r str> {
    row.get(column)
        .and_then(Json::as_str)
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {set}"),
            detail: format!("a row has no text `{column}`"),
        })
}

/// Every user of the environment (`systemusers`): disabled ones are inactive. Application users
/// have no address and match no one.
pub(crate) async fn users(client: &Client, page: u32) -> ConnectorResult<Vec<User>> {
    let rows = all_rows(
        client,
        page,
        "systemusers",
        "systemuserid,internalemailaddress,isdisabled",
        None,
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(User {
                id: text(row, "systemuserid", "systemusers")?.to_owned(),
                email: row
                    .get("internalemailaddress")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                active: !row
                    .get("isdisabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect()
}

/// The opportunity business process flows and their stages, in stage order.
pub(crate) async fn pipelines(
    client: &Client,
    page: u32,
    object: ObjectType,
) -> ConnectorResult<Vec<Pipeline>> {
    if object != ObjectType::DEALS {
        return Err(Capability::unsupported(VENDOR, object));
    }
    let flows = all_rows(
        client,
        page,
        "workflows",
        "workflowid,name",
        Some("category eq 4 and primaryentity eq 'opportunity'"),
    )
    .await?;
    let stages = all_rows(
        client,
        page,
        "processstages",
        "processstageid,stagename,stagecategory,_processid_value",
        None,
    )
    .await?;
    let mut pipelines = Vec::with_capacity(flows.len());
    for flow in &flows {
        let id = text(flow, "workflowid", "workflows")?;
        let mut own: Vec<(i64, PipelineStage)> = Vec::new();
        for stage in stages
            .iter()
            .filter(|s| s.get("_processid_value").and_then(Json::as_str) == Some(id))
        {
            let category = stage
                .get("stagecategory")
                .and_then(Json::as_i64)
                .ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: "GET processstages".into(),
                    detail: "a stage has no `stagecategory` number".into(),
                })?;
            own.push((
                category,
                PipelineStage {
                    id: category.to_string(),
                    label: text(stage, "stagename", "processstages")?.to_owned(),
                    outcome: StageOutcome::Open,
                },
            ));
        }
        own.sort_by_key(|(category, _)| *category);
        pipelines.push(Pipeline {
            id: id.to_owned(),
            label: text(flow, "name", "workflows")?.to_owned(),
            stages: own.into_iter().map(|(_, s)| s).collect(),
        });
    }
    Ok(pipelines)
}
