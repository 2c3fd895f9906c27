//! The company's users (`GET /v1/users`) and deal pipelines and stages (`GET /api/v2/pipelines`,
//! `GET /api/v2/stages`), for matching record owners by email and deal stages by label. Shared
//! by the source and the sink.

use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Pipeline, PipelineStage, StageOutcome, User,
};
use serde_json::Value;

use crate::VENDOR;
use crate::client::PipedriveClient;

const USERS_PATH: &str = "/v1/users";
const PIPELINES_PATH: &str = "/api/v2/pipelines";
const STAGES_PATH: &str = "/api/v2/stages";

fn malformed(endpoint: &str, detail: impl Into<String>) -> ConnectorError {
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: endpoint.to_owned(),
        detail: detail.into(),
    }
}

/// Every user of the company, active or not (`active_flag`). `GET /v1/users` is not paged: it
/// answers with every user at once. A user's id is what deals, persons and organizations hold
/// in `owner_id`. A user without an email cannot be matched and is left out.
pub(crate) async fn users(client: &PipedriveClient) -> ConnectorResult<Vec<User>> {
    let endpoint = format!("GET {USERS_PATH}");
    let body = client.get(USERS_PATH, &[]).await?;
    let items = match body.get("data") {
        Some(Value::Array(items)) => items.as_slice(),
        // Pipedrive's envelope carries `data: null` for an empty list.
        Some(Value::Null) | None => &[],
        Some(_) => return Err(malformed(&endpoint, "`data` is not a list")),
    };
    let mut users = Vec::with_capacity(items.len());
    for item in items {
        if let Some(user) = parse_user(item).map_err(|detail| malformed(&endpoint, detail))? {
            users.push(user);
        }
    }
    tracing::debug!(
        vendor = VENDOR,
        users = users.len(),
        without_email = items.len() - users.len(),
        "listed users"
    );
    Ok(users)
}

/// One user of `GET /v1/users`: `None` when it has no email; an error (naming no value) when
/// it has no numeric id or no boolean `active_flag`.
fn parse_user(item: &Value) -> Result<Option<User>, String> {
    let id = item
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("a user without a numeric `id`")?;
    let active = item
        .get("active_flag")
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("user {id} has no boolean `active_flag`"))?;
    let email = item
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty());
    Ok(email.map(|email| User {
        id: id.to_string(),
        email: email.to_owned(),
        active,
    }))
}

/// Every item of a v2 cursor-paged list, `page_size` per page.
async fn all_pages(
    client: &PipedriveClient,
    path: &str,
    query: &[(&str, &str)],
    page_size: u32,
) -> ConnectorResult<Vec<Value>> {
    let endpoint = format!("GET {path}");
    let limit = page_size.to_string();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", limit.as_str()));
        if let Some(c) = cursor.as_deref() {
            q.push(("cursor", c));
        }
        let mut body = client.get(path, &q).await?;
        match body.get_mut("data").map(Value::take) {
            Some(Value::Array(page)) => items.extend(page),
            Some(Value::Null) | None => {}
            Some(_) => return Err(malformed(&endpoint, "`data` is not a list")),
        }
        let next = body
            .pointer("/additional_data/next_cursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        match next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(malformed(
                    &endpoint,
                    "the next-page cursor equals the current one; paging would never end",
                ));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// An id, name and order of a pipeline or stage; `None` for a deleted one.
fn parse_entry(item: &Value, what: &str) -> Result<Option<(u64, String, i64)>, String> {
    let id = item
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("a {what} without a numeric `id`"))?;
    if item.get("is_deleted").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} {id} has no `name`"))?;
    let order = item
        .get("order_nr")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    Ok(Some((id, name.to_owned(), order)))
}

/// Every deal pipeline (`GET /api/v2/pipelines`) with its stages
/// (`GET /api/v2/stages?pipeline_id=`), both cursor-paged with `page_size` per page, in
/// Pipedrive's `order_nr` order, deleted ones left out. Every stage is open: Pipedrive keeps
/// won and lost in a deal's `status`, beside its stage. Any object but deals is refused.
pub(crate) async fn pipelines(
    client: &PipedriveClient,
    object: ObjectType,
    page_size: u32,
) -> ConnectorResult<Vec<Pipeline>> {
    if object != ObjectType::DEALS {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!("this connector lists the pipelines of deals only, not of {object}"),
        });
    }
    let pipelines_endpoint = format!("GET {PIPELINES_PATH}");
    let stages_endpoint = format!("GET {STAGES_PATH}");
    let mut listed = Vec::new();
    for item in all_pages(client, PIPELINES_PATH, &[], page_size).await? {
        if let Some(entry) =
            parse_entry(&item, "pipeline").map_err(|d| malformed(&pipelines_endpoint, d))?
        {
            listed.push(entry);
        }
    }
    // A stable sort: equal orders keep Pipedrive's (id) order.
    listed.sort_by_key(|(_, _, order)| *order);
    let mut pipelines = Vec::with_capacity(listed.len());
    for (id, label, _) in listed {
        let id_text = id.to_string();
        let items = all_pages(
            client,
            STAGES_PATH,
            &[("pipeline_id", id_text.as_str())],
            page_size,
        )
        .await?;
        let mut stages = Vec::with_capacity(items.len());
        for item in &items {
            if item.get("pipeline_id").and_then(Value::as_u64) != Some(id) {
                return Err(malformed(
                    &stages_endpoint,
                    format!("a stage not of pipeline {id} in the answer for pipeline {id}"),
                ));
            }
            if let Some(entry) =
                parse_entry(item, "stage").map_err(|d| malformed(&stages_endpoint, d))?
            {
                stages.push(entry);
            }
        }
        stages.sort_by_key(|(_, _, order)| *order);
        pipelines.push(Pipeline {
            id: id_text,
            label,
            stages: stages
                .into_iter()
                .map(|(id, label, _)| PipelineStage {
                    id: id.to_string(),
                    label,
                    outcome: StageOutcome::Open,
                })
                .collect(),
        });
    }
    tracing::debug!(
        vendor = VENDOR,
        pipelines = pipelines.len(),
        "listed deal pipelines"
    );
    Ok(pipelines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_are_active_by_active_flag_and_need_an_email() {
        let active = json!({"id": 7, "email": "A@x.example", "active_flag": true});
        let user = parse_user(&active).expect("parsed").expect("a user");
        assert_eq!(
            (user.id.as_str(), user.email.as_str(), user.active),
            ("7", "A@x.example", true)
        );
        let inactive = json!({"id": 8, "email": "b@x.example", "active_flag": false});
        assert!(
            !parse_user(&inactive)
                .expect("parsed")
                .expect("a user")
                .active
        );
        let no_email = json!({"id": 9, "email": "", "active_flag": true});
        assert_eq!(parse_user(&no_email), Ok(None));
        assert!(parse_user(&json!({"id": "x", "active_flag": true})).is_err());
        let no_flag = parse_user(&json!({"id": 10, "email": "c@x.example"})).expect_err("no flag");
        assert!(!no_flag.contains("c@x.example"), "{no_flag}");
    }

    #[test]
    fn deleted_entries_are_left_out_and_order_defaults_last() {
        let live = json!({"id": 3, "name": "Lead In", "order_nr": 1, "is_deleted": false});
        assert_eq!(
            parse_entry(&live, "stage"),
            Ok(Some((3, "Lead In".to_owned(), 1)))
        );
        let deleted = json!({"id": 4, "name": "Old", "order_nr": 2, "is_deleted": true});
        assert_eq!(parse_entry(&deleted, "stage"), Ok(None));
        let unordered = json!({"id": 5, "name": "X"});
        assert_eq!(
            parse_entry(&unordered, "stage"),
            Ok(Some((5, "X".to_owned(), i64::MAX)))
        );
        assert!(parse_entry(&json!({"id": 6}), "stage").is_err());
    }
}
