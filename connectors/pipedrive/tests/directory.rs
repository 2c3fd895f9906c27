//! The Pipedrive connector's users and deal pipelines against the sandbox's Pipedrive emulator,
//! over real HTTP on loopback, through both the source and the sink.

use std::collections::HashSet;
use std::net::SocketAddr;

use ferry_core::{
    ConnectorError, ObjectType, Pipeline, SecretRef, Sink, Source, StageOutcome, User,
};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink, PipedriveSource};
use ferry_sandbox::accounts;
use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;
use serde_json::{Value, json};

async fn start(contacts: usize) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    });
    emulator.seed(&generate(contacts, 11, &Mess::default()));
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

/// A config with `page_size` 1: fewer than the account's pipelines and than any pipeline's
/// stages, so both lists come in pages.
fn config(base_url: &str) -> PipedriveConfig {
    PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        page_size: Some(1),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    }
}

/// `GET` or `PUT` on the emulator as an admin would, outside the connector.
async fn call(base_url: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base_url}{path}"))
        .header("x-api-token", TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

fn emails(users: &[User]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = users.iter().map(|u| (u.email.clone(), u.active)).collect();
    out.sort();
    out
}

fn labels(pipelines: &[Pipeline]) -> Vec<(String, Vec<(String, StageOutcome)>)> {
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

#[tokio::test]
async fn users_are_every_user_with_its_active_flag_and_owner_id() {
    let (_emulator, running) = start(40).await;
    let base = running.base_url.clone();
    let source = PipedriveSource::new(config(&base), "source").expect("source");
    let sink = PipedriveSink::new(config(&base), "sink").expect("sink");

    // The seed's Pipedrive account has no deactivated user: an admin deactivates one.
    let deactivated = "eva.lindqvist@ferry-demo.example";
    let before = source.users().await.expect("source users");
    let eva = before
        .iter()
        .find(|u| u.email == deactivated)
        .expect("the user is listed");
    let answer = call(
        &base,
        reqwest::Method::PUT,
        &format!("/v1/users/{}", eva.id),
        Some(json!({"active_flag": false})),
    )
    .await;
    assert_eq!(answer["success"], json!(true), "{answer}");

    let mut expected: Vec<(String, bool)> = accounts::account_users("pipedrive")
        .into_iter()
        .map(|u| {
            let active = u.active && u.email != deactivated;
            (u.email, active)
        })
        .collect();
    expected.sort();
    let from_source = source.users().await.expect("source users");
    let from_sink = sink.users().await.expect("sink users");
    assert_eq!(emails(&from_source), expected);
    assert_eq!(emails(&from_sink), expected);

    let ids: HashSet<&str> = from_source.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), from_source.len(), "a user listed twice");
    let persons = call(
        &base,
        reqwest::Method::GET,
        "/api/v2/persons?limit=100",
        None,
    )
    .await;
    let owners: Vec<String> = persons["data"]
        .as_array()
        .expect("persons")
        .iter()
        .filter_map(|p| p["owner_id"].as_u64())
        .map(|id| id.to_string())
        .collect();
    assert!(!owners.is_empty(), "seeded persons have owners");
    for owner in &owners {
        assert!(
            ids.contains(owner.as_str()),
            "person owner {owner} is not a listed user"
        );
    }
}

#[tokio::test]
async fn deal_pipelines_are_the_accounts_in_order_all_stages_open() {
    let (emulator, running) = start(40).await;
    let base = running.base_url.clone();
    let source = PipedriveSource::new(config(&base), "source").expect("source");
    let sink = PipedriveSink::new(config(&base), "sink").expect("sink");
    let (before, _) = emulator.request_counts();
    let from_source = source.pipelines(ObjectType::DEALS).await.expect("source");
    let (after, _) = emulator.request_counts();
    let from_sink = sink.pipelines(ObjectType::DEALS).await.expect("sink");

    // Pipedrive keeps won and lost in a deal's status: every stage is open.
    let expected: Vec<(String, Vec<(String, StageOutcome)>)> =
        accounts::account_pipelines(ferry_sandbox::pipedrive::SPEC.deal_stages)
            .into_iter()
            .map(|(p, stages)| {
                (
                    p.to_owned(),
                    stages
                        .into_iter()
                        .map(|s| (s.to_owned(), StageOutcome::Open))
                        .collect(),
                )
            })
            .collect();
    assert_eq!(labels(&from_source), expected);
    assert_eq!(from_sink, from_source);
    let stages: usize = expected.iter().map(|(_, s)| s.len()).sum();
    // One pipeline and one stage a page: every one of them was a request of its own.
    assert!(
        after - before >= (expected.len() + stages) as u64,
        "pipelines and stages were not paged: {} requests",
        after - before
    );

    // Ids are what deals hold in `pipeline_id` and `stage_id`.
    let deals = call(&base, reqwest::Method::GET, "/api/v2/deals?limit=100", None).await;
    let deals = deals["data"].as_array().expect("deals");
    assert!(!deals.is_empty(), "the seed has deals");
    for deal in deals {
        let pipeline = deal["pipeline_id"]
            .as_u64()
            .expect("pipeline id")
            .to_string();
        let id = deal["stage_id"].as_u64().expect("stage id").to_string();
        let listed = from_source
            .iter()
            .find(|p| p.id == pipeline)
            .expect("the stage's pipeline is listed");
        assert!(
            listed.stages.iter().any(|s| s.id == id),
            "stage {id} listed"
        );
    }

    let err = source
        .pipelines(ObjectType::CONTACTS)
        .await
        .expect_err("contacts have no pipelines here");
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err:?}");
}
