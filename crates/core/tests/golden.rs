//! Golden digests: the SHA-256 of a fixed contact and a fixed company under each sink's
//! stored-field projection, as literal hex.
//!
//! A digest taken before a write is compared with one taken after read-back, and digests are
//! kept in checkpoints and reports, so a refactor of the model, the field tables or the
//! encoding must not change one unnoticed. The constants were computed once from the code as
//! it stood before objects became data (issue #13); a change to any of them is a change of
//! the checksum format and needs a new encoding tag, not a new constant.

use ferry_core::{AggregateDigest, ObjectType, Projection, Record, Value, field, record_digest};

/// The contact: every canonical contact field holds a value; non-ASCII text, a reference to
/// the company, a `true` opt-out and two timestamps.
fn contact() -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, "ct-0001");
    r.set(
        field::EMAIL,
        Value::Text("zoë.łukasiewicz@example.com".into()),
    );
    r.set(field::FIRST_NAME, Value::Text("Zoë".into()));
    r.set(field::LAST_NAME, Value::Text("Łukasiewicz-Müller".into()));
    r.set(field::PHONE, Value::Text("+48 22 123 45 67".into()));
    r.set(field::MOBILE_PHONE, Value::Text("+48 601 234 567".into()));
    r.set(field::JOB_TITLE, Value::Text("Directrice générale".into()));
    r.set(field::STREET, Value::Text("ul. Piotrkowska 12/3".into()));
    r.set(field::CITY, Value::Text("Łódź".into()));
    r.set(field::STATE, Value::Text("łódzkie".into()));
    r.set(field::POSTAL_CODE, Value::Text("90-001".into()));
    r.set(field::COUNTRY, Value::Text("Polska".into()));
    r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
    r.set(field::CREATED_AT, Value::Timestamp(1_654_094_108_469));
    r.set(field::UPDATED_AT, Value::Timestamp(1_700_000_000_001));
    r.set(field::COMPANY, Value::Reference("co-0001".into()));
    r
}

/// The company the contact references: every canonical company field holds a value; an
/// integer, a decimal, non-ASCII text and two timestamps.
fn company() -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, "co-0001");
    r.set(
        field::NAME,
        Value::Text("Société Générale de Café ☕ 株式会社".into()),
    );
    r.set(field::DOMAIN, Value::Text("café.example".into()));
    r.set(field::PHONE, Value::Text("+33 1 23 45 67 89".into()));
    r.set(field::INDUSTRY, Value::Text("Food & Beverage".into()));
    r.set(field::EMPLOYEE_COUNT, Value::Integer(250));
    r.set(field::ANNUAL_REVENUE, Value::Decimal(1_234_567.89));
    r.set(field::STREET, Value::Text("12 rue de l'Église".into()));
    r.set(field::CITY, Value::Text("Besançon".into()));
    r.set(field::STATE, Value::Text("Bourgogne-Franche-Comté".into()));
    r.set(field::POSTAL_CODE, Value::Text("25000".into()));
    r.set(field::COUNTRY, Value::Text("France".into()));
    r.set(field::CREATED_AT, Value::Timestamp(1_577_836_800_000));
    r.set(field::UPDATED_AT, Value::Timestamp(1_717_171_717_171));
    r
}

/// Every canonical field of `object`.
fn full(object: ObjectType) -> Projection {
    Projection::new(object.fields().iter().map(|f| f.name))
}

// The stored-field projections of the sinks as they are today (each connector's
// `mapping::stored_fields`), spelled out so this test does not move when they do.

/// HubSpot, Salesforce and Zoho: every field but the system timestamps.
fn written(object: ObjectType) -> Projection {
    Projection::new(
        object
            .fields()
            .iter()
            .map(|f| f.name)
            .filter(|n| *n != field::CREATED_AT && *n != field::UPDATED_AT),
    )
}

/// Dataverse: as `written`, but accounts have no industry column in the mapping.
fn dynamics(object: ObjectType) -> Projection {
    Projection::new(
        written(object)
            .fields()
            .iter()
            .filter(|n| !(object == ObjectType::COMPANIES && n.as_str() == field::INDUSTRY))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// Pipedrive: persons keep names, emails, phones, the opt-out and the organization;
/// organizations keep the name and the address.
fn pipedrive(object: ObjectType) -> Projection {
    if object == ObjectType::CONTACTS {
        Projection::new([
            field::EMAIL,
            field::FIRST_NAME,
            field::LAST_NAME,
            field::PHONE,
            field::MOBILE_PHONE,
            field::EMAIL_OPT_OUT,
            field::COMPANY,
        ])
    } else {
        Projection::new([
            field::NAME,
            field::STREET,
            field::CITY,
            field::STATE,
            field::POSTAL_CODE,
            field::COUNTRY,
        ])
    }
}

/// Each projection by name, with the pinned digests of the contact and the company and their
/// aggregate (`sha256-sum:2:…` as reports print it).
#[allow(clippy::type_complexity)]
const GOLDEN: &[(&str, fn(ObjectType) -> Projection, &str, &str, &str)] = &[
    (
        "full",
        full,
        "8b39ec52a09b28e5fd8146bdf29dab013d6a4d5f22bbcd91b84f34a04ad19638",
        "4462ef77cf5e424a65e032e19f0e2451781994ee87aca38d20c1f3433ba07c31",
        "cf9cdbca6ff96b306361799f91abcf52b583e24daa68711ed91127e386721269",
    ),
    (
        "hubspot/salesforce/zoho",
        written,
        "b9b7564b783b1724000267cd7a3261c5ae2e5b4603a38f33e941d21b76c56352",
        "ac8c3ce3f55e7f785b5ef63f2083dae0d414c57020374205db2602b2d24c280f",
        "6643932f6d99969c5b615e0c9ab63ca6824320b623dad139c467d4ce49118b61",
    ),
    (
        "dynamics",
        dynamics,
        "b9b7564b783b1724000267cd7a3261c5ae2e5b4603a38f33e941d21b76c56352",
        "bb6dd13c0b6f4fe9de75b0237e7c0d4b028f8ae3ce7b87e9b9bedade60977622",
        "7525278783aa670dde7817f0f8ae6f10b0bde629d21f171da300acf9d75cd974",
    ),
    (
        "pipedrive",
        pipedrive,
        "ca635cc2a659028bf2208f220ebff5c3103ca175e1fb567d4ffe9d006fd2523e",
        "ca72d3233319755b1b5952b13d5d73980b8770c5eeb6aaa51c277d3e3ad8bbf1",
        "94d62fe5d97277e70d79e1d34c1d695b1bc4123bd0b201226c261a3eaaab0e2f",
    ),
];

#[test]
fn digests_of_the_fixed_records_are_pinned() {
    let (contact, company) = (contact(), company());
    // Every canonical field holds a value, so the full projection covers them all; except the
    // owner (issue #14), the opt-outs beside email, the legal basis and the consent date (issue #16), added to the schema after
    // these constants: a record without them hashes as it did before, which is what lets a
    // schema grow without changing digests.
    let later = [
        field::OWNER,
        field::DO_NOT_CALL,
        field::SMS_OPT_OUT,
        field::FAX_OPT_OUT,
        field::POSTAL_OPT_OUT,
        field::EMAIL_UNSUBSCRIBED_TYPES,
        field::LEGAL_BASIS,
        field::CONSENT_DATE,
    ];
    for (object, record) in [
        (ObjectType::CONTACTS, &contact),
        (ObjectType::COMPANIES, &company),
    ] {
        let fields = object.fields().iter().filter(|f| !later.contains(&f.name));
        assert_eq!(record.fields.len(), fields.count(), "{object}");
    }
    let mut failures = Vec::new();
    for (name, projection, want_contact, want_company, want_aggregate) in GOLDEN {
        let c = record_digest(&contact, &projection(ObjectType::CONTACTS));
        let o = record_digest(&company, &projection(ObjectType::COMPANIES));
        let mut aggregate = AggregateDigest::default();
        aggregate.add(&c);
        aggregate.add(&o);
        let got = (c.to_string(), o.to_string(), aggregate.hex());
        let want = (
            (*want_contact).to_owned(),
            (*want_company).to_owned(),
            (*want_aggregate).to_owned(),
        );
        if got != want {
            failures.push(format!("{name}: got {got:?}, pinned {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_projections_differ_so_each_pin_checks_something() {
    let (contact, company) = (contact(), company());
    let mut seen = std::collections::HashSet::new();
    for (name, projection, ..) in GOLDEN {
        let pair = (
            record_digest(&contact, &projection(ObjectType::CONTACTS)),
            record_digest(&company, &projection(ObjectType::COMPANIES)),
        );
        assert!(
            seen.insert(pair),
            "{name} repeats another projection's digests"
        );
    }
}
