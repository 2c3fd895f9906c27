//! The Zoho source against the emulator over real HTTP on loopback.

mod common;

use std::collections::HashSet;

use common::{config, read_all, start, token};
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

/// With the object's count known, a full read asks for no more COQL pages ahead than the
/// records left need: the end of the read asks for no empty page (each costs a credit);
/// without it, the read keeps as many pages in flight as the org may have calls, and those
/// past the end are dropped.
#[tokio::test]
async fn a_counted_read_asks_for_no_empty_page() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(850, 8, &Mess::none()));
    assert_eq!(seeded.contacts, 850);
    let settings = json!({"page_size": 50, "coql_page_size": 50, "max_concurrent_requests": 4});
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
    // 850 contacts: the first page of 50, then COQL pages of 50 overlapping by one (49 new
    // records each after the first): 800 = 50 + 15 * 49 + 15, 17 pages.
    let counted = read(true).await;
    let blind = read(false).await;
    assert_eq!(counted, 1 + 17, "no empty page after a count");
    // Without the count, 3 pages past the end were in flight when the read ended (dropped
    // unread, their requests finish; allow for some not yet arrived).
    assert!(
        (counted..=counted + 3).contains(&blind),
        "without a count: {blind} requests"
    );
}

#[tokio::test]
async fn a_full_read_in_rounds_reads_each_record_once_and_resumes_from_any_cursor() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(1_500, 8, &Mess::none()));
    let settings = json!({"page_size": 50, "coql_page_size": 50, "max_concurrent_requests": 4});
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
    // The first page is the list's 50, the next the 50 after it, then pages of 50 overlapping
    // by one: 49 new records each.
    assert_eq!(pages[0].0.len(), 50);
    assert_eq!(pages[1].0.len(), 50);
    assert_eq!(pages[2].0.len(), 49);
    assert_eq!(pages.len(), 2 + (seeded.contacts - 100).div_ceil(49));

    // COQL pages larger than the list's (`coql_page_size`): the same records, fewer pages.
    let larger = ZohoSource::new(
        config(
            &running.base_url,
            json!({"page_size": 50, "coql_page_size": 120, "max_concurrent_requests": 4}),
        ),
        "source",
    )
    .expect("source");
    let (records, cursors) = read_all(&larger, ObjectType::CONTACTS).await;
    let ids: Vec<String> = records.into_iter().map(|r| r.source_id).collect();
    assert_eq!(ids, all, "the same records with pages of 120");
    assert_eq!(
        cursors.len(),
        1 + (seeded.contacts - 50 - 120).div_ceil(119)
    );

    // The same source, its pages ahead in flight for the cursor it handed out last, asked
    // for an earlier cursor (a resume by the engine): the pages ahead are dropped.
    let mut cursor = None;
    for _ in 0..6 {
        cursor = source
            .read_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("page")
            .next;
    }
    assert_eq!(cursor, pages[5].1);
    let mut rest = Vec::new();
    let mut cursor = pages[2].1.clone();
    while let Some(c) = cursor {
        let page = source
            .read_page(ObjectType::CONTACTS, Some(&c))
            .await
            .expect("page after an earlier cursor");
        rest.extend(page.records.into_iter().map(|r| r.source_id));
        cursor = page.next;
    }
    assert_eq!(
        rest,
        all[50 + 50 + 49..],
        "resumed after page 2 by the same source"
    );

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
            "resumed after page {i}: the same records, once each"
        );
    }
}

/// Records deleted while pages ahead are in flight shift the offsets of the pages asked after:
/// each is seen not to start on the last record of the page before it, and asked again after
/// the last id, so no record is skipped or read twice.
#[tokio::test]
async fn records_deleted_during_a_full_read_shift_no_record_out() {
    let (emulator, running) = start(Options::default()).await;
    let seeded = emulator.seed(&generate(1_000, 8, &Mess::none()));
    let ids =
        |all: &[String]| -> Vec<u64> { all.iter().map(|id| id.parse().expect("id")).collect() };
    let source = ZohoSource::new(
        config(
            &running.base_url,
            json!({"page_size": 50, "coql_page_size": 50, "max_concurrent_requests": 4}),
        ),
        "source",
    )
    .expect("source");
    let before = {
        let (records, _) = read_all(&source, ObjectType::CONTACTS).await;
        ids(&records.into_iter().map(|r| r.source_id).collect::<Vec<_>>())
    };
    assert_eq!(before.len(), seeded.contacts);
    let token = token(&running.base_url).await;
    let http = reqwest::Client::new();
    let mut read: Vec<String> = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_no = 0;
    loop {
        let page = source
            .read_page(ObjectType::CONTACTS, cursor.as_deref())
            .await
            .expect("page");
        read.extend(page.records.into_iter().map(|r| r.source_id));
        page_no += 1;
        // Every third page, a record a few pages ahead goes.
        if page_no % 3 == 0 {
            let at = read.len() + 120;
            if let Some(id) = before.get(at) {
                let answer = http
                    .delete(format!("{}/crm/v8/Contacts/{id}", running.base_url))
                    .header("Authorization", format!("Zoho-oauthtoken {token}"))
                    .send()
                    .await
                    .expect("delete");
                assert!(answer.status().is_success(), "{}", answer.status());
                deleted.push(*id);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(deleted.len() >= 5, "{} deleted", deleted.len());
    let read = ids(&read);
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "in id order, each once"
    );
    let kept: Vec<u64> = before
        .iter()
        .copied()
        .filter(|id| !deleted.contains(id))
        .collect();
    let missing: Vec<&u64> = kept.iter().filter(|id| !read.contains(id)).collect();
    assert!(missing.is_empty(), "records skipped: {missing:?}");
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
        assert!(matches!(deal.get(field::STAGE), Some(Value::Stage(_))));
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
