//! End-to-end: `create_missing_fields = true` for every sink, through the real `ferry` binary.
//!
//! For each sink vendor, a source's custom "Region" field is mapped to a sink field the sink
//! does not have ("Sales Region"). The first run creates it through the vendor's metadata API,
//! says so in the report, and verifies every company by checksum with the new field among the
//! verified ones; the rerun finds the field it created (by the name the map gives it), creates
//! nothing, and writes no duplicate.

mod common;

use ferry_sandbox::seed::Mess;
use ferry_sandbox::{SandboxConfig, VendorSetup};

const CONTACTS: usize = 20;
const NEW_FIELD: &str = "Sales Region";
const SEED: u64 = 6;

async fn create_into(to: &'static str) -> Result<(), String> {
    // Any other vendor will do as the source; its "Region" is the field carried.
    let from = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .find(|v| *v != to)
        .ok_or("one emulator only")?;
    let spec = |v: &str| ferry_sandbox::emulator(v).ok_or(format!("no emulator {v}"));
    let (from_spec, to_spec) = (spec(from)?, spec(to)?);
    // The seeded companies hold Region values, so a verified run proves they arrived.
    let seeded = ferry_sandbox::seed::generate(CONTACTS, SEED, &Mess::none());
    let regions = seeded
        .companies
        .iter()
        .filter(|c| c.region.is_some())
        .count();
    if regions == 0 {
        return Err("the seed holds no Region value: the test would prove nothing".into());
    }
    let sandbox = ferry_sandbox::start(SandboxConfig {
        records: CONTACTS,
        seed: SEED,
        mess: Mess::none(),
        vendors: vec![
            VendorSetup::ephemeral(from_spec, true),
            VendorSetup::ephemeral(to_spec, false),
        ],
    })
    .await
    .map_err(|e| format!("start emulators: {e}"))?;
    let (source, sink) = (&sandbox.emulators[0], &sandbox.emulators[1]);
    // Configs only: no customer data is written to disk.
    let dir = std::env::temp_dir().join(format!("ferry-create-fields-{}-{to}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let env = common::all_credentials();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let ferry = |args: Vec<String>| {
        let env = env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::ferry(&args, &env).await
        }
    };
    let base = format!(
        "version = 1\n{}{}create_missing_fields = true\n[migration]\nobjects = [\"companies\"]\n",
        common::connector_table("source", from, &source.connector_settings()),
        common::connector_table("sink", to, &sink.connector_settings()),
    );
    let write = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).map(|()| path.to_string_lossy().into_owned())
    };
    let base_path = write("base.toml", &base).map_err(|e| e.to_string())?;
    let out = ferry(vec![
        "fields".into(),
        "--config".into(),
        base_path,
        "--report".into(),
        "json".into(),
    ])
    .await;
    let fields: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("ferry fields: {}", text(&out.stderr)))?;
    let region = common::field_name_by_label(&fields, "companies", "source", "Region")
        .ok_or(format!("{from} lists no Region field"))?;

    // Industries travel too, so that every company can be written; the crosswalk's field pair,
    // if it has one, shares the `[fields.companies]` table with the new field.
    let crosswalk = ferry_sandbox::industry_crosswalk(&from_spec, &to_spec)
        .ok_or(format!("{from} or {to} keeps no industries"))?;
    let mut config = format!("{base}[fields.companies]\n");
    let pairs = crosswalk
        .field
        .into_iter()
        .chain([(region.as_str(), NEW_FIELD)]);
    for (a, b) in pairs {
        config.push_str(&format!(
            "{} = {}\n",
            toml::Value::String(a.to_owned()),
            toml::Value::String(b.to_owned())
        ));
    }
    config.push_str(&format!(
        "[values.companies.{}]\n",
        toml::Value::String(crosswalk.key.to_owned())
    ));
    for (a, b) in &crosswalk.values {
        config.push_str(&format!(
            "{} = {}\n",
            toml::Value::String((*a).to_owned()),
            toml::Value::String((*b).to_owned())
        ));
    }
    let config = write("create.toml", &config).map_err(|e| e.to_string())?;
    for run in ["first run", "rerun"] {
        let out = ferry(vec![
            "migrate".into(),
            "--config".into(),
            config.clone(),
            "--report".into(),
            "json".into(),
            "-q".into(),
        ])
        .await;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
            format!(
                "{run}: exit {:?}, no JSON report: {}",
                out.status.code(),
                text(&out.stderr)
            )
        })?;
        let companies = common::object(&report, "companies");
        let n = |key: &str| companies[key].as_u64().unwrap_or(u64::MAX);
        let created_fields = report["fields_created"].as_array().map_or(0, Vec::len);
        let carried = companies["fields_not_carried"].as_array().is_some_and(|f| {
            !f.iter()
                .any(|f| f.as_str().is_some_and(|f| f.starts_with("custom.")))
        });
        let expected_created_fields = usize::from(run == "first run");
        if out.status.code() != Some(0)
            || report["outcome"] != "verified"
            || created_fields != expected_created_fields
            || n("read") != (CONTACTS / 5) as u64
            || n("verified") != n("read")
            || companies["digests_match"] != true
            || !carried
            || (run == "rerun" && n("created") != 0)
            || n("extra_in_sink") != 0
        {
            return Err(format!(
                "{from} -> {to}, {run}: exit {:?}, fields_created {}, companies {companies:#}\nstderr: {}",
                out.status.code(),
                report["fields_created"],
                text(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sink_creates_a_missing_field_once_and_carries_it_verified() {
    let runs: Vec<_> = ferry_sandbox::emulators()
        .iter()
        .map(|e| tokio::spawn(create_into(e.vendor)))
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        match run.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("task: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A field the sink would create unable to hold what is mapped into it (Pipedrive makes a text
/// field for a checkbox, and a deal's "Won" flag is no consent flag that travels as text) is
/// refused before anything is created or written: the customer's account is left as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_sink_would_create_wrongly_is_refused_before_anything_is_created() {
    let spec = |v: &str| ferry_sandbox::emulator(v).expect("an emulator");
    let sandbox = ferry_sandbox::start(SandboxConfig {
        records: CONTACTS,
        seed: SEED,
        mess: Mess::none(),
        vendors: vec![
            VendorSetup::ephemeral(spec("salesforce"), true),
            VendorSetup::ephemeral(spec("pipedrive"), false),
        ],
    })
    .await
    .expect("start emulators");
    let (source, sink) = (&sandbox.emulators[0], &sandbox.emulators[1]);
    let dir = std::env::temp_dir().join(format!("ferry-create-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let base = format!(
        "version = 1\n{}{}create_missing_fields = true\n[migration]\nobjects = [\"companies\", \"contacts\", \"deals\"]\n",
        common::connector_table("source", "salesforce", &source.connector_settings()),
        common::connector_table("sink", "pipedrive", &sink.connector_settings()),
    );
    let base_path = dir.join("base.toml");
    std::fs::write(&base_path, &base).expect("write config");
    let config = dir.join("wrong.toml");
    std::fs::write(
        &config,
        format!("{base}[fields.deals]\n\"IsWon\" = \"Won Flag\"\n"),
    )
    .expect("write config");
    let env = common::all_credentials();
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let fields = || async {
        let out = common::ferry(
            &["fields", "--config", &path(&base_path), "--report", "json"],
            &env,
        )
        .await;
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("ferry fields JSON")
    };
    let before = fields().await;

    let out = common::ferry(&["migrate", "--config", &path(&config)], &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("IsWon") && stderr.contains("Won Flag"),
        "the refusal names both fields: {stderr}"
    );
    assert_eq!(
        common::field_name_by_label(&fields().await, "deals", "sink", "Won Flag"),
        None,
        "no field was created"
    );
    let sink_side = |f: &serde_json::Value| -> Vec<serde_json::Value> {
        f["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["sink"].clone())
            .collect()
    };
    let after = fields().await;
    assert!(!sink_side(&before).is_empty(), "{before}");
    assert_eq!(
        sink_side(&after),
        sink_side(&before),
        "the sink's fields are as they were"
    );
    assert_eq!(sink.emulator.count("companies"), 0, "nothing was written");
    let _ = std::fs::remove_dir_all(&dir);
}
