//! The environment's users and deal pipelines, as the engine asks for them to match owners by
//! email and map stages by label, against the sandbox emulator over real HTTP on loopback.

mod common;

use common::{config, start};
use ferry_core::{ConnectorError, ObjectType, Sink, Source, StageOutcome};
use ferry_dynamics::{DynamicsConfig, DynamicsSink, DynamicsSource};
use ferry_sandbox::accounts::{account_pipelines, account_users};
use ferry_sandbox::dynamics::{Options, SPEC};

fn source(base_url: &str, page_size: u32) -> DynamicsSource {
    let c = DynamicsConfig {
        page_size: Some(page_size),
        ..config(base_url)
    };
    DynamicsSource::new(c, "source").expect("source")
}

#[tokio::test]
async fn users_are_every_systemuser_with_disabled_ones_inactive() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    // Three to a page: the users span several pages, read through the next links.
    let source = source(&running.base_url, 3);
    let from_sink = sink.users().await.expect("sink users");
    let from_source = source.users().await.expect("source users");
    let people: Vec<(String, bool)> = from_source
        .iter()
        .filter(|u| !u.email.is_empty())
        .map(|u| (u.email.clone(), u.active))
        .collect();
    let expected: Vec<(String, bool)> = account_users("dynamics")
        .into_iter()
        .map(|u| (u.email, u.active))
        .collect();
    assert_eq!(people, expected, "emails as held, disabled users inactive");
    assert!(people.iter().any(|(_, active)| !active), "a disabled user");
    assert!(
        from_source.len() > people.len(),
        "the application user is listed too, without an address"
    );
    let ids = |users: &[ferry_core::User]| users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&from_sink),
        ids(&from_source),
        "one environment, one list"
    );
    assert!(
        from_source
            .iter()
            .all(|u| u.id.len() == 36 && u.id.matches('-').count() == 4),
        "ids are the systemuser GUIDs records' ownerid holds"
    );
}

#[tokio::test]
async fn pipelines_are_the_opportunity_flows_with_stages_by_category() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    let source = source(&running.base_url, 2);
    let expected = account_pipelines(SPEC.deal_stages);
    for pipelines in [
        sink.pipelines(ObjectType::DEALS).await.expect("sink"),
        source.pipelines(ObjectType::DEALS).await.expect("source"),
    ] {
        let labels: Vec<(&str, Vec<&str>)> = pipelines
            .iter()
            .map(|p| {
                (
                    p.label.as_str(),
                    p.stages.iter().map(|s| s.label.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(labels, expected);
        let stages = &pipelines[0].stages;
        let ids: Vec<&str> = stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["0", "1", "2", "3"],
            "the salesstage values records hold"
        );
        // Won and lost are the opportunity's statecode, beside the stage.
        assert!(stages.iter().all(|s| s.outcome == StageOutcome::Open));
    }
    match source.pipelines(ObjectType::CONTACTS).await {
        Err(ConnectorError::Unsupported { .. }) => {}
        other => panic!("contacts have no pipelines: {other:?}"),
    }
}
