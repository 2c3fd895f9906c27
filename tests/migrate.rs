//! End-to-end: the `ferry` binary migrating between the emulators over loopback HTTP.

mod common;

use common::*;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::hubspot;
use ferry_sandbox::seed::Mess;

#[tokio::test(flavor = "multi_thread")]
async fn clean_migration_verifies_everything_and_rerun_creates_no_duplicates() {
    let sandbox = start(Setup::clean(1_500)).await;
    let (companies, contacts) = (
        sandbox.seeded.companies.len() as u64,
        sandbox.seeded.contacts.len() as u64,
    );

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\nreport:\n{report:#}");
    assert_eq!(report["outcome"], "verified");
    let c = object(&report, "companies");
    assert_eq!(
        (
            count(c, "read"),
            count(c, "written"),
            count(c, "created"),
            count(c, "verified")
        ),
        (companies, companies, companies, companies)
    );
    let p = object(&report, "contacts");
    assert_eq!(
        (count(p, "read"), count(p, "written"), count(p, "verified")),
        (contacts, contacts, contacts)
    );
    assert_eq!(p["digests_match"], true);
    assert_eq!(p["sent_digest"], p["read_back_digest"]);
    // What each object cost: its requests are its own, and the run's total covers them all
    // (plus the checks and metadata before the first object).
    for side in ["source_http", "sink_http"] {
        let (c, p) = (count(&c[side], "requests"), count(&p[side], "requests"));
        assert!(c > 0 && p > 0, "{side}: companies {c}, contacts {p}");
        assert!(
            c + p < count(&report[side], "requests"),
            "{side}: {report:#}"
        );
    }
    assert!(count(c, "elapsed_ms") + count(p, "elapsed_ms") <= count(&report, "elapsed_ms"));
    assert_eq!(sandbox.salesforce_state.count("Contact"), contacts as usize);
    assert_eq!(
        sandbox.salesforce_state.count("Account"),
        companies as usize
    );

    // A second run updates what is there and creates nothing.
    let (code, again, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}");
    let p2 = object(&again, "contacts");
    assert_eq!(
        (
            count(p2, "created"),
            count(p2, "updated"),
            count(p2, "verified")
        ),
        (0, contacts, contacts)
    );
    assert_eq!(
        p2["read_back_digest"], p["read_back_digest"],
        "same data, same aggregate digest"
    );
    assert_eq!(
        sandbox.salesforce_state.count("Contact"),
        contacts as usize,
        "no duplicates"
    );
    assert_eq!(
        sandbox.salesforce_state.count("Account"),
        companies as usize,
        "no duplicates"
    );

    // verify re-reads both sides with no state from the runs.
    let (code, verified, stderr) = run_json("verify", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{verified:#}");
    assert_eq!(count(object(&verified, "contacts"), "verified"), contacts);
    assert_eq!(
        object(&verified, "contacts")["read_back_digest"],
        p["read_back_digest"]
    );
    assert_eq!(
        (
            count(object(&verified, "contacts"), "in_sink"),
            count(object(&verified, "contacts"), "extra_in_sink")
        ),
        (contacts, 0)
    );

    // A contact deleted from the source since: the sink still holds it, and verify says so.
    assert!(
        sandbox
            .hubspot_state
            .archive("contacts", hubspot::FIRST_CONTACT_ID),
        "archive a source contact"
    );
    let (code, stale, stderr) = run_json("verify", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 3, "{stderr}\n{stale:#}");
    assert_eq!(stale["outcome"], "mismatch");
    let s = object(&stale, "contacts");
    assert_eq!(
        (
            count(s, "verified"),
            count(s, "in_sink"),
            count(s, "extra_in_sink")
        ),
        (contacts - 1, contacts, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttling_sink_is_waited_for_and_nothing_is_lost() {
    let mut setup = Setup::clean(800);
    setup.salesforce_faults = Faults {
        throttle_every: Some(4),
        retry_after_secs: Some(1),
        ..Faults::default()
    };
    let sandbox = start(setup).await;
    let contacts = sandbox.seeded.contacts.len() as u64;
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "stderr:\n{stderr}\n{report:#}");
    assert!(
        count(&report["sink_http"], "throttled") > 0,
        "the fault profile should have throttled: {report:#}"
    );
    assert_eq!(
        count(&report["sink_http"], "retries"),
        count(&report["sink_http"], "throttled")
    );
    assert_eq!(count(object(&report, "contacts"), "verified"), contacts);
    assert_eq!(sandbox.salesforce_state.count("Contact"), contacts as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_records_are_listed_by_source_id_and_the_run_goes_on() {
    let mess = Mess {
        opt_out_without_email: true,
        missing_last_name: 0.03,
        malformed_email: 0.02,
        duplicate_email: 0.02,
        no_company: 0.1,
        overlong_title: 0.01,
        opt_out_channels: 0.0,
        legal_bases: 0.0,
    };
    let sandbox = start(Setup {
        mess,
        ..Setup::clean(1_000)
    })
    .await;
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 3, "records refused → exit 3; stderr:\n{stderr}");
    assert_eq!(report["outcome"], "records_failed");

    let p = object(&report, "contacts");
    let (read, written, failed) = (count(p, "read"), count(p, "written"), count(p, "failed"));
    assert_eq!(read, 1_000);
    assert_eq!(
        written + failed,
        read,
        "every record is written or listed as failed"
    );
    assert_eq!(
        count(p, "verified"),
        written,
        "every written record verified"
    );
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(failures.len() as u64, failed);

    // Each seeded defect shows up with the reason, by source id.
    let missing_last: Vec<&str> = failures
        .iter()
        .filter(|f| f["code"] == "MISSING_REQUIRED" && f["stage"] == "validate")
        .filter(|f| {
            f["reason"]
                .as_str()
                .is_some_and(|r| r.contains("last_name") && r.contains("salesforce"))
        })
        .map(|f| f["source_id"].as_str().unwrap_or(""))
        .collect();
    let seeded_missing = sandbox
        .seeded
        .contacts
        .iter()
        .filter(|c| c.last_name.is_none())
        .count();
    assert!(
        !missing_last.is_empty() && missing_last.len() <= seeded_missing,
        "{missing_last:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f["code"] == "INVALID_EMAIL" && f["stage"] == "validate")
    );
    assert!(
        failures
            .iter()
            .any(|f| f["code"] == "STRING_TOO_LONG" && f["stage"] == "write")
    );
    assert!(
        report["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w["code"] == "DUPLICATE_EMAIL")
    );

    // No field value of any seeded record appears in the report or on stderr.
    let text = format!("{report}{stderr}");
    for c in &sandbox.seeded.contacts {
        for value in [&c.email, &c.last_name, &c.job_title, &c.phone]
            .into_iter()
            .flatten()
        {
            assert!(
                !text.contains(value.as_str()),
                "a field value leaked into the output"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_fails_the_run_clearly_without_printing_it() {
    let sandbox = start(Setup::clean(50)).await;
    let mut env = sandbox_env();
    let bad = "pat-na1-this-token-is-wrong-0000";
    env[0].1 = bad.to_owned();
    let config = sandbox.config.to_string_lossy().into_owned();
    let out = ferry(&["migrate", "--config", &config, "-vvv"], &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("hubspot") && all.contains("401"),
        "names the vendor and status:\n{all}"
    );
    // The first request: the field metadata, read before any record.
    assert!(
        all.contains("/crm/v3/properties/companies"),
        "names the endpoint:\n{all}"
    );
    assert!(!all.contains(bad), "the token must never be printed");
    assert!(
        !all.contains(ferry_sandbox::SALESFORCE_CLIENT_SECRET),
        "nor the other secrets"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_mistakes_exit_2_naming_the_key() {
    let sandbox = start(Setup::clean(10)).await;
    let config = sandbox.config.to_string_lossy().into_owned();

    // An unset variable is named.
    let out = ferry(&["migrate", "--config", &config], &sandbox_env()[1..]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HUBSPOT_TOKEN") && stderr.contains("source.token"),
        "{stderr}"
    );

    // A literal secret is refused, and not echoed.
    let text = std::fs::read_to_string(&sandbox.config).expect("config");
    std::fs::write(
        &sandbox.config,
        text.replace("${SF_CLIENT_SECRET}", "literal-s3cret-value"),
    )
    .expect("write");
    let out = ferry(&["migrate", "--config", &config], &sandbox_env()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable") && !stderr.contains("literal-s3cret-value"),
        "{stderr}"
    );

    // A plain-http URL to a non-loopback host is refused before anything is sent.
    std::fs::write(
        &sandbox.config,
        text.replace(&sandbox.salesforce.base_url, "http://crm.example.com"),
    )
    .expect("write");
    let out = ferry(&["migrate", "--config", &config], &sandbox_env()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sink.login_url") && stderr.contains("https"),
        "{stderr}"
    );

    // An unknown key is named.
    std::fs::write(
        &sandbox.config,
        text.replace("[migration]", "[migration]\nbatch_in_flight = 3"),
    )
    .expect("write");
    let out = ferry(&["migrate", "--config", &config], &sandbox_env()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("batch_in_flight"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_placeholder_fills_missing_required_fields_and_says_so() {
    let mess = Mess {
        missing_last_name: 0.05,
        ..Mess::none()
    };
    let sandbox = start(Setup {
        mess,
        ..Setup::clean(400)
    })
    .await;
    let hubspot = sandbox.hubspot.base_url.clone();
    let salesforce = sandbox.salesforce.base_url.clone();
    write_config(
        &sandbox.config,
        &hubspot,
        &salesforce,
        "missing_required = { placeholder = \"[not provided]\" }",
    );
    let nameless = sandbox
        .seeded
        .contacts
        .iter()
        .filter(|c| c.last_name.is_none())
        .count();
    assert!(nameless > 5, "the seed should lack some last names");

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let p = object(&report, "contacts");
    assert_eq!(
        (count(p, "written"), count(p, "verified")),
        (400, 400),
        "placeholders are written and verified"
    );
    let filled = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| w["code"] == "PLACEHOLDER_WRITTEN")
        .count();
    assert_eq!(filled, nameless, "every filled record is listed");
}

#[tokio::test(flavor = "multi_thread")]
async fn phones_are_normalised_on_request_and_placeholder_and_role_addresses_flagged() {
    let sandbox = start(Setup::clean(150)).await;
    let list = hubspot_call(
        &sandbox,
        reqwest::Method::GET,
        "/crm/v3/objects/contacts?limit=100&properties=phone,mobilephone,country,email",
        None,
    )
    .await;
    let contacts = list["results"].as_array().expect("results").clone();
    let id = |i: usize| contacts[i]["id"].as_str().expect("id").to_owned();
    // A national number in the contact's own country, one read in the run's region, and an
    // invalid one; a placeholder address and a role account.
    let edits = [
        (
            0,
            serde_json::json!({"phone": "030 1234567", "country": "Germany"}),
        ),
        (
            1,
            serde_json::json!({"phone": "(415) 555-0123", "country": ""}),
        ),
        (2, serde_json::json!({"phone": "+1 555 123 4567"})),
        (3, serde_json::json!({"email": "noreply@shop.example.org"})),
        (4, serde_json::json!({"email": "info@acme.example.org"})),
    ];
    for (i, properties) in &edits {
        hubspot_call(
            &sandbox,
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{}", id(*i)),
            Some(serde_json::json!({ "properties": properties })),
        )
        .await;
    }
    write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        "phones = \"normalize\"\nphone_region = \"US\"",
    );

    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let sink_phone = |i: usize| {
        sandbox
            .salesforce_state
            .record_by_external_id("Contact", &id(i))
            .and_then(|r| r["Phone"].as_str().map(str::to_owned))
    };
    assert_eq!(sink_phone(0).as_deref(), Some("+49301234567"));
    assert_eq!(sink_phone(1).as_deref(), Some("+14155550123"));
    assert_eq!(sink_phone(2).as_deref(), Some("+1 555 123 4567"), "as read");
    // The seeded numbers are international: each arrives as `+` and its digits, or as read
    // with an INVALID_PHONE warning naming its record.
    let warned = |code: &str| -> Vec<String> {
        report["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .filter(|w| w["code"] == code)
            .map(|w| w["source_id"].as_str().expect("source id").to_owned())
            .collect()
    };
    let invalid = warned("INVALID_PHONE");
    assert!(invalid.contains(&id(2)), "{invalid:?}");
    for (i, contact) in contacts.iter().enumerate().skip(3) {
        let Some(read) = contact["properties"]["phone"]
            .as_str()
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        let digits: String = read.chars().filter(|c| c.is_ascii_digit()).collect();
        let stored = sink_phone(i).expect("a phone in the sink");
        if invalid.contains(&id(i)) {
            assert_eq!(stored, read, "an invalid number is written as read");
        } else {
            assert_eq!(stored, format!("+{digits}"), "{read}");
        }
    }
    let normalized = object(&report, "contacts")["phones_normalized"]["phone"]
        .as_u64()
        .expect("phones_normalized.phone");
    assert!(normalized >= 2, "{report:#}");
    assert_eq!(warned("PLACEHOLDER_EMAIL"), [id(3)]);
    assert_eq!(warned("ROLE_EMAIL"), [id(4)]);
    let text = report.to_string();
    for value in ["noreply@shop", "info@acme", "030 1234567", "555-0123"] {
        assert!(!text.contains(value), "{value} in the report");
    }

    // `verify` reads the source again and normalises it the same way: the sink agrees.
    let (code, verified, stderr) = run_json("verify", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{verified:#}");
    assert_eq!(verified["outcome"], "verified");
}
