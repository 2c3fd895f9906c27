//! Payment card and bank account numbers pasted into contacts' text fields, end to end through
//! the real binary (HubSpot → Salesforce): every seeded number is found by source id and field,
//! a Luhn-invalid run of digits is not, `redact` writes them masked and verifies the masked text,
//! `refuse` keeps the records out, and no number appears in any output.

mod common;

use common::{Setup, hubspot_call, run_json, sandbox_env, start, write_config};

/// A Visa test number (Luhn-valid), an IBAN with valid check digits, and a near miss of each.
const CARD: &str = "4111 1111 1111 1111";
const IBAN: &str = "DE89 3704 0044 0532 0130 00";
const NOT_A_CARD: &str = "4111 1111 1111 1112";
const NOT_AN_IBAN: &str = "DE88 3704 0044 0532 0130 00";

/// Edits four HubSpot contacts: a card in the job title, an IBAN in the street, and the near
/// misses in two others. Returns their HubSpot ids in that order.
async fn seed_numbers(sandbox: &common::Sandbox) -> Vec<String> {
    let list = hubspot_call(
        sandbox,
        reqwest::Method::GET,
        "/crm/v3/objects/contacts?limit=10&properties=email",
        None,
    )
    .await;
    let ids: Vec<String> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .take(4)
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    let edits = [
        serde_json::json!({"jobtitle": format!("Buyer, card {CARD} on file")}),
        serde_json::json!({"address": format!("Pay to {IBAN}")}),
        serde_json::json!({"jobtitle": format!("Ref {NOT_A_CARD}")}),
        serde_json::json!({"address": format!("Ref {NOT_AN_IBAN}")}),
    ];
    for (id, properties) in ids.iter().zip(edits) {
        hubspot_call(
            sandbox,
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(serde_json::json!({ "properties": properties })),
        )
        .await;
    }
    ids
}

/// `(code, source id, reason)` of the report's findings of `list` about payment data.
fn payment_findings(report: &serde_json::Value, list: &str) -> Vec<(String, String, String)> {
    report[list]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|f| f["code"] == "PAYMENT_CARD" || f["code"] == "BANK_ACCOUNT")
        .map(|f| {
            (
                f["code"].as_str().expect("code").to_owned(),
                f["source_id"].as_str().expect("id").to_owned(),
                f["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_are_found_by_field_redacted_and_verified_or_refused_and_never_shown() {
    let sandbox = start(Setup::clean(60)).await;
    let ids = seed_numbers(&sandbox).await;
    write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        "payment_data = \"refuse\"",
    );
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    let shown = format!("{report}\n{stderr}");
    for number in [CARD, IBAN] {
        assert!(
            !digits(&shown).contains(&digits(number)),
            "a number in the output"
        );
    }
    assert_eq!(code, 3, "refused records → exit 3; {stderr}");
    let mut refused = payment_findings(&report, "failures");
    refused.sort();
    let mut expected = vec![
        ("BANK_ACCOUNT".to_owned(), ids[1].clone(), "street"),
        ("PAYMENT_CARD".to_owned(), ids[0].clone(), "job_title"),
    ];
    expected.sort();
    assert_eq!(
        refused.len(),
        2,
        "exactly the seeded numbers, not the near misses: {refused:?}"
    );
    for ((code, id, reason), (want_code, want_id, field)) in refused.iter().zip(&expected) {
        assert_eq!((code, id), (want_code, want_id));
        assert!(reason.contains(&format!("`{field}`")), "{reason}");
    }
    for id in &ids[..2] {
        assert!(
            sandbox
                .salesforce_state
                .record_by_external_id("Contact", id)
                .is_none(),
            "a refused record is not written"
        );
    }

    // The same source, redacted: written masked but the last four, and verified as masked.
    write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        "payment_data = \"redact\"",
    );
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let flagged = payment_findings(&report, "warnings");
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    let stored = |id: &str, field: &str| {
        sandbox
            .salesforce_state
            .record_by_external_id("Contact", id)
            .and_then(|r| r[field].as_str().map(str::to_owned))
            .expect("written")
    };
    let title = stored(&ids[0], "Title");
    assert!(
        title.starts_with("Buyer, card ") && title.ends_with(" on file"),
        "{title}"
    );
    assert!(
        !digits(&title).contains(&digits(CARD)) && title.contains("1111"),
        "{title}"
    );
    let street = stored(&ids[1], "MailingStreet");
    assert!(!digits(&street).contains(&digits(IBAN)), "{street}");
    // The near misses travel as read.
    assert_eq!(stored(&ids[2], "Title"), format!("Ref {NOT_A_CARD}"));
    assert_eq!(
        stored(&ids[3], "MailingStreet"),
        format!("Ref {NOT_AN_IBAN}")
    );
}
