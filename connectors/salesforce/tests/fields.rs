//! Field metadata and custom fields against the sandbox emulator over real HTTP on loopback:
//! describe, mapped fields read as a source, written and read back as a sink, and fields
//! created through the Tooling API.

use std::borrow::Cow;
use std::net::SocketAddr;

use ferry_core::fields::{
    FieldBinding, FieldKind, NO_SUCH_OPTION, NewField, PicklistOption, VendorField,
};
use ferry_core::model::FieldType;
use ferry_core::{
    ConnectorError, ObjectType, Projection, Record, SecretRef, Sink, Source, Value, record_digest,
};
use ferry_salesforce::{SalesforceConfig, SalesforceSink, SalesforceSource};
use ferry_sandbox::salesforce::{Emulator, Options};
use ferry_sandbox::seed::{Mess, SeedData, generate};
use secrecy::SecretString;
use serde_json::json;

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options::default());
    let running = ferry_sandbox::serve(
        "salesforce",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

fn config(login_url: &str) -> SalesforceConfig {
    let mut config: SalesforceConfig = serde_json::from_value(json!({
        "login_url": login_url,
        "client_id": "${UNUSED}",
        "client_secret": "${UNUSED}",
    }))
    .expect("config");
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    config.client_id = secret(ferry_sandbox::SALESFORCE_CLIENT_ID);
    config.client_secret = secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET);
    config
}

fn source(running: &ferry_sandbox::Running) -> SalesforceSource {
    SalesforceSource::new(config(&running.base_url), "source").expect("source")
}

fn sink(running: &ferry_sandbox::Running) -> SalesforceSink {
    SalesforceSink::new(config(&running.base_url), "sink").expect("sink")
}

fn named<'a>(fields: &'a [VendorField], name: &str) -> &'a VendorField {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

/// The binding the engine would make of described field `name` under `canonical`.
fn binding(fields: &[VendorField], name: &str, canonical: &'static str) -> FieldBinding {
    let f = named(fields, name);
    FieldBinding {
        options: f.options.clone(),
        ..FieldBinding::new(
            canonical,
            f.name.clone(),
            f.kind.canonical_type().expect("a carried kind"),
        )
    }
}

async fn company_bindings(fields: &[VendorField]) -> Vec<FieldBinding> {
    vec![
        binding(fields, "Region__c", "region"),
        binding(fields, "Seats__c", "seats"),
        binding(fields, "Tier__c", "tier"),
    ]
}

fn contact_bindings(fields: &[VendorField]) -> Vec<FieldBinding> {
    vec![
        binding(fields, "Favourite_Colour__c", "favourite_colour"),
        binding(fields, "Loyalty_Points__c", "loyalty_points"),
    ]
}

fn set(record: &mut Record, canonical: &'static str, value: Value) {
    record.fields.insert(Cow::Borrowed(canonical), value);
}

#[tokio::test]
async fn describe_lists_standard_and_custom_fields_with_kinds_and_options() {
    let (_emulator, running) = start().await;
    for fields in [
        source(&running)
            .describe(ObjectType::COMPANIES)
            .await
            .expect("describe"),
        sink(&running)
            .describe(ObjectType::COMPANIES)
            .await
            .expect("describe"),
    ] {
        let region = named(&fields, "Region__c");
        assert_eq!(
            (
                region.kind,
                region.custom,
                region.writable,
                region.vendor_type.as_str()
            ),
            (FieldKind::Text, true, true, "string(255)")
        );
        assert_eq!(region.canonical, None);
        let seats = named(&fields, "Seats__c");
        assert_eq!(
            (seats.kind, seats.vendor_type.as_str()),
            (FieldKind::Integer, "double(18,0)")
        );
        let tier = named(&fields, "Tier__c");
        assert_eq!(tier.kind, FieldKind::Picklist);
        let options: Vec<(&str, &str)> = tier
            .options
            .iter()
            .map(|o| (o.value.as_str(), o.label.as_str()))
            .collect();
        assert_eq!(
            options,
            [("Gold", "Gold"), ("Silver", "Silver"), ("Bronze", "Bronze")]
        );
        let industry = named(&fields, "Industry");
        assert_eq!(
            (
                industry.kind,
                industry.custom,
                industry.canonical.as_deref()
            ),
            (FieldKind::Picklist, false, Some("industry"))
        );
        assert!(industry.options.iter().any(|o| o.label == "Technology"));
        assert_eq!(named(&fields, "Name").canonical.as_deref(), Some("name"));
        let id = named(&fields, "Id");
        assert!(!id.writable);
        assert_eq!(
            named(&fields, "CreatedDate").canonical.as_deref(),
            Some("created_at")
        );
        assert_eq!(named(&fields, "AnnualRevenue").kind, FieldKind::Decimal);
    }
    let contacts = sink(&running)
        .describe(ObjectType::CONTACTS)
        .await
        .expect("describe");
    assert_eq!(
        named(&contacts, "Favourite_Colour__c").kind,
        FieldKind::Text
    );
    assert_eq!(
        named(&contacts, "Loyalty_Points__c").kind,
        FieldKind::Integer
    );
    let account = named(&contacts, "AccountId");
    assert_eq!(
        (account.kind, account.canonical.as_deref()),
        (FieldKind::Reference, Some("company"))
    );
    assert_eq!(named(&contacts, "HasOptedOutOfEmail").kind, FieldKind::Bool);
}

async fn read_all(source: &SalesforceSource, object: ObjectType) -> Vec<Record> {
    let (mut records, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = source
            .read_page(object, cursor.as_deref())
            .await
            .expect("page");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

#[tokio::test]
async fn the_first_page_takes_the_describe_the_field_plan_read() {
    let (emulator, running) = start().await;
    emulator.seed(&generate(50, 5, &Mess::none()));
    let source = source(&running);
    let companies = source
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    source
        .map_fields(ObjectType::COMPANIES, &company_bindings(&companies).await)
        .expect("map");
    let before = emulator.api_usage();
    let page = source
        .read_page(ObjectType::COMPANIES, None)
        .await
        .expect("page");
    assert!(!page.records.is_empty());
    assert!(page.records.iter().any(|r| r.get("tier").is_some()));
    assert_eq!(
        emulator.api_usage(),
        before + 1,
        "the query alone: the mapped fields are spelled by the describe already read"
    );
}

#[tokio::test]
async fn a_source_with_mapped_fields_reads_the_seeded_values() {
    let (emulator, running) = start().await;
    let data: SeedData = generate(200, 5, &Mess::none());
    emulator.seed(&data);
    let source = source(&running);
    let companies = source
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    source
        .map_fields(ObjectType::COMPANIES, &company_bindings(&companies).await)
        .expect("map");
    let contacts = source
        .describe(ObjectType::CONTACTS)
        .await
        .expect("describe");
    source
        .map_fields(ObjectType::CONTACTS, &contact_bindings(&contacts))
        .expect("map");

    // Seeded rows are read in Id order, which is the order they were seeded in.
    let read = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(read.len(), data.companies.len());
    for (record, seeded) in read.iter().zip(&data.companies) {
        assert_eq!(record.text("name"), seeded.name.as_deref());
        assert_eq!(record.text("region"), seeded.region.as_deref());
        assert_eq!(
            record.get("seats"),
            seeded.seats.map(|n| Value::Integer(n.into())).as_ref()
        );
        assert_eq!(record.text("tier"), seeded.tier);
    }
    assert!(read.iter().any(|r| r.get("tier").is_some()));
    assert!(read.iter().any(|r| r.get("seats").is_some()));

    let read = read_all(&source, ObjectType::CONTACTS).await;
    let mut checked = 0;
    let mut seeded = data.contacts.iter().filter(|c| c.last_name.is_some());
    for record in &read {
        // Contacts Salesforce cannot hold were left out of the seed; match the rest by email.
        let Some(c) = seeded.find(|c| c.email.as_deref() == record.text("email")) else {
            continue;
        };
        assert_eq!(
            record.text("favourite_colour"),
            c.favourite_colour.as_deref()
        );
        assert_eq!(
            record.get("loyalty_points"),
            c.loyalty_points.map(|n| Value::Integer(n.into())).as_ref()
        );
        checked += 1;
    }
    assert!(checked > read.len() / 2, "{checked} of {}", read.len());
    assert!(read.iter().any(|r| r.get("loyalty_points").is_some()));
}

/// Digests of `records` and of what the sink reads back for them, by source id.
async fn digests(
    sink: &SalesforceSink,
    object: ObjectType,
    records: &[Record],
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    // These records name no owner, so the org's default owner applies; the engine leaves the
    // owner out of a read-back's digest then (`Directory::canonical_back`).
    let mut stored = sink.capability(object).unwrap().stored;
    stored.retain(|f| f != ferry_core::field::OWNER);
    let projection = Projection::new(stored);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let back = sink.read_back(object, &ids).await.expect("read back");
    let digest = |rs: &[Record]| {
        let mut d: Vec<(String, String)> = rs
            .iter()
            .map(|r| {
                (
                    r.source_id.clone(),
                    record_digest(r, &projection).to_string(),
                )
            })
            .collect();
        d.sort();
        d
    };
    (digest(records), digest(&back))
}

#[tokio::test]
async fn a_sink_writes_mapped_fields_reads_them_back_and_refuses_an_unknown_tier() {
    let (emulator, running) = start().await;
    let sink = sink(&running);
    let fields = sink
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    sink.map_fields(ObjectType::COMPANIES, &company_bindings(&fields).await)
        .expect("map");
    let stored = sink.capability(ObjectType::COMPANIES).unwrap().stored;
    for name in ["name", "region", "seats", "tier"] {
        assert!(stored.iter().any(|s| s == name), "{name} in {stored:?}");
    }
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");

    let mut records = Vec::new();
    for (i, tier) in ["Gold", "Silver", "Platinum", "Bronze"]
        .into_iter()
        .enumerate()
    {
        let mut r = Record::new(ObjectType::COMPANIES, format!("co-{i}"));
        set(&mut r, "name", Value::Text(format!("Company {i}")));
        set(&mut r, "region", Value::Text("EMEA".into()));
        set(&mut r, "seats", Value::Integer(40 + i as i64));
        set(&mut r, "tier", Value::Text(tier.into()));
        records.push(r);
    }
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &records)
        .await
        .expect("upsert");
    let refused: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    assert_eq!(
        (refused[0].source_id.as_str(), refused[0].code.as_str()),
        ("co-2", NO_SUCH_OPTION)
    );
    assert!(
        refused[0].reason.contains("Tier__c") && !refused[0].reason.contains("Platinum"),
        "{}",
        refused[0].reason
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .all(|o| o.result.as_ref().is_ok_and(|w| w.created))
    );

    let stored = emulator
        .record_by_external_id("Account", "co-1")
        .expect("stored");
    assert_eq!(
        (
            &stored["Seats__c"],
            &stored["Tier__c"],
            &stored["Region__c"]
        ),
        (&json!(41.0), &json!("Silver"), &json!("EMEA"))
    );

    let written: Vec<Record> = records
        .iter()
        .filter(|r| r.source_id != "co-2")
        .cloned()
        .collect();
    let (before, after) = digests(&sink, ObjectType::COMPANIES, &written).await;
    assert_eq!(before, after);
    // A changed custom value changes the digest: the checksums cover the mapped fields.
    let mut changed = written[0].clone();
    set(&mut changed, "seats", Value::Integer(7));
    let (before, after) =
        digests(&sink, ObjectType::COMPANIES, std::slice::from_ref(&changed)).await;
    assert_ne!(before, after);

    // Contacts, with their own mapped fields.
    let contact_fields = sink.describe(ObjectType::CONTACTS).await.expect("describe");
    sink.map_fields(ObjectType::CONTACTS, &contact_bindings(&contact_fields))
        .expect("map");
    let mut contact = Record::new(ObjectType::CONTACTS, "ct-1");
    set(&mut contact, "last_name", Value::Text("Gilmore".into()));
    set(&mut contact, "company", Value::Reference("co-0".into()));
    set(&mut contact, "favourite_colour", Value::Text("Teal".into()));
    set(&mut contact, "loyalty_points", Value::Integer(1200));
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&contact))
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    let (before, after) =
        digests(&sink, ObjectType::CONTACTS, std::slice::from_ref(&contact)).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_mapped_field_must_be_an_api_name() {
    let (_emulator, running) = start().await;
    let bad = FieldBinding::new("x", "Name FROM Account WHERE", FieldType::Text);
    let e = sink(&running)
        .map_fields(ObjectType::COMPANIES, std::slice::from_ref(&bad))
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Config { key, .. } if key == "fields.companies"),
        "{e}"
    );
    assert!(
        source(&running)
            .map_fields(ObjectType::CONTACTS, &[bad])
            .is_err()
    );
}

#[tokio::test]
async fn created_fields_are_described_and_written() {
    let (_emulator, running) = start().await;
    let sink = sink(&running);
    let option = |label: &str| PicklistOption {
        value: String::new(),
        label: label.into(),
    };
    let segment = NewField {
        name: "segment".into(),
        label: "Segment".into(),
        kind: FieldKind::Picklist,
        options: vec![option("Enterprise"), option("Small Business")],
    };
    let created = sink
        .create_field(ObjectType::COMPANIES, &segment)
        .await
        .expect("create");
    assert_eq!(
        (
            created.name.as_str(),
            created.kind,
            created.custom,
            created.writable
        ),
        ("segment__c", FieldKind::Picklist, true, true)
    );
    assert_eq!(created.options[1].label, "Small Business");
    let since = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "Customer Since".into(),
                label: "Customer Since".into(),
                kind: FieldKind::Date,
                options: Vec::new(),
            },
        )
        .await
        .expect("create");
    assert_eq!(
        (since.name.as_str(), since.kind),
        ("Customer_Since__c", FieldKind::Date)
    );
    let score = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "Score".into(),
                label: "Score".into(),
                kind: FieldKind::Decimal,
                options: Vec::new(),
            },
        )
        .await
        .expect("create");
    assert_eq!(score.kind, FieldKind::Decimal);
    // Asking again finds the field already there and returns it.
    let again = sink
        .create_field(ObjectType::COMPANIES, &segment)
        .await
        .expect("create again");
    assert_eq!(again, created);

    let fields = sink
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    assert_eq!(named(&fields, "segment__c"), &created);
    sink.map_fields(
        ObjectType::COMPANIES,
        &[
            binding(&fields, "segment__c", "segment"),
            binding(&fields, "Customer_Since__c", "customer_since"),
            binding(&fields, "Score__c", "score"),
        ],
    )
    .expect("map");
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let mut r = Record::new(ObjectType::COMPANIES, "co-new");
    set(&mut r, "name", Value::Text("Acme".into()));
    set(&mut r, "segment", Value::Text("small business".into()));
    set(&mut r, "customer_since", Value::Text("2019-04-01".into()));
    set(&mut r, "score", Value::Decimal(12.5));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    let back = sink
        .read_back(ObjectType::COMPANIES, &["co-new".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back[0].text("segment"), Some("Small Business"));
    assert_eq!(back[0].text("customer_since"), Some("2019-04-01"));
    assert_eq!(back[0].get("score"), Some(&Value::Decimal(12.5)));

    let e = sink
        .create_field(
            ObjectType::CONTACTS,
            &NewField {
                name: "Tags".into(),
                label: "Tags".into(),
                kind: FieldKind::MultiPicklist,
                options: vec![option("a")],
            },
        )
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("Tags__c")
            && message.contains("POST /services/data/")
            && message.contains("Contact"),
        "{message}"
    );
}

#[tokio::test]
async fn mapped_names_take_the_spelling_describe_gives() {
    let (emulator, running) = start().await;
    let data = generate(50, 2, &Mess::none());
    emulator.seed(&data);
    let lower = |canonical: &'static str, vendor: &str, ty| {
        FieldBinding::new(canonical, vendor.to_owned(), ty)
    };
    let source = source(&running);
    source
        .map_fields(
            ObjectType::COMPANIES,
            &[lower("region", "region__c", FieldType::Text)],
        )
        .expect("map");
    let read = read_all(&source, ObjectType::COMPANIES).await;
    for (record, seeded) in read.iter().zip(&data.companies) {
        assert_eq!(record.text("region"), seeded.region.as_deref());
    }
    assert!(read.iter().any(|r| r.get("region").is_some()));

    let sink = sink(&running);
    sink.map_fields(
        ObjectType::COMPANIES,
        &[lower("seats", "SEATS__C", FieldType::Integer)],
    )
    .expect("map");
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let mut r = Record::new(ObjectType::COMPANIES, "co-x");
    set(&mut r, "name", Value::Text("X".into()));
    set(&mut r, "seats", Value::Integer(3));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    let back = sink
        .read_back(ObjectType::COMPANIES, &["co-x".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back[0].get("seats"), Some(&Value::Integer(3)), "{back:?}");
    let (before, after) = digests(&sink, ObjectType::COMPANIES, std::slice::from_ref(&r)).await;
    assert_eq!(before, after);
}
