//! Deletions with Pipedrive: as a sink, removing by the source-id field only (Pipedrive's
//! delete, purged after 30 days); as a source, deals deleted in the last 30 days
//! (`status=deleted`), and id sets for persons and organizations.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::{
    ConnectorError, DeletedPage, ObjectType, Record, Removal, RemoveOutcome, SecretRef, Sink,
    Source, Value, Watermark, field,
};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink, PipedriveSource};
use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

fn config(base_url: &str) -> PipedriveConfig {
    PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        max_retries: Some(3),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    }
}

fn outcomes(got: Vec<RemoveOutcome>) -> Vec<(String, String)> {
    got.into_iter()
        .map(|o| {
            let what = match o.result {
                Ok(r) => format!("{r:?}"),
                Err(e) => e.code,
            };
            (o.source_id, what)
        })
        .collect()
}

#[tokio::test]
async fn the_sink_deletes_by_source_id_only_and_refuses_notes_up_front() {
    let (emulator, running) = start().await;
    // Records made in Pipedrive: no source id, never listed nor removed.
    emulator.seed(&generate(4, 3, &Mess::none()));
    let born = emulator.count("companies").expect("companies");
    let sink = PipedriveSink::new(config(&running.base_url), "sink").expect("sink");
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let companies: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = Record::new(ObjectType::COMPANIES, format!("c{i}"));
            r.set(field::NAME, Value::Text(format!("Company {i}")));
            r
        })
        .collect();
    for o in sink
        .upsert(ObjectType::COMPANIES, &companies)
        .await
        .expect("upsert")
    {
        o.result.expect("written");
    }
    let listed = sink
        .source_ids_page(ObjectType::COMPANIES, None)
        .await
        .expect("ids");
    let mut ids = listed.ids;
    ids.sort();
    assert_eq!(
        (ids, listed.next),
        (vec!["c0".into(), "c1".into(), "c2".into()], None)
    );

    let refused = sink
        .remove(ObjectType::NOTES, &[], Removal::Delete)
        .await
        .expect_err("notes carry no source id");
    assert!(
        matches!(refused, ConnectorError::Unsupported { .. }),
        "{refused:?}"
    );
    assert_eq!(
        sink.remove(ObjectType::COMPANIES, &[], Removal::Archive)
            .await
            .expect("nothing"),
        Vec::new()
    );
    let asked = ["c1".to_owned(), "nope".to_owned(), "c2".to_owned()];
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &asked, Removal::Archive)
            .await
            .expect("remove"),
    );
    assert_eq!(
        got,
        [
            ("c1".into(), "Deleted".into()),
            ("nope".into(), "Absent".into()),
            ("c2".into(), "Deleted".into()),
        ]
    );
    assert_eq!(emulator.count("companies"), Some(born + 1));
    // Removed twice: absent (a deleted record is no longer found by its source id).
    let got = outcomes(
        sink.remove(ObjectType::COMPANIES, &asked[..1], Removal::Delete)
            .await
            .expect("remove"),
    );
    assert_eq!(got, [("c1".into(), "Absent".into())]);
    let listed = sink
        .source_ids_page(ObjectType::COMPANIES, None)
        .await
        .expect("ids");
    assert_eq!(listed.ids, ["c0"]);
}

#[tokio::test]
async fn the_source_lists_deals_deleted_in_the_last_30_days_and_says_when_older_are_lost() {
    let (emulator, running) = start().await;
    emulator.seed(&generate(30, 9, &Mess::none()));
    let source = PipedriveSource::new(
        PipedriveConfig {
            page_size: Some(2),
            ..config(&running.base_url)
        },
        "source",
    )
    .expect("source");
    let since = source.sync_point(ObjectType::DEALS).await.expect("point");
    let http = reqwest::Client::new();
    let list: serde_json::Value = http
        .get(format!("{}/api/v2/deals?limit=5", running.base_url))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let deleted: Vec<String> = list["data"]
        .as_array()
        .expect("deals")
        .iter()
        .take(3)
        .map(|d| d["id"].as_u64().expect("id").to_string())
        .collect();
    for id in &deleted {
        let answer = http
            .delete(format!("{}/api/v2/deals/{id}", running.base_url))
            .header("x-api-token", TOKEN)
            .send()
            .await
            .expect("delete");
        assert_eq!(answer.status().as_u16(), 200);
    }
    let read = |since: Watermark| {
        let source = &source;
        async move {
            let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                match source
                    .fetch_deleted_page(ObjectType::DEALS, &since, cursor.as_deref())
                    .await
                    .expect("page")
                {
                    DeletedPage::Lost => return None,
                    DeletedPage::Ids { ids: page, next } => {
                        pages += 1;
                        ids.extend(page);
                        match next {
                            Some(next) => cursor = Some(next),
                            None => return Some((ids, pages)),
                        }
                    }
                }
            }
        }
    };
    let (mut got, pages) = read(since.clone()).await.expect("not lost");
    got.sort();
    let mut want = deleted.clone();
    want.sort();
    assert_eq!(got, want, "exactly the deleted deals");
    assert_eq!(pages, 2, "paged by the list's cursor");
    // Persons and organizations: no listing, the engine compares id sets.
    for object in [ObjectType::CONTACTS, ObjectType::COMPANIES] {
        let refused = source
            .fetch_deleted_page(object, &since, None)
            .await
            .expect_err("no listing");
        assert!(
            matches!(refused, ConnectorError::Unsupported { .. }),
            "{refused:?}"
        );
    }
    // 31 days on, Pipedrive may have purged some deletes since: lost.
    emulator.advance_clock(Duration::from_secs(31 * 86_400));
    assert_eq!(read(since).await, None);
}
