//! Whole migrations through `ferry_core::run`: HubSpot → Dynamics and Dynamics → Salesforce,
//! each emulator on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{config, in_memory, start};
use ferry_core::report::Progress;
use ferry_core::{Mode, ObjectType, Outcome, RunOptions, Sink, Source, run};
use ferry_dynamics::{DynamicsSink, DynamicsSource};
use ferry_sandbox::seed::{Mess, generate};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn migrate(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> ferry_core::Report {
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(Mode::Migrate, source, sink, &options, progress).await
}

fn assert_verified(report: &ferry_core::Report, companies: usize, contacts: usize) {
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "error {:?}, failures {:?}",
        report.error,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    let counts: Vec<(u64, u64)> = report
        .objects
        .iter()
        .map(|o| (o.read, o.verified))
        .collect();
    assert_eq!(
        counts,
        vec![
            (companies as u64, companies as u64),
            (contacts as u64, contacts as u64)
        ]
    );
    assert!(report.objects.iter().all(|o| o.digests_match));
}

#[tokio::test]
async fn hubspot_to_dynamics_is_verified() {
    let hubspot = ferry_sandbox::hubspot::Emulator::new(ferry_sandbox::hubspot::Options::default());
    let data = generate(300, 21, &Mess::none());
    hubspot.seed(&data);
    let hubspot_running = ferry_sandbox::serve("hubspot", hubspot.router(), loopback())
        .await
        .expect("serve hubspot");
    let source = ferry_hubspot::HubspotSource::new(
        ferry_hubspot::HubspotConfig {
            base_url: Some(hubspot_running.base_url.clone()),
            ..ferry_hubspot::HubspotConfig::new(in_memory(ferry_sandbox::HUBSPOT_TOKEN))
        },
        "source",
    )
    .expect("hubspot source");
    let (dynamics, dynamics_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let sink = DynamicsSink::new(config(&dynamics_running.base_url), "sink").expect("sink");

    let report = migrate(Arc::new(source), Arc::new(sink)).await;
    assert_verified(&report, data.companies.len(), data.contacts.len());
    assert_eq!(dynamics.count("account"), data.companies.len());
    assert_eq!(dynamics.count("contact"), data.contacts.len());
    let companies = &report.objects[0];
    assert!(
        companies
            .fields_not_carried
            .contains(&"industry".to_owned()),
        "{:?}",
        companies.fields_not_carried
    );
}

#[tokio::test]
async fn dynamics_to_salesforce_is_verified() {
    let (dynamics, dynamics_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let data = generate(300, 22, &Mess::none());
    let seeded = dynamics.seed(&data);
    let source = DynamicsSource::new(config(&dynamics_running.base_url), "source").expect("source");

    let salesforce =
        ferry_sandbox::salesforce::Emulator::new(ferry_sandbox::salesforce::Options::default());
    let salesforce_running = ferry_sandbox::serve("salesforce", salesforce.router(), loopback())
        .await
        .expect("serve salesforce");
    let sink = ferry_salesforce::SalesforceSink::new(
        ferry_salesforce::SalesforceConfig {
            login_url: Some(salesforce_running.base_url.clone()),
            ..ferry_salesforce::SalesforceConfig::new(
                in_memory(ferry_sandbox::SALESFORCE_CLIENT_ID),
                in_memory(ferry_sandbox::SALESFORCE_CLIENT_SECRET),
            )
        },
        "sink",
    )
    .expect("salesforce sink");

    let report = migrate(Arc::new(source), Arc::new(sink)).await;
    assert_verified(&report, seeded.accounts, seeded.contacts);
    assert_eq!(salesforce.count("Account"), seeded.accounts);
    assert_eq!(salesforce.count("Contact"), seeded.contacts);
}
