//! Whole migrations through `ferry_core::run`: HubSpot → Zoho and Zoho → Salesforce.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{config, start};
use ferry_core::{Mode, ObjectType, Outcome, Progress, RunOptions, SecretRef};
use ferry_hubspot::{HubspotConfig, HubspotSource};
use ferry_salesforce::{SalesforceConfig, SalesforceSink};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::json;

async fn migrate(
    source: Arc<dyn ferry_core::Source>,
    sink: Arc<dyn ferry_core::Sink>,
) -> ferry_core::Report {
    let options = RunOptions::default();
    let progress = Arc::new(Progress::new(&options.objects));
    ferry_core::run(Mode::Migrate, source, sink, &options, progress).await
}

#[tokio::test]
async fn hubspot_to_zoho_is_verified() {
    let hubspot = ferry_sandbox::hubspot::Emulator::new(ferry_sandbox::hubspot::Options::default());
    hubspot.seed(&generate(600, 21, &Mess::none()));
    let hs = ferry_sandbox::serve(
        "hubspot",
        hubspot.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut hs_config = HubspotConfig::new(common::in_memory(ferry_sandbox::HUBSPOT_TOKEN));
    hs_config.base_url = Some(hs.base_url.clone());
    let source = Arc::new(HubspotSource::new(hs_config, "source").expect("source"));

    let (zoho, running) = start(Options::default()).await;
    let sink = Arc::new(ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink"));
    let report = migrate(source, sink).await;
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "{:?} {:?}",
        report.error,
        report.failures
    );
    assert_eq!(zoho.count("Accounts"), 120);
    assert_eq!(zoho.count("Contacts"), 600);
}

#[tokio::test]
async fn zoho_to_salesforce_is_verified() {
    let (zoho, running) = start(Options::default()).await;
    let seeded = zoho.seed(&generate(600, 22, &Mess::default()));
    let source =
        Arc::new(ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source"));

    let sf =
        ferry_sandbox::salesforce::Emulator::new(ferry_sandbox::salesforce::Options::default());
    let sf_running = ferry_sandbox::serve(
        "salesforce",
        sf.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut sf_config = SalesforceConfig::new(
        common::in_memory(ferry_sandbox::SALESFORCE_CLIENT_ID),
        common::in_memory(ferry_sandbox::SALESFORCE_CLIENT_SECRET),
    );
    sf_config.login_url = Some(sf_running.base_url.clone());
    let sink = Arc::new(SalesforceSink::new(sf_config, "sink").expect("sink"));
    let report = migrate(source, sink).await;
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "{:?} {:?}",
        report.error,
        report.failures
    );
    assert_eq!(sf.count("Account"), seeded.accounts);
    assert_eq!(sf.count("Contact"), seeded.contacts);
    let _ = (ObjectType::CONTACTS, SecretRef::env("UNUSED"));
}
