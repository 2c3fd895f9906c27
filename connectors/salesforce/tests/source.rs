//! The Salesforce source against the sandbox emulator over real HTTP on loopback.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_core::{
    ConnectorError, Mode, ObjectType, Outcome, Progress, Record, RunOptions, SecretRef, Source,
    Value, field,
};
use ferry_salesforce::{SalesforceConfig, SalesforceSink, SalesforceSource};
use ferry_sandbox::salesforce::{Emulator, Options};
use ferry_sandbox::seed::{Mess, SeedData, generate};
use secrecy::SecretString;
use serde_json::json;

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

/// A config for the emulator at `login_url` with its credentials, plus `extra` settings.
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

fn source(running: &ferry_sandbox::Running, query_batch_size: usize) -> SalesforceSource {
    SalesforceSource::new(
        config(
            &running.base_url,
            json!({"query_batch_size": query_batch_size}),
        ),
        "source",
    )
    .expect("source")
}

/// Every record of `object`, and how many pages it took.
async fn read_all(source: &SalesforceSource, object: ObjectType) -> (Vec<Record>, usize) {
    let (mut records, mut pages) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("page");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        pages += 1;
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (records, pages)
}

fn seeded(emulator: &Emulator, contacts: usize, seed: u64, mess: &Mess) -> SeedData {
    let data = generate(contacts, seed, mess);
    let seeded = emulator.seed(&data);
    assert_eq!(seeded.skipped_contacts, 0);
    data
}

#[tokio::test]
async fn reads_every_record_once_across_pages_with_links_opt_outs_and_dates() {
    let (emulator, running) = start(Options::default()).await;
    let data = seeded(&emulator, 2_600, 11, &Mess::none());
    let source = source(&running, 500);
    source.check().await.expect("check");

    let (accounts, account_pages) = read_all(&source, ObjectType::COMPANIES).await;
    let (contacts, contact_pages) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(accounts.len(), data.companies.len());
    assert_eq!(contacts.len(), data.contacts.len());
    assert_eq!(account_pages, data.companies.len().div_ceil(500));
    assert_eq!(contact_pages, data.contacts.len().div_ceil(500));
    assert_eq!(
        source.count(ObjectType::COMPANIES).await.expect("count"),
        Some(emulator.count("Account") as u64)
    );
    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        Some(emulator.count("Contact") as u64)
    );

    let account_ids: Vec<&str> = accounts.iter().map(|r| r.source_id.as_str()).collect();
    let unique: HashSet<&str> = account_ids.iter().copied().collect();
    assert_eq!(unique.len(), accounts.len(), "each account read once");
    let contact_ids: HashSet<&str> = contacts.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(contact_ids.len(), contacts.len(), "each contact read once");
    assert!(
        account_ids
            .iter()
            .all(|id| id.starts_with("001") && id.len() == 18),
        "source ids are Salesforce Account ids"
    );

    // Seeded in order and read in Id order, so the i-th record read is the i-th seeded.
    for (record, seed) in accounts.iter().zip(&data.companies) {
        assert_eq!(record.text(field::NAME), seed.name.as_deref());
        assert_eq!(
            record.get(field::CREATED_AT),
            Some(&Value::Timestamp(seed.created_at_ms))
        );
        assert_eq!(
            record.get(field::UPDATED_AT),
            Some(&Value::Timestamp(seed.updated_at_ms))
        );
        assert_eq!(
            record.get(field::EMPLOYEE_COUNT),
            seed.employee_count
                .map(|n| Value::Integer(i64::from(n)))
                .as_ref()
        );
    }
    let mut opted_out = 0;
    for (record, seed) in contacts.iter().zip(&data.contacts) {
        assert_eq!(record.text(field::EMAIL), seed.email.as_deref());
        assert_eq!(record.text(field::LAST_NAME), seed.last_name.as_deref());
        assert_eq!(
            record.get(field::EMAIL_OPT_OUT),
            Some(&Value::Bool(seed.email_opt_out))
        );
        opted_out += usize::from(seed.email_opt_out);
        let company = record.get(field::COMPANY).map(|v| match v {
            Value::Reference(id) => id.as_str(),
            other => panic!("company is not a reference: {other:?}"),
        });
        assert_eq!(
            company,
            seed.company.map(|k| account_ids[k]),
            "the contact's company is the Account id of its seeded company, read above"
        );
        assert_eq!(
            record.get(field::CREATED_AT),
            Some(&Value::Timestamp(seed.created_at_ms))
        );
        assert_eq!(
            record.get(field::UPDATED_AT),
            Some(&Value::Timestamp(seed.updated_at_ms))
        );
    }
    assert!(opted_out > 0, "the seed has opt-outs to carry");
    let read_opt_outs = contacts
        .iter()
        .filter(|r| r.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
        .count();
    assert_eq!(read_opt_outs, opted_out);
    assert!(contacts.iter().any(|r| r.get(field::COMPANY).is_none()));
    assert_eq!(source.token_fetches(), 1);
}

#[tokio::test]
async fn default_batch_size_pages_at_two_thousand() {
    let (emulator, running) = start(Options::default()).await;
    let data = seeded(&emulator, 4_100, 12, &Mess::none());
    let source = SalesforceSource::new(config(&running.base_url, json!({})), "source").unwrap();
    let (contacts, pages) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), data.contacts.len());
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn next_records_url_elsewhere_is_refused_without_a_request() {
    let (emulator, running) = start(Options::default()).await;
    seeded(&emulator, 2_600, 13, &Mess::none());
    let source = source(&running, 200);

    // A listener that counts connections, standing in for another host.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = elsewhere.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let listener = tokio::spawn(async move {
        while elsewhere.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });

    let first = source
        .read_page(ObjectType::CONTACTS, None)
        .await
        .expect("first page");
    let genuine = first.next.expect("more pages");
    let locator = genuine.rsplit('/').next().unwrap().to_owned();
    let usage = emulator.api_usage();
    for cursor in [
        format!("http://{other}/services/data/v62.0/query/{locator}"),
        format!("//{other}/services/data/v62.0/query/{locator}"),
        format!("{}{genuine}", running.base_url),
        "/services/data/v62.0/sobjects/Contact/describe".to_owned(),
        "/services/data/v62.0/query/../limits".to_owned(),
        format!("/services/data/v61.0/query/{locator}"),
        format!("/services/data/v62.0/query/{locator}?q=SELECT"),
        format!("/services/data/v62.0/query/{locator}/x"),
        "/services/data/v62.0/query/".to_owned(),
        format!("/services/data/v62.0/query/{locator}@{other}"),
    ] {
        let err = source
            .read_page(ObjectType::CONTACTS, Some(&cursor))
            .await
            .expect_err(&cursor);
        assert!(
            matches!(err, ConnectorError::Malformed { .. }),
            "{cursor}: {err}"
        );
        let text = err.to_string();
        assert!(!text.contains(&other.to_string()), "{text}");
    }
    tokio::task::yield_now().await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no request elsewhere"
    );
    assert_eq!(emulator.api_usage(), usage, "no request to the org either");
    listener.abort();

    // The genuine cursor still works.
    let second = source
        .read_page(ObjectType::CONTACTS, Some(&genuine))
        .await
        .expect("second page");
    assert_eq!(second.records.len(), 200);
}

#[tokio::test]
async fn expired_session_mid_read_is_renewed_once() {
    let (emulator, running) = start(Options::default()).await;
    let data = seeded(&emulator, 2_600, 14, &Mess::none());
    let source = source(&running, 500);
    let first = source
        .read_page(ObjectType::CONTACTS, None)
        .await
        .expect("first page");
    emulator.expire_tokens();
    let mut seen: Vec<String> = first.records.iter().map(|r| r.source_id.clone()).collect();
    let mut cursor = first.next;
    while let Some(next) = cursor {
        let page = source
            .read_page(ObjectType::CONTACTS, Some(&next))
            .await
            .expect("page after expiry");
        seen.extend(page.records.into_iter().map(|r| r.source_id));
        cursor = page.next;
    }
    assert_eq!(seen.len(), data.contacts.len());
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        data.contacts.len()
    );
    assert_eq!(source.token_fetches(), 2);
}

#[tokio::test]
async fn an_expired_query_locator_reads_on_after_the_last_record() {
    let (emulator, running) = start(Options::default()).await;
    let data = seeded(&emulator, 1_200, 15, &Mess::none());
    let source = source(&running, 200);
    let first = source.read_page(ObjectType::CONTACTS, None).await.unwrap();
    let mut seen: Vec<String> = first.records.iter().map(|r| r.source_id.clone()).collect();
    // A checkpoint older than two days: its locator is gone.
    emulator.expire_query_locators();
    let mut cursor = first.next;
    let mut pages = 1;
    while let Some(next) = cursor {
        let page = source
            .read_page(ObjectType::CONTACTS, Some(&next))
            .await
            .expect("reads on after the last record");
        seen.extend(page.records.iter().map(|r| r.source_id.clone()));
        cursor = page.next;
        pages += 1;
    }
    assert_eq!(pages, 6, "200 a page");
    assert_eq!(seen.len(), data.contacts.len(), "nothing skipped");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        data.contacts.len(),
        "nothing read twice"
    );
}

#[tokio::test]
async fn an_expired_bare_locator_is_a_clear_error_and_a_forged_id_is_refused() {
    let (emulator, running) = start(Options::default()).await;
    seeded(&emulator, 600, 15, &Mess::none());
    let source = source(&running, 200);
    let first = source.read_page(ObjectType::CONTACTS, None).await.unwrap();
    let next = first.next.expect("a second page");
    let (url, _) = next.split_once(' ').expect("url and last id");
    emulator.expire_query_locators();
    // A cursor without the last id (saved by an older version) cannot read on.
    let err = source
        .read_page(ObjectType::CONTACTS, Some(url))
        .await
        .expect_err("expired locator");
    let text = err.to_string();
    assert!(
        matches!(err, ConnectorError::Status { status: 400, .. })
            && text.contains("INVALID_QUERY_LOCATOR"),
        "{text}"
    );
    assert!(!text.contains("SELECT"), "no query in errors: {text}");
    // A tampered cursor never reaches a query.
    let forged = format!("{url} 003' OR Name != 'x");
    let err = source
        .read_page(ObjectType::CONTACTS, Some(&forged))
        .await
        .expect_err("forged id");
    assert!(matches!(err, ConnectorError::Malformed { .. }), "{err}");
}

#[tokio::test]
async fn spec_builds_a_source_and_errors_name_source_keys() {
    let spec = ferry_salesforce::spec();
    let build = spec.source.expect("salesforce is a source");
    assert!(spec.sink.is_some());
    let err = build(
        json!({"client_id": "${FERRY_TEST_UNSET_SF_ID}", "client_secret": "${FERRY_TEST_UNSET_SF_SECRET}"}),
        "source",
    )
    .err()
    .expect("unset variables");
    assert!(err.to_string().contains("source.client_id"), "{err}");
    let err = build(
        json!({"client_id": "${A}", "client_secret": "${B}", "query_batch_size": 100}),
        "source",
    )
    .err()
    .expect("batch size out of range");
    assert!(err.to_string().contains("source.query_batch_size"), "{err}");
}

#[tokio::test]
async fn migration_from_salesforce_into_an_empty_org_verifies() {
    let (from_emulator, from) = start(Options::default()).await;
    let (to_emulator, to) = start(Options::default()).await;
    let data = generate(2_500, 16, &Mess::default());
    let seeded = from_emulator.seed(&data);

    let source = Arc::new(source(&from, 1000));
    let sink = Arc::new(SalesforceSink::new(config(&to.base_url, json!({})), "sink").unwrap());
    let options = RunOptions::default();
    let progress = Arc::new(Progress::new(&options.objects));
    let report = ferry_core::run(
        Mode::Migrate,
        source.clone(),
        sink.clone(),
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
    let companies = &report.objects[0];
    let contacts = &report.objects[1];
    assert_eq!(companies.written, seeded.accounts as u64);
    assert_eq!(contacts.written, seeded.contacts as u64);
    assert!(companies.digests_match && contacts.digests_match);
    assert_eq!(to_emulator.count("Account"), seeded.accounts);
    assert_eq!(to_emulator.count("Contact"), seeded.contacts);

    // Associations and opt-outs arrived as such, keyed by the source org's ids.
    let (accounts, _) = read_all(&source, ObjectType::COMPANIES).await;
    let (people, _) = read_all(&source, ObjectType::CONTACTS).await;
    let account_ext: HashMap<String, String> = accounts
        .iter()
        .map(|a| {
            let written = to_emulator
                .record_by_external_id("Account", &a.source_id)
                .expect("account migrated");
            (
                written["Id"].as_str().unwrap().to_owned(),
                a.source_id.clone(),
            )
        })
        .collect();
    let (mut linked, mut opted_out) = (0, 0);
    for p in &people {
        let written = to_emulator
            .record_by_external_id("Contact", &p.source_id)
            .expect("contact migrated");
        let company = written["AccountId"].as_str().map(|id| &account_ext[id]);
        assert_eq!(
            company,
            p.text(field::COMPANY).map(|c| c.to_owned()).as_ref()
        );
        linked += usize::from(company.is_some());
        let out = written["HasOptedOutOfEmail"].as_bool().unwrap();
        assert_eq!(Some(&Value::Bool(out)), p.get(field::EMAIL_OPT_OUT));
        opted_out += usize::from(out);
    }
    assert!(linked > 0 && opted_out > 0, "{linked} {opted_out}");
}

/// Changes `Title` of the contacts `ids` through the org's REST API, as a user would.
async fn retitle(running: &ferry_sandbox::Running, ids: &[String]) {
    let http = reqwest::Client::new();
    let token = org_token(&http, running).await;
    for chunk in ids.chunks(200) {
        retitle_batch(&http, running, &token, chunk).await;
    }
}

async fn retitle_batch(
    http: &reqwest::Client,
    running: &ferry_sandbox::Running,
    token: &str,
    ids: &[String],
) {
    let records: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| json!({"attributes": {"type": "Contact"}, "Id": id, "Title": "Retitled"}))
        .collect();
    let answer: serde_json::Value = http
        .patch(format!(
            "{}/services/data/v62.0/composite/sobjects",
            running.base_url
        ))
        .bearer_auth(token)
        .json(&json!({"allOrNone": true, "records": records}))
        .send()
        .await
        .expect("update")
        .json()
        .await
        .expect("update JSON");
    assert!(
        answer
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{answer}"
    );
}

/// Every record of `object` changed since `since`, and how many pages it took.
async fn read_changed(
    source: &SalesforceSource,
    object: ObjectType,
    since: &ferry_core::Watermark,
) -> (Vec<Record>, usize) {
    let (mut records, mut pages) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    loop {
        let fetched = source
            .fetch_changed_page(object, since, cursor.as_deref())
            .await
            .expect("changed page");
        let page = (fetched.records)().expect("records");
        pages += 1;
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (records, pages)
}

#[tokio::test]
async fn reads_only_the_records_changed_since_the_sync_point_in_modstamp_order() {
    let (emulator, running) = start(Options::default()).await;
    let data = seeded(&emulator, 300, 5, &Mess::none());
    let source = source(&running, 200);
    let (all, _) = read_all(&source, ObjectType::CONTACTS).await;
    let point = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("point");
    // Nothing changed since the seed (history): an incremental read finds nothing.
    let (none, _) = read_changed(&source, ObjectType::CONTACTS, &point).await;
    assert!(none.is_empty(), "{} read", none.len());

    emulator.advance_clock(std::time::Duration::from_secs(3600));
    // 250 changed, over two pages of 200, each changed in reverse id order.
    let ids: Vec<String> = all
        .iter()
        .rev()
        .take(250)
        .map(|r| r.source_id.clone())
        .collect();
    retitle(&running, &ids).await;
    let (changed, pages) = read_changed(&source, ObjectType::CONTACTS, &point).await;
    assert_eq!(pages, 2);
    let got: HashSet<&str> = changed.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(got.len(), 250, "each changed record once");
    assert_eq!(got, ids.iter().map(String::as_str).collect::<HashSet<_>>());
    assert!(
        changed
            .iter()
            .all(|r| r.text(field::JOB_TITLE) == Some("Retitled"))
    );

    // The next sync point is the org's clock (an hour on) less the overlap.
    let next = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("point");
    let overlap = ferry_salesforce::source::SYNC_OVERLAP.as_millis() as i64;
    assert!(
        next.at_ms - point.at_ms >= 3_600_000 && next.at_ms - point.at_ms < 3_600_000 + 60_000,
        "{point:?} → {next:?}"
    );
    assert_eq!(next.at_ms % 1000, 0, "whole seconds");
    // Changes just before it are inside the overlap: read again, never missed.
    let (again, _) = read_changed(&source, ObjectType::CONTACTS, &next).await;
    assert_eq!(again.len(), 250, "within the {overlap} ms overlap");
    let _ = data;
}

/// Deletes the records `ids` through the org's REST API (`DELETE composite/sobjects`).
async fn delete(running: &ferry_sandbox::Running, ids: &[String]) {
    let http = reqwest::Client::new();
    let token = org_token(&http, running).await;
    let answer: serde_json::Value = http
        .delete(format!(
            "{}/services/data/v62.0/composite/sobjects?ids={}",
            running.base_url,
            ids.join(",")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete")
        .json()
        .await
        .expect("delete JSON");
    assert!(
        answer
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{answer}"
    );
}

async fn deleted_since(
    source: &SalesforceSource,
    object: ObjectType,
    since: &ferry_core::Watermark,
) -> Option<HashSet<String>> {
    match source
        .fetch_deleted_page(object, since, None)
        .await
        .expect("deleted page")
    {
        ferry_core::DeletedPage::Ids { ids, next } => {
            assert_eq!(next, None, "getDeleted has one page");
            Some(ids.into_iter().collect())
        }
        ferry_core::DeletedPage::Lost => None,
    }
}

/// getDeleted names what was deleted since a sync point (contacts deleted with their account
/// too); once the Recycle Bin was emptied after it, or 15 days passed, deletions are lost and
/// the engine is told to compare id sets. The live ids page through `SELECT Id`.
#[tokio::test]
async fn reads_the_deletions_since_the_sync_point_until_the_bin_forgets_them() {
    let (emulator, running) = start(Options::default()).await;
    seeded(&emulator, 450, 9, &Mess::none());
    let source = source(&running, 200);
    let point = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("point");
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &point).await,
        Some(HashSet::new())
    );
    emulator.advance_clock(std::time::Duration::from_secs(600));
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    let (companies, _) = read_all(&source, ObjectType::COMPANIES).await;
    let company = &companies[0].source_id;
    let of_company: HashSet<String> = contacts
        .iter()
        .filter(|c| c.get(field::COMPANY) == Some(&Value::Reference(company.clone())))
        .map(|c| c.source_id.clone())
        .collect();
    let lone = contacts
        .iter()
        .find(|c| !of_company.contains(&c.source_id))
        .expect("a contact of another company")
        .source_id
        .clone();
    delete(&running, &[company.clone(), lone.clone()]).await;
    let mut expected = of_company.clone();
    expected.insert(lone.clone());
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &point).await,
        Some(expected)
    );
    assert_eq!(
        deleted_since(&source, ObjectType::COMPANIES, &point).await,
        Some(HashSet::from([company.clone()]))
    );
    // Ids only, paged: every live contact once, the deleted ones not.
    let (mut live, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        pages += 1;
        let page = source
            .fetch_ids_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("ids");
        live.extend(page.ids);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        live.iter().collect::<HashSet<_>>().len(),
        contacts.len() - of_company.len() - 1
    );
    assert!(!live.contains(&lone));

    // Emptied from the bin after the sync point: lost.
    emulator.advance_clock(std::time::Duration::from_secs(600));
    emulator.purge_deleted(std::time::Duration::from_secs(60));
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &point).await,
        None
    );
    // A later sync point is fine again; one older than 15 days is lost without asking.
    let later = source
        .sync_point(ObjectType::CONTACTS)
        .await
        .expect("point");
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &later).await,
        Some(HashSet::new())
    );
    emulator.advance_clock(std::time::Duration::from_secs(16 * 86_400));
    assert_eq!(
        deleted_since(&source, ObjectType::CONTACTS, &later).await,
        None
    );
}

/// A token of the org's own client credentials, as an app of the org would hold.
async fn org_token(http: &reqwest::Client, running: &ferry_sandbox::Running) -> String {
    let token: serde_json::Value = http
        .post(format!("{}/services/oauth2/token", running.base_url))
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
        .expect("token JSON");
    token["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// The contact ids a deal record links to, sorted.
fn deal_contacts(deal: &Record) -> Vec<String> {
    let mut ids: Vec<String> = match deal.get(field::CONTACTS) {
        Some(Value::Links(links)) => links.iter().map(|l| l.id.clone()).collect(),
        _ => Vec::new(),
    };
    ids.sort();
    ids
}

/// A deal whose only change is its contacts (a contact role added to one opportunity, and
/// one deleted from another) is read again by the next incremental read, with its contacts
/// as they now are: Salesforce keeps the roles in rows of their own, whose changes need not
/// move the opportunity's stamp (the emulator never moves it).
#[tokio::test]
async fn a_deal_whose_contact_roles_alone_changed_is_read_again() {
    let (emulator, running) = start(Options::default()).await;
    seeded(&emulator, 200, 21, &Mess::none());
    let source = source(&running, 200);
    let (deals, _) = read_all(&source, ObjectType::DEALS).await;
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    let point = source.sync_point(ObjectType::DEALS).await.expect("point");
    let (none, pages) = read_changed(&source, ObjectType::DEALS, &point).await;
    assert!(none.is_empty(), "{} read", none.len());
    assert_eq!(pages, 2, "the deals, then the deals whose roles changed");

    emulator.advance_clock(std::time::Duration::from_secs(3600));
    let gains = deals
        .iter()
        .find(|d| deal_contacts(d).is_empty())
        .expect("a deal without contacts");
    let loses = deals
        .iter()
        .find(|d| deal_contacts(d).len() >= 2)
        .expect("a deal with two contacts");
    let newcomer = &contacts[7].source_id;
    let http = reqwest::Client::new();
    let token = org_token(&http, &running).await;
    let data = format!("{}/services/data/v62.0", running.base_url);
    let created: serde_json::Value = http
        .post(format!("{data}/composite/sobjects"))
        .bearer_auth(&token)
        .json(&json!({"allOrNone": true, "records": [{
            "attributes": {"type": "OpportunityContactRole"},
            "OpportunityId": gains.source_id, "ContactId": newcomer, "IsPrimary": true,
        }]}))
        .send()
        .await
        .expect("create role")
        .json()
        .await
        .expect("create JSON");
    assert_eq!(created[0]["success"], true, "{created}");
    let roles: serde_json::Value = http
        .get(format!("{data}/query"))
        .query(&[(
            "q",
            format!(
                "SELECT Id, ContactId FROM OpportunityContactRole WHERE OpportunityId = '{}' ORDER BY Id",
                loses.source_id
            ),
        )])
        .bearer_auth(&token)
        .send()
        .await
        .expect("roles")
        .json()
        .await
        .expect("roles JSON");
    let gone = &roles["records"][0];
    delete(
        &running,
        &[gone["Id"].as_str().expect("role id").to_owned()],
    )
    .await;

    let (changed, _) = read_changed(&source, ObjectType::DEALS, &point).await;
    let mut read: Vec<&str> = changed.iter().map(|r| r.source_id.as_str()).collect();
    read.sort_unstable();
    let mut expected = vec![gains.source_id.as_str(), loses.source_id.as_str()];
    expected.sort_unstable();
    assert_eq!(read, expected, "exactly the two deals whose roles changed");
    let now_of = |id: &str| {
        deal_contacts(
            changed
                .iter()
                .find(|r| r.source_id == id)
                .expect("read again"),
        )
    };
    assert_eq!(now_of(&gains.source_id), vec![newcomer.clone()]);
    let mut kept = deal_contacts(loses);
    kept.retain(|c| Some(c.as_str()) != gone["ContactId"].as_str());
    assert_eq!(now_of(&loses.source_id), kept);
    assert!(
        changed.iter().all(|r| r.text(field::NAME).is_some()),
        "read whole, not only their links"
    );

    // An hour on, nothing changed since: nothing read.
    emulator.advance_clock(std::time::Duration::from_secs(3600));
    let later = source.sync_point(ObjectType::DEALS).await.expect("point");
    emulator.advance_clock(std::time::Duration::from_secs(3600));
    let (none, _) = read_changed(&source, ObjectType::DEALS, &later).await;
    assert!(none.is_empty(), "{} read", none.len());
}
