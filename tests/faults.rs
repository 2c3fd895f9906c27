//! The fault matrix: the real `ferry migrate` (a child process) from the HubSpot emulator to
//! the Salesforce emulator under each fault profile, and under all of them at once. Read faults
//! are injected on the source, write faults on the sink. Every run must end verified with
//! every seeded record in the sink exactly once, and the retries must show in the report.
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

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::hubspot::{FIRST_COMPANY_ID, FIRST_CONTACT_ID};
use ferry_sandbox::seed::Mess;
use ferry_sandbox::{hubspot, pipedrive, salesforce};

const CONTACTS: usize = 300;

/// What a case checks beyond "verified, nothing lost, nothing duplicated".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing more: the baseline.
    Clean,
    /// Retries on the source's and the sink's HTTP counters; `throttled` too if set.
    Retries { throttled: bool },
    /// Retries on the sink's counters only, and the run took at least this long (a
    /// `Retry-After` was honoured).
    SinkWaited(Duration),
    /// Extra sink requests compared with the baseline (records sent again).
    MoreSinkRequests,
    /// Sessions renewed: sink requests beyond what the org counted as API calls.
    Renewed,
    /// Nothing more than every profile with `shift` gets: records created during the read
    /// were read and written too.
    Shifted,
}

struct Case {
    name: &'static str,
    source: &'static str,
    sink: &'static str,
    /// Per-request timeout of both connectors (the `slow` fault outlasts 1 s).
    timeout_secs: u64,
    expect: Expect,
}

const CASES: &[Case] = &[
    Case {
        name: "baseline",
        source: "none",
        sink: "none",
        timeout_secs: 10,
        expect: Expect::Clean,
    },
    Case {
        name: "storm",
        source: "storm:3/8",
        sink: "storm:3/8",
        timeout_secs: 10,
        expect: Expect::Retries { throttled: true },
    },
    Case {
        name: "storm with Retry-After",
        source: "none",
        sink: "storm:2/6,retry-after:1",
        timeout_secs: 10,
        expect: Expect::SinkWaited(Duration::from_secs(1)),
    },
    Case {
        name: "5xx",
        source: "5xx:25,seed:1",
        sink: "5xx:25,seed:2",
        timeout_secs: 10,
        expect: Expect::Retries { throttled: false },
    },
    Case {
        name: "reset",
        source: "reset:25,seed:3",
        sink: "reset:25,seed:4",
        timeout_secs: 10,
        expect: Expect::Retries { throttled: false },
    },
    Case {
        name: "slow",
        source: "slow:20,slow-ms:1600,seed:5",
        sink: "slow:20,slow-ms:1600,seed:6",
        timeout_secs: 1,
        expect: Expect::Retries { throttled: false },
    },
    Case {
        name: "truncate",
        source: "truncate:10,seed:7",
        sink: "truncate:10,seed:8",
        timeout_secs: 10,
        expect: Expect::Retries { throttled: false },
    },
    Case {
        name: "partial",
        source: "none",
        sink: "partial:10,seed:9",
        timeout_secs: 10,
        expect: Expect::MoreSinkRequests,
    },
    Case {
        name: "shift",
        source: "shift:2",
        sink: "none",
        timeout_secs: 10,
        expect: Expect::Shifted,
    },
    Case {
        name: "expire",
        source: "none",
        sink: "expire:7",
        timeout_secs: 10,
        expect: Expect::Renewed,
    },
    Case {
        name: "all at once",
        source: "all,storm:2/15,5xx:10,reset:10,truncate:10,slow:5,slow-ms:1600,seed:11",
        sink: "all,storm:2/15,5xx:10,reset:10,truncate:10,slow:5,slow-ms:1600,partial:10,expire:25,seed:12",
        timeout_secs: 1,
        expect: Expect::Retries { throttled: true },
    },
];

/// A config for the two emulators with small pages and batches and the given timeout.
fn write_fault_config(sandbox: &Sandbox, timeout_secs: u64) {
    let text = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{hubspot}"
token = "${{HUBSPOT_TOKEN}}"
page_size = 50
timeout_secs = {timeout_secs}
max_retries = 10

[sink]
connector = "salesforce"
login_url = "{salesforce}"
client_id = "${{SF_CLIENT_ID}}"
client_secret = "${{SF_CLIENT_SECRET}}"
batch_size = 50
read_back_size = 50
timeout_secs = {timeout_secs}
max_retries = 10

[migration]
objects = ["companies", "contacts"]
"#,
        hubspot = sandbox.hubspot.base_url,
        salesforce = sandbox.salesforce.base_url,
    );
    std::fs::write(&sandbox.config, text).expect("write config");
}

/// What one case observed, for the cross-case checks.
struct Observed {
    sink_requests: u64,
}

/// Runs one case; `Err` says everything that went wrong.
async fn run_case(case: &Case) -> Result<Observed, String> {
    let parse = |p: &str| Faults::parse(p).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let setup = Setup {
        contacts: CONTACTS,
        mess: Mess::none(),
        hubspot_faults: parse(case.source),
        salesforce_faults: parse(case.sink),
    };
    let shifted = setup.hubspot_faults.shift.is_some();
    let sandbox = start(setup).await;
    write_fault_config(&sandbox, case.timeout_secs);
    let started = Instant::now();
    let (code, report, stderr) = run_json("migrate", &sandbox, &sandbox_env()).await;
    let elapsed = started.elapsed();
    let mut problems = String::new();
    let mut fail = |what: String| {
        let _ = writeln!(problems, "  - {what}");
    };
    if code != 0 {
        fail(format!("exit code {code}; stderr:\n{stderr}"));
    }
    if report["outcome"] != "verified" {
        fail(format!("outcome {}", report["outcome"]));
    }
    if report["failures"].as_array().is_some_and(|f| !f.is_empty()) {
        fail(format!("failures: {:#}", report["failures"]));
    }
    let seeded = [
        (
            "companies",
            "Account",
            sandbox.seeded.companies.len(),
            FIRST_COMPANY_ID,
        ),
        (
            "contacts",
            "Contact",
            sandbox.seeded.contacts.len(),
            FIRST_CONTACT_ID,
        ),
    ];
    for (object, sobject, n, first_id) in seeded {
        let o = object_of(&report, object);
        let (read, verified) = (num(&o["read"]), num(&o["verified"]));
        let in_sink = sandbox.salesforce_state.count(sobject) as u64;
        if o["digests_match"] != true {
            fail(format!("{object}: digests differ"));
        }
        if verified != read {
            fail(format!("{object}: {verified} verified of {read} read"));
        }
        // No duplicates: the sink holds exactly what was read, each once.
        if in_sink != read {
            fail(format!(
                "{object}: the sink holds {in_sink}, {read} were read"
            ));
        }
        if shifted {
            if object == "contacts" && read <= n as u64 {
                fail(format!(
                    "{object}: {read} read, none of the records created mid-read among them"
                ));
            }
        } else if read != n as u64 {
            fail(format!("{object}: {read} read, {n} seeded"));
        }
        // Nothing lost: every record that existed at the start is in the sink.
        let missing = (0..n as u64)
            .map(|i| (first_id + i).to_string())
            .filter(|id| {
                sandbox
                    .salesforce_state
                    .record_by_external_id(sobject, id)
                    .is_none()
            })
            .count();
        if missing > 0 {
            fail(format!(
                "{object}: {missing} seeded records not in the sink"
            ));
        }
    }
    let (src, sink) = (&report["source_http"], &report["sink_http"]);
    match case.expect {
        Expect::Clean | Expect::Shifted | Expect::MoreSinkRequests => {}
        Expect::Retries { throttled } => {
            for (side, http) in [("source", src), ("sink", sink)] {
                if num(&http["retries"]) == 0 {
                    fail(format!("no retries on the {side}: {http}"));
                }
                if throttled && num(&http["throttled"]) == 0 {
                    fail(format!("no 429s on the {side}: {http}"));
                }
            }
        }
        Expect::SinkWaited(at_least) => {
            if num(&sink["throttled"]) == 0 || num(&sink["retries"]) == 0 {
                fail(format!("no throttling retried on the sink: {sink}"));
            }
            if elapsed < at_least {
                fail(format!(
                    "finished in {elapsed:?}: Retry-After was not honoured"
                ));
            }
        }
        Expect::Renewed => {
            // Requests the org did not count as API calls: token requests and 401s.
            let uncounted =
                num(&sink["requests"]).saturating_sub(sandbox.salesforce_state.api_usage());
            if uncounted < 3 {
                fail(format!(
                    "{uncounted} requests beyond the org's API calls: no session was renewed"
                ));
            }
        }
    }
    let observed = Observed {
        sink_requests: num(&sink["requests"]),
    };
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(format!("{} ({elapsed:?}):\n{problems}", case.name))
    }
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
async fn every_fault_profile_and_all_at_once_end_verified_with_nothing_lost_or_duplicated() {
    let started = Instant::now();
    let results = futures::future::join_all(CASES.iter().map(|case| async move {
        let result = run_case(case).await;
        eprintln!(
            "fault case {:<24} {} after {:?}",
            case.name,
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        (case.name, result)
    }))
    .await;
    let mut failures = Vec::new();
    let mut baseline = None;
    for (name, result) in &results {
        match result {
            Ok(o) if *name == "baseline" => baseline = Some(o.sink_requests),
            Ok(_) => {}
            Err(e) => failures.push(e.clone()),
        }
    }
    for (case, (_, result)) in CASES.iter().zip(&results) {
        if let (Expect::MoreSinkRequests, Ok(o), Some(base)) = (case.expect, result, baseline) {
            if o.sink_requests <= base {
                failures.push(format!(
                    "{}: {} sink requests, no more than the baseline's {base}: nothing was sent again",
                    case.name, o.sink_requests
                ));
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
    let dir = std::env::temp_dir().join(format!("ferry-faults-hs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
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
"#,
            sf.base_url, hs.base_url
        ),
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let out = ferry(
        &["migrate", "--config", &config_arg, "--report", "json", "-q"],
        &sandbox_env(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
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
    let dir = std::env::temp_dir().join(format!("ferry-faults-pd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
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
"#,
            hs.base_url, pds.base_url
        ),
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let mut env = sandbox_env();
    env.push(("PIPEDRIVE_TOKEN", pipedrive::TOKEN.to_owned()));
    let out = ferry(
        &["migrate", "--config", &config_arg, "--report", "json", "-q"],
        &env,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
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
