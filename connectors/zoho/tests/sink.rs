//! The Zoho sink against the emulator over real HTTP on loopback.

mod common;

use common::{assert_read_back_equal, config, start};
use ferry_core::{ConnectorError, ObjectType, Record, RecordOutcome, Sink, Value, field};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::{Options, SourceIdField};
use ferry_zoho::ZohoSink;
use serde_json::json;

async fn upsert_all(sink: &ZohoSink, object: ObjectType, records: &[Record]) -> Vec<RecordOutcome> {
    let mut outcomes = Vec::new();
    for batch in records.chunks(sink.capability(object).unwrap().batch_size) {
        let got = sink.upsert(object, batch).await.expect("upsert");
        assert_eq!(got.len(), batch.len());
        for (o, r) in got.iter().zip(batch) {
            assert_eq!(o.source_id, r.source_id, "outcomes in input order");
        }
        outcomes.extend(got);
    }
    outcomes
}

#[tokio::test]
async fn write_read_back_and_rerun_without_duplicates() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    sink.check().await.expect("check");
    sink.prepare(ObjectType::COMPANIES)
        .await
        .expect("prepare companies");
    sink.prepare(ObjectType::CONTACTS)
        .await
        .expect("prepare contacts");
    let (companies, contacts) = ferry_testkit::canonical_records(&generate(450, 11, &Mess::none()));
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let outcomes = upsert_all(&sink, object, records).await;
        let failed: Vec<_> = outcomes
            .iter()
            .filter(|o| !o.result.as_ref().is_ok_and(|w| w.created))
            .collect();
        assert!(failed.is_empty(), "{object}: all created, not {failed:?}");
        assert_read_back_equal(&sink, object, records).await;
    }
    assert_eq!(emulator.count("Accounts"), companies.len());
    assert_eq!(emulator.count("Contacts"), contacts.len());
    let linked = contacts
        .iter()
        .find(|c| c.get(field::COMPANY).is_some())
        .expect("linked");
    let stored = emulator
        .record_by_source_id("Contacts", &linked.source_id)
        .expect("stored");
    assert!(stored["Account_Name"]["id"].is_string(), "lookup set");

    // A fresh sink (empty cache) resolves companies through COQL; a rerun creates nothing.
    let again = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let outcomes = upsert_all(&again, object, records).await;
        assert!(
            outcomes
                .iter()
                .all(|o| o.result.as_ref().is_ok_and(|w| !w.created)),
            "{object}: none created"
        );
    }
    assert_eq!(emulator.count("Accounts"), companies.len());
    assert_eq!(emulator.count("Contacts"), contacts.len());

    // A contact that lost its company and a field is cleared on the next run.
    let mut changed = linked.clone();
    changed.fields.remove(field::COMPANY);
    changed.fields.remove(field::FIRST_NAME);
    again
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&changed))
        .await
        .expect("upsert");
    assert_read_back_equal(&again, ObjectType::CONTACTS, &[changed]).await;
    assert_eq!(again.token_fetches(), 1);
}

#[tokio::test]
async fn refused_records_become_rejections_without_values() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let contact = |id: &str, last: Option<&str>| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        if let Some(last) = last {
            r.set(field::LAST_NAME, Value::Text(last.into()));
        }
        r
    };
    let mut bad_email = contact("p-2", Some("Gilmore"));
    bad_email.set(
        field::EMAIL,
        Value::Text("lorelai@@stars-hollow.example".into()),
    );
    let mut long_title = contact("p-3", Some("Gilmore"));
    long_title.set(
        field::JOB_TITLE,
        Value::Text("Senior Vice President of ".repeat(8)),
    );
    let mut orphan = contact("p-4", Some("Danes"));
    orphan.set(field::COMPANY, Value::Reference("co-missing-77".into()));
    let mut weird = contact("o'brien\\5", Some("O'Brien"));
    weird.set(field::EMAIL_OPT_OUT, Value::Bool(true));
    let records = vec![
        contact("p-1", None),
        bad_email,
        long_title,
        orphan,
        weird.clone(),
    ];
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let codes: Vec<&str> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(_) => "OK",
            Err(r) => r.code.as_str(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "MANDATORY_NOT_FOUND",
            "INVALID_DATA",
            "INVALID_DATA",
            "UNRESOLVED_COMPANY",
            "OK"
        ]
    );
    for o in &outcomes {
        if let Err(r) = &o.result {
            assert!(
                !r.reason.contains("stars-hollow") && !r.reason.contains("Vice President"),
                "{}",
                r.reason
            );
        }
    }
    let reasons: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .map(|r| r.reason.clone())
        .collect();
    assert!(
        reasons[0].contains("Last_Name (last_name)"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("Email (email)"), "{}", reasons[1]);
    assert!(reasons[2].contains("Title (job_title)"), "{}", reasons[2]);
    assert_eq!(emulator.count("Contacts"), 1);
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[weird]).await;
}

#[tokio::test]
async fn prepare_explains_a_missing_or_non_unique_source_id_field() {
    let (_e, running) = start(Options {
        source_id_field: None,
        ..Options::default()
    })
    .await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let err = sink
        .prepare(ObjectType::COMPANIES)
        .await
        .expect_err("no field");
    assert!(matches!(err, ConnectorError::Setup { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Ferry_Source_Id") && text.contains("Do not allow duplicate values"),
        "{text}"
    );

    let (_e, running) = start(Options {
        source_id_field: Some(SourceIdField {
            api_name: "Ferry_Source_Id".into(),
            unique: false,
            case_sensitive: false,
        }),
        ..Options::default()
    })
    .await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let err = sink
        .prepare(ObjectType::CONTACTS)
        .await
        .expect_err("not unique");
    assert!(
        err.to_string().contains("does not refuse duplicate values"),
        "{err}"
    );

    let (_e, running) = start(Options::default()).await;
    let sink = ZohoSink::new(
        config(&running.base_url, json!({"source_id_field": "Legacy_Id"})),
        "sink",
    )
    .expect("sink");
    let err = sink
        .prepare(ObjectType::CONTACTS)
        .await
        .expect_err("other name");
    assert!(err.to_string().contains("Legacy_Id"), "{err}");
}

#[tokio::test]
async fn spent_credits_stop_the_run_with_an_explanation() {
    let (_e, running) = start(Options {
        credits: Some(15),
        ..Options::default()
    })
    .await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let (companies, _) = ferry_testkit::canonical_records(&generate(1_000, 3, &Mess::none()));
    // The first 100 cost 10 credits; the next 100 cannot be paid for with the 5 left.
    sink.upsert(ObjectType::COMPANIES, &companies[..100])
        .await
        .expect("first batch");
    let started = std::time::Instant::now();
    let err = sink
        .upsert(ObjectType::COMPANIES, &companies[100..200])
        .await
        .expect_err("spent");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "not retried"
    );
    let text = err.to_string();
    assert!(
        text.contains("TOO_MANY_REQUESTS") && text.contains("credits"),
        "{text}"
    );
}

/// A token endpoint that refuses the grant with HTTP 400 (as Zoho's accounts server does for a
/// malformed grant): a credentials error at once, naming the endpoint as method and path, and
/// the grant is not sent again.
#[tokio::test]
async fn a_grant_refused_with_400_is_a_credentials_error_at_once() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer);
            let body = r#"{"error":"invalid_client"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes());
        }
    });
    let sink = ZohoSink::new(config(&base_url, json!({})), "sink").expect("sink");
    let err = sink.check().await.expect_err("refused grant");
    assert!(
        matches!(err, ConnectorError::Auth { status: 400, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("zoho: POST /oauth/v2/token: "), "{text}");
    assert!(!text.contains(&base_url), "{text}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the grant is not repeated"
    );
}

#[tokio::test]
async fn a_source_id_twice_in_one_call_is_written_once_and_the_second_refused_unsent() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let contact = |id: &str, last: &str| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::LAST_NAME, Value::Text(last.into()));
        r
    };
    let records = vec![
        contact("p-1", "Gilmore"),
        contact("p-1", "Hayden"),
        contact("  ", "Danes"),
    ];
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let codes: Vec<&str> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(_) => "OK",
            Err(r) => r.code.as_str(),
        })
        .collect();
    assert_eq!(codes, ["OK", "DUPLICATE_SOURCE_ID", "MISSING_SOURCE_ID"]);
    assert_eq!(emulator.count("Contacts"), 1);
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &records[..1]).await;
}

/// A sink user's id (the org's first active user).
async fn a_user(sink: &ZohoSink) -> String {
    let users = sink.users().await.expect("users");
    users
        .iter()
        .find(|u| u.active)
        .map(|u| u.id.clone())
        .expect("an active user")
}

fn links(object: ObjectType, ids: &[&str]) -> Value {
    Value::Links(
        ids.iter()
            .map(|id| ferry_core::model::Link {
                object,
                id: (*id).to_owned(),
            })
            .collect(),
    )
}

#[tokio::test]
async fn deals_keep_their_contacts_as_roles_and_notes_their_parent_across_reruns() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    for object in ObjectType::ALL {
        sink.prepare(object).await.expect("prepare");
    }
    let owner = a_user(&sink).await;
    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    company.set(field::NAME, Value::Text("Acme".into()));
    let contacts: Vec<Record> = (1..=5)
        .map(|i| {
            let mut c = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
            c.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
            c
        })
        .collect();
    upsert_all(&sink, ObjectType::COMPANIES, std::slice::from_ref(&company)).await;
    upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;

    let mut deal = Record::new(ObjectType::DEALS, "d-1");
    deal.set(field::NAME, Value::Text("Big deal".into()));
    deal.set(field::AMOUNT, Value::Decimal(1250.5));
    deal.set(field::CURRENCY, Value::Text("EUR".into()));
    deal.set(field::CLOSE_DATE, Value::Date(19_782));
    deal.set(field::STAGE, Value::stage("Renewals", "Closed Won"));
    deal.set(field::OWNER, Value::Text(owner.clone()));
    deal.set(field::COMPANY, Value::Reference("co-1".into()));
    deal.set(
        field::CONTACTS,
        links(ObjectType::CONTACTS, &["p-1", "p-2", "p-3", "p-4", "p-5"]),
    );
    let written = upsert_all(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await;
    let deal_id = written[0].result.as_ref().expect("written").sink_id.clone();
    assert_eq!(emulator.deal_contact_roles(&deal_id).len(), 5);
    assert_read_back_equal(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await;
    let stored = emulator.record_by_source_id("Deals", "d-1").expect("deal");
    assert_eq!(stored["Closing_Date"], "2024-02-29");
    assert_eq!(stored["Owner"]["id"], json!(owner));

    // Fewer contacts on a rerun: the others lose their role; nothing is duplicated.
    deal.set(
        field::CONTACTS,
        links(ObjectType::CONTACTS, &["p-2", "p-3"]),
    );
    let again = upsert_all(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await;
    assert!(!again[0].result.as_ref().expect("written").created);
    assert_eq!(emulator.deal_contact_roles(&deal_id).len(), 2);
    assert_read_back_equal(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await;
    assert_eq!(emulator.count("Deals"), 1);

    // A deal naming a contact that was never written is refused, naming the field.
    let mut orphan = deal.clone();
    orphan.source_id = "d-2".into();
    orphan.set(
        field::CONTACTS,
        links(ObjectType::CONTACTS, &["p-1", "p-404"]),
    );
    let refused = upsert_all(&sink, ObjectType::DEALS, &[orphan]).await;
    let rejection = refused[0].result.as_ref().expect_err("refused");
    assert_eq!(rejection.code, "UNRESOLVED_CONTACTS");
    assert!(!rejection.reason.contains("p-404"));

    // Notes: one parent (Zoho's limit, declared), the plain form of an HTML body.
    let capability = sink.capability(ObjectType::NOTES).expect("capability");
    assert!(
        capability
            .limits
            .contains(&ferry_core::FieldLimit::max_chars(field::BODY, 65_535).of_plain_text())
    );
    assert!(
        capability
            .limits
            .contains(&ferry_core::FieldLimit::max_links(field::PARENTS, 1))
    );
    assert!(!capability.stored.contains(&field::TIMESTAMP.to_owned()));
    let mut note = Record::new(ObjectType::NOTES, "n-1");
    note.set(field::BODY, Value::Text("<p>Call <b>back</b></p>".into()));
    note.set(field::OWNER, Value::Text(owner.clone()));
    note.set(field::PARENTS, links(ObjectType::DEALS, &["d-1"]));
    let mut on_contact = Record::new(ObjectType::NOTES, "n-2");
    on_contact.set(field::BODY, Value::Text("Met at the fair".into()));
    on_contact.set(field::PARENTS, links(ObjectType::CONTACTS, &["p-5"]));
    let notes = vec![note, on_contact];
    let written = upsert_all(&sink, ObjectType::NOTES, &notes).await;
    assert!(
        written
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| w.created))
    );
    assert_read_back_equal(&sink, ObjectType::NOTES, &notes).await;
    let stored = emulator.record_by_source_id("Notes", "n-1").expect("note");
    assert_eq!(stored["Note_Content"], "Call back");
    assert_eq!(stored["Parent_Id"]["id"], json!(deal_id));

    // A fresh sink (nothing cached) finds the notes by source id: a rerun updates them.
    let fresh = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    assert_read_back_equal(&fresh, ObjectType::NOTES, &notes).await;
    assert_eq!(
        fresh
            .count_with_source_id(ObjectType::NOTES)
            .await
            .expect("count"),
        Some(2)
    );
    let fresh = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let rerun = upsert_all(&fresh, ObjectType::NOTES, &notes).await;
    assert!(
        rerun
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| !w.created)),
        "{rerun:?}"
    );
    assert_eq!(emulator.count("Notes"), 2);
    assert_read_back_equal(&fresh, ObjectType::NOTES, &notes).await;
}

/// Deletes contact `id` through the emulator's API, as another user of the org would.
async fn delete_contact(base_url: &str, id: &str) {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base_url}/oauth/v2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", ferry_sandbox::zoho::ZOHO_CLIENT_ID),
            ("client_secret", ferry_sandbox::zoho::ZOHO_CLIENT_SECRET),
            ("refresh_token", ferry_sandbox::zoho::ZOHO_REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let access = token["access_token"].as_str().expect("access_token");
    let response = http
        .delete(format!("{base_url}/crm/v8/Contacts/{id}"))
        .header("Authorization", format!("Zoho-oauthtoken {access}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 200, "the contact is deleted");
}

#[tokio::test]
async fn a_role_zoho_refuses_refuses_only_that_deal_and_the_run_goes_on() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    for object in [ObjectType::CONTACTS, ObjectType::DEALS] {
        sink.prepare(object).await.expect("prepare");
    }
    let contacts: Vec<Record> = (1..=2)
        .map(|i| {
            let mut c = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
            c.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
            c
        })
        .collect();
    let written = upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;
    let gone = written[1].result.as_ref().expect("written").sink_id.clone();
    let deal = |id: &str, contacts: &[&str]| {
        let mut d = Record::new(ObjectType::DEALS, id);
        d.set(field::NAME, Value::Text(format!("Deal {id}")));
        d.set(field::STAGE, Value::stage("Renewals", "Closed Won"));
        d.set(field::CONTACTS, links(ObjectType::CONTACTS, contacts));
        d
    };
    // The sink learns both contacts' Zoho ids on the first deal.
    let first = upsert_all(&sink, ObjectType::DEALS, &[deal("d-1", &["p-1", "p-2"])]).await;
    assert!(first[0].result.is_ok(), "{first:?}");
    // Another user deletes p-2 between the contact write and the next deals.
    delete_contact(&running.base_url, &gone).await;
    let deals = [deal("d-2", &["p-1", "p-2"]), deal("d-3", &["p-1"])];
    let outcomes = sink
        .upsert(ObjectType::DEALS, &deals)
        .await
        .expect("the run goes on");
    let refused = outcomes[0].result.as_ref().expect_err("d-2 is refused");
    assert_eq!(outcomes[0].source_id, "d-2");
    assert_eq!(refused.source_id, "d-2");
    assert!(refused.code.contains("INVALID_DATA"), "{refused:?}");
    assert!(refused.reason.contains("contacts"), "{refused:?}");
    assert!(!refused.reason.contains("p-2") && !refused.reason.contains(&gone));
    assert!(!refused.reason.contains("Person"), "no value: {refused:?}");
    assert!(outcomes[1].result.is_ok(), "d-3 is written: {outcomes:?}");
    // What is left: d-2's row, with the contact that could be linked.
    let saved = emulator
        .record_by_source_id("Deals", "d-2")
        .expect("d-2's row");
    let saved_id = saved["id"].as_str().expect("id").to_owned();
    assert_eq!(emulator.deal_contact_roles(&saved_id).len(), 1);

    // A rerun (a new sink: nothing cached) finds the contact gone before writing, and updates
    // nothing twice: the deal is refused as linking to a contact the sink does not hold.
    let rerun = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let again = rerun
        .upsert(ObjectType::DEALS, &deals)
        .await
        .expect("the rerun goes on");
    let refused = again[0].result.as_ref().expect_err("d-2 is refused again");
    assert_eq!(refused.code, "UNRESOLVED_CONTACTS");
    assert!(
        again[1].result.as_ref().is_ok_and(|w| !w.created),
        "{again:?}"
    );
    assert_eq!(emulator.count("Deals"), 3);
}

#[tokio::test]
async fn the_sinks_count_is_one_coql_count_or_pages_of_ids_where_aggregates_are_refused() {
    let (companies, _) = ferry_testkit::canonical_records(&generate(10_500, 5, &Mess::none()));
    assert_eq!(companies.len(), 2_100);
    for (coql_count, expected_requests) in [(true, 1), (false, 2)] {
        let (emulator, running) = start(Options {
            coql_count,
            ..Options::default()
        })
        .await;
        let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
        sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
        let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        let before = emulator.requests();
        let count = sink
            .count_with_source_id(ObjectType::COMPANIES)
            .await
            .expect("count");
        assert_eq!(
            count,
            Some(companies.len() as u64),
            "coql_count {coql_count}"
        );
        // 2,100 ids are two pages of 2,000; the aggregate needs one call (plus, where refused,
        // the refused one).
        assert_eq!(
            emulator.requests() - before,
            expected_requests + u64::from(!coql_count),
            "coql_count {coql_count}"
        );
    }
}
