//! A whole migration through `ferry_core::run` between two Salesforce emulators on loopback:
//! the source seeded, the sink empty, every object the connector moves. The sink's state is
//! then checked with SOQL straight against the emulator's REST API (not through the
//! connector): every deal's contact roles, stages won and lost, and owners by email.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::directory::DirectoryRules;
use ferry_core::report::Progress;
use ferry_core::stages::StageRules;
use ferry_core::{Mode, ObjectType, Outcome, RunOptions, SecretRef, Sink, Source, run};
use ferry_salesforce::{SalesforceConfig, SalesforceSink, SalesforceSource};
use ferry_sandbox::salesforce::{EXTERNAL_ID_FIELD as EXT, Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;
use serde_json::{Value as Json, json};

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

async fn serve(emulator: &Emulator) -> ferry_sandbox::Running {
    ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve")
}

/// Every record of `soql`, queried straight from an emulator's REST API (all pages).
async fn query(base_url: &str, soql: &str) -> Vec<Json> {
    let http = reqwest::Client::new();
    let token: Json = http
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
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let mut records = Vec::new();
    let mut answer: Json = http
        .get(format!("{base_url}/services/data/v62.0/query"))
        .query(&[("q", soql)])
        .bearer_auth(&token)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    loop {
        records.extend(
            answer["records"]
                .as_array()
                .expect("records")
                .iter()
                .cloned(),
        );
        let Some(next) = answer["nextRecordsUrl"].as_str().map(str::to_owned) else {
            break;
        };
        answer = http
            .get(format!("{base_url}{next}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("query more")
            .json()
            .await
            .expect("query more json");
    }
    records
}

fn text(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn migrate(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> ferry_core::Report {
    let stages = ferry_sandbox::salesforce::SPEC.deal_stages;
    let options = RunOptions {
        objects: ObjectType::ALL.to_vec(),
        directory: DirectoryRules {
            deal_stages: StageRules {
                pairs: ferry_sandbox::accounts::stage_crosswalk(stages, stages),
            },
            ..DirectoryRules::default()
        },
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(Mode::Migrate, source, sink, &options, progress).await
}

fn assert_verified(report: &ferry_core::Report, counts: &[(ObjectType, usize)]) {
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "error {:?}, failures {:?}",
        report.error,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    for (object, count) in counts {
        let o = report
            .objects
            .iter()
            .find(|o| o.object == Some(*object))
            .unwrap_or_else(|| panic!("{object} not in the report"));
        assert_eq!(
            (o.read, o.verified),
            (*count as u64, *count as u64),
            "{object}"
        );
        assert!(o.digests_match, "{object}");
    }
}

/// Every deal's contacts, by the deal's and the contacts' source ids.
async fn roles(base_url: &str, deal: &str, contact: &str) -> BTreeMap<String, BTreeSet<String>> {
    let soql = format!("SELECT {deal}, {contact} FROM OpportunityContactRole");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let path = |r: &Json, p: &str| p.split('.').fold(r.clone(), |v, step| v[step].clone());
    for r in query(base_url, &soql).await {
        out.entry(text(&path(&r, deal)))
            .or_default()
            .insert(text(&path(&r, contact)));
    }
    out
}

/// `(source id, stage, won, closed, owner email)` of every opportunity; the source id is the
/// `Id` on the source, the external id on the sink.
async fn deals(base_url: &str, id: &str) -> BTreeMap<String, (String, bool, bool, String)> {
    let soql = format!(
        "SELECT {id}, StageName, IsWon, IsClosed, Owner.Email, Owner.IsActive FROM Opportunity"
    );
    query(base_url, &soql)
        .await
        .into_iter()
        .map(|r| {
            let owner = if r["Owner"]["IsActive"] == json!(true) {
                text(&r["Owner"]["Email"]).to_lowercase()
            } else {
                "(inactive)".to_owned()
            };
            (
                text(&r[id]),
                (
                    text(&r["StageName"]),
                    r["IsWon"] == json!(true),
                    r["IsClosed"] == json!(true),
                    owner,
                ),
            )
        })
        .collect()
}

/// Owner emails of every record of `sobject` by source id, lower-cased.
async fn owners(base_url: &str, sobject: &str, id: &str) -> BTreeMap<String, (String, bool)> {
    let soql = format!("SELECT {id}, Owner.Email, Owner.IsActive FROM {sobject}");
    query(base_url, &soql)
        .await
        .into_iter()
        .map(|r| {
            (
                text(&r[id]),
                (
                    text(&r["Owner"]["Email"]).to_lowercase(),
                    r["Owner"]["IsActive"] == json!(true),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn salesforce_to_salesforce_moves_every_object_verified_and_a_rerun_creates_nothing() {
    let source_org = Emulator::new(Options::default());
    let seeded = source_org.seed(&generate(120, 31, &Mess::none()));
    let sink_org = Emulator::new(Options::default());
    let (source_running, sink_running) = (serve(&source_org).await, serve(&sink_org).await);
    let (from, to) = (&source_running.base_url, &sink_running.base_url);
    let source: Arc<dyn Source> =
        Arc::new(SalesforceSource::new(config(from), "source").expect("source"));
    let sink: Arc<dyn Sink> = Arc::new(SalesforceSink::new(config(to), "sink").expect("sink"));

    let counts = [
        (ObjectType::COMPANIES, seeded.accounts),
        (ObjectType::CONTACTS, seeded.contacts),
        (ObjectType::DEALS, seeded.opportunities),
        (ObjectType::NOTES, seeded.notes),
    ];
    assert!(
        seeded.opportunities > 10 && seeded.contact_roles > 10 && seeded.notes > 10,
        "{seeded:?}"
    );
    let report = migrate(Arc::clone(&source), Arc::clone(&sink)).await;
    assert_verified(&report, &counts);
    assert_eq!(sink_org.count("Opportunity"), seeded.opportunities);

    // Every deal arrives with all of its contacts (the seed has one with five).
    let from_roles = roles(from, "OpportunityId", "ContactId").await;
    let sink_roles = roles(to, &format!("Opportunity.{EXT}"), &format!("Contact.{EXT}")).await;
    assert_eq!(sink_roles, from_roles);
    assert!(from_roles.values().any(|c| c.len() == 5), "{from_roles:?}");

    // Stages, won and lost, and owners (an inactive source owner matches no sink user: the
    // sink's default owner, the integration user, applies).
    let from_deals = deals(from, "Id").await;
    let sink_deals = deals(to, EXT).await;
    assert_eq!(from_deals.len(), sink_deals.len());
    let integration = "integration@sandbox.example";
    for (id, (stage, won, closed, owner)) in &from_deals {
        let sink = &sink_deals[id];
        assert_eq!(
            (&sink.0, sink.1, sink.2),
            (stage, *won, *closed),
            "deal {id}"
        );
        let expected = if owner == "(inactive)" {
            integration
        } else {
            owner.as_str()
        };
        assert_eq!(sink.3, expected, "deal {id}");
    }
    assert!(from_deals.values().any(|d| d.1), "a won deal");
    assert!(from_deals.values().any(|d| d.2 && !d.1), "a lost deal");
    for sobject in ["Account", "Contact"] {
        let sink = owners(to, sobject, EXT).await;
        for (id, (email, active)) in owners(from, sobject, "Id").await {
            let expected = if active { email.as_str() } else { integration };
            assert_eq!(sink[&id].0, expected, "{sobject} {id}");
        }
    }

    // Every note on its one parent, with its body, its original time and its owner.
    let mut sink_ids: BTreeMap<String, String> = BTreeMap::new();
    for sobject in ["Account", "Contact", "Opportunity"] {
        for r in query(to, &format!("SELECT Id, {EXT} FROM {sobject}")).await {
            sink_ids.insert(text(&r["Id"]), text(&r[EXT]));
        }
    }
    let note_soql =
        "SELECT Id, Title, Body, ParentId, CreatedDate, Owner.Email, Owner.IsActive FROM Note";
    let from_notes = query(from, note_soql).await;
    let sink_notes: BTreeMap<String, Json> = query(to, note_soql)
        .await
        .into_iter()
        .map(|n| (text(&n["Title"]), n))
        .collect();
    assert_eq!(
        sink_notes.len(),
        from_notes.len(),
        "one note per source note"
    );
    for n in &from_notes {
        let id = text(&n["Id"]);
        let sink = &sink_notes[&format!("ferry:{id}")];
        assert_eq!(sink["Body"], n["Body"], "note {id}");
        assert_eq!(sink["CreatedDate"], n["CreatedDate"], "note {id}");
        assert_eq!(
            sink_ids[&text(&sink["ParentId"])],
            text(&n["ParentId"]),
            "note {id}"
        );
        let owner = if n["Owner"]["IsActive"] == json!(true) {
            text(&n["Owner"]["Email"]).to_lowercase()
        } else {
            integration.to_owned()
        };
        assert_eq!(
            text(&sink["Owner"]["Email"]).to_lowercase(),
            owner,
            "note {id}"
        );
    }

    // A rerun updates, never duplicates: no record and no contact role is created.
    let again = migrate(source, sink).await;
    assert_verified(&again, &counts);
    assert!(
        again.objects.iter().all(|o| o.created == 0),
        "{:?}",
        again.objects
    );
    assert_eq!(sink_org.count("Opportunity"), seeded.opportunities);
    assert_eq!(
        sink_org.count("OpportunityContactRole"),
        seeded.contact_roles
    );
    assert_eq!(sink_org.count("Note"), seeded.notes);
}
