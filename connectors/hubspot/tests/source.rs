//! The HubSpot source against the sandbox's HubSpot emulator, over real HTTP on loopback.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use ferry_core::http::RateLimit;
use ferry_core::{ConnectorError, ObjectType, Record, SecretRef, Source, Value, field};
use ferry_hubspot::{HubspotConfig, HubspotSource};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::hubspot::{Emulator, FIRST_COMPANY_ID, FIRST_CONTACT_ID, Options};
use ferry_sandbox::seed::{Mess, SeedData, generate};

const TOKEN_VAR: &str = "FERRY_HUBSPOT_TEST_TOKEN";
const BAD_TOKEN_VAR: &str = "FERRY_HUBSPOT_TEST_BAD_TOKEN";
const BAD_TOKEN: &str = "pat-na1-not-the-right-token-4711";

/// Sets the test tokens once, before any test does anything else (every test calls this
/// first, so no other thread reads the environment while it is written).
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe {
            std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN);
            std::env::set_var(BAD_TOKEN_VAR, BAD_TOKEN);
        }
    });
}

async fn emulator(
    options: Options,
    contacts: usize,
) -> (ferry_sandbox::Running, Emulator, SeedData) {
    let emulator = Emulator::new(options);
    let data = generate(contacts, 11, &Mess::default());
    emulator.seed(&data);
    let running = ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator");
    (running, emulator, data)
}

/// The list path's config: these tests count its requests and follow its pages in id order
/// (the partitioned read has its own, tests/partitions.rs).
fn config(base_url: &str, token_var: &str) -> HubspotConfig {
    HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        read_partitions: Some(false),
        ..HubspotConfig::new(SecretRef::env(token_var))
    }
}

async fn read_all(source: &HubspotSource, object: ObjectType) -> Vec<Record> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("page");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

fn assert_unique(records: &[Record]) {
    let ids: HashSet<&str> = records.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "a record was read twice");
}

#[tokio::test]
async fn reads_every_company_and_contact_once_with_associations_and_opt_outs() {
    init();
    let (hs, _, data) = emulator(
        Options {
            burst_limit: None,
            ..Options::default()
        },
        1_000,
    )
    .await;
    let source = HubspotSource::new(config(&hs.base_url, TOKEN_VAR), "source").expect("source");
    source.check().await.expect("check");

    let companies = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(companies.len(), data.companies.len());
    assert_unique(&companies);
    let company_ids: HashSet<&str> = companies.iter().map(|r| r.source_id.as_str()).collect();

    let contacts = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), data.contacts.len());
    assert_unique(&contacts);
    for (record, seeded) in contacts.iter().zip(&data.contacts) {
        assert_eq!(
            record.source_id,
            (FIRST_CONTACT_ID + seeded.key as u64).to_string()
        );
        let expected_company = seeded
            .company
            .map(|k| Value::Reference((FIRST_COMPANY_ID + k as u64).to_string()));
        assert_eq!(
            record.get(field::COMPANY),
            expected_company.as_ref(),
            "contact {}",
            record.source_id
        );
        if let Some(Value::Reference(company)) = record.get(field::COMPANY) {
            assert!(
                company_ids.contains(company.as_str()),
                "reference to a company that was read"
            );
        }
        assert_eq!(
            record.get(field::EMAIL_OPT_OUT),
            Some(&Value::Bool(seeded.email_opt_out))
        );
        // SMS opt-outs come from communication preferences, by mobile number: true or absent.
        assert_eq!(
            record.get(field::SMS_OPT_OUT),
            seeded.sms_opt_out.then_some(&Value::Bool(true))
        );
        assert_eq!(record.text(field::EMAIL), seeded.email.as_deref());
        assert_eq!(record.text(field::LAST_NAME), seeded.last_name.as_deref());
        assert_eq!(
            record.get(field::CREATED_AT),
            Some(&Value::Timestamp(seeded.created_at_ms))
        );
    }
    let first = &data.companies[0];
    let company = &companies[0];
    assert_eq!(company.text(field::NAME), first.name.as_deref());
    assert_eq!(
        company.get(field::EMPLOYEE_COUNT),
        first
            .employee_count
            .map(|n| Value::Integer(i64::from(n)))
            .as_ref()
    );
    assert_eq!(
        company.get(field::UPDATED_AT),
        Some(&Value::Timestamp(first.updated_at_ms))
    );
    let (requests, retries, throttled) = source
        .http_stats()
        .expect("hubspot counts requests")
        .snapshot();
    assert_eq!((retries, throttled), (0, 0));
    assert_eq!(
        requests,
        1 + 2 + 10 + 1,
        "check, 2 company pages, 10 contact pages, and one look at the account's subscription \
         types: none on SMS, so no page's SMS statuses are read"
    );
}

#[tokio::test]
async fn bad_token_is_an_auth_error_naming_vendor_and_endpoint_without_the_token() {
    init();
    let (hs, _, _) = emulator(Options::default(), 10).await;
    let source = HubspotSource::new(config(&hs.base_url, BAD_TOKEN_VAR), "source").expect("source");
    for result in [
        source.check().await.err(),
        source.read_page(ObjectType::COMPANIES, None).await.err(),
    ] {
        let err = result.expect("an error");
        assert!(
            matches!(err, ConnectorError::Auth { status: 401, .. }),
            "{err:?}"
        );
        assert!(err.is_operator_fault());
        let text = err.to_string();
        assert!(
            text.contains("hubspot") && text.contains("GET /crm/v3/objects/"),
            "{text}"
        );
        assert!(text.contains("INVALID_AUTHENTICATION"), "{text}");
        assert!(
            !text.contains(BAD_TOKEN) && !format!("{err:?}").contains(BAD_TOKEN),
            "{text}"
        );
    }
}

#[tokio::test]
async fn unset_token_variable_is_a_config_error() {
    init();
    let config = config("http://127.0.0.1:9", "FERRY_HUBSPOT_TEST_SURELY_UNSET");
    match HubspotSource::new(config, "source") {
        Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "source.token"),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[tokio::test]
async fn a_429_storm_is_retried_and_nothing_is_lost() {
    init();
    let faults = Faults {
        throttle_every: Some(3),
        retry_after_secs: None,
        ..Faults::default()
    };
    let (hs, _, data) = emulator(
        Options {
            faults,
            burst_limit: None,
            ..Options::default()
        },
        500,
    )
    .await;
    let source = HubspotSource::new(
        HubspotConfig {
            page_size: Some(50),
            ..config(&hs.base_url, TOKEN_VAR)
        },
        "source",
    )
    .expect("source");
    let companies = read_all(&source, ObjectType::COMPANIES).await;
    let contacts = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(
        (companies.len(), contacts.len()),
        (data.companies.len(), data.contacts.len())
    );
    assert_unique(&contacts);
    let (_, retries, throttled) = source
        .http_stats()
        .expect("hubspot counts requests")
        .snapshot();
    assert!(
        throttled >= 4 && retries >= throttled,
        "throttled {throttled}, retries {retries}"
    );
}

#[tokio::test]
async fn a_tight_burst_limit_is_respected_with_zero_429s() {
    init();
    // 22 pages at 20 requests per 10 s: without pacing, requests 21 and 22 would be refused.
    let (hs, emulator, data) = emulator(
        Options {
            burst_limit: Some(20),
            ..Options::default()
        },
        110,
    )
    .await;
    let config = HubspotConfig {
        rate_limit_per_10s: Some(20),
        page_size: Some(5),
        ..config(&hs.base_url, TOKEN_VAR)
    };
    let source = HubspotSource::new(config, "source").expect("source");
    let started = Instant::now();
    let contacts = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), data.contacts.len());
    assert_unique(&contacts);
    let (requests, retries, throttled) = source
        .http_stats()
        .expect("hubspot counts requests")
        .snapshot();
    // And one look at the account's subscription types: none on SMS, so no SMS statuses.
    let expected = 22 + 1;
    assert_eq!((requests, retries, throttled), (expected, 0, 0));
    assert_eq!(
        emulator.request_counts(),
        (expected, 0),
        "the emulator refused nothing"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "paced, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreadable_values_are_reported_by_field_not_value() {
    init();
    let (hs, emulator, data) = emulator(
        Options {
            burst_limit: None,
            ..Options::default()
        },
        50,
    )
    .await;
    let bad_id = FIRST_COMPANY_ID.to_string();
    assert!(emulator.put_raw("companies", &bad_id, "numberofemployees", "lots-of-people"));
    let source = HubspotSource::new(config(&hs.base_url, TOKEN_VAR), "source").expect("source");
    let page = source
        .read_page(ObjectType::COMPANIES, None)
        .await
        .expect("page");
    assert_eq!(page.records.len(), data.companies.len() - 1);
    assert!(page.records.iter().all(|r| r.source_id != bad_id));
    assert_eq!(page.unreadable.len(), 1);
    let rejection = &page.unreadable[0];
    assert_eq!(rejection.source_id, bad_id);
    assert!(
        rejection.reason.contains("employee_count"),
        "{}",
        rejection.reason
    );
    assert!(
        !rejection.reason.contains("lots-of-people"),
        "{}",
        rejection.reason
    );
}

#[tokio::test]
async fn garbled_json_is_malformed_naming_vendor_and_endpoint() {
    init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "{\"results\": [oops";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let source =
        HubspotSource::new(config(&format!("http://{addr}"), TOKEN_VAR), "source").expect("source");
    // Companies: a contacts read asks for the account's subscription types first.
    let err = source
        .read_page(ObjectType::COMPANIES, None)
        .await
        .expect_err("malformed");
    assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("hubspot") && text.contains("GET /crm/v3/objects/companies"),
        "{text}"
    );
}

/// Serves `body` (raw bytes, JSON) to every request on a loopback port; returns its address.
fn serve_raw(body: &'static [u8]) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    addr
}

#[tokio::test]
async fn the_cursor_is_found_before_the_records_are_read_and_agrees_with_them() {
    init();
    // A cursor of plain text is skimmed; one with bytes that are not UTF-8 cannot be, so the
    // page is read whole at once, the bytes replaced as everywhere else.
    let plain: &[u8] = br#"{"results":[{"id":"51","properties":{"email":"a@example.com"},"createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-01T00:00:00Z","archived":false}],"paging":{"next":{"after":"52","link":"x"}}}"#;
    let garbled: &[u8] = b"{\"results\":[],\"paging\":{\"next\":{\"after\":\"5\xff2\"}}}";
    for (body, cursor) in [(plain, "52"), (garbled, "5\u{FFFD}2")] {
        let addr = serve_raw(body);
        let source = HubspotSource::new(config(&format!("http://{addr}"), TOKEN_VAR), "source")
            .expect("source");
        let fetched = source
            .fetch_page(ObjectType::CONTACTS, None)
            .await
            .expect("fetched");
        assert_eq!(fetched.next.as_deref(), Some(cursor));
        let page = (fetched.records)().expect("records");
        assert_eq!(
            page.next.as_deref(),
            Some(cursor),
            "the same cursor both ways"
        );
        assert_eq!(page.records.len(), usize::from(body == plain));
    }
}

#[tokio::test]
async fn count_is_the_seeded_number_from_one_search_each() {
    init();
    let (hs, emulator, data) = emulator(Options::default(), 120).await;
    let source = HubspotSource::new(config(&hs.base_url, TOKEN_VAR), "source").expect("source");
    let contacts = source.count(ObjectType::CONTACTS).await.expect("count");
    let companies = source.count(ObjectType::COMPANIES).await.expect("count");
    assert_eq!(contacts, Some(data.contacts.len() as u64));
    assert_eq!(companies, Some(data.companies.len() as u64));
    assert_eq!(
        emulator.request_counts(),
        (2, 0),
        "one search each, none refused"
    );
    let (requests, _, _) = source.http_stats().expect("stats").snapshot();
    assert_eq!(requests, 2, "searches are counted in the source's requests");
}

#[tokio::test]
async fn counts_in_a_row_stay_under_the_five_per_second_search_limit() {
    init();
    // Search is exempt from the ten-second window: a burst limit of 2 must not slow it down.
    let (hs, emulator, data) = emulator(
        Options {
            burst_limit: Some(2),
            ..Options::default()
        },
        10,
    )
    .await;
    let source = HubspotSource::new(config(&hs.base_url, TOKEN_VAR), "source").expect("source");
    let started = Instant::now();
    for _ in 0..8 {
        let n = source.count(ObjectType::CONTACTS).await.expect("count");
        assert_eq!(n, Some(data.contacts.len() as u64));
    }
    assert_eq!(
        emulator.request_counts(),
        (8, 0),
        "the emulator refused nothing"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_300) && elapsed < Duration::from_secs(5),
        "paced at under 5 per second, {elapsed:?}"
    );
    assert_eq!(
        source.rate_limit(),
        Some(RateLimit::new(100, Duration::from_secs(10))),
        "search answers announce nothing, and the search limit is not the burst limit"
    );
}

#[tokio::test]
async fn count_without_a_total_is_none() {
    init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "{\"results\": []}";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let source =
        HubspotSource::new(config(&format!("http://{addr}"), TOKEN_VAR), "source").expect("source");
    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        None
    );
}

#[tokio::test]
async fn an_announced_limit_replaces_the_default_and_is_capped_by_a_configured_one() {
    init();
    let per_10s = |n| Some(RateLimit::new(n, Duration::from_secs(10)));
    let (professional, _, _) = emulator(
        Options {
            burst_limit: Some(190),
            ..Options::default()
        },
        10,
    )
    .await;
    let (starter, _, _) = emulator(Options::default(), 10).await;

    // Not configured: the default 100 until HubSpot says 190, then 190.
    let source =
        HubspotSource::new(config(&professional.base_url, TOKEN_VAR), "source").expect("source");
    assert_eq!(source.rate_limit(), per_10s(100));
    source.check().await.expect("check");
    assert_eq!(source.rate_limit(), per_10s(190));

    // Configured at 150: a cap that 190 cannot raise, but that 100 lowers.
    let capped = |base_url: &str| {
        let config = HubspotConfig {
            rate_limit_per_10s: Some(150),
            ..config(base_url, TOKEN_VAR)
        };
        HubspotSource::new(config, "source").expect("source")
    };
    let source = capped(&professional.base_url);
    source.check().await.expect("check");
    assert_eq!(source.rate_limit(), per_10s(150));
    let source = capped(&starter.base_url);
    source.check().await.expect("check");
    assert_eq!(source.rate_limit(), per_10s(100));
}

/// SMS opt-outs are read per mobile number from communication preferences, in one batch read
/// a page, or one request a number where the account lacks the batch scopes; `describe` shows
/// them as a read-only flag named `sms_opt_out`, so the consent guard finds them.
#[tokio::test]
async fn sms_opt_outs_are_read_per_mobile_number_with_or_without_the_batch_scopes() {
    init();
    let data = generate(
        120,
        5,
        &Mess {
            opt_out_channels: 0.2,
            ..Mess::none()
        },
    );
    let opted: usize = data.contacts.iter().filter(|c| c.sms_opt_out).count();
    assert!(opted >= 10, "too few seeded SMS opt-outs: {opted}");
    let mobiles = data
        .contacts
        .iter()
        .filter(|c| c.mobile_phone.is_some())
        .count() as u64;
    for batch in [true, false] {
        let emulator = Emulator::new(Options {
            burst_limit: None,
            batch_subscriptions: batch,
            ..Options::default()
        });
        emulator.seed(&data);
        let hs = ferry_sandbox::serve(
            "hubspot",
            emulator.router(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("serve");
        let source = HubspotSource::new(config(&hs.base_url, TOKEN_VAR), "source").expect("source");
        let fields = source
            .describe(ObjectType::CONTACTS)
            .await
            .expect("describe");
        let sms = fields
            .iter()
            .find(|f| f.canonical.as_deref() == Some(field::SMS_OPT_OUT))
            .expect("an SMS opt-out field");
        assert_eq!((sms.name.as_str(), sms.writable), ("sms_opt_out", false));
        let contacts = read_all(&source, ObjectType::CONTACTS).await;
        for (record, seeded) in contacts.iter().zip(&data.contacts) {
            assert_eq!(
                record.get(field::SMS_OPT_OUT),
                seeded.sms_opt_out.then_some(&Value::Bool(true)),
                "batch {batch}: contact {}",
                record.source_id
            );
        }
        let (requests, _, _) = source.http_stats().expect("stats").snapshot();
        // describe, 2 pages of 100, the account's subscription types (one on SMS), and the
        // statuses: a batch read a page, else the batch's 403 and one request a number.
        let expected = if batch {
            1 + 2 + 1 + 2
        } else {
            1 + 2 + 1 + 1 + mobiles
        };
        assert_eq!(requests, expected, "batch {batch}");
    }
}
