//! The Zoho source against the emulator over real HTTP on loopback.

mod common;

use std::collections::HashSet;

use common::{config, read_all, start};
use ferry_core::{ConnectorError, ObjectType, Source, Value, field};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::ZohoSource;
use serde_json::json;

#[tokio::test]
async fn pages_past_2000_records_by_id_after_the_first_page() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(2_700, 5, &Mess::default()));
    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    source.check().await.expect("check");

    let (companies, _) = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(companies.len(), seeded.accounts);
    let (contacts, cursors) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), seeded.contacts);
    assert!(seeded.contacts > 2_000);
    let ids: HashSet<&str> = contacts.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), contacts.len(), "each record once");
    // Page 1 by number, then COQL by id: no offsets that a deletion could shift.
    assert!(!cursors.is_empty());
    assert!(cursors.iter().all(|c| c.starts_with("k:")), "{cursors:?}");

    let company_ids: HashSet<&str> = companies.iter().map(|r| r.source_id.as_str()).collect();
    let linked = contacts
        .iter()
        .filter_map(|c| c.text(field::COMPANY))
        .collect::<Vec<_>>();
    assert!(!linked.is_empty());
    assert!(
        linked.iter().all(|c| company_ids.contains(c)),
        "companies by Zoho id"
    );
    assert!(
        contacts
            .iter()
            .any(|c| c.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
    );
    assert!(
        contacts
            .iter()
            .all(|c| matches!(c.get(field::UPDATED_AT), Some(Value::Timestamp(_))))
    );
    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        Some(seeded.contacts as u64)
    );
    assert_eq!(source.token_fetches(), 1);
}

#[tokio::test]
async fn a_page_token_cursor_of_an_earlier_version_resumes_by_id() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(900, 6, &Mess::none()));
    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    let first = source
        .read_page(ObjectType::CONTACTS, None)
        .await
        .expect("first page");
    let last = first.records.last().expect("records").source_id.clone();
    // A checkpoint written by an earlier version, whose page token has long expired.
    let mut cursor = Some(format!("t:{last}:expired-token"));
    let mut ids: Vec<String> = first.records.iter().map(|r| r.source_id.clone()).collect();
    while let Some(c) = cursor {
        let page = source
            .read_page(ObjectType::CONTACTS, Some(&c))
            .await
            .expect("page");
        ids.extend(page.records.iter().map(|r| r.source_id.clone()));
        cursor = page.next;
    }
    assert_eq!(ids.len(), seeded.contacts);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), seeded.contacts);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_429s_are_retried() {
    let (emulator, running) = start(Options {
        faults: Faults {
            throttle_every: Some(4),
            ..Faults::default()
        },
        ..Options::default()
    })
    .await;
    let seeded = emulator.seed(&generate(900, 7, &Mess::none()));
    let source = ZohoSource::new(
        config(&running.base_url, json!({"page_size": 50})),
        "source",
    )
    .expect("source");
    let first = source
        .read_page(ObjectType::CONTACTS, None)
        .await
        .expect("page");
    emulator.expire_tokens();
    let mut total = first.records.len();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let page = source
            .read_page(ObjectType::CONTACTS, Some(&c))
            .await
            .expect("page");
        total += page.records.len();
        cursor = page.next;
    }
    assert_eq!(total, seeded.contacts);
    assert_eq!(source.token_fetches(), 2, "refreshed once after expiry");
    let (_, retries, throttled) = ferry_core::Source::http_stats(&source)
        .expect("stats")
        .snapshot();
    assert!(
        throttled > 0 && retries >= throttled,
        "throttled {throttled}, retries {retries}"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_is_an_auth_error_without_the_secret() {
    let (_emulator, running) = start(Options::default()).await;
    let mut c = config(&running.base_url, json!({}));
    c.refresh_token = common::in_memory("1000.definitely-wrong-refresh-secret");
    let source = ZohoSource::new(c, "source").expect("source");
    let err = source.check().await.expect_err("refused");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("invalid_code") && text.contains("/oauth/v2/token"),
        "{text}"
    );
    assert!(!text.contains("definitely-wrong"), "{text}");
}

#[tokio::test]
async fn deals_come_with_their_contact_roles_and_notes_page_by_token() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(1_000, 6, &Mess::none()));
    let source = ZohoSource::new(
        config(&running.base_url, json!({"page_size": 100})),
        "source",
    )
    .expect("source");
    let (deals, cursors) = read_all(&source, ObjectType::DEALS).await;
    assert_eq!(deals.len(), seeded.deals);
    assert!(!cursors.is_empty() && cursors.iter().all(|c| c.starts_with("k:")));
    let mut with_contacts = 0;
    for deal in &deals {
        let roles = emulator.deal_contact_roles(&deal.source_id);
        let read: Vec<String> = match deal.get(field::CONTACTS) {
            Some(Value::Links(links)) => {
                assert!(links.iter().all(|l| l.object == ObjectType::CONTACTS));
                links.iter().map(|l| l.id.clone()).collect()
            }
            _ => Vec::new(),
        };
        let mut roles = roles.clone();
        roles.sort();
        assert_eq!(read, roles, "deal {}", deal.source_id);
        with_contacts += usize::from(read.len() > 1);
        assert!(matches!(deal.get(field::STAGE), Some(Value::Stage { .. })));
    }
    assert!(with_contacts > 0);

    // COQL does not serve Notes: every page after the first goes on by page token.
    let (notes, cursors) = read_all(&source, ObjectType::NOTES).await;
    assert_eq!(notes.len(), seeded.notes);
    assert!(seeded.notes > 300, "several pages");
    assert!(cursors.len() >= 3, "{cursors:?}");
    assert!(cursors.iter().all(|c| c.starts_with("t:")), "{cursors:?}");
    let ids: HashSet<&str> = notes.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), notes.len(), "each note once");
    assert!(notes.iter().all(|n| matches!(
        n.get(field::PARENTS),
        Some(Value::Links(links)) if links.len() == 1
    )));
    assert!(notes.iter().all(|n| n.get(field::TIMESTAMP).is_some()));
}
