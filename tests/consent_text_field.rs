//! End-to-end: an opt-out the sink has no field for, mapped by the operator into one of the
//! sink's existing text fields (not a checkbox ferry creates), through the real `ferry` binary.
//! Dataverse holds postal opt-outs, which Salesforce, HubSpot, Zoho CRM and Pipedrive have no
//! field for: mapped into each one's "Favourite Colour" text field, every contact opted out of
//! post arrives with `true` there, as many as were seeded, and the run verifies.

mod common;

use common::{all_credentials, emulator_table, industry_table, object, run_config, unpaced};
use ferry_sandbox::Limits;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, generate};
use serde_json::Value as Json;

const SINKS: [&str; 4] = ["salesforce", "hubspot", "zoho", "pipedrive"];

/// The text held in `field` of a sink's stored contact `record`, as each emulator keeps it.
fn text(vendor: &str, record: &Json, field: &str) -> Option<String> {
    let value = match vendor {
        "hubspot" => &record["properties"][field],
        "pipedrive" => &record["custom_fields"][field],
        _ => &record[field],
    };
    value.as_str().map(str::to_owned)
}

async fn carried_into_text(to: &'static str) -> Result<(), String> {
    let build = |v: &str| ferry_sandbox::emulator(v).expect("emulator").build;
    let data = generate(
        80,
        16,
        &Mess {
            opt_out_channels: 0.2,
            ..Mess::none()
        },
    );
    let opted_out = data.contacts.iter().filter(|c| c.postal_opt_out).count();
    if opted_out < 5 {
        return Err(format!("only {opted_out} postal opt-outs seeded"));
    }
    let source = build("dynamics")(Faults::default(), Limits::Unlimited);
    source.seed(&data);
    let sink = common::opt_out_sink(to);
    let any = "127.0.0.1:0".parse().expect("loopback");
    let (s, k) = (
        ferry_sandbox::serve("dynamics", source.router(), any)
            .await
            .expect("serve"),
        ferry_sandbox::serve(to, sink.router(), any)
            .await
            .expect("serve"),
    );
    let dir = std::env::temp_dir().join(format!("ferry-consent-text-{}-{to}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let spec = |v: &str| ferry_sandbox::emulator(v).expect("emulator");
    let base = format!(
        "version = 1\n\n{}{}\n{}{}\n[migration]\nobjects = [\"companies\", \"contacts\"]\n\n{}\n",
        emulator_table("source", "dynamics", &s.base_url),
        unpaced("dynamics"),
        emulator_table("sink", to, &k.base_url),
        unpaced(to),
        industry_table(&spec("dynamics"), &spec(to)),
    );
    let path = dir.join("ferry.toml");
    std::fs::write(&path, &base).expect("config");
    let config = path.to_string_lossy().into_owned();
    let out = common::ferry(
        &["fields", "--config", &config, "--report", "json"],
        &all_credentials(),
    )
    .await;
    let fields: Json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    let colour = common::field_name_by_label(&fields, "contacts", "sink", "Favourite Colour")
        .ok_or(format!("{to} lists no Favourite Colour"))?;
    std::fs::write(
        &path,
        format!(
            "{base}\n[fields.contacts]\ndonotpostalmail = {colour:?}\n{}",
            // Phone and fax are not what this test is about.
            if to == "salesforce" {
                ""
            } else {
                "\n[consent]\naccept_loss = [\"do_not_call\", \"fax_opt_out\"]\n"
            }
        ),
    )
    .expect("config");
    let (code, report, stderr) = run_config("migrate", &config, &all_credentials()).await;
    let _ = std::fs::remove_dir_all(&dir);
    if code != 0 || report["outcome"] != "verified" {
        return Err(format!(
            "{to}: exit {code}, {}: {}\n{stderr}\nfailures: {:?}",
            report["outcome"],
            report["error"],
            report["failures"]
                .as_array()
                .map(|f| f.iter().take(3).cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        ));
    }
    let contacts = object(&report, "contacts");
    let postal = &contacts["consent"]["postal"];
    if (postal["opted_out"].as_u64(), postal["kept"].as_u64())
        != (Some(opted_out as u64), Some(opted_out as u64))
    {
        return Err(format!("{to}: postal consent {postal}, {opted_out} seeded"));
    }
    let with_true = sink
        .records("contacts")
        .iter()
        .filter(|r| text(to, r, &colour).as_deref() == Some("true"))
        .count();
    if with_true != opted_out {
        return Err(format!(
            "{to}: {with_true} contacts hold `true` in {colour}, {opted_out} were opted out of post"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opt_out_mapped_into_an_existing_text_field_arrives_as_true() {
    let mut failures = Vec::new();
    for to in SINKS {
        if let Err(e) = carried_into_text(to).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
