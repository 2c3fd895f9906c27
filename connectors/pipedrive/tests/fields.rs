//! Custom fields through the Pipedrive connector against the sandbox emulator over real HTTP
//! on loopback: describe, mapped fields read as a source and written and read back as a sink
//! (picklists by label), and creating fields.

use std::net::SocketAddr;

use ferry_core::fields::{FieldBinding, FieldKind, NewField, PicklistOption, VendorField};
use ferry_core::{
    ConnectorError, FieldType, ObjectType, Projection, Record, SecretRef, Sink, Source, Value,
    field, record_digest,
};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink, PipedriveSource};
use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
use ferry_sandbox::seed::{Mess, generate};
use secrecy::SecretString;

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

fn config(base_url: &str) -> PipedriveConfig {
    PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        concurrency: Some(4),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    }
}

fn named<'a>(fields: &'a [VendorField], label: &str) -> &'a VendorField {
    fields
        .iter()
        .find(|f| f.label == label)
        .unwrap_or_else(|| panic!("no field labelled {label} in {fields:?}"))
}

/// A binding of `canonical` to the described field, typed by its kind, with its options.
fn bind(canonical: &'static str, f: &VendorField) -> FieldBinding {
    FieldBinding {
        options: f.options.clone(),
        ..FieldBinding::new(
            canonical,
            f.name.clone(),
            f.kind.canonical_type().expect("a carried kind"),
        )
    }
}

fn is_key(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn describe_lists_the_seeded_custom_fields_with_kinds_and_options() {
    let (_emulator, running) = start().await;
    let source = PipedriveSource::new(config(&running.base_url), "source").unwrap();
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    let companies = source.describe(ObjectType::COMPANIES).await.unwrap();
    assert_eq!(
        companies,
        sink.describe(ObjectType::COMPANIES).await.unwrap()
    );
    for (label, kind, vendor_type) in [
        ("Region", FieldKind::Text, "varchar"),
        ("Seats", FieldKind::Decimal, "double"),
        ("Tier", FieldKind::Picklist, "enum"),
    ] {
        let f = named(&companies, label);
        assert_eq!(
            (f.kind, f.vendor_type.as_str()),
            (kind, vendor_type),
            "{f:?}"
        );
        assert!(f.custom && f.writable && is_key(&f.name), "{f:?}");
        assert_eq!(f.canonical, None);
    }
    let tier = named(&companies, "Tier");
    let labels: Vec<&str> = tier.options.iter().map(|o| o.label.as_str()).collect();
    assert_eq!(labels, ["Gold", "Silver", "Bronze"]);
    assert!(
        tier.options.iter().all(|o| o.value.parse::<u64>().is_ok()),
        "{tier:?}"
    );
    let name = named(&companies, "Name");
    assert_eq!(
        (
            name.name.as_str(),
            name.canonical.as_deref(),
            name.custom,
            name.writable
        ),
        ("name", Some(field::NAME), false, true)
    );
    let update = named(&companies, "Update time");
    assert!(!update.writable, "a system field: {update:?}");
    assert_eq!(update.canonical.as_deref(), Some(field::UPDATED_AT));

    let contacts = source.describe(ObjectType::CONTACTS).await.unwrap();
    let colour = named(&contacts, "Favourite Colour");
    let points = named(&contacts, "Loyalty Points");
    assert_eq!(
        (colour.kind, points.kind),
        (FieldKind::Text, FieldKind::Decimal)
    );
    assert!(colour.custom && points.custom);
    let emails = named(&contacts, "Email");
    assert_eq!(
        (emails.kind, emails.canonical.as_deref()),
        (FieldKind::Email, Some(field::EMAIL))
    );
    let marketing = named(&contacts, "Marketing status");
    assert_eq!(marketing.kind, FieldKind::Picklist);
    assert_eq!(marketing.options[1].value, "unsubscribed");
    assert_eq!(named(&contacts, "Organization").kind, FieldKind::Reference);
}

#[tokio::test]
async fn a_source_reads_mapped_custom_fields_with_picklists_as_labels() {
    let (emulator, running) = start().await;
    let seed = generate(40, 11, &Mess::default());
    emulator.seed(&seed);
    let source = PipedriveSource::new(config(&running.base_url), "source").unwrap();
    let companies = source.describe(ObjectType::COMPANIES).await.unwrap();
    source
        .map_fields(
            ObjectType::COMPANIES,
            &[
                bind("region", named(&companies, "Region")),
                bind("seats", named(&companies, "Seats")),
                bind("tier", named(&companies, "Tier")),
            ],
        )
        .unwrap();
    let contacts = source.describe(ObjectType::CONTACTS).await.unwrap();
    source
        .map_fields(
            ObjectType::CONTACTS,
            &[
                bind("favourite_colour", named(&contacts, "Favourite Colour")),
                bind("loyalty_points", named(&contacts, "Loyalty Points")),
            ],
        )
        .unwrap();
    let page = source.read_page(ObjectType::COMPANIES, None).await.unwrap();
    assert!(page.unreadable.is_empty());
    assert_eq!(page.records.len(), seed.companies.len());
    for (company, record) in seed.companies.iter().zip(&page.records) {
        // Organization ids follow the seed's order in an empty emulator.
        assert_eq!(record.source_id, (company.key + 1).to_string());
        assert_eq!(
            record.get("region"),
            company
                .region
                .as_ref()
                .map(|r| Value::Text(r.trim().to_owned()))
                .as_ref()
        );
        assert_eq!(
            record.get("seats"),
            company.seats.map(|s| Value::Decimal(f64::from(s))).as_ref()
        );
        assert_eq!(
            record.get("tier"),
            company.tier.map(|t| Value::Text(t.to_owned())).as_ref(),
            "the Tier as its label"
        );
        assert!(
            record.get(field::NAME).is_some(),
            "standard fields still read"
        );
    }
    assert!(seed.companies.iter().any(|c| c.tier.is_some()));
    let page = source.read_page(ObjectType::CONTACTS, None).await.unwrap();
    let people: Vec<_> = seed
        .contacts
        .iter()
        .filter(|c| c.first_name.is_some() || c.last_name.is_some())
        .collect();
    assert_eq!(page.records.len(), people.len());
    for (contact, record) in people.iter().zip(&page.records) {
        assert_eq!(
            record.get("favourite_colour"),
            contact
                .favourite_colour
                .as_ref()
                .map(|c| Value::Text(c.trim().to_owned()))
                .as_ref()
        );
        assert_eq!(
            record.get("loyalty_points"),
            contact
                .loyalty_points
                .map(|p| Value::Decimal(f64::from(p)))
                .as_ref()
        );
    }
    assert!(people.iter().any(|c| c.loyalty_points.is_some()));
}

fn company(sid: &str, name: &str, region: &str, seats: i64, tier: &str) -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, sid);
    r.set(field::NAME, Value::Text(name.into()));
    r.set(field::CITY, Value::Text("Tartu".into()));
    r.fields.insert("region".into(), Value::Text(region.into()));
    r.fields.insert("seats".into(), Value::Integer(seats));
    r.fields.insert("tier".into(), Value::Text(tier.into()));
    r
}

async fn read_back_equal(sink: &PipedriveSink, object: ObjectType, records: &[&Record]) {
    let projection = Projection::new(sink.capability(object).unwrap().stored);
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let back = sink.read_back(object, &ids).await.unwrap();
    assert_eq!(back.len(), records.len());
    for r in records {
        let mut got = back
            .iter()
            .find(|b| b.source_id == r.source_id)
            .unwrap()
            .clone();
        // As the engine compares: written without an owner, Pipedrive's default owner (the
        // token's user) is not the record's.
        if r.get(field::OWNER).is_none() {
            got.fields.remove(field::OWNER);
        }
        assert_eq!(
            record_digest(r, &projection),
            record_digest(&got, &projection),
            "\n wrote {r:?}\n read  {got:?}"
        );
    }
}

#[tokio::test]
async fn a_sink_writes_mapped_fields_reads_them_back_and_refuses_only_an_unknown_label() {
    let (emulator, running) = start().await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    let companies = sink.describe(ObjectType::COMPANIES).await.unwrap();
    let seats = FieldBinding::new(
        "seats",
        named(&companies, "Seats").name.clone(),
        FieldType::Integer,
    );
    sink.map_fields(
        ObjectType::COMPANIES,
        &[
            bind("region", named(&companies, "Region")),
            seats,
            bind("tier", named(&companies, "Tier")),
        ],
    )
    .unwrap();
    let stored = sink.capability(ObjectType::COMPANIES).unwrap().stored;
    for f in ["name", "region", "seats", "tier"] {
        assert!(stored.iter().any(|s| s == f), "{f} in {stored:?}");
    }
    let records = [
        company("co-1", "Acme", "North", 120, "Gold"),
        company("co-2", "Globex", "South", 7, "Bronze"),
        company("co-3", "Initech", "East", 3, "Platinum"),
    ];
    sink.prepare(ObjectType::COMPANIES).await.unwrap();
    let outcomes = sink.upsert(ObjectType::COMPANIES, &records).await.unwrap();
    assert!(
        outcomes[0].result.is_ok() && outcomes[1].result.is_ok(),
        "{outcomes:?}"
    );
    let refused = outcomes[2].result.as_ref().unwrap_err();
    assert_eq!(refused.code, "NO_SUCH_OPTION");
    assert!(
        refused.reason.contains("tier") && !refused.reason.contains("Platinum"),
        "{refused:?}"
    );
    assert_eq!(
        emulator.count("companies"),
        Some(2),
        "nothing written for the refused one"
    );
    // The Tier is stored as its option id, a number; Seats as a number.
    let tier_key = emulator.custom_field_key("companies", "Tier").unwrap();
    let seats_key = emulator.custom_field_key("companies", "Seats").unwrap();
    let id: u64 = outcomes[0]
        .result
        .as_ref()
        .unwrap()
        .sink_id
        .parse()
        .unwrap();
    let raw = emulator.record("companies", id).unwrap();
    let gold = &named(&companies, "Tier").options[0];
    assert_eq!(raw["custom_fields"][&tier_key].to_string(), gold.value);
    assert_eq!(raw["custom_fields"][&seats_key], serde_json::json!(120));
    read_back_equal(&sink, ObjectType::COMPANIES, &[&records[0], &records[1]]).await;
    // Rerun: updates, no duplicates; a label differing only in case and spaces is the label.
    let mut again = records[0].clone();
    again
        .fields
        .insert("tier".into(), Value::Text(" silver ".into()));
    let outcomes = sink.upsert(ObjectType::COMPANIES, &[again]).await.unwrap();
    assert!(!outcomes[0].result.as_ref().unwrap().created);
    assert_eq!(emulator.count("companies"), Some(2));
    let back = sink
        .read_back(ObjectType::COMPANIES, &["co-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(back[0].get("tier"), Some(&Value::Text("Silver".into())));

    // Contacts with their mapped custom fields.
    let contacts = sink.describe(ObjectType::CONTACTS).await.unwrap();
    sink.map_fields(
        ObjectType::CONTACTS,
        &[
            bind("favourite_colour", named(&contacts, "Favourite Colour")),
            bind("loyalty_points", named(&contacts, "Loyalty Points")),
        ],
    )
    .unwrap();
    let mut person = Record::new(ObjectType::CONTACTS, "ct-1");
    person.set(field::FIRST_NAME, Value::Text("Zoë".into()));
    person.set(field::LAST_NAME, Value::Text("Berg".into()));
    person.set(field::EMAIL, Value::Text("zoe@example.org".into()));
    person.set(field::COMPANY, Value::Reference("co-2".into()));
    person
        .fields
        .insert("favourite_colour".into(), Value::Text("Teal".into()));
    person
        .fields
        .insert("loyalty_points".into(), Value::Decimal(1250.5));
    let mut plain = Record::new(ObjectType::CONTACTS, "ct-2");
    plain.set(field::LAST_NAME, Value::Text("Plain".into()));
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &[person.clone(), plain.clone()])
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    read_back_equal(&sink, ObjectType::CONTACTS, &[&person, &plain]).await;
}

#[tokio::test]
async fn create_field_then_describe_shows_it_and_a_record_can_be_written_into_it() {
    let (_emulator, running) = start().await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    let size = sink
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
        .unwrap();
    assert!(
        is_key(&size.name) && size.custom && size.writable,
        "{size:?}"
    );
    assert_eq!(
        (size.label.as_str(), size.kind),
        ("Shoe Size", FieldKind::Decimal)
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
        .unwrap();
    assert_eq!(plan.kind, FieldKind::Picklist);
    assert_eq!(plan.options.len(), 2);
    let described = sink.describe(ObjectType::CONTACTS).await.unwrap();
    assert_eq!(named(&described, "Shoe Size"), &size);
    assert_eq!(named(&described, "Plan"), &plan);
    sink.map_fields(
        ObjectType::CONTACTS,
        &[bind("shoe_size", &size), bind("plan", &plan)],
    )
    .unwrap();
    let mut r = Record::new(ObjectType::CONTACTS, "ct-9");
    r.set(field::LAST_NAME, Value::Text("Walker".into()));
    r.fields.insert("shoe_size".into(), Value::Decimal(42.5));
    r.fields.insert("plan".into(), Value::Text("Pro".into()));
    sink.prepare(ObjectType::CONTACTS).await.unwrap();
    let outcomes = sink
        .upsert(ObjectType::CONTACTS, &[r.clone()])
        .await
        .unwrap();
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    read_back_equal(&sink, ObjectType::CONTACTS, &[&r]).await;

    // What Pipedrive has no custom field type for (a date and time) is refused, naming the
    // field and endpoint.
    let err = sink
        .create_field(
            ObjectType::COMPANIES,
            &NewField {
                name: "renewed_at".into(),
                label: "Renewed at".into(),
                kind: FieldKind::Timestamp,
                options: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("pipedrive")
            && text.contains("POST /api/v2/organizationFields")
            && text.contains("Renewed at"),
        "{text}"
    );
    // A compound field cannot be mapped.
    let err = sink
        .map_fields(
            ObjectType::CONTACTS,
            &[FieldBinding::new("x", "emails", FieldType::Text)],
        )
        .unwrap_err();
    assert!(err.to_string().contains("emails"), "{err}");
}

/// The source-id field is looked up in the field plan's listing of the object's fields when
/// it was just read, not listed again: one request of the 80 per 2 s fewer per object and run.
/// A field created since (the field plan's own) makes that listing stale, so it is listed anew.
#[tokio::test]
async fn prepare_finds_the_source_id_field_in_the_listing_the_field_plan_just_read() {
    let (emulator, running) = start().await;
    let requests = || emulator.request_counts().0;

    // A fresh account: the listing says the field is missing; prepare only creates it.
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    sink.describe(ObjectType::COMPANIES).await.unwrap();
    let before = requests();
    sink.prepare(ObjectType::COMPANIES).await.unwrap();
    assert_eq!(requests() - before, 1, "the create alone");

    // The next run finds it in its own listing, without a request.
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    let described = sink.describe(ObjectType::COMPANIES).await.unwrap();
    assert!(
        described
            .iter()
            .any(|f| f.custom && f.label.eq_ignore_ascii_case("ferry source id"))
    );
    let before = requests();
    sink.prepare(ObjectType::COMPANIES).await.unwrap();
    assert_eq!(requests() - before, 0, "found in the listing just read");
    let record = company("co-1", "Acme", "North", 3, "Gold");
    let outcomes = sink
        .upsert(ObjectType::COMPANIES, std::slice::from_ref(&record))
        .await
        .unwrap();
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    assert_eq!(emulator.count("companies"), Some(1));

    // A field created after the listing: the source-id field is looked up in a new one.
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    sink.describe(ObjectType::CONTACTS).await.unwrap();
    let new = NewField {
        name: "shoe_size".into(),
        label: "Shoe Size".into(),
        kind: FieldKind::Decimal,
        options: Vec::new(),
    };
    sink.create_field(ObjectType::CONTACTS, &new).await.unwrap();
    let before = requests();
    sink.prepare(ObjectType::CONTACTS).await.unwrap();
    assert!(
        requests() - before >= 2,
        "listed again (and the missing field created)"
    );
}
