//! The org's users and opportunity stages, through the Salesforce source and sink, against the
//! sandbox emulator over real HTTP on loopback.
//!
//! Paging: `users()` and `pipelines()` read through the same `nextRecordsUrl` loop as every
//! query, but Salesforce's smallest page is 200 records (`batchSize`) and the emulated org has
//! nine users and eight stages, so both fit one page here.

use std::net::SocketAddr;

use ferry_core::{ConnectorError, ObjectType, Pipeline, SecretRef, Sink, Source, StageOutcome};
use ferry_salesforce::{SalesforceConfig, SalesforceSink, SalesforceSource};
use ferry_sandbox::accounts::{self, Outcome};
use ferry_sandbox::salesforce::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;
use serde_json::json;

fn config(login_url: &str) -> SalesforceConfig {
    let mut config: SalesforceConfig = serde_json::from_value(json!({
        "login_url": login_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    config
}

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options::default());
    emulator.seed(&generate(20, 7, &Mess::default()));
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

/// The `OwnerId` of every seeded Account, queried straight from the emulator's REST API.
async fn account_owners(base_url: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base_url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ferry_sandbox::SALESFORCE_CLIENT_ID),
            ("client_secret", ferry_sandbox::SALESFORCE_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let answer: serde_json::Value = http
        .get(format!("{base_url}/services/data/v62.0/query"))
        .query(&[("q", "SELECT OwnerId FROM Account")])
        .bearer_auth(token["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    answer["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["OwnerId"].as_str().map(str::to_owned))
        .collect()
}

/// The emulator's configured stages with the seed's outcomes, as a connector should report them.
fn expected_pipeline() -> Vec<(String, Vec<(String, StageOutcome)>)> {
    let table = ferry_sandbox::salesforce::SPEC.deal_stages;
    let outcome = |label: &str| {
        let l = table.iter().find(|l| l.stage == label).expect("label");
        let seed = accounts::PIPELINES
            .iter()
            .find(|p| p.key == l.seed_pipeline)
            .and_then(|p| p.stages.iter().find(|s| s.key == l.seed_stage))
            .expect("seed stage");
        match seed.outcome {
            Outcome::Open => StageOutcome::Open,
            Outcome::Won => StageOutcome::Won,
            Outcome::Lost => StageOutcome::Lost,
        }
    };
    accounts::account_pipelines(table)
        .into_iter()
        .map(|(p, stages)| {
            (
                p.to_owned(),
                stages.iter().map(|s| (s.to_string(), outcome(s))).collect(),
            )
        })
        .collect()
}

fn shape(pipelines: &[Pipeline]) -> Vec<(String, Vec<(String, StageOutcome)>)> {
    pipelines
        .iter()
        .map(|p| {
            (
                p.label.clone(),
                p.stages
                    .iter()
                    .map(|s| (s.label.clone(), s.outcome))
                    .collect(),
            )
        })
        .collect()
}

fn check_users(users: &[ferry_core::User], owners: &[String]) {
    for expected in accounts::account_users("salesforce") {
        let found = users
            .iter()
            .find(|u| u.email == expected.email)
            .unwrap_or_else(|| panic!("user {} missing (as held)", expected.key));
        assert_eq!(found.active, expected.active, "user {}", expected.key);
    }
    // The integration user every token acts as is a user too.
    assert_eq!(users.len(), accounts::account_users("salesforce").len() + 1);
    assert!(users.iter().any(|u| !u.active));
    assert!(!owners.is_empty());
    for owner in owners {
        assert!(
            users.iter().any(|u| &u.id == owner),
            "owner {owner} not listed"
        );
    }
}

fn check_pipelines(pipelines: &[Pipeline]) {
    assert_eq!(shape(pipelines), expected_pipeline());
    assert_eq!(pipelines[0].id, ferry_salesforce::PIPELINE_ID);
    // A stage's id is the picklist value records hold in StageName: the label here.
    assert!(pipelines[0].stages.iter().all(|s| s.id == s.label));
}

#[tokio::test]
async fn source_and_sink_list_users_and_the_stages() {
    let (_emulator, running) = start().await;
    let owners = account_owners(&running.base_url).await;
    let source = SalesforceSource::new(config(&running.base_url), "source").expect("source");
    let sink = SalesforceSink::new(config(&running.base_url), "sink").expect("sink");

    check_users(
        &Source::users(&source).await.expect("source users"),
        &owners,
    );
    check_users(&Sink::users(&sink).await.expect("sink users"), &owners);
    check_pipelines(
        &Source::pipelines(&source, ObjectType::DEALS)
            .await
            .expect("source"),
    );
    check_pipelines(
        &Sink::pipelines(&sink, ObjectType::DEALS)
            .await
            .expect("sink"),
    );

    let refused = Source::pipelines(&source, ObjectType::CONTACTS).await;
    assert!(
        matches!(&refused, Err(ConnectorError::Unsupported { detail, .. }) if detail.contains("contacts")),
        "{refused:?}"
    );
}
