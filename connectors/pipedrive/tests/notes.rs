//! Pipedrive notes through the sink against the emulator over real HTTP on loopback: found by
//! their natural key (parent and original time), never made twice when a create's answer is
//! lost, refused when they cannot be keyed or held.

use std::net::SocketAddr;

use ferry_core::model::Link;
use ferry_core::{ConnectorError, ObjectType, Record, SecretRef, Sink, Value, field};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
use secrecy::SecretString;

async fn start(faults: Faults) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        faults,
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

fn sink(base_url: &str) -> PipedriveSink {
    let config = PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        concurrency: Some(8),
        max_retries: Some(10),
        batch_size: Some(10),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    };
    PipedriveSink::new(config, "sink").expect("sink")
}

/// `n` companies `co-0`… written through the sink (the notes' parents).
async fn companies(sink: &PipedriveSink, n: usize) {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let mut r = Record::new(ObjectType::COMPANIES, format!("co-{i}"));
            r.set(field::NAME, Value::Text(format!("Company {i}")));
            r
        })
        .collect();
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    for batch in records.chunks(10) {
        let outcomes = sink
            .upsert(ObjectType::COMPANIES, batch)
            .await
            .expect("upsert");
        assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    }
}

fn note(id: &str, body: &str, ms: i64, parents: &[(ObjectType, &str)]) -> Record {
    let mut r = Record::new(ObjectType::NOTES, id);
    r.set(field::BODY, Value::Text(body.into()));
    r.set(field::TIMESTAMP, Value::Timestamp(ms));
    let links = parents.iter().map(|(object, id)| Link {
        object: *object,
        id: (*id).into(),
    });
    r.set(field::PARENTS, Value::Links(links.collect()));
    r
}

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn a_note_whose_create_answer_is_lost_is_not_made_twice() {
    // A fifth of all requests are carried out and then the connection drops mid-answer, the
    // note creates included: retried blindly, each such create makes a second note.
    let (emulator, running) = start(Faults {
        resets: Some(20),
        seed: 5,
        ..Faults::default()
    })
    .await;
    let sink = sink(&running.base_url);
    companies(&sink, 6).await;
    let before = emulator.count("notes").unwrap_or(0);
    // 60 notes on 6 companies, three of each company's in one second (apart by text).
    let notes: Vec<Record> = (0..60)
        .map(|i| {
            let company = format!("co-{}", i % 6);
            let ms = T0 + (i / 18) as i64 * 1000;
            note(
                &format!("n-{i}"),
                &format!("<p>Note {i}</p>"),
                ms,
                &[(ObjectType::COMPANIES, company.as_str())],
            )
        })
        .collect();
    sink.prepare(ObjectType::NOTES).await.expect("prepare");
    let batches = notes.chunks(10).map(|batch| {
        let sink = &sink;
        async move { sink.upsert(ObjectType::NOTES, batch).await.expect("upsert") }
    });
    let outcomes: Vec<_> = futures::future::join_all(batches)
        .await
        .into_iter()
        .flatten()
        .collect();
    let created = outcomes
        .iter()
        .filter(|o| o.result.as_ref().is_ok_and(|w| w.created))
        .count();
    assert_eq!(created, notes.len(), "{outcomes:?}");
    assert_eq!(emulator.count("notes"), Some(before + notes.len()));
    let (_, retries, _) = sink.http_stats().expect("stats").snapshot();
    assert!(retries > 10, "the resets were retried: {retries}");
    // Each outcome names a note of its own.
    let mut ids: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|w| w.sink_id.as_str()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), notes.len());
    // Read back by what was sent, in a new sink (nothing cached): every note, its own body.
    let fresh = self::sink(&running.base_url);
    let back = fresh
        .read_back_sent(ObjectType::NOTES, &notes)
        .await
        .expect("read back");
    assert_eq!(back.len(), notes.len());
    for b in &back {
        let sent = notes
            .iter()
            .find(|n| n.source_id == b.source_id)
            .expect("sent");
        assert_eq!(b.get(field::BODY), sent.get(field::BODY));
        assert_eq!(b.get(field::PARENTS), sent.get(field::PARENTS));
    }
}

#[tokio::test]
async fn notes_that_cannot_be_keyed_or_held_are_refused_and_read_back_is_by_what_was_sent() {
    let (emulator, running) = start(Faults::default()).await;
    let sink = sink(&running.base_url);
    companies(&sink, 2).await;
    sink.prepare(ObjectType::NOTES).await.expect("prepare");
    let before = emulator.count("notes").unwrap_or(0);
    let mut timeless = note("n-1", "<p>x</p>", T0, &[(ObjectType::COMPANIES, "co-0")]);
    timeless.fields.remove(field::TIMESTAMP);
    let orphan = note("n-2", "<p>x</p>", T0, &[]);
    let two_companies = note(
        "n-3",
        "<p>x</p>",
        T0,
        &[
            (ObjectType::COMPANIES, "co-0"),
            (ObjectType::COMPANIES, "co-1"),
        ],
    );
    let unknown_parent = note("n-4", "<p>x</p>", T0, &[(ObjectType::COMPANIES, "co-9")]);
    let fine = note(
        "n-5",
        "<p>kept</p>",
        T0 + 1500,
        &[(ObjectType::COMPANIES, "co-1")],
    );
    let records = [timeless, orphan, two_companies, unknown_parent, fine];
    let outcomes = sink
        .upsert(ObjectType::NOTES, &records)
        .await
        .expect("upsert");
    let codes: Vec<&str> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(_) => "ok",
            Err(r) => r.code.as_str(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "NOTE_NOT_KEYED",
            "NOTE_NOT_KEYED",
            "LINK_NOT_HELD",
            ferry_core::resolver::UNRESOLVED_REFERENCE,
            "ok"
        ]
    );
    for o in &outcomes {
        if let Err(r) = &o.result {
            assert!(!r.reason.contains("co-"), "{}", r.reason);
        }
    }
    assert_eq!(emulator.count("notes"), Some(before + 1));
    // Written with its original time, to the second.
    let back = sink
        .read_back_sent(ObjectType::NOTES, &records[4..])
        .await
        .expect("read back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].source_id, "n-5");
    assert_eq!(
        back[0].get(field::TIMESTAMP),
        Some(&Value::Timestamp(T0 + 1000))
    );
    // Another second is another note: not found.
    let mut moved = records[4].clone();
    moved.set(field::TIMESTAMP, Value::Timestamp(T0 + 2000));
    let none = sink
        .read_back_sent(ObjectType::NOTES, &[moved])
        .await
        .expect("read back");
    assert!(none.is_empty(), "{none:?}");
    // By source id alone a note cannot be found: refused, saying why; nothing is counted.
    match sink.read_back(ObjectType::NOTES, &["n-5".to_owned()]).await {
        Err(ConnectorError::Unsupported { detail, .. }) => {
            assert!(detail.contains("read_back_sent"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sink.count_with_source_id(ObjectType::NOTES)
            .await
            .expect("count"),
        None
    );
}
