//! Helpers shared by the connector's tests: an emulator on loopback, configs pointing at it,
//! and the seed data as canonical records.

#![allow(dead_code)]

use std::net::SocketAddr;

use ferry_core::{
    ObjectType, Projection, Record, SecretRef, Sink, Source, Value, field, record_digest,
};
use ferry_dynamics::DynamicsConfig;
use ferry_sandbox::dynamics::{CLIENT_ID, CLIENT_SECRET, Emulator, Options, TENANT_ID};
use ferry_sandbox::seed::SeedData;
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

/// The seed data as canonical records, as a source connector would produce them.
pub fn canonical(data: &SeedData) -> (Vec<Record>, Vec<Record>) {
    let text = |r: &mut Record, f: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            r.set(f, Value::Text(v.clone()));
        }
    };
    let companies = data
        .companies
        .iter()
        .map(|c| {
            let mut r = Record::new(ObjectType::Companies, format!("co-{}", c.key));
            text(&mut r, field::NAME, &c.name);
            text(&mut r, field::DOMAIN, &c.domain);
            text(&mut r, field::PHONE, &c.phone);
            text(&mut r, field::INDUSTRY, &c.industry);
            if let Some(n) = c.employee_count {
                r.set(field::EMPLOYEE_COUNT, Value::Integer(i64::from(n)));
            }
            if let Some(n) = c.annual_revenue {
                r.set(field::ANNUAL_REVENUE, Value::Decimal(n));
            }
            text(&mut r, field::STREET, &c.street);
            text(&mut r, field::CITY, &c.city);
            text(&mut r, field::STATE, &c.state);
            text(&mut r, field::POSTAL_CODE, &c.postal_code);
            text(&mut r, field::COUNTRY, &c.country);
            r.set(field::CREATED_AT, Value::Timestamp(c.created_at_ms));
            r
        })
        .collect();
    let contacts = data
        .contacts
        .iter()
        .map(|c| {
            let mut r = Record::new(ObjectType::Contacts, format!("p-{}", c.key));
            text(&mut r, field::EMAIL, &c.email);
            text(&mut r, field::FIRST_NAME, &c.first_name);
            text(&mut r, field::LAST_NAME, &c.last_name);
            text(&mut r, field::PHONE, &c.phone);
            text(&mut r, field::MOBILE_PHONE, &c.mobile_phone);
            text(&mut r, field::JOB_TITLE, &c.job_title);
            text(&mut r, field::STREET, &c.street);
            text(&mut r, field::CITY, &c.city);
            text(&mut r, field::STATE, &c.state);
            text(&mut r, field::POSTAL_CODE, &c.postal_code);
            text(&mut r, field::COUNTRY, &c.country);
            r.set(field::EMAIL_OPT_OUT, Value::Bool(c.email_opt_out));
            if let Some(k) = c.company {
                r.set(field::COMPANY, Value::Reference(format!("co-{k}")));
            }
            r.set(field::UPDATED_AT, Value::Timestamp(c.updated_at_ms));
            r
        })
        .collect();
    (companies, contacts)
}

/// Upserts `records` batch by batch, checking outcomes come back in order.
pub async fn upsert_all(
    sink: &dyn Sink,
    object: ObjectType,
    records: &[Record],
) -> Vec<ferry_core::RecordOutcome> {
    let mut outcomes = Vec::new();
    for batch in records.chunks(sink.batch_size(object)) {
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
    let projection = Projection::new(sink.stored_fields(object));
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut back = Vec::new();
    for chunk in ids.chunks(sink.read_back_size(object)) {
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
