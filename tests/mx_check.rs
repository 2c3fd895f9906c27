//! End-to-end: `migration.email_mx_check` with the real `ferry` binary, its DNS questions
//! answered by a zone served on loopback UDP (`ferry_sandbox::dns`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::*;
use ferry_sandbox::dns::{self, Entry};

#[tokio::test(flavor = "multi_thread")]
async fn mail_domains_are_checked_by_dns_and_flagged_by_source_id() {
    let sandbox = start(Setup::clean(20)).await;
    let list = hubspot_call(
        &sandbox,
        reqwest::Method::GET,
        "/crm/v3/objects/contacts?limit=100&properties=email",
        None,
    )
    .await;
    let contacts = list["results"].as_array().expect("results").clone();
    assert_eq!(contacts.len(), 20);
    let id = |i: usize| contacts[i]["id"].as_str().expect("id").to_owned();
    // One contact per kind of domain; the others keep their seeded `….example.org` addresses,
    // whose domains the zone gives an MX.
    let edited = [
        "ada.lovelace@withmx.ferry-test.net",
        "max.mustermann@AOnly.ferry-test.net",
        "olaf.nullmail@nullmx.ferry-test.net",
        "greta.gone@gone.ferry-test.net",
        "sam.silent@silent.ferry-test.net",
    ];
    for (i, email) in edited.iter().enumerate() {
        hubspot_call(
            &sandbox,
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{}", id(i)),
            Some(serde_json::json!({ "properties": { "email": email } })),
        )
        .await;
    }
    let mut zone: BTreeMap<String, Entry> = sandbox
        .seeded
        .contacts
        .iter()
        .filter_map(|c| c.email.as_deref()?.rsplit_once('@'))
        .map(|(_, domain)| (domain.to_owned(), Entry::Mx(format!("mx.{domain}"))))
        .collect();
    zone.extend([
        (
            "withmx.ferry-test.net".to_owned(),
            Entry::Mx("mail.withmx.ferry-test.net".to_owned()),
        ),
        (
            "aonly.ferry-test.net".to_owned(),
            Entry::Address(Ipv4Addr::new(192, 0, 2, 7)),
        ),
        ("nullmx.ferry-test.net".to_owned(), Entry::NullMx),
        ("silent.ferry-test.net".to_owned(), Entry::Silent),
    ]);
    let served = dns::serve(zone.clone()).await.expect("serve the zone");
    write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        &format!(
            "email_mx_check = true\nmx_timeout_ms = 500\nmx_concurrency = 4\ndns_server = \"{}\"",
            served.addr
        ),
    );

    // The dry run shows the first page's findings by source id.
    let plan = ferry(
        &["plan", "--config", &sandbox.config.to_string_lossy()],
        &sandbox_env(),
    )
    .await;
    let plan_out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{plan_out}");
    for line in [
        format!(
            "1 record with EMAIL_DOMAIN_NO_MAIL (a warning in a migration, written as read): `{}`",
            id(2)
        ),
        format!(
            "1 record with EMAIL_DOMAIN_NO_MX (a warning in a migration, written as read): `{}`",
            id(3)
        ),
        "1 address whose domain DNS did not answer for (not checked)".to_owned(),
    ] {
        assert!(plan_out.contains(&line), "{line}\n{plan_out}");
    }
    let asked_by_plan = served.questions().len();

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let p = object(&report, "contacts");
    assert_eq!((count(p, "written"), count(p, "failed")), (20, 0));
    assert_eq!(count(p, "mx_unchecked"), 1);
    let warned: Vec<(String, String)> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| {
            w["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("EMAIL_DOMAIN"))
        })
        .map(|w| {
            let reason = w["reason"].as_str().expect("reason");
            assert!(reason.contains("`email`"), "{reason}");
            assert!(!reason.contains("ferry-test"), "{reason}");
            (
                w["source_id"].as_str().expect("source id").to_owned(),
                w["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        warned,
        [
            (id(2), "EMAIL_DOMAIN_NO_MAIL".to_owned()),
            (id(3), "EMAIL_DOMAIN_NO_MX".to_owned()),
        ]
    );
    // Flags, never refusals: the flagged contacts are in the sink as read.
    let sink_email = |i: usize| {
        sandbox
            .salesforce_state
            .record_by_external_id("Contact", &id(i))
            .and_then(|r| r["Email"].as_str().map(str::to_owned))
    };
    assert_eq!(sink_email(3).as_deref(), Some(edited[3]));
    // The report and the logs hold no domain.
    assert!(!stderr.contains("ferry-test"), "{stderr}");
    assert!(!report.to_string().contains("ferry-test"));

    // Only domains were asked about, each once per run and type (a question left unanswered
    // is sent once more within the timeout); never a local part.
    let questions = served.questions();
    let migrate_questions = &questions[asked_by_plan..];
    assert!(!migrate_questions.is_empty());
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for q in migrate_questions {
        assert!(
            zone.contains_key(&q.name) || q.name == "gone.ferry-test.net",
            "{q:?}"
        );
        *seen.entry((q.name.clone(), q.ty.clone())).or_default() += 1;
    }
    for ((name, ty), times) in seen {
        let most = if name == "silent.ferry-test.net" {
            2
        } else {
            1
        };
        assert!(times <= most, "{name} {ty} asked {times} times");
    }
    for c in &sandbox.seeded.contacts {
        let Some((local, _)) = c.email.as_deref().and_then(|e| e.rsplit_once('@')) else {
            continue;
        };
        assert!(questions.iter().all(|q| !q.name.contains(local)), "{local}");
    }
    for email in edited {
        let local = email.split('@').next().expect("local part");
        assert!(questions.iter().all(|q| !q.name.contains(local)), "{local}");
    }
    let mx_asked: BTreeSet<&str> = migrate_questions
        .iter()
        .filter(|q| q.ty == "MX")
        .map(|q| q.name.as_str())
        .collect();
    assert!(mx_asked.contains("gone.ferry-test.net") && mx_asked.contains("aonly.ferry-test.net"));
}
