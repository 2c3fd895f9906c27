//! Source checks, over one full read of an emulator seeded with clean generated data large
//! enough to need several pages (2,300 contacts: Salesforce's 2,000-record query pages too;
//! 12,000 if that still fits in one page).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_core::{ObjectType, Value, field};
use ferry_sandbox::SeedSummary;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::SeedData;

use super::{Read, base_objects, exactly_once, read_all};
use crate::data;
use crate::harness::{Ctx, Stop, Verdict, ensure};

/// Contacts seeded for the source checks (and a fifth as many companies).
pub(crate) const SOURCE_CONTACTS: usize = 2_300;

/// One full read of the seeded emulator, shared by the source checks.
pub(crate) struct FullRead {
    /// What was generated.
    pub data: SeedData,
    /// What the emulator says it seeded.
    pub seeded: SeedSummary,
    /// The companies read (empty if the connector does not read companies).
    pub companies: Read,
    /// The contacts read.
    pub contacts: Read,
}

/// Contacts seeded instead when all of [`SOURCE_CONTACTS`] came in one page (Dataverse pages
/// hold up to 5,000 records), so that paging is exercised for every vendor.
pub(crate) const LARGE_SOURCE_CONTACTS: usize = 12_000;

async fn read_once(ctx: &Ctx) -> Result<FullRead, Stop> {
    let mut read = read_seeded(ctx, SOURCE_CONTACTS).await?;
    if read.contacts.pages == 1 && base_objects(ctx).contains(&ObjectType::CONTACTS) {
        read = read_seeded(ctx, LARGE_SOURCE_CONTACTS).await?;
    }
    Ok(read)
}

/// Seeds a fresh emulator with `contacts` clean contacts (and a fifth as many companies) and
/// reads everything back through the source.
async fn read_seeded(ctx: &Ctx, contacts: usize) -> Result<FullRead, Stop> {
    let data = data::clean(contacts);
    let served = ctx.serve(Faults::default(), Some(&data)).await?;
    let seeded = served.seeded.unwrap_or_default();
    let source = ctx.source(&served, None)?;
    source
        .check()
        .await
        .map_err(|e| ctx.error("check() with the emulator's credentials", &e))?;
    let mut read = FullRead {
        data,
        seeded,
        companies: Read::default(),
        contacts: Read::default(),
    };
    for object in base_objects(ctx) {
        let companies = object == ObjectType::COMPANIES;
        let expected = if companies {
            seeded.companies
        } else {
            seeded.contacts
        };
        // Even one record per page ends within this many pages.
        let got = read_all(ctx, source.as_ref(), object, expected + 10).await?;
        if companies {
            read.companies = got;
        } else {
            read.contacts = got;
        }
    }
    Ok(read)
}

/// The shared full read, made by whichever source check asks first.
async fn full_read(ctx: &Ctx) -> Result<Arc<FullRead>, Stop> {
    ctx.source_read
        .get_or_init(|| async {
            read_once(ctx)
                .await
                .map(Arc::new)
                .map_err(|stop| match stop {
                    Stop::Fail(r) | Stop::Skip(r) => r,
                })
        })
        .await
        .clone()
        .map_err(|reason| Stop::Fail(format!("the full read failed: {reason}")))
}

/// Fails unless the emulator seeded every generated record: the counts below come from the
/// generated data, which is only right if nothing was left out.
fn seeded_everything(read: &FullRead) -> Result<(), Stop> {
    ensure!(
        read.seeded.companies == read.data.companies.len()
            && read.seeded.contacts == read.data.contacts.len(),
        "the emulator seeded {} companies and {} contacts of {} and {} generated clean records (an emulator bug)",
        read.seeded.companies,
        read.seeded.contacts,
        read.data.companies.len(),
        read.data.contacts.len()
    );
    Ok(())
}

/// Check 1: paging reaches the end with no gap and no repeat.
pub(crate) async fn paging(ctx: Arc<Ctx>) -> Verdict {
    let read = full_read(&ctx).await?;
    let mut parts = Vec::new();
    for object in base_objects(&ctx) {
        let (got, expected) = if object == ObjectType::COMPANIES {
            (&read.companies, read.seeded.companies)
        } else {
            (&read.contacts, read.seeded.contacts)
        };
        exactly_once(object, got, expected)?;
        parts.push(format!(
            "{} {object} in {} page{}",
            got.records.len(),
            got.pages,
            if got.pages == 1 { "" } else { "s" }
        ));
    }
    if base_objects(&ctx).contains(&ObjectType::CONTACTS) {
        ensure!(
            read.contacts.pages > 1,
            "all {} contacts came in one page, so paging was never exercised",
            read.contacts.records.len()
        );
    }
    Ok(format!(
        "{}, each exactly once, cursors ended",
        parts.join(" and ")
    ))
}

/// Check 2: each contact's company reference is the source id of a company that was read, the
/// right one, and as many contacts have a company as were seeded with one.
pub(crate) async fn associations(ctx: Arc<Ctx>) -> Verdict {
    if !base_objects(&ctx).contains(&ObjectType::COMPANIES) {
        return Err(Stop::Skip(format!(
            "{} does not read companies",
            ctx.vendor()
        )));
    }
    let read = full_read(&ctx).await?;
    seeded_everything(&read)?;
    let company_ids: HashSet<&str> = read
        .companies
        .records
        .iter()
        .map(|r| r.source_id.as_str())
        .collect();
    let mut with_company = 0usize;
    let mut dangling = 0usize;
    for contact in &read.contacts.records {
        match contact.get(field::COMPANY) {
            None => {}
            Some(Value::Reference(id)) => {
                with_company += 1;
                if !company_ids.contains(id.as_str()) {
                    dangling += 1;
                }
            }
            Some(_) => {
                return Err(Stop::Fail(format!(
                    "contact {}'s company is not a Value::Reference",
                    contact.source_id
                )));
            }
        }
    }
    ensure!(
        dangling == 0,
        "{dangling} contacts reference a company id that is not among the {} companies read (a vendor id not resolved to the company's source id?)",
        company_ids.len()
    );
    let expected = read
        .data
        .contacts
        .iter()
        .filter(|c| c.company.is_some())
        .count();
    ensure!(
        with_company == expected,
        "{with_company} contacts were read with a company, {expected} were seeded with one"
    );

    // Which company: contacts matched to the seed by email, companies by domain (both unique
    // in clean generated data). Contacts or companies without them cannot be matched.
    let seed_by_email: HashMap<&str, Option<usize>> = read
        .data
        .contacts
        .iter()
        .filter_map(|c| Some((c.email.as_deref()?, c.company)))
        .collect();
    let seed_domain: HashMap<usize, &str> = read
        .data
        .companies
        .iter()
        .filter_map(|c| Some((c.key, c.domain.as_deref()?)))
        .collect();
    let read_domain: HashMap<&str, &str> = read
        .companies
        .records
        .iter()
        .filter_map(|r| Some((r.source_id.as_str(), r.text(field::DOMAIN)?)))
        .collect();
    let (mut checked, mut wrong) = (0usize, 0usize);
    for contact in &read.contacts.records {
        let Some(expected) = contact
            .text(field::EMAIL)
            .and_then(|e| seed_by_email.get(e))
        else {
            continue;
        };
        let got = contact.text(field::COMPANY);
        match (expected, got) {
            (None, None) => checked += 1,
            (None, Some(_)) | (Some(_), None) => {
                checked += 1;
                wrong += 1;
            }
            (Some(key), Some(id)) => {
                if let (Some(want), Some(have)) = (seed_domain.get(key), read_domain.get(id)) {
                    checked += 1;
                    if want != have {
                        wrong += 1;
                    }
                }
            }
        }
    }
    ensure!(
        wrong == 0,
        "{wrong} of {checked} contacts matched to the seed by email have the wrong company (or none, or one they should not have)"
    );
    let matched = if checked == 0 {
        "; which company could not be checked (the source reads no email or no domain)".to_owned()
    } else {
        format!("; {checked} checked against the seed by email and domain, all the right company")
    };
    Ok(format!(
        "{with_company} contacts have a company, all among the {} companies read{matched}",
        company_ids.len()
    ))
}

/// Check 3: every opt-out is read, on the right contact.
pub(crate) async fn opt_outs(ctx: Arc<Ctx>) -> Verdict {
    if !base_objects(&ctx).contains(&ObjectType::CONTACTS) {
        return Err(Stop::Skip(format!(
            "{} does not read contacts",
            ctx.vendor()
        )));
    }
    let read = full_read(&ctx).await?;
    seeded_everything(&read)?;
    let expected = read
        .data
        .contacts
        .iter()
        .filter(|c| c.email_opt_out)
        .count();
    ensure!(
        expected > 0,
        "the seed has no opted-out contact (a testkit bug)"
    );
    let got = read
        .contacts
        .records
        .iter()
        .filter(|r| data::opted_out(r))
        .count();
    ensure!(
        got == expected,
        "{got} contacts were read with email_opt_out = true, {expected} were seeded opted out"
    );
    let seed_by_email: HashMap<&str, bool> = read
        .data
        .contacts
        .iter()
        .filter_map(|c| Some((c.email.as_deref()?, c.email_opt_out)))
        .collect();
    let (mut checked, mut wrong) = (0usize, 0usize);
    for contact in &read.contacts.records {
        if let Some(want) = contact
            .text(field::EMAIL)
            .and_then(|e| seed_by_email.get(e))
        {
            checked += 1;
            if *want != data::opted_out(contact) {
                wrong += 1;
            }
        }
    }
    ensure!(
        wrong == 0,
        "{wrong} of {checked} contacts matched to the seed by email have the wrong opt-out flag"
    );
    Ok(format!(
        "{got} opted-out contacts of {}, as seeded; {checked} checked one by one by email",
        read.contacts.records.len()
    ))
}
