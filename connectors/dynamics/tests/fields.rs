//! Column definitions, mapped custom columns and created columns, against the emulator over
//! real HTTP on loopback.

mod common;

use std::borrow::Cow;

use common::{assert_read_back_equal, config, read_all, start, upsert_all};
use ferry_core::fields::{
    FieldBinding, FieldKind, NO_SUCH_OPTION, NewField, PicklistOption, VendorField,
};
use ferry_core::model::FieldType;
use ferry_core::{ConnectorError, ObjectType, Record, Sink, Source, Value, field};
use ferry_dynamics::{DynamicsSink, DynamicsSource};
use ferry_sandbox::dynamics::Options;
use ferry_sandbox::seed::{Mess, TIERS, generate};

fn sink(base_url: &str) -> DynamicsSink {
    DynamicsSink::new(config(base_url), "sink").expect("sink")
}

fn source(base_url: &str) -> DynamicsSource {
    DynamicsSource::new(config(base_url), "source").expect("source")
}

fn by_name<'a>(fields: &'a [VendorField], name: &str) -> &'a VendorField {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

/// The bindings of the seeded custom columns, the choice's options from `describe`.
async fn custom_bindings(sink: &dyn Sink, object: ObjectType) -> Vec<FieldBinding> {
    let fields = sink.describe(object).await.expect("describe");
    let bind = |canonical: &'static str, vendor: &'static str, ty: FieldType| FieldBinding {
        options: by_name(&fields, vendor).options.clone(),
        ..FieldBinding::new(canonical, vendor, ty)
    };
    if object == ObjectType::COMPANIES {
        vec![
            bind("region", "new_region", FieldType::Text),
            bind("seats", "new_seats", FieldType::Integer),
            bind("tier", "new_tier", FieldType::Text),
        ]
    } else {
        vec![
            bind("favourite_colour", "new_favouritecolour", FieldType::Text),
            bind("loyalty_points", "new_loyaltypoints", FieldType::Integer),
        ]
    }
}

fn set(record: &mut Record, name: &'static str, value: Option<Value>) {
    if let Some(v) = value {
        record.fields.insert(Cow::Borrowed(name), v);
    }
}

#[tokio::test]
async fn describe_lists_seeded_custom_columns_with_kinds_and_options() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = sink(&running.base_url);
    let companies = sink
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    let region = by_name(&companies, "new_region");
    assert_eq!(
        (
            region.kind,
            region.custom,
            region.writable,
            region.label.as_str()
        ),
        (FieldKind::Text, true, true, "Region")
    );
    assert_eq!(by_name(&companies, "new_seats").kind, FieldKind::Integer);
    let tier = by_name(&companies, "new_tier");
    assert_eq!(tier.kind, FieldKind::Picklist);
    assert_eq!(
        tier.options,
        TIERS
            .iter()
            .zip(100_000_000..)
            .map(|(label, value)| PicklistOption {
                value: value.to_string(),
                label: (*label).to_owned()
            })
            .collect::<Vec<_>>()
    );
    let industry = by_name(&companies, "industrycode");
    assert_eq!(
        (industry.kind, industry.custom),
        (FieldKind::Picklist, false)
    );
    assert_eq!(industry.options.len(), 33);
    assert_eq!(industry.options[0].label, "Accounting");
    assert_eq!(
        by_name(&companies, "name").canonical.as_deref(),
        Some(field::NAME)
    );
    assert_eq!(by_name(&companies, "revenue").kind, FieldKind::Decimal);
    let created = by_name(&companies, "createdon");
    assert_eq!(
        (created.kind, created.writable),
        (FieldKind::Timestamp, false)
    );
    assert!(region.canonical.is_none());

    let contacts = Source::describe(&source(&running.base_url), ObjectType::CONTACTS)
        .await
        .expect("describe contacts");
    assert_eq!(
        by_name(&contacts, "new_favouritecolour").kind,
        FieldKind::Text
    );
    assert_eq!(
        by_name(&contacts, "new_loyaltypoints").kind,
        FieldKind::Integer
    );
    let email = by_name(&contacts, "emailaddress1");
    assert_eq!(
        (email.kind, email.canonical.as_deref()),
        (FieldKind::Email, Some(field::EMAIL))
    );
    assert_eq!(by_name(&contacts, "telephone1").kind, FieldKind::Phone);
    assert_eq!(
        by_name(&contacts, "donotbulkemail").canonical.as_deref(),
        Some(field::EMAIL_OPT_OUT)
    );
    assert_eq!(
        by_name(&contacts, "parentcustomerid").kind,
        FieldKind::Reference
    );
}

#[tokio::test]
async fn a_source_reads_mapped_custom_columns_with_choices_as_labels() {
    let (emulator, running) = start(Options::default()).await;
    let data = generate(150, 5, &Mess::default());
    emulator.seed(&data);
    let source = source(&running.base_url);
    let sink = sink(&running.base_url);
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        source
            .map_fields(object, &custom_bindings(&sink, object).await)
            .expect("map");
    }
    let (companies, _) = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(companies.len(), data.companies.len());
    // Read in key order, which is the order they were seeded in.
    for (record, seeded) in companies.iter().zip(&data.companies) {
        assert_eq!(record.text("region"), seeded.region.as_deref());
        assert_eq!(
            record.get("seats"),
            seeded.seats.map(|n| Value::Integer(i64::from(n))).as_ref()
        );
        assert_eq!(record.text("tier"), seeded.tier);
        // The standard columns are still there.
        assert_eq!(record.text(field::NAME), seeded.name.as_deref());
    }
    assert!(companies.iter().any(|r| r.text("tier").is_some()));
    let (contacts, _) = read_all(&source, ObjectType::CONTACTS).await;
    let kept = data.contacts.iter().filter(|c| {
        c.job_title
            .as_deref()
            .is_none_or(|t| t.chars().count() <= 100)
    });
    let mut seen = 0;
    for (record, seeded) in contacts.iter().zip(kept) {
        assert_eq!(
            record.text("favourite_colour"),
            seeded.favourite_colour.as_deref()
        );
        assert_eq!(
            record.get("loyalty_points"),
            seeded
                .loyalty_points
                .map(|n| Value::Integer(i64::from(n)))
                .as_ref()
        );
        seen += 1;
    }
    assert_eq!(seen, contacts.len());
    assert!(contacts.iter().any(|r| r.get("loyalty_points").is_some()));
}

#[tokio::test]
async fn a_sink_writes_mapped_columns_reads_them_back_and_refuses_only_an_unknown_choice() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running.base_url);
    for object in [ObjectType::COMPANIES, ObjectType::CONTACTS] {
        sink.map_fields(object, &custom_bindings(&sink, object).await)
            .expect("map");
        sink.prepare(object).await.expect("prepare");
    }
    let stored = sink.capability(ObjectType::COMPANIES).unwrap().stored;
    for name in ["region", "seats", "tier", field::NAME] {
        assert!(stored.iter().any(|s| s == name), "{name} in {stored:?}");
    }
    let data = generate(60, 3, &Mess::none());
    let (mut companies, mut contacts) = ferry_testkit::canonical_records(&data);
    for (record, seeded) in companies.iter_mut().zip(&data.companies) {
        set(record, "region", seeded.region.clone().map(Value::Text));
        set(
            record,
            "seats",
            seeded.seats.map(|n| Value::Integer(n.into())),
        );
        // Labels match ignoring case and surrounding spaces.
        set(
            record,
            "tier",
            seeded
                .tier
                .map(|t| Value::Text(format!(" {} ", t.to_uppercase()))),
        );
    }
    for (record, seeded) in contacts.iter_mut().zip(&data.contacts) {
        set(
            record,
            "favourite_colour",
            seeded.favourite_colour.clone().map(Value::Text),
        );
        set(
            record,
            "loyalty_points",
            seeded.loyalty_points.map(|n| Value::Integer(n.into())),
        );
    }
    let platinum = companies.len() / 2;
    companies[platinum]
        .fields
        .insert(Cow::Borrowed("tier"), Value::Text("Platinum".into()));
    let outcomes = upsert_all(&sink, ObjectType::COMPANIES, &companies).await;
    let refused: Vec<_> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let rejection = refused[0].result.as_ref().unwrap_err();
    assert_eq!(rejection.source_id, companies[platinum].source_id);
    assert_eq!(rejection.code, NO_SUCH_OPTION);
    assert!(rejection.reason.contains("new_tier") && !rejection.reason.contains("Platinum"));
    let refused_id = companies.remove(platinum).source_id;
    // Its contacts would be refused in turn (no such account): they go without a company.
    for contact in &mut contacts {
        if contact.text(field::COMPANY) == Some(refused_id.as_str()) {
            contact.fields.remove(field::COMPANY);
        }
    }
    // The stored choice is the option value, the read-back its label (as sent, in the list's case).
    let with_tier = companies
        .iter_mut()
        .find(|r| r.get("tier").is_some())
        .expect("a company with a tier");
    let stored = emulator
        .record_by_key("account", &with_tier.source_id)
        .expect("stored");
    let label = with_tier
        .text("tier")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let value = TIERS
        .iter()
        .position(|t| t.to_lowercase() == label)
        .map(|i| 100_000_000 + i as i64);
    assert_eq!(stored["new_tier"].as_i64(), value);
    for record in companies.iter_mut() {
        if let Some(Value::Text(t)) = record.fields.get_mut("tier") {
            let canonical = TIERS
                .iter()
                .find(|x| x.eq_ignore_ascii_case(t.trim()))
                .expect("a tier");
            *t = (*canonical).to_owned();
        }
    }
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &companies).await;
    let outcomes = upsert_all(&sink, ObjectType::CONTACTS, &contacts).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &contacts).await;
    assert!(contacts.iter().any(|c| c.get("loyalty_points").is_some()));

    // A mapped name that is not a logical name is refused before anything is sent.
    let bad = sink.map_fields(
        ObjectType::CONTACTS,
        &[FieldBinding::new("x", "New Field", FieldType::Text)],
    );
    assert!(
        matches!(bad, Err(ConnectorError::Config { ref key, .. }) if key == "fields.contacts"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn created_columns_are_described_and_written() {
    let (emulator, running) = start(Options::default()).await;
    let sink = sink(&running.base_url);
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");
    let segment = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "segment".into(),
                label: "Segment".into(),
                kind: FieldKind::Picklist,
                options: ["Retail", "Wholesale"]
                    .into_iter()
                    .map(|l| PicklistOption {
                        value: String::new(),
                        label: l.into(),
                    })
                    .collect(),
            },
        )
        .await
        .expect("create choice");
    assert_eq!(
        (segment.name.as_str(), segment.kind, segment.custom),
        ("new_segment", FieldKind::Picklist, true)
    );
    assert_eq!(segment.options.len(), 2);
    let mut created = vec![segment.clone()];
    for (name, kind) in [
        ("Nickname", FieldKind::Text),
        ("Score", FieldKind::Decimal),
        ("Visits", FieldKind::Integer),
        ("VIP", FieldKind::Bool),
        ("Since", FieldKind::Date),
        ("Last seen", FieldKind::Timestamp),
    ] {
        let f = sink
            .create_field(
                ObjectType::CONTACTS,
                &NewField {
                    name: name.into(),
                    label: name.into(),
                    kind,
                    options: Vec::new(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        assert_eq!(f.kind, kind, "{name}");
        assert!(
            f.name.starts_with("new_") && f.custom && f.writable,
            "{f:?}"
        );
        created.push(f);
    }
    let listed = sink.describe(ObjectType::CONTACTS).await.expect("describe");
    for f in &created {
        assert_eq!(by_name(&listed, &f.name), f);
    }
    // The same name again: the vendor's refusal, naming the endpoint and the column.
    let again = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "segment".into(),
                label: "Segment".into(),
                kind: FieldKind::Text,
                options: Vec::new(),
            },
        )
        .await
        .expect_err("duplicate");
    let message = again.to_string();
    assert!(
        message.contains("POST /api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes")
            && message.contains("new_segment"),
        "{message}"
    );
    let multi = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "tags".into(),
                label: "Tags".into(),
                kind: FieldKind::MultiPicklist,
                options: Vec::new(),
            },
        )
        .await
        .expect_err("multi-select");
    assert!(
        matches!(multi, ConnectorError::Unsupported { .. }),
        "{multi:?}"
    );

    let bindings: Vec<FieldBinding> = created
        .iter()
        .map(|f| FieldBinding {
            options: f.options.clone(),
            ..FieldBinding::new(
                f.name.clone(),
                f.name.clone(),
                f.kind.canonical_type().expect("carried"),
            )
        })
        .collect();
    sink.map_fields(ObjectType::CONTACTS, &bindings)
        .expect("map");
    let mut contact = Record::new(ObjectType::CONTACTS, "p-created");
    contact.set(field::LAST_NAME, Value::Text("Okafor".into()));
    for (name, value) in [
        ("new_segment", Value::Text("Wholesale".into())),
        ("new_nickname", Value::Text("Oki".into())),
        ("new_score", Value::Decimal(4.125)),
        ("new_visits", Value::Integer(17)),
        ("new_vip", Value::Bool(true)),
        ("new_since", Value::Text("2021-03-04".into())),
        ("new_last_seen", Value::Timestamp(1_700_000_000_000)),
    ] {
        contact.fields.insert(Cow::Owned(name.to_owned()), value);
    }
    let outcomes = upsert_all(&sink, ObjectType::CONTACTS, std::slice::from_ref(&contact)).await;
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    let stored = emulator
        .record_by_key("contact", "p-created")
        .expect("stored");
    assert_eq!(stored["new_segment"], 100_000_001);
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[contact]).await;
}
