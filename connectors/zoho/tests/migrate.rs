//! Whole migrations through `ferry_core::run`: HubSpot → Zoho and Zoho → Salesforce.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{config, start};
use ferry_core::{Mode, ObjectType, Outcome, Progress, RunOptions, SecretRef, field};
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
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        ..RunOptions::default()
    };
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

/// Zoho → Zoho with every object: deals (stages mapped by label, owners by email, a company
/// and up to five contacts as contact roles) and notes (one parent each, as Zoho holds them),
/// verified by checksum, and a rerun that creates nothing.
#[tokio::test]
async fn zoho_to_zoho_moves_deals_and_notes_with_owners_stages_and_links() {
    let (from, from_running) = start(Options::default()).await;
    let seeded = from.seed(&generate(120, 23, &Mess::none()));
    assert!(seeded.deals >= 20 && seeded.notes >= 40, "{seeded:?}");
    let (to, to_running) = start(Options::default()).await;
    let source = Arc::new(
        ZohoSource::new(config(&from_running.base_url, json!({})), "source").expect("source"),
    );
    let options = RunOptions {
        objects: ObjectType::ALL.to_vec(),
        directory: ferry_core::directory::DirectoryRules {
            deal_stages: ferry_core::stages::StageRules {
                pairs: ferry_sandbox::accounts::stage_crosswalk(
                    ferry_sandbox::zoho::SPEC.deal_stages,
                    ferry_sandbox::zoho::SPEC.deal_stages,
                ),
            },
            ..Default::default()
        },
        ..RunOptions::default()
    };
    for run in 0..2 {
        let sink =
            Arc::new(ZohoSink::new(config(&to_running.base_url, json!({})), "sink").expect("sink"));
        let progress = Arc::new(Progress::new(&options.objects));
        let report = ferry_core::run(Mode::Migrate, source.clone(), sink, &options, progress).await;
        assert_eq!(
            report.outcome,
            Outcome::Verified,
            "run {run}: {:?} {:?}",
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
                (seeded.accounts as u64, seeded.accounts as u64),
                (seeded.contacts as u64, seeded.contacts as u64),
                (seeded.deals as u64, seeded.deals as u64),
                (seeded.notes as u64, seeded.notes as u64),
            ],
            "run {run}"
        );
        assert!(report.objects.iter().all(|o| o.digests_match), "run {run}");
        if run == 1 {
            let created: Vec<u64> = report.objects.iter().map(|o| o.created).collect();
            assert_eq!(created, vec![0, 0, 0, 0], "a rerun creates nothing");
        }
    }
    assert_eq!(to.count("Deals"), seeded.deals);
    assert_eq!(to.count("Notes"), seeded.notes);

    // Deal by deal, as the source holds them: stage, owner (by email), company and contacts.
    let (deals, _) = common::read_all(source.as_ref(), ObjectType::DEALS).await;
    let users = ferry_core::Source::users(source.as_ref())
        .await
        .expect("users");
    let email_of = |id: &str| users.iter().find(|u| u.id == id).map(|u| u.email.clone());
    let (mut won, mut lost, mut five) = (0, 0, 0);
    for deal in &deals {
        let back = to
            .record_by_source_id("Deals", &deal.source_id)
            .expect("the deal is in the sink");
        let Some(ferry_core::Value::Stage(id)) = deal.get(field::STAGE) else {
            panic!("a seeded deal without a stage");
        };
        let (pipeline, stage) = (&id.pipeline, &id.stage);
        assert_eq!(back["Pipeline"], json!(pipeline));
        assert_eq!(back["Stage"], json!(stage));
        won += usize::from(stage == "Closed Won");
        lost += usize::from(stage == "Closed Lost");
        let owner = deal.text(field::OWNER).and_then(email_of);
        assert_eq!(back["Owner"]["email"].as_str().map(str::to_owned), owner);
        assert!(owner.is_some(), "seeded deals are owned");
        let sent: Vec<String> = match deal.get(field::CONTACTS) {
            Some(ferry_core::Value::Links(links)) => links.iter().map(|l| l.id.clone()).collect(),
            _ => Vec::new(),
        };
        let sink_id = back["id"].as_str().expect("id");
        let roles = to.deal_contact_roles(sink_id);
        assert_eq!(roles.len(), sent.len(), "deal {}", deal.source_id);
        assert_eq!(from.deal_contact_roles(&deal.source_id).len(), sent.len());
        for contact in &sent {
            let c = to
                .record_by_source_id("Contacts", contact)
                .expect("contact");
            assert!(roles.contains(&c["id"].as_str().unwrap_or_default().to_owned()));
        }
        five += usize::from(sent.len() == 5);
    }
    assert!(won > 0 && lost > 0, "won {won}, lost {lost}");
    assert!(five > 0, "deal 0 has five contacts");

    // Notes: the one parent each, the owner, and the body.
    let (notes, _) = common::read_all(source.as_ref(), ObjectType::NOTES).await;
    for note in &notes {
        let back = to
            .record_by_source_id("Notes", &note.source_id)
            .expect("the note is in the sink");
        assert_eq!(back["Note_Content"], json!(note.text(field::BODY)));
        let Some(ferry_core::Value::Links(parents)) = note.get(field::PARENTS) else {
            panic!("a seeded note without a parent");
        };
        assert_eq!(parents.len(), 1, "Zoho holds one parent");
        let module = match parents[0].object {
            o if o == ObjectType::DEALS => "Deals",
            o if o == ObjectType::CONTACTS => "Contacts",
            _ => "Accounts",
        };
        let parent = to
            .record_by_source_id(module, &parents[0].id)
            .expect("the parent is in the sink");
        assert_eq!(back["Parent_Id"]["id"], parent["id"]);
        assert_eq!(back["$se_module"], json!(module));
        let owner = note.text(field::OWNER).and_then(email_of);
        assert_eq!(back["Owner"]["email"].as_str().map(str::to_owned), owner);
    }
}

/// A source that reads a Zoho org and gives its first note two more parents (a contact and a
/// company) and its second a body longer than Zoho's 65,535 characters: what a source holding
/// several parents (HubSpot, Salesforce) or long HTML hands a Zoho sink.
struct RicherNotes {
    inner: ZohoSource,
    extra_parents: Vec<ferry_core::model::Link>,
    /// The source id of the note given more parents.
    first: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl ferry_core::Source for RicherNotes {
    fn vendor(&self) -> &'static str {
        "zoho"
    }

    async fn check(&self) -> ferry_core::ConnectorResult<()> {
        self.inner.check().await
    }

    async fn users(&self) -> ferry_core::ConnectorResult<Vec<ferry_core::User>> {
        self.inner.users().await
    }

    async fn pipelines(
        &self,
        object: ObjectType,
    ) -> ferry_core::ConnectorResult<Vec<ferry_core::Pipeline>> {
        self.inner.pipelines(object).await
    }

    async fn count(&self, object: ObjectType) -> ferry_core::ConnectorResult<Option<u64>> {
        self.inner.count(object).await
    }

    async fn read_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ferry_core::ConnectorResult<ferry_core::Page> {
        let mut page = self.inner.read_page(object, cursor).await?;
        if object == ObjectType::NOTES && cursor.is_none() {
            if let Some(ferry_core::Value::Links(links)) =
                page.records[0].fields.get_mut(field::PARENTS)
            {
                links.extend(self.extra_parents.iter().cloned());
            }
            *self.first.lock().expect("lock") = Some(page.records[0].source_id.clone());
            page.records[1].set(field::BODY, ferry_core::Value::Text("x".repeat(70_000)));
        }
        Ok(page)
    }
}

#[tokio::test]
async fn a_note_keeps_one_parent_and_a_too_long_body_is_refused_before_writing() {
    let (from, from_running) = start(Options::default()).await;
    let seeded = from.seed(&generate(40, 24, &Mess::none()));
    let (to, to_running) = start(Options::default()).await;
    let source = Arc::new(RicherNotes {
        inner: ZohoSource::new(config(&from_running.base_url, json!({})), "source")
            .expect("source"),
        extra_parents: vec![
            ferry_core::model::Link {
                object: ObjectType::CONTACTS,
                id: from.source_ids("Contacts")[0].clone(),
            },
            ferry_core::model::Link {
                object: ObjectType::COMPANIES,
                id: from.source_ids("Accounts")[0].clone(),
            },
        ],
        first: std::sync::Mutex::new(None),
    });
    let options = RunOptions {
        objects: ObjectType::ALL.to_vec(),
        directory: ferry_core::directory::DirectoryRules {
            deal_stages: ferry_core::stages::StageRules {
                pairs: ferry_sandbox::accounts::stage_crosswalk(
                    ferry_sandbox::zoho::SPEC.deal_stages,
                    ferry_sandbox::zoho::SPEC.deal_stages,
                ),
            },
            ..Default::default()
        },
        ..RunOptions::default()
    };
    let sink =
        Arc::new(ZohoSink::new(config(&to_running.base_url, json!({})), "sink").expect("sink"));
    let progress = Arc::new(Progress::new(&options.objects));
    let report = ferry_core::run(Mode::Migrate, source.clone(), sink, &options, progress).await;
    assert_eq!(
        report.outcome,
        Outcome::RecordsFailed,
        "{:?} {:?}",
        report.error,
        report.failures
    );
    let notes = &report.objects[3];
    assert_eq!(notes.links_not_carried.get(field::PARENTS), Some(&1));
    assert_eq!(notes.verified, seeded.notes as u64 - 1);
    assert!(notes.digests_match);
    let refused: Vec<_> = report
        .failures
        .iter()
        .map(|f| (f.object, f.code.as_str()))
        .collect();
    assert_eq!(refused, vec![(ObjectType::NOTES, "TOO_LONG")]);
    assert_eq!(to.count("Notes"), seeded.notes - 1);
    // The deal, first of deal, contact and company, is the one parent kept.
    let first = source.first.lock().expect("lock").clone().expect("read");
    let kept = to
        .record_by_source_id("Notes", &first)
        .expect("the first note");
    assert_eq!(kept["$se_module"], "Deals");
}
