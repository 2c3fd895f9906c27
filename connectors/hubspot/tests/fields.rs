//! Custom fields through the HubSpot connector against the sandbox's HubSpot emulator, over
//! real HTTP on loopback: the properties API as field metadata, mapped fields read, written and
//! read back (picklists by label), and properties created through the metadata API.

use std::net::SocketAddr;
use std::sync::Once;

use ferry_core::fields::NO_SUCH_OPTION;
use ferry_core::{
    ConnectorError, FieldBinding, FieldKind, FieldType, NewField, ObjectType, PicklistOption,
    Projection, Record, SecretRef, Sink, Source, Value, VendorField, field, record_digest,
};
use ferry_hubspot::{HubspotConfig, HubspotSink, HubspotSource};
use ferry_sandbox::hubspot::{Emulator, Options};
use ferry_sandbox::seed::{Mess, SeedData, generate};

const TOKEN_VAR: &str = "FERRY_HUBSPOT_FIELDS_TEST_TOKEN";

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test waits on this `Once` before starting any other thread or I/O.
        unsafe { std::env::set_var(TOKEN_VAR, ferry_sandbox::HUBSPOT_TOKEN) };
    });
}

async fn start(seed: Option<&SeedData>) -> ferry_sandbox::Running {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        ..Options::default()
    });
    if let Some(seed) = seed {
        emulator.seed(seed);
    }
    ferry_sandbox::serve(
        "hubspot",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve the emulator")
}

fn config(base_url: &str) -> HubspotConfig {
    HubspotConfig {
        base_url: Some(base_url.to_owned()),
        timeout_secs: Some(10),
        rate_limit_per_10s: Some(2_000),
        ..HubspotConfig::new(SecretRef::env(TOKEN_VAR))
    }
}

fn find<'a>(fields: &'a [VendorField], name: &str) -> &'a VendorField {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not described: {fields:?}"))
}

/// The binding the engine would make of a described field, under `canonical`.
fn binding(fields: &[VendorField], name: &str, canonical: &'static str) -> FieldBinding {
    let f = find(fields, name);
    FieldBinding {
        options: f.options.clone(),
        ..FieldBinding::new(
            canonical,
            f.name.clone(),
            f.kind.canonical_type().expect("a carried kind"),
        )
    }
}

/// Region, Seats and Tier on companies, Favourite Colour and Loyalty Points on contacts.
fn mapped(companies: &[VendorField], contacts: &[VendorField]) -> [Vec<FieldBinding>; 2] {
    [
        vec![
            binding(companies, "region", "region"),
            binding(companies, "seats", "seats"),
            binding(companies, "tier", "tier"),
        ],
        vec![
            binding(contacts, "favourite_colour", "favourite_colour"),
            binding(contacts, "loyalty_points", "loyalty_points"),
        ],
    ]
}

#[tokio::test]
async fn describe_lists_the_seeded_custom_fields_and_industry() {
    init();
    let hs = start(None).await;
    let source = HubspotSource::new(config(&hs.base_url), "source").expect("source");
    let companies = source
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe companies");
    for (name, kind) in [
        ("region", FieldKind::Text),
        ("seats", FieldKind::Decimal),
        ("tier", FieldKind::Picklist),
    ] {
        let f = find(&companies, name);
        assert_eq!(f.kind, kind, "{name}");
        assert!(f.custom && f.writable && f.canonical.is_none(), "{f:?}");
    }
    let tier = find(&companies, "tier");
    assert_eq!(tier.vendor_type, "enumeration/select");
    let options: Vec<(&str, &str)> = tier
        .options
        .iter()
        .map(|o| (o.value.as_str(), o.label.as_str()))
        .collect();
    assert_eq!(
        options,
        [("gold", "Gold"), ("silver", "Silver"), ("bronze", "Bronze")]
    );
    let industry = find(&companies, "industry");
    assert_eq!(industry.kind, FieldKind::Picklist);
    assert_eq!(industry.canonical.as_deref(), Some(field::INDUSTRY));
    assert!(!industry.custom && industry.writable);
    assert!(industry.options.len() > 100);
    assert_eq!(
        find(&companies, "numberofemployees").kind,
        FieldKind::Integer
    );
    let created = find(&companies, "createdate");
    assert!(!created.writable && created.kind == FieldKind::Timestamp);

    let sink = HubspotSink::new(config(&hs.base_url), "sink").expect("sink");
    let contacts = sink
        .describe(ObjectType::CONTACTS)
        .await
        .expect("describe contacts");
    assert_eq!(find(&contacts, "favourite_colour").kind, FieldKind::Text);
    assert_eq!(find(&contacts, "loyalty_points").kind, FieldKind::Decimal);
    let email = find(&contacts, "email");
    assert_eq!(email.kind, FieldKind::Email);
    assert_eq!(email.canonical.as_deref(), Some(field::EMAIL));
    assert!(!find(&contacts, "hs_email_optout").writable);
    assert!(contacts.iter().all(|f| f.name != "region"));
}

#[tokio::test]
async fn a_source_reads_mapped_custom_fields_with_tier_as_its_label() {
    init();
    let seed = generate(60, 5, &Mess::none());
    let hs = start(Some(&seed)).await;
    let source = HubspotSource::new(config(&hs.base_url), "source").expect("source");
    let [companies, contacts] = mapped(
        &source
            .describe(ObjectType::COMPANIES)
            .await
            .expect("describe"),
        &source
            .describe(ObjectType::CONTACTS)
            .await
            .expect("describe"),
    );
    source
        .map_fields(ObjectType::COMPANIES, &companies)
        .expect("map companies");
    source
        .map_fields(ObjectType::CONTACTS, &contacts)
        .expect("map contacts");
    let read = |object| {
        let source = &source;
        async move {
            let mut records = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = source
                    .read_page(object, cursor.as_deref())
                    .await
                    .expect("page");
                assert!(page.unreadable.is_empty());
                records.extend(page.records);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break records,
                }
            }
        }
    };
    let got = read(ObjectType::COMPANIES).await;
    assert_eq!(got.len(), seed.companies.len());
    for (c, r) in seed.companies.iter().zip(&got) {
        assert_eq!(r.text("region"), c.region.as_deref());
        assert_eq!(
            r.get("seats"),
            c.seats.map(|n| Value::Decimal(n.into())).as_ref()
        );
        assert_eq!(r.text("tier"), c.tier, "the label, not the internal value");
        // Standard fields still come.
        assert_eq!(r.text(field::NAME), c.name.as_deref());
    }
    assert!(got.iter().any(|r| r.text("tier").is_some()));
    let got = read(ObjectType::CONTACTS).await;
    assert_eq!(got.len(), seed.contacts.len());
    for (c, r) in seed.contacts.iter().zip(&got) {
        assert_eq!(r.text("favourite_colour"), c.favourite_colour.as_deref());
        assert_eq!(
            r.get("loyalty_points"),
            c.loyalty_points.map(|n| Value::Decimal(n.into())).as_ref()
        );
    }
}

fn company(i: usize, tier: &str) -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, format!("src-co-{i}"));
    r.set(field::NAME, Value::Text(format!("Company {i}")));
    r.fields
        .insert("region".into(), Value::Text("Nordics".into()));
    r.fields
        .insert("seats".into(), Value::Decimal(10.0 + i as f64));
    r.fields.insert("tier".into(), Value::Text(tier.into()));
    r
}

async fn assert_read_back_equal(sink: &HubspotSink, object: ObjectType, records: &[Record]) {
    let projection = Projection::new(sink.capability(object).unwrap().stored);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let back = sink.read_back(object, &ids).await.expect("read back");
    assert_eq!(back.len(), records.len());
    for record in records {
        let got = back
            .iter()
            .find(|r| r.source_id == record.source_id)
            .expect("read back");
        assert_eq!(
            record_digest(record, &projection),
            record_digest(got, &projection),
            "sent {record:?}\nread {got:?}"
        );
    }
}

#[tokio::test]
async fn a_sink_writes_mapped_fields_and_refuses_only_an_unknown_tier() {
    init();
    let hs = start(None).await;
    let sink = HubspotSink::new(config(&hs.base_url), "sink").expect("sink");
    let [companies, contacts] = mapped(
        &sink
            .describe(ObjectType::COMPANIES)
            .await
            .expect("describe"),
        &sink.describe(ObjectType::CONTACTS).await.expect("describe"),
    );
    sink.map_fields(ObjectType::COMPANIES, &companies)
        .expect("map companies");
    sink.map_fields(ObjectType::CONTACTS, &contacts)
        .expect("map contacts");
    let stored = sink.capability(ObjectType::COMPANIES).unwrap().stored;
    for name in ["region", "seats", "tier", field::NAME] {
        assert!(stored.iter().any(|f| f == name), "{name} in {stored:?}");
    }
    sink.prepare(ObjectType::CONTACTS).await.expect("prepare");

    // Labels match ignoring case and spaces; Platinum is no option of Tier.
    let records = vec![
        company(1, "Gold"),
        company(2, " silver "),
        company(3, "Platinum"),
        company(4, "Bronze"),
    ];
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &records)
        .await
        .expect("upsert");
    let refused: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    assert_eq!(refused[0].source_id, "src-co-3");
    assert_eq!(refused[0].code, NO_SUCH_OPTION);
    assert!(refused[0].reason.contains("tier"), "{}", refused[0].reason);
    assert!(
        !refused[0].reason.contains("Platinum"),
        "{}",
        refused[0].reason
    );

    let mut written = vec![records[0].clone(), company(2, "Silver"), records[3].clone()];
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &written).await;

    // A rerun changes values in place.
    written[0]
        .fields
        .insert("seats".into(), Value::Decimal(2_500.0));
    written[1].fields.remove("region");
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, &written)
        .await
        .expect("upsert again");
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| !o.result.as_ref().is_ok_and(|w| w.created))
    );
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &written).await;

    let mut contact = Record::new(ObjectType::CONTACTS, "src-ct-1");
    contact.set(field::EMAIL, Value::Text("fields@example.com".into()));
    contact
        .fields
        .insert("favourite_colour".into(), Value::Text("Teal".into()));
    contact
        .fields
        .insert("loyalty_points".into(), Value::Decimal(4_200.0));
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, std::slice::from_ref(&contact))
        .await
        .expect("upsert contact");
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    assert_read_back_equal(&sink, ObjectType::CONTACTS, &[contact]).await;
}

#[tokio::test]
async fn a_sink_refuses_to_map_its_source_id_property() {
    init();
    let hs = start(None).await;
    let sink = HubspotSink::new(config(&hs.base_url), "sink").expect("sink");
    let err = sink
        .map_fields(
            ObjectType::CONTACTS,
            &[FieldBinding::new(
                "legacy_id",
                sink.source_id_property().to_owned(),
                FieldType::Text,
            )],
        )
        .expect_err("refused");
    assert!(err.to_string().contains("legacy_id"), "{err}");
}

#[tokio::test]
async fn created_fields_are_described_and_written() {
    init();
    let hs = start(None).await;
    let sink = HubspotSink::new(config(&hs.base_url), "sink").expect("sink");
    let option = |label: &str| PicklistOption {
        value: String::new(),
        label: label.into(),
    };
    let band = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "Size Band".into(),
                label: "Size band".into(),
                kind: FieldKind::Picklist,
                options: vec![option("Small"), option("Large")],
            },
        )
        .await
        .expect("create a picklist");
    assert_eq!(band.name, "size_band");
    assert_eq!(band.kind, FieldKind::Picklist);
    assert!(band.custom && band.writable);
    assert_eq!(band.options.len(), 2);
    let mut created = vec![band];
    for (name, kind) in [
        ("Account Notes", FieldKind::Text),
        ("Licences", FieldKind::Integer),
        ("Renewal Date", FieldKind::Date),
        ("Churned", FieldKind::Bool),
    ] {
        created.push(
            sink.create_field(
                ObjectType::COMPANIES,
                &NewField {
                    name: name.into(),
                    label: name.into(),
                    kind,
                    options: Vec::new(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}")),
        );
    }
    let described = sink
        .describe(ObjectType::COMPANIES)
        .await
        .expect("describe");
    for f in &created {
        assert_eq!(
            find(&described, &f.name),
            f,
            "describe agrees with create_field"
        );
    }
    assert_eq!(find(&described, "licences").kind, FieldKind::Decimal);
    assert_eq!(find(&described, "renewal_date").kind, FieldKind::Date);
    assert_eq!(find(&described, "churned").kind, FieldKind::Bool);

    sink.map_fields(
        ObjectType::COMPANIES,
        &[
            binding(&described, "size_band", "band"),
            binding(&described, "account_notes", "notes"),
            binding(&described, "licences", "licences"),
            binding(&described, "churned", "churned"),
        ],
    )
    .expect("map");
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let mut r = Record::new(ObjectType::COMPANIES, "src-new-1");
    r.set(field::NAME, Value::Text("Newco".into()));
    r.fields.insert("band".into(), Value::Text("large".into()));
    r.fields
        .insert("notes".into(), Value::Text("Prefers email".into()));
    r.fields.insert("licences".into(), Value::Decimal(7.0));
    r.fields.insert("churned".into(), Value::Bool(true));
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    let back = sink
        .read_back(ObjectType::COMPANIES, &["src-new-1".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back[0].text("band"), Some("Large"));
    assert_eq!(back[0].text("notes"), Some("Prefers email"));
    assert_eq!(back[0].get("licences"), Some(&Value::Decimal(7.0)));
    assert_eq!(back[0].get("churned"), Some(&Value::Bool(true)));

    // Creating it again names the endpoint and the property.
    let again = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "account notes".into(),
                label: "Account notes".into(),
                kind: FieldKind::Text,
                options: Vec::new(),
            },
        )
        .await
        .expect_err("exists");
    let text = again.to_string();
    assert!(
        text.contains("POST /crm/v3/properties/companies") && text.contains("account_notes"),
        "{text}"
    );
    // A kind HubSpot properties cannot hold as ferry carries it is refused before any request.
    let refused = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "owner".into(),
                label: "Owner".into(),
                kind: FieldKind::Reference,
                options: Vec::new(),
            },
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, ConnectorError::Unsupported { .. }),
        "{refused}"
    );
}
