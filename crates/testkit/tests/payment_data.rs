//! Payment card and bank account numbers pasted into text fields, through the engine with a
//! source and a sink in memory, under each `migration.payment_data` rule: flagged and written
//! as read, refused, or written masked; each case verified, and never a number in the report.

use std::sync::Arc;

use ferry_core::quality::{BANK_ACCOUNT, PAYMENT_CARD, PaymentData, QualityRules};
use ferry_core::{
    Mode, ObjectType, Outcome, Progress, Record, Report, RunOptions, Sink, Value, field, run,
};
use ferry_testkit::{MemorySink, MemorySource};

const CARD_STREET: &str = "Paid by 4111 1111 1111 1111, Main St 1";
const IBAN_CITY: &str = "Refund to GB82WEST12345698765432";

fn companies() -> Vec<Record> {
    let company = |id: &str, street: &str, city: &str| {
        let mut r = Record::new(ObjectType::COMPANIES, id);
        r.set(field::NAME, Value::Text(format!("Company {id}")));
        r.set(field::STREET, Value::Text(street.into()));
        r.set(field::CITY, Value::Text(city.into()));
        r
    };
    vec![
        company("co-card", CARD_STREET, "Tallinn"),
        company("co-iban", "Main St 2", IBAN_CITY),
        company("co-clean", "Main St 3, order 123456789012", "Tartu"),
    ]
}

async fn migrate(rule: PaymentData) -> (Report, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(10));
    let options = RunOptions {
        objects: vec![ObjectType::COMPANIES],
        quality: QualityRules {
            payment_data: rule,
            ..QualityRules::default()
        },
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    let report = run(
        Mode::Migrate,
        Arc::new(MemorySource::new(companies(), 2)),
        Arc::clone(&sink) as Arc<dyn Sink>,
        &options,
        progress,
    )
    .await;
    let json = serde_json::to_string(&report).unwrap();
    for number in ["4111", "GB82WEST"] {
        assert!(!json.contains(number), "the report shows a number: {json}");
    }
    (report, sink)
}

fn stored(sink: &MemorySink, id: &str, name: &str) -> Option<String> {
    sink.get(id).and_then(|r| r.text(name).map(str::to_owned))
}

#[tokio::test]
async fn flagged_by_default_refused_or_masked_as_the_operator_chose() {
    // Flag: written as read, each record listed by source id and field.
    let (report, sink) = migrate(PaymentData::default()).await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    let flagged: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.source_id.as_str(), w.code.as_str()))
        .collect();
    assert_eq!(
        flagged,
        [("co-card", PAYMENT_CARD), ("co-iban", BANK_ACCOUNT)]
    );
    assert!(report.warnings[0].reason.contains("field `street`"));
    assert_eq!(
        stored(&sink, "co-card", field::STREET).as_deref(),
        Some(CARD_STREET)
    );

    // Refuse: neither is written; the clean company is.
    let (report, sink) = migrate(PaymentData::Refuse).await;
    let refused: Vec<&str> = report
        .failures
        .iter()
        .map(|f| f.source_id.as_str())
        .collect();
    assert_eq!(refused, ["co-card", "co-iban"]);
    assert_eq!(sink.len(), 1);

    // Redact: written masked, and verified as masked (the digest covers what the sink holds).
    let (report, sink) = migrate(PaymentData::Redact).await;
    assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
    assert_eq!(
        stored(&sink, "co-card", field::STREET).as_deref(),
        Some("Paid by **** **** **** 1111, Main St 1")
    );
    assert_eq!(
        stored(&sink, "co-iban", field::CITY).as_deref(),
        Some("Refund to ******************5432")
    );
    assert_eq!(
        stored(&sink, "co-clean", field::STREET).as_deref(),
        Some("Main St 3, order 123456789012")
    );
}
