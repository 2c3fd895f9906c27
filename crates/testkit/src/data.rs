//! Test data: the sandbox's seeded generator, turned into canonical records as a source would
//! deliver them (companies `co-<key>`, contacts `p-<key>`), for the checks and for connector
//! crates' own tests.

use ferry_core::model::{Link, parse_date};
use ferry_core::{ObjectType, Pipeline, Record, User, Value, field};
use ferry_sandbox::accounts::{StageLabel, account_users, vendor_stage};
use ferry_sandbox::seed::{Mess, SeedCompany, SeedContact, SeedData, SeedParent, generate};

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

/// The source id the testkit gives generated deal `key`.
pub(crate) fn deal_id(key: usize) -> String {
    format!("d-{key}")
}

/// The source id the testkit gives generated note `key`.
pub(crate) fn note_id(key: usize) -> String {
    format!("n-{key}")
}

/// What an account holds besides records, as a connector lists it: its users and its deal
/// pipelines. Generated owners and stages are turned into the account's ids through it, as the
/// engine turns a source's into a sink's.
pub(crate) struct Account<'a> {
    /// The vendor, as the emulator's accounts name it (`ferry_sandbox::accounts`).
    pub vendor: &'a str,
    /// Where the vendor's account keeps each seed stage, by label.
    pub stage_labels: &'static [StageLabel],
    /// The users the connector lists.
    pub users: &'a [User],
    /// The deal pipelines the connector lists.
    pub pipelines: &'a [Pipeline],
}

/// Labels compare as the engine compares them: ignoring case and surrounding spaces.
fn same_label(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

impl Account<'_> {
    /// The account's user id for seed user `key`: the active user listed with that user's
    /// address; when the account lacks that user or has them deactivated, the first active user
    /// (every generated record gets an owner, so a sink's default owner never stands in).
    pub(crate) fn owner(&self, key: Option<usize>) -> Option<Value> {
        let wanted = account_users(self.vendor)
            .into_iter()
            .find(|u| Some(u.key) == key && u.active);
        let matching = wanted.and_then(|wanted| {
            self.users
                .iter()
                .find(|u| u.active && same_label(&u.email, &wanted.email))
        });
        matching
            .or_else(|| self.users.iter().find(|u| u.active))
            .map(|u| Value::Text(u.id.clone()))
    }

    /// The account's stage ids for a seed stage, found by the labels the emulator's stage table
    /// gives it; `Err` names the labels that `pipelines()` does not list.
    pub(crate) fn stage(&self, seed_pipeline: &str, seed_stage: &str) -> Result<Value, String> {
        let label =
            vendor_stage(self.stage_labels, seed_pipeline, seed_stage).ok_or_else(|| {
                format!("the emulator places no stage for {seed_pipeline}/{seed_stage}")
            })?;
        self.pipelines
            .iter()
            .filter(|p| same_label(&p.label, label.pipeline))
            .find_map(|p| {
                p.stages
                    .iter()
                    .find(|s| same_label(&s.label, label.stage))
                    .map(|s| Value::stage(p.id.clone(), s.id.clone()))
            })
            .ok_or_else(|| {
                format!(
                    "pipelines(deals) lists no stage \"{}\" in a pipeline \"{}\"",
                    label.stage, label.pipeline
                )
            })
    }
}

/// Canonical deals and notes for `data`, as a source would deliver them into `account`: deal
/// `key` has source id `d-<key>`, note `key` has `n-<key>`; references name the testkit's source
/// ids; owners and stages are the account's own (the engine's mapping already applied).
pub(crate) fn crm_records(
    data: &SeedData,
    account: &Account<'_>,
) -> Result<(Vec<Record>, Vec<Record>), String> {
    let mut deals = Vec::with_capacity(data.deals.len());
    for d in &data.deals {
        let mut r = Record::new(ObjectType::DEALS, deal_id(d.key));
        r.set(field::NAME, Value::Text(d.name.clone()));
        if let Some(amount) = d.amount {
            r.set(field::AMOUNT, Value::Decimal(amount));
        }
        r.set(field::CURRENCY, Value::Text(d.currency.to_owned()));
        if let Some(days) = parse_date(&d.close_date) {
            r.set(field::CLOSE_DATE, Value::Date(days));
        }
        let (pipeline, stage) = d.seed_stage();
        r.set(field::STAGE, account.stage(pipeline.key, stage.key)?);
        r.set(
            field::STATUS,
            Value::Text(stage.outcome.as_str().to_owned()),
        );
        if let Some(owner) = account.owner(d.owner) {
            r.set(field::OWNER, owner);
        }
        if let Some(key) = d.company {
            r.set(field::COMPANY, Value::Reference(company_id(key)));
        }
        if !d.contacts.is_empty() {
            let links = d.contacts.iter().map(|&k| Link {
                object: ObjectType::CONTACTS,
                id: contact_id(k),
            });
            r.set(field::CONTACTS, Value::Links(links.collect()));
        }
        r.set(field::CREATED_AT, Value::Timestamp(d.created_at_ms));
        r.set(field::UPDATED_AT, Value::Timestamp(d.updated_at_ms));
        deals.push(r);
    }
    let notes = data
        .notes
        .iter()
        .map(|n| {
            let mut r = Record::new(ObjectType::NOTES, note_id(n.key));
            r.set(field::BODY, Value::Text(n.body.clone()));
            r.set(field::TIMESTAMP, Value::Timestamp(n.timestamp_ms));
            if let Some(owner) = account.owner(n.owner) {
                r.set(field::OWNER, owner);
            }
            let links = n.parents.iter().map(|p| match *p {
                SeedParent::Deal(k) => Link {
                    object: ObjectType::DEALS,
                    id: deal_id(k),
                },
                SeedParent::Contact(k) => Link {
                    object: ObjectType::CONTACTS,
                    id: contact_id(k),
                },
                SeedParent::Company(k) => Link {
                    object: ObjectType::COMPANIES,
                    id: company_id(k),
                },
            });
            r.set(field::PARENTS, Value::Links(links.collect()));
            r
        })
        .collect();
    Ok((deals, notes))
}

/// Sets each company's and contact's owner to the account's user for its seed owner
/// (`companies` and `contacts` as [`canonical_records`] made them from `data`).
pub(crate) fn set_owners(
    data: &SeedData,
    account: &Account<'_>,
    companies: &mut [Record],
    contacts: &mut [Record],
) {
    for (r, c) in companies.iter_mut().zip(&data.companies) {
        if let Some(owner) = account.owner(c.owner) {
            r.set(field::OWNER, owner);
        }
    }
    for (r, c) in contacts.iter_mut().zip(&data.contacts) {
        if let Some(owner) = account.owner(c.owner) {
            r.set(field::OWNER, owner);
        }
    }
}
