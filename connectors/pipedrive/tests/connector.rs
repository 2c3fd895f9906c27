//! The Pipedrive connector (source and sink) against the sandbox emulator over real HTTP on
//! loopback, and migrations through `ferry_core::run` from HubSpot and to Salesforce.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::{
    ConnectorError, Mode, ObjectType, Outcome, Progress, Projection, Record, RunOptions, SecretRef,
    Sink, Source, Value, field, record_digest,
};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink, PipedriveSource};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn unlimited() -> Options {
    Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    }
}

async fn start(options: Options) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(options);
    let running = ferry_sandbox::serve("pipedrive", emulator.router(), loopback())
        .await
        .expect("serve");
    (emulator, running)
}

/// A config for the emulator at `base_url`, paced fast enough for tests.
fn config(base_url: &str) -> PipedriveConfig {
    PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        concurrency: Some(8),
        max_retries: Some(10),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    }
}

use ferry_testkit::canonical_records as canonical;

async fn upsert_all(
    sink: &PipedriveSink,
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

async fn read_back_digests_equal(sink: &PipedriveSink, object: ObjectType, records: &[Record]) {
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
    // As the engine compares: a record sent without an owner gets Pipedrive's default owner
    // (the token's user), which is not the record's.
    for r in &mut back {
        if records
            .iter()
            .find(|s| s.source_id == r.source_id)
            .is_none_or(|s| s.get(field::OWNER).is_none())
        {
            r.fields.remove(field::OWNER);
        }
    }
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

async fn read_all(source: &PipedriveSource, object: ObjectType) -> (Vec<Record>, usize) {
    let mut cursor: Option<String> = None;
    let mut records = Vec::new();
    let mut pages = 0;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("page");
        assert!(page.unreadable.is_empty());
        pages += 1;
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (records, pages),
        }
    }
}

#[tokio::test]
async fn source_pages_every_person_and_organization_once() {
    let (emulator, running) = start(unlimited()).await;
    let data = generate(1_100, 5, &Mess::default());
    let seeded = emulator.seed(&data);
    // One cursor (tests/windows.rs reads in update-time windows).
    let one_cursor = PipedriveConfig {
        read_windows: Some(1),
        ..config(&running.base_url)
    };
    let source = PipedriveSource::new(one_cursor, "source").expect("source");
    source.check().await.expect("check");
    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        None
    );
    let (persons, pages) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(pages, 3, "500 per page");
    assert_eq!(persons.len(), seeded.contacts);
    let ids: HashSet<&str> = persons.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), persons.len(), "each once");
    let (orgs, _) = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(orgs.len(), seeded.companies);
    let org_ids: HashSet<&str> = orgs.iter().map(|r| r.source_id.as_str()).collect();
    let linked = persons
        .iter()
        .filter_map(|p| p.text(field::COMPANY))
        .collect::<Vec<_>>();
    assert!(!linked.is_empty() && linked.iter().all(|c| org_ids.contains(c)));
    let opted_out = persons
        .iter()
        .filter(|p| p.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
        .count();
    assert!(opted_out > 0);
    assert!(
        persons
            .iter()
            .any(|p| p.text(field::MOBILE_PHONE).is_some())
    );
    assert!(orgs.iter().any(|o| o.text(field::CITY).is_some()));
    assert!(
        persons
            .iter()
            .all(|p| matches!(p.get(field::CREATED_AT), Some(Value::Timestamp(_))))
    );
}

#[tokio::test]
async fn sink_upserts_idempotently_and_reads_back_equal() {
    let (emulator, running) = start(unlimited()).await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    sink.check().await.expect("check");
    let (companies, contacts) = canonical(&generate(300, 11, &Mess::none()));
    sink.prepare(ObjectType::COMPANIES)
        .await
        .expect("prepare companies");
    sink.prepare(ObjectType::CONTACTS)
        .await
        .expect("prepare contacts");
    assert!(
        emulator
            .custom_field_key("persons", "Ferry source id")
            .is_some()
    );
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
        read_back_digests_equal(&sink, object, records).await;
    }
    assert_eq!(emulator.count("companies"), Some(companies.len()));
    assert_eq!(emulator.count("contacts"), Some(contacts.len()));

    // A second sink (a rerun: empty caches) finds everything by source id and creates nothing.
    let rerun = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    rerun.prepare(ObjectType::CONTACTS).await.expect("prepare");
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let outcomes = upsert_all(&rerun, object, records).await;
        assert!(
            outcomes
                .iter()
                .all(|o| o.result.as_ref().is_ok_and(|w| !w.created)),
            "{object}: none created"
        );
        read_back_digests_equal(&rerun, object, records).await;
    }
    assert_eq!(emulator.count("companies"), Some(companies.len()));
    assert_eq!(emulator.count("contacts"), Some(contacts.len()));
    assert_eq!(
        emulator.custom_field_key("persons", "Ferry source id"),
        sink_field(&emulator),
        "the field is reused, not created twice"
    );

    // Clearing: a contact that lost its company, first name and phones.
    let mut changed = contacts
        .iter()
        .find(|c| c.get(field::COMPANY).is_some() && c.get(field::PHONE).is_some())
        .unwrap()
        .clone();
    for f in [
        field::COMPANY,
        field::FIRST_NAME,
        field::PHONE,
        field::MOBILE_PHONE,
    ] {
        changed.fields.remove(f);
    }
    let out = rerun
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&changed))
        .await
        .expect("upsert");
    assert!(out[0].result.is_ok());
    read_back_digests_equal(&rerun, ObjectType::CONTACTS, &[changed]).await;
}

/// A record deleted since this sink wrote it, and written again by another run under a new id,
/// is searched for on read-back rather than trusted to its stale id, even where the sink made
/// the source-id field itself (and a source id it never saw is absent without a search).
#[tokio::test]
async fn read_back_searches_again_for_a_record_deleted_since_it_was_written() {
    let (_emulator, running) = start(unlimited()).await;
    let (companies, _) = canonical(&generate(20, 5, &Mess::none()));
    let first = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    first.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let written = upsert_all(&first, ObjectType::COMPANIES, &companies).await;
    let old_id = written[0].result.as_ref().expect("written").sink_id.clone();
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/v2/organizations/{old_id}",
            running.base_url
        ))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    // Another run (empty caches) writes it again: a new organization.
    let second = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    let again = second
        .upsert(ObjectType::COMPANIES, &companies[..1])
        .await
        .expect("upsert");
    let again = again[0].result.as_ref().expect("written again");
    assert!(again.created && again.sink_id != old_id, "{again:?}");
    read_back_digests_equal(&first, ObjectType::COMPANIES, &companies).await;
}

/// A person whose organization ferry did not write (no source id on it) reads back with a
/// company reference naming that organization by its Pipedrive id, which matches no source
/// id: verification then reports the reference as changed rather than dropping it.
#[tokio::test]
async fn a_reference_to_an_organization_ferry_did_not_write_reads_back_by_its_pipedrive_id() {
    let (_emulator, running) = start(unlimited()).await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/v2/organizations", running.base_url))
        .header("x-api-token", TOKEN)
        .json(&serde_json::json!({"name": "Made by hand"}))
        .send()
        .await
        .expect("create organization")
        .json()
        .await
        .expect("organization body");
    let org = created["data"]["id"].as_u64().expect("organization id");
    let mut person = Record::new(ObjectType::CONTACTS, "p-1");
    person.set(field::LAST_NAME, Value::Text("Gilmore".into()));
    let out = sink
        .upsert(ObjectType::CONTACTS, &[person])
        .await
        .expect("upsert");
    let id = out[0].result.as_ref().expect("written").sink_id.clone();
    let patched = http
        .patch(format!("{}/api/v2/persons/{id}", running.base_url))
        .header("x-api-token", TOKEN)
        .json(&serde_json::json!({"org_id": org}))
        .send()
        .await
        .expect("link");
    assert!(patched.status().is_success(), "{}", patched.status());
    let back = sink
        .read_back(ObjectType::CONTACTS, &["p-1".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].get(field::COMPANY),
        Some(&Value::Reference(format!("pipedrive-organization-{org}")))
    );
}

fn sink_field(emulator: &Emulator) -> Option<String> {
    emulator.custom_field_key("contacts", "Ferry source id")
}

#[tokio::test]
async fn refused_records_become_rejections_without_values() {
    let (emulator, running) = start(unlimited()).await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let mut nameless = Record::new(ObjectType::CONTACTS, "p-1");
    nameless.set(
        field::EMAIL,
        Value::Text("nameless-secret@example.org".into()),
    );
    let mut orphan = Record::new(ObjectType::CONTACTS, "p-2");
    orphan.set(field::LAST_NAME, Value::Text("Danes-secret".into()));
    orphan.set(field::COMPANY, Value::Reference("co-never-migrated".into()));
    let mut fine = Record::new(ObjectType::CONTACTS, "p-3");
    fine.set(field::LAST_NAME, Value::Text("Gilmore".into()));
    let twice = fine.clone();
    let out = sink
        .upsert(
            ObjectType::CONTACTS,
            &[
                nameless,
                orphan,
                fine,
                twice,
                Record::new(ObjectType::CONTACTS, ""),
            ],
        )
        .await
        .expect("upsert");
    let rejection = |i: usize| out[i].result.clone().expect_err("rejected");
    let r = rejection(0);
    assert_eq!(r.code, "ERR_SCHEMA_VALIDATION_FAILED");
    assert!(
        r.reason.contains("name (first_name, last_name)"),
        "{}",
        r.reason
    );
    assert!(!r.reason.contains("secret"), "{}", r.reason);
    let r = rejection(1);
    assert_eq!(r.code, "COMPANY_NOT_FOUND");
    assert!(
        !r.reason.contains("secret") && !r.reason.contains("never-migrated"),
        "{}",
        r.reason
    );
    assert!(out[2].result.is_ok());
    assert_eq!(rejection(3).code, "DUPLICATE_SOURCE_ID");
    assert_eq!(rejection(4).code, "MISSING_SOURCE_ID");
    assert_eq!(emulator.count("contacts"), Some(1));
}

#[tokio::test]
async fn an_opt_out_pipedrive_cannot_hold_is_refused_before_anything_is_written() {
    let (emulator, running) = start(unlimited()).await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let person = |id: &str, email: Option<&str>| {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::LAST_NAME, Value::Text("Kim".into()));
        if let Some(e) = email {
            r.set(field::EMAIL, Value::Text(e.into()));
        }
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r
    };
    // No address, a blank one, a malformed one: Pipedrive would keep no marketing status.
    let records = [
        person("p-none", None),
        person("p-blank", Some(" ")),
        person("p-malformed", Some("kim@")),
        person("p-ok", Some("kim@example.com")),
    ];
    let out = sink
        .upsert(ObjectType::CONTACTS, &records)
        .await
        .expect("upsert");
    for o in &out[..3] {
        let refused = o.result.as_ref().expect_err("refused");
        assert_eq!(refused.code, "OPT_OUT_NOT_REPRESENTABLE", "{refused:?}");
        assert!(
            refused.reason.contains("`email_opt_out`")
                && refused.reason.contains("`email`")
                && refused.reason.contains("pipedrive"),
            "{}",
            refused.reason
        );
        assert!(!refused.reason.contains("kim@"), "{}", refused.reason);
    }
    assert!(out[3].result.is_ok(), "{:?}", out[3]);
    assert_eq!(
        emulator.count("contacts"),
        Some(1),
        "nothing of them written"
    );
    assert_eq!(
        sink.count_with_source_id(ObjectType::CONTACTS)
            .await
            .expect("count"),
        Some(1)
    );
    let back = sink
        .read_back(
            ObjectType::CONTACTS,
            &records
                .iter()
                .map(|r| r.source_id.clone())
                .collect::<Vec<_>>(),
        )
        .await
        .expect("read back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].source_id, "p-ok");
    assert_eq!(back[0].get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
    // Written without an owner: Pipedrive's default owner is not compared (as in the engine).
    let mut back = back;
    back[0].fields.remove(field::OWNER);
    let p = Projection::new(sink.capability(ObjectType::CONTACTS).unwrap().stored);
    assert_eq!(record_digest(&records[3], &p), record_digest(&back[0], &p));
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

#[tokio::test]
async fn throttling_is_retried_and_nothing_is_lost() {
    let (emulator, running) = start(Options {
        faults: Faults {
            throttle_every: Some(7),
            ..Faults::default()
        },
        burst_limit: Some(100),
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    })
    .await;
    // The sink starts faster than the emulator's window until it adopts the announced limit.
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    let (companies, _) = canonical(&generate(300, 5, &Mess::none()));
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    read_back_digests_equal(&sink, ObjectType::COMPANIES, &companies).await;
    assert_eq!(emulator.count("companies"), Some(companies.len()));
    let stats = sink.http_stats().expect("stats");
    let (_, retries, throttled) = stats.snapshot();
    assert!(
        throttled > 0 && retries >= throttled,
        "retried {retries} of {throttled}"
    );
    // The time the 429s made the sink wait reaches the report too, not only their count.
    assert!(stats.report().throttled_wait_ms > 0, "{:?}", stats.report());
}

/// The source id each person the emulator holds carries, by Pipedrive id (from any field
/// named like the source-id field, should there be several).
fn persons_by_id(emulator: &Emulator) -> Vec<(u64, String)> {
    let keys = emulator.custom_field_keys("persons", "Ferry source id");
    // Ids are positions and nothing is deleted here: the persons have ids 1..=n.
    (1..)
        .map_while(|id| emulator.record("persons", id).map(|p| (id, p)))
        .map(|(id, person)| {
            let sid = keys
                .iter()
                .find_map(|k| person["custom_fields"][k].as_str())
                .unwrap_or_default();
            (id, sid.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_not_made_twice() {
    // A fifth of all requests are carried out and then the connection drops mid-answer, the
    // creates included: retried blindly, each such create makes a second record.
    let (emulator, running) = start(Options {
        faults: Faults {
            resets: Some(20),
            seed: 11, // resets the first create of a source-id field, too
            ..Faults::default()
        },
        ..unlimited()
    })
    .await;
    // Small batches, all sent at once (as the engine runs several): a retry waits at least
    // 250 ms and holds up its batch, and one batch at a time would take half a minute.
    let sink_config = PipedriveConfig {
        batch_size: Some(10),
        ..config(&running.base_url)
    };
    let sink = PipedriveSink::new(sink_config, "sink").expect("sink");
    let (companies, contacts) = canonical(&generate(250, 3, &Mess::none()));
    // As the engine does: the source-id fields exist before batches run concurrently.
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let mut written = Vec::new();
    for (object, records) in [
        (ObjectType::COMPANIES, &companies),
        (ObjectType::CONTACTS, &contacts),
    ] {
        let batches = records
            .chunks(sink.capability(object).unwrap().batch_size)
            .map(|batch| {
                let sink = &sink;
                async move { sink.upsert(object, batch).await.expect("upsert") }
            });
        let outcomes: Vec<_> = futures::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(outcomes.len(), records.len());
        let created = outcomes
            .iter()
            .filter(|o| o.result.as_ref().is_ok_and(|w| w.created))
            .count();
        assert_eq!(created, records.len(), "{object}: every record created");
        if object == ObjectType::CONTACTS {
            written = outcomes;
        }
    }
    let (_, retries, _) = sink.http_stats().expect("stats").snapshot();
    assert!(retries > 50, "the resets were retried: {retries}");

    let mut problems = Vec::new();
    for object in ["persons", "organizations"] {
        let fields = emulator.custom_field_keys(object, "Ferry source id");
        if fields.len() != 1 {
            problems.push(format!("{} {object} source-id fields", fields.len()));
        }
    }
    for (object, records) in [("contacts", &contacts), ("companies", &companies)] {
        let held = emulator.count(object).unwrap_or(0);
        if held != records.len() {
            problems.push(format!("{held} {object} for {} records", records.len()));
        }
    }
    // Exactly one person per source id.
    let persons = persons_by_id(&emulator);
    let mut per_sid = std::collections::HashMap::<&str, usize>::new();
    for (_, sid) in &persons {
        *per_sid.entry(sid).or_default() += 1;
    }
    let twice = per_sid.values().filter(|n| **n > 1).count();
    if twice > 0 {
        problems.push(format!("{twice} source ids on more than one person"));
    }
    if !contacts
        .iter()
        .all(|c| per_sid.contains_key(c.source_id.as_str()))
    {
        problems.push("contacts without a person".into());
    }
    // Each outcome names the person that carries its source id (found by the check, or
    // answered by the create).
    let held: std::collections::HashMap<u64, String> = persons.into_iter().collect();
    let wrong = written
        .iter()
        .filter(|o| {
            let id = o.result.as_ref().ok().and_then(|w| w.sink_id.parse().ok());
            id.and_then(|id| held.get(&id)) != Some(&o.source_id)
        })
        .count();
    if wrong > 0 {
        problems.push(format!(
            "{wrong} outcomes name a person of another source id"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("; "));
}

#[tokio::test]
async fn documented_limits_are_respected_without_429s() {
    let (emulator, running) = start(Options::default()).await;
    let sink_config = PipedriveConfig {
        base_url: Some(running.base_url.clone()),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    };
    let (companies, _) = canonical(&generate(100, 8, &Mess::none()));
    assert_eq!(companies.len(), 20);
    // The first run creates the source-id field, so it knows no record carries one yet and
    // searches for none; a rerun must search for each record.
    let first = PipedriveSink::new(sink_config.clone(), "sink").expect("sink");
    let outcomes = upsert_all(&first, ObjectType::COMPANIES, &companies).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| w.created))
    );
    let rerun = PipedriveSink::new(sink_config, "sink").expect("sink");
    let started = std::time::Instant::now();
    let outcomes = upsert_all(&rerun, ObjectType::COMPANIES, &companies).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.result.as_ref().is_ok_and(|w| !w.created))
    );
    assert_eq!(
        emulator.request_counts().1,
        0,
        "no 429 from the burst or search windows"
    );
    assert_eq!(rerun.http_stats().expect("stats").snapshot().2, 0);
    // 20 searches at 98% of 10 per 2 s take about 4 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(emulator.tokens_used() > 0);
}

#[tokio::test]
async fn an_exhausted_daily_budget_is_final_and_says_so() {
    let (_emulator, running) = start(Options {
        daily_token_budget: Some(12),
        ..unlimited()
    })
    .await;
    let source = PipedriveSource::new(config(&running.base_url), "source").expect("source");
    source.check().await.expect("10 tokens");
    let started = std::time::Instant::now();
    let err = source
        .read_page(ObjectType::CONTACTS, None)
        .await
        .expect_err("budget used up");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "not retried"
    );
    let (requests, retries, _) = source.http_stats().expect("stats").snapshot();
    // The check, then a windowed read's first call: the list sorted by `update_time` either
    // way, each refused once, none retried.
    assert_eq!((requests, retries), (3, 0));
    match &err {
        ConnectorError::Status {
            status: 429,
            detail,
            endpoint,
            ..
        } => {
            assert!(detail.contains("daily"), "{detail}");
            assert_eq!(endpoint, "GET /api/v2/persons");
        }
        other => panic!("expected a 429 status error, got {other}"),
    }
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_without_the_token() {
    let (_emulator, running) = start(unlimited()).await;
    let config = PipedriveConfig {
        api_token: SecretRef::in_memory(SecretString::from("wrong-token-d41d8cd98f")),
        ..config(&running.base_url)
    };
    let err = PipedriveSource::new(config, "source")
        .expect("source")
        .check()
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        matches!(err, ConnectorError::Auth { status: 401, .. }),
        "{text}"
    );
    assert!(
        text.contains("pipedrive") && text.contains("GET /api/v2/persons"),
        "{text}"
    );
    assert!(!text.contains("d41d8cd98f"), "{text}");
}

fn hubspot_source(base_url: &str) -> ferry_hubspot::HubspotSource {
    let config = ferry_hubspot::HubspotConfig {
        base_url: Some(base_url.to_owned()),
        ..ferry_hubspot::HubspotConfig::new(SecretRef::in_memory(SecretString::from(
            ferry_sandbox::HUBSPOT_TOKEN,
        )))
    };
    ferry_hubspot::HubspotSource::new(config, "source").expect("hubspot source")
}

async fn migrate(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> ferry_core::Report {
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    ferry_core::run(Mode::Migrate, source, sink, &options, progress).await
}

#[tokio::test]
async fn migration_from_hubspot_is_verified() {
    // Pipedrive keeps no marketing status for a person without an email, so a data set with an
    // opted-out, email-less contact cannot verify (see the test above); pick one without.
    let (seed, data) = (1..100)
        .map(|seed| (seed, generate(100, seed, &Mess::none())))
        .find(|(_, d)| {
            !d.contacts
                .iter()
                .any(|c| c.email_opt_out && c.email.is_none())
        })
        .expect("a seed without email-less opt-outs");
    let hubspot = ferry_sandbox::hubspot::Emulator::new(ferry_sandbox::hubspot::Options::default());
    hubspot.seed(&data);
    let hs = ferry_sandbox::serve("hubspot", hubspot.router(), loopback())
        .await
        .expect("serve");
    // Pipedrive's search limit (10 per 2 s) would make this test take a minute: one search per
    // record. `documented_limits_are_respected_without_429s` covers it on a smaller set.
    let (pipedrive, pd) = start(Options {
        search_limit: None,
        burst_limit: Some(120), // the Enterprise plan's documented burst limit
        ..Options::default()
    })
    .await;
    let report = migrate(
        Arc::new(hubspot_source(&hs.base_url)),
        Arc::new(PipedriveSink::new(config(&pd.base_url), "sink").expect("sink")),
    )
    .await;
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "seed {seed}: {report:#?}"
    );
    assert_eq!(pipedrive.count("contacts"), Some(data.contacts.len()));
    assert_eq!(pipedrive.count("companies"), Some(data.companies.len()));
    let persons = report
        .objects
        .iter()
        .find(|o| o.object == Some(ObjectType::CONTACTS))
        .expect("contacts");
    assert_eq!(persons.created, data.contacts.len() as u64);
    assert!(persons.digests_match);
}

#[tokio::test]
async fn migration_to_salesforce_is_verified() {
    let (pipedrive, pd) = start(Options::default()).await;
    let seeded = pipedrive.seed(&generate(200, 4, &Mess::none()));
    let salesforce =
        ferry_sandbox::salesforce::Emulator::new(ferry_sandbox::salesforce::Options::default());
    let sf = ferry_sandbox::serve("salesforce", salesforce.router(), loopback())
        .await
        .expect("serve");
    let sf_config: ferry_salesforce::SalesforceConfig = serde_json::from_value(serde_json::json!({
        "login_url": sf.base_url, "client_id": "${UNUSED}", "client_secret": "${UNUSED}",
    }))
    .expect("config");
    let sf_config = ferry_salesforce::SalesforceConfig {
        client_id: SecretRef::in_memory(SecretString::from(ferry_sandbox::SALESFORCE_CLIENT_ID)),
        client_secret: SecretRef::in_memory(SecretString::from(
            ferry_sandbox::SALESFORCE_CLIENT_SECRET,
        )),
        ..sf_config
    };
    let report = migrate(
        Arc::new(PipedriveSource::new(config(&pd.base_url), "source").expect("source")),
        Arc::new(ferry_salesforce::SalesforceSink::new(sf_config, "sink").expect("sink")),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    assert_eq!(salesforce.count("Contact"), seeded.contacts);
    assert_eq!(salesforce.count("Account"), seeded.companies);
}
