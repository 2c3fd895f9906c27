//! The HubSpot connector's owners and deal pipelines against the sandbox's HubSpot emulator,
//! over real HTTP on loopback, through both the source and the sink.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Once;

use ferry_core::{ConnectorError, ObjectType, Pipeline, Sink, Source, StageOutcome, User};
use ferry_hubspot::{HubspotConfig, HubspotSink, HubspotSource};
use ferry_sandbox::accounts::{self, Outcome};
use ferry_sandbox::hubspot::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use serde_json::Value;

const TOKEN_VAR: &str = "FERRY_HUBSPOT_DIRECTORY_TEST_TOKEN";

/// Sets the test token once, before any test does anything else.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe {
            std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN);
        }
    });
}

async fn emulator(contacts: usize) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(Options::default());
    emulator.seed(&generate(contacts, 11, &Mess::default()));
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}

/// A config with `page_size` 2: fewer than the account's owners, so owners come in pages.
fn config(base_url: &str) -> HubspotConfig {
    HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        page_size: Some(2),
        ..HubspotConfig::new(ferry_core::SecretRef::env(TOKEN_VAR))
    }
}

/// (email, active) of every user, sorted.
fn emails(users: &[User]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = users.iter().map(|u| (u.email.clone(), u.active)).collect();
    out.sort();
    out
}

fn expected_users() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = accounts::account_users("hubspot")
        .into_iter()
        .map(|u| (u.email, u.active))
        .collect();
    out.sort();
    out
}

/// The account's pipelines as the emulator is configured with them: labels in order, and each
/// stage's outcome as the seed stage kept there says.
fn expected_pipelines() -> Vec<(String, Vec<(String, StageOutcome)>)> {
    let table = ferry_sandbox::hubspot::SPEC.deal_stages;
    accounts::account_pipelines(table)
        .into_iter()
        .map(|(pipeline, stages)| {
            let stages = stages
                .into_iter()
                .map(|stage| {
                    let seed = table
                        .iter()
                        .find(|l| l.pipeline == pipeline && l.stage == stage)
                        .expect("a stage of the table");
                    let outcome = accounts::PIPELINES
                        .iter()
                        .find(|p| p.key == seed.seed_pipeline)
                        .and_then(|p| p.stages.iter().find(|s| s.key == seed.seed_stage))
                        .expect("a seed stage")
                        .outcome;
                    let outcome = match outcome {
                        Outcome::Open => StageOutcome::Open,
                        Outcome::Won => StageOutcome::Won,
                        Outcome::Lost => StageOutcome::Lost,
                    };
                    (stage.to_owned(), outcome)
                })
                .collect();
            (pipeline.to_owned(), stages)
        })
        .collect()
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

/// The owner ids the emulator's seeded contacts carry in `hubspot_owner_id`.
async fn contact_owner_ids(base_url: &str) -> HashSet<String> {
    let answer: Value = reqwest::Client::new()
        .get(format!(
            "{base_url}/crm/v3/objects/contacts?limit=100&properties=hubspot_owner_id"
        ))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("list contacts")
        .json()
        .await
        .expect("contacts as JSON");
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|c| c["properties"]["hubspot_owner_id"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn users_are_the_owners_active_and_archived_by_owner_id() {
    init();
    let (running, emulator) = emulator(40).await;
    let base = running.base_url.clone();
    let source = HubspotSource::new(config(&base), "source").expect("source");
    let sink = HubspotSink::new(config(&base), "sink").expect("sink");
    let (before, _) = emulator.request_counts();
    let from_source = source.users().await.expect("source users");
    let (after, _) = emulator.request_counts();
    let from_sink = sink.users().await.expect("sink users");

    let expected = expected_users();
    assert_eq!(emails(&from_source), expected);
    assert_eq!(emails(&from_sink), expected);
    assert!(
        expected.iter().any(|(_, active)| !active),
        "the seed has an archived owner"
    );
    // 6 active owners 2 a page, and one archived: more than one page each way.
    assert!(
        after - before >= 4,
        "owners were not paged: {} requests",
        after - before
    );

    let ids: HashSet<String> = from_source.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), from_source.len(), "an owner listed twice");
    let owners = contact_owner_ids(&base).await;
    assert!(!owners.is_empty(), "seeded contacts have owners");
    for owner in &owners {
        assert!(
            ids.contains(owner),
            "contact owner {owner} is not a listed user"
        );
    }
}

#[tokio::test]
async fn deal_pipelines_are_the_accounts_in_order_with_outcomes() {
    init();
    let (running, _emulator) = emulator(0).await;
    let base = running.base_url.clone();
    let source = HubspotSource::new(config(&base), "source").expect("source");
    let sink = HubspotSink::new(config(&base), "sink").expect("sink");
    let from_source = source.pipelines(ObjectType::DEALS).await.expect("source");
    let from_sink = sink.pipelines(ObjectType::DEALS).await.expect("sink");
    let expected = expected_pipelines();
    assert_eq!(labels(&from_source), expected);
    assert_eq!(from_sink, from_source);
    // The default pipeline's id is `default`, as deals' `pipeline` holds it.
    assert_eq!(from_source[0].id, "default");
    assert_eq!(from_source[0].stages[0].id, "appointmentscheduled");

    let err = source
        .pipelines(ObjectType::CONTACTS)
        .await
        .expect_err("contacts have no pipelines here");
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err:?}");
}
