//! End-to-end: custom fields mapped in `[fields.*]`, for every ordered pair of vendors, through
//! the real `ferry` binary and the emulators.
//!
//! Every emulator's account has the same custom fields (`ferry_sandbox::seed::CUSTOM_FIELDS`:
//! companies Region, Seats, Tier; contacts Favourite Colour, Loyalty Points), each named the
//! way its vendor names fields. For each pair the test:
//! 1. finds both sides' field names with `ferry fields --report json` (by label);
//! 2. shows a type mismatch and a missing sink field refused before any write (exit 2, naming
//!    both fields, the sink still empty);
//! 3. leaves one industry out of the `[values.companies.industry]` crosswalk (where both
//!    vendors keep industries) and sees exactly the companies holding it refused by source id
//!    (`UNMAPPED_VALUE`) before they are written;
//! 4. migrates with the five fields mapped by their API names and industries carried by the
//!    crosswalk (Pipedrive's is a custom `Industry` field, Dataverse's `industrycode` is mapped
//!    by name): every record verified by checksum, the mapped fields among the verified ones;
//!    then reruns: nothing created, no duplicate in the sink;
//! 5. reads the sink back as a source (`ferry plan --show-values`, the pair reversed) and finds
//!    the custom values there: they did not only hash equal, they arrived.

mod common;

use std::path::{Path, PathBuf};

use ferry_sandbox::seed::{CUSTOM_FIELDS, Mess, TIERS};
use ferry_sandbox::{Limits, SandboxConfig, VendorSetup};

const CONTACTS: usize = 60;
/// The generator seed: its 12 companies hold industries of every kind the emulators' lists
/// differ on (five in technology, which only Zoho's list names unlike the others).
const SEED: u64 = 6;

struct Pair {
    dir: PathBuf,
    base: String,
    reverse_base: String,
}

impl Pair {
    fn write(&self, file: &str, text: &str) -> String {
        let path = self.dir.join(file);
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }
}

/// `[fields.*]` tables mapping each custom field of `from_side` to the same label's field on
/// `to_side`, by API name, and the `extra` company pairs.
fn field_tables(
    fields: &serde_json::Value,
    from_side: &str,
    to_side: &str,
    extra: &[(&str, &str)],
) -> Result<String, String> {
    let mut text = String::new();
    for object in ["companies", "contacts"] {
        text.push_str(&format!("[fields.{object}]\n"));
        if object == "companies" {
            for (a, b) in extra {
                text.push_str(&format!(
                    "{} = {}\n",
                    toml::Value::String((*a).to_owned()),
                    toml::Value::String((*b).to_owned())
                ));
            }
        }
        for custom in CUSTOM_FIELDS.iter().filter(|c| c.object == object) {
            let from = common::field_name_by_label(fields, object, from_side, custom.label)
                .ok_or_else(|| format!("{from_side} lists no {object} field `{}`", custom.label))?;
            let to = common::field_name_by_label(fields, object, to_side, custom.label)
                .ok_or_else(|| format!("{to_side} lists no {object} field `{}`", custom.label))?;
            text.push_str(&format!(
                "{} = {}\n",
                toml::Value::String(from),
                toml::Value::String(to)
            ));
        }
    }
    Ok(text)
}

/// Runs one pair; `Ok(true)` when the unmapped-industry refusal was shown (both vendors keep
/// industries).
async fn run_pair(from: &'static str, to: &'static str, dir: &Path) -> Result<bool, String> {
    let spec = |v: &str| ferry_sandbox::emulator(v).ok_or(format!("no emulator {v}"));
    let sandbox = ferry_sandbox::start(SandboxConfig {
        records: CONTACTS,
        seed: SEED,
        mess: Mess::none(),
        // Limits are not what this test is about: the emulators enforce none, and the
        // connectors' own pacing is lifted (`common::unpaced`).
        vendors: vec![
            VendorSetup {
                limits: Limits::Unlimited,
                ..VendorSetup::ephemeral(spec(from)?, true)
            },
            VendorSetup {
                limits: Limits::Unlimited,
                ..VendorSetup::ephemeral(spec(to)?, false)
            },
        ],
    })
    .await
    .map_err(|e| format!("start emulators: {e}"))?;
    let (source, sink) = (&sandbox.emulators[0], &sandbox.emulators[1]);
    let migration = "[migration]\nobjects = [\"companies\", \"contacts\"]\n";
    let pair = Pair {
        dir: dir.to_owned(),
        base: format!(
            "version = 1\n{}{}{}{}{migration}",
            common::connector_table("source", from, &source.connector_settings()),
            common::unpaced(from),
            common::connector_table("sink", to, &sink.connector_settings()),
            common::unpaced(to),
        ),
        reverse_base: format!(
            "version = 1\n{}{}{}{}{migration}",
            common::connector_table("source", to, &sink.connector_settings()),
            common::unpaced(to),
            common::connector_table("sink", from, &source.connector_settings()),
            common::unpaced(from),
        ),
    };
    let env = common::all_credentials();
    let ferry = |args: Vec<String>| {
        let env = env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::ferry(&args, &env).await
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let says = |what: &str, out: &std::process::Output| {
        format!(
            "{what}: exit {:?}\nstderr: {}\nstdout: {}",
            out.status.code(),
            text(&out.stderr),
            text(&out.stdout).chars().take(3000).collect::<String>()
        )
    };

    // 1. Both sides' fields, by label.
    let base = pair.write("base.toml", &pair.base);
    let out = ferry(vec![
        "fields".into(),
        "--config".into(),
        base.clone(),
        "--report".into(),
        "json".into(),
    ])
    .await;
    if out.status.code() != Some(0) {
        return Err(says("ferry fields", &out));
    }
    let fields: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ferry fields JSON: {e}"))?;
    let name = |object: &str, side: &str, label: &str| {
        common::field_name_by_label(&fields, object, side, label)
            .ok_or_else(|| format!("{side} lists no {object} field `{label}`"))
    };
    // Industries: the crosswalk an operator would write between the two lists.
    let (from_spec, to_spec) = (spec(from)?, spec(to)?);
    let crosswalk = ferry_sandbox::industry_crosswalk(&from_spec, &to_spec);
    let extra: Vec<(&str, &str)> = crosswalk.iter().filter_map(|c| c.field).collect();
    let values = |skip: Option<&str>| -> String {
        let Some(crosswalk) = &crosswalk else {
            return String::new();
        };
        let mut text = format!(
            "[values.companies.{}]\n",
            toml::Value::String(crosswalk.key.to_owned())
        );
        for (a, b) in crosswalk.values.iter().filter(|(a, _)| Some(*a) != skip) {
            text.push_str(&format!(
                "{} = {}\n",
                toml::Value::String((*a).to_owned()),
                toml::Value::String((*b).to_owned())
            ));
        }
        text
    };
    let tables = field_tables(&fields, "source", "sink", &extra)?;

    // 2. Refused before any write: a text into a number field, a field the sink lacks.
    let (region, seats) = (
        name("companies", "source", "Region")?,
        name("companies", "sink", "Seats")?,
    );
    let mismatch = pair.write(
        "mismatch.toml",
        &format!(
            "{}[fields.companies]\n{} = {}\n",
            pair.base,
            toml::Value::String(region.clone()),
            toml::Value::String(seats.clone())
        ),
    );
    let out = ferry(vec![
        "migrate".into(),
        "--config".into(),
        mismatch,
        "-q".into(),
    ])
    .await;
    let stderr = text(&out.stderr);
    if out.status.code() != Some(2)
        || !stderr.contains(&format!("`{region}` (text)"))
        || !stderr.contains(&format!("`{seats}` ("))
    {
        return Err(says("a text field into a number field", &out));
    }
    let colour = name("contacts", "source", "Favourite Colour")?;
    let missing = pair.write(
        "missing.toml",
        &format!(
            "{}[fields.contacts]\n{} = \"Ferry_No_Such_Field\"\n",
            pair.base,
            toml::Value::String(colour.clone())
        ),
    );
    let out = ferry(vec![
        "migrate".into(),
        "--config".into(),
        missing,
        "-q".into(),
    ])
    .await;
    let stderr = text(&out.stderr);
    if out.status.code() != Some(2)
        || !stderr.contains("Ferry_No_Such_Field")
        || !stderr.contains(&colour)
        || !stderr.contains("create_missing_fields")
    {
        return Err(says("a missing sink field", &out));
    }
    for object in ["companies", "contacts"] {
        let n = sink.emulator.count(object);
        if n != 0 {
            return Err(format!("refused configs wrote {n} {object} into {to}"));
        }
    }

    // 3. An industry with no sink value, its entry left out of the table, refuses exactly the
    // companies holding it, by source id, before they are written.
    let mut refused_unmapped = false;
    if let (Some(crosswalk), Some(source)) = (&crosswalk, from_spec.industry) {
        let seeded = ferry_sandbox::seed::generate(CONTACTS, SEED, &Mess::none());
        let holding = |label: &str| {
            seeded
                .companies
                .iter()
                .filter(|c| c.industry.as_deref().and_then(|i| source.label(i)) == Some(label))
                .count()
        };
        let dropped = crosswalk
            .values
            .iter()
            .filter(|(a, b)| !b.is_empty() && !a.eq_ignore_ascii_case(b))
            .map(|(a, _)| (holding(a), *a))
            .max();
        if let Some((expected, label)) = dropped.filter(|(n, _)| *n > 0) {
            let companies_only = pair.base.replace(
                "objects = [\"companies\", \"contacts\"]",
                "objects = [\"companies\"]",
            );
            let refusing = pair.write(
                "refusing.toml",
                &format!(
                    "{companies_only}{}{}",
                    field_tables(&fields, "source", "sink", &extra)?
                        .split("[fields.contacts]")
                        .next()
                        .unwrap_or_default(),
                    values(Some(label))
                ),
            );
            let out = ferry(vec![
                "migrate".into(),
                "--config".into(),
                refusing,
                "--report".into(),
                "json".into(),
                "-q".into(),
            ])
            .await;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|_| says("unmapped industry: no JSON report", &out))?;
            let failures = report["failures"].as_array().cloned().unwrap_or_default();
            let unmapped = failures
                .iter()
                .filter(|f| f["code"] == "UNMAPPED_VALUE" && f["object"] == "companies")
                .count();
            if out.status.code() != Some(3)
                || unmapped != expected
                || failures.len() != expected
                || failures
                    .iter()
                    .any(|f| f["source_id"].as_str().is_none_or(str::is_empty))
            {
                return Err(says(
                    &format!("{expected} companies with an unmapped industry should be refused"),
                    &out,
                ));
            }
            refused_unmapped = true;
        }
    }

    // 4. Migrate with the custom fields and industries mapped.
    let mapped = pair.write(
        "mapped.toml",
        &format!("{}{tables}{}", pair.base, values(None)),
    );
    let args = vec![
        "migrate".into(),
        "--config".into(),
        mapped.clone(),
        "--report".into(),
        "json".into(),
        "-q".into(),
    ];
    for run in ["first run", "rerun"] {
        let out = ferry(args.clone()).await;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| says(&format!("{run}: no JSON report"), &out))?;
        if out.status.code() != Some(0) || report["outcome"] != "verified" {
            return Err(says(run, &out));
        }
        for (object, expected) in [("companies", CONTACTS / 5), ("contacts", CONTACTS)] {
            let o = common::object(&report, object);
            let n = |key: &str| o[key].as_u64().unwrap_or(u64::MAX);
            let carried_all = o["fields_not_carried"].as_array().is_some_and(|f| {
                !f.iter()
                    .any(|f| f.as_str().is_some_and(|f| f.starts_with("custom.")))
            });
            if n("read") != expected as u64
                || n("verified") != n("read")
                || o["digests_match"] != true
                || o["in_sink"] != o["read"]
                || n("extra_in_sink") != 0
                || !carried_all
                || (run == "rerun" && n("created") != 0)
            {
                return Err(format!("{run}: {object}: {o:#}"));
            }
        }
        let created = report["fields_created"].as_array().map_or(0, Vec::len);
        if created != 0 {
            return Err(format!(
                "{run}: created {created} fields: {}",
                report["fields_created"]
            ));
        }
    }

    // 5. The sink, read as a source, holds the values.
    let reverse_tables = field_tables(&fields, "sink", "source", &[])?;
    let reverse = pair.write(
        "reverse.toml",
        &format!("{}{reverse_tables}", pair.reverse_base),
    );
    let out = ferry(vec![
        "plan".into(),
        "--config".into(),
        reverse,
        "--show-values".into(),
        "--allow-same-account".into(),
    ])
    .await;
    let shown = text(&out.stdout);
    if out.status.code() != Some(0) {
        return Err(says("plan, the pair reversed", &out));
    }
    // The preview shows each object's first three records; contacts show their email.
    let previews = |contacts: bool| {
        shown
            .lines()
            .filter(|l| {
                l.contains("source id") && l.contains("custom.") && l.contains('@') == contacts
            })
            .count()
    };
    let tiers = shown
        .lines()
        .filter(|l| TIERS.iter().any(|t| l.contains(&format!("={t}"))))
        .count();
    if previews(false) == 0 || previews(true) == 0 {
        return Err(format!(
            "{to} read as a source shows no custom values (companies {}, contacts {}, tiers {tiers}):\n{shown}",
            previews(false),
            previews(true)
        ));
    }
    Ok(refused_unmapped)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pair_carries_mapped_custom_fields_verified_and_refuses_bad_maps_before_writing() {
    let vendors: Vec<&'static str> = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .collect();
    let pairs: Vec<(&'static str, &'static str)> = vendors
        .iter()
        .flat_map(|a| {
            vendors
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (*a, *b))
        })
        .collect();
    assert!(pairs.len() >= 20, "{pairs:?}");
    let root = std::env::temp_dir().join(format!("ferry-custom-fields-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut refusals_shown = 0;
    for chunk in pairs.chunks(4) {
        let runs = chunk.iter().map(|&(from, to)| {
            let dir = root.join(format!("{from}-{to}"));
            async move {
                std::fs::create_dir_all(&dir).expect("test dir");
                (from, to, run_pair(from, to, &dir).await)
            }
        });
        for (from, to, result) in futures::future::join_all(runs).await {
            match result {
                Ok(refused) => refusals_shown += usize::from(refused),
                Err(e) => failures.push(format!("{from} -> {to}: {e}")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    // Every pair of vendors that both keep industries showed the refusal.
    let keep = ferry_sandbox::emulators()
        .iter()
        .filter(|e| e.industry.is_some())
        .count();
    assert!(
        !failures.is_empty() || refusals_shown == keep * (keep - 1),
        "the unmapped-industry refusal was shown for {refusals_shown} pairs, not {}",
        keep * (keep - 1)
    );
    assert!(
        failures.is_empty(),
        "{} of {} pairs failed:\n{}",
        failures.len(),
        pairs.len(),
        failures.join("\n\n")
    );
}
