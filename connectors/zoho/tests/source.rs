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

/// A full read in rounds of `max_concurrent_requests` COQL pages read at once: every record
/// once, in id order, and a read resumed from any round's cursor by a new source (a restart
/// from the checkpoint) reads exactly the records after it.
/// With the object's count known, a full read's rounds ask for no more pages than the records
/// left need: the last round asks for no empty page (each costs a credit); without it, a round
/// asks for as many pages as the org may have calls in flight.
#[tokio::test]
async fn a_counted_read_asks_for_no_empty_page() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(850, 8, &Mess::none()));
    assert_eq!(seeded.contacts, 850);
    let settings = json!({"page_size": 50, "max_concurrent_requests": 4});
    let read = |count_first: bool| {
        let (base, settings, emulator) = (running.base_url.clone(), settings.clone(), &emulator);
        async move {
            let source = ZohoSource::new(config(&base, settings), "source").expect("source");
            if count_first {
                let n = source.count(ObjectType::CONTACTS).await.expect("count");
                assert_eq!(n, Some(seeded.contacts as u64));
            }
            // The token and the org's currency are fetched by the first call: not counted.
            source
                .read_page(ObjectType::CONTACTS, None)
                .await
                .expect("first page");
            let before = emulator.requests();
            let mut cursor = source
                .read_page(ObjectType::CONTACTS, None)
                .await
                .expect("first page")
                .next;
            let mut records = 50;
            while let Some(c) = cursor {
                let page = source
                    .read_page(ObjectType::CONTACTS, Some(&c))
                    .await
                    .expect("page");
                records += page.records.len();
                cursor = page.next;
            }
            assert_eq!(records, seeded.contacts);
            emulator.requests() - before
        }
    };
    // 850 contacts: the first page of 50, then rounds of 4 pages of 50 overlapping by one (197
    // records): four full rounds (788), and 12 left, one page. Without the count the last
    // round asks for 4 pages, 3 of them past the end.
    let counted = read(true).await;
    let blind = read(false).await;
    assert_eq!(counted, 1 + 4 * 4 + 1, "no empty page after a count");
    assert_eq!(
        blind,
        1 + 5 * 4,
        "without a count the last round asks for 4 pages"
    );
}

#[tokio::test]
async fn a_full_read_in_rounds_reads_each_record_once_and_resumes_from_any_cursor() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(1_500, 8, &Mess::none()));
    let settings = json!({"page_size": 50, "max_concurrent_requests": 4});
    let source =
        ZohoSource::new(config(&running.base_url, settings.clone()), "source").expect("source");
    let mut pages: Vec<(Vec<String>, Option<String>)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .read_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("page");
        let ids = page.records.iter().map(|r| r.source_id.clone()).collect();
        pages.push((ids, page.next.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all: Vec<String> = pages.iter().flat_map(|(ids, _)| ids.clone()).collect();
    assert_eq!(all.len(), seeded.contacts, "every record");
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "each once"
    );
    let numbers: Vec<u64> = all.iter().map(|id| id.parse().expect("id")).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in id order");
    // The first page is the list's 50; each round after it 4 pages of 50 overlapping by one.
    assert_eq!(pages[0].0.len(), 50);
    assert_eq!(pages[1].0.len(), 50 + 3 * 49, "a full round");
    assert_eq!(pages.len(), 1 + (seeded.contacts - 50).div_ceil(197));

    for (i, (_, next)) in pages.iter().enumerate() {
        let Some(next) = next else { continue };
        let resumed =
            ZohoSource::new(config(&running.base_url, settings.clone()), "source").expect("source");
        let mut rest = Vec::new();
        let mut cursor = Some(next.clone());
        while let Some(c) = cursor {
            let page = resumed
                .read_page(ObjectType::CONTACTS, Some(&c))
                .await
                .expect("resumed page");
            rest.extend(page.records.into_iter().map(|r| r.source_id));
            cursor = page.next;
        }
        let before: Vec<String> = pages[..=i]
            .iter()
            .flat_map(|(ids, _)| ids.clone())
            .collect();
        assert_eq!(
            [before, rest].concat(),
            all,
            "resumed after round {i}: the same records, once each"
        );
    }
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
