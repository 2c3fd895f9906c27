//! Helpers shared by the connector's tests: an emulator on loopback, configs pointing at it,
//! and the seed data as canonical records.

#![allow(dead_code)]

use std::net::SocketAddr;

use ferry_core::{ObjectType, Projection, Record, SecretRef, Sink, Source, record_digest};
use ferry_dynamics::DynamicsConfig;
use ferry_sandbox::dynamics::{CLIENT_ID, CLIENT_SECRET, Emulator, Options, TENANT_ID};
use secrecy::SecretString;

/// A secret held in memory (tests never touch the process environment).
pub fn in_memory(secret: &str) -> SecretRef {
    SecretRef::in_memory(SecretString::from(secret.to_owned()))
}

/// A Dataverse emulator served on a free loopback port.
pub async fn start(options: Options) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(options);
    let running = ferry_sandbox::serve(
        "dynamics",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

/// A config for the emulator at `base_url` with its credentials.
pub fn config(base_url: &str) -> DynamicsConfig {
    DynamicsConfig {
        login_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        max_retries: Some(10),
        ..DynamicsConfig::new(
            base_url,
            TENANT_ID,
            in_memory(CLIENT_ID),
            in_memory(CLIENT_SECRET),
        )
    }
}

/// Every record of `object`, page by page.
pub async fn read_all(source: &dyn Source, object: ObjectType) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("page");
        pages += 1;
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (records, pages),
        }
    }
}

/// Upserts `records` batch by batch, checking outcomes come back in order.
pub async fn upsert_all(
    sink: &dyn Sink,
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

/// Reads `records` back and checks every digest equals the one sent.
pub async fn assert_read_back_equal(sink: &dyn Sink, object: ObjectType, records: &[Record]) {
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
    let mut before: Vec<_> = records
        .iter()
        .map(|r| (r.source_id.clone(), record_digest(r, &projection)))
        .collect();
    // As the engine compares (`Directory::canonical_back`): a record sent without an owner is
    // compared without one, since Dataverse gives it the caller as owner.
    let back: Vec<Record> = back
        .into_iter()
        .map(|mut r| {
            let sent = records.iter().find(|s| s.source_id == r.source_id);
            if sent.is_some_and(|s| s.get(ferry_core::field::OWNER).is_none()) {
                r.fields.remove(ferry_core::field::OWNER);
            }
            r
        })
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
