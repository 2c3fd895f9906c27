//! A single-currency org (how most orgs run: no `CurrencyIsoCode` on any record), against the
//! sandbox emulator over real HTTP on loopback: as a sink it declares that it holds deals in
//! its one currency only, writes and reads them back without a currency field; as a source
//! every deal carries the org's currency.

use std::net::SocketAddr;

use ferry_core::{
    Capability, FieldLimit, ObjectType, Record, SecretRef, Sink, Source, Value, field,
};
use ferry_salesforce::{SalesforceConfig, SalesforceSink, SalesforceSource};
use ferry_sandbox::salesforce::{CORPORATE_CURRENCY, Emulator, Options};
use secrecy::SecretString;
use serde_json::json;

async fn serve(multi_currency: bool) -> (ferry_sandbox::Running, SalesforceConfig) {
    let emulator = Emulator::new(Options {
        multi_currency,
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
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    (running, config)
}

async fn surveyed(sink: &SalesforceSink) -> Capability {
    sink.survey(ObjectType::DEALS).await.expect("survey");
    sink.capability(ObjectType::DEALS).expect("capability")
}

fn deal(id: &str, stage: &Value, currency: Option<&str>) -> Record {
    let mut d = Record::new(ObjectType::DEALS, id);
    d.set(field::NAME, Value::Text(format!("Renewal {id}")));
    d.set(field::STAGE, stage.clone());
    d.set(field::CLOSE_DATE, Value::Date(20_000));
    d.set(field::AMOUNT, Value::Decimal(1250.5));
    if let Some(c) = currency {
        d.set(field::CURRENCY, Value::Text(c.into()));
    }
    d
}

/// The first stage of the org's one pipeline.
async fn open_stage(sink: &SalesforceSink) -> Value {
    let pipelines = sink.pipelines(ObjectType::DEALS).await.expect("stages");
    Value::stage(pipelines[0].id.clone(), pipelines[0].stages[0].id.clone())
}

#[tokio::test]
async fn a_single_currency_org_holds_deals_in_its_currency_only() {
    let (_running, config) = serve(false).await;
    let sink = SalesforceSink::new(config.clone(), "sink").expect("sink");
    let declared = surveyed(&sink).await;
    assert_eq!(
        declared.limits,
        vec![FieldLimit::only_values(
            field::CURRENCY,
            vec![CORPORATE_CURRENCY.to_owned()]
        )],
        "the org's one currency is the only one it holds"
    );
    assert!(
        !declared.stored.iter().any(|f| f == field::CURRENCY),
        "no record stores a currency: {:?}",
        declared.stored
    );
    // Before, prepare refused: "cannot write Opportunity fields CurrencyIsoCode".
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let stage = open_stage(&sink).await;
    let deals = [
        deal("d-1", &stage, Some(CORPORATE_CURRENCY)),
        deal("d-2", &stage, None),
    ];
    let written = sink
        .upsert(ObjectType::DEALS, &deals)
        .await
        .expect("upsert");
    assert!(written.iter().all(|o| o.result.is_ok()), "{written:?}");
    let ids: Vec<String> = deals.iter().map(|d| d.source_id.clone()).collect();
    let back = sink
        .read_back(ObjectType::DEALS, &ids)
        .await
        .expect("read back");
    assert_eq!(back.len(), 2);
    for d in &back {
        assert_eq!(d.get(field::AMOUNT), Some(&Value::Decimal(1250.5)));
    }

    // As a source, every deal is in the org's currency.
    let source = SalesforceSource::new(config, "source").expect("source");
    let page = source
        .read_page(ObjectType::DEALS, None)
        .await
        .expect("read deals");
    assert_eq!(page.records.len(), 2);
    for d in &page.records {
        assert_eq!(
            d.text(field::CURRENCY),
            Some(CORPORATE_CURRENCY),
            "{}",
            d.source_id
        );
    }
}

#[tokio::test]
async fn a_multi_currency_org_holds_any_of_its_currencies_per_deal() {
    let (_running, config) = serve(true).await;
    let sink = SalesforceSink::new(config.clone(), "sink").expect("sink");
    let declared = surveyed(&sink).await;
    assert!(declared.limits.is_empty(), "{:?}", declared.limits);
    assert!(declared.stored.iter().any(|f| f == field::CURRENCY));
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let stage = open_stage(&sink).await;
    let written = sink
        .upsert(ObjectType::DEALS, &[deal("d-1", &stage, Some("EUR"))])
        .await
        .expect("upsert");
    assert!(written[0].result.is_ok(), "{written:?}");
    let source = SalesforceSource::new(config, "source").expect("source");
    let page = source
        .read_page(ObjectType::DEALS, None)
        .await
        .expect("read deals");
    assert_eq!(page.records[0].text(field::CURRENCY), Some("EUR"));
}
