//! The HubSpot sink against the sandbox's HubSpot emulator, over real HTTP on loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Once};

use ferry_core::{
    ConnectorError, Mode, ObjectType, Outcome, Progress, Projection, Record, RecordOutcome,
    RunOptions, SecretRef, Sink, Value, field, record_digest,
};
use ferry_hubspot::{HubspotConfig, HubspotSink, HubspotSource};
use ferry_sandbox::hubspot::{Emulator, FIRST_CONTACT_ID, Options};
use ferry_sandbox::seed::{Mess, generate};
use serde_json::{Value as Json, json};

const TOKEN_VAR: &str = "FERRY_HUBSPOT_SINK_TEST_TOKEN";

/// Sets the test token once, before any test does anything else.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe { std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN) };
    });
}

fn unlimited() -> Options {
    Options {
        burst_limit: None,
        ..Options::default()
    }
}

async fn start(options: Options) -> (ferry_sandbox::Running, Emulator) {
    let emulator = Emulator::new(options);
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator)
}

fn config(base_url: &str) -> HubspotConfig {
    HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        // The emulators run unlimited here; pacing at HubSpot's 100 per 10 s would only make
        // the tests slow (the limit itself is tested with the source).
        rate_limit_per_10s: Some(2_000),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    }
}

fn sink(running: &ferry_sandbox::Running) -> HubspotSink {
    HubspotSink::new(config(&running.base_url), "sink").expect("sink")
}

async fn post(base: &str, path: &str, body: Json) -> (u16, Json) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Json::Null))
}

async fn get(base: &str, path: &str) -> (u16, Json) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Json::Null))
}

use ferry_testkit::canonical_records as canonical;

/// Whether the contact opted out but has no email address, so its opt-out cannot be recorded.
fn opt_out_without_email(r: &Record) -> bool {
    r.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)) && r.get(field::EMAIL).is_none()
}

async fn upsert_all(
    sink: &HubspotSink,
    object: ObjectType,
    records: &[Record],
) -> Vec<RecordOutcome> {
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

async fn assert_read_back_equal(sink: &HubspotSink, object: ObjectType, records: &[Record]) {
    let projection = Projection::new(sink.capability(object).unwrap().stored);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut back = Vec::new();
    for chunk in ids.chunks(sink.capability(object).unwrap().read_back_size) {
        back.extend(sink.read_back(object, chunk).await.expect("read back"));
    }
    assert_eq!(
        back.len(),
        records.len(),
        "{object}: every record read back"
    );
    for record in records {
        let got = back
            .iter()
            .find(|r| r.source_id == record.source_id)
            .unwrap_or_else(|| panic!("{object} {} not read back", record.source_id));
        assert_eq!(
            record_digest(record, &projection),
            record_digest(got, &projection),
            "{object} digest differs:\n sent {record:?}\n read {got:?}"
        );
    }
}

#[tokio::test]
async fn prepare_creates_the_unique_property_once() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.check().await.expect("check");
    let requests = || emulator.request_counts().0;
    // Each property is looked up (404) and created once; contacts' prepare, which needs the
    // companies' property too for its references, and the second round ask nothing again.
    let mut spent = Vec::new();
    for _ in 0..2 {
        let before = requests();
        sink.prepare(ObjectType::COMPANIES)
            .await
            .expect("prepare companies");
        sink.prepare(ObjectType::CONTACTS)
            .await
            .expect("prepare contacts");
        spent.push(requests() - before);
    }
    assert_eq!(spent, [4, 0], "requests per round of prepares");
    // Another run (a new sink) checks each property it needs once: no create.
    let again = HubspotSink::new(config(&hs.base_url), "sink").expect("sink");
    let before = requests();
    again.prepare(ObjectType::CONTACTS).await.expect("prepare");
    assert_eq!(
        requests() - before,
        2,
        "contacts' and companies' properties"
    );
    for object in ["contacts", "companies"] {
        let (status, property) = get(
            &hs.base_url,
            &format!("/crm/v3/properties/{object}/ferry_source_id"),
        )
        .await;
        assert_eq!(status, 200, "{property}");
        assert_eq!(property["hasUniqueValue"], json!(true));
        assert_eq!(property["type"], json!("string"));
        assert_eq!(property["fieldType"], json!("text"));
        assert_eq!(property["label"], json!("Ferry source id"));
        assert!(
            property["description"]
                .as_str()
                .is_some_and(|d| d.contains("ferry"))
        );
    }
}

#[tokio::test]
async fn a_property_without_unique_values_is_a_setup_error() {
    init();
    let (hs, _) = start(unlimited()).await;
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/properties/companies",
        json!({"name": "legacy_id", "label": "Legacy id", "type": "string", "fieldType": "text",
               "groupName": "companyinformation"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let config = HubspotConfig {
        source_id_property: Some("legacy_id".into()),
        ..config(&hs.base_url)
    };
    let sink = HubspotSink::new(config, "sink").expect("sink");
    match sink.prepare(ObjectType::COMPANIES).await {
        Err(e @ ConnectorError::Setup { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("legacy_id")
                    && text.contains("unique")
                    && text.contains("sink.source_id_property"),
                "{text}"
            );
            assert!(e.is_operator_fault());
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[tokio::test]
async fn writes_links_opts_out_reads_back_equal_and_reruns_without_duplicates() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let (companies, contacts) = canonical(&generate(400, 11, &Mess::none()));
    assert!(
        contacts
            .iter()
            .any(|c| c.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
    );

    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| w.created))
    );
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies).await;

    let outcomes = upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;
    let mut written = Vec::new();
    for (record, outcome) in contacts.iter().zip(&outcomes) {
        match &outcome.result {
            Ok(w) => {
                assert!(w.created, "{}", record.source_id);
                written.push(record.clone());
            }
            Err(rejection) => {
                assert!(opt_out_without_email(record), "{rejection:?}");
                assert_eq!(rejection.code, "OPT_OUT_NOT_REPRESENTABLE");
            }
        }
    }
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &written).await;
    assert_eq!(emulator.count("companies"), Some(companies.len()));
    assert_eq!(
        emulator.count("contacts"),
        Some(written.len()),
        "refused opt-outs are not written"
    );

    // A rerun updates in place: nothing new, counts unchanged, digests still equal.
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let outcomes = upsert_all(&sink, object, records).await;
        for (record, outcome) in records.iter().zip(&outcomes) {
            match &outcome.result {
                Ok(w) => assert!(!w.created, "{object} {} created again", record.source_id),
                Err(r) => assert_eq!(r.code, "OPT_OUT_NOT_REPRESENTABLE"),
            }
        }
    }
    assert_eq!(emulator.count("companies"), Some(companies.len()));
    assert_eq!(emulator.count("contacts"), Some(written.len()));
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &written).await;

    // A contact that lost its company and a field is cleared; one that moved is relinked.
    let mut lost = written
        .iter()
        .find(|c| c.get(field::COMPANY).is_some())
        .expect("a contact with a company")
        .clone();
    lost.fields.remove(field::COMPANY);
    lost.fields.remove(field::FIRST_NAME);
    let mut moved = written
        .iter()
        .rfind(|c| c.get(field::COMPANY).is_some() && c.source_id != lost.source_id)
        .expect("another contact with a company")
        .clone();
    let other = companies
        .iter()
        .find(|c| Some(&Value::Reference(c.source_id.clone())) != moved.get(field::COMPANY))
        .expect("another company");
    moved.set(field::COMPANY, Value::Reference(other.source_id.clone()));
    let changed = [lost, moved];
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &changed)
        .await
        .expect("upsert");
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| !w.created))
    );
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &changed).await;
}

#[tokio::test]
async fn refused_records_become_rejections_without_values() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    company.set(field::NAME, Value::Text("Acme".into()));
    let mut bad_revenue = Record::new(ObjectType::COMPANIES, "co-2");
    bad_revenue.set(field::ANNUAL_REVENUE, Value::Text("lots-and-lots".into()));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &[company, bad_revenue])
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok());
    let rejection = outcomes[1].result.as_ref().expect_err("refused");
    assert_eq!(rejection.code, "INVALID_INTEGER");
    assert!(
        rejection.reason.contains("annualrevenue") && rejection.reason.contains("annual_revenue"),
        "{}",
        rejection.reason
    );
    assert!(
        !rejection.reason.contains("lots-and-lots"),
        "{}",
        rejection.reason
    );

    let contact = |id: &str, email: Option<&str>, company: Option<&str>, opt_out: bool| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::LAST_NAME, Value::Text("Doe".into()));
        if let Some(e) = email {
            r.set(field::EMAIL, Value::Text(e.into()));
        }
        if let Some(c) = company {
            r.set(field::COMPANY, Value::Reference(c.into()));
        }
        r.set(field::EMAIL_OPT_OUT, Value::Bool(opt_out));
        r
    };
    let records = [
        contact("p-ok", Some("ok@example.com"), Some("co-1"), true),
        contact(
            "p-bad-email",
            Some("jane.doe@@example"),
            Some("co-1"),
            false,
        ),
        contact(
            "p-no-company",
            Some("nc@example.com"),
            Some("co-missing"),
            false,
        ),
        contact("p-opt-out-no-email", None, None, true),
    ];
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    assert!(outcomes[0].result.as_ref().is_ok_and(|w| w.created));
    let codes: Vec<&str> = outcomes
        .iter()
        .map(|o| o.result.as_ref().map_or_else(|r| r.code.as_str(), |_| "OK"))
        .collect();
    assert_eq!(
        codes,
        [
            "OK",
            "INVALID_EMAIL",
            "COMPANY_NOT_FOUND",
            "OPT_OUT_NOT_REPRESENTABLE"
        ]
    );
    // Another record with a taken email address: HubSpot's 409 conflict, per record.
    let duplicate = contact("p-dup-email", Some("ok@example.com"), None, false);
    let outcome = sink
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&duplicate))
        .await
        .expect("upsert");
    let conflict = outcome[0].result.as_ref().expect_err("refused");
    assert_eq!(conflict.code, "CONFLICT");
    assert!(
        !conflict.reason.contains("ok@example.com"),
        "{}",
        conflict.reason
    );
    for (o, r) in outcomes.iter().zip(&records).skip(1) {
        let reason = &o.result.as_ref().expect_err("refused").reason;
        if let Some(email) = r.text(field::EMAIL) {
            assert!(!reason.contains(email), "{reason}");
        }
        assert!(!reason.contains("Doe"), "{reason}");
    }
    let bad_email = &outcomes[1].result.as_ref().expect_err("refused").reason;
    assert!(bad_email.contains("INVALID_EMAIL on email"), "{bad_email}");
    let no_company = &outcomes[2].result.as_ref().expect_err("refused").reason;
    assert!(
        no_company.contains("co-missing") && no_company.contains("written"),
        "{no_company}"
    );
    // The contact whose company could not be linked is written; the others not (an opt-out
    // HubSpot cannot hold is refused before the write).
    assert_eq!(emulator.count("contacts"), Some(2));
    let back = sink
        .read_back(
            ObjectType::CONTACTS,
            &["p-ok".into(), "p-no-company".into(), "p-bad-email".into()],
        )
        .await
        .expect("read back");
    assert_eq!(back.len(), 2);
    let ok = back.iter().find(|r| r.source_id == "p-ok").expect("p-ok");
    assert_eq!(ok.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
    assert_eq!(
        ok.get(field::COMPANY),
        Some(&Value::Reference("co-1".into()))
    );
    let orphan = back
        .iter()
        .find(|r| r.source_id == "p-no-company")
        .expect("p-no-company");
    assert_eq!(orphan.get(field::COMPANY), None);

    // The opt-out went through the communication-preferences API: HubSpot refuses it on the
    // CRM objects API.
    let (status, body) = post(
        &hs.base_url,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [{"id": "p-x", "idProperty": "ferry_source_id", "objectWriteTraceId": "0",
                           "properties": {"hs_email_optout": "true"}}]}),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        body["errors"][0]["errors"][0]["code"],
        json!("READ_ONLY_VALUE")
    );
}

#[tokio::test]
async fn an_opted_out_contact_without_an_address_is_refused_before_anything_is_written() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let contact = |id: &str, email: Option<&str>| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::LAST_NAME, Value::Text("Doe".into()));
        if let Some(e) = email {
            r.set(field::EMAIL, Value::Text(e.into()));
        }
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r
    };
    let records = [
        contact("p-none", None),
        contact("p-blank", Some("")),
        contact("p-ok", Some("ok@example.com")),
    ];
    for _ in 0..2 {
        let outcomes = sink
            .upsert(ObjectType::CONTACTS, &records)
            .await
            .expect("upsert");
        for o in &outcomes[..2] {
            let refused = o.result.as_ref().expect_err("refused");
            assert_eq!(refused.code, "OPT_OUT_NOT_REPRESENTABLE", "{refused:?}");
            assert!(
                refused.reason.contains("`email_opt_out`") && refused.reason.contains("hubspot"),
                "{}",
                refused.reason
            );
        }
        assert!(outcomes[2].result.is_ok(), "{:?}", outcomes[2]);
        // Refused, so never written: the sink holds one contact, and nothing counts the
        // refused ones again as records beyond those read back.
        assert_eq!(emulator.count("contacts"), Some(1));
        assert_eq!(
            sink.count_with_source_id(ObjectType::CONTACTS)
                .await
                .expect("count"),
            Some(1)
        );
    }
    let back = sink
        .read_back(
            ObjectType::CONTACTS,
            &["p-none".into(), "p-blank".into(), "p-ok".into()],
        )
        .await
        .expect("read back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));

    // The opt-out is recorded before the contact is written: an address HubSpot will not
    // unsubscribe (a top-level domain with a digit) leaves the contact unwritten.
    let refused = sink
        .upsert(
            ObjectType::CONTACTS,
            &[contact("p-odd", Some("kim@example.c0m"))],
        )
        .await
        .expect("upsert");
    let rejection = refused[0].result.as_ref().expect_err("refused");
    assert_eq!(rejection.code, "OPT_OUT_NOT_RECORDED", "{rejection:?}");
    assert!(
        rejection.reason.contains("not written") && !rejection.reason.contains("kim@"),
        "{}",
        rejection.reason
    );
    assert_eq!(emulator.count("contacts"), Some(1));
    // The engine refuses such records while reading, before any batch reaches the sink.
    assert!(
        sink.capability(ObjectType::CONTACTS)
            .unwrap()
            .opt_out_needs_email
    );
    assert!(
        !sink
            .capability(ObjectType::COMPANIES)
            .unwrap()
            .opt_out_needs_email
    );
}

/// SMS opt-outs are recorded per mobile number (E.164) before the contact is written, with
/// and without the batch scopes; read back for verification; a contact opted out of SMS with
/// no number HubSpot can take is refused, never written; nobody is subscribed.
#[tokio::test]
async fn sms_opt_outs_are_recorded_by_mobile_number_and_read_back() {
    init();
    for batch in [true, false] {
        let (hs, emulator) = start(Options {
            batch_subscriptions: batch,
            ..unlimited()
        })
        .await;
        let sink = sink(&hs);
        sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
        let records: Vec<Record> = (0..6)
            .map(|i| {
                let mut r = Record::new(ObjectType::CONTACTS, format!("s-{i}"));
                r.set(field::EMAIL, Value::Text(format!("sms{i}@example.com")));
                match i {
                    // National form, read in the contact's country.
                    0 => {
                        r.set(field::MOBILE_PHONE, Value::Text("0151 2345678 0".into()));
                        r.set(field::COUNTRY, Value::Text("Germany".into()));
                    }
                    // No number at all.
                    4 => {}
                    _ => r.set(
                        field::MOBILE_PHONE,
                        Value::Text(format!("+44 7700 90012{i}")),
                    ),
                }
                // Contact 1 is not opted out; contact 5 says so explicitly.
                match i {
                    1 => {}
                    5 => r.set(field::SMS_OPT_OUT, Value::Bool(false)),
                    _ => r.set(field::SMS_OPT_OUT, Value::Bool(true)),
                }
                r
            })
            .collect();
        let outcomes = sink
            .upsert(ObjectType::CONTACTS, &records)
            .await
            .expect("upsert");
        for o in &outcomes {
            match (o.source_id.as_str(), &o.result) {
                ("s-4", Err(refused)) => {
                    assert_eq!(refused.code, "OPT_OUT_NOT_RECORDED", "{refused:?}");
                    assert!(
                        refused.reason.contains("`sms_opt_out`")
                            && refused.reason.contains("`mobile_phone`"),
                        "{refused:?}"
                    );
                }
                (_, Ok(_)) if o.source_id != "s-4" => {}
                other => panic!("batch {batch}: {other:?}"),
            }
        }
        assert_eq!(emulator.count("contacts"), Some(5), "s-4 is never written");
        let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
        let back = sink
            .read_back(ObjectType::CONTACTS, &ids)
            .await
            .expect("read back");
        assert_eq!(back.len(), 5);
        for r in &back {
            let expected = ["s-0", "s-2", "s-3"].contains(&r.source_id.as_str());
            assert_eq!(
                r.get(field::SMS_OPT_OUT),
                expected.then_some(&Value::Bool(true)),
                "batch {batch}: {}",
                r.source_id
            );
        }
        // Through the API: the numbers, in E.164, are unsubscribed from all text messages.
        let read =
            "/communication-preferences/v4/statuses/%2B4915123456780/unsubscribe-all?channel=SMS";
        let (status, body) = get(&hs.base_url, read).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["results"][0]["status"],
            json!("NOT_SUBSCRIBED"),
            "{body}"
        );
        let read =
            "/communication-preferences/v4/statuses/%2B447700900121/unsubscribe-all?channel=SMS";
        assert_eq!(get(&hs.base_url, read).await.1["results"], json!([]));
    }
}

#[tokio::test]
async fn opt_outs_go_one_by_one_without_the_batch_scopes() {
    init();
    let (hs, emulator) = start(Options {
        batch_subscriptions: false,
        ..unlimited()
    })
    .await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let records: Vec<Record> = (0..30)
        .map(|i| {
            let mut r = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
            r.set(
                field::EMAIL,
                Value::Text(format!("person{i}+tag@example.com")),
            );
            r.set(field::EMAIL_OPT_OUT, Value::Bool(i != 1));
            r
        })
        .collect();
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    let back = sink
        .read_back(ObjectType::CONTACTS, &ids)
        .await
        .expect("read back");
    assert_eq!(back.len(), records.len());
    for r in back {
        let opted_out = r.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true));
        assert_eq!(
            opted_out,
            r.source_id != "p-1",
            "{}: never subscribed, never left out",
            r.source_id
        );
    }
    // A rerun finds the addresses unsubscribed already (one batch read), instead of sending
    // one request per address again.
    let (before, _) = emulator.request_counts();
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    let (after, _) = emulator.request_counts();
    assert!(
        after - before < 10,
        "{} requests to rerun 29 opt-outs",
        after - before
    );
}

#[tokio::test]
async fn migration_from_one_hubspot_account_to_another_is_verified() {
    init();
    let (source_hs, source_emulator) = start(unlimited()).await;
    let data = generate(450, 23, &Mess::none());
    source_emulator.seed(&data);
    // HubSpot records an opt-out per address: a contact without one cannot carry it over, and
    // that rejection is tested above. Here every opt-out has an address.
    for c in data
        .contacts
        .iter()
        .filter(|c| c.email_opt_out && c.email.is_none())
    {
        let id = (FIRST_CONTACT_ID + c.key as u64).to_string();
        assert!(source_emulator.put_raw("contacts", &id, "hs_email_optout", "false"));
    }
    let (sink_hs, sink_emulator) = start(unlimited()).await;
    let source = HubspotSource::new(config(&source_hs.base_url), "source").expect("source");
    let sink = sink(&sink_hs);
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = ferry_core::run(
        Mode::Migrate,
        Arc::new(source),
        Arc::new(sink),
        &options,
        progress,
    )
    .await;
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "{:?} {:?}",
        report.error,
        report.failures
    );
    assert_eq!(sink_emulator.count("companies"), Some(data.companies.len()));
    assert_eq!(sink_emulator.count("contacts"), Some(data.contacts.len()));
    for object in &report.objects {
        assert_eq!(object.failed, 0);
        assert_eq!(object.verified, object.written);
    }
}

#[tokio::test]
async fn a_migration_refuses_email_less_opt_outs_once_and_finds_nothing_extra() {
    init();
    let (source_hs, source_emulator) = start(unlimited()).await;
    let data = generate(
        450,
        23,
        &Mess {
            opt_out_without_email: true,
            ..Mess::none()
        },
    );
    let refused: Vec<String> = data
        .contacts
        .iter()
        .filter(|c| c.email_opt_out && c.email.is_none())
        .map(|c| (FIRST_CONTACT_ID + c.key as u64).to_string())
        .collect();
    assert!(!refused.is_empty(), "the data holds email-less opt-outs");
    source_emulator.seed(&data);
    let (sink_hs, sink_emulator) = start(unlimited()).await;
    let source = HubspotSource::new(config(&source_hs.base_url), "source").expect("source");
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = ferry_core::run(
        Mode::Migrate,
        Arc::new(source),
        Arc::new(sink(&sink_hs)),
        &options,
        progress,
    )
    .await;
    // Refused before the write, so counted once, as failed: never also "extra in sink".
    assert_eq!(
        report.outcome,
        Outcome::RecordsFailed,
        "{:?} {:?}",
        report.error,
        report.failures
    );
    let mut failed: Vec<&str> = report
        .failures
        .iter()
        .map(|f| {
            assert_eq!(f.code, "OPT_OUT_NOT_REPRESENTABLE", "{f:?}");
            f.source_id.as_str()
        })
        .collect();
    failed.sort_unstable();
    let mut expected: Vec<&str> = refused.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(failed, expected);
    let contacts = report
        .objects
        .iter()
        .find(|o| o.object == Some(ObjectType::CONTACTS))
        .expect("contacts");
    assert_eq!(contacts.failed, refused.len() as u64);
    assert_eq!(contacts.extra_in_sink, 0);
    assert_eq!(contacts.mismatched, 0);
    assert!(contacts.digests_match);
    assert_eq!(
        sink_emulator.count("contacts"),
        Some(data.contacts.len() - refused.len())
    );
}

#[tokio::test]
async fn a_primary_company_beyond_the_first_association_page_is_read_back() {
    init();
    let (hs, _emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    // 600 companies: one answer lists 500 associations, in id order, so the last company
    // written (the highest id) is on the second page.
    let companies: Vec<Record> = (0..600)
        .map(|i| {
            let mut c = Record::new(ObjectType::COMPANIES, format!("co-{i}"));
            c.set(field::NAME, Value::Text(format!("Company {i}")));
            c
        })
        .collect();
    let written = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    let hubspot_ids: Vec<String> = written
        .iter()
        .map(|o| o.result.as_ref().expect("company written").sink_id.clone())
        .collect();
    let mut contact = Record::new(ObjectType::CONTACTS, "p-1");
    contact.set(field::EMAIL, Value::Text("p1@example.com".into()));
    contact.set(field::LAST_NAME, Value::Text("Ng".into()));
    contact.set(field::COMPANY, Value::Reference("co-599".into()));
    let outcome = sink
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&contact))
        .await
        .expect("upsert");
    let contact_id = outcome[0]
        .result
        .as_ref()
        .expect("contact written")
        .sink_id
        .clone();
    // Unlabelled associations to the 599 others, as a busy account gathers them.
    let inputs: Vec<Json> = hubspot_ids[..599]
        .iter()
        .map(|c| json!({"from": {"id": contact_id}, "to": {"id": c}}))
        .collect();
    let (status, body) = post(
        &hs.base_url,
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({ "inputs": inputs }),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (_, page) = post(
        &hs.base_url,
        "/crm/v4/associations/contacts/companies/batch/read",
        json!({"inputs": [{"id": contact_id}]}),
    )
    .await;
    assert_eq!(page["results"][0]["to"].as_array().map(Vec::len), Some(500));
    assert!(
        page["results"][0]["paging"]["next"]["after"].is_string(),
        "{page}"
    );

    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[contact]).await;
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

fn sorted_links(value: Option<&Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = match value {
        Some(Value::Links(links)) => links
            .iter()
            .map(|l| (l.object.to_string(), l.id.clone()))
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out
}

#[tokio::test]
async fn deal_and_note_links_follow_the_source_set_on_every_upsert() {
    init();
    let (hs, _) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.prepare(ObjectType::NOTES)
        .await
        .expect("prepare notes");
    sink.prepare(ObjectType::DEALS)
        .await
        .expect("prepare deals");
    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    company.set(field::NAME, Value::Text("Acme".into()));
    assert!(
        upsert_all(&sink, ObjectType::COMPANIES, &[company]).await[0]
            .result
            .is_ok()
    );
    let people: Vec<Record> = (1..=5)
        .map(|i| {
            let mut p = Record::new(ObjectType::CONTACTS, format!("p-{i}"));
            p.set(field::EMAIL, Value::Text(format!("p{i}@example.com")));
            p
        })
        .collect();
    let written = upsert_all(&sink, ObjectType::CONTACTS, &people).await;
    assert!(written.iter().all(|o| o.result.is_ok()), "{written:?}");

    let stage = Value::stage("default", "appointmentscheduled");
    let mut deal = Record::new(ObjectType::DEALS, "d-1");
    deal.set(field::NAME, Value::Text("Big deal".into()));
    deal.set(field::STAGE, stage);
    deal.set(field::COMPANY, Value::Reference("co-1".into()));
    deal.set(
        field::CONTACTS,
        links(ObjectType::CONTACTS, &["p-1", "p-2", "p-3", "p-4", "p-5"]),
    );
    let outcome = &upsert_all(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await[0];
    assert!(matches!(&outcome.result, Ok(w) if w.created), "{outcome:?}");
    assert_read_back_equal(&sink, ObjectType::DEALS, std::slice::from_ref(&deal)).await;

    // The source now holds two contacts, one of them not in HubSpot, and no company: the deal
    // is written with the one, refused naming the other, and loses the rest.
    let mut fewer = deal.clone();
    fewer.fields.remove(field::COMPANY);
    fewer.set(
        field::CONTACTS,
        links(ObjectType::CONTACTS, &["p-2", "p-9"]),
    );
    let outcome = &upsert_all(&sink, ObjectType::DEALS, std::slice::from_ref(&fewer)).await[0];
    match &outcome.result {
        Err(refused) => {
            assert_eq!(refused.code, "CONTACT_NOT_FOUND");
            assert!(refused.reason.contains("p-9"), "{}", refused.reason);
        }
        other => panic!("expected CONTACT_NOT_FOUND, got {other:?}"),
    }
    let back = sink
        .read_back(ObjectType::DEALS, &["d-1".to_owned()])
        .await
        .expect("read back");
    assert_eq!(
        sorted_links(back[0].get(field::CONTACTS)),
        vec![("contacts".to_owned(), "p-2".to_owned())]
    );
    assert_eq!(back[0].get(field::COMPANY), None);

    // A note on a deal, a contact and a company holds all three, then what the source keeps.
    let mut note = Record::new(ObjectType::NOTES, "n-1");
    note.set(field::BODY, Value::Text("<p>Called <b>Zoë</b></p>".into()));
    note.set(field::TIMESTAMP, Value::Timestamp(1_700_000_000_123));
    let mut parents = links(ObjectType::DEALS, &["d-1"]);
    if let (Value::Links(all), Value::Links(more)) =
        (&mut parents, links(ObjectType::CONTACTS, &["p-1"]))
    {
        all.extend(more);
        all.push(ferry_core::model::Link {
            object: ObjectType::COMPANIES,
            id: "co-1".into(),
        });
    }
    note.set(field::PARENTS, parents);
    let outcome = &upsert_all(&sink, ObjectType::NOTES, std::slice::from_ref(&note)).await[0];
    assert!(outcome.result.is_ok(), "{outcome:?}");
    assert_read_back_equal(&sink, ObjectType::NOTES, std::slice::from_ref(&note)).await;
    let mut moved = note.clone();
    moved.set(field::PARENTS, links(ObjectType::CONTACTS, &["p-2"]));
    let outcome = &upsert_all(&sink, ObjectType::NOTES, std::slice::from_ref(&moved)).await[0];
    assert!(
        matches!(&outcome.result, Ok(w) if !w.created),
        "{outcome:?}"
    );
    assert_read_back_equal(&sink, ObjectType::NOTES, std::slice::from_ref(&moved)).await;
    let back = sink
        .read_back(ObjectType::NOTES, &["n-1".to_owned()])
        .await
        .expect("read back");
    assert_eq!(
        sorted_links(back[0].get(field::PARENTS)),
        vec![("contacts".to_owned(), "p-2".to_owned())]
    );

    let limits = sink.capability(ObjectType::NOTES).expect("notes").limits;
    assert_eq!(
        limits,
        vec![ferry_core::FieldLimit::max_chars(field::BODY, 65_536)]
    );
    let deals = sink.capability(ObjectType::DEALS).expect("deals");
    assert_eq!(deals.required, vec![field::NAME, field::STAGE]);
    assert!(!deals.stored.iter().any(|f| f == field::STATUS));
}

/// The sink lists the source ids its records carry (never a record made in HubSpot, which has
/// none) and archives by source id only: found ones are archived (listed with
/// `archived=true`), unknown ones are absent, a record made in HubSpot stays.
#[tokio::test]
async fn lists_source_ids_and_archives_only_records_carrying_one() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    let object = ObjectType::COMPANIES;
    sink.prepare(object).await.expect("prepare");
    let records: Vec<Record> = (0..130)
        .map(|i| {
            let mut r = Record::new(object, format!("sf-{i:03}"));
            r.set(field::NAME, Value::Text(format!("Company {i}")));
            r
        })
        .collect();
    upsert_all(&sink, object, &records).await;
    let (status, made) = post(
        &hs.base_url,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Made in HubSpot"}}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        sink.remove(object, &[], ferry_core::Removal::Archive)
            .await
            .expect("nothing to remove"),
        Vec::new()
    );

    let (mut listed, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = sink
            .source_ids_page(object, cursor.as_deref())
            .await
            .expect("ids");
        pages += 1;
        listed.extend(page.ids);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    listed.sort();
    let expected: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    assert_eq!(listed, expected, "only ferry's records, each once");
    assert_eq!(pages, 2, "100 a page");

    let ids = ["sf-004".to_owned(), "nope".to_owned(), "sf-120".to_owned()];
    let outcomes = sink
        .remove(object, &ids, ferry_core::Removal::Delete)
        .await
        .expect("remove");
    let got: Vec<(&str, ferry_core::Removed)> = outcomes
        .iter()
        .map(|o| (o.source_id.as_str(), o.result.clone().expect("no refusal")))
        .collect();
    assert_eq!(
        got,
        [
            ("sf-004", ferry_core::Removed::Archived),
            ("nope", ferry_core::Removed::Absent),
            ("sf-120", ferry_core::Removed::Archived),
        ]
    );
    assert_eq!(emulator.count("companies"), Some(129), "130 + 1 made - 2");
    let (_, archived) = get(&hs.base_url, "/crm/v3/objects/companies?archived=true").await;
    assert_eq!(
        archived["results"].as_array().map(Vec::len),
        Some(2),
        "{archived}"
    );
    let back = sink.read_back(object, &ids).await.expect("read back");
    assert!(
        back.is_empty(),
        "archived records are not found by source id"
    );
    // Again: nothing left to archive under those ids.
    let again = sink
        .remove(object, &ids, ferry_core::Removal::Archive)
        .await
        .expect("remove");
    assert!(
        again
            .iter()
            .all(|o| o.result == Ok(ferry_core::Removed::Absent))
    );
}

/// Without the SMS add-on the account has no SMS subscription type (the survey reads the
/// types): it cannot hold an SMS opt-out, so the capability stores none, a contact opted out
/// of SMS is refused unwritten (the engine's consent guard refuses such a run before), and
/// read-back reads no SMS status.
#[tokio::test]
async fn an_account_without_the_sms_addon_holds_no_sms_opt_out() {
    init();
    for sms_addon in [false, true] {
        let (hs, emulator) = start(Options {
            sms_addon,
            ..unlimited()
        })
        .await;
        let sink = sink(&hs);
        sink.survey(ObjectType::CONTACTS).await.expect("survey");
        sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
        let stored = sink.capability(ObjectType::CONTACTS).unwrap().stored;
        assert_eq!(
            stored.iter().any(|f| f == field::SMS_OPT_OUT),
            sms_addon,
            "{stored:?}"
        );
        assert!(stored.iter().any(|f| f == field::EMAIL_OPT_OUT));
        // `ferry plan`'s estimate: per contact, an upsert per 100; per batch of 500, the
        // company association and the email unsubscribe call (and SMS's, with the add-on);
        // per read-back of 200, the search, the company association read (and the SMS status
        // read, with the add-on).
        let per_contact = sink.requests_per_record(ObjectType::CONTACTS).unwrap();
        let sms = if sms_addon { 1.0 } else { 0.0 };
        let expected = 0.01 + (2.0 + sms) / 500.0 + (2.0 + sms) / 200.0;
        assert!((per_contact - expected).abs() < 1e-9, "{per_contact}");
        let per_company = sink.requests_per_record(ObjectType::COMPANIES).unwrap();
        assert!((per_company - 0.015).abs() < 1e-9, "{per_company}");
        let records: Vec<Record> = (0..4)
            .map(|i| {
                let mut r = Record::new(ObjectType::CONTACTS, format!("n-{i}"));
                r.set(field::EMAIL, Value::Text(format!("n{i}@example.com")));
                r.set(
                    field::MOBILE_PHONE,
                    Value::Text(format!("+44 7700 90013{i}")),
                );
                r.set(field::SMS_OPT_OUT, Value::Bool(i % 2 == 0));
                r
            })
            .collect();
        let outcomes = sink
            .upsert(ObjectType::CONTACTS, &records)
            .await
            .expect("upsert");
        for (i, o) in outcomes.iter().enumerate() {
            match &o.result {
                Err(refused) if !sms_addon && i % 2 == 0 => {
                    assert_eq!(refused.code, "OPT_OUT_NOT_RECORDED", "{refused:?}");
                    assert!(
                        refused.reason.contains("no SMS subscription type"),
                        "{refused:?}"
                    );
                }
                Ok(_) if sms_addon || i % 2 == 1 => {}
                other => panic!("add-on {sms_addon}, n-{i}: {other:?}"),
            }
        }
        let written = if sms_addon { 4 } else { 2 };
        assert_eq!(emulator.count("contacts"), Some(written));
        let counted = || sink.http_stats().expect("stats").report().budget_cost;
        let before = counted();
        // As the engine does: only what was accepted is read back.
        let ids: Vec<String> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| o.source_id.clone())
            .collect();
        let back = sink
            .read_back(ObjectType::CONTACTS, &ids)
            .await
            .expect("read back");
        assert_eq!(back.len(), written);
        // A search and an association read (exempt), and with the add-on one batch read of
        // SMS statuses (counted).
        assert_eq!(counted() - before, u64::from(sms_addon));
    }
}

/// A batch of 500 contacts goes in five upsert calls of 100 and one unsubscribe call for all
/// of its opt-outs; a record HubSpot refuses in one of the upsert calls is refused alone.
#[tokio::test]
async fn a_batch_of_500_records_its_opt_outs_in_one_call_and_refuses_only_what_hubspot_refuses() {
    init();
    let (hs, emulator) = start(unlimited()).await;
    let sink = sink(&hs);
    sink.survey(ObjectType::CONTACTS).await.expect("survey");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    assert_eq!(
        sink.capability(ObjectType::CONTACTS).unwrap().batch_size,
        500
    );
    let records: Vec<Record> = (0..500)
        .map(|i| {
            let mut r = Record::new(ObjectType::CONTACTS, format!("b-{i}"));
            let email = if i == 250 {
                "not an address".to_owned()
            } else {
                format!("b{i}@example.com")
            };
            r.set(field::EMAIL, Value::Text(email));
            r.set(field::EMAIL_OPT_OUT, Value::Bool(i % 7 == 0 && i != 250));
            r
        })
        .collect();
    let before = sink.http_stats().expect("stats").report();
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let after = sink.http_stats().expect("stats").report();
    let refused: Vec<&RecordOutcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].source_id, "b-250");
    assert_eq!(emulator.count("contacts"), Some(499));
    assert_eq!(
        after.requests - before.requests,
        6,
        "five upserts of 100 and one unsubscribe call for the batch's 72 opt-outs"
    );
    let read = "/communication-preferences/v4/statuses/b497%40example.com/unsubscribe-all";
    assert_eq!(
        get(&hs.base_url, read).await.1["results"][0]["status"],
        json!("NOT_SUBSCRIBED")
    );
}
