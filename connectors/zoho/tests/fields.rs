//! Custom fields against the emulator over real HTTP on loopback: describing, reading and
//! writing mapped fields (picklists by label), and creating fields.

mod common;

use common::{assert_read_back_equal, config, read_all, start};
use ferry_core::fields::{
    FieldBinding, FieldKind, NO_SUCH_OPTION, NewField, PicklistOption, VendorField,
};
use ferry_core::model::FieldType;
use ferry_core::{ConnectorError, ObjectType, Record, Sink, Source, Value};
use ferry_sandbox::seed::{Mess, TIERS, generate};
use ferry_sandbox::zoho::Options;
use ferry_zoho::{ZohoSink, ZohoSource};
use serde_json::json;

fn find<'a>(fields: &'a [VendorField], name: &str) -> &'a VendorField {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn labels(field: &VendorField) -> Vec<(&str, &str)> {
    field
        .options
        .iter()
        .map(|o| (o.value.as_str(), o.label.as_str()))
        .collect()
}

/// The bindings an engine would hand over for the seeded custom fields of `object`, the
/// picklist's options taken from `described`.
fn custom_bindings(object: ObjectType, described: &[VendorField]) -> Vec<FieldBinding> {
    if object == ObjectType::COMPANIES {
        vec![
            FieldBinding::new("region", "Region", FieldType::Text),
            FieldBinding::new("seats", "Seats", FieldType::Integer),
            FieldBinding {
                options: find(described, "Tier").options.clone(),
                ..FieldBinding::new("tier", "Tier", FieldType::Text)
            },
        ]
    } else {
        vec![
            FieldBinding::new("favourite_colour", "Favourite_Colour", FieldType::Text),
            FieldBinding::new("loyalty_points", "Loyalty_Points", FieldType::Integer),
        ]
    }
}

#[tokio::test]
async fn describe_lists_the_seeded_custom_fields_with_kinds_and_options() {
    let (_emulator, running) = start(Options::default()).await;
    let source = ZohoSource::new(config(&running.base_url, json!({})), "source").expect("source");
    let accounts = source
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    let region = find(&accounts, "Region");
    assert_eq!(
        (
            region.kind,
            region.custom,
            region.writable,
            region.label.as_str()
        ),
        (FieldKind::Text, true, true, "Region")
    );
    assert_eq!(find(&accounts, "Seats").kind, FieldKind::Integer);
    let tier = find(&accounts, "Tier");
    assert_eq!(
        (
            tier.kind,
            tier.vendor_type.as_str(),
            tier.canonical.as_deref()
        ),
        (FieldKind::Picklist, "picklist", None)
    );
    assert_eq!(
        labels(tier),
        [("Gold", "Gold"), ("Silver", "Silver"), ("Bronze", "Bronze")]
    );
    let industry = find(&accounts, "Industry");
    assert_eq!(
        (
            industry.kind,
            industry.custom,
            industry.canonical.as_deref()
        ),
        (FieldKind::Picklist, false, Some("industry"))
    );
    assert!(industry.options.iter().all(|o| o.label != "-None-"));
    assert!(
        industry
            .options
            .iter()
            .any(|o| o.label == "Large Enterprise")
    );
    assert_eq!(
        find(&accounts, "Account_Name").canonical.as_deref(),
        Some("name")
    );
    let modified = find(&accounts, "Modified_Time");
    assert_eq!(
        (
            modified.kind,
            modified.writable,
            modified.canonical.as_deref()
        ),
        (FieldKind::Timestamp, false, Some("updated_at"))
    );
    assert_eq!(find(&accounts, "Annual_Revenue").kind, FieldKind::Decimal);
    assert!(find(&accounts, "Ferry_Source_Id").custom);

    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let contacts = sink.describe(ObjectType::CONTACTS).await.expect("describe");
    assert_eq!(find(&contacts, "Favourite_Colour").kind, FieldKind::Text);
    assert_eq!(find(&contacts, "Loyalty_Points").kind, FieldKind::Integer);
    assert_eq!(find(&contacts, "Email_Opt_Out").kind, FieldKind::Bool);
    let company = find(&contacts, "Account_Name");
    assert_eq!(
        (company.kind, company.canonical.as_deref()),
        (FieldKind::Reference, Some("company"))
    );
}

#[tokio::test]
async fn a_source_reads_mapped_custom_fields() {
    let (emulator, running) = start(Options::default()).await;
    let data = generate(300, 5, &Mess::none());
    let seeded = emulator.seed(&data);
    assert_eq!(seeded.skipped_contacts, 0);
    let source = ZohoSource::new(
        config(&running.base_url, json!({"page_size": 50})),
        "source",
    )
    .expect("source");
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        let described = source.describe(object).await.expect("describe");
        source
            .map_fields(object, &custom_bindings(object, &described))
            .expect("map");
    }
    // Pages after the first are COQL queries: both read the mapped fields.
    let (companies, cursors) = read_all(&source, ObjectType::COMPANIES).await;
    assert!(!cursors.is_empty());
    assert_eq!(companies.len(), data.companies.len());
    for (record, seed) in companies.iter().zip(&data.companies) {
        assert_eq!(
            record.get("region"),
            seed.region.clone().map(Value::Text).as_ref()
        );
        assert_eq!(
            record.get("seats"),
            seed.seats.map(|n| Value::Integer(n.into())).as_ref()
        );
        assert_eq!(
            record.get("tier"),
            seed.tier.map(|t| Value::Text(t.to_owned())).as_ref()
        );
        assert!(record.get("name").is_some(), "standard fields still read");
    }
    assert!(companies.iter().any(|c| c.get("tier").is_some()));
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), data.contacts.len());
    for (record, seed) in contacts.iter().zip(&data.contacts) {
        assert_eq!(
            record.get("favourite_colour"),
            seed.favourite_colour.clone().map(Value::Text).as_ref()
        );
        assert_eq!(
            record.get("loyalty_points"),
            seed.loyalty_points
                .map(|n| Value::Integer(n.into()))
                .as_ref()
        );
    }
    assert!(contacts.iter().any(|c| c.get("loyalty_points").is_some()));
}

#[tokio::test]
async fn a_sink_writes_mapped_fields_reads_them_back_and_refuses_only_an_unknown_label() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        let described = sink.describe(object).await.expect("describe");
        sink.map_fields(object, &custom_bindings(object, &described))
            .expect("map");
        sink.prepare(object).await.expect("prepare");
        let stored = sink.capability(object).unwrap().stored;
        for b in custom_bindings(object, &described) {
            assert!(
                stored.contains(&b.canonical.to_string()),
                "{object}: {stored:?}"
            );
        }
    }
    let data = generate(60, 8, &Mess::none());
    let (mut companies, mut contacts) = ferry_testkit::canonical_records(&data);
    for (i, (record, seed)) in companies.iter_mut().zip(&data.companies).enumerate() {
        record
            .fields
            .insert("region".into(), Value::Text(format!("Region {i}")));
        record
            .fields
            .insert("seats".into(), Value::Integer(i as i64 * 7));
        record.fields.insert(
            "tier".into(),
            Value::Text(seed.tier.unwrap_or(TIERS[i % 3]).to_owned()),
        );
    }
    companies[1]
        .fields
        .insert("tier".into(), Value::Text("Platinum".into()));
    companies[2]
        .fields
        .insert("tier".into(), Value::Text(" silver ".into()));
    for (i, record) in contacts.iter_mut().enumerate() {
        record.fields.insert(
            "favourite_colour".into(),
            Value::Text(format!("Colour {i}")),
        );
        record
            .fields
            .insert("loyalty_points".into(), Value::Integer(i as i64 * 1000));
    }

    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &companies)
        .await
        .expect("upsert");
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .map(|r| r.source_id.as_str())
        .collect();
    assert_eq!(
        refused,
        [companies[1].source_id.as_str()],
        "only the unknown label"
    );
    let rejection = outcomes[1].result.as_ref().unwrap_err();
    assert_eq!(rejection.code, NO_SUCH_OPTION);
    assert!(rejection.reason.contains("tier") && !rejection.reason.contains("Platinum"));
    let stored = emulator
        .record_by_source_id("Accounts", &companies[2].source_id)
        .expect("stored");
    assert_eq!(
        stored["Tier"], "Silver",
        "a label matches ignoring case and spaces"
    );
    assert_eq!(stored["Seats"], json!(14), "a number as Zoho's JSON number");
    let written: Vec<Record> = companies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1 && *i != 2)
        .map(|(_, r)| r.clone())
        .collect();
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &written).await;

    // Contacts whose company was refused are refused for it; the others carry their fields.
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &contacts)
        .await
        .expect("upsert");
    let written: Vec<Record> = outcomes
        .iter()
        .zip(&contacts)
        .filter(|(o, _)| o.result.is_ok())
        .map(|(_, r)| r.clone())
        .collect();
    assert!(written.len() >= contacts.len() - contacts.len() / 2);
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &written).await;
    let stored = emulator
        .record_by_source_id("Contacts", &written[0].source_id)
        .expect("stored");
    assert!(stored["Loyalty_Points"].is_number());
}

#[tokio::test]
async fn a_created_field_is_described_and_holds_values() {
    let (emulator, running) = start(Options::default()).await;
    let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
    let shoe = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "shoe_size".into(),
                label: "Shoe Size".into(),
                kind: FieldKind::Decimal,
                options: Vec::new(),
            },
        )
        .await
        .expect("create");
    assert_eq!(
        (shoe.name.as_str(), shoe.kind, shoe.custom, shoe.writable),
        ("Shoe_Size", FieldKind::Decimal, true, true)
    );
    let plan = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "plan".into(),
                label: "Plan".into(),
                kind: FieldKind::Picklist,
                options: ["Free", "Pro"]
                    .map(|l| PicklistOption {
                        value: String::new(),
                        label: l.into(),
                    })
                    .to_vec(),
            },
        )
        .await
        .expect("create");
    assert_eq!(labels(&plan), [("Free", "Free"), ("Pro", "Pro")]);
    let renewal = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "renewal_at".into(),
                label: "Renewal At".into(),
                kind: FieldKind::Timestamp,
                options: Vec::new(),
            },
        )
        .await
        .expect("create");
    assert_eq!(
        (renewal.name.as_str(), renewal.kind),
        ("Renewal_At", FieldKind::Timestamp)
    );
    let described = sink.describe(ObjectType::CONTACTS).await.expect("describe");
    assert_eq!(find(&described, "Shoe_Size"), &shoe);
    assert_eq!(find(&described, "Plan"), &plan);

    sink.map_fields(
        ObjectType::CONTACTS,
        &[
            FieldBinding::new("shoe_size", "Shoe_Size", FieldType::Decimal),
            FieldBinding::new("renewal_at", "Renewal_At", FieldType::Timestamp),
            FieldBinding {
                options: plan.options.clone(),
                ..FieldBinding::new("plan", "Plan", FieldType::Text)
            },
        ],
    )
    .expect("map");
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let mut record = Record::new(ObjectType::CONTACTS, "shoe-1");
    record
        .fields
        .insert("last_name".into(), Value::Text("Lovelace".into()));
    record
        .fields
        .insert("shoe_size".into(), Value::Decimal(38.5));
    record
        .fields
        .insert("plan".into(), Value::Text("Pro".into()));
    // Zoho keeps date-times to the second.
    record
        .fields
        .insert("renewal_at".into(), Value::Timestamp(1_704_164_645_000));
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&record))
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0]);
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[record]).await;
    let stored = emulator
        .record_by_source_id("Contacts", "shoe-1")
        .expect("stored");
    assert_eq!(
        (&stored["Shoe_Size"], &stored["Renewal_At"]),
        (&json!(38.5), &json!("2024-01-02T03:04:05+00:00"))
    );

    // The same label again is refused by Zoho; the error names the call and the field.
    let again = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "shoe_size".into(),
                label: "Shoe Size".into(),
                kind: FieldKind::Decimal,
                options: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    let text = again.to_string();
    assert!(
        matches!(again, ConnectorError::Setup { .. })
            && text.contains("POST /crm/v8/settings/fields")
            && text.contains("shoe_size")
            && text.contains("ALREADY_USED"),
        "{text}"
    );
    let reference = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "partner".into(),
                label: "Partner".into(),
                kind: FieldKind::Reference,
                options: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(reference, ConnectorError::Unsupported { .. }),
        "{reference}"
    );
}

/// `prepare` checks the source-id field in the `settings/fields` answer the field plan's
/// describe has just read, not in a new one: one call (and credit) fewer per object and run.
/// A field created since makes that answer stale, and the fields are asked again.
#[tokio::test]
async fn prepare_checks_the_source_id_field_in_the_fields_describe_just_read() {
    let (emulator, running) = start(Options::default()).await;
    let new_sink = || async {
        let sink = ZohoSink::new(config(&running.base_url, json!({})), "sink").expect("sink");
        sink.check().await.expect("check"); // the token, fetched before counting
        sink
    };
    let prepare_calls = |sink: ZohoSink| {
        let emulator = &emulator;
        async move {
            let before = emulator.requests();
            sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
            emulator.requests() - before
        }
    };

    let unlisted = prepare_calls(new_sink().await).await;
    let sink = new_sink().await;
    sink.describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    let listed = prepare_calls(sink).await;
    assert_eq!(listed + 1, unlisted, "the describe's answer spares a call");

    let sink = new_sink().await;
    sink.describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    let field = NewField {
        name: "Fleet_Size".into(),
        label: "Fleet Size".into(),
        kind: FieldKind::Integer,
        options: Vec::new(),
    };
    sink.create_field(ObjectType::COMPANIES, &field)
        .await
        .expect("create");
    assert_eq!(
        prepare_calls(sink).await,
        unlisted,
        "a field created since: asked again"
    );
}
