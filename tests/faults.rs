//! The fault matrix: the real `ferry migrate` (a child process) between two emulators under
//! each fault profile, and under all of them at once. Read faults are injected on the source,
//! write faults on the sink. Every profile runs from HubSpot to Salesforce; the other vendors'
//! cases are drawn from the sandbox's emulator list (`ferry_sandbox::emulators()`): `shift`
//! on each as a source, `partial` on each per-record sink, and one more `all` case between
//! two of them, so a new emulator joins the matrix by its adapter here. Every run must end
//! with every record that existed at the start in the sink exactly once, verified, or listed
//! as failed for the reason the fault planted (`badutf8`: the records whose email is not
//! UTF-8, by source id), and the retries must show in the report.
//!
//! The cases run concurrently, each with its own emulators and its own ferry process; small
//! data sets, small pages and batches (so there are enough requests for the faults to hit) and
//! short timeouts keep the whole file well under two minutes. Fault decisions are seeded, so
//! every run fails the same request numbers.
//!
//! Two sinks have a case of their own: HubSpot's sends locked batch inputs again, and
//! Pipedrive's (no upsert: creates are `POST`s) must not create a record twice when a create's
//! answer is lost.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;
use ferry_sandbox::faults::{Faults, garbles};
use ferry_sandbox::hubspot::{FIRST_COMPANY_ID, FIRST_CONTACT_ID};
use ferry_sandbox::seed::{Mess, SeedData};
use ferry_sandbox::{Running, dynamics, hubspot, pipedrive, salesforce, zoho};

const CONTACTS: usize = 300;

/// What a case checks beyond "nothing lost, nothing duplicated, every failure planted".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing more: a baseline.
    Clean,
    /// Retries on the source's and the sink's HTTP counters; `throttled` too if set.
    Retries { throttled: bool },
    /// Retries on the sink's counters only, and the run took at least this long (a
    /// `Retry-After` was honoured).
    SinkWaited(Duration),
    /// Extra sink requests compared with the baseline of the same pair (records sent again).
    MoreSinkRequests,
    /// Sessions renewed: sink requests beyond what the org counted as API calls.
    Renewed,
}

struct Case {
    name: String,
    from: &'static str,
    to: &'static str,
    source: &'static str,
    sink: &'static str,
    /// Per-request timeout of both connectors (the `slow` fault outlasts 1 s).
    timeout_secs: u64,
    expect: Expect,
}

fn case(
    name: impl Into<String>,
    (from, to): (&'static str, &'static str),
    (source, sink): (&'static str, &'static str),
    timeout_secs: u64,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        from,
        to,
        source,
        sink,
        timeout_secs,
        expect,
    }
}

/// The pair every fault profile runs on. Named, not drawn from the list: the `expire` case
/// needs a sink that counts API calls apart from token requests (Salesforce's org does), and
/// HubSpot's seeded ids are known in advance.
const HS_SF: (&str, &str) = ("hubspot", "salesforce");
const ALL_SOURCE: &str = "all,storm:2/15,5xx:10,reset:10,truncate:10,slow:5,slow-ms:1600,seed:11";
const ALL_SINK: &str =
    "all,storm:2/15,5xx:10,reset:10,truncate:10,slow:5,slow-ms:1600,partial:10,expire:25,seed:12";

/// Every case: each fault profile on [`HS_SF`], then, drawn from `ferry_sandbox::emulators()`,
/// `shift` on every other emulator this file can seed as a source, and a baseline and
/// `partial` on every other emulator whose sink answers per record (see
/// [`Emulator::answers_per_record`]).
fn cases() -> Vec<Case> {
    let mut cases = vec![
        case("baseline", HS_SF, ("none", "none"), 10, Expect::Clean),
        case(
            "storm",
            HS_SF,
            ("storm:3/8", "storm:3/8"),
            10,
            Expect::Retries { throttled: true },
        ),
        case(
            "storm with Retry-After",
            HS_SF,
            ("none", "storm:2/6,retry-after:1"),
            10,
            Expect::SinkWaited(Duration::from_secs(1)),
        ),
        case(
            "5xx",
            HS_SF,
            ("5xx:25,seed:1", "5xx:25,seed:2"),
            10,
            Expect::Retries { throttled: false },
        ),
        case(
            "reset",
            HS_SF,
            ("reset:25,seed:3", "reset:25,seed:4"),
            10,
            Expect::Retries { throttled: false },
        ),
        case(
            "slow",
            HS_SF,
            ("slow:20,slow-ms:1600,seed:5", "slow:20,slow-ms:1600,seed:6"),
            1,
            Expect::Retries { throttled: false },
        ),
        case(
            "truncate",
            HS_SF,
            ("truncate:10,seed:7", "truncate:10,seed:8"),
            10,
            Expect::Retries { throttled: false },
        ),
        case(
            "partial",
            HS_SF,
            ("none", "partial:10,seed:9"),
            10,
            Expect::MoreSinkRequests,
        ),
        case("shift", HS_SF, ("shift:2", "none"), 10, Expect::Clean),
        case("expire", HS_SF, ("none", "expire:7"), 10, Expect::Renewed),
        case("badutf8", HS_SF, ("badutf8:5", "none"), 10, Expect::Clean),
        case(
            "all at once",
            HS_SF,
            (ALL_SOURCE, ALL_SINK),
            1,
            Expect::Retries { throttled: true },
        ),
    ];
    let vendors: Vec<&'static str> = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .collect();
    let others = || {
        vendors
            .iter()
            .copied()
            .filter(|v| ![HS_SF.0, HS_SF.1].contains(v))
    };
    for vendor in others().filter(|v| Emulator::seeds_as_source(v)) {
        cases.push(case(
            format!("shift, {vendor} source"),
            (vendor, HS_SF.1),
            ("shift:3", "none"),
            10,
            Expect::Clean,
        ));
    }
    for (k, vendor) in others()
        .filter(|v| Emulator::answers_per_record(v))
        .enumerate()
    {
        cases.push(case(
            format!("baseline, {vendor} sink"),
            (HS_SF.0, vendor),
            ("none", "none"),
            10,
            Expect::Clean,
        ));
        cases.push(case(
            format!("partial, {vendor} sink"),
            (HS_SF.0, vendor),
            ("none", PARTIAL_SEEDED[k % PARTIAL_SEEDED.len()]),
            10,
            Expect::MoreSinkRequests,
        ));
    }
    // Every fault at once between two vendors other than the fixed pair that can play both
    // parts (the last of them in the list to the first), when the list has two.
    let both: Vec<&'static str> = others()
        .filter(|v| Emulator::seeds_as_source(v) && Emulator::answers_per_record(v))
        .collect();
    if let (Some(&sink), Some(&source)) = (both.first(), both.last())
        && source != sink
    {
        cases.push(case(
            format!("all at once, {source} to {sink}"),
            (source, sink),
            (ALL_SOURCE, ALL_SINK),
            1,
            Expect::Retries { throttled: true },
        ));
    }
    cases
}

/// The `partial` profiles of the generated sink cases, each with its own seed.
const PARTIAL_SEEDED: &[&str] = &[
    "partial:10,seed:13",
    "partial:10,seed:14",
    "partial:10,seed:15",
];

/// One of the emulators, with what the matrix asks of it as a source or a sink.
enum Emulator {
    HubSpot(hubspot::Emulator),
    Salesforce(salesforce::Emulator),
    Pipedrive(pipedrive::Emulator),
    Zoho(zoho::Emulator),
    Dynamics(dynamics::Emulator),
}

// The adapters below name each vendor: what a test asks of an emulator beyond
// `VendorEmulator` (the source ids it seeded, a record looked up by source id, Salesforce's API
// call count) is each emulator's own inspection API, in its vendor's object names.
impl Emulator {
    /// Whether this file can seed `vendor` as a source and name the seeded source ids.
    fn seeds_as_source(vendor: &str) -> bool {
        matches!(vendor, "hubspot" | "pipedrive" | "zoho" | "dynamics")
    }

    /// Whether this file can inspect `vendor` as a sink and its sink answers each record of
    /// a batch apart (so the `partial` fault applies).
    fn answers_per_record(vendor: &str) -> bool {
        matches!(vendor, "salesforce" | "zoho" | "dynamics")
    }

    fn new(vendor: &str, faults: Faults) -> Emulator {
        match vendor {
            "hubspot" => Emulator::HubSpot(hubspot::Emulator::new(hubspot::Options {
                faults,
                ..Default::default()
            })),
            "salesforce" => Emulator::Salesforce(salesforce::Emulator::new(salesforce::Options {
                faults,
                ..Default::default()
            })),
            "pipedrive" => Emulator::Pipedrive(pipedrive::Emulator::new(pipedrive::Options {
                faults,
                ..Default::default()
            })),
            "zoho" => Emulator::Zoho(zoho::Emulator::new(zoho::Options {
                faults,
                ..Default::default()
            })),
            "dynamics" => Emulator::Dynamics(dynamics::Emulator::new(dynamics::Options {
                faults,
                ..Default::default()
            })),
            other => panic!("no fault-matrix adapter for the emulator {other}: add one here"),
        }
    }

    /// Serves it on a free loopback port.
    async fn serve(&self) -> Running {
        let router = match self {
            Emulator::HubSpot(e) => e.router(),
            Emulator::Salesforce(e) => e.router(),
            Emulator::Pipedrive(e) => e.router(),
            Emulator::Zoho(e) => e.router(),
            Emulator::Dynamics(e) => e.router(),
        };
        let any = "127.0.0.1:0".parse().expect("loopback address");
        ferry_sandbox::serve("emulator", router, any)
            .await
            .expect("serve the emulator")
    }

    /// Seeds `data` and answers the source ids of the seeded companies and contacts, in the
    /// order of `data`.
    fn seed(&self, data: &SeedData) -> [Vec<String>; 2] {
        let ids = match self {
            Emulator::HubSpot(e) => {
                e.seed(data);
                let ids =
                    |first: u64, n: usize| (0..n as u64).map(move |i| (first + i).to_string());
                [
                    ids(FIRST_COMPANY_ID, data.companies.len()).collect(),
                    ids(FIRST_CONTACT_ID, data.contacts.len()).collect(),
                ]
            }
            Emulator::Pipedrive(e) => {
                e.seed(data);
                [e.source_ids("companies"), e.source_ids("contacts")]
            }
            Emulator::Zoho(e) => {
                e.seed(data);
                [e.source_ids("Accounts"), e.source_ids("Contacts")]
            }
            Emulator::Dynamics(e) => {
                e.seed(data);
                [e.source_ids("account"), e.source_ids("contact")]
            }
            Emulator::Salesforce(_) => panic!("the matrix does not read from Salesforce"),
        };
        assert_eq!(ids[0].len(), data.companies.len(), "every company seeded");
        assert_eq!(ids[1].len(), data.contacts.len(), "every contact seeded");
        ids
    }

    /// How many records of `object` (`companies` or `contacts`) a sink holds.
    fn count(&self, object: &str) -> u64 {
        let contacts = object == "contacts";
        (match self {
            Emulator::Salesforce(e) => e.count(if contacts { "Contact" } else { "Account" }),
            Emulator::Zoho(e) => e.count(if contacts { "Contacts" } else { "Accounts" }),
            Emulator::Dynamics(e) => e.count(if contacts { "contact" } else { "account" }),
            _ => panic!("the matrix does not write to this vendor"),
        }) as u64
    }

    /// Whether a sink holds the record of `object` whose source id is `id`.
    fn holds(&self, object: &str, id: &str) -> bool {
        let contacts = object == "contacts";
        match self {
            Emulator::Salesforce(e) => e
                .record_by_external_id(if contacts { "Contact" } else { "Account" }, id)
                .is_some(),
            Emulator::Zoho(e) => e
                .record_by_source_id(if contacts { "Contacts" } else { "Accounts" }, id)
                .is_some(),
            Emulator::Dynamics(e) => e
                .record_by_key(if contacts { "contact" } else { "account" }, id)
                .is_some(),
            _ => panic!("the matrix does not write to this vendor"),
        }
    }

    /// Requests the Salesforce org did not count as API calls (token requests and 401s).
    fn uncounted(&self, sent: u64) -> u64 {
        match self {
            Emulator::Salesforce(e) => sent.saturating_sub(e.api_usage()),
            _ => panic!("only the Salesforce sink counts API calls"),
        }
    }
}

/// The `[source]` or `[sink]` table for `vendor` served at `base_url`: small pages and
/// batches, the case's timeout, generous retries.
fn table(role: &str, vendor: &str, base_url: &str, timeout_secs: u64) -> String {
    let spec = ferry_sandbox::emulator(vendor).expect("an emulator of every vendor");
    let mut out = format!("[{role}]\nconnector = \"{vendor}\"\n");
    let sizes: &[&str] = if role == "source" {
        &["page_size"]
    } else {
        &["batch_size", "read_back_size"]
    };
    let settings = (spec.connector_settings)(base_url);
    for (key, value) in settings.iter().filter(|(k, _)| !sizes.contains(k)) {
        // The settings are text; a number goes in as a TOML integer.
        match value.parse::<u64>() {
            Ok(n) => writeln!(out, "{key} = {n}"),
            Err(_) => writeln!(out, "{key} = \"{value}\""),
        }
        .expect("write to a String");
    }
    for key in sizes {
        let _ = writeln!(out, "{key} = 50");
    }
    let _ = writeln!(out, "timeout_secs = {timeout_secs}\nmax_retries = 10");
    out
}

/// Every emulator's sandbox credentials, for the child's environment.
fn credentials() -> Vec<(&'static str, String)> {
    ferry_sandbox::emulators()
        .iter()
        .flat_map(|e| e.credentials.iter())
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect()
}

/// What one case observed, for the cross-case checks.
struct Observed {
    sink_requests: u64,
}

/// Runs one case; `Err` says everything that went wrong.
async fn run_case(case: &Case) -> Result<Observed, String> {
    let parse = |p: &str| Faults::parse(p).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let (source_faults, sink_faults) = (parse(case.source), parse(case.sink));
    let data = ferry_sandbox::seed::generate(CONTACTS, 7, &Mess::none());
    let source = Emulator::new(case.from, source_faults.clone());
    let sink = Emulator::new(case.to, sink_faults);
    let seeded = source.seed(&data);
    let served = source.serve().await;
    let sink_served = sink.serve().await;
    let dir = std::env::temp_dir().join(format!(
        "ferry-faults-{}-{}",
        std::process::id(),
        case.name.replace([' ', ','], "-")
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("ferry.toml");
    let spec = |vendor| ferry_sandbox::emulator(vendor).expect("an emulator of every vendor");
    let text = format!(
        "version = 1\n\n{}\n{}\n[migration]\nobjects = [\"companies\", \"contacts\"]\n{}",
        table("source", case.from, &served.base_url, case.timeout_secs),
        table("sink", case.to, &sink_served.base_url, case.timeout_secs),
        common::industry_table(&spec(case.from), &spec(case.to)),
    );
    std::fs::write(&config, text).expect("write config");
    let config_arg = config.to_string_lossy().into_owned();
    let started = Instant::now();
    let out = ferry(
        &["migrate", "--config", &config_arg, "--report", "json", "-q"],
        &credentials(),
    )
    .await;
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{}: no JSON report ({e}); stderr:\n{stderr}", case.name))?;
    let code = out.status.code().unwrap_or(-1);

    let mut problems = String::new();
    let mut fail = |what: String| {
        let _ = writeln!(problems, "  - {what}");
    };
    // The records whose email the `badutf8` fault garbles: they, and only they (or records
    // created mid-read), must be listed as failed.
    let garbled: BTreeSet<&str> = match source_faults.bad_utf8 {
        None => BTreeSet::new(),
        Some(percent) => data
            .contacts
            .iter()
            .zip(&seeded[1])
            .filter(|(c, _)| c.email.as_deref().is_some_and(|e| garbles(e, percent)))
            .map(|(_, id)| id.as_str())
            .collect(),
    };
    let all_seeded: BTreeSet<&str> = seeded.iter().flatten().map(String::as_str).collect();
    let failures = report["failures"].as_array().cloned().unwrap_or_default();
    let mut failed = BTreeSet::new();
    for f in &failures {
        let id = f["source_id"].as_str().unwrap_or_default().to_owned();
        let planted = f["code"] == "INVALID_TEXT_ENCODING"
            && f["reason"].as_str().is_some_and(|r| r.contains("`email`"))
            && (garbled.contains(id.as_str())
                || (source_faults.shift.is_some() && !all_seeded.contains(id.as_str())));
        if !planted {
            fail(format!("an unexpected failure: {f}"));
        }
        failed.insert(id);
    }
    for id in &garbled {
        if !failed.contains(*id) {
            fail(format!(
                "contact {id} has a garbled email but is not listed as failed"
            ));
        }
    }
    let expected_code = if failures.is_empty() { 0 } else { 3 };
    if code != expected_code {
        fail(format!(
            "exit code {code}, expected {expected_code}; stderr:\n{stderr}"
        ));
    }
    let expected_outcome = if failures.is_empty() {
        "verified"
    } else {
        "records_failed"
    };
    if report["outcome"] != expected_outcome {
        fail(format!(
            "outcome {}, expected {expected_outcome}",
            report["outcome"]
        ));
    }
    for (k, object) in ["companies", "contacts"].into_iter().enumerate() {
        let o = object_of(&report, object);
        let (read, verified) = (num(&o["read"]), num(&o["verified"]));
        let failed_here = failures.iter().filter(|f| f["object"] == object).count() as u64;
        let n = seeded[k].len() as u64;
        let in_sink = sink.count(object);
        if o["digests_match"] != true {
            fail(format!("{object}: digests differ"));
        }
        if verified + failed_here != read {
            fail(format!(
                "{object}: {verified} verified and {failed_here} failed of {read} read"
            ));
        }
        // No duplicates: the sink holds exactly what was verified, each once.
        if in_sink != verified {
            fail(format!(
                "{object}: the sink holds {in_sink}, {verified} were verified"
            ));
        }
        if source_faults.shift.is_some() {
            if read <= n {
                fail(format!(
                    "{object}: {read} read, none of the records created mid-read among them"
                ));
            }
        } else if read != n {
            fail(format!("{object}: {read} read, {n} seeded"));
        }
        // Nothing lost: every record that existed at the start is in the sink, or failed.
        let missing = seeded[k]
            .iter()
            .filter(|id| !failed.contains(*id) && !sink.holds(object, id))
            .count();
        if missing > 0 {
            fail(format!(
                "{object}: {missing} seeded records neither in the sink nor listed as failed"
            ));
        }
    }
    let (src, sink_http) = (&report["source_http"], &report["sink_http"]);
    match case.expect {
        Expect::Clean | Expect::MoreSinkRequests => {}
        Expect::Retries { throttled } => {
            for (side, http) in [("source", src), ("sink", sink_http)] {
                if num(&http["retries"]) == 0 {
                    fail(format!("no retries on the {side}: {http}"));
                }
                if throttled && num(&http["throttled"]) == 0 {
                    fail(format!("no 429s on the {side}: {http}"));
                }
            }
        }
        Expect::SinkWaited(at_least) => {
            if num(&sink_http["throttled"]) == 0 || num(&sink_http["retries"]) == 0 {
                fail(format!("no throttling retried on the sink: {sink_http}"));
            }
            if elapsed < at_least {
                fail(format!(
                    "finished in {elapsed:?}: Retry-After was not honoured"
                ));
            }
        }
        Expect::Renewed => {
            let uncounted = sink.uncounted(num(&sink_http["requests"]));
            if uncounted < 3 {
                fail(format!(
                    "{uncounted} requests beyond the org's API calls: no session was renewed"
                ));
            }
        }
    }
    let observed = Observed {
        sink_requests: num(&sink_http["requests"]),
    };
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(format!("{} ({elapsed:?}):\n{problems}", case.name))
    }
}

/// Runs `ferry migrate --report json` with `config` (written to a fresh directory, removed
/// after): the process output, its JSON report, and its stderr.
async fn migrate_with(
    config: &str,
    name: &str,
    env: &[(&str, String)],
) -> (std::process::Output, serde_json::Value, String) {
    let dir = std::env::temp_dir().join(format!("ferry-faults-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ferry.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_string_lossy().into_owned();
    let out = ferry(
        &["migrate", "--config", &path, "--report", "json", "-q"],
        env,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    (out, report, stderr)
}

fn object_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static MISSING: serde_json::Value = serde_json::Value::Null;
    report["objects"]
        .as_array()
        .and_then(|objects| objects.iter().find(|o| o["object"] == name))
        .unwrap_or(&MISSING)
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_profile_and_all_at_once_end_with_nothing_lost_or_duplicated() {
    let cases = cases();
    let started = Instant::now();
    let results = futures::future::join_all(cases.iter().map(|case| async move {
        let result = run_case(case).await;
        eprintln!(
            "fault case {:<32} {} after {:?}",
            case.name,
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        (case, result)
    }))
    .await;
    let mut failures: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().cloned())
        .collect();
    // A baseline is the clean case of the same pair.
    let baseline = |from: &str, to: &str| {
        results.iter().find_map(|(c, r)| match r {
            Ok(o) if (c.from, c.to, c.source, c.sink) == (from, to, "none", "none") => {
                Some(o.sink_requests)
            }
            _ => None,
        })
    };
    for (case, result) in &results {
        if let (Expect::MoreSinkRequests, Ok(o)) = (case.expect, result) {
            match baseline(case.from, case.to) {
                Some(base) if o.sink_requests > base => {}
                Some(base) => failures.push(format!(
                    "{}: {} sink requests, no more than the baseline's {base}: nothing was sent again",
                    case.name, o.sink_requests
                )),
                None => failures.push(format!("{}: no baseline of its pair passed", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// HubSpot as the sink: a 207 whose failed inputs are locked (a transient per-input error)
/// must be sent again, not reported as refused.
#[tokio::test(flavor = "multi_thread")]
async fn hubspot_sink_sends_locked_inputs_again() {
    let data = ferry_sandbox::seed::generate(200, 5, &Mess::none());
    let org = salesforce::Emulator::new(salesforce::Options::default());
    let seeded = org.seed(&data);
    let hub = hubspot::Emulator::new(hubspot::Options {
        faults: Faults::parse("partial:15,seed:3").unwrap(),
        ..Default::default()
    });
    let any = "127.0.0.1:0".parse().unwrap();
    let sf = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .unwrap();
    let hs = ferry_sandbox::serve("hubspot", hub.router(), any)
        .await
        .unwrap();
    let config = format!(
        r#"version = 1

[source]
connector = "salesforce"
login_url = "{}"
client_id = "${{SF_CLIENT_ID}}"
client_secret = "${{SF_CLIENT_SECRET}}"

[sink]
connector = "hubspot"
base_url = "{}"
token = "${{HUBSPOT_TOKEN}}"

[migration]
objects = ["companies", "contacts"]
{}"#,
        sf.base_url,
        hs.base_url,
        common::industry_table(
            &ferry_sandbox::salesforce::SPEC,
            &ferry_sandbox::hubspot::SPEC
        )
    );
    let (out, report, stderr) = migrate_with(&config, "hs", &sandbox_env()).await;
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report:#}");
    for (object, n) in [
        ("companies", seeded.accounts),
        ("contacts", seeded.contacts),
    ] {
        let o = object_of(&report, object);
        assert_eq!(num(&o["verified"]), n as u64, "{object}: {report:#}");
        assert_eq!(hub.count(object), Some(n), "{object}: no duplicates");
    }
}

/// Pipedrive as the sink: it has no upsert, so a record is created with a `POST`. When the
/// connection drops after Pipedrive saved the record (`reset`), the retry must not create it a
/// second time: the sink must hold exactly the records read.
#[tokio::test(flavor = "multi_thread")]
async fn pipedrive_sink_creates_each_record_once_when_answers_are_lost() {
    // Pipedrive keeps no marketing status for a person without an email: a data set with an
    // opted-out, email-less contact cannot verify, so pick one without.
    let data = (1..100)
        .map(|seed| ferry_sandbox::seed::generate(150, seed, &Mess::none()))
        .find(|d| {
            !d.contacts
                .iter()
                .any(|c| c.email_opt_out && c.email.is_none())
        })
        .expect("a data set without email-less opt-outs");
    let hub = hubspot::Emulator::new(hubspot::Options::default());
    hub.seed(&data);
    // Unlimited, so that the retries' backoff, not the rate limits, sets the pace.
    let pd = pipedrive::Emulator::new(pipedrive::Options {
        faults: Faults::parse("reset:20,seed:4").unwrap(),
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Default::default()
    });
    let any = "127.0.0.1:0".parse().unwrap();
    let hs = ferry_sandbox::serve("hubspot", hub.router(), any)
        .await
        .unwrap();
    let pds = ferry_sandbox::serve("pipedrive", pd.router(), any)
        .await
        .unwrap();
    let config = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{}"
token = "${{HUBSPOT_TOKEN}}"

[sink]
connector = "pipedrive"
base_url = "{}"
api_token = "${{PIPEDRIVE_TOKEN}}"
rate_limit_per_2s = 10000
search_rate_limit_per_2s = 10000
batch_size = 10
concurrency = 8
max_retries = 10

[migration]
objects = ["companies", "contacts"]
batches_in_flight = 8
{}"#,
        hs.base_url,
        pds.base_url,
        common::industry_table(
            &ferry_sandbox::hubspot::SPEC,
            &ferry_sandbox::pipedrive::SPEC
        )
    );
    let mut env = sandbox_env();
    env.push(("PIPEDRIVE_TOKEN", pipedrive::TOKEN.to_owned()));
    let (out, report, stderr) = migrate_with(&config, "pd", &env).await;
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert!(num(&report["sink_http"]["retries"]) > 0, "{report:#}");
    for (object, n) in [
        ("companies", data.companies.len()),
        ("contacts", data.contacts.len()),
    ] {
        let o = object_of(&report, object);
        assert_eq!(num(&o["read"]), n as u64, "{object}: {report:#}");
        assert_eq!(num(&o["verified"]), n as u64, "{object}: {report:#}");
        assert_eq!(
            pd.count(object),
            Some(n),
            "{object}: the sink holds each record read once"
        );
    }
}

/// Adding an emulator to the sandbox's list puts it in the fault matrix: it needs an adapter
/// here, and the generated cases must use it as a source or a sink.
#[test]
fn every_emulator_is_in_the_fault_matrix() {
    let cases = cases();
    for spec in ferry_sandbox::emulators() {
        let vendor = spec.vendor;
        let _ = Emulator::new(vendor, Faults::default());
        assert!(
            Emulator::seeds_as_source(vendor) || Emulator::answers_per_record(vendor),
            "{vendor}: neither a source nor a sink of the fault matrix"
        );
        assert!(
            cases.iter().any(|c| c.from == vendor || c.to == vendor),
            "{vendor}: in no fault case"
        );
    }
}
