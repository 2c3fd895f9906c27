//! The Dataverse source against the sandbox emulator over real HTTP on loopback.

mod common;

use std::collections::HashSet;

use common::{config, read_all, start};
use ferry_core::{ConnectorError, ObjectType, Source, Value, field};
use ferry_dynamics::{DynamicsConfig, DynamicsSource};
use ferry_sandbox::dynamics::Options;
use ferry_sandbox::seed::{Mess, generate};

fn source(base_url: &str, page_size: u32) -> DynamicsSource {
    let c = DynamicsConfig {
        page_size: Some(page_size),
        ..config(base_url)
    };
    DynamicsSource::new(c, "source").expect("source")
}

#[tokio::test]
async fn reads_every_record_once_across_next_links_with_companies_and_opt_outs() {
    let (emulator, running) = start(Options::default()).await;
    let data = generate(240, 7, &Mess::default());
    let seeded = emulator.seed(&data);
    let source = source(&running.base_url, 50);
    source.check().await.expect("check");

    let (companies, pages) = read_all(&source, ObjectType::COMPANIES).await;
    assert_eq!(companies.len(), seeded.accounts);
    assert_eq!(pages, seeded.accounts.div_ceil(50));
    let (contacts, pages) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!(contacts.len(), seeded.contacts);
    assert_eq!(
        pages,
        seeded.contacts.div_ceil(50),
        "the page size is kept across next links"
    );
    let ids: HashSet<&str> = contacts.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids.len(), contacts.len(), "a record was read twice");

    let company_ids: HashSet<&str> = companies.iter().map(|r| r.source_id.as_str()).collect();
    let linked = contacts
        .iter()
        .filter(|c| c.get(field::COMPANY).is_some())
        .count();
    // Contacts with a title over 100 characters were not seeded (jobtitle holds at most 100).
    let kept: Vec<_> = data
        .contacts
        .iter()
        .filter(|c| {
            c.job_title
                .as_deref()
                .is_none_or(|t| t.chars().count() <= 100)
        })
        .collect();
    assert_eq!(kept.len(), seeded.contacts);
    let seeded_linked = kept.iter().filter(|c| c.company.is_some()).count();
    assert_eq!(linked, seeded_linked);
    assert!(
        contacts
            .iter()
            .filter_map(|c| c.text(field::COMPANY))
            .all(|c| company_ids.contains(c))
    );
    let opted_out = contacts
        .iter()
        .filter(|c| c.get(field::EMAIL_OPT_OUT) == Some(&Value::Bool(true)))
        .count();
    assert_eq!(opted_out, kept.iter().filter(|c| c.email_opt_out).count());
    assert!(contacts.iter().all(|c| c.get(field::UPDATED_AT).is_some()));
    assert!(
        companies.iter().all(|c| c.get(field::INDUSTRY).is_none()),
        "industrycode is a choice, not text"
    );
    let with_revenue = companies
        .iter()
        .filter(|c| c.get(field::ANNUAL_REVENUE).is_some())
        .count();
    assert_eq!(
        with_revenue,
        data.companies
            .iter()
            .filter(|c| c.annual_revenue.is_some())
            .count()
    );

    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        Some(seeded.contacts as u64)
    );
    let (_, _, throttled) = source.http_stats().expect("stats").snapshot();
    assert_eq!(throttled, 0);
}

#[tokio::test]
async fn count_at_the_cap_is_unknown() {
    let (emulator, running) = start(Options::default()).await;
    emulator.seed(&generate(5_000, 3, &Mess::none()));
    let source = source(&running.base_url, 5_000);
    assert_eq!(
        source.count(ObjectType::CONTACTS).await.expect("count"),
        None
    );
    assert_eq!(
        source.count(ObjectType::COMPANIES).await.expect("count"),
        Some(1_000)
    );
    let (contacts, pages) = read_all(&source, ObjectType::CONTACTS).await;
    assert_eq!((contacts.len(), pages), (5_000, 1));
}

#[tokio::test]
async fn opt_outs_are_counted_per_channel_with_one_request_each() {
    let (emulator, running) = start(Options::default()).await;
    let data = generate(
        300,
        16,
        &Mess {
            opt_out_channels: 0.1,
            ..Mess::none()
        },
    );
    emulator.seed(&data);
    let source = source(&running.base_url, 50);
    source.check().await.expect("check");
    type Flag = fn(&ferry_sandbox::seed::SeedContact) -> bool;
    let channels: [(&str, Flag); 4] = [
        (field::EMAIL_OPT_OUT, |c| c.email_opt_out),
        (field::DO_NOT_CALL, |c| c.do_not_call),
        (field::FAX_OPT_OUT, |c| c.fax_opt_out),
        (field::POSTAL_OPT_OUT, |c| c.postal_opt_out),
    ];
    for (canonical, seeded) in channels {
        let expected = data.contacts.iter().filter(|c| seeded(c)).count() as u64;
        assert!(expected > 0, "{canonical}: nothing seeded");
        let before = emulator.requests();
        let counted = source
            .count_opted_out(ObjectType::CONTACTS, canonical)
            .await
            .expect("count");
        assert_eq!(counted, expected, "{canonical}");
        assert_eq!(emulator.requests() - before, 1, "{canonical}: one $count");
    }
}

#[tokio::test]
async fn a_foreign_next_link_is_refused() {
    let (_emulator, running) = start(Options::default()).await;
    let source = source(&running.base_url, 10);
    let err = source
        .read_page(
            ObjectType::CONTACTS,
            Some("https://attacker.example/api/data/v9.2/contacts?$skiptoken=x"),
        )
        .await
        .expect_err("foreign link");
    assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
    assert!(!err.to_string().contains("attacker"), "{err}");
}
