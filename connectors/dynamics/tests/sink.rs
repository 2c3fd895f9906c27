//! The Dataverse sink against the sandbox emulator over real HTTP on loopback.

mod common;

use std::time::Duration;

use common::{assert_read_back_equal, config, in_memory, start, upsert_all};
use ferry_core::{ConnectorError, ObjectType, Record, Sink, Value, field};
use ferry_dynamics::DynamicsSink;
use ferry_sandbox::dynamics::Options;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, generate};

fn sink(running: &ferry_sandbox::Running) -> DynamicsSink {
    DynamicsSink::new(config(&running.base_url), "sink").expect("sink")
}

#[tokio::test]
async fn write_read_back_and_rerun_without_duplicates() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    sink.check().await.expect("check");
    let (companies, contacts) = ferry_testkit::canonical_records(&generate(300, 11, &Mess::none()));
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
            .filter(|o| {
                !o.result
                    .as_ref()
                    .is_ok_and(|w| w.created && !w.sink_id.is_empty())
            })
            .collect();
        assert!(failed.is_empty(), "{object}: all created, not {failed:?}");
        assert_read_back_equal(&sink, object, records).await;
    }
    assert_eq!(emulator.count("account"), companies.len());
    assert_eq!(emulator.count("contact"), contacts.len());
    let linked = contacts
        .iter()
        .find(|c| c.get(field::COMPANY).is_some())
        .expect("a contact with a company");
    let stored = emulator
        .record_by_key("contact", &linked.source_id)
        .expect("stored");
    assert!(
        stored["_parentcustomerid_value"].is_string(),
        "association resolved"
    );
    let opted_out = contacts
        .iter()
        .find(|c| c.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
        .expect("an opt-out");
    let stored = emulator
        .record_by_key("contact", &opted_out.source_id)
        .expect("stored");
    assert_eq!(
        (&stored["donotemail"], &stored["donotbulkemail"]),
        (&true.into(), &true.into())
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
        assert_read_back_equal(&sink, object, records).await;
    }
    assert_eq!(emulator.count("account"), companies.len());
    assert_eq!(emulator.count("contact"), contacts.len());

    // A contact that lost its company and a field is cleared on the next run.
    let mut changed = linked.clone();
    changed.fields.remove(field::COMPANY);
    changed.fields.remove(field::FIRST_NAME);
    sink.upsert(ObjectType::CONTACTS, std::slice::from_ref(&changed))
        .await
        .expect("upsert");
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[changed]).await;
    assert_eq!(sink.token_fetches(), 1);
    let (requests, _, throttled) = sink.http_stats().expect("stats").snapshot();
    assert_eq!(throttled, 0);
    assert!(
        requests < 40,
        "one $batch per 100 records, not one request per record: {requests}"
    );
}

#[tokio::test]
async fn an_opt_out_is_never_cleared_and_false_is_never_written() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    let mut r = Record::new(ObjectType::CONTACTS, "p-1");
    r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
    r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
    sink.upsert(ObjectType::CONTACTS, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    r.set(field::EMAIL_OPT_OUT, Value::Bool(false));
    sink.upsert(ObjectType::CONTACTS, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    let stored = emulator.record_by_key("contact", "p-1").expect("stored");
    assert_eq!(
        (&stored["donotemail"], &stored["donotbulkemail"]),
        (&true.into(), &true.into())
    );
    let back = sink
        .read_back(ObjectType::CONTACTS, &["p-1".into()])
        .await
        .expect("read back");
    assert_eq!(back[0].get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
}

#[tokio::test]
async fn refused_records_become_rejections_without_values() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    let contact = |id: &str, last: &str| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::LAST_NAME, Value::Text(last.into()));
        r
    };
    let mut long_title = contact("p-1", "Gilmore");
    long_title.set(
        field::JOB_TITLE,
        Value::Text("Senior Vice President of ".repeat(8)),
    );
    let mut orphan = contact("p-2", "Danes");
    orphan.set(field::COMPANY, Value::Reference("co-missing-77".into()));
    let slash = contact("p/3", "Hollow");
    let mut long_name = contact("p-4", "x");
    long_name.set(field::LAST_NAME, Value::Text("Gilmore-Hayden-".repeat(5)));
    let fine = contact("o'brien 5", "O'Brien");
    let records = vec![long_title, orphan, slash, long_name, fine.clone()];
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    let rejection = |i: usize| outcomes[i].result.clone().expect_err("rejected");
    assert_eq!(rejection(0).code, "0x80044331");
    assert_eq!(
        rejection(0).reason,
        "Dynamics refused field jobtitle (job_title)"
    );
    assert_eq!(rejection(1).code, "0x80040217");
    assert!(
        rejection(1).reason.contains("company reference"),
        "{}",
        rejection(1).reason
    );
    assert_eq!(rejection(2).code, "UNSUPPORTED_KEY_VALUE");
    assert_eq!(
        rejection(3).reason,
        "Dynamics refused field lastname (last_name)"
    );
    for (i, record) in records.iter().enumerate().take(4) {
        let r = rejection(i);
        assert_eq!(r.source_id, record.source_id);
        for value in ["Senior Vice", "co-missing-77", "Gilmore", "Danes", "Hollow"] {
            assert!(
                !r.reason.contains(value) && !r.code.contains(value),
                "{r:?} quotes a value"
            );
        }
    }
    assert!(outcomes[4].result.is_ok());
    assert_eq!(emulator.count("contact"), 1);
    // Quotes and spaces in source ids survive key addressing and the read-back filter.
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[fine]).await;

    // A value Dataverse quotes in its message (an out-of-range number) is not repeated.
    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    company.set(field::NAME, Value::Text("Dragonfly Inn".into()));
    company.set(field::EMPLOYEE_COUNT, Value::Integer(-98765));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &[company])
        .await
        .expect("upsert");
    let r = outcomes[0].result.clone().expect_err("rejected");
    assert_eq!(r.code, "0x80044331");
    assert_eq!(
        r.reason,
        "Dynamics refused field numberofemployees (employee_count)"
    );
    assert!(!r.reason.contains("98765"));
}

#[tokio::test]
async fn missing_alternate_key_is_a_setup_error_with_instructions() {
    let (_emulator, running) = start(Options {
        alternate_keys: false,
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    let err = sink
        .prepare(ObjectType::CONTACTS)
        .await
        .expect_err("no key");
    assert!(matches!(err, ConnectorError::Setup { .. }), "{err:?}");
    let text = err.to_string();
    for needle in [
        "Tables → contact",
        "Single line of text",
        "Keys → New key",
        "Active",
        "ferry_sourceid",
        "account",
        "sink.source_id_column",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

#[tokio::test]
async fn bad_secret_is_an_auth_error_without_the_secret() {
    let (_emulator, running) = start(Options::default()).await;
    let mut c = config(&running.base_url);
    c.client_secret = in_memory("wrong-secret-d41d8cd98f");
    let sink = DynamicsSink::new(c, "sink").expect("sink");
    let err = sink.check().await.expect_err("bad secret");
    assert!(
        matches!(err, ConnectorError::Auth { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && text.contains("AADSTS7000215"),
        "{text}"
    );
    // Named as method and path like every endpoint, never the URL (which may hold userinfo).
    assert!(
        text.contains("dynamics: POST /")
            && text.contains("/oauth2/v2.0/token: ")
            && !text.contains(running.base_url.trim_end_matches('/')),
        "{text}"
    );
    assert!(!text.contains("wrong-secret") && !format!("{err:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn service_protection_429s_are_waited_out_and_nothing_is_lost() {
    // Four requests per two seconds: the batches run into the limit and Retry-After.
    let (emulator, running) = start(Options {
        requests_per_window: 4,
        window: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    let (companies, _) = ferry_testkit::canonical_records(&generate(2_500, 5, &Mess::none()));
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    assert_eq!(emulator.count("account"), companies.len());
    let (_, retries, throttled) = sink.http_stats().expect("stats").snapshot();
    assert!(
        throttled > 0 && retries >= throttled,
        "throttled {throttled}, retries {retries}"
    );

    // Injected throttling too.
    let (emulator, running) = start(Options {
        faults: Faults {
            throttle_every: Some(3),
            retry_after_secs: Some(0),
            ..Faults::default()
        },
        ..Options::default()
    })
    .await;
    let sink = self::sink(&running);
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies[..300]).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies[..300]).await;
    assert_eq!(emulator.count("account"), 300);
}

#[tokio::test]
async fn tokens_are_renewed_before_expiry_and_once_on_401() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    sink.check().await.expect("check");
    emulator.expire_tokens();
    sink.check()
        .await
        .expect("check after the token was revoked");
    assert_eq!(sink.token_fetches(), 2);

    let (_emulator, running) = start(Options {
        token_lifetime: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let sink = self::sink(&running);
    sink.check().await.expect("check");
    tokio::time::sleep(Duration::from_millis(950)).await;
    sink.check().await.expect("check near expiry");
    assert_eq!(sink.token_fetches(), 2, "renewed ahead of expiry");
}

#[tokio::test]
async fn transient_failures_of_batch_parts_are_sent_again() {
    let (emulator, running) = start(Options {
        batch_part_error_every: Some(7),
        ..Options::default()
    })
    .await;
    let sink = sink(&running);
    let (companies, _) = ferry_testkit::canonical_records(&generate(1_000, 6, &Mess::none()));
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| w.created)),
        "every record created exactly once"
    );
    assert_eq!(emulator.count("account"), companies.len());
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies).await;
}

#[tokio::test]
async fn ids_that_cannot_be_upserted_are_refused_unsent_and_outcomes_keep_input_order() {
    let (emulator, running) = start(Options::default()).await;
    let sink = DynamicsSink::new(
        ferry_dynamics::DynamicsConfig {
            batch_size: Some(2),
            ..config(&running.base_url)
        },
        "sink",
    )
    .expect("sink");
    let company = |id: &str| {
        let mut r = Record::new(ObjectType::COMPANIES, id);
        r.set(field::NAME, Value::Text("Dragonfly Inn".into()));
        r
    };
    let records: Vec<Record> = ["co-1", "", "co-1", "co/2", "co-3", "co-4"]
        .into_iter()
        .map(company)
        .collect();
    let before = emulator.requests();
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &records)
        .await
        .expect("upsert");
    let codes: Vec<&str> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(w) if w.created => "created",
            Ok(_) => "updated",
            Err(r) => r.code.as_str(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "created",
            ferry_core::batch::MISSING_SOURCE_ID,
            ferry_core::batch::DUPLICATE_SOURCE_ID,
            "UNSUPPORTED_KEY_VALUE",
            "created",
            "created"
        ]
    );
    let ids: Vec<&str> = outcomes.iter().map(|o| o.source_id.as_str()).collect();
    assert_eq!(ids, ["co-1", "", "co-1", "co/2", "co-3", "co-4"]);
    // The empty and repeated ids never reach a chunk: [co-1, co/2] and [co-3, co-4], the
    // first of which sends only co-1.
    assert_eq!(emulator.requests() - before, 2, "two $batch requests");
    assert_eq!(emulator.count("account"), 3);
}

#[tokio::test]
async fn a_thousand_records_are_read_back_in_one_batch_of_long_gets() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running);
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let (mut companies, _) = ferry_testkit::canonical_records(&generate(5_000, 3, &Mess::none()));
    // Source ids as long as Salesforce's, so that the ids need several URLs of 6,000 characters.
    for (i, c) in companies.iter_mut().enumerate() {
        c.source_id = format!("001Ws00000{i:08}AAA");
    }
    assert_eq!(companies.len(), 1_000);
    assert_eq!(
        sink.capability(ObjectType::COMPANIES)
            .unwrap()
            .read_back_size,
        1_000
    );
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    let before = emulator.requests();
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies).await;
    assert_eq!(emulator.requests() - before, 1, "one $batch for 1,000 ids");
}
