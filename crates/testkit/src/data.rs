//! Test data: the sandbox's seeded generator, turned into canonical records as a source would
//! deliver them (companies `co-<key>`, contacts `p-<key>`), for the checks and for connector
//! crates' own tests.

use ferry_core::{ObjectType, Record, Value, field};
use ferry_sandbox::seed::{Mess, SeedCompany, SeedContact, SeedData, generate};

/// The generator seed every check uses, so a failure reproduces.
pub(crate) const SEED: u64 = 0x5EED_7E57;

/// The source id the testkit gives generated company `key`.
pub(crate) fn company_id(key: usize) -> String {
    format!("co-{key}")
}

/// The source id the testkit gives generated contact `key`.
pub(crate) fn contact_id(key: usize) -> String {
    format!("p-{key}")
}

/// Clean generated data (every record valid for every vendor): `contacts` contacts and a fifth
/// as many companies.
pub(crate) fn clean(contacts: usize) -> SeedData {
    generate(contacts, SEED, &Mess::none())
}

/// Canonical companies and contacts for `data`, as a source would deliver them: company `key`
/// has source id `co-<key>`, contact `key` has `p-<key>`, and each contact's company is a
/// reference to its company's source id.
pub fn canonical_records(data: &SeedData) -> (Vec<Record>, Vec<Record>) {
    (
        data.companies.iter().map(company).collect(),
        data.contacts.iter().map(contact).collect(),
    )
}

fn text(record: &mut Record, name: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        record.set(name, Value::Text(v.clone()));
    }
}

fn company(c: &SeedCompany) -> Record {
    let mut r = Record::new(ObjectType::COMPANIES, company_id(c.key));
    text(&mut r, field::NAME, &c.name);
    text(&mut r, field::DOMAIN, &c.domain);
    text(&mut r, field::PHONE, &c.phone);
    // No industry: it is a picklist of the vendor's own values (HubSpot refuses any other), which
    // the engine carries by label through the operator's value map (`tests/custom_fields.rs`
    // covers it for every pair); the seed's vendor-neutral names are no vendor's values.
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
    r.set(field::UPDATED_AT, Value::Timestamp(c.updated_at_ms));
    r
}

fn contact(c: &SeedContact) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, contact_id(c.key));
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
    // Sources deliver the flag either way; only `true` is a fact a sink must keep.
    r.set(field::EMAIL_OPT_OUT, Value::Bool(c.email_opt_out));
    if let Some(key) = c.company {
        r.set(field::COMPANY, Value::Reference(company_id(key)));
    }
    r.set(field::CREATED_AT, Value::Timestamp(c.created_at_ms));
    r.set(field::UPDATED_AT, Value::Timestamp(c.updated_at_ms));
    r
}

/// Whether `record` has opted out of marketing email.
pub(crate) fn opted_out(record: &Record) -> bool {
    record.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true))
}
