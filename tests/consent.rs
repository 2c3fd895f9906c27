//! End-to-end: consent on every channel, through the real `ferry` binary between two vendors'
//! emulators (issue 16). Contacts opted out of email, phone, SMS (HubSpot's, per mobile
//! number), fax and post arrive opted out in every sink, through a custom field where the sink
//! has no standard one; a sink that cannot
//! hold an opt-out the source holds makes ferry refuse before writing anything, unless the
//! operator accepts the loss by name; a sync never turns a sink's opt-out back on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    all_credentials, count as n, emulator_table, industry_table, object, run_config, unpaced,
};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, SeedContact, SeedData, generate};
use ferry_sandbox::{Limits, Running, VendorEmulator};
use serde_json::{Value as Json, json};

const VENDORS: [&str; 5] = ["hubspot", "salesforce", "pipedrive", "zoho", "dynamics"];
const OBJECTS: [&str; 2] = ["companies", "contacts"];
const CONTACTS: usize = 200;

/// The opt-outs each vendor keeps on a contact, as (canonical field, the vendor's field as a
/// `[fields.contacts]` pair names it on the source side).
fn held(vendor: &str) -> &'static [(&'static str, &'static str)] {
    match vendor {
        "salesforce" => &[
            ("email_opt_out", "HasOptedOutOfEmail"),
            ("do_not_call", "DoNotCall"),
            ("fax_opt_out", "HasOptedOutOfFax"),
        ],
        "dynamics" => &[
            ("email_opt_out", "donotemail"),
            ("do_not_call", "donotphone"),
            ("fax_opt_out", "donotfax"),
            ("postal_opt_out", "donotpostalmail"),
        ],
        // SMS opt-outs are the communication-preferences API's, by mobile number: the
        // connector shows them as a read-only field named `sms_opt_out`.
        // Per-type email opt-outs are read-only flags per subscription type: the connector
        // shows them as one read-only field named `email_unsubscribed_types`.
        "hubspot" => &[
            ("email_opt_out", "hs_email_optout"),
            ("sms_opt_out", "sms_opt_out"),
            ("email_unsubscribed_types", "email_unsubscribed_types"),
        ],
        "pipedrive" => &[("email_opt_out", "marketing_status")],
        "zoho" => &[("email_opt_out", "Email_Opt_Out")],
        other => panic!("no vendor {other}"),
    }
}

/// The sink field an operator creates for an opt-out the sink has no field for.
fn new_field(canonical: &str) -> &'static str {
    match canonical {
        "do_not_call" => "Ferry_Do_Not_Call",
        "fax_opt_out" => "Ferry_Fax_Opt_Out",
        "postal_opt_out" => "Ferry_Postal_Opt_Out",
        "sms_opt_out" => "Ferry_Sms_Opt_Out",
        "email_unsubscribed_types" => "Ferry_Unsubscribed_Types",
        "legal_basis" => "Ferry_Legal_Basis",
        other => panic!("no new field for {other}"),
    }
}

/// The report's channel of an opt-out field.
fn channel(canonical: &str) -> &'static str {
    ferry_core::model::opt_out(canonical)
        .expect("an opt-out field")
        .channel
}

/// Whether a seeded contact is opted out in `canonical`.
fn seeded_out(c: &SeedContact, canonical: &str) -> bool {
    match canonical {
        "email_opt_out" => c.email_opt_out,
        "do_not_call" => c.do_not_call,
        "sms_opt_out" => c.sms_opt_out,
        "fax_opt_out" => c.fax_opt_out,
        "postal_opt_out" => c.postal_opt_out,
        "email_unsubscribed_types" => !c.email_unsubscribed_types.is_empty(),
        other => panic!("no opt-out {other}"),
    }
}

/// How many seeded contacts are opted out in `canonical`.
fn seeded(data: &SeedData, canonical: &str) -> u64 {
    data.contacts
        .iter()
        .filter(|c| seeded_out(c, canonical))
        .count() as u64
}

/// The opt-outs `from` holds that `to` has no field for.
fn unheld(from: &str, to: &str) -> Vec<(&'static str, &'static str)> {
    held(from)
        .iter()
        .filter(|(c, _)| !held(to).iter().any(|(d, _)| d == c))
        .copied()
        .collect()
}

/// Clean data with contacts opted out of every channel, email included.
fn opted_out_seed() -> SeedData {
    let data = generate(
        CONTACTS,
        16,
        &Mess {
            opt_out_channels: 0.1,
            ..Mess::none()
        },
    );
    for o in ferry_core::model::OPT_OUTS {
        assert!(
            seeded(&data, o.field) >= 10,
            "the seed holds too few {} opt-outs to prove anything",
            o.field
        );
    }
    data
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Two emulators, the source seeded, the sink empty, and a directory for the config.
struct Pair {
    from: &'static str,
    to: &'static str,
    source: Running,
    sink: Running,
    source_state: Arc<dyn VendorEmulator>,
    sink_state: Arc<dyn VendorEmulator>,
    seeded: SeedData,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(emulator: &dyn VendorEmulator) -> Running {
    let any = "127.0.0.1:0".parse().expect("loopback address");
    ferry_sandbox::serve("emulator", emulator.router(), any)
        .await
        .expect("serve the emulator")
}

async fn pair(from: &'static str, to: &'static str) -> Pair {
    pair_seeded(from, to, opted_out_seed()).await
}

/// Two emulators, the source seeded with `seeded`, the sink empty.
async fn pair_seeded(from: &'static str, to: &'static str, seeded: SeedData) -> Pair {
    let build = |v: &str| {
        ferry_sandbox::emulator(v)
            .expect("an emulator of every vendor")
            .build
    };
    let source_state = build(from)(Faults::default(), Limits::Unlimited);
    pair_of(from, to, source_state, common::opt_out_sink(to), seeded).await
}

/// A Zoho org with GDPR compliance on for Contacts (their consent record), unthrottled.
fn gdpr_zoho() -> Arc<dyn VendorEmulator> {
    Arc::new(ferry_sandbox::zoho::Emulator::new(
        ferry_sandbox::zoho::Options {
            gdpr: true,
            concurrency_limit: None,
            credits: None,
            ..ferry_sandbox::zoho::Options::default()
        },
    ))
}

/// The two emulators given, the source seeded with `seeded`, the sink empty.
async fn pair_of(
    from: &'static str,
    to: &'static str,
    source_state: Arc<dyn VendorEmulator>,
    sink_state: Arc<dyn VendorEmulator>,
    seeded: SeedData,
) -> Pair {
    source_state.seed(&seeded);
    let (source, sink) = (
        serve(source_state.as_ref()).await,
        serve(sink_state.as_ref()).await,
    );
    let dir = std::env::temp_dir().join(format!(
        "ferry-consent-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Pair {
        from,
        to,
        source,
        sink,
        source_state,
        sink_state,
        seeded,
        dir,
    }
}

impl Pair {
    /// Writes the config: companies and contacts, `mapped` opt-outs each into a new sink
    /// field (created by ferry), and `more` appended; returns its path.
    fn config(&self, mapped: &[(&str, &str)], more: &str) -> String {
        let spec = |v: &str| ferry_sandbox::emulator(v).expect("emulator");
        let mut text = format!(
            "version = 1\n\n{}{}\n{}{}",
            emulator_table("source", self.from, &self.source.base_url),
            unpaced(self.from),
            emulator_table("sink", self.to, &self.sink.base_url),
            unpaced(self.to),
        );
        if !mapped.is_empty() {
            text.push_str("create_missing_fields = true\n");
        }
        write!(
            text,
            "\n[migration]\nobjects = {OBJECTS:?}\n\n{}\n",
            industry_table(&spec(self.from), &spec(self.to))
        )
        .expect("write to a String");
        if !mapped.is_empty() {
            text.push_str("\n[fields.contacts]\n");
            for (canonical, source_field) in mapped {
                writeln!(text, "{source_field:?} = {:?}", new_field(canonical))
                    .expect("write to a String");
            }
        }
        text.push_str(more);
        let path = self.dir.join("ferry.toml");
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }

    fn sink_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.sink_state.count(o)).collect()
    }

    fn source_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.source_state.count(o)).collect()
    }
}

async fn run(command: &str, config: &str) -> (i32, serde_json::Value, String) {
    run_config(command, config, &all_credentials()).await
}

/// What a failure shows of a report: its outcome, error, contacts and first failures.
fn brief(report: &Json) -> String {
    let contacts = report["objects"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["object"] == "contacts"));
    let failures: Vec<&Json> = report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .take(3)
        .collect();
    format!(
        "outcome {}, error {}\ncontacts {contacts:#?}\nfailures {failures:#?}",
        report["outcome"], report["error"]
    )
}

/// The report's consent counts of `channel` for contacts (zeros when absent).
fn consent<'a>(report: &'a serde_json::Value, channel: &str) -> &'a serde_json::Value {
    &object(report, "contacts")["consent"][channel]
}

fn c(counts: &serde_json::Value, key: &str) -> u64 {
    counts[key].as_u64().unwrap_or(0)
}

/// A record's id in `vendor`'s account, as its connector names it as a source id.
fn record_id(vendor: &str, record: &Json) -> String {
    let id = match vendor {
        "salesforce" => &record["Id"],
        "dynamics" => &record["contactid"],
        _ => &record["id"],
    };
    match id {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        other => panic!("{vendor}: no id in {other}"),
    }
}

/// The source ids a record in `vendor`'s account may hold ferry's source id in: its source-id
/// field (every custom text value in Pipedrive, whose custom fields are keyed by hashes).
fn source_ids_held(vendor: &str, record: &Json) -> Vec<String> {
    let text = |v: &Json| v.as_str().map(str::to_owned);
    match vendor {
        "hubspot" => text(&record["properties"]["ferry_source_id"])
            .into_iter()
            .collect(),
        "salesforce" => text(&record["Ferry_Source_Id__c"]).into_iter().collect(),
        "zoho" => text(&record["Ferry_Source_Id"]).into_iter().collect(),
        "dynamics" => text(&record["ferry_sourceid"]).into_iter().collect(),
        "pipedrive" => record["custom_fields"]
            .as_object()
            .into_iter()
            .flat_map(|f| f.values().filter_map(text))
            .collect(),
        other => panic!("no vendor {other}"),
    }
}

/// Whether `field` of a record in `vendor`'s account says "opted out".
fn flag(vendor: &str, record: &Json, field: &str) -> bool {
    match (vendor, field) {
        ("hubspot", _) => record["properties"][field] == "true",
        ("pipedrive", "marketing_status") => record[field] == "unsubscribed",
        ("pipedrive", _) => record["custom_fields"][field] == "true",
        _ => record[field] == true,
    }
}

/// The email address of a contact in `vendor`'s account.
fn email(vendor: &str, record: &Json) -> Option<String> {
    let value = match vendor {
        "hubspot" => &record["properties"]["email"],
        "salesforce" => &record["Email"],
        "zoho" => &record["Email"],
        "dynamics" => &record["emailaddress1"],
        "pipedrive" => &record["emails"][0]["value"],
        other => panic!("no vendor {other}"),
    };
    value.as_str().filter(|e| !e.is_empty()).map(str::to_owned)
}

/// The sink's names of the fields ferry created for `mapped` opt-outs, found by the label it
/// gave them (`ferry fields`: Pipedrive names its fields by hashed keys).
async fn created_fields(config: &str, mapped: &[(&str, &str)]) -> BTreeMap<String, String> {
    if mapped.is_empty() {
        return BTreeMap::new();
    }
    let out = common::ferry(
        &["fields", "--config", config, "--report", "json"],
        &all_credentials(),
    )
    .await;
    let fields: Json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    mapped
        .iter()
        .map(|(canonical, _)| {
            let label = new_field(canonical).replace('_', " ");
            let name = common::field_name_by_label(&fields, "contacts", "sink", &label)
                .unwrap_or_else(|| panic!("no sink field labelled {label}: {fields:#}"));
            ((*canonical).to_owned(), name)
        })
        .collect()
}

/// The sink field that holds opt-out `canonical`: the sink's own, else the one created for it.
fn sink_field(to: &str, canonical: &str, created: &BTreeMap<String, String>) -> String {
    match held(to).iter().find(|(c, _)| *c == canonical) {
        Some((_, f)) => (*f).to_owned(),
        None => created[canonical].clone(),
    }
}

/// The ids of the contacts of a HubSpot account whose mobile number is unsubscribed from all
/// text messages, asked through the account's communication-preferences API (the opt-out is
/// the number's, on no property of the contact).
async fn hubspot_sms_opted_out(base: &str, contacts: &[Json]) -> BTreeSet<String> {
    let e164 = |r: &Json| {
        let text = r["properties"]["mobilephone"].as_str()?;
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        text.starts_with('+').then(|| format!("+{digits}"))
    };
    let numbered: Vec<(String, String)> = contacts
        .iter()
        .filter_map(|r| Some((record_id("hubspot", r), e164(r)?)))
        .collect();
    let mut out = BTreeSet::new();
    for chunk in numbered.chunks(100) {
        let inputs: Vec<&str> = chunk.iter().map(|(_, n)| n.as_str()).collect();
        let answer = api(
            "hubspot",
            base,
            reqwest::Method::POST,
            "/communication-preferences/v4/statuses/batch/unsubscribe-all/read?channel=SMS",
            Some(json!({ "inputs": inputs })),
        )
        .await;
        for result in answer["results"].as_array().into_iter().flatten() {
            let out_of_sms = result["wideStatuses"]
                .as_array()
                .is_some_and(|w| w.iter().any(|s| s["status"] == "NOT_SUBSCRIBED"));
            if out_of_sms {
                let number = result["subscriberIdString"].as_str().unwrap_or_default();
                out.extend(
                    chunk
                        .iter()
                        .filter(|(_, n)| n == number)
                        .map(|(id, _)| id.clone()),
                );
            }
        }
    }
    out
}

/// HubSpot's email subscription types, by the id in their per-type flag property
/// (`hs_email_optout_<id>`), as the emulator's account has them.
const HUBSPOT_TYPES: [(&str, &str); 3] = [
    ("1", "Marketing Information"),
    ("2", "One to One"),
    ("3", "Customer Service Communication"),
];

/// The subscription types a contact of `vendor`'s account is unsubscribed from, `; `-joined
/// in name order: HubSpot's per-type flags, else the text of the sink field `field` holding
/// them (empty: none).
fn types(vendor: &str, record: &Json, field: &str) -> String {
    let mut names: Vec<&str> = match vendor {
        "hubspot" => HUBSPOT_TYPES
            .iter()
            .filter(|(id, _)| record["properties"][format!("hs_email_optout_{id}")] == "true")
            .map(|(_, name)| *name)
            .collect(),
        "pipedrive" => record["custom_fields"][field]
            .as_str()
            .map(|t| t.split("; ").collect())
            .unwrap_or_default(),
        _ => record[field]
            .as_str()
            .map(|t| t.split("; ").collect())
            .unwrap_or_default(),
    };
    names.retain(|n| !n.is_empty());
    names.sort();
    names.join("; ")
}

/// Whether a contact of `vendor`'s account is opted out in `field`: HubSpot's SMS opt-outs are
/// looked up in `sms` (the ids [`hubspot_sms_opted_out`] found), per-type ones in its flags,
/// every other in the record.
fn opted(vendor: &str, record: &Json, field: &str, sms: &BTreeSet<String>) -> bool {
    if vendor == "hubspot" && field == "sms_opt_out" {
        return sms.contains(&record_id(vendor, record));
    }
    if vendor == "hubspot" && field == "email_unsubscribed_types" {
        return !types(vendor, record, field).is_empty();
    }
    flag(vendor, record, field)
}

/// Looks into both accounts: every contact opted out of a channel in the source (as many as
/// seeded) is opted out of it in the sink, in the sink's field for it.
async fn opted_out_in_the_sink(
    pair: &Pair,
    created: &BTreeMap<String, String>,
) -> Result<(), String> {
    let (from, to) = (pair.from, pair.to);
    let sms = |vendor: &str, state: &Arc<dyn VendorEmulator>, base: &str| {
        let (vendor, records, base) = (
            vendor.to_owned(),
            state.records("contacts"),
            base.to_owned(),
        );
        async move {
            if vendor == "hubspot" {
                hubspot_sms_opted_out(&base, &records).await
            } else {
                BTreeSet::new()
            }
        }
    };
    let source_sms = sms(from, &pair.source_state, &pair.source.base_url).await;
    let sink_sms = sms(to, &pair.sink_state, &pair.sink.base_url).await;
    let mut by_source_id: BTreeMap<String, Json> = BTreeMap::new();
    for r in pair.sink_state.records("contacts") {
        for id in source_ids_held(to, &r) {
            by_source_id.insert(id, r.clone());
        }
    }
    let mut found: BTreeMap<&str, u64> = BTreeMap::new();
    for r in pair.source_state.records("contacts") {
        let id = record_id(from, &r);
        for (canonical, field) in held(from) {
            if !opted(from, &r, field, &source_sms) {
                continue;
            }
            *found.entry(canonical).or_default() += 1;
            let Some(written) = by_source_id.get(&id) else {
                return Err(format!("{from} -> {to}: contact {id} is not in the sink"));
            };
            let into = sink_field(to, canonical, created);
            if *canonical == "email_unsubscribed_types" {
                let (want, got) = (types(from, &r, field), types(to, written, &into));
                if want != got {
                    return Err(format!(
                        "{from} -> {to}: contact {id} is unsubscribed from [{want}] in the \
                         source, from [{got}] in the sink's `{into}`"
                    ));
                }
                continue;
            }
            if !opted(to, written, &into, &sink_sms) {
                return Err(format!(
                    "{from} -> {to}: contact {id} is opted out of {} in the source, not in the \
                     sink's `{into}`",
                    channel(canonical)
                ));
            }
        }
    }
    for (canonical, _) in held(from) {
        let (got, want) = (
            found.get(canonical).copied().unwrap_or(0),
            seeded(&pair.seeded, canonical),
        );
        if got != want {
            return Err(format!(
                "{from} -> {to}: the source holds {got} contacts opted out in `{canonical}`, \
                 {want} seeded"
            ));
        }
    }
    Ok(())
}

/// One pair, every opt-out the sink lacks mapped to a new sink field: everything verified and
/// every opt-out counted read and kept, as seeded. `Err` says what went wrong.
async fn every_opt_out_kept(from: &'static str, to: &'static str) -> Result<(), String> {
    let pair = pair(from, to).await;
    let mapped = unheld(from, to);
    let config = pair.config(&mapped, "");
    let (code, report, stderr) = run("migrate", &config).await;
    let fail = |what: String| {
        format!(
            "{from} -> {to}: {what}\nstderr: {stderr}\n{}",
            brief(&report)
        )
    };
    if (code, report["outcome"].as_str()) != (0, Some("verified")) {
        return Err(fail(format!("exit {code}, not verified")));
    }
    for name in OBJECTS {
        let o = object(&report, name);
        if n(o, "verified") != n(o, "read") || o["digests_match"] != true {
            return Err(fail(format!("{name} not all verified")));
        }
    }
    if pair.sink_counts() != pair.source_counts() {
        return Err(fail(format!(
            "sink holds {:?}, source {:?}",
            pair.sink_counts(),
            pair.source_counts()
        )));
    }
    if report["fields_created"].as_array().map_or(0, Vec::len) != mapped.len() {
        return Err(fail(format!(
            "{} fields created, {} mapped",
            report["fields_created"],
            mapped.len()
        )));
    }
    for o in ferry_core::model::OPT_OUTS {
        let counts = consent(&report, o.channel);
        let expected = if held(from).iter().any(|(f, _)| *f == o.field) {
            seeded(&pair.seeded, o.field)
        } else {
            0
        };
        let got = (
            c(counts, "opted_out"),
            c(counts, "kept"),
            c(counts, "refused"),
            c(counts, "lost"),
        );
        if got != (expected, expected, 0, 0) {
            return Err(fail(format!(
                "{}: (opted out, kept, refused, lost) {got:?}, seeded {expected}",
                o.channel
            )));
        }
    }
    let created = created_fields(&config, &mapped).await;
    opted_out_in_the_sink(&pair, &created).await.map_err(fail)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pair_keeps_every_opt_out_mapping_what_the_sink_lacks_to_a_new_field() {
    let pairs: Vec<(&'static str, &'static str)> = VENDORS
        .iter()
        .flat_map(|a| {
            VENDORS
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (*a, *b))
        })
        .collect();
    assert_eq!(pairs.len(), 20);
    // Pairs whose sink lacks a field the source holds map it: the test covers that path.
    assert!(
        pairs
            .iter()
            .filter(|(a, b)| !unheld(a, b).is_empty())
            .count()
            >= 7
    );
    let runs = pairs
        .iter()
        .map(|(from, to)| tokio::spawn(every_opt_out_kept(from, to)));
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

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_lacking_an_opt_out_refuses_the_run_before_writing_anything() {
    for (from, to) in [
        ("salesforce", "pipedrive"),
        ("dynamics", "hubspot"),
        ("hubspot", "zoho"),
    ] {
        let pair = pair(from, to).await;
        let config = pair.config(&[], "");
        let (code, report, stderr) = run("migrate", &config).await;
        assert_eq!(code, 2, "{from} -> {to}: {stderr}\n{report:#}");
        let error = report["error"].as_str().unwrap_or_default();
        let lacking = unheld(from, to);
        assert!(!lacking.is_empty());
        for (canonical, source_field) in lacking {
            let expected = format!(
                "{} opted out of {}",
                seeded(&pair.seeded, canonical),
                channel(canonical)
            );
            assert!(
                error.contains(&expected),
                "{from} -> {to}: no `{expected}` in {error}"
            );
            assert!(
                error.contains(&format!("\"{source_field}\" = \"<{to} field>\"")),
                "{from} -> {to}: the field map is not offered for {source_field}: {error}"
            );
            assert!(
                error.contains(&format!("accept_loss = [\"{canonical}\"]")),
                "{from} -> {to}: accepting the loss is not offered for {canonical}: {error}"
            );
        }
        assert!(
            !error.contains("`email_opt_out`"),
            "{from} -> {to}: the email opt-out is held: {error}"
        );
        assert_eq!(
            pair.sink_counts(),
            vec![0; OBJECTS.len()],
            "{from} -> {to}: nothing may be written"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_loss_writes_each_record_without_it_and_lists_it_by_source_id() {
    let pair = pair("salesforce", "pipedrive").await;
    let config = pair.config(
        &[],
        "\n[consent]\naccept_loss = [\"do_not_call\", \"fax_opt_out\"]\n",
    );
    let (code, report, stderr) = run("migrate", &config).await;
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("verified")),
        "{stderr}\n{report:#}"
    );
    let mut lost: BTreeMap<&str, u64> = BTreeMap::new();
    for w in report["warnings"].as_array().into_iter().flatten() {
        if w["code"] == "CONSENT_LOST" {
            assert_eq!(w["object"], "contacts", "{w}");
            assert!(
                !w["source_id"].as_str().unwrap_or_default().is_empty(),
                "a CONSENT_LOST warning without a source id: {w}"
            );
            let reason = w["reason"].as_str().unwrap_or_default();
            let ch = ["phone", "fax"]
                .into_iter()
                .find(|ch| reason.contains(&format!("opted out of {ch}")))
                .unwrap_or_else(|| panic!("no channel in {w}"));
            *lost.entry(ch).or_default() += 1;
        }
    }
    let s = &pair.seeded;
    let expected: BTreeMap<&str, u64> = [
        ("fax", seeded(s, "fax_opt_out")),
        ("phone", seeded(s, "do_not_call")),
    ]
    .into();
    assert_eq!(lost, expected, "{report:#}");
    for (ch, n) in &expected {
        let counts = consent(&report, ch);
        assert_eq!(
            (c(counts, "opted_out"), c(counts, "lost"), c(counts, "kept")),
            (*n, *n, 0),
            "{ch}: {report:#}"
        );
    }
    let email = consent(&report, "email");
    assert_eq!(
        (c(email, "opted_out"), c(email, "kept")),
        (seeded(s, "email_opt_out"), seeded(s, "email_opt_out")),
        "{report:#}"
    );
    assert_eq!(pair.sink_counts(), pair.source_counts());
    // The summary says it in plain words, a line per channel (a rerun: upserts, nothing new).
    let out = common::ferry(&["migrate", "--config", &config], &all_credentials()).await;
    let summary = String::from_utf8_lossy(&out.stdout);
    let phone = seeded(s, "do_not_call");
    let line = format!(
        "contacts   consent, phone: {phone} records opted out: 0 kept opted out in pipedrive, 0 \
         refused, {phone} lost (written without it: [consent] accept_loss)"
    );
    assert!(summary.contains(&line), "no `{line}` in:\n{summary}");
}

/// `method path` with `body` on `vendor`'s emulator at `base`, signed in as another app of the
/// account would be; the answer's JSON (`null` when it has none).
async fn api(
    vendor: &str,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> Json {
    let http = reqwest::Client::new();
    let token = |url: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        async move {
            let answer: Json = http
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("token JSON");
            answer["access_token"]
                .as_str()
                .expect("access token")
                .to_owned()
        }
    };
    let request = http.request(method, format!("{base}{path}"));
    let request = match vendor {
        "hubspot" => request.bearer_auth(ferry_sandbox::HUBSPOT_TOKEN),
        "pipedrive" => request.header("x-api-token", ferry_sandbox::pipedrive::TOKEN),
        "salesforce" => request.bearer_auth(
            token(
                format!("{base}/services/oauth2/token"),
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", ferry_sandbox::SALESFORCE_CLIENT_ID.into()),
                    (
                        "client_secret",
                        ferry_sandbox::SALESFORCE_CLIENT_SECRET.into(),
                    ),
                ],
            )
            .await,
        ),
        "zoho" => {
            use ferry_sandbox::zoho;
            let t = token(
                format!("{base}/oauth/v2/token"),
                vec![
                    ("grant_type", "refresh_token".into()),
                    ("client_id", zoho::ZOHO_CLIENT_ID.into()),
                    ("client_secret", zoho::ZOHO_CLIENT_SECRET.into()),
                    ("refresh_token", zoho::ZOHO_REFRESH_TOKEN.into()),
                ],
            )
            .await;
            request.header("Authorization", format!("Zoho-oauthtoken {t}"))
        }
        "dynamics" => {
            use ferry_sandbox::dynamics;
            request.bearer_auth(
                token(
                    format!("{base}/{}/oauth2/v2.0/token", dynamics::TENANT_ID),
                    vec![
                        ("grant_type", "client_credentials".into()),
                        ("client_id", dynamics::CLIENT_ID.into()),
                        ("client_secret", dynamics::CLIENT_SECRET.into()),
                        ("scope", format!("{base}/.default")),
                    ],
                )
                .await,
            )
        }
        other => panic!("no vendor {other}"),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "{vendor} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Json::Null)
}

/// Sets `fields` (the account's own names and values) on contact `id` (in Zoho: its email
/// address) in `vendor`'s account, as a user's edit would.
async fn edit(vendor: &str, base: &str, id: &str, fields: Json) {
    use reqwest::Method;
    match vendor {
        "hubspot" => {
            let path = format!("/crm/v3/objects/contacts/{id}");
            api(
                vendor,
                base,
                Method::PATCH,
                &path,
                Some(json!({"properties": fields})),
            )
            .await;
        }
        "pipedrive" => {
            let path = format!("/api/v2/persons/{id}");
            api(vendor, base, Method::PATCH, &path, Some(fields)).await;
        }
        "zoho" => {
            // The emulator updates contacts through upsert (matched by email) only: `id` here
            // is the contact's email address.
            let mut record = fields;
            record["Email"] = json!(id);
            let body = json!({"data": [record]});
            let path = "/crm/v8/Contacts/upsert";
            let answer = api(vendor, base, Method::POST, path, Some(body)).await;
            assert_eq!(answer["data"][0]["status"], "success", "{answer}");
        }
        "salesforce" => {
            let mut record = json!({"attributes": {"type": "Contact"}, "Id": id});
            for (k, v) in fields.as_object().expect("fields") {
                record[k] = v.clone();
            }
            let path = "/services/data/v62.0/composite/sobjects";
            let body = json!({"allOrNone": true, "records": [record]});
            let answer = api(vendor, base, Method::PATCH, path, Some(body)).await;
            assert!(
                answer
                    .as_array()
                    .is_some_and(|a| a.iter().all(|r| r["success"] == true)),
                "{answer}"
            );
        }
        "dynamics" => {
            let path = format!("/api/data/v9.2/contacts({id})");
            api(vendor, base, Method::PATCH, &path, Some(fields)).await;
        }
        other => panic!("no vendor {other}"),
    }
}

/// Opts contact `record` of `vendor`'s account out of email, and of each field of `more` (the
/// account's names), as a user of that account would.
async fn opt_out_in(vendor: &str, base: &str, record: &Json, more: &[String]) {
    let id = record_id(vendor, record);
    let mut fields = serde_json::Map::new();
    let yes = |f: &mut serde_json::Map<String, Json>, name: &str| {
        f.insert(
            name.to_owned(),
            if vendor == "hubspot" {
                json!("true")
            } else {
                json!(true)
            },
        );
    };
    match vendor {
        "hubspot" => {
            // Email opt-outs are the communication-preferences API's, by address.
            let address = email(vendor, record).expect("an email address");
            let path = format!(
                "/communication-preferences/v4/statuses/{address}/unsubscribe-all?channel=EMAIL"
            );
            api(vendor, base, reqwest::Method::POST, &path, None).await;
        }
        "pipedrive" => {
            fields.insert("marketing_status".into(), json!("unsubscribed"));
        }
        "zoho" => yes(&mut fields, "Email_Opt_Out"),
        "salesforce" => yes(&mut fields, "HasOptedOutOfEmail"),
        "dynamics" => {
            yes(&mut fields, "donotemail");
            yes(&mut fields, "donotbulkemail");
        }
        other => panic!("no vendor {other}"),
    }
    if vendor == "pipedrive" {
        let custom: serde_json::Map<String, Json> =
            more.iter().map(|k| (k.clone(), json!("true"))).collect();
        if !custom.is_empty() {
            fields.insert("custom_fields".into(), Json::Object(custom));
        }
    } else {
        for name in more {
            yes(&mut fields, name);
        }
    }
    if !fields.is_empty() {
        let id = match vendor {
            "zoho" => email(vendor, record).expect("an email address"),
            _ => id,
        };
        edit(vendor, base, &id, Json::Object(fields)).await;
    }
}

/// One sink: a first sync; then in the sink a contact the source has not opted out is opted
/// out of email and phone, and in the source that contact changes and another, opted out of
/// email, opts back in; the next sync leaves both opted out in the sink, verified, and counts
/// them as the sink's own.
async fn a_sink_opt_out_stands(to: &'static str) -> Result<(), String> {
    let from = if to == "dynamics" {
        "salesforce"
    } else {
        "dynamics"
    };
    let pair = pair(from, to).await;
    let mapped = unheld(from, to);
    let state = pair.dir.join("state.json");
    let config = pair.config(
        &mapped,
        &format!("\n[sync]\nstate = {:?}\n", state.display().to_string()),
    );
    let (code, first, stderr) = run("sync", &config).await;
    let fail = |what: &str, report: &Json| {
        format!(
            "{from} -> {to}: {what}\nstderr: {stderr}\n{}",
            brief(report)
        )
    };
    if (code, first["outcome"].as_str()) != (0, Some("verified")) {
        return Err(fail("the first sync is not verified", &first));
    }
    let created = created_fields(&config, &mapped).await;
    let phone = sink_field(to, "do_not_call", &created);

    // A: reachable on every channel the source holds; B: opted out of email only.
    let contacts = pair.source_state.records("contacts");
    let opted = |r: &Json| -> Vec<&str> {
        held(from)
            .iter()
            .filter(|(_, f)| flag(from, r, f))
            .map(|(c, _)| *c)
            .collect()
    };
    let a = contacts
        .iter()
        .find(|r| email(from, r).is_some() && opted(r).is_empty())
        .expect("a contact opted out of nothing");
    let b = contacts
        .iter()
        .find(|r| email(from, r).is_some() && opted(r) == ["email_opt_out"])
        .expect("a contact opted out of email only");
    let (a_id, b_id) = (record_id(from, a), record_id(from, b));
    let in_sink = |id: &str| {
        pair.sink_state
            .records("contacts")
            .into_iter()
            .find(|r| source_ids_held(to, r).iter().any(|s| s == id))
            .unwrap_or_else(|| panic!("{from} -> {to}: {id} is not in the sink"))
    };
    opt_out_in(
        to,
        &pair.sink.base_url,
        &in_sink(&a_id),
        std::slice::from_ref(&phone),
    )
    .await;
    pair.source_state
        .advance_clock(std::time::Duration::from_secs(3600));
    let (title, opt_in) = match from {
        "dynamics" => (
            json!({"jobtitle": "Consent Officer"}),
            json!({"donotemail": false, "donotbulkemail": false}),
        ),
        _ => (
            json!({"Title": "Consent Officer"}),
            json!({"HasOptedOutOfEmail": false}),
        ),
    };
    edit(from, &pair.source.base_url, &a_id, title).await;
    edit(from, &pair.source.base_url, &b_id, opt_in).await;
    pair.source_state
        .advance_clock(std::time::Duration::from_secs(3600));

    let (code, second, stderr2) = run("sync", &config).await;
    let fail2 = |what: &str| {
        format!(
            "{from} -> {to}: {what}\nstderr: {stderr2}\n{}",
            brief(&second)
        )
    };
    if (code, second["outcome"].as_str()) != (0, Some("verified")) {
        return Err(fail2("the second sync is not verified"));
    }
    let contacts = object(&second, "contacts");
    if n(contacts, "read") != 2 || n(contacts, "verified") != 2 {
        return Err(fail2("not exactly the two changed contacts"));
    }
    let kept = |ch: &str| c(consent(&second, ch), "kept_in_sink");
    if (kept("email"), kept("phone")) != (2, 1) {
        return Err(fail2(
            "the sink's own opt-outs are not counted: email 2, phone 1",
        ));
    }
    let (a_now, b_now) = (in_sink(&a_id), in_sink(&b_id));
    let email_field = held(to)[0].1;
    for (who, record, fields) in [
        ("A", &a_now, vec![email_field.to_owned(), phone.clone()]),
        ("B", &b_now, vec![email_field.to_owned()]),
    ] {
        for f in fields {
            if !flag(to, record, &f) {
                return Err(fail2(&format!(
                    "contact {who} is no longer opted out in the sink's `{f}`: {record:#}"
                )));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_never_turns_a_sink_opt_out_back_on() {
    let runs: Vec<_> = VENDORS
        .iter()
        .map(|to| tokio::spawn(a_sink_opt_out_stands(to)))
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

/// HubSpot to HubSpot: each contact's email subscription types arrive unsubscribed in the sink
/// (by name, through the status calls), verified and counted per channel; a contact that
/// subscribes again to a type in the source stays unsubscribed in the sink on the next sync,
/// and a type the sink's contact unsubscribed from on its own stays so too.
#[tokio::test(flavor = "multi_thread")]
async fn hubspot_keeps_each_subscription_type_and_a_sync_never_resubscribes() {
    every_opt_out_kept("hubspot", "hubspot")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let pair = pair("hubspot", "hubspot").await;
    let state = pair.dir.join("state.json");
    let config = pair.config(
        &[],
        &format!("\n[sync]\nstate = {:?}\n", state.display().to_string()),
    );
    let (code, first, stderr) = run("sync", &config).await;
    assert_eq!(
        (code, first["outcome"].as_str()),
        (0, Some("verified")),
        "{stderr}\n{}",
        brief(&first)
    );
    let types_seeded = seeded(&pair.seeded, "email_unsubscribed_types");
    let counts = consent(&first, "email_types");
    assert_eq!(
        (c(counts, "opted_out"), c(counts, "kept")),
        (types_seeded, types_seeded),
        "{}",
        brief(&first)
    );

    // X: unsubscribed from One to One only. It subscribes again in the source; in the sink it
    // unsubscribes from Customer Service Communication too.
    let x = pair
        .source_state
        .records("contacts")
        .into_iter()
        .find(|r| types("hubspot", r, "") == "One to One")
        .expect("a contact unsubscribed from One to One only");
    let (x_id, address) = (
        record_id("hubspot", &x),
        email("hubspot", &x).expect("an address"),
    );
    let status = |base: String, address: String, state: &'static str, id: u64| async move {
        let path = format!(
            "/communication-preferences/v4/statuses/{}",
            address.replace('@', "%40")
        );
        let body = json!({"channel": "EMAIL", "statusState": state, "subscriptionId": id,
                          "legalBasis": "CONSENT_WITH_NOTICE"});
        api("hubspot", &base, reqwest::Method::POST, &path, Some(body)).await
    };
    pair.source_state
        .advance_clock(std::time::Duration::from_secs(3600));
    status(
        pair.source.base_url.clone(),
        address.clone(),
        "SUBSCRIBED",
        2,
    )
    .await;
    status(
        pair.sink.base_url.clone(),
        address.clone(),
        "NOT_SUBSCRIBED",
        3,
    )
    .await;
    pair.source_state
        .advance_clock(std::time::Duration::from_secs(3600));
    let in_source = pair
        .source_state
        .records("contacts")
        .into_iter()
        .find(|r| record_id("hubspot", r) == x_id)
        .expect("X in the source");
    assert_eq!(types("hubspot", &in_source, ""), "", "X subscribed again");

    let (code, second, stderr) = run("sync", &config).await;
    assert_eq!(
        (code, second["outcome"].as_str()),
        (0, Some("verified")),
        "{stderr}\n{}",
        brief(&second)
    );
    assert_eq!(
        n(object(&second, "contacts"), "read"),
        1,
        "only X changed: {}",
        brief(&second)
    );
    assert_eq!(
        c(consent(&second, "email_types"), "kept_in_sink"),
        1,
        "{}",
        brief(&second)
    );
    let in_sink = pair
        .sink_state
        .records("contacts")
        .into_iter()
        .find(|r| source_ids_held("hubspot", r).contains(&x_id))
        .expect("X in the sink");
    assert_eq!(
        types("hubspot", &in_sink, ""),
        "Customer Service Communication; One to One",
        "the sink's unsubscriptions stand"
    );
}

/// Runs `ferry migrate` with `config`, which must end verified; its report.
async fn migrated(config: &str) -> Json {
    let (code, report, stderr) = run("migrate", config).await;
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("verified")),
        "{stderr}\n{}",
        brief(&report)
    );
    report
}

/// A contact's legal bases in HubSpot's account, by the model's names, `; `-joined in name
/// order (as the canonical value reads).
fn hubspot_legal_basis(record: &Json) -> String {
    const NAMES: [(&str, &str); 5] = [
        (
            "Legitimate interest \u{2013} prospect/lead",
            "legitimate_interests_prospect",
        ),
        (
            "Legitimate interest \u{2013} existing customer",
            "legitimate_interests_customer",
        ),
        ("Performance of a contract", "contract"),
        ("Freely given consent from contact", "consent"),
        ("Not applicable", "not_applicable"),
    ];
    let mut names: Vec<&str> = record["properties"]["hs_legal_basis"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .filter(|v| !v.is_empty())
        .map(|v| {
            NAMES
                .iter()
                .find(|(option, _)| *option == v)
                .map(|(_, name)| *name)
                .unwrap_or_else(|| panic!("not an option of hs_legal_basis: {v}"))
        })
        .collect();
    names.sort();
    names.join("; ")
}

/// The legal bases of the seeded contacts, by their ids in `pair`'s source, as
/// [`hubspot_legal_basis`] reads them.
fn seeded_legal_bases(pair: &Pair) -> BTreeMap<String, String> {
    pair.source_state
        .records("contacts")
        .iter()
        .map(|r| (record_id("hubspot", r), hubspot_legal_basis(r)))
        .filter(|(_, names)| !names.is_empty())
        .collect()
}

/// Contacts of which half hold a legal basis (or, in Zoho, a consent stage and date).
fn legal_basis_seed() -> SeedData {
    generate(
        CONTACTS,
        16,
        &Mess {
            legal_bases: 0.5,
            ..Mess::none()
        },
    )
}

/// Legal bases are consent records, not opt-outs: carried option by option where the sink
/// keeps them (HubSpot → HubSpot, verified), listed as not carried where the sink has no field
/// for them, the run going on (HubSpot → Salesforce), and carried by the model's names into a
/// field the operator maps them to.
#[tokio::test(flavor = "multi_thread")]
async fn a_legal_basis_is_carried_verified_or_listed_as_not_carried_never_refused() {
    let seed = legal_basis_seed;
    let pair = pair_seeded("hubspot", "hubspot", seed()).await;
    let bases = seeded_legal_bases(&pair);
    assert!(
        bases.len() >= 60 && bases.values().any(|b| b.contains("; ")),
        "too few legal bases seeded to prove anything: {bases:?}"
    );
    migrated(&pair.config(&[], "")).await;
    let mut in_sink = BTreeMap::new();
    for r in pair.sink_state.records("contacts") {
        for id in source_ids_held("hubspot", &r) {
            let names = hubspot_legal_basis(&r);
            if !names.is_empty() {
                in_sink.insert(id, names);
            }
        }
    }
    assert_eq!(
        in_sink, bases,
        "every contact's legal bases, option by option"
    );

    // A legal basis the sink's contact holds where the source's has none is the sink's own
    // record: a rerun leaves it and verifies.
    let own = pair
        .sink_state
        .records("contacts")
        .into_iter()
        .find(|r| hubspot_legal_basis(r).is_empty())
        .expect("a sink contact without a legal basis");
    let own_id = record_id("hubspot", &own);
    edit(
        "hubspot",
        &pair.sink.base_url,
        &own_id,
        json!({"hs_legal_basis": "Not applicable"}),
    )
    .await;
    migrated(&pair.config(&[], "")).await;
    let kept = pair
        .sink_state
        .records("contacts")
        .into_iter()
        .find(|r| record_id("hubspot", r) == own_id)
        .expect("the contact");
    assert_eq!(
        hubspot_legal_basis(&kept),
        "not_applicable",
        "the sink's own stands"
    );

    // A sink without a field for it: the run is not refused, the field is listed.
    let pair = pair_seeded("hubspot", "salesforce", seed()).await;
    let report = migrated(&pair.config(&[], "")).await;
    let not_carried = &object(&report, "contacts")["fields_not_carried"];
    assert!(
        not_carried
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "legal_basis")),
        "legal_basis listed as not carried: {not_carried}"
    );

    // Mapped by the operator into a field ferry creates: carried by the model's names.
    let mapped = [("legal_basis", "hs_legal_basis")];
    let config = pair.config(&mapped, "");
    migrated(&config).await;
    let created = created_fields(&config, &mapped).await;
    let field = &created["legal_basis"];
    let mut in_sink = BTreeMap::new();
    for r in pair.sink_state.records("contacts") {
        if let (Some(id), Some(names)) = (
            source_ids_held("salesforce", &r).into_iter().next(),
            r[field.as_str()].as_str().filter(|t| !t.is_empty()),
        ) {
            in_sink.insert(id, names.to_owned());
        }
    }
    assert_eq!(in_sink, seeded_legal_bases(&pair), "into {field}");
}

/// Zoho's `Data_Processing_Basis` of a contact in a Zoho account, as the model names it: a
/// basis by its name, a consent stage by Zoho's.
fn zoho_legal_basis(record: &Json) -> String {
    let basis = record["Data_Processing_Basis_Details"]["Data_Processing_Basis"]
        .as_str()
        .expect("a GDPR org's contact has a basis");
    ferry_zoho::gdpr::BASES
        .iter()
        .find(|(zoho, _)| *zoho == basis)
        .map_or(basis, |(_, name)| *name)
        .to_owned()
}

/// The warnings of `code` on contacts in `report`, by source id.
fn warned(report: &Json, code: &str) -> BTreeMap<String, String> {
    report["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["code"] == code && w["object"] == "contacts")
        .map(|w| {
            (
                w["source_id"].as_str().unwrap_or_default().to_owned(),
                w["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Zoho's GDPR consent record holds one legal basis: HubSpot → Zoho writes each contact's
/// first by Zoho's precedence (a refinement as its broader basis), naming the ones left out,
/// and verifies; a contact without one keeps Zoho's default. Zoho → HubSpot carries a basis
/// HubSpot has an option for; a broader legitimate interest and a consent stage short of
/// consent are left out, by source id, never by value; Zoho → Zoho carries every basis, stage
/// and consent date as it was; all verified.
#[tokio::test(flavor = "multi_thread")]
async fn zohos_one_legal_basis_is_carried_both_ways_verified() {
    let seed = legal_basis_seed;
    let hubspot = ferry_sandbox::emulator("hubspot").expect("hubspot").build;
    let pair = pair_of(
        "hubspot",
        "zoho",
        hubspot(Faults::default(), Limits::Unlimited),
        gdpr_zoho(),
        seed(),
    )
    .await;
    let bases = seeded_legal_bases(&pair);
    let report = migrated(&pair.config(&[], "")).await;
    let not_carried = &object(&report, "contacts")["fields_not_carried"];
    assert!(
        !not_carried
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "legal_basis")),
        "carried: {not_carried}"
    );
    // Zoho's precedence, the refinements as their broader basis.
    let first = |names: &str| -> String {
        let names: Vec<&str> = names
            .split("; ")
            .map(|n| {
                n.strip_prefix("legitimate_interests_")
                    .map_or(n, |_| "legitimate_interests")
            })
            .collect();
        ferry_zoho::gdpr::BASES
            .iter()
            .map(|(_, name)| *name)
            .find(|name| names.contains(name))
            .expect("a basis Zoho holds")
            .to_owned()
    };
    let mut in_zoho = BTreeMap::new();
    for r in pair.sink_state.records("contacts") {
        let id = source_ids_held("zoho", &r)
            .into_iter()
            .next()
            .expect("a source id");
        let want = bases
            .get(&id)
            .map_or("not_applicable".to_owned(), |b| first(b));
        assert_eq!(zoho_legal_basis(&r), want, "{id}: {:?}", bases.get(&id));
        in_zoho.insert(id, ());
    }
    assert_eq!(in_zoho.len(), pair.seeded.contacts.len());
    let several: Vec<&String> = bases
        .iter()
        .filter(|(_, b)| b.contains("; "))
        .map(|(id, _)| id)
        .collect();
    assert!(!several.is_empty(), "some contacts hold two bases");
    let left_out = warned(&report, "NAMES_NOT_HELD");
    for id in &several {
        assert!(
            left_out
                .get(*id)
                .is_some_and(|r| r.contains("by its precedence")),
            "{id}: {left_out:?}"
        );
    }

    // Zoho → HubSpot: carried where HubSpot has an option, left out by source id otherwise.
    let pair = pair_of(
        "zoho",
        "hubspot",
        gdpr_zoho(),
        common::opt_out_sink("hubspot"),
        seed(),
    )
    .await;
    let in_source: BTreeMap<String, String> = pair
        .source_state
        .records("contacts")
        .iter()
        .map(|r| (record_id("zoho", r), zoho_legal_basis(r)))
        .collect();
    let stages: Vec<&String> = in_source
        .iter()
        .filter(|(_, b)| ferry_zoho::gdpr::STAGES.contains(&b.as_str()))
        .map(|(id, _)| id)
        .collect();
    assert!(!stages.is_empty(), "some contacts at a consent stage");
    let report = migrated(&pair.config(&[], "")).await;
    let left_out = warned(&report, "NAMES_NOT_HELD");
    let mut in_hubspot = BTreeMap::new();
    for r in pair.sink_state.records("contacts") {
        if let Some(id) = source_ids_held("hubspot", &r).into_iter().next() {
            in_hubspot.insert(id, hubspot_legal_basis(&r));
        }
    }
    for (id, basis) in &in_source {
        let held = ["consent", "contract", "not_applicable"].contains(&basis.as_str());
        let want = if held { basis.as_str() } else { "" };
        assert_eq!(
            in_hubspot.get(id).map(String::as_str),
            Some(want),
            "{id}: {basis}"
        );
        assert_eq!(left_out.contains_key(id), !held, "{id}: {basis}");
        if let Some(reason) = left_out.get(id) {
            for stage in ferry_zoho::gdpr::STAGES {
                assert!(!reason.contains(stage), "a stage shown: {reason}");
            }
        }
    }

    // Zoho → Zoho: every basis, consent stage and consent date as it was, verified.
    let pair = pair_of("zoho", "zoho", gdpr_zoho(), gdpr_zoho(), seed()).await;
    let record = |r: &Json| {
        let details = &r["Data_Processing_Basis_Details"];
        (
            details["Data_Processing_Basis"].as_str().map(str::to_owned),
            details["Consent_Date"].as_str().map(str::to_owned),
        )
    };
    let in_source: BTreeMap<String, _> = pair
        .source_state
        .records("contacts")
        .iter()
        .map(|r| (record_id("zoho", r), record(r)))
        .collect();
    assert!(
        in_source.values().any(|(_, date)| date.is_some()),
        "some consent dated"
    );
    migrated(&pair.config(&[], "")).await;
    let in_sink: BTreeMap<String, _> = pair
        .sink_state
        .records("contacts")
        .iter()
        .filter_map(|r| Some((source_ids_held("zoho", r).into_iter().next()?, record(r))))
        .collect();
    assert_eq!(in_sink, in_source);
}
