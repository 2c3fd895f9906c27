//! The Salesforce sink against the sandbox emulator over real HTTP on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::{
    ConnectorError, ObjectType, Projection, Record, SecretRef, Sink, Value, field, record_digest,
};
use ferry_salesforce::{SalesforceConfig, SalesforceSink};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce::{Emulator, Options};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;
use serde_json::json;

const BAD_SECRET: &str = "wrong-secret-d41d8cd98f";

fn in_memory(secret: &str) -> SecretRef {
    SecretRef::in_memory(SecretString::from(secret.to_owned()))
}

async fn start(options: Options) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(options);
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

/// A sink config for the emulator at `login_url` with its credentials, plus `extra` settings.
fn config(login_url: &str, extra: serde_json::Value) -> SalesforceConfig {
    let mut c = json!({
        "login_url": login_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
        "max_retries": 10,
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    let mut config: SalesforceConfig = serde_json::from_value(c).expect("config");
    config.client_id = in_memory(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = in_memory(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    config
}

fn sink(running: &ferry_sandbox::Running) -> SalesforceSink {
    SalesforceSink::new(config(&running.base_url, json!({})), "sink").expect("sink")
}

use ferry_testkit::canonical_records as canonical;

async fn upsert_all(
    sink: &SalesforceSink,
    object: ObjectType,
    records: &[Record],
) -> Vec<ferry_core::RecordOutcome> {
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

async fn assert_read_back_equal(sink: &SalesforceSink, object: ObjectType, records: &[Record]) {
    // These records name no owner, so the org's default owner applies; the engine leaves the
    // owner out of a read-back's digest then (`Directory::canonical_back`).
    let mut stored = sink.capability(object).unwrap().stored;
    stored.retain(|f| f != ferry_core::field::OWNER);
    let projection = Projection::new(stored);
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
    let mut before: Vec<_> = records
        .iter()
        .map(|r| (r.source_id.clone(), record_digest(r, &projection)))
        .collect();
    let mut after: Vec<_> = back
        .iter()
        .map(|r| (r.source_id.clone(), record_digest(r, &projection)))
        .collect();
    before.sort();
    after.sort();
    for (b, a) in before.iter().zip(&after) {
        if b != a {
            let orig = records.iter().find(|r| r.source_id == b.0);
            let got = back.iter().find(|r| r.source_id == a.0);
            panic!("{object} digest differs:\n before {orig:?}\n after  {got:?}");
        }
    }
}

#[tokio::test]
async fn write_read_back_and_rerun_without_duplicates() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    sink.check().await.expect("check");
    let (companies, contacts) = canonical(&generate(600, 11, &Mess::none()));
    sink.prepare(ObjectType::COMPANIES)
        .await
        .expect("prepare companies");
    sink.prepare(ObjectType::CONTACTS)
        .await
        .expect("prepare contacts");

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
    assert_eq!(emulator.count("Account"), companies.len());
    assert_eq!(emulator.count("Contact"), contacts.len());
    let linked = contacts
        .iter()
        .find(|c| c.get(field::COMPANY).is_some())
        .expect("a contact with a company");
    let stored = emulator
        .record_by_external_id("Contact", &linked.source_id)
        .expect("stored");
    assert!(
        stored["AccountId"]
            .as_str()
            .is_some_and(|id| id.starts_with("001")),
        "association resolved"
    );

    // A rerun updates in place: nothing created, counts unchanged, digests still equal.
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let outcomes = upsert_all(&sink, object, records).await;
        assert!(
            outcomes
                .iter()
                .all(|o| o.result.as_ref().is_ok_and(|w| !w.created)),
            "{object}: none created"
        );
    }
    assert_eq!(emulator.count("Account"), companies.len());
    assert_eq!(emulator.count("Contact"), contacts.len());

    // A contact that lost its company and a field is cleared on the next run.
    let mut changed = linked.clone();
    changed.fields.remove(field::COMPANY);
    changed.fields.remove(field::FIRST_NAME);
    sink.upsert(ObjectType::CONTACTS, std::slice::from_ref(&changed))
        .await
        .expect("upsert");
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[changed]).await;
    assert_eq!(sink.token_fetches(), 1);
}

#[tokio::test]
async fn refused_records_become_rejections_without_values() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
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
    let rejection = |i: usize| outcomes[i].result.clone().expect_err("rejected");
    assert_eq!(rejection(0).code, "REQUIRED_FIELD_MISSING");
    assert_eq!(
        rejection(0).reason,
        "Salesforce refused field LastName (last_name)"
    );
    assert_eq!(rejection(1).code, "INVALID_EMAIL_ADDRESS");
    assert!(rejection(1).reason.contains("Email (email)"));
    assert_eq!(rejection(2).code, "STRING_TOO_LONG");
    assert!(rejection(2).reason.contains("Title (job_title)"));
    assert_eq!(rejection(3).code, "INVALID_FIELD");
    assert!(
        rejection(3).reason.contains("company"),
        "{}",
        rejection(3).reason
    );
    for (i, record) in records.iter().enumerate().take(4) {
        let r = rejection(i);
        assert_eq!(r.source_id, record.source_id);
        for value in [
            "lorelai",
            "Senior Vice",
            "co-missing-77",
            "Gilmore",
            "Danes",
        ] {
            assert!(
                !r.reason.contains(value) && !r.code.contains(value),
                "{r:?} quotes a value"
            );
        }
    }
    assert!(outcomes[4].result.is_ok());
    assert_eq!(emulator.count("Contact"), 1);
    // Ids with quotes and backslashes survive SOQL escaping on read-back.
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[weird]).await;
}

#[tokio::test]
async fn missing_external_id_field_is_a_setup_error_with_instructions() {
    let (_emulator, running) = start(Options {
        external_id_fields: false,
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    let err = sink
        .prepare(ObjectType::CONTACTS)
        .await
        .expect_err("no external id field");
    assert!(matches!(err, ConnectorError::Setup { .. }), "{err:?}");
    let text = err.to_string();
    for needle in [
        "Object Manager → Contact",
        "Fields & Relationships",
        "Length 255",
        "Unique",
        "External ID",
        "Ferry_Source_Id",
        "sink.external_id_field",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
    // Pointing at a field that exists but is not an external id says so.
    let sink = SalesforceSink::new(
        config(&running.base_url, json!({"external_id_field": "Title"})),
        "sink",
    )
    .unwrap();
    let err = sink
        .prepare(ObjectType::CONTACTS)
        .await
        .expect_err("not external");
    assert!(err.to_string().contains("not an External ID"), "{err}");
}

#[tokio::test]
async fn bad_secret_is_an_auth_error_without_the_secret() {
    let (_emulator, running) = start(Options::default()).await;
    let mut config = config(&running.base_url, json!({}));
    config.client_secret = in_memory(BAD_SECRET);
    let sink = SalesforceSink::new(config, "sink").expect("sink");
    let err = sink.check().await.expect_err("bad secret");
    assert!(
        matches!(err, ConnectorError::Auth { status: 400, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("salesforce")
            && text.contains("/services/oauth2/token")
            && text.contains("invalid_client"),
        "{text}"
    );
    // Named as method and path like every endpoint, never the URL (which may hold userinfo).
    assert!(
        text.contains("salesforce: POST /services/oauth2/token: ")
            && !text.contains(running.base_url.trim_end_matches('/')),
        "{text}"
    );
    assert!(!text.contains(BAD_SECRET) && !format!("{err:?}").contains(BAD_SECRET));
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let mut c = config("http://127.0.0.1:1", json!({}));
    c.client_id = SecretRef::env("FERRY_SF_TEST_SURELY_UNSET_VAR");
    let err = SalesforceSink::new(c, "sink")
        .err()
        .expect("unset variable");
    assert!(
        matches!(&err, ConnectorError::Config { key, .. } if key == "sink.client_id"),
        "{err:?}"
    );
    let c = config("http://crm.example.com", json!({}));
    let err = SalesforceSink::new(c, "sink").err().expect("plain http");
    assert!(
        matches!(&err, ConnectorError::Config { key, .. } if key == "sink.login_url"),
        "{err:?}"
    );
}

#[tokio::test]
async fn throttling_storm_is_retried_and_nothing_is_lost() {
    let faults = Faults {
        throttle_every: Some(3),
        retry_after_secs: None,
        ..Faults::default()
    };
    let (emulator, running) = start(Options {
        faults,
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    let (companies, _) = canonical(&generate(2_000, 5, &Mess::none()));
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    assert_eq!(emulator.count("Account"), companies.len());
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies).await;
    let (_, retries, throttled) = sink
        .http_stats()
        .expect("salesforce counts requests")
        .snapshot();
    assert!(
        throttled > 0 && retries >= throttled,
        "throttled {throttled}, retries {retries}"
    );
}

#[tokio::test]
async fn expired_session_is_renewed_once() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    sink.check().await.expect("check");
    emulator.expire_tokens();
    let mut r = Record::new(ObjectType::COMPANIES, "co-1");
    r.set(field::NAME, Value::Text("Dragonfly Inn".into()));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &[r])
        .await
        .expect("upsert after expiry");
    assert!(outcomes[0].result.is_ok());
    assert_eq!(sink.token_fetches(), 2);

    // With a short token lifetime, a long run keeps renewing.
    let (_emulator, running) = start(Options {
        token_lifetime: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let sink = self::sink(&running);
    sink.check().await.expect("check");
    tokio::time::sleep(Duration::from_millis(150)).await;
    sink.check().await.expect("check after expiry");
    assert_eq!(sink.token_fetches(), 2);
}

#[tokio::test]
async fn exhausted_daily_allocation_is_final() {
    let (_emulator, running) = start(Options {
        daily_api_limit: 2,
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    sink.check().await.expect("first call");
    sink.prepare(ObjectType::COMPANIES)
        .await
        .expect("second call");
    let mut r = Record::new(ObjectType::COMPANIES, "co-1");
    r.set(field::NAME, Value::Text("Luke's Diner".into()));
    let err = sink
        .upsert(ObjectType::COMPANIES, &[r])
        .await
        .expect_err("over the allocation");
    assert!(
        matches!(err, ConnectorError::Status { status: 403, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("REQUEST_LIMIT_EXCEEDED")
            && err.to_string().contains("retrying cannot help")
    );
    let (requests, retries, _) = sink
        .http_stats()
        .expect("salesforce counts requests")
        .snapshot();
    assert_eq!(
        (requests, retries),
        (4, 0),
        "token, check, describe, one refused upsert: no retries"
    );
}

/// Lists the source ids the org's records carry and deletes by them only: an unknown id is
/// absent, and an account whose contacts would go with it is refused, never deleted.
#[tokio::test]
async fn lists_source_ids_and_deletes_only_what_would_take_nothing_else_with_it() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        sink.prepare(object).await.expect("prepare");
    }
    let companies: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = Record::new(ObjectType::COMPANIES, format!("c{i}"));
            r.set(field::NAME, Value::Text(format!("Company {i}")));
            r
        })
        .collect();
    let contacts: Vec<Record> = (0..2)
        .map(|i| {
            let mut r = Record::new(ObjectType::CONTACTS, format!("p{i}"));
            r.set(field::LAST_NAME, Value::Text(format!("Person {i}")));
            r.set(field::COMPANY, Value::Reference(format!("c{i}")));
            r
        })
        .collect();
    upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;
    let listed = sink
        .source_ids_page(ObjectType::COMPANIES, None)
        .await
        .expect("ids");
    assert_eq!((listed.ids.len(), listed.next), (3, None));
    assert_eq!(
        sink.remove(ObjectType::CONTACTS, &[], ferry_core::Removal::Delete)
            .await
            .expect("nothing"),
        Vec::new()
    );

    let removed = |outcomes: Vec<ferry_core::RemoveOutcome>| -> Vec<(String, String)> {
        outcomes
            .into_iter()
            .map(|o| {
                let what = match o.result {
                    Ok(r) => format!("{r:?}"),
                    Err(e) => e.code,
                };
                (o.source_id, what)
            })
            .collect()
    };
    let ids = ["p1".to_owned(), "nope".to_owned()];
    let got = removed(
        sink.remove(ObjectType::CONTACTS, &ids, ferry_core::Removal::Archive)
            .await
            .expect("remove"),
    );
    assert_eq!(
        got,
        [
            ("p1".into(), "Deleted".into()),
            ("nope".into(), "Absent".into())
        ]
    );
    assert_eq!(emulator.count("Contact"), 1);
    let ids: Vec<String> = companies.iter().map(|c| c.source_id.clone()).collect();
    let got = removed(
        sink.remove(ObjectType::COMPANIES, &ids, ferry_core::Removal::Delete)
            .await
            .expect("remove"),
    );
    assert_eq!(
        got,
        [
            ("c0".into(), "WOULD_CASCADE".into()),
            ("c1".into(), "Deleted".into()),
            ("c2".into(), "Deleted".into()),
        ]
    );
    assert_eq!(
        (emulator.count("Account"), emulator.count("Contact")),
        (1, 1),
        "the contact still in the source stays, and its account with it"
    );
    let listed = sink
        .source_ids_page(ObjectType::CONTACTS, None)
        .await
        .expect("ids");
    assert_eq!(listed.ids, ["p0"]);
}
