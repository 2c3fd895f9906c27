//! End-to-end: `migration.duplicates = "merge"` through the real binary, from a Salesforce
//! emulator (which, like Salesforce, holds one person twice under one address) into a HubSpot
//! emulator (which, like HubSpot, could not: its contacts' emails are unique). One person
//! entered three times arrives once, filled from the other two and opted out as one of them
//! was; the deal and the note hung on
//! the records merged away hang on the survivor; the report lists the merge by source ids; the
//! run verifies, and a later `ferry verify` agrees.

mod common;

use std::sync::Arc;

use common::{all_credentials, count as n, emulator_table, industry_table, object, run_config};
use ferry_sandbox::seed::{Mess, SeedParent, generate};
use ferry_sandbox::{Limits, faults::Faults, salesforce};

const ADDRESS: &str = "jane.merge@acme-merge.example.org";
const DEAL: &str = "Merge test deal";
const NOTE: &str = "Called about the merge test";
const MOBILE: &str = "+1 415 555 0199";

/// `method path` on the HubSpot emulator at `base_url`, as an app's call would.
async fn hubspot_get(base_url: &str, path: &str) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .get(format!("{base_url}{path}"))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("request");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.expect("JSON")
}

/// The HubSpot ids of the `to` records associated with `from` record `id`.
async fn associated(base_url: &str, from: &str, id: &str, to: &str) -> Vec<String> {
    let answer = hubspot_get(
        base_url,
        &format!("/crm/v4/objects/{from}/{id}/associations/{to}"),
    )
    .await;
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["toObjectId"].to_string().trim_matches('"').to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_entered_three_times_arrives_once_with_their_deal_and_note() {
    let mut data = generate(40, 23, &Mess::none());
    // Contact 0 is the most complete; 1 alone opted out of email; 2 alone has a mobile number.
    let (first, last) = (Some("Jane".to_owned()), Some("Merge".to_owned()));
    for (i, email) in [ADDRESS, ADDRESS, &ADDRESS.to_uppercase()]
        .into_iter()
        .enumerate()
    {
        let c = &mut data.contacts[i];
        c.email = Some(email.to_owned());
        c.first_name = first.clone();
        c.last_name = last.clone();
        c.mobile_phone = None;
        c.email_opt_out = false;
        if i > 0 {
            (c.phone, c.job_title, c.street, c.city) = (None, None, None, None);
            (c.state, c.postal_code, c.country, c.company) = (None, None, None, None);
        }
    }
    let c0 = &mut data.contacts[0];
    c0.job_title = Some("CFO".into());
    c0.city = Some("Leeds".into());
    c0.phone = Some("+44 113 496 0000".into());
    data.contacts[1].email_opt_out = true;
    data.contacts[2].mobile_phone = Some(MOBILE.into());
    // A deal on two records of the person, a note on the third.
    let deal = &mut data.deals[0];
    deal.name = DEAL.into();
    deal.contacts = vec![1, 0];
    let note = &mut data.notes[0];
    note.body = NOTE.into();
    note.html = false;
    note.parents = vec![SeedParent::Contact(2)];

    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&data);
    let sink_state = (ferry_sandbox::emulator("hubspot").expect("hubspot").build)(
        Faults::default(),
        Limits::Unlimited,
    );
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let source = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .expect("serve salesforce");
    let sink = ferry_sandbox::serve("hubspot", Arc::clone(&sink_state).router(), any)
        .await
        .expect("serve hubspot");
    let dir = std::env::temp_dir().join(format!("ferry-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let (sf, hs) = (
        ferry_sandbox::emulator("salesforce").expect("salesforce"),
        ferry_sandbox::emulator("hubspot").expect("hubspot"),
    );
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = [\"companies\", \"contacts\", \"deals\", \"notes\"]\nduplicates = \"merge\"\n\n{}\n{}\n",
            emulator_table("source", "salesforce", &source.base_url),
            emulator_table("sink", "hubspot", &sink.base_url),
            industry_table(&sf, &hs),
            ferry_sandbox::accounts::stage_crosswalk_config(
                &ferry_sandbox::accounts::stage_crosswalk(sf.deal_stages, hs.deal_stages)
            ),
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();

    let (code, report, stderr) = run_config("migrate", &config, &all_credentials()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let contacts = object(&report, "contacts");
    let seeded = org.count("Contact") as u64;
    assert_eq!(n(contacts, "read"), seeded);
    assert_eq!(n(contacts, "merged"), 2);
    assert_eq!(n(contacts, "written"), seeded - 2);
    assert_eq!(n(contacts, "verified"), seeded - 2);
    assert_eq!((n(contacts, "failed"), n(contacts, "skipped")), (0, 0));
    assert_eq!(contacts["digests_match"], true);
    assert_eq!(sink_state.count("contacts"), (seeded - 2) as usize);
    let merges = contacts["merges"].as_array().expect("merges");
    assert_eq!(merges.len(), 1, "{merges:#?}");
    let survivor = merges[0]["survivor"]
        .as_str()
        .expect("survivor id")
        .to_owned();
    let merged: Vec<String> = merges[0]["merged"]
        .as_array()
        .expect("merged ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(merged.len(), 2);
    let cluster = contacts["duplicate_clusters"].as_array().expect("clusters");
    assert_eq!(cluster.len(), 1);
    assert_eq!(cluster[0].as_array().map(Vec::len), Some(3));
    for object_name in ["deals", "notes"] {
        let o = object(&report, object_name);
        assert_eq!(n(o, "failed"), 0, "{object_name}: {report:#}");
        assert_eq!(n(o, "verified"), n(o, "read"), "{object_name}");
    }

    // The survivor is the most complete record, filled with the mobile number of another, and
    // opted out as another was.
    let by_source_id = |id: &str| {
        format!(
            "/crm/v3/objects/contacts/{id}?idProperty=ferry_source_id&properties=email,jobtitle,mobilephone,city,hs_email_optout"
        )
    };
    let kept = hubspot_get(&sink.base_url, &by_source_id(&survivor)).await;
    let props = &kept["properties"];
    assert_eq!(props["jobtitle"], "CFO");
    assert_eq!(props["city"], "Leeds");
    assert_eq!(props["mobilephone"], MOBILE, "filled from a merged record");
    assert_eq!(
        props["hs_email_optout"], "true",
        "opted out: a merged record was, and a merge never weakens an opt-out"
    );
    let kept_id = kept["id"].as_str().expect("HubSpot id").to_owned();

    // The deal and the note hang on the survivor, once.
    let deals = associated(&sink.base_url, "contacts", &kept_id, "deals").await;
    let mut found_deal = false;
    for deal in &deals {
        let d = hubspot_get(&sink.base_url, &format!("/crm/v3/objects/deals/{deal}")).await;
        if d["properties"]["dealname"] == DEAL {
            found_deal = true;
            let on = associated(&sink.base_url, "deals", deal, "contacts").await;
            assert_eq!(on, vec![kept_id.clone()], "re-pointed and deduplicated");
        }
    }
    assert!(found_deal, "the deal of a merged record is on the survivor");
    let notes = associated(&sink.base_url, "contacts", &kept_id, "notes").await;
    let mut found_note = false;
    for note in &notes {
        let x = hubspot_get(
            &sink.base_url,
            &format!("/crm/v3/objects/notes/{note}?properties=hs_note_body"),
        )
        .await;
        found_note |= x["properties"]["hs_note_body"]
            .as_str()
            .is_some_and(|b| b.contains(NOTE));
    }
    assert!(found_note, "the note of a merged record is on the survivor");

    // A later verify plans the same merges and finds the sink as it should be.
    let (code, verify, stderr) = run_config("verify", &config, &all_credentials()).await;
    assert_eq!(code, 0, "{stderr}\n{verify:#}");
    let contacts = object(&verify, "contacts");
    assert_eq!((n(contacts, "merged"), n(contacts, "not_in_sink")), (2, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
