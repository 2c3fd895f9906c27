//! A single-currency org (multiple currencies off, as on most editions: no `Currency` field on
//! Deals), against the sandbox emulator over real HTTP on loopback: as a source every deal
//! carries the org's home currency; as a sink it declares that it holds deals in that currency
//! only, and writes and reads them back without a currency field.

mod common;

use common::{config, read_all, start};
use ferry_core::{FieldLimit, ObjectType, Record, Sink, Value, field};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::{HOME_CURRENCY, Options};
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::json;

#[tokio::test]
async fn a_single_currency_org_carries_and_holds_its_home_currency_only() {
    let (emulator, running) = start(Options {
        multi_currency: false,
        ..Options::default()
    })
    .await;
    let seeded = generate(40, 5, &Mess::none());
    emulator.seed(&seeded);

    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    let (deals, _) = read_all(&source, ObjectType::DEALS).await;
    assert!(!deals.is_empty());
    for d in &deals {
        assert_eq!(
            d.text(field::CURRENCY),
            Some(HOME_CURRENCY),
            "{}",
            d.source_id
        );
    }

    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    sink.survey(ObjectType::DEALS).await.expect("survey");
    let declared = sink.capability(ObjectType::DEALS).expect("capability");
    assert_eq!(
        declared.limits,
        vec![FieldLimit::only_values(
            field::CURRENCY,
            vec![HOME_CURRENCY.to_owned()]
        )]
    );
    assert!(!declared.stored.iter().any(|f| f == field::CURRENCY));
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let pipelines = sink.pipelines(ObjectType::DEALS).await.expect("pipelines");
    let mut deal = Record::new(ObjectType::DEALS, "d-1");
    deal.set(field::NAME, Value::Text("Renewal".into()));
    deal.set(field::AMOUNT, Value::Decimal(1250.5));
    deal.set(field::CURRENCY, Value::Text(HOME_CURRENCY.into()));
    deal.set(
        field::STAGE,
        Value::stage(pipelines[0].id.clone(), pipelines[0].stages[0].id.clone()),
    );
    let written = sink
        .upsert(ObjectType::DEALS, &[deal])
        .await
        .expect("upsert");
    assert!(written[0].result.is_ok(), "{written:?}");
    let back = sink
        .read_back(ObjectType::DEALS, &["d-1".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back[0].get(field::AMOUNT), Some(&Value::Decimal(1250.5)));
}

#[tokio::test]
async fn a_multi_currency_org_declares_no_currency_limit() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    sink.survey(ObjectType::DEALS).await.expect("survey");
    let declared = sink.capability(ObjectType::DEALS).expect("capability");
    assert!(declared.limits.is_empty(), "{:?}", declared.limits);
    assert!(declared.stored.iter().any(|f| f == field::CURRENCY));
}
