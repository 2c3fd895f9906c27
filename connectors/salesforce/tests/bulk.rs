//! The Bulk API 2.0 client against the sandbox emulator over real HTTP on loopback: every row
//! booked saved, failed or unprocessed; faults; 429s while polling; query pages by locator;
//! API calls per record.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::SecretRef;
use ferry_salesforce::SalesforceConfig;
use ferry_salesforce::bulk::{BulkClient, Ingest, Operation, Polling, RowOutcome};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce::{Emulator, Options};
use secrecy::SecretString;
use serde_json::json;

const EXT: &str = "Ferry_Source_Id__c";

async fn start(faults: Faults) -> (Emulator, ferry_sandbox::Running, BulkClient) {
    let emulator = Emulator::new(Options {
        faults,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let mut config: SalesforceConfig = serde_json::from_value(json!({
        "login_url": running.base_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
        "max_retries": 10,
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    let bulk = BulkClient::new(&config, "sink")
        .expect("client")
        .with_polling(Polling {
            first: Duration::from_millis(1),
            max: Duration::from_millis(20),
            timeout: Duration::from_secs(60),
        });
    (emulator, running, bulk)
}

/// Contacts `from..to` as rows of `EXT, LastName, Email`; every 10th without a last name,
/// every 25th with a malformed email.
fn contacts(from: usize, to: usize) -> Vec<Vec<Option<String>>> {
    (from..to)
        .map(|i| {
            let last = (i % 10 != 3).then(|| format!("Last{i}"));
            let email = if i % 25 == 7 {
                format!("broken{i}")
            } else {
                format!("c{i}@example.org")
            };
            vec![Some(format!("c{i}")), last, Some(email)]
        })
        .collect()
}

fn upsert<'a>(rows: &'a [Vec<Option<String>>]) -> Ingest<'a> {
    Ingest {
        object: "Contact",
        operation: Operation::Upsert {
            external_id_field: EXT,
        },
        columns: &[EXT, "LastName", "Email"],
        rows,
        key_column: 0,
    }
}

#[tokio::test]
async fn an_upsert_job_books_every_row_in_input_order_in_seven_api_calls() {
    let (emulator, _running, bulk) = start(Faults::default()).await;
    let rows = contacts(0, 2_500);
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert_eq!(outcome.job_errors(), Vec::<&str>::new());
    assert_eq!(outcome.rows.len(), rows.len());
    let mut saved = 0;
    for (i, row) in outcome.rows.iter().enumerate() {
        match row {
            RowOutcome::Failed { code, fields, id } if i % 10 == 3 => {
                assert_eq!(
                    (code.as_str(), fields.as_slice()),
                    ("REQUIRED_FIELD_MISSING", &["LastName".to_owned()][..]),
                    "row {i}"
                );
                assert_eq!(*id, None);
            }
            RowOutcome::Failed { code, fields, .. } if i % 25 == 7 => {
                assert_eq!(
                    (code.as_str(), fields.as_slice()),
                    ("INVALID_EMAIL_ADDRESS", &["Email".to_owned()][..]),
                    "row {i}"
                );
            }
            RowOutcome::Saved { id, created: true } => {
                saved += 1;
                let record = emulator
                    .record_by_external_id("Contact", &format!("c{i}"))
                    .expect("saved");
                assert_eq!(
                    record["Id"],
                    id.as_str(),
                    "row {i} booked to its own record"
                );
            }
            other => panic!("row {i}: {other:?}"),
        }
    }
    assert_eq!(emulator.count("Contact"), saved);
    // Create, upload, close, two polls, two result sets.
    assert_eq!(emulator.api_usage(), 7);

    // Again: the saved ones are updated, not created; a repeated key is refused on its own.
    let mut again = contacts(0, 100);
    again.push(again[0].clone());
    let outcome = bulk.ingest(&upsert(&again)).await.expect("ingest");
    assert!(
        matches!(outcome.rows[0], RowOutcome::Saved { created: false, .. }),
        "{:?}",
        outcome.rows[0]
    );
    assert!(
        matches!(&outcome.rows[100], RowOutcome::Failed { code, .. } if code == "DUPLICATE_EXTERNAL_ID"),
        "{:?}",
        outcome.rows[100]
    );
}

#[tokio::test]
async fn a_hundred_thousand_records_take_six_api_calls_and_one_query_job_reads_them_back() {
    let (emulator, _running, bulk) = start(Faults::default()).await;
    let n = 100_000;
    let rows: Vec<Vec<Option<String>>> = (0..n)
        .map(|i| vec![Some(format!("h{i}")), Some(format!("Last{i}")), None])
        .collect();
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert!(
        outcome
            .rows
            .iter()
            .all(|r| matches!(r, RowOutcome::Saved { created: true, .. }))
    );
    let calls = emulator.api_usage();
    // Create, upload, close, two polls, the saved rows: a job that says none failed has no
    // failed rows to fetch.
    assert_eq!(calls, 6);
    assert!(
        n as u64 / calls >= 2_000,
        "{} records per API call",
        n as u64 / calls
    );

    let mut seen = 0;
    let read = bulk
        .query_each(
            &format!("SELECT Id, {EXT}, LastName FROM Contact"),
            None,
            |header, cells| {
                assert_eq!(header, ["Id", EXT, "LastName"]);
                assert_eq!(cells[2].strip_prefix("Last"), cells[1].strip_prefix('h'));
                seen += 1;
            },
        )
        .await
        .expect("query");
    assert_eq!((seen, read.rows), (n, n));
    // Create, two polls, two pages of 50,000.
    assert_eq!(emulator.api_usage() - calls, 5);
}

#[tokio::test]
async fn query_pages_follow_the_locator_to_the_end() {
    let (_emulator, _running, bulk) = start(Faults::default()).await;
    let rows: Vec<Vec<Option<String>>> = (0..2_500)
        .map(|i| {
            vec![
                Some(format!("p{i:04}")),
                Some(format!("Doose's, \"{i}\"")),
                None,
            ]
        })
        .collect();
    bulk.ingest(&upsert(&rows)).await.expect("ingest");
    let mut got = Vec::new();
    let read = bulk
        .query_each(
            &format!("SELECT {EXT}, LastName, Email FROM Contact ORDER BY {EXT}"),
            Some(1_000),
            |_, cells| {
                got.push((
                    cells[0].to_owned(),
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                ));
            },
        )
        .await
        .expect("query");
    assert_eq!((read.rows, read.pages), (2_500, 3));
    assert_eq!(
        got[7],
        ("p0007".into(), "Doose's, \"7\"".into(), String::new())
    );
    assert_eq!(got.last().map(|g| g.0.as_str()), Some("p2499"));
}

#[tokio::test]
async fn a_job_failed_part_way_books_the_rest_unprocessed_and_locked_rows_failed() {
    let (emulator, _running, bulk) = start(Faults::parse("bulkcut:100").expect("faults")).await;
    let rows = contacts(0, 40);
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert_eq!(outcome.job_errors().len(), 1);
    for (i, row) in outcome.rows.iter().enumerate() {
        match (i < 20, row) {
            (true, RowOutcome::Saved { .. } | RowOutcome::Failed { .. }) => {}
            (false, RowOutcome::Unprocessed) => {
                assert!(
                    emulator
                        .record_by_external_id("Contact", &format!("c{i}"))
                        .is_none()
                );
            }
            other => panic!("row {i}: {other:?}"),
        }
    }

    let (emulator, _running, bulk) =
        start(Faults::parse("partial:30,seed:3").expect("faults")).await;
    let rows: Vec<Vec<Option<String>>> = (0..60)
        .map(|i| vec![Some(format!("l{i}")), Some(format!("Last{i}")), None])
        .collect();
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    let locked: Vec<usize> = (0..60)
        .filter(|i| matches!(&outcome.rows[*i], RowOutcome::Failed { code, .. } if code == "UNABLE_TO_LOCK_ROW"))
        .collect();
    assert!((5..=35).contains(&locked.len()), "{}", locked.len());
    for i in &locked {
        assert!(
            emulator
                .record_by_external_id("Contact", &format!("l{i}"))
                .is_none()
        );
    }
    assert_eq!(emulator.count("Contact"), 60 - locked.len());
}

#[tokio::test]
async fn polling_rides_out_429s_through_the_shared_retry() {
    let faults = Faults {
        throttle_every: Some(3),
        ..Faults::default()
    };
    let (emulator, _running, bulk) = start(faults).await;
    let rows = contacts(0, 30);
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert_eq!(outcome.job_errors(), Vec::<&str>::new());
    assert!(
        outcome
            .rows
            .iter()
            .all(|r| !matches!(r, RowOutcome::Unprocessed))
    );
    let report = bulk.stats().report();
    assert!(report.throttled > 0, "{report:?}");
    assert_eq!(
        emulator.api_usage(),
        7,
        "a throttled call is not an API call"
    );
}

#[tokio::test]
async fn a_session_expiring_between_job_calls_is_renewed() {
    let (emulator, _running, bulk) = start(Faults::parse("expire:2").expect("faults")).await;
    let rows = contacts(0, 30);
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert_eq!(outcome.job_errors(), Vec::<&str>::new());
    assert!(
        outcome
            .rows
            .iter()
            .all(|r| !matches!(r, RowOutcome::Unprocessed))
    );
    assert_eq!(
        emulator.count("Contact"),
        30 - 4,
        "every row but the four refused ones saved"
    );
}

#[tokio::test]
async fn rows_larger_than_one_upload_go_in_several_jobs_booked_in_input_order() {
    let (emulator, _running, bulk) = start(Faults::default()).await;
    let bulk = bulk.with_max_upload(2_000);
    let rows = contacts(0, 300);
    let outcome = bulk.ingest(&upsert(&rows)).await.expect("ingest");
    assert!(outcome.jobs.len() > 1, "{} jobs", outcome.jobs.len());
    let mut next = 0;
    for job in &outcome.jobs {
        assert_eq!(job.rows.start, next, "the jobs cover the rows in order");
        assert_eq!(job.error, None);
        next = job.rows.end;
    }
    assert_eq!(next, 300);
    for (i, row) in outcome.rows.iter().enumerate() {
        let refused = i % 10 == 3 || i % 25 == 7;
        match row {
            RowOutcome::Saved { id, .. } if !refused => {
                let record = emulator
                    .record_by_external_id("Contact", &format!("c{i}"))
                    .expect("saved");
                assert_eq!(record["Id"], id.as_str(), "row {i}");
            }
            RowOutcome::Failed { .. } if refused => {}
            other => panic!("row {i}: {other:?}"),
        }
    }
    assert_eq!(emulator.api_usage(), 7 * outcome.jobs.len() as u64);
}
