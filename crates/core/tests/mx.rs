//! The email domain check (`migration.email_mx_check`) against a real DNS zone served on
//! loopback UDP: verdicts, one question per domain per run, the concurrency limit, the
//! timeout, and that only domains are ever sent.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::model::{ObjectType, Record, Value, field};
use ferry_core::mx::{MxChecker, MxSettings, Verdict, domain_of};
use ferry_core::quality::{
    Action, EMAIL_DOMAIN_NO_MAIL, EMAIL_DOMAIN_NO_MX, KnownIds, QualityChecker, QualityRules,
};
use ferry_sandbox::dns::{self, Entry, ServedZone};

const TIMEOUT: Duration = Duration::from_millis(300);

/// The zone of these tests: one domain of each kind; anything else is NXDOMAIN.
async fn zone(silent: &[&str]) -> ServedZone {
    let mut entries = BTreeMap::from([
        (
            "withmx.ferry-test.net".to_owned(),
            Entry::Mx("mail.withmx.ferry-test.net".to_owned()),
        ),
        (
            "aonly.ferry-test.net".to_owned(),
            Entry::Address(Ipv4Addr::new(192, 0, 2, 1)),
        ),
        ("nullmx.ferry-test.net".to_owned(), Entry::NullMx),
    ]);
    let idna = domain_of("x@bücher-test.net").expect("IDNA domain");
    entries.insert(idna.clone(), Entry::Mx(format!("mx.{idna}")));
    for domain in silent {
        entries.insert((*domain).to_owned(), Entry::Silent);
    }
    dns::serve(entries).await.expect("serve the zone")
}

fn checker(zone: &ServedZone, concurrency: usize) -> MxChecker {
    MxChecker::new(MxSettings {
        timeout: TIMEOUT,
        concurrency,
        server: Some(zone.addr),
    })
    .expect("resolver")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_domain_gets_its_verdict_and_is_asked_once() {
    let zone = zone(&["silent.ferry-test.net"]).await;
    let mx = checker(&zone, 4);
    let domains = [
        "withmx.ferry-test.net",
        "aonly.ferry-test.net",
        "nullmx.ferry-test.net",
        "gone.ferry-test.net",
        "silent.ferry-test.net",
    ];
    let idna = domain_of("jürgen@Bücher-Test.net").expect("IDNA domain");
    assert!(idna.starts_with("xn--"), "{idna}");
    let all = || {
        domains
            .iter()
            .map(|d| (*d).to_owned())
            .chain([idna.clone(), idna.clone()])
    };
    mx.look_up(all()).await;
    let expected = [
        Verdict::Accepts,
        Verdict::Accepts,
        Verdict::NoMail,
        Verdict::NoMx,
        Verdict::Unchecked,
    ];
    for (domain, verdict) in domains.iter().zip(expected) {
        assert_eq!(mx.verdict(domain), Some(verdict), "{domain}");
    }
    assert_eq!(mx.verdict(&idna), Some(Verdict::Accepts));
    assert_eq!(mx.verdict("never-asked.ferry-test.net"), None);

    // Looked up again (a later page, another object): nothing more is asked.
    let asked = zone.questions().len();
    mx.look_up(all()).await;
    assert_eq!(zone.questions().len(), asked);

    // MX first; A and AAAA only where there is no MX; every domain once per type, but for
    // the silent one: a question left unanswered for half the timeout is sent once more.
    let mut questions: Vec<(String, String)> = zone
        .questions()
        .into_iter()
        .map(|q| (q.name, q.ty))
        .collect();
    questions.sort();
    let q = |name: &str, ty: &str| (name.to_owned(), ty.to_owned());
    let mut want = vec![
        q("withmx.ferry-test.net", "MX"),
        q("aonly.ferry-test.net", "MX"),
        q("aonly.ferry-test.net", "A"),
        q("nullmx.ferry-test.net", "MX"),
        q("gone.ferry-test.net", "MX"),
        q("silent.ferry-test.net", "MX"),
        q("silent.ferry-test.net", "MX"),
        q(&idna, "MX"),
    ];
    want.sort();
    assert_eq!(questions, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_the_concurrency_limit_is_asked_at_once_each_within_the_timeout() {
    let silent = [
        "s1.ferry-test.net",
        "s2.ferry-test.net",
        "s3.ferry-test.net",
        "s4.ferry-test.net",
    ];
    let zone = zone(&silent).await;
    for (concurrency, waves) in [(2u32, 2u32), (4, 1)] {
        let mx = checker(&zone, concurrency as usize);
        let started = Instant::now();
        mx.look_up(silent.iter().map(|d| (*d).to_owned())).await;
        let took = started.elapsed();
        assert!(
            took >= TIMEOUT * waves && took < TIMEOUT * (waves + 1),
            "concurrency {concurrency}: {took:?}"
        );
        for domain in silent {
            assert_eq!(mx.verdict(domain), Some(Verdict::Unchecked));
        }
    }
}

fn contact(id: &str, email: &str) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, id);
    r.set(field::EMAIL, Value::Text(email.into()));
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quality_checks_flag_by_field_and_send_only_domains() {
    let zone = zone(&["silent.ferry-test.net"]).await;
    let mut quality =
        QualityChecker::new(QualityRules::default(), "sink", Vec::new(), KnownIds::new())
            .with_mx(Some(Arc::new(checker(&zone, 8))));
    let mut records = vec![
        contact("c-mx", "jane.doe@withmx.ferry-test.net"),
        contact("c-a", "Max.Muster@AOnly.ferry-test.net"),
        contact("c-null", "olaf.null@nullmx.ferry-test.net"),
        contact("c-gone", "greta.gone@gone.ferry-test.net"),
        contact("c-silent", "sam.silent@silent.ferry-test.net"),
        // Placeholders (a reserved domain) and invalid addresses are flagged already: not asked.
        contact("c-placeholder", "pat.placeholder@company.invalid"),
        contact("c-invalid", "not an address"),
    ];
    quality.look_up_domains(&records).await;
    let mut found: Vec<(String, &'static str)> = Vec::new();
    for record in &mut records {
        for f in quality.check(record) {
            found.push((record.source_id.clone(), f.code));
            if !f.code.starts_with("EMAIL_DOMAIN") {
                continue;
            }
            // Flags, never refusals; the field named, never the address or its domain.
            assert_eq!(f.action, Action::Write, "{f:?}");
            assert!(f.reason.contains("`email`"), "{}", f.reason);
            let email = record.text(field::EMAIL).expect("email");
            let (local, domain) = email.rsplit_once('@').unwrap_or((email, email));
            assert!(
                !f.reason.contains(local)
                    && !f.reason.to_lowercase().contains(&domain.to_lowercase()),
                "{}",
                f.reason
            );
        }
    }
    let mx_findings: Vec<(String, &str)> = found
        .into_iter()
        .filter(|(_, code)| code.starts_with("EMAIL_DOMAIN"))
        .collect();
    assert_eq!(
        mx_findings,
        [
            ("c-null".to_owned(), EMAIL_DOMAIN_NO_MAIL),
            ("c-gone".to_owned(), EMAIL_DOMAIN_NO_MX),
        ]
    );
    assert_eq!(quality.mx_unchecked(), 1);

    let asked: Vec<String> = zone.questions().into_iter().map(|q| q.name).collect();
    let domains = [
        "withmx.ferry-test.net",
        "aonly.ferry-test.net",
        "nullmx.ferry-test.net",
        "gone.ferry-test.net",
        "silent.ferry-test.net",
    ];
    assert!(!asked.is_empty());
    for name in &asked {
        assert!(domains.contains(&name.as_str()), "asked about {name}");
    }
    for record in &records {
        let email = record.text(field::EMAIL).expect("email");
        let local = email.split('@').next().unwrap_or(email).to_lowercase();
        assert!(asked.iter().all(|name| !name.contains(&local)), "{local}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_answers_nothing_is_given_up_on_for_the_rest_of_the_run() {
    let silent: Vec<String> = (0..64).map(|i| format!("s{i}.ferry-test.net")).collect();
    let names: Vec<&str> = silent.iter().map(String::as_str).collect();
    let zone = zone(&names).await;
    let mx = checker(&zone, 64);
    mx.look_up(silent.clone()).await;
    assert!(
        silent
            .iter()
            .all(|d| mx.verdict(d) == Some(Verdict::Unchecked))
    );
    // A domain the zone would answer for is no longer asked: a dead server costs a timeout
    // per new domain otherwise.
    let asked = zone.questions().len();
    let started = Instant::now();
    mx.look_up(["withmx.ferry-test.net".to_owned()]).await;
    assert!(started.elapsed() < TIMEOUT);
    assert_eq!(
        mx.verdict("withmx.ferry-test.net"),
        Some(Verdict::Unchecked)
    );
    assert_eq!(zone.questions().len(), asked);
}
