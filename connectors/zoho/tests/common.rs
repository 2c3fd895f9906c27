//! Shared helpers: the Zoho emulator on loopback and connector configs pointing at it.
#![allow(dead_code)]

use std::net::SocketAddr;

use ferry_core::{ObjectType, Projection, Record, SecretRef, Sink, Source, record_digest};
use ferry_sandbox::zoho::{
    Emulator, Options, ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN,
};
use ferry_zoho::ZohoConfig;
use secrecy::SecretString;
use serde_json::json;

pub fn in_memory(secret: &str) -> SecretRef {
    SecretRef::in_memory(SecretString::from(secret.to_owned()))
}

pub async fn start(options: Options) -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(options);
    let running = ferry_sandbox::serve(
        "zoho",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

/// A config for the emulator at `base_url`, with its credentials, plus `extra` settings.
pub fn config(base_url: &str, extra: serde_json::Value) -> ZohoConfig {
    let mut c = json!({
        "accounts_url": base_url,
        "api_url": base_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
        "refresh_token": "${UNUSED}",
        "max_retries": 10,
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    let mut config: ZohoConfig = serde_json::from_value(c).expect("config");
    config.client_id = in_memory(ZOHO_CLIENT_ID);
    config.client_secret = in_memory(ZOHO_CLIENT_SECRET);
    config.refresh_token = in_memory(ZOHO_REFRESH_TOKEN);
    config
}

/// Every record of `object`, page by page, with the cursors handed out.
pub async fn read_all(source: &dyn Source, object: ObjectType) -> (Vec<Record>, Vec<String>) {
    let mut out = Vec::new();
    let mut cursors = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("read page");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        out.extend(page.records);
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => break,
        }
    }
    (out, cursors)
}

/// Reads `records` back and checks every digest over the sink's stored fields matches.
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
    // As the engine compares (`Directory::canonical_back`): a record sent without an owner gets
    // Zoho's default owner (the calling user), which is not a difference.
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

/// An access token of the emulator's app, as another app of the org would get one.
pub async fn token(base_url: &str) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base_url}/oauth/v2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", ZOHO_CLIENT_ID),
            ("client_secret", ZOHO_CLIENT_SECRET),
            ("refresh_token", ZOHO_REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}
