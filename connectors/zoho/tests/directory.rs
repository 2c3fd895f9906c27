//! The org's users and deal pipelines, through the Zoho source and sink, against the sandbox
//! emulator over real HTTP on loopback. `page_size` 3 makes the users span three pages.

mod common;

use common::{config, start};
use ferry_core::{ConnectorError, ObjectType, Pipeline, Sink, Source, StageOutcome, User};
use ferry_sandbox::accounts::{self, Outcome};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::json;

/// The `Owner`, `Pipeline` and `Stage` of every seeded Deal, straight from the emulator's API.
async fn deals(base_url: &str) -> Vec<serde_json::Value> {
    let http = reqwest::Client::new();
    let token = common::token(base_url).await;
    let answer: serde_json::Value = http
        .get(format!("{base_url}/crm/v8/Deals"))
        .query(&[("fields", "Owner,Pipeline,Stage")])
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .expect("deals")
        .json()
        .await
        .expect("deals json");
    answer["data"].as_array().expect("data").clone()
}

/// The emulator's configured pipelines with the seed's outcomes, as a connector should report
/// them.
fn expected_pipelines() -> Vec<(String, Vec<(String, StageOutcome)>)> {
    let table = ferry_sandbox::zoho::SPEC.deal_stages;
    let outcome = |pipeline: &str, label: &str| {
        let l = table
            .iter()
            .find(|l| l.pipeline == pipeline && l.stage == label)
            .expect("label");
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
            let stages = stages
                .iter()
                .map(|s| (s.to_string(), outcome(p, s)))
                .collect();
            (p.to_owned(), stages)
        })
        .collect()
}

fn check_pipelines(pipelines: &[Pipeline], deals: &[serde_json::Value]) {
    let shape: Vec<(String, Vec<(String, StageOutcome)>)> = pipelines
        .iter()
        .map(|p| {
            let stages = p
                .stages
                .iter()
                .map(|s| (s.label.clone(), s.outcome))
                .collect();
            (p.label.clone(), stages)
        })
        .collect();
    assert_eq!(shape, expected_pipelines());
    // Ids are what Deals records hold in Pipeline and Stage.
    for deal in deals {
        let pipeline = pipelines
            .iter()
            .find(|p| deal["Pipeline"] == json!(p.id))
            .unwrap_or_else(|| panic!("a deal's pipeline is not listed: {}", deal["Pipeline"]));
        assert!(
            pipeline.stages.iter().any(|s| deal["Stage"] == json!(s.id)),
            "a deal's stage is not listed: {}",
            deal["Stage"]
        );
    }
}

fn check_users(users: &[User], deactivated: &str, deals: &[serde_json::Value]) {
    let listed: Vec<(String, bool)> = users.iter().map(|u| (u.email.clone(), u.active)).collect();
    let expected: Vec<(String, bool)> = accounts::account_users("zoho")
        .into_iter()
        .map(|u| {
            let active = u.active && u.email != deactivated;
            (u.email, active)
        })
        .collect();
    assert_eq!(listed, expected);
    for deal in deals {
        let owner = deal["Owner"]["id"].as_str().expect("owner id");
        assert!(
            users.iter().any(|u| u.id == owner),
            "owner {owner} not listed"
        );
    }
}

#[tokio::test]
async fn source_and_sink_list_users_over_pages_and_the_pipelines() {
    let (emulator, running) = start(Options::default()).await;
    emulator.seed(&generate(40, 11, &Mess::default()));
    let hana = "hana.novak@ferry-demo.example";
    assert!(emulator.deactivate_user(hana));
    let deals = deals(&running.base_url).await;
    assert!(!deals.is_empty());
    let settings = json!({"page_size": 3});
    let source =
        ZohoSource::new(config(&running.base_url, settings.clone()), "source").expect("source");
    let sink = ZohoSink::new(config(&running.base_url, settings), "sink").expect("sink");

    let requests = emulator.requests();
    check_users(
        &Source::users(&source).await.expect("source users"),
        hana,
        &deals,
    );
    assert!(
        emulator.requests() - requests >= 3,
        "users read in pages of 3"
    );
    check_users(&Sink::users(&sink).await.expect("sink users"), hana, &deals);
    check_pipelines(
        &Source::pipelines(&source, ObjectType::DEALS)
            .await
            .expect("source"),
        &deals,
    );
    check_pipelines(
        &Sink::pipelines(&sink, ObjectType::DEALS)
            .await
            .expect("sink"),
        &deals,
    );

    let refused = Sink::pipelines(&sink, ObjectType::COMPANIES).await;
    assert!(
        matches!(&refused, Err(ConnectorError::Unsupported { detail, .. }) if detail.contains("companies")),
        "{refused:?}"
    );
}
