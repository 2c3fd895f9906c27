//! A whole migration through `ferry_core::run` between two HubSpot emulators (two accounts):
//! companies, contacts, deals and notes, with owners matched by email, stages mapped by label
//! and every link, verified; then what the sink account holds, read straight from its API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::directory::DirectoryRules;
use ferry_core::report::Progress;
use ferry_core::stages::StageRules;
use ferry_core::{Mode, ObjectType, Outcome, RunOptions, SecretRef, run};
use ferry_hubspot::{HubspotConfig, HubspotSink, HubspotSource};
use ferry_sandbox::hubspot::{Emulator, Options, SPEC};
use ferry_sandbox::seed::{Mess, SeedData, generate};
use secrecy::SecretString;
use serde_json::Value as Json;

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (emulator, running)
}

fn config(base_url: &str) -> HubspotConfig {
    HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        rate_limit_per_10s: Some(5_000),
        ..HubspotConfig::new(SecretRef::in_memory(SecretString::from(
            ferry_sandbox::HUBSPOT_TOKEN.to_owned(),
        )))
    }
}

async fn migrate(source: &str, sink: &str) -> ferry_core::Report {
    let source = HubspotSource::new(config(source), "source").expect("source");
    let sink = HubspotSink::new(config(sink), "sink").expect("sink");
    let options = RunOptions {
        objects: ObjectType::ALL.to_vec(),
        directory: DirectoryRules {
            deal_stages: StageRules {
                pairs: ferry_sandbox::accounts::stage_crosswalk(SPEC.deal_stages, SPEC.deal_stages),
            },
            ..DirectoryRules::default()
        },
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(
        Mode::Migrate,
        Arc::new(source),
        Arc::new(sink),
        &options,
        progress,
    )
    .await
}

async fn request(base: &str, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Every record of `object` with `properties`, by HubSpot id.
async fn list(base: &str, object: &str, properties: &str) -> HashMap<String, Json> {
    let mut out = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/crm/v3/objects/{object}?limit=100&properties={properties}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", urlencoding::encode(a)));
        }
        let page = request(base, reqwest::Method::GET, &path, None).await;
        for r in page["results"].as_array().expect("results") {
            out.insert(
                r["id"].as_str().expect("id").to_owned(),
                r["properties"].clone(),
            );
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return out,
        }
    }
}

/// The HubSpot ids `from` (of `object`) is associated with among `to` records.
async fn associated(base: &str, object: &str, from: &str, to: &str) -> Vec<String> {
    let path = format!("/crm/v4/objects/{object}/{from}/associations/{to}?limit=500");
    let answer = request(base, reqwest::Method::GET, &path, None).await;
    let mut ids: Vec<String> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| match &r["toObjectId"] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The active owners' emails by owner id.
async fn owners(base: &str) -> HashMap<String, String> {
    let answer = request(base, reqwest::Method::GET, "/crm/v3/owners?limit=500", None).await;
    answer["results"]
        .as_array()
        .expect("owners")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().expect("id").to_owned(),
                o["email"].as_str().expect("email").to_lowercase(),
            )
        })
        .collect()
}

/// The sink's HubSpot id of each record ferry wrote, by its source id.
fn by_source_id(records: &HashMap<String, Json>) -> HashMap<String, String> {
    records
        .iter()
        .filter_map(|(id, p)| Some((p["ferry_source_id"].as_str()?.to_owned(), id.clone())))
        .collect()
}

fn seed() -> SeedData {
    generate(120, 14, &Mess::none())
}

#[tokio::test]
async fn all_four_objects_migrate_verified_with_links_stages_and_owners() {
    let (from, from_running) = start().await;
    let data = seed();
    let (deals, notes) = from.seed(&data);
    assert!(deals > 0 && notes > 0);
    let (to, to_running) = start().await;
    let (source, sink) = (&from_running.base_url, &to_running.base_url);

    let report = migrate(source, sink).await;
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "error {:?}, failures {:?}",
        report.error,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    let counts: Vec<(Option<ObjectType>, u64, u64)> = report
        .objects
        .iter()
        .map(|o| (o.object, o.read, o.verified))
        .collect();
    let expected = [
        (ObjectType::COMPANIES, data.companies.len()),
        (ObjectType::CONTACTS, data.contacts.len()),
        (ObjectType::DEALS, deals),
        (ObjectType::NOTES, notes),
    ];
    assert_eq!(
        counts,
        expected
            .iter()
            .map(|&(o, n)| (Some(o), n as u64, n as u64))
            .collect::<Vec<_>>()
    );
    assert!(report.objects.iter().all(|o| o.digests_match));
    for (object, n) in expected {
        assert_eq!(to.count(object.as_str()), Some(n), "{object}");
    }
    // Nothing carried is declared lost: HubSpot holds every field, link and owner it reads.
    for o in &report.objects {
        assert!(o.links_not_carried.is_empty(), "{:?}", o.links_not_carried);
    }

    // The sink account, read straight from its API.
    let deal_props = "dealname,dealstage,pipeline,hubspot_owner_id,hs_is_closed,hs_is_closed_won,ferry_source_id";
    let (source_deals, sink_deals) = (
        list(source, "deals", deal_props).await,
        list(sink, "deals", deal_props).await,
    );
    let sink_deal = by_source_id(&sink_deals);
    let (source_owners, sink_owners) = (owners(source).await, owners(sink).await);
    let sink_contacts_by_source = by_source_id(&list(sink, "contacts", "ferry_source_id").await);
    let (mut five, mut won, mut lost, mut owned) = (0, 0, 0, 0);
    for (id, p) in &source_deals {
        let copy = &sink_deals[&sink_deal[id]];
        assert_eq!(copy["dealname"], p["dealname"]);
        // Won and lost arrive won and lost.
        assert_eq!(copy["hs_is_closed"], p["hs_is_closed"], "deal {id}");
        assert_eq!(copy["hs_is_closed_won"], p["hs_is_closed_won"], "deal {id}");
        match (p["hs_is_closed"].as_str(), p["hs_is_closed_won"].as_str()) {
            (Some("true"), Some("true")) => won += 1,
            (Some("true"), _) => lost += 1,
            _ => {}
        }
        // The owner is the sink user with the source owner's email (an archived source owner
        // matches no active sink user and arrives unset).
        let email = p["hubspot_owner_id"]
            .as_str()
            .and_then(|o| source_owners.get(o));
        let sink_email = copy["hubspot_owner_id"].as_str().map(|o| &sink_owners[o]);
        assert_eq!(sink_email, email, "deal {id}");
        owned += usize::from(email.is_some());
        // Every contact arrives, the copies of the source's.
        let contacts = associated(source, "deals", id, "contacts").await;
        let mut expected: Vec<String> = Vec::new();
        for c in &contacts {
            expected.push(sink_contacts_by_source[c].clone());
        }
        expected.sort();
        assert_eq!(
            associated(sink, "deals", &sink_deal[id], "contacts").await,
            expected,
            "deal {id}"
        );
        five += usize::from(contacts.len() == 5);
    }
    eprintln!(
        "five {five} won {won} lost {lost} owned {owned} of {}",
        source_deals.len()
    );
    assert!(five > 0, "a deal with five contacts");
    assert!(won > 0 && lost > 0, "won {won}, lost {lost}");
    assert!(owned > 0);

    // Every note hangs on all of its parents; some on three.
    let note_props = "hs_timestamp,hubspot_owner_id,ferry_source_id";
    let (source_notes, sink_notes) = (
        list(source, "notes", note_props).await,
        list(sink, "notes", note_props).await,
    );
    let sink_note = by_source_id(&sink_notes);
    let sink_ids = [
        ("deals", sink_deal.clone()),
        ("contacts", sink_contacts_by_source.clone()),
        (
            "companies",
            by_source_id(&list(sink, "companies", "ferry_source_id").await),
        ),
    ];
    let mut three = 0;
    for (id, p) in &source_notes {
        let copy_id = &sink_note[id];
        assert_eq!(
            sink_notes[copy_id]["hs_timestamp"], p["hs_timestamp"],
            "note {id}"
        );
        let mut parents = 0;
        for (object, ids) in &sink_ids {
            let mut expected: Vec<String> = associated(source, "notes", id, object)
                .await
                .iter()
                .map(|s| ids[s].clone())
                .collect();
            expected.sort();
            parents += expected.len();
            assert_eq!(
                associated(sink, "notes", copy_id, object).await,
                expected,
                "note {id} {object}"
            );
        }
        three += usize::from(parents == 3);
    }
    assert!(three > 0, "a note with three parents");

    // A rerun creates nothing and ends exact.
    let again = migrate(source, sink).await;
    assert_eq!(again.outcome, Outcome::Verified, "{:?}", again.error);
    for o in &again.objects {
        assert_eq!(o.created, 0, "{:?}", o.object);
    }
    for (object, n) in expected {
        assert_eq!(to.count(object.as_str()), Some(n), "{object}");
    }
}

#[tokio::test]
async fn links_are_read_with_one_request_per_reference_and_page_not_per_record() {
    use ferry_core::Source;
    let (from, running) = start().await;
    let (deals, notes) = from.seed(&seed());
    // The list path's requests: a partitioned read searches too (tests/partitions.rs).
    let list_only = HubspotConfig {
        read_partitions: Some(false),
        ..config(&running.base_url)
    };
    let source = HubspotSource::new(list_only, "source").expect("source");
    for (object, records, references) in
        [(ObjectType::DEALS, deals, 2), (ObjectType::NOTES, notes, 3)]
    {
        let (before, _) = from.request_counts();
        let (mut pages, mut read, mut linked) = (0, 0, 0);
        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .read_page(object, cursor.as_deref())
                .await
                .expect("page");
            pages += 1;
            read += page.records.len();
            linked += page
                .records
                .iter()
                .filter(|r| {
                    r.get(ferry_core::field::CONTACTS).is_some()
                        || r.get(ferry_core::field::PARENTS).is_some()
                })
                .count();
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let (after, _) = from.request_counts();
        assert_eq!(read, records, "{object}");
        assert!(linked > 0, "{object}");
        assert!(pages > 1 || records <= 100, "{object}");
        assert_eq!(
            after - before,
            pages * (1 + references),
            "{object}: {pages} pages"
        );
    }
}
