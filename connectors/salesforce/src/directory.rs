//! The org's users and its one "pipeline" of opportunity stages, for owner matching and stage
//! mapping. The source and the sink share these.
//!
//! Salesforce has no pipelines: an opportunity's `StageName` is one picklist, so the stages
//! are reported as one pipeline with id [`PIPELINE_ID`] and label [`PIPELINE_LABEL`], each
//! stage's id being the picklist value records hold (`OpportunityStage.ApiName`). Won and lost
//! are stages (`IsClosed`, `IsWon`).

use ferry_core::json::{Field, Object};
use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Pipeline, PipelineStage, StageOutcome, User,
};

use crate::VENDOR;
use crate::client::Client;

/// The id of the one pipeline reported: the field whose values the stages are.
pub const PIPELINE_ID: &str = "StageName";
/// The label of the one pipeline reported (Salesforce's name for a new org's stages).
pub const PIPELINE_LABEL: &str = "Sales Process";

const USERS_SOQL: &str = "SELECT Id, Email, IsActive FROM User ORDER BY Id";
const STAGES_SOQL: &str = "SELECT ApiName, MasterLabel, IsActive, IsClosed, IsWon, SortOrder \
                           FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder";

/// Every user of the org, active or not (`SELECT … FROM User`, all pages).
pub(crate) async fn users(client: &Client) -> ConnectorResult<Vec<User>> {
    let endpoint = format!("GET {}", client.data_path("query"));
    let mut users = Vec::new();
    let mut bad = None;
    client
        .query_each(USERS_SOQL, |record| match user(record) {
            Ok(u) => users.push(u),
            Err(detail) => {
                bad.get_or_insert(detail);
            }
        })
        .await?;
    if let Some(detail) = bad {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint,
            detail,
        });
    }
    tracing::debug!(vendor = VENDOR, users = users.len(), "listed users");
    Ok(users)
}

/// The active opportunity stages in `SortOrder`, as the one pipeline of deals.
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
    let endpoint = format!("GET {}", client.data_path("query"));
    let mut stages = Vec::new();
    let mut bad = None;
    client
        .query_each(STAGES_SOQL, |record| match stage(record) {
            Ok(s) => stages.push(s),
            Err(detail) => {
                bad.get_or_insert(detail);
            }
        })
        .await?;
    if let Some(detail) = bad {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint,
            detail,
        });
    }
    tracing::debug!(
        vendor = VENDOR,
        stages = stages.len(),
        "listed opportunity stages"
    );
    Ok(vec![Pipeline {
        id: PIPELINE_ID.to_owned(),
        label: PIPELINE_LABEL.to_owned(),
        stages,
    }])
}

/// The text of `column`, or what is wrong (never the value: it may be personal data).
fn text<'r>(record: &'r Object<'_>, object: &str, column: &str) -> Result<&'r str, String> {
    record
        .get(column)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("a {object} row has no text {column}"))
}

/// The checkbox `column`, or what is wrong.
fn flag(record: &Object<'_>, object: &str, column: &str) -> Result<bool, String> {
    match record.get(column) {
        Some(Field::Bool(b)) => Ok(*b),
        _ => Err(format!("a {object} row has no true/false {column}")),
    }
}

/// One `User` row.
fn user(record: &Object<'_>) -> Result<User, String> {
    Ok(User {
        id: text(record, "User", "Id")?.to_owned(),
        email: text(record, "User", "Email")?.to_owned(),
        active: flag(record, "User", "IsActive")?,
    })
}

/// One `OpportunityStage` row: its id is the picklist value (`ApiName`), what `StageName`
/// holds.
fn stage(record: &Object<'_>) -> Result<PipelineStage, String> {
    const OBJECT: &str = "OpportunityStage";
    Ok(PipelineStage {
        id: text(record, OBJECT, "ApiName")?.to_owned(),
        label: text(record, OBJECT, "MasterLabel")?.to_owned(),
        outcome: outcome(
            flag(record, OBJECT, "IsClosed")?,
            flag(record, OBJECT, "IsWon")?,
        ),
    })
}

/// A closed stage is won or lost by `IsWon`; an open one is open.
fn outcome(closed: bool, won: bool) -> StageOutcome {
    match (closed, won) {
        (true, true) => StageOutcome::Won,
        (true, false) => StageOutcome::Lost,
        // An open stage cannot be won; `IsWon` implies `IsClosed`.
        (false, _) => StageOutcome::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Object<'_> {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn outcomes_follow_closed_and_won() {
        assert_eq!(outcome(false, false), StageOutcome::Open);
        assert_eq!(outcome(true, true), StageOutcome::Won);
        assert_eq!(outcome(true, false), StageOutcome::Lost);
    }

    #[test]
    fn rows_are_parsed_and_bad_ones_named_without_values() {
        let row = parse(
            r#"{"ApiName":"Closed Lost","MasterLabel":"Closed Lost","IsActive":true,
                "IsClosed":true,"IsWon":false,"SortOrder":9}"#,
        );
        let s = stage(&row).expect("stage");
        assert_eq!(
            (s.id.as_str(), s.outcome),
            ("Closed Lost", StageOutcome::Lost)
        );
        let u = user(&parse(
            r#"{"Id":"005x","Email":"A@B.example","IsActive":false}"#,
        ))
        .expect("user");
        assert_eq!(
            (u.id.as_str(), u.email.as_str(), u.active),
            ("005x", "A@B.example", false)
        );
        let err = user(&parse(
            r#"{"Id":"005x","Email":"a@b.example","IsActive":"yes"}"#,
        ))
        .expect_err("not a checkbox");
        assert!(err.contains("IsActive") && !err.contains("a@b"), "{err}");
        let err =
            user(&parse(r#"{"Id":"005x","Email":null,"IsActive":true}"#)).expect_err("no email");
        assert!(err.contains("Email"), "{err}");
    }
}
